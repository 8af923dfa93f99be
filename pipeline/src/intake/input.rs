//! What the user gives the intake: paths, expanded into letters (a file, or a folder whose
//! files are its pages in name order), and the reading of their bytes under the size limits.
//!
//! **Invariant:** the user's files are only ever read here, never written or moved.

use super::LetterError;
use crate::config::Config;
use crate::stages::ingest::IngestError;
use crate::store::ArchiveRecord;
use std::path::{Path, PathBuf};

/// One letter to ingest: a file, or a folder whose files are its pages in name order.
#[derive(Debug, Clone)]
pub struct LetterInput {
    /// The path as the user gave it (or as found when expanding a folder argument).
    pub source: String,
    pub path: PathBuf,
    pub is_folder: bool,
    /// What an archive says of the letter (backfill): its date of receipt, channel, old
    /// number, and the class and status decided back then.
    pub archive: Option<ArchiveRecord>,
}

impl LetterInput {
    /// The letter at `path`, named as the path is written.
    pub fn at(path: &Path) -> LetterInput {
        LetterInput {
            source: path.display().to_string(),
            is_folder: path.is_dir(),
            path: path.to_path_buf(),
            archive: None,
        }
    }

    /// The paths of its files: the file itself, or the folder's visible entries.
    pub(super) fn paths(&self) -> Vec<PathBuf> {
        if self.is_folder {
            sorted_entries(&self.path)
        } else {
            vec![self.path.clone()]
        }
    }
}

/// Command-line paths expanded into letters, and what was passed over.
#[derive(Debug, Default)]
pub struct Expanded {
    pub letters: Vec<LetterInput>,
    /// Hidden files and temporaries found in folder arguments: not letters.
    pub skipped: Vec<PathBuf>,
}

/// Expands command-line paths: a file is a letter; a folder argument is expanded in name
/// order into its files (one letter each) and sub-folders (one multi-page letter each).
/// Hidden and temporary files are passed over (and listed). A path that does not exist is
/// kept, to fail with its reason.
pub fn expand_inputs(args: &[PathBuf]) -> Expanded {
    let mut out = Expanded::default();
    for arg in args {
        if arg.is_dir() {
            let (visible, hidden) = entries(arg);
            out.letters.extend(visible.iter().map(|entry| LetterInput::at(entry)));
            out.skipped.extend(hidden);
        } else {
            out.letters.push(LetterInput { is_folder: false, ..LetterInput::at(arg) });
        }
    }
    out
}

/// Visible entries of a folder, sorted by name. Unreadable folders give no entries here and
/// fail later with their reason.
pub fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    entries(dir).0
}

/// A folder's entries, sorted by name: the visible ones and the hidden or temporary ones.
fn entries(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut all: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    all.sort();
    all.into_iter().partition(|p| !is_hidden_or_temp(p))
}

/// What a path is when it is not a regular file or a folder (`None` when it is one of
/// those, or is gone): a FIFO is never opened (opening one waits for a writer), a device or
/// socket is not a letter, and a link may point anywhere (`/etc/passwd`).
pub fn not_a_letter(path: &Path, follow_links: bool) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let meta = if follow_links { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) }.ok()?;
    let t = meta.file_type();
    if t.is_file() || t.is_dir() {
        None
    } else if t.is_symlink() {
        Some("a symbolic link")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    }
}

/// Hidden files, editor and download temporaries: not letters.
pub fn is_hidden_or_temp(p: &Path) -> bool {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.starts_with('.')
        || name.starts_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with(".crdownload")
}

/// The name and bytes of each file of a letter, in page order.
pub type LetterFiles = Vec<(String, Vec<u8>)>;

/// Reads the files of a letter input (a file, or a folder's files in name order), checking
/// the size limits before reading.
pub(super) fn read_files(input: &LetterInput, cfg: &Config) -> Result<LetterFiles, LetterError> {
    let paths = if input.is_folder {
        // A folder letter's pages are its regular files: links, pipes and sub-folders in it
        // are not pages.
        let files: Vec<PathBuf> = input
            .paths()
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file()))
            .collect();
        if files.is_empty() {
            return Err(LetterError::EmptyFolder);
        }
        files
    } else {
        // A file the user names is read wherever a link leads, but never a pipe or a device.
        if let Some(kind) = not_a_letter(&input.path, true) {
            return Err(LetterError::NotAFile { kind });
        }
        input.paths()
    };
    let mut total = 0u64;
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let read_err = |source| LetterError::Read { path: p.clone(), source };
        let len = std::fs::metadata(&p).map_err(read_err)?.len();
        if len > cfg.limits.max_file_bytes {
            return Err(IngestError::FileTooLarge { bytes: len, limit: cfg.limits.max_file_bytes }.into());
        }
        total += len;
        if total > cfg.limits.max_letter_bytes {
            return Err(IngestError::LetterTooLarge { bytes: total, limit: cfg.limits.max_letter_bytes }.into());
        }
        let bytes = std::fs::read(&p).map_err(|source| LetterError::Read { path: p.clone(), source })?;
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        out.push((name, bytes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_and_hidden_files_are_not_letters() {
        for name in [".DS_Store", "~$scan.tif", "scan.tif.part", "x.tmp"] {
            assert!(is_hidden_or_temp(Path::new(name)), "{name}");
        }
        assert!(!is_hidden_or_temp(Path::new("scan.tif")));
    }

    #[test]
    fn a_folder_argument_is_expanded_in_name_order_into_letters() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b.txt"), "二").expect("write");
        std::fs::write(dir.path().join("a.txt"), "一").expect("write");
        std::fs::write(dir.path().join(".hidden"), "x").expect("write");
        std::fs::create_dir(dir.path().join("c")).expect("mkdir");
        let expanded = expand_inputs(&[dir.path().to_path_buf()]);
        assert_eq!(expanded.skipped, [dir.path().join(".hidden")], "what was passed over is said");
        let names: Vec<(String, bool)> = expanded
            .letters
            .iter()
            .map(|l| (l.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), l.is_folder))
            .collect();
        assert_eq!(names, [("a.txt".into(), false), ("b.txt".into(), false), ("c".into(), true)]);
    }

    #[test]
    fn a_fifo_named_as_a_letter_fails_without_being_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("scan.pdf");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let cfg = crate::config::Config::builtin().expect("config");
        let err = read_files(&LetterInput::at(&fifo), &cfg).expect_err("a pipe is no letter");
        assert!(matches!(err, LetterError::NotAFile { kind: "a FIFO (named pipe)" }), "{err}");
    }
}

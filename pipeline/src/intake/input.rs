//! What the user gives the intake: paths, expanded into letters (a file, or a folder whose
//! files are its pages in name order), and the reading of their bytes under the size limits.
//!
//! **Invariant:** the user's files are only ever read here, never written or moved.

use super::LetterError;
use crate::config::Config;
use crate::stages::ingest::IngestError;
use std::path::{Path, PathBuf};

/// One letter to ingest: a file, or a folder whose files are its pages in name order.
#[derive(Debug, Clone)]
pub struct LetterInput {
    /// The path as the user gave it (or as found when expanding a folder argument).
    pub source: String,
    pub path: PathBuf,
    pub is_folder: bool,
}

impl LetterInput {
    /// The letter at `path`, named as the path is written.
    pub fn at(path: &Path) -> LetterInput {
        LetterInput { source: path.display().to_string(), is_folder: path.is_dir(), path: path.to_path_buf() }
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

/// Expands command-line paths: a file is a letter; a folder argument is expanded in name
/// order into its files (one letter each) and sub-folders (one multi-page letter each).
/// Hidden files are skipped. A path that does not exist is kept, to fail with its reason.
pub fn expand_inputs(args: &[PathBuf]) -> Vec<LetterInput> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_dir() {
            out.extend(sorted_entries(arg).iter().map(|entry| LetterInput::at(entry)));
        } else {
            out.push(LetterInput { source: arg.display().to_string(), path: arg.clone(), is_folder: false });
        }
    }
    out
}

/// Visible entries of a folder, sorted by name. Unreadable folders give no entries here and
/// fail later with their reason.
pub fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| !is_hidden_or_temp(p)).collect())
        .unwrap_or_default();
    entries.sort();
    entries
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
        let files: Vec<PathBuf> = input.paths().into_iter().filter(|p| p.is_file()).collect();
        if files.is_empty() {
            return Err(LetterError::EmptyFolder);
        }
        files
    } else {
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
        let letters = expand_inputs(&[dir.path().to_path_buf()]);
        let names: Vec<(String, bool)> = letters
            .iter()
            .map(|l| (l.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), l.is_folder))
            .collect();
        assert_eq!(names, [("a.txt".into(), false), ("b.txt".into(), false), ("c".into(), true)]);
    }
}

//! The file side of the store: originals kept content-addressed by sha256 under
//! `data_dir/originals/ab/cd/<digest>`, written once (temp file, fsync, rename) and never
//! modified; and the quarantine folder, where an unreadable letter's files are copied with
//! the reason in a file beside them.

use crate::digest::sha256;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;
use xinfang_models::Sha256Hex;

/// Failures writing originals or quarantine files: system problems (disk full, permissions).
#[derive(Debug, Error)]
pub enum FileStoreError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read stored original {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("stored original {path} does not match its digest: the file store is damaged")]
    Damaged { path: PathBuf },
    #[error("cannot move {from} to {to}: {source}")]
    Move { from: PathBuf, to: PathBuf, source: std::io::Error },
}

impl FileStoreError {
    /// The disk (or the user's quota) is full: worth retrying once space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            FileStoreError::Write { source, .. } | FileStoreError::Move { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
            }
            _ => false,
        }
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> FileStoreError + '_ {
    move |source| FileStoreError::Write { path: path.to_path_buf(), source }
}

/// Content-addressed originals and the quarantine folder under one data directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// A file store under `data_dir` (created on first write).
    pub fn new(data_dir: &Path) -> FileStore {
        FileStore { root: data_dir.to_path_buf() }
    }

    /// Where the original with this digest lives.
    pub fn original_path(&self, sha: &Sha256Hex) -> PathBuf {
        let s = sha.as_str();
        self.root.join("originals").join(&s[..2]).join(&s[2..4]).join(s)
    }

    /// The quarantine folder.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Stores an original durably and returns its digest and path. Storing the same bytes
    /// again is a no-op: the first copy is never rewritten.
    pub fn put_original(&self, bytes: &[u8]) -> Result<(Sha256Hex, PathBuf), FileStoreError> {
        let sha = sha256(bytes);
        let path = self.original_path(&sha);
        if path.exists() {
            return Ok((sha, path));
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(write_err(&dir))?;
        // Its own temporary name: the same bytes may be stored by two letters at once.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{}.{}-{n}.tmp", sha.as_str(), std::process::id()));
        if let Err(e) = write_durably(&tmp, bytes).and_then(|()| fs::rename(&tmp, &path).map_err(write_err(&path))) {
            // A half-written copy is no copy (the disk may be full): it goes.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&dir);
        Ok((sha, path))
    }

    /// Removes half-written copies left by processes of this machine that were killed while
    /// storing an original (`.<digest>.<pid>-<n>.tmp` whose process is gone). Returns how many.
    pub fn sweep_stale_temporaries(&self) -> usize {
        let mut removed = 0;
        let Ok(level1) = fs::read_dir(self.root.join("originals")) else { return 0 };
        for d1 in level1.flatten() {
            let Ok(level2) = fs::read_dir(d1.path()) else { continue };
            for d2 in level2.flatten() {
                let Ok(files) = fs::read_dir(d2.path()) else { continue };
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    let pid = name
                        .strip_prefix('.')
                        .and_then(|n| n.strip_suffix(".tmp"))
                        .and_then(|n| n.rsplit('.').next())
                        .and_then(|p| p.split('-').next())
                        .and_then(|p| p.parse::<i32>().ok());
                    let gone = pid.is_some_and(super::local_process_gone);
                    if gone && fs::remove_file(f.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        removed
    }

    /// The bytes of a stored original, checked against their digest.
    pub fn read_original(&self, sha: &Sha256Hex) -> Result<Vec<u8>, FileStoreError> {
        let path = self.original_path(sha);
        let bytes = fs::read(&path).map_err(|source| FileStoreError::Read { path: path.clone(), source })?;
        if &sha256(&bytes) != sha {
            return Err(FileStoreError::Damaged { path });
        }
        Ok(bytes)
    }

    /// Copies an unreadable letter's files into quarantine with a `.reason.txt` beside them.
    /// Returns the path of the quarantined file or folder.
    pub fn quarantine(
        &self,
        letter_sha: &Sha256Hex,
        source: &str,
        files: &[(String, &[u8])],
        is_folder: bool,
        reason: &str,
    ) -> Result<PathBuf, FileStoreError> {
        let (dir, name) = self.quarantine_entry(letter_sha, source)?;
        let target = dir.join(&name);
        if let (false, [(_, bytes)]) = (is_folder, files) {
            write_durably(&target, bytes)?;
        } else {
            fs::create_dir_all(&target).map_err(write_err(&target))?;
            for (file_name, bytes) in files {
                write_durably(&target.join(sanitize(file_name)), bytes)?;
            }
        }
        let id = quarantine_id(letter_sha);
        write_reason(
            &dir,
            &name,
            &[("id", id), ("source", source), ("sha256", letter_sha.as_str()), ("reason", reason)],
        )?;
        Ok(target)
    }

    /// Creates the quarantine folder and names an entry for `source`, prefixed by `tag`.
    fn quarantine_entry(&self, tag: &Sha256Hex, source: &str) -> Result<(PathBuf, String), FileStoreError> {
        let dir = self.quarantine_dir();
        fs::create_dir_all(&dir).map_err(write_err(&dir))?;
        let base =
            Path::new(source).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "letter".into());
        let name = format!("{}-{}", quarantine_id(tag), sanitize(&base));
        Ok((dir, name))
    }

    /// Quarantines a letter that could not be read into memory (over a size limit, say):
    /// its files are copied by streaming, never loaded. Unreadable files are skipped; the
    /// reason file names the source either way.
    pub fn quarantine_paths(
        &self,
        source: &str,
        paths: &[PathBuf],
        is_folder: bool,
        reason: &str,
    ) -> Result<PathBuf, FileStoreError> {
        let tag = unread_tag(source);
        let (dir, name) = self.quarantine_entry(&tag, source)?;
        let target = dir.join(&name);
        if is_folder {
            fs::create_dir_all(&target).map_err(write_err(&target))?;
        }
        for p in paths {
            let to = if is_folder {
                target.join(sanitize(&p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()))
            } else {
                target.clone()
            };
            // Only regular files are copied (opening a pipe would wait for a writer); a file
            // that cannot be read cannot be copied; the reason file still records it.
            let meta = if is_folder { fs::symlink_metadata(p) } else { fs::metadata(p) };
            let regular = meta.is_ok_and(|m| m.file_type().is_file());
            if regular && fs::copy(p, &to).is_ok() {
                if let Ok(f) = fs::File::open(&to) {
                    let _ = f.sync_all();
                }
            }
        }
        write_reason(&dir, &name, &[("id", quarantine_id(&tag)), ("source", source), ("reason", reason)])?;
        Ok(target)
    }
}

/// The id a quarantined letter is known by (in its entry's name, its reason file and what the
/// user is told): the start of its letter digest, or of its tag.
pub fn quarantine_id(tag: &Sha256Hex) -> &str {
    &tag.as_str()[..12]
}

/// A tag for a letter whose bytes were not read (they have no digest): its source and the time.
pub fn unread_tag(source: &str) -> Sha256Hex {
    sha256(format!("{source}\n{}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)).as_bytes())
}

/// Moves a file or folder to `to` (a free name is chosen beside it if `to` exists: `a.1.tif`),
/// across file systems too (copy, fsync, then remove). Returns where it went.
pub fn move_aside(from: &Path, to: &Path) -> Result<PathBuf, FileStoreError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(write_err(dir))?;
    let target = free_name(to);
    let moved = |source| FileStoreError::Move { from: from.to_path_buf(), to: target.clone(), source };
    match fs::rename(from, &target) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_tree(from, &target).map_err(moved)?;
            if from.is_dir() { fs::remove_dir_all(from) } else { fs::remove_file(from) }.map_err(moved)?;
        }
        Err(e) => return Err(moved(e)),
    }
    sync_dir(dir);
    Ok(target)
}

/// `path`, or `stem.N.ext` for the first N that does not exist.
fn free_name(path: &Path) -> PathBuf {
    if !path.exists() {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    (1..)
        .map(|n| path.with_file_name(format!("{stem}.{n}{ext}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        fs::create_dir_all(to)?;
        for e in fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to)?;
        fs::File::open(to)?.sync_all()
    }
}

/// Writes `<path>.reason.txt` beside a file moved to a quarantine folder.
pub fn write_reason_beside(path: &Path, fields: &[(&str, &str)]) -> Result<(), FileStoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    write_reason(dir, &name, fields)
}

/// A file name safe to create: path separators and control characters replaced.
fn sanitize(name: &str) -> String {
    let s: String = name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    if s.is_empty() || s == "." || s == ".." {
        "file".into()
    } else {
        s
    }
}

/// Writes `<name>.reason.txt` beside a quarantine entry: a `key: value` line per field (each
/// value on one line, its control characters escaped, so that a file name cannot forge a
/// line) and the time it was quarantined.
fn write_reason(dir: &Path, name: &str, fields: &[(&str, &str)]) -> Result<(), FileStoreError> {
    let mut note = String::new();
    for (key, value) in fields {
        note.push_str(&format!("{key}: {}\n", xinfang_models::display::one_line(value)));
    }
    note.push_str(&format!("quarantined_at: {}\n", chrono::Utc::now().to_rfc3339()));
    write_durably(&dir.join(format!("{name}.reason.txt")), note.as_bytes())?;
    sync_dir(dir);
    Ok(())
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), FileStoreError> {
    let mut f = fs::File::create(path).map_err(write_err(path))?;
    f.write_all(bytes).map_err(write_err(path))?;
    f.sync_all().map_err(write_err(path))
}

/// Makes a rename durable; a failure here is not worth failing the letter for.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Every file below `dir`, in its sub-folders too (folders that cannot be read are skipped):
/// what the archive, quarantine and originals folders hold, for checks and benchmarks.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_below(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originals_are_content_addressed_and_written_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(tmp.path());
        let (sha, path) = store.put_original(b"letter").expect("put");
        assert_eq!(fs::read(&path).expect("read"), b"letter");
        assert!(path.ends_with(sha.as_str()));
        let (sha2, path2) = store.put_original(b"letter").expect("put again");
        assert_eq!((sha, path), (sha2, path2));
    }

    #[test]
    fn quarantine_keeps_bytes_and_reason() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(tmp.path());
        let sha = sha256(b"junk");
        let q = store
            .quarantine(&sha, "in/bad.pdf", &[("bad.pdf".into(), b"junk")], false, "not a pdf")
            .expect("quarantine");
        assert_eq!(fs::read(&q).expect("read"), b"junk");
        let reason = fs::read_to_string(format!("{}.reason.txt", q.display())).expect("reason");
        assert!(reason.contains("not a pdf") && reason.contains("in/bad.pdf"));
    }
}

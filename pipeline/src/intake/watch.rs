//! The watched folder (`xinfang watch DIR…`): the mailroom scans into a folder all day.
//!
//! Each scan of the folders lists the visible entries (hidden files and the temporaries of
//! scanners, editors and downloads are not letters): a regular file is one letter, a
//! sub-folder one multi-page letter; links, pipes, sockets and devices are passed over, one
//! line each, and never opened. The service's own data, archive and quarantine folders, and
//! the files its own output goes to, are never taken. An entry is taken once its signature
//! (size and modification time; for a folder, those of all its files) has not changed for
//! `watch.stable_secs`. Taking it means storing its originals and queuing its job
//! (`Intake::enqueue`); the user's file is only read. Once the job is done (the case
//! committed) the entry is moved to the archive, in a folder per day, but only if its bytes
//! are still those that were registered: a file that changed meanwhile (a copy that stalled
//! longer than the window) is taken again as a new version, which supersedes the first case
//! and sends it to review. Once the job failed for good, the entry goes to quarantine with the
//! reason beside it. Native file events (inotify) wake the scan early; the scan also runs
//! every `watch.poll_secs`, which is what finds new files on network shares.
//!
//! **Invariant:** nothing is moved before its case is committed, and only when its bytes are
//! those registered; no byte the mailroom dropped is ever attached to nothing.

use super::{not_a_letter, sorted_entries, Enqueued, Intake, LetterInput, SystemError};
use crate::config::WatchConfig;
use crate::store::{move_aside, quarantine_id, unread_tag, write_reason_beside, Job, JobState};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use thiserror::Error;
use xinfang_models::display::one_line;
use xinfang_models::{CaseNo, LetterClass, Sha256Hex};

/// A folder that cannot be watched.
#[derive(Debug, Error)]
pub enum WatchSetupError {
    #[error("{dir} is inside {inner}, where the service keeps its own files: watch the folder the scans arrive in")]
    InsideOwnFolder { dir: PathBuf, inner: PathBuf },
}

/// What a folder entry looks like now: sizes and modification times of its files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signature(Vec<(String, u64, Option<SystemTime>)>);

impl Signature {
    /// `None` when the entry is gone or unreadable right now. Links are not followed.
    fn of(path: &Path) -> Option<Signature> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        if meta.is_dir() {
            let mut parts = Vec::new();
            for p in sorted_entries(path) {
                let m = std::fs::symlink_metadata(&p).ok()?;
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                parts.push((name, m.len(), m.modified().ok()));
            }
            Some(Signature(parts))
        } else {
            Some(Signature(vec![(String::new(), meta.len(), meta.modified().ok())]))
        }
    }

    /// A folder with no files yet is not a letter yet.
    fn is_empty_folder(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug)]
enum Stage {
    /// Seen; taken once stable.
    Settling,
    /// Its job is queued.
    Queued { job_id: String },
    /// Its case is committed, but a program still has the file open for writing (a copy
    /// that paused): it is archived once the writer has closed it and its bytes are checked.
    Committed { registered: Registered },
}

/// What became of an earlier version of an entry that changed after it was taken.
#[derive(Debug, Clone)]
enum Earlier {
    /// Its job had not ended when the change was seen.
    Job(String),
    /// It was registered as this case, which the new version supersedes.
    Case(CaseNo),
}

/// A letter's case, as the watcher learns of it.
#[derive(Debug, Clone)]
struct Registered {
    case_no: String,
    /// The digest of the bytes registered.
    sha: Sha256Hex,
    /// When this copy's job was queued (`None`: the copy was a duplicate when it was taken).
    queued_at: Option<i64>,
}

#[derive(Debug)]
struct Entry {
    sig: Signature,
    since: Instant,
    stage: Stage,
    earlier: Option<Earlier>,
}

impl Entry {
    fn new(sig: Signature, earlier: Option<Earlier>) -> Entry {
        Entry { sig, since: Instant::now(), stage: Stage::Settling, earlier }
    }
}

/// One line per letter the watcher finished with, or passed over, for the log (`--json`
/// prints the same as one object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
    /// The letter's case is committed and its files are in the archive.
    Archived {
        at: chrono::DateTime<chrono::Local>,
        source: PathBuf,
        case_no: String,
        class: Option<LetterClass>,
        review: bool,
        /// The same bytes were registered before this copy arrived.
        duplicate: bool,
        to: PathBuf,
    },
    /// The letter cannot be read; its files are in quarantine under `id`.
    Quarantined { at: chrono::DateTime<chrono::Local>, source: PathBuf, id: String, reason: String, to: PathBuf },
    /// The file changed after it was taken: it is taken again once stable, as a new version
    /// of `case_no` when that was registered.
    Changed { at: chrono::DateTime<chrono::Local>, source: PathBuf, case_no: Option<String> },
    /// Not a letter (a link, a pipe, a device, the service's own files): left alone.
    Skipped { at: chrono::DateTime<chrono::Local>, source: PathBuf, why: String },
}

impl std::fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = |at: &chrono::DateTime<chrono::Local>| at.format("%Y-%m-%d %H:%M:%S").to_string();
        let path = |p: &Path| one_line(&p.display().to_string()).into_owned();
        match self {
            WatchEvent::Archived { at, source, case_no, class, review, duplicate, to } => write!(
                f,
                "{}  {:<11} {case_no}  {}{}  {} -> {}",
                when(at),
                if *duplicate { "duplicate" } else { "registered" },
                class.map_or("-", |c| c.as_str()),
                if *review { "  待研判 review" } else { "" },
                path(source),
                path(to)
            ),
            WatchEvent::Quarantined { at, source, id, reason, to } => write!(
                f,
                "{}  {:<11} {id}  {}: {} -> {}",
                when(at),
                "quarantined",
                path(source),
                one_line(reason),
                path(to)
            ),
            WatchEvent::Changed { at, source, case_no } => write!(
                f,
                "{}  {:<11} {}: it changed after it was taken{}; taken again once stable",
                when(at),
                "changed",
                path(source),
                case_no.as_ref().map_or(String::new(), |c| format!(" and registered as {c}"))
            ),
            WatchEvent::Skipped { at, source, why } => {
                write!(f, "{}  {:<11} {}: {why}", when(at), "skipped", path(source))
            }
        }
    }
}

/// The watcher of one or more folders.
pub struct Watcher {
    dirs: Vec<PathBuf>,
    cfg: WatchConfig,
    archive: PathBuf,
    quarantine: PathBuf,
    /// The service's own folders (data, archive, quarantine) and configuration files,
    /// absolute: an entry holding one of them is never taken.
    own_folders: Vec<PathBuf>,
    /// The files this process writes its output to (device, inode).
    own_files: Vec<(u64, u64)>,
    entries: HashMap<PathBuf, Entry>,
    /// Entries passed over, said once each.
    skipped: HashSet<PathBuf>,
}

/// Whether a program on this machine has the file (or a file of the folder) open for
/// writing: a copy that paused longer than the stability window is still being written.
/// (Writers on other machines of a network share are not seen here; their pauses are caught
/// by the digest check before the move.)
fn being_written(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let files: Vec<PathBuf> = if path.is_dir() { sorted_entries(path) } else { vec![path.to_path_buf()] };
    let inodes: HashSet<(u64, u64)> =
        files.iter().filter_map(|f| std::fs::symlink_metadata(f).ok()).map(|m| (m.dev(), m.ino())).collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else { return false };
    let me = std::process::id().to_string();
    for proc in procs.flatten() {
        let pid = proc.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) || pid.to_string_lossy() == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(meta) = std::fs::metadata(fd.path()) else { continue };
            if !inodes.contains(&(meta.dev(), meta.ino())) {
                continue;
            }
            // fdinfo's flags are octal; the access mode is their low two bits.
            let info = std::fs::read_to_string(proc.path().join("fdinfo").join(fd.file_name())).unwrap_or_default();
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).map(str::trim).unwrap_or("0");
            if u32::from_str_radix(flags, 8).is_ok_and(|f| f & 0o3 != 0) {
                return true;
            }
        }
    }
    false
}

/// An absolute form of `p` (symbolic links resolved where it exists).
fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf())
}

/// The files this process's standard output and error go to: `watch . > watch.log` must not
/// register its own log.
fn own_output_files() -> Vec<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    ["/proc/self/fd/1", "/proc/self/fd/2"]
        .iter()
        .filter_map(|fd| std::fs::metadata(fd).ok())
        .filter(|m| m.is_file())
        .map(|m| (m.dev(), m.ino()))
        .collect()
}

impl Watcher {
    /// A watcher of `dirs` for the service whose data lives in `data_dir` and which reads
    /// `config_files` (its configuration and rule files: never taken); refused when a watched
    /// folder is inside the data folders.
    pub fn new(
        dirs: Vec<PathBuf>,
        cfg: &WatchConfig,
        data_dir: &Path,
        config_files: &[PathBuf],
    ) -> Result<Watcher, WatchSetupError> {
        let archive = cfg.archive(data_dir);
        let quarantine = cfg.quarantine(data_dir);
        let mut own_folders: Vec<PathBuf> = [data_dir, &archive, &quarantine].iter().map(|p| absolute(p)).collect();
        // Watching inside the data folders would archive letters into the watched folder again.
        for dir in &dirs {
            let abs = absolute(dir);
            if let Some(inner) = own_folders.iter().find(|own| abs.starts_with(own)) {
                return Err(WatchSetupError::InsideOwnFolder { dir: dir.clone(), inner: inner.clone() });
            }
        }
        // The configuration is only never taken (the folder of scans may lie within the
        // folder the configuration is in).
        own_folders.extend(config_files.iter().map(|p| absolute(p)));
        Ok(Watcher {
            dirs,
            archive,
            quarantine,
            own_folders,
            own_files: own_output_files(),
            cfg: cfg.clone(),
            entries: HashMap::new(),
            skipped: HashSet::new(),
        })
    }

    /// Watches until `stop` is set and `work_done` says no job of this process is still in
    /// flight; then makes a last pass, so that letters finished meanwhile are archived.
    pub async fn run(
        &mut self,
        intake: &Intake,
        stop: Arc<AtomicBool>,
        work_done: Arc<AtomicBool>,
        mut on_event: impl FnMut(&WatchEvent),
    ) -> Result<(), SystemError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        // Native events only wake the scan; without them (network shares, inotify limits)
        // the polling below still finds everything.
        let _native = self.native_events(tx);
        let poll = Duration::from_secs_f64(self.cfg.poll_secs);
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            match self.pass(intake, !stopping).await {
                Ok(events) => events.iter().for_each(&mut on_event),
                Err(e) if e.transient().is_some() => tracing::warn!("watch: {e}; trying again"),
                Err(e) => return Err(e),
            }
            if stopping && work_done.load(Ordering::SeqCst) {
                // One last look now that the worker has finished what it had.
                let events = self.pass(intake, false).await?;
                events.iter().for_each(&mut on_event);
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = rx.recv() => {
                    // Let a burst of events settle into one scan.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while rx.try_recv().is_ok() {}
                }
            }
        }
    }

    fn native_events(&self, tx: tokio::sync::mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher as _;
        let mut w = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
            let _ = tx.try_send(());
        })
        .map_err(|e| tracing::warn!("watch: no native file events ({e}); polling only"))
        .ok()?;
        for d in &self.dirs {
            if let Err(e) = w.watch(d, notify::RecursiveMode::Recursive) {
                tracing::warn!("watch: no native file events for {} ({e}); polling it", d.display());
            }
        }
        Some(w)
    }

    /// Why an entry is not a letter, if it is not one.
    fn passed_over(&self, path: &Path) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        if let Some(kind) = not_a_letter(path, false) {
            return Some(format!("{kind}, not a letter: left where it is"));
        }
        let abs = absolute(path);
        if self.own_folders.iter().any(|own| own.starts_with(&abs)) {
            return Some("holds this service's own data or configuration: never taken as a letter".into());
        }
        let meta = std::fs::symlink_metadata(path).ok()?;
        if self.own_files.contains(&(meta.dev(), meta.ino())) {
            return Some("this service writes its output to it: never taken as a letter".into());
        }
        None
    }

    /// One scan: notices new and changed entries, queues the stable ones (when `take`), and
    /// archives or quarantines the ones whose jobs have ended.
    pub async fn pass(&mut self, intake: &Intake, take: bool) -> Result<Vec<WatchEvent>, SystemError> {
        let mut events = Vec::new();
        let mut seen = Vec::new();
        for dir in &self.dirs {
            for path in sorted_entries(dir) {
                match self.passed_over(&path) {
                    Some(why) => {
                        if self.skipped.insert(path.clone()) {
                            events.push(WatchEvent::Skipped { at: chrono::Local::now(), source: path, why });
                        }
                    }
                    None => seen.push(path),
                }
            }
        }
        // Entries that went away (renamed, removed by someone) are forgotten; a renamed
        // file is seen again under its new name and is the same letter.
        self.entries.retain(|p, _| seen.contains(p));
        self.skipped.retain(|p| p.exists() || std::fs::symlink_metadata(p).is_ok());
        let window = Duration::from_secs_f64(self.cfg.stable_secs);
        for path in seen {
            let Some(sig) = Signature::of(&path) else { continue };
            let entry = self.entries.entry(path.clone()).or_insert_with(|| Entry::new(sig.clone(), None));
            if entry.sig != sig {
                // Still being written, or replaced by a new copy: start over (remembering a
                // version already taken, so that the new one can be linked to it, and saying
                // so when one was).
                let earlier = match &entry.stage {
                    Stage::Queued { job_id } => Some(Earlier::Job(job_id.clone())),
                    Stage::Committed { registered } => registered.case_no.parse().ok().map(Earlier::Case),
                    Stage::Settling => entry.earlier.clone(),
                };
                if !matches!(entry.stage, Stage::Settling) {
                    let case_no = match &earlier {
                        Some(Earlier::Case(c)) => Some(c.to_string()),
                        _ => None,
                    };
                    events.push(WatchEvent::Changed { at: chrono::Local::now(), source: path.clone(), case_no });
                }
                *entry = Entry::new(sig, earlier);
                continue;
            }
            // A file a program still has open for writing is not finished, however long it
            // has looked the same (a scanner or a copy that paused).
            let ready = take && entry.since.elapsed() >= window && !sig.is_empty_folder() && !being_written(&path);
            match (&entry.stage, entry.earlier.clone()) {
                (Stage::Settling, earlier) if ready => {
                    let supersedes = match earlier {
                        // Its earlier version is still being read: wait for it to end.
                        Some(Earlier::Job(job_id)) => match intake.store.job(&job_id).await? {
                            Some(job) if job.state == JobState::Done => job.result.and_then(|c| c.parse().ok()),
                            Some(job) if job.state != JobState::Failed => continue,
                            _ => None,
                        },
                        Some(Earlier::Case(case)) => Some(case),
                        None => None,
                    };
                    match intake.enqueue(&LetterInput::at(&path), supersedes.as_ref()).await? {
                        Enqueued::Queued { job_id } => {
                            if let Some(e) = self.entries.get_mut(&path) {
                                e.stage = Stage::Queued { job_id };
                                e.earlier = None;
                            }
                        }
                        Enqueued::Duplicate { case_no, sha } => {
                            let registered = Registered { case_no: case_no.to_string(), sha, queued_at: None };
                            events.extend(self.finish_registered(intake, &path, &registered).await?);
                        }
                        Enqueued::Unreadable { error } => {
                            // Gone meanwhile: nothing to do; otherwise it cannot be read.
                            if path.exists() {
                                events.push(self.quarantine(&path, &error.to_string(), None)?);
                            }
                            self.entries.remove(&path);
                        }
                    }
                }
                (Stage::Committed { registered }, _) => {
                    let registered = registered.clone();
                    if let Some(done) = self.finish_registered(intake, &path, &registered).await? {
                        events.push(done);
                    }
                }
                (Stage::Queued { job_id }, _) => {
                    let Some(job) = intake.store.job(job_id).await? else {
                        entry.stage = Stage::Settling;
                        continue;
                    };
                    let sha = job.letter_sha256.as_deref().and_then(Sha256Hex::parse);
                    match (job.state, sha) {
                        (JobState::Done, Some(sha)) => {
                            let case_no = job.result.clone().unwrap_or_default();
                            let registered = Registered { case_no, sha, queued_at: Some(job.created_at) };
                            events.extend(self.finish_registered(intake, &path, &registered).await?);
                        }
                        (JobState::Failed, _) if being_written(&path) => {}
                        (JobState::Failed, sha) => {
                            let reason = job.last_error.clone().unwrap_or_else(|| "could not be read".into());
                            if sha.is_some_and(|sha| self.unchanged(intake, &path, &sha)) {
                                events.push(self.quarantine(&path, &reason, Some(&job))?);
                            } else {
                                // What failed was a version still being written: read it again.
                                self.entries.insert(path.clone(), Entry::new(sig, None));
                                events.push(WatchEvent::Changed {
                                    at: chrono::Local::now(),
                                    source: path,
                                    case_no: None,
                                });
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        Ok(events)
    }

    /// Whether the letter at `path` still has the bytes `sha` that were registered.
    fn unchanged(&self, intake: &Intake, path: &Path, sha: &Sha256Hex) -> bool {
        intake.current_digest(&LetterInput::at(path)).as_ref() == Some(sha)
    }

    /// A letter whose case is committed: archived when no program writes to it any more
    /// and its bytes are those registered; taken again as a new version of the case when they
    /// are not; left for a later pass (`None`) while a writer still has it open.
    async fn finish_registered(
        &mut self,
        intake: &Intake,
        path: &Path,
        registered: &Registered,
    ) -> Result<Option<WatchEvent>, SystemError> {
        let now = chrono::Local::now();
        let case_no = registered.case_no.as_str();
        if being_written(path) {
            if let Some(e) = self.entries.get_mut(path) {
                e.stage = Stage::Committed { registered: registered.clone() };
            }
            return Ok(None);
        }
        if !self.unchanged(intake, path, &registered.sha) {
            let sig = Signature::of(path).unwrap_or(Signature(Vec::new()));
            let case = case_no.parse().ok();
            self.entries.insert(path.to_path_buf(), Entry::new(sig, case.map(Earlier::Case)));
            let changed =
                WatchEvent::Changed { at: now, source: path.to_path_buf(), case_no: Some(case_no.to_string()) };
            return Ok(Some(changed));
        }
        self.entries.remove(path);
        let (class, review, received_at) = match case_no.parse::<CaseNo>() {
            Ok(no) => {
                let summary = intake.store.summary(&no).await?;
                let class = intake.store.decision(&no).await?.map(|d| d.class);
                (class, summary.as_ref().is_some_and(|s| s.needs_review), summary.map(|s| s.received_at))
            }
            Err(_) => (None, false, None),
        };
        // The case of this copy's job was received when the job was queued; one received
        // at another time was another copy's.
        let duplicate = match registered.queued_at {
            Some(queued) => received_at.is_some_and(|r| r != queued),
            None => true,
        };
        let day = now.format("%Y-%m-%d").to_string();
        let name = path.file_name().map(Path::new).unwrap_or(Path::new("letter"));
        let to = move_aside(path, &self.archive.join(day).join(name))?;
        Ok(Some(WatchEvent::Archived {
            at: now,
            source: path.to_path_buf(),
            case_no: case_no.to_string(),
            class,
            review,
            duplicate,
            to,
        }))
    }

    /// Moves a letter that cannot be read to the quarantine folder with the reason beside it.
    /// When the worker already put a copy there (its job's `result`), the user's file (the
    /// same bytes) is removed instead of being kept twice.
    fn quarantine(&mut self, path: &Path, reason: &str, job: Option<&Job>) -> Result<WatchEvent, SystemError> {
        self.entries.remove(path);
        let at = chrono::Local::now();
        let kept = job.and_then(|j| j.result.as_deref()).map(PathBuf::from);
        if let (Some(kept), Some(sha)) = (kept, job.and_then(|j| j.letter_sha256.as_deref()).and_then(Sha256Hex::parse))
        {
            if kept.exists() && kept.parent() == Some(self.quarantine.as_path()) {
                let removed = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
                if removed.is_ok() {
                    let id = quarantine_id(&sha).to_string();
                    return Ok(WatchEvent::Quarantined {
                        at,
                        source: path.to_path_buf(),
                        id,
                        reason: reason.into(),
                        to: kept,
                    });
                }
            }
        }
        let source = path.display().to_string();
        let tag = unread_tag(&source);
        let id = quarantine_id(&tag).to_string();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "letter".into());
        let to = move_aside(path, &self.quarantine.join(format!("{id}-{name}")))?;
        write_reason_beside(&to, &[("id", &id), ("source", &source), ("reason", reason)])?;
        Ok(WatchEvent::Quarantined { at, source: path.to_path_buf(), id, reason: reason.into(), to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::testing;
    use crate::intake::worker::WorkOptions;
    use crate::store::JobKind;

    async fn drain(intake: &Intake) {
        let opts = WorkOptions {
            drain: true,
            letters: true,
            reruns: None,
            stop: Arc::new(AtomicBool::new(false)),
            batch: false,
        };
        intake.work(opts, |_| {}).await.expect("work");
    }

    #[tokio::test]
    async fn a_dropped_letter_is_archived_only_once_its_case_is_committed() {
        let t = testing::intake(|c| c.watch.stable_secs = 0.0).await;
        let input =
            testing::letter(&t, "scans/a.txt", "县纪委：\n反映白沙镇副镇长王建国用公款宴请朋友，花费八千元。\n");
        let scans = t.dir.path().join("scans");
        let data = t.dir.path().join("data");
        let mut w = Watcher::new(vec![scans.clone()], &t.intake.cfg.watch, &data, &[]).expect("a folder to watch");
        assert!(w.pass(&t.intake, true).await.expect("pass").is_empty(), "queued, not yet registered");
        assert!(w.pass(&t.intake, true).await.expect("pass").is_empty(), "its job is not done yet");
        assert_eq!(t.intake.store.queue_counts(JobKind::Letter, None).await.expect("counts").queued, 1);
        assert!(input.path.exists(), "nothing is moved before its case is committed");
        drain(&t.intake).await;
        let events = w.pass(&t.intake, true).await.expect("pass");
        let [WatchEvent::Archived { case_no, to, .. }] = events.as_slice() else { panic!("archived: {events:?}") };
        assert!(case_no.starts_with("QLX-"), "{case_no}");
        assert!(to.starts_with(data.join("archive")) && to.exists() && !input.path.exists());
        t.pool.shutdown().await;
    }

    #[test]
    fn the_services_own_folders_are_never_letters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, config) = (dir.path().join("data"), dir.path().join("config"));
        std::fs::create_dir_all(&data).expect("data");
        std::fs::create_dir_all(&config).expect("config");
        std::fs::write(config.join("xinfang.toml"), "").expect("config file");
        std::fs::write(dir.path().join("rules.toml"), "").expect("a rule file beside the scans");
        std::fs::create_dir_all(dir.path().join("letter")).expect("a folder letter");
        let own = [config.join("xinfang.toml"), dir.path().join("rules.toml")];
        let w = Watcher::new(vec![dir.path().to_path_buf()], &WatchConfig::default(), &data, &own).expect("watchable");
        assert!(w.passed_over(&data).is_some_and(|why| why.contains("own data")));
        assert!(w.passed_over(&config).is_some_and(|why| why.contains("configuration")));
        assert!(w.passed_over(&dir.path().join("rules.toml")).is_some());
        assert_eq!(w.passed_over(&dir.path().join("letter")), None);
        let inside = Watcher::new(vec![data.join("archive")], &WatchConfig::default(), &data, &[]);
        assert!(matches!(inside, Err(WatchSetupError::InsideOwnFolder { .. })));
    }

    #[test]
    fn a_file_open_for_writing_is_seen_as_being_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scan.pdf");
        let writer = std::fs::File::create(&path).expect("create");
        // This process's own descriptors are not counted: a child holds the file open.
        // `exec sleep`: the shell becomes the sleep, so one process holds the descriptor.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec 3>>{:?}; exec sleep 5", path))
            .spawn()
            .expect("sh");
        drop(writer);
        std::thread::sleep(Duration::from_millis(300));
        assert!(being_written(&path));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!being_written(&path));
    }

    #[tokio::test]
    async fn a_file_still_being_written_is_not_taken() {
        let t = testing::intake(|c| c.watch.stable_secs = 0.3).await;
        let input = testing::letter(&t, "scans/b.txt", "县纪委：\n");
        let mut w =
            Watcher::new(vec![t.dir.path().join("scans")], &t.intake.cfg.watch, &t.dir.path().join("data"), &[])
                .expect("a folder to watch");
        let queued = || async { t.intake.store.queue_counts(JobKind::Letter, None).await.expect("counts").queued };
        w.pass(&t.intake, true).await.expect("pass");
        tokio::time::sleep(Duration::from_millis(400)).await;
        std::fs::write(&input.path, "县纪委：\n反映白沙镇副镇长王建国用公款宴请朋友。\n").expect("grows");
        w.pass(&t.intake, true).await.expect("pass");
        assert_eq!(queued().await, 0, "it changed since it was seen: its window starts again");
        tokio::time::sleep(Duration::from_millis(400)).await;
        w.pass(&t.intake, true).await.expect("pass");
        assert_eq!(queued().await, 1, "stable for the window: taken");
        t.pool.shutdown().await;
    }
}

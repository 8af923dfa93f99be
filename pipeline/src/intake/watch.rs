//! The watched folder (`xinfang watch DIR…`): the mailroom scans into a folder all day.
//!
//! Each scan of the folders lists the visible entries (hidden files and the temporaries of
//! scanners, editors and downloads are not letters): a file is one letter, a sub-folder one
//! multi-page letter. An entry is taken once its signature (size and modification time; for
//! a folder, those of all its files) has not changed for `watch.stable_secs`. Taking it
//! means storing its originals and queuing its job (`Intake::enqueue`); the user's file is
//! only read. Once the job is done (the case committed) the entry is moved to the archive,
//! in a folder per day; once it failed for good, to the quarantine folder with the reason
//! beside it. Native file events (inotify) wake the scan early; the scan also runs every
//! `watch.poll_secs`, which is what finds new files on network shares, where events do not
//! arrive.
//!
//! **Invariant:** nothing is moved before its case is committed, and only when it is still
//! the very file that was queued (same signature); re-copies, renames and repeated events
//! are harmless because letters are named by their content.

use super::{sorted_entries, Enqueued, Intake, LetterInput, SystemError};
use crate::config::WatchConfig;
use crate::store::{move_aside, write_reason_beside, JobState};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What a folder entry looks like now: sizes and modification times of its files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signature(Vec<(String, u64, Option<SystemTime>)>);

impl Signature {
    /// `None` when the entry is gone or unreadable right now.
    fn of(path: &Path) -> Option<Signature> {
        let meta = std::fs::metadata(path).ok()?;
        if meta.is_dir() {
            let mut parts = Vec::new();
            for p in sorted_entries(path) {
                let m = std::fs::metadata(&p).ok()?;
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
    /// Its job is queued; `sig` is what was queued.
    Queued { job_id: String },
}

#[derive(Debug)]
struct Entry {
    sig: Signature,
    since: Instant,
    stage: Stage,
}

/// One line per letter the watcher finished with, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Archived { source: PathBuf, case_no: String, to: PathBuf },
    Quarantined { source: PathBuf, reason: String, to: PathBuf },
}

impl std::fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchEvent::Archived { source, case_no, to } => {
                write!(f, "archived {} as {case_no} -> {}", source.display(), to.display())
            }
            WatchEvent::Quarantined { source, reason, to } => {
                write!(f, "quarantined {}: {reason} -> {}", source.display(), to.display())
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
    entries: HashMap<PathBuf, Entry>,
}

impl Watcher {
    pub fn new(dirs: Vec<PathBuf>, cfg: &WatchConfig, data_dir: &Path) -> Watcher {
        Watcher {
            dirs,
            archive: cfg.archive(data_dir),
            quarantine: cfg.quarantine(data_dir),
            cfg: cfg.clone(),
            entries: HashMap::new(),
        }
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

    /// One scan: notices new and changed entries, queues the stable ones (when `take`), and
    /// archives or quarantines the ones whose jobs have ended.
    pub async fn pass(&mut self, intake: &Intake, take: bool) -> Result<Vec<WatchEvent>, SystemError> {
        let mut events = Vec::new();
        let mut seen = Vec::new();
        for dir in &self.dirs {
            for path in sorted_entries(dir) {
                seen.push(path);
            }
        }
        // Entries that went away (renamed, removed by someone) are forgotten; a renamed
        // file is seen again under its new name and is the same letter.
        self.entries.retain(|p, _| seen.contains(p));
        let window = Duration::from_secs_f64(self.cfg.stable_secs);
        for path in seen {
            let Some(sig) = Signature::of(&path) else { continue };
            let now = Instant::now();
            let entry = self.entries.entry(path.clone()).or_insert_with(|| Entry {
                sig: sig.clone(),
                since: now,
                stage: Stage::Settling,
            });
            if entry.sig != sig {
                // Still being written, or replaced by a new copy: start over.
                *entry = Entry { sig, since: now, stage: Stage::Settling };
                continue;
            }
            match &entry.stage {
                Stage::Settling if take && now.duration_since(entry.since) >= window && !sig.is_empty_folder() => {
                    match intake.enqueue(&LetterInput::at(&path)).await? {
                        Enqueued::Queued { job_id } => entry.stage = Stage::Queued { job_id },
                        Enqueued::Duplicate { case_no } => {
                            events.push(self.archive(&path, &case_no.to_string())?);
                            self.entries.remove(&path);
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
                Stage::Queued { job_id } => {
                    let Some(job) = intake.store().job(job_id).await? else {
                        entry.stage = Stage::Settling;
                        continue;
                    };
                    match job.state {
                        JobState::Done => {
                            let case_no = job.result.clone().unwrap_or_default();
                            events.push(self.archive(&path, &case_no)?);
                            self.entries.remove(&path);
                        }
                        JobState::Failed => {
                            let reason = job.last_error.clone().unwrap_or_else(|| "could not be read".into());
                            events.push(self.quarantine(&path, &reason, job.result.as_deref())?);
                            self.entries.remove(&path);
                        }
                        JobState::Queued | JobState::Running => {}
                    }
                }
                Stage::Settling => {}
            }
        }
        Ok(events)
    }

    /// Moves a committed letter to today's archive folder.
    fn archive(&self, path: &Path, case_no: &str) -> Result<WatchEvent, SystemError> {
        let day = chrono::Local::now().format("%Y-%m-%d").to_string();
        let name = path.file_name().map(Path::new).unwrap_or(Path::new("letter"));
        let to = move_aside(path, &self.archive.join(day).join(name))?;
        Ok(WatchEvent::Archived { source: path.to_path_buf(), case_no: case_no.to_string(), to })
    }

    /// Moves a letter that cannot be read to the quarantine folder with the reason beside it.
    /// When the worker already put a copy there (`kept`), the user's file is removed instead
    /// of being kept twice.
    fn quarantine(&self, path: &Path, reason: &str, kept: Option<&str>) -> Result<WatchEvent, SystemError> {
        if let Some(kept) = kept.map(PathBuf::from) {
            if kept.exists() && kept.parent() == Some(self.quarantine.as_path()) {
                let removed = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
                if removed.is_ok() {
                    return Ok(WatchEvent::Quarantined {
                        source: path.to_path_buf(),
                        reason: reason.to_string(),
                        to: kept,
                    });
                }
            }
        }
        let name = path.file_name().map(Path::new).unwrap_or(Path::new("letter"));
        let to = move_aside(path, &self.quarantine.join(name))?;
        write_reason_beside(&to, &format!("source: {}\nreason: {reason}\n", path.display()))?;
        Ok(WatchEvent::Quarantined { source: path.to_path_buf(), reason: reason.to_string(), to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::testing;
    use crate::intake::worker::WorkOptions;
    use crate::store::JobKind;

    async fn drain(intake: &Intake) {
        let opts = WorkOptions { drain: true, letters: true, reruns: None, stop: Arc::new(AtomicBool::new(false)) };
        intake.work(opts, |_| {}).await.expect("work");
    }

    #[tokio::test]
    async fn a_dropped_letter_is_archived_only_once_its_case_is_committed() {
        let t = testing::intake(|c| c.watch.stable_secs = 0.0).await;
        let input =
            testing::letter(&t, "scans/a.txt", "县纪委：\n反映白沙镇副镇长王建国用公款宴请朋友，花费八千元。\n");
        let scans = t.dir.path().join("scans");
        let data = t.dir.path().join("data");
        let mut w = Watcher::new(vec![scans.clone()], &t.intake.cfg.watch, &data);
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

    #[tokio::test]
    async fn a_file_still_being_written_is_not_taken() {
        let t = testing::intake(|c| c.watch.stable_secs = 0.3).await;
        let input = testing::letter(&t, "scans/b.txt", "县纪委：\n");
        let mut w = Watcher::new(vec![t.dir.path().join("scans")], &t.intake.cfg.watch, &t.dir.path().join("data"));
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

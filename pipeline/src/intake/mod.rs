//! The intake: letters in, cases out. One type, `Intake`, owns the whole flow, one concern a
//! child module: `input` (paths → letters, their bytes under the size limits), `read`
//! (decode + OCR, nothing stored), `register` (the one registration path and the report of
//! each letter), `worker` (the claim loop), `rerun` (re-running cases), `review` (a
//! reviewer's decision), `watch` (the watched folder), `patience` (waiting out a locked
//! database or a full disk). This is where tokio
//! meets the synchronous stages: decoding runs on the blocking pool, OCR on the engine
//! threads, the rules on the blocking pool, and a bounded number of letters is in flight.
//!
//! Every letter goes through the durable queue (`store::queue`): its originals are stored,
//! a job is queued, and whoever claims the job (this process, or a `xinfang worker`
//! elsewhere) reads it and registers the case in the same transaction that marks the job
//! done. A process killed at any point leaves stored originals and a queued or running job,
//! never a half-registered case; the next worker takes the job up again.
//!
//! **Invariant:** an original is stored (fsynced, content-addressed) before anything else
//! happens to it, and the user's own files are only ever read.
//! **Invariant:** a document problem fails that letter alone (one-line error, original
//! quarantined with the reason); a system problem (database, disk) is retried while it is
//! passing (a locked database, a full disk) and otherwise stops the batch.

mod batch;
mod input;
pub mod manifest;
mod patience;
mod read;
mod register;
mod report;
pub mod rerun;
pub mod review;
pub mod watch;
pub mod worker;

pub use input::{expand_inputs, is_hidden_or_temp, not_a_letter, sorted_entries, Expanded, LetterFiles, LetterInput};
pub use patience::patiently;
pub use read::{ReadLetter, Reader};
pub use register::Registrar;
pub use report::LetterReport;

use crate::config::Config;
use crate::digest::sha256;
use crate::stages::ingest::{self, IngestError};
use crate::stages::ocr::{OcrError, OcrPool};
use crate::store::{
    ArchiveRecord, FileStore, FileStoreError, Job, JobKind, JobState, LetterPayload, NewCase, NewJob, QueuedOriginal,
    Store, StoreError, StoredOriginal, WorkerId,
};
use crate::understand::Understander;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use xinfang_models::{letter_text, CaseNo, InputFormat, Sha256Hex, Understanding};

/// Why one letter failed. Everything here is a problem of the document or of reading it.
#[derive(Debug, Error)]
pub enum LetterError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Document(#[from] IngestError),
    #[error("{0}")]
    Ocr(OcrError),
    #[error("gave up after {secs} s (limits.letter_timeout_secs)")]
    Timeout { secs: u64 },
    #[error("folder contains no files")]
    EmptyFolder,
    #[error("{kind}, not a letter")]
    NotAFile { kind: &'static str },
    #[error("decoding failed unexpectedly ({0}); the letter is kept for manual handling")]
    Crashed(String),
}

/// Problems of the system: the batch stops.
#[derive(Debug, Error)]
pub enum SystemError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Files(#[from] FileStoreError),
    #[error("ocr engines unavailable: {0}")]
    Ocr(OcrError),
    #[error("internal task failed: {0}")]
    Task(String),
}

impl SystemError {
    /// A passing condition (locked database, full disk) worth retrying.
    pub fn transient(&self) -> Option<&'static str> {
        match self {
            SystemError::Store(e) => e.transient(),
            SystemError::Files(e) if e.is_disk_full() => Some("the disk is full"),
            _ => None,
        }
    }
}

/// The bytes of a letter's files, read and stored.
struct LoadedLetter {
    letter_sha: Sha256Hex,
    is_folder: bool,
    files: Arc<LetterFiles>,
    originals: Vec<StoredOriginal>,
    /// The case an earlier version of its file was registered as.
    supersedes: Option<CaseNo>,
    /// What its archive says of a backfilled letter.
    archive: Option<ArchiveRecord>,
    /// Its share of the intake's read-ahead budget, given back when it is dropped.
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl LoadedLetter {
    /// A letter whose files are stored in `files_store` under the digests `shas`.
    fn new(files: LetterFiles, shas: Vec<Sha256Hex>, is_folder: bool, files_store: &FileStore) -> LoadedLetter {
        let originals: Vec<StoredOriginal> = files
            .iter()
            .zip(shas)
            .map(|((name, bytes), sha)| StoredOriginal {
                stored_path: files_store.original_path(&sha).display().to_string(),
                sha256: sha,
                file_name: name.clone(),
                byte_len: bytes.len() as u64,
                format: ingest::detect_format(bytes).unwrap_or(InputFormat::Text),
                encoding: None,
            })
            .collect();
        let letter_sha = letter_digest(originals.iter().map(|o| &o.sha256), is_folder);
        LoadedLetter {
            letter_sha,
            is_folder,
            files: Arc::new(files),
            originals,
            supersedes: None,
            archive: None,
            held: None,
        }
    }
}

/// What enqueuing a letter input did.
#[derive(Debug)]
pub enum Enqueued {
    /// The same letter (these bytes) is already a case.
    Duplicate { case_no: CaseNo, sha: Sha256Hex },
    /// Its originals are stored and its job queued (or it was queued already).
    Queued { job_id: String },
    /// Its files could not be read (they are where they were).
    Unreadable { error: LetterError },
}

/// A stored letter on its way to being read: decided already (a failure, a duplicate), its
/// job claimed by this process, or stored and waiting for a job someone else holds.
enum Admission {
    Decided(Result<Pending, SystemError>),
    Claimed(Job, LoadedLetter),
    Stored(LoadedLetter),
}

/// What admission found of a stored letter.
enum Found {
    Registered(CaseNo),
    Claimed(Job),
}

/// A letter claimed and read, pending its registration.
enum Pending {
    Duplicate {
        case_no: CaseNo,
        sha: Sha256Hex,
    },
    /// `loaded` is `None` when the files could not be read into memory.
    Failed {
        error: LetterError,
        loaded: Option<LoadedLetter>,
        job: Option<String>,
    },
    Ready {
        loaded: LoadedLetter,
        letter: ReadLetter,
        job: String,
        received_at: i64,
        understanding: Box<Understanding>,
    },
    /// Claimed too often (its workers died, or it kept failing for passing reasons): the
    /// letter is registered for manual handling.
    GiveUp {
        loaded: LoadedLetter,
        reason: String,
        job: String,
        received_at: i64,
    },
    /// Another worker finished the job first.
    Finished {
        job: Job,
    },
    /// The same bytes as an earlier letter of this batch (named by its source), which is
    /// registered first.
    SameAs {
        first: String,
        sha: Sha256Hex,
    },
}

/// The digest naming a letter: its file's digest, or for a folder letter the digest of its
/// files' digests in order.
fn letter_digest<'a>(files: impl IntoIterator<Item = &'a Sha256Hex>, is_folder: bool) -> Sha256Hex {
    let digests: Vec<&Sha256Hex> = files.into_iter().collect();
    match (is_folder, digests.as_slice()) {
        (false, [one]) => (*one).clone(),
        _ => {
            let joined: Vec<&str> = digests.iter().map(|d| d.as_str()).collect();
            sha256(format!("folder-letter\n{}", joined.join("\n")).as_bytes())
        }
    }
}

/// The queue id of a letter's job.
pub fn letter_job_id(sha: &Sha256Hex) -> String {
    format!("letter:{sha}")
}

/// Keeps a worker's leases alive while it lives (renewed every third of the lease).
struct LeaseKeeper(tokio::task::JoinHandle<()>);

impl LeaseKeeper {
    fn start(store: Store, worker: WorkerId, lease: Duration) -> LeaseKeeper {
        LeaseKeeper(tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            loop {
                tick.tick().await;
                // A busy store (a batch of re-runs holding SQLite's write lock, one after the
                // other) is waited out a little before the renewal is reported as failed;
                // the lease outlasts two more tries.
                let mut tries = 0;
                loop {
                    match store.renew_leases(&worker, lease.as_millis() as i64).await {
                        Err(e) if e.transient().is_some() && tries < 5 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) => {
                            tracing::warn!("cannot renew job leases: {e}");
                            break;
                        }
                        Ok(_) => break,
                    }
                }
            }
        }))
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Letters whose originals are stored ahead of their reading, at most: enough fsyncs in
/// flight together for the file system to commit them in groups (one at a time, a new
/// file's fsync on ext4 costs about 3 ms: 300 letters/s at best).
const STORE_AHEAD: usize = 64;

/// Read letters registered in one transaction, at most.
const GROUP: usize = 64;

/// Registers letters: enqueues them and works their jobs; re-runs cases; watches folders.
pub struct Intake {
    cfg: Arc<Config>,
    store: Store,
    files: FileStore,
    reader: Reader,
    understander: Arc<Understander>,
    registrar: Registrar,
    worker: WorkerId,
    ocr_engine: String,
    /// The read-ahead budget in KiB: the files of the letters read and not yet registered
    /// stay within it (twice `limits.max_letter_bytes`), however many letters are queued.
    ahead: Arc<tokio::sync::Semaphore>,
    ahead_kib: u32,
}

impl Intake {
    pub fn new(cfg: Arc<Config>, store: Store, pool: OcrPool, understander: Arc<Understander>) -> Intake {
        let files = FileStore::new(&cfg.store.data_dir);
        let reader = Reader::new(Arc::clone(&cfg), pool);
        let ocr_engine = crate::stages::ocr::engine_version(&cfg.ocr);
        let registrar = Registrar::new(store.clone(), Arc::clone(&understander), cfg.queue.clone());
        let ahead_kib = u32::try_from(cfg.limits.max_letter_bytes.saturating_mul(2) / 1024).unwrap_or(u32::MAX).max(1);
        let ahead = Arc::new(tokio::sync::Semaphore::new(ahead_kib as usize));
        Intake {
            cfg,
            store,
            files,
            reader,
            understander,
            registrar,
            worker: WorkerId::current(),
            ocr_engine,
            ahead,
            ahead_kib,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The version of the rules this intake decides with.
    pub fn rules_version(&self) -> &str {
        self.understander.rules_version()
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.cfg.queue.lease_secs)
    }

    /// Ingests `inputs` in order, calling `on_report` with each letter's report as soon as
    /// it is decided (in input order). Letters are read concurrently, a bounded number at a
    /// time, so that every engine has pages to work on.
    pub async fn run(
        &self,
        inputs: Vec<LetterInput>,
        mut on_report: impl FnMut(&LetterReport),
    ) -> Result<Vec<LetterReport>, SystemError> {
        use futures_util::stream::{self, StreamExt};
        let _leases = LeaseKeeper::start(self.store.clone(), self.worker.clone(), self.lease());
        self.recover().await?;
        let in_flight = self.reader.in_flight();
        // Originals are stored up to STORE_AHEAD letters ahead (within the read-ahead
        // budget of bytes); then, in input order, a letter whose bytes
        // an earlier letter of the batch has is set aside as its duplicate before anything
        // claims it (the earlier one is registered first: waiting for a later one's job
        // would wait forever, since reports are made in order).
        let mut first_of: HashMap<Sha256Hex, String> = HashMap::new();
        let mut pending = stream::iter(inputs)
            .map(|input| async move {
                let held = self.reserve(&input).await;
                let stored = self.store_input(&input).await.map(|r| {
                    r.map(|mut loaded| {
                        loaded.held = held;
                        loaded
                    })
                });
                (input, stored)
            })
            .buffered(in_flight.max(STORE_AHEAD))
            .map(move |(input, stored)| {
                let earlier = match &stored {
                    Ok(Ok(loaded)) => match first_of.get(&loaded.letter_sha) {
                        Some(first) => Some(first.clone()),
                        None => {
                            first_of.insert(loaded.letter_sha.clone(), input.source.clone());
                            None
                        }
                    },
                    _ => None,
                };
                let admission = match (stored, earlier) {
                    (Err(e), _) => Admission::Decided(Err(e)),
                    (Ok(Err(error)), _) => Admission::Decided(Ok(Pending::Failed { error, loaded: None, job: None })),
                    (Ok(Ok(loaded)), Some(first)) => {
                        Admission::Decided(Ok(Pending::SameAs { first, sha: loaded.letter_sha }))
                    }
                    (Ok(Ok(loaded)), None) => Admission::Stored(loaded),
                };
                (input, admission)
            })
            // The stored letters waiting together are looked up and queued (claimed by this
            // process) in one transaction.
            .ready_chunks(STORE_AHEAD)
            .then(|chunk| Box::pin(self.admit(chunk)))
            .flat_map(stream::iter)
            .map(|(input, admission)| async move {
                let pending = match admission {
                    Admission::Decided(pending) => pending,
                    Admission::Claimed(job, loaded) => self.prepare_claimed(job, loaded).await,
                    Admission::Stored(loaded) => self.prepare_stored(&input, loaded).await,
                };
                (input, pending)
            })
            // As many letters are read at once as are stored ahead: those with images wait
            // for one of the reader's decoding slots (in_flight), text letters need none.
            .buffered(in_flight.max(STORE_AHEAD));
        // Read letters reach the registration through a channel, so that letters go on being
        // read while a group is registered; the read letters waiting together (up to GROUP)
        // are registered in one transaction, in input order (group commit). A report is made
        // once its letter's transaction has committed.
        let (sender, mut receiver) = tokio::sync::mpsc::channel(GROUP);
        let produce = async move {
            while let Some(item) = pending.next().await {
                if sender.send(item).await.is_err() {
                    break;
                }
            }
        };
        let consume = async {
            let mut reports = Vec::new();
            let mut arrived = Vec::with_capacity(GROUP);
            let mut group: Vec<(LetterInput, NewCase, String)> = Vec::new();
            while receiver.recv_many(&mut arrived, GROUP).await > 0 {
                for (input, result) in arrived.drain(..) {
                    match result? {
                        Pending::Ready { loaded, letter, job, received_at, understanding } => {
                            let new = self.read_case(&input.source, loaded, letter, received_at, *understanding);
                            group.push((input, new, job));
                        }
                        other => {
                            // Whatever is not a read letter waits for the letters before it.
                            self.register_group(std::mem::take(&mut group), &mut reports, &mut on_report).await?;
                            let report = self.finish(&input.source, Some(&input), other).await?;
                            self.deliver(&input, report, &mut reports, &mut on_report).await?;
                        }
                    }
                }
                self.register_group(std::mem::take(&mut group), &mut reports, &mut on_report).await?;
            }
            Ok(reports)
        };
        let ((), reports) = tokio::join!(produce, consume);
        reports
    }

    /// Looks up and queues stored letters together: one query for those registered
    /// already, one transaction queuing the others' jobs claimed by this process. A letter
    /// whose job exists (another worker has it, or an earlier run left it) stays `Stored`,
    /// for `prepare_stored` to wait for.
    async fn admit(&self, chunk: Vec<(LetterInput, Admission)>) -> Vec<(LetterInput, Admission)> {
        let found = match self.admit_together(&chunk).await {
            Ok(found) => found,
            Err(e) => {
                // The batch stops at this error: the letters after it are not reported.
                let first = chunk.into_iter().next().map(|(input, _)| input);
                return first.map(|input| (input, Admission::Decided(Err(e)))).into_iter().collect();
            }
        };
        chunk
            .into_iter()
            .zip(found)
            .map(|((input, admission), found)| match (admission, found) {
                (Admission::Stored(loaded), Some(Found::Registered(case_no))) => {
                    (input, Admission::Decided(Ok(Pending::Duplicate { case_no, sha: loaded.letter_sha })))
                }
                (Admission::Stored(loaded), Some(Found::Claimed(job))) => (input, Admission::Claimed(job, loaded)),
                (other, _) => (input, other),
            })
            .collect()
    }

    /// What the store holds of each stored letter of a chunk (`None` for the others, and
    /// for a letter whose job exists already).
    async fn admit_together(&self, chunk: &[(LetterInput, Admission)]) -> Result<Vec<Option<Found>>, SystemError> {
        let stored: Vec<(usize, &LetterInput, &LoadedLetter)> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (input, a))| match a {
                Admission::Stored(loaded) => Some((i, input, loaded)),
                _ => None,
            })
            .collect();
        let mut found: Vec<Option<Found>> = chunk.iter().map(|_| None).collect();
        if stored.is_empty() {
            return Ok(found);
        }
        let shas: Vec<&Sha256Hex> = stored.iter().map(|(_, _, l)| &l.letter_sha).collect();
        let registered =
            patiently(&self.cfg.queue, "looking letters up", || async { Ok(self.store.find_letters(&shas).await?) })
                .await?;
        let mut new = Vec::new();
        let mut jobs = Vec::new();
        for (i, input, loaded) in &stored {
            match registered.get(loaded.letter_sha.as_str()) {
                Some(case_no) => found[*i] = Some(Found::Registered(case_no.clone())),
                None => {
                    new.push(*i);
                    jobs.push(self.letter_job(loaded, &input.source)?);
                }
            }
        }
        if jobs.is_empty() {
            return Ok(found);
        }
        let lease = self.lease().as_millis() as i64;
        let claimed = patiently(&self.cfg.queue, "queuing letters", || async {
            Ok(self.store.enqueue_claimed_many(&jobs, &self.worker, lease).await?)
        })
        .await?;
        for (i, job) in new.into_iter().zip(claimed) {
            found[i] = job.map(Found::Claimed);
        }
        Ok(found)
    }

    /// Registers a group of read letters and delivers their reports in order.
    async fn register_group(
        &self,
        group: Vec<(LetterInput, NewCase, String)>,
        reports: &mut Vec<LetterReport>,
        on_report: &mut impl FnMut(&LetterReport),
    ) -> Result<(), SystemError> {
        let letters: Vec<(&str, &NewCase, &str)> =
            group.iter().map(|(input, new, job)| (input.source.as_str(), new, job.as_str())).collect();
        let made = self.register_read_letters(&letters).await?;
        for ((input, _, _), report) in group.iter().zip(made) {
            self.deliver(input, report?, reports, on_report).await?;
        }
        Ok(())
    }

    /// Registers read letters (source, case, job) in one transaction and makes each one's
    /// report (an error: registered and committed, but
    /// its report could not be made).
    async fn register_read_letters(
        &self,
        group: &[(&str, &NewCase, &str)],
    ) -> Result<Vec<Result<LetterReport, SystemError>>, SystemError> {
        if group.is_empty() {
            return Ok(Vec::new());
        }
        let letters: Vec<(&NewCase, &str)> = group.iter().map(|(_, new, job)| (*new, *job)).collect();
        let registered = self.registrar.register_many(&letters).await?;
        let mut reports = Vec::with_capacity(group.len());
        for ((source, new, _), (registration, settled)) in group.iter().zip(registered) {
            reports.push(self.report_registered(source, new, registration, settled).await);
        }
        Ok(reports)
    }

    /// Completes a letter's report (a backfilled letter's class decided back then) and
    /// hands it on.
    async fn deliver(
        &self,
        input: &LetterInput,
        mut report: LetterReport,
        reports: &mut Vec<LetterReport>,
        on_report: &mut impl FnMut(&LetterReport),
    ) -> Result<(), SystemError> {
        if let Some(archive) = &input.archive {
            self.record_class_then(&mut report, archive).await?;
        }
        on_report(&report);
        reports.push(report);
        Ok(())
    }

    /// After a crash of an earlier process on this machine: its jobs are released at once
    /// and its half-written originals removed.
    async fn recover(&self) -> Result<(), SystemError> {
        let released = patiently(&self.cfg.queue, "releasing jobs of stopped workers", || async {
            Ok(self.store.release_dead_local_workers().await?)
        })
        .await?;
        let swept = self.files.sweep_stale_temporaries();
        if released + swept as u64 > 0 {
            tracing::info!(
                "recovered after a stopped process: {released} job(s) released, {swept} partial file(s) removed"
            );
        }
        Ok(())
    }

    /// Reads a letter input's files and stores them as originals (durably, before anything
    /// else happens to them).
    async fn store_input(&self, input: &LetterInput) -> Result<Result<LoadedLetter, LetterError>, SystemError> {
        let stored = self.store_files(input).await?;
        Ok(stored.map(|mut loaded| {
            loaded.archive = input.archive.clone();
            loaded
        }))
    }

    /// Reads a letter input's files and stores them as originals, on the blocking pool:
    /// several letters at once, since a new file's fsync costs milliseconds and those in
    /// flight together share the file system's journal commits. A passing failure (a full
    /// disk) is then waited out here, one file at a time.
    async fn store_files(&self, input: &LetterInput) -> Result<Result<LoadedLetter, LetterError>, SystemError> {
        let (cfg, files_store, owned) = (Arc::clone(&self.cfg), self.files.clone(), input.clone());
        let (files, stored) = tokio::task::spawn_blocking(move || {
            let files = input::read_files(&owned, &cfg)?;
            let stored: Result<Vec<Sha256Hex>, FileStoreError> =
                files.iter().map(|(_, bytes)| files_store.put_original(bytes).map(|(sha, _)| sha)).collect();
            Ok::<_, LetterError>((files, stored))
        })
        .await
        .map_err(|e| SystemError::Task(format!("storing originals: {e}")))?
        .map_or_else(|e| (Err(e), Ok(Vec::new())), |(f, s)| (Ok(f), s));
        let files = match files {
            Ok(f) => f,
            Err(error) => return Ok(Err(error)),
        };
        let shas = match stored {
            Ok(shas) => shas,
            Err(e) if e.is_disk_full() => {
                let mut shas = Vec::with_capacity(files.len());
                for (_, bytes) in &files {
                    let (sha, _) = patiently(&self.cfg.queue, "storing an original", || async {
                        Ok(self.files.put_original(bytes)?)
                    })
                    .await?;
                    shas.push(sha);
                }
                shas
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Ok(LoadedLetter::new(files, shas, input.is_folder, &self.files)))
    }

    /// Waits until the letter at `input` fits in the read-ahead budget (the bytes of the
    /// letters read but not yet registered), and holds its share until it is dropped.
    async fn reserve(&self, input: &LetterInput) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let bytes: u64 = input.paths().iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        let kib = u32::try_from(bytes / 1024 + 1).unwrap_or(u32::MAX).min(self.ahead_kib);
        Arc::clone(&self.ahead).acquire_many_owned(kib).await.ok()
    }

    /// The digest of the letter at `input` as its files are now (`None` when they cannot be
    /// read): what the watched folder compares with what it registered before it moves them.
    fn current_digest(&self, input: &LetterInput) -> Option<Sha256Hex> {
        let files = input::read_files(input, &self.cfg).ok()?;
        let digests: Vec<Sha256Hex> = files.iter().map(|(_, bytes)| sha256(bytes)).collect();
        Some(letter_digest(&digests, input.is_folder))
    }

    /// Queues a loaded letter's job (a no-op when it is queued already).
    async fn enqueue_loaded(&self, loaded: &LoadedLetter, source: &str) -> Result<String, SystemError> {
        let job = self.letter_job(loaded, source)?;
        patiently(&self.cfg.queue, "queuing a letter", || async { Ok(self.store.enqueue(&job).await?) }).await?;
        Ok(job.job_id)
    }

    /// The job of a loaded letter.
    fn letter_job(&self, loaded: &LoadedLetter, source: &str) -> Result<NewJob, SystemError> {
        let payload = LetterPayload {
            is_folder: loaded.is_folder,
            originals: loaded
                .originals
                .iter()
                .map(|o| QueuedOriginal {
                    sha256: o.sha256.clone(),
                    file_name: o.file_name.clone(),
                    byte_len: o.byte_len,
                })
                .collect(),
            supersedes: loaded.supersedes.as_ref().map(CaseNo::to_string),
            archive: loaded.archive.clone(),
        };
        Ok(NewJob {
            job_id: letter_job_id(&loaded.letter_sha),
            kind: JobKind::Letter,
            letter_sha256: Some(loaded.letter_sha.to_string()),
            case_no: None,
            source_name: source.to_string(),
            payload: serde_json::to_string(&payload).map_err(|e| SystemError::Task(e.to_string()))?,
            max_attempts: self.cfg.queue.max_attempts,
        })
    }

    /// Stores a letter's originals and queues its job, without reading it: the watched
    /// folder's first step (a worker does the rest). `supersedes` names the case an earlier
    /// version of the same file was registered as.
    pub async fn enqueue(&self, input: &LetterInput, supersedes: Option<&CaseNo>) -> Result<Enqueued, SystemError> {
        let mut loaded = match self.store_input(input).await? {
            Ok(l) => l,
            Err(error) => return Ok(Enqueued::Unreadable { error }),
        };
        loaded.supersedes = supersedes.cloned();
        if let Some(case_no) = self.store.find_letter(&loaded.letter_sha).await? {
            return Ok(Enqueued::Duplicate { case_no, sha: loaded.letter_sha });
        }
        Ok(Enqueued::Queued { job_id: self.enqueue_loaded(&loaded, &input.source).await? })
    }

    /// Queues a stored letter and claims its job, then reads it. When another worker holds
    /// the job, waits for it to finish (or for its lease to expire).
    async fn prepare_stored(&self, input: &LetterInput, loaded: LoadedLetter) -> Result<Pending, SystemError> {
        if let Some(existing) = self.store.find_letter(&loaded.letter_sha).await? {
            return Ok(Pending::Duplicate { case_no: existing, sha: loaded.letter_sha });
        }
        // Usually a new letter: queued already claimed, in one commit.
        let job = self.letter_job(&loaded, &input.source)?;
        let lease = self.lease().as_millis() as i64;
        if let Some(job) = patiently(&self.cfg.queue, "queuing a letter", || async {
            Ok(self.store.enqueue_claimed(&job, &self.worker, lease).await?)
        })
        .await?
        {
            return self.prepare_claimed(job, loaded).await;
        }
        let job_id = self.enqueue_loaded(&loaded, &input.source).await?;
        let poll = Duration::from_millis(self.cfg.queue.poll_ms);
        loop {
            let claimed = patiently(&self.cfg.queue, "claiming a job", || async {
                Ok(self.store.claim_job(&self.worker, &job_id, lease).await?)
            })
            .await?;
            if let Some(job) = claimed {
                return self.prepare_claimed(job, loaded).await;
            }
            match self.store.job(&job_id).await? {
                Some(job) if matches!(job.state, JobState::Done | JobState::Failed) => {
                    return Ok(Pending::Finished { job })
                }
                _ => {}
            }
            self.store.release_dead_local_workers().await?;
            tokio::time::sleep(poll).await;
        }
    }

    /// Loads a claimed job's letter from the file store (a worker's first step).
    async fn prepare_job(&self, job: Job) -> Result<Pending, SystemError> {
        let broken = |why: String| Pending::Failed {
            error: LetterError::Crashed(why),
            loaded: None,
            job: Some(job.job_id.clone()),
        };
        let payload: LetterPayload = match serde_json::from_str(&job.payload) {
            Ok(p) => p,
            Err(e) => return Ok(broken(format!("the job's payload is unreadable: {e}"))),
        };
        let mut files = Vec::with_capacity(payload.originals.len());
        for o in &payload.originals {
            match self.files.read_original(&o.sha256) {
                Ok(bytes) => files.push((o.file_name.clone(), bytes)),
                Err(e) => return Ok(broken(e.to_string())),
            }
        }
        let shas = payload.originals.iter().map(|o| o.sha256.clone()).collect();
        let mut loaded = LoadedLetter::new(files, shas, payload.is_folder, &self.files);
        loaded.supersedes = payload.supersedes.as_deref().and_then(|c| c.parse().ok());
        loaded.archive = payload.archive;
        if let Some(existing) = self.store.find_letter(&loaded.letter_sha).await? {
            self.store.finish_job(&job.job_id, &existing.to_string()).await?;
            return Ok(Pending::Duplicate { case_no: existing, sha: loaded.letter_sha });
        }
        self.prepare_claimed(job, loaded).await
    }

    /// Reads a letter whose job this worker holds; gives it up when it was claimed too often.
    async fn prepare_claimed(&self, job: Job, loaded: LoadedLetter) -> Result<Pending, SystemError> {
        // A backfilled letter was received when its archive says; any other when queued.
        let received_at = loaded.archive.as_ref().map_or(job.created_at, |a| a.received_at);
        if job.exhausted() {
            let reason = match &job.last_error {
                Some(e) => format!("gave up after {} attempts: {e}", job.max_attempts),
                None => format!("gave up after {} attempts: reading it stopped its worker each time", job.max_attempts),
            };
            return Ok(Pending::GiveUp { loaded, reason, job: job.job_id, received_at });
        }
        match self.reader.read(Arc::clone(&loaded.files)).await {
            Ok(letter) => {
                // The rules run here, for several letters at once; only the registration
                // (with the repeat lookup) is done one letter at a time.
                let understanding = self.understand(&job.source_name, &letter_text(&letter.pages), received_at).await;
                Ok(Pending::Ready { loaded, letter, job: job.job_id, received_at, understanding })
            }
            Err(LetterError::Ocr(e)) if e.is_system() => Err(SystemError::Ocr(e)),
            Err(error) => Ok(Pending::Failed { error, loaded: Some(loaded), job: Some(job.job_id) }),
        }
    }

    /// Runs the rules over a letter's text on the blocking pool. A bug in a rule must not
    /// lose the letter: it is then registered for review.
    async fn understand(&self, source: &str, text: &str, received_at: i64) -> Box<Understanding> {
        let u = Arc::clone(&self.understander);
        let text = text.to_string();
        let received = self.understander.receipt_day(received_at);
        match tokio::task::spawn_blocking(move || u.understand(&text, received)).await {
            Ok(u) => Box::new(u),
            Err(e) => {
                // Not the panic's message: it may quote the letter.
                tracing::error!(source = %source, panicked = e.is_panic(), "rules stage failed");
                Box::new(self.understander.undecided("internal error in the rules stage"))
            }
        }
    }
}

/// An intake over a fresh SQLite store in a temporary folder, with the shipped rules and one
/// OCR engine: what the child modules' tests run on.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub struct TestIntake {
        pub intake: Intake,
        pub pool: OcrPool,
        pub dir: tempfile::TempDir,
    }

    pub async fn intake(adjust: impl FnOnce(&mut Config)) -> TestIntake {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::builtin().expect("built-in config");
        cfg.store.data_dir = dir.path().join("data");
        adjust(&mut cfg);
        let store = Store::open(&cfg.default_database_url()).await.expect("store");
        let pool = OcrPool::start(&cfg.ocr, &cfg.limits, 1).expect("engine");
        let rules = cfg.catalogue().expect("rules");
        let understander = Arc::new(Understander::new(&rules).expect("stages"));
        TestIntake { intake: Intake::new(Arc::new(cfg), store, pool.clone(), understander), pool, dir }
    }

    /// A text letter written below the test's folder.
    pub fn letter(t: &TestIntake, rel: &str, text: &str) -> LetterInput {
        let path = t.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write letter");
        LetterInput::at(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_digest_depends_on_page_order() {
        let o = |b: &[u8]| StoredOriginal {
            sha256: sha256(b),
            file_name: String::new(),
            byte_len: 0,
            format: InputFormat::Png,
            encoding: None,
            stored_path: String::new(),
        };
        let (a, b) = (o(b"a"), o(b"b"));
        let ab = letter_digest([&a.sha256, &b.sha256], true);
        let ba = letter_digest([&b.sha256, &a.sha256], true);
        assert_ne!(ab, ba);
        assert_eq!(letter_digest([&a.sha256], false), sha256(b"a"));
    }
}

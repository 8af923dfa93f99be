//! The intake chain for a batch of letters: store each original, skip letters already
//! registered, decode, OCR the pages across the engines, normalise, decide what the letter is
//! (the understanding stages and a repeat lookup in the store), and register the case, in
//! input order. This is where tokio meets the synchronous stages: decoding runs on the
//! blocking pool, OCR on the engine threads, and a bounded number of letters is in flight.
//!
//! **Invariant:** an original is stored (fsynced, content-addressed) before anything else
//! happens to it, and the user's own files are only ever read.
//! **Invariant:** a document problem fails that letter alone (one-line error, original
//! quarantined with the reason); a system problem (database, disk) is retried while it is
//! passing (a locked database, a full disk) and otherwise stops the batch.
//!
//! Every letter goes through the durable queue (`store::queue`): its originals are stored,
//! a job is queued, and whoever claims the job (this process, or a `xinfang worker`
//! elsewhere) reads it and registers the case in the same transaction that marks the job
//! done. A process killed at any point leaves stored originals and a queued or running job,
//! never a half-registered case; the next worker takes the job up again.

use crate::config::{Config, QueueConfig};
use crate::stages::ingest::{self, IngestError, PageContent};
use crate::stages::normalize::normalize;
use crate::stages::ocr::{OcrError, OcrPool};
use crate::store::{
    sha256, Decided, FileStore, FileStoreError, Job, JobKind, JobState, LetterPayload, NewCase, NewJob, QueuedOriginal,
    Registration, RepeatLookup, Store, StoreError, StoredOriginal, WorkerId,
};
use crate::understand::Understander;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use xinfang_models::{
    letter_confidence, CaseNo, Deadline, Decision, HandlingLevel, IngestStatus, InputFormat, LetterClass, PageOrigin,
    PageText, Sha256Hex, Subject,
};

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

/// Runs a system operation again while it fails for a passing reason (a locked database, a
/// full disk), with backoff, saying so on stderr, for at most `queue.system_retry_secs`.
pub async fn patiently<T, F, Fut>(q: &QueueConfig, what: &str, mut op: F) -> Result<T, SystemError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SystemError>>,
{
    let start = Instant::now();
    let limit = Duration::from_secs(q.system_retry_secs);
    let mut delay = Duration::from_millis(250);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => match e.transient() {
                Some(why) if start.elapsed() + delay <= limit => {
                    tracing::warn!("{what}: {why}; retrying in {:.1} s ({e})", delay.as_secs_f32());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(8));
                }
                Some(why) => {
                    tracing::error!("{what}: {why}; gave up after {} s", start.elapsed().as_secs());
                    return Err(e);
                }
                None => return Err(e),
            },
        }
    }
}

/// One letter to ingest: a file, or a folder whose files are its pages in name order.
#[derive(Debug, Clone)]
pub struct LetterInput {
    /// The path as the user gave it (or as found when expanding a folder argument).
    pub source: String,
    pub path: PathBuf,
    pub is_folder: bool,
}

/// Expands command-line paths: a file is a letter; a folder argument is expanded in name
/// order into its files (one letter each) and sub-folders (one multi-page letter each).
/// Hidden files are skipped. A path that does not exist is kept, to fail with its reason.
pub fn expand_inputs(args: &[PathBuf]) -> Vec<LetterInput> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_dir() {
            for entry in sorted_entries(arg) {
                out.push(LetterInput { source: entry.display().to_string(), is_folder: entry.is_dir(), path: entry });
            }
        } else {
            out.push(LetterInput { source: arg.display().to_string(), path: arg.clone(), is_folder: false });
        }
    }
    out
}

/// Visible entries of a folder, sorted by name. Unreadable folders give no entries here and
/// fail later with their reason.
pub(crate) fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
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

/// What happened to one letter: one JSON object per letter with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct LetterReport {
    pub source: String,
    pub status: IngestStatus,
    pub case_no: Option<String>,
    pub sha256: Option<String>,
    pub format: Option<InputFormat>,
    pub pages: usize,
    pub ocr_confidence: Option<f32>,
    pub text: Option<String>,
    /// Whether a reviewer should look at the letter (blank or low-confidence pages).
    pub review: bool,
    /// Page flags, as `p<N>:<flag>`.
    pub flags: Vec<String>,
    pub error: Option<String>,
    pub quarantined: Option<String>,
    /// What the rules decided (absent for failed letters).
    pub class: Option<LetterClass>,
    pub in_scope: Option<bool>,
    pub sub_kind: Option<String>,
    pub named: Option<bool>,
    pub subjects: Vec<Subject>,
    pub handling_level: Option<HandlingLevel>,
    pub forward_to: Option<String>,
    pub repeat_of: Option<String>,
    pub new_facts_of: Option<String>,
    pub domains: Vec<String>,
    pub keywords: Vec<String>,
    pub copied_to: Vec<String>,
    pub score: Option<f32>,
    pub reasons: Vec<String>,
    pub deadlines: Vec<Deadline>,
}

impl LetterReport {
    fn new(source: &str, status: IngestStatus) -> LetterReport {
        LetterReport {
            source: source.to_string(),
            status,
            case_no: None,
            sha256: None,
            format: None,
            pages: 0,
            ocr_confidence: None,
            text: None,
            review: false,
            flags: Vec::new(),
            error: None,
            quarantined: None,
            class: None,
            in_scope: None,
            sub_kind: None,
            named: None,
            subjects: Vec::new(),
            handling_level: None,
            forward_to: None,
            repeat_of: None,
            new_facts_of: None,
            domains: Vec::new(),
            keywords: Vec::new(),
            copied_to: Vec::new(),
            score: None,
            reasons: Vec::new(),
            deadlines: Vec::new(),
        }
    }

    /// Copies a decision into the report.
    fn set_decision(&mut self, d: &Decision) {
        self.class = Some(d.class);
        self.in_scope = Some(d.in_scope);
        self.sub_kind.clone_from(&d.sub_kind);
        self.named = Some(d.named);
        self.subjects.clone_from(&d.subjects);
        self.handling_level = d.handling_level;
        self.forward_to.clone_from(&d.forward_to);
        self.repeat_of.clone_from(&d.repeat_of);
        self.new_facts_of.clone_from(&d.new_facts_of);
        self.domains.clone_from(&d.domains);
        self.keywords.clone_from(&d.keywords);
        self.copied_to.clone_from(&d.copied_to);
        self.score = Some(d.score);
        self.reasons.clone_from(&d.reasons);
        self.deadlines.clone_from(&d.deadlines);
        self.review |= d.review;
    }
}

/// A letter after reading and OCR, before registration.
pub struct ReadLetter {
    pub format: InputFormat,
    pub pages: Vec<PageText>,
}

/// The bytes of a letter's files, read and stored.
pub(crate) struct LoadedLetter {
    letter_sha: Sha256Hex,
    is_folder: bool,
    files: Arc<Vec<(String, Vec<u8>)>>,
    originals: Vec<StoredOriginal>,
}

/// What `enqueue` did with a letter input.
#[derive(Debug)]
pub enum Enqueued {
    /// The same letter is already a case.
    Duplicate { case_no: CaseNo },
    /// Its originals are stored and its job queued (or it was queued already).
    Queued { job_id: String },
    /// Its files could not be read (they are where they were).
    Unreadable { error: LetterError },
}

/// Outcome of the work done for a letter before its registration.
pub(crate) enum Prepared {
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
        understanding: Box<crate::understand::Understanding>,
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
}

/// Reads files and OCRs pages, without storing anything: shared by `ingest` and `ocr`.
#[derive(Clone)]
pub struct Reader {
    cfg: Arc<Config>,
    pool: OcrPool,
}

impl Reader {
    pub fn new(cfg: Arc<Config>, pool: OcrPool) -> Reader {
        Reader { cfg, pool }
    }

    /// Decodes the files of one letter (in order) and reads every page, OCR'ing images
    /// concurrently across the engines. Bounded by `limits.letter_timeout_secs`.
    pub async fn read(&self, files: Arc<Vec<(String, Vec<u8>)>>) -> Result<ReadLetter, LetterError> {
        let secs = self.cfg.limits.letter_timeout_secs;
        match tokio::time::timeout(Duration::from_secs(secs), self.read_unbounded(files)).await {
            Ok(r) => r,
            Err(_) => Err(LetterError::Timeout { secs }),
        }
    }

    async fn read_unbounded(&self, files: Arc<Vec<(String, Vec<u8>)>>) -> Result<ReadLetter, LetterError> {
        let limits = self.cfg.limits.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let bytes: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
            ingest::decode_letter(&bytes, &limits)
        })
        .await
        // The panic's own message is not repeated: it may quote the letter.
        .map_err(|e| LetterError::Crashed(if e.is_panic() { "a decoder panicked".into() } else { e.to_string() }))??;
        let format = decoded.first().map(|f| f.format).unwrap_or(InputFormat::Text);
        let contents: Vec<PageContent> = decoded.into_iter().flat_map(|f| f.pages).collect();
        let mut pending = Vec::with_capacity(contents.len());
        for (i, content) in contents.into_iter().enumerate() {
            let page_no = i as u32 + 1;
            let pool = self.pool.clone();
            pending.push(async move {
                match content {
                    PageContent::Image(regions) => pool.read(page_no, regions).await,
                    PageContent::TextLayer(t) => Ok(PageText::from_text(page_no, PageOrigin::TextLayer, normalize(&t))),
                    PageContent::Transcript(t) => {
                        Ok(PageText::from_text(page_no, PageOrigin::Transcript, normalize(&t)))
                    }
                    PageContent::Empty => Ok(PageText::from_text(page_no, PageOrigin::TextLayer, String::new())),
                }
            });
        }
        let pages = futures_util::future::join_all(pending)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(LetterError::Ocr)?;
        Ok(ReadLetter { format, pages })
    }
}

/// Reads the files of a letter input (a file, or a folder's files in name order).
fn read_files(input: &LetterInput, cfg: &Config) -> Result<Vec<(String, Vec<u8>)>, LetterError> {
    let paths = if input.is_folder {
        let files: Vec<PathBuf> = sorted_entries(&input.path).into_iter().filter(|p| p.is_file()).collect();
        if files.is_empty() {
            return Err(LetterError::EmptyFolder);
        }
        files
    } else {
        vec![input.path.clone()]
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

/// The digest naming a letter: its file's digest, or for a folder letter the digest of its
/// files' digests in order.
fn letter_digest(originals: &[StoredOriginal], is_folder: bool) -> Sha256Hex {
    match (is_folder, originals) {
        (false, [one]) => one.sha256.clone(),
        _ => {
            let joined: Vec<&str> = originals.iter().map(|o| o.sha256.as_str()).collect();
            sha256(format!("folder-letter\n{}", joined.join("\n")).as_bytes())
        }
    }
}

/// Takes the reporter's identity out of pages: their text and their word boxes.
pub(crate) fn redact_pages(u: &Understander, pages: &mut [PageText], identity: &xinfang_models::ReporterIdentity) {
    let identifying = identity.identifying_strings();
    if identifying.is_empty() {
        return;
    }
    for p in pages {
        p.text = u.redact(&p.text, identity);
        for w in &mut p.words {
            if identifying
                .iter()
                .any(|s| w.text.contains(s) || s.contains(w.text.as_str()) && w.text.chars().count() >= 2)
            {
                w.text = "〔举报人信息〕".into();
            }
        }
    }
}

/// The text of a letter: its pages' text, blank pages left out.
fn letter_text(letter: &ReadLetter) -> String {
    letter.pages.iter().map(|p| p.text.as_str()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n")
}

/// The local day a letter was received (its deadlines count from it).
pub(crate) fn receipt_day(received_at: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_millis(received_at)
        .map(|t| t.with_timezone(&chrono::Local).date_naive())
        .unwrap_or_else(|| chrono::Local::now().date_naive())
}

/// The queue id of a letter's job.
pub fn letter_job_id(sha: &Sha256Hex) -> String {
    format!("letter:{sha}")
}

/// Keeps a worker's leases alive while it lives (renewed every third of the lease).
pub(crate) struct LeaseKeeper(tokio::task::JoinHandle<()>);

impl LeaseKeeper {
    pub(crate) fn start(store: Store, worker: WorkerId, lease: Duration) -> LeaseKeeper {
        LeaseKeeper(tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            loop {
                tick.tick().await;
                if let Err(e) = store.renew_leases(&worker, lease.as_millis() as i64).await {
                    tracing::warn!("cannot renew job leases: {e}");
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

/// Registers letters: enqueues them and works their jobs.
pub struct Intake {
    cfg: Arc<Config>,
    store: Store,
    files: FileStore,
    reader: Reader,
    understander: Arc<Understander>,
    worker: WorkerId,
    ocr_engine: String,
}

impl Intake {
    pub fn new(cfg: Arc<Config>, store: Store, pool: OcrPool, understander: Arc<Understander>) -> Intake {
        let files = FileStore::new(&cfg.store.data_dir);
        let reader = Reader::new(Arc::clone(&cfg), pool.clone());
        let ocr_engine = crate::stages::ocr::engine_version(&cfg.ocr);
        Intake { cfg, store, files, reader, understander, worker: WorkerId::current(), ocr_engine }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn worker(&self) -> &WorkerId {
        &self.worker
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub(crate) fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The version of the rules this intake decides with.
    pub fn understander_version(&self) -> &str {
        self.understander.rules_version()
    }

    pub(crate) fn understander(&self) -> &Arc<Understander> {
        &self.understander
    }

    pub(crate) fn files(&self) -> &FileStore {
        &self.files
    }

    pub(crate) fn ocr_engine(&self) -> &str {
        &self.ocr_engine
    }

    pub(crate) fn lease(&self) -> Duration {
        Duration::from_secs(self.cfg.queue.lease_secs)
    }

    /// Letters read at once: enough that every OCR engine has pages to work on.
    pub(crate) fn in_flight(&self) -> usize {
        self.reader.pool.workers() + 1
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
        let mut prepared = stream::iter(inputs.into_iter().map(|input| async move {
            let result = self.prepare_input(&input).await;
            (input, result)
        }))
        .buffered(self.in_flight());
        let mut reports = Vec::new();
        while let Some((input, result)) = prepared.next().await {
            let report = self.finish(&input.source, Some(&input), result?).await?;
            on_report(&report);
            reports.push(report);
        }
        Ok(reports)
    }

    /// After a crash of an earlier process on this machine: its jobs are released at once
    /// and its half-written originals removed.
    pub(crate) async fn recover(&self) -> Result<(), SystemError> {
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
        let files = match read_files(input, &self.cfg) {
            Ok(f) => f,
            Err(error) => return Ok(Err(error)),
        };
        let mut originals = Vec::with_capacity(files.len());
        for (name, bytes) in &files {
            let (sha, path) =
                patiently(&self.cfg.queue, "storing an original", || async { Ok(self.files.put_original(bytes)?) })
                    .await?;
            let format = ingest::detect_format(bytes).unwrap_or(InputFormat::Text);
            originals.push(StoredOriginal {
                sha256: sha,
                file_name: name.clone(),
                byte_len: bytes.len() as u64,
                format,
                stored_path: path.display().to_string(),
            });
        }
        let letter_sha = letter_digest(&originals, input.is_folder);
        Ok(Ok(LoadedLetter { letter_sha, is_folder: input.is_folder, files: Arc::new(files), originals }))
    }

    /// Queues a loaded letter's job (a no-op when it is queued already).
    async fn enqueue_loaded(&self, loaded: &LoadedLetter, source: &str) -> Result<String, SystemError> {
        let job = self.letter_job(loaded, source)?;
        patiently(&self.cfg.queue, "queuing a letter", || async { Ok(self.store.enqueue(&job).await?) }).await?;
        Ok(job.job_id)
    }

    /// The job of a loaded letter.
    fn letter_job(&self, loaded: &LoadedLetter, source: &str) -> Result<NewJob, SystemError> {
        let job_id = letter_job_id(&loaded.letter_sha);
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
        };
        let job = NewJob {
            job_id: job_id.clone(),
            kind: JobKind::Letter,
            letter_sha256: Some(loaded.letter_sha.to_string()),
            case_no: None,
            source_name: source.to_string(),
            payload: serde_json::to_string(&payload).map_err(|e| SystemError::Task(e.to_string()))?,
            max_attempts: self.cfg.queue.max_attempts,
        };
        Ok(job)
    }

    /// Stores a letter's originals and queues its job, without reading it: the watched
    /// folder's first step (a worker does the rest).
    pub async fn enqueue(&self, input: &LetterInput) -> Result<Enqueued, SystemError> {
        let loaded = match self.store_input(input).await? {
            Ok(l) => l,
            Err(error) => return Ok(Enqueued::Unreadable { error }),
        };
        if let Some(case_no) = self.store.find_letter(&loaded.letter_sha).await? {
            return Ok(Enqueued::Duplicate { case_no });
        }
        Ok(Enqueued::Queued { job_id: self.enqueue_loaded(&loaded, &input.source).await? })
    }

    /// Stores the originals, queues the letter and claims its job, then reads it. When
    /// another worker holds the job, waits for it to finish (or for its lease to expire).
    async fn prepare_input(&self, input: &LetterInput) -> Result<Prepared, SystemError> {
        let loaded = match self.store_input(input).await? {
            Ok(l) => l,
            Err(error) => return Ok(Prepared::Failed { error, loaded: None, job: None }),
        };
        if let Some(existing) = self.store.find_letter(&loaded.letter_sha).await? {
            return Ok(Prepared::Duplicate { case_no: existing, sha: loaded.letter_sha });
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
                Ok(self.store.claim_job(&self.worker, &job_id, self.lease().as_millis() as i64).await?)
            })
            .await?;
            if let Some(job) = claimed {
                return self.prepare_claimed(job, loaded).await;
            }
            match self.store.job(&job_id).await? {
                Some(job) if matches!(job.state, JobState::Done | JobState::Failed) => {
                    return Ok(Prepared::Finished { job })
                }
                _ => {}
            }
            self.store.release_dead_local_workers().await?;
            tokio::time::sleep(poll).await;
        }
    }

    /// Loads a claimed job's letter from the file store (a worker's first step).
    async fn prepare_job(&self, job: Job) -> Result<Prepared, SystemError> {
        let broken = |why: String| Prepared::Failed {
            error: LetterError::Crashed(why),
            loaded: None,
            job: Some(job.job_id.clone()),
        };
        let payload: LetterPayload = match serde_json::from_str(&job.payload) {
            Ok(p) => p,
            Err(e) => return Ok(broken(format!("the job's payload is unreadable: {e}"))),
        };
        let mut files = Vec::with_capacity(payload.originals.len());
        let mut originals = Vec::with_capacity(payload.originals.len());
        for o in &payload.originals {
            let bytes = match self.files.read_original(&o.sha256) {
                Ok(b) => b,
                Err(e) => return Ok(broken(e.to_string())),
            };
            originals.push(StoredOriginal {
                sha256: o.sha256.clone(),
                file_name: o.file_name.clone(),
                byte_len: o.byte_len,
                format: ingest::detect_format(&bytes).unwrap_or(InputFormat::Text),
                stored_path: self.files.original_path(&o.sha256).display().to_string(),
            });
            files.push((o.file_name.clone(), bytes));
        }
        let letter_sha = letter_digest(&originals, payload.is_folder);
        let loaded = LoadedLetter { letter_sha, is_folder: payload.is_folder, files: Arc::new(files), originals };
        if let Some(existing) = self.store.find_letter(&loaded.letter_sha).await? {
            self.store.finish_job(&job.job_id, &existing.to_string()).await?;
            return Ok(Prepared::Duplicate { case_no: existing, sha: loaded.letter_sha });
        }
        self.prepare_claimed(job, loaded).await
    }

    /// Reads a letter whose job this worker holds; gives it up when it was claimed too often.
    async fn prepare_claimed(&self, job: Job, loaded: LoadedLetter) -> Result<Prepared, SystemError> {
        let received_at = job.created_at;
        if job.exhausted() {
            let reason = match &job.last_error {
                Some(e) => format!("gave up after {} attempts: {e}", job.max_attempts),
                None => format!("gave up after {} attempts: reading it stopped its worker each time", job.max_attempts),
            };
            return Ok(Prepared::GiveUp { loaded, reason, job: job.job_id, received_at });
        }
        match self.reader.read(Arc::clone(&loaded.files)).await {
            Ok(letter) => {
                // The rules run here, for several letters at once; only the registration
                // (with the repeat lookup) is done one letter at a time.
                let understanding = self.understand(&job.source_name, &letter, received_at).await;
                Ok(Prepared::Ready { loaded, letter, job: job.job_id, received_at, understanding })
            }
            Err(LetterError::Ocr(e)) if e.is_system() => Err(SystemError::Ocr(e)),
            Err(error) => Ok(Prepared::Failed { error, loaded: Some(loaded), job: Some(job.job_id) }),
        }
    }

    /// The report of a letter whose bytes are already registered: what the user sees of it is
    /// the case it duplicates.
    async fn duplicate_report(&self, source: &str, case_no: &CaseNo, sha: &str) -> Result<LetterReport, SystemError> {
        let mut r = LetterReport::new(source, IngestStatus::Duplicate);
        if let Some(existing) = self.store.summary(case_no).await? {
            r.pages = usize::try_from(existing.page_count).unwrap_or(0);
            r.ocr_confidence = existing.ocr_confidence.map(|c| c as f32);
            r.format = InputFormat::parse(&existing.format);
        }
        // The decision stored with the case is part of what the user sees of it.
        if let Some(d) = self.store.decision(case_no).await? {
            r.set_decision(&d);
        }
        r.case_no = Some(case_no.to_string());
        r.sha256 = Some(sha.to_string());
        Ok(r)
    }

    /// Quarantines a letter that cannot be read and ends its job as failed.
    async fn fail(
        &self,
        source: &str,
        input: Option<&LetterInput>,
        error: LetterError,
        loaded: Option<LoadedLetter>,
        job: Option<String>,
    ) -> Result<LetterReport, SystemError> {
        let mut r = LetterReport::new(source, IngestStatus::Failed);
        r.error = Some(error.to_string());
        r.sha256 = loaded.as_ref().map(|l| l.letter_sha.to_string());
        let reason = r.error.clone().unwrap_or_default();
        let q = match (loaded.as_ref(), input) {
            (Some(loaded), _) => {
                let files: Vec<(String, &[u8])> = loaded.files.iter().map(|(n, b)| (n.clone(), b.as_slice())).collect();
                Some(self.files.quarantine(&loaded.letter_sha, source, &files, loaded.is_folder, &reason)?)
            }
            // Not loaded (too large, unreadable): copy what exists without loading it.
            (None, Some(input)) if input.path.exists() => {
                let paths = if input.is_folder { sorted_entries(&input.path) } else { vec![input.path.clone()] };
                Some(self.files.quarantine_paths(source, &paths, input.is_folder, &reason)?)
            }
            _ => None,
        };
        r.quarantined = q.map(|q| q.display().to_string());
        if let Some(job) = job {
            let quarantined = r.quarantined.clone();
            patiently(&self.cfg.queue, "ending a failed job", || async {
                Ok(self.store.fail_job(&job, &reason, quarantined.as_deref()).await?)
            })
            .await?;
        }
        Ok(r)
    }

    /// Registers a read letter, or reports a duplicate or a failure (quarantining it).
    async fn finish(
        &self,
        source: &str,
        input: Option<&LetterInput>,
        prepared: Prepared,
    ) -> Result<LetterReport, SystemError> {
        match prepared {
            Prepared::Duplicate { case_no, sha } => self.duplicate_report(source, &case_no, sha.as_str()).await,
            Prepared::Finished { job } => match (job.state, job.result.as_deref()) {
                (JobState::Done, Some(case)) => match case.parse::<CaseNo>() {
                    Ok(case_no) => {
                        self.duplicate_report(source, &case_no, job.letter_sha256.as_deref().unwrap_or("")).await
                    }
                    Err(e) => Err(StoreError::Corrupt(format!("job {} result {case}: {e}", job.job_id)).into()),
                },
                _ => {
                    let mut r = LetterReport::new(source, IngestStatus::Failed);
                    r.error = job.last_error.clone().or_else(|| Some("failed in another worker".into()));
                    r.quarantined = job.result.clone();
                    r.sha256 = job.letter_sha256.clone();
                    Ok(r)
                }
            },
            Prepared::Failed { error, loaded, job } => self.fail(source, input, error, loaded, job).await,
            Prepared::GiveUp { loaded, reason, job, received_at } => {
                self.register_manual(source, loaded, &reason, &job, received_at).await
            }
            Prepared::Ready { loaded, letter, job, received_at, understanding } => {
                self.register_read(source, loaded, letter, &job, received_at, *understanding).await
            }
        }
    }

    /// Registers a letter the intake gave up reading, for manual handling: its originals,
    /// no text, flagged for review with the reason.
    async fn register_manual(
        &self,
        source: &str,
        loaded: LoadedLetter,
        reason: &str,
        job: &str,
        received_at: i64,
    ) -> Result<LetterReport, SystemError> {
        let format = loaded.originals.first().map_or(InputFormat::Text, |o| o.format);
        let new = NewCase {
            organ: self.cfg.numbering.organ_code.clone(),
            channel: self.cfg.numbering.channel,
            letter_sha256: loaded.letter_sha.clone(),
            source_name: source.to_string(),
            format,
            originals: loaded.originals,
            pages: Vec::new(),
            ocr_confidence: None,
            text: String::new(),
            needs_review: true,
            received_at,
            decided: None,
            ocr_engine: None,
            manual: Some(reason.to_string()),
        };
        let (registration, _) = patiently(&self.cfg.queue, "registering a letter", || async {
            Ok(self.store.register_letter(&new, None, Some(job)).await?)
        })
        .await?;
        let case_no = match registration {
            Registration::Registered(c) => c,
            Registration::Duplicate(c) => return self.duplicate_report(source, &c, loaded.letter_sha.as_str()).await,
        };
        let mut r = LetterReport::new(source, IngestStatus::Registered);
        r.case_no = Some(case_no.to_string());
        r.sha256 = Some(loaded.letter_sha.to_string());
        r.format = Some(format);
        r.review = true;
        r.flags = vec!["manual_handling".into()];
        r.error = Some(reason.to_string());
        Ok(r)
    }

    /// Decides a read letter and registers it (the repeat lookup happens inside the
    /// registration, under the registry lock).
    async fn register_read(
        &self,
        source: &str,
        loaded: LoadedLetter,
        mut letter: ReadLetter,
        job: &str,
        received_at: i64,
        understanding: crate::understand::Understanding,
    ) -> Result<LetterReport, SystemError> {
        let text = letter_text(&letter);
        let confidence = letter_confidence(&letter.pages);
        let received = receipt_day(received_at);
        // The reporter's identity lives in its own table, not in the letter's text.
        let text = self.understander.redact(&text, &understanding.identity);
        redact_pages(&self.understander, &mut letter.pages, &understanding.identity);
        let needs_review = letter.pages.iter().any(PageText::needs_review) || understanding.decision.review;
        let ocr_engine = letter.pages.iter().any(|p| p.origin == PageOrigin::Ocr).then(|| self.ocr_engine.clone());
        let new = NewCase {
            organ: self.cfg.numbering.organ_code.clone(),
            channel: self.cfg.numbering.channel,
            letter_sha256: loaded.letter_sha.clone(),
            source_name: source.to_string(),
            format: letter.format,
            originals: loaded.originals,
            pages: letter.pages,
            ocr_confidence: confidence,
            text: text.clone(),
            needs_review,
            received_at,
            decided: Some(Decided {
                decision: understanding.decision,
                identity: understanding.identity,
                fingerprint: understanding.fingerprint,
                keys: understanding.keys,
            }),
            ocr_engine,
            manual: None,
        };
        let understander = Arc::clone(&self.understander);
        let settle = move |d: &mut Decided, candidates: &[crate::stages::repeat::Candidate]| {
            understander.settle_decision(&mut d.decision, &d.fingerprint, candidates, received);
        };
        let limits = self.understander.repeat_rules().rules().limits();
        let lookup_keys = understanding.lookup_keys;
        let (registration, decided) = patiently(&self.cfg.queue, "registering a letter", || async {
            let lookup = RepeatLookup { keys: &lookup_keys, limits, settle: &settle };
            Ok(self.store.register_letter(&new, Some(lookup), Some(job)).await?)
        })
        .await?;
        let case_no = match registration {
            Registration::Registered(c) => c,
            // Registered by another letter with the same bytes (an earlier one of this batch,
            // or another worker).
            Registration::Duplicate(c) => return self.duplicate_report(source, &c, loaded.letter_sha.as_str()).await,
        };
        let mut r = LetterReport::new(source, IngestStatus::Registered);
        r.case_no = Some(case_no.to_string());
        r.sha256 = Some(loaded.letter_sha.to_string());
        r.format = Some(new.format);
        r.pages = new.pages.len();
        r.ocr_confidence = confidence;
        r.review = needs_review;
        if let Some(d) = &decided {
            r.set_decision(&d.decision);
            r.text = Some(if d.routing_stub() { String::new() } else { text });
        }
        r.flags = new
            .pages
            .iter()
            .flat_map(|p| p.flags.iter().map(move |f| format!("p{}:{}", p.page_no, f.as_str())))
            .collect();
        Ok(r)
    }

    /// Runs the rules over a read letter on the blocking pool. A bug in a rule must not lose
    /// the letter: it is then registered for review.
    async fn understand(
        &self,
        source: &str,
        letter: &ReadLetter,
        received_at: i64,
    ) -> Box<crate::understand::Understanding> {
        let u = Arc::clone(&self.understander);
        let text = letter_text(letter);
        let received = receipt_day(received_at);
        match tokio::task::spawn_blocking(move || u.understand(&text, received)).await {
            Ok(u) => Box::new(u),
            Err(e) => {
                // Not the panic's message: it may quote the letter.
                tracing::error!(source = %source, panicked = e.is_panic(), "rules stage failed");
                Box::new(self.understander.undecided("internal error in the rules stage"))
            }
        }
    }

    /// Works one claimed letter job to its end and reports it (the worker's unit of work).
    pub(crate) async fn prepare_letter_job(&self, job: Job) -> (String, Result<Prepared, SystemError>) {
        let source = job.source_name.clone();
        (source, self.prepare_job(job).await)
    }

    pub(crate) async fn finish_letter_job(
        &self,
        source: &str,
        prepared: Prepared,
    ) -> Result<LetterReport, SystemError> {
        self.finish(source, None, prepared).await
    }
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
    fn folder_digest_depends_on_page_order() {
        let o = |b: &[u8]| StoredOriginal {
            sha256: sha256(b),
            file_name: String::new(),
            byte_len: 0,
            format: InputFormat::Png,
            stored_path: String::new(),
        };
        let ab = letter_digest(&[o(b"a"), o(b"b")], true);
        let ba = letter_digest(&[o(b"b"), o(b"a")], true);
        assert_ne!(ab, ba);
        assert_eq!(letter_digest(&[o(b"a")], false), sha256(b"a"));
    }
}

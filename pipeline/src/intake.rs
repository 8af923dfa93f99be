//! The intake chain for a batch of letters: store each original, skip letters already
//! registered, decode, OCR the pages across the engines, normalise, decide what the letter is
//! (the understanding stages and a repeat lookup in the store), and register the case, in
//! input order. This is where tokio meets the synchronous stages: decoding runs on the
//! blocking pool, OCR on the engine threads, and a bounded number of letters is in flight.
//!
//! **Invariant:** an original is stored (fsynced, content-addressed) before anything else
//! happens to it, and the user's own files are only ever read.
//! **Invariant:** a document problem fails that letter alone (one-line error, original
//! quarantined with the reason); a system problem (database, disk) stops the batch.

use crate::config::Config;
use crate::stages::ingest::{self, IngestError, PageContent};
use crate::stages::normalize::normalize;
use crate::stages::ocr::{OcrError, OcrPool};
use crate::store::{
    sha256, Decided, FileStore, FileStoreError, NewCase, Registration, Store, StoreError, StoredOriginal,
};
use crate::understand::Understander;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
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
struct LoadedLetter {
    letter_sha: Sha256Hex,
    files: Arc<Vec<(String, Vec<u8>)>>,
    originals: Vec<StoredOriginal>,
}

/// Outcome of the work done for a letter before its registration.
enum Prepared {
    Duplicate {
        case_no: CaseNo,
        sha: Sha256Hex,
    },
    /// `loaded` is `None` when the files could not be read into memory.
    Failed {
        error: LetterError,
        loaded: Option<LoadedLetter>,
    },
    Ready {
        loaded: LoadedLetter,
        letter: ReadLetter,
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

/// Registers batches of letters.
pub struct Intake {
    cfg: Arc<Config>,
    store: Store,
    files: FileStore,
    reader: Reader,
    understander: Arc<Understander>,
}

impl Intake {
    pub fn new(cfg: Arc<Config>, store: Store, pool: OcrPool, understander: Arc<Understander>) -> Intake {
        let files = FileStore::new(&cfg.store.data_dir);
        let reader = Reader::new(Arc::clone(&cfg), pool.clone());
        Intake { cfg, store, files, reader, understander }
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
        let in_flight = self.reader.pool.workers() + 1;
        let mut prepared = stream::iter(inputs.into_iter().map(|input| async move {
            let result = self.prepare(&input).await;
            (input, result)
        }))
        .buffered(in_flight);
        let mut reports = Vec::new();
        while let Some((input, result)) = prepared.next().await {
            let report = self.finish(&input, result?).await?;
            on_report(&report);
            reports.push(report);
        }
        Ok(reports)
    }

    /// Stores the originals, then either finds the letter already registered or reads it.
    async fn prepare(&self, input: &LetterInput) -> Result<Prepared, SystemError> {
        let files = match read_files(input, &self.cfg) {
            Ok(f) => f,
            Err(error) => return Ok(Prepared::Failed { error, loaded: None }),
        };
        let mut originals = Vec::with_capacity(files.len());
        for (name, bytes) in &files {
            let (sha, path) = self.files.put_original(bytes)?;
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
        if let Some(existing) = self.store.find_letter(&letter_sha).await? {
            return Ok(Prepared::Duplicate { case_no: existing, sha: letter_sha });
        }
        let loaded = LoadedLetter { letter_sha, files: Arc::new(files), originals };
        match self.reader.read(Arc::clone(&loaded.files)).await {
            Ok(letter) => Ok(Prepared::Ready { loaded, letter }),
            Err(LetterError::Ocr(e @ (OcrError::Init { .. } | OcrError::Variable { .. } | OcrError::PoolClosed))) => {
                Err(SystemError::Ocr(e))
            }
            Err(error) => Ok(Prepared::Failed { error, loaded: Some(loaded) }),
        }
    }

    /// The report of a letter whose bytes are already registered: what the user sees of it is
    /// the case it duplicates.
    async fn duplicate_report(
        &self,
        input: &LetterInput,
        case_no: &CaseNo,
        sha: &Sha256Hex,
    ) -> Result<LetterReport, SystemError> {
        let mut r = LetterReport::new(&input.source, IngestStatus::Duplicate);
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

    /// Registers a read letter, or reports a duplicate or a failure (quarantining it).
    async fn finish(&self, input: &LetterInput, prepared: Prepared) -> Result<LetterReport, SystemError> {
        match prepared {
            Prepared::Duplicate { case_no, sha } => self.duplicate_report(input, &case_no, &sha).await,
            Prepared::Failed { error, loaded } => {
                let mut r = LetterReport::new(&input.source, IngestStatus::Failed);
                r.error = Some(error.to_string());
                r.sha256 = loaded.as_ref().map(|l| l.letter_sha.to_string());
                let reason = r.error.clone().unwrap_or_default();
                let q = match loaded.as_ref() {
                    Some(loaded) => {
                        let files: Vec<(String, &[u8])> =
                            loaded.files.iter().map(|(n, b)| (n.clone(), b.as_slice())).collect();
                        Some(self.files.quarantine(
                            &loaded.letter_sha,
                            &input.source,
                            &files,
                            input.is_folder,
                            &reason,
                        )?)
                    }
                    // Not loaded (too large, unreadable): copy what exists without loading it.
                    None if input.path.exists() => {
                        let paths =
                            if input.is_folder { sorted_entries(&input.path) } else { vec![input.path.clone()] };
                        Some(self.files.quarantine_paths(&input.source, &paths, input.is_folder, &reason)?)
                    }
                    None => None,
                };
                r.quarantined = q.map(|q| q.display().to_string());
                Ok(r)
            }
            Prepared::Ready { loaded, mut letter } => {
                let text = letter
                    .pages
                    .iter()
                    .map(|p| p.text.as_str())
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n\n");
                let confidence = letter_confidence(&letter.pages);
                let received_at = chrono::Utc::now().timestamp_millis();
                let received = chrono::Local::now().date_naive();
                // Decided in input order: earlier letters of this batch are already stored,
                // so a letter can repeat one given before it in the same run.
                let u = Arc::clone(&self.understander);
                let owned = text.clone();
                let mut understanding = match tokio::task::spawn_blocking(move || u.understand(&owned, received)).await
                {
                    Ok(u) => u,
                    // A bug in a rule must not lose the letter: it is registered for review.
                    Err(e) => {
                        // Not the panic's message: it may quote the letter.
                        tracing::error!(source = %input.source, panicked = e.is_panic(), "rules stage failed");
                        self.understander.undecided("internal error in the rules stage")
                    }
                };
                let per_key = self.understander.repeat_rules().rules().max_candidates_per_key;
                let candidates = self.store.repeat_candidates(&understanding.lookup_keys, per_key).await?;
                self.understander.settle(&mut understanding, &candidates, received);
                // The reporter's identity lives in its own table, not in the letter's text.
                let text = self.understander.redact(&text, &understanding.identity);
                for p in &mut letter.pages {
                    p.text = self.understander.redact(&p.text, &understanding.identity);
                    for w in &mut p.words {
                        if understanding
                            .identity
                            .identifying_strings()
                            .iter()
                            .any(|s| w.text.contains(s) || s.contains(w.text.as_str()) && w.text.chars().count() >= 2)
                        {
                            w.text = "〔举报人信息〕".into();
                        }
                    }
                }
                let needs_review = letter.pages.iter().any(PageText::needs_review) || understanding.decision.review;
                let decided = Decided {
                    decision: understanding.decision,
                    identity: understanding.identity,
                    fingerprint: understanding.fingerprint,
                    keys: understanding.keys,
                };
                let new = NewCase {
                    organ: self.cfg.numbering.organ_code.clone(),
                    channel: self.cfg.numbering.channel,
                    letter_sha256: loaded.letter_sha.clone(),
                    source_name: input.source.clone(),
                    format: letter.format,
                    originals: loaded.originals,
                    pages: letter.pages,
                    ocr_confidence: confidence,
                    text: text.clone(),
                    needs_review,
                    received_at,
                    decided: Some(decided),
                };
                let case_no = match self.store.register(&new).await? {
                    Registration::Registered(c) => c,
                    // Registered by an earlier letter of this batch with the same bytes.
                    Registration::Duplicate(c) => return self.duplicate_report(input, &c, &loaded.letter_sha).await,
                };
                let mut r = LetterReport::new(&input.source, IngestStatus::Registered);
                r.case_no = Some(case_no.to_string());
                r.sha256 = Some(loaded.letter_sha.to_string());
                r.format = Some(new.format);
                r.pages = new.pages.len();
                r.ocr_confidence = confidence;
                r.review = needs_review;
                if let Some(d) = &new.decided {
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
        }
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

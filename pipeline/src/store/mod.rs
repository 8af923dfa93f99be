//! The case store: sqlx over SQLite (embedded default) or PostgreSQL, chosen by URL, with
//! the migrations embedded in the binary; and the file store for originals and quarantine.
//! Only this module writes, to the database or to the data directory.
//!
//! **Invariant:** a case is registered in one transaction (sequence number, case row,
//! originals, pages, first event) or not at all.
//! **Invariant:** the store knows nothing of the stages: it keeps the `models` nouns the
//! rules made (decision, identity, fingerprint, keys) and hands back the candidates it finds;
//! what they mean is decided by the caller's `settle`.

mod archive;
mod deferred;
use deferred::Deferred;
pub mod fixtures;
mod originals;
mod queue;
mod runs;

pub use archive::ArchiveRecord;
pub use originals::{
    files_below, move_aside, quarantine_id, unread_tag, write_reason_beside, FileStore, FileStoreError,
};
pub use queue::{Job, JobKind, JobState, LetterPayload, NewJob, QueueCounts, QueuedOriginal, RerunPayload, WorkerId};
pub use runs::{
    CaseForRerun, CaseSelection, NotReviewable, Review, ReviewBase, ReviewSaved, RunOutcome, RunResult, SettleAt,
    StoredForRules,
};

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::sync::Arc;
use thiserror::Error;
use xinfang_models::{
    Candidate, CandidateLimits, CaseNo, CaseStatus, Channel, Decision, Fingerprint, InputFormat, LookupKey, PageText,
    ReporterIdentity, RunKind, Sha256Hex, Understanding,
};

/// Failures of the database: system problems, retried or reported, never blamed on a letter.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A passing condition worth retrying: the database is locked or busy, the disk under it
    /// is full, or the server cannot be reached. `None` for anything else.
    pub fn transient(&self) -> Option<&'static str> {
        use sqlx::migrate::MigrateError;
        let sqlx_err = match self {
            StoreError::Db(e)
            | StoreError::Open { source: e, .. }
            | StoreError::Migrate(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)) => e,
            _ => return None,
        };
        match sqlx_err {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let msg = db.message().to_ascii_lowercase();
                match code.as_str() {
                    // PostgreSQL: disk full; too many connections, starting up, serialisation
                    // failure, deadlock, lock not available.
                    "53100" => return Some("the database server's disk is full"),
                    "53300" | "57P03" | "40001" | "40P01" | "55P03" => return Some("the database server is busy"),
                    _ => {}
                }
                // SQLite: primary codes BUSY (5), LOCKED (6), FULL (13), with extended codes.
                // (PostgreSQL's five-character codes are never below 10000.)
                match code.parse::<i64>().ok().filter(|n| *n < 10_000).map(|n| n & 0xff) {
                    Some(5 | 6) => Some("the database is locked by another program"),
                    Some(13) => Some("the disk under the database is full"),
                    // IOERR: on a full disk SQLite often reports the write (or the growth of
                    // its shared-memory file) failing rather than FULL.
                    Some(10) => Some("the database cannot write to its disk (is the disk full?)"),
                    _ if msg.contains("database is locked") => Some("the database is locked by another program"),
                    _ if msg.contains("disk is full") => Some("the disk under the database is full"),
                    _ => None,
                }
            }
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                Some("the database cannot be reached")
            }
            _ => None,
        }
    }
}

/// An original file of a letter, already stored in the file store.
#[derive(Debug, Clone)]
pub struct StoredOriginal {
    pub sha256: Sha256Hex,
    pub file_name: String,
    pub byte_len: u64,
    pub format: InputFormat,
    /// The character encoding of a text original (`UTF-8`, `GB18030`, …).
    pub encoding: Option<String>,
    pub stored_path: String,
}

/// Everything needed to register a letter as a case.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub organ: String,
    pub channel: Channel,
    pub letter_sha256: Sha256Hex,
    pub source_name: String,
    pub format: InputFormat,
    pub originals: Vec<StoredOriginal>,
    pub pages: Vec<PageText>,
    pub ocr_confidence: Option<f32>,
    pub text: String,
    pub needs_review: bool,
    /// Unix milliseconds.
    pub received_at: i64,
    /// The organ's day of receipt (in its time zone): the case number takes its year.
    pub received_on: chrono::NaiveDate,
    /// What the archive says of a backfilled letter (its number, the class and status decided
    /// back then); the case's channel and date of receipt are already taken from it.
    pub archive: Option<ArchiveRecord>,
    /// What the rules made of the letter, when it went through them (before the repeat
    /// lookup, which happens inside the registration).
    pub understanding: Option<Understanding>,
    /// The OCR engine that read the pages (`None` for text), recorded with the run.
    pub ocr_engine: Option<String>,
    /// Registered for manual handling (the intake gave up reading it): status
    /// `manual_handling`, the reason in the first event.
    pub manual: Option<String>,
    /// The case an earlier version of this letter's file was registered as (the file changed
    /// after it was taken): that case is flagged for review and both say so in their history.
    pub supersedes: Option<CaseNo>,
}

/// Completes an understanding with the earlier letters found through its lookup keys: the
/// rules' part of a registration, passed in so that the store knows nothing of the rules.
pub type Settle<'a> = &'a (dyn Fn(&mut Understanding, &[Candidate]) + Sync);

/// How a registration looks up earlier letters on the same matter (through the
/// understanding's `lookup_keys`) and completes the decision with what it finds, inside the
/// registration's transaction.
#[derive(Clone, Copy)]
pub struct RepeatLookup<'a> {
    pub limits: CandidateLimits,
    pub settle: Settle<'a>,
}

/// The outcome of `register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Registered(CaseNo),
    /// The same letter was registered before, as this case.
    Duplicate(CaseNo),
}

/// A case as the ledger lists it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseSummary {
    pub case_no: String,
    pub source_name: String,
    pub format: String,
    pub page_count: i64,
    pub ocr_confidence: Option<f64>,
    pub status: CaseStatus,
    pub needs_review: bool,
    pub received_at: i64,
    pub chars: usize,
}

/// A case with its pages and history.
#[derive(Debug, Clone, Serialize)]
pub struct CaseDetail {
    pub summary: CaseSummary,
    pub letter_sha256: String,
    pub text: String,
    pub originals: Vec<(String, String)>,
    pub pages: Vec<PageText>,
    pub events: Vec<(i64, String, String, String)>,
}

/// The case store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where write transactions run (SQLite: one connection, see `open`).
    writer: AnyPool,
    is_postgres: bool,
    fingerprints: FingerprintCache,
    /// The last instant `next_instant` handed out.
    clock: Arc<std::sync::atomic::AtomicI64>,
}

/// Values per `IN (…)` list or multi-row statement: well under every backend's parameter
/// limit (SQLite 32,766, PostgreSQL 65,535).
pub(crate) const IN_LIST: usize = 400;

/// `$first, $first+1, …`: `n` numbered placeholders.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`), creating an SQLite file's folder
    /// if needed, and applies the embedded migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        if let Some(path) = sqlite_path(url) {
            if let Some(dir) = std::path::Path::new(&path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|source| StoreError::DataDir { path: dir.display().to_string(), source })?;
            }
        }
        let is_sqlite = url.starts_with("sqlite:");
        // A new SQLite file is created, as the default store's is, whatever the URL says.
        let url = if is_sqlite && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_string()
        };
        let options = || {
            AnyPoolOptions::new().after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        // A page cache of 64 MiB instead of SQLite's 2 MiB: an archive's repeat
                        // index is read through again and again by its lookups. Only a hint:
                        // should it fail (a full disk: the shared-memory file cannot grow),
                        // the statement that needs the disk says so.
                        if let Err(e) = sqlx::query("PRAGMA cache_size = -65536").execute(&mut *conn).await {
                            tracing::debug!("cannot enlarge SQLite's page cache: {e}");
                        }
                    }
                    Ok(())
                })
            })
        };
        let open_err = |source| StoreError::Open { url: display_url(&url), source };
        let pool = options().max_connections(if is_sqlite { 4 } else { 8 }).connect(&url).await.map_err(open_err)?;
        if is_sqlite {
            // WAL lets readers (list/show) work while a batch registers letters.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        sqlx::migrate!("pipeline/migrations").run(&pool).await?;
        // SQLite: every write transaction on one connection of its own. A connection's page
        // cache is thrown away whenever another connection wrote since its last
        // transaction; with writes spread over the pool, each registration read the repeat
        // index back through the kernel. (PostgreSQL: the one pool.)
        let writer = match is_sqlite {
            true => options().max_connections(1).connect(&url).await.map_err(open_err)?,
            false => pool.clone(),
        };
        let clock = Arc::new(std::sync::atomic::AtomicI64::new(0));
        Ok(Store { pool, writer, is_postgres: !is_sqlite, fingerprints: FingerprintCache::default(), clock })
    }

    /// The case already registered for this letter digest, if any.
    /// The cases registered with these letter digests, by digest.
    pub async fn find_letters(
        &self,
        shas: &[&Sha256Hex],
    ) -> Result<std::collections::HashMap<String, CaseNo>, StoreError> {
        let mut found = std::collections::HashMap::new();
        for chunk in shas.chunks(IN_LIST) {
            let sql = format!(
                "SELECT letter_sha256, case_no FROM cases WHERE letter_sha256 IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for sha in chunk {
                q = q.bind(sha.as_str());
            }
            for row in q.fetch_all(&self.pool).await? {
                found.insert(row.try_get("letter_sha256")?, parse_case_no(&row.try_get::<String, _>("case_no")?)?);
            }
        }
        Ok(found)
    }

    /// A time for a new row that is after every one this store handed out before: now, or
    /// a millisecond after the last (rows made in one millisecond keep their order).
    pub(crate) fn next_instant(&self) -> i64 {
        use std::sync::atomic::Ordering;
        let now = now_ms();
        let prev = self.clock.fetch_max(now, Ordering::SeqCst);
        if prev < now {
            return now;
        }
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub async fn find_letter(&self, sha: &Sha256Hex) -> Result<Option<CaseNo>, StoreError> {
        let row = sqlx::query("SELECT case_no FROM cases WHERE letter_sha256 = $1")
            .bind(sha.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| parse_case_no(&r.try_get::<String, _>("case_no")?)).transpose()
    }

    /// The ledger line of one case, if it exists.
    pub async fn summary(&self, case_no: &CaseNo) -> Result<Option<CaseSummary>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SUMMARY_COLUMNS} FROM cases WHERE case_no = $1"))
            .bind(case_no.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(summary).transpose()
    }

    /// Registers a letter as a new case with the next number for its organ, year and
    /// channel, in one transaction. A letter whose digest is already registered (also by a
    /// concurrent worker) is reported as a duplicate of that case.
    pub async fn register(&self, new: &NewCase) -> Result<Registration, StoreError> {
        Ok(self.register_letter(new, None, None).await?.0)
    }

    /// `register`, with the repeat lookup and the settling of the decision done inside the
    /// transaction, after the registry lock: two workers registering related letters at the
    /// same moment are serialised, so the later one sees the earlier one. The job, when
    /// given, is marked done in the same transaction. Returns the settled understanding.
    pub async fn register_letter(
        &self,
        new: &NewCase,
        lookup: Option<RepeatLookup<'_>>,
        job_id: Option<&str>,
    ) -> Result<(Registration, Option<Understanding>), StoreError> {
        match self.try_register(new, lookup, job_id).await {
            Ok(r) => Ok(r),
            Err(e) => match self.find_letter(&new.letter_sha256).await? {
                // Lost a race on the unique digest: the other registration stands.
                Some(existing) => {
                    if let Some(job) = job_id {
                        self.finish_job(job, &existing.to_string()).await?;
                    }
                    Ok((Registration::Duplicate(existing), None))
                }
                None => Err(e),
            },
        }
    }

    async fn try_register(
        &self,
        new: &NewCase,
        lookup: Option<RepeatLookup<'_>>,
        job_id: Option<&str>,
    ) -> Result<(Registration, Option<Understanding>), StoreError> {
        let cached = self.fingerprints.transaction();
        let mut tx = self.writer.begin().await?;
        take_registry_lock(&mut tx).await?;
        let done = register_in(&mut tx, &self.fingerprints, new, lookup, job_id, None).await?;
        tx.commit().await?;
        cached.committed();
        Ok(done)
    }
}

impl Store {
    /// Registers letters in one transaction under the registry lock (group commit), in
    /// order: each one's repeat lookup sees the ones before it, and a letter whose bytes an
    /// earlier one of the group has is its duplicate. Either every letter is registered and
    /// its job done, or (an error) none is.
    pub async fn register_letters(
        &self,
        letters: &[(&NewCase, &str)],
        limits: CandidateLimits,
        settle: SettleAt<'_>,
    ) -> Result<Vec<(Registration, Option<Understanding>)>, StoreError> {
        let cached = self.fingerprints.transaction();
        let mut tx = self.writer.begin().await?;
        take_registry_lock(&mut tx).await?;
        let mut done = Vec::with_capacity(letters.len());
        let mut later = Deferred::new(now_ms());
        for (new, job) in letters {
            let at = new.received_at;
            let one = |u: &mut Understanding, c: &[Candidate]| settle(at, u, c);
            let lookup = RepeatLookup { limits, settle: &one };
            done.push(register_in(&mut tx, &self.fingerprints, new, Some(lookup), Some(job), Some(&mut later)).await?);
        }
        later.flush(&mut tx).await?;
        tx.commit().await?;
        cached.committed();
        Ok(done)
    }
}

/// One registration inside the caller's transaction, which holds the registry lock (see
/// `Store::register_letter`).
async fn register_in(
    tx: &mut sqlx::AnyConnection,
    cache: &FingerprintCache,
    new: &NewCase,
    lookup: Option<RepeatLookup<'_>>,
    job_id: Option<&str>,
    mut deferred: Option<&mut Deferred>,
) -> Result<(Registration, Option<Understanding>), StoreError> {
    if let Some(row) = sqlx::query("SELECT case_no FROM cases WHERE letter_sha256 = $1")
        .bind(new.letter_sha256.as_str())
        .fetch_optional(&mut *tx)
        .await?
    {
        let existing = parse_case_no(&row.try_get::<String, _>("case_no")?)?;
        if let Some(job) = job_id {
            queue::mark_done(&mut *tx, job, &existing.to_string()).await?;
        }
        return Ok((Registration::Duplicate(existing), None));
    }
    let mut understood = new.understanding.clone();
    if let (Some(u), Some(l)) = (understood.as_mut(), lookup) {
        // A backfilled letter is compared with the letters received before it (an archive
        // may be backfilled after later letters came in); one received at the same moment
        // and registered first counts as before it.
        let before = new.archive.as_ref().map(|_| (new.received_at.saturating_add(1), ""));
        let candidates = repeat_candidates(&mut *tx, cache, &u.lookup_keys, l.limits, before).await?;
        (l.settle)(u, &candidates);
    }
    let now = deferred.as_ref().map_or_else(now_ms, |d| d.now());
    let year = chrono::Datelike::year(&new.received_on);
    let channel = new.channel.code().to_string();
    let stub = understood.as_ref().is_some_and(Understanding::routing_stub);
    // Intake registers; forwarding, filing a repeat and the rest are reviewers' acts.
    // A backfilled case is in the status its archive says it reached.
    let status = match (&new.manual, new.archive.as_ref().and_then(|a| a.status_then)) {
        (Some(_), _) => CaseStatus::ManualHandling,
        (None, Some(then)) => then,
        (None, None) => CaseStatus::Registered,
    };
    // The decision as settled (new facts found now, say) can send the letter to review.
    let needs_review = new.needs_review || understood.as_ref().is_some_and(|u| u.decision.review);
    let seq: i64 = sqlx::query(
        "INSERT INTO case_sequences (organ, year, channel, last_seq) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (organ, year, channel) DO UPDATE SET last_seq = case_sequences.last_seq + 1 \
             RETURNING last_seq",
    )
    .bind(&new.organ)
    .bind(i64::from(year))
    .bind(&channel)
    .fetch_one(&mut *tx)
    .await?
    .try_get("last_seq")?;
    let case_no = CaseNo {
        organ: new.organ.clone(),
        year,
        channel: new.channel,
        seq: u32::try_from(seq).map_err(|_| StoreError::Corrupt(format!("sequence {seq} out of range")))?,
    };
    let no = case_no.to_string();
    sqlx::query(
        "INSERT INTO cases (case_no, organ, year, channel, seq, letter_sha256, source_name, format, \
             page_count, ocr_confidence, text, status, needs_review, received_at, created_at, updated_at, \
             supersedes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&no)
    .bind(&new.organ)
    .bind(i64::from(year))
    .bind(&channel)
    .bind(seq)
    .bind(new.letter_sha256.as_str())
    .bind(&new.source_name)
    .bind(new.format.as_str())
    .bind(new.pages.len() as i64)
    .bind(new.ocr_confidence.map(f64::from))
    .bind(if stub { "" } else { new.text.as_str() })
    .bind(status.as_str())
    .bind(i64::from(needs_review))
    .bind(new.received_at)
    .bind(now)
    .bind(now)
    .bind(new.supersedes.as_ref().map(CaseNo::to_string))
    .execute(&mut *tx)
    .await?;
    // In a group, the rows no later letter of it reads wait for its end (`deferred`).
    if let Some(d) = deferred.as_mut() {
        for (i, o) in new.originals.iter().enumerate() {
            d.original(&no, i as i64 + 1, o);
        }
        for p in &new.pages {
            d.page(&no, p, stub);
        }
    } else {
        for (i, o) in new.originals.iter().enumerate() {
            sqlx::query(
                "INSERT INTO originals (sha256, byte_len, format, stored_path, first_seen_at, encoding) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(o.sha256.as_str())
            .bind(o.byte_len as i64)
            .bind(o.format.as_str())
            .bind(&o.stored_path)
            .bind(now)
            .bind(o.encoding.as_deref())
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO case_originals (case_no, ordinal, sha256, file_name) VALUES ($1, $2, $3, $4)")
                .bind(&no)
                .bind(i as i64 + 1)
                .bind(o.sha256.as_str())
                .bind(&o.file_name)
                .execute(&mut *tx)
                .await?;
        }
        for p in &new.pages {
            insert_page(&mut *tx, &no, p, stub).await?;
        }
    }
    let encodings: Vec<&str> = new.originals.iter().filter_map(|o| o.encoding.as_deref()).collect();
    let mut detail = format!("{} page(s), format {}", new.pages.len(), new.format);
    if !encodings.is_empty() {
        detail.push_str(&format!(" ({})", encodings.join(", ")));
    }
    if let Some(old) = &new.supersedes {
        detail.push_str(&format!("; new version of the file registered as {old}, which it supersedes"));
    }
    if let Some(reason) = &new.manual {
        detail.push_str(&format!("; manual handling: {reason}"));
    }
    if let Some(a) = &new.archive {
        archive::insert_archive(&mut *tx, &no, a).await?;
        detail.push_str(&archive::describe(a));
    }
    if let Some(d) = &understood {
        let none = Stored { identity: false, keys: Some(&std::collections::BTreeSet::new()), fingerprint: None };
        write_understanding(&mut *tx, cache, &no, d, new.received_at, now, none).await?;
        let run = runs::RunRecord {
            kind: RunKind::Intake,
            ocr_engine: new.ocr_engine.as_deref(),
            text: &new.text,
            decision: &d.decision,
            applied: true,
            differs: false,
        };
        match deferred.as_mut() {
            Some(later) => {
                later.decision(&no, &d.decision, deferred::decision_json(&d.decision)?);
                later.run(&no, run.first_row())?;
            }
            None => {
                runs::write_decision_row(&mut *tx, &no, &d.decision, now).await?;
                runs::insert_run(&mut *tx, &no, run, now).await?;
            }
        }
        let dd = &d.decision;
        detail.push_str(&format!(
            "; {} {}{}{}",
            dd.class.as_str(),
            dd.handling_level.map_or("", |l| l.as_str()),
            dd.repeat_of.as_ref().map_or(String::new(), |r| format!(", repeat of {r}")),
            if stub { ", routing stub only (上级)" } else { "" }
        ));
    }
    let action = if new.archive.is_some() && new.manual.is_none() { "backfilled" } else { status.as_str() };
    match deferred.as_mut() {
        Some(later) => later.event(&no, 1, "intake", action, detail),
        None => {
            sqlx::query(
                "INSERT INTO case_events (case_no, seq, at, actor, action, detail) VALUES ($1, 1, $2, $3, $4, $5)",
            )
            .bind(&no)
            .bind(now)
            .bind("intake")
            .bind(action)
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        }
    }
    if let Some(old) = &new.supersedes {
        let old = old.to_string();
        runs::flag_for_review(&mut *tx, &old, now).await?;
        let why = format!(
            "the file changed after it was registered; its new version is {no}: check which holds the whole letter"
        );
        runs::insert_event(&mut *tx, &old, "intake", "superseded", &why, now).await?;
    }
    match (job_id, deferred) {
        (Some(job), Some(later)) => later.letter_done(job, &no),
        (Some(job), None) => queue::mark_done(&mut *tx, job, &no).await?,
        (None, _) => {}
    }
    Ok((Registration::Registered(case_no), understood))
}

impl Store {
    /// The most recent cases, newest first.
    pub async fn list(&self, limit: i64) -> Result<Vec<CaseSummary>, StoreError> {
        self.summaries("ORDER BY received_at DESC, case_no DESC", limit).await
    }

    /// The cases waiting for a reviewer, the longest waiting first (received earliest).
    pub async fn review_queue(&self, limit: i64) -> Result<Vec<CaseSummary>, StoreError> {
        self.summaries("WHERE needs_review = 1 ORDER BY received_at, case_no", limit).await
    }

    /// The summaries of the first `limit` cases as `selection` (a WHERE and ORDER BY) picks them.
    async fn summaries(&self, selection: &str, limit: i64) -> Result<Vec<CaseSummary>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {SUMMARY_COLUMNS} FROM cases {selection} LIMIT $1"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(summary).collect()
    }

    /// A case with its originals, pages and events.
    pub async fn show(&self, case_no: &CaseNo) -> Result<Option<CaseDetail>, StoreError> {
        let no = case_no.to_string();
        let Some(row) = sqlx::query(&format!("SELECT {SUMMARY_COLUMNS}, letter_sha256 FROM cases WHERE case_no = $1"))
            .bind(&no)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let originals = sqlx::query("SELECT sha256, file_name FROM case_originals WHERE case_no = $1 ORDER BY ordinal")
            .bind(&no)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("sha256")?, r.try_get("file_name")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let pages = sqlx::query(
            "SELECT page_no, origin, text, confidence, rotation, skew_deg, flags, boxes FROM pages \
             WHERE case_no = $1 ORDER BY page_no",
        )
        .bind(&no)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(page_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let events = sqlx::query("SELECT at, actor, action, detail FROM case_events WHERE case_no = $1 ORDER BY seq")
            .bind(&no)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("at")?, r.try_get("actor")?, r.try_get("action")?, r.try_get("detail")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Some(CaseDetail {
            summary: summary(&row)?,
            letter_sha256: row.try_get("letter_sha256")?,
            text: row.try_get("text")?,
            originals,
            pages,
            events,
        }))
    }

    /// The decision stored for a case, if the rules decided it.
    pub async fn decision(&self, case_no: &CaseNo) -> Result<Option<Decision>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        stored_decision(&mut conn, "case_decisions", &case_no.to_string()).await
    }

    /// The reporter's identity of a case, for a reader whose role may see it; the read is
    /// recorded first (who, as what role, why, when).
    pub async fn read_identity(
        &self,
        case_no: &CaseNo,
        reader: &str,
        role: &str,
        purpose: &str,
    ) -> Result<Option<ReporterIdentity>, StoreError> {
        let no = case_no.to_string();
        // The read is recorded before the identity is read (a failed read still leaves its
        // record). Two statements, not a transaction: a transaction left open while its
        // caller waits (a worker reads cases ahead of the one it registers) would hold
        // SQLite's write lock against that registration.
        sqlx::query("INSERT INTO identity_reads (case_no, reader, role, purpose, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&no)
            .bind(reader)
            .bind(role)
            .bind(purpose)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        let row =
            sqlx::query("SELECT name, phone, id_number, address, unit FROM reporter_identities WHERE case_no = $1")
                .bind(&no)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(identity_from_row).transpose()
    }

    /// Number of registered cases.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM cases").fetch_one(&self.pool).await?.try_get("n")?)
    }

    /// Closes the pool, flushing SQLite's write-ahead log.
    pub async fn close(self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// What a case already has stored, as far as the writer knows: an identity, and its repeat
/// keys (`None`: unknown, replaced whatever they are; the same as the new ones: left).
pub(crate) struct Stored<'a> {
    pub identity: bool,
    pub keys: Option<&'a std::collections::BTreeSet<String>>,
    /// The stored fingerprint's root case and JSON, when read.
    pub fingerprint: Option<(&'a str, &'a str)>,
}

/// Makes an understanding the case's standing one, but for its decision row (which the
/// caller writes): the reporter's identity (kept when one is stored already), the
/// fingerprint and its index keys (replacing earlier ones, left as they are when the same).
/// Registration and re-runs both write through this; the caller says what it knows is
/// stored (`Stored`).
async fn write_understanding(
    conn: &mut sqlx::AnyConnection,
    cache: &FingerprintCache,
    no: &str,
    u: &Understanding,
    received_at: i64,
    now: i64,
    stored: Stored<'_>,
) -> Result<(), StoreError> {
    let Stored { identity: identity_stored, keys: stored_keys, fingerprint: stored_fingerprint } = stored;
    if !u.identity.is_empty() && !identity_stored {
        let id = &u.identity;
        sqlx::query(
            "INSERT INTO reporter_identities (case_no, name, phone, id_number, address, unit, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (case_no) DO NOTHING",
        )
        .bind(no)
        .bind(id.name.as_deref())
        .bind(id.phone.as_deref())
        .bind(id.id_number.as_deref())
        .bind(id.address.as_deref())
        .bind(id.unit.as_deref())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    let root = u.decision.repeat_of.clone().unwrap_or_else(|| no.to_string());
    let json = fingerprint_json(&u.fingerprint)?;
    // The same fingerprint of the same matter is left as it is (and its version with it, so
    // the lookups' caches keep it).
    if stored_fingerprint != Some((root.as_str(), json.as_str())) {
        insert_fingerprint(&mut *conn, cache, no, &root, &u.fingerprint, json).await?;
    }
    // A re-run whose keys are the ones stored (the same person, the same words) leaves them.
    let keys: std::collections::BTreeSet<String> = u.keys.iter().cloned().collect();
    if stored_keys == Some(&keys) {
        return Ok(());
    }
    if stored_keys.is_none_or(|k| !k.is_empty()) {
        sqlx::query("DELETE FROM repeat_keys WHERE case_no = $1").bind(no).execute(&mut *conn).await?;
    }
    insert_keys(&mut *conn, no, &u.keys, received_at).await
}

/// A fingerprint as `case_fingerprints` stores it.
fn fingerprint_json(fp: &Fingerprint) -> Result<String, StoreError> {
    serde_json::to_string(fp).map_err(|e| StoreError::Corrupt(format!("fingerprint: {e}")))
}

/// Writes (or replaces) a case's fingerprint, with the earliest case of its matter; `json`
/// is `fp` serialised (`fingerprint_json`).
async fn insert_fingerprint(
    conn: &mut sqlx::AnyConnection,
    cache: &FingerprintCache,
    no: &str,
    root: &str,
    fp: &Fingerprint,
    json: String,
) -> Result<(), StoreError> {
    let version: i64 = sqlx::query(
        "INSERT INTO case_fingerprints (case_no, root_case, fingerprint) VALUES ($1, $2, $3) \
         ON CONFLICT (case_no) DO UPDATE SET root_case = excluded.root_case, fingerprint = excluded.fingerprint, \
         version = case_fingerprints.version + 1 RETURNING version",
    )
    .bind(no)
    .bind(root)
    .bind(json)
    .fetch_one(conn)
    .await?
    .try_get("version")?;
    // Cached as written; the caller's `FingerprintCache::transaction` forgets it should the
    // transaction not commit.
    cache.put(no, version, root, fp);
    Ok(())
}

/// Writes a case's repeat-index keys in one statement (one round trip, not one per key).
async fn insert_keys(conn: &mut sqlx::AnyConnection, no: &str, keys: &[String], at: i64) -> Result<(), StoreError> {
    let keys: std::collections::BTreeSet<&String> = keys.iter().collect();
    if keys.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (0..keys.len()).map(|k| format!("(${}, $1, $2)", k + 3)).collect();
    let sql = format!(
        "INSERT INTO repeat_keys (key, case_no, at) VALUES {} ON CONFLICT (key, case_no) DO NOTHING",
        marks.join(", ")
    );
    let mut q = sqlx::query(&sql).bind(no).bind(at);
    for k in keys {
        q = q.bind(k.as_str());
    }
    q.execute(conn).await?;
    Ok(())
}

/// Earlier letters sharing any of `keys`, oldest first. Each key brings at most its
/// `limits.per_key` most recent letters (one statement, an index range per key); of those,
/// the `limits.total` letters with the most weight of shared keys (`key_weight`) are
/// compared. So a lookup reads a bounded number of index entries and fingerprints however
/// large the store and however common a key (a template's MinHash bands, a common post).
/// `before`, when given, keeps only letters received before that time and not the case
/// itself (a re-run compares a case with the letters that came before it).
async fn repeat_candidates(
    conn: &mut sqlx::AnyConnection,
    cache: &FingerprintCache,
    keys: &[LookupKey],
    limits: CandidateLimits,
    before: Option<(i64, &str)>,
) -> Result<Vec<Candidate>, StoreError> {
    let keys: std::collections::BTreeSet<&LookupKey> = keys.iter().collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let below = before.map_or(i64::MAX, |(t, _)| t);
    // Each key's most recent letters through the (key, at) index, weighed by the key and
    // summed per letter in the database: one round trip, and only the letters compared come
    // back (SQLite hands every row across a thread, so rows cost more than index reads).
    let parts: Vec<String> = (0..keys.len())
        .map(|i| {
            format!(
                "SELECT case_no, at, CAST(${w} AS INTEGER) AS w FROM (SELECT case_no, at FROM repeat_keys \
                 WHERE key = ${k} AND at < $1 ORDER BY at DESC LIMIT $2) AS k{i}",
                k = 2 * i + 5,
                w = 2 * i + 6
            )
        })
        .collect();
    // The fingerprints' versions come back with the ranking: a fingerprint read before is
    // taken from `cache` when its version is the same, and only the others are read again.
    // One row back, the letters listed in it: SQLite's driver hands every row across a
    // thread, so forty rows cost forty hand-offs.
    let agg = if conn.backend_name() == "PostgreSQL" { "string_agg" } else { "group_concat" };
    let sql = format!(
        "SELECT {agg}(s.case_no || ' ' || s.at || ' ' || f.version, ',') AS list FROM (SELECT case_no, SUM(w) AS weight, \
         MAX(at) AS at FROM ({}) AS shared WHERE case_no <> $3 GROUP BY case_no ORDER BY weight DESC, at DESC, case_no \
         LIMIT $4) AS s JOIN case_fingerprints f ON f.case_no = s.case_no",
        parts.join(" UNION ALL ")
    );
    let this = before.map_or("", |(_, c)| c);
    let mut q = sqlx::query(&sql).bind(below).bind(i64::from(limits.per_key)).bind(this).bind(i64::from(limits.total));
    for k in &keys {
        q = q.bind(k.key.as_str()).bind(i64::from(k.weight));
    }
    let list: Option<String> = q.fetch_one(&mut *conn).await?.try_get("list")?;
    let mut out = Vec::new();
    let mut missing: Vec<(String, i64)> = Vec::new();
    {
        let mut cached = cache.lock();
        for item in list.as_deref().unwrap_or("").split(',').filter(|i| !i.is_empty()) {
            let mut f = item.split(' ');
            let (Some(case_no), Some(at), Some(version)) = (f.next(), f.next(), f.next()) else {
                return Err(StoreError::Corrupt(format!("repeat lookup row {item}")));
            };
            let bad = || StoreError::Corrupt(format!("repeat lookup row {item}"));
            let at: i64 = at.parse().map_err(|_| bad())?;
            let version: i64 = version.parse().map_err(|_| bad())?;
            match cached.get(case_no, version) {
                Some(c) => out.push((
                    at,
                    Candidate {
                        case_no: case_no.to_string(),
                        root: c.root.clone(),
                        fingerprint: c.fingerprint.clone(),
                    },
                )),
                None => missing.push((case_no.to_string(), at)),
            }
        }
    }
    let at_of: std::collections::HashMap<&str, i64> = missing.iter().map(|(c, at)| (c.as_str(), *at)).collect();
    for chunk in missing.chunks(IN_LIST) {
        let sql = format!(
            "SELECT case_no, root_case, fingerprint, version FROM case_fingerprints WHERE case_no IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for (case_no, _) in chunk {
            q = q.bind(case_no.as_str());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let case_no: String = row.try_get("case_no")?;
            let fingerprint: Fingerprint = serde_json::from_str(&row.try_get::<String, _>("fingerprint")?)
                .map_err(|e| StoreError::Corrupt(format!("fingerprint of {case_no}: {e}")))?;
            let root: String = row.try_get("root_case")?;
            cache.put(&case_no, row.try_get("version")?, &root, &fingerprint);
            let at = at_of.get(case_no.as_str()).copied().unwrap_or_default();
            out.push((at, Candidate { case_no, root, fingerprint }));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.case_no.cmp(&b.1.case_no)));
    Ok(out.into_iter().map(|(_, c)| c).collect())
}

/// Fingerprints read by this process, by case, with the version they were read at (bumped
/// at every write of a fingerprint, by any process), so that a repeat lookup reads and parses
/// again only those that changed or were not read yet. Bounded: two generations of at most
/// `GENERATION` entries (about 2 KiB each); when the newer is full the older is dropped, so
/// the fingerprints lookups keep asking for stay.
#[derive(Clone, Default)]
pub(crate) struct FingerprintCache(std::sync::Arc<std::sync::Mutex<Generations>>);

#[derive(Default)]
pub(crate) struct Generations {
    new: std::collections::HashMap<String, CachedFingerprint>,
    old: std::collections::HashMap<String, CachedFingerprint>,
}

impl Generations {
    /// The entry of `case_no` at `version` (moved to the newer generation when found in the
    /// older one).
    fn get(&mut self, case_no: &str, version: i64) -> Option<&CachedFingerprint> {
        if !self.new.contains_key(case_no) {
            let found = self.old.remove(case_no)?;
            self.insert(case_no.to_string(), found);
        }
        self.new.get(case_no).filter(|c| c.version == version)
    }

    fn insert(&mut self, case_no: String, entry: CachedFingerprint) {
        if self.new.len() >= FingerprintCache::GENERATION {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(case_no, entry);
    }

    fn clear(&mut self) {
        self.new.clear();
        self.old.clear();
    }
}

/// See `FingerprintCache::transaction`.
pub(crate) struct CacheTransaction<'a> {
    cache: &'a FingerprintCache,
    committed: bool,
}

impl CacheTransaction<'_> {
    fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for CacheTransaction<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.cache.lock().clear();
        }
    }
}

pub(crate) struct CachedFingerprint {
    version: i64,
    root: String,
    fingerprint: Fingerprint,
}

impl FingerprintCache {
    /// Entries per generation.
    const GENERATION: usize = 25_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps hold no invariant a panicking holder could break.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Empties the cache when dropped before `committed` is called: what a transaction
    /// that rolled back put in it (a version the store does not hold) is never used.
    fn transaction(&self) -> CacheTransaction<'_> {
        CacheTransaction { cache: self, committed: false }
    }

    fn put(&self, case_no: &str, version: i64, root: &str, fingerprint: &Fingerprint) {
        let entry = CachedFingerprint { version, root: root.to_string(), fingerprint: fingerprint.clone() };
        self.lock().insert(case_no.to_string(), entry);
    }
}

/// Writes one page row; a routing stub's page keeps no text and no boxes.
/// A page's word and line boxes as stored (none for a routing stub).
fn page_boxes(p: &PageText, stub: bool) -> String {
    if stub {
        serde_json::json!({ "words": [], "lines": [] }).to_string()
    } else {
        serde_json::json!({ "words": p.words, "lines": p.lines }).to_string()
    }
}

async fn insert_page(conn: &mut sqlx::AnyConnection, no: &str, p: &PageText, stub: bool) -> Result<(), StoreError> {
    let flags: Vec<&str> = p.flags.iter().map(|f| f.as_str()).collect();
    let boxes = page_boxes(p, stub);
    sqlx::query(
        "INSERT INTO pages (case_no, page_no, origin, text, confidence, rotation, skew_deg, flags, boxes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(no)
    .bind(i64::from(p.page_no))
    .bind(p.origin.as_str())
    .bind(if stub { "" } else { p.text.as_str() })
    .bind(p.confidence.map(f64::from))
    .bind(i64::from(p.rotation))
    .bind(f64::from(p.skew_deg))
    .bind(flags.join(","))
    .bind(boxes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the process `pid` of this machine has ended (never true for this process): its
/// jobs and half-written files can be taken over without waiting.
fn local_process_gone(pid: i32) -> bool {
    if pid == std::process::id() as i32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// A decision stored as JSON in `table` (`case_decisions` or `case_reviews`) for a case.
async fn stored_decision(
    conn: &mut sqlx::AnyConnection,
    table: &str,
    no: &str,
) -> Result<Option<Decision>, StoreError> {
    stored_decision_json(conn, table, no)
        .await?
        .map(|json| serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("{table} of {no}: {e}"))))
        .transpose()
}

/// A case's decision in `table` (`case_decisions`, `case_reviews`) as stored, JSON.
async fn stored_decision_json(
    conn: &mut sqlx::AnyConnection,
    table: &str,
    no: &str,
) -> Result<Option<String>, StoreError> {
    let row =
        sqlx::query(&format!("SELECT decision FROM {table} WHERE case_no = $1")).bind(no).fetch_optional(conn).await?;
    Ok(row.map(|r| r.try_get("decision")).transpose()?)
}

/// Serialises registrations and re-runs across workers (see migration 0003).
async fn take_registry_lock(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE registry_lock SET version = version + 1 WHERE id = 1").execute(conn).await?;
    Ok(())
}

fn parse_case_no(s: &str) -> Result<CaseNo, StoreError> {
    s.parse().map_err(|e: xinfang_models::CaseNoError| StoreError::Corrupt(e.to_string()))
}

/// The columns `summary` reads.
const SUMMARY_COLUMNS: &str =
    "case_no, source_name, format, page_count, ocr_confidence, status, needs_review, received_at, text";

fn summary(r: &AnyRow) -> Result<CaseSummary, StoreError> {
    let text: String = r.try_get("text")?;
    Ok(CaseSummary {
        case_no: r.try_get("case_no")?,
        source_name: r.try_get("source_name")?,
        format: r.try_get("format")?,
        page_count: r.try_get("page_count")?,
        ocr_confidence: r.try_get("ocr_confidence")?,
        status: {
            let s: String = r.try_get("status")?;
            CaseStatus::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("case status {s}")))?
        },
        needs_review: r.try_get::<i64, _>("needs_review")? != 0,
        received_at: r.try_get("received_at")?,
        chars: text.chars().filter(|c| !c.is_whitespace()).count(),
    })
}

fn identity_from_row(r: &AnyRow) -> Result<ReporterIdentity, StoreError> {
    Ok(ReporterIdentity {
        name: r.try_get("name")?,
        phone: r.try_get("phone")?,
        id_number: r.try_get("id_number")?,
        address: r.try_get("address")?,
        unit: r.try_get("unit")?,
    })
}

fn page_from_row(r: &AnyRow) -> Result<PageText, StoreError> {
    use xinfang_models::{PageFlag, PageOrigin};
    let origin = match r.try_get::<String, _>("origin")?.as_str() {
        "ocr" => PageOrigin::Ocr,
        "text_layer" => PageOrigin::TextLayer,
        "transcript" => PageOrigin::Transcript,
        other => return Err(StoreError::Corrupt(format!("page origin {other}"))),
    };
    let flags = r
        .try_get::<String, _>("flags")?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|f| match f {
            "blank" => Ok(PageFlag::Blank),
            "low_confidence" => Ok(PageFlag::LowConfidence),
            other => Err(StoreError::Corrupt(format!("page flag {other}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    #[derive(serde::Deserialize)]
    struct Boxes {
        words: Vec<xinfang_models::WordBox>,
        lines: Vec<xinfang_models::LineBox>,
    }
    let boxes: Boxes = serde_json::from_str(&r.try_get::<String, _>("boxes")?)
        .map_err(|e| StoreError::Corrupt(format!("page boxes: {e}")))?;
    Ok(PageText {
        page_no: u32::try_from(r.try_get::<i64, _>("page_no")?).unwrap_or(0),
        origin,
        text: r.try_get("text")?,
        confidence: r.try_get::<Option<f64>, _>("confidence")?.map(|c| c as f32),
        rotation: u16::try_from(r.try_get::<i64, _>("rotation")?).unwrap_or(0),
        skew_deg: r.try_get::<f64, _>("skew_deg")? as f32,
        words: boxes.words,
        lines: boxes.lines,
        flags,
    })
}

/// The file path of an SQLite URL.
fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

/// A URL safe to print: the password, if any, replaced.
pub fn display_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &creds[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(display_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(display_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn sqlite_paths_are_found() {
        assert_eq!(sqlite_path("sqlite://data/x.db?mode=rwc").as_deref(), Some("data/x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}

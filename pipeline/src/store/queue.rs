//! The durable job queue, in the store itself so that it works wherever the store does
//! (SQLite on one machine, PostgreSQL shared by workers on several).
//!
//! A job is `queued` → `running` (a worker id and a lease) → `done` or `failed`. A worker
//! renews the leases of its jobs while it works; a job whose lease expired (its worker died)
//! is claimed again by anyone. Every claim counts as an attempt: a job claimed more than
//! `max_attempts` times is given up (the intake then registers the letter for manual
//! handling). Claims on PostgreSQL use `FOR UPDATE SKIP LOCKED`, so workers never wait for
//! each other's rows; SQLite serialises writers, which gives the same outcome.
//!
//! **Invariant:** job ids are deterministic (`letter:<sha256>`, `rerun:<key>:<case_no>`), so
//! enqueuing the same letter or re-run twice is a no-op, whoever does it.

use super::{now_ms, placeholders, Store, StoreError, IN_LIST};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
pub use xinfang_models::{JobKind, JobState};

/// One original of a queued letter: enough to find its bytes in the file store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedOriginal {
    pub sha256: xinfang_models::Sha256Hex,
    pub file_name: String,
    pub byte_len: u64,
}

/// What a letter job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LetterPayload {
    pub is_folder: bool,
    pub originals: Vec<QueuedOriginal>,
    /// The case an earlier version of the same file was registered as (the watched folder
    /// saw the file change after it took it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    /// What the archive a backfilled letter comes from says of it (its date of receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<super::ArchiveRecord>,
}

/// What a re-run job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RerunPayload {
    /// Re-read the originals with OCR (otherwise only the rules run again).
    pub ocr: bool,
    /// The key of the re-run this job belongs to (rules version, engine, mode).
    pub run_key: String,
}

/// A job to add to the queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub job_id: String,
    pub kind: JobKind,
    pub letter_sha256: Option<String>,
    pub case_no: Option<String>,
    pub source_name: String,
    pub payload: String,
    pub max_attempts: u32,
}

/// A job as claimed by a worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub job_id: String,
    pub kind: JobKind,
    pub letter_sha256: Option<String>,
    pub case_no: Option<String>,
    pub source_name: String,
    pub payload: String,
    pub state: JobState,
    /// Claims so far, this one included.
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: Option<String>,
    pub result: Option<String>,
    /// When the job was first queued (Unix ms): for a letter, when it was received.
    pub created_at: i64,
}

impl Job {
    /// Claimed more often than allowed: its earlier workers died or it kept failing.
    pub fn exhausted(&self) -> bool {
        self.attempts > self.max_attempts
    }
}

/// Jobs per state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueCounts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
}

impl QueueCounts {
    /// Nothing left to do.
    pub fn drained(&self) -> bool {
        self.queued == 0 && self.running == 0
    }
}

/// Identifies a worker process: host, process id and a random part, so that a worker on
/// this host whose process is gone can be recognised as dead without waiting for its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerId(String);

impl WorkerId {
    /// The id of this process.
    pub fn current() -> WorkerId {
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        WorkerId(format!("{}/{}/{:x}-{serial}", host_name(), std::process::id(), nanos))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For a worker id of this host, whether its process has ended.
    fn is_dead_local(id: &str) -> bool {
        let mut parts = id.split('/');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else { return false };
        if host != host_name() {
            return false;
        }
        pid.parse::<i32>().is_ok_and(super::local_process_gone)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

const JOB_COLUMNS: &str = "job_id, kind, letter_sha256, case_no, source_name, payload, state, attempts, \
                           max_attempts, last_error, result, created_at";

/// A stored name read back; a name this binary does not know means the store is damaged.
fn parse_name<T>(s: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, StoreError> {
    parse(s).ok_or_else(|| StoreError::Corrupt(format!("{what} {s}")))
}

fn job_from_row(r: &AnyRow) -> Result<Job, StoreError> {
    Ok(Job {
        job_id: r.try_get("job_id")?,
        kind: parse_name(&r.try_get::<String, _>("kind")?, JobKind::parse, "job kind")?,
        letter_sha256: r.try_get("letter_sha256")?,
        case_no: r.try_get("case_no")?,
        source_name: r.try_get("source_name")?,
        payload: r.try_get("payload")?,
        state: parse_name(&r.try_get::<String, _>("state")?, JobState::parse, "job state")?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        max_attempts: u32::try_from(r.try_get::<i64, _>("max_attempts")?).unwrap_or(0),
        last_error: r.try_get("last_error")?,
        result: r.try_get("result")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Adds a job unless one with the same id exists; a job that failed for good is queued
    /// again (given again on purpose: the limits may have changed), under the name it is
    /// given again by. Returns whether the job was added or re-queued.
    pub async fn enqueue(&self, job: &NewJob) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut conn = self.pool.acquire().await?;
        Ok(insert_jobs(&mut conn, std::slice::from_ref(job), now, now).await? > 0)
    }

    /// Adds many jobs as `enqueue` does, a few hundred to a statement and all in one
    /// transaction; their queue order (`created_at`, a millisecond apart from now) is the
    /// order given, so they are claimed in that order. Returns how many were added or
    /// re-queued.
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let mut added = 0;
        // Nine values a row.
        for (c, chunk) in jobs.chunks(IN_LIST / 2).enumerate() {
            added += insert_jobs(&mut tx, chunk, now, now + (c * IN_LIST / 2) as i64).await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Adds a job already claimed by `worker` (one commit instead of two, for a process that
    /// queues a letter to work it itself). `None` when a job with this id exists: then
    /// `enqueue` and `claim_job` decide.
    pub async fn enqueue_claimed(
        &self,
        job: &NewJob,
        worker: &WorkerId,
        lease_ms: i64,
    ) -> Result<Option<Job>, StoreError> {
        let mut conn = self.writer.acquire().await?;
        insert_claimed(&mut conn, job, worker, lease_ms, self.next_instant()).await
    }

    /// Adds jobs already claimed by `worker`, in one transaction, created in their order (a
    /// millisecond apart: a letter's date of receipt is its job's creation, and letters
    /// received later come after). `None` for a job whose id exists.
    pub async fn enqueue_claimed_many(
        &self,
        jobs: &[NewJob],
        worker: &WorkerId,
        lease_ms: i64,
    ) -> Result<Vec<Option<Job>>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(insert_claimed(&mut tx, job, worker, lease_ms, self.next_instant()).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Claims the next job of `kind` that is ready (queued and past its backoff, or running
    /// with an expired lease under another worker: a worker never takes its own job again
    /// while it may still be working on it), oldest first; `prefix` narrows it to job ids
    /// starting so.
    pub async fn claim(
        &self,
        worker: &WorkerId,
        kind: JobKind,
        prefix: Option<&str>,
        lease_ms: i64,
    ) -> Result<Option<Job>, StoreError> {
        Ok(self.claim_batch(worker, kind, prefix, 1, lease_ms).await?.pop())
    }

    /// Claims up to `n` ready jobs of `kind` (see `claim`), oldest first, in the order they
    /// were queued. Jobs whose lease expired come first; then queued jobs, read in claim
    /// order through the `jobs_claim` index, so a claim costs the same with ten jobs queued
    /// or a million. On PostgreSQL, rows another worker is claiming are skipped.
    pub async fn claim_batch(
        &self,
        worker: &WorkerId,
        kind: JobKind,
        prefix: Option<&str>,
        n: usize,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let now = now_ms();
        let lock = if self.is_postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let like = format!("{}%", prefix.unwrap_or(""));
        let mut jobs = Vec::new();
        for ready in CLAIMABLE {
            let want = n.saturating_sub(jobs.len());
            if want == 0 {
                break;
            }
            let sql = format!(
                "UPDATE jobs SET state = 'running', worker = $1, lease_until = $2, attempts = attempts + 1, \
                 updated_at = $3 WHERE job_id IN ({}{lock}) RETURNING {JOB_COLUMNS}",
                ready_jobs(ready)
            );
            let rows = sqlx::query(&sql)
                .bind(worker.as_str())
                .bind(now + lease_ms)
                .bind(now)
                .bind(kind.as_str())
                .bind(&like)
                .bind(want as i64)
                .fetch_all(&self.writer)
                .await?;
            for r in &rows {
                jobs.push(job_from_row(r)?);
            }
        }
        jobs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.job_id.cmp(&b.job_id)));
        Ok(jobs)
    }

    /// Claims one given job if it is ready (see `claim`).
    pub async fn claim_job(&self, worker: &WorkerId, job_id: &str, lease_ms: i64) -> Result<Option<Job>, StoreError> {
        let now = now_ms();
        let sql = format!(
            "UPDATE jobs SET state = 'running', worker = $1, lease_until = $2, attempts = attempts + 1, \
             updated_at = $3 WHERE job_id = $4 AND \
             ((state = 'queued' AND not_before <= $3) OR (state = 'running' AND lease_until < $3)) \
             RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(worker.as_str())
            .bind(now + lease_ms)
            .bind(now)
            .bind(job_id)
            .fetch_optional(&self.writer)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// A job as it stands.
    pub async fn job(&self, job_id: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1"))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Extends the leases of every job this worker is running. Returns how many.
    pub async fn renew_leases(&self, worker: &WorkerId, lease_ms: i64) -> Result<u64, StoreError> {
        let now = now_ms();
        let r =
            // Not through the writer: a renewal waiting out a locked database must not hold
            // the one connection the registrations (which say that they wait) need.
            sqlx::query("UPDATE jobs SET lease_until = $1, updated_at = $2 WHERE worker = $3 AND state = 'running'")
                .bind(now + lease_ms)
                .bind(now)
                .bind(worker.as_str())
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected())
    }

    /// Expires at once the leases of jobs held by workers of this host whose process has
    /// ended (killed, crashed), so that a restarted worker need not wait for them.
    pub async fn release_dead_local_workers(&self) -> Result<u64, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT worker FROM jobs WHERE state = 'running' AND worker IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        let mut released = 0;
        for r in rows {
            let w: String = r.try_get("worker")?;
            if WorkerId::is_dead_local(&w) {
                released += sqlx::query("UPDATE jobs SET lease_until = 0 WHERE worker = $1 AND state = 'running'")
                    .bind(&w)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
            }
        }
        Ok(released)
    }

    /// Puts a job back in the queue after a passing failure, not to be claimed before
    /// `delay_ms` from now.
    pub async fn retry_later(&self, job_id: &str, error: &str, delay_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL, not_before = $1, \
             last_error = $2, updated_at = $3 WHERE job_id = $4 AND state = 'running'",
        )
        .bind(now + delay_ms)
        .bind(error)
        .bind(now)
        .bind(job_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Ends a job as failed for good (a letter that cannot be read: its files are in
    /// quarantine at `result`).
    pub async fn fail_job(&self, job_id: &str, error: &str, result: Option<&str>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET state = 'failed', worker = NULL, lease_until = NULL, last_error = $1, result = $2, \
             updated_at = $3 WHERE job_id = $4",
        )
        .bind(error)
        .bind(result)
        .bind(now_ms())
        .bind(job_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Ends a job as done without a registration of its own (the letter was already a case).
    pub async fn finish_job(&self, job_id: &str, result: &str) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await?;
        mark_done(&mut conn, job_id, result).await
    }

    /// The jobs of these ids, per state (ids with no job are not counted).
    pub async fn job_counts(&self, job_ids: &[String]) -> Result<QueueCounts, StoreError> {
        let mut c = QueueCounts::default();
        for chunk in job_ids.chunks(500) {
            let sql = format!(
                "SELECT state, COUNT(*) AS n FROM jobs WHERE job_id IN ({}) GROUP BY state",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for r in q.fetch_all(&self.pool).await? {
                let n: i64 = r.try_get("n")?;
                match parse_name(&r.try_get::<String, _>("state")?, JobState::parse, "job state")? {
                    JobState::Queued => c.queued += n,
                    JobState::Running => c.running += n,
                    JobState::Done => c.done += n,
                    JobState::Failed => c.failed += n,
                }
            }
        }
        Ok(c)
    }

    /// Jobs per state, of one kind, optionally only those whose id starts with `prefix`.
    pub async fn queue_counts(&self, kind: JobKind, prefix: Option<&str>) -> Result<QueueCounts, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM jobs WHERE kind = $1 AND job_id LIKE $2 GROUP BY state")
                .bind(kind.as_str())
                .bind(format!("{}%", prefix.unwrap_or("")))
                .fetch_all(&self.pool)
                .await?;
        let mut c = QueueCounts::default();
        for r in rows {
            let n: i64 = r.try_get("n")?;
            match parse_name(&r.try_get::<String, _>("state")?, JobState::parse, "job state")? {
                JobState::Queued => c.queued = n,
                JobState::Running => c.running = n,
                JobState::Done => c.done = n,
                JobState::Failed => c.failed = n,
            }
        }
        Ok(c)
    }
}

/// Marks a job done with its result, inside the caller's transaction or connection.
pub(super) async fn mark_done(conn: &mut sqlx::AnyConnection, job_id: &str, result: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET state = 'done', worker = NULL, lease_until = NULL, result = $1, updated_at = $2 \
         WHERE job_id = $3",
    )
    .bind(result)
    .bind(now_ms())
    .bind(job_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Binds a job's first six columns (job_id, kind, letter_sha256, case_no, source_name,
/// payload) and its max_attempts, in that order: what every insert of a job starts with.
fn bind_job<'q>(q: AnyQuery<'q>, job: &'q NewJob) -> AnyQuery<'q> {
    q.bind(&job.job_id)
        .bind(job.kind.as_str())
        .bind(job.letter_sha256.as_deref())
        .bind(job.case_no.as_deref())
        .bind(&job.source_name)
        .bind(&job.payload)
        .bind(i64::from(job.max_attempts))
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Inserts a job claimed by `worker`, created at `now` (`None` when its id exists).
async fn insert_claimed(
    conn: &mut sqlx::AnyConnection,
    job: &NewJob,
    worker: &WorkerId,
    lease_ms: i64,
    now: i64,
) -> Result<Option<Job>, StoreError> {
    let sql = format!(
        "INSERT INTO jobs (job_id, kind, letter_sha256, case_no, source_name, payload, state, attempts, \
         max_attempts, worker, lease_until, not_before, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'running', 1, $7, $8, $9, $10, $10, $10) \
         ON CONFLICT (job_id) DO NOTHING RETURNING {JOB_COLUMNS}"
    );
    let row = bind_job(sqlx::query(&sql), job)
        .bind(worker.as_str())
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(job_from_row).transpose()
}

/// Queues `jobs` in one statement (see `Store::enqueue`), queued at `now` and ordered a
/// millisecond apart from `first` in the order given. Returns how many were added or
/// re-queued.
async fn insert_jobs(conn: &mut sqlx::AnyConnection, jobs: &[NewJob], now: i64, first: i64) -> Result<u64, StoreError> {
    const WIDTH: usize = 9;
    let tuples: Vec<String> = (0..jobs.len())
        .map(|i| {
            let b = WIDTH * i;
            // job_id … payload, then max_attempts, not_before (now), created_at, updated_at (now).
            format!("({}, 'queued', 0, ${}, ${}, ${}, ${})", placeholders(b + 1, 6), b + 7, b + 8, b + 9, b + 8)
        })
        .collect();
    let sql = format!(
        "INSERT INTO jobs (job_id, kind, letter_sha256, case_no, source_name, payload, state, attempts, \
         max_attempts, not_before, created_at, updated_at) VALUES {} \
         ON CONFLICT (job_id) DO UPDATE SET state = 'queued', attempts = 0, not_before = excluded.not_before, \
         last_error = NULL, result = NULL, updated_at = excluded.updated_at, \
         source_name = excluded.source_name, payload = excluded.payload WHERE jobs.state = 'failed'",
        tuples.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for (i, job) in jobs.iter().enumerate() {
        q = bind_job(q, job).bind(now).bind(first + i as i64);
    }
    Ok(q.execute(conn).await?.rows_affected())
}

/// The jobs a claim may take, in the order it takes them: those whose lease expired under
/// another worker, then the queued ones past their backoff. `+column` keeps SQLite from
/// reading the range through `jobs_ready` and sorting every ready job: the equality on kind
/// and state and the claim order come from `jobs_claim`.
const CLAIMABLE: [&str; 2] =
    ["state = 'running' AND +lease_until < $3 AND worker <> $1", "state = 'queued' AND +not_before <= $3"];

/// The oldest `$6` jobs of kind `$4` and id prefix `$5` in a `CLAIMABLE` state (`$3`: now,
/// `$1`: the claiming worker).
fn ready_jobs(ready: &str) -> String {
    format!(
        "SELECT job_id FROM jobs WHERE kind = $4 AND {ready} AND job_id LIKE $5 ORDER BY created_at, job_id LIMIT $6"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim reads the ready jobs in order through an index: it never sorts the queue,
    /// whatever SQLite's statistics say (`ANALYZE` or none).
    #[tokio::test]
    async fn a_claim_never_sorts_the_queue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&format!("sqlite://{}", dir.path().join("q.db").display())).await.expect("open");
        for analyzed in [false, true] {
            if analyzed {
                sqlx::query("ANALYZE").execute(&store.pool).await.expect("analyze");
            }
            for ready in CLAIMABLE {
                let plan = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", ready_jobs(ready)))
                    .bind("x")
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind("rerun")
                    .bind("rerun:%")
                    .bind(1_i64)
                    .fetch_all(&store.pool)
                    .await
                    .expect("plan");
                let steps: Vec<String> = plan.iter().filter_map(|r| r.try_get::<String, _>("detail").ok()).collect();
                assert!(steps.iter().any(|s| s.contains("jobs_claim")), "{ready}: {steps:?}");
                assert!(!steps.iter().any(|s| s.contains("TEMP B-TREE")), "{ready}: {steps:?}");
            }
        }
        store.close().await;
    }

    #[test]
    fn a_worker_of_another_host_is_never_taken_for_dead() {
        assert!(!WorkerId::is_dead_local("some-other-host-name/1/ff"));
        assert!(!WorkerId::is_dead_local(WorkerId::current().as_str()));
        // A process id that cannot exist on Linux (above pid_max's ceiling).
        assert!(WorkerId::is_dead_local(&format!("{}/4194305/0", host_name())));
    }
}

//! Versioned results and reviewers' decisions. Every OCR and rules run over a case is kept
//! in `case_runs` with its engine and rule-set versions. A re-run becomes the case's standing
//! decision only when no reviewer has decided the case; otherwise it is recorded beside the
//! reviewer's decision and, when it differs from it and from the rules' previous suggestion
//! (which the reviewer saw and overruled), the case is flagged for review. Every review is
//! kept (`case_review_history`); a review made on a decision another review has replaced
//! meanwhile is refused, not written over it.
//!
//! **Invariant:** nothing here ever overwrites a `case_reviews` row except `record_review`.

use super::deferred::{Deferred, RunRow};
use super::{
    identity_from_row, now_ms, parse_case_no, placeholders, queue, repeat_candidates, stored_decision,
    stored_decision_json, take_registry_lock, write_understanding, RepeatLookup, Store, StoreError, Stored, IN_LIST,
};
use crate::digest::sha256;
use serde::Serialize;
use sqlx::Row;
use xinfang_models::{Candidate, CandidateLimits};
use xinfang_models::{CaseNo, Decision, InputFormat, PageText, ReporterIdentity, RunKind, Understanding};

/// A run to record.
pub(super) struct RunRecord<'a> {
    pub kind: RunKind,
    pub ocr_engine: Option<&'a str>,
    pub text: &'a str,
    pub decision: &'a Decision,
    pub applied: bool,
    pub differs: bool,
}

impl RunRecord<'_> {
    /// The run as the first of its case, to be written later with others.
    pub(super) fn first_row(&self) -> RunRow<'_> {
        RunRow {
            run_no: 1,
            kind: self.kind.as_str(),
            ocr_engine: self.ocr_engine,
            rules_version: &self.decision.rules_version,
            text_sha256: sha256(self.text.as_bytes()).to_string(),
            decision: self.decision,
            applied: self.applied,
            differs: self.differs,
        }
    }
}

/// Appends a run to a case's history.
pub(super) async fn insert_run(
    conn: &mut sqlx::AnyConnection,
    no: &str,
    r: RunRecord<'_>,
    now: i64,
) -> Result<i64, StoreError> {
    let json = serde_json::to_string(r.decision).map_err(|e| StoreError::Corrupt(format!("decision: {e}")))?;
    let row = sqlx::query(
        "INSERT INTO case_runs (case_no, run_no, kind, ocr_engine, rules_version, text_sha256, decision, applied, \
         differs, at) SELECT $1, COALESCE(MAX(run_no), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9 \
         FROM case_runs WHERE case_no = $1 RETURNING run_no",
    )
    .bind(no)
    .bind(r.kind.as_str())
    .bind(r.ocr_engine)
    .bind(&r.decision.rules_version)
    .bind(sha256(r.text.as_bytes()).to_string())
    .bind(json)
    .bind(i64::from(r.applied))
    .bind(i64::from(r.differs))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get("run_no")?)
}

/// Appends an event to a case's log.
pub(super) async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    no: &str,
    actor: &str,
    action: &str,
    detail: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO case_events (case_no, seq, at, actor, action, detail) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM case_events WHERE case_no = $1",
    )
    .bind(no)
    .bind(now)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sends a case to a reviewer's queue.
pub(super) async fn flag_for_review(conn: &mut sqlx::AnyConnection, no: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE cases SET needs_review = 1, updated_at = $1 WHERE case_no = $2")
        .bind(now)
        .bind(no)
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes the decision columns and JSON of a case (insert, or replace the standing one).
pub(super) async fn write_decision_row(
    conn: &mut sqlx::AnyConnection,
    no: &str,
    dd: &Decision,
    now: i64,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(dd).map_err(|e| StoreError::Corrupt(format!("decision: {e}")))?;
    sqlx::query(
        "INSERT INTO case_decisions (case_no, rules_version, class, in_scope, named, handling_level, forward_to, \
         repeat_of, new_facts_of, review, score, decision, decided_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (case_no) DO UPDATE SET rules_version = excluded.rules_version, class = excluded.class, \
         in_scope = excluded.in_scope, named = excluded.named, handling_level = excluded.handling_level, \
         forward_to = excluded.forward_to, repeat_of = excluded.repeat_of, new_facts_of = excluded.new_facts_of, \
         review = excluded.review, score = excluded.score, decision = excluded.decision, \
         decided_at = excluded.decided_at",
    )
    .bind(no)
    .bind(&dd.rules_version)
    .bind(dd.class.as_str())
    .bind(i64::from(dd.in_scope))
    .bind(i64::from(dd.named))
    .bind(dd.handling_level.map(|l| l.as_str()))
    .bind(dd.forward_to.as_deref())
    .bind(dd.repeat_of.as_deref())
    .bind(dd.new_facts_of.as_deref())
    .bind(i64::from(dd.review))
    .bind(f64::from(dd.score))
    .bind(json)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Completes a re-run's understanding as `Settle` does, given the case's date of receipt
/// (Unix ms): a batch of re-runs settles each case against the letters before it.
pub type SettleAt<'a> = &'a (dyn Fn(i64, &mut Understanding, &[Candidate]) + Sync);

/// What a case has stored that a re-run compares itself with: the reviewer's decision, the
/// standing decision, the rules' last suggestion (each as its stored JSON, parsed only when
/// needed), and what a re-run leaves as it is when it would write the same (its repeat keys,
/// its fingerprint, its review flag; `None` when not read, and then written whatever it is).
#[derive(Debug, Default)]
struct Prior {
    reviewed: Option<String>,
    standing: Option<String>,
    previous: Option<String>,
    keys: Option<std::collections::BTreeSet<String>>,
    /// The stored fingerprint's root case and JSON.
    fingerprint: Option<(String, String)>,
    needs_review: Option<bool>,
    /// The numbers of the case's last run and last event.
    last_run: i64,
    last_event: i64,
}

impl Prior {
    /// One case's (only what a re-run compares itself with: the rest is written as new).
    async fn of_one(conn: &mut sqlx::AnyConnection, no: &str) -> Result<Prior, StoreError> {
        let reviewed = stored_decision_json(&mut *conn, "case_reviews", no).await?;
        let standing = stored_decision_json(&mut *conn, "case_decisions", no).await?;
        let (previous, last_run) =
            match sqlx::query("SELECT run_no, decision FROM case_runs WHERE case_no = $1 ORDER BY run_no DESC LIMIT 1")
                .bind(no)
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(r) => (Some(r.try_get::<String, _>("decision")?), r.try_get("run_no")?),
                None => (None, 0),
            };
        let last_event: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM case_events WHERE case_no = $1")
            .bind(no)
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        Ok(Prior { reviewed, standing, previous, last_run, last_event, ..Prior::default() })
    }

    /// Many cases', a few statements for them all.
    async fn of_many(
        conn: &mut sqlx::AnyConnection,
        nos: &[String],
    ) -> Result<std::collections::HashMap<String, Prior>, StoreError> {
        let mut out: std::collections::HashMap<String, Prior> =
            nos.iter().map(|n| (n.clone(), Prior { keys: Some(Default::default()), ..Prior::default() })).collect();
        for chunk in nos.chunks(IN_LIST) {
            let list = placeholders(1, chunk.len());
            let queries = [
                format!("SELECT case_no, decision FROM case_reviews WHERE case_no IN ({list})"),
                format!("SELECT case_no, decision FROM case_decisions WHERE case_no IN ({list})"),
                format!(
                    "SELECT r.case_no, r.decision, r.run_no AS n FROM case_runs r WHERE r.case_no IN ({list}) \
                     AND r.run_no = (SELECT MAX(run_no) FROM case_runs m WHERE m.case_no = r.case_no)"
                ),
            ];
            for (which, sql) in queries.iter().enumerate() {
                for r in bind_all(sqlx::query(sql), chunk).fetch_all(&mut *conn).await? {
                    let no: String = r.try_get("case_no")?;
                    let d: String = r.try_get("decision")?;
                    if let Some(p) = out.get_mut(&no) {
                        if which == 2 {
                            p.last_run = r.try_get("n")?;
                        }
                        *[&mut p.reviewed, &mut p.standing, &mut p.previous][which] = Some(d);
                    }
                }
            }
            let sql =
                format!("SELECT case_no, MAX(seq) AS n FROM case_events WHERE case_no IN ({list}) GROUP BY case_no");
            for r in bind_all(sqlx::query(&sql), chunk).fetch_all(&mut *conn).await? {
                let no: String = r.try_get("case_no")?;
                if let Some(p) = out.get_mut(&no) {
                    p.last_event = r.try_get("n")?;
                }
            }
            let sql = format!("SELECT case_no, key FROM repeat_keys WHERE case_no IN ({list})");
            for r in bind_all(sqlx::query(&sql), chunk).fetch_all(&mut *conn).await? {
                let no: String = r.try_get("case_no")?;
                if let Some(keys) = out.get_mut(&no).and_then(|p| p.keys.as_mut()) {
                    keys.insert(r.try_get("key")?);
                }
            }
            let sql =
                format!("SELECT case_no, root_case, fingerprint FROM case_fingerprints WHERE case_no IN ({list})");
            for r in bind_all(sqlx::query(&sql), chunk).fetch_all(&mut *conn).await? {
                let no: String = r.try_get("case_no")?;
                if let Some(p) = out.get_mut(&no) {
                    p.fingerprint = Some((r.try_get("root_case")?, r.try_get("fingerprint")?));
                }
            }
            let sql = format!("SELECT case_no, needs_review FROM cases WHERE case_no IN ({list})");
            for r in bind_all(sqlx::query(&sql), chunk).fetch_all(&mut *conn).await? {
                let no: String = r.try_get("case_no")?;
                if let Some(p) = out.get_mut(&no) {
                    p.needs_review = Some(r.try_get::<i64, _>("needs_review")? != 0);
                }
            }
        }
        Ok(out)
    }
}

fn parse_decision(json: &str, what: &str, no: &str) -> Result<Decision, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what} of {no}: {e}")))
}

/// A stored case as a re-run needs it.
#[derive(Debug, Clone)]
pub struct CaseForRerun {
    pub case_no: CaseNo,
    pub received_at: i64,
    pub format: InputFormat,
    pub is_folder: bool,
    /// The originals in page order: digest and file name.
    pub originals: Vec<queue::QueuedOriginal>,
    pub pages: Vec<PageText>,
    /// A 上级 routing stub keeps no text: its re-run reads the originals again.
    pub stub: bool,
    /// The reporter's identity, read for the re-run (the read is recorded).
    pub identity: ReporterIdentity,
}

/// A case as a rules-only re-run reads it (see `Store::cases_for_rules_rerun`).
#[derive(Debug, Clone)]
pub struct StoredForRules {
    pub case: CaseForRerun,
    /// The stored letter text, the reporter's identity marked (〔举报人姓名〕 …).
    pub text: String,
    /// A page of the case asks for review (blank, low OCR confidence).
    pub pages_need_review: bool,
}

/// Binds each of `values` in order.
fn bind_all<'q>(mut q: AnyQuery<'q>, values: &'q [String]) -> AnyQuery<'q> {
    for v in values {
        q = q.bind(v.as_str());
    }
    q
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// What a review is made on (see `Store::review_base`).
#[derive(Debug, Clone)]
pub struct ReviewBase {
    pub decision: Decision,
    /// Unix milliseconds: the deadlines of the reviewed decision count from it.
    pub received_at: i64,
    /// Reviews recorded so far: pass it back to `record_review`.
    pub reviews: i64,
}

/// Why a case cannot be reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReviewable {
    NoSuchCase,
    /// Registered without a decision (manual handling).
    NoDecision,
}

/// What `record_review` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewSaved {
    /// Recorded; what it changed of the standing decision.
    Recorded { changes: Vec<String> },
    /// Another review was saved after the one this was made on: nothing was written.
    Stale { reviewer: String, at: i64 },
}

/// A reviewer's decision.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub reviewer: String,
    pub decision: Decision,
    pub note: String,
    pub at: i64,
}

/// What a re-run produced, before it is settled against earlier letters and stored.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// `Ocr` (originals read again) or `Rules` (the rules only, over the stored text).
    pub kind: RunKind,
    pub ocr_engine: Option<String>,
    /// New pages, when the originals were read again.
    pub pages: Option<Vec<PageText>>,
    pub ocr_confidence: Option<f32>,
    /// The redacted letter text.
    pub text: String,
    pub understanding: Understanding,
    pub pages_need_review: bool,
}

/// What a re-run did to a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// The new run became the standing decision; `changes` lists what it changed.
    Applied { changes: Vec<String> },
    /// A reviewer's decision stands; the run is recorded beside it. `changes` lists where
    /// the rules now disagree with the reviewer (the case is flagged when there are any).
    Suggested { changes: Vec<String> },
}

impl Store {
    /// A case with what a re-run needs; `None` when it does not exist. The reporter's
    /// identity is read for the re-run `run_key`, whose use of identities is recorded (once
    /// per run, see `record_run_identity_use`).
    pub async fn case_for_rerun(&self, case_no: &CaseNo, run_key: &str) -> Result<Option<CaseForRerun>, StoreError> {
        let no = case_no.to_string();
        let Some(detail) = self.show(case_no).await? else { return Ok(None) };
        let rows = sqlx::query(
            "SELECT co.sha256, co.file_name, o.byte_len FROM case_originals co \
             JOIN originals o ON o.sha256 = co.sha256 WHERE co.case_no = $1 ORDER BY co.ordinal",
        )
        .bind(&no)
        .fetch_all(&self.pool)
        .await?;
        let mut originals = Vec::with_capacity(rows.len());
        for r in rows {
            let sha: String = r.try_get("sha256")?;
            originals.push(queue::QueuedOriginal {
                sha256: xinfang_models::Sha256Hex::parse(&sha)
                    .ok_or_else(|| StoreError::Corrupt(format!("digest {sha} of {no}")))?,
                file_name: r.try_get("file_name")?,
                byte_len: u64::try_from(r.try_get::<i64, _>("byte_len")?).unwrap_or(0),
            });
        }
        let stub = self.decision(case_no).await?.is_some_and(|d| d.routes_up());
        self.record_run_identity_use(run_key, 1).await?;
        let identity = self.identities_of(std::slice::from_ref(&no)).await?.remove(&no).unwrap_or_default();
        let is_folder = originals.len() > 1
            || detail.letter_sha256 != originals.first().map_or(String::new(), |o| o.sha256.to_string());
        Ok(Some(CaseForRerun {
            case_no: case_no.clone(),
            received_at: detail.summary.received_at,
            format: InputFormat::parse(&detail.summary.format).unwrap_or(InputFormat::Text),
            is_folder,
            originals,
            pages: detail.pages,
            stub,
            identity,
        }))
    }

    /// Cases as a rules-only re-run reads them, in bulk (a few statements for a whole batch):
    /// the stored text, whether a page asks for review, whether the case is a routing stub,
    /// and the reporter's identity. The caller has recorded the run's use of identities
    /// (`record_run_identity_use`) first. Cases that do not exist are left out. `originals`
    /// and `pages` are left empty: the rules read the text. Reads only.
    pub async fn cases_for_rules_rerun(&self, cases: &[CaseNo]) -> Result<Vec<StoredForRules>, StoreError> {
        let nos: Vec<String> = cases.iter().map(ToString::to_string).collect();
        let mut found = std::collections::HashMap::new();
        let mut flagged = std::collections::HashSet::new();
        let mut stubs = std::collections::HashSet::new();
        for chunk in nos.chunks(IN_LIST) {
            let list = placeholders(1, chunk.len());
            let sql = format!("SELECT case_no, received_at, format, text FROM cases WHERE case_no IN ({list})");
            for r in bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                let no: String = r.try_get("case_no")?;
                found.insert(
                    no,
                    (
                        r.try_get::<i64, _>("received_at")?,
                        r.try_get::<String, _>("format")?,
                        r.try_get::<String, _>("text")?,
                    ),
                );
            }
            let sql = format!("SELECT DISTINCT case_no FROM pages WHERE flags <> '' AND case_no IN ({list})");
            for r in bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                flagged.insert(r.try_get::<String, _>("case_no")?);
            }
            let sql = format!(
                "SELECT case_no FROM case_decisions WHERE in_scope = 1 AND handling_level = '{}' AND case_no IN ({list})",
                xinfang_models::HandlingLevel::Higher.as_str()
            );
            for r in bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                stubs.insert(r.try_get::<String, _>("case_no")?);
            }
        }
        let present: Vec<String> = nos.iter().filter(|no| found.contains_key(*no)).cloned().collect();
        let mut identities = self.identities_of(&present).await?;
        let mut out = Vec::with_capacity(present.len());
        for (case_no, no) in cases.iter().zip(&nos) {
            let Some((received_at, format, text)) = found.remove(no) else { continue };
            out.push(StoredForRules {
                pages_need_review: flagged.contains(no),
                text,
                case: CaseForRerun {
                    case_no: case_no.clone(),
                    received_at,
                    format: InputFormat::parse(&format).unwrap_or(InputFormat::Text),
                    is_folder: false,
                    originals: Vec::new(),
                    pages: Vec::new(),
                    stub: stubs.contains(no),
                    identity: identities.remove(no).unwrap_or_default(),
                },
            });
        }
        Ok(out)
    }

    /// Records that the re-run `run_key` reads reporters' identities (`cases` more of them):
    /// one audit entry per run, counting its cases, written before the identities are read.
    pub async fn record_run_identity_use(&self, run_key: &str, cases: i64) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO identity_run_reads (run_key, reader, role, purpose, cases, first_at, last_at) \
             VALUES ($1, 'xinfang reprocess', 'system', 're-run the rules over the letters', $2, $3, $3) \
             ON CONFLICT (run_key) DO UPDATE SET cases = identity_run_reads.cases + excluded.cases, \
             last_at = excluded.last_at",
        )
        .bind(run_key)
        .bind(cases)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The reporters' identities of `cases` (those that have one). Callers record the read.
    async fn identities_of(
        &self,
        cases: &[String],
    ) -> Result<std::collections::HashMap<String, ReporterIdentity>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for chunk in cases.chunks(IN_LIST) {
            let sql = format!(
                "SELECT case_no, name, phone, id_number, address, unit FROM reporter_identities WHERE case_no IN ({})",
                placeholders(1, chunk.len())
            );
            for r in bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                out.insert(r.try_get("case_no")?, identity_from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// The reviewer's decision of a case, if one was made.
    pub async fn review(&self, case_no: &CaseNo) -> Result<Option<Review>, StoreError> {
        let row = sqlx::query("SELECT reviewer, decision, note, at FROM case_reviews WHERE case_no = $1")
            .bind(case_no.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| review_from_row(&r, case_no)).transpose()
    }

    /// What a review of a case is made on: its decision (the last reviewer's, else the
    /// standing one), when it was received, and how many reviews it has had.
    pub async fn review_base(&self, case_no: &CaseNo) -> Result<Result<ReviewBase, NotReviewable>, StoreError> {
        let no = case_no.to_string();
        let mut conn = self.pool.acquire().await?;
        let Some(row) = sqlx::query("SELECT received_at FROM cases WHERE case_no = $1")
            .bind(&no)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(Err(NotReviewable::NoSuchCase));
        };
        let received_at: i64 = row.try_get("received_at")?;
        let reviews = review_count(&mut conn, &no).await?;
        let decision = match stored_decision(&mut conn, "case_reviews", &no).await? {
            Some(d) => d,
            None => match stored_decision(&mut conn, "case_decisions", &no).await? {
                Some(d) => d,
                None => return Ok(Err(NotReviewable::NoDecision)),
            },
        };
        Ok(Ok(ReviewBase { decision, received_at, reviews }))
    }

    /// Records a reviewer's decision (made by `Decision::reviewed` on `review_base`): it
    /// becomes the standing decision, stands over any later rules run, and is kept in the
    /// case's review history. `based_on` is the number of reviews the reviewer saw: when
    /// another review was saved meanwhile, nothing is written and the other review is named.
    pub async fn record_review(
        &self,
        case_no: &CaseNo,
        decision: &Decision,
        reviewer: &str,
        note: &str,
        based_on: i64,
    ) -> Result<ReviewSaved, StoreError> {
        let no = case_no.to_string();
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        take_registry_lock(&mut tx).await?;
        let reviews = review_count(&mut tx, &no).await?;
        if reviews != based_on {
            let last = sqlx::query(
                "SELECT reviewer, at FROM case_review_history WHERE case_no = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(&no)
            .fetch_optional(&mut *tx)
            .await?;
            let (reviewer, at) = match last {
                Some(r) => (r.try_get("reviewer")?, r.try_get("at")?),
                None => (String::new(), 0),
            };
            return Ok(ReviewSaved::Stale { reviewer, at });
        }
        let before = stored_decision(&mut tx, "case_decisions", &no).await?;
        let changes = before.as_ref().map(|b| decision.changes_from(b)).unwrap_or_default();
        let json = serde_json::to_string(decision).map_err(|e| StoreError::Corrupt(format!("decision: {e}")))?;
        sqlx::query(
            "INSERT INTO case_review_history (case_no, seq, reviewer, decision, note, changes, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&no)
        .bind(reviews + 1)
        .bind(reviewer)
        .bind(&json)
        .bind(note)
        .bind(changes.join("; "))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM case_reviews WHERE case_no = $1").bind(&no).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO case_reviews (case_no, reviewer, decision, note, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&no)
            .bind(reviewer)
            .bind(json)
            .bind(note)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        write_decision_row(&mut tx, &no, decision, now).await?;
        sqlx::query("UPDATE cases SET needs_review = 0, updated_at = $1 WHERE case_no = $2")
            .bind(now)
            .bind(&no)
            .execute(&mut *tx)
            .await?;
        let detail = if changes.is_empty() { "confirmed".to_string() } else { changes.join("; ") };
        let detail = if note.is_empty() { detail } else { format!("{detail} (note: {note})") };
        insert_event(&mut tx, &no, reviewer, "reviewed", &detail, now).await?;
        tx.commit().await?;
        Ok(ReviewSaved::Recorded { changes })
    }

    /// Every review of a case, oldest first.
    pub async fn review_history(&self, case_no: &CaseNo) -> Result<Vec<Review>, StoreError> {
        let rows =
            sqlx::query("SELECT reviewer, decision, note, at FROM case_review_history WHERE case_no = $1 ORDER BY seq")
                .bind(case_no.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| review_from_row(r, case_no)).collect()
    }

    /// Stores a re-run of a case: settles it against the letters received before the case
    /// (inside the registry lock), records it as a new run, and makes it the standing
    /// decision unless a reviewer has decided. The job, when given, is marked done in the
    /// same transaction.
    pub async fn apply_run(
        &self,
        case: &CaseForRerun,
        run: &RunResult,
        lookup: RepeatLookup<'_>,
        job_id: Option<&str>,
    ) -> Result<RunOutcome, StoreError> {
        let cached = self.fingerprints.transaction();
        let mut tx = self.writer.begin().await?;
        take_registry_lock(&mut tx).await?;
        let mut deferred = Deferred::new(now_ms());
        let prior = Prior::of_one(&mut tx, &case.case_no.to_string()).await?;
        let outcome = self.apply_in(&mut tx, (case, run, job_id), lookup, prior, &mut deferred).await?;
        deferred.flush(&mut tx).await?;
        tx.commit().await?;
        cached.committed();
        Ok(outcome)
    }

    /// Stores many re-runs, in the order given (the order the letters were received), in
    /// one transaction under the registry lock: each is settled and stored as `apply_run`
    /// does, and each sees what the ones before it in the batch wrote (their new repeat
    /// keys, their new decisions), so a batch decides exactly as one letter at a time would.
    /// `settle` is given each case's date of receipt. Either every run of the batch is
    /// stored and its job done, or none.
    pub async fn apply_runs(
        &self,
        runs: &[(&CaseForRerun, &RunResult, &str)],
        limits: CandidateLimits,
        settle: SettleAt<'_>,
    ) -> Result<Vec<RunOutcome>, StoreError> {
        let now = now_ms();
        let cached = self.fingerprints.transaction();
        let mut tx = self.writer.begin().await?;
        take_registry_lock(&mut tx).await?;
        // What each case has stored, read for the whole batch at once: a case's run writes
        // only its own rows, so what the ones before it wrote does not change this.
        let nos: Vec<String> = runs.iter().map(|(c, _, _)| c.case_no.to_string()).collect();
        let mut prior = Prior::of_many(&mut tx, &nos).await?;
        let mut outcomes = Vec::with_capacity(runs.len());
        let mut deferred = Deferred::new(now);
        for ((case, run, job_id), no) in runs.iter().zip(&nos) {
            let at = case.received_at;
            let one = |u: &mut Understanding, c: &[Candidate]| settle(at, u, c);
            let lookup = RepeatLookup { limits, settle: &one };
            let p = prior.remove(no).unwrap_or_default();
            outcomes.push(self.apply_in(&mut tx, (case, run, Some(job_id)), lookup, p, &mut deferred).await?);
        }
        deferred.flush(&mut tx).await?;
        tx.commit().await?;
        cached.committed();
        Ok(outcomes)
    }

    /// One re-run, settled and stored inside the caller's transaction (which holds the
    /// registry lock).
    async fn apply_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        (case, run, job_id): (&CaseForRerun, &RunResult, Option<&str>),
        lookup: RepeatLookup<'_>,
        prior: Prior,
        deferred: &mut Deferred,
    ) -> Result<RunOutcome, StoreError> {
        let no = case.case_no.to_string();
        let mut decided = run.understanding.clone();
        let candidates = repeat_candidates(
            &mut *tx,
            &self.fingerprints,
            &decided.lookup_keys,
            lookup.limits,
            Some((case.received_at, no.as_str())),
        )
        .await?;
        (lookup.settle)(&mut decided, &candidates);
        let versions = format!(
            "rules {}{}",
            decided.decision.rules_version,
            run.ocr_engine.as_deref().map_or(String::new(), |e| format!(", {e}"))
        );
        let json = super::deferred::decision_json(&decided.decision)?;
        // The standing decision the run is compared with: the reviewer's when there is one.
        let applied = prior.reviewed.is_none();
        let changes = match prior.reviewed.as_ref().or(prior.standing.as_ref()) {
            Some(stored) if *stored == json => Vec::new(),
            Some(stored) => decided.decision.changes_from(&parse_decision(stored, "decision", &no)?),
            None => Vec::new(),
        };
        if applied {
            self.replace_results(&mut *tx, case, run, (&decided, json), &prior, deferred).await?;
        }
        let Prior { previous, last_run, last_event, .. } = prior;
        let run_row = RunRow {
            run_no: last_run + 1,
            kind: run.kind.as_str(),
            ocr_engine: run.ocr_engine.as_deref(),
            rules_version: &decided.decision.rules_version,
            text_sha256: sha256(run.text.as_bytes()).to_string(),
            decision: &decided.decision,
            applied,
            differs: !changes.is_empty(),
        };
        deferred.run(&no, run_row)?;
        let outcome = if applied {
            let detail = if changes.is_empty() {
                format!("re-run ({versions}): decision unchanged")
            } else {
                format!("re-run ({versions}): {}", changes.join("; "))
            };
            deferred.event(&no, last_event + 1, "reprocess", "rerun", detail);
            RunOutcome::Applied { changes }
        } else {
            let seen_before = match &previous {
                Some(p) => decided.decision.changes_from(&parse_decision(p, "run", &no)?).is_empty(),
                None => false,
            };
            if !changes.is_empty() && !seen_before {
                deferred.needs_review(&no, true);
                let detail = format!(
                    "re-run ({versions}) differs from the reviewer's decision, which stands: {}",
                    changes.join("; ")
                );
                deferred.event(&no, last_event + 1, "reprocess", "rerun_differs", detail);
            }
            RunOutcome::Suggested { changes }
        };
        if let Some(job) = job_id {
            deferred.done(job, &no);
        }
        Ok(outcome)
    }

    /// Makes a run the standing result: decision, fingerprint, index keys, the identity if
    /// none was stored, and (after OCR) the pages and text.
    async fn replace_results(
        &self,
        tx: &mut sqlx::AnyConnection,
        case: &CaseForRerun,
        run: &RunResult,
        (decided, json): (&Understanding, String),
        prior: &Prior,
        deferred: &mut Deferred,
    ) -> Result<(), StoreError> {
        let no = case.case_no.to_string();
        let now = deferred.now();
        // What is stored as it would be written is left as it is: most letters of a re-run
        // decide as before, and rewriting their wide rows is most of a re-run's writing.
        if prior.standing.as_ref() != Some(&json) {
            deferred.decision(&no, &decided.decision, json);
        }
        let stored = Stored {
            identity: !case.identity.is_empty(),
            keys: prior.keys.as_ref(),
            fingerprint: prior.fingerprint.as_ref().map(|(root, fp)| (root.as_str(), fp.as_str())),
        };
        write_understanding(&mut *tx, &self.fingerprints, &no, decided, case.received_at, now, stored).await?;
        let stub = decided.routing_stub();
        let review = decided.decision.review || run.pages_need_review;
        if let Some(pages) = &run.pages {
            sqlx::query("DELETE FROM pages WHERE case_no = $1").bind(&no).execute(&mut *tx).await?;
            for p in pages {
                super::insert_page(&mut *tx, &no, p, stub).await?;
            }
            sqlx::query(
                "UPDATE cases SET text = $1, ocr_confidence = $2, page_count = $3, needs_review = $4, updated_at = $5 \
                 WHERE case_no = $6",
            )
            .bind(if stub { "" } else { run.text.as_str() })
            .bind(run.ocr_confidence.map(f64::from))
            .bind(pages.len() as i64)
            .bind(i64::from(review))
            .bind(now)
            .bind(&no)
            .execute(&mut *tx)
            .await?;
        } else {
            if stub {
                // Routed up by the new rules: the text and boxes are no longer kept.
                sqlx::query("UPDATE pages SET text = '', boxes = $1 WHERE case_no = $2")
                    .bind(serde_json::json!({ "words": [], "lines": [] }).to_string())
                    .bind(&no)
                    .execute(&mut *tx)
                    .await?;
            }
            if stub {
                sqlx::query("UPDATE cases SET text = '', updated_at = $1 WHERE case_no = $2")
                    .bind(now)
                    .bind(&no)
                    .execute(&mut *tx)
                    .await?;
            }
            if prior.needs_review != Some(review) {
                deferred.needs_review(&no, review);
            }
        }
        Ok(())
    }

    /// Registered cases matching a re-run selection, oldest first.
    pub async fn select_cases(&self, sel: &CaseSelection) -> Result<Vec<CaseNo>, StoreError> {
        let mut sql = String::from(
            "SELECT c.case_no FROM cases c LEFT JOIN case_decisions d ON d.case_no = c.case_no \
             WHERE c.status <> 'manual_handling' AND c.received_at >= $1 AND c.received_at < $2",
        );
        if sel.class.is_some() {
            sql.push_str(" AND d.class = $3");
        }
        sql.push_str(" ORDER BY c.received_at, c.case_no");
        let mut q = sqlx::query(&sql).bind(sel.from_ms.unwrap_or(i64::MIN)).bind(sel.to_ms.unwrap_or(i64::MAX));
        if let Some(c) = &sel.class {
            q = q.bind(c.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let no = parse_case_no(&r.try_get::<String, _>("case_no")?)?;
            if sel.cases.is_empty() || sel.cases.contains(&no) {
                out.push(no);
            }
        }
        Ok(out)
    }
}

/// The number of reviews a case has had.
async fn review_count(conn: &mut sqlx::AnyConnection, no: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM case_review_history WHERE case_no = $1")
        .bind(no)
        .fetch_one(conn)
        .await?
        .try_get("n")?)
}

fn review_from_row(r: &sqlx::any::AnyRow, case_no: &CaseNo) -> Result<Review, StoreError> {
    Ok(Review {
        reviewer: r.try_get("reviewer")?,
        decision: serde_json::from_str(&r.try_get::<String, _>("decision")?)
            .map_err(|e| StoreError::Corrupt(format!("review of {case_no}: {e}")))?,
        note: r.try_get("note")?,
        at: r.try_get("at")?,
    })
}

/// Which cases a re-run covers: all, a receipt-time range, a class, a list (combined).
#[derive(Debug, Clone, Default)]
pub struct CaseSelection {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub class: Option<xinfang_models::LetterClass>,
    pub cases: Vec<CaseNo>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewCase, Registration};
    use xinfang_models::{CandidateLimits, Channel, Fingerprint, LetterClass, PageOrigin, ReviewEdit};

    fn understanding(class: LetterClass, rules: &str) -> Understanding {
        Understanding {
            decision: Decision::bare(class, rules),
            identity: ReporterIdentity { name: Some("杨春生".into()), ..ReporterIdentity::default() },
            fingerprint: Fingerprint {
                subjects: Vec::new(),
                minhash: vec![1, 2],
                facts: Vec::new(),
                amounts: Vec::new(),
                claims_new: false,
                specifics: Vec::new(),
            },
            keys: vec!["nkey".into()],
            lookup_keys: Vec::new(),
        }
    }

    /// A new SQLite store in a folder of its own (kept while the folder is).
    async fn fresh_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display())).await.expect("open");
        (dir, store)
    }

    async fn one_case(store: &Store) -> CaseNo {
        let text = "反映镇长王某收受红包";
        let new = NewCase {
            organ: "QLX".into(),
            channel: Channel::Letter,
            letter_sha256: sha256(text.as_bytes()),
            source_name: "a.txt".into(),
            format: InputFormat::Text,
            originals: Vec::new(),
            pages: vec![PageText::from_text(1, PageOrigin::Transcript, text.into())],
            ocr_confidence: None,
            text: text.into(),
            needs_review: false,
            received_at: now_ms(),
            received_on: chrono::Utc::now().date_naive(),
            archive: None,
            understanding: Some(understanding(LetterClass::Accusation, "r1")),
            ocr_engine: None,
            manual: None,
            supersedes: None,
        };
        let (Registration::Registered(no), _) = store.register_letter(&new, None, None).await.expect("register") else {
            panic!("a new case")
        };
        no
    }

    #[tokio::test]
    async fn a_reviewers_decision_stands_over_later_runs_and_every_run_is_kept() {
        let (_dir, store) = fresh_store().await;
        let no = one_case(&store).await;
        let case = store.case_for_rerun(&no, "test-run").await.expect("load").expect("exists");
        assert_eq!(case.identity.name.as_deref(), Some("杨春生"), "a re-run gets the identity back");
        let run = RunResult {
            kind: RunKind::Rules,
            ocr_engine: None,
            pages: None,
            ocr_confidence: None,
            text: String::new(),
            understanding: understanding(LetterClass::Suggestion, "r2"),
            pages_need_review: false,
        };
        let keep = |_: &mut Understanding, _: &[xinfang_models::Candidate]| {};
        let lookup = RepeatLookup { limits: CandidateLimits { per_key: 10, total: 10 }, settle: &keep };
        let applied = store.apply_run(&case, &run, lookup, None).await.expect("apply");
        assert_eq!(applied, RunOutcome::Applied { changes: vec!["class: 检举控告 → 批评建议".into()] });
        let base = store.review_base(&no).await.expect("read").expect("reviewable");
        let edit =
            ReviewEdit { reviewer: "王审".into(), class: Some(LetterClass::Accusation), ..ReviewEdit::default() };
        let reviewed = base.decision.reviewed(&edit).expect("consistent");
        let saved = store.record_review(&no, &reviewed, "王审", "", base.reviews).await.expect("review");
        assert_eq!(saved, ReviewSaved::Recorded { changes: vec!["class: 批评建议 → 检举控告".into()] });
        let late = store.record_review(&no, &reviewed, "李审", "", base.reviews).await.expect("review");
        assert!(matches!(late, ReviewSaved::Stale { ref reviewer, .. } if reviewer == "王审"), "{late:?}");
        let again = store.apply_run(&case, &run, lookup, None).await.expect("apply again");
        assert!(matches!(&again, RunOutcome::Suggested { changes } if changes.len() == 1), "{again:?}");
        let summary = store.summary(&no).await.expect("read").expect("case");
        assert!(!summary.needs_review, "the suggestion the reviewer overruled is not raised again");
        assert_eq!(store.decision(&no).await.expect("read").map(|d| d.class), Some(LetterClass::Accusation));
        let count = |sql: &'static str| {
            let (pool, no) = (store.pool.clone(), no.to_string());
            async move { sqlx::query(sql).bind(no).fetch_one(&pool).await.expect(sql).try_get::<i64, _>("n").expect("n") }
        };
        let runs = count("SELECT COUNT(*) AS n FROM case_runs WHERE case_no = $1").await;
        assert_eq!(runs, 3, "intake, the applied run and the suggested one");
        let differs =
            count("SELECT COUNT(*) AS n FROM case_events WHERE case_no = $1 AND action = 'rerun_differs'").await;
        assert_eq!(differs, 0, "the overruled suggestion raised no event");
        let missing = CaseNo { seq: 99, ..no.clone() };
        assert_eq!(store.review_base(&missing).await.expect("read").err(), Some(NotReviewable::NoSuchCase));
        assert_eq!(store.review_history(&no).await.expect("history").len(), 1);
        store.close().await;
    }

    #[tokio::test]
    async fn a_batch_re_run_that_decides_as_before_keeps_the_stored_rows_and_records_its_run() {
        let (_dir, store) = fresh_store().await;
        let no = one_case(&store).await;
        let stored = || {
            let (pool, no) = (store.pool.clone(), no.to_string());
            async move {
                let r = sqlx::query(
                    "SELECT d.decided_at, f.version, c.updated_at, c.needs_review, \
                     (SELECT COUNT(*) FROM case_runs r WHERE r.case_no = c.case_no) AS runs, \
                     (SELECT COUNT(*) FROM case_events e WHERE e.case_no = c.case_no) AS events \
                     FROM cases c JOIN case_decisions d ON d.case_no = c.case_no \
                     JOIN case_fingerprints f ON f.case_no = c.case_no WHERE c.case_no = $1",
                )
                .bind(no)
                .fetch_one(&pool)
                .await
                .expect("read");
                ["decided_at", "version", "updated_at", "needs_review", "runs", "events"]
                    .map(|c| r.try_get::<i64, _>(c).expect(c))
            }
        };
        let keep: SettleAt<'_> = &|_, _, _| {};
        let limits = CandidateLimits { per_key: 10, total: 10 };
        let case = store.case_for_rerun(&no, "test-run").await.expect("load").expect("exists");
        let run = |class| RunResult {
            kind: RunKind::Rules,
            ocr_engine: None,
            pages: None,
            ocr_confidence: None,
            text: String::new(),
            understanding: understanding(class, "r1"),
            pages_need_review: false,
        };
        let same = run(LetterClass::Accusation);
        let before = stored().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let outcome = store.apply_runs(&[(&case, &same, "job-1")], limits, keep).await.expect("apply");
        assert_eq!(outcome, vec![RunOutcome::Applied { changes: Vec::new() }]);
        let after = stored().await;
        assert_eq!(after[..4], before[..4], "decision, fingerprint and review flag left as they were");
        assert_eq!((after[4], after[5]), (before[4] + 1, before[5] + 1), "the run and its event are recorded");
        let other = run(LetterClass::Suggestion);
        let outcome = store.apply_runs(&[(&case, &other, "job-2")], limits, keep).await.expect("apply");
        assert_eq!(outcome, vec![RunOutcome::Applied { changes: vec!["class: 检举控告 → 批评建议".into()] }]);
        assert!(stored().await[0] > before[0], "a new decision is written");
        assert_eq!(store.decision(&no).await.expect("read").map(|d| d.class), Some(LetterClass::Suggestion));
        store.close().await;
    }
}

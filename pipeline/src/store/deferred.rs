//! The rows a batch of re-runs or a group of registrations writes at its end, many to a
//! statement: the decision rows, the review flags, the runs, the events, the jobs done, and
//! for registrations the originals and pages. None of them is read by the repeat lookups of
//! the letters after it in the batch (those read the fingerprints and the repeat keys, which
//! each letter writes at once, and a registration's duplicate check reads the case row,
//! also written at once), so writing them last decides exactly as writing them one letter
//! at a time; and all are in the batch's one transaction.

use super::{placeholders, StoreError, StoredOriginal, IN_LIST};
use xinfang_models::{Decision, PageText};

/// One value to bind.
enum Val {
    Text(String),
    MaybeText(Option<String>),
    Int(i64),
    Real(f64),
    MaybeReal(Option<f64>),
}

/// Rows waiting for the end of the batch, all written at `now`.
pub(super) struct Deferred {
    now: i64,
    decisions: Vec<Vec<Val>>,
    /// Cases whose `needs_review` is set (true) or cleared (false).
    review: Vec<(String, bool)>,
    runs: Vec<Vec<Val>>,
    events: Vec<Vec<Val>>,
    /// Jobs done, each with the case it re-ran.
    done: Vec<(String, String)>,
    /// Letter jobs done, each with the case it registered.
    letters_done: Vec<(String, String)>,
    /// Originals first seen in the group (each digest once), and the letters' files.
    originals: Vec<Vec<Val>>,
    original_digests: std::collections::HashSet<String>,
    case_originals: Vec<Vec<Val>>,
    pages: Vec<Vec<Val>>,
}

/// A run of a case to record (see `runs::RunRecord`).
pub(super) struct RunRow<'a> {
    pub run_no: i64,
    pub kind: &'a str,
    pub ocr_engine: Option<&'a str>,
    pub rules_version: &'a str,
    pub text_sha256: String,
    pub decision: &'a Decision,
    pub applied: bool,
    pub differs: bool,
}

/// A decision as its rows store it.
pub(super) fn decision_json(d: &Decision) -> Result<String, StoreError> {
    serde_json::to_string(d).map_err(|e| StoreError::Corrupt(format!("decision: {e}")))
}

impl Deferred {
    pub fn new(now: i64) -> Deferred {
        Deferred {
            now,
            decisions: Vec::new(),
            review: Vec::new(),
            runs: Vec::new(),
            events: Vec::new(),
            done: Vec::new(),
            letters_done: Vec::new(),
            originals: Vec::new(),
            original_digests: std::collections::HashSet::new(),
            case_originals: Vec::new(),
            pages: Vec::new(),
        }
    }

    /// A registered letter's file `ordinal` (from 1), and its original unless known.
    pub fn original(&mut self, no: &str, ordinal: i64, o: &StoredOriginal) {
        if self.original_digests.insert(o.sha256.to_string()) {
            self.originals.push(vec![
                Val::Text(o.sha256.to_string()),
                Val::Int(o.byte_len as i64),
                Val::Text(o.format.as_str().to_string()),
                Val::Text(o.stored_path.clone()),
                Val::Int(self.now),
                Val::MaybeText(o.encoding.clone()),
            ]);
        }
        self.case_originals.push(vec![
            Val::Text(no.to_string()),
            Val::Int(ordinal),
            Val::Text(o.sha256.to_string()),
            Val::Text(o.file_name.clone()),
        ]);
    }

    /// A registered letter's page (a routing stub's without its text and boxes).
    pub fn page(&mut self, no: &str, p: &PageText, stub: bool) {
        let flags: Vec<&str> = p.flags.iter().map(|f| f.as_str()).collect();
        self.pages.push(vec![
            Val::Text(no.to_string()),
            Val::Int(i64::from(p.page_no)),
            Val::Text(p.origin.as_str().to_string()),
            Val::Text(if stub { String::new() } else { p.text.clone() }),
            Val::MaybeReal(p.confidence.map(f64::from)),
            Val::Int(i64::from(p.rotation)),
            Val::Real(f64::from(p.skew_deg)),
            Val::Text(flags.join(",")),
            Val::Text(super::page_boxes(p, stub)),
        ]);
    }

    /// A letter's job is done: it registered case `no`.
    pub fn letter_done(&mut self, job_id: &str, no: &str) {
        self.letters_done.push((job_id.to_string(), no.to_string()));
    }

    /// When the rows are written.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The case's standing decision becomes `d`.
    /// `json` is `d` serialised (see `decision_json`).
    pub fn decision(&mut self, no: &str, d: &Decision, json: String) {
        self.decisions.push(vec![
            Val::Text(no.to_string()),
            Val::Text(d.rules_version.clone()),
            Val::Text(d.class.as_str().to_string()),
            Val::Int(i64::from(d.in_scope)),
            Val::Int(i64::from(d.named)),
            Val::MaybeText(d.handling_level.map(|l| l.as_str().to_string())),
            Val::MaybeText(d.forward_to.clone()),
            Val::MaybeText(d.repeat_of.clone()),
            Val::MaybeText(d.new_facts_of.clone()),
            Val::Int(i64::from(d.review)),
            Val::Real(f64::from(d.score)),
            Val::Text(json),
            Val::Int(self.now),
        ]);
    }

    pub fn needs_review(&mut self, no: &str, review: bool) {
        self.review.push((no.to_string(), review));
    }

    pub fn run(&mut self, no: &str, r: RunRow<'_>) -> Result<(), StoreError> {
        self.runs.push(vec![
            Val::Text(no.to_string()),
            Val::Int(r.run_no),
            Val::Text(r.kind.to_string()),
            Val::MaybeText(r.ocr_engine.map(str::to_string)),
            Val::Text(r.rules_version.to_string()),
            Val::Text(r.text_sha256),
            Val::Text(decision_json(r.decision)?),
            Val::Int(i64::from(r.applied)),
            Val::Int(i64::from(r.differs)),
            Val::Int(self.now),
        ]);
        Ok(())
    }

    pub fn event(&mut self, no: &str, seq: i64, actor: &str, action: &str, detail: String) {
        self.events.push(vec![
            Val::Text(no.to_string()),
            Val::Int(seq),
            Val::Int(self.now),
            Val::Text(actor.to_string()),
            Val::Text(action.to_string()),
            Val::Text(detail),
        ]);
    }

    pub fn done(&mut self, job_id: &str, no: &str) {
        self.done.push((job_id.to_string(), no.to_string()));
    }

    /// Writes every row waiting, inside the caller's transaction.
    pub async fn flush(self, conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
        let now = self.now;
        insert_rows(
            &mut *conn,
            "INSERT INTO originals (sha256, byte_len, format, stored_path, first_seen_at, encoding) VALUES",
            self.originals,
            " ON CONFLICT (sha256) DO NOTHING",
        )
        .await?;
        insert_rows(
            &mut *conn,
            "INSERT INTO case_originals (case_no, ordinal, sha256, file_name) VALUES",
            self.case_originals,
            "",
        )
        .await?;
        insert_rows(
            &mut *conn,
            "INSERT INTO pages (case_no, page_no, origin, text, confidence, rotation, skew_deg, flags, boxes) VALUES",
            self.pages,
            "",
        )
        .await?;
        insert_rows(
            &mut *conn,
            "INSERT INTO case_decisions (case_no, rules_version, class, in_scope, named, handling_level, forward_to, \
             repeat_of, new_facts_of, review, score, decision, decided_at) VALUES",
            self.decisions,
            " ON CONFLICT (case_no) DO UPDATE SET rules_version = excluded.rules_version, class = excluded.class, \
             in_scope = excluded.in_scope, named = excluded.named, handling_level = excluded.handling_level, \
             forward_to = excluded.forward_to, repeat_of = excluded.repeat_of, new_facts_of = excluded.new_facts_of, \
             review = excluded.review, score = excluded.score, decision = excluded.decision, \
             decided_at = excluded.decided_at",
        )
        .await?;
        for flag in [true, false] {
            let cases: Vec<&str> = self.review.iter().filter(|(_, r)| *r == flag).map(|(n, _)| n.as_str()).collect();
            for chunk in cases.chunks(IN_LIST) {
                let sql = format!(
                    "UPDATE cases SET needs_review = {}, updated_at = $1 WHERE case_no IN ({})",
                    i64::from(flag),
                    placeholders(2, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(now);
                for no in chunk {
                    q = q.bind(*no);
                }
                q.execute(&mut *conn).await?;
            }
        }
        insert_rows(
            &mut *conn,
            "INSERT INTO case_runs (case_no, run_no, kind, ocr_engine, rules_version, text_sha256, decision, applied, \
             differs, at) VALUES",
            self.runs,
            "",
        )
        .await?;
        insert_rows(
            &mut *conn,
            "INSERT INTO case_events (case_no, seq, at, actor, action, detail) VALUES",
            self.events,
            "",
        )
        .await?;
        for chunk in self.done.chunks(IN_LIST) {
            // A re-run job's result is the case it re-ran, which the job names.
            let sql = format!(
                "UPDATE jobs SET state = 'done', worker = NULL, lease_until = NULL, result = case_no, updated_at = $1 \
                 WHERE job_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(now);
            for (job, _) in chunk {
                q = q.bind(job.as_str());
            }
            q.execute(&mut *conn).await?;
        }
        for chunk in self.letters_done.chunks(IN_LIST / 2) {
            // A letter job's result is the case it registered, each its own.
            let cases: Vec<String> =
                (0..chunk.len()).map(|i| format!("WHEN ${} THEN ${}", 2 + 2 * i, 3 + 2 * i)).collect();
            let sql = format!(
                "UPDATE jobs SET state = 'done', worker = NULL, lease_until = NULL, \
                 result = CASE job_id {} END, updated_at = $1 WHERE job_id IN ({})",
                cases.join(" "),
                placeholders(2 + 2 * chunk.len(), chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(now);
            for (job, no) in chunk {
                q = q.bind(job.as_str()).bind(no.as_str());
            }
            for (job, _) in chunk {
                q = q.bind(job.as_str());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// `head (…), (…) tail`, as many rows to a statement as the parameter limit allows.
async fn insert_rows(
    conn: &mut sqlx::AnyConnection,
    head: &str,
    rows: Vec<Vec<Val>>,
    tail: &str,
) -> Result<(), StoreError> {
    let Some(width) = rows.first().map(Vec::len) else { return Ok(()) };
    let per = (IN_LIST * 5 / width).max(1);
    for chunk in rows.chunks(per) {
        let tuples: Vec<String> =
            (0..chunk.len()).map(|i| format!("({})", placeholders(i * width + 1, width))).collect();
        let sql = format!("{head} {}{tail}", tuples.join(", "));
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = match v {
                    Val::Text(s) => q.bind(s.as_str()),
                    Val::MaybeText(s) => q.bind(s.as_deref()),
                    Val::Int(i) => q.bind(*i),
                    Val::Real(f) => q.bind(*f),
                    Val::MaybeReal(f) => q.bind(*f),
                };
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

//! Re-running OCR and/or the rules over stored letters (`xinfang reprocess`), through the
//! same durable queue as intake: one job per case, with an id made of the run's key (mode,
//! rule-set version, OCR engine version) and the case number. Enqueuing the same re-run
//! again adds nothing, so a re-run interrupted at any point is resumed by running the same
//! command again, and a finished one is not done twice. Any `xinfang worker` helps.
//!
//! **Invariant:** a re-run never overwrites a reviewer's decision (see `store::runs`).

use crate::intake::{patiently, redact_pages, Intake, LetterError, SystemError};
use crate::stages::repeat::Candidate;
use crate::store::{CaseForRerun, Decided, Job, JobKind, NewJob, RepeatLookup, RerunPayload, RunOutcome, RunResult};
use crate::understand::restore;
use serde::Serialize;
use std::sync::Arc;
use xinfang_models::{letter_confidence, CaseNo, InputFormat, PageOrigin, PageText};

/// What a re-run did to one case.
#[derive(Debug, Clone, Serialize)]
pub struct RerunReport {
    pub case_no: String,
    /// `applied`, `suggested` (a reviewer's decision stands) or `failed`.
    pub status: &'static str,
    pub changes: Vec<String>,
    pub error: Option<String>,
}

/// The key naming a re-run: its mode and the versions it runs with.
pub fn run_key(ocr: bool, rules_version: &str, ocr_engine: &str) -> String {
    let what = format!("ocr={ocr}|rules={rules_version}|engine={}", if ocr { ocr_engine } else { "-" });
    crate::store::sha256(what.as_bytes()).as_str()[..12].to_string()
}

/// The job-id prefix of a re-run's jobs.
pub fn run_prefix(key: &str) -> String {
    format!("rerun:{key}:")
}

/// A re-run of one case, read and decided, before it is stored.
pub(crate) struct PreparedRerun {
    case: CaseForRerun,
    run: RunResult,
    lookup_keys: Vec<String>,
    received: chrono::NaiveDate,
}

impl Intake {
    /// The key of a re-run with this binary's rules and OCR engine.
    pub fn rerun_key(&self, ocr: bool) -> String {
        run_key(ocr, self.understander().rules_version(), self.ocr_engine())
    }

    /// Queues a re-run of `cases`. Returns how many jobs were added (the others were queued
    /// or done already under the same key).
    pub async fn enqueue_reruns(&self, cases: &[CaseNo], ocr: bool) -> Result<usize, SystemError> {
        let key = self.rerun_key(ocr);
        let payload = serde_json::to_string(&RerunPayload { ocr, run_key: key.clone() })
            .map_err(|e| SystemError::Task(e.to_string()))?;
        let mut added = 0;
        for case in cases {
            let job = NewJob {
                job_id: format!("{}{case}", run_prefix(&key)),
                kind: JobKind::Rerun,
                letter_sha256: None,
                case_no: Some(case.to_string()),
                source_name: case.to_string(),
                payload: payload.clone(),
                max_attempts: self.config().queue.max_attempts,
            };
            if patiently(&self.config().queue, "queuing a re-run", || async { Ok(self.store().enqueue(&job).await?) })
                .await?
            {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Reads a case again for a claimed re-run job: the originals (OCR) when asked, when
    /// the case is a routing stub (it kept no text) or when they are text; otherwise the
    /// stored text with the reporter's identity put back, so that the rules read what they
    /// read at intake. `Ok(Err(reason))` when this case cannot be re-run.
    pub(crate) async fn prepare_rerun(&self, job: &Job) -> Result<Result<PreparedRerun, String>, SystemError> {
        let payload: RerunPayload = match serde_json::from_str(&job.payload) {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("the job's payload is unreadable: {e}"))),
        };
        let Some(case_no) = job.case_no.as_deref().and_then(|c| c.parse::<CaseNo>().ok()) else {
            return Ok(Err("the job names no case".into()));
        };
        let loaded = patiently(&self.config().queue, "loading a case to re-run", || async {
            Ok(self.store().case_for_rerun(&case_no).await?)
        })
        .await?;
        let Some(case) = loaded else {
            return Ok(Err(format!("case {case_no} does not exist")));
        };
        let reread = payload.ocr || case.stub || case.format == InputFormat::Text;
        let mut pages: Vec<PageText> = if reread {
            let mut files = Vec::with_capacity(case.originals.len());
            for o in &case.originals {
                match self.files().read_original(&o.sha256) {
                    Ok(b) => files.push((o.file_name.clone(), b)),
                    Err(e) => return Ok(Err(e.to_string())),
                }
            }
            match self.reader().read(Arc::new(files)).await {
                Ok(letter) => letter.pages,
                Err(LetterError::Ocr(e)) if e.is_system() => return Err(SystemError::Ocr(e)),
                Err(e) => return Ok(Err(e.to_string())),
            }
        } else {
            let mut pages = case.pages.clone();
            for p in &mut pages {
                p.text = restore(&p.text, &case.identity);
            }
            pages
        };
        let text = pages.iter().map(|p| p.text.as_str()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n");
        let received = crate::intake::receipt_day(case.received_at);
        let u = Arc::clone(self.understander());
        let owned = text.clone();
        let understanding = match tokio::task::spawn_blocking(move || u.understand(&owned, received)).await {
            Ok(u) => u,
            Err(_) => return Ok(Err("internal error in the rules stage".into())),
        };
        // Redact with the identity found now and the one found before.
        let mut stored = self.understander().redact(&text, &understanding.identity);
        stored = self.understander().redact(&stored, &case.identity);
        redact_pages(self.understander(), &mut pages, &understanding.identity);
        redact_pages(self.understander(), &mut pages, &case.identity);
        let ocr_engine =
            (reread && pages.iter().any(|p| p.origin == PageOrigin::Ocr)).then(|| self.ocr_engine().to_string());
        let run = RunResult {
            kind: if payload.ocr { "ocr" } else { "rules" },
            ocr_engine,
            ocr_confidence: letter_confidence(&pages),
            pages_need_review: pages.iter().any(PageText::needs_review),
            pages: Some(pages),
            text: stored,
            decided: Decided {
                decision: understanding.decision,
                identity: understanding.identity,
                fingerprint: understanding.fingerprint,
                keys: understanding.keys,
            },
        };
        Ok(Ok(PreparedRerun { case, run, lookup_keys: understanding.lookup_keys, received }))
    }

    /// Stores a prepared re-run (or ends its job as failed) and reports it.
    pub(crate) async fn finish_rerun(
        &self,
        job: &Job,
        prepared: Result<PreparedRerun, String>,
    ) -> Result<RerunReport, SystemError> {
        let case_no = job.case_no.clone().unwrap_or_default();
        let p = match prepared {
            Ok(p) => p,
            Err(error) => {
                patiently(&self.config().queue, "ending a failed job", || async {
                    Ok(self.store().fail_job(&job.job_id, &error, None).await?)
                })
                .await?;
                return Ok(RerunReport { case_no, status: "failed", changes: Vec::new(), error: Some(error) });
            }
        };
        let understander = Arc::clone(self.understander());
        let received = p.received;
        let settle = move |d: &mut Decided, candidates: &[Candidate]| {
            understander.settle_decision(&mut d.decision, &d.fingerprint, candidates, received);
        };
        let limits = self.understander().repeat_rules().rules().limits();
        let outcome = patiently(&self.config().queue, "storing a re-run", || async {
            let lookup = RepeatLookup { keys: &p.lookup_keys, limits, settle: &settle };
            Ok(self.store().apply_run(&p.case, &p.run, lookup, Some(&job.job_id)).await?)
        })
        .await?;
        Ok(match outcome {
            RunOutcome::Applied { changes } => RerunReport { case_no, status: "applied", changes, error: None },
            RunOutcome::Suggested { changes } => RerunReport { case_no, status: "suggested", changes, error: None },
        })
    }
}

//! Re-running OCR and/or the rules over stored letters (`xinfang reprocess`), through the
//! same durable queue as intake: one job per case, with an id made of the run's key (mode,
//! rule-set version, OCR engine version) and the case number. Enqueuing the same re-run
//! again adds nothing, so a re-run interrupted at any point is resumed by running the same
//! command again, and a finished one is not done twice. Any `xinfang worker` helps.
//!
//! **Invariant:** a re-run never overwrites a reviewer's decision (see `store::runs`).

use super::{patiently, Intake, LetterError, SystemError};
use crate::digest::sha256;
use crate::store::{CaseForRerun, Job, JobKind, NewJob, RerunPayload, RunOutcome, RunResult};
use crate::understand::restore;
use serde::Serialize;
use std::sync::Arc;
use xinfang_models::{letter_confidence, letter_text, CaseNo, PageOrigin, PageText, RunKind, RunStatus};

/// What a re-run did to one case.
#[derive(Debug, Clone, Serialize)]
pub struct RerunReport {
    pub case_no: String,
    pub status: RunStatus,
    pub changes: Vec<String>,
    pub error: Option<String>,
}

/// The key naming a re-run: its mode and the versions it runs with.
pub fn run_key(ocr: bool, rules_version: &str, ocr_engine: &str) -> String {
    let what = format!("ocr={ocr}|rules={rules_version}|engine={}", if ocr { ocr_engine } else { "-" });
    sha256(what.as_bytes()).as_str()[..12].to_string()
}

/// The job-id prefix of a re-run's jobs.
pub fn run_prefix(key: &str) -> String {
    format!("rerun:{key}:")
}

/// A re-run of one case, read and decided, pending its storage.
pub(super) struct PendingRerun {
    case: CaseForRerun,
    run: RunResult,
}

impl Intake {
    /// The key of a re-run with this binary's rules and OCR engine.
    pub fn rerun_key(&self, ocr: bool) -> String {
        run_key(ocr, self.understander.rules_version(), &self.ocr_engine)
    }

    /// The job ids of a re-run of `cases`.
    pub fn rerun_job_ids(&self, cases: &[CaseNo], ocr: bool) -> Vec<String> {
        let prefix = run_prefix(&self.rerun_key(ocr));
        cases.iter().map(|case| format!("{prefix}{case}")).collect()
    }

    /// Queues a re-run of `cases`, in their order (the order they are worked in), many
    /// jobs to a transaction. Returns how many jobs were added (the others were queued or
    /// done already under the same key).
    pub async fn enqueue_reruns(&self, cases: &[CaseNo], ocr: bool) -> Result<usize, SystemError> {
        let key = self.rerun_key(ocr);
        let payload = serde_json::to_string(&RerunPayload { ocr, run_key: key.clone() })
            .map_err(|e| SystemError::Task(e.to_string()))?;
        let mut added = 0;
        for chunk in cases.chunks(10_000) {
            let jobs: Vec<NewJob> = chunk
                .iter()
                .map(|case| NewJob {
                    job_id: format!("{}{case}", run_prefix(&key)),
                    kind: JobKind::Rerun,
                    letter_sha256: None,
                    case_no: Some(case.to_string()),
                    source_name: case.to_string(),
                    payload: payload.clone(),
                    max_attempts: self.cfg.queue.max_attempts,
                })
                .collect();
            added +=
                patiently(&self.cfg.queue, "queuing a re-run", || async { Ok(self.store.enqueue_many(&jobs).await?) })
                    .await?;
        }
        Ok(added as usize)
    }

    /// Reads a case again for a claimed re-run job: the originals (OCR) when asked or when
    /// the case is a routing stub (it kept no text); otherwise the
    /// stored text with the reporter's identity put back, so that the rules read what they
    /// read at intake. `Ok(Err(reason))` when this case cannot be re-run.
    pub(super) async fn prepare_rerun(&self, job: &Job) -> Result<Result<PendingRerun, String>, SystemError> {
        let payload: RerunPayload = match serde_json::from_str(&job.payload) {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("the job's payload is unreadable: {e}"))),
        };
        let Some(case_no) = job.case_no.as_deref().and_then(|c| c.parse::<CaseNo>().ok()) else {
            return Ok(Err("the job names no case".into()));
        };
        let loaded = patiently(&self.cfg.queue, "loading a case to re-run", || async {
            Ok(self.store.case_for_rerun(&case_no, &payload.run_key).await?)
        })
        .await?;
        let Some(case) = loaded else {
            return Ok(Err(format!("case {case_no} does not exist")));
        };
        let reread = payload.ocr || case.stub;
        let mut pages: Vec<PageText> = if reread {
            let mut files = Vec::with_capacity(case.originals.len());
            for o in &case.originals {
                match self.files.read_original(&o.sha256) {
                    Ok(b) => files.push((o.file_name.clone(), b)),
                    Err(e) => return Ok(Err(e.to_string())),
                }
            }
            match self.reader.read(Arc::new(files)).await {
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
        let text = letter_text(&pages);
        let received = self.understander.receipt_day(case.received_at);
        let u = Arc::clone(&self.understander);
        let owned = text.clone();
        let understanding = match tokio::task::spawn_blocking(move || u.understand(&owned, received)).await {
            Ok(u) => u,
            Err(_) => return Ok(Err("internal error in the rules stage".into())),
        };
        // Redact with the identity found now and the one found before.
        let stored = self.understander.redact(&text, &mut pages, &understanding.identity);
        let stored = self.understander.redact(&stored, &mut pages, &case.identity);
        let ocr_engine = (reread && pages.iter().any(|p| p.origin == PageOrigin::Ocr)).then(|| self.ocr_engine.clone());
        let run = RunResult {
            kind: if payload.ocr { RunKind::Ocr } else { RunKind::Rules },
            ocr_engine,
            ocr_confidence: letter_confidence(&pages),
            pages_need_review: pages.iter().any(PageText::needs_review),
            pages: Some(pages),
            text: stored,
            understanding,
        };
        Ok(Ok(PendingRerun { case, run }))
    }

    /// Stores a prepared re-run (or ends its job as failed) and reports it.
    pub(super) async fn finish_rerun(
        &self,
        job: &Job,
        pending: Result<PendingRerun, String>,
    ) -> Result<RerunReport, SystemError> {
        let case_no = job.case_no.clone().unwrap_or_default();
        let p = match pending {
            Ok(p) => p,
            Err(error) => {
                patiently(&self.cfg.queue, "ending a failed job", || async {
                    Ok(self.store.fail_job(&job.job_id, &error, None).await?)
                })
                .await?;
                return Ok(RerunReport { case_no, status: RunStatus::Failed, changes: Vec::new(), error: Some(error) });
            }
        };
        Ok(match self.registrar.apply_run(&p.case, &p.run, Some(&job.job_id)).await? {
            RunOutcome::Applied { changes } => {
                RerunReport { case_no, status: RunStatus::Applied, changes, error: None }
            }
            RunOutcome::Suggested { changes } => {
                RerunReport { case_no, status: RunStatus::Suggested, changes, error: None }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_key_names_its_mode_and_versions() {
        let rules = run_key(false, "r1", "tess-a");
        assert_eq!(rules, run_key(false, "r1", "tess-b"), "a rules-only re-run does not depend on the engine");
        assert_ne!(rules, run_key(false, "r2", "tess-a"), "new rules, new re-run");
        assert_ne!(run_key(true, "r1", "tess-a"), run_key(true, "r1", "tess-b"), "a new engine, a new OCR re-run");
        assert_ne!(rules, run_key(true, "r1", "tess-a"));
        assert_eq!(rules.len(), 12);
        assert!(run_prefix(&rules).starts_with("rerun:") && run_prefix(&rules).ends_with(':'));
    }
}

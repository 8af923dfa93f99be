//! Rules-only re-runs at the rules' speed (`xinfang reprocess` without `--ocr`): jobs are
//! claimed a batch at a time through the claim index, the cases are read in bulk from the
//! stored text (never the originals), the rules run over the batch on every core, and the
//! batch is settled and stored in one transaction, in the order the letters were received,
//! each letter seeing what the ones before it wrote. While one batch is being stored the
//! next is read and decided.
//!
//! A case the batch cannot take as it stands goes the one-at-a-time way of `rerun.rs`, in
//! its place in the order: a 上级 routing stub (it kept no text), an OCR re-run, and a case
//! whose new reading finds more of the reporter's identity than was redacted (its pages'
//! text must be redacted again).
//!
//! **Invariants:** the same as one job at a time: a job is done only in the transaction that
//! stores its result, and a reviewer's decision is never overwritten (`Store::apply_runs`).

use super::rerun::RerunReport;
use super::worker::WorkOptions;
use super::{patiently, Intake, SystemError};
use crate::store::{Job, RerunPayload, RunOutcome, RunResult, StoredForRules};
use crate::understand::restore;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use xinfang_models::{CaseNo, RunKind, RunStatus, Understanding};

/// Jobs claimed and stored together.
pub const BATCH: usize = 256;

/// One claimed job, read and decided.
enum Step {
    /// Ready to be stored with the batch.
    Ready(Box<(StoredForRules, RunResult)>),
    /// To be worked alone (`prepare_rerun`, `finish_rerun`).
    Alone,
    /// Cannot be re-run: the job ends as failed with this reason.
    Fails(String),
}

/// A claimed batch, in claim order.
struct Prepared {
    steps: Vec<(Job, Step)>,
}

impl Intake {
    /// Works the rules-only re-run jobs whose ids start with `prefix` a batch at a time
    /// until stopped or (with `drain`) until none is left; `on_report` gets each case.
    pub(super) async fn work_rule_batches(
        &self,
        prefix: &str,
        opts: &WorkOptions,
        on_report: &mut impl FnMut(&RerunReport),
    ) -> Result<u64, SystemError> {
        let poll = Duration::from_millis(self.cfg.queue.poll_ms);
        let mut done = 0;
        let mut current = self.prepare_batch(self.claim_batch(prefix).await?).await?;
        loop {
            if current.steps.is_empty() {
                if opts.stop.load(Ordering::SeqCst) {
                    break;
                }
                if opts.drain && self.store.queue_counts(crate::store::JobKind::Rerun, Some(prefix)).await?.drained() {
                    break;
                }
                tokio::time::sleep(poll).await;
                current = self.prepare_batch(self.claim_batch(prefix).await?).await?;
                continue;
            }
            // The next batch is claimed now and read and decided while this one is stored.
            let next_jobs =
                if opts.stop.load(Ordering::SeqCst) { Vec::new() } else { self.claim_batch(prefix).await? };
            let (stored, next) = tokio::join!(self.store_batch(current), self.prepare_batch(next_jobs));
            for report in stored? {
                done += 1;
                on_report(&report);
            }
            current = next?;
        }
        Ok(done)
    }

    /// Claims the next batch and records, before anything is read, that the run reads its
    /// cases' reporters' identities (here, not while the batch before is being stored: on
    /// SQLite that write would wait for the other's transaction).
    async fn claim_batch(&self, prefix: &str) -> Result<Vec<Job>, SystemError> {
        let lease = self.lease().as_millis() as i64;
        let jobs = patiently(&self.cfg.queue, "claiming re-run jobs", || async {
            Ok(self.store.claim_batch(&self.worker, crate::store::JobKind::Rerun, Some(prefix), BATCH, lease).await?)
        })
        .await?;
        // The jobs share the prefix, hence the run; only its rules-only jobs are read here.
        let payloads: Vec<RerunPayload> =
            jobs.iter().filter_map(|j| serde_json::from_str::<RerunPayload>(&j.payload).ok()).collect();
        if let Some(first) = payloads.iter().find(|p| !p.ocr) {
            let n = payloads.iter().filter(|p| !p.ocr).count() as i64;
            patiently(&self.cfg.queue, "recording the re-run's use of identities", || async {
                Ok(self.store.record_run_identity_use(&first.run_key, n).await?)
            })
            .await?;
        }
        Ok(jobs)
    }

    /// Reads the batch's cases in bulk and runs the rules over them on every core.
    async fn prepare_batch(&self, jobs: Vec<Job>) -> Result<Prepared, SystemError> {
        if jobs.is_empty() {
            return Ok(Prepared { steps: Vec::new() });
        }
        // Which jobs the batch takes.
        let mut wanted: Vec<CaseNo> = Vec::new();
        let mut plan: Vec<(Job, Result<Option<CaseNo>, String>)> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let payload: Result<RerunPayload, _> = serde_json::from_str(&job.payload);
            let case = job.case_no.as_deref().and_then(|c| c.parse::<CaseNo>().ok());
            let p = match (payload, case) {
                _ if job.exhausted() => Err(format!(
                    "gave up after {} attempts: re-running it stopped its worker each time",
                    job.max_attempts
                )),
                (Err(e), _) => Err(format!("the job's payload is unreadable: {e}")),
                (_, None) => Err("the job names no case".into()),
                (Ok(p), Some(_)) if p.ocr => Ok(None),
                (Ok(_), Some(case)) => {
                    wanted.push(case.clone());
                    Ok(Some(case))
                }
            };
            plan.push((job, p));
        }
        let loaded = if wanted.is_empty() {
            Vec::new()
        } else {
            patiently(&self.cfg.queue, "loading cases to re-run", || async {
                Ok(self.store.cases_for_rules_rerun(&wanted).await?)
            })
            .await?
        };
        let mut by_case: std::collections::HashMap<String, StoredForRules> =
            loaded.into_iter().map(|s| (s.case.case_no.to_string(), s)).collect();
        // The rules, over the cases that have text, split across the cores.
        let mut work: Vec<(usize, StoredForRules)> = Vec::new();
        let mut steps: Vec<(Job, Step)> = Vec::with_capacity(plan.len());
        for (i, (job, p)) in plan.into_iter().enumerate() {
            let step = match p {
                Err(e) => Step::Fails(e),
                Ok(None) => Step::Alone,
                Ok(Some(case)) => match by_case.remove(&case.to_string()) {
                    None => Step::Fails(format!("case {case} does not exist")),
                    Some(s) if s.case.stub => Step::Alone,
                    Some(s) => {
                        work.push((i, s));
                        Step::Alone // replaced below when the rules have read it
                    }
                },
            };
            steps.push((job, step));
        }
        for (i, ready) in self.decide_all(work).await? {
            steps[i].1 = match ready {
                Some(r) => Step::Ready(Box::new(r)),
                None => Step::Alone,
            };
        }
        Ok(Prepared { steps })
    }

    /// Runs the rules over stored cases on up to as many threads as there are cores. `None`
    /// for a case whose reading finds identity not yet redacted from its stored text.
    async fn decide_all(
        &self,
        work: Vec<(usize, StoredForRules)>,
    ) -> Result<Vec<(usize, Option<(StoredForRules, RunResult)>)>, SystemError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(work.len().max(1));
        let per = work.len().div_ceil(threads).max(1);
        let mut parts: Vec<Vec<(usize, StoredForRules)>> = Vec::with_capacity(threads);
        let mut it = work.into_iter().peekable();
        while it.peek().is_some() {
            parts.push(it.by_ref().take(per).collect());
        }
        let tasks: Vec<_> = parts
            .into_iter()
            .map(|part| {
                let me = Arc::clone(&self.understander);
                tokio::task::spawn_blocking(move || {
                    part.into_iter().map(|(i, s)| (i, decide(&me, s))).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.extend(t.await.map_err(|e| SystemError::Task(format!("the rules stage stopped: {e}")))?);
        }
        Ok(out)
    }

    /// Stores a prepared batch in order: runs of ready cases together in one transaction,
    /// a case to be worked alone in its place between them, failures ended as failed.
    async fn store_batch(&self, batch: Prepared) -> Result<Vec<RerunReport>, SystemError> {
        let mut reports = Vec::with_capacity(batch.steps.len());
        let mut ready: Vec<(Job, StoredForRules, RunResult)> = Vec::new();
        for (job, step) in batch.steps {
            match step {
                Step::Ready(r) => {
                    let (s, run) = *r;
                    ready.push((job, s, run));
                }
                Step::Alone => {
                    reports.extend(self.store_ready(std::mem::take(&mut ready)).await?);
                    let prepared = self.prepare_rerun(&job).await?;
                    reports.push(self.finish_rerun(&job, prepared).await?);
                }
                Step::Fails(error) => {
                    reports.extend(self.store_ready(std::mem::take(&mut ready)).await?);
                    reports.push(self.finish_rerun(&job, Err(error)).await?);
                }
            }
        }
        reports.extend(self.store_ready(ready).await?);
        Ok(reports)
    }

    /// Stores ready re-runs in one transaction.
    async fn store_ready(&self, ready: Vec<(Job, StoredForRules, RunResult)>) -> Result<Vec<RerunReport>, SystemError> {
        if ready.is_empty() {
            return Ok(Vec::new());
        }
        let u = &self.understander;
        let settle = |at: i64, d: &mut Understanding, c: &[xinfang_models::Candidate]| {
            u.settle(d, c, u.receipt_day(at));
        };
        let runs: Vec<_> = ready.iter().map(|(job, s, run)| (&s.case, run, job.job_id.as_str())).collect();
        let outcomes = patiently(&self.cfg.queue, "storing re-runs", || async {
            Ok(self.store.apply_runs(&runs, u.candidate_limits(), &settle).await?)
        })
        .await?;
        Ok(ready
            .iter()
            .zip(outcomes)
            .map(|((job, _, _), outcome)| {
                let case_no = job.case_no.clone().unwrap_or_default();
                match outcome {
                    RunOutcome::Applied { changes } => {
                        RerunReport { case_no, status: RunStatus::Applied, changes, error: None }
                    }
                    RunOutcome::Suggested { changes } => {
                        RerunReport { case_no, status: RunStatus::Suggested, changes, error: None }
                    }
                }
            })
            .collect())
    }
}

/// The rules over one stored case: its text with the identity put back, read as at intake.
/// `None` when the new reading finds identity the stored text still shows.
fn decide(u: &crate::understand::Understander, s: StoredForRules) -> Option<(StoredForRules, RunResult)> {
    let text = restore(&s.text, &s.case.identity);
    let understanding = u.understand(&text, u.receipt_day(s.case.received_at));
    let redacted = u.redact(&text, &mut [], &understanding.identity);
    let redacted = u.redact(&redacted, &mut [], &s.case.identity);
    if redacted != s.text {
        return None;
    }
    let run = RunResult {
        kind: RunKind::Rules,
        ocr_engine: None,
        pages: None,
        ocr_confidence: None,
        text: redacted,
        understanding,
        pages_need_review: s.pages_need_review,
    };
    Some((s, run))
}

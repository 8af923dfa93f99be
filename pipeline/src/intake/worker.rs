//! The worker loop (`xinfang worker`, and inside `watch` and `reprocess`): claims jobs from
//! the durable queue, letters before re-runs, a bounded number at a time, and works each to
//! its end. Several workers on several machines may share one PostgreSQL store.
//!
//! **Invariant:** a job is done only in the transaction that stores its result; a worker
//! that stops at any point leaves its jobs running under a lease that expires, and they are
//! taken up again.

use super::rerun::{PendingRerun, RerunReport};
use super::{Intake, LeaseKeeper, LetterReport, Pending, SystemError};
use crate::store::{Job, JobKind, NewCase};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a worker should do.
#[derive(Debug, Clone)]
pub struct WorkOptions {
    /// Stop once the queue (of the kinds worked) has nothing queued or running.
    pub drain: bool,
    /// Work letter jobs.
    pub letters: bool,
    /// Work re-run jobs, only those whose id starts with this (all with `Some("")`).
    pub reruns: Option<String>,
    /// Set to stop claiming; jobs in flight are finished.
    pub stop: Arc<AtomicBool>,
    /// Work the re-run jobs (and no letters) a batch at a time (`batch.rs`): for rules-only
    /// re-runs, whose work is the rules and the store, not OCR.
    pub batch: bool,
}

/// One job's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum WorkReport {
    Letter(Box<LetterReport>),
    Rerun(RerunReport),
}

/// A claimed job, read and ready to be stored.
enum Worked {
    Letter(Box<Result<Pending, SystemError>>),
    Rerun(Box<Result<Result<PendingRerun, String>, SystemError>>),
}

impl Intake {
    /// Claims and works jobs until stopped (or, with `drain`, until the queue is empty),
    /// calling `on_report` for each. A passing system failure (locked database, full disk)
    /// puts the job back with backoff and the worker goes on.
    pub async fn work(&self, opts: WorkOptions, mut on_report: impl FnMut(&WorkReport)) -> Result<u64, SystemError> {
        use futures_util::stream::{self, StreamExt};
        let _leases = LeaseKeeper::start(self.store.clone(), self.worker.clone(), self.lease());
        self.recover().await?;
        if let (true, false, Some(prefix)) = (opts.batch, opts.letters, &opts.reruns) {
            let mut each = |r: &RerunReport| on_report(&WorkReport::Rerun(r.clone()));
            return self.work_rule_batches(prefix, &opts, &mut each).await;
        }
        let poll = Duration::from_millis(self.cfg.queue.poll_ms);
        let (me, o) = (self, &opts);
        let claims = stream::unfold((), move |()| async move {
            loop {
                if o.stop.load(Ordering::SeqCst) {
                    return None;
                }
                match me.claim_next(o).await {
                    Ok(Some(job)) => return Some((job, ())),
                    Ok(None) => {}
                    Err(e) => tracing::warn!("cannot claim a job: {e}"),
                }
                if o.drain && me.queue_drained(o).await.unwrap_or(false) {
                    return None;
                }
                tokio::time::sleep(poll).await;
            }
        });
        let worked = claims
            .map(move |job: Job| async move {
                let w = match job.kind {
                    JobKind::Letter => Worked::Letter(Box::new(me.prepare_job(job.clone()).await)),
                    // A re-run that stopped its worker each time is not tried again.
                    JobKind::Rerun if job.exhausted() => Worked::Rerun(Box::new(Ok(Err(format!(
                        "gave up after {} attempts: re-running it stopped its worker each time",
                        job.max_attempts
                    ))))),
                    JobKind::Rerun => Worked::Rerun(Box::new(me.prepare_rerun(&job).await)),
                };
                (job, w)
            })
            .buffered(self.reader.in_flight());
        // As in `run`: worked jobs reach the registration through a channel, so that jobs go
        // on being claimed and read while a group is registered, and the letters read
        // meanwhile are registered together in one transaction (group commit), in order.
        let (sender, mut receiver) = tokio::sync::mpsc::channel(super::GROUP);
        let produce = async move {
            let mut worked = std::pin::pin!(worked);
            while let Some(item) = worked.next().await {
                if sender.send(item).await.is_err() {
                    break;
                }
            }
        };
        let consume = async {
            let mut done = 0;
            let mut arrived = Vec::with_capacity(super::GROUP);
            while receiver.recv_many(&mut arrived, super::GROUP).await > 0 {
                let mut group: Vec<(Job, NewCase, String)> = Vec::new();
                for (job, w) in arrived.drain(..) {
                    let outcome = match w {
                        Worked::Letter(p) => match *p {
                            Ok(Pending::Ready { loaded, letter, job: id, received_at, understanding }) => {
                                let new = self.read_case(&job.source_name, loaded, letter, received_at, *understanding);
                                group.push((job, new, id));
                                continue;
                            }
                            Ok(p) => {
                                // Whatever is not a read letter waits for the letters before it.
                                done += self.register_jobs(std::mem::take(&mut group), &mut on_report).await;
                                self.finish(&job.source_name, None, p).await.map(|r| WorkReport::Letter(Box::new(r)))
                            }
                            Err(e) => Err(e),
                        },
                        Worked::Rerun(p) => {
                            done += self.register_jobs(std::mem::take(&mut group), &mut on_report).await;
                            match *p {
                                Ok(p) => self.finish_rerun(&job, p).await.map(WorkReport::Rerun),
                                Err(e) => Err(e),
                            }
                        }
                    };
                    match outcome {
                        Ok(report) => {
                            done += 1;
                            on_report(&report);
                        }
                        Err(e) => self.put_back(&job, &e).await,
                    }
                }
                done += self.register_jobs(group, &mut on_report).await;
            }
            done
        };
        let ((), done) = tokio::join!(produce, consume);
        Ok(done)
    }

    /// Registers claimed and read letters in one transaction (group commit) and reports
    /// them; on a failure that does not pass, every job of the group is put back.
    async fn register_jobs(&self, group: Vec<(Job, NewCase, String)>, on_report: &mut impl FnMut(&WorkReport)) -> u64 {
        let letters: Vec<(&str, &NewCase, &str)> =
            group.iter().map(|(job, new, id)| (job.source_name.as_str(), new, id.as_str())).collect();
        let made = match self.register_read_letters(&letters).await {
            Ok(made) => made,
            Err(e) => {
                for (job, _, _) in &group {
                    self.put_back(job, &e).await;
                }
                return 0;
            }
        };
        let mut done = 0;
        for ((job, _, _), report) in group.iter().zip(made) {
            match report {
                Ok(r) => {
                    done += 1;
                    on_report(&WorkReport::Letter(Box::new(r)));
                }
                // Registered and committed; only its report could not be made.
                Err(e) => tracing::error!("job {} ({}): registered, but no report: {e}", job.job_id, job.source_name),
            }
        }
        done
    }

    /// Queues a job again after a failure of the system, with backoff.
    async fn put_back(&self, job: &Job, e: &SystemError) {
        let delay = self.backoff(job);
        tracing::error!("job {} ({}): {e}; it is queued again in {} s", job.job_id, job.source_name, delay.as_secs());
        if let Err(e2) = self.store.retry_later(&job.job_id, &e.to_string(), delay.as_millis() as i64).await {
            tracing::error!("cannot queue job {} again ({e2}); its lease will expire", job.job_id);
        }
    }

    /// The next ready job: letters first (a mailroom's letters wait for no archive re-run).
    async fn claim_next(&self, opts: &WorkOptions) -> Result<Option<Job>, SystemError> {
        let lease = self.lease().as_millis() as i64;
        if opts.letters {
            if let Some(job) = self.store.claim(&self.worker, JobKind::Letter, None, lease).await? {
                return Ok(Some(job));
            }
        }
        if let Some(prefix) = &opts.reruns {
            if let Some(job) = self.store.claim(&self.worker, JobKind::Rerun, Some(prefix), lease).await? {
                return Ok(Some(job));
            }
        }
        // Jobs of workers of this machine that are gone need not wait for their leases.
        self.store.release_dead_local_workers().await?;
        Ok(None)
    }

    /// Nothing queued or running of the kinds worked.
    async fn queue_drained(&self, opts: &WorkOptions) -> Result<bool, SystemError> {
        let mut drained = true;
        if opts.letters {
            drained &= self.store.queue_counts(JobKind::Letter, None).await?.drained();
        }
        if let Some(prefix) = &opts.reruns {
            drained &= self.store.queue_counts(JobKind::Rerun, Some(prefix)).await?.drained();
        }
        Ok(drained)
    }

    /// Backoff before a job that failed for a passing reason is tried again.
    fn backoff(&self, job: &Job) -> Duration {
        backoff(self.cfg.queue.retry_base_secs, job.attempts)
    }
}

/// `base` seconds after the first attempt, doubled for each further one (at most 1024 ×).
fn backoff(base_secs: u64, attempts: u32) -> Duration {
    Duration::from_secs(base_secs.saturating_mul(1 << attempts.saturating_sub(1).min(10)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{testing, Enqueued};
    use xinfang_models::{IngestStatus, JobState, LetterClass};

    #[test]
    fn a_job_that_keeps_failing_waits_twice_as_long_each_time_up_to_a_bound() {
        let waits: Vec<u64> = [1, 2, 3, 4].iter().map(|&a| backoff(10, a).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80]);
        assert_eq!(backoff(10, 50), backoff(10, 11), "the doubling stops");
    }

    #[tokio::test]
    async fn a_draining_worker_registers_what_is_queued_and_stops() {
        let t = testing::intake(|_| {}).await;
        let input = testing::letter(
            &t,
            "in/a.txt",
            "县纪委：\n我举报石桥镇柳河村党支部书记赵德明把弟媳评成低保户，每月领580元，还侵占集体土地补偿款。\n",
        );
        let Enqueued::Queued { job_id } = t.intake.enqueue(&input, None).await.expect("enqueue") else {
            panic!("a new letter is queued")
        };
        let stop = Arc::new(AtomicBool::new(false));
        let opts = WorkOptions { drain: true, letters: true, reruns: None, stop, batch: false };
        let mut reports = Vec::new();
        let done = t.intake.work(opts, |r| reports.push(r.clone())).await.expect("work");
        assert_eq!(done, 1);
        let [WorkReport::Letter(l)] = reports.as_slice() else { panic!("one letter report: {reports:?}") };
        assert_eq!(l.status, IngestStatus::Registered);
        assert_eq!(l.decision.as_ref().map(|d| d.class), Some(LetterClass::Accusation));
        let job = t.intake.store.job(&job_id).await.expect("job").expect("exists");
        assert_eq!((job.state, job.result), (JobState::Done, l.case_no.clone()));
        t.pool.shutdown().await;
    }
}

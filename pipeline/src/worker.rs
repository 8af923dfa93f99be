//! The worker loop (`xinfang worker`, and inside `watch` and `reprocess`): claims jobs from
//! the durable queue, letters before re-runs, a bounded number at a time, and works each to
//! its end. Several workers on several machines may share one PostgreSQL store.
//!
//! **Invariant:** a job is done only in the transaction that stores its result; a worker
//! that stops at any point leaves its jobs running under a lease that expires, and they are
//! taken up again.

use crate::intake::{Intake, LeaseKeeper, LetterReport, Prepared, SystemError};
use crate::reprocess::{PreparedRerun, RerunReport};
use crate::store::{Job, JobKind};
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
    Letter(Result<Prepared, SystemError>),
    Rerun(Box<Result<Result<PreparedRerun, String>, SystemError>>),
}

impl Intake {
    /// Claims and works jobs until stopped (or, with `drain`, until the queue is empty),
    /// calling `on_report` for each. A passing system failure (locked database, full disk)
    /// puts the job back with backoff and the worker goes on.
    pub async fn work(&self, opts: WorkOptions, mut on_report: impl FnMut(&WorkReport)) -> Result<u64, SystemError> {
        use futures_util::stream::{self, StreamExt};
        let _leases = LeaseKeeper::start(self.store().clone(), self.worker().clone(), self.lease());
        self.recover().await?;
        let poll = Duration::from_millis(self.config().queue.poll_ms);
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
                    JobKind::Letter => Worked::Letter(me.prepare_letter_job(job.clone()).await.1),
                    // A re-run that stopped its worker each time is not tried again.
                    JobKind::Rerun if job.exhausted() => Worked::Rerun(Box::new(Ok(Err(format!(
                        "gave up after {} attempts: re-running it stopped its worker each time",
                        job.max_attempts
                    ))))),
                    JobKind::Rerun => Worked::Rerun(Box::new(me.prepare_rerun(&job).await)),
                };
                (job, w)
            })
            .buffered(self.in_flight());
        let mut worked = std::pin::pin!(worked);
        let mut done = 0;
        while let Some((job, w)) = worked.next().await {
            let outcome = match w {
                Worked::Letter(p) => match p {
                    Ok(p) => self.finish_letter_job(&job.source_name, p).await.map(|r| WorkReport::Letter(Box::new(r))),
                    Err(e) => Err(e),
                },
                Worked::Rerun(p) => match *p {
                    Ok(p) => self.finish_rerun(&job, p).await.map(WorkReport::Rerun),
                    Err(e) => Err(e),
                },
            };
            match outcome {
                Ok(report) => {
                    done += 1;
                    on_report(&report);
                }
                Err(e) => {
                    let delay = self.backoff(&job);
                    tracing::error!(
                        "job {} ({}): {e}; it is queued again in {} s",
                        job.job_id,
                        job.source_name,
                        delay.as_secs()
                    );
                    if let Err(e2) =
                        self.store().retry_later(&job.job_id, &e.to_string(), delay.as_millis() as i64).await
                    {
                        tracing::error!("cannot queue job {} again ({e2}); its lease will expire", job.job_id);
                    }
                }
            }
        }
        Ok(done)
    }

    /// The next ready job: letters first (a mailroom's letters wait for no archive re-run).
    async fn claim_next(&self, opts: &WorkOptions) -> Result<Option<Job>, SystemError> {
        let lease = self.lease().as_millis() as i64;
        if opts.letters {
            if let Some(job) = self.store().claim(self.worker(), JobKind::Letter, None, lease).await? {
                return Ok(Some(job));
            }
        }
        if let Some(prefix) = &opts.reruns {
            if let Some(job) = self.store().claim(self.worker(), JobKind::Rerun, Some(prefix), lease).await? {
                return Ok(Some(job));
            }
        }
        // Jobs of workers of this machine that are gone need not wait for their leases.
        self.store().release_dead_local_workers().await?;
        Ok(None)
    }

    /// Nothing queued or running of the kinds worked.
    async fn queue_drained(&self, opts: &WorkOptions) -> Result<bool, SystemError> {
        let mut drained = true;
        if opts.letters {
            drained &= self.store().queue_counts(JobKind::Letter, None).await?.drained();
        }
        if let Some(prefix) = &opts.reruns {
            drained &= self.store().queue_counts(JobKind::Rerun, Some(prefix)).await?.drained();
        }
        Ok(drained)
    }

    /// Backoff before a job that failed for a passing reason is tried again.
    fn backoff(&self, job: &Job) -> Duration {
        let base = self.config().queue.retry_base_secs;
        Duration::from_secs(base.saturating_mul(1 << job.attempts.saturating_sub(1).min(10)))
    }
}

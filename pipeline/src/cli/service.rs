//! What the commands that touch the store start and stop: the store (waiting while it is
//! locked), the rules, the OCR engines and the intake over them, and the way a long-running
//! command ends: SIGTERM or Ctrl-C stops taking new work, work in flight has the grace
//! period to finish, then the engines stop and the store closes.

use anyhow::{Context, Result};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xinfang::config::Config;
use xinfang::intake::{patiently, Intake};
use xinfang::stages::ocr::OcrPool;
use xinfang::store::{display_url, Store};
use xinfang::understand::Understander;

/// Opens the store, waiting (with backoff, saying so) while the database is locked or cannot
/// be reached, for at most `queue.system_retry_secs`.
pub async fn open_store(cfg: &Config, db: Option<&str>) -> Result<Store> {
    let url = db.map(str::to_string).unwrap_or_else(|| cfg.default_database_url());
    patiently(&cfg.queue, "opening the case store", || async { Ok(Store::open(&url).await?) })
        .await
        .with_context(|| format!("opening the case store at {}", display_url(&url)))
}

/// The understanding stages compiled from the configured rule data.
pub fn understander(cfg: &Config) -> Result<Understander> {
    Ok(Understander::new(&cfg.catalogue()?)?)
}

/// The OCR engines: one per configured worker.
pub fn engines(cfg: &Config) -> Result<OcrPool> {
    Ok(OcrPool::start(&cfg.ocr, &cfg.limits, cfg.ocr.worker_count())?)
}

/// The intake with its store and engines, and the flag a signal sets to stop it.
pub struct Service {
    pub intake: Intake,
    pool: OcrPool,
    grace: Duration,
    /// Set by SIGTERM or Ctrl-C (during `until_stopped`): take no new work.
    pub stop: Arc<AtomicBool>,
}

impl Service {
    pub async fn start(cfg: &Arc<Config>, db: Option<&str>) -> Result<Service> {
        let store = open_store(cfg, db).await?;
        let pool = engines(cfg)?;
        let intake = Intake::new(Arc::clone(cfg), store, pool.clone(), Arc::new(understander(cfg)?));
        Ok(Service {
            intake,
            pool,
            grace: Duration::from_secs(cfg.watch.shutdown_grace_secs),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs `work` to its end, or, once a signal has set `stop`, for the grace period at
    /// most (then `None`: what is unfinished stays queued).
    pub async fn until_stopped<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            r = work => Some(r),
            _ = stop_then_grace(Arc::clone(&self.stop), self.grace) => None,
        }
    }

    /// Whether a signal asked to stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Stops the engines and closes the store (flushing SQLite's write-ahead log).
    pub async fn close(self) {
        self.pool.shutdown().await;
        self.intake.store().clone().close().await;
    }
}

/// Waits for SIGTERM or Ctrl-C, sets `stop` (no new work is taken; work in flight goes on),
/// then waits out the grace period. Never completes without a signal.
async fn stop_then_grace(stop: Arc<AtomicBool>, grace: Duration) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    stop.store(true, Ordering::SeqCst);
    eprintln!("stopping: no new letters are taken; those in flight have {} s to finish", grace.as_secs());
    tokio::time::sleep(grace).await;
}

//! Waiting out a passing system problem: a database locked by another program, a full disk,
//! a server that does not answer. The operation runs again with backoff, saying so on
//! stderr, for at most `queue.system_retry_secs`; anything else fails at once.

use super::SystemError;
use crate::config::QueueConfig;
use std::time::{Duration, Instant};

/// Runs a system operation again while it fails for a passing reason, with backoff.
pub async fn patiently<T, F, Fut>(q: &QueueConfig, what: &str, mut op: F) -> Result<T, SystemError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SystemError>>,
{
    let start = Instant::now();
    let limit = Duration::from_secs(q.system_retry_secs);
    let mut delay = Duration::from_millis(250);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => match e.transient() {
                Some(why) if start.elapsed() + delay <= limit => {
                    tracing::warn!("{what}: {why}; retrying in {:.1} s ({e})", delay.as_secs_f32());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(8));
                }
                Some(why) => {
                    tracing::error!("{what}: {why}; gave up after {} s", start.elapsed().as_secs());
                    return Err(e);
                }
                None => return Err(e),
            },
        }
    }
}

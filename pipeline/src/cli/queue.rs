//! `xinfang queue`: jobs in the queue, per kind and state.

use super::format::out;
use super::service::open_store;
use anyhow::Result;
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang_models::JobKind;

pub async fn run(cfg: &Config, db: Option<&str>) -> Result<ExitCode> {
    let store = open_store(cfg, db).await?;
    for kind in JobKind::ALL {
        let c = store.queue_counts(kind, None).await?;
        out!(
            "{:<7} queued {:>7}  running {:>5}  done {:>8}  failed {:>6}",
            kind.as_str(),
            c.queued,
            c.running,
            c.done,
            c.failed
        )?;
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

//! `xinfang worker`: works the job queue (letters before re-runs) until stopped, or with
//! `--drain` until it is empty.

use super::format::print_work_report;
use super::service::Service;
use anyhow::Result;
use std::process::ExitCode;
use std::sync::Arc;
use xinfang::config::Config;
use xinfang::intake::worker::WorkOptions;

pub async fn run(cfg: &Arc<Config>, db: Option<&str>, drain: bool, json: bool) -> Result<ExitCode> {
    let service = Service::start(cfg, db).await?;
    let opts = WorkOptions {
        drain,
        letters: true,
        reruns: Some(String::new()),
        stop: Arc::clone(&service.stop),
        batch: false,
    };
    let finished = service.until_stopped(service.intake.work(opts, |r| print_work_report(r, json))).await;
    service.close().await;
    match finished {
        Some(r) => eprintln!("worker: {} job(s) done", r?),
        None => eprintln!("worker: grace period over; unfinished jobs stay queued for the next worker"),
    }
    Ok(ExitCode::SUCCESS)
}

//! `xinfang decide FILE…`: decides text letters without storing anything and without a
//! repeat lookup, to try rule changes.

use super::format::{out, put};
use super::service::understander;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang::stages::normalize::normalize;
use xinfang_models::CaseNo;

pub fn run(cfg: &Config, files: &[PathBuf]) -> Result<ExitCode> {
    let u = understander(cfg)?;
    let today = u.receipt_day(chrono::Utc::now().timestamp_millis());
    let dry_run = CaseNo { organ: "DRY".into(), year: 0, channel: cfg.numbering.channel, seq: 0 };
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let understanding = u.understand(&normalize(&text), today);
        out!("== {}", f.display())?;
        put!("{}", super::explain::render(&dry_run, &understanding.decision))?;
    }
    Ok(ExitCode::SUCCESS)
}

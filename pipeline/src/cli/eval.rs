//! `xinfang eval LABELS`: a labelled letter set through the whole intake into a temporary
//! store, scored per field.

use super::format::put;
use super::service::understander;
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use xinfang::config::Config;
use xinfang::eval::Part;

pub async fn run(cfg: &Config, labels: &Path, part: &str, check: bool, verbose: bool) -> Result<ExitCode> {
    let part = Part::parse(part).ok_or_else(|| anyhow::anyhow!("unknown part {part}: all, tune or held-out"))?;
    let report = xinfang::eval::evaluate(cfg, labels, part, Arc::new(understander(cfg)?)).await?;
    put!("{}", report.render(verbose))?;
    let missed = report.against_targets().iter().any(|t| !t.3);
    Ok(if check && missed { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

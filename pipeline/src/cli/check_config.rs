//! `xinfang check-config`: the configuration and the rule files, every problem at once.

use anyhow::Result;
use std::process::ExitCode;
use xinfang::config::Config;

pub fn run(cfg: &Config) -> Result<ExitCode> {
    let cat = cfg.catalogue()?;
    println!("configuration is valid (rules {})", cat.rules.version);
    Ok(ExitCode::SUCCESS)
}

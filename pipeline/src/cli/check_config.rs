//! `xinfang check-config`: the configuration and the rule files, every problem at once.

use super::format::out;
use anyhow::Result;
use std::process::ExitCode;
use xinfang::config::Config;

pub fn run(cfg: &Config) -> Result<ExitCode> {
    let cat = cfg.catalogue()?;
    out!("configuration is valid (rules {})", cat.rules.version)?;
    if !xinfang::stages::ingest::has_cjk_font() {
        eprintln!(
            "note: no CJK font found (fonts-wqy-microhei): Chinese text a PDF draws in fonts it does not embed \
             cannot be drawn for OCR; pipeline/scripts/setup.sh installs it"
        );
    }
    Ok(ExitCode::SUCCESS)
}

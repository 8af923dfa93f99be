//! `xinfang ocr FILE…`: the normalised text of files, nothing stored.

use super::format::out;
use super::service::engines;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use xinfang::config::Config;
use xinfang::intake::Reader;
use xinfang_models::letter_text;

pub async fn run(cfg: &Arc<Config>, out: Option<&Path>, files: &[PathBuf]) -> Result<ExitCode> {
    let pool = engines(cfg)?;
    let reader = Reader::new(Arc::clone(cfg), pool.clone());
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut failed = false;
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {}: cannot read: {e}", file.display());
                failed = true;
                continue;
            }
        };
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match reader.read(Arc::new(vec![(name, bytes)])).await {
            Ok(letter) => {
                let text = letter_text(&letter.pages);
                match out {
                    Some(dir) => {
                        let stem = file
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "letter".into());
                        let target = dir.join(format!("{stem}.txt"));
                        std::fs::write(&target, format!("{text}\n"))
                            .with_context(|| format!("writing {}", target.display()))?;
                    }
                    None => out!("{text}")?,
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                failed = true;
            }
        }
    }
    pool.shutdown().await;
    Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

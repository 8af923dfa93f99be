//! `xinfang list`: the most recent cases, newest first; `--review`: those waiting for a
//! reviewer, the longest waiting first.

use super::format::{self, out};
use super::service::open_store;
use anyhow::Result;
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang_models::display::one_line;

pub async fn run(cfg: &Config, db: Option<&str>, limit: i64, review: bool, json: bool) -> Result<ExitCode> {
    let store = open_store(cfg, db).await?;
    let cases = if review { store.review_queue(limit).await? } else { store.list(limit).await? };
    if json {
        for c in &cases {
            out!("{}", serde_json::to_string(c)?)?;
        }
    } else {
        let zone = cfg.time_zone();
        out!(
            "{:<20} {:<10} {:>5} {:>6} {:>6} {:<6} {:<16} source",
            "case",
            "status",
            "pages",
            "chars",
            "conf",
            "review",
            "received"
        )?;
        for c in &cases {
            out!(
                "{:<20} {:<10} {:>5} {:>6} {:>6} {:<6} {:<16} {}",
                c.case_no,
                c.status.as_str(),
                c.page_count,
                c.chars,
                format::conf(c.ocr_confidence.map(|v| v as f32)),
                if c.needs_review { "yes" } else { "" },
                format::time(c.received_at, zone),
                one_line(&c.source_name)
            )?;
        }
        out!("{} case(s) shown, {} in the store", cases.len(), store.count().await?)?;
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

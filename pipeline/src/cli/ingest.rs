//! `xinfang ingest PATH…`: registers letters in input order and prints a table (or one JSON
//! object per letter). Exit status 2 when any letter failed.

use super::format::{self, progress_bar};
use super::service::Service;
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use xinfang::config::Config;
use xinfang::intake::{expand_inputs, LetterReport};
use xinfang_models::IngestStatus;

pub async fn run(cfg: &Arc<Config>, db: Option<&str>, paths: &[PathBuf], json: bool) -> Result<ExitCode> {
    let service = Service::start(cfg, db).await?;
    let inputs = expand_inputs(paths);
    let bar = progress_bar(inputs.len() as u64);
    let mut stdout = std::io::stdout().lock();
    let reports = service
        .intake
        .run(inputs, |r| {
            if let Some(err) = &r.error {
                bar.suspend(|| eprintln!("error: {}: {}", r.source, err));
            }
            if json {
                if let Ok(line) = serde_json::to_string(r) {
                    let _ = writeln!(stdout, "{line}");
                }
            }
            bar.inc(1);
        })
        .await;
    bar.finish_and_clear();
    service.close().await;
    let reports = reports?;
    if !json {
        print!("{}", table(&reports));
    }
    let failed = reports.iter().any(|r| r.status == IngestStatus::Failed);
    Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// The table of a batch: one line per letter, then the counts.
fn table(reports: &[LetterReport]) -> String {
    let mut out = format!(
        "{:<3} {:<10} {:<20} {:>5} {:>5} {:>6} {:<6} {:<28} source / note\n",
        "#", "status", "case", "pages", "conf", "chars", "review", "decision"
    );
    for (i, r) in reports.iter().enumerate() {
        let chars = r.text.as_ref().map(|t| t.chars().filter(|c| !c.is_whitespace()).count());
        let note = match (&r.error, r.flags.is_empty()) {
            (Some(e), _) => format!("{}  ({e})", r.source),
            (None, false) => format!("{}  [{}]", r.source, r.flags.join(" ")),
            (None, true) => r.source.clone(),
        };
        let decision = match &r.decision {
            Some(d) => format!(
                "{} {} {}{}",
                d.class.as_str(),
                if d.named { "实名" } else { "匿名" },
                d.handling_level.map_or("-", |l| l.as_str()),
                if d.repeat_of.is_some() {
                    " 重复"
                } else if d.new_facts_of.is_some() {
                    " 新事实"
                } else {
                    ""
                }
            ),
            None => "-".into(),
        };
        out.push_str(&format!(
            "{:<3} {:<10} {:<20} {:>5} {:>5} {:>6} {:<6} {:<28} {}\n",
            i + 1,
            r.status.as_str(),
            r.case_no.as_deref().unwrap_or("-"),
            r.pages,
            format::conf(r.ocr_confidence),
            chars.map_or_else(|| "-".into(), |c| c.to_string()),
            if r.review { "yes" } else { "" },
            format::pad(&decision, 28),
            note
        ));
    }
    let count = |s: IngestStatus| reports.iter().filter(|r| r.status == s).count();
    out.push_str(&format!(
        "{} letter(s): {} registered, {} duplicate, {} failed\n",
        reports.len(),
        count(IngestStatus::Registered),
        count(IngestStatus::Duplicate),
        count(IngestStatus::Failed)
    ));
    out
}

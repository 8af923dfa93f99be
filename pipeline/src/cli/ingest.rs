//! `xinfang ingest PATH…`: registers letters in input order and prints a table (or one JSON
//! object per letter). Exit status 2 when any letter failed. `--manifest FILE.csv` backfills
//! an archive (each letter with its own date of receipt, channel and old number), and
//! `--received DATE` dates every letter given.

use super::format::{self, out, Progress};
use super::service::Service;
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use xinfang::config::Config;
use xinfang::intake::{expand_inputs, manifest, Expanded, LetterReport};
use xinfang::stages::calendar::WorkCalendar;
use xinfang_models::display::one_line;
use xinfang_models::IngestStatus;

/// What to ingest.
pub enum Source {
    Paths(Vec<PathBuf>),
    Manifest(PathBuf),
}

pub async fn run(
    cfg: &Arc<Config>,
    db: Option<&str>,
    source: Source,
    received: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let received = received.map(|d| manifest::parse_when(d).map(|(day, _)| day)).transpose()?;
    // The manifest is read whole, and refused with every problem named, before anything
    // is stored; dates are the organ's days (calendar.toml's time zone).
    let calendar = WorkCalendar::new(&cfg.catalogue()?.calendar);
    let mut expanded = match source {
        Source::Paths(paths) => expand_inputs(&paths),
        Source::Manifest(m) => Expanded { letters: manifest::read_manifest(&m, &calendar, received)?, skipped: vec![] },
    };
    if let (Some(day), false) = (received, expanded.letters.iter().any(|l| l.archive.is_some())) {
        manifest::received_on(&mut expanded.letters, &calendar, day)?;
    }
    if !expanded.skipped.is_empty() {
        let names: Vec<String> = expanded
            .skipped
            .iter()
            .map(|p| one_line(&p.file_name().unwrap_or_default().to_string_lossy()).into_owned())
            .collect();
        eprintln!("note: {} hidden or temporary file(s) passed over, not letters: {}", names.len(), names.join(", "));
    }
    let service = Service::start(cfg, db).await?;
    let progress = Progress::new(expanded.letters.len() as u64, "letters");
    let mut stdout = std::io::stdout().lock();
    let reports = service
        .intake
        .run(expanded.letters, |r| {
            if let Some(err) = &r.error {
                let kept = r.quarantined.as_deref().map(quarantine_note).unwrap_or_default();
                progress.suspend(|| eprintln!("error: {}: {}{kept}", one_line(&r.source), one_line(err)));
            }
            if json {
                if let Ok(line) = serde_json::to_string(r) {
                    // A closed output does not stop the registration of the batch.
                    let _ = writeln!(stdout, "{line}");
                }
            }
            progress.inc();
        })
        .await;
    progress.finish();
    service.close().await;
    let reports = reports?;
    if !json {
        out!("{}", table(&reports).trim_end())?;
    }
    let failed = reports.iter().any(|r| r.status == IngestStatus::Failed);
    Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Where a failed letter's files were kept, as the user can find them again: its id (the
/// start of its quarantine entry's name) and the path.
fn quarantine_note(path: &str) -> String {
    let name = std::path::Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let id = name.split('-').next().unwrap_or_default();
    format!(" (kept in quarantine as {id}: {})", one_line(path))
}

/// The table of a batch: one line per letter, then the counts.
fn table(reports: &[LetterReport]) -> String {
    let mut out = format!(
        "{:<3} {:<10} {:<20} {:>5} {:>5} {:>6} {:<6} {:<28} source / note\n",
        "#", "status", "case", "pages", "conf", "chars", "review", "decision"
    );
    for (i, r) in reports.iter().enumerate() {
        let chars = r.text.as_ref().map(|t| t.chars().filter(|c| !c.is_whitespace()).count());
        let source = one_line(&r.source);
        let note = match (&r.error, r.flags.is_empty()) {
            (Some(e), _) => format!("{source}  ({})", one_line(e)),
            (None, false) => format!("{source}  [{}]", r.flags.join(" ")),
            (None, true) => source.into_owned(),
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

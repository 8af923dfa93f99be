//! `xinfang reprocess`: re-runs the rules (or OCR and the rules) over a selection of stored
//! cases, with a progress bar; resumable, and never over a reviewer's decision.

use super::format::{out, Progress};
use super::service::Service;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use xinfang::config::Config;
use xinfang::intake::rerun::run_prefix;
use xinfang::intake::worker::{WorkOptions, WorkReport};
use xinfang::store::CaseSelection;
use xinfang_models::display::one_line;
use xinfang_models::{CaseNo, RunStatus};

/// Which cases the user asked for.
pub struct Selection {
    pub all: bool,
    pub since: Option<chrono::NaiveDate>,
    pub until: Option<chrono::NaiveDate>,
    pub class: Option<String>,
    pub cases: Vec<String>,
}

impl Selection {
    /// The store's selection; an error when nothing was asked for or a value is unknown.
    fn resolve(&self, zone: chrono_tz::Tz) -> Result<CaseSelection> {
        if !self.all && self.since.is_none() && self.until.is_none() && self.class.is_none() && self.cases.is_empty() {
            bail!("say which cases to re-run: --all, --since/--until, --class or case numbers");
        }
        // Days are the organ's (calendar.toml's time zone), not the server's.
        let local_ms = |d: chrono::NaiveDate| {
            d.and_hms_opt(0, 0, 0).and_then(|t| t.and_local_timezone(zone).earliest()).map(|t| t.timestamp_millis())
        };
        Ok(CaseSelection {
            from_ms: self.since.and_then(local_ms),
            to_ms: self.until.and_then(local_ms),
            class: match &self.class {
                Some(c) => Some(super::review::parse_class(c)?),
                None => None,
            },
            cases: self.cases.iter().map(|c| c.parse()).collect::<Result<Vec<CaseNo>, _>>()?,
        })
    }
}

pub async fn run(cfg: &Arc<Config>, db: Option<&str>, sel: &Selection, ocr: bool, json: bool) -> Result<ExitCode> {
    let sel = sel.resolve(cfg.time_zone())?;
    let service = Service::start(cfg, db).await?;
    let intake = &service.intake;
    let selected = intake.store().select_cases(&sel).await?;
    let added = intake.enqueue_reruns(&selected, ocr).await?;
    let key = intake.rerun_key(ocr);
    let prefix = run_prefix(&key);
    // What is left and what is done of this selection (not of every run with this key).
    let counts = intake.store().job_counts(&intake.rerun_job_ids(&selected, ocr)).await?;
    let todo = (counts.queued + counts.running) as u64;
    eprintln!(
        "re-run {key} ({}, rules {}): {} case(s) selected, {added} newly queued, {} to do, {} already done",
        if ocr { "OCR and rules" } else { "rules" },
        intake.rules_version(),
        selected.len(),
        todo,
        counts.done + counts.failed
    );
    let bar = Progress::new(todo, "cases");
    let opts =
        WorkOptions { drain: true, letters: false, reruns: Some(prefix), stop: Arc::clone(&service.stop), batch: !ocr };
    let mut tally = BTreeMap::<RunStatus, usize>::new();
    let work = intake.work(opts, |r| {
        if let WorkReport::Rerun(rr) = r {
            *tally.entry(rr.status).or_default() += 1;
            // A closed output does not stop the re-run.
            if json {
                bar.suspend(|| out!("{}", serde_json::to_string(rr).unwrap_or_default()).ok());
            } else if !rr.changes.is_empty() || rr.error.is_some() {
                let what = rr.error.clone().unwrap_or_else(|| rr.changes.join("; "));
                bar.suspend(|| out!("{} {}: {}", rr.case_no, rr.status, one_line(&what)).ok());
            }
        }
        bar.inc();
    });
    let finished = service.until_stopped(work).await;
    bar.finish();
    let interrupted = service.stopped();
    service.close().await;
    if let Some(r) = finished {
        r?;
    }
    let summary: Vec<String> = tally.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!(
        "re-run {key}: {}{}",
        if summary.is_empty() { "nothing to do".into() } else { summary.join(", ") },
        if interrupted { " (interrupted: run the same command again to finish)" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing() -> Selection {
        Selection { all: false, since: None, until: None, class: None, cases: Vec::new() }
    }

    #[test]
    fn a_rerun_must_say_which_cases() {
        assert!(nothing().resolve(chrono_tz::Asia::Shanghai).is_err());
        assert!(Selection { all: true, ..nothing() }.resolve(chrono_tz::Asia::Shanghai).is_ok());
    }

    #[test]
    fn a_rerun_selection_names_real_classes_and_case_numbers() {
        let by_class =
            Selection { class: Some("申诉".into()), ..nothing() }.resolve(chrono_tz::Asia::Shanghai).expect("a class");
        assert_eq!(by_class.class, Some(xinfang_models::LetterClass::Appeal));
        assert!(Selection { class: Some("检举".into()), ..nothing() }.resolve(chrono_tz::Asia::Shanghai).is_err());
        assert!(Selection { cases: vec!["QLX-2026-X-1".into()], ..nothing() }
            .resolve(chrono_tz::Asia::Shanghai)
            .is_err());
    }
}

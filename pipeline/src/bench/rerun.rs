//! `xinfang bench rerun`: a rules-only re-run of a whole archive (`reprocess --all` without
//! `--ocr`), letters per second and peak memory, the plain one-job-at-a-time path beside the
//! batched one, on SQLite and (with `--postgres`) on PostgreSQL. The archive is seeded fast:
//! generated text letters (those of `bench ingest`) read and decided by the rules, their
//! originals stored, and registered many to a transaction through the registration's own
//! statements but without the repeat lookup, so the re-run has the repeats to find. A
//! measurement, not a test. Nothing is written to the user's store or data directory.

use super::ingest::{admin_exec, database_url, proc_mib, reset_peak, Generator, TempDir};
use anyhow::{Context, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use xinfang::config::Config;
use xinfang::intake::worker::{WorkOptions, WorkReport};
use xinfang::intake::Intake;
use xinfang::stages::ocr::OcrPool;
use xinfang::store::{fixtures, CaseSelection, FileStore, NewCase, Store};
use xinfang::understand::Understander;
use xinfang_models::{CaseNo, RunStatus};

/// One backend's figures.
struct Row {
    backend: &'static str,
    seeded: usize,
    seed_secs: f64,
    single: Pass,
    batched: Pass,
    peak_mib: Option<f64>,
}

/// One re-run pass.
#[derive(Default)]
struct Pass {
    cases: usize,
    queue_secs: f64,
    work_secs: f64,
    applied: usize,
    suggested: usize,
    failed: usize,
    changed: usize,
}

impl Pass {
    fn rate(&self) -> f64 {
        self.cases as f64 / (self.queue_secs + self.work_secs).max(1e-9)
    }
}

/// Runs the benchmark.
pub async fn rerun(cfg: &Config, cases: usize, single: usize, postgres: Option<&str>) -> Result<()> {
    let understander = Arc::new(Understander::new(&cfg.catalogue()?)?);
    let pid = std::process::id();
    let stamp = chrono::Utc::now().timestamp_millis();
    let root = TempDir(std::env::temp_dir().join(format!("xinfang-bench-rerun-{pid}-{stamp}")));
    let pool = OcrPool::start(&cfg.ocr, &cfg.limits, 1)?;
    let mut rows = Vec::new();
    let sqlite_dir = root.0.join("sqlite");
    let mut c = cfg.clone();
    c.store.data_dir = sqlite_dir.clone();
    let url = c.default_database_url();
    rows.push(backend("sqlite", &c, &url, &pool, &understander, cases, single).await?);
    if let Some(admin) = postgres {
        let name = format!("xinfang_bench_rerun_{pid}_{stamp}");
        let url = database_url(admin, &name)?;
        admin_exec(admin, &format!("CREATE DATABASE {name}")).await?;
        let mut c = cfg.clone();
        c.store.data_dir = root.0.join("postgres");
        let result = backend("postgresql", &c, &url, &pool, &understander, cases, single).await;
        let dropped = admin_exec(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        rows.push(result?);
        dropped?;
    }
    pool.shutdown().await;

    println!(
        "rules-only re-run of a whole store, rules {}, {} core(s); target ≥ 1,000 letters/s with 100,000 cases, ≥ 500 with 10⁶",
        understander.rules_version(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<11} {:>8} {:>9} {:<22} {:>7} {:>9} {:>9} {:>10} {:>8} {:>8} {:>7} {:>9}",
        "backend",
        "cases",
        "seed s",
        "path",
        "re-run",
        "queue s",
        "work s",
        "letters/s",
        "applied",
        "changed",
        "failed",
        "peak MiB"
    );
    for r in &rows {
        for (path, p) in [("one job at a time", &r.single), ("batched (this build)", &r.batched)] {
            println!(
                "{:<11} {:>8} {:>9.1} {:<22} {:>7} {:>9.1} {:>9.1} {:>10.0} {:>8} {:>8} {:>7} {:>9}",
                r.backend,
                r.seeded,
                r.seed_secs,
                path,
                p.cases,
                p.queue_secs,
                p.work_secs,
                p.rate(),
                p.applied + p.suggested,
                p.changed,
                p.failed,
                r.peak_mib.map_or("?".into(), |m| format!("{m:.0}"))
            );
        }
    }
    println!("peak MiB: the process's peak resident memory over the whole backend's run, seeding included");
    Ok(())
}

async fn backend(
    backend: &'static str,
    cfg: &Config,
    url: &str,
    pool: &OcrPool,
    understander: &Arc<Understander>,
    cases: usize,
    single: usize,
) -> Result<Row> {
    let store = Store::open(url).await?;
    reset_peak();
    let t = Instant::now();
    let seeded = seed(cfg, &store, understander, cases).await?;
    let seed_secs = t.elapsed().as_secs_f64();
    eprintln!("{backend}: seeded {seeded} cases in {seed_secs:.1} s");
    let intake = Intake::new(Arc::new(cfg.clone()), store.clone(), pool.clone(), Arc::clone(understander));
    let all = store.select_cases(&CaseSelection::default()).await?;
    // The newest cases one job at a time, then the whole store batched (the cases done
    // already under the same run key are not done again).
    let newest: Vec<CaseNo> = all[all.len().saturating_sub(single)..].to_vec();
    let single = pass(&intake, &newest, false).await?;
    eprintln!("{backend}: {} cases one job at a time at {:.0} letters/s", single.cases, single.rate());
    let batched = pass(&intake, &all, true).await?;
    eprintln!("{backend}: {} cases batched at {:.0} letters/s", batched.cases, batched.rate());
    let peak_mib = proc_mib("VmHWM");
    drop(intake);
    store.close().await;
    Ok(Row { backend, seeded, seed_secs, single, batched, peak_mib })
}

/// Queues a rules-only re-run of `cases` and works it to its end.
async fn pass(intake: &Intake, cases: &[CaseNo], batch: bool) -> Result<Pass> {
    let t = Instant::now();
    intake.enqueue_reruns(cases, false).await?;
    let queue_secs = t.elapsed().as_secs_f64();
    let prefix = xinfang::intake::rerun::run_prefix(&intake.rerun_key(false));
    let opts = WorkOptions {
        drain: true,
        letters: false,
        reruns: Some(prefix),
        stop: Arc::new(AtomicBool::new(false)),
        batch,
    };
    let mut p = Pass { queue_secs, ..Pass::default() };
    let t = Instant::now();
    let mut lap = Instant::now();
    intake
        .work(opts, |r| {
            if let WorkReport::Rerun(r) = r {
                p.cases += 1;
                match r.status {
                    RunStatus::Applied => p.applied += 1,
                    RunStatus::Suggested => p.suggested += 1,
                    _ => p.failed += 1,
                }
                p.changed += usize::from(!r.changes.is_empty());
                if p.cases.is_multiple_of(20_000) {
                    eprintln!(
                        "  {} cases, the last 20,000 at {:.0}/s",
                        p.cases,
                        20_000.0 / lap.elapsed().as_secs_f64().max(1e-9)
                    );
                    lap = Instant::now();
                }
            }
        })
        .await?;
    p.work_secs = t.elapsed().as_secs_f64();
    Ok(p)
}

/// Seeds `n` generated letters, decided by the rules and registered without the repeat
/// lookup, received a minute apart over the past months.
async fn seed(cfg: &Config, store: &Store, u: &Arc<Understander>, n: usize) -> Result<usize> {
    let files = FileStore::new(&cfg.store.data_dir);
    let mut g = Generator::new();
    let start = chrono::Utc::now().timestamp_millis() - (n as i64 + 1) * 60_000;
    let mut done = 0;
    while done < n {
        let k = (n - done).min(2_000);
        let texts: Vec<(usize, String)> = (done..done + k).map(|i| (i, g.next_letter().text)).collect();
        let half = texts.len().div_ceil(2);
        let mut parts = Vec::new();
        for part in texts.chunks(half).map(<[_]>::to_vec) {
            let u = Arc::clone(u);
            let files = files.clone();
            let organ = cfg.numbering.organ_code.clone();
            let channel = cfg.numbering.channel;
            parts.push(tokio::task::spawn_blocking(move || -> Result<Vec<NewCase>> {
                part.into_iter()
                    .map(|(i, raw)| {
                        let at = start + i as i64 * 60_000;
                        Ok(fixtures::archived_text_case(&u, &files, &organ, channel, &raw, i, at)?)
                    })
                    .collect()
            }));
        }
        let mut news = Vec::with_capacity(k);
        for p in parts {
            news.extend(p.await.context("seeding")??);
        }
        done += fixtures::register_unsettled(store, &news).await?.len();
        if done.is_multiple_of(50_000) {
            eprintln!("  seeded {done} cases");
        }
        if news.is_empty() {
            break;
        }
    }
    Ok(done)
}

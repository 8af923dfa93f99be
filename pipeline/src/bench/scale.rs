//! `xinfang bench scale`: whether the store keeps its latencies as it grows to a million
//! cases. The store is seeded in bulk in the database itself (`fixtures::seed_bulk`: a case,
//! page, decision, fingerprint, repeat keys, event and done job each, copied from letters the
//! rules decided), not through the intake; at each size the commands people wait on are
//! timed: a job claim, a repeat lookup, `list`, `show` and the review queue, p50 and p99. On
//! SQLite and (with `--postgres`) on PostgreSQL. A measurement, not a test.

use super::ingest::{admin_exec, database_url, Generator, TempDir};
use anyhow::Result;
use std::time::Instant;
use xinfang::config::Config;
use xinfang::store::fixtures::{analyze, repeat_candidates_of, seed_bulk, seed_template, seeded_keys, SeedTemplate};
use xinfang::store::{JobKind, NewJob, Store, WorkerId};
use xinfang::understand::Understander;
use xinfang_models::CaseNo;

/// Distinct letters the seed copies.
const TEMPLATES: usize = 2_000;

/// Timed repetitions of each operation at each size.
const TRIES: usize = 200;

/// The latencies at one size, in milliseconds: (p50, p99) per operation.
struct Lap {
    cases: i64,
    seed_secs: f64,
    claim: (f64, f64),
    lookup: (f64, f64),
    list: (f64, f64),
    show: (f64, f64),
    queue: (f64, f64),
}

/// Runs the benchmark up to `cases` cases.
pub async fn scale(cfg: &Config, cases: i64, postgres: Option<&str>) -> Result<()> {
    let understander = Understander::new(&cfg.catalogue()?)?;
    let mut generator = Generator::new();
    let templates = (0..TEMPLATES)
        .map(|_| seed_template(&understander, &generator.next_letter().text))
        .collect::<Result<Vec<_>, _>>()?;
    let sizes: Vec<i64> = [10_000, 100_000, 1_000_000].into_iter().filter(|n| *n < cases).chain([cases]).collect();
    let pid = std::process::id();
    let stamp = chrono::Utc::now().timestamp_millis();
    let root = TempDir(std::env::temp_dir().join(format!("xinfang-bench-scale-{pid}-{stamp}")));
    let mut results = Vec::new();
    let mut c = cfg.clone();
    c.store.data_dir = root.0.join("sqlite");
    let store = Store::open(&c.default_database_url()).await?;
    results.push(("sqlite", backend(&store, &templates, &understander, &sizes).await?));
    store.close().await;
    if let Some(admin) = postgres {
        let name = format!("xinfang_bench_scale_{pid}_{stamp}");
        admin_exec(admin, &format!("CREATE DATABASE {name}")).await?;
        let result = async {
            let store = Store::open(&database_url(admin, &name)?).await?;
            let laps = backend(&store, &templates, &understander, &sizes).await;
            store.close().await;
            laps
        }
        .await;
        let dropped = admin_exec(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        results.push(("postgresql", result?));
        dropped?;
    }
    println!(
        "store latency as it grows, rules {}; the issue asks that claim, repeat lookup, list, show and the review \
         queue keep their latency up to 10⁶ cases (milliseconds, p50 / p99 of {TRIES})",
        understander.rules_version()
    );
    println!();
    println!(
        "{:<11} {:>9} {:>9}  {:>15} {:>15} {:>15} {:>15} {:>15}",
        "backend", "cases", "seed s", "claim", "repeat lookup", "list 50", "show", "review queue"
    );
    let ms = |(a, b): (f64, f64)| format!("{a:.2} / {b:.2}");
    for (name, laps) in &results {
        for l in laps {
            println!(
                "{:<11} {:>9} {:>9.1}  {:>15} {:>15} {:>15} {:>15} {:>15}",
                name,
                l.cases,
                l.seed_secs,
                ms(l.claim),
                ms(l.lookup),
                ms(l.list),
                ms(l.show),
                ms(l.queue)
            );
        }
    }
    println!();
    println!(
        "seeded: {TEMPLATES} generated letters decided by the rules, each copied every {TEMPLATES}th case (its page, \
         decision, fingerprint, repeat keys, first event, done job); a matter's person keys shared by 50 cases, a \
         template's MinHash bands by all its copies (more sharing than real mail). claim: one letter job among 200 \
         queued and every done one; lookup: the ranked candidates of a letter about a seeded matter; list: the 50 \
         newest; show: a random case whole; review queue: the 50 oldest waiting for review."
    );
    Ok(())
}

/// Seeds each size in turn and times the operations there.
async fn backend(store: &Store, templates: &[SeedTemplate], u: &Understander, sizes: &[i64]) -> Result<Vec<Lap>> {
    let mut laps = Vec::new();
    let mut seeded = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: i64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n.max(1) as u64) as i64
    };
    for &size in sizes {
        let started = Instant::now();
        while seeded < size {
            let to = (seeded + 100_000).min(size);
            seed_bulk(store, templates, seeded, to).await?;
            seeded = to;
            eprintln!("seeded {seeded} cases");
        }
        analyze(store).await?;
        let seed_secs = started.elapsed().as_secs_f64();
        let worker = WorkerId::current();
        let jobs: Vec<NewJob> = (0..TRIES)
            .map(|k| NewJob {
                job_id: format!("letter:bench-{size}-{k}"),
                kind: JobKind::Letter,
                letter_sha256: None,
                case_no: None,
                source_name: format!("bench-{k}.txt"),
                payload: "{}".into(),
                max_attempts: 3,
            })
            .collect();
        store.enqueue_many(&jobs).await?;
        let claim = timed(TRIES, || async {
            store.claim(&worker, JobKind::Letter, Some("letter:bench-"), 60_000).await.map(|_| ())
        })
        .await?;
        let limits = u.candidate_limits();
        let lookup = timed(TRIES, || {
            let keys = seeded_keys(templates, next(size));
            async move { repeat_candidates_of(store, &keys, limits).await.map(|_| ()) }
        })
        .await?;
        let list = timed(TRIES / 4, || async { store.list(50).await.map(|_| ()) }).await?;
        let show = timed(TRIES, || {
            let i = next(size);
            let no = CaseNo {
                organ: "QLX".into(),
                year: 2016 + (i / 100_000) as i32,
                channel: xinfang_models::Channel::Letter,
                seq: (i % 100_000 + 1) as u32,
            };
            async move {
                match store.show(&no).await? {
                    Some(_) => Ok(()),
                    None => Err(xinfang::store::StoreError::Corrupt(format!("seeded case {no} not found"))),
                }
            }
        })
        .await?;
        let queue = timed(TRIES / 4, || async { store.review_queue(50).await.map(|_| ()) }).await?;
        laps.push(Lap { cases: size, seed_secs, claim, lookup, list, show, queue });
    }
    Ok(laps)
}

/// Runs `op` `n` times and returns the p50 and p99 of its time in milliseconds.
async fn timed<F, Fut>(n: usize, mut op: F) -> Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), xinfang::store::StoreError>>,
{
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        op().await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

//! `xinfang bench workers`: several `xinfang worker` processes sharing one PostgreSQL, as
//! machines of a provincial deployment would. For each number of workers a fresh database
//! is filled with the same generated text letters (stored and queued, not worked), then that
//! many `xinfang worker --drain` processes are started together and timed until the queue
//! is empty: letters per second, and the CPU the database's own processes used beside the
//! workers'. A measurement, not a test; on one machine the workers and the database share
//! its cores, which several machines would not.

use super::ingest::{admin_exec, database_url, Generator, TempDir};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use xinfang::config::Config;
use xinfang::intake::{Enqueued, Intake, LetterInput};
use xinfang::stages::ocr::OcrPool;
use xinfang::store::Store;
use xinfang::understand::Understander;

/// One run's figures.
struct Run {
    workers: usize,
    letters: usize,
    secs: f64,
    db_cpu: f64,
    workers_cpu: f64,
}

/// Runs the benchmark.
pub async fn workers(
    cfg_path: Option<&Path>,
    cfg: &Config,
    admin: &str,
    letters: usize,
    counts: &[usize],
) -> Result<()> {
    sqlx::any::install_default_drivers();
    let pid = std::process::id();
    let stamp = chrono::Utc::now().timestamp_millis();
    let root = TempDir(std::env::temp_dir().join(format!("xinfang-bench-workers-{pid}-{stamp}")));
    let mut generator = Generator::new();
    let texts: Vec<String> = (0..letters).map(|_| generator.next_letter().text).collect();
    let understander = Arc::new(Understander::new(&cfg.catalogue()?)?);
    let pool = OcrPool::start(&cfg.ocr, &cfg.limits, 1)?;
    let mut runs = Vec::new();
    for &k in counts {
        let dir = root.0.join(format!("w{k}"));
        std::fs::create_dir_all(&dir).context("creating the scratch folder")?;
        let config = super::watch::scratch_config(cfg_path, cfg, &dir)?;
        let name = format!("xinfang_bench_workers_{pid}_{stamp}_{k}");
        admin_exec(admin, &format!("CREATE DATABASE {name}")).await?;
        let url = database_url(admin, &name)?;
        let result = one(&dir, &config, &url, cfg, &pool, &understander, &texts, k).await;
        let dropped = admin_exec(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        runs.push(result?);
        dropped?;
    }
    pool.shutdown().await;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{letters} generated text letters queued in a fresh PostgreSQL database, then worked by N `xinfang worker --drain` \
         processes at once, on this {cores}-core machine (workers and database share it)"
    );
    println!();
    println!(
        "{:>7} {:>8} {:>9} {:>10} {:>14} {:>16} {:>22}",
        "workers", "letters", "seconds", "letters/s", "database CPU s", "workers' CPU s", "database share of CPU"
    );
    for r in &runs {
        println!(
            "{:>7} {:>8} {:>9.1} {:>10.1} {:>14.1} {:>16.1} {:>21.0} %",
            r.workers,
            r.letters,
            r.secs,
            r.letters as f64 / r.secs.max(1e-9),
            r.db_cpu,
            r.workers_cpu,
            100.0 * r.db_cpu / (r.db_cpu + r.workers_cpu).max(1e-9)
        );
    }
    println!();
    println!(
        "database CPU: user + system time of the machine's postgres processes during the run (/proc); workers' CPU: \
         the worker processes' own (their rusage). A letter is registered under the one registry lock, so the \
         registrations of all workers are serialised in the database whatever their number."
    );
    Ok(())
}

/// Queues the letters into a fresh store at `url` and times `k` workers draining it.
#[allow(clippy::too_many_arguments)]
async fn one(
    dir: &Path,
    config: &Path,
    url: &str,
    cfg: &Config,
    pool: &OcrPool,
    understander: &Arc<Understander>,
    texts: &[String],
    k: usize,
) -> Result<Run> {
    let letters_dir = dir.join("letters");
    std::fs::create_dir_all(&letters_dir).context("creating the letters folder")?;
    let mut c = cfg.clone();
    c.store.data_dir = dir.join("data");
    let store = Store::open(url).await?;
    let intake = Intake::new(Arc::new(c), store.clone(), pool.clone(), Arc::clone(understander));
    for (i, text) in texts.iter().enumerate() {
        let path = letters_dir.join(format!("letter_{i:06}.txt"));
        std::fs::write(&path, text).context("writing a letter")?;
        if let Enqueued::Unreadable { error } = intake.enqueue(&LetterInput::at(&path), None).await? {
            bail!("letter {i} could not be queued: {error}");
        }
    }
    let db_before = postgres_ticks();
    let children_before = children_cpu_secs();
    let started = Instant::now();
    let exe = std::env::current_exe().context("finding this program")?;
    let mut children = Vec::new();
    for w in 0..k {
        let log = std::fs::File::create(dir.join(format!("worker{w}.log"))).context("creating a worker log")?;
        let err = log.try_clone().context("creating a worker log")?;
        children.push(
            std::process::Command::new(&exe)
                .arg("--config")
                .arg(config)
                .arg("--db")
                .arg(url)
                .args(["worker", "--drain"])
                .env("OMP_THREAD_LIMIT", "1")
                .stdout(log)
                .stderr(err)
                .spawn()
                .context("starting a worker")?,
        );
    }
    // The database's backends end with the workers' connections: their CPU is sampled while
    // they live (every 200 ms; a backend's last 200 ms may be missed).
    let mut seen = db_before.clone();
    let mut waiting =
        tokio::task::spawn_blocking(move || children.into_iter().map(|mut c| c.wait()).collect::<Vec<_>>());
    let statuses = loop {
        tokio::select! {
            done = &mut waiting => break done?,
            () = tokio::time::sleep(std::time::Duration::from_millis(200)) => seen.extend(postgres_ticks()),
        }
    };
    seen.extend(postgres_ticks());
    let secs = started.elapsed().as_secs_f64();
    for status in statuses {
        let status = status?;
        if !status.success() {
            bail!("a worker ended with {status}; see {}", dir.display());
        }
    }
    let ticks: u64 = seen.iter().map(|(pid, t)| t.saturating_sub(db_before.get(pid).copied().unwrap_or(0))).sum();
    // SAFETY: sysconf only reads a system constant.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let db_cpu = ticks as f64 / per_sec;
    let workers_cpu = children_cpu_secs() - children_before;
    let registered = store.count().await? as usize;
    store.close().await;
    if registered != texts.len() {
        bail!("{k} workers registered {registered} of {} letters", texts.len());
    }
    Ok(Run { workers: k, letters: texts.len(), secs, db_cpu, workers_cpu })
}

/// User + system CPU ticks of every postgres process of this machine so far, by pid.
fn postgres_ticks() -> std::collections::HashMap<u32, u64> {
    let mut ticks = std::collections::HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return ticks };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let path: PathBuf = p.path().join("stat");
        let Ok(stat) = std::fs::read_to_string(&path) else { continue };
        // pid (comm) state … utime stime: fields 14 and 15, counted after the comm's ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        if !head.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks.insert(pid, field(11) + field(12));
    }
    ticks
}

/// CPU seconds of this process's waited-for children so far.
fn children_cpu_secs() -> f64 {
    // SAFETY: an all-zero rusage is a valid value, and getrusage only writes the struct it
    // is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

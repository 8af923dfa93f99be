//! `xinfang bench watch`: the watched folder under a stream of files while the service is
//! restarted (once killed with SIGKILL, once stopped with SIGTERM, alternating), checked at
//! the end: every file dropped must end as exactly one case (archived) or one quarantined
//! file, with nothing left in the folder or the queue.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;
use xinfang::config::Config;
use xinfang::digest::sha256;
use xinfang::store::{files_below, JobKind, Store, StoreError};

#[derive(Debug, Error)]
pub enum BenchWatchError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the folder did not empty within {0} s; see {1}")]
    Stuck(u64, String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchWatchError {
    let what = what.into();
    move |source| BenchWatchError::Io { what, source }
}

/// A scratch configuration for the service under test: the user's, with its own data
/// directory, a short stability window and absolute rule paths.
pub(crate) fn scratch_config(cfg_path: Option<&Path>, cfg: &Config, root: &Path) -> Result<PathBuf, BenchWatchError> {
    let text = match cfg_path {
        Some(p) => std::fs::read_to_string(p).map_err(io(format!("reading {}", p.display())))?,
        None => xinfang::config::BUILTIN.to_string(),
    };
    let mut doc: toml::Table = toml::from_str(&text).map_err(|e| BenchWatchError::Config(e.to_string()))?;
    let set = |doc: &mut toml::Table, table: &str, key: &str, v: toml::Value| {
        if let Some(t) =
            doc.entry(table.to_string()).or_insert_with(|| toml::Value::Table(Default::default())).as_table_mut()
        {
            t.insert(key.to_string(), v);
        }
    };
    set(&mut doc, "store", "data_dir", toml::Value::String(root.join("data").display().to_string()));
    set(&mut doc, "watch", "stable_secs", toml::Value::Float(0.5));
    set(&mut doc, "watch", "poll_secs", toml::Value::Float(0.2));
    set(&mut doc, "watch", "shutdown_grace_secs", toml::Value::Integer(20));
    if let Some(base) = &cfg.base_dir {
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.clone());
        for (key, rel) in [
            ("keywords", &cfg.rules.keywords),
            ("rules", &cfg.rules.rules),
            ("calendar", &cfg.rules.calendar),
            ("dictionary", &cfg.rules.dictionary),
        ] {
            set(&mut doc, "rules", key, toml::Value::String(base.join(rel).display().to_string()));
        }
    }
    let path = root.join("xinfang.toml");
    let text = toml::to_string(&doc).map_err(|e| BenchWatchError::Config(e.to_string()))?;
    std::fs::write(&path, text).map_err(io("writing the scratch config"))?;
    Ok(path)
}

fn start(config: &Path, inbox: &Path, log: &Path) -> Result<Child, BenchWatchError> {
    let exe = std::env::current_exe().map_err(io("finding this program"))?;
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(io("opening the log"))?;
    let err = out.try_clone().map_err(io("opening the log"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config").arg(config).env_remove("DATABASE_URL");
    cmd.arg("watch").arg(inbox).stdin(Stdio::null()).stdout(out).stderr(err);
    cmd.spawn().map_err(io("starting xinfang watch"))
}

fn signal(child: &mut Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, sig) };
    let _ = child.wait();
}

fn visible(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count())
        .unwrap_or(0)
}

/// Drops `files` letters (a fresh SQLite store) (one in fifty unreadable) into a watched folder at `rate` files/s
/// while restarting the service `restarts` times, then checks where every file ended.
pub async fn watch(
    cfg_path: Option<&Path>,
    cfg: &Config,
    files: usize,
    restarts: usize,
    rate: f64,
) -> Result<bool, BenchWatchError> {
    let root = std::env::temp_dir().join(format!("xinfang-bench-watch-{}", std::process::id()));
    let inbox = root.join("inbox");
    std::fs::create_dir_all(&inbox).map_err(io("creating the inbox"))?;
    let config = scratch_config(cfg_path, cfg, &root)?;
    let log = root.join("watch.log");
    let mut generator = super::ingest::Generator::new();
    let letters: Vec<String> = (0..files).map(|_| generator.next_letter().text).collect();
    let mut good = BTreeSet::new();
    let mut bad = 0usize;
    let started = Instant::now();
    let mut child = start(&config, &inbox, &log)?;
    let restart_at: Vec<usize> = (1..=restarts).map(|k| k * files / (restarts + 1)).collect();
    let gap = Duration::from_secs_f64(1.0 / rate.max(1.0));
    for (i, letter) in letters.iter().enumerate() {
        if let Some(k) = restart_at.iter().position(|&at| at == i) {
            // Alternate a crash and a clean stop.
            let sig = if k % 2 == 0 { libc::SIGKILL } else { libc::SIGTERM };
            eprintln!(
                "bench watch: file {i}: {} the service and starting it again",
                if k % 2 == 0 { "killing" } else { "stopping" }
            );
            signal(&mut child, sig);
            child = start(&config, &inbox, &log)?;
        }
        let (name, bytes) = if i % 50 == 49 {
            bad += 1;
            (format!("scan_{i:05}.pdf"), format!("<html>{i} not a pdf</html>").into_bytes())
        } else {
            good.insert(sha256(letter.as_bytes()).to_string());
            (format!("letter_{i:05}.txt"), letter.clone().into_bytes())
        };
        // As a scanner writes: a temporary name, then a rename.
        let tmp = inbox.join(format!(".{name}.part"));
        std::fs::write(&tmp, &bytes).map_err(io("dropping a file"))?;
        std::fs::rename(&tmp, inbox.join(&name)).map_err(io("dropping a file"))?;
        tokio::time::sleep(gap).await;
    }
    let dropped_in = started.elapsed();
    let limit = Duration::from_secs(120 + files as u64 / 2);
    while visible(&inbox) > 0 {
        if started.elapsed() > limit {
            signal(&mut child, libc::SIGTERM);
            return Err(BenchWatchError::Stuck(limit.as_secs(), log.display().to_string()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let emptied_in = started.elapsed();
    signal(&mut child, libc::SIGTERM);

    let url = format!("sqlite://{}?mode=rwc", root.join("data/xinfang.db").display());
    let store = Store::open(&url).await?;
    let registered = xinfang::store::fixtures::letter_digests(&store).await?;
    let queue = store.queue_counts(JobKind::Letter, None).await?;
    store.close().await;
    let data = root.join("data");
    let archived = files_below(&data.join("archive")).len();
    let quarantined = files_below(&data.join("quarantine"))
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with(".reason.txt"))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("scan_")))
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect::<BTreeSet<_>>()
        .len();
    let every_good_once = registered.len() == good.len() && good.iter().all(|g| registered.contains(g));
    let ok = every_good_once && quarantined == bad && archived == good.len() && queue.drained() && visible(&inbox) == 0;
    println!("watched folder under a stream of {files} files, {restarts} restart(s), SQLite");
    println!("  readable letters dropped   {:>7}", good.len());
    println!("  cases registered           {:>7}   (each letter exactly once: {})", registered.len(), every_good_once);
    println!("  files archived             {:>7}", archived);
    println!("  unreadable files dropped   {:>7}", bad);
    println!("  files quarantined          {:>7}", quarantined);
    println!(
        "  queue                      queued {} running {} done {} failed {}",
        queue.queued, queue.running, queue.done, queue.failed
    );
    println!(
        "  dropped in {:.1} s, folder empty after {:.1} s ({:.1} files/s end to end)",
        dropped_in.as_secs_f64(),
        emptied_in.as_secs_f64(),
        files as f64 / emptied_in.as_secs_f64()
    );
    println!(
        "  target: every file ends as exactly one case or one quarantined file: {}",
        if ok { "MET" } else { "NOT MET" }
    );
    if ok {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        println!("  kept for inspection: {}", root.display());
    }
    Ok(ok)
}

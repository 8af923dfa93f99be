//! `xinfang watch DIR…`: the mailroom's folders, watched; with `--no-worker` the letters are
//! only queued, for `xinfang worker` processes elsewhere.

use super::service::Service;
use anyhow::{bail, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use xinfang::config::Config;
use xinfang::intake::watch::{WatchEvent, Watcher};
use xinfang::intake::worker::WorkOptions;

pub async fn run(
    cfg: &Arc<Config>,
    db: Option<&str>,
    dirs: &[PathBuf],
    no_worker: bool,
    json: bool,
) -> Result<ExitCode> {
    for d in dirs {
        if !d.is_dir() {
            bail!("{} is not a folder", d.display());
        }
    }
    let mut watcher = Watcher::new(dirs.to_vec(), &cfg.watch, &cfg.store.data_dir, &cfg.own_files())?;
    let service = Service::start(cfg, db).await?;
    let work_done = Arc::new(AtomicBool::new(no_worker));
    eprintln!(
        "watching {} (stable after {} s); archive {}, quarantine {}",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
        cfg.watch.stable_secs,
        cfg.watch.archive(&cfg.store.data_dir).display(),
        cfg.watch.quarantine(&cfg.store.data_dir).display()
    );
    let print = |e: &WatchEvent| {
        let line = if json { serde_json::to_string(e).unwrap_or_default() } else { e.to_string() };
        // The mailroom's letters go on being registered whatever happens to this output.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    };
    let watch = watcher.run(&service.intake, Arc::clone(&service.stop), Arc::clone(&work_done), print);
    let work = async {
        if no_worker {
            return Ok(0);
        }
        let opts =
            WorkOptions { drain: false, letters: true, reruns: None, stop: Arc::clone(&service.stop), batch: false };
        // What became of each letter is told by the watch's own lines (archived, with the
        // decision; quarantined, with the id), not the worker's.
        let r = service.intake.work(opts, |_| {}).await;
        work_done.store(true, Ordering::SeqCst);
        r
    };
    let finished = service.until_stopped(async { tokio::join!(watch, work) }).await;
    service.close().await;
    match finished {
        Some((w, r)) => {
            w?;
            r?;
            eprintln!("watch: stopped");
        }
        None => eprintln!("watch: grace period over; unfinished letters stay queued and are taken up on restart"),
    }
    Ok(ExitCode::SUCCESS)
}

//! Command-line interface: argument parsing, output formatting and exit codes. The only
//! place (with `main.rs`) that uses `anyhow`.

use crate::config::Config;
use crate::intake::{expand_inputs, Intake, LetterReport, Reader};
use crate::stages::ocr::OcrPool;
use crate::store::{redact, CaseSelection, JobKind, Store};
use crate::understand::Understander;
use crate::watch::Watcher;
use crate::worker::{WorkOptions, WorkReport};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use xinfang_models::{CaseNo, IngestStatus};
use xinfang_models::{HandlingLevel, LetterClass};

/// The configuration compiled into the binary, used when no config file is found.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/xinfang.toml");

#[derive(Parser)]
#[command(name = "xinfang", version, about = "Xinfang Intake: scanned petition letters in, registered cases out")]
struct Cli {
    /// Configuration file [default: config/xinfang.toml if present, else built-in defaults]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Database URL (sqlite://… or postgres://…) [default: SQLite file in the data directory]
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    db: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register letters: files, or folders (expanded in name order; a sub-folder is one letter)
    Ingest {
        /// One JSON object per letter on stdout, in input order
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the normalised text of files (nothing is stored)
    Ocr {
        /// Write DIR/<file stem>.txt instead of printing
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show one case with its pages
    Show {
        case_no: String,
        #[arg(long)]
        json: bool,
    },
    /// List registered cases, newest first
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Print how each decision about a case was reached
    Explain { case_no: String },
    /// Decide text letters without storing anything (no repeat lookup): try rule changes
    Decide {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a labelled letter set (labels.json) through the intake into a temporary store and
    /// print accuracy per field, the class confusion matrix and repeat precision/recall
    Eval {
        labels: PathBuf,
        /// Exit with status 3 when a target of issue 3 is not met
        #[arg(long)]
        check: bool,
        /// List every wrong field
        #[arg(long)]
        verbose: bool,
    },
    /// Show the reporter's identity of a case to a role allowed to see it; the read is recorded
    Identity {
        case_no: String,
        #[arg(long)]
        reader: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        purpose: String,
    },
    /// Work the job queue: register queued letters and re-runs. Several workers, on several
    /// machines sharing one PostgreSQL, each take different jobs
    Worker {
        /// Stop when nothing is queued or running
        #[arg(long)]
        drain: bool,
        /// One JSON object per job on stdout
        #[arg(long)]
        json: bool,
    },
    /// Watch folders: every letter dropped in is registered, then moved to the archive (or,
    /// when it cannot be read, to quarantine with the reason beside it). SIGTERM or Ctrl-C
    /// stops taking new letters and finishes the ones in flight
    Watch {
        /// Only queue the letters; `xinfang worker` processes elsewhere register them
        #[arg(long)]
        no_worker: bool,
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Re-run the rules (or OCR and the rules, with --ocr) over stored letters. Resumable:
    /// the same command after an interruption does what is left. A reviewer's decision is
    /// never overwritten: the new suggestion is recorded beside it and differences flagged
    Reprocess {
        /// Read the originals again with OCR (otherwise the stored text is re-read)
        #[arg(long)]
        ocr: bool,
        /// Every case
        #[arg(long)]
        all: bool,
        /// Cases received on or after this day (YYYY-MM-DD)
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// Cases received before this day (YYYY-MM-DD)
        #[arg(long)]
        until: Option<chrono::NaiveDate>,
        /// Cases of this class (检举控告, 申诉, 批评建议, 业务范围外, 无实质内容)
        #[arg(long)]
        class: Option<String>,
        /// One JSON object per case on stdout
        #[arg(long)]
        json: bool,
        /// These cases
        cases: Vec<String>,
    },
    /// Record a triage reviewer's decision on a case: it stands over every later re-run
    Review {
        case_no: String,
        #[arg(long)]
        reviewer: String,
        /// 检举控告, 申诉, 批评建议, 业务范围外 or 无实质内容
        #[arg(long)]
        class: Option<String>,
        /// 本级, 上级 or 下级
        #[arg(long)]
        level: Option<String>,
        #[arg(long)]
        named: Option<bool>,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Jobs in the queue, per state
    Queue,
    /// Validate the configuration and the rule files, and print every problem
    CheckConfig,
    /// Benchmarks
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Text letters per second through segmentation, tagging, extraction, rules and repeat
    /// lookup, with a store seeded with synthetic cases; p50/p99 repeat-lookup time
    Rules {
        /// Cases in the store before measuring (synthetic ones are added up to this number)
        #[arg(long, default_value_t = 100_000)]
        cases: usize,
        /// Letters to run through (the sample texts, cycled)
        #[arg(long, default_value_t = 3000)]
        letters: usize,
        /// Folders of .txt letters
        #[arg(default_values_t = [String::from("samples/letters"), String::from("samples/holdout")])]
        dirs: Vec<String>,
    },
    /// Ingest generated text letters (repeat detection on) into a fresh SQLite store and, with
    /// --postgres, a fresh PostgreSQL database: letters/s and peak memory side by side
    Ingest {
        #[arg(long, default_value_t = 100_000)]
        letters: usize,
        /// Admin URL of a PostgreSQL server to measure too (a database is created and dropped)
        #[arg(long)]
        postgres: Option<String>,
        /// Letters per intake batch
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Drop a stream of files into a watched folder while the service is restarted (SIGKILL,
    /// then SIGTERM, alternating) and check that every file ends as exactly one case or one
    /// quarantined file
    Watch {
        #[arg(long, default_value_t = 1000)]
        files: usize,
        #[arg(long, default_value_t = 2)]
        restarts: usize,
        /// Files dropped per second
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
    },
    /// OCR sample pages with the pipeline (1 and 2 workers) and with the plain tesseract CLI;
    /// print CER and CPU-seconds per page side by side
    Ocr {
        /// Folder of ground truth files <stem>.p<N>.txt
        #[arg(long, default_value = "samples/truth")]
        truth: PathBuf,
        /// Skip the tesseract CLI baseline
        #[arg(long)]
        no_cli: bool,
        /// Times the two-worker pass reads the page set (less idle tail at the end);
        /// 0 skips the throughput passes (quality and CPU per page only)
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Write the pipeline's text of each page to DIR/<page>.txt (to compare with the truth)
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// Runs the command line and maps the outcome to an exit status: 0 success, 2 when some
/// letter failed, 1 on a system error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("XINFANG_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => {
            let default = Path::new("config/xinfang.toml");
            if default.exists() {
                Ok(Config::load(default)?)
            } else {
                Ok(Config::parse(DEFAULT_CONFIG, Path::new("<built-in config>"))?)
            }
        }
    }
}

fn understander(cfg: &Config) -> Result<Understander> {
    let cat = cfg.catalogue()?;
    Ok(Understander::new(&cat)?)
}

/// How each decision was reached, for `explain`.
fn explain(no: &CaseNo, d: &xinfang_models::Decision) -> String {
    let mut out = format!("case {no}  (rules {})\n", d.rules_version);
    out.push_str(&format!(
        "class        {}  (score {:.2}{})\n",
        d.class.as_str(),
        d.score,
        if d.review { ", REVIEW" } else { "" }
    ));
    out.push_str(&format!("in scope     {}\n", if d.in_scope { "yes" } else { "no" }));
    if let Some(k) = &d.sub_kind {
        out.push_str(&format!("sub-kind     {k}\n"));
    }
    out.push_str(&format!("实名         {}\n", if d.named { "yes" } else { "no" }));
    out.push_str(&format!("level        {}\n", d.handling_level.map_or("-", |l| l.as_str())));
    if let Some(f) = &d.forward_to {
        out.push_str(&format!("forward to   {f}\n"));
    }
    for s in &d.subjects {
        out.push_str(&format!(
            "subject      {} / {} / {} / {}\n",
            s.name.as_deref().unwrap_or("-"),
            s.unit.as_deref().unwrap_or("-"),
            s.post.as_deref().unwrap_or("-"),
            s.rank.as_deref().unwrap_or("-")
        ));
    }
    out.push_str(&format!("repeat of    {}\n", d.repeat_of.as_deref().unwrap_or("-")));
    out.push_str(&format!("new facts of {}\n", d.new_facts_of.as_deref().unwrap_or("-")));
    if !d.domains.is_empty() {
        out.push_str(&format!("domains      {}\n", d.domains.join("、")));
    }
    if !d.keywords.is_empty() {
        out.push_str(&format!("keywords     {}\n", d.keywords.join("、")));
    }
    for dl in &d.deadlines {
        out.push_str(&format!("deadline     {} by {} ({} working days)\n", dl.action, dl.due, dl.working_days));
    }
    out.push_str("\nhow it was decided\n");
    for (i, r) in d.reasons.iter().enumerate() {
        out.push_str(&format!("  {}. {r}\n", i + 1));
    }
    out
}

/// Opens the store, waiting (with backoff, saying so) while the database is locked or cannot
/// be reached, for at most `queue.system_retry_secs`.
async fn open_store(cfg: &Config, db: Option<&str>) -> Result<Store> {
    let url = db.map(str::to_string).unwrap_or_else(|| cfg.default_database_url());
    crate::intake::patiently(&cfg.queue, "opening the case store", || async { Ok(Store::open(&url).await?) })
        .await
        .with_context(|| format!("opening the case store at {}", redact(&url)))
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = Arc::new(load_config(cli.config.as_deref())?);
    match cli.command {
        Command::CheckConfig => {
            let cat = cfg.catalogue()?;
            println!("configuration is valid (rules {})", cat.rules.version);
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { case_no } => {
            let no: CaseNo = case_no.parse()?;
            let store = open_store(&cfg, cli.db.as_deref()).await?;
            let Some(d) = store.decision(&no).await? else {
                bail!("no decision stored for {no}");
            };
            print!("{}", explain(&no, &d));
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Decide { files } => {
            let u = understander(&cfg)?;
            let today = chrono::Local::now().date_naive();
            for f in files {
                let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
                let understanding = u.understand(&crate::stages::normalize::normalize(&text), today);
                println!("== {}", f.display());
                print!(
                    "{}",
                    explain(
                        &CaseNo { organ: "DRY".into(), year: 0, channel: cfg.numbering.channel, seq: 0 },
                        &understanding.decision
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval { labels, check, verbose } => {
            let understander = Arc::new(understander(&cfg)?);
            let report = crate::eval::evaluate(&cfg, &labels, understander).await?;
            print!("{}", report.render(verbose));
            let missed = report.against_targets().iter().any(|t| !t.3);
            Ok(if check && missed { ExitCode::from(3) } else { ExitCode::SUCCESS })
        }
        Command::Identity { case_no, reader, role, purpose } => {
            let no: CaseNo = case_no.parse()?;
            if !cfg.access.identity_roles.iter().any(|r| r == &role) {
                bail!("role {role:?} may not see reporter identities (access.identity_roles)");
            }
            let store = open_store(&cfg, cli.db.as_deref()).await?;
            let id = store.read_identity(&no, &reader, &role, &purpose).await?;
            match id {
                Some(id) => println!("{}", serde_json::to_string_pretty(&id)?),
                None => println!("no reporter identity recorded for {no} (the read is logged)"),
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { json, paths } => {
            let store = open_store(&cfg, cli.db.as_deref()).await?;
            let pool = OcrPool::start(&cfg.ocr, &cfg.limits, cfg.ocr.worker_count())?;
            let intake = Intake::new(Arc::clone(&cfg), store.clone(), pool.clone(), Arc::new(understander(&cfg)?));
            let inputs = expand_inputs(&paths);
            let bar = progress_bar(inputs.len() as u64);
            let mut stdout = std::io::stdout().lock();
            let reports = intake
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
                .await?;
            bar.finish_and_clear();
            pool.shutdown().await;
            if !json {
                print_ingest_table(&reports);
            }
            store.close().await;
            let failed = reports.iter().any(|r| r.status == IngestStatus::Failed);
            Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
        }
        Command::Ocr { out, files } => {
            let pool = OcrPool::start(&cfg.ocr, &cfg.limits, cfg.ocr.worker_count())?;
            let reader = Reader::new(Arc::clone(&cfg), pool.clone());
            if let Some(dir) = &out {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut failed = false;
            for file in files {
                let bytes = match std::fs::read(&file) {
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
                        let text = letter.pages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n\n");
                        match &out {
                            Some(dir) => {
                                let stem = file
                                    .file_stem()
                                    .map(|s| s.to_string_lossy().into_owned())
                                    .unwrap_or_else(|| "letter".into());
                                let target = dir.join(format!("{stem}.txt"));
                                std::fs::write(&target, format!("{text}\n"))
                                    .with_context(|| format!("writing {}", target.display()))?;
                            }
                            None => println!("{text}"),
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
        Command::Show { case_no, json } => {
            let no: CaseNo = case_no.parse()?;
            let store = open_store(&cfg, cli.db.as_deref()).await?;
            let Some(detail) = store.show(&no).await? else {
                bail!("no case {no}");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                let s = &detail.summary;
                println!("case        {}", s.case_no);
                println!("status      {}", s.status);
                println!("source      {}", s.source_name);
                println!("format      {}  pages {}", s.format, s.page_count);
                println!("confidence  {}", fmt_conf(s.ocr_confidence.map(|c| c as f32)));
                println!("review      {}", if s.needs_review { "yes" } else { "no" });
                println!("sha256      {}", detail.letter_sha256);
                if let Some(d) = store.decision(&no).await? {
                    println!(
                        "decision    {} / {} / {} / {}{}{}",
                        d.class.as_str(),
                        if d.in_scope { "受理范围内" } else { "业务范围外" },
                        if d.named { "实名" } else { "匿名" },
                        d.handling_level.map_or("-", |l| l.as_str()),
                        d.repeat_of.as_ref().map_or(String::new(), |r| format!(" / 重复件 of {r}")),
                        d.new_facts_of.as_ref().map_or(String::new(), |r| format!(" / new facts of {r}"))
                    );
                    for s in &d.subjects {
                        println!(
                            "subject     {}{}{}",
                            s.unit.as_deref().unwrap_or(""),
                            s.post.as_deref().unwrap_or(""),
                            s.name.as_deref().unwrap_or("")
                        );
                    }
                    for dl in &d.deadlines {
                        println!("deadline    {} by {}", dl.action, dl.due);
                    }
                    println!("(xinfang explain {no} shows why)");
                }
                for (sha, name) in &detail.originals {
                    println!("original    {name}  {sha}");
                }
                for p in &detail.pages {
                    let flags: Vec<&str> = p.flags.iter().map(|f| f.as_str()).collect();
                    println!(
                        "\n--- page {} ({}, confidence {}, rotation {}°, skew {:.2}°{}) ---",
                        p.page_no,
                        p.origin.as_str(),
                        fmt_conf(p.confidence),
                        p.rotation,
                        p.skew_deg,
                        if flags.is_empty() { String::new() } else { format!(", flags: {}", flags.join(" ")) }
                    );
                    println!("{}", p.text);
                }
                println!("\n--- history ---");
                for (at, actor, action, detail) in &detail.events {
                    println!("{}  {actor}  {action}  {detail}", fmt_time(*at));
                }
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::List { limit, json } => {
            let store = open_store(&cfg, cli.db.as_deref()).await?;
            let cases = store.list(limit).await?;
            if json {
                for c in &cases {
                    println!("{}", serde_json::to_string(c)?);
                }
            } else {
                println!(
                    "{:<20} {:<10} {:>5} {:>6} {:>6} {:<6} {:<16} source",
                    "case", "status", "pages", "chars", "conf", "review", "received"
                );
                for c in &cases {
                    println!(
                        "{:<20} {:<10} {:>5} {:>6} {:>6} {:<6} {:<16} {}",
                        c.case_no,
                        c.status,
                        c.page_count,
                        c.chars,
                        fmt_conf(c.ocr_confidence.map(|v| v as f32)),
                        if c.needs_review { "yes" } else { "" },
                        fmt_time(c.received_at),
                        c.source_name
                    );
                }
                println!("{} case(s) shown, {} in the store", cases.len(), store.count().await?);
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker { drain, json } => {
            let (intake, pool) = start_intake(&cfg, cli.db.as_deref()).await?;
            let stop = Arc::new(AtomicBool::new(false));
            let opts = WorkOptions { drain, letters: true, reruns: Some(String::new()), stop: Arc::clone(&stop) };
            let grace = std::time::Duration::from_secs(cfg.watch.shutdown_grace_secs);
            let work = intake.work(opts, |r| print_work_report(r, json));
            let finished = tokio::select! {
                r = work => Some(r),
                _ = stop_then_grace(Arc::clone(&stop), grace) => None,
            };
            pool.shutdown().await;
            intake.store().clone().close().await;
            match finished {
                Some(r) => {
                    let n = r?;
                    eprintln!("worker: {n} job(s) done");
                }
                None => eprintln!("worker: grace period over; unfinished jobs stay queued for the next worker"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch { no_worker, dirs } => {
            for d in &dirs {
                if !d.is_dir() {
                    bail!("{} is not a folder", d.display());
                }
            }
            let (intake, pool) = start_intake(&cfg, cli.db.as_deref()).await?;
            let stop = Arc::new(AtomicBool::new(false));
            let work_done = Arc::new(AtomicBool::new(no_worker));
            let mut watcher = Watcher::new(dirs.clone(), &cfg.watch, &cfg.store.data_dir);
            let grace = std::time::Duration::from_secs(cfg.watch.shutdown_grace_secs);
            eprintln!(
                "watching {} (stable after {} s); archive {}, quarantine {}",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
                cfg.watch.stable_secs,
                cfg.watch.archive(&cfg.store.data_dir).display(),
                cfg.watch.quarantine(&cfg.store.data_dir).display()
            );
            let watch = watcher.run(&intake, Arc::clone(&stop), Arc::clone(&work_done), |e| println!("{e}"));
            let work = async {
                if no_worker {
                    return Ok(0);
                }
                let opts = WorkOptions { drain: false, letters: true, reruns: None, stop: Arc::clone(&stop) };
                let r = intake.work(opts, |r| print_work_report(r, false)).await;
                work_done.store(true, Ordering::SeqCst);
                r
            };
            let finished = tokio::select! {
                r = async { tokio::join!(watch, work) } => Some(r),
                _ = stop_then_grace(Arc::clone(&stop), grace) => None,
            };
            pool.shutdown().await;
            intake.store().clone().close().await;
            match finished {
                Some((w, r)) => {
                    w?;
                    r?;
                    eprintln!("watch: stopped");
                }
                None => {
                    eprintln!("watch: grace period over; unfinished letters stay queued and are taken up on restart")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reprocess { ocr, all, since, until, class, json, cases } => {
            let local_ms = |d: chrono::NaiveDate| {
                d.and_hms_opt(0, 0, 0)
                    .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
                    .map(|t| t.timestamp_millis())
            };
            let sel = CaseSelection {
                from_ms: since.and_then(local_ms),
                to_ms: until.and_then(local_ms),
                class: match &class {
                    Some(c) => Some(LetterClass::parse(c).with_context(|| format!("unknown class {c:?}"))?),
                    None => None,
                },
                cases: cases.iter().map(|c| c.parse()).collect::<Result<Vec<CaseNo>, _>>()?,
            };
            if !all && since.is_none() && until.is_none() && class.is_none() && cases.is_empty() {
                bail!("say which cases to re-run: --all, --since/--until, --class or case numbers");
            }
            let (intake, pool) = start_intake(&cfg, cli.db.as_deref()).await?;
            let selected = intake.store().select_cases(&sel).await?;
            let added = intake.enqueue_reruns(&selected, ocr).await?;
            let key = intake.rerun_key(ocr);
            let prefix = crate::reprocess::run_prefix(&key);
            let counts = intake.store().queue_counts(JobKind::Rerun, Some(&prefix)).await?;
            let todo = (counts.queued + counts.running) as u64;
            eprintln!(
                "re-run {key} ({}, rules {}): {} case(s) selected, {added} newly queued, {} to do, {} already done",
                if ocr { "OCR and rules" } else { "rules" },
                intake.understander_version(),
                selected.len(),
                todo,
                counts.done + counts.failed
            );
            let bar = progress_bar(todo);
            let stop = Arc::new(AtomicBool::new(false));
            let opts =
                WorkOptions { drain: true, letters: false, reruns: Some(prefix.clone()), stop: Arc::clone(&stop) };
            let mut tally = std::collections::BTreeMap::<&'static str, usize>::new();
            let work = intake.work(opts, |r| {
                if let WorkReport::Rerun(rr) = r {
                    *tally.entry(rr.status).or_default() += 1;
                    if json {
                        bar.suspend(|| println!("{}", serde_json::to_string(rr).unwrap_or_default()));
                    } else if !rr.changes.is_empty() || rr.error.is_some() {
                        bar.suspend(|| {
                            println!(
                                "{} {}: {}",
                                rr.case_no,
                                rr.status,
                                rr.error.clone().unwrap_or_else(|| rr.changes.join("; "))
                            )
                        });
                    }
                }
                bar.inc(1);
            });
            let grace = std::time::Duration::from_secs(cfg.watch.shutdown_grace_secs);
            let finished = tokio::select! {
                r = work => Some(r),
                _ = stop_then_grace(Arc::clone(&stop), grace) => None,
            };
            bar.finish_and_clear();
            pool.shutdown().await;
            intake.store().clone().close().await;
            if let Some(r) = finished {
                r?;
            }
            let summary: Vec<String> = tally.iter().map(|(k, v)| format!("{v} {k}")).collect();
            eprintln!(
                "re-run {key}: {}{}",
                if summary.is_empty() { "nothing to do".into() } else { summary.join(", ") },
                if stop.load(Ordering::SeqCst) { " (interrupted: run the same command again to finish)" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Review { case_no, reviewer, class, level, named, note } => {
            let no: CaseNo = case_no.parse()?;
            let store = open_store(&cfg, cli.db.as_deref()).await?;
            let mut d = match store.review(&no).await? {
                Some(r) => r.decision,
                None => store.decision(&no).await?.with_context(|| format!("no decision stored for {no}"))?,
            };
            if let Some(c) = &class {
                d.class = LetterClass::parse(c).with_context(|| format!("unknown class {c:?}"))?;
                d.in_scope = d.class.in_scope();
            }
            if let Some(l) = &level {
                d.handling_level = Some(HandlingLevel::parse(l).with_context(|| format!("unknown level {l:?}"))?);
            }
            if let Some(n) = named {
                d.named = n;
            }
            d.review = false;
            d.reasons.push(format!(
                "decided by reviewer {reviewer}{}",
                if note.is_empty() { String::new() } else { format!(": {note}") }
            ));
            let changes = store.record_review(&no, &reviewer, &d, &note).await?;
            println!(
                "{no}: reviewer's decision recorded ({})",
                if changes.is_empty() { "confirms the standing decision".to_string() } else { changes.join("; ") }
            );
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Queue => {
            let store = open_store(&cfg, cli.db.as_deref()).await?;
            for kind in [JobKind::Letter, JobKind::Rerun] {
                let c = store.queue_counts(kind, None).await?;
                println!(
                    "{:<7} queued {:>7}  running {:>5}  done {:>8}  failed {:>6}",
                    kind.as_str(),
                    c.queued,
                    c.running,
                    c.done,
                    c.failed
                );
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchCommand::Rules { cases, letters, dirs } } => {
            let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
            crate::bench_rules::rules(&cfg, cli.db.as_deref(), cases, letters, &dirs).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchCommand::Ingest { letters, postgres, batch } } => {
            crate::bench_ingest::ingest(&cfg, letters, postgres.as_deref(), batch).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchCommand::Watch { files, restarts, rate } } => {
            let path = cli.config.clone().or_else(|| {
                let p = PathBuf::from("config/xinfang.toml");
                p.exists().then_some(p)
            });
            let ok = crate::bench_watch::watch(path.as_deref(), &cfg, files, restarts, rate).await?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(3) })
        }
        Command::Bench { what: BenchCommand::Ocr { truth, no_cli, rounds, out, paths } } => {
            let opts = crate::bench::OcrBenchOptions { with_cli: !no_cli, rounds, out };
            crate::bench::ocr(&cfg, &paths, &truth, &opts).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The store, the OCR engines and the intake over them.
async fn start_intake(cfg: &Arc<Config>, db: Option<&str>) -> Result<(Intake, OcrPool)> {
    let store = open_store(cfg, db).await?;
    let pool = OcrPool::start(&cfg.ocr, &cfg.limits, cfg.ocr.worker_count())?;
    let intake = Intake::new(Arc::clone(cfg), store, pool.clone(), Arc::new(understander(cfg)?));
    Ok((intake, pool))
}

/// Waits for SIGTERM or Ctrl-C, sets `stop` (no new work is taken; work in flight goes on),
/// then waits out the grace period. Never completes without a signal.
async fn stop_then_grace(stop: Arc<AtomicBool>, grace: std::time::Duration) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    stop.store(true, Ordering::SeqCst);
    eprintln!("stopping: no new letters are taken; those in flight have {} s to finish", grace.as_secs());
    tokio::time::sleep(grace).await;
}

/// One line (or JSON object) per finished job.
fn print_work_report(r: &WorkReport, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(r) {
            println!("{line}");
        }
        return;
    }
    match r {
        WorkReport::Letter(l) => {
            let note = l.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default();
            println!("{:<10} {:<20} {}{note}", l.status.as_str(), l.case_no.as_deref().unwrap_or("-"), l.source);
        }
        WorkReport::Rerun(rr) => {
            println!(
                "{:<10} {:<20} {}",
                rr.status,
                rr.case_no,
                rr.error.clone().unwrap_or_else(|| rr.changes.join("; "))
            );
        }
    }
}

/// A progress bar on stderr; indicatif draws it only when stderr is a terminal.
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} letters, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn fmt_conf(c: Option<f32>) -> String {
    c.map_or_else(|| "-".to_string(), |c| format!("{c:.2}"))
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Pads to a display width, counting a Chinese character as two columns.
fn pad(s: &str, width: usize) -> String {
    let w: usize = s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

fn print_ingest_table(reports: &[LetterReport]) {
    println!(
        "{:<3} {:<10} {:<20} {:>5} {:>5} {:>6} {:<6} {:<28} source / note",
        "#", "status", "case", "pages", "conf", "chars", "review", "decision"
    );
    for (i, r) in reports.iter().enumerate() {
        let chars = r.text.as_ref().map(|t| t.chars().filter(|c| !c.is_whitespace()).count());
        let note = match (&r.error, r.flags.is_empty()) {
            (Some(e), _) => format!("{}  ({e})", r.source),
            (None, false) => format!("{}  [{}]", r.source, r.flags.join(" ")),
            (None, true) => r.source.clone(),
        };
        let decision = match r.class {
            Some(c) => format!(
                "{} {} {}{}",
                c.as_str(),
                if r.named == Some(true) { "实名" } else { "匿名" },
                r.handling_level.map_or("-", |l| l.as_str()),
                if r.repeat_of.is_some() {
                    " 重复"
                } else if r.new_facts_of.is_some() {
                    " 新事实"
                } else {
                    ""
                }
            ),
            None => "-".into(),
        };
        println!(
            "{:<3} {:<10} {:<20} {:>5} {:>5} {:>6} {:<6} {:<28} {}",
            i + 1,
            r.status.as_str(),
            r.case_no.as_deref().unwrap_or("-"),
            r.pages,
            fmt_conf(r.ocr_confidence),
            chars.map_or_else(|| "-".into(), |c| c.to_string()),
            if r.review { "yes" } else { "" },
            pad(&decision, 28),
            note
        );
    }
    let count = |s: IngestStatus| reports.iter().filter(|r| r.status == s).count();
    println!(
        "{} letter(s): {} registered, {} duplicate, {} failed",
        reports.len(),
        count(IngestStatus::Registered),
        count(IngestStatus::Duplicate),
        count(IngestStatus::Failed)
    );
}

//! The command line: argument parsing, one dispatch, and each command in a file of its own
//! (`ingest`, `show`, …), which parses what the user typed, calls the library and formats
//! the outcome. The only place (with the benchmarks) that uses `anyhow`; exit codes: 0
//! success, 2 when some letter failed, 1 on a system error.

mod check_config;
mod decide;
mod eval;
mod explain;
mod format;
mod identity;
mod ingest;
mod list;
mod ocr;
mod queue;
mod reprocess;
mod review;
mod service;
mod show;
mod watch;
mod worker;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use xinfang::config::Config;

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
        /// Backfill an archive: a CSV of its letters (file, received, channel, old_case_no,
        /// class, status; Chinese headers too), registered with their own dates of receipt
        #[arg(long, conflicts_with = "paths")]
        manifest: Option<PathBuf>,
        /// The date of receipt of every letter given (a folder received on one day), in the
        /// organ's time zone; with --manifest, of the rows that give none
        #[arg(long)]
        received: Option<String>,
        #[arg(required_unless_present = "manifest")]
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
        /// Only the cases waiting for a reviewer, the longest waiting first
        #[arg(long)]
        review: bool,
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
    /// Run labelled letters (labels.json, or a mailbag's labels.jsonl: one store per id
    /// prefix) through the intake into temporary stores and print accuracy per field,
    /// confusion matrices, repeat precision/recall, the review rate and how right the letters
    /// decided alone are
    Eval {
        labels: PathBuf,
        /// Which matters: all, tune (rules are tuned on them) or held-out (only measured)
        #[arg(long, default_value = "all", value_parser = ["all", "tune", "held-out"])]
        part: String,
        /// Exit with status 3 when a target of issue 14 is not met
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
        /// One JSON object per event (archived, quarantined, changed, skipped) on stdout
        #[arg(long)]
        json: bool,
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
        /// The organ a 业务范围外 letter is forwarded to (转送), e.g. 县人民法院
        #[arg(long)]
        forward_to: Option<String>,
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
    /// Several `xinfang worker` processes sharing one PostgreSQL: the same generated letters
    /// queued in a fresh database and drained by 1, 2, 4 … workers at once; letters/s and
    /// the database's share of the CPU
    Workers {
        /// Admin URL of the PostgreSQL server (a database is created and dropped per run)
        #[arg(long)]
        postgres: String,
        #[arg(long, default_value_t = 4_000)]
        letters: usize,
        /// Numbers of worker processes to measure
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        workers: Vec<usize>,
    },
    /// Store latency as it grows to a million cases: claim, repeat lookup, list, show and the
    /// review queue (p50/p99) at 10,000, 100,000 and 1,000,000 cases seeded in bulk, on SQLite
    /// and, with --postgres, on a fresh PostgreSQL database
    Scale {
        #[arg(long, default_value_t = 1_000_000)]
        cases: i64,
        /// Admin URL of a PostgreSQL server to measure too (a database is created and dropped)
        #[arg(long)]
        postgres: Option<String>,
    },
    /// A rules-only re-run of a whole store (reprocess --all without --ocr) seeded with
    /// generated letters: letters/s and peak memory, one job at a time beside batched, on
    /// SQLite and, with --postgres, on a fresh PostgreSQL database
    Rerun {
        /// Cases in the store (seeded fast, without the repeat lookup)
        #[arg(long, default_value_t = 100_000)]
        cases: usize,
        /// Of them, the newest re-run one job at a time before the rest is re-run batched
        #[arg(long, default_value_t = 2_000)]
        single: usize,
        /// Admin URL of a PostgreSQL server to measure too (a database is created and dropped)
        #[arg(long)]
        postgres: Option<String>,
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
        /// Also measure N pages made by samples/pages.py (other text, fonts, sizes,
        /// resolutions and conditions), one half of them (see --split)
        #[arg(long)]
        generated: Option<usize>,
        /// Seed of the first generated page
        #[arg(long, default_value_t = 0)]
        first: usize,
        /// Which half of the generated pages to measure
        #[arg(long, value_enum, default_value = "heldout")]
        split: crate::bench::ocr::Split,
        /// Where the generated pages are written and reused [default: a folder in the temp dir]
        #[arg(long)]
        pages_dir: Option<PathBuf>,
        paths: Vec<PathBuf>,
    },
}

/// Runs the command line and maps the outcome to an exit status.
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
        // `xinfang list | head -1`: the reader has what it wanted.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", xinfang_models::display::one_line(&causes(&e)));
            ExitCode::from(1)
        }
    }
}

/// Whether the error is a write to a closed pipe.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// An error and its causes, each said once: a cause whose text the message already holds
/// (most of ours quote their source) is not repeated.
fn causes(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // sqlx's own notes (slow statements) are for whoever tunes the database, not the clerk.
    let filter = EnvFilter::try_from_env("XINFANG_LOG").unwrap_or_else(|_| EnvFilter::new("warn,sqlx=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// One command, one function.
async fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = Arc::new(Config::find(cli.config.as_deref())?);
    let db = cli.db.as_deref();
    match cli.command {
        Command::CheckConfig => check_config::run(&cfg),
        Command::Explain { case_no } => explain::run(&cfg, db, &case_no).await,
        Command::Decide { files } => decide::run(&cfg, &files),
        Command::Eval { labels, part, check, verbose } => eval::run(&cfg, &labels, &part, check, verbose).await,
        Command::Identity { case_no, reader, role, purpose } => {
            identity::run(&cfg, db, &case_no, &reader, &role, &purpose).await
        }
        Command::Ingest { json, manifest, received, paths } => {
            let source = match manifest {
                Some(m) => ingest::Source::Manifest(m),
                None => ingest::Source::Paths(paths),
            };
            ingest::run(&cfg, db, source, received.as_deref(), json).await
        }
        Command::Ocr { out, files } => ocr::run(&cfg, out.as_deref(), &files).await,
        Command::Show { case_no, json } => show::run(&cfg, db, &case_no, json).await,
        Command::List { limit, review, json } => list::run(&cfg, db, limit, review, json).await,
        Command::Worker { drain, json } => worker::run(&cfg, db, drain, json).await,
        Command::Watch { no_worker, json, dirs } => watch::run(&cfg, db, &dirs, no_worker, json).await,
        Command::Reprocess { ocr, all, since, until, class, json, cases } => {
            let sel = reprocess::Selection { all, since, until, class, cases };
            reprocess::run(&cfg, db, &sel, ocr, json).await
        }
        Command::Review { case_no, reviewer, class, level, named, forward_to, note } => {
            review::run(&cfg, db, &case_no, review::Edit { reviewer, class, level, named, forward_to, note }).await
        }
        Command::Queue => queue::run(&cfg, db).await,
        Command::Bench { what } => bench(&cfg, cli.config.as_deref(), db, what).await,
    }
}

/// `xinfang bench …`.
/// The configuration file in use (as named, else `config/xinfang.toml` when present): what a
/// benchmark's child processes are given.
fn config_file(cfg_path: Option<&std::path::Path>) -> Option<PathBuf> {
    cfg_path.map(PathBuf::from).or_else(|| {
        let p = PathBuf::from(xinfang::config::DEFAULT_PATH);
        p.exists().then_some(p)
    })
}

async fn bench(
    cfg: &Config,
    cfg_path: Option<&std::path::Path>,
    db: Option<&str>,
    what: BenchCommand,
) -> Result<ExitCode> {
    use crate::bench;
    match what {
        BenchCommand::Rules { cases, letters, dirs } => {
            let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
            bench::rules::rules(cfg, db, cases, letters, &dirs).await?;
        }
        BenchCommand::Ingest { letters, postgres, batch } => {
            bench::ingest::ingest(cfg, letters, postgres.as_deref(), batch).await?;
        }
        BenchCommand::Workers { postgres, letters, workers } => {
            let path = config_file(cfg_path);
            bench::workers::workers(path.as_deref(), cfg, &postgres, letters, &workers).await?;
        }
        BenchCommand::Scale { cases, postgres } => {
            bench::scale::scale(cfg, cases, postgres.as_deref()).await?;
        }
        BenchCommand::Rerun { cases, single, postgres } => {
            bench::rerun::rerun(cfg, cases, single, postgres.as_deref()).await?;
        }
        BenchCommand::Watch { files, restarts, rate } => {
            let path = config_file(cfg_path);
            let ok = bench::watch::watch(path.as_deref(), cfg, files, restarts, rate).await?;
            return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(3) });
        }
        BenchCommand::Ocr { truth, no_cli, rounds, out, generated, first, split, pages_dir, paths } => {
            let generated =
                generated.map(|count| bench::ocr::Generated { count, first, split, dir: pages_dir.clone() });
            anyhow::ensure!(
                generated.is_some() || !paths.is_empty(),
                "give sample paths (samples/scans) or --generated N"
            );
            let opts = bench::ocr::OcrBenchOptions { with_cli: !no_cli, rounds, out, generated };
            bench::ocr::ocr(cfg, &paths, &truth, &opts).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn a_review_without_a_reviewer_is_refused_by_the_parser() {
        assert!(Cli::try_parse_from(["xinfang", "review", "QLX-2026-X-000001"]).is_err());
        assert!(Cli::try_parse_from(["xinfang", "review", "QLX-2026-X-000001", "--reviewer", "王"]).is_ok());
    }

    #[test]
    fn an_error_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let inner = anyhow::Error::new(io).context("cannot open database x.db: no such file");
        let e = inner.context("opening the case store at x.db");
        assert_eq!(causes(&e), "opening the case store at x.db: cannot open database x.db: no such file");
    }

    #[test]
    fn a_closed_pipe_is_told_from_other_errors() {
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("printing");
        assert!(broken_pipe(&pipe));
        assert!(!broken_pipe(&anyhow::anyhow!("no case QLX-2026-X-000001")));
    }

    #[test]
    fn ingest_needs_a_path() {
        assert!(Cli::try_parse_from(["xinfang", "ingest"]).is_err());
        let cli = Cli::try_parse_from(["xinfang", "ingest", "--json", "a.txt", "b"]).expect("parses");
        assert!(
            matches!(cli.command, Command::Ingest { json: true, ref paths, manifest: None, .. } if paths.len() == 2)
        );
    }
}

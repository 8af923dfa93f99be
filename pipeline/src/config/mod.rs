//! Runtime configuration: `config/xinfang.toml` parsed into serde structs that deny unknown
//! fields, then validated as a whole so that every problem is reported at once; and the rule
//! data of the understanding stages (`catalogue`), read from the files that configuration
//! names. Each stage receives only its own section. Secrets never live here.
//!
//! **Invariant:** configuration imports nothing of the pipeline above it (stages, store,
//! intake): everything else reads it.

pub mod catalogue;

use catalogue::{Catalogue, CatalogueError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;
use xinfang_models::{CaseNo, Channel};

/// The shipped configuration, compiled into the binary.
pub const BUILTIN: &str = include_str!("../../../config/xinfang.toml");

/// Where the configuration is looked for when none is named.
pub const DEFAULT_PATH: &str = "config/xinfang.toml";

/// Problems loading or validating the configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot parse config {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid config {path}:\n  - {}", problems.join("\n  - "))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub store: StoreConfig,
    pub numbering: NumberingConfig,
    pub limits: Limits,
    pub ocr: OcrConfig,
    pub rules: catalogue::RulePaths,
    pub access: AccessConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub watch: WatchConfig,
    /// The folder of the configuration file the rule paths are relative to; `None` for the
    /// built-in configuration (then the built-in rules are used too).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// The configuration file itself (`None` for the built-in configuration).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Where the store keeps its files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Originals, quarantine and the default SQLite file live below this directory.
    pub data_dir: PathBuf,
}

/// Who may see what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Roles that may read a reporter's identity (every read is recorded).
    pub identity_roles: Vec<String>,
}

/// The durable job queue and its workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// A running job's lease; its worker renews it every third of this while it works.
    /// A job whose worker stops renewing (killed, machine down) is claimed again after it.
    pub lease_secs: u64,
    /// Claims of a letter before the intake gives up reading it and registers it for
    /// manual handling (待人工处理).
    pub max_attempts: u32,
    /// Backoff before a job that failed for a passing reason is tried again: this, doubled
    /// for each earlier attempt.
    pub retry_base_secs: u64,
    /// How often an idle worker looks for new jobs.
    pub poll_ms: u64,
    /// How long a database that is locked or a disk that is full is retried (with backoff,
    /// saying so on stderr) before the command gives up.
    pub system_retry_secs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { lease_secs: 120, max_attempts: 3, retry_base_secs: 10, poll_ms: 500, system_retry_secs: 120 }
    }
}

/// The watched folders of `xinfang watch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// A file or sub-folder is taken only once its size and modification time have not
    /// changed for this long (a scanner or a copy over the network is still writing).
    pub stable_secs: f64,
    /// How often the folders are scanned (native file events wake the scan earlier; on
    /// network shares, where they do not arrive, this is what finds new files).
    pub poll_secs: f64,
    /// Where a letter's files go once its case is committed (empty: data_dir/archive),
    /// in a folder per day.
    pub archive_dir: PathBuf,
    /// Where a letter that cannot be read goes, with the reason beside it (empty:
    /// data_dir/quarantine).
    pub quarantine_dir: PathBuf,
    /// On SIGTERM, how long letters in flight may take to finish before they are left to
    /// the queue (their jobs are taken up again by the next worker).
    pub shutdown_grace_secs: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            stable_secs: 2.0,
            poll_secs: 1.0,
            archive_dir: PathBuf::new(),
            quarantine_dir: PathBuf::new(),
            shutdown_grace_secs: 30,
        }
    }
}

impl WatchConfig {
    pub fn archive(&self, data_dir: &Path) -> PathBuf {
        if self.archive_dir.as_os_str().is_empty() {
            data_dir.join("archive")
        } else {
            self.archive_dir.clone()
        }
    }

    pub fn quarantine(&self, data_dir: &Path) -> PathBuf {
        if self.quarantine_dir.as_os_str().is_empty() {
            data_dir.join("quarantine")
        } else {
            self.quarantine_dir.clone()
        }
    }
}

/// How case numbers are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberingConfig {
    pub organ_code: String,
    pub channel: Channel,
}

/// Bounds on hostile or broken input. Every limit is named in the error it causes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub max_letter_bytes: u64,
    /// Pixels of a page as OCR reads it: a larger scan or PDF page is scaled down to this.
    pub max_page_pixels: u64,
    /// Pixels an image may have to be decoded at all (before it is scaled down to
    /// `max_page_pixels`): bounds the memory one decode takes.
    #[serde(default = "default_max_decode_pixels")]
    pub max_decode_pixels: u64,
    pub max_letter_pixels: u64,
    pub max_pages_per_letter: u32,
    pub max_stream_bytes: u64,
    pub max_text_bytes: u64,
    pub letter_timeout_secs: u64,
    pub page_ocr_timeout_secs: u64,
}

/// OCR engine and preprocessing settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcrConfig {
    pub language: String,
    pub tessdata_dir: String,
    pub workers: usize,
    pub low_confidence: f32,
    pub min_skew_deg: f32,
    pub max_skew_deg: f32,
    /// Smooth pixel noise with a 3x3 median before OCR, on the pages that need it: those
    /// whose grain × (stroke thickness − 1 px) is at least `median_min_score`.
    pub median_filter: bool,
    #[serde(default = "default_median_min_score")]
    pub median_min_score: f32,
    pub orientation_retry_below: f32,
    /// Words of punctuation and symbols only, read below this confidence, are dropped.
    pub drop_junk_below: f32,
    /// Lines holding a Han character read below this confidence are read again on their own
    /// (single-line mode), keeping the clearly more confident reading; 0 = never.
    #[serde(default)]
    pub reread_below: f32,
    /// The second engine (PP-OCRv5 recognition on the lines tesseract found, see
    /// `stages::ppocr`): on, or off (tesseract alone).
    #[serde(default)]
    pub second_engine: bool,
    /// Where its files are; empty = `$XINFANG_MODELS_DIR/ppocrv5`, else
    /// `~/.local/share/xinfang/ppocrv5` (where `pipeline/scripts/setup.sh` installs them).
    #[serde(default)]
    pub second_engine_dir: String,
    /// The second engine reads a line only when tesseract read it below this confidence
    /// (1 = every line).
    #[serde(default = "default_one")]
    pub second_engine_first_below: f32,
    /// Its reading replaces tesseract's when its own confidence is at least this and it has
    /// at most one character fewer; 0 = always, unchecked.
    #[serde(default)]
    pub second_engine_min_conf: f32,
    /// Tesseract variables set on every engine (name → value), e.g. the page segmentation
    /// mode or thresholding method; unknown names are reported when the engines start.
    #[serde(default)]
    pub tesseract_variables: std::collections::BTreeMap<String, String>,
}

fn default_one() -> f32 {
    1.0
}

fn default_median_min_score() -> f32 {
    MEDIAN_MIN_SCORE
}

/// Chosen on the tuning half of the generated pages and the samples (`xinfang bench ocr
/// --split tuning`): the median helped every page scoring 6.3 and more but two (of 9.8 and
/// 72, each by under 1 point of CER), and hurt or did nothing to every page scoring 4.0 and
/// less (a clean 150-dpi table page, score 0.5: 0.9 % CER without it, 7.3 % with it).
const MEDIAN_MIN_SCORE: f32 = 5.0;

fn default_max_decode_pixels() -> u64 {
    200_000_000
}

impl OcrConfig {
    /// The number of OCR engines to run: the configured count, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        }
    }
}

impl Config {
    /// Loads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut cfg = Config::parse(&text, path)?;
        cfg.base_dir = Some(path.parent().map(Path::to_path_buf).unwrap_or_default());
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses and validates configuration text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(e) })?;
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid { path: path.to_path_buf(), problems })
        }
    }

    /// Every validation problem, empty when the configuration is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !CaseNo::valid_organ(&self.numbering.organ_code) {
            p.push(format!(
                "numbering.organ_code {:?} must be 1-16 ASCII letters or digits",
                self.numbering.organ_code
            ));
        }
        let l = &self.limits;
        for (name, v) in [
            ("limits.max_file_bytes", l.max_file_bytes),
            ("limits.max_letter_bytes", l.max_letter_bytes),
            ("limits.max_page_pixels", l.max_page_pixels),
            ("limits.max_letter_pixels", l.max_letter_pixels),
            ("limits.max_decode_pixels", l.max_decode_pixels),
            ("limits.max_stream_bytes", l.max_stream_bytes),
            ("limits.max_text_bytes", l.max_text_bytes),
            ("limits.letter_timeout_secs", l.letter_timeout_secs),
            ("limits.page_ocr_timeout_secs", l.page_ocr_timeout_secs),
            ("limits.max_pages_per_letter", u64::from(l.max_pages_per_letter)),
        ] {
            if v == 0 {
                p.push(format!("{name} must be greater than 0"));
            }
        }
        if l.max_page_pixels > 400_000_000 {
            p.push("limits.max_page_pixels above 400000000 would let one page exhaust memory".into());
        }
        if l.max_decode_pixels < l.max_page_pixels || l.max_decode_pixels > 2_000_000_000 {
            p.push("limits.max_decode_pixels must be at least limits.max_page_pixels and at most 2000000000".into());
        }
        if l.max_page_pixels > l.max_letter_pixels {
            p.push("limits.max_page_pixels must not exceed limits.max_letter_pixels".into());
        }
        if l.max_file_bytes > l.max_letter_bytes {
            p.push("limits.max_file_bytes must not exceed limits.max_letter_bytes".into());
        }
        let o = &self.ocr;
        if o.language.trim().is_empty() {
            p.push("ocr.language must name a traineddata, e.g. chi_sim".into());
        }
        for (name, v) in [
            ("ocr.low_confidence", o.low_confidence),
            ("ocr.orientation_retry_below", o.orientation_retry_below),
            ("ocr.drop_junk_below", o.drop_junk_below),
            ("ocr.reread_below", o.reread_below),
            ("ocr.second_engine_first_below", o.second_engine_first_below),
            ("ocr.second_engine_min_conf", o.second_engine_min_conf),
        ] {
            if !(0.0..=1.0).contains(&v) {
                p.push(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        let q = &self.queue;
        if q.lease_secs < 3 || q.max_attempts == 0 || q.poll_ms == 0 {
            p.push("queue: lease_secs must be at least 3, max_attempts and poll_ms at least 1".into());
        }
        let w = &self.watch;
        if !(w.stable_secs >= 0.0 && w.poll_secs > 0.0) {
            p.push("watch: stable_secs must be >= 0 and poll_secs > 0".into());
        }
        if !(0.0..=15.0).contains(&o.max_skew_deg) || o.min_skew_deg < 0.0 || o.min_skew_deg > o.max_skew_deg {
            p.push("ocr skew bounds must satisfy 0 <= min_skew_deg <= max_skew_deg <= 15".into());
        }
        p
    }

    /// The configuration compiled into the binary (the shipped `config/xinfang.toml`), used
    /// when no config file is found; its rule data is the built-in copy too.
    pub fn builtin() -> Result<Config, ConfigError> {
        Config::parse(BUILTIN, Path::new("<built-in config>"))
    }

    /// The configuration file given, else `config/xinfang.toml` when it exists, else the
    /// built-in configuration.
    pub fn find(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Config::load(p),
            None => {
                let default = Path::new(DEFAULT_PATH);
                if default.exists() {
                    Config::load(default)
                } else {
                    Config::builtin()
                }
            }
        }
    }

    /// The rule data of the understanding stages, read and validated.
    pub fn catalogue(&self) -> Result<Catalogue, CatalogueError> {
        match &self.base_dir {
            Some(dir) => Catalogue::load(&self.rules, dir),
            None => Catalogue::builtin(),
        }
    }

    /// The organ's time zone (`calendar.toml`), for showing times: Asia/Shanghai when the
    /// calendar cannot be read (a command that needs the rules reports why).
    pub fn time_zone(&self) -> chrono_tz::Tz {
        #[derive(Deserialize)]
        struct Zone {
            time_zone: Option<String>,
        }
        let text = match &self.base_dir {
            Some(dir) => std::fs::read_to_string(dir.join(&self.rules.calendar)).ok(),
            None => Some(catalogue::BUILTIN_CALENDAR.to_string()),
        };
        text.and_then(|t| toml::from_str::<toml::Value>(&t).ok())
            .and_then(|v| v.try_into::<Zone>().ok())
            .and_then(|z| z.time_zone)
            .and_then(|z| z.parse().ok())
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// The files the running service reads its configuration from (the configuration file
    /// and the rule files it names): never to be taken for letters.
    pub fn own_files(&self) -> Vec<PathBuf> {
        let (Some(source), Some(base)) = (&self.source, &self.base_dir) else { return Vec::new() };
        let r = &self.rules;
        let mut files = vec![source.clone()];
        files.extend([&r.keywords, &r.rules, &r.calendar, &r.dictionary].into_iter().map(|p| base.join(p)));
        files
    }

    /// The default database URL: an SQLite file in the data directory.
    pub fn default_database_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.store.data_dir.join("xinfang.db").display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = BUILTIN;

    #[test]
    fn shipped_config_is_valid() {
        let cfg = Config::parse(SHIPPED, Path::new("xinfang.toml")).expect("shipped config loads");
        assert_eq!(cfg.numbering.channel, Channel::Letter);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = SHIPPED
            .replace("organ_code = \"QLX\"", "organ_code = \"Q-L\"")
            .replace("low_confidence = 0.60", "low_confidence = 7.0");
        let err = Config::parse(&bad, Path::new("x.toml")).expect_err("invalid config");
        let msg = err.to_string();
        assert!(msg.contains("organ_code") && msg.contains("low_confidence"), "{msg}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let bad = SHIPPED.replace("[ocr]", "[ocr]\nlangauge = \"eng\"");
        assert!(matches!(Config::parse(&bad, Path::new("x.toml")), Err(ConfigError::Parse { .. })));
    }
}

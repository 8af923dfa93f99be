//! How values look on a terminal: confidences, times, Chinese text in columns, progress,
//! and the one line each finished job gets. Names, notes and reasons from outside are
//! printed through `xinfang_models::display` (control characters escaped); output to a
//! closed pipe ends the command quietly (see `cli::main`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use xinfang::intake::worker::WorkReport;
use xinfang_models::display::one_line;

/// `writeln!` to standard output, returning the error (a closed pipe) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use out;

/// `write!` to standard output (no line end added), returning the error.
macro_rules! put {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use put;

/// A confidence with two decimals, `-` when there is none.
pub fn conf(c: Option<f32>) -> String {
    c.map_or_else(|| "-".to_string(), |c| format!("{c:.2}"))
}

/// A Unix-millisecond time as `YYYY-MM-DD HH:MM` in the organ's time zone.
pub fn time(ms: i64, zone: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Pads to a display width, counting a Chinese character as two columns.
pub fn pad(s: &str, width: usize) -> String {
    let w: usize = s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// Progress of long work on stderr: a bar on a terminal; otherwise (a log, a pipe, a
/// service) a line every `EVERY` with what is done, the rate and the time left.
pub struct Progress {
    bar: indicatif::ProgressBar,
    lines: Option<Mutex<Lines>>,
}

struct Lines {
    what: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
}

/// How often a progress line is written when stderr is not a terminal.
const EVERY: Duration = Duration::from_secs(10);

impl Progress {
    /// Progress over `total` items named `what` (`letters`, `cases`).
    pub fn new(total: u64, what: &'static str) -> Progress {
        use indicatif::{ProgressBar, ProgressStyle};
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal { ProgressBar::new(total) } else { ProgressBar::hidden() };
        if let Ok(style) = ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {what}, eta {{eta}}"
        )) {
            bar.set_style(style);
        }
        let now = Instant::now();
        let lines = (!terminal).then(|| Mutex::new(Lines { what, total, done: 0, started: now, last: now }));
        Progress { bar, lines }
    }

    /// One more item done.
    pub fn inc(&self) {
        self.bar.inc(1);
        if let Some(lines) = &self.lines {
            if let Ok(mut l) = lines.lock() {
                l.done += 1;
                if l.last.elapsed() >= EVERY {
                    l.last = Instant::now();
                    eprintln!("{}", l.line());
                }
            }
        }
    }

    /// Runs `f` (which prints) without the bar drawn through its output.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the bar; without one, says where the work ended if it took long enough for
    /// progress lines.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        if let Some(lines) = &self.lines {
            if let Ok(l) = lines.lock() {
                if l.started.elapsed() >= EVERY {
                    eprintln!("{}", l.line());
                }
            }
        }
    }
}

impl Lines {
    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let left = self.total.saturating_sub(self.done);
        let eta = if rate > 0.0 { format!(", about {} left", duration(left as f64 / rate)) } else { String::new() };
        format!("progress: {}/{} {} done, {rate:.1}/s{eta}", self.done, self.total, self.what)
    }
}

/// A duration as people say it: `40 s`, `12 min`, `3 h 5 min`.
fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// One line (or JSON object) per finished job, on standard output (a closed output does not
/// stop the work: the jobs are the point, the lines a courtesy).
pub fn print_work_report(r: &WorkReport, json: bool) {
    let mut stdout = std::io::stdout().lock();
    if json {
        if let Ok(line) = serde_json::to_string(r) {
            let _ = writeln!(stdout, "{line}");
        }
        return;
    }
    let _ = match r {
        WorkReport::Letter(l) => {
            let note = l.error.as_deref().map(|e| format!("  ({})", one_line(e))).unwrap_or_default();
            writeln!(
                stdout,
                "{}  {:<10} {:<20} {}{note}",
                chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
                l.status.as_str(),
                l.case_no.as_deref().unwrap_or("-"),
                one_line(&l.source)
            )
        }
        WorkReport::Rerun(rr) => writeln!(
            stdout,
            "{:<10} {:<20} {}",
            rr.status.as_str(),
            rr.case_no,
            one_line(&rr.error.clone().unwrap_or_else(|| rr.changes.join("; ")))
        ),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_counts_two_columns_when_padding() {
        assert_eq!(pad("检举控告", 10), "检举控告  ");
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad("太长的一行文字", 4), "太长的一行文字");
    }

    #[test]
    fn time_left_reads_as_people_say_it() {
        assert_eq!(duration(40.0), "40 s");
        assert_eq!(duration(720.0), "12 min");
        assert_eq!(duration(3.0 * 3600.0 + 300.0), "3 h 5 min");
        let l = Lines { what: "letters", total: 100, done: 25, started: Instant::now(), last: Instant::now() };
        assert!(l.line().starts_with("progress: 25/100 letters done, "), "{}", l.line());
    }

    #[test]
    fn a_missing_confidence_is_a_dash() {
        assert_eq!(conf(None), "-");
        assert_eq!(conf(Some(0.914)), "0.91");
    }
}

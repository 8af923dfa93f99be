//! How values look on a terminal: confidences, times, Chinese text in columns, progress,
//! and the one line each finished job gets.

use xinfang::intake::worker::WorkReport;

/// A confidence with two decimals, `-` when there is none.
pub fn conf(c: Option<f32>) -> String {
    c.map_or_else(|| "-".to_string(), |c| format!("{c:.2}"))
}

/// A Unix-millisecond time as local `YYYY-MM-DD HH:MM`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Pads to a display width, counting a Chinese character as two columns.
pub fn pad(s: &str, width: usize) -> String {
    let w: usize = s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// A progress bar on stderr; indicatif draws it only when stderr is a terminal.
pub fn progress_bar(len: u64) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} letters, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// One line (or JSON object) per finished job.
pub fn print_work_report(r: &WorkReport, json: bool) {
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
                rr.status.as_str(),
                rr.case_no,
                rr.error.clone().unwrap_or_else(|| rr.changes.join("; "))
            );
        }
    }
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
    fn a_missing_confidence_is_a_dash() {
        assert_eq!(conf(None), "-");
        assert_eq!(conf(Some(0.914)), "0.91");
    }
}

//! Backfill: the letters of an archive with what the archive says of them. A manifest is a
//! CSV file (as Excel or WPS save one: UTF-8 with or without a byte-order mark, or GB18030)
//! with a header row naming its columns in English or in Chinese, in any order:
//!
//! | column | also | required | what |
//! |---|---|---|---|
//! | `file` | 文件 | yes | the letter: a file, or a folder of pages, relative to the manifest |
//! | `received` | 收件日期, 收信日期, 受理日期 | yes (unless `--received`) | date of receipt, optionally with a time |
//! | `channel` | 渠道, 来源 | no | 来信 / 来访 / 来电 / 网络 (or X F D W, letter visit phone online) |
//! | `old_case_no` | 原编号, 原案号 | no | the archive's own number, kept as an alias `show` finds |
//! | `class` | 类别 | no | the class decided back then (recorded as that review) |
//! | `status` | 状态 | no | the status the case had reached (已办结, 已转送, …) |
//!
//! Dates are read in the organ's time zone (`calendar.toml`), never the server's. Letters are
//! registered in order of receipt (rows of one day in manifest order, a millisecond apart),
//! so that a repeat in the archive is linked to the letter it repeats. A manifest with any
//! bad row is refused whole, every problem listed, before anything is stored.

use super::LetterInput;
use crate::stages::calendar::WorkCalendar;
use crate::store::ArchiveRecord;
use chrono::{NaiveDate, NaiveTime, Timelike};
use std::path::{Path, PathBuf};
use thiserror::Error;
use xinfang_models::{CaseStatus, Channel, LetterClass};

/// Why a manifest (or a `--received` date) cannot be used.
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("manifest {path} is not text in UTF-8 or GB18030")]
    Encoding { path: PathBuf },
    #[error("manifest {path}:\n  - {}", problems.join("\n  - "))]
    Invalid { path: PathBuf, problems: Vec<String> },
    #[error("{0:?} is not a date (2019-03-02, 2019/3/2, 2019年3月2日 or 20190302, optionally with HH:MM)")]
    Date(String),
}

/// The largest manifest read (a million rows of a few hundred bytes).
const MAX_MANIFEST_BYTES: usize = 512 << 20;

/// One column of the manifest and the header names that mean it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    File,
    Received,
    Channel,
    OldCaseNo,
    Class,
    Status,
}

const HEADERS: [(Column, &[&str]); 6] = [
    (Column::File, &["file", "path", "文件", "文件名", "文件路径"]),
    (Column::Received, &["received", "received_date", "date", "收件日期", "收信日期", "受理日期", "来信日期", "日期"]),
    (Column::Channel, &["channel", "渠道", "来源", "来源渠道"]),
    (Column::OldCaseNo, &["old_case_no", "case_no", "original_case_no", "原编号", "原案号", "原件号", "编号"]),
    (Column::Class, &["class", "类别", "问题类别", "分类"]),
    (Column::Status, &["status", "状态", "办理状态"]),
];

/// Reads a manifest into letter inputs in order of receipt, each carrying its archive
/// record. `default_day` fills empty dates of receipt.
pub fn read_manifest(
    path: &Path,
    calendar: &WorkCalendar,
    default_day: Option<NaiveDate>,
) -> Result<Vec<LetterInput>, ManifestError> {
    let bytes = read_bounded(path)?;
    let text = decode(&bytes).ok_or_else(|| ManifestError::Encoding { path: path.to_path_buf() })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let invalid = |problems: Vec<String>| ManifestError::Invalid { path: path.to_path_buf(), problems };
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| invalid(vec![e.to_string()]))?.clone();
    let columns = columns(&header).map_err(|p| invalid(vec![p]))?;
    if default_day.is_none() && !columns.contains(&Some(Column::Received)) {
        return Err(invalid(vec!["no `received` (收件日期) column, and no --received date for all rows".into()]));
    }
    let mut problems = Vec::new();
    let mut rows: Vec<(i64, usize, LetterInput)> = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Row numbers as a spreadsheet shows them: the header is row 1.
        let row_no = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("row {row_no}: {e}"));
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        let cell = |want: Column| {
            columns.iter().zip(record.iter()).find(|(c, _)| **c == Some(want)).map(|(_, v)| v).filter(|v| !v.is_empty())
        };
        match parse_row(&cell, calendar, default_day, i) {
            Ok((file, record)) => {
                let record = ArchiveRecord { source: format!("{name} row {row_no}"), ..record };
                let path = base.join(file);
                let mut input = LetterInput::at(&path);
                input.archive = Some(record.clone());
                rows.push((record.received_at, i, input));
            }
            Err(why) => problems.push(format!("row {row_no}: {why}")),
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    if rows.is_empty() {
        return Err(invalid(vec!["no rows: nothing to register".into()]));
    }
    rows.sort_by_key(|(at, i, _)| (*at, *i));
    Ok(rows.into_iter().map(|(_, _, input)| input).collect())
}

/// Gives every letter of `inputs` the day of receipt `day` (a folder received on one
/// date), a millisecond apart in their order.
pub fn received_on(inputs: &mut [LetterInput], calendar: &WorkCalendar, day: NaiveDate) -> Result<(), ManifestError> {
    let start = calendar.start_of(day).ok_or_else(|| ManifestError::Date(day.to_string()))?;
    for (i, input) in inputs.iter_mut().enumerate() {
        input.archive = Some(ArchiveRecord {
            received_at: start + i as i64,
            channel: None,
            old_case_no: None,
            class_then: None,
            status_then: None,
            source: format!("--received {day}"),
        });
    }
    Ok(())
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, ManifestError> {
    use std::io::Read;
    let read = |source| ManifestError::Read { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(read(std::io::Error::other(format!("larger than {} MiB", MAX_MANIFEST_BYTES >> 20))));
    }
    Ok(bytes)
}

/// UTF-8 (a byte-order mark dropped), else GB18030 as Chinese Excel saves CSV.
fn decode(bytes: &[u8]) -> Option<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Some(s.to_string());
    }
    let (text, _, malformed) = encoding_rs::GB18030.decode(bytes);
    (!malformed).then(|| text.into_owned())
}

/// The column each header cell names (`None`: a column this intake does not read).
fn columns(header: &csv::StringRecord) -> Result<Vec<Option<Column>>, String> {
    let columns: Vec<Option<Column>> = header
        .iter()
        .map(|h| {
            let h = h.trim_start_matches('\u{feff}').trim().to_lowercase();
            HEADERS.iter().find(|(_, names)| names.contains(&h.as_str())).map(|(c, _)| *c)
        })
        .collect();
    if !columns.contains(&Some(Column::File)) {
        let seen: Vec<&str> = header.iter().collect();
        return Err(format!("no `file` (文件) column in the header row ({})", seen.join(", ")));
    }
    for (c, names) in HEADERS {
        if columns.iter().filter(|x| **x == Some(c)).count() > 1 {
            return Err(format!("more than one `{}` column", names[0]));
        }
    }
    Ok(columns)
}

/// One row: the letter's path and what the archive says of it. `index` (the row's place)
/// orders letters received at the same moment.
fn parse_row<'a>(
    cell: &dyn Fn(Column) -> Option<&'a str>,
    calendar: &WorkCalendar,
    default_day: Option<NaiveDate>,
    index: usize,
) -> Result<(&'a str, ArchiveRecord), String> {
    let file = cell(Column::File).ok_or("no file named")?;
    let (day, time) = match cell(Column::Received) {
        Some(s) => parse_when(s).map_err(|e| e.to_string())?,
        None => (default_day.ok_or("no date of receipt")?, None),
    };
    let at = calendar.start_of(day).ok_or_else(|| format!("{day} is not a day in {}", calendar.zone()))?
        + time.map_or(0, |t| i64::from(t.num_seconds_from_midnight()) * 1000)
        + index as i64;
    let channel = cell(Column::Channel).map(parse_channel).transpose()?;
    let class_then = cell(Column::Class)
        .map(|c| {
            LetterClass::parse(c).ok_or_else(|| {
                let known: Vec<&str> = LetterClass::ALL.iter().map(|c| c.as_str()).collect();
                format!("class {c:?} is none of {}", known.join(", "))
            })
        })
        .transpose()?;
    let status_then = cell(Column::Status).map(parse_status).transpose()?;
    let record = ArchiveRecord {
        received_at: at,
        channel,
        old_case_no: cell(Column::OldCaseNo).map(str::to_string),
        class_then,
        status_then,
        source: String::new(),
    };
    Ok((file, record))
}

/// A date of receipt as archives write it, with an optional time of day.
pub fn parse_when(s: &str) -> Result<(NaiveDate, Option<NaiveTime>), ManifestError> {
    let bad = || ManifestError::Date(s.to_string());
    let s = s.trim();
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d.trim(), Some(t.trim())),
        None => (s, None),
    };
    let day = parse_day(date).ok_or_else(bad)?;
    let time = match time {
        Some(t) => Some(
            NaiveTime::parse_from_str(t, "%H:%M:%S")
                .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
                .map_err(|_| bad())?,
        ),
        None => None,
    };
    Ok((day, time))
}

fn parse_day(s: &str) -> Option<NaiveDate> {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if s.len() == 8 && digits.len() == 8 {
        return NaiveDate::parse_from_str(&digits, "%Y%m%d").ok();
    }
    // 2019-03-02, 2019/3/2, 2019.3.2, 2019年3月2日: three numbers, year first.
    let parts: Vec<&str> = s.split(|c: char| "-/.年月日".contains(c)).filter(|p| !p.is_empty()).collect();
    let well_formed = s.chars().all(|c| c.is_ascii_digit() || "-/.年月日".contains(c));
    match (well_formed, parts.as_slice()) {
        (true, [y, m, d]) if y.len() == 4 => NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?),
        _ => None,
    }
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    match s.to_lowercase().as_str() {
        "来信" | "信" | "信件" | "x" | "letter" => Ok(Channel::Letter),
        "来访" | "访" | "走访" | "f" | "visit" => Ok(Channel::Visit),
        "来电" | "电" | "电话" | "d" | "phone" => Ok(Channel::Phone),
        "网络" | "网" | "网络举报" | "网上" | "w" | "online" => Ok(Channel::Online),
        _ => Err(format!("channel {s:?} is none of 来信, 来访, 来电, 网络")),
    }
}

fn parse_status(s: &str) -> Result<CaseStatus, String> {
    CaseStatus::ALL
        .into_iter()
        .filter(|c| *c != CaseStatus::ManualHandling)
        .find(|c| c.label_zh() == s || c.as_str() == s)
        .ok_or_else(|| {
            let known: Vec<&str> =
                CaseStatus::ALL.iter().filter(|c| **c != CaseStatus::ManualHandling).map(|c| c.label_zh()).collect();
            format!("status {s:?} is none of {}", known.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar() -> WorkCalendar {
        WorkCalendar::new(&crate::config::catalogue::Catalogue::builtin().expect("rules").calendar)
    }

    fn manifest(dir: &Path, bytes: &[u8]) -> PathBuf {
        let path = dir.join("manifest.csv");
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn archives_write_dates_many_ways() {
        let d = NaiveDate::from_ymd_opt(2019, 3, 2).expect("date");
        for s in ["2019-03-02", "2019/3/2", "2019.03.02", "2019年3月2日", "20190302"] {
            assert_eq!(parse_when(s).expect(s).0, d, "{s}");
        }
        let (_, t) = parse_when("2019-03-02 14:30").expect("with time");
        assert_eq!(t, NaiveTime::from_hms_opt(14, 30, 0));
        for bad in ["2019-13-01", "3/2/2019", "yesterday", "2019-03", ""] {
            assert!(parse_when(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_day_of_receipt_is_the_organs_day_not_the_servers() {
        // 2019-03-02 00:00 in Beijing is 2019-03-01 16:00 UTC.
        let cal = calendar();
        let start = cal.start_of(NaiveDate::from_ymd_opt(2019, 3, 2).expect("date")).expect("start");
        assert_eq!(start, 1_551_456_000_000);
        assert_eq!(cal.day_of(start).to_string(), "2019-03-02");
        assert_eq!(cal.day_of(start - 1).to_string(), "2019-03-01");
    }

    #[test]
    fn a_gb18030_manifest_with_chinese_headers_is_read_in_order_of_receipt() {
        let dir = tempfile::tempdir().expect("dir");
        let csv = "文件,收件日期,渠道,原编号,类别,状态\n\
                   b.txt,2019/3/5,来访,青纪信〔2019〕12号,检举控告,已办结\n\
                   a.txt,2019年3月2日,,,,\n\
                   c.txt,2019-03-02,网络,,,\n";
        let (bytes, _, _) = encoding_rs::GB18030.encode(csv);
        let path = manifest(dir.path(), &bytes);
        let inputs = read_manifest(&path, &calendar(), None).expect("manifest");
        let names: Vec<String> =
            inputs.iter().map(|i| i.path.file_name().expect("name").to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.txt", "c.txt", "b.txt"]);
        let a = inputs[0].archive.as_ref().expect("record");
        let c = inputs[1].archive.as_ref().expect("record");
        let b = inputs[2].archive.as_ref().expect("record");
        assert!(a.received_at < c.received_at, "the same day in manifest order");
        assert_eq!(c.channel, Some(Channel::Online));
        assert_eq!(b.old_case_no.as_deref(), Some("青纪信〔2019〕12号"));
        assert_eq!(b.class_then, Some(LetterClass::Accusation));
        assert_eq!(b.status_then, Some(CaseStatus::Closed));
        assert_eq!(b.source, "manifest.csv row 2");
        assert_eq!(inputs[2].path, dir.path().join("b.txt"));
    }

    #[test]
    fn a_manifest_with_bad_rows_is_refused_whole_naming_each() {
        let dir = tempfile::tempdir().expect("dir");
        let path = manifest(
            dir.path(),
            "\u{feff}file,received,channel,class\na.txt,2019-02-30,letter,\nb.txt,2019-03-01,fax,\nc.txt,2019-03-01,,闲聊\n,2019-03-01,,\n"
                .as_bytes(),
        );
        let err = read_manifest(&path, &calendar(), None).expect_err("bad rows").to_string();
        for want in ["row 2", "2019-02-30", "row 3", "\"fax\"", "row 4", "闲聊", "row 5", "no file"] {
            assert!(err.contains(want), "{want} missing from: {err}");
        }
        let no_date = manifest(dir.path(), b"file\na.txt\n");
        assert!(read_manifest(&no_date, &calendar(), None).expect_err("no dates").to_string().contains("--received"));
        let day = NaiveDate::from_ymd_opt(2019, 3, 2);
        assert_eq!(read_manifest(&no_date, &calendar(), day).expect("default day").len(), 1);
    }
}

//! OCR: tesseract through its C API (the `tesseract` crate's `tesseract_sys`), one engine
//! per worker thread, each single-threaded (`OMP_THREAD_LIMIT=1`); pages are spread across
//! the engines, never one page across threads (measured: 2.1 s with one thread against
//! 14.7 s with OpenMP left on).
//!
//! The raw C API is used rather than the crate's builder so that every page gets a
//! recognition deadline (tesseract's progress monitor): a hostile page cannot hang a worker.
//!
//! `read_page` chains preprocessing, recognition (trying other orientations when the page
//! reads badly), normalisation and the review flags. It never touches the store.

use super::normalize::normalize;
use super::ppocr::{LineReader, ReadChar, SecondEngineError};
use super::preprocess::{infer_dpi, prepare, PreprocessConfig};
use crate::config::{Limits, OcrConfig};
use image::GrayImage;
use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tesseract::plumbing::tesseract_sys as sys;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use xinfang_models::{BoundingBox, LineBox, PageFlag, PageOrigin, PageText, WordBox};

/// Failures of the OCR engine. `Init` is a system problem (missing language data);
/// `Deadline` and `Recognize` are problems of the page.
#[derive(Debug, Error)]
pub enum OcrError {
    #[error(
        "cannot start tesseract with language {language:?} (tessdata {tessdata:?}); is the language data installed?"
    )]
    Init { language: String, tessdata: String },
    #[error("tesseract does not accept the variable {name} = {value:?} (ocr.tesseract_variables)")]
    Variable { name: String, value: String },
    #[error("page is {width} x {height} pixels, too large for the engine")]
    TooLarge { width: u32, height: u32 },
    #[error("tesseract gave up on the page after the deadline of {secs} s (limits.page_ocr_timeout_secs)")]
    Deadline { secs: u64 },
    #[error("tesseract failed to recognise the page")]
    Recognize,
    #[error("the OCR workers have stopped")]
    PoolClosed,
    #[error("reading the page failed unexpectedly; the letter is kept for manual handling")]
    Crashed,
    #[error(transparent)]
    SecondEngine(#[from] SecondEngineError),
}

impl OcrError {
    /// The engines cannot work at all (a problem of the machine, not of the page).
    pub fn is_system(&self) -> bool {
        matches!(
            self,
            OcrError::Init { .. }
                | OcrError::Variable { .. }
                | OcrError::PoolClosed
                | OcrError::SecondEngine(
                    SecondEngineError::Missing { .. }
                        | SecondEngineError::Runtime { .. }
                        | SecondEngineError::Model { .. }
                        | SecondEngineError::Mismatch { .. }
                )
        )
    }
}

/// One tesseract engine. Not shared between threads; moved into its worker.
pub struct Engine {
    api: *mut sys::TessBaseAPI,
    drop_junk_below: f32,
    reread_below: f32,
    /// `tessedit_pageseg_mode` is set in the configuration: it holds for every page.
    fixed_layout: bool,
    /// The second engine and when it reads a line (`ocr.second_engine`).
    second: Option<(LineReader, SecondPolicy)>,
}

/// How many characters fewer than tesseract's reading of a line the second engine's may
/// have and still be taken. Chosen on the tuning half of the generated pages: every line
/// read, kept at confidence 0.9: 1.04 % CER without the check, 1.07 % with 0 characters,
/// 0.73 % with 1, 0.75 % with 2, 0.77 % with 3 (the worst page 9.1 % -> 4.7 %).
const MAX_DROPPED_CHARS: usize = 1;

/// When the second engine reads a line and when its reading is kept (`ocr.second_engine_*`).
#[derive(Debug, Clone, Copy)]
struct SecondPolicy {
    first_below: f32,
    min_conf: f32,
}

/// How tesseract is to find the text on a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One block of running text (tesseract's `PSM_SINGLE_BLOCK`).
    OneBlock,
    /// Blocks side by side, columns or a table: tesseract's own layout analysis (`PSM_AUTO`).
    Blocks,
}

// SAFETY: a TessBaseAPI may be used from any thread as long as only one thread uses it at a
// time; `Engine` is owned by exactly one worker and all its methods take `&mut self`.
unsafe impl Send for Engine {}

/// Words, lines and confidence as tesseract returned them (text not yet normalised).
#[derive(Debug, Clone, Default)]
pub struct RawOcr {
    pub text: String,
    pub confidence: f32,
    pub words: Vec<WordBox>,
    pub lines: Vec<LineBox>,
    /// Per line: its text, and whether it begins a new block (`text` is built from these).
    line_texts: Vec<String>,
    new_block: Vec<bool>,
}

impl RawOcr {
    /// Builds `text` from the lines: one output line per text line, a blank line between blocks.
    fn rebuild_text(&mut self) {
        let mut text = String::new();
        let mut pending_break = false;
        for (line, &new_block) in self.line_texts.iter().zip(&self.new_block) {
            pending_break |= new_block;
            if line.is_empty() {
                continue;
            }
            if pending_break && !text.is_empty() {
                text.push('\n');
            }
            pending_break = false;
            text.push_str(line);
            text.push('\n');
        }
        self.text = text;
    }

    /// The lines holding a Han character read below `below`.
    fn doubtful_lines(&self, below: f32) -> Vec<usize> {
        let mut lines: Vec<usize> = self
            .words
            .iter()
            .filter(|w| w.conf < below && w.text.chars().any(super::normalize::is_han))
            .map(|w| w.line as usize)
            .collect();
        lines.dedup();
        lines
    }

    /// Mean confidence of a line's words, weighted by their characters.
    fn line_confidence<'a>(words: impl IntoIterator<Item = &'a WordBox>) -> f32 {
        let (sum, n) = words.into_iter().fold((0.0f32, 0usize), |(s, n), w| {
            let c = w.text.chars().count();
            (s + w.conf * c as f32, n + c)
        });
        if n == 0 {
            0.0
        } else {
            sum / n as f32
        }
    }

    /// Where line `line`'s words are in `words` (empty at their place when it has none).
    fn line_span(&self, line: usize) -> std::ops::Range<usize> {
        let start = self.words.iter().position(|w| w.line as usize >= line).unwrap_or(self.words.len());
        start..start + self.words[start..].iter().take_while(|w| w.line as usize == line).count()
    }

    /// Replaces line `line`'s words by the characters the second engine read there: each
    /// Chinese character a word of its own (as tesseract gives them), runs of other
    /// characters (Latin, digits, marks) one word, a space ending a word; then the line is
    /// cleaned as tesseract's lines are.
    fn replace_line_chars(&mut self, line: usize, chars: Vec<ReadChar>, drop_junk_below: f32) {
        let mut words: Vec<WordBox> = Vec::new();
        let mut joinable = false;
        for c in chars {
            if c.text.trim().is_empty() {
                joinable = false;
                continue;
            }
            let han = c.text.chars().any(super::normalize::is_han);
            match words.last_mut() {
                Some(w) if joinable && !han => {
                    w.text.push_str(&c.text);
                    w.conf = w.conf.min(c.conf);
                    w.bbox.w = (c.bbox.x + c.bbox.w).saturating_sub(w.bbox.x);
                }
                _ => words.push(WordBox { text: c.text, conf: c.conf, bbox: c.bbox, line: line as u32 }),
            }
            joinable = !han;
        }
        clean_line(&mut words, drop_junk_below);
        let span = self.line_span(line);
        self.line_texts[line] = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
        self.words.splice(span, words);
    }

    /// Replaces line `line`'s words by `alt`'s (a second reading of that line alone).
    fn replace_line(&mut self, line: usize, alt: RawOcr) {
        let span = self.line_span(line);
        let words: Vec<WordBox> = alt.words.into_iter().map(|w| WordBox { line: line as u32, ..w }).collect();
        self.line_texts[line] = alt.line_texts.iter().filter(|t| !t.is_empty()).cloned().collect::<Vec<_>>().join(" ");
        self.words.splice(span, words);
    }
}

impl Engine {
    /// Starts an engine for `cfg.language`, loading its model once.
    pub fn new(cfg: &OcrConfig) -> Result<Engine, OcrError> {
        let init_err = || OcrError::Init { language: cfg.language.clone(), tessdata: cfg.tessdata_dir.clone() };
        let lang = CString::new(cfg.language.as_str()).map_err(|_| init_err())?;
        let datapath = if cfg.tessdata_dir.is_empty() {
            None
        } else {
            Some(CString::new(cfg.tessdata_dir.as_str()).map_err(|_| init_err())?)
        };
        // SAFETY: plain C API calls on a handle we own; strings outlive the calls.
        unsafe {
            let api = sys::TessBaseAPICreate();
            if api.is_null() {
                return Err(init_err());
            }
            let engine = Engine {
                api,
                drop_junk_below: cfg.drop_junk_below,
                reread_below: cfg.reread_below,
                fixed_layout: cfg.tesseract_variables.contains_key("tessedit_pageseg_mode"),
                second: None,
            };
            let dp = datapath.as_ref().map_or(std::ptr::null(), |d| d.as_ptr());
            if sys::TessBaseAPIInit3(api, dp, lang.as_ptr()) != 0 {
                return Err(init_err());
            }
            for (name, value) in &cfg.tesseract_variables {
                let bad = || OcrError::Variable { name: name.clone(), value: value.clone() };
                let (n, v) =
                    (CString::new(name.as_str()).map_err(|_| bad())?, CString::new(value.as_str()).map_err(|_| bad())?);
                if sys::TessBaseAPISetVariable(api, n.as_ptr(), v.as_ptr()) == 0 {
                    return Err(bad());
                }
            }
            let mut engine = engine;
            if cfg.second_engine {
                let reader = LineReader::new(&super::ppocr::files_dir(&cfg.second_engine_dir))?;
                let policy =
                    SecondPolicy { first_below: cfg.second_engine_first_below, min_conf: cfg.second_engine_min_conf };
                engine.second = Some((reader, policy));
            }
            Ok(engine)
        }
    }

    /// Recognises one gray page at `dpi` laid out as `layout` says, giving up after `deadline`.
    pub fn recognize(
        &mut self,
        img: &GrayImage,
        dpi: u32,
        layout: Layout,
        deadline: Duration,
    ) -> Result<RawOcr, OcrError> {
        // SAFETY: the image is set before recognition and cleared on every path.
        unsafe {
            if !self.fixed_layout {
                // Read as one block, lines of two columns or of a table's cells run straight
                // across (measured: two-column pages 80-88 % CER); with the layout analysis,
                // plain letters read worse (see `Measures::needs_layout`).
                let mode = match layout {
                    Layout::OneBlock => sys::TessPageSegMode_PSM_SINGLE_BLOCK,
                    Layout::Blocks => sys::TessPageSegMode_PSM_AUTO,
                };
                sys::TessBaseAPISetPageSegMode(self.api, mode);
            }
            self.set_image(img, dpi)?;
            let tsv = match self.recognize_set(deadline) {
                Ok(tsv) => tsv,
                Err(e) => {
                    sys::TessBaseAPIClear(self.api);
                    return Err(e);
                }
            };
            let conf = sys::TessBaseAPIMeanTextConf(self.api);
            sys::TessBaseAPIClear(self.api);
            let mut raw = parse_tsv(&tsv, self.drop_junk_below);
            raw.confidence = (conf.clamp(0, 100) as f32) / 100.0;
            Ok(raw)
        }
    }

    /// Gives `img` to the engine (tesseract copies the buffer into its own Pix).
    ///
    /// SAFETY: the caller clears the engine (`TessBaseAPIClear`) once done with the image.
    unsafe fn set_image(&mut self, img: &GrayImage, dpi: u32) -> Result<(), OcrError> {
        let (w, h) = (img.width(), img.height());
        let (Ok(wi), Ok(hi)) = (i32::try_from(w), i32::try_from(h)) else {
            return Err(OcrError::TooLarge { width: w, height: h });
        };
        sys::TessBaseAPISetImage(self.api, img.as_raw().as_ptr(), wi, hi, 1, wi);
        sys::TessBaseAPISetSourceResolution(self.api, dpi as i32);
        Ok(())
    }

    /// Recognises the image set on the engine (or its rectangle), giving up after
    /// `deadline`, and returns tesseract's TSV.
    ///
    /// SAFETY: call only while an image is set on the engine.
    unsafe fn recognize_set(&mut self, deadline: Duration) -> Result<String, OcrError> {
        let monitor = sys::TessMonitorCreate();
        sys::TessMonitorSetDeadlineMSecs(monitor, i32::try_from(deadline.as_millis()).unwrap_or(i32::MAX));
        let started = std::time::Instant::now();
        let rc = sys::TessBaseAPIRecognize(self.api, monitor);
        sys::TessMonitorDelete(monitor);
        if rc != 0 {
            // The C API cannot ask the monitor why recognition stopped: the clock can.
            return Err(if started.elapsed() >= deadline {
                OcrError::Deadline { secs: deadline.as_secs() }
            } else {
                OcrError::Recognize
            });
        }
        let tsv_ptr = sys::TessBaseAPIGetTsvText(self.api, 0);
        if tsv_ptr.is_null() {
            return Ok(String::new());
        }
        let tsv = CStr::from_ptr(tsv_ptr).to_string_lossy().into_owned();
        sys::TessDeleteText(tsv_ptr);
        Ok(tsv)
    }

    /// Reads the doubtful lines of `raw`, the reading of `img`, again (see
    /// `reread_lines`), within `deadline`. Called once a page's orientation is chosen,
    /// so that the turns tried and rejected cost no second readings.
    pub fn reread(&mut self, img: &GrayImage, dpi: u32, raw: &mut RawOcr, deadline: Duration) {
        if self.reread_below <= 0.0 {
            return;
        }
        let lines = raw.doubtful_lines(self.reread_below);
        if lines.is_empty() {
            return;
        }
        // SAFETY: the image stays set for the second readings and is cleared after them.
        unsafe {
            if self.set_image(img, dpi).is_ok() {
                self.reread_lines(raw, &lines, (img.width(), img.height()), deadline);
            }
            sys::TessBaseAPIClear(self.api);
        }
    }

    /// Reads each of `lines` of the page again on its own, in single-line mode, and keeps the
    /// second reading when it is clearly more confident (by `REREAD_MARGIN`). On its own
    /// rectangle the line is binarised with a threshold of its own rather than the page's,
    /// and no specks or neighbouring lines are joined to it; the model then often reads the
    /// characters it doubted (measured on the samples: CER 1.56 % -> 1.38 %, worst page
    /// 4.19 % -> 2.81 %). Stops when `left` runs out.
    ///
    /// SAFETY: call only while the page's image is set on the engine.
    unsafe fn reread_lines(&mut self, raw: &mut RawOcr, lines: &[usize], (w, h): (u32, u32), mut left: Duration) {
        /// How much more confident the second reading must be to replace the first: a
        /// reading barely more confident is as often worse (measured: margin 0 gave 1.42 %).
        const REREAD_MARGIN: f32 = 0.05;
        let saved_psm = sys::TessBaseAPIGetPageSegMode(self.api);
        sys::TessBaseAPISetPageSegMode(self.api, sys::TessPageSegMode_PSM_SINGLE_LINE);
        let mut replaced = false;
        for &line in lines {
            let started = std::time::Instant::now();
            if left.is_zero() {
                break;
            }
            let b = raw.lines[line].bbox;
            // The line with a margin of half its height around it, inside the page.
            let pad = b.h / 2;
            let (x0, y0) = (b.x.saturating_sub(pad), b.y.saturating_sub(pad));
            let (x1, y1) = ((b.x + b.w + pad).min(w), (b.y + b.h + pad).min(h));
            if x1 <= x0 || y1 <= y0 {
                continue;
            }
            sys::TessBaseAPISetRectangle(self.api, x0 as i32, y0 as i32, (x1 - x0) as i32, (y1 - y0) as i32);
            let read = self.recognize_set(left);
            left = left.saturating_sub(started.elapsed());
            let Ok(tsv) = read else {
                continue;
            };
            let alt = parse_tsv(&tsv, self.drop_junk_below);
            let old = raw.words.iter().filter(|w| w.line as usize == line);
            if RawOcr::line_confidence(&alt.words) > RawOcr::line_confidence(old) + REREAD_MARGIN {
                raw.replace_line(line, alt);
                replaced = true;
            }
        }
        sys::TessBaseAPISetPageSegMode(self.api, saved_psm);
        if replaced {
            raw.rebuild_text();
        }
    }
}

impl Engine {
    /// Reads lines of `raw` (the reading of `img`) with the second engine, as its policy
    /// says, and keeps its reading of a line when it is confident enough. Returns the lines
    /// read and the lines taken. A line the second engine fails on keeps tesseract's reading;
    /// once `deadline` has passed, the lines not yet read keep theirs too.
    pub fn second_reading(&mut self, img: &GrayImage, raw: &mut RawOcr, deadline: Duration) -> (u32, u32) {
        let Some((reader, policy)) = self.second.as_mut() else { return (0, 0) };
        let started = std::time::Instant::now();
        let (mut read, mut taken) = (0u32, 0u32);
        for line in 0..raw.lines.len() {
            if started.elapsed() >= deadline {
                tracing::warn!(
                    lines_left = raw.lines.len() - line,
                    "the page's OCR deadline passed; the second engine stopped"
                );
                break;
            }
            let words = raw.words.iter().filter(|w| w.line as usize == line);
            if words.clone().next().is_none() {
                continue;
            }
            if policy.first_below < 1.0 && RawOcr::line_confidence(words) >= policy.first_below {
                continue;
            }
            let chars = match reader.read_line(img, raw.lines[line].bbox) {
                Ok(Some(chars)) if !chars.is_empty() => chars,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(line, error = %e, "second engine failed on a line");
                    continue;
                }
            };
            read += 1;
            let conf = chars.iter().map(|c| c.conf).sum::<f32>() / chars.len() as f32;
            let count = |t: &str| t.chars().filter(|c| !c.is_whitespace()).count();
            let second_chars: usize = chars.iter().map(|c| count(&c.text)).sum();
            // The model drops characters it is sure of the rest around (一 二 工 日 月 大 金 on
            // a blurred 400-dpi page, the line otherwise right at 0.98): a reading with fewer
            // characters than tesseract segmented is not taken.
            let dropped = count(&raw.line_texts[line]).saturating_sub(second_chars);
            let keep_all = policy.min_conf <= 0.0;
            if keep_all || (conf >= policy.min_conf && dropped <= MAX_DROPPED_CHARS) {
                raw.replace_line_chars(line, chars, self.drop_junk_below);
                taken += 1;
            }
        }
        if taken > 0 {
            raw.rebuild_text();
        }
        (read, taken)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the handle was created by TessBaseAPICreate and is dropped once.
        unsafe {
            sys::TessBaseAPIEnd(self.api);
            sys::TessBaseAPIDelete(self.api);
        }
    }
}

/// Parses tesseract's TSV output into words, lines and text (one output line per text line,
/// a blank line between blocks), cleaning each line as it goes (see `clean_line`).
/// Words with no Han character, digit or Latin letter (lone punctuation and symbols) read
/// below `drop_junk_below` confidence are dropped: on scans they are specks, stroke
/// fragments and noise that tesseract read as `。”*`.
pub fn parse_tsv(tsv: &str, drop_junk_below: f32) -> RawOcr {
    let mut out = RawOcr::default();
    let mut current_line: Option<(u32, u32, u32)> = None;
    let mut current_block: Option<u32> = None;
    let mut line_words: Vec<WordBox> = Vec::new();
    for row in tsv.lines() {
        let f: Vec<&str> = row.split('\t').collect();
        if f.len() < 12 {
            continue;
        }
        let num = |i: usize| f[i].trim().parse::<i64>().unwrap_or(-1);
        let (level, block, par, line) = (num(0), num(2) as u32, num(3) as u32, num(4) as u32);
        let bbox = BoundingBox {
            x: num(6).max(0) as u32,
            y: num(7).max(0) as u32,
            w: num(8).max(0) as u32,
            h: num(9).max(0) as u32,
        };
        match level {
            4 => {
                flush_line(&mut out, &mut line_words, drop_junk_below);
                out.new_block.push(current_block.is_some_and(|b| b != block));
                out.line_texts.push(String::new());
                current_block = Some(block);
                current_line = Some((block, par, line));
                out.lines.push(LineBox { bbox });
            }
            5 => {
                let text = f[11..].join("\t");
                let text = text.trim();
                if text.is_empty() || current_line != Some((block, par, line)) {
                    continue;
                }
                let conf = f[10].trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 100.0) / 100.0;
                if conf < drop_junk_below && is_junk(text) {
                    continue;
                }
                let line = out.lines.len().saturating_sub(1) as u32;
                line_words.push(WordBox { text: text.to_string(), conf, bbox, line });
            }
            _ => {}
        }
    }
    flush_line(&mut out, &mut line_words, drop_junk_below);
    out.rebuild_text();
    out
}

/// Cleans the words of one line and appends them, and the line's text, to `out`.
fn flush_line(out: &mut RawOcr, words: &mut Vec<WordBox>, drop_junk_below: f32) {
    clean_line(words, drop_junk_below);
    if let Some(text) = out.line_texts.last_mut() {
        *text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ").trim().to_string();
    }
    out.words.append(words);
}

/// What scans put into a line that the letter never had, taken out of the line's words:
/// - a doubtful lone character (below `drop_junk_below`) at either end of the line, standing
///   apart from the rest of it by more than 1.5 times the line's height: a speck in the margin
///   that tesseract joined to the line (Chinese text runs on without gaps; a title standing
///   alone is a word of its own line, and a short last line has no gap before its end);
/// - 避头尾: a closing mark at the start of the line and an opening mark at its end (Chinese
///   typesetting never puts them there; on a scan they are specks);
/// - brackets the model confuses: a 〈 never closed on its line is （, a 〉 never opened is ）,
///   and a four-digit year between any brackets before 号 is a document number 〔2023〕27号.
fn clean_line(words: &mut Vec<WordBox>, drop_junk_below: f32) {
    // The median word height is the line's character size (a speck or a wrong box can make
    // one word much taller).
    let mut heights: Vec<u32> = words.iter().map(|w| w.bbox.h).collect();
    heights.sort_unstable();
    let height = heights.get(heights.len() / 2).copied().unwrap_or(0);
    let stray = |w: &WordBox, gap: i64| {
        w.conf < drop_junk_below && w.text.chars().count() == 1 && 2 * gap > 3 * i64::from(height)
    };
    let gap = |a: &WordBox, b: &WordBox| i64::from(b.bbox.x) - i64::from(a.bbox.x + a.bbox.w);
    if words.len() >= 2 && stray(&words[0], gap(&words[0], &words[1])) {
        words.remove(0);
    }
    let n = words.len();
    if n >= 2 && stray(&words[n - 1], gap(&words[n - 2], &words[n - 1])) {
        words.pop();
    }
    while let Some(first) = words.first_mut() {
        first.text = first.text.trim_start_matches(|c| CLOSING.contains(&c)).to_string();
        if !first.text.is_empty() {
            break;
        }
        words.remove(0);
    }
    while let Some(last) = words.last_mut() {
        last.text = last.text.trim_end_matches(|c| OPENING.contains(&c)).to_string();
        if !last.text.is_empty() {
            break;
        }
        words.pop();
    }
    fix_brackets(words);
}

/// The bracket confusions of `clean_line`, rewritten inside the words (one character for
/// one, so the boxes stay right).
fn fix_brackets(words: &mut [WordBox]) {
    let mut chars: Vec<char> = words.iter().flat_map(|w| w.text.chars()).collect();
    // Whether the next angle bracket in that direction is the partner of the one at `i`.
    let closed = |chars: &[char], i: usize| chars[i + 1..].iter().find(|c| matches!(c, '〈' | '〉')) == Some(&'〉');
    let opened = |chars: &[char], i: usize| chars[..i].iter().rev().find(|c| matches!(c, '〈' | '〉')) == Some(&'〈');
    for i in 0..chars.len() {
        match chars[i] {
            '〈' if !closed(&chars, i) => chars[i] = '（',
            '〉' if !opened(&chars, i) => chars[i] = '）',
            _ => {}
        }
    }
    // A document number: 〔2023〕27号, read as 【2023]27号, (2023)27号, [2023]27 号 ...
    let open = |c: char| matches!(c, '〔' | '【' | '[' | '(' | '（' | '〈' | '{');
    let close = |c: char| matches!(c, '〕' | '】' | ']' | ')' | '）' | '〉' | '}');
    let digits = |s: &[char]| s.iter().all(|c| c.is_ascii_digit());
    for i in 0..chars.len().saturating_sub(6) {
        let rest = &chars[i + 6..];
        let number = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if open(chars[i])
            && digits(&chars[i + 1..i + 5])
            && close(chars[i + 5])
            && number > 0
            && rest.get(number) == Some(&'号')
        {
            chars[i] = '〔';
            chars[i + 5] = '〕';
        }
    }
    let mut it = chars.into_iter();
    for w in words.iter_mut() {
        w.text = it.by_ref().take(w.text.chars().count()).collect();
    }
}

/// Marks that Chinese typesetting never puts at the start of a line (避头点).
const CLOSING: &[char] = &['，', '。', '、', '：', '；', '！', '？', '”', '’', '）', '》', '」', '』', '】', '〕'];
/// Marks never put at the end of a line (避尾点).
const OPENING: &[char] = &['“', '‘', '（', '《', '「', '『', '【', '〔'];

/// A word made only of punctuation and symbols.
fn is_junk(word: &str) -> bool {
    !word.chars().any(|c| super::normalize::is_han(c) || c.is_alphanumeric())
}

/// Settings `read_page` needs, taken from `[ocr]` and `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct PageSettings {
    pub preprocess: PreprocessConfig,
    pub low_confidence: f32,
    pub orientation_retry_below: f32,
    pub deadline: Duration,
}

impl PageSettings {
    pub fn new(ocr: &OcrConfig, limits: &Limits) -> PageSettings {
        PageSettings {
            preprocess: PreprocessConfig {
                min_skew_deg: ocr.min_skew_deg,
                max_skew_deg: ocr.max_skew_deg,
                median: ocr.median_filter,
                median_min_score: ocr.median_min_score,
            },
            low_confidence: ocr.low_confidence,
            orientation_retry_below: ocr.orientation_retry_below,
            deadline: Duration::from_secs(limits.page_ocr_timeout_secs),
        }
    }
}

/// The version of what reads scans, recorded with every OCR run: the tesseract library,
/// the language model, this program's version and a digest of the OCR settings that change
/// what is read (preprocessing, thresholds, tesseract variables).
pub fn engine_version(cfg: &OcrConfig) -> String {
    // Bumped whenever the code changes what a page reads as, so `reprocess --ocr` sees the
    // earlier runs as another engine: 2 = marks that cannot begin or end a line dropped.
    // 3 = doubtful lines read again on their own, stray margin specks and bracket confusions.
    // 4 = cleaning the page has to earn (median, specks), columns and tables found, colour
    // furniture removed.
    // 5 = the second engine (PP-OCRv5 recognition) on tesseract's lines.
    const READING_REVISION: u32 = 5;
    let tess = tesseract::plumbing::version().to_string_lossy().into_owned();
    let settings = format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{:?}|{}|{}|{}",
        cfg.language,
        cfg.low_confidence,
        cfg.min_skew_deg,
        cfg.max_skew_deg,
        cfg.median_filter,
        cfg.median_min_score,
        cfg.orientation_retry_below,
        cfg.drop_junk_below,
        cfg.reread_below,
        cfg.tesseract_variables,
        cfg.second_engine,
        cfg.second_engine_first_below,
        cfg.second_engine_min_conf
    );
    let digest = crate::digest::sha256(settings.as_bytes());
    let second = if cfg.second_engine { " + PP-OCRv5 mobile rec" } else { "" };
    format!(
        "tesseract {tess} {}{second} / xinfang {} r{READING_REVISION} / settings {}",
        cfg.language,
        env!("CARGO_PKG_VERSION"),
        &digest.as_str()[..8]
    )
}

/// How a page was read: what preprocessing measured and did, and where the time went
/// (wall-clock on the engine's own thread, which is its CPU time: one engine per core,
/// tesseract single-threaded). Times add up over regions; measures are the last region's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PageTrace {
    /// What the page was measured to be like.
    pub measures: super::preprocess::Measures,
    /// The median was applied; the light was evened out; specks painted over.
    pub median: bool,
    pub light_corrected: bool,
    pub specks: usize,
    /// Preprocessing (analysis, cleaning, turning, deskewing).
    pub prepare: Duration,
    /// Whole-page recognitions, every orientation tried.
    pub recognize: Duration,
    /// Whole-page recognitions made (1 per region, 2 when the other orientation was tried).
    pub readings: u32,
    /// Second readings of doubtful lines.
    pub reread: Duration,
    /// The second engine: its time, the lines it read and the lines whose reading was kept.
    pub second: Duration,
    pub second_lines: u32,
    pub second_taken: u32,
    /// Normalisation and flags.
    pub finish: Duration,
}

impl PageTrace {
    pub fn total(&self) -> Duration {
        self.prepare + self.recognize + self.reread + self.second + self.finish
    }

    /// Adds another page's timings (for sums over a page set).
    pub fn add_times(&mut self, o: &PageTrace) {
        self.prepare += o.prepare;
        self.recognize += o.recognize;
        self.readings += o.readings;
        self.reread += o.reread;
        self.second += o.second;
        self.second_lines += o.second_lines;
        self.second_taken += o.second_taken;
        self.finish += o.finish;
    }
}

/// Reads one page: preprocess, recognise (in another orientation too when it reads badly),
/// normalise, flag; and says where its time went. `regions` are the images of the page
/// (usually one).
pub fn read_page(
    engine: &mut Engine,
    page_no: u32,
    regions: Vec<GrayImage>,
    s: &PageSettings,
) -> Result<(PageText, PageTrace), OcrError> {
    let mut t = PageTrace::default();
    let mut page = PageText::from_text(page_no, PageOrigin::Ocr, String::new());
    let mut texts = Vec::new();
    let mut conf_sum = 0.0f32;
    let mut conf_weight = 0.0f32;
    for region in regions {
        let started = std::time::Instant::now();
        let prepared = prepare(region, &s.preprocess);
        let prepare_time = started.elapsed();
        t.prepare += prepare_time;
        (t.measures, t.median, t.light_corrected) = (prepared.measures, prepared.median, prepared.light_corrected);
        t.specks += prepared.specks;
        let prepare_ms = prepare_time.as_millis() as u64;
        if prepared.blank {
            continue;
        }
        let dpi = infer_dpi(&prepared.image);
        tracing::debug!(
            page_no,
            dpi,
            sideways = prepared.sideways,
            skew = prepared.skew_deg,
            light = prepared.light_corrected,
            specks = prepared.specks,
            stroke_px = prepared.measures.stroke_px,
            grain = prepared.measures.grain,
            columns = prepared.measures.columns,
            ruled = prepared.measures.ruled,
            median = prepared.median,
            prepare_ms,
            "preprocessed"
        );
        let layout = if prepared.measures.needs_layout() { Layout::Blocks } else { Layout::OneBlock };
        // The best reading so far, with its turn and the image it was read from.
        let mut best: Option<(u16, RawOcr, Cow<GrayImage>)> = None;
        for turn in [0u16, 180] {
            let img = if turn == 180 {
                Cow::Owned(image::imageops::rotate180(&prepared.image))
            } else {
                Cow::Borrowed(&prepared.image)
            };
            let read_started = std::time::Instant::now();
            let raw = engine.recognize(&img, dpi, layout, s.deadline)?;
            t.recognize += read_started.elapsed();
            t.readings += 1;
            tracing::debug!(
                page_no,
                turn,
                confidence = raw.confidence,
                recognize_ms = read_started.elapsed().as_millis() as u64,
                "recognised"
            );
            let better = best.as_ref().is_none_or(|(_, b, _)| raw.confidence > b.confidence);
            let good_enough = raw.confidence >= s.orientation_retry_below;
            if better {
                best = Some((turn, raw, img));
            }
            // A page that reads well in its first orientation is not tried in the other
            // (it would double the CPU).
            if good_enough {
                break;
            }
        }
        if let Some((turn, mut raw, img)) = best {
            let reread_started = std::time::Instant::now();
            engine.reread(&img, dpi, &mut raw, s.deadline.saturating_sub(started.elapsed()));
            t.reread += reread_started.elapsed();
            let second_started = std::time::Instant::now();
            let (read, taken) = engine.second_reading(&img, &mut raw, s.deadline.saturating_sub(started.elapsed()));
            (t.second_lines, t.second_taken) = (t.second_lines + read, t.second_taken + taken);
            t.second += second_started.elapsed();
            let chars = raw.text.chars().filter(|c| !c.is_whitespace()).count() as f32;
            conf_sum += raw.confidence * chars;
            conf_weight += chars;
            page.rotation = (turn + if prepared.sideways { 90 } else { 0 }) % 360;
            page.skew_deg = prepared.skew_deg;
            let base = page.lines.len() as u32;
            page.lines.extend(raw.lines);
            page.words.extend(raw.words.into_iter().map(|mut w| {
                w.line += base;
                w
            }));
            texts.push(raw.text);
        }
    }
    let finish_started = std::time::Instant::now();
    page.text = normalize(&texts.join("\n"));
    let confidence = if conf_weight > 0.0 { conf_sum / conf_weight } else { 0.0 };
    page.confidence = Some(confidence);
    page.flags = if page.text.trim().is_empty() {
        vec![PageFlag::Blank]
    } else if confidence < s.low_confidence {
        vec![PageFlag::LowConfidence]
    } else {
        Vec::new()
    };
    t.finish = finish_started.elapsed();
    tracing::debug!(
        page_no,
        prepare_ms = t.prepare.as_millis() as u64,
        recognize_ms = t.recognize.as_millis() as u64,
        readings = t.readings,
        reread_ms = t.reread.as_millis() as u64,
        second_ms = t.second.as_millis() as u64,
        second_lines = t.second_lines,
        second_taken = t.second_taken,
        finish_ms = t.finish.as_millis() as u64,
        "page read"
    );
    Ok((page, t))
}

struct Job {
    page_no: u32,
    regions: Vec<GrayImage>,
    reply: oneshot::Sender<Result<(PageText, PageTrace), OcrError>>,
}

/// What a worker is told: read a page, or stop.
enum Message {
    Page(Job),
    Stop,
}

/// A fixed set of OCR worker threads, each owning one engine, fed through a bounded queue.
/// Cloning the pool shares the same workers.
#[derive(Clone)]
pub struct OcrPool {
    tx: mpsc::Sender<Message>,
    workers: usize,
    handles: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl OcrPool {
    /// Starts `workers` engines; fails if any engine cannot start (e.g. missing language data).
    pub fn start(cfg: &OcrConfig, limits: &Limits, workers: usize) -> Result<OcrPool, OcrError> {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel::<Message>(workers * 2);
        let rx = Arc::new(Mutex::new(rx));
        let settings = PageSettings::new(cfg, limits);
        let mut ready = Vec::new();
        let mut handles = Vec::new();
        for i in 0..workers {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let rx = Arc::clone(&rx);
            let cfg = cfg.clone();
            let spawned = std::thread::Builder::new().name(format!("ocr-{i}")).spawn(move || {
                let mut engine = match Engine::new(&cfg) {
                    Ok(e) => {
                        let _ = ready_tx.send(Ok(()));
                        e
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    let job = {
                        let mut guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                        guard.blocking_recv()
                    };
                    let Some(Message::Page(job)) = job else { break };
                    // A bug on one page fails that page, never the worker: the engine itself is
                    // untouched by a Rust panic in preprocessing or parsing.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        read_page(&mut engine, job.page_no, job.regions, &settings)
                    }))
                    .unwrap_or(Err(OcrError::Crashed));
                    let _ = job.reply.send(result);
                }
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(_) => return Err(OcrError::PoolClosed),
            }
            ready.push(ready_rx);
        }
        for r in ready {
            r.recv().map_err(|_| OcrError::PoolClosed)??;
        }
        Ok(OcrPool { tx, workers, handles: Arc::new(Mutex::new(handles)) })
    }

    /// Stops every worker once the pages already queued are read, and waits for them, so
    /// that the engines are released before the process exits.
    pub async fn shutdown(&self) {
        for _ in 0..self.workers {
            if self.tx.send(Message::Stop).await.is_err() {
                break;
            }
        }
        let handles: Vec<_> = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for h in handles {
                let _ = h.join();
            }
        })
        .await;
    }

    /// Number of engines.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Queues a page and waits for its text. Waits for queue space when all engines are busy.
    pub async fn read(&self, page_no: u32, regions: Vec<GrayImage>) -> Result<PageText, OcrError> {
        self.read_timed(page_no, regions).await.map(|(page, _)| page)
    }

    /// `read`, with where the page's time went (for the OCR benchmark).
    pub async fn read_timed(&self, page_no: u32, regions: Vec<GrayImage>) -> Result<(PageText, PageTrace), OcrError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Message::Page(Job { page_no, regions, reply })).await.map_err(|_| OcrError::PoolClosed)?;
        rx.await.map_err(|_| OcrError::PoolClosed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_becomes_lines_words_and_boxes() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
1\t1\t0\t0\t0\t0\t0\t0\t2480\t3508\t-1\t\n\
4\t1\t1\t1\t1\t0\t200\t300\t800\t60\t-1\t\n\
5\t1\t1\t1\t1\t1\t200\t300\t120\t60\t91.5\t关于\n\
5\t1\t1\t1\t1\t2\t330\t300\t200\t60\t88.0\t反映 问题\n\
4\t1\t2\t1\t1\t0\t200\t500\t600\t60\t-1\t\n\
5\t1\t2\t1\t1\t1\t200\t500\t300\t60\t70.0\t举报人\n\
5\t1\t2\t1\t1\t2\t505\t500\t30\t60\t21.0\t。”\n\
5\t1\t2\t1\t1\t3\t540\t500\t30\t60\t22.0\t8\n";
        let raw = parse_tsv(tsv, 0.5);
        // The low-confidence lone punctuation is dropped; the low-confidence digit is kept.
        assert_eq!(raw.text, "关于 反映 问题\n\n举报人 8\n");
        assert_eq!(raw.lines.len(), 2);
        assert_eq!(raw.words.len(), 4);
        assert_eq!(raw.words[2].line, 1);
        assert!((raw.words[0].conf - 0.915).abs() < 1e-6);
        assert_eq!(raw.words[1].bbox, BoundingBox { x: 330, y: 300, w: 200, h: 60 });
    }

    #[test]
    fn specks_read_as_marks_that_cannot_begin_or_end_a_line_are_dropped() {
        let tsv = "4\t1\t1\t1\t1\t0\t200\t300\t800\t60\t-1\t\n\
5\t1\t1\t1\t1\t1\t190\t300\t10\t60\t93.0\t”\n\
5\t1\t1\t1\t1\t2\t200\t300\t300\t60\t90.0\t人每月收费800元。\n\
5\t1\t1\t1\t1\t3\t500\t300\t300\t60\t90.0\t他说“\n\
4\t1\t1\t1\t2\t0\t200\t400\t800\t60\t-1\t\n\
5\t1\t1\t1\t2\t1\t200\t400\t300\t60\t90.0\t”孩子们说“成绩跟不上”，\n";
        let raw = parse_tsv(tsv, 0.5);
        // A closing mark opening a line and an opening mark ending one are specks; marks
        // inside a line, and a closing mark ending one, stay.
        assert_eq!(raw.text, "人每月收费800元。 他说\n孩子们说“成绩跟不上”，\n");
        let words: Vec<&str> = raw.words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(words, ["人每月收费800元。", "他说", "孩子们说“成绩跟不上”，"]);
    }

    #[test]
    fn a_doubtful_lone_character_standing_apart_at_a_line_end_is_a_speck() {
        // Characters 55 px high; a speck in the left margin 160 px before the text, read as
        // 和 at 0.34, and one after the end of the line read as 四 at 0.06.
        let tsv = "4\t1\t1\t1\t1\t0\t36\t640\t1500\t86\t-1\t\n\
5\t1\t1\t1\t1\t1\t36\t644\t45\t85\t34.0\t和\n\
5\t1\t1\t1\t1\t2\t243\t663\t60\t55\t90.0\t利\n\
5\t1\t1\t1\t1\t3\t303\t663\t60\t55\t20.0\t请\n\
5\t1\t1\t1\t1\t4\t363\t663\t120\t55\t90.0\t调查\n\
5\t1\t1\t1\t1\t5\t700\t648\t60\t55\t6.0\t四\n\
4\t1\t2\t1\t1\t0\t1100\t800\t300\t60\t-1\t\n\
5\t1\t2\t1\t1\t1\t1100\t800\t120\t60\t37.0\t举报\n\
5\t1\t2\t1\t1\t2\t1400\t800\t60\t60\t95.0\t人\n";
        let raw = parse_tsv(tsv, 0.5);
        // A doubtful character inside the line stays, and so does a word of two characters
        // standing apart (a centred title).
        assert_eq!(raw.text, "利 请 调查\n\n举报 人\n");
        assert_eq!(raw.words.len(), 5);
    }

    #[test]
    fn brackets_the_model_confuses_are_read_as_the_letter_wrote_them() {
        let tsv = "4\t1\t1\t1\t1\t0\t200\t300\t800\t60\t-1\t\n\
5\t1\t1\t1\t1\t1\t200\t300\t300\t60\t90.0\t陈立新〈党员）、冯大山〈村民代表\n\
5\t1\t1\t1\t1\t2\t500\t300\t100\t60\t90.0\t【2023]\n\
5\t1\t1\t1\t1\t3\t600\t300\t100\t60\t90.0\t27号，《〈红楼梦〉研究》\n";
        let raw = parse_tsv(tsv, 0.5);
        assert_eq!(raw.text, "陈立新（党员）、冯大山（村民代表 〔2023〕 27号，《〈红楼梦〉研究》\n");
        // One character for one: the words keep their boxes.
        assert_eq!(raw.words[1].text, "〔2023〕");
    }

    #[test]
    fn a_second_reading_replaces_only_its_own_line() {
        let tsv = "4\t1\t1\t1\t1\t0\t200\t300\t800\t60\t-1\t\n\
5\t1\t1\t1\t1\t1\t200\t300\t120\t60\t95.0\t关于\n\
4\t1\t1\t1\t2\t0\t200\t400\t800\t60\t-1\t\n\
5\t1\t1\t1\t2\t1\t200\t400\t60\t60\t93.0\t老\n\
5\t1\t1\t1\t2\t2\t260\t400\t60\t60\t12.0\t次\n\
4\t1\t2\t1\t1\t0\t200\t600\t800\t60\t-1\t\n\
5\t1\t2\t1\t1\t1\t200\t600\t120\t60\t91.0\t此致\n";
        let mut raw = parse_tsv(tsv, 0.5);
        assert_eq!(raw.doubtful_lines(0.5), [1]);
        let alt = parse_tsv(
            "4\t1\t1\t1\t1\t0\t200\t400\t800\t60\t-1\t\n\
5\t1\t1\t1\t1\t1\t200\t400\t120\t60\t88.0\t老伴\n",
            0.5,
        );
        assert!(RawOcr::line_confidence(&alt.words) > RawOcr::line_confidence(&raw.words[1..3]));
        raw.replace_line(1, alt);
        raw.rebuild_text();
        assert_eq!(raw.text, "关于\n老伴\n\n此致\n");
        let lines: Vec<(u32, &str)> = raw.words.iter().map(|w| (w.line, w.text.as_str())).collect();
        assert_eq!(lines, [(0, "关于"), (1, "老伴"), (2, "此致")]);
    }

    #[test]
    fn the_second_engines_characters_become_words_as_tesseracts_are() {
        let tsv = "4\t1\t1\t1\t1\t0\t200\t300\t800\t60\t-1\t\n\
5\t1\t1\t1\t1\t1\t200\t300\t120\t60\t95.0\t关于\n\
4\t1\t1\t1\t2\t0\t200\t400\t800\t60\t-1\t\n\
5\t1\t1\t1\t2\t1\t200\t400\t60\t60\t40.0\t电诂\n";
        let mut raw = parse_tsv(tsv, 0.5);
        let at = |text: &str, x: u32, conf: f32| ReadChar {
            text: text.into(),
            conf,
            bbox: BoundingBox { x, y: 400, w: 20, h: 60 },
        };
        // 电话 1 3 9 a b: each Chinese character its own word, the digits one word, a space
        // ending a word; a closing mark cannot begin the line.
        let chars = vec![
            at("，", 180, 0.9),
            at("电", 200, 0.99),
            at("话", 220, 0.98),
            at("1", 240, 0.97),
            at("3", 260, 0.6),
            at("9", 280, 0.95),
            at(" ", 300, 0.9),
            at("a", 320, 0.9),
        ];
        raw.replace_line_chars(1, chars, 0.5);
        raw.rebuild_text();
        let words: Vec<(u32, &str, u32)> = raw.words.iter().map(|w| (w.line, w.text.as_str(), w.bbox.w)).collect();
        assert_eq!(words, [(0, "关于", 120), (1, "电", 20), (1, "话", 20), (1, "139", 60), (1, "a", 20)]);
        assert!((raw.words[3].conf - 0.6).abs() < 1e-6, "a word is as sure as its least sure character");
        assert_eq!(normalize(&raw.text), "关于\n电话139 a");
    }
}

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
use super::preprocess::{infer_dpi, prepare, PreprocessConfig};
use crate::config::{Limits, OcrConfig};
use image::GrayImage;
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
}

impl OcrError {
    /// The engines cannot work at all (a problem of the machine, not of the page).
    pub fn is_system(&self) -> bool {
        matches!(self, OcrError::Init { .. } | OcrError::Variable { .. } | OcrError::PoolClosed)
    }
}

/// One tesseract engine. Not shared between threads; moved into its worker.
pub struct Engine {
    api: *mut sys::TessBaseAPI,
    drop_junk_below: f32,
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
            let engine = Engine { api, drop_junk_below: cfg.drop_junk_below };
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
            Ok(engine)
        }
    }

    /// Recognises one gray page at `dpi`, giving up after `deadline`.
    pub fn recognize(&mut self, img: &GrayImage, dpi: u32, deadline: Duration) -> Result<RawOcr, OcrError> {
        let (w, h) = (img.width(), img.height());
        let (Ok(wi), Ok(hi)) = (i32::try_from(w), i32::try_from(h)) else {
            return Err(OcrError::TooLarge { width: w, height: h });
        };
        let ms = i32::try_from(deadline.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the image buffer is w*h bytes and outlives recognition (tesseract copies it
        // into its own Pix in SetImage); the monitor is deleted on every path.
        unsafe {
            sys::TessBaseAPISetImage(self.api, img.as_raw().as_ptr(), wi, hi, 1, wi);
            sys::TessBaseAPISetSourceResolution(self.api, dpi as i32);
            let monitor = sys::TessMonitorCreate();
            sys::TessMonitorSetDeadlineMSecs(monitor, ms);
            let started = std::time::Instant::now();
            let rc = sys::TessBaseAPIRecognize(self.api, monitor);
            sys::TessMonitorDelete(monitor);
            if rc != 0 {
                sys::TessBaseAPIClear(self.api);
                // The C API cannot ask the monitor why recognition stopped: the clock can.
                return Err(if started.elapsed() >= deadline {
                    OcrError::Deadline { secs: deadline.as_secs() }
                } else {
                    OcrError::Recognize
                });
            }
            let tsv_ptr = sys::TessBaseAPIGetTsvText(self.api, 0);
            let tsv =
                if tsv_ptr.is_null() { String::new() } else { CStr::from_ptr(tsv_ptr).to_string_lossy().into_owned() };
            if !tsv_ptr.is_null() {
                sys::TessDeleteText(tsv_ptr);
            }
            let conf = sys::TessBaseAPIMeanTextConf(self.api);
            sys::TessBaseAPIClear(self.api);
            let mut raw = parse_tsv(&tsv, self.drop_junk_below);
            raw.confidence = (conf.clamp(0, 100) as f32) / 100.0;
            Ok(raw)
        }
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
/// a blank line between blocks).
/// Words with no Han character, digit or Latin letter (lone punctuation and symbols) read
/// below `drop_junk_below` confidence are dropped: on scans they are specks, stroke
/// fragments and noise that tesseract read as `。”*`.
pub fn parse_tsv(tsv: &str, drop_junk_below: f32) -> RawOcr {
    let mut out = RawOcr::default();
    let mut current_line: Option<(u32, u32, u32)> = None;
    let mut current_block: Option<u32> = None;
    let mut line_text = String::new();
    let flush = |out: &mut RawOcr, line_text: &mut String| {
        // 避尾: an opening mark never ends a line of Chinese text; there it is a speck.
        let kept = line_text.trim_end().trim_end_matches(|c| OPENING.contains(&c)).len();
        if kept < line_text.len() && !line_text[..kept].trim().is_empty() {
            line_text.truncate(kept);
            if let Some(last) = out.words.last_mut() {
                let cut = last.text.trim_end_matches(|c| OPENING.contains(&c)).len();
                last.text.truncate(cut);
                if last.text.is_empty() {
                    out.words.pop();
                }
            }
        }
        if !line_text.trim().is_empty() {
            out.text.push_str(line_text.trim());
            out.text.push('\n');
        }
        line_text.clear();
    };
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
                flush(&mut out, &mut line_text);
                if current_block.is_some_and(|b| b != block) && !out.text.is_empty() {
                    out.text.push('\n');
                }
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
                // 避头: a closing mark never begins a line of Chinese text; there it is a speck.
                let text = if line_text.is_empty() { text.trim_start_matches(|c| CLOSING.contains(&c)) } else { text };
                if text.is_empty() {
                    continue;
                }
                if !line_text.is_empty() {
                    line_text.push(' ');
                }
                line_text.push_str(text);
                out.words.push(WordBox {
                    text: text.to_string(),
                    conf,
                    bbox,
                    line: out.lines.len().saturating_sub(1) as u32,
                });
            }
            _ => {}
        }
    }
    flush(&mut out, &mut line_text);
    out
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
    const READING_REVISION: u32 = 2;
    let tess = tesseract::plumbing::version().to_string_lossy().into_owned();
    let settings = format!(
        "{}|{}|{}|{}|{}|{}|{}|{:?}",
        cfg.language,
        cfg.low_confidence,
        cfg.min_skew_deg,
        cfg.max_skew_deg,
        cfg.median_filter,
        cfg.orientation_retry_below,
        cfg.drop_junk_below,
        cfg.tesseract_variables
    );
    let digest = crate::store::sha256(settings.as_bytes());
    format!(
        "tesseract {tess} {} / xinfang {} r{READING_REVISION} / settings {}",
        cfg.language,
        env!("CARGO_PKG_VERSION"),
        &digest.as_str()[..8]
    )
}

/// Reads one page: preprocess, recognise (in another orientation too when it reads badly),
/// normalise, flag. `regions` are the images of the page (usually one).
pub fn read_page(
    engine: &mut Engine,
    page_no: u32,
    regions: Vec<GrayImage>,
    s: &PageSettings,
) -> Result<PageText, OcrError> {
    let mut page = PageText::from_text(page_no, PageOrigin::Ocr, String::new());
    let mut texts = Vec::new();
    let mut conf_sum = 0.0f32;
    let mut conf_weight = 0.0f32;
    for region in regions {
        let started = std::time::Instant::now();
        let prepared = prepare(region, &s.preprocess);
        let prepare_ms = started.elapsed().as_millis() as u64;
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
            prepare_ms,
            "preprocessed"
        );
        let mut best: Option<(u16, RawOcr)> = None;
        for turn in [0u16, 180] {
            let flipped;
            let img = if turn == 180 {
                flipped = image::imageops::rotate180(&prepared.image);
                &flipped
            } else {
                &prepared.image
            };
            let raw = engine.recognize(img, dpi, s.deadline)?;
            tracing::debug!(page_no, turn, confidence = raw.confidence, "recognised");
            let better = best.as_ref().is_none_or(|(_, b)| raw.confidence > b.confidence);
            let good_enough = raw.confidence >= s.orientation_retry_below;
            if better {
                best = Some((turn, raw));
            }
            // A page that reads well in its first orientation is not tried in the other
            // (it would double the CPU).
            if good_enough {
                break;
            }
        }
        if let Some((turn, raw)) = best {
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
    Ok(page)
}

struct Job {
    page_no: u32,
    regions: Vec<GrayImage>,
    reply: oneshot::Sender<Result<PageText, OcrError>>,
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
5\t1\t2\t1\t1\t2\t600\t500\t30\t60\t21.0\t。”\n\
5\t1\t2\t1\t1\t3\t700\t500\t30\t60\t22.0\t8\n";
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
}

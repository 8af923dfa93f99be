//! The second OCR engine: PaddleOCR's PP-OCRv5 mobile recognition model (ONNX), run through
//! ONNX Runtime (`ort`, the runtime library loaded at start from the file the set-up took
//! from the `onnxruntime` PyPI wheel), one single-threaded session per OCR worker.
//!
//! It reads *lines*: the lines tesseract found on the page (in its layout, columns and
//! reading order, on the turned and deskewed image), one crop at a time. It has no
//! detection stage of its own, so the page's layout, orientation and reading order stay
//! those the first engine chose.
//!
//! The model's output is decoded here (greedy CTC) with the dictionary mapping owned and
//! checked here: class 0 is the CTC blank, class `i` in `1..=n` is line `i` of
//! `ppocrv5_dict.txt` taken verbatim (its first line is the ideographic space U+3000; a
//! decoder that trims lines shifts every class by one), class `n + 1` is a space. The number
//! of classes the model puts out is checked against the dictionary when the engine starts.

use image::GrayImage;
use ort::session::Session;
use ort::value::Tensor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use thiserror::Error;
use xinfang_models::BoundingBox;

/// The files of the second engine, in its directory (installed by `pipeline/scripts/setup.sh`).
pub const RUNTIME_FILE: &str = "libonnxruntime.so";
pub const MODEL_FILE: &str = "rec.onnx";
pub const DICT_FILE: &str = "ppocrv5_dict.txt";

/// The height the recognition model reads lines at (PP-OCRv5: 3 × 48 × W).
const LINE_HEIGHT: u32 = 48;
/// Lines longer than this many line heights are not given to the second engine (a line
/// box run across a whole table or two columns; the model was trained on lines of a few
/// dozen characters).
const MAX_ASPECT: u32 = 80;

/// Failures of the second engine. Missing files and a model that does not match its
/// dictionary are problems of the machine (`is_system`); a failed run is a problem of the line.
#[derive(Debug, Error)]
pub enum SecondEngineError {
    #[error("the second OCR engine's file {path} is missing; run pipeline/scripts/setup.sh (or set ocr.second_engine = false)")]
    Missing { path: PathBuf },
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    Runtime { path: PathBuf, reason: String },
    #[error("cannot load the recognition model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("the recognition model puts out {classes} classes but its dictionary {path} has {entries} entries (expected entries + 2)")]
    Mismatch { path: PathBuf, classes: i64, entries: usize },
    #[error("the recognition model failed on a line: {0}")]
    Run(String),
}

/// One character read by the second engine: its text (one dictionary entry), confidence
/// (the model's probability, 0–1) and box on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadChar {
    pub text: String,
    pub conf: f32,
    pub bbox: BoundingBox,
}

/// The second engine: a recognition session and its dictionary. Owned by one worker.
pub struct LineReader {
    session: Session,
    /// Class `i` (1-based) is `dict[i - 1]`; class `dict.len() + 1` is a space.
    dict: Vec<String>,
}

/// ONNX Runtime's process-wide environment, created once from the library file.
fn environment(lib: &Path) -> Result<&'static ort::environment::Environment, SecondEngineError> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        let builder = ort::init_from(lib).map_err(|e| e.to_string())?;
        builder.with_name("xinfang").build().map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|reason| SecondEngineError::Runtime { path: lib.to_path_buf(), reason: reason.clone() })
}

/// The directory of the second engine's files: `configured`, or when empty
/// `$XINFANG_MODELS_DIR/ppocrv5`, else `~/.local/share/xinfang/ppocrv5` (where the set-up
/// installs them).
pub fn files_dir(configured: &str) -> PathBuf {
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    if let Some(dir) = std::env::var_os("XINFANG_MODELS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ppocrv5");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/xinfang/ppocrv5")
}

impl LineReader {
    /// Loads the runtime (once per process), the model (single-threaded) and the dictionary
    /// from `dir`, and checks that they belong together.
    pub fn new(dir: &Path) -> Result<LineReader, SecondEngineError> {
        let file = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(SecondEngineError::Missing { path })
            }
        };
        let (lib, model, dict_path) = (file(RUNTIME_FILE)?, file(MODEL_FILE)?, file(DICT_FILE)?);
        let env = environment(&lib)?;
        let model_err =
            |e: &dyn std::fmt::Display| SecondEngineError::Model { path: model.clone(), reason: e.to_string() };
        // One thread, no spinning: one engine per core, as tesseract.
        let session = Session::builder(env)
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|b| b.with_intra_op_spinning(false).map_err(Into::into))
            .and_then(|mut b| b.commit_from_file(&model))
            .map_err(|e| model_err(&e))?;
        let text = std::fs::read_to_string(&dict_path)
            .map_err(|e| SecondEngineError::Model { path: dict_path.clone(), reason: e.to_string() })?;
        let dict = parse_dict(&text);
        let mut reader = LineReader { session, dict };
        // A blank line image: the output's last dimension is the number of classes.
        let classes = reader.classes(&GrayImage::from_pixel(LINE_HEIGHT * 4, LINE_HEIGHT, image::Luma([255])))?;
        if classes != reader.dict.len() as i64 + 2 {
            return Err(SecondEngineError::Mismatch { path: dict_path, classes, entries: reader.dict.len() });
        }
        Ok(reader)
    }

    fn classes(&mut self, line: &GrayImage) -> Result<i64, SecondEngineError> {
        self.run(line, |shape, _| shape.last().copied().unwrap_or(0))
    }

    /// Runs the model on a line image already `LINE_HEIGHT` high and hands the output's
    /// shape and probabilities to `use_output` (read in place: the output of a full line is
    /// T × 18,385 floats, some 18 MB).
    fn run<R>(
        &mut self,
        line: &GrayImage,
        use_output: impl FnOnce(&[i64], &[f32]) -> R,
    ) -> Result<R, SecondEngineError> {
        let (w, h) = (line.width() as usize, line.height() as usize);
        // PaddleOCR's normalisation: (p / 255 - 0.5) / 0.5, the gray value in all three channels.
        let plane: Vec<f32> = line.as_raw().iter().map(|&p| f32::from(p) / 127.5 - 1.0).collect();
        let mut data = Vec::with_capacity(plane.len() * 3);
        for _ in 0..3 {
            data.extend_from_slice(&plane);
        }
        let input = Tensor::from_array(([1usize, 3, h, w], data)).map_err(|e| SecondEngineError::Run(e.to_string()))?;
        let outputs = self.session.run(ort::inputs![input]).map_err(|e| SecondEngineError::Run(e.to_string()))?;
        let (shape, probs) =
            outputs[0].try_extract_tensor::<f32>().map_err(|e| SecondEngineError::Run(e.to_string()))?;
        Ok(use_output(shape, probs))
    }

    /// Reads the line in `bbox` of `page`: its characters with their confidences and boxes,
    /// or `None` when the box is not a line the model can read (empty, or far too long).
    pub fn read_line(
        &mut self,
        page: &GrayImage,
        bbox: BoundingBox,
    ) -> Result<Option<Vec<ReadChar>>, SecondEngineError> {
        let Some(crop) = line_crop(page, bbox) else { return Ok(None) };
        let scaled_w =
            ((u64::from(crop.w) * u64::from(LINE_HEIGHT)).div_ceil(u64::from(crop.h.max(1))) as u32).max(LINE_HEIGHT);
        if scaled_w > MAX_ASPECT * LINE_HEIGHT {
            return Ok(None);
        }
        let view = image::imageops::crop_imm(page, crop.x, crop.y, crop.w, crop.h).to_image();
        let line = image::imageops::resize(&view, scaled_w, LINE_HEIGHT, image::imageops::FilterType::Triangle);
        let (steps, decoded) = self.run(&line, |shape, probs| match *shape {
            [_, steps, classes] => Ok((steps, ctc_greedy(probs, steps as usize, classes as usize))),
            _ => Err(SecondEngineError::Run(format!("unexpected output shape {shape:?}"))),
        })??;
        // Time step t covers the columns [t, t + 1) * crop.w / steps of the crop.
        let x_of = |t: usize| crop.x + (t as u64 * u64::from(crop.w) / steps.max(1) as u64) as u32;
        let chars = decoded
            .into_iter()
            .filter_map(|d| {
                let text = self.label(d.class)?;
                let (x0, x1) = (x_of(d.first), x_of(d.last + 1).max(x_of(d.first) + 1));
                Some(ReadChar { text, conf: d.prob, bbox: BoundingBox { x: x0, y: bbox.y, w: x1 - x0, h: bbox.h } })
            })
            .collect();
        Ok(Some(chars))
    }

    /// The text of a class: a dictionary entry, or a space for the last class.
    fn label(&self, class: usize) -> Option<String> {
        match class {
            0 => None,
            c if c <= self.dict.len() => Some(self.dict[c - 1].clone()),
            c if c == self.dict.len() + 1 => Some(" ".into()),
            _ => None,
        }
    }
}

/// The dictionary: one entry per line, taken as it is (only the line ending removed).
fn parse_dict(text: &str) -> Vec<String> {
    text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()).collect()
}

/// The crop the model reads a line from: the line's box with a margin of a fifth of its
/// height above and below and a third at either end (the model was trained on detector
/// boxes, which stand a little off the ink), inside the page.
fn line_crop(page: &GrayImage, b: BoundingBox) -> Option<BoundingBox> {
    if b.w < 2 || b.h < 4 {
        return None;
    }
    let (pv, ph) = (b.h / 5, b.h / 3);
    let (x0, y0) = (b.x.saturating_sub(ph), b.y.saturating_sub(pv));
    let (x1, y1) = ((b.x + b.w + ph).min(page.width()), (b.y + b.h + pv).min(page.height()));
    (x1 > x0 + 1 && y1 > y0 + 3).then(|| BoundingBox { x: x0, y: y0, w: x1 - x0, h: y1 - y0 })
}

/// A class the CTC decoding kept: the time steps it spans and its probability (the highest
/// of its steps).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decoded {
    class: usize,
    first: usize,
    last: usize,
    prob: f32,
}

/// Greedy CTC decoding of `steps × classes` probabilities: the most probable class of each
/// step, repeats merged, blanks (class 0) dropped. A repeat after a blank is a new character.
fn ctc_greedy(probs: &[f32], steps: usize, classes: usize) -> Vec<Decoded> {
    let mut out: Vec<Decoded> = Vec::new();
    let mut prev = 0usize;
    for t in 0..steps {
        let Some(row) = probs.get(t * classes..(t + 1) * classes) else { break };
        let (class, &prob) = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((0, &0.0));
        if class != 0 {
            match out.last_mut() {
                Some(d) if class == prev => {
                    d.last = t;
                    d.prob = d.prob.max(prob);
                }
                _ => out.push(Decoded { class, first: t, last: t, prob }),
            }
        }
        prev = class;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(rows: &[&[f32]]) -> Vec<f32> {
        rows.iter().flat_map(|r| r.iter().copied()).collect()
    }

    #[test]
    fn ctc_merges_repeats_drops_blanks_and_keeps_a_doubled_character_split_by_a_blank() {
        // classes: 0 blank, 1 a, 2 b
        let p = steps(&[&[0.1, 0.8, 0.1], &[0.1, 0.6, 0.3], &[0.9, 0.05, 0.05], &[0.2, 0.7, 0.1], &[0.1, 0.1, 0.8]]);
        let d = ctc_greedy(&p, 5, 3);
        let classes: Vec<usize> = d.iter().map(|d| d.class).collect();
        assert_eq!(classes, [1, 1, 2]);
        assert_eq!((d[0].first, d[0].last), (0, 1));
        assert!((d[0].prob - 0.8).abs() < 1e-6);
    }

    #[test]
    fn the_dictionary_is_taken_verbatim_so_classes_keep_their_characters() {
        // The shipped dictionary starts with the ideographic space: trimming it would shift
        // every class by one.
        let dict = parse_dict("\u{3000}\n一\n干\r\n工\n");
        assert_eq!(dict, ["\u{3000}", "一", "干", "工"]);
    }
}

//! One page of a letter after OCR (or after reading a text layer): normalised text, mean
//! confidence, word and line boxes for the review screen, and flags for review.

use serde::{Deserialize, Serialize};

/// Where a page's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageOrigin {
    /// Recognised from pixels.
    Ocr,
    /// Read from a PDF page's own text layer (no OCR).
    TextLayer,
    /// An already-transcribed `.txt` letter (no OCR).
    Transcript,
}

impl PageOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            PageOrigin::Ocr => "ocr",
            PageOrigin::TextLayer => "text_layer",
            PageOrigin::Transcript => "transcript",
        }
    }
}

/// A pixel rectangle in the page image as OCR saw it (after orientation and deskew).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// A recognised word (for Chinese usually a run of characters) with its confidence (0–1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordBox {
    pub text: String,
    pub conf: f32,
    pub bbox: BoundingBox,
    /// Index into the page's `lines`.
    pub line: u32,
}

/// A text line's box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineBox {
    pub bbox: BoundingBox,
}

/// Why a page needs a reviewer's eye. A flag is data, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageFlag {
    /// No text found on the page (a blank back side, an empty scan).
    Blank,
    /// Mean OCR confidence below the configured threshold.
    LowConfidence,
}

impl PageFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            PageFlag::Blank => "blank",
            PageFlag::LowConfidence => "low_confidence",
        }
    }
}

/// The text of one page and what is known about how it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageText {
    /// 1-based page number within the letter.
    pub page_no: u32,
    pub origin: PageOrigin,
    /// Normalised text (see the normalise stage).
    pub text: String,
    /// Mean word confidence in 0–1; `None` when no OCR ran.
    pub confidence: Option<f32>,
    /// Rotation applied before OCR, clockwise degrees (0, 90, 180, 270).
    pub rotation: u16,
    /// Skew corrected before OCR, degrees (0 when the page was left as it was).
    pub skew_deg: f32,
    pub words: Vec<WordBox>,
    pub lines: Vec<LineBox>,
    pub flags: Vec<PageFlag>,
}

impl PageText {
    /// A page that needs no OCR (text layer or transcript).
    pub fn from_text(page_no: u32, origin: PageOrigin, text: String) -> PageText {
        let flags = if text.trim().is_empty() { vec![PageFlag::Blank] } else { Vec::new() };
        PageText {
            page_no,
            origin,
            text,
            confidence: None,
            rotation: 0,
            skew_deg: 0.0,
            words: Vec::new(),
            lines: Vec::new(),
            flags,
        }
    }

    /// Whether a reviewer should look at this page.
    pub fn needs_review(&self) -> bool {
        !self.flags.is_empty()
    }
}

/// The text of a letter: its pages' text in order, a blank line between pages, blank pages
/// left out.
pub fn letter_text(pages: &[PageText]) -> String {
    pages.iter().map(|p| p.text.as_str()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n")
}

/// Mean OCR confidence of a letter, weighted by each page's text length; `None` when no page
/// was OCR'd. Blank pages do not pull the mean down: they are flagged instead.
pub fn letter_confidence(pages: &[PageText]) -> Option<f32> {
    let mut weight = 0.0f64;
    let mut sum = 0.0f64;
    let mut any = false;
    for p in pages {
        if let Some(c) = p.confidence {
            any = true;
            let n = p.text.chars().filter(|c| !c.is_whitespace()).count() as f64;
            sum += f64::from(c) * n;
            weight += n;
        }
    }
    match (any, weight > 0.0) {
        (false, _) => None,
        (true, true) => Some((sum / weight) as f32),
        (true, false) => Some(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ocr_page(text: &str, conf: f32) -> PageText {
        PageText { confidence: Some(conf), ..PageText::from_text(1, PageOrigin::Ocr, text.into()) }
    }

    #[test]
    fn confidence_is_weighted_by_text_length() {
        let pages = [ocr_page("一二三四", 0.9), ocr_page("五", 0.4), ocr_page("", 0.0)];
        let c = letter_confidence(&pages).expect("ocr pages give a confidence");
        assert!((c - 0.8).abs() < 1e-6, "{c}");
    }

    #[test]
    fn text_pages_have_no_confidence() {
        let pages = [PageText::from_text(1, PageOrigin::Transcript, "举报".into())];
        assert_eq!(letter_confidence(&pages), None);
    }

    #[test]
    fn a_letters_text_leaves_blank_pages_out() {
        let pages = [
            PageText::from_text(1, PageOrigin::Ocr, "第一页".into()),
            PageText::from_text(2, PageOrigin::Ocr, String::new()),
            PageText::from_text(3, PageOrigin::Ocr, "第三页".into()),
        ];
        assert_eq!(letter_text(&pages), "第一页\n\n第三页");
    }

    #[test]
    fn empty_transcript_is_flagged_blank() {
        let p = PageText::from_text(1, PageOrigin::Transcript, "  \n".into());
        assert_eq!(p.flags, vec![PageFlag::Blank]);
    }
}

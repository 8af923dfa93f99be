//! Ingest: turns the bytes of one letter (one file, or the files of a sub-folder in name
//! order) into pages: images that need OCR, or text that needs none.
//!
//! It detects each file's format from its bytes, never from its name, and enforces the
//! configured limits (bytes, pixels per page, pages per letter, decoded bytes per stream)
//! before it allocates for them. It never touches the disk or the database: the caller
//! reads the files and stores the originals first.

mod detect;
mod pdf;
mod raster;
mod text;

pub use detect::detect_format;

use crate::config::Limits;
use image::GrayImage;
use std::cell::Cell;
use thiserror::Error;
use xinfang_models::InputFormat;

/// One page as decoded from an original.
#[derive(Debug)]
pub enum PageContent {
    /// Pixels to OCR (8-bit gray). A PDF page with several images gives several regions.
    Image(Vec<GrayImage>),
    /// Text that needs no OCR: a PDF text layer.
    TextLayer(String),
    /// An already-transcribed letter.
    Transcript(String),
    /// A page with nothing on it to read (a PDF page with neither text nor images).
    Empty,
}

/// The decoded pages of one original file.
#[derive(Debug)]
pub struct DecodedFile {
    pub format: InputFormat,
    pub pages: Vec<PageContent>,
    /// Pixels declared by its images (what the letter's pixel budget was charged).
    pub pixels: u64,
}

/// Where a file stands within its letter: what the letter's earlier files already used.
#[derive(Debug, Clone, Copy, Default)]
pub struct LetterSoFar {
    pub pages: u32,
    pub pixels: u64,
}

/// Why a document cannot be read. These are problems of the document (quarantine it and
/// tell the user), never of the system.
#[derive(Debug, Error)]
pub enum IngestError {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("file is {bytes} bytes, over the limit of {limit} bytes (limits.max_file_bytes)")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error("letter is {bytes} bytes, over the limit of {limit} bytes (limits.max_letter_bytes)")]
    LetterTooLarge { bytes: u64, limit: u64 },
    #[error("not a supported format: {0} (accepted: PNG, JPEG, TIFF, PDF, UTF-8 text)")]
    UnknownFormat(String),
    #[error("cannot decode {format}: {reason}")]
    Decode { format: InputFormat, reason: String },
    #[error(
        "page {page} is {width} x {height} pixels, over the limit of {limit} pixels per page (limits.max_page_pixels)"
    )]
    TooManyPixels { page: u32, width: u64, height: u64, limit: u64 },
    #[error("page {page} has zero width or height")]
    ZeroSize { page: u32 },
    #[error("images of the letter add up to more than {limit} pixels (limits.max_letter_pixels)")]
    LetterTooManyPixels { limit: u64 },
    #[error("more than {limit} pages (limits.max_pages_per_letter)")]
    TooManyPages { limit: u32 },
    #[error("pdf is encrypted; encrypted pdfs are not supported (ask the sender for an unprotected copy)")]
    Encrypted,
    #[error("pdf page tree is malformed: {0}")]
    PageTree(String),
    #[error("pdf stream decodes to more than {limit} bytes (limits.max_stream_bytes)")]
    StreamTooLarge { limit: u64 },
    #[error("pdf page {page}: {what} is not supported")]
    Unsupported { page: u32, what: String },
    #[error("text is {bytes} bytes, over the limit of {limit} bytes (limits.max_text_bytes)")]
    TextTooLarge { bytes: u64, limit: u64 },
    #[error("text is not valid UTF-8 (at byte {0}); save the letter as UTF-8")]
    NotUtf8(usize),
}

/// Decodes the bytes of one original into pages, enforcing `limits`.
/// `before` is what the letter's earlier files used (folder letters), so that the page and
/// pixel limits, and page numbers in errors, count the whole letter.
pub fn decode(bytes: &[u8], limits: &Limits, before: LetterSoFar) -> Result<DecodedFile, IngestError> {
    if bytes.is_empty() {
        return Err(IngestError::Empty);
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(IngestError::FileTooLarge { bytes: bytes.len() as u64, limit: limits.max_file_bytes });
    }
    let format = detect_format(bytes)?;
    let budget = PageBudget { limits, pages_before: before.pages, pixels_before: before.pixels, used: Cell::new(0) };
    let pages = match format {
        InputFormat::Png | InputFormat::Jpeg => {
            budget.check_count(1)?;
            vec![PageContent::Image(vec![raster::decode_single(bytes, format, &budget, 1, true)?])]
        }
        InputFormat::Tiff => {
            raster::decode_tiff(bytes, &budget)?.into_iter().map(|img| PageContent::Image(vec![img])).collect()
        }
        InputFormat::Pdf => pdf::decode(bytes, &budget)?,
        InputFormat::Text => {
            budget.check_count(1)?;
            vec![PageContent::Transcript(text::decode(bytes, limits)?)]
        }
    };
    Ok(DecodedFile { format, pages, pixels: budget.used.get() })
}

/// Decodes the files of one letter in order, the limits counting the whole letter.
pub fn decode_letter<B: AsRef<[u8]>>(files: &[B], limits: &Limits) -> Result<Vec<DecodedFile>, IngestError> {
    let mut out = Vec::with_capacity(files.len());
    let mut so_far = LetterSoFar::default();
    for bytes in files {
        let file = decode(bytes.as_ref(), limits, so_far)?;
        so_far.pages += file.pages.len() as u32;
        so_far.pixels += file.pixels;
        out.push(file);
    }
    Ok(out)
}

/// The limits as they apply to the pages of one file within its letter.
pub(crate) struct PageBudget<'a> {
    pub limits: &'a Limits,
    pub pages_before: u32,
    pub pixels_before: u64,
    /// Pixels charged by this file so far.
    pub used: Cell<u64>,
}

impl PageBudget<'_> {
    /// Fails when a file with `pages` pages would take the letter over the page limit.
    pub fn check_count(&self, pages: u32) -> Result<(), IngestError> {
        let limit = self.limits.max_pages_per_letter;
        if self.pages_before.saturating_add(pages) > limit {
            return Err(IngestError::TooManyPages { limit });
        }
        Ok(())
    }

    /// Fails when a page's declared size is over the pixel limit, or would take the letter
    /// over its pixel budget (which bounds the memory of a letter's decoded pages); charges
    /// the budget otherwise. `page` is 1-based in the file; errors report it in the letter.
    pub fn check_pixels(&self, page: u32, width: u64, height: u64) -> Result<(), IngestError> {
        self.check_page_pixels(page, width, height)?;
        let pixels = width.saturating_mul(height);
        let total = self.pixels_before.saturating_add(self.used.get()).saturating_add(pixels);
        if total > self.limits.max_letter_pixels {
            return Err(IngestError::LetterTooManyPixels { limit: self.limits.max_letter_pixels });
        }
        self.used.set(self.used.get() + pixels);
        Ok(())
    }

    /// Fails when a page's size is over the per-page pixel limit, without charging the
    /// letter's budget (for an image already charged under its declared size).
    pub fn check_page_pixels(&self, page: u32, width: u64, height: u64) -> Result<(), IngestError> {
        let limit = self.limits.max_page_pixels;
        if width == 0 || height == 0 {
            return Err(IngestError::ZeroSize { page: self.pages_before + page });
        }
        if width.saturating_mul(height) > limit {
            return Err(IngestError::TooManyPixels { page: self.pages_before + page, width, height, limit });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_file_bytes: 1 << 20,
            max_letter_bytes: 1 << 20,
            max_page_pixels: 64 * 64,
            max_letter_pixels: 64 * 64 * 2,
            max_pages_per_letter: 10,
            max_stream_bytes: 1 << 20,
            max_text_bytes: 1 << 10,
            letter_timeout_secs: 10,
            page_ocr_timeout_secs: 10,
        }
    }

    fn tiff(pages: usize, side: u32) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut enc = tiff::encoder::TiffEncoder::new(&mut out).expect("encoder");
        let px = vec![255u8; (side * side) as usize];
        for _ in 0..pages {
            enc.write_image::<tiff::encoder::colortype::Gray8>(side, side, &px).expect("page");
        }
        out.into_inner()
    }

    #[test]
    fn letter_pixel_budget_spans_files() {
        let two = decode(&tiff(2, 64), &limits(), LetterSoFar::default()).expect("two pages fit");
        assert_eq!(two.pixels, 2 * 64 * 64);
        let so_far = LetterSoFar { pages: 2, pixels: two.pixels };
        let err = decode(&tiff(1, 64), &limits(), so_far).expect_err("a third page is over the letter budget");
        assert!(matches!(err, IngestError::LetterTooManyPixels { .. }), "{err}");
    }

    #[test]
    fn page_limit_counts_earlier_files() {
        let so_far = LetterSoFar { pages: 10, pixels: 0 };
        let err = decode(&tiff(1, 8), &limits(), so_far).expect_err("page 11");
        assert!(matches!(err, IngestError::TooManyPages { limit: 10 }), "{err}");
    }

    #[test]
    fn text_over_its_limit_is_refused() {
        let err = decode("举".repeat(1000).as_bytes(), &limits(), LetterSoFar::default()).expect_err("3000 bytes");
        assert!(matches!(err, IngestError::TextTooLarge { .. }), "{err}");
    }
}

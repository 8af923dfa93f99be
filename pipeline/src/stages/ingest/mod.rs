//! Ingest: turns the bytes of one letter (one file, or the files of a sub-folder in name
//! order) into pages: images that need OCR, or text that needs none.
//!
//! It detects each file's format from its bytes, never from its name, and enforces the
//! configured limits (bytes, pixels per page, pages per letter, decoded bytes per stream)
//! before it allocates for them. It never touches the disk or the database: the caller
//! reads the files and stores the originals first.

mod colour;
mod detect;
mod pdf;
mod raster;
mod render;
mod text;

pub use detect::detect_format;
pub use render::has_cjk_font;

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
    /// The character encoding a text file was written in (`UTF-8`, `gb18030`, `Big5` …).
    pub encoding: Option<&'static str>,
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
        "page {page} is {width} x {height} pixels, over the {limit} pixels an image may be decoded at (limits.max_decode_pixels)"
    )]
    TooManyPixels { page: u32, width: u64, height: u64, limit: u64 },
    #[error("page {page} has zero width or height")]
    ZeroSize { page: u32 },
    #[error("the images on page {page} declare {pixels} pixels, over the {limit} an image may be decoded at (limits.max_decode_pixels)")]
    ImagesTooLarge { page: u32, pixels: u64, limit: u64 },
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
    #[error("text is in none of the encodings letters are saved in (UTF-8, UTF-16 with a byte-order mark, GB18030/GBK, Big5)")]
    UnknownEncoding,
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
    let mut encoding = None;
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
            let (text, written_in) = text::decode(bytes, limits)?;
            encoding = Some(written_in);
            vec![PageContent::Transcript(text)]
        }
    };
    Ok(DecodedFile { format, encoding, pages, pixels: budget.used.get() })
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

    /// Fails when a page's declared size is over what may be decoded, or when the page as
    /// OCR will hold it (scaled down to `max_page_pixels`) would take the letter over its
    /// pixel budget (which bounds the memory of a letter's decoded pages); charges the budget
    /// otherwise. `page` is 1-based in the file; errors report it in the letter.
    pub fn check_pixels(&self, page: u32, width: u64, height: u64) -> Result<(), IngestError> {
        self.check_page_pixels(page, width, height)?;
        let (w, h) = fitted(width, height, self.limits.max_page_pixels);
        self.charge(w.saturating_mul(h))
    }

    /// Fails when a page's size is over what may be decoded at all, without charging the
    /// letter's budget (for an image already charged under its declared size).
    pub fn check_page_pixels(&self, page: u32, width: u64, height: u64) -> Result<(), IngestError> {
        let limit = self.limits.max_decode_pixels;
        if width == 0 || height == 0 {
            return Err(IngestError::ZeroSize { page: self.pages_before + page });
        }
        if width.saturating_mul(height) > limit {
            return Err(IngestError::TooManyPixels { page: self.pages_before + page, width, height, limit });
        }
        Ok(())
    }

    /// Charges `pixels` to the letter's budget.
    pub fn charge(&self, pixels: u64) -> Result<(), IngestError> {
        let total = self.pixels_before.saturating_add(self.used.get()).saturating_add(pixels);
        if total > self.limits.max_letter_pixels {
            return Err(IngestError::LetterTooManyPixels { limit: self.limits.max_letter_pixels });
        }
        self.used.set(self.used.get() + pixels);
        Ok(())
    }
}

/// The size of a `width` x `height` page scaled down (aspect kept) to at most `max` pixels.
pub fn fitted(width: u64, height: u64, max: u64) -> (u64, u64) {
    let pixels = width.saturating_mul(height);
    if pixels <= max || pixels == 0 {
        return (width, height);
    }
    let scale = (max as f64 / pixels as f64).sqrt();
    (((width as f64 * scale) as u64).max(1), ((height as f64 * scale) as u64).max(1))
}

/// A decoded page as OCR reads it: scaled down to `max_page_pixels` when it is larger (an
/// A3 scan at 600 dpi, a poster), by area averaging, which keeps thin strokes, one output
/// row at a time (no copy of the large page beside it).
pub fn fit_page(img: GrayImage, limits: &Limits) -> GrayImage {
    let (w, h) = fitted(u64::from(img.width()), u64::from(img.height()), limits.max_page_pixels);
    if (w, h) == (u64::from(img.width()), u64::from(img.height())) {
        return img;
    }
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let src = img.as_raw();
    let mut out = Vec::with_capacity(w * h);
    let mut sums = vec![0u32; w];
    let mut counts = vec![0u32; w];
    // The source columns each output column averages.
    let cols: Vec<(usize, usize)> = (0..w).map(|x| (x * sw / w, ((x + 1) * sw / w).max(x * sw / w + 1))).collect();
    for y in 0..h {
        let (y0, y1) = (y * sh / h, ((y + 1) * sh / h).max(y * sh / h + 1));
        sums.iter_mut().for_each(|v| *v = 0);
        counts.iter_mut().for_each(|v| *v = 0);
        for row in src[y0 * sw..y1.min(sh) * sw].chunks_exact(sw) {
            for (x, &(x0, x1)) in cols.iter().enumerate() {
                sums[x] += row[x0..x1.min(sw)].iter().map(|&v| u32::from(v)).sum::<u32>();
                counts[x] += (x1.min(sw) - x0) as u32;
            }
        }
        out.extend(sums.iter().zip(&counts).map(|(&s, &n)| (s / n.max(1)) as u8));
    }
    GrayImage::from_raw(w as u32, h as u32, out).unwrap_or(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_file_bytes: 1 << 20,
            max_letter_bytes: 1 << 20,
            max_page_pixels: 64 * 64,
            max_decode_pixels: 128 * 128,
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
    fn a_page_over_the_ocr_size_is_scaled_down_not_refused() {
        let big = decode(&tiff(1, 100), &limits(), LetterSoFar::default()).expect("decoded and scaled");
        let Some(PageContent::Image(regions)) = big.pages.first() else { panic!("an image page") };
        assert!(u64::from(regions[0].width()) * u64::from(regions[0].height()) <= 64 * 64);
        assert_eq!(big.pixels, 64 * 64, "the letter is charged what it holds");
        let err = decode(&tiff(1, 200), &limits(), LetterSoFar::default()).expect_err("over the decode limit");
        assert!(matches!(err, IngestError::TooManyPixels { limit: 16384, .. }), "{err}");
    }

    #[test]
    fn scaling_down_averages_what_it_covers() {
        let mut img = GrayImage::from_pixel(4, 4, image::Luma([255]));
        for y in 0..2 {
            for x in 0..2 {
                img.put_pixel(x, y, image::Luma([0]));
            }
        }
        let small = fit_page(img, &Limits { max_page_pixels: 4, ..limits() });
        assert_eq!((small.width(), small.height()), (2, 2));
        assert_eq!(small.as_raw(), &vec![0, 255, 255, 255]);
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

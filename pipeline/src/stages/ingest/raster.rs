//! Raster originals: PNG, JPEG and TIFF (multi-page, CCITT G3/G4, LZW, Deflate, JPEG).
//! Dimensions are checked against the decode limit from the header, before any pixel
//! buffer is allocated, and decoders run with allocation limits of their own; a page larger
//! than OCR reads is scaled down once decoded.

use super::{fit_page, IngestError, PageBudget};
use image::{DynamicImage, GrayImage, ImageFormat, ImageReader};
use std::io::Cursor;
use tiff::decoder::{Decoder as TiffDecoder, DecodingResult};
use tiff::tags::{PhotometricInterpretation, Tag};
use tiff::ColorType;
use xinfang_models::InputFormat;

fn decode_err(format: InputFormat, reason: impl std::fmt::Display) -> IngestError {
    IngestError::Decode { format, reason: reason.to_string() }
}

/// The image crate's allocation limits for one page of at most `max_pixels` pixels, with room
/// for four channels of 16 bits during decoding.
fn image_limits(max_pixels: u64) -> image::Limits {
    let side = u32::try_from(max_pixels.min(u64::from(u32::MAX))).unwrap_or(u32::MAX);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(1 << 20));
    limits
}

/// Decodes a PNG or JPEG (also a JPEG embedded in a PDF) to 8-bit gray. `charge`: whether
/// its size is charged to the letter's pixel budget (not when its PDF image already was).
pub fn decode_single(
    bytes: &[u8],
    format: InputFormat,
    budget: &PageBudget<'_>,
    page: u32,
    charge: bool,
) -> Result<GrayImage, IngestError> {
    let image_format = match format {
        InputFormat::Png => ImageFormat::Png,
        _ => ImageFormat::Jpeg,
    };
    // JPEG decoders fill a cut-off scan with gray and report success; a JPEG must end with
    // its end-of-image marker (0xFFD9 cannot occur inside entropy-coded data).
    if image_format == ImageFormat::Jpeg
        && !bytes[bytes.len().saturating_sub(4096)..].windows(2).any(|w| w == [0xFF, 0xD9])
    {
        return Err(decode_err(format, "truncated jpeg: no end-of-image marker"));
    }
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), image_format)
        .into_dimensions()
        .map_err(|e| decode_err(format, e))?;
    if charge {
        budget.check_pixels(page, u64::from(w), u64::from(h))?;
    } else {
        budget.check_page_pixels(page, u64::from(w), u64::from(h))?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    reader.limits(image_limits(budget.limits.max_decode_pixels));
    let img = reader.decode().map_err(|e| decode_err(format, e))?;
    Ok(fit_page(to_gray(img), budget.limits))
}

fn to_gray(img: DynamicImage) -> GrayImage {
    match img {
        DynamicImage::ImageLuma8(g) => g,
        DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => img.to_luma8(),
        // A colour scan: its seal, letterhead and rulings are taken out by colour.
        other => super::colour::without_furniture(&other.to_rgb8()).unwrap_or_else(|| other.to_luma8()),
    }
}

/// Decodes every page of a TIFF to 8-bit gray.
pub fn decode_tiff(bytes: &[u8], budget: &PageBudget<'_>) -> Result<Vec<GrayImage>, IngestError> {
    let fmt = InputFormat::Tiff;
    let max_pixels = budget.limits.max_decode_pixels;
    let mut limits = tiff::decoder::Limits::default();
    let buffer = usize::try_from(max_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    limits.decoding_buffer_size = buffer;
    limits.intermediate_buffer_size = buffer;
    limits.ifd_value_size = 16 << 20;
    let mut decoder = TiffDecoder::new(Cursor::new(bytes)).map_err(|e| decode_err(fmt, e))?.with_limits(limits);
    let mut pages = Vec::new();
    loop {
        let page_no = pages.len() as u32 + 1;
        budget.check_count(page_no)?;
        let (w, h) = decoder.dimensions().map_err(|e| decode_err(fmt, e))?;
        budget.check_pixels(page_no, u64::from(w), u64::from(h))?;
        let page = decode_tiff_page(&mut decoder, w, h).map_err(|e| decode_err(fmt, format!("page {page_no}: {e}")))?;
        pages.push(fit_page(page, budget.limits));
        if !decoder.more_images() {
            break;
        }
        decoder.next_image().map_err(|e| decode_err(fmt, e))?;
    }
    Ok(pages)
}

fn decode_tiff_page(decoder: &mut TiffDecoder<Cursor<&[u8]>>, w: u32, h: u32) -> Result<GrayImage, String> {
    let color = decoder.colortype().map_err(|e| e.to_string())?;
    let white_is_zero = decoder
        .get_tag_u32(Tag::PhotometricInterpretation)
        .ok()
        .and_then(|v| u16::try_from(v).ok())
        .and_then(PhotometricInterpretation::from_u16)
        == Some(PhotometricInterpretation::WhiteIsZero);
    let data = decoder.read_image().map_err(|e| e.to_string())?;
    let (w_us, h_us) = (w as usize, h as usize);
    let mut gray = match (color, data) {
        (ColorType::Gray(1), DecodingResult::U8(buf)) => unpack_bits(&buf, w_us, h_us),
        (ColorType::Gray(8), DecodingResult::U8(buf)) => buf,
        (ColorType::Gray(16), DecodingResult::U16(buf)) => buf.iter().map(|v| (v >> 8) as u8).collect(),
        (ColorType::RGB(8), DecodingResult::U8(buf)) => colour_to_gray(&buf, w, h, 3),
        (ColorType::RGBA(8), DecodingResult::U8(buf)) => colour_to_gray(&buf, w, h, 4),
        (ColorType::GrayA(8), DecodingResult::U8(buf)) => buf.chunks_exact(2).map(|p| p[0]).collect(),
        (ColorType::CMYK(8), DecodingResult::U8(buf)) => buf
            .chunks_exact(4)
            .map(|p| {
                let k = 255 - u32::from(p[3]);
                let rgb = [p[0], p[1], p[2]].map(|c| (255 - u32::from(c)) * k / 255);
                luma(rgb[0], rgb[1], rgb[2])
            })
            .collect(),
        (other, _) => return Err(format!("colour type {other:?} is not supported")),
    };
    if white_is_zero && !matches!(color, ColorType::Gray(1)) {
        gray.iter_mut().for_each(|v| *v = 255 - *v);
    }
    gray.truncate(w_us * h_us);
    let mut img = GrayImage::from_raw(w, h, gray).ok_or_else(|| "pixel data shorter than the image".to_string())?;
    if matches!(color, ColorType::Gray(1)) {
        paper_is_light(&mut img);
    }
    Ok(img)
}

fn luma(r: u32, g: u32, b: u32) -> u8 {
    ((r * 299 + g * 587 + b * 114) / 1000) as u8
}

/// Colour samples to gray, their coloured furniture taken out (see `colour`).
fn colour_to_gray(buf: &[u8], w: u32, h: u32, channels: usize) -> Vec<u8> {
    match super::colour::interleaved_without_furniture(buf, w, h, channels) {
        Some(gray) => gray.into_raw(),
        None => rgb_to_gray(buf, channels),
    }
}

fn rgb_to_gray(buf: &[u8], channels: usize) -> Vec<u8> {
    buf.chunks_exact(channels).map(|p| luma(u32::from(p[0]), u32::from(p[1]), u32::from(p[2]))).collect()
}

/// Expands 1-bit rows (each padded to a whole byte, most significant bit first; 1 = white)
/// to 8-bit gray.
pub fn unpack_bits(buf: &[u8], w: usize, h: usize) -> Vec<u8> {
    let row_bytes = w.div_ceil(8);
    let mut out = Vec::with_capacity(w * h);
    for row in buf.chunks(row_bytes).take(h) {
        for x in 0..w {
            let bit = row.get(x / 8).map_or(1, |b| (b >> (7 - (x % 8))) & 1);
            out.push(if bit == 1 { 255 } else { 0 });
        }
    }
    out
}

/// A bilevel letter scan is mostly paper. When a 1-bit image comes out mostly black, its
/// polarity was declared the other way round (WhiteIsZero, BlackIs1): flip it.
pub fn paper_is_light(img: &mut GrayImage) {
    let dark = img.as_raw().iter().filter(|&&v| v < 128).count();
    if dark * 2 > img.as_raw().len() {
        img.as_mut().iter_mut().for_each(|v| *v = 255 - *v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_bits_pads_rows_to_bytes() {
        // 10 pixels wide: two bytes per row; the second byte's low six bits are padding.
        let buf = [0b1010_1010, 0b0100_0000, 0xFF, 0xC0];
        let px = unpack_bits(&buf, 10, 2);
        assert_eq!(&px[..10], &[255, 0, 255, 0, 255, 0, 255, 0, 0, 255]);
        assert!(px[10..].iter().all(|&v| v == 255));
    }

    #[test]
    fn inverted_bilevel_page_is_flipped_to_light_paper() {
        let mut img = GrayImage::from_raw(4, 1, vec![0, 0, 0, 255]).expect("image");
        paper_is_light(&mut img);
        assert_eq!(img.as_raw(), &vec![255, 255, 255, 0]);
    }
}

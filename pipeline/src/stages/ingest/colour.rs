//! From colour to the gray OCR reads, with the letter paper's coloured furniture taken out:
//! a red seal stamped over the text, a red letterhead and its rulings, a blue stamp. When a
//! page's dark ink is mostly neutral (black or gray print) and some of it is clearly
//! coloured, each pixel's gray is its brightest channel: saturated red or blue ink becomes
//! light, like paper, while black print (also black print under a seal, whose ink darkens
//! it) stays dark. A page written in coloured ink (a letter in blue) is left as luma: its
//! colour is the text.

use image::{GrayImage, RgbImage};

/// Luma from 0–255 components (ITU-R BT.601).
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114 + 500) / 1000) as u8
}

/// Pixels darker than this (luma) are ink when the page's colours are counted.
const INK_BELOW: u8 = 170;
/// A pixel whose channels spread by at least this much is coloured, not gray.
const COLOURED_SPREAD: u8 = 70;
/// Coloured ink is the paper's furniture when it is at least this share of the ink…
const FURNITURE_MIN_PERMILLE: u64 = 5;
/// …and the neutral ink (the print) is at least this share.
const PRINT_MIN_PERCENT: u64 = 55;

/// Whether the page's coloured ink is furniture to take out (see the module doc).
fn has_coloured_furniture(pixels: impl Iterator<Item = [u8; 3]>) -> bool {
    let (mut ink, mut coloured) = (0u64, 0u64);
    for [r, g, b] in pixels {
        if luma(r, g, b) < INK_BELOW || r.max(g).max(b) < INK_BELOW {
            ink += 1;
            if r.max(g).max(b) - r.min(g).min(b) >= COLOURED_SPREAD {
                coloured += 1;
            }
        }
    }
    ink > 0 && coloured * 1000 >= ink * FURNITURE_MIN_PERMILLE && (ink - coloured) * 100 >= ink * PRINT_MIN_PERCENT
}

/// The gray page of an RGB page with its coloured furniture taken out, or `None` when it has
/// none (the caller's own luma conversion then stands, unchanged).
pub fn without_furniture(img: &RgbImage) -> Option<GrayImage> {
    interleaved_without_furniture(img.as_raw(), img.width(), img.height(), 3)
}

/// The gray page of an RGB page: without its furniture, else luma.
pub fn to_gray(img: &RgbImage) -> GrayImage {
    without_furniture(img).unwrap_or_else(|| {
        let (w, h) = img.dimensions();
        let gray = img.pixels().map(|p| luma(p.0[0], p.0[1], p.0[2])).collect();
        GrayImage::from_raw(w, h, gray).unwrap_or_else(|| GrayImage::new(w, h))
    })
}

/// `without_furniture` of interleaved samples with `channels` components per pixel.
pub fn interleaved_without_furniture(buf: &[u8], w: u32, h: u32, channels: usize) -> Option<GrayImage> {
    let pixels = buf.chunks_exact(channels).step_by(3).map(|p| [p[0], p[1], p[2]]);
    if !has_coloured_furniture(pixels) {
        return None;
    }
    let gray = buf.chunks_exact(channels).map(|p| p[0].max(p[1]).max(p[2])).collect();
    GrayImage::from_raw(w, h, gray)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A white page with black print and, optionally, a red seal over part of it.
    fn page(seal: bool) -> RgbImage {
        let mut img = RgbImage::from_pixel(200, 100, Rgb([255, 255, 255]));
        for y in 40..60 {
            for x in 10..190 {
                if x % 4 < 2 {
                    img.put_pixel(x, y, Rgb([20, 20, 20]));
                }
            }
        }
        if seal {
            for y in 30..70 {
                for x in 120..160 {
                    // stamp ink multiplies: red over paper, near black over print
                    let under = img.get_pixel(x, y).0;
                    let ink = [205u32, 35, 40];
                    let px = [0, 1, 2].map(|i| (u32::from(under[i]) * ink[i] / 255) as u8);
                    img.put_pixel(x, y, Rgb(px));
                }
            }
        }
        img
    }

    #[test]
    fn a_red_seal_over_the_print_goes_and_the_print_under_it_stays() {
        let gray = to_gray(&page(true));
        let at = |x, y| gray.get_pixel(x, y).0[0];
        assert!(at(122, 35) >= 200, "the seal over paper is paper: {}", at(122, 35));
        assert!(at(121, 50) < 60, "the print under the seal stays: {}", at(121, 50));
        assert!(at(20, 50) < 60 && at(22, 50) > 240);
    }

    #[test]
    fn a_page_without_colour_is_read_as_luma() {
        let img = page(false);
        let gray = to_gray(&img);
        assert!(gray.pixels().zip(img.pixels()).all(|(g, p)| g.0[0] == luma(p.0[0], p.0[1], p.0[2])));
    }

    #[test]
    fn a_letter_written_in_blue_keeps_its_text() {
        let mut img = RgbImage::from_pixel(100, 40, Rgb([250, 250, 250]));
        for y in 10..30 {
            for x in 10..90 {
                if x % 3 == 0 {
                    img.put_pixel(x, y, Rgb([30, 40, 150]));
                }
            }
        }
        let gray = to_gray(&img);
        assert!(gray.get_pixel(12, 20).0[0] < 80, "blue text is the text");
    }
}

//! Pages a person can see but the image extraction cannot read, drawn with a real PDF
//! renderer (hayro, pure Rust): text in fonts without a Unicode mapping, JBIG2, JPEG 2000
//! and DeviceN images, vector drawings, pages over the pixel limit. A page is drawn in gray
//! at OCR resolution (300 dpi), scaled down to `limits.max_page_pixels` when larger. The
//! images a page embeds are decoded at their own size while it is drawn, so their declared
//! sizes are checked against `limits.max_decode_pixels` before drawing starts.
//!
//! Fonts a PDF names but does not embed: the fourteen standard ones come with the renderer;
//! Chinese, Japanese and Korean ones are drawn with a CJK font of the system (Debian's
//! fonts-wqy-microhei, which the set-up installs; fonts-noto-cjk and fonts-arphic-uming are
//! used when present). Without one, such text would not be drawn at all.

use super::IngestError;
use hayro::hayro_interpret::font::{FontData, FontQuery};
use hayro::hayro_interpret::hayro_cmap::CidFamily;
use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::{LoadPdfError, Pdf};
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{render, PixmapSettings, RenderCache, RenderSettings};
use image::GrayImage;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use xinfang_models::InputFormat;

/// The resolution pages are drawn at for OCR.
const DPI: f32 = 300.0;

/// CJK font files tried in order (the first that exists is used): a sans font with Hangul
/// first, since one font must serve every CJK character collection.
const CJK_FONTS: [(&str, u32); 3] = [
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
];

/// The system's CJK font, read once.
fn cjk_font() -> Option<(FontData, u32)> {
    static FONT: OnceLock<Option<(FontData, u32)>> = OnceLock::new();
    FONT.get_or_init(|| {
        CJK_FONTS
            .iter()
            .find_map(|(path, index)| std::fs::read(path).ok().map(|bytes| (Arc::new(bytes) as FontData, *index)))
    })
    .clone()
}

/// Whether a CJK font is there to draw non-embedded Chinese text with.
pub fn has_cjk_font() -> bool {
    cjk_font().is_some()
}

fn settings() -> InterpreterSettings {
    InterpreterSettings {
        font_resolver: Arc::new(|query| match query {
            FontQuery::Standard(s) => Some(s.get_font_data()),
            FontQuery::Fallback(f) => {
                let cjk = f.character_collection.as_ref().is_some_and(|c| {
                    matches!(
                        c.family,
                        CidFamily::AdobeGB1 | CidFamily::AdobeCNS1 | CidFamily::AdobeJapan1 | CidFamily::AdobeKorea1
                    )
                });
                match cjk.then(cjk_font).flatten() {
                    Some(font) => Some(font),
                    None => Some(f.pick_standard_font().get_font_data()),
                }
            }
        }),
        ..Default::default()
    }
}

fn render_err(page: u32, reason: impl std::fmt::Display) -> IngestError {
    IngestError::Decode { format: InputFormat::Pdf, reason: format!("page {page} cannot be drawn: {reason}") }
}

/// A PDF opened for drawing.
pub struct Renderer {
    pdf: Pdf,
    settings: InterpreterSettings,
}

impl Renderer {
    /// Opens the PDF (its own parse: lopdf's is not shared).
    pub fn open(bytes: &[u8]) -> Result<Renderer, IngestError> {
        let pdf = catch_unwind(|| Pdf::new(bytes.to_vec()))
            .map_err(|_| render_err(0, "the renderer failed on this file"))?
            .map_err(|e| match e {
                LoadPdfError::Decryption(_) => IngestError::Encrypted,
                LoadPdfError::Invalid => render_err(0, "not a PDF the renderer can read"),
            })?;
        Ok(Renderer { pdf, settings: settings() })
    }

    /// Draws page `index` (0-based) in gray at 300 dpi, or smaller so that it has at most
    /// `max_pixels` pixels. `page` names it in errors.
    pub fn draw(&self, index: usize, page: u32, max_pixels: u64) -> Result<GrayImage, IngestError> {
        let Some(p) = self.pdf.pages().get(index) else {
            return Err(render_err(page, "the renderer sees fewer pages"));
        };
        let (w_pt, h_pt) = p.render_dimensions();
        if !(w_pt > 0.0 && h_pt > 0.0 && w_pt.is_finite() && h_pt.is_finite()) {
            return Err(IngestError::ZeroSize { page });
        }
        let mut scale = DPI / 72.0;
        let pixels = f64::from(w_pt * scale) * f64::from(h_pt * scale);
        if pixels > max_pixels as f64 {
            scale *= (max_pixels as f64 / pixels).sqrt() as f32;
        }
        // The renderer's pixmaps are at most 65535 pixels a side.
        scale = scale.min(f32::from(u16::MAX) / w_pt).min(f32::from(u16::MAX) / h_pt);
        // A cache per page: it borrows the page (letters have few pages; fonts load fast).
        let cache = RenderCache::new();
        let pixmap = catch_unwind(AssertUnwindSafe(|| {
            render(
                p,
                &cache,
                &self.settings,
                &RenderSettings::default(),
                &PixmapSettings { x_scale: scale, y_scale: scale, bg_color: WHITE },
            )
        }))
        .map_err(|_| render_err(page, "the renderer failed on it"))?;
        let (w, h) = (u32::from(pixmap.width()), u32::from(pixmap.height()));
        // Drawn over opaque white, so the premultiplied colours are the colours.
        let rgb: Vec<u8> = pixmap.data().iter().flat_map(|c| [c.r, c.g, c.b]).collect();
        drop(pixmap);
        let rgb = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| render_err(page, "the drawing has no pixels"))?;
        Ok(super::colour::to_gray(&rgb))
    }
}

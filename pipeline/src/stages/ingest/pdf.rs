//! PDF originals, read with lopdf. A page with a real text layer gives its text (no OCR);
//! an image-only page (the usual scanned PDF) gives its embedded images, decoded here at
//! their own resolution: DCT (JPEG), Flate with PNG or TIFF predictors, CCITT G3/G4 and raw
//! samples, in gray, RGB, CMYK, ICC-based and indexed colour spaces at 1, 2, 4, 8 or 16
//! bits. Every other page a person can see (text in fonts without a Unicode mapping, JBIG2,
//! JPEG 2000 or DeviceN images, vector drawings) is drawn by the renderer (`render`).
//!
//! Hostile files are bounded: lopdf decodes object streams under `max_stream_bytes`, the
//! page tree is walked with a visited set and a depth bound, every image's declared size is
//! checked against the pixel limit before decoding, and a Flate stream may not inflate
//! past what its declared image needs.

use super::raster::{decode_single, paper_is_light};
use super::render::Renderer;
use super::{IngestError, PageBudget, PageContent};
use image::GrayImage;
use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId, Stream};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use xinfang_models::InputFormat;

/// Deepest page tree we follow; real trees are a handful of levels.
const MAX_TREE_DEPTH: usize = 64;
/// Images smaller than this on either side are logos or rules, not page scans.
const MIN_IMAGE_SIDE: u32 = 32;
/// A text layer counts as real when it has at least this many readable characters.
const MIN_TEXT_LAYER_CHARS: usize = 10;
/// Share of symbols (`\ ^ * ~ | < > { } [ ] _ = + @ # $ &`) above which extracted text is
/// the garbage of a font without a usable Unicode mapping; letters, forms and court papers
/// stay well under it.
const MAX_ODD_SYMBOL_PERCENT: usize = 8;

fn pdf_err(reason: impl std::fmt::Display) -> IngestError {
    IngestError::Decode { format: InputFormat::Pdf, reason: reason.to_string() }
}

/// Decodes every page of a PDF.
pub fn decode(bytes: &[u8], budget: &PageBudget<'_>) -> Result<Vec<PageContent>, IngestError> {
    let stream_limit = usize::try_from(budget.limits.max_stream_bytes).unwrap_or(usize::MAX);
    let options = LoadOptions { max_decompressed_size: Some(stream_limit), ..LoadOptions::default() };
    let doc = Document::load_mem_with_options(bytes, options).map_err(|e| match e {
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => IngestError::Encrypted,
        other if other.to_string().to_lowercase().contains("limit") => {
            IngestError::StreamTooLarge { limit: budget.limits.max_stream_bytes }
        }
        other => pdf_err(other),
    })?;
    // lopdf decrypts files whose user password is empty; anything still encrypted is not ours to read.
    if doc.is_encrypted() && !doc.was_encrypted() {
        return Err(IngestError::Encrypted);
    }
    let page_ids = walk_page_tree(&doc, budget)?;
    let numbers: HashMap<ObjectId, u32> = doc.get_pages().into_iter().map(|(n, id)| (id, n)).collect();
    let mut pages = Vec::with_capacity(page_ids.len());
    let mut renderer: Option<Renderer> = None;
    for (i, id) in page_ids.iter().enumerate() {
        let page_no = i as u32 + 1;
        let text = numbers.get(id).and_then(|n| text_layer(&doc, *n, budget));
        if let Some(text) = text.as_deref().filter(|t| plausible_text(t)) {
            pages.push(PageContent::TextLayer(text.to_string()));
            continue;
        }
        // Text is drawn but does not read (a font without a usable Unicode mapping): what
        // a person sees is the drawing, whatever images the page also holds.
        let drawn_text = text.is_some_and(|t| t.chars().any(|c| !c.is_whitespace() && !c.is_control()));
        let extracted = if drawn_text { Ok(Vec::new()) } else { page_images(&doc, *id, budget, page_no) };
        match extracted {
            Ok(images) if !images.is_empty() => pages.push(PageContent::Image(images)),
            // Nothing extracted (no images: text without a Unicode mapping, vector drawings,
            // or a blank page), or images this decoder does not read: the page is drawn.
            Ok(_) | Err(IngestError::Unsupported { .. }) => {
                let letter_page = budget.pages_before + page_no;
                let declared = declared_image_pixels(&doc, *id);
                if declared > budget.limits.max_decode_pixels {
                    return Err(IngestError::ImagesTooLarge {
                        page: letter_page,
                        pixels: declared,
                        limit: budget.limits.max_decode_pixels,
                    });
                }
                let renderer = match &mut renderer {
                    Some(r) => r,
                    None => renderer.insert(Renderer::open(bytes)?),
                };
                let mut img = renderer.draw(i, letter_page, budget.limits.max_page_pixels)?;
                budget.charge(u64::from(img.width()) * u64::from(img.height()))?;
                // A page drawn mostly dark is a scan whose polarity was declared the other
                // way round (as DeviceN scans often are): letters are mostly paper.
                paper_is_light(&mut img);
                pages.push(PageContent::Image(vec![img]));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(pages)
}

/// Pixels the images drawn on a page declare (directly or inside form XObjects).
fn declared_image_pixels(doc: &Document, page: ObjectId) -> u64 {
    let Some(resources) = inherited_resources(doc, page) else { return 0 };
    let mut total = 0u64;
    let _ = visit_images(doc, resources, 0, &mut HashSet::new(), &mut |stream| {
        let side = |key: &[u8]| int_of(doc, &stream.dict, key).unwrap_or(0).max(0) as u64;
        total = total.saturating_add(side(b"Width").saturating_mul(side(b"Height")));
        Ok(())
    });
    total
}

/// The page objects in document order. Refuses loops, over-deep trees and too many pages.
fn walk_page_tree(doc: &Document, budget: &PageBudget<'_>) -> Result<Vec<ObjectId>, IngestError> {
    let root = doc
        .catalog()
        .ok()
        .and_then(|c| c.get(b"Pages").ok())
        .and_then(|o| if let Object::Reference(id) = o { Some(*id) } else { None })
        .ok_or_else(|| IngestError::PageTree("no page tree in the catalog".into()))?;
    let mut pages = Vec::new();
    let mut visited = HashSet::new();
    visit(doc, root, 0, &mut visited, &mut pages, budget)?;
    if pages.is_empty() {
        return Err(IngestError::PageTree("the document has no pages".into()));
    }
    Ok(pages)
}

fn visit(
    doc: &Document,
    id: ObjectId,
    depth: usize,
    visited: &mut HashSet<ObjectId>,
    pages: &mut Vec<ObjectId>,
    budget: &PageBudget<'_>,
) -> Result<(), IngestError> {
    if depth > MAX_TREE_DEPTH {
        return Err(IngestError::PageTree(format!("deeper than {MAX_TREE_DEPTH} levels")));
    }
    if !visited.insert(id) {
        return Err(IngestError::PageTree(format!("page tree loops back to object {} {}", id.0, id.1)));
    }
    let dict = doc.get_dictionary(id).map_err(|e| IngestError::PageTree(format!("object {} {}: {e}", id.0, id.1)))?;
    let is_page = matches!(dict.get(b"Type"), Ok(Object::Name(n)) if n == b"Page");
    let kids = match dict.get(b"Kids").map(|k| deref(doc, k)) {
        Ok(Object::Array(kids)) if !is_page => Some(kids),
        _ => None,
    };
    match kids {
        Some(kids) => {
            for kid in kids {
                if let Object::Reference(kid_id) = kid {
                    visit(doc, *kid_id, depth + 1, visited, pages, budget)?;
                }
            }
        }
        None => {
            pages.push(id);
            budget.check_count(pages.len() as u32)?;
        }
    }
    Ok(())
}

fn deref<'a>(doc: &'a Document, obj: &'a Object) -> &'a Object {
    doc.dereference(obj).map(|(_, o)| o).unwrap_or(obj)
}

fn dict_of<'a>(doc: &'a Document, obj: &'a Object) -> Option<&'a Dictionary> {
    match deref(doc, obj) {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

fn int_of(doc: &Document, dict: &Dictionary, key: &[u8]) -> Option<i64> {
    match dict.get(key).map(|o| deref(doc, o)) {
        Ok(Object::Integer(i)) => Some(*i),
        Ok(Object::Real(r)) => Some(*r as i64),
        _ => None,
    }
}

fn name_of<'a>(doc: &'a Document, dict: &'a Dictionary, key: &[u8]) -> Option<&'a [u8]> {
    match dict.get(key).map(|o| deref(doc, o)) {
        Ok(Object::Name(n)) => Some(n.as_slice()),
        _ => None,
    }
}

/// The text a page's fonts say it draws (`None` when it cannot be extracted). Whether it is
/// the page's text is `plausible_text`'s question.
fn text_layer(doc: &Document, page_number: u32, budget: &PageBudget<'_>) -> Option<String> {
    let limit = usize::try_from(budget.limits.max_text_bytes).unwrap_or(usize::MAX);
    doc.extract_text_with_limit(&[page_number], limit).ok()
}

/// Whether extracted text reads as text: at least `MIN_TEXT_LAYER_CHARS` readable
/// characters, of which few are the symbols only mis-mapped glyphs produce (a font without a
/// usable Unicode mapping gives codes read as Latin letters and symbols: `Fnemb\hehk;eZ\d
/// Ink^`, which a person never sees and OCR must replace).
fn plausible_text(text: &str) -> bool {
    let readable: Vec<char> = text
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '\u{fffd}' && *c != '?')
        .filter(|c| !matches!(u32::from(*c), 0xE000..=0xF8FF))
        .collect();
    if readable.len() < MIN_TEXT_LAYER_CHARS {
        return false;
    }
    let odd = readable.iter().filter(|c| "\\^*~`|<>{}[]_=+@#$&".contains(**c)).count();
    odd * 100 <= readable.len() * MAX_ODD_SYMBOL_PERCENT
}

/// Decodes the images drawn on a page (directly or inside form XObjects), in resource order.
fn page_images(
    doc: &Document,
    page: ObjectId,
    budget: &PageBudget<'_>,
    page_no: u32,
) -> Result<Vec<GrayImage>, IngestError> {
    let Some(resources) = inherited_resources(doc, page) else {
        return Ok(Vec::new());
    };
    let mut images = Vec::new();
    visit_images(doc, resources, 0, &mut HashSet::new(), &mut |stream| {
        if let Some(img) = decode_image(doc, stream, budget, page_no)? {
            images.push(super::fit_page(img, budget.limits));
        }
        if images.len() as u32 > budget.limits.max_pages_per_letter {
            return Err(IngestError::Unsupported {
                page: budget.pages_before + page_no,
                what: "a page made of that many images".into(),
            });
        }
        Ok(())
    })?;
    Ok(images)
}

/// Resources may be inherited from any ancestor in the page tree.
fn inherited_resources(doc: &Document, page: ObjectId) -> Option<&Dictionary> {
    let mut node = doc.get_dictionary(page).ok()?;
    for _ in 0..MAX_TREE_DEPTH {
        if let Some(res) = node.get(b"Resources").ok().and_then(|r| dict_of(doc, r)) {
            return Some(res);
        }
        node = node.get(b"Parent").ok().and_then(|p| dict_of(doc, p))?;
    }
    None
}

/// Calls `f` with each image XObject `resources` draws, directly or inside form XObjects
/// (four levels deep), once each.
fn visit_images<'a>(
    doc: &'a Document,
    resources: &'a Dictionary,
    depth: usize,
    seen: &mut HashSet<ObjectId>,
    f: &mut dyn FnMut(&'a Stream) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let Some(xobjects) = resources.get(b"XObject").ok().and_then(|x| dict_of(doc, x)) else {
        return Ok(());
    };
    for (_, obj) in xobjects.iter() {
        if let Object::Reference(id) = obj {
            if !seen.insert(*id) {
                continue;
            }
        }
        let Object::Stream(stream) = deref(doc, obj) else { continue };
        match name_of(doc, &stream.dict, b"Subtype") {
            Some(b"Image") => f(stream)?,
            Some(b"Form") if depth < 4 => {
                if let Some(res) = stream.dict.get(b"Resources").ok().and_then(|r| dict_of(doc, r)) {
                    visit_images(doc, res, depth + 1, seen, f)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The colour spaces of images we can read.
#[derive(Debug, Clone)]
enum ColorSpace {
    Gray,
    Rgb,
    Cmyk,
    Indexed { base: Box<ColorSpace>, lookup: Vec<u8> },
}

impl ColorSpace {
    fn components(&self) -> usize {
        match self {
            ColorSpace::Gray | ColorSpace::Indexed { .. } => 1,
            ColorSpace::Rgb => 3,
            ColorSpace::Cmyk => 4,
        }
    }

    /// The colour of one pixel given its components scaled to 0–255 (`None` for gray).
    fn rgb(&self, c: &[u32]) -> Option<[u8; 3]> {
        match self {
            ColorSpace::Gray => None,
            ColorSpace::Rgb => Some([c[0] as u8, c[1] as u8, c[2] as u8]),
            ColorSpace::Cmyk => {
                let k = 255 - c[3];
                Some([c[0], c[1], c[2]].map(|v| ((255 - v) * k / 255) as u8))
            }
            ColorSpace::Indexed { base, lookup } => {
                let n = base.components();
                let i = c[0] as usize * n;
                let entry: Vec<u32> = lookup.get(i..i + n)?.iter().map(|&b| u32::from(b)).collect();
                base.rgb(&entry).or_else(|| Some([entry[0] as u8; 3]))
            }
        }
    }

    /// Gray value of one pixel given its components scaled to 0–255.
    fn gray(&self, c: &[u32]) -> u8 {
        match self {
            ColorSpace::Gray => c[0] as u8,
            ColorSpace::Rgb => ((c[0] * 299 + c[1] * 587 + c[2] * 114) / 1000) as u8,
            ColorSpace::Cmyk => {
                let k = 255 - c[3];
                let rgb = [c[0], c[1], c[2]].map(|v| (255 - v) * k / 255);
                ((rgb[0] * 299 + rgb[1] * 587 + rgb[2] * 114) / 1000) as u8
            }
            ColorSpace::Indexed { base, lookup } => {
                let n = base.components();
                let i = c[0] as usize * n;
                match lookup.get(i..i + n) {
                    Some(entry) => {
                        let comps: Vec<u32> = entry.iter().map(|&b| u32::from(b)).collect();
                        base.gray(&comps)
                    }
                    None => 255,
                }
            }
        }
    }
}

fn parse_color_space(doc: &Document, obj: &Object, stream_limit: usize, depth: u8) -> Result<ColorSpace, String> {
    if depth > 3 {
        return Err("colour space nests too deeply".into());
    }
    match deref(doc, obj) {
        Object::Name(n) => match n.as_slice() {
            b"DeviceGray" | b"G" | b"CalGray" => Ok(ColorSpace::Gray),
            b"DeviceRGB" | b"RGB" | b"CalRGB" => Ok(ColorSpace::Rgb),
            b"DeviceCMYK" | b"CMYK" => Ok(ColorSpace::Cmyk),
            other => Err(format!("colour space {}", String::from_utf8_lossy(other))),
        },
        Object::Array(a) => {
            let family = match a.first().map(|o| deref(doc, o)) {
                Some(Object::Name(n)) => n.as_slice(),
                _ => return Err("a colour space array without a name".into()),
            };
            match family {
                b"ICCBased" => {
                    let n = a.get(1).and_then(|s| dict_of(doc, s)).and_then(|d| int_of(doc, d, b"N"));
                    match n {
                        Some(1) => Ok(ColorSpace::Gray),
                        Some(3) => Ok(ColorSpace::Rgb),
                        Some(4) => Ok(ColorSpace::Cmyk),
                        other => Err(format!("an ICC colour space with {other:?} components")),
                    }
                }
                b"CalGray" => Ok(ColorSpace::Gray),
                b"CalRGB" | b"Lab" => Ok(ColorSpace::Rgb),
                b"Indexed" | b"I" => {
                    let base = a.get(1).ok_or("indexed colour space without a base")?;
                    let base = parse_color_space(doc, base, stream_limit, depth + 1)?;
                    let lookup = match a.get(3).map(|o| deref(doc, o)) {
                        Some(Object::String(bytes, _)) => bytes.clone(),
                        Some(Object::Stream(s)) => {
                            s.decompressed_content_with_limit(stream_limit).map_err(|e| e.to_string())?
                        }
                        _ => return Err("indexed colour space without a lookup table".into()),
                    };
                    Ok(ColorSpace::Indexed { base: Box::new(base), lookup })
                }
                other => Err(format!("colour space {}", String::from_utf8_lossy(other))),
            }
        }
        _ => Err("a malformed colour space".into()),
    }
}

/// What an image stream declares about itself.
struct ImageHeader {
    width: u32,
    height: u32,
    bpc: u32,
    color: ColorSpace,
    /// `/Decode [1 0]`: sample values are inverted.
    inverted: bool,
}

fn filters(doc: &Document, dict: &Dictionary) -> Vec<(Vec<u8>, Option<Dictionary>)> {
    let names: Vec<Vec<u8>> = match dict.get(b"Filter").map(|f| deref(doc, f)) {
        Ok(Object::Name(n)) => vec![n.clone()],
        Ok(Object::Array(a)) => {
            a.iter().filter_map(|o| if let Object::Name(n) = deref(doc, o) { Some(n.clone()) } else { None }).collect()
        }
        _ => Vec::new(),
    };
    let parms: Vec<Option<Dictionary>> =
        match dict.get(b"DecodeParms").or_else(|_| dict.get(b"DP")).map(|p| deref(doc, p)) {
            Ok(Object::Dictionary(d)) => vec![Some(d.clone())],
            Ok(Object::Array(a)) => a.iter().map(|o| dict_of(doc, o).cloned()).collect(),
            _ => Vec::new(),
        };
    names.into_iter().enumerate().map(|(i, n)| (n, parms.get(i).cloned().flatten())).collect()
}

/// Decodes one image XObject to gray; `None` for images too small to be a page scan.
fn decode_image(
    doc: &Document,
    stream: &Stream,
    budget: &PageBudget<'_>,
    page_no: u32,
) -> Result<Option<GrayImage>, IngestError> {
    let letter_page = budget.pages_before + page_no;
    let unsupported = |what: String| IngestError::Unsupported { page: letter_page, what };
    let dict = &stream.dict;
    let (Some(width), Some(height)) = (int_of(doc, dict, b"Width"), int_of(doc, dict, b"Height")) else {
        return Err(unsupported("an image without /Width and /Height".into()));
    };
    if width <= 0 || height <= 0 {
        return Err(unsupported(format!("an image of {width} x {height} pixels")));
    }
    budget.check_pixels(page_no, width as u64, height as u64)?;
    let (width, height) = (width as u32, height as u32);
    if width < MIN_IMAGE_SIDE || height < MIN_IMAGE_SIDE {
        return Ok(None);
    }
    let stream_limit = usize::try_from(budget.limits.max_stream_bytes).unwrap_or(usize::MAX);
    // What shows of an image with a transparency mask is the mask's doing: drawn, not read.
    if dict.has(b"SMask") || dict.has(b"Mask") {
        return Err(unsupported("an image with a transparency mask".into()));
    }
    let is_mask = matches!(dict.get(b"ImageMask").map(|o| deref(doc, o)), Ok(Object::Boolean(true)));
    let color = if is_mask {
        ColorSpace::Gray
    } else {
        match dict.get(b"ColorSpace") {
            Ok(cs) => {
                parse_color_space(doc, cs, stream_limit, 0).map_err(|e| unsupported(format!("{e} in an image")))?
            }
            Err(_) => ColorSpace::Gray,
        }
    };
    let bpc = if is_mask { 1 } else { int_of(doc, dict, b"BitsPerComponent").unwrap_or(8) as u32 };
    if !matches!(bpc, 1 | 2 | 4 | 8 | 16) {
        return Err(unsupported(format!("{bpc} bits per component")));
    }
    let inverted = match dict.get(b"Decode").map(|o| deref(doc, o)) {
        Ok(Object::Array(a)) => {
            matches!(a.first().map(|o| deref(doc, o)), Some(Object::Integer(1)))
                || matches!(a.first().map(|o| deref(doc, o)), Some(Object::Real(r)) if *r >= 0.5)
        }
        _ => false,
    };
    let header = ImageHeader { width, height, bpc, color, inverted };
    let image_bytes_limit = usize::try_from(budget.limits.max_decode_pixels.saturating_mul(3)).unwrap_or(usize::MAX);

    let chain = filters(doc, dict);
    let mut data: std::borrow::Cow<'_, [u8]> = std::borrow::Cow::Borrowed(&stream.content);
    for (i, (name, parms)) in chain.iter().enumerate() {
        let last = i + 1 == chain.len();
        match name.as_slice() {
            b"FlateDecode" | b"Fl" => {
                // An image's samples are bounded by its declared size (checked against
                // max_decode_pixels above), which may need more than max_stream_bytes: a
                // 9000 x 9000 colour scan is 243 MB of samples.
                let (needed, limit) = if last {
                    let needed = raw_size(&header, parms.as_ref());
                    (needed, stream_limit.max(needed.min(image_bytes_limit)))
                } else {
                    (stream_limit, stream_limit)
                };
                data = std::borrow::Cow::Owned(inflate(&data, needed, limit, budget)?);
                if let Some(p) = parms {
                    data = std::borrow::Cow::Owned(unpredict(data.into_owned(), p, &header).map_err(&unsupported)?);
                }
            }
            b"DCTDecode" | b"DCT" if last => {
                let mut img = decode_single(&data, InputFormat::Jpeg, budget, page_no, false)?;
                if header.inverted {
                    img.as_mut().iter_mut().for_each(|v| *v = 255 - *v);
                }
                return Ok(Some(img));
            }
            b"CCITTFaxDecode" | b"CCF" if last => {
                return ccitt(&data, parms.as_ref(), &header).map(Some).map_err(&unsupported);
            }
            other => {
                let name = String::from_utf8_lossy(other);
                return Err(unsupported(format!("the {name} image filter")));
            }
        }
    }
    samples_to_gray(&data, &header).map(Some).map_err(unsupported)
}

/// Bytes of raw samples the image needs (plus one filter byte per row with PNG predictors).
fn raw_size(h: &ImageHeader, parms: Option<&Dictionary>) -> usize {
    let row = (h.width as usize * h.color.components() * h.bpc as usize).div_ceil(8);
    let predictor_bytes = match parms.and_then(|p| p.get(b"Predictor").ok()) {
        Some(Object::Integer(p)) if *p >= 10 => 1,
        _ => 0,
    };
    (row + predictor_bytes) * h.height as usize
}

/// Inflates a zlib stream, refusing to produce more than the declared image needs (with a
/// little slack) or more than `limit` bytes.
fn inflate(data: &[u8], needed: usize, limit: usize, budget: &PageBudget<'_>) -> Result<Vec<u8>, IngestError> {
    let cap = needed.saturating_add(needed / 8).saturating_add(64 * 1024).min(limit);
    let mut out = Vec::with_capacity(needed.min(cap));
    let mut decoder = flate2::read::ZlibDecoder::new(data).take(cap as u64 + 1);
    let result = decoder.read_to_end(&mut out);
    if out.len() > cap {
        return Err(if cap >= limit {
            IngestError::StreamTooLarge { limit: budget.limits.max_stream_bytes }
        } else {
            pdf_err(format!("a flate stream inflates past {cap} bytes, more than its image declares ({needed} bytes)"))
        });
    }
    match result {
        Ok(_) => Ok(out),
        // Damaged trailers are common; keep what inflated when it is enough for the image.
        Err(_) if out.len() >= needed => Ok(out),
        Err(e) => Err(pdf_err(format!("a flate stream is corrupt: {e}"))),
    }
}

/// Undoes PNG (10–15) and TIFF (2) predictors.
fn unpredict(data: Vec<u8>, parms: &Dictionary, h: &ImageHeader) -> Result<Vec<u8>, String> {
    let predictor = match parms.get(b"Predictor") {
        Ok(Object::Integer(p)) => *p,
        _ => 1,
    };
    let get = |k: &[u8], d: i64| match parms.get(k) {
        Ok(Object::Integer(v)) => *v,
        _ => d,
    };
    let colors = get(b"Colors", 1).clamp(1, 4) as usize;
    let bpc = get(b"BitsPerComponent", i64::from(h.bpc)).clamp(1, 16) as usize;
    let columns = get(b"Columns", i64::from(h.width)).clamp(1, 1 << 20) as usize;
    let row = (columns * colors * bpc).div_ceil(8);
    let bpp = (colors * bpc).div_ceil(8).max(1);
    match predictor {
        1 => Ok(data),
        2 if bpc == 8 => {
            let mut out = data;
            for r in out.chunks_mut(row) {
                for i in bpp..r.len() {
                    r[i] = r[i].wrapping_add(r[i - bpp]);
                }
            }
            Ok(out)
        }
        2 => Err(format!("TIFF predictor at {bpc} bits per component")),
        10..=15 => {
            // Undone in place, row by row: each output row is written over bytes already
            // read (the input rows are one byte longer), so a large scan is not held twice.
            let mut buf = data;
            let rows = buf.len() / (row + 1);
            for y in 0..rows {
                let (src, dst) = (y * (row + 1), y * row);
                let kind = buf[src];
                for i in 0..row {
                    let a = if i >= bpp { buf[dst + i - bpp] } else { 0 };
                    let b = if y > 0 { buf[dst - row + i] } else { 0 };
                    let c = if y > 0 && i >= bpp { buf[dst - row + i - bpp] } else { 0 };
                    let x = buf[src + 1 + i];
                    buf[dst + i] = x.wrapping_add(match kind {
                        0 => 0,
                        1 => a,
                        2 => b,
                        3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                        4 => paeth(a, b, c),
                        k => return Err(format!("PNG predictor row type {k}")),
                    });
                }
            }
            buf.truncate(rows * row);
            buf.shrink_to_fit();
            Ok(buf)
        }
        p => Err(format!("predictor {p}")),
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// Converts raw samples to 8-bit gray.
fn samples_to_gray(data: &[u8], h: &ImageHeader) -> Result<GrayImage, String> {
    let comps = h.color.components();
    let bpc = h.bpc as usize;
    let (w, ht) = (h.width as usize, h.height as usize);
    let row = (w * comps * bpc).div_ceil(8);
    if data.len() < row * ht {
        return Err(format!("image data truncated ({} of {} bytes)", data.len(), row * ht));
    }
    let max = (1u32 << bpc) - 1;
    let indexed = matches!(h.color, ColorSpace::Indexed { .. });
    let mut out = Vec::with_capacity(w * ht);
    // Colour images keep their colours until it is known whether they carry coloured
    // furniture (a seal, a letterhead) to take out.
    let colour = !matches!(h.color, ColorSpace::Gray)
        && !matches!(&h.color, ColorSpace::Indexed { base, .. } if matches!(**base, ColorSpace::Gray));
    let mut rgb = Vec::with_capacity(if colour { w * ht * 3 } else { 0 });
    let mut px = [0u32; 4];
    for y in 0..ht {
        let r = &data[y * row..(y + 1) * row];
        for x in 0..w {
            for (c, slot) in px.iter_mut().enumerate().take(comps) {
                let idx = (x * comps + c) * bpc;
                let v = match bpc {
                    8 => u32::from(r[idx / 8]),
                    16 => u32::from(r[idx / 8]) << 8 | u32::from(r[idx / 8 + 1]),
                    _ => (u32::from(r[idx / 8]) >> (8 - bpc - idx % 8)) & max,
                };
                *slot = if indexed { v } else { v * 255 / max };
            }
            let g = h.color.gray(&px[..comps]);
            out.push(if h.inverted { 255 - g } else { g });
            if colour {
                rgb.extend(h.color.rgb(&px[..comps]).unwrap_or([g; 3]));
            }
        }
    }
    if colour && !h.inverted {
        if let Some(gray) = super::colour::interleaved_without_furniture(&rgb, h.width, h.height, 3) {
            out = gray.into_raw();
        }
    }
    drop(rgb);
    let mut img = GrayImage::from_raw(h.width, h.height, out).ok_or("pixel buffer size mismatch")?;
    if bpc == 1 {
        paper_is_light(&mut img);
    }
    Ok(img)
}

/// Decodes CCITT fax data (G4, or G3 one-dimensional) to gray.
fn ccitt(data: &[u8], parms: Option<&Dictionary>, h: &ImageHeader) -> Result<GrayImage, String> {
    let get = |k: &[u8], d: i64| match parms.map(|p| p.get(k)) {
        Some(Ok(Object::Integer(v))) => *v,
        _ => d,
    };
    let flag = |k: &[u8]| matches!(parms.map(|p| p.get(k)), Some(Ok(Object::Boolean(true))));
    let k = get(b"K", 0);
    let columns = get(b"Columns", 1728);
    let rows = get(b"Rows", i64::from(h.height));
    let black_is_1 = flag(b"BlackIs1");
    if columns != i64::from(h.width) {
        return Err(format!("CCITT /Columns {columns} differing from the image width {}", h.width));
    }
    let width = u16::try_from(columns).map_err(|_| format!("CCITT images wider than 65535 pixels ({columns})"))?;
    let height = u16::try_from(rows.max(1)).map_err(|_| format!("CCITT images taller than 65535 pixels ({rows})"))?;
    if flag(b"EncodedByteAlign") {
        return Err("CCITT data with EncodedByteAlign".into());
    }
    let mut out: Vec<u8> = Vec::with_capacity(usize::from(width) * usize::from(height));
    let mut rows_done = 0u32;
    let mut on_line = |transitions: &[u16]| {
        if rows_done < u32::from(height) {
            rows_done += 1;
            out.extend(fax::decoder::pels(transitions, width).map(|c| {
                let bit_is_1 = (c == fax::Color::Black) == black_is_1;
                if bit_is_1 {
                    255
                } else {
                    0
                }
            }));
        }
    };
    let ok = if k < 0 {
        fax::decoder::decode_g4(data.iter().copied(), width, Some(height), &mut on_line)
    } else if k == 0 {
        fax::decoder::decode_g3(data.iter().copied(), &mut on_line)
    } else {
        return Err("CCITT Group 3 two-dimensional (K > 0) data".into());
    };
    if ok.is_none() && rows_done == 0 {
        return Err("corrupt CCITT data".into());
    }
    out.resize(usize::from(width) * usize::from(height), 255);
    let mut img = GrayImage::from_raw(u32::from(width), u32::from(height), out).ok_or("pixel buffer size mismatch")?;
    if h.inverted {
        img.as_mut().iter_mut().for_each(|v| *v = 255 - *v);
    }
    paper_is_light(&mut img);
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_garbage_of_an_unmapped_font_is_no_text_layer() {
        assert!(!plausible_text("Fnemb\\hehk;eZ\\d Ink^;eZ\\d!D6*))\" Ink^FZ^gmZ Ink^<"));
        assert!(plausible_text("关于反映石桥镇柳河村党支部书记的问题"));
        assert!(plausible_text("Portez ce vieux whisky au juge blond qui fume (2017-01-22)."));
        assert!(!plausible_text("\u{e000}\u{e001}\u{e002}\u{e003}\u{e004}\u{e005}\u{e006}\u{e007}\u{e008}\u{e009}"));
    }

    fn header(w: u32, h: u32, bpc: u32, color: ColorSpace) -> ImageHeader {
        ImageHeader { width: w, height: h, bpc, color, inverted: false }
    }

    #[test]
    fn png_up_predictor_is_undone() {
        // Two rows of 3 gray pixels; the second row is encoded as "Up" (type 2) differences.
        let data = vec![0, 10, 20, 30, 2, 1, 1, 1];
        let mut parms = Dictionary::new();
        parms.set("Predictor", 12);
        parms.set("Columns", 3);
        let out = unpredict(data, &parms, &header(3, 2, 8, ColorSpace::Gray)).expect("unpredict");
        assert_eq!(out, vec![10, 20, 30, 11, 21, 31]);
    }

    #[test]
    fn rgb_and_one_bit_samples_become_gray() {
        let rgb = header(1, 1, 8, ColorSpace::Rgb);
        assert_eq!(samples_to_gray(&[255, 255, 255], &rgb).expect("rgb").as_raw(), &vec![255]);
        // 1-bit, 8 px: mostly white, one black pixel.
        let bits = header(8, 1, 1, ColorSpace::Gray);
        let img = samples_to_gray(&[0b1111_1110], &bits).expect("bits");
        assert_eq!(img.as_raw(), &vec![255, 255, 255, 255, 255, 255, 255, 0]);
    }

    /// A one-page PDF whose page draws `content`, with `resources` and `objects` after the
    /// page tree (numbered from 5).
    fn pdf(content: &str, resources: &str, objects: &[Vec<u8>]) -> Vec<u8> {
        let mut bodies: Vec<Vec<u8>> = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Resources << {resources} >> /Contents 4 0 R >>"
            )
            .into_bytes(),
            format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).into_bytes(),
        ];
        bodies.extend(objects.iter().cloned());
        let mut out = b"%PDF-1.5\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", bodies.len() + 1).as_bytes());
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", bodies.len() + 1).as_bytes(),
        );
        out
    }

    fn limits() -> crate::config::Limits {
        crate::config::Config::builtin().expect("config").limits
    }

    fn ink(img: &GrayImage) -> usize {
        img.as_raw().iter().filter(|&&v| v < 128).count()
    }

    #[test]
    fn a_page_drawn_without_images_or_text_is_drawn_for_ocr_not_taken_for_blank() {
        // A bar drawn with path operators: nothing to extract, something to see.
        let bytes = pdf("0 0 0 rg 50 80 200 40 re f", "", &[]);
        let budget = PageBudget { limits: &limits(), pages_before: 0, pixels_before: 0, used: std::cell::Cell::new(0) };
        let pages = decode(&bytes, &budget).expect("drawn");
        let [PageContent::Image(regions)] = pages.as_slice() else { panic!("one drawn page: {pages:?}") };
        assert_eq!((regions[0].width(), regions[0].height()), (1250, 833), "300 dpi");
        assert!(ink(&regions[0]) > 200 * 40 * 16, "the bar is there");
    }

    #[test]
    fn an_image_whose_mask_makes_what_shows_is_drawn_with_its_mask() {
        // A black image, shown only where its soft mask is opaque (the left half).
        let (w, h) = (64usize, 32usize);
        let mask: Vec<u8> = (0..w * h).map(|i| if i % w < w / 2 { 255 } else { 0 }).collect();
        let black = vec![0u8; w * h];
        let stream = |dict: String, data: &[u8]| {
            let mut b = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
            b.extend_from_slice(data);
            b.extend_from_slice(b"\nendstream");
            b
        };
        let image = stream(
            format!("/Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 8 /SMask 6 0 R"),
            &black,
        );
        let smask = stream(
            format!(
                "/Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 8"
            ),
            &mask,
        );
        let bytes = pdf("q 300 0 0 200 0 0 cm /Im0 Do Q", "/XObject << /Im0 5 0 R >>", &[image, smask]);
        let budget = PageBudget { limits: &limits(), pages_before: 0, pixels_before: 0, used: std::cell::Cell::new(0) };
        let pages = decode(&bytes, &budget).expect("drawn");
        let [PageContent::Image(regions)] = pages.as_slice() else { panic!("one drawn page: {pages:?}") };
        let page = &regions[0];
        let (left, right) = (page.get_pixel(300, 400).0[0], page.get_pixel(950, 400).0[0]);
        assert!(left < 64 && right > 192, "left {left}, right {right}: the mask decides what shows");
    }

    #[test]
    fn truncated_samples_are_an_error() {
        let gray = header(10, 10, 8, ColorSpace::Gray);
        assert!(samples_to_gray(&[0; 50], &gray).is_err());
    }
}

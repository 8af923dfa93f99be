//! Page preprocessing before OCR, each step applied only when the page needs it, because a
//! blunt correction ruins straight pages (measured: a global deskew took one straight page
//! from 9 % to 85 % CER):
//!
//! - **blank detection**: a page with almost no ink is not OCR'd at all;
//! - **quarter-turn orientation**: a page whose text lines run vertically (the gaps between
//!   lines show in the column profile, not the row profile) is turned 90° clockwise; the OCR
//!   stage then picks between that and the opposite turn by confidence;
//! - **skew**: estimated by the projection-profile method on a reduced binary image (the
//!   angle whose row profile is sharpest), corrected only when it is at least
//!   `min_skew_deg` and clearly sharper than leaving the page alone;
//! - **specks**: isolated dark dots far smaller than any stroke or punctuation mark (dust,
//!   toner, scanner noise), with no other ink near them, are painted over, so that
//!   tesseract does not read them as text;
//! - **grain**: a gray scan whose grain and stroke width call for it (`Measures`) gets a
//!   3×3 median; clean pages, thin strokes and bilevel scans are left as they are;
//! - **uneven light**: when the paper's brightness varies strongly across the page, the
//!   page is divided by a smooth estimate of its background;
//! - **layout**: whether the page stands in columns or is ruled like a table, which the OCR
//!   stage reads with tesseract's layout analysis instead of as one block.
//!
//! Every threshold measured on pages was chosen on the tuning half of the generated pages
//! (`samples/pages.py`, `xinfang bench ocr --split tuning`), never on the held-out half.
//!
//! Pure functions over `GrayImage`; no OCR, no I/O.

use image::GrayImage;

/// Reduction factor for the analysis image (300 dpi → 75 dpi: text lines stay resolved).
const REDUCE: u32 = 4;
/// Fraction of dark analysis pixels under which a page is blank.
const BLANK_INK_FRACTION: f64 = 0.0008;
/// Ink points (at the analysis scale) and their density within their bounding box from
/// which the ink of a nearly empty page is a mark to read (two small letters are about 15
/// points at 0.4), not dust.
const MARK_MIN_POINTS: usize = 8;
const MARK_MIN_DENSITY: f64 = 0.05;
/// The best skew angle must sharpen the profile by this factor over 0° to be corrected.
const SKEW_GAIN: f64 = 1.08;
/// Largest dark component, in pixels at 300 dpi, that is a speck rather than ink: the
/// smallest marks of 14-pt Chinese print (a 、 or the dot of 3.2) are about 50.
const SPECK_MAX_AREA: usize = 20;
/// Largest side of a speck's bounding box, in pixels at 300 dpi.
const SPECK_MAX_SIDE: u32 = 6;
/// Ink within this distance of a small dot, in pixels at 300 dpi, makes it part of a
/// character (the dots of 氵 or 冫 stand within a stroke's length of their character; the
/// gap between two characters of 10-pt print is about 8).
const SPECK_CLEARANCE: u32 = 6;
/// Column gap fraction a page on its side shows at least (its text lines run vertically).
const SIDEWAYS_MIN_GAPS: f64 = 0.15;
/// Background variation (in gray levels) above which lighting is corrected.
const UNEVEN_LIGHT_RANGE: u8 = 40;

/// Settings the preprocess stage takes from `[ocr]`.
#[derive(Debug, Clone, Copy)]
pub struct PreprocessConfig {
    pub min_skew_deg: f32,
    pub max_skew_deg: f32,
    pub median: bool,
    /// The median is applied only to pages whose `Measures::median_score` is at least this.
    pub median_min_score: f32,
}

/// What preprocessing found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub image: GrayImage,
    pub blank: bool,
    /// The text lines run vertically: the page lies on its side.
    pub sideways: bool,
    /// Skew corrected, in degrees (0 when left alone).
    pub skew_deg: f32,
    pub light_corrected: bool,
    /// Isolated specks painted over.
    pub specks: usize,
    /// What the page was measured to be like (what the cleaning decisions rest on).
    pub measures: Measures,
    /// The 3×3 median was applied.
    pub median: bool,
}

/// Properties of a page measured before anything is done to it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measures {
    /// Typical stroke thickness, in pixels: the median length of dark runs across strokes.
    pub stroke_px: f32,
    /// Grain of the paper: mean absolute difference of neighbouring paper pixels, in gray
    /// levels (0 on a clean rendering; scanner noise and JPEG artefacts raise it).
    pub grain: f32,
    /// Nearly every pixel is pure black or white (a fax or 1-bit scan).
    pub bilevel: bool,
    /// The text stands in columns: an empty gutter runs down the middle of the text.
    pub columns: bool,
    /// Long straight rules cross the page (a table's grid).
    pub ruled: bool,
}

impl Measures {
    /// How much a 3×3 median may do for the page: its grain (what the median takes out)
    /// times its strokes' thickness beyond one pixel (what survives the median: a stroke one
    /// pixel thick is erased by it, a thick one barely touched).
    pub fn median_score(&self) -> f32 {
        self.grain * (self.stroke_px - 1.0).max(0.0)
    }

    /// Whether the page is laid out in more than one block side by side (columns, a
    /// table), so that tesseract's layout analysis must find the blocks; a page of plain
    /// running text reads better as one block (measured on the samples: 1.8 % CER as one
    /// block, 3.2 % with the layout analysis, which splits and misreads short lines).
    pub fn needs_layout(&self) -> bool {
        self.columns || self.ruled
    }
}

/// Prepares a page for OCR.
pub fn prepare(page: GrayImage, cfg: &PreprocessConfig) -> Prepared {
    let small = reduce(&page, REDUCE);
    let threshold = otsu(&small);
    let ink = dark_points(&small, threshold);
    let total = (small.width() * small.height()).max(1) as f64;
    if (ink.len() as f64) / total < BLANK_INK_FRACTION && !holds_a_mark(&ink) {
        return Prepared {
            image: page,
            blank: true,
            sideways: false,
            skew_deg: 0.0,
            light_corrected: false,
            specks: 0,
            measures: Measures::default(),
            median: false,
        };
    }
    let mut measures = measure(&page, threshold);
    let (mut image, light_corrected) = match background(&small) {
        Some(bg) => (flatten(&page, &bg), true),
        None => (page, false),
    };
    let dpi = infer_dpi(&image);
    let specks = despeckle(&mut image, threshold, dpi);
    // A median smooths grain and JPEG artefacts of gray scans; on bilevel (fax) scans, on
    // clean pages and on thin strokes it only erodes the characters (measured: a clean
    // 150-dpi 宋体 page read 25 % CER with it, 2 % without), so only a grainy page whose
    // strokes are thick enough to survive it gets it.
    let median = cfg.median && !measures.bilevel && measures.median_score() >= cfg.median_min_score;
    if median {
        image = median3(&image);
    }
    // Text lines leave empty gaps between them across the page; characters leave only
    // narrow ones. Compare the gaps of the best row profile with those of the best column
    // profile, each at its own best angle so that skew does not hide them.
    let rows = best_angle(&ink, small.height(), false, cfg);
    let cols = best_angle(&ink, small.width(), true, cfg);
    let row_gaps = gap_fraction(&profile(&ink, small.height(), rows.0, false));
    let col_gaps = gap_fraction(&profile(&ink, small.width(), cols.0, true));
    let sideways = col_gaps > SIDEWAYS_MIN_GAPS && col_gaps > 1.5 * row_gaps;
    let (angle, straight_score, best_score) = if sideways {
        image = image::imageops::rotate90(&image);
        // Turning the page clockwise turns the column profile into the row profile.
        (cols.0, cols.2, cols.1)
    } else {
        (rows.0, rows.2, rows.1)
    };
    let skew = if angle.abs() < f64::from(cfg.min_skew_deg) || best_score < straight_score * SKEW_GAIN {
        0.0
    } else {
        angle as f32
    };
    if skew != 0.0 {
        image = rotate(&image, skew);
    }
    (measures.columns, measures.ruled) = layout(&image, threshold);
    Prepared { image, blank: false, sideways, skew_deg: skew, light_corrected, specks, measures, median }
}

/// Share of the page's width an empty band between two columns of text spans at least
/// (about 6 mm on A4): far wider than the gaps between characters, which line up down a
/// page of Chinese print.
const GUTTER_MIN_WIDTH: f64 = 0.03;
/// A column of the page is empty when it holds less than this share of the typical ink
/// of a column of text (a centred title crossing the gutter adds a little).
const GUTTER_MAX_INK: f64 = 0.05;
/// A rule is a dark run at least this share of the page's width long …
const RULE_MIN_LENGTH: f64 = 0.3;
/// … and a table has at least this many.
const TABLE_MIN_RULES: usize = 3;

/// Whether the straightened page stands in columns, and whether it is ruled like a table
/// (at full resolution: a table's rules are often a single pixel thick).
fn layout(page: &GrayImage, threshold: u8) -> (bool, bool) {
    let (w, h) = (page.width() as usize, page.height() as usize);
    let raw = page.as_raw();
    let ink = threshold.min(160);
    let dark = |v: u8| v <= ink;
    // A thin rule blurred by the scanner is lighter than the strokes of the text: anything
    // clearly darker than the paper counts for a rule.
    let rule_dark = |v: u8| v <= ink + (255 - ink) / 2;
    let mut per_column = vec![0u32; w];
    let mut rules = 0usize;
    let min_rule = (w as f64 * RULE_MIN_LENGTH) as usize;
    let mut last_rule_row = None;
    for y in 0..h {
        let row = &raw[y * w..(y + 1) * w];
        let mut run = 0usize;
        let mut longest = 0usize;
        for (x, &v) in row.iter().enumerate() {
            if dark(v) {
                per_column[x] += 1;
            }
            if rule_dark(v) {
                run += 1;
                longest = longest.max(run);
            } else {
                run = 0;
            }
        }
        // A rule a few analysis rows thick counts once.
        if longest >= min_rule.max(1) {
            if last_rule_row.is_none_or(|r: usize| y > r + 4) {
                rules += 1;
            }
            last_rule_row = Some(y);
        }
    }
    let ruled = rules >= TABLE_MIN_RULES;
    let (Some(first), Some(last)) = (per_column.iter().position(|&c| c > 0), per_column.iter().rposition(|&c| c > 0))
    else {
        return (false, ruled);
    };
    let span = &per_column[first..=last];
    let mut sorted: Vec<u32> = span.iter().copied().filter(|&c| c > 0).collect();
    sorted.sort_unstable();
    let typical = f64::from(sorted.get(sorted.len() * 3 / 4).copied().unwrap_or(0));
    let min_gutter = ((w as f64) * GUTTER_MIN_WIDTH).ceil() as usize;
    // Only a gap inside the middle of the text: margins and indents are not gutters.
    let (lo, hi) = (span.len() / 5, span.len() * 4 / 5);
    let mut run = 0usize;
    let mut columns = false;
    for (i, &c) in span.iter().enumerate() {
        if f64::from(c) <= typical * GUTTER_MAX_INK {
            run += 1;
            if run >= min_gutter && i >= lo && i + 1 - run <= hi {
                columns = true;
                break;
            }
        } else {
            run = 0;
        }
    }
    (columns, ruled)
}

/// Measures stroke thickness and paper grain on every third row and column of the page.
fn measure(page: &GrayImage, threshold: u8) -> Measures {
    let (w, h) = (page.width() as usize, page.height() as usize);
    let raw = page.as_raw();
    let dark = |v: u8| v <= threshold;
    let mut across = Vec::new();
    let mut down = Vec::new();
    let (mut grain_sum, mut grain_n) = (0u64, 0u64);
    // A run longer than this is a ruling, a block or a fax's black border, not a stroke.
    const LONGEST: usize = 40;
    let push = |runs: &mut Vec<u16>, run: usize| {
        if (1..=LONGEST).contains(&run) {
            runs.push(run as u16);
        }
    };
    for y in (0..h).step_by(3) {
        let row = &raw[y * w..(y + 1) * w];
        let mut run = 0;
        for x in 0..w {
            if dark(row[x]) {
                run += 1;
            } else {
                push(&mut across, run);
                run = 0;
                // Paper next to paper: how much it varies is its grain.
                if x + 1 < w && !dark(row[x + 1]) && row[x] > threshold.saturating_add(30) {
                    grain_sum += u64::from(row[x].abs_diff(row[x + 1]));
                    grain_n += 1;
                }
            }
        }
        push(&mut across, run);
    }
    for x in (0..w).step_by(3) {
        let mut run = 0;
        for y in 0..h {
            if dark(raw[y * w + x]) {
                run += 1;
            } else {
                push(&mut down, run);
                run = 0;
            }
        }
        push(&mut down, run);
    }
    let median = |v: &mut Vec<u16>| {
        if v.is_empty() {
            return 0.0;
        }
        let mid = v.len() / 2;
        f32::from(*v.select_nth_unstable(mid).1)
    };
    let stroke_px = median(&mut across).min(median(&mut down));
    let grain = if grain_n == 0 { 0.0 } else { grain_sum as f32 / grain_n as f32 };
    Measures { stroke_px, grain, bilevel: is_bilevel(page), columns: false, ruled: false }
}

/// The resolution to declare for a page: scans rarely carry a trustworthy one, so it is
/// inferred from the width of an A4-like page and otherwise assumed to be 300 dpi.
pub fn infer_dpi(img: &GrayImage) -> u32 {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (short, long) = (w.min(h), w.max(h));
    let a4 = 297.0 / 210.0;
    if (long / short - a4).abs() < 0.15 {
        ((short / 8.27).round() as u32).clamp(150, 600)
    } else {
        300
    }
}

/// Box-averaged reduction by `f`.
fn reduce(img: &GrayImage, f: u32) -> GrayImage {
    let (w, h) = ((img.width() / f).max(1), (img.height() / f).max(1));
    let raw = img.as_raw();
    let stride = img.width() as usize;
    let mut out = vec![0u8; (w * h) as usize];
    for y in 0..h as usize {
        for x in 0..w as usize {
            let mut sum = 0u32;
            let mut n = 0u32;
            for dy in 0..f as usize {
                let row = (y * f as usize + dy) * stride;
                for dx in 0..f as usize {
                    if let Some(v) = raw.get(row + x * f as usize + dx) {
                        sum += u32::from(*v);
                        n += 1;
                    }
                }
            }
            out[y * w as usize + x] = (sum / n.max(1)) as u8;
        }
    }
    GrayImage::from_raw(w, h, out).unwrap_or_else(|| GrayImage::new(1, 1))
}

/// Otsu's threshold of a gray image.
fn otsu(img: &GrayImage) -> u8 {
    let mut hist = [0u64; 256];
    for &v in img.as_raw() {
        hist[v as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let sum_all: f64 = hist.iter().enumerate().map(|(i, &c)| i as f64 * c as f64).sum();
    let (mut w_b, mut sum_b, mut best, mut best_t) = (0f64, 0f64, -1f64, 128u8);
    for (t, &count) in hist.iter().enumerate() {
        w_b += count as f64;
        if w_b == 0.0 {
            continue;
        }
        let w_f = total as f64 - w_b;
        if w_f == 0.0 {
            break;
        }
        sum_b += t as f64 * count as f64;
        let (m_b, m_f) = (sum_b / w_b, (sum_all - sum_b) / w_f);
        let between = w_b * w_f * (m_b - m_f) * (m_b - m_f);
        if between > best {
            best = between;
            best_t = t as u8;
        }
    }
    best_t
}

/// Coordinates of dark pixels, relative to the image centre, ignoring a margin where scan
/// edges and punch holes live.
/// Whether the little ink of a nearly empty page gathers into a mark a person could read
/// (a word, a signature) rather than dust scattered over the page: enough points, and dense
/// within their bounding box.
fn holds_a_mark(ink: &[(f32, f32)]) -> bool {
    if ink.len() < MARK_MIN_POINTS {
        return false;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for &(x, y) in ink {
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    let area = f64::from((x1 - x0 + 1.0) * (y1 - y0 + 1.0));
    ink.len() as f64 / area >= MARK_MIN_DENSITY
}

fn dark_points(img: &GrayImage, threshold: u8) -> Vec<(f32, f32)> {
    let (w, h) = (img.width(), img.height());
    let (mx, my) = (w / 25, h / 25);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let mut pts = Vec::new();
    for y in my..h.saturating_sub(my) {
        for x in mx..w.saturating_sub(mx) {
            if img.get_pixel(x, y).0[0] <= threshold.min(160) {
                pts.push((x as f32 - cx, y as f32 - cy));
            }
        }
    }
    pts
}

/// Projection profile of `pts` rotated by `deg`: ink per row (or per column when
/// `columns`), in bins one analysis pixel apart.
fn profile(pts: &[(f32, f32)], extent: u32, deg: f64, columns: bool) -> Vec<u32> {
    let (s, c) = (deg.to_radians().sin() as f32, deg.to_radians().cos() as f32);
    let n = extent as usize * 2 + 2;
    let offset = extent as f32;
    let mut bins = vec![0u32; n];
    for &(x, y) in pts {
        let v = if columns { x * c + y * s } else { y * c - x * s };
        let i = (v + offset).round();
        if i >= 0.0 && (i as usize) < n {
            bins[i as usize] += 1;
        }
    }
    bins
}

/// Sharpness of a profile: the sum of squared differences between neighbouring bins. Text
/// lines aligned with the bins give tall peaks and empty gaps, hence large differences.
fn sharpness(bins: &[u32]) -> f64 {
    bins.windows(2)
        .map(|w| {
            let d = f64::from(w[1]) - f64::from(w[0]);
            d * d
        })
        .sum()
}

/// Fraction of (nearly) empty bins between the first and the last inked bin.
fn gap_fraction(bins: &[u32]) -> f64 {
    let (Some(first), Some(last)) = (bins.iter().position(|&b| b > 0), bins.iter().rposition(|&b| b > 0)) else {
        return 0.0;
    };
    let span = &bins[first..=last];
    let mean = span.iter().map(|&b| f64::from(b)).sum::<f64>() / span.len() as f64;
    span.iter().filter(|&&b| f64::from(b) < 0.05 * mean).count() as f64 / span.len() as f64
}

/// The angle within ±`max_skew_deg` whose profile is sharpest: (angle, its sharpness, the
/// sharpness at 0°). Coarse steps of 0.25°, then 0.025° around the best.
fn best_angle(pts: &[(f32, f32)], extent: u32, columns: bool, cfg: &PreprocessConfig) -> (f64, f64, f64) {
    let score = |d: f64| sharpness(&profile(pts, extent, d, columns));
    let straight = score(0.0);
    if pts.len() < 200 {
        return (0.0, straight, straight);
    }
    let max = f64::from(cfg.max_skew_deg);
    let mut best = (0.0f64, straight);
    let steps = (max / 0.25).ceil() as i32;
    for i in -steps..=steps {
        let d = f64::from(i) * 0.25;
        let s = score(d);
        if s > best.1 {
            best = (d, s);
        }
    }
    let centre = best.0;
    for i in -10..=10 {
        let d = centre + f64::from(i) * 0.025;
        if d.abs() <= max {
            let s = score(d);
            if s > best.1 {
                best = (d, s);
            }
        }
    }
    (best.0, best.1, straight)
}

/// Paints over isolated specks: 8-connected components of pixels at or below `threshold`
/// with at most `SPECK_MAX_AREA` pixels inside a `SPECK_MAX_SIDE` box and no other ink
/// within `SPECK_CLEARANCE` of them (all scaled from 300 dpi to `dpi`). The clearance is
/// what tells dust from the dots of a character: the three dots of 氵 in a thin typeface
/// at 200 dpi are as small as dust, but stand beside the rest of their character (measured:
/// without it, a thin-stroked fax page lost the water radical of 涉 源 湾 河 and read
/// 12.6 % CER against the tesseract command line's 1.7 %). Returns how many.
fn despeckle(img: &mut GrayImage, threshold: u8, dpi: u32) -> usize {
    let scale = f64::from(dpi) / 300.0;
    let max_area = ((SPECK_MAX_AREA as f64) * scale * scale).round().max(1.0) as usize;
    let max_side = ((f64::from(SPECK_MAX_SIDE)) * scale).round().max(1.0) as usize;
    let clearance = ((f64::from(SPECK_CLEARANCE)) * scale).round().max(1.0) as usize;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_mut();
    let mut seen = vec![false; w * h];
    let mut stack = Vec::new();
    let mut members = Vec::with_capacity(max_area + 1);
    let mut removed = 0;
    for start in 0..w * h {
        if seen[start] || raw[start] > threshold {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        members.clear();
        let (mut x0, mut y0, mut x1, mut y1) = (start % w, start / w, start % w, start / w);
        let mut area = 0usize;
        while let Some(i) = stack.pop() {
            area += 1;
            if members.len() <= max_area {
                members.push(i);
            }
            let (x, y) = (i % w, i / w);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            for dy in [-1isize, 0, 1] {
                for dx in [-1isize, 0, 1] {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if !seen[j] && raw[j] <= threshold {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        let small_box = x1 - x0 < max_side && y1 - y0 < max_side;
        if area <= max_area && small_box && alone(raw, w, h, (x0, y0, x1, y1), threshold, clearance, &members) {
            for &i in &members {
                raw[i] = 255;
            }
            removed += 1;
        }
    }
    removed
}

/// Whether no dark pixel other than the component's own lies within `clearance` of its box.
fn alone(
    raw: &[u8],
    w: usize,
    h: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    threshold: u8,
    clearance: usize,
    members: &[usize],
) -> bool {
    let (ax, ay) = (x0.saturating_sub(clearance), y0.saturating_sub(clearance));
    let (bx, by) = ((x1 + clearance).min(w - 1), (y1 + clearance).min(h - 1));
    for y in ay..=by {
        for x in ax..=bx {
            let i = y * w + x;
            // Outside its own small box no dark pixel is the component's; inside it, the
            // few members are looked up.
            let own_box = (x0..=x1).contains(&x) && (y0..=y1).contains(&y);
            if raw[i] <= threshold && (!own_box || !members.contains(&i)) {
                return false;
            }
        }
    }
    true
}

/// Whether nearly every pixel is pure black or white (a 1-bit scan, possibly flattened).
fn is_bilevel(img: &GrayImage) -> bool {
    let raw = img.as_raw();
    let other = raw.iter().step_by(7).filter(|&&v| v != 0 && v != 255).count();
    other * 100 < raw.len() / 7
}

/// 3x3 median filter (edges copied): removes pixel noise and JPEG ringing while keeping
/// stroke edges. Uses the 19-exchange median-of-9 network, which has no branches.
fn median3(img: &GrayImage) -> GrayImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 3 || h < 3 {
        return img.clone();
    }
    let src = img.as_raw();
    let mut out = src.clone();
    for y in 1..h - 1 {
        let (up, mid, down) = (&src[(y - 1) * w..y * w], &src[y * w..(y + 1) * w], &src[(y + 1) * w..(y + 2) * w]);
        let row = &mut out[y * w..(y + 1) * w];
        for x in 1..w - 1 {
            let mut p =
                [up[x - 1], up[x], up[x + 1], mid[x - 1], mid[x], mid[x + 1], down[x - 1], down[x], down[x + 1]];
            row[x] = median9(&mut p);
        }
    }
    GrayImage::from_raw(img.width(), img.height(), out).unwrap_or_else(|| img.clone())
}

/// The median of nine values (Paeth's exchange network), on locals so that it compiles to
/// straight-line min/max code.
fn median9(p: &mut [u8; 9]) -> u8 {
    let [mut p0, mut p1, mut p2, mut p3, mut p4, mut p5, mut p6, mut p7, mut p8] = *p;
    macro_rules! op {
        ($a:ident, $b:ident) => {{
            let lo = $a.min($b);
            $b = $a.max($b);
            $a = lo;
        }};
    }
    op!(p1, p2);
    op!(p4, p5);
    op!(p7, p8);
    op!(p0, p1);
    op!(p3, p4);
    op!(p6, p7);
    op!(p1, p2);
    op!(p4, p5);
    op!(p7, p8);
    op!(p0, p3);
    op!(p5, p8);
    op!(p4, p7);
    op!(p3, p6);
    op!(p1, p4);
    op!(p2, p5);
    op!(p4, p7);
    op!(p4, p2);
    op!(p6, p4);
    op!(p4, p2);
    *p = [p0, p1, p2, p3, p4, p5, p6, p7, p8];
    p4
}

/// Rotates by `deg` about the centre with bilinear sampling; uncovered corners become white.
pub fn rotate(img: &GrayImage, deg: f32) -> GrayImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (s, c) = (deg.to_radians().sin(), deg.to_radians().cos());
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let src = img.as_raw();
    let mut out = vec![255u8; src.len()];
    let at = |x: isize, y: isize| -> f32 {
        if x < 0 || y < 0 || x as usize >= w || y as usize >= h {
            255.0
        } else {
            f32::from(src[y as usize * w + x as usize])
        }
    };
    for (y, row) in out.chunks_exact_mut(w).enumerate() {
        let dy = y as f32 - cy;
        // Inverse mapping, stepped along the row: source = R(deg) * (output - centre) + centre.
        let (mut sx, mut sy) = (-cx * c - dy * s + cx, -cx * s + dy * c + cy);
        for px in row.iter_mut() {
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (xi, yi) = (x0 as isize, y0 as isize);
            let v = if xi >= 0 && yi >= 0 && (xi as usize) + 1 < w && (yi as usize) + 1 < h {
                let i = yi as usize * w + xi as usize;
                let (a, b) = (f32::from(src[i]), f32::from(src[i + 1]));
                let (d, e) = (f32::from(src[i + w]), f32::from(src[i + w + 1]));
                (a + (b - a) * fx) * (1.0 - fy) + (d + (e - d) * fx) * fy
            } else {
                let top = at(xi, yi) * (1.0 - fx) + at(xi + 1, yi) * fx;
                let bottom = at(xi, yi + 1) * (1.0 - fx) + at(xi + 1, yi + 1) * fx;
                top * (1.0 - fy) + bottom * fy
            };
            *px = v.round().clamp(0.0, 255.0) as u8;
            sx += c;
            sy += s;
        }
    }
    GrayImage::from_raw(img.width(), img.height(), out).unwrap_or_else(|| img.clone())
}

/// A smooth estimate of the paper's brightness on a coarse grid (one cell per 8×8 analysis
/// pixels), or `None` when the lighting is even enough to leave alone.
fn background(small: &GrayImage) -> Option<GrayImage> {
    const CELL: u32 = 8;
    let (gw, gh) = (small.width().div_ceil(CELL), small.height().div_ceil(CELL));
    let mut grid = vec![0u8; (gw * gh) as usize];
    let mut vals = Vec::with_capacity((CELL * CELL) as usize);
    for gy in 0..gh {
        for gx in 0..gw {
            vals.clear();
            for y in gy * CELL..((gy + 1) * CELL).min(small.height()) {
                for x in gx * CELL..((gx + 1) * CELL).min(small.width()) {
                    vals.push(small.get_pixel(x, y).0[0]);
                }
            }
            vals.sort_unstable();
            // The paper is the bright majority: a high percentile ignores the ink.
            grid[(gy * gw + gx) as usize] = vals.get(vals.len() * 9 / 10).copied().unwrap_or(255);
        }
    }
    // Smooth with a 5x5 median-of-maxima to ignore cells filled by dense text.
    let mut smooth = grid.clone();
    for gy in 0..gh as i64 {
        for gx in 0..gw as i64 {
            let mut win = Vec::with_capacity(25);
            for dy in -2..=2 {
                for dx in -2..=2 {
                    let (x, y) = (gx + dx, gy + dy);
                    if x >= 0 && y >= 0 && x < gw as i64 && y < gh as i64 {
                        win.push(grid[(y * gw as i64 + x) as usize]);
                    }
                }
            }
            win.sort_unstable();
            smooth[(gy * gw as i64 + gx) as usize] = win[win.len() * 3 / 4];
        }
    }
    let (lo, hi) = smooth.iter().fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi.saturating_sub(lo) < UNEVEN_LIGHT_RANGE || hi < 64 {
        return None;
    }
    GrayImage::from_raw(gw, gh, smooth)
}

/// Divides the page by its background (bilinearly interpolated from the grid).
fn flatten(page: &GrayImage, bg: &GrayImage) -> GrayImage {
    let (w, h) = (page.width(), page.height());
    let (sx, sy) = (bg.width() as f32 / w as f32, bg.height() as f32 / h as f32);
    let mut out = page.clone();
    let bgw = bg.width() as usize;
    let braw = bg.as_raw();
    for y in 0..h {
        let gy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (bg.height() - 1) as f32);
        let (y0, fy) = (gy.floor() as usize, gy.fract());
        let y1 = (y0 + 1).min(bg.height() as usize - 1);
        for x in 0..w {
            let gx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (bg.width() - 1) as f32);
            let (x0, fx) = (gx.floor() as usize, gx.fract());
            let x1 = (x0 + 1).min(bgw - 1);
            let at = |xx: usize, yy: usize| f32::from(braw[yy * bgw + xx]);
            let b = (at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx) * (1.0 - fy)
                + (at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx) * fy;
            let p = out.get_pixel_mut(x, y);
            p.0[0] = (f32::from(p.0[0]) * 255.0 / b.max(16.0)).min(255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic page laid out like Chinese print: 44 px "glyphs" 6 px apart on lines
    /// 80 px apart, each glyph a few horizontal and vertical strokes at pseudo-random places
    /// (real glyphs do not line up their strokes from one line to the next).
    fn lined_page(w: u32, h: u32) -> GrayImage {
        let mut img = GrayImage::from_pixel(w, h, image::Luma([250]));
        let mut seed = 12345u32;
        let mut next = |n: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) % n
        };
        for line in 0..22 {
            let top = 200 + line * 80;
            for glyph in 0..((w - 400) / 50) {
                let left = 200 + glyph * 50;
                for _ in 0..3 {
                    let (hy, vx) = (next(40), next(40));
                    for d in 0..44 {
                        for t in 0..4 {
                            img.put_pixel(left + d, (top + hy + t).min(h - 1), image::Luma([20]));
                            img.put_pixel(left + vx + t, (top + d).min(h - 1), image::Luma([20]));
                        }
                    }
                }
            }
        }
        img
    }

    const CFG: PreprocessConfig =
        PreprocessConfig { min_skew_deg: 0.4, max_skew_deg: 6.0, median: false, median_min_score: 0.0 };

    #[test]
    fn straight_page_is_left_alone() {
        let p = prepare(lined_page(1600, 2200), &CFG);
        assert!(!p.blank && !p.sideways);
        assert_eq!(p.skew_deg, 0.0);
    }

    #[test]
    fn skewed_page_is_measured_and_corrected() {
        let skewed = rotate(&lined_page(1600, 2200), 2.5);
        let p = prepare(skewed, &CFG);
        assert!((p.skew_deg + 2.5).abs() < 0.3, "estimated {}", p.skew_deg);
    }

    #[test]
    fn blank_page_is_detected() {
        let p = prepare(GrayImage::from_pixel(1200, 1600, image::Luma([240])), &CFG);
        assert!(p.blank);
    }

    #[test]
    fn two_small_letters_on_an_empty_page_are_not_a_blank_page() {
        let mut page = GrayImage::from_pixel(1254, 749, image::Luma([255]));
        for y in 292..312 {
            for x in 454..490 {
                if (x + y) % 3 != 0 {
                    page.put_pixel(x, y, image::Luma([0]));
                }
            }
        }
        assert!(!prepare(page.clone(), &CFG).blank, "a word a person can read is read");
        // The same ink scattered as dust over the page is nothing to read.
        let mut dusty = GrayImage::from_pixel(1254, 749, image::Luma([255]));
        for i in 0..20u32 {
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                dusty.put_pixel(60 + i * 57 + dx, 40 + i * 33 + dy, image::Luma([0]));
            }
        }
        assert!(prepare(dusty, &CFG).blank);
    }

    #[test]
    fn sideways_page_is_detected() {
        let page = image::imageops::rotate90(&lined_page(1600, 2200));
        assert!(prepare(page, &CFG).sideways);
    }

    #[test]
    fn columns_and_tables_are_told_from_running_text() {
        let plain = prepare(lined_page(1600, 2200), &CFG);
        assert!(!plain.measures.needs_layout(), "{:?}", plain.measures);
        // The same page with an empty gutter down its middle stands in two columns.
        let mut two = lined_page(1600, 2200);
        for y in 0..2200 {
            for x in 760..860 {
                two.put_pixel(x, y, image::Luma([250]));
            }
        }
        let two = prepare(two, &CFG);
        assert!(two.measures.columns && !two.measures.ruled, "{:?}", two.measures);
        // Four rules across the page make a table.
        let mut table = lined_page(1600, 2200);
        for top in [300, 700, 1100, 1500] {
            for y in top..top + 4 {
                for x in 200..1400 {
                    table.put_pixel(x, y, image::Luma([0]));
                }
            }
        }
        assert!(prepare(table, &CFG).measures.ruled);
    }

    #[test]
    fn a_grainy_page_with_thick_strokes_is_smoothed_a_clean_or_thin_one_is_not() {
        let cfg = PreprocessConfig { median: true, median_min_score: 5.0, ..CFG };
        let clean = prepare(lined_page(1600, 2200), &cfg);
        assert!(!clean.median, "{:?}", clean.measures);
        // Grain over the paper: neighbouring pixels differ by about 20 gray levels.
        let mut grainy = lined_page(1600, 2200);
        let mut seed = 99u32;
        for p in grainy.pixels_mut() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if p.0[0] > 200 {
                p.0[0] = 210 + ((seed >> 16) % 40) as u8;
            }
        }
        let grainy = prepare(grainy, &cfg);
        assert!(grainy.measures.grain > 5.0 && grainy.measures.stroke_px >= 3.0, "{:?}", grainy.measures);
        assert!(grainy.median);
    }

    #[test]
    fn dpi_is_inferred_from_a4_width() {
        assert_eq!(infer_dpi(&GrayImage::new(2480, 3508)), 300);
        assert_eq!(infer_dpi(&GrayImage::new(1654, 2339)), 200);
        assert_eq!(infer_dpi(&GrayImage::new(1000, 1000)), 300);
    }

    #[test]
    fn median_of_nine_is_the_middle_value() {
        let mut seed = 7u32;
        for _ in 0..1000 {
            let mut p = [0u8; 9];
            for v in p.iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *v = (seed >> 16) as u8;
            }
            let mut sorted = p;
            sorted.sort_unstable();
            assert_eq!(median9(&mut p), sorted[4], "{p:?}");
        }
    }

    #[test]
    fn specks_are_removed_but_strokes_and_dots_kept() {
        let mut img = GrayImage::from_pixel(200, 200, image::Luma([250]));
        img.put_pixel(10, 10, image::Luma([0]));
        for (x, y) in [(50, 50), (51, 50), (50, 51), (51, 51)] {
            img.put_pixel(x, y, image::Luma([0]));
        }
        // A punctuation-sized dot (8x8) and a stroke (40x4) stay.
        for y in 100..108 {
            for x in 100..108 {
                img.put_pixel(x, y, image::Luma([0]));
            }
        }
        for y in 150..154 {
            for x in 20..60 {
                img.put_pixel(x, y, image::Luma([0]));
            }
        }
        // A dot as small as a speck beside a stroke (the dots of 氵 beside their character).
        for (x, y) in [(120, 150), (121, 150), (120, 151), (121, 151)] {
            img.put_pixel(x, y, image::Luma([0]));
        }
        for y in 140..170 {
            for x in 124..127 {
                img.put_pixel(x, y, image::Luma([0]));
            }
        }
        assert_eq!(despeckle(&mut img, 128, 300), 2);
        assert_eq!(img.get_pixel(120, 150).0[0], 0, "a character's dot is not dust");
        assert_eq!(img.get_pixel(10, 10).0[0], 255);
        assert_eq!(img.get_pixel(104, 104).0[0], 0);
        assert_eq!(img.get_pixel(40, 152).0[0], 0);
    }

    #[test]
    fn uneven_light_is_flattened() {
        let mut page = lined_page(1600, 2200);
        for (x, _, p) in page.enumerate_pixels_mut() {
            let shade = 1.0 - 0.45 * (x as f32 / 1600.0);
            p.0[0] = (f32::from(p.0[0]) * shade) as u8;
        }
        let p = prepare(page, &CFG);
        assert!(p.light_corrected);
        // The dim right edge of the paper is bright again.
        assert!(p.image.get_pixel(1500, 100).0[0] > 200, "{}", p.image.get_pixel(1500, 100).0[0]);
    }
}

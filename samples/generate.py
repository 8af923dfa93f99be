#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Generate the fictitious sample letters (scans, PDFs, typed texts) and their ground truth.

Usage (from anywhere):

    python3 samples/generate.py            # writes everything under samples/
    python3 samples/generate.py --check    # also verifies PDFs with poppler (pdfimages, pdftotext)

Deterministic: every random choice comes from fixed seeds, so re-running rewrites the same bytes.
Old outputs under samples/scans, samples/truth and samples/text are removed first.

Needs Python 3.9+ with Pillow (built with libtiff), numpy and fpdf2, and these Debian fonts:

    fonts-arphic-uming       AR PL UMing CN        (明)   /usr/share/fonts/truetype/arphic/uming.ttc
    fonts-arphic-ukai        AR PL UKai CN         (楷)   /usr/share/fonts/truetype/arphic/ukai.ttc
    fonts-arphic-gbsn00lp    AR PL SungtiL GB      (宋)   /usr/share/fonts/truetype/arphic-gbsn00lp/gbsn00lp.ttf
    fonts-arphic-gkai00mp    AR PL KaitiM GB       (楷)   /usr/share/fonts/truetype/arphic-gkai00mp/gkai00mp.ttf
    fonts-lxgw-wenkai        LXGW WenKai           (文楷) /usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf
    fonts-wqy-zenhei         WenQuanYi Zen Hei     (黑)   /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
    fonts-noto-cjk           Noto Serif CJK SC     (宋)   /usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc
    (the PDF with a text layer embeds a subset of LXGW WenKai; Droid Sans Fallback lacks ASCII digits)

What it writes (see manifest.json for the per-file details):

    scans/*.png, *.jpg          single pages, A4 at 300 dpi (2480x3508), 8-bit gray or RGB
    scans/*.tif                 multi-page TIFF: CCITT Group 4 (1-bit) and 8-bit gray Deflate
    scans/*.pdf                 image-only PDFs written by hand: DCTDecode, FlateDecode with PNG
                                predictors, CCITTFaxDecode G4; plus one PDF with a real text
                                layer (an online report form, made with fpdf2)
    scans/<stem>/page-NN.*      one letter scanned page by page into a folder
    truth/<stem>.pN.txt         UTF-8 ground truth of page N, one rendered line per line
                                (empty file for the blank back side)
    text/*.txt                  already-typed online reports
    manifest.json               one entry per sample

Degradation levels: clean; mild (skew within +-1 deg, light noise, slight blur);
poor (skew 1.5-3 deg, blur, noise, specks, uneven lighting, JPEG q45-75).
"""

import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep samples/ free of __pycache__

try:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont, TiffImagePlugin
except ImportError as e:  # pragma: no cover
    sys.exit(f"generate.py: missing Python package ({e}); run: pip install pillow numpy fpdf2")

from letters import LETTERS, ONLINE_FORM, TEXTS  # noqa: E402

# ---------------------------------------------------------------------------------------------
# fonts
FONTS = {
    # key: (path, ttc index, family, debian package)
    "ming": ("/usr/share/fonts/truetype/arphic/uming.ttc", 0, "AR PL UMing CN", "fonts-arphic-uming"),
    "kai": ("/usr/share/fonts/truetype/arphic/ukai.ttc", 0, "AR PL UKai CN", "fonts-arphic-ukai"),
    "song": ("/usr/share/fonts/truetype/arphic-gbsn00lp/gbsn00lp.ttf", 0, "AR PL SungtiL GB", "fonts-arphic-gbsn00lp"),
    "kaitim": ("/usr/share/fonts/truetype/arphic-gkai00mp/gkai00mp.ttf", 0, "AR PL KaitiM GB", "fonts-arphic-gkai00mp"),
    "wenkai": ("/usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf", 0, "LXGW WenKai", "fonts-lxgw-wenkai"),
    "hei": ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0, "WenQuanYi Zen Hei", "fonts-wqy-zenhei"),
    "notoserif": ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2, "Noto Serif CJK SC", "fonts-noto-cjk"),
}
PDF_TEXT_FONT = ("/usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf", "LXGW WenKai", "fonts-lxgw-wenkai")


def check_fonts():
    missing = [(k, p, pkg) for k, (p, _i, _f, pkg) in FONTS.items() if not os.path.exists(p)]
    if not os.path.exists(PDF_TEXT_FONT[0]):
        missing.append(("pdf-text", PDF_TEXT_FONT[0], PDF_TEXT_FONT[2]))
    if missing:
        lines = "\n".join(f"  {k}: {p}  (apt-get install {pkg})" for k, p, pkg in missing)
        sys.exit("generate.py: required font(s) missing:\n" + lines)


def load_font(key, size):
    path, index, family, _pkg = FONTS[key]
    f = ImageFont.truetype(path, size, index=index)
    got = f.getname()[0]
    if got != family:
        sys.exit(f"generate.py: {path} index {index} is {got!r}, expected {family!r}")
    return f


def check_glyphs(font, text, key):
    """Fail if the font lacks a glyph (it would render as .notdef and spoil the truth)."""
    def glyph(ch):
        im = Image.new("L", (font.size * 2, font.size * 2), 0)
        ImageDraw.Draw(im).text((0, 0), ch, font=font, fill=255)
        return im.tobytes()

    notdef = glyph("\U000F0000")  # private-use char: no font here has it
    empty = bytes(font.size * font.size * 4)
    bad = sorted({ch for ch in set(text) if not ch.isspace() and glyph(ch) in (notdef, empty)})
    if bad:
        sys.exit(f"generate.py: font {key} lacks glyphs for {''.join(bad)!r}")


# ---------------------------------------------------------------------------------------------
# page geometry
DPI = 300
PAGE_W, PAGE_H = 2480, 3508  # A4 at 300 dpi
A4_PT = (595.28, 841.89)

NO_START = set("，。、；：？！）」』》”’…%,.;:?!)")
NO_END = set("（「『《“‘(")
TOKEN_RE = re.compile(r"[A-Za-z0-9.%\-]+|.", re.S)


def wrap(text, font, width, indent):
    """Wrap by pixel width. CJK can break anywhere; Latin/digit runs are kept whole;
    no line starts with closing punctuation (it hangs into the margin instead) and no
    line ends with an opening bracket/quote."""
    lines, cur, cur_w, avail = [], "", 0.0, width - indent
    for tok in TOKEN_RE.findall(text):
        w = font.getlength(tok)
        if cur and cur_w + w > avail:
            if tok[0] in NO_START:  # hang punctuation
                cur += tok
                cur_w += w
                continue
            carry = ""
            while cur and cur[-1] in NO_END:
                carry = cur[-1] + carry
                cur = cur[:-1]
            lines.append(cur)
            avail = width
            cur, cur_w = carry + tok, font.getlength(carry + tok)
        else:
            cur += tok
            cur_w += w
    if cur:
        lines.append(cur)
    return lines


def layout(blocks, font, title_font, margin_l, margin_r, margin_t, margin_b, spacing):
    """Return pages: list of lists of (x, y, text, font)."""
    width = PAGE_W - margin_l - margin_r
    fs = font.size
    lh = int(round(fs * spacing))
    pages, cur, y = [], [], margin_t

    def newpage():
        nonlocal cur, y
        pages.append(cur)
        cur, y = [], margin_t

    def put(x, text, f, step):
        nonlocal y
        if y + step > PAGE_H - margin_b:
            newpage()
        cur.append((x, y, text, f))
        y += step

    for b in blocks:
        kind = b[0]
        if kind == "page":
            newpage()
        elif kind == "gap":
            y += b[1] * lh // 2
        elif kind == "title":
            tlh = int(round(title_font.size * spacing))
            for line in wrap(b[1], title_font, width - 2 * fs, 0):
                x = margin_l + (width - title_font.getlength(line)) / 2
                put(int(x), line, title_font, tlh)
        elif kind == "left":
            put(margin_l, b[1], font, lh)
        elif kind == "right":
            line = b[1]
            x = PAGE_W - margin_r - fs - font.getlength(line)
            if x < margin_l:
                raise ValueError(f"right-aligned line too long: {line}")
            put(int(x), line, font, lh)
        elif kind == "para":
            for i, line in enumerate(wrap(b[1], font, width, 2 * fs)):
                put(margin_l + (2 * fs if i == 0 else 0), line, font, lh)
        else:
            raise ValueError(kind)
    pages.append(cur)
    return [p for p in pages if p]


# The AR PL fonts have hairline strokes; a laser printer's toner spread makes them bolder on paper.
# Emulate it with a 1 px stroke (without it, tesseract reads clean UMing pages at about 6 % CER).
TONER_STROKE = {"ming": 1, "kai": 1, "song": 1, "kaitim": 1}


def render_page(items, paper, ink, stroke=0):
    img = Image.new("L", (PAGE_W, PAGE_H), paper)
    d = ImageDraw.Draw(img)
    for x, y, text, f in items:
        d.text((x, y), text, font=f, fill=ink, stroke_width=stroke, stroke_fill=ink)
    return img


# ---------------------------------------------------------------------------------------------
# degradations (all on 8-bit gray PIL images; rng is a numpy Generator)
def rotate(img, angle, fill):
    return img.rotate(angle, resample=Image.BICUBIC, expand=False, fillcolor=fill)


def add_noise(arr, rng, sigma, smooth=0.0):
    n = rng.normal(0.0, sigma, arr.shape).astype(np.float32)
    if smooth:  # slightly correlated noise, like a real sensor after JPEG
        n_img = Image.fromarray(np.clip(n * 4 + 128, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(smooth))
        n = (np.asarray(n_img, np.float32) - 128) / 4 * 1.6
    return arr + n


def specks(arr, rng, count, max_r, dark=True):
    h, w = arr.shape
    ys = rng.integers(0, h, count)
    xs = rng.integers(0, w, count)
    rs = rng.integers(1, max_r + 1, count)
    vals = rng.uniform(10, 90, count) if dark else rng.uniform(220, 255, count)
    for y, x, r, v in zip(ys, xs, rs, vals):
        y0, y1, x0, x1 = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        m = (yy - y) ** 2 + (xx - x) ** 2 <= r * r + rng.uniform(-1, 1)
        sub = arr[y0:y1, x0:x1]
        sub[m] = np.minimum(sub[m], v) if dark else np.maximum(sub[m], v)
    return arr


def lighting(arr, rng, strength):
    """Darken one side (or a corner) by `strength` (0.2-0.35) with a smooth ramp."""
    h, w = arr.shape
    side = rng.integers(0, 5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if side == 0:
        t = xx / w
    elif side == 1:
        t = 1 - xx / w
    elif side == 2:
        t = yy / h
    elif side == 3:
        t = 1 - yy / h
    else:  # vignette towards a corner
        t = np.sqrt((xx / w) ** 2 + (yy / h) ** 2) / math.sqrt(2)
    t = t ** 1.6
    return arr * (1.0 - strength * t)


def degrade(img, level, rng, paper, lossless):
    """Apply a degradation level. Returns (image, params dict)."""
    p = {"level": level}
    if level == "clean":
        return img, p
    if level == "mild":
        ang = float(rng.uniform(0.3, 1.0) * rng.choice([-1, 1]))
        img = rotate(img, ang, paper)
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 0.6))))
        arr = np.asarray(img, np.float32)
        arr = add_noise(arr, rng, 3.5)
        if lossless:  # scanner white point: paper clips to white, keeps PNG/TIFF/Flate small
            arr = np.where(arr > 238, 255, arr)
        p.update(angle=round(ang, 3))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), p
    if level == "poor":
        ang = float(rng.uniform(1.5, 3.0) * rng.choice([-1, 1]))
        img = rotate(img, ang, paper)
        blur = float(rng.uniform(0.9, 1.15))
        img = img.filter(ImageFilter.GaussianBlur(blur))
        arr = np.asarray(img, np.float32).copy()
        strength = float(rng.uniform(0.20, 0.35))
        arr = lighting(arr, rng, strength)
        arr = add_noise(arr, rng, 7.0, smooth=0.8)
        arr = specks(arr, rng, int(rng.integers(350, 700)), 3)
        arr = specks(arr, rng, int(rng.integers(1500, 2500)), 1)  # salt-and-pepper dust
        arr = specks(arr, rng, int(rng.integers(800, 1500)), 1, dark=False)
        p.update(angle=round(ang, 3), blur=round(blur, 2), lighting=round(strength, 2))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), p
    raise ValueError(level)


def blank_page(rng, paper):
    arr = np.full((PAGE_H, PAGE_W), paper, np.float32)
    arr = add_noise(arr, rng, 2.0, smooth=1.0)
    arr = specks(arr, rng, 40, 1)
    # faint show-through of the other side's ink: a few pale horizontal smudges
    for _ in range(6):
        y = int(rng.integers(300, PAGE_H - 300))
        x0 = int(rng.integers(250, 900))
        arr[y:y + 40, x0:x0 + int(rng.integers(600, 1400))] -= 3
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def to_bilevel(img, thr=128):
    return img.point(lambda v: 255 if v > thr else 0).convert("1", dither=Image.Dither.NONE)


def to_rgb_paper(img, rng):
    """Gray page -> RGB with a slightly yellowish paper tint."""
    a = np.asarray(img, np.float32) / 255.0
    tint = np.array([1.0, 0.975, 0.925], np.float32)
    rgb = 255.0 * (a[..., None] * tint + (1 - a[..., None]) * np.array([0.07, 0.07, 0.09], np.float32))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------------------------------------
# writers
def save_jpeg(img, path, quality):
    img.save(path, "JPEG", quality=quality, dpi=(DPI, DPI), optimize=True)


def jpeg_bytes(img, quality):
    b = io.BytesIO()
    img.save(b, "JPEG", quality=quality, dpi=(DPI, DPI), optimize=True)
    return b.getvalue()


def g4_strip(bw):
    """CCITT G4 data of a 1-bit image, taken from a single-strip TIFF written by libtiff."""
    TiffImagePlugin.WRITE_LIBTIFF = True
    b = io.BytesIO()
    # Pillow writes mode "1" as MinIsBlack by default, and then the fax codes' "white" runs are the
    # ink. Asking for MinIsWhite (262 = 0) makes Pillow invert the bits, so white runs are paper,
    # which is what /BlackIs1 false expects. One strip: RowsPerStrip (278) = height.
    bw.save(b, "TIFF", compression="group4", dpi=(DPI, DPI), tiffinfo={278: bw.height, 262: 0})
    data = b.getvalue()
    t = Image.open(io.BytesIO(data))
    offs, counts = t.tag_v2[273], t.tag_v2[279]
    if len(offs) != 1:
        sys.exit(f"generate.py: G4 TIFF has {len(offs)} strips, need 1")
    photometric = t.tag_v2.get(262)
    if photometric != 0:
        sys.exit(f"generate.py: expected a MinIsWhite G4 strip, got photometric {photometric}")
    return data[offs[0]:offs[0] + counts[0]]


def png_predict(arr, filters):
    """Encode rows with PNG predictors (bpp=1). filters: list of filter types used cyclically."""
    a = arr.astype(np.int16)
    h, w = a.shape
    up = np.vstack([np.zeros((1, w), np.int16), a[:-1]])
    left = np.hstack([np.zeros((h, 1), np.int16), a[:, :-1]])
    ul = np.hstack([np.zeros((h, 1), np.int16), up[:, :-1]])
    pa, pb, pc = np.abs(up - ul), np.abs(left - ul), np.abs(left + up - 2 * ul)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
    preds = {0: np.zeros_like(a), 1: left, 2: up, 3: (left + up) // 2, 4: paeth}
    out = np.empty((h, w + 1), np.uint8)
    for y in range(h):
        f = filters[y % len(filters)]
        out[y, 0] = f
        out[y, 1:] = ((a[y] - preds[f][y]) & 0xFF).astype(np.uint8)
    return out.tobytes()


def write_image_pdf(path, images):
    """images: list of (width, height, dict_entries:str, data:bytes). One full-page image per page,
    MediaBox A4 in points (landscape if the raster is landscape)."""
    objs = []  # index i -> object number i+1

    def add(body):
        objs.append(body)
        return len(objs)

    catalog = add(None)
    pages = add(None)
    kids = []
    for w, h, entries, data in images:
        pw, ph = A4_PT if h >= w else A4_PT[::-1]
        img = add(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d %s /Length %d >>\nstream\n"
                  % (w, h, entries.encode(), len(data)) + data + b"\nendstream")
        content = b"q %.2f 0 0 %.2f 0 0 cm /Im0 Do Q" % (pw, ph)
        cont = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        page = add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %.2f %.2f] /Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>"
                   % (pages, pw, ph, img, cont))
        kids.append(page)
    objs[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages
    objs[pages - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offsets:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, catalog, xref)
    with open(path, "wb") as fh:
        fh.write(out)


# ---------------------------------------------------------------------------------------------
# plan: which letter goes where, with what font and degradation
# per page: degradation level and optional transform ("rot180", "rot90") or "blank"
PLAN = [
    dict(id="l01", stem="l01_ming_clean", font="ming", fmt="png", pages=["clean"]),
    dict(id="l02", stem="l02_kai_mild", font="kai", fmt="jpeg", pages=["mild"], jpeg="gray"),
    dict(id="l03", stem="l03_hei_poor", font="hei", fmt="jpeg", pages=["poor"], jpeg="rgb"),
    dict(id="l04", stem="l04_song_g4", font="song", fmt="tiff-g4", pages=["poor", "clean"]),
    dict(id="l05", stem="l05_wenkai_gray", font="wenkai", fmt="tiff-gray", pages=["clean", "mild"]),
    dict(id="l06", stem="l06_notoserif_rot90", font="notoserif", fmt="png", pages=["clean:rot90"]),
    dict(id="l07", stem="l07_kaitim_dct", font="kaitim", fmt="pdf-dct", pages=["poor", "poor", "blank"]),
    dict(id="l08", stem="l08_ming_flate", font="ming", fmt="pdf-flate", pages=["clean", "clean:rot180"]),
    dict(id="l09", stem="l09_kai_ccitt", font="kai", fmt="pdf-ccitt", pages=["mild", "poor"]),
    dict(id="l10", stem="l10_wenkai_folder", font="wenkai", fmt="folder", pages=["mild", "poor"]),
    dict(id="l11", stem="l11_hei_mild", font="hei", fmt="jpeg", pages=["mild"], jpeg="gray"),
]

# what the rules stage should conclude (informal expectations, see README)
EXPECT = {
    "l01": dict(category="检举控告", real_name=True, domain="低保", reported="柳河村党支部书记赵德明", level="本级"),
    "l02": dict(category="检举控告", real_name=False, domain="危房改造", reported="杨家坪村村主任孙某某", level="本级"),
    "l03": dict(category="检举控告", real_name=False, domain="作风/四风", reported="石桥镇副镇长刘某等", level="本级"),
    "l04": dict(category="检举控告", real_name=True, domain="农村集体三资", reported="桃园村村委会主任钱永福、村会计吴建华", level="本级", cc=["白沙镇党委", "青岚县农业农村局"]),
    "l05": dict(category="检举控告", real_name=True, domain="乡村振兴/扶贫", reported="青山村村支书韩某、驻村工作队队员", level="本级"),
    "l06": dict(category="申诉", real_name=True, domain=None, reported=None, level="本级"),
    "l07": dict(category="检举控告", real_name=False, domain="工程项目", reported="白沙镇副镇长周某某", level="本级", note="phone but no name: not 实名"),
    "l08": dict(category="检举控告", real_name=True, domain="惠农补贴", reported="柳河村五组组长蒋某", level="本级"),
    "l09": dict(category="检举控告", real_name=False, domain="教育", reported="青岚县第三中学校长秦某某", level="本级"),
    "l10": dict(category="批评建议", real_name=True, domain=None, reported=None, level="本级"),
    "l11": dict(category="业务范围外", real_name=True, domain=None, reported=None, note="private employer owes wages; forward to 人社/劳动监察"),
    "l12": dict(category="检举控告", real_name=False, domain="养老/民政", reported="石桥镇敬老院院长曹某某", level="本级"),
    "t01_dibao_online": dict(category="检举控告", real_name=False, domain="低保", reported="柳河村支书赵德明", repeat_of="l01"),
    "t02_court_retrial": dict(category="业务范围外", real_name=True, note="再审 request; judge 'may have taken money' without facts"),
    "t03_fullwidth_gambling": dict(category="检举控告", real_name=True, domain="作风/四风", reported="云溪乡社保所付某、顾某某"),
    "t04_no_substance": dict(category="无实质内容", real_name=False),
}


def letter_text(blocks):
    return "".join(b[1] for b in blocks if b[0] in ("title", "left", "para", "right"))


def build_letter(plan, idx):
    rng = np.random.default_rng(1000 + idx)
    blocks = LETTERS[plan["id"]]
    fs = int(rng.integers(58, 67))
    spacing = float(rng.uniform(1.6, 1.8))
    font = load_font(plan["font"], fs)
    title_font = load_font(plan["font"], int(round(fs * 1.15)))
    check_glyphs(font, letter_text(blocks), plan["font"])
    ml, mr = int(rng.integers(200, 251)), int(rng.integers(200, 251))
    mt, mb = int(rng.integers(210, 261)), int(rng.integers(200, 251))
    pages = layout(blocks, font, title_font, ml, mr, mt, mb, spacing)
    text_pages = [p for p in plan["pages"] if p != "blank"]
    if len(pages) != len(text_pages):
        sys.exit(f"generate.py: {plan['id']} laid out on {len(pages)} pages, plan says {len(text_pages)}")
    out = []  # (image, truth_lines, level, transform, params)
    ti = 0
    for pi, spec in enumerate(plan["pages"]):
        prng = np.random.default_rng(10000 + 100 * idx + pi)
        lossless = plan["fmt"] in ("png", "tiff-gray", "pdf-flate") or (plan["fmt"] == "folder" and pi == 0)
        jpeg_like = plan["fmt"] in ("jpeg", "pdf-dct") or (plan["fmt"] == "folder" and pi > 0)
        paper = int(prng.integers(240, 251)) if jpeg_like else 255
        if spec == "blank":
            out.append((blank_page(prng, paper), [], "clean", "blank", {"level": "clean", "blank": True}))
            continue
        level, _, transform = spec.partition(":")
        ink = int(prng.integers(15, 45))
        items = pages[ti]
        ti += 1
        stroke = TONER_STROKE.get(plan["font"], 0)
        img = render_page(items, paper, ink, stroke)
        img, params = degrade(img, level, prng, paper, lossless)
        if transform == "rot180":
            img = img.transpose(Image.Transpose.ROTATE_180)
        elif transform == "rot90":
            img = img.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise: text runs bottom-to-top
        params.update(font_px=fs, spacing=round(spacing, 2), margins=[ml, mr, mt, mb], ink=ink, paper=paper,
                      stroke_px=stroke)
        out.append((img, [t for _x, _y, t, _f in items], level, transform, params))
    return out


def write_truth(stem, n, lines):
    rel = f"truth/{stem}.p{n}.txt"
    with open(os.path.join(HERE, rel), "w", encoding="utf-8") as fh:
        fh.write("".join(l + "\n" for l in lines))
    return rel


def emit(plan, pages, idx):
    stem, fmt = plan["stem"], plan["fmt"]
    scans = os.path.join(HERE, "scans")
    truths = [write_truth(stem, i + 1, p[1]) for i, p in enumerate(pages)]
    notes = []
    for i, (_img, _t, _lvl, tr, _p) in enumerate(pages):
        if tr == "rot180":
            notes.append(f"page {i + 1} upside-down (rotated 180°)")
        elif tr == "rot90":
            notes.append(f"page {i + 1} rotated 90° counter-clockwise (landscape raster of a portrait page)")
        elif tr == "blank":
            notes.append(f"page {i + 1} is a blank back side (empty truth)")
    qrng = np.random.default_rng(500 + idx)

    def quality(level):
        return int(qrng.integers(45, 76)) if level == "poor" else int(qrng.integers(80, 89))

    if fmt == "png":
        assert len(pages) == 1
        rel = f"scans/{stem}.png"
        pages[0][0].save(os.path.join(HERE, rel), "PNG", dpi=(DPI, DPI), optimize=True)
    elif fmt == "jpeg":
        assert len(pages) == 1
        rel = f"scans/{stem}.jpg"
        img = pages[0][0]
        if plan.get("jpeg") == "rgb":
            img = to_rgb_paper(img, qrng)
        q = quality(pages[0][2])
        save_jpeg(img, os.path.join(HERE, rel), q)
        notes.append(f"JPEG {'RGB' if plan.get('jpeg') == 'rgb' else 'gray'} q{q}")
    elif fmt == "tiff-g4":
        rel = f"scans/{stem}.tif"
        TiffImagePlugin.WRITE_LIBTIFF = True
        bw = [to_bilevel(p[0]) for p in pages]
        bw[0].save(os.path.join(HERE, rel), "TIFF", compression="group4", dpi=(DPI, DPI),
                   tiffinfo={262: 0}, save_all=True, append_images=bw[1:])
        notes.append("multi-page TIFF, CCITT G4, 1-bit MinIsWhite, several strips per page "
                     "(gray page thresholded at 128)")
    elif fmt == "tiff-gray":
        rel = f"scans/{stem}.tif"
        TiffImagePlugin.WRITE_LIBTIFF = True
        imgs = [p[0] for p in pages]
        imgs[0].save(os.path.join(HERE, rel), "TIFF", compression="tiff_adobe_deflate", dpi=(DPI, DPI),
                     save_all=True, append_images=imgs[1:])
        notes.append("multi-page TIFF, 8-bit gray, Deflate (Adobe) compression")
    elif fmt in ("pdf-dct", "pdf-flate", "pdf-ccitt"):
        rel = f"scans/{stem}.pdf"
        objs = []
        for i, (img, _t, lvl, _tr, _p) in enumerate(pages):
            w, h = img.size
            if fmt == "pdf-dct":
                q = quality(lvl)
                objs.append((w, h, "/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode", jpeg_bytes(img, q)))
            elif fmt == "pdf-flate":
                filters = [2] if i % 2 else [0, 1, 2, 3, 4]
                data = zlib.compress(png_predict(np.asarray(img), filters), 9)
                objs.append((w, h, "/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode "
                             "/DecodeParms << /Predictor 15 /Colors 1 /BitsPerComponent 8 /Columns %d >>" % w, data))
            else:
                bw = to_bilevel(img)
                data = g4_strip(bw)
                objs.append((w, h, "/ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode "
                             "/DecodeParms << /K -1 /Columns %d /Rows %d /BlackIs1 false >>" % (w, h), data))
        write_image_pdf(os.path.join(HERE, rel), objs)
        notes.append({"pdf-dct": "image-only PDF, 8-bit gray JPEG (DCTDecode) per page",
                      "pdf-flate": "image-only PDF, 8-bit gray FlateDecode with PNG predictors "
                                   "(/Predictor 15; page 1 cycles row filters 0-4, page 2 uses Up only)",
                      "pdf-ccitt": "image-only PDF, 1-bit CCITTFaxDecode G4 (/K -1, /BlackIs1 false)"}[fmt])
    elif fmt == "folder":
        rel = f"scans/{stem}"
        os.makedirs(os.path.join(HERE, rel), exist_ok=True)
        for i, (img, _t, lvl, _tr, _p) in enumerate(pages):
            if i == 0:
                img.save(os.path.join(HERE, rel, "page-01.png"), "PNG", dpi=(DPI, DPI), optimize=True)
            else:
                save_jpeg(img, os.path.join(HERE, rel, f"page-{i + 1:02d}.jpg"), quality(lvl))
        notes.append("one letter scanned page by page: page-01.png, page-02.jpg (name order = page order)")
    else:
        raise ValueError(fmt)
    levels = [p[2] for p in pages if p[3] != "blank"]
    degr = max(levels, key=["clean", "mild", "poor"].index)
    return {
        "path": rel,
        "format": fmt,
        "font": FONTS[plan["font"]][2],
        "degradation": degr,
        "pages": len(pages),
        "page_degradation": [p[2] for p in pages],
        "truth": truths,
        "notes": "; ".join(notes),
        "page_details": [dict(p[4], page=i + 1, transform=p[3] or None) for i, p in enumerate(pages)],
        "expect": EXPECT[plan["id"]],
    }


# ---------------------------------------------------------------------------------------------
# the PDF with a real text layer (online report form)
def build_text_pdf():
    from datetime import datetime, timezone
    from fpdf import FPDF

    stem = "l12_online_form_text"
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_creation_date(datetime(2024, 8, 9, 21, 40, tzinfo=timezone.utc))
    pdf.set_producer("samples/generate.py")
    pdf.set_auto_page_break(False)
    pdf.add_font("wenkai", fname=PDF_TEXT_FONT[0])
    pdf.add_page()
    lines = []
    left, width, y = 20, 170, 22
    f = ONLINE_FORM

    def line(text, size, x=left, h=None, align="L"):
        nonlocal y
        pdf.set_font("wenkai", size=size)
        h = h or size * 0.55
        pdf.set_xy(x, y)
        pdf.cell(width - (x - left), h, text, align=align)
        lines.append(text)
        y += h

    line(f["heading"], 18, align="C")
    line(f["subheading"], 12, align="C")
    y += 6
    pdf.set_draw_color(120, 120, 120)
    for k, v in f["fields"]:
        line(f"{k}：{v}", 12, h=8)
    y += 4
    line(f["body_title"] + "：", 12, h=8)
    pdf.set_font("wenkai", size=12)
    for para in f["body"]:
        # wrap by string width, CJK breaks anywhere, digit/Latin runs stay whole
        cur, first = "", True
        avail = width - 9
        for tok in TOKEN_RE.findall(para):
            if cur and pdf.get_string_width(cur + tok) > avail and tok[0] not in NO_START:
                line(cur, 12, x=left + (9 if first else 0), h=7.5)
                cur, first, avail = tok, False, width
            else:
                cur += tok
        if cur:
            line(cur, 12, x=left + (9 if first else 0), h=7.5)
    rel = f"scans/{stem}.pdf"
    pdf.output(os.path.join(HERE, rel))
    truth = write_truth(stem, 1, lines)
    return {
        "path": rel, "format": "pdf-text", "font": PDF_TEXT_FONT[1], "degradation": "clean", "pages": 1,
        "truth": [truth],
        "notes": "online report form printed to PDF with a real text layer (fpdf2, embedded TTF subset); "
                 "no OCR needed: pdftotext extracts it",
        "expect": EXPECT["l12"],
    }


# ---------------------------------------------------------------------------------------------
def check_outputs(manifest):
    for e in manifest:
        p = os.path.join(HERE, e["path"])
        if e["format"].startswith("pdf"):
            r = subprocess.run(["pdfimages", "-list", p], capture_output=True, text=True)
            print(r.stdout + r.stderr)
            if e["format"] == "pdf-text":
                t = subprocess.run(["pdftotext", "-layout", p, "-"], capture_output=True, text=True).stdout
                want = "".join(open(os.path.join(HERE, e["truth"][0]), encoding="utf-8").read().split())
                got = "".join(t.split())
                print("pdftotext matches truth:", want == got)
                if want != got:
                    sys.exit("pdf-text: pdftotext output differs from truth")


def main():
    check_fonts()
    for d in ("scans", "truth", "text"):
        shutil.rmtree(os.path.join(HERE, d), ignore_errors=True)
        os.makedirs(os.path.join(HERE, d))
    manifest = []
    for idx, plan in enumerate(PLAN):
        pages = build_letter(plan, idx)
        manifest.append(emit(plan, pages, idx))
        print("wrote", manifest[-1]["path"], flush=True)
    manifest.append(build_text_pdf())
    for name, body in TEXTS.items():
        rel = f"text/{name}.txt"
        with open(os.path.join(HERE, rel), "w", encoding="utf-8") as fh:
            fh.write(body)
        manifest.append({"path": rel, "format": "txt", "font": None, "degradation": None, "pages": 1,
                         "truth": [rel], "notes": "already-typed online report; the file is its own truth"
                         + ("; contains full-width digits and letters" if "fullwidth" in name else ""),
                         "expect": EXPECT[name]})
    with open(os.path.join(HERE, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=2)
        fh.write("\n")
    if "--check" in sys.argv:
        check_outputs(manifest)
    total = 0
    for root, _dirs, files in os.walk(HERE):
        if "__pycache__" in root:
            continue
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"samples/ total: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

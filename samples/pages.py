#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Pages for an OCR evaluation that cannot be tuned into (issue 13).

Renders letter pages from generated text (never the sample letters' text) in the conditions a
mailroom receives, each page from its own seed, and splits them by seed: even seeds are the
tuning half (every threshold is chosen on them), odd seeds the held-out half (only measured).

Usage:

    /usr/bin/python3 samples/pages.py --out DIR --count 96 [--first 0]

writes DIR/<id>.<ext> (PNG, JPEG, TIFF G4, image-only PDF), DIR/<id>.p1.txt (the exact
characters drawn, one drawn line per line, in reading order) and DIR/manifest.json (per page:
id, seed, split, kind, font, bold, size_pt, dpi, degradation, format).

Deterministic: a page depends only on its seed and this file. Conditions are assigned so that
both halves cover every kind, font, dpi and degradation. Needs Pillow and numpy (Debian:
python3-pil python3-numpy) and the fonts below (pipeline/scripts/setup.sh --bench installs
them).
"""

import argparse
import io
import json
import math
import os
import random
import struct
import sys
import zlib

try:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont
except ImportError as e:  # pragma: no cover
    sys.exit(f"pages.py: missing Python package ({e}); install python3-pil python3-numpy")

# ---------------------------------------------------------------------------------------------
# fonts: (path, ttc index, family, style, debian package)
FONTS = {
    "song-sungtil": ("/usr/share/fonts/truetype/arphic-gbsn00lp/gbsn00lp.ttf", 0, "宋 thin", "fonts-arphic-gbsn00lp"),
    "ming-uming": ("/usr/share/fonts/truetype/arphic/uming.ttc", 0, "明 thin", "fonts-arphic-uming"),
    "kai-ukai": ("/usr/share/fonts/truetype/arphic/ukai.ttc", 0, "楷 thin", "fonts-arphic-ukai"),
    "kai-kaitim": ("/usr/share/fonts/truetype/arphic-gkai00mp/gkai00mp.ttf", 0, "楷 thin", "fonts-arphic-gkai00mp"),
    "hei-zenhei": ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0, "黑", "fonts-wqy-zenhei"),
    "hei-microhei": ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0, "黑", "fonts-wqy-microhei"),
    "song-noto": ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2, "宋", "fonts-noto-cjk"),
    "hei-noto": ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2, "黑", "fonts-noto-cjk"),
    "kai-wenkai": ("/usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf", 0, "楷", "fonts-lxgw-wenkai"),
    "fangsong-wenkai-light": (
        "/usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Light.ttf", 0, "仿宋-like thin", "fonts-lxgw-wenkai"),
}
BOLD = {
    "song-noto": ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc", 2),
    "hei-noto": ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),
    "kai-wenkai": ("/usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Bold.ttf", 0),
}

KINDS = ["plain", "plain", "plain", "fax", "letterhead", "photo", "dense", "table", "twocol", "rot180", "rot90"]
DPIS = [150, 200, 300, 400]
DEGRADATIONS = ["clean", "mild", "bad"]
A4_IN = (8.27, 11.69)


def check_fonts():
    missing = [(k, p, pkg) for k, (p, _i, _s, pkg) in FONTS.items() if not os.path.exists(p)]
    missing += [(k, p, FONTS[k][3]) for k, (p, _i) in BOLD.items() if not os.path.exists(p)]
    if missing:
        lines = "\n".join(f"  {k}: {p}  (apt-get install {pkg})" for k, p, pkg in missing)
        sys.exit("pages.py: required font(s) missing:\n" + lines)


# ---------------------------------------------------------------------------------------------
# text: letter-like Chinese prose generated from fragments (never the sample letters' text)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "建国华明军平伟强志勇海涛春生德福贵秀英兰芳桂珍玉梅红霞丽娟敏静燕玲凤云洪亮光辉文武成刚永新宏宇浩然子轩晨阳思远雨欣佳怡梓涵俊杰振兴家豪天佑立群学良守仁长林树森"
COUNTY = ["青山县", "白河县", "临江县", "东源县", "南屏县", "北川县", "西岭县", "安平县", "丰乐县", "长宁县"]
TOWNS = ["柳塘镇", "石门乡", "桃花镇", "清溪镇", "新河乡", "大坪镇", "龙泉镇", "黄土乡", "双桥镇", "金沙镇", "马头乡", "梅岭镇"]
VILLAGES = ["李家村", "上湾村", "下坝村", "枫树村", "杨柳村", "高岭村", "红星村", "团结村", "沙洲村", "竹林村", "荷花村", "岔路村"]
UNITS = ["县自然资源局", "县住房和城乡建设局", "县人力资源和社会保障局", "县市场监督管理局", "县卫生健康局", "县交通运输局",
         "县水利局", "县教育局", "县财政局", "县林业局", "县民政局", "县农业农村局", "镇人民政府", "乡卫生院", "镇中心小学"]
POSTS = ["局长", "副局长", "股长", "站长", "所长", "主任", "副主任", "镇长", "副镇长", "党委书记", "支部书记", "村委会主任",
         "会计", "出纳", "校长", "院长", "科员", "组长"]
ACTS = [
    "借修路之名向村民摊派集资款", "把危房改造补助发给自己的亲戚", "在招标中收受承包商的好处费", "多次用公车接送家属上下班",
    "虚报冒领退耕还林补贴", "逢年过节收受下属送的购物卡", "违规为不符合条件的人员办理低保", "挪用集体土地征收补偿款",
    "长期不在岗却照领工资", "在婚丧喜庆中大操大办借机敛财", "对群众反映的问题推诿扯皮不予办理", "插手工程项目让其妻弟承揽",
    "私自变卖集体山林", "在扶贫项目资金中弄虚作假", "违规收取学生补课费", "利用职务便利为他人谋取利益",
    "把防汛物资拉回自家使用", "在宅基地审批中吃拿卡要", "伙同他人套取医保基金", "对违法建筑收钱后不予查处",
]
DETAILS = [
    "此事有多名村民可以作证", "相关票据我已经复印保存", "当时在场的还有村里的几位老党员", "群众对此意见很大但敢怒不敢言",
    "我们多次向镇里反映都没有结果", "具体金额大约在三万元左右", "时间大概是去年秋收以后", "账目至今没有向村民公开",
    "他还威胁说谁告状就给谁穿小鞋", "附上照片四张和收据两份", "希望领导能够派人下来调查核实", "如有不实本人愿意承担责任",
    "这些情况在镇上几乎人人皆知", "请求依法依规严肃处理", "恳请上级部门给群众一个公道", "以上反映情况属实",
    "村民代表曾联名写信但石沉大海", "有关会议记录被他私自撕毁", "补助名单上有几个人早已去世", "收款人的账户就在他老婆名下",
    "工程质量很差刚用半年就开裂了", "他的亲戚在项目上既当老板又当监理", "审计时他找人顶替签字", "钱款去向至今说不清楚",
    "我们几户人家的地被占后分文未得", "群众在微信群里议论了很久", "他当着众人的面把举报的村民骂了一顿", "那天晚上酒席摆了二十多桌",
]
CONNECT = ["另外，", "同时，", "更严重的是，", "据了解，", "此外，", "而且", "不仅如此，", "据村民反映，", "事后", "后来"]
GENERAL = [
    "今年春耕期间雨水偏多，部分农田排水不畅，秧苗长势受到影响。", "村里的水泥路修到一半就停工了，雨天泥泞难行。",
    "镇卫生院新添了几台检查设备，看病比过去方便了不少。", "学校食堂的饭菜价格上涨，家长们议论纷纷。",
    "我们组共有农户四十二户，常住人口一百六十余人，多数青壮年外出务工。", "河道整治工程完工后，沿岸环境明显改善。",
    "冬季取暖用煤的价格比往年高出三成，困难群众负担加重。", "村部门口的公示栏已经两年没有更新过内容。",
    "每逢赶集的日子，镇上的街道总是挤得水泄不通。", "去年新建的文化广场晚上灯火通明，跳广场舞的人很多。",
    "山上的茶园今年收成不错，每斤鲜叶收购价比去年高两元。", "自来水管网改造以后，停水的情况少了很多。",
]
AMOUNTS = ["三千六百元", "一万二千元", "八万多元", "二十余万元", "五百元", "一千八百元", "四万五千元", "六十七万元",
           "2300元", "15800元", "9.6万元", "一百二十万元"]
DATES = ["2022年3月", "2023年6月", "2023年10月", "2024年1月", "2024年春节前后", "去年8月", "前年冬天", "今年4月中旬",
         "2021年底", "2024年5月18日"]


def name(rng):
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice([1, 2])))


def sentence(rng):
    k = rng.random()
    county, town, village = rng.choice(COUNTY), rng.choice(TOWNS), rng.choice(VILLAGES)
    if k < 0.35:
        return f"{county}{town}{village}{rng.choice(POSTS)}{name(rng)}{rng.choice(DATES)}{rng.choice(ACTS)}，涉及金额{rng.choice(AMOUNTS)}。"
    if k < 0.6:
        return f"{rng.choice(CONNECT)}{rng.choice(UNITS)}{rng.choice(POSTS)}{name(rng)}{rng.choice(ACTS)}，{rng.choice(DETAILS)}。"
    if k < 0.8:
        return rng.choice(GENERAL)
    return f"{rng.choice(DETAILS)}，{rng.choice(DETAILS)}。"


def paragraphs(rng, chars):
    out, total = [], 0
    while total < chars:
        para = "".join(sentence(rng) for _ in range(rng.randint(2, 5)))
        out.append(para)
        total += len(para)
    return out


def short_cell(rng):
    return rng.choice([name(rng), rng.choice(POSTS), rng.choice(AMOUNTS), rng.choice(DATES), rng.choice(VILLAGES),
                       rng.choice(TOWNS), "已核实", "未办结", "待查", "属实", "部分属实"])


# ---------------------------------------------------------------------------------------------
# layout
NO_START = set("，。、；：？！）」》”’…,.;:?!)")


def wrap(text, font, width, indent=0):
    lines, cur, avail = [], "", width - indent
    for ch in text:
        if cur and font.getlength(cur + ch) > avail:
            if ch in NO_START:  # hanging punctuation
                cur += ch
                continue
            lines.append(cur)
            cur, avail = ch, width
        else:
            cur += ch
    if cur:
        lines.append(cur)
    return lines


class Page:
    def __init__(self, dpi, color=False):
        self.dpi = dpi
        self.w, self.h = int(A4_IN[0] * dpi), int(A4_IN[1] * dpi)
        self.img = Image.new("RGB" if color else "L", (self.w, self.h), (255, 255, 255) if color else 255)
        self.draw = ImageDraw.Draw(self.img)
        self.truth = []

    def px(self, inches):
        return int(round(inches * self.dpi))

    def text_block(self, paras, font, x0, x1, y, y_max, spacing, ink, title=None, title_font=None):
        """Paragraph text between x0 and x1 from y down to y_max; returns the next y."""
        lh = int(round(font.size * spacing))
        if title:
            tw = title_font.getlength(title)
            self.draw.text(((x0 + x1 - tw) / 2, y), title, font=title_font, fill=ink)
            self.truth.append(title)
            y += int(round(title_font.size * spacing)) + lh // 2
        for para in paras:
            for i, line in enumerate(wrap(para, font, x1 - x0, 2 * font.size)):
                if y + lh > y_max:
                    return y
                x = x0 + (2 * font.size if i == 0 else 0)
                self.draw.text((x, y), line, font=font, fill=ink)
                self.truth.append(line)
                y += lh
        return y


def load(key, size_px, bold):
    if bold and key in BOLD:
        path, index = BOLD[key]
    else:
        path, index = FONTS[key][0], FONTS[key][1]
    return ImageFont.truetype(path, size_px, index=index)


# ---------------------------------------------------------------------------------------------
# degradations
def skew(img, deg, fill):
    return img.rotate(deg, resample=Image.BICUBIC, expand=False, fillcolor=fill)


def noise(arr, sigma, rng):
    return arr + rng.normal(0.0, sigma, arr.shape)


def degrade(img, level, rs, nrng):
    """`level`: clean, mild or bad. Gray or RGB image in, same mode out."""
    if level == "clean":
        return img
    fill = 255 if img.mode == "L" else (255, 255, 255)
    angle = rs.uniform(-1.0, 1.0) if level == "mild" else rs.choice([-1, 1]) * rs.uniform(1.5, 3.0)
    img = skew(img, angle, fill)
    img = img.filter(ImageFilter.GaussianBlur(0.5 if level == "mild" else 1.0))
    arr = np.asarray(img, dtype=np.float32)
    if level == "bad":
        # uneven light: one side darker
        h, w = arr.shape[:2]
        ramp = np.linspace(1.0, 1.0 - rs.uniform(0.2, 0.35), w if rs.random() < 0.5 else h)
        shade = ramp[None, :] if len(ramp) == w else ramp[:, None]
        arr = arr * (shade[..., None] if arr.ndim == 3 else shade)
        # dust specks
        for _ in range(rs.randint(30, 90)):
            y, x = rs.randrange(h), rs.randrange(w)
            r = rs.randint(1, 3)
            arr[max(0, y - r):y + r, max(0, x - r):x + r] = 40
    arr = noise(arr, 6.0 if level == "mild" else 14.0, nrng)
    # a scanner's white point clips the paper
    arr = np.clip(arr * (1.04 if level == "mild" else 1.0), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def red_seal(img, cx, cy, r, width, org):
    """A red seal stamped over the page: the ink multiplies with what is under it, so the
    text below stays dark, as real stamp ink does."""
    layer = Image.new("RGB", img.size, (255, 255, 255))
    draw = ImageDraw.Draw(layer)
    red = (205, 35, 40)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=red, width=width)
    # a five-pointed star
    pts = []
    for i in range(10):
        a = -math.pi / 2 + i * math.pi / 5
        rr = r * (0.28 if i % 2 == 0 else 0.11)
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    draw.polygon(pts, fill=red)
    # the organ's name around the top of the ring
    font = ImageFont.truetype(FONTS["song-noto"][0], max(8, int(r * 0.22)), index=2)
    n = len(org)
    for i, ch in enumerate(org):
        a = math.radians(-150 + 120 * i / max(1, n - 1))
        x, y = cx + r * 0.72 * math.cos(a), cy + r * 0.72 * math.sin(a)
        draw.text((x, y), ch, font=font, fill=red, anchor="mm")
    base = np.asarray(img, dtype=np.float32)
    ink = np.asarray(layer, dtype=np.float32)
    return Image.fromarray((base * ink / 255.0).astype(np.uint8))


def perspective(img, rs, bg):
    """A phone photo: the page a little off-square, on a darker desk."""
    w, h = img.size
    pad = int(0.06 * w)
    canvas = Image.new("RGB", (w + 2 * pad, h + 2 * pad), bg)
    canvas.paste(img, (pad, pad))
    W, H = canvas.size
    j = lambda: rs.uniform(0.0, 0.035)  # noqa: E731
    src = [(pad, pad), (W - pad, pad), (W - pad, H - pad), (pad, H - pad)]
    dst = [(pad - j() * W, pad - j() * H), (W - pad + j() * W, pad - j() * H),
           (W - pad + j() * W, H - pad + j() * H), (pad - j() * W, H - pad + j() * H)]
    coeffs = find_coeffs(dst, src)
    return canvas.transform((W, H), Image.PERSPECTIVE, coeffs, Image.BICUBIC, fillcolor=bg)


def find_coeffs(pa, pb):
    matrix = []
    for p1, p2 in zip(pa, pb):
        matrix.append([p1[0], p1[1], 1, 0, 0, 0, -p2[0] * p1[0], -p2[0] * p1[1]])
        matrix.append([0, 0, 0, p1[0], p1[1], 1, -p2[1] * p1[0], -p2[1] * p1[1]])
    a = np.array(matrix, dtype=np.float64)
    b = np.array(pb, dtype=np.float64).reshape(8)
    return np.linalg.solve(a, b).tolist()


# ---------------------------------------------------------------------------------------------
# one page
def conditions(seed):
    """The condition of page `seed`: kinds, fonts, dpis and degradations cycle at co-prime
    periods, so both halves (even and odd seeds) meet every value of each."""
    fonts = list(FONTS)
    kind = KINDS[seed % len(KINDS)]
    font = fonts[(seed // 2) % len(fonts)]
    dpi = DPIS[(seed // 3) % len(DPIS)]
    degradation = DEGRADATIONS[(seed // 5) % len(DEGRADATIONS)]
    rs = random.Random(seed * 7919 + 17)
    size_pt = rs.choice([9, 10, 10.5, 11, 12, 12, 14, 14, 16, 18])
    bold = font in BOLD and rs.random() < 0.35
    if kind == "fax":
        dpi, degradation = 200, "mild"
    if kind == "photo":
        dpi = max(dpi, 200)
    if kind == "dense":
        size_pt = rs.choice([9, 9, 10])
    if kind in ("rot180", "rot90") and degradation == "bad":
        degradation = "mild"
    # At 150 dpi print under 12 pt is below what a scan of a letter shows (9 px strokes).
    if dpi == 150:
        size_pt = max(size_pt, 12)
    return kind, font, bold, size_pt, dpi, degradation


def render(seed):
    kind, font_key, bold, size_pt, dpi, degradation = conditions(seed)
    rs = random.Random(seed)
    nrng = np.random.default_rng(seed)
    color = kind in ("letterhead", "photo")
    page = Page(dpi, color)
    size_px = max(8, int(round(size_pt / 72 * dpi)))
    font = load(font_key, size_px, bold)
    title_font = load(font_key, int(size_px * 1.35), True)
    ink = (20, 20, 25) if color else 20
    m = page.px(0.9 if kind != "dense" else 0.55)
    x0, x1 = m, page.w - m
    y = page.px(0.9)
    spacing = rs.uniform(1.5, 1.8) if kind != "dense" else rs.uniform(1.15, 1.3)
    chars = {"dense": 2600, "twocol": 1500, "table": 500}.get(kind, rs.randint(350, 1100))
    paras = paragraphs(rs, chars)

    if kind == "letterhead":
        red = (205, 35, 40)
        head = rs.choice(COUNTY) + rs.choice(TOWNS).replace("镇", "镇人民政府").replace("乡", "乡人民政府")
        hf = load("song-noto", int(size_px * 1.8), True)
        hw = hf.getlength(head)
        page.draw.text(((page.w - hw) / 2, y), head, font=hf, fill=red)
        y += int(hf.size * 1.5)
        page.draw.line((x0, y, x1, y), fill=red, width=max(2, dpi // 100))
        page.draw.line((x0, y + dpi // 40, x1, y + dpi // 40), fill=red, width=1)
        y += dpi // 10
        # ruled letter paper: a faint red line under every text line
        lh = int(round(size_px * spacing))
        for ly in range(y + int(size_px * 1.15), page.h - m, lh):
            page.draw.line((x0, ly, x1, ly), fill=(232, 150, 150), width=1)
        y = page.text_block(paras, font, x0, x1, y, page.h - m - 3 * lh, spacing, ink)
        sign = f"{name(rs)}  {rs.choice(DATES)}"
        page.draw.text((x1 - font.getlength(sign), y + lh // 2), sign, font=font, fill=ink)
        page.truth.append(sign)
        # the seal over the end of the text and the signature
        r = page.px(0.8)
        page.img = red_seal(page.img, int(x1 - font.getlength(sign) / 2), int(y + lh // 2), r, max(3, dpi // 60),
                            head[-8:])
    elif kind == "twocol":
        gap = page.px(0.4)
        mid = (x0 + x1) // 2
        half = len(paras) // 2 or 1
        page.text_block(paras[:half], font, x0, mid - gap // 2, y, page.h - m, spacing, ink)
        page.text_block(paras[half:], font, mid + gap // 2, x1, y, page.h - m, spacing, ink)
    elif kind == "table":
        title = rs.choice(["信访事项处理情况登记表", "反映问题线索汇总表", "补助资金发放情况一览表"])
        y = page.text_block(paras[:1], font, x0, x1, y, page.h - m, spacing, ink, title=title, title_font=title_font)
        cols = rs.randint(3, 5)
        rows = rs.randint(5, 9)
        cw = (x1 - x0) // cols
        rh = int(size_px * 2.0)
        lw = max(1, dpi // 150)
        y += size_px
        for r_ in range(rows + 1):
            page.draw.line((x0, y + r_ * rh, x0 + cols * cw, y + r_ * rh), fill=ink, width=lw)
        for c in range(cols + 1):
            page.draw.line((x0 + c * cw, y, x0 + c * cw, y + rows * rh), fill=ink, width=lw)
        head = ["序号", "姓名", "事项", "金额", "状态"][:cols]
        for r_ in range(rows):
            cells = head if r_ == 0 else [str(r_)] + [short_cell(rs) for _ in range(cols - 1)]
            for c, cell in enumerate(cells):
                while font.getlength(cell) > cw - size_px and len(cell) > 1:
                    cell = cell[:-1]
                page.draw.text((x0 + c * cw + size_px // 2, y + r_ * rh + (rh - size_px) // 2), cell, font=font,
                               fill=ink)
            page.truth.append("".join(cells))
        y += rows * rh + size_px
        page.text_block(paras[1:], font, x0, x1, y, page.h - m, spacing, ink)
    else:
        title = rs.choice(["关于反映有关问题的来信", "举报信", "情况反映", "来信", "关于请求调查处理的报告"])
        page.text_block(paras, font, x0, x1, y, page.h - m, spacing, ink, title=title, title_font=title_font)

    img = page.img
    if kind == "photo":
        # warm colour cast and a shadow across one corner, then the perspective of a hand-held phone
        arr = np.asarray(img, dtype=np.float32)
        arr = arr * np.array([1.0, 0.95, 0.84], dtype=np.float32)
        h, w = arr.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        shadow = 1.0 - 0.35 * np.clip(1.0 - (xx / w + yy / h), 0, 1)
        arr = arr * shadow[..., None]
        img = Image.fromarray(np.clip(noise(arr, 5.0, nrng), 0, 255).astype(np.uint8))
        img = perspective(img, rs, (70, 60, 55)).filter(ImageFilter.GaussianBlur(0.7))
    else:
        img = degrade(img, degradation, rs, nrng)
    if kind == "rot180":
        img = img.rotate(180)
    elif kind == "rot90":
        img = img.rotate(90, expand=True)
    if kind == "fax":
        img = img.convert("L").point(lambda v: 255 if v > 150 else 0).convert("1")
    return img, page.truth, (kind, font_key, bold, size_pt, dpi, degradation)


def save(img, path_stem, kind, degradation, dpi, rs):
    """Writes the page in the format a mailroom would get it in; returns the file name."""
    if kind == "fax":
        path = path_stem + ".tif"
        img.save(path, compression="group4", dpi=(dpi, dpi))
        return path
    choice = rs.random()
    if kind == "photo" or (degradation == "bad" and choice < 0.6):
        path = path_stem + ".jpg"
        img.convert("RGB" if img.mode == "RGB" else "L").save(path, quality=rs.randint(45, 80) if kind != "photo"
                                                             else 82, dpi=(dpi, dpi))
        return path
    if choice < 0.25:
        path = path_stem + ".pdf"
        write_pdf(img, path, dpi)
        return path
    path = path_stem + ".png"
    img.save(path, dpi=(dpi, dpi), optimize=False)
    return path


def write_pdf(img, path, dpi):
    """An image-only PDF (Flate, no predictor), the page sized to the scan."""
    gray = img.mode == "L"
    data = zlib.compress(img.tobytes(), 6)
    w, h = img.size
    pw, ph = w * 72.0 / dpi, h * 72.0 / dpi
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.2f} {ph:.2f}] /Resources << /XObject << /Im0 4 0 R >> >> "
        f"/Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /{'DeviceGray' if gray else 'DeviceRGB'} "
        f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream",
    ]
    content = f"q {pw:.2f} 0 0 {ph:.2f} 0 0 cm /Im0 Do Q".encode()
    objs.append(f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs):
        offsets.append(out.tell())
        out.write(f"{i + 1} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    for o in offsets:
        out.write(f"{o:010} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    with open(path, "wb") as f:
        f.write(out.getvalue())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=96)
    ap.add_argument("--first", type=int, default=0)
    args = ap.parse_args()
    check_fonts()
    os.makedirs(args.out, exist_ok=True)
    manifest = []
    for seed in range(args.first, args.first + args.count):
        img, truth, (kind, font, bold, size_pt, dpi, degradation) = render(seed)
        pid = f"g{seed:04d}-{kind}-{font}-{dpi}-{degradation}"
        path = save(img, os.path.join(args.out, pid), kind, degradation, dpi, random.Random(seed + 101))
        with open(os.path.join(args.out, pid + ".p1.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(truth) + "\n")
        manifest.append({
            "id": pid, "seed": seed, "split": "tuning" if seed % 2 == 0 else "heldout", "kind": kind, "font": font,
            "style": FONTS[font][2], "bold": bold, "size_pt": size_pt, "dpi": dpi, "degradation": degradation,
            "file": os.path.basename(path),
        })
        print(f"{pid}  {os.path.basename(path)}", file=sys.stderr)
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()

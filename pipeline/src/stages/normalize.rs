//! Normalisation of recognised text, so that later stages see Chinese as Chinese:
//! removes the spaces tesseract puts between Chinese characters (and between Chinese and
//! Chinese punctuation) but keeps them inside Latin text and numbers; folds full-width
//! letters and digits (and other compatibility forms) with NFKC; keeps Chinese punctuation,
//! and turns ASCII punctuation written against Chinese into its Chinese form.
//! Pure functions, no state.

use unicode_normalization::UnicodeNormalization;

/// Whether `c` is a Han character (CJK unified ideographs and extensions, compatibility ideographs).
pub fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF | 0x2A700..=0x2EBEF | 0x30000..=0x3134F)
}

/// Chinese punctuation: the CJK symbols block, full-width punctuation and the quotes and
/// dashes Chinese text uses.
pub fn is_cjk_punct(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0xFE10..=0xFE1F | 0xFE30..=0xFE4F)
        || is_fullwidth_punct(c)
        || matches!(c, '“' | '”' | '‘' | '’' | '…' | '—' | '·')
}

/// Full-width ASCII punctuation (，：；！？（） …), which Chinese text keeps as it is.
fn is_fullwidth_punct(c: char) -> bool {
    (0xFF01..=0xFF5E).contains(&(c as u32)) && !c.is_alphanumeric()
}

/// Chinese context: next to these characters, whitespace is an OCR artefact.
fn is_cjk(c: char) -> bool {
    is_han(c) || is_cjk_punct(c)
}

/// The Chinese form of ASCII punctuation written against Chinese text.
fn chinese_punct(c: char) -> Option<char> {
    Some(match c {
        ',' => '，',
        ':' => '：',
        ';' => '；',
        '?' => '？',
        '!' => '！',
        '(' => '（',
        ')' => '）',
        _ => return None,
    })
}

/// Normalises OCR output or transcribed text (see the module documentation).
pub fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_run = 0;
    for line in raw.lines() {
        let line = normalize_line(line);
        if line.is_empty() {
            blank_run += 1;
            // Keep a single empty line as a paragraph break, never a run of them.
            if blank_run == 1 && !out.is_empty() {
                out.push('\n');
            }
            continue;
        }
        blank_run = 0;
        out.push_str(&line);
        out.push('\n');
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

fn normalize_line(line: &str) -> String {
    // 1. Fold compatibility forms per character, but keep full-width punctuation.
    let mut folded: Vec<char> = Vec::with_capacity(line.len());
    for c in line.chars() {
        if is_fullwidth_punct(c) {
            folded.push(c);
        } else if c == '\u{3000}' || c == '\t' {
            folded.push(' ');
        } else {
            folded.extend(std::iter::once(c).nfkc());
        }
    }
    // 2. ASCII punctuation with Chinese on either side (spaces aside) becomes Chinese
    //    punctuation; "12,000" and "Li, Ming" keep theirs.
    let neighbour = |from: usize, step: isize| -> Option<char> {
        let mut i = from as isize + step;
        while i >= 0 && (i as usize) < folded.len() {
            let c = folded[i as usize];
            if !c.is_whitespace() {
                return Some(c);
            }
            i += step;
        }
        None
    };
    let punctuated: Vec<char> = folded
        .iter()
        .enumerate()
        .map(|(j, &c)| match chinese_punct(c) {
            Some(zh) if neighbour(j, -1).is_some_and(is_han) || neighbour(j, 1).is_some_and(is_han) => zh,
            _ => c,
        })
        .collect();
    // ASCII double quotes in Chinese context become Chinese quotes, opening and closing in turn.
    let mut open = false;
    let punctuated: Vec<char> = punctuated
        .iter()
        .enumerate()
        .map(|(j, &c)| {
            let chinese = |n: Option<char>| n.is_some_and(is_cjk);
            if c == '"' && (chinese(neighbour(j, -1)) || chinese(neighbour(j, 1))) {
                open = !open;
                if open {
                    '“'
                } else {
                    '”'
                }
            } else {
                c
            }
        })
        .collect();
    // 3. Whitespace: drop it next to Chinese, collapse it elsewhere.
    let mut out = String::with_capacity(punctuated.len() * 3);
    let mut last: Option<char> = None;
    let mut i = 0;
    while i < punctuated.len() {
        let c = punctuated[i];
        if c.is_whitespace() {
            while i < punctuated.len() && punctuated[i].is_whitespace() {
                i += 1;
            }
            if let (Some(p), Some(&n)) = (last, punctuated.get(i)) {
                if !is_cjk(p) && !is_cjk(n) {
                    out.push(' ');
                }
            }
            continue;
        }
        out.push(c);
        last = Some(c);
        i += 1;
    }
    out
}

/// Text for comparison with ground truth: NFKC and no whitespace (the CER convention).
pub fn for_comparison(text: &str) -> Vec<char> {
    text.nfkc().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_spaces_between_chinese_but_not_latin() {
        assert_eq!(normalize("关 于 反 映 问 题"), "关于反映问题");
        assert_eq!(normalize("举报 人 : Li Ming , 电话 139 0000 1234"), "举报人：Li Ming，电话139 0000 1234");
        assert_eq!(normalize("他 说 ， 钱 没 了 。"), "他说，钱没了。");
    }

    #[test]
    fn folds_fullwidth_letters_and_digits_keeps_chinese_punctuation() {
        assert_eq!(normalize("２０２４年５月，ＡＢ村（二组）"), "2024年5月，AB村（二组）");
    }

    #[test]
    fn ascii_quotes_in_chinese_become_chinese_quotes() {
        assert_eq!(normalize("他说\"指标满了\"，还说\"你家不会来事\""), "他说“指标满了”，还说“你家不会来事”");
        assert_eq!(normalize("say \"hi\" twice"), "say \"hi\" twice");
    }

    #[test]
    fn keeps_numbers_with_ascii_separators() {
        assert_eq!(normalize("共计 12,000 元，约 3.2 万元"), "共计12,000元，约3.2万元");
    }

    #[test]
    fn collapses_blank_lines_and_trims() {
        assert_eq!(normalize("  第一行  \n\n\n\n第 二 行\n\n"), "第一行\n\n第二行");
    }

    #[test]
    fn comparison_form_ignores_width_and_spaces() {
        assert_eq!(for_comparison("Ａ 1，"), vec!['A', '1', ',']);
    }
}

//! Taking the reporter's identity out of what is stored of a letter: its text, its pages'
//! text and their word boxes. Each identifying field is replaced by a typed marker
//! (〔举报人姓名〕〔举报人电话〕〔举报人证件号〕〔举报人住址〕), so that a re-run of the rules
//! can put the identity back (`restore`) and decide as it did at intake. The identity itself
//! is stored apart (`reporter_identities`).

use xinfang_models::{PageText, ReporterIdentity};

/// The marker a word box holding part of the identity is replaced by.
const WORD_MARK: &str = "〔举报人信息〕";

/// Takes the identity out of a letter: the pages' text and word boxes in place, and the
/// letter's text, returned. `fold` maps traditional characters to simplified ones, keeping
/// byte offsets (the rules read folded text, so the identity they found is simplified).
pub(super) fn redact_letter(
    fold: &dyn Fn(&str) -> String,
    text: &str,
    pages: &mut [PageText],
    identity: &ReporterIdentity,
) -> String {
    let identifying = identity.identifying_strings();
    if identifying.is_empty() {
        return redact_text(fold, text, identity);
    }
    for p in pages.iter_mut() {
        p.text = redact_text(fold, &p.text, identity);
        for w in &mut p.words {
            if identifying
                .iter()
                .any(|s| w.text.contains(s) || s.contains(w.text.as_str()) && w.text.chars().count() >= 2)
            {
                w.text = WORD_MARK.into();
            }
        }
    }
    redact_text(fold, text, identity)
}

/// `replace_identity`, also where the letter wrote the identity in traditional characters.
fn redact_text(fold: &dyn Fn(&str) -> String, text: &str, identity: &ReporterIdentity) -> String {
    let folded = fold(text);
    // Per character, the field that covers it; longer values first, so that a name inside
    // the address is part of the address.
    let mut marks: Vec<Option<&str>> = vec![None; text.chars().count()];
    let mut fields = identity_fields(identity);
    fields.sort_by_key(|(_, v)| std::cmp::Reverse(v.chars().count()));
    for (marker, needle) in fields {
        let n = needle.chars().count();
        for (byte, _) in folded.match_indices(needle) {
            let start = folded[..byte].chars().count();
            for m in &mut marks[start..start + n] {
                m.get_or_insert(marker);
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<&str> = None;
    for (c, mark) in text.chars().zip(marks) {
        match mark {
            Some(m) if prev != Some(m) => out.push_str(m),
            Some(_) => {}
            None => out.push(c),
        }
        prev = mark;
    }
    replace_identity(&out, identity)
}

/// The text with the reporter's identifying strings replaced by their markers, exactly as
/// written (no folding of traditional characters: see `Understander::redact` for that).
pub fn replace_identity(text: &str, identity: &ReporterIdentity) -> String {
    let mut out = text.to_string();
    for (marker, value) in identity_fields(identity) {
        out = out.replace(value, marker);
    }
    if let Some(phone) = identity.phone.as_deref() {
        // The number may be written with spaces or dashes between its digits.
        out = redact_digits(&out, phone);
    }
    out
}

/// The markers that stand for the reporter's identity in stored text, one per field, so
/// that a re-run of the rules can put the identity back (`restore`) and decide as before.
const NAME_MARK: &str = "〔举报人姓名〕";
const PHONE_MARK: &str = "〔举报人电话〕";
const ID_MARK: &str = "〔举报人证件号〕";
const ADDRESS_MARK: &str = "〔举报人住址〕";

/// The identifying fields with their markers (values of at least two characters).
fn identity_fields(identity: &ReporterIdentity) -> Vec<(&'static str, &str)> {
    [
        (NAME_MARK, &identity.name),
        (PHONE_MARK, &identity.phone),
        (ID_MARK, &identity.id_number),
        (ADDRESS_MARK, &identity.address),
    ]
    .into_iter()
    .filter_map(|(m, v)| v.as_deref().map(|v| (m, v)))
    .filter(|(_, v)| v.chars().count() >= 2)
    .collect()
}

/// Puts the reporter's identity back where `redact` marked it: the text the rules read at
/// intake, for a re-run of the rules without OCR. Never stored or logged.
pub fn restore(text: &str, identity: &ReporterIdentity) -> String {
    let mut out = text.to_string();
    for (marker, value) in [
        (NAME_MARK, &identity.name),
        (PHONE_MARK, &identity.phone),
        (ID_MARK, &identity.id_number),
        (ADDRESS_MARK, &identity.address),
    ] {
        if let Some(v) = value {
            out = out.replace(marker, v);
        }
    }
    out
}

/// Replaces a digit sequence written with separators (139 0735 2846).
fn redact_digits(text: &str, digits: &str) -> String {
    let want: Vec<char> = digits.chars().filter(char::is_ascii_digit).collect();
    if want.len() < 7 {
        return text.to_string();
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied_to = 0;
    while i < chars.len() {
        let mut j = i;
        let mut k = 0;
        while j < chars.len() && k < want.len() {
            let c = chars[j].1;
            if c == want[k] {
                k += 1;
            } else if !(k > 0 && (c == ' ' || c == '-')) {
                break;
            }
            j += 1;
        }
        if k == want.len() {
            out.push_str(&text[copied_to..chars[i].0]);
            out.push_str(PHONE_MARK);
            copied_to = if j < chars.len() { chars[j].0 } else { text.len() };
            i = j;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied_to..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use xinfang_models::{BoundingBox, PageOrigin, WordBox};

    fn same(t: &str) -> String {
        t.to_string()
    }

    #[test]
    fn identity_is_redacted_even_when_spaced() {
        let id =
            ReporterIdentity {
                name: Some("李春生".into()), phone: Some("13907352846".into()), ..Default::default()
            };
        let t = replace_identity("举报人：李春生，电话139 0735 2846。", &id);
        assert!(!t.contains("李春生") && !t.contains("2846"), "{t}");
    }

    #[test]
    fn the_identity_leaves_the_text_the_pages_and_their_word_boxes() {
        let id = ReporterIdentity { name: Some("李春生".into()), ..Default::default() };
        let word = |text: &str| WordBox {
            text: text.into(),
            conf: 0.9,
            bbox: BoundingBox { x: 0, y: 0, w: 1, h: 1 },
            line: 0,
        };
        let mut pages = vec![PageText {
            words: vec![word("举报人"), word("李春生"), word("反映")],
            ..PageText::from_text(1, PageOrigin::Ocr, "举报人李春生反映".into())
        }];
        let text = redact_letter(&same, "举报人李春生反映", &mut pages, &id);
        assert_eq!(text, "举报人〔举报人姓名〕反映");
        assert_eq!(pages[0].text, "举报人〔举报人姓名〕反映");
        let words: Vec<&str> = pages[0].words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(words, ["举报人", WORD_MARK, "反映"]);
        assert_eq!(restore(&text, &id), "举报人李春生反映");
    }
}

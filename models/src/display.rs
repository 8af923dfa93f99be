//! Text from outside (file names, reviewers' notes, reasons quoting them, letter text) made
//! safe to print on a terminal, in a log or in a reason file: control characters and the
//! characters that reorder a line are shown as escapes (`\n`, `\u{1b}`), so that a file name
//! cannot forge an `error:` line or move the cursor. Everything else, Chinese included, is
//! left as it is.

use std::borrow::Cow;

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

fn escape_where(s: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// For a value printed within one line: every control character escaped, newlines too.
pub fn one_line(s: &str) -> Cow<'_, str> {
    escape_where(s, needs_escape)
}

/// For text printed as lines (a letter's text): line breaks and tabs kept, every other
/// control character escaped.
pub fn lines(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| needs_escape(c) && c != '\n' && c != '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_cannot_forge_a_line_or_drive_the_terminal() {
        assert_eq!(one_line("a.txt\nerror: x"), "a.txt\\nerror: x");
        assert_eq!(one_line("\u{1b}[31m红\u{7}"), "\\u{1b}[31m红\\u{7}");
        assert_eq!(one_line("扫描\u{202e}fdp.exe"), "扫描\\u{202e}fdp.exe");
        assert!(matches!(one_line("举报信.pdf"), Cow::Borrowed(_)), "ordinary names are not copied");
    }

    #[test]
    fn letter_text_keeps_its_lines() {
        assert_eq!(lines("第一行\n第二行\r\u{1b}"), "第一行\n第二行\\r\\u{1b}");
    }
}

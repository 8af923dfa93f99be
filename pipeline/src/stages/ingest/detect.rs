//! Format detection from the leading bytes of a file. The file name plays no part: a scan
//! saved as `.pdf` by mistake is still read, and an HTML page named `.pdf` is refused.

use super::IngestError;
use xinfang_models::InputFormat;

/// Detects the format of an original from its bytes.
pub fn detect_format(bytes: &[u8]) -> Result<InputFormat, IngestError> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(InputFormat::Png);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(InputFormat::Jpeg);
    }
    if bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || bytes.starts_with(b"II+\0")
        || bytes.starts_with(b"MM\0+")
    {
        return Ok(InputFormat::Tiff);
    }
    // PDF readers accept the header anywhere in the first kilobyte.
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Ok(InputFormat::Pdf);
    }
    if let Some(kind) = other_known_format(bytes) {
        return Err(IngestError::UnknownFormat(kind.to_string()));
    }
    if looks_like_text(bytes) {
        return Ok(InputFormat::Text);
    }
    Err(IngestError::UnknownFormat(
        "unrecognised binary data, or text in an encoding other than UTF-8, UTF-16 (with a byte-order mark), \
         GB18030/GBK or Big5"
            .to_string(),
    ))
}

/// Names formats we recognise but do not accept, so the error says what the file is.
fn other_known_format(bytes: &[u8]) -> Option<&'static str> {
    let start = String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    if start.starts_with("<!doctype html") || start.starts_with("<html") || start.starts_with("<head") {
        return Some("an HTML page");
    }
    if start.starts_with("<?xml") || start.starts_with("<svg") {
        return Some("an XML/SVG document");
    }
    let magic: [(&[u8], &str); 7] = [
        (b"GIF8", "a GIF image"),
        (b"BM", "a BMP image"),
        (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
        (b"\xD0\xCF\x11\xE0", "a legacy Office document"),
        (b"RIFF", "a RIFF/WebP file"),
        (b"\x00\x00\x00\x0CjP", "a JPEG 2000 image"),
        (b"{\\rtf", "an RTF document"),
    ];
    magic.iter().find(|(m, _)| bytes.starts_with(m)).map(|(_, name)| *name)
}

/// Text in one of the encodings letters are saved in, without NUL characters and with few
/// control characters.
fn looks_like_text(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    let whole = sample.len() == bytes.len();
    let Some(encoding) = super::text::sniff(sample, whole) else { return false };
    let (decoded, _) = encoding.decode_with_bom_removal(sample);
    let controls = decoded.chars().filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}')).count();
    !decoded.contains('\0') && controls * 100 <= decoded.chars().count().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_bytes_not_name() {
        assert_eq!(detect_format(b"\x89PNG\r\n\x1a\nrest").ok(), Some(InputFormat::Png));
        assert_eq!(detect_format(&[0xFF, 0xD8, 0xFF, 0xE0]).ok(), Some(InputFormat::Jpeg));
        assert_eq!(detect_format(b"II*\0....").ok(), Some(InputFormat::Tiff));
        assert_eq!(detect_format(b"junk\n%PDF-1.7\n").ok(), Some(InputFormat::Pdf));
        assert_eq!(detect_format("关于反映问题的举报\n".as_bytes()).ok(), Some(InputFormat::Text));
        let (gbk, _, _) = encoding_rs::GB18030.encode("关于反映问题的举报\n");
        assert_eq!(detect_format(&gbk).ok(), Some(InputFormat::Text), "a letter saved as GBK is text");
    }

    #[test]
    fn html_named_pdf_is_refused_with_its_kind() {
        let err = detect_format(b"<!DOCTYPE html><html><body>404</body></html>").expect_err("html");
        assert!(err.to_string().contains("HTML"), "{err}");
    }

    #[test]
    fn random_bytes_are_refused() {
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        assert!(matches!(detect_format(&bytes), Err(IngestError::UnknownFormat(_))));
    }
}

//! Already-transcribed letters, as Chinese Windows, WPS and phones save them: UTF-8 (with or
//! without a byte-order mark), UTF-16 with a byte-order mark, GB18030/GBK and Big5, decoded
//! to UTF-8. The encoding is found from the bytes, never assumed: a byte-order mark says it;
//! else valid UTF-8 is UTF-8; else the bytes must decode without a single error, and without
//! user-defined (private use) characters, as GB18030 or as Big5. When both do, Firefox's detector (chardetng) decides, and Big5 is
//! taken only when it still says Big5 with a mainland origin assumed (otherwise the letter
//! is read as GB18030, the encoding this commission's letters are usually in).

use super::IngestError;
use crate::config::Limits;
use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::{DecoderResult, Encoding, BIG5, GB18030, UTF_8};

/// The encoding `bytes` are written in, or `None` when they decode under none of those
/// accepted. `whole` says whether `bytes` is the whole file (otherwise a character cut at the
/// end of the sample is no error).
pub fn sniff(bytes: &[u8], whole: bool) -> Option<&'static Encoding> {
    if let Some((bom, _)) = Encoding::for_bom(bytes) {
        return Some(bom);
    }
    if decode_strictly(UTF_8, bytes, whole).is_some() {
        return Some(UTF_8);
    }
    // A legacy encoding that "decodes" into the private use area (user-defined characters
    // no letter uses) is the wrong one: Big5 read as GB18030 does that.
    let plausible = |e| decode_strictly(e, bytes, whole).is_some_and(|t| !t.chars().any(is_private_use));
    let (gb, big5) = (plausible(GB18030), plausible(BIG5));
    match (gb, big5) {
        (true, false) => Some(GB18030),
        (false, true) => Some(BIG5),
        (false, false) => None,
        (true, true) => {
            let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
            detector.feed(bytes, whole);
            let says_big5 = |tld: Option<&[u8]>| detector.guess(tld, Utf8Detection::Deny) == BIG5;
            Some(if says_big5(None) && says_big5(Some(b"cn")) { BIG5 } else { GB18030 })
        }
    }
}

fn is_private_use(c: char) -> bool {
    matches!(u32::from(c), 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}

/// `bytes` decoded under `encoding` (its byte-order mark, if any, dropped), or `None` at the
/// first malformed sequence.
fn decode_strictly(encoding: &'static Encoding, bytes: &[u8], whole: bool) -> Option<String> {
    let mut decoder = encoding.new_decoder_with_bom_removal();
    let mut out = String::with_capacity(decoder.max_utf8_buffer_length_without_replacement(bytes.len())?);
    match decoder.decode_to_string_without_replacement(bytes, &mut out, whole) {
        (DecoderResult::InputEmpty, _) => Some(out),
        _ => None,
    }
}

/// Reads a text letter, bounded by `limits.max_text_bytes`: its text in UTF-8 (line ends
/// as `\n`) and the name of the encoding it was written in.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<(String, &'static str), IngestError> {
    if bytes.len() as u64 > limits.max_text_bytes {
        return Err(IngestError::TextTooLarge { bytes: bytes.len() as u64, limit: limits.max_text_bytes });
    }
    let text = sniff(bytes, true).and_then(|e| decode_strictly(e, bytes, true).map(|t| (t, e.name())));
    let (text, encoding) = text.ok_or(IngestError::UnknownEncoding)?;
    Ok((text.trim_start_matches('\u{feff}').replace("\r\n", "\n"), encoding))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LETTER: &str = "县纪委：\r\n反映石桥镇柳河村党支部书记赵德明搞人情保，把弟媳评成低保户。\r\n举报人：杨春生";

    fn limits() -> Limits {
        crate::config::Config::builtin().expect("config").limits
    }

    fn encoded(e: &'static Encoding, bom: &[u8]) -> Vec<u8> {
        let (bytes, _, _) = e.encode(LETTER);
        [bom, &bytes].concat()
    }

    fn utf16(le: bool) -> Vec<u8> {
        let mut out = if le { vec![0xFF, 0xFE] } else { vec![0xFE, 0xFF] };
        for u in LETTER.encode_utf16() {
            out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    #[test]
    fn letters_saved_by_chinese_windows_wps_and_phones_read_the_same() {
        let want = LETTER.replace("\r\n", "\n");
        for (bytes, name) in [
            (LETTER.as_bytes().to_vec(), "UTF-8"),
            ([b"\xEF\xBB\xBF".as_slice(), LETTER.as_bytes()].concat(), "UTF-8"),
            (utf16(true), "UTF-16LE"),
            (utf16(false), "UTF-16BE"),
            (encoded(GB18030, b""), "gb18030"),
        ] {
            let (text, encoding) = decode(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((text.as_str(), encoding), (want.as_str(), name));
        }
    }

    #[test]
    fn traditional_text_in_big5_is_read_as_big5() {
        let letter = "縣紀委：反映鎮長收受紅包，還在村裡蓋違章建築，請領導調查處理。舉報人：陳國華";
        let (bytes, _, _) = BIG5.encode(letter);
        let (text, encoding) = decode(&bytes, &limits()).expect("big5");
        assert_eq!((text.as_str(), encoding), (letter, "Big5"));
    }

    #[test]
    fn bytes_in_no_accepted_encoding_are_refused_saying_so() {
        let err = decode(&[0x81, 0x20, 0xFF, 0xFE, 0x80, 0x81], &limits()).expect_err("not text");
        assert!(matches!(err, IngestError::UnknownEncoding), "{err}");
    }
}

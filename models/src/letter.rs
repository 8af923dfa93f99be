//! What arrives: the input format of a letter, its channel and its content hash.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The format of an original, detected from its bytes (never from its file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    Png,
    Jpeg,
    Tiff,
    Pdf,
    /// An already-transcribed letter in UTF-8 (online report, typed letter).
    Text,
}

impl InputFormat {
    /// The lowercase name used in the store and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Png => "png",
            InputFormat::Jpeg => "jpeg",
            InputFormat::Tiff => "tiff",
            InputFormat::Pdf => "pdf",
            InputFormat::Text => "text",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<InputFormat> {
        [InputFormat::Png, InputFormat::Jpeg, InputFormat::Tiff, InputFormat::Pdf, InputFormat::Text]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channel a letter came through (来源渠道); its letter is part of the case number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// 来信, paper letter: X
    Letter,
    /// 来访, visit: F
    Visit,
    /// 来电, phone (12388): D
    Phone,
    /// 网络, online: W
    Online,
}

impl Channel {
    /// The one-letter code used in case numbers (domain rule: 信=X 访=F 电=D 网=W).
    pub fn code(self) -> char {
        match self {
            Channel::Letter => 'X',
            Channel::Visit => 'F',
            Channel::Phone => 'D',
            Channel::Online => 'W',
        }
    }

    /// The channel for a case-number code letter.
    pub fn from_code(c: char) -> Option<Channel> {
        match c {
            'X' => Some(Channel::Letter),
            'F' => Some(Channel::Visit),
            'D' => Some(Channel::Phone),
            'W' => Some(Channel::Online),
            _ => None,
        }
    }
}

/// A lowercase hexadecimal sha256 digest naming an original's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// Wraps a digest; returns `None` unless it is exactly 64 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Sha256Hex> {
        let ok = s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Sha256Hex(s.to_string()))
    }

    /// Builds the hex form of a raw 32-byte digest.
    pub fn from_digest(bytes: &[u8; 32]) -> Sha256Hex {
        let mut s = String::with_capacity(64);
        for b in bytes {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        }
        Sha256Hex(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_hex_round_trips() {
        let h = Sha256Hex::from_digest(&[0xab; 32]);
        assert_eq!(h.as_str().len(), 64);
        assert!(h.as_str().starts_with("abab"));
        assert_eq!(Sha256Hex::parse(h.as_str()), Some(h));
        assert_eq!(Sha256Hex::parse("ABAB"), None);
    }

    #[test]
    fn channel_codes_round_trip() {
        for c in [Channel::Letter, Channel::Visit, Channel::Phone, Channel::Online] {
            assert_eq!(Channel::from_code(c.code()), Some(c));
        }
    }
}

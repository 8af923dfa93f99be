//! Already-transcribed letters: UTF-8 text (a byte-order mark is dropped).

use super::IngestError;
use crate::config::Limits;

/// Reads a `.txt` letter, bounded by `limits.max_text_bytes`.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<String, IngestError> {
    if bytes.len() as u64 > limits.max_text_bytes {
        return Err(IngestError::TextTooLarge { bytes: bytes.len() as u64, limit: limits.max_text_bytes });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| IngestError::NotUtf8(e.valid_up_to()))?;
    Ok(text.trim_start_matches('\u{feff}').replace("\r\n", "\n"))
}

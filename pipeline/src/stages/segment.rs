//! Segmentation: jieba-rs with the project's domain dictionary (posts, units, 低保, 危房改造,
//! 人情保 …), loaded once per process. Pure after construction: text in, token spans out.
//! It never decides anything; tagging and extraction use the tokens for word boundaries and
//! repeat detection uses them as the letter's vocabulary.

use crate::stages::normalize::is_han;
use jieba_rs::Jieba;
use thiserror::Error;

/// Problems building the segmenter.
#[derive(Debug, Error)]
pub enum SegmentError {
    #[error("cannot load the jieba user dictionary: {0}")]
    Dictionary(String),
}

/// One token: its byte span in the text it was cut from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub start: usize,
    pub end: usize,
}

/// The tokens of a text, in order.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub spans: Vec<Token>,
}

impl Tokens {
    /// Whether `pos` (a byte offset) is a token boundary.
    pub fn is_boundary(&self, pos: usize) -> bool {
        self.spans.binary_search_by(|t| t.start.cmp(&pos)).is_ok()
            || self.spans.binary_search_by(|t| t.end.cmp(&pos)).is_ok()
    }

    /// The words of the text (tokens of two or more characters, Han or alphanumeric).
    pub fn words<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.spans.iter().filter_map(move |t| {
            let w = text.get(t.start..t.end)?;
            (w.chars().count() >= 2 && w.chars().all(|c| c.is_alphanumeric())).then_some(w)
        })
    }
}

/// jieba with the domain dictionary.
pub struct Segmenter {
    jieba: Jieba,
}

impl Segmenter {
    /// Builds the segmenter: jieba's own dictionary plus `user_dictionary` (lines of
    /// `word [freq] [tag]`).
    pub fn new(user_dictionary: &str) -> Result<Segmenter, SegmentError> {
        let mut jieba = Jieba::new();
        let mut reader = std::io::BufReader::new(user_dictionary.as_bytes());
        jieba.load_dict(&mut reader).map_err(|e| SegmentError::Dictionary(e.to_string()))?;
        Ok(Segmenter { jieba })
    }

    /// The share of Chinese characters that fall in dictionary words of two or more
    /// characters: real letters score well above OCR garbage.
    pub fn word_share(&self, text: &str, tokens: &Tokens) -> f32 {
        let han = |s: &str| s.chars().filter(|c| is_han(*c)).count();
        let total = han(text);
        if total == 0 {
            return 0.0;
        }
        let in_words: usize = tokens
            .spans
            .iter()
            .filter_map(|t| text.get(t.start..t.end))
            .filter(|w| w.chars().count() >= 2 && self.jieba.has_word(w))
            .map(han)
            .sum();
        in_words as f32 / total as f32
    }

    /// Whether the dictionary has `word` at all (names included).
    pub fn has_word(&self, word: &str) -> bool {
        self.jieba.has_word(word)
    }

    /// Whether `word` is a common word of the dictionary other than a person's name
    /// (安排 is a word; 王大明, also in jieba's dictionary, is tagged as a name).
    pub fn is_word(&self, word: &str) -> bool {
        if !self.jieba.has_word(word) {
            return false;
        }
        let tags = self.jieba.tag(word, false);
        !(tags.len() == 1 && tags[0].tag.starts_with("nr"))
    }

    /// Cuts `text` into tokens (with jieba's HMM for unknown words such as names).
    pub fn segment(&self, text: &str) -> Tokens {
        let spans = self
            .jieba
            .cut(text, true)
            .into_iter()
            .filter(|t| !t.word.trim().is_empty())
            .map(|t| Token { start: t.byte_start, end: t.byte_end })
            .collect();
        Tokens { spans }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_words_stay_whole() {
        let seg = Segmenter::new("人情保 20000 n\n村支书 20000 n\n").expect("segmenter");
        let text = "村支书搞人情保";
        let toks = seg.segment(text);
        let words: Vec<&str> = toks.spans.iter().map(|t| &text[t.start..t.end]).collect();
        assert!(words.contains(&"人情保") && words.contains(&"村支书"), "{words:?}");
        assert!(toks.is_boundary(0) && toks.is_boundary(text.len()));
    }
}

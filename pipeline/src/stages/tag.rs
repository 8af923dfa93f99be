//! Tagging: the keyword catalogue compiled once into one Aho-Corasick automaton over the
//! normalised text (longest match first). Words the catalogue marks `token_words` must also
//! begin and end on jieba token boundaries. Each tag records its category and where it
//! matched. Pure after construction; it never decides, it only finds.

use crate::config::catalogue::Keywords;
use crate::stages::segment::Tokens;
use aho_corasick::{AhoCorasick, MatchKind};
use thiserror::Error;

/// Problems compiling the catalogue.
#[derive(Debug, Error)]
pub enum TagError {
    #[error("cannot compile the keyword catalogue: {0}")]
    Build(String),
}

/// What a catalogue word stands for. Indices point into the catalogue's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Domain(usize),
    Behaviour(usize),
    Vague,
    OutOfScope(usize),
    AppealDecision,
    AppealVerb,
    Investigation,
    Treatment,
    Proposal,
    SuggestionTopic,
    Copied,
    NewFacts,
    RepeatHint,
    Party,
}

/// One match: the word, its categories, and its byte span in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub word: String,
    pub categories: Vec<Category>,
    pub start: usize,
    pub end: usize,
}

impl Tag {
    pub fn is(&self, pred: impl Fn(Category) -> bool) -> bool {
        self.categories.iter().any(|c| pred(*c))
    }
}

struct Pattern {
    word: String,
    categories: Vec<Category>,
    token_bound: bool,
}

/// The compiled catalogue.
pub struct Tagger {
    automaton: AhoCorasick,
    patterns: Vec<Pattern>,
}

impl Tagger {
    /// Compiles every word of the catalogue (a word in several groups keeps all its categories).
    pub fn new(k: &Keywords) -> Result<Tagger, TagError> {
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut index = std::collections::HashMap::<String, usize>::new();
        let mut add = |word: &str, cat: Category, token_bound: bool| {
            let word = word.trim();
            if word.is_empty() {
                return;
            }
            let i = *index.entry(word.to_string()).or_insert_with(|| {
                patterns.push(Pattern { word: word.to_string(), categories: Vec::new(), token_bound });
                patterns.len() - 1
            });
            if !patterns[i].categories.contains(&cat) {
                patterns[i].categories.push(cat);
            }
            patterns[i].token_bound &= token_bound;
        };
        for (i, d) in k.domain.iter().enumerate() {
            d.words.iter().for_each(|w| add(w, Category::Domain(i), false));
        }
        for (i, b) in k.behaviour.iter().enumerate() {
            b.words.iter().for_each(|w| add(w, Category::Behaviour(i), false));
        }
        for (i, o) in k.out_of_scope.iter().enumerate() {
            o.words.iter().for_each(|w| add(w, Category::OutOfScope(i), false));
            o.token_words.iter().for_each(|w| add(w, Category::OutOfScope(i), true));
        }
        let simple: [(&Vec<String>, Category); 11] = [
            (&k.vague.words, Category::Vague),
            (&k.appeal.decisions, Category::AppealDecision),
            (&k.appeal.appeals, Category::AppealVerb),
            (&k.appeal.investigation, Category::Investigation),
            (&k.appeal.treatment, Category::Treatment),
            (&k.suggestion.proposals, Category::Proposal),
            (&k.suggestion.topics, Category::SuggestionTopic),
            (&k.copied.words, Category::Copied),
            (&k.new_facts.words, Category::NewFacts),
            (&k.repeat_hint.words, Category::RepeatHint),
            (&k.party.words, Category::Party),
        ];
        for (words, cat) in simple {
            words.iter().for_each(|w| add(w, cat, false));
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns.iter().map(|p| p.word.as_str()))
            .map_err(|e| TagError::Build(e.to_string()))?;
        Ok(Tagger { automaton, patterns })
    }

    /// Every catalogue word in `text`, leftmost-longest, in text order.
    pub fn tag(&self, text: &str, tokens: &Tokens) -> Vec<Tag> {
        self.automaton
            .find_iter(text)
            .filter_map(|m| {
                let p = &self.patterns[m.pattern().as_usize()];
                if p.token_bound && !(tokens.is_boundary(m.start()) && tokens.is_boundary(m.end())) {
                    return None;
                }
                Some(Tag { word: p.word.clone(), categories: p.categories.clone(), start: m.start(), end: m.end() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::catalogue::Catalogue;
    use crate::stages::segment::Segmenter;

    #[test]
    fn tags_chinese_words_where_a_word_boundary_regex_would_not() {
        let cat = Catalogue::builtin().expect("rules");
        let tagger = Tagger::new(&cat.keywords).expect("tagger");
        let seg = Segmenter::new(&cat.dictionary).expect("seg");
        let text = "村支书把亲戚弄成低保户，搞人情保";
        let tags = tagger.tag(text, &seg.segment(text));
        let words: Vec<&str> = tags.iter().map(|t| t.word.as_str()).collect();
        assert!(words.contains(&"低保户") && words.contains(&"人情保"), "{words:?}");
        let rq = tags.iter().find(|t| t.word == "人情保").expect("人情保");
        assert!(rq.is(|c| matches!(c, Category::Domain(_))) && rq.is(|c| matches!(c, Category::Behaviour(_))));
        assert_eq!(&text[rq.start..rq.end], "人情保");
    }

    #[test]
    fn token_words_need_token_boundaries() {
        let cat = Catalogue::builtin().expect("rules");
        let tagger = Tagger::new(&cat.keywords).expect("tagger");
        let seg = Segmenter::new(&cat.dictionary).expect("seg");
        let policy = "这个干部执行力很强";
        let court = "法院一直不执行，钱拿不到";
        let has = |t: &str| tagger.tag(t, &seg.segment(t)).iter().any(|t| t.word == "执行");
        assert!(!has(policy), "执行 inside 执行力 is not a court matter");
        assert!(has(court));
    }
}

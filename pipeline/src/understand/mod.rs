//! Understanding a letter: the chain segment → tag → extract → classify, then the
//! fingerprint for repeat detection and the deadlines (`understand`); the repeat verdict
//! over the earlier letters the store found (`settle`); and the redaction of the reporter's
//! identity from the text, pages and word boxes (`redact`). Synchronous and CPU-bound; never
//! touches the store (the intake's registration calls `settle` inside its transaction).
//!
//! **Invariant:** an undecidable letter is a review item with reasons, never an error.
//! **Invariant:** understanding imports the stages and `config`, never the store or intake.

mod redact;

pub use redact::{replace_identity, restore};

use crate::config::catalogue::Catalogue;
use crate::stages::calendar::WorkCalendar;
use crate::stages::classify::{Classifier, FILED_NO_SUBSTANCE};
use crate::stages::extract::{ExtractError, Extractor};
use crate::stages::normalize::is_han;
use crate::stages::repeat::{RepeatRulesCompiled, RepeatVerdict};
use crate::stages::segment::{SegmentError, Segmenter, Tokens};
use crate::stages::tag::{Category, TagError, Tagger};
use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::Arc;
use thiserror::Error;
use xinfang_models::{Candidate, CandidateLimits, Subject, Understanding};
use xinfang_models::{
    Deadline, Decision, HandlingLevel, LetterClass, PageText, ReporterIdentity, ReviewEdit, ReviewError,
};

/// Problems building the understanding stages (bad rule data).
#[derive(Debug, Error)]
pub enum UnderstandError {
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

/// The compiled stages.
pub struct Understander {
    fold: HashMap<char, char>,
    segmenter: Arc<Segmenter>,
    tagger: Tagger,
    extractor: Extractor,
    classifier: Classifier,
    calendar: WorkCalendar,
    repeat: RepeatRulesCompiled,
    cat: Catalogue,
}

impl Understander {
    /// Compiles every stage from the rule data (jieba's dictionaries load here, once).
    pub fn new(cat: &Catalogue) -> Result<Understander, UnderstandError> {
        let chars: Vec<char> = cat.keywords.fold.pairs.chars().collect();
        let fold = chars.chunks(2).filter(|p| p.len() == 2 && p[0] != p[1]).map(|p| (p[0], p[1])).collect();
        // One jieba for cutting and for telling words from names: its dictionary is large.
        let segmenter = Arc::new(Segmenter::new(&cat.dictionary)?);
        Ok(Understander {
            fold,
            segmenter: Arc::clone(&segmenter),
            tagger: Tagger::new(&cat.keywords)?,
            extractor: Extractor::new(cat, Box::new(move |w: &str| segmenter.is_word(w)))?,
            classifier: Classifier::new(cat),
            calendar: WorkCalendar::new(&cat.calendar),
            repeat: RepeatRulesCompiled::new(&cat.rules.repeat, &cat.rules.post_synonyms),
            cat: cat.clone(),
        })
    }

    pub fn rules_version(&self) -> &str {
        &self.cat.rules.version
    }

    pub fn repeat_rules(&self) -> &RepeatRulesCompiled {
        &self.repeat
    }

    /// The organ's working-day calendar (its time zone, its days).
    pub fn calendar(&self) -> &WorkCalendar {
        &self.calendar
    }

    /// The organ's day on which a letter received at `received_at` (Unix ms) was received:
    /// its deadlines count from it, its case number takes its year.
    pub fn receipt_day(&self, received_at: i64) -> NaiveDate {
        self.calendar.day_of(received_at)
    }

    /// How far a repeat lookup for these rules reads.
    pub fn candidate_limits(&self) -> CandidateLimits {
        self.cat.rules.repeat.limits()
    }

    /// Folds traditional characters to simplified (same byte length, so offsets hold).
    fn fold(&self, text: &str) -> String {
        text.chars().map(|c| self.fold.get(&c).copied().unwrap_or(c)).collect()
    }

    /// Runs the stages over the normalised text of a letter received on `received`.
    pub fn understand(&self, text: &str, received: NaiveDate) -> Understanding {
        let limit = self.cat.rules.scores.max_analysed_chars;
        let (head, truncated) = match text.char_indices().nth(limit) {
            Some((i, _)) => (&text[..i], true),
            None => (text, false),
        };
        let folded = self.fold(&unwrap_lines(head));
        let text = folded.as_str();
        let tokens = self.segmenter.segment(text);
        let tags = self.tagger.tag(text, &tokens);
        let ex = self.extractor.extract(text, &tags, &|p| tokens.is_boundary(p));
        let han = text.chars().filter(|c| is_han(*c)).count();
        let share = self.segmenter.word_share(text, &tokens);
        let c = self.classifier.classify(text, &tags, &ex, han, share);
        let claims_new = tags.iter().any(|t| t.is(|c| c == Category::NewFacts));
        let mut fingerprint =
            self.repeat.fingerprint(&c.matter_subjects, tokens.words(text), &c.facts, &c.amounts, claims_new);
        let specific = self.specific_words(text, &tokens, &c.matter_subjects, &ex.reporter);
        fingerprint.specifics = self.repeat.specific_hashes(specific.iter().map(String::as_str));
        let keys = self.repeat.keys(&fingerprint);
        let lookup_keys = self.repeat.lookup_keys(&fingerprint);
        let mut reasons = c.reasons;
        if truncated {
            reasons.push(format!(
                "review: only the first {limit} characters were analysed (rules: scores.max_analysed_chars)"
            ));
        }
        if tags.iter().any(|t| t.is(|c| c == Category::RepeatHint)) {
            reasons.push("the writer says they reported this before (再次反映)".into());
        }
        let mut decision = Decision {
            class: c.class,
            in_scope: c.class.in_scope(),
            sub_kind: c.sub_kind,
            named: c.named,
            subjects: c.subjects,
            handling_level: c.handling_level,
            forward_to: c.forward_to,
            repeat_of: None,
            new_facts_of: None,
            domains: c.domains,
            keywords: c.keywords,
            copied_to: ex.copied_to,
            score: c.score,
            confidence: c.confidence,
            review: c.review || truncated,
            reasons,
            deadlines: Vec::new(),
            rules_version: self.cat.rules.version.clone(),
        };
        self.set_deadlines(&mut decision, received);
        Understanding { decision, identity: ex.reporter, fingerprint, keys, lookup_keys }
    }

    /// Words specific to a letter's matter: tokens the dictionary does not know (福满楼) and
    /// runs of letters and digits (a plate number K5A217, a contract number), but not the
    /// reported persons' names and units nor places (those are subject keys, and a village is
    /// shared by near misses), nor the reporter's own details.
    fn specific_words(
        &self,
        text: &str,
        tokens: &Tokens,
        subjects: &[Subject],
        reporter: &ReporterIdentity,
    ) -> Vec<String> {
        let theirs = reporter.identifying_strings().into_iter().chain(reporter.unit.as_deref());
        let known_strings: Vec<&str> =
            subjects.iter().flat_map(|s| [s.name.as_deref(), s.unit.as_deref()]).flatten().chain(theirs).collect();
        let known = |w: &str| known_strings.iter().any(|x| x.contains(w) || w.contains(x));
        let place = |w: &str| w.ends_with(['村', '镇', '乡', '县', '市', '区', '组', '街', '路']);
        let mut out: Vec<String> = tokens
            .words(text)
            .filter(|w| w.chars().count() >= 3 && w.chars().all(is_han))
            .filter(|w| !self.segmenter.has_word(w) && !known(w) && !place(w))
            .map(String::from)
            .collect();
        // Alphanumeric runs with a digit, dots and spaces inside taken out (东K·5A217).
        let squeezed: String = text.chars().filter(|c| !matches!(c, '·' | ' ' | '-')).collect();
        let mut run = String::new();
        for c in squeezed.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_alphanumeric() {
                run.push(c.to_ascii_uppercase());
            } else {
                if run.len() >= 4
                    && run.chars().any(|c| c.is_ascii_digit())
                    && run.chars().any(|c| c.is_ascii_alphabetic())
                {
                    out.push(std::mem::take(&mut run));
                }
                run.clear();
            }
        }
        out
    }

    /// The decision for a letter the rules could not read (an internal failure): registered
    /// and sent to review with the reason, never lost.
    pub fn undecided(&self, reason: &str) -> Understanding {
        let decision = Decision {
            review: true,
            reasons: vec![format!("review: the rules could not read this letter ({reason}); decide it by hand")],
            ..Decision::bare(LetterClass::NoSubstance, &self.cat.rules.version)
        };
        let fingerprint = self.repeat.fingerprint(&[], std::iter::empty(), &[], &[], false);
        Understanding {
            decision,
            identity: ReporterIdentity::default(),
            fingerprint,
            keys: Vec::new(),
            lookup_keys: Vec::new(),
        }
    }

    /// Judges repeat candidates (found by the store through the lookup keys) and completes
    /// the decision: links, review, and deadlines (a repeat gets no notice of acceptance).
    /// The registration calls it inside its transaction.
    pub fn settle(&self, u: &mut Understanding, candidates: &[Candidate], received: NaiveDate) -> RepeatVerdict {
        let verdict = self.repeat.judge(&u.fingerprint, candidates);
        let d = &mut u.decision;
        d.repeat_of.clone_from(&verdict.repeat_of);
        d.new_facts_of.clone_from(&verdict.new_facts_of);
        d.reasons.extend(verdict.reasons.iter().cloned());
        if verdict.new_facts_of.is_some() {
            d.review = true;
            d.reasons.push("review: new facts or evidence must be checked (新的事实或证据)".into());
        }
        if verdict.repeat_of.is_none() && verdict.new_facts_of.is_none() {
            d.reasons.push(format!(
                "初次件: no earlier letter about the same person and matter ({} candidate(s) compared)",
                candidates.len()
            ));
        }
        d.confidence.repeat = verdict.confidence;
        let bar = self.cat.rules.scores.review_below;
        if verdict.confidence < bar && verdict.new_facts_of.is_none() {
            d.review = true;
            d.reasons.push(format!(
                "review: 重复件 doubtful (confidence {:.2} below scores.review_below = {bar}; similarity {:.2})",
                verdict.confidence, verdict.similarity
            ));
        }
        self.set_deadlines(d, received);
        verdict
    }

    /// Deadlines in working days from receipt (domain rules §6).
    fn deadlines(&self, d: &Decision, received: NaiveDate) -> Vec<Deadline> {
        let r = &self.cat.rules.deadlines;
        let mut due = Vec::new();
        let first = d.repeat_of.is_none();
        match (d.in_scope, d.handling_level) {
            (true, Some(HandlingLevel::Higher)) => due.push(("报送上级", r.route_up)),
            (true, Some(HandlingLevel::Lower)) => due.push(("转送下级", r.route_down)),
            (true, _) if d.named && first && d.class == LetterClass::Accusation => {
                due.push(("受理告知", r.notice_named_first))
            }
            (false, _) if d.class == LetterClass::OutOfScope && first => {
                due.push(("转送主管机关", r.forward_out_of_scope))
            }
            _ => {}
        }
        due.into_iter()
            .map(|(action, days)| {
                let (date, _covered) = self.calendar.add_working_days(received, days);
                Deadline { action: action.to_string(), working_days: days, due: date.format("%Y-%m-%d").to_string() }
            })
            .collect()
    }

    /// A reviewer's decision on `base` (`Decision::reviewed`), completed from the rule data:
    /// an in-scope letter the reviewer gave no level gets the rules' level for its subjects, a
    /// letter without substance is filed, and the deadlines follow the new decision from the
    /// day the letter was received.
    pub fn review(&self, base: &Decision, edit: &ReviewEdit, received: NaiveDate) -> Result<Decision, ReviewError> {
        let mut d = base.reviewed(edit)?;
        if d.in_scope && d.handling_level.is_none() {
            let (level, why) = self.classifier.level(&d.subjects, d.class);
            d.handling_level = Some(level);
            d.reasons.push(format!("level by the rules, the reviewer having given none: {why}"));
        }
        if d.class == LetterClass::NoSubstance && d.forward_to.is_none() {
            d.forward_to = Some(FILED_NO_SUBSTANCE.to_string());
        }
        self.set_deadlines(&mut d, received);
        Ok(d)
    }

    /// Takes the reporter's identity out of a letter: the pages' text and word boxes in place,
    /// and the letter's text, returned; also where the letter wrote the identity in
    /// traditional characters (the rules read folded text, so the identity they found is
    /// simplified).
    pub fn redact(&self, text: &str, pages: &mut [PageText], identity: &ReporterIdentity) -> String {
        redact::redact_letter(&|t| self.fold(t), text, pages, identity)
    }

    /// Sets the deadlines and says so when one runs past the calendar's coverage.
    fn set_deadlines(&self, d: &mut Decision, received: NaiveDate) {
        d.deadlines = self.deadlines(d, received);
        let uncovered = d.deadlines.iter().any(|dl| !self.calendar.add_working_days(received, dl.working_days).1);
        let note = "a deadline runs past config/calendar.toml: weekends only were counted; add the new year's holidays";
        if uncovered && !d.reasons.iter().any(|r| r == note) {
            d.reasons.push(note.into());
        }
    }
}

/// Joins lines a scan wrapped in mid-sentence (a long line not ending in punctuation,
/// followed by text), so that sentences and names are whole again. Short lines (titles,
/// salutations, signatures) and lines ending a sentence keep their break.
pub fn unwrap_lines(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        let Some(next) = lines.get(i + 1) else { break };
        let trimmed = line.trim_end();
        let ends_sentence = trimmed.ends_with(['。', '！', '？', '；', '：', '」', '”', '…', '.', '!', '?', ':']);
        // Only Chinese runs on into Chinese: a line ending in digits (a phone number) stays.
        let wraps = trimmed.chars().count() >= 18
            && !ends_sentence
            && trimmed.chars().next_back().is_some_and(is_han)
            && next.trim_start().chars().next().is_some_and(|c| is_han(c) || "，、（）“”".contains(c));
        if !wraps {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_written_in_traditional_characters_is_redacted_too() {
        let u = Understander::new(&Catalogue::builtin().expect("rules")).expect("stages");
        let id = ReporterIdentity { name: Some("刘长根".into()), ..Default::default() };
        assert_eq!(u.redact("舉報人：劉長根，電話", &mut [], &id), "舉報人：〔举报人姓名〕，電話");
    }

    #[test]
    fn a_rules_rerun_reads_the_letter_as_intake_did() {
        let u = Understander::new(&Catalogue::builtin().expect("rules")).expect("stages");
        let letter = "举报人：李春生，电话13907352846，住青岚县河西路8号。反映镇长王某收受红包。";
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
        let first = u.understand(letter, day);
        let stored = u.redact(letter, &mut [], &first.identity);
        assert!(!stored.contains("李春生") && !stored.contains("13907352846"), "{stored}");
        let again = u.understand(&restore(&stored, &first.identity), day);
        assert_eq!(again.decision, first.decision);
        assert_eq!(again.identity, first.identity);
    }

    #[test]
    fn no_reason_quotes_the_writer() {
        let u = Understander::new(&Catalogue::builtin().expect("rules")).expect("stages");
        let letter =
            "纪委的领导：\n我叫郑玉兰，住河湾镇三里屯村二组16号，求领导帮我郑玉兰办个低保，电话13907352846。\n郑玉兰\n";
        let d = u.understand(letter, NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")).decision;
        assert_eq!(d.class, LetterClass::OutOfScope, "{:?}", d.reasons);
        assert!(d.reasons.iter().all(|r| !r.contains("郑玉兰") && !r.contains("13907352846")), "{:?}", d.reasons);
    }

    #[test]
    fn wrapped_scan_lines_are_joined_but_paragraphs_kept() {
        let t =
            unwrap_lines("学校的食品由校长秦某某指定的一家公司供应，这家公司的老板\n是秦某某的妻弟。\n举报人：李四");
        assert_eq!(t, "学校的食品由校长秦某某指定的一家公司供应，这家公司的老板是秦某某的妻弟。\n举报人：李四");
    }
}

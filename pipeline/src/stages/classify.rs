//! The rules stage: from the tags and what extraction found, decides the class, scope,
//! discipline sub-kind, 实名, handling level and forwarding target of a letter, each with a
//! score and the reasons (which rule, which words). The scope test is who and what, not
//! topic words: an accusation needs a person in office (or a party member) as the actor of
//! misconduct words, and concrete facts. Thresholds, words and the rank ladder are data in
//! `config/`. A letter the rules cannot decide with confidence is marked for review, never an
//! error. Pure.

use crate::config::catalogue::Catalogue;
use crate::stages::extract::{Extracted, Mention, Role};
use crate::stages::tag::{Category, Tag};
use std::collections::BTreeSet;
use xinfang_models::{HandlingLevel, LetterClass, Subject};

/// A person the letter speaks of: merged mentions.
#[derive(Debug, Clone)]
pub struct Person {
    pub subject: Subject,
    pub role: Role,
    pub labelled: bool,
    pub mentions: Vec<usize>,
}

/// The decision before repeat detection.
#[derive(Debug, Clone)]
pub struct Classified {
    pub class: LetterClass,
    pub score: f32,
    pub sub_kind: Option<String>,
    pub named: bool,
    pub subjects: Vec<Subject>,
    pub handling_level: Option<HandlingLevel>,
    pub forward_to: Option<String>,
    pub domains: Vec<String>,
    pub keywords: Vec<String>,
    /// Substantive fact keys (for repeat detection): amounts, acts, domains.
    pub facts: Vec<String>,
    pub amounts: Vec<String>,
    pub review: bool,
    pub reasons: Vec<String>,
}

/// The compiled rules.
pub struct Classifier {
    cat: Catalogue,
}

/// Sentence spans (byte offsets) of a text: split after 。！？；… and line ends.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '。' | '！' | '？' | '；' | '\n' | '!' | '?' | ';' | '…') {
            let end = i + c.len_utf8();
            if text[start..end].trim().chars().count() > 1 {
                out.push((start, end));
            }
            start = end;
        }
    }
    if text[start..].trim().chars().count() > 0 {
        out.push((start, text.len()));
    }
    out
}

fn sentence_of(sents: &[(usize, usize)], pos: usize) -> usize {
    sents.partition_point(|&(_, e)| e <= pos).min(sents.len().saturating_sub(1))
}

impl Classifier {
    pub fn new(cat: &Catalogue) -> Classifier {
        Classifier { cat: cat.clone() }
    }

    /// Merges mentions of the same person (same name; a partial name with the same surname and
    /// post or unit; the same post and unit without a name).
    pub fn persons(&self, ex: &Extracted) -> Vec<Person> {
        let mut persons: Vec<Person> = Vec::new();
        for m in ex.mentions.iter().filter(|m| !m.self_ref && m.start < ex.signature_start.max(1)) {
            match persons.iter_mut().rev().find(|p| same_person(p, m)) {
                Some(p) => {
                    let s = &mut p.subject;
                    if s.name.as_deref().is_none_or(|n| n.contains('某'))
                        && m.name.as_deref().is_some_and(|n| !n.contains('某'))
                    {
                        s.name.clone_from(&m.name);
                    }
                    if s.name.is_none() {
                        s.name.clone_from(&m.name);
                    }
                    let longer_unit =
                        m.unit.as_ref().is_some_and(|u| s.unit.as_ref().is_none_or(|su| u.len() > su.len()));
                    if longer_unit {
                        s.unit.clone_from(&m.unit);
                    }
                    if s.post.is_none() || (p.role != Role::Official && m.role == Role::Official) {
                        s.post.clone_from(&m.post);
                        s.rank.clone_from(&m.rank);
                        p.role = m.role;
                    }
                    if s.rank.is_none() {
                        s.rank.clone_from(&m.rank);
                    }
                    p.labelled |= m.labelled;
                    p.mentions.push(m.start);
                }
                None => persons.push(Person {
                    subject: Subject {
                        name: m.name.clone(),
                        unit: m.unit.clone(),
                        post: m.post.clone(),
                        rank: m.rank.clone(),
                    },
                    role: m.role,
                    labelled: m.labelled,
                    mentions: vec![m.start],
                }),
            }
        }
        // A bare generic post (干部, 工作人员) with neither name nor unit names nobody.
        persons.retain(|p| {
            p.subject.name.is_some()
                || p.subject.unit.is_some()
                || p.role != Role::Official
                || !is_generic_post(p.subject.post.as_deref())
        });
        persons
    }

    /// Decides the class and everything that follows from it.
    pub fn classify(&self, text: &str, tags: &[Tag], ex: &Extracted, han_chars: usize, word_share: f32) -> Classified {
        let k = &self.cat.keywords;
        let r = &self.cat.rules;
        let sc = &r.scores;
        let mut reasons = Vec::new();
        let sents = sentences(text);
        let persons = self.persons(ex);

        // Who does what: each sentence's acts go to the person it names, or to the person of
        // the sentence before when it names nobody (他/她…), unless the writer speaks of
        // themselves.
        let mut actor_of: Vec<Option<usize>> = vec![None; sents.len()];
        let mut last: Option<(usize, usize)> = None;
        for (si, &(s, e)) in sents.iter().enumerate() {
            let here: Vec<usize> = persons
                .iter()
                .enumerate()
                .filter(|(_, p)| p.mentions.iter().any(|&m| m >= s && m < e))
                .map(|(i, _)| i)
                .collect();
            let sentence = text[s..e].trim_start();
            let first_person =
                sentence.starts_with('我') && !sentence.starts_with("我村") && !sentence.starts_with("我们村");
            let actor = if let Some(&official) = here.iter().find(|&&i| persons[i].role != Role::Private) {
                Some(official)
            } else if let Some(&p) = here.first() {
                Some(p)
            } else if first_person {
                None
            } else {
                last.filter(|&(_, at)| si - at <= 3).map(|(p, _)| p)
            };
            if let Some(p) = actor {
                if !here.is_empty() {
                    last = Some((p, si));
                }
            }
            actor_of[si] = actor;
        }

        let mut acc = vec![0f32; persons.len()];
        let mut acts: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); persons.len()];
        let mut sub_kinds: Vec<(f32, usize)> = Vec::new();
        for t in tags {
            let si = sentence_of(&sents, t.start);
            let Some(p) = actor_of.get(si).copied().flatten() else { continue };
            for c in &t.categories {
                match *c {
                    // A word counts once per person, however often it is repeated.
                    Category::Behaviour(b) if acts[p].insert(t.word.as_str()) => {
                        acc[p] += k.behaviour[b].weight;
                        sub_kinds.push((k.behaviour[b].weight, b));
                    }
                    Category::Domain(_) => acc[p] += 0.25,
                    _ => {}
                }
            }
        }
        let total_acc: f32 =
            acc.iter().enumerate().filter(|(i, _)| persons[*i].role != Role::Private).map(|(_, a)| a).sum();
        let accused: Vec<usize> = (0..persons.len())
            .filter(|&i| persons[i].role != Role::Private)
            // A person the writer names as the reported one (被举报人, 「反映…的问题」) is accused
            // when the letter alleges misconduct at all, whoever its sentences name.
            .filter(|&i| acc[i] >= sc.accusation_min || persons[i].labelled && total_acc >= sc.accusation_min)
            .collect();
        let private_accused =
            (0..persons.len()).any(|i| persons[i].role == Role::Private && acc[i] >= sc.accusation_min);
        // Concrete facts in the body of the letter (the signature's date is not one).
        let body = |pos: usize| pos < ex.signature_start;
        let amounts: BTreeSet<&str> = ex.amounts.iter().filter(|a| body(a.start)).map(|a| a.value.as_str()).collect();
        let dates: BTreeSet<&str> = ex.dates.iter().filter(|d| body(d.start)).map(|d| d.value.as_str()).collect();
        let acts_total: BTreeSet<&str> = accused.iter().flat_map(|&i| acts[i].iter().copied()).collect();
        let facts = amounts.len() + dates.len() + acts_total.len().min(3);

        // Other signals.
        let count = |pred: &dyn Fn(Category) -> bool| -> usize {
            tags.iter().filter(|t| t.is(pred)).map(|t| t.word.as_str()).collect::<BTreeSet<_>>().len()
        };
        let decisions = count(&|c| c == Category::AppealDecision);
        let appeal_verbs = count(&|c| c == Category::AppealVerb);
        let investigation = count(&|c| c == Category::Investigation);
        let treatment = count(&|c| c == Category::Treatment);
        let first_person = text.contains('我') || text.contains("本人");
        let mut appeal = 0.0;
        if decisions > 0 && appeal_verbs > 0 && first_person {
            appeal = decisions.min(2) as f32 + appeal_verbs.min(2) as f32;
        }
        if investigation > 0 && treatment > 0 {
            appeal += (investigation.min(2) + treatment.min(2)) as f32 * 0.75;
        }
        // Proposals count each time they are made (一、建议…二、建议…).
        let proposals = tags.iter().filter(|t| t.is(|c| c == Category::Proposal)).count().min(3);
        let topics = count(&|c| c == Category::SuggestionTopic);
        // 批评建议 names no one to punish: a named official with misconduct words rules it out.
        let names_official = persons.iter().any(|p| p.role == Role::Official && p.subject.name.is_some());
        let suggestion_unnamed = if proposals > 0 { proposals as f32 + topics.min(3) as f32 * 0.5 } else { 0.0 };
        let suggestion = if names_official { 0.0 } else { suggestion_unnamed };
        let vague: Vec<&str> = tags
            .iter()
            .filter(|t| t.is(|c| c == Category::Vague))
            .map(|t| t.word.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut oos = vec![0f32; k.out_of_scope.len()];
        let mut oos_words: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); k.out_of_scope.len()];
        for t in tags {
            for c in &t.categories {
                if let Category::OutOfScope(i) = *c {
                    if oos_words[i].insert(t.word.as_str()) {
                        oos[i] += k.out_of_scope[i].weight;
                    }
                }
            }
        }
        let best_oos = oos.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, s)| (i, *s));
        let oos_score = best_oos.map_or(0.0, |b| b.1);

        let acc_best = accused.iter().map(|&i| acc[i]).fold(0.0, f32::max);
        let accused_names: Vec<String> = accused.iter().map(|&i| describe(&persons[i].subject)).collect();
        let act_list = acts_total.iter().copied().collect::<Vec<_>>().join("、");

        // The decision, in order of precedence.
        let (class, mut score, mut review) = if han_chars < sc.min_han_chars {
            reasons.push(format!(
                "无实质内容: only {han_chars} Chinese characters (rules: scores.min_han_chars = {})",
                sc.min_han_chars
            ));
            (LetterClass::NoSubstance, 0.5, true)
        } else if word_share < sc.min_word_share {
            reasons.push(format!(
                "无实质内容: text reads as garbage ({:.0}% of characters form words)",
                word_share * 100.0
            ));
            (LetterClass::NoSubstance, 0.4, true)
        } else if appeal >= sc.appeal_min + if accused.is_empty() { 0.0 } else { 1.0 } {
            reasons.push(format!(
                "申诉: the writer contests a decision about themselves or a relative under investigation (appeal score {appeal:.1} ≥ {})",
                sc.appeal_min
            ));
            (LetterClass::Appeal, (0.5 + appeal * 0.1).min(0.95), false)
        } else if suggestion_unnamed >= sc.suggestion_min
            && accused.iter().all(|&i| persons[i].subject.name.is_none())
            && facts < 4
        {
            reasons.push(format!(
                "批评建议: proposals about clean-government work naming no one to punish (score {suggestion_unnamed:.1})"
            ));
            (LetterClass::Suggestion, (0.5 + 0.1 * suggestion_unnamed).min(0.9), false)
        } else if !accused.is_empty() && facts as u32 >= sc.facts_min {
            reasons.push(format!(
                "检举控告: {} is the actor of misconduct ({act_list}; score {acc_best:.1} ≥ {}) with {facts} concrete fact(s) ({} amount(s), {} date(s))",
                accused_names.join("、"),
                sc.accusation_min,
                amounts.len(),
                dates.len()
            ));
            if oos_score >= sc.out_of_scope_min {
                reasons.push(format!(
                    "another organ's matter is also raised ({}), but an official is accused with facts, so it stays in scope",
                    best_oos.map(|b| k.out_of_scope[b.0].kind.as_str()).unwrap_or("")
                ));
            }
            let s = (0.45 + 0.08 * facts as f32 + 0.1 * acc_best).min(0.97);
            (LetterClass::Accusation, s, false)
        } else if !accused.is_empty() && oos_score >= sc.out_of_scope_min {
            reasons.push(format!(
                "业务范围外: {} is accused ({act_list}) without concrete facts ({facts} < {}), and the matter belongs to another organ",
                accused_names.join("、"),
                sc.facts_min
            ));
            (LetterClass::OutOfScope, 0.6, false)
        } else if !accused.is_empty() {
            reasons.push(format!(
                "无实质内容: {} is accused ({act_list}) but the letter gives only {facts} concrete fact(s) (rules: scores.facts_min = {})",
                accused_names.join("、"),
                sc.facts_min
            ));
            (LetterClass::NoSubstance, 0.6, facts > 0)
        } else if suggestion >= sc.suggestion_min && suggestion > oos_score * 2.0 {
            reasons.push(format!(
                "批评建议: proposals about clean-government work naming no one to punish (score {suggestion:.1})"
            ));
            (LetterClass::Suggestion, (0.5 + 0.1 * suggestion).min(0.9), false)
        } else if oos_score >= sc.out_of_scope_min {
            let (i, _) = best_oos.unwrap_or((0, 0.0));
            reasons.push(format!(
                "业务范围外: {} ({}) with no official accused of misconduct{}",
                k.out_of_scope[i].kind,
                oos_words[i].iter().copied().collect::<Vec<_>>().join("、"),
                if private_accused { "; the acts named are a private party's" } else { "" }
            ));
            (LetterClass::OutOfScope, (0.55 + 0.1 * oos_score).min(0.95), false)
        } else if suggestion >= sc.suggestion_min {
            reasons.push(format!(
                "批评建议: proposals about clean-government work naming no one to punish (score {suggestion:.1})"
            ));
            (LetterClass::Suggestion, (0.5 + 0.1 * suggestion).min(0.9), false)
        } else if !vague.is_empty() || !persons.is_empty() {
            reasons.push(format!(
                "无实质内容: {} but no misconduct with facts",
                if vague.is_empty() {
                    "names people".to_string()
                } else {
                    format!("calls for action ({})", vague.join("、"))
                }
            ));
            (LetterClass::NoSubstance, 0.55, vague.is_empty())
        } else {
            reasons.push(
                "无实质内容: no rule recognised an accusation, appeal, suggestion or another organ's matter".into(),
            );
            (LetterClass::NoSubstance, 0.3, true)
        };
        if !vague.is_empty() && class == LetterClass::Accusation {
            reasons.push(format!("also uses words without substance ({})", vague.join("、")));
        }
        if score < sc.review_below {
            review = true;
            reasons.push(format!("review: confidence {score:.2} below scores.review_below = {}", sc.review_below));
        }
        // Accusation that is close to the other side of a threshold.
        if class == LetterClass::Accusation && facts as u32 == sc.facts_min && oos_score >= sc.out_of_scope_min {
            review = true;
            score = score.min(0.6);
            reasons.push("review: few facts and another organ's matter: check scope".into());
        }

        let subjects: Vec<Subject> = match class {
            LetterClass::Accusation | LetterClass::NoSubstance if !accused.is_empty() => {
                accused.iter().map(|&i| persons[i].subject.clone()).collect()
            }
            _ => persons.iter().filter(|p| p.labelled && p.role != Role::Private).map(|p| p.subject.clone()).collect(),
        };

        // Handling level.
        let handling_level = if class.in_scope() {
            let (level, why) = self.level(&subjects, class);
            reasons.push(why);
            Some(level)
        } else {
            None
        };
        let forward_to = (!class.in_scope()).then(|| match (class, best_oos) {
            (LetterClass::OutOfScope, Some((i, s))) if s > 0.0 => k.out_of_scope[i].forward_to.clone(),
            (LetterClass::OutOfScope, _) => "县信访局".to_string(),
            _ => FILED_NO_SUBSTANCE.to_string(),
        });
        let sub_kind = (class == LetterClass::Accusation)
            .then(|| sub_kinds.iter().max_by(|a, b| a.0.total_cmp(&b.0)).map(|&(_, b)| k.behaviour[b].sub_kind.clone()))
            .flatten();

        // 实名 (规则 第二十四条): a name or unit AND a concrete contact.
        let rep = &ex.reporter;
        let who = rep.name.is_some() || rep.unit.is_some();
        let contact = rep.phone.is_some() || rep.address.is_some();
        let named = who && contact;
        reasons.push(format!(
            "{}: reporter {} and {}",
            if named { "实名" } else { "匿名" },
            if who { "gives a name or unit" } else { "gives no name or unit" },
            if contact { "a concrete contact (phone or full address)" } else { "no concrete contact" }
        ));

        let domains: Vec<String> = tags
            .iter()
            .flat_map(|t| t.categories.iter())
            .filter_map(|c| if let Category::Domain(i) = c { Some(k.domain[*i].name.clone()) } else { None })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let keywords: Vec<String> = tags
            .iter()
            .filter(|t| t.is(|c| matches!(c, Category::Domain(_) | Category::Behaviour(_) | Category::OutOfScope(_))))
            .map(|t| t.word.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut facts_keys: Vec<String> = domains.iter().map(|d| format!("domain:{d}")).collect();
        facts_keys.extend(acts_total.iter().map(|a| format!("act:{a}")));
        let amount_keys: Vec<String> = ex.amounts.iter().map(|a| format!("amount:{}", a.value)).collect();
        facts_keys.extend(amount_keys.iter().cloned());
        Classified {
            class,
            score,
            sub_kind,
            named,
            subjects,
            handling_level,
            forward_to,
            domains,
            keywords,
            facts: facts_keys,
            amounts: amount_keys,
            review,
            reasons,
        }
    }

    /// The level from the highest rank among the reported persons, and why.
    pub fn level(&self, subjects: &[Subject], class: LetterClass) -> (HandlingLevel, String) {
        let r = &self.cat.rules;
        for s in subjects {
            let unit = s.unit.as_deref().unwrap_or("");
            let post = s.post.as_deref().unwrap_or("");
            let own_unit =
                r.organ.own_head_units.iter().any(|u| unit.contains(u.as_str()) || post.contains(u.as_str()));
            if own_unit && r.organ.own_head_posts.iter().any(|p| post.ends_with(p.as_str())) {
                return (HandlingLevel::Higher, format!("上级: {} heads this commission: 径送上级", describe(s)));
            }
        }
        let rank_level = |rank: &str| r.levels.get(rank).and_then(|l| HandlingLevel::parse(l));
        let order = |l: HandlingLevel| match l {
            HandlingLevel::Higher => 2,
            HandlingLevel::Own => 1,
            HandlingLevel::Lower => 0,
        };
        let best = subjects
            .iter()
            .filter_map(|s| s.rank.as_deref().and_then(|rk| rank_level(rk).map(|l| (l, rk, s))))
            .max_by_key(|(l, _, _)| order(*l));
        match best {
            Some((HandlingLevel::Lower, rank, s)) if class == LetterClass::Accusation => (
                HandlingLevel::Lower,
                format!("下级: {} is {rank}: party-discipline matter for the 乡镇纪委", describe(s)),
            ),
            Some((HandlingLevel::Lower, rank, _)) => {
                (HandlingLevel::Own, format!("本级: a {rank} is concerned but the letter is not an accusation"))
            }
            Some((l, rank, s)) => (l, format!("{}: {} is {rank} (rules: [levels])", l.as_str(), describe(s))),
            None => (HandlingLevel::Own, "本级: no rank above this commission's is named".into()),
        }
    }
}

/// Where a letter without substance goes: kept on file, not forwarded.
pub const FILED_NO_SUBSTANCE: &str = "留存备查（无实质内容）";

fn describe(s: &Subject) -> String {
    let mut out = String::new();
    for part in [&s.unit, &s.post, &s.name].into_iter().flatten() {
        out.push_str(part);
    }
    if out.is_empty() {
        "an unnamed person".into()
    } else {
        out
    }
}

fn is_generic_post(post: Option<&str>) -> bool {
    matches!(post, Some("干部" | "工作人员" | "公务员" | "村干部" | "领导") | None)
}

fn same_person(p: &Person, m: &Mention) -> bool {
    let s = &p.subject;
    if p.role == Role::Private && m.role != Role::Private || p.role != Role::Private && m.role == Role::Private {
        return s.name.is_some() && s.name == m.name;
    }
    match (s.name.as_deref(), m.name.as_deref()) {
        (Some(a), Some(b)) if a == b => true,
        (Some(a), Some(b)) => {
            let partial = a.contains('某') || b.contains('某');
            partial
                && a.chars().next() == b.chars().next()
                && (s.post == m.post || s.unit.is_some() && s.unit == m.unit)
        }
        (_, None) | (None, _) => {
            let post_eq = s.post.is_some() && s.post == m.post;
            let unit_ok = match (&s.unit, &m.unit) {
                (Some(a), Some(b)) => a.ends_with(b.as_str()) || b.ends_with(a.as_str()),
                _ => true,
            };
            post_eq && unit_ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sentences;

    #[test]
    fn sentences_split_on_chinese_punctuation() {
        let s = sentences("他贪污了。她也拿了！\n我举报");
        assert_eq!(s.len(), 3);
    }
}

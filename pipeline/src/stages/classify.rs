//! The rules stage: from the tags and what extraction found, decides the class, scope,
//! discipline sub-kind, 实名, handling level and forwarding target of a letter, each with a
//! score and the reasons (which rule, which words). The scope test is who and what, not
//! topic words: an accusation needs a person in office (or a party member) as the actor of
//! misconduct words, and concrete facts. Thresholds, words and the rank ladder are data in
//! `config/`. A letter the rules cannot decide with confidence is marked for review, never an
//! error. Pure.

use crate::config::catalogue::{Catalogue, ConfidenceRules};
use crate::stages::extract::{admin_level, Extracted, Mention, Role};
use crate::stages::tag::{Category, Tag};
use std::collections::BTreeSet;
use xinfang_models::{Confidence, HandlingLevel, LetterClass, Subject};

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
    /// Of each field (the repeat field is settled later, against the store).
    pub confidence: Confidence,
    /// Whom the letter is about, for repeat detection: the subjects, or for a letter without
    /// substance that accuses no one, the officials it names.
    pub matter_subjects: Vec<Subject>,
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
        let officials: Vec<usize> = (0..persons.len()).filter(|&i| persons[i].role != Role::Private).collect();
        // Only one the writer names as the reported person: an official who merely passes
        // through the story (a policeman, a village head watching) is nobody's actor.
        // Or, in a letter that raises no other organ's matter, the only official it names.
        let other_matter = tags.iter().any(|t| t.is(|c| matches!(c, Category::OutOfScope(_))));
        let sole_official = match officials.as_slice() {
            [one] if persons[*one].labelled || !other_matter => Some(*one),
            _ => None,
        };
        let mut actor_of: Vec<Option<usize>> = vec![None; sents.len()];
        let mut writer_speaks: Vec<bool> = vec![false; sents.len()];
        let mut last: Option<(usize, usize)> = None;
        for (si, &(s, e)) in sents.iter().enumerate() {
            let here: Vec<usize> = persons
                .iter()
                .enumerate()
                .filter(|(_, p)| p.mentions.iter().any(|&m| m >= s && m < e))
                .map(|(i, _)| i)
                .collect();
            let sentence = text[s..e].trim_start();
            // The writer speaking of themselves, unless the sentence is about him or her
            // (「俺二叔去年给他送了两条烟」).
            let first_person = (sentence.starts_with('我') || sentence.starts_with('俺'))
                && !["我村", "我们村", "俺村", "俺们村", "我们那", "俺们那"].iter().any(|p| sentence.starts_with(p))
                && !sentence.contains('他')
                && !sentence.contains('她');
            let actor = if let Some(&official) = here.iter().find(|&&i| persons[i].role != Role::Private) {
                Some(official)
            } else if let Some(&p) = here.first() {
                Some(p)
            } else if first_person {
                None
            } else {
                // He or she of the sentences before; in a letter about one official, that one.
                last.filter(|&(_, at)| si - at <= 3).map(|(p, _)| p).or(sole_official)
            };
            if let Some(p) = actor {
                if !here.is_empty() {
                    last = Some((p, si));
                }
            }
            actor_of[si] = actor;
            writer_speaks[si] = first_person;
        }
        // A letter that tells the deed before the doer (「扣我们的青苗钱……这事是村支书孙某某经手的」):
        // an opening sentence nobody did takes the first person named in the next two.
        let first_named = actor_of.iter().position(Option::is_some);
        if let Some(at) = first_named.filter(|&at| at > 0 && at <= 2) {
            let p = actor_of[at];
            let skip = usize::from(at == 2 && sents.len() > 3);
            for (a, &own) in actor_of.iter_mut().zip(&writer_speaks).take(at).skip(skip) {
                // What happened to the writer (「我家的补贴还没发」) is nobody's deed yet.
                if !own {
                    *a = p;
                }
            }
        }

        // A guess (「法官是不是收了钱？」) or a disclaimer (「我不是要告法官」) alleges nothing:
        // its misconduct words accuse no one, and whom a disclaimer names is not accused.
        let has_any = |t: &str, words: &[String]| words.iter().any(|w| t.contains(w.as_str()));
        let disclaims: Vec<bool> = sents.iter().map(|&(s, e)| has_any(&text[s..e], &k.hedge.disclaimer)).collect();
        let hedged: Vec<bool> =
            sents.iter().zip(&disclaims).map(|(&(s, e), &d)| d || has_any(&text[s..e], &k.hedge.speculation)).collect();
        let disclaimed: Vec<bool> = persons
            .iter()
            .map(|p| p.mentions.iter().any(|&m| disclaims.get(sentence_of(&sents, m)).copied().unwrap_or(false)))
            .collect();
        let hedged_words: BTreeSet<&str> = tags
            .iter()
            .filter(|t| t.is(|c| matches!(c, Category::Behaviour(_))))
            .filter(|t| hedged.get(sentence_of(&sents, t.start)).copied().unwrap_or(false))
            .map(|t| t.word.as_str())
            .collect();
        let mut acc = vec![0f32; persons.len()];
        let mut acts: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); persons.len()];
        let mut sub_kinds: Vec<(f32, usize)> = Vec::new();
        // Public money or a benefit taken or handed over, however worded.
        let mut transferred: Vec<bool> = vec![false; persons.len()];
        if !k.transfer.objects.is_empty() {
            for (si, &(s, e)) in sents.iter().enumerate() {
                let t = &text[s..e];
                if hedged.get(si).copied() == Some(false)
                    && has_any(t, &k.transfer.objects)
                    && has_any(t, &k.transfer.verbs)
                {
                    if let Some(p) = actor_of.get(si).copied().flatten() {
                        if !transferred[p] {
                            acc[p] += k.transfer.weight;
                            transferred[p] = true;
                        }
                    }
                }
            }
        }
        // Money in the sentence of an act is evidence of it: 「每亩给扣了20块」.
        let mut money_sentences = BTreeSet::new();
        for a in ex.amounts.iter().filter(|a| a.start < ex.signature_start) {
            let si = sentence_of(&sents, a.start);
            if hedged.get(si).copied() == Some(false) && money_sentences.insert(si) {
                if let Some(p) = actor_of.get(si).copied().flatten() {
                    acc[p] += 0.25;
                }
            }
        }
        for t in tags {
            let si = sentence_of(&sents, t.start);
            if hedged.get(si).copied().unwrap_or(false) {
                continue;
            }
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
            .filter(|&i| {
                acc[i] >= sc.accusation_min || persons[i].labelled && !disclaimed[i] && total_acc >= sc.accusation_min
            })
            .collect();
        let private_accused =
            (0..persons.len()).any(|i| persons[i].role == Role::Private && acc[i] >= sc.accusation_min);
        // Concrete facts in the body of the letter (the signature's date is not one).
        let body = |pos: usize| pos < ex.signature_start;
        let amounts: BTreeSet<&str> = ex.amounts.iter().filter(|a| body(a.start)).map(|a| a.value.as_str()).collect();
        let dates: BTreeSet<&str> = ex.dates.iter().filter(|d| body(d.start)).map(|d| d.value.as_str()).collect();
        let acts_total: BTreeSet<&str> = accused.iter().flat_map(|&i| acts[i].iter().copied()).collect();
        // Offence names (贪污受贿) accuse but are not facts; what was done, to whom, how much
        // and how many are.
        let is_charge = |w: &str| k.charges.words.iter().any(|c| c == w);
        let mut concrete: BTreeSet<&str> = acts_total.iter().copied().filter(|w| !is_charge(w)).collect();
        if accused.iter().any(|&i| transferred[i]) {
            concrete.insert("（公款公物被拿或被送）");
        }
        let quantities: BTreeSet<&str> =
            ex.quantities.iter().filter(|q| body(q.start)).map(|q| q.value.as_str()).collect();
        let facts = amounts.len() + dates.len() + concrete.len().min(3) + quantities.len().min(2);
        let charges: BTreeSet<&str> = tags.iter().map(|t| t.word.as_str()).filter(|w| is_charge(w)).collect();

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
        let suggestion_unnamed = if proposals > 0 { proposals as f32 + topics.min(3) as f32 * 0.5 } else { 0.0 };
        let vague: Vec<&str> = tags
            .iter()
            .filter(|t| t.is(|c| c == Category::Vague))
            .map(|t| t.word.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // A letter that calls people corrupt and demands they be punished (大贪官, 严查,
        // 权钱交易 …) is not a suggestion about the work, however it is worded.
        let names_official = persons.iter().any(|p| p.role == Role::Official && p.subject.name.is_some());
        let denounces = vague.len() >= 2 || !vague.is_empty() && (charges.len() > proposals || names_official);
        let suggestion_unnamed = if denounces { 0.0 } else { suggestion_unnamed };
        let suggestion = if names_official { 0.0 } else { suggestion_unnamed };
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
        // A writer asking for something for themselves, or against a policy, accusing no one.
        // The words that made a sentence a request (never the sentence itself: it may carry
        // the writer's name, which stays out of the decision).
        let first_of = |t: &str, words: &[String]| words.iter().find(|w| t.contains(w.as_str())).cloned();
        let self_requests: Vec<String> = sents
            .iter()
            .map(|&(s, e)| &text[s..e])
            .filter_map(|t| Some(format!("{}…{}", first_of(t, &k.request.asks)?, first_of(t, &k.request.for_self)?)))
            .collect();
        let policy: Vec<&str> =
            k.request.policy.iter().filter(|w| text.contains(w.as_str())).map(String::as_str).collect();
        let request_kind = k.out_of_scope.iter().position(|o| o.kind == k.request.kind);
        if let (Some(i), true) = (request_kind, accused.is_empty() && (!self_requests.is_empty() || !policy.is_empty()))
        {
            oos[i] += 1.0;
            oos_words[i].insert(if policy.is_empty() { "asks for themselves" } else { policy[0] });
            if let Some(words) = self_requests.first() {
                reasons.push(format!("the writer asks for something for themselves ({words})"));
            }
        }
        let incoherent: BTreeSet<&str> =
            k.incoherent.words.iter().filter(|w| text.contains(w.as_str())).map(String::as_str).collect();
        let best_oos = oos.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, s)| (i, *s));
        let oos_score = best_oos.map_or(0.0, |b| b.1);

        let acc_best = accused.iter().map(|&i| acc[i]).fold(0.0, f32::max);
        // A letter that follows up an earlier one (「之前反映过」「补充」) leans on the facts it
        // gave: one concrete fact of its own is enough.
        let follows_up = tags.iter().any(|t| t.is(|c| c == Category::RepeatHint || c == Category::NewFacts));
        let facts_needed = if follows_up { sc.facts_min.saturating_sub(1).max(1) } else { sc.facts_min };
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
        } else if incoherent.len() >= 2 && (accused.is_empty() || facts as u32 <= sc.facts_min) {
            // An incoherent letter stays without substance unless it accuses someone with
            // more facts than the least an accusation needs.
            reasons.push(format!(
                "无实质内容: the letter cannot be followed ({})",
                incoherent.iter().copied().collect::<Vec<_>>().join("、")
            ));
            (LetterClass::NoSubstance, 0.7, false)
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
        } else if !accused.is_empty() && facts as u32 >= facts_needed {
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
        if !hedged_words.is_empty() {
            reasons.push(format!(
                "not taken as alleged: {} (in a guess or a disclaimer: rules hedge.speculation, hedge.disclaimer)",
                hedged_words.iter().copied().collect::<Vec<_>>().join("、")
            ));
        }
        if !vague.is_empty() && class == LetterClass::Accusation {
            reasons.push(format!("also uses words without substance ({})", vague.join("、")));
        }
        // How sure the class is: the branch's score, lowered where the letter stands near
        // another branch (an accusation resting on the least facts or on offence names
        // alone; a letter without substance that names an official beside money or a domain).
        let cf = &r.confidence;
        if class == LetterClass::Accusation {
            if facts as u32 <= sc.facts_min {
                score = score.min(cf.accusation_least_facts);
            }
            if concrete.is_empty() {
                score = score.min(cf.accusation_charges_only);
            }
        }
        let official_with_matter = persons.iter().any(|p| p.role != Role::Private)
            && (!amounts.is_empty() || tags.iter().any(|t| t.is(|c| matches!(c, Category::Domain(_)))));
        if class == LetterClass::NoSubstance && official_with_matter {
            score = score.min(cf.no_substance_with_matter);
        }
        if score < sc.review_below {
            review = true;
            reasons.push(format!(
                "review: 问题类别 doubtful (confidence {score:.2} below scores.review_below = {})",
                sc.review_below
            ));
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
        // Whom a thin letter is about, for repeat detection: a short re-sent letter that alone
        // has too few facts is still about the official it names.
        let matter_subjects: Vec<Subject> = if subjects.is_empty() && class == LetterClass::NoSubstance {
            persons.iter().filter(|p| p.role != Role::Private).map(|p| p.subject.clone()).collect()
        } else {
            subjects.clone()
        };

        // Handling level.
        let (handling_level, level_conf) = if class.in_scope() {
            let (level, why) = self.level(&subjects, class);
            reasons.push(why);
            (Some(level), level_confidence(&subjects, class, level, cf))
        } else {
            (None, 1.0)
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
        // Half the evidence (a name without a contact, or a contact without a name) is where
        // a name or a phone standing apart from the other is missed.
        let named_conf = match (who, contact) {
            (true, true) => cf.named_both,
            (false, false) => cf.named_neither,
            _ => cf.named_half,
        };
        let confidence = Confidence { class: score, named: named_conf, level: level_conf, repeat: 1.0 };
        for (field, value) in [("实名", named_conf), ("分级受理", level_conf)] {
            if value < sc.review_below {
                review = true;
                reasons.push(format!(
                    "review: {field} doubtful (confidence {value:.2} below scores.review_below = {})",
                    sc.review_below
                ));
            }
        }

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
            confidence,
            matter_subjects,
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

/// How sure the level is: a rank read from a post in a unit whose level is known is sure;
/// a post without its unit less so; no rank at all (本级 by default) least, for an accusation.
fn level_confidence(subjects: &[Subject], class: LetterClass, level: HandlingLevel, cf: &ConfidenceRules) -> f32 {
    let ranked = subjects.iter().filter(|s| s.rank.is_some());
    let placed = subjects.iter().any(|s| s.rank.is_some() && s.unit.as_deref().and_then(admin_level).is_some());
    match (ranked.count(), placed) {
        _ if class != LetterClass::Accusation && level == HandlingLevel::Own => cf.level_placed,
        (0, _) => cf.level_none,
        (_, true) => cf.level_placed,
        (_, false) if level == HandlingLevel::Lower => cf.level_lower,
        (_, false) => cf.level_unplaced,
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

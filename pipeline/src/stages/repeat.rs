//! First or repeat (初次件/重复件): the fingerprint of a letter — index keys for its reported
//! persons, a MinHash signature of its words with LSH band keys, and hashed fact keys — and
//! the comparison of a letter with earlier candidates found through those keys.
//! 「同人同事」: the same reported person and substantially the same facts is a repeat of the
//! earliest such letter; the same person with new substantive facts is `new_facts_of` it
//! and goes to review; the near misses (another official, another allegation, another
//! village, a namesake elsewhere) are neither. Fingerprints hold hashes only, never readable
//! content, so a 上级 routing stub can keep one. Pure: the store finds the candidates.

use crate::config::catalogue::RepeatRules;
use std::collections::{BTreeMap, BTreeSet};
use xinfang_models::{Candidate, Fingerprint, LookupKey, Subject, SubjectPrint};

/// A stable 64-bit hash (FNV-1a): stored fingerprints must compare across versions and runs.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The verdict for a letter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RepeatVerdict {
    pub repeat_of: Option<String>,
    pub new_facts_of: Option<String>,
    pub similarity: f32,
    pub reasons: Vec<String>,
    /// How sure the verdict is, 0–1: a first letter with no near candidate is sure; a
    /// similarity close to `same_matter` on either side is not.
    pub confidence: f32,
}

/// Builds fingerprints and judges candidates.
pub struct RepeatRulesCompiled {
    rules: RepeatRules,
    synonyms: BTreeMap<String, String>,
}

/// Canonical post: the synonym table's head word, or the post itself.
fn canonical<'a>(synonyms: &'a BTreeMap<String, String>, post: &'a str) -> &'a str {
    synonyms.get(post).map_or(post, String::as_str)
}

/// The lowest unit in a unit string: 柳河村 of 石桥镇柳河村, 民政局 of 青岚县民政局.
pub fn lowest_unit(unit: &str) -> &str {
    let mut unit = unit;
    for suffix in ["人民政府", "政府", "党委", "党支部", "村委会", "委员会", "居委会"] {
        if let Some(u) = unit.strip_suffix(suffix).filter(|u| u.chars().count() >= 2) {
            unit = u;
            break;
        }
    }
    let markers = ["街道", "社区", "村", "镇", "乡", "县", "区", "市", "省"];
    let mut cut = 0;
    for (i, _) in unit.char_indices() {
        if let Some(m) = markers.iter().find(|m| unit[i..].starts_with(**m)) {
            let end = i + m.len();
            // A tail of one or two characters (三组) is too little to tell units apart.
            if unit[end..].chars().count() >= 3 {
                cut = end;
            }
        }
    }
    &unit[cut..]
}

/// The unit as letters name it however they spell it: a bureau's first two characters and
/// its kind (交通局 for 交通运输局 and 县交通局, 医保局 for 医疗保障局 is not caught, 水利局);
/// a village or town as it is.
pub fn unit_core(unit: &str) -> String {
    let low = lowest_unit(unit);
    let kinds = ["局", "委", "办", "所", "站", "院", "中心", "大队", "公司", "学校", "小学", "中学"];
    match kinds.iter().find(|k| low.ends_with(**k)) {
        Some(kind) if low.chars().count() > 3 => {
            let head: String = low.chars().take(2).collect();
            format!("{head}{kind}")
        }
        _ => low.to_string(),
    }
}

/// Words for whoever heads a unit (一把手): they match the head post of the other letter.
const HEAD_WORDS: [&str; 4] = ["一把手", "主要负责人", "负责人", "主要领导"];

/// The lowest place a unit names: 柳河村 of 石桥镇柳河村党支部, 白沙镇 of 白沙镇人民政府.
pub fn lowest_place(unit: &str) -> Option<&str> {
    let mut best: Option<&str> = None;
    let mut start = 0;
    for (i, c) in unit.char_indices() {
        if matches!(c, '村' | '镇' | '乡') {
            let end = i + c.len_utf8();
            let name = &unit[start..end];
            if name.chars().count() >= 2 {
                best = Some(name);
            }
            start = end;
        } else if matches!(c, '县' | '市' | '省' | '区') {
            start = i + c.len_utf8();
        }
    }
    best
}

/// How much sharing `key` says two letters are about the same matter, to rank candidates
/// when there are more than a lookup compares: a full name most, a name part with a unit or
/// post next, a MinHash band or a bare post or surname least.
fn key_weight(key: &str) -> u32 {
    match key.as_bytes().first() {
        Some(b'n') => 8,
        _ if key.starts_with("su") || key.starts_with("up") || key.starts_with("sp") => 4,
        _ => 1,
    }
}

fn surname_of(name: &str) -> &str {
    if let Some(c) = crate::stages::extract::COMPOUND_SURNAMES.iter().find(|c| name.starts_with(*c)) {
        return &name[..c.len()];
    }
    name.char_indices().nth(1).map_or(name, |(i, _)| &name[..i])
}

impl RepeatRulesCompiled {
    pub fn new(rules: &RepeatRules, post_synonyms: &BTreeMap<String, Vec<String>>) -> RepeatRulesCompiled {
        let mut synonyms = BTreeMap::new();
        for (head, words) in post_synonyms {
            for w in words {
                synonyms.insert(w.clone(), head.clone());
            }
        }
        RepeatRulesCompiled { rules: rules.clone(), synonyms }
    }

    pub fn rules(&self) -> &RepeatRules {
        &self.rules
    }

    /// The fingerprint of a letter from its reported persons, words and facts.
    pub fn fingerprint<'a>(
        &self,
        subjects: &[Subject],
        words: impl Iterator<Item = &'a str>,
        facts: &[String],
        amounts: &[String],
        claims_new: bool,
    ) -> Fingerprint {
        let subjects = subjects
            .iter()
            .map(|s| {
                let full = s.name.as_deref().filter(|n| !n.contains('某'));
                SubjectPrint {
                    name: full.map(stable_hash),
                    surname: s.name.as_deref().map(|n| stable_hash(surname_of(n))),
                    unit: s.unit.as_deref().map(|u| stable_hash(&unit_core(u))),
                    post: s.post.as_deref().map(|p| {
                        // 「李楼村的李主任」: a bare 主任 or 书记 of a village is its 村主任, 村书记.
                        let in_village = s.unit.as_deref().and_then(lowest_place).is_some_and(|u| u.ends_with('村'));
                        let village_post = format!("村{p}");
                        let p = if HEAD_WORDS.contains(&p) {
                            HEAD_WORDS[0]
                        } else if in_village && matches!(p, "主任" | "书记" | "支书") {
                            canonical(&self.synonyms, &village_post)
                        } else {
                            canonical(&self.synonyms, p)
                        };
                        stable_hash(p)
                    }),
                    place: s.unit.as_deref().and_then(lowest_place).map(stable_hash),
                }
            })
            .collect();
        let set: BTreeSet<u64> = words.map(stable_hash).collect();
        let n = self.rules.minhash_bands * self.rules.minhash_rows;
        let minhash = (0..n)
            .map(|i| {
                let seed = mix(i as u64 + 1);
                set.iter().map(|h| (mix(h ^ seed) >> 32) as u32).min().unwrap_or(u32::MAX)
            })
            .collect();
        Fingerprint {
            subjects,
            minhash,
            facts: facts.iter().map(|f| stable_hash(f)).collect::<BTreeSet<_>>().into_iter().collect(),
            amounts: amounts.iter().map(|a| stable_hash(a)).collect::<BTreeSet<_>>().into_iter().collect(),
            claims_new,
            specifics: Vec::new(),
        }
    }

    /// Hashes of the specific words of a letter (`Fingerprint::specifics`).
    pub fn specific_hashes<'a>(&self, words: impl Iterator<Item = &'a str>) -> Vec<u64> {
        words.map(stable_hash).collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// Index keys of a fingerprint: one per way of naming each reported person, and the
    /// MinHash bands. Stored with the case.
    pub fn keys(&self, fp: &Fingerprint) -> Vec<String> {
        self.key_set(fp, true)
    }

    /// The keys a new letter is looked up by: as `keys`, but the broad ones (the post alone,
    /// the surname alone) only for a person the letter names no better, so that a common
    /// post does not bring hundreds of candidates for every letter.
    pub fn lookup_keys(&self, fp: &Fingerprint) -> Vec<LookupKey> {
        self.key_set(fp, false).into_iter().map(|key| LookupKey { weight: key_weight(&key), key }).collect()
    }

    fn key_set(&self, fp: &Fingerprint, index: bool) -> Vec<String> {
        let mut keys = BTreeSet::new();
        for s in &fp.subjects {
            if let Some(n) = s.name {
                keys.insert(format!("n{n:016x}"));
            }
            if let (Some(sn), Some(u)) = (s.surname, s.unit) {
                keys.insert(format!("su{:016x}", mix(sn ^ u.rotate_left(1))));
            }
            if let (Some(u), Some(p)) = (s.unit, s.post) {
                keys.insert(format!("up{:016x}", mix(u ^ p.rotate_left(2))));
            }
            if let (Some(sn), Some(p)) = (s.surname, s.post) {
                keys.insert(format!("sp{:016x}", mix(sn ^ p.rotate_left(3))));
            }
            // A letter may name the person only by post (「副县长」) or only by a partial
            // name (「孙某某」): those letters look up by the post or surname alone.
            let bare_post = s.surname.is_none();
            let bare_surname = s.name.is_none() && s.unit.is_none() && s.post.is_none();
            if let Some(p) = s.post.filter(|_| index || bare_post) {
                keys.insert(format!("po{:016x}", mix(p.rotate_left(4))));
            }
            if let Some(sn) = s.surname.filter(|_| index || bare_surname) {
                keys.insert(format!("sn{:016x}", mix(sn.rotate_left(5))));
            }
        }
        if !fp.minhash.iter().all(|&h| h == u32::MAX) {
            for (b, band) in fp.minhash.chunks(self.rules.minhash_rows).enumerate() {
                let mut h = stable_hash(&format!("band{b}"));
                for v in band {
                    h = mix(h ^ u64::from(*v));
                }
                keys.insert(format!("b{h:016x}"));
            }
        }
        keys.into_iter().collect()
    }

    /// Compares a letter with earlier candidates (oldest first) and decides.
    pub fn judge(&self, fp: &Fingerprint, candidates: &[Candidate]) -> RepeatVerdict {
        let mut best: Option<(f32, &Candidate)> = None;
        let mut closest: Option<(f32, &Candidate)> = None;
        // Same person, a letter saying it brings new facts, though the wording differs.
        let mut new_facts: Option<(f32, &Candidate)> = None;
        for c in candidates {
            let same_person = same_subject(&fp.subjects, &c.fingerprint.subjects);
            let bar = self.rules.same_matter;
            let text_sim = minhash_similarity(&fp.minhash, &c.fingerprint.minhash);
            let fact_sim = jaccard(&fp.facts, &c.fingerprint.facts);
            // Shared specific words (a restaurant, a plate number, a project) tell one matter
            // told twice in other words.
            let specific_sim = overlap(&fp.specifics, &c.fingerprint.specifics, self.rules.specific_min_shared);
            let sim = (0.5 * text_sim + 0.5 * fact_sim).max(self.rules.specific_weight * specific_sim);
            let matches = match same_person {
                Some(Match::Person | Match::PostOnly) => sim >= bar,
                // No person to compare on either side: only a near copy counts.
                None => text_sim >= 0.6,
                Some(Match::Different) => false,
            };
            if matches!(same_person, Some(Match::Person | Match::PostOnly))
                && closest.as_ref().is_none_or(|(s, _)| sim > *s)
            {
                closest = Some((sim, c));
            }
            // Candidates come oldest first: the earliest matching letter is the original.
            if matches && best.is_none() {
                best = Some((sim, c));
            }
            if same_person == Some(Match::Person)
                && fp.claims_new
                && sim >= 0.02
                && best.is_none()
                && new_facts.is_none()
            {
                new_facts = Some((sim, c));
            }
        }
        let bar = self.rules.same_matter;
        if let (None, Some((sim, c))) = (&best, new_facts) {
            return RepeatVerdict {
                new_facts_of: Some(c.root.clone()),
                similarity: sim,
                confidence: 0.5,
                reasons: vec![format!(
                    "same reported person as {}, and the letter says it brings new facts or evidence (similarity {sim:.2})",
                    c.case_no
                )],
                ..RepeatVerdict::default()
            };
        }
        let Some((sim, c)) = best else {
            let near = closest.as_ref().is_some_and(|(sim, _)| *sim >= bar * self.rules.near_miss);
            let mut v = RepeatVerdict { confidence: if near { 0.6 } else { 0.95 }, ..RepeatVerdict::default() };
            if let Some((sim, c)) = closest {
                v.reasons.push(format!(
                    "same reported person as {} but a different matter (similarity {sim:.2} < repeat.same_matter {})",
                    c.case_no, self.rules.same_matter
                ));
            }
            return v;
        };
        let new_amounts = fp.amounts.iter().filter(|a| !c.fingerprint.amounts.contains(a)).count();
        let new_facts = fp.facts.iter().filter(|f| !c.fingerprint.facts.contains(f)).count();
        let new_specifics = fp.specifics.iter().filter(|f| !c.fingerprint.specifics.contains(f)).count();
        // New facts: the letter says it brings evidence and adds anything (an amount, an act,
        // a name or a document the first did not have), or it adds many new amounts.
        let adds = new_amounts + new_facts + new_specifics;
        let score = if fp.claims_new && adds >= 1 || new_amounts >= 3 { self.rules.new_facts_min } else { 0 };
        let clear = if sim >= bar * self.rules.clear_repeat { 0.9 } else { 0.7 };
        let mut v = RepeatVerdict { similarity: sim, confidence: clear, ..RepeatVerdict::default() };
        if score >= self.rules.new_facts_min {
            v.confidence = 0.5;
            v.new_facts_of = Some(c.root.clone());
            v.reasons.push(format!(
                "same reported person as {} (similarity {sim:.2}) with new facts: {new_amounts} new amount(s), {new_facts} new fact key(s){}",
                c.case_no,
                if fp.claims_new { ", says it brings new evidence" } else { "" }
            ));
        } else {
            v.repeat_of = Some(c.root.clone());
            v.reasons.push(format!(
                "same reported person and substantially the same facts as {} (similarity {sim:.2}): 同人同事",
                c.case_no
            ));
        }
        v
    }
}

/// How two letters' reported persons compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Match {
    Different,
    /// One side names only a post, the same as the other's.
    PostOnly,
    Person,
}

/// Whether two letters are about the same person: `None` when either names nobody.
fn same_subject(a: &[SubjectPrint], b: &[SubjectPrint]) -> Option<Match> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    a.iter().flat_map(|x| b.iter().map(move |y| person_match(x, y))).max()
}

fn person_match(x: &SubjectPrint, y: &SubjectPrint) -> Match {
    // Only places (村, 镇 …) tell namesakes apart: bureaus are written too many ways
    // (市场监管局, 县市场监督管理局) to conflict.
    let units_conflict = matches!((x.place, y.place), (Some(a), Some(b)) if a != b);
    let bare = |s: &SubjectPrint| s.surname.is_none() && s.unit.is_none();
    if (bare(x) || bare(y)) && x.post.is_some() && x.post == y.post && !units_conflict {
        return Match::PostOnly;
    }
    // Only a surname on one side (「孙某某」 with nothing else, or 「一把手赵某某」): as weak
    // as a post alone, unless the posts tell them apart.
    let head = stable_hash(HEAD_WORDS[0]);
    let posts_conflict = matches!((x.post, y.post), (Some(a), Some(b)) if a != b && a != head && b != head);
    let only_surname = |s: &SubjectPrint| s.name.is_none() && s.unit.is_none();
    if (only_surname(x) || only_surname(y))
        && x.surname.is_some()
        && x.surname == y.surname
        && !units_conflict
        && !posts_conflict
    {
        return Match::PostOnly;
    }
    match (x.name, y.name) {
        (Some(a), Some(b)) if a == b && !units_conflict => Match::Person,
        (Some(_), Some(_)) => Match::Different,
        _ => {
            let surname_ok = match (x.surname, y.surname) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            let unit_eq = matches!((x.unit, y.unit), (Some(a), Some(b)) if a == b);
            let post_eq = matches!((x.post, y.post), (Some(a), Some(b)) if a == b);
            let both_surnames = x.surname.is_some() && y.surname.is_some();
            if !surname_ok || units_conflict {
                Match::Different
            } else if unit_eq && post_eq || both_surnames && (unit_eq || post_eq) {
                Match::Person
            } else if post_eq && (x.unit.is_none() || y.unit.is_none()) {
                // The same post, but nothing else to tell two holders apart.
                Match::PostOnly
            } else {
                Match::Different
            }
        }
    }
}

fn minhash_similarity(a: &[u32], b: &[u32]) -> f32 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y && **x != u32::MAX).count() as f32 / a.len() as f32
}

/// Shared items over the smaller set; 0 when fewer than `least` are shared.
fn overlap(a: &[u64], b: &[u64], least: usize) -> f32 {
    let shared = a.iter().filter(|x| b.contains(x)).count();
    if shared < least {
        return 0.0;
    }
    shared as f32 / a.len().min(b.len()) as f32
}

fn jaccard(a: &[u64], b: &[u64]) -> f32 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let inter = a.iter().filter(|x| b.contains(x)).count();
    inter as f32 / (a.len() + b.len() - inter) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RepeatRulesCompiled {
        let r = RepeatRules {
            same_matter: 0.3,
            new_facts_min: 2,
            max_candidates_per_key: 100,
            max_candidates: 100,
            minhash_bands: 16,
            minhash_rows: 4,
            near_miss: 0.6,
            clear_repeat: 1.5,
            specific_weight: 0.5,
            specific_min_shared: 2,
        };
        let mut syn = BTreeMap::new();
        syn.insert("村党支部书记".to_string(), vec!["村支书".to_string(), "支书".to_string()]);
        RepeatRulesCompiled::new(&r, &syn)
    }

    fn subject(name: &str, unit: &str, post: &str) -> Subject {
        Subject { name: Some(name.into()), unit: Some(unit.into()), post: Some(post.into()), rank: None }
    }

    fn fp(r: &RepeatRulesCompiled, s: Subject, words: &str, facts: &[&str]) -> Fingerprint {
        let facts: Vec<String> = facts.iter().map(|s| s.to_string()).collect();
        let amounts: Vec<String> = facts.iter().filter(|f| f.starts_with("amount")).cloned().collect();
        r.fingerprint(&[s], words.split(' '), &facts, &amounts, false)
    }

    #[test]
    fn same_person_same_facts_is_a_repeat_of_the_root() {
        let r = rules();
        let first = fp(
            &r,
            subject("赵德明", "石桥镇柳河村", "村支书"),
            "低保 弟媳 外甥 公示 开会",
            &["domain:低保", "act:人情保"],
        );
        let again =
            fp(&r, subject("赵某某", "柳河村", "支书"), "低保 弟媳 外甥 没有 公示", &["domain:低保", "act:人情保"]);
        let c = Candidate { case_no: "B".into(), root: "A".into(), fingerprint: first };
        let v = r.judge(&again, &[c]);
        assert_eq!(v.repeat_of.as_deref(), Some("A"), "{v:?}");
    }

    #[test]
    fn namesakes_in_other_units_are_not_repeats() {
        let r = rules();
        let a = fp(&r, subject("王建国", "白沙镇", "镇长"), "低保 亲戚", &["domain:低保"]);
        let b = fp(&r, subject("王建国", "云溪乡", "乡长"), "低保 亲戚", &["domain:低保"]);
        let v = r.judge(&b, &[Candidate { case_no: "A".into(), root: "A".into(), fingerprint: a }]);
        assert_eq!((v.repeat_of, v.new_facts_of), (None, None));
        assert!(v.confidence > 0.9, "no near candidate: a sure first letter");
    }

    #[test]
    fn a_bureau_however_spelled_and_its_head_however_called() {
        assert_eq!(unit_core("清河县交通运输局"), unit_core("交通局"));
        assert_ne!(unit_core("清河县民政局"), unit_core("柳林乡民政所"));
        let r = rules();
        let first = fp(&r, subject("赵国栋", "清河县交通运输局", "局长"), "福满楼 会议费 公车 接送", &["domain:作风"]);
        let post_only = Subject { name: None, unit: Some("交通局".into()), post: Some("局长".into()), rank: None };
        let again = fp(&r, post_only, "福满楼 会议费 公车 孩子", &["domain:作风"]);
        let c = Candidate { case_no: "A".into(), root: "A".into(), fingerprint: first.clone() };
        assert_eq!(r.judge(&again, &[c]).repeat_of.as_deref(), Some("A"));
        let head = Subject { name: Some("赵某某".into()), unit: None, post: Some("一把手".into()), rank: None };
        let again = fp(&r, head, "福满楼 会议费 公车 孩子", &["domain:作风"]);
        let c = Candidate { case_no: "A".into(), root: "A".into(), fingerprint: first };
        assert_eq!(r.judge(&again, &[c]).repeat_of.as_deref(), Some("A"), "一把手赵某某 is 局长赵国栋");
    }

    #[test]
    fn shared_specific_words_tell_one_matter_retold() {
        let r = rules();
        let mut a = fp(&r, subject("赵国栋", "交通运输局", "局长"), "私宴 报销 单位", &["domain:作风"]);
        let mut b =
            fp(&r, subject("赵国栋", "交通运输局", "局长"), "吃饭 两桌 公车 上下学", &["domain:作风", "act:公车"]);
        a.specifics = r.specific_hashes(["福满楼", "K5A217", "帕萨特"].into_iter());
        b.specifics = r.specific_hashes(["福满楼", "K5A217"].into_iter());
        let c = Candidate { case_no: "A".into(), root: "A".into(), fingerprint: a.clone() };
        assert_eq!(r.judge(&b, &[c]).repeat_of.as_deref(), Some("A"));
        b.specifics = r.specific_hashes(["福满楼", "东平饭店"].into_iter());
        let c = Candidate { case_no: "A".into(), root: "A".into(), fingerprint: a };
        assert_eq!(r.judge(&b, &[c]).repeat_of, None, "one shared word is not enough");
    }

    #[test]
    fn lowest_unit_drops_the_town() {
        assert_eq!(lowest_unit("石桥镇柳河村"), "柳河村");
        assert_eq!(lowest_unit("柳河村"), "柳河村");
        assert_eq!(lowest_unit("青岚县民政局"), "民政局");
    }
}

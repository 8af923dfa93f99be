//! The rule data of the understanding stages: the keyword catalogue, the rules (rank ladder,
//! levels, thresholds), the working-day calendar and the jieba user dictionary, read from
//! `config/` (paths in the `[rules]` section of xinfang.toml, relative to that file) or, when
//! the binary runs without a config folder, from the copies compiled into it.
//! Parsed with unknown fields denied and validated as a whole, so that every problem is
//! reported at once. This module only reads files; compiling them is each stage's job.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;
use xinfang_models::CandidateLimits;

/// Problems with the rule files.
#[derive(Debug, Error)]
pub enum CatalogueError {
    #[error("cannot read rule file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot parse rule file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid rule files:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Where the rule files are, relative to the directory of xinfang.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePaths {
    pub keywords: PathBuf,
    pub rules: PathBuf,
    pub calendar: PathBuf,
    pub dictionary: PathBuf,
}

/// `keywords.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keywords {
    pub fold: Fold,
    pub domain: Vec<WordGroup>,
    pub behaviour: Vec<BehaviourGroup>,
    pub vague: Words,
    pub out_of_scope: Vec<OutOfScopeGroup>,
    pub appeal: AppealWords,
    pub suggestion: SuggestionWords,
    pub copied: Words,
    pub new_facts: Words,
    pub repeat_hint: Words,
    pub party: Words,
    /// Offence names (贪污受贿, 作风败坏): they accuse, but are not facts.
    #[serde(default)]
    pub charges: Words,
    /// Sentences that do not allege what they say: guesses and disclaimers.
    #[serde(default)]
    pub hedge: HedgeWords,
    /// A writer asking for something for themselves, or against a policy.
    #[serde(default)]
    pub request: RequestWords,
    /// Words of letters that cannot be followed (信号, 电波 …).
    #[serde(default)]
    pub incoherent: Words,
    /// Something of public value taken or handed over, however it is worded.
    #[serde(default)]
    pub transfer: TransferWords,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferWords {
    /// How much a sentence with both counts towards its actor's accusation score.
    pub weight: f32,
    /// Public money and benefits (补贴, 低保, 指标, 工程款, 集体的地 …) …
    pub objects: Vec<String>,
    /// … and the verbs of taking or handing them over (拿了, 占了, 给了他 …).
    pub verbs: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeWords {
    /// 「是不是收了钱」「可能」: a guess, not an allegation.
    pub speculation: Vec<String>,
    /// 「我不是要告法官」「不针对任何人」: the writer says they accuse no one.
    pub disclaimer: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestWords {
    /// The out-of-scope kind a request without an accusation is (its forwarding target).
    pub kind: String,
    /// Asking words (请, 求, 能不能 …) …
    pub asks: Vec<String>,
    /// … in a sentence that names the writer as who gets it (给我, 帮我们 …).
    pub for_self: Vec<String>,
    /// Complaints about a policy or a standard rather than a person.
    pub policy: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fold {
    /// Traditional and simplified characters, two by two.
    pub pairs: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Words {
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WordGroup {
    pub name: String,
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourGroup {
    pub sub_kind: String,
    pub weight: f32,
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutOfScopeGroup {
    pub kind: String,
    pub forward_to: String,
    pub weight: f32,
    pub words: Vec<String>,
    #[serde(default)]
    pub token_words: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppealWords {
    pub decisions: Vec<String>,
    pub appeals: Vec<String>,
    pub investigation: Vec<String>,
    pub treatment: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestionWords {
    pub proposals: Vec<String>,
    pub topics: Vec<String>,
}

/// `rules.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub version: String,
    pub organ: OrganRules,
    pub post: Vec<PostRule>,
    pub units: UnitRules,
    pub levels: BTreeMap<String, String>,
    pub scores: Scores,
    pub reporter: ReporterRules,
    pub repeat: RepeatRules,
    #[serde(default)]
    pub confidence: ConfidenceRules,
    pub deadlines: DeadlineRules,
    /// Canonical post → the words that mean it.
    pub post_synonyms: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganRules {
    pub name: String,
    pub own_head_units: Vec<String>,
    pub own_head_posts: Vec<String>,
    pub home_places: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostRule {
    pub words: Vec<String>,
    pub rank: String,
    /// Administrative level of the unit (省, 市, 县, 乡, 村) → rank.
    #[serde(default)]
    pub by_unit: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitRules {
    pub public: Vec<String>,
    pub suffixes: Vec<String>,
    pub private: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scores {
    pub accusation_min: f32,
    pub facts_min: u32,
    pub appeal_min: f32,
    pub suggestion_min: f32,
    pub out_of_scope_min: f32,
    pub review_below: f32,
    pub min_han_chars: usize,
    pub max_analysed_chars: usize,
    pub min_word_share: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReporterRules {
    pub anonymous_signatures: Vec<String>,
    pub name_labels: Vec<String>,
    pub address_labels: Vec<String>,
    pub unit_labels: Vec<String>,
    pub subject_labels: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatRules {
    pub same_matter: f32,
    pub new_facts_min: usize,
    pub max_candidates_per_key: u32,
    /// Fingerprints compared per letter at most: the candidates sharing the most (and the
    /// most telling) keys.
    #[serde(default = "default_max_candidates")]
    pub max_candidates: u32,
    pub minhash_bands: usize,
    pub minhash_rows: usize,
    /// A first letter whose closest same-person candidate reaches this share of
    /// `same_matter` is a near miss: its verdict is doubtful.
    #[serde(default = "default_near_miss")]
    pub near_miss: f32,
    /// A repeat whose similarity reaches this multiple of `same_matter` is clear.
    #[serde(default = "default_clear_repeat")]
    pub clear_repeat: f32,
    /// The similarity two letters get from their shared specific words: this times the
    /// share of the smaller set that is shared …
    #[serde(default = "default_specific_weight")]
    pub specific_weight: f32,
    /// … when at least this many are shared.
    #[serde(default = "default_specific_min_shared")]
    pub specific_min_shared: usize,
}

fn default_max_candidates() -> u32 {
    100
}
fn default_near_miss() -> f32 {
    0.6
}
fn default_clear_repeat() -> f32 {
    1.5
}
fn default_specific_weight() -> f32 {
    0.5
}
fn default_specific_min_shared() -> usize {
    2
}

/// `[confidence]` of rules.toml: how sure each field is, by the evidence behind it. Set by
/// hand and checked against `xinfang eval`'s reliability table on the tuning half.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfidenceRules {
    /// 实名: both a name (or unit) and a contact found; neither; only one of the two.
    pub named_both: f32,
    pub named_neither: f32,
    pub named_half: f32,
    /// Level: a rank read from a post in a unit whose level is known; a post without its
    /// unit; 下级 without a unit; no rank at all on an accusation.
    pub level_placed: f32,
    pub level_unplaced: f32,
    pub level_lower: f32,
    pub level_none: f32,
    /// Class, at most: an accusation with no more facts than `scores.facts_min`; one whose
    /// acts are offence names only; 无实质内容 naming an official beside money or a domain.
    pub accusation_least_facts: f32,
    pub accusation_charges_only: f32,
    pub no_substance_with_matter: f32,
}

impl Default for ConfidenceRules {
    fn default() -> ConfidenceRules {
        ConfidenceRules {
            named_both: 0.9,
            named_neither: 0.95,
            named_half: 0.7,
            level_placed: 0.9,
            level_unplaced: 0.75,
            level_lower: 0.8,
            level_none: 0.62,
            accusation_least_facts: 0.66,
            accusation_charges_only: 0.62,
            no_substance_with_matter: 0.5,
        }
    }
}

impl RepeatRules {
    /// How many earlier letters a repeat lookup reads.
    pub fn limits(&self) -> CandidateLimits {
        CandidateLimits { per_key: self.max_candidates_per_key, total: self.max_candidates }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineRules {
    pub notice_named_first: u32,
    pub route_up: u32,
    pub route_down: u32,
    pub forward_out_of_scope: u32,
}

/// `calendar.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarFile {
    /// The organ's time zone (IANA name): days of receipt, deadlines and the year of a case
    /// number are its days, whatever zone the server keeps.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    pub covered_until: String,
    pub holidays: Vec<String>,
    pub workdays: Vec<String>,
}

fn default_time_zone() -> String {
    "Asia/Shanghai".into()
}

/// All rule data, read and validated.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub keywords: Keywords,
    pub rules: Rules,
    pub calendar: CalendarFile,
    /// jieba user dictionary lines: `word [freq] [tag]`.
    pub dictionary: String,
}

const BUILTIN_KEYWORDS: &str = include_str!("../../../config/keywords.toml");
const BUILTIN_RULES: &str = include_str!("../../../config/rules.toml");
pub(super) const BUILTIN_CALENDAR: &str = include_str!("../../../config/calendar.toml");
const BUILTIN_DICTIONARY: &str = include_str!("../../../config/dict.txt");

impl Catalogue {
    /// Reads the rule files named by `paths`, relative to `base` (the folder of xinfang.toml).
    pub fn load(paths: &RulePaths, base: &Path) -> Result<Catalogue, CatalogueError> {
        let read = |p: &Path| {
            let path = base.join(p);
            std::fs::read_to_string(&path).map_err(|source| CatalogueError::Read { path, source })
        };
        Catalogue::parse(
            (&read(&paths.keywords)?, &base.join(&paths.keywords)),
            (&read(&paths.rules)?, &base.join(&paths.rules)),
            (&read(&paths.calendar)?, &base.join(&paths.calendar)),
            read(&paths.dictionary)?,
        )
    }

    /// The rule files compiled into the binary (the shipped `config/`).
    pub fn builtin() -> Result<Catalogue, CatalogueError> {
        Catalogue::parse(
            (BUILTIN_KEYWORDS, Path::new("<built-in keywords.toml>")),
            (BUILTIN_RULES, Path::new("<built-in rules.toml>")),
            (BUILTIN_CALENDAR, Path::new("<built-in calendar.toml>")),
            BUILTIN_DICTIONARY.to_string(),
        )
    }

    fn parse(
        keywords: (&str, &Path),
        rules: (&str, &Path),
        calendar: (&str, &Path),
        dictionary: String,
    ) -> Result<Catalogue, CatalogueError> {
        fn de<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, CatalogueError> {
            toml::from_str(text).map_err(|e| CatalogueError::Parse { path: path.to_path_buf(), source: Box::new(e) })
        }
        let cat = Catalogue {
            keywords: de(keywords.0, keywords.1)?,
            rules: de(rules.0, rules.1)?,
            calendar: de(calendar.0, calendar.1)?,
            dictionary,
        };
        let problems = cat.problems();
        if problems.is_empty() {
            Ok(cat)
        } else {
            Err(CatalogueError::Invalid(problems))
        }
    }

    /// Every problem of the rule data, empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let k = &self.keywords;
        if !k.fold.pairs.chars().count().is_multiple_of(2) {
            p.push("keywords.toml: fold.pairs must hold pairs of characters".into());
        }
        let mut groups: Vec<(&str, &Vec<String>)> = vec![
            ("vague", &k.vague.words),
            ("copied", &k.copied.words),
            ("new_facts", &k.new_facts.words),
            ("repeat_hint", &k.repeat_hint.words),
            ("party", &k.party.words),
            ("appeal.decisions", &k.appeal.decisions),
            ("appeal.appeals", &k.appeal.appeals),
            ("suggestion.proposals", &k.suggestion.proposals),
            ("suggestion.topics", &k.suggestion.topics),
        ];
        groups.extend(k.domain.iter().map(|d| (d.name.as_str(), &d.words)));
        groups.extend(k.behaviour.iter().map(|b| (b.sub_kind.as_str(), &b.words)));
        groups.extend(k.out_of_scope.iter().map(|o| (o.kind.as_str(), &o.words)));
        for (name, words) in groups {
            if words.iter().any(|w| w.trim().is_empty()) {
                p.push(format!("keywords.toml: group {name} has an empty word"));
            }
        }
        for (name, words) in [
            ("charges", &k.charges.words),
            ("hedge.speculation", &k.hedge.speculation),
            ("hedge.disclaimer", &k.hedge.disclaimer),
            ("request.asks", &k.request.asks),
            ("request.for_self", &k.request.for_self),
            ("request.policy", &k.request.policy),
            ("incoherent", &k.incoherent.words),
            ("transfer.objects", &k.transfer.objects),
            ("transfer.verbs", &k.transfer.verbs),
        ] {
            if words.iter().any(|w| w.trim().is_empty()) {
                p.push(format!("keywords.toml: group {name} has an empty word"));
            }
        }
        let asks_anything = !k.request.asks.is_empty() || !k.request.policy.is_empty();
        if asks_anything && !k.out_of_scope.iter().any(|o| o.kind == k.request.kind) {
            p.push(format!("keywords.toml: request.kind {:?} is not an out_of_scope kind", k.request.kind));
        }
        for b in &k.behaviour {
            if !(0.0..=5.0).contains(&b.weight) {
                p.push(format!("keywords.toml: behaviour {} weight must be 0-5", b.sub_kind));
            }
        }
        let r = &self.rules;
        if r.version.trim().is_empty() {
            p.push("rules.toml: version must be set".into());
        }
        for post in &r.post {
            let ranks = std::iter::once(&post.rank).chain(post.by_unit.values());
            for rank in ranks {
                if !r.levels.contains_key(rank) {
                    p.push(format!("rules.toml: rank {rank} has no entry in [levels]"));
                }
            }
            for lvl in post.by_unit.keys() {
                if !["省", "市", "县", "乡", "村"].contains(&lvl.as_str()) {
                    p.push(format!("rules.toml: by_unit key {lvl} must be one of 省 市 县 乡 村"));
                }
            }
        }
        for (rank, level) in &r.levels {
            if xinfang_models::HandlingLevel::parse(level).is_none() {
                p.push(format!("rules.toml: level of {rank} must be 本级, 上级 or 下级, got {level}"));
            }
        }
        if !r.levels.contains_key("普通党员") {
            p.push("rules.toml: [levels] needs 普通党员".into());
        }
        let rep = &r.repeat;
        if rep.minhash_bands == 0 || rep.minhash_rows == 0 || rep.minhash_bands * rep.minhash_rows > 256 {
            p.push("rules.toml: repeat.minhash_bands x minhash_rows must be 1-256".into());
        }
        if rep.max_candidates_per_key == 0 || rep.max_candidates == 0 {
            p.push("rules.toml: repeat.max_candidates_per_key and repeat.max_candidates must be at least 1".into());
        }
        let c = &r.confidence;
        let shares = [
            ("repeat.specific_weight", rep.specific_weight),
            ("repeat.near_miss", rep.near_miss),
            ("confidence.named_both", c.named_both),
            ("confidence.named_neither", c.named_neither),
            ("confidence.named_half", c.named_half),
            ("confidence.level_placed", c.level_placed),
            ("confidence.level_unplaced", c.level_unplaced),
            ("confidence.level_lower", c.level_lower),
            ("confidence.level_none", c.level_none),
            ("confidence.accusation_least_facts", c.accusation_least_facts),
            ("confidence.accusation_charges_only", c.accusation_charges_only),
            ("confidence.no_substance_with_matter", c.no_substance_with_matter),
        ];
        for (name, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                p.push(format!("rules.toml: {name} must be 0-1"));
            }
        }
        if !(0.0..=1.0).contains(&rep.same_matter) {
            p.push("rules.toml: repeat.same_matter must be 0-1".into());
        }
        let c = &self.calendar;
        if c.time_zone.parse::<chrono_tz::Tz>().is_err() {
            p.push(format!("calendar.toml: time_zone {:?} is not an IANA time zone (e.g. Asia/Shanghai)", c.time_zone));
        }
        for d in std::iter::once(&c.covered_until).chain(&c.holidays).chain(&c.workdays) {
            if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
                p.push(format!("calendar.toml: {d:?} is not a YYYY-MM-DD date"));
            }
        }
        for (i, line) in self.dictionary.lines().enumerate() {
            let mut parts = line.split_whitespace();
            if let (Some(_), Some(freq)) = (parts.next(), parts.next()) {
                if freq.parse::<usize>().is_err() {
                    p.push(format!("dict.txt line {}: frequency {freq:?} is not a number", i + 1));
                }
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rule_files_are_valid() {
        let cat = Catalogue::builtin().expect("shipped rules load");
        assert!(cat.keywords.domain.len() >= 10);
        assert!(cat.rules.levels.contains_key("村干部"));
    }

    #[test]
    fn a_rank_without_a_level_is_reported() {
        let bad = BUILTIN_RULES.replace("\"县处级\" = \"上级\"", "");
        let err = Catalogue::parse(
            (BUILTIN_KEYWORDS, Path::new("k")),
            (&bad, Path::new("r")),
            (BUILTIN_CALENDAR, Path::new("c")),
            String::new(),
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("县处级"), "{err}");
    }
}

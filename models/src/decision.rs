//! What the rules decided about a letter (问题类别, 受理范围, 实名, 分级受理, 初次件/重复件) and
//! why: every decision carries its reasons so that a reviewer can see how it was reached.

use serde::{Deserialize, Serialize};

/// 问题类别 at intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LetterClass {
    #[serde(rename = "检举控告")]
    Accusation,
    #[serde(rename = "申诉")]
    Appeal,
    #[serde(rename = "批评建议")]
    Suggestion,
    #[serde(rename = "业务范围外")]
    OutOfScope,
    #[serde(rename = "无实质内容")]
    NoSubstance,
}

impl LetterClass {
    pub const ALL: [LetterClass; 5] = [
        LetterClass::Accusation,
        LetterClass::Appeal,
        LetterClass::Suggestion,
        LetterClass::OutOfScope,
        LetterClass::NoSubstance,
    ];

    /// The name users say.
    pub fn as_str(self) -> &'static str {
        match self {
            LetterClass::Accusation => "检举控告",
            LetterClass::Appeal => "申诉",
            LetterClass::Suggestion => "批评建议",
            LetterClass::OutOfScope => "业务范围外",
            LetterClass::NoSubstance => "无实质内容",
        }
    }

    pub fn parse(s: &str) -> Option<LetterClass> {
        LetterClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the commission itself deals with letters of this class.
    pub fn in_scope(self) -> bool {
        matches!(self, LetterClass::Accusation | LetterClass::Appeal | LetterClass::Suggestion)
    }
}

/// 分级受理: which level handles an in-scope letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HandlingLevel {
    #[serde(rename = "本级")]
    Own,
    #[serde(rename = "上级")]
    Higher,
    #[serde(rename = "下级")]
    Lower,
}

impl HandlingLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            HandlingLevel::Own => "本级",
            HandlingLevel::Higher => "上级",
            HandlingLevel::Lower => "下级",
        }
    }

    pub fn parse(s: &str) -> Option<HandlingLevel> {
        [HandlingLevel::Own, HandlingLevel::Higher, HandlingLevel::Lower].into_iter().find(|l| l.as_str() == s)
    }
}

/// A reported person (被反映人) as far as the letter says: any part may be missing
/// (「孙某某」, or only a post such as 「水利局局长」).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Subject {
    pub name: Option<String>,
    pub unit: Option<String>,
    pub post: Option<String>,
    /// Rank on the configured ladder (职级), e.g. 乡科级.
    pub rank: Option<String>,
}

/// The reporter's identity (举报人). Never logged; stored apart from the letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReporterIdentity {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub id_number: Option<String>,
    pub address: Option<String>,
    pub unit: Option<String>,
}

impl ReporterIdentity {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.phone.is_none()
            && self.id_number.is_none()
            && self.address.is_none()
            && self.unit.is_none()
    }

    /// The strings that identify the reporter, to be kept out of the letter text.
    pub fn identifying_strings(&self) -> Vec<&str> {
        [&self.name, &self.phone, &self.id_number, &self.address]
            .into_iter()
            .filter_map(|s| s.as_deref())
            .filter(|s| s.chars().count() >= 2)
            .collect()
    }
}

/// A deadline that applies to the letter (working days from receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// What must happen, e.g. 受理告知, 报送上级.
    pub action: String,
    pub working_days: u32,
    /// The last day, `YYYY-MM-DD`.
    pub due: String,
}

/// How sure the rules are of each field of a decision (0–1). A decision stored before
/// confidences existed reads as 0 everywhere, so it is never taken as certain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Confidence {
    /// 问题类别 (and with it 受理范围).
    pub class: f32,
    /// 实名 or 匿名.
    pub named: f32,
    /// 分级受理 (1 for a letter out of scope: it has no level).
    pub level: f32,
    /// 初次件, 重复件 or new facts.
    pub repeat: f32,
}

impl Confidence {
    /// The fields with their users' names, in the order a reviewer reads them.
    pub fn fields(&self) -> [(&'static str, f32); 4] {
        [("问题类别", self.class), ("实名", self.named), ("分级受理", self.level), ("重复件", self.repeat)]
    }

    /// The least sure field.
    pub fn least(&self) -> (&'static str, f32) {
        self.fields().into_iter().fold(("问题类别", f32::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
    }
}

/// Everything the rules stage decided about one letter, with the reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub class: LetterClass,
    pub in_scope: bool,
    /// Discipline sub-kind of a 检举控告 (违反廉洁纪律, 贪污贿赂 …), when one applies.
    pub sub_kind: Option<String>,
    pub named: bool,
    pub subjects: Vec<Subject>,
    pub handling_level: Option<HandlingLevel>,
    /// Competent organ an out-of-scope letter is forwarded to (转送).
    pub forward_to: Option<String>,
    pub repeat_of: Option<String>,
    pub new_facts_of: Option<String>,
    pub domains: Vec<String>,
    pub keywords: Vec<String>,
    /// Organs the letter says it was also sent to (抄送, 一信多投).
    pub copied_to: Vec<String>,
    /// Confidence of the class decision, 0–1.
    pub score: f32,
    /// Confidence of each field, 0–1: what review routing reads (a field below its
    /// operating point sends the letter to review, naming the field).
    #[serde(default)]
    pub confidence: Confidence,
    pub review: bool,
    pub reasons: Vec<String>,
    pub deadlines: Vec<Deadline>,
    /// Version of the rule set that decided.
    pub rules_version: String,
}

impl Decision {
    /// A decision of `class` with nothing else known yet: no subjects, no links, no reasons.
    pub fn bare(class: LetterClass, rules_version: &str) -> Decision {
        Decision {
            class,
            in_scope: class.in_scope(),
            sub_kind: None,
            named: false,
            subjects: Vec::new(),
            handling_level: None,
            forward_to: None,
            repeat_of: None,
            new_facts_of: None,
            domains: Vec::new(),
            keywords: Vec::new(),
            copied_to: Vec::new(),
            score: 0.0,
            confidence: Confidence::default(),
            review: false,
            reasons: Vec::new(),
            deadlines: Vec::new(),
            rules_version: rules_version.to_string(),
        }
    }

    /// Whether the letter goes up to the higher level (上级): then only a routing stub of it
    /// is kept here, no text and no boxes (domain rules §5).
    pub fn routes_up(&self) -> bool {
        self.in_scope && self.handling_level == Some(HandlingLevel::Higher)
    }

    /// The decision as a reviewer leaves it: what `edit` sets replaced and the decision kept
    /// consistent (the class decides the scope; an out-of-scope letter has no handling level;
    /// only a 业务范围外 letter names an organ to forward it to, and must name one when the
    /// reviewer makes it one), the review flag cleared and the reviewer named among the
    /// reasons. Every interface records a review through this, so that a review means the
    /// same wherever it is made. What needs the rule data (the level of an in-scope letter the
    /// reviewer gave none, deadlines) is completed by the rules (`Understander::review`).
    pub fn reviewed(&self, edit: &ReviewEdit) -> Result<Decision, ReviewError> {
        let reviewer = edit.reviewer.trim();
        if reviewer.is_empty() {
            return Err(ReviewError::NoReviewer);
        }
        let mut d = self.clone();
        if let Some(class) = edit.class {
            if class != d.class {
                d.class = class;
                // What was said about forwarding belongs to the old class.
                d.forward_to = None;
            }
        }
        d.in_scope = d.class.in_scope();
        match (d.in_scope, edit.level) {
            (false, Some(level)) => {
                return Err(ReviewError::LevelOutOfScope { class: d.class, level });
            }
            (false, None) => d.handling_level = None,
            (true, Some(level)) => d.handling_level = Some(level),
            (true, None) => {}
        }
        match (d.class, &edit.forward_to) {
            (LetterClass::OutOfScope, Some(organ)) if !organ.trim().is_empty() => {
                d.forward_to = Some(organ.trim().to_string());
            }
            (LetterClass::OutOfScope, _) if d.forward_to.is_none() => return Err(ReviewError::NoForwardTarget),
            (LetterClass::OutOfScope, _) => {}
            (class, Some(_)) => return Err(ReviewError::ForwardNotOutOfScope { class }),
            (_, None) if d.in_scope => d.forward_to = None,
            (_, None) => {}
        }
        if let Some(named) = edit.named {
            d.named = named;
        }
        d.review = false;
        // A person decided it: nothing is left in doubt.
        d.confidence = Confidence { class: 1.0, named: 1.0, level: 1.0, repeat: 1.0 };
        d.reasons.push(format!(
            "decided by reviewer {reviewer}{}",
            if edit.note.is_empty() { String::new() } else { format!(": {}", edit.note) }
        ));
        Ok(d)
    }

    /// The fields a reviewer decides, as `field: old → new` for each that differs from `old`.
    pub fn changes_from(&self, old: &Decision) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |field: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{field}: {a} → {b}"));
            }
        };
        cmp("class", old.class.as_str().into(), self.class.as_str().into());
        cmp("in_scope", old.in_scope.to_string(), self.in_scope.to_string());
        cmp("named", old.named.to_string(), self.named.to_string());
        let level = |d: &Decision| d.handling_level.map_or("-".to_string(), |l| l.as_str().to_string());
        cmp("level", level(old), level(self));
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        cmp("sub_kind", opt(&old.sub_kind), opt(&self.sub_kind));
        cmp("forward_to", opt(&old.forward_to), opt(&self.forward_to));
        cmp("repeat_of", opt(&old.repeat_of), opt(&self.repeat_of));
        cmp("new_facts_of", opt(&old.new_facts_of), opt(&self.new_facts_of));
        out
    }
}

/// What a reviewer changes of a decision; `None` keeps the field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewEdit {
    pub reviewer: String,
    pub class: Option<LetterClass>,
    pub level: Option<HandlingLevel>,
    pub named: Option<bool>,
    /// The organ a 业务范围外 letter is forwarded to (转送).
    pub forward_to: Option<String>,
    pub note: String,
}

/// Why a review cannot be recorded as given: it would leave the decision inconsistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewError {
    NoReviewer,
    LevelOutOfScope { class: LetterClass, level: HandlingLevel },
    NoForwardTarget,
    ForwardNotOutOfScope { class: LetterClass },
}

impl std::fmt::Display for ReviewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReviewError::NoReviewer => f.write_str("a review needs the reviewer's name"),
            ReviewError::LevelOutOfScope { class, level } => write!(
                f,
                "a {} letter is not handled by any level of this commission, so it cannot be {}",
                class.as_str(),
                level.as_str()
            ),
            ReviewError::NoForwardTarget => {
                f.write_str("a 业务范围外 letter is forwarded (转送) to the organ in charge: name it (forward to)")
            }
            ReviewError::ForwardNotOutOfScope { class } => {
                write!(f, "only a 业务范围外 letter is forwarded to another organ, not a {} one", class.as_str())
            }
        }
    }
}

impl std::error::Error for ReviewError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_that_changes_the_class_changes_the_scope_with_it() {
        let mut d = Decision::bare(LetterClass::NoSubstance, "r1");
        d.review = true;
        let edit = ReviewEdit {
            reviewer: "王审".into(),
            class: Some(LetterClass::Accusation),
            note: "有具体事实".into(),
            ..ReviewEdit::default()
        };
        let r = d.reviewed(&edit).expect("consistent");
        assert_eq!((r.class, r.in_scope, r.review), (LetterClass::Accusation, true, false));
        assert_eq!(r.reasons.last().map(String::as_str), Some("decided by reviewer 王审: 有具体事实"));
        assert_eq!(r.changes_from(&d), vec!["class: 无实质内容 → 检举控告", "in_scope: false → true"]);
    }

    #[test]
    fn a_confirming_review_changes_nothing_a_reviewer_decides() {
        let d = Decision::bare(LetterClass::Appeal, "r1");
        let r = d.reviewed(&ReviewEdit { reviewer: "李".into(), ..ReviewEdit::default() }).expect("consistent");
        assert!(r.changes_from(&d).is_empty());
        assert_eq!(r.reasons, vec!["decided by reviewer 李"]);
    }

    #[test]
    fn a_review_without_a_reviewer_is_refused() {
        let d = Decision::bare(LetterClass::Appeal, "r1");
        let edit = ReviewEdit { reviewer: "  ".into(), ..ReviewEdit::default() };
        assert_eq!(d.reviewed(&edit), Err(ReviewError::NoReviewer));
    }

    #[test]
    fn an_out_of_scope_review_names_the_organ_and_drops_the_level() {
        let mut d = Decision::bare(LetterClass::Accusation, "r1");
        d.handling_level = Some(HandlingLevel::Own);
        let to_court = ReviewEdit {
            reviewer: "王".into(),
            class: Some(LetterClass::OutOfScope),
            forward_to: Some("县人民法院".into()),
            ..ReviewEdit::default()
        };
        let r = d.reviewed(&to_court).expect("consistent");
        assert_eq!((r.in_scope, r.handling_level, r.forward_to.as_deref()), (false, None, Some("县人民法院")));
        let nowhere = ReviewEdit { forward_to: None, ..to_court.clone() };
        assert_eq!(d.reviewed(&nowhere), Err(ReviewError::NoForwardTarget), "a 转送 needs its organ");
        let up = ReviewEdit { level: Some(HandlingLevel::Higher), ..to_court };
        assert!(matches!(d.reviewed(&up), Err(ReviewError::LevelOutOfScope { .. })));
        let mut nothing = Decision::bare(LetterClass::NoSubstance, "r1");
        nothing.forward_to = Some("留存备查".into());
        let up = ReviewEdit { reviewer: "王".into(), level: Some(HandlingLevel::Higher), ..ReviewEdit::default() };
        assert!(matches!(nothing.reviewed(&up), Err(ReviewError::LevelOutOfScope { .. })));
        let forward =
            ReviewEdit { reviewer: "王".into(), forward_to: Some("县法院".into()), ..ReviewEdit::default() };
        assert!(matches!(nothing.reviewed(&forward), Err(ReviewError::ForwardNotOutOfScope { .. })));
    }

    #[test]
    fn only_an_in_scope_letter_for_the_higher_level_is_a_routing_stub() {
        let mut d = Decision::bare(LetterClass::Accusation, "r1");
        d.handling_level = Some(HandlingLevel::Higher);
        assert!(d.routes_up());
        d.in_scope = false;
        assert!(!d.routes_up());
    }
}

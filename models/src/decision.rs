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
    pub review: bool,
    pub reasons: Vec<String>,
    pub deadlines: Vec<Deadline>,
    /// Version of the rule set that decided.
    pub rules_version: String,
}

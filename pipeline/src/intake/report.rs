//! What the user is told about one letter (`ingest --json` prints one of these per letter):
//! what became of it, what was read, and what the rules decided.

use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};
use xinfang_models::{Decision, IngestStatus, InputFormat, LetterClass};

/// What happened to one letter.
#[derive(Debug, Clone, Serialize)]
pub struct LetterReport {
    pub source: String,
    pub status: IngestStatus,
    pub case_no: Option<String>,
    pub sha256: Option<String>,
    pub format: Option<InputFormat>,
    pub pages: usize,
    pub ocr_confidence: Option<f32>,
    pub text: Option<String>,
    /// Whether a reviewer should look at the letter (blank or low-confidence pages, or a
    /// decision the rules were not sure of).
    pub review: bool,
    /// Page flags, as `p<N>:<flag>`.
    pub flags: Vec<String>,
    pub error: Option<String>,
    pub quarantined: Option<String>,
    /// What the rules decided (`None` for failed letters). In JSON its fields stand at the
    /// top level beside the others (`null` or `[]` when there is no decision); `review` is
    /// the report's own.
    #[serde(flatten, serialize_with = "decision_fields")]
    pub decision: Option<Decision>,
}

impl LetterReport {
    /// A report of `status` for the letter named `source`, nothing else known yet.
    pub fn new(source: &str, status: IngestStatus) -> LetterReport {
        LetterReport {
            source: source.to_string(),
            status,
            case_no: None,
            sha256: None,
            format: None,
            pages: 0,
            ocr_confidence: None,
            text: None,
            review: false,
            flags: Vec::new(),
            error: None,
            quarantined: None,
            decision: None,
        }
    }

    /// Adds the decision to the report (a decision for review makes the letter one).
    pub fn set_decision(&mut self, d: &Decision) {
        self.review |= d.review;
        self.decision = Some(d.clone());
    }
}

/// The decision's fields as entries of the report, without the two the report does not
/// show (`review` is the report's own; `rules_version` is shown by `explain`). Without a
/// decision, the same fields are there, empty: `[]` for lists, `null` for the rest. Each
/// value is the decision's own JSON, as written (a `serde_json::Value` would widen the f32
/// score to f64 digits).
fn decision_fields<S: Serializer>(d: &Option<Decision>, s: S) -> Result<S::Ok, S::Error> {
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;
    let blank = Decision::bare(LetterClass::NoSubstance, "");
    let json = serde_json::to_string(d.as_ref().unwrap_or(&blank)).map_err(S::Error::custom)?;
    let fields: BTreeMap<String, Box<RawValue>> = serde_json::from_str(&json).map_err(S::Error::custom)?;
    let mut map = s.serialize_map(None)?;
    for (name, value) in &fields {
        if name == "review" || name == "rules_version" {
            continue;
        }
        match d {
            Some(_) => map.serialize_entry(name, value)?,
            None if value.get().starts_with('[') => map.serialize_entry(name, &[(); 0])?,
            None => map.serialize_entry(name, &())?,
        }
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_letter_shows_every_decision_field_empty() {
        let r = LetterReport::new("x.pdf", IngestStatus::Failed);
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["class"], serde_json::Value::Null);
        assert_eq!(v["subjects"], serde_json::json!([]));
        assert_eq!(v["review"], false);
        assert!(v.get("rules_version").is_none());
    }

    #[test]
    fn a_decision_stands_beside_the_reports_own_fields() {
        let mut r = LetterReport::new("a.txt", IngestStatus::Registered);
        let mut d = Decision::bare(LetterClass::Accusation, "r1");
        d.review = true;
        d.keywords = vec!["收受红包".into()];
        r.set_decision(&d);
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!((v["class"].as_str(), v["in_scope"].as_bool()), (Some("检举控告"), Some(true)));
        assert_eq!(v["keywords"], serde_json::json!(["收受红包"]));
        assert_eq!(v["review"], true, "a decision for review makes the letter one");
        let keys = v.as_object().map(|o| o.len()).unwrap_or(0);
        assert_eq!(keys, 12 + 16, "the report's 12 fields and the decision's 16 shown ones");
        assert!(v["confidence"]["实名"].is_null() && v["confidence"]["named"].is_number(), "{v}");
        d.score = 0.97;
        r.set_decision(&d);
        let line = serde_json::to_string(&r).expect("json");
        assert!(line.contains("\"score\":0.97,") || line.contains("\"score\":0.97}"), "{line}");
    }
}

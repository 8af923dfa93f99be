//! `xinfang review CASE --reviewer WHO`: records a triage reviewer's decision, which stands
//! over every later re-run. What a review means is `Decision::reviewed`, the same for every
//! interface.

use super::format::out;
use super::service::{open_store, understander};
use anyhow::{Context, Result};
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang_models::{CaseNo, HandlingLevel, LetterClass, ReviewEdit};

/// What the reviewer typed.
pub struct Edit {
    pub reviewer: String,
    pub class: Option<String>,
    pub level: Option<String>,
    pub named: Option<bool>,
    pub forward_to: Option<String>,
    pub note: String,
}

impl Edit {
    /// The edit with its class and level understood.
    fn parse(self) -> Result<ReviewEdit> {
        Ok(ReviewEdit {
            class: match &self.class {
                Some(c) => Some(parse_class(c)?),
                None => None,
            },
            level: match &self.level {
                Some(l) => {
                    Some(HandlingLevel::parse(l).with_context(|| format!("unknown level {l:?} (本级, 上级 or 下级)"))?)
                }
                None => None,
            },
            reviewer: self.reviewer,
            named: self.named,
            forward_to: self.forward_to,
            note: self.note,
        })
    }
}

/// A class as users name it; an unknown one is refused with the list of the known ones.
pub fn parse_class(c: &str) -> Result<LetterClass> {
    LetterClass::parse(c).with_context(|| {
        let known: Vec<&str> = LetterClass::ALL.iter().map(|c| c.as_str()).collect();
        format!("unknown class {c:?} (one of {})", known.join(", "))
    })
}

pub async fn run(cfg: &Config, db: Option<&str>, case_no: &str, edit: Edit) -> Result<ExitCode> {
    let no: CaseNo = case_no.parse()?;
    let edit = edit.parse()?;
    let rules = understander(cfg)?;
    let store = open_store(cfg, db).await?;
    let outcome = xinfang::intake::review::review(&store, &rules, &no, &edit, None).await;
    store.close().await;
    let changes = outcome?;
    out!(
        "{no}: reviewer's decision recorded ({})",
        if changes.is_empty() { "confirms the standing decision".to_string() } else { changes.join("; ") }
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(class: Option<&str>, level: Option<&str>) -> Edit {
        Edit {
            reviewer: "王".into(),
            class: class.map(String::from),
            level: level.map(String::from),
            named: None,
            forward_to: None,
            note: String::new(),
        }
    }

    #[test]
    fn a_review_names_real_classes_and_levels() {
        let e = edit(Some("业务范围外"), Some("本级")).parse().expect("valid");
        assert_eq!((e.class, e.level), (Some(LetterClass::OutOfScope), Some(HandlingLevel::Own)));
        let unknown = edit(Some("检举"), None).parse().expect_err("not a class").to_string();
        assert!(
            unknown.contains("检举控告") && unknown.contains("无实质内容"),
            "the known classes are listed: {unknown}"
        );
        assert!(edit(None, Some("省级")).parse().is_err());
    }
}

//! `xinfang review CASE --reviewer WHO`: records a triage reviewer's decision, which stands
//! over every later re-run. What a review means is `Decision::reviewed`, the same for every
//! interface.

use super::service::open_store;
use anyhow::{bail, Context, Result};
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang_models::{CaseNo, HandlingLevel, LetterClass, ReviewEdit};

/// What the reviewer typed.
pub struct Edit {
    pub reviewer: String,
    pub class: Option<String>,
    pub level: Option<String>,
    pub named: Option<bool>,
    pub note: String,
}

impl Edit {
    /// The edit with its class and level understood.
    fn parse(self) -> Result<ReviewEdit> {
        Ok(ReviewEdit {
            class: match &self.class {
                Some(c) => Some(LetterClass::parse(c).with_context(|| format!("unknown class {c:?}"))?),
                None => None,
            },
            level: match &self.level {
                Some(l) => Some(HandlingLevel::parse(l).with_context(|| format!("unknown level {l:?}"))?),
                None => None,
            },
            reviewer: self.reviewer,
            named: self.named,
            note: self.note,
        })
    }
}

pub async fn run(cfg: &Config, db: Option<&str>, case_no: &str, edit: Edit) -> Result<ExitCode> {
    let no: CaseNo = case_no.parse()?;
    let edit = edit.parse()?;
    let store = open_store(cfg, db).await?;
    let Some(changes) = store.record_review(&no, &edit).await? else {
        bail!("no decision stored for {no}");
    };
    println!(
        "{no}: reviewer's decision recorded ({})",
        if changes.is_empty() { "confirms the standing decision".to_string() } else { changes.join("; ") }
    );
    store.close().await;
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
            note: String::new(),
        }
    }

    #[test]
    fn a_review_names_real_classes_and_levels() {
        let e = edit(Some("业务范围外"), Some("本级")).parse().expect("valid");
        assert_eq!((e.class, e.level), (Some(LetterClass::OutOfScope), Some(HandlingLevel::Own)));
        assert!(edit(Some("检举"), None).parse().is_err());
        assert!(edit(None, Some("省级")).parse().is_err());
    }
}

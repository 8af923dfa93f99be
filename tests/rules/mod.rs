//! The rules behaviour table (`cases.toml` beside this file): letter → expected class,
//! 实名, level, subject and review, run by one check that reports every case that fails
//! (vector's behaviour tests). In-process, no OCR, no database: part of the fast tests.

use serde::Deserialize;
use std::path::PathBuf;
use xinfang::config::catalogue::Catalogue;
use xinfang::stages::normalize::normalize;
use xinfang::understand::Understander;

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    why: String,
    text: String,
    class: Option<String>,
    named: Option<bool>,
    level: Option<String>,
    subject: Option<String>,
    review: Option<bool>,
}

fn cases_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rules/cases.toml")
}

fn understander() -> Understander {
    Understander::new(&Catalogue::builtin().expect("shipped rules")).expect("stages")
}

/// One check over the whole table, reporting every case that fails (vector's behaviour tests).
#[test]
fn rules_behave_as_the_table_says() {
    let cases: Cases = toml::from_str(&std::fs::read_to_string(cases_file()).expect("read cases")).expect("parse");
    let u = understander();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
    let mut failures = Vec::new();
    for c in &cases.case {
        let d = u.understand(&normalize(&c.text), today).decision;
        let mut wrong = Vec::new();
        if let Some(class) = &c.class {
            if d.class.as_str() != class {
                wrong.push(format!("class {} not {class}", d.class.as_str()));
            }
        }
        if let Some(named) = c.named {
            if d.named != named {
                wrong.push(format!("named {} not {named}", d.named));
            }
        }
        if let Some(level) = &c.level {
            let got = d.handling_level.map_or("-", |l| l.as_str());
            if got != level {
                wrong.push(format!("level {got} not {level}"));
            }
        }
        if let Some(name) = &c.subject {
            if !d.subjects.iter().any(|s| s.name.as_deref() == Some(name.as_str())) {
                wrong.push(format!("subject {name} not found in {:?}", d.subjects));
            }
        }
        if let Some(review) = c.review {
            if d.review != review {
                wrong.push(format!("review {} not {review}", d.review));
            }
        }
        if d.reasons.is_empty() {
            wrong.push("no reasons given".into());
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}\n    reasons: {:?}", c.why, wrong.join("; "), d.reasons));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), cases.case.len(), failures.join("\n"));
}

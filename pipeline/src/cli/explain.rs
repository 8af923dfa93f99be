//! `xinfang explain CASE`: how each decision about a case was reached (rules, words, scores).

use super::format::put;
use super::service::open_store;
use anyhow::{bail, Result};
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang_models::display::one_line;
use xinfang_models::{CaseNo, Decision};

pub async fn run(cfg: &Config, db: Option<&str>, case_no: &str) -> Result<ExitCode> {
    let no: CaseNo = case_no.parse()?;
    let store = open_store(cfg, db).await?;
    let Some(d) = store.decision(&no).await? else {
        bail!("no decision stored for {no}");
    };
    put!("{}", render(&no, &d))?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// How a decision was reached, field by field and reason by reason (what came from the
/// letter or a reviewer is printed with its control characters escaped).
pub fn render(no: &CaseNo, d: &Decision) -> String {
    one_line_each(&render_raw(no, d))
}

/// Each line of `text` made safe to print on its own.
fn one_line_each(text: &str) -> String {
    text.lines().map(|l| format!("{}\n", one_line(l))).collect()
}

fn render_raw(no: &CaseNo, d: &Decision) -> String {
    let mut out = format!("case {no}  (rules {})\n", d.rules_version);
    out.push_str(&format!(
        "class        {}  (score {:.2}{})\n",
        d.class.as_str(),
        d.score,
        if d.review { ", REVIEW" } else { "" }
    ));
    out.push_str(&format!(
        "confidence   {}\n",
        d.confidence.fields().iter().map(|(f, v)| format!("{f} {v:.2}")).collect::<Vec<_>>().join(" · ")
    ));
    out.push_str(&format!("in scope     {}\n", if d.in_scope { "yes" } else { "no" }));
    if let Some(k) = &d.sub_kind {
        out.push_str(&format!("sub-kind     {k}\n"));
    }
    out.push_str(&format!("实名         {}\n", if d.named { "yes" } else { "no" }));
    out.push_str(&format!("level        {}\n", d.handling_level.map_or("-", |l| l.as_str())));
    if let Some(f) = &d.forward_to {
        out.push_str(&format!("forward to   {f}\n"));
    }
    for s in &d.subjects {
        out.push_str(&format!(
            "subject      {} / {} / {} / {}\n",
            s.name.as_deref().unwrap_or("-"),
            s.unit.as_deref().unwrap_or("-"),
            s.post.as_deref().unwrap_or("-"),
            s.rank.as_deref().unwrap_or("-")
        ));
    }
    out.push_str(&format!("repeat of    {}\n", d.repeat_of.as_deref().unwrap_or("-")));
    out.push_str(&format!("new facts of {}\n", d.new_facts_of.as_deref().unwrap_or("-")));
    if !d.domains.is_empty() {
        out.push_str(&format!("domains      {}\n", d.domains.join("、")));
    }
    if !d.keywords.is_empty() {
        out.push_str(&format!("keywords     {}\n", d.keywords.join("、")));
    }
    for dl in &d.deadlines {
        out.push_str(&format!("deadline     {} by {} ({} working days)\n", dl.action, dl.due, dl.working_days));
    }
    out.push_str("\nhow it was decided\n");
    for (i, r) in d.reasons.iter().enumerate() {
        // A reviewer's note may hold line breaks: the reason stays one line.
        out.push_str(&format!("  {}. {}\n", i + 1, one_line(r)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use xinfang_models::{Channel, LetterClass};

    #[test]
    fn an_explanation_numbers_its_reasons_and_flags_review() {
        let mut d = Decision::bare(LetterClass::NoSubstance, "r9");
        d.review = true;
        d.reasons = vec!["no facts".into(), "no one named".into()];
        let no = CaseNo { organ: "QLX".into(), year: 2026, channel: Channel::Letter, seq: 7 };
        let text = render(&no, &d);
        assert!(text.starts_with("case QLX-2026-X-000007  (rules r9)\n"), "{text}");
        assert!(text.contains("class        无实质内容  (score 0.00, REVIEW)"), "{text}");
        assert!(text.contains("  1. no facts\n  2. no one named\n"), "{text}");
        d.reasons = vec!["decided by reviewer 王: 改\n3. forged".into()];
        let text = render(&no, &d);
        assert!(text.contains("  1. decided by reviewer 王: 改\\n3. forged\n"), "a note cannot forge a line: {text}");
    }
}

//! `xinfang show CASE`: one case with its decision, pages, originals and history.

use super::format::{self, out};
use super::service::open_store;
use anyhow::{bail, Result};
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang_models::display::{lines, one_line};
use xinfang_models::CaseNo;

pub async fn run(cfg: &Config, db: Option<&str>, case_no: &str, json: bool) -> Result<ExitCode> {
    let no: CaseNo = case_no.parse()?;
    let store = open_store(cfg, db).await?;
    let Some(detail) = store.show(&no).await? else {
        bail!("no case {no}");
    };
    if json {
        out!("{}", serde_json::to_string_pretty(&detail)?)?;
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &detail.summary;
    out!("case        {}", s.case_no)?;
    out!("status      {}", s.status.as_str())?;
    out!("source      {}", one_line(&s.source_name))?;
    out!("format      {}  pages {}", s.format, s.page_count)?;
    out!("confidence  {}", format::conf(s.ocr_confidence.map(|c| c as f32)))?;
    out!("review      {}", if s.needs_review { "yes" } else { "no" })?;
    out!("sha256      {}", detail.letter_sha256)?;
    if let Some(d) = store.decision(&no).await? {
        out!(
            "decision    {} / {} / {} / {}{}{}",
            d.class.as_str(),
            if d.in_scope { "受理范围内" } else { "业务范围外" },
            if d.named { "实名" } else { "匿名" },
            d.handling_level.map_or("-", |l| l.as_str()),
            d.repeat_of.as_ref().map_or(String::new(), |r| format!(" / 重复件 of {r}")),
            d.new_facts_of.as_ref().map_or(String::new(), |r| format!(" / new facts of {r}"))
        )?;
        for s in &d.subjects {
            let who = format!(
                "{}{}{}",
                s.unit.as_deref().unwrap_or(""),
                s.post.as_deref().unwrap_or(""),
                s.name.as_deref().unwrap_or("")
            );
            out!("subject     {}", one_line(&who))?;
        }
        for dl in &d.deadlines {
            out!("deadline    {} by {}", dl.action, dl.due)?;
        }
        out!("(xinfang explain {no} shows why)")?;
    }
    for (sha, name) in &detail.originals {
        out!("original    {}  {sha}", one_line(name))?;
    }
    for p in &detail.pages {
        let flags: Vec<&str> = p.flags.iter().map(|f| f.as_str()).collect();
        out!(
            "\n--- page {} ({}, confidence {}, rotation {}°, skew {:.2}°{}) ---",
            p.page_no,
            p.origin.as_str(),
            format::conf(p.confidence),
            p.rotation,
            p.skew_deg,
            if flags.is_empty() { String::new() } else { format!(", flags: {}", flags.join(" ")) }
        )?;
        out!("{}", lines(&p.text))?;
    }
    out!("\n--- history ---")?;
    for (at, actor, action, detail) in &detail.events {
        out!("{}  {}  {action}  {}", format::time(*at), one_line(actor), one_line(detail))?;
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

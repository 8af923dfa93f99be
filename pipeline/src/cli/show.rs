//! `xinfang show CASE`: one case with its decision, pages, originals and history.

use super::format;
use super::service::open_store;
use anyhow::{bail, Result};
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang_models::CaseNo;

pub async fn run(cfg: &Config, db: Option<&str>, case_no: &str, json: bool) -> Result<ExitCode> {
    let no: CaseNo = case_no.parse()?;
    let store = open_store(cfg, db).await?;
    let Some(detail) = store.show(&no).await? else {
        bail!("no case {no}");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &detail.summary;
    println!("case        {}", s.case_no);
    println!("status      {}", s.status.as_str());
    println!("source      {}", s.source_name);
    println!("format      {}  pages {}", s.format, s.page_count);
    println!("confidence  {}", format::conf(s.ocr_confidence.map(|c| c as f32)));
    println!("review      {}", if s.needs_review { "yes" } else { "no" });
    println!("sha256      {}", detail.letter_sha256);
    if let Some(d) = store.decision(&no).await? {
        println!(
            "decision    {} / {} / {} / {}{}{}",
            d.class.as_str(),
            if d.in_scope { "受理范围内" } else { "业务范围外" },
            if d.named { "实名" } else { "匿名" },
            d.handling_level.map_or("-", |l| l.as_str()),
            d.repeat_of.as_ref().map_or(String::new(), |r| format!(" / 重复件 of {r}")),
            d.new_facts_of.as_ref().map_or(String::new(), |r| format!(" / new facts of {r}"))
        );
        for s in &d.subjects {
            println!(
                "subject     {}{}{}",
                s.unit.as_deref().unwrap_or(""),
                s.post.as_deref().unwrap_or(""),
                s.name.as_deref().unwrap_or("")
            );
        }
        for dl in &d.deadlines {
            println!("deadline    {} by {}", dl.action, dl.due);
        }
        println!("(xinfang explain {no} shows why)");
    }
    for (sha, name) in &detail.originals {
        println!("original    {name}  {sha}");
    }
    for p in &detail.pages {
        let flags: Vec<&str> = p.flags.iter().map(|f| f.as_str()).collect();
        println!(
            "\n--- page {} ({}, confidence {}, rotation {}°, skew {:.2}°{}) ---",
            p.page_no,
            p.origin.as_str(),
            format::conf(p.confidence),
            p.rotation,
            p.skew_deg,
            if flags.is_empty() { String::new() } else { format!(", flags: {}", flags.join(" ")) }
        );
        println!("{}", p.text);
    }
    println!("\n--- history ---");
    for (at, actor, action, detail) in &detail.events {
        println!("{}  {actor}  {action}  {detail}", format::time(*at));
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

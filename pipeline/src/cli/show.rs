//! `xinfang show CASE`: one case with its decision, pages, originals and history.

use super::format::{self, out};
use super::service::open_store;
use anyhow::{bail, Result};
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang::store::{ArchiveRecord, Store};
use xinfang_models::display::{lines, one_line};
use xinfang_models::CaseNo;

/// The case a user names: by its number, or by the number an archive gave it.
async fn resolve(store: &Store, asked: &str) -> Result<CaseNo> {
    if let Ok(no) = asked.parse::<CaseNo>() {
        if store.summary(&no).await?.is_some() {
            return Ok(no);
        }
    }
    let mut found = store.cases_by_old_number(asked).await?;
    match found.len() {
        0 => match asked.parse::<CaseNo>() {
            Ok(no) => bail!("no case {no}"),
            Err(e) => bail!("no case and no archive number {:?} ({e})", one_line(asked)),
        },
        1 => Ok(found.remove(0)),
        _ => {
            let all: Vec<String> = found.iter().map(CaseNo::to_string).collect();
            bail!(
                "archive number {:?} names {} cases: {}; show one of them",
                one_line(asked),
                all.len(),
                all.join(", ")
            )
        }
    }
}

pub async fn run(cfg: &Config, db: Option<&str>, case_no: &str, json: bool) -> Result<ExitCode> {
    let store = open_store(cfg, db).await?;
    let no = resolve(&store, case_no).await?;
    let Some(detail) = store.show(&no).await? else {
        bail!("no case {no}");
    };
    let archive = store.archive_record(&no).await?;
    let zone = cfg.time_zone();
    if json {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            detail: &'a xinfang::store::CaseDetail,
            archive: Option<&'a ArchiveRecord>,
        }
        out!("{}", serde_json::to_string_pretty(&Shown { detail: &detail, archive: archive.as_ref() })?)?;
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
    out!("received    {}", format::time(s.received_at, zone))?;
    if let Some(a) = &archive {
        out!(
            "archive     {}{}{}{}",
            one_line(&a.source),
            a.old_case_no.as_deref().map_or(String::new(), |n| format!(", its number {}", one_line(n))),
            a.class_then.map_or(String::new(), |c| format!(", class then {}", c.as_str())),
            a.status_then.map_or(String::new(), |st| format!(", status then {}", st.label_zh()))
        )?;
    }
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
        out!("{}  {}  {action}  {}", format::time(*at, zone), one_line(actor), one_line(detail))?;
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

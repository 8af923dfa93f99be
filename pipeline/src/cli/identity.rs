//! `xinfang identity CASE`: the reporter's identity, to a role allowed to see it; every read
//! is recorded.

use super::format::out;
use super::service::open_store;
use anyhow::{bail, Result};
use std::process::ExitCode;
use xinfang::config::Config;
use xinfang_models::CaseNo;

pub async fn run(
    cfg: &Config,
    db: Option<&str>,
    case_no: &str,
    reader: &str,
    role: &str,
    purpose: &str,
) -> Result<ExitCode> {
    let no: CaseNo = case_no.parse()?;
    if !cfg.access.identity_roles.iter().any(|r| r == role) {
        bail!("role {role:?} may not see reporter identities (access.identity_roles)");
    }
    let store = open_store(cfg, db).await?;
    match store.read_identity(&no, reader, role, purpose).await? {
        Some(id) => out!("{}", serde_json::to_string_pretty(&id)?)?,
        None => out!("no reporter identity recorded for {no} (the read is logged)")?,
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

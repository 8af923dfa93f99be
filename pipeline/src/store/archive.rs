//! Backfilled letters: what the archive they came from said of them (its own number, the
//! class and status decided back then, where that was read), kept beside the case.

use super::{parse_case_no, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use xinfang_models::{CaseNo, CaseStatus, Channel, LetterClass};

/// What an archive says of one of its letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    /// When the organ received it (Unix ms): the case's date of receipt.
    pub received_at: i64,
    /// The channel it came through (the configured one when `None`).
    pub channel: Option<Channel>,
    /// The archive's own number for it.
    pub old_case_no: Option<String>,
    pub class_then: Option<LetterClass>,
    pub status_then: Option<CaseStatus>,
    /// Where this was read: `manifest.csv row 12`, `--received 2019-03-02`.
    pub source: String,
}

/// Records an archived letter's record with its registration.
pub(super) async fn insert_archive(
    conn: &mut sqlx::AnyConnection,
    no: &str,
    r: &ArchiveRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO case_archive (case_no, source, old_case_no, class_then, status_then, channel) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(no)
    .bind(&r.source)
    .bind(r.old_case_no.as_deref())
    .bind(r.class_then.map(LetterClass::as_str))
    .bind(r.status_then.map(CaseStatus::as_str))
    .bind(r.channel.map(|c| c.code().to_string()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The words of a case's first event that say where it came from.
pub(super) fn describe(r: &ArchiveRecord) -> String {
    let mut s = format!("; backfilled from {}", r.source);
    if let Some(old) = &r.old_case_no {
        s.push_str(&format!(", archive number {old}"));
    }
    if let Some(c) = r.class_then {
        s.push_str(&format!(", class then {}", c.as_str()));
    }
    if let Some(st) = r.status_then {
        s.push_str(&format!(", status then {}", st.label_zh()));
    }
    s
}

impl Store {
    /// The archive record of a backfilled case.
    pub async fn archive_record(&self, case_no: &CaseNo) -> Result<Option<ArchiveRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT a.source, a.old_case_no, a.class_then, a.status_then, a.channel, c.received_at \
             FROM case_archive a JOIN cases c ON c.case_no = a.case_no WHERE a.case_no = $1",
        )
        .bind(case_no.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let text = |c: &str| row.try_get::<Option<String>, _>(c);
        let channel = text("channel")?.and_then(|c| c.chars().next()).and_then(Channel::from_code);
        Ok(Some(ArchiveRecord {
            received_at: row.try_get("received_at")?,
            channel,
            old_case_no: text("old_case_no")?,
            class_then: text("class_then")?.as_deref().and_then(LetterClass::parse),
            status_then: text("status_then")?.as_deref().and_then(CaseStatus::parse),
            source: row.try_get("source")?,
        }))
    }

    /// The cases an archive numbered `old` (two archives may have used the same number).
    pub async fn cases_by_old_number(&self, old: &str) -> Result<Vec<CaseNo>, StoreError> {
        let rows = sqlx::query("SELECT case_no FROM case_archive WHERE old_case_no = $1 ORDER BY case_no")
            .bind(old.trim())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| parse_case_no(&r.try_get::<String, _>("case_no")?)).collect()
    }
}

//! Store access for benchmarks and tests only: synthetic cases inserted in bulk, bypassing
//! the intake, and reads that no product command needs. Hidden from the documentation; the
//! product never calls it.
#![doc(hidden)]

use super::{
    insert_fingerprint, insert_keys, register_in, repeat_candidates, take_registry_lock, NewCase, Registration, Store,
    StoreError,
};
use sqlx::Row;
use xinfang_models::{Candidate, CandidateLimits, Fingerprint, LookupKey};

/// Inserts synthetic cases (organ `BENCH`, numbered from `first + 1`) with their fingerprints
/// and repeat keys, in one transaction.
pub async fn insert_synthetic(
    store: &Store,
    first: u64,
    rows: &[(Fingerprint, Vec<String>)],
    base_ms: i64,
) -> Result<(), StoreError> {
    let cached = store.fingerprints.transaction();
    let mut tx = store.pool.begin().await?;
    for (i, (fp, keys)) in rows.iter().enumerate() {
        let seq = first as i64 + i as i64 + 1;
        let no = format!("BENCH-2025-X-{seq:06}");
        let at = base_ms + seq * 60_000;
        sqlx::query(
            "INSERT INTO cases (case_no, organ, year, channel, seq, letter_sha256, source_name, format, page_count, \
             ocr_confidence, text, status, needs_review, received_at, created_at, updated_at) \
             VALUES ($1, 'BENCH', 2025, 'X', $2, $3, 'synthetic', 'text', 1, NULL, '', 'registered', 0, $4, $4, $4)",
        )
        .bind(&no)
        .bind(seq)
        .bind(format!("synthetic-{seq}"))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        insert_fingerprint(&mut tx, &store.fingerprints, &no, &no, fp).await?;
        insert_keys(&mut tx, &no, keys, at).await?;
    }
    tx.commit().await?;
    cached.committed();
    Ok(())
}

/// The letter digests of every registered case.
pub async fn letter_digests(store: &Store) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let rows = sqlx::query("SELECT letter_sha256 FROM cases").fetch_all(&store.pool).await?;
    rows.iter().map(|r| Ok(r.try_get::<String, _>("letter_sha256")?)).collect()
}

/// Earlier letters sharing any of `keys`, oldest first, as a registration would find them.
pub async fn repeat_candidates_of(
    store: &Store,
    keys: &[LookupKey],
    limits: CandidateLimits,
) -> Result<Vec<Candidate>, StoreError> {
    let mut conn = store.pool.acquire().await?;
    repeat_candidates(&mut conn, &store.fingerprints, keys, limits, None).await
}

/// Registers many letters in one transaction through the registration's own statements,
/// without the repeat lookup (each keeps the decision it was given): a benchmark's archive,
/// seeded fast. Returns the case numbers.
pub async fn register_unsettled(store: &Store, news: &[NewCase]) -> Result<Vec<String>, StoreError> {
    let cached = store.fingerprints.transaction();
    let mut tx = store.pool.begin().await?;
    take_registry_lock(&mut tx).await?;
    let mut out = Vec::with_capacity(news.len());
    for new in news {
        if let (Registration::Registered(no), _) = register_in(&mut tx, &store.fingerprints, new, None, None).await? {
            out.push(no.to_string());
        }
    }
    tx.commit().await?;
    cached.committed();
    Ok(out)
}

/// A text letter of an archive as intake would register it (decided by the rules, its
/// original stored, the reporter's identity redacted), but not settled against earlier
/// letters: for `register_unsettled`. `i` names its file.
pub fn archived_text_case(
    u: &crate::understand::Understander,
    files: &super::FileStore,
    organ: &str,
    channel: xinfang_models::Channel,
    raw: &str,
    i: usize,
    received_at: i64,
) -> Result<NewCase, super::FileStoreError> {
    use xinfang_models::{InputFormat, PageOrigin, PageText};
    let (sha, path) = files.put_original(raw.as_bytes())?;
    let text = crate::stages::normalize::normalize(raw);
    let understanding = u.understand(&text, crate::intake::receipt_day(received_at));
    let mut pages = vec![PageText::from_text(1, PageOrigin::Transcript, text.clone())];
    let stored = u.redact(&text, &mut pages, &understanding.identity);
    let file_name = format!("archive-{i:07}.txt");
    Ok(NewCase {
        organ: organ.to_string(),
        channel,
        letter_sha256: sha.clone(),
        source_name: file_name.clone(),
        format: InputFormat::Text,
        originals: vec![super::StoredOriginal {
            sha256: sha,
            file_name,
            byte_len: raw.len() as u64,
            format: InputFormat::Text,
            encoding: Some("UTF-8".into()),
            stored_path: path.display().to_string(),
        }],
        pages,
        ocr_confidence: None,
        text: stored,
        needs_review: understanding.decision.review,
        received_at,
        understanding: Some(understanding),
        ocr_engine: None,
        manual: None,
        supersedes: None,
    })
}

/// How the reporters' identities were read: rows of `identity_reads` (a person's read, one
/// per case) and of `identity_run_reads` (a re-run's, one per run), with the cases counted.
pub async fn identity_audit(store: &Store) -> Result<(i64, i64, i64), StoreError> {
    let reads: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM identity_reads").fetch_one(&store.pool).await?.try_get("n")?;
    let row = sqlx::query("SELECT COUNT(*) AS n, CAST(COALESCE(SUM(cases), 0) AS BIGINT) AS c FROM identity_run_reads")
        .fetch_one(&store.pool)
        .await?;
    Ok((reads, row.try_get("n")?, row.try_get("c")?))
}

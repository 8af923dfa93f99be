//! Store access for benchmarks and tests only: synthetic cases inserted in bulk, bypassing
//! the intake, and reads that no product command needs. Hidden from the documentation; the
//! product never calls it.
#![doc(hidden)]

use super::{insert_fingerprint, insert_keys, repeat_candidates, Store, StoreError};
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
        insert_fingerprint(&mut tx, &no, &no, fp).await?;
        insert_keys(&mut tx, &no, keys, at).await?;
    }
    tx.commit().await?;
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
    repeat_candidates(&mut conn, keys, limits, None).await
}

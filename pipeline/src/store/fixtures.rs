//! Store access for benchmarks and tests only: synthetic cases inserted in bulk, bypassing
//! the intake, and reads that no product command needs. Hidden from the documentation; the
//! product never calls it.
#![doc(hidden)]

use super::{
    fingerprint_json, insert_fingerprint, insert_keys, register_in, repeat_candidates, take_registry_lock, NewCase,
    Registration, Store, StoreError,
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
    let mut tx = store.writer.begin().await?;
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
        insert_fingerprint(&mut tx, &store.fingerprints, &no, &no, fp, fingerprint_json(fp)?).await?;
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
    let mut tx = store.writer.begin().await?;
    take_registry_lock(&mut tx).await?;
    let mut out = Vec::with_capacity(news.len());
    for new in news {
        if let (Registration::Registered(no), _) =
            register_in(&mut tx, &store.fingerprints, new, None, None, None).await?
        {
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
    let understanding = u.understand(&text, u.receipt_day(received_at));
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
        received_on: u.receipt_day(received_at),
        archive: None,
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

/// A letter the bulk seed copies: its stored text, decision and fingerprint as JSON, and its
/// repeat keys (`person`: a key naming the accused, made particular to each matter).
pub struct SeedTemplate {
    pub text: String,
    pub decision: xinfang_models::Decision,
    pub fingerprint: String,
    pub keys: Vec<xinfang_models::LookupKey>,
}

/// Whether a lookup key names a person or a matter (not a MinHash band of the wording).
fn is_person_key(key: &str) -> bool {
    !key.starts_with('b')
}

/// The template of a generated letter, decided by the rules.
pub fn seed_template(u: &crate::understand::Understander, raw: &str) -> Result<SeedTemplate, StoreError> {
    let text = crate::stages::normalize::normalize(raw);
    let understanding = u.understand(&text, u.receipt_day(SEED_START_MS));
    let stored = u.redact(&text, &mut [], &understanding.identity);
    let fingerprint = serde_json::to_string(&understanding.fingerprint)
        .map_err(|e| StoreError::Corrupt(format!("fingerprint: {e}")))?;
    Ok(SeedTemplate { text: stored, decision: understanding.decision, fingerprint, keys: understanding.lookup_keys })
}

/// When the first seeded letter was received (2016-01-01, Beijing time); each one after it
/// 30 s later (a million letters fill a year).
pub const SEED_START_MS: i64 = 1_451_577_600_000;

/// Cases sharing one matter's person keys in the seed.
const SEED_MATTER: i64 = 50;

/// Seeds cases `from..to` in bulk, in the database itself (a recursive row generator joined
/// with the templates), not through the intake: a case, its page, decision, fingerprint,
/// repeat keys, first event and done job each, as registration writes them. Case `i` copies
/// template `i % templates`; its person keys are shared with the cases of the same
/// template within `SEED_MATTER × templates` of it (a matter written about fifty times),
/// its MinHash bands with every case of its template (a pessimistic store: real letters
/// share bands only when their texts are nearly the same). Numbers run
/// `QLX-{2016 + i / 100000}-X-{i % 100000 + 1}`.
pub async fn seed_bulk(store: &Store, templates: &[SeedTemplate], from: i64, to: i64) -> Result<(), StoreError> {
    let t = templates.len() as i64;
    let mut tx = store.writer.begin().await?;
    if from == 0 {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS seed_templates (t BIGINT PRIMARY KEY, text TEXT NOT NULL, \
                     decision TEXT NOT NULL, class TEXT NOT NULL, in_scope BIGINT NOT NULL, named BIGINT NOT NULL, \
                     handling_level TEXT, review BIGINT NOT NULL, score DOUBLE PRECISION NOT NULL, \
                     rules_version TEXT NOT NULL, fingerprint TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS seed_keys (t BIGINT NOT NULL, key TEXT NOT NULL, person BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        for (i, tpl) in templates.iter().enumerate() {
            let d = &tpl.decision;
            let json = serde_json::to_string(d).map_err(|e| StoreError::Corrupt(format!("decision: {e}")))?;
            sqlx::query(
                "INSERT INTO seed_templates (t, text, decision, class, in_scope, named, handling_level, review, score, \
                 rules_version, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(i as i64)
            .bind(&tpl.text)
            .bind(json)
            .bind(d.class.as_str())
            .bind(i64::from(d.in_scope))
            .bind(i64::from(d.named))
            .bind(d.handling_level.map(|l| l.as_str()))
            .bind(i64::from(d.review))
            .bind(f64::from(d.score))
            .bind(&d.rules_version)
            .bind(&tpl.fingerprint)
            .execute(&mut *tx)
            .await?;
            for k in &tpl.keys {
                sqlx::query("INSERT INTO seed_keys (t, key, person) VALUES ($1, $2, $3)")
                    .bind(i as i64)
                    .bind(&k.key)
                    .bind(i64::from(is_person_key(&k.key)))
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    // The rows of cases from..to, as `seq` with each one's number and time.
    let seq = format!(
        "WITH RECURSIVE seq(i) AS (SELECT CAST({from} AS BIGINT) UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < {to}), \
         n AS (SELECT i, i % {t} AS t, 'QLX-' || CAST(2016 + i / 100000 AS TEXT) || '-X-' || \
         substr(CAST(1000001 + i % 100000 AS TEXT), 2) AS case_no, {SEED_START_MS} + i * 30000 AS at FROM seq)"
    );
    let statements = [
        format!(
            "INSERT INTO cases (case_no, organ, year, channel, seq, letter_sha256, source_name, format, page_count, \
             ocr_confidence, text, status, needs_review, received_at, created_at, updated_at) {seq} \
             SELECT n.case_no, 'QLX', 2016 + n.i / 100000, 'X', n.i % 100000 + 1, 'seed-' || CAST(n.i AS TEXT), \
             'archive-' || CAST(n.i AS TEXT) || '.txt', 'text', 1, NULL, s.text, 'registered', s.review, n.at, n.at, n.at \
             FROM n JOIN seed_templates s ON s.t = n.t"
        ),
        format!(
            "INSERT INTO pages (case_no, page_no, origin, text, confidence, rotation, skew_deg, flags, boxes) {seq} \
             SELECT n.case_no, 1, 'transcript', s.text, NULL, 0, 0, '', '{{\"words\":[],\"lines\":[]}}' \
             FROM n JOIN seed_templates s ON s.t = n.t"
        ),
        format!(
            "INSERT INTO case_decisions (case_no, rules_version, class, in_scope, named, handling_level, forward_to, \
             repeat_of, new_facts_of, review, score, decision, decided_at) {seq} \
             SELECT n.case_no, s.rules_version, s.class, s.in_scope, s.named, s.handling_level, NULL, NULL, NULL, \
             s.review, s.score, s.decision, n.at FROM n JOIN seed_templates s ON s.t = n.t"
        ),
        format!(
            "INSERT INTO case_fingerprints (case_no, root_case, fingerprint, version) {seq} \
             SELECT n.case_no, n.case_no, s.fingerprint, 1 FROM n JOIN seed_templates s ON s.t = n.t"
        ),
        format!(
            "INSERT INTO repeat_keys (key, case_no, at) {seq} \
             SELECT CASE WHEN k.person = 1 THEN k.key || ':' || CAST(n.i / {} AS TEXT) ELSE k.key END, n.case_no, n.at \
             FROM n JOIN seed_keys k ON k.t = n.t",
            SEED_MATTER * t
        ),
        format!(
            "INSERT INTO case_events (case_no, seq, at, actor, action, detail) {seq} \
             SELECT n.case_no, 1, n.at, 'intake', 'registered', 'seeded' FROM n"
        ),
        format!(
            "INSERT INTO jobs (job_id, kind, letter_sha256, case_no, source_name, payload, state, attempts, \
             max_attempts, worker, lease_until, not_before, last_error, result, created_at, updated_at) {seq} \
             SELECT 'letter:seed-' || CAST(n.i AS TEXT), 'letter', 'seed-' || CAST(n.i AS TEXT), NULL, \
             'archive-' || CAST(n.i AS TEXT) || '.txt', '{{}}', 'done', 1, 3, NULL, NULL, n.at, NULL, n.case_no, n.at, n.at \
             FROM n"
        ),
    ];
    for sql in &statements {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    if to > 0 {
        let last = to - 1;
        sqlx::query(
            "INSERT INTO case_sequences (organ, year, channel, last_seq) VALUES ('QLX', $1, 'X', $2) \
             ON CONFLICT (organ, year, channel) DO UPDATE SET last_seq = excluded.last_seq",
        )
        .bind(2016 + last / 100000)
        .bind(last % 100000 + 1)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The keys a seeded case `i` was given (its template's, its matter's person keys).
pub fn seeded_keys(templates: &[SeedTemplate], i: i64) -> Vec<xinfang_models::LookupKey> {
    let t = templates.len() as i64;
    let tpl = &templates[(i % t) as usize];
    tpl.keys
        .iter()
        .map(|k| xinfang_models::LookupKey {
            key: if is_person_key(&k.key) { format!("{}:{}", k.key, i / (SEED_MATTER * t)) } else { k.key.clone() },
            weight: k.weight,
        })
        .collect()
}

/// Refreshes the query planner's statistics (after a bulk seed, as an administrator would).
pub async fn analyze(store: &Store) -> Result<(), StoreError> {
    sqlx::query("ANALYZE").execute(&store.pool).await?;
    Ok(())
}

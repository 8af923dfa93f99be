-- Issue 15: re-runs and intake at archive scale. Same portable SQL as 0001.

-- Claims take the oldest ready jobs of a kind through this index (equality on kind and
-- state, then the claim order), instead of sorting every queued job.
CREATE INDEX jobs_claim ON jobs (kind, state, created_at, job_id);

-- A re-run replaces a case's repeat keys: found by case, not by a scan of every key (the
-- primary key leads with the key).
CREATE INDEX repeat_keys_case ON repeat_keys (case_no);

-- A re-run's use of reporters' identities, one entry per run (not one row per case, which
-- would bury the people's reads in identity_reads): who, why, how many cases, when first
-- and last.
CREATE TABLE identity_run_reads (
    run_key  TEXT   PRIMARY KEY,
    reader   TEXT   NOT NULL,
    role     TEXT   NOT NULL,
    purpose  TEXT   NOT NULL,
    cases    BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at  BIGINT NOT NULL
);

-- Bumped at every write of a fingerprint (by any worker): a repeat lookup reads and parses
-- again only the fingerprints whose version changed since it last read them.
ALTER TABLE case_fingerprints ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
-- The version read from an index: in the row it comes after the fingerprint, whose text can
-- span several pages.
CREATE INDEX case_fingerprints_version ON case_fingerprints (case_no, version);

-- The repeat lookup reads each key's most recent letters: with the case in the index, an
-- index entry answers it without a seek into the table for every one of them.
DROP INDEX repeat_keys_recent;
CREATE INDEX repeat_keys_lookup ON repeat_keys (key, at, case_no);

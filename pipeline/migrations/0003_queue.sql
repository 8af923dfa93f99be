-- The durable job queue, the registration lock, versioned OCR/rules results and reviewers'
-- decisions. Same portable SQL as 0001: BIGINT 0/1 flags, TEXT, Unix milliseconds.

-- One job per letter to register ('letter:<sha256>') or per case to re-run
-- ('rerun:<run key>:<case_no>'). Ids are deterministic, so enqueuing twice is a no-op.
-- state: queued -> running (worker, lease_until) -> done | failed. A running job whose lease
-- has expired (its worker died) is claimed again; attempts counts claims.
CREATE TABLE jobs (
    job_id        TEXT   PRIMARY KEY,
    kind          TEXT   NOT NULL,
    letter_sha256 TEXT,
    case_no       TEXT,
    source_name   TEXT   NOT NULL,
    -- JSON: the letter's stored originals in page order, or what to re-run.
    payload       TEXT   NOT NULL,
    state         TEXT   NOT NULL,
    attempts      BIGINT NOT NULL,
    max_attempts  BIGINT NOT NULL,
    worker        TEXT,
    lease_until   BIGINT,
    not_before    BIGINT NOT NULL,
    last_error    TEXT,
    -- The case registered (or re-run), or the quarantine path of a failed letter.
    result        TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (state, not_before);
CREATE INDEX jobs_kind ON jobs (kind, state);

-- One row, updated first in every registration and re-run transaction: it serialises the
-- repeat lookup and the insert of the keys across workers (on SQLite the write lock, on
-- PostgreSQL the row lock), so two related letters registered at the same moment still see
-- each other.
CREATE TABLE registry_lock (
    id      BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO registry_lock (id, version) VALUES (1, 0);

-- Every OCR and rules run over a case, versioned; run 1 is the intake's. `applied` says
-- whether the run became the case's standing decision (it does not when a reviewer has
-- decided), `differs` whether its suggestion differs from the standing decision.
CREATE TABLE case_runs (
    case_no       TEXT   NOT NULL REFERENCES cases (case_no),
    run_no        BIGINT NOT NULL,
    kind          TEXT   NOT NULL,
    ocr_engine    TEXT,
    rules_version TEXT   NOT NULL,
    text_sha256   TEXT   NOT NULL,
    decision      TEXT   NOT NULL,
    applied       BIGINT NOT NULL,
    differs       BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (case_no, run_no)
);

-- A triage reviewer's decision: it stands over any later rules run.
CREATE TABLE case_reviews (
    case_no  TEXT   PRIMARY KEY REFERENCES cases (case_no),
    reviewer TEXT   NOT NULL,
    decision TEXT   NOT NULL,
    note     TEXT   NOT NULL,
    at       BIGINT NOT NULL
);

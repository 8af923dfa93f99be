-- Xinfang Intake case store. Written once for SQLite (the embedded default) and
-- PostgreSQL: only BIGINT, TEXT and DOUBLE PRECISION columns (flags are BIGINT 0/1: sqlx's
-- Any driver cannot decode SQLite booleans), no autoincrement
-- (keys are case numbers, digests and ordinals the application assigns), timestamps as
-- Unix milliseconds.

-- Per organ, year and channel, the last sequence number handed out (逐件编号登记).
CREATE TABLE case_sequences (
    organ    TEXT   NOT NULL,
    year     BIGINT NOT NULL,
    channel  TEXT   NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (organ, year, channel)
);

-- One row per registered letter.
CREATE TABLE cases (
    case_no        TEXT    PRIMARY KEY,
    organ          TEXT    NOT NULL,
    year           BIGINT  NOT NULL,
    channel        TEXT    NOT NULL,
    seq            BIGINT  NOT NULL,
    -- sha256 of the letter: of its one file, or of the ordered digests of a folder's files.
    letter_sha256  TEXT    NOT NULL UNIQUE,
    source_name    TEXT    NOT NULL,
    format         TEXT    NOT NULL,
    page_count     BIGINT  NOT NULL,
    ocr_confidence DOUBLE PRECISION,
    text           TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    needs_review   BIGINT  NOT NULL,
    received_at    BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    UNIQUE (organ, year, channel, seq)
);
CREATE INDEX cases_received_at ON cases (received_at);
CREATE INDEX cases_status ON cases (status);

-- Every original file, content-addressed; the bytes live under data_dir/originals.
CREATE TABLE originals (
    sha256        TEXT   PRIMARY KEY,
    byte_len      BIGINT NOT NULL,
    format        TEXT   NOT NULL,
    stored_path   TEXT   NOT NULL,
    first_seen_at BIGINT NOT NULL
);

-- The files a letter is made of, in page order.
CREATE TABLE case_originals (
    case_no   TEXT   NOT NULL REFERENCES cases (case_no),
    ordinal   BIGINT NOT NULL,
    sha256    TEXT   NOT NULL REFERENCES originals (sha256),
    file_name TEXT   NOT NULL,
    PRIMARY KEY (case_no, ordinal)
);

-- Pages with their normalised text, confidence and word/line boxes (JSON) for review.
CREATE TABLE pages (
    case_no    TEXT   NOT NULL REFERENCES cases (case_no),
    page_no    BIGINT NOT NULL,
    origin     TEXT   NOT NULL,
    text       TEXT   NOT NULL,
    confidence DOUBLE PRECISION,
    rotation   BIGINT NOT NULL,
    skew_deg   DOUBLE PRECISION NOT NULL,
    flags      TEXT   NOT NULL,
    boxes      TEXT   NOT NULL,
    PRIMARY KEY (case_no, page_no)
);

-- End-to-end log of who did what to a case, and when (监督执纪 requires it).
CREATE TABLE case_events (
    case_no TEXT   NOT NULL REFERENCES cases (case_no),
    seq     BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    detail  TEXT   NOT NULL,
    PRIMARY KEY (case_no, seq)
);

-- Reporter identity (举报人身份), kept apart from the letter: only roles that need it read
-- this table, and every read is recorded in identity_reads.
CREATE TABLE reporter_identities (
    case_no    TEXT   PRIMARY KEY REFERENCES cases (case_no),
    name       TEXT,
    phone      TEXT,
    id_number  TEXT,
    address    TEXT,
    unit       TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE identity_reads (
    case_no TEXT   NOT NULL REFERENCES cases (case_no),
    reader  TEXT   NOT NULL,
    role    TEXT   NOT NULL,
    purpose TEXT   NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX identity_reads_case ON identity_reads (case_no);

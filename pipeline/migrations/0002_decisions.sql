-- The rules stage's decisions, the repeat-detection index and fingerprints.
-- Same portable SQL as 0001: BIGINT 0/1 flags, TEXT, DOUBLE PRECISION.

-- One decision per case, with the rule-set version that made it; `decision` is the whole
-- decision as JSON (subjects, reasons, deadlines …), the columns are for queries.
CREATE TABLE case_decisions (
    case_no        TEXT   PRIMARY KEY REFERENCES cases (case_no),
    rules_version  TEXT   NOT NULL,
    class          TEXT   NOT NULL,
    in_scope       BIGINT NOT NULL,
    named          BIGINT NOT NULL,
    handling_level TEXT,
    forward_to     TEXT,
    repeat_of      TEXT,
    new_facts_of   TEXT,
    review         BIGINT NOT NULL,
    score          DOUBLE PRECISION NOT NULL,
    decision       TEXT   NOT NULL,
    decided_at     BIGINT NOT NULL
);
CREATE INDEX case_decisions_class ON case_decisions (class);
CREATE INDEX case_decisions_repeat_of ON case_decisions (repeat_of);

-- Repeat-candidate index: hashed keys (reported person by name, surname + unit, unit + post,
-- surname + post; MinHash bands). Hashes only, so 上级 routing stubs can keep them.
CREATE TABLE repeat_keys (
    key     TEXT   NOT NULL,
    case_no TEXT   NOT NULL REFERENCES cases (case_no),
    at      BIGINT NOT NULL,
    PRIMARY KEY (key, case_no)
);
CREATE INDEX repeat_keys_recent ON repeat_keys (key, at);

-- The fingerprint each candidate is compared on, and the earliest case of its matter.
CREATE TABLE case_fingerprints (
    case_no     TEXT PRIMARY KEY REFERENCES cases (case_no),
    root_case   TEXT NOT NULL,
    fingerprint TEXT NOT NULL
);

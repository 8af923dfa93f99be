-- Issue 12: every review kept, text encodings recorded, a changed file's new version linked
-- to the case it was first registered as. Same portable SQL as 0001.

-- Every reviewer's decision in order; case_reviews keeps the standing (latest) one. `changes`
-- is what the review changed of the decision it was made on.
CREATE TABLE case_review_history (
    case_no  TEXT   NOT NULL REFERENCES cases (case_no),
    seq      BIGINT NOT NULL,
    reviewer TEXT   NOT NULL,
    decision TEXT   NOT NULL,
    note     TEXT   NOT NULL,
    changes  TEXT   NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (case_no, seq)
);
INSERT INTO case_review_history (case_no, seq, reviewer, decision, note, changes, at)
    SELECT case_no, 1, reviewer, decision, note, '', at FROM case_reviews;

-- The character encoding a text original was written in (UTF-8, GB18030, UTF-16LE …); NULL
-- for images and PDFs.
ALTER TABLE originals ADD COLUMN encoding TEXT;

-- A case registered from a file that changed after an earlier version of it was registered
-- (a copy still being written when it was taken): the earlier case.
ALTER TABLE cases ADD COLUMN supersedes TEXT;

-- Issue 15: archives backfilled with their own history. Same portable SQL as 0001.

-- What an archive said of a letter registered from it: where that was read (manifest and
-- row), its own number (an alias `show` finds), and the class and status decided back then.
-- The date of receipt itself is the case's received_at; the channel the manifest named (NULL:
-- none, the configured one was used).
CREATE TABLE case_archive (
    case_no     TEXT   PRIMARY KEY REFERENCES cases (case_no),
    source      TEXT   NOT NULL,
    old_case_no TEXT,
    class_then  TEXT,
    status_then TEXT,
    channel     TEXT
);
CREATE INDEX case_archive_old_case_no ON case_archive (old_case_no);

-- The review queue (cases waiting for a reviewer, the longest waiting first) read through an
-- index however many cases are stored, instead of a scan of every case.
CREATE INDEX cases_review_queue ON cases (needs_review, received_at, case_no);

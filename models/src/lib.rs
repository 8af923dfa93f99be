//! The nouns of Xinfang Intake: letters, pages, OCR text, decisions, repeat fingerprints,
//! jobs, cases.
//!
//! Plain data with serde derives and small pure helpers (what a review means, what a
//! routing stub is). This crate never does I/O, never talks to a database and never spawns
//! work: the compiler keeps it that way because it has no such dependency.

pub mod case;
pub mod decision;
pub mod display;
pub mod job;
pub mod letter;
pub mod page;
pub mod repeat;
pub mod understanding;

pub use case::{CaseNo, CaseNoError, CaseStatus, IngestStatus};
pub use decision::{
    Confidence, Deadline, Decision, HandlingLevel, LetterClass, ReporterIdentity, ReviewEdit, ReviewError, Subject,
};
pub use job::{JobKind, JobState, RunKind, RunStatus};
pub use letter::{Channel, InputFormat, Sha256Hex};
pub use page::{letter_confidence, letter_text, BoundingBox, LineBox, PageFlag, PageOrigin, PageText, WordBox};
pub use repeat::{Candidate, CandidateLimits, Fingerprint, LookupKey, SubjectPrint};
pub use understanding::Understanding;

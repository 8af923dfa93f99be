//! The nouns of Xinfang Intake: letters, pages, OCR text, cases.
//!
//! Plain data with serde derives and small pure helpers. This crate never does I/O, never
//! talks to a database and never spawns work: the compiler keeps it that way because it has
//! no such dependency.

pub mod case;
pub mod decision;
pub mod letter;
pub mod page;

pub use case::{CaseNo, CaseNoError, CaseStatus, IngestStatus};
pub use decision::{Deadline, Decision, HandlingLevel, LetterClass, ReporterIdentity, Subject};
pub use letter::{Channel, InputFormat, Sha256Hex};
pub use page::{letter_confidence, BoundingBox, LineBox, PageFlag, PageOrigin, PageText, WordBox};

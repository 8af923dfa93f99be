//! Xinfang Intake: scanned petition and report letters (信访举报件) in, registered cases out.
//!
//! The flow is `scan → ingest → ocr → normalise → store`; see ARCHITECTURE.md. Stages live in
//! [`stages`] and are synchronous and pure; [`intake`] chains them under tokio; only
//! [`store`] writes.

pub mod bench;
pub mod bench_ingest;
pub mod bench_rules;
pub mod bench_watch;
pub mod cli;
pub mod config;
pub mod eval;
pub mod intake;
pub mod metrics;
pub mod reprocess;
pub mod stages;
pub mod store;
pub mod understand;
pub mod watch;
pub mod worker;

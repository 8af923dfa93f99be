//! Xinfang Intake: scanned petition and report letters (信访举报件) in, registered cases out.
//!
//! The flow is `scan → ingest → preprocess → ocr → normalise → understand (segment → tag →
//! extract → classify) → repeat lookup → store → review`; see ARCHITECTURE.md. From the
//! bottom up: [`config`] (runtime configuration and rule data) and [`digest`] import nothing
//! above them; [`stages`] are synchronous and pure; [`understand`] chains the understanding
//! stages; [`store`] keeps what they made, knowing nothing of them; [`intake`] chains it all
//! under tokio (queue, workers, re-runs, the watched folder); [`eval`] and [`metrics`]
//! measure it. The `xinfang` command and its benchmarks live in the binary, not here.

pub mod config;
pub mod digest;
pub mod eval;
pub mod intake;
pub mod metrics;
pub mod stages;
pub mod store;
pub mod understand;

//! `xinfang bench …`: the measurements behind the README's figures. Part of the binary, not
//! of the library: the product never calls them. Each prints its figures beside the targets
//! (and, where there is one, the baseline) in one run, and asserts nothing.

pub mod ingest;
pub mod ocr;
pub mod rerun;
pub mod rules;
pub mod scale;
pub mod watch;
pub mod workers;

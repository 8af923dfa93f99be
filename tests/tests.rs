//! Integration tests that drive the binary, real tesseract, PostgreSQL, SIGKILL and a full
//! disk: modules listed here, shared helpers in `support`. The fast ones are in `fast.rs`.

mod backfill;
mod bad_input;
mod ingest;
mod mailroom;
mod queue;
mod service;
mod store;
mod support;
mod understanding;

//! Integration tests: one binary, modules listed here, shared helpers in `support`.

mod bad_input;
mod ingest;
mod queue;
mod service;
mod store;
mod support;
mod understanding;

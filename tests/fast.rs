//! The fast integration tests: in-process, no OCR engine, no database server, no child
//! processes. `cargo test --workspace --lib --bins --test fast` runs them with the unit tests
//! in seconds; the README's test command runs them with everything else.

mod rules;

//! The stages of the pipeline, each a small module with a narrow typed interface:
//! `ingest` (bytes → pages), `preprocess` (page image → image fit for OCR), `ocr`
//! (image → text, confidence and boxes), `normalize` (text → text Chinese stages can use),
//! `segment`, `tag`, `extract`, `classify` (text → decision, with the rule data of
//! `config::catalogue`), `repeat` (fingerprints and the repeat verdict) and `calendar`
//! (working days).
//!
//! **Invariant:** no stage touches the database or the data directory, and none imports the
//! store, the intake or the understanding above it: they read `config` and `models` only.

pub mod calendar;
pub mod classify;
pub mod extract;
pub mod ingest;
pub mod normalize;
pub mod ocr;
pub mod ppocr;
pub mod preprocess;
pub mod repeat;
pub mod segment;
pub mod tag;

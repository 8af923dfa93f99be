//! The stages of the pipeline, each a small module with a narrow typed interface:
//! `ingest` (bytes → pages), `preprocess` (page image → image fit for OCR), `ocr`
//! (image → text, confidence and boxes), `normalize` (text → text Chinese stages can use),
//! `segment`, `tag`, `extract`, `classify` (text → decision, with the rule data of
//! `catalogue`), `repeat` (fingerprints and the repeat verdict) and `calendar` (working days).
//! None of them touches the database or the data directory.

pub mod calendar;
pub mod catalogue;
pub mod classify;
pub mod extract;
pub mod ingest;
pub mod normalize;
pub mod ocr;
pub mod preprocess;
pub mod repeat;
pub mod segment;
pub mod tag;

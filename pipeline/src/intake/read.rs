//! Reading a letter without storing anything: its files decoded (on the blocking pool) and
//! every page read, images OCR'd concurrently across the engines. Used by the intake and by
//! `xinfang ocr`.

use super::input::LetterFiles;
use super::LetterError;
use crate::config::Config;
use crate::stages::ingest::{self, PageContent};
use crate::stages::normalize::normalize;
use crate::stages::ocr::OcrPool;
use std::sync::Arc;
use std::time::Duration;
use xinfang_models::{InputFormat, PageOrigin, PageText};

/// A letter after reading and OCR, before registration.
pub struct ReadLetter {
    pub format: InputFormat,
    /// Per file, in order: the character encoding of a text file.
    pub encodings: Vec<Option<&'static str>>,
    pub pages: Vec<PageText>,
}

/// Reads files and OCRs pages, without storing anything.
#[derive(Clone)]
pub struct Reader {
    cfg: Arc<Config>,
    pool: OcrPool,
    /// Letters with images decoded and read at once (`in_flight`): their decoded pages are
    /// what holds memory. Text letters need no slot.
    decoding: Arc<tokio::sync::Semaphore>,
}

impl Reader {
    pub fn new(cfg: Arc<Config>, pool: OcrPool) -> Reader {
        let decoding = Arc::new(tokio::sync::Semaphore::new(pool.workers() + 1));
        Reader { cfg, pool, decoding }
    }

    /// Letters read at once: enough that every OCR engine has pages to work on.
    pub fn in_flight(&self) -> usize {
        self.pool.workers() + 1
    }

    /// Decodes the files of one letter (in order) and reads every page, OCR'ing images
    /// concurrently across the engines. Bounded by `limits.letter_timeout_secs`.
    pub async fn read(&self, files: Arc<LetterFiles>) -> Result<ReadLetter, LetterError> {
        let secs = self.cfg.limits.letter_timeout_secs;
        match tokio::time::timeout(Duration::from_secs(secs), self.read_unbounded(files)).await {
            Ok(r) => r,
            Err(_) => Err(LetterError::Timeout { secs }),
        }
    }

    async fn read_unbounded(&self, files: Arc<LetterFiles>) -> Result<ReadLetter, LetterError> {
        let text_only = files.iter().all(|(_, b)| matches!(ingest::detect_format(b), Ok(InputFormat::Text)));
        let _slot = match text_only {
            true => None,
            false => Some(self.decoding.acquire().await.map_err(|e| LetterError::Crashed(e.to_string()))?),
        };
        let limits = self.cfg.limits.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let bytes: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
            ingest::decode_letter(&bytes, &limits)
        })
        .await
        // The panic's own message is not repeated: it may quote the letter.
        .map_err(|e| LetterError::Crashed(if e.is_panic() { "a decoder panicked".into() } else { e.to_string() }))??;
        let format = decoded.first().map(|f| f.format).unwrap_or(InputFormat::Text);
        let encodings = decoded.iter().map(|f| f.encoding).collect();
        let contents: Vec<PageContent> = decoded.into_iter().flat_map(|f| f.pages).collect();
        let mut pending = Vec::with_capacity(contents.len());
        for (i, content) in contents.into_iter().enumerate() {
            let page_no = i as u32 + 1;
            let pool = self.pool.clone();
            pending.push(async move {
                match content {
                    PageContent::Image(regions) => pool.read(page_no, regions).await,
                    PageContent::TextLayer(t) => Ok(PageText::from_text(page_no, PageOrigin::TextLayer, normalize(&t))),
                    PageContent::Transcript(t) => {
                        Ok(PageText::from_text(page_no, PageOrigin::Transcript, normalize(&t)))
                    }
                    PageContent::Empty => Ok(PageText::from_text(page_no, PageOrigin::TextLayer, String::new())),
                }
            });
        }
        let pages = futures_util::future::join_all(pending)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(LetterError::Ocr)?;
        Ok(ReadLetter { format, encodings, pages })
    }
}

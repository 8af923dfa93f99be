//! Registration: the one path by which a read and decided letter (or a re-run of a case)
//! enters the store, and the report of what became of each letter. The repeat lookup and the
//! settling of the decision happen inside the store's registration transaction, under the
//! registry lock, with the rules' `settle` passed in; ingest, the worker, re-runs and the
//! tests all register through `Registrar`.

use super::input::LetterInput;
use super::report::LetterReport;
use super::{patiently, Intake, LetterError, LoadedLetter, Pending, ReadLetter, SystemError};
use crate::config::QueueConfig;
use crate::store::ArchiveRecord;
use crate::store::{
    CaseForRerun, JobState, NewCase, Registration, RepeatLookup, RunOutcome, RunResult, Store, StoreError,
};
use crate::understand::Understander;
use std::sync::Arc;
use xinfang_models::{
    letter_confidence, letter_text, Candidate, CaseNo, IngestStatus, InputFormat, LetterClass, PageOrigin, PageText,
    ReviewEdit, Understanding,
};

/// Who the class an archive decided back then is recorded as reviewed by.
pub const ARCHIVE_REVIEWER: &str = "档案回填";

/// Registers letters and re-runs, each settled against the earlier letters the store finds.
#[derive(Clone)]
pub struct Registrar {
    store: Store,
    understander: Arc<Understander>,
    queue: QueueConfig,
}

impl Registrar {
    pub fn new(store: Store, understander: Arc<Understander>, queue: QueueConfig) -> Registrar {
        Registrar { store, understander, queue }
    }

    /// Registers a letter as a case (waiting out a locked database or a full disk); its job,
    /// when given, is done in the same transaction. Returns the settled understanding.
    pub async fn register(
        &self,
        new: &NewCase,
        job: Option<&str>,
    ) -> Result<(Registration, Option<Understanding>), SystemError> {
        let received = self.understander.receipt_day(new.received_at);
        let settle = |u: &mut Understanding, candidates: &[Candidate]| {
            self.understander.settle(u, candidates, received);
        };
        let lookup = RepeatLookup { limits: self.understander.candidate_limits(), settle: &settle };
        patiently(&self.queue, "registering a letter", || async {
            Ok(self.store.register_letter(new, Some(lookup), job).await?)
        })
        .await
    }

    /// Registers letters in one transaction (group commit), in order: each one's repeat
    /// lookup sees the ones before it, exactly as one at a time. Should the group fail for
    /// a reason that does not pass (a race with another worker on a letter's digest), its
    /// letters are registered one at a time, each with its own outcome.
    pub async fn register_many(
        &self,
        letters: &[(&NewCase, &str)],
    ) -> Result<Vec<(Registration, Option<Understanding>)>, SystemError> {
        if letters.len() == 1 {
            return Ok(vec![self.register(letters[0].0, Some(letters[0].1)).await?]);
        }
        let u = &self.understander;
        let settle = |at: i64, d: &mut Understanding, c: &[Candidate]| {
            u.settle(d, c, u.receipt_day(at));
        };
        let grouped = patiently(&self.queue, "registering letters", || async {
            Ok(self.store.register_letters(letters, u.candidate_limits(), &settle).await?)
        })
        .await;
        match grouped {
            Ok(done) => Ok(done),
            Err(e) => {
                tracing::debug!("a group of {} letters is registered one at a time: {e}", letters.len());
                let mut done = Vec::with_capacity(letters.len());
                for (new, job) in letters {
                    done.push(self.register(new, Some(job)).await?);
                }
                Ok(done)
            }
        }
    }

    /// Stores a re-run of a case, settled against the letters received before it.
    pub async fn apply_run(
        &self,
        case: &CaseForRerun,
        run: &RunResult,
        job: Option<&str>,
    ) -> Result<RunOutcome, SystemError> {
        let received = self.understander.receipt_day(case.received_at);
        let settle = |u: &mut Understanding, candidates: &[Candidate]| {
            self.understander.settle(u, candidates, received);
        };
        let lookup = RepeatLookup { limits: self.understander.candidate_limits(), settle: &settle };
        patiently(&self.queue, "storing a re-run", || async { Ok(self.store.apply_run(case, run, lookup, job).await?) })
            .await
    }
}

impl Intake {
    /// Registers a read letter, or reports a duplicate or a failure (quarantining it).
    pub(super) async fn finish(
        &self,
        source: &str,
        input: Option<&LetterInput>,
        pending: Pending,
    ) -> Result<LetterReport, SystemError> {
        match pending {
            Pending::Duplicate { case_no, sha } => self.duplicate_report(source, &case_no, sha.as_str()).await,
            Pending::SameAs { first, sha } => match self.store.find_letter(&sha).await? {
                Some(case_no) => self.duplicate_report(source, &case_no, sha.as_str()).await,
                None => {
                    // The earlier copy could not be read; neither can this one, and its files
                    // are kept where they are (the first copy's are in quarantine).
                    let mut r = LetterReport::new(source, IngestStatus::Failed);
                    r.error = Some(format!("the same file as {first}, which could not be registered"));
                    r.sha256 = Some(sha.to_string());
                    Ok(r)
                }
            },
            Pending::Finished { job } => match (job.state, job.result.as_deref()) {
                (JobState::Done, Some(case)) => match case.parse::<CaseNo>() {
                    Ok(case_no) => {
                        self.duplicate_report(source, &case_no, job.letter_sha256.as_deref().unwrap_or("")).await
                    }
                    Err(e) => Err(StoreError::Corrupt(format!("job {} result {case}: {e}", job.job_id)).into()),
                },
                _ => {
                    let mut r = LetterReport::new(source, IngestStatus::Failed);
                    r.error = job.last_error.clone().or_else(|| Some("failed in another worker".into()));
                    r.quarantined = job.result.clone();
                    r.sha256 = job.letter_sha256.clone();
                    Ok(r)
                }
            },
            Pending::Failed { error, loaded, job } => self.fail(source, input, error, loaded, job).await,
            Pending::GiveUp { loaded, reason, job, received_at } => {
                self.register_manual(source, loaded, &reason, &job, received_at).await
            }
            Pending::Ready { loaded, letter, job, received_at, understanding } => {
                self.register_read(source, loaded, letter, &job, received_at, *understanding).await
            }
        }
    }

    /// The report of a letter whose bytes are already registered: what the user sees of it is
    /// the case it duplicates.
    async fn duplicate_report(&self, source: &str, case_no: &CaseNo, sha: &str) -> Result<LetterReport, SystemError> {
        let mut r = LetterReport::new(source, IngestStatus::Duplicate);
        if let Some(existing) = self.store.summary(case_no).await? {
            r.pages = usize::try_from(existing.page_count).unwrap_or(0);
            r.ocr_confidence = existing.ocr_confidence.map(|c| c as f32);
            r.format = InputFormat::parse(&existing.format);
        }
        // The decision stored with the case is part of what the user sees of it.
        if let Some(d) = self.store.decision(case_no).await? {
            r.set_decision(&d);
        }
        r.case_no = Some(case_no.to_string());
        r.sha256 = Some(sha.to_string());
        Ok(r)
    }

    /// The class an archive decided back then, recorded as that review of the backfilled
    /// case (through the one review function; the rules' decision stays beside it, and a
    /// re-run never overwrites it). Once: a case reviewed already keeps its review, so a
    /// manifest given again changes nothing.
    pub(super) async fn record_class_then(
        &self,
        report: &mut LetterReport,
        archive: &ArchiveRecord,
    ) -> Result<(), SystemError> {
        use super::review::{review, ReviewFailure};
        let (Some(class), Some(case_no)) = (archive.class_then, report.case_no.as_deref()) else {
            return Ok(());
        };
        let case_no: CaseNo = case_no.parse().map_err(|e| StoreError::Corrupt(format!("case {case_no}: {e}")))?;
        // The same bytes registered before as an ordinary letter are not the archive's case.
        if self.store.archive_record(&case_no).await?.is_none() {
            return Ok(());
        }
        let edit = ReviewEdit {
            reviewer: ARCHIVE_REVIEWER.into(),
            class: Some(class),
            level: None,
            named: None,
            // The archive's own handling of a letter outside the commission's business.
            forward_to: (!class.in_scope() && class != LetterClass::NoSubstance).then(|| "按原档案处理".to_string()),
            note: format!("class decided back then ({})", archive.source),
        };
        match review(&self.store, &self.understander, &case_no, &edit, Some(0)).await {
            Ok(_) => {
                if let Some(d) = self.store.decision(&case_no).await? {
                    report.set_decision(&d);
                }
                report.review = false;
                Ok(())
            }
            // Reviewed already (this manifest given before, or a person since).
            Err(ReviewFailure::Stale { .. }) => Ok(()),
            Err(ReviewFailure::Store(e)) => Err(e.into()),
            Err(why) => {
                report.flags.push(format!("class_then_not_recorded: {why}"));
                Ok(())
            }
        }
    }

    /// Quarantines a letter that cannot be read and ends its job as failed.
    async fn fail(
        &self,
        source: &str,
        input: Option<&LetterInput>,
        error: LetterError,
        loaded: Option<LoadedLetter>,
        job: Option<String>,
    ) -> Result<LetterReport, SystemError> {
        let mut r = LetterReport::new(source, IngestStatus::Failed);
        let reason = error.to_string();
        r.error = Some(reason.clone());
        r.sha256 = loaded.as_ref().map(|l| l.letter_sha.to_string());
        let q = match (loaded.as_ref(), input) {
            (Some(loaded), _) => {
                let files: Vec<(String, &[u8])> = loaded.files.iter().map(|(n, b)| (n.clone(), b.as_slice())).collect();
                Some(self.files.quarantine(&loaded.letter_sha, source, &files, loaded.is_folder, &reason)?)
            }
            // Not loaded (too large, unreadable): copy what exists without loading it (a pipe or
            // a device is no letter and is left alone).
            (None, Some(input)) if input.path.exists() && super::not_a_letter(&input.path, true).is_none() => {
                Some(self.files.quarantine_paths(source, &input.paths(), input.is_folder, &reason)?)
            }
            _ => None,
        };
        r.quarantined = q.map(|q| q.display().to_string());
        if let Some(job) = job {
            let quarantined = r.quarantined.clone();
            patiently(&self.cfg.queue, "ending a failed job", || async {
                Ok(self.store.fail_job(&job, &reason, quarantined.as_deref()).await?)
            })
            .await?;
        }
        Ok(r)
    }

    /// The case of a letter: its originals and what was read of it.
    fn new_case(&self, source: &str, loaded: LoadedLetter, format: InputFormat, received_at: i64) -> NewCase {
        let archive = loaded.archive;
        NewCase {
            organ: self.cfg.numbering.organ_code.clone(),
            channel: archive.as_ref().and_then(|a| a.channel).unwrap_or(self.cfg.numbering.channel),
            letter_sha256: loaded.letter_sha,
            source_name: source.to_string(),
            format,
            originals: loaded.originals,
            pages: Vec::new(),
            ocr_confidence: None,
            text: String::new(),
            needs_review: true,
            received_at,
            received_on: self.understander.receipt_day(received_at),
            archive,
            understanding: None,
            ocr_engine: None,
            manual: None,
            supersedes: loaded.supersedes,
        }
    }

    /// Registers a case and reports it from what it holds (a duplicate's report when a
    /// letter with the same bytes was registered first: an earlier one of this batch, or
    /// another worker).
    async fn register_case(&self, source: &str, new: &NewCase, job: &str) -> Result<LetterReport, SystemError> {
        let (registration, settled) = self.registrar.register(new, Some(job)).await?;
        self.report_registered(source, new, registration, settled).await
    }

    /// The report of a registration: the new case with its settled decision and text, or
    /// the case whose bytes it duplicates.
    pub(super) async fn report_registered(
        &self,
        source: &str,
        new: &NewCase,
        registration: Registration,
        settled: Option<Understanding>,
    ) -> Result<LetterReport, SystemError> {
        let case_no = match registration {
            Registration::Registered(c) => c,
            Registration::Duplicate(c) => return self.duplicate_report(source, &c, new.letter_sha256.as_str()).await,
        };
        let mut r = LetterReport::new(source, IngestStatus::Registered);
        r.case_no = Some(case_no.to_string());
        r.sha256 = Some(new.letter_sha256.to_string());
        r.format = Some(new.format);
        r.pages = new.pages.len();
        r.ocr_confidence = new.ocr_confidence;
        r.review = new.needs_review;
        r.flags = new
            .pages
            .iter()
            .flat_map(|p| p.flags.iter().map(move |f| format!("p{}:{}", p.page_no, f.as_str())))
            .collect();
        if let Some(u) = &settled {
            r.set_decision(&u.decision);
            r.text = Some(if u.routing_stub() { String::new() } else { new.text.clone() });
        }
        Ok(r)
    }

    /// Registers a letter the intake gave up reading, for manual handling: its originals,
    /// no text, flagged for review with the reason.
    async fn register_manual(
        &self,
        source: &str,
        loaded: LoadedLetter,
        reason: &str,
        job: &str,
        received_at: i64,
    ) -> Result<LetterReport, SystemError> {
        let format = loaded.originals.first().map_or(InputFormat::Text, |o| o.format);
        let new = NewCase { manual: Some(reason.to_string()), ..self.new_case(source, loaded, format, received_at) };
        let mut r = self.register_case(source, &new, job).await?;
        if r.status == IngestStatus::Duplicate {
            return Ok(r);
        }
        r.flags = vec!["manual_handling".into()];
        r.error = Some(reason.to_string());
        Ok(r)
    }

    /// Registers a read and decided letter (the repeat lookup happens inside the
    /// registration, under the registry lock).
    async fn register_read(
        &self,
        source: &str,
        loaded: LoadedLetter,
        letter: ReadLetter,
        job: &str,
        received_at: i64,
        understanding: Understanding,
    ) -> Result<LetterReport, SystemError> {
        let new = self.read_case(source, loaded, letter, received_at, understanding);
        self.register_case(source, &new, job).await
    }

    /// The case of a read and decided letter, the reporter's identity taken out of its text.
    pub(super) fn read_case(
        &self,
        source: &str,
        mut loaded: LoadedLetter,
        mut letter: ReadLetter,
        received_at: i64,
        understanding: Understanding,
    ) -> NewCase {
        for (original, encoding) in loaded.originals.iter_mut().zip(&letter.encodings) {
            original.encoding = encoding.map(String::from);
        }
        // The reporter's identity lives in its own table, not in the letter's text.
        let text = self.understander.redact(&letter_text(&letter.pages), &mut letter.pages, &understanding.identity);
        let needs_review = letter.pages.iter().any(PageText::needs_review) || understanding.decision.review;
        let ocr_engine = letter.pages.iter().any(|p| p.origin == PageOrigin::Ocr).then(|| self.ocr_engine.clone());
        NewCase {
            ocr_confidence: letter_confidence(&letter.pages),
            pages: letter.pages,
            text,
            needs_review,
            understanding: Some(understanding),
            ocr_engine,
            ..self.new_case(source, loaded, letter.format, received_at)
        }
    }
}

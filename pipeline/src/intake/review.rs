//! A triage reviewer's decision on a case, the one way every interface records one: made on
//! the case's current decision (the last reviewer's, else the rules'), kept consistent and
//! completed by the rules (`Understander::review`), and recorded unless another review was
//! saved since the reviewer looked (then they are told, and nothing is written over it).

use crate::store::{NotReviewable, ReviewSaved, Store, StoreError};
use crate::understand::Understander;
use thiserror::Error;
use xinfang_models::{CaseNo, ReviewEdit, ReviewError};

/// Why a review was not recorded.
#[derive(Debug, Error)]
pub enum ReviewFailure {
    #[error("no case {0}")]
    NoSuchCase(CaseNo),
    #[error("{0} has no decision to review (it waits for manual handling: register what it says first)")]
    NoDecision(CaseNo),
    #[error("{0}")]
    Invalid(#[from] ReviewError),
    #[error("{reviewer} saved a review of this case after you opened it: look at it again before deciding")]
    Stale { reviewer: String, at: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records `edit` on the case and returns what it changed of the standing decision.
/// `seen_reviews` is how many reviews the reviewer saw the case with (`None`: as it stands).
pub async fn review(
    store: &Store,
    understander: &Understander,
    case_no: &CaseNo,
    edit: &ReviewEdit,
    seen_reviews: Option<i64>,
) -> Result<Vec<String>, ReviewFailure> {
    let base = match store.review_base(case_no).await? {
        Ok(base) => base,
        Err(NotReviewable::NoSuchCase) => return Err(ReviewFailure::NoSuchCase(case_no.clone())),
        Err(NotReviewable::NoDecision) => return Err(ReviewFailure::NoDecision(case_no.clone())),
    };
    let decision = understander.review(&base.decision, edit, understander.receipt_day(base.received_at))?;
    let based_on = seen_reviews.unwrap_or(base.reviews);
    match store.record_review(case_no, &decision, edit.reviewer.trim(), &edit.note, based_on).await? {
        ReviewSaved::Recorded { changes } => Ok(changes),
        ReviewSaved::Stale { reviewer, at } => Err(ReviewFailure::Stale { reviewer, at }),
    }
}

//! The durable queue's nouns: what a job does and where it stands, and what a re-run did.
//! Their names are stored in the database and printed in reports, so each has one stable
//! spelling.

use serde::{Deserialize, Serialize};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Register a letter whose originals are stored.
    Letter,
    /// Re-run OCR and/or the rules over a registered case.
    Rerun,
}

impl JobKind {
    pub const ALL: [JobKind; 2] = [JobKind::Letter, JobKind::Rerun];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Letter => "letter",
            JobKind::Rerun => "rerun",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a job stands: `queued` → `running` (a worker and a lease) → `done` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 4] = [JobState::Queued, JobState::Running, JobState::Done, JobState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What produced a run of a case (`case_runs.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// The first reading and decision, at registration.
    Intake,
    /// The originals read again with OCR, then the rules.
    Ocr,
    /// The rules only, over the stored text.
    Rules,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Intake => "intake",
            RunKind::Ocr => "ocr",
            RunKind::Rules => "rules",
        }
    }
}

/// What a re-run did to one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The run became the standing decision.
    Applied,
    /// A reviewer's decision stands; the run is recorded beside it.
    Suggested,
    /// The case could not be re-run.
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Applied => "applied",
            RunStatus::Suggested => "suggested",
            RunStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
    }
}

//! Cases: the number given at registration (逐件编号登记), the status ledger values, and the
//! outcome of ingesting one letter.

use crate::letter::Channel;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A case number: `{organ}-{YYYY}-{channel code}-{6-digit sequence}`, e.g. `QLX-2026-X-000042`.
/// The sequence restarts every year, per organ and channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseNo {
    pub organ: String,
    pub year: i32,
    pub channel: Channel,
    pub seq: u32,
}

/// Why a string is not a case number.
// models stays dependency-light: a hand-written Error impl instead of a derive crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseNoError(pub String);

impl fmt::Display for CaseNoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a case number: {}", self.0)
    }
}

impl std::error::Error for CaseNoError {}

impl CaseNo {
    /// Whether `organ` can be used as the organ code of a case number: 1–16 ASCII letters
    /// or digits (no `-`, which separates the parts).
    pub fn valid_organ(organ: &str) -> bool {
        (1..=16).contains(&organ.len()) && organ.bytes().all(|b| b.is_ascii_alphanumeric())
    }
}

impl fmt::Display for CaseNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:04}-{}-{:06}", self.organ, self.year, self.channel.code(), self.seq)
    }
}

impl FromStr for CaseNo {
    type Err = CaseNoError;

    fn from_str(s: &str) -> Result<CaseNo, CaseNoError> {
        let err = || CaseNoError(s.to_string());
        let mut parts = s.split('-');
        let (Some(organ), Some(year), Some(ch), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let mut ch_chars = ch.chars();
        let (Some(c), None) = (ch_chars.next(), ch_chars.next()) else {
            return Err(err());
        };
        if !CaseNo::valid_organ(organ) || year.len() != 4 || seq.len() < 6 {
            return Err(err());
        }
        Ok(CaseNo {
            organ: organ.to_string(),
            year: year.parse().map_err(|_| err())?,
            channel: Channel::from_code(c).ok_or_else(err)?,
            seq: seq.parse().map_err(|_| err())?,
        })
    }
}

impl TryFrom<String> for CaseNo {
    type Error = CaseNoError;
    fn try_from(s: String) -> Result<CaseNo, CaseNoError> {
        s.parse()
    }
}

impl From<CaseNo> for String {
    fn from(c: CaseNo) -> String {
        c.to_string()
    }
}

/// Ledger status of a case (domain: the status values seen in real systems).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// 待签收
    AwaitingSignOff,
    /// 已登记
    Registered,
    /// 不予受理
    NotAccepted,
    /// 已转送
    Forwarded,
    /// 已移送
    Transferred,
    /// 转问题线索
    BecameClue,
    /// 留存归档 (repeat filed)
    FiledRepeat,
    /// 已合并
    Merged,
    /// 已办结
    Closed,
    /// 已反馈
    FedBack,
    /// 待人工处理: the intake gave up on reading the letter (retries exhausted); its
    /// originals are kept and a person registers what it says.
    ManualHandling,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 11] = [
        CaseStatus::AwaitingSignOff,
        CaseStatus::Registered,
        CaseStatus::NotAccepted,
        CaseStatus::Forwarded,
        CaseStatus::Transferred,
        CaseStatus::BecameClue,
        CaseStatus::FiledRepeat,
        CaseStatus::Merged,
        CaseStatus::Closed,
        CaseStatus::FedBack,
        CaseStatus::ManualHandling,
    ];

    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::AwaitingSignOff => "awaiting_sign_off",
            CaseStatus::Registered => "registered",
            CaseStatus::NotAccepted => "not_accepted",
            CaseStatus::Forwarded => "forwarded",
            CaseStatus::Transferred => "transferred",
            CaseStatus::BecameClue => "became_clue",
            CaseStatus::FiledRepeat => "filed_repeat",
            CaseStatus::Merged => "merged",
            CaseStatus::Closed => "closed",
            CaseStatus::FedBack => "fed_back",
            CaseStatus::ManualHandling => "manual_handling",
        }
    }

    /// The label users read.
    pub fn label_zh(self) -> &'static str {
        match self {
            CaseStatus::AwaitingSignOff => "待签收",
            CaseStatus::Registered => "已登记",
            CaseStatus::NotAccepted => "不予受理",
            CaseStatus::Forwarded => "已转送",
            CaseStatus::Transferred => "已移送",
            CaseStatus::BecameClue => "转问题线索",
            CaseStatus::FiledRepeat => "留存归档",
            CaseStatus::Merged => "已合并",
            CaseStatus::Closed => "已办结",
            CaseStatus::FedBack => "已反馈",
            CaseStatus::ManualHandling => "待人工处理",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<CaseStatus> {
        CaseStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What happened to one letter given to `ingest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestStatus {
    /// A new case was registered.
    Registered,
    /// The same bytes were registered before; no new case.
    Duplicate,
    /// The letter could not be read; its original is in quarantine.
    Failed,
}

impl IngestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestStatus::Registered => "registered",
            IngestStatus::Duplicate => "duplicate",
            IngestStatus::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_no_formats_and_parses() {
        let c = CaseNo { organ: "QLX".into(), year: 2026, channel: Channel::Letter, seq: 42 };
        assert_eq!(c.to_string(), "QLX-2026-X-000042");
        assert_eq!("QLX-2026-X-000042".parse::<CaseNo>(), Ok(c));
    }

    #[test]
    fn case_no_rejects_malformed() {
        for bad in ["", "QLX-2026-X", "QLX-26-X-000001", "QLX-2026-Q-000001", "Q-L-2026-X-000001"] {
            assert!(bad.parse::<CaseNo>().is_err(), "{bad}");
        }
    }

    #[test]
    fn status_names_round_trip() {
        for s in CaseStatus::ALL {
            assert_eq!(CaseStatus::parse(s.as_str()), Some(s));
        }
    }
}

//! What repeat detection (初次件/重复件) keeps of a letter and passes between the rules and the
//! store: the hashed fingerprint, the index keys it is looked up by, and the earlier letters
//! the store finds through them. Hashes only, never readable content, so that a 上级 routing
//! stub can keep its fingerprint.

use serde::{Deserialize, Serialize};

/// A reported person, hashed: enough to tell whether two letters are about the same person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectPrint {
    /// Hash of the full name, when the letter gives one.
    pub name: Option<u64>,
    pub surname: Option<u64>,
    /// Hash of the lowest unit named (柳河村 of 石桥镇柳河村).
    pub unit: Option<u64>,
    /// Hash of the canonical post.
    pub post: Option<u64>,
    /// Hash of the lowest place (村, 社区, 镇, 乡) in the unit, when it names one.
    #[serde(default)]
    pub place: Option<u64>,
}

/// Everything repeat detection keeps of a letter (stored as JSON with the case: the field
/// names are part of the stored format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub subjects: Vec<SubjectPrint>,
    pub minhash: Vec<u32>,
    /// Hashed substantive facts: amounts, acts, domains.
    pub facts: Vec<u64>,
    /// Hashed amounts only (a subset of `facts`).
    pub amounts: Vec<u64>,
    /// The letter says it brings new facts or evidence.
    pub claims_new: bool,
    /// Hashed specific words: names of places, firms and things the dictionary does not
    /// know (福满楼, a plate number), which letters about one matter share however worded.
    #[serde(default)]
    pub specifics: Vec<u64>,
}

/// A key a letter's earlier letters are looked up by, with how much sharing it says that two
/// letters are about the same matter (to rank candidates when there are more than a lookup
/// compares).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LookupKey {
    pub key: String,
    pub weight: u32,
}

/// How far a repeat lookup reads: each key's most recent `per_key` letters, of which the
/// `total` sharing the most weight of keys are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateLimits {
    pub per_key: u32,
    pub total: u32,
}

/// An earlier letter found through the index.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub case_no: String,
    /// The earliest letter of its matter: itself, or the case it repeats.
    pub root: String,
    pub fingerprint: Fingerprint,
}

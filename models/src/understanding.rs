//! What the rules made of one letter, with what is stored beside the decision: the reporter's
//! identity (apart from the letter), the repeat fingerprint and its index keys. The rules
//! produce it, the store completes it with the earlier letters it finds (`repeat_of`,
//! `new_facts_of`, deadlines) inside the registration, and keeps it.

use crate::decision::{Decision, ReporterIdentity};
use crate::repeat::{Fingerprint, LookupKey};

/// A decision with the identity, fingerprint and keys that go with it.
#[derive(Debug, Clone)]
pub struct Understanding {
    pub decision: Decision,
    /// The reporter's identity: stored apart from the letter, never logged.
    pub identity: ReporterIdentity,
    pub fingerprint: Fingerprint,
    /// Index keys stored with the case.
    pub keys: Vec<String>,
    /// Keys this letter's repeat candidates are looked up by.
    pub lookup_keys: Vec<LookupKey>,
}

impl Understanding {
    /// A letter routed up (上级) keeps only a routing stub: no text, no boxes (domain rules §5).
    pub fn routing_stub(&self) -> bool {
        self.decision.routes_up()
    }
}

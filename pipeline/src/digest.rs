//! Content digests: the sha256 that names an original, a letter and a job. A leaf: it
//! imports nothing of the pipeline, so stages and store can both use it.

use sha2::{Digest, Sha256};
use xinfang_models::Sha256Hex;

/// The sha256 of some bytes.
pub fn sha256(bytes: &[u8]) -> Sha256Hex {
    Sha256Hex::from_digest(&Sha256::digest(bytes).into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_digest_of_nothing_is_the_well_known_one() {
        assert_eq!(super::sha256(b"").as_str(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}

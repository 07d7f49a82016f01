//! Client keys: generation, hashing, the lookup cache, and what a key allows.

mod cache;
mod keys;

pub use cache::{AuthError, KeyCache};
pub use keys::{
    ClientKey, KeyError, KeyUpdate, NewKey, create_key, delete_key, generate_key, key_status,
    revoke_key, revoke_key_id, rotate_key, update_key,
};

use sha2::{Digest, Sha256};

/// The SHA-256 of a client key: what the database stores and the cache is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn of(plaintext: &str) -> Self {
        Self(Sha256::digest(plaintext.as_bytes()).into())
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// The first characters of a key, enough to recognise it in a listing and useless to an attacker.
pub fn display_prefix(plaintext: &str) -> String {
    plaintext.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            KeyHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

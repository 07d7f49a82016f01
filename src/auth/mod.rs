//! Client keys: generation, hashing, the lookup cache, and what a key allows.

mod cache;
mod client_keys;

pub use cache::{AuthError, KeyCache};
pub use client_keys::{
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

/// Characters of a key's secret part shown in listings: enough to tell a handful of keys
/// apart, and only 24 bits of a key that holds at least 32 characters.
const SHOWN_SECRET_CHARS: usize = 4;

/// Well-known heads of keys, which say what kind of key it is and nothing about its secret.
const PUBLIC_HEADS: &[&str] = &[client_keys::KEY_PREFIX, "sk-"];

/// How a key is shown in listings: its well-known head, if it has one (`sk-lg-`, `sk-`), and
/// the next four characters, like `sk-lg-Ab3x`. Listings are read by more people than keys
/// are: a leaked listing must leave nearly all of each key to guess.
pub fn display_prefix(plaintext: &str) -> String {
    let head = PUBLIC_HEADS
        .iter()
        .find(|head| plaintext.starts_with(**head))
        .map_or("", |head| head);
    let secret = plaintext.get(head.len()..).unwrap_or_default();
    secret
        .chars()
        .take(SHOWN_SECRET_CHARS)
        .fold(head.to_owned(), |mut shown, c| {
            shown.push(c);
            shown
        })
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

    #[test]
    fn listings_show_a_public_head_and_four_characters() {
        assert_eq!(display_prefix("sk-lg-AbCdEfGhIjKlMnOp"), "sk-lg-AbCd");
        assert_eq!(display_prefix("sk-proj-0123456789abcdef"), "sk-proj");
        assert_eq!(display_prefix("0123456789abcdef0123456789abcdef"), "0123");
        assert_eq!(display_prefix("ééééééé"), "éééé");
        assert_eq!(display_prefix("sk-"), "sk-");
        let generated = generate_key();
        assert_eq!(
            display_prefix(&generated).len(),
            client_keys::KEY_PREFIX.len() + 4
        );
        assert!(generated.starts_with(&display_prefix(&generated)));
    }
}

//! `Secret`: a string that never shows itself in `Debug` or `Display` output.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A credential (API key, password) kept in memory. Formatting it prints `[redacted]`, so it
/// can sit inside structs that are logged or debug-printed without leaking, and its memory is
/// zeroed when it is dropped (`secrecy`), so a freed credential does not linger in the heap.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The plaintext; call only where the secret is put on the wire or hashed.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// A hint safe to show to operators, like `sk-…a1b2`: at most the first three and the last
    /// four characters, and nothing at all for short secrets.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.expose().chars().collect();
        if chars.len() < 12 {
            return "…".to_owned();
        }
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}…{tail}")
    }
}

/// Equal plaintexts; for configuration comparisons, never on a request's path.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// Seals upstream credentials for storage with AES-256-GCM: a random 96-bit nonce per value,
/// stored as `nonce || ciphertext || tag`.
#[derive(Clone)]
pub struct SecretCipher {
    cipher: aes_gcm::Aes256Gcm,
}

/// A sealed value that does not open under this key: wrong key, or damaged data.
#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be decrypted with this encryption key")]
pub struct OpenError;

const NONCE_LEN: usize = 12;

impl SecretCipher {
    pub fn new(key: &[u8; 32]) -> Self {
        use aes_gcm::KeyInit;
        Self {
            cipher: aes_gcm::Aes256Gcm::new(key.into()),
        }
    }

    /// A fresh random 32-byte key.
    pub fn generate_key() -> [u8; 32] {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        key
    }

    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        use aes_gcm::aead::Aead;
        let mut nonce = [0u8; NONCE_LEN];
        rand::Rng::fill(&mut rand::rng(), &mut nonce);
        // Encryption only fails for inputs beyond GCM's 64 GiB limit, which no credential reaches;
        // an empty ciphertext would then fail to open, loudly, rather than leak anything.
        let sealed = self
            .cipher
            .encrypt(aes_gcm::Nonce::from_slice(&nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Secret, OpenError> {
        use aes_gcm::aead::Aead;
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(aes_gcm::Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| OpenError)?;
        String::from_utf8(plaintext)
            .map(Secret::new)
            .map_err(|_| OpenError)
    }
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretCipher([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::{Secret, SecretCipher};

    #[test]
    fn sealed_values_open_only_under_their_key() {
        let cipher = SecretCipher::new(&SecretCipher::generate_key());
        let sealed = cipher.seal("sk-upstream-credential");
        assert!(!sealed.windows(5).any(|w| w == b"sk-up"));
        assert_eq!(
            cipher.open(&sealed).unwrap().expose(),
            "sk-upstream-credential"
        );
        assert_ne!(
            cipher.seal("same"),
            cipher.seal("same"),
            "nonces must differ"
        );
        let other = SecretCipher::new(&SecretCipher::generate_key());
        assert!(other.open(&sealed).is_err());
        assert!(cipher.open(b"short").is_err());
    }

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::new("sk-very-secret-value-1234");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose(), "sk-very-secret-value-1234");
    }

    #[test]
    fn hint_shows_only_the_ends_of_long_secrets() {
        assert_eq!(Secret::new("sk-abcdefghijkl1234").hint(), "sk-…1234");
        assert_eq!(Secret::new("short").hint(), "…");
    }
}

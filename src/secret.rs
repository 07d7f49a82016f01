//! `Secret`: a string that never shows itself in `Debug` or `Display` output; and
//! [`redact_credentials`], which hides credentials in text from elsewhere before it is logged
//! or relayed.

mod key_file;

use std::borrow::Cow;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

pub use key_file::{KeyFileError, key_file_for, load_cipher};

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

/// What stands in for a credential in redacted text.
pub const REDACTED: &str = "[redacted]";

/// Prefixes of well-known kinds of credentials, with how many token characters must follow for
/// the text to be taken as one (shorter runs are ordinary words like `sk-learn`).
const CREDENTIAL_SHAPES: &[(&[u8], usize)] = &[
    // OpenAI (`sk-…`, `sk-proj-…`), Anthropic (`sk-ant-…`) and many OpenAI-compatible APIs.
    (b"sk-", 16),
    // Google API keys (Gemini, Vertex).
    (b"AIza", 30),
    // AWS access key ids, long-lived and temporary.
    (b"AKIA", 16),
    (b"ASIA", 16),
    // Groq, xAI, Hugging Face.
    (b"gsk_", 20),
    (b"xai-", 20),
    (b"hf_", 20),
];

/// The shortest configured credential hidden by its value: a shorter one (a test key like
/// `k`) would hide ordinary letters.
const MIN_KNOWN_LEN: usize = 8;

/// The shortest token after `Bearer ` that is hidden.
const MIN_BEARER_LEN: usize = 8;

fn is_key_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

fn is_token_char(byte: u8) -> bool {
    is_key_char(byte) || matches!(byte, b'.' | b'~' | b'+' | b'/' | b'=')
}

/// `text` with every credential in it replaced by `[redacted]`: each of `known` (the
/// credentials configured for the upstream that wrote the text), anything shaped like a
/// well-known kind of API key (`sk-…`, `AIza…`, `AKIA…`, …), and the token after `Bearer `.
///
/// Used on every upstream error body before it is logged or relayed to a client, since some
/// upstreams echo the credential they were sent. Only credential characters are replaced, so
/// JSON stays JSON. Borrows `text` when there is nothing to hide.
pub fn redact_credentials<'t>(text: &'t [u8], known: &[&str]) -> Cow<'t, [u8]> {
    let mut hidden: Vec<(usize, usize)> = Vec::new();
    for secret in known.iter().filter(|s| s.len() >= MIN_KNOWN_LEN) {
        for start in memchr::memmem::find_iter(text, secret.as_bytes()) {
            hidden.push((start, start + secret.len()));
        }
    }
    let run =
        |from: usize, token: fn(u8) -> bool| text[from..].iter().take_while(|b| token(**b)).count();
    for start in 0..text.len() {
        if start > 0 && is_key_char(text[start - 1]) {
            continue;
        }
        let rest = &text[start..];
        for (prefix, min_len) in CREDENTIAL_SHAPES {
            if rest.starts_with(prefix) {
                let len = run(start + prefix.len(), is_key_char);
                if len >= *min_len {
                    hidden.push((start, start + prefix.len() + len));
                }
            }
        }
        if rest.len() > 7 && rest[..6].eq_ignore_ascii_case(b"bearer") && rest[6] == b' ' {
            let token = start + 6 + rest[6..].iter().take_while(|b| **b == b' ').count();
            let len = run(token, is_token_char);
            if len >= MIN_BEARER_LEN {
                hidden.push((token, token + len));
            }
        }
    }
    if hidden.is_empty() {
        return Cow::Borrowed(text);
    }
    hidden.sort_unstable();
    let mut out = Vec::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in hidden {
        if end <= copied {
            continue;
        }
        if start >= copied {
            out.extend_from_slice(&text[copied..start]);
            out.extend_from_slice(REDACTED.as_bytes());
        }
        copied = end;
    }
    out.extend_from_slice(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{Secret, SecretCipher, redact_credentials};

    fn redacted(text: &str, known: &[&str]) -> String {
        String::from_utf8(redact_credentials(text.as_bytes(), known).into_owned()).unwrap()
    }

    #[test]
    fn credentials_are_hidden_from_upstream_text() {
        for (text, known, expected) in [
            (
                r#"{"error":{"message":"Incorrect API key provided: my-own-key-1234."}}"#,
                &["my-own-key-1234"][..],
                r#"{"error":{"message":"Incorrect API key provided: [redacted]."}}"#,
            ),
            (
                "key sk-proj-abcdefghijklmnop1234 and sk-ant-api03-AAAAAAAAAAAAAAAAAAAA_bb",
                &[],
                "key [redacted] and [redacted]",
            ),
            (
                "got Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl, and x-goog AIzaSyA1234567890abcdefghijklmnopqrstu",
                &[],
                "got Authorization: Bearer [redacted], and x-goog [redacted]",
            ),
            ("AKIAIOSFODNN7EXAMPLE signed", &[], "[redacted] signed"),
            // Ordinary words that only look alike stay.
            (
                "task-queue-for-the-day sk-learn bearer of news mask-abcdefghijklmnopqrstu",
                &["k"],
                "task-queue-for-the-day sk-learn bearer of news mask-abcdefghijklmnopqrstu",
            ),
            // A known credential inside a credential-shaped one: hidden once.
            (
                "sk-upstream-account-secret-1!",
                &["sk-upstream-account-secret-1", "account-secret"],
                "[redacted]!",
            ),
        ] {
            assert_eq!(redacted(text, known), expected, "{text}");
        }
        assert!(matches!(
            redact_credentials(b"nothing here", &["sk-upstream-account-secret-1"]),
            std::borrow::Cow::Borrowed(_)
        ));
    }

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

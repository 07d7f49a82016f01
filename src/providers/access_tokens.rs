//! OAuth access tokens minted from a Google service account (Vertex AI): an RS256-signed JWT
//! assertion exchanged at the key's `token_uri`, cached per account until shortly before it
//! expires, and refreshed by one request however many wait for it.
//!
//! Tokens are refreshed on demand, by the first request that finds the cached one stale; there
//! is no background refresh. The refresh happens when 80 % of the token's lifetime has passed,
//! at most five minutes before it expires (Google's tokens live an hour), so a token that lives
//! ten seconds is still used for eight. Times are read from the App's [`Clock`].

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::routing::Account;
use crate::secret::{Secret, redact_credentials};

/// The scope Vertex AI needs.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The grant a signed assertion is exchanged under (RFC 7523).
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Google's token endpoint, for a key file that names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// How long an assertion is valid: Google accepts at most an hour.
const ASSERTION_LIFETIME: i64 = 3600;

/// The longest a refresh comes before a token's expiry.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How long the token endpoint has to answer.
const MINT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a token endpoint's answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The access tokens of every service-account account, minted through the shared client.
#[derive(Clone)]
pub struct AccessTokens {
    /// Loaded for each token request, so minting follows the client's replacements.
    client: super::CurrentClient,
    clock: Clock,
    slots: moka::future::Cache<i64, Arc<Slot>>,
    /// Token requests made, for the tests and the log.
    minted: Arc<AtomicU64>,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("accounts", &self.slots.entry_count())
            .finish_non_exhaustive()
    }
}

/// Why no token could be had: the token endpoint's refusal or silence, or a key file that
/// cannot sign. Its text is safe to log (credentials hidden).
#[derive(Debug, Clone)]
pub struct MintFailure {
    pub detail: String,
}

/// One account's token: the current one, and the lock that makes its refresh single-flight.
#[derive(Default)]
struct Slot {
    current: ArcSwapOption<Minted>,
    refresh: tokio::sync::Mutex<()>,
    /// Bumped after every mint, won or failed: a request that waited on `refresh` takes the
    /// result of the mint it waited for instead of starting another.
    generation: AtomicU64,
    last_failure: ArcSwapOption<MintFailure>,
}

struct Minted {
    token: Secret,
    /// Of the key file the token was minted from: an edited account mints anew.
    fingerprint: u64,
    /// On the clock's monotonic scale.
    refresh_at_nanos: u64,
}

impl Slot {
    fn fresh(&self, fingerprint: u64, now_nanos: u64) -> Option<Secret> {
        let current = self.current.load();
        current
            .as_ref()
            .filter(|minted| {
                minted.fingerprint == fingerprint && now_nanos < minted.refresh_at_nanos
            })
            .map(|minted| minted.token.clone())
    }
}

/// The fields of a service account's key file that minting reads.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl AccessTokens {
    pub fn new(client: super::CurrentClient, clock: Clock) -> Self {
        Self {
            client,
            clock,
            slots: moka::future::Cache::new(10_000),
            minted: Arc::default(),
        }
    }

    /// Token requests made so far.
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }

    /// A valid access token for `account`, whose credential is a service account's key file:
    /// the cached one while it is fresh, else one minted now (once, for every request that
    /// waits meanwhile).
    pub async fn token(&self, account: &Account) -> Result<Secret, MintFailure> {
        let key_file = account.api_key.expose();
        let fingerprint = fingerprint(key_file);
        let slot = self
            .slots
            .get_with(account.id, async { Arc::new(Slot::default()) })
            .await;
        if let Some(token) = slot.fresh(fingerprint, self.clock.monotonic_nanos()) {
            return Ok(token);
        }
        let seen = slot.generation.load(Ordering::Acquire);
        let _refreshing = slot.refresh.lock().await;
        if slot.generation.load(Ordering::Acquire) != seen {
            if let Some(token) = slot.fresh(fingerprint, self.clock.monotonic_nanos()) {
                return Ok(token);
            }
            if let Some(failure) = slot.last_failure.load_full() {
                return Err(failure.as_ref().clone());
            }
        }
        let result = self.mint(key_file, fingerprint).await;
        match &result {
            Ok(minted) => {
                slot.current.store(Some(Arc::new(Minted {
                    token: minted.token.clone(),
                    fingerprint,
                    refresh_at_nanos: minted.refresh_at_nanos,
                })));
                slot.last_failure.store(None);
            }
            Err(failure) => {
                tracing::warn!(
                    account = %account.name,
                    error = %failure.detail,
                    "could not mint an access token for the account's service account"
                );
                slot.last_failure.store(Some(Arc::new(failure.clone())));
            }
        }
        slot.generation.fetch_add(1, Ordering::Release);
        result.map(|minted| minted.token)
    }

    /// One token request: the signed assertion exchanged at the key file's `token_uri`.
    async fn mint(&self, key_file: &str, fingerprint: u64) -> Result<Minted, MintFailure> {
        let failure = |detail: String| MintFailure { detail };
        let key: KeyFile = serde_json::from_str(key_file).map_err(|error| {
            failure(format!(
                "the account's service_account_json is not a service account key file: {error}"
            ))
        })?;
        let token_uri = key.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI);
        let assertion = self.assertion(&key, token_uri).map_err(failure)?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", GRANT_TYPE)
            .append_pair("assertion", &assertion)
            .finish();
        self.minted.fetch_add(1, Ordering::Relaxed);
        let started = self.clock.monotonic_nanos();
        let request = self
            .client
            .load()
            .post(token_uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send();
        let answered = async {
            let mut response = request.await?;
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_ANSWER_BYTES {
                    body.truncate(MAX_ANSWER_BYTES);
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, body))
        };
        let (status, body) = match tokio::time::timeout(MINT_TIMEOUT, answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                return Err(failure(format!(
                    "the token endpoint {token_uri} failed: {error}"
                )));
            }
            Err(_) => {
                return Err(failure(format!(
                    "the token endpoint {token_uri} did not answer within {MINT_TIMEOUT:?}"
                )));
            }
        };
        let shown = redact_credentials(&body, &[&assertion]);
        let shown = String::from_utf8_lossy(&shown);
        if !status.is_success() {
            return Err(failure(format!(
                "the token endpoint {token_uri} answered {status}: {}",
                shown.chars().take(512).collect::<String>()
            )));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|error| {
            failure(format!(
                "the token endpoint {token_uri} answered {status} without an access token: {error}"
            ))
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let fresh_nanos = u64::try_from(fresh_for(lifetime).as_nanos()).unwrap_or(u64::MAX);
        Ok(Minted {
            token: Secret::new(answer.access_token),
            fingerprint,
            refresh_at_nanos: started.saturating_add(fresh_nanos),
        })
    }

    /// The JWT assertion, signed with the key file's private key (RS256).
    fn assertion(&self, key: &KeyFile, token_uri: &str) -> Result<String, String> {
        let der = private_key_der(&key.private_key)?;
        let encoding = EncodingKey::from_rsa_der(&der);
        let iat = self.clock.unix_seconds();
        let claims = Claims {
            iss: &key.client_email,
            scope: SCOPE,
            aud: token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&key.private_key_id);
        jsonwebtoken::encode(&header, &claims, &encoding)
            .map_err(|error| format!("the service account's key cannot sign: {error}"))
    }
}

/// Checks that `key_file` is a service account's key file that can sign: its `client_email`,
/// for display, or what is wrong (without echoing the key).
pub fn check_service_account(key_file: &str) -> Result<String, String> {
    let key: KeyFile = serde_json::from_str(key_file).map_err(|error| {
        format!(
            "service_account_json is not a service account key file (JSON with client_email and \
             private_key): {error}"
        )
    })?;
    private_key_der(&key.private_key)?;
    Ok(key.client_email)
}

/// The key file's private key (PKCS#8 PEM, as Google issues it, or PKCS#1 PEM) as the PKCS#1
/// DER that the JWT signer takes.
fn private_key_der(pem: &str) -> Result<Vec<u8>, String> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|error| {
            format!("the service account's private_key is not an RSA private key in PEM: {error}")
        })?;
    key.to_pkcs1_der()
        .map(|der| der.as_bytes().to_vec())
        .map_err(|error| format!("the service account's private_key cannot be encoded: {error}"))
}

/// How long a token that lives `lifetime` is used before it is refreshed: 80 % of it, and at
/// most [`MAX_REFRESH_MARGIN`] short of it.
fn fresh_for(lifetime: Duration) -> Duration {
    lifetime.saturating_sub((lifetime / 5).min(MAX_REFRESH_MARGIN))
}

fn fingerprint(key_file: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    key_file.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_after_most_of_its_lifetime_and_at_most_five_minutes_early() {
        for (lifetime, fresh) in [(3600, 3300), (600, 480), (10, 8), (0, 0)] {
            assert_eq!(
                fresh_for(Duration::from_secs(lifetime)),
                Duration::from_secs(fresh),
                "{lifetime}"
            );
        }
    }

    #[test]
    fn a_key_file_is_checked_without_echoing_its_key() {
        let key = include_str!("../../tests/fixtures/vertex-sa-TEST-ONLY.key.pem");
        let file = serde_json::json!({"client_email": "sa@p.iam", "private_key": key}).to_string();
        assert_eq!(check_service_account(&file).unwrap(), "sa@p.iam");
        let secret = "-----BEGIN PRIVATE KEY-----\nnot-really-a-key\n-----END PRIVATE KEY-----";
        let bad =
            serde_json::json!({"client_email": "sa@p.iam", "private_key": secret}).to_string();
        let problem = check_service_account(&bad).unwrap_err();
        assert!(!problem.contains("not-really-a-key"), "{problem}");
        assert!(check_service_account("{").is_err());
    }
}

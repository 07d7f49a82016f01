//! Admin login: the password (only its argon2 hash is stored), the secret signing admin tokens
//! (HS256 JWTs), the generation that ends every earlier token, and the throttle on failed
//! logins per client address.
//!
//! Tokens are revoked all at once, never one by one: each carries the generation of admin
//! tokens it was issued in (a counter in the database), and is refused once the generation has
//! moved on. A password change (through the API, or a new `LLMGATE_ADMIN_PASSWORD` at start-up)
//! and `llmgate admin logout-all` move it on; every serving process reads it with its other
//! change counters, so a revocation reaches all of them within their poll interval.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::db::{Db, DbError};
use crate::secret::{Secret, SecretCipher};
use crate::settings::Settings;

/// Settings-table names of the stored password hash and the sealed token secret.
const PASSWORD_SETTING: &str = "admin_password_hash";
const TOKEN_SECRET_SETTING: &str = "admin_jwt_secret";

const MIN_PASSWORD_CHARS: usize = 12;
/// Longest admin password: beyond any passphrase, and within the login body's few kilobytes.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// HS256 wants a key of at least its hash size.
const MIN_TOKEN_SECRET_BYTES: usize = 32;
const ISSUER: &str = "llmgate";
const SUBJECT: &str = "admin";

/// Failed logins allowed per client address within [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES: usize = 5;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(300);

/// Why the admin login could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The operator's to fix.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] DbError),
    #[error("{0}")]
    Failed(String),
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong admin password")]
    WrongPassword,
    #[error("too many failed logins")]
    Throttled { retry_after: Duration },
    /// A new password that does not meet the rules; the message says which.
    #[error("{0}")]
    WeakPassword(String),
    /// The password is `LLMGATE_ADMIN_PASSWORD`'s, which would win again at the next start.
    #[error(
        "the admin password is set by LLMGATE_ADMIN_PASSWORD; change it there and restart llmgate"
    )]
    SetByEnvironment,
    #[error(transparent)]
    Store(#[from] DbError),
    #[error("{0}")]
    Failed(String),
}

/// Why an admin token was refused. Each message tells the operator what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "Missing admin token. Log in with POST /admin/login and send the token as 'Authorization: Bearer TOKEN'."
    )]
    Missing,
    #[error("Invalid admin token. Log in again with POST /admin/login.")]
    Invalid,
    #[error("The admin token has expired. Log in again with POST /admin/login.")]
    Expired,
    #[error(
        "This admin token was ended by an admin password change or `llmgate admin logout-all`; \
         log in again with POST /admin/login."
    )]
    Revoked,
}

/// A token issued by a login.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: Secret,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    /// The generation of admin tokens the token was issued in. Tokens from before generations
    /// existed carry none and count as generation 0, so they last until the first change.
    #[serde(rename = "gen", default)]
    generation: i64,
}

/// Issues and checks admin tokens, and checks the admin password. Cheap to clone.
#[derive(Clone)]
pub struct AdminAuth {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    throttle: LoginThrottle,
    /// The newest generation of admin tokens this process has seen; only ever grows.
    generation: AtomicI64,
    /// Whether `LLMGATE_ADMIN_PASSWORD` sets the password (it then cannot be changed here).
    password_from_environment: bool,
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminAuth")
            .field("ttl", &self.inner.ttl)
            .field("keys", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Sets up the admin login from `settings`: stores the hash of `LLMGATE_ADMIN_PASSWORD` (so it
/// wins over any earlier one) or, when unset and no password exists yet, of a generated one,
/// which is returned to be shown once; and finds the token secret (`LLMGATE_JWT_SECRET`, or
/// one generated once and stored sealed with `cipher`, so tokens survive restarts).
pub async fn setup(
    settings: &Settings,
    db: &Db,
    cipher: &SecretCipher,
) -> Result<(AdminAuth, Option<Secret>), SetupError> {
    let generated = match &settings.admin_password {
        Some(password) => {
            check_new_password(password).map_err(|why| {
                SetupError::Invalid(format!(
                    "LLMGATE_ADMIN_PASSWORD {why}; choose another, or unset it to have a strong \
                     one generated"
                ))
            })?;
            let stored = db.get_setting(PASSWORD_SETTING).await?;
            let same = match stored.clone() {
                Some(stored) => password_matches(password.clone(), stored).await?,
                None => false,
            };
            match stored {
                // The same password as before: its tokens stay valid (and the hash as it is).
                Some(_) if same => {}
                // A new password ends every token issued under the old one.
                Some(_) => {
                    let hash = hash_password(password.clone()).await?;
                    db.put_setting_ending_admin_tokens(PASSWORD_SETTING, &hash)
                        .await?;
                    tracing::info!(
                        "LLMGATE_ADMIN_PASSWORD changed the admin password; earlier admin tokens \
                         are refused"
                    );
                }
                None => {
                    db.put_setting(PASSWORD_SETTING, &hash_password(password.clone()).await?)
                        .await?;
                }
            }
            None
        }
        None if db.get_setting(PASSWORD_SETTING).await?.is_some() => None,
        None => {
            let password = generate_password();
            let hash = hash_password(password.clone()).await?;
            // Of two processes starting at once, the first one's password is kept and shown.
            (db.setting_or_insert(PASSWORD_SETTING, &hash).await? == hash).then_some(password)
        }
    };
    let secret = token_secret(settings, db, cipher).await?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let auth = AdminAuth {
        inner: Arc::new(Inner {
            db: db.clone(),
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            ttl: settings.admin_token_ttl,
            throttle: LoginThrottle::new(LOGIN_FAILURES, LOGIN_WINDOW),
            generation: AtomicI64::new(db.admin_token_generation().await?),
            password_from_environment: settings.admin_password.is_some(),
        }),
    };
    Ok((auth, generated))
}

async fn token_secret(
    settings: &Settings,
    db: &Db,
    cipher: &SecretCipher,
) -> Result<Vec<u8>, SetupError> {
    if let Some(secret) = &settings.jwt_secret {
        if secret.expose().len() < MIN_TOKEN_SECRET_BYTES {
            return Err(SetupError::Invalid(format!(
                "LLMGATE_JWT_SECRET must be at least {MIN_TOKEN_SECRET_BYTES} bytes long; \
                 generate one with `openssl rand -base64 32`, or unset it to have one generated"
            )));
        }
        return Ok(secret.expose().as_bytes().to_vec());
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut fresh = [0u8; MIN_TOKEN_SECRET_BYTES];
    rand::rng().fill(&mut fresh);
    let sealed = b64.encode(cipher.seal(&b64.encode(fresh)));
    let stored = db.setting_or_insert(TOKEN_SECRET_SETTING, &sealed).await?;
    if stored == sealed {
        tracing::warn!(
            "LLMGATE_JWT_SECRET is not set: generated a secret to sign admin tokens and stored it, \
             encrypted, in the database; set LLMGATE_JWT_SECRET to manage it yourself"
        );
    }
    b64.decode(stored)
        .ok()
        .and_then(|bytes| cipher.open(&bytes).ok())
        .and_then(|text| b64.decode(text.expose()).ok())
        .ok_or_else(|| {
            SetupError::Invalid(
                "the admin token secret stored in the database cannot be read; set \
                 LLMGATE_JWT_SECRET, or delete the 'admin_jwt_secret' setting to generate a new one"
                    .into(),
            )
        })
}

/// A strong random password: 144 bits, 24 base64url characters.
fn generate_password() -> Secret {
    let mut bytes = [0u8; 18];
    rand::rng().fill(&mut bytes);
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Argon2id with the crate's recommended parameters; slow on purpose, so off the async threads.
async fn hash_password(password: Secret) -> Result<String, SetupError> {
    tokio::task::spawn_blocking(move || {
        let hash: PasswordHash = Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map_err(|e| SetupError::Failed(format!("cannot hash the admin password: {e}")))?;
        Ok(hash.to_string())
    })
    .await
    .map_err(|e| SetupError::Failed(format!("cannot hash the admin password: {e}")))?
}

/// Whether `password` is the one whose hash is `stored`; slow on purpose, so off the async
/// threads.
async fn password_matches(password: Secret, stored: String) -> Result<bool, SetupError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.expose().as_bytes(), stored.as_str())
            .is_ok()
    })
    .await
    .map_err(|e| SetupError::Failed(format!("cannot check the admin password: {e}")))
}

/// The rules for a password an operator chooses; the error ends a sentence naming it.
fn check_new_password(password: &Secret) -> Result<(), String> {
    let chars = password.expose().chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters long"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "must be at most {MAX_PASSWORD_CHARS} characters long"
        ));
    }
    Ok(())
}

/// Ends every admin token issued so far, on every process sharing `db` (within their poll
/// interval); returns the new generation. What `llmgate admin logout-all` does.
pub async fn logout_all(db: &Db) -> Result<i64, DbError> {
    let generation = db.advance_admin_token_generation().await?;
    tracing::info!(generation, "every earlier admin token is refused");
    Ok(generation)
}

impl AdminAuth {
    /// Refuses at once a login from an address that is throttled, without counting it: the
    /// HTTP side asks before it reads the request's body, so a throttled address cannot make
    /// llmgate read or parse anything.
    pub async fn check_throttle(&self, client: IpAddr) -> Result<(), LoginError> {
        self.inner
            .throttle
            .check(client, Instant::now())
            .await
            .map_err(|retry_after| LoginError::Throttled { retry_after })
    }

    /// Checks `password` for a login from `client` and issues a token. After
    /// [`LOGIN_FAILURES`] failures from one address within [`LOGIN_WINDOW`], its logins are
    /// refused, right password included, until the oldest failure leaves the window.
    pub async fn login(&self, password: Secret, client: IpAddr) -> Result<IssuedToken, LoginError> {
        let inner = &self.inner;
        inner
            .throttle
            .begin(client, Instant::now())
            .await
            .map_err(|retry_after| LoginError::Throttled { retry_after })?;
        if !self.password_is(password).await? {
            tracing::warn!(%client, "failed admin login");
            return Err(LoginError::WrongPassword);
        }
        inner.throttle.succeeded(client).await;
        self.issue(Utc::now())
    }

    /// Replaces the admin password, for a request from `client` that knows the current one
    /// (a stolen token alone cannot lock the operator out; wrong guesses count against the
    /// address like failed logins). Every token issued before is refused from now on, on every
    /// process; the answer is a new token.
    pub async fn change_password(
        &self,
        current: Secret,
        new: Secret,
        client: IpAddr,
    ) -> Result<IssuedToken, LoginError> {
        let inner = &self.inner;
        if inner.password_from_environment {
            return Err(LoginError::SetByEnvironment);
        }
        check_new_password(&new).map_err(LoginError::WeakPassword)?;
        inner
            .throttle
            .begin(client, Instant::now())
            .await
            .map_err(|retry_after| LoginError::Throttled { retry_after })?;
        if !self.password_is(current).await? {
            tracing::warn!(%client, "failed admin password change: wrong current password");
            return Err(LoginError::WrongPassword);
        }
        inner.throttle.succeeded(client).await;
        let hash = hash_password(new).await.map_err(|error| match error {
            SetupError::Store(error) => LoginError::Store(error),
            other => LoginError::Failed(other.to_string()),
        })?;
        let generation = inner
            .db
            .put_setting_ending_admin_tokens(PASSWORD_SETTING, &hash)
            .await?;
        self.tokens_changed(generation);
        tracing::info!(%client, "admin password changed; earlier admin tokens are refused");
        self.issue(Utc::now())
    }

    /// Ends every admin token issued so far, here at once and on other processes within
    /// their poll interval.
    pub async fn logout_all(&self) -> Result<(), DbError> {
        let generation = logout_all(&self.inner.db).await?;
        self.tokens_changed(generation);
        Ok(())
    }

    /// Takes note of the generation of admin tokens read from the database: tokens of earlier
    /// generations are refused from now on. Generations only grow, so a late reading never
    /// brings revoked tokens back.
    pub fn tokens_changed(&self, generation: i64) {
        self.inner
            .generation
            .fetch_max(generation, Ordering::Relaxed);
    }

    /// Whether `password` is the stored admin password.
    async fn password_is(&self, password: Secret) -> Result<bool, LoginError> {
        let Some(stored) = self.inner.db.get_setting(PASSWORD_SETTING).await? else {
            return Err(LoginError::Failed("no admin password is stored".into()));
        };
        password_matches(password, stored)
            .await
            .map_err(|e| LoginError::Failed(e.to_string()))
    }

    /// A token issued at `now`, valid for the configured lifetime.
    fn issue(&self, now: DateTime<Utc>) -> Result<IssuedToken, LoginError> {
        let ttl = chrono::Duration::from_std(self.inner.ttl)
            .unwrap_or_else(|_| chrono::Duration::hours(12));
        let expires_at = now + ttl;
        let claims = Claims {
            iss: ISSUER.into(),
            sub: SUBJECT.into(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            generation: self.inner.generation.load(Ordering::Relaxed),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.inner.encoding,
        )
        .map_err(|e| LoginError::Failed(format!("cannot sign an admin token: {e}")))?;
        Ok(IssuedToken {
            token: Secret::new(token),
            expires_at,
        })
    }

    /// Checks a presented admin token: signed with this secret, issued by llmgate for the
    /// admin, not expired, and of the current generation. A token of a later generation than
    /// this process has seen yet was issued by another process after a change this one will
    /// read within its poll interval: it is taken.
    pub fn verify(&self, token: &str) -> Result<(), TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &self.inner.validation) {
            Ok(data) if data.claims.sub != SUBJECT => Err(TokenError::Invalid),
            Ok(data) if data.claims.generation < self.inner.generation.load(Ordering::Relaxed) => {
                Err(TokenError::Revoked)
            }
            Ok(_) => Ok(()),
            Err(error) if matches!(error.kind(), ErrorKind::ExpiredSignature) => {
                Err(TokenError::Expired)
            }
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

/// Failed logins per client address in a sliding window. An attempt counts as failed from
/// the moment it starts until it succeeds, so parallel guesses cannot slip past the limit.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    failures: moka::future::Cache<IpAddr, Arc<Mutex<VecDeque<Instant>>>>,
    limit: usize,
    window: Duration,
}

/// Addresses remembered at most; beyond this the least recently seen are forgotten first.
const THROTTLE_CAPACITY: u64 = 100_000;

impl LoginThrottle {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            failures: moka::future::Cache::builder()
                .max_capacity(THROTTLE_CAPACITY)
                .time_to_idle(window)
                .build(),
            limit,
            window,
        }
    }

    /// Starts an attempt from `client` at `now`, or says how long it must wait.
    pub async fn begin(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let log = self
            .failures
            .get_with(client, async { Arc::default() })
            .await;
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        while log
            .front()
            .is_some_and(|first| now.saturating_duration_since(*first) >= self.window)
        {
            log.pop_front();
        }
        if log.len() >= self.limit {
            let oldest = log.front().copied().unwrap_or(now);
            return Err((oldest + self.window).saturating_duration_since(now));
        }
        log.push_back(now);
        Ok(())
    }

    /// Whether `client` may try at `now`, without counting an attempt: how long it must wait
    /// otherwise. An address never seen is not remembered by asking.
    pub async fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(log) = self.failures.get(&client).await else {
            return Ok(());
        };
        let log = log.lock().unwrap_or_else(PoisonError::into_inner);
        let recent: Vec<&Instant> = log
            .iter()
            .filter(|at| now.saturating_duration_since(**at) < self.window)
            .collect();
        match recent.first() {
            Some(oldest) if recent.len() >= self.limit => {
                Err((**oldest + self.window).saturating_duration_since(now))
            }
            _ => Ok(()),
        }
    }

    /// A successful login forgets the address's failures.
    pub async fn succeeded(&self, client: IpAddr) {
        self.failures.invalidate(&client).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;

    fn cipher() -> SecretCipher {
        SecretCipher::new(&SecretCipher::generate_key())
    }

    #[tokio::test]
    async fn the_throttle_refuses_after_the_limit_until_the_window_moves_on() {
        let throttle = LoginThrottle::new(3, Duration::from_secs(60));
        let client: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let start = Instant::now();
        for i in 0..3 {
            assert!(
                throttle
                    .begin(client, start + Duration::from_secs(i))
                    .await
                    .is_ok()
            );
        }
        let wait = throttle
            .begin(client, start + Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(throttle.begin(other, start).await.is_ok(), "per address");
        // The first failure leaves the window: one more attempt is allowed.
        assert!(
            throttle
                .begin(client, start + Duration::from_secs(60))
                .await
                .is_ok()
        );
        assert!(
            throttle
                .begin(client, start + Duration::from_secs(60))
                .await
                .is_err()
        );
        throttle.succeeded(client).await;
        assert!(
            throttle
                .begin(client, start + Duration::from_secs(61))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_generated_password_is_shown_once_and_a_set_one_wins() {
        let (_dir, db) = temp_db().await;
        let cipher = cipher();
        let settings = Settings::default();
        let (auth, generated) = setup(&settings, &db, &cipher).await.unwrap();
        let password = generated.unwrap();
        assert!(password.expose().len() >= 24);
        let stored = db.get_setting(PASSWORD_SETTING).await.unwrap().unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains(password.expose()));
        let client: IpAddr = [127, 0, 0, 1].into();
        assert!(auth.login(password.clone(), client).await.is_ok());
        assert!(matches!(
            auth.login(Secret::new("wrong-password-123"), client).await,
            Err(LoginError::WrongPassword)
        ));

        // A restart shows nothing; the same password still works.
        let (auth, again) = setup(&settings, &db, &cipher).await.unwrap();
        assert!(again.is_none());
        assert!(auth.login(password.clone(), client).await.is_ok());

        let chosen = Settings {
            admin_password: Some(Secret::new("operator-chosen-pw")),
            ..Settings::default()
        };
        let (auth, none) = setup(&chosen, &db, &cipher).await.unwrap();
        assert!(none.is_none());
        assert!(
            auth.login(Secret::new("operator-chosen-pw"), client)
                .await
                .is_ok()
        );
        assert!(auth.login(password, client).await.is_err());

        let short = Settings {
            admin_password: Some(Secret::new("short")),
            ..Settings::default()
        };
        assert!(matches!(
            setup(&short, &db, &cipher).await,
            Err(SetupError::Invalid(m)) if m.contains("LLMGATE_ADMIN_PASSWORD")
        ));
    }

    #[tokio::test]
    async fn tokens_survive_a_restart_and_are_refused_when_expired_or_foreign() {
        let (_dir, db) = temp_db().await;
        let cipher = cipher();
        let settings = Settings::default();
        let (auth, _) = setup(&settings, &db, &cipher).await.unwrap();
        let token = auth.issue(Utc::now()).unwrap().token;
        let (restarted, _) = setup(&settings, &db, &cipher).await.unwrap();
        assert_eq!(restarted.verify(token.expose()), Ok(()));
        let stored = db.get_setting(TOKEN_SECRET_SETTING).await.unwrap().unwrap();
        assert!(!stored.is_empty());

        let old = auth
            .issue(Utc::now() - chrono::Duration::hours(13))
            .unwrap()
            .token;
        assert_eq!(auth.verify(old.expose()), Err(TokenError::Expired));
        assert_eq!(auth.verify("not.a.token"), Err(TokenError::Invalid));

        let (_other_dir, other_db) = temp_db().await;
        let (foreign, _) = setup(&settings, &other_db, &cipher).await.unwrap();
        let token = foreign.issue(Utc::now()).unwrap().token;
        assert_eq!(auth.verify(token.expose()), Err(TokenError::Invalid));

        let weak = Settings {
            jwt_secret: Some(Secret::new("too-short")),
            ..Settings::default()
        };
        assert!(matches!(
            setup(&weak, &db, &cipher).await,
            Err(SetupError::Invalid(m)) if m.contains("LLMGATE_JWT_SECRET")
        ));
    }

    #[tokio::test]
    async fn checking_the_throttle_counts_nothing() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60));
        let client: IpAddr = [10, 0, 0, 1].into();
        let start = Instant::now();
        for _ in 0..10 {
            assert!(throttle.check(client, start).await.is_ok());
        }
        throttle.begin(client, start).await.unwrap();
        assert!(throttle.check(client, start).await.is_ok());
        throttle.begin(client, start).await.unwrap();
        assert_eq!(
            throttle
                .check(client, start + Duration::from_secs(20))
                .await,
            Err(Duration::from_secs(40))
        );
        assert!(
            throttle
                .check(client, start + Duration::from_secs(60))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_new_password_at_start_up_ends_earlier_tokens_and_the_same_one_keeps_them() {
        let (_dir, db) = temp_db().await;
        let cipher = cipher();
        let with = |password: &str| Settings {
            admin_password: Some(Secret::new(password)),
            ..Settings::default()
        };
        let (auth, _) = setup(&with("the-first-password"), &db, &cipher)
            .await
            .unwrap();
        let token = auth.issue(Utc::now()).unwrap().token;
        let (again, _) = setup(&with("the-first-password"), &db, &cipher)
            .await
            .unwrap();
        assert_eq!(again.verify(token.expose()), Ok(()));
        let (changed, _) = setup(&with("the-second-password"), &db, &cipher)
            .await
            .unwrap();
        assert_eq!(changed.verify(token.expose()), Err(TokenError::Revoked));
        let fresh = changed.issue(Utc::now()).unwrap().token;
        assert_eq!(changed.verify(fresh.expose()), Ok(()));
        // The process that issued the old token learns of the change from the database.
        assert_eq!(auth.verify(token.expose()), Ok(()));
        auth.tokens_changed(db.admin_token_generation().await.unwrap());
        assert_eq!(auth.verify(token.expose()), Err(TokenError::Revoked));
        // A token of a generation this process has not seen yet was issued after a change.
        assert_eq!(auth.verify(fresh.expose()), Ok(()));
        let long = with(&"x".repeat(MAX_PASSWORD_CHARS + 1));
        assert!(matches!(
            setup(&long, &db, &cipher).await,
            Err(SetupError::Invalid(m)) if m.contains("at most")
        ));
    }

    #[tokio::test]
    async fn a_password_change_needs_the_current_one_and_ends_every_earlier_token() {
        let (_dir, db) = temp_db().await;
        let cipher = cipher();
        let (auth, generated) = setup(&Settings::default(), &db, &cipher).await.unwrap();
        let current = generated.unwrap();
        let client: IpAddr = [127, 0, 0, 1].into();
        let old = auth.login(current.clone(), client).await.unwrap().token;
        assert!(matches!(
            auth.change_password(
                Secret::new("not-the-password"),
                Secret::new("new-password-1"),
                client
            )
            .await,
            Err(LoginError::WrongPassword)
        ));
        assert!(matches!(
            auth.change_password(current.clone(), Secret::new("short"), client)
                .await,
            Err(LoginError::WeakPassword(m)) if m.contains("12 characters")
        ));
        assert_eq!(auth.verify(old.expose()), Ok(()));
        let new = auth
            .change_password(current.clone(), Secret::new("new-password-1"), client)
            .await
            .unwrap()
            .token;
        assert_eq!(auth.verify(old.expose()), Err(TokenError::Revoked));
        assert_eq!(auth.verify(new.expose()), Ok(()));
        assert!(matches!(
            auth.login(current, client).await,
            Err(LoginError::WrongPassword)
        ));
        assert!(
            auth.login(Secret::new("new-password-1"), client)
                .await
                .is_ok()
        );

        auth.logout_all().await.unwrap();
        assert_eq!(auth.verify(new.expose()), Err(TokenError::Revoked));

        // A password that LLMGATE_ADMIN_PASSWORD sets is changed there, not here.
        let managed = Settings {
            admin_password: Some(Secret::new("new-password-1")),
            ..Settings::default()
        };
        let (auth, _) = setup(&managed, &db, &cipher).await.unwrap();
        assert!(matches!(
            auth.change_password(
                Secret::new("new-password-1"),
                Secret::new("new-password-2"),
                client
            )
            .await,
            Err(LoginError::SetByEnvironment)
        ));
    }
}

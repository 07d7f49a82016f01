//! The client-key cache: every request authenticates here; the database is read only on a miss.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::{ClientKey, KeyHash};
use crate::db::{Db, DbError};

/// Why a key was refused. Each case tells the client what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "Missing API key. Send it as 'Authorization: Bearer YOUR_KEY' or as 'x-api-key: YOUR_KEY'."
    )]
    Missing,
    #[error("Invalid API key. Check the key you sent, or ask an administrator for a new one.")]
    Unknown,
    #[error("This API key has been revoked. Ask an administrator for a new one.")]
    Revoked,
    #[error("This API key is disabled. Ask an administrator to enable it.")]
    Disabled,
    #[error("This API key expired at {0}. Ask an administrator for a new one.")]
    Expired(String),
    #[error("the key store is unavailable: {0}")]
    Store(String),
}

/// What the cache remembers about one key hash, including that it is unknown (a negative
/// entry, so a flood of bad keys costs one database read per distinct key).
#[derive(Debug, Clone)]
enum KeyState {
    Valid(Arc<ClientKey>),
    Revoked,
    Disabled,
    Unknown,
}

#[derive(Debug, Clone)]
struct Entry {
    /// The `keys` change version when this entry was read; older entries are stale.
    version: i64,
    state: KeyState,
}

/// Key lookups by hash through a moka cache. Loads are single-flight: concurrent misses for the
/// same key share one database read. Entries are tagged with the `keys` change version they were
/// read at, so a change seen by the change watcher makes every older entry stale at once.
#[derive(Debug, Clone)]
pub struct KeyCache {
    db: Db,
    cache: moka::future::Cache<KeyHash, Entry>,
    version: Arc<AtomicI64>,
    /// Lookups answered from the cache, and those that read the database.
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

/// Entries live at most this long even without a change (a safety net; changes act sooner).
const TIME_TO_LIVE: Duration = Duration::from_secs(300);
const CAPACITY: u64 = 100_000;

impl KeyCache {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            cache: moka::future::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TIME_TO_LIVE)
                .build(),
            version: Arc::new(AtomicI64::new(0)),
            hits: Arc::default(),
            misses: Arc::default(),
        }
    }

    /// Lookups so far: (cache hits, misses that read the database).
    pub fn lookups(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Records that keys changed in the database (version from the change watcher).
    pub fn keys_changed(&self, version: i64) {
        self.version.fetch_max(version, Ordering::AcqRel);
    }

    /// Authenticates a plaintext key at time `now` (Unix seconds).
    pub async fn authenticate(
        &self,
        plaintext: &str,
        now: i64,
    ) -> Result<Arc<ClientKey>, AuthError> {
        let hash = KeyHash::of(plaintext);
        let mut entry = self.lookup(hash).await?;
        // A stale entry is read again. A load that was already under way when the change was
        // seen can hand back another stale entry, hence the (bounded) loop.
        for _ in 0..3 {
            if entry.version >= self.version.load(Ordering::Acquire) {
                break;
            }
            self.cache.invalidate(&hash).await;
            entry = self.lookup(hash).await?;
        }
        match entry.state {
            KeyState::Valid(key) => match key.expires_at {
                Some(expires_at) if expires_at <= now => Err(AuthError::Expired(
                    chrono::DateTime::from_timestamp(expires_at, 0)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| expires_at.to_string()),
                )),
                _ => Ok(key),
            },
            KeyState::Revoked => Err(AuthError::Revoked),
            KeyState::Disabled => Err(AuthError::Disabled),
            KeyState::Unknown => Err(AuthError::Unknown),
        }
    }

    async fn lookup(&self, hash: KeyHash) -> Result<Entry, AuthError> {
        if let Some(entry) = self.cache.get(&hash).await {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let db = &self.db;
        let version = &self.version;
        self.cache
            .try_get_with(hash, async move {
                // Read the version before the row: a change that lands in between leaves this
                // entry tagged older than the change, so it is read again.
                let version = version.load(Ordering::Acquire);
                let row = db.key_by_hash(&hash.to_hex()).await?;
                let state = match row {
                    None => KeyState::Unknown,
                    Some(row) if row.revoked_at.is_some() => KeyState::Revoked,
                    Some(row) if !row.enabled => KeyState::Disabled,
                    Some(row) => KeyState::Valid(Arc::new(ClientKey::from_row(&row))),
                };
                Ok::<_, DbError>(Entry { version, state })
            })
            .await
            .map_err(|e: Arc<DbError>| AuthError::Store(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{NewKey, create_key, revoke_key};
    use crate::db::tests::temp_db;

    #[tokio::test]
    async fn authenticates_refuses_and_sees_changes_after_a_version_bump() {
        let (_dir, db) = temp_db().await;
        let cache = KeyCache::new(db.clone());
        assert_eq!(cache.authenticate("nope", 0).await, Err(AuthError::Unknown));

        let (_, plaintext) = create_key(
            &db,
            NewKey {
                name: "a".into(),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
        let key = cache.authenticate(&plaintext, 0).await.unwrap();
        assert_eq!(&*key.name, "a");

        revoke_key(&db, "a").await.unwrap();
        // Still served from the cache until the watcher reports the change...
        assert!(cache.authenticate(&plaintext, 0).await.is_ok());
        cache.keys_changed(1);
        assert_eq!(
            cache.authenticate(&plaintext, 0).await,
            Err(AuthError::Revoked)
        );
    }

    #[tokio::test]
    async fn expired_keys_are_refused() {
        let (_dir, db) = temp_db().await;
        let cache = KeyCache::new(db.clone());
        let expires = chrono::Utc::now() + chrono::Duration::seconds(60);
        let (_, plaintext) = create_key(
            &db,
            NewKey {
                name: "a".into(),
                expires_at: Some(expires),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
        assert!(
            cache
                .authenticate(&plaintext, expires.timestamp() - 1)
                .await
                .is_ok()
        );
        assert!(matches!(
            cache.authenticate(&plaintext, expires.timestamp()).await,
            Err(AuthError::Expired(_))
        ));
    }
}

//! Client key operations shared by the CLI and the admin API (create, update, rotate, revoke,
//! delete, each with its validation in one place), and the in-memory form of a key.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::Rng;

use super::{KeyHash, display_prefix};
use crate::db::{Db, DbError, KeyChanges, KeyRow, NewKeyRow};
use crate::names::check_name;
use crate::pricing::Nanodollars;
use crate::vocab::BudgetWindow;

/// What every generated key starts with, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "sk-lg-";

/// An authenticated client key, as requests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub id: i64,
    /// Shared with each request's record, which keeps it for the log line.
    pub name: Arc<str>,
    /// The models this key may use; `None` allows all.
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget_tokens: Option<u64>,
    /// The spending budget (`budget_usd`).
    pub budget_usd: Option<Nanodollars>,
    pub budget_window: Option<BudgetWindow>,
    pub expires_at: Option<i64>,
}

impl ClientKey {
    pub fn from_row(row: &KeyRow) -> Self {
        Self {
            id: row.id,
            name: Arc::from(row.name.as_str()),
            models: row
                .models
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok()),
            rpm: row.rpm.and_then(|v| u32::try_from(v).ok()),
            tpm: row.tpm.and_then(|v| u32::try_from(v).ok()),
            budget_tokens: row.budget_tokens.and_then(|v| u64::try_from(v).ok()),
            budget_usd: row
                .budget_nanos
                .and_then(|v| u64::try_from(v).ok())
                .map(Nanodollars),
            budget_window: row.budget_window.as_deref().and_then(BudgetWindow::parse),
            expires_at: row.expires_at,
        }
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

/// What state a stored key is in at `now` (Unix seconds): `revoked`, `disabled`, `expired` or
/// `active`, the first that applies.
pub fn key_status(row: &KeyRow, now: i64) -> &'static str {
    if row.revoked_at.is_some() {
        "revoked"
    } else if !row.enabled {
        "disabled"
    } else if row.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

/// A key to create. Validation lives in [`create_key`], the one path for the CLI and the API.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget_tokens: Option<u64>,
    pub budget_usd: Option<Nanodollars>,
    pub budget_window: Option<BudgetWindow>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Changes to a key. `None` leaves a setting as it is; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub models: Option<Option<Vec<String>>>,
    pub rpm: Option<Option<u32>>,
    pub tpm: Option<Option<u32>>,
    pub budget_tokens: Option<Option<u64>>,
    pub budget_usd: Option<Option<Nanodollars>>,
    pub budget_window: Option<Option<BudgetWindow>>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The request is invalid; the message names the field.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("no key named or numbered '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Db(DbError),
}

impl From<DbError> for KeyError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Conflict(message) => Self::Conflict(message),
            other => Self::Db(other),
        }
    }
}

/// A new random key: the prefix and 256 bits from the OS-seeded generator, base64url.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn invalid(field: &'static str, message: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        field,
        message: message.into(),
    }
}

/// Checks a key's settings, as created or as they would be after an update. An expiry in the
/// past is refused only when it is being set (`check_expiry`): an expired key can still be
/// renamed or disabled. The key's name and the model names of its allow-list follow the one
/// rule for names ([`crate::names::check_name`]).
fn validate(new: &NewKey, check_expiry: bool) -> Result<(), KeyError> {
    check_name(&new.name).map_err(|problem| invalid("name", problem.to_string()))?;
    if let Some(models) = &new.models {
        for model in models {
            check_name(model)
                .map_err(|problem| invalid("models", format!("model names {problem}")))?;
        }
    }
    if new.rpm == Some(0) {
        return Err(invalid("rpm", "must be at least 1 (omit it for no limit)"));
    }
    if new.tpm == Some(0) {
        return Err(invalid("tpm", "must be at least 1 (omit it for no limit)"));
    }
    if new.budget_tokens == Some(0) {
        return Err(invalid(
            "budget_tokens",
            "must be at least 1 (omit it for no budget)",
        ));
    }
    if new.budget_usd == Some(Nanodollars(0)) {
        return Err(invalid(
            "budget_usd",
            "must be more than 0 (omit it for no spending budget)",
        ));
    }
    if new.budget_window.is_some() && new.budget_tokens.is_none() && new.budget_usd.is_none() {
        return Err(invalid(
            "budget_window",
            "needs budget_tokens or budget_usd: a window resets a budget",
        ));
    }
    if check_expiry
        && let Some(expires_at) = new.expires_at
        && expires_at <= Utc::now()
    {
        return Err(invalid("expires_at", "must be in the future"));
    }
    Ok(())
}

/// Creates a key and returns its row and its plaintext, which is shown once and never stored.
pub async fn create_key(db: &Db, new: NewKey) -> Result<(KeyRow, String), KeyError> {
    validate(&new, true)?;
    let plaintext = generate_key();
    let row = NewKeyRow {
        name: new.name.trim().to_owned(),
        key_hash: KeyHash::of(&plaintext).to_hex(),
        prefix: display_prefix(&plaintext),
        models: new.models.as_deref().map(models_json),
        rpm: new.rpm.map(i64::from),
        tpm: new.tpm.map(i64::from),
        budget_tokens: new
            .budget_tokens
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        budget_nanos: new.budget_usd.map(nanos_column),
        budget_window: new.budget_window.map(|w| w.as_str().to_owned()),
        expires_at: new.expires_at.map(|t| t.timestamp()),
        source: "api",
    };
    let row = db.insert_key(&row).await?;
    Ok((row, plaintext))
}

/// A budget as its `budget_nanos` column.
fn nanos_column(budget: Nanodollars) -> i64 {
    i64::try_from(budget.0).unwrap_or(i64::MAX)
}

fn models_json(models: &[String]) -> String {
    serde_json::to_string(models).unwrap_or_else(|_| "[]".into())
}

/// The key with this id, or `NotFound`.
async fn existing(db: &Db, id: i64) -> Result<KeyRow, KeyError> {
    db.key_by_id(id)
        .await?
        .ok_or_else(|| KeyError::NotFound(id.to_string()))
}

/// Changes a key's settings. The result is validated as a whole, by the rules of creation.
/// Enabling a revoked key does not bring it back: revocation is final.
pub async fn update_key(db: &Db, id: i64, update: KeyUpdate) -> Result<KeyRow, KeyError> {
    let row = existing(db, id).await?;
    let current = ClientKey::from_row(&row);
    let merged = NewKey {
        name: update.name.clone().unwrap_or(row.name),
        models: update.models.clone().unwrap_or(current.models),
        rpm: update.rpm.unwrap_or(current.rpm),
        tpm: update.tpm.unwrap_or(current.tpm),
        budget_tokens: update.budget_tokens.unwrap_or(current.budget_tokens),
        budget_usd: update.budget_usd.unwrap_or(current.budget_usd),
        budget_window: update.budget_window.unwrap_or(current.budget_window),
        expires_at: update.expires_at.unwrap_or_else(|| {
            current
                .expires_at
                .and_then(|t| DateTime::from_timestamp(t, 0))
        }),
    };
    validate(&merged, update.expires_at.is_some())?;
    let changes = KeyChanges {
        name: update.name.map(|name| name.trim().to_owned()),
        models: update
            .models
            .map(|models| models.as_deref().map(models_json)),
        rpm: update.rpm.map(|rpm| rpm.map(i64::from)),
        tpm: update.tpm.map(|tpm| tpm.map(i64::from)),
        budget_tokens: update
            .budget_tokens
            .map(|tokens| tokens.map(|t| i64::try_from(t).unwrap_or(i64::MAX))),
        budget_nanos: update.budget_usd.map(|budget| budget.map(nanos_column)),
        budget_window: update
            .budget_window
            .map(|window| window.map(|w| w.as_str().to_owned())),
        expires_at: update.expires_at.map(|t| t.map(|t| t.timestamp())),
        enabled: update.enabled,
    };
    db.update_key(id, &changes)
        .await?
        .ok_or_else(|| KeyError::NotFound(id.to_string()))
}

/// Gives a key a new plaintext, returned once; the old one stops working. A revoked key
/// cannot be rotated: create a new one.
pub async fn rotate_key(db: &Db, id: i64) -> Result<(KeyRow, String), KeyError> {
    let row = existing(db, id).await?;
    if row.revoked_at.is_some() {
        return Err(KeyError::Conflict(format!(
            "key '{}' is revoked; revoked keys cannot be rotated, create a new key instead",
            row.name
        )));
    }
    let plaintext = generate_key();
    let row = db
        .replace_key_hash(
            id,
            &KeyHash::of(&plaintext).to_hex(),
            &display_prefix(&plaintext),
        )
        .await?
        .ok_or_else(|| KeyError::NotFound(id.to_string()))?;
    Ok((row, plaintext))
}

/// Deletes a key for good (its name becomes free again).
pub async fn delete_key(db: &Db, id: i64) -> Result<(), KeyError> {
    if db.delete_key(id).await? {
        Ok(())
    } else {
        Err(KeyError::NotFound(id.to_string()))
    }
}

/// Revokes the key with this name (or id). Revoking twice is not an error.
pub async fn revoke_key(db: &Db, name_or_id: &str) -> Result<KeyRow, KeyError> {
    let row = db
        .find_key(name_or_id)
        .await?
        .ok_or_else(|| KeyError::NotFound(name_or_id.to_owned()))?;
    revoke(db, row).await
}

/// Revokes the key with this id (never a key that happens to be named like the number).
pub async fn revoke_key_id(db: &Db, id: i64) -> Result<KeyRow, KeyError> {
    let row = existing(db, id).await?;
    revoke(db, row).await
}

async fn revoke(db: &Db, row: KeyRow) -> Result<KeyRow, KeyError> {
    db.revoke_key(row.id).await?;
    Ok(db.key_by_id(row.id).await?.unwrap_or(row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;

    #[test]
    fn generated_keys_are_long_random_and_prefixed() {
        let a = generate_key();
        let b = generate_key();
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn validation_names_the_field() {
        let check = |new: NewKey, field: &str| match validate(&new, true) {
            Err(KeyError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        };
        let named = || NewKey {
            name: "ci".into(),
            ..NewKey::default()
        };
        check(NewKey::default(), "name");
        check(
            NewKey {
                rpm: Some(0),
                ..named()
            },
            "rpm",
        );
        check(
            NewKey {
                tpm: Some(0),
                ..named()
            },
            "tpm",
        );
        check(
            NewKey {
                budget_window: Some(BudgetWindow::Daily),
                ..named()
            },
            "budget_window",
        );
        check(
            NewKey {
                models: Some(vec![" ".into()]),
                ..named()
            },
            "models",
        );
        check(
            NewKey {
                expires_at: Some(Utc::now() - chrono::Duration::seconds(5)),
                ..named()
            },
            "expires_at",
        );
        check(
            NewKey {
                name: "x".repeat(129),
                ..NewKey::default()
            },
            "name",
        );
        check(
            NewKey {
                models: Some(vec!["m".repeat(129)]),
                ..named()
            },
            "models",
        );
        assert!(validate(&named(), true).is_ok());
        // A past expiry is refused only when it is being set.
        let expired = NewKey {
            expires_at: Some(Utc::now() - chrono::Duration::seconds(5)),
            ..named()
        };
        assert!(validate(&expired, false).is_ok());
    }

    #[tokio::test]
    async fn created_keys_store_only_the_hash() {
        let (_dir, db) = temp_db().await;
        let (row, plaintext) = create_key(
            &db,
            NewKey {
                name: "ci".into(),
                models: Some(vec!["m".into()]),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(row.key_hash, KeyHash::of(&plaintext).to_hex());
        assert!(plaintext.starts_with(&row.prefix));
        let key = ClientKey::from_row(&row);
        assert!(key.allows_model("m"));
        assert!(!key.allows_model("other"));
        let revoked = revoke_key(&db, "ci").await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(matches!(
            revoke_key(&db, "nope").await,
            Err(KeyError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn updates_are_validated_as_a_whole_and_rotation_replaces_the_plaintext() {
        let (_dir, db) = temp_db().await;
        let (row, first) = create_key(
            &db,
            NewKey {
                name: "ci".into(),
                budget_tokens: Some(100),
                budget_window: Some(BudgetWindow::Daily),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
        // Clearing the budget while its window stays would leave the window meaningless.
        assert!(matches!(
            update_key(
                &db,
                row.id,
                KeyUpdate {
                    budget_tokens: Some(None),
                    ..KeyUpdate::default()
                }
            )
            .await,
            Err(KeyError::Invalid {
                field: "budget_window",
                ..
            })
        ));
        let updated = update_key(
            &db,
            row.id,
            KeyUpdate {
                name: Some(" renamed ".into()),
                rpm: Some(Some(7)),
                enabled: Some(false),
                ..KeyUpdate::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(updated.name, "renamed");
        assert_eq!(updated.rpm, Some(7));
        assert!(!updated.enabled);
        assert!(matches!(
            update_key(&db, 999, KeyUpdate::default()).await,
            Err(KeyError::NotFound(_))
        ));

        let (rotated, second) = rotate_key(&db, row.id).await.unwrap();
        assert_ne!(first, second);
        assert_eq!(rotated.key_hash, KeyHash::of(&second).to_hex());
        assert!(
            db.key_by_hash(&KeyHash::of(&first).to_hex())
                .await
                .unwrap()
                .is_none()
        );

        revoke_key(&db, "renamed").await.unwrap();
        assert!(matches!(
            rotate_key(&db, row.id).await,
            Err(KeyError::Conflict(_))
        ));
        delete_key(&db, row.id).await.unwrap();
        assert!(matches!(
            delete_key(&db, row.id).await,
            Err(KeyError::NotFound(_))
        ));
    }
}

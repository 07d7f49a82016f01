//! Client key operations shared by the CLI and the admin API: create, revoke, and the
//! in-memory form of a key.

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::Rng;

use super::{BudgetWindow, KeyHash, display_prefix};
use crate::db::{Db, DbError, KeyRow, NewKeyRow};

/// What every generated key starts with, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "sk-lg-";

/// An authenticated client key, as requests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub id: i64,
    pub name: String,
    /// The models this key may use; `None` allows all.
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget_tokens: Option<u64>,
    pub budget_window: Option<BudgetWindow>,
    pub expires_at: Option<i64>,
}

impl ClientKey {
    pub fn from_row(row: &KeyRow) -> Self {
        Self {
            id: row.id,
            name: row.name.clone(),
            models: row
                .models
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok()),
            rpm: row.rpm.and_then(|v| u32::try_from(v).ok()),
            tpm: row.tpm.and_then(|v| u32::try_from(v).ok()),
            budget_tokens: row.budget_tokens.and_then(|v| u64::try_from(v).ok()),
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

/// A key to create. Validation lives in [`create_key`], the one path for the CLI and the API.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget_tokens: Option<u64>,
    pub budget_window: Option<BudgetWindow>,
    pub expires_at: Option<DateTime<Utc>>,
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

fn validate(new: &NewKey) -> Result<(), KeyError> {
    let name = new.name.trim();
    if name.is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if name.len() > 128 || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "must be at most 128 characters, without control characters",
        ));
    }
    if let Some(models) = &new.models
        && models.iter().any(|m| m.trim().is_empty())
    {
        return Err(invalid("models", "model names must not be empty"));
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
    if new.budget_window.is_some() && new.budget_tokens.is_none() {
        return Err(invalid(
            "budget_window",
            "needs budget_tokens: a window resets a budget",
        ));
    }
    if let Some(expires_at) = new.expires_at
        && expires_at <= Utc::now()
    {
        return Err(invalid("expires_at", "must be in the future"));
    }
    Ok(())
}

/// Creates a key and returns its row and its plaintext, which is shown once and never stored.
pub async fn create_key(db: &Db, new: NewKey) -> Result<(KeyRow, String), KeyError> {
    validate(&new)?;
    let plaintext = generate_key();
    let row = NewKeyRow {
        name: new.name.trim().to_owned(),
        key_hash: KeyHash::of(&plaintext).to_hex(),
        prefix: display_prefix(&plaintext),
        models: new
            .models
            .map(|models| serde_json::to_string(&models).unwrap_or_else(|_| "[]".into())),
        rpm: new.rpm.map(i64::from),
        tpm: new.tpm.map(i64::from),
        budget_tokens: new
            .budget_tokens
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        budget_window: new.budget_window.map(|w| w.as_str().to_owned()),
        expires_at: new.expires_at.map(|t| t.timestamp()),
        source: "api",
    };
    let row = db.insert_key(&row).await?;
    Ok((row, plaintext))
}

/// Revokes the key with this name (or id). Revoking twice is not an error.
pub async fn revoke_key(db: &Db, name_or_id: &str) -> Result<KeyRow, KeyError> {
    let row = db
        .find_key(name_or_id)
        .await?
        .ok_or_else(|| KeyError::NotFound(name_or_id.to_owned()))?;
    db.revoke_key(row.id).await?;
    Ok(db.find_key(&row.name).await?.unwrap_or(row))
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
        let check = |new: NewKey, field: &str| match validate(&new) {
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
        assert!(validate(&named()).is_ok());
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
}

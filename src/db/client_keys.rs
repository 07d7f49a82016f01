//! Client key rows: the hash of the key and what it allows.

use sqlx::FromRow;

use super::{Db, DbError, now};

pub(super) const COLUMNS: &str = "id, name, key_hash, prefix, models, rpm, tpm, budget_tokens, budget_nanos, \
                       budget_window, expires_at, revoked_at, enabled, source, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    pub id: i64,
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    /// JSON array of model names; `None` allows every model.
    pub models: Option<String>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub budget_tokens: Option<i64>,
    /// The spending budget in nano-dollars.
    pub budget_nanos: Option<i64>,
    pub budget_window: Option<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub enabled: bool,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A key to insert (or, on import, to upsert by name).
#[derive(Debug, Clone)]
pub struct NewKeyRow {
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    pub models: Option<String>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub budget_tokens: Option<i64>,
    /// The spending budget in nano-dollars.
    pub budget_nanos: Option<i64>,
    pub budget_window: Option<String>,
    pub expires_at: Option<i64>,
    pub source: &'static str,
}

impl Db {
    pub async fn key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRow>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM client_keys WHERE key_hash = $1");
        Ok(on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(key_hash)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn insert_key(&self, key: &NewKeyRow) -> Result<KeyRow, DbError> {
        let now = now();
        let sql = format!(
            "INSERT INTO client_keys (name, key_hash, prefix, models, rpm, tpm, budget_tokens,
                 budget_window, expires_at, source, created_at, updated_at, budget_nanos)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             RETURNING {COLUMNS}"
        );
        on_pool!(&self.writer, |pool| sqlx::query_as(&sql)
            .bind(&key.name)
            .bind(&key.key_hash)
            .bind(&key.prefix)
            .bind(&key.models)
            .bind(key.rpm)
            .bind(key.tpm)
            .bind(key.budget_tokens)
            .bind(&key.budget_window)
            .bind(key.expires_at)
            .bind(key.source)
            .bind(now)
            .bind(now)
            .bind(key.budget_nanos)
            .fetch_one(pool)
            .await)
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                DbError::Conflict(format!("a key named '{}' already exists", key.name))
            }
            other => other.into(),
        })
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyRow>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM client_keys ORDER BY id");
        Ok(on_pool!(&self.writer, |pool| sqlx::query_as(&sql)
            .fetch_all(pool)
            .await?))
    }

    /// The key with this name, or with this id when `name_or_id` is a number and no key has
    /// that name.
    pub async fn find_key(&self, name_or_id: &str) -> Result<Option<KeyRow>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM client_keys WHERE name = $1 OR CAST(id AS TEXT) = $1
             ORDER BY name = $1 DESC LIMIT 1"
        );
        Ok(on_pool!(&self.writer, |pool| sqlx::query_as(&sql)
            .bind(name_or_id)
            .fetch_optional(pool)
            .await?))
    }

    /// Marks a key revoked. Returns false when it was already revoked.
    pub async fn revoke_key(&self, id: i64) -> Result<bool, DbError> {
        let now = now();
        let revoked = on_pool!(&self.writer, |pool| {
            sqlx::query(
            "UPDATE client_keys SET revoked_at = $1, updated_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
        });
        Ok(revoked == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::both_dbs;

    fn new_key(name: &str, hash: &str) -> NewKeyRow {
        NewKeyRow {
            name: name.into(),
            key_hash: hash.into(),
            prefix: "sk-lg-abc".into(),
            models: Some(r#"["m"]"#.into()),
            rpm: Some(10),
            tpm: None,
            budget_tokens: None,
            budget_nanos: None,
            budget_window: None,
            expires_at: None,
            source: "api",
        }
    }

    #[tokio::test]
    async fn keys_insert_find_list_and_revoke() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            keys_round_trip(db).await;
        }
    }

    async fn keys_round_trip(db: Db) {
        let row = db.insert_key(&new_key("ci", "h1")).await.unwrap();
        assert_eq!(row.name, "ci");
        assert_eq!(row.rpm, Some(10));
        assert!(matches!(
            db.insert_key(&new_key("ci", "h2")).await,
            Err(DbError::Conflict(_))
        ));
        assert_eq!(db.key_by_hash("h1").await.unwrap().unwrap().id, row.id);
        assert!(db.key_by_hash("nope").await.unwrap().is_none());
        assert_eq!(db.find_key("ci").await.unwrap().unwrap().id, row.id);
        assert_eq!(
            db.find_key(&row.id.to_string()).await.unwrap().unwrap().id,
            row.id
        );
        assert_eq!(db.list_keys().await.unwrap().len(), 1);
        assert!(db.revoke_key(row.id).await.unwrap());
        assert!(!db.revoke_key(row.id).await.unwrap());
        assert!(
            db.key_by_hash("h1")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
    }
}

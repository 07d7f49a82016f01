//! Client keys through the API. Every operation is `crate::auth`'s, shared with the CLI; this
//! file only reads JSON values into its types and shapes the answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Admin, AdminError, List, nullable, time};
use crate::auth::{self, KeyUpdate, NewKey};
use crate::db::{KeyRow, Page};
use crate::pricing::Nanodollars;
use crate::vocab::BudgetWindow;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    pub name: String,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget_tokens: Option<u64>,
    /// USD, like `250.0`.
    pub budget_usd: Option<f64>,
    pub budget_window: Option<String>,
    /// RFC 3339, like `2027-01-01T00:00:00Z`.
    pub expires_at: Option<String>,
}

/// `null` clears an optional setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_tokens: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_window: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// A key as operators see it: never its hash, and its plaintext only in the answer that
/// created (or rotated) it.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: i64,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub models: Option<Vec<String>>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub budget_tokens: Option<i64>,
    /// USD.
    pub budget_usd: Option<f64>,
    pub budget_window: Option<String>,
    pub expires_at: Option<String>,
    pub enabled: bool,
    pub revoked_at: Option<String>,
    /// `active`, `disabled`, `expired` or `revoked`.
    pub status: &'static str,
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
    /// The plaintext, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KeyView {
    fn new(row: KeyRow, plaintext: Option<String>) -> Self {
        Self {
            status: auth::key_status(&row, crate::db::now()),
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            models: row
                .models
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok()),
            rpm: row.rpm,
            tpm: row.tpm,
            budget_tokens: row.budget_tokens,
            budget_usd: row
                .budget_nanos
                .and_then(|nanos| u64::try_from(nanos).ok())
                .map(|nanos| Nanodollars(nanos).usd()),
            budget_window: row.budget_window,
            expires_at: row.expires_at.map(time),
            enabled: row.enabled,
            revoked_at: row.revoked_at.map(time),
            source: row.source,
            created_at: time(row.created_at),
            updated_at: time(row.updated_at),
            key: plaintext,
        }
    }
}

fn parse_window(text: &str) -> Result<BudgetWindow, AdminError> {
    BudgetWindow::parse(text.trim()).ok_or_else(|| {
        AdminError::invalid(
            "budget_window",
            format!(
                "unknown budget window '{text}'; expected one of: {}",
                BudgetWindow::names()
            ),
        )
    })
}

fn parse_budget_usd(usd: f64) -> Result<Nanodollars, AdminError> {
    Nanodollars::from_usd(usd).map_err(|why| AdminError::invalid("budget_usd", why))
}

fn parse_expiry(text: &str) -> Result<DateTime<Utc>, AdminError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            AdminError::invalid(
                "expires_at",
                format!(
                    "'{text}' is not an RFC 3339 time with a time zone; write it like 2027-01-01T00:00:00Z"
                ),
            )
        })
}

fn not_found(id: i64) -> AdminError {
    AdminError::NotFound(format!("no key with id {id}"))
}

impl Admin {
    pub async fn list_keys(&self, page: Page) -> Result<List<KeyView>, AdminError> {
        let page = self.db.list_keys_page(page).await?;
        Ok(List {
            data: page
                .rows
                .into_iter()
                .map(|row| KeyView::new(row, None))
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn key(&self, id: i64) -> Result<KeyView, AdminError> {
        self.db
            .key_by_id(id)
            .await?
            .map(|row| KeyView::new(row, None))
            .ok_or_else(|| not_found(id))
    }

    /// Creates a key through [`auth::create_key`]; the answer carries the plaintext once.
    pub async fn create_key(&self, new: KeyCreate) -> Result<KeyView, AdminError> {
        let new = NewKey {
            name: new.name,
            models: new.models,
            rpm: new.rpm,
            tpm: new.tpm,
            budget_tokens: new.budget_tokens,
            budget_usd: new.budget_usd.map(parse_budget_usd).transpose()?,
            budget_window: new.budget_window.as_deref().map(parse_window).transpose()?,
            expires_at: new.expires_at.as_deref().map(parse_expiry).transpose()?,
        };
        let (row, plaintext) = auth::create_key(&self.db, new).await?;
        self.changed("key created", row.id);
        Ok(KeyView::new(row, Some(plaintext)))
    }

    pub async fn update_key(&self, id: i64, patch: KeyPatch) -> Result<KeyView, AdminError> {
        let update = KeyUpdate {
            name: patch.name,
            models: patch.models,
            rpm: patch.rpm,
            tpm: patch.tpm,
            budget_tokens: patch.budget_tokens,
            budget_usd: patch
                .budget_usd
                .map(|usd| usd.map(parse_budget_usd).transpose())
                .transpose()?,
            budget_window: patch
                .budget_window
                .map(|w| w.as_deref().map(parse_window).transpose())
                .transpose()?,
            expires_at: patch
                .expires_at
                .map(|t| t.as_deref().map(parse_expiry).transpose())
                .transpose()?,
            enabled: patch.enabled,
        };
        let row = auth::update_key(&self.db, id, update).await?;
        self.changed("key updated", id);
        Ok(KeyView::new(row, None))
    }

    /// A new plaintext for the key, returned once; the old one stops working.
    pub async fn rotate_key(&self, id: i64) -> Result<KeyView, AdminError> {
        let (row, plaintext) = auth::rotate_key(&self.db, id).await?;
        self.changed("key rotated", id);
        Ok(KeyView::new(row, Some(plaintext)))
    }

    /// Revokes the key for good (it stays listed, as revoked), like `llmgate keys revoke`.
    pub async fn revoke_key(&self, id: i64) -> Result<KeyView, AdminError> {
        let row = auth::revoke_key_id(&self.db, id).await?;
        self.changed("key revoked", id);
        Ok(KeyView::new(row, None))
    }

    pub async fn delete_key(&self, id: i64) -> Result<super::Deleted, AdminError> {
        auth::delete_key(&self.db, id).await?;
        self.changed("key deleted", id);
        Ok(super::Deleted { id, deleted: true })
    }
}

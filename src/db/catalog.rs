//! Reading the routing configuration (providers, accounts, models, routes) in one snapshot.

use sqlx::FromRow;

use super::{Db, DbError};

#[derive(Debug, Clone, FromRow)]
pub struct ProviderRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    /// The upstream serves OpenAI's Responses API itself.
    pub responses: bool,
    #[sqlx(flatten)]
    pub cloud: ProviderCloud,
}

/// What a provider of a cloud kind needs beyond its base URL, and the extra headers any
/// provider sends upstream (migration 0007), stored as the admin API and the config file
/// checked them.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ProviderCloud {
    /// A JSON object of header name to value.
    pub headers: String,
    /// Azure's `api-version`.
    pub api_version: Option<String>,
    /// Vertex AI's project.
    pub project: Option<String>,
    /// Vertex AI's location.
    pub region: Option<String>,
}

impl Default for ProviderCloud {
    fn default() -> Self {
        Self {
            headers: "{}".to_owned(),
            api_version: None,
            project: None,
            region: None,
        }
    }
}

/// The columns of [`ProviderCloud`], for a `SELECT` of providers.
const CLOUD_COLUMNS: &str = "headers, api_version, project, region";

#[derive(Debug, Clone, FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub provider_id: i64,
    pub name: String,
    /// Sealed with the process's `SecretCipher`.
    pub api_key: Vec<u8>,
    pub weight: i64,
    pub rpm: Option<i64>,
    pub enabled: bool,
    /// Changes whenever an operator edits the account (key, switch, weight).
    pub updated_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct ModelRow {
    pub id: i64,
    pub name: String,
    pub strategy: String,
    pub max_attempts: i64,
    pub timeout_ms: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct RouteRow {
    pub id: i64,
    pub model_id: i64,
    pub provider_id: i64,
    pub upstream_model: String,
    pub weight: i64,
    pub priority: i64,
    pub enabled: bool,
    #[sqlx(flatten)]
    pub overrides: RouteOverridesRow,
}

/// A route's own prices (micro-dollars per million tokens) and limits (tokens), each `NULL`
/// where the built-in catalog decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromRow)]
pub struct RouteOverridesRow {
    pub input_price_micros: Option<i64>,
    pub output_price_micros: Option<i64>,
    pub cached_input_price_micros: Option<i64>,
    pub cache_write_price_micros: Option<i64>,
    pub max_output_tokens: Option<i64>,
    pub context_window: Option<i64>,
}

/// The override columns, in [`RouteOverridesRow`]'s order, for SELECT lists.
const OVERRIDE_COLUMNS: &str = "input_price_micros, output_price_micros, \
     cached_input_price_micros, cache_write_price_micros, max_output_tokens, context_window";

/// Everything the catalog is built from, read in one transaction so it is consistent.
#[derive(Debug, Default)]
pub struct CatalogRows {
    pub providers: Vec<ProviderRow>,
    pub accounts: Vec<AccountRow>,
    pub models: Vec<ModelRow>,
    pub routes: Vec<RouteRow>,
}

impl Db {
    pub async fn load_catalog(&self) -> Result<CatalogRows, DbError> {
        let snapshot = self.dialect().snapshot();
        on_pool!(&self.reader, |pool| {
            let mut tx = pool.begin().await?;
            if let Some(snapshot) = snapshot {
                sqlx::query(snapshot).execute(&mut *tx).await?;
            }
            let providers = sqlx::query_as(&format!(
                "SELECT id, name, kind, base_url, responses, {CLOUD_COLUMNS} FROM providers ORDER BY id"
            ))
            .fetch_all(&mut *tx)
            .await?;
            let accounts = sqlx::query_as(
                "SELECT id, provider_id, name, api_key, weight, rpm, enabled, updated_at FROM accounts ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await?;
            let models = sqlx::query_as(
                "SELECT id, name, strategy, max_attempts, timeout_ms, created_at FROM models ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await?;
            let routes = sqlx::query_as(&format!(
                "SELECT id, model_id, provider_id, upstream_model, weight, priority, enabled,
                     {OVERRIDE_COLUMNS} FROM routes ORDER BY id"
            ))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(CatalogRows {
                providers,
                accounts,
                models,
                routes,
            })
        })
    }
}

//! Queries of the admin API: paged listings, single objects, and writes of providers, accounts,
//! models with their routes, and client keys; the rows behind the upstream health view; and
//! the settings the admin login keeps (password hash, sealed token secret).
//!
//! Updates change only the columns a caller sets (`Some`), in one statement, so two operators
//! editing different fields of one object do not undo each other.

use sqlx::FromRow;

use super::client_keys::COLUMNS as KEY_COLUMNS;
use super::{Db, DbError, KeyRow, ProviderCloud, RouteOverridesRow, now};

/// One page of a listing: rows with an id above `after`, at most `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after: i64,
    pub limit: u32,
}

impl Page {
    /// One row more than the page holds, to learn whether another page follows.
    fn probe(self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// A page of rows and the cursor of the next one, if any.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub rows: Vec<T>,
    pub next_cursor: Option<i64>,
}

fn paged<T>(mut rows: Vec<T>, page: Page, id: impl Fn(&T) -> i64) -> Paged<T> {
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(id)
    } else {
        None
    };
    Paged { rows, next_cursor }
}

#[derive(Debug, Clone, FromRow)]
pub struct ProviderRecord {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    /// The upstream serves OpenAI's Responses API itself.
    pub responses: bool,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
    #[sqlx(flatten)]
    pub cloud: ProviderCloud,
}

#[derive(Debug, Clone)]
pub struct NewProviderRow {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub responses: bool,
    pub cloud: ProviderCloud,
}

#[derive(Debug, Clone, Default)]
pub struct ProviderChanges {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub base_url: Option<String>,
    pub responses: Option<bool>,
    /// Replaces all four cloud columns at once (the caller merged the patch into them).
    pub cloud: Option<ProviderCloud>,
}

/// An account as operators see it: never the sealed credential, only its hint.
#[derive(Debug, Clone, FromRow)]
pub struct AccountRecord {
    pub id: i64,
    pub provider_id: i64,
    /// The provider's name.
    pub provider: String,
    pub name: String,
    pub api_key_hint: String,
    pub weight: i64,
    pub rpm: Option<i64>,
    pub enabled: bool,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An account to insert. `api_key` is already sealed.
#[derive(Debug, Clone)]
pub struct NewAccountRow {
    pub provider_id: i64,
    pub name: String,
    pub api_key: Vec<u8>,
    pub api_key_hint: String,
    pub weight: i64,
    pub rpm: Option<i64>,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    pub provider_id: Option<i64>,
    pub name: Option<String>,
    /// A new sealed credential and its hint.
    pub api_key: Option<(Vec<u8>, String)>,
    pub weight: Option<i64>,
    /// `Some(None)` removes the limit.
    pub rpm: Option<Option<i64>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, FromRow)]
pub struct ModelRecord {
    pub id: i64,
    pub name: String,
    pub strategy: String,
    pub max_attempts: i64,
    pub timeout_ms: Option<i64>,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A route with the names of its model and provider.
#[derive(Debug, Clone, FromRow)]
pub struct RouteRecord {
    pub id: i64,
    pub model_id: i64,
    pub model: String,
    pub provider_id: i64,
    pub provider: String,
    pub upstream_model: String,
    pub weight: i64,
    pub priority: i64,
    pub enabled: bool,
    #[sqlx(flatten)]
    pub overrides: RouteOverridesRow,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewModelRow {
    pub name: String,
    pub strategy: String,
    pub max_attempts: i64,
    pub timeout_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewRouteRow {
    pub provider_id: i64,
    pub upstream_model: String,
    pub weight: i64,
    pub priority: i64,
    pub enabled: bool,
    pub overrides: RouteOverridesRow,
}

#[derive(Debug, Clone, Default)]
pub struct ModelChanges {
    pub name: Option<String>,
    pub strategy: Option<String>,
    pub max_attempts: Option<i64>,
    /// `Some(None)` removes the model's own timeout.
    pub timeout_ms: Option<Option<i64>>,
}

#[derive(Debug, Clone, Default)]
pub struct RouteChanges {
    pub weight: Option<i64>,
    pub priority: Option<i64>,
    pub enabled: Option<bool>,
    /// Each `Some` replaces that override (`Some(None)` hands it back to the catalog).
    pub overrides: OverrideChanges,
}

/// Changes to a route's prices and limits; `Some(None)` clears one.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverrideChanges {
    pub input_price_micros: Option<Option<i64>>,
    pub output_price_micros: Option<Option<i64>>,
    pub cached_input_price_micros: Option<Option<i64>>,
    pub cache_write_price_micros: Option<Option<i64>>,
    pub max_output_tokens: Option<Option<i64>>,
    pub context_window: Option<Option<i64>>,
}

/// Changes to a client key; `Some(None)` clears an optional setting.
#[derive(Debug, Clone, Default)]
pub struct KeyChanges {
    pub name: Option<String>,
    pub models: Option<Option<String>>,
    pub rpm: Option<Option<i64>>,
    pub tpm: Option<Option<i64>>,
    pub budget_tokens: Option<Option<i64>>,
    /// Nano-dollars.
    pub budget_nanos: Option<Option<i64>>,
    pub budget_window: Option<Option<String>>,
    pub expires_at: Option<Option<i64>>,
    pub enabled: Option<bool>,
}

/// What deleting a provider did, or why it did not.
#[derive(Debug)]
pub enum ProviderDeletion {
    NotFound,
    /// Routes still use the provider and no cascade was asked for; nothing was deleted.
    InUse(Vec<RouteRecord>),
    /// Deleted, with these routes (when cascading) and its accounts.
    Deleted {
        routes: Vec<RouteRecord>,
    },
}

/// Every route and account, for the upstream health view.
#[derive(Debug, Default)]
pub struct UpstreamRows {
    pub routes: Vec<RouteRecord>,
    pub accounts: Vec<AccountRecord>,
}

const PROVIDER_COLUMNS: &str = "id, name, kind, base_url, responses, source, created_at, updated_at, headers, api_version, project, region";
const ACCOUNT_SELECT: &str = "SELECT a.id, a.provider_id, p.name AS provider, a.name, a.api_key_hint, \
     a.weight, a.rpm, a.enabled, a.source, a.created_at, a.updated_at \
     FROM accounts a JOIN providers p ON p.id = a.provider_id";
const MODEL_COLUMNS: &str =
    "id, name, strategy, max_attempts, timeout_ms, source, created_at, updated_at";
const ROUTE_SELECT: &str = "SELECT r.id, r.model_id, m.name AS model, r.provider_id, \
     p.name AS provider, r.upstream_model, r.weight, r.priority, r.enabled, \
     r.input_price_micros, r.output_price_micros, r.cached_input_price_micros, \
     r.cache_write_price_micros, r.max_output_tokens, r.context_window, r.created_at, r.updated_at \
     FROM routes r JOIN models m ON m.id = r.model_id JOIN providers p ON p.id = r.provider_id";

/// Turns a unique-constraint violation into a conflict with `message`.
pub(super) fn conflict(message: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> DbError {
    move |error| match error {
        sqlx::Error::Database(db) if db.is_unique_violation() => DbError::Conflict(message()),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => DbError::Conflict(
            "the object refers to something that was deleted meanwhile; reload and retry".into(),
        ),
        other => other.into(),
    }
}

/// Inserts a route, or updates the one of the same model, provider and upstream model
/// (`$14`: keeping its `enabled` switch); returns its id.
pub(super) const UPSERT_ROUTE: &str = "INSERT INTO routes (model_id, provider_id, upstream_model,
         weight, priority, enabled, created_at, updated_at, input_price_micros,
         output_price_micros, cached_input_price_micros, cache_write_price_micros,
         max_output_tokens, context_window)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT (model_id, provider_id, upstream_model) DO UPDATE SET
         weight = excluded.weight, priority = excluded.priority,
         enabled = CASE WHEN $14 THEN routes.enabled ELSE excluded.enabled END,
         updated_at = excluded.updated_at, input_price_micros = excluded.input_price_micros,
         output_price_micros = excluded.output_price_micros,
         cached_input_price_micros = excluded.cached_input_price_micros,
         cache_write_price_micros = excluded.cache_write_price_micros,
         max_output_tokens = excluded.max_output_tokens,
         context_window = excluded.context_window
     RETURNING id";

/// Inserts a route (`&NewRouteRow`) of the model `$model_id` in the open transaction `$tx` of
/// either backend, or updates the one with the same provider and upstream model (keeping its
/// `enabled` switch when `$keep_enabled`: a config import leaves an operator's switch alone);
/// evaluates to `Result<i64, DbError>`, the route's id. A macro rather than a function generic
/// over the transaction's database, whose future the compiler cannot prove `Send`.
macro_rules! upsert_route {
    ($tx:ident, $model_id:expr, $route:expr, $now:expr, $keep_enabled:expr) => {{
        let route: &$crate::db::NewRouteRow = $route;
        sqlx::query_scalar::<_, i64>($crate::db::admin::UPSERT_ROUTE)
            .bind($model_id)
            .bind(route.provider_id)
            .bind(&route.upstream_model)
            .bind(route.weight)
            .bind(route.priority)
            .bind(route.enabled)
            .bind($now)
            .bind(route.overrides.input_price_micros)
            .bind(route.overrides.output_price_micros)
            .bind(route.overrides.cached_input_price_micros)
            .bind(route.overrides.cache_write_price_micros)
            .bind(route.overrides.max_output_tokens)
            .bind(route.overrides.context_window)
            .bind($keep_enabled)
            .fetch_one(&mut *$tx)
            .await
            .map_err($crate::db::admin::conflict(|| {
                "two routes of this model are the same".to_owned()
            }))
    }};
}
pub(super) use upsert_route;

/// The conflict of renaming a `what` to a `name` another one has.
fn name_taken(what: &'static str, name: Option<&str>) -> impl FnOnce(sqlx::Error) -> DbError {
    conflict(move || {
        format!(
            "a {what} named '{}' already exists",
            name.unwrap_or_default()
        )
    })
}

impl Db {
    // ---- providers ----

    pub async fn list_providers(&self, page: Page) -> Result<Paged<ProviderRecord>, DbError> {
        let sql =
            format!("SELECT {PROVIDER_COLUMNS} FROM providers WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(page.after)
            .bind(page.probe())
            .fetch_all(pool)
            .await?);
        Ok(paged(rows, page, |r: &ProviderRecord| r.id))
    }

    pub async fn provider(&self, id: i64) -> Result<Option<ProviderRecord>, DbError> {
        let sql = format!("SELECT {PROVIDER_COLUMNS} FROM providers WHERE id = $1");
        Ok(on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn provider_id_by_name(&self, name: &str) -> Result<Option<i64>, DbError> {
        Ok(on_pool!(&self.reader, |pool| sqlx::query_scalar(
            "SELECT id FROM providers WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn insert_provider(&self, new: &NewProviderRow) -> Result<ProviderRecord, DbError> {
        let sql = format!(
            "INSERT INTO providers (name, kind, base_url, responses, source, created_at, updated_at,
                 headers, api_version, project, region)
             VALUES ($1, $2, $3, $4, 'api', $5, $5, $6, $7, $8, $9) RETURNING {PROVIDER_COLUMNS}"
        );
        on_pool!(&self.writer, |pool| sqlx::query_as(&sql)
            .bind(&new.name)
            .bind(&new.kind)
            .bind(&new.base_url)
            .bind(new.responses)
            .bind(now())
            .bind(&new.cloud.headers)
            .bind(&new.cloud.api_version)
            .bind(&new.cloud.project)
            .bind(&new.cloud.region)
            .fetch_one(pool)
            .await)
        .map_err(conflict(|| {
            format!("a provider named '{}' already exists", new.name)
        }))
    }

    pub async fn update_provider(
        &self,
        id: i64,
        changes: &ProviderChanges,
    ) -> Result<Option<ProviderRecord>, DbError> {
        let sql = format!(
            "UPDATE providers SET name = COALESCE($1, name), kind = COALESCE($2, kind),
                 base_url = COALESCE($3, base_url), responses = COALESCE($4, responses),
                 updated_at = $5,
                 headers = CASE WHEN $7 THEN $8 ELSE headers END,
                 api_version = CASE WHEN $7 THEN $9 ELSE api_version END,
                 project = CASE WHEN $7 THEN $10 ELSE project END,
                 region = CASE WHEN $7 THEN $11 ELSE region END
             WHERE id = $6 RETURNING {PROVIDER_COLUMNS}"
        );
        let cloud = changes.cloud.as_ref();
        on_pool!(&self.writer, |pool| sqlx::query_as(&sql)
            .bind(&changes.name)
            .bind(&changes.kind)
            .bind(&changes.base_url)
            .bind(changes.responses)
            .bind(now())
            .bind(id)
            .bind(cloud.is_some())
            .bind(cloud.map(|c| c.headers.as_str()))
            .bind(cloud.and_then(|c| c.api_version.as_deref()))
            .bind(cloud.and_then(|c| c.project.as_deref()))
            .bind(cloud.and_then(|c| c.region.as_deref()))
            .fetch_optional(pool)
            .await)
        .map_err(name_taken("provider", changes.name.as_deref()))
    }

    /// Deletes a provider and its accounts. Routes that use it are deleted too when `cascade`
    /// is set; otherwise their presence refuses the deletion.
    ///
    /// On PostgreSQL the provider's row is locked first (`FOR UPDATE`): a route being added to
    /// it by another connection either committed before, and is seen here, or waits and then
    /// fails as referring to a deleted provider; SQLite's single writer orders them anyway.
    pub async fn delete_provider(
        &self,
        id: i64,
        cascade: bool,
    ) -> Result<ProviderDeletion, DbError> {
        let lock = self.dialect().for_update();
        let find = format!("SELECT id FROM providers WHERE id = $1{lock}");
        let uses = format!("{ROUTE_SELECT} WHERE r.provider_id = $1 ORDER BY r.id");
        on_pool!(&self.writer, |pool| {
            let mut tx = pool.begin().await?;
            let exists: Option<i64> = sqlx::query_scalar(&find)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Ok(ProviderDeletion::NotFound);
            }
            let routes: Vec<RouteRecord> =
                sqlx::query_as(&uses).bind(id).fetch_all(&mut *tx).await?;
            if !routes.is_empty() {
                if !cascade {
                    return Ok(ProviderDeletion::InUse(routes));
                }
                sqlx::query("DELETE FROM routes WHERE provider_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM providers WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(conflict(|| {
                    "routes were added to the provider meanwhile; list them and retry".to_owned()
                }))?;
            tx.commit().await?;
            Ok(ProviderDeletion::Deleted { routes })
        })
    }

    // ---- accounts ----

    pub async fn list_accounts(&self, page: Page) -> Result<Paged<AccountRecord>, DbError> {
        let sql = format!("{ACCOUNT_SELECT} WHERE a.id > $1 ORDER BY a.id LIMIT $2");
        let rows = on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(page.after)
            .bind(page.probe())
            .fetch_all(pool)
            .await?);
        Ok(paged(rows, page, |r: &AccountRecord| r.id))
    }

    pub async fn account(&self, id: i64) -> Result<Option<AccountRecord>, DbError> {
        let sql = format!("{ACCOUNT_SELECT} WHERE a.id = $1");
        Ok(on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn insert_account(&self, new: &NewAccountRow) -> Result<i64, DbError> {
        on_pool!(&self.writer, |pool| sqlx::query_scalar(
            "INSERT INTO accounts (provider_id, name, api_key, api_key_hint, weight, rpm, enabled,
                 source, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'api', $8, $8) RETURNING id",
        )
        .bind(new.provider_id)
        .bind(&new.name)
        .bind(&new.api_key)
        .bind(&new.api_key_hint)
        .bind(new.weight)
        .bind(new.rpm)
        .bind(new.enabled)
        .bind(now())
        .fetch_one(pool)
        .await)
        .map_err(conflict(|| {
            format!("this provider already has an account named '{}'", new.name)
        }))
    }

    /// Applies `changes`; `None` when no account has this id.
    pub async fn update_account(
        &self,
        id: i64,
        changes: &AccountChanges,
    ) -> Result<Option<i64>, DbError> {
        let (api_key, hint) = match &changes.api_key {
            Some((sealed, hint)) => (Some(sealed.as_slice()), Some(hint.as_str())),
            None => (None, None),
        };
        on_pool!(&self.writer, |pool| {
            sqlx::query_scalar(
            "UPDATE accounts SET provider_id = COALESCE($1, provider_id), name = COALESCE($2, name),
                 api_key = COALESCE($3, api_key), api_key_hint = COALESCE($4, api_key_hint),
                 weight = COALESCE($5, weight), rpm = CASE WHEN $6 THEN $7 ELSE rpm END,
                 enabled = COALESCE($8, enabled), updated_at = $9
             WHERE id = $10 RETURNING id",
        )
        .bind(changes.provider_id)
        .bind(&changes.name)
        .bind(api_key)
        .bind(hint)
        .bind(changes.weight)
        .bind(changes.rpm.is_some())
        .bind(changes.rpm.flatten())
        .bind(changes.enabled)
        .bind(now())
        .bind(id)
        .fetch_optional(pool)
        .await
        })
        .map_err(conflict(|| {
            "the provider already has an account with this name".to_owned()
        }))
    }

    /// Deletes an account; false when none has this id.
    pub async fn delete_account(&self, id: i64) -> Result<bool, DbError> {
        self.delete_by_id("DELETE FROM accounts WHERE id = $1", id)
            .await
    }

    /// Runs a `DELETE … WHERE id = $1`; whether it removed a row.
    async fn delete_by_id(&self, sql: &'static str, id: i64) -> Result<bool, DbError> {
        let deleted = on_pool!(&self.writer, |pool| sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(deleted == 1)
    }

    // ---- models and routes ----

    pub async fn list_models(&self, page: Page) -> Result<Paged<ModelRecord>, DbError> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(page.after)
            .bind(page.probe())
            .fetch_all(pool)
            .await?);
        Ok(paged(rows, page, |r: &ModelRecord| r.id))
    }

    pub async fn model(&self, id: i64) -> Result<Option<ModelRecord>, DbError> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = $1");
        Ok(on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// The routes of these models, by model then priority then id.
    pub async fn routes_of(&self, model_ids: &[i64]) -> Result<Vec<RouteRecord>, DbError> {
        let ids = serde_json::to_string(model_ids).unwrap_or_else(|_| "[]".into());
        let sql = format!(
            "{ROUTE_SELECT} WHERE r.model_id IN ({})
             ORDER BY r.model_id, r.priority, r.id",
            self.dialect().json_integers(1)
        );
        Ok(on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(&ids)
            .fetch_all(pool)
            .await?))
    }

    pub async fn route(&self, id: i64) -> Result<Option<RouteRecord>, DbError> {
        let sql = format!("{ROUTE_SELECT} WHERE r.id = $1");
        Ok(on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// Inserts a model and its routes at once; returns the model's id.
    pub async fn insert_model(
        &self,
        new: &NewModelRow,
        routes: &[NewRouteRow],
    ) -> Result<i64, DbError> {
        let now = now();
        on_pool!(&self.writer, |pool| {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO models (name, strategy, max_attempts, timeout_ms, source, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, 'api', $5, $5) RETURNING id",
            )
            .bind(&new.name)
            .bind(&new.strategy)
            .bind(new.max_attempts)
            .bind(new.timeout_ms)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict(|| {
                format!("a model named '{}' already exists", new.name)
            }))?;
            for route in routes {
                upsert_route!(tx, id, route, now, false)?;
            }
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Applies `changes` and, when given, makes `routes` the model's whole route list (routes
    /// to the same provider and upstream model keep their id, and so their health). `false`
    /// when no model has this id.
    ///
    /// The `UPDATE` of the model comes first and locks its row until the commit, so two
    /// replacements of one model's routes on PostgreSQL run one after the other, as on SQLite:
    /// the later one's list wins whole.
    pub async fn update_model(
        &self,
        id: i64,
        changes: &ModelChanges,
        routes: Option<&[NewRouteRow]>,
    ) -> Result<bool, DbError> {
        let now = now();
        let prune = format!(
            "DELETE FROM routes WHERE model_id = $1 AND id NOT IN ({})",
            self.dialect().json_integers(2)
        );
        on_pool!(&self.writer, |pool| {
            let mut tx = pool.begin().await?;
            let found: Option<i64> = sqlx::query_scalar(
                "UPDATE models SET name = COALESCE($1, name), strategy = COALESCE($2, strategy),
                     max_attempts = COALESCE($3, max_attempts),
                     timeout_ms = CASE WHEN $4 THEN $5 ELSE timeout_ms END, updated_at = $6
                 WHERE id = $7 RETURNING id",
            )
            .bind(&changes.name)
            .bind(&changes.strategy)
            .bind(changes.max_attempts)
            .bind(changes.timeout_ms.is_some())
            .bind(changes.timeout_ms.flatten())
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(name_taken("model", changes.name.as_deref()))?;
            if found.is_none() {
                return Ok(false);
            }
            if let Some(routes) = routes {
                let mut kept = Vec::with_capacity(routes.len());
                for route in routes {
                    kept.push(upsert_route!(tx, id, route, now, false)?);
                }
                sqlx::query(&prune)
                    .bind(id)
                    .bind(serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into()))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Deletes a model and its routes; false when none has this id.
    pub async fn delete_model(&self, id: i64) -> Result<bool, DbError> {
        self.delete_by_id("DELETE FROM models WHERE id = $1", id)
            .await
    }

    /// Applies `changes` to one route; `None` when no route has this id.
    pub async fn update_route(
        &self,
        id: i64,
        changes: &RouteChanges,
    ) -> Result<Option<RouteRecord>, DbError> {
        let o = &changes.overrides;
        let found: Option<i64> = on_pool!(&self.writer, |pool| {
            sqlx::query_scalar(
            "UPDATE routes SET weight = COALESCE($1, weight), priority = COALESCE($2, priority),
                 enabled = COALESCE($3, enabled), updated_at = $4,
                 input_price_micros = CASE WHEN $6 THEN $7 ELSE input_price_micros END,
                 output_price_micros = CASE WHEN $8 THEN $9 ELSE output_price_micros END,
                 cached_input_price_micros =
                     CASE WHEN $10 THEN $11 ELSE cached_input_price_micros END,
                 cache_write_price_micros =
                     CASE WHEN $12 THEN $13 ELSE cache_write_price_micros END,
                 max_output_tokens = CASE WHEN $14 THEN $15 ELSE max_output_tokens END,
                 context_window = CASE WHEN $16 THEN $17 ELSE context_window END
             WHERE id = $5 RETURNING id",
        )
        .bind(changes.weight)
        .bind(changes.priority)
        .bind(changes.enabled)
        .bind(now())
        .bind(id)
        .bind(o.input_price_micros.is_some())
        .bind(o.input_price_micros.flatten())
        .bind(o.output_price_micros.is_some())
        .bind(o.output_price_micros.flatten())
        .bind(o.cached_input_price_micros.is_some())
        .bind(o.cached_input_price_micros.flatten())
        .bind(o.cache_write_price_micros.is_some())
        .bind(o.cache_write_price_micros.flatten())
        .bind(o.max_output_tokens.is_some())
        .bind(o.max_output_tokens.flatten())
        .bind(o.context_window.is_some())
        .bind(o.context_window.flatten())
        .fetch_optional(pool)
        .await?
        });
        match found {
            Some(id) => self.route(id).await,
            None => Ok(None),
        }
    }

    // ---- client keys ----

    pub async fn list_keys_page(&self, page: Page) -> Result<Paged<KeyRow>, DbError> {
        let sql =
            format!("SELECT {KEY_COLUMNS} FROM client_keys WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = on_pool!(&self.reader, |pool| sqlx::query_as(&sql)
            .bind(page.after)
            .bind(page.probe())
            .fetch_all(pool)
            .await?);
        Ok(paged(rows, page, |r: &KeyRow| r.id))
    }

    pub async fn key_by_id(&self, id: i64) -> Result<Option<KeyRow>, DbError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM client_keys WHERE id = $1");
        Ok(on_pool!(&self.writer, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn update_key(
        &self,
        id: i64,
        changes: &KeyChanges,
    ) -> Result<Option<KeyRow>, DbError> {
        let sql = format!(
            "UPDATE client_keys SET name = COALESCE($1, name),
                 models = CASE WHEN $2 THEN $3 ELSE models END,
                 rpm = CASE WHEN $4 THEN $5 ELSE rpm END,
                 tpm = CASE WHEN $6 THEN $7 ELSE tpm END,
                 budget_tokens = CASE WHEN $8 THEN $9 ELSE budget_tokens END,
                 budget_window = CASE WHEN $10 THEN $11 ELSE budget_window END,
                 expires_at = CASE WHEN $12 THEN $13 ELSE expires_at END,
                 enabled = COALESCE($14, enabled), updated_at = $15,
                 budget_nanos = CASE WHEN $17 THEN $18 ELSE budget_nanos END
             WHERE id = $16 RETURNING {KEY_COLUMNS}"
        );
        on_pool!(&self.writer, |pool| sqlx::query_as(&sql)
            .bind(&changes.name)
            .bind(changes.models.is_some())
            .bind(changes.models.clone().flatten())
            .bind(changes.rpm.is_some())
            .bind(changes.rpm.flatten())
            .bind(changes.tpm.is_some())
            .bind(changes.tpm.flatten())
            .bind(changes.budget_tokens.is_some())
            .bind(changes.budget_tokens.flatten())
            .bind(changes.budget_window.is_some())
            .bind(changes.budget_window.clone().flatten())
            .bind(changes.expires_at.is_some())
            .bind(changes.expires_at.flatten())
            .bind(changes.enabled)
            .bind(now())
            .bind(id)
            .bind(changes.budget_nanos.is_some())
            .bind(changes.budget_nanos.flatten())
            .fetch_optional(pool)
            .await)
        .map_err(name_taken("key", changes.name.as_deref()))
    }

    /// Gives a key a new hash (a rotated plaintext); the old plaintext stops matching.
    pub async fn replace_key_hash(
        &self,
        id: i64,
        key_hash: &str,
        prefix: &str,
    ) -> Result<Option<KeyRow>, DbError> {
        let sql = format!(
            "UPDATE client_keys SET key_hash = $1, prefix = $2, updated_at = $3
             WHERE id = $4 RETURNING {KEY_COLUMNS}"
        );
        Ok(on_pool!(&self.writer, |pool| sqlx::query_as(&sql)
            .bind(key_hash)
            .bind(prefix)
            .bind(now())
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// Deletes a key; false when none has this id.
    pub async fn delete_key(&self, id: i64) -> Result<bool, DbError> {
        self.delete_by_id("DELETE FROM client_keys WHERE id = $1", id)
            .await
    }

    // ---- upstream view ----

    /// Every route (by model name, priority, id) and account (by provider name, name), read
    /// in one snapshot. Names sort by their bytes on both backends, whatever collation a
    /// PostgreSQL database was created with.
    pub async fn upstream_rows(&self) -> Result<UpstreamRows, DbError> {
        let dialect = self.dialect();
        let bytewise = dialect.bytewise();
        let routes_sql = format!("{ROUTE_SELECT} ORDER BY m.name{bytewise}, r.priority, r.id");
        let accounts_sql =
            format!("{ACCOUNT_SELECT} ORDER BY p.name{bytewise}, a.name{bytewise}, a.id");
        on_pool!(&self.reader, |pool| {
            let mut tx = pool.begin().await?;
            if let Some(snapshot) = dialect.snapshot() {
                sqlx::query(snapshot).execute(&mut *tx).await?;
            }
            let routes = sqlx::query_as(&routes_sql).fetch_all(&mut *tx).await?;
            let accounts = sqlx::query_as(&accounts_sql).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok(UpstreamRows { routes, accounts })
        })
    }

    // ---- settings ----

    /// Stores `value` under `name` unless a value is already there; returns the stored value
    /// (so of two processes starting at once, both end up with the first one's).
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, DbError> {
        on_pool!(&self.writer, |pool| {
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .execute(pool)
            .await?;
            Ok(
                sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_one(pool)
                    .await?,
            )
        })
    }
}

/// The change counter that is the generation of admin tokens.
const ADMIN_TOKENS: &str = "admin_tokens";

/// Moves the generation of admin tokens on and returns it.
const ADVANCE_ADMIN_TOKENS: &str =
    "UPDATE change_versions SET version = version + 1 WHERE domain = $1 RETURNING version";

impl Db {
    /// The current generation of admin tokens (see migration 0003).
    pub async fn admin_token_generation(&self) -> Result<i64, DbError> {
        Ok(on_pool!(&self.writer, |pool| sqlx::query_scalar(
            "SELECT version FROM change_versions WHERE domain = $1"
        )
        .bind(ADMIN_TOKENS)
        .fetch_one(pool)
        .await?))
    }

    /// Moves the generation of admin tokens on, so every token issued before is refused;
    /// returns the new generation.
    pub async fn advance_admin_token_generation(&self) -> Result<i64, DbError> {
        Ok(on_pool!(&self.writer, |pool| sqlx::query_scalar(
            ADVANCE_ADMIN_TOKENS
        )
        .bind(ADMIN_TOKENS)
        .fetch_one(pool)
        .await?))
    }

    /// Stores `value` under the setting `name` and moves the generation of admin tokens on, in
    /// one transaction: a new admin password and the end of the tokens issued under the old
    /// one are one change. Returns the new generation.
    pub async fn put_setting_ending_admin_tokens(
        &self,
        name: &str,
        value: &str,
    ) -> Result<i64, DbError> {
        on_pool!(&self.writer, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(value)
            .execute(&mut *tx)
            .await?;
            let generation = sqlx::query_scalar(ADVANCE_ADMIN_TOKENS)
                .bind(ADMIN_TOKENS)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(generation)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::both_dbs;

    fn provider(name: &str) -> NewProviderRow {
        NewProviderRow {
            name: name.into(),
            kind: "openai".into(),
            base_url: "http://127.0.0.1:1/v1".into(),
            responses: false,
            cloud: ProviderCloud::default(),
        }
    }

    fn route(provider_id: i64, upstream: &str) -> NewRouteRow {
        NewRouteRow {
            provider_id,
            upstream_model: upstream.into(),
            weight: 1,
            priority: 0,
            enabled: true,
            overrides: RouteOverridesRow::default(),
        }
    }

    async fn catalog_version(db: &Db) -> i64 {
        on_pool!(&db.writer, |pool| sqlx::query_scalar(
            "SELECT version FROM change_versions WHERE domain = 'catalog'"
        )
        .fetch_one(pool)
        .await
        .unwrap())
    }

    #[tokio::test]
    async fn providers_page_update_conflict_and_delete() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let before = catalog_version(&db).await;
            let mut ids = Vec::new();
            for name in ["a", "b", "c"] {
                let row = db.insert_provider(&provider(name)).await.unwrap();
                assert_eq!(row.source, "api");
                ids.push(row.id);
            }
            assert!(
                catalog_version(&db).await > before,
                "triggers bump the version"
            );
            assert!(matches!(
                db.insert_provider(&provider("a")).await,
                Err(DbError::Conflict(m)) if m.contains("'a'")
            ));
            let first = db
                .list_providers(Page { after: 0, limit: 2 })
                .await
                .unwrap();
            assert_eq!(first.rows.len(), 2);
            assert_eq!(first.next_cursor, Some(ids[1]));
            let rest = db
                .list_providers(Page {
                    after: ids[1],
                    limit: 2,
                })
                .await
                .unwrap();
            assert_eq!(rest.rows.len(), 1);
            assert_eq!(rest.next_cursor, None);

            let changed = db
                .update_provider(
                    ids[0],
                    &ProviderChanges {
                        base_url: Some("http://127.0.0.1:2/v1".into()),
                        responses: Some(true),
                        ..ProviderChanges::default()
                    },
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(changed.name, "a");
            assert_eq!(changed.base_url, "http://127.0.0.1:2/v1");
            assert!(changed.responses);
            // A change that does not name the flag leaves it as it was.
            let renamed = db
                .update_provider(
                    ids[0],
                    &ProviderChanges {
                        base_url: Some("http://127.0.0.1:3/v1".into()),
                        ..ProviderChanges::default()
                    },
                )
                .await
                .unwrap()
                .unwrap();
            assert!(renamed.responses);
            let catalog = db.load_catalog().await.unwrap();
            assert!(
                catalog
                    .providers
                    .iter()
                    .any(|p| p.id == ids[0] && p.responses)
            );
            assert!(
                catalog
                    .providers
                    .iter()
                    .any(|p| p.id == ids[1] && !p.responses)
            );
            assert!(
                db.update_provider(999, &ProviderChanges::default())
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(matches!(
                db.update_provider(
                    ids[0],
                    &ProviderChanges {
                        name: Some("b".into()),
                        ..ProviderChanges::default()
                    }
                )
                .await,
                Err(DbError::Conflict(_))
            ));

            let model = db
                .insert_model(
                    &NewModelRow {
                        name: "m".into(),
                        strategy: "weighted".into(),
                        max_attempts: 3,
                        timeout_ms: None,
                    },
                    &[route(ids[0], "up")],
                )
                .await
                .unwrap();
            match db.delete_provider(ids[0], false).await.unwrap() {
                ProviderDeletion::InUse(routes) => assert_eq!(routes[0].model, "m"),
                other => panic!("{other:?}"),
            }
            assert!(db.provider(ids[0]).await.unwrap().is_some());
            match db.delete_provider(ids[0], true).await.unwrap() {
                ProviderDeletion::Deleted { routes } => assert_eq!(routes.len(), 1),
                other => panic!("{other:?}"),
            }
            assert!(db.routes_of(&[model]).await.unwrap().is_empty());
            assert!(matches!(
                db.delete_provider(ids[0], true).await.unwrap(),
                ProviderDeletion::NotFound
            ));
        }
    }

    #[tokio::test]
    async fn accounts_update_only_what_is_set() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let p = db.insert_provider(&provider("p")).await.unwrap();
            let new = NewAccountRow {
                provider_id: p.id,
                name: "a1".into(),
                api_key: vec![1, 2, 3],
                api_key_hint: "sk-…1234".into(),
                weight: 2,
                rpm: Some(10),
                enabled: true,
            };
            let id = db.insert_account(&new).await.unwrap();
            assert!(matches!(
                db.insert_account(&new).await,
                Err(DbError::Conflict(_))
            ));
            db.update_account(
                id,
                &AccountChanges {
                    enabled: Some(false),
                    rpm: Some(None),
                    ..AccountChanges::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
            let row = db.account(id).await.unwrap().unwrap();
            assert_eq!(
                (row.provider.as_str(), row.weight, row.rpm, row.enabled),
                ("p", 2, None, false)
            );
            assert_eq!(
                db.list_accounts(Page {
                    after: 0,
                    limit: 10
                })
                .await
                .unwrap()
                .rows
                .len(),
                1
            );
            assert!(db.delete_account(id).await.unwrap());
            assert!(!db.delete_account(id).await.unwrap());
        }
    }

    #[tokio::test]
    async fn replacing_routes_keeps_the_ids_of_those_that_stay() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let p = db.insert_provider(&provider("p")).await.unwrap();
            let model = db
                .insert_model(
                    &NewModelRow {
                        name: "m".into(),
                        strategy: "weighted".into(),
                        max_attempts: 3,
                        timeout_ms: Some(1000),
                    },
                    &[route(p.id, "one"), route(p.id, "two")],
                )
                .await
                .unwrap();
            let before = db.routes_of(&[model]).await.unwrap();
            let kept = before
                .iter()
                .find(|r| r.upstream_model == "two")
                .unwrap()
                .id;
            assert!(
                db.update_model(
                    model,
                    &ModelChanges {
                        timeout_ms: Some(None),
                        ..ModelChanges::default()
                    },
                    Some(&[route(p.id, "two"), route(p.id, "three")]),
                )
                .await
                .unwrap()
            );
            let after = db.routes_of(&[model]).await.unwrap();
            let names: Vec<&str> = after.iter().map(|r| r.upstream_model.as_str()).collect();
            assert_eq!(names, ["two", "three"]);
            assert_eq!(after[0].id, kept);
            assert_eq!(db.model(model).await.unwrap().unwrap().timeout_ms, None);

            let route = db
                .update_route(
                    kept,
                    &RouteChanges {
                        enabled: Some(false),
                        weight: Some(5),
                        ..RouteChanges::default()
                    },
                )
                .await
                .unwrap()
                .unwrap();
            assert!(!route.enabled);
            assert_eq!(route.weight, 5);
            let rows = db.upstream_rows().await.unwrap();
            assert_eq!(rows.routes.len(), 2);
            assert!(db.delete_model(model).await.unwrap());
            assert!(db.routes_of(&[model]).await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn keys_update_rotate_and_delete() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let row = db
                .insert_key(&crate::db::NewKeyRow {
                    name: "k".into(),
                    key_hash: "h1".into(),
                    prefix: "sk-lg-1".into(),
                    models: None,
                    rpm: Some(5),
                    tpm: None,
                    budget_tokens: None,
                    budget_nanos: None,
                    budget_window: None,
                    expires_at: None,
                    source: "api",
                })
                .await
                .unwrap();
            let updated = db
                .update_key(
                    row.id,
                    &KeyChanges {
                        rpm: Some(None),
                        enabled: Some(false),
                        models: Some(Some(r#"["m"]"#.into())),
                        ..KeyChanges::default()
                    },
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(updated.rpm, None);
            assert!(!updated.enabled);
            assert_eq!(updated.models.as_deref(), Some(r#"["m"]"#));
            let rotated = db
                .replace_key_hash(row.id, "h2", "sk-lg-2")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(rotated.key_hash, "h2");
            assert!(db.key_by_hash("h1").await.unwrap().is_none());
            assert_eq!(
                db.list_keys_page(Page { after: 0, limit: 1 })
                    .await
                    .unwrap()
                    .rows
                    .len(),
                1
            );
            assert!(db.delete_key(row.id).await.unwrap());
            assert!(db.key_by_id(row.id).await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn the_admin_token_generation_moves_on_alone_or_with_a_setting() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            assert_eq!(db.admin_token_generation().await.unwrap(), 0);
            assert_eq!(db.advance_admin_token_generation().await.unwrap(), 1);
            assert_eq!(
                db.put_setting_ending_admin_tokens("p", "hash")
                    .await
                    .unwrap(),
                2
            );
            assert_eq!(db.get_setting("p").await.unwrap().as_deref(), Some("hash"));
            assert_eq!(db.admin_token_generation().await.unwrap(), 2);
        }
    }

    #[tokio::test]
    async fn a_setting_is_inserted_once() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            assert_eq!(db.setting_or_insert("s", "first").await.unwrap(), "first");
            assert_eq!(db.setting_or_insert("s", "second").await.unwrap(), "first");
        }
    }

    fn model(name: &str) -> NewModelRow {
        NewModelRow {
            name: name.into(),
            strategy: "weighted".into(),
            max_attempts: 3,
            timeout_ms: None,
        }
    }

    #[tokio::test]
    async fn concurrent_edits_of_different_fields_both_stay() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let p = db.insert_provider(&provider("p")).await.unwrap();
            for round in 0..5 {
                let url = format!("http://127.0.0.1:{round}/v1");
                let flip = round % 2 == 0;
                let moved = ProviderChanges {
                    base_url: Some(url.clone()),
                    ..ProviderChanges::default()
                };
                let flipped = ProviderChanges {
                    responses: Some(flip),
                    ..ProviderChanges::default()
                };
                let (a, b) = tokio::join!(
                    db.update_provider(p.id, &moved),
                    db.update_provider(p.id, &flipped),
                );
                a.unwrap().unwrap();
                b.unwrap().unwrap();
                let row = db.provider(p.id).await.unwrap().unwrap();
                assert_eq!((row.base_url, row.responses), (url, flip));
            }
        }
    }

    #[tokio::test]
    async fn concurrent_route_replacements_leave_one_list_whole() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let p = db.insert_provider(&provider("p")).await.unwrap();
            let id = db
                .insert_model(&model("m"), &[route(p.id, "old")])
                .await
                .unwrap();
            let first = [route(p.id, "a1"), route(p.id, "a2"), route(p.id, "both")];
            let second = [route(p.id, "both"), route(p.id, "b1")];
            let changes = ModelChanges::default();
            let (a, b) = tokio::join!(
                db.update_model(id, &changes, Some(&first)),
                db.update_model(id, &changes, Some(&second)),
            );
            assert!(a.unwrap() && b.unwrap());
            let mut names: Vec<String> = db
                .routes_of(&[id])
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.upstream_model)
                .collect();
            names.sort();
            assert!(
                names == ["a1", "a2", "both"] || names == ["b1", "both"],
                "{names:?}"
            );
        }
    }

    /// A route added to a provider by another connection while the provider is being deleted:
    /// the deletion waits for it and then refuses, rather than failing on the foreign key.
    /// PostgreSQL only: SQLite's single writer cannot interleave the two.
    #[tokio::test]
    async fn deleting_a_provider_waits_for_a_route_being_added_to_it() {
        let db = crate::db::tests::postgres_db().await;
        let p = db.insert_provider(&provider("p")).await.unwrap();
        let m = db.insert_model(&model("m"), &[]).await.unwrap();
        let crate::db::Pool::Postgres(pool) = &db.writer else {
            unreachable!("a PostgreSQL database");
        };
        let mut other = pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO routes (model_id, provider_id, upstream_model, created_at, updated_at)
             VALUES ($1, $2, 'late', 0, 0)",
        )
        .bind(m)
        .bind(p.id)
        .execute(&mut *other)
        .await
        .unwrap();
        let mut deleting = std::pin::pin!(db.delete_provider(p.id, false));
        let waited = tokio::time::timeout(std::time::Duration::from_millis(300), &mut deleting);
        assert!(waited.await.is_err(), "the deletion waits for the insert");
        other.commit().await.unwrap();
        match deleting.await.unwrap() {
            ProviderDeletion::InUse(routes) => assert_eq!(routes[0].upstream_model, "late"),
            other => panic!("{other:?}"),
        }
        assert!(db.provider(p.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn names_are_case_sensitive_and_sort_by_their_bytes_on_both() {
        let (_dir, [sqlite, postgres]) = both_dbs().await;
        // A PostgreSQL database whose default collation is a language's (ICU English), as
        // `initdb` in most locales makes it: names must still sort as SQLite sorts them.
        let postgres_icu = icu_database().await;
        for db in [sqlite, postgres, postgres_icu] {
            let mut providers = Vec::new();
            for name in ["b", "B", "a", "_a"] {
                let p = db.insert_provider(&provider(name)).await.unwrap();
                db.insert_account(&NewAccountRow {
                    provider_id: p.id,
                    name: name.to_uppercase(),
                    api_key: vec![1],
                    api_key_hint: "…".into(),
                    weight: 1,
                    rpm: None,
                    enabled: true,
                })
                .await
                .unwrap();
                db.insert_model(&model(name), &[route(p.id, name)])
                    .await
                    .unwrap();
                providers.push(p.id);
            }
            assert_eq!(
                db.provider_id_by_name("B").await.unwrap(),
                Some(providers[1])
            );
            assert_eq!(db.provider_id_by_name("A").await.unwrap(), None);
            let rows = db.upstream_rows().await.unwrap();
            let models: Vec<&str> = rows.routes.iter().map(|r| r.model.as_str()).collect();
            assert_eq!(models, ["B", "_a", "a", "b"]);
            let accounts: Vec<&str> = rows.accounts.iter().map(|a| a.provider.as_str()).collect();
            assert_eq!(accounts, ["B", "_a", "a", "b"]);
        }
    }

    /// A fresh PostgreSQL database on the test cluster whose default collation is ICU's
    /// English rather than `C`, opened as llmgate opens one.
    async fn icu_database() -> Db {
        use sqlx::Connection;
        let cluster = crate::db::test_postgres::cluster();
        let name = format!("llmgate_icu_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
            .await
            .unwrap();
        sqlx::query(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'"
        ))
        .execute(&mut admin)
        .await
        .unwrap();
        admin.close().await.unwrap();
        Db::open(&cluster.url(&name)).await.unwrap()
    }

    #[tokio::test]
    async fn routes_of_reads_the_ids_it_is_given_and_no_others() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let p = db.insert_provider(&provider("p")).await.unwrap();
            let mut ids = Vec::new();
            for name in ["m1", "m2", "m3"] {
                let routes = [route(p.id, &format!("{name}-x")), route(p.id, name)];
                ids.push(db.insert_model(&model(name), &routes).await.unwrap());
            }
            assert!(db.routes_of(&[]).await.unwrap().is_empty());
            let routes = db.routes_of(&[ids[2], 999, ids[0]]).await.unwrap();
            let names: Vec<&str> = routes.iter().map(|r| r.upstream_model.as_str()).collect();
            // By model, then priority, then id.
            assert_eq!(names, ["m1-x", "m1", "m3-x", "m3"]);
        }
    }
}

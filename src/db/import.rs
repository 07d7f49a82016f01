//! Importing prepared config rows: one transaction that creates or updates what the file
//! names and removes what an earlier import created and the file no longer names. The rows
//! arrive prepared (keys hashed, credentials sealed) by `config_file::import`.

use super::admin::upsert_route;
use super::{Db, DbError, NewRouteRow, ProviderCloud, RouteOverridesRow, now};
use crate::vocab::{BudgetWindow, ProviderKind, Strategy};

/// Everything a config file declares, as rows ready to store.
#[derive(Debug, Default)]
pub struct ImportRows {
    pub providers: Vec<ImportProvider>,
    pub models: Vec<ImportModel>,
    pub keys: Vec<ImportKey>,
}

#[derive(Debug)]
pub struct ImportProvider {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    /// The upstream serves OpenAI's Responses API itself.
    pub responses: bool,
    pub cloud: ProviderCloud,
    pub accounts: Vec<ImportAccount>,
}

#[derive(Debug)]
pub struct ImportAccount {
    pub name: String,
    /// The credential sealed with the `SecretCipher`.
    pub sealed_api_key: Vec<u8>,
    pub api_key_hint: String,
    pub weight: u32,
    pub rpm: Option<u32>,
}

#[derive(Debug)]
pub struct ImportModel {
    pub name: String,
    pub strategy: Strategy,
    pub max_attempts: u32,
    pub timeout_ms: Option<i64>,
    pub routes: Vec<ImportRoute>,
}

#[derive(Debug)]
pub struct ImportRoute {
    /// The provider's name: one of the file's, or one already stored.
    pub provider: String,
    pub model: String,
    pub weight: u32,
    pub priority: u32,
    /// The file owns these too: a price or limit it no longer gives goes back to the catalog.
    pub overrides: RouteOverridesRow,
}

#[derive(Debug)]
pub struct ImportKey {
    pub name: String,
    /// `KeyHash::to_hex` of the plaintext.
    pub key_hash: String,
    /// `auth::display_prefix` of the plaintext.
    pub prefix: String,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget_tokens: Option<u64>,
    /// Nano-dollars.
    pub budget_nanos: Option<u64>,
    pub budget_window: Option<BudgetWindow>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

/// What an import changed, for the start-up log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub providers: usize,
    pub accounts: usize,
    pub models: usize,
    pub routes: usize,
    pub keys: usize,
    pub removed: u64,
}

impl Db {
    /// Applies `config` atomically: on any error nothing is changed.
    ///
    /// Every write is an upsert by name or a delete by what the file declares, so two
    /// processes importing the same file at once into one PostgreSQL database both succeed
    /// (the second waits on the rows the first wrote, then finds them there).
    pub async fn import_config(&self, config: &ImportRows) -> Result<ImportReport, DbError> {
        let now = now();
        let mut report = ImportReport::default();
        let dialect = self.dialect();
        let strings = |n| dialect.json_strings(n);
        let prune_accounts = format!(
            "DELETE FROM accounts WHERE provider_id = $1 AND source = 'config'
             AND name NOT IN ({})",
            strings(2)
        );
        let prune_routes = format!(
            "DELETE FROM routes WHERE model_id = $1 AND id NOT IN ({})",
            dialect.json_integers(2)
        );
        let prune_keys = format!(
            "DELETE FROM client_keys WHERE source = 'config' AND name NOT IN ({})",
            strings(1)
        );
        let prune_models = format!(
            "DELETE FROM models WHERE source = 'config' AND name NOT IN ({})",
            strings(1)
        );
        let prune_undeclared_accounts = format!(
            "DELETE FROM accounts WHERE source = 'config' AND provider_id IN
                 (SELECT id FROM providers WHERE name NOT IN ({}))",
            strings(1)
        );
        let orphans = format!(
            "SELECT p.name || ' (used by model ' || m.name || ')' FROM providers p
             JOIN routes r ON r.provider_id = p.id JOIN models m ON m.id = r.model_id
             WHERE p.source = 'config' AND p.name NOT IN ({})
             ORDER BY p.name{bytewise}, m.name{bytewise}",
            strings(1),
            bytewise = dialect.bytewise()
        );
        let prune_providers = format!(
            "DELETE FROM providers WHERE source = 'config' AND name NOT IN ({})",
            strings(1)
        );

        on_pool!(&self.writer, |pool| {
            let mut tx = pool.begin().await?;

            let mut provider_ids = Vec::with_capacity(config.providers.len());
            for provider in &config.providers {
                let provider_id: i64 = sqlx::query_scalar(
                    "INSERT INTO providers (name, kind, base_url, responses, source, created_at,
                         updated_at, headers, api_version, project, region)
                     VALUES ($1, $2, $3, $4, 'config', $5, $5, $6, $7, $8, $9)
                     ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,
                         base_url = excluded.base_url, responses = excluded.responses,
                         source = 'config', updated_at = excluded.updated_at,
                         headers = excluded.headers, api_version = excluded.api_version,
                         project = excluded.project, region = excluded.region
                     RETURNING id",
                )
                .bind(&provider.name)
                .bind(provider.kind.as_str())
                .bind(&provider.base_url)
                .bind(provider.responses)
                .bind(now)
                .bind(&provider.cloud.headers)
                .bind(&provider.cloud.api_version)
                .bind(&provider.cloud.project)
                .bind(&provider.cloud.region)
                .fetch_one(&mut *tx)
                .await?;
                provider_ids.push((provider.name.as_str(), provider_id));
                report.providers += 1;

                let mut names = Vec::with_capacity(provider.accounts.len());
                for account in &provider.accounts {
                    sqlx::query(
                        "INSERT INTO accounts (provider_id, name, api_key, api_key_hint, weight,
                             rpm, source, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, 'config', $7, $7)
                         ON CONFLICT (provider_id, name) DO UPDATE SET api_key = excluded.api_key,
                             api_key_hint = excluded.api_key_hint, weight = excluded.weight,
                             rpm = excluded.rpm, source = 'config',
                             updated_at = excluded.updated_at",
                    )
                    .bind(provider_id)
                    .bind(&account.name)
                    .bind(&account.sealed_api_key)
                    .bind(&account.api_key_hint)
                    .bind(i64::from(account.weight))
                    .bind(account.rpm.map(i64::from))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    names.push(account.name.as_str());
                    report.accounts += 1;
                }
                report.removed += sqlx::query(&prune_accounts)
                    .bind(provider_id)
                    .bind(json_list(&names))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }

            let mut model_names = Vec::with_capacity(config.models.len());
            for model in &config.models {
                let model_id: i64 = sqlx::query_scalar(
                    "INSERT INTO models (name, strategy, max_attempts, timeout_ms, source,
                         created_at, updated_at)
                     VALUES ($1, $2, $3, $4, 'config', $5, $5)
                     ON CONFLICT (name) DO UPDATE SET strategy = excluded.strategy,
                         max_attempts = excluded.max_attempts, timeout_ms = excluded.timeout_ms,
                         source = 'config', updated_at = excluded.updated_at
                     RETURNING id",
                )
                .bind(&model.name)
                .bind(model.strategy.as_str())
                .bind(i64::from(model.max_attempts))
                .bind(model.timeout_ms)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                model_names.push(model.name.as_str());
                report.models += 1;

                let mut route_ids = Vec::with_capacity(model.routes.len());
                for route in &model.routes {
                    let provider_id = match provider_ids
                        .iter()
                        .find(|(name, _)| *name == route.provider)
                    {
                        Some((_, id)) => *id,
                        None => sqlx::query_scalar("SELECT id FROM providers WHERE name = $1")
                            .bind(&route.provider)
                            .fetch_optional(&mut *tx)
                            .await?
                            .ok_or_else(|| {
                                DbError::NotFound(format!(
                                    "model '{}' routes to unknown provider '{}'",
                                    model.name, route.provider
                                ))
                            })?,
                    };
                    let row = NewRouteRow {
                        provider_id,
                        upstream_model: route.model.clone(),
                        weight: i64::from(route.weight),
                        priority: i64::from(route.priority),
                        enabled: true,
                        overrides: route.overrides,
                    };
                    route_ids.push(upsert_route!(tx, model_id, &row, now, true)?);
                    report.routes += 1;
                }
                // The file owns the whole route list of the models it declares.
                report.removed += sqlx::query(&prune_routes)
                    .bind(model_id)
                    .bind(serde_json::to_string(&route_ids).unwrap_or_else(|_| "[]".into()))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }

            let mut key_names = Vec::with_capacity(config.keys.len());
            for key in &config.keys {
                sqlx::query(
                    "INSERT INTO client_keys (name, key_hash, prefix, models, rpm, tpm,
                         budget_tokens, budget_window, expires_at, source, created_at, updated_at,
                         budget_nanos)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'config', $10, $10, $11)
                     ON CONFLICT (name) DO UPDATE SET key_hash = excluded.key_hash,
                         prefix = excluded.prefix, models = excluded.models, rpm = excluded.rpm,
                         tpm = excluded.tpm, budget_tokens = excluded.budget_tokens,
                         budget_nanos = excluded.budget_nanos,
                         budget_window = excluded.budget_window, expires_at = excluded.expires_at,
                         source = 'config', updated_at = excluded.updated_at",
                )
                .bind(&key.name)
                .bind(&key.key_hash)
                .bind(&key.prefix)
                .bind(key.models.as_ref().map(|models| json_list(models)))
                .bind(key.rpm.map(i64::from))
                .bind(key.tpm.map(i64::from))
                .bind(
                    key.budget_tokens
                        .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                )
                .bind(key.budget_window.map(|w| w.as_str()))
                .bind(key.expires_at)
                .bind(now)
                .bind(
                    key.budget_nanos
                        .map(|nanos| i64::try_from(nanos).unwrap_or(i64::MAX)),
                )
                .execute(&mut *tx)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(db) if db.is_unique_violation() => {
                        DbError::Conflict(format!(
                            "key '{}' has the same plaintext as another key; every key must be \
                             unique",
                            key.name
                        ))
                    }
                    other => other.into(),
                })?;
                key_names.push(key.name.as_str());
                report.keys += 1;
            }

            // Remove what earlier imports created and this file no longer names.
            report.removed += sqlx::query(&prune_keys)
                .bind(json_list(&key_names))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            report.removed += sqlx::query(&prune_models)
                .bind(json_list(&model_names))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let declared = json_list(
                &provider_ids
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>(),
            );
            report.removed += sqlx::query(&prune_undeclared_accounts)
                .bind(&declared)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let orphaned: Vec<String> = sqlx::query_scalar(&orphans)
                .bind(&declared)
                .fetch_all(&mut *tx)
                .await?;
            if !orphaned.is_empty() {
                return Err(undeclared_in_use(&orphaned.join(", ")));
            }
            // A route added by another connection since the check above refuses the delete
            // (the routes' foreign key restricts it): the same conflict, found later.
            report.removed += sqlx::query(&prune_providers)
                .bind(&declared)
                .execute(&mut *tx)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                        undeclared_in_use("routes added meanwhile")
                    }
                    other => other.into(),
                })?
                .rows_affected();

            tx.commit().await?;
            Ok(report)
        })
    }
}

/// The conflict of a file that drops providers which routes made outside it still use.
fn undeclared_in_use(uses: &str) -> DbError {
    DbError::Conflict(format!(
        "the file no longer declares providers that routes created outside it still use: {uses}; \
         keep them in the file or delete those routes first"
    ))
}

fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".into())
}

impl Db {
    /// Registers the `--demo` objects: provider `demo` at `base_url`, model `demo-echo`, and a
    /// key named `demo` whose hash is `key_hash` (a fresh key every start, since a plaintext is
    /// shown once).
    pub async fn register_demo(
        &self,
        base_url: &str,
        key_hash: &str,
        key_prefix: &str,
    ) -> Result<(), DbError> {
        let now = now();
        on_pool!(&self.writer, |pool| {
            let mut tx = pool.begin().await?;
            let provider_id: i64 = sqlx::query_scalar(
                "INSERT INTO providers (name, kind, base_url, source, created_at, updated_at)
                 VALUES ('demo', 'openai', $1, 'demo', $2, $2)
                 ON CONFLICT (name) DO UPDATE SET base_url = excluded.base_url,
                     updated_at = excluded.updated_at
                 RETURNING id",
            )
            .bind(base_url)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let model_id: i64 = sqlx::query_scalar(
                "INSERT INTO models (name, source, created_at, updated_at)
                 VALUES ('demo-echo', 'demo', $1, $1)
                 ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at
                 RETURNING id",
            )
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO routes (model_id, provider_id, upstream_model, created_at, updated_at)
                 VALUES ($1, $2, 'demo-echo', $3, $3)
                 ON CONFLICT (model_id, provider_id, upstream_model) DO NOTHING",
            )
            .bind(model_id)
            .bind(provider_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO client_keys (name, key_hash, prefix, source, created_at, updated_at)
                 VALUES ('demo', $1, $2, 'demo', $3, $3)
                 ON CONFLICT (name) DO UPDATE SET key_hash = excluded.key_hash,
                     prefix = excluded.prefix, revoked_at = NULL, enabled = TRUE,
                     updated_at = excluded.updated_at",
            )
            .bind(key_hash)
            .bind(key_prefix)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file;
    use crate::db::tests::both_dbs;
    use crate::secret::SecretCipher;

    /// The rows `config_file` prepares from `text`.
    fn config(text: &str, cipher: &SecretCipher) -> ImportRows {
        config_file::import_rows(&config_file::parse(text, &|_| None).unwrap(), cipher)
    }

    const FULL: &str = r#"
[[providers]]
name = "p1"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
  [[providers.accounts]]
  name = "a1"
  api_key = "sk-first-account-secret"
  [[providers.accounts]]
  name = "a2"
  api_key = "sk-second-account-secret"

[[providers]]
name = "p2"
kind = "openai"
base_url = "http://127.0.0.1:2/v1"

[[models]]
name = "m1"
  [[models.routes]]
  provider = "p1"
  model = "up-1"
  [[models.routes]]
  provider = "p2"
  model = "up-2"
  priority = 1

[[models]]
name = "m2"
  [[models.routes]]
  provider = "p2"
  model = "up-3"

[[keys]]
name = "k1"
key = "sk-config-key-0123456789abcdefghij"
"#;

    const SMALLER: &str = r#"
[[providers]]
name = "p1"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
  [[providers.accounts]]
  name = "a1"
  api_key = "sk-first-account-rotated"

[[models]]
name = "m1"
max_attempts = 2
  [[models.routes]]
  provider = "p1"
  model = "up-1"
"#;

    async fn names(db: &Db, table: &str) -> Vec<String> {
        let sql = match table {
            "providers" => "SELECT name FROM providers ORDER BY name",
            "accounts" => "SELECT name FROM accounts ORDER BY name",
            "models" => "SELECT name FROM models ORDER BY name",
            "routes" => "SELECT upstream_model FROM routes ORDER BY upstream_model",
            _ => "SELECT name FROM client_keys ORDER BY name",
        };
        on_pool!(&db.writer, |pool| sqlx::query_scalar(sql)
            .fetch_all(pool)
            .await
            .unwrap())
    }

    /// The ids of the routes to `upstream`.
    async fn route_ids(db: &Db, upstream: &str) -> Vec<i64> {
        on_pool!(&db.writer, |pool| sqlx::query_scalar(
            "SELECT id FROM routes WHERE upstream_model = $1 ORDER BY id"
        )
        .bind(upstream)
        .fetch_all(pool)
        .await
        .unwrap())
    }

    /// Runs `sql` (one or more statements, no arguments) as another writer would.
    async fn execute(db: &Db, sql: &'static str) {
        on_pool!(&db.writer, |pool| {
            sqlx::raw_sql(sql).execute(pool).await.unwrap();
        });
    }

    #[tokio::test]
    async fn imports_update_by_name_and_remove_only_what_an_import_created() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let cipher = SecretCipher::new(&SecretCipher::generate_key());
            let report = db.import_config(&config(FULL, &cipher)).await.unwrap();
            assert_eq!(
                (
                    report.providers,
                    report.accounts,
                    report.models,
                    report.routes,
                    report.keys
                ),
                (2, 2, 2, 3, 1)
            );
            let first_ids = route_ids(&db, "up-1").await;

            // Objects created another way must survive any import.
            execute(&db, "INSERT INTO models (name, source, created_at, updated_at) VALUES ('api-model', 'api', 0, 0)").await;
            crate::auth::create_key(
                &db,
                crate::auth::NewKey {
                    name: "api-key".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();

            // Importing the same file again changes nothing structurally.
            db.import_config(&config(FULL, &cipher)).await.unwrap();
            assert_eq!(names(&db, "routes").await, ["up-1", "up-2", "up-3"]);

            let report = db.import_config(&config(SMALLER, &cipher)).await.unwrap();
            assert!(report.removed > 0);
            assert_eq!(names(&db, "providers").await, ["p1"]);
            assert_eq!(names(&db, "accounts").await, ["a1"]);
            assert_eq!(names(&db, "models").await, ["api-model", "m1"]);
            assert_eq!(names(&db, "routes").await, ["up-1"]);
            assert_eq!(names(&db, "keys").await, ["api-key"]);
            // Updated in place: same route id, new values.
            assert_eq!(route_ids(&db, "up-1").await, first_ids);
            let rows = db.load_catalog().await.unwrap();
            assert_eq!(
                rows.models
                    .iter()
                    .find(|m| m.name == "m1")
                    .unwrap()
                    .max_attempts,
                2
            );
            assert_eq!(rows.providers[0].base_url, "http://127.0.0.1:9/v1");
            let key = cipher.open(&rows.accounts[0].api_key).unwrap();
            assert_eq!(key.expose(), "sk-first-account-rotated");
        }
    }

    #[tokio::test]
    async fn a_failing_import_changes_nothing() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let cipher = SecretCipher::new(&SecretCipher::generate_key());
            db.import_config(&config(FULL, &cipher)).await.unwrap();
            // An API-created route keeps provider p2 in use; a file dropping p2 must fail whole.
            execute(
            &db,
            "INSERT INTO models (name, source, created_at, updated_at) VALUES ('api-model', 'api', 0, 0);
             INSERT INTO routes (model_id, provider_id, upstream_model, created_at, updated_at)
             SELECT m.id, p.id, 'x', 0, 0 FROM models m, providers p WHERE m.name = 'api-model' AND p.name = 'p2';",
        )
        .await;
            let error = db
                .import_config(&config(SMALLER, &cipher))
                .await
                .unwrap_err();
            assert!(error.to_string().contains("p2"), "{error}");
            assert_eq!(names(&db, "providers").await, ["p1", "p2"]);
            assert_eq!(names(&db, "models").await, ["api-model", "m1", "m2"]);
            assert_eq!(names(&db, "keys").await, ["k1"]);
        }
    }

    #[tokio::test]
    async fn a_reimport_keeps_an_operators_route_switch() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let cipher = SecretCipher::new(&SecretCipher::generate_key());
            db.import_config(&config(FULL, &cipher)).await.unwrap();
            let route = route_ids(&db, "up-1").await[0];
            let off = crate::db::RouteChanges {
                enabled: Some(false),
                ..Default::default()
            };
            db.update_route(route, &off).await.unwrap().unwrap();
            db.import_config(&config(FULL, &cipher)).await.unwrap();
            assert!(!db.route(route).await.unwrap().unwrap().enabled);
            let others = db.load_catalog().await.unwrap().routes;
            assert!(others.iter().filter(|r| r.id != route).all(|r| r.enabled));
        }
    }

    #[tokio::test]
    async fn names_needing_json_escapes_are_matched_exactly() {
        const ODD: &str = r#"
[[providers]]
name = "p \"1\""
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
  [[providers.accounts]]
  name = "é\\ü"
  api_key = "sk-first-account-secret"
  [[providers.accounts]]
  name = "A1"
  api_key = "sk-second-account-secret"

[[keys]]
name = "key 'one'"
key = "sk-config-key-0123456789abcdefghij"
"#;
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let cipher = SecretCipher::new(&SecretCipher::generate_key());
            db.import_config(&config(ODD, &cipher)).await.unwrap();
            // The same file again: every name is found in the file's list, nothing goes.
            let report = db.import_config(&config(ODD, &cipher)).await.unwrap();
            assert_eq!(report.removed, 0);
            assert_eq!(names(&db, "providers").await, [r#"p "1""#]);
            assert_eq!(names(&db, "accounts").await, ["A1", r"é\ü"]);
            assert_eq!(names(&db, "keys").await, ["key 'one'"]);
            // Names compare case and all: `a1` is not `A1`.
            let renamed = ODD.replace("\"A1\"", "\"a1\"");
            let report = db.import_config(&config(&renamed, &cipher)).await.unwrap();
            assert_eq!(report.removed, 1);
            assert_eq!(names(&db, "accounts").await, ["a1", r"é\ü"]);
        }
    }

    #[tokio::test]
    async fn two_processes_importing_one_file_at_once_both_succeed() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let cipher = SecretCipher::new(&SecretCipher::generate_key());
            let rows = config(FULL, &cipher);
            let (a, b) = tokio::join!(db.import_config(&rows), db.import_config(&rows));
            a.unwrap();
            b.unwrap();
            assert_eq!(names(&db, "routes").await, ["up-1", "up-2", "up-3"]);
            assert_eq!(names(&db, "accounts").await, ["a1", "a2"]);
        }
    }

    #[tokio::test]
    async fn the_demo_key_is_switched_back_on_at_each_start() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            db.register_demo("http://127.0.0.1:1/v1", "h1", "sk-lg-1")
                .await
                .unwrap();
            let key = db.find_key("demo").await.unwrap().unwrap();
            let off = crate::db::KeyChanges {
                enabled: Some(false),
                ..Default::default()
            };
            db.update_key(key.id, &off).await.unwrap().unwrap();
            db.revoke_key(key.id).await.unwrap();
            db.register_demo("http://127.0.0.1:2/v1", "h2", "sk-lg-2")
                .await
                .unwrap();
            let again = db.find_key("demo").await.unwrap().unwrap();
            assert_eq!((again.id, again.key_hash.as_str()), (key.id, "h2"));
            assert!(again.enabled && again.revoked_at.is_none());
            let catalog = db.load_catalog().await.unwrap();
            assert_eq!(catalog.providers[0].base_url, "http://127.0.0.1:2/v1");
            assert_eq!(catalog.routes.len(), 1);
        }
    }
}

//! Preparing a config file for the database: account credentials sealed with the
//! `SecretCipher`, client keys hashed, durations and times in the units stored. `db` then
//! writes the rows in one transaction.

use crate::auth::{KeyHash, display_prefix};
use crate::db::{
    Db, DbError, ImportAccount, ImportKey, ImportModel, ImportProvider, ImportReport, ImportRoute,
    ImportRows, RouteOverridesRow,
};
use crate::pricing::{Price, RouteOverrides};
use crate::secret::SecretCipher;

use super::ConfigFile;

/// Applies `config` atomically: on any error nothing is changed.
pub async fn import(
    db: &Db,
    config: &ConfigFile,
    cipher: &SecretCipher,
) -> Result<ImportReport, DbError> {
    db.import_config(&import_rows(config, cipher)).await
}

/// What the admin API shows of a credential: a service account by its `client_email` (as the
/// admin API shows it), AWS credentials by their access key id, an API key by its ends.
fn credential_hint(credential: &crate::secret::Secret) -> String {
    let text = credential.expose();
    if text.trim_start().starts_with('{')
        && let Ok(email) = crate::providers::check_service_account(text)
    {
        return email;
    }
    if let Some(key_id) = crate::providers::aws_access_key_id(text) {
        return key_id;
    }
    credential.hint()
}

/// The rows `config` stores: credentials sealed with `cipher`, key plaintexts hashed.
pub fn import_rows(config: &ConfigFile, cipher: &SecretCipher) -> ImportRows {
    ImportRows {
        providers: config
            .providers
            .iter()
            .map(|provider| ImportProvider {
                name: provider.name.clone(),
                kind: provider.kind,
                base_url: provider.base_url.clone(),
                responses: provider.responses,
                cloud: provider.cloud.clone(),
                accounts: provider
                    .accounts
                    .iter()
                    .map(|account| ImportAccount {
                        name: account.name.clone(),
                        sealed_api_key: cipher.seal(account.api_key.expose()),
                        api_key_hint: credential_hint(&account.api_key),
                        weight: account.weight,
                        rpm: account.rpm,
                    })
                    .collect(),
            })
            .collect(),
        models: config
            .models
            .iter()
            .map(|model| ImportModel {
                name: model.name.clone(),
                strategy: model.strategy,
                max_attempts: model.max_attempts,
                timeout_ms: model
                    .timeout
                    .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
                routes: model
                    .routes
                    .iter()
                    .map(|route| ImportRoute {
                        provider: route.provider.clone(),
                        model: route.model.clone(),
                        weight: route.weight,
                        priority: route.priority,
                        overrides: overrides_row(&route.overrides),
                    })
                    .collect(),
            })
            .collect(),
        keys: config
            .keys
            .iter()
            .map(|key| ImportKey {
                name: key.name.clone(),
                key_hash: KeyHash::of(key.key.expose()).to_hex(),
                prefix: display_prefix(key.key.expose()),
                models: key.models.clone(),
                rpm: key.rpm,
                tpm: key.tpm,
                budget_tokens: key.budget_tokens,
                budget_nanos: key.budget_usd.map(|budget| budget.0),
                budget_window: key.budget_window,
                expires_at: key.expires_at.map(|t| t.timestamp()),
            })
            .collect(),
    }
}

/// A route's overrides as the database stores them: prices in micro-dollars per million
/// tokens, limits in tokens.
fn overrides_row(overrides: &RouteOverrides) -> RouteOverridesRow {
    let int = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let price = |price: Option<Price>| price.map(|price| int(price.0));
    RouteOverridesRow {
        input_price_micros: price(overrides.input),
        output_price_micros: price(overrides.output),
        cached_input_price_micros: price(overrides.cached_input),
        cache_write_price_micros: price(overrides.cache_write),
        max_output_tokens: overrides.max_output_tokens.map(int),
        context_window: overrides.context_window.map(int),
    }
}

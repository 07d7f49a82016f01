//! Models and their routes: the public model names and where their requests may go.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Admin, AdminError, List, check_name, check_positive, nullable, time};
use crate::db::{
    ModelChanges, ModelRecord, NewModelRow, NewRouteRow, OverrideChanges, Page, RouteChanges,
    RouteOverridesRow, RouteRecord,
};
use crate::pricing::{Price, RouteOverrides, RouteTerms};
use crate::settings::parse_duration;
use crate::vocab::Strategy;

/// Upstream attempts per request, failover included: the config file's bounds.
const MAX_ATTEMPTS: u32 = 10;
const DEFAULT_MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCreate {
    pub name: String,
    pub strategy: Option<String>,
    pub max_attempts: Option<u32>,
    /// A duration like `120s`.
    pub timeout: Option<String>,
    pub routes: Vec<RouteIn>,
}

/// A route as written in a model: the provider's name and the upstream's own model name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteIn {
    pub provider: String,
    pub model: String,
    pub weight: Option<u32>,
    pub priority: Option<u32>,
    pub enabled: Option<bool>,
    /// The route's own prices (USD per million tokens) and limits (tokens), as the config
    /// file writes them; an absent one is left to llmgate's built-in catalog.
    pub input_price: Option<f64>,
    pub output_price: Option<f64>,
    pub cached_input_price: Option<f64>,
    /// Anthropic's cache writes (5-minute), where they cost more than an uncached token.
    pub cache_write_price: Option<f64>,
    pub max_output_tokens: Option<u64>,
    pub context_window: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPatch {
    pub name: Option<String>,
    pub strategy: Option<String>,
    pub max_attempts: Option<u32>,
    /// `null` removes the model's own timeout.
    #[serde(default, deserialize_with = "nullable")]
    pub timeout: Option<Option<String>>,
    /// Replaces the whole route list.
    pub routes: Option<Vec<RouteIn>>,
}

/// `PATCH /admin/routes/{id}`: switch, re-weight or re-prioritise one route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePatch {
    pub weight: Option<u32>,
    pub priority: Option<u32>,
    pub enabled: Option<bool>,
    /// `null` hands a figure back to the built-in catalog.
    #[serde(default, deserialize_with = "nullable")]
    pub input_price: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub output_price: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub cached_input_price: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub cache_write_price: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_output_tokens: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub context_window: Option<Option<u64>>,
}

#[derive(Debug, Serialize)]
pub struct ModelView {
    pub id: i64,
    pub name: String,
    pub strategy: String,
    pub max_attempts: i64,
    pub timeout: Option<String>,
    pub routes: Vec<RouteView>,
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct RouteView {
    pub id: i64,
    pub model_id: i64,
    pub provider: String,
    /// The upstream's own name for the model (the config file's `model`).
    pub model: String,
    pub weight: i64,
    pub priority: i64,
    pub enabled: bool,
    /// The route's own prices and limits (`null`: the built-in catalog's).
    #[serde(flatten)]
    pub overrides: RouteTermsView,
    /// What is in effect: each figure from the route, else the built-in catalog, else `null`.
    pub effective: RouteTermsView,
    /// False when the route has no input and output price anywhere: it costs 0.
    pub priced: bool,
}

/// Prices in USD per million tokens and limits in tokens, under the config file's names.
#[derive(Debug, Serialize, PartialEq)]
pub struct RouteTermsView {
    pub input_price: Option<f64>,
    pub output_price: Option<f64>,
    pub cached_input_price: Option<f64>,
    pub cache_write_price: Option<f64>,
    pub max_output_tokens: Option<u64>,
    pub context_window: Option<u64>,
}

impl RouteTermsView {
    fn of(figures: &RouteOverrides) -> Self {
        let usd = |price: Option<Price>| price.map(Price::usd_per_million);
        Self {
            input_price: usd(figures.input),
            output_price: usd(figures.output),
            cached_input_price: usd(figures.cached_input),
            cache_write_price: usd(figures.cache_write),
            max_output_tokens: figures.max_output_tokens,
            context_window: figures.context_window,
        }
    }
}

/// A stored route's prices and limits in effect, as the routing catalog resolves them.
pub fn route_terms(row: &RouteRecord) -> RouteTerms {
    RouteTerms::resolve(
        &row.upstream_model,
        &crate::routing::overrides(&row.overrides),
    )
}

impl From<RouteRecord> for RouteView {
    fn from(row: RouteRecord) -> Self {
        let terms = route_terms(&row);
        Self {
            id: row.id,
            model_id: row.model_id,
            provider: row.provider,
            model: row.upstream_model,
            weight: row.weight,
            priority: row.priority,
            enabled: row.enabled,
            overrides: RouteTermsView::of(&crate::routing::overrides(&row.overrides)),
            effective: RouteTermsView::of(&terms.figures()),
            priced: terms.prices.is_some(),
        }
    }
}

/// A price from the API, in micro-dollars per million tokens as stored; `field` names it in
/// the error.
fn check_price(field: &str, usd: f64) -> Result<i64, AdminError> {
    let price = Price::from_usd(usd).map_err(|why| AdminError::invalid(field, why))?;
    Ok(i64::try_from(price.0).unwrap_or(i64::MAX))
}

/// A token limit from the API: at least 1.
fn check_tokens(field: &str, tokens: u64) -> Result<i64, AdminError> {
    if tokens == 0 {
        return Err(AdminError::invalid(field, "must be at least 1 token"));
    }
    Ok(i64::try_from(tokens).unwrap_or(i64::MAX))
}

impl RouteIn {
    /// The overrides as stored, each checked; `prefix` is the route's place (`routes[0].`).
    fn check_terms(&self, prefix: &str) -> Result<RouteOverridesRow, AdminError> {
        let price = |name: &str, usd: Option<f64>| {
            usd.map(|usd| check_price(&format!("{prefix}{name}"), usd))
                .transpose()
        };
        let tokens = |name: &str, count: Option<u64>| {
            count
                .map(|count| check_tokens(&format!("{prefix}{name}"), count))
                .transpose()
        };
        Ok(RouteOverridesRow {
            input_price_micros: price("input_price", self.input_price)?,
            output_price_micros: price("output_price", self.output_price)?,
            cached_input_price_micros: price("cached_input_price", self.cached_input_price)?,
            cache_write_price_micros: price("cache_write_price", self.cache_write_price)?,
            max_output_tokens: tokens("max_output_tokens", self.max_output_tokens)?,
            context_window: tokens("context_window", self.context_window)?,
        })
    }
}

fn model_view(row: ModelRecord, routes: Vec<RouteView>) -> ModelView {
    ModelView {
        id: row.id,
        name: row.name,
        strategy: row.strategy,
        max_attempts: row.max_attempts,
        timeout: row
            .timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()),
        routes,
        source: row.source,
        created_at: time(row.created_at),
        updated_at: time(row.updated_at),
    }
}

fn check_strategy(strategy: &str) -> Result<String, AdminError> {
    Strategy::parse(strategy.trim())
        .map(|s| s.as_str().to_owned())
        .ok_or_else(|| {
            AdminError::invalid(
                "strategy",
                format!(
                    "unknown strategy '{strategy}'; expected one of: {}",
                    Strategy::names()
                ),
            )
        })
}

fn check_max_attempts(n: u32) -> Result<i64, AdminError> {
    if !(1..=MAX_ATTEMPTS).contains(&n) {
        return Err(AdminError::invalid(
            "max_attempts",
            format!("must be from 1 to {MAX_ATTEMPTS}"),
        ));
    }
    Ok(i64::from(n))
}

fn check_timeout(text: &str) -> Result<i64, AdminError> {
    match parse_duration(text) {
        Ok(duration) if duration.is_zero() => {
            Err(AdminError::invalid("timeout", "must be greater than zero"))
        }
        Ok(duration) => Ok(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)),
        Err(message) => Err(AdminError::invalid("timeout", message)),
    }
}

fn not_found(id: i64) -> AdminError {
    AdminError::NotFound(format!("no model with id {id}"))
}

impl Admin {
    pub async fn list_models(&self, page: Page) -> Result<List<ModelView>, AdminError> {
        let page = self.db.list_models(page).await?;
        let ids: Vec<i64> = page.rows.iter().map(|m| m.id).collect();
        let mut routes: HashMap<i64, Vec<RouteView>> = HashMap::new();
        for route in self.db.routes_of(&ids).await? {
            routes.entry(route.model_id).or_default().push(route.into());
        }
        Ok(List {
            data: page
                .rows
                .into_iter()
                .map(|row| {
                    let routes = routes.remove(&row.id).unwrap_or_default();
                    model_view(row, routes)
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn model(&self, id: i64) -> Result<ModelView, AdminError> {
        let row = self.db.model(id).await?.ok_or_else(|| not_found(id))?;
        let routes = self.db.routes_of(&[id]).await?;
        Ok(model_view(
            row,
            routes.into_iter().map(RouteView::from).collect(),
        ))
    }

    /// Checks a route list and resolves its provider names. A model needs at least one route,
    /// and no two routes may go to the same provider and upstream model.
    async fn check_routes(&self, routes: &[RouteIn]) -> Result<Vec<NewRouteRow>, AdminError> {
        if routes.is_empty() {
            return Err(AdminError::invalid(
                "routes",
                "must list at least one route, like {\"provider\": \"openai\", \"model\": \"gpt-4o-mini\"}",
            ));
        }
        let mut rows: Vec<NewRouteRow> = Vec::with_capacity(routes.len());
        for (i, route) in routes.iter().enumerate() {
            let field = |name: &str| format!("routes[{i}].{name}");
            let provider = check_name(&field("provider"), &route.provider)?;
            let upstream_model = check_name(&field("model"), &route.model)?;
            let weight = check_positive(&field("weight"), route.weight.unwrap_or(1))?;
            let provider_id = self.db.provider_id_by_name(&provider).await?.ok_or_else(|| {
                AdminError::invalid(
                    field("provider"),
                    format!(
                        "no provider named '{provider}'; create it first with POST /admin/providers"
                    ),
                )
            })?;
            if rows
                .iter()
                .any(|r| r.provider_id == provider_id && r.upstream_model == upstream_model)
            {
                return Err(AdminError::invalid(
                    format!("routes[{i}]"),
                    format!(
                        "another route of this model already goes to provider '{provider}', model '{upstream_model}'"
                    ),
                ));
            }
            rows.push(NewRouteRow {
                provider_id,
                upstream_model,
                weight,
                priority: i64::from(route.priority.unwrap_or(0)),
                enabled: route.enabled.unwrap_or(true),
                overrides: route.check_terms(&format!("routes[{i}]."))?,
            });
        }
        Ok(rows)
    }

    pub async fn create_model(&self, new: ModelCreate) -> Result<ModelView, AdminError> {
        let row = NewModelRow {
            name: check_name("name", &new.name)?,
            strategy: match &new.strategy {
                Some(strategy) => check_strategy(strategy)?,
                None => Strategy::default().as_str().to_owned(),
            },
            max_attempts: check_max_attempts(new.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))?,
            timeout_ms: new.timeout.as_deref().map(check_timeout).transpose()?,
        };
        let routes = self.check_routes(&new.routes).await?;
        let id = self.db.insert_model(&row, &routes).await?;
        self.changed("model created", id);
        self.model(id).await
    }

    /// Changes a model; `routes`, when given, replaces its whole route list.
    pub async fn update_model(&self, id: i64, patch: ModelPatch) -> Result<ModelView, AdminError> {
        let changes = ModelChanges {
            name: patch
                .name
                .map(|name| check_name("name", &name))
                .transpose()?,
            strategy: patch.strategy.map(|s| check_strategy(&s)).transpose()?,
            max_attempts: patch.max_attempts.map(check_max_attempts).transpose()?,
            timeout_ms: patch
                .timeout
                .map(|timeout| timeout.as_deref().map(check_timeout).transpose())
                .transpose()?,
        };
        let routes = match &patch.routes {
            Some(routes) => Some(self.check_routes(routes).await?),
            None => None,
        };
        if !self
            .db
            .update_model(id, &changes, routes.as_deref())
            .await?
        {
            return Err(not_found(id));
        }
        self.changed("model updated", id);
        self.model(id).await
    }

    pub async fn delete_model(&self, id: i64) -> Result<super::Deleted, AdminError> {
        if !self.db.delete_model(id).await? {
            return Err(not_found(id));
        }
        self.changed("model deleted", id);
        Ok(super::Deleted { id, deleted: true })
    }

    pub async fn route(&self, id: i64) -> Result<RouteView, AdminError> {
        self.db
            .route(id)
            .await?
            .map(RouteView::from)
            .ok_or_else(|| AdminError::NotFound(format!("no route with id {id}")))
    }

    pub async fn update_route(&self, id: i64, patch: RoutePatch) -> Result<RouteView, AdminError> {
        let changes = RouteChanges {
            weight: patch
                .weight
                .map(|w| check_positive("weight", w))
                .transpose()?,
            priority: patch.priority.map(i64::from),
            enabled: patch.enabled,
            overrides: OverrideChanges {
                input_price_micros: nullable_price("input_price", patch.input_price)?,
                output_price_micros: nullable_price("output_price", patch.output_price)?,
                cached_input_price_micros: nullable_price(
                    "cached_input_price",
                    patch.cached_input_price,
                )?,
                cache_write_price_micros: nullable_price(
                    "cache_write_price",
                    patch.cache_write_price,
                )?,
                max_output_tokens: nullable_tokens("max_output_tokens", patch.max_output_tokens)?,
                context_window: nullable_tokens("context_window", patch.context_window)?,
            },
        };
        let route = self
            .db
            .update_route(id, &changes)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no route with id {id}")))?;
        self.changed("route updated", id);
        Ok(route.into())
    }
}

/// A patched price: absent, cleared (`null`), or checked.
fn nullable_price(
    field: &str,
    patch: Option<Option<f64>>,
) -> Result<Option<Option<i64>>, AdminError> {
    patch
        .map(|usd| usd.map(|usd| check_price(field, usd)).transpose())
        .transpose()
}

/// A patched token limit: absent, cleared (`null`), or checked.
fn nullable_tokens(
    field: &str,
    patch: Option<Option<u64>>,
) -> Result<Option<Option<i64>>, AdminError> {
    patch
        .map(|count| count.map(|count| check_tokens(field, count)).transpose())
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_settings_are_checked_like_the_config_file() {
        assert!(check_strategy("least_busy").is_ok());
        assert!(check_strategy("random").is_err());
        assert!(check_max_attempts(0).is_err());
        assert!(check_max_attempts(11).is_err());
        assert_eq!(check_max_attempts(10).unwrap(), 10);
        assert_eq!(check_timeout("2m").unwrap(), 120_000);
        assert!(check_timeout("0s").is_err());
        assert!(check_timeout("soon").is_err());
    }
}

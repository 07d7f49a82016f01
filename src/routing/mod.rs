//! The `Catalog`: an immutable snapshot of providers, accounts, models and routes, and the pick
//! of an upstream target for a request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::Rng;

use crate::db::CatalogRows;
use crate::secret::{Secret, SecretCipher};

/// The dialect an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI's API, or any API compatible with it (vLLM, Ollama, Together, Groq, …).
    OpenAi,
}

impl ProviderKind {
    pub const ALL: &'static [ProviderKind] = &[ProviderKind::OpenAi];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.as_str() == name)
    }

    /// The accepted names, for error messages.
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How a model spreads requests over the routes of one priority tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    #[default]
    Weighted,
    LeastBusy,
    Latency,
}

impl Strategy {
    pub const ALL: &'static [Strategy] =
        &[Strategy::Weighted, Strategy::LeastBusy, Strategy::Latency];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weighted => "weighted",
            Self::LeastBusy => "least_busy",
            Self::Latency => "latency",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == name)
    }

    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An upstream API endpoint and its pool of credentials.
#[derive(Debug)]
pub struct Provider {
    pub id: i64,
    pub name: String,
    pub kind: ProviderKind,
    /// Base URL without a trailing slash; endpoint paths are appended to it.
    pub base_url: String,
    /// Enabled accounts only. An empty pool means the upstream needs no credential.
    pub accounts: Vec<Account>,
}

/// One upstream credential of a provider.
#[derive(Debug)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub api_key: Secret,
    pub weight: u32,
    pub rpm: Option<u32>,
}

/// Where requests for a public model may go: a provider and the upstream's own model name.
#[derive(Debug)]
pub struct Route {
    pub id: i64,
    pub provider: Arc<Provider>,
    pub upstream_model: String,
    pub weight: u32,
    pub priority: u32,
}

/// A public model as clients name it, with its enabled routes sorted by priority.
#[derive(Debug)]
pub struct Model {
    pub id: i64,
    pub name: String,
    pub strategy: Strategy,
    pub max_attempts: u32,
    pub timeout: Option<Duration>,
    pub created_at: i64,
    pub routes: Vec<Route>,
}

/// The upstream chosen for one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub route: &'a Route,
    pub account: Option<&'a Account>,
}

/// The routing view of the whole configuration at one moment. Built once per change and
/// shared read-only; requests never see a half-applied change.
#[derive(Debug, Default)]
pub struct Catalog {
    models: HashMap<String, Arc<Model>>,
    /// Model names in display order, for `GET /v1/models`.
    names: Vec<String>,
}

impl Catalog {
    pub fn new(models: Vec<Model>) -> Self {
        let mut names: Vec<String> = models.iter().map(|m| m.name.clone()).collect();
        names.sort();
        let models = models
            .into_iter()
            .map(|mut model| {
                model.routes.sort_by_key(|route| route.priority);
                (model.name.clone(), Arc::new(model))
            })
            .collect();
        Self { models, names }
    }

    pub fn model(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.get(name)
    }

    /// All models, sorted by name.
    pub fn models(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.names.iter().filter_map(|name| self.models.get(name))
    }
}

impl Model {
    /// Picks a target among the routes of the first priority tier: a route by weight, then an
    /// account of its provider by weight. `None` when the model has no enabled route.
    pub fn pick(&self) -> Option<Target<'_>> {
        let first = self.routes.first()?;
        let tier: Vec<&Route> = self
            .routes
            .iter()
            .take_while(|route| route.priority == first.priority)
            .collect();
        let route = *pick_weighted(&tier, |route| route.weight)?;
        let account = pick_weighted(&route.provider.accounts, |account| account.weight);
        Some(Target { route, account })
    }
}

/// A random pick proportional to weight. Items of weight 0 are never picked unless all are 0,
/// in which case the pick is uniform.
pub fn pick_weighted<T>(items: &[T], weight: impl Fn(&T) -> u32) -> Option<&T> {
    let total: u64 = items.iter().map(|item| u64::from(weight(item))).sum();
    if total == 0 {
        return match items.len() {
            0 => None,
            len => items.get(rand::rng().random_range(0..len)),
        };
    }
    let mut ticket = rand::rng().random_range(0..total);
    for item in items {
        let w = u64::from(weight(item));
        if ticket < w {
            return Some(item);
        }
        ticket -= w;
    }
    items.last()
}

/// Why a stored row was left out of the catalog (logged, never fatal: one bad row must not
/// take every other model down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRow(pub String);

impl Catalog {
    /// Assembles a catalog from database rows, opening account credentials with `cipher`.
    /// Disabled accounts and routes are left out; so are rows that do not make sense (unknown
    /// kind, credential that does not decrypt), each reported in the second value.
    pub fn from_rows(rows: CatalogRows, cipher: &SecretCipher) -> (Self, Vec<SkippedRow>) {
        let mut skipped = Vec::new();
        let mut accounts_by_provider: HashMap<i64, Vec<Account>> = HashMap::new();
        for row in rows.accounts.into_iter().filter(|a| a.enabled) {
            match cipher.open(&row.api_key) {
                Ok(api_key) => accounts_by_provider
                    .entry(row.provider_id)
                    .or_default()
                    .push(Account {
                        id: row.id,
                        name: row.name,
                        api_key,
                        weight: clamp_u32(row.weight),
                        rpm: row.rpm.map(clamp_u32),
                    }),
                Err(error) => skipped.push(SkippedRow(format!("account '{}': {error}", row.name))),
            }
        }
        let mut providers: HashMap<i64, Arc<Provider>> = HashMap::new();
        for row in rows.providers {
            let Some(kind) = ProviderKind::parse(&row.kind) else {
                skipped.push(SkippedRow(format!(
                    "provider '{}': unknown kind '{}'",
                    row.name, row.kind
                )));
                continue;
            };
            providers.insert(
                row.id,
                Arc::new(Provider {
                    id: row.id,
                    name: row.name,
                    kind,
                    base_url: row.base_url.trim_end_matches('/').to_owned(),
                    accounts: accounts_by_provider.remove(&row.id).unwrap_or_default(),
                }),
            );
        }
        let mut routes_by_model: HashMap<i64, Vec<Route>> = HashMap::new();
        for row in rows.routes.into_iter().filter(|r| r.enabled) {
            if let Some(provider) = providers.get(&row.provider_id) {
                routes_by_model
                    .entry(row.model_id)
                    .or_default()
                    .push(Route {
                        id: row.id,
                        provider: provider.clone(),
                        upstream_model: row.upstream_model,
                        weight: clamp_u32(row.weight),
                        priority: clamp_u32(row.priority),
                    });
            }
        }
        let models = rows
            .models
            .into_iter()
            .map(|row| Model {
                id: row.id,
                strategy: Strategy::parse(&row.strategy).unwrap_or_default(),
                max_attempts: clamp_u32(row.max_attempts).max(1),
                timeout: row
                    .timeout_ms
                    .and_then(|ms| u64::try_from(ms).ok())
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis),
                created_at: row.created_at,
                routes: routes_by_model.remove(&row.id).unwrap_or_default(),
                name: row.name,
            })
            .collect();
        (Self::new(models), skipped)
    }
}

fn clamp_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// The live catalog: readers take a snapshot without locking; a rebuild swaps it atomically.
pub type SharedCatalog = Arc<ArcSwap<Catalog>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, accounts: Vec<Account>) -> Arc<Provider> {
        Arc::new(Provider {
            id: 1,
            name: name.into(),
            kind: ProviderKind::OpenAi,
            base_url: "http://127.0.0.1:1/v1".into(),
            accounts,
        })
    }

    fn route(id: i64, provider: &Arc<Provider>, weight: u32, priority: u32) -> Route {
        Route {
            id,
            provider: provider.clone(),
            upstream_model: format!("up-{id}"),
            weight,
            priority,
        }
    }

    fn model(routes: Vec<Route>) -> Model {
        Model {
            id: 1,
            name: "m".into(),
            strategy: Strategy::Weighted,
            max_attempts: 3,
            timeout: None,
            created_at: 0,
            routes,
        }
    }

    #[test]
    fn kinds_and_strategies_round_trip_their_names() {
        for kind in ProviderKind::ALL {
            assert_eq!(ProviderKind::parse(kind.as_str()), Some(*kind));
        }
        for strategy in Strategy::ALL {
            assert_eq!(Strategy::parse(strategy.as_str()), Some(*strategy));
        }
        assert_eq!(ProviderKind::parse("nope"), None);
    }

    #[test]
    fn pick_stays_in_the_first_priority_tier() {
        let p = provider("p", vec![]);
        let catalog = Catalog::new(vec![model(vec![route(2, &p, 1, 1), route(1, &p, 1, 0)])]);
        let m = catalog.model("m").unwrap();
        for _ in 0..100 {
            assert_eq!(m.pick().unwrap().route.id, 1);
        }
    }

    #[test]
    fn pick_follows_weights() {
        let p = provider("p", vec![]);
        let m = model(vec![route(1, &p, 3, 0), route(2, &p, 1, 0)]);
        let n = 20_000;
        let first = (0..n).filter(|_| m.pick().unwrap().route.id == 1).count();
        let share = first as f64 / n as f64;
        assert!(
            (0.70..0.80).contains(&share),
            "share of weight-3 route: {share}"
        );
    }

    #[test]
    fn pick_takes_an_account_by_weight() {
        let account = |id, weight| Account {
            id,
            name: format!("a{id}"),
            api_key: Secret::new("k"),
            weight,
            rpm: None,
        };
        let p = provider("p", vec![account(1, 0), account(2, 5)]);
        let m = model(vec![route(1, &p, 1, 0)]);
        for _ in 0..100 {
            assert_eq!(m.pick().unwrap().account.unwrap().id, 2);
        }
    }

    #[test]
    fn a_model_without_routes_has_no_target() {
        assert!(model(vec![]).pick().is_none());
    }
}

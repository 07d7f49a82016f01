//! The `Catalog`: an immutable snapshot of providers, accounts, models and routes, and the
//! choice of upstream targets for a request's attempts (priority tiers, strategies, health).

mod health;
mod provider_options;
mod refresh;

pub use health::{
    AccountHealth, CircuitState, CircuitVerdict, Health, HealthPolicy, ModelCooldown, RouteHealth,
};
pub use provider_options::{
    ProviderOptions, ProviderSettings, SettingsProblem, VERTEX_ANTHROPIC_VERSION, check_headers,
    check_settings,
};
pub use refresh::rebuild_catalog;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::Rng;

use crate::db::{CatalogRows, RouteOverridesRow};
use crate::pricing::{ModelLimits, Nanodollars, Price, RouteOverrides, RouteTerms};
use crate::secret::{Secret, SecretCipher};
use crate::vocab::{Endpoint, ProviderKind, Strategy};

/// An upstream API endpoint and its pool of credentials.
#[derive(Debug)]
pub struct Provider {
    pub id: i64,
    pub name: String,
    pub kind: ProviderKind,
    /// Base URL without a trailing slash; endpoint paths are appended to it.
    pub base_url: String,
    /// The upstream serves OpenAI's Responses API itself: `/v1/responses` is forwarded to it
    /// rather than translated (only ever set on a kind that may serve it).
    pub responses: bool,
    /// Enabled accounts only. An empty pool means the upstream needs no credential.
    pub accounts: Vec<Account>,
    /// The endpoint URLs, parsed on first use: parsing one per request cost about 4% of the
    /// CPU time of a proxied request.
    pub urls: EndpointUrls,
    /// Extra headers, and the settings of the cloud kinds.
    pub options: ProviderOptions,
}

impl Provider {
    /// `base_url` followed by `endpoint`'s path, parsed once per catalog snapshot; `None` when
    /// that is not a URL, or for an endpoint without a slot (the caller then builds the URL
    /// text itself and lets the HTTP client parse or refuse it, as before).
    pub fn endpoint_url(&self, endpoint: Endpoint) -> Option<&url::Url> {
        self.urls
            .0
            .get(endpoint as usize)?
            .get_or_init(|| {
                let mut text = String::with_capacity(self.base_url.len() + 20);
                text.push_str(&self.base_url);
                text.push_str(endpoint.path());
                url::Url::parse(&text).ok()
            })
            .as_ref()
    }
}

/// A provider's parsed endpoint URLs, one slot per [`Endpoint`].
#[derive(Debug, Default)]
pub struct EndpointUrls([OnceLock<Option<url::Url>>; Endpoint::COUNT]);

/// One upstream credential of a provider.
#[derive(Debug)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub api_key: Secret,
    pub weight: u32,
    pub rpm: Option<u32>,
    pub health: Arc<AccountHealth>,
}

/// Where requests for a public model may go: a provider and the upstream's own model name.
#[derive(Debug)]
pub struct Route {
    pub id: i64,
    pub provider: Arc<Provider>,
    pub upstream_model: String,
    pub weight: u32,
    pub priority: u32,
    pub health: Arc<RouteHealth>,
    /// The cooldown of each of the provider's accounts for this route's upstream model, in the
    /// order of `provider.accounts`: upstream 429s limit one model of an account, not all.
    pub account_cooldowns: Vec<Arc<ModelCooldown>>,
    /// What the upstream model takes, resolved once per catalog snapshot: requests are shaped
    /// to it on their way there.
    pub model_limits: ModelLimits,
    /// Its prices and limits: its own overrides, else the built-in catalog's for its upstream
    /// model (resolved once per snapshot). No prices: it costs nothing, and is flagged.
    pub terms: RouteTerms,
}

impl Route {
    /// The provider's accounts, each with its cooldown for this route's upstream model.
    pub fn accounts(&self) -> impl Iterator<Item = (&Account, &ModelCooldown)> {
        self.provider
            .accounts
            .iter()
            .zip(self.account_cooldowns.iter().map(Arc::as_ref))
    }

    /// The cooldown of `account` for this route's upstream model.
    pub fn model_cooldown(&self, account: &Account) -> Option<&ModelCooldown> {
        self.accounts()
            .find(|(a, _)| a.id == account.id)
            .map(|(_, cooldown)| cooldown)
    }

    /// Whether `account` may serve this route at `now`: its credential is valid and neither
    /// the account nor its pair with this upstream model is cooling down.
    pub fn account_usable(&self, account: &Account, now: i64) -> bool {
        account.health.usable(now)
            && self
                .model_cooldown(account)
                .is_none_or(|cooldown| cooldown.usable(now))
    }
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

/// What a request has tried so far, so the next attempt goes somewhere else.
#[derive(Debug, Default)]
pub struct Tried {
    routes: Vec<i64>,
    accounts: Vec<i64>,
}

impl Tried {
    pub fn record(&mut self, target: Target<'_>) {
        if !self.routes.contains(&target.route.id) {
            self.routes.push(target.route.id);
        }
        if let Some(account) = target.account {
            self.accounts.push(account.id);
        }
    }

    /// How many distinct routes were tried.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }
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
    /// The target of the next attempt at `now` (the health clock), or `None` when nothing
    /// untried is usable.
    ///
    /// `same_route` asks for another account of that route first (after a 429 or a refused
    /// credential, the route itself is fine). Otherwise routes are taken tier by tier (priority
    /// 0 first), picked inside a tier by the model's strategy, skipping tried routes, open
    /// circuits and routes without a usable account. When nothing has been tried yet and every
    /// route's circuit is open, the least recently failed route gets a probe anyway.
    pub fn next_target(
        &self,
        now: i64,
        policy: &HealthPolicy,
        tried: &Tried,
        same_route: Option<i64>,
    ) -> Option<Target<'_>> {
        if let Some(route) = same_route.and_then(|id| self.routes.iter().find(|r| r.id == id))
            && let Some(account) = pick_account(route, now, tried)
        {
            return Some(Target { route, account });
        }
        let untried = |route: &&Route| !tried.routes.contains(&route.id);
        let mut refused: Vec<i64> = Vec::new();
        let mut start = 0;
        while start < self.routes.len() {
            let priority = self.routes[start].priority;
            let end = start
                + self.routes[start..]
                    .iter()
                    .take_while(|r| r.priority == priority)
                    .count();
            loop {
                let candidates: Vec<&Route> = self.routes[start..end]
                    .iter()
                    .filter(untried)
                    .filter(|r| !refused.contains(&r.id))
                    .filter(|r| r.health.circuit(now) != CircuitState::Open)
                    .filter(|r| has_account(r, now, tried))
                    .collect();
                let Some(route) = self.strategy.choose(&candidates) else {
                    break;
                };
                if route.health.admit(now, policy) == CircuitVerdict::Refused {
                    // Another request holds the half-open probe.
                    refused.push(route.id);
                    continue;
                }
                let account = pick_account(route, now, tried)?;
                return Some(Target { route, account });
            }
            start = end;
        }
        if tried.routes.is_empty() {
            let route = self
                .routes
                .iter()
                .filter(|r| has_account(r, now, tried))
                .min_by_key(|r| r.health.last_failure())?;
            tracing::info!(model = %self.name, route_id = route.id, "every circuit is open; probing the least recently failed route");
            return Some(Target {
                route,
                account: pick_account(route, now, tried)?,
            });
        }
        None
    }

    /// When the earliest cooling account of this model becomes usable again, if every account
    /// that could serve it is cooling down after upstream 429s (for the route's upstream model,
    /// or as a whole).
    pub fn all_cooling_until(&self, now: i64) -> Option<i64> {
        let mut earliest: Option<i64> = None;
        for route in &self.routes {
            if route.provider.accounts.is_empty() {
                return None;
            }
            for (account, cooldown) in route.accounts() {
                if account.health.is_invalid() {
                    continue;
                }
                let until = account
                    .health
                    .cooling_until(now)
                    .max(cooldown.cooling_until(now));
                match until {
                    Some(until) => earliest = Some(earliest.map_or(until, |e| e.min(until))),
                    None => return None,
                }
            }
        }
        earliest
    }
}

/// An account of the route's provider for the next attempt: weighted among usable, untried
/// ones (not cooling down for the route's upstream model, nor as a whole). `Some(None)` for a
/// provider that needs no credential; `None` when no account is usable.
///
/// It runs for every candidate route of every request, so the usable accounts are counted and
/// drawn from in two passes over the route's accounts rather than collected into a `Vec`
/// (three allocations per chat request). An account that stops being usable between the two
/// passes is passed over; the draw then falls to the last usable one.
fn pick_account<'a>(route: &'a Route, now: i64, tried: &Tried) -> Option<Option<&'a Account>> {
    if route.provider.accounts.is_empty() {
        return Some(None);
    }
    let usable = || {
        route
            .accounts()
            .filter(move |(a, cooldown)| account_usable(a, cooldown, now, tried))
            .map(|(a, _)| a)
    };
    let (count, total) = usable().fold((0usize, 0u64), |(count, total), a| {
        (count + 1, total + u64::from(a.weight))
    });
    let mut ticket = match (count, total) {
        (0, _) => return None,
        // Weights of zero everywhere: any usable account, evenly.
        (_, 0) => return usable().nth(rand::rng().random_range(0..count)).map(Some),
        (_, total) => rand::rng().random_range(0..total),
    };
    let mut last = None;
    for account in usable() {
        let weight = u64::from(account.weight);
        if ticket < weight {
            return Some(Some(account));
        }
        ticket -= weight;
        last = Some(account);
    }
    last.map(Some)
}

/// Whether `route` has an account for the next attempt (or needs none), as [`pick_account`]
/// would find, without drawing one.
fn has_account(route: &Route, now: i64, tried: &Tried) -> bool {
    route.provider.accounts.is_empty()
        || route
            .accounts()
            .any(|(a, cooldown)| account_usable(a, cooldown, now, tried))
}

/// Whether `account` may take the next attempt on a route whose cooldown for the account is
/// `cooldown`: neither is cooling down, and the request has not tried the account yet.
fn account_usable(account: &Account, cooldown: &ModelCooldown, now: i64, tried: &Tried) -> bool {
    account.health.usable(now) && cooldown.usable(now) && !tried.accounts.contains(&account.id)
}

impl Strategy {
    /// Picks one route among `candidates` (all of one tier).
    fn choose<'a>(self, candidates: &[&'a Route]) -> Option<&'a Route> {
        match self {
            Self::Weighted => pick_weighted(candidates, |r| r.weight).copied(),
            Self::LeastBusy => candidates
                .iter()
                .min_by(|a, b| {
                    // Fewest in flight per unit of weight; ties broken at random by the order.
                    let load = |r: &Route| {
                        f64::from(
                            r.health
                                .in_flight
                                .load(std::sync::atomic::Ordering::Relaxed),
                        ) / f64::from(r.weight.max(1))
                    };
                    load(a).total_cmp(&load(b))
                })
                .copied(),
            Self::Latency => {
                // Power of two choices on the peak-EWMA latency: two distinct routes drawn by
                // weight, the faster one wins.
                let first = pick_weighted(candidates, |r| r.weight).copied()?;
                let others: Vec<&Route> = candidates
                    .iter()
                    .copied()
                    .filter(|r| r.id != first.id)
                    .collect();
                let Some(second) = pick_weighted(&others, |r| r.weight).copied() else {
                    return Some(first);
                };
                Some(if second.health.latency() < first.health.latency() {
                    second
                } else {
                    first
                })
            }
        }
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
    pub fn from_rows(
        rows: CatalogRows,
        cipher: &SecretCipher,
        health: &Health,
    ) -> (Self, Vec<SkippedRow>) {
        let mut skipped = Vec::new();
        let pairs: Vec<(i64, &str)> = rows
            .routes
            .iter()
            .flat_map(|route| {
                rows.accounts
                    .iter()
                    .filter(|account| account.provider_id == route.provider_id)
                    .map(|account| (account.id, route.upstream_model.as_str()))
            })
            .collect();
        health.retain(
            &rows.routes.iter().map(|r| r.id).collect::<Vec<_>>(),
            &rows.accounts.iter().map(|a| a.id).collect::<Vec<_>>(),
            &pairs,
        );
        drop(pairs);
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
                        health: health.account(row.id, row.updated_at),
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
            // The config file and the admin API refuse the flag on other kinds; a row written
            // some other way is served by translation, as if the flag were not set.
            let responses = row.responses && kind.may_serve_responses();
            if row.responses && !responses {
                skipped.push(SkippedRow(format!(
                    "provider '{}': 'responses' ignored for kind '{}'",
                    row.name, row.kind
                )));
            }
            let options = match ProviderOptions::from_stored(&row.cloud) {
                Ok(options) => options,
                Err(problem) => {
                    skipped.push(SkippedRow(format!("provider '{}': {problem}", row.name)));
                    continue;
                }
            };
            providers.insert(
                row.id,
                Arc::new(Provider {
                    id: row.id,
                    name: row.name,
                    kind,
                    base_url: row.base_url.trim_end_matches('/').to_owned(),
                    responses,
                    accounts: accounts_by_provider.remove(&row.id).unwrap_or_default(),
                    urls: EndpointUrls::default(),
                    options,
                }),
            );
        }
        let mut routes_by_model: HashMap<i64, Vec<Route>> = HashMap::new();
        for row in rows.routes.into_iter().filter(|r| r.enabled) {
            if let Some(provider) = providers.get(&row.provider_id) {
                let account_cooldowns = provider
                    .accounts
                    .iter()
                    .map(|account| health.model_cooldown(account.id, &row.upstream_model))
                    .collect();
                let terms = RouteTerms::resolve(&row.upstream_model, &overrides(&row.overrides));
                // What the upstream model takes, for shaping: the catalog's figures, with the
                // route's own output limit (override or catalog, as its terms say) where known.
                let mut model_limits = ModelLimits::of(&row.upstream_model);
                model_limits.max_output_tokens = terms
                    .max_output_tokens
                    .filter(|max| *max > 0)
                    .or(model_limits.max_output_tokens);
                routes_by_model
                    .entry(row.model_id)
                    .or_default()
                    .push(Route {
                        id: row.id,
                        model_limits,
                        terms,
                        provider: provider.clone(),
                        upstream_model: row.upstream_model,
                        weight: clamp_u32(row.weight),
                        priority: clamp_u32(row.priority),
                        health: health.route(row.id),
                        account_cooldowns,
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

/// A route's stored overrides as prices and limits (a negative figure, which neither the
/// config file nor the admin API lets through, counts as absent).
pub fn overrides(row: &RouteOverridesRow) -> RouteOverrides {
    let count = |value: Option<i64>| value.and_then(|v| u64::try_from(v).ok());
    let price = |value: Option<i64>| count(value).map(Price);
    RouteOverrides {
        input: price(row.input_price_micros),
        output: price(row.output_price_micros),
        cached_input: price(row.cached_input_price_micros),
        cache_write: price(row.cache_write_price_micros),
        max_output_tokens: count(row.max_output_tokens),
        context_window: count(row.context_window),
    }
}

impl Model {
    /// The most a request may cost on any of this model's routes (any may serve it after a
    /// failover): `prompt_tokens` at each route's dearest prompt price, and `cap` completion
    /// tokens, or else the route's `max_output_tokens`, or else `default_cap`, at its output
    /// price; for a request that generates nothing, the prompt alone.
    pub fn worst_case_cost(
        &self,
        prompt_tokens: u64,
        cap: Option<u64>,
        generates: bool,
        default_cap: u64,
    ) -> Nanodollars {
        self.routes
            .iter()
            .map(|route| {
                let output = if generates {
                    cap.or(route.terms.max_output_tokens).unwrap_or(default_cap)
                } else {
                    0
                };
                route.terms.worst_case(prompt_tokens, output)
            })
            .max()
            .unwrap_or_default()
    }

    /// The enabled routes that have no price anywhere.
    pub fn unpriced_routes(&self) -> impl Iterator<Item = &Route> {
        self.routes
            .iter()
            .filter(|route| route.terms.prices.is_none())
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

    fn account(id: i64, weight: u32) -> Account {
        Account {
            id,
            name: format!("a{id}"),
            api_key: Secret::new("k"),
            weight,
            rpm: None,
            health: Arc::default(),
        }
    }

    fn provider(name: &str, accounts: Vec<Account>) -> Arc<Provider> {
        Arc::new(Provider {
            id: 1,
            name: name.into(),
            kind: ProviderKind::OpenAi,
            base_url: "http://127.0.0.1:1/v1".into(),
            responses: false,
            accounts,
            urls: EndpointUrls::default(),
            options: ProviderOptions::default(),
        })
    }

    fn route(id: i64, provider: &Arc<Provider>, weight: u32, priority: u32) -> Route {
        Route {
            id,
            provider: provider.clone(),
            upstream_model: format!("up-{id}"),
            weight,
            priority,
            health: Arc::default(),
            account_cooldowns: provider.accounts.iter().map(|_| Arc::default()).collect(),
            model_limits: ModelLimits::UNKNOWN,
            terms: RouteTerms::default(),
        }
    }

    fn model(strategy: Strategy, routes: Vec<Route>) -> Model {
        Model {
            id: 1,
            name: "m".into(),
            strategy,
            max_attempts: 3,
            timeout: None,
            created_at: 0,
            routes,
        }
    }

    fn policy() -> HealthPolicy {
        HealthPolicy {
            circuit_failures: 1,
            ..HealthPolicy::default()
        }
    }

    fn first(m: &Model) -> i64 {
        m.next_target(0, &policy(), &Tried::default(), None)
            .unwrap()
            .route
            .id
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
    fn the_first_priority_tier_is_used_while_it_is_healthy() {
        let p = provider("p", vec![]);
        let catalog = Catalog::new(vec![model(
            Strategy::Weighted,
            vec![route(2, &p, 1, 1), route(1, &p, 1, 0)],
        )]);
        let m = catalog.model("m").unwrap();
        for _ in 0..100 {
            assert_eq!(first(m), 1);
        }
    }

    #[test]
    fn weighted_picks_follow_weights() {
        let p = provider("p", vec![]);
        let m = model(
            Strategy::Weighted,
            vec![route(1, &p, 3, 0), route(2, &p, 1, 0)],
        );
        let n = 20_000;
        let share = (0..n).filter(|_| first(&m) == 1).count() as f64 / n as f64;
        assert!(
            (0.70..0.80).contains(&share),
            "share of weight-3 route: {share}"
        );
    }

    #[test]
    fn attempts_move_to_untried_routes_then_the_next_tier_then_stop() {
        let p = provider("p", vec![]);
        let m = model(
            Strategy::Weighted,
            vec![route(1, &p, 1, 0), route(2, &p, 1, 0), route(3, &p, 1, 1)],
        );
        let mut tried = Tried::default();
        let mut order = Vec::new();
        while let Some(target) = m.next_target(0, &policy(), &tried, None) {
            order.push(target.route.id);
            tried.record(target);
        }
        order[..2].sort_unstable();
        assert_eq!(order, [1, 2, 3]);
    }

    #[test]
    fn open_circuits_are_skipped_and_probed_when_nothing_else_is_left() {
        let p = provider("p", vec![]);
        let m = model(
            Strategy::Weighted,
            vec![route(1, &p, 1, 0), route(2, &p, 1, 1)],
        );
        m.routes[0].health.failed(1, 0, &policy());
        assert_eq!(first(&m), 2);
        m.routes[1].health.failed(2, 10, &policy());
        // Both open: the least recently failed one (route 1) gets a probe.
        assert_eq!(first(&m), 1);
    }

    #[test]
    fn accounts_rotate_within_a_route_and_skip_cooling_ones() {
        let p = provider("p", vec![account(1, 1), account(2, 1)]);
        let m = model(
            Strategy::Weighted,
            vec![route(1, &p, 1, 0), route(2, &p, 1, 0)],
        );
        let mut tried = Tried::default();
        let target = m.next_target(0, &policy(), &tried, None).unwrap();
        tried.record(target);
        let again = m
            .next_target(0, &policy(), &tried, Some(target.route.id))
            .unwrap();
        assert_eq!(again.route.id, target.route.id, "same route first");
        assert_ne!(again.account.unwrap().id, target.account.unwrap().id);

        let fresh = Tried::default();
        p.accounts[0]
            .health
            .exhausted(1, 0, Some(std::time::Duration::from_secs(5)), &policy());
        for _ in 0..50 {
            let t = m.next_target(0, &policy(), &fresh, None).unwrap();
            assert_eq!(t.account.unwrap().id, 2);
        }
        p.accounts[1].health.rejected(2);
        assert!(m.next_target(0, &policy(), &fresh, None).is_none());
        assert!(m.all_cooling_until(0).is_some());
    }

    #[test]
    fn a_429_for_one_upstream_model_leaves_the_accounts_other_models_served() {
        let p = provider("p", vec![account(1, 1)]);
        let limited = model(Strategy::Weighted, vec![route(1, &p, 1, 0)]);
        let other = model(Strategy::Weighted, vec![route(2, &p, 1, 0)]);
        let target = limited
            .next_target(0, &policy(), &Tried::default(), None)
            .unwrap();
        target
            .route
            .model_cooldown(target.account.unwrap())
            .unwrap()
            .rate_limited(
                1,
                "up-1",
                0,
                Some(std::time::Duration::from_secs(5)),
                &policy(),
            );
        assert!(
            limited
                .next_target(0, &policy(), &Tried::default(), None)
                .is_none()
        );
        assert!(limited.all_cooling_until(0).is_some());
        let served = other
            .next_target(0, &policy(), &Tried::default(), None)
            .unwrap();
        assert_eq!(served.account.unwrap().id, 1);
        assert!(other.all_cooling_until(0).is_none());
    }

    #[test]
    fn least_busy_prefers_the_idler_route() {
        let p = provider("p", vec![]);
        let m = model(
            Strategy::LeastBusy,
            vec![route(1, &p, 1, 0), route(2, &p, 1, 0)],
        );
        m.routes[0]
            .health
            .in_flight
            .store(5, std::sync::atomic::Ordering::Relaxed);
        for _ in 0..50 {
            assert_eq!(first(&m), 2);
        }
    }

    #[test]
    fn latency_prefers_the_faster_route_most_of_the_time() {
        let p = provider("p", vec![]);
        let m = model(
            Strategy::Latency,
            vec![route(1, &p, 1, 0), route(2, &p, 1, 0)],
        );
        m.routes[0]
            .health
            .succeeded(1, std::time::Duration::from_millis(200));
        m.routes[1]
            .health
            .succeeded(2, std::time::Duration::from_millis(5));
        let n = 4_000;
        let fast = (0..n).filter(|_| first(&m) == 2).count() as f64 / n as f64;
        // With two routes, both are compared every time: the faster one always wins.
        assert!(fast > 0.99, "share of the fast route: {fast}");
    }

    #[test]
    fn a_model_without_routes_has_no_target() {
        let m = model(Strategy::Weighted, vec![]);
        assert!(
            m.next_target(0, &policy(), &Tried::default(), None)
                .is_none()
        );
    }

    #[test]
    fn the_worst_case_is_the_dearest_route_with_the_cap_the_route_or_the_default() {
        let p = provider("p", vec![]);
        let priced = |id: i64, upstream: &str, overrides: RouteOverrides| Route {
            upstream_model: upstream.into(),
            terms: RouteTerms::resolve(upstream, &overrides),
            ..route(id, &p, 1, 0)
        };
        let usd = |text: f64| Price::from_usd(text).unwrap();
        // gpt-4o (catalog: 2.50 in, 10.00 out, 16 384 out at most) and an unknown model at
        // 1.00 in and 40.00 out with no output limit anywhere.
        let m = model(
            Strategy::Weighted,
            vec![
                priced(1, "gpt-4o", RouteOverrides::default()),
                priced(
                    2,
                    "house-model",
                    RouteOverrides {
                        input: Some(usd(1.0)),
                        output: Some(usd(40.0)),
                        ..RouteOverrides::default()
                    },
                ),
            ],
        );
        // A cap of 100: 1000 × 2.50 + 100 × 10 = 3500 against 1000 × 1 + 100 × 40 = 5000.
        assert_eq!(
            m.worst_case_cost(1000, Some(100), true, 1024),
            Nanodollars(5_000_000)
        );
        // No cap: gpt-4o's own limit (16 384 × 10 + 2500 = 166 340) against the default's
        // (1024 × 40 + 1000 = 41 960).
        assert_eq!(
            m.worst_case_cost(1000, None, true, 1024),
            Nanodollars(166_340_000)
        );
        // Nothing generated (embeddings): the prompt alone, at the dearer input price.
        assert_eq!(
            m.worst_case_cost(1000, Some(100), false, 1024),
            Nanodollars(2_500_000)
        );
        // A model whose routes are all unpriced costs nothing, and says which routes they are.
        let free = model(
            Strategy::Weighted,
            vec![priced(3, "house-model", RouteOverrides::default())],
        );
        assert_eq!(free.worst_case_cost(1000, None, true, 1024), Nanodollars(0));
        assert_eq!(
            free.unpriced_routes().map(|r| r.id).collect::<Vec<_>>(),
            [3]
        );
        assert_eq!(m.unpriced_routes().count(), 0);
    }
}

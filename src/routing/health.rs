//! Live health of routes (circuit breakers, in-flight counts, latency), accounts (invalid
//! credentials, an account-wide cooldown when the upstream says the account is out of quota)
//! and pairs of an account and an upstream model (cooldowns after upstream 429s: providers
//! limit each model separately). It lives outside the catalog and is keyed by id, so it
//! survives catalog rebuilds; the catalog holds `Arc`s into it, so the hot path touches only
//! atomics and, on failures, one short-lived lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng;

use crate::clock::Clock;
use crate::cluster::{Cluster, Note};

/// Tuning of circuit breakers and cooldowns.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Failures within `failure_window` that open a route's circuit.
    pub circuit_failures: u32,
    pub failure_window: Duration,
    /// How long an open circuit stays open before a probe is let through.
    pub circuit_cooldown: Duration,
    /// Cooldown of an (account, upstream model) pair after a 429 that carries no `Retry-After`.
    pub default_cooldown: Duration,
    /// Bounds on a cooldown taken from `Retry-After`; also how long a whole account rests when
    /// the upstream says it is out of quota without saying for how long.
    pub max_cooldown: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            circuit_failures: 5,
            failure_window: Duration::from_secs(30),
            circuit_cooldown: Duration::from_secs(30),
            default_cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

/// Milliseconds on the monotonic reading of `clock` (private to this process).
fn now_ms(clock: &Clock) -> i64 {
    i64::try_from(clock.monotonic_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The registry of health state, shared by the gateway, the catalog builder and the admin API.
#[derive(Debug)]
pub struct Health {
    policy: HealthPolicy,
    clock: Clock,
    /// Wall-clock time of the monotonic reading 0, to report instants as Unix times.
    epoch_unix_ms: i64,
    routes: Mutex<HashMap<i64, Arc<RouteHealth>>>,
    accounts: Mutex<HashMap<i64, Arc<AccountHealth>>>,
    /// Per account id and upstream model name.
    model_cooldowns: Mutex<HashMap<(i64, String), Arc<ModelCooldown>>>,
    /// Redis, when replicas share cooldowns and circuits.
    cluster: Option<Cluster>,
}

impl Health {
    pub fn new(policy: HealthPolicy) -> Arc<Self> {
        Self::with_clock(policy, Clock::System)
    }

    /// Health measured on `clock` (a manual one in tests).
    pub fn with_clock(policy: HealthPolicy, clock: Clock) -> Arc<Self> {
        Self::shared(policy, clock, None)
    }

    /// Health measured on `clock` whose cooldowns and circuits are shared with every replica
    /// through `cluster` (see [`Self::share`] and [`Self::apply`]).
    pub fn shared(policy: HealthPolicy, clock: Clock, cluster: Option<Cluster>) -> Arc<Self> {
        let epoch_unix_ms = clock.now().timestamp_millis() - now_ms(&clock);
        Arc::new(Self {
            policy,
            clock,
            epoch_unix_ms,
            routes: Mutex::default(),
            accounts: Mutex::default(),
            model_cooldowns: Mutex::default(),
            cluster,
        })
    }

    /// Tells the other replicas about a cooldown or a circuit this one saw (off the request
    /// path: the note is queued for the cluster's writer). Nothing without Redis.
    pub fn share(&self, note: Note) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(note);
        }
    }

    /// Tells the other replicas when a failure just opened (or re-opened) route `route_id`'s
    /// circuit: `before` is when it was open until before the failure was recorded.
    pub fn share_if_opened(&self, route_id: i64, route: &RouteHealth, before: Option<i64>) {
        let after = route.open_until();
        if let Some(until) = after.filter(|_| after != before) {
            self.share(Note::CircuitOpen {
                route_id,
                until_unix_ms: self.to_unix_ms(until),
            });
        }
    }

    /// Applies what another replica saw: a cooldown or an open circuit is honoured here until
    /// it ends (never shortening a longer one), a closed circuit closes here too.
    pub fn apply(&self, note: &Note) {
        let local = |unix_ms: i64| unix_ms - self.epoch_unix_ms;
        match note {
            Note::Changed => {}
            Note::AccountCooldown {
                account_id,
                until_unix_ms,
            } => {
                if let Some(account) = self.peek_account(*account_id) {
                    account.cooldown.extend_to(local(*until_unix_ms));
                }
            }
            Note::ModelCooldown {
                account_id,
                model,
                until_unix_ms,
            } => self
                .model_cooldown(*account_id, model)
                .cooldown
                .extend_to(local(*until_unix_ms)),
            Note::CircuitOpen {
                route_id,
                until_unix_ms,
            } => self
                .route(*route_id)
                .open_until_at_least(local(*until_unix_ms)),
            Note::CircuitClosed { route_id } => {
                if let Some(route) = self.peek_route(*route_id) {
                    route.close();
                }
            }
        }
    }

    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    pub fn now_ms(&self) -> i64 {
        now_ms(&self.clock)
    }

    /// A process-clock instant as Unix milliseconds, for reports.
    pub fn to_unix_ms(&self, at_ms: i64) -> i64 {
        self.epoch_unix_ms + at_ms
    }

    /// The state of route `id`, created on first use.
    pub fn route(&self, id: i64) -> Arc<RouteHealth> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.entry(id).or_default().clone()
    }

    /// The state of account `id`. `generation` identifies the stored credential and switch
    /// (its `updated_at`): when an operator changes either, an `invalid` mark is lifted.
    pub fn account(&self, id: i64, generation: i64) -> Arc<AccountHealth> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let health = accounts.entry(id).or_default().clone();
        if health.generation.swap(generation, Ordering::AcqRel) != generation
            && health.invalid.swap(false, Ordering::AcqRel)
        {
            tracing::info!(
                account_id = id,
                "account changed by an operator; no longer marked invalid"
            );
        }
        health
    }

    /// The cooldown of account `account_id` for `upstream_model`, created on first use. Routes
    /// of different public models that name the same upstream model share it, as they share
    /// the provider's limit.
    pub fn model_cooldown(&self, account_id: i64, upstream_model: &str) -> Arc<ModelCooldown> {
        let mut cooldowns = self
            .model_cooldowns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cooldowns
            .entry((account_id, upstream_model.to_owned()))
            .or_default()
            .clone()
    }

    /// The upstream models account `account_id` is cooling down for at `now`, with when each
    /// cooldown ends and the 429s counted since the pair last answered, sorted by model.
    pub fn cooling_models(&self, account_id: i64, now: i64) -> Vec<(String, i64, u32)> {
        let cooldowns = self
            .model_cooldowns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut cooling: Vec<(String, i64, u32)> = cooldowns
            .iter()
            .filter(|((account, _), _)| *account == account_id)
            .filter_map(|((_, model), cooldown)| {
                let until = cooldown.cooling_until(now)?;
                Some((model.clone(), until, cooldown.recent_errors()))
            })
            .collect();
        cooling.sort();
        cooling
    }

    /// The state of route `id`, if any request has touched it.
    pub fn peek_route(&self, id: i64) -> Option<Arc<RouteHealth>> {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.get(&id).cloned()
    }

    /// The state of account `id`, if the catalog holds it.
    pub fn peek_account(&self, id: i64) -> Option<Arc<AccountHealth>> {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        accounts.get(&id).cloned()
    }

    /// Forgets state of routes, accounts and (account, upstream model) pairs that no longer
    /// exist.
    pub fn retain(&self, route_ids: &[i64], account_ids: &[i64], pairs: &[(i64, &str)]) {
        self.model_cooldowns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(account, model), _| {
                pairs
                    .iter()
                    .any(|(a, m)| a == account && *m == model.as_str())
            });
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| route_ids.contains(id));
        self.accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| account_ids.contains(id));
    }
}

/// Circuit breaker, load and latency of one route.
#[derive(Debug, Default)]
pub struct RouteHealth {
    /// Requests currently being served through this route.
    pub in_flight: AtomicU32,
    /// Peak-EWMA of upstream latency in microseconds (0: no sample yet).
    latency_us: AtomicU64,
    /// 0 while closed; otherwise when the circuit may let a probe through (process ms).
    open_until: AtomicI64,
    /// When the current half-open probe started (0: none).
    probe_started: AtomicI64,
    /// When the route last failed (process ms, 0: never).
    last_failure: AtomicI64,
    recent_errors: AtomicU32,
    window: Mutex<FailureWindow>,
}

#[derive(Debug, Default)]
struct FailureWindow {
    started: i64,
    failures: u32,
}

/// Whether a route may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitVerdict {
    /// Closed circuit.
    Open,
    /// Half-open: this attempt is the single probe.
    Probe,
    /// Open circuit: skip.
    Refused,
}

/// A report of a route's circuit for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl RouteHealth {
    /// Asks to send an attempt through this route at `now` (process ms).
    pub fn admit(&self, now: i64, policy: &HealthPolicy) -> CircuitVerdict {
        let open_until = self.open_until.load(Ordering::Acquire);
        if open_until == 0 {
            return CircuitVerdict::Open;
        }
        if now < open_until {
            return CircuitVerdict::Refused;
        }
        // Half-open: one probe at a time. A probe that never reported (its request was
        // abandoned) is replaced after another cooldown.
        let started = self.probe_started.load(Ordering::Acquire);
        let stale = cooldown_ms(policy.circuit_cooldown);
        if (started == 0 || now - started > stale)
            && self
                .probe_started
                .compare_exchange(started, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return CircuitVerdict::Probe;
        }
        CircuitVerdict::Refused
    }

    pub fn circuit(&self, now: i64) -> CircuitState {
        match self.open_until.load(Ordering::Acquire) {
            0 => CircuitState::Closed,
            until if now < until => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// When an open circuit lets its next probe through (process ms), if it is not closed.
    pub fn open_until(&self) -> Option<i64> {
        match self.open_until.load(Ordering::Acquire) {
            0 => None,
            until => Some(until),
        }
    }

    pub fn last_failure(&self) -> i64 {
        self.last_failure.load(Ordering::Acquire)
    }

    pub fn recent_errors(&self) -> u32 {
        self.recent_errors.load(Ordering::Acquire)
    }

    /// Peak-EWMA latency estimate; routes without samples look fast so they get tried.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Acquire))
    }

    /// Opens the circuit until at least `until` (process ms), as another replica saw it.
    fn open_until_at_least(&self, until: i64) {
        if until > 0 && self.open_until.fetch_max(until, Ordering::AcqRel) == 0 {
            tracing::info!("another replica opened a route's circuit");
        }
    }

    /// Closes the circuit, as another replica saw the route answer.
    fn close(&self) {
        if self.open_until.swap(0, Ordering::AcqRel) != 0 {
            self.probe_started.store(0, Ordering::Release);
        }
    }

    /// Records an answered attempt (any status that is not the upstream's fault); says
    /// whether it closed an open circuit.
    pub fn succeeded(&self, route_id: i64, latency: Duration) -> bool {
        let sample = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // Peak-EWMA: jump up to a slow sample at once, decay slowly towards fast ones.
        let _ = self
            .latency_us
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some(if old == 0 || sample > old {
                    sample
                } else {
                    old - (old - sample) / 8
                })
            });
        let recovered = self.open_until.swap(0, Ordering::AcqRel) != 0;
        if recovered {
            self.probe_started.store(0, Ordering::Release);
            tracing::info!(route_id, "route recovered; circuit closed");
        }
        self.recent_errors.store(0, Ordering::Release);
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.failures = 0;
        recovered
    }

    /// Records a failed attempt (connect error, timeout, 5xx) at `now`; may open the circuit.
    pub fn failed(&self, route_id: i64, now: i64, policy: &HealthPolicy) {
        self.last_failure.store(now.max(1), Ordering::Release);
        self.recent_errors.fetch_add(1, Ordering::AcqRel);
        let cooldown = cooldown_ms(policy.circuit_cooldown);
        if self.open_until.load(Ordering::Acquire) != 0 {
            // A failed probe (or a straggler of the open period) re-opens for another cooldown.
            self.open_until.store(now + cooldown, Ordering::Release);
            self.probe_started.store(0, Ordering::Release);
            return;
        }
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if now - window.started > cooldown_ms(policy.failure_window) {
            window.started = now;
            window.failures = 0;
        }
        window.failures += 1;
        if window.failures >= policy.circuit_failures {
            window.failures = 0;
            self.open_until.store(now + cooldown, Ordering::Release);
            tracing::warn!(
                route_id,
                failures = policy.circuit_failures,
                cooldown = ?policy.circuit_cooldown,
                "route failing; circuit opened"
            );
        }
    }
}

fn cooldown_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

/// A cooldown: until when (process ms) something is skipped. Starting one never shortens one
/// that runs longer.
#[derive(Debug, Default)]
struct Cooldown(AtomicI64);

impl Cooldown {
    /// Cools down until at least `until` (process ms).
    fn extend_to(&self, until: i64) {
        self.0.fetch_max(until, Ordering::AcqRel);
    }

    fn cooling_until(&self, now: i64) -> Option<i64> {
        let until = self.0.load(Ordering::Acquire);
        (until > now).then_some(until)
    }

    /// Cools down from `now` for `retry_after` (bounded by the policy, with up to 10% jitter so
    /// that many requests do not all come back at once) or `default`. Returns the cooldown
    /// applied and whether none was running before.
    fn start(
        &self,
        now: i64,
        retry_after: Option<Duration>,
        default: Duration,
        policy: &HealthPolicy,
    ) -> (Duration, bool) {
        let base = retry_after
            .unwrap_or(default)
            .clamp(Duration::from_millis(100), policy.max_cooldown);
        let jitter = base.mul_f64(rand::rng().random_range(0.0..0.1));
        let cooldown = base + jitter;
        let until = now + cooldown_ms(cooldown);
        (cooldown, self.0.fetch_max(until, Ordering::AcqRel) <= now)
    }
}

/// Validity of one upstream credential, and its account-wide cooldown (the upstream said the
/// account itself is out of quota, whatever the model).
#[derive(Debug, Default)]
pub struct AccountHealth {
    /// Until when (process ms) the whole account is skipped.
    cooldown: Cooldown,
    /// The upstream refused the credential (401/403).
    invalid: AtomicBool,
    generation: AtomicI64,
    recent_errors: AtomicU32,
}

impl AccountHealth {
    pub fn usable(&self, now: i64) -> bool {
        !self.invalid.load(Ordering::Acquire) && self.cooldown.cooling_until(now).is_none()
    }

    pub fn is_invalid(&self) -> bool {
        self.invalid.load(Ordering::Acquire)
    }

    /// When the account-wide cooldown ends (process ms), if one is running at `now`.
    pub fn cooling_until(&self, now: i64) -> Option<i64> {
        self.cooldown.cooling_until(now)
    }

    pub fn recent_errors(&self) -> u32 {
        self.recent_errors.load(Ordering::Acquire)
    }

    pub fn succeeded(&self) {
        self.recent_errors.store(0, Ordering::Release);
    }

    /// The upstream said the account itself is out (OpenAI's `insufficient_quota`): every
    /// model of it rests for `retry_after` or, since quota does not come back by itself within
    /// seconds, the policy's longest cooldown. Returns the cooldown applied.
    pub fn exhausted(
        &self,
        account_id: i64,
        now: i64,
        retry_after: Option<Duration>,
        policy: &HealthPolicy,
    ) -> Duration {
        self.recent_errors.fetch_add(1, Ordering::AcqRel);
        let (cooldown, started) =
            self.cooldown
                .start(now, retry_after, policy.max_cooldown, policy);
        if started {
            tracing::warn!(account_id, cooldown = ?cooldown, "upstream says the account is out of quota; every model of it cools down");
        }
        cooldown
    }

    /// An upstream 401/403: the credential is skipped until an operator changes the account.
    pub fn rejected(&self, account_id: i64) {
        self.recent_errors.fetch_add(1, Ordering::AcqRel);
        if !self.invalid.swap(true, Ordering::AcqRel) {
            tracing::error!(
                account_id,
                "upstream refused the account's credential; account marked invalid"
            );
        }
    }
}

/// The cooldown of one account for one upstream model, after that model's upstream 429s.
#[derive(Debug, Default)]
pub struct ModelCooldown {
    cooldown: Cooldown,
    recent_errors: AtomicU32,
}

impl ModelCooldown {
    pub fn usable(&self, now: i64) -> bool {
        self.cooldown.cooling_until(now).is_none()
    }

    /// When the cooldown ends (process ms), if one is running at `now`.
    pub fn cooling_until(&self, now: i64) -> Option<i64> {
        self.cooldown.cooling_until(now)
    }

    /// 429s since the pair last answered.
    pub fn recent_errors(&self) -> u32 {
        self.recent_errors.load(Ordering::Acquire)
    }

    pub fn succeeded(&self) {
        if self.recent_errors.load(Ordering::Relaxed) != 0 {
            self.recent_errors.store(0, Ordering::Release);
        }
    }

    /// An upstream 429 for this model: the pair cools down for `retry_after` (bounded, with up
    /// to 10% jitter) or the default; the account's other models are untouched. Returns the
    /// cooldown applied.
    pub fn rate_limited(
        &self,
        account_id: i64,
        upstream_model: &str,
        now: i64,
        retry_after: Option<Duration>,
        policy: &HealthPolicy,
    ) -> Duration {
        self.recent_errors.fetch_add(1, Ordering::AcqRel);
        let (cooldown, started) =
            self.cooldown
                .start(now, retry_after, policy.default_cooldown, policy);
        if started {
            tracing::warn!(account_id, upstream_model, cooldown = ?cooldown, "upstream rate-limited the account for this model; cooling down");
        }
        cooldown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            circuit_failures: 3,
            failure_window: Duration::from_secs(10),
            circuit_cooldown: Duration::from_secs(5),
            ..HealthPolicy::default()
        }
    }

    #[test]
    fn a_circuit_opens_after_n_failures_in_the_window_then_lets_one_probe_through() {
        let p = policy();
        let route = RouteHealth::default();
        route.failed(1, 1_000, &p);
        route.failed(1, 2_000, &p);
        assert_eq!(route.admit(2_100, &p), CircuitVerdict::Open);
        route.failed(1, 3_000, &p);
        assert_eq!(route.circuit(3_000), CircuitState::Open);
        assert_eq!(route.admit(7_999, &p), CircuitVerdict::Refused);
        // After the cooldown: exactly one probe.
        assert_eq!(route.admit(8_000, &p), CircuitVerdict::Probe);
        assert_eq!(route.admit(8_001, &p), CircuitVerdict::Refused);
        // The probe fails: open again for a full cooldown.
        route.failed(1, 8_100, &p);
        assert_eq!(route.admit(13_000, &p), CircuitVerdict::Refused);
        assert_eq!(route.admit(13_100, &p), CircuitVerdict::Probe);
        route.succeeded(1, Duration::from_millis(5));
        assert_eq!(route.circuit(13_200), CircuitState::Closed);
        assert_eq!(route.admit(13_200, &p), CircuitVerdict::Open);
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_open_the_circuit() {
        let p = policy();
        let route = RouteHealth::default();
        for i in 0..10 {
            route.failed(1, i * 11_000, &p);
        }
        assert_eq!(route.circuit(110_000), CircuitState::Closed);
    }

    #[test]
    fn an_abandoned_probe_is_replaced_after_a_cooldown() {
        let p = policy();
        let route = RouteHealth::default();
        for t in [1, 2, 3] {
            route.failed(1, t, &p);
        }
        assert_eq!(route.admit(6_000, &p), CircuitVerdict::Probe);
        assert_eq!(route.admit(10_000, &p), CircuitVerdict::Refused);
        assert_eq!(route.admit(11_001, &p), CircuitVerdict::Probe);
    }

    #[test]
    fn a_429_cools_one_model_of_an_account_and_quota_exhaustion_the_whole_account() {
        let p = HealthPolicy::default();
        let health = Health::new(p);
        let account = health.account(7, 100);
        let model_a = health.model_cooldown(7, "up-a");
        let model_b = health.model_cooldown(7, "up-b");
        assert!(Arc::ptr_eq(&model_a, &health.model_cooldown(7, "up-a")));
        let cooldown = model_a.rate_limited(7, "up-a", 1_000, Some(Duration::from_secs(2)), &p);
        assert!(cooldown >= Duration::from_secs(2) && cooldown <= Duration::from_millis(2_200));
        assert!(!model_a.usable(2_000));
        assert!(model_a.usable(1_000 + 2_201));
        assert!(model_b.usable(2_000) && account.usable(2_000));
        assert_eq!(health.cooling_models(7, 2_000).len(), 1);
        assert_eq!(health.cooling_models(7, 2_000)[0].0, "up-a");

        // Out of quota: every model waits, for the longest cooldown when no Retry-After says.
        let rest = account.exhausted(7, 5_000, None, &p);
        assert!(rest >= p.max_cooldown);
        assert!(!account.usable(5_000 + 299_000));
        assert!(account.usable(5_000 + 331_000));

        health.retain(&[], &[7], &[(7, "up-b")]);
        assert!(health.cooling_models(7, 2_000).is_empty());
    }

    #[test]
    fn what_another_replica_saw_is_honoured_until_it_ends() {
        let (clock, manual) = Clock::manual(chrono::Utc::now());
        let health = Health::with_clock(HealthPolicy::default(), clock);
        let account = health.account(7, 1);
        let route = health.route(3);
        let now = health.now_ms();
        let unix = |ms: i64| health.to_unix_ms(ms);
        health.apply(&Note::ModelCooldown {
            account_id: 7,
            model: "up-a".to_owned(),
            until_unix_ms: unix(now + 5_000),
        });
        health.apply(&Note::AccountCooldown {
            account_id: 7,
            until_unix_ms: unix(now + 2_000),
        });
        health.apply(&Note::CircuitOpen {
            route_id: 3,
            until_unix_ms: unix(now + 3_000),
        });
        assert!(!health.model_cooldown(7, "up-a").usable(now));
        assert!(!account.usable(now));
        assert_eq!(route.circuit(now), CircuitState::Open);
        // A shorter cooldown heard later never shortens a longer one.
        health.apply(&Note::AccountCooldown {
            account_id: 7,
            until_unix_ms: unix(now + 1_000),
        });
        assert_eq!(account.cooling_until(now), Some(now + 2_000));
        manual.advance(Duration::from_millis(2_500));
        let later = health.now_ms();
        assert!(account.usable(later));
        assert!(!health.model_cooldown(7, "up-a").usable(later));
        health.apply(&Note::CircuitClosed { route_id: 3 });
        assert_eq!(route.circuit(later), CircuitState::Closed);
        manual.advance(Duration::from_millis(3_000));
        assert!(health.model_cooldown(7, "up-a").usable(health.now_ms()));
    }

    #[test]
    fn accounts_stay_invalid_after_401_until_changed() {
        let p = HealthPolicy::default();
        let health = Health::new(p);
        let account = health.account(7, 100);

        account.rejected(7);
        assert!(!account.usable(i64::MAX / 2));
        // Same generation: still invalid. A change by an operator lifts the mark.
        assert!(health.account(7, 100).is_invalid());
        assert!(!health.account(7, 101).is_invalid());
    }

    #[test]
    fn latency_tracks_peaks_fast_and_decays_slowly() {
        let route = RouteHealth::default();
        route.succeeded(1, Duration::from_millis(10));
        route.succeeded(1, Duration::from_millis(100));
        assert_eq!(route.latency(), Duration::from_millis(100));
        route.succeeded(1, Duration::from_millis(10));
        assert!(route.latency() > Duration::from_millis(80));
    }

    #[test]
    fn state_survives_lookups_by_id() {
        let health = Health::new(HealthPolicy::default());
        health.route(1).failed(1, 5, health.policy());
        assert_eq!(health.route(1).recent_errors(), 1);
        health.retain(&[], &[], &[]);
        assert_eq!(health.route(1).recent_errors(), 0);
    }
}

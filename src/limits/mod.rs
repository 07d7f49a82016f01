//! Rate limits and budgets, in memory: reserved at admission, settled with the real usage.
//!
//! Each key with limits gets one [`KeyLimiter`] (its RPM and TPM buckets and its budget under a
//! single mutex, held for a few dozen nanoseconds), found through a copy-on-write map that
//! readers load without locking. Keys without limits touch nothing. The database is read only
//! once, at start-up, to seed budgets ([`BudgetSeed`]). With Redis ([`Limits::shared`]) the
//! same limits live in Redis for every replica (`shared`), and these per-process ones serve
//! while it is down.

mod bucket;
mod budget;
mod shared;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;

pub use bucket::{BucketStatus, RateLimitStatus, format_reset};
pub use budget::{BudgetSeed, BudgetUnit, WindowSpend, window_end, window_start};

use crate::auth::ClientKey;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::pricing::Nanodollars;
use bucket::Bucket;
use budget::Budget;

/// Completion tokens reserved for a request that does not cap them (`max_tokens`).
pub const DEFAULT_COMPLETION_ESTIMATE: u64 = 1024;

/// The tokens to reserve for a request before it runs: about a token per four bytes of body
/// for the prompt, plus `max_completion_tokens`/`max_tokens`/`max_output_tokens` (or
/// [`DEFAULT_COMPLETION_ESTIMATE`] when a generating request sets none; embeddings generate
/// nothing). Cheap: one pass of the JSON scanner, no tree.
pub fn estimate_request_tokens(body: &[u8]) -> u64 {
    #[derive(Deserialize)]
    struct Fields {
        #[serde(default)]
        max_tokens: Option<u64>,
        #[serde(default)]
        max_completion_tokens: Option<u64>,
        #[serde(default)]
        max_output_tokens: Option<u64>,
        #[serde(default)]
        messages: Option<IgnoredAny>,
        #[serde(default)]
        prompt: Option<IgnoredAny>,
    }
    match serde_json::from_slice::<Fields>(body) {
        Ok(fields) => estimate_tokens(
            body.len(),
            Some(
                fields
                    .max_completion_tokens
                    .or(fields.max_tokens)
                    .or(fields.max_output_tokens),
            ),
            fields.messages.is_some() || fields.prompt.is_some(),
        ),
        Err(_) => estimate_tokens(body.len(), None, true),
    }
}

/// [`estimate_request_tokens`] from fields already read: `cap` is the request's completion
/// cap (`Some(None)` when it sets none, `None` when its fields could not be read) and
/// `generates` whether it has `messages` or a `prompt`.
pub fn estimate_tokens(body_len: usize, cap: Option<Option<u64>>, generates: bool) -> u64 {
    let prompt = (body_len as u64).div_ceil(4);
    let completion = match cap {
        Some(Some(cap)) => cap,
        Some(None) if !generates => 0,
        Some(None) | None => DEFAULT_COMPLETION_ESTIMATE,
    };
    prompt.saturating_add(completion)
}

/// In-memory limits of every key and account; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    keys: ArcSwap<HashMap<i64, Arc<KeyLimiter>>>,
    accounts: ArcSwap<HashMap<i64, Arc<Mutex<Bucket>>>>,
    clock: Clock,
    seed: Mutex<BudgetSeed>,
    /// Redis, when replicas share limits; the maps above are then the fallback while it is
    /// down.
    cluster: Option<Cluster>,
}

/// One key's limits.
#[derive(Debug)]
pub struct KeyLimiter {
    state: Mutex<KeyState>,
}

#[derive(Debug, Default)]
struct KeyState {
    rpm: Option<Bucket>,
    tpm: Option<Bucket>,
    /// `budget_tokens`, in tokens.
    budget: Option<Budget>,
    /// `budget_usd`, in nano-dollars.
    spending: Option<Budget>,
}

/// What a request reserves before it runs, and what it used once settled: tokens (for the
/// TPM bucket and a token budget) and money (for a dollar budget).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    pub tokens: u64,
    pub cost: Nanodollars,
}

impl From<u64> for Spend {
    /// Tokens alone, costing nothing.
    fn from(tokens: u64) -> Self {
        Self {
            tokens,
            cost: Nanodollars::default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state under these locks stays consistent between statements; a panic elsewhere
    // must not disable limits.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which per-minute limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
}

/// Why a request may not run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A per-minute limit of the key: retry after `retry_after`.
    RateLimited {
        kind: LimitKind,
        retry_after: Duration,
        /// Tokens the request asked for (for `Tokens`).
        requested: u64,
        status: RateLimitStatus,
    },
    /// The key's budget (in `unit`) has less left than the request may use (nothing, once it
    /// is used up) until `resets_at` (never, without a window).
    BudgetExhausted {
        unit: BudgetUnit,
        budget: u64,
        /// Neither spent nor reserved by requests in flight.
        left: u64,
        /// What the request asked to reserve.
        requested: u64,
        resets_at: Option<DateTime<Utc>>,
        retry_after: Option<Duration>,
    },
}

impl Refusal {
    /// The OpenAI error code: `rate_limit_exceeded` or `insufficient_quota`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limit_exceeded",
            Self::BudgetExhausted { .. } => "insufficient_quota",
        }
    }

    /// For `Retry-After`: how long until the request would pass (`None`: a budget that never
    /// resets).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::BudgetExhausted { retry_after, .. } => *retry_after,
        }
    }

    /// The `x-ratelimit-*` headers to send with the 429.
    pub fn header_pairs(&self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Self::RateLimited { status, .. } => status.header_pairs(),
            Self::BudgetExhausted { .. } => Vec::new(),
        }
    }

    /// A message for the client, saying what ran out and when to come back.
    pub fn message(&self) -> String {
        match self {
            Self::RateLimited {
                kind: LimitKind::Requests,
                retry_after,
                status,
                ..
            } => format!(
                "Rate limit reached: this key may make {} requests per minute. Please try again in {}.",
                status.requests.map_or(0, |s| s.limit),
                format_reset(*retry_after)
            ),
            Self::RateLimited {
                kind: LimitKind::Tokens,
                retry_after,
                requested,
                status,
            } => {
                let tokens = status.tokens.unwrap_or(BucketStatus {
                    limit: 0,
                    remaining: 0,
                    reset: Duration::ZERO,
                });
                format!(
                    "Rate limit reached: this key may use {} tokens per minute; {} remain and \
                     this request may use up to {requested}. Please try again in {}.",
                    tokens.limit,
                    tokens.remaining,
                    format_reset(*retry_after)
                )
            }
            Self::BudgetExhausted {
                unit: BudgetUnit::Tokens,
                budget,
                left: 0,
                resets_at,
                ..
            } => format!(
                "The token budget of this key ({budget} tokens) is used up; {}.",
                budget_reset(*resets_at)
            ),
            Self::BudgetExhausted {
                unit: BudgetUnit::Nanodollars,
                budget,
                left: 0,
                resets_at,
                ..
            } => format!(
                "The spending budget of this key ({}) is used up; {}.",
                dollars(*budget),
                budget_reset(*resets_at)
            ),
            Self::BudgetExhausted {
                unit: BudgetUnit::Nanodollars,
                budget,
                left,
                requested,
                resets_at,
                ..
            } => format!(
                "The spending budget of this key ({}) has {} left, and this request may cost up \
                 to {} (its prompt at the model's dearest route's input price, plus its \
                 max_tokens, else the route's output limit, at the output price). Set a lower \
                 max_tokens, or retry once requests in flight finish; {}.",
                dollars(*budget),
                dollars(*left),
                dollars(*requested),
                budget_reset(*resets_at)
            ),
            Self::BudgetExhausted {
                unit: BudgetUnit::Tokens,
                budget,
                left,
                requested,
                resets_at,
                ..
            } => format!(
                "The token budget of this key ({budget} tokens) has {left} tokens left, and this \
                 request may use up to {requested} (its prompt plus max_tokens, or \
                 {DEFAULT_COMPLETION_ESTIMATE} completion tokens when it sets none). Set a lower \
                 max_tokens, or retry once requests in flight finish; {}.",
                budget_reset(*resets_at)
            ),
        }
    }
}

/// Nano-dollars as USD for a message: cents, or more places when the amount is below a cent
/// (rounded up, so a request is never said to cost less than it may).
fn dollars(nanos: u64) -> String {
    let places: u32 = if nanos >= 10_000_000 || nanos == 0 {
        2
    } else {
        6
    };
    let unit = 10u64.pow(9 - places);
    let rounded = nanos.div_ceil(unit);
    let scale = 10u64.pow(places);
    format!(
        "${}.{:0width$}",
        rounded / scale,
        rounded % scale,
        width = places as usize
    )
}

/// When a budget starts again, as the end of a sentence.
fn budget_reset(resets_at: Option<DateTime<Utc>>) -> String {
    match resets_at {
        Some(at) => format!(
            "it resets at {}",
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        None => "it does not reset".to_owned(),
    }
}

impl Limits {
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits measured on `clock` (a manual one in tests).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                ..Inner::default()
            }),
        }
    }

    /// Limits shared through `cluster` (Redis) with every replica, measured on `clock`, and
    /// kept in this process while Redis is down.
    pub fn shared(clock: Clock, cluster: Cluster) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                cluster: Some(cluster),
                ..Inner::default()
            }),
        }
    }

    /// As [`Self::admit`], in Redis when the limits are shared and it answers in time (one
    /// round trip); else in this process, without waiting.
    pub async fn admit_shared(
        &self,
        key: &ClientKey,
        ask: impl Into<Spend>,
    ) -> Result<Admission, Refusal> {
        let ask = ask.into();
        if let Some(cluster) = &self.inner.cluster
            && has_limits(key)
            && let Ok(decided) = shared::admit(cluster, self, key, ask).await
        {
            return decided;
        }
        self.admit(key, ask)
    }

    /// Sets what budgets start from: each key's spend so far in its current window. Call once
    /// at start-up, before serving; a key's budget reads it when first used.
    pub fn seed_budgets(&self, seed: BudgetSeed) {
        *lock(&self.inner.seed) = seed;
    }

    /// Admits a request of `key` expected to use `estimate` tokens (see
    /// [`estimate_request_tokens`]), or refuses it. All of the key's limits are checked before
    /// any is charged: a refused request costs nothing. The budget admits a request only when
    /// its whole estimate fits beside what the window spent and what requests in flight
    /// reserved, so spend passes the budget only by usage beyond a reservation: a prompt that
    /// holds more tokens than a quarter of its bytes, or an answer longer than the completion
    /// cap the request declared (or the 1024-token default without one). The returned [`Admission`] holds the
    /// reservation until settled (or dropped).
    ///
    /// A dollar budget (`budget_usd`) takes the same path in its own unit: `ask.cost` is the
    /// request's worst case (see [`crate::routing::Model::worst_case_cost`]), reserved beside
    /// the tokens and settled with the real cost.
    pub fn admit(&self, key: &ClientKey, ask: impl Into<Spend>) -> Result<Admission, Refusal> {
        let ask = ask.into();
        let estimate = ask.tokens;
        if !has_limits(key) {
            return Ok(Admission::unlimited());
        }
        let limiter = self.limiter(key.id);
        let clock = &self.inner.clock;
        let now = clock.monotonic_nanos();
        let mut guard = lock(&limiter.state);
        let state = &mut *guard;
        self.configure(state, key, now);

        for (unit, budget, requested) in [
            (BudgetUnit::Tokens, state.budget.as_mut(), estimate),
            (BudgetUnit::Nanodollars, state.spending.as_mut(), ask.cost.0),
        ] {
            let Some(budget) = budget else { continue };
            budget.roll(clock.unix_seconds(), || clock.now());
            if !budget.admits(requested) {
                let resets_at = budget.resets_at();
                return Err(Refusal::BudgetExhausted {
                    unit,
                    budget: budget.limit,
                    left: budget.left(),
                    requested,
                    resets_at,
                    retry_after: resets_at
                        .map(|at| (at - clock.now()).to_std().unwrap_or(Duration::ZERO)),
                });
            }
        }
        let mut wait = None;
        if let Some(rpm) = state.rpm.as_mut() {
            rpm.refill(now);
            let needed = rpm.wait_for(1);
            if !needed.is_zero() {
                wait = Some((LimitKind::Requests, needed));
            }
        }
        if let Some(tpm) = state.tpm.as_mut() {
            tpm.refill(now);
            let needed = tpm.wait_for(estimate);
            if wait.is_none() && !needed.is_zero() {
                wait = Some((LimitKind::Tokens, needed));
            }
        }
        if let Some((kind, retry_after)) = wait {
            return Err(Refusal::RateLimited {
                kind,
                retry_after,
                requested: estimate,
                status: state.status(),
            });
        }

        if let Some(rpm) = state.rpm.as_mut() {
            rpm.take(1);
        }
        let tokens_reserved = state.tpm.as_mut().map_or(0, |tpm| {
            tpm.take(estimate);
            estimate
        });
        let reserve = |budget: Option<&mut Budget>, amount: u64| {
            budget.map_or(0, |budget| {
                budget.reserved += amount;
                amount
            })
        };
        let budget_reserved = reserve(state.budget.as_mut(), estimate);
        let spending_reserved = reserve(state.spending.as_mut(), ask.cost.0);
        let status = state.status();
        drop(guard);
        Ok(Admission {
            reservation: Some(Reservation::Local(LocalReservation {
                limiter,
                clock: clock.clone(),
                tokens: tokens_reserved,
                budget: budget_reserved,
                spending: spending_reserved,
            })),
            status,
        })
    }

    /// Takes one request from an upstream account's `rpm`, or says how long until one is free.
    pub fn admit_account(&self, account_id: i64, rpm: u32) -> Result<(), Duration> {
        let now = self.inner.clock.monotonic_nanos();
        let bucket = self.account_bucket(account_id, rpm, now);
        let mut bucket = lock(&bucket);
        bucket.set_limit(u64::from(rpm), now);
        bucket.refill(now);
        let wait = bucket.wait_for(1);
        if wait.is_zero() {
            bucket.take(1);
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// The current state of a key's per-minute limits, without charging anything.
    pub fn status(&self, key: &ClientKey) -> RateLimitStatus {
        if key.rpm.is_none() && key.tpm.is_none() {
            return RateLimitStatus::default();
        }
        let limiter = self.limiter(key.id);
        let now = self.inner.clock.monotonic_nanos();
        let mut guard = lock(&limiter.state);
        let state = &mut *guard;
        self.configure(state, key, now);
        for bucket in [state.rpm.as_mut(), state.tpm.as_mut()]
            .into_iter()
            .flatten()
        {
            bucket.refill(now);
        }
        state.status()
    }

    /// Tokens a key has spent in its current budget window, and reserved by requests in flight.
    pub fn budget_spent(&self, key: &ClientKey) -> Option<(u64, u64)> {
        self.spent_in(key, BudgetUnit::Tokens)
    }

    /// What a key has spent in `unit` in its current budget window, and what requests in
    /// flight reserved; `None` without such a budget.
    pub fn spent_in(&self, key: &ClientKey, unit: BudgetUnit) -> Option<(u64, u64)> {
        let limiter = self.limiter(key.id);
        let mut state = lock(&limiter.state);
        self.configure(&mut state, key, self.inner.clock.monotonic_nanos());
        let clock = &self.inner.clock;
        let budget = match unit {
            BudgetUnit::Tokens => state.budget.as_mut(),
            BudgetUnit::Nanodollars => state.spending.as_mut(),
        }?;
        budget.roll(clock.unix_seconds(), || clock.now());
        Some((budget.spent, budget.reserved))
    }

    fn limiter(&self, key_id: i64) -> Arc<KeyLimiter> {
        if let Some(limiter) = self.inner.keys.load().get(&key_id) {
            return limiter.clone();
        }
        let created = Arc::new(KeyLimiter {
            state: Mutex::new(KeyState::default()),
        });
        // Copy on write: new keys are rare, lookups are constant.
        self.inner.keys.rcu(|map| {
            let mut next = HashMap::clone(map);
            next.entry(key_id).or_insert_with(|| created.clone());
            next
        });
        self.inner
            .keys
            .load()
            .get(&key_id)
            .cloned()
            .unwrap_or(created)
    }

    fn account_bucket(&self, account_id: i64, rpm: u32, now: u64) -> Arc<Mutex<Bucket>> {
        if let Some(bucket) = self.inner.accounts.load().get(&account_id) {
            return bucket.clone();
        }
        let created = Arc::new(Mutex::new(Bucket::new(u64::from(rpm), now)));
        self.inner.accounts.rcu(|map| {
            let mut next = HashMap::clone(map);
            next.entry(account_id).or_insert_with(|| created.clone());
            next
        });
        self.inner
            .accounts
            .load()
            .get(&account_id)
            .cloned()
            .unwrap_or(created)
    }

    /// Brings a key's state in line with its current settings (an admin may change them).
    fn configure(&self, state: &mut KeyState, key: &ClientKey, now: u64) {
        configure_bucket(&mut state.rpm, key.rpm, now);
        configure_bucket(&mut state.tpm, key.tpm, now);
        self.configure_budget(
            &mut state.budget,
            key,
            BudgetUnit::Tokens,
            key.budget_tokens,
        );
        self.configure_budget(
            &mut state.spending,
            key,
            BudgetUnit::Nanodollars,
            key.budget_usd.map(|usd| usd.0),
        );
    }

    /// Brings one of a key's budgets in line with its `limit` (in `unit`); a new one starts
    /// from what the rollups say the key spent in the current window.
    fn configure_budget(
        &self,
        budget: &mut Option<Budget>,
        key: &ClientKey,
        unit: BudgetUnit,
        limit: Option<u64>,
    ) {
        match (limit, budget.as_mut()) {
            (None, _) => *budget = None,
            (Some(limit), Some(existing)) => {
                existing.configure(limit, key.budget_window, self.inner.clock.now());
            }
            (Some(limit), None) => {
                let now = self.inner.clock.now();
                let spent =
                    lock(&self.inner.seed).spent(key.id, unit, key.budget_window, now.date_naive());
                *budget = Some(Budget::new(limit, key.budget_window, spent, now));
            }
        }
    }
}

/// Whether `key` has any limit to admit against.
fn has_limits(key: &ClientKey) -> bool {
    key.rpm.is_some()
        || key.tpm.is_some()
        || key.budget_tokens.is_some()
        || key.budget_usd.is_some()
}

fn configure_bucket(bucket: &mut Option<Bucket>, limit: Option<u32>, now: u64) {
    match (limit, bucket.as_mut()) {
        (None, _) => *bucket = None,
        (Some(limit), Some(existing)) => existing.set_limit(u64::from(limit), now),
        (Some(limit), None) => *bucket = Some(Bucket::new(u64::from(limit), now)),
    }
}

impl KeyState {
    fn status(&self) -> RateLimitStatus {
        RateLimitStatus {
            requests: self.rpm.as_ref().map(Bucket::status),
            tokens: self.tpm.as_ref().map(Bucket::status),
        }
    }
}

/// An admitted request: the `x-ratelimit-*` state to send with its response, and its token
/// reservation. Settle it with the tokens the request really used; dropped unsettled (the
/// request was aborted before any usage was known), it gives its whole reservation back.
#[derive(Debug)]
#[must_use = "settle the admission with the real usage, or drop it to release the reservation"]
pub struct Admission {
    reservation: Option<Reservation>,
    status: RateLimitStatus,
}

/// Where an admission's reservation is held.
#[derive(Debug)]
enum Reservation {
    Local(LocalReservation),
    Shared(shared::SharedReservation),
}

impl Reservation {
    fn reserved(&self) -> u64 {
        match self {
            Self::Local(local) => local.tokens.max(local.budget),
            Self::Shared(shared) => shared.reserved(),
        }
    }

    fn settle(self, used: Spend) {
        match self {
            Self::Local(local) => local.settle(used),
            Self::Shared(shared) => shared.settle(used),
        }
    }
}

#[derive(Debug)]
struct LocalReservation {
    limiter: Arc<KeyLimiter>,
    clock: Clock,
    /// Reserved from the TPM bucket.
    tokens: u64,
    /// Reserved from the token budget.
    budget: u64,
    /// Reserved from the dollar budget, in nano-dollars.
    spending: u64,
}

impl Admission {
    /// An admission for a key without limits: nothing reserved, no headers.
    pub fn unlimited() -> Self {
        Self {
            reservation: None,
            status: RateLimitStatus::default(),
        }
    }

    /// The key's limits after this admission, for the response's `x-ratelimit-*` headers.
    pub fn status(&self) -> &RateLimitStatus {
        &self.status
    }

    /// The tokens this admission reserved.
    pub fn reserved(&self) -> u64 {
        self.reservation.as_ref().map_or(0, Reservation::reserved)
    }

    /// Replaces the reservation by what the request used (tokens, and its cost): refunds the
    /// difference to the TPM bucket and the budgets, or charges the excess.
    pub fn settle(mut self, used: impl Into<Spend>) {
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(used.into());
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(Spend::default());
        }
    }
}

impl LocalReservation {
    fn settle(self, used: Spend) {
        let now = self.clock.monotonic_nanos();
        let mut guard = lock(&self.limiter.state);
        let state = &mut *guard;
        let used_tokens = used.tokens;
        if let Some(tpm) = state.tpm.as_mut()
            && self.tokens > 0
        {
            tpm.refill(now);
            if used_tokens <= self.tokens {
                tpm.give(self.tokens - used_tokens);
            } else {
                tpm.take(used_tokens - self.tokens);
            }
        }
        for (budget, reserved, used) in [
            (state.budget.as_mut(), self.budget, used_tokens),
            (state.spending.as_mut(), self.spending, used.cost.0),
        ] {
            if let Some(budget) = budget {
                budget.reserved = budget.reserved.saturating_sub(reserved);
                budget.roll(self.clock.unix_seconds(), || self.clock.now());
                budget.spent = budget.spent.saturating_add(used);
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The state of one request's attempts: what was tried, what failed, how many attempts were
//! made and the deadline they share; which target comes next (with the backoff before the same
//! one again), what each failure does to the health of its route or account, and what to
//! answer when no attempt succeeded.

use std::time::{Duration, Instant};

use http::StatusCode;

use super::outcome::{self, LimitScope, RouteFailure};
use crate::error::ApiError;
use crate::routing::{CircuitState, HealthPolicy, Model, Target, Tried};

/// One attempt about to start: its target, its number (from 1), and its share of the time left.
#[derive(Clone, Copy)]
pub(super) struct Turn<'m> {
    pub target: Target<'m>,
    pub number: u32,
    pub budget: Duration,
}

/// One request's way through its model's targets: what was tried, what failed, how many
/// attempts were made, and the deadline they share.
pub(super) struct Attempts<'m, 'r> {
    model: &'m Model,
    policy: HealthPolicy,
    deadline: Instant,
    tried: Tried,
    pub(super) failures: Failures<'r>,
    /// Attempts started, bounded by the model's `max_attempts`.
    count: u32,
    /// The route whose other accounts are tried next (after a 429 or a refused credential).
    same_route: Option<i64>,
}

impl<'m, 'r> Attempts<'m, 'r> {
    pub(super) fn new(
        model: &'m Model,
        policy: HealthPolicy,
        deadline: Instant,
        request_id: &'r str,
    ) -> Self {
        Self {
            model,
            policy,
            deadline,
            tried: Tried::default(),
            failures: Failures::new(request_id),
            count: 0,
            same_route: None,
        }
    }

    /// The next target to attempt, while attempts remain: a candidate not tried yet, else the
    /// last target that failed on the upstream's side, after a jittered backoff that must end
    /// before the deadline; `now` is the health clock's time.
    pub(super) async fn next_target(&mut self, now: i64) -> Option<Target<'m>> {
        if self.count >= self.model.max_attempts {
            return None;
        }
        let next = self
            .model
            .next_target(now, &self.policy, &self.tried, self.same_route.take());
        let target = match next {
            Some(target) => target,
            None => {
                let target = self.failures.retry_same(self.model, now)?;
                let wait = backoff(self.count);
                if Instant::now() + wait >= self.deadline {
                    return None;
                }
                tokio::time::sleep(wait).await;
                target
            }
        };
        self.tried.record(target);
        Some(target)
    }

    /// Starts an attempt at `target`, or `None` when the deadline has passed.
    pub(super) fn begin(&mut self, target: Target<'m>) -> Option<Turn<'m>> {
        self.count += 1;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return None;
        }
        // Each attempt gets an equal share of what is left, so a hung upstream leaves time
        // for the others.
        let budget = remaining / (self.model.max_attempts - self.count + 1);
        Some(Turn {
            target,
            number: self.count,
            budget,
        })
    }

    /// A 429 from `target`: cools the (account, upstream model) pair, or every model of the
    /// account when the whole account is out; another account of the route is tried next.
    pub(super) fn account_limited(
        &mut self,
        target: Target<'_>,
        scope: LimitScope,
        retry_after: Option<Duration>,
        body: &[u8],
        now: i64,
    ) {
        let route = target.route;
        if let Some(account) = target.account {
            match scope {
                LimitScope::Account => {
                    account
                        .health
                        .exhausted(account.id, now, retry_after, &self.policy);
                }
                LimitScope::Model => {
                    if let Some(cooldown) = route.model_cooldown(account) {
                        cooldown.rate_limited(
                            account.id,
                            &route.upstream_model,
                            now,
                            retry_after,
                            &self.policy,
                        );
                    }
                }
            }
        }
        tracing::debug!(
            request_id = self.failures.request_id,
            provider = route.provider.name.as_str(),
            whole_account = scope == LimitScope::Account,
            body = %outcome::excerpt(body),
            "upstream answered 429"
        );
        self.failures
            .rate_limited(retry_after.unwrap_or(self.policy.default_cooldown));
        self.same_route = Some(route.id);
    }

    /// `target`'s account had its credential refused: it is taken out, and another account
    /// of the route is tried next.
    pub(super) fn credential_refused(
        &mut self,
        target: Target<'_>,
        status: StatusCode,
        body: &[u8],
    ) {
        if let Some(account) = target.account {
            account.health.rejected(account.id);
            self.failures.other(ApiError::UpstreamFailed {
                detail: format!(
                    "{} refused the credential of account '{}' ({status}): {}",
                    target.route.provider.name,
                    account.name,
                    outcome::excerpt(body)
                ),
            });
        }
        self.same_route = Some(target.route.id);
    }

    /// A failure on the upstream's side: counted against `target`'s route (its circuit) and
    /// noted for the answer, should no other candidate succeed; the same target may be tried
    /// again after a backoff when the failure allows it.
    pub(super) fn route_failed(&mut self, target: Target<'_>, failure: RouteFailure, now: i64) {
        let route = target.route;
        route.health.failed(route.id, now, &self.policy);
        if failure.retry_same {
            self.failures.server_side(target, failure.error);
        } else {
            self.failures.other(failure.error);
        }
    }

    /// What to answer when no attempt succeeded.
    pub(super) fn into_error(self, now: i64) -> ApiError {
        self.failures
            .into_error(self.model, self.count, self.tried.routes(), now)
    }
}

/// What went wrong so far in one request's attempts, and what to answer if nothing succeeds.
pub(super) struct Failures<'r> {
    /// The request these failures belong to, named in the log.
    request_id: &'r str,
    last: Option<ApiError>,
    /// The shortest `Retry-After` among upstream 429s.
    retry_after: Option<Duration>,
    /// Whether every failure so far was an upstream 429.
    only_rate_limits: Option<bool>,
    /// The target of the last server-side failure, which may be retried after a backoff.
    retryable: Option<(i64, Option<i64>)>,
}

impl<'r> Failures<'r> {
    fn new(request_id: &'r str) -> Self {
        Self {
            request_id,
            last: None,
            retry_after: None,
            only_rate_limits: None,
            retryable: None,
        }
    }

    fn server_side(&mut self, target: Target<'_>, error: ApiError) {
        self.retryable = Some((target.route.id, target.account.map(|a| a.id)));
        self.other(error);
    }

    fn other(&mut self, error: ApiError) {
        tracing::warn!(
            request_id = self.request_id,
            error = %error,
            "upstream attempt failed; trying the next candidate"
        );
        self.last = Some(error);
        self.only_rate_limits = Some(false);
    }

    /// A candidate this request cannot use (its provider does not serve the endpoint): no
    /// upstream failed, and should no candidate serve, the client is refused. So it is noted
    /// at the level of a refusal, not warned about.
    pub(super) fn passed_over(&mut self, error: ApiError) {
        tracing::debug!(
            request_id = self.request_id,
            error = %error,
            "route passed over; trying the next candidate"
        );
        self.last = Some(error);
        self.only_rate_limits = Some(false);
    }

    pub(super) fn rate_limited(&mut self, retry_after: Duration) {
        self.retryable = None;
        self.retry_after = Some(self.retry_after.map_or(retry_after, |r| r.min(retry_after)));
        self.only_rate_limits.get_or_insert(true);
    }

    /// The last failed target again, if it failed on the upstream's side and is still usable.
    fn retry_same<'m>(&mut self, model: &'m Model, now: i64) -> Option<Target<'m>> {
        let (route_id, account_id) = self.retryable.take()?;
        let route = model.routes.iter().find(|r| r.id == route_id)?;
        if route.health.circuit(now) == CircuitState::Open {
            return None;
        }
        let account = match account_id {
            Some(id) => Some(
                route
                    .provider
                    .accounts
                    .iter()
                    .find(|a| a.id == id && route.account_usable(a, now))?,
            ),
            None => None,
        };
        Some(Target { route, account })
    }

    fn into_error(self, model: &Model, attempts: u32, routes_tried: usize, now: i64) -> ApiError {
        if self.only_rate_limits == Some(true) {
            return rate_limited(
                &model.name,
                self.retry_after.unwrap_or(Duration::from_secs(1)),
            );
        }
        if attempts == 0 {
            if let Some(until) = model.all_cooling_until(now) {
                let wait = Duration::from_millis(u64::try_from(until - now).unwrap_or(0));
                return rate_limited(&model.name, wait);
            }
            // Every route was passed over for a reason of its own (e.g. its kind of provider
            // does not serve this endpoint): that reason is the answer.
            if let Some(error) = self.last {
                return error;
            }
            return ApiError::NoHealthyRoute {
                model: model.name.clone(),
                detail: "no usable route: circuits open or accounts unusable".into(),
                tried: 0,
            };
        }
        match self.last {
            // One candidate: its own error says the most.
            Some(error) if routes_tried <= 1 => error,
            last => ApiError::NoHealthyRoute {
                model: model.name.clone(),
                detail: last.map_or_else(String::new, |e| format!("last error: {e}")),
                tried: attempts,
            },
        }
    }
}

fn rate_limited(model: &str, wait: Duration) -> ApiError {
    ApiError::RateLimited {
        message: format!(
            "Every upstream account that serves model '{model}' is rate-limited right now. \
             Retry after {} s.",
            wait.as_secs_f64().ceil().max(1.0)
        ),
        retry_after: wait,
        code: "rate_limit_exceeded",
    }
}

/// Full-jitter exponential backoff before retrying the same target: uniform in
/// `[0, min(2 s, 100 ms × 2^attempt)]`.
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(100)
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(Duration::from_secs(2));
    ceiling.mul_f64(rand::random::<f64>())
}

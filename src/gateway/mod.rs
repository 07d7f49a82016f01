//! The gateway's use cases, free of axum: proxy one OpenAI-style request, list models.

mod completion;
mod dialect;
mod outcome;
mod relay;
mod request;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;
use tracing::Instrument;

pub use completion::Completion;
pub use relay::{OpenStreams, error_event};
pub use request::RequestHead;

use crate::auth::ClientKey;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::providers::{self, ClientHeaders};
use crate::routing::{
    CircuitState, Health, HealthPolicy, Model, RouteHealth, SharedCatalog, Target, Tried,
};
use crate::telemetry::metrics::Metrics;
use crate::upstream;
use crate::usage::{self, Usage, UsageRecorder, WholeAnswer};
use crate::vocab::Endpoint;
use dialect::{Answer, Call, Refused};

/// Everything a proxied request needs, cheap to clone into each request.
#[derive(Clone, Debug)]
pub struct Gateway {
    catalog: SharedCatalog,
    health: Arc<Health>,
    client: reqwest::Client,
    /// Deadline of a request whose model sets no `timeout`.
    request_timeout: Duration,
    metrics: Metrics,
    /// Share of successful requests logged (errors always are).
    log_sample: f64,
    /// In-memory rate limits: keys' rpm/tpm/budgets, accounts' upstream rpm.
    limits: Limits,
    usage: UsageRecorder,
    /// The streams being relayed, which the shutdown ends when its grace is over.
    streams: OpenStreams,
    /// Largest upstream answer read whole, and largest event of a streamed one
    /// (`LLMGATE_MAX_UPSTREAM_BODY_BYTES`).
    max_upstream_body: usize,
}

/// What to send back to the client.
pub enum Reply {
    /// A whole body, forwarded as received.
    Complete {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// A server-sent event stream, forwarded frame by frame.
    Stream {
        headers: HeaderMap,
        body: BoxStream<'static, Result<Bytes, Infallible>>,
    },
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Complete { status, .. } => write!(f, "Reply::Complete({status})"),
            Self::Stream { .. } => f.write_str("Reply::Stream"),
        }
    }
}

/// Upstream response headers worth passing on; everything else (cookies, server details, the
/// account's organisation) stays behind.
fn forwarded_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "content-type"
            | "content-encoding"
            | "retry-after"
            | "retry-after-ms"
            | "openai-processing-ms"
    ) || name.starts_with("x-ratelimit-")
}

fn upstream_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8);
    for (name, value) in upstream {
        if forwarded_header(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(id) = upstream.get("x-request-id") {
        headers.insert(HeaderName::from_static("x-upstream-request-id"), id.clone());
    }
    headers
}

impl Gateway {
    #[expect(
        clippy::too_many_arguments,
        reason = "built once, in App::build, from the handles it owns"
    )]
    pub fn new(
        catalog: SharedCatalog,
        health: Arc<Health>,
        client: reqwest::Client,
        request_timeout: Duration,
        metrics: Metrics,
        log_sample: f64,
        limits: Limits,
        usage: UsageRecorder,
        max_upstream_body: usize,
    ) -> Self {
        Self {
            catalog,
            health,
            client,
            request_timeout,
            metrics,
            log_sample,
            limits,
            usage,
            streams: OpenStreams::default(),
            max_upstream_body,
        }
    }

    /// The streams being relayed, for the shutdown.
    pub fn open_streams(&self) -> &OpenStreams {
        &self.streams
    }

    /// Proxies one request body for `endpoint` on behalf of `key`, reporting it (metrics, log
    /// line) when it is over; `started` is when the request arrived.
    pub async fn proxy(
        &self,
        key: &ClientKey,
        endpoint: Endpoint,
        body: Bytes,
        request_id: &str,
        started: Instant,
        client_headers: &ClientHeaders,
    ) -> Result<Reply, ApiError> {
        let mut done = Completion::start(
            self.metrics.clone(),
            self.usage.clone(),
            endpoint,
            request_id,
            Arc::from(key.name.as_str()),
            key.id,
            body.clone(),
            started,
            self.log_sample,
        );
        let span = crate::telemetry::request_span(endpoint.name(), request_id, &key.name);
        let forward = self
            .forward(&mut done, key, endpoint, body, request_id, client_headers)
            .instrument(span.clone());
        // A request still waiting on an upstream when the shutdown's grace ends is answered
        // (and recorded) now, rather than cut with the connection later.
        let forwarded = tokio::select! {
            biased;
            forwarded = forward => forwarded,
            () = self.streams.ending() => Err(ApiError::ShuttingDown),
        };
        span.record("model", done.model.as_str());
        span.record("attempts", done.attempts);
        done.first_byte = Some(Instant::now());
        match forwarded {
            Ok(Forwarded::Complete {
                status,
                mut headers,
                body,
            }) => {
                done.status = status.as_u16();
                rate_limit_headers(&done, &mut headers);
                headers.insert(OVERHEAD_HEADER, overhead_value(done.overhead()));
                done.finish();
                Ok(Reply::Complete {
                    status,
                    headers,
                    body,
                })
            }
            Ok(Forwarded::Stream {
                mut headers,
                response,
                in_flight,
                answer,
                filter_usage,
            }) => {
                done.status = StatusCode::OK.as_u16();
                done.stream = true;
                rate_limit_headers(&done, &mut headers);
                headers.insert(OVERHEAD_HEADER, overhead_value(done.overhead()));
                let shape = answer.stream(&done.model, filter_usage, &done.request);
                let guard = relay::StreamGuard {
                    health: self.health.clone(),
                    max_event: self.max_upstream_body,
                };
                let body = relay::relay(response, in_flight, shape, done, &self.streams, guard);
                Ok(Reply::Stream {
                    headers,
                    body: Box::pin(body) as BoxStream<'static, _>,
                })
            }
            Err(error) => {
                done.status = error.status().as_u16();
                done.finish();
                Err(error)
            }
        }
    }

    /// Sends the request upstream until one attempt is answered.
    ///
    /// Until a response is handed back, failures move the request on: a 429 or a refused
    /// credential to another account of the same route, a connect error, timeout or 5xx to
    /// another route, then to the next priority tier; with nothing new left, the same target
    /// is retried after a jittered backoff. Attempts are bounded by the model's `max_attempts`
    /// and share one deadline. Other 4xx answers are the client's and are returned at once.
    async fn forward(
        &self,
        done: &mut Completion,
        key: &ClientKey,
        endpoint: Endpoint,
        body: Bytes,
        request_id: &str,
        client_headers: &ClientHeaders,
    ) -> Result<Forwarded, ApiError> {
        let head = RequestHead::parse(&body);
        // Limits are checked before any upstream work, so a refusal costs the upstream
        // nothing, and before the model is looked at, so a request refused for its body or
        // its model still counts against the key's rate limit.
        let reserve = match &head {
            Ok(head) if endpoint.generates() => head.reserve,
            _ => 0,
        };
        let admission = self.limits.admit(key, reserve).map_err(|refusal| {
            self.metrics
                .rate_limited
                .with_label_values(&[refusal.code()])
                .inc();
            ApiError::Limited(Box::new(refusal))
        })?;
        done.admission = Some(admission);
        let head = head?;
        let stream = head.stream && endpoint.can_stream();
        // A streamed request is recorded as one however it ends, before its first byte too.
        done.stream = stream;
        let model = self.catalog.load().model(&head.model).cloned();
        done.set_model(&head.model, model.is_some());
        if !key.allows_model(&head.model) {
            return Err(ApiError::ModelNotAllowed {
                model: head.model.into_owned(),
            });
        }
        let model = model.ok_or_else(|| ApiError::ModelNotFound {
            model: head.model.to_string(),
        })?;
        let deadline = Instant::now() + model.timeout.unwrap_or(self.request_timeout);
        let policy = *self.health.policy();
        let mut tried = Tried::default();
        let mut failures = Failures::new(request_id);
        let mut attempts = 0;
        let mut same_route = None;

        while attempts < model.max_attempts {
            let now = self.health.now_ms();
            let target = match model.next_target(now, &policy, &tried, same_route.take()) {
                Some(target) => target,
                None => match failures.retry_same(&model, now) {
                    Some(target) => {
                        let wait = backoff(attempts);
                        if Instant::now() + wait >= deadline {
                            break;
                        }
                        tokio::time::sleep(wait).await;
                        target
                    }
                    None => break,
                },
            };
            tried.record(target);
            let (url, upstream_body, answer, filter_usage) =
                match dialect::prepare(target, endpoint, &body, &head, stream) {
                    Ok(Call::Upstream {
                        url,
                        body,
                        answer,
                        filter_usage,
                    }) => (url, body, answer, filter_usage),
                    Ok(Call::Local(answer)) => {
                        let mut headers = HeaderMap::with_capacity(2);
                        headers.insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        );
                        done.usage = Some(Usage::default());
                        return Ok(Forwarded::Complete {
                            status: StatusCode::OK,
                            headers,
                            body: answer,
                        });
                    }
                    // A route this endpoint cannot use is passed over, like an unusable one.
                    Err(Refused::Endpoint(why)) => {
                        failures.passed_over(ApiError::invalid_request(why));
                        continue;
                    }
                    Err(Refused::Request(error)) => return Err(error.into()),
                };
            // An account at its configured upstream `rpm` is skipped like a cooling one: the
            // next pick goes to another account or route, and costs no attempt.
            if let Some(account) = target.account
                && let Some(rpm) = account.rpm
                && let Err(wait) = self.limits.admit_account(account.id, rpm)
            {
                failures.rate_limited(wait);
                continue;
            }
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            // Each attempt gets an equal share of what is left, so a hung upstream leaves
            // time for the others.
            let budget = remaining / (model.max_attempts - attempts + 1);
            let route = target.route;
            let provider = &route.provider.name;
            let attempt_span = crate::telemetry::attempt_span(provider, route.id, attempts);
            let mut request = providers::build_request(
                &self.client,
                target,
                url,
                upstream_body,
                request_id,
                client_headers,
            );
            if crate::telemetry::exporting_traces() {
                let mut trace_headers = HeaderMap::new();
                crate::telemetry::inject_trace_context(&attempt_span, &mut trace_headers);
                request = request.headers(trace_headers);
            }
            // One deadline for the attempt: the response headers, and for a whole answer its
            // body too (a stream's body is bounded by the read timeout between bytes instead).
            let attempt_deadline = tokio::time::Instant::now() + budget;
            let in_flight = InFlight::start(route);
            done.attempt(route.id, provider, target.account.map(|a| a.id));
            let sent = Instant::now();
            let sent_result = tokio::time::timeout_at(attempt_deadline, request.send())
                .instrument(attempt_span)
                .await;
            done.upstream_wait += sent.elapsed();
            let response = match within(sent_result, provider, "no response headers", budget) {
                Ok(response) => response,
                Err(error) => {
                    self.route_failed(target, &policy, &mut failures, error);
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let retry_after = retry_after(response.headers());
                let body = self.error_body(response, target, attempt_deadline).await;
                // Providers limit each model of an account separately: a 429 cools the pair
                // (account, upstream model) unless the upstream says the account itself is
                // out, which cools every model of it.
                let whole_account = outcome::account_exhausted(&body);
                if let Some(account) = target.account {
                    let now = self.health.now_ms();
                    if whole_account {
                        account
                            .health
                            .exhausted(account.id, now, retry_after, &policy);
                    } else if let Some(cooldown) = route.model_cooldown(account) {
                        cooldown.rate_limited(
                            account.id,
                            &route.upstream_model,
                            now,
                            retry_after,
                            &policy,
                        );
                    }
                }
                tracing::debug!(
                    request_id,
                    provider = provider.as_str(),
                    whole_account,
                    body = %outcome::excerpt(&body),
                    "upstream answered 429"
                );
                failures.rate_limited(retry_after.unwrap_or(policy.default_cooldown));
                same_route = Some(route.id);
                continue;
            }
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
                && let Some(account) = target.account
            {
                account.health.rejected(account.id);
                let body = self.error_body(response, target, attempt_deadline).await;
                failures.other(ApiError::UpstreamFailed {
                    detail: format!(
                        "{provider} refused the credential of account '{}' ({status}): {}",
                        account.name,
                        outcome::excerpt(&body)
                    ),
                });
                same_route = Some(route.id);
                continue;
            }
            if status.is_server_error() {
                let body = self.error_body(response, target, attempt_deadline).await;
                self.route_failed(
                    target,
                    &policy,
                    &mut failures,
                    ApiError::UpstreamFailed {
                        detail: format!(
                            "{provider} answered {status}: {}",
                            outcome::excerpt(&body)
                        ),
                    },
                );
                continue;
            }

            // The client never sees an upstream's redirect (it would have to resend through
            // llmgate anyway): a route whose base URL redirects is misconfigured, and the
            // next candidate may serve.
            if status.is_redirection() {
                let to = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(String::new, |to| format!(" to '{to}'"));
                self.route_failed(
                    target,
                    &policy,
                    &mut failures,
                    ApiError::UpstreamFailed {
                        detail: format!(
                            "{provider} answered {status}{to}; llmgate does not follow \
                             redirects: set the provider's base_url to the final address"
                        ),
                    },
                );
                continue;
            }

            // The upstream answered (success, or a client error that is the client's own).
            let mut headers = upstream_headers(response.headers());
            if let Ok(value) = HeaderValue::from_str(provider) {
                headers.insert(HeaderName::from_static("x-llmgate-route"), value);
            }
            headers.insert(
                HeaderName::from_static("x-llmgate-attempts"),
                HeaderValue::from(attempts),
            );
            let is_event_stream = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if status.is_success() && stream && is_event_stream {
                target_succeeded(target, sent.elapsed());
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                headers.insert(
                    HeaderName::from_static("x-accel-buffering"),
                    HeaderValue::from_static("no"),
                );
                return Ok(Forwarded::Stream {
                    headers,
                    response,
                    in_flight,
                    answer,
                    filter_usage,
                });
            }
            // Nothing has reached the client yet, so a body that fails to arrive, or a success
            // that is not JSON, still counts as the upstream's failure and moves on.
            let read = Instant::now();
            let body_result = tokio::time::timeout_at(
                attempt_deadline,
                upstream::read_body(response, self.max_upstream_body),
            )
            .await;
            done.upstream_wait += read.elapsed();
            let body = match within_body(body_result, provider, budget) {
                Ok(body) => body,
                Err(error) => {
                    self.route_failed(target, &policy, &mut failures, error);
                    continue;
                }
            };
            // An error answer may echo the credential it was sent: hidden before it is relayed
            // (and logged as the request's outcome).
            let body = if status.is_success() {
                body
            } else {
                outcome::redacted(body, target)
            };
            let reported = if status.is_success() {
                match usage::read_answer(&body) {
                    WholeAnswer::Json(reported) => reported,
                    WholeAnswer::NotJson => {
                        self.route_failed(
                            target,
                            &policy,
                            &mut failures,
                            ApiError::UpstreamFailed {
                                detail: format!(
                                    "{provider} answered {status} with a body that is not JSON"
                                ),
                            },
                        );
                        continue;
                    }
                }
            } else {
                None
            };
            let openai_answer = answer.is_openai_passthrough();
            // A success the translator cannot read is the upstream's failure too.
            let (body, usage_body) = if status.is_success() {
                match answer.complete(body, &head.model) {
                    Ok(translated) => translated,
                    Err(error) => {
                        self.route_failed(
                            target,
                            &policy,
                            &mut failures,
                            ApiError::UpstreamFailed {
                                detail: format!("{provider}: {error}"),
                            },
                        );
                        continue;
                    }
                }
            } else {
                (answer.error(status.as_u16(), body), None)
            };
            if status.is_success() {
                done.usage = Some(if !endpoint.generates() {
                    Usage::default()
                } else if let Some(reported) = reported.filter(|_| openai_answer) {
                    reported
                } else {
                    let answer = usage_body.as_deref().unwrap_or_default();
                    usage::usage_of_response(&done.model, &done.request, answer)
                });
            }
            if !answer.is_passthrough() {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            target_succeeded(target, sent.elapsed());
            drop(in_flight);
            return Ok(Forwarded::Complete {
                status,
                headers,
                body,
            });
        }
        Err(failures.into_error(&model, attempts, tried.routes(), self.health.now_ms()))
    }

    /// The start of an error answer (at most [`outcome::ERROR_BODY_LIMIT`] bytes, read within
    /// the attempt's deadline), with the credentials in it hidden; empty when it does not
    /// arrive.
    async fn error_body(
        &self,
        response: reqwest::Response,
        target: Target<'_>,
        deadline: tokio::time::Instant,
    ) -> Bytes {
        let read = upstream::read_error_body(response, outcome::ERROR_BODY_LIMIT);
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(body)) => outcome::redacted(body, target),
            Ok(Err(_)) | Err(_) => Bytes::new(),
        }
    }

    /// Counts a failure on the upstream's side against `target`'s route (its circuit) and
    /// notes it for the answer, should no other candidate succeed.
    fn route_failed(
        &self,
        target: Target<'_>,
        policy: &HealthPolicy,
        failures: &mut Failures<'_>,
        error: ApiError,
    ) {
        let route = target.route;
        route.health.failed(route.id, self.health.now_ms(), policy);
        if matches!(error, ApiError::UpstreamTooLarge { .. }) {
            // The same request would bring the same oversized answer: another route may
            // serve, this target is not retried.
            failures.other(error);
        } else {
            failures.server_side(target, error);
        }
    }

    /// The current routing snapshot.
    pub fn catalog(&self) -> Arc<crate::routing::Catalog> {
        self.catalog.load_full()
    }

    /// `GET /v1/models`: the models `key` may use, in OpenAI's list format.
    pub fn list_models(&self, key: &ClientKey) -> Bytes {
        let catalog = self.catalog.load();
        let data: Vec<ModelObject<'_>> = catalog
            .models()
            .filter(|model| key.allows_model(&model.name))
            .map(ModelObject::of)
            .collect();
        to_json(&ModelList {
            object: "list",
            data,
        })
    }

    /// `GET /v1/models/{id}`: one model, if it exists and `key` may use it.
    pub fn get_model(&self, key: &ClientKey, id: &str) -> Result<Bytes, ApiError> {
        let catalog = self.catalog.load();
        match catalog.model(id) {
            Some(model) if key.allows_model(id) => Ok(to_json(&ModelObject::of(model))),
            _ => Err(ApiError::ModelNotFound {
                model: id.to_owned(),
            }),
        }
    }
}

/// The answer of the attempt that succeeded, before it is reported and relayed.
enum Forwarded {
    /// A whole answer; its usage is already in the `Completion`.
    Complete {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Stream {
        headers: HeaderMap,
        response: reqwest::Response,
        in_flight: InFlight,
        /// How the upstream's events become the client's.
        answer: Answer,
        /// Drop the usage-only chunk: llmgate asked for it, the client did not.
        filter_usage: bool,
    },
}

/// OpenAI's `x-ratelimit-*` headers, for keys that have limits.
fn rate_limit_headers(done: &Completion, headers: &mut HeaderMap) {
    if let Some(admission) = &done.admission {
        admission.status().apply(headers);
    }
}

/// `x-llmgate-overhead-ms`: the time llmgate itself added before the response started.
const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-llmgate-overhead-ms");

/// Milliseconds with three decimals, from whole microseconds (integer formatting: a float's
/// costs several times more, on every response).
fn overhead_value(overhead: Duration) -> HeaderValue {
    let micros = overhead.as_micros();
    let mut text = String::with_capacity(16);
    let _ = write!(text, "{}.{:03}", micros / 1000, micros % 1000);
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Counts a request in flight on a route (for `least_busy`) until dropped; a streamed reply
/// carries it to the end of the stream.
pub(crate) struct InFlight {
    route: Arc<RouteHealth>,
    route_id: i64,
}

impl InFlight {
    fn start(route: &crate::routing::Route) -> Self {
        route.health.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            route: route.health.clone(),
            route_id: route.id,
        }
    }

    /// Counts a failure on the upstream's side that came after its answer started (a stream
    /// event past the limit) against the route's circuit.
    fn route_failed(&self, health: &Health) {
        self.route
            .failed(self.route_id, health.now_ms(), health.policy());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.route.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What went wrong so far in one request's attempts, and what to answer if nothing succeeds.
struct Failures<'r> {
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
    fn passed_over(&mut self, error: ApiError) {
        tracing::debug!(
            request_id = self.request_id,
            error = %error,
            "route passed over; trying the next candidate"
        );
        self.last = Some(error);
        self.only_rate_limits = Some(false);
    }

    fn rate_limited(&mut self, retry_after: Duration) {
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

/// The upstream's `Retry-After` (seconds) or `retry-after-ms`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    read("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| read("retry-after"))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The outcome of an upstream step bounded by the attempt's deadline: its value, or the error
/// that fails the attempt (`missing` names what did not arrive in `budget`).
fn within<T>(
    outcome: Result<Result<T, reqwest::Error>, tokio::time::error::Elapsed>,
    provider: &str,
    missing: &str,
    budget: Duration,
) -> Result<T, ApiError> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(upstream_error(provider, error)),
        Err(_) => Err(ApiError::UpstreamTimeout {
            detail: format!("{provider}: {missing} within {budget:?}"),
        }),
    }
}

/// Like [`within`], for a whole answer read under the cap.
fn within_body(
    outcome: Result<Result<Bytes, upstream::BodyError>, tokio::time::error::Elapsed>,
    provider: &str,
    budget: Duration,
) -> Result<Bytes, ApiError> {
    match outcome {
        Ok(Err(upstream::BodyError::TooLarge { limit })) => Err(ApiError::UpstreamTooLarge {
            provider: provider.to_owned(),
            limit,
        }),
        Ok(Err(upstream::BodyError::Read(error))) => Err(upstream_error(provider, error)),
        Ok(Ok(body)) => Ok(body),
        Err(_) => Err(ApiError::UpstreamTimeout {
            detail: format!("{provider}: no complete answer within {budget:?}"),
        }),
    }
}

/// Records an answered attempt on its route, account and (account, upstream model) pair.
fn target_succeeded(target: Target<'_>, latency: Duration) {
    let route = target.route;
    route.health.succeeded(route.id, latency);
    if let Some(account) = target.account {
        account.health.succeeded();
        if let Some(cooldown) = route.model_cooldown(account) {
            cooldown.succeeded();
        }
    }
}

fn upstream_error(provider: &str, error: reqwest::Error) -> ApiError {
    if error.is_timeout() {
        ApiError::UpstreamTimeout {
            detail: format!("{provider}: {error}"),
        }
    } else {
        ApiError::UpstreamFailed {
            detail: format!("{provider}: {error}"),
        }
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelObject<'a>>,
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    owned_by: &'static str,
}

impl<'a> ModelObject<'a> {
    fn of(model: &'a Arc<crate::routing::Model>) -> Self {
        Self {
            id: &model.name,
            object: "model",
            created: model.created_at,
            owned_by: "llmgate",
        }
    }
}

fn to_json(value: &impl Serialize) -> Bytes {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overhead_header_is_milliseconds_with_three_decimals() {
        for (micros, expected) in [
            (0, "0.000"),
            (7, "0.007"),
            (1_250, "1.250"),
            (42_001, "42.001"),
            (3_600_000_000, "3600000.000"),
        ] {
            assert_eq!(overhead_value(Duration::from_micros(micros)), expected);
        }
        // Below a microsecond rounds down, like the rest of the figure.
        assert_eq!(overhead_value(Duration::from_nanos(999)), "0.000");
    }
}

//! The gateway's use cases, free of axum: proxy one OpenAI-style request, list models, keep and
//! read stored responses of the Responses API.

mod attempts;
mod dialect;
mod outcome;
mod record;
mod relay;
mod request;
mod stored;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;
use tracing::Instrument;

pub use record::{Arrival, Reporting, RequestRecord};
pub use relay::{OpenStreams, error_event};
pub use request::{RequestHead, Shaping};
pub use stored::{MAX_CHAIN_BYTES, MAX_CHAIN_TURNS, ResponseStore};

use crate::auth::ClientKey;
use crate::cluster::Note;
use crate::error::ApiError;
use crate::limits::{Limits, Spend};
use crate::pricing::Nanodollars;
use crate::providers::{self, AccessTokens, ClientHeaders, UpstreamUrl};
use crate::routing::{Health, Model, SharedCatalog, Target};
use crate::secret::Secret;
use crate::telemetry::metrics::Metrics;
use crate::upstream;
use crate::usage::{self, Usage, UsageRecorder};
use crate::vocab::Endpoint;
use attempts::{Attempts, Turn};
use dialect::{Answer, Call, Refused};
use outcome::{Head, LimitScope, Outcome};
use relay::InFlight;

/// Everything a proxied request needs, cheap to clone into each request.
#[derive(Clone, Debug)]
pub struct Gateway {
    catalog: SharedCatalog,
    health: Arc<Health>,
    upstream: upstream::UpstreamClient,
    /// Deadline of a request whose model sets no `timeout`.
    request_timeout: Duration,
    /// Where each request's record goes: metrics, usage rows, log lines.
    reporting: Reporting,
    /// In-memory rate limits: keys' rpm/tpm/budgets, accounts' upstream rpm.
    limits: Limits,
    /// The streams being relayed, which the shutdown ends when its grace is over.
    streams: OpenStreams,
    /// Largest upstream answer read whole, and largest event of a streamed one
    /// (`LLMGATE_MAX_UPSTREAM_BODY_BYTES`).
    max_upstream_body: usize,
    /// Stored responses of the Responses API.
    responses: ResponseStore,
    /// The access tokens minted for accounts whose kind exchanges its credential for one.
    tokens: AccessTokens,
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

/// The response's headers, starting with the upstream's passed on. Room for all that llmgate
/// adds (its route, attempts and overhead, six rate-limit headers, the request id) so the map
/// is not grown and rehashed on the way out.
fn upstream_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(16);
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

/// The parts a [`Gateway`] is made of, built once by the application.
#[derive(Debug)]
pub struct GatewayParts {
    pub catalog: SharedCatalog,
    pub health: Arc<Health>,
    /// The one upstream client, replaced at its age.
    pub upstream: upstream::UpstreamClient,
    /// Deadline of a request whose model sets no `timeout`.
    pub request_timeout: Duration,
    pub metrics: Metrics,
    /// Share of successful requests logged (errors always are).
    pub log_sample: f64,
    pub limits: Limits,
    pub usage: UsageRecorder,
    /// `LLMGATE_MAX_UPSTREAM_BODY_BYTES`.
    pub max_upstream_body: usize,
    /// Stored responses of the Responses API.
    pub responses: ResponseStore,
    /// Access tokens of service accounts (Vertex AI), minted through `upstream`'s client.
    pub tokens: AccessTokens,
}

impl Gateway {
    pub fn new(parts: GatewayParts) -> Self {
        Self {
            catalog: parts.catalog,
            health: parts.health,
            upstream: parts.upstream,
            request_timeout: parts.request_timeout,
            reporting: Reporting {
                metrics: parts.metrics,
                usage: parts.usage,
                log_sample: parts.log_sample,
            },
            limits: parts.limits,
            streams: OpenStreams::default(),
            max_upstream_body: parts.max_upstream_body,
            responses: parts.responses,
            tokens: parts.tokens,
        }
    }

    /// Stored responses of the Responses API, for its `GET`, `DELETE` and `input_items`.
    pub fn responses(&self) -> &ResponseStore {
        &self.responses
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
        let mut record = RequestRecord::open(
            &self.reporting,
            Arrival {
                endpoint,
                request_id,
                key_name: key.name.clone(),
                key_id: key.id,
                body: body.clone(),
                started,
            },
        );
        let span = crate::telemetry::request_span(
            endpoint.name(),
            request_id,
            &key.name,
            client_headers.trace_parent.as_ref(),
        );
        let ask = Ask {
            endpoint,
            request_id,
            client_headers,
        };
        let forward = self
            .forward(&mut record, key, &ask, body)
            .instrument(span.clone());
        // A request still waiting on an upstream when the shutdown's grace ends is answered
        // (and recorded) now, rather than cut with the connection later.
        let forwarded = tokio::select! {
            biased;
            forwarded = forward => forwarded,
            () = self.streams.ending() => Err(ApiError::ShuttingDown),
        };
        span.record("model", record.model());
        span.record("attempts", record.attempts());
        match forwarded {
            Ok(Forwarded::Complete {
                status,
                mut headers,
                body,
            }) => {
                record.replied(status);
                rate_limit_headers(&record, &mut headers);
                headers.insert(OVERHEAD_HEADER, overhead_value(record.overhead()));
                record.finish();
                Ok(Reply::Complete {
                    status,
                    headers,
                    body,
                })
            }
            Ok(Forwarded::Stream(started)) => {
                let Started {
                    mut headers,
                    response,
                    in_flight,
                    answer,
                    filter_usage,
                    credential,
                    patience,
                } = *started;
                record.replied(StatusCode::OK);
                rate_limit_headers(&record, &mut headers);
                headers.insert(OVERHEAD_HEADER, overhead_value(record.overhead()));
                let shape = answer
                    .stream(record.model(), filter_usage, record.request())
                    .hiding(credential);
                let guard = relay::StreamGuard {
                    health: self.health.clone(),
                    max_event: self.max_upstream_body,
                    responses: (endpoint == Endpoint::Responses)
                        .then(|| (self.responses.clone(), key.id)),
                    patience,
                };
                let body = relay::relay(response, in_flight, shape, record, &self.streams, guard);
                Ok(Reply::Stream {
                    headers,
                    body: Box::pin(body) as BoxStream<'static, _>,
                })
            }
            Err(error) => {
                record.failed(&error);
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
        record: &mut RequestRecord,
        key: &ClientKey,
        ask: &Ask<'_>,
        body: Bytes,
    ) -> Result<Forwarded, ApiError> {
        let (head, model) = self.admit(record, key, ask.endpoint, &body).await?;
        let stream = head.stream && ask.endpoint.can_stream();
        // The stored turns a Responses request continues: read once, before any attempt.
        let history = match (&head.previous_response_id, ask.endpoint) {
            (Some(previous), Endpoint::Responses) => {
                self.responses.history(key.id, previous).await?
            }
            _ => Vec::new(),
        };
        let history: Vec<&[u8]> = history.iter().map(Vec::as_slice).collect();
        let deadline = Instant::now() + model.timeout.unwrap_or(self.request_timeout);
        let mut attempts = Attempts::new(&model, *self.health.policy(), deadline, ask.request_id);
        let request = Requested {
            ask,
            model: &head.model,
            stream,
        };
        while let Some(target) = attempts.next_target(self.now()).await {
            let send = match prepare(target, ask.endpoint, &body, &head, &history, stream)? {
                Prepared::Send(send) => send,
                Prepared::Local(answer) => {
                    record.used(Usage::default());
                    return Ok(Forwarded::local(answer));
                }
                Prepared::PassedOver(error) => {
                    attempts.failures.passed_over(error);
                    continue;
                }
            };
            // An account at its configured upstream `rpm` is skipped like a cooling one: the
            // next pick goes to another account or route, and costs no attempt.
            if let Err(wait) = self.account_admits(target) {
                attempts.failures.rate_limited(wait);
                continue;
            }
            let Some(turn) = attempts.begin(target) else {
                break;
            };
            match self.attempt(record, &request, turn, send).await {
                Outcome::Answered(forwarded) => return Ok(forwarded),
                Outcome::AccountLimited {
                    scope,
                    retry_after,
                    body,
                } => {
                    let now = self.now();
                    attempts.account_limited(target, scope, retry_after, &body, now);
                    self.share_cooldown(target, scope, now);
                }
                Outcome::CredentialRefused { status, body } => {
                    attempts.credential_refused(target, status, &body);
                }
                Outcome::RouteFailed(failure) => {
                    let before = target.route.health.open_until();
                    attempts.route_failed(target, failure, self.now());
                    self.health
                        .share_if_opened(target.route.id, &target.route.health, before);
                }
                Outcome::Refused(error) => return Err(error),
            }
        }
        Err(attempts.into_error(self.now()))
    }

    /// The request's head and model, once the key's limits let it in. Limits are checked
    /// before any upstream work, so a refusal costs the upstream nothing, and before the model
    /// is looked at, so a request refused for its body or its model still counts against the
    /// key's rate limit.
    async fn admit<'b>(
        &self,
        record: &mut RequestRecord,
        key: &ClientKey,
        endpoint: Endpoint,
        body: &'b Bytes,
    ) -> Result<(RequestHead<'b>, Arc<Model>), ApiError> {
        let head = RequestHead::parse(body);
        let model = head
            .as_ref()
            .ok()
            .and_then(|head| self.catalog.load().model(&head.model).cloned());
        let reserve = Spend {
            tokens: head.as_ref().map_or(0, |head| head.reserve(endpoint)),
            // Only a key with a dollar budget needs the worst case over the model's routes.
            cost: match (&head, &model) {
                (Ok(head), Some(model)) if key.budget_usd.is_some() => {
                    head.worst_case_cost(endpoint, model)
                }
                _ => Nanodollars::default(),
            },
        };
        let admission = self
            .limits
            .admit_shared(key, reserve)
            .await
            .map_err(|refusal| {
                self.reporting
                    .metrics
                    .rate_limited
                    .with_label_values(&[refusal.code()])
                    .inc();
                ApiError::Limited(Box::new(refusal))
            })?;
        record.admitted(admission);
        let head = head?;
        let stream = head.stream && endpoint.can_stream();
        record.named(&head.model, model.is_some(), stream);
        if !key.allows_model(&head.model) {
            return Err(ApiError::ModelNotAllowed {
                model: head.model.into_owned(),
            });
        }
        let model = model.ok_or_else(|| ApiError::ModelNotFound {
            model: head.model.to_string(),
        })?;
        Ok((head, model))
    }

    /// Tells the other replicas about the cooldown an upstream 429 just started on `target`'s
    /// account (all of it, or for the route's upstream model).
    fn share_cooldown(&self, target: Target<'_>, scope: LimitScope, now: i64) {
        let Some(account) = target.account else {
            return;
        };
        let note = match scope {
            LimitScope::Account => {
                account
                    .health
                    .cooling_until(now)
                    .map(|until| Note::AccountCooldown {
                        account_id: account.id,
                        until_unix_ms: self.health.to_unix_ms(until),
                    })
            }
            LimitScope::Model => target
                .route
                .model_cooldown(account)
                .and_then(|cooldown| cooldown.cooling_until(now))
                .map(|until| Note::ModelCooldown {
                    account_id: account.id,
                    model: target.route.upstream_model.clone(),
                    until_unix_ms: self.health.to_unix_ms(until),
                }),
        };
        if let Some(note) = note {
            self.health.share(note);
        }
    }

    /// Whether `target`'s account is under its configured upstream `rpm`; else how long until
    /// it is.
    fn account_admits(&self, target: Target<'_>) -> Result<(), Duration> {
        match target.account {
            Some(account) => match account.rpm {
                Some(rpm) => self.limits.admit_account(account.id, rpm),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// One attempt: sends `send` to `turn`'s target within the attempt's deadline, and
    /// classifies what comes back.
    async fn attempt(
        &self,
        record: &mut RequestRecord,
        request: &Requested<'_, '_>,
        turn: Turn<'_>,
        send: Send,
    ) -> Outcome<Forwarded> {
        let Turn {
            target,
            number,
            budget,
        } = turn;
        let route = target.route;
        let provider = route.provider.name.as_str();
        let attempt_span = crate::telemetry::attempt_span(provider, route.id, number);
        // One deadline for the attempt: the access token when one is minted, the response
        // headers, and for a whole answer its body too (a stream's body is bounded by the read
        // timeout between bytes instead, as every wait on the upstream is).
        let deadline = tokio::time::Instant::now() + budget;
        let access_token = match target.account {
            Some(account) if route.provider.kind.mints_access_tokens() => {
                let minted = tokio::time::timeout_at(deadline, self.tokens.token(account))
                    .instrument(attempt_span.clone())
                    .await;
                match outcome::minted(minted, provider, budget) {
                    Ok(token) => Some(token),
                    Err(failed) => return failed,
                }
            }
            _ => None,
        };
        let built = providers::build_request(
            &self.upstream.client(),
            target,
            send.url,
            send.body,
            request.ask.request_id,
            request.ask.client_headers,
            access_token.as_ref(),
        );
        let mut upstream_request = match built {
            Ok(built) => built,
            Err(failure) => return outcome::unsigned(failure),
        };
        if crate::telemetry::exporting_traces() {
            let mut trace_headers = HeaderMap::new();
            crate::telemetry::inject_trace_context(&attempt_span, &mut trace_headers);
            upstream_request = upstream_request.headers(trace_headers);
        }
        let in_flight = InFlight::start(route);
        record.attempt(target);
        let sent = Instant::now();
        let mut patience = upstream::Patience::new(Some(deadline), self.upstream.read_timeout());
        let result = patience
            .wait(upstream_request.send())
            .instrument(attempt_span)
            .await;
        record.waited(sent.elapsed());
        let response = match outcome::sent(result, provider, budget) {
            Ok(response) => response,
            Err(failed) => return failed.into(),
        };
        patience.heard();
        let status = response.status();
        match outcome::of_status(status, target.account.is_some()) {
            Head::RateLimited => {
                let retry_after = outcome::retry_after(response.headers());
                let body = self.error_body(response, target, &mut patience).await;
                outcome::rate_limited(retry_after, body)
            }
            Head::CredentialRefused => Outcome::CredentialRefused {
                status,
                body: self.error_body(response, target, &mut patience).await,
            },
            Head::ServerError => {
                let body = self.error_body(response, target, &mut patience).await;
                outcome::server_error(provider, status, &body)
            }
            Head::Redirect => outcome::redirected(provider, status, response.headers()),
            Head::Answer => {
                let pending = Pending {
                    turn,
                    answer: send.answer,
                    filter_usage: send.filter_usage,
                    in_flight,
                    sent,
                    patience,
                };
                self.answered(record, request, response, pending).await
            }
        }
    }

    /// The upstream answered (a success, or a client error that is the client's own): a
    /// stream is handed on as it starts, a whole answer is read (within the cap and the
    /// attempt's deadline), translated and its usage noted.
    async fn answered(
        &self,
        record: &mut RequestRecord,
        request: &Requested<'_, '_>,
        response: reqwest::Response,
        pending: Pending<'_>,
    ) -> Outcome<Forwarded> {
        let target = pending.turn.target;
        let provider = target.route.provider.name.as_str();
        let status = response.status();
        let mut headers = upstream_headers(response.headers());
        if let Ok(value) = HeaderValue::from_str(provider) {
            headers.insert(HeaderName::from_static("x-llmgate-route"), value);
        }
        headers.insert(
            HeaderName::from_static("x-llmgate-attempts"),
            HeaderValue::from(pending.turn.number),
        );
        pending.answer.headers(&mut headers);
        let is_event_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.starts_with("text/event-stream")
                    || v.starts_with(crate::translate::bedrock::EVENT_STREAM_CONTENT_TYPE)
            });
        if status.is_success() && request.stream && is_event_stream {
            target_succeeded(&self.health, target, pending.sent.elapsed());
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            );
            return Outcome::Answered(Forwarded::Stream(Box::new(Started {
                headers,
                response,
                in_flight: pending.in_flight,
                answer: pending.answer,
                filter_usage: pending.filter_usage,
                credential: target.account.map(|account| account.api_key.clone()),
                patience: pending.patience,
            })));
        }
        // Nothing has reached the client yet, so a body that fails to arrive, or a success
        // that is not JSON, still counts as the upstream's failure and moves on.
        let read = Instant::now();
        let mut patience = pending.patience;
        let result = upstream::read_body(response, self.max_upstream_body, &mut patience).await;
        record.waited(read.elapsed());
        let body = match outcome::read(result, provider, pending.turn.budget) {
            Ok(body) => body,
            Err(failed) => return failed.into(),
        };
        let answer = pending.answer;
        let body = if status.is_success() {
            let reported = match outcome::answered(provider, status, &body) {
                Ok(reported) => reported,
                Err(failed) => return failed.into(),
            };
            let (body, usage_body) = match answer.complete(body, request.model) {
                Ok(translated) => translated,
                Err(error) => return outcome::unreadable(provider, error),
            };
            record.used(if !request.ask.endpoint.generates() {
                Usage::default()
            } else if let Some(reported) = reported.filter(|_| answer.is_openai_passthrough()) {
                reported
            } else {
                let answered = usage_body.as_deref().unwrap_or_default();
                usage::usage_of_response(record.model(), record.request(), answered)
            });
            // Kept before the client has the answer, so its next turn finds it.
            if request.ask.endpoint == Endpoint::Responses {
                self.responses
                    .capture(record.key_id(), record.request(), &body);
            }
            body
        } else {
            if let Some(refusal) = outcome::refused(status, &body, provider) {
                return refusal;
            }
            // An error answer may echo the credential it was sent: hidden before it is relayed
            // (and logged as the request's outcome).
            answer.error(status.as_u16(), outcome::redacted(body, target))
        };
        if !answer.is_passthrough() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        target_succeeded(&self.health, target, pending.sent.elapsed());
        drop(pending.in_flight);
        Outcome::Answered(Forwarded::Complete {
            status,
            headers,
            body,
        })
    }

    /// The start of an error answer (at most [`outcome::ERROR_BODY_LIMIT`] bytes, read within
    /// the attempt's `patience`), with the credentials in it hidden; empty when it does not
    /// arrive.
    async fn error_body(
        &self,
        response: reqwest::Response,
        target: Target<'_>,
        patience: &mut upstream::Patience,
    ) -> Bytes {
        match upstream::read_error_body(response, outcome::ERROR_BODY_LIMIT, patience).await {
            Ok(body) => outcome::redacted(body, target),
            Err(_) => Bytes::new(),
        }
    }

    /// The health clock, in milliseconds.
    fn now(&self) -> i64 {
        self.health.now_ms()
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
    /// A whole answer; its usage is already in the [`RequestRecord`].
    Complete {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// A stream that started; boxed, as it is several times a whole answer's size (one
    /// allocation for a stream, whose relay allocates more anyway).
    Stream(Box<Started>),
}

/// A stream's start: what its relay needs.
struct Started {
    headers: HeaderMap,
    response: reqwest::Response,
    in_flight: InFlight,
    /// How the upstream's events become the client's.
    answer: Answer,
    /// Drop the usage-only chunk: llmgate asked for it, the client did not.
    filter_usage: bool,
    /// The answering account's credential, hidden in any error event of the stream.
    credential: Option<Secret>,
    /// The attempt's timer, which goes on bounding the silence between two chunks.
    patience: upstream::Patience,
}

impl Forwarded {
    /// An answer llmgate gives itself, with this JSON body.
    fn local(body: Bytes) -> Self {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Self::Complete {
            status: StatusCode::OK,
            headers,
            body,
        }
    }
}

/// What stays the same over a request's attempts, known when it arrives.
struct Ask<'a> {
    endpoint: Endpoint,
    request_id: &'a str,
    client_headers: &'a ClientHeaders,
}

/// What an attempt needs of the request, once its head is read.
struct Requested<'r, 'a> {
    ask: &'r Ask<'a>,
    /// The model as the client named it, in a translated answer.
    model: &'r str,
    /// The client asked for a stream, and the endpoint can give one.
    stream: bool,
}

/// What the request becomes for one target.
enum Prepared {
    /// An upstream call.
    Send(Send),
    /// llmgate answers itself, with this JSON body.
    Local(Bytes),
    /// This kind of provider cannot serve the endpoint: the route is passed over, like an
    /// unusable one, and this is the answer should no other serve.
    PassedOver(ApiError),
}

/// The request for `target` in its provider's dialect; an error when the request cannot be
/// expressed there (the client's).
fn prepare(
    target: Target<'_>,
    endpoint: Endpoint,
    body: &Bytes,
    head: &RequestHead<'_>,
    history: &[&[u8]],
    stream: bool,
) -> Result<Prepared, ApiError> {
    match dialect::prepare(target, endpoint, body, head, history, stream) {
        Ok(Call::Upstream {
            url,
            body,
            answer,
            filter_usage,
        }) => Ok(Prepared::Send(Send {
            url,
            body,
            answer,
            filter_usage,
        })),
        Ok(Call::Local(answer)) => Ok(Prepared::Local(answer)),
        Err(Refused::Endpoint(why)) => Ok(Prepared::PassedOver(ApiError::invalid_request(why))),
        Err(Refused::Request(error)) => Err(error.into()),
    }
}

/// What one attempt sends, and how its answer reaches the client (from [`dialect::prepare`]).
struct Send {
    url: UpstreamUrl,
    body: Bytes,
    answer: Answer,
    /// Drop the usage-only chunk: llmgate asked for it, the client did not.
    filter_usage: bool,
}

/// An attempt whose upstream answered, until its answer is handed on.
struct Pending<'m> {
    turn: Turn<'m>,
    answer: Answer,
    filter_usage: bool,
    in_flight: InFlight,
    /// When the request was sent.
    sent: Instant,
    /// The attempt's deadline and read timeout, and its one timer.
    patience: upstream::Patience,
}

/// OpenAI's `x-ratelimit-*` headers, for keys that have limits.
fn rate_limit_headers(record: &RequestRecord, headers: &mut HeaderMap) {
    if let Some(admission) = record.admission() {
        admission.status().apply(headers);
    }
}

/// `x-llmgate-overhead-ms`: the time llmgate itself added before the response started.
const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-llmgate-overhead-ms");

/// Milliseconds with three decimals, from whole microseconds, written digit by digit from the
/// right (a float's formatting costs several times more, and `fmt`'s integer formatting about
/// four times this, on every response).
fn overhead_value(overhead: Duration) -> HeaderValue {
    // In u64 (584,000 years of microseconds): u128 division costs several times more per digit.
    let mut rest = u64::try_from(overhead.as_micros()).unwrap_or(u64::MAX);
    // u64::MAX has 20 digits; with the point, 21 bytes.
    let mut text = [0u8; 24];
    let mut start = text.len();
    for position in 0.. {
        if position == 3 {
            start -= 1;
            text[start] = b'.';
        }
        start -= 1;
        text[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 && position >= 3 {
            break;
        }
    }
    HeaderValue::from_bytes(&text[start..]).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Records an answered attempt on its route, account and (account, upstream model) pair.
fn target_succeeded(health: &Health, target: Target<'_>, latency: Duration) {
    let route = target.route;
    if route.health.succeeded(route.id, latency) {
        health.share(Note::CircuitClosed { route_id: route.id });
    }
    if let Some(account) = target.account {
        account.health.succeeded();
        if let Some(cooldown) = route.model_cooldown(account) {
            cooldown.succeeded();
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

//! `RequestRecord`: the facts of one proxied request, reported exactly once when it is over —
//! as metrics, one usage row and one structured log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;

use crate::error::ApiError;
use crate::limits::Admission;
use crate::pricing::Prices;
use crate::routing::Target;
use crate::telemetry::metrics::{Metrics, UNKNOWN_MODEL, status_class};
use crate::usage::{Usage, UsageEvent, UsageRecorder};
use crate::vocab::Endpoint;

/// Where a finished record goes, shared by every request.
#[derive(Clone, Debug)]
pub struct Reporting {
    pub metrics: Metrics,
    pub usage: UsageRecorder,
    /// Share of successful requests that get a log line (errors always do).
    pub log_sample: f64,
}

/// What a request is, known when it arrives.
#[derive(Debug)]
pub struct Arrival<'a> {
    pub endpoint: Endpoint,
    pub request_id: &'a str,
    pub key_name: Arc<str>,
    pub key_id: i64,
    /// The client's request body.
    pub body: Bytes,
    /// When the request arrived.
    pub started: Instant,
}

/// Accumulates what happens to one request and reports it when finished (or dropped: a client
/// that goes away mid-stream still gets its request reported).
///
/// Written only through its methods, each named for a step of the request: [`open`](Self::open)
/// on arrival, [`admitted`](Self::admitted), [`named`](Self::named),
/// [`attempt`](Self::attempt) and [`waited`](Self::waited) while it is forwarded,
/// [`used`](Self::used) when its usage is known, [`replied`](Self::replied) when the response
/// starts, and [`failed`](Self::failed) / [`finish`](Self::finish) when it is over.
#[derive(Debug)]
pub struct RequestRecord {
    metrics: Metrics,
    endpoint: Endpoint,
    request_id: String,
    key_name: Arc<str>,
    key_id: i64,
    /// The client's request body, to estimate usage when the upstream reports none.
    request: Bytes,
    /// The model as logged and kept in the request log: a configured model's name, or an
    /// escaped excerpt of a name that is not configured (see [`RequestRecord::named`]).
    model: String,
    /// Whether `model` names a configured model; only then is it a metrics label value and a
    /// usage rollup row of its own.
    model_configured: bool,
    stream: bool,
    started: Instant,
    /// Share of successful requests that get a log line (errors always do).
    log_sample: f64,
    /// Provider of the route that answered (or last failed).
    route: Option<String>,
    first_route: Option<i64>,
    last_route: Option<i64>,
    account_id: Option<i64>,
    attempts: u32,
    /// Time spent waiting on upstreams, over all attempts.
    upstream_wait: Duration,
    /// When the response (headers) went to the client.
    first_byte: Option<Instant>,
    status: u16,
    /// A stream that broke after it started (the client got an error event, and `status` is
    /// that error's).
    stream_error: Option<String>,
    /// The client left before the response was complete.
    client_gone: bool,
    /// Tokens used, once known (reported or estimated).
    usage: Option<Usage>,
    /// The prices of the route that answered (or last failed): the request's cost is its usage
    /// at these, so a failover to a dearer route costs the dearer price.
    prices: Option<Prices>,
    /// The key's rate-limit and budget reservation, settled with the usage when reported.
    admission: Option<Admission>,
    recorder: UsageRecorder,
    reported: bool,
}

impl RequestRecord {
    /// The record of a request that just arrived: counted in flight until it is reported.
    pub fn open(reporting: &Reporting, arrival: Arrival<'_>) -> Self {
        let metrics = reporting.metrics.clone();
        metrics.in_flight.inc();
        Self {
            metrics,
            endpoint: arrival.endpoint,
            request_id: arrival.request_id.to_owned(),
            key_name: arrival.key_name,
            key_id: arrival.key_id,
            request: arrival.body,
            model: String::new(),
            model_configured: false,
            stream: false,
            started: arrival.started,
            log_sample: reporting.log_sample,
            route: None,
            first_route: None,
            last_route: None,
            account_id: None,
            attempts: 0,
            upstream_wait: Duration::ZERO,
            first_byte: None,
            status: 0,
            stream_error: None,
            client_gone: false,
            usage: None,
            prices: None,
            admission: None,
            recorder: reporting.usage.clone(),
            reported: false,
        }
    }

    /// The key's limits let the request in: `admission` is settled with its usage.
    pub fn admitted(&mut self, admission: Admission) {
        self.admission = Some(admission);
    }

    /// The key's rate-limit state, for the `x-ratelimit-*` headers (keys that have limits).
    pub fn admission(&self) -> Option<&Admission> {
        self.admission.as_ref()
    }

    /// Notes an attempt at `target`.
    pub fn attempt(&mut self, target: Target<'_>) {
        let route = target.route;
        self.attempts += 1;
        self.account_id = target.account.map(|a| a.id);
        self.first_route.get_or_insert(route.id);
        self.last_route = Some(route.id);
        self.prices = route.terms.prices;
        route
            .provider
            .name
            .clone_into(self.route.get_or_insert_with(String::new));
    }

    /// Adds `wait` to the time spent waiting on upstreams.
    pub fn waited(&mut self, wait: Duration) {
        self.upstream_wait += wait;
    }

    /// The tokens the request used, once known.
    pub fn used(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    /// The usage so far, or else `estimate(model, request)`'s.
    pub fn used_or(&mut self, estimate: impl FnOnce(&str, &[u8]) -> Usage) {
        if self.usage.is_none() {
            self.usage = Some(estimate(&self.model, &self.request));
        }
    }

    /// The response starts now, with `status`.
    pub fn replied(&mut self, status: StatusCode) {
        self.first_byte = Some(Instant::now());
        self.status = status.as_u16();
    }

    /// The request is answered with `error` (no upstream answer reached the client), and
    /// reported.
    pub fn failed(&mut self, error: &ApiError) {
        self.replied(error.status());
        self.finish();
    }

    /// A stream that had started ends with `error` (the client got its error event): recorded
    /// as the request's outcome, the same status in the log line, the usage row and the metrics.
    pub fn stream_failed(&mut self, error: &ApiError) {
        self.status = error.status().as_u16();
        self.stream_error = Some(error.to_string());
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The id of the client key the request came with.
    pub fn key_id(&self) -> i64 {
        self.key_id
    }

    /// The request's body as the client sent it.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// The model as logged.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The provider of the route that answered (or last failed).
    pub fn provider(&self) -> Option<&str> {
        self.route.as_deref()
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Names the request's model, `configured` when the catalog has it, and whether it is
    /// streamed (a streamed request is recorded as one however it ends, before its first byte
    /// too). Any other name is the client's choice at any length and with any bytes: only an
    /// escaped excerpt of it is kept.
    pub fn named(&mut self, name: &str, configured: bool, stream: bool) {
        self.stream = stream;
        self.model_configured = configured;
        if configured {
            name.clone_into(&mut self.model);
        } else {
            self.model =
                crate::untrusted::excerpt(name, crate::untrusted::ECHOED_CHARS).into_owned();
        }
    }

    /// The model's metrics label: a configured model's name, else [`UNKNOWN_MODEL`].
    pub fn model_label(&self) -> &str {
        if self.model_configured {
            &self.model
        } else {
            UNKNOWN_MODEL
        }
    }

    /// Time llmgate itself added so far: elapsed time minus upstream waiting.
    pub fn overhead(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.upstream_wait)
    }

    /// Reports the request. Later calls (and the drop) do nothing.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        let total = self.started.elapsed();
        let endpoint = self.endpoint.name();
        let metrics = &self.metrics;
        metrics.in_flight.dec();
        let route = self.route.as_deref().unwrap_or("none");
        metrics
            .requests
            .with_label_values(&[
                endpoint,
                self.model_label(),
                route,
                status_class(self.status),
            ])
            .inc();
        metrics.request_duration.observe(self.endpoint, total);
        metrics
            .upstream_duration
            .observe(self.endpoint, self.upstream_wait);
        let overhead = self
            .first_byte
            .unwrap_or_else(Instant::now)
            .duration_since(self.started)
            .saturating_sub(self.upstream_wait);
        metrics.overhead.observe(self.endpoint, overhead);
        if let Some(first_byte) = self.first_byte {
            metrics
                .time_to_first_byte
                .observe(self.endpoint, first_byte.duration_since(self.started));
        }
        if self.attempts > 1 {
            metrics.retries.inc_by(u64::from(self.attempts - 1));
            if self.status < 400 && self.first_route != self.last_route {
                metrics.failovers.inc();
            }
        }
        let usage = self.usage.unwrap_or_default();
        // The one place a request's cost is computed: when its usage is settled.
        let cost = usage.cost(self.prices.as_ref());
        if let Some(admission) = self.admission.take() {
            admission.settle(crate::limits::Spend {
                tokens: usage.tokens(),
                cost,
            });
        }
        if cost.0 > 0 {
            metrics
                .cost
                .with_label_values(&[self.model_label(), route])
                .inc_by(cost.usd());
        }
        for (kind, tokens) in [
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
            ("cached", usage.cached_tokens),
            ("reasoning", usage.reasoning_tokens),
        ] {
            if tokens > 0 {
                metrics
                    .tokens
                    .with_label_values(&[self.model_label(), kind])
                    .inc_by(tokens);
            }
        }
        let ms_u64 = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.recorder.record(UsageEvent {
            at_ms: crate::usage::now_ms(),
            request_id: self.request_id.clone(),
            key_id: self.key_id,
            model: self.model.clone(),
            model_configured: self.model_configured,
            endpoint,
            stream: self.stream,
            provider: self.route.clone(),
            route_id: self.last_route,
            account_id: self.account_id,
            // One outcome everywhere: a stream that broke after it started carries the status
            // of its error event (502, 504, 503), here as in the log line and the metrics.
            status: self.status,
            attempts: self.attempts,
            latency_ms: ms_u64(total),
            ttfb_ms: self
                .first_byte
                .map(|t| ms_u64(t.duration_since(self.started))),
            usage,
            cost,
        });
        let failed = self.status >= 400 || self.stream_error.is_some();
        if failed || self.log_sample >= 1.0 || rand::random::<f64>() < self.log_sample {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            tracing::info!(
                target: "llmgate::request",
                request_id = %self.request_id,
                key = %self.key_name,
                endpoint,
                model = %self.model,
                route,
                status = self.status,
                attempts = self.attempts,
                stream = self.stream,
                latency_ms = ms(total),
                ttfb_ms = self.first_byte.map(|t| ms(t.duration_since(self.started))),
                upstream_ms = ms(self.upstream_wait),
                overhead_ms = ms(overhead),
                // The exceptions appear only when they happen: every field costs formatting.
                stream_error = self.stream_error.as_deref(),
                client_gone = self.client_gone.then_some(true),
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                estimated = usage.estimated.then_some(true),
                cost_usd = cost.usd(),
                "request"
            );
        }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        if !self.reported {
            // Dropped without an explicit finish: the client went away (or the task was
            // cancelled) before the response was complete.
            self.client_gone = true;
            if self.status == 0 {
                self.status = 499;
            }
            self.finish();
        }
    }
}

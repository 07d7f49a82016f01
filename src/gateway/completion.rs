//! `Completion`: the facts of one proxied request, reported exactly once when it is over —
//! as metrics and as one structured log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::limits::Admission;
use crate::telemetry::metrics::{Metrics, UNKNOWN_MODEL, status_class};
use crate::usage::{Usage, UsageEvent, UsageRecorder};
use crate::vocab::Endpoint;

/// Accumulates what happens to one request and reports it when finished (or dropped: a client
/// that goes away mid-stream still gets its request reported).
#[derive(Debug)]
pub struct Completion {
    pub metrics: Metrics,
    pub endpoint: Endpoint,
    pub request_id: String,
    pub key_name: Arc<str>,
    pub key_id: i64,
    /// The client's request body, to estimate usage when the upstream reports none.
    pub request: Bytes,
    /// The model as logged and kept in the request log: a configured model's name, or an
    /// escaped excerpt of a name that is not configured (see [`Completion::set_model`]).
    pub model: String,
    /// Whether `model` names a configured model; only then is it a metrics label value and a
    /// usage rollup row of its own.
    pub model_configured: bool,
    pub stream: bool,
    pub started: Instant,
    /// Share of successful requests that get a log line (errors always do).
    pub log_sample: f64,
    /// Provider of the route that answered (or last failed).
    pub route: Option<String>,
    pub first_route: Option<i64>,
    pub last_route: Option<i64>,
    pub account_id: Option<i64>,
    pub attempts: u32,
    /// Time spent waiting on upstreams, over all attempts.
    pub upstream_wait: Duration,
    /// When the response (headers) went to the client.
    pub first_byte: Option<Instant>,
    pub status: u16,
    /// A stream that broke after it started (the client got an error event, and `status` is
    /// that error's).
    pub stream_error: Option<String>,
    /// The client left before the response was complete.
    pub client_gone: bool,
    /// Tokens used, once known (reported or estimated).
    pub usage: Option<Usage>,
    /// The key's rate-limit and budget reservation, settled with the usage when reported.
    pub admission: Option<Admission>,
    recorder: UsageRecorder,
    reported: bool,
}

impl Completion {
    #[expect(
        clippy::too_many_arguments,
        reason = "one constructor for the facts known at arrival"
    )]
    pub fn start(
        metrics: Metrics,
        recorder: UsageRecorder,
        endpoint: Endpoint,
        request_id: &str,
        key_name: Arc<str>,
        key_id: i64,
        request: Bytes,
        started: Instant,
        log_sample: f64,
    ) -> Self {
        metrics.in_flight.inc();
        Self {
            metrics,
            endpoint,
            request_id: request_id.to_owned(),
            key_name,
            key_id,
            request,
            model: String::new(),
            model_configured: false,
            stream: false,
            started,
            log_sample,
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
            admission: None,
            recorder,
            reported: false,
        }
    }

    /// Notes an attempt through `route_id` of provider `provider` with `account_id`.
    pub fn attempt(&mut self, route_id: i64, provider: &str, account_id: Option<i64>) {
        self.attempts += 1;
        self.account_id = account_id;
        self.first_route.get_or_insert(route_id);
        self.last_route = Some(route_id);
        provider.clone_into(self.route.get_or_insert_with(String::new));
    }

    /// Names the request's model, `configured` when the catalog has it. Any other name is the
    /// client's choice at any length and with any bytes: only an escaped excerpt of it is kept.
    pub fn set_model(&mut self, name: &str, configured: bool) {
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
        Metrics::observe(&metrics.request_duration, endpoint, total);
        Metrics::observe(&metrics.upstream_duration, endpoint, self.upstream_wait);
        let overhead = self
            .first_byte
            .unwrap_or_else(Instant::now)
            .duration_since(self.started)
            .saturating_sub(self.upstream_wait);
        Metrics::observe(&metrics.overhead, endpoint, overhead);
        if let Some(first_byte) = self.first_byte {
            Metrics::observe(
                &metrics.time_to_first_byte,
                endpoint,
                first_byte.duration_since(self.started),
            );
        }
        if self.attempts > 1 {
            metrics.retries.inc_by(u64::from(self.attempts - 1));
            if self.status < 400 && self.first_route != self.last_route {
                metrics.failovers.inc();
            }
        }
        let usage = self.usage.unwrap_or_default();
        if let Some(admission) = self.admission.take() {
            admission.settle(usage.tokens());
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
                "request"
            );
        }
    }
}

impl Drop for Completion {
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

//! Prometheus metrics: one registry per app, rendered in the text exposition format on
//! `GET /metrics`. Label values are bounded: endpoints, model and provider names from the
//! configuration (a model name a client sent that is not configured is [`UNKNOWN_MODEL`]),
//! status classes, token kinds; never keys, request ids or any other text a client chose.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::vocab::Endpoint;

/// Every metric llmgate exports, behind one `Arc`: each request's record holds a clone, which
/// must cost one reference count, not one for each of the thirty-odd metrics inside.
#[derive(Clone, Debug)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;

    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

/// The metrics themselves; see [`Metrics`].
#[derive(Debug)]
pub struct MetricSet {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: ByEndpoint,
    pub upstream_duration: ByEndpoint,
    pub overhead: ByEndpoint,
    pub time_to_first_byte: ByEndpoint,
    pub tokens: IntCounterVec,
    /// USD, by public model and provider: a float counter, for dashboards only (the exact
    /// figures are the rollups' integer nano-dollars).
    pub cost: CounterVec,
    pub in_flight: IntGauge,
    pub open_streams: IntGauge,
    /// 1 while Redis answers (limits shared by replicas), 0 while it does not or none is set.
    pub redis_up: IntGauge,
    pub retries: IntCounter,
    pub failovers: IntCounter,
    pub rate_limited: IntCounterVec,
    pub circuit_state: IntGaugeVec,
    pub account_cooling: IntGaugeVec,
    pub key_cache: IntCounterVec,
    pub usage_flush_duration: Histogram,
    pub usage_flush_rows: HistogramVec,
    pub usage_flush_errors: IntCounter,
    pub request_log_dropped: IntCounter,
    pub responses_unstored: IntCounter,
    pub unknown_endpoints: IntCounterVec,
    /// jemalloc's own figures, read at each rendering, in a `jemalloc-diagnostics` build.
    #[cfg(feature = "jemalloc-diagnostics")]
    allocator: IntGaugeVec,
}

/// A histogram labelled by endpoint, each endpoint's series looked up once, when first
/// observed: `with_label_values` hashes the label and takes the vector's lock on every call,
/// four times on every request (callgrind, OPTIMIZATION.md).
#[derive(Clone, Debug)]
pub struct ByEndpoint {
    histograms: HistogramVec,
    series: Arc<[OnceLock<Histogram>; Endpoint::COUNT]>,
}

impl ByEndpoint {
    fn new(histograms: HistogramVec) -> Self {
        Self {
            histograms,
            series: Arc::new(std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// Records one observation for `endpoint`, in seconds.
    pub fn observe(&self, endpoint: Endpoint, duration: Duration) {
        self.series[endpoint as usize]
            .get_or_init(|| self.histograms.with_label_values(&[endpoint.name()]))
            .observe(duration.as_secs_f64());
    }
}

/// Latency buckets from 100 µs to about 100 s, in seconds.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.0001, 2.5, 16).unwrap_or_default()
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let by_endpoint = |name: &str, help: &str| {
            let metric = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(latency_buckets()),
                &["endpoint"],
            )?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(ByEndpoint::new(metric))
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let metric =
                HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let unlabelled_histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let single = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        Ok(Self(Arc::new(MetricSet {
            requests: counter(
                "llmgate_requests_total",
                "Proxied requests by endpoint, public model, route (provider) and status class.",
                &["endpoint", "model", "route", "status_class"],
            )?,
            request_duration: by_endpoint(
                "llmgate_request_duration_seconds",
                "Total time of proxied requests, to the end of the response.",
            )?,
            upstream_duration: by_endpoint(
                "llmgate_upstream_duration_seconds",
                "Time spent waiting on upstreams (all attempts, to response headers or whole body).",
            )?,
            overhead: by_endpoint(
                "llmgate_overhead_seconds",
                "Time llmgate itself added: total time to the response minus upstream waiting.",
            )?,
            time_to_first_byte: by_endpoint(
                "llmgate_time_to_first_byte_seconds",
                "Time from request to the first response byte sent to the client.",
            )?,
            tokens: counter(
                "llmgate_tokens_total",
                "Tokens by public model and kind (prompt, completion, cached, reasoning).",
                &["model", "kind"],
            )?,
            cost: {
                let metric = CounterVec::new(
                    Opts::new(
                        "llmgate_cost_usd_total",
                        "What requests cost in USD at the prices of the routes that served them, \
                         by public model and provider (estimated usage included).",
                    ),
                    &["model", "provider"],
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            in_flight: gauge(
                "llmgate_requests_in_flight",
                "Proxied requests being served now.",
            )?,
            redis_up: gauge(
                "llmgate_redis_up",
                "1 while Redis answers and limits are shared by every replica; 0 while it is unreachable (limits per process) or not configured",
            )?,
            open_streams: gauge(
                "llmgate_open_streams",
                "Streamed responses being relayed now.",
            )?,
            retries: single(
                "llmgate_upstream_retries_total",
                "Upstream attempts beyond the first of a request.",
            )?,
            failovers: single(
                "llmgate_failovers_total",
                "Requests answered by a different route than the first one tried.",
            )?,
            rate_limited: counter(
                "llmgate_rate_limited_total",
                "Requests refused with 429, by reason.",
                &["reason"],
            )?,
            circuit_state: gauges(
                "llmgate_route_circuit_state",
                "Circuit breaker of each route: 0 closed, 1 open, 2 half-open.",
                &["model", "provider", "route_id"],
            )?,
            account_cooling: gauges(
                "llmgate_account_unavailable",
                "Whether each account serves each upstream model now: 0 yes, 1 cooling down after \
                 an upstream 429 for that model, 2 invalid credential, 3 the whole account \
                 cooling down (out of quota).",
                &["provider", "account", "upstream_model"],
            )?,
            key_cache: counter(
                "llmgate_key_cache_lookups_total",
                "Client key lookups by result (hit or miss).",
                &["result"],
            )?,
            usage_flush_duration: unlabelled_histogram(
                "llmgate_usage_flush_duration_seconds",
                "Duration of each usage writer flush that had something to write (one transaction).",
                latency_buckets(),
            )?,
            usage_flush_rows: histogram(
                "llmgate_usage_flush_rows",
                "Rows written by each successful usage writer flush, by table (rollup or log).",
                &["table"],
                prometheus::exponential_buckets(1.0, 4.0, 10).unwrap_or_default(),
            )?,
            usage_flush_errors: single(
                "llmgate_usage_flush_errors_total",
                "Usage writer flushes that failed; their data is kept for the next flush.",
            )?,
            request_log_dropped: single(
                "llmgate_request_log_dropped_total",
                "Request log rows dropped because the queue was full (counters are never dropped).",
            )?,
            responses_unstored: single(
                "llmgate_responses_unstored_total",
                "Responses API responses not stored because too many waited for the database.",
            )?,
            unknown_endpoints: counter(
                "llmgate_unknown_endpoint_requests_total",
                "Requests under /v1/ to a path or method llmgate does not serve (answered 404).",
                &["method"],
            )?,
            #[cfg(feature = "jemalloc-diagnostics")]
            allocator: gauges(
                "llmgate_allocator_bytes",
                "jemalloc's figures (a jemalloc-diagnostics build only): allocated (live), \
                 active (pages of live allocations), resident, mapped, retained, metadata.",
                &["kind"],
            )?,
            registry,
        })))
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        #[cfg(feature = "jemalloc-diagnostics")]
        self.read_allocator();
        let mut out = Vec::with_capacity(16 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(feature = "jemalloc-diagnostics")]
impl Metrics {
    /// Refreshes jemalloc's cached statistics and copies them into `llmgate_allocator_bytes`. A
    /// figure jemalloc cannot give is left as it was.
    fn read_allocator(&self) {
        use tikv_jemalloc_ctl::{epoch, stats};
        if epoch::advance().is_err() {
            return;
        }
        let figures = [
            ("allocated", stats::allocated::read()),
            ("active", stats::active::read()),
            ("resident", stats::resident::read()),
            ("mapped", stats::mapped::read()),
            ("retained", stats::retained::read()),
            ("metadata", stats::metadata::read()),
        ];
        for (kind, bytes) in figures {
            if let Ok(bytes) = bytes {
                self.allocator
                    .with_label_values(&[kind])
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
    }
}

/// The model label (and usage rollup model) of a request whose model is not a configured one:
/// a client's name never becomes a label value or a rollup row of its own.
pub const UNKNOWN_MODEL: &str = "unknown";

/// The status class label of a status code: `2xx`, `4xx`, `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_names_every_metric_with_help_and_type() {
        let metrics = Metrics::new().unwrap();
        metrics
            .requests
            .with_label_values(&["chat", "m", "p", "2xx"])
            .inc();
        metrics
            .request_duration
            .observe(Endpoint::Messages, Duration::from_millis(3));
        metrics
            .request_duration
            .observe(Endpoint::Messages, Duration::from_millis(5));
        let text = metrics.render();
        assert!(text.contains("# TYPE llmgate_requests_total counter"));
        assert!(text.contains(
            r#"llmgate_requests_total{endpoint="chat",model="m",route="p",status_class="2xx"} 1"#
        ));
        assert!(text.contains("llmgate_request_duration_seconds_count{endpoint=\"messages\"} 2"));
        // Only the endpoints observed have series.
        assert!(!text.contains("llmgate_request_duration_seconds_count{endpoint=\"embeddings\"}"));
        assert!(text.contains("# HELP llmgate_requests_in_flight"));
    }

    #[cfg(feature = "jemalloc-diagnostics")]
    #[test]
    fn a_diagnosis_build_renders_the_allocators_figures() {
        let metrics = Metrics::new().unwrap();
        let text = metrics.render();
        for kind in [
            "allocated",
            "active",
            "resident",
            "mapped",
            "retained",
            "metadata",
        ] {
            assert!(
                text.contains(&format!("llmgate_allocator_bytes{{kind=\"{kind}\"}}")),
                "{kind} missing from {text}"
            );
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}

//! Telemetry: metrics (see `metrics`), logs and traces. Logs are a tracing subscriber writing to
//! stderr, filtered by `LLMGATE_LOG` and formatted as `LLMGATE_LOG_FORMAT` (`pretty`, the
//! default, or `json`). With `LLMGATE_OTLP_ENDPOINT` set, spans are also exported over
//! OTLP/HTTP (JSON), and W3C trace context is propagated to upstreams.

mod fields;
pub mod metrics;
pub mod output;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// What `init` set up and what must be flushed at exit.
#[derive(Debug, Default)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    logs: output::LogOutput,
}

impl Telemetry {
    /// Writes the log lines and exports the spans still buffered. Call once, before the process
    /// exits.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "could not flush the last trace spans");
        }
        self.logs.flush();
    }
}

/// Installs the global subscriber. Calling it twice is harmless (the second call does nothing),
/// which keeps tests that build several apps simple.
pub fn init(
    filter: Option<&str>,
    format: Option<&str>,
    otlp_endpoint: Option<&str>,
) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_new(filter.unwrap_or("info"))
        .map_err(|e| format!("LLMGATE_LOG: not a valid log filter ({e})"))?;
    // Colours only on a terminal: in a file or a log collector the escape codes are noise, and
    // writing them cost a measurable share of the per-request log line (see OPTIMIZATION.md).
    let logs = output::LogOutput::default();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format.unwrap_or("pretty") {
        "json" => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(logs.clone())
                .with_ansi(ansi)
                .with_timer(fields::UtcMicros)
                .json()
                .flatten_event(true),
        ),
        // Its fields are escaped: values a client chose must not forge lines.
        "pretty" => Box::new(fields::pretty_layer(logs.clone(), ansi)),
        other => {
            return Err(format!(
                "LLMGATE_LOG_FORMAT: '{other}' is not a log format; use pretty or json"
            ));
        }
    };
    let traces = otlp_endpoint
        .filter(|endpoint| !endpoint.is_empty())
        .map(tracer_provider)
        .transpose()?;
    EXPORTING.store(traces.is_some(), Ordering::Relaxed);
    let otel = traces
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("llmgate")));
    // An already installed subscriber (tests, embedding) is fine.
    let installed = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(filter)
        .try_init()
        .is_ok();
    if installed {
        logs.spawn_flusher()
            .map_err(|e| format!("cannot start the log writer thread ({e})"))?;
    }
    Ok(Telemetry { traces, logs })
}

/// Spans batched and sent to `{endpoint}/v1/traces` as OTLP/HTTP JSON.
fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, String> {
    let endpoint = endpoint.trim_end_matches('/');
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url)
        .build()
        .map_err(|e| format!("LLMGATE_OTLP_ENDPOINT: cannot export traces there ({e})"))?;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("llmgate")
                .build(),
        )
        .build())
}

/// Whether spans are exported (`LLMGATE_OTLP_ENDPOINT` is set): the request path skips trace
/// propagation work when they are not.
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub fn exporting_traces() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Whether request and attempt spans have a reader: an exporter, or debug logs that show them
/// as the context of their events.
fn spans_wanted() -> bool {
    exporting_traces() || tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG
}

/// The span of one request, or a disabled span when nothing would use it: like an attempt's,
/// it is exported (with `LLMGATE_OTLP_ENDPOINT`) or gives context to debug events; the events
/// llmgate logs inside a request at `info` and above name the request themselves.
///
/// `parent` is the trace context the client's request carried (see [`remote_parent`]): the
/// request's span continues the client's trace instead of starting a new one.
pub fn request_span(
    endpoint: &'static str,
    request_id: &str,
    key: &str,
    parent: Option<&opentelemetry::Context>,
) -> tracing::Span {
    if spans_wanted() {
        let span = tracing::info_span!(
            "request",
            otel.name = endpoint,
            request_id,
            key = %key,
            model = tracing::field::Empty,
            attempts = tracing::field::Empty,
        );
        if let Some(parent) = parent {
            // Without a tracer the span has no OpenTelemetry data to attach it to; nothing
            // is lost, as nothing would be exported.
            let _ = span.set_parent(parent.clone());
        }
        span
    } else {
        tracing::Span::none()
    }
}

/// The W3C trace context (`traceparent`, `tracestate`) of a client's request, when traces are
/// exported and the request carried one; `None` costs nothing otherwise.
pub fn remote_parent(headers: &http::HeaderMap) -> Option<opentelemetry::Context> {
    if !exporting_traces() || !headers.contains_key("traceparent") {
        return None;
    }
    Some(opentelemetry::global::get_text_map_propagator(
        |propagator| propagator.extract(&opentelemetry_http::HeaderExtractor(headers)),
    ))
}

/// The span of one upstream attempt, or a disabled span when nothing would use it: it is only
/// exported (with `LLMGATE_OTLP_ENDPOINT`) or shown as the context of the HTTP client's own
/// debug and trace events, and creating it on every attempt cost a few percent of a request's
/// CPU time. llmgate itself logs nothing while an attempt is in flight.
pub fn attempt_span(provider: &str, route_id: i64, attempt: u32) -> tracing::Span {
    if spans_wanted() {
        tracing::info_span!(
            "upstream_attempt",
            provider = %provider,
            route_id,
            attempt,
        )
    } else {
        tracing::Span::none()
    }
}

/// Adds the W3C trace context of `span` (`traceparent`, `tracestate`) to upstream request
/// headers. Without a tracer installed, the propagator is a no-op and nothing is added.
pub fn inject_trace_context(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
    });
}

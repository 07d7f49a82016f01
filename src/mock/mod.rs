//! The mock upstream behind `llmgate mock-upstream`: an OpenAI-compatible echo server that tests,
//! the demo and benchmarks start in-process and steer through its config or per-request knobs.
//!
//! Every answer echoes the last user message. A request body may carry a `"mock"` object that
//! overrides the config for that request: `status`, `retry_after`, `latency_ms`, `chunks`,
//! `chunk_delay_ms`, `hang`, `cut_after`, `no_usage`, `content`, `status_for_key` (see `knobs`).
//!
//! Token counts are deterministic so tests can check exact sums: `prompt_tokens` is the number
//! of whitespace-separated words in the prompt (at least 1), `completion_tokens` is `chunks`.
//!
//! With `record` off, the request path takes no lock: the config is read through `ArcSwap`, and
//! the counters are atomics.

mod knobs;
mod openai;
mod sse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::knobs::{Failure, Plan};
use self::openai::{Call, Endpoint, Generation};
use self::sse::Script;

/// The largest request body the mock reads.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How the mock answers when a request carries no knobs.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Delay before the response headers.
    pub latency: Duration,
    /// Content pieces of a streamed answer, and its `completion_tokens`; at least 1.
    pub chunks: usize,
    /// Delay before each streamed content piece.
    pub chunk_delay: Duration,
    /// When set, every request fails with this status and an OpenAI error body; 429 adds
    /// `retry-after: 1`.
    pub fail_status: Option<u16>,
    /// Keep every request for [`MockHandle::requests`]; benchmarks turn it off.
    pub record: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            chunks: 8,
            chunk_delay: Duration::ZERO,
            fail_status: None,
            record: true,
        }
    }
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// The path with its query string.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A mock served in a background task; dropping the handle shuts the server down gracefully
/// and releases hung requests.
pub struct MockHandle {
    addr: SocketAddr,
    state: Arc<MockState>,
}

impl MockHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}/v1`, with a loopback address in place of an unspecified one.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}/v1", SocketAddr::new(ip, self.addr.port()))
    }

    /// The requests received so far, oldest first (empty while `record` is off).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every request received, including failed and hung ones.
    pub fn request_count(&self) -> u64 {
        self.state.request_count.load(Ordering::Relaxed)
    }

    /// Streams whose client went away before the final `[DONE]` frame.
    pub fn disconnects(&self) -> u64 {
        self.state.disconnects.load(Ordering::Relaxed)
    }

    /// Replaces the config; requests that arrive from now on use it.
    pub fn set_config(&self, config: MockConfig) {
        self.state.config.store(Arc::new(config));
    }
}

impl fmt::Debug for MockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
    }
}

/// Serves the mock in a background task until the returned handle is dropped.
pub async fn spawn(listener: TcpListener, config: MockConfig) -> io::Result<MockHandle> {
    let addr = listener.local_addr()?;
    let state = Arc::new(MockState::new(config));
    let stopped = state.shutdown.clone().cancelled_owned();
    let served = run(listener, Arc::clone(&state), stopped);
    tokio::spawn(async move {
        if let Err(error) = served.await {
            tracing::error!(%error, "the mock upstream stopped");
        }
    });
    Ok(MockHandle { addr, state })
}

/// Serves the mock until `shutdown` completes, then drains open connections (hung requests are
/// answered 503 so that draining ends).
pub async fn serve(
    listener: TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    run(listener, Arc::new(MockState::new(config)), shutdown).await
}

async fn run(
    listener: TcpListener,
    state: Arc<MockState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let stopping = state.shutdown.clone();
    let app = Router::new().fallback(answer).with_state(state);
    // Streamed frames are small; Nagle's algorithm would hold them back.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "the mock upstream could not set TCP_NODELAY");
        }
    });
    let signal = async move {
        tokio::select! {
            () = shutdown => stopping.cancel(),
            () = stopping.cancelled() => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .await
}

/// What the handle and the request handler share.
struct MockState {
    config: ArcSwap<MockConfig>,
    requests: Mutex<Vec<RecordedRequest>>,
    request_count: AtomicU64,
    disconnects: Arc<AtomicU64>,
    /// Cancelled when the server shuts down; hung requests wait for it.
    shutdown: CancellationToken,
}

impl MockState {
    fn new(config: MockConfig) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            requests: Mutex::new(Vec::new()),
            request_count: AtomicU64::new(0),
            disconnects: Arc::new(AtomicU64::new(0)),
            shutdown: CancellationToken::new(),
        }
    }

    fn record(&self, request: RecordedRequest) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }
}

/// The one handler: every request, whatever its path, is counted and recorded before routing.
async fn answer(State(mock): State<Arc<MockState>>, request: Request) -> Response {
    mock.request_count.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return error(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        );
    };
    let path = parts.uri.path();
    let route = Endpoint::at(path);

    let bearer = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let (call, plan) = {
        // The guard is dropped before the first await below.
        let config = mock.config.load();
        if config.record {
            let path = parts
                .uri
                .path_and_query()
                .map_or(path, |pq| pq.as_str())
                .to_owned();
            let method = parts.method.to_string();
            mock.record(RecordedRequest {
                method,
                path,
                headers: parts.headers,
                body: body.clone(),
            });
        }
        let endpoint = match route {
            Some((endpoint, method)) if parts.method == method => endpoint,
            Some(_) => return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            None => return error(StatusCode::NOT_FOUND, "unknown endpoint"),
        };
        let mut call = Call::parse(endpoint, &body);
        let knobs = call.as_mut().ok().and_then(Call::take_knobs);
        (call, Plan::new(&config, knobs, bearer.as_deref()))
    };

    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    if plan.hang {
        mock.shutdown.cancelled().await;
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the mock upstream is shutting down",
        );
    }
    if let Some(failure) = plan.failure {
        return failed(failure);
    }
    let call = match call {
        Ok(call) => call,
        Err(why) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid request body: {why}"),
            );
        }
    };
    let result = match call {
        Call::Models => openai::models_body().map(json),
        Call::Embeddings(request) => request.body(&plan).map(json),
        Call::Chat(request) => generated(&mock, &Generation::chat(request, &plan), &plan),
        Call::Completion(request) => generated(&mock, &Generation::text(request, &plan), &plan),
    };
    result.unwrap_or_else(|why| {
        tracing::error!(error = %why, "the mock upstream could not write its answer");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the mock upstream could not write its answer",
        )
    })
}

/// A chat or text completion, whole or streamed.
fn generated(
    mock: &MockState,
    generation: &Generation,
    plan: &Plan,
) -> serde_json::Result<Response> {
    if !generation.stream {
        return generation.body().map(json);
    }
    let reply = openai::padded(&generation.reply, plan.chunks);
    let pieces = openai::split(&reply, plan.chunks);
    let mut script = Script::with_capacity(pieces.len() + 4);
    if let Some(frame) = generation.opening_frame()? {
        script.push(Duration::ZERO, frame);
    }
    let shown = plan
        .cut_after
        .map_or(pieces.len(), |cut_after| cut_after.min(pieces.len()));
    for piece in &pieces[..shown] {
        script.push(plan.chunk_delay, generation.piece_frame(piece)?);
    }
    if plan.cut_after.is_some() {
        script = script.cut();
    } else {
        script.push(Duration::ZERO, generation.finish_frame()?);
        if let Some(frame) = generation.usage_frame()? {
            script.push(Duration::ZERO, frame);
        }
        script.push(Duration::ZERO, Bytes::from_static(openai::DONE_FRAME));
    }
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    let body: Body = script.into_body(Arc::clone(&mock.disconnects));
    Ok((headers, body).into_response())
}

fn json(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, json(openai::error_body(status.as_u16(), message))).into_response()
}

/// A simulated upstream error.
fn failed(failure: Failure) -> Response {
    let status = StatusCode::from_u16(failure.status)
        .ok()
        .filter(|status| !status.is_informational())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = error(status, &format!("simulated upstream failure: {status}"));
    if let Some(seconds) = failure.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

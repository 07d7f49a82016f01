//! The mock upstream behind `llmgate mock-upstream`: an echo server speaking three dialects,
//! that tests, the demo and benchmarks start in-process and steer through its config or
//! per-request knobs.
//!
//! - OpenAI: `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `GET /v1/models`.
//! - Anthropic: `POST /v1/messages` (needs `x-api-key` or a bearer token); Anthropic's event
//!   sequence when streamed (`message_start`, `ping`, blocks, `message_delta`, `message_stop`).
//! - Gemini: `POST /v1beta/models/{model}:generateContent` and
//!   `:streamGenerateContent?alt=sse` (needs `x-goog-api-key` or `?key=`).
//! - OpenAI's Responses API, natively: `POST /v1/responses`, a `response` object or its event
//!   stream (for providers declared with `responses = true`, which llmgate forwards to).
//!
//! Errors take the dialect's shape. Every answer echoes the last user message. A request body
//! may carry a `"mock"` object that overrides the config for that request: `status`,
//! `retry_after`, `latency_ms`, `chunks`, `chunk_delay_ms`, `hang`, `cut_after`, `end_delay_ms`,
//! `no_usage`, `content`, `status_for_key`, `tool_calls`, `safety_block`, `cached_tokens`,
//! `reasoning_tokens`, `call`, `cache_write_tokens` (see `knobs`). A client whose body a test
//! cannot shape (Codex, an SDK) may write the knobs in its prompt instead: a user text
//! `mock: {…}`.
//! With `tool_calls: N` and tools declared in the request, the answer is N tool calls (of the
//! declared tools in turn, arguments `{"index": i, "text": <the echo>}`) instead of text:
//! streamed by OpenAI interleaved by index, by Anthropic one `tool_use` block after another,
//! each input in `chunks` fragments, by Gemini one whole `functionCall` per frame.
//!
//! Token counts are deterministic so tests can check exact sums: `prompt_tokens` is the number
//! of whitespace-separated words in the prompt (at least 1), `completion_tokens` is `chunks`,
//! and `cached_tokens` of them are reported as cached (and, by Anthropic, `cache_write_tokens`
//! of the rest as written to the cache).
//!
//! With `record` off, the request path takes no lock: the config is read through `ArcSwap`, and
//! the counters are atomics.

mod anthropic;
mod bedrock;
mod clouds;
mod connections;
mod gemini;
mod knobs;
mod openai;
mod responses;
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
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::connections::{Connections, CountingListener, Peer};
use self::knobs::{Failure, Plan};
use self::openai::{Endpoint, Generation};
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
    /// The only `api-key` Azure's paths accept; any non-empty key when unset.
    pub azure_api_key: Option<String>,
    /// The service account's public key (PEM) the Vertex token endpoint verifies assertions
    /// with; without it every assertion is refused.
    pub vertex_public_key: Option<String>,
    /// How long the access tokens the Vertex token endpoint issues live.
    pub token_lifetime: Duration,
    /// The only AWS access key id (and its secret) Bedrock's paths accept; without them every
    /// signature is refused.
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    /// When set, the session token every Bedrock request must carry (`x-amz-security-token`).
    pub aws_session_token: Option<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            chunks: 8,
            chunk_delay: Duration::ZERO,
            fail_status: None,
            record: true,
            azure_api_key: None,
            vertex_public_key: None,
            token_lifetime: Duration::from_secs(3600),
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_session_token: None,
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
    /// The address the request's connection came from: one per upstream connection of the
    /// gateway's.
    pub peer: SocketAddr,
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

    /// `http://{addr}/openai`, the base URL of an Azure OpenAI provider.
    pub fn azure_base_url(&self) -> String {
        self.base_url().replace("/v1", "/openai")
    }

    /// `http://{addr}/bedrock`, the base URL of an AWS Bedrock provider.
    pub fn bedrock_base_url(&self) -> String {
        self.base_url().replace("/v1", "/bedrock")
    }

    /// `http://{addr}/vertex/v1`, the base URL of a Vertex AI provider.
    pub fn vertex_base_url(&self) -> String {
        self.base_url().replace("/v1", "/vertex/v1")
    }

    /// `http://{addr}/token`, the `token_uri` of a service account the mock verifies.
    pub fn token_uri(&self) -> String {
        self.base_url().replace("/v1", "/token")
    }

    /// Requests made to the Vertex token endpoint so far.
    pub fn token_requests(&self) -> u64 {
        self.state.tokens.requests.load(Ordering::Relaxed)
    }

    /// `http://{addr}/v1beta`, the base URL of the Gemini dialect.
    pub fn gemini_base_url(&self) -> String {
        let mut url = self.base_url();
        url.push_str("beta");
        url
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

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.state.connections.accepted()
    }

    /// The peers of the connections still open (a connection counts as open until the
    /// server has dropped it), in address order.
    pub fn open_connections(&self) -> Vec<SocketAddr> {
        self.state.connections.open()
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
    #[expect(
        clippy::disallowed_methods,
        reason = "the mock upstream (tests, demo, benches) is stopped by dropping its handle, not by the App"
    )]
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
    let listener = CountingListener::new(listener, Arc::clone(&state.connections));
    let app = Router::new()
        .fallback(answer)
        .with_state(state)
        .into_make_service_with_connect_info::<Peer>();
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
    connections: Arc<Connections>,
    /// Cancelled when the server shuts down; hung requests wait for it.
    shutdown: CancellationToken,
    /// The Vertex token endpoint's access tokens.
    tokens: clouds::IssuedTokens,
}

impl MockState {
    fn new(config: MockConfig) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            requests: Mutex::new(Vec::new()),
            request_count: AtomicU64::new(0),
            disconnects: Arc::new(AtomicU64::new(0)),
            connections: Arc::default(),
            shutdown: CancellationToken::new(),
            tokens: clouds::IssuedTokens::default(),
        }
    }

    fn record(&self, request: RecordedRequest) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }
}

/// The dialect a request speaks, which decides the shape of its answer and of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
    /// AWS Bedrock's Converse: errors are `{"message"}` with `x-amzn-ErrorType`.
    Bedrock,
}

/// Where a request goes, by path.
enum Route<'p> {
    OpenAi(Endpoint),
    /// `POST /v1/responses`, OpenAI's Responses API.
    Responses,
    Messages,
    /// `POST /v1/messages/count_tokens`, answered with llmgate's own local count.
    CountTokens,
    Gemini {
        model: &'p str,
        stream: bool,
    },
    /// Azure's and Vertex AI's paths, the token endpoint and the stats.
    Cloud(clouds::CloudRoute<'p>),
    /// `POST /bedrock/model/{model}/converse` and `/converse-stream`.
    Bedrock {
        stream: bool,
    },
}

impl<'p> Route<'p> {
    /// The route at `path` and the method it answers.
    fn at(path: &'p str) -> Option<(Self, &'static str)> {
        if let Some(cloud) = clouds::CloudRoute::at(path) {
            let method = match cloud {
                clouds::CloudRoute::Stats => "GET",
                _ => "POST",
            };
            return Some((Self::Cloud(cloud), method));
        }
        if let Some((_model, stream)) = bedrock::route(path) {
            return Some((Self::Bedrock { stream }, "POST"));
        }
        if path == "/v1/messages" {
            return Some((Self::Messages, "POST"));
        }
        if path == "/v1/responses" {
            return Some((Self::Responses, "POST"));
        }
        if path == "/v1/messages/count_tokens" {
            return Some((Self::CountTokens, "POST"));
        }
        if let Some((model, stream)) = gemini::route(path) {
            return Some((Self::Gemini { model, stream }, "POST"));
        }
        Endpoint::at(path).map(|(endpoint, method)| (Self::OpenAi(endpoint), method))
    }

    fn dialect(&self) -> Dialect {
        match self {
            Self::OpenAi(_) | Self::Responses => Dialect::OpenAi,
            Self::Messages | Self::CountTokens => Dialect::Anthropic,
            Self::Gemini { .. } => Dialect::Gemini,
            Self::Cloud(clouds::CloudRoute::Azure(_)) => Dialect::OpenAi,
            Self::Cloud(
                clouds::CloudRoute::VertexAnthropic { .. } | clouds::CloudRoute::VertexCountTokens,
            ) => Dialect::Anthropic,
            Self::Cloud(_) => Dialect::Gemini,
            Self::Bedrock { .. } => Dialect::Bedrock,
        }
    }

    /// The Gemini model and whether the answer streams, on Gemini's and Vertex AI's paths.
    fn gemini(&self) -> (&'p str, bool) {
        match self {
            Self::Gemini { model, stream }
            | Self::Cloud(clouds::CloudRoute::VertexGemini { model, stream }) => (model, *stream),
            _ => ("", false),
        }
    }
}

/// A parsed request body, by dialect.
enum Call {
    OpenAi(openai::Call),
    Responses(responses::ResponsesRequest),
    Messages(anthropic::MessagesRequest),
    Gemini(gemini::GenerateRequest),
    Bedrock(bedrock::ConverseRequest),
}

impl Call {
    fn parse(route: &Route<'_>, body: &[u8]) -> serde_json::Result<Self> {
        Ok(match route {
            Route::OpenAi(endpoint) => Self::OpenAi(openai::Call::parse(*endpoint, body)?),
            Route::Responses => Self::Responses(serde_json::from_slice(body)?),
            Route::Messages | Route::CountTokens => Self::Messages(serde_json::from_slice(body)?),
            Route::Gemini { .. } | Route::Cloud(clouds::CloudRoute::VertexGemini { .. }) => {
                Self::Gemini(serde_json::from_slice(body)?)
            }
            Route::Cloud(clouds::CloudRoute::Azure(endpoint)) => {
                Self::OpenAi(openai::Call::parse(*endpoint, body)?)
            }
            Route::Bedrock { .. } => Self::Bedrock(serde_json::from_slice(body)?),
            Route::Cloud(clouds::CloudRoute::VertexAnthropic { model, .. }) => {
                let mut request: anthropic::MessagesRequest = serde_json::from_slice(body)?;
                request.model = Some((*model).to_owned());
                Self::Messages(request)
            }
            Route::Cloud(
                clouds::CloudRoute::Token
                | clouds::CloudRoute::Stats
                | clouds::CloudRoute::VertexCountTokens,
            ) => Self::OpenAi(openai::Call::Models),
        })
    }

    /// The request's knobs: its `"mock"` object, or those written in its prompt.
    fn take_knobs(&mut self) -> serde_json::Result<Option<knobs::Knobs>> {
        match self {
            Self::OpenAi(call) => call.take_knobs(),
            Self::Responses(request) => request.take_knobs(),
            Self::Messages(request) => request.take_knobs(),
            Self::Gemini(request) => request.take_knobs(),
            Self::Bedrock(request) => request.take_knobs(),
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The credential a request carries in its dialect's header: a bearer token for OpenAI,
/// `x-api-key` (or a bearer token) for Anthropic, `x-goog-api-key` (or `?key=`) for Gemini.
fn credential(dialect: Dialect, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let bearer = || {
        header(headers, http::header::AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
    };
    let found = match dialect {
        Dialect::OpenAi => bearer(),
        Dialect::Anthropic => header(headers, "x-api-key").or_else(bearer),
        Dialect::Gemini => header(headers, "x-goog-api-key")
            .or_else(|| query?.split('&').find_map(|pair| pair.strip_prefix("key="))),
        // The access key id the signature names.
        Dialect::Bedrock => bedrock::access_key_id(headers),
    };
    found.filter(|key| !key.is_empty()).map(str::to_owned)
}

/// The one handler: every request, whatever its path, is counted and recorded before routing.
async fn answer(State(mock): State<Arc<MockState>>, request: Request) -> Response {
    mock.request_count.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let route = Route::at(path);
    let dialect = match &route {
        Some((route, _)) => route.dialect(),
        None if path.starts_with("/v1beta/") => Dialect::Gemini,
        None => Dialect::OpenAi,
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return error(
            dialect,
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        );
    };
    let credential = credential(dialect, &parts.headers, parts.uri.query());
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
            let peer = parts.extensions.get::<ConnectInfo<Peer>>().map_or(
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                |ConnectInfo(Peer(peer))| *peer,
            );
            mock.record(RecordedRequest {
                method,
                path,
                headers: parts.headers.clone(),
                body: body.clone(),
                peer,
            });
        }
        let route = match route {
            Some((route, method)) if parts.method == method => route,
            Some(_) => {
                return error(
                    dialect,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed",
                );
            }
            None => return error(dialect, StatusCode::NOT_FOUND, "unknown endpoint"),
        };
        if let Route::Cloud(cloud) = &route {
            let refusal = match cloud {
                clouds::CloudRoute::Token => {
                    return clouds::token(&config, &mock.tokens, &parts.headers, &body);
                }
                clouds::CloudRoute::Stats => {
                    return clouds::stats(
                        mock.request_count.load(Ordering::Relaxed),
                        mock.tokens.requests.load(Ordering::Relaxed),
                    );
                }
                clouds::CloudRoute::Azure(_) => {
                    clouds::azure_refusal(&config, &parts.headers, parts.uri.query())
                }
                clouds::CloudRoute::VertexGemini { .. } => {
                    clouds::vertex_refusal(&mock.tokens, &parts.headers)
                }
                clouds::CloudRoute::VertexCountTokens => {
                    clouds::vertex_refusal(&mock.tokens, &parts.headers).or_else(|| {
                        let named = serde_json::from_slice::<serde_json::Value>(&body)
                            .is_ok_and(|body| body["model"].is_string());
                        (!named).then(|| {
                            error(
                                Dialect::Anthropic,
                                StatusCode::BAD_REQUEST,
                                "model: Field required",
                            )
                        })
                    })
                }
                clouds::CloudRoute::VertexAnthropic { stream, .. } => {
                    clouds::vertex_refusal(&mock.tokens, &parts.headers).or_else(|| {
                        clouds::vertex_anthropic_problem(&body, *stream).map(|problem| {
                            error(Dialect::Anthropic, StatusCode::BAD_REQUEST, &problem)
                        })
                    })
                }
            };
            if let Some(refusal) = refusal {
                return refusal;
            }
        }
        if matches!(route, Route::Bedrock { .. }) {
            let path_and_query = parts.uri.path_and_query().map_or(path, |pq| pq.as_str());
            if let Some(refusal) =
                bedrock::signature_refusal(&config, path_and_query, &parts.headers, &body)
            {
                return refusal;
            }
        }
        if let Some(refusal) = refusal(&route, credential.is_some(), parts.uri.query()) {
            return refusal;
        }
        if matches!(
            route,
            Route::CountTokens | Route::Cloud(clouds::CloudRoute::VertexCountTokens)
        ) {
            return match crate::translate::count_message_tokens(&body) {
                Ok(tokens) => json(crate::translate::count_tokens_body(tokens).to_vec()),
                Err(why) => error(
                    Dialect::Anthropic,
                    StatusCode::BAD_REQUEST,
                    &format!("invalid request body: {why}"),
                ),
            };
        }
        let mut call = Call::parse(&route, &body);
        let knobs = match call.as_mut().map(Call::take_knobs) {
            Ok(Ok(knobs)) => knobs,
            Ok(Err(why)) => {
                return error(
                    dialect,
                    StatusCode::BAD_REQUEST,
                    &format!("invalid mock knobs in the prompt: {why}"),
                );
            }
            Err(_) => None,
        };
        (call, Plan::new(&config, knobs, credential.as_deref()))
    };

    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    if plan.hang {
        mock.shutdown.cancelled().await;
        return error(
            dialect,
            StatusCode::SERVICE_UNAVAILABLE,
            "the mock upstream is shutting down",
        );
    }
    if let Some(failure) = plan.failure {
        return failed(dialect, failure);
    }
    if plan.content_filter {
        return clouds::azure_content_filtered();
    }
    let call = match call {
        Ok(call) => call,
        Err(why) => {
            return error(
                dialect,
                StatusCode::BAD_REQUEST,
                &format!("invalid request body: {why}"),
            );
        }
    };
    let result = match call {
        Call::OpenAi(openai::Call::Models) => openai::models_body().map(json),
        Call::OpenAi(openai::Call::Embeddings(request)) => request.body(&plan).map(json),
        Call::OpenAi(openai::Call::Chat(request)) => {
            generated(&mock, &Generation::chat(request, &plan), &plan)
        }
        Call::OpenAi(openai::Call::Completion(request)) => {
            generated(&mock, &Generation::text(request, &plan), &plan)
        }
        Call::Responses(request) => {
            let answer = responses::Answer::new(request, &plan);
            if answer.stream {
                answer
                    .script(&plan)
                    .map(|script| streamed(&mock, script.lingering(plan.end_delay)))
            } else {
                answer.body().map(json)
            }
        }
        Call::Messages(request) => {
            let answer = anthropic::Answer::new(request, &plan);
            if answer.stream {
                answer
                    .script(&plan)
                    .map(|script| streamed(&mock, script.lingering(plan.end_delay)))
            } else {
                answer.body().map(json)
            }
        }
        Call::Bedrock(request) => {
            let answer = bedrock::Answer::new(&request, &plan);
            if matches!(Route::at(path), Some((Route::Bedrock { stream: true }, _))) {
                answer.script(&plan).map(|script| {
                    bedrock::streamed(
                        script.lingering(plan.end_delay),
                        Arc::clone(&mock.disconnects),
                    )
                })
            } else {
                answer.body().map(json)
            }
        }
        Call::Gemini(request) => {
            let (model, stream) = Route::at(path).map_or(("", false), |(route, _)| route.gemini());
            let answer = gemini::Answer::new(request, model, &plan);
            if stream {
                answer
                    .script(&plan)
                    .map(|script| streamed(&mock, script.lingering(plan.end_delay)))
            } else {
                answer.body().map(json)
            }
        }
    };
    result.unwrap_or_else(|why| {
        tracing::error!(error = %why, "the mock upstream could not write its answer");
        error(
            dialect,
            StatusCode::INTERNAL_SERVER_ERROR,
            "the mock upstream could not write its answer",
        )
    })
}

/// Requests the Anthropic and Gemini dialects refuse before reading the body: no credential
/// (their APIs always need one, so this checks that the gateway sends it), and a Gemini stream
/// asked for without `alt=sse` (the mock speaks only server-sent events).
fn refusal(route: &Route<'_>, has_credential: bool, query: Option<&str>) -> Option<Response> {
    match route {
        Route::OpenAi(_) | Route::Responses | Route::Cloud(clouds::CloudRoute::Azure(_)) => None,
        Route::Messages | Route::CountTokens if !has_credential => Some(error(
            Dialect::Anthropic,
            StatusCode::UNAUTHORIZED,
            "x-api-key header is required",
        )),
        Route::Gemini { .. } if !has_credential => Some(error(
            Dialect::Gemini,
            StatusCode::UNAUTHORIZED,
            "API key not found: send it in the x-goog-api-key header",
        )),
        Route::Gemini { stream: true, .. }
        | Route::Cloud(clouds::CloudRoute::VertexGemini { stream: true, .. })
            if !query.is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse")) =>
        {
            Some(error(
                Dialect::Gemini,
                StatusCode::BAD_REQUEST,
                "the mock serves streamGenerateContent only with alt=sse",
            ))
        }
        Route::Messages
        | Route::CountTokens
        | Route::Gemini { .. }
        | Route::Cloud(_)
        | Route::Bedrock { .. } => None,
    }
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
    let frames = generation.content_frames(plan.chunks)?;
    let mut script = Script::with_capacity(frames.len() + 4);
    if let Some(frame) = generation.opening_frame()? {
        script.push(Duration::ZERO, frame);
    }
    let shown = plan
        .cut_after
        .map_or(frames.len(), |cut_after| cut_after.min(frames.len()));
    for frame in frames.into_iter().take(shown) {
        script.push(plan.chunk_delay, frame);
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
    Ok(streamed(mock, script.lingering(plan.end_delay)))
}

/// An event-stream response playing `script`.
fn streamed(mock: &MockState, script: Script) -> Response {
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    let body: Body = script.into_body(Arc::clone(&mock.disconnects));
    (headers, body).into_response()
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

fn error(dialect: Dialect, status: StatusCode, message: &str) -> Response {
    let body = match dialect {
        Dialect::OpenAi => openai::error_body(status.as_u16(), message),
        Dialect::Anthropic => anthropic::error_body(status.as_u16(), message),
        Dialect::Gemini => gemini::error_body(status.as_u16(), message),
        Dialect::Bedrock => {
            return bedrock::aws_error(status, bedrock::exception_for(status.as_u16()), message);
        }
    };
    (status, json(body)).into_response()
}

/// A simulated upstream error.
fn failed(dialect: Dialect, failure: Failure) -> Response {
    let status = StatusCode::from_u16(failure.status)
        .ok()
        .filter(|status| !status.is_informational())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = error(
        dialect,
        status,
        &format!("simulated upstream failure: {status}"),
    );
    if let Some(seconds) = failure.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

//! The contract floor: the least work the contract asks of every request, done on the stack of
//! the `axum-reqwest` floor, so the budget table can tell what llmgate's own code costs from
//! what any implementation of the contract must spend.
//!
//! Per request it does what CONTRACT.md and DESIGN.md require of a gateway, and nothing more:
//!
//! - authenticates the bearer key by its SHA-256 (keys are stored only as hashes), in a map;
//! - reads the request's JSON once for `model` and `stream`, and refuses an unknown model;
//! - admits the request under its key's requests and tokens per minute (a fixed window each);
//! - forwards it with the account's credential in place of the client's; a stream's body gains
//!   `"stream_options":{"include_usage":true}` (when the client sent no `stream_options`) so
//!   that the upstream reports the stream's usage;
//! - reads the answer's usage: one JSON pass over a whole answer, or, in a stream, the frames
//!   that carry a usage object (every chunk is searched for one as it passes);
//! - answers with `x-request-id` and the six `x-ratelimit-*` headers;
//! - queues one request-log row per request, which a task on the same runtime writes when 4,096
//!   rows are queued or a second has passed, in one transaction of prepared multi-row INSERTs
//!   with the day's rollup per key and model, on the tables of llmgate's first usage migration
//!   (`migrations/0002_usage.sql`: four indexes on the log, as the admin API's filters need).
//!
//! It leaves out what is llmgate's design rather than the contract's minimum: a key cache with
//! expiry and revocation, more than one route and account, retries and failover, the body
//! limit, cost, metrics, tracing and the per-request log line, llmgate's own headers. Whatever it
//! costs above the `axum-reqwest` floor, an implementation of the contract costs at least that.
//!
//! Started by the bench as `--floor-proxy contract LISTEN UPSTREAM POOL_IDLE_MS [DATABASE]`
//! (the database file defaults to one under the temporary directory); it accepts the key in
//! `BENCH_FLOOR_KEY`, else the bench's own.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use memchr::memmem;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{Notify, mpsc};

use super::is_event_stream;

/// The writer wakes when this many rows are queued, or every `WRITE_EVERY`.
const WRITE_AT_ROWS: usize = 4_096;
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// Rows per prepared INSERT: as many of the largest as fit, then the smaller ones.
const ROWS_PER_INSERT: [usize; 3] = [256, 16, 1];
/// The bench's models (the chat phases' two and the long streams' one); each is routed to the
/// mock under its own name.
const MODELS: [&str; 3] = ["bench-model", "bench-stream", crate::streams::MODEL];
const ENDPOINT: &str = "/v1/chat/completions";
/// The bench's models' overall deadline per request, as llmgate's default.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// What the bench's key may do per minute: never a refusal, as in llmgate's bench config.
const PER_MINUTE: u64 = u32::MAX as u64;

const LOG_COLUMNS: &str = "at, request_id, key_id, model, endpoint, stream, provider, route_id, \
     account_id, status, attempts, latency_ms, ttfb_ms, prompt_tokens, completion_tokens, \
     cached_tokens, reasoning_tokens, estimated";
const LOG_COLUMN_COUNT: usize = 18;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage_daily (
    day TEXT NOT NULL, key_id INTEGER NOT NULL, model TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key_id, model)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_daily_key_day ON usage_daily(key_id, day);
CREATE TABLE IF NOT EXISTS request_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, request_id TEXT NOT NULL,
    key_id INTEGER NOT NULL, model TEXT NOT NULL, endpoint TEXT NOT NULL,
    stream INTEGER NOT NULL, provider TEXT, route_id INTEGER, account_id INTEGER,
    status INTEGER NOT NULL, attempts INTEGER NOT NULL, latency_ms INTEGER NOT NULL,
    ttfb_ms INTEGER, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, estimated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS request_log_at ON request_log(at);
CREATE INDEX IF NOT EXISTS request_log_key ON request_log(key_id, at);
CREATE INDEX IF NOT EXISTS request_log_model ON request_log(model, at);
CREATE INDEX IF NOT EXISTS request_log_status ON request_log(status, at);
";

const ROLLUP_SQL: &str = "INSERT INTO usage_daily (day, key_id, model, requests, errors, \
     prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (day, key_id, model) DO UPDATE SET requests = requests + excluded.requests, \
     errors = errors + excluded.errors, prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
     completion_tokens = completion_tokens + excluded.completion_tokens, \
     cached_tokens = cached_tokens + excluded.cached_tokens, \
     reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens";

/// Serves until killed: see the module's documentation.
pub async fn serve(
    listener: tokio::net::TcpListener,
    upstream: SocketAddr,
    pool_idle: Duration,
    database: &Path,
) -> Result<()> {
    use axum::serve::ListenerExt;

    let key = std::env::var("BENCH_FLOOR_KEY").unwrap_or_else(|_| crate::KEY.to_owned());
    let options = SqliteConnectOptions::new()
        .filename(database)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let mut connection = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {}", database.display()))?;
    sqlx::raw_sql(SCHEMA).execute(&mut connection).await?;

    let (rows, queue) = mpsc::unbounded_channel();
    let queued = Arc::new(Queued::default());
    tokio::spawn(write_rows(connection, queue, queued.clone()));

    let client = super::cheapest_reqwest(pool_idle)?;
    let keys = vec![ClientKey {
        id: 1,
        requests_per_minute: PER_MINUTE,
        tokens_per_minute: PER_MINUTE,
        window: Window::default(),
    }];
    let key_hashes = HashMap::from([(Sha256::digest(key.as_bytes()).into(), 0)]);
    let state = Arc::new(Gateway {
        client,
        url: format!("http://{upstream}{ENDPOINT}").parse()?,
        credential: {
            let mut value = HeaderValue::from_static("Bearer sk-upstream-contract-floor");
            value.set_sensitive(true);
            value
        },
        keys,
        key_hashes,
        resets: (0..=60)
            .map(|seconds| HeaderValue::from_str(&format!("{seconds}s")))
            .collect::<Result<_, _>>()?,
        request_ids: AtomicU64::new(rand::random()),
        rows,
        queued,
    });
    let app = axum::Router::new()
        .route(ENDPOINT, axum::routing::post(chat))
        .with_state(state);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

struct Gateway {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The account's credential, sent upstream in place of the client's key.
    credential: HeaderValue,
    keys: Vec<ClientKey>,
    /// Where in `keys` each key is, by the SHA-256 of its text.
    key_hashes: HashMap<[u8; 32], usize>,
    /// `0s` to `60s`: the values of the `x-ratelimit-reset-*` headers, made once.
    resets: Vec<HeaderValue>,
    request_ids: AtomicU64,
    rows: mpsc::UnboundedSender<Row>,
    queued: Arc<Queued>,
}

struct ClientKey {
    id: i64,
    requests_per_minute: u64,
    tokens_per_minute: u64,
    window: Window,
}

/// The current minute's requests and tokens of one key.
#[derive(Default)]
struct Window {
    minute: AtomicU64,
    requests: AtomicU64,
    tokens: AtomicU64,
}

/// What admission leaves of a key's minute, for the `x-ratelimit-*` headers.
struct Allowance {
    requests_left: u64,
    tokens_left: u64,
    reset_seconds: usize,
}

impl ClientKey {
    /// Counts a request into the key's minute, or `None` when the minute allows no more.
    fn admit(&self, now_ms: u64) -> Option<Allowance> {
        let minute = now_ms / 60_000;
        let window = &self.window;
        if window.minute.swap(minute, Ordering::Relaxed) != minute {
            window.requests.store(0, Ordering::Relaxed);
            window.tokens.store(0, Ordering::Relaxed);
        }
        let requests = window.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let tokens = window.tokens.load(Ordering::Relaxed);
        if requests > self.requests_per_minute || tokens >= self.tokens_per_minute {
            return None;
        }
        Some(Allowance {
            requests_left: self.requests_per_minute - requests,
            tokens_left: self.tokens_per_minute - tokens,
            reset_seconds: (60 - (now_ms % 60_000) / 1_000) as usize,
        })
    }

    fn settle(&self, usage: &Usage) {
        let tokens = (usage.prompt_tokens + usage.completion_tokens).max(0) as u64;
        self.window.tokens.fetch_add(tokens, Ordering::Relaxed);
    }
}

/// How many rows wait for the writer, and its wake-up when they reach `WRITE_AT_ROWS`.
#[derive(Default)]
struct Queued {
    rows: AtomicUsize,
    full: Notify,
}

/// The request's head: the one pass over its JSON.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<serde::de::IgnoredAny>,
}

/// An answer or a stream's frame, read for its usage only.
#[derive(Deserialize)]
struct Reported {
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Usage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: i64,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: i64,
}

/// One request-log row.
struct Row {
    at_ms: i64,
    request_id: String,
    key_id: i64,
    model: &'static str,
    stream: bool,
    status: u16,
    latency_ms: i64,
    ttfb_ms: Option<i64>,
    usage: Usage,
    /// The upstream reported no usage.
    estimated: bool,
}

/// What a request carries from admission to its row.
struct Pending {
    gateway: Arc<Gateway>,
    /// The key's place in `Gateway::keys`.
    key: usize,
    request_id: String,
    model: &'static str,
    stream: bool,
    started: Instant,
}

impl Pending {
    fn record(self, status: u16, usage: Option<Usage>, ttfb: Option<Duration>) {
        let reported = usage.unwrap_or_default();
        let key = &self.gateway.keys[self.key];
        key.settle(&reported);
        let row = Row {
            at_ms: unix_ms() as i64,
            request_id: self.request_id,
            key_id: key.id,
            model: self.model,
            stream: self.stream,
            status,
            latency_ms: self.started.elapsed().as_millis() as i64,
            ttfb_ms: ttfb.map(|t| t.as_millis() as i64),
            usage: reported,
            estimated: usage.is_none(),
        };
        if self.gateway.rows.send(row).is_ok()
            && self.gateway.queued.rows.fetch_add(1, Ordering::Relaxed) + 1 == WRITE_AT_ROWS
        {
            self.gateway.queued.full.notify_one();
        }
    }
}

async fn chat(State(gateway): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let Some(key_index) = authenticate(&gateway, &headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "Send a key llmgate issued as `Authorization: Bearer <key>`.",
        );
    };
    let key = &gateway.keys[key_index];
    let Ok(head) = serde_json::from_slice::<Head>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_json",
            "The body must be a JSON object with a string `model`.",
        );
    };
    let Some(model) = MODELS.iter().copied().find(|m| *m == head.model) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            "This model is not served here; GET /v1/models lists those that are.",
        );
    };
    let Some(allowance) = key.admit(unix_ms()) else {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            "This key's limit per minute is reached; retry after the minute ends.",
        );
    };
    let stream = head.stream;
    let usage_requested = stream && head.stream_options.is_none();
    let body = if usage_requested {
        with_usage_requested(&body)
    } else {
        body
    };
    let request_id = gateway.next_request_id();
    let pending = Pending {
        gateway: gateway.clone(),
        key: key_index,
        request_id,
        model,
        stream,
        started,
    };
    // The model's overall deadline: one timer, for the answer's head and a whole answer's body.
    let expiry = tokio::time::sleep(REQUEST_TIMEOUT);
    tokio::pin!(expiry);
    let send = gateway
        .client
        .post(gateway.url.clone())
        .header(header::AUTHORIZATION, gateway.credential.clone())
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
        .body(body)
        .send();
    let answer = tokio::select! {
        biased;
        answer = send => answer,
        () = &mut expiry => {
            return timed_out(pending);
        }
    };
    let Ok(answer) = answer else {
        return upstream_failed(pending, "The upstream could not be reached; retry later.");
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut response_headers = HeaderMap::with_capacity(8);
    if let Some(content_type) = content_type {
        response_headers.insert(header::CONTENT_TYPE, content_type);
    }
    let request_id = HeaderValue::from_str(&pending.request_id)
        .unwrap_or(HeaderValue::from_static("req-unknown"));
    response_headers.insert(HeaderName::from_static("x-request-id"), request_id);
    gateway.rate_limit_headers(key, &allowance, &mut response_headers);

    let body = if is_event_stream(answer.headers()) {
        axum::body::Body::from_stream(Relay::new(answer, Some(pending), usage_requested))
    } else {
        let whole = tokio::select! {
            biased;
            whole = answer.bytes() => whole,
            () = &mut expiry => {
                return timed_out(pending);
            }
        };
        let Ok(whole) = whole else {
            return upstream_failed(pending, "The upstream's answer broke off; retry later.");
        };
        let usage = serde_json::from_slice::<Reported>(&whole)
            .ok()
            .and_then(|reported| reported.usage);
        let ttfb = pending.started.elapsed();
        pending.record(status.as_u16(), usage, Some(ttfb));
        axum::body::Body::from(whole)
    };
    (status, response_headers, body).into_response()
}

impl Gateway {
    fn next_request_id(&self) -> String {
        let id = self.request_ids.fetch_add(1, Ordering::Relaxed);
        let mut text = String::with_capacity(20);
        text.push_str("req-");
        for shift in (0..16).rev() {
            let digit = ((id >> (shift * 4)) & 0xf) as u8;
            text.push(char::from(if digit < 10 {
                b'0' + digit
            } else {
                b'a' + digit - 10
            }));
        }
        text
    }

    fn rate_limit_headers(&self, key: &ClientKey, allowance: &Allowance, headers: &mut HeaderMap) {
        let reset = self.resets[allowance.reset_seconds.min(60)].clone();
        for (name, value) in [
            ("x-ratelimit-limit-requests", key.requests_per_minute),
            ("x-ratelimit-remaining-requests", allowance.requests_left),
            ("x-ratelimit-limit-tokens", key.tokens_per_minute),
            ("x-ratelimit-remaining-tokens", allowance.tokens_left),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
        headers.insert(
            HeaderName::from_static("x-ratelimit-reset-requests"),
            reset.clone(),
        );
        headers.insert(HeaderName::from_static("x-ratelimit-reset-tokens"), reset);
    }
}

/// The place in `Gateway::keys` of the key of `Authorization: Bearer …`, found by its hash.
fn authenticate(gateway: &Gateway, headers: &HeaderMap) -> Option<usize> {
    let presented = headers
        .get(header::AUTHORIZATION)?
        .as_bytes()
        .strip_prefix(b"Bearer ")?;
    let hash: [u8; 32] = Sha256::digest(presented).into();
    gateway.key_hashes.get(&hash).copied()
}

/// `body` with `"stream_options":{"include_usage":true}` as its first member.
fn with_usage_requested(body: &Bytes) -> Bytes {
    const MEMBER: &[u8] = br#""stream_options":{"include_usage":true},"#;
    let Some(open) = memchr::memchr(b'{', body) else {
        return body.clone();
    };
    let mut spliced = Vec::with_capacity(body.len() + MEMBER.len());
    spliced.extend_from_slice(&body[..=open]);
    spliced.extend_from_slice(MEMBER);
    spliced.extend_from_slice(&body[open + 1..]);
    Bytes::from(spliced)
}

/// A 502 for a request whose upstream failed, its row queued.
fn upstream_failed(pending: Pending, message: &str) -> Response {
    pending.record(502, None, None);
    refuse(
        StatusCode::BAD_GATEWAY,
        "api_error",
        "upstream_failed",
        message,
    )
}

/// A 504 for a request past its deadline, its row queued.
fn timed_out(pending: Pending) -> Response {
    pending.record(504, None, None);
    refuse(
        StatusCode::GATEWAY_TIMEOUT,
        "api_error",
        "upstream_timeout",
        "The upstream did not answer within the model's timeout; retry later.",
    )
}

fn refuse(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    });
    (status, axum::Json(body)).into_response()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// A stream relayed as it arrives, whole lines at a time, read aside for its usage; its row is
/// queued when it ends, or when the client goes away first.
struct Relay {
    upstream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    pending: Option<Pending>,
    status: u16,
    usage: Option<Usage>,
    /// The floor asked for the usage frame, so the client, who did not, must not see it.
    withhold_usage: bool,
    /// The start of a line the last chunk cut off, held until its end arrives.
    tail: Vec<u8>,
    first_byte: Option<Duration>,
    ended: bool,
}

impl Relay {
    fn new(upstream: reqwest::Response, pending: Option<Pending>, withhold_usage: bool) -> Self {
        Self {
            status: upstream.status().as_u16(),
            upstream: Box::pin(upstream.bytes_stream()),
            pending,
            usage: None,
            withhold_usage,
            tail: Vec::new(),
            first_byte: None,
            ended: false,
        }
    }

    /// What of `chunk` goes to the client now: its whole lines (with any cut-off line before
    /// them), less the usage frame when it is withheld; the usage is read on the way.
    fn pass(&mut self, chunk: Bytes) -> Option<Bytes> {
        let chunk = if self.tail.is_empty() {
            chunk
        } else {
            let mut joined = std::mem::take(&mut self.tail);
            joined.extend_from_slice(&chunk);
            Bytes::from(joined)
        };
        let whole = memchr::memrchr(b'\n', &chunk).map_or(0, |end| end + 1);
        self.tail.extend_from_slice(&chunk[whole..]);
        let mut out = chunk.slice(..whole);
        let mut from = 0;
        while let Some(at) = memmem::find(&out[from..], b"\"usage\":") {
            let at = from + at;
            let start = memchr::memrchr(b'\n', &out[..at]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &out[at..]).map_or(out.len(), |i| at + i + 1);
            let usage_frame = self.read_line(&out[start..end]);
            if usage_frame && self.withhold_usage {
                // The frame and the blank line that ends its event.
                let after = end + usize::from(out.get(end) == Some(&b'\n'));
                let mut rest = Vec::with_capacity(out.len() - (after - start));
                rest.extend_from_slice(&out[..start]);
                rest.extend_from_slice(&out[after..]);
                out = Bytes::from(rest);
                from = start;
            } else {
                from = end;
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Reads the usage of a `data:` line that carries a usage object; whether it is the frame
    /// of the usage alone (no choices), which a client that did not ask for it must not see.
    fn read_line(&mut self, line: &[u8]) -> bool {
        let Some(data) = line.strip_prefix(b"data:") else {
            return false;
        };
        let Some(at) = memmem::find(data, b"\"usage\":") else {
            return false;
        };
        let after = data[at + 8..].iter().find(|b| !b.is_ascii_whitespace());
        if after != Some(&b'{') {
            return false;
        }
        if let Ok(Reported { usage: Some(usage) }) = serde_json::from_slice(data.trim_ascii()) {
            self.usage = Some(usage);
        }
        memmem::find(data, b"\"choices\":[]").is_some()
    }

    fn finish(&mut self, status: u16) {
        if let Some(pending) = self.pending.take() {
            pending.record(status, self.usage, self.first_byte);
        }
    }
}

impl Stream for Relay {
    type Item = reqwest::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match self.upstream.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if self.first_byte.is_none() {
                        self.first_byte = self.pending.as_ref().map(|p| p.started.elapsed());
                    }
                    if let Some(out) = self.pass(chunk) {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    self.finish(502);
                    self.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    let status = self.status;
                    self.finish(status);
                    self.ended = true;
                    let rest = std::mem::take(&mut self.tail);
                    return Poll::Ready((!rest.is_empty()).then(|| Ok(Bytes::from(rest))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The client went away before the stream's end: 499, as llmgate's log has it.
        self.finish(499);
    }
}

/// Writes the queued rows when `WRITE_AT_ROWS` are queued or every `WRITE_EVERY`.
async fn write_rows(
    mut connection: SqliteConnection,
    mut queue: mpsc::UnboundedReceiver<Row>,
    queued: Arc<Queued>,
) {
    let sql: Vec<(usize, String)> = ROWS_PER_INSERT
        .iter()
        .map(|&rows| (rows, multi_row_insert(rows)))
        .collect();
    let mut batch = Vec::with_capacity(WRITE_AT_ROWS);
    let mut tick = tokio::time::interval(WRITE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = queued.full.notified() => {}
        }
        while let Ok(row) = queue.try_recv() {
            batch.push(row);
        }
        queued.rows.fetch_sub(batch.len(), Ordering::Relaxed);
        if batch.is_empty() {
            continue;
        }
        if let Err(error) = write_batch(&mut connection, &sql, &batch).await {
            eprintln!("contract floor: writing {} rows: {error}", batch.len());
        }
        batch.clear();
    }
}

async fn write_batch(
    connection: &mut SqliteConnection,
    sql: &[(usize, String)],
    batch: &[Row],
) -> sqlx::Result<()> {
    let mut rollups: HashMap<(i64, i64, &str), [i64; 6]> = HashMap::new();
    for row in batch {
        let sums = rollups
            .entry((row.at_ms / 86_400_000, row.key_id, row.model))
            .or_default();
        let details = (
            row.usage.prompt_tokens_details.unwrap_or_default(),
            row.usage.completion_tokens_details.unwrap_or_default(),
        );
        for (sum, add) in sums.iter_mut().zip([
            1,
            i64::from(row.status >= 400),
            row.usage.prompt_tokens,
            row.usage.completion_tokens,
            details.0.cached_tokens,
            details.1.reasoning_tokens,
        ]) {
            *sum += add;
        }
    }
    let mut transaction = connection.begin().await?;
    let mut rest = batch;
    while !rest.is_empty() {
        let Some((size, text)) = sql.iter().find(|(size, _)| *size <= rest.len()) else {
            break;
        };
        let (chunk, after) = rest.split_at(*size);
        let mut query = sqlx::query(text);
        for row in chunk {
            let details = (
                row.usage.prompt_tokens_details.unwrap_or_default(),
                row.usage.completion_tokens_details.unwrap_or_default(),
            );
            query = query
                .bind(row.at_ms)
                .bind(row.request_id.as_str())
                .bind(row.key_id)
                .bind(row.model)
                .bind(ENDPOINT)
                .bind(row.stream)
                .bind("mock")
                .bind(1_i64)
                .bind(1_i64)
                .bind(i64::from(row.status))
                .bind(1_i64)
                .bind(row.latency_ms)
                .bind(row.ttfb_ms)
                .bind(row.usage.prompt_tokens)
                .bind(row.usage.completion_tokens)
                .bind(details.0.cached_tokens)
                .bind(details.1.reasoning_tokens)
                .bind(row.estimated);
        }
        query.persistent(true).execute(&mut *transaction).await?;
        rest = after;
    }
    for ((day, key_id, model), sums) in rollups {
        let mut query = sqlx::query(ROLLUP_SQL)
            .bind(day_text(day))
            .bind(key_id)
            .bind(model);
        for sum in sums {
            query = query.bind(sum);
        }
        query.persistent(true).execute(&mut *transaction).await?;
    }
    transaction.commit().await
}

/// `INSERT INTO request_log (…) VALUES (?, …), …` for `rows` rows.
fn multi_row_insert(rows: usize) -> String {
    let one = format!("({})", vec!["?"; LOG_COLUMN_COUNT].join(", "));
    format!(
        "INSERT INTO request_log ({LOG_COLUMNS}) VALUES {}",
        vec![one; rows].join(", ")
    )
}

/// `YYYY-MM-DD` of the UTC day `day` days after 1970-01-01.
fn day_text(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|at| at.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Checks the contract floor's reading of requests and streams, starting nothing: part of what
/// `cargo test --all-targets` runs of this bench (see `budget::self_check`).
pub fn self_check() -> Result<()> {
    let spliced = with_usage_requested(&Bytes::from_static(br#"{"model":"m","stream":true}"#));
    let value: serde_json::Value = serde_json::from_slice(&spliced)?;
    anyhow::ensure!(
        value["stream_options"]["include_usage"] == true && value["model"] == "m",
        "the usage option was not spliced in: {value}"
    );
    // A usage frame cut in two by the chunks, after a frame whose usage is null: its usage is
    // read, and the frame withheld, wherever the cut falls.
    let frames = concat!(
        "data: {\"choices\":[{}],\"usage\":null}\n\n",
        "data: {\"choices\":[],\"usage\": {\"prompt_tokens\":7,\"completion_tokens\":3,",
        "\"prompt_tokens_details\":{\"cached_tokens\":2}}}\n\ndata: [DONE]\n\n"
    );
    let expected = "data: {\"choices\":[{}],\"usage\":null}\n\ndata: [DONE]\n\n";
    for cut in [0, 20, 60, 80, frames.len() - 3] {
        let answer = http::Response::new(reqwest::Body::from(""));
        let mut relay = Relay::new(reqwest::Response::from(answer), None, true);
        let mut passed = Vec::new();
        for part in [&frames[..cut], &frames[cut..]] {
            passed.extend(
                relay
                    .pass(Bytes::copy_from_slice(part.as_bytes()))
                    .unwrap_or_default(),
            );
        }
        passed.extend(std::mem::take(&mut relay.tail));
        let usage = relay.usage.unwrap_or_default();
        let cached = usage
            .prompt_tokens_details
            .unwrap_or_default()
            .cached_tokens;
        anyhow::ensure!(
            (usage.prompt_tokens, usage.completion_tokens, cached) == (7, 3, 2),
            "cut at {cut}: the stream's usage read as {:?}",
            (usage.prompt_tokens, usage.completion_tokens, cached)
        );
        anyhow::ensure!(
            passed == expected.as_bytes(),
            "cut at {cut}: the client got {:?}",
            String::from_utf8_lossy(&passed)
        );
    }
    anyhow::ensure!(
        multi_row_insert(2).matches('?').count() == 2 * LOG_COLUMN_COUNT
            && LOG_COLUMNS.split(',').count() == LOG_COLUMN_COUNT,
        "the request log's INSERT has the wrong number of placeholders"
    );
    Ok(())
}

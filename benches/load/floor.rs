//! The floors: the least a Rust proxy built on llmgate's stack can cost, measured in the same
//! bench so llmgate's own overhead can be told apart from its libraries'.
//!
//! Each floor forwards a request to the mock exactly as received (path, `authorization`,
//! `content-type`, body) and returns the answer's status, `content-type` and body: no key
//! check, no limits, no routing, no JSON, no accounting, no log line. An answer of
//! `text/event-stream` is relayed frame by frame as it arrives (so the streams phase can hold
//! thousands of streams open through a floor); any other answer is read whole first, as the
//! chat phases always measured it. Each runs on a current-thread runtime with jemalloc, as a
//! pinned llmgate does, and keeps idle upstream connections as long as llmgate's pool does.
//!
//! - `axum-reqwest`: axum's server and one shared `reqwest::Client`, the stack DESIGN.md names.
//! - `axum-hyper`: axum's server and hyper-util's pooled client (what reqwest wraps): the
//!   difference to `axum-reqwest` is reqwest's own layers.
//! - `hyper`: hyper's server connection and hyper-util's pooled client, without axum's router
//!   and reqwest's layers.
//! - `contract`: the `axum-reqwest` floor doing the least work the contract asks of every
//!   request (key by hash, one JSON pass each way, limits and their headers, the request log);
//!   see `floor_contract`. The difference to `axum-reqwest` is the contract's own cost.
//!
//! The bench starts a floor by running its own executable with `--floor-proxy KIND LISTEN
//! UPSTREAM POOL_IDLE_MS [DATABASE]` (the database only for `contract`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Either, Full};
use hyper_util::client::legacy::Client as PooledClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[path = "floor_contract.rs"]
mod contract;
pub use contract::self_check as contract_self_check;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    AxumReqwest,
    AxumHyper,
    Hyper,
    Contract,
}

impl Floor {
    pub fn arg(self) -> &'static str {
        match self {
            Self::AxumReqwest => "axum-reqwest",
            Self::AxumHyper => "axum-hyper",
            Self::Hyper => "hyper",
            Self::Contract => "contract",
        }
    }

    fn parse(arg: &str) -> Result<Self> {
        match arg {
            "axum-reqwest" => Ok(Self::AxumReqwest),
            "axum-hyper" => Ok(Self::AxumHyper),
            "hyper" => Ok(Self::Hyper),
            "contract" => Ok(Self::Contract),
            other => bail!("unknown floor '{other}' (axum-reqwest, axum-hyper, hyper or contract)"),
        }
    }
}

/// `--floor-proxy KIND LISTEN UPSTREAM POOL_IDLE_MS [DATABASE]`: serves until killed.
pub fn main(args: &[String]) -> Result<()> {
    let (kind, listen, upstream, pool_idle, database) = match args {
        [kind, listen, upstream, pool_idle] => (kind, listen, upstream, pool_idle, None),
        [kind, listen, upstream, pool_idle, database] => {
            (kind, listen, upstream, pool_idle, Some(database))
        }
        _ => bail!(
            "usage: --floor-proxy axum-reqwest|axum-hyper|hyper|contract LISTEN UPSTREAM POOL_IDLE_MS [DATABASE]"
        ),
    };
    let floor = Floor::parse(kind)?;
    let listen: SocketAddr = listen.parse().context("LISTEN")?;
    let upstream: SocketAddr = upstream.parse().context("UPSTREAM")?;
    let pool_idle = Duration::from_millis(pool_idle.parse().context("POOL_IDLE_MS")?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        match floor {
            Floor::AxumReqwest => axum_reqwest(listener, upstream, pool_idle).await,
            Floor::AxumHyper => axum_hyper(listener, upstream, pool_idle).await,
            Floor::Hyper => hyper_only(listener, upstream, pool_idle).await,
            Floor::Contract => {
                let database = database.map_or_else(
                    || {
                        std::env::temp_dir()
                            .join(format!("llmgate-floor-contract-{}.db", std::process::id()))
                    },
                    std::path::PathBuf::from,
                );
                contract::serve(listener, upstream, pool_idle, &database).await
            }
        }
    })
}

/// Whether an answer is a stream, to be relayed as it arrives rather than read whole.
fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"))
}

async fn axum_reqwest(
    listener: tokio::net::TcpListener,
    upstream: SocketAddr,
    pool_idle: Duration,
) -> Result<()> {
    use axum::extract::State;
    use axum::serve::ListenerExt;

    #[derive(Clone)]
    struct Upstream {
        client: reqwest::Client,
        base: String,
    }

    async fn forward(
        State(upstream): State<Upstream>,
        request: axum::extract::Request,
    ) -> axum::response::Response {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
            return status_only(StatusCode::BAD_REQUEST);
        };
        let mut outgoing = upstream
            .client
            .post(format!("{}{}", upstream.base, parts.uri.path()))
            .body(body);
        for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
            if let Some(value) = parts.headers.get(&name) {
                outgoing = outgoing.header(name, value.clone());
            }
        }
        let Ok(answer) = outgoing.send().await else {
            return status_only(StatusCode::BAD_GATEWAY);
        };
        let status = answer.status();
        let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
        let body = if is_event_stream(answer.headers()) {
            axum::body::Body::from_stream(answer.bytes_stream())
        } else {
            let Ok(body) = answer.bytes().await else {
                return status_only(StatusCode::BAD_GATEWAY);
            };
            axum::body::Body::from(body)
        };
        let mut response = axum::response::Response::new(body);
        *response.status_mut() = status;
        if let Some(content_type) = content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
        }
        response
    }

    fn status_only(status: StatusCode) -> axum::response::Response {
        let mut response = axum::response::Response::default();
        *response.status_mut() = status;
        response
    }

    let client = cheapest_reqwest(pool_idle)?;
    let app = axum::Router::new().fallback(forward).with_state(Upstream {
        client,
        base: format!("http://{upstream}"),
    });
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn axum_hyper(
    listener: tokio::net::TcpListener,
    upstream: SocketAddr,
    pool_idle: Duration,
) -> Result<()> {
    use axum::extract::State;
    use axum::response::IntoResponse;
    use axum::serve::ListenerExt;

    #[derive(Clone)]
    struct Upstream {
        client: PooledClient<HttpConnector, Full<Bytes>>,
        authority: String,
    }

    async fn handle(
        State(upstream): State<Upstream>,
        request: axum::extract::Request,
    ) -> axum::response::Response {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let request = Request::from_parts(parts, body);
        let Ok(response) = forward_bytes(&upstream.client, &upstream.authority, request).await;
        let (parts, body) = response.into_parts();
        let body = match body {
            Either::Left(whole) => axum::body::Body::new(whole),
            Either::Right(stream) => axum::body::Body::new(stream),
        };
        Response::from_parts(parts, body)
    }

    let app = axum::Router::new().fallback(handle).with_state(Upstream {
        client: pooled_client(pool_idle),
        authority: upstream.to_string(),
    });
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// The cheapest reqwest llmgate can have: its retry and redirect layers off, as llmgate's.
fn cheapest_reqwest(pool_idle: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .no_proxy()
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(pool_idle)
        .build()
}

fn pooled_client(pool_idle: Duration) -> PooledClient<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    PooledClient::builder(TokioExecutor::new())
        .pool_idle_timeout(pool_idle)
        .build(connector)
}

async fn hyper_only(
    listener: tokio::net::TcpListener,
    upstream: SocketAddr,
    pool_idle: Duration,
) -> Result<()> {
    let client = pooled_client(pool_idle);
    let authority = upstream.to_string();
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let client = client.clone();
        let authority = authority.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                forward(client.clone(), authority.clone(), request)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// A whole answer, or a stream relayed as it arrives (no boxing either way).
type Answer = Either<Full<Bytes>, hyper::body::Incoming>;

async fn forward(
    client: PooledClient<HttpConnector, Full<Bytes>>,
    authority: String,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Answer>, Infallible> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(status_only(StatusCode::BAD_REQUEST));
    };
    forward_bytes(&client, &authority, Request::from_parts(parts, body)).await
}

/// Sends `request` (its body read) to the upstream at `authority`; the answer, read whole
/// unless it is a stream.
async fn forward_bytes(
    client: &PooledClient<HttpConnector, Full<Bytes>>,
    authority: &str,
    request: Request<Bytes>,
) -> Result<Response<Answer>, Infallible> {
    let (parts, body) = request.into_parts();
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(parts.uri.path())
        .build()
    else {
        return Ok(status_only(StatusCode::BAD_REQUEST));
    };
    let mut outgoing = Request::new(Full::new(body));
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = uri;
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = parts.headers.get(&name) {
            outgoing.headers_mut().insert(name, value.clone());
        }
    }
    let Ok(answer) = client.request(outgoing).await else {
        return Ok(status_only(StatusCode::BAD_GATEWAY));
    };
    let (parts, body) = answer.into_parts();
    let body = if is_event_stream(&parts.headers) {
        Either::Right(body)
    } else {
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return Ok(status_only(StatusCode::BAD_GATEWAY));
        };
        Either::Left(Full::new(body))
    };
    let mut response = Response::new(body);
    *response.status_mut() = parts.status;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    Ok(response)
}

fn status_only(status: StatusCode) -> Response<Answer> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}

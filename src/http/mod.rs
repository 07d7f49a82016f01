//! The HTTP edge: the router and its one middleware stack. Only this module knows axum.
//!
//! The stack, outermost first:
//! 1. the edge, one middleware: the arrival time (for latency and overhead figures); the
//!    request id (the client's `x-request-id` when it is 1 to 128 visible ASCII characters,
//!    else a new one; echoed on the response); error rendering (5xx bodies get the request id;
//!    every error is logged once, here);
//! 2. panic catching: a handler panic becomes a 500 in the contract's shape;
//! 3. the body limit used by the body extractor (413 while reading, never buffered past it).

mod admin;
mod extract;
mod ops;
mod respond;
mod ui;
mod v1;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Serves `state` on `listener` until `stop` is cancelled, then stops accepting and resolves
/// once the in-flight requests have finished (the caller bounds that wait with its grace).
pub fn serve(
    listener: TcpListener,
    state: AppState,
    stop: CancellationToken,
) -> impl Future<Output = std::io::Result<()>> + Send {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        // Small SSE frames must leave at once, not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(router(
            state,
        )),
    )
    .with_graceful_shutdown(stop.cancelled_owned());
    std::future::IntoFuture::into_future(server)
}

/// The whole HTTP service: every route behind the edge stack.
pub fn router(
    state: AppState,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let body_limit = state.max_body_bytes;
    let proxied = v1::PROXIED.iter().fold(Router::new(), |routes, &endpoint| {
        routes.route(endpoint.public_path(), v1::proxied(endpoint))
    });
    let routes = proxied
        .route("/v1/models", get(v1::list_models))
        .route("/v1/models/{*id}", get(v1::get_model))
        .route(
            "/v1/responses/{id}",
            get(v1::get_response).delete(v1::delete_response),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(v1::response_input_items),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .nest("/admin", admin::router(&state))
        .merge(ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(state);
    with_edge_layers(routes, body_limit)
}

/// The middleware stack of the module docs, around any router (tests use it on their own).
///
/// The stack wraps the router once, as one service that is served as it is, rather than
/// through `Router::layer`, which wraps every route: axum clones a route's whole service for
/// each call, so six layers there meant about twenty boxed clones (and as many state clones)
/// per request. The edge's three jobs share one middleware: each `from_fn` layer costs a
/// boxed future and a clone of the service below it per request.
fn with_edge_layers(
    routes: Router,
    body_limit: usize,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    tower::ServiceBuilder::new()
        .layer(middleware::from_fn(edge))
        .layer(CatchPanicLayer::custom(|_panic| {
            ApiError::internal("a request handler panicked").into_response()
        }))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(routes)
}

/// Stamps the arrival time, makes sure the request has an id (echoed on the response) and
/// renders errors.
async fn edge(mut request: Request, next: Next) -> Response {
    request
        .extensions_mut()
        .insert(extract::RequestStart(std::time::Instant::now()));
    let request_id = match request.headers().get(REQUEST_ID) {
        Some(id) if acceptable_request_id(id) => id.clone(),
        refused => {
            let id = new_request_id();
            if let Some(refused) = refused {
                // The id goes upstream, into logs and into the request log for weeks: one
                // of unbounded length or with invisible bytes is replaced, not carried.
                let bytes = refused.as_bytes();
                let start = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]);
                tracing::info!(
                    request_id = ?id,
                    received_bytes = bytes.len(),
                    received = %crate::untrusted::excerpt(&start, crate::untrusted::ECHOED_CHARS),
                    "replaced the client's x-request-id: it must be 1 to {MAX_REQUEST_ID_BYTES} \
                     visible ASCII characters"
                );
            }
            request.headers_mut().insert(REQUEST_ID, id.clone());
            id
        }
    };
    let anthropic = request.uri().path().starts_with("/v1/messages");
    let response = next.run(request).await;
    let mut response = render_errors(response, &request_id, anthropic);
    response
        .headers_mut()
        .entry(REQUEST_ID)
        .or_insert(request_id);
    response
}

/// The longest `x-request-id` taken from a client; a longer one is replaced by a new id.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Whether a client's `x-request-id` is kept: 1 to [`MAX_REQUEST_ID_BYTES`] visible ASCII
/// characters (no spaces, no control or non-ASCII bytes).
fn acceptable_request_id(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    (1..=MAX_REQUEST_ID_BYTES).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
}

/// Every unknown path or method: a 404 naming it. Under `/v1/` it is counted too (and the
/// error rendering logs it at info), since a client calling an endpoint llmgate does not serve
/// is a misconfiguration someone should see.
async fn not_found(State(state): State<AppState>, method: Method, uri: Uri) -> ApiError {
    if is_client_api(uri.path()) {
        let method_label = match method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            // Methods are any token a client likes; labels stay a fixed set.
            _ => "other",
        };
        state
            .metrics
            .unknown_endpoints
            .with_label_values(&[method_label])
            .inc();
    }
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// Whether `path` is under the client API, `/v1/`.
fn is_client_api(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// Logs every error response once and puts the request id into 5xx bodies, which is where the
/// id is useful: the client quotes it, the operator finds the log line. Errors on Anthropic's
/// endpoints (`/v1/messages…`) take Anthropic's shape, which its SDKs parse.
fn render_errors(mut response: Response, request_id: &HeaderValue, anthropic: bool) -> Response {
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let request_id = request_id.to_str().unwrap_or_default();
        let status = error.status();
        let text = LoggedError(&error);
        let shown_id = if status.is_server_error() {
            tracing::error!(request_id = %request_id, status = status.as_u16(), error = %text, "request failed");
            Some(request_id)
        } else if let ApiError::RouteNotFound { path, .. } = &error
            && is_client_api(path)
        {
            tracing::info!(request_id = %request_id, status = status.as_u16(), error = %text, "unknown endpoint");
            None
        } else {
            tracing::debug!(request_id = %request_id, status = status.as_u16(), error = %text, "request refused");
            None
        };
        if shown_id.is_none() && !anthropic {
            return response;
        }
        let mut rendered = respond::error_response(&error, shown_id, anthropic);
        // The length, if the inner router set one, was the old body's.
        for (name, value) in response.headers() {
            if name != header::CONTENT_LENGTH {
                rendered.headers_mut().entry(name).or_insert(value.clone());
            }
        }
        return rendered;
    }
    response
}

/// An error as its log line shows it: its text may quote what the client sent, so it is
/// shortened like a client's message (and escaped by the log formatter). Formatted only when
/// the line is written.
struct LoggedError<'a>(&'a ApiError);

impl std::fmt::Display for LoggedError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        f.write_str(&crate::untrusted::shorten(
            &text,
            crate::error::MAX_MESSAGE_BYTES,
        ))
    }
}

/// The id of a request that arrives without one: `req_` and 96 random bits in hex.
fn new_request_id() -> HeaderValue {
    let bits: [u8; 12] = rand::random();
    let mut id = *b"req_000000000000000000000000";
    // 12 bytes always fit the 24 hex digits after the prefix.
    let _ = hex::encode_to_slice(bits, &mut id[4..]);
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("req_unknown"))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn explode() -> &'static str {
        panic!("boom")
    }

    #[test]
    fn new_request_ids_are_the_prefix_and_96_random_bits_in_hex() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        for id in [a, b] {
            let text = id.to_str().unwrap();
            assert_eq!(text.len(), 28, "{text}");
            assert!(text.starts_with("req_"), "{text}");
            assert!(
                text[4..]
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_in_the_contract_shape() {
        let app = with_edge_layers(Router::new().route("/x", get(explode)), 1024);
        let response = app
            .oneshot(Request::get("/x").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let id = response.headers()[REQUEST_ID].to_str().unwrap().to_owned();
        assert!(id.starts_with("req_"));
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "internal_error");
        assert!(json["error"]["message"].as_str().unwrap().contains(&id));
    }
}

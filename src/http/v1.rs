//! The OpenAI-compatible client API: thin handlers that extract, call the gateway, reply.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body as ResponseBody;
use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use bytes::Bytes;

use super::extract::{Authenticated, Body, RequestIdHeader, RequestStart};
use crate::auth::ClientKey;
use crate::error::ApiError;
use crate::gateway::Reply;
use crate::providers::ClientHeaders;
use crate::state::AppState;
use crate::vocab::{Dialect, Endpoint};

/// The endpoints proxied upstream, each served by [`proxied`] at its public path. Adding one
/// adds a line here.
pub const PROXIED: &[Endpoint] = &[
    Endpoint::ChatCompletions,
    Endpoint::Completions,
    Endpoint::Embeddings,
    // Anthropic's Messages API, to a provider of any kind.
    Endpoint::Messages,
    // Forwarded to Anthropic providers, counted here otherwise.
    Endpoint::CountTokens,
    // OpenAI's Responses API, translated to chat for a provider of any kind.
    Endpoint::Responses,
];

/// The one handler of the proxied endpoints, with `endpoint` as data.
pub fn proxied(endpoint: Endpoint) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>, request: Request| async move {
            let request = ProxyRequest::read(request, &state, endpoint).await?;
            proxy(&state, endpoint, request).await
        },
    )
}

/// What a proxied request brings: when it arrived, its id, its key, the client headers an
/// upstream of its own dialect gets, and the size-limited body.
pub struct ProxyRequest {
    started: std::time::Instant,
    request_id: String,
    key: Arc<ClientKey>,
    client_headers: ClientHeaders,
    body: Bytes,
}

impl ProxyRequest {
    /// Reads a request to `endpoint` in this order, so a missing key is refused before the
    /// body is read.
    async fn read(
        request: Request,
        state: &AppState,
        endpoint: Endpoint,
    ) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let RequestStart(started) =
            infallible(RequestStart::from_request_parts(&mut parts, state).await);
        let RequestIdHeader(request_id) =
            infallible(RequestIdHeader::from_request_parts(&mut parts, state).await);
        let Authenticated(key) = Authenticated::from_request_parts(&mut parts, state).await?;
        let client_headers = client_headers(endpoint.dialect(), &parts.headers);
        let Body(body) = Body::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Self {
            started,
            request_id,
            key,
            client_headers,
            body,
        })
    }
}

fn infallible<T>(extracted: Result<T, Infallible>) -> T {
    match extracted {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");

/// The client headers passed on upstream: only a client of Anthropic's dialect speaks for its
/// own upstream's headers (looked up only then: three header look-ups were 0.4 % of a chat
/// request's instructions); any client's trace is continued.
fn client_headers(dialect: Dialect, headers: &HeaderMap) -> ClientHeaders {
    let trace_parent = crate::telemetry::remote_parent(headers);
    match dialect {
        Dialect::Anthropic => ClientHeaders {
            anthropic_version: headers.get(ANTHROPIC_VERSION).cloned(),
            anthropic_beta: headers.get(ANTHROPIC_BETA).cloned(),
            trace_parent,
        },
        Dialect::OpenAi | Dialect::Responses => ClientHeaders {
            trace_parent,
            ..ClientHeaders::default()
        },
    }
}

async fn proxy(
    state: &AppState,
    endpoint: Endpoint,
    request: ProxyRequest,
) -> Result<Response, ApiError> {
    let reply = state
        .gateway
        .proxy(
            &request.key,
            endpoint,
            request.body,
            &request.request_id,
            request.started,
            &request.client_headers,
        )
        .await?;
    Ok(match reply {
        Reply::Complete {
            status,
            mut headers,
            body,
        } => {
            // What axum gives a body of bytes, when the upstream named no type.
            if !headers.contains_key(header::CONTENT_TYPE) {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
            }
            response(status, headers, ResponseBody::from(body))
        }
        Reply::Stream { headers, body } => {
            response(StatusCode::OK, headers, ResponseBody::from_stream(body))
        }
    })
}

/// A response with the gateway's headers as its header map. axum's `(status, headers, body)`
/// copies a `HeaderMap` into the response's own one header by header, hashing each name again:
/// 4 % of a chat request's instructions (callgrind, OPTIMIZATION.md).
fn response(status: StatusCode, headers: HeaderMap, body: ResponseBody) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

pub async fn list_models(
    State(state): State<AppState>,
    Authenticated(key): Authenticated,
) -> Response {
    json(state.gateway.list_models(&key))
}

pub async fn get_model(
    State(state): State<AppState>,
    Authenticated(key): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(state.gateway.get_model(&key, &id)?))
}

/// `GET /v1/responses/{id}`: a response this key stored.
pub async fn get_response(
    State(state): State<AppState>,
    Authenticated(key): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(state.gateway.responses().get(key.id, &id).await?))
}

/// `DELETE /v1/responses/{id}`: deletes a response this key stored.
pub async fn delete_response(
    State(state): State<AppState>,
    Authenticated(key): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(state.gateway.responses().delete(key.id, &id).await?))
}

/// `GET /v1/responses/{id}/input_items`: a page of a stored response's input items.
pub async fn response_input_items(
    State(state): State<AppState>,
    Authenticated(key): Authenticated,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let page = state
        .gateway
        .responses()
        .input_items(key.id, &id, query.as_deref())
        .await?;
    Ok(json(page))
}

fn json(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

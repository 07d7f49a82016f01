//! The OpenAI-compatible client API: thin handlers that extract, call the gateway, reply.

use axum::body::Body as ResponseBody;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::extract::{Authenticated, Body, RequestIdHeader, RequestStart};
use crate::error::ApiError;
use crate::gateway::Reply;
use crate::providers::ClientHeaders;
use crate::state::AppState;
use crate::vocab::Endpoint;

pub async fn chat_completions(
    State(state): State<AppState>,
    RequestStart(started): RequestStart,
    RequestIdHeader(request_id): RequestIdHeader,
    Authenticated(key): Authenticated,
    Body(body): Body,
) -> Result<Response, ApiError> {
    proxy(
        &state,
        &key,
        started,
        Endpoint::ChatCompletions,
        body,
        &request_id,
        ClientHeaders::default(),
    )
    .await
}

pub async fn completions(
    State(state): State<AppState>,
    RequestStart(started): RequestStart,
    RequestIdHeader(request_id): RequestIdHeader,
    Authenticated(key): Authenticated,
    Body(body): Body,
) -> Result<Response, ApiError> {
    proxy(
        &state,
        &key,
        started,
        Endpoint::Completions,
        body,
        &request_id,
        ClientHeaders::default(),
    )
    .await
}

pub async fn embeddings(
    State(state): State<AppState>,
    RequestStart(started): RequestStart,
    RequestIdHeader(request_id): RequestIdHeader,
    Authenticated(key): Authenticated,
    Body(body): Body,
) -> Result<Response, ApiError> {
    proxy(
        &state,
        &key,
        started,
        Endpoint::Embeddings,
        body,
        &request_id,
        ClientHeaders::default(),
    )
    .await
}

/// `POST /v1/messages`: Anthropic's Messages API, to a provider of any kind.
pub async fn messages(
    State(state): State<AppState>,
    RequestStart(started): RequestStart,
    RequestIdHeader(request_id): RequestIdHeader,
    Authenticated(key): Authenticated,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let client_headers = anthropic_headers(&headers);
    proxy(
        &state,
        &key,
        started,
        Endpoint::Messages,
        body,
        &request_id,
        client_headers,
    )
    .await
}

/// `POST /v1/messages/count_tokens`: forwarded to Anthropic providers, counted here otherwise.
pub async fn count_tokens(
    State(state): State<AppState>,
    RequestStart(started): RequestStart,
    RequestIdHeader(request_id): RequestIdHeader,
    Authenticated(key): Authenticated,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let client_headers = anthropic_headers(&headers);
    proxy(
        &state,
        &key,
        started,
        Endpoint::CountTokens,
        body,
        &request_id,
        client_headers,
    )
    .await
}

fn anthropic_headers(headers: &HeaderMap) -> ClientHeaders {
    ClientHeaders {
        anthropic_version: headers.get("anthropic-version").cloned(),
        anthropic_beta: headers.get("anthropic-beta").cloned(),
    }
}

async fn proxy(
    state: &AppState,
    key: &crate::auth::ClientKey,
    started: std::time::Instant,
    endpoint: Endpoint,
    body: bytes::Bytes,
    request_id: &str,
    client_headers: ClientHeaders,
) -> Result<Response, ApiError> {
    let reply = state
        .gateway
        .proxy(key, endpoint, body, request_id, started, &client_headers)
        .await?;
    Ok(match reply {
        Reply::Complete {
            status,
            headers,
            body,
        } => (status, headers, body).into_response(),
        Reply::Stream { headers, body } => {
            (headers, ResponseBody::from_stream(body)).into_response()
        }
    })
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

fn json(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

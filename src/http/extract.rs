//! Extractors: the authenticated client key, the request id and the size-limited body.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;

use super::REQUEST_ID;
use crate::auth::{AuthError, ClientKey};
use crate::error::ApiError;
use crate::state::AppState;

/// The client key of this request, authenticated through the key cache.
pub struct Authenticated(pub Arc<ClientKey>);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The refusal's text is made only when there is no key: `ok_or` made it for every
        // request.
        let key = presented_key(parts)
            .ok_or_else(|| ApiError::InvalidApiKey(AuthError::Missing.to_string()))?;
        match state
            .keys
            .authenticate(key, state.clock.unix_seconds())
            .await
        {
            Ok(key) => Ok(Self(key)),
            Err(AuthError::Store(detail)) => Err(ApiError::internal(detail)),
            Err(refusal) => Err(ApiError::InvalidApiKey(refusal.to_string())),
        }
    }
}

/// The key from `Authorization: Bearer KEY`, or else from `x-api-key: KEY`.
fn presented_key(parts: &Parts) -> Option<&str> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    bearer
        .or_else(|| {
            parts
                .headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|key| !key.is_empty())
}

/// The request id set by the request-id layer.
pub struct RequestIdHeader(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestIdHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}

/// The raw request body, read up to the configured limit. A larger body is refused with 413
/// as soon as the limit is crossed (or at once, from `Content-Length`).
pub struct Body(pub Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.max_body_bytes;
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge { limit })
            }
            Err(rejection) => Err(ApiError::invalid_request(format!(
                "The request body could not be read: {}.",
                rejection.body_text()
            ))),
        }
    }
}

/// When the request arrived, stamped by the outermost middleware.
#[derive(Clone, Copy, Debug)]
pub struct RequestStart(pub std::time::Instant);

impl<S: Send + Sync> FromRequestParts<S> for RequestStart {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestStart>()
            .copied()
            .unwrap_or(RequestStart(std::time::Instant::now())))
    }
}

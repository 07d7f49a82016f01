//! `POST /admin/login`: the admin password for a token; `POST /admin/password`: a new admin
//! password (which ends every earlier token); `POST /admin/logout-all`: the end of every token.
//!
//! The login is the one admin route open to anyone, so it does the least work it can for a
//! stranger: a throttled address is refused before its body is read, and no body is read past
//! [`LOGIN_BODY_LIMIT`] (a password is at most [`MAX_PASSWORD_CHARS`] characters).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::parse_json;
use crate::admin::{IssuedToken, LoginError, MAX_PASSWORD_CHARS};
use crate::error::ApiError;
use crate::secret::Secret;
use crate::state::AppState;

/// Most bytes read of a login or password-change body: room for two passwords of
/// [`MAX_PASSWORD_CHARS`] characters, even written as `\uXXXX` escapes, and nothing like the
/// 10 MiB of a chat request.
pub const LOGIN_BODY_LIMIT: usize = 4 * 1024;
const _: () = assert!(2 * 6 * MAX_PASSWORD_CHARS + 256 <= LOGIN_BODY_LIMIT);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    password: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: Secret,
    new_password: Secret,
}

#[derive(Debug, Serialize)]
pub struct Token {
    token: String,
    expires_at: String,
}

impl From<IssuedToken> for Token {
    fn from(issued: IssuedToken) -> Self {
        Self {
            token: issued.token.expose().to_owned(),
            expires_at: issued
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    request: Request,
) -> Result<Json<Token>, ApiError> {
    let auth = state.admin.auth();
    auth.check_throttle(client.0).await.map_err(login_error)?;
    let body = small_body(request).await?;
    let Login { password } = parse_json(&body)?;
    auth.login(password, client.0)
        .await
        .map(|issued| Json(Token::from(issued)))
        .map_err(login_error)
}

/// Changes the admin password; the answer is a token of the new generation, since the one
/// the request came with is refused from now on.
pub async fn change_password(
    State(state): State<AppState>,
    client: ClientAddr,
    request: Request,
) -> Result<Json<Token>, ApiError> {
    let body = small_body(request).await?;
    let PasswordChange {
        current_password,
        new_password,
    } = parse_json(&body)?;
    state
        .admin
        .auth()
        .change_password(current_password, new_password, client.0)
        .await
        .map(|issued| Json(Token::from(issued)))
        .map_err(login_error)
}

/// Ends every admin token, the caller's included.
pub async fn logout_all(State(state): State<AppState>) -> Result<Response, ApiError> {
    state
        .admin
        .auth()
        .logout_all()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({"logged_out": true})).into_response())
}

pub(super) fn login_error(error: LoginError) -> ApiError {
    match error {
        LoginError::WrongPassword => ApiError::WrongPassword,
        LoginError::Throttled { retry_after } => ApiError::TooManyLoginAttempts { retry_after },
        LoginError::WeakPassword(why) => {
            ApiError::invalid_field("new_password", format!("new_password: {why}"))
        }
        LoginError::SetByEnvironment => {
            ApiError::Conflict(format!("The {}.", LoginError::SetByEnvironment))
        }
        LoginError::Store(error) => ApiError::internal(error),
        LoginError::Failed(detail) => ApiError::internal(detail),
    }
}

/// The body of a login, read up to [`LOGIN_BODY_LIMIT`] bytes: a longer one is refused as soon
/// as its `Content-Length` says so, or its bytes cross the limit.
pub(super) async fn small_body(request: Request) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::LoginTooLarge {
        limit: LOGIN_BODY_LIMIT,
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > LOGIN_BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let mut frames = request.into_body().into_data_stream();
    let mut body = BytesMut::new();
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(|error| {
            ApiError::invalid_request(format!("The request body could not be read: {error}."))
        })?;
        if body.len() + frame.len() > LOGIN_BODY_LIMIT {
            return Err(too_large());
        }
        body.extend_from_slice(&frame);
    }
    Ok(body.freeze())
}

/// The client's IP address, from the connection. Requests served without connection info
/// (in-process tests) share the unspecified address.
pub struct ClientAddr(pub(super) std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(address(&parts.extensions)))
    }
}

fn address(extensions: &Extensions) -> std::net::IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |info| info.0.ip())
}

//! `POST /admin/login`: the admin password for a token.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::Extensions;
use serde::{Deserialize, Serialize};

use super::parse_json;
use crate::admin::LoginError;
use crate::error::ApiError;
use crate::http::extract::Body;
use crate::secret::Secret;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    password: Secret,
}

#[derive(Debug, Serialize)]
pub struct Token {
    token: String,
    expires_at: String,
}

pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    Body(body): Body,
) -> Result<Json<Token>, ApiError> {
    let Login { password } = parse_json(&body)?;
    match state.admin.auth().login(password, client.0).await {
        Ok(issued) => Ok(Json(Token {
            token: issued.token.expose().to_owned(),
            expires_at: issued
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })),
        Err(LoginError::WrongPassword) => Err(ApiError::WrongPassword),
        Err(LoginError::Throttled { retry_after }) => {
            Err(ApiError::TooManyLoginAttempts { retry_after })
        }
        Err(LoginError::Store(error)) => Err(ApiError::internal(error)),
        Err(LoginError::Failed(detail)) => Err(ApiError::internal(detail)),
    }
}

/// The client's IP address, from the connection. Requests served without connection info
/// (in-process tests) share the unspecified address.
pub struct ClientAddr(std::net::IpAddr);

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

//! `/admin`: the admin API's routes, the token check in front of all of them but login, and
//! the reading of admin request bodies and paths into the admin use cases' types.
//!
//! Bodies are JSON objects with the config file's field names; an unknown field, a wrong
//! type, a missing field or invalid JSON is a 400 `invalid_request_error` whose `param` names
//! the field (like `routes[0].weight`), and nothing changes.

mod accounts;
mod client_keys;
mod login;
mod models;
mod providers;
mod session;
mod upstreams;
mod usage;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::admin::{AdminError, TokenError};
use crate::error::ApiError;
use crate::state::AppState;

/// The admin routes, relative to `/admin`. Every route but `POST /login` sits behind the
/// token check, applied to the whole group so no route can forget it.
pub fn router(state: &AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/providers", get(providers::list).post(providers::create))
        .route(
            "/providers/{id}",
            get(providers::get)
                .patch(providers::update)
                .delete(providers::delete),
        )
        .route("/accounts", get(accounts::list).post(accounts::create))
        .route(
            "/accounts/{id}",
            get(accounts::get)
                .patch(accounts::update)
                .delete(accounts::delete),
        )
        .route("/models", get(models::list).post(models::create))
        .route(
            "/models/{id}",
            get(models::get)
                .patch(models::update)
                .delete(models::delete),
        )
        .route(
            "/routes/{id}",
            get(models::get_route).patch(models::update_route),
        )
        .route("/keys", get(client_keys::list).post(client_keys::create))
        .route(
            "/keys/{id}",
            get(client_keys::get)
                .patch(client_keys::update)
                .delete(client_keys::delete),
        )
        .route("/keys/{id}/rotate", post(client_keys::rotate))
        .route("/keys/{id}/revoke", post(client_keys::revoke))
        .route("/upstreams", get(upstreams::list))
        .route("/usage", get(usage::totals))
        .route("/logs", get(usage::logs))
        .route("/password", post(login::change_password))
        .route("/logout-all", post(login::logout_all))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route("/login", post(login::login))
        .route("/session", post(session::login).delete(session::logout))
        .merge(protected)
}

async fn require_admin(_admin: AdminSession, request: Request, next: Next) -> Response {
    next.run(request).await
}

/// Proof that the request carries a valid, unexpired admin token: in `Authorization: Bearer`,
/// or in the web console's session cookie. A state change made with the cookie must also carry
/// the session's CSRF token (see [`session`]); one made with the header needs none, since no
/// browser adds that header on its own.
pub struct AdminSession;

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |e: TokenError| ApiError::AdminUnauthorized(e.to_string());
        let auth = state.admin.auth();
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let (scheme, token) = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().split_once(' '))
                .ok_or(TokenError::Invalid)
                .map_err(unauthorized)?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(unauthorized(TokenError::Invalid));
            }
            return auth
                .verify(token.trim())
                .map(|()| Self)
                .map_err(unauthorized);
        }
        let token = session::cookie(&parts.headers, session::SESSION_COOKIE)
            .ok_or(TokenError::Missing)
            .map_err(unauthorized)?;
        auth.verify(token).map_err(unauthorized)?;
        if !parts.method.is_safe() {
            let sent = parts
                .headers
                .get(session::CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !session::csrf_matches(token, sent.trim()) {
                return Err(ApiError::CsrfRefused(format!(
                    "A change made with the web console's session cookie needs its CSRF token in \
                     the {} header (the value of the {} cookie). Reload the console, or use \
                     Authorization: Bearer instead.",
                    session::CSRF_HEADER,
                    session::CSRF_COOKIE
                )));
            }
        }
        Ok(Self)
    }
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Invalid { field, message } => {
                let text = format!("{field}: {message}");
                ApiError::invalid_field(field, text)
            }
            AdminError::NotFound(message) => ApiError::NotFound(message),
            AdminError::Conflict(message) => ApiError::Conflict(message),
            AdminError::Store(error) => ApiError::internal(error),
        }
    }
}

/// Reads a JSON body into `T`, naming the offending field when it does not fit.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|e| {
        ApiError::invalid_request(format!(
            "The request body must hold one JSON object and nothing after it: {e}."
        ))
    })?;
    Ok(value)
}

fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    if !inner.is_data() {
        return ApiError::invalid_request(format!(
            "The request body is not valid JSON: {inner}. Send a JSON object."
        ));
    }
    let message = inner.to_string();
    // serde names an unknown or missing field in backquotes.
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|start| message.strip_prefix(start))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    let field = match (path.as_str(), named) {
        (".", Some(name)) => Some(name),
        // An unknown field is already on the path; a missing one is not.
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            Some(path.to_owned())
        }
        (parent, Some(name)) => Some(format!("{parent}.{name}")),
        (".", None) => None,
        (field, None) => Some(field.to_owned()),
    };
    match field {
        Some(field) => {
            let text = format!("{field}: {message}");
            ApiError::invalid_field(field, text)
        }
        None => ApiError::invalid_request(format!(
            "The request body does not fit: {message}. Send a JSON object."
        )),
    }
}

/// The path's object id, or 404 for anything that is not one.
fn object_id(
    kind: &str,
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<i64, ApiError> {
    match path {
        Ok(axum::extract::Path(text)) => {
            crate::admin::parse_id(kind, &text).map_err(ApiError::from)
        }
        Err(_) => Err(ApiError::NotFound(format!("no {kind} with this id"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Body {
        name: String,
        routes: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Inner {
        weight: u32,
    }

    fn param(body: &str) -> Option<String> {
        match parse_json::<Body>(body.as_bytes()) {
            Err(ApiError::InvalidRequest { param, .. }) => param.map(|p| p.into_owned()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn body_errors_name_the_field() {
        assert_eq!(param(r#"{"routes": []}"#).as_deref(), Some("name"));
        assert_eq!(
            param(r#"{"name": 1, "routes": []}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            param(r#"{"name": "a", "routes": [{"weight": -1}]}"#).as_deref(),
            Some("routes[0].weight")
        );
        assert_eq!(
            param(r#"{"name": "a", "routes": [{"weight": 1, "x": 2}]}"#).as_deref(),
            Some("routes[0].x")
        );
        assert_eq!(
            param(r#"{"name": "a", "routes": [], "y": 1}"#).as_deref(),
            Some("y")
        );
        assert_eq!(param("{"), None);
        assert_eq!(param("[]"), None);
        assert_eq!(param(r#"{"name": "a", "routes": []} x"#), None);
        assert!(parse_json::<Body>(br#"{"name": "a", "routes": [{"weight": 2}]}"#).is_ok());
    }
}

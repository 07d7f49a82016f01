//! `POST /admin/session`: the web console's login, which answers the admin token as cookies
//! rather than in the body; `DELETE /admin/session`: the console's logout, which clears them.
//!
//! The session cookie holds the very JWT `POST /admin/login` answers, so it expires and is
//! revoked by the same rules (`LLMGATE_ADMIN_TOKEN_TTL`, a password change, logout-all). It is
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it) and
//! `Secure` when the request came over HTTPS. State changes made with it also need the CSRF
//! token, derived from the session, in the `x-csrf-token` header: the console reads it from
//! the (script-readable) CSRF cookie, which a page of another origin cannot.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::login::{ClientAddr, login_error, small_body};
use super::parse_json;
use crate::admin::IssuedToken;
use crate::error::ApiError;
use crate::secret::Secret;
use crate::state::AppState;

/// The cookie holding the admin JWT; `HttpOnly`.
pub const SESSION_COOKIE: &str = "llmgate_session";
/// The cookie holding the CSRF token the console echoes in [`CSRF_HEADER`]; readable by scripts.
pub const CSRF_COOKIE: &str = "llmgate_csrf";
/// The header a state change made with the session cookie carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    password: Secret,
}

/// The CSRF token of a session: a hash of its JWT, so it is bound to the session (a cookie
/// planted by a sibling host cannot pair with a victim's session) and needs no storage.
pub fn csrf_token(session: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"llmgate csrf token\0")
        .chain_update(session.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// Whether `sent` is the CSRF token of `session`, compared in constant time.
pub fn csrf_matches(session: &str, sent: &str) -> bool {
    let expected = csrf_token(session);
    expected.len() == sent.len()
        && expected
            .bytes()
            .zip(sent.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The value of the cookie `name` among the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Logs in like `POST /admin/login` and answers `{"expires_at", "csrf_token"}` with the
/// session and CSRF cookies. The body must be declared JSON: a form another site posts cannot
/// declare it without a CORS preflight, which llmgate never allows.
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let declared_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"));
    if !declared_json {
        return Err(ApiError::invalid_request(
            "Send the password as JSON with Content-Type: application/json.",
        ));
    }
    let secure = came_over_https(request.headers(), request.uri());
    let auth = state.admin.auth();
    auth.check_throttle(client.0).await.map_err(login_error)?;
    let body = small_body(request).await?;
    let Login { password } = parse_json(&body)?;
    let issued = auth.login(password, client.0).await.map_err(login_error)?;
    Ok(session_response(&issued, secure))
}

/// Clears both cookies. It changes nothing on the server, so it needs no session: the JWT
/// stays valid until it expires or `POST /admin/logout-all` ends every token.
pub async fn logout(request: Request) -> Response {
    let secure = came_over_https(request.headers(), request.uri());
    let mut response = Json(serde_json::json!({"logged_out": true})).into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        let http_only = name == SESSION_COOKIE;
        append_cookie(&mut response, name, "", 0, http_only, secure);
    }
    response
}

fn session_response(issued: &IssuedToken, secure: bool) -> Response {
    let token = issued.token.expose();
    let csrf = csrf_token(token);
    let max_age = (issued.expires_at - chrono::Utc::now())
        .num_seconds()
        .max(0);
    let mut response = Json(serde_json::json!({
        "expires_at": issued.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "csrf_token": csrf,
    }))
    .into_response();
    append_cookie(&mut response, SESSION_COOKIE, token, max_age, true, secure);
    append_cookie(&mut response, CSRF_COOKIE, &csrf, max_age, false, secure);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn append_cookie(
    response: &mut Response,
    name: &str,
    value: &str,
    max_age: i64,
    http_only: bool,
    secure: bool,
) {
    let mut text = format!("{name}={value}; Path=/; Max-Age={max_age}; SameSite=Strict");
    if http_only {
        text.push_str("; HttpOnly");
    }
    if secure {
        text.push_str("; Secure");
    }
    // A JWT and a hex digest are cookie-safe, so the value is always a valid header.
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Whether the browser reached llmgate over HTTPS: directly (an `https` request URI), or
/// through a proxy that says so in `X-Forwarded-Proto`. A wrongly claimed `https` only makes
/// the browser keep the cookie off plain HTTP, which is the safe side.
fn came_over_https(headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    uri.scheme_str() == Some("https")
        || headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let token = csrf_token("a.b.c");
        assert_eq!(token.len(), 32);
        assert!(csrf_matches("a.b.c", &token));
        assert!(!csrf_matches("a.b.d", &token));
        assert!(!csrf_matches("a.b.c", ""));
        assert!(!csrf_matches("a.b.c", &token[..31]));
    }

    #[test]
    fn cookies_are_found_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; llmgate_csrf=x"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("llmgate_session=t.o.k"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("t.o.k"));
        assert_eq!(cookie(&headers, CSRF_COOKIE), Some("x"));
        assert_eq!(cookie(&headers, "b"), None);
    }
}

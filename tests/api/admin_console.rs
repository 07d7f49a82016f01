//! The web console: `/ui/` served with its security headers, and the cookie session it logs in
//! with — the same token rules as the API, a CSRF token on every change made with the cookie,
//! Bearer tokens unchanged, logout.

use reqwest::Method;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// A console login: the `Set-Cookie` values and the body.
async fn console_login(app: &TestApp, extra: &[(&str, &str)]) -> (Vec<String>, Value) {
    let mut request = app
        .client
        .post(app.url("/admin/session"))
        .json(&json!({"password": app.admin_password}));
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "console login");
    let cookies = set_cookies(response.headers());
    (cookies, response.json().await.unwrap())
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_named<'a>(cookies: &'a [String], name: &str) -> &'a str {
    cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
}

/// The `name=value` part of a `Set-Cookie`, as a browser sends it back.
fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

/// A logged-in browser: the `Cookie` header it sends and its CSRF token.
async fn browser(app: &TestApp) -> (String, String) {
    let (cookies, body) = console_login(app, &[]).await;
    let cookie = format!(
        "{}; {}",
        pair(cookie_named(&cookies, "llmgate_session")),
        pair(cookie_named(&cookies, "llmgate_csrf"))
    );
    (cookie, body["csrf_token"].as_str().unwrap().to_owned())
}

async fn with_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .header(header::COOKIE, cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn console_login_sets_a_strict_http_only_session_cookie_and_a_readable_csrf_cookie() {
    let app = spawn_app().await;
    let (cookies, body) = console_login(&app, &[]).await;
    let session = cookie_named(&cookies, "llmgate_session");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(part), "{session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    let max_age: i64 = session
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 3600, "{session}");
    let csrf = cookie_named(&cookies, "llmgate_csrf");
    assert!(!csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"));
    assert_eq!(
        pair(csrf).trim_start_matches("llmgate_csrf="),
        body["csrf_token"]
    );
    assert!(body["expires_at"].is_string());
    // The cookie carries the very JWT the API issues: it works as a Bearer token too.
    let token = pair(session).trim_start_matches("llmgate_session=");
    let response = app
        .admin(Method::GET, "/admin/keys", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Behind a proxy that says HTTPS, both cookies are Secure.
    let (cookies, _) = console_login(&app, &[("x-forwarded-proto", "https")]).await;
    assert!(cookie_named(&cookies, "llmgate_session").contains("; Secure"));
    assert!(cookie_named(&cookies, "llmgate_csrf").contains("; Secure"));

    // A login must be declared JSON (a cross-site form cannot), and a wrong password is refused.
    let response = app
        .client
        .post(app.url("/admin/session"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("{{\"password\": \"{}\"}}", app.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(set_cookies(response.headers()).is_empty());
    let response = app
        .client
        .post(app.url("/admin/session"))
        .json(&json!({"password": "not-the-admin-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(set_cookies(response.headers()).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn admin_changes_with_the_session_cookie_need_the_csrf_token_and_bearer_needs_none() {
    let app = spawn_app().await;
    let (cookie, csrf) = browser(&app).await;

    // Reads need no CSRF token.
    let (status, body) = with_cookie(&app, Method::GET, "/admin/keys", &cookie, None, None).await;
    assert_eq!(status, 200, "{body}");

    // A change without the token, or with a wrong one, is refused and changes nothing.
    let new_key = json!({"name": "from-the-console"});
    let (status, body) = with_cookie(
        &app,
        Method::POST,
        "/admin/keys",
        &cookie,
        None,
        Some(new_key.clone()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "invalid_csrf_token");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-csrf-token")
    );
    // A token of the right shape that is not this session's (two logins in one second get
    // the same JWT, so another login's token would be this one's).
    let other_csrf = "0".repeat(csrf.len());
    let (status, _) = with_cookie(
        &app,
        Method::POST,
        "/admin/keys",
        &cookie,
        Some(&other_csrf),
        Some(new_key.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (_, keys) = with_cookie(&app, Method::GET, "/admin/keys", &cookie, None, None).await;
    assert!(
        !keys.to_string().contains("from-the-console"),
        "a refused change was made: {keys}"
    );

    // With the token it is made.
    let (status, body) = with_cookie(
        &app,
        Method::POST,
        "/admin/keys",
        &cookie,
        Some(&csrf),
        Some(new_key),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let (status, _) = with_cookie(
        &app,
        Method::PATCH,
        &format!("/admin/keys/{id}"),
        &cookie,
        None,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 403, "PATCH needs the token too");

    // A Bearer token needs none, even beside a cookie-less request.
    let token = app.admin_token().await;
    let response = app
        .admin(Method::POST, "/admin/keys", &token)
        .json(&json!({"name": "from-the-api"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // A forged or missing session is a 401, before any CSRF check.
    let (status, body) = with_cookie(
        &app,
        Method::POST,
        "/admin/keys",
        "llmgate_session=not.a.jwt",
        Some(&csrf),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_admin_token");
    app.stop().await;
}

#[tokio::test]
async fn admin_console_logout_clears_the_cookies_and_logout_all_ends_the_session() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(app.url("/admin/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookies = set_cookies(response.headers());
    for name in ["llmgate_session", "llmgate_csrf"] {
        let cleared = cookie_named(&cookies, name);
        assert!(
            cleared.starts_with(&format!("{name}=;")) && cleared.contains("Max-Age=0"),
            "{cleared}"
        );
    }

    // Logging out everywhere (with the cookie and its token) ends the cookie's session too.
    let (cookie, csrf) = browser(&app).await;
    let (status, _) = with_cookie(
        &app,
        Method::POST,
        "/admin/logout-all",
        &cookie,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = with_cookie(&app, Method::GET, "/admin/keys", &cookie, None, None).await;
    assert_eq!(status, 401, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn admin_console_is_served_at_ui_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()[header::LOCATION], "/ui/");
    let response = client.get(app.url("/ui")).send().await.unwrap();
    assert_eq!(response.headers()[header::LOCATION], "/ui/");

    let response = client.get(app.url("/ui/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="app.js">"#));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no outside request"
    );

    // Every asset has its type; an unchanged one revalidates as 304.
    for (path, kind) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/pages.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], kind, "{path}");
        assert!(
            response
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY)
        );
        let etag = response.headers()[header::ETAG].clone();
        let again = client
            .get(app.url(path))
            .header(header::IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let response = client.get(app.url("/ui/missing.js")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    app.stop().await;
}

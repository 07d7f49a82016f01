//! The admin API: login and its throttle, the token check on every route, CRUD over each
//! resource with its error paths, live changes in this and another process, secrets at rest,
//! and secrets kept out of logs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use llmgate::secret::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Serve, TestApp, TestOptions, UPSTREAM_KEY, assert_error, bind, chat_body, config_text,
    eventually, spawn_app, spawn_with,
};

/// Sends an admin request and returns its status and JSON body (`Null` when there is none).
async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.admin(method, path, token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let (status, body) = call(app, token, Method::POST, path, Some(body)).await;
    assert_eq!(status, 201, "POST {path}: {body}");
    body
}

/// A chat request to `model` with `key`; returns the status.
async fn chat_status(app: &TestApp, key: &str, model: &str) -> u16 {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model, "hi"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Asserts a 400 naming `param`, and returns the message.
fn assert_invalid(status: u16, body: &Value, param: &str) -> String {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["param"], param, "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(param),
        "the message names the field: {message}"
    );
    message
}

#[tokio::test]
async fn login_issues_an_expiring_token_and_throttles_repeated_failures() {
    let app = spawn_app().await;
    let login = |password: Value| {
        app.client
            .post(app.url("/admin/login"))
            .json(&json!({"password": password}))
            .send()
    };

    let response = login(json!(app.admin_password)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["token"].as_str().unwrap().split('.').count() == 3,
        "{body}"
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    let ttl = expires.timestamp() - chrono::Utc::now().timestamp();
    assert!(
        (12 * 3600 - 60..=12 * 3600).contains(&ttl),
        "default lifetime 12h, got {ttl}s"
    );

    let response = app
        .client
        .post(app.url("/admin/login"))
        .json(&json!({"pasword": "x"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 400, "invalid_request").await;
    assert_eq!(body["error"]["param"], "pasword");

    for _ in 0..5 {
        let response = login(json!("not-the-password")).await.unwrap();
        assert_error(response, 401, "invalid_password").await;
    }
    // The sixth try within the window is refused, right password included.
    for password in ["not-the-password", app.admin_password.as_str()] {
        let response = login(json!(password)).await.unwrap();
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=300).contains(&retry_after), "{retry_after}");
        let body = assert_error(response, 429, "too_many_login_attempts").await;
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }
    app.stop().await;
}

const JWT_SECRET: &str = "a-test-jwt-secret-of-at-least-32-bytes!";

fn token(secret: &str, exp: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "llmgate", "sub": "admin", "iat": now - 20, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Every admin route but login, with an id that does not exist.
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/providers"),
    ("POST", "/admin/providers"),
    ("GET", "/admin/providers/999999"),
    ("PATCH", "/admin/providers/999999"),
    ("DELETE", "/admin/providers/999999"),
    ("GET", "/admin/accounts"),
    ("POST", "/admin/accounts"),
    ("GET", "/admin/accounts/999999"),
    ("PATCH", "/admin/accounts/999999"),
    ("DELETE", "/admin/accounts/999999"),
    ("GET", "/admin/models"),
    ("POST", "/admin/models"),
    ("GET", "/admin/models/999999"),
    ("PATCH", "/admin/models/999999"),
    ("DELETE", "/admin/models/999999"),
    ("GET", "/admin/routes/999999"),
    ("PATCH", "/admin/routes/999999"),
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys"),
    ("GET", "/admin/keys/999999"),
    ("PATCH", "/admin/keys/999999"),
    ("DELETE", "/admin/keys/999999"),
    ("POST", "/admin/keys/999999/rotate"),
    ("POST", "/admin/keys/999999/revoke"),
    ("GET", "/admin/upstreams"),
    ("GET", "/admin/usage"),
    ("GET", "/admin/logs"),
    ("POST", "/admin/password"),
];

#[tokio::test]
async fn every_admin_route_refuses_missing_malformed_expired_and_foreign_tokens() {
    let mut options = TestOptions::default();
    options.settings.jwt_secret = Some(Secret::new(JWT_SECRET));
    let app = spawn_with(options).await;
    let now = chrono::Utc::now().timestamp();
    let valid = token(JWT_SECRET, now + 600);
    assert_eq!(
        app.client
            .get(app.url("/admin/providers"))
            .bearer_auth(&valid)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let mut tampered = valid.clone();
    tampered.pop();
    tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });
    let bad: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty bearer", Some("Bearer ".into())),
        ("not a JWT", Some("Bearer not-a-token".into())),
        ("wrong scheme", Some(format!("Basic {valid}"))),
        ("no scheme", Some(valid.clone())),
        ("tampered", Some(format!("Bearer {tampered}"))),
        (
            "expired",
            Some(format!("Bearer {}", token(JWT_SECRET, now - 5))),
        ),
        (
            "wrongly signed",
            Some(format!(
                "Bearer {}",
                token("another-secret-of-at-least-32-bytes!!", now + 600)
            )),
        ),
        ("a client key", Some(format!("Bearer {}", app.key))),
    ];
    for (method, path) in ADMIN_ROUTES {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for (case, header) in &bad {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .json(&json!({}));
            if let Some(header) = header {
                request = request.header("authorization", header);
            }
            let response = request.send().await.unwrap();
            let body = assert_error(response, 401, "invalid_admin_token").await;
            let message = body["error"]["message"].as_str().unwrap();
            let expected = match *case {
                "missing" => "Missing admin token",
                "expired" => "expired",
                _ => "Invalid admin token",
            };
            assert!(
                message.contains(expected),
                "{method} {path} ({case}): {message}"
            );
        }
        // With a valid token the route exists and answers something other than 401.
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&valid)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_ne!(status, 401, "{method} {path}: {body}");
        assert!(
            !body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Unknown endpoint")),
            "{method} {path} is not routed: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn providers_page_update_conflict_and_refuse_deletion_while_routes_use_them() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let created = post(
        &app,
        &token,
        "/admin/providers",
        json!({"name": "p1", "kind": "openai", "base_url": "http://127.0.0.1:9/v1/"}),
    )
    .await;
    assert_eq!(created["name"], "p1");
    assert_eq!(created["base_url"], "http://127.0.0.1:9/v1");
    assert_eq!(created["source"], "api");
    let id = created["id"].as_i64().unwrap();

    let (status, body) = call(
        &app,
        &token,
        Method::POST,
        "/admin/providers",
        Some(json!({"name": "p1", "kind": "openai", "base_url": "http://x/v1"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert!(body["error"]["message"].as_str().unwrap().contains("p1"));

    let (status, body) = call(
        &app,
        &token,
        Method::POST,
        "/admin/providers",
        Some(json!({"name": "p2", "kind": "grpc", "base_url": "http://x/v1"})),
    )
    .await;
    assert!(assert_invalid(status, &body, "kind").contains("openai"));
    for url in ["not a url", "ftp://x/v1", "http://x/v1?q=1"] {
        let (status, body) = call(
            &app,
            &token,
            Method::POST,
            "/admin/providers",
            Some(json!({"name": "p2", "kind": "openai", "base_url": url})),
        )
        .await;
        assert_invalid(status, &body, "base_url");
    }

    // Pages of two, following next_cursor, give every provider once.
    for name in ["p2", "p3", "p4"] {
        post(
            &app,
            &token,
            "/admin/providers",
            json!({"name": name, "kind": "openai", "base_url": "http://127.0.0.1:9/v1"}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!("/admin/providers?limit=2&cursor={c}"),
            None => "/admin/providers?limit=2".to_owned(),
        };
        let (status, page) = call(&app, &token, Method::GET, &path, None).await;
        assert_eq!(status, 200);
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|p| p["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["mock", "p1", "p2", "p3", "p4"]);
    let (_, all) = call(&app, &token, Method::GET, "/admin/providers", None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
    assert_eq!(all["next_cursor"], Value::Null);
    for query in ["limit=0", "limit=1001", "limit=ten", "cursor=x", "page=2"] {
        let (status, body) = call(
            &app,
            &token,
            Method::GET,
            &format!("/admin/providers?{query}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
    }

    let (status, body) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/providers/{id}"),
        Some(json!({"base_url": "http://127.0.0.1:10/v1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["base_url"], "http://127.0.0.1:10/v1");
    assert_eq!(body["name"], "p1");
    let (status, _) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/providers/{id}"),
        Some(json!({"name": "p2"})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, body) = call(
        &app,
        &token,
        Method::GET,
        &format!("/admin/providers/{id}"),
        None,
    )
    .await;
    assert_eq!((status, body["name"].as_str()), (200, Some("p1")));
    for missing in ["/admin/providers/424242", "/admin/providers/abc"] {
        let (status, body) = call(&app, &token, Method::GET, missing, None).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }

    // A provider used by a route is kept, with a message naming the model and route...
    let model = post(
        &app,
        &token,
        "/admin/models",
        json!({"name": "uses-p1", "routes": [{"provider": "p1", "model": "up-x"}]}),
    )
    .await;
    let route_id = model["routes"][0]["id"].as_i64().unwrap();
    let (status, body) = call(
        &app,
        &token,
        Method::DELETE,
        &format!("/admin/providers/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("uses-p1")
            && message.contains(&format!("route {route_id}"))
            && message.contains("cascade"),
        "{message}"
    );
    let (status, _) = call(
        &app,
        &token,
        Method::DELETE,
        &format!("/admin/providers/{id}?cascade=maybe"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    // ...unless the deletion cascades to those routes.
    let (status, body) = call(
        &app,
        &token,
        Method::DELETE,
        &format!("/admin/providers/{id}?cascade=true"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted_routes"], json!([route_id]));
    let (_, model) = call(
        &app,
        &token,
        Method::GET,
        &format!("/admin/models/{}", model["id"]),
        None,
    )
    .await;
    assert_eq!(model["routes"], json!([]));
    let (status, _) = call(
        &app,
        &token,
        Method::GET,
        &format!("/admin/providers/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// Every listing, to check that refused requests change nothing.
async fn snapshot(app: &TestApp, token: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for path in [
        "/admin/providers",
        "/admin/accounts",
        "/admin/models",
        "/admin/keys",
    ] {
        let (status, body) = call(app, token, Method::GET, path, None).await;
        assert_eq!(status, 200);
        all.push(body);
    }
    all
}

#[tokio::test]
async fn malformed_payloads_get_a_clear_400_and_change_nothing() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let long = "x".repeat(129);
    let huge_url = format!("http://x/{}", "a".repeat(2048));
    let huge_key = "k".repeat(4097);
    let provider = r#"{"name": "p", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"}"#;
    // (method, path, body, the param the error names or "" when the body is not JSON at all)
    let cases: Vec<(Method, &str, Vec<u8>, &str)> = vec![
        (Method::POST, "/admin/providers", br#"{"name": 5, "kind": "openai", "base_url": "http://x/v1"}"#.to_vec(), "name"),
        (Method::POST, "/admin/providers", br#"{"kind": "openai", "base_url": "http://x/v1"}"#.to_vec(), "name"),
        (Method::POST, "/admin/providers", br#"{"name": "p", "kind": "openai", "base_url": "http://x/v1", "extra": 1}"#.to_vec(), "extra"),
        (Method::POST, "/admin/providers", format!(r#"{{"name": "{long}", "kind": "openai", "base_url": "http://x/v1"}}"#).into_bytes(), "name"),
        (Method::POST, "/admin/providers", format!(r#"{{"name": "p", "kind": "openai", "base_url": "{huge_url}"}}"#).into_bytes(), "base_url"),
        (Method::POST, "/admin/providers", b"{\"name\": \"p\xff\xfe\", \"kind\": \"openai\", \"base_url\": \"http://x/v1\"}".to_vec(), ""),
        (Method::POST, "/admin/providers", provider.as_bytes()[..20].to_vec(), ""),
        (Method::POST, "/admin/providers", b"[]".to_vec(), ""),
        (Method::POST, "/admin/providers", Vec::new(), ""),
        (Method::POST, "/admin/providers", format!("{provider} {provider}").into_bytes(), ""),
        (Method::PATCH, "/admin/providers/1", br#"{"nmae": "p"}"#.to_vec(), "nmae"),
        (Method::PATCH, "/admin/providers/1", br#"{"kind": ["openai"]}"#.to_vec(), "kind"),
        (Method::POST, "/admin/accounts", br#"{"provider": "mock", "name": "a9"}"#.to_vec(), "api_key"),
        (Method::POST, "/admin/accounts", br#"{"provider": "mock", "name": "a9", "api_key": "sk-abcdefghijklmnop", "weight": -1}"#.to_vec(), "weight"),
        (Method::POST, "/admin/accounts", br#"{"provider": "mock", "name": "a9", "api_key": "sk-abcdefghijklmnop", "weight": 0}"#.to_vec(), "weight"),
        (Method::POST, "/admin/accounts", br#"{"provider": "mock", "name": "a9", "api_key": "sk-abcdefghijklmnop", "rpm": "fast"}"#.to_vec(), "rpm"),
        (Method::POST, "/admin/accounts", format!(r#"{{"provider": "mock", "name": "a9", "api_key": "{huge_key}"}}"#).into_bytes(), "api_key"),
        (Method::POST, "/admin/accounts", br#"{"provider": "nope", "name": "a9", "api_key": "sk-abcdefghijklmnop"}"#.to_vec(), "provider"),
        (Method::PATCH, "/admin/accounts/1", br#"{"enabled": "no"}"#.to_vec(), "enabled"),
        (Method::PATCH, "/admin/accounts/1", br#"{"api_key": ""}"#.to_vec(), "api_key"),
        (Method::POST, "/admin/models", br#"{"name": "m9"}"#.to_vec(), "routes"),
        (Method::POST, "/admin/models", br#"{"name": "m9", "routes": []}"#.to_vec(), "routes"),
        (Method::POST, "/admin/models", br#"{"name": "m9", "routes": [{"provider": "mock"}]}"#.to_vec(), "routes[0].model"),
        (Method::POST, "/admin/models", br#"{"name": "m9", "routes": [{"provider": "mock", "model": "a", "wieght": 2}]}"#.to_vec(), "routes[0].wieght"),
        (Method::POST, "/admin/models", br#"{"name": "m9", "routes": [{"provider": "mock", "model": "a"}, {"provider": "ghost", "model": "b"}]}"#.to_vec(), "routes[1].provider"),
        (Method::POST, "/admin/models", br#"{"name": "m9", "routes": [{"provider": "mock", "model": "a"}, {"provider": "mock", "model": "a"}]}"#.to_vec(), "routes[1]"),
        (Method::POST, "/admin/models", br#"{"name": "m9", "strategy": "random", "routes": [{"provider": "mock", "model": "a"}]}"#.to_vec(), "strategy"),
        (Method::POST, "/admin/models", br#"{"name": "m9", "max_attempts": 11, "routes": [{"provider": "mock", "model": "a"}]}"#.to_vec(), "max_attempts"),
        (Method::POST, "/admin/models", br#"{"name": "m9", "timeout": "soon", "routes": [{"provider": "mock", "model": "a"}]}"#.to_vec(), "timeout"),
        (Method::PATCH, "/admin/models/1", br#"{"routes": [{"provider": "mock", "model": "a", "priority": -1}]}"#.to_vec(), "routes[0].priority"),
        (Method::PATCH, "/admin/routes/1", br#"{"model": "b"}"#.to_vec(), "model"),
        (Method::PATCH, "/admin/routes/1", br#"{"weight": 0}"#.to_vec(), "weight"),
        (Method::POST, "/admin/keys", br#"{"models": ["gpt-test"]}"#.to_vec(), "name"),
        (Method::POST, "/admin/keys", br#"{"name": "k9", "rpm": 0}"#.to_vec(), "rpm"),
        (Method::POST, "/admin/keys", br#"{"name": "k9", "budget_window": "daily"}"#.to_vec(), "budget_window"),
        (Method::POST, "/admin/keys", br#"{"name": "k9", "budget_tokens": 5, "budget_window": "hourly"}"#.to_vec(), "budget_window"),
        (Method::POST, "/admin/keys", br#"{"name": "k9", "expires_at": "tomorrow"}"#.to_vec(), "expires_at"),
        (Method::POST, "/admin/keys", br#"{"name": "k9", "expires_at": "2001-01-01T00:00:00Z"}"#.to_vec(), "expires_at"),
        (Method::POST, "/admin/keys", br#"{"name": "k9", "key": "sk-chosen-by-client-123"}"#.to_vec(), "key"),
        (Method::POST, "/admin/keys", format!(r#"{{"name": "{long}"}}"#).into_bytes(), "name"),
        (Method::PATCH, "/admin/keys/1", br#"{"models": "gpt-test"}"#.to_vec(), "models"),
    ];
    let before = snapshot(&app, &token).await;
    for (method, path, body, param) in cases {
        let response = app
            .admin(method.clone(), path, &token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let json: Value = response.json().await.unwrap();
        let shown = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{method} {path} {shown}: {json}");
        assert_eq!(json["error"]["type"], "invalid_request_error", "{json}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        if param.is_empty() {
            assert_eq!(json["error"]["param"], Value::Null, "{shown}: {json}");
        } else {
            assert_eq!(
                json["error"]["param"], param,
                "{method} {path} {shown}: {json}"
            );
            assert!(message.contains(param), "{message}");
        }
    }
    assert_eq!(
        snapshot(&app, &token).await,
        before,
        "a refused request changed something"
    );
    app.stop().await;
}

fn bearer_of(request: &llmgate::mock::RecordedRequest) -> String {
    request.headers["authorization"]
        .to_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned()
}

/// The operator's tour: a provider with two accounts, a model with two routes and a key, the
/// key used at once, an account disabled, the key rotated; no stored secret ever shown.
#[tokio::test]
async fn an_operator_sets_up_a_provider_model_and_key_and_changes_them_live() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (key_one, key_two) = ("sk-admin-account-one-0001", "sk-admin-account-two-0002");

    post(
        &app,
        &token,
        "/admin/providers",
        json!({"name": "live", "kind": "openai", "base_url": app.mock.base_url()}),
    )
    .await;
    let one = post(
        &app,
        &token,
        "/admin/accounts",
        json!({"provider": "live", "name": "one", "api_key": key_one}),
    )
    .await;
    let two = post(
        &app,
        &token,
        "/admin/accounts",
        json!({"provider": "live", "name": "two", "api_key": key_two, "weight": 1, "rpm": 1000}),
    )
    .await;
    assert_eq!(one["api_key_hint"], "sk-…0001");
    assert!(one.get("api_key").is_none(), "{one}");
    let (status, body) = call(
        &app,
        &token,
        Method::POST,
        "/admin/accounts",
        Some(json!({"provider": "live", "name": "one", "api_key": "sk-other-key-000000"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    let model = post(
        &app,
        &token,
        "/admin/models",
        json!({
            "name": "live-model", "strategy": "weighted", "max_attempts": 2, "timeout": "30s",
            "routes": [
                {"provider": "live", "model": "up-a", "weight": 1},
                {"provider": "live", "model": "up-b", "weight": 1, "priority": 0}
            ]
        }),
    )
    .await;
    assert_eq!(model["routes"].as_array().unwrap().len(), 2);
    assert_eq!(model["timeout"], "30s");
    assert_eq!(model["source"], "api");
    let created = post(
        &app,
        &token,
        "/admin/keys",
        json!({"name": "live-key", "models": ["live-model"], "rpm": 1000}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-lg-"));
    assert_eq!(created["status"], "active");

    // Usable within a second (the catalog is rebuilt as soon as the write lands), then
    // spread over both accounts.
    let ready = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &key, "live-model").await == 200
    })
    .await;
    assert!(ready.is_some(), "the new model was not served within 1 s");
    for _ in 0..30 {
        assert_eq!(chat_status(&app, &key, "live-model").await, 200);
    }
    let used = |from: usize| -> Vec<String> {
        app.mock.requests()[from..].iter().map(bearer_of).collect()
    };
    let seen = used(0);
    assert!(
        seen.iter().any(|k| k == key_one) && seen.iter().any(|k| k == key_two),
        "{seen:?}"
    );

    // Disabling one account moves all traffic to the other within a second.
    let (status, body) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/accounts/{}", one["id"]),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, &body["enabled"]), (200, &json!(false)), "{body}");
    let took = eventually(Duration::from_secs(1), || async {
        let from = app.mock.requests().len();
        for _ in 0..10 {
            chat_status(&app, &key, "live-model").await;
        }
        used(from).iter().all(|k| k == key_two)
    })
    .await;
    assert!(
        took.is_some(),
        "the disabled account still got traffic after 1 s"
    );

    // A new credential shows a new hint and is used at once; the old one never again.
    let (status, body) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/accounts/{}", two["id"]),
        Some(json!({"api_key": "sk-admin-account-two-rotated-9999", "rpm": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["api_key_hint"], "sk-…9999");
    assert_eq!(body["rpm"], Value::Null);
    let took = eventually(Duration::from_secs(1), || async {
        let from = app.mock.requests().len();
        chat_status(&app, &key, "live-model").await;
        used(from)
            .iter()
            .all(|k| k == "sk-admin-account-two-rotated-9999")
    })
    .await;
    assert!(took.is_some());

    // The key is not allowed other models; rotating it retires the old plaintext.
    assert_eq!(chat_status(&app, &key, "gpt-test").await, 403);
    let rotated = post_ok(
        &app,
        &token,
        &format!("/admin/keys/{}/rotate", created["id"]),
    )
    .await;
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    let refused = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &key, "live-model").await == 401
    })
    .await;
    assert!(
        refused.is_some(),
        "the rotated-out key still worked after 1 s"
    );
    assert_eq!(chat_status(&app, &new_key, "live-model").await, 200);

    // No read ever shows a stored secret.
    let everything = snapshot(&app, &token).await;
    let (_, upstreams) = call(&app, &token, Method::GET, "/admin/upstreams", None).await;
    let text = format!("{everything:?}{upstreams}");
    for secret in [
        key_one,
        key_two,
        "sk-admin-account-two-rotated-9999",
        UPSTREAM_KEY,
        &key,
        &new_key,
    ] {
        assert!(!text.contains(secret), "a read showed {secret}");
    }
    assert!(!text.contains("key_hash"));
    app.stop().await;
}

async fn post_ok(app: &TestApp, token: &str, path: &str) -> Value {
    let (status, body) = call(app, token, Method::POST, path, None).await;
    assert_eq!(status, 200, "POST {path}: {body}");
    body
}

#[tokio::test]
async fn models_and_routes_can_be_replaced_switched_and_deleted_live() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let model = post(
        &app,
        &token,
        "/admin/models",
        json!({"name": "m", "routes": [{"provider": "mock", "model": "up-1"}]}),
    )
    .await;
    let id = model["id"].as_i64().unwrap();
    let first_route = model["routes"][0]["id"].as_i64().unwrap();
    assert_eq!(model["strategy"], "weighted");
    assert_eq!(model["max_attempts"], 3);
    let ready = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &app.key, "m").await == 200
    })
    .await;
    assert!(ready.is_some(), "the new model was not served within 1 s");
    let (status, body) = call(
        &app,
        &token,
        Method::POST,
        "/admin/models",
        Some(json!({"name": "m", "routes": [{"provider": "mock", "model": "x"}]})),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Replacing the route list keeps routes that stay (same id) and drops the others.
    let (status, body) = call(&app, &token, Method::PATCH, &format!("/admin/models/{id}"), Some(json!({
        "max_attempts": 1, "timeout": null,
        "routes": [{"provider": "mock", "model": "up-1", "weight": 3}, {"provider": "mock", "model": "up-2", "priority": 1}]
    }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_attempts"], 1);
    let routes = body["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0]["id"], first_route);
    assert_eq!(routes[0]["weight"], 3);
    let backup = routes[1]["id"].as_i64().unwrap();

    // Switching off the first route sends traffic to the fallback within a second.
    let (status, body) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/routes/{first_route}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, &body["enabled"]), (200, &json!(false)), "{body}");
    let moved = eventually(Duration::from_secs(1), || async {
        let from = app.mock.requests().len();
        chat_status(&app, &app.key, "m").await == 200
            && app.mock.requests()[from..]
                .iter()
                .all(|r| String::from_utf8_lossy(&r.body).contains("up-2"))
    })
    .await;
    assert!(moved.is_some());
    let (status, body) = call(
        &app,
        &token,
        Method::GET,
        &format!("/admin/routes/{backup}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["model"].as_str()),
        (200, Some("up-2")),
        "{body}"
    );
    // With every route off, the model has nowhere to go.
    call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/routes/{backup}"),
        Some(json!({"enabled": false})),
    )
    .await;
    let refused = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &app.key, "m").await == 503
    })
    .await;
    assert!(refused.is_some());

    let (status, body) = call(
        &app,
        &token,
        Method::DELETE,
        &format!("/admin/models/{id}"),
        None,
    )
    .await;
    assert_eq!((status, &body["deleted"]), (200, &json!(true)), "{body}");
    let gone = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &app.key, "m").await == 404
    })
    .await;
    assert!(gone.is_some());
    let (status, _) = call(
        &app,
        &token,
        Method::DELETE,
        &format!("/admin/models/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/routes/{first_route}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

fn llmgate(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(TestApp::bin())
        .args(args)
        .env("LLMGATE_DATABASE_URL", &app.db_url)
        .env("LLMGATE_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn keys_are_managed_like_the_cli_does_and_take_effect_within_a_second() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let created = post(
        &app,
        &token,
        "/admin/keys",
        json!({
            "name": "api-key", "models": ["gpt-test"], "rpm": 100, "tpm": 1000,
            "budget_tokens": 5000, "budget_window": "monthly", "expires_at": "2099-01-01T00:00:00Z"
        }),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["source"], "api");
    assert_eq!(created["expires_at"], "2099-01-01T00:00:00Z");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(chat_status(&app, &key, "gpt-test").await, 200);

    let (_, got) = call(
        &app,
        &token,
        Method::GET,
        &format!("/admin/keys/{id}"),
        None,
    )
    .await;
    assert!(got.get("key").is_none(), "{got}");
    assert_eq!(got["budget_window"], "monthly");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        "/admin/keys",
        Some(json!({"name": "api-key"})),
    )
    .await;
    assert_eq!(status, 409);

    // The API and the CLI refuse the same input with the same words: one implementation.
    let (status, body) = call(
        &app,
        &token,
        Method::POST,
        "/admin/keys",
        Some(json!({"name": "w", "budget_window": "daily"})),
    )
    .await;
    let message = assert_invalid(status, &body, "budget_window");
    let (code, _, stderr) = llmgate(
        &app,
        &["keys", "create", "--name", "w", "--budget-window", "daily"],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&message),
        "CLI said {stderr:?}, API said {message:?}"
    );
    // Keys made by the CLI are the API's to manage, and the other way round.
    let (code, stdout, _) = llmgate(&app, &["keys", "list"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("api-key"));

    let (status, body) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/keys/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("disabled")),
        "{body}"
    );
    let refused = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &key, "gpt-test").await == 401
    })
    .await;
    assert!(refused.is_some(), "a disabled key still worked after 1 s");
    let (status, body) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/keys/{id}"),
        Some(json!({"enabled": true, "models": null, "rpm": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["models"], &body["rpm"]),
        (&Value::Null, &Value::Null)
    );
    let back = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &key, "other-model").await == 200
    })
    .await;
    assert!(back.is_some(), "re-enabled key with every model allowed");

    let revoked = post_ok(&app, &token, &format!("/admin/keys/{id}/revoke")).await;
    assert_eq!(revoked["status"], "revoked");
    let refused = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &key, "gpt-test").await == 401
    })
    .await;
    assert!(refused.is_some());
    let (status, body) = call(
        &app,
        &token,
        Method::POST,
        &format!("/admin/keys/{id}/rotate"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Deleting a working key stops it within a second, and frees its name.
    let other = post(&app, &token, "/admin/keys", json!({"name": "short-lived"})).await;
    let other_key = other["key"].as_str().unwrap().to_owned();
    assert_eq!(chat_status(&app, &other_key, "gpt-test").await, 200);
    let (status, _) = call(
        &app,
        &token,
        Method::DELETE,
        &format!("/admin/keys/{}", other["id"]),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let refused = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &other_key, "gpt-test").await == 401
    })
    .await;
    assert!(refused.is_some(), "a deleted key still worked after 1 s");
    let (status, _) = call(
        &app,
        &token,
        Method::GET,
        &format!("/admin/keys/{}", other["id"]),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let again = post(&app, &token, "/admin/keys", json!({"name": "short-lived"})).await;
    assert_ne!(again["key"], other["key"]);

    let (_, page) = call(&app, &token, Method::GET, "/admin/keys?limit=1", None).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_i64());
    app.stop().await;
}

#[tokio::test]
async fn upstreams_lists_each_route_and_account_with_its_state() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, body) = call(&app, &token, Method::GET, "/admin/upstreams", None).await;
    assert_eq!(status, 200, "{body}");
    let routes = body["routes"].as_array().unwrap();
    let route = routes.iter().find(|r| r["model"] == "gpt-test").unwrap();
    assert_eq!(route["provider"], "mock");
    assert_eq!(route["upstream_model"], "mock-model");
    for field in [
        "weight",
        "priority",
        "enabled",
        "healthy",
        "cooldown_until",
        "recent_errors",
    ] {
        assert!(route.get(field).is_some(), "route lacks {field}: {route}");
    }
    let account = &body["accounts"][0];
    assert_eq!(account["name"], "a1");
    assert_eq!(account["provider"], "mock");
    assert_eq!(account["api_key_hint"], "sk-…et-1");
    for field in [
        "weight",
        "rpm",
        "enabled",
        "healthy",
        "cooldown_until",
        "recent_errors",
    ] {
        assert!(
            account.get(field).is_some(),
            "account lacks {field}: {account}"
        );
    }
    assert!(!body.to_string().contains(UPSTREAM_KEY));
    app.stop().await;
}

/// Runs `llmgate` with `args` and `envs` to completion (at most 30 s); exit code and output.
fn run_to_end(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(TestApp::bin())
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("llmgate {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn a_second_serve_process_sees_admin_changes_within_a_second() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let other = Serve::start(&app.db_url, &[], &[("LLMGATE_LOG", "info")]);
    let client = &app.client;
    let chat_there = |key: String, model: &'static str| {
        let request = client
            .post(other.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body(model, "hi"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(chat_there(app.key.clone(), "gpt-test").await, 200);
    assert_eq!(chat_there(app.key.clone(), "late-model").await, 404);

    // A model added through this process's API serves in the other within a second.
    post(
        &app,
        &token,
        "/admin/models",
        json!({"name": "late-model", "routes": [{"provider": "mock", "model": "late"}]}),
    )
    .await;
    let seen = eventually(Duration::from_secs(1), || {
        chat_there(app.key.clone(), "late-model").then_is(200)
    })
    .await;
    assert!(
        seen.is_some(),
        "the other process did not see the new model within 1 s"
    );

    // A key disabled here is refused there within a second.
    let (_, keys) = call(&app, &token, Method::GET, "/admin/keys", None).await;
    let test_key = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "test")
        .unwrap()["id"]
        .clone();
    call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/keys/{test_key}"),
        Some(json!({"enabled": false})),
    )
    .await;
    let refused = eventually(Duration::from_secs(1), || {
        chat_there(app.key.clone(), "gpt-test").then_is(401)
    })
    .await;
    assert!(
        refused.is_some(),
        "the other process still took a disabled key after 1 s"
    );

    // Tokens are signed with the secret the database keeps, so they work on every process;
    // a key created there works here within a second.
    let response = client
        .post(other.url("/admin/keys"))
        .bearer_auth(&token)
        .json(&json!({"name": "made-elsewhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let made: Value = response.json().await.unwrap();
    let key = made["key"].as_str().unwrap().to_owned();
    let works = eventually(Duration::from_secs(1), || async {
        chat_status(&app, &key, "gpt-test").await == 200
    })
    .await;
    assert!(works.is_some());
    other.stop();
    app.stop().await;
}

/// Small helper so a status future can be compared inside `eventually`.
trait ThenIs {
    fn then_is(self, expected: u16) -> impl std::future::Future<Output = bool>;
}

impl<F: std::future::Future<Output = u16>> ThenIs for F {
    async fn then_is(self, expected: u16) -> bool {
        self.await == expected
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Everything the database holds, as bytes: SQLite's files, or on PostgreSQL the text of
/// every row of every table (BYTEA shown in hex, as a dump would write it).
async fn database_bytes(db_url: &str) -> Vec<u8> {
    if db_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db_url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&pool)
                .await
                .unwrap();
        let mut bytes = Vec::new();
        for table in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT CAST(t AS TEXT) FROM {table} t"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            for row in rows {
                bytes.extend(row.into_bytes());
            }
        }
        pool.close().await;
        return bytes;
    }
    let path = db_url.trim_start_matches("sqlite://");
    let mut bytes = std::fs::read(path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
        bytes.extend(wal);
    }
    bytes
}

#[tokio::test]
async fn no_secret_is_stored_in_plaintext_in_the_database_files() {
    let mut options = TestOptions::default();
    options.settings.admin_password = Some(Secret::new("admin-password-at-rest-0001"));
    let app = spawn_with(options).await;
    let token = app.admin_token().await;
    let api_secret = "sk-api-written-account-secret-4242";
    post(
        &app,
        &token,
        "/admin/accounts",
        json!({"provider": "mock", "name": "from-api", "api_key": api_secret}),
    )
    .await;
    call(
        &app,
        &token,
        Method::PATCH,
        "/admin/accounts/1",
        Some(json!({"api_key": "sk-config-account-replaced-5353"})),
    )
    .await;
    let created = post(&app, &token, "/admin/keys", json!({"name": "at-rest"})).await;
    let client_key = created["key"].as_str().unwrap().to_owned();
    let app_key = app.key.clone();
    let secrets = [
        UPSTREAM_KEY,
        api_secret,
        "sk-config-account-replaced-5353",
        "admin-password-at-rest-0001",
        &app_key,
        &client_key,
        &token,
    ];

    // While it runs (the WAL holds recent writes) and after it stopped (checkpointed).
    let bytes = database_bytes(&app.db_url).await;
    assert!(
        contains(&bytes, "from-api"),
        "the scan reads the right files"
    );
    for secret in secrets {
        assert!(!contains(&bytes, secret), "{secret} is stored in plaintext");
    }
    let db_url = app.db_url.clone();
    let dir = app.stop_keeping_files().await;
    let mut bytes = Vec::new();
    if db_url.starts_with("postgres") {
        bytes = database_bytes(&db_url).await;
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".key") {
            bytes.extend(std::fs::read(path).unwrap_or_default());
        }
    }
    assert!(contains(&bytes, "from-api"));
    for secret in secrets {
        assert!(!contains(&bytes, secret), "{secret} is stored in plaintext");
    }
}

#[tokio::test]
async fn serve_refuses_to_start_with_a_wrong_encryption_key() {
    let app = spawn_app().await;
    let db_url = app.db_url.clone();
    let _dir = app.stop_keeping_files().await;
    let wrong = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let (code, output) = run_to_end(
        &["serve", "--listen", "127.0.0.1:0", "--database", &db_url],
        &[
            ("LLMGATE_ENCRYPTION_KEY", wrong.as_str()),
            ("LLMGATE_LOG", "warn"),
        ],
    );
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("refusing to start") && output.contains("encryption key"),
        "{output}"
    );
    let (code, output) = run_to_end(
        &["serve", "--listen", "127.0.0.1:0", "--database", &db_url],
        &[
            ("LLMGATE_ENCRYPTION_KEY", "not base64!"),
            ("LLMGATE_LOG", "warn"),
        ],
    );
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("LLMGATE_ENCRYPTION_KEY"), "{output}");
}

#[tokio::test]
async fn serve_prints_a_generated_admin_password_once_and_refuses_a_short_one() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("first.db").display());
    let (code, output) = run_to_end(
        &["serve", "--listen", "127.0.0.1:0", "--database", &db_url],
        &[
            ("LLMGATE_ADMIN_PASSWORD", "too-short"),
            ("LLMGATE_LOG", "warn"),
        ],
    );
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("LLMGATE_ADMIN_PASSWORD") && output.contains("12 characters"),
        "{output}"
    );

    // The first start generates a password and prints it on stdout, once.
    let serve = Serve::start(&db_url, &[], &[("LLMGATE_LOG", "info")]);
    let marker = "admin password (generated, shown only this once): ";
    let line = serve.wait_for(marker);
    let all = serve.stop();
    let password = line
        .and_then(|line| line.split(marker).nth(1).map(|p| p.trim().to_owned()))
        .unwrap_or_else(|| panic!("no password printed:\n{all}"));
    assert!(password.len() >= 20, "{password}");
    assert!(
        all.contains("LLMGATE_JWT_SECRET is not set"),
        "a generated token secret is logged as a warning:\n{all}"
    );
    let logs_only: String = all.lines().filter(|l| !l.contains(marker)).collect();
    assert!(
        !logs_only.contains(&password),
        "the password reached the log"
    );

    // A restart prints nothing and the password still works.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let serve = Serve::start(&db_url, &[], &[("LLMGATE_LOG", "info")]);
    let response = client
        .post(serve.url("/admin/login"))
        .json(&json!({"password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let all = serve.stop();
    assert!(!all.contains("admin password (generated"), "{all}");
}

#[tokio::test]
async fn no_secret_appears_in_logs_even_at_trace_level() {
    let mock = llmgate::mock::spawn(bind().await, llmgate::mock::MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_key = "sk-config-client-key-traced-0001";
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[keys]]\nname = \"traced\"\nkey = \"{config_key}\"\n",
            config_text(&mock.base_url(), "")
        ),
    )
    .unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("traced.db").display());
    let password = "admin-password-traced-0001";
    let wrong_password = "wrong-password-traced-0002";
    let jwt_secret = "jwt-secret-traced-at-least-32-bytes-0003";
    let serve = Serve::start(
        &db_url,
        &["--config", &config.display().to_string()],
        &[
            (
                "LLMGATE_LOG",
                "trace,hyper=trace,reqwest=trace,h2=trace,sqlx=trace",
            ),
            ("LLMGATE_ADMIN_PASSWORD", password),
            ("LLMGATE_JWT_SECRET", jwt_secret),
        ],
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let login = |password: &str| {
        client
            .post(serve.url("/admin/login"))
            .json(&json!({"password": password}))
            .send()
    };
    assert_eq!(login(wrong_password).await.unwrap().status(), 401);
    let body: Value = login(password).await.unwrap().json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let admin = |method: Method, path: &str, body: Value| {
        client
            .request(method, serve.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let account_key = "sk-api-account-key-traced-0004";
    for (path, body) in [
        (
            "/admin/providers",
            json!({"name": "traced", "kind": "openai", "base_url": mock.base_url()}),
        ),
        (
            "/admin/accounts",
            json!({"provider": "traced", "name": "t1", "api_key": account_key}),
        ),
        (
            "/admin/models",
            json!({"name": "traced-model", "routes": [{"provider": "traced", "model": "up"}]}),
        ),
    ] {
        let response = admin(Method::POST, path, body).await.unwrap();
        assert_eq!(
            response.status(),
            201,
            "{path}: {}",
            response.text().await.unwrap()
        );
    }
    let response = admin(Method::POST, "/admin/keys", json!({"name": "api-traced"}))
        .await
        .unwrap();
    let api_key = response.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // A refused admin request with a broken token, and one with a body naming a secret field.
    client
        .get(serve.url("/admin/providers"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    admin(
        Method::POST,
        "/admin/accounts",
        json!({"provider": "traced", "name": "t2", "api_key": account_key, "bogus": 1}),
    )
    .await
    .unwrap();

    // Requests through the gateway: the account key goes upstream, client keys come in both
    // ways, and an unknown key is refused.
    let sent = eventually(Duration::from_secs(2), || async {
        client
            .post(serve.url("/v1/chat/completions"))
            .bearer_auth(config_key)
            .json(&chat_body("traced-model", "secret cycle"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    assert!(sent.is_some());
    let response = client
        .post(serve.url("/v1/chat/completions"))
        .header("x-api-key", &api_key)
        .json(&json!({"model": "gpt-test", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    let bad_key = "sk-lg-unknown-client-key-traced-0005";
    let response = client
        .post(serve.url("/v1/chat/completions"))
        .bearer_auth(bad_key)
        .json(&chat_body("gpt-test", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let upstream: Vec<String> = mock.requests().iter().map(bearer_of).collect();
    assert!(
        upstream.iter().any(|k| k == account_key) && upstream.iter().any(|k| k == UPSTREAM_KEY),
        "{upstream:?}"
    );

    let log = serve.stop();
    assert!(log.lines().count() > 50, "trace logging was on:\n{log}");
    assert!(log.contains("\"level\":\"TRACE\""), "trace logging was on");
    for secret in [
        password,
        wrong_password,
        jwt_secret,
        &token,
        config_key,
        &api_key,
        bad_key,
        account_key,
        UPSTREAM_KEY,
    ] {
        assert!(!log.contains(secret), "{secret} appeared in the log");
    }
}

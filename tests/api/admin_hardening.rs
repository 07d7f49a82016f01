//! The admin plane's hardening (issue #14): the login body cap and throttle order, token
//! revocation by a password change or `llmgate admin logout-all`, short key prefixes, strict
//! token budgets, invisible names, and private backups and database files.

use std::process::Command;
use std::time::Duration;

use llmgate::auth::NewKey;
use llmgate::secret::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Serve, TestApp, TestOptions, assert_error, chat_body, eventually, spawn_app, spawn_with,
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

/// Runs `llmgate` with `args` against the app's database; exit code, stdout, stderr.
fn llmgate(db_url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(TestApp::bin())
        .args(args)
        .env("LLMGATE_DATABASE_URL", db_url)
        .env("LLMGATE_LOG", "warn")
        .env_remove("LLMGATE_ADMIN_PASSWORD")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn login_request(app: &TestApp, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/admin/login"))
        .header("content-type", "application/json")
        .body(body)
}

#[tokio::test]
async fn login_reads_a_few_kilobytes_at_most_and_only_from_an_address_not_throttled() {
    let app = spawn_app().await;
    // A password of a megabyte is no password: refused before it is read whole or hashed.
    let huge = format!(r#"{{"password": "{}"}}"#, "x".repeat(1 << 20));
    let response = login_request(&app, huge.clone()).send().await.unwrap();
    let body = assert_error(response, 413, "request_too_large").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("password") && !message.contains("LLMGATE_MAX_BODY_BYTES"),
        "{message}"
    );
    // The same without a length up front (chunked): refused once the cap is crossed.
    let stream = futures_util::stream::iter(
        huge.into_bytes()
            .chunks(8192)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = login_request(&app, reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "request_too_large").await;

    // A real password fits.
    assert_eq!(app.admin_token().await.split('.').count(), 3);

    // Once the address is throttled, its logins are refused before their body is read:
    // malformed and oversized bodies get the same 429 as a right password.
    for _ in 0..5 {
        let response = login_request(&app, r#"{"password": "not-the-password"}"#)
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "invalid_password").await;
    }
    for body in [
        r#"{"pasword": "x"}"#.to_owned(),
        "not json".to_owned(),
        format!(r#"{{"password": "{}"}}"#, "x".repeat(1 << 20)),
        json!({"password": app.admin_password}).to_string(),
    ] {
        let response = login_request(&app, body).send().await.unwrap();
        assert!(response.headers().contains_key("retry-after"));
        assert_error(response, 429, "too_many_login_attempts").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn changing_the_admin_password_refuses_every_earlier_token_and_answers_a_new_one() {
    let app = spawn_app().await;
    let old = app.admin_token().await;
    let other_old = app.admin_token().await;
    assert_eq!(
        call(&app, &old, Method::GET, "/admin/keys", None).await.0,
        200
    );

    // The current password is checked: a stolen token alone cannot lock the owner out.
    let (status, body) = call(
        &app,
        &old,
        Method::POST,
        "/admin/password",
        Some(
            json!({"current_password": "wrong-password-1", "new_password": "a-brand-new-password"}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_password")),
        "{body}"
    );
    let (status, body) = call(
        &app,
        &old,
        Method::POST,
        "/admin/password",
        Some(json!({"current_password": app.admin_password, "new_password": "short"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("new_password")),
        "{body}"
    );

    let (status, body) = call(
        &app,
        &old,
        Method::POST,
        "/admin/password",
        Some(
            json!({"current_password": app.admin_password, "new_password": "a-brand-new-password"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let new = body["token"].as_str().unwrap().to_owned();
    assert!(body["expires_at"].is_string());

    for token in [&old, &other_old] {
        let (status, body) = call(&app, token, Method::GET, "/admin/keys", None).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("log in again"),
            "{body}"
        );
    }
    assert_eq!(
        call(&app, &new, Method::GET, "/admin/keys", None).await.0,
        200
    );
    let login =
        |password: &str| login_request(&app, json!({"password": password}).to_string()).send();
    assert_eq!(login(&app.admin_password).await.unwrap().status(), 401);
    assert_eq!(login("a-brand-new-password").await.unwrap().status(), 200);

    // The API's logout of all sessions ends the caller's token too.
    let (status, body) = call(&app, &new, Method::POST, "/admin/logout-all", None).await;
    assert_eq!((status, &body["logged_out"]), (200, &json!(true)), "{body}");
    assert_eq!(
        call(&app, &new, Method::GET, "/admin/keys", None).await.0,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn logout_all_refuses_earlier_tokens_on_every_process_within_a_second() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let other = Serve::start(&app.db_url, &[], &[("LLMGATE_LOG", "info")]);
    let status_at = |url: String, token: String| {
        let request = app.client.get(url).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status_at(app.url("/admin/keys"), token.clone()).await, 200);
    assert_eq!(
        status_at(other.url("/admin/keys"), token.clone()).await,
        200
    );

    let (code, stdout, stderr) = llmgate(&app.db_url, &["admin", "logout-all"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("log in again"), "{stdout}");

    for url in [app.url("/admin/keys"), other.url("/admin/keys")] {
        let refused = eventually(Duration::from_secs(1), || {
            let status = status_at(url.clone(), token.clone());
            async move { status.await == 401 }
        })
        .await;
        assert!(
            refused.is_some(),
            "{url} still took a token after logout-all"
        );
    }
    // A new login works everywhere at once.
    let fresh = app.admin_token().await;
    assert_eq!(status_at(app.url("/admin/keys"), fresh.clone()).await, 200);
    assert_eq!(status_at(other.url("/admin/keys"), fresh).await, 200);
    other.stop();
    app.stop().await;
}

#[tokio::test]
async fn a_new_admin_password_at_restart_refuses_tokens_issued_before_it() {
    let mut options = TestOptions::default();
    options.settings.admin_password = Some(Secret::new("the-first-password"));
    let app = spawn_with(options).await;
    let token = app.admin_token().await;
    let db_url = app.db_url.clone();
    let dir = app.stop_keeping_files().await;

    // The same password again keeps tokens; another one ends them.
    let same = Serve::start(
        &db_url,
        &[],
        &[("LLMGATE_ADMIN_PASSWORD", "the-first-password")],
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let status = |serve: &Serve| {
        client
            .get(serve.url("/admin/keys"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(status(&same).await.unwrap().status(), 200);
    same.stop();
    let changed = Serve::start(
        &db_url,
        &[],
        &[("LLMGATE_ADMIN_PASSWORD", "the-second-password")],
    );
    assert_eq!(status(&changed).await.unwrap().status(), 401);
    changed.stop();
    drop(dir);
}

#[tokio::test]
async fn key_listings_show_a_short_prefix_and_config_keys_must_be_long() {
    let long_key = "sk-team-0123456789abcdefghijklmnopqrstuv";
    let options = TestOptions {
        extra_config: format!("[[keys]]\nname = \"from-file\"\nkey = \"{long_key}\"\n"),
        ..TestOptions::default()
    };
    let app = spawn_with(options).await;
    let token = app.admin_token().await;
    let (status, created) = call(
        &app,
        &token,
        Method::POST,
        "/admin/keys",
        Some(json!({"name": "made-by-api"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let plaintext = created["key"].as_str().unwrap();
    let (_, keys) = call(&app, &token, Method::GET, "/admin/keys", None).await;
    let prefix_of = |name: &str| {
        keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap()["prefix"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The public `sk-lg-` head and four characters of the secret part.
    let generated = prefix_of("made-by-api");
    assert_eq!(generated.len(), "sk-lg-".len() + 4, "{generated}");
    assert!(plaintext.starts_with(&generated));
    let from_file = prefix_of("from-file");
    assert_eq!(from_file, "sk-team", "{from_file}");
    let (code, stdout, _) = llmgate(&app.db_url, &["keys", "list"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&generated) && !stdout.contains(&plaintext[..12]),
        "{stdout}"
    );
    assert!(!stdout.contains(&long_key[..13]), "{stdout}");
    app.stop().await;

    // A config key shorter than 32 characters is a config error with its location.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("short.toml");
    std::fs::write(
        &file,
        "[[keys]]\nname = \"ci\"\nkey = \"sixteen-chars-ok\"\n",
    )
    .unwrap();
    let output = Command::new(TestApp::bin())
        .args(["config", "check", &file.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("keys[0] \"ci\" .key (line 3)") && stderr.contains("32 characters"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("sixteen-chars-ok"),
        "the key is not echoed: {stderr}"
    );
}

#[tokio::test]
async fn a_budget_admits_only_requests_whose_reservation_fits() {
    let app = spawn_app().await;
    let key = app
        .create_key(NewKey {
            name: "small-budget".into(),
            budget_tokens: Some(300),
            ..NewKey::default()
        })
        .await;
    // No max_tokens: the request reserves its prompt plus 1024 completion tokens.
    let body = chat_body("gpt-test", "hi");
    let reservation = llmgate::limits::estimate_request_tokens(&serde_json::to_vec(&body).unwrap());
    assert!(reservation > 1000, "{reservation}");
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let error = assert_error(response, 429, "insufficient_quota").await;
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("300") && message.contains(&reservation.to_string()),
        "says what is left and what the request may use: {message}"
    );
    assert_eq!(
        app.mock.request_count(),
        0,
        "a refused request never reaches the upstream"
    );

    // A request that caps its output within the budget runs.
    let mut capped = chat_body("gpt-test", "hi");
    capped["max_tokens"] = json!(16);
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&capped)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn names_that_display_as_nothing_or_reorder_text_are_refused_everywhere() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/admin/providers",
            json!({"name": "\u{200B}", "kind": "openai", "base_url": "http://127.0.0.1:1/v1"}),
            "name",
        ),
        (
            "/admin/providers",
            json!({"name": "\u{FEFF}\u{200E}", "kind": "openai", "base_url": "http://127.0.0.1:1/v1"}),
            "name",
        ),
        (
            "/admin/providers",
            json!({"name": "evil\u{202E}txt.exe", "kind": "openai", "base_url": "http://127.0.0.1:1/v1"}),
            "name",
        ),
        (
            "/admin/accounts",
            json!({"provider": "mock", "name": "\u{2066}a\u{2069}", "api_key": "k"}),
            "name",
        ),
        (
            "/admin/models",
            json!({"name": "\u{200B}", "routes": [{"provider": "mock", "model": "m"}]}),
            "name",
        ),
        (
            "/admin/models",
            json!({"name": "fine", "routes": [{"provider": "mock", "model": "m\u{202D}"}]}),
            "routes[0].model",
        ),
        ("/admin/keys", json!({"name": "\u{200D}"}), "name"),
        (
            "/admin/keys",
            json!({"name": "ok", "models": ["gpt\u{202E}"]}),
            "models",
        ),
    ];
    for (path, body, param) in cases {
        let (status, answer) = call(&app, &token, Method::POST, path, Some(body.clone())).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["param"], param, "{path} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(param), "{message}");
    }
    // Renames go through the same check.
    let (_, keys) = call(&app, &token, Method::GET, "/admin/keys", None).await;
    let id = keys["data"][0]["id"].clone();
    let (status, answer) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/admin/keys/{id}"),
        Some(json!({"name": "\u{200B}\u{200B}"})),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["param"].as_str()),
        (400, Some("name")),
        "{answer}"
    );
    // Joiners inside a visible name are fine.
    let (status, answer) = call(
        &app,
        &token,
        Method::POST,
        "/admin/keys",
        Some(json!({"name": "team-\u{1F469}\u{200D}\u{1F4BB}"})),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    app.stop().await;

    // The config file applies the same rule, with the location.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("names.toml");
    std::fs::write(
        &file,
        "[[providers]]\nname = \"\u{200B}\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n\
         [[models]]\nname = \"m\"\n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\\u202Ey\"\n",
    )
    .unwrap();
    let output = Command::new(TestApp::bin())
        .args(["config", "check", &file.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("(line 2)") && stderr.contains("visible"),
        "{stderr}"
    );
    assert!(
        stderr.contains(".model (line 10)") && stderr.contains("U+202E"),
        "{stderr}"
    );
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn backups_refuse_uris_symlinks_and_memory_and_every_file_is_private() {
    let app = crate::helpers::spawn_sqlite_app().await;
    // The database and its WAL files, created by llmgate, are the owner's only.
    let db_path = std::path::PathBuf::from(app.db_url.trim_start_matches("sqlite://"));
    let mut wal = db_path.clone().into_os_string();
    wal.push("-wal");
    let mut shm = db_path.clone().into_os_string();
    shm.push("-shm");
    for file in [db_path.clone(), wal.into(), shm.into()] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }

    let dir = tempfile::tempdir().unwrap();
    let backup = |target: &str| llmgate(&app.db_url, &["backup", target]);

    let copy = dir.path().join("copy.db");
    let (code, stdout, stderr) = backup(&copy.display().to_string());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("wrote"), "{stdout}");
    assert_eq!(mode(&copy), 0o600);
    assert!(std::fs::metadata(&copy).unwrap().len() > 0);

    // A SQLite URI would be opened as one (here: an in-memory database, so nothing written).
    let inside = dir.path().join("uri.db");
    let uri = format!("file:{}?mode=memory", inside.display());
    let (code, _, stderr) = backup(&uri);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("URI"), "{stderr}");
    let (code, _, stderr) = backup("file:relative.db");
    assert_eq!(code, 2, "{stderr}");

    // A symbolic link is refused, dangling or not, and nothing is written where it points.
    let dangling = dir.path().join("dangling.db");
    let target = dir.path().join("elsewhere.db");
    std::os::unix::fs::symlink(&target, &dangling).unwrap();
    let (code, _, stderr) = backup(&dangling.display().to_string());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(!target.exists());
    let pointing = dir.path().join("pointing.db");
    std::fs::write(&target, b"").unwrap();
    std::os::unix::fs::symlink(&target, &pointing).unwrap();
    let (code, _, stderr) = backup(&pointing.display().to_string());
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 0);

    // An in-memory database has nothing to back up.
    let memory_copy = dir.path().join("memory.db");
    for database in ["sqlite::memory:", "sqlite://x.db?mode=memory"] {
        // Run where a stray file would be noticed and cleaned up.
        let output = Command::new(TestApp::bin())
            .args(["backup", &memory_copy.display().to_string()])
            .args(["--database", database])
            .current_dir(dir.path())
            .env("LLMGATE_LOG", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{database}: {stderr}");
        assert!(stderr.contains("in memory"), "{stderr}");
        assert!(!memory_copy.exists());
    }
    app.stop().await;
}

//! PostgreSQL as the store: `llmgate migrate-data` moves a served SQLite database into a
//! PostgreSQL database of the test cluster, `backup` names `pg_dump`, `migrate` and `serve` run
//! on it (serve only with the shared encryption key), and replicas on one PostgreSQL database
//! learn of each other's changes from its notices. (The whole integration suite also runs on
//! PostgreSQL with `LLMGATE_TEST_DATABASE=postgres`, as `make test` does.)

use std::time::Duration;

use llmgate::secret::Secret;

use crate::helpers::{
    TEST_ENCRYPTION_KEY, TestApp, TestOptions, chat_body, eventually, revoke_key_named, spawn_app,
    spawn_sqlite_app, spawn_with,
};

#[tokio::test]
async fn migrate_data_moves_a_served_sqlite_database_into_postgres() {
    let app = spawn_sqlite_app().await;
    for name in ["alpha", "beta"] {
        llmgate::auth::create_key(
            &app.db,
            llmgate::auth::NewKey {
                name: name.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let to = crate::pg_cluster::fresh_database().await;
    let args = ["migrate-data", "--from", &app.db_url, "--to", &to];
    let (code, stdout, stderr) = app.cli(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("copied"), "{stdout}");

    // Every key, with its id, as the served SQLite database holds it.
    let keys = "SELECT id, name, key_hash FROM client_keys ORDER BY id";
    let sqlite = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
    let expected: Vec<(i64, String, String)> =
        sqlx::query_as(keys).fetch_all(&sqlite).await.unwrap();
    sqlite.close().await;
    let pg = sqlx::PgPool::connect(&to).await.unwrap();
    let copied: Vec<(i64, String, String)> = sqlx::query_as(keys).fetch_all(&pg).await.unwrap();
    assert_eq!(copied, expected);
    assert!(copied.iter().any(|(_, name, _)| name == "beta"));
    pg.close().await;

    // The target is no longer empty: a second run refuses and changes nothing.
    let (code, _, stderr) = app.cli(&args);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("empty database only"), "{stderr}");
    app.stop().await;
}

#[tokio::test]
async fn backup_of_a_postgres_database_names_pg_dump_and_hides_the_password() {
    let app = spawn_app().await;
    let url = "postgres://u:hunter2@127.0.0.1:9/db";
    let (code, _, stderr) = app.cli(&["backup", "snapshot.dump", "--database", url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!std::path::Path::new("snapshot.dump").exists());
    app.stop().await;
}

#[tokio::test]
async fn migrate_and_serve_run_on_postgres_and_serve_needs_the_shared_encryption_key() {
    let url = crate::pg_cluster::fresh_database().await;
    let run = |args: &[&str], key: Option<&str>| {
        let mut command = std::process::Command::new(TestApp::bin());
        command
            .args(args)
            .env("LLMGATE_DATABASE_URL", &url)
            .env("LLMGATE_LOG", "warn")
            .env_remove("LLMGATE_ENCRYPTION_KEY")
            .env_remove("LLMGATE_REDIS_URL");
        if let Some(key) = key {
            command.env("LLMGATE_ENCRYPTION_KEY", key);
        }
        let output = command.output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["migrate"], None);
    assert_eq!(code, 0, "{stderr}");
    // Without the key, serve refuses at once: each replica would seal credentials with a key
    // of its own.
    let (code, stderr) = run(&["serve", "--listen", "127.0.0.1:0"], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("LLMGATE_ENCRYPTION_KEY"), "{stderr}");
    // With it, `keys create` stores in PostgreSQL and `keys list` reads it back.
    let (code, stderr) = run(
        &["keys", "create", "--name", "on-postgres"],
        Some(TEST_ENCRYPTION_KEY),
    );
    assert_eq!(code, 0, "{stderr}");
    let pg = sqlx::PgPool::connect(&url).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM client_keys")
        .fetch_all(&pg)
        .await
        .unwrap();
    assert_eq!(names, ["on-postgres"]);
    pg.close().await;
}

/// Two apps on one fresh PostgreSQL database and no Redis, both knowing the key `name`,
/// checking for changes every `change_poll`; B routes to A's mock.
async fn replicas(name: &str, key: &str, change_poll: Duration) -> (TestApp, TestApp) {
    let options = || {
        let mut options = TestOptions {
            extra_config: format!("[[keys]]\nname = \"{name}\"\nkey = \"{key}\"\n"),
            ..TestOptions::default()
        };
        options.settings.change_poll_interval = change_poll;
        options.settings.admin_password = Some(Secret::new("postgres-admin-password"));
        options
    };
    let a = spawn_with(TestOptions {
        database_url: Some(crate::pg_cluster::fresh_database().await),
        ..options()
    })
    .await;
    let b = spawn_with(TestOptions {
        database_url: Some(a.db_url.clone()),
        upstream_base_url: Some(a.mock.base_url()),
        ..options()
    })
    .await;
    (a, b)
}

const REVOKED_KEY: &str = "sk-postgres-revoked-key-000000000001";

#[tokio::test]
async fn a_key_revoked_through_one_replica_is_refused_by_the_other_within_a_second_without_redis() {
    // Polls a minute apart and no Redis: only PostgreSQL's notice can tell replica B in time.
    let (a, b) = replicas("revoked", REVOKED_KEY, Duration::from_secs(60)).await;
    let send = |app: &TestApp| {
        let request = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(REVOKED_KEY)
            .json(&chat_body("gpt-test", "hi"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(&b).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(send(&b).await, 200);

    revoke_key_named(&a, "revoked").await;
    let refused = eventually(Duration::from_secs(1), || async { send(&b).await == 401 }).await;
    assert!(refused.is_some(), "replica B still accepts the revoked key");
    a.stop().await;
    b.stop().await;
}

const TURNS_KEY: &str = "sk-postgres-turns-key-00000000000001";

#[tokio::test]
async fn a_conversation_continues_on_another_replica_before_the_first_wrote_its_turn() {
    let (a, b) = replicas("turns", TURNS_KEY, Duration::from_millis(250)).await;
    let post = |app: &TestApp, body: serde_json::Value| {
        let request = app
            .client
            .post(app.url("/v1/responses"))
            .bearer_auth(TURNS_KEY)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let first = post(
        &a,
        serde_json::json!({"model": "gpt-test", "input": "first turn"}),
    )
    .await;
    let id = first["id"].as_str().unwrap();
    // Replica A keeps the response in memory until its next batch; B finds it anyway.
    let continued = post(
        &b,
        serde_json::json!({"model": "gpt-test", "input": "second turn", "previous_response_id": id}),
    )
    .await;
    assert_eq!(continued["previous_response_id"], id);
    let sent = crate::responses::last_request_to(&a, "/v1/chat/completions");
    let texts = sent["messages"].to_string();
    assert!(
        texts.contains("first turn") && texts.contains("second turn"),
        "{texts}"
    );
    let retrieved = b
        .client
        .get(b.url(&format!("/v1/responses/{id}")))
        .bearer_auth(TURNS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(retrieved.status(), 200);
    a.stop().await;
    b.stop().await;
}

//! Keys managed from the CLI in another process take effect on a running server within 1 s.

use std::process::Command;
use std::time::Duration;

use crate::helpers::{TestApp, chat_body, eventually, spawn_app};

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
async fn cli_created_and_revoked_keys_take_effect_within_a_second() {
    let app = spawn_app().await;
    let (code, stdout, stderr) = llmgate(
        &app,
        &[
            "keys", "create", "--name", "cli-key", "--models", "gpt-test", "--rpm", "100",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let key = stdout.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("sk-lg-"), "{stdout}");

    let send = |key: String| {
        let request = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body("gpt-test", "hi"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(key.clone()).await, 200, "a new key works at once");

    // The list shows each key's tokens this period, from the rollups.
    app.flush_usage().await;
    let (code, stdout, _) = llmgate(&app, &["keys", "list"]);
    assert_eq!(code, 0);
    let line = stdout
        .lines()
        .find(|line| line.contains("cli-key"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("active"), "{stdout}");
    let spent = app
        .usage_by_model()
        .await
        .iter()
        .map(|row| row.counts.prompt_tokens + row.counts.completion_tokens)
        .sum::<i64>();
    assert!(spent > 0);
    assert!(
        line.contains(&format!(" {spent}/monthly ")),
        "expected {spent} tokens this month: {stdout}"
    );
    assert!(!stdout.contains(&key), "the plaintext must never be listed");

    let (code, _, stderr) = llmgate(&app, &["keys", "revoke", "cli-key"]);
    assert_eq!(code, 0, "{stderr}");
    let refused = eventually(Duration::from_secs(1), || send(key.clone()).then_is(401)).await;
    assert!(refused.is_some(), "the revoked key still worked after 1 s");

    let (code, _, stderr) = llmgate(&app, &["keys", "revoke", "no-such-key"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no-such-key"));
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

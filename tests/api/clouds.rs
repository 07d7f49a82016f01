//! Azure OpenAI and Vertex AI through every ingress, against the mock's Azure paths, its Vertex
//! token endpoint (which verifies the service account's signed assertions) and its Vertex model
//! paths (which refuse a missing or expired token); and the extra headers of a provider.

use std::time::Duration;

use futures_util::future::join_all;
use llmgate::mock::MockConfig;
use serde_json::{Value, json};

use crate::helpers::{
    Serve, TestApp, TestOptions, assert_error, chat_body, ok_json, ok_text,
    serves_messages_and_responses, spawn_with,
};

const AZURE_KEY: &str = "azure-account-key-0123456789";
const TEST_KEY: &str = include_str!("../fixtures/vertex-sa-TEST-ONLY.key.pem");
const TEST_PUBLIC_KEY: &str = include_str!("../fixtures/vertex-sa-TEST-ONLY.pub.pem");
const OTHER_KEY: &str = include_str!("../fixtures/vertex-sa-other-TEST-ONLY.key.pem");

/// A service account's key file around `private_key`, whose `token_uri` is the mock's.
fn key_file(private_key: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "test-only-key",
        "private_key": private_key,
        "client_email": "llmgate-test@test-project.iam.gserviceaccount.com",
        "token_uri": "{mock_token_uri}",
    })
    .to_string()
}

fn cloud_config() -> String {
    format!(
        r#"
[[providers]]
name = "azure"
kind = "azure"
base_url = "{{mock_azure}}"
api_version = "2024-10-21"
headers = {{ "x-team" = "search", "x-org" = "acme" }}
  [[providers.accounts]]
  name = "az"
  api_key = "{AZURE_KEY}"

[[providers]]
name = "azure-wrong-key"
kind = "azure"
base_url = "{{mock_azure}}"
api_version = "2024-10-21"
  [[providers.accounts]]
  name = "az-wrong"
  api_key = "not-the-azure-key"

[[providers]]
name = "vertex"
kind = "vertex"
base_url = "{{mock_vertex}}"
project = "test-project"
region = "us-central1"
headers = {{ "x-team" = "vertex-team" }}
  [[providers.accounts]]
  name = "sa"
  service_account_json = '{sa}'

[[providers]]
name = "vertex-unknown-key"
kind = "vertex"
base_url = "{{mock_vertex}}"
project = "test-project"
region = "us-central1"
  [[providers.accounts]]
  name = "sa-other"
  service_account_json = '{other}'

[[models]]
name = "azure-gpt"
  [[models.routes]]
  provider = "azure"
  model = "gpt-4o-deployment"

[[models]]
name = "azure-wrong"
  [[models.routes]]
  provider = "azure-wrong-key"
  model = "gpt-4o-deployment"

[[models]]
name = "vertex-gemini"
  [[models.routes]]
  provider = "vertex"
  model = "gemini-2.5-flash"

[[models]]
name = "vertex-claude"
  [[models.routes]]
  provider = "vertex"
  model = "claude-sonnet-4@20250514"

[[models]]
name = "vertex-refused"
  [[models.routes]]
  provider = "vertex-unknown-key"
  model = "gemini-2.5-flash"
"#,
        sa = key_file(TEST_KEY),
        other = key_file(OTHER_KEY),
    )
}

/// The app with the clouds' providers, a mock that knows the Azure key and the service
/// account's public key and issues tokens that live `token_lifetime`, and a manual clock.
async fn spawn_clouds(token_lifetime: Duration) -> TestApp {
    spawn_with(TestOptions {
        extra_config: cloud_config(),
        mock: MockConfig {
            azure_api_key: Some(AZURE_KEY.to_owned()),
            vertex_public_key: Some(TEST_PUBLIC_KEY.to_owned()),
            token_lifetime,
            ..MockConfig::default()
        },
        manual_clock: true,
        ..TestOptions::default()
    })
    .await
}

/// The last request the mock received whose path starts with `prefix`.
fn last_request_to(app: &TestApp, prefix: &str) -> llmgate::mock::RecordedRequest {
    app.mock
        .requests()
        .into_iter()
        .rev()
        .find(|request| request.path.starts_with(prefix))
        .unwrap_or_else(|| panic!("no request to {prefix}"))
}

fn body_of(request: &llmgate::mock::RecordedRequest) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

fn messages_body(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}]})
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}])
}

#[tokio::test]
async fn azure_chat_goes_to_the_deployment_with_the_api_key_and_the_provider_s_headers() {
    let app = spawn_clouds(Duration::from_secs(3600)).await;
    let mut body = chat_body("azure-gpt", "hello azure");
    body["mock"] = json!({"chunks": 3});
    let answer = ok_json(app.chat(body).send().await.unwrap()).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: hello azure"
    );
    assert_eq!(answer["usage"]["completion_tokens"], 3);

    let sent = last_request_to(&app, "/openai/");
    assert_eq!(
        sent.path,
        "/openai/deployments/gpt-4o-deployment/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(sent.headers["api-key"], AZURE_KEY);
    assert!(sent.headers.get("authorization").is_none());
    // The provider's extra headers reach the upstream.
    assert_eq!(sent.headers["x-team"], "search");
    assert_eq!(sent.headers["x-org"], "acme");

    // Embeddings and completions name the deployment too.
    let embedded = app
        .post(
            "/v1/embeddings",
            json!({"model": "azure-gpt", "input": "a b"}),
        )
        .send()
        .await
        .unwrap();
    ok_json(embedded).await;
    assert_eq!(
        last_request_to(&app, "/openai/").path,
        "/openai/deployments/gpt-4o-deployment/embeddings?api-version=2024-10-21"
    );
    let completed = app
        .post(
            "/v1/completions",
            json!({"model": "azure-gpt", "prompt": "a b"}),
        )
        .send()
        .await
        .unwrap();
    ok_json(completed).await;
    assert_eq!(
        last_request_to(&app, "/openai/").path,
        "/openai/deployments/gpt-4o-deployment/completions?api-version=2024-10-21"
    );

    app.flush_usage().await;
    let usage = app.usage_by_model().await;
    let azure = usage
        .iter()
        .find(|row| row.model.as_deref() == Some("azure-gpt"))
        .unwrap();
    assert_eq!(azure.counts.requests, 3);
    assert!(azure.counts.completion_tokens >= 3, "{azure:?}");
    app.stop().await;
}

#[tokio::test]
async fn azure_streams_tools_and_serves_the_messages_and_responses_ingress() {
    let app = spawn_clouds(Duration::from_secs(3600)).await;
    // A stream with tool calls, as from OpenAI.
    let mut body = chat_body("azure-gpt", "weather?");
    body["stream"] = json!(true);
    body["tools"] = weather_tool();
    body["mock"] = json!({"tool_calls": 1, "chunks": 2});
    let stream = ok_text(app.chat(body).send().await.unwrap()).await;
    assert!(stream.contains("\"tool_calls\""), "{stream}");
    assert!(stream.trim_end().ends_with("data: [DONE]"), "{stream}");

    // Messages and Responses, whole and streamed, translated to chat.
    serves_messages_and_responses(&app, "azure-gpt").await;
    let sent = last_request_to(&app, "/openai/");
    assert!(
        sent.path
            .starts_with("/openai/deployments/gpt-4o-deployment/chat/completions?")
    );
    app.stop().await;
}

#[tokio::test]
async fn azure_s_refusals_become_the_contract_s_errors() {
    let app = spawn_clouds(Duration::from_secs(3600)).await;
    // The content filter refuses the prompt: a 400 the client can act on, in each dialect.
    let mut body = chat_body("azure-gpt", "something filtered");
    body["mock"] = json!({"content_filter": true});
    let error = assert_error(app.chat(body).send().await.unwrap(), 400, "content_filter").await;
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "prompt");
    let mut body = messages_body("azure-gpt", "something filtered");
    body["mock"] = json!({"content_filter": true});
    let response = app.post("/v1/messages", body).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");

    // A completion the filter stopped keeps its finish reason.
    let mut body = chat_body("azure-gpt", "half filtered");
    body["mock"] = json!({"safety_block": true});
    let answer = ok_json(app.chat(body).send().await.unwrap()).await;
    assert_eq!(answer["choices"][0]["finish_reason"], "content_filter");

    // Azure's 429: the contract's rate limit with its wait.
    let mut body = chat_body("azure-gpt", "busy");
    body["mock"] = json!({"status": 429, "retry_after": 7});
    let response = app.chat(body).send().await.unwrap();
    assert_eq!(response.headers()["retry-after"], "7");
    assert_error(response, 429, "rate_limit_exceeded").await;

    // A wrong api-key: Azure's 401, the account taken out, and a 5xx for the client.
    let response = app
        .chat(chat_body("azure-wrong", "hi"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    let refused = last_request_to(&app, "/openai/");
    assert_eq!(refused.headers["api-key"], "not-the-azure-key");
    app.stop().await;
}

#[tokio::test]
async fn vertex_gemini_serves_chat_messages_and_responses_with_a_minted_token() {
    let app = spawn_clouds(Duration::from_secs(3600)).await;
    let mut body = chat_body("vertex-gemini", "hello vertex");
    body["mock"] = json!({"chunks": 4});
    let answer = ok_json(app.chat(body).send().await.unwrap()).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: hello vertex"
    );
    assert_eq!(answer["usage"]["completion_tokens"], 4);
    let sent = last_request_to(&app, "/vertex/");
    assert_eq!(
        sent.path,
        "/vertex/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    let bearer = sent.headers["authorization"].to_str().unwrap();
    assert!(bearer.starts_with("Bearer ya29.mock-"), "{bearer}");
    assert_eq!(sent.headers["x-team"], "vertex-team");

    // Streamed, with tools.
    let mut body = chat_body("vertex-gemini", "weather?");
    body["stream"] = json!(true);
    body["tools"] = weather_tool();
    body["mock"] = json!({"tool_calls": 1});
    let stream = ok_text(app.chat(body).send().await.unwrap()).await;
    assert!(stream.contains("\"tool_calls\""), "{stream}");
    assert!(stream.trim_end().ends_with("data: [DONE]"), "{stream}");
    assert!(
        last_request_to(&app, "/vertex/")
            .path
            .ends_with(":streamGenerateContent?alt=sse")
    );

    let answer = ok_json(
        app.post(
            "/v1/messages",
            messages_body("vertex-gemini", "via messages"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        answer["content"][0]["text"], "echo: via messages",
        "{answer}"
    );
    let events = ok_text(
        app.post(
            "/v1/responses",
            json!({"model": "vertex-gemini", "input": "one two", "stream": true}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert!(events.contains("response.completed"), "{events}");
    // One token served all of them.
    assert_eq!(app.mock.token_requests(), 1);
    app.stop().await;
}

#[tokio::test]
async fn vertex_claude_gets_a_messages_body_without_model_and_with_vertex_s_version() {
    let app = spawn_clouds(Duration::from_secs(3600)).await;
    // Messages pass through.
    let mut body = messages_body("vertex-claude", "hello claude");
    body["mock"] = json!({"chunks": 2});
    let answer = ok_json(app.post("/v1/messages", body).send().await.unwrap()).await;
    assert_eq!(
        answer["content"][0]["text"], "echo: hello claude",
        "{answer}"
    );
    assert_eq!(answer["usage"]["output_tokens"], 2);
    let sent = last_request_to(&app, "/vertex/");
    assert_eq!(
        sent.path,
        "/vertex/v1/projects/test-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    );
    let sent_body = body_of(&sent);
    assert!(sent_body.get("model").is_none(), "{sent_body}");
    assert_eq!(sent_body["anthropic_version"], "vertex-2023-10-16");

    // Streamed Messages.
    let mut body = messages_body("vertex-claude", "stream claude");
    body["stream"] = json!(true);
    let events = ok_text(app.post("/v1/messages", body).send().await.unwrap()).await;
    assert!(events.contains("event: message_stop"), "{events}");
    assert!(
        last_request_to(&app, "/vertex/")
            .path
            .ends_with(":streamRawPredict")
    );

    // Chat, translated, whole and streamed with tools.
    let answer = ok_json(
        app.chat(chat_body("vertex-claude", "via chat"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer["choices"][0]["message"]["content"], "echo: via chat");
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let mut body = chat_body("vertex-claude", "weather?");
    body["stream"] = json!(true);
    body["tools"] = weather_tool();
    body["mock"] = json!({"tool_calls": 1});
    let stream = ok_text(app.chat(body).send().await.unwrap()).await;
    assert!(stream.contains("\"tool_calls\""), "{stream}");
    let sent_body = body_of(&last_request_to(&app, "/vertex/"));
    assert!(sent_body.get("model").is_none(), "{sent_body}");
    assert_eq!(sent_body["anthropic_version"], "vertex-2023-10-16");

    // Responses.
    let answer = ok_json(
        app.post(
            "/v1/responses",
            json!({"model": "vertex-claude", "input": "one two"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        answer["output"][0]["content"][0]["text"], "echo: one two",
        "{answer}"
    );

    // A token count goes to Vertex's count-tokens model, the model named in the body.
    let counted = ok_json(
        app.post(
            "/v1/messages/count_tokens",
            json!({"model": "vertex-claude", "messages": [{"role": "user", "content": "a b c"}]}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
    let sent = last_request_to(&app, "/vertex/");
    assert!(
        sent.path
            .ends_with("/publishers/anthropic/models/count-tokens:rawPredict")
    );
    assert_eq!(body_of(&sent)["model"], "claude-sonnet-4@20250514");
    assert_eq!(app.mock.token_requests(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_token_is_reused_until_most_of_its_lifetime_has_passed_then_refreshed_once() {
    // Tokens that live ten seconds: refreshed after eight.
    let app = spawn_clouds(Duration::from_secs(10)).await;
    for _ in 0..5 {
        ok_json(
            app.chat(chat_body("vertex-gemini", "hi"))
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    assert_eq!(app.mock.token_requests(), 1);
    app.advance(Duration::from_millis(7_900));
    ok_json(
        app.chat(chat_body("vertex-gemini", "hi"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(app.mock.token_requests(), 1, "still fresh at 7.9 s");
    app.advance(Duration::from_millis(200));
    ok_json(
        app.chat(chat_body("vertex-gemini", "hi"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(app.mock.token_requests(), 2, "refreshed after 8 s");

    // A burst of 100 after the next expiry: one token request between them all.
    app.advance(Duration::from_secs(9));
    let burst = (0..100).map(|i| {
        let request = app.chat(chat_body("vertex-gemini", &format!("burst {i}")));
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = join_all(burst).await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(app.mock.token_requests(), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_service_account_marks_its_account_failed_and_the_reason_is_logged() {
    let app = spawn_clouds(Duration::from_secs(3600)).await;
    // The mock does not know this key: the token endpoint refuses the assertion.
    let response = app
        .chat(chat_body("vertex-refused", "hi"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error(), "{}", response.status());
    assert_eq!(app.mock.token_requests(), 1);
    // The account is out: no further token requests, no model request.
    let response = app
        .chat(chat_body("vertex-refused", "hi"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error());
    assert_eq!(app.mock.token_requests(), 1);
    assert!(
        !app.mock
            .requests()
            .iter()
            .any(|request| request.path.starts_with("/vertex/")),
        "no model request without a token"
    );

    // Another process on the same database logs the token endpoint's answer.
    let serve = Serve::start(&app.db_url, &[], &[("LLMGATE_LOG", "info")]);
    let response = reqwest::Client::new()
        .post(serve.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(&chat_body("vertex-refused", "hi"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error());
    let output = serve.stop();
    assert!(output.contains("Invalid JWT Signature"), "{output}");
    assert!(output.contains("invalid_grant"), "{output}");
    app.stop().await;
}

#[tokio::test]
async fn the_admin_api_takes_the_clouds_settings_and_keeps_the_service_account_write_only() {
    let app = spawn_clouds(Duration::from_secs(3600)).await;
    let token = app.admin_token().await;
    let post = |path: &str, body: Value| {
        app.admin(reqwest::Method::POST, path, &token)
            .json(&body)
            .send()
    };
    let created = post(
        "/admin/providers",
        json!({"name": "vx", "kind": "vertex", "project": "p1", "region": "europe-west4",
               "headers": {"x-team": "t"}}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let provider: Value = created.json().await.unwrap();
    assert_eq!(
        provider["base_url"],
        "https://europe-west4-aiplatform.googleapis.com/v1"
    );
    assert_eq!(provider["headers"]["x-team"], "t");
    assert_eq!(provider["project"], "p1");
    let id = provider["id"].as_i64().unwrap();

    // Settings are checked together: an Azure provider needs its api_version, a header
    // llmgate sets itself is refused, and a kind change must drop what the old kind used.
    let refused = post(
        "/admin/providers",
        json!({"name": "az", "kind": "azure", "base_url": "https://r.openai.azure.com/openai"}),
    )
    .await
    .unwrap();
    let body = assert_error(refused, 400, "invalid_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api_version")
    );
    let refused = post(
        "/admin/providers",
        json!({"name": "h", "kind": "openai", "base_url": "https://x/v1",
               "headers": {"api-key": "k"}}),
    )
    .await
    .unwrap();
    assert_error(refused, 400, "invalid_request").await;
    let patch = |body: Value| {
        app.admin(
            reqwest::Method::PATCH,
            &format!("/admin/providers/{id}"),
            &token,
        )
        .json(&body)
        .send()
    };
    let refused = patch(json!({"kind": "openai"})).await.unwrap();
    assert_error(refused, 400, "invalid_request").await;
    let changed = patch(json!({"kind": "openai", "project": null, "region": null, "headers": {}}))
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["kind"], "openai");
    assert!(changed["project"].is_null() && changed["headers"] == json!({}));

    // A service account is an account's credential: checked, sealed, never shown.
    let sa = key_file(TEST_KEY);
    let account = post(
        "/admin/accounts",
        json!({"provider": "vertex", "name": "sa2", "service_account_json": sa}),
    )
    .await
    .unwrap();
    assert_eq!(account.status(), 201);
    let text = account.text().await.unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let account: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        account["api_key_hint"],
        "llmgate-test@test-project.iam.gserviceaccount.com"
    );
    let refused = post(
        "/admin/accounts",
        json!({"provider": "vertex", "name": "sa3", "service_account_json": "{\"client_email\": 1}"}),
    )
    .await
    .unwrap();
    assert_error(refused, 400, "invalid_request").await;
    app.stop().await;
}

//! Requests shaped to the route's upstream model, as the upstream receives them: Claude Code's
//! and Codex's own request bodies sent to routes whose models take fewer output tokens or no
//! reasoning, of every dialect; a model the catalog does not know gets the client's bytes.
use crate::helpers::{CLAUDE_AND_GEMINI_PROVIDERS, TestApp, TestOptions, spawn_with};

/// Claude Code's request as it sends it for a Claude model: `max_tokens: 32000` and thinking
/// with a budget of 31,999 tokens, streamed.
const CLAUDE_CODE: &str =
    include_str!("../../src/translate/fixtures/anthropic/request_claude_code_claude.json");
const CLAUDE_CODE_MODEL: &str = "\"model\": \"claude-sonnet-4-5-20250929\"";

/// Codex's request: `reasoning: {effort: medium, summary: auto}`, no output cap, streamed.
const CODEX: &str = include_str!("../../src/translate/fixtures/responses/request_codex.json");
const CODEX_MODEL: &str = "\"model\": \"gpt-5-codex\"";

/// Public models, each routed to one upstream model: gpt-4o (16,384 output tokens, no
/// reasoning) at the openai-kind mock, claude-3-5-haiku (8,192, no thinking) and claude-opus-4
/// (32,000, thinking) at an anthropic one, gemini-2.0-flash (8,192, no thinking) at a gemini
/// one, and two models the catalog does not know.
async fn spawn_routes() -> TestApp {
    let models = r#"
[[models]]
name = "to-gpt-4o"
  [[models.routes]]
  provider = "mock"
  model = "gpt-4o"

[[models]]
name = "to-haiku"
  [[models.routes]]
  provider = "claude"
  model = "claude-3-5-haiku-20241022"

[[models]]
name = "to-opus-4"
  [[models.routes]]
  provider = "claude"
  model = "claude-opus-4-20250514"

[[models]]
name = "to-flash"
  [[models.routes]]
  provider = "gem"
  model = "gemini-2.0-flash"

[[models]]
name = "to-custom-claude"
  [[models.routes]]
  provider = "claude"
  model = "claude-in-house-proxy"

[[models]]
name = "to-finetune"
  [[models.routes]]
  provider = "mock"
  model = "ft:my-finetune"

[[models]]
name = "to-capped-finetune"
  [[models.routes]]
  provider = "mock"
  model = "ft:my-capped-finetune"
  max_output_tokens = 2000

[[models]]
name = "to-gpt-4o-capped"
  [[models.routes]]
  provider = "mock"
  model = "gpt-4o"
  max_output_tokens = 4096
"#;
    spawn_with(TestOptions {
        extra_config: format!("{CLAUDE_AND_GEMINI_PROVIDERS}{models}"),
        ..TestOptions::default()
    })
    .await
}

/// Claude Code's body naming the public model `model`.
fn claude_code_for(model: &str) -> String {
    assert!(CLAUDE_CODE.contains(CLAUDE_CODE_MODEL));
    CLAUDE_CODE.replacen(CLAUDE_CODE_MODEL, &format!("\"model\": \"{model}\""), 1)
}

/// Codex's body naming the public model `model`.
fn codex_for(model: &str) -> String {
    assert!(CODEX.contains(CODEX_MODEL));
    CODEX.replacen(CODEX_MODEL, &format!("\"model\": \"{model}\""), 1)
}

/// Sends `body` to `path` as Claude Code or Codex would, reads the whole answer and returns
/// its `x-llmgate-shaped` header.
async fn send(app: &TestApp, path: &str, body: &str) -> Option<String> {
    let response = app
        .post_bytes(path, body)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let shaped = response
        .headers()
        .get("x-llmgate-shaped")
        .map(|value| value.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    shaped
}

/// Sends `body` to `path` and checks that it reached the upstream untouched but for the model
/// name (`public` replaced by `upstream`), with no `x-llmgate-shaped` on the answer.
async fn assert_untouched(app: &TestApp, path: &str, body: &str, public: &str, upstream: &str) {
    assert_eq!(send(app, path, body).await, None, "{body}");
    let upstream_path = match path {
        "/v1/messages" => "/v1/messages",
        _ => "/v1/chat/completions",
    };
    let received = app.last_upstream_request(upstream_path).body;
    assert_eq!(
        std::str::from_utf8(&received).unwrap(),
        body.replacen(&format!("\"{public}\""), &format!("\"{upstream}\""), 1)
    );
}

#[tokio::test]
async fn claude_codes_request_to_gpt_4o_asks_for_16384_tokens_and_no_reasoning() {
    let app = spawn_routes().await;
    let shaped = send(&app, "/v1/messages", &claude_code_for("to-gpt-4o")).await;
    assert_eq!(
        shaped.as_deref(),
        Some("max_tokens=16384, thinking=dropped")
    );
    let chat = app.last_upstream_json("/v1/chat/completions");
    assert_eq!(chat["model"], "gpt-4o");
    assert_eq!(chat["max_completion_tokens"], 16_384);
    assert!(chat.get("max_tokens").is_none(), "{chat}");
    assert!(chat.get("reasoning_effort").is_none(), "{chat}");
    // The rest of the translation is whole: the conversation and the tools.
    assert!(chat["messages"].as_array().unwrap().len() > 3);
    assert!(!chat["tools"].as_array().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn claude_codes_request_to_an_older_claude_loses_only_what_it_cannot_take() {
    let app = spawn_routes().await;
    let body = claude_code_for("to-haiku");
    let shaped = send(&app, "/v1/messages", &body).await;
    assert_eq!(shaped.as_deref(), Some("max_tokens=8192, thinking=dropped"));
    // Byte for byte but the model's name, the lowered cap and the thinking left out (with
    // the comma before it).
    let received = app.last_upstream_request("/v1/messages").body;
    let start = body.find(",\n  \"thinking\"").unwrap();
    let end = start + body[start..].find('}').unwrap() + 1;
    let expected = format!("{}{}", &body[..start], &body[end..])
        .replacen("\"to-haiku\"", "\"claude-3-5-haiku-20241022\"", 1)
        .replacen("\"max_tokens\": 32000", "\"max_tokens\": 8192", 1);
    assert_eq!(std::str::from_utf8(&received).unwrap(), expected);
    app.stop().await;
}

#[tokio::test]
async fn a_lowered_anthropic_cap_keeps_the_thinking_budget_under_it() {
    let app = spawn_routes().await;
    let body = claude_code_for("to-opus-4")
        .replacen("\"max_tokens\": 32000", "\"max_tokens\": 64000", 1)
        .replacen("\"budget_tokens\": 31999", "\"budget_tokens\": 48000", 1);
    let shaped = send(&app, "/v1/messages", &body).await;
    assert_eq!(shaped.as_deref(), Some("max_tokens=32000"));
    let messages = app.last_upstream_json("/v1/messages");
    assert_eq!(messages["max_tokens"], 32_000);
    assert_eq!(messages["thinking"]["type"], "enabled");
    assert_eq!(messages["thinking"]["budget_tokens"], 31_999);

    // Claude Code's own request fits this model: it reaches it untouched but the name.
    let body = claude_code_for("to-opus-4");
    assert_untouched(
        &app,
        "/v1/messages",
        &body,
        "to-opus-4",
        "claude-opus-4-20250514",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn codexs_request_to_gpt_4o_chat_has_no_reasoning_effort() {
    let app = spawn_routes().await;
    let shaped = send(&app, "/v1/responses", &codex_for("to-gpt-4o")).await;
    assert_eq!(shaped.as_deref(), Some("reasoning=dropped"));
    let chat = app.last_upstream_json("/v1/chat/completions");
    assert_eq!(chat["model"], "gpt-4o");
    assert!(chat.get("reasoning_effort").is_none(), "{chat}");
    // Codex sets no cap, and none is invented.
    assert!(chat.get("max_completion_tokens").is_none(), "{chat}");

    // With a cap above the model's, it is lowered.
    let capped = codex_for("to-gpt-4o").replacen(
        "\"stream\": true",
        "\"stream\": true,\n  \"max_output_tokens\": 100000",
        1,
    );
    let shaped = send(&app, "/v1/responses", &capped).await;
    assert_eq!(
        shaped.as_deref(),
        Some("max_output_tokens=16384, reasoning=dropped")
    );
    assert_eq!(
        app.last_upstream_json("/v1/chat/completions")["max_completion_tokens"],
        16_384
    );
    app.stop().await;
}

#[tokio::test]
async fn requests_to_gemini_2_0_flash_carry_no_thinking_budget() {
    let app = spawn_routes().await;
    let shaped = send(&app, "/v1/messages", &claude_code_for("to-flash")).await;
    assert_eq!(shaped.as_deref(), Some("max_tokens=8192, thinking=dropped"));
    let gemini = app.last_upstream_json("/v1beta/models/gemini-2.0-flash:");
    let config = &gemini["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 8_192);
    assert!(config.get("thinkingConfig").is_none(), "{config}");

    let shaped = send(&app, "/v1/responses", &codex_for("to-flash")).await;
    assert_eq!(shaped.as_deref(), Some("reasoning=dropped"));
    let gemini = app.last_upstream_json("/v1beta/models/gemini-2.0-flash:");
    assert!(
        gemini["generationConfig"].get("thinkingConfig").is_none(),
        "{gemini}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_model_the_catalog_does_not_know_gets_the_clients_bytes() {
    let app = spawn_routes().await;
    let body = claude_code_for("to-custom-claude");
    assert_untouched(
        &app,
        "/v1/messages",
        &body,
        "to-custom-claude",
        "claude-in-house-proxy",
    )
    .await;

    let chat = "{\"model\":\"to-finetune\",\"max_tokens\":1000000,\"reasoning_effort\":\"high\",\n\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    assert_untouched(
        &app,
        "/v1/chat/completions",
        chat,
        "to-finetune",
        "ft:my-finetune",
    )
    .await;

    // A known model, asked for what it takes: the bytes are the client's too.
    let within = "{\"model\":\"to-gpt-4o\", \"max_tokens\": 16384, \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    assert_untouched(&app, "/v1/chat/completions", within, "to-gpt-4o", "gpt-4o").await;
    app.stop().await;
}

#[tokio::test]
async fn a_routes_own_output_limit_shapes_as_the_catalogs_does() {
    let app = spawn_routes().await;
    // A model the catalog does not know, with the route's limit: only the cap is lowered.
    let shaped = send(&app, "/v1/messages", &claude_code_for("to-capped-finetune")).await;
    assert_eq!(shaped.as_deref(), Some("max_tokens=2000"));
    let chat = app.last_upstream_json("/v1/chat/completions");
    assert_eq!(chat["max_completion_tokens"], 2000, "{chat}");
    // A known model with a lower limit on its route: the route's limit wins.
    let shaped = send(&app, "/v1/messages", &claude_code_for("to-gpt-4o-capped")).await;
    assert_eq!(shaped.as_deref(), Some("max_tokens=4096, thinking=dropped"));
    let chat = app.last_upstream_json("/v1/chat/completions");
    assert_eq!(chat["max_completion_tokens"], 4096, "{chat}");
    app.stop().await;
}

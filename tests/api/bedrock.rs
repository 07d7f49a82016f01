//! AWS Bedrock through every ingress (chat, Messages, Responses), whole and streamed, against
//! the mock's Converse paths, whose SigV4 verifier recomputes every signature from the secret it
//! knows and refuses a wrong one as AWS does.

use llmgate::mock::MockConfig;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestOptions, chat_body, ok_json, ok_text, serves_messages_and_responses, spawn_with,
};

const KEY_ID: &str = "AKIDLLMGATETEST0001";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEBYaDTESTONLYsessiontoken";
const MODEL_ID: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn bedrock_config() -> String {
    format!(
        r#"
[[providers]]
name = "bedrock"
kind = "bedrock"
base_url = "{{mock_bedrock}}"
region = "us-east-1"
headers = {{ "x-team" = "aws-team" }}
  [[providers.accounts]]
  name = "aws-main"
  aws_access_key_id = "{KEY_ID}"
  aws_secret_access_key = "{SECRET}"
  aws_session_token = "{SESSION_TOKEN}"

[[providers]]
name = "bedrock-wrong-secret"
kind = "bedrock"
base_url = "{{mock_bedrock}}"
region = "us-east-1"
  [[providers.accounts]]
  name = "aws-wrong"
  aws_access_key_id = "{KEY_ID}"
  aws_secret_access_key = "not-the-secret"
  aws_session_token = "{SESSION_TOKEN}"

[[providers]]
name = "bedrock-plain-key"
kind = "bedrock"
base_url = "{{mock_bedrock}}"
region = "us-east-1"
  [[providers.accounts]]
  name = "not-aws"
  api_key = "sk-not-an-aws-key-0123456789"

[[models]]
name = "claude-bedrock"
  [[models.routes]]
  provider = "bedrock"
  model = "{MODEL_ID}"

[[models]]
name = "haiku-bedrock"
  [[models.routes]]
  provider = "bedrock"
  model = "us.anthropic.claude-3-5-haiku-20241022-v1:0"

[[models]]
name = "bedrock-unsigned"
  [[models.routes]]
  provider = "bedrock-plain-key"
  model = "{MODEL_ID}"

[[models]]
name = "bedrock-wrong"
  [[models.routes]]
  provider = "bedrock-wrong-secret"
  model = "{MODEL_ID}"
"#
    )
}

async fn spawn_bedrock() -> TestApp {
    spawn_with(TestOptions {
        extra_config: bedrock_config(),
        mock: MockConfig {
            aws_access_key_id: Some(KEY_ID.to_owned()),
            aws_secret_access_key: Some(SECRET.to_owned()),
            aws_session_token: Some(SESSION_TOKEN.to_owned()),
            ..MockConfig::default()
        },
        manual_clock: true,
        ..TestOptions::default()
    })
    .await
}

fn bedrock_requests(app: &TestApp) -> Vec<llmgate::mock::RecordedRequest> {
    app.mock
        .requests()
        .into_iter()
        .filter(|request| request.path.starts_with("/bedrock/"))
        .collect()
}

/// The JSON of every `data:` line but `[DONE]`.
fn data_lines(events: &str) -> Vec<Value> {
    events
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

#[tokio::test]
async fn chat_is_signed_with_sigv4_and_answered_whole_and_streamed() {
    let app = spawn_bedrock().await;
    let mut body = chat_body("claude-bedrock", "hello bedrock");
    body["messages"] = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello bedrock"}
    ]);
    body["max_tokens"] = json!(64);
    body["mock"] = json!({"chunks": 3});
    let answer = ok_json(app.chat(body).send().await.unwrap()).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: hello bedrock"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["model"], "claude-bedrock");
    assert_eq!(answer["usage"]["completion_tokens"], 3);

    let sent = bedrock_requests(&app).pop().unwrap();
    assert_eq!(
        sent.path,
        "/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    let authorization = sent.headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/"))
            && authorization.contains("/us-east-1/bedrock/aws4_request")
            && authorization.contains("x-amz-security-token"),
        "{authorization}"
    );
    // The session token is sent (and signed); the secret never is.
    assert_eq!(sent.headers["x-amz-security-token"], SESSION_TOKEN);
    assert!(sent.headers.get("x-amz-date").is_some());
    assert_eq!(sent.headers["x-team"], "aws-team");
    assert!(
        !sent
            .headers
            .values()
            .any(|value| value.to_str().unwrap_or_default().contains(SECRET))
    );
    let converse: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(converse["system"], json!([{"text": "Be brief."}]));
    assert_eq!(converse["inferenceConfig"]["maxTokens"], 64);
    assert_eq!(
        converse["messages"],
        json!([{"role": "user", "content": [{"text": "hello bedrock"}]}])
    );

    // Streamed: ConverseStream's binary events become chat chunks, with the usage chunk.
    let mut body = chat_body("claude-bedrock", "stream please");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["mock"] = json!({"chunks": 4});
    let events = ok_text(app.chat(body).send().await.unwrap()).await;
    assert!(events.trim_end().ends_with("data: [DONE]"), "{events}");
    let chunks = data_lines(&events);
    let text: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.trim_end(), "echo: stream please");
    assert!(
        chunks
            .iter()
            .any(|chunk| chunk["choices"][0]["finish_reason"] == "stop")
    );
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 4);
    assert!(
        bedrock_requests(&app)
            .pop()
            .unwrap()
            .path
            .ends_with("/converse-stream")
    );

    app.flush_usage().await;
    let usage = app.usage_by_model().await;
    let row = usage
        .iter()
        .find(|row| row.model.as_deref() == Some("claude-bedrock"))
        .unwrap();
    assert_eq!(row.counts.requests, 2);
    assert_eq!(row.counts.completion_tokens, 7, "{row:?}");
    app.stop().await;
}

#[tokio::test]
async fn tools_and_cache_usage_cross_converse_whole_and_streamed() {
    let app = spawn_bedrock().await;
    let tools = json!([{"type": "function", "function": {"name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let mut body = chat_body("claude-bedrock", "weather?");
    body["tools"] = tools.clone();
    body["tool_choice"] = json!("required");
    body["mock"] = json!({"tool_calls": 1, "cached_tokens": 1, "cache_write_tokens": 0});
    let answer = ok_json(app.chat(body).send().await.unwrap()).await;
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments["index"], 0);
    assert_eq!(answer["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    let converse: Value =
        serde_json::from_slice(&bedrock_requests(&app).pop().unwrap().body).unwrap();
    assert_eq!(converse["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(
        converse["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "weather"
    );

    // The tool's result goes back as a toolResult in a user turn.
    let id = call["id"].as_str().unwrap();
    let followup = json!({"model": "claude-bedrock", "tools": tools, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": id, "content": "sunny"}
    ]});
    ok_json(app.chat(followup).send().await.unwrap()).await;
    let converse: Value =
        serde_json::from_slice(&bedrock_requests(&app).pop().unwrap().body).unwrap();
    assert_eq!(
        converse["messages"][1]["content"][0]["toolUse"]["toolUseId"],
        id
    );
    assert_eq!(
        converse["messages"][2]["content"][0]["toolResult"],
        json!({"toolUseId": id, "content": [{"text": "sunny"}]})
    );

    // Streamed tool calls, and cache writes in the usage chunk.
    let mut body = chat_body("claude-bedrock", "two words here");
    body["tools"] = tools;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["mock"] = json!({"tool_calls": 2, "cache_write_tokens": 2});
    let events = ok_text(app.chat(body).send().await.unwrap()).await;
    let chunks = data_lines(&events);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(
        calls
            .iter()
            .filter(|call| call["function"]["name"] == "weather")
            .count(),
        2,
        "{events}"
    );
    assert!(
        chunks
            .iter()
            .any(|chunk| chunk["choices"][0]["finish_reason"] == "tool_calls")
    );
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        usage["prompt_tokens_details"]["cache_write_tokens"], 2,
        "{events}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_messages_and_responses_ingress_reach_converse() {
    let app = spawn_bedrock().await;
    let messages = json!({"model": "claude-bedrock", "max_tokens": 50, "system": "Be brief.",
        "messages": [{"role": "user", "content": "via messages"}]});
    let answer = ok_json(
        app.post("/v1/messages", messages.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer["content"][0]["text"], "echo: via messages",
        "{answer}"
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    assert!(answer["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let converse: Value =
        serde_json::from_slice(&bedrock_requests(&app).pop().unwrap().body).unwrap();
    assert_eq!(converse["system"], json!([{"text": "Be brief."}]));
    assert_eq!(converse["inferenceConfig"]["maxTokens"], 50);

    serves_messages_and_responses(&app, "claude-bedrock").await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_is_refused_as_aws_refuses_it_and_marks_the_account() {
    let app = spawn_bedrock().await;
    let response = app
        .chat(chat_body("bedrock-wrong", "hi"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    assert_eq!(bedrock_requests(&app).len(), 1);

    // The refusal as AWS answers it: the mock is asked directly with the request llmgate sent.
    let sent = bedrock_requests(&app).pop().unwrap();
    let mut replay = reqwest::Client::new().post(format!(
        "{}{}",
        app.mock.base_url().trim_end_matches("/v1"),
        sent.path
    ));
    for (name, value) in &sent.headers {
        replay = replay.header(name, value);
    }
    let refused = replay.body(sent.body.clone()).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.headers()["x-amzn-errortype"],
        "InvalidSignatureException"
    );
    let refusal: Value = refused.json().await.unwrap();
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated does not match"),
        "{refusal}"
    );

    // The account is out: the next request does not reach Bedrock.
    let response = app
        .chat(chat_body("bedrock-wrong", "hi"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error());
    assert_eq!(bedrock_requests(&app).len(), 2, "only the replay was added");
    app.stop().await;
}

#[tokio::test]
async fn bedrock_s_errors_become_the_contract_s_and_an_in_stream_exception_ends_the_stream() {
    let app = spawn_bedrock().await;
    // ThrottlingException (429): the contract's rate limit.
    let mut body = chat_body("claude-bedrock", "busy");
    body["mock"] = json!({"status": 429, "retry_after": 3});
    let response = app.chat(body).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    // The account cooled for the wait Bedrock asked.
    app.advance(std::time::Duration::from_secs(4));
    // ValidationException (400): the client's error, in its shape, with Bedrock's message.
    let mut body = chat_body("claude-bedrock", "bad");
    body["mock"] = json!({"status": 400});
    let response = app.chat(body).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("simulated")
    );
    // ServiceUnavailableException (503): the upstream's failure.
    let mut body = chat_body("claude-bedrock", "down");
    body["mock"] = json!({"status": 503});
    assert!(
        app.chat(body)
            .send()
            .await
            .unwrap()
            .status()
            .is_server_error()
    );

    // An exception mid-stream: the client's stream ends with the error event.
    let mut body = chat_body("claude-bedrock", "throttled midway");
    body["stream"] = json!(true);
    body["mock"] = json!({"chunks": 2, "exception": "throttlingException"});
    let events = ok_text(app.chat(body).send().await.unwrap()).await;
    let last = data_lines(&events).pop().unwrap();
    assert_eq!(last["error"]["type"], "rate_limit_error", "{events}");
    assert!(!events.contains("[DONE]"), "{events}");
    app.stop().await;
}

#[tokio::test]
async fn the_admin_api_takes_a_bedrock_provider_and_keeps_the_aws_secret_write_only() {
    let app = spawn_bedrock().await;
    let token = app.admin_token().await;
    let post = |path: &str, body: Value| {
        app.admin(reqwest::Method::POST, path, &token)
            .json(&body)
            .send()
    };
    let created = post(
        "/admin/providers",
        json!({"name": "aws-west", "kind": "bedrock", "region": "us-west-2"}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let provider: Value = created.json().await.unwrap();
    assert_eq!(
        provider["base_url"],
        "https://bedrock-runtime.us-west-2.amazonaws.com"
    );
    // A Bedrock provider needs its region.
    let refused = post(
        "/admin/providers",
        json!({"name": "aws-nowhere", "kind": "bedrock"}),
    )
    .await
    .unwrap();
    crate::helpers::assert_error(refused, 400, "invalid_request").await;

    let account = post(
        "/admin/accounts",
        json!({"provider": "aws-west", "name": "aws2", "aws_access_key_id": KEY_ID,
               "aws_secret_access_key": SECRET, "aws_session_token": SESSION_TOKEN}),
    )
    .await
    .unwrap();
    assert_eq!(account.status(), 201);
    let text = account.text().await.unwrap();
    assert!(
        !text.contains(SECRET) && !text.contains(SESSION_TOKEN),
        "{text}"
    );
    let account: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(account["api_key_hint"], KEY_ID);
    // The key id alone is not a credential.
    let refused = post(
        "/admin/accounts",
        json!({"provider": "aws-west", "name": "aws3", "aws_access_key_id": KEY_ID}),
    )
    .await
    .unwrap();
    crate::helpers::assert_error(refused, 400, "invalid_request").await;
    // The accounts of the config file show their key id too.
    let listed = app.admin_json("/admin/accounts", &token).await;
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|account| account["name"] == "aws-main" && account["api_key_hint"] == KEY_ID),
        "{listed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn max_tokens_is_shaped_to_the_bedrock_model_s_maximum() {
    let app = spawn_bedrock().await;
    let mut body = chat_body("haiku-bedrock", "long answer");
    body["max_tokens"] = json!(100_000);
    let response = app.chat(body).send().await.unwrap();
    assert!(response.headers().get("x-llmgate-shaped").is_some());
    ok_json(response).await;
    let sent = bedrock_requests(&app).pop().unwrap();
    assert_eq!(
        sent.path,
        "/bedrock/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    let converse: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(converse["inferenceConfig"]["maxTokens"], 8192);
    app.stop().await;
}

#[tokio::test]
async fn an_account_that_cannot_sign_is_refused_like_a_credential_before_anything_is_sent() {
    let app = spawn_bedrock().await;
    for _ in 0..2 {
        let response = app
            .chat(chat_body("bedrock-unsigned", "hi"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_server_error(), "{}", response.status());
        let body: Value = response.json().await.unwrap();
        assert!(
            !body.to_string().contains("sk-not-an-aws-key"),
            "the credential is not echoed: {body}"
        );
    }
    assert!(bedrock_requests(&app).is_empty());
    app.stop().await;
}

//! Stored responses of the Responses API: `store` (default true), `previous_response_id`,
//! `GET`/`DELETE /v1/responses/{id}`, `input_items`, key isolation and retention.

use std::time::Duration;

use llmgate::auth::NewKey;
use llmgate::usage::retention::{Expiring, purge};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, TestOptions, assert_error, spawn_with};

/// The default `mock` provider (openai, `gpt-test`) plus an anthropic (`claude-test`) and a
/// gemini one, on a manual clock, keeping responses for `retention`.
async fn spawn_store(retention: Duration) -> TestApp {
    let mut options = TestOptions {
        extra_config: crate::responses::provider_kinds(),
        manual_clock: true,
        ..TestOptions::default()
    };
    options.settings.responses_retention = retention;
    spawn_with(options).await
}

const DAY: Duration = Duration::from_secs(24 * 3600);

/// `POST /v1/responses` with the test key; the answer's JSON (asserting a 200).
async fn create(app: &TestApp, body: Value) -> Value {
    let response = app.post("/v1/responses", body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn get(app: &TestApp, path: &str, key: &str) -> reqwest::RequestBuilder {
    app.client.get(app.url(path)).bearer_auth(key)
}

/// The `response` of the event of type `kind` in a streamed answer to `body`.
async fn streamed(app: &TestApp, body: Value, kind: &str) -> Value {
    let text = app
        .post("/v1/responses", body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|event| event["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {text}"))["response"]
        .take()
}

/// `GET /v1/responses/{id}` with the test key; the response object (asserting a 200).
async fn retrieve(app: &TestApp, id: &str) -> Value {
    let response = get(app, &format!("/v1/responses/{id}"), &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `DELETE /v1/responses/{id}` with `key`.
async fn delete(app: &TestApp, id: &str, key: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/v1/responses/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// The chat messages of the last request the mock got on `path`.
fn last_messages(app: &TestApp, path: &str) -> Vec<Value> {
    crate::responses::last_request_to(app, path)["messages"]
        .as_array()
        .unwrap()
        .clone()
}

/// Each message as `role: text` (text parts and tool calls flattened), for comparing
/// conversations.
fn transcript(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|message| {
            let content = match &message["content"] {
                Value::String(text) => text.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .map(|part| {
                        part["text"]
                            .as_str()
                            .or(part["content"].as_str())
                            .map_or_else(|| part["type"].to_string(), str::to_owned)
                    })
                    .collect::<Vec<_>>()
                    .join("|"),
                other => other.to_string(),
            };
            format!("{}: {content}", message["role"].as_str().unwrap_or("?"))
        })
        .collect()
}

#[tokio::test]
async fn a_response_is_stored_by_default_and_read_back_as_it_was_answered() {
    let app = spawn_store(DAY * 30).await;
    let created = create(
        &app,
        json!({"model": "gpt-test", "input": "one two", "mock": {"chunks": 2}}),
    )
    .await;
    assert_eq!(created["store"], true);
    let id = created["id"].as_str().unwrap();
    // Readable at once, before the usage writer wrote anything.
    let read = get(&app, &format!("/v1/responses/{id}"), &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["content-type"], "application/json");
    assert_eq!(read.json::<Value>().await.unwrap(), created);
    // And from the database once written.
    app.flush_usage().await;
    let read = retrieve(&app, id).await;
    assert_eq!(read, created);
    app.stop().await;
}

#[tokio::test]
async fn store_false_keeps_nothing() {
    let app = spawn_store(DAY * 30).await;
    let created = create(
        &app,
        json!({"model": "gpt-test", "input": "secret", "store": false}),
    )
    .await;
    assert_eq!(created["store"], false);
    let id = created["id"].as_str().unwrap();
    app.flush_usage().await;
    let read = get(&app, &format!("/v1/responses/{id}"), &app.key)
        .send()
        .await
        .unwrap();
    let body = assert_error(read, 404, "not_found").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains(id),
        "{body}"
    );
    let next = app
        .post(
            "/v1/responses",
            json!({"model": "gpt-test", "input": "again", "previous_response_id": id}),
        )
        .send()
        .await
        .unwrap();
    let body = assert_error(next, 400, "previous_response_not_found").await;
    assert_eq!(body["error"]["param"], "previous_response_id");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    app.stop().await;
}

#[tokio::test]
async fn previous_response_id_sends_the_whole_chain_before_the_new_input() {
    let app = spawn_store(DAY * 30).await;
    for (model, path) in [
        ("gpt-test", "/v1/chat/completions"),
        ("claude-test", "/v1/messages"),
    ] {
        let first = create(
            &app,
            json!({"model": model, "instructions": "be brief", "input": "one two"}),
        )
        .await;
        // The first turn is read from the database, the second from memory.
        app.flush_usage().await;
        let second = create(
            &app,
            json!({"model": model, "input": [{"role": "user", "content": "three"}],
                   "previous_response_id": first["id"]}),
        )
        .await;
        assert_eq!(second["previous_response_id"], first["id"]);
        assert_eq!(second["output"][0]["content"][0]["text"], "echo: three");
        let third = create(
            &app,
            json!({"model": model, "input": "four", "previous_response_id": second["id"]}),
        )
        .await;
        assert_eq!(third["status"], "completed", "{third}");
        let mut seen = transcript(&last_messages(&app, path));
        // Anthropic's system prompt is not a message; chat's is, and only this turn's.
        if seen.first().is_some_and(|m| m.starts_with("system")) {
            seen.remove(0);
        }
        assert_eq!(
            seen,
            [
                "user: one two",
                "assistant: echo: one two",
                "user: three",
                "assistant: echo: three",
                "user: four",
            ],
            "{model}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_function_call_round_trips_through_previous_response_id() {
    let app = spawn_store(DAY * 30).await;
    let tools = json!([{"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    for (model, path) in [
        ("gpt-test", "/v1/chat/completions"),
        ("claude-test", "/v1/messages"),
    ] {
        let first = create(
            &app,
            json!({"model": model, "input": "weather in Paris", "tools": tools,
                   "mock": {"tool_calls": 1}}),
        )
        .await;
        let call = crate::responses::function_call_of(&first);
        let call_id = call["call_id"].as_str().unwrap();
        let second = create(
            &app,
            json!({"model": model, "tools": tools, "previous_response_id": first["id"],
                   "input": [{"type": "function_call_output", "call_id": call_id, "output": "sunny"}]}),
        )
        .await;
        assert_eq!(second["status"], "completed", "{model}: {second}");
        let sent = json!(last_messages(&app, path)).to_string();
        assert!(
            sent.contains("weather in Paris") && sent.contains(call_id) && sent.contains("sunny"),
            "{model}: {sent}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_streamed_response_is_stored_before_its_last_event_and_continued_at_once() {
    let app = spawn_store(DAY * 30).await;
    let response = &streamed(
        &app,
        json!({"model": "gpt-test", "input": "alpha beta", "stream": true, "mock": {"chunks": 3}}),
        "response.completed",
    )
    .await;
    let id = response["id"].as_str().unwrap();
    // The very next turn continues it: no wait for the usage writer.
    let next = create(
        &app,
        json!({"model": "gpt-test", "input": "gamma", "previous_response_id": id}),
    )
    .await;
    assert_eq!(next["status"], "completed", "{next}");
    assert_eq!(
        transcript(&last_messages(&app, "/v1/chat/completions")),
        [
            "user: alpha beta",
            "assistant: echo: alpha beta",
            "user: gamma"
        ]
    );
    let read = retrieve(&app, id).await;
    assert_eq!(&read, response);

    // A stream that fails is stored with its status, as OpenAI keeps failed responses.
    let failed = streamed(
        &app,
        json!({"model": "gpt-test", "input": "one two three four", "stream": true,
               "mock": {"chunks": 6, "cut_after": 2}}),
        "response.failed",
    )
    .await;
    let id = failed["id"].as_str().unwrap();
    let read = retrieve(&app, id).await;
    assert_eq!(read["status"], "failed", "{read}");
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_response_is_gone_for_every_read() {
    let app = spawn_store(DAY * 30).await;
    // One deleted while it waits in memory, one once written.
    for flush_first in [false, true] {
        let created = create(&app, json!({"model": "gpt-test", "input": "bye"})).await;
        let id = created["id"].as_str().unwrap();
        if flush_first {
            app.flush_usage().await;
        }
        let path = format!("/v1/responses/{id}");
        let deleted = delete(&app, id, &app.key).await;
        assert_eq!(deleted.status(), 200);
        assert_eq!(
            deleted.json::<Value>().await.unwrap(),
            json!({"id": id, "object": "response", "deleted": true})
        );
        for _ in 0..2 {
            let read = get(&app, &path, &app.key).send().await.unwrap();
            assert_error(read, 404, "not_found").await;
            let items = get(&app, &format!("{path}/input_items"), &app.key)
                .send()
                .await
                .unwrap();
            assert_error(items, 404, "not_found").await;
            let again = delete(&app, id, &app.key).await;
            assert_error(again, 404, "not_found").await;
            // The same once the deletion is written.
            app.flush_usage().await;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn input_items_are_listed_in_pages_as_openai_lists_them() {
    let app = spawn_store(DAY * 30).await;
    let created = create(
        &app,
        json!({"model": "gpt-test", "input": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "c"}]},
            {"role": "user", "content": "d"},
            {"role": "user", "content": "e"}
        ]}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let page = |query: String| {
        let request = get(
            &app,
            &format!("/v1/responses/{id}/input_items{query}"),
            &app.key,
        );
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let texts = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["content"][0]["text"].as_str().unwrap().to_owned())
            .collect()
    };
    // Newest first by default, every item with an id and in item form.
    let all = page(String::new()).await;
    assert_eq!(all["object"], "list");
    assert_eq!(texts(&all), ["e", "d", "c", "b", "a"]);
    assert_eq!(all["has_more"], false);
    assert_eq!(all["data"][3]["content"][0]["type"], "output_text");
    assert!(
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["type"] == "message" && item["id"].is_string())
    );
    assert_eq!(all["first_id"], all["data"][0]["id"]);
    assert_eq!(all["last_id"], all["data"][4]["id"]);

    let first = page("?limit=2&order=asc".into()).await;
    assert_eq!(texts(&first), ["a", "b"]);
    assert_eq!(first["has_more"], true);
    let after = first["last_id"].as_str().unwrap();
    let second = page(format!("?limit=2&order=asc&after={after}")).await;
    assert_eq!(texts(&second), ["c", "d"]);
    let after = second["last_id"].as_str().unwrap();
    let last = page(format!("?limit=2&order=asc&after={after}")).await;
    assert_eq!(texts(&last), ["e"]);
    assert_eq!(last["has_more"], false);

    let bad = get(
        &app,
        &format!("/v1/responses/{id}/input_items?limit=0"),
        &app.key,
    )
    .send()
    .await
    .unwrap();
    assert_error(bad, 400, "invalid_request").await;
    app.stop().await;
}

#[tokio::test]
async fn another_key_sees_nothing_of_a_stored_response() {
    let app = spawn_store(DAY * 30).await;
    let other = app
        .create_key(NewKey {
            name: "other".into(),
            ..NewKey::default()
        })
        .await;
    let created = create(&app, json!({"model": "gpt-test", "input": "mine"})).await;
    let id = created["id"].as_str().unwrap();
    let never = "resp_0123456789abcdef0123456789abcdef";
    for flush in [false, true] {
        if flush {
            app.flush_usage().await;
        }
        // The same answers as for an id that never existed.
        for probe in [id, never] {
            let path = format!("/v1/responses/{probe}");
            let read = get(&app, &path, &other).send().await.unwrap();
            let body = assert_error(read, 404, "not_found").await;
            assert!(body["error"]["message"].as_str().unwrap().contains(probe));
            let items = get(&app, &format!("{path}/input_items"), &other)
                .send()
                .await
                .unwrap();
            assert_error(items, 404, "not_found").await;
            let deleted = delete(&app, probe, &other).await;
            assert_error(deleted, 404, "not_found").await;
            let next = app
                .client
                .post(app.url("/v1/responses"))
                .bearer_auth(&other)
                .json(&json!({"model": "gpt-test", "input": "x", "previous_response_id": probe}))
                .send()
                .await
                .unwrap();
            assert_error(next, 400, "previous_response_not_found").await;
        }
    }
    // The owner still has it: the other key's DELETE changed nothing.
    let read = get(&app, &format!("/v1/responses/{id}"), &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    // No key at all: the key is asked for first.
    let anonymous = app
        .client
        .get(app.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_response_past_its_retention_is_not_found_then_deleted() {
    let retention = Duration::from_secs(3600);
    let app = spawn_store(retention).await;
    let created = create(&app, json!({"model": "gpt-test", "input": "old"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    create(&app, json!({"model": "gpt-test", "input": "old too"})).await;
    let path = format!("/v1/responses/{id}");
    app.advance(Duration::from_secs(1800));
    let read = get(&app, &path, &app.key).send().await.unwrap();
    assert_eq!(read.status(), 200);

    // Past the retention, from memory and from the database alike.
    app.advance(Duration::from_secs(1801));
    let read = get(&app, &path, &app.key).send().await.unwrap();
    assert_error(read, 404, "not_found").await;
    app.flush_usage().await;
    let read = get(&app, &path, &app.key).send().await.unwrap();
    assert_error(read, 404, "not_found").await;
    let next = app
        .post(
            "/v1/responses",
            json!({"model": "gpt-test", "input": "x", "previous_response_id": id}),
        )
        .send()
        .await
        .unwrap();
    assert_error(next, 400, "previous_response_not_found").await;

    // The retention task's purge deletes what is past it, and only that.
    let stop = CancellationToken::new();
    let now_ms = app.now().timestamp_millis();
    let purged = purge(&app.db, Expiring::StoredResponses, retention, now_ms, &stop)
        .await
        .unwrap();
    assert_eq!(purged, 2);
    let fresh = create(&app, json!({"model": "gpt-test", "input": "fresh"})).await;
    app.flush_usage().await;
    let purged = purge(&app.db, Expiring::StoredResponses, retention, now_ms, &stop)
        .await
        .unwrap();
    assert_eq!(purged, 0);
    let read = get(
        &app,
        &format!("/v1/responses/{}", fresh["id"].as_str().unwrap()),
        &app.key,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(read.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn an_earlier_turn_that_is_gone_breaks_the_chain_with_a_clear_error() {
    let app = spawn_store(DAY * 30).await;
    let first = create(&app, json!({"model": "gpt-test", "input": "one"})).await;
    let second = create(
        &app,
        json!({"model": "gpt-test", "input": "two", "previous_response_id": first["id"]}),
    )
    .await;
    app.flush_usage().await;
    let first_id = first["id"].as_str().unwrap();
    let deleted = delete(&app, first_id, &app.key).await;
    assert_eq!(deleted.status(), 200);
    for _ in 0..2 {
        let next = app
            .post(
                "/v1/responses",
                json!({"model": "gpt-test", "input": "three", "previous_response_id": second["id"]}),
            )
            .send()
            .await
            .unwrap();
        let body = assert_error(next, 400, "previous_response_not_found").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(first_id), "{body}");
        app.flush_usage().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn responses_still_in_memory_at_shutdown_are_written_before_it_ends() {
    let app = spawn_store(DAY * 30).await;
    let created = create(&app, json!({"model": "gpt-test", "input": "last words"})).await;
    let streamed_id = streamed(
        &app,
        json!({"model": "gpt-test", "input": "streamed words", "stream": true}),
        "response.completed",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (db_url, key) = (app.db_url.clone(), app.key.clone());
    // No flush: the usage writer's last batch at shutdown writes them.
    let _dir = app.stop_keeping_files().await;
    let db = llmgate::db::Db::open(&db_url).await.unwrap();
    let key_id = db
        .key_by_hash(&llmgate::auth::KeyHash::of(&key).to_hex())
        .await
        .unwrap()
        .unwrap()
        .id;
    for id in [created["id"].as_str().unwrap(), &streamed_id] {
        let row = db.stored_response(id, key_id).await.unwrap();
        let row = row.unwrap_or_else(|| panic!("{id} was not written at shutdown"));
        let response: Value = serde_json::from_slice(&row.response).unwrap();
        assert_eq!(response["id"], id);
    }
    db.close().await;
}

#[tokio::test]
async fn other_paths_under_responses_stay_unknown_endpoints() {
    let app = spawn_store(DAY * 30).await;
    let created = create(&app, json!({"model": "gpt-test", "input": "x"})).await;
    let id = created["id"].as_str().unwrap();
    for (method, path) in [
        (reqwest::Method::GET, "/v1/responses".to_owned()),
        (reqwest::Method::POST, format!("/v1/responses/{id}")),
        (reqwest::Method::POST, format!("/v1/responses/{id}/cancel")),
        (
            reqwest::Method::GET,
            format!("/v1/responses/{id}/input_items/x"),
        ),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 404, "not_found").await;
        let message = body["error"]["message"].as_str().unwrap();
        // The path is echoed (shortened past a few dozen characters).
        assert!(
            message.starts_with(&format!("Unknown endpoint {method} /v1/responses")),
            "{body}"
        );
    }
    app.stop().await;
}

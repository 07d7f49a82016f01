//! Fixture-driven tests of the Responses translation.
//!
//! Inputs and expected outputs live under `fixtures/responses/` (chat inputs shared with the
//! other translators under `fixtures/openai/`). Streams are fed whole, split at every byte
//! position, and one byte at a time: the output must be the same every time, made of whole
//! events only. Every stream output is also replayed the way the OpenAI SDKs accumulate it and
//! checked against the event grammar (see [`replay`]).
//!
//! `LLMGATE_BLESS=1 cargo test translate::responses` rewrites the expected files from the
//! current output; review the diff before committing it.

use serde_json::{Value, json};

use super::*;
use crate::pricing::ModelLimits;
use crate::translate::StreamTranslator as _;
use crate::translate::tests::{Fixture, check_json, feed, fixture};
use crate::usage::Usage;

const CREATED: i64 = 1_700_000_000;
const ID: &str = "resp_test";

fn call_for(request: &str) -> ResponsesCall {
    responses_request_to_chat(request.as_bytes(), &[], ModelLimits::UNKNOWN)
        .unwrap()
        .1
}

/// A plain streamed request: small echoes keep the stream fixtures readable.
fn plain_call() -> ResponsesCall {
    call_for(r#"{"model":"gpt-test","input":"hi","stream":true}"#)
}

fn namespace_call() -> ResponsesCall {
    call_for(
        r#"{"model":"gpt-test","input":"hi","stream":true,"tools":[
            {"type":"namespace","name":"multi_agent_v1","description":"","tools":[
                {"type":"function","name":"spawn_agent","parameters":{"type":"object"}}]},
            {"type":"function","name":"mcp__docs__search","parameters":{"type":"object"}}]}"#,
    )
}

// ---------------------------------------------------------------------------------------------
// Requests.

fn chat_of(body: &str, history: &[&[u8]]) -> (Value, ResponsesCall) {
    let (chat, call) =
        responses_request_to_chat(body.as_bytes(), history, ModelLimits::UNKNOWN).unwrap();
    (serde_json::from_slice(&chat).unwrap(), call)
}

#[test]
fn a_codex_request_becomes_a_chat_request() {
    let fixture = fixture!("responses/request_codex.json" => "responses/request_codex.chat.json");
    let (chat, call) =
        responses_request_to_chat(fixture.input.as_bytes(), &[], ModelLimits::UNKNOWN).unwrap();
    let chat = check_json(&fixture, &chat);
    assert!(call.stream);
    assert!(!call.store, "Codex sends store: false");
    assert_eq!(call.model, "gpt-5-codex");
    assert_eq!(call.dropped_tools, ["custom:apply_patch", "web_search"]);
    assert_eq!(
        call.function("multi_agent_v1__spawn_agent"),
        ("spawn_agent".to_owned(), Some("multi_agent_v1".to_owned()))
    );
    // Codex's MCP tools have `__` in their plain names; they are not split.
    assert_eq!(
        call.function("mcp__docs__search"),
        ("mcp__docs__search".to_owned(), None)
    );
    let names: Vec<&str> = chat["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "shell_command",
            "update_plan",
            "view_image",
            "mcp__docs__search",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__wait"
        ]
    );
}

/// Codex's request (`reasoning: {effort, summary}`, no cap) to a model without reasoning:
/// the effort is left out, for a chat upstream and for one of another dialect behind it.
#[test]
fn a_codex_request_to_a_model_without_reasoning_is_shaped() {
    let codex = include_str!("../fixtures/responses/request_codex.json");
    let gpt_4o = ModelLimits::of("gpt-4o");
    let (chat, _) = responses_request_to_chat(codex.as_bytes(), &[], gpt_4o).unwrap();
    let chat: Value = serde_json::from_slice(&chat).unwrap();
    assert!(chat.get("reasoning_effort").is_none(), "{chat}");
    assert!(chat.get("max_completion_tokens").is_none());
    let (unshaped, _) = chat_of(codex, &[]);
    assert_eq!(unshaped["reasoning_effort"], "medium");

    // A cap above the maximum is lowered; a reasoning model keeps its effort.
    let mut capped: Value = serde_json::from_str(codex).unwrap();
    capped["max_output_tokens"] = json!(50_000);
    let capped = capped.to_string();
    let (chat, _) = responses_request_to_chat(capped.as_bytes(), &[], gpt_4o).unwrap();
    let chat: Value = serde_json::from_slice(&chat).unwrap();
    assert_eq!(chat["max_completion_tokens"], 16_384);
    let gpt_5_codex = ModelLimits::of("gpt-5-codex");
    let (chat, _) = responses_request_to_chat(capped.as_bytes(), &[], gpt_5_codex).unwrap();
    let chat: Value = serde_json::from_slice(&chat).unwrap();
    assert_eq!(chat["max_completion_tokens"], 50_000);
    assert_eq!(chat["reasoning_effort"], "medium");

    // To Gemini 2.0 Flash, by way of chat: no thinking budget.
    let flash = ModelLimits::of("gemini-2.0-flash");
    let (chat, _) = responses_request_to_chat(capped.as_bytes(), &[], flash).unwrap();
    let (gemini, _) = crate::translate::gemini::chat_request_to_gemini(&chat, flash).unwrap();
    let config = &serde_json::from_slice::<Value>(&gemini).unwrap()["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 8_192);
    assert!(config.get("thinkingConfig").is_none(), "{config}");
}

#[test]
fn sdk_items_become_chat_messages() {
    let fixture = fixture!("responses/request_items.json" => "responses/request_items.chat.json");
    let (chat, call) =
        responses_request_to_chat(fixture.input.as_bytes(), &[], ModelLimits::UNKNOWN).unwrap();
    check_json(&fixture, &chat);
    assert!(!call.stream && call.store);
    assert_eq!(
        call.dropped_tools,
        ["file_search", "code_interpreter", "mcp"]
    );
}

#[test]
fn a_string_input_is_one_user_message_and_absent_settings_stay_out() {
    let (chat, call) = chat_of(
        r#"{"model":"m","input":"Hello","parallel_tool_calls":true,"tool_choice":"auto"}"#,
        &[],
    );
    assert_eq!(
        chat,
        json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}]})
    );
    assert!(call.dropped_tools.is_empty());
    // Reasoning-only history items leave nothing behind; an empty input is refused.
    let error = responses_request_to_chat(
        br#"{"model":"m","input":[{"type":"reasoning","summary":[]}]}"#,
        &[],
        ModelLimits::UNKNOWN,
    )
    .unwrap_err();
    assert!(error.is_client_error(), "{error}");
}

#[test]
fn history_comes_before_the_new_input_and_namespaced_calls_round_trip() {
    let first = r#"{"model":"m","instructions":"Be brief.","input":"Spawn a helper.","store":true,"tools":[
        {"type":"namespace","name":"multi_agent_v1","description":"Agents.","tools":[
            {"type":"function","name":"spawn_agent","parameters":{"type":"object"}}]}]}"#;
    let (_, call) = chat_of(first, &[]);
    let answer = br#"{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"On it.",
        "tool_calls":[{"id":"call_1","type":"function","function":{"name":"multi_agent_v1__spawn_agent","arguments":"{}"}}]},
        "finish_reason":"tool_calls"}]}"#;
    let response = chat_response_to_responses(answer, &call, "resp_one", CREATED).unwrap();
    let response_json: Value = serde_json::from_slice(&response).unwrap();
    assert_eq!(
        response_json["output"][1],
        json!({"id": "fc_one_1", "type": "function_call", "status": "completed",
               "arguments": "{}", "call_id": "call_1", "name": "spawn_agent",
               "namespace": "multi_agent_v1"})
    );
    let turn = stored_turn(first.as_bytes(), &response).unwrap();
    let second = r#"{"model":"m","previous_response_id":"resp_one","instructions":"Be brief.","input":[
        {"type":"function_call_output","call_id":"call_1","output":"agent-7"}],"tools":[
        {"type":"namespace","name":"multi_agent_v1","description":"Agents.","tools":[
            {"type":"function","name":"spawn_agent","parameters":{"type":"object"}}]}]}"#;
    let (chat, call) = chat_of(second, &[&turn]);
    assert_eq!(call.previous_response_id(), Some("resp_one"));
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Spawn a helper."},
            {"role": "assistant", "content": "On it.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "multi_agent_v1__spawn_agent", "arguments": "{}"}}]},
            {"role": "tool", "content": "agent-7", "tool_call_id": "call_1"}
        ])
    );
    let broken: &[u8] = b"{";
    let error =
        responses_request_to_chat(second.as_bytes(), &[broken], ModelLimits::UNKNOWN).unwrap_err();
    assert!(error.to_string().contains("stored conversation"), "{error}");
}

#[test]
fn tool_choices_map_and_forcing_a_hosted_tool_is_refused() {
    let tools = r#""tools":[{"type":"function","name":"f"},{"type":"web_search"},
        {"type":"namespace","name":"ns","description":"","tools":[{"type":"function","name":"g"}]}]"#;
    let cases: &[(&str, Value)] = &[
        (r#""auto""#, json!("auto")),
        (r#""none""#, json!("none")),
        (r#""required""#, json!("required")),
        (
            r#"{"type":"function","name":"f"}"#,
            json!({"type": "function", "function": {"name": "f"}}),
        ),
        (
            r#"{"type":"function","name":"g","namespace":"ns"}"#,
            json!({"type": "function", "function": {"name": "ns__g"}}),
        ),
    ];
    for (choice, expected) in cases {
        let body = format!(r#"{{"model":"m","input":"x",{tools},"tool_choice":{choice}}}"#);
        let (chat, _) = chat_of(&body, &[]);
        assert_eq!(&chat["tool_choice"], expected, "{choice}");
    }
    let refused: &[(&str, &str, &str)] = &[
        (tools, r#"{"type":"web_search"}"#, "only OpenAI hosts"),
        (
            tools,
            r#"{"type":"custom","name":"apply_patch"}"#,
            "'apply_patch'",
        ),
        (
            r#""tools":[{"type":"file_search"}]"#,
            r#""required""#,
            "file_search",
        ),
        (r#""tools":[]"#, r#""required""#, "offers no tools"),
        (tools, r#"{"type":"function","name":"nope"}"#, "'nope'"),
        (tools, r#""sometimes""#, "\"sometimes\""),
        (
            tools,
            r#"{"type":"allowed_tools","mode":"auto","tools":[{"type":"function","name":"f"}]}"#,
            "'allowed_tools'",
        ),
    ];
    for (tools, choice, says) in refused {
        let body = format!(r#"{{"model":"m","input":"x",{tools},"tool_choice":{choice}}}"#);
        let error =
            responses_request_to_chat(body.as_bytes(), &[], ModelLimits::UNKNOWN).unwrap_err();
        assert!(error.is_client_error(), "{choice}: {error}");
        assert!(error.to_string().contains(says), "{choice}: {error}");
    }
}

#[test]
fn text_formats_and_reasoning_map_to_chat() {
    let cases: &[(&str, Value)] = &[
        (r#""text":{"format":{"type":"text"}}"#, Value::Null),
        (
            r#""text":{"format":{"type":"json_object"}}"#,
            json!({"type": "json_object"}),
        ),
        (
            r#""text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object"}}}"#,
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}),
        ),
    ];
    for (text, expected) in cases {
        let body =
            format!(r#"{{"model":"m","input":"x",{text},"reasoning":{{"effort":"minimal"}}}}"#);
        let (chat, _) = chat_of(&body, &[]);
        assert_eq!(&chat["response_format"], expected, "{text}");
        assert_eq!(chat["reasoning_effort"], "minimal");
    }
}

#[test]
fn requests_llmgate_cannot_translate_are_client_errors_that_say_what_to_do() {
    let cases: &[(&str, &str)] = &[
        ("{", "not valid JSON"),
        (r#"{"model":"m","input":5}"#, "a string or an array"),
        (
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}"#,
            "file_id",
        ),
        (
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}"#,
            "file_id",
        ),
        (
            r#"{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}"#,
            "input[0] is a 'item_reference' item",
        ),
        (
            r#"{"model":"m","input":[{"type":"web_search_call","id":"ws_1"}]}"#,
            "'web_search_call'",
        ),
        (
            r#"{"model":"m","input":[{"role":"tool","content":"x"}]}"#,
            "input[0].role is 'tool'",
        ),
        (
            r#"{"model":"m","input":[{"role":"assistant","content":[{"type":"input_image","image_url":"https://x/y.png"}]}]}"#,
            "only user messages",
        ),
        (
            r#"{"model":"m","input":"x","background":true}"#,
            "'background' mode",
        ),
        (
            r#"{"model":"m","input":"x","conversation":"conv_1"}"#,
            "'conversation'",
        ),
        (
            r#"{"model":"m","input":"x","prompt":{"id":"pmpt_1"}}"#,
            "'prompt'",
        ),
        (
            r#"{"model":"m","input":"x","tools":[{"type":"function","name":"a__b"},
                {"type":"namespace","name":"a","description":"","tools":[{"type":"function","name":"b"}]}]}"#,
            "'a__b'",
        ),
        (
            r#"{"model":"m","input":"x","tools":[{"type":"function"}]}"#,
            "without a 'name'",
        ),
        (
            r#"{"model":"m","input":"x","text":{"format":{"type":"grammar"}}}"#,
            "'grammar'",
        ),
        (
            r#"{"model":"m","input":"x","tools":{"type":"function"}}"#,
            "'tools'",
        ),
    ];
    for (body, says) in cases {
        let error =
            responses_request_to_chat(body.as_bytes(), &[], ModelLimits::UNKNOWN).unwrap_err();
        assert!(error.is_client_error(), "{body}: {error}");
        assert!(error.to_string().contains(says), "{body}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Whole answers.

#[test]
fn chat_answers_become_response_objects() {
    let tools_call = call_for(
        r#"{"model":"gpt-test","input":"weather?","tools":[{"type":"function","name":"get_weather"},
            {"type":"function","name":"get_time"},{"type":"web_search_preview"}],
            "temperature":0.5,"max_output_tokens":100,"metadata":{"k":"v"},"store":false}"#,
    );
    let fixtures = [
        (
            fixture!("openai/response_text.json" => "responses/response_text.json"),
            plain_call(),
        ),
        (
            fixture!("openai/response_tools.json" => "responses/response_tools.json"),
            tools_call,
        ),
        (
            fixture!("openai/response_filtered.json" => "responses/response_filtered.json"),
            plain_call(),
        ),
        (
            fixture!("responses/chat_response_reasoning_length.json" => "responses/response_reasoning_length.json"),
            plain_call(),
        ),
    ];
    for (fixture, call) in fixtures {
        let body =
            chat_response_to_responses(fixture.input.as_bytes(), &call, ID, CREATED).unwrap();
        let response = check_json(&fixture, &body);
        assert!(
            response.get("output_text").is_none(),
            "output_text is the SDK's"
        );
    }
}

#[test]
fn unreadable_answers_are_upstream_errors() {
    for body in ["{", r#"{"choices":[]}"#, r#"{"choices":"x"}"#] {
        let error =
            chat_response_to_responses(body.as_bytes(), &plain_call(), ID, CREATED).unwrap_err();
        assert!(!error.is_client_error(), "{body}: {error}");
    }
}

#[test]
fn upstream_errors_keep_openai_s_error_shape() {
    let body = br#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
    let out: Value = serde_json::from_slice(&chat_error_to_responses(400, body)).unwrap();
    assert_eq!(
        out,
        json!({"error": {"message": "This model's maximum context length is 8192 tokens.",
                         "type": "invalid_request_error", "param": null,
                         "code": "context_length_exceeded"}})
    );
    let out: Value =
        serde_json::from_slice(&chat_error_to_responses(429, b"<html>busy</html>")).unwrap();
    assert_eq!(out["error"]["type"], "rate_limit_error");
    assert_eq!(out["error"]["code"], Value::Null);
    let out: Value = serde_json::from_slice(&chat_error_to_responses(
        500,
        br#"{"error":{"message":"boom","code":500}}"#,
    ))
    .unwrap();
    assert_eq!(out["error"]["message"], "boom");
    assert_eq!(out["error"]["type"], "api_error");
}

// ---------------------------------------------------------------------------------------------
// Streams.

/// Runs a stream fixture whole, split at every byte, and byte by byte; compares the output with
/// the expected file and replays it. Returns the final response the replay saw.
fn check_stream(fixture: &Fixture, call: &ResponsesCall) -> Value {
    let make = || ChatToResponsesStream::new(call, ID, CREATED);
    let input = fixture.input.as_bytes();
    let whole = crate::translate::tests::check_stream(fixture, make);
    let response = replay(&whole);
    let mut stream = make();
    stream.push(input);
    stream.finish();
    let stored: Value = serde_json::from_slice(stream.response().unwrap()).unwrap();
    assert_eq!(stored, response, "the stored response is the last event's");
    response
}

/// Replays a Responses event stream the way the OpenAI SDKs accumulate it, checking the
/// grammar on the way: `event:` names the data's `type`; sequence numbers count up from 0; the
/// stream opens with `response.created` and `response.in_progress`; each item is added (at the
/// next output index) before its parts and deltas, which name its id; every `.done` carries
/// the whole text or arguments its deltas built; one terminal event ends the stream, and a
/// completed response's output is what the deltas built. Returns the terminal event's response.
fn replay(text: &str) -> Value {
    let mut output: Vec<Value> = Vec::new();
    let mut open: Vec<bool> = Vec::new();
    let mut terminal: Option<Value> = None;
    let frames: Vec<&str> = text.split_terminator("\n\n").collect();
    for (sequence, frame) in frames.iter().enumerate() {
        assert!(
            terminal.is_none(),
            "an event after the terminal one: {frame}"
        );
        let (event_line, data_line) = frame.split_once('\n').unwrap();
        assert!(
            !data_line.contains('\n'),
            "an event of more than two lines: {frame}"
        );
        let name = event_line.strip_prefix("event: ").unwrap();
        let event: Value = serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(event["type"], name, "{frame}");
        assert_eq!(event["sequence_number"], sequence, "{frame}");
        assert_ne!(data_line, "data: [DONE]");
        match (sequence, name) {
            (0, "response.created") | (1, "response.in_progress") => {
                assert_eq!(event["response"]["status"], "in_progress");
                assert_eq!(event["response"]["output"], json!([]));
                continue;
            }
            (0 | 1, _) => panic!("the stream must open with created and in_progress: {frame}"),
            _ => {}
        }
        let index = event["output_index"].as_u64().map(|index| index as usize);
        let check_item = |output: &[Value], open: &[bool]| {
            let index = index.unwrap();
            assert!(open[index], "an event for a closed item: {frame}");
            assert_eq!(event["item_id"], output[index]["id"], "{frame}");
            index
        };
        match name {
            "response.output_item.added" => {
                assert_eq!(index, Some(output.len()), "{frame}");
                output.push(event["item"].clone());
                open.push(true);
            }
            "response.content_part.added" => {
                let index = check_item(&output, &open);
                let content = output[index]["content"].as_array_mut().unwrap();
                assert_eq!(event["content_index"], content.len());
                content.push(event["part"].clone());
            }
            "response.reasoning_summary_part.added" => {
                let index = check_item(&output, &open);
                let summary = output[index]["summary"].as_array_mut().unwrap();
                assert_eq!(event["summary_index"], summary.len());
                summary.push(event["part"].clone());
            }
            "response.output_text.delta"
            | "response.output_text.done"
            | "response.content_part.done" => {
                let index = check_item(&output, &open);
                let at = event["content_index"].as_u64().unwrap() as usize;
                let part = &mut output[index]["content"][at];
                match name {
                    "response.output_text.delta" => {
                        let whole = part["text"].as_str().unwrap().to_owned();
                        part["text"] = json!(whole + event["delta"].as_str().unwrap());
                    }
                    "response.output_text.done" => assert_eq!(part["text"], event["text"]),
                    _ => assert_eq!(*part, event["part"]),
                }
            }
            "response.reasoning_summary_text.delta"
            | "response.reasoning_summary_text.done"
            | "response.reasoning_summary_part.done" => {
                let index = check_item(&output, &open);
                let at = event["summary_index"].as_u64().unwrap() as usize;
                let part = &mut output[index]["summary"][at];
                match name {
                    "response.reasoning_summary_text.delta" => {
                        let whole = part["text"].as_str().unwrap().to_owned();
                        part["text"] = json!(whole + event["delta"].as_str().unwrap());
                    }
                    "response.reasoning_summary_text.done" => {
                        assert_eq!(part["text"], event["text"]);
                    }
                    _ => assert_eq!(*part, event["part"]),
                }
            }
            "response.function_call_arguments.delta" => {
                let index = check_item(&output, &open);
                let whole = output[index]["arguments"].as_str().unwrap().to_owned();
                output[index]["arguments"] = json!(whole + event["delta"].as_str().unwrap());
            }
            "response.function_call_arguments.done" => {
                let index = check_item(&output, &open);
                assert_eq!(output[index]["arguments"], event["arguments"], "{frame}");
                assert_eq!(output[index]["name"], event["name"], "{frame}");
            }
            "response.output_item.done" => {
                let index = index.unwrap();
                assert!(open[index], "an item done twice: {frame}");
                let item = &event["item"];
                let built = &output[index];
                assert_eq!(item["id"], built["id"]);
                for member in ["content", "summary", "arguments", "call_id", "name"] {
                    assert_eq!(item.get(member), built.get(member), "{member}: {frame}");
                }
                assert_ne!(item["status"], "in_progress");
                output[index] = item.clone();
                open[index] = false;
            }
            "response.completed" | "response.incomplete" => {
                assert!(open.iter().all(|open| !open), "items left open: {text}");
                assert_eq!(event["response"]["output"], json!(output), "{frame}");
                let expected = if name == "response.completed" {
                    "completed"
                } else {
                    "incomplete"
                };
                assert_eq!(event["response"]["status"], expected);
                terminal = Some(event["response"].clone());
            }
            "response.failed" => {
                assert_eq!(event["response"]["status"], "failed");
                assert!(event["response"]["error"]["message"].is_string(), "{frame}");
                assert!(event["response"]["error"]["code"].is_string(), "{frame}");
                terminal = Some(event["response"].clone());
            }
            other => panic!("an event the Responses API does not send: {other}"),
        }
    }
    terminal.expect("the stream ended without a terminal event")
}

#[test]
fn a_text_stream_becomes_responses_events() {
    let fixture = fixture!("openai/stream_text.sse" => "responses/stream_text.sse");
    let response = check_stream(&fixture, &plain_call());
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "Héllo wörld 🎉, \"quoted\"\né🎉"
    );
    assert_eq!(
        response["usage"],
        json!({"input_tokens": 20, "input_tokens_details": {"cached_tokens": 16},
               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": 27})
    );
    // One text delta per upstream delta, never merged.
    let deltas = fixture
        .expected
        .matches("event: response.output_text.delta")
        .count();
    assert_eq!(deltas, 3);
}

#[test]
fn interleaved_tool_calls_become_well_formed_items() {
    let fixture =
        fixture!("openai/stream_tools_interleaved.sse" => "responses/stream_tools_interleaved.sse");
    let response = check_stream(&fixture, &plain_call());
    let calls: Vec<(&str, &str)> = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "function_call")
        .map(|item| {
            (
                item["call_id"].as_str().unwrap(),
                item["arguments"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("call_a", r#"{"city":"Zürich \"}\" "}"#),
            ("call_b", r#"{"zone":"Europe/Paris"}"#),
            ("call_c", "{}"),
        ]
    );
    assert_eq!(response["status"], "completed");
}

#[test]
fn sequential_tool_calls_close_one_after_the_other() {
    let fixture =
        fixture!("openai/stream_tools_sequential.sse" => "responses/stream_tools_sequential.sse");
    check_stream(&fixture, &plain_call());
    // The first call is done before the second is added, as OpenAI sends them.
    let done = fixture.expected.find("\"output_index\":0,\"item\":{\"type\":\"function_call\",\"id\":\"fc_test_0\",\"status\":\"completed\"");
    let added = fixture.expected.find("\"output_index\":1,\"item\"");
    assert!(done.is_some() && done < added, "{}", fixture.expected);
}

#[test]
fn streamed_reasoning_becomes_a_summary_and_a_length_stop_is_incomplete() {
    let fixture = fixture!("openai/stream_reasoning.sse" => "responses/stream_reasoning.sse");
    let response = check_stream(&fixture, &plain_call());
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(response["output"][0]["summary"][0]["text"], "Thinking…");
    assert_eq!(response["output"][1]["status"], "incomplete");
    assert_eq!(
        response["usage"]["output_tokens_details"]["reasoning_tokens"],
        38
    );
}

#[test]
fn namespaced_calls_stream_back_in_namespace_form() {
    let fixture =
        fixture!("responses/stream_namespace.sse" => "responses/stream_namespace.expected.sse");
    let response = check_stream(&fixture, &namespace_call());
    assert_eq!(response["output"][0]["name"], "spawn_agent");
    assert_eq!(response["output"][0]["namespace"], "multi_agent_v1");
    assert_eq!(response["output"][1]["name"], "mcp__docs__search");
    assert!(response["output"][1].get("namespace").is_none());
    assert_eq!(
        response["usage"]["input_tokens_details"]["cached_tokens"],
        1024
    );
}

#[test]
fn a_stream_cut_or_failing_ends_with_response_failed() {
    let fixture = fixture!("openai/stream_cut.sse" => "responses/stream_cut.sse");
    let response = check_stream(&fixture, &plain_call());
    assert_eq!(response["error"]["code"], "server_error");
    assert_eq!(response["output"][0]["status"], "incomplete");
    assert_eq!(response["output"][0]["content"][0]["text"], "Partial answ");

    let fixture = fixture!("openai/stream_error_frame.sse" => "responses/stream_error_frame.sse");
    let response = check_stream(&fixture, &plain_call());
    assert_eq!(
        response["error"],
        json!({"code": "server_error", "message": "upstream fell silent mid-stream"})
    );

    let fixture = fixture!("openai/stream_no_done.sse" => "responses/stream_no_done.sse");
    let response = check_stream(&fixture, &plain_call());
    assert_eq!(response["status"], "completed");

    let mut stream = ChatToResponsesStream::new(&plain_call(), ID, CREATED);
    let first =
        stream.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n");
    let failed = stream.fail(None, "connection reset");
    assert!(stream.fail(None, "again").is_empty() && stream.finish().is_empty());
    let text = String::from_utf8([first, failed].concat()).unwrap();
    let response = replay(&text);
    assert_eq!(response["error"]["message"], "connection reset");
    assert!(stream.usage().is_none());

    // `[DONE]` ends a stream cleanly even without a `finish_reason` before it.
    let text = feed(
        ChatToResponsesStream::new(&plain_call(), ID, CREATED),
        &[b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n"],
    );
    let response = replay(&text);
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["content"][0]["text"], "Hi");

    // An upstream that closes without a single frame still gets a whole event stream.
    let response = replay(&feed(
        ChatToResponsesStream::new(&plain_call(), ID, CREATED),
        &[],
    ));
    assert_eq!(response["status"], "failed");
}

#[test]
fn error_codes_clients_act_on_pass_through_a_stream() {
    let frames: &[(&str, &str)] = &[
        (
            r#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            "context_length_exceeded",
        ),
        (
            r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#,
            "rate_limit_exceeded",
        ),
        (
            r#"{"error":{"message":"pay","type":"insufficient_quota","code":"insufficient_quota"}}"#,
            "insufficient_quota",
        ),
        (r#"{"error":{"message":"odd","code":17}}"#, "server_error"),
    ];
    for (frame, code) in frames {
        let mut stream = ChatToResponsesStream::new(&plain_call(), ID, CREATED);
        let text = String::from_utf8(
            stream
                .push(format!("data: {frame}\n\n").as_bytes())
                .to_vec(),
        )
        .unwrap();
        assert_eq!(replay(&text)["error"]["code"], *code, "{frame}");
    }
}

#[test]
fn the_stream_reports_usage_for_accounting() {
    let mut stream = ChatToResponsesStream::new(&plain_call(), ID, CREATED);
    stream.push(include_bytes!("../fixtures/openai/stream_reasoning.sse"));
    stream.finish();
    assert_eq!(
        stream.usage(),
        Some(Usage {
            prompt_tokens: 5,
            completion_tokens: 40,
            total_tokens: 45,
            reasoning_tokens: 38,
            ..Usage::default()
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Stored turns.

#[test]
fn a_stored_turn_keeps_normalized_input_and_the_output() {
    let request = br#"{"model":"m","input":[
        {"role":"user","content":"Hi"},
        {"type":"message","role":"assistant","content":"Hello","id":"msg_keep"},
        {"type":"function_call_output","call_id":"c1","output":"ok","extra":1}]}"#;
    let response = br#"{"id":"resp_abc","output":[{"type":"message","id":"msg_abc_0","role":"assistant","status":"completed","content":[]}]}"#;
    let turn: Value = serde_json::from_slice(&stored_turn(request, response).unwrap()).unwrap();
    assert_eq!(
        turn,
        json!({
            "input": [
                {"type": "message", "role": "user", "id": "msg_abc_in0",
                 "content": [{"type": "input_text", "text": "Hi"}]},
                {"type": "message", "role": "assistant", "id": "msg_keep",
                 "content": [{"type": "output_text", "text": "Hello"}]},
                {"type": "function_call_output", "call_id": "c1", "output": "ok", "extra": 1,
                 "id": "fco_abc_in2"}
            ],
            "output": [{"type": "message", "id": "msg_abc_0", "role": "assistant",
                        "status": "completed", "content": []}]
        })
    );
    let string_input = stored_turn(br#"{"input":"Hi"}"#, response).unwrap();
    let turn: Value = serde_json::from_slice(&string_input).unwrap();
    assert_eq!(
        turn["input"][0]["content"][0],
        json!({"type": "input_text", "text": "Hi"})
    );
    assert_eq!(turn["input"][0]["id"], "msg_abc_in0");
}

#[test]
fn a_forwarded_request_carries_its_history_in_input() {
    let first = br#"{"input":[{"type":"message","role":"user","id":"m0","content":[{"type":"input_text","text":"Hi"}]}],
        "output":[{"type":"message","role":"assistant","id":"m1","content":[{"type":"output_text","text":"Hello"}]}]}"#;
    let second = br#"{"input":[{"type":"function_call_output","call_id":"c","output":"ok","id":"f0"}],"output":[]}"#;
    let body = br#"{"model":"pub","input":"Next","previous_response_id":"resp_2","store":true,"x_other":[1]}"#;
    let out: Value = serde_json::from_slice(
        &request_with_history(body, &[first.as_slice(), second.as_slice()], "up").unwrap(),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({
            "model": "up",
            "store": true,
            "x_other": [1],
            "input": [
                {"type": "message", "role": "user", "id": "m0", "content": [{"type": "input_text", "text": "Hi"}]},
                {"type": "message", "role": "assistant", "id": "m1", "content": [{"type": "output_text", "text": "Hello"}]},
                {"type": "function_call_output", "call_id": "c", "output": "ok", "id": "f0"},
                {"role": "user", "content": "Next"}
            ]
        })
    );
    let list = br#"{"model":"pub","input":[{"role":"user","content":"x"}]}"#;
    let out: Value =
        serde_json::from_slice(&request_with_history(list, &[second.as_slice()], "up").unwrap())
            .unwrap();
    assert_eq!(out["input"].as_array().unwrap().len(), 2);
    assert!(request_with_history(br#"{"input":3}"#, &[], "up").is_err());
    assert!(request_with_history(br#"{"input":"x"}"#, &[b"3"], "up").is_err());
}

#[test]
fn the_input_items_of_a_continued_response_include_the_turns_it_continued() {
    let earlier = br#"{"input":[{"id":"a"}],"output":[{"id":"b"},{"id":"c"}]}"#;
    let turn = br#"{"input":[{"id":"d"}],"output":[{"id":"e"}]}"#;
    let page: Value = serde_json::from_slice(
        &input_items_page(&[earlier.as_slice()], turn, &InputItemsQuery::default()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        page["data"],
        json!([{"id": "d"}, {"id": "c"}, {"id": "b"}, {"id": "a"}])
    );
}

#[test]
fn input_items_are_listed_in_pages() {
    let turn = br#"{"input":[{"id":"a"},{"id":"b"},{"id":"c"}],"output":[]}"#;
    let page = |query: InputItemsQuery| -> Value {
        serde_json::from_slice(&input_items_page(&[], turn, &query).unwrap()).unwrap()
    };
    assert_eq!(
        page(InputItemsQuery::default()),
        json!({"object": "list", "data": [{"id": "c"}, {"id": "b"}, {"id": "a"}],
               "first_id": "c", "last_id": "a", "has_more": false})
    );
    assert_eq!(
        page(InputItemsQuery {
            order: Some("asc".into()),
            limit: Some(1),
            after: Some("a".into()),
        }),
        json!({"object": "list", "data": [{"id": "b"}], "first_id": "b", "last_id": "b",
               "has_more": true})
    );
    assert_eq!(
        page(InputItemsQuery {
            after: Some("a".into()),
            ..InputItemsQuery::default()
        }),
        json!({"object": "list", "data": [], "first_id": null, "last_id": null,
               "has_more": false})
    );
    for query in [
        InputItemsQuery {
            limit: Some(0),
            ..InputItemsQuery::default()
        },
        InputItemsQuery {
            limit: Some(101),
            ..InputItemsQuery::default()
        },
        InputItemsQuery {
            order: Some("up".into()),
            ..InputItemsQuery::default()
        },
        InputItemsQuery {
            after: Some("zz".into()),
            ..InputItemsQuery::default()
        },
    ] {
        assert!(
            input_items_page(&[], turn, &query)
                .unwrap_err()
                .is_client_error(),
            "{query:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What the gateway chains and what Codex reads.

#[test]
fn translated_requests_chain_into_the_anthropic_and_gemini_translators() {
    let requests = [
        include_str!("../fixtures/responses/request_codex.json"),
        include_str!("../fixtures/responses/request_items.json"),
    ];
    for request in requests {
        let (chat, _) =
            responses_request_to_chat(request.as_bytes(), &[], ModelLimits::UNKNOWN).unwrap();
        let (messages, _) = crate::translate::anthropic::chat_request_to_messages(
            &chat,
            "claude-up",
            ModelLimits::UNKNOWN,
        )
        .unwrap();
        let messages: Value = serde_json::from_slice(&messages).unwrap();
        assert!(
            messages["messages"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        );
        let (gemini, _) =
            crate::translate::gemini::chat_request_to_gemini(&chat, ModelLimits::UNKNOWN).unwrap();
        let gemini: Value = serde_json::from_slice(&gemini).unwrap();
        assert!(gemini["contents"].as_array().is_some_and(|c| !c.is_empty()));
    }
}

/// The members Codex reads from a Responses stream (codex-rs `sse/responses.rs` and the
/// protocol's `ResponseItem`): a `response.completed` whose `response` has a string `id` and,
/// when present, a usage with `input_tokens`, `output_tokens` and `total_tokens`; and
/// `response.output_item.done` items it can read as messages, function calls and reasoning.
#[expect(
    dead_code,
    reason = "the structs mirror what Codex reads; that they deserialize is the check"
)]
mod codex {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Event {
        #[serde(rename = "type")]
        pub kind: String,
        pub response: Option<Completed>,
        pub item: Option<Item>,
    }

    #[derive(Deserialize)]
    pub struct Completed {
        pub id: String,
        pub usage: Option<Usage>,
    }

    #[derive(Deserialize)]
    pub struct Usage {
        pub input_tokens: i64,
        pub output_tokens: i64,
        pub total_tokens: i64,
        pub input_tokens_details: Option<CachedTokens>,
        pub output_tokens_details: Option<ReasoningTokens>,
    }

    #[derive(Deserialize)]
    pub struct CachedTokens {
        pub cached_tokens: i64,
    }

    #[derive(Deserialize)]
    pub struct ReasoningTokens {
        pub reasoning_tokens: i64,
    }

    #[derive(Deserialize, Debug)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Item {
        Message {
            role: String,
            content: Vec<Content>,
        },
        Reasoning {
            summary: Vec<Summary>,
            encrypted_content: Option<String>,
        },
        FunctionCall {
            name: String,
            namespace: Option<String>,
            arguments: String,
            call_id: String,
        },
    }

    #[derive(Deserialize, Debug)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Content {
        OutputText { text: String },
    }

    #[derive(Deserialize, Debug)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Summary {
        SummaryText { text: String },
    }
}

#[test]
fn codex_reads_the_items_and_the_completion_of_a_translated_stream() {
    let cases = [
        (
            include_str!("../fixtures/responses/stream_namespace.expected.sse"),
            2,
        ),
        (
            include_str!("../fixtures/responses/stream_tools_interleaved.sse"),
            4,
        ),
        (include_str!("../fixtures/responses/stream_text.sse"), 1),
    ];
    for (stream, items) in cases {
        let mut done = Vec::new();
        let mut completed = None;
        for frame in stream.split_terminator("\n\n") {
            let data = frame.split_once("\ndata: ").unwrap().1;
            let event: codex::Event = serde_json::from_str(data).unwrap();
            match event.kind.as_str() {
                "response.output_item.done" => done.push(event.item.unwrap()),
                "response.completed" => completed = event.response,
                _ => {}
            }
        }
        assert_eq!(done.len(), items, "{stream}");
        let completed = completed.unwrap();
        assert_eq!(completed.id, ID);
        let usage = completed.usage.unwrap();
        assert_eq!(usage.total_tokens, usage.input_tokens + usage.output_tokens);
        assert!(usage.input_tokens_details.is_some() && usage.output_tokens_details.is_some());
        for item in &done {
            if let codex::Item::FunctionCall { arguments, .. } = item {
                serde_json::from_str::<Value>(arguments).unwrap();
            }
        }
        if stream.contains("spawn_agent") {
            assert!(matches!(
                &done[0],
                codex::Item::FunctionCall { name, namespace: Some(namespace), call_id, .. }
                    if name == "spawn_agent" && namespace == "multi_agent_v1" && call_id == "call_sp"
            ));
        }
    }
}

#[test]
fn items_follow_the_upstream_s_order_and_missing_ids_and_arguments_are_filled() {
    let frames = [
        r#"{"choices":[{"index":0,"delta":{"reasoning":"Hmm."}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"Checking."}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"ping"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"Also: "}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"refusal":"no."}}]}"#,
        r#"{"choices":[{"index":1,"delta":{"content":"other choice"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ];
    let body: String = frames
        .iter()
        .map(|frame| format!("data: {frame}\n\n"))
        .collect();
    let text = feed(
        ChatToResponsesStream::new(&plain_call(), ID, CREATED),
        &[body.as_bytes()],
    );
    let response = replay(&text);
    let summary: Vec<(&str, &str)> = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["type"].as_str().unwrap(), item["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("reasoning", "rs_test_0"),
            ("message", "msg_test_1"),
            ("function_call", "fc_test_2"),
            ("message", "msg_test_3"),
        ]
    );
    assert_eq!(response["output"][2]["call_id"], "call_test_2");
    assert_eq!(response["output"][2]["arguments"], "{}");
    assert_eq!(response["output"][3]["content"][0]["text"], "Also: no.");
    assert_eq!(response["usage"], Value::Null);
}

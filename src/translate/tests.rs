//! Fixture-driven tests of every translation direction.
//!
//! Each input under `fixtures/` has an expected twin next to it. Streams are fed whole, split
//! at every byte position, and one byte at a time: the output must be the same every time, made
//! of whole frames only. Their output is also replayed the way the official SDKs accumulate it,
//! and checked against Anthropic's event grammar.
//!
//! `LLMGATE_BLESS=1 cargo test translate::` rewrites the expected twins from the current output;
//! review the diff before committing it.

use bytes::Bytes;
use serde_json::{Value, json};

use super::anthropic::{
    ChatToMessagesStream, MessagesToChatStream, chat_request_to_messages,
    chat_response_to_messages, fold_system_messages, messages_request_to_chat,
};
use super::gemini::{
    GeminiToChatStream, GeminiToMessagesStream, chat_request_to_gemini,
    gemini_response_to_messages, messages_request_to_gemini,
};
use super::{ChatCall, StreamTranslator, TranslateError};
use crate::pricing::ModelLimits;
use crate::usage::Usage;

/// The `created` every test translator stamps, so outputs are reproducible.
const CREATED: u64 = 1_700_000_000;

/// An input under `fixtures/` and the output it should give. Shared with the other
/// translators' fixture tests (`responses::tests`).
pub(super) struct Fixture {
    pub(super) input: &'static str,
    pub(super) expected_path: &'static str,
    pub(super) expected: &'static str,
}

macro_rules! fixture {
    ($input:literal => $expected:literal) => {
        $crate::translate::tests::Fixture {
            input: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/translate/fixtures/",
                $input
            )),
            expected_path: $expected,
            expected: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/translate/fixtures/",
                $expected
            )),
        }
    };
}
pub(super) use fixture;

/// `LLMGATE_BLESS` is set: expected outputs are rewritten, not compared.
pub(super) fn blessing() -> bool {
    std::env::var_os("LLMGATE_BLESS").is_some()
}

pub(super) fn bless(path: &str, text: &str) {
    let path = format!(
        "{}/src/translate/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(path, text).unwrap();
}

/// Compares a JSON output with the fixture's expected JSON (key order aside).
pub(super) fn check_json(fixture: &Fixture, actual: &[u8]) -> Value {
    let actual: Value = serde_json::from_slice(actual).unwrap();
    if blessing() {
        bless(
            fixture.expected_path,
            &(serde_json::to_string_pretty(&actual).unwrap() + "\n"),
        );
        return actual;
    }
    let expected: Value = serde_json::from_str(fixture.expected).unwrap();
    assert_eq!(
        actual,
        expected,
        "{} differs; actual:\n{}",
        fixture.expected_path,
        serde_json::to_string_pretty(&actual).unwrap()
    );
    actual
}

/// Feeds `chunks` and the end of the stream; every returned piece must be whole frames.
pub(super) fn feed<T: StreamTranslator>(mut translator: T, chunks: &[&[u8]]) -> String {
    let mut out = Vec::new();
    let mut pieces: Vec<Bytes> = chunks.iter().map(|chunk| translator.push(chunk)).collect();
    pieces.push(translator.finish());
    for piece in pieces {
        assert!(
            piece.is_empty() || piece.ends_with(b"\n\n"),
            "a piece that is not whole frames: {:?}",
            String::from_utf8_lossy(&piece)
        );
        out.extend_from_slice(&piece);
    }
    assert!(
        translator.push(b"data: [DONE]\n\n").is_empty()
            && translator.finish().is_empty()
            && translator.fail(None, "late").is_empty(),
        "a finished translator still produced output"
    );
    String::from_utf8(out).unwrap()
}

/// Runs a stream fixture whole, split at every byte, and byte by byte, and compares the output
/// with the expected twin.
pub(super) fn check_stream<T: StreamTranslator>(fixture: &Fixture, make: impl Fn() -> T) -> String {
    let input = fixture.input.as_bytes();
    let whole = feed(make(), &[input]);
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        let split_output = feed(make(), &[a, b]);
        assert!(
            split_output == whole,
            "split at byte {split} changed the output of {}:\n{split_output}",
            fixture.expected_path
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(feed(make(), &bytes), whole, "byte by byte");
    if blessing() {
        bless(fixture.expected_path, &whole);
    } else {
        assert!(
            whole == fixture.expected,
            "{} differs; actual:\n{whole}",
            fixture.expected_path
        );
    }
    whole
}

/// The `(event, data)` pairs of an event stream.
fn events(text: &str) -> Vec<(Option<&str>, &str)> {
    text.split_terminator("\n\n")
        .map(|frame| match frame.split_once('\n') {
            Some((event, data)) => (
                Some(event.strip_prefix("event: ").unwrap()),
                data.strip_prefix("data: ").unwrap(),
            ),
            None => (None, frame.strip_prefix("data: ").unwrap()),
        })
        .collect()
}

/// Replays Anthropic events the way the official SDK accumulates them, checking the event
/// grammar on the way: `message_start` first; blocks started at the next index, one open at a
/// time, deltas only to the open block; `message_delta` and `message_stop` after every block
/// closed; or an `error` event last, alone, as Anthropic sends it (a block may be left open).
fn replay_anthropic(text: &str) -> Value {
    let mut message = Value::Null;
    let mut open: Option<usize> = None;
    let mut json_buffer = String::new();
    let mut ended = false;
    for (name, data) in events(text) {
        assert!(!ended, "an event after the end: {data}");
        let event: Value = serde_json::from_str(data).unwrap();
        let kind = event["type"].as_str().unwrap();
        assert_eq!(name, Some(kind), "the event name and type differ");
        if kind != "message_start" && kind != "error" {
            assert!(message.is_object(), "{kind} before message_start");
        }
        match kind {
            "message_start" => {
                assert!(message.is_null(), "a second message_start");
                message = event["message"].clone();
                assert_eq!(message["content"], json!([]));
            }
            "content_block_start" => {
                assert_eq!(open, None, "a block started while another is open");
                let index = event["index"].as_u64().unwrap() as usize;
                let content = message["content"].as_array_mut().unwrap();
                assert_eq!(index, content.len(), "block indices must count up from 0");
                content.push(event["content_block"].clone());
                open = Some(index);
                json_buffer.clear();
            }
            "content_block_delta" => {
                let index = event["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index), "a delta to a block that is not open");
                let block = &mut message["content"][index];
                let delta = &event["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = block["text"].as_str().unwrap().to_owned()
                            + delta["text"].as_str().unwrap();
                        block["text"] = text.into();
                    }
                    "thinking_delta" => {
                        let text = block["thinking"].as_str().unwrap().to_owned()
                            + delta["thinking"].as_str().unwrap();
                        block["thinking"] = text.into();
                    }
                    "input_json_delta" => {
                        assert_eq!(block["type"], "tool_use");
                        json_buffer.push_str(delta["partial_json"].as_str().unwrap());
                    }
                    other => panic!("unknown delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = event["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index), "stopping a block that is not open");
                let block = &mut message["content"][index];
                if block["type"] == "tool_use" && !json_buffer.is_empty() {
                    block["input"] = serde_json::from_str(&json_buffer).unwrap();
                }
                open = None;
            }
            "message_delta" => {
                assert_eq!(open, None, "message_delta with a block open");
                message["stop_reason"] = event["delta"]["stop_reason"].clone();
                for (key, value) in event["usage"].as_object().unwrap() {
                    message["usage"][key] = value.clone();
                }
            }
            "message_stop" => {
                assert!(
                    message["stop_reason"].is_string(),
                    "message_stop before message_delta"
                );
                ended = true;
            }
            "error" => {
                message["error"] = event["error"].clone();
                ended = true;
            }
            other => panic!("unknown event {other}"),
        }
    }
    assert!(ended, "the stream has no end event");
    message
}

/// Replays chat chunks the way the OpenAI SDK accumulates them (choice 0, or `choice`), with
/// checks: whole JSON frames, the role first, tool calls indexed 0, 1, … with id and name on
/// their first chunk, `[DONE]` (or an error) last.
fn replay_chat(text: &str, choice: u64) -> Value {
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut refusal = String::new();
    let mut tools: Vec<Value> = Vec::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    let mut role_seen = false;
    let mut end = Value::Null;
    for (name, data) in events(text) {
        assert_eq!(name, None, "chat streams have no event names");
        assert!(end.is_null(), "a frame after the end: {data}");
        if data == "[DONE]" {
            end = "done".into();
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if chunk.get("error").is_some() {
            end = chunk["error"].clone();
            continue;
        }
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["created"], CREATED);
        if !chunk["usage"].is_null() {
            assert_eq!(chunk["choices"], json!([]));
            usage = chunk["usage"].clone();
        }
        for item in chunk["choices"].as_array().unwrap() {
            if item["index"] != choice {
                continue;
            }
            let delta = &item["delta"];
            if delta["role"] == "assistant" {
                role_seen = true;
            }
            assert!(role_seen, "a delta before the role: {data}");
            content += delta["content"].as_str().unwrap_or("");
            reasoning += delta["reasoning_content"].as_str().unwrap_or("");
            refusal += delta["refusal"].as_str().unwrap_or("");
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap() as usize;
                if index == tools.len() {
                    assert!(call["id"].is_string() && call["function"]["name"].is_string());
                    tools.push(json!({"id": call["id"], "name": call["function"]["name"], "arguments": ""}));
                }
                let arguments = tools[index]["arguments"].as_str().unwrap().to_owned()
                    + call["function"]["arguments"].as_str().unwrap_or("");
                tools[index]["arguments"] = arguments.into();
            }
            if !item["finish_reason"].is_null() {
                assert!(finish.is_null(), "two finishes");
                finish = item["finish_reason"].clone();
            }
        }
    }
    assert!(!end.is_null(), "the stream has no end");
    json!({
        "content": content, "reasoning": reasoning, "refusal": refusal, "tool_calls": tools,
        "finish_reason": finish, "usage": usage, "end": end,
    })
}

// ---------------------------------------------------------------------------------------------
// Streams.

#[test]
fn openai_text_stream_becomes_anthropic_events() {
    let fixture = fixture!("openai/stream_text.sse" => "openai/stream_text.messages.sse");
    let message = replay_anthropic(&check_stream(&fixture, || {
        ChatToMessagesStream::new("public")
    }));
    assert_eq!(message["id"], "msg_A1");
    assert_eq!(message["model"], "public");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Héllo wörld 🎉, \"quoted\"\né🎉"}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 16, "output_tokens": 7})
    );
}

#[test]
fn interleaved_tool_calls_become_sequential_blocks() {
    let fixture = fixture!("openai/stream_tools_interleaved.sse" => "openai/stream_tools_interleaved.messages.sse");
    let message = replay_anthropic(&check_stream(&fixture, || ChatToMessagesStream::new("m")));
    assert_eq!(
        message["content"],
        json!([
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Zürich \"}\" "}},
            {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {"zone": "Europe/Paris"}},
            {"type": "tool_use", "id": "call_c", "name": "ping", "input": {}}
        ])
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["usage"]["input_tokens"], 50);
    assert_eq!(message["usage"]["output_tokens"], 30);
}

#[test]
fn sequential_tool_calls_stream_without_delay() {
    let fixture = fixture!("openai/stream_tools_sequential.sse" => "openai/stream_tools_sequential.messages.sse");
    let message = replay_anthropic(&check_stream(&fixture, || ChatToMessagesStream::new("m")));
    assert_eq!(
        message["content"],
        json!([
            {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "a"}},
            {"type": "tool_use", "id": "call_2", "name": "lookup", "input": {"q": "b"}}
        ])
    );
    // Every upstream frame with arguments gives its delta out as soon as it arrives.
    let mut stream = ChatToMessagesStream::new("m");
    for (at, frame) in fixture.input.split_inclusive("\n\n").enumerate().take(5) {
        let out = stream.push(frame.as_bytes());
        let out = std::str::from_utf8(&out).unwrap();
        let has_arguments = [1, 2, 4].contains(&at);
        assert_eq!(
            out.contains("input_json_delta"),
            has_arguments,
            "frame {at}: {out}"
        );
    }
}

#[test]
fn reasoning_becomes_a_thinking_block_before_the_text() {
    let fixture = fixture!("openai/stream_reasoning.sse" => "openai/stream_reasoning.messages.sse");
    let message = replay_anthropic(&check_stream(&fixture, || ChatToMessagesStream::new("m")));
    assert_eq!(
        message["content"],
        json!([
            {"type": "thinking", "thinking": "Thinking…", "signature": ""},
            {"type": "text", "text": "Answer."}
        ])
    );
    assert_eq!(message["stop_reason"], "max_tokens");
    assert_eq!(message["usage"]["output_tokens"], 40);
}

#[test]
fn a_cut_openai_stream_closes_its_block_and_ends_with_an_error_event() {
    let fixture = fixture!("openai/stream_cut.sse" => "openai/stream_cut.messages.sse");
    let message = replay_anthropic(&check_stream(&fixture, || ChatToMessagesStream::new("m")));
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Partial answ"}])
    );
    assert_eq!(message["error"]["type"], "api_error");
    assert!(message["stop_reason"].is_null());
}

#[test]
fn an_openai_stream_without_done_still_ends_normally() {
    let fixture = fixture!("openai/stream_no_done.sse" => "openai/stream_no_done.messages.sse");
    let message = replay_anthropic(&check_stream(&fixture, || ChatToMessagesStream::new("m")));
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Done"}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["usage"]["output_tokens"], 1);
}

#[test]
fn an_error_frame_in_an_openai_stream_becomes_an_error_event() {
    let fixture =
        fixture!("openai/stream_error_frame.sse" => "openai/stream_error_frame.messages.sse");
    let message = replay_anthropic(&check_stream(&fixture, || ChatToMessagesStream::new("m")));
    assert_eq!(message["content"], json!([{"type": "text", "text": "Hel"}]));
    assert_eq!(
        message["error"],
        json!({"type": "api_error", "message": "upstream fell silent mid-stream"})
    );
}

#[test]
fn a_stream_that_fails_gets_an_error_event_once() {
    let mut stream = ChatToMessagesStream::new("m");
    let first = stream.push(
        b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
    );
    let failed = stream.fail(Some("overloaded_error"), "connection reset");
    let text = String::from_utf8([first, failed.clone()].concat()).unwrap();
    let message = replay_anthropic(&text);
    assert_eq!(message["error"]["message"], "connection reset");
    assert_eq!(message["error"]["type"], "overloaded_error");
    // Anthropic ends a failed stream with the error event alone, the open block left open:
    // Claude Code retries such a stream, but not one whose block was stopped first.
    let failed = String::from_utf8(failed.to_vec()).unwrap();
    assert_eq!(
        events(&failed)
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>(),
        [Some("error")],
        "{failed}"
    );
    assert!(stream.fail(Some("api_error"), "again").is_empty() && stream.finish().is_empty());

    // A stream with no frame at all ends with the error alone.
    let mut empty = ChatToMessagesStream::new("m");
    let text = String::from_utf8(empty.finish().to_vec()).unwrap();
    assert_eq!(replay_anthropic(&text)["error"]["type"], "api_error");
}

#[test]
fn anthropic_text_stream_becomes_chat_chunks() {
    let fixture = fixture!("anthropic/stream_text.sse" => "anthropic/stream_text.chat.sse");
    let chat = replay_chat(
        &check_stream(&fixture, || {
            MessagesToChatStream::at("public", true, CREATED)
        }),
        0,
    );
    assert_eq!(chat["content"], "Grüße aus 東京 🗼");
    assert_eq!(chat["finish_reason"], "stop");
    assert_eq!(chat["end"], "done");
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 2112, "completion_tokens": 9, "total_tokens": 2121, "prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 100}})
    );

    let fixture =
        fixture!("anthropic/stream_text.sse" => "anthropic/stream_text.chat_no_usage.sse");
    let text = check_stream(&fixture, || {
        MessagesToChatStream::at("public", false, CREATED)
    });
    assert!(!text.contains("usage"), "{text}");
    assert_eq!(replay_chat(&text, 0)["usage"], Value::Null);
}

#[test]
fn anthropic_tool_blocks_become_indexed_tool_calls() {
    let fixture = fixture!("anthropic/stream_tools.sse" => "anthropic/stream_tools.chat.sse");
    let chat = replay_chat(
        &check_stream(&fixture, || MessagesToChatStream::at("m", true, CREATED)),
        0,
    );
    assert_eq!(chat["reasoning"], "The user wants weather.");
    assert_eq!(chat["content"], "Checking.");
    assert_eq!(
        chat["tool_calls"],
        json!([
            {"id": "toolu_01A", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
            {"id": "toolu_01B", "name": "get_time", "arguments": "{}"}
        ])
    );
    assert_eq!(chat["finish_reason"], "tool_calls");
    assert_eq!(chat["usage"]["completion_tokens"], 88);
}

#[test]
fn a_cut_or_failing_anthropic_stream_ends_with_an_error_frame() {
    let fixture = fixture!("anthropic/stream_cut.sse" => "anthropic/stream_cut.chat.sse");
    let chat = replay_chat(
        &check_stream(&fixture, || MessagesToChatStream::at("m", true, CREATED)),
        0,
    );
    assert_eq!(chat["content"], "Half an");
    assert_eq!(chat["end"]["type"], "api_error");
    assert_eq!(chat["finish_reason"], Value::Null);

    let fixture = fixture!("anthropic/stream_error.sse" => "anthropic/stream_error.chat.sse");
    let chat = replay_chat(
        &check_stream(&fixture, || MessagesToChatStream::at("m", true, CREATED)),
        0,
    );
    assert_eq!(
        chat["end"],
        json!({"message": "Overloaded", "type": "api_error", "param": null, "code": null})
    );
}

#[test]
fn gemini_text_stream_becomes_chat_chunks_with_usage() {
    let fixture = fixture!("gemini/stream_text.sse" => "gemini/stream_text.chat.sse");
    let chat = replay_chat(
        &check_stream(&fixture, || GeminiToChatStream::at("public", true, CREATED)),
        0,
    );
    assert_eq!(chat["content"], "Bonjour le monde — ça va ? 👋");
    assert_eq!(chat["finish_reason"], "stop");
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 22, "total_tokens": 30,
               "prompt_tokens_details": {"cached_tokens": 4},
               "completion_tokens_details": {"reasoning_tokens": 13}})
    );
}

#[test]
fn gemini_function_calls_become_tool_calls_and_tool_use_blocks() {
    let fixture = fixture!("gemini/stream_tools.sse" => "gemini/stream_tools.chat.sse");
    let chat = replay_chat(
        &check_stream(&fixture, || GeminiToChatStream::at("m", false, CREATED)),
        0,
    );
    assert_eq!(chat["reasoning"], "Need the weather.");
    assert_eq!(
        chat["tool_calls"],
        json!([
            {"id": "call_0__thought__CiQB-_x", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
            {"id": "call_1", "name": "get_time", "arguments": "{}"}
        ])
    );
    assert_eq!(chat["finish_reason"], "tool_calls");

    let fixture = fixture!("gemini/stream_tools.sse" => "gemini/stream_tools.messages.sse");
    let message = replay_anthropic(&check_stream(&fixture, || GeminiToMessagesStream::new("m")));
    assert_eq!(
        message["content"],
        json!([
            {"type": "thinking", "thinking": "Need the weather.", "signature": ""},
            {"type": "tool_use", "id": "call_0__thought__CiQB-_x", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_1", "name": "get_time", "input": {}}
        ])
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 20})
    );
}

#[test]
fn gemini_safety_stops_surface_as_content_filter() {
    let fixture = fixture!("gemini/stream_safety.sse" => "gemini/stream_safety.chat.sse");
    let chat = replay_chat(
        &check_stream(&fixture, || GeminiToChatStream::at("m", false, CREATED)),
        0,
    );
    assert_eq!(chat["content"], "Here is how");
    assert_eq!(chat["finish_reason"], "content_filter");
    assert!(
        chat["refusal"]
            .as_str()
            .unwrap()
            .contains("finishReason SAFETY"),
        "{chat}"
    );

    let fixture =
        fixture!("gemini/stream_prompt_blocked.sse" => "gemini/stream_prompt_blocked.chat.sse");
    let chat = replay_chat(
        &check_stream(&fixture, || GeminiToChatStream::at("m", true, CREATED)),
        0,
    );
    assert_eq!(chat["finish_reason"], "content_filter");
    assert!(
        chat["refusal"]
            .as_str()
            .unwrap()
            .contains("blockReason PROHIBITED_CONTENT"),
        "{chat}"
    );
    assert_eq!(chat["usage"]["prompt_tokens"], 11);

    let fixture = fixture!("gemini/stream_safety.sse" => "gemini/stream_safety.messages.sse");
    let message = replay_anthropic(&check_stream(&fixture, || GeminiToMessagesStream::new("m")));
    assert_eq!(message["stop_reason"], "refusal");
}

#[test]
fn a_gemini_stream_closed_before_a_finish_was_cut() {
    let fixture = fixture!("gemini/stream_cut.sse" => "gemini/stream_cut.chat.sse");
    let chat = replay_chat(
        &check_stream(&fixture, || GeminiToChatStream::at("m", true, CREATED)),
        0,
    );
    assert_eq!(chat["content"], "Start of an answer");
    assert_eq!(chat["end"]["type"], "api_error");
}

// ---------------------------------------------------------------------------------------------
// Requests.

#[test]
fn anthropic_requests_become_chat_requests() {
    let fixture = fixture!("anthropic/request_basic.json" => "anthropic/request_basic.chat.json");
    check_json(
        &fixture,
        &messages_request_to_chat(fixture.input.as_bytes(), "gpt-up", ModelLimits::UNKNOWN)
            .unwrap(),
    );

    let fixture = fixture!("anthropic/request_blocks.json" => "anthropic/request_blocks.chat.json");
    let chat = check_json(
        &fixture,
        &messages_request_to_chat(fixture.input.as_bytes(), "gpt-up", ModelLimits::UNKNOWN)
            .unwrap(),
    );
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "tool",
            "user",
            "assistant",
            "tool"
        ],
        "tool results come right after the assistant's calls, nothing is dropped"
    );
}

#[test]
fn chat_requests_become_anthropic_requests() {
    let fixture = fixture!("openai/request_basic.json" => "openai/request_basic.messages.json");
    let (body, call) =
        chat_request_to_messages(fixture.input.as_bytes(), "claude-up", ModelLimits::UNKNOWN)
            .unwrap();
    check_json(&fixture, &body);
    assert_eq!(
        call,
        ChatCall {
            stream: false,
            include_usage: false
        }
    );

    let fixture = fixture!("openai/request_tools.json" => "openai/request_tools.messages.json");
    let (body, call) =
        chat_request_to_messages(fixture.input.as_bytes(), "claude-up", ModelLimits::UNKNOWN)
            .unwrap();
    let request = check_json(&fixture, &body);
    assert_eq!(
        call,
        ChatCall {
            stream: true,
            include_usage: true
        }
    );
    let roles: Vec<&str> = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant"],
        "turns alternate"
    );
}

#[test]
fn chat_requests_become_gemini_requests() {
    let fixture = fixture!("gemini/request_full.json" => "gemini/request_full.gemini.json");
    let (body, call) =
        chat_request_to_gemini(fixture.input.as_bytes(), ModelLimits::UNKNOWN).unwrap();
    check_json(&fixture, &body);
    assert_eq!(
        call,
        ChatCall {
            stream: true,
            include_usage: false
        }
    );

    let fixture =
        fixture!("anthropic/request_blocks.json" => "anthropic/request_blocks.gemini.json");
    let (body, call) =
        messages_request_to_gemini(fixture.input.as_bytes(), ModelLimits::UNKNOWN).unwrap();
    check_json(&fixture, &body);
    assert_eq!(
        call,
        ChatCall {
            stream: true,
            include_usage: true
        }
    );
}

#[test]
fn tool_choices_map_both_ways() {
    let to_chat = [
        (json!({"type": "auto"}), json!("auto"), None),
        (json!({"type": "any"}), json!("required"), None),
        (json!({"type": "none"}), json!("none"), None),
        (
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true}),
            json!({"type": "function", "function": {"name": "f"}}),
            Some(false),
        ),
        (
            json!({"type": "auto", "disable_parallel_tool_use": false}),
            json!("auto"),
            Some(true),
        ),
    ];
    for (choice, expected, parallel) in to_chat {
        let body = json!({"messages": [], "tool_choice": choice}).to_string();
        let chat: Value = serde_json::from_slice(
            &messages_request_to_chat(body.as_bytes(), "m", ModelLimits::UNKNOWN).unwrap(),
        )
        .unwrap();
        assert_eq!(chat["tool_choice"], expected, "{choice}");
        assert_eq!(chat["parallel_tool_calls"].as_bool(), parallel, "{choice}");
    }
    let to_messages = [
        (json!("auto"), None, json!({"type": "auto"})),
        (json!("required"), None, json!({"type": "any"})),
        (json!("none"), None, json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            None,
            json!({"type": "tool", "name": "f"}),
        ),
        (
            json!("required"),
            Some(false),
            json!({"type": "any", "disable_parallel_tool_use": true}),
        ),
        (
            Value::Null,
            Some(false),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        ),
        (Value::Null, Some(true), Value::Null),
    ];
    for (choice, parallel, expected) in to_messages {
        let mut body = json!({"messages": [], "tool_choice": choice});
        if let Some(parallel) = parallel {
            body["parallel_tool_calls"] = parallel.into();
        }
        let (out, _) =
            chat_request_to_messages(body.to_string().as_bytes(), "m", ModelLimits::UNKNOWN)
                .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["tool_choice"], expected, "{choice} {parallel:?}");
    }
    let to_gemini = [
        (json!("auto"), json!({"mode": "AUTO"})),
        (json!("required"), json!({"mode": "ANY"})),
        (json!("none"), json!({"mode": "NONE"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ),
    ];
    for (choice, expected) in to_gemini {
        let body = json!({"messages": [], "tool_choice": choice}).to_string();
        let (out, _) = chat_request_to_gemini(body.as_bytes(), ModelLimits::UNKNOWN).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out["toolConfig"]["functionCallingConfig"], expected,
            "{choice}"
        );
    }
}

#[test]
fn thinking_and_reasoning_effort_map_both_ways() {
    let to_chat = [
        (
            json!({"type": "enabled", "budget_tokens": 1024}),
            json!("low"),
        ),
        (
            json!({"type": "enabled", "budget_tokens": 4095}),
            json!("low"),
        ),
        (
            json!({"type": "enabled", "budget_tokens": 4096}),
            json!("medium"),
        ),
        (
            json!({"type": "enabled", "budget_tokens": 16384}),
            json!("high"),
        ),
        (json!({"type": "disabled"}), Value::Null),
    ];
    for (thinking, expected) in to_chat {
        let body = json!({"messages": [], "thinking": thinking}).to_string();
        let chat: Value = serde_json::from_slice(
            &messages_request_to_chat(body.as_bytes(), "m", ModelLimits::UNKNOWN).unwrap(),
        )
        .unwrap();
        assert_eq!(chat["reasoning_effort"], expected, "{thinking}");
    }
    let to_messages = [
        (
            "minimal",
            None,
            json!({"type": "enabled", "budget_tokens": 1024}),
        ),
        (
            "low",
            None,
            json!({"type": "enabled", "budget_tokens": 1024}),
        ),
        (
            "medium",
            None,
            json!({"type": "enabled", "budget_tokens": 4095}),
        ),
        (
            "medium",
            Some(10_000),
            json!({"type": "enabled", "budget_tokens": 4096}),
        ),
        (
            "high",
            Some(10_000),
            json!({"type": "enabled", "budget_tokens": 9999}),
        ),
        ("high", Some(1000), Value::Null),
        ("none", None, Value::Null),
    ];
    for (effort, max_tokens, expected) in to_messages {
        let mut body = json!({"messages": [], "reasoning_effort": effort, "temperature": 0.5});
        if let Some(max_tokens) = max_tokens {
            body["max_tokens"] = max_tokens.into();
        }
        let (out, _) =
            chat_request_to_messages(body.to_string().as_bytes(), "m", ModelLimits::UNKNOWN)
                .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["thinking"], expected, "{effort} {max_tokens:?}");
        assert_eq!(
            out["temperature"].is_null(),
            !expected.is_null(),
            "{effort}"
        );
    }
    let forced = json!({"messages": [], "reasoning_effort": "high", "tool_choice": "required"});
    let (out, _) =
        chat_request_to_messages(forced.to_string().as_bytes(), "m", ModelLimits::UNKNOWN).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert!(
        out.get("thinking").is_none(),
        "Anthropic refuses thinking with a forced tool"
    );
}

#[test]
fn bad_requests_are_client_errors_that_say_what_to_fix() {
    let anthropic: &[(&str, &str)] = &[
        (
            "{\"messages\": [}",
            "not valid JSON: expected value at line 1 column 15",
        ),
        ("{}", "missing field `messages`"),
        (
            r#"{"messages": [{"role": "tool", "content": "x"}]}"#,
            "messages[0].role is 'tool'",
        ),
        (
            r#"{"messages": [{"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}]}"#,
            "messages[0].content[0] is a 'image' block; a system prompt takes only text blocks",
        ),
        (
            r#"{"messages": [{"role": "user", "content": 5}]}"#,
            "expected a string or an array at line 1 column 43",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"type": "search_result", "text": "x"}]}]}"#,
            "messages[0].content[0] is a 'search_result' block",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]}"#,
            "messages[0].content[0] has no 'tool_use_id'",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}"#,
            "image source of type 'file'",
        ),
        (
            r#"{"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}"#,
            "tools[0] ('web_search') is an Anthropic server tool",
        ),
        (
            r#"{"messages": [], "tool_choice": {"type": "tool"}}"#,
            "needs the tool's 'name'",
        ),
        (
            r#"{"messages": [], "system": [{"type": "image"}]}"#,
            "system[0] is a 'image' block",
        ),
    ];
    for (body, needle) in anthropic {
        let error =
            messages_request_to_chat(body.as_bytes(), "m", ModelLimits::UNKNOWN).unwrap_err();
        assert!(error.is_client_error(), "{body}");
        assert!(error.to_string().contains(needle), "{body}: {error}");
    }
    let chat: &[(&str, &str)] = &[
        ("[", "not valid JSON"),
        (r#"{"messages": [], "n": 2}"#, "'n' must be 1"),
        (
            r#"{"messages": [{"role": "tool", "content": "x"}]}"#,
            "messages[0] is a tool message without 'tool_call_id'",
        ),
        (
            r#"{"messages": [{"role": "function", "content": "x"}]}"#,
            "messages[0].role 'function'",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}"#,
            "messages[0].content[0] is a 'input_audio' part",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}"#,
            "must be an http(s) URL or a base64 data URL",
        ),
        (
            r#"{"messages": [], "tools": [{"type": "custom", "custom": {}}]}"#,
            "tools[0] is of type 'custom'",
        ),
        (
            r#"{"messages": [], "tool_choice": "sometimes"}"#,
            "tool_choice 'sometimes' is unknown",
        ),
    ];
    for (body, needle) in chat {
        let error =
            chat_request_to_messages(body.as_bytes(), "m", ModelLimits::UNKNOWN).unwrap_err();
        assert!(error.is_client_error(), "{body}");
        assert!(error.to_string().contains(needle), "{body}: {error}");
    }
    let gemini: &[(&str, &str)] = &[
        (
            r#"{"messages": [{"role": "tool", "tool_call_id": "call_9", "content": "x"}]}"#,
            "answers tool call 'call_9', but no earlier assistant message made a tool call with that id",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]}"#,
            "uploaded file ids",
        ),
    ];
    for (body, needle) in gemini {
        let error = chat_request_to_gemini(body.as_bytes(), ModelLimits::UNKNOWN).unwrap_err();
        assert!(error.is_client_error(), "{body}");
        assert!(error.to_string().contains(needle), "{body}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Whole answers.

#[test]
fn chat_answers_become_anthropic_messages() {
    let fixture = fixture!("openai/response_text.json" => "openai/response_text.messages.json");
    check_json(
        &fixture,
        &chat_response_to_messages(fixture.input.as_bytes(), "public").unwrap(),
    );
    let fixture = fixture!("openai/response_tools.json" => "openai/response_tools.messages.json");
    check_json(
        &fixture,
        &chat_response_to_messages(fixture.input.as_bytes(), "public").unwrap(),
    );
    let fixture =
        fixture!("openai/response_filtered.json" => "openai/response_filtered.messages.json");
    check_json(
        &fixture,
        &chat_response_to_messages(fixture.input.as_bytes(), "public").unwrap(),
    );
}

#[test]
fn anthropic_answers_become_chat_completions() {
    let fixture = fixture!("anthropic/response_tools.json" => "anthropic/response_tools.chat.json");
    check_json(
        &fixture,
        &super::anthropic::messages_response_to_chat_at(
            fixture.input.as_bytes(),
            "public",
            CREATED,
        )
        .unwrap(),
    );
    let fixture =
        fixture!("anthropic/response_max_tokens.json" => "anthropic/response_max_tokens.chat.json");
    check_json(
        &fixture,
        &super::anthropic::messages_response_to_chat_at(
            fixture.input.as_bytes(),
            "public",
            CREATED,
        )
        .unwrap(),
    );
}

#[test]
fn gemini_answers_become_chat_completions_and_messages() {
    let fixture = fixture!("gemini/response_tools.json" => "gemini/response_tools.chat.json");
    check_json(
        &fixture,
        &super::gemini::gemini_response_to_chat_at(fixture.input.as_bytes(), "public", CREATED)
            .unwrap(),
    );
    let fixture = fixture!("gemini/response_tools.json" => "gemini/response_tools.messages.json");
    check_json(
        &fixture,
        &gemini_response_to_messages(fixture.input.as_bytes(), "public").unwrap(),
    );
    let fixture = fixture!("gemini/response_safety.json" => "gemini/response_safety.chat.json");
    check_json(
        &fixture,
        &super::gemini::gemini_response_to_chat_at(fixture.input.as_bytes(), "public", CREATED)
            .unwrap(),
    );
    let fixture = fixture!("gemini/response_prompt_blocked.json" => "gemini/response_prompt_blocked.chat.json");
    check_json(
        &fixture,
        &super::gemini::gemini_response_to_chat_at(fixture.input.as_bytes(), "public", CREATED)
            .unwrap(),
    );
    let fixture = fixture!("gemini/response_prompt_blocked.json" => "gemini/response_prompt_blocked.messages.json");
    check_json(
        &fixture,
        &gemini_response_to_messages(fixture.input.as_bytes(), "public").unwrap(),
    );
}

#[test]
fn unreadable_answers_are_upstream_errors() {
    type Translate = fn(&[u8]) -> Result<Bytes, TranslateError>;
    let cases: &[(&str, Translate)] = &[
        ("not json", |b| chat_response_to_messages(b, "m")),
        (r#"{"choices": []}"#, |b| chat_response_to_messages(b, "m")),
        (r#"{"content": 5}"#, |b| {
            super::anthropic::messages_response_to_chat(b, "m")
        }),
        (r#"{"candidates": []}"#, |b| {
            super::gemini::gemini_response_to_chat(b, "m")
        }),
        (r#"{"error": {"code": 500, "message": "boom"}}"#, |b| {
            super::gemini::gemini_response_to_chat(b, "m")
        }),
    ];
    for (body, translate) in cases {
        let error = translate(body.as_bytes()).unwrap_err();
        assert!(!error.is_client_error(), "{body}: {error}");
        assert_eq!(error.status().as_u16(), 502, "{body}");
    }
}

#[test]
fn usage_maps_between_the_three_dialects() {
    use super::anthropic::UsageIn as AnthropicUsage;
    use super::gemini::UsageMetadata;
    use super::openai::UsageIn as ChatUsage;

    let cases: [(Value, Usage); 3] = [
        (
            json!({"openai": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 60}, "completion_tokens_details": {"reasoning_tokens": 5}}}),
            Usage {
                prompt_tokens: 100,
                completion_tokens: 20,
                cached_tokens: 60,
                cache_creation_tokens: 0,
                reasoning_tokens: 5,
                total_tokens: 120,
                estimated: false,
            },
        ),
        (
            json!({"anthropic": {"input_tokens": 10, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 30, "output_tokens": 20}}),
            Usage {
                prompt_tokens: 100,
                completion_tokens: 20,
                cached_tokens: 60,
                cache_creation_tokens: 30,
                reasoning_tokens: 0,
                total_tokens: 120,
                estimated: false,
            },
        ),
        (
            json!({"gemini": {"promptTokenCount": 90, "toolUsePromptTokenCount": 10, "candidatesTokenCount": 15, "thoughtsTokenCount": 5, "cachedContentTokenCount": 60}}),
            Usage {
                prompt_tokens: 100,
                completion_tokens: 20,
                cached_tokens: 60,
                cache_creation_tokens: 0,
                reasoning_tokens: 5,
                total_tokens: 120,
                estimated: false,
            },
        ),
    ];
    for (input, expected) in &cases {
        let usage = if let Some(value) = input.get("openai") {
            Usage::from(serde_json::from_value::<ChatUsage>(value.clone()).unwrap())
        } else if let Some(value) = input.get("anthropic") {
            Usage::from(serde_json::from_value::<AnthropicUsage>(value.clone()).unwrap())
        } else {
            Usage::from(serde_json::from_value::<UsageMetadata>(input["gemini"].clone()).unwrap())
        };
        assert_eq!(usage, *expected, "{input}");
    }
    let written = super::anthropic::UsageOut::from(cases[1].1);
    assert_eq!(
        (
            written.input_tokens,
            written.cache_read_input_tokens,
            written.cache_creation_input_tokens,
            written.output_tokens
        ),
        (10, 60, 30, 20)
    );
    let written = super::openai::UsageOut::from(cases[0].1);
    assert_eq!(
        serde_json::to_value(written).unwrap(),
        json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
               "prompt_tokens_details": {"cached_tokens": 60}, "completion_tokens_details": {"reasoning_tokens": 5}})
    ); // Anthropic's cache writes survive the chat form an Anthropic answer is read through (they
    // are billed at their own price), and only appear there when there are some.
    let chat = serde_json::to_value(super::openai::UsageOut::from(cases[1].1)).unwrap();
    assert_eq!(
        chat["prompt_tokens_details"],
        json!({"cached_tokens": 60, "cache_write_tokens": 30})
    );
    let back = Usage::from(serde_json::from_value::<ChatUsage>(chat.clone()).unwrap());
    assert_eq!(back, cases[1].1);
    let read = crate::usage::from_body(json!({"usage": chat}).to_string().as_bytes()).unwrap();
    assert_eq!(read, cases[1].1);
}

#[test]
fn each_dialects_usage_costs_what_its_tokens_cost() {
    use super::anthropic::UsageIn as AnthropicUsage;
    use super::gemini::UsageMetadata;
    use super::openai::UsageIn as ChatUsage;

    // claude-sonnet-4-5's prices, per million tokens: 3.00 in, 0.30 cached, 3.75 cache
    // write, 15.00 out.
    let prices = crate::pricing::lookup("claude-sonnet-4-5")
        .unwrap()
        .entry
        .prices;
    let cost = |usage: Usage| usage.cost(Some(&prices)).0;
    // OpenAI counts the cached tokens inside prompt_tokens, the reasoning ones inside
    // completion_tokens: 40 fresh × 3 + 60 cached × 0.3 + 20 out × 15 = 438 micro-dollars.
    let openai: ChatUsage = serde_json::from_value(json!({"prompt_tokens": 100,
        "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 5}}))
    .unwrap();
    assert_eq!(cost(Usage::from(openai)), 438_000);
    // Anthropic's input_tokens leaves out the cache reads and writes: 10 fresh × 3 + 60 cached
    // × 0.3 + 30 written × 3.75 + 20 out × 15 = 460.5 micro-dollars.
    let anthropic: AnthropicUsage = serde_json::from_value(json!({"input_tokens": 10,
        "cache_read_input_tokens": 60, "cache_creation_input_tokens": 30, "output_tokens": 20}))
    .unwrap();
    assert_eq!(cost(Usage::from(anthropic)), 460_500);
    // Gemini counts cached tokens inside promptTokenCount, and thoughts beside the
    // candidates: billed as output, the same 438 micro-dollars as OpenAI's.
    let gemini: UsageMetadata = serde_json::from_value(json!({"promptTokenCount": 90,
        "toolUsePromptTokenCount": 10, "candidatesTokenCount": 15, "thoughtsTokenCount": 5,
        "cachedContentTokenCount": 60}))
    .unwrap();
    assert_eq!(cost(Usage::from(gemini)), 438_000);
    // Without prices (an unpriced route), nothing.
    assert_eq!(Usage::from(anthropic).cost(None).0, 0);
}

#[test]
fn a_round_trip_through_both_request_translations_keeps_the_conversation() {
    let original = json!({
        "model": "claude",
        "max_tokens": 100,
        "system": "sys",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
                {"type": "text", "text": "next"}
            ]}
        ],
        "stop_sequences": ["Z"]
    });
    let chat =
        messages_request_to_chat(original.to_string().as_bytes(), "gpt", ModelLimits::UNKNOWN)
            .unwrap();
    let (back, _) = chat_request_to_messages(&chat, "claude", ModelLimits::UNKNOWN).unwrap();
    let back: Value = serde_json::from_slice(&back).unwrap();
    assert_eq!(
        back,
        json!({
            "model": "claude",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "ok"}]},
                    {"type": "text", "text": "next"}
                ]}
            ],
            "stop_sequences": ["Z"]
        })
    );
}

#[test]
fn message_start_reports_the_estimated_prompt_until_the_upstream_counts_it() {
    let start_usage = |stream: &mut ChatToMessagesStream, frame: &[u8]| {
        let out = String::from_utf8(stream.push(frame).to_vec()).unwrap();
        let (_, data) = events(&out)
            .into_iter()
            .find(|(name, _)| *name == Some("message_start"))
            .unwrap();
        serde_json::from_str::<Value>(data).unwrap()["message"]["usage"].clone()
    };
    let text =
        b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
    let mut estimated = ChatToMessagesStream::new("m").with_input_estimate(42);
    assert_eq!(start_usage(&mut estimated, text)["input_tokens"], 42);
    // A count the upstream already gave wins over the estimate.
    let counted = b"data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":0}}\n\n";
    let mut reported = ChatToMessagesStream::new("m").with_input_estimate(42);
    assert_eq!(start_usage(&mut reported, counted)["input_tokens"], 7);
}

/// Claude Code's requests as it sends them, for a non-Claude model name (a `system` message
/// inside `messages`, beside `context_management`, `output_config` and `thinking`) and for a
/// Claude one, reach each kind of upstream in a form it accepts.
#[test]
fn claude_code_requests_reach_every_kind_of_upstream() {
    let chat_fixtures = [
        fixture!("anthropic/request_claude_code.json" => "anthropic/request_claude_code.chat.json"),
        fixture!("anthropic/request_claude_code_claude.json" => "anthropic/request_claude_code_claude.chat.json"),
    ];
    for fixture in &chat_fixtures {
        let chat = check_json(
            fixture,
            &messages_request_to_chat(fixture.input.as_bytes(), "gpt-up", ModelLimits::UNKNOWN)
                .unwrap(),
        );
        // OpenAI takes `user` up to 64 characters; Claude Code's id is 150.
        let user = chat["user"].as_str().unwrap();
        assert_eq!(user.len(), 64, "{user}");
        assert_eq!(chat["reasoning_effort"], "medium");
        assert!(chat.get("context_management").is_none());
    }
    // The system message stays in place, after the first user turn.
    let chat: Value = serde_json::from_slice(
        &messages_request_to_chat(
            chat_fixtures[0].input.as_bytes(),
            "gpt-up",
            ModelLimits::UNKNOWN,
        )
        .unwrap(),
    )
    .unwrap();
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "system", "assistant", "tool", "user"]
    );
    assert!(
        chat["messages"][2]["content"]
            .as_str()
            .unwrap()
            .starts_with("Available agent types")
    );

    for fixture in [
        fixture!("anthropic/request_claude_code.json" => "anthropic/request_claude_code.gemini.json"),
        fixture!("anthropic/request_claude_code_claude.json" => "anthropic/request_claude_code_claude.gemini.json"),
    ] {
        let (body, _) =
            messages_request_to_gemini(fixture.input.as_bytes(), ModelLimits::UNKNOWN).unwrap();
        check_json(&fixture, &body);
    }
    let (gemini, _) =
        messages_request_to_gemini(chat_fixtures[0].input.as_bytes(), ModelLimits::UNKNOWN)
            .unwrap();
    let gemini: Value = serde_json::from_slice(&gemini).unwrap();
    let instruction = gemini["systemInstruction"]["parts"].to_string();
    assert!(
        instruction.contains("Available agent types"),
        "{instruction}"
    );

    // Anthropic: the system message joins `system`; a body without one is left alone.
    let fixture = fixture!("anthropic/request_claude_code.json" => "anthropic/request_claude_code.anthropic.json");
    let folded = fold_system_messages(fixture.input.as_bytes())
        .unwrap()
        .unwrap();
    let folded = check_json(&fixture, &folded);
    assert!(
        folded["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] == "user" || m["role"] == "assistant")
    );
    let system = folded["system"].as_array().unwrap();
    assert_eq!(system.len(), 4);
    assert!(
        system[3]["text"]
            .as_str()
            .unwrap()
            .starts_with("Available agent types")
    );
    let claude = include_str!("fixtures/anthropic/request_claude_code_claude.json");
    assert!(fold_system_messages(claude.as_bytes()).unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Shaping to the upstream model's limits.

/// A thinking model with a 16,000-token maximum.
const THINKING_16K: ModelLimits = ModelLimits {
    max_output_tokens: Some(16_000),
    reasoning: Some(true),
};

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

/// Claude Code's request (`max_tokens: 32000`, thinking enabled) reaches a smaller model of
/// another dialect with its cap lowered and its reasoning left out, and nothing else changed.
#[test]
fn claude_codes_request_is_shaped_to_a_smaller_model_of_every_other_dialect() {
    let claude_code = include_str!("fixtures/anthropic/request_claude_code.json").as_bytes();
    let chat = json_of(
        &messages_request_to_chat(claude_code, "gpt-4o", ModelLimits::of("gpt-4o")).unwrap(),
    );
    assert_eq!(chat["max_completion_tokens"], 16_384);
    assert!(chat.get("max_tokens").is_none());
    assert!(chat.get("reasoning_effort").is_none());
    let mut unshaped =
        json_of(&messages_request_to_chat(claude_code, "gpt-4o", ModelLimits::UNKNOWN).unwrap());
    assert_eq!(unshaped["max_completion_tokens"], 32_000);
    assert_eq!(unshaped["reasoning_effort"], "medium");
    unshaped["max_completion_tokens"] = json!(16_384);
    unshaped.as_object_mut().unwrap().remove("reasoning_effort");
    assert_eq!(chat, unshaped);

    let (gemini, _) =
        messages_request_to_gemini(claude_code, ModelLimits::of("gemini-2.0-flash")).unwrap();
    let config = &json_of(&gemini)["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 8_192);
    assert!(config.get("thinkingConfig").is_none(), "{config}");
    // A Gemini model that thinks keeps its thinking budget; one with room keeps the cap.
    let gemini_2_5 = ModelLimits::of("gemini-2.5-flash");
    let (gemini, _) = messages_request_to_gemini(claude_code, gemini_2_5).unwrap();
    let config = &json_of(&gemini)["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 32_000);
    assert_eq!(config["thinkingConfig"]["thinkingBudget"], 8_192);
}

#[test]
fn a_chat_request_is_shaped_by_the_anthropic_and_gemini_translators() {
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 32_000,
        "reasoning_effort": "high",
        "temperature": 0.5,
    })
    .to_string();
    let haiku_3_5 = ModelLimits::of("claude-3-5-haiku");
    let (out, _) =
        chat_request_to_messages(body.as_bytes(), "claude-3-5-haiku", haiku_3_5).unwrap();
    let messages = json_of(&out);
    assert_eq!(messages["max_tokens"], 8_192);
    assert!(messages.get("thinking").is_none());
    // Without thinking, the sampling settings Anthropic refuses beside it are kept.
    assert_eq!(messages["temperature"], 0.5);

    // A thinking model: the budget fits under the lowered cap, as Anthropic requires.
    let (out, _) = chat_request_to_messages(body.as_bytes(), "claude-x", THINKING_16K).unwrap();
    let messages = json_of(&out);
    assert_eq!(messages["max_tokens"], 16_000);
    assert_eq!(
        messages["thinking"],
        json!({"type": "enabled", "budget_tokens": 15_999})
    );

    // Anthropic's default cap, when the request sets none, is lowered too.
    let no_cap = json!({"messages": [{"role": "user", "content": "hi"}]}).to_string();
    let small = ModelLimits {
        max_output_tokens: Some(2_048),
        reasoning: None,
    };
    let (out, _) = chat_request_to_messages(no_cap.as_bytes(), "m", small).unwrap();
    assert_eq!(json_of(&out)["max_tokens"], 2_048);

    let (out, _) =
        chat_request_to_gemini(body.as_bytes(), ModelLimits::of("gemini-2.0-flash")).unwrap();
    let config = &json_of(&out)["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 8_192);
    assert!(config.get("thinkingConfig").is_none(), "{config}");

    // A model the catalog does not know: nothing is shaped.
    let (out, _) = chat_request_to_gemini(body.as_bytes(), ModelLimits::UNKNOWN).unwrap();
    let config = &json_of(&out)["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 32_000);
    assert_eq!(config["thinkingConfig"]["thinkingBudget"], 24_576);
    let (out, _) = chat_request_to_messages(body.as_bytes(), "m", ModelLimits::UNKNOWN).unwrap();
    assert_eq!(json_of(&out)["max_tokens"], 32_000);
}

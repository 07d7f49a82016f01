//! The Converse translator against the shapes of AWS's API reference (Converse,
//! ConverseStream).

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use serde_json::{Value, json};

use super::response::converse_response_to_chat_at;
use super::*;
use crate::pricing::ModelLimits;
use crate::translate::StreamTranslator;

fn converse(chat: Value, limits: ModelLimits) -> Value {
    let (body, _) = chat_request_to_converse(chat.to_string().as_bytes(), limits).unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn a_chat_request_becomes_converse_with_system_images_tools_and_inference_config() {
    let limits = ModelLimits {
        max_output_tokens: Some(4096),
        ..ModelLimits::UNKNOWN
    };
    let out = converse(
        json!({
            "model": "m",
            "max_tokens": 10000,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["END"],
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                ], "cache_control": {"type": "ephemeral"}},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "tooluse_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "sunny"},
                {"role": "user", "content": "thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required"
        }),
        limits,
    );
    assert_eq!(
        out,
        json!({
            "messages": [
                {"role": "user", "content": [
                    {"text": "What is this?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                    {"cachePoint": {"type": "default"}}
                ]},
                {"role": "assistant", "content": [
                    {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Paris"}}}
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}},
                    {"text": "thanks"}
                ]}
            ],
            "system": [{"text": "Be brief."}],
            "inferenceConfig": {"maxTokens": 4096, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "weather", "description": "Weather by city",
                    "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
                "toolChoice": {"any": {}}
            }
        })
    );
    // A named tool, and a tool without parameters.
    let out = converse(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"type": "function", "function": {"name": "now"}}],
               "tool_choice": {"type": "function", "function": {"name": "now"}}}),
        ModelLimits::UNKNOWN,
    );
    assert_eq!(
        out["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "now"}})
    );
    assert_eq!(
        out["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"],
        "object"
    );
    assert_eq!(out["inferenceConfig"], json!({}));
}

#[test]
fn what_converse_cannot_take_is_refused_by_name() {
    for (chat, says) in [
        (
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
            "n above 1",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
            "data: URL",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]}),
            "png, jpeg, gif or webp",
        ),
    ] {
        let error = chat_request_to_converse(chat.to_string().as_bytes(), ModelLimits::UNKNOWN)
            .err()
            .unwrap();
        assert!(error.is_client_error());
        assert!(error.to_string().contains(says), "{error}");
    }
}

/// The Converse answer of AWS's API reference, with a tool call and prompt-cache usage.
const CONVERSE_ANSWER: &str = r#"{
    "output": {"message": {"role": "assistant", "content": [
        {"text": "Let me check."},
        {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song", "input": {"sign": "WZPZ"}}}
    ]}},
    "stopReason": "tool_use",
    "usage": {"inputTokens": 375, "outputTokens": 88, "totalTokens": 1463,
              "cacheReadInputTokens": 800, "cacheWriteInputTokens": 200},
    "metrics": {"latencyMs": 1797}
}"#;

#[test]
fn a_converse_answer_becomes_a_chat_completion_with_cache_usage() {
    let chat = converse_response_to_chat_at(CONVERSE_ANSWER.as_bytes(), "pub", 7).unwrap();
    let chat: Value = serde_json::from_slice(&chat).unwrap();
    let choice = &chat["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me check.");
    assert_eq!(
        choice["message"]["tool_calls"][0],
        json!({"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
               "function": {"name": "top_song", "arguments": "{\"sign\": \"WZPZ\"}"}})
    );
    assert_eq!(chat["model"], "pub");
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 1375, "completion_tokens": 88, "total_tokens": 1463,
               "prompt_tokens_details": {"cached_tokens": 800, "cache_write_tokens": 200}})
    );
    for (reason, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ] {
        assert_eq!(finish_reason(reason), finish);
    }
}

#[test]
fn bedrock_errors_take_the_contract_s_types() {
    let body = converse_error_to_chat(400, br#"{"message":"Malformed input request"}"#);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["message"], "Malformed input request");
    assert_eq!(
        openai_error_type(
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            400
        ),
        ("rate_limit_error", Some("rate_limit_exceeded"))
    );
    assert_eq!(
        openai_error_type(Some("modelStreamErrorException"), 500).0,
        "api_error"
    );
}

/// One binary event-stream message, as ConverseStream sends it.
pub(crate) fn event(kind: &str, payload: Value) -> Vec<u8> {
    let message = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(kind.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    let message = Message::new(json!({"message": message}).to_string().into_bytes())
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String(kind.to_owned().into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("exception".into()),
        ));
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

/// The data of each chunk a stream translator wrote.
fn chunks(out: &[u8]) -> Vec<Value> {
    std::str::from_utf8(out)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

#[test]
fn a_converse_stream_split_anywhere_becomes_chat_chunks_with_tools_and_usage() {
    let stream = [
        event("messageStart", json!({"role": "assistant", "p": "abcd"})),
        event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}})),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "top_song"}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"sign\": "}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"WZPZ\"}"}}})),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event("metadata", json!({"usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 18, "cacheReadInputTokens": 3}, "metrics": {"latencyMs": 100}})),
    ]
    .concat();
    // Fed in pieces of 7 bytes: frames split anywhere.
    let mut translator = ConverseToChatStream::at("pub", true, 1);
    let mut out = Vec::new();
    for piece in stream.chunks(7) {
        out.extend_from_slice(&translator.push(piece));
    }
    out.extend_from_slice(&translator.finish());
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks = chunks(&out);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hello");
    let call = &chunks[2]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (call["id"].as_str(), call["function"]["name"].as_str()),
        (Some("tooluse_1"), Some("top_song"))
    );
    let arguments: String = chunks[3..5]
        .iter()
        .map(|chunk| {
            chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(arguments, "{\"sign\": \"WZPZ\"}");
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[6]["usage"]["prompt_tokens"], 13);
    assert_eq!(
        chunks[6]["usage"]["prompt_tokens_details"]["cached_tokens"],
        3
    );
    let usage = translator.usage().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens
        ),
        (13, 5, 3)
    );
    assert!(translator.failure().is_none());
}

#[test]
fn an_exception_in_the_stream_or_a_cut_ends_it_with_an_error() {
    let mut translator = ConverseToChatStream::at("pub", false, 1);
    let mut out = translator
        .push(&event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
        ))
        .to_vec();
    out.extend_from_slice(&translator.push(&exception(
        "throttlingException",
        "Too many requests, please wait",
    )));
    let last = chunks(&out).pop().unwrap();
    assert_eq!(last["error"]["type"], "rate_limit_error");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many requests")
    );
    assert_eq!(
        translator.failure(),
        Some(crate::translate::StreamFailure::Upstream)
    );
    assert!(translator.finish().is_empty());

    let mut translator = ConverseToChatStream::at("pub", false, 1);
    translator.push(&event("messageStart", json!({"role": "assistant"})));
    let tail = translator.finish();
    assert!(chunks(&tail)[0]["error"].is_object());
    assert_eq!(
        translator.failure(),
        Some(crate::translate::StreamFailure::Unfinished)
    );
}

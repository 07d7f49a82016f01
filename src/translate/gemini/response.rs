//! Whole answers: Gemini `generateContent` → OpenAI chat completion, and the finish-reason
//! table the stream shares.

use std::borrow::Cow;

use bytes::Bytes;

use super::tool_call_id;
use super::wire::{Candidate, ErrorBodyIn, GenerateContentResponse, PromptFeedback};
use crate::translate::TranslateError;
use crate::translate::json::{to_bytes, unix_now};
use crate::translate::openai::{
    AssistantOut, ChatCompletionOut, ChoiceOut, ErrorBodyOut, ErrorOut, FunctionCallOut,
    ToolCallOut, UsageOut,
};
use crate::usage::Usage;

type Result<T> = std::result::Result<T, TranslateError>;

/// OpenAI's `finish_reason` for Gemini's `finishReason`. Every safety-like stop (safety,
/// recitation, blocklist, prohibited content, personal data, image safety) is `content_filter`;
/// a normal stop of a candidate that called functions is `tool_calls`.
pub(crate) fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_tool_calls => "tool_calls",
        // STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, and anything newer.
        _ => "stop",
    }
}

/// What the client reads in `refusal` when Gemini's filters stopped a candidate.
pub(crate) fn filtered_message(reason: &str, detail: Option<&str>) -> String {
    let mut message =
        format!("The provider's content filter stopped the answer (Gemini finishReason {reason}).");
    if let Some(detail) = detail.filter(|detail| !detail.is_empty()) {
        message.push(' ');
        message.push_str(detail);
    }
    message
}

/// What the client reads in `refusal` when Gemini refused the prompt itself.
pub(crate) fn blocked_message(feedback: &PromptFeedback<'_>) -> Option<String> {
    let reason = feedback.block_reason.as_deref()?;
    let mut message =
        format!("The provider's content filter blocked the prompt (Gemini blockReason {reason}).");
    if let Some(detail) = feedback
        .block_reason_message
        .as_deref()
        .filter(|detail| !detail.is_empty())
    {
        message.push(' ');
        message.push_str(detail);
    }
    Some(message)
}

/// Translates a Gemini answer into an OpenAI chat completion named `public_model`: one choice
/// per candidate; thought parts into `reasoning_content`; function calls into `tool_calls` with
/// ids `call_0`, `call_1`, … (see [`super::tool_call_id`]); a safety stop, or a blocked prompt
/// (no candidates, `promptFeedback.blockReason`), as `finish_reason: "content_filter"` with the
/// reason in `refusal`.
pub fn gemini_response_to_chat(body: &[u8], public_model: &str) -> Result<Bytes> {
    gemini_response_to_chat_at(body, public_model, unix_now())
}

pub(crate) fn gemini_response_to_chat_at(
    body: &[u8],
    public_model: &str,
    created: u64,
) -> Result<Bytes> {
    let response: GenerateContentResponse<'_> =
        serde_json::from_slice(body).map_err(TranslateError::upstream("Gemini"))?;
    if let Some(error) = &response.error {
        return Err(TranslateError::UpstreamAnswer(format!(
            "Gemini answered an error: {}",
            error.message.as_deref().unwrap_or("no message")
        )));
    }
    let mut choices = Vec::with_capacity(response.candidates.len().max(1));
    for (position, candidate) in response.candidates.iter().enumerate() {
        let index = candidate
            .index
            .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
        choices.push(choice(candidate, index));
    }
    if choices.is_empty() {
        let refusal = response
            .prompt_feedback
            .as_ref()
            .and_then(blocked_message)
            .ok_or_else(|| {
                TranslateError::UpstreamAnswer("Gemini answered no candidates".into())
            })?;
        choices.push(ChoiceOut {
            index: 0,
            message: AssistantOut {
                role: "assistant",
                content: None,
                reasoning_content: None,
                tool_calls: None,
                refusal: Some(refusal),
            },
            logprobs: None,
            finish_reason: "content_filter",
        });
    }
    let id = response
        .response_id
        .as_deref()
        .map_or(Cow::Borrowed("chatcmpl-gemini"), Cow::Borrowed);
    let completion = ChatCompletionOut {
        id: &id,
        object: "chat.completion",
        created,
        model: public_model,
        choices,
        usage: response
            .usage_metadata
            .map(|usage| UsageOut::from(Usage::from(usage))),
    };
    Ok(to_bytes(&completion))
}

fn choice<'r>(candidate: &'r Candidate<'_>, index: u32) -> ChoiceOut<'r> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for part in candidate.content.iter().flat_map(|content| &content.parts) {
        if let Some(call) = &part.function_call {
            let id = tool_call_id(
                call.id.as_deref(),
                calls.len(),
                part.thought_signature.as_deref(),
            );
            calls.push(ToolCallOut {
                id: Cow::Owned(id),
                kind: "function",
                function: FunctionCallOut {
                    name: Cow::Borrowed(&call.name),
                    arguments: Cow::Borrowed(call.args.map_or("{}", |args| args.get())),
                },
            });
        } else if let Some(part_text) = &part.text {
            if part.thought == Some(true) {
                reasoning.push_str(part_text);
            } else {
                text.push_str(part_text);
            }
        }
    }
    let reason = candidate.finish_reason.as_deref().unwrap_or("STOP");
    let finish = finish_reason(reason, !calls.is_empty());
    let refusal = (finish == "content_filter")
        .then(|| filtered_message(reason, candidate.finish_message.as_deref()));
    ChoiceOut {
        index,
        message: AssistantOut {
            role: "assistant",
            content: (!text.is_empty() || (calls.is_empty() && refusal.is_none())).then_some(text),
            reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
            tool_calls: (!calls.is_empty()).then_some(calls),
            refusal,
        },
        logprobs: None,
        finish_reason: finish,
    }
}

/// OpenAI's error `type` and `code` for a Gemini error's HTTP code or gRPC status.
pub(crate) fn openai_error_type(
    code: Option<u16>,
    status: Option<&str>,
) -> (&'static str, Option<&'static str>) {
    match (code, status) {
        (Some(401), _) | (_, Some("UNAUTHENTICATED")) => {
            ("invalid_request_error", Some("invalid_api_key"))
        }
        (Some(403), _) | (_, Some("PERMISSION_DENIED")) => ("permission_error", None),
        (Some(404), _) | (_, Some("NOT_FOUND")) => ("invalid_request_error", Some("not_found")),
        (Some(429), _) | (_, Some("RESOURCE_EXHAUSTED")) => {
            ("rate_limit_error", Some("rate_limit_exceeded"))
        }
        (Some(504), _) | (_, Some("DEADLINE_EXCEEDED")) => ("api_error", Some("upstream_timeout")),
        (Some(400..=499), _) | (_, Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION")) => {
            ("invalid_request_error", None)
        }
        _ => ("api_error", None),
    }
}

/// A Gemini upstream's error body, rewritten in OpenAI's shape.
pub fn gemini_error_to_chat(status: u16, body: &[u8]) -> Bytes {
    let parsed = serde_json::from_slice::<ErrorBodyIn<'_>>(body).ok();
    let error = parsed.as_ref().map(|body| &body.error);
    let message = error
        .and_then(|error| error.message.as_deref())
        .unwrap_or("The upstream provider returned an error.");
    let (kind, code) = openai_error_type(
        Some(error.and_then(|error| error.code).unwrap_or(status)),
        error.and_then(|error| error.status.as_deref()),
    );
    to_bytes(&ErrorBodyOut {
        error: ErrorOut {
            message,
            kind,
            param: None,
            code,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_map_to_openai() {
        let cases = [
            ("STOP", false, "stop"),
            ("STOP", true, "tool_calls"),
            ("MAX_TOKENS", false, "length"),
            ("MAX_TOKENS", true, "length"),
            ("SAFETY", false, "content_filter"),
            ("RECITATION", false, "content_filter"),
            ("BLOCKLIST", false, "content_filter"),
            ("PROHIBITED_CONTENT", false, "content_filter"),
            ("SPII", false, "content_filter"),
            ("IMAGE_SAFETY", false, "content_filter"),
            ("LANGUAGE", false, "stop"),
            ("OTHER", false, "stop"),
            ("MALFORMED_FUNCTION_CALL", false, "stop"),
            ("FINISH_REASON_UNSPECIFIED", false, "stop"),
        ];
        for (reason, tools, expected) in cases {
            assert_eq!(finish_reason(reason, tools), expected, "{reason} {tools}");
        }
    }

    #[test]
    fn error_bodies_change_shape() {
        let body = gemini_error_to_chat(
            429,
            br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"error":{"message":"Quota exceeded","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}})
        );
        let body = gemini_error_to_chat(
            400,
            br#"{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"]["type"],
            "invalid_request_error"
        );
        let body = gemini_error_to_chat(503, b"oops");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"]["type"],
            "api_error"
        );
    }
}

//! Whole answers and error bodies: OpenAI Chat completion → Responses `response` object.

use bytes::Bytes;

use super::wire::{ChatErrorBody, ItemStatus, OutputItem, OutputText, SummaryText, UsageOut};
use super::{ResponseOut, ResponsesCall, call_id, item_id, status_for};
use crate::translate::TranslateError;
use crate::translate::json::{TextOr, to_bytes};
use crate::translate::openai::{ChatResponse, ErrorBodyOut, ErrorOut};
use crate::usage::Usage;

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates a whole chat completion into a Responses `response` object with id `id` (the
/// gateway's `resp_…`, which item ids reuse), created at `created_at` (Unix seconds).
///
/// Items come in OpenAI's order: reasoning (from `reasoning_content` or `reasoning`), the
/// message (content, then any refusal, as one `output_text`), the function calls.
pub fn chat_response_to_responses(
    chat_body: &[u8],
    call: &ResponsesCall,
    id: &str,
    created_at: i64,
) -> Result<Bytes> {
    let response: ChatResponse<'_> =
        serde_json::from_slice(chat_body).map_err(TranslateError::upstream("OpenAI-compatible"))?;
    let choice = response
        .choices
        .iter()
        .find(|choice| choice.index.unwrap_or(0) == 0)
        .ok_or_else(|| TranslateError::UpstreamAnswer("the completion has no choices".into()))?;
    let (status, incomplete_details) = status_for(choice.finish_reason.as_deref());
    let item_status = if incomplete_details.is_some() {
        ItemStatus::Incomplete
    } else {
        ItemStatus::Completed
    };
    let mut output = Vec::with_capacity(2);
    if let Some(message) = &choice.message {
        if let Some(reasoning) = message
            .reasoning_content
            .as_deref()
            .or(message.reasoning.as_deref())
            .filter(|text| !text.is_empty())
        {
            output.push(OutputItem::Reasoning {
                id: item_id("rs", id, output.len()),
                summary: vec![SummaryText::new(reasoning.to_owned())],
            });
        }
        let mut text = match &message.content {
            None => String::new(),
            Some(TextOr::Text(text)) => text.to_string(),
            Some(TextOr::List(parts)) => parts
                .iter()
                .filter_map(|part| part.text.as_deref())
                .collect(),
        };
        if let Some(refusal) = message.refusal.as_deref() {
            text.push_str(refusal);
        }
        if !text.is_empty() {
            output.push(OutputItem::Message {
                id: item_id("msg", id, output.len()),
                status: item_status,
                role: "assistant",
                content: vec![OutputText::new(text)],
            });
        }
        for tool_call in message.tool_calls.iter().flatten() {
            let index = output.len();
            let (name, namespace) = call.function(&tool_call.function.name);
            output.push(OutputItem::FunctionCall {
                id: item_id("fc", id, index),
                status: item_status,
                arguments: arguments(&tool_call.function.arguments),
                call_id: call_id(Some(&tool_call.id), id, index),
                name,
                namespace,
            });
        }
    }
    let usage = response
        .usage
        .map(|usage| UsageOut::from(Usage::from(usage)));
    let body = ResponseOut {
        id,
        object: "response",
        created_at,
        status,
        background: false,
        error: None,
        incomplete_details,
        model: &call.model,
        output: &output,
        usage,
        echo: &call.echo,
    };
    Ok(to_bytes(&body))
}

/// A call's arguments as clients parse them: some upstreams send none for a call without
/// parameters, and Responses clients (Codex among them) expect a JSON object.
pub(crate) fn arguments(upstream: &str) -> String {
    if upstream.trim().is_empty() {
        "{}".to_owned()
    } else {
        upstream.to_owned()
    }
}

/// An OpenAI-compatible upstream's error body, in the shape the Responses API answers errors
/// with: `{"error": {"message", "type", "param", "code"}}` (the same as chat's). A body that is
/// not an OpenAI error keeps only the status's meaning.
pub fn chat_error_to_responses(status: u16, body: &[u8]) -> Bytes {
    let parsed = serde_json::from_slice::<ChatErrorBody<'_>>(body).ok();
    let error = parsed.as_ref().map(|body| &body.error);
    let message = error
        .and_then(|error| error.message.as_deref())
        .unwrap_or("The upstream provider returned an error.");
    let kind = error
        .and_then(|error| error.kind.as_deref())
        .unwrap_or_else(|| error_type_for_status(status));
    let code = error
        .and_then(|error| error.code.as_ref())
        .and_then(|code| code.as_str());
    to_bytes(&ErrorBodyOut {
        error: ErrorOut {
            message,
            kind,
            param: None,
            code,
        },
    })
}

/// OpenAI's error `type` for an HTTP status, for bodies that name none.
fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The `code` of a failed response's `error` for a chat error's `type` and `code`: the codes
/// Codex and the SDKs act on (`context_length_exceeded`, `insufficient_quota`,
/// `rate_limit_exceeded`) pass through; anything else is `server_error`.
pub(crate) fn failure_code(kind: Option<&str>, code: Option<&str>) -> &'static str {
    match (kind, code) {
        (_, Some("context_length_exceeded")) => "context_length_exceeded",
        (_, Some("insufficient_quota")) | (Some("insufficient_quota"), _) => "insufficient_quota",
        (_, Some("rate_limit_exceeded"))
        | (Some("rate_limit_error" | "rate_limit_exceeded"), _) => "rate_limit_exceeded",
        (_, Some("invalid_prompt")) => "invalid_prompt",
        _ => "server_error",
    }
}

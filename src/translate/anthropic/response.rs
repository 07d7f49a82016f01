//! Whole responses: OpenAI Chat completion → Anthropic message and back, and the stop-reason
//! tables both directions (streams included) share.

use std::borrow::Cow;

use bytes::Bytes;

use super::wire::{BlockOut, MessageResponseOut, MessagesResponse, UsageOut};
use crate::translate::TranslateError;
use crate::translate::json::{TextOr, anthropic_tool_id, arguments_object, to_bytes, unix_now};
use crate::translate::openai::{
    AssistantOut, ChatCompletionOut, ChatResponse, ChoiceOut, FunctionCallOut, ToolCallOut,
    UsageOut as ChatUsageOut,
};
use crate::usage::Usage;

type Result<T> = std::result::Result<T, TranslateError>;

/// Anthropic's `stop_reason` for OpenAI's `finish_reason`.
///
/// OpenAI does not say whether `stop` came from a stop sequence, so it is always `end_turn`.
/// `content_filter` becomes `refusal`. An answer with tool calls stops for `tool_use` even
/// when a server reports `stop`.
pub(crate) fn stop_reason(finish_reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if has_tool_calls => "tool_use",
        _ => "end_turn",
    }
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, and anything newer.
        _ => "stop",
    }
}

/// An Anthropic message id for an upstream id: `msg_` and the upstream id without its own
/// prefix.
pub(crate) fn message_id(upstream_id: Option<&str>) -> String {
    let id = upstream_id.unwrap_or("llmgate");
    let id = id.strip_prefix("chatcmpl-").unwrap_or(id);
    let mut out = String::with_capacity(id.len() + 4);
    out.push_str("msg_");
    out.push_str(id);
    out
}

/// Translates an OpenAI chat completion into an Anthropic message named `public_model`.
///
/// Content blocks come in Anthropic's order: thinking (from `reasoning_content` or
/// `reasoning`), text (content, then any refusal), tool uses.
pub fn chat_response_to_messages(body: &[u8], public_model: &str) -> Result<Bytes> {
    let response: ChatResponse<'_> =
        serde_json::from_slice(body).map_err(TranslateError::upstream("OpenAI-compatible"))?;
    let choice = response
        .choices
        .iter()
        .find(|choice| choice.index.unwrap_or(0) == 0)
        .ok_or_else(|| TranslateError::UpstreamAnswer("the completion has no choices".into()))?;
    let mut content = Vec::with_capacity(2);
    let mut has_tool_calls = false;
    if let Some(message) = &choice.message {
        if let Some(reasoning) = message
            .reasoning_content
            .as_deref()
            .or(message.reasoning.as_deref())
            .filter(|text| !text.is_empty())
        {
            content.push(BlockOut::Thinking {
                thinking: Cow::Borrowed(reasoning),
                signature: "",
            });
        }
        let text = match &message.content {
            None => Cow::Borrowed(""),
            Some(TextOr::Text(text)) => Cow::Borrowed(text.as_ref()),
            Some(TextOr::List(parts)) => Cow::Owned(
                parts
                    .iter()
                    .filter_map(|part| part.text.as_deref())
                    .collect::<String>(),
            ),
        };
        if !text.is_empty() {
            content.push(BlockOut::text(text));
        }
        if let Some(refusal) = message.refusal.as_deref().filter(|text| !text.is_empty()) {
            content.push(BlockOut::text(Cow::Borrowed(refusal)));
        }
        for call in message.tool_calls.iter().flatten() {
            has_tool_calls = true;
            content.push(BlockOut::ToolUse {
                id: anthropic_tool_id(&call.id),
                name: Cow::Borrowed(&call.function.name),
                input: arguments_object(&call.function.arguments),
                cache_control: None,
            });
        }
    }
    let usage = response.usage.map(Usage::from).unwrap_or_default();
    let id = message_id(response.id.as_deref());
    let message = MessageResponseOut {
        id: &id,
        kind: "message",
        role: "assistant",
        model: public_model,
        content,
        stop_reason: Some(stop_reason(choice.finish_reason.as_deref(), has_tool_calls)),
        stop_sequence: None,
        usage: UsageOut::from(usage),
    };
    Ok(to_bytes(&message))
}

/// Translates an Anthropic message into an OpenAI chat completion named `public_model`.
///
/// Text blocks are concatenated into `content`; thinking blocks into `reasoning_content` (the
/// field DeepSeek, vLLM and most OpenAI-compatible servers use; OpenAI's own API has none);
/// `tool_use` blocks become `tool_calls` with `arguments` the JSON text of `input`. Server-tool
/// and redacted-thinking blocks have no OpenAI form and are left out.
pub fn messages_response_to_chat(body: &[u8], public_model: &str) -> Result<Bytes> {
    messages_response_to_chat_at(body, public_model, unix_now())
}

pub(crate) fn messages_response_to_chat_at(
    body: &[u8],
    public_model: &str,
    created: u64,
) -> Result<Bytes> {
    let response: MessagesResponse<'_> =
        serde_json::from_slice(body).map_err(TranslateError::upstream("Anthropic"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in &response.content {
        match block.kind.as_ref() {
            "text" => text.push_str(block.text.as_deref().unwrap_or("")),
            "thinking" => reasoning.push_str(block.thinking.as_deref().unwrap_or("")),
            "tool_use" => calls.push(ToolCallOut {
                id: Cow::Borrowed(block.id.as_deref().unwrap_or("")),
                kind: "function",
                function: FunctionCallOut {
                    name: Cow::Borrowed(block.name.as_deref().unwrap_or("")),
                    arguments: Cow::Borrowed(block.input.map_or("{}", |input| input.get())),
                },
            }),
            _ => {}
        }
    }
    let finish = finish_reason(response.stop_reason.as_deref());
    let content = (!text.is_empty() || calls.is_empty()).then_some(text);
    let completion = ChatCompletionOut {
        id: response.id.as_deref().unwrap_or("msg_llmgate"),
        object: "chat.completion",
        created,
        model: public_model,
        choices: vec![ChoiceOut {
            index: 0,
            message: AssistantOut {
                role: "assistant",
                content,
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal: None,
            },
            logprobs: None,
            finish_reason: finish,
        }],
        usage: response
            .usage
            .map(|usage| ChatUsageOut::from(Usage::from(usage))),
    };
    Ok(to_bytes(&completion))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_both_ways() {
        let to_anthropic = [
            (Some("stop"), false, "end_turn"),
            (Some("stop"), true, "tool_use"),
            (Some("length"), false, "max_tokens"),
            (Some("length"), true, "max_tokens"),
            (Some("tool_calls"), true, "tool_use"),
            (Some("function_call"), true, "tool_use"),
            (Some("content_filter"), false, "refusal"),
            (None, false, "end_turn"),
            (Some("something_new"), false, "end_turn"),
        ];
        for (finish, tools, expected) in to_anthropic {
            assert_eq!(stop_reason(finish, tools), expected, "{finish:?} {tools}");
        }
        let to_openai = [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("pause_turn"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("model_context_window_exceeded"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (None, "stop"),
        ];
        for (stop, expected) in to_openai {
            assert_eq!(finish_reason(stop), expected, "{stop:?}");
        }
    }

    #[test]
    fn message_ids_keep_the_upstream_id() {
        assert_eq!(message_id(Some("chatcmpl-abc")), "msg_abc");
        assert_eq!(message_id(Some("xyz")), "msg_xyz");
        assert_eq!(message_id(None), "msg_llmgate");
    }
}

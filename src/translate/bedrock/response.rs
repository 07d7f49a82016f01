//! Whole answers: Converse → OpenAI chat completion, and Bedrock's error bodies.

use std::borrow::Cow;

use bytes::Bytes;

use super::wire::{ConverseResponse, ErrorIn};
use super::{finish_reason, openai_error_type};
use crate::translate::TranslateError;
use crate::translate::json::{to_bytes, unix_now};
use crate::translate::openai::{
    AssistantOut, ChatCompletionOut, ChoiceOut, ErrorBodyOut, ErrorOut, FunctionCallOut,
    ToolCallOut, UsageOut,
};
use crate::usage::Usage;

/// What the client reads in `refusal` when a guardrail or filter stopped the answer.
pub(crate) const FILTERED: &str =
    "The provider's guardrail or content filter stopped the answer (AWS Bedrock).";

/// Translates a Converse answer into an OpenAI chat completion named `public_model`.
pub fn converse_response_to_chat(body: &[u8], public_model: &str) -> Result<Bytes, TranslateError> {
    converse_response_to_chat_at(body, public_model, unix_now())
}

pub(crate) fn converse_response_to_chat_at(
    body: &[u8],
    public_model: &str,
    created: u64,
) -> Result<Bytes, TranslateError> {
    let response: ConverseResponse<'_> =
        serde_json::from_slice(body).map_err(TranslateError::upstream("AWS Bedrock Converse"))?;
    let message = response
        .output
        .as_ref()
        .and_then(|output| output.message.as_ref())
        .ok_or_else(|| TranslateError::UpstreamAnswer("Bedrock answered no message".into()))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in &message.content {
        if let Some(part) = &block.text {
            text.push_str(part);
        } else if let Some(tool) = &block.tool_use {
            calls.push(ToolCallOut {
                id: Cow::Borrowed(&tool.tool_use_id),
                kind: "function",
                function: FunctionCallOut {
                    name: Cow::Borrowed(&tool.name),
                    arguments: Cow::Borrowed(tool.input.map_or("{}", |input| input.get())),
                },
            });
        } else if let Some(part) = block
            .reasoning_content
            .as_ref()
            .and_then(|reasoning| reasoning.reasoning_text.as_ref())
            .and_then(|reasoning| reasoning.text.as_deref())
        {
            reasoning.push_str(part);
        }
    }
    let finish = finish_reason(response.stop_reason.as_deref().unwrap_or("end_turn"));
    let refusal = (finish == "content_filter").then(|| FILTERED.to_owned());
    let completion = ChatCompletionOut {
        id: &format!("chatcmpl-{:016x}", rand::random::<u64>()),
        object: "chat.completion",
        created,
        model: public_model,
        choices: vec![ChoiceOut {
            index: 0,
            message: AssistantOut {
                role: "assistant",
                content: (!text.is_empty() || (calls.is_empty() && refusal.is_none()))
                    .then_some(text),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal,
            },
            logprobs: None,
            finish_reason: finish,
        }],
        usage: response
            .usage
            .map(|usage| UsageOut::from(Usage::from(usage))),
    };
    Ok(to_bytes(&completion))
}

/// A Bedrock error body (`{"message"}`, its exception named only in a header) rewritten in
/// OpenAI's shape, its type told by the status.
pub fn converse_error_to_chat(status: u16, body: &[u8]) -> Bytes {
    let parsed = serde_json::from_slice::<ErrorIn<'_>>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|error| error.message.as_deref())
        .unwrap_or("The upstream provider returned an error.");
    let (kind, code) = openai_error_type(None, status);
    to_bytes(&ErrorBodyOut {
        error: ErrorOut {
            message,
            kind,
            param: None,
            code,
        },
    })
}

//! OpenAI Chat Completions ↔ AWS Bedrock's Converse API (`POST /model/{modelId}/converse`) and
//! ConverseStream (`/converse-stream`, a binary `application/vnd.amazon.eventstream`).
//!
//! Shapes are those of AWS's API reference (Converse, ConverseStream, ContentBlock, ToolConfiguration,
//! TokenUsage: docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html).
//!
//! # Requests
//!
//! | OpenAI | Converse |
//! |---|---|
//! | `system` / `developer` messages | `system: [{"text"}]` |
//! | `user` / `assistant` messages | `messages` with role `user` / `assistant`; neighbours of the same role are merged (Converse wants turns to alternate) |
//! | text | `{"text"}` |
//! | image (`data:` URL of png, jpeg, gif or webp) | `{"image": {"format", "source": {"bytes": base64}}}`; a web URL is refused (Converse takes bytes or S3 only) |
//! | `cache_control` on a message or a part | a `{"cachePoint": {"type": "default"}}` block after it |
//! | assistant `tool_calls` | `{"toolUse": {"toolUseId", "name", "input"}}` (`input` parsed from `arguments`) |
//! | `tool` messages | `{"toolResult": {"toolUseId", "content": [{"text"}]}}` in a user turn |
//! | `tools` | `toolConfig.tools[].toolSpec {name, description, inputSchema.json}` |
//! | `tool_choice` auto / required / named | `toolConfig.toolChoice` `{"auto": {}}` / `{"any": {}}` / `{"tool": {"name"}}`; `none` sends no `toolChoice` (Converse has none) |
//! | `max_completion_tokens` (or `max_tokens`, lowered to the model's maximum), `temperature`, `top_p`, `stop` | `inferenceConfig` `maxTokens`, `temperature`, `topP`, `stopSequences` |
//!
//! Refused: `n` above 1 (Converse answers one message). Dropped: `response_format`,
//! `reasoning_effort`, `presence_penalty`, `frequency_penalty`, `seed`, `logprobs`, `user`,
//! `parallel_tool_calls`, `stream_options` (Converse always reports usage). The model is in the
//! URL: [`endpoint_path`].
//!
//! # Answers
//!
//! `output.message.content`: text blocks → `content`, `toolUse` → `tool_calls` (id = `toolUseId`),
//! `reasoningContent.reasoningText.text` → `reasoning_content`. `stopReason` `end_turn` /
//! `stop_sequence` → `stop`, `tool_use` → `tool_calls`, `max_tokens` /
//! `model_context_window_exceeded` → `length`, `guardrail_intervened` / `content_filtered` →
//! `content_filter`. Usage: `prompt_tokens` = `inputTokens + cacheReadInputTokens +
//! cacheWriteInputTokens` (Bedrock counts them apart, OpenAI within),
//! `prompt_tokens_details.cached_tokens` = `cacheReadInputTokens`, `cache_write_tokens` =
//! `cacheWriteInputTokens`, `completion_tokens` = `outputTokens`.
//!
//! Streams: see [`ConverseToChatStream`]; an `exception` message inside the stream ends the
//! client's stream with an error event of the matching type.

mod request;
mod response;
mod stream;
mod wire;

pub use request::chat_request_to_converse;
pub use response::{converse_error_to_chat, converse_response_to_chat};
pub use stream::ConverseToChatStream;

/// The path after the provider's base URL for `model` (percent-encoded by the caller):
/// `/model/{model}/converse`, or `/converse-stream` for a stream.
pub fn endpoint_path(encoded_model: &str, stream: bool) -> String {
    if stream {
        format!("/model/{encoded_model}/converse-stream")
    } else {
        format!("/model/{encoded_model}/converse")
    }
}

/// The content type of ConverseStream's answer.
pub const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// OpenAI's `finish_reason` for Converse's `stopReason`.
pub(crate) fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, and anything newer.
        _ => "stop",
    }
}

/// OpenAI's error `type` and `code` for a Bedrock exception (by name, as in `x-amzn-ErrorType`
/// or an in-stream `:exception-type`, either case) or, without one, its HTTP status.
pub(crate) fn openai_error_type(
    exception: Option<&str>,
    status: u16,
) -> (&'static str, Option<&'static str>) {
    let exception =
        exception.map(|name| name.split(':').next().unwrap_or(name).to_ascii_lowercase());
    match (exception.as_deref(), status) {
        (Some("throttlingexception" | "modelnotreadyexception"), _) | (None, 429) => {
            ("rate_limit_error", Some("rate_limit_exceeded"))
        }
        (Some("accessdeniedexception" | "unrecognizedclientexception"), _) | (None, 403) => {
            ("permission_error", None)
        }
        (Some("resourcenotfoundexception"), _) | (None, 404) => {
            ("invalid_request_error", Some("not_found"))
        }
        (Some("modeltimeoutexception"), _) | (None, 408) => ("api_error", Some("upstream_timeout")),
        (Some("validationexception"), _) | (None, 400..=499) => ("invalid_request_error", None),
        _ => ("api_error", None),
    }
}

#[cfg(test)]
mod tests;

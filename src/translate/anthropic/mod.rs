//! Anthropic Messages ↔ OpenAI Chat Completions, in all four directions, whole and streamed.
//!
//! # Messages request → Chat request ([`messages_request_to_chat`])
//!
//! | Anthropic | OpenAI |
//! |---|---|
//! | `system` (string, or text blocks joined with `\n`) | a first `system` message |
//! | a `system`-role message inside `messages` (Claude Code sends one for non-Claude model names) | a `system` message in the same place |
//! | user text / image (base64 → `data:` URL, url) / document (base64 PDF → `file` part, text → text) | `user` message; a lone text is plain string content |
//! | user `tool_result` | one `tool` message each, before the rest of the user turn; text blocks joined with `\n`, `Error: ` in front when `is_error`; its images go into the following user message (tool messages carry text only) |
//! | assistant text (concatenated) / `tool_use` (`arguments` = JSON text of `input`) | `assistant` message with `content` (null when only tools) and `tool_calls` |
//! | `thinking`, `redacted_thinking` blocks in history | left out: OpenAI takes no reasoning back |
//! | `tools[].input_schema` | `tools[{type: function, function: {name, description, parameters}}]`; server tools (no `input_schema`) are refused with a 400 |
//! | `tool_choice` auto / any / tool / none, `disable_parallel_tool_use` | `auto` / `required` / named function / `none`, `parallel_tool_calls: false` |
//! | `max_tokens` | `max_completion_tokens` (OpenAI's reasoning models refuse `max_tokens`; every current OpenAI model takes the new name), lowered to the model's maximum |
//! | `temperature`, `top_p`, `stop_sequences` | `temperature`, `top_p`, `stop` |
//! | `metadata.user_id` | `user`; one longer than OpenAI's 64 characters (Claude Code's are ~150) as its SHA-256 in hex |
//! | `stream` | `stream` + `stream_options.include_usage: true` (the answer's usage is needed) |
//! | `thinking` enabled with `budget_tokens` < 4096 / < 16384 / more | `reasoning_effort` low / medium / high; `output_config.effort` (low / medium / high, xhigh and max as high) takes precedence; none for a model without reasoning |
//! | `top_k`, `cache_control`, `service_tier`, `container`, `mcp_servers`, `context_management`, other top-level fields | left out: OpenAI has no equivalent |
//!
//! Other block types (`search_result`, server-tool results, …) are refused with a 400 naming
//! the block, never dropped.
//!
//! # Chat request → Messages request ([`chat_request_to_messages`])
//!
//! | OpenAI | Anthropic |
//! |---|---|
//! | `system` / `developer` messages (anywhere) | `system` text blocks, in order |
//! | user text / `image_url` (data URL → base64 source, http(s) → url source) / `file` (data URL) | text / image / document blocks; empty texts are left out (Anthropic refuses them) |
//! | assistant content + `tool_calls` | text + `tool_use` blocks; `input` parsed from `arguments`: empty → `{}`, not a JSON object → `{"_raw_arguments": "<text>"}` so nothing the model wrote is lost |
//! | `tool` messages | `tool_result` blocks in a user turn |
//! | consecutive same-role turns | merged into one turn (Anthropic requires alternation) |
//! | tool-call ids | characters outside `[A-Za-z0-9_-]` become `_` (Anthropic's id rule), on the call and on its result alike |
//! | `cache_control` on content parts, messages (→ last block) and tools | passed through untouched |
//! | `max_completion_tokens` or `max_tokens` | `max_tokens`, 4096 when absent (Anthropic requires it), lowered to the model's maximum |
//! | `stop` | `stop_sequences` |
//! | `tools`, `tool_choice`, `parallel_tool_calls: false` | `tools[{name, description, input_schema}]`, auto/any/tool/none, `disable_parallel_tool_use` |
//! | `response_format` json_object / json_schema | best effort: a system instruction to answer with JSON only (and the schema) |
//! | `reasoning_effort` minimal,low / medium / high | `thinking` with budget 1024 / 4096 / 16384, capped below `max_tokens`; none if less than 1024 fits, a tool is forced or the model has no reasoning; `temperature`/`top_p` are then left out (Anthropic refuses them with thinking) |
//! | `temperature` | `temperature`, clamped to Anthropic's 0–1 |
//! | `user` | `metadata.user_id` |
//! | `n` > 1, `input_audio`, file ids | refused with a 400 |
//! | `logprobs`, `seed`, penalties, `logit_bias`, `metadata`, `store`, `stream_options` | left out |
//!
//! # Answers
//!
//! | OpenAI `finish_reason` | Anthropic `stop_reason` |
//! |---|---|
//! | `stop` | `end_turn` (`tool_use` when the answer has tool calls; OpenAI does not say whether a stop sequence matched, so never `stop_sequence`) |
//! | `length` | `max_tokens` |
//! | `tool_calls`, `function_call` | `tool_use` |
//! | `content_filter` | `refusal` |
//!
//! and back: `end_turn`, `stop_sequence`, `pause_turn` → `stop`; `max_tokens`,
//! `model_context_window_exceeded` → `length`; `tool_use` → `tool_calls`; `refusal` →
//! `content_filter`.
//!
//! Usage: OpenAI's `prompt_tokens` counts every prompt
//! token; Anthropic's `input_tokens` only the uncached ones. So `input_tokens` =
//! `prompt_tokens − cached_tokens`, `cache_read_input_tokens` = `cached_tokens`; the other way,
//! `prompt_tokens` = `input_tokens + cache_read_input_tokens + cache_creation_input_tokens` with
//! `prompt_tokens_details.cached_tokens` = `cache_read_input_tokens`. Reasoning
//! (`reasoning_content`, or `reasoning`) becomes a `thinking` block with an empty signature, and
//! thinking becomes `reasoning_content`.

mod error;
mod request;
mod response;
mod stream;
mod system;
mod wire;

pub use error::{
    anthropic_error_body, anthropic_error_type, anthropic_error_type_for, chat_error_to_messages,
    messages_error_to_chat, openai_error_type_for,
};
pub(crate) use request::MIN_THINKING_BUDGET;
pub use request::{DEFAULT_MAX_TOKENS, chat_request_to_messages, messages_request_to_chat};
pub use response::{chat_response_to_messages, messages_response_to_chat};
pub use stream::{ChatToMessagesStream, MessagesToChatStream};
pub use system::fold_system_messages;

pub(crate) use wire::{Block, MessagesRequest};

#[cfg(test)]
pub(crate) use response::messages_response_to_chat_at;
#[cfg(test)]
pub(crate) use wire::{UsageIn, UsageOut};

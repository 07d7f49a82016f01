//! OpenAI Responses (`POST /v1/responses`) ↔ OpenAI Chat Completions: the request, the whole
//! answer, the streamed answer, error bodies, and the items a stored response keeps.
//!
//! Responses requests for a provider that speaks only Chat Completions (and, through the chat
//! translators, Anthropic Messages or Gemini) are translated to chat; the chat answer comes
//! back as a Responses `response` object or event stream.
//!
//! # Responses request → Chat request ([`responses_request_to_chat`])
//!
//! | Responses | Chat Completions |
//! |---|---|
//! | `instructions` (string, or message items whose texts are joined with `\n`) | a leading `system` message |
//! | `history` (the stored turns of `previous_response_id`'s chain: input items, then output items) | messages before the new input, translated like `input` items |
//! | `input` as a string | one `user` message |
//! | `message` items (with or without `"type"`), roles `user` / `assistant` / `system` / `developer` | `user` / `assistant` / `system` / `system` messages (`developer` is OpenAI's own role; every chat server knows `system`) |
//! | parts `input_text`, `output_text`, `refusal` | text; a message of texts only gets plain string content, one part a line |
//! | part `input_image` with `image_url` (web or data URL) | `image_url` part (user messages only); `detail` is left out |
//! | part `input_file` with `file_data` (data URL) | `file` part |
//! | `input_image` / `input_file` with `file_id` | refused with a 400: llmgate has no file storage |
//! | `function_call` items | `tool_calls` of an assistant message: joined to the assistant message just before them, else a new one with null content |
//! | `function_call` with a `namespace` | the tool call named `namespace__name` (see Namespaces) |
//! | `function_call_output` (string, or `input_text` / `input_image` parts) | a `tool` message; texts joined; images go into a `user` message after the run of tool messages (chat's tool messages carry text only) |
//! | `reasoning` items (summaries, `encrypted_content`) | left out: chat takes no reasoning back, and only OpenAI can read `encrypted_content` |
//! | items' `id`, `status`, a message's `phase` | left out: chat has no item identity |
//! | other item types (`item_reference`, hosted tools' calls, `custom_tool_call`, …) | refused with a 400 naming the item |
//! | `tools`: `{"type": "function", "name", "description", "parameters", "strict"}` | `{"type": "function", "function": {"name", "description", "parameters", "strict"}}` |
//! | `tools`: `{"type": "namespace", "name", "description", "tools": [functions]}` | each function as `namespace__name`, its description prefixed with the namespace's |
//! | hosted and unknown tools (`web_search`, `web_search_preview`, `file_search`, `code_interpreter`, `computer_use_preview`, `image_generation`, `local_shell`, `mcp`, `custom`, `tool_search`, …), and non-function tools inside a namespace | left out and listed in [`ResponsesCall::dropped_tools`] (`type`, or `type:name`) |
//! | `tool_choice` `auto` / `none` / `required` / `{"type": "function", "name"}` | the same in chat's form; a choice that forces a left-out tool is a 400; `tool_choice` and `parallel_tool_calls` go only with at least one tool (OpenAI refuses them otherwise) |
//! | `parallel_tool_calls` | `parallel_tool_calls` |
//! | `text.format` `text` / `json_object` / `json_schema {name, schema, strict, description}` | none / `response_format: json_object` / `response_format: {type: json_schema, json_schema: {…}}` |
//! | `reasoning.effort` | `reasoning_effort`, as sent; left out for a model without reasoning |
//! | `max_output_tokens` | `max_completion_tokens`, lowered to the model's maximum |
//! | `temperature`, `top_p`, `user`, `prompt_cache_key` | the same |
//! | `stream` | `stream` + `stream_options.include_usage: true` (the answer's usage is needed) |
//! | `mock` | carried over |
//! | `model` | kept as sent; the gateway rewrites it as for any chat request |
//! | `store`, `metadata`, `previous_response_id` | not sent upstream: the gateway keeps the state; echoed in the response |
//! | `reasoning.summary`, `text.verbosity`, `include` (e.g. `reasoning.encrypted_content`), `truncation`, `service_tier`, `safety_identifier`, `max_tool_calls`, `top_logprobs`, `stream_options`, `client_metadata`, other members | left out: chat has no equivalent, or the answer cannot honour it |
//! | `background: true`, `conversation`, `prompt` | refused with a 400 |
//!
//! # Namespaces
//!
//! Codex sends its multi-agent tools as a `namespace` tool (`multi_agent_v1` holding
//! `spawn_agent`, …) and dispatches a call by its `namespace` and `name`. Chat has no
//! namespaces, so each member is offered as the function `namespace__name` (`__`, because chat
//! servers accept only `[A-Za-z0-9_-]` in names, and the double underscore reads as a
//! separator to the model). [`ResponsesCall`] remembers the pairs: a call the model makes to
//! `multi_agent_v1__spawn_agent` comes back as a `function_call` with `"name": "spawn_agent",
//! "namespace": "multi_agent_v1"`, exactly what Codex expects, and the same item sent back as
//! history becomes `multi_agent_v1__spawn_agent` again. Only names in the table are split, so
//! plain functions whose names contain `__` (Codex's `mcp__server__tool`) stay as they are. Two
//! tools that end up with the same chat name are a 400.
//!
//! # Answers ([`chat_response_to_responses`], [`ChatToResponsesStream`])
//!
//! | Chat Completions | Responses |
//! |---|---|
//! | `reasoning_content` (or `reasoning`) text | a first `reasoning` item with one `summary_text` (streamed as `response.reasoning_summary_*` events) |
//! | `content` (and `refusal`, as text) | a `message` item with one `output_text` part (`annotations` and `logprobs` empty) |
//! | `tool_calls` | one `function_call` item each: `call_id` = the upstream's id (`call_<suffix>_<index>` when it sent none), `arguments` as sent (`{}` when empty), `namespace` split off as above |
//! | `finish_reason` `stop` / `tool_calls` | `status: "completed"` |
//! | `finish_reason` `length` / `content_filter` | `status: "incomplete"`, `incomplete_details.reason` `max_output_tokens` / `content_filter`; the items are `incomplete` |
//! | `usage` `prompt_tokens` / `cached_tokens` / `completion_tokens` / `reasoning_tokens` | `input_tokens` / `input_tokens_details.cached_tokens` / `output_tokens` / `output_tokens_details.reasoning_tokens`, `total_tokens` their sum; `null` when the upstream reported none |
//! | an error body | OpenAI's `{"error": {message, type, param, code}}` ([`chat_error_to_responses`]); in a stream, `response.failed` with `response.error {code, message}` |
//!
//! The response echoes the request's `instructions`, `tools` (as sent, hosted ones included),
//! `tool_choice`, `temperature`, `top_p`, `max_output_tokens`, `parallel_tool_calls`, `text`,
//! `reasoning`, `store`, `metadata`, `previous_response_id`, `prompt_cache_key`, `truncation`
//! and `user`, with OpenAI's defaults for absent ones. `output_text` is not sent: it is a
//! convenience property the SDKs compute from `output`. Item ids are made from the response id:
//! `rs_…`, `msg_…`, `fc_…` followed by `_` and the item's output index (`msg_abc_0` in
//! `resp_abc`).
//!
//! # Stored turns ([`stored_turn`], [`input_items_page`])
//!
//! A stored turn is `{"input": [items], "output": [items]}`: the input items as sent,
//! normalized to item form (a string input becomes a user message, string content an
//! `input_text` / `output_text` part, each item without an `id` gets one), and the response's
//! output items. The chain of a later `previous_response_id` passes these to
//! [`responses_request_to_chat`] as `history`, and [`input_items_page`] lists the chain's items
//! and the turn's own input, as OpenAI's `input_items` does. `instructions` are not stored: as
//! with OpenAI, they do not carry over to the next turn.
//!
//! For an upstream that speaks Responses itself, [`request_with_history`] puts the same turns
//! into the forwarded request's `input` and leaves `previous_response_id` out.

mod request;
mod response;
mod store;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::translate::json::compact_json;

pub use request::responses_request_to_chat;
pub use response::{chat_error_to_responses, chat_response_to_responses};
pub use store::{InputItemsQuery, input_items_page, request_with_history, stored_turn};
pub use stream::ChatToResponsesStream;

use wire::{IncompleteDetails, InputItem, OutputItem, ResponseError, ResponsesRequest, UsageOut};

/// Joins a namespace and a function name into the chat function name.
const NAMESPACE_SEPARATOR: &str = "__";

/// What the caller needs to know about a translated Responses request to handle the answer.
#[derive(Debug, Clone)]
pub struct ResponsesCall {
    /// The client asked for a stream.
    pub stream: bool,
    /// The response is to be stored (`store` is not `false`).
    pub store: bool,
    /// The model the client asked for, echoed in the response.
    pub model: String,
    /// Tools left out of the chat request because only OpenAI hosts them (or llmgate does not
    /// know them): `type`, or `type:name`; a namespace's member as `namespace.type:name`.
    pub dropped_tools: Vec<String>,
    namespaced: Vec<NamespacedFunction>,
    echo: Echo,
}

impl ResponsesCall {
    /// The `previous_response_id` the request continues, if any.
    pub fn previous_response_id(&self) -> Option<&str> {
        self.echo.previous_response_id.as_deref()
    }

    /// The Responses name and namespace of a function the model called by its chat name.
    fn function(&self, chat_name: &str) -> (String, Option<String>) {
        match self
            .namespaced
            .iter()
            .find(|function| function.chat_name == chat_name)
        {
            Some(function) => (function.name.clone(), Some(function.namespace.clone())),
            None => (chat_name.to_owned(), None),
        }
    }
}

/// A namespace's function, offered to chat as `chat_name`.
#[derive(Debug, Clone)]
struct NamespacedFunction {
    chat_name: String,
    namespace: String,
    name: String,
}

/// The request's settings a response echoes, with OpenAI's defaults.
#[derive(Debug, Clone, Serialize)]
struct Echo {
    instructions: Option<Box<RawValue>>,
    max_output_tokens: Option<u64>,
    metadata: Box<RawValue>,
    parallel_tool_calls: bool,
    previous_response_id: Option<String>,
    prompt_cache_key: Option<String>,
    reasoning: Box<RawValue>,
    store: bool,
    temperature: Option<f64>,
    text: Box<RawValue>,
    tool_choice: Box<RawValue>,
    tools: Box<RawValue>,
    top_p: Option<f64>,
    truncation: String,
    user: Option<String>,
}

/// A raw JSON value from a literal; the fallback keeps the code free of panics.
fn raw(literal: &str) -> Box<RawValue> {
    RawValue::from_string(literal.to_owned()).unwrap_or_else(|_| Box::<RawValue>::default())
}

/// A member of the request as sent (on one line), unless absent or `null`.
fn raw_or(value: Option<&RawValue>, default: &str) -> Box<RawValue> {
    value
        .filter(|value| value.get() != "null")
        .map_or_else(|| raw(default), |value| raw(&compact_json(value.get())))
}

impl Echo {
    fn of(request: &ResponsesRequest<'_>) -> Self {
        Self {
            instructions: request
                .instructions
                .filter(|value| value.get() != "null")
                .map(|value| raw(&compact_json(value.get()))),
            max_output_tokens: request.max_output_tokens,
            metadata: raw_or(request.metadata, "{}"),
            parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
            previous_response_id: request.previous_response_id.as_deref().map(str::to_owned),
            prompt_cache_key: request.prompt_cache_key.as_deref().map(str::to_owned),
            reasoning: raw_or(request.reasoning, "{\"effort\":null,\"summary\":null}"),
            store: request.store != Some(false),
            temperature: request.temperature,
            text: raw_or(request.text, "{\"format\":{\"type\":\"text\"}}"),
            tool_choice: raw_or(request.tool_choice, "\"auto\""),
            tools: raw_or(request.tools, "[]"),
            top_p: request.top_p,
            truncation: request
                .truncation
                .as_deref()
                .unwrap_or("disabled")
                .to_owned(),
            user: request.user.as_deref().map(str::to_owned),
        }
    }
}

/// A `response` object on the wire.
#[derive(Serialize)]
struct ResponseOut<'a> {
    id: &'a str,
    object: &'static str,
    created_at: i64,
    status: &'static str,
    background: bool,
    error: Option<&'a ResponseError>,
    incomplete_details: Option<IncompleteDetails>,
    model: &'a str,
    output: &'a [OutputItem],
    usage: Option<UsageOut>,
    #[serde(flatten)]
    echo: &'a Echo,
}

/// A stored turn, read back for `history`.
#[derive(Deserialize)]
struct StoredTurnIn<'a> {
    #[serde(borrow, default)]
    input: Vec<InputItem<'a>>,
    #[serde(borrow, default)]
    output: Vec<InputItem<'a>>,
}

/// The part of a response id after `resp_`, which item ids reuse.
fn id_suffix(response_id: &str) -> &str {
    response_id.strip_prefix("resp_").unwrap_or(response_id)
}

/// An item id: `prefix`, the response id's suffix, the item's output index.
fn item_id(prefix: &str, response_id: &str, index: usize) -> String {
    format!("{prefix}_{}_{index}", id_suffix(response_id))
}

/// A tool call id for a call the upstream left without one.
fn call_id(upstream: Option<&str>, response_id: &str, index: usize) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => item_id("call", response_id, index),
    }
}

/// The Responses status and incomplete reason for a chat `finish_reason`.
fn status_for(finish_reason: Option<&str>) -> (&'static str, Option<IncompleteDetails>) {
    match finish_reason {
        Some("length") => (
            "incomplete",
            Some(IncompleteDetails {
                reason: "max_output_tokens",
            }),
        ),
        Some("content_filter") => (
            "incomplete",
            Some(IncompleteDetails {
                reason: "content_filter",
            }),
        ),
        _ => ("completed", None),
    }
}

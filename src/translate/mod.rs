//! Protocol translation between OpenAI Chat Completions, Anthropic Messages and Gemini
//! `generateContent`: pure functions over whole bodies, and stateful translators for event
//! streams fed the upstream's bytes chunk by chunk.
//!
//! # Which piece for which route
//!
//! | ingress → provider | request | whole answer | streamed answer | upstream error body |
//! |---|---|---|---|---|
//! | `/v1/messages` → openai | [`anthropic::messages_request_to_chat`] | [`anthropic::chat_response_to_messages`] | [`anthropic::ChatToMessagesStream`] | [`anthropic::chat_error_to_messages`] |
//! | `/v1/chat/completions` → anthropic | [`anthropic::chat_request_to_messages`] | [`anthropic::messages_response_to_chat`] | [`anthropic::MessagesToChatStream`] | [`anthropic::messages_error_to_chat`] |
//! | `/v1/chat/completions` → gemini | [`gemini::chat_request_to_gemini`] | [`gemini::gemini_response_to_chat`] | [`gemini::GeminiToChatStream`] | [`gemini::gemini_error_to_chat`] |
//! | `/v1/messages` → gemini | [`gemini::messages_request_to_gemini`] | [`gemini::gemini_response_to_messages`] | [`gemini::GeminiToMessagesStream`] | [`gemini::gemini_error_to_chat`] then [`anthropic::chat_error_to_messages`] |
//! | `/v1/chat/completions` → bedrock | [`bedrock::chat_request_to_converse`] | [`bedrock::converse_response_to_chat`] | [`bedrock::ConverseToChatStream`] | [`bedrock::converse_error_to_chat`] |
//! | `/v1/responses` → openai (and, chained with the chat rows above, anthropic, gemini and bedrock) | [`responses::responses_request_to_chat`] | [`responses::chat_response_to_responses`] | [`responses::ChatToResponsesStream`] | [`responses::chat_error_to_responses`] |
//!
//! Same-dialect routes need none of this: the body passes through with only `model` rewritten,
//! and, for a request that asks more than the route's upstream model takes, the few values that
//! change edited in place ([`shape_chat_body`], [`shape_messages_body`]).
//!
//! # Shaping to the upstream model
//!
//! Every request translator takes the upstream model's [`crate::pricing::ModelLimits`] (from the built-in
//! catalog, resolved per route) and writes the request within them: an output cap above the
//! model's maximum is lowered to it, and a reasoning effort or thinking budget is left out for a
//! model without reasoning. Limits that are not known shape nothing. No translator knows a
//! model by name.
//! Errors llmgate itself answers on `/v1/messages` take Anthropic's shape through
//! [`anthropic::anthropic_error_body`] and [`anthropic::anthropic_error_type_for`].
//!
//! # Streams
//!
//! Every stream translator implements [`StreamTranslator`], with the same life: `push(chunk)`
//! for each chunk of the upstream body as it arrives (frames may be split anywhere, or several
//! may share a chunk) returns the whole output frames it completed, possibly none; `finish()`
//! when the upstream body ends returns the closing frames (a normal end if the upstream had
//! finished its answer, else an error event); `fail(kind, message)` when the upstream connection
//! breaks returns an error event. After the end, all three return nothing. `usage()` gives the
//! usage the upstream reported, for accounting, without parsing the output again. A translator
//! writes only what is its dialect's own (what an event means, how a finished answer closes, how
//! an error event looks); that life is written once, and [`Chain`] puts two in a row.
//!
//! # Conventions
//!
//! - Requests are read into structs that borrow from the body (`Cow<str>`, `&RawValue` for
//!   opaque parts such as JSON schemas, tool inputs and `cache_control`), never into a
//!   `serde_json::Value` tree; streams parse each small frame on its own.
//! - Translated requests keep only the fields the target defines; nothing a client wrote is
//!   dropped silently when it matters to the answer: a message, block or tool the target cannot
//!   take is a 400 naming it. The modules' docs list every mapping and every field left out.
//! - A request's `"mock"` object (the mock upstream's knobs) is carried across translation, so
//!   tests can steer the mock in any dialect. Real providers never see one unless a client sends
//!   it.

pub mod anthropic;
pub mod bedrock;
mod error;
pub mod gemini;
mod json;
mod openai;
pub mod responses;
mod shape;
mod stream;
mod tokens;

#[cfg(test)]
mod tests;

pub(crate) use crate::sse::EventLimit;
pub use error::TranslateError;
pub use shape::{sets_effort, shape_chat_body, shape_messages_body, shape_responses_body};
pub use stream::{Chain, StreamTranslator};
pub use tokens::{count_message_tokens, count_message_tokens_with, count_tokens_body};

/// Why a translated stream ended without its answer complete (the client got an error event
/// either way), so the request is recorded with the outcome the client saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFailure {
    /// The upstream sent an error event or frame mid-stream.
    Upstream,
    /// The upstream's body ended before the answer was complete.
    Unfinished,
}

/// What the caller needs to know about a translated chat request to handle the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatCall {
    /// The client asked for a stream.
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
}

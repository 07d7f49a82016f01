//! OpenAI Chat Completions ↔ Gemini `generateContent`, and Anthropic Messages ↔ Gemini by way
//! of the chat form.
//!
//! # Requests
//!
//! | OpenAI | Gemini |
//! |---|---|
//! | `system` / `developer` messages | `systemInstruction.parts` (text) |
//! | `user` / `assistant` messages | `contents` with role `user` / `model`; neighbours of the same role are merged |
//! | text, image (`data:` URL → `inlineData`; http(s)/gs URL → `fileData`, media type from the extension), `input_audio` → `inlineData audio/<format>`, `file` (data URL) → `inlineData` | parts |
//! | assistant `tool_calls` | `functionCall` parts (`args` parsed from `arguments`; broken JSON is kept as `{"_raw_arguments": …}`) |
//! | `tool` messages | `functionResponse` parts in a user turn, named after the earlier call with that id; a JSON-object content is the response, other content `{"content": text}` |
//! | `tools` | `tools[0].functionDeclarations`, parameters cleaned to Gemini's schema subset (see `schema`) |
//! | `tool_choice` auto / required / none / named | `toolConfig.functionCallingConfig.mode` AUTO / ANY / NONE / ANY + `allowedFunctionNames` |
//! | `temperature`, `top_p`, `max_completion_tokens` (or `max_tokens`, lowered to the model's maximum), `stop`, `n`, `presence_penalty`, `frequency_penalty`, `seed` | `generationConfig` |
//! | `response_format` json_object / json_schema | `responseMimeType: application/json` (+ `responseSchema`) |
//! | `reasoning_effort` none,minimal / low / medium / high | `thinkingConfig.thinkingBudget` 0 / 1024 / 8192 / 24576; none for a model without thinking |
//!
//! Dropped: `logprobs`, `user`, `stream_options` (Gemini always reports usage), `parallel_tool_calls`.
//! The model is not in the body but in the URL: [`endpoint_path`].
//!
//! # Answers
//!
//! See [`gemini_response_to_chat`] and [`GeminiToChatStream`]. Usage: `promptTokenCount`
//! (+ `toolUsePromptTokenCount`) → `prompt_tokens`, `candidatesTokenCount + thoughtsTokenCount`
//! → `completion_tokens`, `cachedContentTokenCount` → `prompt_tokens_details.cached_tokens`,
//! `thoughtsTokenCount` → `completion_tokens_details.reasoning_tokens`.
//!
//! # Tool-call ids and thought signatures
//!
//! Gemini names calls by function, not id, so ids are generated per answer: `call_0`, `call_1`,
//! … (or Gemini's own `functionCall.id` when it sends one). Gemini 3 also attaches a
//! `thoughtSignature` to function calls and refuses a history that lost it, so the signature
//! rides in the id, `call_0__thought__<url-safe base64>`, and is restored when the call comes
//! back in a later request. Clients treat ids as opaque, so this survives any client.
//!
//! # Anthropic ingress
//!
//! A `/v1/messages` request to a Gemini provider goes Messages → Chat → Gemini
//! ([`messages_request_to_gemini`]) and back ([`gemini_response_to_messages`],
//! [`GeminiToMessagesStream`]): each step is the pure translator of its pair, so every mapping
//! above and in `anthropic` applies. The cost is one extra serialization of the request and of
//! each answer frame; error positions in a refused request refer to the chat form.

mod request;
mod response;
mod schema;
mod stream;
mod wire;

use bytes::Bytes;

pub use request::chat_request_to_gemini;
pub use response::{gemini_error_to_chat, gemini_response_to_chat};
pub use stream::{GeminiToChatStream, GeminiToMessagesStream};

#[cfg(test)]
pub(crate) use response::gemini_response_to_chat_at;
#[cfg(test)]
pub(crate) use wire::UsageMetadata;

use super::anthropic::{chat_response_to_messages, messages_request_to_chat};
use super::{ChatCall, TranslateError};
use crate::pricing::ModelLimits;

/// What the caller needs to know about a translated request: Gemini streams on another URL.
pub type GeminiCall = ChatCall;

/// The path after the provider's base URL (`…/v1beta`) for `model`:
/// `/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` for a stream.
pub fn endpoint_path(model: &str, stream: bool) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    }
}

/// An Anthropic Messages request for a Gemini provider (by way of the chat form).
pub fn messages_request_to_gemini(
    body: &[u8],
    limits: ModelLimits,
) -> Result<(Bytes, GeminiCall), TranslateError> {
    let chat = messages_request_to_chat(body, "", limits)?;
    chat_request_to_gemini(&chat, limits)
}

/// A Gemini answer as an Anthropic message named `public_model` (by way of the chat form).
pub fn gemini_response_to_messages(
    body: &[u8],
    public_model: &str,
) -> Result<Bytes, TranslateError> {
    let chat = gemini_response_to_chat(body, public_model)?;
    chat_response_to_messages(&chat, public_model)
}

const SIGNATURE_SEPARATOR: &str = "__thought__";

/// The OpenAI id of the `position`-th function call of a candidate, carrying its thought
/// signature (standard base64, re-encoded URL-safe without padding so that the id stays within
/// `[A-Za-z0-9_-]`, as Anthropic requires of ids).
pub(crate) fn tool_call_id(
    gemini_id: Option<&str>,
    position: usize,
    signature: Option<&str>,
) -> String {
    let mut id = match gemini_id.filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("call_{position}"),
    };
    if let Some(signature) = signature.filter(|signature| !signature.is_empty()) {
        id.reserve(SIGNATURE_SEPARATOR.len() + signature.len());
        id.push_str(SIGNATURE_SEPARATOR);
        id.extend(signature.chars().filter(|c| *c != '=').map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        }));
    }
    id
}

/// The inverse of [`tool_call_id`]: the id without the signature, and the signature in standard
/// base64.
pub(crate) fn split_tool_call_id(id: &str) -> (&str, Option<String>) {
    let Some((base, encoded)) = id.split_once(SIGNATURE_SEPARATOR) else {
        return (id, None);
    };
    let mut signature: String = encoded
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !signature.len().is_multiple_of(4) {
        signature.push('=');
    }
    (base, Some(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths_put_the_model_in_the_url() {
        assert_eq!(
            endpoint_path("gemini-2.5-flash", false),
            "/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            endpoint_path("models/gemini-2.5-flash", true),
            "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn thought_signatures_ride_in_tool_call_ids() {
        for signature in ["Cv8BAb4+9vu/x1==", "abcd", "a+/b"] {
            let id = tool_call_id(None, 2, Some(signature));
            assert!(id.starts_with("call_2__thought__"), "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{id}"
            );
            let (base, restored) = split_tool_call_id(&id);
            assert_eq!(base, "call_2");
            let expected = format!(
                "{}{}",
                signature.trim_end_matches('='),
                "=".repeat((4 - signature.trim_end_matches('=').len() % 4) % 4)
            );
            assert_eq!(restored.as_deref(), Some(expected.as_str()));
        }
        assert_eq!(tool_call_id(Some("fc-1"), 0, None), "fc-1");
        assert_eq!(split_tool_call_id("call_abc"), ("call_abc", None));
    }
}

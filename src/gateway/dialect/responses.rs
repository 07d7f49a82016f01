//! OpenAI's Responses API (`POST /v1/responses`) as a client's dialect: forwarded as is to a
//! provider declared with `responses = true`, translated to chat
//! ([`crate::translate::responses`]) for every other, and back.
//!
//! Each request gets its response id (`resp_` and 128 random bits in hex) and its `created_at`
//! here. Tools that only OpenAI hosts (and tool types llmgate does not know) are left out of the
//! translated request, named in the `x-llmgate-dropped-tools` answer header and a debug log
//! line.
//!
//! Conversation state is the gateway's ([`crate::gateway::ResponseStore`]): a request that
//! continues a stored response (`previous_response_id`) arrives here with the stored turns of
//! its chain (each turn's input items, then its output items, oldest first), which go to the
//! upstream before the new input; `store` and `previous_response_id` themselves never reach
//! it and are echoed in the response. Unless the request says `"store": false`, the response
//! the client gets (a whole body, or a stream's last `response` object) is kept for its key.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use super::{Call, Client, Ingress, Refused};
use crate::error::ApiError;
use crate::gateway::RequestHead;
use crate::pricing::ModelLimits;
use crate::routing::Target;
use crate::translate::responses::{
    ChatToResponsesStream, ResponsesCall, chat_error_to_responses, chat_response_to_responses,
    request_with_history, responses_request_to_chat,
};
use crate::translate::{StreamTranslator, TranslateError, shape_responses_body};
use crate::usage::EventForm;
use crate::vocab::{Endpoint, ProviderKind};

/// The answer header naming the tools left out of a translated request.
const DROPPED_TOOLS: HeaderName = HeaderName::from_static("x-llmgate-dropped-tools");

/// A client of OpenAI's Responses API.
pub(super) struct Responses;

impl Ingress for Responses {
    /// A provider declared with `responses = true` serves the Responses API itself: the
    /// request is forwarded as is (hosted tools, `previous_response_id` and all), only `model`
    /// rewritten. Every other is translated.
    fn native(&self, provider: &crate::routing::Provider, _wire: ProviderKind) -> bool {
        provider.responses
    }

    fn native_events(&self) -> EventForm {
        EventForm::Responses
    }

    fn pass_through(
        &self,
        body: &Bytes,
        head: &RequestHead<'_>,
        upstream_model: &str,
        _stream: bool,
        shape: Option<ModelLimits>,
        history: &[&[u8]],
    ) -> Result<(Bytes, bool), TranslateError> {
        // A continued conversation goes with its stored turns in `input`, so that any upstream
        // can answer it, whichever answered the earlier turns.
        let rewritten = if history.is_empty() {
            head.rewrite_model(body, upstream_model)
        } else {
            request_with_history(body, history, upstream_model)?
        };
        Ok(match shape {
            Some(limits) => (
                shape_responses_body(&rewritten, limits)?.unwrap_or(rewritten),
                false,
            ),
            None => (rewritten, false),
        })
    }

    fn elsewhere(
        &self,
        _endpoint: Endpoint,
        _target: Target<'_>,
        _body: &[u8],
    ) -> Option<Result<Call, Refused>> {
        None
    }

    fn request_to_chat(
        &self,
        body: &Bytes,
        upstream_model: &str,
        limits: ModelLimits,
        history: &[&[u8]],
    ) -> Result<(Bytes, Box<dyn Client>), TranslateError> {
        let (chat, call) = responses_request_to_chat(body, history, limits)?;
        if !call.dropped_tools.is_empty() {
            tracing::debug!(
                dropped_tools = %call.dropped_tools.join(", "),
                "left out tools of a Responses request that only OpenAI hosts"
            );
        }
        let chat = with_model(chat, &call.model, upstream_model);
        Ok((chat, Box::new(ResponsesClient::new(Some(call)))))
    }

    fn client(&self) -> Box<dyn Client> {
        Box::new(ResponsesClient::new(None))
    }
}

/// The chat request naming `upstream_model`. The translator writes `model` first, as the
/// client sent it: the value is replaced in place, else the body is read for it.
fn with_model(chat: Bytes, model: &str, upstream_model: &str) -> Bytes {
    const PREFIX: &[u8] = b"{\"model\":";
    let sent = serde_json::to_string(model).unwrap_or_default();
    let after = PREFIX.len() + sent.len();
    if chat.starts_with(PREFIX) && chat.get(PREFIX.len()..after) == Some(sent.as_bytes()) {
        let upstream = serde_json::to_string(upstream_model).unwrap_or_default();
        let mut out = Vec::with_capacity(chat.len() + upstream.len());
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(upstream.as_bytes());
        out.extend_from_slice(&chat[after..]);
        return Bytes::from(out);
    }
    match RequestHead::parse(&chat) {
        Ok(head) => head.rewrite_model(&chat, upstream_model),
        Err(_) => chat,
    }
}

/// One Responses request's side of the answer: its id, its creation time, and what the
/// translation of its request noted (none for a request that was not translated).
struct ResponsesClient {
    call: Option<ResponsesCall>,
    id: String,
    created_at: i64,
}

impl ResponsesClient {
    fn new(call: Option<ResponsesCall>) -> Self {
        let bits: [u8; 16] = rand::random();
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(0));
        Self {
            call,
            id: format!("resp_{}", hex::encode(bits)),
            created_at,
        }
    }
}

impl Client for ResponsesClient {
    fn answer_from_chat(&self, chat: Bytes, _public_model: &str) -> Result<Bytes, TranslateError> {
        match &self.call {
            Some(call) => chat_response_to_responses(&chat, call, &self.id, self.created_at),
            None => Ok(chat),
        }
    }

    fn error_from_chat(&self, status: u16, chat: Bytes) -> Bytes {
        chat_error_to_responses(status, &chat)
    }

    fn stream_from_chat(
        &self,
        _public_model: &str,
        _request: &[u8],
    ) -> Option<Box<dyn StreamTranslator>> {
        let call = self.call.as_ref()?;
        Some(Box::new(ChatToResponsesStream::new(
            call,
            &self.id,
            self.created_at,
        )))
    }

    /// `response.failed`, carrying the error's code and message.
    fn error_event(
        &self,
        error: &ApiError,
        request_id: &str,
        translator: Option<&mut dyn StreamTranslator>,
    ) -> Bytes {
        let message = error.client_message(Some(request_id));
        let code = failure_code(error);
        match translator {
            Some(translator) => translator.fail(Some(code), &message),
            None => failed_event(&self.id, self.created_at, code, &message),
        }
    }

    fn headers(&self, headers: &mut HeaderMap) {
        let Some(call) = &self.call else {
            return;
        };
        if call.dropped_tools.is_empty() {
            return;
        }
        if let Ok(value) = HeaderValue::from_str(&call.dropped_tools.join(", ")) {
            headers.insert(DROPPED_TOOLS, value);
        }
    }
}

/// The code of a failed response for an error llmgate ends a stream with.
fn failure_code(error: &ApiError) -> &'static str {
    let (status, _, code) = error.status_type_code();
    match (status.as_u16(), code) {
        (_, "context_length_exceeded") => "context_length_exceeded",
        (429, _) => "rate_limit_exceeded",
        _ => "server_error",
    }
}

/// A `response.failed` event of its own, for a stream whose events llmgate did not write.
fn failed_event(id: &str, created_at: i64, code: &str, message: &str) -> Bytes {
    #[derive(Serialize)]
    struct Failed<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        sequence_number: u64,
        response: FailedResponse<'a>,
    }
    #[derive(Serialize)]
    struct FailedResponse<'a> {
        id: &'a str,
        object: &'static str,
        created_at: i64,
        status: &'static str,
        error: FailedError<'a>,
        output: [(); 0],
    }
    #[derive(Serialize)]
    struct FailedError<'a> {
        code: &'a str,
        message: &'a str,
    }
    let data = serde_json::to_string(&Failed {
        kind: "response.failed",
        sequence_number: 0,
        response: FailedResponse {
            id,
            object: "response",
            created_at,
            status: "failed",
            error: FailedError { code, message },
            output: [],
        },
    })
    .unwrap_or_default();
    // A frame may have been cut mid-line: start on a fresh line so the event parses.
    Bytes::from(format!("\n\nevent: response.failed\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_replaced_in_place_and_nothing_else() {
        let chat = Bytes::from_static(
            br#"{"model":"pub","messages":[{"role":"user","content":"{\"model\":\"pub\"}"}]}"#,
        );
        let out = with_model(chat, "pub", "up-1");
        assert_eq!(
            &out[..],
            br#"{"model":"up-1","messages":[{"role":"user","content":"{\"model\":\"pub\"}"}]}"#
        );
        let odd = Bytes::from_static(br#"{"messages":[],"model":"pub"}"#);
        assert_eq!(
            &with_model(odd, "pub", "up")[..],
            br#"{"messages":[],"model":"up"}"#
        );
    }

    #[test]
    fn response_ids_are_random_and_url_safe() {
        let (a, b) = (ResponsesClient::new(None), ResponsesClient::new(None));
        assert_ne!(a.id, b.id);
        assert!(a.id.starts_with("resp_") && a.id.len() == 37, "{}", a.id);
        assert!(a.id[5..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(a.created_at > 1_700_000_000);
    }

    #[test]
    fn a_stream_llmgate_did_not_write_ends_with_a_failed_response() {
        let event = ResponsesClient::new(None).error_event(
            &ApiError::UpstreamTimeout {
                detail: "silent".into(),
            },
            "req_1",
            None,
        );
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.contains("event: response.failed\n"), "{text}");
        let data = text
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(json["response"]["status"], "failed");
        assert_eq!(json["response"]["error"]["code"], "server_error");
        assert!(
            json["response"]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("req_1")
        );
    }
}

//! Speaking each upstream's dialect: what one attempt sends to a provider of a given kind for a
//! request that arrived on a given endpoint, and how the answer goes back to the client in the
//! dialect it spoke.
//!
//! | client endpoint → provider kind | request | answer |
//! |---|---|---|
//! | OpenAI → openai, Messages → anthropic | `model` spliced in place, nothing else touched | forwarded as received |
//! | chat → anthropic / gemini | translated ([`crate::translate`]) | translated back |
//! | Messages → openai / gemini | translated | translated back |
//! | count_tokens → anthropic | forwarded to `/messages/count_tokens` | forwarded |
//! | count_tokens → openai / gemini | none: llmgate counts the tokens itself | `{"input_tokens": n}` |
//!
//! Completions and embeddings exist only in OpenAI's API: a route to another kind is skipped
//! for them, as if it were not there.

use bytes::Bytes;

use super::RequestHead;
use crate::error::ApiError;
use crate::providers::UpstreamUrl;
use crate::routing::Target;
use crate::translate::anthropic::{
    ChatToMessagesStream, MessagesToChatStream, anthropic_error_body, anthropic_error_type_for,
    chat_error_to_messages, chat_request_to_messages, chat_response_to_messages,
    fold_system_messages, messages_error_to_chat, messages_request_to_chat,
    messages_response_to_chat,
};
use crate::translate::gemini::{
    self, GeminiToChatStream, GeminiToMessagesStream, chat_request_to_gemini, gemini_error_to_chat,
    gemini_response_to_chat, messages_request_to_gemini,
};
use crate::translate::{
    StreamFailure, TokenUsage, TranslateError, count_message_tokens_with, count_tokens_body,
};
use crate::usage::{self, Encoding, IncludeUsage, StreamUsage, Usage};
use crate::vocab::{Dialect, Endpoint, ProviderKind};

/// What one attempt does with a target.
pub(super) enum Call {
    /// Send `body` to `url`; `answer` says how the reply reaches the client.
    Upstream {
        url: UpstreamUrl,
        body: Bytes,
        answer: Answer,
        /// llmgate asked the upstream for the usage chunk the client did not ask for: drop it.
        filter_usage: bool,
    },
    /// llmgate answers itself, with this JSON body.
    Local(Bytes),
}

/// Why a target cannot take the request.
pub(super) enum Refused {
    /// This kind of provider has no such endpoint: the route is skipped.
    Endpoint(String),
    /// The request cannot be expressed for this provider: the client's error.
    Request(TranslateError),
}

impl From<TranslateError> for Refused {
    fn from(error: TranslateError) -> Self {
        Self::Request(error)
    }
}

/// How the upstream's answer becomes the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// OpenAI on both sides: forwarded as received.
    OpenAi,
    /// Anthropic on both sides: forwarded as received, usage read from Anthropic's shape.
    Anthropic,
    /// Anthropic upstream, OpenAI chat client.
    MessagesToChat { include_usage: bool },
    /// Gemini upstream, OpenAI chat client.
    GeminiToChat { include_usage: bool },
    /// OpenAI upstream, Anthropic client.
    ChatToMessages,
    /// Gemini upstream, Anthropic client.
    GeminiToMessages,
}

/// The call for `target`, for a request on `endpoint` whose head is `head`.
pub(super) fn prepare(
    target: Target<'_>,
    endpoint: Endpoint,
    body: &Bytes,
    head: &RequestHead<'_>,
    stream: bool,
) -> Result<Call, Refused> {
    let provider = &target.route.provider;
    let upstream_model = target.route.upstream_model.as_str();
    let url = |endpoint: Endpoint| UpstreamUrl::of(target, endpoint);
    let gemini_url = |path: String| UpstreamUrl::Text(format!("{}{path}", provider.base_url));
    let upstream = |url: UpstreamUrl, body: Bytes, answer: Answer| Call::Upstream {
        url,
        body,
        answer,
        filter_usage: false,
    };
    Ok(match (endpoint.dialect(), provider.kind) {
        (Dialect::OpenAi, ProviderKind::OpenAi) => {
            let rewritten = head.rewrite_model(body, upstream_model);
            // Streams always ask the upstream for usage; when the client did not, the usage-only
            // chunk is filtered out of what it receives.
            let (body, filter_usage) = match stream.then(|| usage::ensure_include_usage(&rewritten))
            {
                Some(Some(IncludeUsage::Added(with_usage))) => (with_usage, true),
                _ => (rewritten, false),
            };
            Call::Upstream {
                url: url(endpoint),
                body,
                answer: Answer::OpenAi,
                filter_usage,
            }
        }
        (Dialect::OpenAi, kind) if endpoint != Endpoint::ChatCompletions => {
            return Err(Refused::Endpoint(format!(
                "{} is not served by '{}' providers (kind {}), only chat completions are.",
                endpoint.public_path(),
                provider.name,
                kind.as_str()
            )));
        }
        (Dialect::OpenAi, ProviderKind::Anthropic) => {
            let (translated, call) = chat_request_to_messages(body, upstream_model)?;
            let answer = Answer::MessagesToChat {
                include_usage: call.include_usage,
            };
            upstream(url(Endpoint::Messages), translated, answer)
        }
        (Dialect::OpenAi, ProviderKind::Gemini) => {
            let (translated, call) = chat_request_to_gemini(body)?;
            let answer = Answer::GeminiToChat {
                include_usage: call.include_usage,
            };
            let path = gemini::endpoint_path(upstream_model, stream);
            upstream(gemini_url(path), translated, answer)
        }
        (Dialect::Anthropic, ProviderKind::Anthropic) => {
            // Messages or CountTokens: Anthropic's paths are the endpoint's own. A `system`
            // message inside `messages` (Claude Code sends one) is folded into `system`, which
            // is where Anthropic-compatible upstreams accept it.
            let rewritten = head.rewrite_model(body, upstream_model);
            let rewritten = fold_system_messages(&rewritten)?.unwrap_or(rewritten);
            upstream(url(endpoint), rewritten, Answer::Anthropic)
        }
        (Dialect::Anthropic, kind) if endpoint == Endpoint::CountTokens => {
            // Neither OpenAI nor Gemini counts a Messages request: count it here, with the
            // tokenizer of the upstream model's family (o200k_base for non-OpenAI models).
            let encoding = match kind {
                ProviderKind::OpenAi => Encoding::for_model(upstream_model),
                _ => Encoding::O200k,
            };
            let tokens = count_message_tokens_with(body, |text| encoding.count(text))?;
            Call::Local(count_tokens_body(tokens))
        }
        (Dialect::Anthropic, ProviderKind::OpenAi) => {
            let translated = messages_request_to_chat(body, upstream_model)?;
            upstream(
                url(Endpoint::ChatCompletions),
                translated,
                Answer::ChatToMessages,
            )
        }
        (Dialect::Anthropic, ProviderKind::Gemini) => {
            let (translated, _) = messages_request_to_gemini(body)?;
            let path = gemini::endpoint_path(upstream_model, stream);
            upstream(gemini_url(path), translated, Answer::GeminiToMessages)
        }
    })
}

impl Answer {
    /// Whether the client gets the upstream's bytes unchanged.
    pub(super) fn is_passthrough(self) -> bool {
        matches!(self, Self::OpenAi | Self::Anthropic)
    }

    /// Whether the upstream's answer reaches the client as it is and in OpenAI's form, so its
    /// usage is read from the body itself.
    pub(super) fn is_openai_passthrough(self) -> bool {
        matches!(self, Self::OpenAi)
    }

    /// A whole successful answer for the client, and the answer in OpenAI's chat form for
    /// reading its usage (none for an Anthropic answer that is not a message, such as a token
    /// count).
    pub(super) fn complete(
        self,
        body: Bytes,
        public_model: &str,
    ) -> Result<(Bytes, Option<Bytes>), TranslateError> {
        Ok(match self {
            Self::OpenAi => (body.clone(), Some(body)),
            Self::Anthropic => {
                let chat = messages_response_to_chat(&body, public_model).ok();
                (body, chat)
            }
            Self::MessagesToChat { .. } => {
                let chat = messages_response_to_chat(&body, public_model)?;
                (chat.clone(), Some(chat))
            }
            Self::GeminiToChat { .. } => {
                let chat = gemini_response_to_chat(&body, public_model)?;
                (chat.clone(), Some(chat))
            }
            Self::ChatToMessages => (chat_response_to_messages(&body, public_model)?, Some(body)),
            Self::GeminiToMessages => {
                let chat = gemini_response_to_chat(&body, public_model)?;
                (chat_response_to_messages(&chat, public_model)?, Some(chat))
            }
        })
    }

    /// An upstream error body (a 4xx that is the client's own) in the client's dialect.
    pub(super) fn error(self, status: u16, body: Bytes) -> Bytes {
        match self {
            Self::OpenAi | Self::Anthropic => body,
            Self::MessagesToChat { .. } => messages_error_to_chat(status, &body),
            Self::GeminiToChat { .. } => gemini_error_to_chat(status, &body),
            Self::ChatToMessages => chat_error_to_messages(status, &body),
            Self::GeminiToMessages => {
                chat_error_to_messages(status, &gemini_error_to_chat(status, &body))
            }
        }
    }

    /// The relay of a streamed answer to `request`.
    pub(super) fn stream(
        self,
        public_model: &str,
        filter_usage: bool,
        request: &[u8],
    ) -> StreamShape {
        // Anthropic clients read the prompt's size from `message_start`, which goes out before
        // an OpenAI or Gemini upstream has counted it: they get llmgate's estimate meanwhile,
        // the same four bytes per token the reservation took. Running the tokenizer here would
        // block the runtime for milliseconds on a long agent prompt, before the first byte.
        let input_estimate = || crate::limits::estimate_tokens(request.len(), Some(Some(0)), true);
        match self {
            Self::OpenAi if filter_usage => StreamShape::OpenAi(StreamUsage::filtering()),
            Self::OpenAi => StreamShape::OpenAi(StreamUsage::new()),
            Self::Anthropic => StreamShape::Anthropic(
                Box::new(MessagesToChatStream::new(public_model, true)),
                StreamUsage::new(),
            ),
            Self::MessagesToChat { include_usage } => StreamShape::MessagesToChat(
                Box::new(MessagesToChatStream::new(public_model, include_usage)),
                StreamUsage::new(),
            ),
            Self::GeminiToChat { include_usage } => StreamShape::GeminiToChat(
                Box::new(GeminiToChatStream::new(public_model, include_usage)),
                StreamUsage::new(),
            ),
            Self::ChatToMessages => StreamShape::ChatToMessages(
                Box::new(
                    ChatToMessagesStream::new(public_model).with_input_estimate(input_estimate()),
                ),
                StreamUsage::new(),
            ),
            Self::GeminiToMessages => StreamShape::GeminiToMessages(Box::new(
                GeminiToMessagesStream::new(public_model).with_input_estimate(input_estimate()),
            )),
        }
    }
}

/// A streamed answer on its way to the client: forwarded or translated frame by frame, with
/// its usage read as it passes. Where a translator sits, a [`StreamUsage`] watches whichever
/// side is in OpenAI's form, for the generated text an estimate needs when the stream is cut.
pub(super) enum StreamShape {
    /// OpenAI events, forwarded (the usage-only chunk possibly held back).
    OpenAi(StreamUsage),
    /// Anthropic events, forwarded; the translator's output is not sent, only read: its usage,
    /// and its text for an estimate when the stream breaks.
    Anthropic(Box<MessagesToChatStream>, StreamUsage),
    /// The chat output is watched.
    MessagesToChat(Box<MessagesToChatStream>, StreamUsage),
    /// The chat output is watched.
    GeminiToChat(Box<GeminiToChatStream>, StreamUsage),
    /// The chat input is watched.
    ChatToMessages(Box<ChatToMessagesStream>, StreamUsage),
    GeminiToMessages(Box<GeminiToMessagesStream>),
}

impl StreamShape {
    /// What to send the client for one chunk of the upstream's body (possibly nothing yet).
    pub(super) fn push(&mut self, chunk: Bytes) -> Bytes {
        match self {
            Self::OpenAi(scanner) => scanner.forward(chunk),
            Self::Anthropic(watch, scanner) => {
                scanner.observe(&watch.push(&chunk));
                chunk
            }
            Self::MessagesToChat(translator, scanner) => {
                let out = translator.push(&chunk);
                scanner.observe(&out);
                out
            }
            Self::GeminiToChat(translator, scanner) => {
                let out = translator.push(&chunk);
                scanner.observe(&out);
                out
            }
            Self::ChatToMessages(translator, scanner) => {
                scanner.observe(&chunk);
                translator.push(&chunk)
            }
            Self::GeminiToMessages(translator) => translator.push(&chunk),
        }
    }

    /// The upstream's body ended: what is left to send, and the failure the client's stream
    /// ended with, if it did (an error the upstream sent, or an answer left unfinished), so the
    /// request is recorded with the outcome the client saw.
    pub(super) fn finish(&mut self, request_id: &str) -> (Bytes, Option<ApiError>) {
        let (out, failure) = match self {
            Self::OpenAi(scanner) => return (scanner.finish(), None),
            Self::Anthropic(watch, scanner) => {
                scanner.observe(&watch.finish());
                let failure = watch.failure();
                // The upstream's own error event was forwarded; a stream that just stopped
                // gets one, never a silent cut.
                let out = match failure {
                    Some(StreamFailure::Unfinished) => {
                        anthropic_error_event(&failure_error(StreamFailure::Unfinished), request_id)
                    }
                    _ => Bytes::new(),
                };
                (out, failure)
            }
            Self::MessagesToChat(translator, scanner) => {
                let out = translator.finish();
                scanner.observe(&out);
                (out, translator.failure())
            }
            Self::GeminiToChat(translator, scanner) => {
                let out = translator.finish();
                scanner.observe(&out);
                (out, translator.failure())
            }
            Self::ChatToMessages(translator, _) => (translator.finish(), translator.failure()),
            Self::GeminiToMessages(translator) => (translator.finish(), translator.failure()),
        };
        (out, failure.map(failure_error))
    }

    /// The stream failed mid-way (the upstream broke, or the gateway is stopping): the error
    /// event that ends the client's stream, in its dialect. An Anthropic client gets the
    /// `error` event alone, on a translated route as on a forwarded one.
    pub(super) fn fail(&mut self, error: &ApiError, request_id: &str) -> Bytes {
        let message = error.client_message(Some(request_id));
        let (status, kind, code) = error.status_type_code();
        let anthropic_kind = anthropic_error_type_for(kind, Some(code), status.as_u16());
        match self {
            Self::OpenAi(_) | Self::MessagesToChat(..) | Self::GeminiToChat(..) => {
                super::error_event(error, request_id)
            }
            Self::Anthropic(..) => anthropic_error_event(error, request_id),
            Self::ChatToMessages(translator, _) => translator.fail(anthropic_kind, &message),
            Self::GeminiToMessages(translator) => translator.fail(anthropic_kind, &message),
        }
    }

    /// The usage of the stream: as reported when it ran to its end; otherwise what was reported
    /// so far, with the completion estimated from the text generated so far when that is more.
    pub(super) fn usage(&self, model: &str, request: &[u8], completed: bool) -> Usage {
        let (reported, scanner) = match self {
            Self::OpenAi(scanner) => return scanner.usage_or_estimate(model, request),
            Self::Anthropic(watch, scanner) => (watch.usage(), Some(scanner)),
            Self::MessagesToChat(translator, scanner) => (translator.usage(), Some(scanner)),
            Self::GeminiToChat(translator, scanner) => (translator.usage(), Some(scanner)),
            Self::ChatToMessages(translator, scanner) => (translator.usage(), Some(scanner)),
            Self::GeminiToMessages(translator) => (translator.usage(), None),
        };
        let generated = scanner.map_or("", |s| s.generated_text());
        match reported.map(usage_of) {
            Some(usage) if completed => usage,
            Some(mut usage) => {
                let estimate = usage::count_tokens(model, generated);
                if estimate > usage.completion_tokens {
                    usage.completion_tokens = estimate;
                    usage.total_tokens = usage.prompt_tokens + estimate;
                    usage.estimated = true;
                }
                usage
            }
            None => usage::estimate_usage(model, request, generated),
        }
    }
}

/// The error a stream that ended with `failure` is recorded with.
fn failure_error(failure: StreamFailure) -> ApiError {
    let detail = match failure {
        StreamFailure::Upstream => "the upstream sent an error mid-stream",
        StreamFailure::Unfinished => "the upstream ended the stream before the answer was complete",
    };
    ApiError::UpstreamFailed {
        detail: detail.to_owned(),
    }
}

/// Token counts from a translator, in the accounting's terms.
fn usage_of(tokens: TokenUsage) -> Usage {
    Usage {
        prompt_tokens: tokens.prompt_tokens,
        completion_tokens: tokens.completion_tokens,
        total_tokens: tokens.prompt_tokens + tokens.completion_tokens,
        cached_tokens: tokens.cached_tokens,
        reasoning_tokens: tokens.reasoning_tokens,
        estimated: false,
    }
}

/// Anthropic's `error` event, for a client of `/v1/messages` whose stream broke.
pub(super) fn anthropic_error_event(error: &ApiError, request_id: &str) -> Bytes {
    let (status, kind, code) = error.status_type_code();
    let body = anthropic_error_body(
        anthropic_error_type_for(kind, Some(code), status.as_u16()),
        &error.client_message(Some(request_id)),
    );
    let mut event = String::with_capacity(body.len() + 24);
    // A frame may have been cut mid-line: start on a fresh line so the event parses.
    event.push_str("\n\nevent: error\ndata: ");
    event.push_str(&body);
    event.push_str("\n\n");
    Bytes::from(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anthropic_error_event_carries_the_request_id_and_the_matching_type() {
        let error = ApiError::UpstreamTimeout {
            detail: "silent".into(),
        };
        let event = anthropic_error_event(&error, "req_1");
        let text = std::str::from_utf8(&event).unwrap();
        let data = text
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(data).unwrap();
        assert!(text.contains("event: error\n"));
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["type"], "timeout_error");
        assert!(json["error"]["message"].as_str().unwrap().contains("req_1"));
    }

    #[test]
    fn a_cut_translated_stream_estimates_the_completion_from_what_was_generated() {
        let mut shape = Answer::ChatToMessages.stream("m", false, b"{}");
        let chunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\
                     \"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hello there, general\"}}]}\n\n";
        let out = shape.push(Bytes::from(chunk));
        assert!(std::str::from_utf8(&out).unwrap().contains("text_delta"));
        let usage = shape.usage("gpt-4o", br#"{"messages":[]}"#, false);
        assert!(usage.estimated);
        assert!(usage.completion_tokens >= 3, "{usage:?}");
    }

    const MESSAGE_START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"several words of an answer\"}}\n\n";

    #[test]
    fn a_forwarded_anthropic_stream_that_stops_short_ends_with_an_error_and_is_a_failure() {
        // Stopped mid-answer: the client gets an error event, never a silent cut.
        let mut shape = Answer::Anthropic.stream("m", false, b"{}");
        assert_eq!(shape.push(Bytes::from(MESSAGE_START)), MESSAGE_START);
        let (tail, failure) = shape.finish("req_1");
        let tail = std::str::from_utf8(&tail).unwrap();
        assert!(
            tail.contains("event: error\n") && tail.contains("req_1"),
            "{tail}"
        );
        assert_eq!(failure.map(|e| e.status().as_u16()), Some(502));
        // The completion is estimated from the text so far, not the 1 of `message_start`.
        let usage = shape.usage("m", b"{}", false);
        assert!(usage.estimated && usage.completion_tokens > 1, "{usage:?}");

        // The upstream's own error event was forwarded: nothing more, but still a failure.
        let mut shape = Answer::Anthropic.stream("m", false, b"{}");
        let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n";
        shape.push(Bytes::from(format!("{MESSAGE_START}{error}")));
        let (tail, failure) = shape.finish("req_1");
        assert!(tail.is_empty());
        assert!(failure.is_some());

        // A complete stream is no failure.
        let mut shape = Answer::Anthropic.stream("m", false, b"{}");
        shape.push(Bytes::from(format!(
            "{MESSAGE_START}event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
             event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":4}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        )));
        let (tail, failure) = shape.finish("req_1");
        assert!(tail.is_empty() && failure.is_none());
        assert_eq!(shape.usage("m", b"{}", true).completion_tokens, 4);
    }

    #[test]
    fn a_translated_stream_left_unfinished_is_recorded_as_a_failure() {
        let mut shape = Answer::ChatToMessages.stream("m", false, b"{}");
        let chunk =
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
        shape.push(Bytes::from(chunk));
        let (tail, failure) = shape.finish("req_1");
        assert!(std::str::from_utf8(&tail).unwrap().contains("event: error"));
        assert!(failure.is_some());
    }
}

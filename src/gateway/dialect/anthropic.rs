//! Anthropic's Messages API on both sides: the ingress of `/v1/messages` and
//! `/v1/messages/count_tokens`, and the `anthropic` provider kind.

use bytes::Bytes;

use super::{Call, Client, Ingress, Provider, Refused, anthropic_error_event};
use crate::error::ApiError;
use crate::gateway::RequestHead;
use crate::pricing::ModelLimits;
use crate::providers::UpstreamUrl;
use crate::routing::Target;
use crate::translate::anthropic::{
    ChatToMessagesStream, MessagesToChatStream, anthropic_error_type_for, chat_error_to_messages,
    chat_request_to_messages, chat_response_to_messages, fold_system_messages,
    messages_error_to_chat, messages_request_to_chat, messages_response_to_chat,
};
use crate::translate::{
    StreamTranslator, TranslateError, count_message_tokens_with, count_tokens_body,
    shape_messages_body,
};
use crate::usage::Encoding;
use crate::vocab::{Endpoint, ProviderKind};

/// A client of Anthropic's Messages API.
pub(super) struct Messages;

impl Ingress for Messages {
    fn native(&self, _provider: &crate::routing::Provider, wire: ProviderKind) -> bool {
        wire == ProviderKind::Anthropic
    }

    /// Messages or CountTokens: Anthropic's paths are the endpoint's own. A `system` message
    /// inside `messages` (Claude Code sends one) is folded into `system`, which is where
    /// Anthropic-compatible upstreams accept it.
    fn pass_through(
        &self,
        body: &Bytes,
        head: &RequestHead<'_>,
        upstream_model: &str,
        _stream: bool,
        shape: Option<ModelLimits>,
        _history: &[&[u8]],
    ) -> Result<(Bytes, bool), TranslateError> {
        let rewritten = head.rewrite_model(body, upstream_model);
        let mut folded = fold_system_messages(&rewritten)?.unwrap_or(rewritten);
        if let Some(limits) = shape
            && let Some(shaped) = shape_messages_body(&folded, limits)?
        {
            folded = shaped;
        }
        Ok((folded, false))
    }

    /// Neither OpenAI nor Gemini counts a Messages request: count it here, with the tokenizer
    /// of the upstream model's family (o200k_base for non-OpenAI models).
    fn elsewhere(
        &self,
        endpoint: Endpoint,
        target: Target<'_>,
        body: &[u8],
    ) -> Option<Result<Call, Refused>> {
        if endpoint != Endpoint::CountTokens {
            return None;
        }
        let encoding = match target.route.provider.kind {
            ProviderKind::OpenAi => Encoding::for_model(&target.route.upstream_model),
            _ => Encoding::O200k,
        };
        Some(
            count_message_tokens_with(body, |text| encoding.count(text))
                .map(|tokens| Call::Local(count_tokens_body(tokens)))
                .map_err(Refused::from),
        )
    }

    fn request_to_chat(
        &self,
        body: &Bytes,
        upstream_model: &str,
        limits: ModelLimits,
        _history: &[&[u8]],
    ) -> Result<(Bytes, Box<dyn Client>), TranslateError> {
        Ok((
            messages_request_to_chat(body, upstream_model, limits)?,
            Box::new(Messages),
        ))
    }

    fn client(&self) -> Box<dyn Client> {
        Box::new(Messages)
    }
}

impl Client for Messages {
    fn answer_from_chat(&self, chat: Bytes, public_model: &str) -> Result<Bytes, TranslateError> {
        chat_response_to_messages(&chat, public_model)
    }

    fn error_from_chat(&self, status: u16, chat: Bytes) -> Bytes {
        chat_error_to_messages(status, &chat)
    }

    /// Anthropic clients read the prompt's size from `message_start`, which goes out before
    /// an OpenAI or Gemini upstream has counted it: they get llmgate's estimate meanwhile,
    /// the same four bytes per token the reservation took. Running the tokenizer here would
    /// block the runtime for milliseconds on a long agent prompt, before the first byte.
    fn stream_from_chat(
        &self,
        public_model: &str,
        request: &[u8],
    ) -> Option<Box<dyn StreamTranslator>> {
        let input_estimate = crate::limits::estimate_tokens(request.len(), Some(Some(0)), true);
        Some(Box::new(
            ChatToMessagesStream::new(public_model).with_input_estimate(input_estimate),
        ))
    }

    /// The `error` event alone, on a translated route as on a forwarded one.
    fn error_event(
        &self,
        error: &ApiError,
        request_id: &str,
        translator: Option<&mut dyn StreamTranslator>,
    ) -> Bytes {
        let Some(translator) = translator else {
            return anthropic_error_event(error, request_id);
        };
        let (status, kind, code) = error.status_type_code();
        let kind = anthropic_error_type_for(kind, Some(code), status.as_u16());
        translator.fail(Some(kind), &error.client_message(Some(request_id)))
    }
}

/// An Anthropic-compatible upstream.
pub(super) struct Anthropic;

impl Provider for Anthropic {
    fn wire(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn url(&self, target: Target<'_>, _stream: bool) -> UpstreamUrl {
        UpstreamUrl::of(target, Endpoint::Messages)
    }

    fn request_from_chat(
        &self,
        chat: Bytes,
        upstream_model: &str,
        limits: ModelLimits,
    ) -> Result<(Bytes, bool), TranslateError> {
        let (translated, call) = chat_request_to_messages(&chat, upstream_model, limits)?;
        Ok((translated, call.include_usage))
    }

    fn answer_to_chat(&self, body: Bytes, public_model: &str) -> Result<Bytes, TranslateError> {
        messages_response_to_chat(&body, public_model)
    }

    fn error_to_chat(&self, status: u16, body: Bytes) -> Bytes {
        messages_error_to_chat(status, &body)
    }

    fn stream_to_chat(
        &self,
        public_model: &str,
        include_usage: bool,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(MessagesToChatStream::new(
            public_model,
            include_usage,
        )))
    }
}

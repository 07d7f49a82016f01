//! OpenAI's API on both sides: the chat ingress (`/v1/chat/completions`, and `/v1/completions`
//! and `/v1/embeddings`, which exist only in OpenAI's API) and the `openai` provider kind, the
//! dialect every translation goes through.

use bytes::Bytes;

use super::{Call, Client, Ingress, Provider, Refused};
use crate::error::ApiError;
use crate::gateway::RequestHead;
use crate::pricing::ModelLimits;
use crate::providers::UpstreamUrl;
use crate::routing::Target;
use crate::translate::{StreamTranslator, TranslateError, shape_chat_body};
use crate::usage::{self, IncludeUsage};
use crate::vocab::{Endpoint, ProviderKind};

/// A client of OpenAI's API.
pub(super) struct Chat;

impl Ingress for Chat {
    fn native(&self, _provider: &crate::routing::Provider, wire: ProviderKind) -> bool {
        wire == ProviderKind::OpenAi
    }

    fn pass_through(
        &self,
        body: &Bytes,
        head: &RequestHead<'_>,
        upstream_model: &str,
        stream: bool,
        shape: Option<ModelLimits>,
        _history: &[&[u8]],
    ) -> Result<(Bytes, bool), TranslateError> {
        let mut rewritten = head.rewrite_model(body, upstream_model);
        if let Some(limits) = shape
            && let Some(shaped) = shape_chat_body(&rewritten, limits)?
        {
            rewritten = shaped;
        }
        // Streams always ask the upstream for usage; when the client did not, the usage-only
        // chunk is filtered out of what it receives.
        Ok(
            match stream.then(|| usage::ensure_include_usage(&rewritten)) {
                Some(Some(IncludeUsage::Added(with_usage))) => (with_usage, true),
                _ => (rewritten, false),
            },
        )
    }

    /// Completions and embeddings: a route to another kind is passed over, as if it were not
    /// there.
    fn elsewhere(
        &self,
        endpoint: Endpoint,
        target: Target<'_>,
        _body: &[u8],
    ) -> Option<Result<Call, Refused>> {
        let provider = &target.route.provider;
        (endpoint != Endpoint::ChatCompletions).then(|| {
            Err(Refused::Endpoint(format!(
                "{} is not served by '{}' providers (kind {}), only chat completions are.",
                endpoint.public_path(),
                provider.name,
                provider.kind.as_str()
            )))
        })
    }

    fn request_to_chat(
        &self,
        body: &Bytes,
        _upstream_model: &str,
        _limits: ModelLimits,
        _history: &[&[u8]],
    ) -> Result<(Bytes, Box<dyn Client>), TranslateError> {
        // The translation to the provider's dialect names the upstream model itself, and
        // shapes the request as it writes it.
        Ok((body.clone(), Box::new(Chat)))
    }

    fn client(&self) -> Box<dyn Client> {
        Box::new(Chat)
    }
}

impl Client for Chat {
    fn answer_from_chat(&self, chat: Bytes, _public_model: &str) -> Result<Bytes, TranslateError> {
        Ok(chat)
    }

    fn error_from_chat(&self, _status: u16, chat: Bytes) -> Bytes {
        chat
    }

    fn stream_from_chat(
        &self,
        _public_model: &str,
        _request: &[u8],
    ) -> Option<Box<dyn StreamTranslator>> {
        None
    }

    fn error_event(
        &self,
        error: &ApiError,
        request_id: &str,
        _translator: Option<&mut dyn StreamTranslator>,
    ) -> Bytes {
        crate::gateway::error_event(error, request_id)
    }
}

/// An OpenAI-compatible upstream.
pub(super) struct OpenAi;

impl Provider for OpenAi {
    fn wire(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn url(&self, target: Target<'_>, _stream: bool) -> UpstreamUrl {
        UpstreamUrl::of(target, Endpoint::ChatCompletions)
    }

    fn request_from_chat(
        &self,
        chat: Bytes,
        _upstream_model: &str,
        _limits: ModelLimits,
    ) -> Result<(Bytes, bool), TranslateError> {
        // A chat request reaches this only from another client dialect, whose translation to
        // chat shaped it already.
        Ok((chat, true))
    }

    fn answer_to_chat(&self, body: Bytes, _public_model: &str) -> Result<Bytes, TranslateError> {
        Ok(body)
    }

    fn error_to_chat(&self, _status: u16, body: Bytes) -> Bytes {
        body
    }

    fn stream_to_chat(
        &self,
        _public_model: &str,
        _include_usage: bool,
    ) -> Option<Box<dyn StreamTranslator>> {
        None
    }
}

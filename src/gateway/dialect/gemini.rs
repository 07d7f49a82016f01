//! Google's Gemini API, as a provider kind: the model is named in the URL, the stream is asked
//! for by path.

use bytes::Bytes;

use super::Provider;
use crate::pricing::ModelLimits;
use crate::providers::UpstreamUrl;
use crate::routing::Target;
use crate::translate::gemini::{
    self, GeminiToChatStream, chat_request_to_gemini, gemini_error_to_chat, gemini_response_to_chat,
};
use crate::translate::{StreamTranslator, TranslateError};
use crate::vocab::ProviderKind;

/// A Gemini upstream.
pub(super) struct Gemini;

impl Provider for Gemini {
    fn wire(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    fn url(&self, target: Target<'_>, stream: bool) -> UpstreamUrl {
        let path = gemini::endpoint_path(&target.route.upstream_model, stream);
        UpstreamUrl::Text(format!("{}{path}", target.route.provider.base_url))
    }

    /// The model is in the URL, not the body.
    fn request_from_chat(
        &self,
        chat: Bytes,
        _upstream_model: &str,
        limits: ModelLimits,
    ) -> Result<(Bytes, bool), TranslateError> {
        let (translated, call) = chat_request_to_gemini(&chat, limits)?;
        Ok((translated, call.include_usage))
    }

    fn answer_to_chat(&self, body: Bytes, public_model: &str) -> Result<Bytes, TranslateError> {
        gemini_response_to_chat(&body, public_model)
    }

    fn error_to_chat(&self, status: u16, body: Bytes) -> Bytes {
        gemini_error_to_chat(status, &body)
    }

    fn stream_to_chat(
        &self,
        public_model: &str,
        include_usage: bool,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(GeminiToChatStream::new(
            public_model,
            include_usage,
        )))
    }
}

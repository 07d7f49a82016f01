//! Azure OpenAI, as a provider kind: OpenAI's dialect on the wire, with the route's model naming
//! a deployment in the path (`{base_url}/deployments/{deployment}/chat/completions`) and the
//! provider's `api_version` in the query. Chat, completions and embeddings pass through as to
//! OpenAI; Messages and Responses clients are translated to chat as for OpenAI.

use bytes::Bytes;

use super::Provider;
use super::openai::OpenAi;
use crate::pricing::ModelLimits;
use crate::providers::UpstreamUrl;
use crate::routing::Target;
use crate::translate::{StreamTranslator, TranslateError};
use crate::vocab::{Endpoint, ProviderKind};

/// An Azure OpenAI resource.
pub(super) struct Azure;

impl Provider for Azure {
    fn wire(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn url(&self, target: Target<'_>, stream: bool) -> UpstreamUrl {
        self.passthrough_url(target, Endpoint::ChatCompletions, stream)
    }

    fn passthrough_url(
        &self,
        target: Target<'_>,
        endpoint: Endpoint,
        _stream: bool,
    ) -> UpstreamUrl {
        let provider = &target.route.provider;
        let mut url = format!(
            "{}/deployments/{}{}",
            provider.base_url,
            super::path_segment(&target.route.upstream_model),
            endpoint.path()
        );
        if let Some(version) = &provider.options.api_version {
            url.push_str("?api-version=");
            url.push_str(version);
        }
        UpstreamUrl::Text(url)
    }

    fn request_from_chat(
        &self,
        chat: Bytes,
        upstream_model: &str,
        limits: ModelLimits,
    ) -> Result<(Bytes, bool), TranslateError> {
        OpenAi.request_from_chat(chat, upstream_model, limits)
    }

    fn answer_to_chat(&self, body: Bytes, public_model: &str) -> Result<Bytes, TranslateError> {
        OpenAi.answer_to_chat(body, public_model)
    }

    fn error_to_chat(&self, status: u16, body: Bytes) -> Bytes {
        OpenAi.error_to_chat(status, body)
    }

    fn stream_to_chat(
        &self,
        public_model: &str,
        include_usage: bool,
    ) -> Option<Box<dyn StreamTranslator>> {
        OpenAi.stream_to_chat(public_model, include_usage)
    }
}

//! AWS Bedrock, as a provider kind: the Converse API, the model in the URL
//! (`{base_url}/model/{modelId}/converse`, `/converse-stream` for a stream, whose answer is a
//! binary event stream). Every dialect reaches it through OpenAI chat; the request is signed
//! with SigV4 where every request is built (`providers::build_request`).

use bytes::Bytes;

use super::Provider;
use crate::pricing::ModelLimits;
use crate::providers::UpstreamUrl;
use crate::routing::Target;
use crate::translate::bedrock::{
    ConverseToChatStream, chat_request_to_converse, converse_error_to_chat,
    converse_response_to_chat, endpoint_path,
};
use crate::translate::{StreamTranslator, TranslateError};
use crate::vocab::ProviderKind;

/// A Bedrock upstream.
pub(super) struct Bedrock;

impl Provider for Bedrock {
    fn wire(&self) -> ProviderKind {
        ProviderKind::Bedrock
    }

    fn url(&self, target: Target<'_>, stream: bool) -> UpstreamUrl {
        // The model id (`anthropic.claude-…-v1:0`, or an ARN) is one path segment, encoded as
        // AWS's SDKs encode it, so the signature covers the path the service sees.
        let model = super::path_segment(&target.route.upstream_model);
        let path = endpoint_path(&model, stream);
        UpstreamUrl::Text(format!("{}{path}", target.route.provider.base_url))
    }

    /// The model is in the URL, not the body.
    fn request_from_chat(
        &self,
        chat: Bytes,
        _upstream_model: &str,
        limits: ModelLimits,
    ) -> Result<(Bytes, bool), TranslateError> {
        let (translated, call) = chat_request_to_converse(&chat, limits)?;
        Ok((translated, call.include_usage))
    }

    fn answer_to_chat(&self, body: Bytes, public_model: &str) -> Result<Bytes, TranslateError> {
        converse_response_to_chat(&body, public_model)
    }

    fn error_to_chat(&self, status: u16, body: Bytes) -> Bytes {
        converse_error_to_chat(status, &body)
    }

    fn stream_to_chat(
        &self,
        public_model: &str,
        include_usage: bool,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(ConverseToChatStream::new(
            public_model,
            include_usage,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_id_with_a_colon_is_one_encoded_segment() {
        assert_eq!(
            endpoint_path(
                &super::super::path_segment("anthropic.claude-3-haiku-20240307-v1:0"),
                true
            ),
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
        );
    }
}

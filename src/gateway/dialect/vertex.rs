//! Google Vertex AI, as a provider kind: one endpoint for the models of several publishers,
//! addressed as `{base_url}/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}`.
//! A route's model that starts with `claude` is Anthropic's (`:rawPredict`/`:streamRawPredict`,
//! a Messages body without `model` and with Vertex's `anthropic_version`); every other model is
//! Google's Gemini (`:generateContent`/`:streamGenerateContent?alt=sse`). The access token is
//! minted from the account's service account (`providers::AccessTokens`).

use bytes::Bytes;
use serde_json::{Map, Value};

use super::Provider;
use super::anthropic::Anthropic;
use super::gemini::Gemini;
use crate::pricing::ModelLimits;
use crate::providers::UpstreamUrl;
use crate::routing::{Target, VERTEX_ANTHROPIC_VERSION};
use crate::translate::{StreamTranslator, TranslateError};
use crate::vocab::{Endpoint, ProviderKind};

/// The provider for a route to `upstream_model`: Anthropic's models by their name, Google's
/// otherwise.
pub(super) fn publisher(upstream_model: &str) -> &'static dyn Provider {
    if upstream_model.starts_with("claude") {
        &VertexAnthropic
    } else {
        &VertexGemini
    }
}

/// `{base_url}/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}`.
fn model_url(target: Target<'_>, publisher: &str, model: &str, method: &str) -> UpstreamUrl {
    let provider = &target.route.provider;
    let options = &provider.options;
    UpstreamUrl::Text(format!(
        "{}/projects/{}/locations/{}/publishers/{publisher}/models/{}:{method}",
        provider.base_url,
        options.project.as_deref().unwrap_or_default(),
        options.region.as_deref().unwrap_or_default(),
        super::path_segment(model),
    ))
}

/// Gemini models on Vertex AI: Gemini's dialect at Vertex's address.
struct VertexGemini;

impl Provider for VertexGemini {
    fn wire(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    fn url(&self, target: Target<'_>, stream: bool) -> UpstreamUrl {
        let model = target.route.upstream_model.as_str();
        let model = model.strip_prefix("models/").unwrap_or(model);
        let method = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        model_url(target, "google", model, method)
    }

    fn request_from_chat(
        &self,
        chat: Bytes,
        upstream_model: &str,
        limits: ModelLimits,
    ) -> Result<(Bytes, bool), TranslateError> {
        Gemini.request_from_chat(chat, upstream_model, limits)
    }

    fn answer_to_chat(&self, body: Bytes, public_model: &str) -> Result<Bytes, TranslateError> {
        Gemini.answer_to_chat(body, public_model)
    }

    fn error_to_chat(&self, status: u16, body: Bytes) -> Bytes {
        Gemini.error_to_chat(status, body)
    }

    fn stream_to_chat(
        &self,
        public_model: &str,
        include_usage: bool,
    ) -> Option<Box<dyn StreamTranslator>> {
        Gemini.stream_to_chat(public_model, include_usage)
    }
}

/// Anthropic's models on Vertex AI: the Messages dialect, the model in the URL and Vertex's
/// version in the body. Messages clients pass through.
struct VertexAnthropic;

impl Provider for VertexAnthropic {
    fn wire(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn url(&self, target: Target<'_>, stream: bool) -> UpstreamUrl {
        let method = if stream {
            "streamRawPredict"
        } else {
            "rawPredict"
        };
        model_url(target, "anthropic", &target.route.upstream_model, method)
    }

    /// A token count goes to Vertex's `count-tokens` model, which reads the model from the body.
    fn passthrough_url(&self, target: Target<'_>, endpoint: Endpoint, stream: bool) -> UpstreamUrl {
        if endpoint == Endpoint::CountTokens {
            return model_url(target, "anthropic", "count-tokens", "rawPredict");
        }
        self.url(target, stream)
    }

    fn adapt_passthrough(&self, body: Bytes, endpoint: Endpoint) -> Result<Bytes, TranslateError> {
        if endpoint == Endpoint::CountTokens {
            return Ok(body);
        }
        for_vertex(&body)
    }

    fn request_from_chat(
        &self,
        chat: Bytes,
        upstream_model: &str,
        limits: ModelLimits,
    ) -> Result<(Bytes, bool), TranslateError> {
        let (messages, include_usage) =
            Anthropic.request_from_chat(chat, upstream_model, limits)?;
        Ok((for_vertex(&messages)?, include_usage))
    }

    fn answer_to_chat(&self, body: Bytes, public_model: &str) -> Result<Bytes, TranslateError> {
        Anthropic.answer_to_chat(body, public_model)
    }

    fn error_to_chat(&self, status: u16, body: Bytes) -> Bytes {
        Anthropic.error_to_chat(status, body)
    }

    fn stream_to_chat(
        &self,
        public_model: &str,
        include_usage: bool,
    ) -> Option<Box<dyn StreamTranslator>> {
        Anthropic.stream_to_chat(public_model, include_usage)
    }
}

/// A Messages body as Vertex AI takes it: no `model` (the URL names it) and Vertex's
/// `anthropic_version`.
fn for_vertex(body: &[u8]) -> Result<Bytes, TranslateError> {
    let mut request: Map<String, Value> =
        serde_json::from_slice(body).map_err(|source| TranslateError::RequestJson {
            api: "Anthropic Messages",
            source,
        })?;
    request.remove("model");
    request.insert(
        "anthropic_version".to_owned(),
        Value::String(VERTEX_ANTHROPIC_VERSION.to_owned()),
    );
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(|error| {
            TranslateError::InvalidRequest(format!("cannot write the request: {error}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_messages_body_for_vertex_names_no_model_and_vertex_s_version() {
        let body = for_vertex(br#"{"model":"claude-x","max_tokens":5,"messages":[]}"#).unwrap();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert!(json.get("model").is_none());
        assert_eq!(json["anthropic_version"], "vertex-2023-10-16");
        assert_eq!(json["max_tokens"], 5);
    }

    #[test]
    fn the_publisher_is_told_by_the_model_name() {
        assert_eq!(
            publisher("claude-sonnet-4@20250514").wire(),
            ProviderKind::Anthropic
        );
        assert_eq!(publisher("gemini-2.5-flash").wire(), ProviderKind::Gemini);
    }
}

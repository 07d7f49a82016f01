//! Upstream dialects: how to address and authenticate each kind of provider. Providers receive
//! the shared client; none owns one.

mod openai;

use bytes::Bytes;

use crate::routing::{ProviderKind, Target};

/// The OpenAI-style endpoints the gateway proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The path appended to a provider's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Completions => "/completions",
            Self::Embeddings => "/embeddings",
        }
    }

    /// A short name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }

    /// Whether the endpoint can answer with a stream of server-sent events.
    pub fn can_stream(self) -> bool {
        !matches!(self, Self::Embeddings)
    }
}

/// Builds the upstream request for one attempt: URL, credential and body.
pub fn build_request(
    client: &reqwest::Client,
    target: Target<'_>,
    endpoint: Endpoint,
    body: Bytes,
    request_id: &str,
) -> reqwest::RequestBuilder {
    match target.route.provider.kind {
        ProviderKind::OpenAi => openai::build_request(client, target, endpoint, body, request_id),
    }
}

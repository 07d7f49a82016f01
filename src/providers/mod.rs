//! Upstream dialects: the endpoints the gateway serves, and how to address and authenticate
//! each kind of provider. Providers receive the shared client; none owns one.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};

use crate::routing::{ProviderKind, Target};

/// The client API endpoints the gateway proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    /// Anthropic's `POST /v1/messages`.
    Messages,
    /// Anthropic's `POST /v1/messages/count_tokens`.
    CountTokens,
}

// Every endpoint has a slot in `Endpoint::COUNT`-sized tables.
const _: () = assert!(Endpoint::CountTokens as usize + 1 == Endpoint::COUNT);

/// The API a client speaks, which decides the shape of its answers and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
}

impl Endpoint {
    /// How many endpoints there are (slots of a provider's cached URLs).
    pub const COUNT: usize = 5;

    /// The path appended to a provider's base URL for this endpoint (OpenAI's paths; Anthropic's
    /// for `Messages` and `CountTokens`).
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Completions => "/completions",
            Self::Embeddings => "/embeddings",
            Self::Messages => "/messages",
            Self::CountTokens => "/messages/count_tokens",
        }
    }

    /// The path clients call, for messages.
    pub fn public_path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Messages => "/v1/messages",
            Self::CountTokens => "/v1/messages/count_tokens",
        }
    }

    /// A short name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Messages => "messages",
            Self::CountTokens => "count_tokens",
        }
    }

    /// Whether the endpoint can answer with a stream of server-sent events.
    pub fn can_stream(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Completions | Self::Messages
        )
    }

    /// The API a client of this endpoint speaks.
    pub fn dialect(self) -> Dialect {
        match self {
            Self::Messages | Self::CountTokens => Dialect::Anthropic,
            Self::ChatCompletions | Self::Completions | Self::Embeddings => Dialect::OpenAi,
        }
    }

    /// Whether the endpoint generates tokens that are reserved, limited and accounted
    /// (a token count does not).
    pub fn generates(self) -> bool {
        self != Self::CountTokens
    }
}

/// Anthropic's version header, sent when the client named none.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Headers of the client's request that reach an upstream of its own dialect: Anthropic's
/// `anthropic-version` and `anthropic-beta` (a Claude Code client relies on its betas).
#[derive(Debug, Clone, Default)]
pub struct ClientHeaders {
    pub anthropic_version: Option<HeaderValue>,
    pub anthropic_beta: Option<HeaderValue>,
}

/// The request id, sent upstream as the client's request carried it (or as llmgate made it).
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Where one attempt goes.
#[derive(Debug)]
pub enum UpstreamUrl {
    /// One of the provider's endpoint URLs, parsed once per catalog snapshot.
    Parsed(reqwest::Url),
    /// A URL made for this request (Gemini names the model in the path); the client parses it.
    Text(String),
}

impl UpstreamUrl {
    /// `base_url` + `endpoint`'s path of `target`'s provider, parsed once and then cloned.
    pub fn of(target: Target<'_>, endpoint: Endpoint) -> Self {
        let provider = &target.route.provider;
        match provider.endpoint_url(endpoint) {
            Some(url) => Self::Parsed(url.clone()),
            None => Self::Text(format!("{}{}", provider.base_url, endpoint.path())),
        }
    }
}

/// Builds the upstream request for one attempt: `url` (already chosen for the provider's
/// dialect), the account's credential in the provider's header, and `body`.
pub fn build_request(
    client: &reqwest::Client,
    target: Target<'_>,
    url: UpstreamUrl,
    body: Bytes,
    request_id: &str,
    client_headers: &ClientHeaders,
) -> reqwest::RequestBuilder {
    let kind = target.route.provider.kind;
    let request = match url {
        UpstreamUrl::Parsed(url) => client.post(url),
        UpstreamUrl::Text(url) => client.post(url),
    };
    let mut request = request
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(REQUEST_ID, request_id)
        .body(body);
    if kind == ProviderKind::Anthropic {
        let version = client_headers
            .anthropic_version
            .clone()
            .unwrap_or(HeaderValue::from_static(ANTHROPIC_VERSION));
        request = request.header(HeaderName::from_static("anthropic-version"), version);
        if let Some(beta) = &client_headers.anthropic_beta {
            request = request.header(HeaderName::from_static("anthropic-beta"), beta.clone());
        }
    }
    // A provider with no accounts needs no credential (a local vLLM or Ollama).
    if let Some(account) = target.account {
        let secret = account.api_key.expose();
        let (name, value) = match kind {
            ProviderKind::OpenAi => (
                AUTHORIZATION,
                HeaderValue::try_from(format!("Bearer {secret}")),
            ),
            ProviderKind::Anthropic => (
                HeaderName::from_static("x-api-key"),
                HeaderValue::try_from(secret),
            ),
            ProviderKind::Gemini => (
                HeaderName::from_static("x-goog-api-key"),
                HeaderValue::try_from(secret),
            ),
        };
        let mut value = value.unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        request = request.header(name, value);
    }
    request
}

//! Upstream dialects: the endpoints the gateway serves, and how to address and authenticate
//! each kind of provider. Providers receive the shared client; none owns one.

mod access_tokens;
mod aws;

pub use access_tokens::{AccessTokens, MintFailure, check_service_account};
pub use aws::{SigningFailure, aws_access_key_id, aws_credential, sigv4_headers};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};

use crate::routing::Target;
use crate::secret::Secret;
use crate::vocab::{Endpoint, ProviderKind};

/// The shared upstream client of the moment. `upstream::UpstreamClient` replaces the client in
/// it at a fixed age; a holder loads it for each request it sends.
pub type CurrentClient = std::sync::Arc<arc_swap::ArcSwap<reqwest::Client>>;

/// Anthropic's version header, sent when the client named none.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Headers of the client's request that reach an upstream of its own dialect: Anthropic's
/// `anthropic-version` and `anthropic-beta` (a Claude Code client relies on its betas).
#[derive(Debug, Clone, Default)]
pub struct ClientHeaders {
    pub anthropic_version: Option<HeaderValue>,
    pub anthropic_beta: Option<HeaderValue>,
    /// The trace the client's request belongs to (`traceparent`), when traces are exported:
    /// the request's span continues it, and the upstream attempts with it.
    pub trace_parent: Option<opentelemetry::Context>,
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
/// dialect), the provider's extra headers, the account's credential in the provider's header
/// (for Vertex AI the `access_token` minted from it; for AWS Bedrock the SigV4 signature made
/// with it, over the URL, the content type and `body`, at the wall clock's time as AWS requires),
/// and `body`. Fails only when a Bedrock request cannot be signed.
pub fn build_request(
    client: &reqwest::Client,
    target: Target<'_>,
    url: UpstreamUrl,
    body: Bytes,
    request_id: &str,
    client_headers: &ClientHeaders,
    access_token: Option<&Secret>,
) -> Result<reqwest::RequestBuilder, SigningFailure> {
    let kind = target.route.provider.kind;
    let signature = match target.account {
        Some(account) if kind == ProviderKind::Bedrock => {
            let url = match &url {
                UpstreamUrl::Parsed(url) => url.as_str(),
                UpstreamUrl::Text(url) => url.as_str(),
            };
            let region = target.route.provider.options.region.as_deref();
            Some(sigv4_headers(
                account.api_key.expose(),
                region.unwrap_or_default(),
                url,
                JSON,
                &body,
                std::time::SystemTime::now(),
            )?)
        }
        _ => None,
    };
    let request = match url {
        UpstreamUrl::Parsed(url) => client.post(url),
        UpstreamUrl::Text(url) => client.post(url),
    };
    let mut request = request
        .header(CONTENT_TYPE, HeaderValue::from_static(JSON))
        .header(REQUEST_ID, request_id)
        .body(body);
    // The operator's extra headers; none of them is one llmgate sets below (the provider's
    // check refuses those names).
    for (name, value) in &target.route.provider.options.headers {
        request = request.header(name.clone(), value.clone());
    }
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
    // The signature's headers; the operator's extra headers above are not signed, which AWS
    // allows for headers outside `SignedHeaders`.
    for (name, value) in signature.into_iter().flatten() {
        let mut value =
            HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        request = request.header(name, value);
    }
    // A provider with no accounts needs no credential (a local vLLM or Ollama); a Bedrock
    // account's is in the signature.
    if let Some(account) = target.account {
        let secret = account.api_key.expose();
        let header = match kind {
            ProviderKind::OpenAi => Some((AUTHORIZATION, bearer(secret))),
            ProviderKind::Azure => Some((
                HeaderName::from_static("api-key"),
                HeaderValue::try_from(secret),
            )),
            // The account's credential is the service account's key file; what goes upstream
            // is the access token minted from it.
            ProviderKind::Vertex => Some((
                AUTHORIZATION,
                bearer(access_token.map(Secret::expose).unwrap_or_default()),
            )),
            ProviderKind::Anthropic => Some((
                HeaderName::from_static("x-api-key"),
                HeaderValue::try_from(secret),
            )),
            ProviderKind::Gemini => Some((
                HeaderName::from_static("x-goog-api-key"),
                HeaderValue::try_from(secret),
            )),
            ProviderKind::Bedrock => None,
        };
        if let Some((name, value)) = header {
            let mut value = value.unwrap_or_else(|_| HeaderValue::from_static(""));
            value.set_sensitive(true);
            request = request.header(name, value);
        }
    }
    Ok(request)
}

/// `Bearer TOKEN`, copied once into the header's buffer: `format!` cost most of the request's
/// header building (callgrind, OPTIMIZATION.md).
fn bearer(token: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut value = Vec::with_capacity(7 + token.len());
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(token.as_bytes());
    HeaderValue::from_maybe_shared(Bytes::from(value))
}

/// The content type of every request body llmgate sends upstream.
const JSON: &str = "application/json";

//! OpenAI and every OpenAI-compatible API: `POST {base_url}/chat/completions` with a bearer key.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::Endpoint;
use crate::routing::Target;

pub(super) fn build_request(
    client: &reqwest::Client,
    target: Target<'_>,
    endpoint: Endpoint,
    body: Bytes,
    request_id: &str,
) -> reqwest::RequestBuilder {
    let provider = &target.route.provider;
    let mut url = String::with_capacity(provider.base_url.len() + 20);
    url.push_str(&provider.base_url);
    url.push_str(endpoint.path());
    let mut request = client
        .post(url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header("x-request-id", request_id)
        .body(body);
    if let Some(account) = target.account {
        let mut value = HeaderValue::try_from(format!("Bearer {}", account.api_key.expose()))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        request = request.header(AUTHORIZATION, value);
    }
    request
}

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
    let request = match provider.endpoint_url(endpoint) {
        Some(url) => client.post(url.clone()),
        None => client.post(format!("{}{}", provider.base_url, endpoint.path())),
    };
    let mut request = request
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

//! The one shared upstream HTTP client: a keep-alive pool, `TCP_NODELAY`, connect and read
//! timeouts. Providers receive it; nothing else builds a client. Also how a whole answer is read
//! from it: never more than a cap.

use bytes::{Bytes, BytesMut};

use crate::settings::UpstreamSettings;

#[derive(Debug, thiserror::Error)]
#[error("cannot build the upstream HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// Builds the client every upstream call goes through.
///
/// There is no total timeout here: a streamed answer may legitimately last minutes. The read
/// timeout bounds silence between two bytes; non-streaming calls add a per-request deadline.
#[expect(
    clippy::disallowed_methods,
    reason = "this is the one place the upstream client is built"
)]
pub fn build_client(settings: &UpstreamSettings) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .tcp_nodelay(true)
        .tcp_keepalive(std::time::Duration::from_secs(30))
        .http2_adaptive_window(true)
        // llmgate retries itself, on the next candidate and only before the first byte
        // (gateway::forward). reqwest's own retry layer would otherwise copy every request's
        // headers in case it retries an HTTP/2 refusal.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        // An upstream's redirect goes back to the client as it came: following it would
        // replay a POST (and its credential) somewhere the operator did not configure.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("llmgate/", env!("CARGO_PKG_VERSION")));
    // Proxies come only from llmgate's own setting, never implicitly from HTTP_PROXY: a gateway
    // should not reroute its traffic because of a variable meant for something else.
    builder = match &settings.proxy {
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy)?),
        None => builder.no_proxy(),
    };
    Ok(builder.build()?)
}

/// Why a buffered upstream answer could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The answer is longer than the cap (`LLMGATE_MAX_UPSTREAM_BODY_BYTES`).
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Read(#[from] reqwest::Error),
}

/// Reads a whole (non-streamed) answer of at most `limit` bytes. A declared `Content-Length`
/// over the limit fails before reading anything; otherwise reading stops as soon as the limit
/// is passed, and what was read is dropped with the connection, so memory goes back at once.
///
/// An answer that arrives in one chunk is returned without a copy, as `bytes()` would.
pub async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    let too_large = BodyError::TooLarge { limit };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large);
    }
    let Some(first) = response.chunk().await? else {
        return Ok(Bytes::new());
    };
    if first.len() > limit {
        return Err(too_large);
    }
    let Some(second) = response.chunk().await? else {
        return Ok(first);
    };
    let declared = response
        .content_length()
        .and_then(|length| usize::try_from(length).ok());
    let mut body =
        BytesMut::with_capacity(declared.unwrap_or(first.len() + second.len()).min(limit));
    body.extend_from_slice(&first);
    drop(first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
        next = response.chunk().await?;
    }
    Ok(body.freeze())
}

/// Reads at most `limit` bytes of an error answer, for its message and its kind: the rest is
/// left unread (an error body that long says nothing more worth reading).
pub async fn read_error_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, reqwest::Error> {
    let mut body = BytesMut::new();
    while body.len() < limit {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(body.freeze())
}

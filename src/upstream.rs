//! The one shared upstream HTTP client: a keep-alive pool, `TCP_NODELAY`, connect and read
//! timeouts. Providers receive it; nothing else builds a client.

use crate::settings::UpstreamSettings;

#[derive(Debug, thiserror::Error)]
#[error("cannot build the upstream HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// Builds the client every upstream call goes through.
///
/// There is no total timeout here: a streamed answer may legitimately last minutes. The read
/// timeout bounds silence between two bytes; non-streaming calls add a per-request deadline.
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

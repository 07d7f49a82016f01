//! The one shared upstream HTTP client: a keep-alive pool, `TCP_NODELAY`, a connect timeout,
//! replaced by a fresh one of the same settings at a fixed age so that no pooled connection
//! takes requests for the life of the process. Providers receive it; nothing else builds a
//! client. Also how long an attempt waits on it ([`Patience`]: its deadline and the read
//! timeout), and how a whole answer is read from it: never more than a cap.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, Sleep};

use crate::clock::Clock;
use crate::providers::CurrentClient;
use crate::settings::UpstreamSettings;

#[derive(Debug, thiserror::Error)]
#[error("cannot build the upstream HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// Builds the client every upstream call goes through.
///
/// There is no total timeout here: a streamed answer may legitimately last minutes. Nor a read
/// timeout: silence between two bytes (`LLMGATE_UPSTREAM_READ_TIMEOUT`) is bounded by the
/// gateway's [`Patience`], one timer per attempt moved on as bytes arrive, where reqwest's read
/// timeout makes and registers a timer of its own for every frame it polls, and another for the
/// response headers.
#[expect(
    clippy::disallowed_methods,
    reason = "this is the one place the upstream client is built"
)]
pub fn build_client(settings: &UpstreamSettings) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
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

/// The upstream client every request goes through: one current `reqwest::Client` (one pool of
/// connections), replaced by a fresh one built with the same settings once it has taken new
/// requests for `LLMGATE_UPSTREAM_POOL_MAX_AGE`.
///
/// Why: a pooled upstream connection's buffers only grow. hyper reserves more for the next read
/// after a read that filled its buffer, and a `BytesMut` that frames in flight still refer to
/// is replaced by one of its remembered capacity (up to 64 KiB); none of it is given back while
/// the connection lives (hyper 1.12 `proto/h1/io.rs`, bytes 1.12 `BytesMut::reserve`). In the
/// ten-minute streams soak each pooled connection held 28 KiB after 300 s and 67 KiB after
/// 600 s, and reqwest 0.12 offers neither a cap on that buffer nor a lifetime for a connection
/// (its `connector_layer` sees connections being made, not the connections themselves).
/// Replacing the whole pool bounds every connection's life to the age plus its last answer.
///
/// What a replacement does: requests sent from then on take the new client and open its
/// connections as they need them. A request already sent keeps the connection it was sent on
/// until its answer, streamed or not, has ended; the old pool is dropped with the last
/// reference to the old client (at once, unless a request is still connecting), which closes
/// its idle connections then, and each busy one as its answer ends, since there is no pool left
/// to put it back in. The cost: each upstream connection is made anew (TCP, and TLS without
/// resumption, since the session cache belongs to the old client) once per age.
///
/// The replacement is made by the first request that finds the client past its age, on the
/// App's [`Clock`] (tests advance it): building a client costs about 4 µs (measured in a test
/// build), once per age, and every other request pays one clock reading and one atomic load.
/// No background task runs for it, so an idle gateway does nothing, and its idle connections
/// close on the pool's idle timeout as before.
#[derive(Clone)]
pub struct UpstreamClient {
    renewal: Arc<Renewal>,
}

/// The current client and when it is next replaced.
struct Renewal {
    current: CurrentClient,
    settings: UpstreamSettings,
    clock: Clock,
    max_age_nanos: u64,
    /// The monotonic time (`Clock::monotonic_nanos`) from which the next request replaces the
    /// client; moved forward by the request that does, so only one request builds a client.
    renew_at_nanos: AtomicU64,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("max_age", &self.renewal.settings.pool_max_age)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// Builds the first client; fails as [`build_client`] does.
    pub fn new(settings: &UpstreamSettings, clock: Clock) -> Result<Self, ClientError> {
        let client = build_client(settings)?;
        let max_age_nanos = u64::try_from(settings.pool_max_age.as_nanos()).unwrap_or(u64::MAX);
        let renew_at_nanos = AtomicU64::new(clock.monotonic_nanos().saturating_add(max_age_nanos));
        Ok(Self {
            renewal: Arc::new(Renewal {
                current: Arc::new(ArcSwap::from_pointee(client)),
                settings: settings.clone(),
                clock,
                max_age_nanos,
                renew_at_nanos,
            }),
        })
    }

    /// The client a new request is sent through: the current one, replaced first when it has
    /// reached its age. Hold it only to build the request (a `RequestBuilder` keeps its own
    /// reference to its client), not across an await.
    pub fn client(&self) -> Guard<Arc<reqwest::Client>> {
        let renewal = &*self.renewal;
        let due = renewal.renew_at_nanos.load(Ordering::Relaxed);
        let now = renewal.clock.monotonic_nanos();
        // Only the request whose exchange moves the time forward builds the next client; the
        // others meanwhile go on with the current one.
        if now >= due
            && renewal
                .renew_at_nanos
                .compare_exchange(
                    due,
                    now.saturating_add(renewal.max_age_nanos),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            renewal.renew();
        }
        renewal.current.load()
    }

    /// Longest silence between two upstream bytes (`LLMGATE_UPSTREAM_READ_TIMEOUT`), which
    /// each attempt's [`Patience`] enforces.
    pub fn read_timeout(&self) -> Duration {
        self.renewal.settings.read_timeout
    }

    /// The current client as a shared cell, for a sender that follows the replacements without
    /// making them (the access tokens: one request an hour per account would not keep a pool
    /// warm anyway).
    pub fn current(&self) -> CurrentClient {
        self.renewal.current.clone()
    }
}

impl Renewal {
    /// Puts a fresh client in place of the current one. The settings built one at start-up, so
    /// a failure here is unexpected; the current client then stays until the next age passes.
    fn renew(&self) {
        match build_client(&self.settings) {
            Ok(client) => {
                self.current.store(Arc::new(client));
                tracing::debug!(
                    max_age = ?self.settings.pool_max_age,
                    "upstream client replaced: new requests open fresh connections, the old ones close as their answers end"
                );
            }
            Err(error) => tracing::warn!(
                %error,
                "cannot build a fresh upstream client; the current one stays until the next renewal"
            ),
        }
    }
}

/// How long an upstream may keep an attempt waiting: never past the attempt's deadline (if it
/// has one: a stream's body has none), and never longer than the read timeout
/// (`LLMGATE_UPSTREAM_READ_TIMEOUT`) without a byte. One timer for the whole attempt, its
/// deadline moved on as bytes arrive, which costs no new registration with the runtime's timer
/// wheel (a later deadline only updates the registered one).
#[derive(Debug)]
pub struct Patience {
    timer: Pin<Box<Sleep>>,
    deadline: Option<Instant>,
    silence: Duration,
}

/// Why [`Patience`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impatient {
    /// The attempt's deadline passed.
    Deadline,
    /// The upstream sent nothing for this long (the read timeout).
    Silent(Duration),
}

impl Patience {
    /// Starts counting now: until `deadline`, or `silence` from now, whichever is first.
    pub fn new(deadline: Option<Instant>, silence: Duration) -> Self {
        Self {
            timer: Box::pin(tokio::time::sleep_until(until(deadline, silence))),
            deadline,
            silence,
        }
    }

    /// The upstream sent something: its silence counts from now.
    pub fn heard(&mut self) {
        let until = until(self.deadline, self.silence);
        if until != self.timer.deadline() {
            self.timer.as_mut().reset(until);
        }
    }

    /// From now on only silence counts: a stream's body has no deadline.
    pub fn without_deadline(&mut self) {
        self.deadline = None;
        self.heard();
    }

    /// Ready when patience has run out (the deadline passed, or the upstream was silent too
    /// long), with the reason; wakes `cx` then.
    pub fn poll_run_out(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Impatient> {
        self.timer.as_mut().poll(cx).map(|()| self.why())
    }

    /// `future`'s output, unless patience runs out first.
    pub async fn wait<F: Future>(&mut self, future: F) -> Result<F::Output, Impatient> {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => std::task::Poll::Ready(Ok(output)),
            std::task::Poll::Pending => self.poll_run_out(cx).map(Err),
        })
        .await
    }

    fn why(&self) -> Impatient {
        match self.deadline {
            Some(deadline) if self.timer.deadline() >= deadline => Impatient::Deadline,
            _ => Impatient::Silent(self.silence),
        }
    }
}

/// The earlier of `deadline` and `silence` from now.
fn until(deadline: Option<Instant>, silence: Duration) -> Instant {
    let now = Instant::now();
    let silent = now.checked_add(silence).unwrap_or(now + FAR_FUTURE);
    match deadline {
        Some(deadline) => deadline.min(silent),
        None => silent,
    }
}

/// A read timeout too large to add to an instant: about thirty years.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The next chunk of `response`, within `patience`.
async fn next_chunk(
    response: &mut reqwest::Response,
    patience: &mut Patience,
) -> Result<Option<Bytes>, BodyError> {
    let chunk = patience
        .wait(response.chunk())
        .await
        .map_err(BodyError::Waited)??;
    patience.heard();
    Ok(chunk)
}

/// Why a buffered upstream answer could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The answer is longer than the cap (`LLMGATE_MAX_UPSTREAM_BODY_BYTES`).
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Read(#[from] reqwest::Error),
    /// The answer stopped arriving: its deadline passed, or the upstream fell silent.
    #[error("the answer stopped arriving")]
    Waited(Impatient),
}

/// Reads a whole (non-streamed) answer of at most `limit` bytes. A declared `Content-Length`
/// over the limit fails before reading anything; otherwise reading stops as soon as the limit
/// is passed, and what was read is dropped with the connection, so memory goes back at once.
///
/// An answer that arrives in one chunk is returned without a copy, as `bytes()` would.
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    patience: &mut Patience,
) -> Result<Bytes, BodyError> {
    let too_large = BodyError::TooLarge { limit };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large);
    }
    let Some(first) = next_chunk(&mut response, patience).await? else {
        return Ok(Bytes::new());
    };
    if first.len() > limit {
        return Err(too_large);
    }
    let Some(second) = next_chunk(&mut response, patience).await? else {
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
        next = next_chunk(&mut response, patience).await?;
    }
    Ok(body.freeze())
}

/// Reads at most `limit` bytes of an error answer, for its message and its kind: the rest is
/// left unread (an error body that long says nothing more worth reading).
pub async fn read_error_body(
    mut response: reqwest::Response,
    limit: usize,
    patience: &mut Patience,
) -> Result<Bytes, BodyError> {
    let mut body = BytesMut::new();
    while body.len() < limit {
        let Some(chunk) = next_chunk(&mut response, patience).await? else {
            break;
        };
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn client_now(upstream: &UpstreamClient) -> Arc<reqwest::Client> {
        Arc::clone(&upstream.client())
    }

    #[test]
    fn the_client_is_replaced_once_its_age_has_passed_and_only_then() {
        let (clock, hand) = Clock::manual(chrono::Utc::now());
        let settings = UpstreamSettings {
            pool_max_age: Duration::from_secs(120),
            ..UpstreamSettings::default()
        };
        let upstream = UpstreamClient::new(&settings, clock).unwrap();
        let shared = upstream.current();
        let first = client_now(&upstream);
        hand.advance(Duration::from_secs(119));
        assert!(
            Arc::ptr_eq(&client_now(&upstream), &first),
            "replaced before its age"
        );

        hand.advance(Duration::from_secs(1));
        let second = client_now(&upstream);
        assert!(!Arc::ptr_eq(&second, &first), "not replaced at its age");
        assert!(
            Arc::ptr_eq(&client_now(&upstream), &second),
            "replaced twice in one age"
        );
        assert!(
            Arc::ptr_eq(&shared.load_full(), &second),
            "the shared cell lags"
        );

        // The next age counts from the replacement, not from the start.
        hand.advance(Duration::from_secs(119));
        assert!(Arc::ptr_eq(&client_now(&upstream), &second));
        hand.advance(Duration::from_secs(1));
        assert!(!Arc::ptr_eq(&client_now(&upstream), &second));
    }

    fn after(delay: Duration) -> tokio::time::Sleep {
        tokio::time::sleep(delay)
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    // Real time, with every wait that must end well apart (four times or more) from the limit
    // that must not end it: tokio's paused clock would need its `test-util` feature, which
    // cargo would then also compile into the binary the load bench measures.

    #[tokio::test]
    async fn patience_ends_at_the_deadline_or_after_the_silence_whichever_is_first() {
        let mut patience = Patience::new(Some(Instant::now() + ms(10_000)), ms(100));
        assert_eq!(
            patience.wait(after(ms(5_000))).await,
            Err(Impatient::Silent(ms(100)))
        );
        let mut patience = Patience::new(Some(Instant::now() + ms(100)), ms(10_000));
        assert_eq!(
            patience.wait(after(ms(5_000))).await,
            Err(Impatient::Deadline)
        );
        let mut patience = Patience::new(Some(Instant::now() + ms(5_000)), ms(10_000));
        assert_eq!(patience.wait(after(ms(20))).await, Ok(()));
    }

    #[tokio::test]
    async fn what_arrives_moves_the_silence_on_but_never_the_deadline() {
        // Silence allowed 200 ms, the deadline at 400: waits of 25 ms, each followed by
        // `heard`, run into the deadline, never into the silence.
        let mut patience = Patience::new(Some(Instant::now() + ms(400)), ms(200));
        let ended = loop {
            if let Err(ended) = patience.wait(after(ms(25))).await {
                break ended;
            }
            patience.heard();
        };
        assert_eq!(ended, Impatient::Deadline);

        // A stream's body has no deadline: only silence ends it.
        let mut patience = Patience::new(Some(Instant::now() + ms(50)), ms(200));
        patience.without_deadline();
        for _ in 0..12 {
            assert_eq!(patience.wait(after(ms(25))).await, Ok(()));
            patience.heard();
        }
        assert_eq!(
            patience.wait(after(ms(5_000))).await,
            Err(Impatient::Silent(ms(200)))
        );
    }

    /// An answer whose chunks arrive `gaps` apart.
    fn answer_with_gaps(gaps: &[u64]) -> reqwest::Response {
        let chunks: Vec<(u64, &'static str)> = gaps.iter().map(|&ms| (ms, "{\"a\":1}")).collect();
        use futures_util::StreamExt as _;
        let body = futures_util::stream::iter(chunks).then(|(ms, chunk)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(chunk.as_bytes()))
        });
        reqwest::Response::from(http::Response::new(reqwest::Body::wrap_stream(body)))
    }

    #[tokio::test]
    async fn a_whole_answer_that_falls_silent_is_cut_at_the_read_timeout() {
        let silence = ms(500);
        let deadline = || Some(Instant::now() + ms(60_000));
        // 610 ms in all, never more than 150 ms without a byte.
        let mut patience = Patience::new(deadline(), silence);
        let body = read_body(
            answer_with_gaps(&[10, 150, 150, 150, 150]),
            1 << 20,
            &mut patience,
        )
        .await
        .unwrap();
        assert_eq!(
            body.len(),
            5 * 7,
            "slow but never silent for long: read whole"
        );

        let mut patience = Patience::new(deadline(), silence);
        let read = read_body(answer_with_gaps(&[10, 150, 5_000]), 1 << 20, &mut patience).await;
        assert!(
            matches!(read, Err(BodyError::Waited(Impatient::Silent(_)))),
            "{read:?}"
        );

        let mut patience = Patience::new(deadline(), silence);
        let read = read_error_body(answer_with_gaps(&[10, 5_000]), 1024, &mut patience).await;
        assert!(
            matches!(read, Err(BodyError::Waited(Impatient::Silent(_)))),
            "{read:?}"
        );
    }
}

//! Relaying an upstream event stream to the client frame by frame, ending it with an SSE error
//! event (never a silent cut) when the upstream fails mid-stream or the shutdown's grace ends.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::dialect::StreamShape;
use super::outcome::{self, StreamItem};
use super::record::RequestRecord;
use super::stored::ResponseStore;
use crate::error::ApiError;
use crate::routing::{Health, RouteHealth};
use crate::translate::EventLimit;
use crate::upstream::Patience;

/// What bounds a relayed stream: the largest event it may carry, and the health registry that
/// counts one past it against the route.
pub(super) struct StreamGuard {
    pub health: Arc<Health>,
    /// `LLMGATE_MAX_UPSTREAM_BODY_BYTES`.
    pub max_event: usize,
    /// Where a Responses stream's final response is kept, and for which key.
    pub responses: Option<(ResponseStore, i64)>,
    /// The attempt's timer, from now on bounding only the silence between two chunks.
    pub patience: Patience,
}

/// The streams being relayed, as one: the shutdown ends them all with an error event (their
/// usage recorded) when its grace is over, then waits until each has been recorded.
#[derive(Clone, Debug, Default)]
pub struct OpenStreams {
    stop: CancellationToken,
    open: TaskTracker,
}

impl OpenStreams {
    /// Ends every open stream (and every request still waiting on an upstream) with a
    /// `shutting_down` error; streams started later end at once.
    pub fn end_all(&self) {
        self.stop.cancel();
    }

    /// Resolves once every stream has ended and recorded its request.
    pub async fn ended(&self) {
        self.open.close();
        self.open.wait().await;
    }

    /// Resolves when [`end_all`](Self::end_all) is called.
    pub(super) async fn ending(&self) {
        self.stop.cancelled().await;
    }
}

/// Forwards (or translates) every chunk as soon as it arrives. When the upstream errors
/// (connection cut, read timeout), or the shutdown ends every stream, emits one error event in
/// the client's dialect and ends. Dropping the returned stream (the client went away) drops
/// the upstream response, which closes the upstream connection, and reports the request as
/// abandoned.
pub(super) fn relay(
    upstream: reqwest::Response,
    in_flight: InFlight,
    shape: StreamShape,
    done: RequestRecord,
    streams: &OpenStreams,
    guard: StreamGuard,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    // AWS's binary event stream declares each message's length; every other stream is
    // server-sent events.
    let binary = upstream
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.starts_with(crate::translate::bedrock::EVENT_STREAM_CONTENT_TYPE)
        });
    let limit = if binary {
        EventLimit::frames(guard.max_event)
    } else {
        EventLimit::new(guard.max_event)
    };
    let chunks = upstream.bytes_stream().boxed();
    done.metrics().open_streams.inc();
    let mut patience = guard.patience;
    patience.without_deadline();
    let state = Relay {
        chunks,
        patience,
        // Made once per stream: polling it again costs no new registration.
        stop: Box::pin(streams.stop.clone().cancelled_owned()),
        _open: streams.open.token(),
        in_flight,
        limit,
        health: guard.health,
        shape,
        done,
        completed: false,
        responses: guard.responses,
    };
    Relayed(Some(state))
}

/// The relay as a stream of the client's frames. Its `Relay` is dropped as soon as the stream
/// ends (the request recorded, the stream no longer counted open), not when the body is.
///
/// Written as `poll_next` rather than as a `stream::unfold` of an async block: that moved the
/// relay's state (1.4 KB) into a new future and back for every frame (OPTIMIZATION.md).
struct Relayed(Option<Relay>);

impl Stream for Relayed {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(relay) = this.0.as_mut() else {
            return Poll::Ready(None);
        };
        let (frame, more) = ready!(relay.poll_frame(cx));
        if !more {
            this.0 = None;
        }
        Poll::Ready(frame.map(Ok))
    }
}

/// What a relayed stream holds until it ends.
struct Relay {
    chunks: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    /// Ends the stream when the upstream falls silent (`LLMGATE_UPSTREAM_READ_TIMEOUT`).
    patience: Patience,
    /// Resolves when the shutdown's grace is over.
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Keeps the route's in-flight count up for the life of the stream.
    in_flight: InFlight,
    /// Bounds one event of the upstream's stream.
    limit: EventLimit,
    health: Arc<Health>,
    shape: StreamShape,
    done: RequestRecord,
    /// The client's answer is complete: its last event passed, or the upstream's body ran to
    /// its end.
    completed: bool,
    /// Where a Responses stream's final response is kept, and for which key.
    responses: Option<(ResponseStore, i64)>,
    /// Keeps the shutdown waiting until this stream is recorded: the last field, so it is
    /// dropped after `done` (fields drop in order).
    _open: TaskTrackerToken,
}

impl Relay {
    /// The next frame for the client, if any, and whether the relay goes on after it.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<(Option<Bytes>, bool)> {
        loop {
            // The upstream first: a frame that is ready goes out without looking at the
            // silence or the stop.
            let next = match self.chunks.poll_next_unpin(cx) {
                Poll::Ready(next) => Ok(next),
                Poll::Pending => match self.patience.poll_run_out(cx) {
                    Poll::Ready(why) => Err(why),
                    Poll::Pending => {
                        ready!(self.stop.as_mut().poll(cx));
                        // A client that has its whole answer gets no error event after it.
                        if self.completed {
                            return Poll::Ready((None, false));
                        }
                        let event = self.end_with(ApiError::ShuttingDown);
                        return Poll::Ready((Some(event), false));
                    }
                },
            };
            self.patience.heard();
            let provider = self.done.provider();
            match outcome::of_stream(next, &mut self.limit, provider) {
                // Usage is read as frames pass; a same-dialect stream is forwarded as it came
                // (but for the usage-only chunk the client did not ask for).
                StreamItem::Frames(bytes) => {
                    let out = self.shape.push(bytes);
                    // A forwarded Responses stream's last event is in `out`: keep the response
                    // before the client has it (checked only for streams that keep one).
                    if self.responses.is_some() && self.shape.final_response().is_some() {
                        self.keep_response();
                    }
                    // The client's answer is whole: recorded now, as complete, whether or not
                    // the client stays for the rest of the upstream's body.
                    if !self.completed && self.shape.answered() {
                        self.completed = true;
                        self.settle_usage();
                        self.done.finish();
                    }
                    if out.is_empty() {
                        continue;
                    }
                    return Poll::Ready((Some(out), true));
                }
                // The upstream broke after the client's answer was whole: nothing was lost,
                // and an error event after the answer's last one would only confuse it.
                StreamItem::Failed { .. } if self.completed => return Poll::Ready((None, false)),
                StreamItem::Failed {
                    error,
                    route_failed,
                } => {
                    if route_failed {
                        self.in_flight.route_failed(&self.health);
                    }
                    let event = self.end_with(error);
                    return Poll::Ready((Some(event), false));
                }
                StreamItem::Ended => {
                    let (tail, failure) = self.shape.finish(self.done.request_id());
                    self.completed |= failure.is_none();
                    if let Some(error) = failure {
                        self.done.stream_failed(&error);
                    }
                    self.keep_response();
                    self.settle_usage();
                    self.done.finish();
                    return Poll::Ready(((!tail.is_empty()).then_some(tail), false));
                }
            }
        }
    }

    /// Keeps a Responses stream's final response (completed, incomplete or failed), once its
    /// last event is written and before it is sent, so the client's next turn finds it.
    fn keep_response(&mut self) {
        if let Some((store, key_id)) = self.responses.take()
            && let Some(response) = self.shape.final_response()
        {
            store.capture(key_id, self.done.request(), response);
        }
    }

    /// The usage of the stream so far: as reported, or estimated from what was generated.
    fn settle_usage(&mut self) {
        let (shape, completed) = (&self.shape, self.completed);
        self.done
            .used_or(|model, request| shape.usage(model, request, completed));
    }

    /// Ends the stream with `error`: records it as the request's outcome (the same status in
    /// the log line, the request log and the metrics) with the usage so far, and returns the
    /// error event for the client.
    fn end_with(&mut self, error: ApiError) -> Bytes {
        let event = self.shape.fail(&error, self.done.request_id());
        self.done.stream_failed(&error);
        self.keep_response();
        self.settle_usage();
        self.done.finish();
        event
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // A client that left mid-stream: record what was generated so far.
        self.settle_usage();
        self.done.metrics().open_streams.dec();
    }
}

/// Counts a request in flight on a route (for `least_busy`) until dropped; a streamed reply
/// carries it to the end of the stream.
pub(super) struct InFlight {
    route: Arc<RouteHealth>,
    route_id: i64,
}

impl InFlight {
    pub(super) fn start(route: &crate::routing::Route) -> Self {
        route.health.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            route: route.health.clone(),
            route_id: route.id,
        }
    }

    /// Counts a failure on the upstream's side that came after its answer started (a stream
    /// event past the limit) against the route's circuit.
    fn route_failed(&self, health: &Health) {
        let before = self.route.open_until();
        self.route
            .failed(self.route_id, health.now_ms(), health.policy());
        health.share_if_opened(self.route_id, &self.route, before);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.route.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An SSE event carrying an error in the contract's shape.
pub fn error_event(error: &ApiError, request_id: &str) -> Bytes {
    let json = error.to_json(Some(request_id));
    let mut event = String::with_capacity(json.len() + 10);
    // A frame may have been cut mid-line: start on a fresh line so the event parses.
    event.push_str("\n\ndata: ");
    event.push_str(&json);
    event.push_str("\n\n");
    Bytes::from(event)
}

//! Relaying an upstream event stream to the client frame by frame, ending it with an SSE error
//! event (never a silent cut) when the upstream fails mid-stream.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};

use super::{Completion, InFlight};
use crate::error::ApiError;

/// Forwards every chunk as soon as it arrives. When the upstream errors (connection cut, read
/// timeout), emits one `data: {"error": …}` event and ends. Dropping the returned stream (the
/// client went away) drops the upstream response, which closes the upstream connection, and
/// reports the request as abandoned.
pub(super) fn relay(
    upstream: reqwest::Response,
    in_flight: InFlight,
    done: Completion,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let chunks = upstream.bytes_stream().boxed();
    done.metrics.open_streams.inc();
    let state = Relay {
        chunks,
        _in_flight: in_flight,
        done,
    };
    stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.chunks.next().await {
            Some(Ok(bytes)) => Some((Ok(bytes), Some(state))),
            Some(Err(error)) => {
                let api_error = if error.is_timeout() {
                    ApiError::UpstreamTimeout {
                        detail: format!("upstream fell silent mid-stream: {error}"),
                    }
                } else {
                    ApiError::UpstreamFailed {
                        detail: format!("upstream stream broke: {error}"),
                    }
                };
                let event = error_event(&api_error, &state.done.request_id);
                state.done.stream_error = Some(api_error.to_string());
                state.done.finish();
                Some((Ok(event), None))
            }
            None => {
                state.done.finish();
                None
            }
        }
    })
}

/// What a relayed stream holds until it ends.
struct Relay {
    chunks: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    /// Keeps the route's in-flight count up for the life of the stream.
    _in_flight: InFlight,
    done: Completion,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.done.metrics.open_streams.dec();
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

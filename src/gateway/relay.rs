//! Relaying an upstream event stream to the client frame by frame, ending it with an SSE error
//! event (never a silent cut) when the upstream fails mid-stream.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};

use super::InFlight;
use crate::error::ApiError;

/// Forwards every chunk as soon as it arrives. When the upstream errors (connection cut, read
/// timeout), emits one `data: {"error": …}` event and ends. Dropping the returned stream (the
/// client went away) drops the upstream response, which closes the upstream connection.
pub(super) fn relay(
    upstream: reqwest::Response,
    request_id: String,
    in_flight: InFlight,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let chunks = upstream.bytes_stream().boxed();
    // The in-flight mark lives in the stream's state, so it ends with the stream.
    stream::unfold(Some((chunks, in_flight)), move |state| {
        let request_id = request_id.clone();
        async move {
            let (mut chunks, in_flight) = state?;
            match chunks.next().await {
                Some(Ok(bytes)) => Some((Ok(bytes), Some((chunks, in_flight)))),
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
                    tracing::warn!(
                        request_id = %request_id,
                        error = %api_error,
                        "upstream stream ended with an error; sent an error event to the client"
                    );
                    Some((Ok(error_event(&api_error, &request_id)), None))
                }
                None => None,
            }
        }
    })
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

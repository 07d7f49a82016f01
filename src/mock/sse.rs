//! The event-stream body: prepared frames played in order with their delays, an optional abrupt
//! cut, and the count of streams their client abandoned.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;

/// How long a cut stream waits after its last frame before breaking the connection.
const CUT_PAUSE: Duration = Duration::from_millis(20);

/// The frames of one streamed answer, each with the pause that precedes it.
pub(super) struct Script {
    frames: Vec<(Duration, Bytes)>,
    cut: bool,
    /// How long the body stays open after its last frame before it ends.
    linger: Duration,
}

impl Script {
    pub fn with_capacity(frames: usize) -> Self {
        Self {
            frames: Vec::with_capacity(frames),
            cut: false,
            linger: Duration::ZERO,
        }
    }

    pub fn push(&mut self, delay: Duration, frame: Bytes) {
        self.frames.push((delay, frame));
    }

    /// Ends the stream with an error after the frames pushed so far, so the connection breaks
    /// without the terminating chunk.
    pub fn cut(mut self) -> Self {
        self.cut = true;
        self
    }

    /// Keeps the body open for `linger` after its last frame (a complete script only): an
    /// upstream slow to end its body after its last event.
    pub fn lingering(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The response body. A body dropped before its last frame (the `[DONE]` of a complete
    /// script) adds one to `disconnects`; a deliberate cut does not, since the client stayed.
    pub fn into_body(self, disconnects: Arc<AtomicU64>) -> Body {
        let player = Player {
            frames: self.frames.into_iter(),
            cut: self.cut,
            linger: self.linger,
            guard: DisconnectGuard {
                disconnects,
                finished: false,
            },
        };
        Body::from_stream(stream::unfold(player, Player::next))
    }
}

struct Player {
    frames: std::vec::IntoIter<(Duration, Bytes)>,
    cut: bool,
    linger: Duration,
    guard: DisconnectGuard,
}

impl Player {
    async fn next(mut self) -> Option<(io::Result<Bytes>, Self)> {
        if let Some((delay, frame)) = self.frames.next() {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if self.frames.as_slice().is_empty() && !self.cut {
                self.guard.finished = true;
            }
            return Some((Ok(frame), self));
        }
        if self.cut {
            // Without a pause, hyper would see the error before flushing the head and the frames
            // before it, and the client would get no response at all instead of a cut stream.
            tokio::time::sleep(CUT_PAUSE).await;
            self.cut = false;
            self.guard.finished = true;
            let error = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "mock upstream cut the stream",
            );
            return Some((Err(error), self));
        }
        if !self.linger.is_zero() {
            tokio::time::sleep(std::mem::take(&mut self.linger)).await;
        }
        None
    }
}

/// Counts a disconnect when dropped before the stream finished.
struct DisconnectGuard {
    disconnects: Arc<AtomicU64>,
    finished: bool,
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.disconnects.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("mock upstream stream dropped before its end");
        }
    }
}

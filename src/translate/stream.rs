//! The life every stream translator shares, written once: [`StreamTranslator`] is what the
//! gateway drives, [`EventTranslator`] what each dialect's translator writes (what one event
//! means, how a finished answer closes, how an error event looks), and [`Chain`] puts two
//! translators in a row (Gemini → chat → Messages).

use bytes::{BufMut as _, Bytes, BytesMut};

use super::StreamFailure;
use crate::sse::SseDecoder;
use crate::usage::Usage;

/// The message of the error event that ends a stream the upstream left unfinished.
pub(crate) const UNFINISHED: &str =
    "The upstream provider ended the stream before the answer was complete.";

/// A stateful translator of one event stream, fed the upstream's body chunk by chunk.
///
/// `push(chunk)` returns the whole output events the chunk completed (possibly none; frames may
/// be split anywhere, or several may share a chunk); `finish()` when the upstream body ends
/// returns the closing events (a normal end if the upstream had finished its answer, else an
/// error event); `fail(kind, message)` when the upstream connection breaks returns an error
/// event. The stream ends once: after the end, all three return nothing.
pub trait StreamTranslator: Send {
    /// Feeds one chunk of the upstream's body as it arrived.
    fn push(&mut self, chunk: &[u8]) -> Bytes;
    /// The upstream's body ended.
    fn finish(&mut self) -> Bytes;
    /// The stream failed mid-way (the upstream broke, or the gateway is stopping): the error
    /// event that ends it, of type `kind` in the output's dialect (`None`: its generic server
    /// error), carrying `message`.
    fn fail(&mut self, kind: Option<&str>, message: &str) -> Bytes;
    /// The usage the upstream reported so far, for accounting, without parsing the output again.
    fn usage(&self) -> Option<Usage>;
    /// Why the stream ended with an error event, if it did.
    fn failure(&self) -> Option<StreamFailure>;
    /// The final object of the answer in the output's dialect, once the stream has ended, for
    /// a dialect whose last event carries one (the Responses API's `response`, which is what
    /// a stored response keeps); `None` for the others.
    fn final_response(&self) -> Option<&Bytes>;
    /// Whether the output's stream has ended (its last event written, normally or as an
    /// error): what the upstream sends after it is ignored.
    fn ended(&self) -> bool;
}

/// The part of a stream translator that is its dialect's own. Implementing it makes a
/// [`StreamTranslator`]: decoding the events, ignoring everything after the end, and ending
/// with an error when the upstream stops short are done here once.
pub(crate) trait EventTranslator: Send {
    /// The decoder of the upstream's events.
    fn decoder(&mut self) -> &mut SseDecoder;
    /// The output written so far and not yet returned.
    fn output(&mut self) -> &mut BytesMut;
    /// Whether the output stream has ended (normally or with an error event).
    fn ended(&self) -> bool;
    /// One event of the upstream (`name` empty when unnamed); never called after the end.
    fn event(&mut self, name: &str, data: &[u8]);
    /// The upstream's body ended before the output did: writes the normal end and returns true
    /// if the upstream had finished its answer; returns false otherwise.
    fn close(&mut self) -> bool;
    /// Ends the output with an error event (see [`StreamTranslator::fail`]), recording
    /// `failure`.
    fn abort(&mut self, failure: StreamFailure, kind: Option<&str>, message: &str);
    /// See [`StreamTranslator::usage`].
    fn reported_usage(&self) -> Option<Usage>;
    /// See [`StreamTranslator::failure`].
    fn stream_failure(&self) -> Option<StreamFailure>;
    /// See [`StreamTranslator::final_response`].
    fn final_object(&self) -> Option<&Bytes> {
        None
    }
}

impl<T: EventTranslator> StreamTranslator for T {
    fn push(&mut self, chunk: &[u8]) -> Bytes {
        if !self.ended() {
            let mut decoder = std::mem::take(self.decoder());
            decoder.feed(chunk, &mut |name, data| {
                if !self.ended() {
                    self.event(name, data);
                }
            });
            *self.decoder() = decoder;
        }
        self.output().split().freeze()
    }

    fn finish(&mut self) -> Bytes {
        if !self.ended() {
            let mut decoder = std::mem::take(self.decoder());
            decoder.finish(&mut |name, data| {
                if !self.ended() {
                    self.event(name, data);
                }
            });
            if !self.ended() && !self.close() {
                self.abort(StreamFailure::Unfinished, None, UNFINISHED);
            }
        }
        self.output().split().freeze()
    }

    fn fail(&mut self, kind: Option<&str>, message: &str) -> Bytes {
        if !self.ended() {
            self.abort(StreamFailure::Upstream, kind, message);
        }
        self.output().split().freeze()
    }

    fn usage(&self) -> Option<Usage> {
        self.reported_usage()
    }

    fn failure(&self) -> Option<StreamFailure> {
        self.stream_failure()
    }

    fn final_response(&self) -> Option<&Bytes> {
        self.final_object()
    }

    fn ended(&self) -> bool {
        EventTranslator::ended(self)
    }
}

impl StreamTranslator for Box<dyn StreamTranslator> {
    fn push(&mut self, chunk: &[u8]) -> Bytes {
        (**self).push(chunk)
    }

    fn finish(&mut self) -> Bytes {
        (**self).finish()
    }

    fn fail(&mut self, kind: Option<&str>, message: &str) -> Bytes {
        (**self).fail(kind, message)
    }

    fn usage(&self) -> Option<Usage> {
        (**self).usage()
    }

    fn failure(&self) -> Option<StreamFailure> {
        (**self).failure()
    }

    fn final_response(&self) -> Option<&Bytes> {
        (**self).final_response()
    }

    fn ended(&self) -> bool {
        (**self).ended()
    }
}

/// Two translators in a row: the first's output is the second's input. The usage is the
/// first's (it reads the upstream's own report); an error the stream fails with is written by
/// the second, in the client's dialect.
#[derive(Debug)]
pub struct Chain<A, B> {
    pub first: A,
    pub second: B,
}

impl<A: StreamTranslator, B: StreamTranslator> StreamTranslator for Chain<A, B> {
    fn push(&mut self, chunk: &[u8]) -> Bytes {
        let middle = self.first.push(chunk);
        self.second.push(&middle)
    }

    fn finish(&mut self) -> Bytes {
        let middle = self.first.finish();
        let mut out = BytesMut::from(self.second.push(&middle));
        out.put(self.second.finish());
        out.freeze()
    }

    fn fail(&mut self, kind: Option<&str>, message: &str) -> Bytes {
        self.second.fail(kind, message)
    }

    fn usage(&self) -> Option<Usage> {
        self.first.usage()
    }

    fn failure(&self) -> Option<StreamFailure> {
        self.first.failure().or(self.second.failure())
    }

    /// The client's dialect is the second's.
    fn final_response(&self) -> Option<&Bytes> {
        self.second.final_response()
    }

    /// The client's stream is the second's.
    fn ended(&self) -> bool {
        self.second.ended()
    }
}

//! Streams: ConverseStream's binary event stream (`application/vnd.amazon.eventstream`, decoded
//! with AWS's own `aws-smithy-eventstream`) → OpenAI `chat.completion.chunk` frames.
//!
//! Each binary message is turned into one server-sent event named by its `:event-type` (an
//! `exception` message into an event named `exception`), and those go through the life every
//! stream translator shares (`translate::stream`).

use std::borrow::Cow;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{BufMut as _, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::response::FILTERED;
use super::wire::{BlockDeltaIn, BlockStartIn, ErrorIn, MessageStopIn, MetadataIn};
use super::{finish_reason, openai_error_type};
use crate::sse::SseDecoder;
use crate::translate::json::{unix_now, write_json};
use crate::translate::openai::{ChunkWriter, DeltaOut, FunctionDeltaOut, ToolCallDeltaOut};
use crate::translate::stream::{EventTranslator, UNFINISHED};
use crate::translate::{StreamFailure, StreamTranslator};
use crate::usage::Usage;

/// Turns a ConverseStream into chat chunks: the role first, text and reasoning deltas as they
/// come, each tool call's first chunk (id, name) at its `contentBlockStart` and its arguments
/// as they stream, the finish at `messageStop`; then, when the upstream closes the stream, the
/// usage chunk of `metadata` (if asked) and `[DONE]`. A stream that closes before `messageStop`
/// was cut and ends with an error frame; an `exception` message ends it with an error frame of
/// the matching type.
#[derive(Debug)]
pub struct ConverseToChatStream {
    frames: MessageFrameDecoder,
    /// Bytes of the binary stream not yet decoded (at most one message).
    pending: BytesMut,
    events: ConverseEvents,
}

impl ConverseToChatStream {
    /// A translator for one stream; `public_model` is the model the client asked for,
    /// `include_usage` whether it asked for the usage chunk.
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self::at(public_model, include_usage, unix_now())
    }

    pub(crate) fn at(public_model: &str, include_usage: bool, created: u64) -> Self {
        Self {
            frames: MessageFrameDecoder::new(),
            pending: BytesMut::new(),
            events: ConverseEvents {
                chunks: ChunkWriter {
                    id: format!("chatcmpl-{:016x}", rand::random::<u64>()),
                    created,
                    model: public_model.to_owned(),
                    include_usage,
                },
                decoder: SseDecoder::default(),
                out: BytesMut::with_capacity(1024),
                done: false,
                started: false,
                tool_blocks: Vec::new(),
                finished: false,
                usage: None,
                failure: None,
            },
        }
    }
}

/// One decoded binary message as a server-sent event.
fn as_event(message: &Message, sse: &mut BytesMut) {
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|header| header.name().as_str() == name)
            .and_then(|header| match header.value() {
                HeaderValue::String(value) => Some(value.as_str().to_owned()),
                _ => None,
            })
    };
    let payload = message.payload();
    sse.put_slice(b"event: ");
    if header(":message-type").as_deref() == Some("exception") {
        #[derive(Serialize)]
        struct Exception<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            message: &'a str,
        }
        let exception = header(":exception-type").unwrap_or_default();
        let parsed = serde_json::from_slice::<ErrorIn<'_>>(payload).ok();
        sse.put_slice(b"exception\ndata: ");
        write_json(
            sse,
            &Exception {
                kind: &exception,
                message: parsed
                    .as_ref()
                    .and_then(|error| error.message.as_deref())
                    .unwrap_or(UNFINISHED),
            },
        );
    } else {
        // Event types are camelCase names; anything else cannot break the event's line.
        let name = header(":event-type").unwrap_or_default();
        sse.put_slice(name.replace(['\n', '\r'], "").as_bytes());
        sse.put_slice(b"\ndata: ");
        // JSON has line breaks only as whitespace, which a space replaces.
        sse.extend(payload.iter().map(|byte| {
            if matches!(byte, b'\n' | b'\r') {
                b' '
            } else {
                *byte
            }
        }));
    }
    sse.put_slice(b"\n\n");
}

impl StreamTranslator for ConverseToChatStream {
    fn push(&mut self, chunk: &[u8]) -> Bytes {
        if EventTranslator::ended(&self.events) {
            return self.events.push(b"");
        }
        self.pending.extend_from_slice(chunk);
        let mut sse = BytesMut::new();
        loop {
            match self.frames.decode_frame(&mut self.pending) {
                Ok(DecodedFrame::Complete(message)) => as_event(&message, &mut sse),
                Ok(DecodedFrame::Incomplete) => break,
                Err(error) => {
                    let mut out = BytesMut::from(self.events.push(&sse));
                    let message = format!("the upstream's event stream could not be read: {error}");
                    out.put(self.events.fail(None, &message));
                    return out.freeze();
                }
            }
        }
        self.events.push(&sse)
    }

    fn finish(&mut self) -> Bytes {
        self.events.finish()
    }

    fn fail(&mut self, kind: Option<&str>, message: &str) -> Bytes {
        self.events.fail(kind, message)
    }

    fn usage(&self) -> Option<Usage> {
        self.events.usage()
    }

    fn failure(&self) -> Option<StreamFailure> {
        self.events.failure()
    }

    fn final_response(&self) -> Option<&Bytes> {
        None
    }

    fn ended(&self) -> bool {
        EventTranslator::ended(&self.events)
    }
}

/// An `exception` message as [`as_event`] writes it.
#[derive(Deserialize)]
struct ExceptionIn<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

/// The Converse events, as server-sent events, → chat chunks.
#[derive(Debug)]
struct ConverseEvents {
    chunks: ChunkWriter,
    decoder: SseDecoder,
    out: BytesMut,
    done: bool,
    started: bool,
    /// The content block index of each tool call so far, in order.
    tool_blocks: Vec<u32>,
    /// `messageStop` came.
    finished: bool,
    usage: Option<Usage>,
    failure: Option<StreamFailure>,
}

impl ConverseEvents {
    fn role(&mut self) {
        if !std::mem::replace(&mut self.started, true) {
            self.chunks.role(&mut self.out, 0);
        }
    }

    fn tool_index(&self, block: u32) -> Option<u32> {
        self.tool_blocks
            .iter()
            .position(|at| *at == block)
            .map(|index| u32::try_from(index).unwrap_or(u32::MAX))
    }

    fn write_error(&mut self, failure: StreamFailure, kind: &str, message: &str) {
        self.failure = Some(failure);
        ChunkWriter::error(&mut self.out, kind, message);
        self.done = true;
    }

    fn parse<'d, T: serde::Deserialize<'d>>(name: &str, data: &'d [u8]) -> Option<T> {
        match serde_json::from_slice(data) {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(%error, event = name, "skipped a Bedrock stream event that is not Converse's");
                None
            }
        }
    }
}

impl EventTranslator for ConverseEvents {
    fn decoder(&mut self) -> &mut SseDecoder {
        &mut self.decoder
    }

    fn output(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    fn ended(&self) -> bool {
        self.done
    }

    fn event(&mut self, name: &str, data: &[u8]) {
        match name {
            "messageStart" => self.role(),
            "contentBlockStart" => {
                let Some(start) = Self::parse::<BlockStartIn<'_>>(name, data) else {
                    return;
                };
                self.role();
                if let Some(tool) = start.start.and_then(|start| start.tool_use) {
                    let index = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                    self.tool_blocks.push(start.content_block_index);
                    let delta = ToolCallDeltaOut {
                        index,
                        id: Some(&tool.tool_use_id),
                        kind: Some("function"),
                        function: FunctionDeltaOut {
                            name: Some(&tool.name),
                            arguments: "",
                        },
                    };
                    self.chunks.tool_call(&mut self.out, 0, delta);
                }
            }
            "contentBlockDelta" => {
                let Some(block) = Self::parse::<BlockDeltaIn<'_>>(name, data) else {
                    return;
                };
                let Some(delta) = block.delta else {
                    return;
                };
                self.role();
                if let Some(text) = delta.text.as_deref().filter(|text| !text.is_empty()) {
                    self.chunks.content(&mut self.out, 0, text);
                } else if let Some(input) = delta
                    .tool_use
                    .as_ref()
                    .and_then(|tool| tool.input.as_deref())
                {
                    if let Some(index) = self.tool_index(block.content_block_index) {
                        let delta = ToolCallDeltaOut {
                            index,
                            id: None,
                            kind: None,
                            function: FunctionDeltaOut {
                                name: None,
                                arguments: input,
                            },
                        };
                        self.chunks.tool_call(&mut self.out, 0, delta);
                    }
                } else if let Some(text) = delta
                    .reasoning_content
                    .as_ref()
                    .and_then(|reasoning| reasoning.text.as_deref())
                    .filter(|text| !text.is_empty())
                {
                    self.chunks.reasoning(&mut self.out, 0, text);
                }
            }
            "messageStop" => {
                let Some(stop) = Self::parse::<MessageStopIn<'_>>(name, data) else {
                    return;
                };
                if std::mem::replace(&mut self.finished, true) {
                    return;
                }
                self.role();
                let finish = finish_reason(stop.stop_reason.as_deref().unwrap_or("end_turn"));
                if finish == "content_filter" {
                    let delta = DeltaOut {
                        refusal: Some(FILTERED),
                        ..DeltaOut::default()
                    };
                    self.chunks.delta(&mut self.out, 0, delta);
                }
                self.chunks.finish(&mut self.out, 0, finish);
            }
            "metadata" => {
                if let Some(usage) = Self::parse::<MetadataIn>(name, data).and_then(|m| m.usage) {
                    self.usage = Some(usage.into());
                }
            }
            "exception" => {
                let parsed = serde_json::from_slice::<ExceptionIn<'_>>(data).ok();
                let exception = parsed.as_ref().and_then(|e| e.kind.as_deref());
                let message = parsed
                    .as_ref()
                    .and_then(|e| e.message.as_deref())
                    .unwrap_or(UNFINISHED);
                let (kind, _) = openai_error_type(exception, 500);
                let message = format!(
                    "AWS Bedrock: {}{message}",
                    exception.map(|e| format!("{e}: ")).unwrap_or_default()
                );
                self.write_error(StreamFailure::Upstream, kind, &message);
            }
            // contentBlockStop, and anything newer.
            _ => {}
        }
    }

    /// Usage and `[DONE]` if `messageStop` came.
    fn close(&mut self) -> bool {
        if self.finished {
            self.chunks.end(&mut self.out, self.usage);
            self.done = true;
        }
        self.done
    }

    fn abort(&mut self, failure: StreamFailure, kind: Option<&str>, message: &str) {
        self.write_error(failure, kind.unwrap_or("api_error"), message);
    }

    fn reported_usage(&self) -> Option<Usage> {
        self.usage
    }

    fn stream_failure(&self) -> Option<StreamFailure> {
        self.failure
    }
}

//! Streams: Gemini `streamGenerateContent?alt=sse` frames → OpenAI `chat.completion.chunk`
//! frames, and through them to Anthropic events.

use bytes::BytesMut;

use super::response::{blocked_message, filtered_message, finish_reason, openai_error_type};
use super::tool_call_id;
use super::wire::GenerateContentResponse;
use crate::sse::SseDecoder;
use crate::translate::StreamFailure;
use crate::translate::anthropic::ChatToMessagesStream;
use crate::translate::json::unix_now;
use crate::translate::openai::{ChunkWriter, DeltaOut, FunctionDeltaOut, ToolCallDeltaOut};
use crate::translate::stream::{Chain, EventTranslator, UNFINISHED};
use crate::usage::Usage;

/// Turns a Gemini stream into chat chunks: per candidate (choice) the role first, then text and
/// thought deltas as they come, each function call as one tool-call chunk (Gemini sends calls
/// whole) numbered 0, 1, …, a refusal delta and `content_filter` when a safety filter stops it,
/// the finish; then, when the upstream closes the stream, the usage chunk (if asked) and
/// `[DONE]`. Gemini has no `[DONE]` of its own: a stream that closes before any candidate
/// finished was cut, and ends with an error frame.
#[derive(Debug)]
pub struct GeminiToChatStream {
    chunks: ChunkWriter,
    decoder: SseDecoder,
    out: BytesMut,
    done: bool,
    started: bool,
    /// Per candidate index: whether its role went out, its tool calls so far, its finish.
    candidates: Vec<CandidateState>,
    usage: Option<Usage>,
    failure: Option<StreamFailure>,
}

#[derive(Debug, Default, Clone, Copy)]
struct CandidateState {
    started: bool,
    tool_calls: usize,
    finished: bool,
}

impl GeminiToChatStream {
    /// A translator for one stream; `public_model` is the model the client asked for,
    /// `include_usage` whether it asked for the usage chunk.
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self::at(public_model, include_usage, unix_now())
    }

    pub(crate) fn at(public_model: &str, include_usage: bool, created: u64) -> Self {
        Self {
            chunks: ChunkWriter {
                id: String::new(),
                created,
                model: public_model.to_owned(),
                include_usage,
            },
            decoder: SseDecoder::default(),
            out: BytesMut::with_capacity(1024),
            done: false,
            started: false,
            candidates: Vec::new(),
            usage: None,
            failure: None,
        }
    }

    fn frame(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        let response: GenerateContentResponse<'_> = match serde_json::from_slice(data) {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(%error, "skipped an upstream stream frame that is not Gemini's");
                return;
            }
        };
        if let Some(error) = &response.error {
            let (kind, _) = openai_error_type(error.code, error.status.as_deref());
            self.write_error(
                StreamFailure::Upstream,
                kind,
                error.message.as_deref().unwrap_or(UNFINISHED),
            );
            return;
        }
        if !self.started {
            self.started = true;
            match response.response_id.as_deref() {
                Some(id) => id.clone_into(&mut self.chunks.id),
                None => self.chunks.id = format!("chatcmpl-{:016x}", rand::random::<u64>()),
            }
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage.into());
        }
        if response.candidates.is_empty() {
            if let Some(message) = response.prompt_feedback.as_ref().and_then(blocked_message) {
                self.role(0);
                self.refuse(0, &message);
                self.chunks.finish(&mut self.out, 0, "content_filter");
                self.state(0).finished = true;
            }
            return;
        }
        for (position, candidate) in response.candidates.iter().enumerate() {
            let index = candidate
                .index
                .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            self.role(index);
            for part in candidate.content.iter().flat_map(|content| &content.parts) {
                if let Some(call) = &part.function_call {
                    let state = self.state(index);
                    let tool_index = state.tool_calls;
                    state.tool_calls += 1;
                    let id = tool_call_id(
                        call.id.as_deref(),
                        tool_index,
                        part.thought_signature.as_deref(),
                    );
                    let delta = ToolCallDeltaOut {
                        index: u32::try_from(tool_index).unwrap_or(u32::MAX),
                        id: Some(&id),
                        kind: Some("function"),
                        function: FunctionDeltaOut {
                            name: Some(&call.name),
                            arguments: call.args.map_or("{}", |args| args.get()),
                        },
                    };
                    self.chunks.tool_call(&mut self.out, index, delta);
                } else if let Some(text) = part.text.as_deref().filter(|text| !text.is_empty()) {
                    if part.thought == Some(true) {
                        self.chunks.reasoning(&mut self.out, index, text);
                    } else {
                        self.chunks.content(&mut self.out, index, text);
                    }
                }
            }
            let reason = candidate
                .finish_reason
                .as_deref()
                .filter(|reason| *reason != "FINISH_REASON_UNSPECIFIED");
            if let Some(reason) = reason {
                let state = self.state(index);
                if state.finished {
                    continue;
                }
                state.finished = true;
                let finish = finish_reason(reason, state.tool_calls > 0);
                if finish == "content_filter" {
                    let message = filtered_message(reason, candidate.finish_message.as_deref());
                    self.refuse(index, &message);
                }
                self.chunks.finish(&mut self.out, index, finish);
            }
        }
    }

    fn state(&mut self, index: u32) -> &mut CandidateState {
        let index = usize::try_from(index).unwrap_or(usize::MAX).min(1024);
        if self.candidates.len() <= index {
            self.candidates.resize(index + 1, CandidateState::default());
        }
        &mut self.candidates[index]
    }

    fn role(&mut self, index: u32) {
        let state = self.state(index);
        if !std::mem::replace(&mut state.started, true) {
            self.chunks.role(&mut self.out, index);
        }
    }

    fn refuse(&mut self, index: u32, message: &str) {
        let delta = DeltaOut {
            refusal: Some(message),
            ..DeltaOut::default()
        };
        self.chunks.delta(&mut self.out, index, delta);
    }

    fn write_error(&mut self, failure: StreamFailure, kind: &str, message: &str) {
        self.failure = Some(failure);
        ChunkWriter::error(&mut self.out, kind, message);
        self.done = true;
    }
}

impl EventTranslator for GeminiToChatStream {
    fn decoder(&mut self) -> &mut SseDecoder {
        &mut self.decoder
    }

    fn output(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    fn ended(&self) -> bool {
        self.done
    }

    fn event(&mut self, _name: &str, data: &[u8]) {
        self.frame(data);
    }

    /// Usage and `[DONE]` if a candidate finished.
    fn close(&mut self) -> bool {
        if self.candidates.iter().any(|candidate| candidate.finished) {
            self.chunks.end(&mut self.out, self.usage);
            self.done = true;
        }
        self.done
    }

    /// An error frame of OpenAI's type `kind` (`api_error` by default).
    fn abort(&mut self, failure: StreamFailure, kind: Option<&str>, message: &str) {
        self.write_error(failure, kind.unwrap_or("api_error"), message);
    }

    /// The usage of the last `usageMetadata` seen (Gemini repeats it, cumulative).
    fn reported_usage(&self) -> Option<Usage> {
        self.usage
    }

    fn stream_failure(&self) -> Option<StreamFailure> {
        self.failure
    }
}

/// Gemini stream → Anthropic events, for a client of `/v1/messages` routed to a Gemini
/// provider: the Gemini translator's chat chunks are fed straight into
/// [`ChatToMessagesStream`].
pub type GeminiToMessagesStream = Chain<GeminiToChatStream, ChatToMessagesStream>;

impl GeminiToMessagesStream {
    pub fn new(public_model: &str) -> Self {
        Chain {
            first: GeminiToChatStream::new(public_model, true),
            second: ChatToMessagesStream::new(public_model),
        }
    }

    /// Sets the `input_tokens` of `message_start` (see [`ChatToMessagesStream::with_input_estimate`]).
    #[must_use]
    pub fn with_input_estimate(mut self, tokens: u64) -> Self {
        self.second = self.second.with_input_estimate(tokens);
        self
    }
}

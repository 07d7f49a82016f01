//! Streams: OpenAI `chat.completion.chunk` frames → Anthropic Messages events, and back.

use bytes::BytesMut;
use serde::Serialize;

use super::error::{ErrorBody, ErrorDetail, anthropic_error_type_for, openai_error_type_for};
use super::response::{finish_reason, message_id, stop_reason};
use super::wire::{EventIn, MessageResponseOut, UsageIn, UsageOut};
use crate::sse::SseDecoder;
use crate::translate::StreamFailure;
use crate::translate::json::{JsonScan, anthropic_tool_id, is_empty_object, unix_now, write_event};
use crate::translate::openai::{ChunkIn, ChunkWriter, FunctionDeltaOut, ToolCallDeltaOut};
use crate::translate::stream::{EventTranslator, UNFINISHED};
use crate::usage::Usage;

// ---------------------------------------------------------------------------------------------
// OpenAI chunks → Anthropic events.

/// Turns an OpenAI-compatible upstream's chat stream into Anthropic's event sequence for a
/// client of `/v1/messages`: `message_start`, per content block `content_block_start`,
/// `content_block_delta`s and `content_block_stop`, then `message_delta` (stop reason, usage)
/// and `message_stop`.
///
/// Anthropic streams one content block at a time with increasing indices, while OpenAI may
/// interleave several tool calls by `tool_calls[].index`. So one block is open at a time: text
/// and thinking close as soon as anything follows them; a tool call closes once its arguments
/// form a whole JSON object and another block is waiting. Deltas for a block that cannot open
/// yet are buffered and sent as one delta when it opens. A strictly sequential upstream (OpenAI
/// itself) is therefore relayed with no delay; an interleaving one is reordered.
///
/// Only choice 0 is translated (Anthropic has no `n`).
#[derive(Debug)]
pub struct ChatToMessagesStream {
    model: String,
    decoder: SseDecoder,
    out: BytesMut,
    done: bool,
    message_id: Option<String>,
    blocks: Vec<StreamBlock>,
    /// The first block not yet closed; every block before it is closed, every block after it
    /// is pending.
    active: usize,
    /// OpenAI tool-call index → position in `blocks`.
    tool_blocks: Vec<(u32, usize)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    /// The prompt's tokens as llmgate counted them, for `message_start` while the upstream has
    /// reported none (OpenAI reports usage only at the end).
    input_estimate: u64,
    failure: Option<StreamFailure>,
}

#[derive(Debug)]
struct StreamBlock {
    kind: BlockKind,
    state: BlockState,
    /// Deltas received while the block was pending.
    pending: String,
    arguments: JsonScan,
}

#[derive(Debug, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    Tool { id: String, name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockState {
    Pending,
    Open,
    Closed,
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: MessageResponseOut<'a>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    content_block: StartedBlock<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartedBlock<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: super::wire::EmptyObject,
    },
}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    delta: DeltaBody<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaBody<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: DeltaUsage,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

/// The usage of `message_delta`: cumulative; prompt-side members only when the upstream
/// reported them (OpenAI reports usage at the end, after `message_start` went out with zeros).
#[derive(Serialize)]
struct DeltaUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    output_tokens: u64,
}

#[derive(Serialize)]
struct MessageStop {
    #[serde(rename = "type")]
    kind: &'static str,
}

impl ChatToMessagesStream {
    /// A translator for one stream; `public_model` is the model name the client asked for.
    pub fn new(public_model: &str) -> Self {
        Self {
            model: public_model.to_owned(),
            decoder: SseDecoder::default(),
            out: BytesMut::with_capacity(1024),
            done: false,
            message_id: None,
            blocks: Vec::new(),
            active: 0,
            tool_blocks: Vec::new(),
            finish_reason: None,
            usage: None,
            input_estimate: 0,
            failure: None,
        }
    }

    /// Sets the `input_tokens` that `message_start` reports when the upstream has not said yet:
    /// clients (Claude Code among them) read the prompt's size from that event.
    #[must_use]
    pub fn with_input_estimate(mut self, tokens: u64) -> Self {
        self.input_estimate = tokens;
        self
    }

    fn frame(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        if data.trim_ascii() == b"[DONE]" {
            self.end();
            return;
        }
        let chunk: ChunkIn<'_> = match serde_json::from_slice(data) {
            Ok(chunk) => chunk,
            Err(error) => {
                tracing::warn!(%error, "skipped an upstream stream frame that is not a chat chunk");
                return;
            }
        };
        if let Some(error) = &chunk.error {
            let kind = anthropic_error_type_for(error.kind.as_deref().unwrap_or(""), None, 500);
            self.write_error(
                StreamFailure::Upstream,
                kind,
                error.message.as_deref().unwrap_or(UNFINISHED),
            );
            return;
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        self.start(chunk.id.as_deref());
        for choice in chunk.choices.iter().filter(|choice| choice.index == 0) {
            if let Some(delta) = &choice.delta {
                let reasoning = delta.reasoning_content.as_deref();
                if let Some(text) = reasoning.or(delta.reasoning.as_deref()) {
                    self.text(BlockKind::Thinking, text);
                }
                if let Some(text) = delta.content.as_deref() {
                    self.text(BlockKind::Text, text);
                }
                if let Some(text) = delta.refusal.as_deref() {
                    self.text(BlockKind::Text, text);
                }
                for (position, call) in delta.tool_calls.iter().flatten().enumerate() {
                    let function = call.function.as_ref();
                    self.tool(
                        call.index
                            .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX)),
                        call.id.as_deref(),
                        function.and_then(|f| f.name.as_deref()),
                        function.and_then(|f| f.arguments.as_deref()),
                    );
                }
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(reason.to_string());
                self.close_all();
            }
        }
    }

    fn start(&mut self, upstream_id: Option<&str>) {
        if self.message_id.is_some() {
            return;
        }
        let id = message_id(upstream_id);
        let usage = self.usage.map_or(
            UsageOut {
                input_tokens: self.input_estimate,
                ..UsageOut::default()
            },
            UsageOut::from,
        );
        let start = MessageStart {
            kind: "message_start",
            message: MessageResponseOut {
                id: &id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: UsageOut {
                    output_tokens: 0,
                    ..usage
                },
            },
        };
        write_event(&mut self.out, Some("message_start"), &start);
        self.message_id = Some(id);
    }

    /// A text or thinking delta: it extends the last block if that is of the same kind and
    /// still open or pending, else starts a block.
    fn text(&mut self, kind: BlockKind, text: &str) {
        if text.is_empty() {
            return;
        }
        let index = match self.blocks.last() {
            Some(block) if block.kind == kind && block.state != BlockState::Closed => {
                self.blocks.len() - 1
            }
            _ => self.add(kind),
        };
        self.append(index, text);
    }

    fn tool(&mut self, index: u32, id: Option<&str>, name: Option<&str>, arguments: Option<&str>) {
        let block = match self.tool_blocks.iter().find(|(i, _)| *i == index) {
            Some(&(_, block)) => block,
            None => {
                let block = self.add(BlockKind::Tool {
                    id: String::new(),
                    name: String::new(),
                });
                self.tool_blocks.push((index, block));
                block
            }
        };
        // Ids and names usually come with a call's first delta; a block still pending takes
        // them whenever they come.
        if let Some(StreamBlock {
            kind:
                BlockKind::Tool {
                    id: block_id,
                    name: block_name,
                },
            state: BlockState::Pending,
            ..
        }) = self.blocks.get_mut(block)
        {
            if let Some(id) = id.filter(|id| !id.is_empty()) {
                *block_id = anthropic_tool_id(id).into_owned();
            }
            if let Some(name) = name.filter(|name| !name.is_empty()) {
                name.clone_into(block_name);
            }
        }
        match arguments {
            Some(arguments) if !arguments.is_empty() => self.append(block, arguments),
            _ => self.advance(),
        }
    }

    fn add(&mut self, kind: BlockKind) -> usize {
        self.blocks.push(StreamBlock {
            kind,
            state: BlockState::Pending,
            pending: String::new(),
            arguments: JsonScan::default(),
        });
        self.blocks.len() - 1
    }

    fn append(&mut self, index: usize, text: &str) {
        let Some(block) = self.blocks.get_mut(index) else {
            return;
        };
        if matches!(block.kind, BlockKind::Tool { .. }) {
            block.arguments.feed(text);
        }
        match block.state {
            BlockState::Open => self.delta(index, text),
            BlockState::Pending => block.pending.push_str(text),
            // Only a tool call can get here: its arguments were already a whole object, so
            // what follows can only be whitespace or a fault of the upstream.
            BlockState::Closed => {
                tracing::debug!("dropped arguments that followed a complete tool call");
            }
        }
        self.advance();
    }

    /// Opens pending blocks and closes finished ones, in index order, as far as possible.
    fn advance(&mut self) {
        while let Some(block) = self.blocks.get(self.active) {
            match block.state {
                BlockState::Pending => self.open(self.active),
                BlockState::Open => {
                    let finished = match block.kind {
                        BlockKind::Tool { .. } => block.arguments.complete(),
                        BlockKind::Text | BlockKind::Thinking => true,
                    };
                    if finished && self.active + 1 < self.blocks.len() {
                        self.close(self.active);
                        self.active += 1;
                    } else {
                        return;
                    }
                }
                BlockState::Closed => self.active += 1,
            }
        }
    }

    /// Closes every block, opening (and flushing) the pending ones first.
    fn close_all(&mut self) {
        while self.active < self.blocks.len() {
            if self.blocks[self.active].state == BlockState::Pending {
                self.open(self.active);
            }
            if self.blocks[self.active].state == BlockState::Open {
                self.close(self.active);
            }
            self.active += 1;
        }
    }

    fn open(&mut self, index: usize) {
        let message_id = self.message_id.as_deref().unwrap_or("msg_llmgate");
        let block = &mut self.blocks[index];
        if let BlockKind::Tool { id, .. } = &mut block.kind
            && id.is_empty()
        {
            // Some OpenAI-compatible servers send no id; Anthropic clients need one.
            let suffix = message_id.strip_prefix("msg_").unwrap_or(message_id);
            *id = format!("toolu_{suffix}_{index}");
        }
        let content_block = match &block.kind {
            BlockKind::Text => StartedBlock::Text { text: "" },
            BlockKind::Thinking => StartedBlock::Thinking {
                thinking: "",
                signature: "",
            },
            BlockKind::Tool { id, name } => StartedBlock::ToolUse {
                id,
                name,
                input: super::wire::EmptyObject {},
            },
        };
        let start = BlockStart {
            kind: "content_block_start",
            index,
            content_block,
        };
        write_event(&mut self.out, Some("content_block_start"), &start);
        block.state = BlockState::Open;
        let pending = std::mem::take(&mut block.pending);
        if !pending.is_empty() {
            self.delta(index, &pending);
        }
    }

    fn delta(&mut self, index: usize, text: &str) {
        let delta = match self.blocks[index].kind {
            BlockKind::Text => DeltaBody::Text { text },
            BlockKind::Thinking => DeltaBody::Thinking { thinking: text },
            BlockKind::Tool { .. } => DeltaBody::InputJson { partial_json: text },
        };
        let event = BlockDelta {
            kind: "content_block_delta",
            index,
            delta,
        };
        write_event(&mut self.out, Some("content_block_delta"), &event);
    }

    fn close(&mut self, index: usize) {
        self.blocks[index].state = BlockState::Closed;
        let stop = BlockStop {
            kind: "content_block_stop",
            index,
        };
        write_event(&mut self.out, Some("content_block_stop"), &stop);
    }

    /// The upstream finished: close every block, then `message_delta` and `message_stop`.
    fn end(&mut self) {
        self.start(None);
        self.close_all();
        let has_tool_calls = !self.tool_blocks.is_empty();
        let usage = self.usage.map(UsageOut::from);
        let delta = MessageDelta {
            kind: "message_delta",
            delta: StopDelta {
                stop_reason: stop_reason(self.finish_reason.as_deref(), has_tool_calls),
                stop_sequence: None,
            },
            usage: DeltaUsage {
                input_tokens: usage.map(|usage| usage.input_tokens),
                cache_creation_input_tokens: usage.map(|usage| usage.cache_creation_input_tokens),
                cache_read_input_tokens: usage.map(|usage| usage.cache_read_input_tokens),
                output_tokens: usage.map_or(0, |usage| usage.output_tokens),
            },
        };
        write_event(&mut self.out, Some("message_delta"), &delta);
        write_event(
            &mut self.out,
            Some("message_stop"),
            &MessageStop {
                kind: "message_stop",
            },
        );
        self.done = true;
    }

    /// Ends the stream with an `error` event and nothing else, as Anthropic's API does: an open
    /// block stays open. Claude Code takes an `error` after a `content_block_stop` for a broken
    /// answer it cannot retry, while a lone `error` makes it retry the request.
    fn write_error(&mut self, failure: StreamFailure, kind: &str, message: &str) {
        self.failure = Some(failure);
        let body = ErrorBody {
            kind: "error",
            error: ErrorDetail { kind, message },
        };
        write_event(&mut self.out, Some("error"), &body);
        self.done = true;
    }
}

impl EventTranslator for ChatToMessagesStream {
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

    /// A stream that reported its finish (even without `[DONE]`) is closed normally; one cut
    /// before that gets its open block closed and an `error` event.
    fn close(&mut self) -> bool {
        if self.finish_reason.is_some() {
            self.end();
        }
        self.done
    }

    /// An `error` event of Anthropic's type `kind` (`api_error` by default).
    fn abort(&mut self, failure: StreamFailure, kind: Option<&str>, message: &str) {
        self.write_error(failure, kind.unwrap_or("api_error"), message);
    }

    /// The usage the upstream reported, once it has (OpenAI reports it in the last chunk).
    fn reported_usage(&self) -> Option<Usage> {
        self.usage
    }

    fn stream_failure(&self) -> Option<StreamFailure> {
        self.failure
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic events → OpenAI chunks.

/// Turns an Anthropic upstream's event stream into `chat.completion.chunk` frames for a client
/// of `/v1/chat/completions`: the role first, content and `reasoning_content` deltas, tool calls
/// numbered 0, 1, … in the order their blocks start, the finish, the usage chunk when the client
/// asked for it (`stream_options.include_usage`), and `[DONE]`.
#[derive(Debug)]
pub struct MessagesToChatStream {
    chunks: ChunkWriter,
    decoder: SseDecoder,
    out: BytesMut,
    done: bool,
    started: bool,
    /// Per tool call: its Anthropic block index, and whether any arguments were sent.
    tools: Vec<(u32, bool)>,
    finish_reason: Option<&'static str>,
    usage: UsageIn,
    usage_seen: bool,
    failure: Option<StreamFailure>,
}

impl MessagesToChatStream {
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
            tools: Vec::new(),
            finish_reason: None,
            usage: UsageIn::default(),
            usage_seen: false,
            failure: None,
        }
    }

    fn frame(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        let event: EventIn<'_> = match serde_json::from_slice(data) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "skipped an upstream stream event that is not Anthropic's");
                return;
            }
        };
        match event.kind.as_ref() {
            "message_start" => {
                if let Some(message) = &event.message {
                    if let Some(id) = &message.id {
                        id.as_ref().clone_into(&mut self.chunks.id);
                    }
                    if let Some(usage) = message.usage {
                        self.usage.update(usage);
                        self.usage_seen = true;
                    }
                }
                self.start();
            }
            "content_block_start" => {
                self.start();
                let (Some(block), Some(index)) = (&event.content_block, event.index) else {
                    return;
                };
                match block.kind.as_ref() {
                    "text" => self.content(block.text.as_deref()),
                    "thinking" => self.reasoning(block.thinking.as_deref()),
                    "tool_use" => {
                        let tool_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                        let call = ToolCallDeltaOut {
                            index: tool_index,
                            id: Some(block.id.as_deref().unwrap_or("")),
                            kind: Some("function"),
                            function: FunctionDeltaOut {
                                name: Some(block.name.as_deref().unwrap_or("")),
                                arguments: "",
                            },
                        };
                        self.chunks.tool_call(&mut self.out, 0, call);
                        let mut has_arguments = false;
                        if let Some(input) = block.input.filter(|input| !is_empty_object(input)) {
                            self.arguments(tool_index, input.get());
                            has_arguments = true;
                        }
                        self.tools.push((index, has_arguments));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let (Some(delta), Some(index)) = (&event.delta, event.index) else {
                    return;
                };
                match delta.kind.as_deref() {
                    Some("text_delta") => self.content(delta.text.as_deref()),
                    Some("thinking_delta") => self.reasoning(delta.thinking.as_deref()),
                    Some("input_json_delta") => {
                        let fragment = delta.partial_json.as_deref().unwrap_or("");
                        let tool = self.tools.iter().position(|(block, _)| *block == index);
                        if let Some(tool) = tool
                            && !fragment.is_empty()
                        {
                            self.tools[tool].1 = true;
                            self.arguments(u32::try_from(tool).unwrap_or(u32::MAX), fragment);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let tool = event
                    .index
                    .and_then(|index| self.tools.iter().position(|(block, _)| *block == index));
                // A call without arguments still needs valid JSON in `arguments`.
                if let Some(tool) = tool
                    && !self.tools[tool].1
                {
                    self.tools[tool].1 = true;
                    self.arguments(u32::try_from(tool).unwrap_or(u32::MAX), "{}");
                }
            }
            "message_delta" => {
                if let Some(usage) = event.usage {
                    self.usage.update(usage);
                    self.usage_seen = true;
                }
                let reason = finish_reason(
                    event
                        .delta
                        .as_ref()
                        .and_then(|delta| delta.stop_reason.as_deref()),
                );
                self.start();
                self.finish_reason = Some(reason);
                self.chunks.finish(&mut self.out, 0, reason);
            }
            "message_stop" => self.end(),
            "error" => {
                let error = event.error.as_ref();
                let kind = error
                    .and_then(|error| error.kind.as_deref())
                    .unwrap_or("api_error");
                let message = error
                    .and_then(|error| error.message.as_deref())
                    .unwrap_or(UNFINISHED);
                self.write_error(StreamFailure::Upstream, kind, message);
            }
            // ping, and event types newer than this code.
            _ => {}
        }
    }

    fn start(&mut self) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        if self.chunks.id.is_empty() {
            self.chunks.id.push_str("msg_llmgate");
        }
        self.chunks.role(&mut self.out, 0);
    }

    fn content(&mut self, text: Option<&str>) {
        if let Some(text) = text.filter(|text| !text.is_empty()) {
            self.chunks.content(&mut self.out, 0, text);
        }
    }

    fn reasoning(&mut self, text: Option<&str>) {
        if let Some(text) = text.filter(|text| !text.is_empty()) {
            self.chunks.reasoning(&mut self.out, 0, text);
        }
    }

    fn arguments(&mut self, tool_index: u32, fragment: &str) {
        let call = ToolCallDeltaOut {
            index: tool_index,
            id: None,
            kind: None,
            function: FunctionDeltaOut {
                name: None,
                arguments: fragment,
            },
        };
        self.chunks.tool_call(&mut self.out, 0, call);
    }

    fn end(&mut self) {
        self.start();
        if self.finish_reason.is_none() {
            self.finish_reason = Some("stop");
            self.chunks.finish(&mut self.out, 0, "stop");
        }
        let usage = self.reported_usage();
        self.chunks.end(&mut self.out, usage);
        self.done = true;
    }

    /// Ends with an OpenAI-shaped error frame; `kind` is Anthropic's error type.
    fn write_error(&mut self, failure: StreamFailure, kind: &str, message: &str) {
        self.failure = Some(failure);
        let (kind, _) = openai_error_type_for(kind);
        ChunkWriter::error(&mut self.out, kind, message);
        self.done = true;
    }
}

impl EventTranslator for MessagesToChatStream {
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

    /// A stream that reported its stop reason is completed (usage, `[DONE]`).
    fn close(&mut self) -> bool {
        if self.finish_reason.is_some() {
            self.end();
        }
        self.done
    }

    /// An error frame of OpenAI's type `kind` (by default the one Anthropic's `api_error` maps
    /// to).
    fn abort(&mut self, failure: StreamFailure, kind: Option<&str>, message: &str) {
        match kind {
            Some(kind) => {
                self.failure = Some(failure);
                ChunkWriter::error(&mut self.out, kind, message);
                self.done = true;
            }
            None => self.write_error(failure, "api_error", message),
        }
    }

    /// The usage reported so far (Anthropic sends the prompt side first, the output at the end).
    fn reported_usage(&self) -> Option<Usage> {
        self.usage_seen.then(|| Usage::from(self.usage))
    }

    fn stream_failure(&self) -> Option<StreamFailure> {
        self.failure
    }
}

//! Streams: OpenAI `chat.completion.chunk` frames → Responses events.

use bytes::{Bytes, BytesMut};
use serde::Serialize;

use super::response::failure_code;
use super::wire::{
    ChatErrorBody, IncompleteDetails, ItemStatus, OutputItem, OutputText, ResponseError,
    SummaryText, UsageOut,
};
use super::{ResponseOut, ResponsesCall, call_id, item_id, status_for};
use crate::sse::SseDecoder;
use crate::translate::StreamFailure;
use crate::translate::json::{JsonScan, to_bytes, write_event};
use crate::translate::openai::ChunkIn;
use crate::translate::stream::{EventTranslator, UNFINISHED};
use crate::usage::Usage;

/// Turns an OpenAI-compatible upstream's chat stream into the Responses event stream, as
/// OpenAI sends it: `response.created`, `response.in_progress`, per output item
/// `response.output_item.added`, its parts and deltas, `response.output_item.done`, and last
/// `response.completed` (or `response.incomplete` for a cut-short answer, `response.failed` for
/// an error). Each event is `event: <type>` and `data: {"type", "sequence_number", …}`, with
/// sequence numbers counting up from 0; there is no `[DONE]`.
///
/// Items open in the order the upstream starts them and take the next `output_index`. Each text
/// delta is relayed as it comes, one event per upstream delta. Reasoning text becomes a
/// `reasoning` item with one summary part, content a `message` item with one `output_text`
/// part; either closes when anything else starts. A tool call closes when the choice finishes,
/// or earlier once its arguments form a whole JSON value and another item starts, so an
/// upstream that sends calls one after the other (OpenAI itself) is relayed as OpenAI would,
/// and one that interleaves calls by `tool_calls[].index` gets several `function_call` items
/// open at once, each delta carrying its own `item_id` and `output_index`.
///
/// Only choice 0 is translated (Responses has no `n`).
#[derive(Debug)]
pub struct ChatToResponsesStream {
    meta: Meta,
    decoder: SseDecoder,
    events: EventWriter,
    started: bool,
    done: bool,
    items: Vec<StreamItem>,
    /// The open reasoning or message item, if any.
    open_text: Option<usize>,
    /// Chat tool-call index → output index.
    tools: Vec<(u32, usize)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    response: Option<Bytes>,
    /// Why the stream ended with `response.failed`, if it did.
    failure: Option<StreamFailure>,
}

/// What every `response` object of the stream carries.
#[derive(Debug)]
struct Meta {
    call: ResponsesCall,
    id: String,
    created_at: i64,
}

impl Meta {
    fn response<'s>(
        &'s self,
        usage: Option<Usage>,
        status: &'static str,
        error: Option<&'s ResponseError>,
        incomplete: Option<IncompleteDetails>,
        output: &'s [OutputItem],
    ) -> ResponseOut<'s> {
        ResponseOut {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status,
            background: false,
            error,
            incomplete_details: incomplete,
            model: &self.call.model,
            output,
            usage: usage.map(UsageOut::from),
            echo: &self.call.echo,
        }
    }
}

/// Writes events with their sequence numbers.
#[derive(Debug)]
struct EventWriter {
    out: BytesMut,
    sequence: u64,
}

impl EventWriter {
    fn emit<T: Serialize>(&mut self, kind: &str, body: T) {
        let event = Event {
            kind,
            sequence_number: self.sequence,
            body,
        };
        write_event(&mut self.out, Some(kind), &event);
        self.sequence += 1;
    }
}

#[derive(Debug)]
struct StreamItem {
    /// The item as `output_item.added` announced it; completed when it closes.
    item: OutputItem,
    /// The text, summary or arguments received so far.
    text: String,
    open: bool,
    arguments: JsonScan,
}

#[derive(Serialize)]
struct Event<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct ResponseBody<'a> {
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
struct ItemBody<'a> {
    output_index: usize,
    item: &'a OutputItem,
}

#[derive(Serialize)]
struct PartBody<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    part: &'a OutputText,
}

#[derive(Serialize)]
struct TextDeltaBody<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    delta: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct TextDoneBody<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    text: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct SummaryPartBody<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: usize,
    part: &'a SummaryText,
}

#[derive(Serialize)]
struct SummaryDeltaBody<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct SummaryDoneBody<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: usize,
    text: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDeltaBody<'a> {
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDoneBody<'a> {
    item_id: &'a str,
    output_index: usize,
    name: &'a str,
    arguments: &'a str,
}

impl EventTranslator for ChatToResponsesStream {
    fn decoder(&mut self) -> &mut SseDecoder {
        &mut self.decoder
    }

    fn output(&mut self) -> &mut BytesMut {
        &mut self.events.out
    }

    fn ended(&self) -> bool {
        self.done
    }

    fn event(&mut self, _name: &str, data: &[u8]) {
        self.frame(data);
    }

    /// A stream that reported its finish (even without `[DONE]`) ends with
    /// `response.completed` or `response.incomplete`; one cut before that with
    /// `response.failed`.
    fn close(&mut self) -> bool {
        if self.finish_reason.is_some() {
            self.end();
        }
        self.done
    }

    /// `response.failed` with the error code `kind` (`server_error` by default).
    fn abort(&mut self, failure: StreamFailure, kind: Option<&str>, message: &str) {
        self.failure = Some(failure);
        self.write_error(kind.unwrap_or("server_error"), message);
    }

    /// The usage the upstream reported, once it has (OpenAI reports it in the last chunk).
    fn reported_usage(&self) -> Option<Usage> {
        self.usage
    }

    fn stream_failure(&self) -> Option<StreamFailure> {
        self.failure
    }

    fn final_object(&self) -> Option<&Bytes> {
        self.response.as_ref()
    }
}

fn id_of(item: &OutputItem) -> &str {
    match item {
        OutputItem::Reasoning { id, .. }
        | OutputItem::Message { id, .. }
        | OutputItem::FunctionCall { id, .. } => id,
    }
}

impl ChatToResponsesStream {
    /// A translator for one stream: `call` from [`super::responses_request_to_chat`], `id` the
    /// response id (`resp_…`), `created_at` in Unix seconds.
    pub fn new(call: &ResponsesCall, id: &str, created_at: i64) -> Self {
        Self {
            meta: Meta {
                call: call.clone(),
                id: id.to_owned(),
                created_at,
            },
            decoder: SseDecoder::default(),
            events: EventWriter {
                out: BytesMut::with_capacity(1024),
                sequence: 0,
            },
            started: false,
            done: false,
            items: Vec::new(),
            open_text: None,
            tools: Vec::new(),
            finish_reason: None,
            usage: None,
            response: None,
            failure: None,
        }
    }

    /// The final `response` object, as the last event carried it (completed, incomplete or
    /// failed), once the stream has ended: what the gateway stores.
    pub fn response(&self) -> Option<&Bytes> {
        self.response.as_ref()
    }

    fn frame(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        // `[DONE]` is the upstream's own clean end, even from a server that sent no
        // `finish_reason` before it.
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
            // The shared chunk struct leaves out `code`; read it for the failure's code.
            let body = serde_json::from_slice::<ChatErrorBody<'_>>(data).ok();
            let code = body
                .as_ref()
                .and_then(|body| body.error.code.as_ref())
                .and_then(|code| code.as_str());
            let code = failure_code(error.kind.as_deref(), code);
            self.failure = Some(StreamFailure::Upstream);
            self.write_error(code, error.message.as_deref().unwrap_or(UNFINISHED));
            return;
        }
        self.start();
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        for choice in chunk.choices.iter().filter(|choice| choice.index == 0) {
            if let Some(delta) = &choice.delta {
                let reasoning = delta.reasoning_content.as_deref();
                if let Some(text) = reasoning.or(delta.reasoning.as_deref()) {
                    self.text(TextKind::Reasoning, text);
                }
                if let Some(text) = delta.content.as_deref() {
                    self.text(TextKind::Message, text);
                }
                if let Some(text) = delta.refusal.as_deref() {
                    self.text(TextKind::Message, text);
                }
                for (position, call) in delta.tool_calls.iter().flatten().enumerate() {
                    let function = call.function.as_ref();
                    self.tool(
                        call.index
                            .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX)),
                        call.id.as_deref(),
                        function.and_then(|f| f.name.as_deref()),
                        function.and_then(|f| f.arguments.as_deref()).unwrap_or(""),
                    );
                }
            }
            if let Some(reason) = &choice.finish_reason
                && self.finish_reason.is_none()
            {
                self.finish_reason = Some(reason.to_string());
                let status = match status_for(Some(reason)).1 {
                    Some(_) => ItemStatus::Incomplete,
                    None => ItemStatus::Completed,
                };
                for index in 0..self.items.len() {
                    self.close(index, status);
                }
            }
        }
    }

    /// `response.created` and `response.in_progress`, once.
    fn start(&mut self) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        for kind in ["response.created", "response.in_progress"] {
            let response = self
                .meta
                .response(self.usage, "in_progress", None, None, &[]);
            self.events.emit(kind, ResponseBody { response });
        }
    }

    /// Adds a new item at the next output index and announces it.
    fn add(&mut self, item: OutputItem) -> usize {
        // A new item closes the text item, and every tool call whose arguments are whole.
        if let Some(open) = self.open_text.take() {
            self.close(open, ItemStatus::Completed);
        }
        for index in 0..self.items.len() {
            if self.items[index].open && self.items[index].arguments.complete() {
                self.close(index, ItemStatus::Completed);
            }
        }
        let index = self.items.len();
        self.items.push(StreamItem {
            item,
            text: String::new(),
            open: true,
            arguments: JsonScan::default(),
        });
        let item = self.items[index].item.clone();
        self.events.emit(
            "response.output_item.added",
            ItemBody {
                output_index: index,
                item: &item,
            },
        );
        let item_id = id_of(&item);
        match &item {
            OutputItem::Message { .. } => self.events.emit(
                "response.content_part.added",
                PartBody {
                    item_id,
                    output_index: index,
                    content_index: 0,
                    part: &OutputText::new(String::new()),
                },
            ),
            OutputItem::Reasoning { .. } => self.events.emit(
                "response.reasoning_summary_part.added",
                SummaryPartBody {
                    item_id,
                    output_index: index,
                    summary_index: 0,
                    part: &SummaryText::new(String::new()),
                },
            ),
            OutputItem::FunctionCall { .. } => {}
        }
        index
    }

    fn text(&mut self, kind: TextKind, delta: &str) {
        if delta.is_empty() {
            return;
        }
        let index = match self.open_text {
            Some(index) if self.items[index].kind() == kind => index,
            _ => {
                let index = self.items.len();
                let item = match kind {
                    TextKind::Reasoning => OutputItem::Reasoning {
                        id: item_id("rs", &self.meta.id, index),
                        summary: Vec::new(),
                    },
                    TextKind::Message => OutputItem::Message {
                        id: item_id("msg", &self.meta.id, index),
                        status: ItemStatus::InProgress,
                        role: "assistant",
                        content: Vec::new(),
                    },
                };
                let index = self.add(item);
                self.open_text = Some(index);
                index
            }
        };
        self.items[index].text.push_str(delta);
        let item_id = item_id(kind.prefix(), &self.meta.id, index);
        match kind {
            TextKind::Message => self.events.emit(
                "response.output_text.delta",
                TextDeltaBody {
                    item_id: &item_id,
                    output_index: index,
                    content_index: 0,
                    delta,
                    logprobs: [],
                },
            ),
            TextKind::Reasoning => self.events.emit(
                "response.reasoning_summary_text.delta",
                SummaryDeltaBody {
                    item_id: &item_id,
                    output_index: index,
                    summary_index: 0,
                    delta,
                },
            ),
        }
    }

    fn tool(&mut self, tool_index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let index = match self.tools.iter().find(|(tool, _)| *tool == tool_index) {
            Some(&(_, index)) => index,
            None => {
                let index = self.items.len();
                let (name, namespace) = self.meta.call.function(name.unwrap_or(""));
                let item = OutputItem::FunctionCall {
                    id: item_id("fc", &self.meta.id, index),
                    status: ItemStatus::InProgress,
                    arguments: String::new(),
                    call_id: call_id(id, &self.meta.id, index),
                    name,
                    namespace,
                };
                let index = self.add(item);
                self.tools.push((tool_index, index));
                index
            }
        };
        if arguments.is_empty() {
            return;
        }
        let item = &mut self.items[index];
        if !item.open {
            if !arguments.trim().is_empty() {
                tracing::warn!(
                    tool_index,
                    "dropped arguments an upstream sent for a tool call whose arguments were \
                     already a whole JSON value"
                );
            }
            return;
        }
        item.text.push_str(arguments);
        item.arguments.feed(arguments);
        let item_id = item_id("fc", &self.meta.id, index);
        self.events.emit(
            "response.function_call_arguments.delta",
            ArgumentsDeltaBody {
                item_id: &item_id,
                output_index: index,
                delta: arguments,
            },
        );
    }

    /// Closes an open item: its `.done` events, with the whole text or arguments.
    fn close(&mut self, index: usize, status: ItemStatus) {
        if !self.items[index].open {
            return;
        }
        // A call the upstream sent no arguments for still gets a JSON object, as a delta so
        // that the deltas add up to the `.done` arguments.
        if matches!(self.items[index].item, OutputItem::FunctionCall { .. })
            && self.items[index].text.trim().is_empty()
        {
            self.items[index].text.push_str("{}");
            let item_id = item_id("fc", &self.meta.id, index);
            self.events.emit(
                "response.function_call_arguments.delta",
                ArgumentsDeltaBody {
                    item_id: &item_id,
                    output_index: index,
                    delta: "{}",
                },
            );
        }
        if self.open_text == Some(index) {
            self.open_text = None;
        }
        let entry = &mut self.items[index];
        entry.open = false;
        let text = std::mem::take(&mut entry.text);
        let item = entry.item.clone();
        let item_id = id_of(&item).to_owned();
        let done = match item {
            OutputItem::Message { id, role, .. } => {
                self.events.emit(
                    "response.output_text.done",
                    TextDoneBody {
                        item_id: &item_id,
                        output_index: index,
                        content_index: 0,
                        text: &text,
                        logprobs: [],
                    },
                );
                let part = OutputText::new(text);
                self.events.emit(
                    "response.content_part.done",
                    PartBody {
                        item_id: &item_id,
                        output_index: index,
                        content_index: 0,
                        part: &part,
                    },
                );
                OutputItem::Message {
                    id,
                    status,
                    role,
                    content: vec![part],
                }
            }
            OutputItem::Reasoning { id, .. } => {
                self.events.emit(
                    "response.reasoning_summary_text.done",
                    SummaryDoneBody {
                        item_id: &item_id,
                        output_index: index,
                        summary_index: 0,
                        text: &text,
                    },
                );
                let part = SummaryText::new(text);
                self.events.emit(
                    "response.reasoning_summary_part.done",
                    SummaryPartBody {
                        item_id: &item_id,
                        output_index: index,
                        summary_index: 0,
                        part: &part,
                    },
                );
                OutputItem::Reasoning {
                    id,
                    summary: vec![part],
                }
            }
            OutputItem::FunctionCall {
                id,
                call_id,
                name,
                namespace,
                ..
            } => {
                self.events.emit(
                    "response.function_call_arguments.done",
                    ArgumentsDoneBody {
                        item_id: &item_id,
                        output_index: index,
                        name: &name,
                        arguments: &text,
                    },
                );
                OutputItem::FunctionCall {
                    id,
                    status,
                    arguments: text,
                    call_id,
                    name,
                    namespace,
                }
            }
        };
        self.events.emit(
            "response.output_item.done",
            ItemBody {
                output_index: index,
                item: &done,
            },
        );
        self.items[index].item = done;
    }

    /// The normal end: `response.completed`, or `response.incomplete` for a length or content
    /// filter stop.
    fn end(&mut self) {
        self.start();
        let (status, incomplete) = status_for(self.finish_reason.as_deref());
        let item_status = match incomplete {
            Some(_) => ItemStatus::Incomplete,
            None => ItemStatus::Completed,
        };
        for index in 0..self.items.len() {
            self.close(index, item_status);
        }
        let output: Vec<OutputItem> = self.items.iter().map(|entry| entry.item.clone()).collect();
        let kind = if incomplete.is_some() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.last_event(kind, status, None, incomplete, &output);
    }

    /// Ends with `response.failed` carrying `code` and `message`. Items still open are left
    /// without `.done` events and are `incomplete` in the failed response.
    fn write_error(&mut self, code: &str, message: &str) {
        self.start();
        let output: Vec<OutputItem> = self
            .items
            .iter()
            .map(|entry| {
                let mut item = entry.item.clone();
                if entry.open {
                    partial(&mut item, &entry.text);
                }
                item
            })
            .collect();
        let error = ResponseError {
            code: code.to_owned(),
            message: message.to_owned(),
        };
        self.last_event("response.failed", "failed", Some(&error), None, &output);
    }

    fn last_event(
        &mut self,
        kind: &str,
        status: &'static str,
        error: Option<&ResponseError>,
        incomplete: Option<IncompleteDetails>,
        output: &[OutputItem],
    ) {
        let response = self
            .meta
            .response(self.usage, status, error, incomplete, output);
        self.response = Some(to_bytes(&response));
        self.events.emit(kind, ResponseBody { response });
        self.done = true;
    }
}

/// An item cut off mid-stream, with what it had received, marked incomplete.
fn partial(item: &mut OutputItem, text: &str) {
    match item {
        OutputItem::Message {
            status, content, ..
        } => {
            *status = ItemStatus::Incomplete;
            *content = vec![OutputText::new(text.to_owned())];
        }
        OutputItem::Reasoning { summary, .. } => {
            *summary = vec![SummaryText::new(text.to_owned())];
        }
        OutputItem::FunctionCall {
            status, arguments, ..
        } => {
            *status = ItemStatus::Incomplete;
            text.clone_into(arguments);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    Reasoning,
    Message,
}

impl TextKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Reasoning => "rs",
            Self::Message => "msg",
        }
    }
}

impl StreamItem {
    fn kind(&self) -> TextKind {
        match self.item {
            OutputItem::Reasoning { .. } => TextKind::Reasoning,
            _ => TextKind::Message,
        }
    }
}

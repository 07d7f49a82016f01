//! Watching an upstream event stream as it is relayed: the usage of its final usage chunk, the
//! text generated so far (to estimate usage when none is reported), and, when the client did not
//! ask for usage, removing the usage-only chunk from what is forwarded.
//!
//! Frames are parsed with serde visitors that append strings straight into one buffer: no JSON
//! tree and, once the buffers have grown, no allocation per frame.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::extract::WireUsage;
use super::{Usage, estimate};
use crate::sse::{self, Line, Lines};

/// Longest line kept for parsing. A longer data line is forwarded but not read: its text is
/// counted by length instead.
const MAX_LINE: usize = 4 << 20;
/// Generated text kept for estimation; beyond it, only the byte count grows.
const MAX_TEXT: usize = 1 << 20;
/// An event bigger than this cannot be a usage-only chunk, so it is no longer held back.
const MAX_HELD: usize = 16 << 10;

/// The events a scanned stream carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventForm {
    /// OpenAI chat (or legacy completions) chunks: `choices` and a final usage chunk.
    #[default]
    Chat,
    /// OpenAI's Responses events: text in `delta`s, usage in the `response` of the final
    /// `response.completed` (or `.incomplete`, `.failed`) event.
    Responses,
}

/// Scans a relayed event stream. Feed every upstream chunk, in order, through
/// [`forward`](Self::forward) (or [`observe`](Self::observe) when nothing is filtered), then call
/// [`finish`](Self::finish) when the upstream ends.
#[derive(Debug, Default)]
pub struct StreamUsage {
    scanner: Scanner,
    filter: Option<Filter>,
}

/// What `forward` holds back while the usage-only chunk must be removed.
#[derive(Debug, Default)]
struct Filter {
    /// Bytes of the event being read that arrived in earlier chunks and were not forwarded.
    held: Vec<u8>,
    /// Whether the event being read is still held back (false once it is too big to be usage).
    holding: bool,
    /// The previous chunk ended with an event whose last line break was a `\r`, and whether
    /// that event was kept: a `\n` starting the next chunk completes that line break and goes
    /// (or does not go) with it.
    ended_on_cr: Option<bool>,
}

impl StreamUsage {
    /// A scanner of chat chunks that forwards every byte unchanged.
    pub fn new() -> Self {
        Self::default()
    }

    /// A scanner of `form`'s events that forwards every byte unchanged.
    pub fn of(form: EventForm) -> Self {
        Self {
            scanner: Scanner {
                form,
                ..Scanner::default()
            },
            filter: None,
        }
    }

    /// A scanner whose [`forward`](Self::forward) removes the usage-only chunk (`choices` empty,
    /// `usage` set): for clients that did not ask for `stream_options.include_usage`. Until an
    /// event is complete it is held back, since it might be that chunk; complete events are
    /// forwarded at once.
    pub fn filtering() -> Self {
        Self {
            scanner: Scanner::default(),
            filter: Some(Filter {
                holding: true,
                ..Filter::default()
            }),
        }
    }

    /// Scans `chunk` and returns the bytes to send to the client: `chunk` itself (or a slice
    /// of it, no copy) unless an event spans chunks or the usage-only chunk was removed. The
    /// result may be empty; skip sending it then.
    pub fn forward(&mut self, chunk: Bytes) -> Bytes {
        let Some(filter) = self.filter.as_mut() else {
            self.scanner.scan(&chunk, |_, _| {});
            return chunk;
        };
        if chunk.is_empty() {
            return chunk;
        }
        let mut out = Output::default();
        let mut start = 0;
        if let Some(kept) = filter.ended_on_cr.take()
            && chunk[0] == b'\n'
        {
            if kept {
                out.push_range(&chunk, 0..1);
            }
            start = 1;
        }
        self.scanner.scan(&chunk, |end, usage_only| {
            let keep = !usage_only || !filter.holding;
            if keep {
                if !filter.held.is_empty() {
                    out.push_owned(&chunk, std::mem::take(&mut filter.held));
                }
                out.push_range(&chunk, start..end);
            } else {
                filter.held.clear();
            }
            filter.ended_on_cr = (end == chunk.len() && chunk[end - 1] == b'\r').then_some(keep);
            filter.holding = true;
            start = end;
        });
        let tail = start..chunk.len();
        if filter.holding && filter.held.len() + tail.len() > MAX_HELD {
            filter.holding = false;
            if !filter.held.is_empty() {
                out.push_owned(&chunk, std::mem::take(&mut filter.held));
            }
        }
        if filter.holding {
            filter.held.extend_from_slice(&chunk[tail]);
        } else {
            out.push_range(&chunk, tail);
        }
        out.into_bytes(&chunk)
    }

    /// Scans `chunk` without filtering: the caller forwards it unchanged.
    pub fn observe(&mut self, chunk: &[u8]) {
        self.scanner.scan(chunk, |_, _| {});
    }

    /// The upstream ended: reads a last event left without its blank line, and returns the
    /// bytes still held back (empty unless filtering and the stream ended mid-event).
    pub fn finish(&mut self) -> Bytes {
        let usage_only = self.scanner.finish();
        match self.filter.as_mut() {
            Some(filter) if !(usage_only && filter.holding) => {
                Bytes::from(std::mem::take(&mut filter.held))
            }
            Some(filter) => {
                filter.held.clear();
                Bytes::new()
            }
            None => Bytes::new(),
        }
    }

    /// The usage of the last frame that reported one, if any did.
    pub fn usage(&self) -> Option<Usage> {
        self.scanner.usage
    }

    /// The text generated so far: `choices[].delta.content` (and reasoning text and tool-call
    /// arguments) of chat chunks, `choices[].text` of legacy completions, up to 1 MiB.
    pub fn generated_text(&self) -> &str {
        &self.scanner.text
    }

    /// Whether `data: [DONE]` was seen.
    pub fn saw_done(&self) -> bool {
        self.scanner.done
    }

    /// Whether the upstream sent an error event: `error` or `response.failed` in a Responses
    /// stream. (Chat streams are not read for it.)
    pub fn saw_failure(&self) -> bool {
        self.scanner.failed
    }

    /// The `response` object of a Responses stream's final event (`response.completed`,
    /// `.incomplete` or `.failed`), once it has passed.
    pub fn final_response(&self) -> Option<&Bytes> {
        self.scanner.final_response.as_ref()
    }

    /// Whether a Responses stream has not (yet) sent the event that ends a response:
    /// `response.completed`, `.incomplete` or `.failed`, or an `error`. Chat streams are not
    /// held to their `[DONE]`, which OpenAI-compatible servers do not all send.
    pub fn unfinished(&self) -> bool {
        self.scanner.form == EventForm::Responses && !self.scanner.ended
    }

    /// The reported usage or, when the upstream reported none (or the client left before the
    /// usage chunk), an estimate from the request and the text generated so far.
    pub fn usage_or_estimate(&self, model: &str, request: &[u8]) -> Usage {
        self.usage().unwrap_or_else(|| {
            let mut usage = estimate::estimate_usage(model, request, self.generated_text());
            // Text beyond what was kept, at about four bytes per token.
            usage.completion_tokens += self.scanner.text_overflow.div_ceil(4);
            usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
            usage
        })
    }
}

/// Whether `data`, one event's data, is the usage-only chunk: `choices` empty (or absent) and
/// `usage` an object.
pub fn is_usage_only_chunk(data: &[u8]) -> bool {
    let mut ignored = String::new();
    parse_frame(data, &mut ignored, usize::MAX).is_some_and(|frame| frame.usage_only())
}

/// The generated text of a whole response: `choices[].message` content, reasoning and tool-call
/// arguments, or `choices[].text` of a chat or completions answer; the `output` items' text,
/// function call arguments and reasoning summaries of a Responses answer.
pub(super) fn response_text(body: &[u8]) -> String {
    let mut text = String::new();
    if parse_object::<WholeAnswer>(body, &mut text, MAX_TEXT).is_none() {
        text.clear();
    }
    text
}

/// The bytes `forward` returns: one range of the input while it can, a copy once it cannot.
#[derive(Default)]
enum Output {
    #[default]
    Empty,
    Range(Range<usize>),
    Owned(Vec<u8>),
}

impl Output {
    fn push_range(&mut self, chunk: &[u8], range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        match self {
            Self::Empty => *self = Self::Range(range),
            Self::Range(current) if current.end == range.start => current.end = range.end,
            Self::Range(current) => {
                let mut owned = Vec::with_capacity(chunk.len());
                owned.extend_from_slice(&chunk[current.clone()]);
                owned.extend_from_slice(&chunk[range]);
                *self = Self::Owned(owned);
            }
            Self::Owned(owned) => owned.extend_from_slice(&chunk[range]),
        }
    }

    fn push_owned(&mut self, chunk: &[u8], bytes: Vec<u8>) {
        match self {
            Self::Empty => *self = Self::Owned(bytes),
            Self::Range(current) => {
                let mut owned = chunk[current.clone()].to_vec();
                owned.extend_from_slice(&bytes);
                *self = Self::Owned(owned);
            }
            Self::Owned(owned) => owned.extend_from_slice(&bytes),
        }
    }

    fn into_bytes(self, chunk: &Bytes) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::Range(range) if range.len() == chunk.len() => chunk.clone(),
            Self::Range(range) => chunk.slice(range),
            Self::Owned(owned) => Bytes::from(owned),
        }
    }
}

/// What the stream's lines (read by the one SSE line reader) told so far.
#[derive(Debug, Default)]
struct Scanner {
    lines: Lines,
    /// The data of the event being read (its `data:` lines joined with `\n`).
    data: Vec<u8>,
    has_data: bool,
    /// Part of the event's data was too long to keep; it is not parsed.
    data_overflow: bool,
    usage: Option<Usage>,
    text: String,
    /// Bytes of generated text not kept in `text`.
    text_overflow: u64,
    done: bool,
    form: EventForm,
    /// A Responses stream's final event was seen.
    ended: bool,
    /// A Responses stream's error event was seen.
    failed: bool,
    /// The `response` object of a Responses stream's final event, as sent.
    final_response: Option<Bytes>,
}

impl Scanner {
    /// Reads the lines of `chunk`, calling `event_end(offset, usage_only)` at each blank line
    /// with the offset just past it.
    fn scan(&mut self, chunk: &[u8], mut event_end: impl FnMut(usize, bool)) {
        let mut lines = std::mem::take(&mut self.lines);
        lines.feed(chunk, MAX_LINE, |line, next| {
            if let Some(usage_only) = self.read_line(line) {
                event_end(next, usage_only);
            }
        });
        self.lines = lines;
    }

    /// Handles one complete line; `Some(usage_only)` when it ends an event.
    fn read_line(&mut self, line: Line<'_>) -> Option<bool> {
        if line.bytes.is_empty() && line.overflow.is_none() {
            return Some(self.dispatch());
        }
        if let Some((b"data", value)) = sse::field(line.bytes) {
            if line.overflow.is_some() || self.data.len() + value.len() >= MAX_LINE {
                // Too long to parse: its text is only counted, at a guess of all of it.
                self.data_overflow = true;
                self.text_overflow += line.overflow.unwrap_or(0).max(value.len() as u64);
                self.has_data = true;
                return None;
            }
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        None
    }

    /// The event is complete: reads its data. Returns whether it was the usage-only chunk.
    fn dispatch(&mut self) -> bool {
        if !std::mem::take(&mut self.has_data) {
            return false;
        }
        let overflow = std::mem::take(&mut self.data_overflow);
        let mut usage_only = false;
        if !overflow {
            if self.data == b"[DONE]" {
                self.done = true;
            } else if self.form == EventForm::Responses {
                let room = MAX_TEXT.saturating_sub(self.text.len());
                let before = self.text.len();
                if let Some(event) = parse_event(&self.data, &mut self.text, room) {
                    if let Some(usage) = event.usage {
                        self.usage = Some(usage);
                    }
                    if event.end.is_some() {
                        self.ended = true;
                        // Read once per stream: the object a stored response keeps.
                        self.final_response = final_object(&self.data);
                    }
                    self.failed |= event.end == Some(EventEnd::Failed);
                    self.text_overflow += event.overflow;
                } else {
                    self.text.truncate(before);
                }
            } else {
                let room = MAX_TEXT.saturating_sub(self.text.len());
                let before = self.text.len();
                if let Some(frame) = parse_frame(&self.data, &mut self.text, room) {
                    usage_only = frame.usage_only();
                    if let Some(usage) = frame.usage {
                        self.usage = Some(usage);
                    }
                    self.text_overflow += frame.overflow;
                } else {
                    // A frame that is not ours to read leaves no half-appended text behind.
                    self.text.truncate(before);
                }
            }
        }
        self.data.clear();
        usage_only
    }

    /// The stream ended: a pending line and event count as complete.
    fn finish(&mut self) -> bool {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| {
            self.read_line(line);
        });
        self.lines = lines;
        self.dispatch()
    }
}

/// What one event's JSON said.
struct Frame {
    /// `Some(n)` when `choices` was an array of `n`.
    choices: Option<usize>,
    usage: Option<Usage>,
    /// Text bytes that did not fit in the room given.
    overflow: u64,
}

impl Frame {
    fn usage_only(&self) -> bool {
        self.usage.is_some() && self.choices.unwrap_or(0) == 0
    }
}

/// Parses one event's data, appending generated text to `text` (at most `room` bytes).
fn parse_frame(data: &[u8], text: &mut String, room: usize) -> Option<Frame> {
    let ((choices, usage), overflow) = parse_object::<ChatChunk>(data, text, room)?;
    Some(Frame {
        choices,
        usage,
        overflow,
    })
}

/// Where generated text goes.
struct TextSink<'s> {
    text: &'s mut String,
    room: usize,
    overflow: u64,
}

impl TextSink<'_> {
    fn push(&mut self, s: &str) {
        if s.len() <= self.room {
            self.text.push_str(s);
            self.room -= s.len();
        } else {
            // Cut on a character boundary; the rest is only counted.
            let mut cut = self.room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&s[..cut]);
            self.room -= cut;
            self.overflow += (s.len() - cut) as u64;
        }
    }
}

/// Which of `names` a map key is, without allocating (`None`: not one we read).
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|name| *name == v))
    }
}

/// Reads the object at this point as a map, calling `field(index, map)` for the keys in
/// `names` and skipping the others; `null` reads as nothing.
macro_rules! visit_fields {
    ($names:expr, $map:ident, |$index:ident| $body:block) => {{
        while let Some(found) = $map.next_key_seed(Key($names))? {
            match found {
                Some($index) => $body,
                None => {
                    $map.next_value::<IgnoredAny>()?;
                }
            }
        }
    }};
}

/// What one event of a Responses stream said.
struct Event {
    /// How the response ended, when this event ends it.
    end: Option<EventEnd>,
    /// The usage of the `response` it carries, when reported.
    usage: Option<Usage>,
    /// Text bytes that did not fit in the room given.
    overflow: u64,
}

/// How a Responses stream's last event ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventEnd {
    /// `response.completed` or `response.incomplete`: an answer, whole or cut at its limit.
    Answered,
    /// `response.failed` or `error`.
    Failed,
}

/// The event types that end a response, in the order of [`EventEnd`] they map to.
const END_EVENTS: &[&str] = &[
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
];

/// Parses one Responses event's data: its `type`, the usage of its `response`, and the text
/// of its `delta` (output text, function call arguments, reasoning summaries), appended to
/// `text` (at most `room` bytes). The final `response` object repeats the whole output: only
/// its `usage` is read.
fn parse_event(data: &[u8], text: &mut String, room: usize) -> Option<Event> {
    let ((end, usage), overflow) = parse_object::<ResponsesEvent>(data, text, room)?;
    Some(Event {
        end,
        usage,
        overflow,
    })
}

/// The `response` member of a Responses event's data, as its bytes.
fn final_object(data: &[u8]) -> Option<Bytes> {
    #[derive(serde::Deserialize)]
    struct Final<'a> {
        #[serde(borrow)]
        response: Option<&'a serde_json::value::RawValue>,
    }
    let event: Final<'_> = serde_json::from_slice(data).ok()?;
    Some(Bytes::copy_from_slice(event.response?.get().as_bytes()))
}

/// The fields one kind of event is read for, by [`parse_object`].
trait EventFields {
    /// The fields read; the others are skipped.
    const NAMES: &'static [&'static str];
    const EXPECTING: &'static str;
    type Value: Default;

    /// Reads the value of the field `NAMES[index]` into `value`, appending its text to `sink`.
    fn field<'de, A: MapAccess<'de>>(
        index: usize,
        map: &mut A,
        sink: &mut TextSink<'_>,
        value: &mut Self::Value,
    ) -> Result<(), A::Error>;
}

/// One event's data read as an object of `F`'s fields: their value and the text bytes that
/// did not fit in the `room` left in `text`.
fn parse_object<F: EventFields>(
    data: &[u8],
    text: &mut String,
    room: usize,
) -> Option<(F::Value, u64)> {
    if !super::extract::starts_object(data) {
        return None;
    }
    let mut sink = TextSink {
        text,
        room,
        overflow: 0,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let value = ObjectSeed::<F> {
        sink: &mut sink,
        fields: PhantomData,
    }
    .deserialize(&mut deserializer)
    .ok()?;
    deserializer.end().ok()?;
    Some((value, sink.overflow))
}

struct ObjectSeed<'a, 's, F> {
    sink: &'a mut TextSink<'s>,
    fields: PhantomData<F>,
}

impl<'de, F: EventFields> DeserializeSeed<'de> for ObjectSeed<'_, '_, F> {
    type Value = F::Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: EventFields> Visitor<'de> for ObjectSeed<'_, '_, F> {
    type Value = F::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(F::EXPECTING)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value = F::Value::default();
        visit_fields!(F::NAMES, map, |index| {
            F::field(index, &mut map, &mut *self.sink, &mut value)?;
        });
        Ok(value)
    }
}

/// A chat chunk (or a whole chat answer): its `choices` (counted, their text appended) and
/// its `usage`.
struct ChatChunk;

impl EventFields for ChatChunk {
    const NAMES: &'static [&'static str] = &["choices", "usage"];
    const EXPECTING: &'static str = "a chunk object";
    type Value = (Option<usize>, Option<Usage>);

    fn field<'de, A: MapAccess<'de>>(
        index: usize,
        map: &mut A,
        sink: &mut TextSink<'_>,
        (choices, usage): &mut Self::Value,
    ) -> Result<(), A::Error> {
        if index == 0 {
            *choices = map.next_value_seed(Choices { sink })?;
        } else {
            *usage = map.next_value::<Option<WireUsage>>()?.map(Usage::from);
        }
        Ok(())
    }
}

/// A whole answer, for its text only: chat's `choices`, or a Responses answer's `output`.
struct WholeAnswer;

/// The fields of a Responses output item (and of its content parts and summaries) whose
/// strings are generated text.
const OUTPUT_FIELDS: &[&str] = &["content", "text", "arguments", "summary"];

impl EventFields for WholeAnswer {
    const NAMES: &'static [&'static str] = &["choices", "output"];
    const EXPECTING: &'static str = "an answer object";
    type Value = ();

    fn field<'de, A: MapAccess<'de>>(
        index: usize,
        map: &mut A,
        sink: &mut TextSink<'_>,
        (): &mut (),
    ) -> Result<(), A::Error> {
        if index == 0 {
            map.next_value_seed(Choices { sink })?;
        } else {
            map.next_value_seed(Texts {
                names: OUTPUT_FIELDS,
                sink,
            })?;
        }
        Ok(())
    }
}

/// A Responses event: its `type`, its `delta` text, its `response`'s usage.
struct ResponsesEvent;

impl EventFields for ResponsesEvent {
    const NAMES: &'static [&'static str] = &["type", "delta", "response"];
    const EXPECTING: &'static str = "a Responses event";
    type Value = (Option<EventEnd>, Option<Usage>);

    fn field<'de, A: MapAccess<'de>>(
        index: usize,
        map: &mut A,
        sink: &mut TextSink<'_>,
        (end, usage): &mut Self::Value,
    ) -> Result<(), A::Error> {
        #[derive(serde::Deserialize)]
        struct ResponseUsage {
            #[serde(default)]
            usage: Option<WireUsage>,
        }
        match index {
            0 => {
                *end = map.next_value_seed(Key(END_EVENTS))?.map(|found| {
                    if found < 2 {
                        EventEnd::Answered
                    } else {
                        EventEnd::Failed
                    }
                });
            }
            1 => map.next_value_seed(Texts { names: &[], sink })?,
            _ => {
                *usage = map
                    .next_value::<Option<ResponseUsage>>()?
                    .and_then(|response| response.usage)
                    .map(Usage::from);
            }
        }
        Ok(())
    }
}

/// `choices`: counts them and appends their text. `null` reads as `None`.
struct Choices<'a, 's> {
    sink: &'a mut TextSink<'s>,
}

impl<'de> DeserializeSeed<'de> for Choices<'_, '_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Choices<'_, '_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of choices")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut count = 0;
        while seq
            .next_element_seed(Texts {
                names: CHOICE_FIELDS,
                sink: &mut *self.sink,
            })?
            .is_some()
        {
            count += 1;
        }
        Ok(Some(count))
    }
}

/// The fields of a choice: `delta` (chat chunks), `message` (whole chat answers) and `text`
/// (legacy completions); of a delta or message,
/// the generated strings; of a tool call, its function; of a function, its arguments. Fields
/// named here whose value is a string are appended; objects and arrays are searched with the
/// same names. Since names are matched anywhere below a choice, `text` inside content parts
/// is found too.
const CHOICE_FIELDS: &[&str] = &[
    "delta",
    "message",
    "text",
    "content",
    "reasoning_content",
    "refusal",
    "tool_calls",
    "function",
    "arguments",
];

/// Any value below a choice: strings of the named fields are appended, containers searched.
struct Texts<'a, 's> {
    names: &'static [&'static str],
    sink: &'a mut TextSink<'s>,
}

impl<'de> DeserializeSeed<'de> for Texts<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Texts<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a choice")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.sink.push(v);
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Texts {
                names: self.names,
                sink: &mut *self.sink,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        visit_fields!(self.names, map, |_index| {
            map.next_value_seed(Texts {
                names: self.names,
                sink: &mut *self.sink,
            })?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK_A: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}],\"usage\":null}\n\n";
    const CHUNK_B: &str =
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo é🎉\"}}]}\n\n";
    const USAGE: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn stream() -> String {
        [CHUNK_A, CHUNK_B, USAGE, DONE].concat()
    }

    fn reported() -> Usage {
        Usage {
            prompt_tokens: 7,
            completion_tokens: 3,
            total_tokens: 10,
            ..Usage::default()
        }
    }

    /// Feeds `parts` through a scanner and returns what was forwarded, concatenated.
    fn run(scanner: &mut StreamUsage, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            out.extend_from_slice(&scanner.forward(Bytes::copy_from_slice(part)));
        }
        out.extend_from_slice(&scanner.finish());
        out
    }

    #[test]
    fn every_split_point_gives_the_same_usage_text_and_output() {
        let whole = stream();
        let filtered = [CHUNK_A, CHUNK_B, DONE].concat();
        let bytes = whole.as_bytes();
        for cut in 0..=bytes.len() {
            for (mut scanner, expected) in [
                (StreamUsage::new(), whole.as_str()),
                (StreamUsage::filtering(), filtered.as_str()),
            ] {
                let out = run(&mut scanner, &[&bytes[..cut], &bytes[cut..]]);
                assert_eq!(String::from_utf8(out).unwrap(), expected, "cut at {cut}");
                assert_eq!(scanner.usage(), Some(reported()), "cut at {cut}");
                assert_eq!(scanner.generated_text(), "Hello é🎉", "cut at {cut}");
                assert!(scanner.saw_done());
            }
        }
    }

    #[test]
    fn byte_by_byte_with_every_line_ending() {
        for newline in ["\n", "\r\n", "\r"] {
            let whole = stream().replace('\n', newline);
            let expected = [CHUNK_A, CHUNK_B, DONE].concat().replace('\n', newline);
            let parts: Vec<&[u8]> = whole.as_bytes().chunks(1).collect();
            let mut scanner = StreamUsage::filtering();
            let out = run(&mut scanner, &parts);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{newline:?}");
            assert_eq!(scanner.usage(), Some(reported()));
            assert_eq!(scanner.generated_text(), "Hello é🎉");
        }
    }

    #[test]
    fn every_pair_of_split_points_with_crlf() {
        let whole = [CHUNK_B, USAGE, DONE].concat().replace('\n', "\r\n");
        let filtered = [CHUNK_B, DONE].concat().replace('\n', "\r\n");
        let bytes = whole.as_bytes();
        for first in 0..=bytes.len() {
            for second in first..=bytes.len() {
                let mut scanner = StreamUsage::filtering();
                let parts = [&bytes[..first], &bytes[first..second], &bytes[second..]];
                let out = run(&mut scanner, &parts);
                assert_eq!(out, filtered.as_bytes(), "cuts at {first}, {second}");
                assert_eq!(scanner.usage(), Some(reported()));
                assert_eq!(scanner.generated_text(), "lo é🎉");
            }
        }
    }

    const RESPONSE_CREATED: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n";
    const RESPONSE_DELTAS: &str = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hel\"}\n\n\
        event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":5,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"lo é\"}\n\n";
    const RESPONSE_COMPLETED: &str = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\
        \"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello é\"}]}],\
        \"usage\":{\"input_tokens\":7,\"input_tokens_details\":{\"cached_tokens\":2},\"output_tokens\":5,\"output_tokens_details\":{\"reasoning_tokens\":3},\"total_tokens\":12}}}\n\n";

    #[test]
    fn responses_events_give_their_usage_text_and_end() {
        let whole = [RESPONSE_CREATED, RESPONSE_DELTAS, RESPONSE_COMPLETED].concat();
        let bytes = whole.as_bytes();
        let reported = Usage {
            prompt_tokens: 7,
            completion_tokens: 5,
            total_tokens: 12,
            cached_tokens: 2,
            reasoning_tokens: 3,
            ..Usage::default()
        };
        for cut in 0..=bytes.len() {
            let mut scanner = StreamUsage::of(EventForm::Responses);
            let out = run(&mut scanner, &[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(out, bytes, "cut at {cut}");
            assert_eq!(scanner.usage(), Some(reported), "cut at {cut}");
            // The deltas only: the final response repeats the text, which is not counted twice.
            assert_eq!(scanner.generated_text(), "Hello é", "cut at {cut}");
            assert!(!scanner.unfinished() && !scanner.saw_failure());
        }

        // Without its final event the stream is unfinished, and its usage unknown.
        let mut scanner = StreamUsage::of(EventForm::Responses);
        scanner.observe([RESPONSE_CREATED, RESPONSE_DELTAS].concat().as_bytes());
        assert!(scanner.unfinished());
        assert_eq!(scanner.usage(), None);
        assert!(scanner.usage_or_estimate("gpt-4o", b"{}").estimated);

        // A failed response ends the stream as a failure; an `error` event too.
        for failure in [
            "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"x\"},\"usage\":null}}\n\n",
            "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"x\"}\n\n",
        ] {
            let mut scanner = StreamUsage::of(EventForm::Responses);
            scanner.observe([RESPONSE_CREATED, failure].concat().as_bytes());
            assert!(scanner.saw_failure() && !scanner.unfinished(), "{failure}");
        }

        // Chat chunks are never held to an end, and never read as Responses events.
        let mut scanner = StreamUsage::new();
        scanner.observe(whole.as_bytes());
        assert!(!scanner.unfinished() && !scanner.saw_failure());
        assert_eq!(scanner.usage(), None);
    }

    #[test]
    fn the_text_of_a_whole_answer_is_read_in_either_form() {
        let chat = r#"{"choices":[{"message":{"role":"assistant","content":"chat text","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]}"#;
        assert_eq!(response_text(chat.as_bytes()), "chat text{}");
        let responses = r#"{"id":"resp_1","object":"response","text":{"format":{"type":"text"}},"output":[
            {"type":"reasoning","summary":[{"type":"summary_text","text":"thought "}]},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"answer ","annotations":[]}]},
            {"type":"function_call","call_id":"c","name":"f","arguments":"{\"x\":1}"}],"usage":null}"#;
        assert_eq!(
            response_text(responses.as_bytes()),
            r#"thought answer {"x":1}"#
        );
        assert_eq!(response_text(b"not json"), "");
    }

    #[test]
    fn whole_frames_are_forwarded_without_copying() {
        let mut scanner = StreamUsage::filtering();
        for frame in [CHUNK_A, CHUNK_B] {
            let chunk = Bytes::from_static(frame.as_bytes());
            let out = scanner.forward(chunk.clone());
            assert_eq!(out.as_ptr(), chunk.as_ptr());
            assert_eq!(out.len(), chunk.len());
        }
        // Several frames in one chunk, the usage chunk among them: only that one goes.
        let chunk = Bytes::from([CHUNK_B, USAGE, DONE].concat());
        let out = scanner.forward(chunk);
        assert_eq!(out, [CHUNK_B, DONE].concat().as_bytes());
        // The usage chunk alone leaves nothing to send.
        let mut scanner = StreamUsage::filtering();
        assert!(
            scanner
                .forward(Bytes::from_static(USAGE.as_bytes()))
                .is_empty()
        );
        assert_eq!(scanner.usage(), Some(reported()));
    }

    #[test]
    fn without_filtering_every_byte_is_forwarded_as_is() {
        let mut scanner = StreamUsage::new();
        let chunk = Bytes::from(stream());
        let out = scanner.forward(chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert_eq!(out, chunk);
        assert_eq!(scanner.usage(), Some(reported()));
    }

    #[test]
    fn only_usage_only_chunks_are_removed() {
        let check = |data: &str, usage_only: bool| {
            assert_eq!(is_usage_only_chunk(data.as_bytes()), usage_only, "{data}");
            let event = format!("data: {data}\n\n");
            let mut scanner = StreamUsage::filtering();
            let out = run(&mut scanner, &[event.as_bytes()]);
            assert_eq!(out.is_empty(), usage_only, "{data}");
        };
        check(
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            true,
        );
        check(r#"{"usage":{"prompt_tokens":1},"id":"x"}"#, true);
        // Usage on a chunk that also carries a choice is read but not removed.
        check(
            r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1}}"#,
            false,
        );
        check(r#"{"choices":[],"usage":null}"#, false);
        check(r#"{"choices":[],"prompt_filter_results":[]}"#, false);
        check("[DONE]", false);
        check("not json", false);
        check(
            r#"{"choices":[],"usage":{"prompt_tokens":1}} trailing"#,
            false,
        );
    }

    #[test]
    fn text_of_chat_deltas_tools_and_legacy_completions_is_collected() {
        let check = |data: &str, text: &str| {
            let mut scanner = StreamUsage::new();
            scanner.observe(format!("data: {data}\n\n").as_bytes());
            assert_eq!(scanner.generated_text(), text, "{data}");
        };
        check(
            r#"{"choices":[{"delta":{"content":"a\nb\"c\u00e9"}},{"delta":{"content":"!"}}]}"#,
            "a\nb\"cé!",
        );
        check(
            r#"{"choices":[{"text":"legacy","index":0,"logprobs":null}]}"#,
            "legacy",
        );
        check(
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"t","function":{"name":"f","arguments":"{\"x\":1}"}}]}}]}"#,
            r#"{"x":1}"#,
        );
        check(
            r#"{"choices":[{"delta":{"reasoning_content":"hmm","content":null}}]}"#,
            "hmm",
        );
        check(
            r#"{"choices":[{"delta":{"role":"assistant"},"finish_reason":"stop"}]}"#,
            "",
        );
        // A frame that fails to parse leaves no partial text.
        check(r#"{"choices":[{"delta":{"content":"lost"}}],"usage":"#, "");
    }

    #[test]
    fn multi_line_data_comments_and_other_fields() {
        let input = ": keep-alive\n\nevent: message\nid: 1\ndata: {\"choices\":\ndata: [{\"delta\":{\"content\":\"x\"}}]}\nretry: 5\n\n";
        let mut scanner = StreamUsage::filtering();
        let out = run(&mut scanner, &[input.as_bytes()]);
        assert_eq!(out, input.as_bytes());
        assert_eq!(scanner.generated_text(), "x");
    }

    #[test]
    fn a_stream_cut_short_keeps_what_was_seen_and_flushes_what_was_held() {
        let whole = stream();
        let cut = CHUNK_A.len() + 20;
        let mut scanner = StreamUsage::filtering();
        let first = scanner.forward(Bytes::copy_from_slice(&whole.as_bytes()[..cut]));
        assert_eq!(first, CHUNK_A.as_bytes());
        assert_eq!(scanner.finish(), &whole.as_bytes()[CHUNK_A.len()..cut]);
        assert_eq!(scanner.usage(), None);
        assert_eq!(scanner.generated_text(), "Hel");
        // A last event without its blank line is still read.
        let mut scanner = StreamUsage::filtering();
        let out = run(
            &mut scanner,
            &[CHUNK_A.as_bytes(), USAGE.trim_end().as_bytes()],
        );
        assert_eq!(out, CHUNK_A.as_bytes());
        assert_eq!(scanner.usage(), Some(reported()));
    }

    #[test]
    fn large_events_are_not_held_back() {
        let content = "y".repeat(MAX_HELD * 2);
        let event =
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{content}\"}}}}]}}\n\n");
        let mut scanner = StreamUsage::filtering();
        let (a, b) = event.as_bytes().split_at(MAX_HELD + 100);
        let first = scanner.forward(Bytes::copy_from_slice(a));
        assert_eq!(first, a, "held back past the limit");
        let second = scanner.forward(Bytes::copy_from_slice(b));
        assert_eq!(second, b);
        assert_eq!(scanner.generated_text().len(), content.len());
    }

    #[test]
    fn text_beyond_the_cap_is_counted_not_kept() {
        let piece = "é".repeat(1000);
        let frame =
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{piece}\"}}}}]}}\n\n");
        let mut scanner = StreamUsage::new();
        let rounds = MAX_TEXT / piece.len() + 10;
        for _ in 0..rounds {
            scanner.observe(frame.as_bytes());
        }
        assert!(scanner.generated_text().len() <= MAX_TEXT);
        let kept = scanner.generated_text().len() as u64;
        assert_eq!(
            kept + scanner.scanner.text_overflow,
            (rounds * piece.len()) as u64
        );
        let usage = scanner.usage_or_estimate("gpt-4o", b"{}");
        assert!(usage.estimated);
        assert!(usage.completion_tokens > scanner.scanner.text_overflow / 4);
    }

    #[test]
    fn no_reported_usage_is_estimated() {
        let mut scanner = StreamUsage::filtering();
        let out = run(
            &mut scanner,
            &[CHUNK_A.as_bytes(), CHUNK_B.as_bytes(), DONE.as_bytes()],
        );
        assert_eq!(out, [CHUNK_A, CHUNK_B, DONE].concat().as_bytes());
        assert_eq!(scanner.usage(), None);
        let request = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}]}"#;
        let usage = scanner.usage_or_estimate("gpt-4o", request);
        assert!(usage.estimated);
        assert!(usage.prompt_tokens > 0);
        assert!(usage.completion_tokens > 0);
        assert_eq!(
            usage.total_tokens,
            usage.prompt_tokens + usage.completion_tokens
        );
        // Reported usage wins.
        let mut scanner = StreamUsage::new();
        scanner.observe(stream().as_bytes());
        assert_eq!(scanner.usage_or_estimate("gpt-4o", request), reported());
    }
}

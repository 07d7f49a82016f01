//! The OpenAI wire format as the mock speaks it: the request fields it reads and the bodies and
//! stream frames it writes.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::knobs::{Knobs, Plan};

/// The model the mock reports when a request names none, and the one `/v1/models` lists.
pub(super) const MODEL: &str = "demo-echo";

/// Width of every embedding vector.
const EMBEDDING_DIMENSIONS: usize = 8;

/// The last frame of every complete stream.
pub(super) const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";

/// What a request asks for, parsed from its body.
pub(super) enum Call {
    Chat(ChatRequest),
    Completion(CompletionRequest),
    Embeddings(EmbeddingsRequest),
    Models,
}

/// The endpoints the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Models,
}

impl Endpoint {
    /// The endpoint at `path`, and whether it answers `method`.
    pub fn at(path: &str) -> Option<(Self, &'static str)> {
        match path {
            "/v1/chat/completions" => Some((Self::ChatCompletions, "POST")),
            "/v1/completions" => Some((Self::Completions, "POST")),
            "/v1/embeddings" => Some((Self::Embeddings, "POST")),
            "/v1/models" => Some((Self::Models, "GET")),
            _ => None,
        }
    }
}

impl Call {
    pub fn parse(endpoint: Endpoint, body: &[u8]) -> serde_json::Result<Self> {
        Ok(match endpoint {
            Endpoint::ChatCompletions => Self::Chat(serde_json::from_slice(body)?),
            Endpoint::Completions => Self::Completion(serde_json::from_slice(body)?),
            Endpoint::Embeddings => Self::Embeddings(serde_json::from_slice(body)?),
            Endpoint::Models => Self::Models,
        })
    }

    /// Removes the request's `"mock"` knobs, which only steer the mock; for a chat request
    /// without them, the knobs written in its prompt ([`Knobs::from_prompt`]).
    pub fn take_knobs(&mut self) -> serde_json::Result<Option<Knobs>> {
        match self {
            Self::Chat(request) => match request.mock.take() {
                Some(knobs) => Ok(Some(knobs)),
                None => Knobs::from_prompt(
                    request
                        .messages
                        .iter()
                        .filter(|m| m.role.as_deref() == Some("user"))
                        .flat_map(Message::texts)
                        .collect::<Vec<_>>()
                        .into_iter(),
                ),
            },
            Self::Completion(request) => Ok(request.mock.take()),
            Self::Embeddings(request) => Ok(request.mock.take()),
            Self::Models => Ok(None),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ChatRequest {
    model: Option<String>,
    messages: Vec<Message>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    tools: Option<Vec<Tool>>,
    mock: Option<Knobs>,
}

#[derive(Deserialize)]
struct Tool {
    function: Option<ToolFunction>,
}

#[derive(Deserialize)]
struct ToolFunction {
    name: String,
}

#[derive(Deserialize)]
struct Message {
    role: Option<String>,
    content: Option<Content>,
}

/// Message content: a plain string or an array of typed parts.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct CompletionRequest {
    model: Option<String>,
    prompt: Option<Inputs>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    mock: Option<Knobs>,
}

#[derive(Deserialize)]
pub(super) struct EmbeddingsRequest {
    model: Option<String>,
    input: Inputs,
    encoding_format: Option<String>,
    mock: Option<Knobs>,
}

/// A legacy `prompt` or an embeddings `input`: text or token ids, one or many.
#[derive(Deserialize)]
#[serde(untagged)]
enum Inputs {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
    TokenLists(Vec<Vec<u64>>),
}

/// One text or token list out of `Inputs`.
#[derive(Clone, Copy)]
enum Input<'a> {
    Text(&'a str),
    Tokens(&'a [u64]),
}

impl Content {
    fn texts(&self) -> impl Iterator<Item = &str> {
        let (text, parts) = match self {
            Self::Text(text) => (Some(text.as_str()), &[][..]),
            Self::Parts(parts) => (None, parts.as_slice()),
        };
        let part_texts = parts
            .iter()
            .filter(|part| part.kind.as_deref().is_none_or(|kind| kind == "text"))
            .filter_map(|part| part.text.as_deref());
        text.into_iter().chain(part_texts)
    }
}

impl Message {
    fn texts(&self) -> impl Iterator<Item = &str> {
        self.content.iter().flat_map(Content::texts)
    }
}

impl Inputs {
    fn items(&self) -> Vec<Input<'_>> {
        match self {
            Self::Text(text) => vec![Input::Text(text)],
            Self::Texts(texts) => texts.iter().map(|text| Input::Text(text)).collect(),
            Self::Tokens(tokens) => vec![Input::Tokens(tokens)],
            Self::TokenLists(lists) => lists.iter().map(|tokens| Input::Tokens(tokens)).collect(),
        }
    }
}

impl Input<'_> {
    /// Words of a text, or tokens of a token list.
    fn tokens(self) -> u64 {
        match self {
            Self::Text(text) => words(text),
            Self::Tokens(tokens) => tokens.len() as u64,
        }
    }

    /// The text to echo: the text itself, or the token ids separated by spaces.
    fn text(self) -> String {
        match self {
            Self::Text(text) => text.to_owned(),
            Self::Tokens(tokens) => {
                let ids: Vec<String> = tokens.iter().map(u64::to_string).collect();
                ids.join(" ")
            }
        }
    }
}

pub(super) fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

pub(super) fn new_id(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// Which of the two text-generation dialects an answer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Chat,
    Text,
}

/// A generated answer to a chat or legacy completion request, before it is written out.
pub(super) struct Generation {
    dialect: Dialect,
    id: String,
    created: u64,
    model: String,
    pub reply: String,
    pub stream: bool,
    include_usage: bool,
    usage: Option<Usage>,
    /// Tool calls answered instead of text (the `tool_calls` knob).
    tool_calls: Vec<ToolCall>,
    /// The answer was stopped by a content filter (`finish_reason: content_filter`, as Azure
    /// OpenAI ends a filtered completion; the `safety_block` knob).
    filtered: bool,
}

/// A tool call the mock makes: the `index`-th declared tool, round robin.
#[derive(Debug, Clone)]
pub(super) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl ToolCall {
    /// `count` calls of the `tools` in turn, with `{"index": i, "text": text}` as arguments;
    /// none when no tool is declared.
    pub fn plan(prefix: &str, tools: &[&str], count: usize, text: &str) -> Vec<Self> {
        if tools.is_empty() {
            return Vec::new();
        }
        (0..count)
            .map(|index| Self {
                id: format!("{prefix}{index}"),
                name: tools[index % tools.len()].to_owned(),
                arguments: tool_arguments(index, text),
            })
            .collect()
    }
}

impl ToolCall {
    /// The reply and the tool calls of an answer. With the `call` knob: its one call while the
    /// conversation does not end with a tool's result (`tool_result`), then text echoing that
    /// result. Otherwise `echo()` (unless `content` replaces it) and `tool_calls` calls of the
    /// declared `tools`.
    pub fn answer(
        prefix: &str,
        tools: &[&str],
        plan: &Plan,
        tool_result: Option<String>,
        echo: impl FnOnce() -> String,
    ) -> (String, Vec<Self>) {
        if let Some(call) = &plan.call {
            if let Some(result) = tool_result {
                let reply = plan
                    .content
                    .clone()
                    .unwrap_or_else(|| format!("echo: {result}"));
                return (reply, Vec::new());
            }
            let reply = plan.content.clone().unwrap_or_else(echo);
            let call = Self {
                id: format!("{prefix}0"),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            };
            return (reply, vec![call]);
        }
        let reply = plan.content.clone().unwrap_or_else(echo);
        let calls = Self::plan(prefix, tools, plan.tool_calls, &reply);
        (reply, calls)
    }
}

/// The arguments of the mock's `index`-th tool call, as a JSON object text.
pub(super) fn tool_arguments(index: usize, text: &str) -> String {
    #[derive(Serialize)]
    struct Arguments<'a> {
        index: usize,
        text: &'a str,
    }
    serde_json::to_string(&Arguments { index, text }).unwrap_or_else(|_| "{}".to_owned())
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
}

impl Usage {
    /// The usage of an answer of `plan.chunks` pieces (and `plan.reasoning_tokens` more) to a
    /// prompt of `prompt_tokens`, `plan.cached_tokens` of them cached.
    fn new(prompt_tokens: u64, plan: &Plan) -> Self {
        let completion_tokens = plan.chunks as u64 + plan.reasoning_tokens;
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: (plan.cached_tokens > 0).then_some(PromptTokensDetails {
                cached_tokens: plan.cached_tokens.min(prompt_tokens),
            }),
            completion_tokens_details: (plan.reasoning_tokens > 0).then_some(
                CompletionTokensDetails {
                    reasoning_tokens: plan.reasoning_tokens,
                },
            ),
        }
    }
}

fn include_usage(options: Option<&StreamOptions>) -> bool {
    options
        .and_then(|options| options.include_usage)
        .unwrap_or(false)
}

impl Generation {
    pub fn chat(request: ChatRequest, plan: &Plan) -> Self {
        let prompt_tokens = request
            .messages
            .iter()
            .flat_map(Message::texts)
            .map(words)
            .sum::<u64>();
        let tools: Vec<&str> = request
            .tools
            .iter()
            .flatten()
            .filter_map(|tool| tool.function.as_ref().map(|f| f.name.as_str()))
            .collect();
        let tool_result = request
            .messages
            .last()
            .filter(|m| m.role.as_deref() == Some("tool"))
            .map(|m| m.texts().collect::<Vec<_>>().join(" "));
        let (reply, tool_calls) = ToolCall::answer("call_mock_", &tools, plan, tool_result, || {
            let last_user = request
                .messages
                .iter()
                .rev()
                .find(|m| m.role.as_deref() == Some("user"));
            let texts: Vec<&str> = last_user.into_iter().flat_map(Message::texts).collect();
            format!("echo: {}", texts.join(" "))
        });
        Self {
            dialect: Dialect::Chat,
            id: new_id("chatcmpl-"),
            created: unix_now(),
            model: request.model.unwrap_or_else(|| MODEL.to_owned()),
            reply,
            stream: request.stream.unwrap_or(false),
            include_usage: include_usage(request.stream_options.as_ref()),
            usage: plan.usage.then(|| Usage::new(prompt_tokens.max(1), plan)),
            tool_calls,
            filtered: plan.safety_block,
        }
    }

    pub fn text(request: CompletionRequest, plan: &Plan) -> Self {
        let items = request
            .prompt
            .as_ref()
            .map(Inputs::items)
            .unwrap_or_default();
        let prompt_tokens = items.iter().map(|item| item.tokens()).sum::<u64>();
        let reply = plan.content.clone().unwrap_or_else(|| {
            let last = items.last().map(|item| item.text()).unwrap_or_default();
            format!("echo: {last}")
        });
        Self {
            dialect: Dialect::Text,
            id: new_id("cmpl-"),
            created: unix_now(),
            model: request.model.unwrap_or_else(|| MODEL.to_owned()),
            reply,
            stream: request.stream.unwrap_or(false),
            include_usage: include_usage(request.stream_options.as_ref()),
            usage: plan.usage.then(|| Usage::new(prompt_tokens.max(1), plan)),
            tool_calls: Vec::new(),
            filtered: plan.safety_block,
        }
    }

    /// The whole, non-streamed answer.
    pub fn body(&self) -> serde_json::Result<Vec<u8>> {
        match self.dialect {
            Dialect::Chat => serde_json::to_vec(&ChatCompletion {
                id: &self.id,
                object: "chat.completion",
                created: self.created,
                model: &self.model,
                choices: [ChatChoice {
                    index: 0,
                    message: AssistantMessage {
                        role: "assistant",
                        content: self.tool_calls.is_empty().then_some(self.reply.as_str()),
                        refusal: None,
                        tool_calls: (!self.tool_calls.is_empty()).then(|| {
                            self.tool_calls
                                .iter()
                                .map(|call| ToolCallOut {
                                    id: &call.id,
                                    kind: "function",
                                    function: FunctionOut {
                                        name: &call.name,
                                        arguments: &call.arguments,
                                    },
                                })
                                .collect()
                        }),
                    },
                    logprobs: None,
                    finish_reason: self.finish_reason(),
                }],
                usage: self.usage,
            }),
            Dialect::Text => serde_json::to_vec(&TextCompletion {
                id: &self.id,
                object: "text_completion",
                created: self.created,
                model: &self.model,
                choices: [TextChoice {
                    text: &self.reply,
                    index: 0,
                    logprobs: None,
                    finish_reason: Some("stop"),
                }],
                usage: self.usage,
            }),
        }
    }

    fn finish_reason(&self) -> &'static str {
        if self.filtered {
            "content_filter"
        } else if self.tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
    }

    /// The frames between the opening and the finish: the reply split into `chunks` pieces, or
    /// for tool calls one frame per call with its id and name, then the calls' arguments split
    /// into `chunks` fragments each, interleaved by index (fragment 0 of every call, then
    /// fragment 1, …), as a parallel-calling upstream may send them.
    pub fn content_frames(&self, chunks: usize) -> serde_json::Result<Vec<Bytes>> {
        if self.tool_calls.is_empty() {
            let reply = padded(&self.reply, chunks);
            return split(&reply, chunks)
                .into_iter()
                .map(|piece| self.piece_frame(piece))
                .collect();
        }
        let mut frames = Vec::with_capacity(self.tool_calls.len() * (chunks + 1));
        for (index, call) in self.tool_calls.iter().enumerate() {
            let delta = ToolCallDelta {
                index,
                id: Some(&call.id),
                kind: Some("function"),
                function: FunctionDelta {
                    name: Some(&call.name),
                    arguments: "",
                },
            };
            frames.push(self.tool_frame(delta)?);
        }
        let fragments: Vec<Vec<&str>> = self
            .tool_calls
            .iter()
            .map(|call| split(&call.arguments, chunks))
            .collect();
        for round in 0..chunks {
            for (index, pieces) in fragments.iter().enumerate() {
                let Some(piece) = pieces.get(round).filter(|piece| !piece.is_empty()) else {
                    continue;
                };
                let delta = ToolCallDelta {
                    index,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: piece,
                    },
                };
                frames.push(self.tool_frame(delta)?);
            }
        }
        Ok(frames)
    }

    fn tool_frame(&self, call: ToolCallDelta<'_>) -> serde_json::Result<Bytes> {
        let delta = Delta {
            role: None,
            content: None,
            tool_calls: Some([call]),
        };
        self.chunk(&[ChatChunkChoice::new(delta, None)], self.chunk_usage())
    }

    /// The `usage` member of ordinary stream chunks: `null` when a usage chunk will follow,
    /// absent otherwise, as OpenAI does.
    fn chunk_usage(&self) -> Option<Option<Usage>> {
        self.usage_frame_due().then_some(None)
    }

    fn usage_frame_due(&self) -> bool {
        self.include_usage && self.usage.is_some()
    }

    fn chunk<C: Serialize>(
        &self,
        choices: &[C],
        usage: Option<Option<Usage>>,
    ) -> serde_json::Result<Bytes> {
        let object = match self.dialect {
            Dialect::Chat => "chat.completion.chunk",
            Dialect::Text => "text_completion",
        };
        let chunk = Chunk {
            id: &self.id,
            object,
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        let mut frame = Vec::with_capacity(160 + self.model.len());
        frame.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut frame, &chunk)?;
        frame.extend_from_slice(b"\n\n");
        Ok(Bytes::from(frame))
    }

    /// The frame that opens a chat stream with the assistant role; text streams have none.
    pub fn opening_frame(&self) -> serde_json::Result<Option<Bytes>> {
        match self.dialect {
            Dialect::Chat => {
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    tool_calls: None,
                };
                self.chunk(&[ChatChunkChoice::new(delta, None)], self.chunk_usage())
                    .map(Some)
            }
            Dialect::Text => Ok(None),
        }
    }

    pub fn piece_frame(&self, piece: &str) -> serde_json::Result<Bytes> {
        match self.dialect {
            Dialect::Chat => {
                let delta = Delta {
                    role: None,
                    content: Some(piece),
                    tool_calls: None,
                };
                self.chunk(&[ChatChunkChoice::new(delta, None)], self.chunk_usage())
            }
            Dialect::Text => {
                let choice = TextChoice {
                    text: piece,
                    index: 0,
                    logprobs: None,
                    finish_reason: None,
                };
                self.chunk(&[choice], self.chunk_usage())
            }
        }
    }

    pub fn finish_frame(&self) -> serde_json::Result<Bytes> {
        match self.dialect {
            Dialect::Chat => {
                let delta = Delta {
                    role: None,
                    content: None,
                    tool_calls: None,
                };
                self.chunk(
                    &[ChatChunkChoice::new(delta, Some(self.finish_reason()))],
                    self.chunk_usage(),
                )
            }
            Dialect::Text => {
                let choice = TextChoice {
                    text: "",
                    index: 0,
                    logprobs: None,
                    finish_reason: Some("stop"),
                };
                self.chunk(&[choice], self.chunk_usage())
            }
        }
    }

    /// The trailing chunk with `"choices": []` and the usage, when the client asked for it.
    pub fn usage_frame(&self) -> serde_json::Result<Option<Bytes>> {
        match self.usage {
            Some(usage) if self.include_usage => self
                .chunk::<TextChoice<'_>>(&[], Some(Some(usage)))
                .map(Some),
            _ => Ok(None),
        }
    }
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChatChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCallOut<'a>>>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [TextChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [C],
    /// Absent, `null`, or the usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChatChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

impl<'a> ChatChunkChoice<'a> {
    fn new(delta: Delta<'a>, finish_reason: Option<&'static str>) -> Self {
        Self {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }
    }
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// `reply` lengthened with spaces to at least `pieces` characters, so that it splits into that
/// many non-empty pieces.
pub(super) fn padded(reply: &str, pieces: usize) -> Cow<'_, str> {
    let chars = reply.chars().count();
    if chars >= pieces {
        return Cow::Borrowed(reply);
    }
    let mut padded = String::with_capacity(reply.len() + pieces - chars);
    padded.push_str(reply);
    padded.extend(std::iter::repeat_n(' ', pieces - chars));
    Cow::Owned(padded)
}

/// Splits `text` into `pieces` parts of near-equal character counts, at character boundaries.
///
/// Every part is non-empty when `text` has at least `pieces` characters (see [`padded`]).
pub(super) fn split(text: &str, pieces: usize) -> Vec<&str> {
    let pieces = pieces.max(1);
    let chars = text.chars().count();
    let mut starts = Vec::with_capacity(pieces + 1);
    let mut next = 0;
    for (position, (byte, _)) in text.char_indices().enumerate() {
        // Piece `next` starts at character `next * chars / pieces`; these starts strictly increase
        // because there are at least as many characters as pieces.
        while next < pieces && next * chars / pieces == position {
            starts.push(byte);
            next += 1;
        }
    }
    // Pieces that would start past the end (only when `text` is too short) are empty.
    starts.resize(pieces, text.len());
    starts.push(text.len());
    starts
        .windows(2)
        .map(|bounds| &text[bounds[0]..bounds[1]])
        .collect()
}

impl EmbeddingsRequest {
    pub fn body(&self, plan: &Plan) -> serde_json::Result<Vec<u8>> {
        let items = self.input.items();
        let base64 = self.encoding_format.as_deref() == Some("base64");
        let data = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let vector = embedding(*item);
                let embedding = if base64 {
                    let bytes: Vec<u8> = vector
                        .iter()
                        .flat_map(|value| value.to_le_bytes())
                        .collect();
                    EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    EmbeddingVector::Floats(vector)
                };
                EmbeddingItem {
                    object: "embedding",
                    index,
                    embedding,
                }
            })
            .collect();
        let prompt_tokens = items.iter().map(|item| item.tokens()).sum::<u64>().max(1);
        serde_json::to_vec(&EmbeddingList {
            object: "list",
            data,
            model: self.model.as_deref().unwrap_or(MODEL),
            usage: plan.usage.then_some(EmbeddingUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            }),
        })
    }
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<EmbeddingUsage>,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: EmbeddingVector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbeddingVector {
    Floats([f32; EMBEDDING_DIMENSIONS]),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// A unit vector that depends only on the input, so tests can compare embeddings.
fn embedding(input: Input<'_>) -> [f32; EMBEDDING_DIMENSIONS] {
    // FNV-1a over the input seeds a splitmix64 sequence.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match input {
        Input::Text(text) => feed(text.as_bytes()),
        Input::Tokens(tokens) => tokens.iter().for_each(|token| feed(&token.to_le_bytes())),
    }
    let mut state = hash;
    let mut vector = [0.0_f32; EMBEDDING_DIMENSIONS];
    for value in &mut vector {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // The top 24 bits map exactly onto an f32 in [-1, 1).
        *value = (z >> 40) as f32 / (1_u32 << 23) as f32 - 1.0;
    }
    let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|value| *value /= norm);
    }
    vector
}

/// The `/v1/models` list: the one echo model.
pub(super) fn models_body() -> serde_json::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct ModelList {
        object: &'static str,
        data: [Model; 1],
    }
    #[derive(Serialize)]
    struct Model {
        id: &'static str,
        object: &'static str,
        created: u64,
        owned_by: &'static str,
    }
    serde_json::to_vec(&ModelList {
        object: "list",
        data: [Model {
            id: MODEL,
            object: "model",
            created: unix_now(),
            owned_by: "llmgate-mock",
        }],
    })
}

/// An OpenAI error body for `status`.
pub(super) fn error_body(status: u16, message: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: ErrorDetail<'a>,
    }
    #[derive(Serialize)]
    struct ErrorDetail<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        param: Option<()>,
        code: Option<&'static str>,
    }
    let (kind, code) = match status {
        401 => ("authentication_error", Some("invalid_api_key")),
        403 => ("permission_error", None),
        404 => ("invalid_request_error", Some("not_found")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        400..=499 => ("invalid_request_error", None),
        500..=599 => ("server_error", None),
        _ => ("api_error", None),
    };
    let body = ErrorBody {
        error: ErrorDetail {
            message,
            kind,
            param: None,
            code,
        },
    };
    // Serializing these plain fields cannot fail; the fallback only keeps the code total.
    serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":{"message":"error"}}"#.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_makes_the_asked_number_of_non_empty_pieces_at_char_boundaries() {
        let cases = [
            ("echo: hello", 1),
            ("echo: hello", 3),
            ("echo: hello", 11),
            ("héllo wörld 🎉🎉", 5),
            ("🎉🎉🎉", 3),
        ];
        for (text, pieces) in cases {
            let parts = split(text, pieces);
            assert_eq!(parts.len(), pieces, "{text} / {pieces}");
            assert!(parts.iter().all(|part| !part.is_empty()), "{parts:?}");
            assert_eq!(parts.concat(), text);
        }
    }

    #[test]
    fn short_replies_are_padded_before_splitting() {
        let text = padded("é", 4);
        assert_eq!(text, "é   ");
        assert_eq!(split(&text, 4), ["é", " ", " ", " "]);
        assert!(matches!(padded("long enough", 3), Cow::Borrowed(_)));
    }

    #[test]
    fn chat_prompt_tokens_count_words_of_every_message_and_part() {
        let request: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[
                {"role":"system","content":"be  brief"},
                {"role":"assistant","content":null,"tool_calls":[]},
                {"role":"user","content":[{"type":"text","text":"one two"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"three"}]}
            ]}"#,
        )
        .unwrap();
        let plan = Plan::new(&super::super::MockConfig::default(), None, None);
        let generation = Generation::chat(request, &plan);
        assert_eq!(generation.reply, "echo: one two three");
        let usage = generation.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (5, 8, 13)
        );
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding(Input::Text("a b"));
        assert_eq!(a, embedding(Input::Text("a b")));
        assert_ne!(a, embedding(Input::Text("a c")));
        assert_ne!(a, embedding(Input::Tokens(&[1, 2])));
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn error_bodies_have_the_openai_shape() {
        let body: serde_json::Value =
            serde_json::from_slice(&error_body(429, "slow down")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}})
        );
    }
}

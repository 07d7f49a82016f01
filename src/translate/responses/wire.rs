//! OpenAI's Responses API on the wire, as the translators read it (borrowed from the body) and
//! write it, plus the few Chat Completions members the shared `openai` module does not write.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::translate::json::TextOr;
use crate::usage::Usage;

// ---------------------------------------------------------------------------------------------
// Requests, read.

#[derive(Deserialize)]
pub(crate) struct ResponsesRequest<'a> {
    #[serde(borrow)]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub input: Option<TextOr<'a, InputItem<'a>>>,
    /// A string, or (rarely) a list of input items; kept raw for the echo.
    #[serde(borrow)]
    pub instructions: Option<&'a RawValue>,
    /// Kept raw for the echo; read into [`Tool`]s on their own.
    #[serde(borrow)]
    pub tools: Option<&'a RawValue>,
    #[serde(borrow)]
    pub tool_choice: Option<&'a RawValue>,
    pub parallel_tool_calls: Option<bool>,
    /// Kept raw for the echo; read into [`TextConfig`] on its own.
    #[serde(borrow)]
    pub text: Option<&'a RawValue>,
    /// Kept raw for the echo; read into [`ReasoningConfig`] on its own.
    #[serde(borrow)]
    pub reasoning: Option<&'a RawValue>,
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    #[serde(borrow)]
    pub user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    pub prompt_cache_key: Option<Cow<'a, str>>,
    pub store: Option<bool>,
    pub stream: Option<bool>,
    #[serde(borrow)]
    pub truncation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub previous_response_id: Option<Cow<'a, str>>,
    pub background: Option<bool>,
    #[serde(borrow)]
    pub conversation: Option<&'a RawValue>,
    #[serde(borrow)]
    pub prompt: Option<&'a RawValue>,
    /// The mock upstream's knobs, carried across translation so tests can steer any dialect.
    #[serde(borrow)]
    pub mock: Option<&'a RawValue>,
}

/// Any input (or stored output) item, flat: which members matter depends on `type`. A message
/// may omit `type` (the "easy" input message `{"role", "content"}`).
#[derive(Deserialize)]
pub(crate) struct InputItem<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub content: Option<TextOr<'a, InputPart<'a>>>,
    #[serde(borrow)]
    pub call_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub arguments: Option<Cow<'a, str>>,
    /// `function_call_output`: a string, or a list of `input_text` / `input_image` parts.
    #[serde(borrow)]
    pub output: Option<TextOr<'a, InputPart<'a>>>,
}

impl InputItem<'_> {
    /// The item's type; an item without one is a message.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("message")
    }
}

/// A content part of a message or of a tool's output, flat.
#[derive(Deserialize)]
pub(crate) struct InputPart<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub refusal: Option<Cow<'a, str>>,
    /// `input_image`: a URL or a `data:` URL. (Chat Completions nests it as `{url}`; a client
    /// that sends that shape is accepted too.)
    #[serde(borrow)]
    pub image_url: Option<ImageRef<'a>>,
    #[serde(borrow)]
    pub file_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub file_data: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub filename: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum ImageRef<'a> {
    #[serde(borrow)]
    Url(Cow<'a, str>),
    #[serde(borrow)]
    Nested(NestedUrl<'a>),
}

#[derive(Deserialize)]
pub(crate) struct NestedUrl<'a> {
    #[serde(borrow)]
    pub url: Cow<'a, str>,
}

impl ImageRef<'_> {
    pub fn url(&self) -> &str {
        match self {
            Self::Url(url) | Self::Nested(NestedUrl { url }) => url,
        }
    }
}

/// A tool: a function in Responses' flat shape, a namespace of functions, or a hosted tool
/// (only `type` is read then).
#[derive(Deserialize)]
pub(crate) struct Tool<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub parameters: Option<&'a RawValue>,
    pub strict: Option<bool>,
    /// A namespace's members.
    #[serde(borrow)]
    pub tools: Option<Vec<Tool<'a>>>,
}

/// `"auto" | "none" | "required"` or an object naming a function or a hosted tool.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum ToolChoice<'a> {
    #[serde(borrow)]
    Mode(Cow<'a, str>),
    #[serde(borrow)]
    Named(NamedToolChoice<'a>),
}

#[derive(Deserialize)]
pub(crate) struct NamedToolChoice<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub namespace: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct TextConfig<'a> {
    #[serde(borrow)]
    pub format: Option<TextFormat<'a>>,
}

/// `text.format`: `{"type": "text"}`, `{"type": "json_object"}`, or
/// `{"type": "json_schema", "name", "schema", "strict", "description"}` (flat, unlike chat).
#[derive(Deserialize)]
pub(crate) struct TextFormat<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub schema: Option<&'a RawValue>,
    pub strict: Option<bool>,
}

#[derive(Deserialize)]
pub(crate) struct ReasoningConfig<'a> {
    #[serde(borrow)]
    pub effort: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------------------------
// Chat errors, read (with `code`, which the shared struct leaves out).

#[derive(Deserialize)]
pub(crate) struct ChatErrorBody<'a> {
    #[serde(borrow)]
    pub error: ChatError<'a>,
}

#[derive(Deserialize)]
pub(crate) struct ChatError<'a> {
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub code: Option<CodeIn<'a>>,
}

/// An error `code`: OpenAI sends strings; some compatible servers send numbers, which say
/// nothing OpenAI's codes would.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum CodeIn<'a> {
    #[serde(borrow)]
    Text(Cow<'a, str>),
    Other(serde::de::IgnoredAny),
}

impl CodeIn<'_> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Other(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses, written.

/// An output item of a response, owned: the stream builds them up delta by delta.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputItem {
    Reasoning {
        id: String,
        summary: Vec<SummaryText>,
    },
    Message {
        id: String,
        status: ItemStatus,
        role: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        status: ItemStatus,
        arguments: String,
        call_id: String,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ItemStatus {
    InProgress,
    Completed,
    Incomplete,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub(crate) struct SummaryText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
}

impl SummaryText {
    pub fn new(text: String) -> Self {
        Self {
            kind: "summary_text",
            text,
        }
    }
}

/// An `output_text` content part; `annotations` and `logprobs` are always empty lists.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub(crate) struct OutputText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub annotations: [(); 0],
    pub logprobs: [(); 0],
    pub text: String,
}

impl OutputText {
    pub fn new(text: String) -> Self {
        Self {
            kind: "output_text",
            annotations: [],
            logprobs: [],
            text,
        }
    }
}

/// The Responses `usage` object. Details are always present (the SDKs' types require them).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UsageOut {
    pub input_tokens: u64,
    pub input_tokens_details: InputDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputDetails,
    pub total_tokens: u64,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InputDetails {
    pub cached_tokens: u64,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutputDetails {
    pub reasoning_tokens: u64,
}

impl From<Usage> for UsageOut {
    /// Responses counts like Chat Completions: `input_tokens` includes the cached ones,
    /// `output_tokens` the reasoning ones.
    fn from(usage: Usage) -> Self {
        Self {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: InputDetails {
                cached_tokens: usage.cached_tokens,
            },
            output_tokens: usage.completion_tokens,
            output_tokens_details: OutputDetails {
                reasoning_tokens: usage.reasoning_tokens,
            },
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
        }
    }
}

/// A response's `error`: `{code, message}`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResponseError {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IncompleteDetails {
    pub reason: &'static str,
}

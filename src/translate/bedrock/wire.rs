//! Converse on the wire: the request as written, the answer and the stream's events as read.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

// ---------------------------------------------------------------------------------------------
// Requests, written.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConverseRequest<'a> {
    pub messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<ContentOut<'a>>,
    pub inference_config: InferenceConfigOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfigOut<'a>>,
    /// The mock upstream's knobs, carried across (see `crate::translate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub(super) struct MessageOut<'a> {
    pub role: &'static str,
    pub content: Vec<ContentOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum ContentOut<'a> {
    Text(Cow<'a, str>),
    Image(ImageOut<'a>),
    ToolUse(ToolUseOut<'a>),
    ToolResult(ToolResultOut<'a>),
    CachePoint(CachePointOut),
}

#[derive(Serialize)]
pub(super) struct ImageOut<'a> {
    pub format: &'a str,
    pub source: ImageSourceOut<'a>,
}

#[derive(Serialize)]
pub(super) struct ImageSourceOut<'a> {
    pub bytes: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolUseOut<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub input: Box<RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolResultOut<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub content: Vec<ToolResultContentOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum ToolResultContentOut<'a> {
    Text(Cow<'a, str>),
}

#[derive(Serialize)]
pub(super) struct CachePointOut {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct InferenceConfigOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<&'a str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolConfigOut<'a> {
    pub tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoiceOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolOut<'a> {
    pub tool_spec: ToolSpecOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolSpecOut<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub input_schema: InputSchemaOut<'a>,
}

#[derive(Serialize)]
pub(super) struct InputSchemaOut<'a> {
    pub json: &'a RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum ToolChoiceOut<'a> {
    Auto(Empty),
    Any(Empty),
    Tool(NamedToolOut<'a>),
}

#[derive(Serialize)]
pub(super) struct Empty {}

#[derive(Serialize)]
pub(super) struct NamedToolOut<'a> {
    pub name: &'a str,
}

// ---------------------------------------------------------------------------------------------
// Answers and stream events, read.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConverseResponse<'a> {
    #[serde(borrow)]
    pub output: Option<OutputIn<'a>>,
    #[serde(borrow)]
    pub stop_reason: Option<Cow<'a, str>>,
    pub usage: Option<UsageIn>,
}

#[derive(Deserialize)]
pub(super) struct OutputIn<'a> {
    #[serde(borrow)]
    pub message: Option<MessageIn<'a>>,
}

#[derive(Deserialize)]
pub(super) struct MessageIn<'a> {
    #[serde(borrow, default)]
    pub content: Vec<ContentIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ContentIn<'a> {
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tool_use: Option<ToolUseIn<'a>>,
    #[serde(borrow)]
    pub reasoning_content: Option<ReasoningIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolUseIn<'a> {
    #[serde(borrow)]
    pub tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReasoningIn<'a> {
    #[serde(borrow)]
    pub reasoning_text: Option<ReasoningTextIn<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ReasoningTextIn<'a> {
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
}

/// Converse's `TokenUsage`.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageIn {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

impl From<UsageIn> for crate::usage::Usage {
    fn from(usage: UsageIn) -> Self {
        Self {
            prompt_tokens: usage.input_tokens
                + usage.cache_read_input_tokens
                + usage.cache_write_input_tokens,
            completion_tokens: usage.output_tokens,
            cached_tokens: usage.cache_read_input_tokens,
            cache_creation_tokens: usage.cache_write_input_tokens,
            ..Self::default()
        }
        .totalled()
    }
}

/// `contentBlockStart`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BlockStartIn<'a> {
    #[serde(default)]
    pub content_block_index: u32,
    #[serde(borrow)]
    pub start: Option<StartIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StartIn<'a> {
    #[serde(borrow)]
    pub tool_use: Option<ToolStartIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolStartIn<'a> {
    #[serde(borrow)]
    pub tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// `contentBlockDelta`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BlockDeltaIn<'a> {
    #[serde(default)]
    pub content_block_index: u32,
    #[serde(borrow)]
    pub delta: Option<DeltaIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeltaIn<'a> {
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tool_use: Option<ToolDeltaIn<'a>>,
    #[serde(borrow)]
    pub reasoning_content: Option<ReasoningTextIn<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ToolDeltaIn<'a> {
    #[serde(borrow)]
    pub input: Option<Cow<'a, str>>,
}

/// `messageStop`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MessageStopIn<'a> {
    #[serde(borrow)]
    pub stop_reason: Option<Cow<'a, str>>,
}

/// `metadata`.
#[derive(Deserialize)]
pub(super) struct MetadataIn {
    pub usage: Option<UsageIn>,
}

/// An error body (`{"message"}`; `Message` in a few older answers).
#[derive(Deserialize)]
pub(super) struct ErrorIn<'a> {
    #[serde(borrow, alias = "Message")]
    pub message: Option<Cow<'a, str>>,
}

//! Anthropic's Messages API on the wire, as the translators read it (borrowed from the body) and
//! write it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::translate::json::TextOr;
use crate::usage::Usage;

// ---------------------------------------------------------------------------------------------
// Read.

#[derive(Deserialize)]
pub(crate) struct MessagesRequest<'a> {
    #[serde(borrow)]
    pub messages: Vec<Message<'a>>,
    #[serde(borrow)]
    pub system: Option<TextOr<'a, Block<'a>>>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    #[serde(borrow)]
    pub stop_sequences: Option<Vec<Cow<'a, str>>>,
    pub stream: Option<bool>,
    #[serde(borrow)]
    pub metadata: Option<Metadata<'a>>,
    #[serde(borrow)]
    pub tools: Option<Vec<Tool<'a>>>,
    #[serde(borrow)]
    pub tool_choice: Option<ToolChoice<'a>>,
    #[serde(borrow)]
    pub thinking: Option<Thinking<'a>>,
    /// `effort` steers how much a reasoning model thinks: it refines `reasoning_effort`.
    #[serde(borrow)]
    pub output_config: Option<OutputConfig<'a>>,
    /// Anthropic's server-side context editing (Claude Code sends it): no other API has it, so
    /// it is read only to say in the debug log that it was left out.
    pub context_management: Option<serde::de::IgnoredAny>,
    /// The mock upstream's knobs, carried across translation so tests can steer any dialect.
    #[serde(borrow)]
    pub mock: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct Message<'a> {
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    #[serde(borrow)]
    pub content: TextOr<'a, Block<'a>>,
}

/// Any content block, flat: which members matter depends on `type`. Reading every kind into
/// one struct avoids serde's buffering of internally tagged enums.
#[derive(Deserialize)]
pub(crate) struct Block<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub source: Option<Source<'a>>,
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub input: Option<&'a RawValue>,
    #[serde(borrow)]
    pub tool_use_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub content: Option<TextOr<'a, Block<'a>>>,
    pub is_error: Option<bool>,
    #[serde(borrow)]
    pub thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub title: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct Source<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub media_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub data: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct Metadata<'a> {
    #[serde(borrow)]
    pub user_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct Tool<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub input_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct ToolChoice<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
pub(crate) struct Thinking<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    pub budget_tokens: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct OutputConfig<'a> {
    #[serde(borrow)]
    pub effort: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct MessagesResponse<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub content: Vec<Block<'a>>,
    #[serde(borrow)]
    pub stop_reason: Option<Cow<'a, str>>,
    pub usage: Option<UsageIn>,
}

/// Anthropic's `usage`; `input_tokens` excludes the cached and cache-written tokens.
#[derive(Deserialize, Default, Clone, Copy, Debug)]
pub(crate) struct UsageIn {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
}

impl UsageIn {
    /// Folds a later report into this one: members the later one carries win.
    pub fn update(&mut self, later: UsageIn) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }
}

impl From<UsageIn> for Usage {
    /// OpenAI counts every prompt token in `prompt_tokens`; Anthropic splits them into fresh,
    /// cache-read and cache-written.
    fn from(usage: UsageIn) -> Self {
        let cached = usage.cache_read_input_tokens.unwrap_or(0);
        let created = usage.cache_creation_input_tokens.unwrap_or(0);
        Self {
            prompt_tokens: usage.input_tokens.unwrap_or(0) + cached + created,
            completion_tokens: usage.output_tokens.unwrap_or(0),
            cached_tokens: cached,
            cache_creation_tokens: created,
            reasoning_tokens: 0,
            ..Self::default()
        }
        .totalled()
    }
}

/// One event of a Messages stream, flat like [`Block`].
#[derive(Deserialize)]
pub(crate) struct EventIn<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub message: Option<MessageStartIn<'a>>,
    pub index: Option<u32>,
    #[serde(borrow)]
    pub content_block: Option<Block<'a>>,
    #[serde(borrow)]
    pub delta: Option<EventDelta<'a>>,
    pub usage: Option<UsageIn>,
    #[serde(borrow)]
    pub error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct MessageStartIn<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    pub usage: Option<UsageIn>,
}

#[derive(Deserialize)]
pub(crate) struct EventDelta<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub partial_json: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorIn<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
}

/// `{"type": "error", "error": {…}}`.
#[derive(Deserialize)]
pub(crate) struct ErrorBodyIn<'a> {
    #[serde(borrow)]
    pub error: ErrorIn<'a>,
}

// ---------------------------------------------------------------------------------------------
// Written.

#[derive(Serialize)]
pub(crate) struct MessagesRequestOut<'a> {
    pub model: &'a str,
    pub max_tokens: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<BlockOut<'a>>,
    pub messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub(crate) struct MessageOut<'a> {
    pub role: &'static str,
    pub content: Vec<BlockOut<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockOut<'a> {
    Text {
        text: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Image {
        source: SourceOut<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Document {
        source: SourceOut<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Thinking {
        thinking: Cow<'a, str>,
        /// Anthropic signs its own thinking; translated thinking has no signature.
        signature: &'static str,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Box<RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    ToolResult {
        tool_use_id: Cow<'a, str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<BlockOut<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
}

impl<'a> BlockOut<'a> {
    pub fn text(text: impl Into<Cow<'a, str>>) -> Self {
        Self::Text {
            text: text.into(),
            cache_control: None,
        }
    }

    /// Sets `cache_control` on a block that can carry it.
    pub fn set_cache_control(&mut self, value: &'a RawValue) {
        match self {
            Self::Text { cache_control, .. }
            | Self::Image { cache_control, .. }
            | Self::Document { cache_control, .. }
            | Self::ToolUse { cache_control, .. }
            | Self::ToolResult { cache_control, .. } => *cache_control = Some(value),
            Self::Thinking { .. } => {}
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum SourceOut<'a> {
    Base64 {
        media_type: Cow<'a, str>,
        data: Cow<'a, str>,
    },
    Url {
        url: Cow<'a, str>,
    },
}

#[derive(Serialize)]
pub(crate) struct MetadataOut<'a> {
    pub user_id: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct ToolOut<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    pub input_schema: SchemaOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
}

/// A tool's `input_schema`: the client's, or an empty object schema when it gave none.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum SchemaOut<'a> {
    Given(&'a RawValue),
    Empty {
        #[serde(rename = "type")]
        kind: &'static str,
        properties: EmptyObject,
    },
}

#[derive(Serialize)]
pub(crate) struct EmptyObject {}

#[derive(Serialize)]
pub(crate) struct ToolChoiceOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
pub(crate) struct ThinkingOut {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub budget_tokens: u64,
}

#[derive(Serialize)]
pub(crate) struct MessageResponseOut<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: Vec<BlockOut<'a>>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<()>,
    pub usage: UsageOut,
}

/// Anthropic's `usage` as llmgate writes it.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UsageOut {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl From<Usage> for UsageOut {
    fn from(usage: Usage) -> Self {
        Self {
            input_tokens: usage
                .prompt_tokens
                .saturating_sub(usage.cached_tokens + usage.cache_creation_tokens),
            output_tokens: usage.completion_tokens,
            cache_creation_input_tokens: usage.cache_creation_tokens,
            cache_read_input_tokens: usage.cached_tokens,
        }
    }
}

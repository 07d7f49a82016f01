//! OpenAI Chat Completions on the wire, as the translators read it (borrowed from the body) and
//! write it: requests, responses, stream chunks.

use std::borrow::Cow;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::json::{TextOr, write_event};
use crate::usage::Usage;

// ---------------------------------------------------------------------------------------------
// Requests, read.

#[derive(Deserialize)]
pub(crate) struct ChatRequest<'a> {
    #[serde(borrow)]
    pub messages: Vec<ChatMessage<'a>>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    #[serde(borrow)]
    pub stop: Option<TextOr<'a, Cow<'a, str>>>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    #[serde(borrow)]
    pub tools: Option<Vec<ChatTool<'a>>>,
    #[serde(borrow)]
    pub tool_choice: Option<ToolChoice<'a>>,
    pub parallel_tool_calls: Option<bool>,
    #[serde(borrow)]
    pub user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub response_format: Option<ResponseFormat<'a>>,
    #[serde(borrow)]
    pub reasoning_effort: Option<Cow<'a, str>>,
    pub n: Option<u32>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub seed: Option<i64>,
    /// The mock upstream's knobs, carried across translation so tests can steer any dialect.
    #[serde(borrow)]
    pub mock: Option<&'a RawValue>,
}

impl ChatRequest<'_> {
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false)
    }

    /// `max_completion_tokens`, or the older `max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The stop sequences, one or many.
    pub fn stop_sequences(&self) -> Option<Vec<&str>> {
        match self.stop.as_ref()? {
            TextOr::Text(text) => Some(vec![text.as_ref()]),
            TextOr::List(list) if list.is_empty() => None,
            TextOr::List(list) => Some(list.iter().map(AsRef::as_ref).collect()),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct StreamOptions {
    pub include_usage: Option<bool>,
}

#[derive(Deserialize)]
pub(crate) struct ChatMessage<'a> {
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    #[serde(borrow)]
    pub content: Option<TextOr<'a, ContentPart<'a>>>,
    #[serde(borrow)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(borrow)]
    pub tool_call_id: Option<Cow<'a, str>>,
    /// LiteLLM-style `cache_control` on a whole message: it applies to the message's last block.
    #[serde(borrow)]
    pub cache_control: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct ContentPart<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub image_url: Option<ImageUrl<'a>>,
    #[serde(borrow)]
    pub file: Option<FilePart<'a>>,
    #[serde(borrow)]
    pub input_audio: Option<InputAudio<'a>>,
    #[serde(borrow)]
    pub cache_control: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct InputAudio<'a> {
    #[serde(borrow)]
    pub data: Cow<'a, str>,
    #[serde(borrow)]
    pub format: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(crate) struct ImageUrl<'a> {
    #[serde(borrow)]
    pub url: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(crate) struct FilePart<'a> {
    #[serde(borrow)]
    pub file_data: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub filename: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct ToolCall<'a> {
    #[serde(borrow, default)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub function: FunctionCall<'a>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionCall<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub arguments: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(crate) struct ChatTool<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub function: Option<FunctionDefinition<'a>>,
    #[serde(borrow)]
    pub cache_control: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionDefinition<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub parameters: Option<&'a RawValue>,
}

/// `"auto"`, `"none"`, `"required"`, or `{"type": "function", "function": {"name": …}}`.
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
    #[serde(borrow)]
    pub function: NamedFunction<'a>,
}

#[derive(Deserialize)]
pub(crate) struct NamedFunction<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(crate) struct ResponseFormat<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub json_schema: Option<JsonSchemaFormat<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct JsonSchemaFormat<'a> {
    #[serde(borrow)]
    pub schema: Option<&'a RawValue>,
}

// ---------------------------------------------------------------------------------------------
// Requests, written.

#[derive(Serialize)]
pub(crate) struct ChatRequestOut<'a> {
    pub model: &'a str,
    pub messages: Vec<ChatMessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptionsOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ChatToolOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormatOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub(crate) struct StreamOptionsOut {
    pub include_usage: bool,
}

#[derive(Serialize)]
pub(crate) struct ChatMessageOut<'a> {
    pub role: &'static str,
    /// `null` only for an assistant message that carries tool calls.
    pub content: Option<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ContentOut<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<PartOut<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum PartOut<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: UrlOut<'a> },
    File { file: FileOut<'a> },
}

#[derive(Serialize)]
pub(crate) struct UrlOut<'a> {
    pub url: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct FileOut<'a> {
    pub filename: Cow<'a, str>,
    pub file_data: String,
}

#[derive(Serialize)]
pub(crate) struct ToolCallOut<'a> {
    pub id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCallOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionCallOut<'a> {
    pub name: Cow<'a, str>,
    pub arguments: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct ChatToolOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionDefinitionOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionDefinitionOut<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ToolChoiceOut<'a> {
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NamedFunctionOut<'a>,
    },
}

#[derive(Serialize)]
pub(crate) struct NamedFunctionOut<'a> {
    pub name: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct ResponseFormatOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaOut<'a>>,
}

#[derive(Serialize)]
pub(crate) struct JsonSchemaOut<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Responses, read.

#[derive(Deserialize)]
pub(crate) struct ChatResponse<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub choices: Vec<ResponseChoice<'a>>,
    pub usage: Option<UsageIn>,
}

#[derive(Deserialize)]
pub(crate) struct ResponseChoice<'a> {
    pub index: Option<u32>,
    #[serde(borrow)]
    pub message: Option<ResponseMessage<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct ResponseMessage<'a> {
    #[serde(borrow)]
    pub content: Option<TextOr<'a, ContentPart<'a>>>,
    #[serde(borrow)]
    pub refusal: Option<Cow<'a, str>>,
    /// DeepSeek, vLLM and most OpenAI-compatible reasoning servers.
    #[serde(borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// OpenRouter and some others.
    #[serde(borrow)]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
}

/// OpenAI's `usage`; every member is optional because OpenAI-compatible servers differ.
#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct UsageIn {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    pub prompt_tokens_details: Option<PromptDetails>,
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct PromptDetails {
    pub cached_tokens: Option<u64>,
    /// Prompt tokens written to the cache: llmgate writes it for an Anthropic answer in chat
    /// form (as OpenRouter does), so the cache-write price reaches the request's cost.
    pub cache_write_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct CompletionDetails {
    pub reasoning_tokens: Option<u64>,
}

impl From<UsageIn> for Usage {
    fn from(usage: UsageIn) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage
                .prompt_tokens_details
                .and_then(|details| details.cached_tokens)
                .unwrap_or(0),
            cache_creation_tokens: usage
                .prompt_tokens_details
                .and_then(|details| details.cache_write_tokens)
                .unwrap_or(0),
            reasoning_tokens: usage
                .completion_tokens_details
                .and_then(|details| details.reasoning_tokens)
                .unwrap_or(0),
            ..Self::default()
        }
        .totalled()
    }
}

// ---------------------------------------------------------------------------------------------
// Stream chunks, read.

#[derive(Deserialize)]
pub(crate) struct ChunkIn<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub choices: Vec<ChunkChoiceIn<'a>>,
    pub usage: Option<UsageIn>,
    /// An error reported inside the stream (llmgate's own relay and several servers do this).
    #[serde(borrow)]
    pub error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkChoiceIn<'a> {
    #[serde(default)]
    pub index: u32,
    #[serde(borrow)]
    pub delta: Option<DeltaIn<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct DeltaIn<'a> {
    #[serde(borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tool_calls: Option<Vec<ToolCallDeltaIn<'a>>>,
}

#[derive(Deserialize)]
pub(crate) struct ToolCallDeltaIn<'a> {
    pub index: Option<u32>,
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub function: Option<FunctionDeltaIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionDeltaIn<'a> {
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

/// An OpenAI error object: `{"message", "type", "code"}`.
#[derive(Deserialize)]
pub(crate) struct ErrorIn<'a> {
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorBodyIn<'a> {
    #[serde(borrow)]
    pub error: ErrorIn<'a>,
}

// ---------------------------------------------------------------------------------------------
// Responses, written.

#[derive(Serialize)]
pub(crate) struct ChatCompletionOut<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Serialize)]
pub(crate) struct ChoiceOut<'a> {
    pub index: u32,
    pub message: AssistantOut<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: &'static str,
}

#[derive(Serialize)]
pub(crate) struct AssistantOut<'a> {
    pub role: &'static str,
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut<'a>>>,
    pub refusal: Option<String>,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetailsOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetailsOut>,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PromptDetailsOut {
    pub cached_tokens: u64,
    /// Written only when some prompt tokens went into the cache (an Anthropic upstream's
    /// `cache_creation_input_tokens`), which are billed at their own price.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompletionDetailsOut {
    pub reasoning_tokens: u64,
}

impl From<Usage> for UsageOut {
    /// `prompt_tokens_details` appears when some prompt tokens were cached (read or written),
    /// `completion_tokens_details` when some completion tokens were reasoning.
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
            prompt_tokens_details: (usage.cached_tokens > 0 || usage.cache_creation_tokens > 0)
                .then_some(PromptDetailsOut {
                    cached_tokens: usage.cached_tokens,
                    cache_write_tokens: usage.cache_creation_tokens,
                }),
            completion_tokens_details: (usage.reasoning_tokens > 0).then_some(
                CompletionDetailsOut {
                    reasoning_tokens: usage.reasoning_tokens,
                },
            ),
        }
    }
}

/// An OpenAI error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Serialize)]
pub(crate) struct ErrorBodyOut<'a> {
    pub error: ErrorOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorOut<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<()>,
    pub code: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------------
// Stream chunks, written.

/// Writes `chat.completion.chunk` frames for one translated stream.
#[derive(Debug)]
pub(crate) struct ChunkWriter {
    pub id: String,
    pub created: u64,
    pub model: String,
    /// The client asked for `stream_options.include_usage`: every chunk carries `"usage": null`
    /// and a last chunk with empty `choices` carries the usage, as OpenAI does.
    pub include_usage: bool,
}

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoiceOut<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

#[derive(Serialize)]
struct ChunkChoiceOut<'a> {
    index: u32,
    delta: DeltaOut<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
pub(crate) struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCallDeltaOut<'a>; 1]>,
}

#[derive(Serialize)]
pub(crate) struct ToolCallDeltaOut<'a> {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionDeltaOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

impl ChunkWriter {
    fn write(
        &self,
        out: &mut BytesMut,
        choice: u32,
        delta: DeltaOut<'_>,
        finish_reason: Option<&'static str>,
    ) {
        let choices = [ChunkChoiceOut {
            index: choice,
            delta,
            logprobs: None,
            finish_reason,
        }];
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: &choices,
            usage: self.include_usage.then_some(None),
        };
        write_event(out, None, &chunk);
    }

    /// The first chunk of a choice: the assistant role and empty content.
    pub fn role(&self, out: &mut BytesMut, choice: u32) {
        let delta = DeltaOut {
            role: Some("assistant"),
            content: Some(""),
            ..DeltaOut::default()
        };
        self.write(out, choice, delta, None);
    }

    pub fn delta(&self, out: &mut BytesMut, choice: u32, delta: DeltaOut<'_>) {
        self.write(out, choice, delta, None);
    }

    pub fn content(&self, out: &mut BytesMut, choice: u32, text: &str) {
        let delta = DeltaOut {
            content: Some(text),
            ..DeltaOut::default()
        };
        self.write(out, choice, delta, None);
    }

    pub fn reasoning(&self, out: &mut BytesMut, choice: u32, text: &str) {
        let delta = DeltaOut {
            reasoning_content: Some(text),
            ..DeltaOut::default()
        };
        self.write(out, choice, delta, None);
    }

    /// A tool call's first chunk (id, type, name) or a later one (arguments only).
    pub fn tool_call(&self, out: &mut BytesMut, choice: u32, call: ToolCallDeltaOut<'_>) {
        let delta = DeltaOut {
            tool_calls: Some([call]),
            ..DeltaOut::default()
        };
        self.write(out, choice, delta, None);
    }

    pub fn finish(&self, out: &mut BytesMut, choice: u32, reason: &'static str) {
        self.write(out, choice, DeltaOut::default(), Some(reason));
    }

    /// The usage chunk (when the client asked for it) and `[DONE]`.
    pub fn end(&self, out: &mut BytesMut, usage: Option<Usage>) {
        if self.include_usage
            && let Some(usage) = usage
        {
            let chunk = ChunkOut {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: &[],
                usage: Some(Some(UsageOut::from(usage))),
            };
            write_event(out, None, &chunk);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// An error event in OpenAI's shape, the last frame of a stream that failed.
    pub fn error(out: &mut BytesMut, kind: &str, message: &str) {
        let body = ErrorBodyOut {
            error: ErrorOut {
                message,
                kind,
                param: None,
                code: None,
            },
        };
        write_event(out, None, &body);
    }
}

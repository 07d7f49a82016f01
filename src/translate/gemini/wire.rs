//! Gemini's `generateContent` API on the wire, as the translators write requests and read
//! answers.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::usage::Usage;

// ---------------------------------------------------------------------------------------------
// Requests, written.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentRequest<'a> {
    pub contents: Vec<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<SystemOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<[ToolsOut<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfigOut<'a>>,
    #[serde(skip_serializing_if = "GenerationConfigOut::is_empty")]
    pub generation_config: GenerationConfigOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub(crate) struct ContentOut<'a> {
    pub role: &'static str,
    pub parts: Vec<PartOut<'a>>,
}

#[derive(Serialize)]
pub(crate) struct SystemOut<'a> {
    pub parts: Vec<PartOut<'a>>,
}

/// One part: exactly one of the data members is set, plus the thought signature Gemini attached
/// to a function call.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<BlobOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileDataOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponseOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl<'a> PartOut<'a> {
    pub fn text(text: Cow<'a, str>) -> Self {
        Self {
            text: Some(text),
            ..Self::default()
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlobOut<'a> {
    pub mime_type: Cow<'a, str>,
    pub data: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileDataOut<'a> {
    pub mime_type: &'static str,
    pub file_uri: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct FunctionCallOut<'a> {
    pub name: Cow<'a, str>,
    pub args: Box<RawValue>,
}

#[derive(Serialize)]
pub(crate) struct FunctionResponseOut<'a> {
    pub name: Cow<'a, str>,
    pub response: Box<RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolsOut<'a> {
    pub function_declarations: Vec<FunctionDeclarationOut<'a>>,
}

#[derive(Serialize)]
pub(crate) struct FunctionDeclarationOut<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfigOut<'a> {
    pub function_calling_config: FunctionCallingConfigOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionCallingConfigOut<'a> {
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_function_names: Option<[Cow<'a, str>; 1]>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerationConfigOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfigOut>,
}

impl GenerationConfigOut<'_> {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_none()
            && self.candidate_count.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.seed.is_none()
            && self.response_mime_type.is_none()
            && self.response_schema.is_none()
            && self.thinking_config.is_none()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThinkingConfigOut {
    pub thinking_budget: u64,
}

// ---------------------------------------------------------------------------------------------
// Answers, read.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse<'a> {
    #[serde(borrow, default)]
    pub candidates: Vec<Candidate<'a>>,
    #[serde(borrow)]
    pub prompt_feedback: Option<PromptFeedback<'a>>,
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(borrow)]
    pub response_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate<'a> {
    #[serde(borrow)]
    pub content: Option<Content<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub finish_message: Option<Cow<'a, str>>,
    pub index: Option<u32>,
}

#[derive(Deserialize)]
pub(crate) struct Content<'a> {
    #[serde(borrow, default)]
    pub parts: Vec<Part<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part<'a> {
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    pub thought: Option<bool>,
    #[serde(borrow)]
    pub function_call: Option<FunctionCallIn<'a>>,
    #[serde(borrow)]
    pub thought_signature: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionCallIn<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback<'a> {
    #[serde(borrow)]
    pub block_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub block_reason_message: Option<Cow<'a, str>>,
}

/// Gemini's `usageMetadata`: `candidatesTokenCount` excludes thinking, which is counted apart.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    pub prompt_token_count: Option<u64>,
    pub candidates_token_count: Option<u64>,
    pub cached_content_token_count: Option<u64>,
    pub thoughts_token_count: Option<u64>,
    pub tool_use_prompt_token_count: Option<u64>,
}

impl From<UsageMetadata> for Usage {
    /// OpenAI counts reasoning inside `completion_tokens` and tool-use prompts inside
    /// `prompt_tokens`.
    fn from(usage: UsageMetadata) -> Self {
        let thoughts = usage.thoughts_token_count.unwrap_or(0);
        Self {
            prompt_tokens: usage.prompt_token_count.unwrap_or(0)
                + usage.tool_use_prompt_token_count.unwrap_or(0),
            completion_tokens: usage.candidates_token_count.unwrap_or(0) + thoughts,
            cached_tokens: usage.cached_content_token_count.unwrap_or(0),
            cache_creation_tokens: 0,
            reasoning_tokens: thoughts,
            ..Self::default()
        }
        .totalled()
    }
}

/// `{"error": {"code", "message", "status"}}`.
#[derive(Deserialize)]
pub(crate) struct ErrorIn<'a> {
    pub code: Option<u16>,
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub status: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorBodyIn<'a> {
    #[serde(borrow)]
    pub error: ErrorIn<'a>,
}

//! The Gemini dialect of the mock: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, text, function calls or a safety block, errors in Gemini's
//! shape.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::knobs::{Knobs, Plan};
use super::openai::{ToolCall, new_id, padded, split, words};
use super::sse::Script;

/// The model and method a Gemini path names: `/v1beta/models/{model}:{method}`.
pub(super) fn route(path: &str) -> Option<(&str, bool)> {
    let rest = path.strip_prefix("/v1beta/models/")?;
    let (model, method) = rest.rsplit_once(':')?;
    match method {
        "generateContent" => Some((model, false)),
        "streamGenerateContent" => Some((model, true)),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateRequest {
    #[serde(default)]
    contents: Vec<Content>,
    system_instruction: Option<Content>,
    tools: Option<Vec<ToolGroup>>,
    pub mock: Option<Knobs>,
}

#[derive(Deserialize)]
struct Content {
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolGroup {
    #[serde(default)]
    function_declarations: Vec<Declaration>,
}

#[derive(Deserialize)]
struct Declaration {
    name: String,
}

impl GenerateRequest {
    /// Removes the request's `"mock"` knobs; without them, the knobs written in its prompt.
    pub fn take_knobs(&mut self) -> serde_json::Result<Option<Knobs>> {
        if let Some(knobs) = self.mock.take() {
            return Ok(Some(knobs));
        }
        Knobs::from_prompt(
            self.contents
                .iter()
                .filter(|c| c.role.as_deref() == Some("user"))
                .flat_map(Content::texts)
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }
}

impl Content {
    fn texts(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| part.text.as_deref())
    }
}

/// A generated Gemini answer, before it is written out.
pub(super) struct Answer {
    id: String,
    model: String,
    reply: String,
    tool_calls: Vec<ToolCall>,
    safety_block: bool,
    usage: Option<Usage>,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Usage {
    prompt_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u64>,
    total_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_content_token_count: Option<u64>,
}

impl Answer {
    pub fn new(request: GenerateRequest, model: &str, plan: &Plan) -> Self {
        let prompt_tokens = request
            .system_instruction
            .iter()
            .chain(&request.contents)
            .flat_map(Content::texts)
            .map(words)
            .sum::<u64>()
            .max(1);
        let reply = plan.content.clone().unwrap_or_else(|| {
            let last_user = request
                .contents
                .iter()
                .rev()
                .find(|c| c.role.as_deref().is_none_or(|role| role == "user"));
            let texts: Vec<&str> = last_user.into_iter().flat_map(Content::texts).collect();
            format!("echo: {}", texts.join(" "))
        });
        let tools: Vec<&str> = request
            .tools
            .iter()
            .flatten()
            .flat_map(|group| &group.function_declarations)
            .map(|declaration| declaration.name.as_str())
            .collect();
        let tool_calls = ToolCall::plan("", &tools, plan.tool_calls, &reply);
        let completion = plan.chunks as u64;
        Self {
            id: new_id("mock-"),
            model: model.to_owned(),
            reply,
            tool_calls,
            safety_block: plan.safety_block,
            usage: plan.usage.then_some(Usage {
                prompt_token_count: prompt_tokens,
                candidates_token_count: Some(completion),
                total_token_count: prompt_tokens + completion,
                cached_content_token_count: (plan.cached_tokens > 0)
                    .then_some(plan.cached_tokens.min(prompt_tokens)),
            }),
        }
    }

    fn response<'a>(
        &'a self,
        parts: Vec<PartOut<'a>>,
        finish_reason: Option<&'static str>,
        usage: Option<Usage>,
    ) -> Response<'a> {
        let blocked = finish_reason == Some("SAFETY");
        Response {
            candidates: [Candidate {
                content: (!blocked).then_some(ContentOut {
                    parts,
                    role: "model",
                }),
                finish_reason,
                index: 0,
                safety_ratings: blocked.then_some([SafetyRating {
                    category: "HARM_CATEGORY_DANGEROUS_CONTENT",
                    probability: "HIGH",
                    blocked: true,
                }]),
            }],
            usage_metadata: usage,
            model_version: &self.model,
            response_id: &self.id,
        }
    }

    fn tool_parts(&self) -> serde_json::Result<Vec<PartOut<'_>>> {
        self.tool_calls
            .iter()
            .map(|call| {
                Ok(PartOut::FunctionCall(FunctionCall {
                    name: &call.name,
                    args: RawValue::from_string(call.arguments.clone())?,
                }))
            })
            .collect()
    }

    /// The whole answer: the echo, the function calls, or a candidate stopped for safety.
    pub fn body(&self) -> serde_json::Result<Vec<u8>> {
        let response = if self.safety_block {
            self.response(Vec::new(), Some("SAFETY"), self.usage)
        } else if self.tool_calls.is_empty() {
            self.response(vec![PartOut::Text(&self.reply)], Some("STOP"), self.usage)
        } else {
            self.response(self.tool_parts()?, Some("STOP"), self.usage)
        };
        serde_json::to_vec(&response)
    }

    /// The event stream: one frame per text piece (or per function call), each with the
    /// prompt-side usage, then a last frame with `finishReason` and the whole usage. Gemini sends
    /// no `[DONE]`: the stream just ends. With `cut_after`, the connection breaks after that many
    /// content frames.
    pub fn script(&self, plan: &Plan) -> serde_json::Result<Script> {
        let mut script = Script::with_capacity(plan.chunks + self.tool_calls.len() + 2);
        let partial = self.usage.map(|usage| Usage {
            candidates_token_count: None,
            total_token_count: usage.prompt_token_count,
            ..usage
        });
        let mut frames = Vec::new();
        if self.safety_block {
            // The filter stops the answer before any content.
        } else if self.tool_calls.is_empty() {
            let reply = padded(&self.reply, plan.chunks);
            for piece in split(&reply, plan.chunks) {
                frames.push(frame(&self.response(
                    vec![PartOut::Text(piece)],
                    None,
                    partial,
                ))?);
            }
        } else {
            for part in self.tool_parts()? {
                frames.push(frame(&self.response(vec![part], None, partial))?);
            }
        }
        let shown = plan
            .cut_after
            .map_or(frames.len(), |cut| cut.min(frames.len()));
        for frame in frames.into_iter().take(shown) {
            script.push(plan.chunk_delay, frame);
        }
        if plan.cut_after.is_some() {
            return Ok(script.cut());
        }
        let finish = if self.safety_block { "SAFETY" } else { "STOP" };
        let last = self.response(vec![PartOut::Text("")], Some(finish), self.usage);
        script.push(Duration::ZERO, frame(&last)?);
        Ok(script)
    }
}

fn frame(data: &impl Serialize) -> serde_json::Result<Bytes> {
    let mut frame = Vec::with_capacity(256);
    frame.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut frame, data)?;
    frame.extend_from_slice(b"\r\n\r\n");
    Ok(Bytes::from(frame))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    candidates: [Candidate<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_metadata: Option<Usage>,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    safety_ratings: Option<[SafetyRating; 1]>,
}

#[derive(Serialize)]
struct ContentOut<'a> {
    parts: Vec<PartOut<'a>>,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum PartOut<'a> {
    Text(&'a str),
    FunctionCall(FunctionCall<'a>),
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: Box<RawValue>,
}

#[derive(Serialize)]
struct SafetyRating {
    category: &'static str,
    probability: &'static str,
    blocked: bool,
}

/// A Gemini error body for `status`: `{"error": {"code", "message", "status"}}`.
pub(super) fn error_body(status: u16, message: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: ErrorDetail<'a>,
    }
    #[derive(Serialize)]
    struct ErrorDetail<'a> {
        code: u16,
        message: &'a str,
        status: &'static str,
    }
    let grpc = match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: status,
            message,
            status: grpc,
        },
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":{"message":"error"}}"#.to_vec())
}

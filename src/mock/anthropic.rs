//! The Anthropic Messages dialect of the mock: `POST /v1/messages`, whole or streamed with
//! Anthropic's exact event sequence, text or tool use, errors in Anthropic's shape.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::knobs::{Knobs, Plan};
use super::openai::{MODEL, ToolCall, new_id, padded, split, words};
use super::sse::Script;

#[derive(Deserialize)]
pub(super) struct MessagesRequest {
    /// Absent on Vertex AI, whose URL names the model.
    pub model: Option<String>,
    #[serde(default)]
    messages: Vec<Message>,
    system: Option<Content>,
    stream: Option<bool>,
    tools: Option<Vec<Tool>>,
    pub mock: Option<Knobs>,
}

#[derive(Deserialize)]
struct Message {
    role: Option<String>,
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    /// A `tool_result`'s content.
    content: Option<Box<Content>>,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
}

impl MessagesRequest {
    /// Removes the request's `"mock"` knobs; without them, the knobs written in its prompt.
    pub fn take_knobs(&mut self) -> serde_json::Result<Option<Knobs>> {
        if let Some(knobs) = self.mock.take() {
            return Ok(Some(knobs));
        }
        Knobs::from_prompt(
            self.messages
                .iter()
                .filter(|m| m.role.as_deref() == Some("user"))
                .filter_map(|m| m.content.as_ref())
                .flat_map(Content::own_texts)
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }
}

impl Content {
    /// The texts the model reads: text blocks, and the text of tool results.
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Text(text) => out.push(text),
            Self::Blocks(blocks) => {
                for block in blocks {
                    match block.kind.as_deref() {
                        Some("text") => out.extend(block.text.as_deref()),
                        Some("tool_result") => {
                            if let Some(content) = &block.content {
                                content.texts(out);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// The text of its `tool_result` blocks, when it has any.
    fn tool_results(&self) -> Option<String> {
        let Self::Blocks(blocks) = self else {
            return None;
        };
        let mut texts = Vec::new();
        let mut found = false;
        for block in blocks {
            if block.kind.as_deref() == Some("tool_result") {
                found = true;
                if let Some(content) = &block.content {
                    content.texts(&mut texts);
                }
            }
        }
        found.then(|| texts.join(" "))
    }

    /// The text blocks only (what the echo repeats).
    fn own_texts(&self) -> Vec<&str> {
        match self {
            Self::Text(text) => vec![text.as_str()],
            Self::Blocks(blocks) => blocks
                .iter()
                .filter(|block| block.kind.as_deref() == Some("text"))
                .filter_map(|block| block.text.as_deref())
                .collect(),
        }
    }
}

/// A generated Messages answer, before it is written out.
pub(super) struct Answer {
    id: String,
    model: String,
    reply: String,
    pub stream: bool,
    tool_calls: Vec<ToolCall>,
    usage: Option<Usage>,
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

impl Answer {
    pub fn new(request: MessagesRequest, plan: &Plan) -> Self {
        let mut texts = Vec::new();
        if let Some(system) = &request.system {
            system.texts(&mut texts);
        }
        for message in &request.messages {
            if let Some(content) = &message.content {
                content.texts(&mut texts);
            }
        }
        let prompt_tokens = texts.iter().map(|text| words(text)).sum::<u64>().max(1);
        let tools: Vec<&str> = request
            .tools
            .iter()
            .flatten()
            .map(|tool| tool.name.as_str())
            .collect();
        let tool_result = request
            .messages
            .last()
            .filter(|m| m.role.as_deref() == Some("user"))
            .and_then(|m| m.content.as_ref())
            .and_then(Content::tool_results);
        let (reply, tool_calls) =
            ToolCall::answer("toolu_mock_", &tools, plan, tool_result, || {
                let last_user = request
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.role.as_deref() == Some("user"));
                let texts = last_user
                    .and_then(|m| m.content.as_ref())
                    .map(Content::own_texts)
                    .unwrap_or_default();
                format!("echo: {}", texts.join(" "))
            });
        let cached = plan.cached_tokens.min(prompt_tokens);
        let written = plan.cache_write_tokens.min(prompt_tokens - cached);
        Self {
            id: new_id("msg_mock"),
            model: request.model.unwrap_or_else(|| MODEL.to_owned()),
            reply,
            stream: request.stream.unwrap_or(false),
            tool_calls,
            usage: plan.usage.then_some(Usage {
                input_tokens: prompt_tokens - cached - written,
                cache_creation_input_tokens: written,
                cache_read_input_tokens: cached,
                output_tokens: plan.chunks as u64,
            }),
        }
    }

    fn stop_reason(&self) -> &'static str {
        if self.tool_calls.is_empty() {
            "end_turn"
        } else {
            "tool_use"
        }
    }

    /// The whole message.
    pub fn body(&self) -> serde_json::Result<Vec<u8>> {
        let content: Vec<ContentBlock<'_>> = if self.tool_calls.is_empty() {
            vec![ContentBlock::Text { text: &self.reply }]
        } else {
            self.tool_calls
                .iter()
                .map(|call| {
                    Ok(ContentBlock::ToolUse {
                        id: &call.id,
                        name: &call.name,
                        input: serde_json::value::RawValue::from_string(call.arguments.clone())?,
                    })
                })
                .collect::<serde_json::Result<_>>()?
        };
        serde_json::to_vec(&MessageBody {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content,
            stop_reason: Some(self.stop_reason()),
            stop_sequence: None,
            usage: self.usage,
        })
    }

    /// The event stream: `message_start`, `ping`, then one text block split into `chunks`
    /// deltas, or one `tool_use` block per call with its input split into `chunks` fragments;
    /// `message_delta`, `message_stop`. With `cut_after`, the connection breaks after that many
    /// deltas.
    pub fn script(&self, plan: &Plan) -> serde_json::Result<Script> {
        let mut script = Script::with_capacity(plan.chunks * (1 + self.tool_calls.len()) + 8);
        let start = MessageStart {
            kind: "message_start",
            message: MessageBody {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: self.usage.map(|usage| Usage {
                    output_tokens: 1,
                    ..usage
                }),
            },
        };
        script.push(Duration::ZERO, event("message_start", &start)?);
        script.push(Duration::ZERO, event("ping", &Typed { kind: "ping" })?);
        let mut budget = plan.cut_after.unwrap_or(usize::MAX);
        let blocks: Vec<(ContentBlock<'_>, Vec<Delta>)> = if self.tool_calls.is_empty() {
            let reply = padded(&self.reply, plan.chunks);
            let pieces = split(&reply, plan.chunks)
                .into_iter()
                .map(|piece| Delta::Text {
                    text: piece.to_owned(),
                })
                .collect();
            vec![(ContentBlock::Text { text: "" }, pieces)]
        } else {
            self.tool_calls
                .iter()
                .map(|call| {
                    let fragments = split(&call.arguments, plan.chunks)
                        .into_iter()
                        .filter(|piece| !piece.is_empty())
                        .map(|piece| Delta::InputJson {
                            partial_json: piece.to_owned(),
                        })
                        .collect();
                    let block = ContentBlock::ToolUse {
                        id: &call.id,
                        name: &call.name,
                        input: serde_json::value::RawValue::from_string("{}".to_owned())?,
                    };
                    Ok((block, fragments))
                })
                .collect::<serde_json::Result<_>>()?
        };
        for (index, (block, deltas)) in blocks.into_iter().enumerate() {
            let start = BlockStart {
                kind: "content_block_start",
                index,
                content_block: block,
            };
            script.push(Duration::ZERO, event("content_block_start", &start)?);
            for delta in deltas {
                if budget == 0 {
                    return Ok(script.cut());
                }
                budget -= 1;
                let delta = BlockDelta {
                    kind: "content_block_delta",
                    index,
                    delta,
                };
                script.push(plan.chunk_delay, event("content_block_delta", &delta)?);
            }
            let stop = BlockStop {
                kind: "content_block_stop",
                index,
            };
            script.push(Duration::ZERO, event("content_block_stop", &stop)?);
        }
        if plan.cut_after.is_some() {
            return Ok(script.cut());
        }
        let delta = MessageDelta {
            kind: "message_delta",
            delta: StopDelta {
                stop_reason: self.stop_reason(),
                stop_sequence: None,
            },
            usage: self.usage.map(|usage| OutputUsage {
                output_tokens: usage.output_tokens,
            }),
        };
        script.push(Duration::ZERO, event("message_delta", &delta)?);
        script.push(
            Duration::ZERO,
            event(
                "message_stop",
                &Typed {
                    kind: "message_stop",
                },
            )?,
        );
        Ok(script)
    }
}

fn event(name: &str, data: &impl Serialize) -> serde_json::Result<Bytes> {
    let mut frame = Vec::with_capacity(128);
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(name.as_bytes());
    frame.extend_from_slice(b"\ndata: ");
    serde_json::to_writer(&mut frame, data)?;
    frame.extend_from_slice(b"\n\n");
    Ok(Bytes::from(frame))
}

#[derive(Serialize)]
struct MessageBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<ContentBlock<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Box<serde_json::value::RawValue>,
    },
}

#[derive(Serialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: MessageBody<'a>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    content_block: ContentBlock<'a>,
}

#[derive(Serialize)]
struct BlockDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    delta: Delta,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
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
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OutputUsage>,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

/// An Anthropic error body for `status`.
pub(super) fn error_body(status: u16, message: &str) -> Vec<u8> {
    let kind = crate::translate::anthropic::anthropic_error_type(status);
    crate::translate::anthropic::anthropic_error_body(kind, message).into_bytes()
}

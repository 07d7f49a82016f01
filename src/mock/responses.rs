//! OpenAI's Responses API as the mock speaks it natively (`POST /v1/responses`), for providers
//! declared with `responses = true`: a `response` object, or its event stream (`response.created`
//! … `response.completed`, `sequence_number`s, no `[DONE]`), text or function calls, with usage
//! in Responses' names.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::knobs::{Knobs, Plan};
use super::openai::{MODEL, ToolCall, new_id, padded, split, unix_now, words};
use super::sse::Script;

#[derive(Deserialize)]
pub(super) struct ResponsesRequest {
    model: Option<String>,
    input: Option<Input>,
    instructions: Option<String>,
    stream: Option<bool>,
    tools: Option<Vec<Tool>>,
    mock: Option<Knobs>,
}

/// `input`: a string, or a list of items.
#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Items(Vec<Item>),
}

/// An input item: a message (`type` absent or `message`), a `function_call`, a
/// `function_call_output`, or another the mock does not read.
#[derive(Deserialize)]
struct Item {
    #[serde(rename = "type")]
    kind: Option<String>,
    role: Option<String>,
    content: Option<Content>,
    /// A `function_call_output`'s output.
    output: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
}

impl Content {
    fn texts(&self) -> Vec<&str> {
        match self {
            Self::Text(text) => vec![text.as_str()],
            Self::Parts(parts) => parts.iter().filter_map(|p| p.text.as_deref()).collect(),
        }
    }
}

impl Item {
    fn is_message(&self) -> bool {
        self.kind.as_deref().is_none_or(|kind| kind == "message")
    }

    fn is_user_message(&self) -> bool {
        self.is_message() && self.role.as_deref() == Some("user")
    }

    /// The texts the model reads: a message's content, a function call's output.
    fn texts(&self) -> Vec<&str> {
        [&self.content, &self.output]
            .into_iter()
            .flatten()
            .flat_map(Content::texts)
            .collect()
    }
}

impl ResponsesRequest {
    /// The texts of the user's messages, oldest first.
    fn user_texts(&self) -> Vec<&str> {
        match &self.input {
            Some(Input::Text(text)) => vec![text.as_str()],
            Some(Input::Items(items)) => items
                .iter()
                .filter(|item| item.is_user_message())
                .flat_map(Item::texts)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Removes the request's `"mock"` knobs; without them, the knobs written in its prompt.
    pub fn take_knobs(&mut self) -> serde_json::Result<Option<Knobs>> {
        if let Some(knobs) = self.mock.take() {
            return Ok(Some(knobs));
        }
        Knobs::from_prompt(self.user_texts().into_iter())
    }
}

/// A generated Responses answer, before it is written out.
pub(super) struct Answer {
    id: String,
    created_at: u64,
    model: String,
    reply: String,
    pub stream: bool,
    tool_calls: Vec<ToolCall>,
    /// `usage` as Responses writes it; `null` without usage.
    usage: Value,
}

impl Answer {
    pub fn new(request: ResponsesRequest, plan: &Plan) -> Self {
        let items: &[Item] = match &request.input {
            Some(Input::Items(items)) => items,
            _ => &[],
        };
        let mut prompt_tokens: u64 = request.instructions.as_deref().map_or(0, words);
        prompt_tokens += match &request.input {
            Some(Input::Text(text)) => words(text),
            _ => items.iter().flat_map(Item::texts).map(words).sum(),
        };
        let prompt_tokens = prompt_tokens.max(1);
        let tools: Vec<&str> = request
            .tools
            .iter()
            .flatten()
            .filter(|tool| tool.kind.as_deref() == Some("function"))
            .filter_map(|tool| tool.name.as_deref())
            .collect();
        let tool_result = items
            .last()
            .filter(|item| item.kind.as_deref() == Some("function_call_output"))
            .map(|item| item.texts().join(" "));
        let (reply, tool_calls) = ToolCall::answer("call_mock_", &tools, plan, tool_result, || {
            let last_user = match &request.input {
                Some(Input::Text(text)) => text.clone(),
                Some(Input::Items(items)) => items
                    .iter()
                    .rev()
                    .find(|item| item.is_user_message())
                    .map(|item| item.texts().join(" "))
                    .unwrap_or_default(),
                None => String::new(),
            };
            format!("echo: {last_user}")
        });
        let output_tokens = plan.chunks as u64 + plan.reasoning_tokens;
        let usage = if plan.usage {
            json!({
                "input_tokens": prompt_tokens,
                "input_tokens_details": {"cached_tokens": plan.cached_tokens.min(prompt_tokens)},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
                "total_tokens": prompt_tokens + output_tokens,
            })
        } else {
            Value::Null
        };
        Self {
            id: new_id("resp_mock"),
            created_at: unix_now(),
            model: request.model.unwrap_or_else(|| MODEL.to_owned()),
            reply,
            stream: request.stream.unwrap_or(false),
            tool_calls,
            usage,
        }
    }

    fn message_id(&self) -> String {
        format!("msg_{}", &self.id[5..])
    }

    /// The output items, whole.
    fn output(&self) -> Vec<Value> {
        if self.tool_calls.is_empty() {
            return vec![self.message(&self.reply, "completed")];
        }
        self.tool_calls
            .iter()
            .map(|call| function_call(call, &call.arguments, "completed"))
            .collect()
    }

    fn message(&self, text: &str, status: &str) -> Value {
        let content = if status == "completed" {
            json!([{"type": "output_text", "text": text, "annotations": []}])
        } else {
            json!([])
        };
        json!({
            "type": "message",
            "id": self.message_id(),
            "status": status,
            "role": "assistant",
            "content": content,
        })
    }

    /// The `response` object, in progress (no output, no usage yet) or completed.
    fn response(&self, completed: bool) -> Value {
        let (status, output, usage) = if completed {
            ("completed", self.output(), self.usage.clone())
        } else {
            ("in_progress", Vec::new(), Value::Null)
        };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": null,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        })
    }

    /// The whole response.
    pub fn body(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&self.response(true))
    }

    /// The event stream: the text in `chunks` deltas, or each function call's arguments in
    /// `chunks` fragments; with `cut_after`, the connection breaks after that many deltas.
    pub fn script(&self, plan: &Plan) -> serde_json::Result<Script> {
        let mut events = Events::default();
        events.push(
            "response.created",
            json!({"response": self.response(false)}),
        );
        events.push(
            "response.in_progress",
            json!({"response": self.response(false)}),
        );
        let mut deltas = 0;
        let cut = |deltas: usize| plan.cut_after.is_some_and(|cut| deltas >= cut);
        if self.tool_calls.is_empty() {
            let item_id = self.message_id();
            events.push(
                "response.output_item.added",
                json!({"output_index": 0, "item": self.message("", "in_progress")}),
            );
            events.push(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                       "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
            let reply = padded(&self.reply, plan.chunks);
            for piece in split(&reply, plan.chunks) {
                if cut(deltas) {
                    return Ok(events.into_script(true));
                }
                events.push_delayed(
                    plan.chunk_delay,
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece}),
                );
                deltas += 1;
            }
            events.push(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": reply}),
            );
            events.push(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                       "part": {"type": "output_text", "text": reply, "annotations": []}}),
            );
            events.push(
                "response.output_item.done",
                json!({"output_index": 0, "item": self.message(&reply, "completed")}),
            );
        } else {
            for (index, call) in self.tool_calls.iter().enumerate() {
                let item_id = format!("fc_{}", call.id);
                events.push(
                    "response.output_item.added",
                    json!({"output_index": index, "item": function_call(call, "", "in_progress")}),
                );
                for piece in split(&call.arguments, plan.chunks) {
                    if cut(deltas) {
                        return Ok(events.into_script(true));
                    }
                    if piece.is_empty() {
                        continue;
                    }
                    events.push_delayed(
                        plan.chunk_delay,
                        "response.function_call_arguments.delta",
                        json!({"item_id": item_id, "output_index": index, "delta": piece}),
                    );
                    deltas += 1;
                }
                events.push(
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": index, "arguments": call.arguments}),
                );
                events.push(
                    "response.output_item.done",
                    json!({"output_index": index, "item": function_call(call, &call.arguments, "completed")}),
                );
            }
        }
        events.push(
            "response.completed",
            json!({"response": self.response(true)}),
        );
        Ok(events.into_script(false))
    }
}

/// A `function_call` output item with `arguments` so far.
fn function_call(call: &ToolCall, arguments: &str, status: &str) -> Value {
    json!({
        "type": "function_call",
        "id": format!("fc_{}", call.id),
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments,
        "status": status,
    })
}

/// The events of a stream being written, each numbered in order.
#[derive(Default)]
struct Events {
    frames: Vec<(Duration, Bytes)>,
}

impl Events {
    fn push(&mut self, kind: &str, data: Value) {
        self.push_delayed(Duration::ZERO, kind, data);
    }

    /// Adds the event `kind` with the fields of `data`, its `type` and `sequence_number`.
    fn push_delayed(&mut self, delay: Duration, kind: &str, mut data: Value) {
        if let Value::Object(fields) = &mut data {
            fields.insert("type".into(), Value::from(kind));
            fields.insert("sequence_number".into(), Value::from(self.frames.len()));
        }
        let frame = format!("event: {kind}\ndata: {data}\n\n");
        self.frames.push((delay, Bytes::from(frame)));
    }

    fn into_script(self, cut: bool) -> Script {
        let mut script = Script::with_capacity(self.frames.len());
        for (delay, frame) in self.frames {
            script.push(delay, frame);
        }
        if cut { script.cut() } else { script }
    }
}

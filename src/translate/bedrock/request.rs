//! Requests: OpenAI Chat Completions → Converse.

use std::borrow::Cow;

use bytes::Bytes;

use super::wire::{
    CachePointOut, ContentOut, ConverseRequest, Empty, ImageOut, ImageSourceOut,
    InferenceConfigOut, InputSchemaOut, MessageOut, NamedToolOut, ToolChoiceOut, ToolConfigOut,
    ToolOut, ToolResultContentOut, ToolResultOut, ToolSpecOut, ToolUseOut,
};
use crate::pricing::ModelLimits;
use crate::translate::json::{TextOr, arguments_object, data_url, to_bytes};
use crate::translate::openai::{ChatMessage, ChatRequest, ContentPart, ToolChoice};
use crate::translate::{ChatCall, TranslateError};

type Result<T> = std::result::Result<T, TranslateError>;

/// The schema of a tool declared without parameters: Converse requires one.
const NO_PARAMETERS: &str = r#"{"type":"object","properties":{}}"#;

/// Translates an OpenAI Chat Completions request into a Converse request body, shaped to the
/// model's `limits` (`maxTokens` lowered to its maximum). The model goes in the URL: see
/// [`super::endpoint_path`].
pub fn chat_request_to_converse(body: &[u8], limits: ModelLimits) -> Result<(Bytes, ChatCall)> {
    let request: ChatRequest<'_> =
        serde_json::from_slice(body).map_err(TranslateError::request("OpenAI Chat Completions"))?;
    if request.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::Unsupported(
            "n above 1 cannot be sent to this model's provider (AWS Bedrock answers one \
             message); send n = 1 or several requests."
                .to_owned(),
        ));
    }
    let mut system = Vec::new();
    let mut messages: Vec<MessageOut<'_>> = Vec::with_capacity(request.messages.len());
    for (at, message) in request.messages.iter().enumerate() {
        let (role, mut content) = match message.role.as_ref() {
            "system" | "developer" => {
                system.extend(blocks(message, at, false)?);
                continue;
            }
            "user" => ("user", blocks(message, at, true)?),
            "assistant" => ("assistant", assistant_blocks(message, at)?),
            "tool" => ("user", vec![tool_result(message, at)?]),
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "messages[{at}].role '{other}' cannot be sent to this model's provider \
                     (AWS Bedrock); use system, developer, user, assistant or tool."
                )));
            }
        };
        if content.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.append(&mut content),
            _ => messages.push(MessageOut { role, content }),
        }
    }
    let tool_config = tool_config(&request)?;
    let inference_config = InferenceConfigOut {
        max_tokens: request
            .max_output_tokens()
            .map(|max| limits.output_cap(max)),
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: request.stop_sequences(),
    };
    let call = ChatCall {
        stream: request.stream == Some(true),
        include_usage: request.include_usage(),
    };
    let out = ConverseRequest {
        messages,
        system,
        inference_config,
        tool_config,
        mock: request.mock,
    };
    Ok((to_bytes(&out), call))
}

fn cache_point() -> ContentOut<'static> {
    ContentOut::CachePoint(CachePointOut { kind: "default" })
}

/// The blocks of a system or user message: text, and (for a user) images.
fn blocks<'r>(
    message: &'r ChatMessage<'_>,
    at: usize,
    images: bool,
) -> Result<Vec<ContentOut<'r>>> {
    let mut out = Vec::new();
    match &message.content {
        None => {}
        Some(TextOr::Text(text)) if text.is_empty() => {}
        Some(TextOr::Text(text)) => out.push(ContentOut::Text(Cow::Borrowed(text.as_ref()))),
        Some(TextOr::List(parts)) => {
            for (index, part) in parts.iter().enumerate() {
                if let Some(block) = part_block(part, at, index, images)? {
                    out.push(block);
                    if part.cache_control.is_some() {
                        out.push(cache_point());
                    }
                }
            }
        }
    }
    if message.cache_control.is_some() && !out.is_empty() {
        out.push(cache_point());
    }
    Ok(out)
}

fn part_block<'r>(
    part: &'r ContentPart<'_>,
    at: usize,
    index: usize,
    images: bool,
) -> Result<Option<ContentOut<'r>>> {
    match part.kind.as_ref() {
        "text" => Ok(part
            .text
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| ContentOut::Text(Cow::Borrowed(text)))),
        "image_url" if images => {
            let url = part
                .image_url
                .as_ref()
                .map_or("", |image| image.url.as_ref());
            let Some((media_type, data)) = data_url(url) else {
                return Err(TranslateError::Unsupported(format!(
                    "messages[{at}].content[{index}] is an image by URL; AWS Bedrock takes \
                     images only as bytes: send it as a data: URL (base64)."
                )));
            };
            let format = match media_type {
                "image/png" => "png",
                "image/jpeg" | "image/jpg" => "jpeg",
                "image/gif" => "gif",
                "image/webp" => "webp",
                other => {
                    return Err(TranslateError::Unsupported(format!(
                        "messages[{at}].content[{index}] is an image of type '{other}'; AWS \
                         Bedrock takes png, jpeg, gif or webp."
                    )));
                }
            };
            Ok(Some(ContentOut::Image(ImageOut {
                format,
                source: ImageSourceOut { bytes: data },
            })))
        }
        other => Err(TranslateError::Unsupported(format!(
            "messages[{at}].content[{index}] is a '{other}' part, which this model's provider \
             (AWS Bedrock) does not take here; send text{}.",
            if images { " or images" } else { "" }
        ))),
    }
}

fn assistant_blocks<'r>(message: &'r ChatMessage<'_>, at: usize) -> Result<Vec<ContentOut<'r>>> {
    let mut out = blocks(message, at, false)?;
    for call in message.tool_calls.iter().flatten() {
        out.push(ContentOut::ToolUse(ToolUseOut {
            tool_use_id: Cow::Borrowed(&call.id),
            name: Cow::Borrowed(&call.function.name),
            input: arguments_object(&call.function.arguments),
        }));
    }
    Ok(out)
}

fn tool_result<'r>(message: &'r ChatMessage<'_>, at: usize) -> Result<ContentOut<'r>> {
    let id = message.tool_call_id.as_deref().ok_or_else(|| {
        TranslateError::InvalidRequest(format!(
            "messages[{at}] is a tool message without tool_call_id; name the call it answers."
        ))
    })?;
    let content = match &message.content {
        None => Vec::new(),
        Some(TextOr::Text(text)) => vec![ToolResultContentOut::Text(Cow::Borrowed(text))],
        Some(TextOr::List(parts)) => parts
            .iter()
            .filter_map(|part| part.text.as_deref())
            .map(|text| ToolResultContentOut::Text(Cow::Borrowed(text)))
            .collect(),
    };
    Ok(ContentOut::ToolResult(ToolResultOut {
        tool_use_id: Cow::Borrowed(id),
        content,
    }))
}

fn tool_config<'r>(request: &'r ChatRequest<'_>) -> Result<Option<ToolConfigOut<'r>>> {
    let Some(tools) = request.tools.as_ref().filter(|tools| !tools.is_empty()) else {
        return Ok(None);
    };
    let no_parameters: &'static serde_json::value::RawValue =
        serde_json::from_str(NO_PARAMETERS).map_err(TranslateError::request("tool schema"))?;
    let tools = tools
        .iter()
        .enumerate()
        .map(|(at, tool)| {
            let function = tool
                .function
                .as_ref()
                .filter(|_| tool.kind == "function")
                .ok_or_else(|| {
                    TranslateError::Unsupported(format!(
                        "tools[{at}] is of type '{}'; only function tools can be sent to this \
                         model's provider (AWS Bedrock).",
                        tool.kind
                    ))
                })?;
            Ok(ToolOut {
                tool_spec: ToolSpecOut {
                    name: &function.name,
                    description: function.description.as_deref(),
                    input_schema: InputSchemaOut {
                        json: function.parameters.unwrap_or(no_parameters),
                    },
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let tool_choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => match mode.as_ref() {
            "auto" => Some(ToolChoiceOut::Auto(Empty {})),
            "required" => Some(ToolChoiceOut::Any(Empty {})),
            "none" => None,
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "tool_choice '{other}' is unknown; use auto, required, none or a named \
                     function."
                )));
            }
        },
        Some(ToolChoice::Named(named)) => Some(ToolChoiceOut::Tool(NamedToolOut {
            name: &named.function.name,
        })),
    };
    Ok(Some(ToolConfigOut { tools, tool_choice }))
}

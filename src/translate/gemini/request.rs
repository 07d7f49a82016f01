//! Requests: OpenAI Chat Completions → Gemini `generateContent`.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::schema;
use super::wire::{
    BlobOut, ContentOut, FileDataOut, FunctionCallOut, FunctionCallingConfigOut,
    FunctionDeclarationOut, FunctionResponseOut, GenerateContentRequest, GenerationConfigOut,
    PartOut, SystemOut, ThinkingConfigOut, ToolConfigOut, ToolsOut,
};
use super::{GeminiCall, split_tool_call_id};
use crate::pricing::ModelLimits;
use crate::translate::json::{TextOr, arguments_object, data_url, to_bytes};
use crate::translate::openai::{ChatMessage, ChatRequest, ContentPart, ToolChoice};
use crate::translate::{ChatCall, TranslateError};

type Result<T> = std::result::Result<T, TranslateError>;

/// Thinking budgets sent as `thinkingConfig.thinkingBudget` for OpenAI's `reasoning_effort`.
fn thinking_budget(effort: &str) -> Option<u64> {
    match effort {
        "none" | "minimal" => Some(0),
        "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(24576),
        _ => None,
    }
}

/// Translates an OpenAI Chat Completions request into a Gemini `generateContent` request body,
/// shaped to the model's `limits`: `maxOutputTokens` lowered to its maximum, no
/// `thinkingConfig` for a model without thinking. The model goes in the URL, not the body: see
/// [`super::endpoint_path`].
pub fn chat_request_to_gemini(body: &[u8], limits: ModelLimits) -> Result<(Bytes, GeminiCall)> {
    let request: ChatRequest<'_> =
        serde_json::from_slice(body).map_err(TranslateError::request("OpenAI Chat Completions"))?;
    let mut system = Vec::new();
    let mut contents: Vec<ContentOut<'_>> = Vec::with_capacity(request.messages.len());
    for (at, message) in request.messages.iter().enumerate() {
        let (role, mut parts) = match message.role.as_ref() {
            "system" | "developer" => {
                system.extend(text_parts(message, at)?);
                continue;
            }
            "user" => ("user", user_parts(message, at)?),
            "assistant" => ("model", model_parts(message, at)?),
            "tool" => (
                "user",
                vec![function_response(message, at, &request.messages)?],
            ),
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "messages[{at}].role '{other}' cannot be sent to this model's provider \
                     (Gemini); use system, developer, user, assistant or tool."
                )));
            }
        };
        if parts.is_empty() {
            continue;
        }
        // Gemini wants turns to alternate, and the responses to parallel calls in one turn.
        match contents.last_mut() {
            Some(last) if last.role == role => last.parts.append(&mut parts),
            _ => contents.push(ContentOut { role, parts }),
        }
    }

    let tools = match &request.tools {
        Some(tools) if !tools.is_empty() => {
            let declarations = tools
                .iter()
                .enumerate()
                .map(|(at, tool)| {
                    let function = tool
                        .function
                        .as_ref()
                        .filter(|_| tool.kind == "function")
                        .ok_or_else(|| {
                            TranslateError::Unsupported(format!(
                                "tools[{at}] is of type '{}'; only function tools can be sent \
                                 to this model's provider (Gemini).",
                                tool.kind
                            ))
                        })?;
                    Ok(FunctionDeclarationOut {
                        name: Cow::Borrowed(&function.name),
                        description: function.description.as_deref().map(Cow::Borrowed),
                        parameters: match function.parameters {
                            Some(parameters) => schema::parameters(
                                parameters,
                                &format!("tools[{at}].function.parameters"),
                            )?,
                            None => None,
                        },
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Some([ToolsOut {
                function_declarations: declarations,
            }])
        }
        _ => None,
    };
    let tool_config = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => {
            let mode = match mode.as_ref() {
                "auto" => "AUTO",
                "required" => "ANY",
                "none" => "NONE",
                other => {
                    return Err(TranslateError::InvalidRequest(format!(
                        "tool_choice '{other}' is unknown; use auto, required, none or a \
                         named function."
                    )));
                }
            };
            Some(ToolConfigOut {
                function_calling_config: FunctionCallingConfigOut {
                    mode,
                    allowed_function_names: None,
                },
            })
        }
        Some(ToolChoice::Named(named)) => Some(ToolConfigOut {
            function_calling_config: FunctionCallingConfigOut {
                mode: "ANY",
                allowed_function_names: Some([Cow::Borrowed(&named.function.name)]),
            },
        }),
    };
    let (response_mime_type, response_schema) = match &request.response_format {
        Some(format) if format.kind == "json_schema" => (
            Some("application/json"),
            format
                .json_schema
                .as_ref()
                .and_then(|json| json.schema)
                .map(|schema| schema::response_schema(schema, "response_format.json_schema.schema"))
                .transpose()?,
        ),
        Some(format) if format.kind == "json_object" => (Some("application/json"), None),
        _ => (None, None),
    };
    let generation_config = GenerationConfigOut {
        temperature: request.temperature,
        top_p: request.top_p,
        max_output_tokens: request
            .max_output_tokens()
            .map(|max| limits.output_cap(max)),
        stop_sequences: request.stop_sequences(),
        candidate_count: request.n.filter(|n| *n != 1),
        presence_penalty: request.presence_penalty,
        frequency_penalty: request.frequency_penalty,
        seed: request.seed,
        response_mime_type,
        response_schema,
        thinking_config: request
            .reasoning_effort
            .as_deref()
            .filter(|_| limits.takes_reasoning())
            .and_then(thinking_budget)
            .map(|budget| ThinkingConfigOut {
                thinking_budget: budget,
            }),
    };
    let call = ChatCall {
        stream: request.stream == Some(true),
        include_usage: request.include_usage(),
    };
    let out = GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(SystemOut { parts: system }),
        tools,
        tool_config,
        generation_config,
        mock: request.mock,
    };
    Ok((to_bytes(&out), call))
}

fn text_parts<'r>(message: &'r ChatMessage<'_>, at: usize) -> Result<Vec<PartOut<'r>>> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(TextOr::Text(text)) if text.is_empty() => Ok(Vec::new()),
        Some(TextOr::Text(text)) => Ok(vec![PartOut::text(Cow::Borrowed(text.as_ref()))]),
        Some(TextOr::List(parts)) => parts
            .iter()
            .enumerate()
            .filter(|(_, part)| part.text.as_deref() != Some(""))
            .map(|(index, part)| match part.kind.as_ref() {
                "text" => Ok(PartOut::text(Cow::Borrowed(
                    part.text.as_deref().unwrap_or(""),
                ))),
                other => Err(TranslateError::InvalidRequest(format!(
                    "messages[{at}].content[{index}] is a '{other}' part; {} messages take only \
                     text.",
                    message.role
                ))),
            })
            .collect(),
    }
}

fn user_parts<'r>(message: &'r ChatMessage<'_>, at: usize) -> Result<Vec<PartOut<'r>>> {
    let parts = match &message.content {
        Some(TextOr::List(parts)) => parts,
        _ => return text_parts(message, at),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let path = || format!("messages[{at}].content[{index}]");
        match part.kind.as_ref() {
            "text" if part.text.as_deref().unwrap_or("").is_empty() => {}
            "text" => out.push(PartOut::text(Cow::Borrowed(
                part.text.as_deref().unwrap_or(""),
            ))),
            "image_url" => out.push(image_part(part, &path)?),
            "file" => {
                let data = part
                    .file
                    .as_ref()
                    .and_then(|file| file.file_data.as_deref())
                    .and_then(data_url);
                let Some((mime_type, data)) = data else {
                    return Err(TranslateError::Unsupported(format!(
                        "{} must carry 'file.file_data' as a base64 data URL; uploaded file ids \
                         cannot be sent to this model's provider (Gemini).",
                        path()
                    )));
                };
                out.push(PartOut {
                    inline_data: Some(BlobOut {
                        mime_type: Cow::Borrowed(mime_type),
                        data: Cow::Borrowed(data),
                    }),
                    ..PartOut::default()
                });
            }
            "input_audio" => {
                let audio = part.input_audio.as_ref().ok_or_else(|| {
                    TranslateError::InvalidRequest(format!("{} has no 'input_audio'.", path()))
                })?;
                out.push(PartOut {
                    inline_data: Some(BlobOut {
                        mime_type: Cow::Owned(format!("audio/{}", audio.format)),
                        data: Cow::Borrowed(&audio.data),
                    }),
                    ..PartOut::default()
                });
            }
            other => {
                return Err(TranslateError::Unsupported(format!(
                    "{} is a '{other}' part, which this model's provider (Gemini) cannot take; \
                     use text, image_url, input_audio or file.",
                    path()
                )));
            }
        }
    }
    Ok(out)
}

/// A data URL becomes inline data; a web URL becomes `fileData` with a media type guessed from
/// its extension (JPEG when it has none Gemini would know).
fn image_part<'r>(part: &'r ContentPart<'_>, path: &dyn Fn() -> String) -> Result<PartOut<'r>> {
    let url = part
        .image_url
        .as_ref()
        .map(|image| image.url.as_ref())
        .ok_or_else(|| {
            TranslateError::InvalidRequest(format!("{} has no 'image_url.url'.", path()))
        })?;
    if let Some((mime_type, data)) = data_url(url) {
        return Ok(PartOut {
            inline_data: Some(BlobOut {
                mime_type: Cow::Borrowed(mime_type),
                data: Cow::Borrowed(data),
            }),
            ..PartOut::default()
        });
    }
    if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://")) {
        return Err(TranslateError::Unsupported(format!(
            "{}.image_url.url must be an http(s) or gs:// URL or a base64 data URL.",
            path()
        )));
    }
    Ok(PartOut {
        file_data: Some(FileDataOut {
            mime_type: mime_type_of(url),
            file_uri: Cow::Borrowed(url),
        }),
        ..PartOut::default()
    })
}

fn mime_type_of(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => "image/jpeg",
    }
}

fn model_parts<'r>(message: &'r ChatMessage<'_>, at: usize) -> Result<Vec<PartOut<'r>>> {
    let mut parts = match &message.content {
        Some(TextOr::List(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(index, part)| {
                let text = match part.kind.as_ref() {
                    "text" => part.text.as_deref(),
                    "refusal" => part.refusal.as_deref(),
                    other => {
                        return Some(Err(TranslateError::InvalidRequest(format!(
                            "messages[{at}].content[{index}] is a '{other}' part; assistant \
                             messages take only text and refusal parts."
                        ))));
                    }
                };
                text.filter(|text| !text.is_empty())
                    .map(|text| Ok(PartOut::text(Cow::Borrowed(text))))
            })
            .collect::<Result<Vec<_>>>()?,
        _ => text_parts(message, at)?,
    };
    for call in message.tool_calls.iter().flatten() {
        let (_, signature) = split_tool_call_id(&call.id);
        parts.push(PartOut {
            function_call: Some(FunctionCallOut {
                name: Cow::Borrowed(&call.function.name),
                args: arguments_object(&call.function.arguments),
            }),
            thought_signature: signature,
            ..PartOut::default()
        });
    }
    Ok(parts)
}

/// A tool message as a `functionResponse`, named after the assistant tool call it answers.
/// Content that is a JSON object is the response itself; any other content becomes
/// `{"content": "<the text>"}` (Gemini wants an object).
fn function_response<'r>(
    message: &'r ChatMessage<'_>,
    at: usize,
    history: &'r [ChatMessage<'_>],
) -> Result<PartOut<'r>> {
    let id = message.tool_call_id.as_deref().ok_or_else(|| {
        TranslateError::InvalidRequest(format!(
            "messages[{at}] is a tool message without 'tool_call_id'."
        ))
    })?;
    let name = history[..at]
        .iter()
        .rev()
        .flat_map(|earlier| earlier.tool_calls.iter().flatten())
        .find(|call| call.id == id)
        .map(|call| call.function.name.as_ref())
        .ok_or_else(|| {
            TranslateError::InvalidRequest(format!(
                "messages[{at}] answers tool call '{id}', but no earlier assistant message made \
                 a tool call with that id; Gemini needs the function's name."
            ))
        })?;
    let text = match &message.content {
        None => Cow::Borrowed(""),
        Some(TextOr::Text(text)) => Cow::Borrowed(text.as_ref()),
        Some(TextOr::List(parts)) => Cow::Owned(
            parts
                .iter()
                .filter_map(|part| part.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    };
    let trimmed = text.trim();
    let response = if trimmed.starts_with('{') {
        serde_json::from_str::<Box<RawValue>>(trimmed).ok()
    } else {
        None
    };
    let response = match response {
        Some(response) => response,
        None => {
            #[derive(serde::Serialize)]
            struct Wrapped<'t> {
                content: &'t str,
            }
            serde_json::value::to_raw_value(&Wrapped { content: &text })
                .map_err(|error| TranslateError::InvalidRequest(error.to_string()))?
        }
    };
    Ok(PartOut {
        function_response: Some(FunctionResponseOut {
            name: Cow::Borrowed(name),
            response,
        }),
        ..PartOut::default()
    })
}

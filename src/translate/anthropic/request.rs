//! Requests: Anthropic Messages → OpenAI Chat Completions and back.

use std::borrow::Cow;

use bytes::Bytes;

use super::wire::{
    Block, BlockOut, Message, MessageOut, MessagesRequest, MessagesRequestOut, MetadataOut,
    SchemaOut, SourceOut, ThinkingOut, Tool, ToolChoice, ToolChoiceOut, ToolOut,
};
use crate::pricing::ModelLimits;
use crate::translate::json::{TextOr, anthropic_tool_id, arguments_object, data_url, to_bytes};
use crate::translate::openai::{
    ChatMessage, ChatMessageOut, ChatRequest, ChatRequestOut, ChatToolOut, ContentOut, ContentPart,
    FileOut, FunctionCallOut, FunctionDefinitionOut, NamedFunctionOut, PartOut, StreamOptionsOut,
    ToolCallOut, ToolChoiceOut as ChatToolChoiceOut, UrlOut,
};
use crate::translate::{ChatCall, TranslateError};

const MESSAGES_API: &str = "Anthropic Messages";
const CHAT_API: &str = "OpenAI Chat Completions";

/// `max_tokens` sent to Anthropic (which requires it) when the OpenAI request sets no limit.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Anthropic's smallest thinking budget.
pub(crate) const MIN_THINKING_BUDGET: u64 = 1024;

/// Thinking budgets sent to Anthropic for OpenAI's `reasoning_effort`, and the thresholds that
/// map a budget back to an effort: below `MEDIUM` is `low`, below `HIGH` is `medium`.
const LOW_BUDGET: u64 = MIN_THINKING_BUDGET;
const MEDIUM_BUDGET: u64 = 4096;
const HIGH_BUDGET: u64 = 16384;

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates an Anthropic Messages request into an OpenAI Chat Completions request for
/// `upstream_model`, shaped to its `limits`: `max_tokens` lowered to its maximum, thinking left
/// out for a model without reasoning. Fields Anthropic has and OpenAI lacks are left out (see
/// the module docs).
pub fn messages_request_to_chat(
    body: &[u8],
    upstream_model: &str,
    limits: ModelLimits,
) -> Result<Bytes> {
    let request: MessagesRequest<'_> =
        serde_json::from_slice(body).map_err(TranslateError::request(MESSAGES_API))?;
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        let text = system_text(system, "system")?;
        if !text.is_empty() {
            messages.push(chat_message("system", Some(ContentOut::Text(text))));
        }
    }
    for (at, message) in request.messages.iter().enumerate() {
        match message.role.as_ref() {
            "user" => user_to_chat(message, at, &mut messages)?,
            "assistant" => messages.push(assistant_to_chat(message, at)?),
            // Claude Code sends a `system` message inside `messages` when the model's name is
            // not a Claude one (its list of agent types). Chat takes system messages anywhere,
            // so it stays in place; Gemini's translation gathers it into the system instruction.
            "system" => {
                let text = system_text(&message.content, &format!("messages[{at}].content"))?;
                if !text.is_empty() {
                    messages.push(chat_message("system", Some(ContentOut::Text(text))));
                }
            }
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "messages[{at}].role is '{other}'; the Messages API allows only 'user', \
                     'assistant' and 'system'."
                )));
            }
        }
    }
    if request.context_management.is_some() {
        tracing::debug!("left out 'context_management': the upstream's API has no context editing");
    }
    let tools = match &request.tools {
        Some(tools) if !tools.is_empty() => Some(
            tools
                .iter()
                .enumerate()
                .map(|(at, tool)| tool_to_chat(tool, at))
                .collect::<Result<Vec<_>>>()?,
        ),
        _ => None,
    };
    let (tool_choice, parallel_tool_calls) = match &request.tool_choice {
        Some(choice) => tool_choice_to_chat(choice)?,
        None => (None, None),
    };
    let stream = request.stream == Some(true);
    let chat = ChatRequestOut {
        model: upstream_model,
        messages,
        max_completion_tokens: request.max_tokens.map(|max| limits.output_cap(max)),
        temperature: request.temperature,
        top_p: request.top_p,
        stop: request
            .stop_sequences
            .as_ref()
            .filter(|stops| !stops.is_empty())
            .map(|stops| stops.iter().map(|s| Cow::Borrowed(s.as_ref())).collect()),
        stream: stream.then_some(true),
        stream_options: stream.then_some(StreamOptionsOut {
            include_usage: true,
        }),
        tools,
        tool_choice,
        parallel_tool_calls,
        user: request
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.user_id.as_deref())
            .map(openai_user),
        reasoning_effort: request
            .thinking
            .as_ref()
            .filter(|_| limits.takes_reasoning())
            .and_then(|thinking| {
                (thinking.kind == "enabled" || thinking.kind == "adaptive").then(|| {
                    request
                        .output_config
                        .as_ref()
                        .and_then(|config| config.effort.as_deref())
                        .and_then(effort_named)
                        .unwrap_or_else(|| effort_for_budget(thinking.budget_tokens))
                })
            }),
        response_format: None,
        prompt_cache_key: None,
        mock: request.mock,
    };
    Ok(to_bytes(&chat))
}

/// The longest `user` OpenAI accepts.
const OPENAI_USER_MAX: usize = 64;

/// OpenAI's `user` for an Anthropic `metadata.user_id`: as it is when it fits OpenAI's 64
/// characters, else its SHA-256 in hex (64 characters). Claude Code's ids are about 150
/// characters; the hash is stable, so the upstream still tells users apart, and names no one.
fn openai_user(user_id: &str) -> Cow<'_, str> {
    if user_id.chars().count() <= OPENAI_USER_MAX {
        return Cow::Borrowed(user_id);
    }
    use sha2::Digest;
    Cow::Owned(hex::encode(sha2::Sha256::digest(user_id.as_bytes())))
}

/// OpenAI's `reasoning_effort` for Anthropic's `output_config.effort`, when it has one.
fn effort_named(effort: &str) -> Option<&'static str> {
    match effort {
        "low" => Some("low"),
        "medium" => Some("medium"),
        "high" | "xhigh" | "max" => Some("high"),
        _ => None,
    }
}

/// OpenAI's `reasoning_effort` for an Anthropic thinking budget (see the constants).
fn effort_for_budget(budget: Option<u64>) -> &'static str {
    match budget {
        Some(budget) if budget < MEDIUM_BUDGET => "low",
        Some(budget) if budget < HIGH_BUDGET => "medium",
        Some(_) => "high",
        None => "medium",
    }
}

fn chat_message<'a>(role: &'static str, content: Option<ContentOut<'a>>) -> ChatMessageOut<'a> {
    ChatMessageOut {
        role,
        content,
        tool_calls: None,
        tool_call_id: None,
    }
}

/// A system prompt (at `path` in the request) as one string; text blocks are joined with a
/// newline.
fn system_text<'r>(system: &'r TextOr<'_, Block<'_>>, path: &str) -> Result<Cow<'r, str>> {
    match system {
        TextOr::Text(text) => Ok(Cow::Borrowed(text)),
        TextOr::List(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (at, block) in blocks.iter().enumerate() {
                if block.kind != "text" {
                    return Err(TranslateError::InvalidRequest(format!(
                        "{path}[{at}] is a '{}' block; a system prompt takes only text blocks.",
                        block.kind
                    )));
                }
                texts.push(block.text.as_deref().unwrap_or(""));
            }
            Ok(join(&texts, "\n"))
        }
    }
}

fn join<'r>(texts: &[&'r str], separator: &str) -> Cow<'r, str> {
    match texts {
        [] => Cow::Borrowed(""),
        [one] => Cow::Borrowed(one),
        many => Cow::Owned(many.join(separator)),
    }
}

/// A user message: its `tool_result` blocks become `tool` messages (OpenAI wants them right
/// after the assistant's tool calls), the rest one user message after them. Images inside tool
/// results go into that user message, since OpenAI's tool messages carry text only.
fn user_to_chat<'r>(
    message: &'r Message<'_>,
    at: usize,
    out: &mut Vec<ChatMessageOut<'r>>,
) -> Result<()> {
    let blocks = match &message.content {
        TextOr::Text(text) => {
            out.push(chat_message(
                "user",
                Some(ContentOut::Text(Cow::Borrowed(text))),
            ));
            return Ok(());
        }
        TextOr::List(blocks) => blocks,
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        let path = || format!("messages[{at}].content[{index}]");
        match block.kind.as_ref() {
            "text" => parts.push(PartOut::Text {
                text: Cow::Borrowed(block.text.as_deref().unwrap_or("")),
            }),
            "image" => parts.push(image_to_part(block, &path)?),
            "document" => parts.push(document_to_part(block, &path)?),
            "tool_result" => {
                let id = block.tool_use_id.as_deref().ok_or_else(|| {
                    TranslateError::InvalidRequest(format!("{} has no 'tool_use_id'.", path()))
                })?;
                let text = tool_result_to_chat(block, &path, &mut parts)?;
                out.push(ChatMessageOut {
                    role: "tool",
                    content: Some(ContentOut::Text(text)),
                    tool_calls: None,
                    tool_call_id: Some(Cow::Borrowed(id)),
                });
            }
            // Thinking belongs to assistant turns; OpenAI cannot take it back either way.
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(other, &path())),
        }
    }
    if !parts.is_empty() {
        out.push(chat_message("user", Some(parts_content(parts))));
    }
    Ok(())
}

/// A lone text part becomes plain string content, which every OpenAI-compatible server reads.
fn parts_content(mut parts: Vec<PartOut<'_>>) -> ContentOut<'_> {
    if parts.len() == 1
        && let Some(PartOut::Text { text }) = parts.pop()
    {
        return ContentOut::Text(text);
    }
    ContentOut::Parts(parts)
}

/// The text of a `tool_result` (text blocks joined with a newline, `Error: ` in front when
/// `is_error`); its images are added to `images`.
fn tool_result_to_chat<'r>(
    block: &'r Block<'_>,
    path: &dyn Fn() -> String,
    images: &mut Vec<PartOut<'r>>,
) -> Result<Cow<'r, str>> {
    let text = match &block.content {
        None => Cow::Borrowed(""),
        Some(TextOr::Text(text)) => Cow::Borrowed(text.as_ref()),
        Some(TextOr::List(inner)) => {
            let mut texts = Vec::with_capacity(inner.len());
            for (index, part) in inner.iter().enumerate() {
                let path = || format!("{}.content[{index}]", path());
                match part.kind.as_ref() {
                    "text" => texts.push(part.text.as_deref().unwrap_or("")),
                    "image" => images.push(image_to_part(part, &path)?),
                    other => return Err(unsupported_block(other, &path())),
                }
            }
            join(&texts, "\n")
        }
    };
    if block.is_error == Some(true) {
        return Ok(Cow::Owned(if text.is_empty() {
            "Error".to_owned()
        } else {
            format!("Error: {text}")
        }));
    }
    Ok(text)
}

fn unsupported_block(kind: &str, path: &str) -> TranslateError {
    TranslateError::Unsupported(format!(
        "{path} is a '{kind}' block, which this model's provider (OpenAI-compatible) cannot \
         take. Supported blocks: text, image, document (PDF or text), tool_use, tool_result, \
         thinking."
    ))
}

fn image_to_part<'r>(block: &'r Block<'_>, path: &dyn Fn() -> String) -> Result<PartOut<'r>> {
    let url = match &block.source {
        Some(source) if source.kind == "base64" => {
            let (Some(media_type), Some(data)) = (&source.media_type, &source.data) else {
                return Err(TranslateError::InvalidRequest(format!(
                    "{}.source needs 'media_type' and 'data'.",
                    path()
                )));
            };
            Cow::Owned(format!("data:{media_type};base64,{data}"))
        }
        Some(source) if source.kind == "url" => match &source.url {
            Some(url) => Cow::Borrowed(url.as_ref()),
            None => {
                return Err(TranslateError::InvalidRequest(format!(
                    "{}.source needs 'url'.",
                    path()
                )));
            }
        },
        Some(source) => {
            return Err(TranslateError::Unsupported(format!(
                "{} has an image source of type '{}'; only 'base64' and 'url' sources can be \
                 sent to this model's provider.",
                path(),
                source.kind
            )));
        }
        None => {
            return Err(TranslateError::InvalidRequest(format!(
                "{} has no 'source'.",
                path()
            )));
        }
    };
    Ok(PartOut::ImageUrl {
        image_url: UrlOut { url },
    })
}

/// A PDF (base64) becomes an OpenAI `file` part; a plain-text document a text part.
fn document_to_part<'r>(block: &'r Block<'_>, path: &dyn Fn() -> String) -> Result<PartOut<'r>> {
    let source = block
        .source
        .as_ref()
        .ok_or_else(|| TranslateError::InvalidRequest(format!("{} has no 'source'.", path())))?;
    match (source.kind.as_ref(), &source.data) {
        ("base64", Some(data)) => {
            let media_type = source.media_type.as_deref().unwrap_or("application/pdf");
            let filename = block
                .title
                .as_deref()
                .map_or(Cow::Borrowed("document.pdf"), Cow::Borrowed);
            Ok(PartOut::File {
                file: FileOut {
                    filename,
                    file_data: format!("data:{media_type};base64,{data}"),
                },
            })
        }
        ("text", Some(data)) => Ok(PartOut::Text {
            text: Cow::Borrowed(data),
        }),
        (kind, _) => Err(TranslateError::Unsupported(format!(
            "{} is a document with a '{kind}' source; only base64 (PDF) and text documents can \
             be sent to this model's provider.",
            path()
        ))),
    }
}

/// An assistant message: text blocks concatenated (they are one continuous answer, split only
/// by citations), `tool_use` blocks as `tool_calls`, thinking left out.
fn assistant_to_chat<'r>(message: &'r Message<'_>, at: usize) -> Result<ChatMessageOut<'r>> {
    let blocks = match &message.content {
        TextOr::Text(text) => {
            return Ok(chat_message(
                "assistant",
                Some(ContentOut::Text(Cow::Borrowed(text))),
            ));
        }
        TextOr::List(blocks) => blocks,
    };
    let mut texts = Vec::with_capacity(1);
    let mut calls = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        match block.kind.as_ref() {
            "text" => texts.push(block.text.as_deref().unwrap_or("")),
            "tool_use" => {
                let (Some(id), Some(name)) = (&block.id, &block.name) else {
                    return Err(TranslateError::InvalidRequest(format!(
                        "messages[{at}].content[{index}] is a tool_use block without 'id' or \
                         'name'."
                    )));
                };
                calls.push(ToolCallOut {
                    id: Cow::Borrowed(id),
                    kind: "function",
                    function: FunctionCallOut {
                        name: Cow::Borrowed(name),
                        arguments: Cow::Borrowed(block.input.map_or("{}", |input| input.get())),
                    },
                });
            }
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(unsupported_block(
                    other,
                    &format!("messages[{at}].content[{index}]"),
                ));
            }
        }
    }
    let text = join(&texts, "");
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(ContentOut::Text(text))
    };
    Ok(ChatMessageOut {
        role: "assistant",
        content,
        tool_calls: (!calls.is_empty()).then_some(calls),
        tool_call_id: None,
    })
}

fn tool_to_chat<'r>(tool: &'r Tool<'_>, at: usize) -> Result<ChatToolOut<'r>> {
    let Some(schema) = tool.input_schema else {
        let kind = tool.kind.as_deref().unwrap_or("unknown");
        return Err(TranslateError::Unsupported(format!(
            "tools[{at}] ('{}') is an Anthropic server tool of type '{kind}'; only tools with an \
             'input_schema' can be sent to this model's provider.",
            tool.name
        )));
    };
    Ok(ChatToolOut {
        kind: "function",
        function: FunctionDefinitionOut {
            name: Cow::Borrowed(&tool.name),
            description: tool.description.as_deref().map(Cow::Borrowed),
            parameters: Some(schema),
            strict: None,
        },
    })
}

type ChatToolChoice<'r> = (Option<ChatToolChoiceOut<'r>>, Option<bool>);

/// Anthropic's `tool_choice` as OpenAI's `tool_choice` and `parallel_tool_calls`.
fn tool_choice_to_chat<'r>(choice: &'r ToolChoice<'_>) -> Result<ChatToolChoice<'r>> {
    let mapped = match choice.kind.as_ref() {
        "auto" => ChatToolChoiceOut::Mode("auto"),
        "any" => ChatToolChoiceOut::Mode("required"),
        "none" => ChatToolChoiceOut::Mode("none"),
        "tool" => {
            let name = choice.name.as_deref().ok_or_else(|| {
                TranslateError::InvalidRequest(
                    "tool_choice of type 'tool' needs the tool's 'name'.".to_owned(),
                )
            })?;
            ChatToolChoiceOut::Named {
                kind: "function",
                function: NamedFunctionOut {
                    name: Cow::Borrowed(name),
                },
            }
        }
        other => {
            return Err(TranslateError::InvalidRequest(format!(
                "tool_choice type '{other}' is unknown; use auto, any, tool or none."
            )));
        }
    };
    let parallel = choice.disable_parallel_tool_use.map(|disable| !disable);
    Ok((Some(mapped), parallel))
}

// ---------------------------------------------------------------------------------------------
// OpenAI Chat → Anthropic Messages.

/// Translates an OpenAI Chat Completions request into an Anthropic Messages request for
/// `upstream_model`, shaped to its `limits` (`max_tokens` lowered to its maximum, the thinking
/// budget fitted under it, no thinking for a model without reasoning), with what the answer's
/// translator needs to know (see the module docs for every mapping).
pub fn chat_request_to_messages(
    body: &[u8],
    upstream_model: &str,
    limits: ModelLimits,
) -> Result<(Bytes, ChatCall)> {
    let request: ChatRequest<'_> =
        serde_json::from_slice(body).map_err(TranslateError::request(CHAT_API))?;
    if request.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::Unsupported(
            "This model's provider (Anthropic) returns one choice per request: 'n' must be 1."
                .to_owned(),
        ));
    }
    let mut system = Vec::new();
    let mut messages: Vec<MessageOut<'_>> = Vec::with_capacity(request.messages.len());
    for (at, message) in request.messages.iter().enumerate() {
        let (role, mut blocks) = match message.role.as_ref() {
            "system" | "developer" => {
                let mut blocks = text_blocks(message, at)?;
                if let (Some(control), Some(last)) = (message.cache_control, blocks.last_mut()) {
                    last.set_cache_control(control);
                }
                system.append(&mut blocks);
                continue;
            }
            "user" => ("user", user_blocks(message, at)?),
            "assistant" => ("assistant", assistant_blocks(message, at)?),
            "tool" => ("user", vec![tool_result_block(message, at)?]),
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "messages[{at}].role '{other}' cannot be sent to this model's provider \
                     (Anthropic); use system, developer, user, assistant or tool."
                )));
            }
        };
        if let (Some(control), Some(last)) = (message.cache_control, blocks.last_mut()) {
            last.set_cache_control(control);
        }
        if blocks.is_empty() {
            continue;
        }
        // Anthropic wants user and assistant turns to alternate: merge neighbours.
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.append(&mut blocks),
            _ => messages.push(MessageOut {
                role,
                content: blocks,
            }),
        }
    }
    if let Some(format) = &request.response_format {
        let instruction = match (format.kind.as_ref(), &format.json_schema) {
            ("json_schema", Some(schema)) => Some(match schema.schema {
                Some(schema) => format!(
                    "Respond only with JSON that conforms to this JSON schema, with no other \
                     text and no code fences:\n{}",
                    schema.get()
                ),
                None => JSON_ONLY.to_owned(),
            }),
            ("json_object" | "json_schema", _) => Some(JSON_ONLY.to_owned()),
            _ => None,
        };
        if let Some(instruction) = instruction {
            system.push(BlockOut::text(instruction));
        }
    }

    let max_tokens = limits.output_cap(request.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS));
    let tool_choice = chat_tool_choice(&request)?;
    let forces_tool = tool_choice
        .as_ref()
        .is_some_and(|choice| matches!(choice.kind, "any" | "tool"));
    let thinking = match request.reasoning_effort.as_deref() {
        // Anthropic refuses thinking together with a forced tool choice.
        _ if forces_tool => None,
        _ if !limits.takes_reasoning() => None,
        Some("low" | "minimal") => thinking_budget(LOW_BUDGET, max_tokens),
        Some("medium") => thinking_budget(MEDIUM_BUDGET, max_tokens),
        Some("high") => thinking_budget(HIGH_BUDGET, max_tokens),
        _ => None,
    };
    let tools = match &request.tools {
        Some(tools) if !tools.is_empty() => Some(
            tools
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
                                 to this model's provider (Anthropic).",
                                tool.kind
                            ))
                        })?;
                    Ok(ToolOut {
                        name: Cow::Borrowed(&function.name),
                        description: function.description.as_deref().map(Cow::Borrowed),
                        input_schema: function.parameters.map_or(
                            SchemaOut::Empty {
                                kind: "object",
                                properties: super::wire::EmptyObject {},
                            },
                            SchemaOut::Given,
                        ),
                        cache_control: tool.cache_control,
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        _ => None,
    };
    let call = ChatCall {
        stream: request.stream == Some(true),
        include_usage: request.include_usage(),
    };
    let out = MessagesRequestOut {
        model: upstream_model,
        max_tokens,
        system,
        messages,
        // Anthropic's range is 0 to 1 (OpenAI's 0 to 2), and it rejects sampling settings
        // while thinking.
        temperature: request
            .temperature
            .map(|temperature| temperature.clamp(0.0, 1.0))
            .filter(|_| thinking.is_none()),
        top_p: request.top_p.filter(|_| thinking.is_none()),
        stop_sequences: request.stop_sequences(),
        stream: call.stream.then_some(true),
        metadata: request.user.as_deref().map(|user| MetadataOut {
            user_id: Cow::Borrowed(user),
        }),
        tools,
        tool_choice,
        thinking,
        mock: request.mock,
    };
    Ok((to_bytes(&out), call))
}

const JSON_ONLY: &str =
    "Respond only with a valid JSON object, with no other text and no code fences.";

/// Thinking with `budget` tokens, lowered to fit under `max_tokens` (which counts thinking);
/// none when less than Anthropic's minimum of 1024 fits.
fn thinking_budget(budget: u64, max_tokens: u64) -> Option<ThinkingOut> {
    let budget = budget.min(max_tokens.saturating_sub(1));
    (budget >= MIN_THINKING_BUDGET).then_some(ThinkingOut {
        kind: "enabled",
        budget_tokens: budget,
    })
}

fn chat_tool_choice<'r>(request: &'r ChatRequest<'_>) -> Result<Option<ToolChoiceOut<'r>>> {
    use crate::translate::openai::ToolChoice;
    let disable_parallel = request.parallel_tool_calls.map(|parallel| !parallel);
    let choice = match &request.tool_choice {
        None => {
            return Ok(disable_parallel
                .filter(|disable| *disable)
                .map(|_| ToolChoiceOut {
                    kind: "auto",
                    name: None,
                    disable_parallel_tool_use: Some(true),
                }));
        }
        Some(ToolChoice::Mode(mode)) => match mode.as_ref() {
            "auto" => ToolChoiceOut {
                kind: "auto",
                name: None,
                disable_parallel_tool_use: disable_parallel,
            },
            "required" => ToolChoiceOut {
                kind: "any",
                name: None,
                disable_parallel_tool_use: disable_parallel,
            },
            "none" => ToolChoiceOut {
                kind: "none",
                name: None,
                disable_parallel_tool_use: None,
            },
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "tool_choice '{other}' is unknown; use auto, required, none or \
                     {{\"type\": \"function\", \"function\": {{\"name\": …}}}}."
                )));
            }
        },
        Some(ToolChoice::Named(named)) => ToolChoiceOut {
            kind: "tool",
            name: Some(Cow::Borrowed(&named.function.name)),
            disable_parallel_tool_use: disable_parallel,
        },
    };
    Ok(Some(choice))
}

/// The text parts of a system or developer message.
fn text_blocks<'r>(message: &'r ChatMessage<'_>, at: usize) -> Result<Vec<BlockOut<'r>>> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(TextOr::Text(text)) if text.is_empty() => Ok(Vec::new()),
        Some(TextOr::Text(text)) => Ok(vec![BlockOut::text(Cow::Borrowed(text.as_ref()))]),
        Some(TextOr::List(parts)) => parts
            .iter()
            .enumerate()
            .filter(|(_, part)| part.text.as_deref() != Some(""))
            .map(|(index, part)| match part.kind.as_ref() {
                "text" => Ok(text_part(part)),
                other => Err(TranslateError::InvalidRequest(format!(
                    "messages[{at}].content[{index}] is a '{other}' part; {} messages take only \
                     text.",
                    message.role
                ))),
            })
            .collect(),
    }
}

fn text_part<'r>(part: &'r ContentPart<'_>) -> BlockOut<'r> {
    BlockOut::Text {
        text: Cow::Borrowed(part.text.as_deref().unwrap_or("")),
        cache_control: part.cache_control,
    }
}

fn user_blocks<'r>(message: &'r ChatMessage<'_>, at: usize) -> Result<Vec<BlockOut<'r>>> {
    let parts = match &message.content {
        None => return Ok(Vec::new()),
        Some(TextOr::Text(text)) if text.is_empty() => return Ok(Vec::new()),
        Some(TextOr::Text(text)) => return Ok(vec![BlockOut::text(Cow::Borrowed(text.as_ref()))]),
        Some(TextOr::List(parts)) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let path = || format!("messages[{at}].content[{index}]");
        match part.kind.as_ref() {
            // Anthropic rejects empty text blocks.
            "text" if part.text.as_deref().unwrap_or("").is_empty() => {}
            "text" => blocks.push(text_part(part)),
            "image_url" => {
                let url = part.image_url.as_ref().map(|image| image.url.as_ref());
                let source = match url {
                    Some(url) => url_source(url).ok_or_else(|| {
                        TranslateError::Unsupported(format!(
                            "{}.image_url.url must be an http(s) URL or a base64 data URL.",
                            path()
                        ))
                    })?,
                    None => {
                        return Err(TranslateError::InvalidRequest(format!(
                            "{} has no 'image_url.url'.",
                            path()
                        )));
                    }
                };
                blocks.push(BlockOut::Image {
                    source,
                    cache_control: part.cache_control,
                });
            }
            "file" => {
                let data = part
                    .file
                    .as_ref()
                    .and_then(|file| file.file_data.as_deref())
                    .and_then(data_url);
                let Some((media_type, data)) = data else {
                    return Err(TranslateError::Unsupported(format!(
                        "{} must carry 'file.file_data' as a base64 data URL; uploaded file ids \
                         cannot be sent to this model's provider (Anthropic).",
                        path()
                    )));
                };
                blocks.push(BlockOut::Document {
                    source: SourceOut::Base64 {
                        media_type: Cow::Borrowed(media_type),
                        data: Cow::Borrowed(data),
                    },
                    title: part
                        .file
                        .as_ref()
                        .and_then(|file| file.filename.as_deref())
                        .map(Cow::Borrowed),
                    cache_control: part.cache_control,
                });
            }
            other => {
                return Err(TranslateError::Unsupported(format!(
                    "{} is a '{other}' part, which this model's provider (Anthropic) cannot \
                     take; use text, image_url or file.",
                    path()
                )));
            }
        }
    }
    Ok(blocks)
}

/// An image source for an image URL: base64 for a data URL, `url` for a web URL.
fn url_source(url: &str) -> Option<SourceOut<'_>> {
    if let Some((media_type, data)) = data_url(url) {
        return Some(SourceOut::Base64 {
            media_type: Cow::Borrowed(media_type),
            data: Cow::Borrowed(data),
        });
    }
    (url.starts_with("https://") || url.starts_with("http://")).then_some(SourceOut::Url {
        url: Cow::Borrowed(url),
    })
}

fn assistant_blocks<'r>(message: &'r ChatMessage<'_>, at: usize) -> Result<Vec<BlockOut<'r>>> {
    let mut blocks = Vec::with_capacity(1 + message.tool_calls.as_ref().map_or(0, Vec::len));
    match &message.content {
        None => {}
        Some(TextOr::Text(text)) if text.is_empty() => {}
        Some(TextOr::Text(text)) => blocks.push(BlockOut::text(Cow::Borrowed(text.as_ref()))),
        Some(TextOr::List(parts)) => {
            for (index, part) in parts.iter().enumerate() {
                let text = match part.kind.as_ref() {
                    "text" => part.text.as_deref(),
                    "refusal" => part.refusal.as_deref(),
                    other => {
                        return Err(TranslateError::InvalidRequest(format!(
                            "messages[{at}].content[{index}] is a '{other}' part; assistant \
                             messages take only text and refusal parts."
                        )));
                    }
                };
                if let Some(text) = text.filter(|text| !text.is_empty()) {
                    blocks.push(BlockOut::Text {
                        text: Cow::Borrowed(text),
                        cache_control: part.cache_control,
                    });
                }
            }
        }
    }
    for call in message.tool_calls.iter().flatten() {
        blocks.push(BlockOut::ToolUse {
            id: anthropic_tool_id(&call.id),
            name: Cow::Borrowed(&call.function.name),
            input: arguments_object(&call.function.arguments),
            cache_control: None,
        });
    }
    Ok(blocks)
}

fn tool_result_block<'r>(message: &'r ChatMessage<'_>, at: usize) -> Result<BlockOut<'r>> {
    let id = message.tool_call_id.as_deref().ok_or_else(|| {
        TranslateError::InvalidRequest(format!(
            "messages[{at}] is a tool message without 'tool_call_id'."
        ))
    })?;
    Ok(BlockOut::ToolResult {
        tool_use_id: anthropic_tool_id(id),
        content: text_blocks(message, at)?,
        cache_control: None,
    })
}

//! Requests: OpenAI Responses → OpenAI Chat Completions.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::wire::{
    InputItem, InputPart, NamedToolChoice, ReasoningConfig, ResponsesRequest, TextConfig,
    TextFormat, Tool, ToolChoice,
};
use super::{Echo, NAMESPACE_SEPARATOR, NamespacedFunction, ResponsesCall, StoredTurnIn};
use crate::pricing::ModelLimits;
use crate::translate::TranslateError;
use crate::translate::json::{TextOr, data_url, to_bytes};
use crate::translate::openai::{
    ChatMessageOut, ChatRequestOut, ChatToolOut, ContentOut, FileOut, FunctionCallOut,
    FunctionDefinitionOut, JsonSchemaOut, NamedFunctionOut, PartOut, ResponseFormatOut,
    StreamOptionsOut, ToolCallOut, ToolChoiceOut, UrlOut,
};

const RESPONSES_API: &str = "OpenAI Responses";

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates a Responses request into a Chat Completions request, with `history` (the stored
/// turns of `previous_response_id`'s chain, oldest first, each as [`super::stored_turn`] wrote
/// it) placed before the new input. The chat body keeps the client's `model`; the gateway
/// rewrites it as for any chat request. The request is shaped to the upstream model's `limits`:
/// `max_output_tokens` lowered to its maximum, `reasoning` left out for a model without
/// reasoning. See the module docs for every mapping.
pub fn responses_request_to_chat(
    body: &[u8],
    history: &[&[u8]],
    limits: ModelLimits,
) -> Result<(Bytes, ResponsesCall)> {
    let request: ResponsesRequest<'_> =
        serde_json::from_slice(body).map_err(TranslateError::request(RESPONSES_API))?;
    refuse_stateful_features(&request)?;
    let turns = history
        .iter()
        .enumerate()
        .map(|(at, turn)| {
            serde_json::from_slice::<StoredTurnIn<'_>>(turn).map_err(|error| {
                TranslateError::InvalidRequest(format!(
                    "The stored conversation (turn {at} of previous_response_id's chain) could \
                     not be read: {error}. Start a new conversation without \
                     previous_response_id."
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let mut conversation = Conversation::default();
    if let Some(instructions) = request.instructions {
        let text = instructions_text(instructions)?;
        if !text.is_empty() {
            conversation
                .messages
                .push(message("system", Some(ContentOut::Text(Cow::Owned(text)))));
        }
    }
    for (turn_at, turn) in turns.iter().enumerate() {
        for (at, item) in turn.input.iter().chain(&turn.output).enumerate() {
            let place = Place::History { turn: turn_at, at };
            conversation.item(item, &place)?;
        }
    }
    match &request.input {
        Some(TextOr::Text(text)) => conversation.messages.push(message(
            "user",
            Some(ContentOut::Text(Cow::Borrowed(text.as_ref()))),
        )),
        Some(TextOr::List(items)) => {
            for (at, item) in items.iter().enumerate() {
                conversation.item(item, &Place::Input(at))?;
            }
        }
        None => {}
    }
    conversation.flush_images();
    if conversation.messages.is_empty() {
        return Err(TranslateError::InvalidRequest(
            "The request has no input: send 'input' as a string or a list of items.".into(),
        ));
    }

    let tool_list: Vec<Tool<'_>> = read_member(request.tools, "tools")?.unwrap_or_default();
    let tools = Tools::read(&tool_list)?;
    let text: Option<TextConfig<'_>> = read_member(request.text, "text")?;
    let reasoning: Option<ReasoningConfig<'_>> = read_member(request.reasoning, "reasoning")?;
    let tool_choice = tool_choice(request.tool_choice, &tools)?;
    let has_tools = !tools.chat.is_empty();
    let stream = request.stream == Some(true);
    let model = request.model.as_deref().unwrap_or("");
    let chat = ChatRequestOut {
        model,
        messages: conversation.messages,
        max_completion_tokens: request.max_output_tokens.map(|max| limits.output_cap(max)),
        temperature: request.temperature,
        top_p: request.top_p,
        stop: None,
        stream: stream.then_some(true),
        stream_options: stream.then_some(StreamOptionsOut {
            include_usage: true,
        }),
        // OpenAI refuses `tool_choice` and `parallel_tool_calls` without tools.
        parallel_tool_calls: request.parallel_tool_calls.filter(|_| has_tools),
        tool_choice: tool_choice.filter(|_| has_tools),
        tools: has_tools.then_some(tools.chat),
        response_format: text
            .as_ref()
            .and_then(|text| text.format.as_ref())
            .map(response_format)
            .transpose()?
            .flatten(),
        reasoning_effort: reasoning
            .as_ref()
            .filter(|_| limits.takes_reasoning())
            .and_then(|reasoning| reasoning.effort.as_deref()),
        user: request.user.as_deref().map(Cow::Borrowed),
        prompt_cache_key: request.prompt_cache_key.as_deref(),
        mock: request.mock,
    };
    let body = to_bytes(&chat);
    let call = ResponsesCall {
        stream,
        store: request.store != Some(false),
        model: model.to_owned(),
        dropped_tools: tools.dropped,
        namespaced: tools.namespaced,
        echo: Echo::of(&request),
    };
    Ok((body, call))
}

/// A member kept raw in the request struct, read into its own shape; `null` reads as absent.
fn read_member<'a, T: serde::Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    name: &str,
) -> Result<Option<T>> {
    match raw.filter(|raw| raw.get() != "null") {
        None => Ok(None),
        Some(raw) => serde_json::from_str(raw.get()).map(Some).map_err(|error| {
            TranslateError::InvalidRequest(format!(
                "The request body is not a valid {RESPONSES_API} request: '{name}': {error}."
            ))
        }),
    }
}

/// Features that need OpenAI's server-side state beyond stored responses.
fn refuse_stateful_features(request: &ResponsesRequest<'_>) -> Result<()> {
    let refused = if request.background == Some(true) {
        Some("'background' mode")
    } else if request.conversation.is_some_and(|raw| raw.get() != "null") {
        Some("'conversation' objects")
    } else if request.prompt.is_some_and(|raw| raw.get() != "null") {
        Some("stored prompt templates ('prompt')")
    } else {
        None
    };
    match refused {
        Some(feature) => Err(TranslateError::Unsupported(format!(
            "{feature} cannot be used with this model's provider, which llmgate reaches through \
             translation; chain turns with 'previous_response_id' or send the whole \
             conversation in 'input'."
        ))),
        None => Ok(()),
    }
}

/// `instructions` as one system text: a string, or a list of message items whose texts are
/// joined with a newline.
fn instructions_text(raw: &RawValue) -> Result<String> {
    let instructions: Option<TextOr<'_, InputItem<'_>>> =
        serde_json::from_str(raw.get()).map_err(|error| {
            TranslateError::InvalidRequest(format!(
                "'instructions' must be a string or a list of messages: {error}."
            ))
        })?;
    Ok(match instructions {
        None => String::new(),
        Some(TextOr::Text(text)) => text.into_owned(),
        Some(TextOr::List(items)) => {
            let mut texts = Vec::new();
            for item in &items {
                match &item.content {
                    Some(TextOr::Text(text)) => texts.push(text.as_ref()),
                    Some(TextOr::List(parts)) => texts.extend(
                        parts
                            .iter()
                            .filter_map(|part| part.text.as_deref())
                            .filter(|text| !text.is_empty()),
                    ),
                    None => {}
                }
            }
            texts.join("\n")
        }
    })
}

/// Where an item sits, for error messages.
enum Place {
    Input(usize),
    History { turn: usize, at: usize },
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Input(at) => write!(f, "input[{at}]"),
            Self::History { turn, at } => {
                write!(f, "item {at} of stored turn {turn} (previous_response_id)")
            }
        }
    }
}

fn message<'a>(role: &'static str, content: Option<ContentOut<'a>>) -> ChatMessageOut<'a> {
    ChatMessageOut {
        role,
        content,
        tool_calls: None,
        tool_call_id: None,
    }
}

/// The chat messages being built from items.
#[derive(Default)]
struct Conversation<'a> {
    messages: Vec<ChatMessageOut<'a>>,
    /// The last message is an assistant message that later `function_call` items join (no
    /// tool result or other message came since).
    assistant_open: bool,
    /// Images from tool outputs: chat's tool messages carry text only, so they follow the run
    /// of tool messages in a user message.
    pending_images: Vec<PartOut<'a>>,
}

impl<'a> Conversation<'a> {
    fn item(&mut self, item: &'a InputItem<'a>, place: &Place) -> Result<()> {
        let kind = item.kind();
        if kind != "function_call_output" {
            self.flush_images();
        }
        match kind {
            "message" => self.message(item, place),
            "function_call" => {
                let name = item.name.as_deref().unwrap_or("");
                let name = match item.namespace.as_deref() {
                    Some(namespace) if !namespace.is_empty() => {
                        Cow::Owned(format!("{namespace}{NAMESPACE_SEPARATOR}{name}"))
                    }
                    _ => Cow::Borrowed(name),
                };
                let call = ToolCallOut {
                    id: Cow::Borrowed(item.call_id.as_deref().unwrap_or("")),
                    kind: "function",
                    function: FunctionCallOut {
                        name,
                        arguments: Cow::Borrowed(item.arguments.as_deref().unwrap_or("")),
                    },
                };
                if !self.assistant_open {
                    self.messages.push(message("assistant", None));
                    self.assistant_open = true;
                }
                if let Some(last) = self.messages.last_mut() {
                    last.tool_calls.get_or_insert_with(Vec::new).push(call);
                }
                Ok(())
            }
            "function_call_output" => {
                self.assistant_open = false;
                let content = match &item.output {
                    None => Cow::Borrowed(""),
                    Some(TextOr::Text(text)) => Cow::Borrowed(text.as_ref()),
                    Some(TextOr::List(parts)) => {
                        let mut texts = Vec::new();
                        for (at, part) in parts.iter().enumerate() {
                            match part_to_chat(part, place, at)? {
                                Some(PartOut::Text { text }) => texts.push(text),
                                Some(other) => self.pending_images.push(other),
                                None => {}
                            }
                        }
                        join(texts)
                    }
                };
                self.messages.push(ChatMessageOut {
                    role: "tool",
                    content: Some(ContentOut::Text(content)),
                    tool_calls: None,
                    tool_call_id: Some(Cow::Borrowed(item.call_id.as_deref().unwrap_or(""))),
                });
                Ok(())
            }
            // Reasoning (summaries, and `encrypted_content` only OpenAI can read) has no chat
            // form: chat takes no reasoning back.
            "reasoning" => Ok(()),
            other => Err(TranslateError::Unsupported(format!(
                "{place} is a '{other}' item, which this model's provider cannot take (llmgate \
                 translates only messages, function calls, function call outputs and reasoning \
                 for it); remove it from the input."
            ))),
        }
    }

    fn message(&mut self, item: &'a InputItem<'a>, place: &Place) -> Result<()> {
        let role = match item.role.as_deref() {
            Some("user") => "user",
            Some("assistant") => "assistant",
            // Chat's `developer` role is OpenAI's own; `system` is understood everywhere.
            Some("system" | "developer") => "system",
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "{place}.role is {}; a message's role is 'user', 'assistant', 'system' or \
                     'developer'.",
                    other.map_or_else(|| "missing".to_owned(), |role| format!("'{role}'"))
                )));
            }
        };
        let content = match &item.content {
            None => ContentOut::Text(Cow::Borrowed("")),
            Some(TextOr::Text(text)) => ContentOut::Text(Cow::Borrowed(text.as_ref())),
            Some(TextOr::List(parts)) => {
                let mut out = Vec::with_capacity(parts.len());
                for (at, part) in parts.iter().enumerate() {
                    if let Some(part) = part_to_chat(part, place, at)? {
                        out.push(part);
                    }
                }
                let all_text = out.iter().all(|part| matches!(part, PartOut::Text { .. }));
                if role != "user" && !all_text {
                    return Err(TranslateError::Unsupported(format!(
                        "{place} is a '{}' message with an image or file; only user messages \
                         can carry them.",
                        item.role.as_deref().unwrap_or("")
                    )));
                }
                // Plain string content is accepted by every chat server; parts are not.
                if all_text {
                    let texts = out
                        .into_iter()
                        .filter_map(|part| match part {
                            PartOut::Text { text } => Some(text),
                            _ => None,
                        })
                        .collect();
                    ContentOut::Text(join(texts))
                } else {
                    ContentOut::Parts(out)
                }
            }
        };
        if role == "assistant" {
            self.messages.push(message("assistant", Some(content)));
            self.assistant_open = true;
        } else {
            self.messages.push(message(role, Some(content)));
            self.assistant_open = false;
        }
        Ok(())
    }

    fn flush_images(&mut self) {
        if !self.pending_images.is_empty() {
            let parts = std::mem::take(&mut self.pending_images);
            self.messages
                .push(message("user", Some(ContentOut::Parts(parts))));
            self.assistant_open = false;
        }
    }
}

/// Texts of several parts as one string, one part a line (Codex sends its AGENTS.md and
/// environment context as separate parts that must not run together); a single text stays
/// borrowed.
fn join(mut texts: Vec<Cow<'_, str>>) -> Cow<'_, str> {
    if texts.len() == 1 {
        return texts.swap_remove(0);
    }
    Cow::Owned(texts.join("\n"))
}

/// A content part in chat's form; `None` for parts with nothing to say (an empty text).
fn part_to_chat<'a>(
    part: &'a InputPart<'a>,
    place: &Place,
    at: usize,
) -> Result<Option<PartOut<'a>>> {
    match part.kind.as_ref() {
        "input_text" | "output_text" | "text" | "summary_text" => {
            Ok(part.text.as_deref().map(|text| PartOut::Text {
                text: Cow::Borrowed(text),
            }))
        }
        "refusal" => Ok(part.refusal.as_deref().map(|text| PartOut::Text {
            text: Cow::Borrowed(text),
        })),
        "input_image" => match (&part.image_url, &part.file_id) {
            (Some(url), _) => Ok(Some(PartOut::ImageUrl {
                image_url: UrlOut {
                    url: Cow::Borrowed(url.url()),
                },
            })),
            (None, Some(_)) => Err(file_id_refused(place, at)),
            (None, None) => Err(TranslateError::InvalidRequest(format!(
                "{place}.content[{at}] is an input_image without 'image_url'."
            ))),
        },
        "input_file" => match (&part.file_data, &part.file_id) {
            (Some(data), _) => {
                if data_url(data).is_none() {
                    return Err(TranslateError::InvalidRequest(format!(
                        "{place}.content[{at}].file_data must be a base64 data URL \
                         (data:<type>;base64,<data>)."
                    )));
                }
                Ok(Some(PartOut::File {
                    file: FileOut {
                        filename: Cow::Borrowed(part.filename.as_deref().unwrap_or("file")),
                        file_data: data.to_string(),
                    },
                }))
            }
            (None, Some(_)) => Err(file_id_refused(place, at)),
            (None, None) => Err(TranslateError::Unsupported(format!(
                "{place}.content[{at}] is an input_file without 'file_data'; send the file as \
                 a base64 data URL in 'file_data'."
            ))),
        },
        other => Err(TranslateError::Unsupported(format!(
            "{place}.content[{at}] is a '{other}' part, which this model's provider cannot take."
        ))),
    }
}

fn file_id_refused(place: &Place, at: usize) -> TranslateError {
    TranslateError::Unsupported(format!(
        "{place}.content[{at}] refers to an uploaded file by 'file_id'; llmgate has no file \
         storage: send the content inline (image_url or file_data as a data URL)."
    ))
}

/// The request's tools in chat's form, and what was left out.
struct Tools<'a> {
    chat: Vec<ChatToolOut<'a>>,
    namespaced: Vec<NamespacedFunction>,
    dropped: Vec<String>,
}

impl<'a> Tools<'a> {
    fn read(tools: &'a [Tool<'a>]) -> Result<Self> {
        let mut out = Self {
            chat: Vec::with_capacity(tools.len()),
            namespaced: Vec::new(),
            dropped: Vec::new(),
        };
        for (at, tool) in tools.iter().enumerate() {
            match tool.kind.as_ref() {
                "function" => {
                    let name = function_name(tool, &format!("tools[{at}]"))?;
                    out.chat
                        .push(function_to_chat(tool, Cow::Borrowed(name), None));
                }
                "namespace" => {
                    let namespace = function_name(tool, &format!("tools[{at}]"))?;
                    for (inner_at, inner) in tool.tools.iter().flatten().enumerate() {
                        if inner.kind != "function" {
                            out.dropped
                                .push(format!("{namespace}.{}", dropped_name(inner)));
                            continue;
                        }
                        let name = function_name(inner, &format!("tools[{at}].tools[{inner_at}]"))?;
                        let chat_name = format!("{namespace}{NAMESPACE_SEPARATOR}{name}");
                        out.namespaced.push(NamespacedFunction {
                            chat_name: chat_name.clone(),
                            namespace: namespace.to_owned(),
                            name: name.to_owned(),
                        });
                        out.chat.push(function_to_chat(
                            inner,
                            Cow::Owned(chat_name),
                            tool.description.as_deref(),
                        ));
                    }
                }
                _ => out.dropped.push(dropped_name(tool)),
            }
        }
        let mut names: Vec<&str> = out
            .chat
            .iter()
            .map(|tool| tool.function.name.as_ref())
            .collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(TranslateError::InvalidRequest(format!(
                "Two tools are offered as '{}' (a namespace's function is offered as \
                 'namespace{NAMESPACE_SEPARATOR}name'); give them different names.",
                pair[0]
            )));
        }
        Ok(out)
    }
}

fn function_name<'t>(tool: &'t Tool<'_>, place: &str) -> Result<&'t str> {
    tool.name
        .as_deref()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            TranslateError::InvalidRequest(format!(
                "{place} is a '{}' tool without a 'name'.",
                tool.kind
            ))
        })
}

/// How a left-out tool is named in `dropped_tools`: its type, and its name when it has one.
fn dropped_name(tool: &Tool<'_>) -> String {
    match tool.name.as_deref() {
        Some(name) if !name.is_empty() => format!("{}:{name}", tool.kind),
        _ => tool.kind.to_string(),
    }
}

fn function_to_chat<'a>(
    tool: &'a Tool<'a>,
    name: Cow<'a, str>,
    namespace_description: Option<&str>,
) -> ChatToolOut<'a> {
    let description = match (
        namespace_description.filter(|d| !d.is_empty()),
        &tool.description,
    ) {
        (Some(outer), Some(inner)) => Some(Cow::Owned(format!("{outer}\n\n{inner}"))),
        (Some(outer), None) => Some(Cow::Owned(outer.to_owned())),
        (None, inner) => inner.as_deref().map(Cow::Borrowed),
    };
    ChatToolOut {
        kind: "function",
        function: FunctionDefinitionOut {
            name,
            description,
            parameters: tool.parameters,
            strict: tool.strict,
        },
    }
}

/// `tool_choice` in chat's form. Forcing a tool llmgate left out is refused.
fn tool_choice<'a>(
    raw: Option<&'a RawValue>,
    tools: &Tools<'_>,
) -> Result<Option<ToolChoiceOut<'a>>> {
    let Some(raw) = raw.filter(|raw| raw.get() != "null") else {
        return Ok(None);
    };
    let choice: ToolChoice<'a> = serde_json::from_str(raw.get()).map_err(|error| {
        TranslateError::InvalidRequest(format!(
            "'tool_choice' must be \"auto\", \"none\", \"required\" or an object naming a tool: \
             {error}."
        ))
    })?;
    let forced_hosted = |what: &str| {
        TranslateError::Unsupported(format!(
            "'tool_choice' forces {what}, a tool that only OpenAI hosts; llmgate leaves such \
             tools out for this model's provider. Use \"auto\" or force a function tool."
        ))
    };
    match choice {
        ToolChoice::Mode(mode) => match mode.as_ref() {
            "auto" => Ok(Some(ToolChoiceOut::Mode("auto"))),
            "none" => Ok(Some(ToolChoiceOut::Mode("none"))),
            "required" if tools.chat.is_empty() && !tools.dropped.is_empty() => Err(forced_hosted(
                &format!("one of {}", tools.dropped.join(", ")),
            )),
            "required" if tools.chat.is_empty() => Err(TranslateError::InvalidRequest(
                "'tool_choice' is \"required\" but the request offers no tools.".into(),
            )),
            "required" => Ok(Some(ToolChoiceOut::Mode("required"))),
            other => Err(TranslateError::InvalidRequest(format!(
                "'tool_choice' is \"{other}\"; use \"auto\", \"none\" or \"required\"."
            ))),
        },
        ToolChoice::Named(NamedToolChoice {
            kind,
            name,
            namespace,
        }) => {
            if kind == "allowed_tools" {
                return Err(TranslateError::Unsupported(
                    "'tool_choice' of type 'allowed_tools' cannot be translated for this model's \
                     provider; offer only the allowed tools and use \"auto\" or \"required\"."
                        .into(),
                ));
            }
            if kind != "function" {
                return Err(match name {
                    Some(name) => forced_hosted(&format!("the '{kind}' tool '{name}'")),
                    None => forced_hosted(&format!("the '{kind}' tool")),
                });
            }
            let name = name.ok_or_else(|| {
                TranslateError::InvalidRequest(
                    "'tool_choice' of type 'function' needs a 'name'.".into(),
                )
            })?;
            let chat_name = match namespace.as_deref() {
                Some(namespace) => Cow::Owned(format!("{namespace}{NAMESPACE_SEPARATOR}{name}")),
                None => name,
            };
            if !tools
                .chat
                .iter()
                .any(|tool| tool.function.name == chat_name)
            {
                return Err(TranslateError::InvalidRequest(format!(
                    "'tool_choice' forces the function '{chat_name}', which is not among the \
                     request's function tools."
                )));
            }
            Ok(Some(ToolChoiceOut::Named {
                kind: "function",
                function: NamedFunctionOut { name: chat_name },
            }))
        }
    }
}

/// `text.format` as chat's `response_format`; plain text needs none.
fn response_format<'a>(format: &'a TextFormat<'a>) -> Result<Option<ResponseFormatOut<'a>>> {
    match format.kind.as_ref() {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormatOut {
            kind: "json_object",
            json_schema: None,
        })),
        "json_schema" => Ok(Some(ResponseFormatOut {
            kind: "json_schema",
            json_schema: Some(JsonSchemaOut {
                name: format.name.as_deref().unwrap_or("response"),
                description: format.description.as_deref(),
                schema: format.schema,
                strict: format.strict,
            }),
        })),
        other => Err(TranslateError::Unsupported(format!(
            "text.format.type is '{other}'; llmgate translates 'text', 'json_object' and \
             'json_schema'."
        ))),
    }
}

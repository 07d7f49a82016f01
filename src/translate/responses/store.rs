//! Stored turns: the items a stored response keeps, and the `input_items` list made from them.
//!
//! This is off the streaming path (the gateway stores a turn after the answer), so the items
//! are handled as `serde_json::Value`s: they are rewritten in place (ids, string content) and
//! must keep every member a client sent, known to llmgate or not.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::id_suffix;
use crate::translate::TranslateError;
use crate::translate::json::to_bytes;

type Result<T> = std::result::Result<T, TranslateError>;

/// The items to store for one turn, as JSON `{"input": [items], "output": [items]}`, from the
/// request body and the final response object (whole, or a stream's
/// [`super::ChatToResponsesStream::response`]).
///
/// Input items are normalized to item form: a string `input` becomes a user message, a
/// message without `type` gets `"type": "message"`, string content becomes one `input_text`
/// (`output_text` for the assistant) part, and each item without an `id` gets
/// `<prefix>_<response id suffix>_in<position>`. Output items are kept as the response has them.
pub fn stored_turn(request_body: &[u8], response: &[u8]) -> Result<Bytes> {
    #[derive(Deserialize)]
    struct Request {
        #[serde(default)]
        input: Value,
    }
    #[derive(Deserialize)]
    struct Response {
        id: String,
        #[serde(default)]
        output: Vec<Value>,
    }
    let request: Request = serde_json::from_slice(request_body)
        .map_err(TranslateError::request("OpenAI Responses"))?;
    let response: Response =
        serde_json::from_slice(response).map_err(TranslateError::upstream("OpenAI Responses"))?;
    let suffix = id_suffix(&response.id);
    let items = match request.input {
        Value::String(text) => vec![json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })],
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        _ => {
            return Err(TranslateError::InvalidRequest(
                "'input' must be a string or a list of items.".into(),
            ));
        }
    };
    let input: Vec<Value> = items
        .into_iter()
        .enumerate()
        .map(|(at, item)| normalize(item, suffix, at))
        .collect();
    Ok(to_bytes(
        &json!({"input": input, "output": response.output}),
    ))
}

/// The Responses request `body` for an upstream that speaks Responses itself (a provider
/// declared with `responses = true`), continuing a stored conversation there as the translated
/// routes do: `history` (the stored turns of `previous_response_id`'s chain, oldest first, as
/// [`stored_turn`] wrote them: each turn's input items, then its output items) goes into
/// `input` before the request's own input (a string input becoming a user message),
/// `previous_response_id` is left out (the turns may have been answered by another upstream,
/// which that one does not know), and `model` is `upstream_model`. Every other member is kept
/// as sent (the members' order may change).
pub fn request_with_history(body: &[u8], history: &[&[u8]], upstream_model: &str) -> Result<Bytes> {
    #[derive(Deserialize)]
    struct Turn {
        #[serde(default)]
        input: Vec<Value>,
        #[serde(default)]
        output: Vec<Value>,
    }
    let mut request: Map<String, Value> =
        serde_json::from_slice(body).map_err(TranslateError::request("OpenAI Responses"))?;
    let mut input = Vec::new();
    for (at, turn) in history.iter().enumerate() {
        let turn: Turn = serde_json::from_slice(turn).map_err(|error| {
            TranslateError::InvalidRequest(format!(
                "The stored conversation (turn {at} of previous_response_id's chain) could not \
                 be read: {error}. Start a new conversation without previous_response_id."
            ))
        })?;
        input.extend(turn.input);
        input.extend(turn.output);
    }
    match request.remove("input") {
        Some(Value::String(text)) => input.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => input.extend(items),
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(TranslateError::InvalidRequest(
                "'input' must be a string or a list of items.".into(),
            ));
        }
    }
    request.remove("previous_response_id");
    request.insert("input".into(), Value::Array(input));
    request.insert("model".into(), Value::String(upstream_model.to_owned()));
    Ok(to_bytes(&request))
}

/// One input item in item form, with an id.
fn normalize(mut item: Value, suffix: &str, at: usize) -> Value {
    let Some(object) = item.as_object_mut() else {
        return item;
    };
    let kind = object
        .entry("type")
        .or_insert_with(|| Value::String("message".into()))
        .as_str()
        .unwrap_or("")
        .to_owned();
    if kind == "message" {
        let part_type = if object.get("role").and_then(Value::as_str) == Some("assistant") {
            "output_text"
        } else {
            "input_text"
        };
        if let Some(Value::String(text)) = object.get_mut("content") {
            let text = std::mem::take(text);
            object.insert("content".into(), json!([{"type": part_type, "text": text}]));
        }
    }
    if !object.get("id").is_some_and(Value::is_string) {
        let prefix = match kind.as_str() {
            "message" => "msg",
            "function_call" => "fc",
            "function_call_output" => "fco",
            "reasoning" => "rs",
            _ => "item",
        };
        object.insert(
            "id".into(),
            Value::String(format!("{prefix}_{suffix}_in{at}")),
        );
    }
    item
}

/// The query of `GET /v1/responses/{id}/input_items`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct InputItemsQuery {
    /// List the items after this item id (in the listing's order).
    pub after: Option<String>,
    /// 1 to 100; 20 when absent.
    pub limit: Option<u32>,
    /// `asc` or `desc` (the default, as OpenAI's).
    pub order: Option<String>,
}

/// One page of the input items of a stored response, as OpenAI lists them:
/// `{"object": "list", "data": [...], "first_id", "last_id", "has_more"}`. The items are what
/// the response was generated from: the turns it continued (`history`, oldest first: each
/// turn's input items, then its output items) and its own turn's input items.
pub fn input_items_page(
    history: &[&[u8]],
    stored_turn: &[u8],
    query: &InputItemsQuery,
) -> Result<Bytes> {
    #[derive(Deserialize)]
    struct Turn {
        #[serde(default)]
        input: Vec<Map<String, Value>>,
        #[serde(default)]
        output: Vec<Map<String, Value>>,
    }
    #[derive(Serialize)]
    struct Page<'a> {
        object: &'static str,
        data: &'a [Map<String, Value>],
        first_id: Option<&'a str>,
        last_id: Option<&'a str>,
        has_more: bool,
    }
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(TranslateError::InvalidRequest(format!(
            "'limit' is {limit}; it must be between 1 and 100."
        )));
    }
    let ascending = match query.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(TranslateError::InvalidRequest(format!(
                "'order' is '{other}'; use 'asc' or 'desc'."
            )));
        }
    };
    let read = |turn: &[u8]| {
        serde_json::from_slice::<Turn>(turn)
            .map_err(|error| TranslateError::UpstreamAnswer(format!("a stored turn: {error}")))
    };
    let mut items = Vec::new();
    for turn in history {
        let turn = read(turn)?;
        items.extend(turn.input);
        items.extend(turn.output);
    }
    items.extend(read(stored_turn)?.input);
    if !ascending {
        items.reverse();
    }
    let id_of =
        |item: &Map<String, Value>| item.get("id").and_then(Value::as_str).map(str::to_owned);
    let start = match &query.after {
        None => 0,
        Some(after) => match items
            .iter()
            .position(|item| id_of(item).as_deref() == Some(after))
        {
            Some(position) => position + 1,
            None => {
                return Err(TranslateError::InvalidRequest(format!(
                    "'after' is '{after}', which is not an input item of this response."
                )));
            }
        },
    };
    let rest = items.get(start..).unwrap_or(&[]);
    let page = rest.get(..rest.len().min(limit as usize)).unwrap_or(&[]);
    fn item_id(item: Option<&Map<String, Value>>) -> Option<&str> {
        item.and_then(|item| item.get("id")).and_then(Value::as_str)
    }
    Ok(to_bytes(&Page {
        object: "list",
        data: page,
        first_id: item_id(page.first()),
        last_id: item_id(page.last()),
        has_more: rest.len() > page.len(),
    }))
}

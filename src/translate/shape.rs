//! A body that passes through in the client's own dialect, shaped to what the upstream model
//! takes ([`ModelLimits`]): an output cap above the model's maximum is lowered to it, and a
//! reasoning setting the model cannot take is left out.
//!
//! Only the values that change are edited, in place, as `model` is: every other byte of the
//! body (order, spacing, numbers as written, fields llmgate does not know) reaches the
//! upstream as the client sent it. The gateway calls these only for a request whose head
//! says that something is to be shaped, so a request within its route's limits costs no
//! extra pass. Translated requests are shaped by their translators as they write them.
//!
//! | dialect | lowered to the maximum | left out for a model without reasoning |
//! |---|---|---|
//! | OpenAI chat | `max_tokens`, `max_completion_tokens` | `reasoning_effort` |
//! | OpenAI Responses (forwarded) | `max_output_tokens` | `reasoning` (when it sets an effort) |
//! | Anthropic Messages | `max_tokens`; a `thinking.budget_tokens` it no longer fits under goes to `max_tokens − 1`, and thinking is left out when that is below Anthropic's minimum of 1024 | `thinking` (unless `disabled`) |

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

use super::TranslateError;
use super::anthropic::MIN_THINKING_BUDGET;
use crate::pricing::ModelLimits;

const CHAT_API: &str = "OpenAI Chat Completions";
const MESSAGES_API: &str = "Anthropic Messages";
const RESPONSES_API: &str = "OpenAI Responses";

/// A chat body shaped to `limits`, or `None` when nothing in it needs shaping and it goes
/// upstream as it is.
pub fn shape_chat_body(body: &[u8], limits: ModelLimits) -> Result<Option<Bytes>, TranslateError> {
    let object = Object::parse(body, CHAT_API)?;
    let edits = object.edits(|member| match member.key.as_str() {
        "max_tokens" | "max_completion_tokens" => lowered(member.value, limits),
        "reasoning_effort" if !limits.takes_reasoning() && !is_null(member.value) => Edit::Remove,
        _ => Edit::Keep,
    });
    Ok(object.rewrite(&edits).map(Bytes::from))
}

/// A Responses body (forwarded to a provider that serves `/responses` itself) shaped to
/// `limits`, or `None` when nothing in it needs shaping and it goes upstream as it is.
pub fn shape_responses_body(
    body: &[u8],
    limits: ModelLimits,
) -> Result<Option<Bytes>, TranslateError> {
    let object = Object::parse(body, RESPONSES_API)?;
    let edits = object.edits(|member| match member.key.as_str() {
        "max_output_tokens" => lowered(member.value, limits),
        "reasoning" if !limits.takes_reasoning() && sets_effort(member.value) => Edit::Remove,
        _ => Edit::Keep,
    });
    Ok(object.rewrite(&edits).map(Bytes::from))
}

/// Whether a Responses `reasoning` object sets an effort (a `summary` alone asks nothing of
/// a chat upstream, and is left as it is).
pub fn sets_effort(reasoning: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Effort<'a> {
        #[serde(borrow, default)]
        effort: Option<&'a RawValue>,
    }
    serde_json::from_str::<Effort<'_>>(reasoning.get())
        .map_or(true, |reasoning| reasoning.effort.is_some())
}

/// A Messages body shaped to `limits`, or `None` when nothing in it needs shaping and it goes
/// upstream as it is.
pub fn shape_messages_body(
    body: &[u8],
    limits: ModelLimits,
) -> Result<Option<Bytes>, TranslateError> {
    let object = Object::parse(body, MESSAGES_API)?;
    // The cap the body is sent with, once lowered: a thinking budget must stay under it.
    let lowered_cap = object
        .members
        .iter()
        .filter(|member| member.key == "max_tokens")
        .filter_map(|member| whole_number(member.value))
        .filter(|max| limits.lowers(*max))
        .map(|max| limits.output_cap(max))
        .min();
    let mut failure = None;
    let edits = object.edits(|member| match member.key.as_str() {
        "max_tokens" => lowered(member.value, limits),
        "thinking" => thinking(member.value, limits, lowered_cap).unwrap_or_else(|error| {
            failure = Some(error);
            Edit::Keep
        }),
        _ => Edit::Keep,
    });
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(object.rewrite(&edits).map(Bytes::from))
}

/// What becomes of an output cap: lowered to the maximum when it is a whole number above it.
/// Anything else (a number within the limit, a value that is not a whole number of tokens) is
/// kept, for the upstream to take or refuse as it would have.
fn lowered(value: &RawValue, limits: ModelLimits) -> Edit {
    match whole_number(value) {
        Some(max) if limits.lowers(max) => Edit::Replace(limits.output_cap(max).to_string()),
        _ => Edit::Keep,
    }
}

/// What becomes of Anthropic's `thinking`: left out for a model without reasoning (unless it
/// disables thinking, which every model takes); its budget fitted under a lowered `max_tokens`
/// (which counts thinking), or thinking left out when less than Anthropic's minimum fits.
fn thinking(
    value: &RawValue,
    limits: ModelLimits,
    lowered_cap: Option<u64>,
) -> Result<Edit, TranslateError> {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    if is_null(value) || !value.get().starts_with('{') {
        return Ok(Edit::Keep);
    }
    let kind: Kind<'_> =
        serde_json::from_str(value.get()).map_err(TranslateError::request(MESSAGES_API))?;
    if kind.kind.as_deref() == Some("disabled") {
        return Ok(Edit::Keep);
    }
    if !limits.takes_reasoning() {
        return Ok(Edit::Remove);
    }
    let Some(cap) = lowered_cap else {
        return Ok(Edit::Keep);
    };
    let config = Object::parse(value.get().as_bytes(), MESSAGES_API)?;
    let fitted = cap.saturating_sub(1);
    let mut too_small = false;
    let edits = config.edits(|member| match member.key.as_str() {
        "budget_tokens" => match whole_number(member.value) {
            Some(budget) if budget > fitted => {
                too_small = fitted < MIN_THINKING_BUDGET;
                Edit::Replace(fitted.to_string())
            }
            _ => Edit::Keep,
        },
        _ => Edit::Keep,
    });
    if too_small {
        return Ok(Edit::Remove);
    }
    Ok(config.rewrite(&edits).map_or(Edit::Keep, Edit::Replace))
}

fn is_null(value: &RawValue) -> bool {
    value.get() == "null"
}

fn whole_number(value: &RawValue) -> Option<u64> {
    serde_json::from_str(value.get()).ok()
}

/// What happens to one member of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Edit {
    Keep,
    /// The member is left out, with its separating comma.
    Remove,
    /// The member's value becomes this JSON text.
    Replace(String),
}

/// A JSON object's text and its members, in order, each with where its value sits.
struct Object<'a> {
    text: &'a str,
    /// Where the opening brace is.
    brace: usize,
    members: Vec<Member<'a>>,
}

struct Member<'a> {
    key: String,
    value: &'a RawValue,
    span: Range<usize>,
}

impl<'a> Object<'a> {
    /// Reads the members of the object `body` holds; `api` names the dialect in an error.
    fn parse(body: &'a [u8], api: &'static str) -> Result<Self, TranslateError> {
        let text = std::str::from_utf8(body).map_err(|error| {
            TranslateError::InvalidRequest(format!(
                "The request body is not valid UTF-8: the byte at offset {} is not.",
                error.valid_up_to()
            ))
        })?;
        let pairs =
            serde_json::from_str::<Pairs<'a>>(text).map_err(TranslateError::request(api))?;
        let brace = text.find('{').unwrap_or(0);
        let members = pairs
            .0
            .into_iter()
            .map(|(key, value)| {
                let start = value
                    .get()
                    .as_ptr()
                    .addr()
                    .wrapping_sub(text.as_ptr().addr());
                let span = start..start.wrapping_add(value.get().len());
                // A borrowed `RawValue` always points into its input; check rather than trust.
                if text.get(span.clone()) == Some(value.get()) {
                    Ok(Member { key, value, span })
                } else {
                    Err(TranslateError::InvalidRequest(
                        "The request body could not be read in place.".into(),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            text,
            brace,
            members,
        })
    }

    /// The edit of each member, in order.
    fn edits(&self, mut edit: impl FnMut(&Member<'a>) -> Edit) -> Vec<Edit> {
        self.members.iter().map(&mut edit).collect()
    }

    /// The object's text with `edits` applied, or `None` when every member is kept.
    ///
    /// Each member is a segment of the text from the end of the one before (or the brace) to
    /// the end of its value, so a member's segment carries the comma before it. Leaving one
    /// out drops its segment; when the first member kept was not the first one, the comma
    /// its segment opens with is dropped too.
    fn rewrite(&self, edits: &[Edit]) -> Option<String> {
        if edits.iter().all(|edit| *edit == Edit::Keep) {
            return None;
        }
        let mut out = String::with_capacity(self.text.len());
        out.push_str(&self.text[..=self.brace]);
        let mut from = self.brace + 1;
        let mut first_kept = true;
        for (at, (member, edit)) in self.members.iter().zip(edits).enumerate() {
            let segment_start = from;
            from = member.span.end;
            let value = match edit {
                Edit::Remove => continue,
                Edit::Keep => member.value.get(),
                Edit::Replace(text) => text.as_str(),
            };
            let lead = &self.text[segment_start..member.span.start];
            if first_kept && at > 0 {
                out.push_str(&lead.replacen(',', "", 1));
            } else {
                out.push_str(lead);
            }
            out.push_str(value);
            first_kept = false;
        }
        out.push_str(&self.text[from..]);
        Some(out)
    }
}

/// An object's members in order, each value kept raw.
struct Pairs<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(pair) = map.next_entry::<String, &'de RawValue>()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The catalog's limits of `model`.
    fn of(model: &str) -> ModelLimits {
        let limits = ModelLimits::of(model);
        assert_ne!(limits, ModelLimits::UNKNOWN, "{model}");
        limits
    }

    fn chat(body: &str, limits: ModelLimits) -> Option<String> {
        shape_chat_body(body.as_bytes(), limits)
            .unwrap()
            .map(|out| String::from_utf8(out.to_vec()).unwrap())
    }

    fn messages(body: &str, limits: ModelLimits) -> Option<String> {
        shape_messages_body(body.as_bytes(), limits)
            .unwrap()
            .map(|out| String::from_utf8(out.to_vec()).unwrap())
    }

    fn responses(body: &str, limits: ModelLimits) -> Option<String> {
        shape_responses_body(body.as_bytes(), limits)
            .unwrap()
            .map(|out| String::from_utf8(out.to_vec()).unwrap())
    }

    #[test]
    fn a_forwarded_responses_body_lowers_its_cap_and_drops_an_effort_the_model_cannot_take() {
        let codex = r#"{"model":"gpt-4o","input":"hi","reasoning":{"effort":"high","summary":"auto"},"max_output_tokens":32000,"store":false}"#;
        assert_eq!(
            responses(codex, of("gpt-4o")).unwrap(),
            r#"{"model":"gpt-4o","input":"hi","max_output_tokens":16384,"store":false}"#
        );
        // A summary alone asks for no effort, and a model with reasoning takes both.
        let summary = r#"{"model":"gpt-4o","reasoning":{"summary":"auto"}}"#;
        assert_eq!(responses(summary, of("gpt-4o")), None);
        assert_eq!(responses(codex, of("o3")), None);
    }

    #[test]
    fn a_chat_body_is_edited_in_place_and_every_other_byte_is_kept() {
        let body = "{\n  \"model\" : \"gpt-4o\",\n  \"max_tokens\": 32000 ,\"temperature\":2.50,\n  \"reasoning_effort\" : \"high\",\n  \"x_unknown\": {\"a\": [1, \"ü\"]}\n}";
        assert_eq!(
            chat(body, of("gpt-4o")).unwrap(),
            "{\n  \"model\" : \"gpt-4o\",\n  \"max_tokens\": 16384 ,\"temperature\":2.50,\n  \"x_unknown\": {\"a\": [1, \"ü\"]}\n}"
        );
        // Both caps, where a client sends both.
        let both = r#"{"max_completion_tokens":20000,"model":"m","max_tokens":100}"#;
        assert_eq!(
            chat(both, of("gpt-4o")).unwrap(),
            r#"{"max_completion_tokens":16384,"model":"m","max_tokens":100}"#
        );
    }

    #[test]
    fn members_left_out_first_last_or_alone_leave_valid_json() {
        for (body, expected) in [
            (
                r#"{"reasoning_effort":"low","model":"m"}"#,
                r#"{"model":"m"}"#,
            ),
            (
                r#"{ "reasoning_effort" : "low" , "model":"m"}"#,
                r#"{  "model":"m"}"#,
            ),
            (
                r#"{"model":"m","reasoning_effort":"low"}"#,
                r#"{"model":"m"}"#,
            ),
            (r#"{"reasoning_effort":"low"}"#, r#"{}"#),
            (
                r#"{"reasoning_effort":"low","reasoning_effort":"high","n":1}"#,
                r#"{"n":1}"#,
            ),
        ] {
            let out = chat(body, of("gpt-4o")).unwrap();
            assert_eq!(out, expected, "{body}");
            serde_json::from_str::<Value>(&out).unwrap();
        }
    }

    #[test]
    fn a_chat_body_within_limits_or_for_an_unknown_model_is_not_rewritten() {
        let body = r#"{"model":"m","max_tokens":16384,"reasoning_effort":null,"messages":[]}"#;
        assert_eq!(chat(body, of("gpt-4o")), None);
        let asks_more = r#"{"model":"m","max_tokens":100000,"reasoning_effort":"high"}"#;
        assert_eq!(chat(asks_more, ModelLimits::UNKNOWN), None);
        // A reasoning model keeps its effort.
        let o3 = ModelLimits {
            max_output_tokens: Some(100_000),
            reasoning: Some(true),
        };
        assert_eq!(chat(asks_more, o3), None);
        // A cap that is not a whole number of tokens is the upstream's to refuse.
        assert_eq!(chat(r#"{"max_tokens":"lots"}"#, of("gpt-4o")), None);
        assert_eq!(chat(r#"{"max_tokens":-1}"#, of("gpt-4o")), None);
    }

    #[test]
    fn an_anthropic_body_lowers_max_tokens_and_drops_or_fits_thinking() {
        let claude_code = r#"{"model":"claude-x","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999},"stream":true}"#;
        // No reasoning: thinking left out.
        assert_eq!(
            messages(claude_code, of("claude-3-5-haiku")).unwrap(),
            r#"{"model":"claude-x","max_tokens":8192,"stream":true}"#
        );
        // Within the maximum: untouched.
        assert_eq!(messages(claude_code, of("claude-opus-4")), None);
        // Lowered: the budget goes just under the new max_tokens, its other members kept.
        let sonnet_16k = ModelLimits {
            max_output_tokens: Some(16_000),
            reasoning: Some(true),
        };
        let big = r#"{"max_tokens":64000,"thinking":{"budget_tokens":40000,"type":"enabled"}}"#;
        assert_eq!(
            messages(big, sonnet_16k).unwrap(),
            r#"{"max_tokens":16000,"thinking":{"budget_tokens":15999,"type":"enabled"}}"#
        );
        // A budget that still fits is kept.
        let small = r#"{"max_tokens":64000,"thinking":{"type":"enabled","budget_tokens":2048}}"#;
        assert_eq!(
            messages(small, sonnet_16k).unwrap(),
            r#"{"max_tokens":16000,"thinking":{"type":"enabled","budget_tokens":2048}}"#
        );
        // Less than Anthropic's minimum fits: thinking is left out.
        let tiny = ModelLimits {
            max_output_tokens: Some(1_000),
            reasoning: Some(true),
        };
        assert_eq!(messages(big, tiny).unwrap(), r#"{"max_tokens":1000}"#);
        // Thinking disabled is taken by every model; adaptive thinking has no budget to fit.
        let disabled = r#"{"max_tokens":100,"thinking":{"type":"disabled"}}"#;
        assert_eq!(messages(disabled, of("claude-3-5-haiku")), None);
        let adaptive = r#"{"max_tokens":64000,"thinking":{"type":"adaptive"}}"#;
        assert_eq!(
            messages(adaptive, sonnet_16k).unwrap(),
            r#"{"max_tokens":16000,"thinking":{"type":"adaptive"}}"#
        );
        assert_eq!(messages(claude_code, ModelLimits::UNKNOWN), None);
    }

    #[test]
    fn claude_codes_request_to_an_older_claude_changes_only_those_bytes() {
        let body = include_str!("fixtures/anthropic/request_claude_code_claude.json");
        let shaped = messages(body, of("claude-3-5-haiku")).unwrap();
        // The original with `thinking` (and the comma before it) cut out and 32000 lowered.
        let start = body.find(",\n  \"thinking\"").unwrap();
        let end = start + body[start..].find('}').unwrap() + 1;
        let expected = format!("{}{}", &body[..start], &body[end..]).replacen(
            "\"max_tokens\": 32000",
            "\"max_tokens\": 8192",
            1,
        );
        assert_eq!(shaped, expected);
        let json: Value = serde_json::from_str(&shaped).unwrap();
        assert!(json.get("thinking").is_none());
        assert_eq!(
            json["output_config"],
            serde_json::from_str::<Value>(body).unwrap()["output_config"]
        );
    }
}

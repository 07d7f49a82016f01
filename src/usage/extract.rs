//! Reading `usage` from whole response bodies, and asking streaming upstreams for it.
//!
//! Both parse with small borrowed serde structs: unknown fields are skipped by the parser, never
//! copied into a tree.

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::Usage;

/// `usage` as OpenAI-style upstreams write it. The Responses API names (`input_tokens`, …) are
/// read too. Counts of an unexpected type count as zero rather than losing the whole record.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default, deserialize_with = "count")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "count")]
    completion_tokens: u64,
    #[serde(default, deserialize_with = "count")]
    input_tokens: u64,
    #[serde(default, deserialize_with = "count")]
    output_tokens: u64,
    #[serde(default, deserialize_with = "count")]
    total_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    input_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
    #[serde(default)]
    output_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default, deserialize_with = "count")]
    cached_tokens: u64,
    /// Prompt tokens written to the cache, billed at their own price (OpenRouter's name, and
    /// the one llmgate writes for an Anthropic answer in chat form).
    #[serde(default, deserialize_with = "count")]
    cache_write_tokens: u64,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default, deserialize_with = "count")]
    reasoning_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        let prompt_tokens = wire.prompt_tokens.max(wire.input_tokens);
        let completion_tokens = wire.completion_tokens.max(wire.output_tokens);
        let total_tokens = if wire.total_tokens == 0 {
            prompt_tokens.saturating_add(completion_tokens)
        } else {
            wire.total_tokens
        };
        let prompt_details = [wire.prompt_tokens_details, wire.input_tokens_details];
        let most = |read: fn(&PromptDetails) -> u64| {
            prompt_details.iter().flatten().map(read).max().unwrap_or(0)
        };
        let cached_tokens = most(|d| d.cached_tokens);
        let cache_creation_tokens = most(|d| d.cache_write_tokens);
        let reasoning_tokens = [wire.completion_tokens_details, wire.output_tokens_details]
            .into_iter()
            .flatten()
            .map(|d| d.reasoning_tokens)
            .max()
            .unwrap_or(0);
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens,
            cached_tokens,
            cache_creation_tokens,
            reasoning_tokens,
            estimated: false,
        }
    }
}

/// A token count: a non-negative integer, or zero for anything else (null, a float, a string).
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a token count")
        }
        fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E>(self, v: i64) -> Result<u64, E> {
            Ok(u64::try_from(v).unwrap_or(0))
        }
        fn visit_f64<E>(self, v: f64) -> Result<u64, E> {
            // Saturating float-to-int conversion; NaN becomes 0.
            Ok(if v.is_finite() && v > 0.0 {
                v as u64
            } else {
                0
            })
        }
        fn visit_str<E>(self, _: &str) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_bool<E>(self, _: bool) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_unit<E>(self) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_none<E>(self) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(0)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(0)
        }
    }
    deserializer.deserialize_any(Count)
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// The usage reported in a whole (non-streamed) chat, completions or embeddings response, or
/// `None` when the body is not a JSON object or carries no `usage` (absent or null).
pub fn from_body(body: &[u8]) -> Option<Usage> {
    if !starts_object(body) {
        return None;
    }
    serde_json::from_slice::<Envelope>(body)
        .ok()?
        .usage
        .map(Usage::from)
}

/// A whole successful answer, read once: whether it is JSON at all, and what usage it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WholeAnswer {
    /// Valid JSON; with the usage when it reports one in OpenAI's form.
    Json(Option<Usage>),
    NotJson,
}

/// Checks that `body` is JSON and reads its `usage` in the same pass (the usual case: an
/// OpenAI answer). Only a body that is not an object with a readable `usage` is read twice.
pub fn read_answer(body: &[u8]) -> WholeAnswer {
    if starts_object(body)
        && let Ok(envelope) = serde_json::from_slice::<Envelope>(body)
    {
        return WholeAnswer::Json(envelope.usage.map(Usage::from));
    }
    // Valid JSON of another shape (an array, a `usage` of an odd type) is still an answer.
    match serde_json::from_slice::<IgnoredAny>(body) {
        Ok(_) => WholeAnswer::Json(None),
        Err(_) => WholeAnswer::NotJson,
    }
}

/// Whether the first non-blank byte opens an object (serde would read an array as a struct).
pub(super) fn starts_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// How a streaming request asks the upstream for its usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeUsage {
    /// The client set `stream_options.include_usage: true` itself: send its body as it is and
    /// forward the usage chunk.
    Requested,
    /// llmgate added the option to this body: send it instead, and drop the usage-only chunk
    /// before it reaches the client (see [`super::StreamUsage::filtering`]).
    Added(Bytes),
}

impl IncludeUsage {
    /// Whether the client asked for the usage chunk.
    pub fn client_asked(&self) -> bool {
        matches!(self, Self::Requested)
    }
}

#[derive(Deserialize)]
struct RequestFields<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    stream_options: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptions<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    include_usage: Option<&'a RawValue>,
}

/// A field that is present, even when its value is `null` (which `Option` would turn into
/// `None`, indistinguishable from absent).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(deserializer).map(Some)
}

const INCLUDE_USAGE_TRUE: &[u8] = br#""include_usage":true"#;

/// For a streaming chat or completions request: whether the client asked for usage
/// (`stream_options.include_usage: true`), and if not, the body with that option set — added as
/// `"stream_options":{"include_usage":true}`, inserted into an existing `stream_options` object,
/// or replacing a `false`/`null` value. Every other byte is kept.
///
/// `None` when the body cannot be rewritten safely (not a JSON object, `stream_options` not an
/// object): send it unchanged and filter nothing; the upstream will judge it.
pub fn ensure_include_usage(body: &[u8]) -> Option<IncludeUsage> {
    if !starts_object(body) {
        return None;
    }
    let fields: RequestFields<'_> = serde_json::from_slice(body).ok()?;
    let Some(options) = fields.stream_options else {
        return Some(IncludeUsage::Added(add_stream_options(body)?));
    };
    let options_span = span_in(body, options.get())?;
    let options_text = options.get();
    if options_text == "null" {
        return Some(IncludeUsage::Added(splice(
            body,
            options_span,
            br#"{"include_usage":true}"#,
        )));
    }
    if !options_text.starts_with('{') {
        return None;
    }
    let inner: StreamOptions<'_> = serde_json::from_str(options_text).ok()?;
    match inner.include_usage {
        Some(value) if value.get() == "true" => Some(IncludeUsage::Requested),
        Some(value) => {
            let span = span_in(body, value.get())?;
            Some(IncludeUsage::Added(splice(body, span, b"true")))
        }
        None => {
            // Insert as the first member, right after the opening brace.
            let open = options_span.start + 1;
            let rest = &body[open..options_span.end - 1];
            let mut insert = INCLUDE_USAGE_TRUE.to_vec();
            if rest.iter().any(|b| !b.is_ascii_whitespace()) {
                insert.push(b',');
            }
            Some(IncludeUsage::Added(splice(body, open..open, &insert)))
        }
    }
}

/// Appends `"stream_options":{"include_usage":true}` as the last member of the top-level object.
fn add_stream_options(body: &[u8]) -> Option<Bytes> {
    let close = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if body[close] != b'}' {
        return None;
    }
    let before = body[..close]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())?;
    let mut insert = Vec::with_capacity(48);
    if body[before] != b'{' {
        insert.push(b',');
    }
    insert.extend_from_slice(br#""stream_options":{"#);
    insert.extend_from_slice(INCLUDE_USAGE_TRUE);
    insert.push(b'}');
    Some(splice(body, close..close, &insert))
}

/// Where `part`, a string borrowed from `body`, sits in it.
fn span_in(body: &[u8], part: &str) -> Option<std::ops::Range<usize>> {
    let start = part.as_ptr().addr().checked_sub(body.as_ptr().addr())?;
    let span = start..start + part.len();
    // A borrowed `RawValue` always points into the input; check rather than trust.
    (body.get(span.clone()) == Some(part.as_bytes())).then_some(span)
}

fn splice(body: &[u8], span: std::ops::Range<usize>, insert: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + insert.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(insert);
    out.extend_from_slice(&body[span.end..]);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(p: u64, c: u64, t: u64, cached: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: t,
            cached_tokens: cached,
            cache_creation_tokens: 0,
            reasoning_tokens: reasoning,
            estimated: false,
        }
    }

    #[test]
    fn answers_are_checked_and_their_usage_read_in_one_call() {
        let answer = |body: &str| read_answer(body.as_bytes());
        assert_eq!(
            answer(r#"{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}}"#),
            WholeAnswer::Json(Some(usage(2, 3, 5, 0, 0)))
        );
        assert_eq!(answer(r#"{"choices":[]}"#), WholeAnswer::Json(None));
        // JSON of another shape is an answer without usage, never "not JSON".
        assert_eq!(answer(r#"[{"usage":1}]"#), WholeAnswer::Json(None));
        assert_eq!(answer(r#"{"usage":"odd"}"#), WholeAnswer::Json(None));
        assert_eq!(answer(" 42 "), WholeAnswer::Json(None));
        for broken in ["", "{", r#"{"usage":{}} trailing"#, "<html>busy</html>"] {
            assert_eq!(answer(broken), WholeAnswer::NotJson, "{broken}");
        }
    }

    #[test]
    fn usage_is_read_from_whole_bodies() {
        let check = |body: &str, expected: Option<Usage>| {
            assert_eq!(from_body(body.as_bytes()), expected, "{body}");
        };
        check(
            r#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi \"usage\""}}],
               "usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,
                        "prompt_tokens_details":{"cached_tokens":8,"audio_tokens":0},
                        "completion_tokens_details":{"reasoning_tokens":3,"accepted_prediction_tokens":0}}}"#,
            Some(usage(12, 5, 17, 8, 3)),
        );
        // Embeddings report prompt and total only.
        check(
            r#"{"object":"list","data":[{"embedding":[0.1,-0.2]}],"model":"e","usage":{"prompt_tokens":9,"total_tokens":9}}"#,
            Some(usage(9, 0, 9, 0, 0)),
        );
        // A missing total is the sum; null details are no details.
        check(
            r#"{"usage":{"prompt_tokens":2,"completion_tokens":3,"prompt_tokens_details":null}}"#,
            Some(usage(2, 3, 5, 0, 0)),
        );
        // The Responses API's names.
        check(
            r#"{"usage":{"input_tokens":4,"output_tokens":6,"total_tokens":10,
                         "input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":2}}}"#,
            Some(usage(4, 6, 10, 1, 2)),
        );
        // Odd values count as zero instead of losing the record.
        check(
            r#"{"usage":{"prompt_tokens":"7","completion_tokens":2.0,"total_tokens":null,"prompt_tokens_details":{"cached_tokens":[1]}}}"#,
            Some(usage(0, 2, 2, 0, 0)),
        );
        check(r#"{"choices":[]}"#, None);
        check(r#"{"usage":null}"#, None);
        check(r#"[{"usage":{"prompt_tokens":1}}]"#, None);
        check("not json", None);
        check("", None);
    }

    fn rewrite(body: &str) -> Option<String> {
        match ensure_include_usage(body.as_bytes())? {
            IncludeUsage::Requested => Some("<requested>".into()),
            IncludeUsage::Added(bytes) => Some(String::from_utf8(bytes.to_vec()).unwrap()),
        }
    }

    #[test]
    fn include_usage_is_added_without_touching_other_bytes() {
        let check = |body: &str, expected: Option<&str>| {
            let got = rewrite(body);
            assert_eq!(got.as_deref(), expected, "{body}");
            if let Some(rewritten) = got.filter(|g| g != "<requested>") {
                let value: serde_json::Value = serde_json::from_str(&rewritten).unwrap();
                assert_eq!(
                    value["stream_options"]["include_usage"], true,
                    "{rewritten}"
                );
            }
        };
        // Absent: appended as the last member.
        check(
            r#"{"model":"m","stream":true,"messages":[]}"#,
            Some(
                r#"{"model":"m","stream":true,"messages":[],"stream_options":{"include_usage":true}}"#,
            ),
        );
        check(
            "{\n  \"model\": \"m\",\n  \"stream\": true\n}\n",
            Some(
                "{\n  \"model\": \"m\",\n  \"stream\": true\n,\"stream_options\":{\"include_usage\":true}}\n",
            ),
        );
        check("{ }", Some(r#"{ "stream_options":{"include_usage":true}}"#));
        // Already asked, in any spacing.
        check(
            r#"{"model":"m","stream_options":{"include_usage":true}}"#,
            Some("<requested>"),
        );
        check(
            r#"{"model":"m","stream_options": { "foo": 1 ,"include_usage" :  true } }"#,
            Some("<requested>"),
        );
        // Asked not to: the value is replaced.
        check(
            r#"{"model":"m","stream_options":{"include_usage":false,"x":[1]}}"#,
            Some(r#"{"model":"m","stream_options":{"include_usage":true,"x":[1]}}"#),
        );
        check(
            r#"{"stream_options":{"include_usage" : null},"model":"m"}"#,
            Some(r#"{"stream_options":{"include_usage" : true},"model":"m"}"#),
        );
        // An options object without the field gets it as its first member.
        check(
            r#"{"model":"m","stream_options":{"include_obfuscation":false}}"#,
            Some(
                r#"{"model":"m","stream_options":{"include_usage":true,"include_obfuscation":false}}"#,
            ),
        );
        check(
            r#"{"model":"m","stream_options":{ }}"#,
            Some(r#"{"model":"m","stream_options":{"include_usage":true }}"#),
        );
        check(
            r#"{"model":"m","stream_options":{"a":{"include_usage":true}}}"#,
            Some(
                r#"{"model":"m","stream_options":{"include_usage":true,"a":{"include_usage":true}}}"#,
            ),
        );
        // Null options become an object.
        check(
            r#"{"model":"m","stream_options":null}"#,
            Some(r#"{"model":"m","stream_options":{"include_usage":true}}"#),
        );
        // A string mentioning the option is not the option.
        check(
            r#"{"messages":[{"content":"\"stream_options\":{\"include_usage\":true}"}]}"#,
            Some(
                r#"{"messages":[{"content":"\"stream_options\":{\"include_usage\":true}"}],"stream_options":{"include_usage":true}}"#,
            ),
        );
        // Unicode elsewhere is kept byte for byte.
        check(
            r#"{"messages":[{"content":"héllo \u00e9 🎉"}]}"#,
            Some(
                r#"{"messages":[{"content":"héllo \u00e9 🎉"}],"stream_options":{"include_usage":true}}"#,
            ),
        );
        // Nothing safe to do: left to the upstream.
        check(r#"{"model":"m","stream_options":"yes"}"#, None);
        check(r#"{"model":"m","stream_options":[]}"#, None);
        check(r#"["model"]"#, None);
        check(r#"{"model":"m""#, None);
        check(
            r#"{"model":"m","model":"n"}"#,
            Some(r#"{"model":"m","model":"n","stream_options":{"include_usage":true}}"#),
        );
    }

    #[test]
    fn client_asked_reflects_the_request() {
        assert!(IncludeUsage::Requested.client_asked());
        assert!(!IncludeUsage::Added(Bytes::new()).client_asked());
    }
}

//! Reading the few fields of a client request the gateway needs, without building a JSON tree,
//! and rewriting `model` in place so every other byte reaches the upstream unchanged.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::pricing::{ModelLimits, Nanodollars};
use crate::routing::Model;
use crate::translate::sets_effort;
use crate::vocab::Endpoint;

/// The longest model name a request may carry; a longer one is refused (400) before it is
/// looked up, logged or counted.
pub const MAX_MODEL_BYTES: usize = 256;

/// The parts of a request body that routing and limits need, read in one pass.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The stored response a Responses request continues.
    pub previous_response_id: Option<Cow<'a, str>>,
    /// What the reservation is made of: the body's length, the completion cap it sets, and
    /// whether it holds a prompt that generates (`messages` or `prompt`).
    body_len: usize,
    cap: Option<Option<u64>>,
    has_prompt: bool,
    /// Where the JSON value of `model` (quotes included) sits in the body.
    model_span: Range<usize>,
    /// What the request asks of the upstream model that a route may not give.
    asks: ModelAsks<'a>,
}

/// The output caps and reasoning settings a request sets, by the names the dialects give
/// them, read in the same pass as the rest of the head: whether a request needs shaping for
/// its route is decided from these alone, without another look at the body.
#[derive(Debug, Default)]
struct ModelAsks<'a> {
    /// Each cap, where it is a whole number of tokens (any other value is never shaped).
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    /// Chat's effort, Responses' `reasoning` object, Anthropic's `thinking`, as sent; `None`
    /// when absent or `null`.
    reasoning_effort: Option<&'a RawValue>,
    reasoning: Option<&'a RawValue>,
    thinking: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    previous_response_id: Option<Cow<'a, str>>,
    // Read for the token reservation; a value of the wrong type only makes it cautious.
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_effort: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thinking: Option<&'a RawValue>,
    #[serde(default)]
    messages: Option<IgnoredAny>,
    #[serde(default)]
    prompt: Option<IgnoredAny>,
}

impl<'a> Fields<'a> {
    /// What the request asks of the upstream model (see [`ModelAsks`]).
    fn asks(&self) -> ModelAsks<'a> {
        let whole =
            |raw: Option<&RawValue>| raw.and_then(|raw| serde_json::from_str(raw.get()).ok());
        ModelAsks {
            max_tokens: whole(self.max_tokens),
            max_completion_tokens: whole(self.max_completion_tokens),
            max_output_tokens: whole(self.max_output_tokens),
            reasoning_effort: self.reasoning_effort,
            reasoning: self.reasoning,
            thinking: self.thinking,
        }
    }

    /// The completion cap the request sets: `Some(None)` for none, `None` when a cap is not a
    /// whole number of tokens.
    fn completion_cap(&self) -> Option<Option<u64>> {
        let read = |raw: Option<&RawValue>| match raw {
            None => Some(None),
            Some(raw) => serde_json::from_str::<Option<u64>>(raw.get()).ok(),
        };
        let max_completion_tokens = read(self.max_completion_tokens)?;
        let max_tokens = read(self.max_tokens)?;
        let max_output_tokens = read(self.max_output_tokens)?;
        Some(max_completion_tokens.or(max_tokens).or(max_output_tokens))
    }
}

impl<'a> RequestHead<'a> {
    /// Validates that `body` is one JSON object and reads `model` and `stream` from it. Unknown
    /// fields are skipped by the parser, not copied.
    pub fn parse(body: &'a [u8]) -> Result<Self, ApiError> {
        // serde would read a JSON array as a struct's fields in order; only objects are requests.
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(ApiError::invalid_request(
                "The request body must be a JSON object with the fields of the OpenAI API.",
            ));
        }
        // JSON is UTF-8. The parser does not check the strings it skips, and a body is
        // forwarded byte for byte, so it is checked whole here (a fast scan next to parsing).
        let text = std::str::from_utf8(body).map_err(|e| {
            ApiError::invalid_request(format!(
                "The request body is not valid UTF-8: the byte at offset {} is not. Send JSON \
                 encoded as UTF-8.",
                e.valid_up_to()
            ))
        })?;
        let fields: Fields<'a> = serde_json::from_str(text).map_err(|e| {
            let what = if e.is_data() {
                "The request body must be a JSON object with the fields of the OpenAI API"
            } else {
                "The request body is not valid JSON"
            };
            ApiError::invalid_request(format!("{what}: {e}."))
        })?;
        let raw = fields.model.ok_or_else(|| {
            ApiError::invalid_param(
                "model",
                "The request has no 'model'. Name one of the models from GET /v1/models.",
            )
        })?;
        let model: Cow<'a, str> = serde_json::from_str(raw.get()).map_err(|_| {
            ApiError::invalid_param("model", "'model' must be a string naming a model.")
        })?;
        if model.is_empty() {
            return Err(ApiError::invalid_param(
                "model",
                "'model' is empty. Name one of the models from GET /v1/models.",
            ));
        }
        // Checked before the name is copied, looked up or counted anywhere.
        if model.len() > MAX_MODEL_BYTES {
            return Err(ApiError::invalid_param(
                "model",
                format!(
                    "'model' is {} bytes long; model names are at most {MAX_MODEL_BYTES} bytes. \
                     Name one of the models from GET /v1/models.",
                    model.len()
                ),
            ));
        }
        let start = raw.get().as_ptr().addr().wrapping_sub(body.as_ptr().addr());
        let model_span = start..start + raw.get().len();
        // A borrowed `RawValue` always points into the input; check rather than trust.
        if body.get(model_span.clone()) != Some(raw.get().as_bytes()) {
            return Err(ApiError::internal("model value is not a slice of the body"));
        }
        let cap = fields.completion_cap();
        let asks = fields.asks();
        Ok(Self {
            model,
            stream: fields.stream.unwrap_or(false),
            previous_response_id: fields.previous_response_id,
            body_len: body.len(),
            cap,
            has_prompt: fields.messages.is_some() || fields.prompt.is_some(),
            model_span,
            asks,
        })
    }

    /// The tokens to reserve against the key's limits for this request on `endpoint` (see
    /// [`crate::limits::estimate_request_tokens`]): none for a token count; a default
    /// completion for a Responses request that sets no cap, whose `input` (also an embedding's
    /// field) does not say that it generates.
    pub fn reserve(&self, endpoint: Endpoint) -> u64 {
        let generates = match endpoint {
            Endpoint::CountTokens => return 0,
            Endpoint::Responses => true,
            _ => self.has_prompt,
        };
        crate::limits::estimate_tokens(self.body_len, self.cap, generates)
    }

    /// What this request on `endpoint` asks beyond what a route's upstream model takes
    /// (`limits`), and so is shaped for it: caps above the model's maximum, a reasoning
    /// setting for a model without reasoning. Empty, at the cost of a few comparisons, for a
    /// request within the limits or a model the catalog does not know.
    pub fn shaping(&self, endpoint: Endpoint, limits: ModelLimits) -> Shaping {
        let mut shaping = Shaping::default();
        if limits == ModelLimits::UNKNOWN {
            return shaping;
        }
        let asks = &self.asks;
        // Each dialect's caps, and its reasoning setting with the test of whether it asks for
        // reasoning (run only for a model without it: a thinking model costs no look inside).
        type Asks = fn(&RawValue) -> bool;
        type Cap = (&'static str, Option<u64>);
        type Setting<'h> = Option<(&'static str, &'h RawValue, Asks)>;
        let (caps, reasoning): (&[Cap], Setting<'_>) = match endpoint {
            Endpoint::ChatCompletions => (
                &[
                    ("max_tokens", asks.max_tokens),
                    ("max_completion_tokens", asks.max_completion_tokens),
                ],
                asks.reasoning_effort
                    .map(|effort| ("reasoning_effort", effort, (|_| true) as Asks)),
            ),
            Endpoint::Messages => (
                &[("max_tokens", asks.max_tokens)],
                asks.thinking
                    .map(|thinking| ("thinking", thinking, enables_thinking as Asks)),
            ),
            Endpoint::Responses => (
                &[("max_output_tokens", asks.max_output_tokens)],
                asks.reasoning
                    .map(|reasoning| ("reasoning", reasoning, sets_effort as Asks)),
            ),
            Endpoint::Completions | Endpoint::Embeddings | Endpoint::CountTokens => {
                return shaping;
            }
        };
        for (field, cap) in caps {
            if let Some(cap) = *cap
                && limits.lowers(cap)
            {
                shaping.changes.push(Change::Lowered {
                    field,
                    to: limits.output_cap(cap),
                });
            }
        }
        if !limits.takes_reasoning()
            && let Some((field, value, asks_reasoning)) = reasoning
            && asks_reasoning(value)
        {
            shaping.changes.push(Change::Dropped { field });
        }
        shaping
    }

    /// The most this request may cost on any route of `model`, for a dollar budget: its
    /// prompt estimate (a token per four bytes of body, as [`RequestHead::reserve`]) at each
    /// route's dearest prompt price, plus its completion cap, else the route's
    /// `max_output_tokens`, else [`crate::limits::DEFAULT_COMPLETION_ESTIMATE`], at the output
    /// price. The reservation is taken at the dearest route because a failover may land
    /// anywhere among them; it is settled with the real cost of the route that answered.
    pub fn worst_case_cost(&self, endpoint: Endpoint, model: &Model) -> Nanodollars {
        let generates = match endpoint {
            Endpoint::CountTokens => return Nanodollars::default(),
            Endpoint::Responses => true,
            _ => self.has_prompt,
        };
        let prompt = crate::limits::estimate_tokens(self.body_len, Some(Some(0)), true);
        model.worst_case_cost(
            prompt,
            self.cap.flatten(),
            generates,
            crate::limits::DEFAULT_COMPLETION_ESTIMATE,
        )
    }

    /// The body with `model`'s value replaced by `upstream_model`; all other bytes are kept.
    pub fn rewrite_model(&self, body: &[u8], upstream_model: &str) -> Bytes {
        let mut out = Vec::with_capacity(body.len() + upstream_model.len());
        out.extend_from_slice(&body[..self.model_span.start]);
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, upstream_model);
        out.extend_from_slice(&body[self.model_span.end..]);
        Bytes::from(out)
    }
}

/// Whether Anthropic's `thinking` turns thinking on: anything but `{"type": "disabled"}` (a
/// value that cannot be read counts as on, and is refused where it is read whole).
fn enables_thinking(thinking: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Kind<'_>>(thinking.get())
        .map_or(true, |kind| kind.kind.as_deref() != Some("disabled"))
}

/// How a request is shaped for one route, named by the client's own fields: what the
/// `x-llmgate-shaped` answer header and the debug log line say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shaping {
    changes: Vec<Change>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// An output cap lowered to the model's maximum.
    Lowered { field: &'static str, to: u64 },
    /// A reasoning setting left out.
    Dropped { field: &'static str },
}

impl Shaping {
    /// Nothing is shaped: the request goes as it is (byte for byte to its own dialect).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl std::fmt::Display for Shaping {
    /// `max_tokens=16384, thinking=dropped`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (at, change) in self.changes.iter().enumerate() {
            if at > 0 {
                f.write_str(", ")?;
            }
            match change {
                Change::Lowered { field, to } => write!(f, "{field}={to}")?,
                Change::Dropped { field } => write!(f, "{field}=dropped")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(body: &str, upstream: &str) -> String {
        let head = RequestHead::parse(body.as_bytes()).unwrap();
        String::from_utf8(head.rewrite_model(body.as_bytes(), upstream).to_vec()).unwrap()
    }

    #[test]
    fn only_the_model_value_changes() {
        let cases = [
            (
                r#"{"model":"gpt","messages":[],"x_unknown":{"a":[1,2.50,"ü"]}}"#,
                r#"{"model":"up-1","messages":[],"x_unknown":{"a":[1,2.50,"ü"]}}"#,
            ),
            (
                "{\n  \"temperature\" : 0.7 ,\n  \"model\" :  \"gpt\"\n}",
                "{\n  \"temperature\" : 0.7 ,\n  \"model\" :  \"up-1\"\n}",
            ),
            (r#"{"model":"g\u0070t"}"#, r#"{"model":"up-1"}"#),
        ];
        for (input, expected) in cases {
            assert_eq!(rewrite(input, "up-1"), expected);
        }
        assert_eq!(
            rewrite(r#"{"model":"a"}"#, "with \"quote\""),
            r#"{"model":"with \"quote\""}"#
        );
    }

    #[test]
    fn reads_model_and_stream() {
        let head = RequestHead::parse(br#"{"stream":true,"model":"g\u0070t"}"#).unwrap();
        assert_eq!(head.model, "gpt");
        assert!(head.stream);
        assert!(
            !RequestHead::parse(br#"{"model":"m","stream":null}"#)
                .unwrap()
                .stream
        );
    }

    #[test]
    fn the_reservation_read_in_the_same_pass_is_the_limits_estimate() {
        for body in [
            r#"{"model":"m","messages":[],"max_tokens":100}"#,
            r#"{"model":"m","messages":[],"max_tokens":100,"max_completion_tokens":7}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"m","prompt":"once upon"}"#,
            r#"{"model":"m","input":"embed me"}"#,
            r#"{"model":"m","input":"x","max_output_tokens":9}"#,
            r#"{"model":"m","messages":[],"max_tokens":null}"#,
            r#"{"model":"m","input":"x","max_tokens":"lots"}"#,
            r#"{"model":"m","messages":[],"max_tokens":-1,"max_completion_tokens":5}"#,
            r#"{"model":"m","messages":null,"max_output_tokens":2.5}"#,
        ] {
            let head = RequestHead::parse(body.as_bytes()).unwrap();
            assert_eq!(
                head.reserve(Endpoint::ChatCompletions),
                crate::limits::estimate_request_tokens(body.as_bytes()),
                "{body}"
            );
        }
    }

    fn shaping(endpoint: Endpoint, body: &str, limits: ModelLimits) -> String {
        RequestHead::parse(body.as_bytes())
            .unwrap()
            .shaping(endpoint, limits)
            .to_string()
    }

    #[test]
    fn shaping_names_the_clients_own_fields_beyond_the_routes_limits() {
        let claude_code = r#"{"model":"claude-sonnet-4-5","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999},"messages":[]}"#;
        assert_eq!(
            shaping(Endpoint::Messages, claude_code, ModelLimits::of("gpt-4o")),
            "max_tokens=16384, thinking=dropped"
        );
        let chat = r#"{"model":"m","max_tokens":20000,"max_completion_tokens":32000,"reasoning_effort":"high"}"#;
        assert_eq!(
            shaping(Endpoint::ChatCompletions, chat, ModelLimits::of("gpt-4o")),
            "max_tokens=16384, max_completion_tokens=16384, reasoning_effort=dropped"
        );
        let codex = r#"{"model":"gpt-5-codex","input":[],"reasoning":{"effort":"medium","summary":"auto"}}"#;
        assert_eq!(
            shaping(Endpoint::Responses, codex, ModelLimits::of("gpt-4o")),
            "reasoning=dropped"
        );
        // A field of another dialect means nothing here.
        assert_eq!(
            shaping(
                Endpoint::Responses,
                r#"{"model":"m","max_tokens":99999,"reasoning_effort":"high"}"#,
                ModelLimits::of("gpt-4o")
            ),
            ""
        );
    }

    #[test]
    fn nothing_is_shaped_within_the_limits_or_for_a_model_the_catalog_does_not_know() {
        let claude_code = r#"{"model":"c","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999}}"#;
        let head = RequestHead::parse(claude_code.as_bytes()).unwrap();
        assert!(
            head.shaping(Endpoint::Messages, ModelLimits::UNKNOWN)
                .is_empty()
        );
        let opus_4 = ModelLimits::of("claude-opus-4-20250514");
        assert!(head.shaping(Endpoint::Messages, opus_4).is_empty());
        // Not a generating request of a dialect that is shaped.
        assert!(
            head.shaping(Endpoint::CountTokens, ModelLimits::of("gpt-4o"))
                .is_empty()
        );
        assert!(
            head.shaping(Endpoint::Completions, ModelLimits::of("gpt-4o"))
                .is_empty()
        );
        // Settings that ask for no reasoning, and caps that are no whole number.
        for (endpoint, body) in [
            (
                Endpoint::Messages,
                r#"{"model":"m","max_tokens":100,"thinking":{"type":"disabled"}}"#,
            ),
            (
                Endpoint::Responses,
                r#"{"model":"m","reasoning":{"summary":"auto"}}"#,
            ),
            (
                Endpoint::ChatCompletions,
                r#"{"model":"m","reasoning_effort":null,"max_tokens":"lots"}"#,
            ),
            (
                Endpoint::ChatCompletions,
                r#"{"model":"m","max_tokens":16384}"#,
            ),
        ] {
            assert_eq!(
                shaping(endpoint, body, ModelLimits::of("gpt-4o")),
                "",
                "{body}"
            );
        }
    }

    #[test]
    fn bad_bodies_are_client_errors_with_a_reason() {
        let check = |body: &str, needle: &str| {
            let error = RequestHead::parse(body.as_bytes()).unwrap_err();
            assert_eq!(error.status().as_u16(), 400, "{body}");
            let text = error.to_json(None);
            assert!(text.contains(needle), "{body}: {text}");
        };
        check(r#"{"model": "m",}"#, "line 1 column 15");
        check("", "not valid JSON");
        check("[1]", "JSON object");
        check(r#"{"messages":[]}"#, "no 'model'");
        check(r#"{"model":42}"#, "must be a string");
        check(r#"{"model":""}"#, "empty");
        check(r#"{"model":"m","stream":"yes"}"#, "boolean");
        check(r#"{"model":"m"} trailing"#, "trailing");
    }

    #[test]
    fn invalid_utf8_anywhere_is_refused_naming_its_offset() {
        // In a skipped field, where the parser does not look at string bytes.
        let mut body = br#"{"model":"m","messages":[{"role":"user","content":"ab"#.to_vec();
        let offset = body.len();
        body.extend_from_slice(b"\xff\xfe\"}]}");
        let error = RequestHead::parse(&body).unwrap_err();
        assert_eq!(error.status().as_u16(), 400);
        let text = error.to_json(None);
        assert!(text.contains(&format!("offset {offset}")), "{text}");
        assert!(text.contains("UTF-8"), "{text}");
        // A truncated multi-byte character at the very end, too.
        let mut cut = br#"{"model":"m"}"#.to_vec();
        cut.push(0xc3);
        assert!(RequestHead::parse(&cut).is_err());
    }

    #[test]
    fn model_names_past_the_limit_are_refused_without_being_echoed() {
        let longest = "m".repeat(MAX_MODEL_BYTES);
        let body = format!(r#"{{"model":"{longest}"}}"#);
        assert_eq!(RequestHead::parse(body.as_bytes()).unwrap().model, longest);
        let huge = "m".repeat(1 << 20);
        let body = format!(r#"{{"model":"{huge}"}}"#);
        let error = RequestHead::parse(body.as_bytes()).unwrap_err();
        assert_eq!(error.status().as_u16(), 400);
        let text = error.to_json(None);
        assert!(text.len() < 400, "{text}");
        assert!(text.contains("at most 256 bytes"), "{text}");
        assert!(text.contains(r#""param":"model""#), "{text}");
    }
}

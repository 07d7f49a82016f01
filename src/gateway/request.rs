//! Reading the few fields of a client request the gateway needs, without building a JSON tree,
//! and rewriting `model` in place so every other byte reaches the upstream unchanged.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::pricing::Nanodollars;
use crate::routing::Model;
use crate::vocab::Endpoint;

/// The longest model name a request may carry; a longer one is refused (400) before it is
/// looked up, logged or counted.
pub const MAX_MODEL_BYTES: usize = 256;

/// The parts of a request body that routing and limits need, read in one pass.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// What the reservation is made of: the body's length, the completion cap it sets, and
    /// whether it holds a prompt that generates (`messages` or `prompt`).
    body_len: usize,
    cap: Option<Option<u64>>,
    has_prompt: bool,
    /// Where the JSON value of `model` (quotes included) sits in the body.
    model_span: Range<usize>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    // Read for the token reservation; a value of the wrong type only makes it cautious.
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(default)]
    messages: Option<IgnoredAny>,
    #[serde(default)]
    prompt: Option<IgnoredAny>,
}

impl Fields<'_> {
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
        Ok(Self {
            model,
            stream: fields.stream.unwrap_or(false),
            body_len: body.len(),
            cap: fields.completion_cap(),
            has_prompt: fields.messages.is_some() || fields.prompt.is_some(),
            model_span,
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

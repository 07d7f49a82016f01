//! Reading the few fields of a client request the gateway needs, without building a JSON tree,
//! and rewriting `model` in place so every other byte reaches the upstream unchanged.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// The parts of a request body that routing needs.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// Where the JSON value of `model` (quotes included) sits in the body.
    model_span: Range<usize>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
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
        let fields: Fields<'a> = serde_json::from_slice(body).map_err(|e| {
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
        let start = raw.get().as_ptr().addr().wrapping_sub(body.as_ptr().addr());
        let model_span = start..start + raw.get().len();
        // A borrowed `RawValue` always points into the input; check rather than trust.
        if body.get(model_span.clone()) != Some(raw.get().as_bytes()) {
            return Err(ApiError::internal("model value is not a slice of the body"));
        }
        Ok(Self {
            model,
            stream: fields.stream.unwrap_or(false),
            model_span,
        })
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
}

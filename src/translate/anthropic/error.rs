//! Error bodies in Anthropic's shape, and the mapping between Anthropic's and OpenAI's error
//! types in both directions.

use bytes::Bytes;
use serde::Serialize;

use super::wire::ErrorBodyIn;
use crate::translate::json::to_bytes;
use crate::translate::openai::{ErrorBodyIn as ChatErrorBodyIn, ErrorBodyOut, ErrorOut};

#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
}

/// `{"type": "error", "error": {"type": kind, "message": message}}`.
pub fn anthropic_error_body(kind: &str, message: &str) -> String {
    let body = ErrorBody {
        kind: "error",
        error: ErrorDetail { kind, message },
    };
    serde_json::to_string(&body).unwrap_or_else(|_| {
        r#"{"type":"error","error":{"type":"api_error","message":"error"}}"#.to_owned()
    })
}

/// Anthropic's error type for an HTTP status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Anthropic's error type for an OpenAI error `type` (and `code`, which OpenAI uses for the
/// finer distinctions), falling back to the HTTP status.
pub fn anthropic_error_type_for(
    openai_type: &str,
    code: Option<&str>,
    status: u16,
) -> &'static str {
    match (openai_type, code) {
        (_, Some("invalid_api_key")) | ("authentication_error", _) => "authentication_error",
        ("insufficient_quota", _) | (_, Some("insufficient_quota")) => "billing_error",
        ("rate_limit_error" | "rate_limit_exceeded", _) => "rate_limit_error",
        ("permission_error", _) => "permission_error",
        (_, Some("model_not_found" | "not_found")) => "not_found_error",
        (_, Some("request_too_large")) => "request_too_large",
        (_, Some("upstream_timeout")) => "timeout_error",
        (_, Some("no_healthy_route" | "shutting_down")) => "overloaded_error",
        _ => anthropic_error_type(status),
    }
}

/// OpenAI's error `type` and `code` for an Anthropic error type, as llmgate's own errors use
/// them.
pub fn openai_error_type_for(anthropic_type: &str) -> (&'static str, Option<&'static str>) {
    match anthropic_type {
        "invalid_request_error" => ("invalid_request_error", None),
        "authentication_error" => ("invalid_request_error", Some("invalid_api_key")),
        "billing_error" => ("insufficient_quota", Some("insufficient_quota")),
        "permission_error" => ("permission_error", None),
        "not_found_error" => ("invalid_request_error", Some("not_found")),
        "request_too_large" => ("invalid_request_error", Some("request_too_large")),
        "rate_limit_error" => ("rate_limit_error", Some("rate_limit_exceeded")),
        "timeout_error" => ("api_error", Some("upstream_timeout")),
        _ => ("api_error", None),
    }
}

/// An OpenAI-compatible upstream's error body, rewritten in Anthropic's shape for a client of
/// `/v1/messages`. A body that is not an OpenAI error keeps only the status's meaning.
pub fn chat_error_to_messages(status: u16, body: &[u8]) -> Bytes {
    let parsed = serde_json::from_slice::<ChatErrorBodyIn<'_>>(body).ok();
    let error = parsed.as_ref().map(|body| &body.error);
    let message = error
        .and_then(|error| error.message.as_deref())
        .unwrap_or("The upstream provider returned an error.");
    let kind = error.and_then(|error| error.kind.as_deref()).map_or_else(
        || anthropic_error_type(status),
        |kind| anthropic_error_type_for(kind, None, status),
    );
    Bytes::from(anthropic_error_body(kind, message))
}

/// An Anthropic upstream's error body, rewritten in OpenAI's shape for a client of
/// `/v1/chat/completions`.
pub fn messages_error_to_chat(status: u16, body: &[u8]) -> Bytes {
    let parsed = serde_json::from_slice::<ErrorBodyIn<'_>>(body).ok();
    let error = parsed.as_ref().map(|body| &body.error);
    let message = error
        .and_then(|error| error.message.as_deref())
        .unwrap_or("The upstream provider returned an error.");
    let anthropic_type = error
        .and_then(|error| error.kind.as_deref())
        .unwrap_or_else(|| anthropic_error_type(status));
    let (kind, code) = openai_error_type_for(anthropic_type);
    to_bytes(&ErrorBodyOut {
        error: ErrorOut {
            message,
            kind,
            param: None,
            code,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_body_has_anthropics_shape() {
        let body: serde_json::Value =
            serde_json::from_str(&anthropic_error_body("rate_limit_error", "slow \"down\""))
                .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow \"down\""}})
        );
    }

    #[test]
    fn statuses_and_openai_types_map_to_anthropic_types() {
        let by_status = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (409, "invalid_request_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "api_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ];
        for (status, expected) in by_status {
            assert_eq!(anthropic_error_type(status), expected, "{status}");
        }
        let by_type = [
            ("invalid_request_error", None, 400, "invalid_request_error"),
            (
                "invalid_request_error",
                Some("invalid_api_key"),
                401,
                "authentication_error",
            ),
            (
                "invalid_request_error",
                Some("model_not_found"),
                404,
                "not_found_error",
            ),
            (
                "invalid_request_error",
                Some("request_too_large"),
                413,
                "request_too_large",
            ),
            (
                "permission_error",
                Some("model_not_allowed"),
                403,
                "permission_error",
            ),
            (
                "rate_limit_error",
                Some("rate_limit_exceeded"),
                429,
                "rate_limit_error",
            ),
            (
                "insufficient_quota",
                Some("insufficient_quota"),
                429,
                "billing_error",
            ),
            ("api_error", Some("upstream_error"), 502, "api_error"),
            (
                "api_error",
                Some("no_healthy_route"),
                503,
                "overloaded_error",
            ),
            ("api_error", Some("upstream_timeout"), 504, "timeout_error"),
            ("server_error", None, 500, "api_error"),
        ];
        for (kind, code, status, expected) in by_type {
            assert_eq!(
                anthropic_error_type_for(kind, code, status),
                expected,
                "{kind} {code:?}"
            );
        }
    }

    #[test]
    fn upstream_error_bodies_change_shape_both_ways() {
        let body = chat_error_to_messages(
            429,
            br#"{"error":{"message":"Rate limit reached","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"type":"error","error":{"type":"rate_limit_error","message":"Rate limit reached"}})
        );
        let body = chat_error_to_messages(400, b"<html>bad</html>");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"type":"error","error":{"type":"invalid_request_error","message":"The upstream provider returned an error."}})
        );
        let body = messages_error_to_chat(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"error":{"message":"Overloaded","type":"api_error","param":null,"code":null}})
        );
        let body = messages_error_to_chat(401, b"");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"error":{"message":"The upstream provider returned an error.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})
        );
    }
}

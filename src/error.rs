//! `ApiError`: every error a client can see, and the one table mapping it to status, type and code.

use std::borrow::Cow;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::translate::TranslateError;

/// An error answered to a client in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
///
/// Messages of 4xx errors tell the client what to do. 5xx errors carry a generic message plus
/// the request id; their `detail` goes to the log only.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        /// The offending field, like `routes[1].weight`.
        param: Option<Cow<'static, str>>,
    },
    #[error("{0}")]
    InvalidApiKey(String),
    /// A missing, malformed, expired or wrongly signed admin token.
    #[error("{0}")]
    AdminUnauthorized(String),
    /// A state change made with the web console's session cookie but without its CSRF token.
    #[error("{0}")]
    CsrfRefused(String),
    #[error("wrong admin password")]
    WrongPassword,
    #[error("too many failed logins; retry in {retry_after:?}")]
    TooManyLoginAttempts { retry_after: Duration },
    /// An admin object that does not exist, like "no provider with id 7".
    #[error("{0}")]
    NotFound(String),
    /// An admin change that clashes with what is stored: a taken name, an object still in use.
    #[error("{0}")]
    Conflict(String),
    #[error("this key may not use model '{model}'")]
    ModelNotAllowed { model: String },
    #[error("model '{model}' does not exist")]
    ModelNotFound { model: String },
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    /// A stored response this key cannot see: never stored, `store: false`, deleted, expired,
    /// or another key's (the answer is the same for each).
    #[error("no stored response '{id}' for this key")]
    ResponseNotFound { id: String },
    /// `previous_response_id` names a response this key cannot see (`earlier`: the response it
    /// names continued one that is gone since).
    #[error("previous response '{id}' not found (earlier in the chain: {earlier})")]
    PreviousResponseNotFound { id: String, earlier: bool },
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A body of `/admin/login` (or a password change) beyond its few kilobytes.
    #[error("login body exceeds {limit} bytes")]
    LoginTooLarge { limit: usize },
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
        code: &'static str,
    },
    /// A key's own rate limit or token budget refused the request.
    #[error("{}", .0.message())]
    Limited(Box<crate::limits::Refusal>),
    /// The upstream's content filter refused the request (Azure OpenAI's `content_filter`).
    #[error("{provider}'s content filter refused the request")]
    ContentFiltered {
        provider: String,
        /// What was filtered, as the upstream says (`prompt`).
        param: Option<String>,
    },
    #[error("upstream failed: {detail}")]
    UpstreamFailed { detail: String },
    /// An upstream answer (or one event of a streamed answer) larger than
    /// `LLMGATE_MAX_UPSTREAM_BODY_BYTES`: the attempt failed on the upstream's side.
    #[error("upstream answer larger than {limit} bytes from {provider}")]
    UpstreamTooLarge { provider: String, limit: usize },
    #[error("no healthy route for model '{model}' after {tried} attempts: {detail}")]
    NoHealthyRoute {
        model: String,
        detail: String,
        /// Attempts made before giving up (0: nothing was usable).
        tried: u32,
    },
    #[error("upstream timed out: {detail}")]
    UpstreamTimeout { detail: String },
    /// The shutdown grace ended while this request was still being answered.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

/// The wire form of an error body, shared by JSON responses and SSE error events.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorObject<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

impl ApiError {
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    pub fn invalid_param(param: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: Some(Cow::Borrowed(param)),
        }
    }

    /// An invalid field whose name is built at run time, like `routes[1].weight`.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: Some(Cow::Owned(field.into())),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal {
            detail: detail.to_string(),
        }
    }

    /// Status, OpenAI error `type` and `code`: the single table of the contract.
    pub fn status_type_code(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::InvalidRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
            ),
            Self::InvalidApiKey(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
            ),
            Self::AdminUnauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_admin_token",
            ),
            Self::CsrfRefused(_) => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "invalid_csrf_token",
            ),
            Self::WrongPassword => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_password",
            ),
            Self::TooManyLoginAttempts { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "too_many_login_attempts",
            ),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "invalid_request_error", "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "invalid_request_error", "conflict"),
            Self::ModelNotAllowed { .. } => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
            ),
            Self::ModelNotFound { .. } => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
            ),
            Self::RouteNotFound { .. } | Self::ResponseNotFound { .. } => {
                (StatusCode::NOT_FOUND, "invalid_request_error", "not_found")
            }
            Self::PreviousResponseNotFound { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "previous_response_not_found",
            ),
            Self::PayloadTooLarge { .. } | Self::LoginTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
            ),
            Self::RateLimited { code, .. } => {
                let kind = if *code == "insufficient_quota" {
                    "insufficient_quota"
                } else {
                    "rate_limit_error"
                };
                (StatusCode::TOO_MANY_REQUESTS, kind, code)
            }
            Self::Limited(refusal) => {
                let code = refusal.code();
                let kind = if code == "insufficient_quota" {
                    "insufficient_quota"
                } else {
                    "rate_limit_error"
                };
                (StatusCode::TOO_MANY_REQUESTS, kind, code)
            }
            Self::ContentFiltered { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "content_filter",
            ),
            Self::UpstreamFailed { .. } => (StatusCode::BAD_GATEWAY, "api_error", "upstream_error"),
            Self::UpstreamTooLarge { .. } => (
                StatusCode::BAD_GATEWAY,
                "api_error",
                "upstream_answer_too_large",
            ),
            Self::NoHealthyRoute { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "no_healthy_route",
            ),
            Self::UpstreamTimeout { .. } => {
                (StatusCode::GATEWAY_TIMEOUT, "api_error", "upstream_timeout")
            }
            Self::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "shutting_down",
            ),
            Self::Internal { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal_error",
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_type_code().0
    }

    /// The message the client reads. For 5xx it names no internal detail, only what happened in
    /// general and the request id to quote when reporting it.
    ///
    /// Messages may quote what the client sent (a parser's complaint quotes the offending
    /// value); none is longer than [`MAX_MESSAGE_BYTES`], and the client's own values named
    /// here (a model, a path) are echoed as an escaped excerpt.
    pub(crate) fn client_message(&self, request_id: Option<&str>) -> String {
        let generic = match self {
            Self::InvalidRequest { message, .. } => return capped(message),
            Self::InvalidApiKey(message)
            | Self::AdminUnauthorized(message)
            | Self::CsrfRefused(message)
            | Self::NotFound(message)
            | Self::Conflict(message) => return capped(message),
            Self::WrongPassword => {
                return "Wrong admin password. Use the password set in LLMGATE_ADMIN_PASSWORD, or \
                        the one printed when llmgate first started."
                    .to_owned();
            }
            Self::TooManyLoginAttempts { retry_after } => {
                return format!(
                    "Too many failed logins from this address. Retry in {} seconds.",
                    retry_seconds(*retry_after)
                );
            }
            Self::ModelNotAllowed { model } => {
                let model = echoed(model);
                return format!(
                    "This API key is not allowed to use model '{model}'. Ask an administrator to \
                     add it to the key's model list, or use a model from GET /v1/models."
                );
            }
            Self::ModelNotFound { model } => {
                let model = echoed(model);
                return format!(
                    "The model '{model}' does not exist. GET /v1/models lists the models this key may use."
                );
            }
            Self::RouteNotFound { method, path } => {
                let (method, path) = (echoed(method), echoed(path));
                return format!(
                    "Unknown endpoint {method} {path}. See the API reference for the endpoints llmgate serves."
                );
            }
            Self::ResponseNotFound { id } => {
                let id = echoed(id);
                return format!(
                    "Response with id '{id}' not found. Responses are kept only for the key that \
                     created them, when created with store true, until deleted or past their \
                     retention; check the id and the key."
                );
            }
            Self::PreviousResponseNotFound { id, earlier: false } => {
                let id = echoed(id);
                return format!(
                    "Previous response with id '{id}' not found. Check the id and the key, or \
                     send the whole conversation in 'input' without previous_response_id."
                );
            }
            Self::PreviousResponseNotFound { id, earlier: true } => {
                let id = echoed(id);
                return format!(
                    "The conversation continued by previous_response_id reaches back to response \
                     '{id}', which was deleted or is past its retention. Send the part of the \
                     conversation you need in 'input' without previous_response_id."
                );
            }
            Self::PayloadTooLarge { limit } => {
                return format!(
                    "The request body is larger than the limit of {limit} bytes. Send a smaller request \
                     or ask the operator to raise LLMGATE_MAX_BODY_BYTES."
                );
            }
            Self::LoginTooLarge { limit } => {
                return format!(
                    "The request body is larger than the limit of {limit} bytes for logins. Send \
                     only the JSON object with the password."
                );
            }
            Self::RateLimited { message, .. } => return capped(message),
            Self::Limited(refusal) => return refusal.message(),
            Self::ContentFiltered { provider, .. } => {
                return format!(
                    "The request was refused by the content filter of provider '{provider}' (for \
                     Azure OpenAI, its content management policy). Change the prompt; the same \
                     request will be refused again."
                );
            }
            Self::UpstreamFailed { .. } => {
                "The upstream provider failed to answer. Retry the request later.".to_owned()
            }
            Self::UpstreamTooLarge { limit, .. } => format!(
                "The upstream provider's answer is larger than llmgate's limit of {limit} bytes \
                 (LLMGATE_MAX_UPSTREAM_BODY_BYTES). Ask for a smaller answer (fewer inputs, a \
                 lower max_tokens), or ask the operator to raise the limit."
            ),
            Self::NoHealthyRoute {
                model, tried: 0, ..
            } => format!(
                "No healthy upstream is available for model '{model}': every route is failing or \
                 has no usable account. Retry the request later."
            ),
            Self::NoHealthyRoute { model, tried, .. } => format!(
                "No upstream could serve model '{model}': {tried} attempts failed. Retry the request later."
            ),
            Self::UpstreamTimeout { .. } => {
                "The upstream provider did not answer in time. Retry the request later.".to_owned()
            }
            Self::ShuttingDown => "The gateway is shutting down and ended this request before \
                                   the upstream finished. Retry the request."
                .to_owned(),
            Self::Internal { .. } => "The gateway hit an internal error.".to_owned(),
        };
        match request_id {
            Some(id) => format!("{generic} (request id {id})"),
            None => generic,
        }
    }

    /// The JSON body of this error, as sent in a response or an SSE `data:` line.
    pub fn to_json(&self, request_id: Option<&str>) -> String {
        let (_, kind, code) = self.status_type_code();
        let param = match self {
            Self::InvalidRequest { param, .. } => param.as_deref(),
            Self::PreviousResponseNotFound { .. } => Some("previous_response_id"),
            Self::ContentFiltered { param, .. } => param.as_deref(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorObject {
                message: self.client_message(request_id),
                kind,
                param,
                code: Some(code),
            },
        };
        // Serialising a struct of strings cannot fail; the fallback keeps the shape anyway.
        serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":{"message":"internal error","type":"api_error","param":null,"code":"internal_error"}}"#.to_owned()
        })
    }

    /// The JSON body of this error in Anthropic's shape, for clients of `/v1/messages`:
    /// `{"type": "error", "error": {"type", "message"}}`.
    pub fn to_anthropic_json(&self, request_id: Option<&str>) -> String {
        let (status, kind, code) = self.status_type_code();
        crate::translate::anthropic::anthropic_error_body(
            crate::translate::anthropic::anthropic_error_type_for(
                kind,
                Some(code),
                status.as_u16(),
            ),
            &self.client_message(request_id),
        )
    }

    /// Sets the headers an answer with this error carries: `Retry-After` where the wait is
    /// known, and the key's rate-limit headers when its limits refused the request.
    pub fn set_headers(&self, headers: &mut HeaderMap) {
        let retry_after = match self {
            Self::RateLimited { retry_after, .. } | Self::TooManyLoginAttempts { retry_after } => {
                Some(*retry_after)
            }
            Self::Limited(refusal) => {
                for (name, value) in refusal.header_pairs() {
                    headers.insert(name, value);
                }
                refusal.retry_after()
            }
            _ => None,
        };
        if let Some(retry_after) = retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_seconds(retry_after)),
            );
        }
    }
}

/// The longest message a client reads: past it, the middle of the message is left out (see
/// [`crate::untrusted::shorten`]).
pub const MAX_MESSAGE_BYTES: usize = 1024;

fn capped(message: &str) -> String {
    crate::untrusted::shorten(message, MAX_MESSAGE_BYTES).into_owned()
}

/// A client's value as a message quotes it: escaped, and cut after
/// [`crate::untrusted::ECHOED_CHARS`] characters.
fn echoed(value: &str) -> std::borrow::Cow<'_, str> {
    crate::untrusted::excerpt(value, crate::untrusted::ECHOED_CHARS)
}

/// Whole seconds to wait, rounded up and at least 1, for `Retry-After`.
fn retry_seconds(retry_after: Duration) -> u64 {
    retry_after.as_secs_f64().ceil().max(1.0) as u64
}

impl From<TranslateError> for ApiError {
    /// A request the translators refuse is the client's (400); an answer they cannot read is
    /// the upstream's (502).
    fn from(error: TranslateError) -> Self {
        if error.is_client_error() {
            ApiError::invalid_request(error.to_string())
        } else {
            ApiError::UpstreamFailed {
                detail: error.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_errors_are_the_clients_or_the_upstreams() {
        let upstream = TranslateError::UpstreamAnswer("no choices".into());
        assert_eq!(ApiError::from(upstream).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            ApiError::from(TranslateError::Unsupported("x".into())).status(),
            StatusCode::BAD_REQUEST
        );
    }

    fn check(error: ApiError, status: u16, kind: &str, code: &str) {
        let body: serde_json::Value =
            serde_json::from_str(&error.to_json(Some("req-1"))).unwrap_or_default();
        assert_eq!(error.status().as_u16(), status, "{error:?}");
        assert_eq!(body["error"]["type"], kind, "{error:?}");
        assert_eq!(body["error"]["code"], code, "{error:?}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    #[test]
    fn every_error_maps_to_the_contract_table() {
        check(
            ApiError::invalid_request("bad"),
            400,
            "invalid_request_error",
            "invalid_request",
        );
        check(
            ApiError::InvalidApiKey("no".into()),
            401,
            "invalid_request_error",
            "invalid_api_key",
        );
        check(
            ApiError::AdminUnauthorized("no".into()),
            401,
            "invalid_request_error",
            "invalid_admin_token",
        );
        check(
            ApiError::WrongPassword,
            401,
            "invalid_request_error",
            "invalid_password",
        );
        check(
            ApiError::TooManyLoginAttempts {
                retry_after: Duration::from_secs(3),
            },
            429,
            "rate_limit_error",
            "too_many_login_attempts",
        );
        check(
            ApiError::NotFound("no provider with id 7".into()),
            404,
            "invalid_request_error",
            "not_found",
        );
        check(
            ApiError::Conflict("taken".into()),
            409,
            "invalid_request_error",
            "conflict",
        );
        check(
            ApiError::ModelNotAllowed { model: "m".into() },
            403,
            "permission_error",
            "model_not_allowed",
        );
        check(
            ApiError::ModelNotFound { model: "m".into() },
            404,
            "invalid_request_error",
            "model_not_found",
        );
        check(
            ApiError::ResponseNotFound {
                id: "resp_1".into(),
            },
            404,
            "invalid_request_error",
            "not_found",
        );
        let previous = ApiError::PreviousResponseNotFound {
            id: "resp_1".into(),
            earlier: false,
        };
        check(
            previous.clone(),
            400,
            "invalid_request_error",
            "previous_response_not_found",
        );
        let json: serde_json::Value = serde_json::from_str(&previous.to_json(None)).unwrap();
        assert_eq!(json["error"]["param"], "previous_response_id");
        assert_eq!(
            json["error"]["message"],
            "Previous response with id 'resp_1' not found. Check the id and the key, or send \
             the whole conversation in 'input' without previous_response_id."
        );
        check(
            ApiError::PayloadTooLarge { limit: 1 },
            413,
            "invalid_request_error",
            "request_too_large",
        );
        check(
            ApiError::LoginTooLarge { limit: 1 },
            413,
            "invalid_request_error",
            "request_too_large",
        );
        check(
            ApiError::RateLimited {
                message: "slow".into(),
                retry_after: Duration::from_secs(1),
                code: "rate_limit_exceeded",
            },
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
        );
        check(
            ApiError::UpstreamFailed { detail: "x".into() },
            502,
            "api_error",
            "upstream_error",
        );
        check(
            ApiError::UpstreamTooLarge {
                provider: "p".into(),
                limit: 1,
            },
            502,
            "api_error",
            "upstream_answer_too_large",
        );
        check(
            ApiError::NoHealthyRoute {
                model: "m".into(),
                detail: "x".into(),
                tried: 2,
            },
            503,
            "api_error",
            "no_healthy_route",
        );
        check(
            ApiError::UpstreamTimeout { detail: "x".into() },
            504,
            "api_error",
            "upstream_timeout",
        );
        check(ApiError::ShuttingDown, 503, "api_error", "shutting_down");
        check(ApiError::internal("x"), 500, "api_error", "internal_error");
    }

    #[test]
    fn field_errors_name_the_field_and_login_throttling_says_when_to_retry() {
        let body: serde_json::Value = serde_json::from_str(
            &ApiError::invalid_field("routes[1].weight", "routes[1].weight: must be at least 1")
                .to_json(None),
        )
        .unwrap_or_default();
        assert_eq!(body["error"]["param"], "routes[1].weight");
        let mut headers = HeaderMap::new();
        ApiError::TooManyLoginAttempts {
            retry_after: Duration::from_millis(1500),
        }
        .set_headers(&mut headers);
        assert_eq!(headers[header::RETRY_AFTER], "2");
    }

    #[test]
    fn messages_echo_client_values_capped_and_escaped() {
        let huge = "m".repeat(1 << 20);
        for error in [
            ApiError::ModelNotFound {
                model: huge.clone(),
            },
            ApiError::ModelNotAllowed {
                model: huge.clone(),
            },
            ApiError::RouteNotFound {
                method: "POST".into(),
                path: format!("/v1/{huge}"),
            },
            ApiError::invalid_request(format!("messages[1].role is '{huge}'; use user.")),
            ApiError::NotFound(huge.clone()),
        ] {
            let json = error.to_json(None);
            assert!(json.len() < 2 * MAX_MESSAGE_BYTES, "{}", json.len());
            let anthropic = error.to_anthropic_json(None);
            assert!(
                anthropic.len() < 2 * MAX_MESSAGE_BYTES,
                "{}",
                anthropic.len()
            );
        }
        let message =
            ApiError::invalid_request(format!("role is '{huge}'; use user.")).client_message(None);
        assert!(
            message.ends_with("'; use user."),
            "the advice at the end is kept"
        );
        let forged = ApiError::ModelNotFound {
            model: "x\n\u{1b}[2J".into(),
        }
        .client_message(None);
        assert!(!forged.contains('\u{1b}'), "{forged}");
    }

    #[test]
    fn server_errors_hide_details_and_carry_the_request_id() {
        let json = ApiError::UpstreamFailed {
            detail: "connection refused to 10.1.2.3".into(),
        }
        .to_json(Some("req-42"));
        assert!(!json.contains("10.1.2.3"));
        assert!(json.contains("req-42"));
    }
}

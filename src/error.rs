//! `ApiError`: every error a client can see, and the one table mapping it to status, type and code.

use std::borrow::Cow;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

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
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
        code: &'static str,
    },
    /// A key's own rate limit or token budget refused the request.
    #[error("{}", .0.message())]
    Limited(Box<crate::limits::Refusal>),
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
            Self::RouteNotFound { .. } => {
                (StatusCode::NOT_FOUND, "invalid_request_error", "not_found")
            }
            Self::PayloadTooLarge { .. } => (
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
    pub(crate) fn client_message(&self, request_id: Option<&str>) -> String {
        let generic = match self {
            Self::InvalidRequest { message, .. } => return message.clone(),
            Self::InvalidApiKey(message)
            | Self::AdminUnauthorized(message)
            | Self::NotFound(message)
            | Self::Conflict(message) => return message.clone(),
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
                return format!(
                    "This API key is not allowed to use model '{model}'. Ask an administrator to \
                     add it to the key's model list, or use a model from GET /v1/models."
                );
            }
            Self::ModelNotFound { model } => {
                return format!(
                    "The model '{model}' does not exist. GET /v1/models lists the models this key may use."
                );
            }
            Self::RouteNotFound { method, path } => {
                return format!(
                    "Unknown endpoint {method} {path}. See the API reference for the endpoints llmgate serves."
                );
            }
            Self::PayloadTooLarge { limit } => {
                return format!(
                    "The request body is larger than the limit of {limit} bytes. Send a smaller request \
                     or ask the operator to raise LLMGATE_MAX_BODY_BYTES."
                );
            }
            Self::RateLimited { message, .. } => return message.clone(),
            Self::Limited(refusal) => return refusal.message(),
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

    /// Like [`ApiError::render`], with the body in Anthropic's shape.
    pub fn render_anthropic(&self, request_id: Option<&str>) -> Response {
        let mut response = self.render(request_id);
        *response.body_mut() = axum::body::Body::from(self.to_anthropic_json(request_id));
        response
    }

    /// A complete response for this error. The error itself rides along as an extension, so
    /// the error-rendering middleware can log it and add the request id to 5xx bodies.
    pub fn render(&self, request_id: Option<&str>) -> Response {
        let mut response = (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.to_json(request_id),
        )
            .into_response();
        if let Self::RateLimited { retry_after, .. } | Self::TooManyLoginAttempts { retry_after } =
            self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_seconds(*retry_after)),
            );
        }
        if let Self::Limited(refusal) = self {
            if let Some(retry_after) = refusal.retry_after() {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_seconds(retry_after)),
                );
            }
            for (name, value) in refusal.header_pairs() {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// Whole seconds to wait, rounded up and at least 1, for `Retry-After`.
fn retry_seconds(retry_after: Duration) -> u64 {
    retry_after.as_secs_f64().ceil().max(1.0) as u64
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.render(None);
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ApiError::PayloadTooLarge { limit: 1 },
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
        let response = ApiError::TooManyLoginAttempts {
            retry_after: Duration::from_millis(1500),
        }
        .render(None);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
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

//! Errors as HTTP responses: the edge is the only place that turns an [`ApiError`] into an
//! axum `Response`, in OpenAI's shape or, for `/v1/messages`, Anthropic's.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The answer for `error`, its body in the client's dialect; `request_id` is shown in the
/// message (5xx bodies carry it so a user can quote it).
pub fn error_response(error: &ApiError, request_id: Option<&str>, anthropic: bool) -> Response {
    let body = if anthropic {
        error.to_anthropic_json(request_id)
    } else {
        error.to_json(request_id)
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    error.set_headers(headers);
    response
}

/// A handler's error: rendered plainly here; the error rides along as an extension, so the
/// edge middleware logs it once, adds the request id to 5xx bodies and switches the body to
/// Anthropic's shape where the client speaks it.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = error_response(&self, None, false);
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_error_response_has_the_status_the_shape_and_the_retry_header() {
        let error = ApiError::TooManyLoginAttempts {
            retry_after: Duration::from_millis(1500),
        };
        let response = error_response(&error, None, false);
        assert_eq!(response.status(), error.status());
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let anthropic = error_response(&error, Some("req_1"), true);
        assert_eq!(anthropic.status(), error.status());
    }
}

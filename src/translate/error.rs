//! `TranslateError`: why a body could not be translated, split between the client's request
//! (400) and the upstream's answer (502).

use http::StatusCode;

/// A body that could not be translated.
///
/// Request errors are the client's: their messages say what to change. Upstream errors mean the
/// provider answered something its own API does not define; the client gets a 502.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The request body is not JSON, or not the shape its API defines.
    #[error("{}", request_json_message(.api, .source))]
    RequestJson {
        /// The API the body claims to speak, e.g. "Anthropic Messages".
        api: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The request is valid but asks for something the target provider cannot express.
    #[error("{0}")]
    Unsupported(String),
    /// A field of the request has a value that makes no sense.
    #[error("{0}")]
    InvalidRequest(String),
    /// The upstream's answer is not JSON, or not the shape its API defines.
    #[error("the {api} upstream answered a body that is not a valid response: {source}")]
    UpstreamJson {
        api: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The upstream's answer is well-formed JSON that cannot be mapped (no choices, …).
    #[error("the upstream's answer could not be translated: {0}")]
    UpstreamAnswer(String),
}

fn request_json_message(api: &str, source: &serde_json::Error) -> String {
    if source.is_data() {
        format!("The request body is not a valid {api} request: {source}.")
    } else {
        format!("The request body is not valid JSON: {source}.")
    }
}

impl TranslateError {
    pub(crate) fn request(api: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| Self::RequestJson { api, source }
    }

    pub(crate) fn upstream(api: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| Self::UpstreamJson { api, source }
    }

    /// Whether the client's request is at fault (answer 400) rather than the upstream (502).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::RequestJson { .. } | Self::Unsupported(_) | Self::InvalidRequest(_)
        )
    }

    pub fn status(&self) -> StatusCode {
        if self.is_client_error() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::BAD_GATEWAY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_position_and_the_side() {
        let syntax = serde_json::from_str::<serde_json::Value>("{\"a\": ,}").unwrap_err();
        let error = TranslateError::request("Anthropic Messages")(syntax);
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            error.to_string(),
            "The request body is not valid JSON: expected value at line 1 column 7."
        );
        let shape = serde_json::from_str::<Vec<u8>>("{}").unwrap_err();
        let error = TranslateError::request("Anthropic Messages")(shape);
        assert!(
            error.to_string().starts_with(
                "The request body is not a valid Anthropic Messages request: invalid type"
            ),
            "{error}"
        );
        let upstream = TranslateError::UpstreamAnswer("no choices".into());
        assert_eq!(upstream.status(), StatusCode::BAD_GATEWAY);
    }
}

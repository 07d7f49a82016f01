//! The gateway's use cases, free of axum: proxy one OpenAI-style request, list models.

mod relay;
mod request;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;

pub use relay::error_event;
pub use request::RequestHead;

use crate::auth::ClientKey;
use crate::error::ApiError;
use crate::providers::{self, Endpoint};
use crate::routing::SharedCatalog;

/// Everything a proxied request needs, cheap to clone into each request.
#[derive(Clone, Debug)]
pub struct Gateway {
    catalog: SharedCatalog,
    client: reqwest::Client,
    /// Deadline of a request whose model sets no `timeout`.
    request_timeout: Duration,
}

/// What to send back to the client.
pub enum Reply {
    /// A whole body, forwarded as received.
    Complete {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// A server-sent event stream, forwarded frame by frame.
    Stream {
        headers: HeaderMap,
        body: BoxStream<'static, Result<Bytes, Infallible>>,
    },
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Complete { status, .. } => write!(f, "Reply::Complete({status})"),
            Self::Stream { .. } => f.write_str("Reply::Stream"),
        }
    }
}

/// Upstream response headers worth passing on; everything else (cookies, server details, the
/// account's organisation) stays behind.
fn forwarded_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "content-type"
            | "content-encoding"
            | "retry-after"
            | "retry-after-ms"
            | "openai-processing-ms"
    ) || name.starts_with("x-ratelimit-")
}

fn upstream_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8);
    for (name, value) in upstream {
        if forwarded_header(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(id) = upstream.get("x-request-id") {
        headers.insert(HeaderName::from_static("x-upstream-request-id"), id.clone());
    }
    headers
}

impl Gateway {
    pub fn new(catalog: SharedCatalog, client: reqwest::Client, request_timeout: Duration) -> Self {
        Self {
            catalog,
            client,
            request_timeout,
        }
    }

    /// Proxies one request body for `endpoint` on behalf of `key`.
    pub async fn proxy(
        &self,
        key: &ClientKey,
        endpoint: Endpoint,
        body: Bytes,
        request_id: &str,
    ) -> Result<Reply, ApiError> {
        let head = RequestHead::parse(&body)?;
        if !key.allows_model(&head.model) {
            return Err(ApiError::ModelNotAllowed {
                model: head.model.into_owned(),
            });
        }
        let model = self
            .catalog
            .load()
            .model(&head.model)
            .cloned()
            .ok_or_else(|| ApiError::ModelNotFound {
                model: head.model.to_string(),
            })?;
        let stream = head.stream && endpoint.can_stream();
        let target = model.pick().ok_or_else(|| ApiError::NoHealthyRoute {
            model: model.name.clone(),
            detail: "the model has no enabled route".into(),
        })?;
        let upstream_body = head.rewrite_model(&body, &target.route.upstream_model);
        let deadline = model.timeout.unwrap_or(self.request_timeout);
        let mut request =
            providers::build_request(&self.client, target, endpoint, upstream_body, request_id);
        if !stream {
            request = request.timeout(deadline);
        }
        let provider = &target.route.provider.name;

        // Streams get the deadline for their response headers only: a long generation is not a
        // timeout, silence is (the client's read timeout).
        let response = match tokio::time::timeout(deadline, request.send()).await {
            Err(_) => {
                return Err(ApiError::UpstreamTimeout {
                    detail: format!("{provider}: no response headers within {deadline:?}"),
                });
            }
            Ok(Err(error)) => return Err(upstream_error(provider, error)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let mut headers = upstream_headers(response.headers());

        if status.is_server_error() {
            let detail = match response.bytes().await {
                Ok(body) => String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
                Err(error) => error.to_string(),
            };
            return Err(ApiError::UpstreamFailed {
                detail: format!("{provider} answered {status}: {detail}"),
            });
        }
        let is_event_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if status.is_success() && stream && is_event_stream {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            );
            let body = relay::relay(response, request_id.to_owned());
            return Ok(Reply::Stream {
                headers,
                body: Box::pin(body) as BoxStream<'static, _>,
            });
        }

        let body = response
            .bytes()
            .await
            .map_err(|error| upstream_error(provider, error))?;
        if status.is_success() && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            return Err(ApiError::UpstreamFailed {
                detail: format!("{provider} answered {status} with a body that is not JSON"),
            });
        }
        Ok(Reply::Complete {
            status,
            headers,
            body,
        })
    }

    /// `GET /v1/models`: the models `key` may use, in OpenAI's list format.
    pub fn list_models(&self, key: &ClientKey) -> Bytes {
        let catalog = self.catalog.load();
        let data: Vec<ModelObject<'_>> = catalog
            .models()
            .filter(|model| key.allows_model(&model.name))
            .map(ModelObject::of)
            .collect();
        to_json(&ModelList {
            object: "list",
            data,
        })
    }

    /// `GET /v1/models/{id}`: one model, if it exists and `key` may use it.
    pub fn get_model(&self, key: &ClientKey, id: &str) -> Result<Bytes, ApiError> {
        let catalog = self.catalog.load();
        match catalog.model(id) {
            Some(model) if key.allows_model(id) => Ok(to_json(&ModelObject::of(model))),
            _ => Err(ApiError::ModelNotFound {
                model: id.to_owned(),
            }),
        }
    }
}

fn upstream_error(provider: &str, error: reqwest::Error) -> ApiError {
    if error.is_timeout() {
        ApiError::UpstreamTimeout {
            detail: format!("{provider}: {error}"),
        }
    } else {
        ApiError::UpstreamFailed {
            detail: format!("{provider}: {error}"),
        }
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelObject<'a>>,
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    owned_by: &'static str,
}

impl<'a> ModelObject<'a> {
    fn of(model: &'a Arc<crate::routing::Model>) -> Self {
        Self {
            id: &model.name,
            object: "model",
            created: model.created_at,
            owned_by: "llmgate",
        }
    }
}

fn to_json(value: &impl Serialize) -> Bytes {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .unwrap_or_default()
}

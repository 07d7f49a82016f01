//! The clouds' side of the mock: Azure OpenAI's deployment paths (`api-version` and `api-key`
//! required), and Vertex AI's model paths behind a token endpoint that checks what Google
//! checks: the JWT assertion's RS256 signature (against the service account's public key, given
//! by `--vertex-public-key`), its audience, its lifetime and its expiry. The access tokens it
//! issues live `token_lifetime`; the model paths refuse a missing, unknown or expired one.
//!
//! - Azure: `POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=…`.
//! - Vertex: `POST /token` (form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`),
//!   `POST /vertex/v1/projects/{p}/locations/{r}/publishers/google/models/{m}:generateContent`
//!   (and `:streamGenerateContent?alt=sse`), `…/publishers/anthropic/models/{m}:rawPredict`
//!   (and `:streamRawPredict`), whose body must carry `anthropic_version: "vertex-2023-10-16"`
//!   and no `model`; `…/publishers/anthropic/models/count-tokens:rawPredict` counts a Messages
//!   body that names its model.
//! - `GET /mock/stats`: `{"requests", "token_requests"}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::openai::Endpoint;
use super::{MockConfig, json};

/// The version Vertex AI's Anthropic models take in the body.
const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Where a cloud path leads.
pub(super) enum CloudRoute<'p> {
    Azure(Endpoint),
    VertexGemini {
        model: &'p str,
        stream: bool,
    },
    VertexAnthropic {
        model: &'p str,
        stream: bool,
    },
    /// `…/publishers/anthropic/models/count-tokens:rawPredict`, whose body names the model.
    VertexCountTokens,
    Token,
    Stats,
}

impl<'p> CloudRoute<'p> {
    pub(super) fn at(path: &'p str) -> Option<Self> {
        match path {
            "/token" => return Some(Self::Token),
            "/mock/stats" => return Some(Self::Stats),
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/openai/deployments/") {
            let (_deployment, endpoint) = rest.split_once('/')?;
            let endpoint = match endpoint {
                "chat/completions" => Endpoint::ChatCompletions,
                "completions" => Endpoint::Completions,
                "embeddings" => Endpoint::Embeddings,
                _ => return None,
            };
            return Some(Self::Azure(endpoint));
        }
        let rest = path.strip_prefix("/vertex/v1/projects/")?;
        let mut parts = rest.splitn(7, '/');
        let (_project, locations, _region, publishers, publisher, models, model) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if (locations, publishers, models) != ("locations", "publishers", "models") {
            return None;
        }
        let (model, method) = model.rsplit_once(':')?;
        let stream = matches!(method, "streamGenerateContent" | "streamRawPredict");
        match (publisher, method) {
            ("anthropic", "rawPredict") if model == "count-tokens" => Some(Self::VertexCountTokens),
            ("google", "generateContent" | "streamGenerateContent") => {
                Some(Self::VertexGemini { model, stream })
            }
            ("anthropic", "rawPredict" | "streamRawPredict") => {
                Some(Self::VertexAnthropic { model, stream })
            }
            _ => None,
        }
    }
}

/// The access tokens the token endpoint issued, and how many it was asked for.
#[derive(Default)]
pub(super) struct IssuedTokens {
    /// Token → when it expires.
    live: Mutex<HashMap<String, Instant>>,
    pub requests: std::sync::atomic::AtomicU64,
}

impl IssuedTokens {
    fn issue(&self, lifetime: Duration) -> String {
        let token = format!("ya29.mock-{}", super::openai::new_id(""));
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        live.retain(|_, expires| *expires > now);
        live.insert(token.clone(), now + lifetime);
        token
    }

    fn valid(&self, token: &str) -> bool {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .is_some_and(|expires| *expires > Instant::now())
    }
}

/// Azure's refusal of a request without a valid `api-key` or `api-version`, in Azure's words.
pub(super) fn azure_refusal(
    config: &MockConfig,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Option<Response> {
    let key = headers.get("api-key").and_then(|v| v.to_str().ok());
    let key_ok = match (&config.azure_api_key, key) {
        (_, None) => false,
        (Some(expected), Some(key)) => key == expected,
        (None, Some(key)) => !key.is_empty(),
    };
    if !key_ok {
        return Some(azure_error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
             provide a valid key for an active subscription and use a correct regional API \
             endpoint for your resource.",
        ));
    }
    let versioned = query.is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.strip_prefix("api-version=")
                .is_some_and(|v| !v.is_empty())
        })
    });
    if !versioned {
        return Some(azure_error(
            StatusCode::NOT_FOUND,
            "404",
            "Resource not found",
        ));
    }
    None
}

/// Azure's answer to a prompt its content filter refuses.
pub(super) fn azure_content_filtered() -> Response {
    let body = serde_json::json!({
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's \
                        content management policy. Please modify your prompt and retry.",
            "type": null,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": {"filtered": true, "severity": "high"}
                }
            }
        }
    });
    (StatusCode::BAD_REQUEST, json(body.to_string().into_bytes())).into_response()
}

fn azure_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, json(body.to_string().into_bytes())).into_response()
}

/// Google's refusal of a request without a live access token.
pub(super) fn vertex_refusal(tokens: &IssuedTokens, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token.is_some_and(|token| tokens.valid(token)) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            json(super::gemini::error_body(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, \
                 login cookie or other valid authentication credential.",
            )),
        )
            .into_response(),
    )
}

/// A Vertex Anthropic body checked as Vertex checks it: its `anthropic_version`, no `model`
/// (the URL names it), and `stream` as the method says (`streamRawPredict` streams); the
/// problem in Anthropic's words otherwise.
pub(super) fn vertex_anthropic_problem(body: &[u8], stream: bool) -> Option<String> {
    let Ok(serde_json::Value::Object(request)) = serde_json::from_slice(body) else {
        return None;
    };
    let streams = request.get("stream").and_then(serde_json::Value::as_bool) == Some(true);
    if streams != stream {
        return Some(format!(
            "stream: must be {stream} for {}",
            if stream {
                "streamRawPredict"
            } else {
                "rawPredict"
            }
        ));
    }
    if request.contains_key("model") {
        return Some("model: Extra inputs are not permitted".to_owned());
    }
    match request.get("anthropic_version").and_then(|v| v.as_str()) {
        Some(VERTEX_ANTHROPIC_VERSION) => None,
        Some(other) => Some(format!("anthropic_version: unsupported version {other:?}")),
        None => Some("anthropic_version: Field required".to_owned()),
    }
}

#[derive(Deserialize)]
struct Assertion {
    iss: String,
    aud: String,
    scope: Option<String>,
    iat: i64,
    exp: i64,
}

#[derive(Serialize)]
struct Issued<'a> {
    access_token: &'a str,
    expires_in: u64,
    token_type: &'static str,
}

/// `POST /token`: a JWT assertion signed by the service account's key, exchanged for an access
/// token, refused with Google's `invalid_grant` when anything about it is wrong.
pub(super) fn token(
    config: &MockConfig,
    tokens: &IssuedTokens,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    tokens
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return grant_error("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return grant_error("invalid_request", "Missing required parameter: assertion");
    };
    let Some(public_key) = config.vertex_public_key.as_deref() else {
        return grant_error(
            "invalid_grant",
            "the mock has no service account public key (--vertex-public-key)",
        );
    };
    let Some(decoding) = decoding_key(public_key) else {
        return grant_error("invalid_grant", "the mock's public key is not an RSA key");
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let audience = format!("http://{host}/token");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    validation.leeway = 0;
    let claims = match jsonwebtoken::decode::<Assertion>(assertion, &decoding, &validation) {
        Ok(data) => data.claims,
        Err(error) => {
            use jsonwebtoken::errors::ErrorKind;
            let description = match error.kind() {
                ErrorKind::InvalidSignature => "Invalid JWT Signature.",
                ErrorKind::ExpiredSignature => {
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                     reasonable timeframe. Check your iat and exp values in the JWT claim."
                }
                ErrorKind::InvalidAudience => "Invalid JWT: Failed audience check.",
                _ => "Invalid JWT.",
            };
            return grant_error("invalid_grant", description);
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    // Google accepts assertions that live at most an hour and were not made in the future
    // (with a little room for clock skew).
    if claims.exp - claims.iat > 3600 || claims.iat > now + 300 || claims.iss.is_empty() {
        return grant_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    if claims.scope.as_deref().is_none_or(str::is_empty) || claims.aud != audience {
        return grant_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let token = tokens.issue(config.token_lifetime);
    let body = serde_json::to_vec(&Issued {
        access_token: &token,
        expires_in: config.token_lifetime.as_secs(),
        token_type: "Bearer",
    })
    .unwrap_or_default();
    json(body)
}

fn decoding_key(pem: &str) -> Option<jsonwebtoken::DecodingKey> {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem).ok()?;
    let der = key.to_pkcs1_der().ok()?;
    Some(jsonwebtoken::DecodingKey::from_rsa_der(der.as_bytes()))
}

fn grant_error(error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    (StatusCode::BAD_REQUEST, json(body.to_string().into_bytes())).into_response()
}

/// `GET /mock/stats`.
pub(super) fn stats(requests: u64, token_requests: u64) -> Response {
    let body = serde_json::json!({"requests": requests, "token_requests": token_requests});
    json(body.to_string().into_bytes())
}

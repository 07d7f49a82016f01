//! The AWS Bedrock side of the mock: `POST /bedrock/model/{modelId}/converse` and
//! `/converse-stream`, behind a SigV4 verifier that checks what AWS checks. The verifier
//! recomputes each request's signature with AWS's own signer (`aws-sigv4`) from the secret it
//! knows (`MockConfig::aws_secret_access_key`, for `aws_access_key_id`) and refuses, as AWS
//! does with a 403 and `x-amzn-ErrorType`, a request without a signature
//! (`MissingAuthenticationTokenException`), an unknown key id or session token
//! (`UnrecognizedClientException`), a signature older or newer than five minutes or one that
//! does not match (`InvalidSignatureException`).
//!
//! Answers are Converse's: JSON with `usage` (cache read and write tokens from the knobs), or a
//! binary `application/vnd.amazon.eventstream` written with AWS's `aws-smithy-eventstream`:
//! `messageStart`, `contentBlockStart` (tool calls), `contentBlockDelta`, `contentBlockStop`,
//! `messageStop` and `metadata` with the usage. The `exception` knob ends the stream with an
//! exception message instead (as ConverseStream reports a throttling or model error mid-way).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue as EventHeader, Message};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::MockConfig;
use super::knobs::{Knobs, Plan};
use super::openai::{ToolCall, padded, split, words};
use super::sse::Script;

/// How far a signature's time may be from the server's, as AWS allows.
const MAX_SKEW: Duration = Duration::from_secs(300);

/// AWS's answer to a signature that does not match.
pub(super) const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match \
     the signature you provided. Check your AWS Secret Access Key and signing method. Consult \
     the service documentation for details.";

/// The model and whether the answer streams, for a path under `/bedrock/model/`.
pub(super) fn route(path: &str) -> Option<(&str, bool)> {
    let rest = path.strip_prefix("/bedrock/model/")?;
    let (model, method) = rest.rsplit_once('/')?;
    match method {
        "converse" => Some((model, false)),
        "converse-stream" => Some((model, true)),
        _ => None,
    }
}

/// An AWS error answer: `status`, `x-amzn-ErrorType: {kind}` and `{"message"}`.
pub(super) fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        message: &'a str,
    }
    let body = serde_json::to_vec(&Body { message }).unwrap_or_default();
    let mut response = (status, super::json(body)).into_response();
    if let Ok(kind) = HeaderValue::from_str(kind) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-amzn-errortype"), kind);
    }
    response
}

/// The exception AWS names for an error status.
pub(super) fn exception_for(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

/// The access key id a request's `Authorization` names (`Credential=AKID/…`).
pub(super) fn access_key_id(headers: &HeaderMap) -> Option<&str> {
    let authorization = super::header(headers, header::AUTHORIZATION.as_str())?;
    let credential = authorization.split_once("Credential=")?.1;
    credential.split('/').next()
}

/// The refusal AWS would answer to this request's signature, if any.
pub(super) fn signature_refusal(
    config: &MockConfig,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let forbidden =
        |kind: &str, message: &str| Some(aws_error(StatusCode::FORBIDDEN, kind, message));
    let Some(authorization) = super::header(headers, header::AUTHORIZATION.as_str()) else {
        return forbidden(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    };
    let unrecognized = || {
        forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    };
    let (Some(key_id), Some(secret)) = (&config.aws_access_key_id, &config.aws_secret_access_key)
    else {
        return unrecognized();
    };
    if access_key_id(headers) != Some(key_id.as_str()) {
        return unrecognized();
    }
    let token = super::header(headers, "x-amz-security-token");
    if config.aws_session_token.is_some() && token != config.aws_session_token.as_deref() {
        return unrecognized();
    }
    let Some(date) = super::header(headers, "x-amz-date") else {
        return forbidden(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        );
    };
    let Some(signed_at) = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|time| SystemTime::from(time.and_utc()))
    else {
        return forbidden("InvalidSignatureException", SIGNATURE_MISMATCH);
    };
    let now = SystemTime::now();
    let skew = now
        .duration_since(signed_at)
        .or_else(|_| signed_at.duration_since(now))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        let now_text = chrono::DateTime::<chrono::Utc>::from(now).format("%Y%m%dT%H%M%SZ");
        return forbidden(
            "InvalidSignatureException",
            &format!("Signature expired: {date} is now earlier than {now_text} - 5 min."),
        );
    }
    match expected_signature(
        authorization,
        path_and_query,
        headers,
        body,
        (key_id, secret, token),
        signed_at,
    ) {
        Some(expected) if authorization.ends_with(&format!("Signature={expected}")) => None,
        _ => forbidden("InvalidSignatureException", SIGNATURE_MISMATCH),
    }
}

/// The signature AWS computes for this request with the secret it knows: the headers the
/// request says it signed, as received, over the same path, body and time.
fn expected_signature(
    authorization: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    (key_id, secret, token): (&str, &str, Option<&str>),
    signed_at: SystemTime,
) -> Option<String> {
    let scope = authorization.split_once("Credential=")?.1;
    let mut scope = scope.split(',').next()?.split('/');
    let (_key, _date, region, service) =
        (scope.next()?, scope.next()?, scope.next()?, scope.next()?);
    let signed = authorization.split_once("SignedHeaders=")?.1;
    let signed: Vec<&str> = signed.split(',').next()?.split(';').collect();
    let host = super::header(headers, "host")?;
    // The signer adds the date and the session token itself, from the time and the identity.
    let mut signed_headers = Vec::new();
    for name in &signed {
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        signed_headers.push((*name, super::header(headers, name)?));
    }
    let identity = Credentials::new(key_id, secret, token.map(str::to_owned), None, "mock").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(signed_at)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    let url = format!("http://{host}{path_and_query}");
    let request = SignableRequest::new(
        "POST",
        url,
        signed_headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .ok()?;
    let (_, signature) = sign(request, &params).ok()?.into_parts();
    Some(signature)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConverseRequest {
    #[serde(default)]
    messages: Vec<MessageIn>,
    #[serde(default)]
    system: Vec<BlockIn>,
    tool_config: Option<ToolConfigIn>,
    pub mock: Option<Knobs>,
}

#[derive(Deserialize)]
struct MessageIn {
    role: String,
    #[serde(default)]
    content: Vec<BlockIn>,
}

#[derive(Deserialize)]
struct BlockIn {
    text: Option<String>,
}

#[derive(Deserialize)]
struct ToolConfigIn {
    #[serde(default)]
    tools: Vec<ToolIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolIn {
    tool_spec: ToolSpecIn,
}

#[derive(Deserialize)]
struct ToolSpecIn {
    name: String,
}

impl ConverseRequest {
    /// Removes the request's `"mock"` knobs; without them, the knobs written in its prompt.
    pub fn take_knobs(&mut self) -> serde_json::Result<Option<Knobs>> {
        if let Some(knobs) = self.mock.take() {
            return Ok(Some(knobs));
        }
        Knobs::from_prompt(
            self.messages
                .iter()
                .filter(|message| message.role == "user")
                .flat_map(|message| &message.content)
                .filter_map(|block| block.text.as_deref())
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }
}

/// A generated Converse answer, before it is written out.
pub(super) struct Answer {
    reply: String,
    tool_calls: Vec<ToolCall>,
    filtered: bool,
    usage: Option<Usage>,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cache_read_input_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cache_write_input_tokens: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

impl Answer {
    pub fn new(request: &ConverseRequest, plan: &Plan) -> Self {
        let texts = |blocks: &[BlockIn]| -> Vec<String> {
            blocks
                .iter()
                .filter_map(|block| block.text.clone())
                .collect()
        };
        let prompt = request
            .system
            .iter()
            .chain(request.messages.iter().flat_map(|message| &message.content))
            .filter_map(|block| block.text.as_deref())
            .map(words)
            .sum::<u64>()
            .max(1);
        let tools: Vec<&str> = request
            .tool_config
            .iter()
            .flat_map(|config| &config.tools)
            .map(|tool| tool.tool_spec.name.as_str())
            .collect();
        let reply = plan.content.clone().unwrap_or_else(|| {
            let last_user = request.messages.iter().rev().find(|m| m.role == "user");
            let said = last_user.map(|m| texts(&m.content)).unwrap_or_default();
            format!("echo: {}", said.join(" "))
        });
        let tool_calls = ToolCall::plan("tooluse_mock", &tools, plan.tool_calls, &reply);
        // Bedrock counts cached prompt tokens apart from `inputTokens`.
        let cache_read = plan.cached_tokens.min(prompt);
        let cache_write = plan.cache_write_tokens.min(prompt - cache_read);
        let input = prompt - cache_read - cache_write;
        let output = plan.chunks as u64;
        Self {
            reply,
            tool_calls,
            filtered: plan.safety_block,
            usage: plan.usage.then_some(Usage {
                input_tokens: input,
                output_tokens: output,
                total_tokens: prompt + output,
                cache_read_input_tokens: cache_read,
                cache_write_input_tokens: cache_write,
            }),
        }
    }

    fn stop_reason(&self) -> &'static str {
        if self.filtered {
            "guardrail_intervened"
        } else if self.tool_calls.is_empty() {
            "end_turn"
        } else {
            "tool_use"
        }
    }

    /// The whole answer.
    pub fn body(&self) -> serde_json::Result<Vec<u8>> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            output: Output<'a>,
            stop_reason: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            usage: Option<Usage>,
            metrics: Metrics,
        }
        #[derive(Serialize)]
        struct Output<'a> {
            message: MessageOut<'a>,
        }
        #[derive(Serialize)]
        struct MessageOut<'a> {
            role: &'static str,
            content: Vec<BlockOut<'a>>,
        }
        let mut content = Vec::new();
        if self.filtered {
            content.push(BlockOut::Text("Sorry, the model cannot answer this."));
        } else if self.tool_calls.is_empty() {
            content.push(BlockOut::Text(&self.reply));
        } else {
            for call in &self.tool_calls {
                content.push(BlockOut::ToolUse(ToolUseOut {
                    tool_use_id: &call.id,
                    name: &call.name,
                    input: RawValue::from_string(call.arguments.clone())?,
                }));
            }
        }
        serde_json::to_vec(&Body {
            output: Output {
                message: MessageOut {
                    role: "assistant",
                    content,
                },
            },
            stop_reason: self.stop_reason(),
            usage: self.usage,
            metrics: Metrics { latency_ms: 12 },
        })
    }

    /// The binary event stream: `messageStart`, the text in `chunks` deltas (or each tool call
    /// as a block with its input in two deltas), `messageStop`, `metadata`. With `cut_after`,
    /// the connection breaks after that many deltas; with `exception`, that exception replaces
    /// `messageStop`.
    pub fn script(&self, plan: &Plan) -> serde_json::Result<Script> {
        let mut frames = Vec::new();
        if !self.filtered && self.tool_calls.is_empty() {
            let reply = padded(&self.reply, plan.chunks);
            for piece in split(&reply, plan.chunks) {
                frames.push(event(
                    "contentBlockDelta",
                    &serde_json::json!({"contentBlockIndex": 0, "delta": {"text": piece}, "p": "abcdefgh"}),
                )?);
            }
            frames.push(event(
                "contentBlockStop",
                &serde_json::json!({"contentBlockIndex": 0}),
            )?);
        } else if !self.filtered {
            for (index, call) in self.tool_calls.iter().enumerate() {
                let (head, tail) = call.arguments.split_at(call.arguments.len() / 2);
                frames.push(event(
                    "contentBlockStart",
                    &serde_json::json!({"contentBlockIndex": index,
                        "start": {"toolUse": {"toolUseId": call.id, "name": call.name}}}),
                )?);
                for part in [head, tail] {
                    frames.push(event(
                        "contentBlockDelta",
                        &serde_json::json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": part}}}),
                    )?);
                }
                frames.push(event(
                    "contentBlockStop",
                    &serde_json::json!({"contentBlockIndex": index}),
                )?);
            }
        }
        let mut script = Script::with_capacity(frames.len() + 3);
        script.push(
            Duration::ZERO,
            event("messageStart", &serde_json::json!({"role": "assistant"}))?,
        );
        let shown = plan
            .cut_after
            .map_or(frames.len(), |cut| cut.min(frames.len()));
        for frame in frames.into_iter().take(shown) {
            script.push(plan.chunk_delay, frame);
        }
        if plan.cut_after.is_some() {
            return Ok(script.cut());
        }
        if let Some(kind) = &plan.exception {
            script.push(
                Duration::ZERO,
                exception(kind, "The mock upstream's exception.")?,
            );
            return Ok(script);
        }
        script.push(
            Duration::ZERO,
            event(
                "messageStop",
                &serde_json::json!({"stopReason": self.stop_reason()}),
            )?,
        );
        #[derive(Serialize)]
        struct Metadata {
            #[serde(skip_serializing_if = "Option::is_none")]
            usage: Option<Usage>,
            metrics: Metrics,
        }
        let metadata = Metadata {
            usage: self.usage,
            metrics: Metrics { latency_ms: 12 },
        };
        script.push(Duration::ZERO, event("metadata", &metadata)?);
        Ok(script)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum BlockOut<'a> {
    Text(&'a str),
    ToolUse(ToolUseOut<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseOut<'a> {
    tool_use_id: &'a str,
    name: &'a str,
    input: Box<RawValue>,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    latency_ms: u64,
}

fn encoded(message: &Message) -> serde_json::Result<Bytes> {
    let mut out = Vec::with_capacity(message.payload().len() + 96);
    write_message_to(message, &mut out).map_err(serde::ser::Error::custom)?;
    Ok(Bytes::from(out))
}

fn string(value: &str) -> EventHeader {
    EventHeader::String(value.to_owned().into())
}

/// One event message of ConverseStream.
fn event(kind: &str, payload: &impl Serialize) -> serde_json::Result<Bytes> {
    let message = Message::new(serde_json::to_vec(payload)?)
        .add_header(Header::new(":event-type", string(kind)))
        .add_header(Header::new(":content-type", string("application/json")))
        .add_header(Header::new(":message-type", string("event")));
    encoded(&message)
}

/// One exception message of ConverseStream (`throttlingException`, `modelStreamErrorException`…).
fn exception(kind: &str, message: &str) -> serde_json::Result<Bytes> {
    let message = Message::new(serde_json::to_vec(
        &serde_json::json!({"message": message}),
    )?)
    .add_header(Header::new(":exception-type", string(kind)))
    .add_header(Header::new(":content-type", string("application/json")))
    .add_header(Header::new(":message-type", string("exception")));
    encoded(&message)
}

/// A binary event-stream response playing `script`.
pub(super) fn streamed(
    script: Script,
    disconnects: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Response {
    let headers = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    )];
    (headers, script.into_body(disconnects)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const PATH: &str = "/bedrock/model/m%3A0/converse";
    const BODY: &[u8] = br#"{"messages":[]}"#;

    fn config() -> MockConfig {
        MockConfig {
            aws_access_key_id: Some(KEY_ID.to_owned()),
            aws_secret_access_key: Some(SECRET.to_owned()),
            ..MockConfig::default()
        }
    }

    /// The headers of a request signed with `secret` at `time`, as a client would send them.
    fn signed(secret: &str, time: SystemTime) -> HeaderMap {
        let date = chrono::DateTime::<chrono::Utc>::from(time).format("%Y%m%dT%H%M%SZ");
        let day = chrono::DateTime::<chrono::Utc>::from(time).format("%Y%m%d");
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-amz-date", date.to_string().parse().unwrap());
        let unsigned = format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/{day}/us-east-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature="
        );
        let signature = expected_signature(
            &unsigned,
            PATH,
            &headers,
            BODY,
            (KEY_ID, secret, None),
            time,
        )
        .unwrap();
        headers.insert(
            "authorization",
            format!("{unsigned}{signature}").parse().unwrap(),
        );
        headers
    }

    async fn refusal(headers: &HeaderMap, config: &MockConfig) -> Option<(u16, String, String)> {
        let response = signature_refusal(config, PATH, headers, BODY)?;
        let status = response.status().as_u16();
        let kind = response.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        Some((status, kind, body["message"].as_str().unwrap().to_owned()))
    }

    #[tokio::test]
    async fn the_verifier_refuses_what_aws_refuses() {
        let now = SystemTime::now();
        assert!(refusal(&signed(SECRET, now), &config()).await.is_none());

        // A wrong secret: the signature does not match.
        let (status, kind, message) = refusal(&signed("wrong", now), &config()).await.unwrap();
        assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
        assert!(message.starts_with("The request signature we calculated does not match"));

        // A changed body no longer matches its signature.
        let headers = signed(SECRET, now);
        let changed = signature_refusal(&config(), PATH, &headers, b"{}").unwrap();
        assert_eq!(changed.status(), 403);

        // Signed more than five minutes ago (or ahead): expired, as AWS says it.
        let stale = now - Duration::from_secs(301);
        let (status, kind, message) = refusal(&signed(SECRET, stale), &config()).await.unwrap();
        assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
        assert!(message.starts_with("Signature expired:"), "{message}");
        let ahead = now + Duration::from_secs(400);
        assert!(refusal(&signed(SECRET, ahead), &config()).await.is_some());
        let recent = now - Duration::from_secs(200);
        assert!(refusal(&signed(SECRET, recent), &config()).await.is_none());

        // No signature, an unknown key id, a session token the mock does not know.
        let (status, kind, _) = refusal(&HeaderMap::new(), &config()).await.unwrap();
        assert_eq!(
            (status, kind.as_str()),
            (403, "MissingAuthenticationTokenException")
        );
        let other = MockConfig {
            aws_access_key_id: Some("AKIDOTHER".to_owned()),
            ..config()
        };
        let (_, kind, _) = refusal(&signed(SECRET, now), &other).await.unwrap();
        assert_eq!(kind, "UnrecognizedClientException");
        let with_token = MockConfig {
            aws_session_token: Some("expected-token".to_owned()),
            ..config()
        };
        let (_, kind, _) = refusal(&signed(SECRET, now), &with_token).await.unwrap();
        assert_eq!(kind, "UnrecognizedClientException");
    }

    #[test]
    fn converse_paths_name_the_model_and_the_stream() {
        assert_eq!(
            route("/bedrock/model/anthropic.claude-v2%3A1/converse-stream"),
            Some(("anthropic.claude-v2%3A1", true))
        );
        assert_eq!(route("/bedrock/model/m/converse"), Some(("m", false)));
        assert_eq!(route("/bedrock/model/m/invoke"), None);
    }
}

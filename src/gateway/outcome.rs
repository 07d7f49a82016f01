//! What an upstream's answer means, decided in one place for the attempt loop and the stream
//! relay: [`of_status`], [`sent`], [`read`] and the rest classify one attempt into an
//! [`Outcome`], [`of_stream`] one item of a relayed stream. Also what an error answer says
//! (whether a 429 limits one model or the whole account) and its text made safe to log or relay
//! (credentials hidden, length bounded).

use std::fmt::Display;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use crate::error::ApiError;
use crate::providers::{MintFailure, SigningFailure};
use crate::routing::Target;
use crate::secret::{Secret, redact_credentials};
use crate::translate::EventLimit;
use crate::upstream::{BodyError, Impatient};
use crate::usage::{self, Usage, WholeAnswer};

/// What one attempt came to, and so what the attempt loop does next; `A` is the answer handed
/// on to the client.
pub(super) enum Outcome<A> {
    /// The upstream answered (a success, or an error that is the client's own): the answer
    /// goes to the client.
    Answered(A),
    /// A 429: the account (or one model of it) cools, and another account of the route is
    /// tried.
    AccountLimited {
        scope: LimitScope,
        retry_after: Option<Duration>,
        /// The (redacted) error answer, for the log.
        body: Bytes,
    },
    /// The upstream refused the account's credential (401, 403): the account is taken out,
    /// and another account of the route is tried.
    CredentialRefused {
        status: StatusCode,
        /// The (redacted) error answer.
        body: Bytes,
    },
    /// A failure on the upstream's side (no answer in time, a cut, a 5xx, a redirect, an
    /// answer too large or unreadable): counted against the route's circuit, and another
    /// route is tried.
    RouteFailed(RouteFailure),
    /// The upstream refused the request for what it asks (a content filter): the client's
    /// error, answered in the contract's shape and not tried elsewhere.
    Refused(ApiError),
}

/// A failure on the upstream's side, and whether its target may be tried again.
#[derive(Debug)]
pub(super) struct RouteFailure {
    pub error: ApiError,
    /// The same target may be tried again after a backoff; not when the same request would
    /// bring the same failure (an answer over the cap).
    pub retry_same: bool,
}

impl<A> From<RouteFailure> for Outcome<A> {
    fn from(failure: RouteFailure) -> Self {
        Self::RouteFailed(failure)
    }
}

/// What a 429 limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LimitScope {
    /// One model of the account: the (account, upstream model) pair cools.
    Model,
    /// The whole account (its quota or billing is exhausted): every model of it cools.
    Account,
}

/// What an answer's status says, before its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Head {
    RateLimited,
    CredentialRefused,
    ServerError,
    /// The client never sees an upstream's redirect (it would have to resend through llmgate
    /// anyway): a route whose base URL redirects is misconfigured.
    Redirect,
    /// A success, or a client error that is the client's own: read and relayed.
    Answer,
}

/// What `status` means for an attempt whose target has an account (`with_account`) or not.
pub(super) fn of_status(status: StatusCode, with_account: bool) -> Head {
    if status == StatusCode::TOO_MANY_REQUESTS {
        Head::RateLimited
    } else if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) && with_account {
        Head::CredentialRefused
    } else if status.is_server_error() {
        Head::ServerError
    } else if status.is_redirection() {
        Head::Redirect
    } else {
        Head::Answer
    }
}

/// The response headers, or the failure, of a request sent within `budget`.
pub(super) fn sent<T>(
    result: Result<Result<T, reqwest::Error>, Impatient>,
    provider: &str,
    budget: Duration,
) -> Result<T, RouteFailure> {
    match result {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(route_failed(upstream_error(provider, error))),
        Err(Impatient::Deadline) => Err(route_failed(ApiError::UpstreamTimeout {
            detail: format!("{provider}: no response headers within {budget:?}"),
        })),
        Err(silent) => Err(route_failed(ApiError::UpstreamTimeout {
            detail: format!("{provider}: no response headers, {}", waited(silent)),
        })),
    }
}

/// A whole answer read under the cap within `budget`, or the failure.
pub(super) fn read(
    result: Result<Bytes, BodyError>,
    provider: &str,
    budget: Duration,
) -> Result<Bytes, RouteFailure> {
    match result {
        Ok(body) => Ok(body),
        // The same request would bring the same oversized answer: another route may serve,
        // this target is not retried.
        Err(BodyError::TooLarge { limit }) => Err(RouteFailure {
            error: ApiError::UpstreamTooLarge {
                provider: provider.to_owned(),
                limit,
            },
            retry_same: false,
        }),
        Err(BodyError::Read(error)) => Err(route_failed(upstream_error(provider, error))),
        Err(BodyError::Waited(Impatient::Deadline)) => {
            Err(route_failed(ApiError::UpstreamTimeout {
                detail: format!("{provider}: no complete answer within {budget:?}"),
            }))
        }
        Err(BodyError::Waited(silent)) => Err(route_failed(ApiError::UpstreamTimeout {
            detail: format!(
                "{provider}: the answer stopped arriving, {}",
                waited(silent)
            ),
        })),
    }
}

/// What ran out, for an error's detail.
fn waited(impatient: Impatient) -> String {
    match impatient {
        Impatient::Deadline => "the attempt's deadline passed".to_owned(),
        Impatient::Silent(silence) => {
            format!("nothing received for {silence:?} (LLMGATE_UPSTREAM_READ_TIMEOUT)")
        }
    }
}

/// A 429 that asked to wait `retry_after`, with its (redacted) `body`.
pub(super) fn rate_limited<A>(retry_after: Option<Duration>, body: Bytes) -> Outcome<A> {
    // Providers limit each model of an account separately, unless the upstream says the
    // account itself is out.
    let scope = if account_exhausted(&body) {
        LimitScope::Account
    } else {
        LimitScope::Model
    };
    Outcome::AccountLimited {
        scope,
        retry_after,
        body,
    }
}

/// The access token minted for an attempt within its `budget`, or what its failure means. No
/// token (the token endpoint refused the service account, or failed): the account is taken out
/// as if its credential were refused, with the token endpoint's (redacted) answer for the log.
/// The attempt's deadline passed while the token was awaited: a timeout, as if the upstream
/// were silent.
pub(super) fn minted<A>(
    result: Result<Result<Secret, MintFailure>, tokio::time::error::Elapsed>,
    provider: &str,
    budget: Duration,
) -> Result<Secret, Outcome<A>> {
    match result {
        Ok(Ok(token)) => Ok(token),
        Ok(Err(failure)) => Err(Outcome::CredentialRefused {
            status: StatusCode::UNAUTHORIZED,
            body: Bytes::from(failure.detail),
        }),
        Err(_) => Err(Outcome::from(route_failed(ApiError::UpstreamTimeout {
            detail: format!("{provider}: no access token within {budget:?}"),
        }))),
    }
}

/// A request that could not be signed (a Bedrock account whose stored credential is not an AWS
/// access key): the account is taken out as if AWS had refused its signature.
pub(super) fn unsigned<A>(failure: SigningFailure) -> Outcome<A> {
    Outcome::CredentialRefused {
        status: StatusCode::FORBIDDEN,
        body: Bytes::from(failure.detail),
    }
}

/// A client error that the upstream's content filter made (Azure OpenAI's 400 with code
/// `content_filter`): the contract's `content_filter` error rather than the upstream's body.
pub(super) fn refused<A>(status: StatusCode, body: &[u8], provider: &str) -> Option<Outcome<A>> {
    if status != StatusCode::BAD_REQUEST {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = &answer["error"];
    (error["code"].as_str() == Some("content_filter")).then(|| {
        Outcome::Refused(ApiError::ContentFiltered {
            provider: provider.to_owned(),
            param: error["param"].as_str().map(str::to_owned),
        })
    })
}

/// A 5xx with its (redacted) `body`.
pub(super) fn server_error<A>(provider: &str, status: StatusCode, body: &[u8]) -> Outcome<A> {
    Outcome::from(route_failed(ApiError::UpstreamFailed {
        detail: format!("{provider} answered {status}: {}", excerpt(body)),
    }))
}

/// A 3xx: the route is misconfigured, and the next candidate may serve.
pub(super) fn redirected<A>(provider: &str, status: StatusCode, headers: &HeaderMap) -> Outcome<A> {
    Outcome::from(redirect(provider, status, headers))
}

fn redirect(provider: &str, status: StatusCode, headers: &HeaderMap) -> RouteFailure {
    let to = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map_or_else(String::new, |to| format!(" to '{to}'"));
    route_failed(ApiError::UpstreamFailed {
        detail: format!(
            "{provider} answered {status}{to}; llmgate does not follow redirects: set the \
             provider's base_url to the final address"
        ),
    })
}

/// The usage a successful whole answer reports, or the failure when it is not JSON: nothing
/// has reached the client yet, so it still counts as the upstream's.
pub(super) fn answered(
    provider: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<Option<Usage>, RouteFailure> {
    match usage::read_answer(body) {
        WholeAnswer::Json(reported) => Ok(reported),
        WholeAnswer::NotJson => Err(route_failed(ApiError::UpstreamFailed {
            detail: format!("{provider} answered {status} with a body that is not JSON"),
        })),
    }
}

/// A success the translator cannot read: the upstream's failure too.
pub(super) fn unreadable<A>(provider: &str, error: impl Display) -> Outcome<A> {
    Outcome::from(route_failed(ApiError::UpstreamFailed {
        detail: format!("{provider}: {error}"),
    }))
}

fn route_failed(error: ApiError) -> RouteFailure {
    RouteFailure {
        error,
        retry_same: true,
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

/// The upstream's `Retry-After` (seconds) or `retry-after-ms`.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    read("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| read("retry-after"))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// What one item of a relayed stream means.
pub(super) enum StreamItem {
    /// Frames to translate and pass on.
    Frames(Bytes),
    /// The upstream's body ran to its end.
    Ended,
    /// The stream fails with `error`; `route_failed` when it counts against the route's
    /// circuit.
    Failed { error: ApiError, route_failed: bool },
}

/// What `next` from the upstream's stream means: bytes within `limit`, the end, or a failure
/// (`provider` names the upstream of an event past the limit).
pub(super) fn of_stream(
    next: Result<Option<reqwest::Result<Bytes>>, Impatient>,
    limit: &mut EventLimit,
    provider: Option<&str>,
) -> StreamItem {
    let next = match next {
        Ok(next) => next,
        Err(impatient) => {
            return StreamItem::Failed {
                error: ApiError::UpstreamTimeout {
                    detail: format!("upstream fell silent mid-stream: {}", waited(impatient)),
                },
                route_failed: false,
            };
        }
    };
    match next {
        Some(Ok(bytes)) => match limit.check(&bytes) {
            Ok(()) => StreamItem::Frames(bytes),
            // An event past the limit would grow the decoders' buffers without bound: the
            // stream ends there, as the upstream's failure, and its memory goes.
            Err(too_large) => StreamItem::Failed {
                error: ApiError::UpstreamTooLarge {
                    provider: provider.unwrap_or_default().to_owned(),
                    limit: too_large.limit,
                },
                route_failed: true,
            },
        },
        Some(Err(error)) => StreamItem::Failed {
            error: if error.is_timeout() {
                ApiError::UpstreamTimeout {
                    detail: format!("upstream fell silent mid-stream: {error}"),
                }
            } else {
                ApiError::UpstreamFailed {
                    detail: format!("upstream stream broke: {error}"),
                }
            },
            route_failed: false,
        },
        None => StreamItem::Ended,
    }
}

/// How much of an error answer is read: enough for any provider's error object.
pub(super) const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How much of an error answer goes into a log line.
const EXCERPT_LEN: usize = 512;

/// Error codes by which an upstream says the account itself is out, whatever the model: its
/// quota or billing is exhausted (OpenAI's `insufficient_quota`, also sent by many
/// OpenAI-compatible APIs). Every other 429 limits one model of the account.
const ACCOUNT_WIDE_CODES: &[&str] = &["insufficient_quota", "billing_hard_limit_reached"];

/// Whether a 429's body says the whole account is out rather than one model rate-limited.
fn account_exhausted(body: &[u8]) -> bool {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let error = &answer["error"];
    [&error["code"], &error["type"]]
        .iter()
        .filter_map(|value| value.as_str())
        .any(|value| ACCOUNT_WIDE_CODES.contains(&value))
}

/// `body` with the credentials in it hidden: the target account's own, and anything shaped
/// like a credential. The one place an upstream error answer is cleaned, before it reaches a
/// log line or a client.
pub(super) fn redacted(body: Bytes, target: Target<'_>) -> Bytes {
    hidden(body, target.account.map(|account| account.api_key.expose()))
}

/// `body` with `credential` (the account's, when it has one) and anything shaped like a
/// credential hidden: for [`redacted`], and for an error event an upstream sends mid-stream.
pub(super) fn hidden(body: Bytes, credential: Option<&str>) -> Bytes {
    let known: &[&str] = match &credential {
        Some(credential) => std::slice::from_ref(credential),
        None => &[],
    };
    match redact_credentials(&body, known) {
        std::borrow::Cow::Borrowed(_) => body,
        std::borrow::Cow::Owned(clean) => Bytes::from(clean),
    }
}

/// The start of an (already redacted) error answer, as text for a log line.
pub(super) fn excerpt(body: &[u8]) -> String {
    let mut end = body.len().min(EXCERPT_LEN);
    // Cut on a character boundary rather than leave half a character.
    while end < body.len() && end > 0 && (body[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    String::from_utf8_lossy(&body[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_classified_before_its_body_is_read() {
        for (status, with_account, head) in [
            (429, true, Head::RateLimited),
            (429, false, Head::RateLimited),
            (401, true, Head::CredentialRefused),
            (403, true, Head::CredentialRefused),
            // Without an account there is no credential of llmgate's to blame: the client's.
            (401, false, Head::Answer),
            (500, true, Head::ServerError),
            (503, false, Head::ServerError),
            (301, true, Head::Redirect),
            (307, false, Head::Redirect),
            (200, true, Head::Answer),
            (400, true, Head::Answer),
            (404, false, Head::Answer),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(of_status(status, with_account), head, "{status}");
        }
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_had_refuses_the_credential_or_times_out() {
        let budget = Duration::from_secs(1);
        let token = minted::<()>(Ok(Ok(Secret::new("ya29.t"))), "vertex", budget);
        assert_eq!(
            token.ok().map(|t| t.expose().to_owned()).as_deref(),
            Some("ya29.t")
        );
        let failure = MintFailure {
            detail: "the token endpoint answered 400: invalid_grant".into(),
        };
        match minted::<()>(Ok(Err(failure)), "vertex", budget) {
            Err(Outcome::CredentialRefused { status, body }) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED);
                assert!(body.starts_with(b"the token endpoint"));
            }
            _ => panic!("a refused service account refuses the credential"),
        }
        let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err();
        match minted::<()>(Err(elapsed), "vertex", budget) {
            Err(Outcome::RouteFailed(failure)) => {
                assert!(matches!(failure.error, ApiError::UpstreamTimeout { .. }));
            }
            _ => panic!("a token not had in time is a timeout"),
        }
    }

    #[test]
    fn a_429_says_its_scope_and_wait() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let scope = |body: &'static [u8]| match rate_limited::<()>(None, Bytes::from_static(body)) {
            Outcome::AccountLimited { scope, .. } => scope,
            _ => panic!("a 429 limits the account"),
        };
        assert_eq!(
            scope(br#"{"error":{"code":"insufficient_quota"}}"#),
            LimitScope::Account
        );
        assert_eq!(scope(b""), LimitScope::Model);
    }

    #[test]
    fn a_stream_event_past_the_limit_fails_the_route() {
        let mut limit = EventLimit::new(16);
        assert!(matches!(
            of_stream(
                Ok(Some(Ok(Bytes::from_static(b"data: 1\n\n")))),
                &mut limit,
                None
            ),
            StreamItem::Frames(_)
        ));
        let StreamItem::Failed {
            error,
            route_failed,
        } = of_stream(
            Ok(Some(Ok(Bytes::from_static(
                b"data: this event is far too long",
            )))),
            &mut limit,
            Some("openai"),
        )
        else {
            panic!("an event past the limit fails the stream");
        };
        assert!(route_failed);
        assert!(matches!(
            error,
            ApiError::UpstreamTooLarge { limit: 16, .. }
        ));
        assert!(matches!(
            of_stream(Ok(None), &mut limit, None),
            StreamItem::Ended
        ));
    }

    #[test]
    fn only_a_content_filter_s_400_is_refused_in_the_contract_s_shape() {
        let filtered = br#"{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400}}"#;
        match refused::<()>(StatusCode::BAD_REQUEST, filtered, "azure") {
            Some(Outcome::Refused(error)) => {
                assert_eq!(error.status_type_code().2, "content_filter");
                assert!(error.to_json(None).contains(r#""param":"prompt""#));
            }
            _ => panic!("a content filter's refusal is the contract's error"),
        }
        assert!(refused::<()>(StatusCode::TOO_MANY_REQUESTS, filtered, "azure").is_none());
        assert!(
            refused::<()>(
                StatusCode::BAD_REQUEST,
                br#"{"error":{"code":"invalid_value"}}"#,
                "azure"
            )
            .is_none()
        );
    }

    #[test]
    fn only_an_answer_that_says_the_account_is_out_limits_the_whole_account() {
        for (body, whole) in [
            (
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
                true,
            ),
            (r#"{"error":{"code":"billing_hard_limit_reached"}}"#, true),
            (
                r#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","code":"rate_limit_exceeded"}}"#,
                false,
            ),
            (
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
                false,
            ),
            (
                r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
                false,
            ),
            ("insufficient_quota", false),
            ("", false),
        ] {
            assert_eq!(account_exhausted(body.as_bytes()), whole, "{body}");
        }
    }

    #[test]
    fn an_excerpt_is_bounded_and_whole_characters() {
        let long = "é".repeat(400);
        let text = excerpt(long.as_bytes());
        assert!(
            text.len() <= EXCERPT_LEN && !text.contains('\u{fffd}'),
            "{text}"
        );
        assert_eq!(excerpt(b"short"), "short");
    }
}

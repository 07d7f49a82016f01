//! AWS credentials of a Bedrock account, and AWS Signature Version 4 on every request to it,
//! computed by AWS's own signer (`aws-sigv4`).
//!
//! The account's credential is stored sealed like an API key: a small JSON object holding the
//! access key id, the secret access key and, for temporary credentials, the session token
//! (sent as `x-amz-security-token` and covered by the signature).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The service name Bedrock's runtime signs under.
const SERVICE: &str = "bedrock";

/// The longest credential part taken (AWS session tokens run to a couple of kilobytes).
const MAX_PART_CHARS: usize = 8 * 1024;

/// An account's AWS credentials, as stored (sealed) in its credential.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    aws_access_key_id: &'a str,
    aws_secret_access_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aws_session_token: Option<&'a str>,
}

/// Why a request could not be signed (the stored credential is not AWS's, or a part of it
/// cannot go in a header). Its text names no secret.
#[derive(Debug, Clone)]
pub struct SigningFailure {
    pub detail: String,
}

/// The credential stored for an account with these AWS credentials, each part checked (not
/// empty, printable ASCII, bounded); a problem names the field without echoing its value.
pub fn aws_credential(
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> Result<Secret, (&'static str, String)> {
    let check = |field: &'static str, value: &str| {
        let value = value.trim();
        if value.is_empty() {
            return Err((field, "must not be empty".to_owned()));
        }
        if value.chars().count() > MAX_PART_CHARS {
            return Err((
                field,
                format!("must be at most {MAX_PART_CHARS} characters"),
            ));
        }
        if value.chars().any(|c| !c.is_ascii_graphic()) {
            return Err((
                field,
                "must be printable ASCII without spaces (as AWS issues it)".to_owned(),
            ));
        }
        Ok(())
    };
    check("aws_access_key_id", access_key_id)?;
    check("aws_secret_access_key", secret_access_key)?;
    if let Some(token) = session_token {
        check("aws_session_token", token)?;
    }
    let stored = Stored {
        aws_access_key_id: access_key_id.trim(),
        aws_secret_access_key: secret_access_key.trim(),
        aws_session_token: session_token.map(str::trim),
    };
    serde_json::to_string(&stored)
        .map(Secret::new)
        .map_err(|error| ("aws_access_key_id", format!("cannot be stored: {error}")))
}

/// The access key id of a stored AWS credential (what the admin API shows of it); `None` for
/// any other credential.
pub fn aws_access_key_id(credential: &str) -> Option<String> {
    serde_json::from_str::<Stored<'_>>(credential)
        .ok()
        .map(|stored| stored.aws_access_key_id.to_owned())
}

/// The headers that sign a `POST` of `body` (sent with `content_type`) to `url` for `region`
/// at `time`, with the account's stored `credential`: `authorization`, `x-amz-date` and, for
/// temporary credentials, `x-amz-security-token`.
pub fn sigv4_headers(
    credential: &str,
    region: &str,
    url: &str,
    content_type: &str,
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, SigningFailure> {
    let stored: Stored<'_> = serde_json::from_str(credential).map_err(|_| SigningFailure {
        detail: "the account's credential is not an AWS access key (give the account \
                 aws_access_key_id and aws_secret_access_key)"
            .to_owned(),
    })?;
    let identity = Credentials::new(
        stored.aws_access_key_id,
        stored.aws_secret_access_key,
        stored.aws_session_token.map(str::to_owned),
        None,
        "llmgate",
    )
    .into();
    let failed = |error: &dyn std::fmt::Display| SigningFailure {
        detail: format!("the request could not be signed: {error}"),
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| failed(&error))?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        std::iter::once(("content-type", content_type)),
        SignableBody::Bytes(body),
    )
    .map_err(|error| failed(&error))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|error| failed(&error))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|header| (header.name(), header.value().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_credential_shows_only_its_key_id_and_refuses_bad_parts() {
        let stored = aws_credential("AKIDEXAMPLE", " wJalrXUtnFEMI/K7MDENG ", None).unwrap();
        assert_eq!(
            aws_access_key_id(stored.expose()).as_deref(),
            Some("AKIDEXAMPLE")
        );
        assert!(!stored.expose().contains(' '));
        assert_eq!(aws_access_key_id("sk-plain-key"), None);
        let (field, problem) = aws_credential("AKID", "", None).unwrap_err();
        assert_eq!(field, "aws_secret_access_key");
        assert!(problem.contains("empty"));
        let (field, _) = aws_credential("AKID", "secret", Some("a b")).unwrap_err();
        assert_eq!(field, "aws_session_token");
    }

    /// AWS's documented example (the SigV4 test suite's `post-vanilla`, which signs no content
    /// type): a signature over host and date, with the session token signed when given.
    #[test]
    fn requests_are_signed_with_the_date_the_token_and_the_signature() {
        let stored = aws_credential(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token-example"),
        )
        .unwrap();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let headers = sigv4_headers(
            stored.expose(),
            "us-east-1",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse",
            "application/json",
            b"{}",
            time,
        )
        .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(get("x-amz-date"), "20150830T123600Z");
        assert_eq!(get("x-amz-security-token"), "session-token-example");
        let authorization = get("authorization");
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
            "{authorization}"
        );
        assert!(sigv4_headers("not json", "us-east-1", "https://x", "a", b"", time).is_err());
    }
}

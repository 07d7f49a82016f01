//! What an upstream's error answer says: whether a 429 limits one model or the whole account,
//! and its text made safe to log or relay (credentials hidden, length bounded).

use bytes::Bytes;

use crate::routing::Target;
use crate::secret::redact_credentials;

/// How much of an error answer is read: enough for any provider's error object.
pub(super) const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How much of an error answer goes into a log line.
const EXCERPT_LEN: usize = 512;

/// Error codes by which an upstream says the account itself is out, whatever the model: its
/// quota or billing is exhausted (OpenAI's `insufficient_quota`, also sent by many
/// OpenAI-compatible APIs). Every other 429 limits one model of the account.
const ACCOUNT_WIDE_CODES: &[&str] = &["insufficient_quota", "billing_hard_limit_reached"];

/// Whether a 429's body says the whole account is out rather than one model rate-limited.
pub(super) fn account_exhausted(body: &[u8]) -> bool {
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
    let known: &[&str] = match target.account {
        Some(account) => &[account.api_key.expose()],
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

//! `system`-role messages inside `messages`, folded into the top-level `system` for an
//! Anthropic upstream.
//!
//! Claude Code sends one (its list of agent types) when the model's name is not a Claude one.
//! Anthropic-compatible upstreams refuse it ("Unexpected role system"), so it is moved: each
//! such message becomes text blocks appended, in order, after the request's own `system`
//! blocks. Appending rather than turning it into a user-turn text was chosen because:
//! - it stays an instruction of the harness, not words of the user;
//! - it is valid wherever it sits: a text added to a user turn would have to be placed after
//!   that turn's `tool_result` blocks, which Anthropic requires first;
//! - the client's own `system` blocks and their `cache_control` breakpoints reach the upstream
//!   unchanged, so the cached prefix up to them is still hit (Claude Code's agent list does not
//!   change within a session, so the prefix after them is stable too).
//!
//! Every other byte of the body is kept: only the values of `messages` and `system` are
//! rewritten, and only when such a message is there.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::translate::TranslateError;

const MESSAGES_API: &str = "Anthropic Messages";

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow)]
    system: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RoleOf<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct KindOf<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

/// The body with its `system`-role messages folded into `system` (see the module docs), or
/// `None` when it has none and goes upstream as it is.
pub fn fold_system_messages(body: &[u8]) -> Result<Option<Bytes>, TranslateError> {
    if !may_hold_system_role(body) {
        return Ok(None);
    }
    let top: Top<'_> =
        serde_json::from_slice(body).map_err(TranslateError::request(MESSAGES_API))?;
    let Some(messages_raw) = top.messages else {
        return Ok(None);
    };
    let messages: Vec<&RawValue> =
        serde_json::from_str(messages_raw.get()).map_err(TranslateError::request(MESSAGES_API))?;
    let mut kept = Vec::with_capacity(messages.len());
    let mut folded = Vec::new();
    for (at, raw) in messages.iter().enumerate() {
        let message: RoleOf<'_> =
            serde_json::from_str(raw.get()).map_err(TranslateError::request(MESSAGES_API))?;
        if message.role.as_deref() != Some("system") {
            kept.push(raw.get());
            continue;
        }
        if let Some(content) = message.content {
            text_blocks(content, &format!("messages[{at}].content"), &mut folded)?;
        }
    }
    if kept.len() == messages.len() {
        return Ok(None);
    }
    let mut system = Vec::with_capacity(folded.len() + 4);
    if let Some(raw) = top.system {
        own_system_blocks(raw, &mut system)?;
    }
    system.append(&mut folded);

    let new_messages = format!("[{}]", kept.join(","));
    let new_system = format!("[{}]", system.join(","));
    let mut edits = vec![(span_of(body, messages_raw)?, new_messages)];
    match top.system {
        Some(raw) => edits.push((span_of(body, raw)?, new_system)),
        None => {
            // After the object's opening brace; `messages` follows somewhere, so a comma fits.
            let brace = body.iter().position(|b| *b == b'{').ok_or_else(|| {
                TranslateError::InvalidRequest("The body is not an object.".into())
            })?;
            edits.push((brace + 1..brace + 1, format!("\"system\":{new_system},")));
        }
    }
    edits.sort_by_key(|(span, _)| span.start);
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut from = 0;
    for (span, text) in edits {
        out.extend_from_slice(&body[from..span.start]);
        out.extend_from_slice(text.as_bytes());
        from = span.end;
    }
    out.extend_from_slice(&body[from..]);
    Ok(Some(Bytes::from(out)))
}

/// Whether `body` may hold a message whose role is `system`: the JSON string `"system"` in the
/// place of a value (after a colon). Inside a string, quotes are escaped, so this finds only
/// real strings; the top-level key `"system"` is followed by a colon, not preceded by one.
/// Most requests fail this check and cost one scan.
fn may_hold_system_role(body: &[u8]) -> bool {
    memchr::memmem::find_iter(body, b"\"system\"").any(|at| {
        body[..at]
            .iter()
            .rev()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b':')
    })
}

/// The request's own `system`: a string becomes one text block; blocks are kept as they are.
fn own_system_blocks<'b>(
    raw: &'b RawValue,
    out: &mut Vec<Cow<'b, str>>,
) -> Result<(), TranslateError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => {
            if text != "\"\"" {
                out.push(Cow::Owned(format!("{{\"type\":\"text\",\"text\":{text}}}")));
            }
        }
        Some(b'[') => {
            let blocks: Vec<&RawValue> =
                serde_json::from_str(text).map_err(TranslateError::request(MESSAGES_API))?;
            out.extend(blocks.into_iter().map(|block| Cow::Borrowed(block.get())));
        }
        _ if text == "null" => {}
        _ => {
            return Err(TranslateError::InvalidRequest(
                "'system' must be a string or a list of text blocks.".into(),
            ));
        }
    }
    Ok(())
}

/// A system message's content as text blocks: a string becomes one; text blocks are kept as
/// they are (their `cache_control` with them); empty texts are left out (Anthropic refuses
/// them).
fn text_blocks<'b>(
    content: &'b RawValue,
    path: &str,
    out: &mut Vec<Cow<'b, str>>,
) -> Result<(), TranslateError> {
    let text = content.get();
    if text.starts_with('"') {
        if text != "\"\"" {
            out.push(Cow::Owned(format!("{{\"type\":\"text\",\"text\":{text}}}")));
        }
        return Ok(());
    }
    let blocks: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| {
        TranslateError::InvalidRequest(format!("{path} must be a string or a list of text blocks."))
    })?;
    for (at, block) in blocks.into_iter().enumerate() {
        let kind: KindOf<'_> =
            serde_json::from_str(block.get()).map_err(TranslateError::request(MESSAGES_API))?;
        match kind.kind.as_deref() {
            Some("text") => out.push(Cow::Borrowed(block.get())),
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "{path}[{at}] is a '{}' block; a system message takes only text blocks.",
                    other.unwrap_or("untyped")
                )));
            }
        }
    }
    Ok(())
}

/// Where `raw`, borrowed from `body`, sits in it.
fn span_of(body: &[u8], raw: &RawValue) -> Result<std::ops::Range<usize>, TranslateError> {
    let start = raw.get().as_ptr().addr().wrapping_sub(body.as_ptr().addr());
    let span = start..start.wrapping_add(raw.get().len());
    // A borrowed `RawValue` always points into its input; check rather than trust.
    if body.get(span.clone()) == Some(raw.get().as_bytes()) {
        Ok(span)
    } else {
        Err(TranslateError::InvalidRequest(
            "The request body could not be read in place.".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(body: &str) -> Option<serde_json::Value> {
        fold_system_messages(body.as_bytes())
            .unwrap()
            .map(|out| serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn a_body_without_system_messages_is_left_alone() {
        assert_eq!(
            fold(r#"{"system":"s","messages":[{"role":"user","content":"hi"}]}"#),
            None
        );
        // The word in a text, or as a top-level key, is not a system message.
        assert_eq!(
            fold(
                r#"{"system":[{"type":"text","text":"role: \"system\""}],"messages":[{"role":"user","content":"system"}]}"#
            ),
            None
        );
    }

    #[test]
    fn system_messages_are_appended_to_the_system_blocks_in_order() {
        let folded = fold(
            r#"{"model":"m","system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}],
               "messages":[{"role":"user","content":"hi"},{"role":"system","content":"agents"},
               {"role":"assistant","content":"ok"},{"role":"system","content":[{"type":"text","text":"late"}]}],
               "context_management":{"edits":[]}}"#,
        )
        .unwrap();
        assert_eq!(
            folded["system"],
            serde_json::json!([
                {"type":"text","text":"a","cache_control":{"type":"ephemeral"}},
                {"type":"text","text":"agents"},
                {"type":"text","text":"late"}
            ])
        );
        assert_eq!(
            folded["messages"],
            serde_json::json!([{"role":"user","content":"hi"},{"role":"assistant","content":"ok"}])
        );
        assert_eq!(folded["model"], "m");
        assert_eq!(
            folded["context_management"],
            serde_json::json!({"edits": []})
        );
    }

    #[test]
    fn a_string_system_or_none_becomes_blocks() {
        let folded = fold(r#"{"system":"s","messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(
            folded["system"],
            serde_json::json!([{"type":"text","text":"s"},{"type":"text","text":"x"}])
        );
        let folded = fold(
            r#"{"messages":[{"role": "system", "content":"x"},{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(
            folded["system"],
            serde_json::json!([{"type":"text","text":"x"}])
        );
        assert_eq!(folded["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_system_message_with_other_blocks_is_the_clients_error() {
        let error = fold_system_messages(
            br#"{"messages":[{"role":"system","content":[{"type":"image","source":{}}]}]}"#,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("messages[0].content[0] is a 'image' block"),
            "{error}"
        );
    }
}

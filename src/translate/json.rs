//! Small JSON pieces every dialect shares: "a string or a list" values, data URLs, tool-call
//! arguments, the completeness scan of streamed arguments, and frame writing.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use bytes::{BufMut as _, BytesMut};
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON value that is either one string or an array of `T`: message `content`, Anthropic's
/// `system`, OpenAI's `stop`. Deserialized without buffering, so errors name the exact position.
#[derive(Debug)]
pub(crate) enum TextOr<'a, T> {
    Text(Cow<'a, str>),
    List(Vec<T>),
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for TextOr<'a, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextOrVisitor<'a, T>(PhantomData<(&'a (), T)>);

        impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for TextOrVisitor<'a, T> {
            type Value = TextOr<'a, T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TextOr::Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TextOr::Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(TextOr::Text(Cow::Owned(v)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(TextOr::List(items))
            }
        }

        deserializer.deserialize_any(TextOrVisitor(PhantomData))
    }
}

/// The media type and base64 payload of a `data:<type>;base64,<data>` URL; `None` for any other
/// URL (plain web URLs, and data URLs that are not base64).
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (header, data) = rest.split_once(',')?;
    let media_type = header.strip_suffix(";base64")?;
    // Parameters such as `;charset=utf-8` may sit between the type and `;base64`.
    let media_type = media_type.split(';').next().unwrap_or(media_type);
    Some((media_type, data))
}

/// Tool-call arguments as a JSON object ready to embed: OpenAI carries them as a string of JSON,
/// Anthropic's `input` and Gemini's `args` must be objects.
///
/// Empty arguments become `{}`. Arguments that are not a JSON object (a model can emit broken
/// JSON, and it stays in the conversation history) are kept, not lost: they become
/// `{"_raw_arguments": "<the text as sent>"}` so the model still sees what it produced.
pub(crate) fn arguments_object(arguments: &str) -> Box<RawValue> {
    let trimmed = arguments.trim();
    if trimmed.is_empty() {
        return empty_object();
    }
    if trimmed.starts_with('{')
        && let Ok(raw) = serde_json::from_str::<Box<RawValue>>(trimmed)
    {
        return raw;
    }
    #[derive(Serialize)]
    struct Raw<'a> {
        #[serde(rename = "_raw_arguments")]
        raw_arguments: &'a str,
    }
    serde_json::to_string(&Raw {
        raw_arguments: arguments,
    })
    .ok()
    .and_then(|text| RawValue::from_string(text).ok())
    .unwrap_or_else(empty_object)
}

/// `{}` as a raw value.
pub(crate) fn empty_object() -> Box<RawValue> {
    // Infallible for this literal; the fallback keeps the code free of panics.
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| Box::<RawValue>::default())
}

/// Whether a raw JSON value is an object with no members (`{}`, maybe with whitespace).
pub(crate) fn is_empty_object(raw: &RawValue) -> bool {
    let text = raw.get();
    text.strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(|inner| inner.trim().is_empty())
}

/// Tracks whether a JSON value streamed in fragments is complete, without parsing it: the depth
/// of open objects and arrays, outside strings. Used to tell when a streamed tool call's
/// arguments are whole, so the next call's block can be opened.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JsonScan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    started: bool,
    complete: bool,
}

impl JsonScan {
    pub fn feed(&mut self, fragment: &str) {
        for byte in fragment.bytes() {
            if self.complete {
                return;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.started = true;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.started && self.depth == 0 {
                        self.complete = true;
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether a whole object (or array) has been seen.
    pub fn complete(&self) -> bool {
        self.complete
    }
}

/// A tool-call id as Anthropic accepts it (`^[a-zA-Z0-9_-]+$`): other characters become `_`.
/// The same function maps both a `tool_use` id and the `tool_use_id` that refers to it, so the
/// pair still matches.
pub(crate) fn anthropic_tool_id(id: &str) -> Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(valid) {
        return Cow::Borrowed(id);
    }
    let mut clean: String = id.chars().map(|c| if valid(c) { c } else { '_' }).collect();
    if clean.is_empty() {
        clean.push_str("toolu_");
    }
    Cow::Owned(clean)
}

/// Appends `value` as JSON to `out`.
pub(crate) fn write_json(out: &mut BytesMut, value: &impl Serialize) {
    // Serializing the translators' own plain structs into memory cannot fail; a failure would
    // leave a truncated frame, which clients reject, rather than a panic.
    if let Err(error) = serde_json::to_writer(out.writer(), value) {
        tracing::error!(%error, "could not serialize a translated frame");
    }
}

/// Appends one server-sent event: `event: NAME` when named, then `data: JSON` and a blank line.
pub(crate) fn write_event(out: &mut BytesMut, event: Option<&str>, value: &impl Serialize) {
    if let Some(event) = event {
        out.put_slice(b"event: ");
        out.put_slice(event.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"data: ");
    write_json(out, value);
    out.put_slice(b"\n\n");
}

/// Serializes a whole body.
pub(crate) fn to_bytes(value: &impl Serialize) -> bytes::Bytes {
    let mut out = BytesMut::with_capacity(512);
    write_json(&mut out, value);
    out.freeze()
}

/// A JSON text without the whitespace between its tokens, so that it fits on one line: a raw
/// value echoed from a pretty-printed request into a server-sent event's `data:` line must not
/// carry the request's newlines (they would end the line). Strings keep their content (JSON
/// strings hold no raw newlines).
pub(crate) fn compact_json(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .bytes()
        .any(|byte| matches!(byte, b'\n' | b'\r' | b'\t' | b' '))
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Seconds since the Unix epoch, for `created`.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_give_type_and_payload() {
        assert_eq!(
            data_url("data:image/png;base64,iVBOR"),
            Some(("image/png", "iVBOR"))
        );
        assert_eq!(
            data_url("data:text/plain;charset=utf-8;base64,aGk="),
            Some(("text/plain", "aGk="))
        );
        assert_eq!(data_url("data:text/plain,hello"), None);
        assert_eq!(data_url("https://example.com/a.png"), None);
    }

    #[test]
    fn arguments_become_objects_and_broken_ones_are_kept() {
        let check = |arguments: &str, expected: &str| {
            assert_eq!(arguments_object(arguments).get(), expected, "{arguments:?}");
        };
        check("", "{}");
        check("  ", "{}");
        check(r#"{"a": [1, "}"]}"#, r#"{"a": [1, "}"]}"#);
        check(r#" {"a":1} "#, r#"{"a":1}"#);
        check(r#"{"a":"#, r#"{"_raw_arguments":"{\"a\":"}"#);
        check("[1,2]", r#"{"_raw_arguments":"[1,2]"}"#);
        check("42", r#"{"_raw_arguments":"42"}"#);
    }

    #[test]
    fn json_scan_sees_the_end_of_an_object_across_fragments() {
        let cases: &[(&[&str], bool)] = &[
            (&["{", "\"a\":", "1", "}"], true),
            (&["{\"a\":\"}\\\"", "}\"", "}"], true),
            (&["{\"a\":[{}", "]"], false),
            (&["{\"a\":[{}", "]}"], true),
            (&["", " "], false),
            (&["{\"s\":\"\\\\", "\"}"], true),
        ];
        for (fragments, complete) in cases {
            let mut scan = JsonScan::default();
            for fragment in *fragments {
                scan.feed(fragment);
            }
            assert_eq!(scan.complete(), *complete, "{fragments:?}");
        }
    }

    #[test]
    fn compact_json_drops_whitespace_between_tokens_only() {
        assert_eq!(
            compact_json("{\n  \"a b\": [1, \"x\\\" y\"],\r\n\t\"c\": {}\n}"),
            "{\"a b\":[1,\"x\\\" y\"],\"c\":{}}"
        );
        assert!(matches!(compact_json("{\"a\":1}"), Cow::Borrowed(_)));
    }

    #[test]
    fn tool_ids_are_made_acceptable_to_anthropic() {
        assert!(matches!(anthropic_tool_id("call_ab-9"), Cow::Borrowed(_)));
        assert_eq!(anthropic_tool_id("call.1:x"), "call_1_x");
        assert_eq!(anthropic_tool_id(""), "toolu_");
    }

    #[test]
    fn text_or_reads_strings_borrowed_and_lists() {
        let value: TextOr<'_, u8> = serde_json::from_str(r#""plain""#).unwrap();
        assert!(matches!(value, TextOr::Text(Cow::Borrowed("plain"))));
        let value: TextOr<'_, u8> = serde_json::from_str(r#""esc\"aped""#).unwrap();
        assert!(matches!(value, TextOr::Text(Cow::Owned(ref s)) if s == "esc\"aped"));
        let value: TextOr<'_, u8> = serde_json::from_str("[1,2]").unwrap();
        assert!(matches!(value, TextOr::List(ref items) if items == &[1, 2]));
        let error = serde_json::from_str::<TextOr<'_, u8>>("{}").unwrap_err();
        assert!(
            error.to_string().contains("a string or an array"),
            "{error}"
        );
    }
}

//! Text a client chose (model names, paths, ids, field values): it reaches messages, log lines
//! and records only escaped and shortened, never verbatim at any length.
//!
//! A client controls every byte of such text. Verbatim, a newline or an ANSI escape in it
//! forges log lines in the `pretty` format, and its length is paid for again wherever it is
//! echoed (a 1 MB model name came back in a 1 MB error message). So the values are capped where
//! they are echoed ([`excerpt`]), whole messages are capped where they are rendered
//! ([`shorten`]), and log fields are escaped by the log formatter ([`escape_into`]).

use std::borrow::Cow;
use std::fmt;

/// Characters of a client's value echoed in a message or a record, before the cut.
pub const ECHOED_CHARS: usize = 64;

/// Whether `c` must not reach a log line or a terminal as it is: control characters (C0, DEL,
/// C1, whose newlines and escapes forge lines and colours), the Unicode line and paragraph
/// separators, and the bidirectional controls that reorder what a reader sees.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every [`is_unsafe`] character written as a Rust escape (`\n`, `\u{1b}`).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    // Writing into a String cannot fail.
    let _ = escape_into(&mut out, text);
    Cow::Owned(out)
}

/// Writes `text` to `out` with every [`is_unsafe`] character escaped. Runs of safe text are
/// written whole, so the common case (nothing to escape) is one write.
pub fn escape_into(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    // Most text is printable ASCII: one pass over its bytes and one write.
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return out.write_str(text);
    }
    let mut rest = text;
    while let Some((at, c)) = rest.char_indices().find(|(_, c)| is_unsafe(*c)) {
        out.write_str(&rest[..at])?;
        write!(out, "{}", c.escape_default())?;
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// At most the first `max_chars` characters of `text`, escaped, with `…` when cut: how a
/// client's value is echoed in a message or kept in a record.
pub fn excerpt(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => escape(text),
        Some((cut, _)) => {
            let mut shown = escape(&text[..cut]).into_owned();
            shown.push('…');
            Cow::Owned(shown)
        }
    }
}

/// `text` cut to at most about `max_bytes` bytes by dropping its middle: the beginning names
/// what is wrong and the end says what to do, and whatever a client value put between them
/// is what goes. For messages that may quote client values at any length.
pub fn shorten(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let head = floor_char_boundary(text, max_bytes * 2 / 3);
    let tail = ceil_char_boundary(text, text.len() - max_bytes / 3);
    let omitted = tail - head;
    Cow::Owned(format!(
        "{} … ({omitted} bytes omitted) … {}",
        &text[..head],
        &text[tail..]
    ))
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

fn ceil_char_boundary(text: &str, at: usize) -> usize {
    (at..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_forges_lines_or_colours_and_keeps_the_rest() {
        for (input, expected) in [
            ("gpt-4o", "gpt-4o"),
            ("ünïcødé 模型", "ünïcødé 模型"),
            ("a\nb", "a\\nb"),
            ("a\r\nINFO forged", "a\\r\\nINFO forged"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("nul\0", "nul\\u{0}"),
            ("c1\u{85}", "c1\\u{85}"),
            ("rtl\u{202e}txt", "rtl\\u{202e}txt"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ] {
            assert_eq!(escape(input), expected, "{input:?}");
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn excerpts_are_escaped_and_cut_on_characters() {
        assert_eq!(excerpt("short", 8), "short");
        assert_eq!(excerpt("exactly8", 8), "exactly8");
        assert_eq!(excerpt("123456789", 8), "12345678…");
        assert_eq!(excerpt("éééééééééé", 3), "ééé…");
        assert_eq!(excerpt("a\nb\nc\nd", 3), "a\\nb…");
        let huge = "m".repeat(1 << 20);
        assert_eq!(
            excerpt(&huge, ECHOED_CHARS).chars().count(),
            ECHOED_CHARS + 1
        );
    }

    #[test]
    fn shortened_messages_keep_their_beginning_and_end() {
        assert_eq!(shorten("fine as it is", 100), "fine as it is");
        let message = format!(
            "messages[1].role is '{}'; use user or assistant.",
            "x".repeat(100_000)
        );
        let short = shorten(&message, 300);
        assert!(short.len() < 400, "{}", short.len());
        assert!(short.starts_with("messages[1].role is 'xxx"), "{short}");
        assert!(short.ends_with("xxx'; use user or assistant."), "{short}");
        assert!(short.contains("bytes omitted"), "{short}");
        // Cuts fall on character boundaries.
        let wide = "é".repeat(1000);
        assert!(shorten(&wide, 101).len() < 200);
    }
}

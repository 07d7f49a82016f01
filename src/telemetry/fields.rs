//! The `pretty` log format, whose fields are escaped: a value a client chose (a model name, an
//! error quoting its body) cannot start a line of its own or colour the terminal.
//!
//! tracing-subscriber's own field formatter writes `%`-formatted values as they are, so a model
//! name holding `\n` forged whole log lines. This one writes fields the same way (`name=value`,
//! the message bare, separated by spaces) through [`crate::untrusted::escape_into`]. The `json`
//! format needs nothing more: JSON strings escape control characters themselves.
//!
//! Every request writes a line at `info`, so the line's cost is the request's: numbers and
//! booleans are written straight (they hold nothing to escape; `itoa` and `zmij` write them,
//! the integer and float formatters serde_json uses, so a small float reads `0.0000123` where
//! `Debug` wrote `1.23e-5`), quoted strings of plain ASCII skip the escaping pass, and
//! [`UtcMicros`] formats the date and time of day once a second rather than on every line.
//! (Before: 15.3 k instructions a line; after: 8.3 k. OPTIMIZATION.md.)

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{Compact, Format, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{self as subscriber_fmt, FormatFields, MakeWriter};

/// The layer of the `pretty` format, writing to `writer` (with colours when `ansi`).
pub(super) fn pretty_layer<S, W>(
    writer: W,
    ansi: bool,
) -> subscriber_fmt::Layer<S, EscapedFields, Format<Compact, UtcMicros>, W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    subscriber_fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .compact()
        .with_timer(UtcMicros)
        .fmt_fields(EscapedFields)
}

/// Timestamps as tracing-subscriber's default writes them (`2026-12-08T01:12:56.656562Z`: UTC,
/// microseconds), the part before the fraction formatted once a second on each thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct UtcMicros;

thread_local! {
    /// The second last formatted on this thread, and its text (`2026-12-08T01:12:56`).
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for UtcMicros {
    fn format_time(&self, writer: &mut Writer<'_>) -> fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        write_utc_micros(writer, now.as_secs(), now.subsec_micros())
    }
}

/// Writes the time `seconds` (since the Unix epoch) and `micros` into the second.
fn write_utc_micros(writer: &mut impl fmt::Write, seconds: u64, micros: u32) -> fmt::Result {
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != seconds {
            let time = i64::try_from(seconds)
                .ok()
                .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
                .ok_or(fmt::Error)?;
            text.clear();
            write!(text, "{}", time.format("%Y-%m-%dT%H:%M:%S"))?;
            *cached = seconds;
        }
        writer.write_str(text)
    })?;
    // Six digits, zeros first: `itoa` writes the number without them.
    let mut fraction = *b".000000Z";
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros.min(999_999)).as_bytes();
    fraction[7 - digits.len()..7].copy_from_slice(digits);
    writer.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

/// Formats fields like tracing-subscriber's default, every value escaped.
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = EscapedVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapedVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

/// A `fmt::Write` that escapes what passes through it.
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        crate::untrusted::escape_into(self.0, text)
    }
}

impl EscapedVisitor<'_> {
    fn write(&mut self, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
        if self.name(field)? {
            write!(Escaping(&mut self.writer), "{value:?}")
        } else {
            Ok(())
        }
    }

    /// Writes `text`, which needs no escaping, as the field's value.
    fn write_plain(&mut self, field: &Field, text: &str) -> fmt::Result {
        if self.name(field)? {
            self.writer.write_str(text)
        } else {
            Ok(())
        }
    }

    /// Writes the separator and `name=` (nothing for the message); false for a field that is
    /// not shown.
    fn name(&mut self, field: &Field) -> Result<bool, fmt::Error> {
        let name = field.name();
        // Records from the `log` crate carry their metadata as fields the line already shows.
        if name.starts_with("log.") {
            return Ok(false);
        }
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            self.writer
                .write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.writer.write_char('=')?;
        }
        Ok(true)
    }

    /// Writes `"text"`; `text` must quote as is ([`quotes_as_is`]).
    fn write_quoted(&mut self, field: &Field, text: &str) -> fmt::Result {
        if self.name(field)? {
            self.writer.write_char('"')?;
            self.writer.write_str(text)?;
            self.writer.write_char('"')
        } else {
            Ok(())
        }
    }

    fn record_plain(&mut self, field: &Field, text: &str) {
        if self.result.is_ok() {
            self.result = self.write_plain(field, text);
        }
    }
}

/// Whether `text` quoted by `Debug` is `"` + `text` + `"`: printable ASCII without a quote or
/// a backslash.
fn quotes_as_is(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for EscapedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            // Like the default: the message bare, other strings quoted.
            self.result = if field.name() == "message" {
                self.write(field, &format_args!("{value}"))
            } else if quotes_as_is(value) {
                self.write_quoted(field, value)
            } else {
                self.write(field, &value)
            };
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_plain(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_plain(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record_plain(field, if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record_plain(field, zmij::Buffer::new().format(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.write(field, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn logged(ansi: bool, log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(pretty_layer(captured.clone(), ansi));
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn client_values_cannot_forge_lines_or_colours() {
        let model = "m\n2026-12-07T00:00:00Z  INFO forged: admin logged in\u{1b}[2J\r";
        for ansi in [false, true] {
            let text = logged(ansi, || {
                let span = tracing::info_span!("request", key = %"k\nk");
                let _entered = span.enter();
                tracing::info!(
                    model = %model,
                    quoted = model,
                    debugged = ?model,
                    "request for {model}"
                );
            });
            assert_eq!(text.matches('\n').count(), 1, "one line: {text}");
            assert!(text.ends_with('\n'), "{text}");
            assert!(!text.contains('\r'), "{text}");
            if !ansi {
                assert!(!text.contains('\u{1b}'), "{text}");
            }
            assert!(!text.contains("\u{1b}[2J"), "{text}");
            assert!(text.contains(r"model=m\n2026"), "{text}");
            assert!(text.contains(r#"quoted="m\n2026"#), "{text}");
            assert!(text.contains(r"request for m\n2026"), "{text}");
        }
    }

    #[test]
    fn numbers_booleans_and_plain_strings_are_written_as_debug_writes_them() {
        // Except a float below 1e-4, which serde_json's formatter writes in full where `Debug`
        // wrote `1.23e-5`: a cost in dollars reads better so.
        let text = logged(false, || {
            tracing::info!(
                tokens = 13_u64,
                delta = -7_i64,
                stream = false,
                cached = true,
                latency_ms = 0.115431,
                zero = 0.0,
                whole = 2.0,
                cost_usd = 0.0000123,
                endpoint = "chat_completions",
                "request"
            );
        });
        assert!(
            text.trim_end().ends_with(
                r#"request tokens=13 delta=-7 stream=false cached=true latency_ms=0.115431 zero=0.0 whole=2.0 cost_usd=0.0000123 endpoint="chat_completions""#
            ),
            "{text}"
        );
    }

    #[test]
    fn quoted_strings_that_need_escaping_take_the_escaping_path() {
        let text = logged(false, || {
            tracing::info!(
                a = "say \"hi\"",
                b = "back\\slash",
                c = "tab\tand\u{7f}",
                "m"
            );
        });
        assert!(
            text.contains(r#"a="say \"hi\"" b="back\\slash" c="tab\tand\u{7f}""#),
            "{text}"
        );
        assert_eq!(text.matches('\n').count(), 1, "{text}");
    }

    #[test]
    fn timestamps_read_as_tracing_subscribers_own() {
        let mut text = String::new();
        // 2026-12-08T01:12:56Z, twice within the second (the cached text), then the next one.
        write_utc_micros(&mut text, 1_796_692_376, 656_562).unwrap();
        text.push(' ');
        write_utc_micros(&mut text, 1_796_692_376, 7).unwrap();
        text.push(' ');
        write_utc_micros(&mut text, 1_796_692_377, 999_999).unwrap();
        text.push(' ');
        write_utc_micros(&mut text, 0, 0).unwrap();
        assert_eq!(
            text,
            "2026-12-08T01:12:56.656562Z 2026-12-08T01:12:56.000007Z \
             2026-12-08T01:12:57.999999Z 1970-01-01T00:00:00.000000Z"
        );
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        let mut ours = String::new();
        UtcMicros.format_time(&mut Writer::new(&mut ours)).unwrap();
        assert_eq!(theirs.len(), ours.len(), "{theirs} {ours}");
        assert_eq!(theirs[..16], ours[..16], "{theirs} {ours}");
    }

    #[test]
    fn plain_fields_read_as_before() {
        let text = logged(false, || {
            tracing::info!(request_id = %"req_1", status = 200, r#type = "chat", "request");
        });
        assert!(
            text.trim_end()
                .ends_with(r#"request request_id=req_1 status=200 type="chat""#),
            "{text}"
        );
    }
}

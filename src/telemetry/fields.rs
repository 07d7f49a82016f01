//! The `pretty` log format, whose fields are escaped: a value a client chose (a model name, an
//! error quoting its body) cannot start a line of its own or colour the terminal.
//!
//! tracing-subscriber's own field formatter writes `%`-formatted values as they are, so a model
//! name holding `\n` forged whole log lines. This one writes fields the same way (`name=value`,
//! the message bare, separated by spaces) through [`crate::untrusted::escape_into`]. The `json`
//! format needs nothing more: JSON strings escape control characters themselves.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{Compact, Format, Writer};
use tracing_subscriber::fmt::{self as subscriber_fmt, FormatFields, MakeWriter};

/// The layer of the `pretty` format, writing to `writer` (with colours when `ansi`).
pub(super) fn pretty_layer<S, W>(
    writer: W,
    ansi: bool,
) -> subscriber_fmt::Layer<S, EscapedFields, Format<Compact>, W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    subscriber_fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .compact()
        .fmt_fields(EscapedFields)
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
        let name = field.name();
        // Records from the `log` crate carry their metadata as fields the line already shows.
        if name.starts_with("log.") {
            return Ok(());
        }
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            self.writer
                .write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.writer.write_char('=')?;
        }
        write!(Escaping(&mut self.writer), "{value:?}")
    }
}

impl Visit for EscapedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            // Like the default: the message bare, other strings quoted.
            self.result = if field.name() == "message" {
                self.write(field, &format_args!("{value}"))
            } else {
                self.write(field, &value)
            };
        }
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

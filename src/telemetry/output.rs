//! Where log lines go: into a buffer in memory, written to stderr by a background thread every
//! [`FLUSH_EVERY`], so that the request path never waits on a write to a terminal, a pipe or a
//! file. The per-request log line was one `write` system call per request, a measurable share
//! of a request's CPU time under load (see OPTIMIZATION.md).
//!
//! Lines at `WARN` and `ERROR` are written at once (with everything buffered before them, in
//! order), and so is a buffer past [`FLUSH_AT`] bytes. [`LogOutput::flush`] writes what is left;
//! `main` calls it on the way out. A `kill -9` can lose at most the last [`FLUSH_EVERY`] of
//! `INFO` lines; the request log in the database does not depend on them.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How often the background thread writes what was logged.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// A buffer this large is written at once by the thread that filled it.
pub const FLUSH_AT: usize = 64 * 1024;

/// The log output: cheap to clone, every clone shares one buffer.
#[derive(Clone, Debug, Default)]
pub struct LogOutput {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Lines not yet written.
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is written, so that batches reach stderr in the order they were
    /// taken; loggers only ever wait for `pending`.
    writing: Mutex<()>,
}

impl LogOutput {
    /// Starts the thread that writes the buffer every [`FLUSH_EVERY`]; it ends when the last
    /// clone of this output is dropped.
    pub fn spawn_flusher(&self) -> io::Result<()> {
        let shared: Weak<Shared> = Arc::downgrade(&self.shared);
        std::thread::Builder::new()
            .name("llmgate-log".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    match shared.upgrade() {
                        Some(shared) => shared.flush(&mut io::stderr()),
                        None => return,
                    }
                }
            })
            .map(drop)
    }

    /// Writes every buffered line to stderr.
    pub fn flush(&self) {
        self.shared.flush(&mut io::stderr());
    }
}

impl Shared {
    fn append(&self, bytes: &[u8]) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.extend_from_slice(bytes);
        pending.len() >= FLUSH_AT
    }

    fn flush(&self, out: &mut impl Write) {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let batch = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.is_empty() {
                return;
            }
            let capacity = pending.capacity().min(FLUSH_AT);
            std::mem::replace(&mut *pending, Vec::with_capacity(capacity))
        };
        // Nowhere is left to report a failed log write; the lines are dropped.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
    }
}

/// What one event is written through; see [`LogOutput`].
pub struct EventWriter<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.shared.append(bytes) {
            self.urgent = true;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.urgent = true;
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        if self.urgent {
            self.shared.flush(&mut io::stderr());
        }
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter {
            shared: &self.shared,
            urgent: urgent(*meta.level()),
        }
    }
}

/// Whether lines at `level` are written at once rather than with the next batch.
fn urgent(level: Level) -> bool {
    level <= Level::WARN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(output: &LogOutput) -> Vec<u8> {
        let mut out = Vec::new();
        output.shared.flush(&mut out);
        out
    }

    #[test]
    fn lines_wait_in_the_buffer_until_a_flush() {
        let output = LogOutput::default();
        let mut writer = output.make_writer();
        writer.write_all(b"one\n").unwrap();
        drop(writer);
        output.make_writer().write_all(b"two\n").unwrap();
        assert_eq!(
            *output.shared.pending.lock().unwrap(),
            b"one\ntwo\n".to_vec()
        );
        assert_eq!(written(&output), b"one\ntwo\n");
        assert!(written(&output).is_empty(), "a flush empties the buffer");
    }

    #[test]
    fn warnings_and_errors_are_urgent_and_the_rest_is_not() {
        assert!(urgent(Level::ERROR) && urgent(Level::WARN));
        assert!(!urgent(Level::INFO) && !urgent(Level::DEBUG) && !urgent(Level::TRACE));
    }

    #[test]
    fn a_full_buffer_makes_the_writer_urgent() {
        let output = LogOutput::default();
        let mut writer = output.make_writer();
        writer.write_all(&vec![b'x'; FLUSH_AT - 1]).unwrap();
        assert!(!writer.urgent);
        writer.write_all(b"\n").unwrap();
        assert!(writer.urgent);
        // Dropping it writes to the real stderr; take the buffer first to keep test output clean.
        assert_eq!(written(&output).len(), FLUSH_AT);
        drop(writer);
    }
}

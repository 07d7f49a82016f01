//! Server-sent events, read from byte chunks as they arrive: frames may be split anywhere
//! (inside a line, between `\r` and `\n`, inside a UTF-8 character) or arrive several per
//! chunk. [`Lines`] splits them into lines (the one line reader: the stream translators and
//! the usage scanner both read through it), [`SseDecoder`] assembles lines into events, and
//! [`EventLimit`] caps how big one event of such a stream may grow (or one message of a binary
//! event stream, AWS's, whose messages declare their length).

/// Splits an event stream fed in arbitrary chunks into lines (the WHATWG rules: a line ends in
/// `\n`, `\r\n` or `\r`). A line that begins and ends within one chunk is passed as a slice
/// of it, with no copy; only the start of a line whose end has not arrived is kept, up to the
/// `max_line` bytes the caller allows: past that, only its first [`FIELD_HEAD`] bytes (enough
/// for its field name) are kept and its length is counted.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The carried line outgrew `max_line`: its length so far.
    overflow: Option<u64>,
    /// The previous chunk ended with `\r`: a `\n` that starts this one ends no new line.
    after_cr: bool,
}

/// How much of an overlong line [`Lines`] keeps: enough for its field name.
pub(crate) const FIELD_HEAD: usize = 8;

/// One line, without its line break.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub bytes: &'a [u8],
    /// The line was longer than allowed: only its first bytes are in `bytes`, and this is its
    /// length.
    pub overflow: Option<u64>,
}

impl Lines {
    /// Reads `chunk`, calling `on_line(line, end)` for each line it completes, `end` being the
    /// offset in `chunk` just past the line's break.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        max_line: usize,
        mut on_line: impl FnMut(Line<'_>, usize),
    ) {
        if chunk.is_empty() {
            return;
        }
        let mut pos = 0;
        if std::mem::take(&mut self.after_cr) && chunk.first() == Some(&b'\n') {
            pos = 1;
        }
        while pos < chunk.len() {
            let Some(found) = memchr::memchr2(b'\n', b'\r', &chunk[pos..]) else {
                self.carry(&chunk[pos..], max_line);
                break;
            };
            let end = pos + found;
            let mut next = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.partial.is_empty() && self.overflow.is_none() {
                on_line(
                    Line {
                        bytes: &chunk[pos..end],
                        overflow: None,
                    },
                    next,
                );
            } else {
                self.carry(&chunk[pos..end], max_line);
                self.carried_line(|line| on_line(line, next));
            }
            pos = next;
        }
    }

    /// The stream ended: an unfinished last line, if any, is read as if it were ended.
    pub(crate) fn finish(&mut self, on_line: impl FnOnce(Line<'_>)) {
        self.after_cr = false;
        if !self.partial.is_empty() || self.overflow.is_some() {
            self.carried_line(on_line);
        }
    }

    /// Passes the line carried in `partial` on, keeping the buffer for the next one.
    fn carried_line(&mut self, on_line: impl FnOnce(Line<'_>)) {
        let partial = std::mem::take(&mut self.partial);
        on_line(Line {
            bytes: &partial,
            overflow: self.overflow.take(),
        });
        self.partial = partial;
        self.partial.clear();
    }

    /// Keeps the start of a line whose end is in a later chunk.
    fn carry(&mut self, part: &[u8], max_line: usize) {
        if let Some(length) = self.overflow.as_mut() {
            *length += part.len() as u64;
            return;
        }
        let length = self.partial.len() + part.len();
        if length <= max_line {
            self.partial.extend_from_slice(part);
            return;
        }
        // Keep the field name, so the line is still known for what it is.
        self.overflow = Some(length as u64);
        let head = FIELD_HEAD.min(length);
        if self.partial.len() < head {
            let missing = head - self.partial.len();
            self.partial.extend_from_slice(&part[..missing]);
        }
        self.partial.truncate(head);
    }
}

/// A line's field and value (`data: x` → `data`, `x`; one space after the colon is not part
/// of the value); `None` for a comment line (`:` first) or an empty one.
pub(crate) fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    if line.first().is_none_or(|first| *first == b':') {
        return None;
    }
    Some(match memchr::memchr(b':', line) {
        Some(colon) => {
            let value = &line[colon + 1..];
            (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &b""[..]),
    })
}

/// Decodes an event stream incrementally (lines through [`Lines`]; a blank line dispatches the
/// event; `data` lines join with `\n`; `:` lines are comments).
///
/// Only an unfinished line is buffered between chunks; data and event-name buffers are reused
/// from one event to the next. Neither is bounded here: a stream read from an upstream goes
/// through an [`EventLimit`] first, which ends it before one event outgrows the limit.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    lines: Lines,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseDecoder {
    /// Feeds one chunk, calling `on_event(event_name, data)` for each event it completes
    /// (`event_name` is empty for unnamed events).
    pub fn feed(&mut self, chunk: &[u8], on_event: &mut impl FnMut(&str, &[u8])) {
        let mut lines = std::mem::take(&mut self.lines);
        lines.feed(chunk, usize::MAX, |line, _| self.line(line.bytes, on_event));
        self.lines = lines;
    }

    /// Ends the stream: an unfinished last line is read as if it were ended, and an event
    /// still pending is dispatched. (The standard would drop it; upstreams that omit the final
    /// blank line after `data: [DONE]` exist, and a torn JSON frame fails to parse anyway.)
    pub fn finish(&mut self, on_event: &mut impl FnMut(&str, &[u8])) {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| self.line(line.bytes, on_event));
        self.lines = lines;
        self.line(b"", on_event);
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(&str, &[u8])) {
        if line.is_empty() {
            if self.has_data {
                let name = std::str::from_utf8(&self.event).unwrap_or("");
                on_event(name, &self.data);
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        match field(line) {
            Some((b"data", value)) => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            Some((b"event", value)) => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            _ => {}
        }
    }
}

/// Bounds one event of a stream (its lines and their line breaks, up to the blank line that
/// ends it) to `max` bytes, whatever decoder reads the stream after it: a decoder buffers at
/// most one unfinished line and one event's data, so this bounds its memory too.
///
/// Fed the same chunks as the decoder, before it; it copies nothing and keeps three numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventLimit {
    max: usize,
    /// Bytes of the event being read so far, the unfinished line included.
    event: usize,
    /// Whether the line being read has any byte yet (a line break on an empty line ends the
    /// event).
    line_started: bool,
    /// The previous chunk ended with `\r`: a `\n` that starts this one ends no new line.
    after_cr: bool,
    /// For a binary event stream (AWS's `application/vnd.amazon.eventstream`), where each
    /// message starts with its total length instead of ending with a blank line.
    frames: Option<FrameCount>,
}

/// Where a binary event stream is: reading a message's length, or inside its body.
#[derive(Debug, Clone, Copy, Default)]
struct FrameCount {
    /// The length's bytes read so far (big-endian, four in all).
    length: [u8; 4],
    length_read: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
}

/// An event grew past the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an upstream stream event is larger than {limit} bytes")]
pub struct EventTooLarge {
    pub limit: usize,
}

impl EventLimit {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            event: 0,
            line_started: false,
            after_cr: false,
            frames: None,
        }
    }

    /// The limit for a binary event stream, whose messages each declare their length in their
    /// first four bytes: a message declared longer than `max` fails at once.
    pub(crate) fn frames(max: usize) -> Self {
        Self {
            frames: Some(FrameCount::default()),
            ..Self::new(max)
        }
    }

    fn check_frames(max: usize, count: &mut FrameCount, chunk: &[u8]) -> Result<(), EventTooLarge> {
        let mut at = 0;
        while at < chunk.len() {
            if count.remaining == 0 {
                count.length[count.length_read] = chunk[at];
                count.length_read += 1;
                at += 1;
                if count.length_read == count.length.len() {
                    let total = u64::from(u32::from_be_bytes(count.length));
                    if total > u64::try_from(max).unwrap_or(u64::MAX) {
                        return Err(EventTooLarge { limit: max });
                    }
                    count.remaining = total.saturating_sub(4);
                    count.length_read = 0;
                }
            } else {
                let available = u64::try_from(chunk.len() - at).unwrap_or(u64::MAX);
                let taken = count.remaining.min(available);
                count.remaining -= taken;
                at += usize::try_from(taken).unwrap_or(chunk.len());
            }
        }
        Ok(())
    }

    /// Counts `chunk`; fails once the event being read is longer than the limit.
    pub(crate) fn check(&mut self, chunk: &[u8]) -> Result<(), EventTooLarge> {
        if let Some(count) = self.frames.as_mut() {
            return Self::check_frames(self.max, count, chunk);
        }
        let mut start = 0;
        if std::mem::take(&mut self.after_cr) && chunk.first() == Some(&b'\n') {
            start = 1;
            self.event += 1;
        }
        let mut pos = start;
        for end in memchr::memchr2_iter(b'\n', b'\r', &chunk[start..]).map(|i| i + start) {
            if end < pos {
                // The `\n` of a `\r\n` already counted.
                continue;
            }
            let blank = end == pos && !self.line_started;
            let mut next = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if blank {
                self.event = 0;
            } else {
                self.event += next - pos;
                // Checked line by line: a whole event in one chunk is as big as a split one.
                if self.event > self.max {
                    return Err(EventTooLarge { limit: self.max });
                }
            }
            self.line_started = false;
            pos = next;
        }
        if pos < chunk.len() {
            self.event += chunk.len() - pos;
            self.line_started = true;
        }
        if self.event > self.max {
            return Err(EventTooLarge { limit: self.max });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        let mut on_event = |name: &str, data: &[u8]| {
            events.push((name.to_owned(), String::from_utf8(data.to_vec()).unwrap()));
        };
        for chunk in chunks {
            decoder.feed(chunk, &mut on_event);
        }
        decoder.finish(&mut on_event);
        events
    }

    #[test]
    fn events_survive_every_split_point_and_line_ending() {
        let streams: [&[u8]; 3] = [
            b"event: a\ndata: {\"x\":\"\xc3\xa9\"}\n\n: comment\ndata:1\ndata: 2\n\nevent:b\ndata: [DONE]\n\n",
            b"event: a\r\ndata: {\"x\":\"\xc3\xa9\"}\r\n\r\n: comment\r\ndata:1\r\ndata: 2\r\n\r\nevent:b\r\ndata: [DONE]\r\n\r\n",
            b"event: a\rdata: {\"x\":\"\xc3\xa9\"}\r\r: comment\rdata:1\rdata: 2\r\revent:b\rdata: [DONE]\r\r",
        ];
        let expected = vec![
            ("a".to_owned(), "{\"x\":\"é\"}".to_owned()),
            (String::new(), "1\n2".to_owned()),
            ("b".to_owned(), "[DONE]".to_owned()),
        ];
        for stream in streams {
            assert_eq!(decode(&[stream]), expected);
            for split in 0..=stream.len() {
                let (a, b) = stream.split_at(split);
                assert_eq!(decode(&[a, b]), expected, "split at {split}");
            }
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(decode(&bytes), expected);
        }
    }

    #[test]
    fn the_frame_limit_reads_each_binary_message_s_length_split_anywhere() {
        // Two messages of 16 bytes (their length first, then 12 bytes with line breaks that
        // mean nothing here), then one that declares 1000 bytes.
        let mut stream = Vec::new();
        for _ in 0..2 {
            stream.extend_from_slice(&16u32.to_be_bytes());
            stream.extend_from_slice(b"\n\n\r\nabcdefgh");
        }
        for split in 0..=stream.len() {
            let mut limit = EventLimit::frames(16);
            let (a, b) = stream.split_at(split);
            assert_eq!(limit.check(a), Ok(()), "split at {split}");
            assert_eq!(limit.check(b), Ok(()), "split at {split}");
            assert_eq!(
                limit.check(&1000u32.to_be_bytes()),
                Err(EventTooLarge { limit: 16 })
            );
        }
    }

    #[test]
    fn the_event_limit_counts_one_event_across_chunks_and_resets_at_its_blank_line() {
        let event: &[u8] = b"data: 0123456789\r\ndata: 0123456789\r\n\r\n";
        // 36 bytes before the blank line: a limit of 40 passes any number of such events,
        // split anywhere.
        for split in 0..=event.len() {
            let mut limit = EventLimit::new(40);
            for _ in 0..5 {
                let (a, b) = event.split_at(split);
                assert_eq!(limit.check(a), Ok(()), "split at {split}");
                assert_eq!(limit.check(b), Ok(()), "split at {split}");
            }
        }
        let mut limit = EventLimit::new(30);
        assert_eq!(limit.check(event), Err(EventTooLarge { limit: 30 }));
        // One line without an end, chunk after chunk.
        let mut limit = EventLimit::new(1000);
        let part = [b'x'; 300];
        assert!(limit.check(b"data: ").is_ok());
        assert!(limit.check(&part).is_ok() && limit.check(&part).is_ok());
        assert!(limit.check(&part).is_ok());
        assert_eq!(limit.check(&part), Err(EventTooLarge { limit: 1000 }));
        // Many short lines with no blank line between them are one event.
        let mut limit = EventLimit::new(100);
        let results: Vec<bool> = (0..20).map(|_| limit.check(b"data: 1\n").is_ok()).collect();
        assert!(results[..12].iter().all(|ok| *ok) && !results[19]);
    }

    #[test]
    fn lines_are_slices_of_the_chunk_and_an_overlong_carried_line_keeps_its_head_and_length() {
        let mut lines = Lines::default();
        let chunk: &[u8] = b"data: 1\r\n\ndata: 0123456789";
        let mut seen = Vec::new();
        lines.feed(chunk, 12, |line, end| {
            // Whole lines of the chunk are passed as they are, with no copy.
            assert!(chunk.as_ptr_range().contains(&line.bytes.as_ptr()) || line.bytes.is_empty());
            seen.push((line.bytes.to_vec(), line.overflow, end));
        });
        assert_eq!(
            seen,
            [(b"data: 1".to_vec(), None, 9), (Vec::new(), None, 10)]
        );
        let mut seen = Vec::new();
        lines.feed(b"0123456789\n", 12, |line, end| {
            seen.push((line.bytes.to_vec(), line.overflow, end));
        });
        assert_eq!(seen, [(b"data: 01".to_vec(), Some(26), 11)]);
        let mut last = None;
        lines.feed(b"data: x", 12, |_, _| unreachable!());
        lines.finish(|line| last = Some(line.bytes.to_vec()));
        assert_eq!(last.as_deref(), Some(&b"data: x"[..]));
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_still_read() {
        assert_eq!(
            decode(&[b"data: 1\n\ndata: [DONE]"]),
            [
                (String::new(), "1".to_owned()),
                (String::new(), "[DONE]".to_owned())
            ]
        );
        assert_eq!(decode(&[b"event: only\n\n"]), []);
    }
}

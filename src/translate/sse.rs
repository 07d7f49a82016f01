//! A server-sent events decoder fed arbitrary byte chunks: frames may be split anywhere (inside
//! a line, between `\r` and `\n`, inside a UTF-8 character) or arrive several per chunk.

/// Decodes an event stream incrementally (the WHATWG rules: lines end in `\n`, `\r\n` or `\r`;
/// a blank line dispatches the event; `data` lines join with `\n`; `:` lines are comments).
///
/// Only an unfinished line is buffered between chunks; data and event-name buffers are reused
/// from one event to the next.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The previous chunk ended with `\r`: a `\n` that starts this one ends no new line.
    after_cr: bool,
}

impl SseDecoder {
    /// Feeds one chunk, calling `on_event(event_name, data)` for each event it completes
    /// (`event_name` is empty for unnamed events).
    pub fn feed(&mut self, mut chunk: &[u8], on_event: &mut impl FnMut(&str, &[u8])) {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) {
            let (line, rest) = chunk.split_at(end);
            if self.partial.is_empty() {
                self.line(line, on_event);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole, on_event);
                whole.clear();
                self.partial = whole;
            }
            chunk = &rest[1..];
            if rest[0] == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.partial.extend_from_slice(chunk);
    }

    /// Ends the stream: an unfinished last line is read as if it were ended, and an event
    /// still pending is dispatched. (The standard would drop it; upstreams that omit the final
    /// blank line after `data: [DONE]` exist, and a torn JSON frame fails to parse anyway.)
    pub fn finish(&mut self, on_event: &mut impl FnMut(&str, &[u8])) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, on_event);
        }
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
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            _ => {}
        }
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

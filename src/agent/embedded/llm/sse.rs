//! A server-sent-events decoder: bytes in, `data` payloads out. Tolerates `\r\n`,
//! comments, multi-line data and chunks that split lines or UTF-8 characters.

#[derive(Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    data: Vec<String>,
}

impl SseDecoder {
    /// Feeds bytes and returns the payloads of the events they completed.
    /// Each complete line is read where it lies; what follows the last one is
    /// kept for the next bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(length) = buffer[start..].iter().position(|&b| b == b'\n') {
            let line = &buffer[start..start + length];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match std::str::from_utf8(line) {
                Ok(text) => self.line(text, &mut events),
                Err(_) => self.line(&String::from_utf8_lossy(line), &mut events),
            }
            start += length + 1;
        }
        buffer.drain(..start);
        self.buffer = buffer;
        events
    }

    /// Ends the stream: a last event without its blank line still counts.
    pub fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if !self.buffer.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned();
            self.line(rest.trim_end_matches('\r'), &mut events);
        }
        self.dispatch(&mut events);
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            self.dispatch(events);
        } else if let Some(value) = line.strip_prefix("data:") {
            self.data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
        }
        // Comments (":…") and the event/id/retry fields carry nothing we use.
    }

    fn dispatch(&mut self, events: &mut Vec<String>) {
        if !self.data.is_empty() {
            events.push(std::mem::take(&mut self.data).join("\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_arbitrary_chunk_boundaries() {
        let stream =
            "data: {\"a\":1}\r\n\r\n: keep-alive\n\ndata: line1\ndata: line2\n\ndata: h\u{e9}llo\n\ndata: [DONE]";
        let bytes = stream.as_bytes();
        for cut in 1..bytes.len() {
            let mut d = SseDecoder::default();
            let mut got = d.push(&bytes[..cut]);
            got.extend(d.push(&bytes[cut..]));
            got.extend(d.finish());
            assert_eq!(got, ["{\"a\":1}", "line1\nline2", "h\u{e9}llo", "[DONE]"], "cut at {cut}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_and_what_follows_is_kept() {
        let mut d = SseDecoder::default();
        assert_eq!(d.push(b"data: a\xffb\n\ndata: next"), ["a\u{fffd}b"]);
        assert_eq!(d.push(b"\n\n"), ["next"]);
        assert!(d.finish().is_empty());
    }
}

//! Server-sent events as replicator's stream sends them (`GET /v1/events`):
//! cut at blank lines, comments (keep-alives) skipped.

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;

use crate::error::ClientError;

/// One event: its id (for `Last-Event-ID`), kind and JSON data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event's number, when it has one.
    pub id: Option<u64>,
    /// `snapshot`, `member`, `group`, `decision`... (empty for a keep-alive).
    pub kind: String,
    /// The event's data (JSON for replicator's events).
    pub data: String,
}

/// Takes one complete event (up to a blank line) off the front of `buffer`.
pub fn next_event(buffer: &mut BytesMut) -> Option<SseEvent> {
    let text = std::str::from_utf8(buffer).ok()?;
    let end = text.find("\n\n")?;
    let mut event = SseEvent::default();
    for line in text[..end].lines() {
        let (field, value) = line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "id" => event.id = value.parse().ok(),
            "event" => event.kind = value.to_owned(),
            "data" => {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(value);
            }
            _ => {}
        }
    }
    buffer.advance(end + 2);
    Some(event)
}

/// The event stream of one request, read as it arrives.
pub struct EventStream {
    body: hyper::body::Incoming,
    buffer: BytesMut,
}

impl EventStream {
    pub(crate) fn new(body: hyper::body::Incoming) -> Self {
        Self { body, buffer: BytesMut::new() }
    }

    /// The next event (keep-alives skipped); `None` once the server ends the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ClientError> {
        loop {
            while let Some(event) = next_event(&mut self.buffer) {
                if !event.kind.is_empty() || !event.data.is_empty() {
                    return Ok(Some(event));
                }
            }
            let Some(frame) = self.body.frame().await else { return Ok(None) };
            let frame =
                frame.map_err(|e| ClientError::Request { url: "the event stream".into(), reason: e.to_string() })?;
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_and_comments_ignored() {
        let mut buffer =
            BytesMut::from(&b": keep-alive\n\nid: 7\nevent: member\ndata: {\"a\":1}\n\nid: 8\nevent: dec"[..]);
        assert_eq!(next_event(&mut buffer), Some(SseEvent::default()), "a comment alone");
        assert_eq!(
            next_event(&mut buffer),
            Some(SseEvent { id: Some(7), kind: "member".into(), data: "{\"a\":1}".into() })
        );
        assert_eq!(next_event(&mut buffer), None, "the rest has not arrived yet");
        assert_eq!(&buffer[..], b"id: 8\nevent: dec");
    }
}

//! Server-sent events as replicator's stream sends them (`GET /v1/events`):
//! cut at blank lines, comments (keep-alives) skipped. Shared by every
//! command that follows the stream.

use bytes::{Buf, BytesMut};

/// One parsed server-sent event.
#[derive(Debug, Default, PartialEq)]
pub(super) struct SseEvent {
    pub(super) id: Option<u64>,
    pub(super) kind: String,
    pub(super) data: String,
}

/// Takes one complete event (up to a blank line) off the front of `buffer`.
pub(super) fn next_event(buffer: &mut BytesMut) -> Option<SseEvent> {
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

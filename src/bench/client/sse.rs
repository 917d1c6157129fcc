//! A Server-Sent Events subscriber: one `GET /api/events?since=…` whose response body
//! never ends, read chunk by chunk and cut into events as `EventSource` would.
//!
//! [`EventParser`] is the part of the SSE format a chat needs: `event:` and `data:`
//! fields, comments (`: keep-alive`), `id:` and `retry:` (read past), and an empty
//! line ending each event. Chunks from the network split lines anywhere, so the parser
//! keeps the unfinished tail for the next chunk.

use anyhow::bail;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};

use super::http::HttpConnection;
use super::{Run, Seen, connect_gated};
use crate::bench::tally::Receipts;
use crate::protocol::{SSE_MESSAGE, SSE_RESET};

pub async fn subscribe(run: &Run, index: usize, receipts: &mut Receipts) -> anyhow::Result<()> {
    let open = async {
        let mut http = HttpConnection::open(&run.server, index, &run.wire).await?;
        let (path, since) = run.path_of(index);
        let url = format!("{path}?since={since}");
        let response = http.send(Method::GET, &url, None).await?;
        // Counted before the subscriber counts as connected (see `Run::requests`).
        run.count_request();
        if response.status() != StatusCode::OK {
            bail!("the event stream answered {}", response.status());
        }
        anyhow::Ok((http, response.into_body()))
    };
    // The connection is kept with the body, though no other request will use it.
    let (_http, mut body) = connect_gated(run, open).await?;
    let mut parser = EventParser::default();
    loop {
        let frame = tokio::select! {
            () = run.stop.cancelled() => return Ok(()),
            frame = body.frame() => frame,
        };
        let Some(frame) = frame else {
            bail!("the event stream ended");
        };
        let Ok(chunk) = frame?.into_data() else {
            continue; // trailers: none expected, nothing to read
        };
        for event in parser.push(&chunk) {
            match event.kind.as_str() {
                SSE_MESSAGE => run.receive(receipts, &serde_json::from_str::<Seen>(&event.data)?),
                SSE_RESET => receipts.resets += 1,
                _ => {}
            }
        }
    }
}

/// One dispatched event: its type (`message` when no `event:` field was given) and
/// its data lines, joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub data: String,
}

/// Cuts a byte stream into [`Event`]s.
#[derive(Debug, Default)]
pub struct EventParser {
    /// Bytes after the last complete line.
    tail: Vec<u8>,
    kind: Option<String>,
    data: Option<String>,
}

impl EventParser {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.tail.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(newline) = self.tail[start..].iter().position(|&b| b == b'\n') {
            let end = start + newline;
            let line = self.tail[start..end]
                .strip_suffix(b"\r")
                .unwrap_or(&self.tail[start..end]);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.tail.drain(..start);
        events
    }

    /// Handles one line; an empty one dispatches the event being built, if it has data.
    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let kind = self.kind.take();
            let data = self.data.take()?;
            return Some(Event {
                kind: kind.unwrap_or_else(|| SSE_MESSAGE.into()),
                data,
            });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.kind = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            // Comments (empty field name), `id`, `retry` and unknown fields.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: &str) -> Event {
        Event {
            kind: kind.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_are_cut_at_empty_lines_whatever_the_chunking() {
        let stream = b"retry: 3000\n\nid: 1\nevent: message\ndata: {\"id\":1}\n\n: keep-alive\n\nid: 2\r\nevent: reset\r\ndata: {\"last_id\":2}\r\n\r\n";
        let whole = EventParser::default().push(stream);
        let expected = vec![
            event("message", "{\"id\":1}"),
            event("reset", "{\"last_id\":2}"),
        ];
        assert_eq!(whole, expected);
        for size in 1..stream.len() {
            let mut parser = EventParser::default();
            let events: Vec<Event> = stream.chunks(size).flat_map(|c| parser.push(c)).collect();
            assert_eq!(events, expected, "chunks of {size} bytes");
        }
    }

    #[test]
    fn data_lines_join_and_the_type_defaults_to_message() {
        let events = EventParser::default().push(b"data: a\ndata:b\n\n");
        assert_eq!(events, vec![event("message", "a\nb")]);
    }
}

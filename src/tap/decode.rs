//! Reading one direction of a connection the way a person would: HTTP/1.1 heads and
//! bodies, the chunks of a streamed body (an SSE stream's events, comments and
//! `retry:`), WebSocket frames with their header fields, and HTTP/2 frame headers.
//!
//! It only *describes* bytes that were already sent; pushlab's serving never depends
//! on it. Each [`Decoder`] is a small state machine fed whatever each read or write
//! carried, so a head split over two reads or two frames in one read come out as the
//! rows they are.

use std::io::Cursor;

use tungstenite::protocol::frame::FrameHeader;

use super::row::{Collected, Row, Side, body_row, chunk_row, frame_row, h2_row, raw_row};

/// Longest HTTP head read as one; a longer one is shown as raw bytes.
const MAX_HEAD: usize = 16 * 1024;
/// What a client sends first on an HTTP/2 connection.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const H2_PREFACE_LEN: usize = H2_PREFACE.len();

/// What a decoder tells the other direction's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// A `101` answer: from now on both ways are WebSocket frames.
    WebSocket,
    /// The HTTP/2 preface: from now on both ways are HTTP/2 frames.
    Http2,
}

#[derive(Debug)]
enum Mode {
    Head,
    /// A body of known length, or until the connection closes (`None`).
    Body {
        left: Option<u64>,
        body: Collected,
    },
    ChunkLine,
    /// A chunk's data and the `\r\n` after it.
    ChunkData {
        line: Vec<u8>,
        left: u64,
        data: Collected,
    },
    FrameHead,
    FramePayload {
        head: Vec<u8>,
        header: FrameHeader,
        length: u64,
        left: u64,
        data: Collected,
    },
    H2Head,
    H2Payload {
        head: [u8; 9],
        left: u64,
        data: Collected,
    },
    /// Bytes not shown, then HTTP/2 frames: the end of the preface (already shown),
    /// or the rest of the frame a recording began inside.
    Skip {
        left: usize,
    },
    /// Something this decoder does not follow: shown as bytes.
    Raw,
}

/// One direction of one connection.
#[derive(Debug)]
pub struct Decoder {
    side: Side,
    mode: Mode,
    /// Bytes of a head (HTTP head, chunk line, frame header) not complete yet.
    buf: Vec<u8>,
    /// The response is `text/event-stream`: its chunks are events.
    event_stream: bool,
    /// The request was `HEAD`, so its answer has no body (client side sets it).
    pub head_request: bool,
}

impl Decoder {
    pub fn new(side: Side) -> Self {
        Self {
            side,
            mode: Mode::Head,
            buf: Vec::new(),
            event_stream: false,
            head_request: false,
        }
    }

    /// A decoder for an HTTP/2 connection recorded from the middle: `skip` bytes of
    /// the frame in progress are not shown, or, at a frame boundary, `head` holds the
    /// part of the next frame header already seen.
    pub fn http2_from(side: Side, skip: usize, head: &[u8]) -> Self {
        let mut decoder = Self::new(side);
        if skip > 0 {
            decoder.mode = Mode::Skip { left: skip };
        } else {
            decoder.mode = Mode::H2Head;
            decoder.buf = head.to_vec();
        }
        decoder
    }

    /// The other direction switched protocol.
    pub fn switch(&mut self, to: Switch) {
        self.buf.clear();
        self.mode = match to {
            Switch::WebSocket => Mode::FrameHead,
            Switch::Http2 => Mode::H2Head,
        };
    }

    /// Describes `bytes`, appending finished rows to `rows`.
    pub fn feed(&mut self, mut bytes: &[u8], rows: &mut Vec<Row>) -> Option<Switch> {
        let mut switched = None;
        while !bytes.is_empty() {
            let used = match &mut self.mode {
                Mode::Head | Mode::ChunkLine | Mode::FrameHead | Mode::H2Head => {
                    self.buf.push(bytes[0]);
                    if let Some(switch) = self.head_byte(rows) {
                        switched = Some(switch);
                    }
                    1
                }
                Mode::Body { left, body } => {
                    let n = left.map_or(bytes.len(), |l| bytes.len().min(l as usize));
                    body.add(&bytes[..n]);
                    if let Some(l) = left {
                        *l -= n as u64;
                    }
                    if *left == Some(0) {
                        rows.push(body_row(self.side, std::mem::take(body)));
                        self.mode = Mode::Head;
                    }
                    n
                }
                Mode::ChunkData { line, left, data } => {
                    let n = bytes.len().min(*left as usize);
                    data.add(&bytes[..n]);
                    *left -= n as u64;
                    if *left == 0 {
                        let row = chunk_row(self.side, line, data, self.event_stream);
                        let last = row.kind == "end";
                        rows.push(row);
                        self.mode = if last { Mode::Head } else { Mode::ChunkLine };
                    }
                    n
                }
                Mode::FramePayload {
                    head,
                    header,
                    length,
                    left,
                    data,
                } => {
                    let n = bytes.len().min(*left as usize);
                    data.add(&bytes[..n]);
                    *left -= n as u64;
                    if *left == 0 {
                        rows.push(frame_row(self.side, head, header, *length, data));
                        self.mode = Mode::FrameHead;
                    }
                    n
                }
                Mode::H2Payload { head, left, data } => {
                    let n = bytes.len().min(*left as usize);
                    data.add(&bytes[..n]);
                    *left -= n as u64;
                    if *left == 0 {
                        rows.push(h2_row(self.side, head, data));
                        self.mode = Mode::H2Head;
                    }
                    n
                }
                Mode::Skip { left } => {
                    let n = bytes.len().min(*left);
                    *left -= n;
                    if *left == 0 {
                        self.mode = Mode::H2Head;
                    }
                    n
                }
                Mode::Raw => {
                    rows.push(raw_row(self.side, bytes, format!("{} bytes", bytes.len())));
                    bytes.len()
                }
            };
            bytes = &bytes[used..];
        }
        switched
    }

    /// A byte was added to `buf` in a head-reading mode: act if the head is complete.
    fn head_byte(&mut self, rows: &mut Vec<Row>) -> Option<Switch> {
        match self.mode {
            Mode::Head if self.buf.ends_with(b"\r\n\r\n") => return self.http_head(rows),
            Mode::Head if self.buf.len() > MAX_HEAD => self.give_up(rows),
            Mode::ChunkLine if self.buf.ends_with(b"\r\n") => {
                let line = std::mem::take(&mut self.buf);
                let size = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| u64::from_str_radix(l.trim().split(';').next()?, 16).ok());
                match size {
                    // The data, then its `\r\n` (for the last chunk: just the `\r\n`).
                    Some(size) => {
                        self.mode = Mode::ChunkData {
                            line,
                            left: size + 2,
                            data: Collected::default(),
                        };
                    }
                    None => {
                        self.buf = line;
                        self.give_up(rows);
                    }
                }
            }
            Mode::FrameHead => match FrameHeader::parse(&mut Cursor::new(&self.buf)) {
                Ok(Some((header, length))) => {
                    let head = std::mem::take(&mut self.buf);
                    self.mode = Mode::FramePayload {
                        head,
                        header,
                        length,
                        left: length,
                        data: Collected::default(),
                    };
                    if length == 0 {
                        // Nothing more to wait for: finish the row now.
                        return self.feed_empty(rows);
                    }
                }
                Ok(None) => {}
                Err(_) => self.give_up(rows),
            },
            Mode::H2Head if self.buf.len() == 9 => {
                let head: [u8; 9] = self.buf[..].try_into().expect("nine bytes");
                self.buf.clear();
                let left = u64::from(u32::from_be_bytes([0, head[0], head[1], head[2]]));
                self.mode = Mode::H2Payload {
                    head,
                    left,
                    data: Collected::default(),
                };
                if left == 0 {
                    return self.feed_empty(rows);
                }
            }
            _ => {}
        }
        None
    }

    /// Completes a row whose payload is empty.
    fn feed_empty(&mut self, rows: &mut Vec<Row>) -> Option<Switch> {
        match std::mem::replace(&mut self.mode, Mode::Raw) {
            Mode::FramePayload {
                head, header, data, ..
            } => {
                rows.push(frame_row(self.side, &head, &header, 0, &data));
                self.mode = Mode::FrameHead;
            }
            Mode::H2Payload { head, data, .. } => {
                rows.push(h2_row(self.side, &head, &data));
                self.mode = Mode::H2Head;
            }
            other => self.mode = other,
        }
        None
    }

    /// A complete HTTP/1.1 head: a row, and what follows it.
    fn http_head(&mut self, rows: &mut Vec<Row>) -> Option<Switch> {
        let head = std::mem::take(&mut self.buf);
        if self.side == Side::Client && head.starts_with(b"PRI * HTTP/2.0\r\n\r\n") {
            let mut row = Row::new(
                Side::Client,
                "preface",
                H2_PREFACE.len(),
                "HTTP/2 connection preface".into(),
            );
            row.text = Some(String::from_utf8_lossy(H2_PREFACE).into_owned());
            rows.push(row);
            // The preface goes on with "SM\r\n\r\n" before the first frame.
            self.mode = Mode::Skip {
                left: H2_PREFACE.len() - head.len(),
            };
            return Some(Switch::Http2);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let first = text.lines().next().unwrap_or_default().to_owned();
        let header = |name: &str| {
            text.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_ascii_lowercase())
            })
        };
        let length = header("content-length").and_then(|v| v.parse::<u64>().ok());
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let mut switch = None;
        let (kind, next) = match self.side {
            Side::Client => {
                self.head_request = first.starts_with("HEAD ");
                (
                    "request",
                    length.filter(|&n| n > 0).map(|n| Mode::Body {
                        left: Some(n),
                        body: Collected::default(),
                    }),
                )
            }
            Side::Server => {
                let status = first
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok());
                self.event_stream =
                    header("content-type").is_some_and(|v| v.starts_with("text/event-stream"));
                let next = match status {
                    Some(101) => {
                        switch = Some(Switch::WebSocket);
                        Some(Mode::FrameHead)
                    }
                    Some(100..=199 | 204 | 304) => None,
                    _ if self.head_request => None,
                    _ if chunked => Some(Mode::ChunkLine),
                    _ => match length {
                        Some(0) => None,
                        Some(n) => Some(Mode::Body {
                            left: Some(n),
                            body: Collected::default(),
                        }),
                        None => Some(Mode::Body {
                            left: None,
                            body: Collected::default(),
                        }),
                    },
                };
                ("response", next)
            }
        };
        let mut row = Row::new(self.side, kind, head.len(), first);
        row.text = Some(text);
        rows.push(row);
        self.mode = next.unwrap_or(Mode::Head);
        switch
    }

    /// Bytes this decoder cannot follow: show what it holds, and the rest raw.
    fn give_up(&mut self, rows: &mut Vec<Row>) {
        let held = std::mem::take(&mut self.buf);
        let summary = format!("{} bytes not understood", held.len());
        rows.push(raw_row(self.side, &held, summary));
        self.mode = Mode::Raw;
    }

    /// The connection ended: a body read until the close is complete now.
    pub fn finish(&mut self, rows: &mut Vec<Row>) {
        if let Mode::Body { left: None, body } = &mut self.mode {
            rows.push(body_row(self.side, std::mem::take(body)));
        }
    }
}

//! Reading one direction of a connection the way a person would: HTTP/1.1 heads and
//! bodies, the chunks of a streamed body (an SSE stream's events, comments and
//! `retry:`), WebSocket frames with their header fields, and HTTP/2 frame headers.
//!
//! It only *describes* bytes that were already sent; pushlab's serving never depends
//! on it. Each [`Decoder`] is a small state machine fed whatever each read or write
//! carried, so a head split over two reads or two frames in one read come out as the
//! rows they are. A row keeps at most [`SHOWN`] bytes of content; the rest is counted.

use std::io::Cursor;

use serde::Serialize;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Content kept per row for display.
pub const SHOWN: usize = 4096;
/// Longest HTTP head read as one; a longer one is shown as raw bytes.
const MAX_HEAD: usize = 16 * 1024;
/// What a client sends first on a cleartext HTTP/2 connection.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Who sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Server,
}

/// One thing that crossed the wire, as the page's wire log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Position in its tap (set by the tap).
    pub seq: u64,
    /// Milliseconds since the Unix epoch (set by the connection).
    pub at: u64,
    /// The connection's number on this server (set by the connection).
    pub conn: u64,
    /// Which transport the exchange belongs to (set by the connection).
    pub route: &'static str,
    pub from: Side,
    /// request, response, body, chunk, event, comment, retry, end, frame, preface,
    /// h2-frame, bytes, closed.
    pub kind: &'static str,
    /// Bytes this row covers on the wire.
    pub bytes: usize,
    pub summary: String,
    /// Framing bytes in hex: a chunk's length line, a frame's header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// The content as text (heads, bodies, events, unmasked payloads), at most
    /// [`SHOWN`] bytes of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<Frame>,
    /// For a response: milliseconds since its request (a long poll's hold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
}

impl Row {
    pub fn new(from: Side, kind: &'static str, bytes: usize, summary: String) -> Self {
        Self {
            seq: 0,
            at: 0,
            conn: 0,
            route: "",
            from,
            kind,
            bytes,
            summary,
            head: None,
            text: None,
            frame: None,
            after_ms: None,
        }
    }
}

/// A WebSocket frame header, field by field (RFC 6455 §5.2).
#[derive(Debug, Clone, Serialize)]
pub struct Frame {
    pub fin: bool,
    pub rsv: [bool; 3],
    pub opcode: u8,
    pub opcode_name: &'static str,
    pub masked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masking_key: Option<String>,
    pub payload_length: u64,
    /// "7-bit" (0–125), "16-bit" (126: two more bytes) or "64-bit" (127: eight more).
    pub length_form: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_meaning: Option<&'static str>,
}

/// What a decoder tells the other direction's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// A `101` answer: from now on both ways are WebSocket frames.
    WebSocket,
    /// The HTTP/2 preface: from now on both ways are HTTP/2 frames.
    Http2,
}

/// Content being collected for a row, of which at most [`SHOWN`] bytes are kept.
#[derive(Debug, Default)]
struct Collected {
    shown: Vec<u8>,
    total: usize,
}

impl Collected {
    fn add(&mut self, bytes: &[u8]) {
        let room = SHOWN.saturating_sub(self.shown.len());
        self.shown
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.total += bytes.len();
    }
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
    /// The end of the HTTP/2 preface, already shown.
    PrefaceEnd {
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
                Mode::PrefaceEnd { left } => {
                    let n = bytes.len().min(*left);
                    *left -= n;
                    if *left == 0 {
                        self.mode = Mode::H2Head;
                    }
                    n
                }
                Mode::Raw => {
                    let mut raw = Row::new(
                        self.side,
                        "bytes",
                        bytes.len(),
                        format!("{} bytes", bytes.len()),
                    );
                    raw.head = Some(hex(&bytes[..bytes.len().min(SHOWN)]));
                    rows.push(raw);
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
            self.mode = Mode::PrefaceEnd {
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
        let mut row = Row::new(
            self.side,
            "bytes",
            held.len(),
            format!("{} bytes not understood", held.len()),
        );
        row.head = Some(hex(&held[..held.len().min(SHOWN)]));
        rows.push(row);
        self.mode = Mode::Raw;
    }

    /// The connection ended: a body read until the close is complete now.
    pub fn finish(&mut self, rows: &mut Vec<Row>) {
        if let Mode::Body { left: None, body } = &mut self.mode {
            rows.push(body_row(self.side, std::mem::take(body)));
        }
    }
}

fn body_row(side: Side, body: Collected) -> Row {
    let text = String::from_utf8_lossy(&body.shown).into_owned();
    let mut row = Row::new(
        side,
        "body",
        body.total,
        format!("{} B {}", body.total, preview(&text)),
    );
    row.text = Some(text);
    row
}

/// A chunk of a streamed body; in an event stream, an event, a comment or a `retry:`.
fn chunk_row(side: Side, line: &[u8], data: &Collected, event_stream: bool) -> Row {
    let bytes = line.len() + data.total;
    // The chunk's data without the `\r\n` that ends it.
    let shown = &data.shown[..data.shown.len().min(data.total.saturating_sub(2))];
    let text = String::from_utf8_lossy(shown).into_owned();
    let (kind, summary) = if data.total <= 2 {
        ("end", "last chunk: the response is complete".to_owned())
    } else if !event_stream {
        ("chunk", format!("{} B {}", data.total - 2, preview(&text)))
    } else if text.lines().all(|l| l.is_empty() || l.starts_with(':')) {
        ("comment", text.trim().to_owned())
    } else if text
        .lines()
        .all(|l| l.is_empty() || l.starts_with("retry:"))
    {
        ("retry", text.trim().to_owned())
    } else {
        let fields: Vec<&str> = text.lines().filter(|l| !l.starts_with("data:")).collect();
        (
            "event",
            format!(
                "{} {}",
                fields.join("  "),
                preview(text.lines().find(|l| l.starts_with("data:")).unwrap_or(""))
            ),
        )
    };
    let mut row = Row::new(side, kind, bytes, summary.trim().to_owned());
    row.head = Some(hex(line));
    row.text = Some(text);
    row
}

fn frame_row(side: Side, head: &[u8], header: &FrameHeader, length: u64, data: &Collected) -> Row {
    let mut payload = data.shown.clone();
    if let Some(key) = header.mask {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
    }
    let (opcode, name) = match header.opcode {
        OpCode::Data(Data::Continue) => (0x0, "continuation"),
        OpCode::Data(Data::Text) => (0x1, "text"),
        OpCode::Data(Data::Binary) => (0x2, "binary"),
        OpCode::Control(Control::Close) => (0x8, "close"),
        OpCode::Control(Control::Ping) => (0x9, "ping"),
        OpCode::Control(Control::Pong) => (0xA, "pong"),
        OpCode::Data(Data::Reserved(n)) | OpCode::Control(Control::Reserved(n)) => (n, "reserved"),
    };
    let close_code =
        (opcode == 0x8 && payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
    let text = match opcode {
        0x8 => String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned(),
        0x2 => hex(&payload),
        _ => String::from_utf8_lossy(&payload).into_owned(),
    };
    let frame = Frame {
        fin: header.is_final,
        rsv: [header.rsv1, header.rsv2, header.rsv3],
        opcode,
        opcode_name: name,
        masked: header.mask.is_some(),
        masking_key: header.mask.map(|key| hex(&key)),
        payload_length: length,
        length_form: match head.get(1).map(|b| b & 0x7F) {
            Some(126) => "16-bit",
            Some(127) => "64-bit",
            _ => "7-bit",
        },
        close_code,
        close_meaning: close_code.map(close_meaning),
    };
    let fin = if frame.fin { "FIN" } else { "not FIN" };
    let summary = match close_code {
        Some(code) => format!("close {code} ({}) {}", close_meaning(code), text),
        None => format!("{name}, {fin}, {length} B {}", preview(&text)),
    };
    let mut row = Row::new(
        side,
        "frame",
        head.len() + length as usize,
        summary.trim().to_owned(),
    );
    row.head = Some(hex(head));
    row.text = Some(text);
    row.frame = Some(frame);
    row
}

fn h2_row(side: Side, head: &[u8; 9], data: &Collected) -> Row {
    let kind = match head[3] {
        0x0 => "DATA",
        0x1 => "HEADERS",
        0x2 => "PRIORITY",
        0x3 => "RST_STREAM",
        0x4 => "SETTINGS",
        0x5 => "PUSH_PROMISE",
        0x6 => "PING",
        0x7 => "GOAWAY",
        0x8 => "WINDOW_UPDATE",
        0x9 => "CONTINUATION",
        _ => "unknown",
    };
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7FFF_FFFF;
    let summary = format!(
        "{kind} stream {stream} flags 0x{:02x}, {} B",
        head[4], data.total
    );
    let mut row = Row::new(side, "h2-frame", 9 + data.total, summary);
    row.head = Some(hex(head));
    // DATA carries the body as sent; the rest (HPACK-compressed headers, settings) as hex.
    row.text = Some(if head[3] == 0 {
        String::from_utf8_lossy(&data.shown).into_owned()
    } else {
        hex(&data.shown)
    });
    row
}

/// The meaning of a WebSocket close code (RFC 6455 §7.4, IANA registry).
pub fn close_meaning(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status code (never sent)",
        1006 => "closed without a close frame (never sent)",
        1007 => "invalid data: not UTF-8",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "an extension the client needs",
        1011 => "server error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake failed (never sent)",
        3000..=3999 => "registered by a library or framework",
        4000..=4999 => "private to the application",
        _ => "not a valid close code",
    }
}

/// Bytes as `81 7e 00 84`.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The start of a text, on one line.
fn preview(text: &str) -> String {
    let line: String = text
        .chars()
        .take(100)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > 100 {
        format!("{line}…")
    } else {
        line
    }
}

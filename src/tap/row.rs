//! What the tap says about bytes: one [`Row`] per thing that crossed the wire, built
//! by the decoder (`decode.rs`) from an HTTP head, a body, a chunk of an event stream,
//! a WebSocket frame or an HTTP/2 frame, with the fields a person needs to read it.

use serde::Serialize;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Content kept per row for display; the rest is counted, not kept.
pub const SHOWN: usize = 4096;

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

/// Content being collected for a row, of which at most [`SHOWN`] bytes are kept.
#[derive(Debug, Default)]
pub struct Collected {
    pub shown: Vec<u8>,
    pub total: usize,
}

impl Collected {
    pub fn add(&mut self, bytes: &[u8]) {
        let room = SHOWN.saturating_sub(self.shown.len());
        self.shown
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.total += bytes.len();
    }
}

pub fn body_row(side: Side, body: Collected) -> Row {
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
pub fn chunk_row(side: Side, line: &[u8], data: &Collected, event_stream: bool) -> Row {
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

pub fn frame_row(
    side: Side,
    head: &[u8],
    header: &FrameHeader,
    length: u64,
    data: &Collected,
) -> Row {
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

pub fn h2_row(side: Side, head: &[u8; 9], data: &Collected) -> Row {
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

/// Bytes shown as they are, in hex: what the decoder could not follow.
pub fn raw_row(side: Side, bytes: &[u8], summary: String) -> Row {
    let mut row = Row::new(side, "bytes", bytes.len(), summary);
    row.head = Some(hex(&bytes[..bytes.len().min(SHOWN)]));
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

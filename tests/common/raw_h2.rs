//! A misbehaving HTTP/2 client: frames written by hand (RFC 9113 §4, HPACK literals
//! without indexing), to send what a correct client library never would — more streams
//! than the server allows, streams cancelled as soon as they are opened, header blocks
//! that never end. It reads the server's frames raw too.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::https::tls_connect;
use super::{Server, within};

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// Error codes (RFC 9113 §7).
pub const CANCEL: u32 = 0x8;
pub const REFUSED_STREAM: u32 = 0x7;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// SETTINGS_MAX_CONCURRENT_STREAMS and SETTINGS_ENABLE_CONNECT_PROTOCOL.
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM, or of a GOAWAY.
    pub fn error_code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }

    /// The (id, value) pairs of a SETTINGS frame.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks(6)
            .map(|s| {
                let id = u16::from_be_bytes([s[0], s[1]]);
                (id, u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
            })
            .collect()
    }
}

pub struct RawH2 {
    tls: TlsStream<TcpStream>,
    /// Frames to write, sent together by [`RawH2::flush`].
    out: Vec<u8>,
    authority: String,
    /// The server's SETTINGS.
    pub settings: Vec<(u16, u32)>,
}

impl RawH2 {
    /// TLS with ALPN `h2`, the preface and SETTINGS exchanged (each side's acknowledged),
    /// so the server's limits are in force.
    pub async fn connect(server: &Server) -> Self {
        let (tls, _) = tls_connect(server, &[b"h2"]).await;
        let mut client = Self {
            tls,
            out: Vec::new(),
            authority: format!("localhost:{}", server.addr.port()),
            settings: Vec::new(),
        };
        client
            .out
            .extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        client.frame(SETTINGS, 0, 0, &[]);
        client.flush().await;
        let (mut theirs, mut acked) = (false, false);
        while !(theirs && acked) {
            let frame = client.read().await.expect("the server's SETTINGS");
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                client.settings = frame.settings();
                client.frame(SETTINGS, ACK, 0, &[]);
                client.flush().await;
                theirs = true;
            } else if frame.kind == SETTINGS {
                acked = true;
            }
        }
        client
    }

    /// The value the server announced for a setting.
    pub fn setting(&self, id: u16) -> Option<u32> {
        self.settings
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| *v)
    }

    /// Queues one frame.
    pub fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        self.out.extend_from_slice(&len.to_be_bytes()[1..]);
        self.out.push(kind);
        self.out.push(flags);
        self.out.extend_from_slice(&stream.to_be_bytes());
        self.out.extend_from_slice(payload);
    }

    /// The header block of a request: pseudo-headers, then `extra`.
    pub fn header_block(&self, method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        let pseudo = [
            (":method", method),
            (":scheme", "https"),
            (":authority", &self.authority),
            (":path", path),
        ];
        for (name, value) in pseudo.iter().chain(extra) {
            // Literal header field without indexing, new name (RFC 7541 §6.2.2).
            block.push(0);
            hpack_string(&mut block, name.as_bytes());
            hpack_string(&mut block, value.as_bytes());
        }
        block
    }

    /// Queues a GET (no body) on `stream`.
    pub fn get(&mut self, stream: u32, path: &str) {
        let block = self.header_block("GET", path, &[]);
        self.frame(HEADERS, END_HEADERS | END_STREAM, stream, &block);
    }

    /// Queues RST_STREAM.
    pub fn reset(&mut self, stream: u32, code: u32) {
        self.frame(RST_STREAM, 0, stream, &code.to_be_bytes());
    }

    pub async fn flush(&mut self) {
        let out = std::mem::take(&mut self.out);
        // A server that closed the connection makes this fail; the reads say why.
        let _ = self.tls.write_all(&out).await;
        let _ = self.tls.flush().await;
    }

    /// The next frame, or `None` once the server has closed the connection.
    pub async fn read(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        within("a frame from the server", self.tls.read_exact(&mut head))
            .await
            .ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        within("a frame's payload", self.tls.read_exact(&mut payload))
            .await
            .ok()?;
        let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream,
            payload,
        })
    }

    /// Reads until a frame `matches`, or the connection closes (`None`).
    pub async fn read_until(&mut self, matches: impl Fn(&Frame) -> bool) -> Option<Frame> {
        loop {
            let frame = self.read().await?;
            if matches(&frame) {
                return Some(frame);
            }
        }
    }
}

/// An HPACK string literal, not Huffman-coded: length (7-bit prefix integer), bytes.
fn hpack_string(block: &mut Vec<u8>, bytes: &[u8]) {
    let mut len = bytes.len();
    if len < 127 {
        block.push(len as u8);
    } else {
        block.push(127);
        len -= 127;
        while len >= 128 {
            block.push((len % 128) as u8 | 0x80);
            len /= 128;
        }
        block.push(len as u8);
    }
    block.extend_from_slice(bytes);
}

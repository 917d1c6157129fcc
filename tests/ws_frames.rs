//! The WebSocket protocol byte by byte: exact byte sequences written to `/api/ws` over a
//! raw TCP socket, and what pushlab answers to each. docs/websocket.md walks through the
//! same bytes.
//!
//! The cases are the ones a hand-written parser that reads the socket 1024 bytes at a
//! time and takes each read for one whole frame (as the teaching note this project
//! started from does) gets wrong: a frame split across two reads, two frames in one
//! read, a frame longer than the read, the 16- and 64-bit length forms, a fragmented
//! message, a ping, a close, an unmasked client frame, a peer that vanishes. Each must
//! be reassembled, answered, or refused with the close code RFC 6455 asks for.

mod common;

use std::io::Cursor;
use std::net::SocketAddr;

use common::{Server, eventually, within};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// RFC 6455 §1.3's example key, and the accept value the RFC computes from it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The GUID every server appends to the key (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// RFC 6455 §5.7's example masking key.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

// First bytes: FIN bit (0x80) | opcode.
const TEXT: u8 = 0x81;
const TEXT_NOT_FINAL: u8 = 0x01;
const CONTINUATION_FINAL: u8 = 0x80;
const CLOSE: u8 = 0x88;
const PING: u8 = 0x89;

/// A client frame, built by hand: `first` byte, MASK bit + the shortest length form,
/// the masking key, and the payload XORed with it.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// pushlab's `send` frame as JSON text.
fn send(text: &str) -> Vec<u8> {
    json!({ "type": "send", "author": "raw", "text": text })
        .to_string()
        .into_bytes()
}

/// A frame the server sent: its raw header bytes, decoded header, and payload.
#[derive(Debug)]
struct ServerFrame {
    head: Vec<u8>,
    header: FrameHeader,
    payload: Vec<u8>,
}

impl ServerFrame {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap()
    }

    /// The status code at the start of a close frame's payload.
    fn close_code(&self) -> u16 {
        assert_eq!(self.header.opcode, OpCode::Control(Control::Close));
        u16::from_be_bytes([self.payload[0], self.payload[1]])
    }
}

/// A WebSocket connection over a plain TCP socket: bytes out, frames in.
struct Raw {
    stream: TcpStream,
    /// Bytes read but not yet taken as frames.
    unread: Vec<u8>,
}

impl Raw {
    /// Writes the upgrade request by hand and reads the `101` answer's head.
    async fn open(server: &Server, query: &str) -> (Self, String) {
        let request = format!(
            "GET /api/ws{query} HTTP/1.1\r\n\
             Host: {addr}\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
            addr = server.addr
        );
        Self::open_with(server, &request).await
    }

    async fn open_with(server: &Server, request: &str) -> (Self, String) {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Self {
            stream,
            unread: Vec::new(),
        };
        let head = within("the handshake's answer", async {
            loop {
                if let Some(end) = raw.unread.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = raw.unread.drain(..end + 4).collect();
                    return String::from_utf8(head).unwrap();
                }
                assert!(raw.fill().await, "closed during the handshake");
            }
        })
        .await;
        (raw, head)
    }

    /// Reads more bytes; `false` at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.unread.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame the server sends, decoded by tungstenite's header parser; `None`
    /// when the server closed the TCP connection.
    async fn frame(&mut self) -> Option<ServerFrame> {
        within("a frame from the server", async {
            loop {
                let mut cursor = Cursor::new(&self.unread);
                if let Some((header, length)) = FrameHeader::parse(&mut cursor).unwrap() {
                    let start = cursor.position() as usize;
                    let end = start + length as usize;
                    if self.unread.len() >= end {
                        let payload = self.unread[start..end].to_vec();
                        let head = self.unread.drain(..end).take(start).collect();
                        return Some(ServerFrame {
                            head,
                            header,
                            payload,
                        });
                    }
                }
                if !self.fill().await {
                    return None;
                }
            }
        })
        .await
    }

    /// The next frame, which must be a text frame carrying a message; returns it.
    async fn message(&mut self) -> Value {
        let frame = self.frame().await.expect("the connection closed");
        assert_eq!(frame.header.opcode, OpCode::Data(Data::Text), "{frame:?}");
        assert!(frame.header.is_final && frame.header.mask.is_none());
        let json = frame.json();
        assert_eq!(json["type"], "message", "{json}");
        json["message"].clone()
    }

    /// The server's close frame (skipping anything before it), then the end of the TCP
    /// connection; returns the close code.
    async fn closed_with(&mut self) -> u16 {
        let code = loop {
            let frame = self.frame().await.expect("closed without a close frame");
            if frame.header.opcode == OpCode::Control(Control::Close) {
                break frame.close_code();
            }
        };
        assert!(self.frame().await.is_none(), "frames after the close");
        code
    }

    /// How many bytes of this connection the server has not read from its socket yet,
    /// from the kernel's table of TCP sockets (`/proc/net/tcp`, IPv4 loopback).
    fn unread_by_server(&self, server: SocketAddr) -> u64 {
        let client = self.stream.local_addr().unwrap();
        let hex = |addr: SocketAddr| match addr {
            SocketAddr::V4(v4) => format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(v4.ip().octets()),
                v4.port()
            ),
            SocketAddr::V6(_) => panic!("the tests bind IPv4 loopback"),
        };
        let (local, remote) = (hex(server), hex(client));
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        table
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
                    .then(|| {
                        let (_, rx_queue) = fields[4].split_once(':').unwrap();
                        u64::from_str_radix(rx_queue, 16).unwrap()
                    })
            })
            .expect("the server's side of the connection")
    }
}

/// Opens a socket from `?since=0` on a fresh server that sends no pings (these tests
/// read every frame the server sends, and a slow machine can take 25 s).
async fn connected() -> (Server, Raw) {
    let server = Server::start_with(&["--ws-ping", "3600"]).await;
    let (raw, head) = Raw::open(&server, "?since=0").await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    (server, raw)
}

#[tokio::test]
async fn the_handshake_answers_the_rfc_example_key_with_the_rfc_accept_value() {
    use sha1::{Digest, Sha1};
    // Step by step, as docs/websocket.md shows it: key + GUID, SHA-1, base64.
    let digest = Sha1::digest(format!("{KEY}{GUID}"));
    // The digest RFC 6455 §1.3 prints for this key.
    let rfc: [u8; 20] = [
        0xb3, 0x7a, 0x4f, 0x2c, 0xc0, 0x62, 0x4f, 0x16, 0x90, 0xf6, 0x46, 0x06, 0xcf, 0x38, 0x59,
        0x45, 0xb2, 0xbe, 0xc4, 0xea,
    ];
    assert_eq!(digest.as_slice(), rfc);
    assert_eq!(data_encoding::BASE64.encode(&digest), ACCEPT);

    // And pushlab, asked with that key (header names in any case, as HTTP allows),
    // answers with that value.
    let server = Server::start().await;
    let request = format!(
        "GET /api/ws HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-key: {KEY}\r\nsec-websocket-version: 13\r\n\r\n",
        server.addr
    );
    let (_raw, head) = Raw::open_with(&server, &request).await;
    let head = head.to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    let accept = format!(
        "\r\nsec-websocket-accept: {}\r\n",
        ACCEPT.to_ascii_lowercase()
    );
    assert!(head.contains(&accept), "{head}");
}

#[tokio::test]
async fn a_frame_split_across_reads_is_reassembled() {
    let (server, mut raw) = connected().await;
    let text = "split in three";
    let frame = masked(TEXT, &send(text));
    // Cut inside the 2-byte header, inside the masking key, and inside the payload.
    let cuts = [0, 1, 4, 12, frame.len()];
    for part in cuts.windows(2) {
        raw.write(&frame[part[0]..part[1]]).await;
        // The server has read this part (its socket holds nothing unread) before the
        // next is sent: each part is a read of its own.
        eventually("the server to read the part", || async {
            raw.unread_by_server(server.addr) == 0
        })
        .await;
    }
    let message = raw.message().await;
    assert_eq!(
        (message["id"].as_u64(), message["text"].as_str()),
        (Some(1), Some(text))
    );
}

#[tokio::test]
async fn two_frames_in_one_read_are_two_messages() {
    let (_server, mut raw) = connected().await;
    let mut both = masked(TEXT, &send("first"));
    both.extend(masked(TEXT, &send("second")));
    raw.write(&both).await;
    assert_eq!(raw.message().await["text"], "first");
    assert_eq!(raw.message().await["text"], "second");
}

#[tokio::test]
async fn a_frame_longer_than_1024_bytes_takes_the_16_bit_length_and_arrives_whole() {
    let (_server, mut raw) = connected().await;
    let text = "x".repeat(1500);
    let frame = masked(TEXT, &send(&text));
    // 126 in the length byte: the next two bytes are the length.
    assert_eq!(frame[1], 0x80 | 126);
    let length = u16::from_be_bytes([frame[2], frame[3]]) as usize;
    assert_eq!(length, send(&text).len());
    raw.write(&frame).await;

    let reply = raw.frame().await.unwrap();
    // The server's frame is unmasked: 0x81, 126, then the 16-bit length.
    assert_eq!(reply.head[..2], [TEXT, 126]);
    assert_eq!(reply.head.len(), 4);
    assert_eq!(reply.json()["message"]["text"], text);
}

#[tokio::test]
async fn a_64_bit_length_over_the_limit_is_refused_from_the_header_alone() {
    let (_server, mut raw) = connected().await;
    // 127 in the length byte: the next eight bytes are the length, here 70 000
    // (the 64-bit form starts at 65 536). pushlab takes at most 16 KiB per message.
    let mut header = vec![TEXT, 0x80 | 127];
    header.extend_from_slice(&70_000u64.to_be_bytes());
    header.extend_from_slice(&MASK);
    raw.write(&header).await;
    // No payload was sent: the length alone is enough to refuse (1009, too big).
    assert_eq!(raw.closed_with().await, 1009);
}

#[tokio::test]
async fn a_fragmented_message_is_reassembled_and_a_ping_between_its_fragments_answered() {
    let (_server, mut raw) = connected().await;
    let payload = send("in two fragments");
    let (head, tail) = payload.split_at(10);
    let mut bytes = masked(TEXT_NOT_FINAL, head); // FIN 0, opcode 1 (text)
    bytes.extend(masked(PING, b"mid")); // control frames may come between fragments
    bytes.extend(masked(CONTINUATION_FINAL, tail)); // FIN 1, opcode 0 (continuation)
    raw.write(&bytes).await;

    let (mut pong, mut message) = (None, None);
    while pong.is_none() || message.is_none() {
        let frame = raw.frame().await.expect("the connection closed");
        match frame.header.opcode {
            OpCode::Control(Control::Pong) => pong = Some(frame.payload),
            OpCode::Data(Data::Text) => message = Some(frame.json()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pong.unwrap(), b"mid", "a pong echoes the ping's payload");
    assert_eq!(message.unwrap()["message"]["text"], "in two fragments");
}

#[tokio::test]
async fn a_close_frame_is_answered_with_a_close_frame_then_the_connection_ends() {
    let (server, mut raw) = connected().await;
    let mut payload = 1000u16.to_be_bytes().to_vec(); // 1000: normal closure
    payload.extend_from_slice(b"bye");
    raw.write(&masked(CLOSE, &payload)).await;
    assert_eq!(raw.closed_with().await, 1000);
    assert_open_sockets(&server, 0).await;
}

#[tokio::test]
async fn an_unmasked_client_frame_is_refused_with_1002() {
    let (_server, mut raw) = connected().await;
    // RFC 6455 §5.7's unmasked "Hello": fine from a server, forbidden from a client.
    raw.write(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).await;
    assert_eq!(raw.closed_with().await, 1002);
}

#[tokio::test]
async fn frames_that_break_the_protocol_are_refused_with_1002() {
    let server = Server::start().await;
    let cases: [(&str, Vec<u8>); 5] = [
        ("reserved opcode 3", masked(0x83, b"x")),
        ("RSV1 set without an extension", masked(0xC1, &send("x"))),
        (
            "a continuation with nothing to continue",
            masked(0x80, b"x"),
        ),
        ("a fragmented ping", masked(0x09, b"x")),
        ("a ping over 125 bytes", masked(PING, &[b'p'; 126])),
    ];
    for (what, bytes) in cases {
        let (mut raw, _) = Raw::open(&server, "").await;
        raw.write(&bytes).await;
        assert_eq!(raw.closed_with().await, 1002, "{what}");
    }
}

#[tokio::test]
async fn a_peer_that_vanishes_mid_frame_is_let_go() {
    let (server, mut raw) = connected().await;
    assert_open_sockets(&server, 1).await;
    let frame = masked(TEXT, &send("never finished"));
    raw.write(&frame[..frame.len() / 2]).await;
    // No close frame: the TCP connection just ends (a crash, a closed laptop lid).
    drop(raw);
    assert_open_sockets(&server, 0).await;
    let (_, page) = server.get_json("/api/messages?since=0").await;
    assert_eq!(page["last_id"], 0, "half a frame publishes nothing");
}

async fn assert_open_sockets(server: &Server, n: u64) {
    eventually(&format!("{n} open WebSockets"), || async {
        server.stats().await["transports"]["websocket"]["open"] == n
    })
    .await;
}

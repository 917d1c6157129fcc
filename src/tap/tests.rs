//! The decoder fed the way a socket delivers bytes: split anywhere, or run together.

use super::Taps;
use super::decode::{Decoder, Switch};
use super::row::{Row, Side};
use crate::config::AutoOnOff;

/// Feeds `bytes` to a decoder in pieces of `piece` bytes; returns the rows.
fn feed_in_pieces(decoder: &mut Decoder, bytes: &[u8], piece: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for chunk in bytes.chunks(piece) {
        decoder.feed(chunk, &mut rows);
    }
    rows
}

fn kinds(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|r| r.kind).collect()
}

#[test]
fn a_request_split_byte_by_byte_is_one_request_and_its_body() {
    let request = b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    for piece in [1, 7, request.len()] {
        let rows = feed_in_pieces(&mut Decoder::new(Side::Client), request, piece);
        assert_eq!(kinds(&rows), ["request", "body"], "pieces of {piece}");
        assert_eq!(rows[0].summary, "POST /api/messages HTTP/1.1");
        assert_eq!(rows[1].text.as_deref(), Some("hello"));
    }
}

#[test]
fn an_event_stream_is_read_as_retry_events_and_comments() {
    let response =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
                     D\r\nretry: 3000\n\n\r\n\
                     11\r\nid: 7\ndata: {}\n\n\n\r\n\
                     E\r\n: keep-alive\n\n\r\n\
                     0\r\n\r\n";
    for piece in [1, 3, response.len()] {
        let rows = feed_in_pieces(&mut Decoder::new(Side::Server), response, piece);
        assert_eq!(
            kinds(&rows),
            ["response", "retry", "event", "comment", "end"],
            "pieces of {piece}"
        );
        assert_eq!(rows[1].bytes, 18);
        assert_eq!(rows[3].summary, ": keep-alive");
    }
}

#[test]
fn two_websocket_frames_in_one_read_are_two_rows_and_a_101_switches_both_ways() {
    let mut server = Decoder::new(Side::Server);
    let mut rows = Vec::new();
    let answer = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n";
    assert_eq!(server.feed(answer, &mut rows), Some(Switch::WebSocket));
    // An unmasked "Hi" and an empty ping, in one write.
    server.feed(&[0x81, 0x02, b'H', b'i', 0x89, 0x00], &mut rows);
    assert_eq!(kinds(&rows), ["response", "frame", "frame"]);
    let frame = rows[1].frame.as_ref().unwrap();
    assert_eq!(
        (frame.opcode_name, frame.fin, frame.masked),
        ("text", true, false)
    );
    assert_eq!(rows[1].text.as_deref(), Some("Hi"));
    assert_eq!(rows[2].frame.as_ref().unwrap().opcode_name, "ping");

    // The client's side, switched by the 101: RFC 6455 §5.7's masked "Hello", split.
    let mut client = Decoder::new(Side::Client);
    client.switch(Switch::WebSocket);
    let hello = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let rows = feed_in_pieces(&mut client, &hello, 3);
    let frame = rows[0].frame.as_ref().unwrap();
    assert_eq!(rows[0].text.as_deref(), Some("Hello"));
    assert_eq!(frame.masking_key.as_deref(), Some("37 fa 21 3d"));
    assert_eq!(rows[0].head.as_deref(), Some("81 85 37 fa 21 3d"));
}

#[test]
fn a_close_frame_shows_its_code_and_meaning() {
    let mut decoder = Decoder::new(Side::Server);
    decoder.switch(Switch::WebSocket);
    let mut rows = Vec::new();
    decoder.feed(&[0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e'], &mut rows);
    let frame = rows[0].frame.as_ref().unwrap();
    assert_eq!(frame.close_code, Some(1000));
    assert_eq!(rows[0].summary, "close 1000 (normal closure) bye");
}

#[test]
fn the_http2_preface_switches_both_ways_to_frames() {
    let mut client = Decoder::new(Side::Client);
    let mut rows = Vec::new();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend([0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
    let switch = client.feed(&bytes, &mut rows);
    assert_eq!(switch, Some(Switch::Http2));
    assert_eq!(kinds(&rows), ["preface", "h2-frame"]);
    assert!(
        rows[1].summary.starts_with("SETTINGS stream 0"),
        "{}",
        rows[1].summary
    );
}

#[test]
fn auto_is_on_for_a_loopback_address_only() {
    assert!(Taps::new(AutoOnOff::Auto, true).enabled());
    assert!(!Taps::new(AutoOnOff::Auto, false).enabled());
    assert!(Taps::new(AutoOnOff::On, false).enabled());
    assert!(!Taps::new(AutoOnOff::Off, true).enabled());
}

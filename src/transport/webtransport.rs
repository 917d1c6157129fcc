//! WebTransport: a session over HTTP/3, so over QUIC, so over UDP. One `CONNECT`
//! request opens the session; inside it either side opens streams (reliable, ordered,
//! independent of each other) and sends datagrams (unreliable, unordered).
//!
//! ```text
//! QUIC handshake (TLS 1.3 inside, 1 RTT)                    UDP, same port number as HTTP
//! CONNECT https://host:port/api/webtransport?since=41  :protocol = webtransport
//! 200
//! ⇐ uni stream, opened by the server, for the whole session:
//!   {"type":"message","message":{"id":42,…}}\n         one JSON line per frame,
//!   {"type":"message","message":{"id":43,…}}\n         the WebSocket's frames
//!   {"type":"close","code":1001,"reason":"server shutting down"}\n   then FIN
//! ⇄ bidi stream per send, opened by the client:
//!   → {"type":"send","author":"bob","text":"hello"}  FIN
//!   ← {"type":"message","message":{"id":44,…}}  FIN    (or {"type":"error",…})
//! ```
//!
//! **How messages travel.** One long unidirectional stream of newline-framed JSON is
//! the WebSocket's design moved onto QUIC: ordered and lossless, so the cursor works as
//! everywhere else (the client remembers the last id it read and resumes with
//! `since=`). JSON never contains a raw newline, so `\n` is the whole framing. A
//! stream per message, or datagrams for live messages, can be asked for with
//! `?delivery=`; `webtransport/delivery.rs` has what each costs, measured, and why the
//! long stream won.
//!
//! **Sending** is a bidirectional stream per message: the reply on the same stream says
//! what became of it (the stored message with its id, or the error), like a `POST`.
//!
//! A session can end four ways besides the client closing it: the server shuts down
//! (code 1001), the client stops reading so a line cannot be written within
//! `--slow-client-timeout` (1013: reconnect from your cursor), QUIC's idle timeout
//! finds the client gone (counted as dead), or the request was refused once accepted
//! (a bad cursor: 400; the server full: 503). The reason goes as a last `close` line,
//! because browsers cannot read the reason of a QUIC close (see [`crate::quic`]).
//!
//! Cost: per message, the JSON line plus ~30–60 bytes of QUIC short header, frame
//! headers and AEAD tag in a UDP datagram, and ACKs that QUIC sends in user space
//! (more CPU per byte than TCP's in-kernel stack). Gain: no head-of-line blocking
//! between streams, a 1-RTT handshake with TLS included, connection migration, and
//! datagrams when losing a message is better than waiting for it. It needs a
//! certificate even on loopback (see [`crate::quic::certificate`]) and a UDP path
//! that proxies and firewalls often do not give.

mod delivery;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Uri, header};
use tokio::time::timeout;
use wtransport::endpoint::SessionRequest;
use wtransport::error::ConnectionError;
use wtransport::{Connection, RecvStream};

use self::delivery::{Kind, Session, delivery_of};
use super::Attendance;
use super::arrival::Arrival;
use crate::error::ApiError;
use crate::hub::{Cursor, Delivery, Room};
use crate::message::MAX_BODY_BYTES;
use crate::message::Via;
use crate::protocol::{ServerFrame, Transport, WT_CLOSE_SHUTDOWN, WT_CLOSE_TOO_SLOW, WtDelivery};
use crate::room::RoomName;
use crate::state::AppState;
use crate::stats::Counters;

/// One session request, from `CONNECT` to close.
pub async fn session(request: SessionRequest, app: Arc<AppState>) {
    let Some(room) = room_of(request.path()) else {
        return request.not_found().await;
    };
    // A rebound name (DNS rebinding, see `crate::host`), or a page from another site,
    // must not get a session in the user's name. wtransport can refuse a session only
    // with 403, 404 or 429, so both get 403 (over HTTP the wrong host gets 421).
    if app.hosts.check_authority(request.authority()).is_err()
        || app
            .origins
            .check(&handshake_headers(&request), &Uri::default())
            .is_err()
    {
        return request.forbidden().await;
    }
    let ip = request.remote_address().ip().to_canonical();
    let uri: Uri = request.path().parse().unwrap_or_default();
    let admitted = room.map_err(ApiError::from).and_then(|room| {
        let arrival = Arrival::from_uri(app.clone(), room, &uri, ip)?;
        let cursor = arrival.params.cursor()?;
        let delivery = delivery_of(&uri)?;
        Ok((arrival.attend(Transport::Webtransport)?, cursor, delivery))
    });
    let Ok(connection) = request.accept().await else {
        return;
    };
    let Ok(opening) = connection.open_uni().await else {
        return;
    };
    let Ok(down) = opening.await else {
        return;
    };
    let mut session = Session {
        connection,
        down,
        delivery: WtDelivery::Stream,
    };
    match admitted {
        // Refused after accepting, so that the client can read why.
        Err(error) => {
            let code = error.status().as_u16().into();
            goodbye(&mut session, code, error.to_string()).await
        }
        Ok((attendance, cursor, delivery)) => {
            session.delivery = delivery;
            deliver(&app, session, attendance, cursor, ip).await
        }
    }
}

/// The room a session's path names, or `None` for a path that is not a session's.
fn room_of(path_and_query: &str) -> Option<Result<RoomName, crate::room::BadRoomName>> {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let rest = path
        .strip_prefix("/api/")?
        .strip_suffix(Transport::Webtransport.endpoint())?;
    match rest
        .strip_prefix("rooms/")
        .and_then(|r| r.strip_suffix('/'))
    {
        Some(room) if !room.contains('/') => Some(RoomName::new(room)),
        Some(_) => None,
        None => rest.is_empty().then(|| Ok(RoomName::lobby())),
    }
}

/// What [`crate::origin`] checks, from the session's `CONNECT` request. The page
/// connects to the address the QUIC socket is bound to (`127.0.0.1`, see
/// `web/transports/webtransport.js`), which is not the name a page opened at
/// `http://localhost:PORT` has: both name this machine, so for the check the session
/// counts as addressed to the page's own `localhost`.
fn handshake_headers(request: &SessionRequest) -> HeaderMap {
    let origin = request.origin();
    let authority = request.authority();
    let page_authority = origin.and_then(|o| o.split_once("://")).map(|(_, a)| a);
    let host = match (page_authority, authority.rsplit_once(':')) {
        (Some(page), Some((ip, port)))
            if page == format!("localhost:{port}") && is_loopback(ip) =>
        {
            page
        }
        _ => authority,
    };
    let mut headers = HeaderMap::new();
    for (name, value) in [(header::ORIGIN, origin), (header::HOST, Some(host))] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    headers
}

fn is_loopback(ip: &str) -> bool {
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// History after the cursor, then live messages, until the session ends.
async fn deliver(
    app: &Arc<AppState>,
    mut session: Session,
    attendance: Attendance,
    cursor: Cursor,
    ip: IpAddr,
) {
    let room = attendance.room().clone();
    let history_ends = room.bounds().newest;
    let mut subscription = room.subscribe(cursor);
    let connection = session.connection.clone();
    let sends = tokio::spawn(accept_sends(connection.clone(), app.clone(), room, ip));
    loop {
        let (line, kind) = tokio::select! {
            delivery = subscription.next() => match delivery {
                Some(delivery) => encode(&attendance, delivery, history_ends),
                None => break,
            },
            error = connection.closed() => {
                if matches!(error, ConnectionError::TimedOut) {
                    Counters::add(&attendance.counters().dead_closes, 1);
                }
                break;
            }
            () = app.shutdown.cancelled() => {
                goodbye(&mut session, WT_CLOSE_SHUTDOWN, "server shutting down".into()).await;
                break;
            }
        };
        match timeout(
            app.config.slow_client_timeout,
            session.send(line.as_bytes(), kind),
        )
        .await
        {
            Ok(Some(())) => {}
            Ok(None) => break,
            Err(_) => {
                // The stream is full, so a `close` line could not get through either.
                Counters::add(&attendance.counters().slow_closes, 1);
                connection.close(
                    WT_CLOSE_TOO_SLOW.into(),
                    b"too slow: reconnect from your cursor",
                );
                break;
            }
        }
    }
    sends.abort();
}

/// A delivery as one line, and what it carries (a message published after
/// `history_ends` is live).
fn encode(attendance: &Attendance, delivery: Delivery, history_ends: u64) -> (String, Kind) {
    let (mut line, kind) = match delivery {
        Delivery::Message(entry) => {
            let frame = ServerFrame::Message {
                message: &*entry.json,
            }
            .to_text();
            attendance.sent([&entry], frame.len() + 1);
            let live = entry.id() > history_ends;
            (frame, if live { Kind::Live } else { Kind::History })
        }
        Delivery::Reset { last_id } => {
            Counters::add(&attendance.counters().resets, 1);
            (ServerFrame::<()>::Reset { last_id }.to_text(), Kind::Reset)
        }
    };
    line.push('\n');
    (line, kind)
}

/// Answers each bidirectional stream the client opens: one `send` frame in, one
/// frame out.
async fn accept_sends(connection: Connection, app: Arc<AppState>, room: Arc<Room>, ip: IpAddr) {
    while let Ok((mut reply, mut request)) = connection.accept_bi().await {
        let frame = match read_frame(&mut request).await {
            Ok(text) => match super::publish_frame(&app, &room, ip, &text, Via::Webtransport).await
            {
                Ok(entry) => ServerFrame::Message {
                    message: &*entry.json,
                }
                .to_text(),
                Err(error) => ServerFrame::<()>::Error { error }.to_text(),
            },
            Err(error) => ServerFrame::<()>::Error { error }.to_text(),
        };
        let answered = timeout(app.config.slow_client_timeout, async {
            reply.write_all(frame.as_bytes()).await?;
            reply.finish().await
        });
        if !matches!(answered.await, Ok(Ok(()))) {
            break;
        }
    }
}

/// A stream's whole content as text: at most [`MAX_BODY_BYTES`], like a `POST`.
async fn read_frame(stream: &mut RecvStream) -> Result<String, String> {
    let mut bytes = Vec::new();
    let mut buf = [0; 4096];
    while let Some(n) = stream.read(&mut buf).await.map_err(|e| e.to_string())? {
        if bytes.len() + n > MAX_BODY_BYTES {
            return Err(
                "message too big: at most 16 KiB (a message text is at most 2000 characters)"
                    .into(),
            );
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(bytes).map_err(|_| "a send frame must be UTF-8 JSON text".into())
}

/// Says why the session ends, as a last line on the long stream, then closes it once
/// the client has read it (or after a second).
async fn goodbye(session: &mut Session, code: u32, reason: String) {
    let line = ServerFrame::<()>::Close {
        code,
        reason: reason.clone(),
    }
    .to_text()
        + "\n";
    let said = async {
        session.down.write_all(line.as_bytes()).await?;
        session.down.finish().await
    };
    if matches!(timeout(Duration::from_secs(1), said).await, Ok(Ok(()))) {
        // The client closes when it reads the line; closing first would discard it.
        let _ = timeout(Duration::from_secs(1), session.connection.closed()).await;
    }
    session.connection.close(code.into(), reason.as_bytes());
}

//! A WebSocket subscriber: one upgrade (`GET /api/ws?since=…`; over HTTP/2 an extended
//! CONNECT), then a frame per message, `{"type":"message","message":{…}}`, for as long
//! as the run lasts.

use anyhow::bail;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::http::HttpConnection;
use super::{Run, Seen, connect_gated};
use crate::bench::tally::Receipts;
use crate::bench::wire;
use crate::protocol::ServerFrame;
use crate::stats::HttpVersion;

pub async fn subscribe(run: &Run, index: usize, receipts: &mut Receipts) -> anyhow::Result<()> {
    // Chat frames are small; tungstenite's default 128 KiB read buffer per
    // connection would only make the bench itself heavier.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (path, since) = run.path_of(index);
    let path = format!("{path}?since={since}");
    match run.server.http() {
        HttpVersion::Http1 => {
            let open = async {
                let stream = wire::connect(run.server.addr, index, &run.wire).await?;
                let url = run.server.url(&path).replacen("http", "ws", 1);
                let (socket, _) =
                    tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
                // Counted before the subscriber counts as connected (see `Run::requests`).
                run.count_request();
                anyhow::Ok(socket)
            };
            read(run, receipts, connect_gated(run, open).await?).await
        }
        HttpVersion::Http2 => {
            let open = async {
                let mut http = HttpConnection::open(&run.server, index, &run.wire).await?;
                let socket = http.websocket(&path, config).await?;
                run.count_request();
                anyhow::Ok((http, socket))
            };
            // The connection is kept with the socket, which is one of its streams.
            let (_http, socket) = connect_gated(run, open).await?;
            read(run, receipts, socket).await
        }
    }
}

/// Records the messages of `socket` until the run stops.
async fn read<S>(
    run: &Run,
    receipts: &mut Receipts,
    mut socket: WebSocketStream<S>,
) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let frame = tokio::select! {
            () = run.stop.cancelled() => return Ok(()),
            frame = socket.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => match serde_json::from_str(&text)? {
                ServerFrame::<Seen>::Message { message } => run.receive(receipts, &message),
                ServerFrame::Reset { .. } => receipts.resets += 1,
                ServerFrame::Error { error } => bail!("the server refused a frame: {error}"),
                ServerFrame::Close { code, reason } => bail!("the server closed: {code} {reason}"),
            },
            Some(Ok(Message::Close(close))) => bail!("the server closed the socket: {close:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the connection ended"),
        }
    }
}

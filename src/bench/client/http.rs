//! One HTTP/1.1 connection, kept alive, as a browser keeps one per poller.
//!
//! This is hyper's connection-level client, not a pooled one: the bench wants to own
//! the connection, count its bytes at the socket and know that every request of a
//! poller rides the same TCP connection (which is what HTTP/1.1 keep-alive does, and
//! what the teaching note's "every poll opens a TCP connection" gets wrong).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;

use crate::bench::wire::{self, Wire};

/// An open keep-alive connection to the server.
pub struct HttpConnection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpConnection {
    /// Connects (as client number `index`, see [`wire::connect`]) and completes the
    /// HTTP/1.1 handshake; a task drives the connection until it is dropped.
    pub async fn open(server: SocketAddr, index: usize, wire: &Arc<Wire>) -> anyhow::Result<Self> {
        let stream = wire::connect(server, index, wire)
            .await
            .with_context(|| format!("cannot connect to {server}"))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; either way the
            // next request on `sender` reports it.
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: server.to_string(),
        })
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        json: Option<String>,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if json.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = Full::new(json.map(Bytes::from).unwrap_or_default());
        self.sender.ready().await?;
        Ok(self.sender.send_request(request.body(body)?).await?)
    }

    /// `GET path`, expecting a 200, and its whole body.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Bytes> {
        let response = self.send(Method::GET, path, None).await?;
        body_if(StatusCode::OK, response).await
    }

    /// `POST path` with a JSON body, expecting a 201, and the answer's body.
    pub async fn post(&mut self, path: &str, json: String) -> anyhow::Result<Bytes> {
        let response = self.send(Method::POST, path, Some(json)).await?;
        body_if(StatusCode::CREATED, response).await
    }
}

/// The body of `response` if its status is `expected`, else an error quoting it.
async fn body_if(expected: StatusCode, response: Response<Incoming>) -> anyhow::Result<Bytes> {
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != expected {
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

//! What every handler shares: [`AppState`], and the client's address that the accept
//! loop attaches to every request.
//!
//! This module sits below every handler and imports none of them: the transports, the
//! API and the server loop all look down at it, so there is no import circle between
//! the crate root, the router and the handlers.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::host::HostPolicy;
use crate::hub::{Hub, StoreError};
use crate::lab::Lab;
use crate::limits::{ConnectionCaps, PublishRate, Stalls};
use crate::origin::OriginPolicy;
use crate::presence::Presence;
use crate::quic::certificate::DevCertificate;
use crate::server::IdleConnections;
use crate::stats::{ByHttp, Stats, TcpConnections};
use crate::tap::Taps;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot make the WebTransport certificate: {0}")]
    Certificate(#[from] wtransport::tls::error::InvalidSan),
}

/// What every handler shares.
pub struct AppState {
    pub config: Config,
    pub hub: Hub,
    pub stats: Stats,
    pub presence: Presence,
    pub publish_rate: PublishRate,
    pub caps: ConnectionCaps,
    pub origins: OriginPolicy,
    pub hosts: Arc<HostPolicy>,
    /// Open connections waiting for a request.
    pub idle: Arc<IdleConnections>,
    /// Cancelled when the server begins shutting down: held long polls answer, SSE
    /// streams end and WebSockets close with 1001.
    pub shutdown: CancellationToken,
    /// Upgraded WebSockets, which outlive their HTTP request: shutdown waits for them
    /// to send their close frame.
    pub sockets: TaskTracker,
    /// Connections cut because their client stopped reading.
    pub stalls: Stalls,
    /// The wire taps clients have open (see [`crate::tap`]).
    pub taps: Arc<Taps>,
    /// The faults pages inject into their own connections (see [`crate::lab`]).
    pub lab: Arc<Lab>,
    /// With `--webtransport`: the certificate the QUIC listener serves.
    pub webtransport: Option<DevCertificate>,
    /// TCP connections, by the HTTP they speak.
    pub connections: ByHttp<TcpConnections>,
}

impl AppState {
    /// Opens the store `--store` names; fails, naming it, if it cannot be reached. With
    /// `--webtransport`, makes the certificate.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        let webtransport = match config.webtransport {
            true => Some(DevCertificate::new(config.addr.ip())?),
            false => None,
        };
        Ok(Self {
            hub: Hub::open(
                &config.store,
                config.history as usize,
                config.max_rooms as usize,
            )
            .await?,
            stats: Stats::default(),
            presence: Presence::default(),
            publish_rate: PublishRate::new(&config),
            caps: ConnectionCaps::new(&config),
            origins: OriginPolicy::new(&config.allow_origins),
            hosts: Arc::new(HostPolicy::new(&config)),
            idle: Arc::new(IdleConnections::new(&config)),
            shutdown: CancellationToken::new(),
            sockets: TaskTracker::new(),
            stalls: Stalls::default(),
            taps: Arc::new(Taps::new(config.wire_tap, config.addr.ip().is_loopback())),
            lab: Arc::new(Lab::new(
                config.fault_lab.is_on(config.addr.ip().is_loopback()),
            )),
            webtransport,
            connections: ByHttp::default(),
            config,
        })
    }
}

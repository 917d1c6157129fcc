//! HTTPS (`--tls`): the certificate, and the TLS handshake that chooses between
//! HTTP/2 and HTTP/1.1.
//!
//! Browsers speak HTTP/2 only over TLS, and they choose it inside the TLS handshake:
//! the client lists the protocols it speaks (ALPN, RFC 7301: `h2`, `http/1.1`) and the
//! server picks one. So one `--tls` port serves both, decided per connection:
//!
//! ```text
//! ClientHello  ALPN: h2, http/1.1     →
//!                                     ←  ServerHello  ALPN: h2
//! PRI * HTTP/2.0 … SETTINGS, HEADERS (stream 1), HEADERS (stream 3) …  one TCP connection
//! ```
//!
//! What HTTP/2 changes for pushing is the subject of docs/comparison.md: every SSE
//! stream, long poll and (RFC 8441) WebSocket of a page is a *stream* on one connection
//! instead of a connection each, and HPACK sends a poll's repeated headers as a few
//! bytes of table references.
//!
//! Without `--tls-cert`/`--tls-key`, a certificate is made at start for the listen
//! address, `localhost`, `127.0.0.1` and `::1`, signed by its own key: nobody vouches
//! for it, so browsers warn once, and the SHA-256 fingerprint printed at start lets
//! the user check that the certificate the browser shows is this server's.
//!
//! The handshake counts in the time a new connection has to send its first request
//! (`--header-timeout`): a client that connects and then says nothing, or sends its
//! hello a byte at a time, is cut off like one that is slow to send its headers.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::Config;
use crate::stats::HttpVersion;

/// The ALPN names of the protocols served, in the server's order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why TLS could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {error}")]
    Pem {
        path: String,
        error: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    #[error("the certificate and key cannot be served: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What serving HTTPS needs: the TLS configuration, and the certificate's fingerprint.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    fingerprint: String,
    self_signed: bool,
}

impl Tls {
    /// `None` without `--tls`; otherwise the given certificate, or a self-signed one.
    pub fn from_config(config: &Config) -> Result<Option<Self>, TlsError> {
        if !config.serves_tls() {
            return Ok(None);
        }
        let (chain, key, self_signed) = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => (read_chain(cert)?, read_key(key)?, false),
            _ => {
                let (chain, key) = self_signed(config.addr.ip())?;
                (chain, key, true)
            }
        };
        let fingerprint = fingerprint(&chain[0]);
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            fingerprint,
            self_signed,
        }))
    }

    /// The served certificate's SHA-256 fingerprint, as browsers show it (`AB:CD:…`).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the certificate was made at start (browsers will warn about it).
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// Runs the TLS handshake on an accepted connection and says which HTTP the
    /// client and server agreed on. A client that offers no ALPN (curl --http1.1, old
    /// tools) gets HTTP/1.1. The caller bounds its time.
    pub async fn handshake<IO>(&self, io: IO) -> io::Result<(TlsStream<IO>, HttpVersion)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self.acceptor.accept(io).await?;
        let version = match stream.get_ref().1.alpn_protocol() {
            Some(b"h2") => HttpVersion::Http2,
            _ => HttpVersion::Http1,
        };
        Ok((stream, version))
    }
}

/// The names a development certificate is made for: `ip` (unless it is a wildcard like
/// 0.0.0.0), `localhost` and the loopback addresses.
pub fn self_signed_names(ip: IpAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        Ipv4Addr::LOCALHOST.to_string(),
        Ipv6Addr::LOCALHOST.to_string(),
    ];
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    names
}

/// A certificate for [`self_signed_names`], signed by a key made for it now.
fn self_signed(
    ip: IpAddr,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let mut params = rcgen::CertificateParams::new(self_signed_names(ip))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pushlab (self-signed)");
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::Rustls(rustls::Error::General(format!("the generated key: {e}"))))?;
    Ok((vec![cert.der().clone()], key))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |error| TlsError::Pem {
        path: path.display().to_string(),
        error,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| TlsError::Pem {
        path: path.display().to_string(),
        error,
    })
}

/// SHA-256 of the certificate's DER bytes, as colon-separated hex pairs.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let mut hex = String::with_capacity(95);
    for (i, byte) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            hex.push(':');
        }
        let _ = write!(hex, "{byte:02X}");
    }
    hex
}

/// The URL scheme for a listener: `https` with TLS, else `http`.
pub fn scheme(tls: Option<&Tls>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}

/// The cryptography pushlab uses (ring), for servers and clients alike.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client configuration that trusts exactly one certificate, the one with this
/// SHA-256 `fingerprint` (as [`Tls::fingerprint`] prints it), and offers `alpn`. For
/// clients of a server with a self-signed certificate: the bench and the tests.
pub fn pinned_client(fingerprint: &str, alpn: &[&[u8]]) -> ClientConfig {
    let verifier = Pinned {
        fingerprint: fingerprint.to_owned(),
        algorithms: provider().signature_verification_algorithms,
    };
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    client
}

/// Trusts the certificate with one fingerprint, and checks the handshake's signatures
/// against it as any verifier would.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(CertificateError::ApplicationVerificationFailure.into())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

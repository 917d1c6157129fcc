//! The development certificate WebTransport needs, and its renewal.
//!
//! QUIC always runs TLS 1.3, so a WebTransport server needs a certificate even on
//! loopback. A certificate nobody vouches for can still be used from a page: the page
//! passes the certificate's SHA-256 hash in `serverCertificateHashes`, and the browser
//! accepts exactly that certificate, on conditions Chromium enforces (W3C WebTransport,
//! "custom certificate requirements"):
//!
//! - the key is ECDSA on P-256 (secp256r1);
//! - the whole validity period is at most 14 days, and now is inside it.
//!
//! So the server makes such a certificate at start, serves its hash at
//! `GET /api/webtransport/certificate-hash` (the page asks each time it connects), and
//! makes a new one halfway through its life ([`RENEW_AFTER`]): a page that connects
//! after that gets the new hash, a session already open keeps its connection.

use std::net::IpAddr;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;
use wtransport::Identity;
use wtransport::tls::error::InvalidSan;

/// How long a certificate is valid: the most Chromium accepts with
/// `serverCertificateHashes`.
pub const VALIDITY_DAYS: u32 = 14;

/// When a certificate is replaced: halfway, so that one is never close to expiring.
pub const RENEW_AFTER: Duration = Duration::from_secs(VALIDITY_DAYS as u64 * 24 * 3600 / 2);

/// The self-signed certificate served now, replaced by [`DevCertificate::renew`].
pub struct DevCertificate {
    names: Vec<String>,
    current: RwLock<Current>,
}

struct Current {
    identity: Identity,
    hash: CertificateHash,
}

/// What the page needs for `serverCertificateHashes` (`GET
/// /api/webtransport/certificate-hash`).
#[derive(Debug, Clone, Serialize)]
pub struct CertificateHash {
    /// Always `sha-256`, the one algorithm browsers take.
    pub algorithm: &'static str,
    /// The hash of the certificate's DER bytes, as 64 hexadecimal digits.
    pub value: String,
    /// When this certificate stops being valid (a new one is served well before).
    pub not_after: DateTime<Utc>,
}

impl DevCertificate {
    /// A certificate for `ip` (unless it is a wildcard like 0.0.0.0), `localhost` and
    /// the loopback addresses.
    pub fn new(ip: IpAddr) -> Result<Self, InvalidSan> {
        let names = crate::tls::self_signed_names(ip);
        let current = RwLock::new(make(&names)?);
        Ok(Self { names, current })
    }

    /// The certificate and key to serve now.
    pub fn identity(&self) -> Identity {
        self.read().identity.clone_identity()
    }

    /// The hash of the certificate served now.
    pub fn hash(&self) -> CertificateHash {
        self.read().hash.clone()
    }

    /// Makes a new certificate; it is served from now on (see [`Self::identity`]).
    pub fn renew(&self) -> Result<(), InvalidSan> {
        let fresh = make(&self.names)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// An ECDSA P-256 certificate valid from now for [`VALIDITY_DAYS`] (what `wtransport`'s
/// builder makes), with its hash.
fn make(names: &[String]) -> Result<Current, InvalidSan> {
    let identity = Identity::self_signed_builder()
        .subject_alt_names(names)
        .from_now_utc()
        .validity_days(VALIDITY_DAYS)
        .build()?;
    let digest = identity.certificate_chain().as_slice()[0].hash();
    let value = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let not_after = SystemTime::now() + Duration::from_secs(u64::from(VALIDITY_DAYS) * 24 * 3600);
    Ok(Current {
        identity,
        hash: CertificateHash {
            algorithm: "sha-256",
            value,
            not_after: not_after.into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_renewed_certificate_has_a_new_hash() {
        let certificate = DevCertificate::new(Ipv4Addr::LOCALHOST.into()).unwrap();
        let before = certificate.hash();
        assert_eq!(before.value.len(), 64);
        certificate.renew().unwrap();
        assert_ne!(certificate.hash().value, before.value);
    }

    #[test]
    fn it_is_renewed_long_before_it_expires() {
        let certificate = DevCertificate::new(Ipv4Addr::LOCALHOST.into()).unwrap();
        let left = certificate.hash().not_after - Utc::now();
        assert!(left.to_std().unwrap() > RENEW_AFTER + Duration::from_secs(24 * 3600));
    }
}

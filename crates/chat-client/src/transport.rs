//! How the client reaches the server: plain TCP, or TLS over it ([`Connector`]), and
//! whether a connection may carry a password ([`Secure`]).
//!
//! With TLS the server's certificate is checked against the system's trusted roots, or
//! against exactly the certificates of a PEM file (`--ca-cert`, for a self-signed
//! server). The name checked is the host part of the address unless one is given
//! (`--tls-name`); an IP address is checked as an address. A certificate that does not
//! verify ends the attempt with [`ClientError::Tls`]: the client never falls back to
//! plain TCP.
//!
//! rustls is built with only the ring provider, so the configuration names it
//! explicitly instead of relying on a process-wide default provider.

use crate::error::ClientError;
use chat_proto::LineEof;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// Where the server listens for TLS unless told otherwise: the plain port plus one.
pub const DEFAULT_TLS_ADDR: &str = "127.0.0.1:55556";

/// A connection to the server, plain or encrypted.
pub type ServerStream = Either<TcpStream, TlsConnection>;

/// A TLS connection to the server: a peer's close without TLS's close notification at
/// a line boundary ends the stream as a plain close does ([`LineEof`]).
pub type TlsConnection = LineEof<TlsStream<TcpStream>>;

/// Whether a password may cross a connection: it is encrypted, or it never leaves this
/// machine (loopback). The server applies the same rule before it asks for one.
pub trait Secure {
    /// Whether a password may be sent over this connection.
    fn is_secure(&self) -> bool;
}

impl Secure for TcpStream {
    fn is_secure(&self) -> bool {
        self.peer_addr()
            .is_ok_and(|addr| addr.ip().to_canonical().is_loopback())
    }
}

impl Secure for TlsConnection {
    fn is_secure(&self) -> bool {
        true
    }
}

/// An in-process pipe never leaves the process.
impl Secure for DuplexStream {
    fn is_secure(&self) -> bool {
        true
    }
}

impl<L: Secure, R: Secure> Secure for Either<L, R> {
    fn is_secure(&self) -> bool {
        match self {
            Either::Left(stream) => stream.is_secure(),
            Either::Right(stream) => stream.is_secure(),
        }
    }
}

/// Which certificates a TLS connection trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's trusted roots (a server with a certificate from a public authority).
    System,
    /// Exactly the certificates in this PEM file (for example a self-signed server's own
    /// certificate, from `chat-server gen-cert`).
    File(PathBuf),
}

/// How to open a connection to the server: its address, the time allowed, and TLS if
/// asked for. Cheap to clone; `--reconnect` connects again with the same one.
#[derive(Clone)]
pub struct Connector {
    /// `host:port`, as given.
    addr: String,
    /// Bound on connecting, TLS handshake included.
    timeout: Duration,
    /// The TLS configuration and the name to verify, if TLS is used.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .finish()
    }
}

impl Connector {
    /// Plain TCP to `addr` (`host:port`).
    pub fn plain(addr: impl Into<String>, timeout: Duration) -> Connector {
        Connector {
            addr: addr.into(),
            timeout,
            tls: None,
        }
    }

    /// TLS to `addr`, trusting `trust`, verifying the certificate for `name`, or for the
    /// host part of `addr` if `None`.
    pub fn tls(
        addr: impl Into<String>,
        timeout: Duration,
        trust: &Trust,
        name: Option<&str>,
    ) -> Result<Connector, ClientError> {
        let addr = addr.into();
        let name = name.unwrap_or_else(|| host(&addr));
        let server_name =
            ServerName::try_from(name.to_owned()).map_err(|_| ClientError::TlsName {
                name: chat_proto::text::escape_controls(name).into_owned(),
            })?;
        let roots = match trust {
            Trust::System => system_roots()?,
            Trust::File(path) => file_roots(path)?,
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::TlsSetup {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Connector {
            addr,
            timeout,
            tls: Some((TlsConnector::from(Arc::new(config)), server_name)),
        })
    }

    /// The server's address, as given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether connections are made with TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connects, and with TLS does the handshake, all within the timeout.
    pub async fn connect(&self) -> Result<ServerStream, ClientError> {
        let tcp = crate::connect(&self.addr, self.timeout).await?;
        let Some((connector, name)) = &self.tls else {
            return Ok(Either::Left(tcp));
        };
        match tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp)).await {
            Ok(Ok(stream)) => Ok(Either::Right(LineEof::new(stream))),
            Ok(Err(e)) => Err(ClientError::Tls {
                addr: self.addr.clone(),
                reason: handshake_failure(&e),
            }),
            Err(_) => Err(ClientError::Timeout {
                waiting_for: "the TLS handshake",
                after: self.timeout,
            }),
        }
    }
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
fn host(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(host, _)| host);
    }
    match addr.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address.
        Some((host, _)) if !host.contains(':') => host,
        _ => addr,
    }
}

/// Why a TLS handshake failed, in one line; with a hint when the certificate is from an
/// unknown authority, which is how a self-signed server looks.
fn handshake_failure(error: &io::Error) -> String {
    let rustls_error = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    let hint = match rustls_error {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            " (for a server with a self-signed certificate, trust that certificate with --ca-cert FILE)"
        }
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        )) => " (give a name it is valid for with --tls-name NAME)",
        // Plain text where a TLS record should be.
        Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
            " (is this the server's TLS address? chat-server serves TLS on its --tls-addr)"
        }
        _ => "",
    };
    let reason = match rustls_error {
        Some(e) => e.to_string(),
        None => error.to_string(),
    };
    format!("{}{hint}", chat_proto::text::escape_controls(&reason))
}

/// The system's trusted roots; an error if there are none at all.
fn system_roots() -> Result<RootCertStore, ClientError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let mut reason = "none found".to_owned();
        if let Some(e) = found.errors.first() {
            reason = e.to_string();
        }
        return Err(ClientError::TlsSetup {
            reason: format!(
                "cannot load the system's trusted certificates ({reason}); give the server's certificate with --ca-cert FILE"
            ),
        });
    }
    Ok(roots)
}

/// Every certificate in the PEM file at `path`; an error if there is none.
fn file_roots(path: &Path) -> Result<RootCertStore, ClientError> {
    let failed = |reason: String| ClientError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(format!("not a valid PEM file: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| failed(format!("not a usable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(failed(
            "no certificate in it (no PEM \"BEGIN CERTIFICATE\" block)".to_owned(),
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_an_address() {
        assert_eq!(host("127.0.0.1:55556"), "127.0.0.1");
        assert_eq!(host("chat.example.org:55556"), "chat.example.org");
        assert_eq!(host("[::1]:55556"), "::1");
        assert_eq!(host("localhost"), "localhost");
        assert_eq!(host("::1"), "::1");
    }

    #[test]
    fn an_address_is_verified_as_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let trust = Trust::File(ca);
        let timeout = Duration::from_secs(1);
        let by_ip = Connector::tls("127.0.0.1:1", timeout, &trust, None).unwrap();
        assert!(matches!(&by_ip.tls, Some((_, ServerName::IpAddress(_)))));
        let by_name = Connector::tls("[::1]:1", timeout, &trust, Some("localhost")).unwrap();
        assert!(matches!(&by_name.tls, Some((_, ServerName::DnsName(_)))));
        let bad = Connector::tls("127.0.0.1:1", timeout, &trust, Some("not a name"));
        assert!(matches!(bad, Err(ClientError::TlsName { .. })));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let timeout = Duration::from_secs(1);
        for path in [empty, dir.path().join("missing.pem")] {
            let trust = Trust::File(path.clone());
            let err = Connector::tls("127.0.0.1:1", timeout, &trust, None).unwrap_err();
            assert!(
                matches!(&err, ClientError::CaFile { path: p, .. } if *p == path),
                "{err}"
            );
        }
    }
}

//! TLS for the server: the certificate chain and key an operator gives (`--tls-cert`,
//! `--tls-key`) turned into a [`TlsAcceptor`], and a self-signed pair for a first try
//! (`chat-server gen-cert`, and the tests).
//!
//! rustls is built with only the ring provider, so every configuration names it
//! explicitly instead of relying on a process-wide default provider.

use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Where the server listens for TLS unless told otherwise: the plain port plus one.
pub const DEFAULT_TLS_ADDR: &str = "127.0.0.1:55556";

/// The names a self-signed certificate is for when none are given: this machine, by
/// name and by both loopback addresses.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// File names that `gen-cert` writes in its output directory.
pub const CERT_FILE: &str = "cert.pem";
/// See [`CERT_FILE`].
pub const KEY_FILE: &str = "key.pem";

/// Why TLS could not be set up. Each names the file at fault, in one line.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("{} is not a valid PEM file", .path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no certificate (no PEM \"BEGIN CERTIFICATE\" block)", .path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("{} holds no private key (no PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block)", .path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the pair: the key does not match the certificate, or either is of
    /// a kind it does not support.
    #[error("cannot use the certificate in {} with the key in {}", .cert.display(), .key.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// A name for a certificate is neither a DNS name nor an IP address.
    #[error("{name:?} is neither a DNS name nor an IP address")]
    BadName {
        /// The name as given.
        name: String,
    },
    /// rcgen could not make a certificate.
    #[error("cannot generate a self-signed certificate")]
    Generate(#[source] rcgen::Error),
    /// `gen-cert` would overwrite a file, and was not told to.
    #[error("{} already exists (use --force to overwrite it)", .path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// `gen-cert` could not write a file.
    #[error("cannot write {}", .path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// An acceptor serving the certificate chain in the PEM file `cert` (the server's
/// certificate first, then any intermediates) with the private key in the PEM file `key`
/// (PKCS#8, PKCS#1 or SEC1).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = load_chain(cert)?;
    let private_key = load_key(key)?;
    let rejected = |source| TlsError::Rejected {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(rejected)?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(rejected)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Reads a whole file, the error naming it.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in the PEM file at `path`, in order; at least one.
fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// The first private key in the PEM file at `path`.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        source => TlsError::Pem {
            path: path.to_owned(),
            source,
        },
    })
}

/// A new self-signed certificate for `names` (DNS names or IP addresses) and its key,
/// both as PEM: `(certificate, key)`. For a first try and for tests: clients must be
/// told to trust this very certificate (`chat-client --tls --ca-cert cert.pem`).
pub fn self_signed(names: &[String]) -> Result<(String, String), TlsError> {
    // rcgen takes any ASCII as a DNS name; a client would never match a bad one.
    if let Some(bad) = names
        .iter()
        .find(|name| ServerName::try_from(name.as_str()).is_err())
    {
        return Err(TlsError::BadName { name: bad.clone() });
    }
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(TlsError::Generate)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "chat-server (self-signed)");
    let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a new [`self_signed`] pair for `names` into `dir` (created if need be) as
/// [`CERT_FILE`] and [`KEY_FILE`], the key readable by its owner only, and returns their
/// paths. Refuses to overwrite either file unless `force`; then nothing is written.
pub fn write_self_signed(
    dir: &Path,
    names: &[String],
    force: bool,
) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if !force {
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(TlsError::Exists { path: path.clone() });
            }
        }
    }
    let (cert, key) = self_signed(names)?;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    write_file(&cert_path, &cert, 0o644, force)?;
    write_file(&key_path, &key, 0o600, force)?;
    Ok((cert_path, key_path))
}

/// Writes `text` to `path` with unix permissions `mode`; an existing file is an error
/// unless `overwrite` (so that a race with another writer cannot clobber a file).
fn write_file(path: &Path, text: &str, mode: u32, overwrite: bool) -> Result<(), TlsError> {
    let failed = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file: File = options.open(path).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => TlsError::Exists {
            path: path.to_owned(),
        },
        _ => failed(source),
    })?;
    // An existing file keeps its old mode when opened: set it, before the key goes in.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(failed)?;
    }
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        DEFAULT_NAMES.iter().map(|n| n.to_string()).collect()
    }

    /// The error `acceptor` gives; a panic if it succeeds.
    fn refused(cert: &Path, key: &Path) -> TlsError {
        match acceptor(cert, key) {
            Ok(_) => panic!("{} and {} were accepted", cert.display(), key.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn a_self_signed_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_self_signed(dir.path(), &names(), false).unwrap();
        assert!(acceptor(&cert, &key).is_ok());
    }

    #[test]
    fn existing_files_are_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_self_signed(dir.path(), &names(), false).unwrap();
        let before = std::fs::read(&key).unwrap();
        let err = write_self_signed(dir.path(), &names(), false).unwrap_err();
        assert!(
            matches!(&err, TlsError::Exists { path } if *path == cert),
            "{err}"
        );
        assert_eq!(std::fs::read(&key).unwrap(), before);
        write_self_signed(dir.path(), &names(), true).unwrap();
        assert_ne!(std::fs::read(&key).unwrap(), before);
    }

    #[cfg(unix)]
    #[test]
    fn the_key_is_private_even_when_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join(KEY_FILE);
        std::fs::write(&key, "old").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_self_signed(dir.path(), &names(), true).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_self_signed(dir.path(), &names(), false).unwrap();
        let missing = dir.path().join("missing.pem");
        let err = refused(&missing, &key);
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        // Given the other way round: the key file holds no certificate, and the
        // certificate file no key.
        let err = refused(&key, &cert);
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        let err = refused(&cert, &cert);
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
        let err = refused(&garbage, &key);
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
    }

    #[test]
    fn names_must_be_dns_names_or_addresses() {
        let err = self_signed(&["bad name!".to_owned()]).unwrap_err();
        assert!(matches!(err, TlsError::BadName { .. }), "{err}");
        assert!(self_signed(&["chat.example.org".to_owned(), "192.0.2.1".to_owned()]).is_ok());
    }

    #[test]
    fn a_key_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_self_signed(dir.path(), &names(), false).unwrap();
        let other = tempfile::tempdir().unwrap();
        let (_, key) = write_self_signed(other.path(), &names(), false).unwrap();
        let err = refused(&cert, &key);
        assert!(matches!(err, TlsError::Rejected { .. }), "{err}");
    }
}

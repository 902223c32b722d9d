//! Why a client session ended badly. Each variant is one line for the user; the binary
//! prints it as `chat-client: error: ...` and exits non-zero.

use chat_proto::ErrorCode;
use std::io;
use std::time::Duration;

/// A session that did not end with the user's `/quit` or a confirmed end of input.
///
/// Text that came from the server (reasons, error text) is already escaped with
/// [`chat_proto::text::escape_controls`], so printing an error is always safe.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be made (refused, unreachable, bad address).
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address as given.
        addr: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The server did not answer in time.
    #[error("no answer from the server within {after:?} while waiting for {waiting_for}")]
    Timeout {
        /// What the client was waiting for.
        waiting_for: &'static str,
        /// The limit in force.
        after: Duration,
    },
    /// Reading from or writing to the server failed (for example a reset connection).
    #[error("connection to the server lost")]
    Io(#[from] io::Error),
    /// The server closed the connection without a `BYE` while the client still needed it.
    #[error("the server closed the connection")]
    Closed,
    /// The server said `BYE` although the client had not quit (shutdown, handshake
    /// timeout, server full).
    #[error("the server closed the connection: {reason}")]
    Bye {
        /// The server's reason, escaped.
        reason: String,
    },
    /// The nickname was refused: invalid, or taken. The connection is still usable for
    /// another [`crate::Connection::register`].
    #[error("nickname {nick:?} refused: {code}: {text}")]
    NickRefused {
        /// The nickname that was tried.
        nick: String,
        /// Why, as an error code (`NICK_TAKEN`, `NICK_INVALID`, ...), escaped.
        code: ErrorCode,
        /// Why, for people, escaped.
        text: String,
    },
    /// The TLS handshake failed: most often the server's certificate did not verify.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// The address as given.
        addr: String,
        /// Why, in one line (rustls's reason, with a hint when there is one).
        reason: String,
    },
    /// The name to verify the server's certificate for is not a DNS name or an address.
    #[error("{name:?} is not a server name TLS can verify (give one with --tls-name)")]
    TlsName {
        /// The name, escaped.
        name: String,
    },
    /// The TLS configuration could not be made (for example, no trusted roots).
    #[error("cannot set up TLS: {reason}")]
    TlsSetup {
        /// Why.
        reason: String,
    },
    /// The file of certificates to trust (`--ca-cert`) is unreadable or holds none.
    #[error("cannot use {} as the certificates to trust: {reason}", .path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The nickname is registered and the server asks for its password, but the client
    /// has none. The connection stays usable: [`crate::Connection::identify`] sends one.
    #[error(
        "nickname {nick} is registered and the server asks for its password: give it with --password-file FILE or the CHAT_PASSWORD environment variable"
    )]
    PasswordNeeded {
        /// The nickname.
        nick: String,
    },
    /// The server refused the password (`PASSWORD_WRONG`, or another error).
    #[error("password for {nick} refused: {code}: {text}")]
    PasswordRefused {
        /// The nickname.
        nick: String,
        /// Why, as an error code, escaped.
        code: ErrorCode,
        /// Why, for people, escaped.
        text: String,
    },
    /// The server asked for the password over a connection that is neither encrypted nor
    /// local; the client did not send it.
    #[error(
        "the server asks for the password of {nick} over an unencrypted connection; not sent (connect with --tls)"
    )]
    InsecurePassword {
        /// The nickname.
        nick: String,
    },
    /// Showing a line failed (for example standard output was closed).
    #[error("cannot write the output")]
    Output(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// With `--reconnect`, every attempt to reconnect failed.
    #[error("gave up reconnecting after {attempts} attempts")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// Why the last one failed.
        #[source]
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// Whether the connection was lost while the client still wanted it (closed,
    /// broken, or ended by the server with `BYE`), so that reconnecting makes sense.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            ClientError::Closed | ClientError::Io(_) | ClientError::Bye { .. }
        )
    }

    /// Whether the password was missing or refused: trying again with the same one is
    /// pointless, even after reconnecting.
    pub fn is_password_problem(&self) -> bool {
        matches!(
            self,
            ClientError::PasswordNeeded { .. }
                | ClientError::PasswordRefused { .. }
                | ClientError::InsecurePassword { .. }
        )
    }

    /// Whether the user could try again with another nickname on the same connection.
    pub fn is_nick_refused(&self) -> bool {
        matches!(self, ClientError::NickRefused { .. })
    }
}

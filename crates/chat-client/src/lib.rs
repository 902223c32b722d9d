//! The chat client as a library: the `chat-client` binary only parses flags, wires the
//! terminal (or standard input and output, when they are not a terminal) to [`run`]'s
//! input stream and output sink, and prints errors. Tests drive the same code with
//! channels instead of a terminal.
//!
//! - [`Connection`]: the handshake ([`Connection::register`]) and the `select!` loop
//!   over the socket and the user's input ([`Connection::chat`]).
//! - [`state`]: what the frames tell about the session (rooms, members, current room).
//! - [`render`]: how each frame from the server is shown, control characters escaped,
//!   optionally in colour.
//! - [`terminal`]: the terminal as an input stream (a line editor with history and Tab
//!   completion, see [`editor`] and [`complete`]) and an output sink that prints above
//!   the line being typed.
//! - [`reconnect`]: `--reconnect`, a new connection after a lost one.
//! - [`transport`]: plain TCP or TLS ([`Connector`]), and which connections may carry a
//!   password ([`Secure`]).
//! - [`ClientError`]: every way a session can end badly, one line each.
//!
//! At the end of input the client sends `/ping`, waits for the matching `PONG` (the
//! server sends it after everything earlier lines caused, echoes included), then
//! `/quit`; so a script's every line has been handled when the client exits.

pub mod complete;
mod connection;
pub mod editor;
mod error;
mod input;
pub mod reconnect;
pub mod render;
pub mod state;
pub mod terminal;
pub mod transport;

pub use connection::Connection;
pub use error::ClientError;
pub use reconnect::{Backoff, chat_reconnecting};
pub use transport::{Connector, Secure, ServerStream, Trust};

use chat_proto::Password;
use futures::{Sink, Stream};
use jiff::tz::TimeZone;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long the client waits for the server by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct Options {
    /// The nickname to register.
    pub nick: String,
    /// Bound on every wait for the server: the handshake, the `PONG` at the end of input,
    /// the `BYE` after `/quit`, and connecting.
    pub timeout: Duration,
    /// Time zone in which event times are shown.
    pub time_zone: TimeZone,
    /// Whether to show colours (ANSI escape sequences) in what is shown.
    pub color: bool,
    /// The password to answer the server's `PASS` prompt with, if the nickname is
    /// registered; also used again when reconnecting. Its `Debug` form hides it.
    pub password: Option<Password>,
}

impl Options {
    /// Options for `nick`, with the default timeout, the system's time zone and no
    /// colours.
    pub fn new(nick: impl Into<String>) -> Options {
        Options {
            nick: nick.into(),
            timeout: DEFAULT_TIMEOUT,
            time_zone: TimeZone::system(),
            color: false,
            password: None,
        }
    }

    /// The renderer these options ask for.
    pub fn renderer(&self) -> render::Renderer {
        render::Renderer::new(self.time_zone.clone(), self.color)
    }
}

/// How a session ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The user typed `/quit` and the server said goodbye.
    Quit,
    /// The input ended, the server confirmed every line sent, and the client quit.
    EndOfInput,
}

/// Registers `opts.nick` on `conn`, then sends each line of `input` and shows each
/// frame from the server on `output`, until `/quit` or the end of `input`.
///
/// A refused nickname is an error ([`ClientError::NickRefused`]), and so is a `PASS`
/// prompt without `opts.password` ([`ClientError::PasswordNeeded`]); to ask the user
/// for another nickname or for the password, use [`Connection`] directly.
pub async fn run<S, I, O>(
    conn: S,
    opts: Options,
    input: I,
    output: O,
) -> Result<Outcome, ClientError>
where
    S: AsyncRead + AsyncWrite + Secure,
    I: Stream<Item = String>,
    O: Sink<String>,
    O::Error: std::error::Error + Send + Sync + 'static,
{
    let mut connection = Connection::new(conn, &opts);
    connection.register(&opts.nick).await?;
    connection.chat(input, output).await
}

/// Connects to `addr` (`host:port`) within `timeout`, with Nagle's algorithm off so
/// that each typed line leaves at once.
pub async fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            return Err(ClientError::Connect {
                addr: addr.to_owned(),
                source,
            });
        }
        Err(_) => {
            return Err(ClientError::Timeout {
                waiting_for: "the connection to be made",
                after: timeout,
            });
        }
    };
    // Only latency is at stake; a failure here is not worth ending the session for.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

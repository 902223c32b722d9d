//! `--reconnect`: when the connection drops, connect again with exponential backoff (over
//! TLS if the first connection was), register the same nickname (with the same password
//! if it is registered), join the same rooms and make the same room current. A password
//! that is missing or refused ends the session: trying again would not help.
//!
//! Between attempts the user's input is still read: `/quit` (or Ctrl-C) leaves at once,
//! and other lines are kept (up to [`MAX_QUEUED`]) and sent once reconnected, so piped
//! input works with `--reconnect` too. What happens is said on the output:
//! `-- reconnecting in 0.5s...`, `-- reconnected`.

use crate::connection::Connection;
use crate::error::ClientError;
use crate::input::{Typed, classify};
use crate::state::SharedState;
use crate::transport::{Connector, ServerStream};
use crate::{Options, Outcome};
use futures::stream::{self, FusedStream};
use futures::{Sink, SinkExt, Stream, StreamExt};
use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;
use tokio::time::Instant;

/// Lines typed while disconnected that are kept for the next connection.
pub const MAX_QUEUED: usize = 100;

/// A connection that lasted this long was a good one: the backoff starts afresh after
/// it drops. One that drops sooner continues the backoff, so a server that accepts and
/// hangs up at once is not hammered.
const STABLE: Duration = Duration::from_secs(30);

/// How long to wait before each attempt to reconnect, and how many to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first attempt.
    pub first: Duration,
    /// The longest wait; each wait doubles until it reaches this.
    pub max: Duration,
    /// How many attempts in a row may fail before the client gives up.
    pub attempts: u32,
}

impl Default for Backoff {
    /// 0.5 s doubling up to 30 s, 10 attempts: about two and a half minutes in all.
    fn default() -> Backoff {
        Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
            attempts: 10,
        }
    }
}

impl Backoff {
    /// The wait before attempt number `retry` (counted from 0).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// How a wait while disconnected ended.
enum Offline<T> {
    /// What was waited for happened.
    Done(T),
    /// The user quit.
    Quit,
}

/// Runs the chat on `connection` (registered), and when the connection is lost,
/// reconnects with `connector` as described in the module documentation, until the user
/// quits, the input ends and is confirmed, or `backoff.attempts` attempts in a row fail
/// ([`ClientError::GaveUp`]).
pub async fn chat_reconnecting<I, O>(
    connection: Connection<ServerStream>,
    connector: &Connector,
    opts: &Options,
    backoff: &Backoff,
    input: I,
    output: O,
) -> Result<Outcome, ClientError>
where
    I: Stream<Item = String>,
    O: Sink<String>,
    O::Error: std::error::Error + Send + Sync + 'static,
{
    let renderer = opts.renderer();
    let state = connection.state().clone();
    // The same address and transport each time: as secure as the first connection.
    let secure = connection.is_secure();
    let mut input = pin!(input.fuse());
    let mut output = pin!(output);
    let show = |e: O::Error| ClientError::Output(Box::new(e));
    let mut connection = connection;
    let mut queued: Vec<String> = Vec::new();
    let mut retry = 0;
    loop {
        let since = Instant::now();
        let earlier = stream::iter(std::mem::take(&mut queued));
        let result = connection
            .chat(earlier.chain(input.as_mut()), output.as_mut())
            .await;
        let mut lost = match result {
            Err(e) if e.is_connection_lost() => e,
            other => return other,
        };
        // What to restore, taken now: a new WELCOME empties the state.
        state.send_if_modified(|state| state.set_online(false));
        let (nick, rejoin) = {
            let state = state.borrow();
            let nick = state.me().map_or(opts.nick.clone(), |n| n.to_string());
            (nick, state.rejoin_lines())
        };
        if since.elapsed() >= STABLE {
            retry = 0;
        }
        let line = renderer.error(format!("!! connection lost: {}", chain(&lost)));
        output.send(line).await.map_err(show)?;
        connection = loop {
            if retry >= backoff.attempts {
                return Err(ClientError::GaveUp {
                    attempts: retry,
                    last: Box::new(lost),
                });
            }
            let delay = backoff.delay(retry);
            retry += 1;
            let line = format!(
                "-- reconnecting in {}s (attempt {retry} of {})...",
                delay.as_secs_f64(),
                backoff.attempts
            );
            output.send(line).await.map_err(show)?;
            let wait = tokio::time::sleep(delay);
            let io = (input.as_mut(), output.as_mut(), &mut queued);
            let Offline::Done(()) = offline(wait, io, opts, secure).await? else {
                return Ok(Outcome::Quit);
            };
            let attempt = reconnect(connector, opts, &state, &nick, &rejoin);
            let io = (input.as_mut(), output.as_mut(), &mut queued);
            match offline(attempt, io, opts, secure).await? {
                Offline::Quit => return Ok(Outcome::Quit),
                Offline::Done(Ok(connection)) => {
                    let line = if rejoin.is_empty() {
                        format!("-- reconnected as {nick}")
                    } else {
                        format!("-- reconnected as {nick}; joining your rooms again")
                    };
                    output.send(line).await.map_err(show)?;
                    break connection;
                }
                Offline::Done(Err(e)) if e.is_password_problem() => return Err(e),
                Offline::Done(Err(e)) => {
                    let line = renderer.error(format!("!! reconnecting failed: {}", chain(&e)));
                    output.send(line).await.map_err(show)?;
                    lost = e;
                }
            }
        };
    }
}

/// One attempt: connect, register `nick`, send the `rejoin` lines.
async fn reconnect(
    connector: &Connector,
    opts: &Options,
    state: &SharedState,
    nick: &str,
    rejoin: &[String],
) -> Result<Connection<ServerStream>, ClientError> {
    let stream = connector.connect().await?;
    let mut connection = Connection::with_state(stream, opts, state.clone());
    // NICK_TAKEN is likely when the server has not yet noticed that the old connection
    // is gone: it is an error like any other here, and the next attempt tries again.
    connection.register(nick).await?;
    for line in rejoin {
        connection.send(line).await?;
    }
    Ok(connection)
}

/// Waits for `fut` while reading the user's input: `/quit` ends the wait, other lines
/// are queued for the next connection (whose security is `secure`), with a word about
/// it.
async fn offline<T, I, O>(
    fut: impl Future<Output = T>,
    (mut input, mut output, queued): (Pin<&mut I>, Pin<&mut O>, &mut Vec<String>),
    opts: &Options,
    secure: bool,
) -> Result<Offline<T>, ClientError>
where
    I: Stream<Item = String> + FusedStream,
    O: Sink<String>,
    O::Error: std::error::Error + Send + Sync + 'static,
{
    let show = |e: O::Error| ClientError::Output(Box::new(e));
    let mut fut = pin!(fut);
    loop {
        tokio::select! {
            done = &mut fut => return Ok(Offline::Done(done)),
            // An ended input stays ended; the next connection confirms what was sent.
            typed = input.next(), if !input.is_terminated() => {
                let Some(line) = typed else { continue };
                let shown = match classify(&line, secure) {
                    Typed::Nothing => continue,
                    Typed::Send { quit: true, .. } => {
                        output.send("-- bye".to_owned()).await.map_err(show)?;
                        return Ok(Offline::Quit);
                    }
                    Typed::Send { .. } if queued.len() < MAX_QUEUED => {
                        queued.push(line);
                        "-- not connected: the line will be sent once reconnected".to_owned()
                    }
                    Typed::Send { .. } => {
                        opts.renderer().error("!! not connected: line dropped".to_owned())
                    }
                    Typed::Refused(shown) => opts.renderer().error(shown),
                };
                output.send(shown).await.map_err(show)?;
            }
        }
    }
}

/// An error and its causes on one line, as `anyhow` shows them with `{:#}`.
fn chain(error: &ClientError) -> String {
    let mut line = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    chat_proto::text::escape_controls(&line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let backoff = Backoff::default();
        let delays: Vec<f64> = (0..10).map(|r| backoff.delay(r).as_secs_f64()).collect();
        assert_eq!(
            delays,
            [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
        );
        assert_eq!(backoff.delay(40), Duration::from_secs(30));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn lost_connections_are_told_apart_from_other_errors() {
        assert!(ClientError::Closed.is_connection_lost());
        assert!(
            ClientError::Bye {
                reason: "server shutting down".into()
            }
            .is_connection_lost()
        );
        let timeout = ClientError::Timeout {
            waiting_for: "x",
            after: Duration::from_secs(1),
        };
        assert!(!timeout.is_connection_lost());
        let io = ClientError::Io(std::io::Error::other("reset"));
        assert!(io.is_connection_lost());
        assert_eq!(chain(&io), "connection to the server lost: reset");
    }
}

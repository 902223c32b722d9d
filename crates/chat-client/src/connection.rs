//! One connection to the server: the handshake ([`Connection::register`], with the
//! password if the server asks for one), then the chat loop ([`Connection::chat`]) that
//! joins the socket and the user's input with `tokio::select!`.
//!
//! The loop never blocks on one side while the other waits: lines to send queue in an
//! outbox that is written by its own `select!` branch, so the server's echoes are read
//! while a write is in progress and neither side can stall the other. Input is taken one
//! line at a time, only when the previous one has been written.

use crate::error::ClientError;
use crate::input::{Typed, classify};
use crate::render::Renderer;
use crate::state::SharedState;
use crate::transport::Secure;
use crate::{Options, Outcome};
use chat_proto::text::escape_controls;
use chat_proto::{
    CLIENT_MAX_LINE, Command, ErrorCode, LineCodec, LineError, Nick, Password, ServerFrame,
};
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::task::ready;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

/// A connection to the server, before and after its handshake.
///
/// [`crate::run`] is the usual entry point; the binary uses this type directly so that,
/// on a terminal, it can ask for another nickname when one is refused.
pub struct Connection<S> {
    reader: FramedRead<ReadHalf<S>, LineCodec>,
    writer: FramedWrite<WriteHalf<S>, LineCodec>,
    /// Bound on every wait for the server.
    timeout: Duration,
    /// How frames are shown: time zone, colours.
    renderer: Renderer,
    /// What the frames told about the session (rooms, members, our nickname), shared
    /// with whoever shows the prompt and completes names.
    state: SharedState,
    /// Whether the server's `NICK` prompt has been read and not answered yet, so that a
    /// second [`Connection::register`] does not wait for a prompt that already came.
    prompted: bool,
    /// Lines shown when the chat starts: the welcome, and anything unexpected the
    /// server sent during the handshake.
    pending: Vec<String>,
    /// Whether a password may cross this connection (TLS, or loopback).
    secure: bool,
    /// The answer to the server's `PASS` prompt.
    password: Option<Password>,
}

/// What the server sent, read from the socket.
enum Incoming {
    /// A valid frame.
    Frame(ServerFrame),
    /// Anything else, already rendered.
    Other(String),
}

/// Most lines from the server shown in one batch, so that a flood cannot keep the
/// loop from the user's input for long.
const MAX_BATCH: usize = 256;

/// What the chat loop does with one line from the server.
enum Step {
    /// Show it.
    Show(String),
    /// It is the `PONG` for the end of input: every line sent has been handled.
    Confirmed,
    /// The session is over: show a last line, if any, and end with the result.
    End(Option<String>, Result<Outcome, ClientError>),
}

/// Where the chat loop is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Sending what the user types.
    Chatting,
    /// Input ended; `/ping <token>` sent, waiting for its `PONG`.
    Draining {
        /// The token of our `/ping`.
        token: String,
    },
    /// `/quit` sent; waiting for `BYE` or the end of the connection.
    Quitting(Outcome),
}

impl<S: AsyncRead + AsyncWrite + Secure> Connection<S> {
    /// Wraps a connected stream. Nothing is read or written yet.
    pub fn new(conn: S, opts: &Options) -> Connection<S> {
        Connection::with_state(conn, opts, crate::state::shared())
    }

    /// Like [`Connection::new`], keeping what the frames tell in `state`: the terminal
    /// reads it for the prompt and completion, and a reconnection carries it over.
    pub fn with_state(conn: S, opts: &Options, state: SharedState) -> Connection<S> {
        let secure = conn.is_secure();
        let (read, write) = tokio::io::split(conn);
        Connection {
            reader: FramedRead::new(read, LineCodec::new(CLIENT_MAX_LINE)),
            writer: FramedWrite::new(write, LineCodec::new(CLIENT_MAX_LINE)),
            timeout: opts.timeout,
            renderer: opts.renderer(),
            state,
            prompted: false,
            pending: Vec::new(),
            secure,
            password: opts.password.clone(),
        }
    }

    /// Whether a password may cross this connection: it is TLS, or to this machine.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The session's state, as the frames read so far tell it.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Sends one line to the server now (within the timeout), without waiting for an
    /// answer; what the server answers is shown by [`Connection::chat`].
    pub async fn send(&mut self, line: &str) -> Result<(), ClientError> {
        match tokio::time::timeout(self.timeout, self.writer.send(line)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ClientError::Timeout {
                waiting_for: "a line to be sent",
                after: self.timeout,
            }),
        }
    }

    /// Updates the state from `frame` and renders it, our own nickname in mind.
    fn apply_and_render(&self, frame: &ServerFrame) -> String {
        self.state.send_if_modified(|state| state.apply(frame));
        let state = self.state.borrow();
        self.renderer.frame(frame, state.me())
    }

    /// Answers the server's `NICK` prompt with `nick` and waits for `WELCOME`. If the
    /// server asks for the nickname's password (`PASS`), answers with the one from the
    /// options, or fails with [`ClientError::PasswordNeeded`] if there is none.
    ///
    /// A nickname that is not valid is refused here, without asking the server. On
    /// [`ClientError::NickRefused`] the connection can be used for another try (the
    /// server asks again), and on [`ClientError::PasswordNeeded`] it waits for
    /// [`Connection::identify`]; any other error ends it.
    pub async fn register(&mut self, nick: &str) -> Result<Nick, ClientError> {
        if let Err(e) = Nick::new(nick) {
            return Err(ClientError::NickRefused {
                nick: escape_controls(nick).into_owned(),
                code: ErrorCode::NickInvalid,
                text: e.to_string(),
            });
        }
        let after = self.timeout;
        match tokio::time::timeout(after, self.register_within(nick)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                waiting_for: "the nickname to be accepted",
                after,
            }),
        }
    }

    async fn register_within(&mut self, nick: &str) -> Result<Nick, ClientError> {
        while !self.prompted {
            match self.next_incoming().await? {
                Incoming::Frame(ServerFrame::NickPrompt) => self.prompted = true,
                Incoming::Frame(ServerFrame::Bye { reason }) => return Err(bye(&reason)),
                Incoming::Frame(frame) => self.pending.push(self.apply_and_render(&frame)),
                Incoming::Other(line) => self.pending.push(line),
            }
        }
        self.writer.send(nick).await?;
        self.prompted = false;
        self.welcome(nick, false).await
    }

    /// After [`ClientError::PasswordNeeded`], answers the server's `PASS` prompt for
    /// `nick` with `password` and waits for `WELCOME`. The password is kept for a later
    /// `PASS` on this connection.
    pub async fn identify(&mut self, nick: &str, password: Password) -> Result<Nick, ClientError> {
        let after = self.timeout;
        self.password = Some(password);
        let identify = async {
            self.send_password(nick).await?;
            self.welcome(nick, true).await
        };
        match tokio::time::timeout(after, identify).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                waiting_for: "the password to be accepted",
                after,
            }),
        }
    }

    /// Sends the password, unless there is none or the connection could show it to
    /// others.
    async fn send_password(&mut self, nick: &str) -> Result<(), ClientError> {
        let nick = nick.to_owned();
        if !self.secure {
            return Err(ClientError::InsecurePassword { nick });
        }
        let Some(password) = &self.password else {
            return Err(ClientError::PasswordNeeded { nick });
        };
        let line = password.expose().to_owned();
        self.writer.send(line).await?;
        Ok(())
    }

    /// Waits for `WELCOME` after `nick` (or, if `identifying`, its password) was sent,
    /// answering a `PASS` prompt on the way.
    async fn welcome(&mut self, nick: &str, mut identifying: bool) -> Result<Nick, ClientError> {
        loop {
            match self.next_incoming().await? {
                Incoming::Frame(ServerFrame::Welcome { nick, text }) => {
                    let welcome = ServerFrame::Welcome {
                        nick: nick.clone(),
                        text,
                    };
                    self.pending.push(self.apply_and_render(&welcome));
                    return Ok(nick);
                }
                Incoming::Frame(ServerFrame::PassPrompt) => {
                    self.send_password(nick).await?;
                    identifying = true;
                }
                Incoming::Frame(ServerFrame::Error { code, text }) if identifying => {
                    return Err(ClientError::PasswordRefused {
                        nick: nick.to_owned(),
                        code: escape_code(code),
                        text: escape_controls(&text).into_owned(),
                    });
                }
                Incoming::Frame(ServerFrame::Error { code, text }) => {
                    return Err(ClientError::NickRefused {
                        nick: nick.to_owned(),
                        code: escape_code(code),
                        text: escape_controls(&text).into_owned(),
                    });
                }
                Incoming::Frame(ServerFrame::NickPrompt) => {
                    self.prompted = true;
                    return Err(ClientError::NickRefused {
                        nick: nick.to_owned(),
                        code: ErrorCode::Other("NICK".into()),
                        text: "the server asked for another nickname".into(),
                    });
                }
                Incoming::Frame(ServerFrame::Bye { reason }) => return Err(bye(&reason)),
                Incoming::Frame(frame) => self.pending.push(self.apply_and_render(&frame)),
                Incoming::Other(line) => self.pending.push(line),
            }
        }
    }

    /// Runs the chat after a successful [`Connection::register`]: sends each line of
    /// `input` (a bare line is a message, `/...` a command) and shows each frame from
    /// the server on `output`.
    ///
    /// Ends with [`Outcome::Quit`] when the user typed `/quit` and the server said `BYE`,
    /// or with [`Outcome::EndOfInput`] when `input` ended, the server confirmed every
    /// line (a `/ping` answered by `PONG`), and then `/quit` was answered. The server
    /// closing the connection otherwise is an error.
    pub async fn chat<I, O>(mut self, input: I, output: O) -> Result<Outcome, ClientError>
    where
        I: Stream<Item = String>,
        O: Sink<String>,
        O::Error: std::error::Error + Send + Sync + 'static,
    {
        let mut input = pin!(input.fuse());
        let mut output = pin!(output);
        let show = |e: O::Error| ClientError::Output(Box::new(e));
        for line in std::mem::take(&mut self.pending) {
            output.send(line).await.map_err(show)?;
        }
        let mut outbox: VecDeque<String> = VecDeque::new();
        // Set while the outbox or the writer's buffer holds something not yet flushed.
        let mut unflushed = false;
        let mut phase = Phase::Chatting;
        let mut deadline: Option<(Instant, &'static str)> = None;
        loop {
            let take_input = phase == Phase::Chatting && !unflushed;
            let wake = deadline.map_or_else(far_future, |(at, _)| at);
            tokio::select! {
                incoming = self.reader.next() => {
                    let mut incoming = incoming;
                    // Everything already read is shown in one go: under a flood the
                    // terminal gets one write and one redraw of the prompt per batch.
                    let mut taken = 0;
                    loop {
                        taken += 1;
                        match self.take(incoming, &phase) {
                            Step::Show(line) => output.feed(line).await.map_err(show)?,
                            Step::Confirmed => {
                                // Everything we sent has been handled and echoed: leave.
                                outbox.push_back(Command::Quit(None).to_string());
                                unflushed = true;
                                phase = Phase::Quitting(Outcome::EndOfInput);
                                deadline = Some((Instant::now() + self.timeout, "BYE after /quit"));
                            }
                            Step::End(last, result) => {
                                if let Some(line) = last {
                                    output.feed(line).await.map_err(show)?;
                                }
                                output.flush().await.map_err(show)?;
                                return result;
                            }
                        }
                        if taken == MAX_BATCH {
                            break;
                        }
                        match self.reader.next().now_or_never() {
                            Some(next) => incoming = next,
                            None => break,
                        }
                    }
                    output.flush().await.map_err(show)?;
                }
                written = write_outbox(&mut self.writer, &mut outbox), if unflushed => {
                    written?;
                    unflushed = false;
                }
                typed = input.next(), if take_input => match typed {
                    None => {
                        let token = end_token();
                        outbox.push_back(Command::Ping(Some(token.clone())).to_string());
                        unflushed = true;
                        phase = Phase::Draining { token };
                        deadline = Some((Instant::now() + self.timeout, "PONG after the end of input"));
                    }
                    Some(line) => match classify(&line, self.secure) {
                        Typed::Nothing => {}
                        Typed::Refused(shown) => {
                            output.send(self.renderer.error(shown)).await.map_err(show)?;
                        }
                        Typed::Send { line, quit } => {
                            self.state.send_if_modified(|state| {
                                state.sent(&line);
                                false
                            });
                            outbox.push_back(line);
                            unflushed = true;
                            if quit {
                                phase = Phase::Quitting(Outcome::Quit);
                                deadline = Some((Instant::now() + self.timeout, "BYE after /quit"));
                            }
                        }
                    },
                },
                () = tokio::time::sleep_until(wake), if deadline.is_some() => {
                    let waiting_for = deadline.map_or("the server", |(_, what)| what);
                    return Err(ClientError::Timeout { waiting_for, after: self.timeout });
                }
            }
        }
    }

    /// What to do with what the socket gave in the chat loop, in `phase`.
    fn take(&self, incoming: Option<io::Result<Result<String, LineError>>>, phase: &Phase) -> Step {
        let line = match incoming {
            None => {
                return Step::End(
                    None,
                    match phase {
                        Phase::Quitting(outcome) => Ok(*outcome),
                        _ => Err(ClientError::Closed),
                    },
                );
            }
            Some(Err(e)) => return Step::End(None, Err(ClientError::Io(e))),
            Some(Ok(Err(e))) => return Step::Show(self.renderer.line_error(&e)),
            Some(Ok(Ok(line))) => line,
        };
        match ServerFrame::parse(&line) {
            Err(e) => Step::Show(self.renderer.unparsed(&line, &e)),
            Ok(ServerFrame::Bye { reason }) => match phase {
                Phase::Quitting(outcome) => {
                    let frame = ServerFrame::Bye { reason };
                    Step::End(Some(self.apply_and_render(&frame)), Ok(*outcome))
                }
                _ => Step::End(None, Err(bye(&reason))),
            },
            Ok(ServerFrame::Pong { token: Some(token) }) if matches!(phase, Phase::Draining { token: ours } if *ours == token) => {
                Step::Confirmed
            }
            Ok(frame) => Step::Show(self.apply_and_render(&frame)),
        }
    }

    /// The next line from the server; the end of the connection is an error here.
    async fn next_incoming(&mut self) -> Result<Incoming, ClientError> {
        match self.reader.next().await {
            None => Err(ClientError::Closed),
            Some(Err(e)) => Err(ClientError::Io(e)),
            Some(Ok(Err(e))) => Ok(Incoming::Other(self.renderer.line_error(&e))),
            Some(Ok(Ok(line))) => Ok(match ServerFrame::parse(&line) {
                Ok(frame) => Incoming::Frame(frame),
                Err(e) => Incoming::Other(self.renderer.unparsed(&line, &e)),
            }),
        }
    }
}

/// Moves the outbox into the writer and flushes it. Cancel-safe: a line leaves the
/// outbox only once it is in the writer's buffer, and the buffer keeps what a cancelled
/// flush did not write, so the next call carries on where this one stopped.
fn write_outbox<'a, W>(
    writer: &'a mut W,
    outbox: &'a mut VecDeque<String>,
) -> impl Future<Output = io::Result<()>> + 'a
where
    W: Sink<String, Error = io::Error> + Unpin,
{
    poll_fn(move |cx| {
        while !outbox.is_empty() {
            ready!(writer.poll_ready_unpin(cx))?;
            if let Some(line) = outbox.pop_front() {
                writer.start_send_unpin(line)?;
            }
        }
        writer.poll_flush_unpin(cx)
    })
}

/// The token of the `/ping` sent at the end of input: distinct from what a user would
/// type, and from one run to the next.
fn end_token() -> String {
    let now = jiff::Timestamp::now().as_nanosecond();
    format!("chat-client-eof-{}-{now}", std::process::id())
}

/// An instant the chat loop never reaches; its timer branch is disabled then anyway.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn bye(reason: &str) -> ClientError {
    ClientError::Bye {
        reason: escape_controls(reason).into_owned(),
    }
}

fn escape_code(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::Other(code) => ErrorCode::Other(escape_controls(&code).into_owned()),
        known => known,
    }
}

//! One task per connection: the handshake, then a loop that waits on the socket, the
//! rooms the session is in, its private mailbox (which also brings the shutdown notice)
//! and its one timer.
//!
//! Output is batched: whatever is ready (room events, private messages, replies) is
//! appended to one buffer, and the buffer goes to the socket in one write. Room events
//! arrive as bytes encoded once by the sender and shared by every member.
//!
//! The task's future is allocated once per connection and lives as long as it, so its
//! size is most of what an idle connection costs. The wait therefore polls the socket,
//! the mailbox, the timer and the store's answers directly, holding no future for them;
//! only a room's broadcast receiver needs one (its place in the channel's wait list).
//! What happens once per session (the handshake, the goodbye) is boxed, so that its
//! state is freed when done instead of widening every session's future.

use crate::config::Config;
use crate::config::HISTORY_MAX;
use crate::flood::TokenBucket;
use crate::hub::{Channel, Event, Hub, Joined, LIST_CHUNK, Refused, RoomRefused, now};
use crate::mailbox::{Mailbox, SendError, mailbox};
use crate::reader::{LineReader, NextLine, Stream};
use crate::ring::{Cursor, Lagged, TryRecvError};
use crate::store::{Answer, Query, Stored};
use bytes::BytesMut;
use chat_proto::{
    AccountStatus, Command, CommandError, ErrorCode, LineCodec, LineError, Nick, Password, Room,
    ServerFrame, Target, command::DEFAULT_HISTORY, command::HELP,
};
use futures::FutureExt;
use futures::future::Either;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use tokio_util::sync::CancellationToken;
use tracing::info;

/// Output beyond which the session stops collecting ready events and writes.
const BATCH_LIMIT: usize = 64 * 1024;

/// Lines a session handles before it yields to other tasks.
const LINES_PER_TURN: usize = 32;

/// Longest wait to write a goodbye (`BYE` after `/quit` or a handshake timeout).
const FAREWELL_LIMIT: Duration = Duration::from_secs(5);

/// Why a session ended; told to its rooms in the `QUIT` event and logged.
type Reason = String;

/// How the reason of a session ended for not reading its output begins.
const SLOW_CONSUMER: &str = "slow consumer";

/// How a connection reached the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// The client's address.
    pub(crate) addr: SocketAddr,
    /// Whether the connection is encrypted (TLS, or HTTPS for a WebSocket).
    pub(crate) tls: bool,
    /// A WebSocket whose request came through a reverse proxy (it carried forwarding
    /// headers): `addr` is then the user's address as the proxy gave it, and the
    /// connection is not taken as loopback.
    pub(crate) proxied: bool,
    /// A WebSocket (the web door) rather than a TCP connection.
    pub(crate) websocket: bool,
}

impl Peer {
    /// Whether a password may cross this connection: TLS, or loopback (which never leaves
    /// the machine) unless a proxy forwarded it (then it left the machine before).
    pub(crate) fn secure(&self) -> bool {
        self.tls || (!self.proxied && self.addr.ip().to_canonical().is_loopback())
    }
}

/// What a connection's session starts from. The caller boxes it: an async fn keeps its
/// arguments for its whole life, so the session's future keeps only a pointer, and the
/// box is freed once the handshake is done.
pub(crate) struct Start<S> {
    pub(crate) stream: S,
    pub(crate) peer: Peer,
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: Arc<Config>,
    /// Watched during the handshake; a session hears of shutdown from the hub.
    pub(crate) shutdown: CancellationToken,
    /// When the handshake must be done: `--handshake-timeout` after the connection was
    /// accepted, a TLS handshake included.
    pub(crate) deadline: Instant,
}

/// Runs one connection from accept (and TLS handshake) to close.
///
/// There is no tracing span per connection (one costs about 0.45 KB for the life of the
/// connection at the default level); its log lines name the peer and the nickname.
pub(crate) async fn serve<S: Stream>(start: Box<Start<S>>) {
    let addr = start.peer.addr;
    // Built in a block of its own, and the session boxed: a value moved out of a local
    // would otherwise keep its place in the future for the session's whole life.
    let login = {
        let start = start;
        let Start {
            stream,
            peer,
            hub,
            config,
            shutdown,
            deadline,
        } = *start;
        info!(peer = %addr, tls = peer.tls, websocket = peer.websocket, "connected");
        let mut conn = Connection {
            stream,
            reader: LineReader::new(LineCodec::new(config.max_line)),
            out: BytesMut::new(),
            peer,
            config,
        };
        // Boxed: its state is freed once done (see the module docs).
        match Box::pin(conn.handshake(&hub, &shutdown, deadline)).await {
            Ok(login) => Ok(Session::new(conn, hub, login)),
            Err(reason) => Err(reason),
        }
    };
    match login {
        Ok(mut session) => {
            info!(peer = %addr, nick = %session.nick, "handshake complete");
            let reason = session.run().await;
            info!(peer = %addr, nick = %session.nick, %reason, "disconnected");
            session.registration.reason = Some(reason);
        }
        Err(reason) => info!(peer = %addr, %reason, "disconnected"),
    }
}

/// The socket and its output buffer.
struct Connection<S> {
    stream: S,
    reader: LineReader,
    /// Frames waiting to be written, in order.
    out: BytesMut,
    peer: Peer,
    config: Arc<Config>,
}

impl<S: Stream> Connection<S> {
    fn push(&mut self, frame: &ServerFrame) {
        frame.encode(&mut self.out);
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn error(&mut self, code: ErrorCode, text: impl Into<String>) {
        self.push(&ServerFrame::Error {
            code,
            text: text.into(),
        });
    }

    /// Writes everything pending, or fails once the client has accepted nothing for the
    /// write timeout.
    async fn flush(&mut self) -> Result<(), Reason> {
        if self.out.is_empty() {
            return Ok(());
        }
        // The timeout is on progress: a client that reads slowly but steadily stays.
        while !self.out.is_empty() {
            match tokio::time::timeout(
                self.config.write_timeout,
                self.stream.write_buf(&mut self.out),
            )
            .await
            {
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io_reason(&e)),
                Err(_) => return Err(self.slow_consumer()),
            }
        }
        // TLS keeps the tail of what it was given until flushed (plain TCP's flush does
        // nothing): push it to the socket, under the same timeout.
        match tokio::time::timeout(self.config.write_timeout, self.stream.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(io_reason(&e)),
            Err(_) => return Err(self.slow_consumer()),
        }
        // Everything is written: hold no buffer while idle (the next batch allocates
        // afresh, which costs far less than the write it goes with).
        self.out = BytesMut::new();
        Ok(())
    }

    fn slow_consumer(&self) -> Reason {
        format!(
            "{SLOW_CONSUMER}: no output accepted for {:?}",
            self.config.write_timeout
        )
    }

    /// How long a goodbye may take to write before the connection is dropped anyway.
    fn farewell_limit(&self) -> Duration {
        self.config.write_timeout.min(FAREWELL_LIMIT)
    }

    /// Sends a last frame and closes, without waiting longer than `limit`.
    async fn close_with(&mut self, frame: ServerFrame, limit: Duration) {
        self.push(&frame);
        let _ = tokio::time::timeout(limit, async {
            let _ = self.stream.write_all_buf(&mut self.out).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }

    /// After a read error, closes the stream within the farewell limit: for a
    /// WebSocket that sends the close frame saying why and drains what the client sent
    /// meanwhile, so that the close is not turned into a reset; for TCP it is at most a
    /// `shutdown`.
    async fn linger(&mut self) {
        let limit = self.farewell_limit();
        let _ = tokio::time::timeout(limit, self.stream.shutdown()).await;
    }

    /// Reports a line the codec refused.
    fn line_error(&mut self, error: LineError) {
        match error {
            LineError::TooLong { limit } => self.error(
                ErrorCode::LineTooLong,
                format!("line longer than {limit} bytes, discarded"),
            ),
            LineError::InvalidUtf8 => {
                self.error(ErrorCode::BadUtf8, "line is not valid UTF-8, discarded")
            }
        }
    }

    /// The original program's exchange: `NICK`, a nickname, again until one is free;
    /// `PASS` and its password for a registered one; all by `deadline`.
    async fn handshake(
        &mut self,
        hub: &Hub,
        shutdown: &CancellationToken,
        deadline: Instant,
    ) -> Result<Login, Reason> {
        let result = tokio::select! {
            result = tokio::time::timeout_at(deadline, self.choose_nick(hub)) => match result {
                Ok(result) => result,
                Err(_) => {
                    let limit = self.farewell_limit();
                    self.close_with(ServerFrame::Bye { reason: "handshake timed out".into() }, limit).await;
                    Err("handshake timed out".into())
                }
            },
            _ = shutdown.cancelled() => {
                self.close_with(ServerFrame::Bye { reason: "server shutting down".into() }, self.config.shutdown_grace).await;
                Err("server shutting down".into())
            }
        };
        hub.metrics.handshake(result.is_ok());
        result
    }

    async fn choose_nick(&mut self, hub: &Hub) -> Result<Login, Reason> {
        self.push(&ServerFrame::NickPrompt);
        // Flood control holds for nickname attempts too: each taken one costs the hub lock.
        let mut bucket = TokenBucket::new(
            self.config.flood_burst,
            self.config.flood_rate,
            Instant::now(),
        );
        loop {
            let Some(line) = self.prompted_line(&mut bucket).await? else {
                self.push(&ServerFrame::NickPrompt);
                continue;
            };
            let answer = line.trim();
            let nick = match Nick::new(answer) {
                Ok(nick) => nick,
                Err(e) => {
                    self.error(
                        ErrorCode::NickInvalid,
                        format!("{answer:?} is not a valid nickname: {e}"),
                    );
                    self.push(&ServerFrame::NickPrompt);
                    continue;
                }
            };
            let key = nick.folded();
            // A nickname in use is refused before any password is asked for.
            let identified = match hub.account(&key) {
                _ if hub.is_connected(&key) => Err(Refused::Taken),
                None => Ok(None),
                // Boxed: only registered nicknames pay for the password exchange's state.
                Some(account) => Box::pin(self.password(hub, &nick, &mut bucket))
                    .await?
                    .then_some(Some(account.created_ms))
                    .ok_or(Refused::Registered),
            };
            let refused = match identified {
                Ok(identified) => {
                    let (tx, rx) = mailbox(self.config.mailbox_capacity);
                    match hub.register(&nick, tx, identified.is_some()) {
                        Ok(()) => return Ok((nick, rx, identified)),
                        Err(refused) => Some(refused),
                    }
                }
                // The password exchange has said what went wrong.
                Err(Refused::Registered) => None,
                Err(refused) => Some(refused),
            };
            match refused {
                Some(Refused::Taken) => {
                    self.error(ErrorCode::NickTaken, format!("nickname {nick} is taken"))
                }
                Some(Refused::Registered) => self.error(
                    ErrorCode::NickRegistered,
                    format!("nickname {nick} is registered: reconnect and give its password"),
                ),
                None => {}
            }
            self.push(&ServerFrame::NickPrompt);
        }
    }

    /// Flushes what is pending and reads the answer to a prompt, paced by flood control.
    /// `None`: the line was refused (the error is queued).
    async fn prompted_line(
        &mut self,
        bucket: &mut Option<TokenBucket>,
    ) -> Result<Option<String>, Reason> {
        self.flush().await?;
        let line = match self.reader.next_line(&mut self.stream).await {
            None => return Err("closed during handshake".into()),
            Some(Err(e)) => {
                self.linger().await;
                return Err(io_reason(&e));
            }
            Some(Ok(Err(e))) => {
                self.line_error(e);
                return Ok(None);
            }
            Some(Ok(Ok(line))) => line,
        };
        if let Some(at) = bucket.as_mut().and_then(|b| b.take(Instant::now())) {
            tokio::time::sleep_until(at).await;
        }
        Ok(Some(line))
    }

    /// Asks for the password of the registered `nick` and checks it. `false`: refused,
    /// with the error queued.
    async fn password(
        &mut self,
        hub: &Hub,
        nick: &Nick,
        bucket: &mut Option<TokenBucket>,
    ) -> Result<bool, Reason> {
        if !self.peer.secure() {
            self.error(
                ErrorCode::InsecureTransport,
                format!(
                    "nickname {nick} is registered; its password is only accepted over TLS \
                     or from loopback, never in the clear"
                ),
            );
            return Ok(false);
        }
        self.push(&ServerFrame::PassPrompt);
        let Some(password) = self.prompted_line(bucket).await? else {
            return Ok(false);
        };
        let key = nick.folded();
        let from = self.peer.addr.ip();
        let verify = async {
            match hub.account(&key) {
                Some(account) => hub.hasher.verify(from, password, account.hash).await,
                // Unregistered meanwhile (cannot happen today): nothing to check against.
                None => true,
            }
        };
        // Wrong guesses cost time, per address and per nickname; the wait counts against
        // the handshake timeout.
        let right = hub.throttle.check(&key, from, verify).await;
        hub.metrics.password_checked(right);
        if right {
            info!(peer = %self.peer.addr, nick = %nick, "password accepted");
            Ok(true)
        } else {
            info!(peer = %self.peer.addr, nick = %nick, "wrong password");
            self.error(
                ErrorCode::PasswordWrong,
                format!("wrong password for {nick}"),
            );
            Ok(false)
        }
    }
}

/// A finished handshake: the nickname, its mailbox, and when its account was created if
/// the session gave the nickname's password.
type Login = (Nick, Mailbox, Option<i64>);

fn io_reason(e: &io::Error) -> Reason {
    format!("connection error: {e}")
}

/// Holds a nickname in the hub; leaving the hub happens in `drop`, so it happens exactly
/// once whatever ends the session (quit, close, error, panic).
struct Registration {
    hub: Arc<Hub>,
    /// The folded nickname; updated on rename.
    key: String,
    /// Told to the rooms; set just before the session ends.
    reason: Option<Reason>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let reason = self.reason.as_deref().unwrap_or("session ended");
        self.hub.unregister(&self.key, reason);
    }
}

/// A room the session is in.
struct Membership {
    /// The room: its names, and its channel for publishing without the hub.
    channel: Arc<Channel>,
    /// This session's place in the room's events.
    cursor: Cursor,
    /// The id of the room's last event this session was given (or its `JOIN`): where a
    /// refill starts after lagging.
    last_id: u64,
    /// Waiting for the store (see `Session::holds`): the room's live events wait
    /// meanwhile; other rooms' do not.
    held: bool,
}

/// A store query whose answer must go out before a room's next live event.
struct Hold {
    /// The room's folded name.
    key: Arc<str>,
    answer: oneshot::Receiver<Answer>,
    why: HoldFor,
}

enum HoldFor {
    /// The room's latest messages, shown after joining it.
    History,
    /// Events lost by lagging: `remaining` of them after `last_id`, ending before
    /// `next`, the first event still in the room's buffer (delivered after them).
    Refill { remaining: u64, next: Option<Event> },
}

impl Membership {
    fn key(&self) -> &str {
        &self.channel.key
    }

    fn room(&self) -> &Room {
        &self.channel.name
    }

    fn is_live(&self) -> bool {
        !self.held
    }
}

/// Events copied from a room's ring under one read lock, at most: a bounded time for a
/// sender to wait for the lock.
const DRAIN_CHUNK: usize = 64;

/// Events a refill asks the store for at a time: a bounded batch, written out before the
/// next is asked for.
const REFILL_BATCH: u64 = 256;

/// Longest wait for the store to answer `/history`.
const QUERY_LIMIT: Duration = Duration::from_secs(5);

/// Waits for an event from any of the rooms that are live; never completes with none.
/// Cancel-safe: `Ring::recv` is.
///
/// A plain function choosing between two futures rather than one `async fn` with both
/// paths: every waiting session carries this future, and a coroutine lays the one-room
/// wait out beside the other path's locals, 48 bytes wider.
fn next_room_event(
    rooms: &mut [Membership],
) -> impl Future<Output = (usize, Result<Event, Lagged>)> + Send + '_ {
    // Nearly everyone is in one room: no allocation on the way.
    if rooms.len() == 1 && rooms[0].is_live() {
        let only = &mut rooms[0];
        Either::Left(
            only.channel
                .ring
                .recv(&mut only.cursor)
                .map(|event| (0, event)),
        )
    } else {
        Either::Right(async move {
            let waits = rooms
                .iter_mut()
                .enumerate()
                .filter(|(_, m)| m.is_live())
                .map(|(index, m)| {
                    Box::pin(async move { (index, m.channel.ring.recv(&mut m.cursor).await) })
                })
                .collect::<Vec<_>>();
            if waits.is_empty() {
                return std::future::pending().await;
            }
            futures::future::select_all(waits).await.0
        })
    }
}

/// Polls for the store's answer to any hold, and takes that hold out of `holds`.
/// Polling a oneshot receiver consumes nothing until it is ready.
fn poll_answer(holds: &mut Vec<Hold>, cx: &mut Context<'_>) -> Poll<(Hold, Answer)> {
    for (index, hold) in holds.iter_mut().enumerate() {
        if let Poll::Ready(answer) = Pin::new(&mut hold.answer).poll(cx) {
            // A dropped sender means the store stopped: treat it as an empty answer.
            let answer = answer.unwrap_or_else(|_| Ok(Vec::new()));
            return Poll::Ready((holds.swap_remove(index), answer));
        }
    }
    Poll::Pending
}

/// What ended a session's wait.
enum Wake {
    /// The timer went off.
    Timer,
    /// The server is shutting down.
    Shutdown,
    /// The client sent a line, closed, or failed.
    Line(NextLine),
    /// A private message for this session.
    Mail(bytes::Bytes),
    /// The store answered a hold (boxed: rare, and the largest variant).
    Answer(Box<(Hold, Answer)>),
    /// One of the rooms had an event.
    Room(usize, Result<Event, Lagged>),
}

/// A connection after its handshake.
struct Session<S> {
    conn: Connection<S>,
    hub: Arc<Hub>,
    nick: Nick,
    registration: Registration,
    /// Private messages addressed to this session.
    mailbox: Mailbox,
    /// The rooms it is in (at most `--max-rooms`, so a short list beats a map: one room
    /// costs a few dozen bytes instead of a map node).
    rooms: Vec<Membership>,
    /// Store queries that rooms wait for (history after a join, refills after lagging).
    holds: Vec<Hold>,
    /// A `/ping` waiting to be answered; no line is read meanwhile.
    pong: Option<Box<PendingPong>>,
    /// Folded name of the room bare lines go to.
    current: Option<String>,
    /// The account whose password this session gave (or which it registered): its
    /// folded nickname and creation time.
    identified: Option<Box<(String, i64)>>,
    /// Pacing of the client's input.
    pace: Pace,
}

/// When the client's next line may be read, and when it has been quiet too long.
struct Pace {
    /// Flood control (`None`: off).
    bucket: Option<TokenBucket>,
    /// Set while flood control holds back the client's next line.
    read_at: Option<Instant>,
    /// When the client last sent a line, for the idle timeout.
    last_input: Instant,
    /// Lines handled since the session last yielded.
    lines_this_turn: usize,
    /// Armed for `read_at` or the idle timeout, whichever comes first.
    timer: Timer,
}

/// The session's one timer (flood control's next read, the idle timeout), allocated only
/// while armed: most sessions never arm it, and a timer held inline in every session's
/// `select!` would cost each of them its size and a clock-handle clone per wake-up.
#[derive(Default)]
struct Timer(Option<Pin<Box<Sleep>>>);

impl Timer {
    fn set(&mut self, deadline: Option<Instant>) {
        match (deadline, &mut self.0) {
            (None, _) => self.0 = None,
            (Some(at), Some(sleep)) if sleep.deadline() == at => {}
            (Some(at), Some(sleep)) => sleep.as_mut().reset(at),
            (Some(at), None) => self.0 = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// A `/ping` whose `PONG` waits for the events that were queued for the session when it
/// came: so the `PONG` follows everything earlier lines caused, without collecting an
/// unbounded backlog in one go.
struct PendingPong {
    token: Option<String>,
    /// Events still to deliver from each room (same order as `Session::rooms`).
    remaining: Vec<u64>,
}

/// What to do after a line.
enum Flow {
    Continue,
    Quit(Reason),
}

impl<S: Stream> Session<S> {
    /// The session of a connection whose handshake gave `login`.
    fn new(conn: Connection<S>, hub: Arc<Hub>, (nick, mailbox, identified): Login) -> Box<Self> {
        let config = &conn.config;
        let now = Instant::now();
        Box::new(Session {
            registration: Registration {
                hub: hub.clone(),
                key: nick.folded(),
                reason: None,
            },
            identified: identified.map(|created_ms| Box::new((nick.folded(), created_ms))),
            pace: Pace {
                bucket: TokenBucket::new(config.flood_burst, config.flood_rate, now),
                read_at: None,
                last_input: now,
                lines_this_turn: 0,
                timer: Timer::default(),
            },
            conn,
            hub,
            nick,
            mailbox,
            rooms: Vec::new(),
            holds: Vec::new(),
            current: None,
            pong: None,
        })
    }

    fn membership(&self, key: &str) -> Option<&Membership> {
        self.rooms.iter().find(|m| m.key() == key)
    }

    fn current_membership(&self) -> Option<&Membership> {
        self.current.as_ref().and_then(|key| self.membership(key))
    }

    async fn run(&mut self) -> Reason {
        self.conn.push(&ServerFrame::Welcome {
            nick: self.nick.clone(),
            text: format!("Welcome to the chat, {}!", self.nick),
        });
        if self.identified.is_some() {
            self.conn.push(&ServerFrame::Account {
                nick: self.nick.clone(),
                status: AccountStatus::Identified,
            });
        }
        self.join(&Room::general());
        loop {
            if self.pace.lines_this_turn >= LINES_PER_TURN {
                // Let the room's other members run before reading more: a client whose
                // lines are all buffered would otherwise publish far more than a room
                // holds before any member gets to read it.
                self.pace.lines_this_turn = 0;
                tokio::task::yield_now().await;
            }
            self.collect_ready(BATCH_LIMIT);
            if self.holds.is_empty()
                && self
                    .pong
                    .as_ref()
                    .is_some_and(|p| p.remaining.iter().all(|&r| r == 0))
            {
                let token = self.pong.take().and_then(|p| p.token);
                self.conn.push(&ServerFrame::Pong { token });
            }
            let batch = self.conn.out.len();
            if let Err(reason) = self.conn.flush().await {
                if reason.starts_with(SLOW_CONSUMER) {
                    self.hub.metrics.slow_consumer();
                }
                return reason;
            }
            self.hub.metrics.written(batch);
            let idle_deadline = self.idle_deadline();
            let pace = &mut self.pace;
            pace.timer
                .set(pace.read_at.into_iter().chain(idle_deadline).min());
            let reading = pace.read_at.is_none() && self.pong.is_none();
            match self.wait(reading).await {
                Wake::Timer => {
                    let now = Instant::now();
                    if self.pace.read_at.is_some_and(|at| at <= now) {
                        self.pace.read_at = None;
                    }
                    if self.idle_deadline().is_some_and(|at| at <= now) {
                        let idle = self.conn.config.idle_timeout.unwrap_or_default();
                        let reason = format!("idle timeout: nothing received for {idle:?}");
                        return self.farewell(reason).await;
                    }
                }
                Wake::Shutdown => {
                    let grace = self.conn.config.shutdown_grace;
                    let bye = ServerFrame::Bye {
                        reason: "server shutting down".into(),
                    };
                    Box::pin(self.conn.close_with(bye, grace)).await;
                    return "server shutting down".into();
                }
                Wake::Line(None) => return "connection closed".into(),
                Wake::Line(Some(Err(e))) => {
                    // Boxed, as the goodbyes are: no room in every session's future.
                    Box::pin(self.conn.linger()).await;
                    return io_reason(&e);
                }
                Wake::Line(Some(Ok(line))) => {
                    let now = Instant::now();
                    let pace = &mut self.pace;
                    pace.last_input = now;
                    pace.lines_this_turn += 1;
                    pace.read_at = pace.bucket.as_mut().and_then(|b| b.take(now));
                    if pace.read_at.is_some() {
                        self.hub.metrics.flood_delayed();
                    }
                    match line {
                        Err(e) => self.conn.line_error(e),
                        Ok(line) => {
                            if let Flow::Quit(reason) = self.handle_line(&line).await {
                                return self.farewell(reason).await;
                            }
                        }
                    }
                }
                Wake::Mail(bytes) => {
                    self.conn.push_bytes(&bytes);
                    self.hub.metrics.delivered(1);
                }
                Wake::Answer(answered) => {
                    let (hold, answer) = *answered;
                    self.answered(hold, answer);
                }
                Wake::Room(index, event) => self.room_event(index, event),
            }
        }
    }

    /// Waits for the next thing to do: the shutdown notice or a private message, the
    /// timer, the client's next line (if `reading`), a store answer, a room event.
    /// Everything but the rooms is polled in place, holding no future (see the module
    /// docs); the order puts the client's input before the rooms, so that a busy room
    /// cannot starve it (the rooms are drained between waits anyway).
    async fn wait(&mut self, reading: bool) -> Wake {
        let Session {
            conn,
            mailbox,
            rooms,
            holds,
            pace,
            ..
        } = self;
        let mut room = std::pin::pin!(next_room_event(rooms));
        poll_fn(|cx| {
            match mailbox.poll_recv(cx) {
                Poll::Ready(Some(bytes)) => return Poll::Ready(Wake::Mail(bytes)),
                Poll::Ready(None) => return Poll::Ready(Wake::Shutdown),
                Poll::Pending => {}
            }
            if pace.timer.poll_expired(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            if reading && let Poll::Ready(line) = conn.reader.poll_next_line(&mut conn.stream, cx) {
                return Poll::Ready(Wake::Line(line));
            }
            if let Poll::Ready(answered) = poll_answer(holds, cx) {
                return Poll::Ready(Wake::Answer(Box::new(answered)));
            }
            room.as_mut()
                .poll(cx)
                .map(|(index, event)| Wake::Room(index, event))
        })
        .await
    }

    /// When the session times out if the client stays quiet.
    fn idle_deadline(&self) -> Option<Instant> {
        let idle = self.conn.config.idle_timeout?;
        self.pace.last_input.checked_add(idle)
    }

    /// Says `BYE` with `reason` and closes, within the farewell limit; returns `reason`.
    async fn farewell(&mut self, reason: Reason) -> Reason {
        let limit = self.conn.farewell_limit();
        let bye = ServerFrame::Bye {
            reason: reason.clone(),
        };
        Box::pin(self.conn.close_with(bye, limit)).await;
        reason
    }

    /// Appends events that are ready without waiting until the output holds `limit`
    /// bytes. Called after each line, it also puts the echo of the session's own message
    /// before the reply to its next line.
    ///
    /// Each room's events are copied straight from its ring into the output, up to
    /// [`DRAIN_CHUNK`] of them under one read lock, a room at a time, so that a busy room
    /// cannot starve a quiet one; that needs no waker, no future and no reference count
    /// per event.
    fn collect_ready(&mut self, limit: usize) {
        // Counted once for the whole batch.
        let mut delivered = 0;
        'collect: loop {
            while let Some(bytes) = self.mailbox.try_recv() {
                self.conn.push_bytes(&bytes);
                delivered += 1;
            }
            let mut progressed = false;
            for index in 0..self.rooms.len() {
                let out = &mut self.conn.out;
                if out.len() >= limit {
                    break 'collect;
                }
                let m = &mut self.rooms[index];
                if !m.is_live() {
                    continue;
                }
                let last_id = &mut m.last_id;
                let drained = m.channel.ring.drain(&mut m.cursor, DRAIN_CHUNK, |event| {
                    out.extend_from_slice(&event.bytes);
                    *last_id = event.id;
                    out.len() < limit
                });
                match drained {
                    Ok(0) => continue,
                    Ok(taken) => {
                        delivered += taken;
                        self.count_toward_pong(index, taken as u64);
                    }
                    Err(Lagged(missed)) => self.lagged(index, missed),
                }
                progressed = true;
            }
            if !progressed || self.conn.out.len() >= limit {
                break;
            }
        }
        self.hub.metrics.delivered(delivered);
    }

    fn room_event(&mut self, index: usize, event: Result<Event, Lagged>) {
        match event {
            Ok(event) => self.delivered(index, &event),
            Err(Lagged(missed)) => self.lagged(index, missed),
        }
    }

    fn delivered(&mut self, index: usize, event: &Event) {
        self.conn.push_bytes(&event.bytes);
        self.hub.metrics.delivered(1);
        self.rooms[index].last_id = event.id;
        self.count_toward_pong(index, 1);
    }

    fn count_toward_pong(&mut self, index: usize, events: u64) {
        if let Some(remaining) = self.pong.as_mut().and_then(|p| p.remaining.get_mut(index)) {
            *remaining = remaining.saturating_sub(events);
        }
    }

    /// The session fell `missed` events behind the room's buffer: fetch them from the
    /// store, in order, before the room's next live event.
    fn lagged(&mut self, index: usize, mut missed: u64) {
        self.hub.metrics.refill();
        self.count_toward_pong(index, missed);
        tracing::debug!(nick = %self.nick, room = %self.rooms[index].room(), missed, "lagged; refilling");
        // The oldest event still buffered bounds the gap from above; it waits for the
        // refill. (If the buffer overflows again meanwhile, the gap only grows.)
        let next = loop {
            let m = &mut self.rooms[index];
            match m.channel.ring.try_recv(&mut m.cursor) {
                Ok(event) => break Some(event),
                Err(TryRecvError::Lagged(more)) => {
                    self.count_toward_pong(index, more);
                    missed += more;
                }
                Err(TryRecvError::Empty) => break None,
            }
        };
        if next.is_some() {
            self.count_toward_pong(index, 1);
        }
        self.refill(index, missed, next);
    }

    /// Asks the store for the next batch of a refill, or gives up on it with `LAGGED`.
    fn refill(&mut self, index: usize, remaining: u64, next: Option<Event>) {
        let m = &self.rooms[index];
        let query = Query::After {
            room: m.channel.key.clone(),
            after: m.last_id,
            before: next.as_ref().map_or(u64::MAX, |e| e.id),
            limit: usize::try_from(remaining.min(REFILL_BATCH)).unwrap_or(usize::MAX),
        };
        match self.hub.query(query) {
            Ok(answer) => self.hold(index, answer, HoldFor::Refill { remaining, next }),
            Err(_busy) => self.refill_failed(index, remaining, next),
        }
    }

    fn hold(&mut self, index: usize, answer: oneshot::Receiver<Answer>, why: HoldFor) {
        let m = &mut self.rooms[index];
        m.held = true;
        self.holds.push(Hold {
            key: m.channel.key.clone(),
            answer,
            why,
        });
    }

    /// What the store could not give back: say how much was lost, then carry on live.
    fn refill_failed(&mut self, index: usize, missed: u64, next: Option<Event>) {
        let room = self.rooms[index].room().clone();
        tracing::debug!(nick = %self.nick, %room, missed, "lagged; store could not refill");
        self.conn.push(&ServerFrame::Lagged { room, missed });
        self.hub.metrics.lagged(missed);
        if let Some(event) = next {
            self.hub.metrics.delivered(1);
            self.conn.push_bytes(&event.bytes);
            self.rooms[index].last_id = event.id;
        }
    }

    /// The store answered a room's hold.
    fn answered(&mut self, hold: Hold, answer: Answer) {
        if self.holds.is_empty() {
            // Nearly every session holds once, for its first join's history: give the
            // list's memory back.
            self.holds = Vec::new();
        }
        let Some(index) = self.rooms.iter().position(|m| *m.channel.key == *hold.key) else {
            // Parted meanwhile.
            return;
        };
        self.rooms[index].held = false;
        let rows = answer.unwrap_or_else(|e| {
            tracing::warn!(nick = %self.nick, error = %e, "store query failed");
            Vec::new()
        });
        match hold.why {
            // A room without history says nothing after a join (`/history` always
            // answers, with `HISTORYEND <room> 0` if need be).
            HoldFor::History if rows.is_empty() => {}
            HoldFor::History => {
                let target = Target::Room(self.rooms[index].room().clone());
                self.history_batch(target, &rows);
            }
            HoldFor::Refill { remaining, next } => {
                let asked = remaining.min(REFILL_BATCH);
                let got = rows.len() as u64;
                for row in &rows {
                    self.conn.push_bytes(&row.line);
                }
                self.hub.metrics.delivered(rows.len());
                if let Some(last) = rows.last() {
                    self.rooms[index].last_id = last.id;
                }
                let remaining = remaining.saturating_sub(got);
                if got == asked && remaining > 0 {
                    self.refill(index, remaining, next);
                } else if remaining > 0 {
                    self.refill_failed(index, remaining, next);
                } else if let Some(event) = next {
                    self.hub.metrics.delivered(1);
                    self.conn.push_bytes(&event.bytes);
                    self.rooms[index].last_id = event.id;
                }
            }
        }
    }

    /// Sends stored events as `HISTORY` frames and closes the batch with `HISTORYEND`.
    fn history_batch(&mut self, target: Target, rows: &[Stored]) {
        for row in rows {
            self.conn.push_bytes(b"HISTORY ");
            self.conn.push_bytes(&row.line);
        }
        self.conn.push(&ServerFrame::HistoryEnd {
            target,
            count: rows.len(),
        });
    }

    async fn handle_line(&mut self, line: &str) -> Flow {
        let command = match Command::parse(line) {
            Ok(command) => command,
            Err(CommandError::Empty) => return Flow::Continue,
            Err(e) => {
                self.conn.error(e.code(), e.to_string());
                return Flow::Continue;
            }
        };
        match command {
            Command::Say(text) => self.say(text, false),
            Command::Me(text) => self.say(text, true),
            Command::Join(room) => self.join(&room),
            Command::Part { room, reason } => self.part(room, reason),
            Command::Rooms => {
                let rooms = self.hub.rooms();
                if rooms.is_empty() {
                    self.conn.push(&ServerFrame::Rooms { rooms: Vec::new() });
                }
                for chunk in rooms.chunks(LIST_CHUNK) {
                    self.conn.push(&ServerFrame::Rooms {
                        rooms: chunk.to_vec(),
                    });
                }
            }
            Command::Who(room) => self.who(room),
            Command::Msg { to, text } => self.private(&to, text),
            Command::Nick(new) => self.rename(new),
            Command::Quit(reason) => return Flow::Quit(reason.unwrap_or_else(|| "quit".into())),
            Command::Help => {
                for (usage, what) in HELP {
                    self.conn.push(&ServerFrame::Help {
                        text: format!("{usage:<24} {what}"),
                    });
                }
            }
            // Rare and large (argon2 on a blocking thread, a store query): boxed, so
            // that every idle session's future does not carry their state inline.
            Command::Register(password) => Box::pin(self.set_password(password, false)).await,
            Command::Password(password) => Box::pin(self.set_password(password, true)).await,
            Command::History {
                target,
                count,
                before,
            } => Box::pin(self.history(target, count, before)).await,
            Command::Ping(token) => {
                // PONG waits until the events queued for this session now, its echoes
                // among them, have gone out in ordinary batches; no line is read meanwhile.
                let remaining = self
                    .rooms
                    .iter()
                    .map(|m| m.channel.ring.pending(&m.cursor))
                    .collect();
                self.pong = Some(Box::new(PendingPong { token, remaining }));
            }
        }
        Flow::Continue
    }

    fn say(&mut self, text: String, action: bool) {
        let Some(m) = self.current_membership() else {
            self.conn.error(
                ErrorCode::NoCurrentRoom,
                "you are in no room: /join #room first",
            );
            return;
        };
        let (room, from) = (m.room().clone(), self.nick.clone());
        // Encoded once; every member, the sender included, gets these bytes.
        let published = self.hub.publish(&m.channel, |id, time| {
            if action {
                ServerFrame::Action {
                    room,
                    from,
                    time,
                    id,
                    text,
                }
            } else {
                ServerFrame::Message {
                    room,
                    from,
                    time,
                    id,
                    text,
                }
            }
        });
        if published.is_err() {
            self.conn.error(
                ErrorCode::ServerBusy,
                "the server cannot keep up with saving history; message not sent, try again",
            );
        }
    }

    fn join(&mut self, room: &Room) {
        let key = room.folded();
        let config = &self.conn.config;
        let limit = config.max_rooms;
        if self.rooms.len() >= limit && self.membership(&key).is_none() {
            let text = format!("you are in {limit} rooms, the most allowed: /part one first");
            return self.conn.error(ErrorCode::TooManyRooms, text);
        }
        // The rooms a session creates count against its address, as its connections do.
        let ip = self.conn.peer.addr.ip().to_canonical();
        let origin = (config.limit_loopback || !ip.is_loopback()).then_some(ip);
        match self.hub.join(&self.registration.key, room, origin) {
            Joined::Already => {}
            Joined::Refused(RoomRefused::Full { limit }) => {
                let text = format!(
                    "the server holds {limit} rooms, the most it allows: join one that exists"
                );
                return self.conn.error(ErrorCode::RoomsFull, text);
            }
            Joined::Refused(RoomRefused::AddressFull { limit }) => {
                let text = format!(
                    "your address has created {limit} rooms that are still open, the most \
                     allowed: join one that exists"
                );
                return self.conn.error(ErrorCode::TooManyRoomsCreated, text);
            }
            Joined::New {
                channel,
                cursor,
                join,
                members,
            } => {
                self.conn.push_bytes(&join.bytes);
                self.conn.push_bytes(&members);
                // The room's latest messages, everything before the JOIN, come after
                // the replies and before any live event.
                let history = self.conn.config.history;
                let query = Query::History {
                    room: channel.key.clone(),
                    before: join.id,
                    limit: history,
                };
                self.rooms.push(Membership {
                    channel,
                    cursor,
                    last_id: join.id,
                    held: false,
                });
                // Without history, or with the store too busy to answer, the room is
                // simply live at once.
                if history > 0
                    && let Ok(answer) = self.hub.query(query)
                {
                    self.hold(self.rooms.len() - 1, answer, HoldFor::History);
                }
            }
        }
        self.current = Some(key.clone());
        let room = self.membership(&key).map(|m| m.room().clone());
        self.conn.push(&ServerFrame::Current { room });
    }

    fn part(&mut self, room: Option<Room>, reason: Option<String>) {
        let key = match (&room, &self.current) {
            (Some(room), _) => room.folded(),
            (None, Some(key)) => key.clone(),
            (None, None) => {
                return self
                    .conn
                    .error(ErrorCode::NoCurrentRoom, "you are in no room");
            }
        };
        if self.membership(&key).is_none() {
            let name = room.map_or(key, |r| r.to_string());
            return self
                .conn
                .error(ErrorCode::NotInRoom, format!("you are not in {name}"));
        }
        let part = self.hub.part(&self.registration.key, &key, reason);
        // Deliver what the room said up to the PART, the PART included, then stop
        // listening: the leaver sees exactly what the others saw before it left. (A
        // history or refill still pending for the room is dropped: the leaver has moved
        // on.)
        if let Some(index) = self.rooms.iter().position(|m| m.key() == key) {
            let mut seen = false;
            while !seen {
                let m = &mut self.rooms[index];
                match m.channel.ring.try_recv(&mut m.cursor) {
                    // Past a quiet room's PART (never sent): not for the leaver.
                    Ok(event) if part.as_ref().is_some_and(|p| event.id > p.id) => break,
                    Ok(event) => {
                        seen = part.as_ref().is_some_and(|p| p.id == event.id);
                        self.conn.push_bytes(&event.bytes);
                    }
                    Err(TryRecvError::Lagged(missed)) => {
                        let room = self.rooms[index].room().clone();
                        self.hub.metrics.lagged(missed);
                        self.conn.push(&ServerFrame::Lagged { room, missed });
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.rooms.remove(index);
            if self.rooms.is_empty() {
                // Give the list's memory back: a session in no room holds none.
                self.rooms = Vec::new();
            }
            self.holds.retain(|h| *h.key != *key);
            if !seen && let Some(part) = &part {
                // A quiet room did not send it, or the room's buffer overflowed past
                // it: show it anyway.
                self.conn.push_bytes(&part.bytes);
            }
        }
        if self.current.as_deref() == Some(key.as_str()) {
            self.current = self.rooms.iter().map(|m| m.key()).min().map(str::to_owned);
            let room = self.current_membership().map(|m| m.room().clone());
            self.conn.push(&ServerFrame::Current { room });
        }
    }

    fn who(&mut self, room: Option<Room>) {
        let room = match room.or_else(|| self.current_membership().map(|m| m.room().clone())) {
            Some(room) => room,
            None => {
                return self
                    .conn
                    .error(ErrorCode::NoCurrentRoom, "you are in no room: /who #room");
            }
        };
        match self.hub.members(&room) {
            Some(members) => self.conn.push_bytes(&members),
            None => self
                .conn
                .error(ErrorCode::NoSuchRoom, format!("there is no room {room}")),
        }
    }

    fn private(&mut self, to: &Nick, text: String) {
        let Some((to, mailbox)) = self.hub.lookup(to) else {
            return self
                .conn
                .error(ErrorCode::NoSuchNick, format!("no one is called {to}"));
        };
        let from = self.nick.clone();
        let pair = pair(&self.registration.key, &to.folded());
        let stamped = self.hub.stamp_private(|id, time| ServerFrame::Private {
            from,
            to: to.clone(),
            time,
            id,
            text,
        });
        let bytes = stamped.2.clone();
        // Kept only once delivered: what the recipient never got is in no history. A
        // store too busy to keep it loses its history entry, not the message.
        let keep = |hub: &Hub| {
            if hub.keep_private(pair, stamped).is_err() {
                tracing::warn!(nick = %self.nick, "store queue full: private message not kept");
            }
        };
        if to.folded() == self.registration.key {
            // A note to self: shown once.
            keep(&self.hub);
            return self.conn.push_bytes(&bytes);
        }
        match mailbox.try_send(bytes.clone()) {
            Ok(()) => {
                keep(&self.hub);
                self.conn.push_bytes(&bytes)
            }
            Err(SendError::Full) => self.conn.error(
                ErrorCode::RecipientBusy,
                format!("{to} is not keeping up; message not delivered"),
            ),
            Err(SendError::Closed) => self
                .conn
                .error(ErrorCode::NoSuchNick, format!("{to} has just left")),
        }
    }

    fn rename(&mut self, new: Nick) {
        if new == self.nick {
            // Nothing changes; confirm it anyway, so a client waiting for an answer gets one.
            let frame = ServerFrame::Rename {
                room: None,
                old: self.nick.clone(),
                new,
                time: now(),
                id: self.hub.next_id(),
            };
            return self.conn.push(&frame);
        }
        let identified = self.identified.as_deref().map(|(key, _)| key.as_str());
        match self.hub.rename(&self.registration.key, &new, identified) {
            Err(Refused::Taken) => self
                .conn
                .error(ErrorCode::NickTaken, format!("nickname {new} is taken")),
            Err(Refused::Registered) => self.conn.error(
                ErrorCode::NickRegistered,
                format!("nickname {new} is registered: connect with it and give its password"),
            ),
            Ok(alone) => {
                info!(peer = %self.conn.peer.addr, old = %self.nick, new = %new, "renamed");
                self.registration.key = new.folded();
                self.nick = new;
                if let Some(bytes) = alone {
                    self.conn.push_bytes(&bytes);
                }
            }
        }
    }

    /// `/register` (`change: false`) and `/password` (`change: true`).
    async fn set_password(&mut self, password: Password, change: bool) {
        if !self.conn.peer.secure() {
            return self.conn.error(
                ErrorCode::InsecureTransport,
                "passwords are only accepted over TLS or from loopback, never in the clear",
            );
        }
        let key = self.registration.key.clone();
        let mine = self.identified.as_deref().is_some_and(|(k, _)| *k == key);
        if change && !mine {
            return self.conn.error(
                ErrorCode::NotRegistered,
                format!("{} is not registered: /register first", self.nick),
            );
        }
        if !change && self.hub.account(&key).is_some() {
            return self.conn.error(
                ErrorCode::AlreadyRegistered,
                format!(
                    "{} is registered already: /password to change it",
                    self.nick
                ),
            );
        }
        if !password.acceptable() {
            return self.conn.error(
                ErrorCode::PasswordInvalid,
                format!(
                    "a password has at least {} characters and at most {} bytes",
                    Password::MIN_CHARS,
                    Password::MAX_BYTES
                ),
            );
        }
        let from = self.conn.peer.addr.ip();
        let hashing = self.hub.hasher.hash(from, password.expose().to_owned());
        let hash = match hashing.await {
            Ok(hash) => hash,
            Err(e) => {
                tracing::error!(nick = %self.nick, error = %e, "cannot hash a password");
                return self.conn.error(
                    ErrorCode::ServerBusy,
                    "cannot set a password now; try again",
                );
            }
        };
        match self.hub.set_account(&key, hash, change) {
            Err(_busy) => self.conn.error(
                ErrorCode::ServerBusy,
                "cannot set a password now; try again",
            ),
            Ok(Err(_already)) => self.conn.error(
                ErrorCode::AlreadyRegistered,
                format!(
                    "{} is registered already: /password to change it",
                    self.nick
                ),
            ),
            Ok(Ok(created_ms)) => {
                info!(nick = %self.nick, change, "account password set");
                self.identified = Some(Box::new((key, created_ms)));
                let status = if change {
                    AccountStatus::PasswordChanged
                } else {
                    AccountStatus::Registered
                };
                self.conn.push(&ServerFrame::Account {
                    nick: self.nick.clone(),
                    status,
                });
            }
        }
    }

    /// `/history [#room|nick] [count] [before]`: a room's messages (any room, as `/who`
    /// shows any room's members), or this account's private conversation with `nick`.
    async fn history(&mut self, target: Option<Target>, count: Option<usize>, before: Option<u64>) {
        let limit = count.unwrap_or(DEFAULT_HISTORY).min(HISTORY_MAX);
        let before = before.unwrap_or(u64::MAX);
        let (target, query) = match target {
            None => match self.current_membership() {
                Some(m) => (
                    Target::Room(m.room().clone()),
                    Query::History {
                        room: m.channel.key.clone(),
                        before,
                        limit,
                    },
                ),
                None => {
                    return self.conn.error(
                        ErrorCode::NoCurrentRoom,
                        "you are in no room: /history #room",
                    );
                }
            },
            Some(Target::Room(room)) => {
                let key = room.folded();
                let room = self.hub.room_name(&key).unwrap_or(room);
                (
                    Target::Room(room),
                    Query::History {
                        room: key.into(),
                        before,
                        limit,
                    },
                )
            }
            Some(Target::Nick(nick)) => {
                // Private history belongs to accounts: a nickname anyone may take must
                // not show its former owner's conversations.
                let Some((key, since_ms)) = self
                    .identified
                    .as_deref()
                    .cloned()
                    .filter(|(key, _)| *key == self.registration.key)
                else {
                    return self.conn.error(
                        ErrorCode::NotRegistered,
                        "private history is kept for registered nicknames: /register first",
                    );
                };
                let query = Query::Private {
                    pair: pair(&key, &nick.folded()),
                    since_ms,
                    before,
                    limit,
                };
                (Target::Nick(nick), query)
            }
        };
        let rows = match self.hub.query(query) {
            Ok(answer) => match tokio::time::timeout(QUERY_LIMIT, answer).await {
                Ok(Ok(Ok(rows))) => Some(rows),
                _ => None,
            },
            Err(_busy) => None,
        };
        match rows {
            Some(rows) => self.history_batch(target, &rows),
            None => self.conn.error(
                ErrorCode::ServerBusy,
                "history is not available now; try again",
            ),
        }
    }
}

/// The key of a private conversation: both folded nicknames, sorted, space-separated.
fn pair(a: &str, b: &str) -> Arc<str> {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("{first} {second}").into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, Location, StoreOptions};
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;

    async fn next(wire: &mut Framed<tokio::io::DuplexStream, LineCodec>) -> ServerFrame {
        let line = tokio::time::timeout(Duration::from_secs(10), wire.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .unwrap();
        ServerFrame::parse(&line).unwrap()
    }

    /// rustls keeps the tail of what it is given until flushed, as a `BufWriter` does:
    /// the session's flush must get everything to the peer anyway.
    #[tokio::test]
    async fn a_flush_gets_what_the_stream_keeps_to_the_peer() {
        use tokio::io::{AsyncReadExt, BufWriter};
        let (near, mut far) = tokio::io::duplex(8);
        let mut conn = Connection {
            stream: BufWriter::new(near),
            reader: LineReader::new(LineCodec::new(1024)),
            out: BytesMut::new(),
            peer: Peer {
                addr: "127.0.0.1:1".parse().unwrap(),
                tls: false,
                proxied: false,
                websocket: false,
            },
            config: Arc::new(Config::unthrottled()),
        };
        let message = b"a batch longer than the pipe holds at once\n";
        conn.push_bytes(message);
        let mut got = vec![0; message.len()];
        let read = far.read_exact(&mut got);
        let (flushed, read) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(conn.flush(), read)
        })
        .await
        .expect("everything written arrives");
        flushed.unwrap();
        read.unwrap();
        assert_eq!(&got[..], &message[..], "each byte once, in order");
        assert_eq!(conn.out.capacity(), 0, "no buffer is held once flushed");
    }

    #[test]
    fn passwords_may_cross_tls_or_loopback_only() {
        let peer = |addr: &str, tls| Peer {
            addr: addr.parse().unwrap(),
            tls,
            proxied: false,
            websocket: false,
        };
        assert!(peer("127.0.0.1:1", false).secure());
        assert!(peer("[::1]:1", false).secure());
        assert!(peer("[::ffff:127.0.0.1]:1", false).secure());
        assert!(peer("192.0.2.7:1", true).secure());
        assert!(!peer("192.0.2.7:1", false).secure());
        assert!(!peer("[2001:db8::1]:1", false).secure());
        // Through a reverse proxy, loopback is the proxy, not the user.
        let proxied = |addr: &str, tls| Peer {
            proxied: true,
            websocket: true,
            ..peer(addr, tls)
        };
        assert!(!proxied("127.0.0.1:1", false).secure());
        assert!(proxied("127.0.0.1:1", true).secure());
    }

    /// A session over an in-memory pipe that claims to come from a documentation
    /// address (192.0.2.0/24, never routed): the plain-TCP, non-loopback case, which no
    /// loopback-only socket test can produce.
    #[tokio::test]
    async fn passwords_are_refused_in_the_clear() {
        let opened = store::open(&Location::Memory, StoreOptions::default()).unwrap();
        let rooms = crate::hub::RoomLimits {
            capacity: 16,
            buffer: 64 * 1024,
            total_buffer: 1024 * 1024,
            total: 10,
            per_address: 10,
        };
        let hub = Arc::new(Hub::new(
            rooms,
            0,
            opened.store,
            opened.next_id,
            opened.accounts,
        ));
        let hash = crate::password::hash("correct horse").unwrap();
        assert!(matches!(hub.set_account("alice", hash, false), Ok(Ok(_))));
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let peer = Peer {
            addr: "192.0.2.7:40000".parse().unwrap(),
            tls: false,
            proxied: false,
            websocket: false,
        };
        let config = Arc::new(Config::unthrottled());
        tokio::spawn(serve(Box::new(Start {
            stream: tokio::io::BufWriter::new(theirs),
            peer,
            hub,
            deadline: Instant::now() + config.handshake_timeout,
            config,
            shutdown: CancellationToken::new(),
        })));
        let mut wire = Framed::new(ours, LineCodec::new(chat_proto::CLIENT_MAX_LINE));
        assert_eq!(next(&mut wire).await, ServerFrame::NickPrompt);
        wire.send("alice").await.unwrap();
        // No PASS prompt: the password is never asked for in the clear.
        assert!(matches!(
            next(&mut wire).await,
            ServerFrame::Error {
                code: ErrorCode::InsecureTransport,
                ..
            }
        ));
        assert_eq!(next(&mut wire).await, ServerFrame::NickPrompt);
        wire.send("bob").await.unwrap();
        assert!(matches!(next(&mut wire).await, ServerFrame::Welcome { .. }));
        wire.send("/register correct horse").await.unwrap();
        let refused = loop {
            if let ServerFrame::Error { code, .. } = next(&mut wire).await {
                break code;
            }
        };
        assert_eq!(refused, ErrorCode::InsecureTransport);
    }
}

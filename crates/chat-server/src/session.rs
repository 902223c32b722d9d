//! One task per connection: the handshake, then a loop that selects over the socket, the
//! rooms the session is in, its private mailbox and the shutdown token.
//!
//! Output is batched: whatever is ready (room events, private messages, replies) is
//! appended to one buffer, and the buffer goes to the socket in one write. Room events
//! arrive as bytes encoded once by the sender and shared by every member.

use crate::config::Config;
use crate::flood::TokenBucket;
use crate::hub::{Hub, Joined, now, same_event};
use crate::mailbox::{Mailbox, SendError, mailbox};
use crate::reader::{LineReader, Source};
use bytes::{Bytes, BytesMut};
use chat_proto::{
    Command, CommandError, ErrorCode, LineCodec, LineError, Nick, Room, ServerFrame, command::HELP,
};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::{Instant, Sleep};

use tokio_util::sync::CancellationToken;
use tracing::{Span, info};

/// Output beyond which the session stops collecting ready events and writes.
const BATCH_LIMIT: usize = 64 * 1024;

/// Lines a session handles before it yields to other tasks.
const LINES_PER_TURN: usize = 32;

/// Longest wait to write a goodbye (`BYE` after `/quit` or a handshake timeout).
const FAREWELL_LIMIT: Duration = Duration::from_secs(5);

/// Nicknames per `MEMBERS` frame and rooms per `ROOMS` frame, so that no frame comes
/// near a client's line limit.
const LIST_CHUNK: usize = 100;

/// Why a session ended; told to its rooms in the `QUIT` event and logged.
type Reason = String;

/// How a connection reached the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// The client's address.
    pub(crate) addr: SocketAddr,
    /// Whether the connection is encrypted (TLS).
    pub(crate) tls: bool,
}

impl Peer {
    /// Whether a password may cross this connection: TLS, or loopback (which never leaves
    /// the machine).
    pub(crate) fn secure(&self) -> bool {
        self.tls || self.addr.ip().to_canonical().is_loopback()
    }
}

/// Runs one connection from accept (and TLS handshake) to close.
pub(crate) async fn serve<R: Source, W: AsyncWrite + Send + Unpin>(
    read: R,
    write: W,
    peer: Peer,
    hub: Arc<Hub>,
    config: Arc<Config>,
    shutdown: CancellationToken,
) {
    info!("connected");
    let mut conn = Connection {
        reader: LineReader::new(read, LineCodec::new(config.max_line)),
        writer: write,
        out: BytesMut::new(),
        peer,
        config,
    };
    let reason = match conn.handshake(&hub, &shutdown).await {
        Ok((nick, mailbox)) => {
            Span::current().record("nick", nick.as_str());
            info!("handshake complete");
            let registration = Registration {
                hub: hub.clone(),
                key: nick.folded(),
                reason: None,
            };
            let mut session = Session {
                conn,
                hub,
                nick,
                registration,
                mailbox,
                rooms: Vec::new(),
                current: None,
                pong: None,
            };
            let reason = session.run(&shutdown).await;
            session.registration.reason = Some(reason.clone());
            reason
        }
        Err(reason) => reason,
    };
    info!(reason = %reason, "disconnected");
}

/// The socket and its output buffer.
struct Connection<R, W> {
    reader: LineReader<R>,
    writer: W,
    /// Frames waiting to be written, in order.
    out: BytesMut,
    peer: Peer,
    config: Arc<Config>,
}

impl<R: Source, W: AsyncWrite + Send + Unpin> Connection<R, W> {
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
                self.writer.write_buf(&mut self.out),
            )
            .await
            {
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io_reason(&e)),
                Err(_) => {
                    return Err(format!(
                        "slow consumer: no output accepted for {:?}",
                        self.config.write_timeout
                    ));
                }
            }
        }
        // Everything is written: hold no buffer while idle (the next batch allocates
        // afresh, which costs far less than the write it goes with).
        self.out = BytesMut::new();
        Ok(())
    }

    /// How long a goodbye may take to write before the connection is dropped anyway.
    fn farewell_limit(&self) -> Duration {
        self.config.write_timeout.min(FAREWELL_LIMIT)
    }

    /// Sends a last frame and closes, without waiting longer than `limit`.
    async fn close_with(&mut self, frame: ServerFrame, limit: Duration) {
        self.push(&frame);
        let _ = tokio::time::timeout(limit, async {
            let _ = self.writer.write_all_buf(&mut self.out).await;
            let _ = self.writer.shutdown().await;
        })
        .await;
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

    /// The original program's exchange: `NICK`, a nickname, again until one is free.
    async fn handshake(
        &mut self,
        hub: &Hub,
        shutdown: &CancellationToken,
    ) -> Result<(Nick, Mailbox), Reason> {
        let timeout = self.config.handshake_timeout;
        let result = tokio::select! {
            result = tokio::time::timeout(timeout, self.choose_nick(hub)) => match result {
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
        result
    }

    async fn choose_nick(&mut self, hub: &Hub) -> Result<(Nick, Mailbox), Reason> {
        self.push(&ServerFrame::NickPrompt);
        // Flood control holds for nickname attempts too: each taken one costs the hub lock.
        let mut bucket = TokenBucket::new(
            self.config.flood_burst,
            self.config.flood_rate,
            Instant::now(),
        );
        loop {
            self.flush().await?;
            let line = match self.reader.next_line().await {
                None => return Err("closed during handshake".into()),
                Some(Err(e)) => return Err(io_reason(&e)),
                Some(Ok(Err(e))) => {
                    self.line_error(e);
                    self.push(&ServerFrame::NickPrompt);
                    continue;
                }
                Some(Ok(Ok(line))) => line,
            };
            if let Some(at) = bucket.as_mut().and_then(|b| b.take(Instant::now())) {
                tokio::time::sleep_until(at).await;
            }
            let answer = line.trim();
            match Nick::new(answer) {
                Err(e) => self.error(
                    ErrorCode::NickInvalid,
                    format!("{answer:?} is not a valid nickname: {e}"),
                ),
                Ok(nick) => {
                    let (tx, rx) = mailbox(self.config.mailbox_capacity);
                    match hub.register(&nick, tx) {
                        Ok(()) => return Ok((nick, rx)),
                        Err(_) => {
                            self.error(ErrorCode::NickTaken, format!("nickname {nick} is taken"))
                        }
                    }
                }
            }
            self.push(&ServerFrame::NickPrompt);
        }
    }
}

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
    /// The room's folded name.
    key: String,
    /// The room's canonical name.
    room: Room,
    /// For sending to the room without going through the hub.
    tx: broadcast::Sender<Bytes>,
    /// The room's events for this session.
    rx: broadcast::Receiver<Bytes>,
}

/// Waits for an event from any of the rooms; never completes with no room. Cancel-safe:
/// `Receiver::recv` is.
async fn next_room_event(rooms: &mut [Membership]) -> (usize, Result<Bytes, RecvError>) {
    match rooms {
        [] => std::future::pending().await,
        // Nearly everyone is in one room: no allocation on the way.
        [only] => (0, only.rx.recv().await),
        many => {
            let waits = many
                .iter_mut()
                .enumerate()
                .map(|(index, m)| Box::pin(async move { (index, m.rx.recv().await) }));
            futures::future::select_all(waits).await.0
        }
    }
}

/// A connection after its handshake.
struct Session<R, W> {
    conn: Connection<R, W>,
    hub: Arc<Hub>,
    nick: Nick,
    registration: Registration,
    /// Private messages addressed to this session.
    mailbox: Mailbox,
    /// The rooms it is in (at most `--max-rooms`, so a short list beats a map: one room
    /// costs a few dozen bytes instead of a map node).
    rooms: Vec<Membership>,
    /// A `/ping` waiting to be answered; no line is read meanwhile.
    pong: Option<PendingPong>,
    /// Folded name of the room bare lines go to.
    current: Option<String>,
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

    fn is_armed(&self) -> bool {
        self.0.is_some()
    }

    async fn expired(&mut self) {
        match &mut self.0 {
            Some(sleep) => sleep.await,
            None => std::future::pending().await,
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

impl<R: Source, W: AsyncWrite + Send + Unpin> Session<R, W> {
    fn membership(&self, key: &str) -> Option<&Membership> {
        self.rooms.iter().find(|m| m.key == key)
    }

    async fn run(&mut self, shutdown: &CancellationToken) -> Reason {
        self.conn.push(&ServerFrame::Welcome {
            nick: self.nick.clone(),
            text: format!("Welcome to the chat, {}!", self.nick),
        });
        self.join(&Room::general());
        let config = self.conn.config.clone();
        let mut bucket = TokenBucket::new(config.flood_burst, config.flood_rate, Instant::now());
        // Set while flood control holds back the client's next line.
        let mut read_at: Option<Instant> = None;
        let mut last_input = Instant::now();
        let mut lines_this_turn = 0;
        let mut timer = Timer::default();
        loop {
            if lines_this_turn >= LINES_PER_TURN {
                // Let the room's other members run before reading more: a client whose
                // lines are all buffered would otherwise publish far more than a room
                // holds before any member gets to read it.
                lines_this_turn = 0;
                tokio::task::yield_now().await;
            }
            self.collect_ready(BATCH_LIMIT);
            if self
                .pong
                .as_ref()
                .is_some_and(|p| p.remaining.iter().all(|&r| r == 0))
            {
                let token = self.pong.take().and_then(|p| p.token);
                self.conn.push(&ServerFrame::Pong { token });
            }
            if let Err(reason) = self.conn.flush().await {
                return reason;
            }
            let idle_deadline = config
                .idle_timeout
                .and_then(|idle| last_input.checked_add(idle));
            timer.set(read_at.into_iter().chain(idle_deadline).min());
            tokio::select! {
                () = timer.expired(), if timer.is_armed() => {
                    let now = Instant::now();
                    if read_at.is_some_and(|at| at <= now) {
                        read_at = None;
                    }
                    if idle_deadline.is_some_and(|at| at <= now) {
                        let reason = format!("idle timeout: nothing received for {:?}", config.idle_timeout.unwrap_or_default());
                        let limit = self.conn.farewell_limit();
                        self.conn.close_with(ServerFrame::Bye { reason: reason.clone() }, limit).await;
                        return reason;
                    }
                }
                _ = shutdown.cancelled() => {
                    let grace = self.conn.config.shutdown_grace;
                    self.conn.close_with(ServerFrame::Bye { reason: "server shutting down".into() }, grace).await;
                    return "server shutting down".into();
                }
                line = self.conn.reader.next_line(), if read_at.is_none() && self.pong.is_none() => match line {
                    None => return "connection closed".into(),
                    Some(Err(e)) => return io_reason(&e),
                    Some(Ok(line)) => {
                        let now = Instant::now();
                        last_input = now;
                        lines_this_turn += 1;
                        read_at = bucket.as_mut().and_then(|b| b.take(now));
                        match line {
                            Err(e) => self.conn.line_error(e),
                            Ok(line) => if let Flow::Quit(reason) = self.handle_line(&line) {
                                let limit = self.conn.farewell_limit();
                                self.conn.close_with(ServerFrame::Bye { reason: reason.clone() }, limit).await;
                                return reason;
                            },
                        }
                    }
                },
                bytes = self.mailbox.recv() => self.conn.push_bytes(&bytes),
                (index, event) = next_room_event(&mut self.rooms) => self.room_event(index, event),
            }
        }
    }

    /// Appends events that are ready without waiting until the output holds `limit`
    /// bytes. Called after each line, it also puts the echo of the session's own message
    /// before the reply to its next line.
    ///
    /// Receivers are read with `try_recv`, one event per room per pass so that a busy
    /// room cannot starve a quiet one; that needs no waker, no future and no lock beyond
    /// the slot's, which is what the profile of a busy room asked for.
    fn collect_ready(&mut self, limit: usize) {
        loop {
            while let Some(bytes) = self.mailbox.try_recv() {
                self.conn.push_bytes(&bytes);
            }
            let mut progressed = false;
            for index in 0..self.rooms.len() {
                if self.conn.out.len() >= limit {
                    return;
                }
                match self.rooms[index].rx.try_recv() {
                    Ok(bytes) => self.delivered(index, &bytes),
                    Err(TryRecvError::Lagged(missed)) => self.lagged(index, missed),
                    Err(TryRecvError::Empty | TryRecvError::Closed) => continue,
                }
                progressed = true;
            }
            if !progressed || self.conn.out.len() >= limit {
                return;
            }
        }
    }

    fn room_event(&mut self, index: usize, event: Result<Bytes, RecvError>) {
        match event {
            Ok(bytes) => self.delivered(index, &bytes),
            Err(RecvError::Lagged(missed)) => self.lagged(index, missed),
            // The sender lives in the hub as long as the room has members, us included.
            Err(RecvError::Closed) => {}
        }
    }

    fn delivered(&mut self, index: usize, bytes: &Bytes) {
        self.conn.push_bytes(bytes);
        self.count_toward_pong(index, 1);
    }

    fn count_toward_pong(&mut self, index: usize, events: u64) {
        if let Some(remaining) = self.pong.as_mut().and_then(|p| p.remaining.get_mut(index)) {
            *remaining = remaining.saturating_sub(events);
        }
    }

    fn lagged(&mut self, index: usize, missed: u64) {
        self.count_toward_pong(index, missed);
        let room = self.rooms[index].room.clone();
        tracing::debug!(%room, missed, "lagged");
        self.conn.push(&ServerFrame::Lagged { room, missed });
    }

    fn handle_line(&mut self, line: &str) -> Flow {
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
            Command::Register(_) | Command::Password(_) | Command::History { .. } => {
                self.conn
                    .error(ErrorCode::UnknownCommand, "not available yet".to_owned());
            }
            Command::Ping(token) => {
                // PONG waits until the events queued for this session now, its echoes
                // among them, have gone out in ordinary batches; no line is read meanwhile.
                let remaining = self.rooms.iter().map(|m| m.rx.len() as u64).collect();
                self.pong = Some(PendingPong { token, remaining });
            }
        }
        Flow::Continue
    }

    fn say(&mut self, text: String, action: bool) {
        let Some(m) = self.current.as_ref().and_then(|key| self.membership(key)) else {
            self.conn.error(
                ErrorCode::NoCurrentRoom,
                "you are in no room: /join #room first",
            );
            return;
        };
        let (room, from, time) = (m.room.clone(), self.nick.clone(), now());
        let frame = if action {
            ServerFrame::Action {
                room,
                from,
                time,
                id: self.hub.next_id(),
                text,
            }
        } else {
            ServerFrame::Message {
                room,
                from,
                time,
                id: self.hub.next_id(),
                text,
            }
        };
        // Encoded once; every member, the sender included, gets these bytes.
        let _ = m.tx.send(frame.to_bytes());
    }

    fn join(&mut self, room: &Room) {
        let key = room.folded();
        let limit = self.conn.config.max_rooms;
        if self.rooms.len() >= limit && self.membership(&key).is_none() {
            let text = format!("you are in {limit} rooms, the most allowed: /part one first");
            return self.conn.error(ErrorCode::TooManyRooms, text);
        }
        match self.hub.join(&self.registration.key, room) {
            Joined::Already => {}
            Joined::New {
                room,
                tx,
                rx,
                join,
                missed,
                members,
            } => {
                self.conn.push_bytes(&join);
                if missed > 0 {
                    self.conn.push(&ServerFrame::Lagged {
                        room: room.clone(),
                        missed,
                    });
                }
                self.rooms.push(Membership {
                    key: key.clone(),
                    room: room.clone(),
                    tx,
                    rx,
                });
                for chunk in members.chunks(LIST_CHUNK) {
                    self.conn.push(&ServerFrame::Members {
                        room: room.clone(),
                        nicks: chunk.to_vec(),
                    });
                }
            }
        }
        self.current = Some(key.clone());
        let room = self.membership(&key).map(|m| m.room.clone());
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
        // listening: the leaver sees exactly what the others saw before it left.
        if let Some(index) = self.rooms.iter().position(|m| m.key == key) {
            let mut seen = false;
            while !seen {
                match self.rooms[index].rx.try_recv() {
                    Ok(bytes) => {
                        seen = part.as_ref().is_some_and(|p| same_event(p, &bytes));
                        self.conn.push_bytes(&bytes);
                    }
                    Err(TryRecvError::Lagged(missed)) => self.lagged(index, missed),
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            self.rooms.remove(index);
            if !seen && let Some(part) = &part {
                // The room's buffer overflowed past it: show it anyway.
                self.conn.push_bytes(part);
            }
        }
        if self.current.as_deref() == Some(key.as_str()) {
            self.current = self.rooms.iter().map(|m| &m.key).min().cloned();
            let room = self
                .current
                .as_ref()
                .and_then(|k| self.membership(k))
                .map(|m| m.room.clone());
            self.conn.push(&ServerFrame::Current { room });
        }
    }

    fn who(&mut self, room: Option<Room>) {
        let room = match room.or_else(|| {
            self.current
                .as_ref()
                .and_then(|k| self.membership(k))
                .map(|m| m.room.clone())
        }) {
            Some(room) => room,
            None => {
                return self
                    .conn
                    .error(ErrorCode::NoCurrentRoom, "you are in no room: /who #room");
            }
        };
        match self.hub.members(&room) {
            Some((room, members)) => {
                for chunk in members.chunks(LIST_CHUNK) {
                    self.conn.push(&ServerFrame::Members {
                        room: room.clone(),
                        nicks: chunk.to_vec(),
                    });
                }
            }
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
        let frame = ServerFrame::Private {
            from: self.nick.clone(),
            to: to.clone(),
            time: now(),
            id: self.hub.next_id(),
            text,
        };
        let bytes = frame.to_bytes();
        if to.folded() == self.registration.key {
            // A note to self: shown once.
            return self.conn.push_bytes(&bytes);
        }
        match mailbox.try_send(bytes.clone()) {
            Ok(()) => self.conn.push_bytes(&bytes),
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
        match self.hub.rename(&self.registration.key, &new) {
            Err(_) => self
                .conn
                .error(ErrorCode::NickTaken, format!("nickname {new} is taken")),
            Ok(alone) => {
                info!(old = %self.nick, new = %new, "renamed");
                self.registration.key = new.folded();
                self.nick = new;
                if let Some(bytes) = alone {
                    self.conn.push_bytes(&bytes);
                }
            }
        }
    }
}

//! One user as a member of the chat, whatever its door: the rooms it is in and its place
//! in each, store answers it waits for (history after a join, refills after lagging, a
//! `/history` page, a password hash), the pacing of its input and the `PONG` ordering
//! rule. No socket and no wire type: a door drives a [`Member`] and gives it an
//! [`Output`] that writes its own form of what the member has to say.
//!
//! Room events are copied into the output as the door's bytes for them, encoded at most
//! once per event and door ([`Event::encoded`]).

use super::ban::{BAN_LIMIT, Ban, BanTarget, BansFull};
use super::error::{self, Refusal};
use super::event::{Event, Flavour, Ident, Kind, RoomName, Source};
use super::flood::TokenBucket;
use super::hub::{
    Activity, Channel, Departure, Hub, Joined, Members, ModeOutcome, Pass, Topic, Who, Whois,
};
use super::mailbox::{Mailbox, SendError};
use super::op::{Op, Outcome, Said, Shown};
use super::password::HashError;
use super::ring::{Cursor, Lagged, TryRecvError, Waiter};
use super::room::{Identity, parse_changes};
use super::store::{Answer, Of, Query, Span, StoreError, pair};
use crate::config::Config;
use chat_proto::name::{Nick, Room};
use futures::FutureExt;
use futures::future::Either;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

/// Events copied from a room's ring under one read lock, at most: a bounded time for a
/// sender to wait for the lock.
const DRAIN_CHUNK: usize = 64;

/// Events a refill asks the store for at a time: a bounded batch, written out before the
/// next is asked for.
const REFILL_BATCH: u64 = 256;

/// Longest wait for an answer to a request (`/history`, a password hash) before the
/// member is told the server is busy.
pub(crate) const REQUEST_LIMIT: Duration = Duration::from_secs(5);

/// Lines a session handles before it yields to other tasks.
const LINES_PER_TURN: usize = 32;

/// Most events `/history` gives at once.
pub(crate) use crate::config::HISTORY_MAX;

/// A door's encoder of events in one wire flavour (see [`Output::frames_encoder`]).
pub(crate) type Encoder = fn(&Event) -> Box<[u8]>;

/// How a door writes what a member has to say. Every method appends to the door's
/// output, in call order.
pub(crate) trait Output {
    /// A room event, a private message or a refilled event, in the door's form.
    fn event(&mut self, event: &Event);
    /// Who is in a room, after its join event (not called for a quiet room).
    fn members(&mut self, room: &RoomName, members: Members<'_, '_>);
    /// The member's own join, and the room as of it: its members (`None` for a quiet
    /// room) and its topic, if it has one. Written in that order unless the door wants
    /// another.
    fn joined(&mut self, join: &Event, members: Option<Members<'_, '_>>, topic: Option<&Topic>) {
        self.event(join);
        if let Some(room) = join.room() {
            if let Some(members) = members {
                self.members(room, members);
            }
            if let Some(topic) = topic {
                self.topic(room, Some(topic));
            }
        }
    }
    /// A room's topic (`None`: it has none): asked for, or after a join's members when
    /// the room has one.
    fn topic(&mut self, room: &RoomName, topic: Option<&Topic>);
    /// The member's current room changed without its asking (it was kicked from the
    /// current one): now `room`, or none. Doors without a current room ignore it.
    fn current(&mut self, room: Option<&RoomName>);
    /// `missed` events of `room` are lost for this member; what follows is live.
    fn lagged(&mut self, room: &RoomName, missed: u64);
    /// A page of history (`target` is a room or the other party), oldest first; `asked`
    /// when the user asked for it (a join's history is not written when empty).
    fn history(&mut self, target: &HistoryOf, events: &[Event], asked: bool);
    /// The member's message to a room has the id `id` (in a cluster, once the log has
    /// it: its echo comes next).
    fn said(&mut self, _id: u64) {}
    /// The member's nickname is now `nick` (in a cluster, once the log has the rename).
    fn renamed(&mut self, _nick: &Nick) {}
    /// An account change: registered, password changed.
    fn account(&mut self, nick: &Nick, change: AccountChange);
    /// The member is now the server operator `name`.
    fn oper(&mut self, name: &str);
    /// A refusal of the member's last request.
    fn refused(&mut self, refusal: Refusal);
    /// The answer to a ping, after everything earlier lines caused.
    fn pong(&mut self, token: Option<String>);
    /// About `events` room events are about to be given to [`Output::event`]: the output
    /// may make room for them at once.
    fn expect(&mut self, _events: usize) {}
    /// The door's encoder of [`Flavour::Native`], if it writes every room event in it,
    /// byte for byte as every other member gets it: the member then copies a run of a
    /// room's frames at once ([`Output::frames`]) instead of giving [`Output::event`] one
    /// event at a time. A ring keeps one run of frames, so one flavour has runs: the
    /// native one, the same bytes for every member (TCP, TLS and WebSocket alike); an IRC
    /// client's lines depend on its capabilities. `None` (the default): event by event.
    fn frames_encoder(&self) -> Option<Encoder> {
        None
    }
    /// The frames of `events` room events, end to end, as [`Output::frames_encoder`]
    /// made them.
    fn frames(&mut self, _bytes: &[u8], _events: usize) {}
    /// `events` events were encoded with [`Output::frames_encoder`] for this output (see
    /// [`Output::take_encodings`]).
    fn encoded(&mut self, _events: u64) {}
    /// Bytes waiting to be written.
    fn pending(&self) -> usize;
    /// Events this output encoded (rather than found encoded) since it was last asked;
    /// the member counts them in the metrics.
    fn take_encodings(&mut self) -> u64;
    /// Events given to [`Output::event`] that this door did not show, since it was last
    /// asked: the member does not count them as delivered.
    fn take_withheld(&mut self) -> u64 {
        0
    }
}

/// Which messages of a span a [`Member::history_span`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// The first of `span`, or its last when `latest`.
    Span { span: Span, latest: bool },
    /// The last half of the limit in `older`, then the first of `newer`.
    Around { older: Span, newer: Span },
}

/// What a history page is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HistoryOf {
    /// A room.
    Room(Room),
    /// The private conversation with this nickname.
    Nick(Nick),
}

/// What happened to the member's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountChange {
    /// `/register`: the nickname is now an account.
    Registered,
    /// `/password`: its password changed.
    PasswordChanged,
}

/// The nickname a member holds in the hub. Leaving the hub happens when the member is
/// dropped, so it happens exactly once whatever ends the session (quit, close, error,
/// panic).
struct Registration {
    /// The folded nickname; updated on rename.
    key: String,
    /// Told to the rooms; set just before the session ends.
    reason: Option<String>,
}

impl Drop for Member {
    fn drop(&mut self) {
        let reason = self
            .registration
            .reason
            .as_deref()
            .unwrap_or("session ended");
        self.hub.leave(&self.registration.key, reason);
    }
}

/// A room the member is in.
struct Membership {
    /// The room: its names, and its channel for publishing without the hub.
    channel: Arc<Channel>,
    /// This member's place in the room's events.
    cursor: Cursor,
    /// The id of the room's last event this member was given (or its join): where a
    /// refill starts after lagging.
    last_id: u64,
    /// Waiting for the store (see [`Member::holds`]): the room's live events wait
    /// meanwhile; other rooms' do not.
    held: bool,
    /// The wait on the room's ring, kept across waits while the member is in several
    /// rooms (one room is waited on without it).
    waiter: Option<Waiter>,
}

impl Membership {
    fn key(&self) -> &str {
        self.channel.key()
    }

    fn room(&self) -> &Arc<RoomName> {
        &self.channel.room
    }

    fn is_live(&self) -> bool {
        !self.held
    }
}

/// Something the member waits for: a store answer that must go out before a room's next
/// live event, or the answer to a request (no line is read meanwhile, but rooms are
/// delivered and shutdown is heard).
pub(crate) struct Hold {
    /// The room's folded name, for a room's hold.
    key: Option<Arc<str>>,
    pending: Pending,
    why: HoldFor,
}

impl Hold {
    /// Whether no line is read meanwhile: a request's hold, or an operation in a
    /// cluster's log (a message's holds its room too, so that its echo follows its
    /// answer).
    fn blocks_input(&self) -> bool {
        self.key.is_none() || matches!(self.why, HoldFor::Logged(_))
    }
}

/// What a hold waits on.
pub(crate) enum Pending {
    Store(oneshot::Receiver<Answer>),
    /// An operation in a cluster's log, until this node has applied it.
    Logged(oneshot::Receiver<Outcome>),
    Hash(Hashing),
    Verify(Verifying),
}

/// A password being checked on its own task (`/oper`); aborted when dropped, as
/// [`Hashing`] is.
pub(crate) struct Verifying(JoinHandle<bool>);

impl Drop for Verifying {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A password being hashed on its own task; dropped with its hold (the member parted
/// from its session, or the answer came too late), it leaves the hasher's queue.
pub(crate) struct Hashing(JoinHandle<Result<String, HashError>>);

impl Drop for Hashing {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) enum HoldFor {
    /// The room's latest messages, shown after joining it.
    JoinHistory,
    /// Events lost by lagging: `remaining` of them after `last_id`, ending before
    /// `next`, the first event still in the room's buffer (delivered after them).
    Refill {
        remaining: u64,
        next: Option<Arc<Event>>,
    },
    /// A `/history` page.
    History(HistoryOf),
    /// A `/register` (`change: false`) or `/password`.
    Password { change: bool },
    /// An `/oper` as the operator `name`.
    Oper { name: String },
    /// An operation in a cluster's log.
    Logged(Logging),
}

/// What a session waits for the cluster's log to apply.
pub(crate) enum Logging {
    /// A message (its outcome says only whether it was refused).
    Say,
    /// A join.
    Join,
    /// Leaving the room of this folded name.
    Part(Arc<str>),
    /// A private message: the sender is shown its copy.
    Private,
    /// A rename.
    Rename,
    /// An account made, or its password changed.
    Account { change: bool },
    /// Anything else: only a refusal is shown.
    Applied,
}

/// What a hold's wait ended with.
pub(crate) enum Answered {
    Store(Answer),
    Logged(Outcome),
    Hash(Option<String>),
    Verified(bool),
}

/// What ended a member's wait (the door adds its client's input).
pub(crate) enum Wake {
    /// The timer went off.
    Timer,
    /// The server is shutting down.
    Shutdown,
    /// A private message for this member.
    Mail(Arc<Event>),
    /// A hold was answered (boxed: rare, and the largest variant).
    Answer(Box<(Hold, Answered)>),
    /// One of the rooms had an event.
    Room(usize, Result<Arc<Event>, Lagged>),
}

/// A `/ping` whose `PONG` waits for the events that were queued for the member when it
/// came: so the `PONG` follows everything that earlier lines caused, without collecting
/// an unbounded backlog in one go.
struct PendingPong {
    token: Option<String>,
    /// Events still to deliver from each room (same order as `Member::rooms`).
    remaining: Vec<u64>,
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
    /// When a request's answer is due (see [`REQUEST_LIMIT`]).
    request_due: Option<Instant>,
    /// Armed for the earliest of the above.
    timer: Timer,
}

/// The member's one timer, allocated only while armed: most members never arm it, and a
/// timer held inline in every session would cost each of them its size.
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

/// One user in the chat (see the module docs).
pub(crate) struct Member {
    hub: Arc<Hub>,
    /// Who the member is; every event it causes shares it.
    source: Arc<Source>,
    registration: Registration,
    /// Private messages addressed to it, and the shutdown notice.
    mailbox: Mailbox<Arc<Event>>,
    /// The rooms it is in (at most `--max-rooms`, so a short list beats a map: one room
    /// costs a few dozen bytes instead of a map node).
    rooms: Vec<Membership>,
    /// What it waits for (history after a join, refills after lagging, requests).
    holds: Vec<Hold>,
    /// A ping waiting to be answered; no line is read meanwhile.
    pong: Option<Box<PendingPong>>,
    /// Folded name of the room bare lines go to.
    current: Option<Arc<str>>,
    /// When the account it identified to (or registered) was created: private history
    /// before that belonged to someone else.
    account_since: Option<i64>,
    /// The client's address (for rooms created and password work).
    ip: IpAddr,
    /// The limits (`--max-rooms`, `--history`, `--idle-timeout`, flood control).
    config: Arc<Config>,
    pace: Pace,
    /// When the client last sent a line, as `/whois` reads it (see [`Activity`]).
    activity: Arc<Activity>,
}

/// Whether `event` is the `KICK` of the member whose folded nickname is `key`. Inlined:
/// it runs for every event delivered, and a call cost more than the test (issue 17).
#[inline]
fn kicks(event: &Event, key: &str) -> bool {
    matches!(&event.kind, Kind::Kick { target, .. } if target.folded() == key)
}

/// The key of the private conversation of `a` and `b`.
fn pair_of(a: &Nick, b: &Nick) -> Arc<str> {
    pair(&a.folded(), &b.folded())
}

impl Member {
    /// The member of a session whose nickname the hub has registered for `source`
    /// (see [`Hub::register`], which gave `activity`); `account_since` when it
    /// identified to its account.
    pub(crate) fn new(
        hub: Arc<Hub>,
        source: Arc<Source>,
        activity: Arc<Activity>,
        mailbox: Mailbox<Arc<Event>>,
        account_since: Option<i64>,
        ip: IpAddr,
        config: Arc<Config>,
    ) -> Member {
        let now = Instant::now();
        Member {
            registration: Registration {
                key: source.nick.folded(),
                reason: None,
            },
            pace: Pace {
                bucket: TokenBucket::new(config.flood_burst, config.flood_rate, now),
                read_at: None,
                last_input: now,
                lines_this_turn: 0,
                request_due: None,
                timer: Timer::default(),
            },
            hub,
            source,
            activity,
            mailbox,
            rooms: Vec::new(),
            holds: Vec::new(),
            pong: None,
            current: None,
            account_since,
            ip,
            config,
        }
    }

    /// The hub.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The member's nickname.
    pub(crate) fn nick(&self) -> &Nick {
        &self.source.nick
    }

    /// Whether it identified to (or registered) its account.
    pub(crate) fn identified(&self) -> bool {
        self.account_since.is_some()
    }

    /// Sets why the session ended, which its rooms are told.
    pub(crate) fn set_reason(&mut self, reason: String) {
        self.registration.reason = Some(reason);
    }

    fn membership(&self, key: &str) -> Option<&Membership> {
        self.rooms.iter().find(|m| m.key() == key)
    }

    fn current_membership(&self) -> Option<&Membership> {
        self.current.as_ref().and_then(|key| self.membership(key))
    }

    /// The room bare lines go to, if any.
    pub(crate) fn current_room(&self) -> Option<&Room> {
        self.current_membership().map(|m| &m.room().name)
    }

    // ----- pacing -----

    /// Whether the client's next line may be read now: not while flood control holds it
    /// back, a ping waits for its `PONG`, or a request waits for its answer.
    pub(crate) fn reading(&self) -> bool {
        self.pace.read_at.is_none()
            && self.pong.is_none()
            && !self.holds.iter().any(Hold::blocks_input)
    }

    /// Whether the answer to the client's last line is still to come: a `PONG` waiting
    /// for the events before it, or a request waiting for the store or the hasher.
    pub(crate) fn answering(&self) -> bool {
        self.pong.is_some() || self.holds.iter().any(Hold::blocks_input)
    }

    /// Counts a line from the client; returns whether flood control now holds the next
    /// one back.
    pub(crate) fn line_received(&mut self) -> bool {
        let now = Instant::now();
        let pace = &mut self.pace;
        pace.last_input = now;
        self.activity.touch(self.hub.uptime_secs(now));
        pace.lines_this_turn += 1;
        pace.read_at = pace.bucket.as_mut().and_then(|b| b.take(now));
        let delayed = pace.read_at.is_some();
        if delayed {
            self.hub.metrics.flood_delayed();
        }
        delayed
    }

    /// Whether the session has handled [`LINES_PER_TURN`] lines since it last yielded
    /// (and should yield now); counts the yield.
    pub(crate) fn turn_over(&mut self) -> bool {
        let over = self.pace.lines_this_turn >= LINES_PER_TURN;
        if over {
            self.pace.lines_this_turn = 0;
        }
        over
    }

    /// When the member times out if the client stays quiet.
    fn idle_deadline(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout?;
        self.pace.last_input.checked_add(idle)
    }

    /// Arms the timer for the next deadline; call before waiting.
    pub(crate) fn arm_timer(&mut self) {
        let idle = self.idle_deadline();
        let pace = &mut self.pace;
        let next = [pace.read_at, idle, pace.request_due]
            .into_iter()
            .flatten()
            .min();
        pace.timer.set(next);
    }

    // ----- waiting -----

    /// Waits for the next thing to do: the shutdown notice or a private message, the
    /// timer, the client's input (polled by `input` while [`Member::reading`]), a hold's
    /// answer, a room event. Everything but the rooms is polled in place, holding no
    /// future; the order puts the client's input before the rooms, so that a busy room
    /// cannot starve it (the rooms are drained between waits anyway).
    pub(crate) async fn wait<T>(
        &mut self,
        mut input: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Result<Wake, T> {
        let reading = self.reading();
        let Member {
            mailbox,
            rooms,
            holds,
            pace,
            ..
        } = self;
        let mut room = std::pin::pin!(next_room_event(rooms));
        std::future::poll_fn(|cx| {
            match mailbox.poll_recv(cx) {
                Poll::Ready(Some(event)) => return Poll::Ready(Ok(Wake::Mail(event))),
                Poll::Ready(None) => return Poll::Ready(Ok(Wake::Shutdown)),
                Poll::Pending => {}
            }
            if pace.timer.poll_expired(cx).is_ready() {
                return Poll::Ready(Ok(Wake::Timer));
            }
            if reading && let Poll::Ready(line) = input(cx) {
                return Poll::Ready(Err(line));
            }
            if let Poll::Ready(answered) = poll_answer(holds, cx) {
                return Poll::Ready(Ok(Wake::Answer(Box::new(answered))));
            }
            room.as_mut()
                .poll(cx)
                .map(|(index, event)| Ok(Wake::Room(index, event)))
        })
        .await
    }

    /// Handles what ended a wait: `Err` when the session must end (the server shuts
    /// down, the client stayed quiet too long).
    pub(crate) fn woken(&mut self, wake: Wake, out: &mut impl Output) -> Result<(), Ended> {
        match wake {
            Wake::Timer => {
                let now = Instant::now();
                if self.pace.read_at.is_some_and(|at| at <= now) {
                    self.pace.read_at = None;
                }
                if self.pace.request_due.is_some_and(|at| at <= now) {
                    self.request_expired(out);
                }
                if self.idle_deadline().is_some_and(|at| at <= now) {
                    let idle = self.config.idle_timeout.unwrap_or_default();
                    return Err(Ended::Idle(idle));
                }
            }
            // The mailbox's shutdown notice also carries an operator's kill.
            Wake::Shutdown => {
                return Err(match self.hub.take_kill(&self.registration.key) {
                    Some(reason) => Ended::Killed(reason),
                    None => Ended::Shutdown,
                });
            }
            Wake::Mail(event) => self.mail(&event, out),
            Wake::Answer(answered) => {
                let (hold, answer) = *answered;
                self.answered(hold, answer, out);
            }
            Wake::Room(index, Ok(event)) => {
                out.event(&event);
                self.count_delivered(1, out);
                self.rooms[index].last_id = event.id;
                self.count_toward_pong(index, 1);
                if kicks(&event, &self.registration.key) {
                    self.drop_room(index, out);
                }
            }
            Wake::Room(index, Err(Lagged(missed))) => self.lagged(index, missed, out),
        }
        self.count_encodings(out);
        Ok(())
    }

    /// Counts what `out` encoded in the metrics; a door calls it after handing the
    /// member a line.
    pub(crate) fn count_encodings(&self, out: &mut impl Output) {
        self.hub.metrics.encoded(out.take_encodings());
    }

    /// Appends events that are ready, without waiting, until the output holds `limit`
    /// bytes; then the `PONG` if it is due. Called after each line, it also puts the echo
    /// of the member's own message before the reply to its next line.
    ///
    /// Each room's events are copied straight from its ring into the output, up to
    /// [`DRAIN_CHUNK`] of them under one read lock, a room at a time, so that a busy room
    /// cannot starve a quiet one; that needs no waker, no future and no reference count
    /// per event.
    pub(crate) fn collect_ready(&mut self, out: &mut impl Output, limit: usize) {
        // Counted once for the whole batch.
        let mut delivered = 0;
        let ready = self
            .rooms
            .iter()
            .filter(|m| m.is_live())
            .map(|m| m.channel.ring.pending(&m.cursor))
            .sum::<u64>();
        out.expect(usize::try_from(ready).unwrap_or(usize::MAX));
        let frames_encoder = out.frames_encoder();
        'collect: loop {
            while let Some(event) = self.mailbox.try_recv() {
                self.mail(&event, out);
            }
            let mut progressed = false;
            for index in 0..self.rooms.len() {
                if out.pending() >= limit {
                    break 'collect;
                }
                let key = &self.registration.key;
                let m = &mut self.rooms[index];
                if !m.is_live() {
                    continue;
                }
                let (ring, cursor, last_id) = (&m.channel.ring, &mut m.cursor, &mut m.last_id);
                let mut kicked = false;
                // A run of frames at once when the door takes them; a KICK, and a member
                // behind the ring's window of frames, read event by event below.
                let mut drained = Ok(None);
                if let Some(encode) = frames_encoder {
                    let mut encoded = 0;
                    drained = ring.drain_frames(
                        cursor,
                        DRAIN_CHUNK,
                        limit - out.pending(),
                        |event| {
                            (!matches!(event.kind, Kind::Kick { .. })).then(|| {
                                event.encoded(Flavour::Native, |event| {
                                    encoded += 1;
                                    encode(event)
                                })
                            })
                        },
                        |bytes, events, last| {
                            *last_id = last.id;
                            out.frames(bytes, events);
                        },
                    );
                    out.encoded(encoded);
                }
                let drained = match drained {
                    Ok(Some(taken)) => Ok(taken),
                    Err(lagged) => Err(lagged),
                    Ok(None) => ring.drain(cursor, DRAIN_CHUNK, |event| {
                        out.event(event);
                        *last_id = event.id;
                        // Nothing after its own KICK reaches the one kicked.
                        kicked = kicks(event, key);
                        !kicked && out.pending() < limit
                    }),
                };
                match drained {
                    Ok(0) => continue,
                    Ok(taken) => {
                        delivered += taken;
                        self.count_toward_pong(index, taken as u64);
                    }
                    Err(Lagged(missed)) => self.lagged(index, missed, out),
                }
                if kicked {
                    // The rooms' indices shift: start the round again.
                    self.drop_room(index, out);
                    continue 'collect;
                }
                progressed = true;
            }
            if !progressed || out.pending() >= limit {
                break;
            }
        }
        self.count_delivered(delivered, out);
        self.count_encodings(out);
        if self.holds.is_empty()
            && self
                .pong
                .as_ref()
                .is_some_and(|p| p.remaining.iter().all(|&r| r == 0))
        {
            let token = self.pong.take().and_then(|p| p.token);
            out.pong(token);
        }
    }

    /// A private message, an invitation, or an operators' notice.
    fn mail(&mut self, event: &Arc<Event>, out: &mut impl Output) {
        out.event(event);
        self.count_delivered(1, out);
    }

    /// Counts `events` just given to `out` as delivered, less those its door withheld
    /// (an IRC client's own message without `echo-message`, a second copy of a `QUIT`).
    fn count_delivered(&self, events: usize, out: &mut impl Output) {
        let withheld = usize::try_from(out.take_withheld()).unwrap_or(usize::MAX);
        self.hub.metrics.delivered(events.saturating_sub(withheld));
    }

    /// Forgets the room at `index` (the member was kicked from it): its holds, its place
    /// in a pending `PONG`, and, if it was the current room, the current room (the
    /// door is told the new one).
    fn drop_room(&mut self, index: usize, out: &mut impl Output) {
        let m = self.rooms.remove(index);
        if self.rooms.is_empty() {
            self.rooms = Vec::new();
        }
        self.holds.retain(|h| h.key.as_deref() != Some(m.key()));
        if let Some(pong) = self.pong.as_mut()
            && index < pong.remaining.len()
        {
            pong.remaining.remove(index);
        }
        if self.current.as_deref() == Some(m.key()) {
            self.current = self.rooms.iter().map(|m| m.channel.key()).min().cloned();
            let current = self.current_membership().map(|m| m.room().clone());
            out.current(current.as_deref());
        }
    }

    fn count_toward_pong(&mut self, index: usize, events: u64) {
        if let Some(remaining) = self.pong.as_mut().and_then(|p| p.remaining.get_mut(index)) {
            *remaining = remaining.saturating_sub(events);
        }
    }

    /// The member fell `missed` events behind the room's buffer: fetch them from the
    /// store, in order, before the room's next live event.
    fn lagged(&mut self, index: usize, mut missed: u64, out: &mut impl Output) {
        self.hub.metrics.refill();
        self.count_toward_pong(index, missed);
        tracing::debug!(nick = %self.source.nick, room = %self.rooms[index].room().name, missed, "lagged; refilling");
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
        self.refill(index, missed, next, out);
    }

    /// Asks the store for the next batch of a refill, or gives up on it.
    fn refill(
        &mut self,
        index: usize,
        remaining: u64,
        next: Option<Arc<Event>>,
        out: &mut impl Output,
    ) {
        let m = &self.rooms[index];
        let query = Query::After {
            room: m.channel.key().clone(),
            after: m.last_id,
            before: next.as_ref().map_or(u64::MAX, |e| e.id),
            limit: usize::try_from(remaining.min(REFILL_BATCH)).unwrap_or(usize::MAX),
        };
        match self.hub.query(query) {
            Ok(answer) => self.hold(
                Some(index),
                Pending::Store(answer),
                HoldFor::Refill { remaining, next },
            ),
            Err(_busy) => self.refill_failed(index, remaining, next, out),
        }
    }

    fn hold(&mut self, index: Option<usize>, pending: Pending, why: HoldFor) {
        let key = index.map(|index| {
            let m = &mut self.rooms[index];
            m.held = true;
            m.channel.key().clone()
        });
        // A page of history waits at most REQUEST_LIMIT; a password hash waits its turn
        // at the hasher, which serves one per address and a few at once (as the
        // handshake's password check does), without a clock of its own.
        if matches!(why, HoldFor::History(_)) {
            self.pace.request_due = Some(Instant::now() + REQUEST_LIMIT);
        }
        self.holds.push(Hold { key, pending, why });
    }

    /// What the store could not give back: say how much was lost, then carry on live.
    fn refill_failed(
        &mut self,
        index: usize,
        missed: u64,
        next: Option<Arc<Event>>,
        out: &mut impl Output,
    ) {
        let room = self.rooms[index].room().clone();
        tracing::debug!(nick = %self.source.nick, room = %room.name, missed, "lagged; store could not refill");
        out.lagged(&room, missed);
        self.hub.metrics.lagged(missed);
        if let Some(event) = next {
            out.event(&event);
            self.count_delivered(1, out);
            self.rooms[index].last_id = event.id;
        }
    }

    /// A history page did not come in time: the server is busy.
    fn request_expired(&mut self, out: &mut impl Output) {
        self.pace.request_due = None;
        let before = self.holds.len();
        self.holds.retain(|h| !matches!(h.why, HoldFor::History(_)));
        if self.holds.len() < before {
            out.refused(Refusal::Busy(error::Busy::History));
        }
    }

    /// A hold was answered.
    fn answered(&mut self, hold: Hold, answer: Answered, out: &mut impl Output) {
        if self.holds.is_empty() {
            // Nearly every member holds once, for its first join's history: give the
            // list's memory back.
            self.holds = Vec::new();
        }
        if matches!(hold.why, HoldFor::History(_)) {
            self.pace.request_due = None;
        }
        let index = match &hold.key {
            Some(key) => match self.rooms.iter().position(|m| **m.channel.key() == **key) {
                Some(index) => {
                    self.rooms[index].held = false;
                    Some(index)
                }
                // Parted meanwhile.
                None => return,
            },
            None => None,
        };
        let rows = match answer {
            Answered::Store(rows) => rows.map_err(|e| {
                tracing::warn!(nick = %self.source.nick, error = %e, "store query failed");
            }),
            Answered::Hash(hash) => return self.password_hashed(hold.why, hash, out),
            Answered::Logged(outcome) => return self.logged(hold.why, outcome, out),
            Answered::Verified(right) => return self.oper_verified(hold.why, right, out),
        };
        match (hold.why, index) {
            (HoldFor::JoinHistory, Some(index)) => {
                let rows = rows.unwrap_or_default();
                let target = HistoryOf::Room(self.rooms[index].room().name.clone());
                out.history(&target, &rows, false);
            }
            (HoldFor::History(target), _) => match rows {
                Ok(rows) => out.history(&target, &rows, true),
                Err(()) => out.refused(Refusal::Busy(error::Busy::History)),
            },
            (HoldFor::Refill { remaining, next }, Some(index)) => {
                let rows = rows.unwrap_or_default();
                let asked = remaining.min(REFILL_BATCH);
                let got = rows.len() as u64;
                for (n, row) in rows.iter().enumerate() {
                    out.event(row);
                    self.rooms[index].last_id = row.id;
                    if kicks(row, &self.registration.key) {
                        // Nothing after its own KICK reaches the one kicked.
                        self.count_delivered(n + 1, out);
                        self.drop_room(index, out);
                        return;
                    }
                }
                self.count_delivered(rows.len(), out);
                let remaining = remaining.saturating_sub(got);
                if got == asked && remaining > 0 {
                    self.refill(index, remaining, next, out);
                } else if remaining > 0 {
                    self.refill_failed(index, remaining, next, out);
                } else if let Some(event) = next {
                    out.event(&event);
                    self.count_delivered(1, out);
                    self.rooms[index].last_id = event.id;
                    if kicks(&event, &self.registration.key) {
                        self.drop_room(index, out);
                    }
                }
            }
            // A room's hold without its room, or a request's with one: never made.
            _ => {}
        }
    }

    // ----- requests -----

    /// Says `text` (an action when `action`) in `room`, which the member must be in, or
    /// in the current room. Returns the message's id; `None` in a cluster, where the
    /// message is sent once the log has it (the member holds meanwhile).
    pub(crate) fn say(
        &mut self,
        room: Option<&Room>,
        text: String,
        action: bool,
    ) -> Result<Option<u64>, Refusal> {
        let kind = if action {
            Kind::Action { text }
        } else {
            Kind::Message { text }
        };
        self.speak(room, kind)
    }

    /// Says `text` as a notice (IRC's `NOTICE`) in `room`, as [`Member::say`] does.
    pub(crate) fn notice(
        &mut self,
        room: Option<&Room>,
        text: String,
    ) -> Result<Option<u64>, Refusal> {
        self.speak(room, Kind::Notice { text })
    }

    fn speak(&mut self, room: Option<&Room>, kind: Kind) -> Result<Option<u64>, Refusal> {
        let m = match room {
            Some(room) => self
                .membership(&room.folded())
                .ok_or_else(|| Refusal::NotInRoom(room.clone()))?,
            None => self.current_membership().ok_or(Refusal::NoCurrentRoom)?,
        };
        // A moderated room, or one with bans, asks the hub; others cost nothing more.
        let gated = m.channel.is_gated();
        if gated {
            self.hub
                .may_speak(&self.registration.key, &m.channel, &self.identity())?;
        }
        if let Some(log) = self.hub.log() {
            let (what, text) = match kind {
                Kind::Action { text } => (Said::Action, text),
                Kind::Notice { text } => (Said::Notice, text),
                Kind::Message { text } => (Said::Message, text),
                _ => return Ok(None),
            };
            let op = Op::Say {
                nick: self.registration.key.clone(),
                room: m.channel.name().as_str().to_owned(),
                what,
                text,
                mask: gated.then(|| self.identity().mask),
            };
            let outcome = log.submit(op, None);
            let index = self.rooms.iter().position(|r| r.key() == m.key());
            self.hold(
                index,
                Pending::Logged(outcome),
                HoldFor::Logged(Logging::Say),
            );
            return Ok(None);
        }
        // Encoded once per door; every member, the sender included, gets the bytes.
        self.hub
            .publish(&m.channel, &self.source, kind)
            .map(|event| Some(event.id))
    }

    /// Who the member is, as room bans see it: `nick!user@host` from its door's ident,
    /// or `nick!nick@address` (lowercased), and its account.
    pub(crate) fn identity(&self) -> Identity {
        let nick = self.source.nick.as_str();
        let mask = match &self.source.ident {
            Some(ident) => format!("{nick}!{}@{}", ident.user, ident.host),
            None => format!("{nick}!{nick}@{}", self.ip.to_canonical()),
        };
        Identity {
            mask: mask.to_lowercase(),
            account: self.source.account.clone(),
        }
    }

    /// Joins `room` (creating it if need be) and makes it current: the join event and
    /// the member list go out first, the room's latest messages after them (once the
    /// store answers) and before any live event.
    pub(crate) fn join(
        &mut self,
        room: &Room,
        key: Option<&str>,
        out: &mut impl Output,
    ) -> Result<(), Refusal> {
        let folded = room.folded();
        let limit = self.config.max_rooms;
        if self.rooms.len() >= limit && self.membership(&folded).is_none() {
            return Err(Refusal::TooManyRooms { limit });
        }
        // The rooms a member creates count against its address, as its connections do.
        let ip = self.ip.to_canonical();
        let origin = (self.config.limit_loopback || !ip.is_loopback()).then_some(ip);
        let identity = self.identity();
        if let Some(log) = self.hub.log() {
            if self.membership(&folded).is_some() {
                self.current = Some(folded.into());
                return Ok(());
            }
            let op = Op::Join {
                nick: self.registration.key.clone(),
                room: room.as_str().to_owned(),
                key: key.map(str::to_owned),
                mask: identity.mask,
            };
            let outcome = log.submit(op, None);
            self.hold(
                None,
                Pending::Logged(outcome),
                HoldFor::Logged(Logging::Join),
            );
            return Ok(());
        }
        let pass = Pass {
            key,
            identity: &identity,
        };
        let joined = self.hub.join(
            &self.registration.key,
            room,
            origin,
            &pass,
            |join, members, topic| out.joined(join, members, topic),
        )?;
        self.enter_room(joined);
        self.current = self.membership(&folded).map(|m| m.channel.key().clone());
        Ok(())
    }

    /// Takes up a room just joined: listens to it, and asks for its latest messages.
    fn enter_room(&mut self, joined: Joined) {
        if let Joined::New {
            channel,
            cursor,
            join,
        } = joined
        {
            let history = self.config.history;
            let query = Query::History {
                room: channel.key().clone(),
                before: join.id,
                limit: history,
            };
            self.rooms.push(Membership {
                channel,
                cursor,
                last_id: join.id,
                held: false,
                waiter: None,
            });
            // Without history, or with the store too busy to answer, the room is simply
            // live at once.
            if history > 0
                && let Ok(answer) = self.hub.query(query)
            {
                let index = self.rooms.len() - 1;
                self.hold(Some(index), Pending::Store(answer), HoldFor::JoinHistory);
            }
        }
    }

    /// Logs `op` in the cluster's log, if the server is a node of a cluster; the member
    /// holds until this node has applied it. Whether it did (`false`: a single server,
    /// which does what the caller does next).
    fn log(&mut self, op: impl FnOnce(String) -> Op, logging: Logging) -> bool {
        let Some(log) = self.hub.log() else {
            return false;
        };
        let outcome = log.submit(op(self.registration.key.clone()), None);
        self.hold(None, Pending::Logged(outcome), HoldFor::Logged(logging));
        true
    }

    /// What the cluster's log gave for an operation of the member's (see
    /// [`Pending::Logged`]): what the same request gives at once on a single server.
    fn logged(&mut self, why: HoldFor, outcome: Outcome, out: &mut impl Output) {
        let HoldFor::Logged(logging) = why else {
            return;
        };
        match (logging, outcome) {
            (_, Outcome::NotLogged) => out.refused(Refusal::Busy(error::Busy::Cluster)),
            (Logging::Say, Outcome::Said(Err(refused)))
            | (Logging::Join, Outcome::Joined(Err(refused))) => out.refused(refused),
            (Logging::Join, Outcome::Joined(Ok(joined))) => {
                let (joined, shown) = *joined;
                if let Joined::New { join, .. } = &joined {
                    let Shown { members, topic } = &shown;
                    let mut list = members
                        .iter()
                        .flat_map(|(_, m)| m.iter().map(|(s, m)| (*s, m)));
                    let secret = members.as_ref().is_some_and(|(secret, _)| *secret);
                    let members = members.is_some().then(|| Members::new(secret, &mut list));
                    out.joined(join, members, topic.as_deref());
                    let key = join.room().map(|r| r.key.clone());
                    self.enter_room(joined);
                    self.current = key;
                    let current = self.current_membership().map(|m| m.room().clone());
                    out.current(current.as_deref());
                }
            }
            (Logging::Private, Outcome::Said(Ok(event))) => out.event(&event),
            // Its echo, in the room's events still held, comes next.
            (Logging::Say, Outcome::Said(Ok(event))) => out.said(event.id),
            (Logging::Account { change }, Outcome::Account(made)) => {
                self.account_made(made, change, out);
            }
            (Logging::Private, Outcome::Said(Err(refused)))
            | (Logging::Applied, Outcome::Applied(Err(refused)))
            | (Logging::Rename, Outcome::Renamed(Err(refused))) => out.refused(refused),
            (Logging::Rename, Outcome::Renamed(Ok(renamed))) => {
                let new = renamed.source.nick.clone();
                self.take_rename(renamed, out);
                out.renamed(&new);
            }
            (Logging::Part(key), Outcome::Parted(part)) => {
                if let Some(index) = self.rooms.iter().position(|m| *m.key() == *key)
                    && self.left(index, &key, part, out)
                {
                    let current = self.current_membership().map(|m| m.room().clone());
                    out.current(current.as_deref());
                }
            }
            _ => {}
        }
    }

    /// Leaves `room` (the current one if `None`). Returns whether the current room
    /// changed.
    pub(crate) fn part(
        &mut self,
        room: Option<Room>,
        reason: Option<String>,
        out: &mut impl Output,
    ) -> Result<bool, Refusal> {
        let key: Arc<str> = match (&room, &self.current) {
            (Some(room), _) => room.folded().into(),
            (None, Some(key)) => key.clone(),
            (None, None) => return Err(Refusal::NoCurrentRoom),
        };
        let Some(index) = self.rooms.iter().position(|m| *m.key() == *key) else {
            return Err(match room {
                Some(room) => Refusal::NotInRoom(room),
                None => Refusal::NoCurrentRoom,
            });
        };
        if let Some(log) = self.hub.log() {
            let op = Op::Part {
                nick: self.registration.key.clone(),
                room: self.rooms[index].room().name.as_str().to_owned(),
                reason,
            };
            let outcome = log.submit(op, None);
            self.hold(
                None,
                Pending::Logged(outcome),
                HoldFor::Logged(Logging::Part(key)),
            );
            return Ok(false);
        }
        let part = self.hub.part(&self.registration.key, &key, reason);
        Ok(self.left(index, &key, part, out))
    }

    /// Stops listening to the room at `index` (folded name `key`) after the member's
    /// `part` of it. Returns whether the current room changed.
    fn left(
        &mut self,
        index: usize,
        key: &Arc<str>,
        part: Option<Arc<Event>>,
        out: &mut impl Output,
    ) -> bool {
        // Deliver what the room said up to the part, the part included, then stop
        // listening: the leaver sees exactly what the others saw before it left. (A
        // history or refill still pending for the room is dropped: the leaver has moved
        // on.)
        let mut seen = false;
        while !seen {
            let m = &mut self.rooms[index];
            match m.channel.ring.try_recv(&mut m.cursor) {
                // Past a quiet room's part (never sent): not for the leaver.
                Ok(event) if part.as_ref().is_some_and(|p| event.id > p.id) => break,
                Ok(event) => {
                    seen = part.as_ref().is_some_and(|p| p.id == event.id);
                    out.event(&event);
                }
                Err(TryRecvError::Lagged(missed)) => {
                    let room = self.rooms[index].room().clone();
                    self.hub.metrics.lagged(missed);
                    out.lagged(&room, missed);
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        self.rooms.remove(index);
        if self.rooms.is_empty() {
            // Give the list's memory back: a member in no room holds none.
            self.rooms = Vec::new();
        }
        self.holds.retain(|h| h.key.as_deref() != Some(&**key));
        if !seen && let Some(part) = &part {
            // A quiet room did not send it, or the room's buffer overflowed past it:
            // show it anyway.
            out.event(part);
        }
        if self.current.as_deref() == Some(&**key) {
            self.current = self.rooms.iter().map(|m| m.channel.key()).min().cloned();
            return true;
        }
        false
    }

    /// The members of `room` (the current one if `None`).
    pub(crate) fn who(&self, room: Option<Room>, out: &mut impl Output) -> Result<(), Refusal> {
        let room = room
            .or_else(|| self.current_room().cloned())
            .ok_or(Refusal::NoCurrentRoom)?;
        self.hub
            .members(&self.registration.key, &room, |room, members| {
                out.members(room, members)
            })
    }

    /// The room named, or the current one.
    fn room_or_current(&self, room: Option<Room>) -> Result<Room, Refusal> {
        room.or_else(|| self.current_room().cloned())
            .ok_or(Refusal::NoCurrentRoom)
    }

    /// The topic of `room` (the current one if `None`), which need not be the member's.
    pub(crate) fn topic(&self, room: Option<Room>, out: &mut impl Output) -> Result<(), Refusal> {
        let (room, topic) = self
            .hub
            .topic(&self.registration.key, &self.room_or_current(room)?)?;
        out.topic(&room, topic.as_ref());
        Ok(())
    }

    /// Sets (`Some`) or clears the topic of `room` (the current one if `None`), which the
    /// member must be in. The member hears of it through the room, as every member does.
    pub(crate) fn set_topic(
        &mut self,
        room: Option<Room>,
        text: Option<String>,
    ) -> Result<(), Refusal> {
        let room = self.room_or_current(room)?;
        let logged = |nick| Op::Topic {
            nick,
            room: room.as_str().to_owned(),
            text: text.clone(),
        };
        if self.log(logged, Logging::Applied) {
            return Ok(());
        }
        self.hub
            .set_topic(&self.registration.key, &room, text)
            .map(drop)
    }

    /// Sends `text` (an action when `action`: IRC's CTCP `ACTION`) to `to` privately;
    /// both get the message. Returns the recipient's nickname and away text when it is
    /// away (the door tells the sender after its copy of the message).
    pub(crate) fn private(
        &mut self,
        to: &Nick,
        text: String,
        action: bool,
        out: &mut impl Output,
    ) -> Result<Option<(Nick, Arc<str>)>, Refusal> {
        let kind = if action {
            Kind::Action { text }
        } else {
            Kind::Message { text }
        };
        self.send_private(to, kind, out)
    }

    /// Sends `text` to `to` as a private notice (IRC's `NOTICE`), as
    /// [`Member::private`] does.
    pub(crate) fn private_notice(
        &mut self,
        to: &Nick,
        text: String,
        out: &mut impl Output,
    ) -> Result<Option<(Nick, Arc<str>)>, Refusal> {
        self.send_private(to, Kind::Notice { text }, out)
    }

    fn send_private(
        &mut self,
        to: &Nick,
        kind: Kind,
        out: &mut impl Output,
    ) -> Result<Option<(Nick, Arc<str>)>, Refusal> {
        let recipient = self.hub.lookup(to)?;
        let (to, mailbox) = (recipient.nick, recipient.mailbox);
        let away = recipient.away.map(|text| (to.clone(), text));
        if self.hub.log().is_some() {
            let (what, text) = match kind {
                Kind::Action { text } => (Said::Action, text),
                Kind::Notice { text } => (Said::Notice, text),
                Kind::Message { text } => (Said::Message, text),
                _ => return Ok(away),
            };
            let logged = |nick| Op::Private {
                nick,
                to: to.as_str().to_owned(),
                what,
                text,
            };
            self.log(logged, Logging::Private);
            return Ok(away);
        }
        let to_key = to.folded();
        let event = self.hub.private(&self.source, to.clone(), kind);
        // Kept only once delivered: what the recipient never got is in no history. A
        // store too busy to keep it loses its history entry, not the message.
        let keep = |hub: &Hub| {
            if hub.keep_private(&event).is_err() {
                tracing::warn!(nick = %self.source.nick, "store queue full: private message not kept");
            }
        };
        if to_key == self.registration.key {
            // A note to self: shown once.
            keep(&self.hub);
            out.event(&event);
            return Ok(away);
        }
        match mailbox.try_send(event.clone()) {
            Ok(()) => {
                keep(&self.hub);
                out.event(&event);
                Ok(away)
            }
            Err(SendError::Full) => Err(Refusal::RecipientBusy(to)),
            Err(SendError::Closed) => Err(Refusal::Gone(to)),
        }
    }

    /// Marks the member away with `text`, or back (`None`).
    pub(crate) fn set_away(&mut self, text: Option<String>) {
        let logged = |nick| Op::Away {
            nick,
            text: text.clone(),
        };
        if self.log(logged, Logging::Applied) {
            return;
        }
        self.hub.set_away(&self.registration.key, text);
    }

    /// Changes the real name the member's door gave (IRC's `SETNAME`; a session
    /// without an ident has none to change). Its rooms are told if it changed.
    pub(crate) fn set_realname(&mut self, realname: &str) {
        let Some(ident) = &self.source.ident else {
            return;
        };
        if *ident.realname == *realname {
            return;
        }
        let source = Arc::new(Source {
            ident: Some(Arc::new(Ident {
                realname: realname.into(),
                ..Ident::clone(ident)
            })),
            ..Source::clone(&self.source)
        });
        let logged = |nick| Op::Realname {
            nick,
            realname: realname.to_owned(),
        };
        if !self.log(logged, Logging::Applied) {
            self.hub.set_source(&self.registration.key, &source);
        }
        self.source = source;
    }

    /// What the hub knows of the session called `nick` (`/whois`).
    pub(crate) fn whois(&self, nick: &Nick) -> Result<Whois, Refusal> {
        self.hub.whois(&self.registration.key, nick)
    }

    /// Who the member is (its nickname, account and ident).
    pub(crate) fn source(&self) -> &Arc<Source> {
        &self.source
    }

    /// The server's limits and settings.
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The rooms the member is in, by name as spelled.
    pub(crate) fn room_names(&self) -> Vec<Room> {
        self.rooms.iter().map(|m| m.room().name.clone()).collect()
    }

    /// Whether `room` exists and the member may see it.
    pub(crate) fn room_exists(&self, room: &Room) -> bool {
        self.hub.topic(&self.registration.key, room).is_ok()
    }

    /// What IRC's `WHO #room` shows of `room`'s members (refused as `/who` is).
    pub(crate) fn who_in(&self, room: &Room) -> Result<(Arc<RoomName>, Vec<Who>), Refusal> {
        self.hub.who_in(&self.registration.key, room)
    }

    /// Everyone the member shares a room with, and itself: whom IRC's `WHO <mask>` may
    /// show.
    pub(crate) fn who_shared(&self) -> Vec<Who> {
        self.hub.who_shared(&self.registration.key)
    }

    /// The rooms the member may see, with their member counts and topics (`/rooms`).
    pub(crate) fn rooms(&self) -> Vec<super::hub::Listed> {
        self.hub.rooms(&self.registration.key)
    }

    /// `/mode` on `room` (the current one if `None`) with IRC's words (`+mi`, `+o bob`):
    /// shows the modes or the bans, or changes them (the member hears of a change
    /// through the room, as every member does).
    pub(crate) fn mode(
        &mut self,
        room: Option<Room>,
        words: &[String],
    ) -> Result<ModeOutcome, Refusal> {
        let room = self.room_or_current(room)?;
        let request = parse_changes(words)?;
        if matches!(request, super::room::ModeRequest::Change(_)) {
            let logged = |nick| Op::Mode {
                nick,
                room: room.as_str().to_owned(),
                words: words.to_vec(),
            };
            if self.log(logged, Logging::Applied) {
                return Ok(ModeOutcome::Changed);
            }
        }
        self.hub.mode(&self.registration.key, &room, request)
    }

    /// Removes `nick` from `room` (the current one if `None`).
    pub(crate) fn kick(
        &mut self,
        room: Option<Room>,
        nick: &Nick,
        reason: Option<String>,
    ) -> Result<(), Refusal> {
        let room = self.room_or_current(room)?;
        let logged = |by| Op::Kick {
            nick: by,
            room: room.as_str().to_owned(),
            target: nick.as_str().to_owned(),
            reason: reason.clone(),
        };
        if self.log(logged, Logging::Applied) {
            return Ok(());
        }
        self.hub
            .kick(&self.registration.key, &room, nick, reason)
            .map(drop)
    }

    /// Invites `nick` to `room` (the current one if `None`).
    pub(crate) fn invite(&mut self, nick: &Nick, room: Option<Room>) -> Result<(), Refusal> {
        let room = self.room_or_current(room)?;
        let logged = |by| Op::Invite {
            nick: by,
            room: room.as_str().to_owned(),
            target: nick.as_str().to_owned(),
        };
        if self.log(logged, Logging::Applied) {
            return Ok(());
        }
        self.hub
            .invite(&self.registration.key, &room, nick)
            .map(drop)
    }

    /// The recent departures under `nick`, newest first (`/whowas`).
    pub(crate) fn whowas(&self, nick: &Nick) -> Result<Vec<Departure>, Refusal> {
        self.hub.whowas(nick)
    }

    /// Renames the member to `new`.
    pub(crate) fn rename(&mut self, new: Nick, out: &mut impl Output) -> Result<(), Refusal> {
        if new == self.source.nick {
            // Nothing changes; confirm it anyway, so a client waiting for an answer gets
            // one.
            out.event(&self.hub.own(&self.source, Kind::Rename { new }));
            return Ok(());
        }
        if let Some(ban) = self.hub.bans.session(&new, self.ip, super::event::now()) {
            return Err(Refusal::Banned {
                reason: ban.reason,
                until: ban.until,
            });
        }
        let logged = |nick| Op::Rename {
            nick,
            new: new.as_str().to_owned(),
        };
        if self.log(logged, Logging::Rename) {
            return Ok(());
        }
        let renamed = self.hub.rename(&self.registration.key, &new)?;
        self.take_rename(renamed, out);
        Ok(())
    }

    /// Takes up the member's new nickname, given by the hub.
    fn take_rename(&mut self, renamed: super::hub::Renamed, out: &mut impl Output) {
        let new = &renamed.source.nick;
        tracing::info!(peer = %self.ip, old = %self.source.nick, new = %new, "renamed");
        let old_key = std::mem::replace(&mut self.registration.key, new.folded());
        self.source = renamed.source;
        if let Some(event) = renamed.alone {
            out.event(&event);
        }
        // Kicked under the old name and not yet read as such: the KICK in the ring names
        // the old nickname, which the member no longer answers to. The hub's rooms (as of
        // the rename) say which.
        let mut index = 0;
        while index < self.rooms.len() {
            if renamed.rooms.iter().any(|r| *r == *self.rooms[index].key()) {
                index += 1;
            } else {
                self.leave_kicked(index, &old_key, out);
            }
        }
    }

    /// The member was kicked from the room at `index` as `key`: its events up to that
    /// KICK go out, the KICK included, then the room is forgotten.
    fn leave_kicked(&mut self, index: usize, key: &str, out: &mut impl Output) {
        while self.rooms[index].is_live() {
            let m = &mut self.rooms[index];
            match m.channel.ring.try_recv(&mut m.cursor) {
                Ok(event) => {
                    m.last_id = event.id;
                    out.event(&event);
                    if kicks(&event, key) {
                        break;
                    }
                }
                Err(TryRecvError::Lagged(missed)) => {
                    let room = m.room().clone();
                    self.hub.metrics.lagged(missed);
                    out.lagged(&room, missed);
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        self.drop_room(index, out);
    }

    /// Starts `/register` (`change: false`) or `/password` (`change: true`) with a
    /// password the door has checked for length (`acceptable`): the hash is made off the session (a
    /// request hold), and the account set when it is ready. `secure`: the password came
    /// over TLS or loopback.
    pub(crate) fn set_password(
        &mut self,
        password: String,
        acceptable: Result<(), Refusal>,
        change: bool,
        secure: bool,
    ) -> Result<(), Refusal> {
        if !secure {
            return Err(Refusal::InsecureTransport);
        }
        let key = self.registration.key.as_str();
        let nick = self.source.nick.clone();
        let mine = self.source.account.as_deref() == Some(key);
        if change && !mine {
            return Err(Refusal::NotRegistered(nick));
        }
        if !change && self.hub.account(key).is_some() {
            return Err(Refusal::AlreadyRegistered(nick));
        }
        acceptable?;
        let hub = self.hub.clone();
        let ip = self.ip;
        let hashing = tokio::spawn(async move { hub.hasher.hash(ip, password).await });
        self.hold(
            None,
            Pending::Hash(Hashing(hashing)),
            HoldFor::Password { change },
        );
        Ok(())
    }

    fn password_hashed(&mut self, why: HoldFor, hash: Option<String>, out: &mut impl Output) {
        let HoldFor::Password { change } = why else {
            return;
        };
        let Some(hash) = hash else {
            return out.refused(Refusal::Busy(error::Busy::Password));
        };
        let logged = |nick| Op::Account {
            nick,
            hash: hash.clone(),
            change,
        };
        if self.log(logged, Logging::Account { change }) {
            return;
        }
        let made = self.hub.set_account(&self.source.nick, hash, change);
        self.account_made(made, change, out);
    }

    /// The member's account is made (or its password changed) at `made`, or why not.
    fn account_made(&mut self, made: Result<i64, Refusal>, change: bool, out: &mut impl Output) {
        match made {
            Err(refusal) => out.refused(refusal),
            Ok(created_ms) => {
                tracing::info!(nick = %self.source.nick, change, "account password set");
                self.account_since = Some(created_ms);
                let source = Arc::new(Source {
                    account: Some(self.registration.key.as_str().into()),
                    ..Source::clone(&self.source)
                });
                // In a cluster, every node did this as it applied the account.
                if self.hub.log().is_none() {
                    self.hub.set_source(&self.registration.key, &source);
                }
                self.source = source;
                let change = if change {
                    AccountChange::PasswordChanged
                } else {
                    AccountChange::Registered
                };
                out.account(&self.source.nick, change);
            }
        }
    }

    // ----- server operators -----

    /// Whether the member is a server operator.
    pub(crate) fn is_oper(&self) -> bool {
        self.activity.is_oper()
    }

    /// The message of the day, if the server has one.
    pub(crate) fn motd(&self) -> Option<&str> {
        self.config.motd.as_deref().filter(|m| !m.is_empty())
    }

    /// Starts `/oper name password`: the password is checked off the session (a
    /// request hold) under the password throttle, as a handshake's is (an unknown name
    /// costs the same wait as a wrong password). `secure`: it came over TLS or loopback.
    pub(crate) fn oper(
        &mut self,
        name: String,
        password: String,
        secure: bool,
    ) -> Result<(), Refusal> {
        if !secure {
            return Err(Refusal::InsecureTransport);
        }
        let hub = self.hub.clone();
        let ip = self.ip;
        let hash = hub.operator_hash(&name);
        let lane = format!("oper {name}");
        let verifying = tokio::spawn(async move {
            let verify = async {
                match hash {
                    Some(hash) => hub.hasher.verify(ip, password, hash).await,
                    None => false,
                }
            };
            hub.throttle.check(&lane, ip, verify).await
        });
        self.hold(
            None,
            Pending::Verify(Verifying(verifying)),
            HoldFor::Oper { name },
        );
        Ok(())
    }

    fn oper_verified(&mut self, why: HoldFor, right: bool, out: &mut impl Output) {
        let HoldFor::Oper { name } = why else {
            return;
        };
        if right {
            tracing::info!(nick = %self.source.nick, peer = %self.ip, operator = %name, "now a server operator");
            // In a cluster, every node's checks of operators' rights must agree.
            if !self.log(|nick| Op::Oper { nick }, Logging::Applied) {
                self.activity.set_oper();
            }
            out.oper(&name);
        } else {
            tracing::warn!(nick = %self.source.nick, peer = %self.ip, operator = %name, "failed /oper");
            out.refused(Refusal::OperWrong);
        }
    }

    /// `/kill nick [reason]`: ends that session, which is told (and its rooms are told)
    /// `killed by <operator>[: <reason>]`. Returns its nickname as spelled, and that.
    pub(crate) fn kill(
        &mut self,
        nick: &Nick,
        reason: Option<String>,
    ) -> Result<(Nick, String), Refusal> {
        if !self.is_oper() {
            return Err(Refusal::NotOperator);
        }
        let by = &self.source.nick;
        let why = match reason {
            Some(reason) => format!("killed by {by}: {reason}"),
            None => format!("killed by {by}"),
        };
        tracing::info!(operator = %by, target = %nick, reason = %why, "kill");
        if self.hub.log().is_some() {
            // Ended by the node it is on, once the log has it.
            let target = self.hub.lookup(nick)?.nick;
            let logged = |by| Op::Kill {
                nick: by,
                target: target.as_str().to_owned(),
                reason: why.clone(),
            };
            self.log(logged, Logging::Applied);
            return Ok((target, why));
        }
        let killed = self.hub.kill(nick, why.clone())?;
        Ok((killed, why))
    }

    /// `/sban target [duration] [reason]`: bans `target` (an address, a network or a
    /// mask) from the server, for `duration` or for ever; replaces a ban of the same
    /// target. Sessions already connected are not touched (`/kill` them).
    pub(crate) fn sban(
        &self,
        target: &str,
        duration: Option<Duration>,
        reason: Option<String>,
    ) -> Result<Ban, Refusal> {
        if !self.is_oper() {
            return Err(Refusal::NotOperator);
        }
        let target = BanTarget::parse(target).map_err(Refusal::BadBan)?;
        let now = super::event::now();
        let until = match duration {
            None => None,
            Some(d) => Some(
                jiff::SignedDuration::try_from(d)
                    .ok()
                    .and_then(|d| now.checked_add(d).ok())
                    .ok_or_else(|| Refusal::BadBan("that duration is too long".into()))?,
            ),
        };
        let ban = Ban {
            target,
            until,
            by: self.source.nick.clone(),
            reason,
        };
        self.hub
            .add_ban(ban.clone(), now)
            .map_err(|BansFull| Refusal::TooManyBans { limit: BAN_LIMIT })?;
        tracing::info!(operator = %self.source.nick, target = %ban.target, until = ?ban.until, reason = ?ban.reason, "server ban");
        Ok(ban)
    }

    /// `/unsban target`: lifts a server ban. Returns its target, canonically.
    pub(crate) fn unsban(&self, target: &str) -> Result<String, Refusal> {
        if !self.is_oper() {
            return Err(Refusal::NotOperator);
        }
        let parsed = BanTarget::parse(target).map_err(Refusal::BadBan)?;
        if !self.hub.lift_ban(&parsed, super::event::now()) {
            return Err(Refusal::NoSuchBan(parsed.to_string()));
        }
        tracing::info!(operator = %self.source.nick, target = %parsed, "server ban lifted");
        Ok(parsed.to_string())
    }

    /// `/sbans`: the server bans in force, oldest first.
    pub(crate) fn sbans(&self) -> Result<Vec<Ban>, Refusal> {
        if !self.is_oper() {
            return Err(Refusal::NotOperator);
        }
        Ok(self.hub.bans.list(super::event::now()))
    }

    /// `/wallops text`: an operators' notice (the sender gets its copy, as an operator).
    pub(crate) fn wallops(&mut self, text: String) -> Result<(), Refusal> {
        if !self.is_oper() {
            return Err(Refusal::NotOperator);
        }
        // In a cluster, every node's operators hear it.
        let logged = |nick| Op::Wallops {
            nick,
            text: text.clone(),
        };
        if self.log(logged, Logging::Applied) {
            return Ok(());
        }
        self.hub.wallops(&self.source, text);
        Ok(())
    }

    /// Whether operators' notices reach this member (it asked, or is an operator).
    pub(crate) fn hears_wallops(&self) -> bool {
        self.activity.hears_wallops()
    }

    /// `/wallops on|off`: whether operators' notices reach this member.
    pub(crate) fn set_wallops(&self, on: bool) {
        self.activity.set_wallops(on);
    }

    /// Asks for a page of history (at most [`HISTORY_MAX`] events): a room's messages
    /// (any room's, but a closed one's only for its members: see [`Hub::readable`]), or
    /// this account's private
    /// conversation with a nickname. The page goes out when the store answers; no line
    /// is read meanwhile.
    pub(crate) fn history(
        &mut self,
        target: Option<HistoryOf>,
        count: usize,
        before: Option<u64>,
    ) -> Result<(), Refusal> {
        let limit = count.min(HISTORY_MAX);
        let before = before.unwrap_or(u64::MAX);
        let (target, query) = match target {
            None => {
                let m = self.current_membership().ok_or(Refusal::NoCurrentRoom)?;
                let query = Query::History {
                    room: m.channel.key().clone(),
                    before,
                    limit,
                };
                (HistoryOf::Room(m.room().name.clone()), query)
            }
            Some(target) => {
                let (target, of) = self.history_of(target)?;
                let query = match of {
                    Of::Room(room) => Query::History {
                        room,
                        before,
                        limit,
                    },
                    Of::Pair { pair, since_ms } => Query::Private {
                        pair,
                        since_ms,
                        before,
                        limit,
                    },
                };
                (target, query)
            }
        };
        self.ask(target, query)
    }

    /// Asks for the messages of a room or of this account's private conversation with a
    /// nickname in a span of ids and times, as [`Member::history`] does (IRC's
    /// `CHATHISTORY`).
    pub(crate) fn history_span(
        &mut self,
        target: HistoryOf,
        page: Page,
        limit: usize,
    ) -> Result<(), Refusal> {
        let limit = limit.min(HISTORY_MAX);
        let (target, of) = self.history_of(target)?;
        let query = match page {
            Page::Span { span, latest } => Query::Messages {
                of,
                span,
                latest,
                limit,
            },
            Page::Around { older, newer } => Query::Around {
                of,
                older,
                newer,
                limit,
            },
        };
        self.ask(target, query)
    }

    /// Whose history `target` names, if this member may read it: a room's (any room's,
    /// but a closed one's only for its members), or this account's private talk.
    fn history_of(&self, target: HistoryOf) -> Result<(HistoryOf, Of), Refusal> {
        match target {
            HistoryOf::Room(room) => {
                let key = room.folded();
                let room = self.hub.readable(&self.registration.key, &room)?;
                Ok((HistoryOf::Room(room), Of::Room(key.into())))
            }
            HistoryOf::Nick(nick) => {
                // Private history belongs to accounts: a nickname anyone may take must
                // not show its former owner's conversations.
                let mine = self.source.account.as_deref() == Some(self.registration.key.as_str());
                let since_ms = self
                    .account_since
                    .filter(|_| mine)
                    .ok_or(Refusal::PrivateHistoryNeedsAccount)?;
                let pair = pair_of(&self.source.nick, &nick);
                Ok((HistoryOf::Nick(nick), Of::Pair { pair, since_ms }))
            }
        }
    }

    /// Sends `query` to the store; its answer goes out as `target`'s history page, and
    /// no line is read meanwhile.
    fn ask(&mut self, target: HistoryOf, query: Query) -> Result<(), Refusal> {
        let answer = self
            .hub
            .query(query)
            .map_err(|_busy| Refusal::Busy(error::Busy::History))?;
        self.hold(None, Pending::Store(answer), HoldFor::History(target));
        Ok(())
    }

    /// A ping: its `PONG` waits until the events queued for the member now, its echoes
    /// among them, have gone out in ordinary batches (and every request is answered); no
    /// line is read meanwhile.
    pub(crate) fn ping(&mut self, token: Option<String>) {
        let remaining = self
            .rooms
            .iter()
            .map(|m| m.channel.ring.pending(&m.cursor))
            .collect();
        self.pong = Some(Box::new(PendingPong { token, remaining }));
    }
}

/// How a session ended because of its member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The server is shutting down.
    Shutdown,
    /// An operator killed the session; the reason names them.
    Killed(String),
    /// The client sent nothing for this long.
    Idle(Duration),
}

/// Waits for an event from any of the rooms that are live; never completes with none.
/// Cancel-safe: `Ring::recv` and `Ring::poll_recv` are.
///
/// A member in one live room awaits its ring directly (no allocation, nothing kept
/// between waits); one in several polls each live room with the waiter kept in its
/// membership, so no wait allocates. A plain function choosing between two futures
/// rather than one `async fn` with both paths: every waiting session carries this
/// future.
fn next_room_event(
    rooms: &mut [Membership],
) -> impl Future<Output = (usize, Result<Arc<Event>, Lagged>)> + Send + '_ {
    if rooms.len() == 1 && rooms[0].is_live() {
        let only = &mut rooms[0];
        // Left from when it was in several.
        only.waiter = None;
        Either::Left(
            only.channel
                .ring
                .recv(&mut only.cursor)
                .map(|event| (0, event)),
        )
    } else {
        Either::Right(std::future::poll_fn(move |cx| {
            for (index, m) in rooms.iter_mut().enumerate() {
                if !m.is_live() {
                    continue;
                }
                let Membership {
                    channel,
                    cursor,
                    waiter,
                    ..
                } = m;
                let waiter = waiter.get_or_insert_with(|| channel.ring.waiter());
                if let Poll::Ready(event) = channel.ring.poll_recv(cursor, waiter, cx) {
                    return Poll::Ready((index, event));
                }
            }
            Poll::Pending
        }))
    }
}

/// Polls for the answer to any hold, and takes that hold out of `holds`. Polling a
/// oneshot receiver or a task's handle consumes nothing until it is ready.
fn poll_answer(holds: &mut Vec<Hold>, cx: &mut Context<'_>) -> Poll<(Hold, Answered)> {
    for (index, hold) in holds.iter_mut().enumerate() {
        let answered = match &mut hold.pending {
            // A dropped sender means the store stopped.
            Pending::Store(answer) => Pin::new(answer)
                .poll(cx)
                .map(|answer| Answered::Store(answer.unwrap_or_else(|_| Err(StoreError::Stopped)))),
            Pending::Hash(Hashing(hashing)) => Pin::new(hashing).poll(cx).map(|hashed| {
                Answered::Hash(match hashed {
                    Ok(Ok(hash)) => Some(hash),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot hash a password");
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the password hashing task failed");
                        None
                    }
                })
            }),
            Pending::Verify(Verifying(verifying)) => Pin::new(verifying)
                .poll(cx)
                .map(|right| Answered::Verified(right.unwrap_or(false))),
            // A dropped sender: the node stopped applying the log.
            Pending::Logged(outcome) => Pin::new(outcome)
                .poll(cx)
                .map(|outcome| Answered::Logged(outcome.unwrap_or(Outcome::NotLogged))),
        };
        if let Poll::Ready(answered) = answered {
            return Poll::Ready((holds.swap_remove(index), answered));
        }
    }
    Poll::Pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hub::test_hub;
    use crate::core::mailbox::mailbox;

    /// What a member said, one line per call, without any wire form.
    #[derive(Default)]
    struct Said {
        lines: Vec<String>,
        /// What each [`Output::expect`] call announced.
        expected: Vec<usize>,
        /// Whether room events come in runs of frames ([`Output::frames_encoder`]).
        in_runs: bool,
        /// How many events each run of frames was.
        runs: Vec<usize>,
    }

    impl Said {
        fn take(&mut self) -> Vec<String> {
            std::mem::take(&mut self.lines)
        }
    }

    /// An event as [`Said`] writes it.
    fn said(event: &Event) -> String {
        let what = match &event.kind {
            Kind::Message { text } => format!("say {text}"),
            Kind::Action { text } => format!("act {text}"),
            Kind::Join => "join".into(),
            Kind::Part { .. } => "part".into(),
            Kind::Quit { .. } => "quit".into(),
            Kind::Rename { new } => format!("rename {new}"),
            Kind::Kick { target, .. } => format!("kick {target}"),
            other => format!("{other:?}"),
        };
        let room = event.room().map_or("-".into(), |r| r.name.to_string());
        format!("{room} {} {what}", event.source.nick)
    }

    /// [`said`] as a frame.
    fn said_frame(event: &Event) -> Box<[u8]> {
        format!("{}\n", said(event)).into_bytes().into()
    }

    impl Output for Said {
        fn event(&mut self, event: &Event) {
            self.lines.push(said(event));
        }
        fn frames_encoder(&self) -> Option<Encoder> {
            self.in_runs.then_some(said_frame)
        }
        fn frames(&mut self, bytes: &[u8], events: usize) {
            let lines = std::str::from_utf8(bytes).unwrap().lines();
            self.lines.extend(lines.map(str::to_owned));
            self.runs.push(events);
        }
        fn members(&mut self, room: &RoomName, members: Members<'_, '_>) {
            let names: Vec<_> = members
                .map(|(standing, s)| {
                    let op = if standing.has(crate::core::room::Standing::OPERATOR) {
                        "@"
                    } else {
                        ""
                    };
                    format!("{op}{}", s.nick)
                })
                .collect();
            self.lines
                .push(format!("members {} {}", room.name, names.join(" ")));
        }
        fn lagged(&mut self, room: &RoomName, missed: u64) {
            self.lines.push(format!("lagged {} {missed}", room.name));
        }
        fn current(&mut self, room: Option<&RoomName>) {
            let room = room.map_or("*".into(), |r| r.name.to_string());
            self.lines.push(format!("current {room}"));
        }
        fn topic(&mut self, room: &RoomName, topic: Option<&Topic>) {
            let text = topic.map_or("-", |t| t.text.as_str());
            self.lines.push(format!("topic {} {text}", room.name));
        }
        fn history(&mut self, target: &HistoryOf, events: &[Event], asked: bool) {
            let texts: Vec<_> = events
                .iter()
                .map(|e| match &e.kind {
                    Kind::Message { text } => text.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            self.lines
                .push(format!("history {target:?} {asked} [{}]", texts.join(",")));
        }
        fn account(&mut self, nick: &Nick, change: AccountChange) {
            self.lines.push(format!("account {nick} {change:?}"));
        }
        fn oper(&mut self, name: &str) {
            self.lines.push(format!("oper {name}"));
        }
        fn refused(&mut self, refusal: Refusal) {
            self.lines.push(format!("refused {refusal}"));
        }
        fn pong(&mut self, token: Option<String>) {
            self.lines
                .push(format!("pong {}", token.unwrap_or_default()));
        }
        fn pending(&self) -> usize {
            // Each line counts as 100 bytes, so that a limit bounds a batch in lines.
            self.lines.len() * 100
        }
        fn take_encodings(&mut self) -> u64 {
            0
        }
        fn expect(&mut self, events: usize) {
            self.expected.push(events);
        }
    }

    fn config() -> Arc<Config> {
        Arc::new(Config {
            max_rooms: 10,
            history: 50,
            ..Config::unthrottled()
        })
    }

    fn member(hub: &Arc<Hub>, nick: &str) -> Member {
        let source = Arc::new(Source::named(Nick::new(nick).unwrap(), None));
        let (tx, rx) = mailbox(16);
        let activity = hub.register(&source, tx, false).unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        Member::new(hub.clone(), source, activity, rx, None, ip, config())
    }

    fn room(name: &str) -> Room {
        Room::new(name).unwrap()
    }

    /// Waits (bounded) for the member's next wake that is not the client's input, and
    /// handles it.
    async fn settle(member: &mut Member, said: &mut Said) {
        let wake = tokio::time::timeout(
            Duration::from_secs(10),
            member.wait(|_| Poll::<()>::Pending),
        )
        .await
        .expect("the member wakes")
        .unwrap_or_else(|()| unreachable!("no input"));
        member.woken(wake, said).unwrap();
    }

    /// Joins `name` and waits for the join's history.
    async fn joined(member: &mut Member, name: &str, said: &mut Said) {
        member.join(&room(name), None, said).unwrap();
        while !member.holds.is_empty() {
            settle(member, said).await;
        }
    }

    #[tokio::test]
    async fn a_join_shows_the_join_the_members_then_history_then_live_events() {
        let hub = test_hub(1024, 0);
        let mut alice = member(&hub, "alice");
        let mut said = Said::default();
        joined(&mut alice, "#rust", &mut said).await;
        alice.say(None, "before bob".into(), false).unwrap();
        let mut bob = member(&hub, "bob");
        let mut heard = Said::default();
        bob.join(&room("#rust"), None, &mut heard).unwrap();
        assert_eq!(heard.take(), ["#rust bob join", "members #rust @alice bob"]);
        assert_eq!(bob.holds.len(), 1, "history is on its way");
        // Alice speaks while bob's history is on its way: it waits for the history.
        alice.say(None, "after bob".into(), false).unwrap();
        bob.collect_ready(&mut heard, usize::MAX);
        assert_eq!(heard.take(), Vec::<String>::new(), "live events wait");
        settle(&mut bob, &mut heard).await;
        assert_eq!(
            heard.take(),
            ["history Room(Room(\"#rust\")) false [before bob]"]
        );
        bob.collect_ready(&mut heard, usize::MAX);
        assert_eq!(heard.take(), ["#rust alice say after bob"]);
        // Alice hears her own messages and bob's join, in the room's order.
        alice.collect_ready(&mut said, usize::MAX);
        assert_eq!(
            said.take()[3..],
            [
                "#rust alice say before bob",
                "#rust bob join",
                "#rust alice say after bob"
            ]
        );
    }

    /// A collect tells the output how many room events are ready, across the member's
    /// rooms, before the first: the door sizes its buffer once (see `Expected`).
    #[tokio::test]
    async fn a_collect_announces_the_events_ready_in_every_room() {
        let hub = test_hub(1024, 0);
        let mut alice = member(&hub, "alice");
        let mut bob = member(&hub, "bob");
        let (mut a, mut b) = (Said::default(), Said::default());
        for name in ["#a", "#b"] {
            joined(&mut alice, name, &mut a).await;
            joined(&mut bob, name, &mut b).await;
        }
        bob.collect_ready(&mut b, usize::MAX);
        b.take();
        b.expected.clear();
        for n in 0..3 {
            alice
                .say(Some(&room("#a")), format!("a{n}"), false)
                .unwrap();
        }
        for n in 0..2 {
            alice
                .say(Some(&room("#b")), format!("b{n}"), false)
                .unwrap();
        }
        bob.collect_ready(&mut b, usize::MAX);
        assert_eq!(b.expected, [5]);
        assert_eq!(b.take().len(), 5);
        bob.collect_ready(&mut b, usize::MAX);
        assert_eq!(b.expected, [5, 0], "nothing more is ready");
    }

    /// The `PONG` rule: it follows every event that was queued for the member when the
    /// ping came, even when they go out over several batches, and no line is read
    /// meanwhile.
    #[tokio::test]
    async fn pong_follows_what_was_queued_before_the_ping() {
        let hub = test_hub(1024, 0);
        let mut alice = member(&hub, "alice");
        let mut bob = member(&hub, "bob");
        let (mut a, mut b) = (Said::default(), Said::default());
        joined(&mut alice, "#rust", &mut a).await;
        joined(&mut bob, "#rust", &mut b).await;
        bob.collect_ready(&mut b, usize::MAX);
        b.take();
        for n in 0..5 {
            alice.say(None, format!("m{n}"), false).unwrap();
        }
        bob.ping(Some("t".into()));
        assert!(!bob.reading(), "no line is read while a ping waits");
        alice.say(None, "after the ping".into(), false).unwrap();
        // Two lines per batch.
        let mut batches = Vec::new();
        for _ in 0..3 {
            bob.collect_ready(&mut b, 200);
            batches.push(b.take());
        }
        assert_eq!(batches[0], ["#rust alice say m0", "#rust alice say m1"]);
        assert_eq!(batches[1], ["#rust alice say m2", "#rust alice say m3"]);
        assert_eq!(
            batches[2],
            [
                "#rust alice say m4",
                "#rust alice say after the ping",
                "pong t"
            ]
        );
        assert!(bob.reading());
    }

    /// A member that fell behind its room's ring is refilled from the store, in order,
    /// and the room's next live event waits for the refill.
    #[tokio::test]
    async fn a_lagging_member_is_refilled_from_the_store_in_order() {
        let hub = test_hub(4, 0);
        let mut alice = member(&hub, "alice");
        let mut bob = member(&hub, "bob");
        let (mut a, mut b) = (Said::default(), Said::default());
        joined(&mut alice, "#rust", &mut a).await;
        joined(&mut bob, "#rust", &mut b).await;
        bob.collect_ready(&mut b, usize::MAX);
        b.take();
        for n in 0..10 {
            alice.say(None, format!("m{n}"), false).unwrap();
        }
        bob.collect_ready(&mut b, usize::MAX);
        assert!(b.take().is_empty(), "nothing before the refill");
        settle(&mut bob, &mut b).await;
        bob.collect_ready(&mut b, usize::MAX);
        let got = b.take();
        let expected: Vec<_> = (0..10).map(|n| format!("#rust alice say m{n}")).collect();
        assert_eq!(got, expected, "no LAGGED, nothing lost, in order");
        assert_eq!(hub.metrics.encodings(), 0, "this output encodes nothing");
    }

    /// A member that lagged past its own KICK finds it in the refill, and stops there.
    #[tokio::test]
    async fn a_kick_found_in_a_refill_ends_the_room() {
        let hub = test_hub(4, 0);
        let mut alice = member(&hub, "alice");
        let mut bob = member(&hub, "bob");
        let (mut a, mut b) = (Said::default(), Said::default());
        joined(&mut alice, "#rust", &mut a).await;
        joined(&mut bob, "#rust", &mut b).await;
        bob.collect_ready(&mut b, usize::MAX);
        b.take();
        alice.say(None, "m0".into(), false).unwrap();
        alice.say(None, "m1".into(), false).unwrap();
        hub.kick("alice", &room("#rust"), &Nick::new("bob").unwrap(), None)
            .unwrap();
        for n in 2..10 {
            alice.say(None, format!("m{n}"), false).unwrap();
        }
        bob.collect_ready(&mut b, usize::MAX);
        settle(&mut bob, &mut b).await;
        bob.collect_ready(&mut b, usize::MAX);
        assert_eq!(
            b.take(),
            [
                "#rust alice say m0",
                "#rust alice say m1",
                "#rust alice kick bob",
                "current *"
            ]
        );
        assert!(bob.rooms.is_empty() && bob.holds.is_empty());
    }

    /// `/history` is a request: no line is read until it is answered, but the member
    /// still gets its rooms' events meanwhile.
    #[tokio::test]
    async fn history_is_a_request_that_does_not_pause_delivery() {
        let hub = test_hub(1024, 0);
        let mut alice = member(&hub, "alice");
        let (mut a, mut nothing) = (Said::default(), Said::default());
        joined(&mut alice, "#rust", &mut a).await;
        alice.say(None, "one".into(), false).unwrap();
        alice.history(None, 10, None).unwrap();
        assert!(!alice.reading(), "no line is read until the page comes");
        let mut bob = member(&hub, "bob");
        bob.join(&room("#rust"), None, &mut nothing).unwrap();
        alice.collect_ready(&mut a, usize::MAX);
        // The answer, or bob's join, may come first; both come.
        while !alice.reading() {
            settle(&mut alice, &mut a).await;
        }
        alice.collect_ready(&mut a, usize::MAX);
        let got = a.take();
        assert!(
            got.contains(&"history Room(Room(\"#rust\")) true [one]".to_string()),
            "{got:?}"
        );
        assert!(got.contains(&"#rust bob join".to_string()), "{got:?}");
    }

    /// A member in several rooms is woken by any of them, with one waiter per room kept
    /// across its waits.
    #[tokio::test]
    async fn a_member_in_several_rooms_hears_each() {
        let hub = test_hub(1024, 0);
        let mut alice = member(&hub, "alice");
        let mut bob = member(&hub, "bob");
        let (mut a, mut b) = (Said::default(), Said::default());
        for name in ["#one", "#two", "#three"] {
            joined(&mut alice, name, &mut a).await;
            joined(&mut bob, name, &mut b).await;
        }
        bob.collect_ready(&mut b, usize::MAX);
        b.take();
        assert_eq!(
            alice.say(Some(&room("#four")), "hello?".into(), false),
            Err(Refusal::NotInRoom(room("#four")))
        );
        for name in ["#two", "#three", "#one"] {
            let wake = {
                let mut wait = std::pin::pin!(bob.wait(|_| Poll::<()>::Pending));
                assert!(futures::poll!(wait.as_mut()).is_pending());
                // Not her current room: said in it by name.
                alice
                    .say(Some(&room(name)), format!("in {name}"), false)
                    .unwrap();
                tokio::time::timeout(Duration::from_secs(10), wait)
                    .await
                    .expect("woken")
                    .unwrap_or_else(|()| unreachable!())
            };
            assert!(
                bob.rooms.iter().all(|m| m.waiter.is_some()),
                "every room was waited on"
            );
            bob.woken(wake, &mut b).unwrap();
            assert_eq!(b.take(), [format!("{name} alice say in {name}")]);
        }
    }
    /// A quit reaches each of the leaver's rooms with one cause, so a door can show it
    /// once per observer.
    #[tokio::test]
    async fn a_quit_in_several_rooms_has_one_cause() {
        let hub = test_hub(1024, 0);
        let mut alice = member(&hub, "alice");
        let mut bob = member(&hub, "bob");
        let (mut a, mut b) = (Said::default(), Said::default());
        for name in ["#one", "#two"] {
            alice.join(&room(name), None, &mut a).unwrap();
            bob.join(&room(name), None, &mut b).unwrap();
        }
        let cursors: Vec<_> = bob
            .rooms
            .iter()
            .map(|m| (m.channel.clone(), m.channel.ring.subscribe()))
            .collect();
        drop(alice);
        let quits: Vec<_> = cursors
            .into_iter()
            .map(|(channel, mut cursor)| channel.ring.try_recv(&mut cursor).unwrap())
            .collect();
        assert!(quits.iter().all(|q| matches!(q.kind, Kind::Quit { .. })));
        assert_ne!(quits[0].id, quits[1].id);
        assert_eq!(quits[0].cause, quits[1].cause);
    }

    /// Bob is in #a (current) and #b, which alice made; he has read everything.
    async fn bob_in_two_rooms_of_alice(hub: &Arc<Hub>) -> (Member, Member, Said) {
        let mut alice = member(hub, "alice");
        let mut bob = member(hub, "bob");
        let (mut a, mut b) = (Said::default(), Said::default());
        for name in ["#b", "#a"] {
            joined(&mut alice, name, &mut a).await;
            joined(&mut bob, name, &mut b).await;
        }
        bob.collect_ready(&mut b, usize::MAX);
        b.take();
        (alice, bob, b)
    }

    #[tokio::test]
    async fn a_kicked_member_reads_up_to_its_kick_and_no_further() {
        let hub = test_hub(1024, 0);
        let (mut alice, mut bob, mut b) = bob_in_two_rooms_of_alice(&hub).await;
        alice
            .say(Some(&room("#a")), "before".into(), false)
            .unwrap();
        hub.kick("alice", &room("#a"), &Nick::new("bob").unwrap(), None)
            .unwrap();
        alice.say(Some(&room("#a")), "after".into(), false).unwrap();
        alice
            .say(Some(&room("#b")), "elsewhere".into(), false)
            .unwrap();
        bob.collect_ready(&mut b, usize::MAX);
        let said = b.take();
        // Each room in its order (rooms are drained one after the other).
        let of = |room: &str| -> Vec<&str> {
            said.iter()
                .filter(|l| l.starts_with(room))
                .map(String::as_str)
                .collect()
        };
        assert_eq!(of("#a"), ["#a alice say before", "#a alice kick bob"]);
        assert_eq!(of("#b"), ["#b alice say elsewhere"]);
        assert!(said.contains(&"current #b".to_owned()), "{said:?}");
        assert!(bob.membership("#a").is_none());
        assert_eq!(bob.current_room(), Some(&room("#b")));
        assert!(matches!(
            bob.say(Some(&room("#a")), "still here?".into(), false),
            Err(Refusal::NotInRoom(_))
        ));
    }

    /// The same, for a door whose member copies a room's events a run of frames at once:
    /// the run stops before the `KICK`, which is read on its own, and nothing follows it.
    #[tokio::test]
    async fn a_kicked_member_reading_runs_of_frames_reads_up_to_its_kick_and_no_further() {
        let hub = test_hub(1024, 0);
        let (mut alice, mut bob, mut b) = bob_in_two_rooms_of_alice(&hub).await;
        b.in_runs = true;
        for text in ["one", "two", "three"] {
            alice.say(Some(&room("#a")), text.into(), false).unwrap();
        }
        hub.kick("alice", &room("#a"), &Nick::new("bob").unwrap(), None)
            .unwrap();
        alice.say(Some(&room("#a")), "after".into(), false).unwrap();
        bob.collect_ready(&mut b, usize::MAX);
        assert_eq!(
            b.take(),
            [
                "#a alice say one",
                "#a alice say two",
                "#a alice say three",
                "#a alice kick bob",
                "current #b",
            ]
        );
        assert_eq!(b.runs, [3], "one run, then the KICK on its own");
        assert!(bob.membership("#a").is_none());
        // Runs go on in the room the member is still in.
        alice.say(Some(&room("#b")), "four".into(), false).unwrap();
        alice.say(Some(&room("#b")), "five".into(), false).unwrap();
        bob.collect_ready(&mut b, usize::MAX);
        assert_eq!(b.take(), ["#b alice say four", "#b alice say five"]);
        assert_eq!(b.runs, [3, 2]);
    }

    #[tokio::test]
    async fn a_kick_racing_a_rename_still_takes_the_member_out() {
        let hub = test_hub(1024, 0);
        let (mut alice, mut bob, mut b) = bob_in_two_rooms_of_alice(&hub).await;
        // Kicked as bob, renamed before reading the kick: the ring's KICK names someone
        // else now, the mailbox's notice does not.
        hub.kick("alice", &room("#a"), &Nick::new("bob").unwrap(), None)
            .unwrap();
        bob.rename(Nick::new("robert").unwrap(), &mut b).unwrap();
        alice.say(Some(&room("#a")), "after".into(), false).unwrap();
        bob.collect_ready(&mut b, usize::MAX);
        let said = b.take();
        assert!(said.contains(&"#a alice kick bob".to_owned()), "{said:?}");
        assert!(!said.iter().any(|l| l.contains("after")), "{said:?}");
        assert!(bob.membership("#a").is_none());
        // The kick is shown once.
        assert_eq!(said.iter().filter(|l| l.contains("kick")).count(), 1);
    }
}

//! The registry of nicknames, rooms and accounts, and the one place where events get
//! their message ids.
//!
//! The hub is a plain `Mutex` over a few maps, held only for a few map operations and
//! never across an `.await`. Sessions come here to register, join, part, rename and
//! leave. An ordinary message does not: the session holds each room's [`Channel`] and
//! publishes to it directly.
//!
//! Every room event is *published*: under the room's own short lock it gets the next
//! message id, goes to the store's queue and is sent to the room's broadcast channel. So
//! ids rise in each room's order, the store receives a room's events in that order, and a
//! query queued after an event always sees it (the store answers in queue order). That
//! is what makes the seam between history and live traffic exact.
//!
//! Room events that concern membership (join, part, quit, rename) are published while the
//! hub lock is held, so their order in a room is the order in which membership changed.
//!
//! A room with more than `--presence-limit` members is *quiet*: its joins, parts and
//! quits are not announced to the others (the one joining or leaving still sees its own
//! `JOIN` or `PART`, with its id in the room's order), and a joiner is not sent the
//! member list (`/who` gives it). Without that, N people joining one room cost N²/2
//! `JOIN` deliveries (50 million for 10,000) and as many names in member lists.

use crate::mailbox::MailboxSender;
use crate::metrics::{Metrics, Observed, Refusal};
use crate::password::{Hasher, Throttle};
use crate::ring::{Budget, Cursor, Ring, Weigh};
use crate::store::{Account, Busy, Kind, Query, Record, Store};
use bytes::{Bytes, BytesMut};
use chat_proto::{Nick, Room, ServerFrame, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// The server time of an event, at the millisecond precision of the wire.
pub(crate) fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

/// Nicknames per `MEMBERS` frame and rooms per `ROOMS` frame, so that no frame comes
/// near a client's line limit.
pub(crate) const LIST_CHUNK: usize = 100;

/// Ids handed out per millisecond of uptime before a restart could reuse one.
const IDS_PER_MS: u64 = 1024;

/// The first id of this run: past every stored id, and past every id an earlier run
/// can have handed out without storing it (a `RENAME *`, an event lost in a crash)
/// unless that run averaged over a million ids per second: ids start at the current
/// time in milliseconds times [`IDS_PER_MS`].
fn first_id(stored_next: u64) -> u64 {
    let now_ms = u64::try_from(now().as_millisecond()).unwrap_or(0);
    stored_next.max(now_ms.saturating_mul(IDS_PER_MS)).max(1)
}

/// Locks a mutex, carrying on after a panic elsewhere: every critical section here leaves
/// its data consistent enough to serve.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A room event as members receive it: its id and its frame, encoded once.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// The message id.
    pub(crate) id: u64,
    /// The frame with its `\n`, shared by every member.
    pub(crate) bytes: Bytes,
}

/// What an event held in a ring costs beyond its text: its slot in the ring (40 bytes),
/// the `Bytes`' shared header and the allocator's bookkeeping, rounded up.
const EVENT_OVERHEAD: usize = 128;

impl Weigh for Event {
    fn weight(&self) -> usize {
        self.bytes.len() + EVENT_OVERHEAD
    }
}

/// One room's fan-out, shared by the hub and the room's members.
pub(crate) struct Channel {
    /// The folded name, the room's key in the hub and in the store.
    pub(crate) key: Arc<str>,
    /// The name as its creator spelled it.
    pub(crate) name: Room,
    /// The room's lock: held while an event gets its id, is queued for the store and is
    /// sent, so that the three orders agree.
    order: Mutex<()>,
    /// The room's latest events, which each member reads at its own pace.
    pub(crate) ring: Ring<Event>,
}

/// The ids, the store and the password machinery: what publishing and accounts need.
pub(crate) struct Hub {
    state: Mutex<State>,
    /// The next message id.
    ids: AtomicU64,
    /// How rooms are made and how many may exist.
    rooms: RoomLimits,
    /// What the rooms' rings hold together, and may (`--room-buffer-total`).
    budget: Arc<Budget>,
    /// Rooms with more members than this do not announce joins, parts and quits (0: all
    /// rooms do).
    presence_limit: usize,
    /// History and accounts on disk (or in memory).
    store: Store,
    /// Runs argon2 off the async threads, a few at a time, fairly between addresses.
    pub(crate) hasher: Hasher,
    /// Slows down password guessing per address and per nickname, without locking a
    /// nickname's owner out.
    pub(crate) throttle: Throttle,
    /// What the server counts, for `/metrics`.
    pub(crate) metrics: Metrics,
}

/// A connected, named session as the hub sees it.
struct Peer {
    /// The nickname as its owner spelled it.
    nick: Nick,
    /// Where private messages for this session go.
    mailbox: MailboxSender,
    /// Folded names of the rooms it is in, so a disconnect can leave them all.
    rooms: Vec<String>,
}

/// How big each room's ring may grow, and how many rooms may exist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomLimits {
    /// Events each room's ring holds at most (`--room-capacity`).
    pub(crate) capacity: usize,
    /// Bytes of events each room's ring holds at most (`--room-buffer`).
    pub(crate) buffer: usize,
    /// Bytes of events all the rooms' rings hold together, past which the ring that
    /// sends gives back its oldest (`--room-buffer-total`).
    pub(crate) total_buffer: usize,
    /// Rooms that may exist at once (`--max-rooms-total`); `#general` is never refused.
    pub(crate) total: usize,
    /// Rooms created from one address that may exist at once (`--max-rooms-per-ip`);
    /// `#general` is never refused nor counted.
    pub(crate) per_address: usize,
}

/// One room.
struct RoomEntry {
    channel: Arc<Channel>,
    /// The members: folded nickname, and the nickname as spelled (so that a big room's
    /// list is written without a lookup per member).
    members: BTreeMap<String, Nick>,
    /// The address the room was created from, when it counts against that address's
    /// rooms (see [`RoomLimits::per_address`]).
    creator: Option<IpAddr>,
}

#[derive(Default)]
struct State {
    /// Sessions by folded nickname.
    peers: HashMap<String, Peer>,
    /// Rooms by folded name. A room exists while it has members.
    rooms: HashMap<String, RoomEntry>,
    /// Rooms that exist, by the address that created them (only addresses with some).
    created: HashMap<IpAddr, usize>,
    /// Registered nicknames by folded name.
    accounts: HashMap<String, Account>,
    /// The server is shutting down: every session has been told, and so is every
    /// session registered from now on.
    shutting_down: bool,
}

/// Why a nickname cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Someone connected has it (case-insensitively).
    Taken,
    /// It is registered, and the session has not given its password.
    Registered,
}

/// The result of a join.
pub(crate) enum Joined {
    /// The session was already in the room.
    Already,
    /// The room does not exist and may not be created now.
    Refused(RoomRefused),
    /// The session is now in the room.
    New {
        /// The room.
        channel: Arc<Channel>,
        /// The room's events after the `JOIN`.
        cursor: Cursor,
        /// The `JOIN` event, to show the joiner first.
        join: Event,
        /// Everyone in the room, the newcomer included, as encoded `MEMBERS` frames
        /// (none for a quiet room).
        members: Bytes,
    },
}

/// Why a room cannot be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoomRefused {
    /// The server holds as many rooms as it allows.
    Full { limit: usize },
    /// The joining session's address created as many rooms (that still exist) as one
    /// address may.
    AddressFull { limit: usize },
}

/// The account of a nickname, for the handshake and `/history`.
#[derive(Debug, Clone)]
pub(crate) struct AccountInfo {
    /// The argon2 hash of its password.
    pub(crate) hash: String,
    /// When it was registered (private history before that belonged to someone else).
    pub(crate) created_ms: i64,
}

/// `/register` on a nickname that has an account already.
#[derive(Debug)]
pub(crate) struct AlreadyRegistered;

impl Hub {
    /// A hub over `store`, whose next message id is `next_id` and whose accounts are
    /// `accounts`.
    pub(crate) fn new(
        rooms: RoomLimits,
        presence_limit: usize,
        store: Store,
        next_id: u64,
        accounts: Vec<Account>,
    ) -> Hub {
        let accounts = accounts.into_iter().map(|a| (a.nick.clone(), a)).collect();
        Hub {
            state: Mutex::new(State {
                accounts,
                ..State::default()
            }),
            ids: AtomicU64::new(first_id(next_id)),
            metrics: Metrics::new(store.commit_times()),
            budget: Budget::new(rooms.total_buffer),
            rooms,
            presence_limit,
            store,
            hasher: Hasher::new(2),
            throttle: Throttle::new(10_000),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A fresh message id, for an event that no room holds (a private message, a rename
    /// seen by nobody else).
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes a message (`MSG`, `ACTION`) to `channel` (see the module docs). One
    /// the store cannot queue is refused (`Busy`) and sent to no one, so nothing accepted
    /// is ever missing from history.
    pub(crate) fn publish(
        &self,
        channel: &Channel,
        make: impl FnOnce(u64, Timestamp) -> ServerFrame,
    ) -> Result<Event, Busy> {
        let _order = lock(&channel.order);
        let (event, stored) = self.stamp(channel, Kind::Message, make);
        stored?;
        channel.ring.send(event.clone());
        self.metrics.published();
        Ok(event)
    }

    /// Publishes a membership event (`JOIN`, `PART`, `QUIT`, `RENAME`): like
    /// [`Hub::publish`], but a departure cannot be refused, so it is sent even when the
    /// store cannot keep it (a member refilled past it is then told `LAGGED`). The
    /// caller holds the room's lock.
    fn announce(
        &self,
        channel: &Channel,
        make: impl FnOnce(u64, Timestamp) -> ServerFrame,
    ) -> Event {
        let (event, stored) = self.stamp(channel, Kind::Membership, make);
        if stored.is_err() {
            tracing::warn!(room = %channel.name, id = event.id, "store queue full: event not kept");
        }
        channel.ring.send(event.clone());
        self.metrics.published();
        event
    }

    /// Whether a room of `members` members (the one joining or leaving included) keeps
    /// its joins, parts and quits to itself.
    fn is_quiet(&self, members: usize) -> bool {
        self.presence_limit > 0 && members > self.presence_limit
    }

    /// A membership event of a quiet room: it gets its id and time in the room's order
    /// (the caller holds the room's lock), but is neither sent nor stored; only its
    /// subject sees it.
    fn unannounced(&self, make: impl FnOnce(u64, Timestamp) -> ServerFrame) -> Event {
        let id = self.next_id();
        Event {
            id,
            bytes: make(id, now()).to_bytes(),
        }
    }

    /// Gives an event its id and time, encodes it and queues it for the store. The
    /// caller holds the room's lock and sends the event.
    fn stamp(
        &self,
        channel: &Channel,
        kind: Kind,
        make: impl FnOnce(u64, Timestamp) -> ServerFrame,
    ) -> (Event, Result<(), Busy>) {
        let (id, time) = (self.next_id(), now());
        let bytes = make(id, time).to_bytes();
        let stored = self.store.append(Record {
            id,
            kind,
            room: Some(channel.key.clone()),
            pair: None,
            time_ms: time.as_millisecond(),
            line: bytes.clone(),
        });
        (Event { id, bytes }, stored)
    }

    /// Gives a private message its id and time, encoded.
    pub(crate) fn stamp_private(
        &self,
        make: impl FnOnce(u64, Timestamp) -> ServerFrame,
    ) -> (u64, Timestamp, Bytes) {
        let (id, time) = (self.next_id(), now());
        (id, time, make(id, time).to_bytes())
    }

    /// Queues a delivered private message for the store, for its two parties' history.
    pub(crate) fn keep_private(
        &self,
        pair: Arc<str>,
        (id, time, line): (u64, Timestamp, Bytes),
    ) -> Result<(), Busy> {
        self.store.append(Record {
            id,
            kind: Kind::Private,
            room: None,
            pair: Some(pair),
            time_ms: time.as_millisecond(),
            line,
        })
    }

    /// Asks the store a question; the answer comes on the returned channel.
    pub(crate) fn query(
        &self,
        query: Query,
    ) -> Result<oneshot::Receiver<crate::store::Answer>, Busy> {
        self.store.query(query)
    }

    /// Waits until everything queued for the store so far is committed.
    pub(crate) async fn flush(&self) {
        if let Ok(done) = self.store.flush() {
            let _ = done.await;
        }
    }

    /// The account of `key` (a folded nickname), if it is registered.
    pub(crate) fn account(&self, key: &str) -> Option<AccountInfo> {
        self.lock().accounts.get(key).map(|a| AccountInfo {
            hash: a.hash.clone(),
            created_ms: a.created_ms,
        })
    }

    /// Whether someone connected has the nickname `key`.
    pub(crate) fn is_connected(&self, key: &str) -> bool {
        self.lock().peers.contains_key(key)
    }

    /// Creates the account of `key` (`/register`), or changes its password
    /// (`change: true`). Returns the account's creation time.
    pub(crate) fn set_account(
        &self,
        key: &str,
        hash: String,
        change: bool,
    ) -> Result<Result<i64, AlreadyRegistered>, Busy> {
        let mut st = self.lock();
        let created_ms = match (st.accounts.get(key), change) {
            (Some(_), false) => return Ok(Err(AlreadyRegistered)),
            (Some(account), true) => account.created_ms,
            (None, _) => now().as_millisecond(),
        };
        let account = Account {
            nick: key.to_owned(),
            hash,
            created_ms,
        };
        self.store.set_account(account.clone())?;
        st.accounts.insert(key.to_owned(), account);
        Ok(Ok(created_ms))
    }

    /// Claims `nick` for a new session. A registered nickname needs `identified` (its
    /// password was given).
    pub(crate) fn register(
        &self,
        nick: &Nick,
        mailbox: MailboxSender,
        identified: bool,
    ) -> Result<(), Refused> {
        let mut st = self.lock();
        let key = nick.folded();
        if st.peers.contains_key(&key) {
            return Err(Refused::Taken);
        }
        if !identified && st.accounts.contains_key(&key) {
            return Err(Refused::Registered);
        }
        if st.shutting_down {
            mailbox.shut_down();
        }
        st.peers.insert(
            key,
            Peer {
                nick: nick.clone(),
                mailbox,
                rooms: Vec::new(),
            },
        );
        Ok(())
    }

    /// Tells every session, and every session still to register, that the server is
    /// shutting down (through its mailbox: see [`crate::mailbox`]).
    pub(crate) fn shut_down(&self) {
        let mut st = self.lock();
        st.shutting_down = true;
        for peer in st.peers.values() {
            peer.mailbox.shut_down();
        }
    }

    /// Removes a session: each of its rooms is told `QUIT` once, then the nickname is free.
    pub(crate) fn unregister(&self, key: &str, reason: &str) {
        let mut st = self.lock();
        let State {
            peers,
            rooms,
            created,
            ..
        } = &mut *st;
        let Some(peer) = peers.remove(key) else {
            return;
        };
        for room_key in &peer.rooms {
            if let Some(room) = rooms.get_mut(room_key) {
                let quiet = self.is_quiet(room.members.len());
                room.members.remove(key);
                let channel = &room.channel;
                if !quiet {
                    let _order = lock(&channel.order);
                    self.announce(channel, |id, time| ServerFrame::Quit {
                        room: channel.name.clone(),
                        nick: peer.nick.clone(),
                        time,
                        id,
                        reason: Some(reason.to_owned()),
                    });
                }
                if room.members.is_empty() {
                    remove_room(rooms, created, room_key);
                }
            }
        }
    }

    /// Puts the session `key` in `room`, creating the room if need be. `origin` is the
    /// session's address when the rooms it creates count against that address (see
    /// [`RoomLimits::per_address`]); `None` for an exempt address.
    pub(crate) fn join(&self, key: &str, room: &Room, origin: Option<IpAddr>) -> Joined {
        let mut st = self.lock();
        let State {
            peers,
            rooms,
            created,
            ..
        } = &mut *st;
        let Some(peer) = peers.get_mut(key) else {
            // Cannot happen: a session is registered for its whole life.
            return Joined::Already;
        };
        let folded = room.folded();
        let existing = rooms.len();
        let entry = match rooms.entry(folded.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                let limits = &self.rooms;
                // The room everyone starts in is never refused.
                let general = folded == Room::general().folded();
                if !general && existing >= limits.total {
                    let limit = limits.total;
                    self.metrics.refused(Refusal::RoomsFull);
                    return Joined::Refused(RoomRefused::Full { limit });
                }
                let count = origin.map_or(0, |ip| created.get(&ip).copied().unwrap_or(0));
                if !general && count >= limits.per_address {
                    let limit = limits.per_address;
                    self.metrics.refused(Refusal::TooManyRoomsCreated);
                    return Joined::Refused(RoomRefused::AddressFull { limit });
                }
                // Nor counted against whoever happened to make it.
                let origin = origin.filter(|_| !general);
                let entry = vacant.insert(RoomEntry {
                    channel: Arc::new(Channel {
                        key: folded.as_str().into(),
                        name: room.clone(),
                        order: Mutex::new(()),
                        ring: Ring::new(limits.capacity, limits.buffer, self.budget.clone()),
                    }),
                    members: BTreeMap::new(),
                    creator: origin,
                });
                if let Some(ip) = origin {
                    *created.entry(ip).or_insert(0) += 1;
                }
                entry
            }
        };
        if entry.members.contains_key(key) {
            return Joined::Already;
        }
        entry.members.insert(key.to_owned(), peer.nick.clone());
        peer.rooms.push(folded);
        let quiet = self.is_quiet(entry.members.len());
        let channel = entry.channel.clone();
        // Publish the JOIN and subscribe under the room's lock: the cursor starts at
        // exactly what follows the JOIN in the room's order.
        let order = lock(&channel.order);
        let make = |id, time| ServerFrame::Join {
            room: channel.name.clone(),
            nick: peer.nick.clone(),
            time,
            id,
        };
        let join = if quiet {
            self.unannounced(make)
        } else {
            self.announce(&channel, make)
        };
        let cursor = channel.ring.subscribe();
        drop(order);
        // A quiet room's list would be stale at once, and writing it to every joiner is
        // what makes a crowd joining cost O(N²) bytes: `/who` gives it on demand.
        let mut members = BytesMut::new();
        if !quiet {
            ServerFrame::encode_members(
                &channel.name,
                entry.members.values(),
                LIST_CHUNK,
                &mut members,
            );
        }
        Joined::New {
            channel,
            cursor,
            join,
            members: members.freeze(),
        }
    }

    /// Takes the session `key` out of the room `room_key`. Returns the `PART` event, which
    /// the room has been sent and the leaver should be shown, or `None` if it was not in
    /// the room.
    pub(crate) fn part(&self, key: &str, room_key: &str, reason: Option<String>) -> Option<Event> {
        let mut st = self.lock();
        let State {
            peers,
            rooms,
            created,
            ..
        } = &mut *st;
        let peer = peers.get_mut(key)?;
        let room = rooms.get_mut(room_key)?;
        let quiet = self.is_quiet(room.members.len());
        room.members.remove(key)?;
        peer.rooms.retain(|r| r != room_key);
        let order = lock(&room.channel.order);
        let make = |id, time| ServerFrame::Part {
            room: room.channel.name.clone(),
            nick: peer.nick.clone(),
            time,
            id,
            reason,
        };
        let part = if quiet {
            self.unannounced(make)
        } else {
            self.announce(&room.channel, make)
        };
        drop(order);
        if room.members.is_empty() {
            remove_room(rooms, created, room_key);
        }
        Some(part)
    }

    /// Renames the session `old_key` to `new`; `identified` names the account whose
    /// password the session gave, if any. Each of its rooms is sent `RENAME`. Returns the
    /// `RENAME *` event for a session in no room (it would otherwise not hear of its own
    /// rename).
    pub(crate) fn rename(
        &self,
        old_key: &str,
        new: &Nick,
        identified: Option<&str>,
    ) -> Result<Option<Bytes>, Refused> {
        let mut st = self.lock();
        let State {
            peers,
            rooms,
            accounts,
            ..
        } = &mut *st;
        let new_key = new.folded();
        if new_key != old_key && peers.contains_key(&new_key) {
            return Err(Refused::Taken);
        }
        if accounts.contains_key(&new_key) && identified != Some(new_key.as_str()) {
            return Err(Refused::Registered);
        }
        let Some(mut peer) = peers.remove(old_key) else {
            return Err(Refused::Taken);
        };
        let old = std::mem::replace(&mut peer.nick, new.clone());
        for room_key in &peer.rooms {
            if let Some(room) = rooms.get_mut(room_key) {
                room.members.remove(old_key);
                room.members.insert(new_key.clone(), new.clone());
                let _order = lock(&room.channel.order);
                self.announce(&room.channel, |id, time| ServerFrame::Rename {
                    room: Some(room.channel.name.clone()),
                    old: old.clone(),
                    new: new.clone(),
                    time,
                    id,
                });
            }
        }
        let alone = peer.rooms.is_empty();
        peers.insert(new_key, peer);
        Ok(alone.then(|| {
            ServerFrame::Rename {
                room: None,
                old,
                new: new.clone(),
                time: now(),
                id: self.next_id(),
            }
            .to_bytes()
        }))
    }

    /// The nickname (as spelled) and mailbox of the session called `nick`.
    pub(crate) fn lookup(&self, nick: &Nick) -> Option<(Nick, MailboxSender)> {
        let st = self.lock();
        st.peers
            .get(&nick.folded())
            .map(|p| (p.nick.clone(), p.mailbox.clone()))
    }

    /// The members of a room as encoded `MEMBERS` frames, or `None` if it does not
    /// exist.
    pub(crate) fn members(&self, room: &Room) -> Option<Bytes> {
        let st = self.lock();
        let entry = st.rooms.get(&room.folded())?;
        let mut members = BytesMut::new();
        ServerFrame::encode_members(
            &entry.channel.name,
            entry.members.values(),
            LIST_CHUNK,
            &mut members,
        );
        Some(members.freeze())
    }

    /// The canonical name of a room that exists.
    pub(crate) fn room_name(&self, key: &str) -> Option<Room> {
        self.lock().rooms.get(key).map(|r| r.channel.name.clone())
    }

    /// Every room and its member count, by name.
    pub(crate) fn rooms(&self) -> Vec<(Room, usize)> {
        let st = self.lock();
        let mut list: Vec<_> = st
            .rooms
            .values()
            .map(|r| (r.channel.name.clone(), r.members.len()))
            .collect();
        list.sort_by_key(|(room, _)| room.folded());
        list
    }

    /// Bytes of events held by every room's ring.
    pub(crate) fn room_bytes(&self) -> usize {
        self.budget.held()
    }

    /// Whether the store takes writes (see `Store::healthy`).
    pub(crate) fn store_healthy(&self) -> bool {
        self.store.healthy()
    }

    /// The metrics in the OpenMetrics text format, the gauges read from the hub now.
    pub(crate) fn metrics_text(&self) -> String {
        let (sessions, rooms) = self.counts();
        self.metrics.observe(Observed {
            sessions,
            rooms,
            room_bytes: self.room_bytes(),
            store_queue: self.store.queued(),
        });
        self.metrics.encode()
    }

    /// How many sessions are registered and how many rooms exist.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.peers.len(), st.rooms.len())
    }
}

/// Removes the empty room `key`, and its count against the address that created it.
fn remove_room(
    rooms: &mut HashMap<String, RoomEntry>,
    created: &mut HashMap<IpAddr, usize>,
    key: &str,
) {
    let Some(room) = rooms.remove(key) else {
        return;
    };
    if let Some(ip) = room.creator
        && let Some(count) = created.get_mut(&ip)
    {
        *count -= 1;
        if *count == 0 {
            created.remove(&ip);
        }
    }
}

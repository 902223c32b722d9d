//! The registry of nicknames and rooms.
//!
//! The hub is a plain `Mutex` over two maps, held only for a few map operations and never
//! across an `.await`. Sessions come here to register, join, part, rename and leave. An
//! ordinary message does not: the session keeps a clone of each room's broadcast sender
//! and sends to it directly.
//!
//! Room events that concern membership (join, part, quit, rename) are sent while the lock
//! is held, so their order in a room is the order in which membership changed.

use crate::mailbox::MailboxSender;
use bytes::Bytes;
use chat_proto::{Nick, Room, ServerFrame, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::broadcast;

/// The server time of an event, at the millisecond precision of the wire.
pub(crate) fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

/// Whether two event buffers are the same event (clones of one `Bytes`).
pub(crate) fn same_event(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// Advances `rx` past `event`, dropping what came before it. Returns how many events the
/// receiver was told it lost meanwhile (the room's buffer overflowed before it got there).
fn skip_through(rx: &mut broadcast::Receiver<Bytes>, event: &Bytes) -> u64 {
    let mut missed = 0;
    loop {
        match rx.try_recv() {
            Ok(bytes) if same_event(&bytes, event) => return missed,
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Lagged(n)) => missed += n,
            Err(_) => return missed,
        }
    }
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

/// One room.
struct RoomEntry {
    /// The name as its creator spelled it.
    name: Room,
    /// Fan-out: every member holds a receiver.
    tx: broadcast::Sender<Bytes>,
    /// Folded nicknames of the members.
    members: BTreeSet<String>,
}

#[derive(Default)]
struct State {
    /// Sessions by folded nickname.
    peers: HashMap<String, Peer>,
    /// Rooms by folded name. A room exists while it has members.
    rooms: HashMap<String, RoomEntry>,
}

/// What the hub knows: who is connected, which rooms exist and who is in them.
pub(crate) struct Hub {
    state: Mutex<State>,
    /// The next message id.
    ids: std::sync::atomic::AtomicU64,
    /// Capacity of each room's broadcast channel.
    room_capacity: usize,
}

/// The nickname is in use (case-insensitively).
#[derive(Debug)]
pub(crate) struct NickTaken;

/// The result of a join.
pub(crate) enum Joined {
    /// The session was already in the room.
    Already,
    /// The session is now in the room; the `JOIN` event has been sent to it.
    New {
        /// The room's canonical name.
        room: Room,
        /// For sending to the room.
        tx: broadcast::Sender<Bytes>,
        /// For receiving from the room: everything after the `JOIN`.
        rx: broadcast::Receiver<Bytes>,
        /// The `JOIN` event, to show the joiner first.
        join: Bytes,
        /// Events the joiner's receiver lost while it was being positioned just after the
        /// `JOIN` (only when the room's buffer overflowed meanwhile; normally 0).
        missed: u64,
        /// Everyone in the room, the newcomer included.
        members: Vec<Nick>,
    },
}

impl Hub {
    pub(crate) fn new(room_capacity: usize) -> Hub {
        Hub {
            state: Mutex::new(State::default()),
            ids: std::sync::atomic::AtomicU64::new(1),
            room_capacity: room_capacity.max(1),
        }
    }

    /// A fresh message id.
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves maps that are still consistent enough to
        // serve (each operation mutates them in a few steps); keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims `nick` for a new session.
    pub(crate) fn register(&self, nick: &Nick, mailbox: MailboxSender) -> Result<(), NickTaken> {
        let mut st = self.lock();
        let key = nick.folded();
        if st.peers.contains_key(&key) {
            return Err(NickTaken);
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

    /// Removes a session: each of its rooms is told `QUIT` once, then the nickname is free.
    pub(crate) fn unregister(&self, key: &str, reason: &str) {
        let mut st = self.lock();
        let State { peers, rooms } = &mut *st;
        let Some(peer) = peers.remove(key) else {
            return;
        };
        let time = now();
        for room_key in &peer.rooms {
            if let Some(room) = rooms.get_mut(room_key) {
                room.members.remove(key);
                let frame = ServerFrame::Quit {
                    room: room.name.clone(),
                    nick: peer.nick.clone(),
                    time,
                    id: self.next_id(),
                    reason: Some(reason.to_owned()),
                };
                let _ = room.tx.send(frame.to_bytes());
                if room.members.is_empty() {
                    rooms.remove(room_key);
                }
            }
        }
    }

    /// Puts the session `key` in `room`, creating the room if need be.
    pub(crate) fn join(&self, key: &str, room: &Room) -> Joined {
        let mut st = self.lock();
        let State { peers, rooms } = &mut *st;
        let Some(peer) = peers.get_mut(key) else {
            // Cannot happen: a session is registered for its whole life.
            return Joined::Already;
        };
        let capacity = self.room_capacity;
        let entry = rooms.entry(room.folded()).or_insert_with(|| RoomEntry {
            name: room.clone(),
            tx: broadcast::channel(capacity).0,
            members: BTreeSet::new(),
        });
        if entry.members.contains(key) {
            return Joined::Already;
        }
        entry.members.insert(key.to_owned());
        peer.rooms.push(room.folded());
        let frame = ServerFrame::Join {
            room: entry.name.clone(),
            nick: peer.nick.clone(),
            time: now(),
            id: self.next_id(),
        };
        let join = frame.to_bytes();
        // Subscribe, send the JOIN, then skip to just after it. Messages do not take the
        // hub lock, so others may send concurrently: whatever precedes the JOIN in the
        // room's order is skipped, whatever follows it is kept, exactly as every other
        // member sees the room.
        let mut rx = entry.tx.subscribe();
        let _ = entry.tx.send(join.clone());
        let missed = skip_through(&mut rx, &join);
        let members = entry
            .members
            .iter()
            .filter_map(|k| peers.get(k).map(|p| p.nick.clone()))
            .collect();
        Joined::New {
            room: entry.name.clone(),
            tx: entry.tx.clone(),
            rx,
            join,
            missed,
            members,
        }
    }

    /// Takes the session `key` out of the room `room_key`. Returns the `PART` event, which
    /// the room has been sent and the leaver should be shown, or `None` if it was not in
    /// the room.
    pub(crate) fn part(&self, key: &str, room_key: &str, reason: Option<String>) -> Option<Bytes> {
        let mut st = self.lock();
        let State { peers, rooms } = &mut *st;
        let peer = peers.get_mut(key)?;
        let room = rooms.get_mut(room_key)?;
        if !room.members.remove(key) {
            return None;
        }
        peer.rooms.retain(|r| r != room_key);
        let frame = ServerFrame::Part {
            room: room.name.clone(),
            nick: peer.nick.clone(),
            time: now(),
            id: self.next_id(),
            reason,
        };
        let bytes = frame.to_bytes();
        let _ = room.tx.send(bytes.clone());
        if room.members.is_empty() {
            rooms.remove(room_key);
        }
        Some(bytes)
    }

    /// Renames the session `old_key` to `new`. Each of its rooms is sent `RENAME`.
    /// Returns the `RENAME *` event for a session in no room (it would otherwise not
    /// hear of its own rename).
    pub(crate) fn rename(&self, old_key: &str, new: &Nick) -> Result<Option<Bytes>, NickTaken> {
        let mut st = self.lock();
        let State { peers, rooms } = &mut *st;
        let new_key = new.folded();
        if new_key != old_key && peers.contains_key(&new_key) {
            return Err(NickTaken);
        }
        let Some(mut peer) = peers.remove(old_key) else {
            return Err(NickTaken);
        };
        let old = std::mem::replace(&mut peer.nick, new.clone());
        let time = now();
        for room_key in &peer.rooms {
            if let Some(room) = rooms.get_mut(room_key) {
                room.members.remove(old_key);
                room.members.insert(new_key.clone());
                let frame = ServerFrame::Rename {
                    room: Some(room.name.clone()),
                    old: old.clone(),
                    new: new.clone(),
                    time,
                    id: self.next_id(),
                };
                let _ = room.tx.send(frame.to_bytes());
            }
        }
        let alone = peer.rooms.is_empty();
        peers.insert(new_key, peer);
        Ok(alone.then(|| {
            ServerFrame::Rename {
                room: None,
                old,
                new: new.clone(),
                time,
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

    /// The members of a room, or `None` if it does not exist.
    pub(crate) fn members(&self, room: &Room) -> Option<(Room, Vec<Nick>)> {
        let st = self.lock();
        let entry = st.rooms.get(&room.folded())?;
        let members = entry
            .members
            .iter()
            .filter_map(|k| st.peers.get(k).map(|p| p.nick.clone()))
            .collect();
        Some((entry.name.clone(), members))
    }

    /// Every room and its member count, by name.
    pub(crate) fn rooms(&self) -> Vec<(Room, usize)> {
        let st = self.lock();
        let mut list: Vec<_> = st
            .rooms
            .values()
            .map(|r| (r.name.clone(), r.members.len()))
            .collect();
        list.sort_by_key(|(room, _)| room.folded());
        list
    }

    /// How many sessions are registered and how many rooms exist.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.peers.len(), st.rooms.len())
    }
}

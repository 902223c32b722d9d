//! What happens in the chat, as protocol-neutral values.
//!
//! An [`Event`] is made once, when the core gives it its id, and shared by `Arc`: through
//! its room's ring to every member, through a mailbox to the two parties of a private
//! message, and to the store's writer. A door turns it into its wire bytes through
//! [`Event::encoded`], which keeps the bytes of each wire flavour in the event itself: the
//! first member of a door that needs them encodes them, every other member of that door
//! copies the same bytes. So one event reaching 1,000 members of one door is encoded
//! once, whoever reads first.
//!
//! The store keeps an event's fields (see `store`), not any door's bytes, and gives back
//! events rebuilt from them; a door encodes those as it encodes live ones.

use chat_proto::name::{Nick, Room};
use jiff::Timestamp;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

/// A room as events name it: the folded name (its key in the hub and the store) and the
/// name as its creator spelled it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RoomName {
    /// The folded name.
    pub(crate) key: Arc<str>,
    /// The name as spelled.
    pub(crate) name: Room,
}

impl RoomName {
    pub(crate) fn new(name: Room) -> Arc<RoomName> {
        Arc::new(RoomName {
            key: name.folded().into(),
            name,
        })
    }
}

/// Who did something: the user behind an event.
///
/// A session holds its source and shares it with every event it causes; a rename makes
/// a new one. Its [`Ident`] is what IRC shows as `nick!user@host` (and what ban masks
/// match); the store keeps only the nickname and the account, so events rebuilt from
/// history carry none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    /// The nickname as spelled when the event happened.
    pub(crate) nick: Nick,
    /// The account (a folded registered nickname) the user identified to, if any.
    pub(crate) account: Option<Arc<str>>,
    /// The user name and host a door gave, if any (one pointer: most sources have
    /// none, and every connection has a source).
    pub(crate) ident: Option<Arc<Ident>>,
}

/// IRC's `user@host` of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident {
    /// The user name the door was given (IRC's `USER`).
    pub(crate) user: Arc<str>,
    /// The host shown for the user (its address, or a cloak).
    pub(crate) host: Arc<str>,
    /// The real name it gave (IRC's `USER`), shown by `WHOIS` and `WHO`.
    pub(crate) realname: Arc<str>,
}

impl Source {
    /// A source known only by its nickname (and account), as the store keeps it.
    pub(crate) fn named(nick: Nick, account: Option<Arc<str>>) -> Source {
        Source {
            nick,
            account,
            ident: None,
        }
    }
}

/// Where an event happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// In a room: every member gets it.
    Room(Arc<RoomName>),
    /// Between the source and `to`: both get it.
    Private {
        /// The recipient.
        to: Nick,
    },
    /// To its source alone (a rename while in no room).
    Own,
    /// An operators' notice (`/wallops`): to every operator and every session that
    /// asked for them; never stored.
    Wallops,
}

/// What happened. The source is the one who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Something said (to a room, or privately).
    Message {
        /// What was said.
        text: String,
    },
    /// `/me` (IRC's CTCP ACTION): something done.
    Action {
        /// The action, without the nickname.
        text: String,
    },
    /// IRC's `NOTICE`: something said that clients must not answer automatically (a
    /// native client shows it as a message).
    Notice {
        /// What was said.
        text: String,
    },
    /// The source joined the room.
    Join,
    /// The source left the room.
    Part {
        /// Why, if it said.
        reason: Option<String>,
    },
    /// The source disconnected (told to each of its rooms, with one cause).
    Quit {
        /// Its `/quit` text, or what the server saw.
        reason: Option<String>,
    },
    /// The source (under its old nickname) is now called `new` (told to each of its
    /// rooms, with one cause).
    Rename {
        /// The new nickname.
        new: Nick,
    },
    /// The room's topic was set (`Some`) or cleared (`None`).
    Topic {
        /// The new topic.
        text: Option<String>,
    },
    /// The room's modes or its members' status changed (`+o alice`, `+m`, `+b mask`).
    Mode {
        /// The changes in IRC's form: flags, then their arguments, space-separated.
        changes: String,
    },
    /// The source removed `target` from the room.
    Kick {
        /// Who was removed.
        target: Nick,
        /// Why (the kicker's nickname when not given).
        reason: String,
    },
    /// The source invited `target` to the room.
    Invite {
        /// Who was invited.
        target: Nick,
    },
    /// The source went away (`Some`) or came back (`None`).
    Away {
        /// Its away message.
        text: Option<String>,
    },
    /// The source identified to an account: the source's `account` (IRC's
    /// `account-notify`).
    Account,
    /// The source changed the real name its door gave (IRC's `SETNAME`).
    Realname {
        /// The new real name.
        realname: String,
    },
}

/// The wire forms an event is encoded to, one cache slot each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// The native line protocol (TCP, TLS, and WebSocket text messages).
    Native = 0,
    /// IRC lines, with their tags first (`@time=…;msgid=… `): each client copies the
    /// part its capabilities take.
    Irc = 1,
}

impl Flavour {
    /// How many flavours there are.
    const COUNT: usize = 2;

    /// Says that some session reads this flavour: from now on every event's weight counts
    /// an encoding in it (see [`Event::weight`]). Never undone.
    pub(crate) fn activate(self) {
        ACTIVE.fetch_or(1 << self as u8, Ordering::Relaxed);
    }

    /// How many flavours have been activated (the native one always is).
    fn active() -> usize {
        ACTIVE.load(Ordering::Relaxed).count_ones() as usize
    }
}

/// The flavours some session of this process has read: bit `1 << flavour`.
static ACTIVE: AtomicU8 = AtomicU8::new(1 << Flavour::Native as u8);

/// One thing that happened, with its id and time.
#[derive(Debug)]
pub(crate) struct Event {
    /// The message id: unique, rising in each room's order (and across restarts).
    pub(crate) id: u64,
    /// When the server accepted it, at millisecond precision.
    pub(crate) time: Timestamp,
    /// The id of the action this event is part of: one quit or rename reaches each of
    /// the user's rooms as its own event, and all of them carry the same cause, so a door
    /// can show the action once per observer. Equal to `id` for an event on its own.
    pub(crate) cause: u64,
    /// Where it happened.
    pub(crate) scope: Scope,
    /// Who did it.
    pub(crate) source: Arc<Source>,
    /// What happened.
    pub(crate) kind: Kind,
    /// Its bytes in each wire flavour, encoded by the first reader that needs them. A
    /// boxed slice, not `Bytes`: readers copy it into their output, so it needs no
    /// reference count, and it is allocated at its exact length.
    wire: [OnceLock<Box<[u8]>>; Flavour::COUNT],
    /// [`Event::weight`], fixed at making.
    weight: u32,
}

/// What an event held in a ring costs beyond its strings: the `Arc`'s block (160 bytes),
/// its text's slack, the ring's slot and the allocator's bookkeeping, rounded up.
const EVENT_OVERHEAD: usize = 192;

/// What one cached encoding costs beyond the strings it repeats: the frame's own words
/// (verb, time, id: about 60 bytes) and the allocator's bookkeeping.
const ENCODING_OVERHEAD: usize = 80;

impl Event {
    pub(crate) fn new(
        id: u64,
        time: Timestamp,
        cause: u64,
        scope: Scope,
        source: Arc<Source>,
        kind: Kind,
    ) -> Event {
        let mut event = Event {
            id,
            time,
            cause,
            scope,
            source,
            kind,
            wire: Default::default(),
            weight: 0,
        };
        let weight = event.weigh(Flavour::active());
        event.weight = u32::try_from(weight).unwrap_or(u32::MAX);
        event
    }

    /// The event's bytes in `flavour`, made by `encode` if no one has made them yet.
    /// `encode` runs at most once per event and flavour (a second caller at the same
    /// moment waits for the first).
    ///
    /// Inlined down to the look at the cache, which is what every delivery but the first
    /// does; the encoding is out of line (issue 17).
    #[inline]
    pub(crate) fn encoded(
        &self,
        flavour: Flavour,
        encode: impl FnOnce(&Event) -> Box<[u8]>,
    ) -> &[u8] {
        let wire = &self.wire[flavour as usize];
        match wire.get() {
            Some(bytes) => bytes,
            None => self.encode_into(wire, encode),
        }
    }

    #[cold]
    #[inline(never)]
    fn encode_into<'a>(
        &'a self,
        wire: &'a OnceLock<Box<[u8]>>,
        encode: impl FnOnce(&Event) -> Box<[u8]>,
    ) -> &'a [u8] {
        wire.get_or_init(|| encode(self))
    }

    /// The room it happened in, if any.
    pub(crate) fn room(&self) -> Option<&Arc<RoomName>> {
        match &self.scope {
            Scope::Room(room) => Some(room),
            _ => None,
        }
    }

    /// Whether `/history` shows it: what people said, in rooms or privately (notices
    /// too: they are part of the conversation, and IRC's chathistory replays them).
    pub(crate) fn is_said(&self) -> bool {
        matches!(
            self.kind,
            Kind::Message { .. } | Kind::Action { .. } | Kind::Notice { .. }
        )
    }

    /// An estimate of the memory the event holds, for the rooms' byte bounds: the event
    /// with its strings, one encoding per wire flavour some session reads (which repeats
    /// the strings), and the native one once more for its copy in its room's window of
    /// frames (`ring::Ring::drain_frames`), counted whether made yet or not: an upper
    /// bound, since the window holds only the newest frames. Fixed when the event is
    /// made, so that a ring subtracts what it added.
    pub(crate) fn weight(&self) -> usize {
        self.weight as usize
    }

    fn weigh(&self, flavours: usize) -> usize {
        let text = match &self.kind {
            Kind::Message { text } | Kind::Action { text } | Kind::Notice { text } => text.len(),
            Kind::Part { reason } | Kind::Quit { reason } => reason.as_ref().map_or(0, String::len),
            Kind::Topic { text } | Kind::Away { text } => text.as_ref().map_or(0, String::len),
            Kind::Rename { new } => new.as_str().len(),
            Kind::Mode { changes } => changes.len(),
            Kind::Kick { target, reason } => target.as_str().len() + reason.len(),
            Kind::Invite { target } => target.as_str().len(),
            Kind::Account => self.source.account.as_ref().map_or(0, |a| a.len()),
            Kind::Realname { realname } => realname.len(),
            Kind::Join => 0,
        };
        let room = self.room().map_or(0, |r| r.name.as_str().len());
        let strings = text + room + self.source.nick.as_str().len();
        strings + EVENT_OVERHEAD + (flavours + 1) * (strings + ENCODING_OVERHEAD)
    }
}

/// The server time of an event, at the millisecond precision of the wire and the store.
pub(crate) fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Kind) -> Event {
        let source = Arc::new(Source::named(Nick::new("alice").unwrap(), None));
        let room = RoomName::new(Room::new("#Rust").unwrap());
        Event::new(7, now(), 7, Scope::Room(room), source, kind)
    }

    #[test]
    fn an_event_is_encoded_once_per_flavour() {
        let event = event(Kind::Message { text: "hi".into() });
        let mut calls = 0;
        for _ in 0..1000 {
            let bytes = event.encoded(Flavour::Native, |e| {
                calls += 1;
                format!("{}\n", e.id).into_bytes().into_boxed_slice()
            });
            assert_eq!(bytes, b"7\n");
        }
        assert_eq!(calls, 1);
    }

    #[test]
    fn weight_grows_with_the_text_and_has_a_floor() {
        let short = event(Kind::Join).weight();
        let long = event(Kind::Message {
            text: "x".repeat(1000),
        })
        .weight();
        assert!(short >= EVENT_OVERHEAD + ENCODING_OVERHEAD);
        assert_eq!(
            long - short,
            1000 * (2 + Flavour::active()),
            "the text, its encodings and its frame in the room's run"
        );
        assert_eq!(event(Kind::Topic { text: None }).weight(), short);
        let _ = event(Kind::Away { text: None });
        let _ = event(Kind::Invite {
            target: Nick::new("bob").unwrap(),
        });
        let _ = event(Kind::Kick {
            target: Nick::new("bob").unwrap(),
            reason: "alice".into(),
        });
        let _ = event(Kind::Mode {
            changes: "+o bob".into(),
        });
    }
}

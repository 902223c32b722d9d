//! The native door's wire form of the core's values: events as frames (encoded once per
//! event, see [`Event::encoded`]), refusals as `ERR` frames, and the [`Output`] the
//! member writes through.

use crate::core::ban::Ban;
use crate::core::error::{Busy, Refusal};
use crate::core::event::{Event, Flavour, Kind, RoomName, Scope};
use crate::core::hub::{Members, Topic, Whois};
use crate::core::member::{AccountChange, Encoder, HistoryOf, Output};
use crate::core::room::{RoomBan, Standing};
use crate::net::driver::Expected;
use crate::net::listener::Admission;
use bytes::{Bytes, BytesMut};
use chat_proto::{AccountStatus, ErrorCode, Nick, ServerFrame, Status, Target};

/// Nicknames per `MEMBERS` frame and rooms per `ROOMS` frame, so that no frame comes
/// near a client's line limit.
pub(crate) const LIST_CHUNK: usize = 100;

/// A member's standing as the native protocol shows it: operator over voice.
pub(crate) fn status(standing: Standing) -> Status {
    if standing.has(Standing::OPERATOR) {
        Status::Operator
    } else if standing.has(Standing::VOICE) {
        Status::Voice
    } else {
        Status::Member
    }
}

/// The `BAN` frame of a room ban.
pub(crate) fn room_ban(room: &RoomName, ban: &RoomBan) -> ServerFrame {
    ServerFrame::Ban {
        room: room.name.clone(),
        mask: ban.mask.to_string(),
        by: ban.by.clone(),
        time: ban.time,
    }
}

/// The frame of an event, or `None` for an event the native protocol does not show (an
/// away change: the native door answers `/away` itself; an account change: it answers
/// `/register` itself; an IRC user's new real name).
pub(crate) fn frame(event: &Event) -> Option<ServerFrame> {
    let from = event.source.nick.clone();
    let (time, id) = (event.time, event.id);
    let frame = match (&event.scope, &event.kind) {
        // A notice (from an IRC client) is a message to the native protocol.
        (Scope::Room(room), Kind::Message { text } | Kind::Notice { text }) => {
            ServerFrame::Message {
                room: room.name.clone(),
                from,
                time,
                id,
                text: text.clone(),
            }
        }
        (Scope::Room(room), Kind::Action { text }) => ServerFrame::Action {
            room: room.name.clone(),
            from,
            time,
            id,
            text: text.clone(),
        },
        (Scope::Private { to }, Kind::Message { text } | Kind::Notice { text }) => {
            ServerFrame::Private {
                from,
                to: to.clone(),
                time,
                id,
                text: text.clone(),
            }
        }
        // An IRC user's private `/me`: the native protocol has no private action, so
        // it reads as IRC clients show one.
        (Scope::Private { to }, Kind::Action { text }) => ServerFrame::Private {
            text: format!("* {from} {text}"),
            from,
            to: to.clone(),
            time,
            id,
        },
        (Scope::Room(room), Kind::Join) => ServerFrame::Join {
            room: room.name.clone(),
            nick: from,
            time,
            id,
        },
        (Scope::Room(room), Kind::Part { reason }) => ServerFrame::Part {
            room: room.name.clone(),
            nick: from,
            time,
            id,
            reason: reason.clone(),
        },
        (Scope::Room(room), Kind::Quit { reason }) => ServerFrame::Quit {
            room: room.name.clone(),
            nick: from,
            time,
            id,
            reason: reason.clone(),
        },
        (Scope::Wallops, Kind::Message { text }) => ServerFrame::Wallops {
            from,
            time,
            text: text.clone(),
        },
        (scope, Kind::Rename { new }) => ServerFrame::Rename {
            room: match scope {
                Scope::Room(room) => Some(room.name.clone()),
                _ => None,
            },
            old: from,
            new: new.clone(),
            time,
            id,
        },
        (Scope::Room(room), Kind::Topic { text }) => ServerFrame::Topic {
            room: room.name.clone(),
            nick: from,
            time,
            id,
            text: text.clone(),
        },
        (Scope::Room(room), Kind::Mode { changes }) => ServerFrame::Mode {
            room: room.name.clone(),
            nick: from,
            time,
            id,
            changes: changes.clone(),
        },
        (Scope::Room(room), Kind::Kick { target, reason }) => ServerFrame::Kick {
            room: room.name.clone(),
            nick: from,
            target: target.clone(),
            time,
            id,
            reason: reason.clone(),
        },
        (Scope::Room(room), Kind::Invite { target }) => ServerFrame::Invite {
            room: room.name.clone(),
            nick: from,
            target: target.clone(),
            time,
            id,
        },
        _ => return None,
    };
    Some(frame)
}

/// An event's frame with its `\n` (no bytes for one the native protocol does not show),
/// allocated at its exact length: a ring keeps it as long as the event.
pub(crate) fn encode(event: &Event) -> Box<[u8]> {
    use std::io::Write;
    let Some(frame) = frame(event) else {
        return Box::default();
    };
    // Room for the frame's words (verb, time, id) beside its strings, so that writing
    // it does not reallocate; the box is cut to the exact length after.
    let mut line = Vec::with_capacity(event.weight());
    // Writing into a Vec cannot fail.
    let _ = writeln!(line, "{frame}");
    line.into_boxed_slice()
}

/// The `WHOIS` frame's contents. At most [`LIST_CHUNK`] rooms are listed (a session is
/// in at most `--max-rooms`, 64 by default), so that the frame stays well within a
/// client's line limit.
pub(crate) fn whois(w: &Whois) -> chat_proto::Whois {
    chat_proto::Whois {
        nick: w.source.nick.clone(),
        since: w.since,
        idle: w.idle,
        tls: w.tls,
        account: w.source.account.as_deref().and_then(|a| Nick::new(a).ok()),
        oper: w.oper,
        rooms: w
            .rooms
            .iter()
            .take(LIST_CHUNK)
            .map(|(standing, room)| (status(*standing), room.clone()))
            .collect(),
        away: w.away.as_deref().map(str::to_owned),
    }
}

/// The `ERR` frame of a refusal.
pub(crate) fn refusal(refusal: &Refusal) -> ServerFrame {
    let (code, text) = match refusal {
        Refusal::NickTaken(nick) => (ErrorCode::NickTaken, format!("nickname {nick} is taken")),
        Refusal::NickRegistered(nick) => (
            ErrorCode::NickRegistered,
            format!("nickname {nick} is registered: connect with it and give its password"),
        ),
        Refusal::NoSuchNick(nick) => (ErrorCode::NoSuchNick, format!("no one is called {nick}")),
        Refusal::WasNoSuchNick(nick) => (
            ErrorCode::NoSuchNick,
            format!("no one called {nick} left recently"),
        ),
        Refusal::Gone(nick) => (ErrorCode::NoSuchNick, format!("{nick} has just left")),
        Refusal::RecipientBusy(nick) => (
            ErrorCode::RecipientBusy,
            format!("{nick} is not keeping up; message not delivered"),
        ),
        Refusal::NoCurrentRoom => (
            ErrorCode::NoCurrentRoom,
            "you are in no room: /join #room first".into(),
        ),
        Refusal::NotInRoom(room) => (ErrorCode::NotInRoom, format!("you are not in {room}")),
        Refusal::NoSuchRoom(room) => (ErrorCode::NoSuchRoom, format!("there is no room {room}")),
        Refusal::TooManyRooms { limit } => (
            ErrorCode::TooManyRooms,
            format!("you are in {limit} rooms, the most allowed: /part one first"),
        ),
        Refusal::RoomsFull { limit } => (
            ErrorCode::RoomsFull,
            format!("the server holds {limit} rooms, the most it allows: join one that exists"),
        ),
        Refusal::TooManyRoomsCreated { limit } => (
            ErrorCode::TooManyRoomsCreated,
            format!(
                "your address has created {limit} rooms that are still open, the most \
                 allowed: join one that exists"
            ),
        ),
        Refusal::InsecureTransport => (
            ErrorCode::InsecureTransport,
            "passwords are only accepted over TLS or from loopback, never in the clear".into(),
        ),
        Refusal::PasswordWrong(nick) => (
            ErrorCode::PasswordWrong,
            format!("wrong password for {nick}"),
        ),
        Refusal::PasswordInvalid {
            min_chars,
            max_bytes,
        } => (
            ErrorCode::PasswordInvalid,
            format!("a password has at least {min_chars} characters and at most {max_bytes} bytes"),
        ),
        Refusal::AlreadyRegistered(nick) => (
            ErrorCode::AlreadyRegistered,
            format!("{nick} is registered already: /password to change it"),
        ),
        Refusal::NotRegistered(nick) => (
            ErrorCode::NotRegistered,
            format!("{nick} is not registered: /register first"),
        ),
        Refusal::PrivateHistoryNeedsAccount => (
            ErrorCode::NotRegistered,
            "private history is kept for registered nicknames: /register first".into(),
        ),
        Refusal::NotOperator => (
            ErrorCode::NotOperator,
            "only server operators may do that: /oper name password first".into(),
        ),
        Refusal::OperWrong => (
            ErrorCode::PasswordWrong,
            "wrong operator name or password".into(),
        ),
        Refusal::Banned { reason, until } => {
            (ErrorCode::Banned, banned_text(reason.as_deref(), *until))
        }
        Refusal::BadBan(why) => (ErrorCode::Usage, format!("/sban: {why}")),
        Refusal::TooManyBans { limit } => (
            ErrorCode::TooManyBans,
            format!("the server holds {limit} bans, the most it allows: /unsban some first"),
        ),
        Refusal::NoSuchBan(target) => (ErrorCode::NoSuchBan, format!("{target} is not banned")),
        Refusal::ChanopNeeded(room) => (
            ErrorCode::ChanopNeeded,
            format!("you are not an operator of {room}"),
        ),
        Refusal::Founder { nick, room } => (
            ErrorCode::ChanopNeeded,
            format!("{nick} founded {room}: only the founder or a server operator may do that"),
        ),
        Refusal::InviteOnly(room) => (
            ErrorCode::InviteOnly,
            format!("{room} is invite-only: ask one of its operators for an /invite"),
        ),
        Refusal::BadKey(room) => (
            ErrorCode::BadKey,
            format!("{room} has a key: /join {room} key"),
        ),
        Refusal::RoomFull { room, limit } => (
            ErrorCode::RoomFull,
            format!("{room} is full: it takes {limit} members"),
        ),
        Refusal::Moderated(room) => (
            ErrorCode::Moderated,
            format!("{room} is moderated: only voiced members and operators speak"),
        ),
        Refusal::BannedFromRoom(room) => (
            ErrorCode::BannedFromRoom,
            format!("you are banned from {room}"),
        ),
        Refusal::UserNotInRoom { nick, room } => {
            (ErrorCode::UserNotInRoom, format!("{nick} is not in {room}"))
        }
        Refusal::AlreadyInRoom { nick, room } => (
            ErrorCode::AlreadyInRoom,
            format!("{nick} is in {room} already"),
        ),
        Refusal::UnknownMode(why) => (ErrorCode::UnknownMode, format!("/mode: {why}")),
        Refusal::InvalidKey { .. } => (ErrorCode::UnknownMode, format!("/mode: {refusal}")),
        Refusal::BanListFull { room, limit } => (
            ErrorCode::BanListFull,
            format!("{room} holds {limit} bans, the most it may: /unban some first"),
        ),
        Refusal::NoMotd => (
            ErrorCode::NoMotd,
            "this server has no message of the day".into(),
        ),
        Refusal::Busy(busy) => (
            ErrorCode::ServerBusy,
            match busy {
                Busy::Message => {
                    "the server cannot keep up with saving history; message not sent, try again"
                }
                Busy::Password => "cannot set a password now; try again",
                Busy::History => "history is not available now; try again",
                Busy::Cluster => "the cluster cannot be reached now; nothing was done, try again",
            }
            .into(),
        ),
    };
    ServerFrame::Error { code, text }
}

/// The `SBAN` frame of a ban.
pub(crate) fn ban(ban: &Ban) -> ServerFrame {
    ServerFrame::Sban {
        target: ban.target.to_string(),
        until: ban.until,
        by: ban.by.clone(),
        reason: ban.reason.clone(),
    }
}

/// What a server ban tells whoever it refuses.
pub(crate) fn banned_text(reason: Option<&str>, until: Option<jiff::Timestamp>) -> String {
    let mut text = "you are banned from this server".to_owned();
    if let Some(reason) = reason {
        text.push_str(": ");
        text.push_str(reason);
    }
    if let Some(until) = until {
        text.push_str(&format!(" (until {until:.0})"));
    }
    text
}

/// The `ERR` and `BYE` frames that tell a connection refused at the door why.
pub(crate) fn admission(refused: Admission) -> Bytes {
    let (code, text, reason) = match refused {
        Admission::Banned(ban) => (
            ErrorCode::Banned,
            banned_text(ban.reason.as_deref(), ban.until),
            "banned",
        ),
        Admission::Full { limit } => (
            ErrorCode::ServerFull,
            format!("the server is at its limit of {limit} connections"),
            "server full",
        ),
        Admission::PerAddress { limit } => (
            ErrorCode::TooManyConnections,
            format!("your address already has {limit} connections, the most allowed"),
            "too many connections from your address",
        ),
    };
    ServerFrame::encode_all(&[
        ServerFrame::Error { code, text },
        ServerFrame::Bye {
            reason: reason.into(),
        },
    ])
}

/// The native door's output: frames appended to the connection's buffer.
pub(crate) struct Native<'a> {
    pub(crate) out: &'a mut BytesMut,
    /// Events encoded here (see [`Output::take_encodings`]).
    pub(crate) encodings: u64,
    /// Room to make for the events a collect expects.
    expected: Expected,
}

impl<'a> Native<'a> {
    pub(crate) fn new(out: &'a mut BytesMut) -> Native<'a> {
        Native {
            out,
            encodings: 0,
            expected: Expected::default(),
        }
    }
}

impl Native<'_> {
    pub(crate) fn push(&mut self, frame: &ServerFrame) {
        frame.encode(self.out);
    }
}

impl Output for Native<'_> {
    #[inline]
    fn event(&mut self, event: &Event) {
        let encodings = &mut self.encodings;
        let bytes = event.encoded(Flavour::Native, |event| {
            *encodings += 1;
            encode(event)
        });
        self.expected.reserve(self.out, bytes.len());
        self.out.extend_from_slice(bytes);
    }

    fn expect(&mut self, events: usize) {
        self.expected.expect(events);
    }

    fn frames_encoder(&self) -> Option<Encoder> {
        Some(encode)
    }

    fn frames(&mut self, bytes: &[u8], events: usize) {
        self.expected.reserve(self.out, bytes.len() / events.max(1));
        self.out.extend_from_slice(bytes);
    }

    fn encoded(&mut self, events: u64) {
        self.encodings += events;
    }

    fn members(&mut self, room: &RoomName, members: Members<'_, '_>) {
        let members = members.map(|(standing, source)| (status(standing), &source.nick));
        ServerFrame::encode_members(&room.name, members, LIST_CHUNK, self.out);
    }

    fn current(&mut self, room: Option<&RoomName>) {
        self.push(&ServerFrame::Current {
            room: room.map(|r| r.name.clone()),
        });
    }

    fn topic(&mut self, room: &RoomName, topic: Option<&Topic>) {
        self.push(&ServerFrame::TopicIs {
            room: room.name.clone(),
            topic: topic.map(|t| chat_proto::Topic {
                by: t.by.clone(),
                time: t.time,
                text: t.text.clone(),
            }),
        });
    }

    fn lagged(&mut self, room: &RoomName, missed: u64) {
        self.push(&ServerFrame::Lagged {
            room: room.name.clone(),
            missed,
        });
    }

    fn history(&mut self, target: &HistoryOf, events: &[Event], asked: bool) {
        // A room without history says nothing after a join (`/history` always answers,
        // with `HISTORYEND <room> 0` if need be).
        if events.is_empty() && !asked {
            return;
        }
        let mut count = 0;
        for event in events {
            // Rebuilt from the store, read by this member alone: encoded for it.
            if let Some(frame) = frame(event) {
                self.out.extend_from_slice(b"HISTORY ");
                frame.encode(self.out);
                count += 1;
            }
        }
        self.push(&ServerFrame::HistoryEnd {
            target: match target {
                HistoryOf::Room(room) => Target::Room(room.clone()),
                HistoryOf::Nick(nick) => Target::Nick(nick.clone()),
            },
            count,
        });
    }

    fn account(&mut self, nick: &chat_proto::Nick, change: AccountChange) {
        let status = match change {
            AccountChange::Registered => AccountStatus::Registered,
            AccountChange::PasswordChanged => AccountStatus::PasswordChanged,
        };
        self.push(&ServerFrame::Account {
            nick: nick.clone(),
            status,
        });
    }

    fn oper(&mut self, name: &str) {
        self.push(&ServerFrame::Oper { name: name.into() });
    }

    fn refused(&mut self, refused: Refusal) {
        self.push(&refusal(&refused));
    }

    fn pong(&mut self, token: Option<String>) {
        self.push(&ServerFrame::Pong { token });
    }

    fn pending(&self) -> usize {
        self.out.len()
    }

    fn take_encodings(&mut self) -> u64 {
        std::mem::take(&mut self.encodings)
    }
}

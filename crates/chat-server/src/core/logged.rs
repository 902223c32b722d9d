//! An event as a cluster's log carries it (issue 16): every field of the event but its
//! id, which is the log's sequence number, as a small JSON object (readable with `nats
//! sub 'chat.>'`). Unlike the store, the log keeps the source's IRC ident, so that every
//! node shows `nick!user@host` as the origin node does.
//!
//! The kind travels in its canonical form ([`canonical`]): the `what` code and the
//! `text` and `target` fields the store keeps too. Keys are one letter: the log carries
//! every message of the cluster.

// Until the cluster's publisher and applier (issue 16's next slice) use it; the
// expectation fails the build once they do, so that this line goes with it.
#![cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the cluster's log is written and read from the next slice on"
    )
)]

use super::canonical;
use super::event::{Event, Ident, RoomName, Scope, Source};
use chat_proto::name::{Nick, Room};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// Where an event goes, as the log writes it.
mod scope {
    pub(super) const ROOM: u8 = 0;
    pub(super) const PRIVATE: u8 = 1;
    pub(super) const OWN: u8 = 2;
    pub(super) const WALLOPS: u8 = 3;
}

/// The fields of a logged event (borrowed when written, owned or borrowed when read).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Fields<'a> {
    /// The kind's `what` code.
    #[serde(rename = "w")]
    what: i64,
    /// Where: a room, a private pair, the source alone, the operators.
    #[serde(rename = "s")]
    scope: u8,
    /// The room as spelled, or a private message's recipient.
    #[serde(rename = "o", borrow, default, skip_serializing_if = "Option::is_none")]
    to: Option<Cow<'a, str>>,
    #[serde(rename = "n", borrow)]
    nick: Cow<'a, str>,
    #[serde(rename = "a", borrow, default, skip_serializing_if = "Option::is_none")]
    account: Option<Cow<'a, str>>,
    /// The source's IRC user, host and real name.
    #[serde(rename = "i", borrow, default, skip_serializing_if = "Option::is_none")]
    ident: Option<[Cow<'a, str>; 3]>,
    #[serde(rename = "g", borrow, default, skip_serializing_if = "Option::is_none")]
    target: Option<Cow<'a, str>>,
    #[serde(rename = "x", borrow, default, skip_serializing_if = "Option::is_none")]
    text: Option<Cow<'a, str>>,
    /// The cause, when the event shares one with others (a quit told to several rooms);
    /// absent, it is the event's own id.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    cause: Option<u64>,
    /// The time, in milliseconds since the epoch.
    #[serde(rename = "t")]
    time_ms: i64,
}

/// Why a logged event cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unreadable {
    #[error("not a logged event: {0}")]
    Json(String),
    #[error("a logged event with a field this server cannot read ({0})")]
    Field(&'static str),
}

/// The bytes that log `event`. `cause`: the cause it shares with events logged before
/// it, if any (see [`Fields::cause`]).
pub(crate) fn encode(event: &Event, shared_cause: Option<u64>) -> Vec<u8> {
    let (what, text, kind_target) = canonical::fields(&event.kind);
    let (scope, to) = match &event.scope {
        Scope::Room(room) => (scope::ROOM, Some(room.name.as_str())),
        Scope::Private { to } => (scope::PRIVATE, Some(to.as_str())),
        Scope::Own => (scope::OWN, None),
        Scope::Wallops => (scope::WALLOPS, None),
    };
    let fields = Fields {
        what,
        scope,
        to: to.map(Cow::Borrowed),
        nick: Cow::Borrowed(event.source.nick.as_str()),
        account: event.source.account.as_deref().map(Cow::Borrowed),
        ident: event.source.ident.as_ref().map(|i| {
            [
                Cow::Borrowed(&*i.user),
                Cow::Borrowed(&*i.host),
                Cow::Borrowed(&*i.realname),
            ]
        }),
        target: kind_target.map(Cow::Borrowed),
        text: text.map(Cow::Borrowed),
        cause: shared_cause,
        time_ms: event.time.as_millisecond(),
    };
    // Serialising plain strings and numbers into a Vec cannot fail.
    serde_json::to_vec(&fields).unwrap_or_default()
}

/// The event `bytes` log, with `id` (the log's sequence) as its id.
pub(crate) fn decode(id: u64, bytes: &[u8]) -> Result<Event, Unreadable> {
    let fields: Fields<'_> =
        serde_json::from_slice(bytes).map_err(|e| Unreadable::Json(e.to_string()))?;
    let nick = Nick::new(&fields.nick).map_err(|_| Unreadable::Field("nick"))?;
    let scope = match (fields.scope, fields.to.as_deref()) {
        (scope::ROOM, Some(room)) => Scope::Room(RoomName::new(
            Room::new(room).map_err(|_| Unreadable::Field("room"))?,
        )),
        (scope::PRIVATE, Some(to)) => Scope::Private {
            to: Nick::new(to).map_err(|_| Unreadable::Field("recipient"))?,
        },
        (scope::OWN, None) => Scope::Own,
        (scope::WALLOPS, None) => Scope::Wallops,
        _ => return Err(Unreadable::Field("scope")),
    };
    let private = matches!(scope, Scope::Private { .. });
    let kind = canonical::kind(
        fields.what,
        fields.text.map(Cow::into_owned),
        fields.target.map(Cow::into_owned),
        private,
    )
    .ok_or(Unreadable::Field("kind"))?;
    let time =
        jiff::Timestamp::from_millisecond(fields.time_ms).map_err(|_| Unreadable::Field("time"))?;
    let source = Source {
        nick,
        account: fields.account.map(|a| a.as_ref().into()),
        ident: fields.ident.map(|[user, host, realname]| {
            Arc::new(Ident {
                user: user.as_ref().into(),
                host: host.as_ref().into(),
                realname: realname.as_ref().into(),
            })
        }),
    };
    Ok(Event::new(
        id,
        time,
        fields.cause.unwrap_or(id),
        scope,
        Arc::new(source),
        kind,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::Kind;

    fn event(scope: Scope, kind: Kind, ident: bool) -> Event {
        let source = Source {
            nick: Nick::new("Alice").unwrap(),
            account: Some("alice".into()),
            ident: ident.then(|| {
                Arc::new(Ident {
                    user: "~al".into(),
                    host: "127.0.0.1".into(),
                    realname: "Alice \"A\" Liddell".into(),
                })
            }),
        };
        Event::new(
            7,
            jiff::Timestamp::from_millisecond(1_764_480_000_123).unwrap(),
            7,
            scope,
            Arc::new(source),
            kind,
        )
    }

    #[test]
    fn events_come_back_whole_with_the_logs_id() {
        let room = || Scope::Room(RoomName::new(Room::new("#Rust").unwrap()));
        let cases = [
            event(
                room(),
                Kind::Message {
                    text: "hi \u{e9}".into(),
                },
                true,
            ),
            event(room(), Kind::Join, false),
            event(
                room(),
                Kind::Kick {
                    target: Nick::new("bob").unwrap(),
                    reason: "r".into(),
                },
                true,
            ),
            event(
                Scope::Private {
                    to: Nick::new("bob").unwrap(),
                },
                Kind::Action {
                    text: "waves".into(),
                },
                true,
            ),
            event(
                Scope::Own,
                Kind::Rename {
                    new: Nick::new("al").unwrap(),
                },
                false,
            ),
            event(
                Scope::Wallops,
                Kind::Message {
                    text: "hear ye".into(),
                },
                false,
            ),
        ];
        for original in cases {
            let bytes = encode(&original, None);
            let back = decode(42, &bytes).unwrap();
            assert_eq!(back.id, 42);
            assert_eq!(back.cause, 42, "no shared cause: its own id");
            assert_eq!(back.time, original.time);
            assert_eq!(back.scope, original.scope);
            assert_eq!(back.kind, original.kind);
            assert_eq!(back.source, original.source);
        }
        let quit = event(room(), Kind::Quit { reason: None }, false);
        assert_eq!(decode(50, &encode(&quit, Some(49))).unwrap().cause, 49);
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        assert!(matches!(decode(1, b"not json"), Err(Unreadable::Json(_))));
        let unknown = br##"{"w":99,"s":0,"o":"#a","n":"bob","t":0}"##;
        assert_eq!(decode(1, unknown).unwrap_err(), Unreadable::Field("kind"));
        let bad_nick = br##"{"w":0,"s":0,"o":"#a","n":"not a nick","t":0}"##;
        assert_eq!(decode(1, bad_nick).unwrap_err(), Unreadable::Field("nick"));
        let no_room = br##"{"w":0,"s":0,"n":"bob","t":0}"##;
        assert_eq!(decode(1, no_room).unwrap_err(), Unreadable::Field("scope"));
        // A field from a newer server is ignored.
        let newer = br##"{"w":0,"s":0,"o":"#a","n":"bob","t":0,"z":1}"##;
        assert!(decode(1, newer).is_ok());
    }
}

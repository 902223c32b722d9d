//! An operation as a cluster's log carries it (issue 16): what a session asked for
//! (connect, join, part, say, quit...), not the events it makes. Every node applies the
//! log's operations in the log's order through the hub's own methods ([`Hub::apply`]),
//! so every node makes the same events, with the same ids, from the same state; and an
//! operation that makes several events (a quit told to every room of its user) is one
//! entry of the log, so that no node can see half of it.
//!
//! An operation is a small JSON object (readable with `nats sub 'chat.>'`): who sent it
//! (the origin node, its incarnation and its number for it, which make its
//! `Nats-Msg-Id`), when (the origin's clock, so every node stamps its events alike), and
//! the operation's own fields, with its kind under `k`.
//!
//! [`Hub::apply`]: super::hub::Hub::apply

use super::error::Refusal;
use super::event::{Event, Ident, Source};
use super::hub::{Activity, Joined, Renamed, Topic};
use super::mailbox::MailboxSender;
use super::room::Standing;
use chat_proto::name::{Nick, Room};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::oneshot;

/// The cluster's log, as the core sees it: where a session's operations go to be
/// ordered, and where nicknames are claimed. A single server has none.
pub(crate) trait Log: Send + Sync {
    /// Logs `op` for a session of this node; the outcome comes once this node has
    /// applied it ([`Outcome::NotLogged`] when the log did not take it in time).
    /// `local` is what the hub needs of the session to register it, for a
    /// [`Op::Hello`].
    fn submit(&self, op: Op, local: Option<Local>) -> oneshot::Receiver<Outcome>;
    /// How long an operation may take to be logged and applied before its session is
    /// told it was not (`--cluster-timeout`, and a margin).
    fn patience(&self) -> std::time::Duration;
    /// Claims `nick` for a session of this node, cluster-wide.
    fn claim(&self, nick: &Nick) -> BoxFuture<'static, Result<(), Refusal>>;
    /// Frees the claim on `nick` (folded) of a session that did not begin, in the
    /// background.
    fn release(&self, nick: String);
    /// The session holding `nick` (folded) ended, or never began: its quit is logged
    /// and then its nickname freed, in the background.
    fn leave(&self, nick: String, reason: String);
    /// Resolves once the quits of the sessions that ended are logged (the server is
    /// shutting down: no session starts any more).
    fn closed(&self) -> BoxFuture<'static, ()>;
    /// Resolves if this node is taken for dead by the others (its lease was reaped):
    /// they have quit its users, so it must stop serving them.
    fn lost(&self) -> BoxFuture<'static, ()>;
}

/// What registering a session of this node needs beyond its [`Op::Hello`].
pub(crate) struct Local {
    pub(crate) mailbox: MailboxSender<Arc<Event>>,
    pub(crate) tls: bool,
}

/// What applying an operation of this node gave, for the session that asked.
pub(crate) enum Outcome {
    /// The log did not take it: nothing happened anywhere.
    NotLogged,
    /// A [`Op::Hello`]: the session is registered, or why not.
    Entered(Result<Arc<Activity>, Refusal>),
    /// A [`Op::Join`].
    Joined(Result<Box<(Joined, Shown)>, Refusal>),
    /// A [`Op::Part`]: the part event, if the session was in the room.
    Parted(Option<Arc<Event>>),
    /// A [`Op::Say`] or [`Op::Private`]: the message, or why not.
    Said(Result<Arc<Event>, Refusal>),
    /// A [`Op::Rename`].
    Renamed(Result<Renamed, Refusal>),
    /// A [`Op::Account`]: when the account was made, or why not.
    Account(Result<i64, Refusal>),
    /// An operation whose session needs to know only whether it was refused.
    Applied(Result<(), Refusal>),
    /// Anything else that was applied.
    Done,
}

/// What a joiner is shown after its join, as of the join: the room's members (unless
/// it is quiet) and topic.
#[derive(Default)]
pub(crate) struct Shown {
    /// Whether the room is secret, and its members.
    pub(crate) members: Option<(bool, Vec<(Standing, Source)>)>,
    pub(crate) topic: Option<Arc<Topic>>,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Logged {
    /// The node that logged it.
    #[serde(rename = "o")]
    pub(crate) node: String,
    /// That node's incarnation (a node restarted under the same id has a new one).
    #[serde(rename = "i")]
    pub(crate) incarnation: u64,
    /// The node's number for it, within its incarnation.
    #[serde(rename = "n")]
    pub(crate) number: u64,
    /// When, by the origin's clock, in milliseconds since the epoch: the time of every
    /// event it makes.
    #[serde(rename = "t")]
    pub(crate) time_ms: i64,
    /// The latest time, by the NATS server's clock, at which the stream may store it:
    /// one stored later (a publish the client library sent after reconnecting, when
    /// its node had given up and told its user so) is void on every node.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub(crate) deadline_ms: Option<i64>,
    #[serde(flatten)]
    pub(crate) op: Op,
}

/// What a message says, as [`Op::Say`] carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Said {
    #[serde(rename = "m")]
    Message,
    #[serde(rename = "a")]
    Action,
    #[serde(rename = "n")]
    Notice,
}

/// An operation. Nicknames are folded (the hub's keys) except where a nickname is
/// shown as spelled; rooms are spelled (the first to make a room names it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub(crate) enum Op {
    /// A session connected at the origin under `nick` (as spelled), which it claimed
    /// in the cluster's nickname bucket first.
    Hello {
        nick: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        /// IRC's user, host and real name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ident: Option<[String; 3]>,
    },
    /// `nick` joins `room` with `key`; `mask` is its `nick!user@host` for the room's
    /// bans.
    Join {
        nick: String,
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        mask: String,
    },
    /// `nick` leaves `room`.
    Part {
        nick: String,
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `nick` says `text` in `room`; `mask` when the room has bans or is moderated.
    Say {
        nick: String,
        room: String,
        what: Said,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mask: Option<String>,
    },
    /// `nick`'s session ended.
    Quit { nick: String, reason: String },
    /// `nick` sets (`Some`) or clears the topic of `room`.
    Topic {
        nick: String,
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// `nick` changes the modes of `room`: the words of its `/mode` after the room.
    Mode {
        nick: String,
        room: String,
        words: Vec<String>,
    },
    /// `nick` removes `target` (as spelled) from `room`.
    Kick {
        nick: String,
        room: String,
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `nick` invites `target` (as spelled) to `room`.
    Invite {
        nick: String,
        room: String,
        target: String,
    },
    /// `nick` is away with `text`, or back (`None`).
    Away {
        nick: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// `nick` gave another real name.
    Realname { nick: String, realname: String },
    /// `nick` says `text` privately to `to` (as spelled).
    Private {
        nick: String,
        to: String,
        what: Said,
        text: String,
    },
    /// `nick` is now `new` (as spelled), which its node claimed first.
    Rename { nick: String, new: String },
    /// A server operator, `nick`, ends the session of `target` (as spelled).
    Kill {
        nick: String,
        target: String,
        reason: String,
    },
    /// `nick` registers its nickname as an account (or, `change`, gives its account a
    /// new password): the argon2 hash of the password, never the password.
    Account {
        nick: String,
        hash: String,
        change: bool,
    },
    /// A server operator, `nick`, sends an operators' notice.
    Wallops { nick: String, text: String },
    /// `nick` is now a server operator (its node checked the password): what every
    /// node's checks of operators' rights see.
    Oper { nick: String },
}

impl Op {
    /// The session connecting as `source`.
    pub(crate) fn hello(source: &Source) -> Op {
        Op::Hello {
            nick: source.nick.as_str().to_owned(),
            account: source.account.as_deref().map(str::to_owned),
            ident: source.ident.as_ref().map(|i| {
                [
                    i.user.to_string(),
                    i.host.to_string(),
                    i.realname.to_string(),
                ]
            }),
        }
    }

    /// The source a [`Op::Hello`] names, if it is one and is well formed.
    pub(crate) fn source(&self) -> Option<Source> {
        let Op::Hello {
            nick,
            account,
            ident,
        } = self
        else {
            return None;
        };
        Some(Source {
            nick: Nick::new(nick).ok()?,
            account: account.as_deref().map(Arc::from),
            ident: ident.as_ref().map(|[user, host, realname]| {
                Arc::new(Ident {
                    user: user.as_str().into(),
                    host: host.as_str().into(),
                    realname: realname.as_str().into(),
                })
            }),
        })
    }

    /// The room it concerns, if one: its entry goes to the room's subject.
    pub(crate) fn room(&self) -> Option<Room> {
        match self {
            Op::Join { room, .. }
            | Op::Part { room, .. }
            | Op::Say { room, .. }
            | Op::Topic { room, .. }
            | Op::Mode { room, .. }
            | Op::Kick { room, .. }
            | Op::Invite { room, .. } => Room::new(room).ok(),
            Op::Hello { .. }
            | Op::Quit { .. }
            | Op::Away { .. }
            | Op::Realname { .. }
            | Op::Private { .. }
            | Op::Rename { .. }
            | Op::Kill { .. }
            | Op::Account { .. }
            | Op::Wallops { .. }
            | Op::Oper { .. } => None,
        }
    }

    /// The recipient of a private message.
    pub(crate) fn recipient(&self) -> Option<&str> {
        match self {
            Op::Private { to, .. } => Some(to),
            _ => None,
        }
    }

    /// The nickname it is about (as spelled or folded): the one who asked.
    pub(crate) fn nick(&self) -> &str {
        match self {
            Op::Hello { nick, .. }
            | Op::Join { nick, .. }
            | Op::Part { nick, .. }
            | Op::Say { nick, .. }
            | Op::Quit { nick, .. }
            | Op::Topic { nick, .. }
            | Op::Mode { nick, .. }
            | Op::Kick { nick, .. }
            | Op::Invite { nick, .. }
            | Op::Away { nick, .. }
            | Op::Realname { nick, .. }
            | Op::Private { nick, .. }
            | Op::Rename { nick, .. }
            | Op::Kill { nick, .. }
            | Op::Account { nick, .. }
            | Op::Wallops { nick, .. }
            | Op::Oper { nick } => nick,
        }
    }
}

impl Logged {
    /// The entry's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain strings and numbers: serialising them into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The entry in `bytes`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Logged, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(op: Op) -> Logged {
        Logged {
            node: "n1".into(),
            incarnation: 7,
            number: 3,
            time_ms: 1_764_480_000_123,
            deadline_ms: None,
            op,
        }
    }

    #[test]
    fn operations_come_back_whole() {
        let source = Source {
            nick: Nick::new("Alice").unwrap(),
            account: Some("alice".into()),
            ident: Some(Arc::new(Ident {
                user: "~al".into(),
                host: "127.0.0.1".into(),
                realname: "Alice \"A\" Liddell".into(),
            })),
        };
        let cases = [
            Op::hello(&source),
            Op::hello(&Source::named(Nick::new("bob").unwrap(), None)),
            Op::Join {
                nick: "alice".into(),
                room: "#Rust".into(),
                key: Some("k".into()),
                mask: "alice!~al@127.0.0.1".into(),
            },
            Op::Part {
                nick: "alice".into(),
                room: "#Rust".into(),
                reason: None,
            },
            Op::Say {
                nick: "alice".into(),
                room: "#Rust".into(),
                what: Said::Action,
                text: "waves \u{e9}".into(),
                mask: None,
            },
            Op::Quit {
                nick: "alice".into(),
                reason: "bye".into(),
            },
        ];
        for op in cases {
            let entry = logged(op);
            assert_eq!(Logged::decode(&entry.encode()).unwrap(), entry);
        }
        let hello = Logged::decode(&logged(Op::hello(&source)).encode()).unwrap();
        assert_eq!(hello.op.source().unwrap(), source);
    }

    #[test]
    fn the_form_is_small_and_readable() {
        let say = logged(Op::Say {
            nick: "alice".into(),
            room: "#rust".into(),
            what: Said::Message,
            text: "hi".into(),
            mask: None,
        });
        assert_eq!(
            String::from_utf8(say.encode()).unwrap(),
            r##"{"o":"n1","i":7,"n":3,"t":1764480000123,"k":"say","nick":"alice","room":"#rust","what":"m","text":"hi"}"##
        );
        // A field from a newer server is ignored; an unknown operation is refused.
        let newer = br##"{"o":"n1","i":7,"n":3,"t":0,"k":"quit","nick":"a","reason":"r","z":1}"##;
        assert!(Logged::decode(newer).is_ok());
        let unknown = br##"{"o":"n1","i":7,"n":3,"t":0,"k":"dance","nick":"a"}"##;
        assert!(Logged::decode(unknown).is_err());
    }
}

//! Why the core refused something: one enum for every refusal of the hub, the store and
//! the member state, which each door maps to its own wire (the native door to an
//! `ERR <code>` frame, the IRC door to a numeric).

use chat_proto::name::{Nick, Room};

/// A refusal. Each variant carries what a door needs to explain it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// Someone connected has the nickname (case-insensitively).
    #[error("nickname {0} is taken")]
    NickTaken(Nick),
    /// The nickname is registered and its password was not given.
    #[error("nickname {0} is registered")]
    NickRegistered(Nick),
    /// No one connected has the nickname.
    #[error("no one is called {0}")]
    NoSuchNick(Nick),
    /// No one left under the nickname recently (`/whowas`).
    #[error("no one called {0} left recently")]
    WasNoSuchNick(Nick),
    /// The recipient left while the message was on its way.
    #[error("{0} has just left")]
    Gone(Nick),
    /// The recipient's queue is full.
    #[error("{0} is not keeping up")]
    RecipientBusy(Nick),
    /// The user is in no room, and the action needs one.
    #[error("you are in no room")]
    NoCurrentRoom,
    /// The user is not in the room.
    #[error("you are not in {0}")]
    NotInRoom(Room),
    /// The room does not exist.
    #[error("there is no room {0}")]
    NoSuchRoom(Room),
    /// The user is in as many rooms as one session may be.
    #[error("you are in {limit} rooms, the most allowed")]
    TooManyRooms {
        /// `--max-rooms`.
        limit: usize,
    },
    /// The server holds as many rooms as it allows; existing ones can still be joined.
    #[error("the server holds {limit} rooms, the most it allows")]
    RoomsFull {
        /// `--max-rooms-total`.
        limit: usize,
    },
    /// The user's address created as many (open) rooms as one address may.
    #[error("your address has created {limit} rooms that are still open")]
    TooManyRoomsCreated {
        /// `--max-rooms-per-ip`.
        limit: usize,
    },
    /// A password may not cross this connection (neither TLS nor loopback).
    #[error("passwords are only accepted over TLS or from loopback")]
    InsecureTransport,
    /// The password was wrong.
    #[error("wrong password for {0}")]
    PasswordWrong(Nick),
    /// A password too short or too long.
    #[error("a password has at least {min_chars} characters and at most {max_bytes} bytes")]
    PasswordInvalid {
        /// Fewest characters.
        min_chars: usize,
        /// Most bytes.
        max_bytes: usize,
    },
    /// Registering a nickname that has an account.
    #[error("{0} is registered already")]
    AlreadyRegistered(Nick),
    /// An account action for a nickname without one (or not identified to it).
    #[error("{0} is not registered")]
    NotRegistered(Nick),
    /// Private history is asked for by a session not identified to its account.
    #[error("private history is kept for registered nicknames")]
    PrivateHistoryNeedsAccount,
    /// A server operator's command from someone who is not one.
    #[error("only server operators may do that")]
    NotOperator,
    /// `/oper` with a name that is no operator's or a wrong password.
    #[error("wrong operator name or password")]
    OperWrong,
    /// A server ban refuses the session (or the nickname it asked for).
    #[error("you are banned from this server")]
    Banned {
        /// Why, if the operator said.
        reason: Option<String>,
        /// When the ban expires; `None`: never.
        until: Option<jiff::Timestamp>,
    },
    /// `/sban` of something that is neither a mask, an address nor a network.
    #[error("{0}")]
    BadBan(String),
    /// `/sban` past the most bans the server holds.
    #[error("the server holds {limit} bans, the most it allows")]
    TooManyBans {
        /// [`super::ban::BAN_LIMIT`].
        limit: usize,
    },
    /// `/unsban` of something not banned.
    #[error("{0} is not banned")]
    NoSuchBan(String),
    /// `/motd` on a server without one.
    #[error("there is no message of the day")]
    NoMotd,
    // ----- room governance -----
    /// The action needs a room operator (or a server operator).
    #[error("you are not an operator of {0}")]
    ChanopNeeded(Room),
    /// The room's founder is protected from other operators.
    #[error("{nick} founded {room}: only the founder or a server operator may do that")]
    Founder {
        /// The founder as present.
        nick: Nick,
        /// The room.
        room: Room,
    },
    /// The room is invite-only and the joiner was not invited.
    #[error("{0} is invite-only: ask an operator for an /invite")]
    InviteOnly(Room),
    /// The room has a key and the joiner gave none or a wrong one.
    #[error("{0} needs its key: /join {0} key")]
    BadKey(Room),
    /// The room has as many members as its limit.
    #[error("{room} is full ({limit} members)")]
    RoomFull {
        /// The room.
        room: Room,
        /// Its `+l`.
        limit: u32,
    },
    /// The room is moderated and the speaker has no voice.
    #[error("{0} is moderated: only voiced members and operators speak")]
    Moderated(Room),
    /// A room ban matches the user.
    #[error("you are banned from {0}")]
    BannedFromRoom(Room),
    /// The person named is not in the room.
    #[error("{nick} is not in {room}")]
    UserNotInRoom {
        /// Who.
        nick: Nick,
        /// The room.
        room: Room,
    },
    /// `/invite` of someone in the room already.
    #[error("{nick} is in {room} already")]
    AlreadyInRoom {
        /// Who.
        nick: Nick,
        /// The room.
        room: Room,
    },
    /// A `/mode` the server cannot read.
    #[error("{0}")]
    UnknownMode(String),
    /// A room key that is not one word: empty, with spaces, commas or control
    /// characters, starting with `#` or `:`, or too long.
    #[error("a key is one word of at most {max} bytes, without commas, not starting with # or :")]
    InvalidKey { max: usize },
    /// The room holds as many bans as it may.
    #[error("{room} holds {limit} bans, the most it may")]
    BanListFull {
        /// The room.
        room: Room,
        /// [`super::room::ROOM_BAN_LIMIT`].
        limit: usize,
    },
    /// The server cannot take this now (its store is behind, a worker is gone).
    #[error("the server is busy: {0}")]
    Busy(Busy),
}

/// What the server was too busy to do, for a door's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// A message: the store could not queue it, so no one got it.
    Message,
    /// Setting a password.
    Password,
    /// Reading history.
    History,
    /// A cluster's node could not reach the cluster's log in time: nothing was done.
    Cluster,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Busy::Message => "message not sent",
            Busy::Password => "cannot set a password now",
            Busy::History => "history is not available now",
            Busy::Cluster => "the cluster cannot be reached now",
        })
    }
}

//! Every frame the server sends: `VERB params... [:trailing]`.
//!
//! Parameters never contain a space and never start with `:`; the trailing text, when a
//! frame has one, follows the first ` :` and runs to the end of the line. So a program can
//! split a frame without knowing its verb, and a person can read it in `nc`.

use crate::name::{Nick, Room, Target};
use bytes::{Bytes, BytesMut};
use std::fmt::{self, Write as _};

/// A point in time on the wire: RFC 3339 in UTC with milliseconds,
/// `2026-11-24T19:36:15.123Z`.
pub use jiff::Timestamp;

/// A stable, machine-readable error code carried by `ERR` frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The nickname is not valid (charset, length).
    NickInvalid,
    /// Someone else has that nickname (case-insensitively).
    NickTaken,
    /// The line was longer than the server's limit; it was discarded.
    LineTooLong,
    /// The line was not valid UTF-8; it was discarded.
    BadUtf8,
    /// The text contained a control or bidirectional-override character.
    ControlChars,
    /// The command is not known.
    UnknownCommand,
    /// The command's arguments were wrong; the text gives its usage.
    Usage,
    /// The room name is not valid.
    RoomInvalid,
    /// No one has that nickname.
    NoSuchNick,
    /// You are not in that room.
    NotInRoom,
    /// You are in no room, so a bare line has nowhere to go.
    NoCurrentRoom,
    /// There is no room of that name.
    NoSuchRoom,
    /// You are in as many rooms as the server allows; part one first.
    TooManyRooms,
    /// `/join` of a new room: the server holds as many rooms as it allows; rooms that
    /// exist can still be joined.
    RoomsFull,
    /// `/join` of a new room: your address created as many rooms (still open) as the
    /// server allows one address; rooms that exist can still be joined.
    TooManyRoomsCreated,
    /// The recipient's queue is full; the private message was not delivered.
    RecipientBusy,
    /// The server is at its connection limit; it closes the connection after this.
    ServerFull,
    /// Your address holds as many connections as the server allows one address; it
    /// closes the connection after this.
    TooManyConnections,
    /// A password was asked for or sent over a connection that is neither TLS nor
    /// loopback; the server refuses to receive it.
    InsecureTransport,
    /// The password was wrong.
    PasswordWrong,
    /// The nickname is registered: only its owner can take it, with its password, when
    /// connecting.
    NickRegistered,
    /// `/register`: the nickname is registered already (use `/password`).
    AlreadyRegistered,
    /// `/password`: your nickname is not registered.
    NotRegistered,
    /// The password is too short or too long.
    PasswordInvalid,
    /// The server is too busy to accept this now (its store is behind); try again.
    ServerBusy,
    /// The command is for server operators (`/oper` first), or `/oper` named no
    /// operator.
    NotOperator,
    /// `/motd`: the server has no message of the day.
    NoMotd,
    /// A server ban refuses your address or nickname: on connect, or at the nickname
    /// (then `BYE`); `/nick` to a banned nickname.
    Banned,
    /// `/unsban` of something not banned.
    NoSuchBan,
    /// `/sban`: the server holds as many bans as it allows.
    TooManyBans,
    /// The room command needs a room operator (or a server operator).
    ChanopNeeded,
    /// `/join`: the room is invite-only (`+i`) and you were not invited.
    InviteOnly,
    /// `/join`: the room has a key (`+k`) and you gave none or a wrong one.
    BadKey,
    /// `/join`: the room has as many members as its limit (`+l`) allows.
    RoomFull,
    /// The room is moderated (`+m`): only voiced members and operators speak.
    Moderated,
    /// A ban in the room (`+b`) matches you: you cannot join it or speak in it.
    BannedFromRoom,
    /// The person named is not in the room.
    UserNotInRoom,
    /// `/invite`: the person is in the room already.
    AlreadyInRoom,
    /// `/mode`: a flag the server does not know, or one missing its argument.
    UnknownMode,
    /// `/ban`: the room holds as many bans as it allows.
    BanListFull,
    /// A code this version does not know, kept verbatim.
    Other(String),
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::NickInvalid => "NICK_INVALID",
            ErrorCode::NickTaken => "NICK_TAKEN",
            ErrorCode::LineTooLong => "LINE_TOO_LONG",
            ErrorCode::BadUtf8 => "BAD_UTF8",
            ErrorCode::ControlChars => "CONTROL_CHARS",
            ErrorCode::UnknownCommand => "UNKNOWN_COMMAND",
            ErrorCode::Usage => "USAGE",
            ErrorCode::RoomInvalid => "ROOM_INVALID",
            ErrorCode::NoSuchNick => "NO_SUCH_NICK",
            ErrorCode::NotInRoom => "NOT_IN_ROOM",
            ErrorCode::NoCurrentRoom => "NO_CURRENT_ROOM",
            ErrorCode::NoSuchRoom => "NO_SUCH_ROOM",
            ErrorCode::TooManyRooms => "TOO_MANY_ROOMS",
            ErrorCode::RoomsFull => "ROOMS_FULL",
            ErrorCode::TooManyRoomsCreated => "TOO_MANY_ROOMS_CREATED",
            ErrorCode::RecipientBusy => "RECIPIENT_BUSY",
            ErrorCode::ServerFull => "SERVER_FULL",
            ErrorCode::TooManyConnections => "TOO_MANY_CONNECTIONS",
            ErrorCode::InsecureTransport => "INSECURE_TRANSPORT",
            ErrorCode::PasswordWrong => "PASSWORD_WRONG",
            ErrorCode::NickRegistered => "NICK_REGISTERED",
            ErrorCode::AlreadyRegistered => "ALREADY_REGISTERED",
            ErrorCode::NotRegistered => "NOT_REGISTERED",
            ErrorCode::PasswordInvalid => "PASSWORD_INVALID",
            ErrorCode::ServerBusy => "SERVER_BUSY",
            ErrorCode::NotOperator => "NOT_OPERATOR",
            ErrorCode::NoMotd => "NO_MOTD",
            ErrorCode::Banned => "BANNED",
            ErrorCode::NoSuchBan => "NO_SUCH_BAN",
            ErrorCode::TooManyBans => "TOO_MANY_BANS",
            ErrorCode::ChanopNeeded => "CHANOP_NEEDED",
            ErrorCode::InviteOnly => "INVITE_ONLY",
            ErrorCode::BadKey => "BAD_KEY",
            ErrorCode::RoomFull => "ROOM_FULL",
            ErrorCode::Moderated => "MODERATED",
            ErrorCode::BannedFromRoom => "BANNED_FROM_ROOM",
            ErrorCode::UserNotInRoom => "USER_NOT_IN_ROOM",
            ErrorCode::AlreadyInRoom => "ALREADY_IN_ROOM",
            ErrorCode::UnknownMode => "UNKNOWN_MODE",
            ErrorCode::BanListFull => "BAN_LIST_FULL",
            ErrorCode::Other(code) => code,
        }
    }

    /// Every code this version knows, for documentation and tests.
    pub const KNOWN: [ErrorCode; 40] = [
        ErrorCode::NickInvalid,
        ErrorCode::NickTaken,
        ErrorCode::LineTooLong,
        ErrorCode::BadUtf8,
        ErrorCode::ControlChars,
        ErrorCode::UnknownCommand,
        ErrorCode::Usage,
        ErrorCode::RoomInvalid,
        ErrorCode::NoSuchNick,
        ErrorCode::NotInRoom,
        ErrorCode::NoCurrentRoom,
        ErrorCode::NoSuchRoom,
        ErrorCode::TooManyRooms,
        ErrorCode::RoomsFull,
        ErrorCode::TooManyRoomsCreated,
        ErrorCode::RecipientBusy,
        ErrorCode::ServerFull,
        ErrorCode::TooManyConnections,
        ErrorCode::InsecureTransport,
        ErrorCode::PasswordWrong,
        ErrorCode::NickRegistered,
        ErrorCode::AlreadyRegistered,
        ErrorCode::NotRegistered,
        ErrorCode::PasswordInvalid,
        ErrorCode::ServerBusy,
        ErrorCode::NotOperator,
        ErrorCode::NoMotd,
        ErrorCode::Banned,
        ErrorCode::NoSuchBan,
        ErrorCode::TooManyBans,
        ErrorCode::ChanopNeeded,
        ErrorCode::InviteOnly,
        ErrorCode::BadKey,
        ErrorCode::RoomFull,
        ErrorCode::Moderated,
        ErrorCode::BannedFromRoom,
        ErrorCode::UserNotInRoom,
        ErrorCode::AlreadyInRoom,
        ErrorCode::UnknownMode,
        ErrorCode::BanListFull,
    ];

    fn parse(s: &str) -> ErrorCode {
        ErrorCode::KNOWN
            .into_iter()
            .find(|code| code.as_str() == s)
            .unwrap_or_else(|| ErrorCode::Other(s.to_owned()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an `ACCOUNT` frame reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountStatus {
    /// `registered`: `/register` claimed the nickname; from now on it needs its password.
    Registered,
    /// `password-changed`: `/password` set a new password.
    PasswordChanged,
    /// `identified`: you gave the nickname's password in the handshake.
    Identified,
}

impl AccountStatus {
    /// The status as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Registered => "registered",
            AccountStatus::PasswordChanged => "password-changed",
            AccountStatus::Identified => "identified",
        }
    }

    fn parse(s: &str) -> Option<AccountStatus> {
        [
            AccountStatus::Registered,
            AccountStatus::PasswordChanged,
            AccountStatus::Identified,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's standing in a room, shown before its nickname in member lists (`@alice`,
/// `+bob`) and before the room in `WHOIS` (`@#rust`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Status {
    /// An ordinary member (no prefix).
    #[default]
    Member,
    /// Voiced (`+`): may speak in a moderated room.
    Voice,
    /// A room operator (`@`): may change the room's topic and modes, kick, ban and invite.
    Operator,
}

impl Status {
    /// The prefix written before a nickname or room (`""`, `"+"`, `"@"`).
    pub fn prefix(self) -> &'static str {
        match self {
            Status::Member => "",
            Status::Voice => "+",
            Status::Operator => "@",
        }
    }

    /// Splits a prefix off `word`: the status and the rest.
    pub fn split(word: &str) -> (Status, &str) {
        if let Some(rest) = word.strip_prefix('@') {
            (Status::Operator, rest)
        } else if let Some(rest) = word.strip_prefix('+') {
            (Status::Voice, rest)
        } else {
            (Status::Member, word)
        }
    }
}

/// One member in a `MEMBERS` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMember {
    /// Its standing in the room.
    pub status: Status,
    /// Its nickname.
    pub nick: Nick,
}

impl fmt::Display for RoomMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.status.prefix(), self.nick)
    }
}

/// A frame from the server to a client.
///
/// Events (`MSG`, `ACTION`, `PRIVMSG`, `JOIN`, `PART`, `QUIT`, `RENAME`, `TOPIC`, `MODE`,
/// `KICK`, `INVITE`) carry the server
/// time and a message id; replies and errors do not. Ids are unique on the server (across
/// restarts on the same database) and rise in each room's order: they are the cursor for
/// paging back through history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// `NICK`: choose a nickname (answer with a bare line).
    NickPrompt,
    /// `PASS`: the nickname is registered: answer with its password as a bare line.
    PassPrompt,
    /// `WELCOME <nick> :<text>`: the handshake is done; you are `nick`.
    Welcome {
        /// Your nickname.
        nick: Nick,
        /// A greeting for people.
        text: String,
    },
    /// `MSG <room> <nick> <time> <id> :<text>`: a message to a room.
    Message {
        /// Where it was said.
        room: Room,
        /// Who said it.
        from: Nick,
        /// When the server accepted it.
        time: Timestamp,
        /// The event's message id.
        id: u64,
        /// What was said.
        text: String,
    },
    /// `ACTION <room> <nick> <time> <id> :<text>`: `/me text`.
    Action {
        /// Where it happened.
        room: Room,
        /// Who did it.
        from: Nick,
        /// When the server accepted it.
        time: Timestamp,
        /// The event's message id.
        id: u64,
        /// The action, without the nickname.
        text: String,
    },
    /// `PRIVMSG <from> <to> <time> <id> :<text>`: a private message; the sender gets it too.
    Private {
        /// The sender.
        from: Nick,
        /// The recipient.
        to: Nick,
        /// When the server accepted it.
        time: Timestamp,
        /// The event's message id.
        id: u64,
        /// What was said.
        text: String,
    },
    /// `JOIN <room> <nick> <time> <id>`: someone (maybe you) joined the room.
    Join {
        /// The room.
        room: Room,
        /// Who joined.
        nick: Nick,
        /// When.
        time: Timestamp,
        /// The event's message id.
        id: u64,
    },
    /// `PART <room> <nick> <time> <id> [:<reason>]`: someone (maybe you) left the room.
    Part {
        /// The room.
        room: Room,
        /// Who left.
        nick: Nick,
        /// When.
        time: Timestamp,
        /// The event's message id.
        id: u64,
        /// Why, if they said.
        reason: Option<String>,
    },
    /// `QUIT <room> <nick> <time> <id> [:<reason>]`: someone in the room disconnected.
    Quit {
        /// The room.
        room: Room,
        /// Who left.
        nick: Nick,
        /// When.
        time: Timestamp,
        /// The event's message id.
        id: u64,
        /// Why: their `/quit` text, or what the server saw (closed, broken connection).
        reason: Option<String>,
    },
    /// `RENAME <room|*> <old> <new> <time> <id>`: someone in the room is now called `new`.
    /// The room is `*` when you renamed yourself while in no room.
    Rename {
        /// The room, or `None` (`*`).
        room: Option<Room>,
        /// The former nickname.
        old: Nick,
        /// The new nickname.
        new: Nick,
        /// When.
        time: Timestamp,
        /// The event's message id.
        id: u64,
    },
    /// `HISTORY <event>`: an event from before you asked (a `MSG`, `ACTION` or
    /// `PRIVMSG` frame), with its original time and id.
    History(Box<ServerFrame>),
    /// `HISTORYEND <room|nick> <count>`: the end of a batch of `count` history frames.
    HistoryEnd {
        /// The room, or the other party of a private conversation.
        target: Target,
        /// How many `HISTORY` frames the batch held.
        count: usize,
    },
    /// `ACCOUNT <nick> <status>`: news about your nickname's account.
    Account {
        /// Your nickname.
        nick: Nick,
        /// What happened.
        status: AccountStatus,
    },
    /// `LAGGED <room> <missed>`: you fell behind the room and `missed` events were dropped
    /// for you; what follows is live again.
    Lagged {
        /// The room.
        room: Room,
        /// How many events you did not receive.
        missed: u64,
    },
    /// `CURRENT <room|*>`: bare lines now go to this room (`*`: to none).
    Current {
        /// The room, or `None` (`*`).
        room: Option<Room>,
    },
    /// `MEMBERS <room> [@|+]<nick>...`: who is in the room, operators marked `@` and
    /// voiced members `+`. A long list is split over several frames.
    Members {
        /// The room.
        room: Room,
        /// Members, in no particular order.
        members: Vec<RoomMember>,
    },
    /// `ROOMS <room>=<members>...`: the rooms that exist. A long list is split over
    /// several frames.
    Rooms {
        /// Each room and its member count.
        rooms: Vec<(Room, usize)>,
    },
    /// `PONG [:<token>]`: the answer to `/ping`; it follows everything that earlier lines
    /// caused for you.
    Pong {
        /// The token given to `/ping`.
        token: Option<String>,
    },
    /// `HELP :<line>`: one line of help.
    Help {
        /// The line.
        text: String,
    },
    /// `ERR <code> :<text>`: the last line was refused; the connection carries on.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        text: String,
    },
    /// `BYE :<reason>`: the server is closing this connection; nothing follows.
    Bye {
        /// Why.
        reason: String,
    },
    /// `AWAY <nick> [:<text>]`: the answer to `/away`: you are away with `text`, or
    /// (without text) back.
    Away {
        /// Your nickname.
        nick: Nick,
        /// Your away text; `None`: you are back.
        text: Option<String>,
    },
    /// `ISAWAY <nick> :<text>`: the recipient of your private message (delivered) is
    /// away; follows your copy of the `PRIVMSG`.
    IsAway {
        /// The recipient.
        nick: Nick,
        /// Its away text.
        text: String,
    },
    /// `WHOIS <nick> <since> <idle> <tls|plain> <account|*> <oper|user> [@|+]<room>...
    /// [:<away>]`: the answer to `/whois`.
    Whois(Box<Whois>),
    /// `WHOWAS <nick> <left> <account|*>`: one recent departure under that nickname
    /// (newest first), in answer to `/whowas`.
    Whowas {
        /// The nickname as it was spelled.
        nick: Nick,
        /// When the session ended.
        left: Timestamp,
        /// The account it was identified to, if any.
        account: Option<Nick>,
    },
    /// `WHOWASEND <nick> <count>`: the end of a `/whowas` answer of `count` frames.
    WhowasEnd {
        /// The nickname asked about, as asked.
        nick: Nick,
        /// How many `WHOWAS` frames came before.
        count: usize,
    },
    /// `TOPIC <room> <nick> <time> <id> [:<text>]`: `nick` set the room's topic to
    /// `text`, or (without text) cleared it.
    Topic {
        /// The room.
        room: Room,
        /// Who set it.
        nick: Nick,
        /// When.
        time: Timestamp,
        /// The event's message id.
        id: u64,
        /// The new topic; `None`: cleared.
        text: Option<String>,
    },
    /// `TOPICIS <room> [<nick> <time> :<text>]`: a room's topic (for `/topic`, and after
    /// a join's `MEMBERS` when it has one); `TOPICIS <room>` alone: it has none.
    TopicIs {
        /// The room.
        room: Room,
        /// Its topic, if it has one.
        topic: Option<Topic>,
    },
    // ----- server operators and the message of the day -----
    /// `MOTD :<line>`: one line of the message of the day (after `WELCOME`, and in
    /// answer to `/motd`).
    Motd {
        /// The line.
        text: String,
    },
    /// `OPER :<name>`: you are now the server operator `name`.
    Oper {
        /// The operator's name in the server's configuration.
        name: String,
    },
    /// `WALLOPS <from> <time> :<text>`: an operators' notice.
    Wallops {
        /// The operator who sent it.
        from: Nick,
        /// When the server accepted it.
        time: Timestamp,
        /// The notice.
        text: String,
    },
    /// `KILLED <nick> :<reason>`: the answer to `/kill`: that session is ending with
    /// `reason`.
    Killed {
        /// Whose session, as spelled.
        nick: Nick,
        /// What it and its rooms are told.
        reason: String,
    },
    /// `SBAN <target> <until|*> <by> [:<reason>]`: a server ban (in answer to `/sban`,
    /// and one per ban for `/sbans`).
    Sban {
        /// What it bans, canonically: an address, a network, or `nick!user@host`.
        target: String,
        /// When it expires; `None`: never.
        until: Option<Timestamp>,
        /// The operator who set it.
        by: Nick,
        /// Why.
        reason: Option<String>,
    },
    /// `SBANEND <count>`: the end of a `/sbans` answer of `count` frames.
    SbanEnd {
        /// How many `SBAN` frames came before.
        count: usize,
    },
    /// `UNSBAN <target>`: the answer to `/unsban`: that ban is lifted.
    Unsban {
        /// The ban's target, canonically.
        target: String,
    },
    /// `WALLOPSMODE <on|off>`: the answer to `/wallops on|off`.
    WallopsMode {
        /// Whether you now receive operators' notices.
        on: bool,
    },
    // ----- room governance -----
    /// `MODE <room> <nick> <time> <id> :<changes>`: `nick` changed the room's modes or a
    /// member's standing: `+o bob`, `-v carol`, `+mi`, `+k key`, `+l 50`, `+b mask`.
    Mode {
        /// The room.
        room: Room,
        /// Who changed it.
        nick: Nick,
        /// When.
        time: Timestamp,
        /// The event's message id.
        id: u64,
        /// The change: flags, then their arguments, space-separated.
        changes: String,
    },
    /// `MODES <room> :<modes>`: the answer to `/mode #room`: its flags and their
    /// arguments (`+ntl 50`; the key only to members), `+` alone for none.
    Modes {
        /// The room.
        room: Room,
        /// Its modes.
        modes: String,
    },
    /// `KICK <room> <nick> <target> <time> <id> :<reason>`: `nick` removed `target` from
    /// the room (the one kicked gets it too, and is no longer in the room).
    Kick {
        /// The room.
        room: Room,
        /// Who kicked.
        nick: Nick,
        /// Who was removed.
        target: Nick,
        /// When.
        time: Timestamp,
        /// The event's message id.
        id: u64,
        /// Why (the kicker's nickname when not given).
        reason: String,
    },
    /// `INVITE <room> <nick> <target> <time> <id>`: `nick` invited `target` to the room
    /// (to the room's members and to the one invited).
    Invite {
        /// The room.
        room: Room,
        /// Who invited.
        nick: Nick,
        /// Who was invited.
        target: Nick,
        /// When.
        time: Timestamp,
        /// The event's message id.
        id: u64,
    },
    /// `BAN <room> <mask> <by> <time>`: one ban of the room (in answer to `/ban #room`
    /// or `/mode #room +b`).
    Ban {
        /// The room.
        room: Room,
        /// What it matches: `nick!user@host` with `*` and `?`, or `$a:account`.
        mask: String,
        /// Who set it.
        by: Nick,
        /// When.
        time: Timestamp,
    },
    /// `BANEND <room> <count>`: the end of a ban list of `count` frames.
    BanEnd {
        /// The room.
        room: Room,
        /// How many `BAN` frames came before.
        count: usize,
    },
}

/// A room's topic as `TOPICIS` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// Who set it.
    pub by: Nick,
    /// When.
    pub time: Timestamp,
    /// The topic.
    pub text: String,
}

/// What `/whois` tells of someone connected (see [`ServerFrame::Whois`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whois {
    /// The nickname as spelled.
    pub nick: Nick,
    /// When the session connected (its handshake completed).
    pub since: Timestamp,
    /// Seconds since the session last sent a line (or connected).
    pub idle: u64,
    /// Whether the connection is TLS (`tls`) or not (`plain`).
    pub tls: bool,
    /// The account it identified to, if any (`*`: none).
    pub account: Option<Nick>,
    /// Whether it is a server operator (`oper`) or not (`user`).
    pub oper: bool,
    /// The rooms it is in that you may see (secret rooms only if you share them), with
    /// its standing in each.
    pub rooms: Vec<(Status, Room)>,
    /// Its away text, if it is away.
    pub away: Option<String>,
}

/// A line that is not a valid server frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The verb is not known.
    #[error("unknown verb {0:?}")]
    UnknownVerb(String),
    /// The frame has the wrong number or shape of parameters.
    #[error("malformed {verb} frame: {why}")]
    Malformed {
        /// The frame's verb.
        verb: &'static str,
        /// What was wrong.
        why: String,
    },
}

/// Splits a frame into its middle parameters and its trailing text.
struct Parts<'a> {
    verb: &'a str,
    params: Vec<&'a str>,
    trailing: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn split(line: &'a str) -> Parts<'a> {
        let (head, trailing) = match line.find(" :") {
            Some(i) => (&line[..i], Some(&line[i + 2..])),
            None => (line, None),
        };
        let mut words = head.split(' ').filter(|w| !w.is_empty());
        let verb = words.next().unwrap_or("");
        Parts {
            verb,
            params: words.collect(),
            trailing,
        }
    }
}

fn malformed(verb: &'static str, why: impl Into<String>) -> FrameError {
    FrameError::Malformed {
        verb,
        why: why.into(),
    }
}

/// Parameter reader for one verb, so each frame's parser reads like its grammar.
struct Reader<'a> {
    verb: &'static str,
    params: std::vec::IntoIter<&'a str>,
    trailing: Option<&'a str>,
}

impl<'a> Reader<'a> {
    fn word(&mut self, what: &str) -> Result<&'a str, FrameError> {
        self.params
            .next()
            .ok_or_else(|| malformed(self.verb, format!("missing {what}")))
    }
    fn nick(&mut self) -> Result<Nick, FrameError> {
        let w = self.word("nickname")?;
        Nick::new(w).map_err(|e| malformed(self.verb, format!("nickname {w:?}: {e}")))
    }
    fn room(&mut self) -> Result<Room, FrameError> {
        let w = self.word("room")?;
        Room::new(w).map_err(|e| malformed(self.verb, format!("room {w:?}: {e}")))
    }
    fn room_or_star(&mut self) -> Result<Option<Room>, FrameError> {
        match self.params.as_slice().first() {
            Some(&"*") => {
                self.params.next();
                Ok(None)
            }
            _ => self.room().map(Some),
        }
    }
    fn nick_or_star(&mut self) -> Result<Option<Nick>, FrameError> {
        match self.params.as_slice().first() {
            Some(&"*") => {
                self.params.next();
                Ok(None)
            }
            _ => self.nick().map(Some),
        }
    }
    fn time(&mut self) -> Result<Timestamp, FrameError> {
        let w = self.word("time")?;
        w.parse()
            .map_err(|e| malformed(self.verb, format!("time {w:?}: {e}")))
    }
    fn id(&mut self) -> Result<u64, FrameError> {
        self.number("id")
    }
    fn number<N: std::str::FromStr>(&mut self, what: &str) -> Result<N, FrameError> {
        let w = self.word(what)?;
        w.parse()
            .map_err(|_| malformed(self.verb, format!("{what} {w:?}")))
    }
    fn target(&mut self) -> Result<Target, FrameError> {
        let w = self.word("room or nickname")?;
        Target::new(w).map_err(|e| malformed(self.verb, format!("{w:?}: {e}")))
    }
    fn text(&mut self) -> Result<String, FrameError> {
        self.trailing
            .take()
            .map(str::to_owned)
            .ok_or_else(|| malformed(self.verb, "missing text"))
    }
    fn optional_text(&mut self) -> Option<String> {
        self.trailing.take().map(str::to_owned)
    }
    fn rest(&mut self) -> Vec<&'a str> {
        self.params.by_ref().collect()
    }
    fn end<T>(mut self, value: T) -> Result<T, FrameError> {
        if self.params.next().is_some() {
            return Err(malformed(self.verb, "too many parameters"));
        }
        if self.trailing.is_some() {
            return Err(malformed(self.verb, "unexpected text"));
        }
        Ok(value)
    }
}

impl ServerFrame {
    /// The message id of an event (`HISTORY` included), `None` for replies.
    pub fn id(&self) -> Option<u64> {
        match self {
            ServerFrame::Message { id, .. }
            | ServerFrame::Action { id, .. }
            | ServerFrame::Private { id, .. }
            | ServerFrame::Join { id, .. }
            | ServerFrame::Part { id, .. }
            | ServerFrame::Quit { id, .. }
            | ServerFrame::Rename { id, .. }
            | ServerFrame::Topic { id, .. }
            | ServerFrame::Mode { id, .. }
            | ServerFrame::Kick { id, .. }
            | ServerFrame::Invite { id, .. } => Some(*id),
            ServerFrame::History(event) => event.id(),
            _ => None,
        }
    }

    /// The frame's verb.
    pub fn verb(&self) -> &'static str {
        match self {
            ServerFrame::NickPrompt => "NICK",
            ServerFrame::PassPrompt => "PASS",
            ServerFrame::Welcome { .. } => "WELCOME",
            ServerFrame::Message { .. } => "MSG",
            ServerFrame::Action { .. } => "ACTION",
            ServerFrame::Private { .. } => "PRIVMSG",
            ServerFrame::Join { .. } => "JOIN",
            ServerFrame::Part { .. } => "PART",
            ServerFrame::Quit { .. } => "QUIT",
            ServerFrame::Rename { .. } => "RENAME",
            ServerFrame::History(_) => "HISTORY",
            ServerFrame::HistoryEnd { .. } => "HISTORYEND",
            ServerFrame::Account { .. } => "ACCOUNT",
            ServerFrame::Lagged { .. } => "LAGGED",
            ServerFrame::Current { .. } => "CURRENT",
            ServerFrame::Members { .. } => "MEMBERS",
            ServerFrame::Rooms { .. } => "ROOMS",
            ServerFrame::Pong { .. } => "PONG",
            ServerFrame::Help { .. } => "HELP",
            ServerFrame::Error { .. } => "ERR",
            ServerFrame::Bye { .. } => "BYE",
            ServerFrame::Away { .. } => "AWAY",
            ServerFrame::IsAway { .. } => "ISAWAY",
            ServerFrame::Whois(_) => "WHOIS",
            ServerFrame::Whowas { .. } => "WHOWAS",
            ServerFrame::WhowasEnd { .. } => "WHOWASEND",
            ServerFrame::Topic { .. } => "TOPIC",
            ServerFrame::TopicIs { .. } => "TOPICIS",
            ServerFrame::Motd { .. } => "MOTD",
            ServerFrame::Oper { .. } => "OPER",
            ServerFrame::Wallops { .. } => "WALLOPS",
            ServerFrame::Killed { .. } => "KILLED",
            ServerFrame::Sban { .. } => "SBAN",
            ServerFrame::SbanEnd { .. } => "SBANEND",
            ServerFrame::Unsban { .. } => "UNSBAN",
            ServerFrame::WallopsMode { .. } => "WALLOPSMODE",
            ServerFrame::Mode { .. } => "MODE",
            ServerFrame::Modes { .. } => "MODES",
            ServerFrame::Kick { .. } => "KICK",
            ServerFrame::Invite { .. } => "INVITE",
            ServerFrame::Ban { .. } => "BAN",
            ServerFrame::BanEnd { .. } => "BANEND",
        }
    }

    /// Parses one line (without its newline) sent by the server.
    pub fn parse(line: &str) -> Result<ServerFrame, FrameError> {
        if let Some(inner) = line.strip_prefix("HISTORY ") {
            let inner = ServerFrame::parse(inner)?;
            return match inner {
                ServerFrame::Message { .. }
                | ServerFrame::Action { .. }
                | ServerFrame::Private { .. } => Ok(ServerFrame::History(Box::new(inner))),
                other => Err(malformed(
                    "HISTORY",
                    format!("{} is not a history event", other.verb()),
                )),
            };
        }
        let parts = Parts::split(line);
        const VERBS: [&str; 42] = [
            "NICK",
            "PASS",
            "WELCOME",
            "MSG",
            "ACTION",
            "PRIVMSG",
            "JOIN",
            "PART",
            "QUIT",
            "RENAME",
            "HISTORY",
            "HISTORYEND",
            "ACCOUNT",
            "LAGGED",
            "CURRENT",
            "MEMBERS",
            "ROOMS",
            "PONG",
            "HELP",
            "ERR",
            "BYE",
            "AWAY",
            "ISAWAY",
            "WHOIS",
            "WHOWAS",
            "WHOWASEND",
            "TOPIC",
            "TOPICIS",
            "MOTD",
            "OPER",
            "WALLOPS",
            "WALLOPSMODE",
            "KILLED",
            "SBAN",
            "SBANEND",
            "UNSBAN",
            "MODE",
            "MODES",
            "KICK",
            "INVITE",
            "BAN",
            "BANEND",
        ];
        let verb = VERBS
            .into_iter()
            .find(|v| *v == parts.verb)
            .ok_or_else(|| FrameError::UnknownVerb(parts.verb.to_owned()))?;
        let mut r = Reader {
            verb,
            params: parts.params.into_iter(),
            trailing: parts.trailing,
        };
        let frame = match verb {
            "NICK" => ServerFrame::NickPrompt,
            "PASS" => ServerFrame::PassPrompt,
            "HISTORY" => return Err(malformed(verb, "missing event")),
            "HISTORYEND" => ServerFrame::HistoryEnd {
                target: r.target()?,
                count: r.number("count")?,
            },
            "ACCOUNT" => {
                let nick = r.nick()?;
                let w = r.word("status")?;
                let status = AccountStatus::parse(w)
                    .ok_or_else(|| malformed(verb, format!("status {w:?}")))?;
                ServerFrame::Account { nick, status }
            }
            "WELCOME" => ServerFrame::Welcome {
                nick: r.nick()?,
                text: r.text()?,
            },
            "MSG" => ServerFrame::Message {
                room: r.room()?,
                from: r.nick()?,
                time: r.time()?,
                id: r.id()?,
                text: r.text()?,
            },
            "ACTION" => ServerFrame::Action {
                room: r.room()?,
                from: r.nick()?,
                time: r.time()?,
                id: r.id()?,
                text: r.text()?,
            },
            "PRIVMSG" => ServerFrame::Private {
                from: r.nick()?,
                to: r.nick()?,
                time: r.time()?,
                id: r.id()?,
                text: r.text()?,
            },
            "JOIN" => ServerFrame::Join {
                room: r.room()?,
                nick: r.nick()?,
                time: r.time()?,
                id: r.id()?,
            },
            "PART" => ServerFrame::Part {
                room: r.room()?,
                nick: r.nick()?,
                time: r.time()?,
                id: r.id()?,
                reason: r.optional_text(),
            },
            "QUIT" => ServerFrame::Quit {
                room: r.room()?,
                nick: r.nick()?,
                time: r.time()?,
                id: r.id()?,
                reason: r.optional_text(),
            },
            "RENAME" => ServerFrame::Rename {
                room: r.room_or_star()?,
                old: r.nick()?,
                new: r.nick()?,
                time: r.time()?,
                id: r.id()?,
            },
            "LAGGED" => {
                let room = r.room()?;
                let missed = r.number("count")?;
                ServerFrame::Lagged { room, missed }
            }
            "CURRENT" => ServerFrame::Current {
                room: r.room_or_star()?,
            },
            "MEMBERS" => {
                let room = r.room()?;
                let members = r
                    .rest()
                    .into_iter()
                    .map(|w| {
                        let (status, nick) = Status::split(w);
                        Nick::new(nick).map(|nick| RoomMember { status, nick })
                    })
                    .collect::<Result<_, _>>();
                ServerFrame::Members {
                    room,
                    members: members.map_err(|e| malformed(verb, e.to_string()))?,
                }
            }
            "ROOMS" => {
                let rooms = r
                    .rest()
                    .into_iter()
                    .map(|w| {
                        let (name, count) = w
                            .split_once('=')
                            .ok_or_else(|| malformed(verb, format!("{w:?}")))?;
                        let room = Room::new(name).map_err(|e| malformed(verb, e.to_string()))?;
                        let count = count
                            .parse()
                            .map_err(|_| malformed(verb, format!("count {count:?}")))?;
                        Ok((room, count))
                    })
                    .collect::<Result<_, FrameError>>()?;
                ServerFrame::Rooms { rooms }
            }
            "PONG" => ServerFrame::Pong {
                token: r.optional_text(),
            },
            "HELP" => ServerFrame::Help { text: r.text()? },
            "ERR" => ServerFrame::Error {
                code: ErrorCode::parse(r.word("code")?),
                text: r.text()?,
            },
            "BYE" => ServerFrame::Bye { reason: r.text()? },
            "AWAY" => ServerFrame::Away {
                nick: r.nick()?,
                text: r.optional_text(),
            },
            "ISAWAY" => ServerFrame::IsAway {
                nick: r.nick()?,
                text: r.text()?,
            },
            "WHOIS" => {
                let nick = r.nick()?;
                let since = r.time()?;
                let idle = r.number("idle")?;
                let tls = match r.word("transport")? {
                    "tls" => true,
                    "plain" => false,
                    w => return Err(malformed(verb, format!("transport {w:?}"))),
                };
                let account = r.nick_or_star()?;
                let oper = match r.word("operator")? {
                    "oper" => true,
                    "user" => false,
                    w => return Err(malformed(verb, format!("operator {w:?}"))),
                };
                let rooms = r
                    .rest()
                    .into_iter()
                    .map(|w| {
                        let (status, room) = Status::split(w);
                        Room::new(room).map(|room| (status, room))
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| malformed(verb, e.to_string()))?;
                ServerFrame::Whois(Box::new(Whois {
                    nick,
                    since,
                    idle,
                    tls,
                    account,
                    oper,
                    rooms,
                    away: r.optional_text(),
                }))
            }
            "WHOWAS" => ServerFrame::Whowas {
                nick: r.nick()?,
                left: r.time()?,
                account: r.nick_or_star()?,
            },
            "WHOWASEND" => ServerFrame::WhowasEnd {
                nick: r.nick()?,
                count: r.number("count")?,
            },
            "TOPIC" => ServerFrame::Topic {
                room: r.room()?,
                nick: r.nick()?,
                time: r.time()?,
                id: r.id()?,
                text: r.optional_text(),
            },
            "TOPICIS" => {
                let room = r.room()?;
                let topic = match r.params.as_slice() {
                    [] => None,
                    _ => Some(Topic {
                        by: r.nick()?,
                        time: r.time()?,
                        text: r.text()?,
                    }),
                };
                ServerFrame::TopicIs { room, topic }
            }
            "MOTD" => ServerFrame::Motd {
                text: r.optional_text().unwrap_or_default(),
            },
            "OPER" => ServerFrame::Oper { name: r.text()? },
            "WALLOPS" => ServerFrame::Wallops {
                from: r.nick()?,
                time: r.time()?,
                text: r.text()?,
            },
            "SBAN" => ServerFrame::Sban {
                target: r.word("target")?.to_owned(),
                until: match r.word("until")? {
                    "*" => None,
                    w => Some(
                        w.parse()
                            .map_err(|e| malformed(verb, format!("until {w:?}: {e}")))?,
                    ),
                },
                by: r.nick()?,
                reason: r.optional_text(),
            },
            "SBANEND" => ServerFrame::SbanEnd {
                count: r.number("count")?,
            },
            "UNSBAN" => ServerFrame::Unsban {
                target: r.word("target")?.to_owned(),
            },
            "KILLED" => ServerFrame::Killed {
                nick: r.nick()?,
                reason: r.text()?,
            },
            "WALLOPSMODE" => ServerFrame::WallopsMode {
                on: match r.word("mode")? {
                    "on" => true,
                    "off" => false,
                    w => return Err(malformed(verb, format!("mode {w:?}"))),
                },
            },
            "MODE" => ServerFrame::Mode {
                room: r.room()?,
                nick: r.nick()?,
                time: r.time()?,
                id: r.id()?,
                changes: r.text()?,
            },
            "MODES" => ServerFrame::Modes {
                room: r.room()?,
                modes: r.text()?,
            },
            "KICK" => ServerFrame::Kick {
                room: r.room()?,
                nick: r.nick()?,
                target: r.nick()?,
                time: r.time()?,
                id: r.id()?,
                reason: r.text()?,
            },
            "INVITE" => ServerFrame::Invite {
                room: r.room()?,
                nick: r.nick()?,
                target: r.nick()?,
                time: r.time()?,
                id: r.id()?,
            },
            "BAN" => ServerFrame::Ban {
                room: r.room()?,
                mask: r.word("mask")?.to_owned(),
                by: r.nick()?,
                time: r.time()?,
            },
            "BANEND" => ServerFrame::BanEnd {
                room: r.room()?,
                count: r.number("count")?,
            },
            _ => unreachable!("verb list and match agree"),
        };
        r.end(frame)
    }

    /// Appends the frame and its `\n` to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        // Writing into a BytesMut cannot fail.
        let _ = writeln!(dst, "{self}");
    }

    /// The frame with its `\n`, as shareable bytes: encode once, send to many.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        self.encode(&mut buf);
        buf.freeze()
    }

    /// Appends `MEMBERS` frames for `room` listing `members`, at most `per_frame` to a
    /// frame: the bytes that encoding a [`ServerFrame::Members`] per chunk would give,
    /// without building the frames or cloning a name (a big room's list is encoded on
    /// every join). No frame for no names.
    pub fn encode_members<'a>(
        room: &Room,
        members: impl IntoIterator<Item = (Status, &'a Nick)>,
        per_frame: usize,
        dst: &mut BytesMut,
    ) {
        let per_frame = per_frame.max(1);
        let mut in_frame = 0;
        for (status, nick) in members {
            if in_frame == per_frame {
                dst.extend_from_slice(b"\n");
                in_frame = 0;
            }
            if in_frame == 0 {
                dst.extend_from_slice(b"MEMBERS ");
                dst.extend_from_slice(room.as_str().as_bytes());
            }
            dst.extend_from_slice(b" ");
            dst.extend_from_slice(status.prefix().as_bytes());
            dst.extend_from_slice(nick.as_str().as_bytes());
            in_frame += 1;
        }
        if in_frame > 0 {
            dst.extend_from_slice(b"\n");
        }
    }

    /// Like [`ServerFrame::to_bytes`] for several frames at once.
    pub fn encode_all<'a>(frames: impl IntoIterator<Item = &'a ServerFrame>) -> Bytes {
        let mut buf = BytesMut::new();
        for frame in frames {
            frame.encode(&mut buf);
        }
        buf.freeze()
    }
}

struct Time<'a>(&'a Timestamp);

impl fmt::Display for Time<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.0)
    }
}

struct RoomOrStar<'a>(&'a Option<Room>);

impl fmt::Display for RoomOrStar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(room) => room.fmt(f),
            None => f.write_str("*"),
        }
    }
}

struct NickOrStar<'a>(&'a Option<Nick>);

impl fmt::Display for NickOrStar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(nick) => nick.fmt(f),
            None => f.write_str("*"),
        }
    }
}

struct OptText<'a>(&'a Option<String>);

impl fmt::Display for OptText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(text) => write!(f, " :{text}"),
            None => Ok(()),
        }
    }
}

/// The line, without its newline.
impl fmt::Display for ServerFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.verb();
        match self {
            ServerFrame::NickPrompt | ServerFrame::PassPrompt => f.write_str(verb),
            ServerFrame::History(event) => write!(f, "{verb} {event}"),
            ServerFrame::HistoryEnd { target, count } => write!(f, "{verb} {target} {count}"),
            ServerFrame::Account { nick, status } => write!(f, "{verb} {nick} {status}"),
            ServerFrame::Welcome { nick, text } => write!(f, "{verb} {nick} :{text}"),
            ServerFrame::Message {
                room,
                from,
                time,
                id,
                text,
            }
            | ServerFrame::Action {
                room,
                from,
                time,
                id,
                text,
            } => {
                write!(f, "{verb} {room} {from} {} {id} :{text}", Time(time))
            }
            ServerFrame::Private {
                from,
                to,
                time,
                id,
                text,
            } => write!(f, "{verb} {from} {to} {} {id} :{text}", Time(time)),
            ServerFrame::Join {
                room,
                nick,
                time,
                id,
            } => {
                write!(f, "{verb} {room} {nick} {} {id}", Time(time))
            }
            ServerFrame::Part {
                room,
                nick,
                time,
                id,
                reason,
            }
            | ServerFrame::Quit {
                room,
                nick,
                time,
                id,
                reason,
            } => {
                write!(
                    f,
                    "{verb} {room} {nick} {} {id}{}",
                    Time(time),
                    OptText(reason)
                )
            }
            ServerFrame::Rename {
                room,
                old,
                new,
                time,
                id,
            } => {
                write!(
                    f,
                    "{verb} {} {old} {new} {} {id}",
                    RoomOrStar(room),
                    Time(time)
                )
            }
            ServerFrame::Lagged { room, missed } => write!(f, "{verb} {room} {missed}"),
            ServerFrame::Current { room } => write!(f, "{verb} {}", RoomOrStar(room)),
            ServerFrame::Members { room, members } => {
                write!(f, "{verb} {room}")?;
                members.iter().try_for_each(|m| write!(f, " {m}"))
            }
            ServerFrame::Rooms { rooms } => {
                f.write_str(verb)?;
                rooms
                    .iter()
                    .try_for_each(|(room, n)| write!(f, " {room}={n}"))
            }
            ServerFrame::Pong { token } => write!(f, "{verb}{}", OptText(token)),
            ServerFrame::Help { text } => write!(f, "{verb} :{text}"),
            ServerFrame::Error { code, text } => write!(f, "{verb} {code} :{text}"),
            ServerFrame::Bye { reason } => write!(f, "{verb} :{reason}"),
            ServerFrame::Away { nick, text } => write!(f, "{verb} {nick}{}", OptText(text)),
            ServerFrame::IsAway { nick, text } => write!(f, "{verb} {nick} :{text}"),
            ServerFrame::Whois(w) => {
                write!(
                    f,
                    "{verb} {} {} {} {} {} {}",
                    w.nick,
                    Time(&w.since),
                    w.idle,
                    if w.tls { "tls" } else { "plain" },
                    NickOrStar(&w.account),
                    if w.oper { "oper" } else { "user" },
                )?;
                w.rooms
                    .iter()
                    .try_for_each(|(s, r)| write!(f, " {}{r}", s.prefix()))?;
                write!(f, "{}", OptText(&w.away))
            }
            ServerFrame::Whowas {
                nick,
                left,
                account,
            } => write!(f, "{verb} {nick} {} {}", Time(left), NickOrStar(account)),
            ServerFrame::WhowasEnd { nick, count } => write!(f, "{verb} {nick} {count}"),
            ServerFrame::Topic {
                room,
                nick,
                time,
                id,
                text,
            } => write!(
                f,
                "{verb} {room} {nick} {} {id}{}",
                Time(time),
                OptText(text)
            ),
            ServerFrame::TopicIs { room, topic: None } => write!(f, "{verb} {room}"),
            ServerFrame::TopicIs {
                room,
                topic: Some(t),
            } => write!(f, "{verb} {room} {} {} :{}", t.by, Time(&t.time), t.text),
            ServerFrame::Motd { text } => write!(f, "{verb} :{text}"),
            ServerFrame::Oper { name } => write!(f, "{verb} :{name}"),
            ServerFrame::Wallops { from, time, text } => {
                write!(f, "{verb} {from} {} :{text}", Time(time))
            }
            ServerFrame::Killed { nick, reason } => write!(f, "{verb} {nick} :{reason}"),
            ServerFrame::Sban {
                target,
                until,
                by,
                reason,
            } => {
                write!(f, "{verb} {target} ")?;
                match until {
                    Some(until) => write!(f, "{}", Time(until))?,
                    None => f.write_str("*")?,
                }
                write!(f, " {by}{}", OptText(reason))
            }
            ServerFrame::SbanEnd { count } => write!(f, "{verb} {count}"),
            ServerFrame::Unsban { target } => write!(f, "{verb} {target}"),
            ServerFrame::WallopsMode { on } => {
                write!(f, "{verb} {}", if *on { "on" } else { "off" })
            }
            ServerFrame::Mode {
                room,
                nick,
                time,
                id,
                changes,
            } => write!(f, "{verb} {room} {nick} {} {id} :{changes}", Time(time)),
            ServerFrame::Modes { room, modes } => write!(f, "{verb} {room} :{modes}"),
            ServerFrame::Kick {
                room,
                nick,
                target,
                time,
                id,
                reason,
            } => write!(
                f,
                "{verb} {room} {nick} {target} {} {id} :{reason}",
                Time(time)
            ),
            ServerFrame::Invite {
                room,
                nick,
                target,
                time,
                id,
            } => write!(f, "{verb} {room} {nick} {target} {} {id}", Time(time)),
            ServerFrame::Ban {
                room,
                mask,
                by,
                time,
            } => write!(f, "{verb} {room} {mask} {by} {}", Time(time)),
            ServerFrame::BanEnd { room, count } => write!(f, "{verb} {room} {count}"),
        }
    }
}

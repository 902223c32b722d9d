//! What a client sends once it has a nickname: a bare line is a message to the current
//! room, a line starting with `/` is a command, and `//text` sends `/text` literally.

use crate::frame::Status;
use crate::name::{NameError, Nick, Room, Target};
use crate::text::first_forbidden;
use std::fmt;

/// A line from a client after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A message to the current room (a bare line, or `//text` for text starting with `/`).
    Say(String),
    /// `/join #room [key]`: join (creating it if need be) and make it current; `key` for
    /// a room that has one (`+k`).
    Join {
        /// The room.
        room: Room,
        /// The room's key, if given.
        key: Option<String>,
    },
    /// `/part [#room] [reason]`: leave the room (default: the current one).
    Part {
        /// The room to leave; the current one if `None`.
        room: Option<Room>,
        /// Told to the room.
        reason: Option<String>,
    },
    /// `/rooms`: list the rooms.
    Rooms,
    /// `/who [#room]`: list a room's members (default: the current room).
    Who(Option<Room>),
    /// `/msg nick text`: a private message.
    Msg {
        /// The recipient.
        to: Nick,
        /// The message.
        text: String,
    },
    /// `/me action`: an action in the current room.
    Me(String),
    /// `/nick new`: change nickname.
    Nick(Nick),
    /// `/quit [reason]`: leave the server.
    Quit(Option<String>),
    /// `/help`: list the commands.
    Help,
    /// `/ping [token]`: the server answers `PONG` after everything earlier lines caused.
    Ping(Option<String>),
    /// `/register password`: claim your nickname with a password.
    Register(Password),
    /// `/password new`: change your registered nickname's password.
    Password(Password),
    /// `/history [#room|nick] [count] [before-id]`: earlier messages of a room (default:
    /// the current one) or of your private conversation with `nick`.
    History {
        /// The room or the other party; the current room if `None`.
        target: Option<Target>,
        /// How many messages; the server's default if `None`.
        count: Option<usize>,
        /// Only messages older than this message id (paging back).
        before: Option<u64>,
    },
    /// `/away [text]`: mark yourself away with `text` (private messages to you are
    /// answered with it), or back without text.
    Away(Option<String>),
    /// `/whois nick`: what the server knows of someone connected.
    Whois(Nick),
    /// `/whowas nick`: recent departures under that nickname.
    Whowas(Nick),
    /// `/topic [#room] [text|:]`: show a room's topic (default: the current room's), set
    /// it to `text`, or clear it (`:`).
    Topic {
        /// The room; the current one if `None`.
        room: Option<Room>,
        /// `None`: show it; `Some(None)`: clear it; `Some(Some(text))`: set it.
        set: Option<Option<String>>,
    },
    // ----- server operators -----
    /// `/oper name password`: become a server operator.
    Oper {
        /// The operator's name in the server's configuration.
        name: String,
        /// Its password.
        password: Password,
    },
    /// `/kill nick [reason]` (operators): end someone's session.
    Kill {
        /// Whose.
        nick: Nick,
        /// Why, told to them and their rooms.
        reason: Option<String>,
    },
    /// `/wallops text` (operators): a notice to operators and to users who want them.
    Wallops(String),
    /// `/wallops on|off`: receive (or stop receiving) operators' notices.
    WallopsMode(bool),
    /// `/motd`: the message of the day again.
    Motd,
    /// `/sban mask|address|cidr [duration] [reason]` (operators): a server ban.
    Sban {
        /// What to ban, as given (the server checks it).
        target: String,
        /// How long; for ever if `None`.
        duration: Option<std::time::Duration>,
        /// Why, told to whoever it refuses.
        reason: Option<String>,
    },
    /// `/unsban mask|address|cidr` (operators): lift a server ban.
    Unsban(String),
    /// `/sbans` (operators): list the server bans.
    Sbans,
    // ----- room governance -----
    /// `/mode [#room] [+|-flags [args...]]`: show a room's modes (default: the current
    /// room's), or change them (room operators). The flags and arguments are checked by
    /// the server.
    Mode {
        /// The room; the current one if `None`.
        room: Option<Room>,
        /// The change, word by word (`+ml`, `20`); empty: show the modes.
        changes: Vec<String>,
    },
    /// `/op`, `/deop`, `/voice`, `/devoice [#room] nick` (room operators): give or take a
    /// member's operator status or voice.
    Grant {
        /// The room; the current one if `None`.
        room: Option<Room>,
        /// Whose.
        nick: Nick,
        /// [`Status::Operator`] or [`Status::Voice`].
        status: Status,
        /// Give (`true`) or take away.
        give: bool,
    },
    /// `/kick [#room] nick [reason]` (room operators): remove someone from the room.
    Kick {
        /// The room; the current one if `None`.
        room: Option<Room>,
        /// Whom.
        nick: Nick,
        /// Why (the kicker's nickname if `None`).
        reason: Option<String>,
    },
    /// `/ban [#room] [mask|nick]` (room operators): ban from the room; without a mask,
    /// list the room's bans.
    Ban {
        /// The room; the current one if `None`.
        room: Option<Room>,
        /// `nick!user@host` with `*` and `?`, `$a:account`, or a nickname; `None`: list.
        mask: Option<String>,
    },
    /// `/unban [#room] mask` (room operators): lift a room ban.
    Unban {
        /// The room; the current one if `None`.
        room: Option<Room>,
        /// The ban's mask, as listed.
        mask: String,
    },
    /// `/invite nick [#room]`: invite someone to a room (default: the current one); in
    /// an invite-only room, room operators only.
    Invite {
        /// Whom.
        nick: Nick,
        /// The room; the current one if `None`.
        room: Option<Room>,
    },
}

/// A ban's duration: a whole number and a unit, `s`, `m`, `h`, `d` or `w` (`90m`, `7d`).
pub fn parse_duration(word: &str) -> Option<std::time::Duration> {
    let unit = word.chars().last()?;
    let secs: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    let number = &word[..word.len() - 1];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    n.checked_mul(secs).map(std::time::Duration::from_secs)
}

/// `duration` as `/sban` takes it (in the largest unit that divides it).
fn format_duration(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    for (unit, size) in [('w', 604_800), ('d', 86_400), ('h', 3600), ('m', 60)] {
        if secs > 0 && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// A password in transit. Its `Debug` form hides it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Shortest password the server accepts, in characters.
    pub const MIN_CHARS: usize = 8;
    /// Longest password the server accepts, in bytes.
    pub const MAX_BYTES: usize = 256;

    /// Wraps a password (it is checked by the server, not here).
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the server accepts this password's length.
    pub fn acceptable(&self) -> bool {
        self.0.chars().count() >= Password::MIN_CHARS && self.0.len() <= Password::MAX_BYTES
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

/// A line that is not a valid command. [`CommandError::code`] gives the wire error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The line was empty or only white space.
    #[error("empty line")]
    Empty,
    /// `/name` is not a command.
    #[error("unknown command /{} (try /help)", crate::text::escape_controls(.0))]
    Unknown(String),
    /// The arguments did not fit; the text is the command's usage.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// A nickname argument was invalid.
    #[error("invalid nickname {name:?}: {error}")]
    BadNick {
        /// What was given.
        name: String,
        /// Why it is invalid.
        error: NameError,
    },
    /// A room argument was invalid.
    #[error("invalid room name {name:?}: {error}")]
    BadRoom {
        /// What was given.
        name: String,
        /// Why it is invalid.
        error: NameError,
    },
    /// The text held a control or bidirectional-override character.
    #[error("text contains the control character {0:?}, which is not allowed")]
    ControlChars(char),
}

impl CommandError {
    /// The wire error code for this error.
    pub fn code(&self) -> crate::ErrorCode {
        use crate::ErrorCode;
        match self {
            CommandError::Empty | CommandError::Usage(_) => ErrorCode::Usage,
            CommandError::Unknown(_) => ErrorCode::UnknownCommand,
            CommandError::BadNick { .. } => ErrorCode::NickInvalid,
            CommandError::BadRoom { .. } => ErrorCode::RoomInvalid,
            CommandError::ControlChars(_) => ErrorCode::ControlChars,
        }
    }
}

/// How many messages `/history` shows when no count is given, and how many a join shows.
pub const DEFAULT_HISTORY: usize = 50;

/// One line per command, for `/help`.
pub const HELP: &[(&str, &str)] = &[
    (
        "/join #room [key]",
        "join a room (creating it) and make it current",
    ),
    (
        "/part [#room] [reason]",
        "leave a room (default: the current one)",
    ),
    ("/rooms", "list the rooms and how many are in each"),
    (
        "/who [#room]",
        "list who is in a room (default: the current one)",
    ),
    ("/msg nick text", "send a private message"),
    ("/me action", "describe an action in the current room"),
    ("/nick new", "change your nickname"),
    (
        "/history [#room|nick] [n] [id]",
        "show earlier messages (before message id)",
    ),
    ("/away [text]", "mark yourself away (no text: back)"),
    ("/whois nick", "who someone connected is"),
    ("/whowas nick", "who recently left under that nickname"),
    (
        "/topic [#room] [text|:]",
        "show or set a room's topic (: alone clears it)",
    ),
    (
        "/mode [#room] [+|-flags] [args]",
        "show or change a room's modes: t n m s i k l b",
    ),
    (
        "/op [#room] nick",
        "room operators: make someone an operator",
    ),
    (
        "/deop [#room] nick",
        "room operators: take operator status away",
    ),
    (
        "/voice [#room] nick",
        "room operators: let someone speak when +m",
    ),
    ("/devoice [#room] nick", "room operators: take voice away"),
    (
        "/kick [#room] nick [reason]",
        "room operators: remove someone from a room",
    ),
    (
        "/ban [#room] [mask|nick]",
        "room operators: ban from a room (no mask: list)",
    ),
    ("/unban [#room] mask", "room operators: lift a room ban"),
    ("/invite nick [#room]", "invite someone to a room"),
    ("/register password", "claim your nickname with a password"),
    ("/password new", "change your nickname's password"),
    ("/ping [token]", "ask the server for PONG"),
    ("/motd", "show the message of the day"),
    ("/oper name password", "become a server operator"),
    ("/kill nick [reason]", "operators: disconnect someone"),
    (
        "/wallops text|on|off",
        "operators: notice to operators; on/off: receive them",
    ),
    (
        "/sban mask|ip|cidr [time] [why]",
        "operators: ban from the server (time: 30m, 7d...)",
    ),
    ("/unsban mask|ip|cidr", "operators: lift a server ban"),
    ("/sbans", "operators: list the server bans"),
    ("/quit [reason]", "leave the chat"),
    ("/help", "this list"),
    ("//text", "send a message that starts with /"),
];

fn usage(name: &str) -> &'static str {
    HELP.iter()
        .find(|(u, _)| u.split(' ').next() == Some(name))
        .map(|(u, _)| *u)
        .unwrap_or("/help")
}

fn check_text(text: &str) -> Result<(), CommandError> {
    match first_forbidden(text) {
        Some(c) => Err(CommandError::ControlChars(c)),
        None => Ok(()),
    }
}

fn nick(name: &str) -> Result<Nick, CommandError> {
    Nick::new(name).map_err(|error| CommandError::BadNick {
        name: name.to_owned(),
        error,
    })
}

fn room(name: &str) -> Result<Room, CommandError> {
    Room::new(name).map_err(|error| CommandError::BadRoom {
        name: name.to_owned(),
        error,
    })
}

/// `Some(text)` for non-empty text, after checking it for control characters.
fn opt_text(text: &str) -> Result<Option<String>, CommandError> {
    check_text(text)?;
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Splits off the first word; the rest keeps its inner spacing.
fn first_word(s: &str) -> (&str, &str) {
    match s.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (s, ""),
    }
}

/// A first word starting with `#` is a room; the rest follows it.
fn optional_room(args: &str) -> Result<(Option<Room>, &str), CommandError> {
    let (first, rest) = first_word(args);
    if first.starts_with('#') {
        Ok((Some(room(first)?), rest))
    } else {
        Ok((None, args))
    }
}

/// `/topic [#room] [text|:]`: a first word starting with `#` is the room; the rest is
/// the new topic, `:` alone clears it, nothing shows it.
fn topic(args: &str) -> Result<Command, CommandError> {
    let (first, rest) = first_word(args);
    let (room, text) = if first.starts_with('#') {
        (Some(room(first)?), rest)
    } else {
        (None, args)
    };
    let set = match text {
        "" => None,
        clear if clear.trim_end() == ":" => Some(None),
        text => {
            check_text(text)?;
            Some(Some(text.to_owned()))
        }
    };
    Ok(Command::Topic { room, set })
}

/// `/history [#room|nick] [count] [before-id]`.
fn history(args: &str) -> Result<Command, CommandError> {
    let bad = || CommandError::Usage(usage("/history"));
    let mut words = args.split_whitespace().peekable();
    // Nicknames never start with a digit, so a number is never a target.
    let target = match words.next_if(|w| !w.starts_with(|c: char| c.is_ascii_digit())) {
        Some(w) if w.starts_with('#') => Some(Target::Room(room(w)?)),
        Some(w) => Some(Target::Nick(nick(w)?)),
        None => None,
    };
    let number = |what: Option<&str>| -> Result<Option<u64>, CommandError> {
        what.map(|w| w.parse::<u64>().map_err(|_| bad()))
            .transpose()
    };
    let count = number(words.next())?;
    let before = number(words.next())?;
    if words.next().is_some() || count == Some(0) {
        return Err(bad());
    }
    Ok(Command::History {
        target,
        count: count.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        before,
    })
}

impl Command {
    /// Parses one line (without its newline) from a client.
    pub fn parse(line: &str) -> Result<Command, CommandError> {
        if line.trim().is_empty() {
            return Err(CommandError::Empty);
        }
        let Some(body) = line.strip_prefix('/') else {
            check_text(line)?;
            return Ok(Command::Say(line.to_owned()));
        };
        if body.starts_with('/') {
            check_text(body)?;
            return Ok(Command::Say(body.to_owned()));
        }
        let (name, args) = first_word(body);
        let name = name.to_ascii_lowercase();
        let cmd = match name.as_str() {
            "join" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [r] => Command::Join {
                    room: room(r)?,
                    key: None,
                },
                // A key never starts with `#`: `/join #a #b` is a mistake, not a key.
                [r, key] if !key.starts_with('#') => {
                    check_text(key)?;
                    Command::Join {
                        room: room(r)?,
                        key: Some(key.to_owned()),
                    }
                }
                _ => return Err(CommandError::Usage(usage("/join"))),
            },
            "part" => {
                let (first, rest) = first_word(args);
                if first.starts_with('#') {
                    Command::Part {
                        room: Some(room(first)?),
                        reason: opt_text(rest)?,
                    }
                } else {
                    Command::Part {
                        room: None,
                        reason: opt_text(args)?,
                    }
                }
            }
            "rooms" if args.is_empty() => Command::Rooms,
            "who" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [] => Command::Who(None),
                [r] => Command::Who(Some(room(r)?)),
                _ => return Err(CommandError::Usage(usage("/who"))),
            },
            "msg" => {
                let (to, text) = first_word(args);
                if to.is_empty() || text.is_empty() {
                    return Err(CommandError::Usage(usage("/msg")));
                }
                check_text(text)?;
                Command::Msg {
                    to: nick(to)?,
                    text: text.to_owned(),
                }
            }
            "me" => match opt_text(args)? {
                Some(text) => Command::Me(text),
                None => return Err(CommandError::Usage(usage("/me"))),
            },
            "nick" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [n] => Command::Nick(nick(n)?),
                _ => return Err(CommandError::Usage(usage("/nick"))),
            },
            "quit" => Command::Quit(opt_text(args)?),
            "help" if args.is_empty() => Command::Help,
            "ping" => Command::Ping(opt_text(args)?),
            "register" | "password" => {
                // The whole rest of the line, inner spaces included, is the password.
                if args.is_empty() {
                    return Err(CommandError::Usage(usage(&format!("/{name}"))));
                }
                check_text(args)?;
                let password = Password::new(args);
                if name == "register" {
                    Command::Register(password)
                } else {
                    Command::Password(password)
                }
            }
            "history" => history(args)?,
            "away" => Command::Away(opt_text(args)?),
            "whois" | "whowas" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [n] if name == "whois" => Command::Whois(nick(n)?),
                [n] => Command::Whowas(nick(n)?),
                _ => return Err(CommandError::Usage(usage(&format!("/{name}")))),
            },
            "topic" => topic(args)?,
            "oper" => {
                // The rest of the line after the name, inner spaces included, is the
                // password.
                let (name, password) = first_word(args);
                if name.is_empty() || password.is_empty() {
                    return Err(CommandError::Usage(usage("/oper")));
                }
                check_text(args)?;
                Command::Oper {
                    name: name.to_owned(),
                    password: Password::new(password),
                }
            }
            "kill" => {
                let (who, reason) = first_word(args);
                if who.is_empty() {
                    return Err(CommandError::Usage(usage("/kill")));
                }
                Command::Kill {
                    nick: nick(who)?,
                    reason: opt_text(reason)?,
                }
            }
            "wallops" => match opt_text(args)? {
                Some(on) if on.eq_ignore_ascii_case("on") => Command::WallopsMode(true),
                Some(off) if off.eq_ignore_ascii_case("off") => Command::WallopsMode(false),
                Some(text) => Command::Wallops(text),
                None => return Err(CommandError::Usage(usage("/wallops"))),
            },
            "motd" if args.is_empty() => Command::Motd,
            "sban" => {
                let (target, rest) = first_word(args);
                if target.is_empty() {
                    return Err(CommandError::Usage(usage("/sban")));
                }
                check_text(args)?;
                let (word, after) = first_word(rest);
                let (duration, reason) = match parse_duration(word) {
                    Some(duration) => (Some(duration), after),
                    None => (None, rest),
                };
                Command::Sban {
                    target: target.to_owned(),
                    duration,
                    reason: opt_text(reason)?,
                }
            }
            "unsban" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [target] => {
                    check_text(target)?;
                    Command::Unsban(target.to_owned())
                }
                _ => return Err(CommandError::Usage(usage("/unsban"))),
            },
            "sbans" if args.is_empty() => Command::Sbans,
            "mode" => {
                check_text(args)?;
                let (room, rest) = optional_room(args)?;
                Command::Mode {
                    room,
                    changes: rest.split_whitespace().map(str::to_owned).collect(),
                }
            }
            "op" | "deop" | "voice" | "devoice" => {
                let (room, rest) = optional_room(args)?;
                match rest.split_whitespace().collect::<Vec<_>>()[..] {
                    [n] => Command::Grant {
                        room,
                        nick: nick(n)?,
                        status: if name.ends_with("op") {
                            Status::Operator
                        } else {
                            Status::Voice
                        },
                        give: !name.starts_with("de"),
                    },
                    _ => return Err(CommandError::Usage(usage(&format!("/{name}")))),
                }
            }
            "kick" => {
                let (room, rest) = optional_room(args)?;
                let (who, reason) = first_word(rest);
                if who.is_empty() {
                    return Err(CommandError::Usage(usage("/kick")));
                }
                Command::Kick {
                    room,
                    nick: nick(who)?,
                    reason: opt_text(reason)?,
                }
            }
            "ban" | "unban" => {
                check_text(args)?;
                let (room, rest) = optional_room(args)?;
                match (
                    name.as_str(),
                    &rest.split_whitespace().collect::<Vec<_>>()[..],
                ) {
                    ("ban", []) => Command::Ban { room, mask: None },
                    ("ban", [mask]) => Command::Ban {
                        room,
                        mask: Some((*mask).to_owned()),
                    },
                    ("unban", [mask]) => Command::Unban {
                        room,
                        mask: (*mask).to_owned(),
                    },
                    _ => return Err(CommandError::Usage(usage(&format!("/{name}")))),
                }
            }
            "invite" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [n] => Command::Invite {
                    nick: nick(n)?,
                    room: None,
                },
                [n, r] => Command::Invite {
                    nick: nick(n)?,
                    room: Some(room(r)?),
                },
                _ => return Err(CommandError::Usage(usage("/invite"))),
            },
            "rooms" | "help" | "motd" | "sbans" => {
                return Err(CommandError::Usage(usage(&format!("/{name}"))));
            }
            _ => return Err(CommandError::Unknown(name)),
        };
        Ok(cmd)
    }
}

/// The line a client sends for this command, without its newline.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn opt(f: &mut fmt::Formatter<'_>, text: &Option<String>) -> fmt::Result {
            match text {
                Some(t) => write!(f, " {t}"),
                None => Ok(()),
            }
        }
        match self {
            Command::Say(text) if text.starts_with('/') => write!(f, "/{text}"),
            Command::Say(text) => f.write_str(text),
            Command::Join { room, key } => {
                write!(f, "/join {room}")?;
                opt(f, key)
            }
            Command::Part { room, reason } => {
                f.write_str("/part")?;
                if let Some(room) = room {
                    write!(f, " {room}")?;
                }
                opt(f, reason)
            }
            Command::Rooms => f.write_str("/rooms"),
            Command::Who(None) => f.write_str("/who"),
            Command::Who(Some(room)) => write!(f, "/who {room}"),
            Command::Msg { to, text } => write!(f, "/msg {to} {text}"),
            Command::Me(text) => write!(f, "/me {text}"),
            Command::Nick(nick) => write!(f, "/nick {nick}"),
            Command::Quit(reason) => {
                f.write_str("/quit")?;
                opt(f, reason)
            }
            Command::Help => f.write_str("/help"),
            Command::Ping(token) => {
                f.write_str("/ping")?;
                opt(f, token)
            }
            Command::Register(password) => write!(f, "/register {}", password.expose()),
            Command::Password(password) => write!(f, "/password {}", password.expose()),
            Command::History {
                target,
                count,
                before,
            } => {
                f.write_str("/history")?;
                if let Some(target) = target {
                    write!(f, " {target}")?;
                }
                if let Some(count) = count {
                    write!(f, " {count}")?;
                }
                if let Some(before) = before {
                    // A before-id needs a count in front of it.
                    if count.is_none() {
                        write!(f, " {DEFAULT_HISTORY}")?;
                    }
                    write!(f, " {before}")?;
                }
                Ok(())
            }
            Command::Away(text) => {
                f.write_str("/away")?;
                opt(f, text)
            }
            Command::Whois(nick) => write!(f, "/whois {nick}"),
            Command::Whowas(nick) => write!(f, "/whowas {nick}"),
            Command::Topic { room, set } => {
                f.write_str("/topic")?;
                if let Some(room) = room {
                    write!(f, " {room}")?;
                }
                match set {
                    None => Ok(()),
                    Some(None) => f.write_str(" :"),
                    Some(Some(text)) => write!(f, " {text}"),
                }
            }
            Command::Oper { name, password } => write!(f, "/oper {name} {}", password.expose()),
            Command::Kill { nick, reason } => {
                write!(f, "/kill {nick}")?;
                opt(f, reason)
            }
            Command::Wallops(text) => write!(f, "/wallops {text}"),
            Command::WallopsMode(on) => write!(f, "/wallops {}", if *on { "on" } else { "off" }),
            Command::Motd => f.write_str("/motd"),
            Command::Sban {
                target,
                duration,
                reason,
            } => {
                write!(f, "/sban {target}")?;
                if let Some(duration) = duration {
                    write!(f, " {}", format_duration(*duration))?;
                }
                opt(f, reason)
            }
            Command::Unsban(target) => write!(f, "/unsban {target}"),
            Command::Sbans => f.write_str("/sbans"),
            Command::Mode { room, changes } => {
                f.write_str("/mode")?;
                if let Some(room) = room {
                    write!(f, " {room}")?;
                }
                changes.iter().try_for_each(|w| write!(f, " {w}"))
            }
            Command::Grant {
                room,
                nick,
                status,
                give,
            } => {
                let name = match status {
                    Status::Voice => "voice",
                    _ => "op",
                };
                write!(f, "/{}{name}", if *give { "" } else { "de" })?;
                if let Some(room) = room {
                    write!(f, " {room}")?;
                }
                write!(f, " {nick}")
            }
            Command::Kick { room, nick, reason } => {
                f.write_str("/kick")?;
                if let Some(room) = room {
                    write!(f, " {room}")?;
                }
                write!(f, " {nick}")?;
                opt(f, reason)
            }
            Command::Ban { room, mask } => {
                f.write_str("/ban")?;
                if let Some(room) = room {
                    write!(f, " {room}")?;
                }
                opt(f, mask)
            }
            Command::Unban { room, mask } => {
                f.write_str("/unban")?;
                if let Some(room) = room {
                    write!(f, " {room}")?;
                }
                write!(f, " {mask}")
            }
            Command::Invite { nick, room } => {
                write!(f, "/invite {nick}")?;
                if let Some(room) = room {
                    write!(f, " {room}")?;
                }
                Ok(())
            }
        }
    }
}

//! How a frame from the server is shown to a person: one line of plain text.
//!
//! Rendering is a pure function of the frame and a time zone, so it is tested without a
//! terminal. Events show the local time (`HH:MM`) and the room; joins, parts, quits,
//! kicks, renames, topic and mode changes are marked (`-->`, `<--`, `--`) so they stand
//! apart from messages; member lists show operators (`@`) first, then voiced members
//! (`+`); errors start with `!!` and lines the client does not understand with `??`.
//! Messages replayed from history start with `[history]` and keep their original time,
//! with the date when it is not today; in colour the whole line is dim, so that live
//! talk stands out.
//!
//! Everything that another user or the server wrote (message text, reasons, error text,
//! unknown lines) goes through [`escape_controls`], so a control character is shown as
//! `\x1b` and can never move the cursor, clear the screen or change colours. Nicknames
//! and room names need no escaping: [`chat_proto::Nick`] and [`chat_proto::Room`] only
//! hold printable ASCII.
//!
//! With colour ([`Renderer::new`] with `color`), the same text gets ANSI colours that the
//! client adds around already-escaped pieces: each nickname has a colour of its own
//! (the same in every client, from a hash of its case-folded spelling), your own nickname
//! is bold and underlined, a message that mentions your nickname is bold with the
//! sender's name in reverse video, times and membership events are dim, errors red.
//! Without colour the text is exactly what [`render`] gives, for scripts and `NO_COLOR`.

use chat_proto::text::escape_controls;
use chat_proto::{
    AccountStatus, CommandError, FrameError, LineError, Nick, ServerFrame, Timestamp,
};
use jiff::tz::TimeZone;
use std::fmt::Write as _;

/// The line that shows `frame`, with event times in `tz`, as plain text.
pub fn render(frame: &ServerFrame, tz: &TimeZone) -> String {
    Renderer::new(tz.clone(), false).frame(frame, None)
}

/// Renders frames in a time zone, plain or in colour.
#[derive(Debug, Clone)]
pub struct Renderer {
    /// Time zone in which event times are shown.
    time_zone: TimeZone,
    /// Whether to add ANSI colours.
    color: bool,
    /// Set while rendering history: today's date, so that times of other days show
    /// their date.
    dated: Option<jiff::civil::Date>,
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";

/// Foreground colours for nicknames: the basic and bright ones, without black, white
/// and grey, which vanish on some backgrounds.
const NICK_COLORS: [u8; 12] = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

/// The SGR colour of `nick`: the same for every spelling of it, in every client.
pub fn nick_color(nick: &Nick) -> u8 {
    // FNV-1a: stable across runs and platforms, unlike the standard library's hasher.
    let hash = nick.folded().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    NICK_COLORS[hash as usize % NICK_COLORS.len()]
}

/// Whether `text` names `nick` as a word of its own, ignoring ASCII case.
pub fn mentions(text: &str, nick: &Nick) -> bool {
    let is_nick_char = |c: char| c.is_ascii_alphanumeric() || "-[]\\`_^{|}".contains(c);
    let (text, nick) = (text.to_ascii_lowercase(), nick.folded());
    text.match_indices(&nick).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + nick.len()..].chars().next();
        !before.is_some_and(is_nick_char) && !after.is_some_and(is_nick_char)
    })
}

impl Renderer {
    /// A renderer showing times in `time_zone`, with ANSI colours if `color`.
    pub fn new(time_zone: TimeZone, color: bool) -> Renderer {
        Renderer {
            time_zone,
            color,
            dated: None,
        }
    }

    /// Whether this renderer adds colours.
    pub fn color(&self) -> bool {
        self.color
    }

    /// `text` between the SGR sequence `sgr` and a reset, when colours are on.
    fn paint(&self, sgr: &str, text: impl std::fmt::Display) -> String {
        if self.color {
            format!("{sgr}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn time(&self, t: &Timestamp) -> String {
        let zoned = t.to_zoned_datetime(self.time_zone.clone());
        let format = match self.dated {
            Some(today) if zoned.date() != today => "%Y-%m-%d %H:%M",
            _ => "%H:%M",
        };
        self.paint(DIM, zoned.strftime(format).to_string())
    }

    /// A date and time, unpainted (for inside a notice).
    fn when(&self, t: &Timestamp) -> String {
        t.to_zoned_datetime(self.time_zone.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    }

    /// Today, in the time zone of the times shown.
    fn today(&self) -> jiff::civil::Date {
        jiff::Timestamp::now()
            .to_zoned_datetime(self.time_zone.clone())
            .date()
    }

    /// A message from history, as on `today`: marked, with its original time (and date,
    /// if not `today`), and in colour dim as a whole, without the colours of live lines.
    fn history(&self, event: &ServerFrame, me: Option<&Nick>, today: jiff::civil::Date) -> String {
        let plain = Renderer {
            time_zone: self.time_zone.clone(),
            color: false,
            dated: Some(today),
        };
        self.paint(DIM, format!("[history] {}", plain.frame(event, me)))
    }

    /// A nickname in its colour; bold and underlined when it is `me`.
    fn nick(&self, nick: &Nick, me: Option<&Nick>) -> String {
        let mine = me.is_some_and(|me| me.folded() == nick.folded());
        let style = if mine { "1;4;" } else { "" };
        self.paint(&format!("\x1b[{style}{}m", nick_color(nick)), nick)
    }

    /// A whole line of a notice (joins, parts): dim.
    fn notice(&self, line: String) -> String {
        self.paint(DIM, line)
    }

    /// An error line (`!! ...`): red.
    pub fn error(&self, line: String) -> String {
        self.paint(RED, line)
    }

    /// A line the client did not understand (`?? ...`): yellow.
    fn strange(&self, line: String) -> String {
        self.paint(YELLOW, line)
    }

    /// `<nick> text` of a message or `* nick text` of an action, with the text
    /// highlighted when it mentions `me` and is from someone else.
    fn said(&self, from: &Nick, text: &str, me: Option<&Nick>, action: bool) -> String {
        let text = escape_controls(text);
        let mentioned = me.is_some_and(|me| me.folded() != from.folded() && mentions(&text, me));
        let name = if mentioned {
            self.paint(&format!("\x1b[7;{}m", nick_color(from)), from)
        } else {
            self.nick(from, me)
        };
        let text = if mentioned {
            self.paint(BOLD, &text)
        } else {
            text.into_owned()
        };
        if action {
            format!("* {name} {text}")
        } else {
            format!("<{name}> {text}")
        }
    }

    /// The line that shows `frame`; `me` is our nickname, to make our own messages and
    /// mentions of us stand out.
    pub fn frame(&self, frame: &ServerFrame, me: Option<&Nick>) -> String {
        let time = |t: &Timestamp| self.time(t);
        match frame {
            ServerFrame::NickPrompt => "-- the server asks for a nickname".to_owned(),
            ServerFrame::PassPrompt => "-- the server asks for this nickname's password".to_owned(),
            ServerFrame::History(event) => self.history(event, me, self.today()),
            ServerFrame::HistoryEnd { target, count } => {
                let s = if *count == 1 { "" } else { "s" };
                self.notice(format!(
                    "-- end of history of {target} ({count} message{s})"
                ))
            }
            ServerFrame::Account { nick, status } => {
                let what = match status {
                    AccountStatus::Registered => "is now registered to you",
                    AccountStatus::PasswordChanged => "has a new password",
                    AccountStatus::Identified => "is yours: password accepted",
                };
                self.notice(format!("-- {nick} {what}"))
            }
            ServerFrame::Welcome { nick, text } => {
                format!(
                    "-- {} (you are {})",
                    escape_controls(text),
                    self.nick(nick, Some(nick))
                )
            }
            ServerFrame::Message {
                room,
                from,
                time: t,
                text,
                ..
            } => format!("{} [{room}] {}", time(t), self.said(from, text, me, false)),
            ServerFrame::Action {
                room,
                from,
                time: t,
                text,
                ..
            } => format!("{} [{room}] {}", time(t), self.said(from, text, me, true)),
            ServerFrame::Private {
                from,
                to,
                time: t,
                text,
                ..
            } => {
                let text = escape_controls(text);
                let to_me =
                    me.is_some_and(|me| me.folded() == to.folded() && me.folded() != from.folded());
                let text = if to_me {
                    self.paint(BOLD, &text)
                } else {
                    text.into_owned()
                };
                format!(
                    "{} [pm] <{} -> {}> {text}",
                    time(t),
                    self.nick(from, me),
                    self.nick(to, me),
                )
            }
            ServerFrame::Join {
                room,
                nick,
                time: t,
                ..
            } => format!(
                "{} {}",
                time(t),
                self.notice(format!("[{room}] --> {nick} joined"))
            ),
            ServerFrame::Part {
                room,
                nick,
                time: t,
                reason,
                ..
            } => format!(
                "{} {}",
                time(t),
                self.notice(format!(
                    "[{room}] <-- {nick} left{}",
                    Reason(reason.as_deref())
                ))
            ),
            ServerFrame::Quit {
                room,
                nick,
                time: t,
                reason,
                ..
            } => format!(
                "{} {}",
                time(t),
                self.notice(format!(
                    "[{room}] <-- {nick} quit{}",
                    Reason(reason.as_deref())
                ))
            ),
            ServerFrame::Rename {
                room,
                old,
                new,
                time: t,
                ..
            } => match room {
                Some(room) => format!(
                    "{} {}",
                    time(t),
                    self.notice(format!("[{room}] -- {old} is now known as {new}"))
                ),
                None => format!(
                    "{} {}",
                    time(t),
                    self.notice(format!("-- {old} is now known as {new}"))
                ),
            },
            ServerFrame::Lagged { room, missed } => {
                let s = if *missed == 1 { "" } else { "s" };
                self.strange(format!("-- missed {missed} event{s} in {room}"))
            }
            ServerFrame::Current { room: Some(room) } => format!("-- now talking in {room}"),
            ServerFrame::Current { room: None } => {
                "-- now talking in no room (/join #room to talk)".to_owned()
            }
            ServerFrame::Members { room, members } => {
                // Operators first, then voiced members, each in the server's order.
                let mut members: Vec<_> = members.iter().collect();
                members.sort_by_key(|m| std::cmp::Reverse(m.status));
                let mut line = format!("-- in {room}:");
                for m in members {
                    let _ = write!(line, " {}{}", m.status.prefix(), self.nick(&m.nick, me));
                }
                line
            }
            ServerFrame::Rooms { rooms } if rooms.is_empty() => "-- rooms: none".to_owned(),
            ServerFrame::Rooms { rooms } => {
                let mut line = "-- rooms:".to_owned();
                for (room, members) in rooms {
                    let _ = write!(line, " {room} ({members})");
                }
                line
            }
            ServerFrame::Pong { token: Some(token) } => {
                format!("-- pong {}", escape_controls(token))
            }
            ServerFrame::Pong { token: None } => "-- pong".to_owned(),
            ServerFrame::Help { text } => format!("-- {}", escape_controls(text)),
            ServerFrame::Error { code, text } => self.error(format!(
                "!! {}: {}",
                escape_controls(code.as_str()),
                escape_controls(text)
            )),
            ServerFrame::Bye { reason } => format!("-- bye: {}", escape_controls(reason)),
            ServerFrame::Away {
                text: Some(text), ..
            } => self.notice(format!(
                "-- you are away: {} (/away to come back)",
                escape_controls(text)
            )),
            ServerFrame::Away { text: None, .. } => self.notice("-- you are back".to_owned()),
            ServerFrame::IsAway { nick, text } => {
                self.notice(format!("-- {nick} is away: {}", escape_controls(text)))
            }
            ServerFrame::Whois(w) => {
                let mut line = format!(
                    "-- {} connected {} over {}, idle {}",
                    w.nick,
                    self.when(&w.since),
                    if w.tls { "TLS" } else { "plain TCP" },
                    Idle(w.idle)
                );
                match &w.account {
                    Some(account) => {
                        let _ = write!(line, ", account {account}");
                    }
                    None => line.push_str(", no account"),
                }
                if w.oper {
                    line.push_str(", server operator");
                }
                if w.rooms.is_empty() {
                    line.push_str(", in no room");
                } else {
                    line.push_str(", in");
                    for (status, room) in &w.rooms {
                        let _ = write!(line, " {}{room}", status.prefix());
                    }
                }
                if let Some(away) = &w.away {
                    let _ = write!(line, ", away: {}", escape_controls(away));
                }
                self.notice(line)
            }
            ServerFrame::Whowas {
                nick,
                left,
                account,
            } => {
                let account = match account {
                    Some(account) => format!(" (account {account})"),
                    None => String::new(),
                };
                self.notice(format!("-- {nick} left {}{account}", self.when(left)))
            }
            ServerFrame::WhowasEnd { nick, count } => {
                let s = if *count == 1 { "" } else { "s" };
                self.notice(format!("-- end of whowas {nick} ({count} departure{s})"))
            }
            ServerFrame::Topic {
                room,
                nick,
                time: t,
                text,
                ..
            } => {
                let what = match text {
                    Some(text) => format!("set the topic: {}", escape_controls(text)),
                    None => "cleared the topic".to_owned(),
                };
                format!(
                    "{} {}",
                    time(t),
                    self.notice(format!("[{room}] -- {nick} {what}"))
                )
            }
            ServerFrame::TopicIs { room, topic: None } => {
                self.notice(format!("-- {room} has no topic"))
            }
            ServerFrame::TopicIs {
                room,
                topic: Some(topic),
            } => self.notice(format!(
                "-- topic of {room}: {} (set by {} at {})",
                escape_controls(&topic.text),
                topic.by,
                self.when(&topic.time)
            )),
            // Server operators and the message of the day.
            ServerFrame::Motd { text } => {
                self.notice(format!("-- motd: {}", escape_controls(text)))
            }
            ServerFrame::Oper { name } => self.notice(format!(
                "-- you are now the server operator {}",
                escape_controls(name)
            )),
            ServerFrame::Wallops {
                from,
                time: t,
                text,
            } => format!(
                "{} {}",
                time(t),
                self.notice(format!("!! wallops from {from}: {}", escape_controls(text)))
            ),
            ServerFrame::Killed { nick, reason } => self.notice(format!(
                "-- {nick} disconnected ({})",
                escape_controls(reason)
            )),
            ServerFrame::Sban {
                target,
                until,
                by,
                reason,
            } => {
                let mut line = format!("-- server ban on {}", escape_controls(target));
                match until {
                    Some(until) => {
                        let _ = write!(line, " until {}", self.when(until));
                    }
                    None => line.push_str(", permanent"),
                }
                let _ = write!(line, ", set by {by}");
                if let Some(reason) = reason {
                    let _ = write!(line, ": {}", escape_controls(reason));
                }
                self.notice(line)
            }
            ServerFrame::SbanEnd { count } => {
                let s = if *count == 1 { "" } else { "s" };
                self.notice(format!("-- end of server bans ({count} ban{s})"))
            }
            ServerFrame::Unsban { target } => self.notice(format!(
                "-- server ban on {} lifted",
                escape_controls(target)
            )),
            ServerFrame::WallopsMode { on } => self.notice(if *on {
                "-- you now receive operators' notices (wallops)".to_owned()
            } else {
                "-- you no longer receive operators' notices (wallops)".to_owned()
            }),
            // Room governance.
            ServerFrame::Mode {
                room,
                nick,
                time: t,
                changes,
                ..
            } => format!(
                "{} {}",
                time(t),
                self.notice(format!(
                    "[{room}] -- {nick} sets mode {}",
                    escape_controls(changes)
                ))
            ),
            ServerFrame::Modes { room, modes } if modes == "+" => {
                self.notice(format!("-- {room} has no modes"))
            }
            ServerFrame::Modes { room, modes } => {
                self.notice(format!("-- {room} modes: {}", escape_controls(modes)))
            }
            ServerFrame::Kick {
                room,
                nick,
                target,
                time: t,
                reason,
                ..
            } => {
                // Without a reason the server gives the kicker's nickname: not worth
                // repeating.
                let reason =
                    Reason(Some(reason.as_str()).filter(|r| !r.is_empty() && *r != nick.as_str()));
                let you = me.is_some_and(|me| me.folded() == target.folded());
                let line = if you {
                    // Ours stands out: the room is gone from our list.
                    self.paint(
                        BOLD,
                        format!("[{room}] <-- you were kicked by {nick}{reason}"),
                    )
                } else {
                    self.notice(format!(
                        "[{room}] <-- {target} was kicked by {nick}{reason}"
                    ))
                };
                format!("{} {line}", time(t))
            }
            ServerFrame::Invite {
                room,
                nick,
                target,
                time: t,
                ..
            } => {
                if me.is_some_and(|me| me.folded() == target.folded()) {
                    // Usually from a room we are not in: say how to accept.
                    format!(
                        "{} -- {} invites you to {room} (/join {room} to accept)",
                        time(t),
                        self.nick(nick, me)
                    )
                } else {
                    format!(
                        "{} {}",
                        time(t),
                        self.notice(format!("[{room}] -- {nick} invited {target}"))
                    )
                }
            }
            ServerFrame::Ban {
                room,
                mask,
                by,
                time: t,
            } => self.notice(format!(
                "-- ban in {room} on {}, set by {by} at {}",
                escape_controls(mask),
                self.when(t)
            )),
            ServerFrame::BanEnd { room, count } => {
                let s = if *count == 1 { "" } else { "s" };
                self.notice(format!("-- end of bans in {room} ({count} ban{s})"))
            }
        }
    }

    /// [`render_unparsed`], in colour if on.
    pub fn unparsed(&self, line: &str, error: &FrameError) -> String {
        self.strange(render_unparsed(line, error))
    }

    /// [`render_line_error`], in colour if on.
    pub fn line_error(&self, error: &LineError) -> String {
        self.error(render_line_error(error))
    }
}

/// The line that shows a line from the server that is not a valid frame: marked with
/// `??`, escaped, never dropped.
pub fn render_unparsed(line: &str, error: &FrameError) -> String {
    format!(
        "?? {} ({})",
        escape_controls(line),
        escape_controls(&error.to_string())
    )
}

/// The line that shows a line from the server the codec refused (too long, not UTF-8).
pub fn render_line_error(error: &LineError) -> String {
    format!("!! unreadable line from the server: {error}")
}

/// The line that shows a line the user typed and the client refused before sending it.
pub fn render_command_error(error: &CommandError) -> String {
    format!(
        "!! {}: {}",
        error.code(),
        escape_controls(&error.to_string())
    )
}

/// Seconds of idleness, readably: `42s`, `3m 5s`, `2h 7m`.
struct Idle(u64);

impl std::fmt::Display for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        match s {
            0..60 => write!(f, "{s}s"),
            60..3600 => write!(f, "{}m {}s", s / 60, s % 60),
            _ => write!(f, "{}h {}m", s / 3600, s % 3600 / 60),
        }
    }
}

/// ` (reason)` after a part, quit or kick, or nothing.
struct Reason<'a>(Option<&'a str>);

impl std::fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(reason) => write!(f, " ({})", escape_controls(reason)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::{ErrorCode, Nick, Room};

    fn utc(frame: &ServerFrame) -> String {
        render(frame, &TimeZone::UTC)
    }

    fn parse(line: &str) -> ServerFrame {
        ServerFrame::parse(line).expect("valid frame")
    }

    const T: &str = "2026-11-24T12:01:59.123Z";

    #[test]
    fn events_show_time_room_and_nick() {
        let cases = [
            (
                format!("MSG #general bob {T} 1 :hello"),
                "12:01 [#general] <bob> hello",
            ),
            (
                format!("ACTION #general bob {T} 1 :waves"),
                "12:01 [#general] * bob waves",
            ),
            (
                format!("PRIVMSG bob alice {T} 1 :hi"),
                "12:01 [pm] <bob -> alice> hi",
            ),
            (
                format!("JOIN #general bob {T} 1"),
                "12:01 [#general] --> bob joined",
            ),
            (
                format!("PART #rust bob {T} 1 :bored"),
                "12:01 [#rust] <-- bob left (bored)",
            ),
            (
                format!("PART #rust bob {T} 1"),
                "12:01 [#rust] <-- bob left",
            ),
            (
                format!("QUIT #general bob {T} 1 :bye all"),
                "12:01 [#general] <-- bob quit (bye all)",
            ),
            (
                format!("RENAME #general bob robert {T} 1"),
                "12:01 [#general] -- bob is now known as robert",
            ),
            (
                format!("RENAME * bob robert {T} 1"),
                "12:01 -- bob is now known as robert",
            ),
            (
                format!("TOPIC #rust alice {T} 1 :all about crabs"),
                "12:01 [#rust] -- alice set the topic: all about crabs",
            ),
            (
                format!("TOPIC #rust alice {T} 1"),
                "12:01 [#rust] -- alice cleared the topic",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(utc(&parse(&line)), want, "for {line:?}");
        }
    }

    #[test]
    fn room_governance_is_readable() {
        let cases = [
            (
                format!("MODE #rust alice {T} 2 :+o bob"),
                "12:01 [#rust] -- alice sets mode +o bob",
            ),
            (
                format!("MODE #rust alice {T} 2 :+ov-b bob carol eve!*@*"),
                "12:01 [#rust] -- alice sets mode +ov-b bob carol eve!*@*",
            ),
            (
                format!("MODE #rust alice {T} 2 :+mi"),
                "12:01 [#rust] -- alice sets mode +mi",
            ),
            ("MODES #rust :+ntl 50".to_owned(), "-- #rust modes: +ntl 50"),
            ("MODES #rust :+".to_owned(), "-- #rust has no modes"),
            (
                format!("KICK #rust alice bob {T} 3 :spam"),
                "12:01 [#rust] <-- bob was kicked by alice (spam)",
            ),
            // No reason given: the server's default, the kicker's name, is left out.
            (
                format!("KICK #rust alice bob {T} 3 :alice"),
                "12:01 [#rust] <-- bob was kicked by alice",
            ),
            (
                format!("INVITE #rust alice bob {T} 4"),
                "12:01 [#rust] -- alice invited bob",
            ),
            (
                "BAN #rust eve!*@* alice 2026-11-18T11:06:40.123Z".to_owned(),
                "-- ban in #rust on eve!*@*, set by alice at 2026-11-18 11:06",
            ),
            (
                "BAN #rust $a:eve alice 2026-11-18T11:06:40.123Z".to_owned(),
                "-- ban in #rust on $a:eve, set by alice at 2026-11-18 11:06",
            ),
            (
                "BANEND #rust 1".to_owned(),
                "-- end of bans in #rust (1 ban)",
            ),
            (
                "BANEND #rust 0".to_owned(),
                "-- end of bans in #rust (0 bans)",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(utc(&parse(&line)), want, "for {line:?}");
        }
    }

    #[test]
    fn kicks_and_invitations_of_you_say_so() {
        let bob = Nick::new("Bob").unwrap();
        let as_bob =
            |line: &str| Renderer::new(TimeZone::UTC, false).frame(&parse(line), Some(&bob));
        assert_eq!(
            as_bob(&format!("KICK #rust alice bob {T} 3 :spam")),
            "12:01 [#rust] <-- you were kicked by alice (spam)"
        );
        assert_eq!(
            as_bob(&format!("INVITE #rust alice bob {T} 4")),
            "12:01 -- alice invites you to #rust (/join #rust to accept)"
        );
        // Someone else's, seen by bob as a member of the room.
        assert_eq!(
            as_bob(&format!("KICK #rust alice carol {T} 5 :bye")),
            "12:01 [#rust] <-- carol was kicked by alice (bye)"
        );
        assert_eq!(
            as_bob(&format!("INVITE #rust alice carol {T} 6")),
            "12:01 [#rust] -- alice invited carol"
        );
    }

    #[test]
    fn operator_frames_and_the_motd_are_readable() {
        let cases = [
            ("MOTD :be nice".to_owned(), "-- motd: be nice"),
            (
                "OPER :root".to_owned(),
                "-- you are now the server operator root",
            ),
            (
                format!("WALLOPS alice {T} :restart at noon"),
                "12:01 !! wallops from alice: restart at noon",
            ),
            (
                "KILLED bob :killed by alice: spam".to_owned(),
                "-- bob disconnected (killed by alice: spam)",
            ),
            (
                "WALLOPSMODE on".to_owned(),
                "-- you now receive operators' notices (wallops)",
            ),
            (
                "SBAN 192.0.2.0/24 * root :spam".to_owned(),
                "-- server ban on 192.0.2.0/24, permanent, set by root: spam",
            ),
            ("SBANEND 1".to_owned(), "-- end of server bans (1 ban)"),
            (
                "UNSBAN eve!*@*".to_owned(),
                "-- server ban on eve!*@* lifted",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(utc(&parse(&line)), want, "for {line:?}");
        }
    }

    #[test]
    fn replies_and_errors() {
        let cases = [
            ("NICK", "-- the server asks for a nickname"),
            (
                "WELCOME alice :Welcome to the chat, alice!",
                "-- Welcome to the chat, alice! (you are alice)",
            ),
            ("LAGGED #general 12", "-- missed 12 events in #general"),
            ("LAGGED #general 1", "-- missed 1 event in #general"),
            ("CURRENT #rust", "-- now talking in #rust"),
            (
                "CURRENT *",
                "-- now talking in no room (/join #room to talk)",
            ),
            ("MEMBERS #general alice bob", "-- in #general: alice bob"),
            (
                "MEMBERS #general bob @alice +carol dave @eve",
                "-- in #general: @alice @eve +carol bob dave",
            ),
            (
                "ROOMS #general=2 #rust=1",
                "-- rooms: #general (2) #rust (1)",
            ),
            ("ROOMS", "-- rooms: none"),
            ("PONG :abc", "-- pong abc"),
            ("PONG", "-- pong"),
            (
                "HELP :/join #room  join a room",
                "-- /join #room  join a room",
            ),
            (
                "ERR NICK_TAKEN :nickname taken",
                "!! NICK_TAKEN: nickname taken",
            ),
            ("ERR SOMETHING_NEW :later", "!! SOMETHING_NEW: later"),
            (
                "ERR CHANOP_NEEDED :you are not an operator of #rust",
                "!! CHANOP_NEEDED: you are not an operator of #rust",
            ),
            ("ERR BAD_KEY :wrong key", "!! BAD_KEY: wrong key"),
            ("BYE :server shutting down", "-- bye: server shutting down"),
            (
                "AWAY alice :gone fishing",
                "-- you are away: gone fishing (/away to come back)",
            ),
            ("AWAY alice", "-- you are back"),
            ("ISAWAY bob :at lunch", "-- bob is away: at lunch"),
            (
                "WHOIS bob 2026-11-18T11:06:40.123Z 75 tls bob user @#general #ops +#rust \
                 :at lunch",
                "-- bob connected 2026-11-18 11:06 over TLS, idle 1m 15s, account bob, \
                 in @#general #ops +#rust, away: at lunch",
            ),
            (
                "WHOIS carol 2026-11-18T11:06:40.123Z 7300 plain * oper",
                "-- carol connected 2026-11-18 11:06 over plain TCP, idle 2h 1m, no account, \
                 server operator, in no room",
            ),
            (
                "WHOWAS dave 2026-11-18T11:06:40.123Z dave",
                "-- dave left 2026-11-18 11:06 (account dave)",
            ),
            (
                "WHOWAS dave 2026-11-18T11:06:40.123Z *",
                "-- dave left 2026-11-18 11:06",
            ),
            ("WHOWASEND dave 1", "-- end of whowas dave (1 departure)"),
            (
                "TOPICIS #rust alice 2026-11-18T11:06:40.123Z :crabs \x1b[2J only",
                "-- topic of #rust: crabs \\x1b[2J only (set by alice at 2026-11-18 11:06)",
            ),
            ("TOPICIS #rust", "-- #rust has no topic"),
        ];
        for (line, want) in cases {
            assert_eq!(utc(&parse(line)), want, "for {line:?}");
        }
    }

    #[test]
    fn history_keeps_its_time_and_shows_the_date_of_other_days() {
        let renderer = Renderer::new(TimeZone::UTC, false);
        let today: jiff::civil::Date = "2026-11-24".parse().unwrap();
        let event = |line: &str| match parse(&format!("HISTORY {line}")) {
            ServerFrame::History(event) => *event,
            other => panic!("not history: {other:?}"),
        };
        let earlier = event("MSG #general bob 2026-11-20T09:05:00.000Z 7 :old news");
        assert_eq!(
            renderer.history(&earlier, None, today),
            "[history] 2026-11-20 09:05 [#general] <bob> old news"
        );
        let same_day = event(&format!("ACTION #general bob {T} 8 :waves"));
        assert_eq!(
            renderer.history(&same_day, None, today),
            "[history] 12:01 [#general] * bob waves"
        );
        let private = event("PRIVMSG bob alice 2025-01-02T03:04:05.000Z 9 :psst");
        assert_eq!(
            renderer.history(&private, None, today),
            "[history] 2025-01-02 03:04 [pm] <bob -> alice> psst"
        );
        assert_eq!(
            utc(&parse("HISTORYEND #general 2")),
            "-- end of history of #general (2 messages)"
        );
        // Whatever today is, a history line says so and keeps its time.
        let shown = utc(&ServerFrame::History(Box::new(earlier.clone())));
        assert!(shown.starts_with("[history] "), "{shown}");
        assert!(shown.contains("09:05 [#general] <bob> old news"), "{shown}");
        // Live lines never show a date.
        assert_eq!(utc(&earlier), "09:05 [#general] <bob> old news");
    }

    #[test]
    fn history_is_dim_as_a_whole_in_colour() {
        let renderer = Renderer::new(TimeZone::UTC, true);
        let today: jiff::civil::Date = "2026-11-24".parse().unwrap();
        let event = parse(&format!("MSG #general bob {T} 1 :hi alice"));
        let me = Nick::new("alice").unwrap();
        let shown = renderer.history(&event, Some(&me), today);
        assert_eq!(
            shown,
            format!("{DIM}[history] 12:01 [#general] <bob> hi alice{RESET}"),
            "one dim span, no nick colours or mention highlight inside"
        );
    }

    #[test]
    fn local_time_zone_is_used() {
        let tz = TimeZone::fixed(jiff::tz::offset(2));
        let frame = parse(&format!("MSG #general bob {T} 1 :hello"));
        assert_eq!(render(&frame, &tz), "14:01 [#general] <bob> hello");
    }

    #[test]
    fn control_characters_from_others_are_escaped() {
        let time: Timestamp = T.parse().unwrap();
        let (room, bob) = (Room::general(), Nick::new("bob").unwrap());
        let evil = "\x1b[2J\x1b[31mred\x07\r\u{202e}txt".to_owned();
        let frames = [
            ServerFrame::Message {
                room: room.clone(),
                from: bob.clone(),
                time,
                id: 1,
                text: evil.clone(),
            },
            ServerFrame::Action {
                room: room.clone(),
                from: bob.clone(),
                time,
                id: 1,
                text: evil.clone(),
            },
            ServerFrame::Private {
                from: bob.clone(),
                to: bob.clone(),
                time,
                id: 1,
                text: evil.clone(),
            },
            ServerFrame::Part {
                room: room.clone(),
                nick: bob.clone(),
                time,
                id: 1,
                reason: Some(evil.clone()),
            },
            ServerFrame::Quit {
                room: room.clone(),
                nick: bob.clone(),
                time,
                id: 1,
                reason: Some(evil.clone()),
            },
            ServerFrame::Welcome {
                nick: bob.clone(),
                text: evil.clone(),
            },
            ServerFrame::Pong {
                token: Some(evil.clone()),
            },
            ServerFrame::Help { text: evil.clone() },
            ServerFrame::Error {
                code: ErrorCode::Other("X\x1bY".into()),
                text: evil.clone(),
            },
            ServerFrame::Bye {
                reason: evil.clone(),
            },
            ServerFrame::Mode {
                room: room.clone(),
                nick: bob.clone(),
                time,
                id: 1,
                changes: evil.clone(),
            },
            ServerFrame::Modes {
                room: room.clone(),
                modes: evil.clone(),
            },
            ServerFrame::Kick {
                room: room.clone(),
                nick: bob.clone(),
                target: bob.clone(),
                time,
                id: 1,
                reason: evil.clone(),
            },
            ServerFrame::Ban {
                room: room.clone(),
                mask: evil.clone(),
                by: bob.clone(),
                time,
            },
        ];
        for frame in &frames {
            let shown = utc(frame);
            assert!(
                chat_proto::text::first_forbidden(&shown).is_none(),
                "{shown:?} from {frame:?}"
            );
            assert!(
                shown.contains("\\x1b[2J\\x1b[31mred\\x07\\x0d\\u{202e}txt"),
                "{shown:?}"
            );
        }
        assert_eq!(
            utc(&frames[0]),
            "12:01 [#general] <bob> \\x1b[2J\\x1b[31mred\\x07\\x0d\\u{202e}txt"
        );
    }

    #[test]
    fn unparsed_lines_are_shown_escaped() {
        let line = "WHAT\x1b[2J is this";
        let error = ServerFrame::parse(line).unwrap_err();
        let shown = render_unparsed(line, &error);
        assert!(shown.starts_with("?? WHAT\\x1b[2J is this ("), "{shown}");
        assert!(chat_proto::text::first_forbidden(&shown).is_none());

        let line = "MSG #general bob notatime :hi";
        let shown = render_unparsed(line, &ServerFrame::parse(line).unwrap_err());
        assert!(
            shown.starts_with("?? MSG #general bob notatime :hi ("),
            "{shown}"
        );
    }

    #[test]
    fn local_errors() {
        assert_eq!(
            render_line_error(&LineError::TooLong { limit: 10 }),
            "!! unreadable line from the server: line longer than 10 bytes"
        );
        let error = chat_proto::Command::parse("/join nohash").unwrap_err();
        assert!(render_command_error(&error).starts_with("!! ROOM_INVALID: "));
    }

    fn colored(frame: &ServerFrame, me: &str) -> String {
        let me = Nick::new(me).unwrap();
        Renderer::new(TimeZone::UTC, true).frame(frame, Some(&me))
    }

    /// `s` without its SGR sequences.
    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(at) = rest.find("\x1b[") {
            out.push_str(&rest[..at]);
            let tail = &rest[at + 2..];
            let end = tail.find('m').expect("an SGR sequence ends with m");
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn colours_only_wrap_the_plain_text() {
        let lines = [
            format!("MSG #general bob {T} 1 :hello alice"),
            format!("MSG #general alice {T} 1 :hello bob"),
            format!("ACTION #general bob {T} 1 :waves at Alice"),
            format!("PRIVMSG bob alice {T} 1 :psst"),
            format!("JOIN #general bob {T} 1"),
            format!("QUIT #general bob {T} 1 :gone"),
            "MEMBERS #general alice @bob +carol".to_owned(),
            format!("MODE #general bob {T} 1 :+o alice"),
            format!("KICK #general bob alice {T} 1 :spam"),
            format!("KICK #general alice bob {T} 1 :spam"),
            format!("INVITE #rust bob alice {T} 1"),
            format!("INVITE #general alice bob {T} 1"),
            "ERR USAGE :usage: /join #room".to_owned(),
            "WELCOME alice :hi".to_owned(),
        ];
        let alice = Nick::new("alice").unwrap();
        let plain = Renderer::new(TimeZone::UTC, false);
        for line in lines {
            let frame = parse(&line);
            let shown = colored(&frame, "alice");
            assert!(shown.contains('\x1b'), "{shown:?}");
            assert_eq!(
                strip(&shown),
                plain.frame(&frame, Some(&alice)),
                "for {line:?}"
            );
        }
    }

    #[test]
    fn escaped_text_stays_escaped_in_colour() {
        let frame = parse(&format!("MSG #general bob {T} 1 :a\\x1b[2J alice"));
        let evil = ServerFrame::Message {
            room: Room::general(),
            from: Nick::new("bob").unwrap(),
            time: T.parse().unwrap(),
            id: 1,
            text: "\x1b[2J alice".into(),
        };
        let shown = colored(&evil, "alice");
        assert!(shown.contains("\\x1b[2J alice"), "{shown:?}");
        assert!(!shown.contains("\x1b[2J"), "{shown:?}");
        assert!(strip(&colored(&frame, "alice")).ends_with("<bob> a\\x1b[2J alice"));
    }

    #[test]
    fn nick_colours_are_stable_and_case_blind() {
        let bob = Nick::new("bob").unwrap();
        assert_eq!(nick_color(&bob), nick_color(&Nick::new("BOB").unwrap()));
        // The same in every run and every client: a fixed hash, not a random one.
        assert_eq!(nick_color(&bob), 93);
        assert_eq!(nick_color(&Nick::new("alice").unwrap()), 96);
        let colours: std::collections::BTreeSet<u8> = ["alice", "bob", "carol", "dave", "eve"]
            .iter()
            .map(|n| nick_color(&Nick::new(n).unwrap()))
            .collect();
        assert!(colours.len() > 1, "{colours:?}");
    }

    #[test]
    fn own_messages_and_mentions_stand_out() {
        let mine = colored(&parse(&format!("MSG #general alice {T} 1 :hi")), "alice");
        assert!(
            mine.contains("\x1b[1;4;"),
            "own nick bold+underlined: {mine:?}"
        );
        let mention = colored(
            &parse(&format!("MSG #general bob {T} 1 :hi Alice!")),
            "alice",
        );
        assert!(mention.contains("\x1b[7;"), "sender reversed: {mention:?}");
        assert!(
            mention.contains("\x1b[1mhi Alice!"),
            "text bold: {mention:?}"
        );
        let other = colored(
            &parse(&format!("MSG #general bob {T} 1 :hi malice")),
            "alice",
        );
        assert!(
            !other.contains("\x1b[7;") && !other.contains("\x1b[1m"),
            "{other:?}"
        );
        // Our own message naming ourselves is not a mention.
        let own = colored(
            &parse(&format!("MSG #general alice {T} 1 :alice here")),
            "alice",
        );
        assert!(!own.contains("\x1b[7;"), "{own:?}");
    }

    #[test]
    fn mentions_are_whole_words() {
        let alice = Nick::new("alice").unwrap();
        assert!(mentions("alice: hi", &alice));
        assert!(mentions("hi ALICE", &alice));
        assert!(mentions("(alice)", &alice));
        assert!(!mentions("malice", &alice));
        assert!(!mentions("alice_", &alice));
        assert!(!mentions("alice2", &alice));
        assert!(mentions("bob, alice", &alice));
    }
}

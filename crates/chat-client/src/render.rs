//! How a frame from the server is shown to a person: one line of plain text.
//!
//! Rendering is a pure function of the frame and a time zone, so it is tested without a
//! terminal. Events show the local time (`HH:MM`) and the room; joins, parts, quits and
//! renames are marked (`-->`, `<--`, `--`) so they stand apart from messages; errors
//! start with `!!` and lines the client does not understand with `??`.
//!
//! Everything that another user or the server wrote (message text, reasons, error text,
//! unknown lines) goes through [`escape_controls`], so a control character is shown as
//! `\x1b` and can never move the cursor, clear the screen or change colours. Nicknames
//! and room names need no escaping: [`chat_proto::Nick`] and [`chat_proto::Room`] only
//! hold printable ASCII.

use chat_proto::text::escape_controls;
use chat_proto::{CommandError, FrameError, LineError, ServerFrame, Timestamp};
use jiff::tz::TimeZone;
use std::fmt::Write as _;

/// The line that shows `frame`, with event times in `tz`.
pub fn render(frame: &ServerFrame, tz: &TimeZone) -> String {
    let time = |t: &Timestamp| {
        t.to_zoned_datetime(tz.clone())
            .strftime("%H:%M")
            .to_string()
    };
    match frame {
        ServerFrame::NickPrompt => "-- the server asks for a nickname".to_owned(),
        ServerFrame::Welcome { nick, text } => {
            format!("-- {} (you are {nick})", escape_controls(text))
        }
        ServerFrame::Message {
            room,
            from,
            time: t,
            text,
        } => format!("{} [{room}] <{from}> {}", time(t), escape_controls(text)),
        ServerFrame::Action {
            room,
            from,
            time: t,
            text,
        } => format!("{} [{room}] * {from} {}", time(t), escape_controls(text)),
        ServerFrame::Private {
            from,
            to,
            time: t,
            text,
        } => format!(
            "{} [pm] <{from} -> {to}> {}",
            time(t),
            escape_controls(text)
        ),
        ServerFrame::Join {
            room,
            nick,
            time: t,
        } => format!("{} [{room}] --> {nick} joined", time(t)),
        ServerFrame::Part {
            room,
            nick,
            time: t,
            reason,
        } => format!("{} [{room}] <-- {nick} left{}", time(t), Reason(reason)),
        ServerFrame::Quit {
            room,
            nick,
            time: t,
            reason,
        } => format!("{} [{room}] <-- {nick} quit{}", time(t), Reason(reason)),
        ServerFrame::Rename {
            room,
            old,
            new,
            time: t,
        } => match room {
            Some(room) => format!("{} [{room}] -- {old} is now known as {new}", time(t)),
            None => format!("{} -- {old} is now known as {new}", time(t)),
        },
        ServerFrame::Lagged { room, missed } => {
            let s = if *missed == 1 { "" } else { "s" };
            format!("-- missed {missed} event{s} in {room}")
        }
        ServerFrame::Current { room: Some(room) } => format!("-- now talking in {room}"),
        ServerFrame::Current { room: None } => {
            "-- now talking in no room (/join #room to talk)".to_owned()
        }
        ServerFrame::Members { room, nicks } => {
            let mut line = format!("-- in {room}:");
            for nick in nicks {
                let _ = write!(line, " {nick}");
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
        ServerFrame::Pong { token: Some(token) } => format!("-- pong {}", escape_controls(token)),
        ServerFrame::Pong { token: None } => "-- pong".to_owned(),
        ServerFrame::Help { text } => format!("-- {}", escape_controls(text)),
        ServerFrame::Error { code, text } => format!(
            "!! {}: {}",
            escape_controls(code.as_str()),
            escape_controls(text)
        ),
        ServerFrame::Bye { reason } => format!("-- bye: {}", escape_controls(reason)),
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

/// ` (reason)` after a part or quit, or nothing.
struct Reason<'a>(&'a Option<String>);

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
                format!("MSG #general bob {T} :hello"),
                "12:01 [#general] <bob> hello",
            ),
            (
                format!("ACTION #general bob {T} :waves"),
                "12:01 [#general] * bob waves",
            ),
            (
                format!("PRIVMSG bob alice {T} :hi"),
                "12:01 [pm] <bob -> alice> hi",
            ),
            (
                format!("JOIN #general bob {T}"),
                "12:01 [#general] --> bob joined",
            ),
            (
                format!("PART #rust bob {T} :bored"),
                "12:01 [#rust] <-- bob left (bored)",
            ),
            (format!("PART #rust bob {T}"), "12:01 [#rust] <-- bob left"),
            (
                format!("QUIT #general bob {T} :bye all"),
                "12:01 [#general] <-- bob quit (bye all)",
            ),
            (
                format!("RENAME #general bob robert {T}"),
                "12:01 [#general] -- bob is now known as robert",
            ),
            (
                format!("RENAME * bob robert {T}"),
                "12:01 -- bob is now known as robert",
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
            ("BYE :server shutting down", "-- bye: server shutting down"),
        ];
        for (line, want) in cases {
            assert_eq!(utc(&parse(line)), want, "for {line:?}");
        }
    }

    #[test]
    fn local_time_zone_is_used() {
        let tz = TimeZone::fixed(jiff::tz::offset(2));
        let frame = parse(&format!("MSG #general bob {T} :hello"));
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
                text: evil.clone(),
            },
            ServerFrame::Action {
                room: room.clone(),
                from: bob.clone(),
                time,
                text: evil.clone(),
            },
            ServerFrame::Private {
                from: bob.clone(),
                to: bob.clone(),
                time,
                text: evil.clone(),
            },
            ServerFrame::Part {
                room: room.clone(),
                nick: bob.clone(),
                time,
                reason: Some(evil.clone()),
            },
            ServerFrame::Quit {
                room: room.clone(),
                nick: bob.clone(),
                time,
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
}

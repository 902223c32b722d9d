//! What to do with a line the user typed: send it, refuse it with a message, or skip it.
//!
//! Lines are checked with [`Command::parse`], the same parser the server uses, so a
//! mistake (a room without `#`, a control character) is shown at once without a round
//! trip. A command this version does not know is still sent, so that a newer server's
//! commands work; the server answers it either way.

use crate::render::render_command_error;
use chat_proto::text::first_forbidden;
use chat_proto::{Command, CommandError};

/// The client's decision about one typed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Typed {
    /// An empty line: nothing to send.
    Nothing,
    /// Send `line` (without newline); `quit` if it is `/quit`, after which the server
    /// says `BYE`.
    Send {
        /// The line for the wire.
        line: String,
        /// Whether this is `/quit`.
        quit: bool,
    },
    /// Not sent; the rendered line explains why.
    Refused(String),
}

/// Decides what to do with `line`, typed by the user (without its newline).
pub(crate) fn classify(line: &str) -> Typed {
    match Command::parse(line) {
        Ok(command) => Typed::Send {
            quit: matches!(command, Command::Quit(_)),
            line: command.to_string(),
        },
        Err(CommandError::Empty) => Typed::Nothing,
        Err(CommandError::Unknown(_)) if first_forbidden(line).is_none() => Typed::Send {
            line: line.to_owned(),
            quit: false,
        },
        Err(e) => Typed::Refused(render_command_error(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(line: &str) -> Typed {
        Typed::Send {
            line: line.to_owned(),
            quit: false,
        }
    }

    #[test]
    fn messages_and_commands() {
        assert_eq!(classify("hello"), send("hello"));
        assert_eq!(classify("//etc/passwd"), send("//etc/passwd"));
        assert_eq!(classify("/join #rust"), send("/join #rust"));
        assert_eq!(classify("/me  waves"), send("/me waves"));
        assert_eq!(classify("/ping"), send("/ping"));
        assert_eq!(
            classify("/quit see you"),
            Typed::Send {
                line: "/quit see you".into(),
                quit: true
            }
        );
        assert_eq!(
            classify("/QUIT"),
            Typed::Send {
                line: "/quit".into(),
                quit: true
            }
        );
    }

    #[test]
    fn blank_lines_are_skipped() {
        assert_eq!(classify(""), Typed::Nothing);
        assert_eq!(classify("   "), Typed::Nothing);
    }

    #[test]
    fn unknown_commands_go_to_the_server() {
        assert_eq!(classify("/topic hello"), send("/topic hello"));
    }

    #[test]
    fn mistakes_are_refused_locally() {
        let Typed::Refused(shown) = classify("/join rust") else {
            panic!("a room without # is refused")
        };
        assert!(shown.starts_with("!! ROOM_INVALID: "), "{shown}");
        let Typed::Refused(shown) = classify("red \x1b[31m") else {
            panic!("control characters are refused")
        };
        assert!(shown.starts_with("!! CONTROL_CHARS: "), "{shown}");
        assert!(first_forbidden(&shown).is_none(), "{shown}");
        assert!(matches!(classify("/bogus\x07"), Typed::Refused(_)));
        assert!(matches!(classify("/msg bob"), Typed::Refused(_)));
    }
}

//! What to do with a line the user typed: send it, refuse it with a message, or skip it.
//!
//! Lines are checked with [`Command::parse`], the same parser the server uses, so a
//! mistake (a room without `#`, a control character) is shown at once without a round
//! trip. A command this version does not know is still sent, so that a newer server's
//! commands work; the server answers it either way.
//!
//! `/register` and `/password` carry a password: over a connection that is neither TLS
//! nor local they are not sent at all, so the password never crosses the network in
//! clear text (the server would refuse them there anyway, but only after reading them).

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

/// Decides what to do with `line`, typed by the user (without its newline), on a
/// connection that may (`secure`) or may not carry a password.
pub(crate) fn classify(line: &str, secure: bool) -> Typed {
    match Command::parse(line) {
        Ok(Command::Register(_) | Command::Password(_)) if !secure => {
            Typed::Refused(render_insecure(line))
        }
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

/// Why a command with a password was not sent; names the command, never the password.
fn render_insecure(line: &str) -> String {
    let name = line.split_whitespace().next().unwrap_or_default();
    format!(
        "!! not sent: {} would send your password unencrypted over the network; connect with --tls",
        name.to_ascii_lowercase()
    )
}

/// Whether `line` is a command that carries a password (`/register`, `/password`), and
/// so must never be kept in the input history nor shown as typed.
pub(crate) fn carries_password(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('/') else {
        return false;
    };
    let name = rest.split_whitespace().next().unwrap_or_default();
    name.eq_ignore_ascii_case("register") || name.eq_ignore_ascii_case("password")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_secure(line: &str) -> Typed {
        classify(line, true)
    }

    fn send(line: &str) -> Typed {
        Typed::Send {
            line: line.to_owned(),
            quit: false,
        }
    }

    #[test]
    fn messages_and_commands() {
        assert_eq!(classify_secure("hello"), send("hello"));
        assert_eq!(classify_secure("//etc/passwd"), send("//etc/passwd"));
        assert_eq!(classify_secure("/join #rust"), send("/join #rust"));
        assert_eq!(classify_secure("/me  waves"), send("/me waves"));
        assert_eq!(classify_secure("/ping"), send("/ping"));
        assert_eq!(
            classify_secure("/quit see you"),
            Typed::Send {
                line: "/quit see you".into(),
                quit: true
            }
        );
        assert_eq!(
            classify_secure("/QUIT"),
            Typed::Send {
                line: "/quit".into(),
                quit: true
            }
        );
    }

    #[test]
    fn passwords_go_only_over_secure_connections() {
        assert_eq!(
            classify("/register hunter2hunter2", true),
            send("/register hunter2hunter2")
        );
        for line in ["/register hunter2hunter2", "/PASSWORD n3w-s3cret!"] {
            let Typed::Refused(shown) = classify(line, false) else {
                panic!("{line} is not sent in the clear")
            };
            assert!(shown.contains("--tls"), "{shown}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("s3cret"),
                "{shown}"
            );
        }
        // Other commands, and a message that only looks like one, are sent.
        assert_eq!(classify("hello", false), send("hello"));
        assert_eq!(classify("//register x", false), send("//register x"));
    }

    #[test]
    fn lines_with_passwords_are_recognised() {
        assert!(carries_password("/register secret"));
        assert!(carries_password("/Password secret"));
        assert!(carries_password("/register"));
        assert!(!carries_password("//register secret"));
        assert!(!carries_password("/registered"));
        assert!(!carries_password("hello /register"));
    }

    #[test]
    fn blank_lines_are_skipped() {
        assert_eq!(classify_secure(""), Typed::Nothing);
        assert_eq!(classify_secure("   "), Typed::Nothing);
    }

    #[test]
    fn unknown_commands_go_to_the_server() {
        assert_eq!(classify_secure("/topic hello"), send("/topic hello"));
    }

    #[test]
    fn mistakes_are_refused_locally() {
        let Typed::Refused(shown) = classify_secure("/join rust") else {
            panic!("a room without # is refused")
        };
        assert!(shown.starts_with("!! ROOM_INVALID: "), "{shown}");
        let Typed::Refused(shown) = classify_secure("red \x1b[31m") else {
            panic!("control characters are refused")
        };
        assert!(shown.starts_with("!! CONTROL_CHARS: "), "{shown}");
        assert!(first_forbidden(&shown).is_none(), "{shown}");
        assert!(matches!(classify_secure("/bogus\x07"), Typed::Refused(_)));
        assert!(matches!(classify_secure("/msg bob"), Typed::Refused(_)));
    }
}

//! IRC as a bench client reads it (`--protocol irc`): the server's lines cut into
//! source, command and parameters without copying, and what they mean to the bench.
//!
//! A client registers with `NICK` and `USER` and waits for `001`; joins with `JOIN` and
//! knows it is in by the `PONG` of a `PING` sent behind it (the server answers in
//! order); says a bench message as `PRIVMSG <room> :<text>`, which the others receive as
//! `:nick!user@host PRIVMSG <room> :<text>`. No capability is asked for: ngIRCd and the
//! server's IRC door both work without, and without `echo-message` a sender does not
//! get its own messages back. The server's IRC door tells a client that fell behind
//! with `NOTICE <me> :You missed <n> messages in <room> ...` (the native `LAGGED`);
//! other servers drop such a client, or say nothing.
//!
//! The hot path ([`classify`]) looks only at the command and, for `PRIVMSG`, cuts the
//! source's nickname and the trailing text; nothing is allocated.

use crate::client::Refusal;
use crate::message::{Frame, find_trailing, parse_u64};

/// The start of the server's notice to a client that fell behind.
const MISSED: &[u8] = b"You missed ";

/// `422`, "MOTD File is missing": the end of a welcome, not a failure, though it is
/// numbered among the errors.
const NO_MOTD: u16 = 422;

/// An IRC line cut into the parts the bench reads, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// The source's nickname (or server name), without `!user@host`; empty if none.
    pub(crate) from: &'a [u8],
    /// Whether the source is a user (`nick!user@host`) rather than a server.
    pub(crate) from_user: bool,
    pub(crate) command: &'a [u8],
    /// Every parameter but a trailing one, space-separated.
    middle: &'a [u8],
    /// The parameter after ` :`.
    trailing: Option<&'a [u8]>,
}

impl<'a> Line<'a> {
    /// Cuts `line` (with or without its `\r`); `None` for an empty one.
    pub(crate) fn cut(line: &'a [u8]) -> Option<Line<'a>> {
        let mut rest = line.strip_suffix(b"\r").unwrap_or(line);
        if rest.first() == Some(&b'@') {
            // Tags: only with message-tags, which the bench does not ask for.
            rest = after_space(rest)?;
        }
        let (mut from, mut from_user) = (&b""[..], false);
        if let Some(source) = rest.strip_prefix(b":") {
            let end = memchr::memchr(b' ', source).unwrap_or(source.len());
            let source_word = &source[..end];
            match memchr::memchr(b'!', source_word) {
                Some(bang) => (from, from_user) = (&source_word[..bang], true),
                None => from = source_word,
            }
            rest = after_space(source)?;
        }
        let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let command = &rest[..end];
        if command.is_empty() {
            return None;
        }
        let params = rest.get(end + 1..).unwrap_or_default();
        let (middle, trailing) = if let Some(text) = params.strip_prefix(b":") {
            (&b""[..], Some(text))
        } else {
            match find_trailing(params) {
                Some(text) => (&params[..params.len() - text.len() - 2], Some(text)),
                None => (params, None),
            }
        };
        Some(Line {
            from,
            from_user,
            command,
            middle,
            trailing,
        })
    }

    /// The numeric's code, if the command is one (three digits).
    pub(crate) fn numeric(&self) -> Option<u16> {
        if self.command.len() != 3 {
            return None;
        }
        parse_u64(self.command).and_then(|n| u16::try_from(n).ok())
    }

    /// The last parameter: the trailing one, or else the last middle one.
    pub(crate) fn last(&self) -> &'a [u8] {
        self.trailing.unwrap_or_else(|| {
            self.middle
                .rsplit(|&b| b == b' ')
                .next()
                .unwrap_or_default()
        })
    }
}

/// What follows the first space, the run of spaces skipped.
fn after_space(line: &[u8]) -> Option<&[u8]> {
    let space = memchr::memchr(b' ', line)?;
    let rest = &line[space..];
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..])
}

/// What a line from the server is, as far as a receiver cares.
pub(crate) fn classify(line: &[u8]) -> Frame<'_> {
    if let Some(frame) = user_privmsg(line) {
        return frame;
    }
    let Some(line) = Line::cut(line) else {
        return Frame::Other;
    };
    match line.command {
        b"PRIVMSG" if line.from_user => Frame::Msg {
            from: line.from,
            text: line.last(),
        },
        b"NOTICE" if !line.from_user => match line.last().strip_prefix(MISSED) {
            Some(rest) => Frame::Lagged(
                rest.split(|&b| b == b' ')
                    .next()
                    .and_then(parse_u64)
                    .unwrap_or(0),
            ),
            None => Frame::Other,
        },
        b"QUIT" => Frame::Quit,
        b"PONG" => Frame::Pong,
        b"ERROR" => Frame::Bye,
        _ => Frame::Other,
    }
}

/// The line of nearly every delivery, `:nick!user@host PRIVMSG <target> :<text>`, read
/// with fewer passes than [`Line::cut`] takes: `None` if `line` is not in exactly that
/// form (tags, more than one space, a text without its colon...), and [`Line::cut`]
/// reads it.
#[inline]
fn user_privmsg(line: &[u8]) -> Option<Frame<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let source = line.strip_prefix(b":")?;
    // A nickname is short: a plain loop beats a call.
    let bang = source.iter().position(|&b| b == b'!' || b == b' ')?;
    if source[bang] != b'!' {
        return None;
    }
    let space = bang + memchr::memchr(b' ', &source[bang..])?;
    let params = source[space + 1..].strip_prefix(b"PRIVMSG ")?;
    let target = params.iter().position(|&b| b == b' ')?;
    let text = params[target + 1..].strip_prefix(b":")?;
    Some(Frame::Msg {
        from: &source[..bang],
        text,
    })
}

/// Who left and why, from a `QUIT` line.
pub(crate) fn quit(line: &[u8]) -> Option<(String, String)> {
    let line = Line::cut(line).filter(|l| l.command == b"QUIT" && l.from_user)?;
    Some((
        String::from_utf8_lossy(line.from).into_owned(),
        String::from_utf8_lossy(line.trailing.unwrap_or_default()).into_owned(),
    ))
}

/// A line as the client's registration or entry into its room reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `001`: registered.
    Welcome,
    /// `PONG`: the server has handled every line before the `PING`.
    Pong,
    /// `ERROR :<text>`: the server is closing the connection.
    Error(String),
    /// An error numeric (400 to 599, but 422): its code and the whole line.
    Failure(u16, String),
    /// Anything else.
    Other,
}

impl Reply {
    pub(crate) fn of(line: &[u8]) -> Reply {
        let Some(cut) = Line::cut(line) else {
            return Reply::Other;
        };
        let whole =
            || String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned();
        match (cut.command, cut.numeric()) {
            (_, Some(1)) => Reply::Welcome,
            (_, Some(code)) if (400..600).contains(&code) && code != NO_MOTD => {
                Reply::Failure(code, whole())
            }
            (b"PONG", _) => Reply::Pong,
            (b"ERROR", _) => Reply::Error(String::from_utf8_lossy(cut.last()).into_owned()),
            _ => Reply::Other,
        }
    }
}

/// Which refusal an `ERROR` before the welcome is, if it is one: the server's IRC door
/// says `Closing link: the server is full (...)` or `... your address holds ...`.
pub(crate) fn refusal(error: &str) -> Option<Refusal> {
    let error = error.to_ascii_lowercase();
    if error.contains("address") {
        Some(Refusal::PerAddress)
    } else if error.contains("full") || error.contains("too many") {
        Some(Refusal::Full)
    } else {
        None
    }
}

/// The lines that register `nick`.
pub(crate) fn register(nick: &str) -> String {
    format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n")
}

/// The line that joins `room`.
pub(crate) fn join(room: &str) -> String {
    format!("JOIN {room}\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_from_a_user_carries_its_nickname_and_text() {
        let line = b":b1_3!~b1_3@127.0.0.1 PRIVMSG #bench :s0 17 2345 xx :y\r";
        assert_eq!(
            classify(line),
            Frame::Msg {
                from: b"b1_3",
                text: b"s0 17 2345 xx :y"
            }
        );
        // Without the CR, with tags, and a one-word text without its colon.
        assert_eq!(
            classify(b"@msgid=7;time=x :b1_3!u@h PRIVMSG #bench e2"),
            Frame::Msg {
                from: b"b1_3",
                text: b"e2"
            }
        );
        // Forms the quick reading leaves to the whole one.
        for line in [
            &b":b1_3!u@h  PRIVMSG #bench :s0 1 2"[..],
            b":b1_3!u@h PRIVMSG  #bench :s0 1 2",
            b":b1_3!u@h PRIVMSG #bench x :s0 1 2",
        ] {
            assert_eq!(user_privmsg(line), None);
            assert_eq!(
                classify(line),
                Frame::Msg {
                    from: b"b1_3",
                    text: b"s0 1 2"
                },
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(
            classify(b":b1_3!u@h PRIVMSG #bench ::s0\r"),
            Frame::Msg {
                from: b"b1_3",
                text: b":s0"
            }
        );
        assert_eq!(classify(b":b1_3!u@h NOTICE #bench :s0 1 2"), Frame::Other);
        assert_eq!(classify(b":b1_3 PRIVMSG #bench :s0 1 2"), Frame::Other);
        // A server's PRIVMSG is nobody's bench message.
        assert_eq!(
            classify(b":chat.localhost PRIVMSG #bench :s0 1 2"),
            Frame::Other
        );
    }

    #[test]
    fn the_doors_notice_of_missed_messages_is_a_lag() {
        let line = b":chat.localhost NOTICE b1_4 :You missed 1234 messages in #bench (your connection fell behind)\r";
        assert_eq!(classify(line), Frame::Lagged(1234));
        // The same words from a user are only words.
        assert_eq!(
            classify(b":b1_0!u@h NOTICE b1_4 :You missed 3 messages"),
            Frame::Other
        );
        assert_eq!(
            classify(b":chat.localhost NOTICE * :*** Looking up your hostname"),
            Frame::Other
        );
    }

    #[test]
    fn pong_quit_and_error() {
        assert_eq!(
            classify(b":chat.localhost PONG chat.localhost :sync\r"),
            Frame::Pong
        );
        assert_eq!(
            classify(b":irc.example.net PONG irc.example.net :sync"),
            Frame::Pong
        );
        assert_eq!(
            classify(b":b1_2!~b1_2@127.0.0.1 QUIT :Quit: bye"),
            Frame::Quit
        );
        assert_eq!(
            quit(b":b1_2!~b1_2@127.0.0.1 QUIT :Quit: bye\r"),
            Some(("b1_2".to_owned(), "Quit: bye".to_owned()))
        );
        assert_eq!(
            quit(b":b1_2!u@h QUIT"),
            Some(("b1_2".to_owned(), String::new()))
        );
        assert_eq!(quit(b":b1_2!u@h PART #bench"), None);
        assert_eq!(
            classify(b"ERROR :Closing link: slow consumer\r"),
            Frame::Bye
        );
        assert_eq!(classify(b":b1_2!u@h JOIN #bench"), Frame::Other);
        assert_eq!(classify(b":srv 353 b1_0 = #bench :b1_0 b1_1"), Frame::Other);
        assert_eq!(classify(b""), Frame::Other);
        assert_eq!(classify(b"\r"), Frame::Other);
        assert_eq!(classify(b":lonely"), Frame::Other);
    }

    #[test]
    fn lines_are_cut_into_their_parts() {
        let line = Line::cut(b"@a=b :srv   366 b1_0 #bench :End of /NAMES list.\r").unwrap();
        assert_eq!(line.from, b"srv");
        assert!(!line.from_user);
        assert_eq!(line.numeric(), Some(366));
        assert_eq!(line.last(), b"End of /NAMES list.");
        let line = Line::cut(b"PING :token").unwrap();
        assert_eq!(line.from, b"");
        assert_eq!(line.command, b"PING");
        assert_eq!(line.last(), b"token");
        let line = Line::cut(b"PING token").unwrap();
        assert_eq!(line.last(), b"token");
        assert_eq!(Line::cut(b"QUIT").unwrap().last(), b"");
        assert_eq!(Line::cut(b"1234 x").unwrap().numeric(), None);
        assert_eq!(Line::cut(b"abc x").unwrap().numeric(), None);
    }

    #[test]
    fn registration_replies() {
        assert_eq!(
            Reply::of(b":srv 001 b1_0 :Welcome to the network\r"),
            Reply::Welcome
        );
        assert_eq!(
            Reply::of(b":srv 433 * b1_0 :Nickname is already in use\r"),
            Reply::Failure(
                433,
                ":srv 433 * b1_0 :Nickname is already in use".to_owned()
            )
        );
        assert_eq!(
            Reply::of(b":srv 474 b1_0 #bench :Cannot join channel (+b)"),
            Reply::Failure(
                474,
                ":srv 474 b1_0 #bench :Cannot join channel (+b)".to_owned()
            )
        );
        // The end of a welcome without a MOTD, and replies that are no failure.
        assert_eq!(
            Reply::of(b":srv 422 b1_0 :MOTD File is missing"),
            Reply::Other
        );
        assert_eq!(Reply::of(b":srv 366 b1_0 #bench :End"), Reply::Other);
        assert_eq!(Reply::of(b":srv 376 b1_0 :End of MOTD"), Reply::Other);
        assert_eq!(
            Reply::of(b":srv NOTICE * :*** Looking up your hostname"),
            Reply::Other
        );
        assert_eq!(Reply::of(b":srv PONG srv :entered"), Reply::Pong);
        assert_eq!(
            Reply::of(b"ERROR :Closing link: the server is full (10 connections)\r"),
            Reply::Error("Closing link: the server is full (10 connections)".to_owned())
        );
    }

    #[test]
    fn refusals_are_read_from_the_error() {
        assert_eq!(
            refusal("Closing link: the server is full (10 connections)"),
            Some(Refusal::Full)
        );
        assert_eq!(
            refusal("Closing link: your address holds 4 connections, the most allowed"),
            Some(Refusal::PerAddress)
        );
        assert_eq!(
            refusal("Connection refused, too many connections"),
            Some(Refusal::Full)
        );
        assert_eq!(refusal("Closing link: registration timed out"), None);
    }

    #[test]
    fn registration_and_join_lines() {
        assert_eq!(register("b1_0"), "NICK b1_0\r\nUSER b1_0 0 * :b1_0\r\n");
        assert_eq!(join("#bench"), "JOIN #bench\r\n");
    }
}

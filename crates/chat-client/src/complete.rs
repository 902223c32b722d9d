//! Tab completion: commands, room names and nicknames, from the [`ChatState`].
//!
//! The word before the cursor decides what is completed:
//! - `/jo` as the first word: a command, the client's or the server's;
//! - `#ru`, or any word right after `/join`, `/part` or `/who`: a room we are in or have
//!   heard of;
//! - the word after `/msg`: anyone in our rooms;
//! - anything else: a member of the current room, followed by `: ` when it starts the
//!   line (the usual way to address someone).
//!
//! Matching ignores ASCII case, as the server does for names.

use crate::state::ChatState;

/// The client's own commands, with one line of help each; the terminal handles them and
/// they never reach the server.
pub const CLIENT_COMMANDS: &[(&str, &str)] = &[
    ("/clear", "clear the screen"),
    (
        "/help",
        "this list: the client's commands, then the server's",
    ),
];

/// The main keys of the line editor, with one line of help each, for `/help`.
pub const KEYS: &[(&str, &str)] = &[
    (
        "Tab, Shift-Tab",
        "complete a command, #room or nickname; cycle",
    ),
    ("Up, Down", "recall the lines typed earlier"),
    (
        "Ctrl-C, Ctrl-D",
        "leave, as /quit (Ctrl-D on an empty line)",
    ),
];

/// What Tab can put in place of the word before the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Where the word starts, in characters from the start of the line.
    pub start: usize,
    /// Replacements for the word, each with what follows it (a space, or `: `), in the
    /// order Tab cycles through them.
    pub candidates: Vec<String>,
}

/// Completions for the word that ends at `cursor` (in characters) in `line`, or `None`
/// when nothing fits.
pub fn complete(line: &str, cursor: usize, state: &ChatState) -> Option<Completion> {
    let before: Vec<char> = line.chars().take(cursor).collect();
    let start = before
        .iter()
        .rposition(|c| c.is_whitespace())
        .map_or(0, |i| i + 1);
    let word: String = before[start..].iter().collect();
    let earlier: String = before[..start].iter().collect();
    let mut earlier_words = earlier.split_whitespace();
    let first_word = earlier_words.next().map(str::to_ascii_lowercase);
    let argument_index = earlier_words.count() + usize::from(first_word.is_some());

    let candidates: Vec<String> = if first_word.is_none() && word.starts_with('/') {
        if word.starts_with("//") {
            return None;
        }
        matching(command_names(), &word, " ")
    } else if word.starts_with('#') {
        matching(state.known_rooms().map(|r| r.as_str()), &word, " ")
    } else {
        match (first_word.as_deref(), argument_index) {
            (Some("/join" | "/part" | "/who"), 1) => {
                let word = format!("#{word}");
                matching(state.known_rooms().map(|r| r.as_str()), &word, " ")
            }
            (Some("/msg" | "/whois"), 1) => matching(others(state, state.everyone()), &word, " "),
            (Some(command), _) if command.starts_with('/') && !command.starts_with("//") => {
                matching(others(state, current_members(state)), &word, " ")
            }
            (_, 0) => matching(others(state, current_members(state)), &word, ": "),
            _ => matching(others(state, current_members(state)), &word, " "),
        }
    };
    (!candidates.is_empty()).then_some(Completion { start, candidates })
}

/// Every command name, the client's and the server's, sorted, once each.
fn command_names() -> impl Iterator<Item = &'static str> {
    let server = chat_proto::command::HELP
        .iter()
        .filter_map(|(usage, _)| usage.split(' ').next())
        .filter(|name| !name.starts_with("//"));
    let client = CLIENT_COMMANDS.iter().map(|(name, _)| *name);
    client
        .chain(server)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
}

fn current_members(state: &ChatState) -> impl Iterator<Item = &chat_proto::Nick> {
    state
        .current()
        .into_iter()
        .flat_map(|room| state.members(room))
}

/// Nicknames other than ours.
fn others<'a>(
    state: &'a ChatState,
    nicks: impl Iterator<Item = &'a chat_proto::Nick> + 'a,
) -> impl Iterator<Item = &'a str> + 'a {
    nicks.filter(|n| !state.is_me(n)).map(|n| n.as_str())
}

/// The names that start with `prefix` (ignoring ASCII case), each followed by `suffix`.
fn matching<'a>(names: impl Iterator<Item = &'a str>, prefix: &str, suffix: &str) -> Vec<String> {
    let prefix = prefix.to_ascii_lowercase();
    names
        .filter(|name| name.to_ascii_lowercase().starts_with(&prefix))
        .map(|name| format!("{name}{suffix}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::ServerFrame;

    const T: &str = "2026-11-24T12:00:00.000Z";

    fn state() -> ChatState {
        let mut state = ChatState::default();
        for line in [
            "WELCOME alice :hi".to_owned(),
            format!("JOIN #general alice {T} 1"),
            "MEMBERS #general alice bob Bobby carol".to_owned(),
            format!("JOIN #rust alice {T} 1"),
            "MEMBERS #rust alice dave".to_owned(),
            "CURRENT #general".to_owned(),
            "ROOMS #general=4 #rust=2 #random=1".to_owned(),
        ] {
            state.apply(&ServerFrame::parse(&line).unwrap());
        }
        state
    }

    fn candidates(line: &str) -> Vec<String> {
        complete(line, line.chars().count(), &state())
            .map(|c| c.candidates)
            .unwrap_or_default()
    }

    #[test]
    fn commands_at_the_start() {
        assert_eq!(candidates("/jo"), ["/join "]);
        assert_eq!(candidates("/c"), ["/clear "]);
        assert_eq!(candidates("/H"), ["/help ", "/history "]);
        assert_eq!(candidates("/m"), ["/me ", "/mode ", "/motd ", "/msg "]);
        assert_eq!(candidates("//"), Vec::<String>::new());
        assert_eq!(candidates("/zzz"), Vec::<String>::new());
        // Every command is offered for a lone slash.
        assert_eq!(candidates("/").len(), 34);
        assert_eq!(candidates("/who"), ["/who ", "/whois ", "/whowas "]);
    }

    #[test]
    fn rooms_after_a_hash_or_a_room_command() {
        assert_eq!(candidates("/join #r"), ["#random ", "#rust "]);
        assert_eq!(candidates("/join r"), ["#random ", "#rust "]);
        assert_eq!(candidates("/who #GE"), ["#general "]);
        assert_eq!(candidates("see #ru"), ["#rust "]);
        assert_eq!(candidates("/part g"), ["#general "]);
    }

    #[test]
    fn nicknames_of_the_current_room() {
        assert_eq!(candidates("b"), ["bob: ", "Bobby: "]);
        assert_eq!(candidates("hi c"), ["carol "]);
        // Not ourselves, and not someone in another room.
        assert_eq!(candidates("a"), Vec::<String>::new());
        assert_eq!(candidates("d"), Vec::<String>::new());
        assert_eq!(candidates("/me pokes B"), ["bob ", "Bobby "]);
        // /msg reaches anyone in any of our rooms.
        assert_eq!(candidates("/msg d"), ["dave "]);
    }

    #[test]
    fn the_word_before_the_cursor_is_completed() {
        let c = complete("hi bo and", 5, &state()).unwrap();
        assert_eq!(c.start, 3);
        assert_eq!(c.candidates, ["bob ", "Bobby "]);
        assert!(complete("", 0, &state()).unwrap().candidates.len() == 3);
    }
}

//! Tab completion: commands, room names and nicknames, from the [`ChatState`].
//!
//! The word before the cursor decides what is completed:
//! - `/jo` as the first word: a command, the client's or the server's;
//! - `#ru`, or any word right after `/join`, `/part`, `/who` or `/mode`: a room we are
//!   in or have heard of; the word after `/invite nick`: a room we are in;
//! - the word after `/msg`, `/whois` or `/invite`: anyone in our rooms;
//! - the nickname of `/op`, `/deop`, `/voice` and `/devoice`: a member of the room (the
//!   one named first, else the current one) who can be given or has what the command
//!   gives or takes away (`/deop` offers operators only);
//! - any other argument of a command (`/kick`, `/ban`, `/mode #room +o`, `/topic
//!   #room`): a member of the room named first, else of the current room;
//! - anything else: a member of the current room, followed by `: ` when it starts the
//!   line (the usual way to address someone).
//!
//! Matching ignores ASCII case, as the server does for names.

use crate::state::ChatState;
use chat_proto::{Nick, Room, Status};

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
    let earlier: Vec<&str> = earlier.split_whitespace().collect();
    let command = earlier
        .first()
        .map(|w| w.to_ascii_lowercase())
        .filter(|w| w.starts_with('/') && !w.starts_with("//"));
    let argument_index = earlier.len();
    // The room a command is about: the one named as its first argument, else the
    // current one; then which of its arguments is being typed, that room apart.
    let named = command
        .as_deref()
        .filter(|c| ROOM_FIRST.contains(c))
        .and_then(|_| earlier.get(1))
        .filter(|w| w.starts_with('#'))
        .and_then(|w| Room::new(w).ok());
    let nick_index = argument_index - usize::from(named.is_some());
    let room = named.as_ref().or(state.current());
    let members = || room.into_iter().flat_map(|r| state.members(r));
    let grant = command
        .as_deref()
        .and_then(|c| GRANTS.iter().find(|g| g.0 == c))
        .filter(|_| nick_index == 1);

    // Where a room is the argument, with or without its `#`: which rooms.
    let room_argument: Option<Vec<&Room>> = match (command.as_deref(), argument_index) {
        (Some("/join" | "/part" | "/who" | "/mode"), 1) => Some(state.known_rooms().collect()),
        (Some("/invite"), 2) => Some(state.joined().collect()),
        _ => None,
    };

    let candidates: Vec<String> = if argument_index == 0 && word.starts_with('/') {
        if word.starts_with("//") {
            return None;
        }
        matching(command_names(), &word, " ")
    } else if let Some(choices) = room_argument {
        let word = format!("#{}", word.strip_prefix('#').unwrap_or(&word));
        matching(choices.into_iter().map(|r| r.as_str()), &word, " ")
    } else if word.starts_with('#') {
        matching(state.known_rooms().map(|r| r.as_str()), &word, " ")
    } else if let Some(&(_, status, has)) = grant {
        let fits = |n: &&Nick| room.is_some_and(|r| state.has(r, n, status) == has);
        matching(others(state, members().filter(fits)), &word, " ")
    } else {
        match (command.as_deref(), argument_index) {
            (Some("/msg" | "/whois" | "/invite"), 1) => {
                matching(others(state, state.everyone()), &word, " ")
            }
            (Some(_), _) => matching(others(state, members()), &word, " "),
            (None, 0) => matching(others(state, members()), &word, ": "),
            (None, _) => matching(others(state, members()), &word, " "),
        }
    };
    (!candidates.is_empty()).then_some(Completion { start, candidates })
}

/// Commands whose first argument may be a room (`/kick #rust bob`), the one the rest is
/// about.
const ROOM_FIRST: &[&str] = &[
    "/mode", "/op", "/deop", "/voice", "/devoice", "/kick", "/ban", "/unban", "/topic",
];

/// The commands that give or take a standing: the one, and whether the nicknames worth
/// offering have it (`/deop`: operators) or not (`/op`: anyone not an operator yet).
const GRANTS: &[(&str, Status, bool)] = &[
    ("/op", Status::Operator, false),
    ("/deop", Status::Operator, true),
    ("/voice", Status::Voice, false),
    ("/devoice", Status::Voice, true),
];

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

/// Nicknames other than ours.
fn others<'a>(
    state: &'a ChatState,
    nicks: impl Iterator<Item = &'a Nick> + 'a,
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
            "MEMBERS #general @alice bob +Bobby @carol".to_owned(),
            format!("JOIN #rust alice {T} 1"),
            "MEMBERS #rust @alice dave +erin".to_owned(),
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
        assert_eq!(candidates("/d"), ["/deop ", "/devoice "]);
        assert_eq!(candidates("/o"), ["/op ", "/oper "]);
        assert_eq!(candidates("/V"), ["/voice "]);
        assert_eq!(candidates("/k"), ["/kick ", "/kill "]);
        assert_eq!(candidates("/b"), ["/ban "]);
        assert_eq!(candidates("/un"), ["/unban ", "/unsban "]);
        assert_eq!(candidates("/inv"), ["/invite "]);
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
        assert_eq!(candidates("/mode r"), ["#random ", "#rust "]);
        assert_eq!(candidates("/mode #RU"), ["#rust "]);
        assert_eq!(candidates("/op #r"), ["#random ", "#rust "]);
        assert_eq!(candidates("/kick #g"), ["#general "]);
        // The room of /invite nick [#room]: one of ours, with or without the #.
        assert_eq!(candidates("/invite dave r"), ["#rust "]);
        assert_eq!(candidates("/invite dave #"), ["#general ", "#rust "]);
    }

    #[test]
    fn grants_offer_who_can_be_given_or_has_it() {
        // #general: @alice (us) bob +Bobby @carol; #rust: @alice dave +erin.
        assert_eq!(candidates("/op "), ["bob ", "Bobby "]);
        assert_eq!(candidates("/deop "), ["carol "]);
        assert_eq!(candidates("/voice "), ["bob ", "carol "]);
        assert_eq!(candidates("/devoice b"), ["Bobby "]);
        // Of the room named first, not the current one.
        assert_eq!(candidates("/op #rust "), ["dave ", "erin "]);
        assert_eq!(candidates("/DEVOICE #Rust "), ["erin "]);
        assert_eq!(candidates("/deop #rust "), Vec::<String>::new());
        assert_eq!(candidates("/voice #rust e"), Vec::<String>::new());
        // A room we are not in has no members to offer.
        assert_eq!(candidates("/op #random "), Vec::<String>::new());
    }

    #[test]
    fn nicknames_of_the_room_a_command_is_about() {
        assert_eq!(candidates("/kick b"), ["bob ", "Bobby "]);
        assert_eq!(candidates("/kick #rust "), ["dave ", "erin "]);
        assert_eq!(candidates("/ban #rust d"), ["dave "]);
        assert_eq!(candidates("/ban C"), ["carol "]);
        assert_eq!(candidates("/mode #rust +o d"), ["dave "]);
        assert_eq!(candidates("/mode +v B"), ["bob ", "Bobby "]);
        assert_eq!(candidates("/topic #rust ask e"), ["erin "]);
        // Someone to invite: anyone in any of our rooms.
        assert_eq!(
            candidates("/invite "),
            ["bob ", "Bobby ", "carol ", "dave ", "erin "]
        );
    }

    #[test]
    fn completion_follows_standing_changes() {
        let mut state = state();
        for line in [
            format!("MODE #general carol {T} 2 :+o-v bob Bobby"),
            format!("RENAME #general bob robert {T} 3"),
            format!("KICK #general carol Bobby {T} 4 :bye"),
        ] {
            state.apply(&ServerFrame::parse(&line).unwrap());
        }
        let candidates = |line: &str| {
            complete(line, line.chars().count(), &state)
                .map(|c| c.candidates)
                .unwrap_or_default()
        };
        assert_eq!(candidates("/deop "), ["carol ", "robert "]);
        assert_eq!(candidates("/op "), Vec::<String>::new());
        assert_eq!(candidates("/kick "), ["carol ", "robert "]);
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

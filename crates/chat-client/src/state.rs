//! What the client knows about its session, learnt from the frames the server sends: who
//! it is, which rooms it is in and who is in them, which room is current.
//!
//! The prompt shows the current room and Tab completes from this state; after a lost
//! connection it says which rooms to join again ([`ChatState::rejoin_lines`]). It is a
//! pure value updated by [`ChatState::apply`], so it is tested frame by frame. The
//! connection shares it with the terminal through a [`tokio::sync::watch`] channel
//! ([`SharedState`]).

use chat_proto::{Nick, Room, ServerFrame};
use std::collections::BTreeMap;

/// A [`ChatState`] that the connection writes and the terminal reads.
pub type SharedState = tokio::sync::watch::Sender<ChatState>;

/// A new [`SharedState`] holding an empty state.
pub fn shared() -> SharedState {
    tokio::sync::watch::Sender::new(ChatState::default())
}

/// A room the client is in, with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Joined {
    /// The room's canonical spelling.
    name: Room,
    /// Members by case-folded nickname, so that renames and departures find them
    /// whatever the case.
    members: BTreeMap<String, Nick>,
}

/// The session as seen through the server's frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatState {
    /// Our nickname, once the server welcomed us; kept while offline so that a new
    /// connection registers the same one.
    me: Option<Nick>,
    /// Whether a registered connection is up.
    online: bool,
    /// Where bare lines go.
    current: Option<Room>,
    /// Rooms we are in, by case-folded name.
    joined: BTreeMap<String, Joined>,
    /// Rooms we have heard of (joined, or listed by `/rooms`), for completion.
    known: BTreeMap<String, Room>,
}

impl ChatState {
    /// Updates the state from one frame; returns whether anything changed.
    pub fn apply(&mut self, frame: &ServerFrame) -> bool {
        match frame {
            // Replayed events happened before now: a member who joined or left then may
            // be gone or back since. Only live frames tell what is true now.
            ServerFrame::History(_) | ServerFrame::HistoryEnd { .. } => return false,
            ServerFrame::Welcome { nick, .. } => {
                // A new session starts in no room; JOIN and CURRENT follow.
                self.me = Some(nick.clone());
                self.online = true;
                self.current = None;
                self.joined.clear();
            }
            ServerFrame::Join { room, nick, .. } => {
                if self.is_me(nick) {
                    let mut members = BTreeMap::new();
                    members.insert(nick.folded(), nick.clone());
                    let joined = Joined {
                        name: room.clone(),
                        members,
                    };
                    self.joined.insert(room.folded(), joined);
                    self.known.insert(room.folded(), room.clone());
                } else if let Some(joined) = self.joined.get_mut(&room.folded()) {
                    joined.members.insert(nick.folded(), nick.clone());
                } else {
                    return false;
                }
            }
            ServerFrame::Part { room, nick, .. } | ServerFrame::Quit { room, nick, .. } => {
                if self.is_me(nick) {
                    return self.joined.remove(&room.folded()).is_some();
                }
                let Some(joined) = self.joined.get_mut(&room.folded()) else {
                    return false;
                };
                return joined.members.remove(&nick.folded()).is_some();
            }
            ServerFrame::Rename { room, old, new, .. } => {
                if self.is_me(old) {
                    self.me = Some(new.clone());
                }
                if let Some(joined) = room.as_ref().and_then(|r| self.joined.get_mut(&r.folded())) {
                    joined.members.remove(&old.folded());
                    joined.members.insert(new.folded(), new.clone());
                }
            }
            ServerFrame::Members { room, nicks } => {
                // A long list comes in several frames, and a /who reply repeats what we
                // know: add, never replace.
                let Some(joined) = self.joined.get_mut(&room.folded()) else {
                    return false;
                };
                for nick in nicks {
                    joined.members.insert(nick.folded(), nick.clone());
                }
            }
            ServerFrame::Current { room } => {
                if self.current == *room {
                    return false;
                }
                self.current = room.clone();
            }
            ServerFrame::Rooms { rooms } => {
                for (room, _) in rooms {
                    self.known.insert(room.folded(), room.clone());
                }
            }
            _ => return false,
        }
        true
    }

    /// Marks the connection lost (`false`) or registered again; returns whether this
    /// changed anything.
    pub fn set_online(&mut self, online: bool) -> bool {
        std::mem::replace(&mut self.online, online) != online
    }

    /// Whether a registered connection is up.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Our nickname, if the server ever welcomed us.
    pub fn me(&self) -> Option<&Nick> {
        self.me.as_ref()
    }

    /// Whether `nick` is ours (case-insensitively).
    pub fn is_me(&self, nick: &Nick) -> bool {
        self.me
            .as_ref()
            .is_some_and(|me| me.folded() == nick.folded())
    }

    /// The room bare lines go to.
    pub fn current(&self) -> Option<&Room> {
        self.current.as_ref()
    }

    /// The rooms we are in, sorted by case-folded name.
    pub fn joined(&self) -> impl Iterator<Item = &Room> {
        self.joined.values().map(|j| &j.name)
    }

    /// The rooms we are in or have heard of, sorted by case-folded name.
    pub fn known_rooms(&self) -> impl Iterator<Item = &Room> {
        self.known.values()
    }

    /// The members of `room` if we are in it, sorted by case-folded name.
    pub fn members(&self, room: &Room) -> impl Iterator<Item = &Nick> {
        self.joined
            .get(&room.folded())
            .into_iter()
            .flat_map(|j| j.members.values())
    }

    /// Everyone in any room we are in, once each, sorted by case-folded name.
    pub fn everyone(&self) -> impl Iterator<Item = &Nick> {
        let mut all = BTreeMap::new();
        for joined in self.joined.values() {
            for (folded, nick) in &joined.members {
                all.insert(folded, nick);
            }
        }
        all.into_values()
    }

    /// The lines that bring a new session (which starts in `#general` only) back to
    /// this one's rooms, with the same current room: `/join` for each other room,
    /// `/part #general` if we had left it, and a last `/join` of the current room.
    pub fn rejoin_lines(&self) -> Vec<String> {
        let general = Room::general().folded();
        let mut lines: Vec<String> = self
            .joined
            .iter()
            .filter(|(folded, _)| **folded != general)
            .map(|(_, j)| format!("/join {}", j.name))
            .collect();
        if !self.joined.contains_key(&general) {
            lines.push(format!("/part {}", Room::GENERAL));
        }
        if let Some(current) = &self.current {
            let join = format!("/join {current}");
            if lines.last() != Some(&join) {
                lines.push(join);
            }
        }
        if lines == [format!("/join {}", Room::GENERAL)] {
            // Exactly where a new session starts.
            lines.clear();
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(state: &mut ChatState, line: &str) -> bool {
        state.apply(&ServerFrame::parse(line).expect("valid frame"))
    }

    const T: &str = "2026-11-24T12:00:00.000Z";

    /// The state after the handshake of `alice`, with bob in #general too.
    fn alice() -> ChatState {
        let mut state = ChatState::default();
        for line in [
            "WELCOME alice :hi".to_owned(),
            format!("JOIN #general alice {T} 1"),
            "MEMBERS #general alice bob".to_owned(),
            "CURRENT #general".to_owned(),
        ] {
            assert!(apply(&mut state, &line), "{line}");
        }
        state
    }

    fn names<'a, T: std::fmt::Display + 'a>(items: impl Iterator<Item = &'a T>) -> Vec<String> {
        items.map(|i| i.to_string()).collect()
    }

    #[test]
    fn handshake_sets_nick_room_and_members() {
        let state = alice();
        assert_eq!(state.me().map(Nick::as_str), Some("alice"));
        assert!(state.is_online());
        assert_eq!(state.current(), Some(&Room::general()));
        assert_eq!(names(state.joined()), ["#general"]);
        assert_eq!(names(state.members(&Room::general())), ["alice", "bob"]);
    }

    #[test]
    fn members_follow_joins_parts_quits_and_renames() {
        let mut state = alice();
        assert!(apply(&mut state, &format!("JOIN #general Carol {T} 1")));
        assert!(apply(
            &mut state,
            &format!("RENAME #general bob robert {T} 1")
        ));
        assert!(apply(
            &mut state,
            &format!("PART #general CAROL {T} 1 :bye")
        ));
        assert_eq!(names(state.members(&Room::general())), ["alice", "robert"]);
        assert!(apply(
            &mut state,
            &format!("QUIT #general robert {T} 1 :gone")
        ));
        assert_eq!(names(state.members(&Room::general())), ["alice"]);
        // Events about a room we are not in change nothing.
        assert!(!apply(&mut state, &format!("JOIN #elsewhere dave {T} 1")));
        assert!(!apply(&mut state, "MEMBERS #elsewhere dave"));
        // Messages change nothing.
        assert!(!apply(&mut state, &format!("MSG #general alice {T} 1 :hi")));
    }

    #[test]
    fn own_join_part_and_current() {
        let mut state = alice();
        apply(&mut state, &format!("JOIN #Rust alice {T} 1"));
        apply(&mut state, "MEMBERS #Rust alice dave");
        apply(&mut state, "CURRENT #Rust");
        assert_eq!(state.current().map(Room::as_str), Some("#Rust"));
        assert_eq!(names(state.joined()), ["#general", "#Rust"]);
        assert_eq!(
            names(state.members(&Room::new("#rust").unwrap())),
            ["alice", "dave"]
        );
        assert_eq!(names(state.everyone()), ["alice", "bob", "dave"]);

        apply(&mut state, &format!("PART #Rust alice {T} 1"));
        apply(&mut state, "CURRENT #general");
        assert_eq!(names(state.joined()), ["#general"]);
        assert_eq!(state.members(&Room::new("#Rust").unwrap()).count(), 0);
        // Still known, for completion.
        assert_eq!(names(state.known_rooms()), ["#general", "#Rust"]);

        apply(&mut state, &format!("PART #general alice {T} 1"));
        apply(&mut state, "CURRENT *");
        assert_eq!(state.current(), None);
        assert_eq!(state.joined().count(), 0);
    }

    #[test]
    fn own_rename_changes_me() {
        let mut state = alice();
        apply(&mut state, &format!("RENAME #general alice Alicia {T} 1"));
        assert_eq!(state.me().map(Nick::as_str), Some("Alicia"));
        assert_eq!(names(state.members(&Room::general())), ["Alicia", "bob"]);
        apply(&mut state, &format!("RENAME * Alicia al {T} 1"));
        assert_eq!(state.me().map(Nick::as_str), Some("al"));
    }

    #[test]
    fn history_is_not_applied_as_live_events() {
        let mut state = alice();
        let before = state.clone();
        let time: chat_proto::Timestamp = T.parse().unwrap();
        let (room, carol) = (Room::new("#old").unwrap(), Nick::new("carol").unwrap());
        // The server replays only messages; a replayed join or part must change nothing
        // all the same, nor must messages replayed from a room we are not in.
        let past = [
            ServerFrame::Join {
                room: Room::general(),
                nick: carol.clone(),
                time,
                id: 1,
            },
            ServerFrame::Part {
                room: Room::general(),
                nick: Nick::new("bob").unwrap(),
                time,
                id: 2,
                reason: None,
            },
            ServerFrame::Join {
                room: room.clone(),
                nick: Nick::new("alice").unwrap(),
                time,
                id: 3,
            },
            ServerFrame::Rename {
                room: None,
                old: Nick::new("alice").unwrap(),
                new: carol,
                time,
                id: 4,
            },
        ];
        for event in past {
            assert!(!state.apply(&ServerFrame::History(Box::new(event))));
        }
        assert!(!apply(
            &mut state,
            &format!("HISTORY MSG #old dave {T} 5 :hello")
        ));
        assert!(!apply(&mut state, "HISTORYEND #old 1"));
        assert_eq!(state, before);
    }

    #[test]
    fn rooms_replies_are_known_rooms() {
        let mut state = alice();
        assert!(apply(&mut state, "ROOMS #general=2 #ops=1"));
        assert_eq!(names(state.known_rooms()), ["#general", "#ops"]);
    }

    #[test]
    fn a_new_welcome_starts_afresh_but_offline_keeps_everything() {
        let mut state = alice();
        apply(&mut state, &format!("JOIN #rust alice {T} 1"));
        assert!(state.set_online(false));
        assert!(!state.set_online(false));
        assert_eq!(state.me().map(Nick::as_str), Some("alice"));
        assert_eq!(names(state.joined()), ["#general", "#rust"]);
        apply(&mut state, "WELCOME alice :again");
        assert!(state.is_online());
        assert_eq!(state.joined().count(), 0);
        assert_eq!(state.current(), None);
    }

    #[test]
    fn rejoin_lines_restore_rooms_and_current() {
        let mut state = alice();
        assert!(state.rejoin_lines().is_empty());

        apply(&mut state, &format!("JOIN #rust alice {T} 1"));
        apply(&mut state, &format!("JOIN #ops alice {T} 1"));
        apply(&mut state, "CURRENT #rust");
        assert_eq!(state.rejoin_lines(), ["/join #ops", "/join #rust"]);

        apply(&mut state, "CURRENT #general");
        assert_eq!(
            state.rejoin_lines(),
            ["/join #ops", "/join #rust", "/join #general"]
        );

        apply(&mut state, &format!("PART #general alice {T} 1"));
        apply(&mut state, "CURRENT #ops");
        assert_eq!(
            state.rejoin_lines(),
            ["/join #ops", "/join #rust", "/part #general", "/join #ops"]
        );

        let mut alone = alice();
        apply(&mut alone, &format!("PART #general alice {T} 1"));
        apply(&mut alone, "CURRENT *");
        assert_eq!(alone.rejoin_lines(), ["/part #general"]);
    }
}

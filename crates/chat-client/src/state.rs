//! What the client knows about its session, learnt from the frames the server sends: who
//! it is, which rooms it is in, who is in them and with what standing (operator, voice),
//! which room is current.
//!
//! The prompt shows the current room and Tab completes from this state; after a lost
//! connection it says which rooms to join again ([`ChatState::rejoin_lines`]). It is a
//! pure value updated by [`ChatState::apply`], so it is tested frame by frame. The
//! connection shares it with the terminal through a [`tokio::sync::watch`] channel
//! ([`SharedState`]).

use chat_proto::{Nick, Room, ServerFrame, Status};
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
    members: BTreeMap<String, Member>,
}

/// Someone in a room we are in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    nick: Nick,
    /// Operator and voice are separate flags, as in IRC (`+o` and `+v`): taking away
    /// operator status (`-o`) from a voiced operator leaves it voiced. A member list
    /// shows only the higher of the two.
    operator: bool,
    voice: bool,
}

impl Member {
    fn new(nick: Nick) -> Member {
        Member {
            nick,
            operator: false,
            voice: false,
        }
    }

    /// The standing shown before the nickname: the higher of the two flags.
    fn status(&self) -> Status {
        if self.operator {
            Status::Operator
        } else if self.voice {
            Status::Voice
        } else {
            Status::Member
        }
    }

    /// Takes the standing a member list shows. `@` hides whether it is voiced too:
    /// what we knew of that stays.
    fn set_status(&mut self, status: Status) {
        self.operator = status == Status::Operator;
        self.voice = match status {
            Status::Operator => self.voice,
            Status::Voice => true,
            Status::Member => false,
        };
    }
}

/// One change of a `MODE` event, IRC style: `+ov alice bob` is `(true, 'o', Some("alice"))`
/// then `(true, 'v', Some("bob"))`. `o`, `v` and `b` take an argument either way, `k` and
/// `l` only when set; the other flags none. A flag missing its argument gets `None`.
fn mode_changes(changes: &str) -> Vec<(bool, char, Option<&str>)> {
    let mut words = changes.split_whitespace();
    let flags = words.next().unwrap_or("");
    let mut give = true;
    let mut out = Vec::new();
    for flag in flags.chars() {
        match flag {
            '+' => give = true,
            '-' => give = false,
            'o' | 'v' | 'b' => out.push((give, flag, words.next())),
            'k' | 'l' if give => out.push((give, flag, words.next())),
            _ => out.push((give, flag, None)),
        }
    }
    out
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
    /// The keys of rooms we are in that have one (`+k`), by case-folded name: the one we
    /// joined with, or the last a `MODE` set. Kept across a lost connection, so that
    /// rejoining a keyed room works.
    keys: BTreeMap<String, String>,
}

impl ChatState {
    /// Notes a line the user sent: the key of a `/join #room key`, for joining again
    /// after a lost connection (only the keys of rooms we are in are ever used).
    pub fn sent(&mut self, line: &str) {
        if let Ok(chat_proto::Command::Join {
            room,
            key: Some(key),
        }) = chat_proto::Command::parse(line)
        {
            self.keys.insert(room.folded(), key);
        }
    }

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
                    members.insert(nick.folded(), Member::new(nick.clone()));
                    let joined = Joined {
                        name: room.clone(),
                        members,
                    };
                    self.joined.insert(room.folded(), joined);
                    self.known.insert(room.folded(), room.clone());
                } else if let Some(joined) = self.joined.get_mut(&room.folded()) {
                    joined
                        .members
                        .insert(nick.folded(), Member::new(nick.clone()));
                } else {
                    return false;
                }
            }
            ServerFrame::Part { room, nick, .. } | ServerFrame::Quit { room, nick, .. } => {
                if self.is_me(nick) {
                    self.keys.remove(&room.folded());
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
                    // A new name, the same standing.
                    let member = match joined.members.remove(&old.folded()) {
                        Some(member) => Member {
                            nick: new.clone(),
                            ..member
                        },
                        None => Member::new(new.clone()),
                    };
                    joined.members.insert(new.folded(), member);
                }
            }
            ServerFrame::Members { room, members } => {
                // A long list comes in several frames, and a /who reply repeats what we
                // know: add, never replace; but take the standing it shows.
                let Some(joined) = self.joined.get_mut(&room.folded()) else {
                    return false;
                };
                for m in members {
                    let member = joined
                        .members
                        .entry(m.nick.folded())
                        .or_insert_with(|| Member::new(m.nick.clone()));
                    member.nick.clone_from(&m.nick);
                    member.set_status(m.status);
                }
            }
            ServerFrame::Mode { room, changes, .. } => {
                let Some(joined) = self.joined.get_mut(&room.folded()) else {
                    return false;
                };
                let mut changed = false;
                for (give, flag, arg) in mode_changes(changes) {
                    if flag == 'k' {
                        match arg.filter(|_| give) {
                            Some(key) => self.keys.insert(room.folded(), key.to_owned()),
                            None => self.keys.remove(&room.folded()),
                        };
                        continue;
                    }
                    let Some(member) = arg.and_then(|nick| {
                        Nick::new(nick)
                            .ok()
                            .and_then(|nick| joined.members.get_mut(&nick.folded()))
                    }) else {
                        continue;
                    };
                    let bit = match flag {
                        'o' => &mut member.operator,
                        'v' => &mut member.voice,
                        _ => continue,
                    };
                    changed |= std::mem::replace(bit, give) != give;
                }
                return changed;
            }
            ServerFrame::Kick { room, target, .. } => {
                if !self.is_me(target) {
                    let Some(joined) = self.joined.get_mut(&room.folded()) else {
                        return false;
                    };
                    return joined.members.remove(&target.folded()).is_some();
                }
                // Out of the room, as after our own part; but no CURRENT may follow, so
                // pick the next current room as the server does after a part: the first
                // of the rooms left, by case-folded name.
                self.keys.remove(&room.folded());
                if self.joined.remove(&room.folded()).is_none() {
                    return false;
                }
                if self
                    .current
                    .as_ref()
                    .is_some_and(|c| c.folded() == room.folded())
                {
                    self.current = self.joined.values().next().map(|j| j.name.clone());
                }
            }
            ServerFrame::Invite { room, target, .. } => {
                // A room we are invited to is one to complete after /join.
                if !self.is_me(target) || self.known.contains_key(&room.folded()) {
                    return false;
                }
                self.known.insert(room.folded(), room.clone());
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
        self.members_with_status(room).map(|(_, nick)| nick)
    }

    /// The members of `room` if we are in it, with their standing, sorted by
    /// case-folded name.
    pub fn members_with_status(&self, room: &Room) -> impl Iterator<Item = (Status, &Nick)> {
        self.joined
            .get(&room.folded())
            .into_iter()
            .flat_map(|j| j.members.values())
            .map(|m| (m.status(), &m.nick))
    }

    /// Whether `nick` holds `status` in `room` (a room we are in): [`Status::Operator`]
    /// is `+o`, [`Status::Voice`] is `+v` (an operator may have it too), and
    /// [`Status::Member`] only asks whether it is in the room.
    pub fn has(&self, room: &Room, nick: &Nick, status: Status) -> bool {
        let Some(member) = self
            .joined
            .get(&room.folded())
            .and_then(|j| j.members.get(&nick.folded()))
        else {
            return false;
        };
        match status {
            Status::Operator => member.operator,
            Status::Voice => member.voice,
            Status::Member => true,
        }
    }

    /// Everyone in any room we are in, once each, sorted by case-folded name.
    pub fn everyone(&self) -> impl Iterator<Item = &Nick> {
        let mut all = BTreeMap::new();
        for joined in self.joined.values() {
            for (folded, member) in &joined.members {
                all.insert(folded, &member.nick);
            }
        }
        all.into_values()
    }

    /// The lines that bring a new session (which starts in `#general` only) back to
    /// this one's rooms, with the same current room: `/join` for each other room,
    /// `/part #general` if we had left it, and a last `/join` of the current room.
    pub fn rejoin_lines(&self) -> Vec<String> {
        // (The current room comes last again without its key: joined by then, a
        // `/join` of it only makes it current.)
        let general = Room::general().folded();
        let mut lines: Vec<String> = self
            .joined
            .iter()
            .filter(|(folded, _)| **folded != general)
            .map(|(folded, j)| match self.keys.get(folded) {
                Some(key) => format!("/join {} {key}", j.name),
                None => format!("/join {}", j.name),
            })
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

    fn statuses(state: &ChatState, room: &str) -> Vec<String> {
        state
            .members_with_status(&Room::new(room).unwrap())
            .map(|(status, nick)| format!("{}{nick}", status.prefix()))
            .collect()
    }

    #[test]
    fn members_keep_their_standing_from_members_and_mode() {
        let mut state = alice();
        assert!(apply(&mut state, "MEMBERS #general @alice bob +carol"));
        assert_eq!(statuses(&state, "#general"), ["@alice", "bob", "+carol"]);
        assert!(apply(
            &mut state,
            &format!("MODE #general alice {T} 2 :+ov bob carol")
        ));
        assert_eq!(statuses(&state, "#general"), ["@alice", "@bob", "+carol"]);
        assert!(apply(
            &mut state,
            &format!("MODE #general alice {T} 3 :-v+v CAROL bob")
        ));
        // bob is an operator with voice now: taking operator leaves the voice.
        assert!(apply(
            &mut state,
            &format!("MODE #general alice {T} 4 :-o bob")
        ));
        assert_eq!(statuses(&state, "#general"), ["@alice", "+bob", "carol"]);
        let (general, bob) = (Room::general(), Nick::new("Bob").unwrap());
        assert!(state.has(&general, &bob, Status::Voice));
        assert!(!state.has(&general, &bob, Status::Operator));
        assert!(!state.has(&general, &Nick::new("dave").unwrap(), Status::Member));
    }

    #[test]
    fn modes_without_members_change_nothing() {
        let mut state = alice();
        let before = state.clone();
        for changes in ["+mi", "+k sesame", "+l 50", "-k", "+b bob!*@*", "+o nobody"] {
            let line = format!("MODE #general alice {T} 2 :{changes}");
            assert!(!apply(&mut state, &line), "{line}");
        }
        assert_eq!(state, before);
        // Giving what is had already changes nothing either.
        assert!(apply(
            &mut state,
            &format!("MODE #general alice {T} 3 :+o bob")
        ));
        assert!(!apply(
            &mut state,
            &format!("MODE #general alice {T} 4 :+o bob")
        ));
        // Nor does a room we are not in.
        assert!(!apply(
            &mut state,
            &format!("MODE #elsewhere alice {T} 5 :+o bob")
        ));
        assert_eq!(statuses(&state, "#general"), ["alice", "@bob"]);
    }

    #[test]
    fn mode_changes_take_their_arguments_in_order() {
        assert_eq!(
            mode_changes("+ov-v alice bob carol"),
            [
                (true, 'o', Some("alice")),
                (true, 'v', Some("bob")),
                (false, 'v', Some("carol"))
            ]
        );
        // -k and -l take no argument; +k and +l do; t n m s i never.
        assert_eq!(
            mode_changes("-kl+lo-b 50 bob m!*@*"),
            [
                (false, 'k', None),
                (false, 'l', None),
                (true, 'l', Some("50")),
                (true, 'o', Some("bob")),
                (false, 'b', Some("m!*@*"))
            ]
        );
        assert_eq!(
            mode_changes("+mntsi"),
            ['m', 'n', 't', 's', 'i'].map(|f| (true, f, None))
        );
        assert_eq!(mode_changes("+o"), [(true, 'o', None)]);
        assert!(mode_changes("").is_empty());
    }

    #[test]
    fn a_rename_keeps_the_standing_and_a_kick_removes_the_member() {
        let mut state = alice();
        apply(&mut state, "MEMBERS #general @alice +bob");
        assert!(apply(
            &mut state,
            &format!("RENAME #general bob robert {T} 2")
        ));
        assert_eq!(statuses(&state, "#general"), ["@alice", "+robert"]);
        assert!(apply(
            &mut state,
            &format!("KICK #general alice Robert {T} 3 :spam")
        ));
        assert_eq!(statuses(&state, "#general"), ["@alice"]);
        // Someone who came back starts with no standing.
        apply(&mut state, &format!("JOIN #general robert {T} 4"));
        assert_eq!(statuses(&state, "#general"), ["@alice", "robert"]);
    }

    #[test]
    fn being_kicked_leaves_the_room_like_a_part() {
        let mut state = alice();
        for room in ["#rust", "#ops"] {
            apply(&mut state, &format!("JOIN {room} alice {T} 1"));
        }
        apply(&mut state, "CURRENT #rust");
        // Kicked from another room: the current one stays.
        assert!(apply(
            &mut state,
            &format!("KICK #ops bob alice {T} 2 :bye")
        ));
        assert_eq!(names(state.joined()), ["#general", "#rust"]);
        assert_eq!(state.current().map(Room::as_str), Some("#rust"));
        // Kicked from the current room: the first room left is current, as the server
        // picks after a part.
        assert!(apply(
            &mut state,
            &format!("KICK #Rust bob ALICE {T} 3 :bye")
        ));
        assert_eq!(names(state.joined()), ["#general"]);
        assert_eq!(state.current(), Some(&Room::general()));
        assert_eq!(state.rejoin_lines(), Vec::<String>::new());
        // From the last room: no room.
        assert!(apply(
            &mut state,
            &format!("KICK #general bob alice {T} 4 :bye")
        ));
        assert_eq!(state.current(), None);
        assert_eq!(state.joined().count(), 0);
        // Kicked from a room we are not in (a late frame): nothing to do.
        assert!(!apply(
            &mut state,
            &format!("KICK #rust bob alice {T} 5 :bye")
        ));
    }

    #[test]
    fn an_invitation_makes_the_room_known() {
        let mut state = alice();
        assert!(apply(
            &mut state,
            &format!("INVITE #secret bob alice {T} 1")
        ));
        assert_eq!(names(state.known_rooms()), ["#general", "#secret"]);
        assert_eq!(names(state.joined()), ["#general"]);
        // Someone else's invitation tells us nothing new.
        assert!(!apply(
            &mut state,
            &format!("INVITE #other bob carol {T} 2")
        ));
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
    fn rejoin_lines_give_the_keys_of_keyed_rooms() {
        let mut state = alice();
        state.sent("/join #vault sesame");
        apply(&mut state, &format!("JOIN #vault alice {T} 1"));
        state.sent("/join #attic dusty");
        apply(&mut state, &format!("JOIN #attic alice {T} 2"));
        apply(&mut state, &format!("JOIN #open alice {T} 3"));
        // A key changed while we are in: the new one; removed: none.
        apply(&mut state, &format!("MODE #attic bob {T} 4 :+k cobweb"));
        apply(&mut state, &format!("MODE #open bob {T} 5 :+lk 9 door"));
        apply(&mut state, &format!("MODE #vault bob {T} 6 :-k"));
        apply(&mut state, "CURRENT #general");
        assert_eq!(
            state.rejoin_lines(),
            [
                "/join #attic cobweb",
                "/join #open door",
                "/join #vault",
                "/join #general"
            ]
        );
        // Left: forgotten.
        apply(&mut state, &format!("PART #attic alice {T} 7"));
        state.sent("/join #attic");
        apply(&mut state, &format!("JOIN #attic alice {T} 8"));
        assert!(state.rejoin_lines().contains(&"/join #attic".to_owned()));
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

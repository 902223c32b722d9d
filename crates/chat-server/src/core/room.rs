//! Room governance: a room's modes, its ban list, and the mode changes its operators
//! ask for, in IRC's form (`+mi`, `+o bob`, `+k key`, `-b mask`), which both doors use:
//! the native `/mode` and the IRC `MODE` take the same words.
//!
//! What a room keeps is [`Settings`]: its modes, key, limit, topic, bans and founder. A
//! room created by a user identified to an account is *registered* to it: its settings
//! are written to the store at each change and come back when the room is made again
//! (after it emptied, or after a restart), and its founder is an operator whenever
//! present. Other rooms' settings live as long as the room.

use super::ban::BanTarget;
use super::error::Refusal;
use chat_proto::name::{Nick, Room};
use jiff::Timestamp;
use std::fmt::Write as _;
use std::sync::Arc;

/// Bans one room holds at most.
pub(crate) const ROOM_BAN_LIMIT: usize = 100;

/// Mode changes that take an argument, at most, in one `/mode` (IRC's `MODES`).
pub(crate) const CHANGES_WITH_ARGS: usize = 6;

/// The longest key, in bytes.
pub(crate) const KEY_MAX: usize = 32;

/// The highest member limit `+l` takes.
pub(crate) const LIMIT_MAX: u32 = 1_000_000;

/// Rooms registered to one account at most; rooms it creates past that are not
/// registered.
pub(crate) const ROOMS_PER_ACCOUNT: usize = 20;

/// Invitations one room remembers at most (the oldest is forgotten first).
pub(crate) const INVITE_LIMIT: usize = 64;

/// The flags of a room that take no argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flag {
    /// `t`: only operators set the topic.
    TopicLock = 1,
    /// `n`: no messages from outside the room.
    NoExternal = 2,
    /// `m`: moderated: only voiced members and operators speak.
    Moderated = 4,
    /// `s`: secret: hidden from the room list and `/whois` of non-members.
    Secret = 8,
    /// `i`: invite-only.
    InviteOnly = 16,
}

impl Flag {
    const ALL: [Flag; 5] = [
        Flag::NoExternal,
        Flag::TopicLock,
        Flag::Moderated,
        Flag::Secret,
        Flag::InviteOnly,
    ];

    fn letter(self) -> char {
        match self {
            Flag::TopicLock => 't',
            Flag::NoExternal => 'n',
            Flag::Moderated => 'm',
            Flag::Secret => 's',
            Flag::InviteOnly => 'i',
        }
    }

    fn of(letter: char) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.letter() == letter)
    }
}

/// A room's modes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Modes {
    flags: u8,
    /// `+k`: the key `/join` must give.
    pub(crate) key: Option<Box<str>>,
    /// `+l`: the most members the room takes.
    pub(crate) limit: Option<u32>,
}

/// The modes a new room starts with: `+nt`, as IRC servers do.
impl Modes {
    pub(crate) fn new_room() -> Modes {
        Modes {
            flags: Flag::TopicLock as u8 | Flag::NoExternal as u8,
            key: None,
            limit: None,
        }
    }

    pub(crate) fn has(&self, flag: Flag) -> bool {
        self.flags & flag as u8 != 0
    }

    fn set(&mut self, flag: Flag, on: bool) -> bool {
        let was = self.has(flag);
        if on {
            self.flags |= flag as u8;
        } else {
            self.flags &= !(flag as u8);
        }
        was != on
    }

    /// The flags as letters (`nt`), without the key and limit: how the store keeps them.
    pub(crate) fn letters(&self) -> String {
        Flag::ALL
            .into_iter()
            .filter(|f| self.has(*f))
            .map(Flag::letter)
            .collect()
    }

    /// The modes from the store's letters, key and limit; unknown letters are ignored.
    pub(crate) fn from_parts(letters: &str, key: Option<String>, limit: Option<u32>) -> Modes {
        let mut modes = Modes {
            flags: 0,
            key: key.map(Into::into),
            limit,
        };
        for flag in letters.chars().filter_map(Flag::of) {
            modes.set(flag, true);
        }
        modes
    }

    /// IRC's form: `+ntkl key 50`, the key shown only when `with_key` (to members), `+`
    /// alone for none.
    pub(crate) fn describe(&self, with_key: bool) -> String {
        let mut letters = format!("+{}", self.letters());
        let mut args = String::new();
        if let Some(key) = &self.key {
            letters.push('k');
            let _ = write!(args, " {}", if with_key { key } else { "*" });
        }
        if let Some(limit) = self.limit {
            letters.push('l');
            let _ = write!(args, " {limit}");
        }
        letters + &args
    }
}

/// What a room ban matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mask {
    /// `nick!user@host` (lowercased) with `*` and `?`.
    Identity(String),
    /// `$a:account`: a user identified to the account (folded).
    Account(String),
}

impl Mask {
    /// A mask as `/ban` and `+b` take it: `$a:account`, `nick!user@host`, `user@host`, a
    /// nickname (any user and host) or an address (any nickname from it).
    pub(crate) fn parse(text: &str) -> Result<Mask, Refusal> {
        if let Some(account) = text
            .get(..3)
            .filter(|p| p.eq_ignore_ascii_case("$a:"))
            .map(|_| &text[3..])
        {
            let nick = Nick::new(account)
                .map_err(|e| Refusal::UnknownMode(format!("bad ban mask $a:{account}: {e}")))?;
            return Ok(Mask::Account(nick.folded()));
        }
        if text.contains(['!', '@']) {
            // A mask, whatever its host holds (an IRC cloak has slashes: `user/alice`).
            if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Refusal::UnknownMode(format!("bad ban mask {text:?}")));
            }
            let mask = text.to_lowercase();
            return Ok(Mask::Identity(
                match (mask.contains('!'), mask.contains('@')) {
                    (false, _) => format!("*!{mask}"),
                    (true, false) => format!("{mask}@*"),
                    (true, true) => mask,
                },
            ));
        }
        let target = BanTarget::parse(text)
            .map_err(|why| Refusal::UnknownMode(format!("bad ban mask: {why}")))?;
        match target {
            BanTarget::Mask(mask) => Ok(Mask::Identity(mask)),
            BanTarget::Net { addr, prefix } if prefix == if addr.is_ipv4() { 32 } else { 128 } => {
                Ok(Mask::Identity(format!("*!*@{addr}")))
            }
            BanTarget::Net { .. } => Err(Refusal::UnknownMode(format!(
                "{text:?}: a room ban is a mask; for a network use a host mask like *!*@192.0.2.*"
            ))),
        }
    }

    /// Whether the mask matches `who`.
    pub(crate) fn matches(&self, who: &Identity) -> bool {
        match self {
            Mask::Identity(mask) => super::ban::glob(mask, &who.mask),
            Mask::Account(account) => who.account.as_deref() == Some(account.as_str()),
        }
    }
}

impl std::fmt::Display for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mask::Identity(mask) => f.write_str(mask),
            Mask::Account(account) => write!(f, "$a:{account}"),
        }
    }
}

/// Who a session is, as room bans see it.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// `nick!user@host`, lowercased (a native session's user is its nickname and its host
    /// its address).
    pub(crate) mask: String,
    /// The account it identified to (folded).
    pub(crate) account: Option<Arc<str>>,
}

/// One room ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoomBan {
    pub(crate) mask: Mask,
    /// Who set it, as spelled then.
    pub(crate) by: Nick,
    pub(crate) time: Timestamp,
}

/// A room's topic: what it is, who set it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topic {
    /// The topic.
    pub(crate) text: String,
    /// Who set it, as spelled then.
    pub(crate) by: Nick,
    /// When (the time of its `Kind::Topic` event).
    pub(crate) time: Timestamp,
}

/// What a room keeps: all of it survives a restart for a registered room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The room as its creator spelled it.
    pub(crate) name: Room,
    /// The account the room is registered to, if any.
    pub(crate) founder: Option<Arc<str>>,
    pub(crate) modes: Modes,
    /// Shared, so that listing rooms copies a pointer under the hub's lock.
    pub(crate) topic: Option<Arc<Topic>>,
    pub(crate) bans: Vec<RoomBan>,
}

impl Settings {
    /// A new room's settings.
    pub(crate) fn new(name: Room, founder: Option<Arc<str>>) -> Settings {
        Settings {
            name,
            founder,
            modes: Modes::new_room(),
            topic: None,
            bans: Vec::new(),
        }
    }

    /// The first ban matching `who`, if any.
    pub(crate) fn banned(&self, who: &Identity) -> Option<&RoomBan> {
        self.bans.iter().find(|b| b.mask.matches(who))
    }
}

/// A member's standing in a room: operator, voiced, both or neither (bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Standing(u8);

impl Standing {
    pub(crate) const OPERATOR: Standing = Standing(1);
    pub(crate) const VOICE: Standing = Standing(2);

    pub(crate) fn has(self, what: Standing) -> bool {
        self.0 & what.0 != 0
    }

    fn set(&mut self, what: Standing, on: bool) -> bool {
        let was = self.has(what);
        if on {
            self.0 |= what.0;
        } else {
            self.0 &= !what.0;
        }
        was != on
    }

    /// Whether it may speak in a moderated room, or past a ban.
    pub(crate) fn may_speak(self) -> bool {
        self.0 != 0
    }
}

/// One change a `/mode` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Flag(Flag, bool),
    /// `+k key` / `-k`.
    Key(Option<String>),
    /// `+l n` / `-l`.
    Limit(Option<u32>),
    /// `+b mask` / `-b mask`.
    Ban(bool, Mask),
    /// `+o nick`, `-v nick`.
    Standing(Standing, bool, Nick),
}

/// What a `/mode` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModeRequest {
    /// Show the modes (no words).
    Show,
    /// List the bans (`+b` alone).
    ListBans,
    /// Change them.
    Change(Vec<Change>),
}

/// Reads a `/mode`'s words: IRC's form, flags with `+` and `-`, then the arguments of
/// `o`, `v`, `b`, `+k` and `+l` in order (`-k` takes its argument if one is given, as
/// IRC clients send it).
pub(crate) fn parse_changes(words: &[String]) -> Result<ModeRequest, Refusal> {
    let Some((flags, args)) = words.split_first() else {
        return Ok(ModeRequest::Show);
    };
    if matches!(flags.as_str(), "+b" | "b") && args.is_empty() {
        return Ok(ModeRequest::ListBans);
    }
    // How many arguments the flags from each position on need (`-k`'s is optional: it
    // takes one only when there is one to spare).
    let needs: Vec<usize> = {
        let mut on = true;
        let mut need: Vec<usize> = flags
            .chars()
            .map(|c| match c {
                '+' => {
                    on = true;
                    0
                }
                '-' => {
                    on = false;
                    0
                }
                'o' | 'v' | 'b' => 1,
                'k' | 'l' if on => 1,
                _ => 0,
            })
            .collect();
        need.push(0);
        for i in (0..need.len() - 1).rev() {
            need[i] += need[i + 1];
        }
        need
    };
    let mut args = args.iter();
    let mut changes = Vec::new();
    let mut on = true;
    let mut with_args = 0;
    let unknown = |why: String| Refusal::UnknownMode(why);
    for (at, letter) in flags.chars().enumerate() {
        let mut arg = |what: &str| {
            with_args += 1;
            args.next()
                .map(String::as_str)
                .ok_or_else(|| unknown(format!("{}{letter} needs {what}", sign(on))))
        };
        let change = match letter {
            '+' => {
                on = true;
                continue;
            }
            '-' => {
                on = false;
                continue;
            }
            'o' | 'v' => {
                let nick = arg("a nickname")?;
                let nick = Nick::new(nick).map_err(|e| unknown(format!("{nick:?}: {e}")))?;
                let standing = if letter == 'o' {
                    Standing::OPERATOR
                } else {
                    Standing::VOICE
                };
                Change::Standing(standing, on, nick)
            }
            'b' => Change::Ban(on, Mask::parse(arg("a mask")?)?),
            'k' if on => {
                let key = arg("a key")?;
                let malformed = key.is_empty()
                    || key.len() > KEY_MAX
                    || key.starts_with(['#', ':'])
                    || key.contains(|c: char| c == ',' || c.is_whitespace() || c.is_control());
                if malformed {
                    return Err(Refusal::InvalidKey { max: KEY_MAX });
                }
                Change::Key(Some(key.to_owned()))
            }
            'k' => {
                // IRC clients send the old key with -k; it is not checked, and taken only
                // if the flags after it leave a word over.
                if args.len() > needs[at + 1] {
                    let _ = args.next();
                }
                Change::Key(None)
            }
            'l' if on => {
                let n = arg("a number")?;
                let limit = n
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=LIMIT_MAX).contains(n))
                    .ok_or_else(|| unknown(format!("+l takes a number from 1 to {LIMIT_MAX}")))?;
                Change::Limit(Some(limit))
            }
            'l' => Change::Limit(None),
            other => match Flag::of(other) {
                Some(flag) => Change::Flag(flag, on),
                None => {
                    return Err(unknown(format!(
                        "unknown mode {other:?} (t n m s i k l b o v)"
                    )));
                }
            },
        };
        changes.push(change);
    }
    if with_args > CHANGES_WITH_ARGS {
        return Err(unknown(format!(
            "at most {CHANGES_WITH_ARGS} changes with arguments at once"
        )));
    }
    if args.next().is_some() {
        return Err(unknown("more arguments than the flags take".into()));
    }
    if changes.is_empty() {
        return Err(unknown("no mode given".into()));
    }
    Ok(ModeRequest::Change(changes))
}

fn sign(on: bool) -> char {
    if on { '+' } else { '-' }
}

/// The changes that took effect, in IRC's form (`+o-v bob carol`), for the `MODE` event.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    letters: String,
    args: String,
    sign: Option<bool>,
}

impl Applied {
    pub(crate) fn push(&mut self, on: bool, letter: char, arg: Option<&str>) {
        if self.sign != Some(on) {
            self.letters.push(sign(on));
            self.sign = Some(on);
        }
        self.letters.push(letter);
        if let Some(arg) = arg {
            self.args.push(' ');
            self.args.push_str(arg);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    pub(crate) fn finish(self) -> String {
        self.letters + &self.args
    }
}

/// Applies one room-wide change (not a member's standing) to `settings`; records it in
/// `applied` if it changed anything.
pub(crate) fn apply(
    settings: &mut Settings,
    change: &Change,
    by: &Nick,
    now: Timestamp,
    applied: &mut Applied,
) -> Result<(), Refusal> {
    match change {
        Change::Flag(flag, on) => {
            if settings.modes.set(*flag, *on) {
                applied.push(*on, flag.letter(), None);
            }
        }
        Change::Key(Some(key)) => {
            if settings.modes.key.as_deref() != Some(key.as_str()) {
                settings.modes.key = Some(key.as_str().into());
                applied.push(true, 'k', Some(key));
            }
        }
        Change::Key(None) => {
            if settings.modes.key.take().is_some() {
                applied.push(false, 'k', None);
            }
        }
        Change::Limit(limit) => {
            if settings.modes.limit != *limit {
                settings.modes.limit = *limit;
                match limit {
                    Some(n) => applied.push(true, 'l', Some(&n.to_string())),
                    None => applied.push(false, 'l', None),
                }
            }
        }
        Change::Ban(true, mask) => {
            if !settings.bans.iter().any(|b| b.mask == *mask) {
                if settings.bans.len() >= ROOM_BAN_LIMIT {
                    return Err(Refusal::BanListFull {
                        room: settings.name.clone(),
                        limit: ROOM_BAN_LIMIT,
                    });
                }
                settings.bans.push(RoomBan {
                    mask: mask.clone(),
                    by: by.clone(),
                    time: now,
                });
                applied.push(true, 'b', Some(&mask.to_string()));
            }
        }
        Change::Ban(false, mask) => {
            let before = settings.bans.len();
            settings.bans.retain(|b| b.mask != *mask);
            if settings.bans.len() != before {
                applied.push(false, 'b', Some(&mask.to_string()));
            }
        }
        Change::Standing(..) => {}
    }
    Ok(())
}

/// Applies a standing change to a member; records it if it changed anything.
pub(crate) fn apply_standing(
    standing: &mut Standing,
    what: Standing,
    on: bool,
    nick: &Nick,
    applied: &mut Applied,
) {
    if standing.set(what, on) {
        let letter = if what == Standing::OPERATOR { 'o' } else { 'v' };
        applied.push(on, letter, Some(nick.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    #[test]
    fn changes_are_read_in_irc_form() {
        assert_eq!(parse_changes(&[]), Ok(ModeRequest::Show));
        assert_eq!(parse_changes(&words("+b")), Ok(ModeRequest::ListBans));
        assert_eq!(
            parse_changes(&words("+mi-t+ov+kl bob carol sesame 5")),
            Ok(ModeRequest::Change(vec![
                Change::Flag(Flag::Moderated, true),
                Change::Flag(Flag::InviteOnly, true),
                Change::Flag(Flag::TopicLock, false),
                Change::Standing(Standing::OPERATOR, true, nick("bob")),
                Change::Standing(Standing::VOICE, true, nick("carol")),
                Change::Key(Some("sesame".into())),
                Change::Limit(Some(5)),
            ]))
        );
        assert_eq!(
            parse_changes(&words("-kl oldkey")),
            Ok(ModeRequest::Change(vec![
                Change::Key(None),
                Change::Limit(None)
            ]))
        );
        // -k's word is optional: here 5 is +l's.
        for line in ["-k+l 5", "-k+l old 5"] {
            assert_eq!(
                parse_changes(&words(line)),
                Ok(ModeRequest::Change(vec![
                    Change::Key(None),
                    Change::Limit(Some(5))
                ])),
                "{line}"
            );
        }
        assert_eq!(
            parse_changes(&words("+b Bob")),
            Ok(ModeRequest::Change(vec![Change::Ban(
                true,
                Mask::Identity("bob!*@*".into())
            )]))
        );
        for bad in [
            "+x",
            "+o",
            "+l many",
            "+l 0",
            "+k",
            "+m extra",
            "+",
            "+oooooo a b c d e f g",
        ] {
            assert!(
                matches!(parse_changes(&words(bad)), Err(Refusal::UnknownMode(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn masks_match_identities_and_accounts() {
        let who = Identity {
            mask: "bob!bob@192.0.2.7".into(),
            account: Some("bob".into()),
        };
        let ok = |m: &str| Mask::parse(m).unwrap().matches(&who);
        assert!(ok("bob"));
        assert!(ok("BOB!*@*"));
        assert!(ok("*!*@192.0.2.*"));
        assert!(ok("192.0.2.7"));
        assert!(ok("$a:Bob"));
        assert!(ok("$A:bob"));
        assert!(ok("bob@*"));
        assert_eq!(
            Mask::parse("*!*@user/Alice").unwrap(),
            Mask::Identity("*!*@user/alice".into())
        );
        assert!(!ok("$a:alice"));
        assert!(!ok("b?b!*@10.*"));
        assert!(ok("b?b!*@*"));
        assert!(Mask::parse("192.0.2.0/24").is_err());
        assert_eq!(Mask::parse("$a:Bob").unwrap().to_string(), "$a:bob");
    }

    #[test]
    fn applied_changes_read_as_irc_writes_them() {
        let mut settings = Settings::new(Room::new("#a").unwrap(), None);
        let by = nick("alice");
        let now = jiff::Timestamp::now();
        let mut applied = Applied::default();
        for change in [
            Change::Flag(Flag::Moderated, true),
            Change::Flag(Flag::NoExternal, true), // already set: no effect
            Change::Key(Some("k".into())),
            Change::Flag(Flag::TopicLock, false),
            Change::Limit(Some(3)),
        ] {
            apply(&mut settings, &change, &by, now, &mut applied).unwrap();
        }
        assert_eq!(applied.finish(), "+mk-t+l k 3");
        assert_eq!(settings.modes.describe(true), "+nmkl k 3");
        assert_eq!(settings.modes.describe(false), "+nmkl * 3");
        let back = Modes::from_parts(&settings.modes.letters(), Some("k".into()), Some(3));
        assert_eq!(back, settings.modes);
    }

    #[test]
    fn the_ban_list_is_bounded() {
        let mut settings = Settings::new(Room::new("#a").unwrap(), None);
        let by = nick("alice");
        let now = jiff::Timestamp::now();
        let mut applied = Applied::default();
        for i in 0..ROOM_BAN_LIMIT {
            let ban = Change::Ban(true, Mask::parse(&format!("n{i}")).unwrap());
            apply(&mut settings, &ban, &by, now, &mut applied).unwrap();
        }
        let one_more = Change::Ban(true, Mask::parse("extra").unwrap());
        assert!(matches!(
            apply(&mut settings, &one_more, &by, now, &mut applied),
            Err(Refusal::BanListFull { .. })
        ));
        // A ban already there is no new entry.
        let again = Change::Ban(true, Mask::parse("n0").unwrap());
        assert!(apply(&mut settings, &again, &by, now, &mut applied).is_ok());
    }
}

//! Nicknames and room names: validated newtypes.
//!
//! Both are ASCII, so that every IRC client can show them, and both compare
//! case-insensitively for uniqueness through [`Nick::folded`] and [`Room::folded`]
//! (ASCII case mapping) while keeping the spelling their owner chose.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name was empty.
    #[error("the name is empty")]
    Empty,
    /// The name was longer than allowed.
    #[error("the name is longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A room name did not start with `#`.
    #[error("a room name starts with '#'")]
    NoHash,
    /// The name contained a character that is not allowed, or one not allowed first.
    #[error("{0:?} is not allowed here")]
    BadChar(char),
}

/// A nickname: 1 to 32 ASCII characters; letters, digits and ``-[]\`_^{|}``, not starting
/// with a digit or `-` (the charset IRC accepts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nick(String);

impl Nick {
    /// The longest nickname, in characters.
    pub const MAX_LEN: usize = 32;

    /// Validates `s` as a nickname.
    pub fn new(s: &str) -> Result<Nick, NameError> {
        let mut chars = s.chars();
        let first = chars.next().ok_or(NameError::Empty)?;
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { max: Self::MAX_LEN });
        }
        if !(first.is_ascii_alphabetic() || is_nick_special(first)) {
            return Err(NameError::BadChar(first));
        }
        if let Some(bad) =
            chars.find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || is_nick_special(c)))
        {
            return Err(NameError::BadChar(bad));
        }
        Ok(Nick(s.to_owned()))
    }

    /// The nickname as its owner spelled it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form under which nicknames are unique.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

fn is_nick_special(c: char) -> bool {
    matches!(c, '[' | ']' | '\\' | '`' | '_' | '^' | '{' | '|' | '}')
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Nick {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Nick::new(s)
    }
}

/// A room name: `#` followed by 1 to 50 ASCII letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Room(String);

impl Room {
    /// The longest room name, in characters, without the `#`.
    pub const MAX_LEN: usize = 50;

    /// The room everyone starts in.
    pub const GENERAL: &'static str = "#general";

    /// Validates `s` as a room name.
    pub fn new(s: &str) -> Result<Room, NameError> {
        let rest = match s.strip_prefix('#') {
            Some(rest) => rest,
            None if s.is_empty() => return Err(NameError::Empty),
            None => return Err(NameError::NoHash),
        };
        if rest.is_empty() {
            return Err(NameError::Empty);
        }
        if rest.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { max: Self::MAX_LEN });
        }
        if let Some(bad) = rest
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(NameError::BadChar(bad));
        }
        Ok(Room(s.to_owned()))
    }

    /// `#general`, where everyone starts.
    pub fn general() -> Room {
        Room(Self::GENERAL.to_owned())
    }

    /// The room name with its `#`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form under which room names are unique.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Room {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Room::new(s)
    }
}

/// A room or a nickname: the subject of `/history` and `HISTORYEND`. A word starting with
/// `#` is a room; anything else is a nickname (a private conversation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A room's history.
    Room(Room),
    /// The private conversation with this nickname.
    Nick(Nick),
}

impl Target {
    /// Parses a room (`#...`) or a nickname.
    pub fn new(s: &str) -> Result<Target, NameError> {
        if s.starts_with('#') {
            Room::new(s).map(Target::Room)
        } else {
            Nick::new(s).map(Target::Nick)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Room(room) => room.fmt(f),
            Target::Nick(nick) => nick.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks() {
        assert!(Nick::new("alice").is_ok());
        assert!(Nick::new("[bot]_2").is_ok());
        assert!(Nick::new("a-b").is_ok());
        assert_eq!(Nick::new(""), Err(NameError::Empty));
        assert_eq!(Nick::new("1abc"), Err(NameError::BadChar('1')));
        assert_eq!(Nick::new("-abc"), Err(NameError::BadChar('-')));
        assert_eq!(Nick::new("al ice"), Err(NameError::BadChar(' ')));
        assert_eq!(Nick::new("al\x1bice"), Err(NameError::BadChar('\x1b')));
        assert_eq!(Nick::new("ålice"), Err(NameError::BadChar('å')));
        assert_eq!(
            Nick::new(&"a".repeat(33)),
            Err(NameError::TooLong { max: 32 })
        );
        assert!(Nick::new(&"a".repeat(32)).is_ok());
        assert_eq!(
            Nick::new("Alice").unwrap().folded(),
            Nick::new("aLICE").unwrap().folded()
        );
    }

    #[test]
    fn rooms() {
        assert!(Room::new("#general").is_ok());
        assert!(Room::new("#rust-lang.fr_2").is_ok());
        assert_eq!(Room::new("general"), Err(NameError::NoHash));
        assert_eq!(Room::new("#"), Err(NameError::Empty));
        assert_eq!(Room::new(""), Err(NameError::Empty));
        assert_eq!(Room::new("#a b"), Err(NameError::BadChar(' ')));
        assert_eq!(Room::new("#a\u{202e}"), Err(NameError::BadChar('\u{202e}')));
        assert_eq!(
            Room::new(&format!("#{}", "r".repeat(51))),
            Err(NameError::TooLong { max: 50 })
        );
        assert_eq!(Room::general().as_str(), "#general");
        assert_eq!(Room::new("#Rust").unwrap().folded(), "#rust");
    }
}

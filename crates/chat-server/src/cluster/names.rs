//! Names in NATS: rooms, nicknames, private pairs and node ids as subject tokens and
//! KV keys.
//!
//! A subject token may not hold `.` (the separator), `*` or `>` (wildcards) or
//! whitespace; a KV key must match `[-/_=.a-zA-Z0-9]+`. Legal nicknames hold
//! ``[ ] { } \ | ^ ` `` and legal room names `#` and `.`, so names are encoded: every
//! byte of the (already case-folded) name outside `[a-z0-9_-]` becomes `=` and two
//! upper-case hex digits (`[` is `=5B`, `.` is `=2E`). The encoding is injective and
//! canonical: a token decodes back to exactly one name, and only tokens this module
//! writes decode at all. One string serves as both the subject token and the KV key.
//!
//! A room's token leaves out the `#` every room name starts with (`#rust.fr` is
//! `rust=2Efr`). A private pair is its two nicknames' tokens, the smaller first, joined
//! by `/` (which no token holds: it is encoded `=2F`), so both members name the same
//! pair.

use chat_proto::{Nick, Room};

/// Every subject of the cluster's stream (`CHAT`).
pub const STREAM_SUBJECTS: &str = "chat.>";

/// The subject of a room's events: `chat.room.<room token>`.
pub fn room_subject(room: &Room) -> String {
    format!("chat.room.{}", room_token(room))
}

/// The subject of the private conversation between `a` and `b` (either order):
/// `chat.priv.<pair token>`.
pub fn pair_subject(a: &Nick, b: &Nick) -> String {
    format!("chat.priv.{}", pair_token(a, b))
}

/// Encodes any string: bytes in `[a-z0-9_-]` stay, every other byte is `=XX` (upper-case
/// hex). Empty in, empty out (names never are).
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for &byte in name.as_bytes() {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push('=');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

/// The string `token` encodes, if it is exactly what [`encode`] writes for it (plain
/// bytes as themselves, `=XX` with upper-case hex only for the others, valid UTF-8).
pub fn decode(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if is_plain(byte) {
            out.push(byte);
            i += 1;
        } else if byte == b'=' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            let decoded = hi << 4 | lo;
            if is_plain(decoded) {
                // `=61` for `a` would be a second spelling of the same name.
                return None;
            }
            out.push(decoded);
            i += 3;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// A room's token: its case-folded name without the `#`, encoded.
pub fn room_token(room: &Room) -> String {
    let folded = room.folded();
    encode(folded.strip_prefix('#').unwrap_or(&folded))
}

/// The room (in its case-folded spelling) that `token` names.
pub fn room_from_token(token: &str) -> Option<Room> {
    Room::new(&format!("#{}", decode(token)?)).ok()
}

/// A nickname's token: its case-folded form, encoded. Also the key of its claim in the
/// nicks bucket and of its account.
pub fn nick_token(nick: &Nick) -> String {
    encode(&nick.folded())
}

/// The nickname (case-folded) that `token` names.
pub fn nick_from_token(token: &str) -> Option<Nick> {
    Nick::new(&decode(token)?).ok()
}

/// A private pair's token: the two nicknames' tokens, the smaller case-folded nickname
/// first, joined by `/`. The same whichever of the two asks.
pub fn pair_token(a: &Nick, b: &Nick) -> String {
    let (a, b) = (a.folded(), b.folded());
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{}/{}", encode(&low), encode(&high))
}

/// The pair (case-folded, the smaller first) that `token` names.
pub fn pair_from_token(token: &str) -> Option<(Nick, Nick)> {
    let (low, high) = token.split_once('/')?;
    let (low, high) = (nick_from_token(low)?, nick_from_token(high)?);
    (low.as_str() <= high.as_str()).then_some((low, high))
}

/// A node id's token: the id encoded as it is (node ids are not case-folded).
pub fn node_token(node: &str) -> String {
    encode(node)
}

/// The node id that `token` names (non-empty).
pub fn node_from_token(token: &str) -> Option<String> {
    decode(token).filter(|node| !node.is_empty())
}

/// Whether `token` is a valid subject token: non-empty, no `.`, `*`, `>` or whitespace.
pub fn is_subject_token(token: &str) -> bool {
    !token.is_empty()
        && !token
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control())
}

/// Whether `key` is a valid KV key: `[-/_=.a-zA-Z0-9]+`, not starting or ending with `.`
/// (async-nats refuses those too).
pub fn is_kv_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'=' | b'.'))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_plain(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    fn room(s: &str) -> Room {
        Room::new(s).unwrap()
    }

    #[test]
    fn examples() {
        assert_eq!(room_token(&room("#General")), "general");
        assert_eq!(room_token(&room("#rust-lang.fr_2")), "rust-lang=2Efr_2");
        assert_eq!(nick_token(&nick("Alice")), "alice");
        assert_eq!(nick_token(&nick("[Bot]^`")), "=5Bbot=5D=5E=60");
        assert_eq!(nick_token(&nick("a\\b|c{d}")), "a=5Cb=7Cc=7Bd=7D");
        assert_eq!(pair_token(&nick("bob"), &nick("Alice")), "alice/bob");
        assert_eq!(pair_token(&nick("alice"), &nick("BOB")), "alice/bob");
        assert_eq!(room_subject(&room("#a.b")), "chat.room.a=2Eb");
        assert_eq!(pair_subject(&nick("b"), &nick("a")), "chat.priv.a/b");
        assert_eq!(node_token("node-1"), "node-1");
        assert_eq!(node_token("Node.1"), "=4Eode=2E1");
        assert_eq!(encode("é"), "=C3=A9");
        assert_eq!(decode("=C3=A9").as_deref(), Some("é"));
    }

    #[test]
    fn only_canonical_tokens_decode() {
        assert_eq!(decode("abc").as_deref(), Some("abc"));
        assert_eq!(decode("=61"), None, "a plain byte spelled in hex");
        assert_eq!(decode("=5b"), None, "lower-case hex");
        assert_eq!(decode("=5"), None, "cut short");
        assert_eq!(decode("="), None);
        assert_eq!(decode("=ZZ"), None);
        assert_eq!(decode("A"), None, "an upper-case letter is never plain");
        assert_eq!(decode("a.b"), None);
        assert_eq!(decode("=FF"), None, "not UTF-8");
        assert_eq!(room_from_token("=23general"), None, "a second #");
        assert_eq!(room_from_token(""), None);
        assert_eq!(nick_from_token("1abc"), None, "not a legal nick");
        assert_eq!(pair_from_token("bob/alice"), None, "not in order");
        assert_eq!(pair_from_token("alice"), None);
        assert_eq!(node_from_token(""), None);
    }

    #[test]
    fn validity_checks() {
        assert!(is_subject_token("a=5Bb"));
        assert!(!is_subject_token("a.b"));
        assert!(!is_subject_token("a*"));
        assert!(!is_subject_token(">"));
        assert!(!is_subject_token("a b"));
        assert!(!is_subject_token(""));
        assert!(is_kv_key("a/b=5B"));
        assert!(!is_kv_key("a[b"));
        assert!(!is_kv_key(""));
    }

    fn arb_nick() -> impl Strategy<Value = Nick> {
        "[a-zA-Z\\[\\]\\\\`_^{|}][a-zA-Z0-9\\[\\]\\\\`_^{|}-]{0,31}"
            .prop_map(|s| Nick::new(&s).unwrap())
    }

    fn arb_room() -> impl Strategy<Value = Room> {
        "#[a-zA-Z0-9._-]{1,50}".prop_map(|s| Room::new(&s).unwrap())
    }

    fn valid_both(token: &str) -> bool {
        is_subject_token(token) && is_kv_key(token)
    }

    proptest! {
        #[test]
        fn any_string_round_trips(s in any::<String>()) {
            let token = encode(&s);
            prop_assert_eq!(decode(&token), Some(s.clone()));
            if !s.is_empty() {
                prop_assert!(valid_both(&token), "{token:?}");
            }
        }

        #[test]
        fn decoding_is_canonical(t in "([a-z0-9_./-]|=[0-9A-Fa-f]{2}|[A-Z=])*") {
            if let Some(s) = decode(&t) {
                prop_assert_eq!(encode(&s), t);
            }
        }

        #[test]
        fn rooms_round_trip(room in arb_room()) {
            let token = room_token(&room);
            prop_assert!(valid_both(&token), "{token:?}");
            prop_assert_eq!(room_from_token(&token).map(|r| r.as_str().to_owned()), Some(room.folded()));
            let subject = room_subject(&room);
            prop_assert_eq!(subject.split('.').count(), 3);
        }

        #[test]
        fn nicks_round_trip(nick in arb_nick()) {
            let token = nick_token(&nick);
            prop_assert!(valid_both(&token), "{token:?}");
            prop_assert_eq!(nick_from_token(&token).map(|n| n.as_str().to_owned()), Some(nick.folded()));
        }

        #[test]
        fn distinct_names_distinct_tokens(a in arb_nick(), b in arb_nick(), r in arb_room(), s in arb_room()) {
            prop_assert_eq!(a.folded() == b.folded(), nick_token(&a) == nick_token(&b));
            prop_assert_eq!(r.folded() == s.folded(), room_token(&r) == room_token(&s));
        }

        #[test]
        fn pairs_round_trip(a in arb_nick(), b in arb_nick()) {
            let token = pair_token(&a, &b);
            prop_assert_eq!(&token, &pair_token(&b, &a));
            prop_assert!(valid_both(&token), "{token:?}");
            let (low, high) = pair_from_token(&token).unwrap();
            let mut folded = [a.folded(), b.folded()];
            folded.sort();
            prop_assert_eq!([low.as_str().to_owned(), high.as_str().to_owned()], folded);
            prop_assert_eq!(pair_subject(&a, &b).split('.').count(), 3);
        }

        #[test]
        fn node_ids_round_trip(node in "[ -~]{1,64}") {
            let token = node_token(&node);
            prop_assert!(valid_both(&token), "{token:?}");
            prop_assert_eq!(node_from_token(&token), Some(node));
        }
    }
}

//! The IRC parser and encoder against the shared vectors (`irc-parser-tests`, read from
//! `shared/` beside the repository, as CI lays it out): every case of every file. Each
//! test also counts its cases, so that a file read short (or a newer copy of the
//! vectors, now ircdocs/parser-tests 6b417e6) is noticed. Then proptest round trips.

use std::collections::BTreeMap;

use chat_proto::irc::{Message, mask_matches, split_userhost, valid_hostname};
use proptest::prelude::*;
use serde::Deserialize;

/// Reads one vector file; a missing or malformed file fails the test (never skips).
fn vectors<T: for<'de> Deserialize<'de>>(file: &str) -> Vec<T> {
    #[derive(Deserialize)]
    struct File<T> {
        tests: Vec<T>,
    }
    let path = format!(
        "{}/../../../shared/irc-parser-tests/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (shared/ must sit beside the repository)"));
    let tests = serde_saphyr::from_str::<File<T>>(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .tests;
    assert!(!tests.is_empty(), "{path}: no tests");
    tests
}

/// A message's parts as the vectors give them; missing keys are empty or null.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Atoms {
    #[serde(default)]
    tags: BTreeMap<String, String>,
    source: Option<String>,
    verb: String,
    #[serde(default)]
    params: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitCase {
    input: String,
    atoms: Atoms,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinCase {
    desc: String,
    atoms: Atoms,
    matches: Vec<String>,
}

#[test]
fn msg_split() {
    let cases = vectors::<SplitCase>("msg-split.yaml");
    for case in &cases {
        let m = Message::parse(&case.input).unwrap_or_else(|e| panic!("{:?}: {e}", case.input));
        // The vectors give tags as a map: a key given twice on the wire is there once.
        let tags: BTreeMap<String, String> = m.tags.iter().cloned().collect();
        assert_eq!(tags.len(), m.tags.len(), "{:?}: a key twice", case.input);
        assert_eq!(tags, case.atoms.tags, "{:?}: tags", case.input);
        assert_eq!(m.source, case.atoms.source, "{:?}: source", case.input);
        assert_eq!(m.verb, case.atoms.verb, "{:?}: verb", case.input);
        assert_eq!(m.params, case.atoms.params, "{:?}: params", case.input);
        // And what was parsed writes back to a line that parses the same.
        assert_eq!(
            Message::parse(&m.to_string()).as_ref(),
            Ok(&m),
            "{:?}",
            case.input
        );
    }
    assert_eq!(cases.len(), 35);
}

#[test]
fn msg_join() {
    let cases = vectors::<JoinCase>("msg-join.yaml");
    for case in &cases {
        let atoms = &case.atoms;
        let m = Message {
            tags: atoms.tags.clone().into_iter().collect(),
            source: atoms.source.clone(),
            verb: atoms.verb.clone(),
            params: atoms.params.clone(),
        };
        let line = m.to_string();
        assert!(
            case.matches.contains(&line),
            "{}: wrote {line:?}, expected one of {:?}",
            case.desc,
            case.matches
        );
    }
    assert_eq!(cases.len(), 18);
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserhostCase {
    source: String,
    atoms: UserhostAtoms,
}

/// Missing parts are absent from the source too, so they are `None` here (the file
/// would also accept an empty string).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserhostAtoms {
    nick: String,
    user: Option<String>,
    host: Option<String>,
}

#[test]
fn userhost_split() {
    let cases = vectors::<UserhostCase>("userhost-split.yaml");
    for case in &cases {
        let a = &case.atoms;
        assert_eq!(
            split_userhost(&case.source),
            (a.nick.as_str(), a.user.as_deref(), a.host.as_deref()),
            "{:?}",
            case.source
        );
    }
    assert_eq!(cases.len(), 7);
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostnameCase {
    host: String,
    valid: bool,
}

#[test]
fn validate_hostname() {
    let cases = vectors::<HostnameCase>("validate-hostname.yaml");
    for case in &cases {
        assert_eq!(valid_hostname(&case.host), case.valid, "{:?}", case.host);
    }
    assert_eq!(cases.len(), 19);
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskCase {
    mask: String,
    matches: Vec<String>,
    fails: Vec<String>,
}

#[test]
fn mask_match() {
    let cases = vectors::<MaskCase>("mask-match.yaml");
    for case in &cases {
        for name in &case.matches {
            assert!(mask_matches(&case.mask, name), "{:?} ~ {name:?}", case.mask);
        }
        for name in &case.fails {
            assert!(
                !mask_matches(&case.mask, name),
                "{:?} !~ {name:?}",
                case.mask
            );
        }
    }
    assert_eq!(cases.len(), 6);
}

// ---- proptest round trips ----

/// A tag key: `[+][vendor/]name` as IRCv3 writes them, or anything without ` ` `;` `=`.
fn arb_tag_key() -> impl Strategy<Value = String> {
    prop_oneof![
        r"\+?([a-z0-9.\-]{1,8}/)?[A-Za-z0-9\-]{1,8}",
        r"[^ ;=\r\n\x00]{1,8}",
    ]
}

/// A tag value: anything, often the characters that need escaping.
fn arb_tag_value() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        Just(';'),
        Just(' '),
        Just('\\'),
        Just('\r'),
        Just('\n'),
        Just('='),
        Just(':'),
        any::<char>(),
    ];
    proptest::collection::vec(c, 0..12).prop_map(String::from_iter)
}

/// Tags with distinct keys (of a key given twice a parser keeps only the last), in any
/// order.
fn arb_tags() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((arb_tag_key(), arb_tag_value()), 0..5).prop_map(|mut tags| {
        let mut seen = std::collections::HashSet::new();
        tags.retain(|(key, _)| seen.insert(key.clone()));
        tags
    })
}

fn arb_verb() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z]{1,10}",
        "[0-9]{3}",
        r"[^ :@\r\n\x00][^ \r\n\x00]{0,10}"
    ]
}

/// A parameter before the last: non-empty, no space, not starting with `:`.
fn arb_middle() -> impl Strategy<Value = String> {
    r"[^ :\r\n\x00][^ \r\n\x00]{0,10}"
}

/// The last parameter: anything but line endings, often empty, spaced or with a `:`.
fn arb_last() -> impl Strategy<Value = String> {
    prop_oneof![
        r"[^\r\n\x00]{0,20}",
        r":[^\r\n\x00]{0,10}",
        "[a: ]{0,6}",
        Just(String::new()),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        arb_tags(),
        proptest::option::of(r"[^ \r\n\x00]{1,20}"),
        arb_verb(),
        proptest::collection::vec(arb_middle(), 0..5),
        proptest::option::of(arb_last()),
    )
        .prop_map(|(tags, source, verb, mut params, last)| {
            params.extend(last);
            Message {
                tags,
                source,
                verb,
                params,
            }
        })
}

/// Lines made of IRC's punctuation, to reach the parser's corners more often than
/// arbitrary text does.
fn arb_line() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), r"[@:;= a\\\t\r\n]{0,40}"]
}

proptest! {
    #[test]
    fn a_valid_message_reads_back_as_written(m in arb_message()) {
        let line = m.to_string();
        prop_assert_eq!(Message::parse(&line), Ok(m), "{:?}", line);
    }

    #[test]
    fn any_line_parses_without_panic_and_what_parses_writes_back(line in arb_line()) {
        if let Ok(m) = Message::parse(&line) {
            let written = m.to_string();
            prop_assert_eq!(Message::parse(&written), Ok(m), "{:?} -> {:?}", line, written);
        }
    }
}

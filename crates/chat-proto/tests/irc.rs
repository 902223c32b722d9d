//! The IRC parser and encoder against the shared vectors (`irc-parser-tests`, read from
//! `shared/` beside the repository, as CI lays it out): every case of every file. Each
//! test also counts its cases, so that a file read short (or a newer copy of the
//! vectors, now ircdocs/parser-tests 6b417e6) is noticed.

use std::collections::BTreeMap;

use chat_proto::irc::{Message, mask_matches, split_userhost, valid_hostname};
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

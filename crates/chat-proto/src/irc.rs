//! IRC messages: `[@tags ][:source ]VERB [params...] [:trailing]`, as RFC 1459/2812 and
//! IRCv3 message-tags write them (<https://modern.ircdocs.horse>). Values only: the
//! server's IRC door reads and writes them on its sockets.
//!
//! Parsing follows the shared parser vectors (`irc-parser-tests`): atoms are separated
//! by one or more spaces, an empty trailing (`:`) is a real empty parameter, tag values
//! are unescaped (`\:` `\s` `\\` `\r` `\n`, a lone trailing `\` dropped, any other
//! escaped character kept as itself), and of a tag given twice the last one counts.
//!
//! Beside messages, the helpers the door needs for sources, masks and host names,
//! tested against the same vectors: [`split_userhost`], [`mask_matches`],
//! [`valid_hostname`].

use std::collections::HashSet;
use std::fmt::Write as _;

/// Most bytes of a line without its tags, CRLF included (RFC 1459).
pub const MAX_LINE: usize = 512;

/// Most bytes of a line's tags section, `@` and the space after it included (IRCv3).
pub const MAX_TAGS: usize = 8191;

/// One IRC message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Its tags, in order: key and unescaped value (empty for a tag without one).
    pub tags: Vec<(String, String)>,
    /// Its source (`nick!user@host` or a server name), without the `:`.
    pub source: Option<String>,
    /// Its verb (a command or a three-digit numeric), as sent.
    pub verb: String,
    /// Its parameters; the last may hold spaces or be empty (the trailing one).
    pub params: Vec<String>,
}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No command: nothing but spaces, tags and a source without a verb, or a verb
    /// starting with `@` or `:` (written back it would read as tags or a source).
    #[error("no command")]
    NoVerb,
}

impl Message {
    /// A message of `verb` with `params`, without tags or source.
    pub fn new(verb: &str, params: &[&str]) -> Message {
        Message {
            tags: Vec::new(),
            source: None,
            verb: verb.to_owned(),
            params: params.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// Parses one line, without its line ending.
    pub fn parse(line: &str) -> Result<Message, ParseError> {
        let mut rest = line.trim_start_matches(' ');
        let mut message = Message::default();
        if let Some(tags) = rest.strip_prefix('@') {
            let (tags, after) = tags.split_once(' ').unwrap_or((tags, ""));
            message.tags = parse_tags(tags);
            rest = after.trim_start_matches(' ');
        }
        if let Some(source) = rest.strip_prefix(':') {
            let (source, after) = source.split_once(' ').unwrap_or((source, ""));
            message.source = Some(source.to_owned());
            rest = after.trim_start_matches(' ');
        }
        let (verb, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if verb.is_empty() || verb.starts_with(['@', ':']) {
            return Err(ParseError::NoVerb);
        }
        message.verb = verb.to_owned();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                message.params.push(trailing.to_owned());
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            message.params.push(param.to_owned());
            rest = after;
        }
        Ok(message)
    }

    /// The `index`th parameter, or `""`.
    pub fn param(&self, index: usize) -> &str {
        self.params.get(index).map_or("", String::as_str)
    }

    /// Appends the line, without its line ending. The last parameter is written as a
    /// trailing one (`:`) when it must be: empty, holding a space, or starting with `:`.
    /// A tag with an empty value is written without `=`.
    ///
    /// The message is written as it is: for [`Message::parse`] to read it back, tag keys
    /// are non-empty without ` ` `;` `=`, keys are distinct, the source (if any) has no
    /// space, the verb is non-empty without a space and does not start with `@` or `:`,
    /// and every parameter but the last is non-empty, without a space and does not start
    /// with `:`. On the wire only tag values (escaped) may hold CR, LF or NUL.
    pub fn write(&self, out: &mut String) {
        if !self.tags.is_empty() {
            out.push('@');
            for (i, (key, value)) in self.tags.iter().enumerate() {
                if i > 0 {
                    out.push(';');
                }
                out.push_str(key);
                if !value.is_empty() {
                    out.push('=');
                    escape_tag_value(value, out);
                }
            }
            out.push(' ');
        }
        if let Some(source) = &self.source {
            let _ = write!(out, ":{source} ");
        }
        out.push_str(&self.verb);
        if let Some((last, middle)) = self.params.split_last() {
            for param in middle {
                out.push(' ');
                out.push_str(param);
            }
            out.push(' ');
            if last.is_empty() || last.contains(' ') || last.starts_with(':') {
                out.push(':');
            }
            out.push_str(last);
        }
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = String::new();
        self.write(&mut line);
        f.write_str(&line)
    }
}

/// The tags of a line's tag section (without its `@`): key and unescaped value, empty
/// keys dropped, and of a key given twice only the last (IRCv3: parsers should
/// disregard all but the final occurrence), in the place of that last one.
fn parse_tags(section: &str) -> Vec<(String, String)> {
    // Walked from the end, so that the first time a key is seen is its last occurrence.
    let mut seen = HashSet::new();
    let mut tags: Vec<(String, String)> = section
        .rsplit(';')
        .map(|t| t.split_once('=').unwrap_or((t, "")))
        .filter(|&(key, _)| !key.is_empty() && seen.insert(key))
        .map(|(key, value)| (key.to_owned(), unescape_tag_value(value)))
        .collect();
    tags.reverse();
    tags
}

/// Appends `value` escaped for a tag (`;` `\s` `\\` `\r` `\n`).
pub fn escape_tag_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A tag value as sent, unescaped.
pub fn unescape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('\\') => out.push('\\'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A source's parts: `nick!user@host` → (`nick`, `Some(user)`, `Some(host)`). Either
/// part may be missing (`nick`, `nick!user`, `nick@host`). The nick ends at the first
/// `!` or `@`, the user at the next `@`; the host is the rest, as given (servers send
/// control characters in virtual hosts). A part present but empty (`nick!@host`) is
/// `Some("")`.
pub fn split_userhost(source: &str) -> (&str, Option<&str>, Option<&str>) {
    let Some(end) = source.find(['!', '@']) else {
        return (source, None, None);
    };
    let (nick, rest) = source.split_at(end);
    match rest.strip_prefix('!') {
        Some(userhost) => match userhost.split_once('@') {
            Some((user, host)) => (nick, Some(user), Some(host)),
            None => (nick, Some(userhost), None),
        },
        None => (nick, None, Some(&rest[1..])),
    }
}

/// Whether `name` (usually `nick!user@host`) matches `mask`: `*` is any run of
/// characters (none too), `?` exactly one character, and every other character only
/// itself (`[`, `]` and `\` included: no classes, no escapes, unlike fnmatch).
///
/// Case-sensitive, character by character. Bans and WHO masks are case-insensitive in
/// IRC: fold both sides with the server's case mapping before calling this.
///
/// Time is at most the product of the two lengths (backtracking to the last `*` only),
/// with no recursion, so any mask a client sends is safe.
pub fn mask_matches(mask: &str, name: &str) -> bool {
    let (mut mask_rest, mut name_rest) = (mask, name);
    // After the last `*` seen: the mask after it, and the name it has swallowed up to.
    let mut star: Option<(&str, &str)> = None;
    loop {
        let mut m = mask_rest.chars();
        let mut n = name_rest.chars();
        match (m.next(), n.next()) {
            (Some('*'), _) => {
                mask_rest = m.as_str();
                star = Some((mask_rest, name_rest));
                continue;
            }
            (Some(c), Some(d)) if c == '?' || c == d => {
                mask_rest = m.as_str();
                name_rest = n.as_str();
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        // A mismatch: let the last `*` swallow one more character and try again.
        let Some((after_star, swallowed)) = star else {
            return false;
        };
        let mut rest = swallowed.chars();
        if rest.next().is_none() {
            return false;
        }
        star = Some((after_star, rest.as_str()));
        (mask_rest, name_rest) = (after_star, rest.as_str());
    }
}

/// Whether `host` is a host name a server accepts as its own name or a client's host:
/// dot-separated labels of ASCII letters, digits and `-` (not first or last), each 1 to
/// 63 bytes, at most 253 bytes in all, with at least one dot (a single label such as
/// `irc` or `com` is refused) and at most one dot at the end (`services.` is fine).
/// Internationalised names are taken in their punycode form (`xn--…`) only.
pub fn valid_hostname(host: &str) -> bool {
    if !host.contains('.') {
        return false;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    (1..=253).contains(&name.len())
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_splits_into_its_atoms() {
        let m = Message::parse("@a=b\\sc;d :nick!u@h PRIVMSG #chan  :hello  there").unwrap();
        assert_eq!(
            m.tags,
            [("a".into(), "b c".into()), ("d".into(), String::new())]
        );
        assert_eq!(m.source.as_deref(), Some("nick!u@h"));
        assert_eq!(m.verb, "PRIVMSG");
        assert_eq!(m.params, ["#chan", "hello  there"]);
        assert_eq!(Message::parse("JOIN :").unwrap().params, [""]);
        assert_eq!(Message::parse("   "), Err(ParseError::NoVerb));
    }

    #[test]
    fn a_message_writes_its_trailing_only_when_needed() {
        let write = |m: Message| m.to_string();
        assert_eq!(write(Message::new("JOIN", &["#a"])), "JOIN #a");
        assert_eq!(write(Message::new("TOPIC", &["#a", ""])), "TOPIC #a :");
        assert_eq!(
            write(Message::new("PRIVMSG", &["#a", "hi there"])),
            "PRIVMSG #a :hi there"
        );
        assert_eq!(
            write(Message::new("PRIVMSG", &["#a", ":)"])),
            "PRIVMSG #a ::)"
        );
    }

    #[test]
    fn a_tag_given_twice_keeps_its_last_value() {
        let m = Message::parse("@a=1;b=2;a=3;;=x COMMAND").unwrap();
        assert_eq!(m.tags, [("b".into(), "2".into()), ("a".into(), "3".into())]);
    }

    #[test]
    fn a_verb_that_would_read_back_as_tags_or_source_is_refused() {
        // `@ @b` has an empty tag section; written back, `@b` alone would be tags.
        assert_eq!(Message::parse("@ @b"), Err(ParseError::NoVerb));
        assert_eq!(Message::parse(":src :b c"), Err(ParseError::NoVerb));
        assert_eq!(Message::parse("@ b").unwrap().to_string(), "b");
    }

    #[test]
    fn a_source_splits_into_nick_user_and_host() {
        assert_eq!(split_userhost("n!u@h"), ("n", Some("u"), Some("h")));
        assert_eq!(split_userhost("n@h!x"), ("n", None, Some("h!x")));
        assert_eq!(split_userhost("n!@h"), ("n", Some(""), Some("h")));
        assert_eq!(split_userhost("n!u@h@i"), ("n", Some("u"), Some("h@i")));
        assert_eq!(split_userhost(""), ("", None, None));
    }

    #[test]
    fn masks_match_by_character_and_backtrack_to_the_last_star() {
        assert!(mask_matches("", ""));
        assert!(!mask_matches("", "a"));
        assert!(mask_matches("*", ""));
        assert!(mask_matches("a*b*c", "aXbYbZc"));
        assert!(!mask_matches("a*b*c", "aXbYbZ"));
        assert!(
            mask_matches("?é?", "xéy"),
            "? is one character, not one byte"
        );
        assert!(!mask_matches("??", "é"));
        assert!(mask_matches("a\\*", "a\\bc"), "\\ is no escape");
        assert!(!mask_matches("a\\*", "a*"), "\\ is no escape");
        assert!(!mask_matches("Nick!*@*", "nick!u@h"), "case-sensitive");
        // No blow-up on many stars against a long near-miss.
        let long = "a".repeat(4000);
        assert!(!mask_matches(&("*a".repeat(100) + "b"), &long));
    }

    #[test]
    fn host_names_need_a_dot_and_letter_digit_hyphen_labels() {
        assert!(valid_hostname("irc.example.com"));
        assert!(valid_hostname("services."));
        assert!(!valid_hostname("."));
        assert!(!valid_hostname("a..b"));
        assert!(!valid_hostname(".a.b"));
        assert!(!valid_hostname("a.b.."));
        assert!(!valid_hostname(&format!("{}.com", "a".repeat(64))));
        assert!(valid_hostname(&format!("{}.com", "a".repeat(63))));
        assert!(!valid_hostname("bücher.ch"));
    }
}

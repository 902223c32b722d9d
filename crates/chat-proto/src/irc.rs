//! IRC messages: `[@tags ][:source ]VERB [params...] [:trailing]`, as RFC 1459/2812 and
//! IRCv3 message-tags write them (https://modern.ircdocs.horse). Values only: the
//! server's IRC door reads and writes them on its sockets.
//!
//! Parsing follows the shared parser vectors (`irc-parser-tests`): atoms are separated
//! by one or more spaces, an empty trailing (`:`) is a real empty parameter, tag values
//! are unescaped (`\:` `\s` `\\` `\r` `\n`, a lone trailing `\` dropped, any other
//! escaped character kept as itself), and of a tag given twice the last one counts.

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
}

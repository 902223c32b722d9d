//! Control characters: which text is refused, and how to show text safely.
//!
//! The server refuses control characters in anything a user sends, so through this server
//! they never reach another user's terminal. A client still makes them visible with
//! [`escape_controls`] in case it talks to a server that is less careful.

/// Whether `c` could act on a terminal: C0 controls except tab, DEL, C1 controls, and the
/// Unicode bidirectional overrides and isolates that reorder what a terminal shows.
pub fn is_forbidden(c: char) -> bool {
    match c {
        '\t' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// The first forbidden character in `s`, if any.
pub fn first_forbidden(s: &str) -> Option<char> {
    s.chars().find(|&c| is_forbidden(c))
}

/// `s` with every forbidden character written as a visible escape (`\x1b`, `\u{202e}`),
/// so that text from others can never move the cursor, clear the screen or change colours.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if first_forbidden(s).is_none() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_forbidden(c) {
            let n = c as u32;
            if n <= 0xff {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_sequences() {
        assert_eq!(escape_controls("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape_controls("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape_controls("tab\tok"), "tab\tok");
        assert_eq!(escape_controls("bell\x07"), "bell\\x07");
        assert_eq!(escape_controls("del\x7f c1\u{9b}"), "del\\x7f c1\\x9b");
    }

    #[test]
    fn finds_forbidden() {
        assert_eq!(first_forbidden("plain text, ünïcode"), None);
        assert_eq!(first_forbidden("a\rb"), Some('\r'));
        assert_eq!(first_forbidden("\u{2066}"), Some('\u{2066}'));
    }
}

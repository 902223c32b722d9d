//! A user's real name (IRC's "GECOS"): given with `USER`, changed with `SETNAME`
//! (IRCv3 `setname`), at most [`NAMELEN`] bytes, advertised as ISUPPORT `NAMELEN`.

use super::caps;
use super::encode::{self, Irc};
use crate::core::member::Member;
use std::fmt::Write as _;

/// The longest real name, in bytes: `USER`'s is cut to it, a longer `SETNAME` refused.
pub(crate) const NAMELEN: usize = 128;

/// `USER`'s real name, cut to [`NAMELEN`] bytes at a character's boundary.
pub(crate) fn cut(given: &str) -> &str {
    let mut end = given.len().min(NAMELEN);
    while !given.is_char_boundary(end) {
        end -= 1;
    }
    &given[..end]
}

/// `SETNAME :<real name>`: an empty, too long or control-character-bearing name gets
/// `FAIL SETNAME INVALID_REALNAME`; a good one is taken, the members of the user's rooms
/// that took `setname` are told, and so is the client itself if it took it (without the
/// capability the change is silent, as the specification asks).
pub(crate) fn setname(irc: &mut Irc<'_>, member: &mut Member, given: Option<&str>) {
    let valid = given.filter(|name| {
        !name.is_empty()
            && name.len() <= NAMELEN
            && chat_proto::text::first_forbidden(name).is_none()
    });
    let Some(realname) = valid else {
        irc.server_line(format_args!(
            "FAIL SETNAME INVALID_REALNAME :Real name must be 1 to {NAMELEN} bytes without control characters"
        ));
        return;
    };
    member.set_realname(realname);
    if irc.view.caps.has(caps::SETNAME) {
        let mask = encode::mask(member.source(), &irc.view.server);
        let _ = write!(encode::Writer(irc.out), ":{mask} SETNAME :{realname}\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_real_name_is_cut_at_a_character() {
        assert_eq!(cut("Alice"), "Alice");
        let long = "é".repeat(NAMELEN);
        let cut = cut(&long);
        assert_eq!(cut.len(), NAMELEN);
        let odd = format!("x{long}");
        assert_eq!(super::cut(&odd).len(), NAMELEN - 1);
    }
}

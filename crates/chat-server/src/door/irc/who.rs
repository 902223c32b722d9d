//! `WHO <#room|nick|mask> [%fields[,token]]`: a 352 per user found (or with WHOX's
//! `%fields`, a 354 with those fields), then 315 with the mask as given.
//!
//! A room lists its members (a secret one only to its members); a nickname finds that
//! user wherever it is; a mask (`*` and `?`, over the nickname, or over `nick!user@host`
//! when it has a `!` or `@`) finds only those who share a room with the asker, and the
//! asker: every user is invisible (`+i`).

use super::caps;
use super::encode::{Irc, prefixes, write_realname};
use crate::core::event::Source;
use crate::core::hub::Who;
use crate::core::member::Member;
use chat_proto::{Nick, Room};
use std::fmt::Write as _;

/// WHOX's fields, in the order a 354 gives them, whatever order they were asked in.
const WHOX_ORDER: &str = "tcuihsnfdlaor";

/// What a WHOX asked for: its fields and its token.
#[derive(Debug, PartialEq, Eq)]
struct Whox<'a> {
    fields: String,
    token: &'a str,
}

impl<'a> Whox<'a> {
    /// `WHO`'s second parameter, if it asks for WHOX fields (`%cnf,42`; flags before the
    /// `%` are ignored).
    fn parse(options: &'a str) -> Option<Whox<'a>> {
        let (_, asked) = options.split_once('%')?;
        let (fields, token) = asked.split_once(',').unwrap_or((asked, ""));
        let fields = WHOX_ORDER.chars().filter(|c| fields.contains(*c)).collect();
        Some(Whox { fields, token })
    }
}

pub(crate) fn who(irc: &mut Irc<'_>, member: &Member, mask: &str, options: Option<&str>) {
    let whox = options.and_then(Whox::parse);
    let (room, found) = if let Ok(room) = Room::new(mask) {
        match member.who_in(&room) {
            Ok((room, found)) => (Some(room), found),
            Err(_) => (None, Vec::new()),
        }
    } else if let Ok(nick) = Nick::new(mask) {
        let found = member.whois(&nick).map(|w| Who {
            source: w.source,
            standing: Default::default(),
            away: w.away.is_some(),
            oper: w.oper,
            idle: w.idle,
        });
        (None, found.into_iter().collect())
    } else {
        let pattern = match mask {
            "" | "0" => "*".to_owned(),
            mask => mask.to_ascii_lowercase(),
        };
        let server = irc.view.server.clone();
        let mut found = member.who_shared();
        found.retain(|who| matches(&pattern, &who.source, &server));
        (None, found)
    };
    let room = room.as_ref().map_or("*", |r| r.name.as_str());
    for who in &found {
        match &whox {
            Some(whox) => whox_line(irc, room, who, whox),
            None => who_line(irc, room, who),
        }
    }
    irc.numeric("315", format_args!("{mask} :End of /WHO list"));
}

/// Whether `pattern` (lowercase) matches the nickname of `source`, or its
/// `nick!user@host` when it has a `!` or an `@`.
fn matches(pattern: &str, source: &Source, server: &str) -> bool {
    let text = if pattern.contains(['!', '@']) {
        super::encode::mask(source, server)
    } else {
        source.nick.to_string()
    };
    crate::core::ban::glob(pattern, &text.to_ascii_lowercase())
}

/// `user` and `host` of a source as IRC shows them.
fn user_host<'a>(source: &'a Source, server: &'a str) -> (&'a str, &'a str) {
    match &source.ident {
        Some(ident) => (&ident.user, &ident.host),
        None => (source.nick.as_str(), server),
    }
}

/// `H` or `G`, `*` for a server operator, then the standing's prefixes (every one with
/// `multi-prefix`).
fn flags(irc: &Irc<'_>, who: &Who) -> String {
    let mut flags = String::from(if who.away { "G" } else { "H" });
    if who.oper {
        flags.push('*');
    }
    prefixes(
        who.standing,
        irc.view.caps.has(caps::MULTI_PREFIX),
        &mut flags,
    );
    flags
}

/// `352 me <room|*> <user> <host> <server> <nick> <flags> :0 <realname>`.
fn who_line(irc: &mut Irc<'_>, room: &str, who: &Who) {
    let server = irc.view.server.clone();
    let (user, host) = user_host(&who.source, &server);
    let flags = flags(irc, who);
    let mut realname = String::new();
    write_realname(&mut realname, &who.source);
    let nick = &who.source.nick;
    irc.numeric(
        "352",
        format_args!("{room} {user} {host} {server} {nick} {flags} :0 {realname}"),
    );
}

/// `354 me` and the fields asked for, in WHOX's order: the token, the room (`*`), the
/// user, the address (the host when it is one, else `0`), the host, the server, the
/// nickname, the flags, hops (`0`), seconds idle, the account (`0` for none), the op
/// level (`0`: unknown) and the real name (last, as a trailing parameter).
fn whox_line(irc: &mut Irc<'_>, room: &str, who: &Who, whox: &Whox<'_>) {
    let server = irc.view.server.clone();
    let (user, host) = user_host(&who.source, &server);
    let mut line = String::new();
    for field in whox.fields.chars() {
        line.push(' ');
        let _ = match field {
            't' if whox.token.is_empty() => write!(line, "0"),
            't' => write!(line, "{}", whox.token),
            'c' => write!(line, "{room}"),
            'u' => write!(line, "{user}"),
            'i' if host.parse::<std::net::IpAddr>().is_ok() => write!(line, "{host}"),
            'i' => write!(line, "0"),
            'h' => write!(line, "{host}"),
            's' => write!(line, "{server}"),
            'n' => write!(line, "{}", who.source.nick),
            'f' => write!(line, "{}", flags(irc, who)),
            'd' => write!(line, "0"),
            'l' => write!(line, "{}", who.idle),
            'a' => write!(line, "{}", who.source.account.as_deref().unwrap_or("0")),
            'o' => write!(line, "0"),
            'r' => {
                line.push(':');
                write_realname(&mut line, &who.source);
                Ok(())
            }
            _ => Ok(()),
        };
    }
    irc.numeric("354", format_args!("{}", &line[line.len().min(1)..]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whox_fields_come_in_their_fixed_order_with_the_token() {
        assert_eq!(
            Whox::parse("%rnact,42"),
            Some(Whox {
                fields: "tcnar".into(),
                token: "42"
            })
        );
        assert_eq!(
            Whox::parse("o%nx"),
            Some(Whox {
                fields: "n".into(),
                token: ""
            })
        );
        assert_eq!(Whox::parse("o"), None);
    }

    #[test]
    fn masks_match_the_nickname_or_the_whole_mask() {
        let source = Source {
            nick: Nick::new("Alice").unwrap(),
            account: None,
            ident: Some(std::sync::Arc::new(crate::core::event::Ident {
                user: "~al".into(),
                host: "192.0.2.7".into(),
                realname: "Alice".into(),
            })),
        };
        assert!(matches("al*", &source, "chat.localhost"));
        assert!(matches("?lice", &source, "chat.localhost"));
        assert!(!matches("bob*", &source, "chat.localhost"));
        assert!(matches("*!*@192.0.2.*", &source, "chat.localhost"));
        assert!(!matches("*!*@10.*", &source, "chat.localhost"));
    }
}

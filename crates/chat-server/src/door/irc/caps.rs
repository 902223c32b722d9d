//! IRCv3 capabilities: which the door offers (`CAP LS`), and which a client took
//! (`CAP REQ`), as a set of bits.

/// A set of capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Caps(u32);

pub(crate) const CAP_NOTIFY: Caps = Caps(1);
pub(crate) const ECHO_MESSAGE: Caps = Caps(2);
pub(crate) const MESSAGE_TAGS: Caps = Caps(4);
pub(crate) const MULTI_PREFIX: Caps = Caps(8);
pub(crate) const SERVER_TIME: Caps = Caps(16);
pub(crate) const SASL: Caps = Caps(32);
pub(crate) const AWAY_NOTIFY: Caps = Caps(64);
pub(crate) const ACCOUNT_TAG: Caps = Caps(128);
pub(crate) const INVITE_NOTIFY: Caps = Caps(256);
/// Never sent (hosts do not change), so harmless to take.
pub(crate) const CHGHOST: Caps = Caps(512);
pub(crate) const BATCH: Caps = Caps(1 << 10);
pub(crate) const LABELED_RESPONSE: Caps = Caps(1 << 11);
pub(crate) const CHATHISTORY: Caps = Caps(1 << 12);
pub(crate) const ACCOUNT_REGISTRATION: Caps = Caps(1 << 13);
pub(crate) const USERHOST_IN_NAMES: Caps = Caps(1 << 14);
pub(crate) const EXTENDED_JOIN: Caps = Caps(1 << 15);
pub(crate) const ACCOUNT_NOTIFY: Caps = Caps(1 << 16);
pub(crate) const SETNAME: Caps = Caps(1 << 17);

/// What `CAP LS` offers, by name, in the order listed.
pub(crate) const OFFERED: [(&str, Caps); 18] = [
    ("account-notify", ACCOUNT_NOTIFY),
    ("account-tag", ACCOUNT_TAG),
    ("away-notify", AWAY_NOTIFY),
    ("batch", BATCH),
    ("cap-notify", CAP_NOTIFY),
    ("chghost", CHGHOST),
    ("draft/account-registration", ACCOUNT_REGISTRATION),
    ("draft/chathistory", CHATHISTORY),
    ("echo-message", ECHO_MESSAGE),
    ("extended-join", EXTENDED_JOIN),
    ("invite-notify", INVITE_NOTIFY),
    ("labeled-response", LABELED_RESPONSE),
    ("message-tags", MESSAGE_TAGS),
    ("multi-prefix", MULTI_PREFIX),
    ("sasl", SASL),
    ("server-time", SERVER_TIME),
    ("setname", SETNAME),
    ("userhost-in-names", USERHOST_IN_NAMES),
];

/// The capabilities that keep some of an event's tags: a client with none of them gets
/// the line after the tags.
pub(crate) const ANY_TAG: Caps = Caps(MESSAGE_TAGS.0 | SERVER_TIME.0 | ACCOUNT_TAG.0);

impl Caps {
    /// Whether the set holds `cap` (or, for a set of several, any of them).
    pub(crate) fn has(self, cap: Caps) -> bool {
        self.0 & cap.0 != 0
    }

    /// The names of the capabilities in the set, space-separated.
    pub(crate) fn names(self) -> String {
        OFFERED
            .iter()
            .filter(|(_, c)| self.has(*c))
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The set after a `CAP REQ` of `list` (`name` adds, `-name` removes), or `None` if
    /// it names a capability not offered (the request is then refused whole).
    pub(crate) fn requested(self, list: &str) -> Option<Caps> {
        let mut caps = self;
        for word in list.split_whitespace() {
            let (remove, name) = match word.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, word),
            };
            let (_, cap) = OFFERED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
            if remove {
                caps.0 &= !cap.0;
            } else {
                caps.0 |= cap.0;
            }
        }
        Some(caps)
    }
}

/// The `CAP LS` list: every capability offered; with `CAP LS 302`, with their values
/// (`sasl=PLAIN`).
pub(crate) fn offered(v302: bool) -> String {
    OFFERED
        .iter()
        .map(|(n, _)| match *n {
            "sasl" if v302 => "sasl=PLAIN",
            n => n,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_taken_whole_or_refused() {
        let caps = Caps::default()
            .requested("multi-prefix server-time")
            .unwrap();
        assert!(caps.has(MULTI_PREFIX) && caps.has(SERVER_TIME) && !caps.has(ECHO_MESSAGE));
        assert_eq!(caps.requested("draft/nonesuch multi-prefix"), None);
        let less = caps.requested("-multi-prefix").unwrap();
        assert!(!less.has(MULTI_PREFIX) && less.has(SERVER_TIME));
        assert_eq!(less.names(), "server-time");
    }
}

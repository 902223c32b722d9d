//! Server bans (`/sban`): by address or network (checked when a connection is accepted,
//! and again at its nickname, when the address a proxy gave is known), or by mask
//! `nick!user@host` (checked at the nickname, and at a rename). Held in memory, at most
//! [`BAN_LIMIT`], and kept in the store (`server_bans`) so that they survive a restart; a
//! ban may expire, and an expired one is ignored and pruned (and not loaded again).

use chat_proto::name::Nick;
use jiff::Timestamp;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most bans held at once.
pub(crate) const BAN_LIMIT: usize = 10_000;

/// What a ban matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BanTarget {
    /// A network: the address with its host bits cleared, and the prefix length (32 or
    /// 128 for one address).
    Net { addr: IpAddr, prefix: u8 },
    /// A mask `nick!user@host`, lowercased, with `*` and `?`.
    Mask(String),
}

impl BanTarget {
    /// Parses an address (`192.0.2.7`, `2001:db8::1`), a network in CIDR notation
    /// (`192.0.2.0/24`, `2001:db8::/32`) or a mask: `nick!user@host`, `user@host`
    /// (any nickname) or a bare nickname mask (any user and host).
    pub(crate) fn parse(text: &str) -> Result<BanTarget, String> {
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{text:?} is not a mask, address or network"));
        }
        if let Ok(addr) = text.parse::<IpAddr>() {
            let addr = addr.to_canonical();
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(BanTarget::Net { addr, prefix });
        }
        if let Some((addr, prefix)) = text.split_once('/') {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{text:?}: {addr:?} is not an address"))?;
            let addr = addr.to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length is 0 to {max}"))?;
            return Ok(BanTarget::Net {
                addr: network(addr, prefix),
                prefix,
            });
        }
        let mask = text.to_lowercase();
        let mask = match (mask.contains('!'), mask.contains('@')) {
            (true, true) => mask,
            (false, true) => format!("*!{mask}"),
            (false, false) => format!("{mask}!*@*"),
            (true, false) => format!("{mask}@*"),
        };
        Ok(BanTarget::Mask(mask))
    }

    /// Whether the target bans `ip` (an address or network ban).
    fn bans_address(&self, ip: IpAddr) -> bool {
        match self {
            BanTarget::Net { addr, prefix } => network(ip.to_canonical(), *prefix) == *addr,
            BanTarget::Mask(_) => false,
        }
    }

    /// Whether the target bans `nick!user@host` (already lowercased).
    fn bans_identity(&self, identity: &str) -> bool {
        match self {
            BanTarget::Mask(mask) => glob(mask, identity),
            BanTarget::Net { .. } => false,
        }
    }
}

impl std::fmt::Display for BanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // One address: the whole width of its family.
            BanTarget::Net { addr, prefix } if *prefix == if addr.is_ipv4() { 32 } else { 128 } => {
                write!(f, "{addr}")
            }
            BanTarget::Net { addr, prefix } => write!(f, "{addr}/{prefix}"),
            BanTarget::Mask(mask) => f.write_str(mask),
        }
    }
}

/// `ip` with all but its first `prefix` bits cleared (same family).
fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

/// Whether `text` matches the glob `pattern` (`*`: any run, `?`: one character).
/// Backtracking over the last `*` only: O(pattern × text) at worst, both bounded by the
/// line limit.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// One server ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ban {
    pub(crate) target: BanTarget,
    /// When it stops applying; `None`: never.
    pub(crate) until: Option<Timestamp>,
    /// The operator who set it.
    pub(crate) by: Nick,
    /// Why, told to whoever it refuses.
    pub(crate) reason: Option<String>,
}

impl Ban {
    fn live(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

/// Why adding a ban failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BansFull;

/// The server's bans.
#[derive(Debug, Default)]
pub(crate) struct Bans {
    list: Mutex<Vec<Ban>>,
    /// How many address and mask bans the list holds (expired ones included until they
    /// are pruned): with none, a connection is checked without the lock.
    nets: AtomicUsize,
    masks: AtomicUsize,
}

impl Bans {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Ban>> {
        super::lock(&self.list)
    }

    fn recount(&self, list: &[Ban]) {
        let nets = list
            .iter()
            .filter(|b| matches!(b.target, BanTarget::Net { .. }))
            .count();
        self.nets.store(nets, Ordering::Relaxed);
        self.masks.store(list.len() - nets, Ordering::Relaxed);
    }

    /// Drops the expired bans.
    fn prune(&self, list: &mut Vec<Ban>, now: Timestamp) {
        let before = list.len();
        list.retain(|b| b.live(now));
        if list.len() != before {
            self.recount(list);
        }
    }

    /// Sets `ban`, replacing one of the same target. Returns whether it replaced one.
    pub(crate) fn add(&self, ban: Ban, now: Timestamp) -> Result<bool, BansFull> {
        let mut list = self.lock();
        self.prune(&mut list, now);
        let found = list.iter().position(|b| b.target == ban.target);
        let replaced = match found {
            Some(index) => {
                list[index] = ban;
                true
            }
            None if list.len() >= BAN_LIMIT => return Err(BansFull),
            None => {
                list.push(ban);
                false
            }
        };
        self.recount(&list);
        Ok(replaced)
    }

    /// Lifts the ban of `target`; whether there was one (live).
    pub(crate) fn remove(&self, target: &BanTarget, now: Timestamp) -> bool {
        let mut list = self.lock();
        self.prune(&mut list, now);
        let before = list.len();
        list.retain(|b| b.target != *target);
        self.recount(&list);
        list.len() != before
    }

    /// The bans in force, oldest first.
    pub(crate) fn list(&self, now: Timestamp) -> Vec<Ban> {
        let mut list = self.lock();
        self.prune(&mut list, now);
        list.clone()
    }

    /// The ban in force on `ip`, if any (the accept-time check: lock-free when no
    /// address is banned).
    pub(crate) fn address(&self, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        if self.nets.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.find(now, |t| t.bans_address(ip))
    }

    /// The ban in force on a session called `nick` from `ip`: an address ban, or a mask
    /// matching `nick!nick@ip` (a native session has no user name of its own: its
    /// nickname stands for it, as IRC servers do without ident), case-insensitively.
    pub(crate) fn session(&self, nick: &Nick, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        if let Some(ban) = self.address(ip, now) {
            return Some(ban);
        }
        if self.masks.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let nick = nick.as_str().to_lowercase();
        let identity = format!("{nick}!{nick}@{}", ip.to_canonical());
        self.find(now, |t| t.bans_identity(&identity))
    }

    fn find(&self, now: Timestamp, matches: impl Fn(&BanTarget) -> bool) -> Option<Ban> {
        let mut list = self.lock();
        let found = list.iter().find(|b| matches(&b.target)).cloned();
        match found {
            Some(ban) if ban.live(now) => Some(ban),
            // Expired: prune, and look again among the rest.
            Some(_) => {
                self.prune(&mut list, now);
                list.iter().find(|b| matches(&b.target)).cloned()
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(target: &str, until: Option<Timestamp>) -> Ban {
        Ban {
            target: BanTarget::parse(target).unwrap(),
            until,
            by: Nick::new("root").unwrap(),
            reason: None,
        }
    }

    #[test]
    fn targets_parse_and_print_canonically() {
        let cases = [
            ("192.0.2.7", "192.0.2.7"),
            ("192.0.2.7/24", "192.0.2.0/24"),
            ("2001:DB8::1/32", "2001:db8::/32"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("Bob", "bob!*@*"),
            ("*@192.0.2.*", "*!*@192.0.2.*"),
            ("bob!*", "bob!*@*"),
            ("B?b!*@*", "b?b!*@*"),
        ];
        for (text, want) in cases {
            assert_eq!(BanTarget::parse(text).unwrap().to_string(), want, "{text}");
        }
        for bad in ["", "192.0.2.0/33", "x/8", "a b", "::/129"] {
            assert!(BanTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("a*b?d", "axxbcd"));
        assert!(!glob("a*b?d", "axxbd"));
        assert!(glob("*!*@192.0.2.*", "bob!bob@192.0.2.77"));
        assert!(!glob("*!*@192.0.2.*", "bob!bob@192.0.3.77"));
        assert!(glob("**a", "bba"));
        assert!(glob("j?rg!*@*", "jörg!jörg@::1"));
    }

    #[test]
    fn addresses_networks_and_masks_match_and_expire() {
        let bans = Bans::default();
        let now = Timestamp::from_second(1_000_000).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(bans.address(ip("192.0.2.7"), now), None);
        bans.add(ban("192.0.2.0/24", None), now).unwrap();
        bans.add(ban("2001:db8::/32", None), now).unwrap();
        bans.add(ban("*!*@198.51.100.*", None), now).unwrap();
        bans.add(ban("EVE", None), now).unwrap();
        assert!(bans.address(ip("192.0.2.200"), now).is_some());
        assert!(bans.address(ip("::ffff:192.0.2.200"), now).is_some());
        assert!(bans.address(ip("192.0.3.1"), now).is_none());
        assert!(bans.address(ip("2001:db8:1::5"), now).is_some());
        assert!(bans.address(ip("2001:db9::5"), now).is_none());
        let nick = |s: &str| Nick::new(s).unwrap();
        assert!(bans.session(&nick("Eve"), ip("203.0.113.1"), now).is_some());
        assert!(
            bans.session(&nick("bob"), ip("198.51.100.9"), now)
                .is_some()
        );
        assert!(bans.session(&nick("bob"), ip("203.0.113.1"), now).is_none());
        // An expired ban no longer applies, and is pruned.
        let later = Timestamp::from_second(1_000_060).unwrap();
        bans.add(ban("203.0.113.0/24", Some(later)), now).unwrap();
        assert!(bans.address(ip("203.0.113.1"), now).is_some());
        assert!(bans.address(ip("203.0.113.1"), later).is_none());
        assert_eq!(bans.list(later).len(), 4);
        assert!(bans.remove(&BanTarget::parse("eve").unwrap(), later));
        assert!(!bans.remove(&BanTarget::parse("eve").unwrap(), later));
    }

    #[test]
    fn bans_are_bounded_and_replaced_by_target() {
        let bans = Bans::default();
        let now = Timestamp::from_second(1_000_000).unwrap();
        for n in 0..BAN_LIMIT {
            bans.add(ban(&format!("n{n}"), None), now).unwrap();
        }
        assert_eq!(bans.add(ban("one-more", None), now), Err(BansFull));
        assert_eq!(bans.add(ban("n5", None), now), Ok(true), "replaced");
    }
}

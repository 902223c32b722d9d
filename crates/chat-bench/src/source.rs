//! Source addresses of the bench's connections (`--source 127.0.0.2-127.0.0.9`).
//!
//! One source address has about 28,000 ephemeral ports (`ip_local_port_range`), so a
//! bench, or several benches against one server, that open more connections than that
//! must spread them over several addresses. Loopback gives a whole `/8` of them on
//! Linux without any set-up. Connections take the listed addresses in turn, and each
//! socket binds its address (port 0, the kernel picks the port) before it connects.
//!
//! Only loopback addresses are accepted: a benchmark of this project never uses or
//! targets anything outside `127.0.0.0/8` or `::1`.

use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most addresses one `--source` may list, so that a typo like `127.0.0.1-127.255.0.0`
/// does not allocate millions of entries.
pub const MAX_SOURCES: usize = 65_536;

/// Why a `--source` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// A part is neither an address nor a range of two addresses.
    NotAnAddress(String),
    /// An address outside `127.0.0.0/8` and `::1`.
    NotLoopback(IpAddr),
    /// A range whose ends are of different families, or whose end comes before its start.
    BadRange(IpAddr, IpAddr),
    /// More addresses than [`MAX_SOURCES`].
    TooMany(u128),
    /// Nothing listed.
    Empty,
    /// A source of one family for a server address of the other.
    WrongFamily {
        /// The source address.
        source: IpAddr,
        /// The server's address.
        server: SocketAddr,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::NotAnAddress(s) => write!(
                f,
                "{s:?} is not an IP address or a range like 127.0.0.2-127.0.0.9"
            ),
            SourceError::NotLoopback(ip) => write!(
                f,
                "{ip} is not a loopback address: the bench only uses 127.0.0.0/8 and ::1"
            ),
            SourceError::BadRange(start, end) => write!(
                f,
                "{start}-{end} is not a range: both ends must be of one family, the start first"
            ),
            SourceError::TooMany(n) => {
                write!(
                    f,
                    "{n} source addresses: at most {MAX_SOURCES} may be given"
                )
            }
            SourceError::Empty => f.write_str("no source address given"),
            SourceError::WrongFamily { source, server } => write!(
                f,
                "source address {source} cannot reach {server}: use addresses of the server's family"
            ),
        }
    }
}

impl std::error::Error for SourceError {}

/// The addresses `--source` lists, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceList(Vec<IpAddr>);

impl SourceList {
    /// Parses a comma-separated list of loopback addresses and inclusive ranges
    /// (`127.0.0.2-127.0.0.9,127.0.1.1`).
    pub fn parse(s: &str) -> Result<SourceList, SourceError> {
        let mut addresses = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (start, end) = match part.split_once('-') {
                Some((start, end)) => (parse_ip(start)?, parse_ip(end)?),
                None => {
                    let ip = parse_ip(part)?;
                    (ip, ip)
                }
            };
            let span = span(start, end).ok_or(SourceError::BadRange(start, end))?;
            let total = addresses.len() as u128 + span;
            if total > MAX_SOURCES as u128 {
                return Err(SourceError::TooMany(total));
            }
            addresses.extend((0..span).map(|k| offset(start, k)));
        }
        match addresses.iter().find(|ip| !ip.is_loopback()) {
            Some(ip) => Err(SourceError::NotLoopback(*ip)),
            None if addresses.is_empty() => Err(SourceError::Empty),
            None => Ok(SourceList(addresses)),
        }
    }

    /// The addresses, in the order connections take them.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.0
    }
}

impl Serialize for SourceList {
    /// As the list of addresses, for the JSON line's `params`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, SourceError> {
    let s = s.trim();
    // `[::1]` is how addresses with ports are written; accept it here too.
    let bare = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse()
        .map_err(|_| SourceError::NotAnAddress(s.to_owned()))
}

/// How many addresses `start..=end` holds, if it is a range.
fn span(start: IpAddr, end: IpAddr) -> Option<u128> {
    match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let (a, b) = (u32::from(a), u32::from(b));
            (a <= b).then(|| u128::from(b - a) + 1)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (u128::from(a), u128::from(b));
            // `b - a + 1` overflows only for the whole address space, far too many anyway.
            (a <= b).then(|| (b - a).saturating_add(1))
        }
        _ => None,
    }
}

/// The address `k` after `ip` (within a range already checked).
fn offset(ip: IpAddr, k: u128) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(
            u32::from(a).wrapping_add(u32::try_from(k).unwrap_or(u32::MAX)),
        )),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(k))),
    }
}

/// The source addresses of one run, handed out in turn: connection *i* (in the order
/// connections are opened) binds address *i* mod *k*.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    addresses: Vec<IpAddr>,
    /// Connections that have taken an address so far.
    next: AtomicUsize,
}

impl Sources {
    /// The sources of `list` (none: the kernel chooses), checked against the server's
    /// address family.
    pub(crate) fn new(
        list: Option<&SourceList>,
        server: SocketAddr,
    ) -> Result<Sources, SourceError> {
        let addresses = list.map(|l| l.0.clone()).unwrap_or_default();
        if let Some(source) = addresses.iter().find(|ip| ip.is_ipv4() != server.is_ipv4()) {
            return Err(SourceError::WrongFamily {
                source: *source,
                server,
            });
        }
        Ok(Sources {
            addresses,
            next: AtomicUsize::new(0),
        })
    }

    /// The address the next connection binds, if any were given.
    pub(crate) fn pick(&self) -> Option<IpAddr> {
        if self.addresses.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.addresses[i % self.addresses.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &SourceList) -> Vec<String> {
        list.addresses().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn ranges_and_lists() {
        let list = SourceList::parse("127.0.0.2-127.0.0.4").unwrap();
        assert_eq!(ips(&list), ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
        let list = SourceList::parse("127.0.0.9, 127.0.1.255-127.0.2.0,::1").unwrap();
        assert_eq!(ips(&list), ["127.0.0.9", "127.0.1.255", "127.0.2.0", "::1"]);
        let list = SourceList::parse("[::1]-::1").unwrap();
        assert_eq!(ips(&list), ["::1"]);
        assert_eq!(
            serde_json::to_string(&SourceList::parse("127.0.0.2").unwrap()).unwrap(),
            r#"["127.0.0.2"]"#
        );
    }

    #[test]
    fn only_loopback_is_accepted() {
        for bad in [
            "10.0.0.1",
            "127.255.255.255-128.0.0.1",
            "::2",
            "0.0.0.0",
            "192.168.1.1",
        ] {
            assert!(
                matches!(SourceList::parse(bad), Err(SourceError::NotLoopback(_))),
                "{bad}"
            );
        }
        assert!(
            SourceList::parse("10.0.0.1")
                .unwrap_err()
                .to_string()
                .contains("loopback")
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        assert_eq!(
            SourceList::parse("127.0.0.3-127.0.0.2"),
            Err(SourceError::BadRange(
                "127.0.0.3".parse().unwrap(),
                "127.0.0.2".parse().unwrap()
            ))
        );
        assert!(matches!(
            SourceList::parse("127.0.0.1-::1"),
            Err(SourceError::BadRange(..))
        ));
        assert!(matches!(
            SourceList::parse("localhost"),
            Err(SourceError::NotAnAddress(_))
        ));
        assert_eq!(SourceList::parse(" , "), Err(SourceError::Empty));
        assert!(matches!(
            SourceList::parse("127.0.0.0-127.255.255.255"),
            Err(SourceError::TooMany(16_777_216))
        ));
    }

    #[test]
    fn connections_take_the_addresses_in_turn() {
        let server: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let list = SourceList::parse("127.0.0.2-127.0.0.3").unwrap();
        let sources = Sources::new(Some(&list), server).unwrap();
        let picked: Vec<_> = (0..5)
            .map(|_| sources.pick().unwrap().to_string())
            .collect();
        assert_eq!(
            picked,
            [
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.2"
            ]
        );
        assert_eq!(Sources::new(None, server).unwrap().pick(), None);
        let v6 = SourceList::parse("::1").unwrap();
        assert!(matches!(
            Sources::new(Some(&v6), server),
            Err(SourceError::WrongFamily { .. })
        ));
    }
}

//! The server addresses of a run (`--addr A,B` or `--addr A --addr B`), and which one
//! each connection goes to.
//!
//! With several addresses, say several servers sharing their rooms, the connections are
//! spread round-robin: connection *i* of a group goes to address *i* mod *n*
//! ([`spread`]). A group is what a mode opens together, each counted from 0: the room's
//! members (so sender *i*, which is member *i*, sits on address *i* mod *n* too), then
//! `rate`'s flooders, then its stalled members; `idle`'s and `burst`'s connections;
//! `churn`'s cycles in the order they start. One address gives what a single `--addr`
//! always gave.
//!
//! Each address has its own turn through the `--source` addresses ([`Sources`]),
//! checked against its own family: the connections to one address take the source
//! addresses in turn, whatever the connections to the others do.

use crate::source::{SourceError, SourceList, Sources};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The address index that connection `i` goes to, of `n` addresses: `i` mod `n`.
pub fn spread(i: usize, n: usize) -> usize {
    i % n.max(1)
}

/// How many of `connections` (numbered from 0) go to each of `n` addresses.
pub fn per_address(connections: usize, n: usize) -> Vec<usize> {
    let n = n.max(1);
    (0..n)
        .map(|k| connections / n + usize::from(k < connections % n))
        .collect()
}

/// One server address and its turn through the source addresses.
#[derive(Debug)]
struct Target {
    addr: SocketAddr,
    sources: Sources,
}

/// The resolved server addresses of one run, each with its sources.
#[derive(Debug)]
pub(crate) struct Targets {
    targets: Vec<Target>,
    /// Connections handed out by [`Targets::next`] so far.
    next: AtomicUsize,
}

impl Targets {
    /// The targets for `addrs` (at least one), each with the `--source` addresses of
    /// `list` (none: the kernel chooses), checked against its family.
    pub(crate) fn new(
        addrs: &[SocketAddr],
        list: Option<&SourceList>,
    ) -> Result<Targets, SourceError> {
        let targets = addrs
            .iter()
            .map(|&addr| {
                Ok(Target {
                    addr,
                    sources: Sources::new(list, addr)?,
                })
            })
            .collect::<Result<Vec<_>, SourceError>>()?;
        assert!(!targets.is_empty(), "at least one server address");
        Ok(Targets {
            targets,
            next: AtomicUsize::new(0),
        })
    }

    /// The server addresses, in the order connections take them.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.targets.iter().map(|t| t.addr).collect()
    }

    /// Where connection `i` of its group goes, and the source address it binds (the
    /// next of that server address's turn), if `--source` gave any.
    pub(crate) fn nth(&self, i: usize) -> (SocketAddr, Option<IpAddr>) {
        let target = &self.targets[spread(i, self.targets.len())];
        (target.addr, target.sources.pick())
    }

    /// [`Targets::nth`] for the next connection, counted by this run's own counter (for
    /// connections that are not numbered, such as `churn`'s cycles).
    pub(crate) fn next(&self) -> (SocketAddr, Option<IpAddr>) {
        self.nth(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// How many of `connections` go to each address.
    pub(crate) fn per_address(&self, connections: usize) -> Vec<usize> {
        per_address(connections, self.targets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connection_i_goes_to_address_i_mod_n() {
        let to: Vec<usize> = (0..7).map(|i| spread(i, 3)).collect();
        assert_eq!(to, [0, 1, 2, 0, 1, 2, 0]);
        assert!((0..5).all(|i| spread(i, 1) == 0));
        assert_eq!(per_address(7, 3), [3, 2, 2]);
        assert_eq!(per_address(2, 3), [1, 1, 0]);
        assert_eq!(per_address(6, 2), [3, 3]);
        assert_eq!(per_address(5, 1), [5]);
        assert_eq!(per_address(0, 2), [0, 0]);
        // The counts are those of `spread`.
        for (members, n) in [(7, 3), (100, 4), (1, 2), (10, 1)] {
            let mut counts = vec![0; n];
            (0..members).for_each(|i| counts[spread(i, n)] += 1);
            assert_eq!(counts, per_address(members, n), "{members} over {n}");
        }
    }

    #[test]
    fn members_and_their_senders_are_spread() {
        let (a, b) = (addr("127.0.0.1:7000"), addr("127.0.0.1:7001"));
        let targets = Targets::new(&[a, b], None).unwrap();
        assert_eq!(targets.addrs(), [a, b]);
        // Five members, the first two senders: one sender on each server.
        let to: Vec<SocketAddr> = (0..5).map(|i| targets.nth(i).0).collect();
        assert_eq!(to, [a, b, a, b, a]);
        assert_eq!(targets.per_address(5), [3, 2]);
        assert_eq!(targets.per_address(2), [1, 1]);
        assert_eq!(targets.nth(0).1, None);
        // Unnumbered connections take their own turn from the first address.
        let next: Vec<SocketAddr> = (0..3).map(|_| targets.next().0).collect();
        assert_eq!(next, [a, b, a]);
    }

    #[test]
    fn each_address_takes_the_sources_in_its_own_turn() {
        let (a, b) = (addr("127.0.0.1:7000"), addr("127.0.0.1:7001"));
        let list = SourceList::parse("127.0.0.2-127.0.0.3").unwrap();
        let targets = Targets::new(&[a, b], Some(&list)).unwrap();
        let picked: Vec<(SocketAddr, String)> = (0..6)
            .map(|i| {
                let (to, source) = targets.nth(i);
                (to, source.unwrap().to_string())
            })
            .collect();
        let two = || "127.0.0.2".to_owned();
        let three = || "127.0.0.3".to_owned();
        assert_eq!(
            picked,
            [
                (a, two()),
                (b, two()),
                (a, three()),
                (b, three()),
                (a, two()),
                (b, two()),
            ]
        );
        // Every server address is checked against the sources' family.
        let v6 = addr("[::1]:7000");
        assert!(matches!(
            Targets::new(&[a, v6], Some(&list)),
            Err(SourceError::WrongFamily { server, .. }) if server == v6
        ));
        assert!(Targets::new(&[a, v6], None).is_ok());
    }
}

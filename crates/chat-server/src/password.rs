//! Passwords: argon2id hashes, a pool to compute them that is fair between addresses,
//! and a throttle on wrong guesses.
//!
//! A hash is argon2id with the crate's default parameters (19 MiB, 2 passes, 1 lane: the
//! OWASP recommendation) and a random salt, kept as a PHC string, which names its own
//! parameters so that they can be raised later without invalidating stored hashes.
//! Each run costs ~19 MiB and tens of milliseconds of CPU, so [`Hasher`] runs them off
//! the async threads, a few at a time and at most one per address, and [`Throttle`]
//! makes guessing slow.
//!
//! Passwords are never logged, and no error here contains one.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{OwnedMutexGuard, Semaphore};
use tokio::time::{Duration, Instant};

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HashError {
    /// argon2 refused (only for a password longer than it accepts, 4 GiB).
    #[error("cannot hash the password: {0}")]
    Argon2(argon2::password_hash::Error),
    /// The hashing task did not finish: the runtime is shutting down.
    #[error("the password hashing task did not finish")]
    Interrupted,
}

/// Hashes `password` with argon2id and a fresh random salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). Blocks for tens of milliseconds.
pub(crate) fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|phc| phc.to_string())
        .map_err(HashError::Argon2)
}

/// Whether `password` matches the PHC string `phc`, hashed with the parameters `phc`
/// names. argon2's `verify_password` compares the hashes in constant time, so the time
/// taken tells nothing about how close a guess was. A malformed `phc` matches nothing.
/// Blocks for tens of milliseconds.
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .and_then(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed))
        .is_ok()
}

/// Locks a map of this module. Each operation leaves it consistent, so a panic elsewhere
/// changes nothing.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// First-come first-served queues by key: one holder per key at a time (Tokio's mutex
/// serves its waiters in order). A key's queue exists only while someone holds or waits
/// on it, so there are never more queues than holders and waiters.
struct Queues<K> {
    /// The queues by key.
    queues: Mutex<HashMap<K, Queue>>,
}

/// One key's queue.
struct Queue {
    /// Held by the one whose turn it is.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Places taken (the holder's and the waiters'): the queue goes when the last leaves.
    places: usize,
}

impl<K: Clone + Eq + Hash> Queues<K> {
    fn new() -> Arc<Queues<K>> {
        Arc::new(Queues {
            queues: Mutex::default(),
        })
    }

    /// Takes a place at the end of `key`'s queue.
    fn join(self: &Arc<Self>, key: K) -> Place<K> {
        let mut queues = lock(&self.queues);
        let queue = queues.entry(key.clone()).or_insert_with(|| Queue {
            turn: Arc::default(),
            places: 0,
        });
        queue.places += 1;
        Place {
            turn: Arc::clone(&queue.turn),
            queues: Arc::clone(self),
            key,
        }
    }

    /// Queues in existence, for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.queues).len()
    }
}

/// A place in a key's queue. Dropping it leaves the queue (waiting or not), and frees the
/// queue if it was the last place; the count does not depend on when Tokio's own wait,
/// holding a clone of the mutex, is dropped.
struct Place<K: Clone + Eq + Hash> {
    /// The queue's mutex, to wait on.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Where the place is counted, to leave it.
    queues: Arc<Queues<K>>,
    /// Whose queue it is.
    key: K,
}

impl<K: Clone + Eq + Hash> Place<K> {
    /// Waits until it is this place's turn.
    async fn turn(self) -> Turn<K> {
        let held = Arc::clone(&self.turn).lock_owned().await;
        Turn {
            _held: held,
            _place: self,
        }
    }
}

impl<K: Clone + Eq + Hash> Drop for Place<K> {
    fn drop(&mut self) {
        let mut queues = lock(&self.queues.queues);
        let last = queues.get_mut(&self.key).is_some_and(|queue| {
            queue.places -= 1;
            queue.places == 0
        });
        if last {
            queues.remove(&self.key);
        }
    }
}

/// A key's turn, until dropped. The mutex is released before the place is left (fields
/// drop in order), so a queue never goes while it is held.
struct Turn<K: Clone + Eq + Hash> {
    /// The queue's mutex, held.
    _held: OwnedMutexGuard<()>,
    /// The place it was waited for from.
    _place: Place<K>,
}

/// Hashes concurrently run at most, by default.
const DEFAULT_PARALLEL: usize = 2;

/// Runs [`hash`] and [`verify`] on Tokio's blocking threads, at most a few at a time, so
/// that a burst of logins takes neither the async threads nor all the memory. Fair
/// between addresses: each address (see [`network`]) has at most one run waiting for the
/// pool or in it, so the pool's queue holds at most one run per address, and an address
/// with many connections waits behind itself, not in front of everyone else. Cheap to
/// clone; clones share the limit.
#[derive(Clone)]
pub(crate) struct Hasher {
    /// The pool: one permit per run; waiters are served in order.
    permits: Arc<Semaphore>,
    /// Each address's runs, one at a time, before they ask the pool for a permit.
    addresses: Arc<Queues<IpAddr>>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new(DEFAULT_PARALLEL)
    }
}

impl Hasher {
    /// A hasher running at most `parallel` hashes at once (at least one).
    pub(crate) fn new(parallel: usize) -> Hasher {
        Hasher {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            addresses: Queues::new(),
        }
    }

    /// Hashes `password` for a client at `from` (see [`hash`]).
    pub(crate) async fn hash(&self, from: IpAddr, password: String) -> Result<String, HashError> {
        self.run(from, move || hash(&password))
            .await
            .unwrap_or(Err(HashError::Interrupted))
    }

    /// Whether `password`, from a client at `from`, matches `phc` (see [`verify`]); false
    /// if the check could not run.
    pub(crate) async fn verify(&self, from: IpAddr, password: String, phc: String) -> bool {
        self.run(from, move || verify(&password, &phc))
            .await
            .unwrap_or(false)
    }

    /// Runs `work` on a blocking thread once it is `from`'s turn and a permit is free;
    /// `None` if it did not finish.
    async fn run<T: Send + 'static>(
        &self,
        from: IpAddr,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let turn = self.addresses.join(network(from)).turn().await;
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        // The turn and the permit move into the blocking task: if the session awaiting us
        // is dropped midway, the hash still runs to its end, and still counts against both
        // limits.
        tokio::task::spawn_blocking(move || {
            let _held = (turn, permit);
            work()
        })
        .await
        .ok()
    }
}

/// Delay after the first wrong password.
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// Longest delay, however many wrong passwords.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Nicknames and addresses remembered at most.
const DEFAULT_CAPACITY: usize = 10_000;

/// Who the wrong guesses came from or were aimed at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A folded nickname: slows down guessing one account from many addresses.
    Nick(String),
    /// An address ([`network`]): slows down one address guessing many accounts.
    Net(IpAddr),
}

/// The wrong guesses of one key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the last one was made.
    failed_at: Instant,
    /// How long after it the next guess waits.
    delay: Duration,
}

impl Entry {
    /// When the next guess may be checked.
    fn ready_at(&self) -> Instant {
        self.failed_at + self.delay
    }
}

/// Slows down password guessing, per nickname and per address: after a wrong password,
/// the next attempt on that nickname or from that address is checked only after a delay
/// (0.5 s, doubling with each wrong password, at most 30 s). Bounded in memory.
pub(crate) struct Throttle {
    entries: Mutex<HashMap<Key, Entry>>,
    /// Entries held at most.
    capacity: usize,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(DEFAULT_CAPACITY)
    }
}

impl Throttle {
    /// A throttle remembering at most `capacity` nicknames and addresses.
    pub(crate) fn new(capacity: usize) -> Throttle {
        Throttle {
            entries: Mutex::default(),
            capacity: capacity.max(2),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // Each operation leaves the map consistent; a panic elsewhere changes nothing.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When a password for the folded nickname `nick`, from `ip`, may next be checked;
    /// `None` if now.
    pub(crate) fn ready_at(&self, nick: &str, ip: IpAddr, now: Instant) -> Option<Instant> {
        let entries = self.lock();
        let ready = [Key::Nick(nick.to_owned()), Key::Net(network(ip))]
            .iter()
            .filter_map(|key| entries.get(key).map(Entry::ready_at))
            .max()?;
        (ready > now).then_some(ready)
    }

    /// Records a wrong password for `nick` from `ip`: doubles the delay of both.
    pub(crate) fn failed(&self, nick: &str, ip: IpAddr, now: Instant) {
        let mut entries = self.lock();
        for key in [Key::Nick(nick.to_owned()), Key::Net(network(ip))] {
            if let Some(entry) = entries.get_mut(&key) {
                entry.failed_at = now;
                entry.delay = (entry.delay * 2).min(MAX_DELAY);
                continue;
            }
            if entries.len() >= self.capacity {
                make_room(&mut entries, self.capacity, now);
            }
            entries.insert(
                key,
                Entry {
                    failed_at: now,
                    delay: FIRST_DELAY,
                },
            );
        }
    }

    /// Records a right password for `nick`: its guesses are forgiven. Its address's are
    /// not, so that knowing one password does not help guess others.
    pub(crate) fn succeeded(&self, nick: &str) {
        self.lock().remove(&Key::Nick(nick.to_owned()));
    }

    /// Entries held, for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Frees a place in `entries`, which holds `capacity`: drops those whose delay has
/// passed, and if none has, the one that failed longest ago.
fn make_room(entries: &mut HashMap<Key, Entry>, capacity: usize, now: Instant) {
    entries.retain(|_, entry| entry.ready_at() > now);
    if entries.len() < capacity {
        return;
    }
    // A scan, but only when the map is full of live entries, and each entry cost its
    // maker an argon2 verification.
    let oldest = entries
        .iter()
        .min_by_key(|(_, entry)| entry.failed_at)
        .map(|(key, _)| key.clone());
    if let Some(oldest) = oldest {
        entries.remove(&oldest);
    }
}

/// The network an address stands for: an IPv6 host usually holds a whole /64, so its
/// guesses count together; an IPv4-mapped IPv6 address is its IPv4 address.
fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::task::JoinSet;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Hasher::default();
        let phc = hasher.hash(IP, "correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify(IP, "correct horse".into(), phc.clone()).await);
        assert!(!hasher.verify(IP, "correct horsf".into(), phc.clone()).await);
        assert!(!hasher.verify(IP, String::new(), phc).await);
        assert_eq!(hasher.addresses.len(), 0);
    }

    #[test]
    fn each_hash_has_its_own_salt() {
        assert_ne!(hash("same").unwrap(), hash("same").unwrap());
    }

    #[test]
    fn a_malformed_hash_matches_nothing() {
        assert!(!verify("", ""));
        assert!(!verify("password", "password"));
        assert!(!verify("password", "$argon2id$v=19$m=19456,t=2,p=1$bad"));
    }

    /// Regression: the pool was one queue for everyone, so an address with many
    /// connections queued many runs ahead of everyone else's.
    #[tokio::test]
    async fn the_pool_is_fair_between_addresses() {
        let hasher = Hasher::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let job = |name: &'static str, from: IpAddr| {
            let (hasher, order) = (hasher.clone(), Arc::clone(&order));
            async move { hasher.run(from, move || lock(&order).push(name)).await }
        };
        // The first run from IP holds the pool until released.
        let (started, is_started) = tokio::sync::oneshot::channel();
        let (release, is_released) = std::sync::mpsc::channel::<()>();
        let mut jobs = JoinSet::new();
        {
            let (hasher, order) = (hasher.clone(), Arc::clone(&order));
            jobs.spawn(async move {
                hasher
                    .run(IP, move || {
                        let _ = started.send(());
                        let _ = is_released.recv();
                        lock(&order).push("ip 1");
                    })
                    .await
            });
        }
        is_started.await.unwrap();
        // Two more from IP, then one from elsewhere.
        jobs.spawn(job("ip 2", IP));
        jobs.spawn(job("ip 3", IP));
        jobs.spawn(job("other", OTHER_IP));
        let places = |ip| {
            lock(&hasher.addresses.queues)
                .get(&network(ip))
                .map_or(0, |queue| queue.places)
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            while places(IP) < 3 || places(OTHER_IP) < 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the runs queue");
        release.send(()).unwrap();
        while let Some(done) = jobs.join_next().await {
            done.unwrap().unwrap();
        }
        assert_eq!(*lock(&order), ["ip 1", "other", "ip 2", "ip 3"]);
        assert_eq!(hasher.addresses.len(), 0);
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(throttle.ready_at("alice", IP, t0), None);
        throttle.failed("alice", IP, t0);
        assert_eq!(throttle.ready_at("alice", IP, t0), Some(t0 + ms(500)));
        assert_eq!(throttle.ready_at("alice", IP, t0 + ms(500)), None);
        throttle.failed("alice", IP, t0 + ms(500));
        assert_eq!(throttle.ready_at("alice", IP, t0), Some(t0 + ms(1500)));
        let mut now = t0;
        for _ in 0..10 {
            throttle.failed("alice", IP, now);
            now += ms(60_000);
        }
        let last = now - ms(60_000);
        assert_eq!(throttle.ready_at("alice", IP, last), Some(last + MAX_DELAY));
    }

    #[test]
    fn nick_and_address_are_throttled_apart() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        throttle.failed("alice", IP, t0);
        let later = Some(t0 + ms(500));
        assert_eq!(throttle.ready_at("alice", OTHER_IP, t0), later, "same nick");
        assert_eq!(throttle.ready_at("bob", IP, t0), later, "same address");
        assert_eq!(throttle.ready_at("bob", OTHER_IP, t0), None);
    }

    #[test]
    fn success_forgives_the_nick_not_the_address() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        throttle.failed("alice", IP, t0);
        throttle.succeeded("alice");
        assert_eq!(throttle.ready_at("alice", OTHER_IP, t0), None);
        assert_eq!(throttle.ready_at("alice", IP, t0), Some(t0 + ms(500)));
    }

    #[test]
    fn ipv6_counts_by_its_64_prefix() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        throttle.failed("alice", "2001:db8::1".parse().unwrap(), t0);
        let neighbour = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(throttle.ready_at("bob", neighbour, t0), Some(t0 + ms(500)));
        let elsewhere = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(throttle.ready_at("bob", elsewhere, t0), None);
        let mapped = "::ffff:192.0.2.1".parse().unwrap();
        throttle.failed("carol", IP, t0);
        assert_eq!(throttle.ready_at("dave", mapped, t0), Some(t0 + ms(500)));
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = Throttle::new(4);
        let t0 = Instant::now();
        for (i, nick) in ["a", "b", "c"].into_iter().enumerate() {
            throttle.failed(nick, IP, t0 + ms(100 * i as u64));
        }
        assert_eq!(throttle.len(), 4);
        // Full of live entries: the one that failed longest ago ("a") makes room.
        throttle.failed("d", IP, t0 + ms(300));
        assert_eq!(throttle.len(), 4);
        assert_eq!(throttle.ready_at("a", OTHER_IP, t0), None);
        assert_eq!(throttle.ready_at("b", OTHER_IP, t0), Some(t0 + ms(600)));
        // Once every delay has passed, they all make room at once.
        throttle.failed("e", OTHER_IP, t0 + ms(60_000));
        assert_eq!(throttle.len(), 2);
    }
}

//! Passwords: argon2id hashes, a bounded pool to compute them, and a throttle on wrong
//! guesses.
//!
//! A hash is argon2id with the crate's default parameters (19 MiB, 2 passes, 1 lane: the
//! OWASP recommendation) and a random salt, kept as a PHC string, which names its own
//! parameters so that they can be raised later without invalidating stored hashes.
//! Each run costs ~19 MiB and tens of milliseconds of CPU, so [`Hasher`] runs them off
//! the async threads, a few at a time, and [`Throttle`] makes guessing slow.
//!
//! Passwords are never logged, and no error here contains one.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Semaphore;
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

/// Hashes concurrently run at most, by default.
const DEFAULT_PARALLEL: usize = 2;

/// Runs [`hash`] and [`verify`] on Tokio's blocking threads, at most a few at a time, so
/// that a burst of logins takes neither the async threads nor all the memory. Cheap to
/// clone; clones share the limit.
#[derive(Clone)]
pub(crate) struct Hasher {
    permits: Arc<Semaphore>,
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
        }
    }

    /// Hashes `password` (see [`hash`]).
    pub(crate) async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || hash(&password))
            .await
            .unwrap_or(Err(HashError::Interrupted))
    }

    /// Whether `password` matches `phc` (see [`verify`]); false if the check could not run.
    pub(crate) async fn verify(&self, password: String, phc: String) -> bool {
        self.run(move || verify(&password, &phc))
            .await
            .unwrap_or(false)
    }

    /// Runs `work` on a blocking thread once a permit is free; `None` if it did not finish.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        // The permit moves into the blocking task: if the session awaiting us is dropped
        // midway, the hash still runs to its end, and still counts against the limit.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
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

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Hasher::default();
        let phc = hasher.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify("correct horse".into(), phc.clone()).await);
        assert!(!hasher.verify("correct horsf".into(), phc.clone()).await);
        assert!(!hasher.verify(String::new(), phc).await);
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

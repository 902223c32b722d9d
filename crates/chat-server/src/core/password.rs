//! Passwords: argon2id hashes, a pool to compute them that is fair between addresses,
//! and a throttle on guessing that does not lock a nickname's owner out.
//!
//! A hash is argon2id with the crate's default parameters (19 MiB, 2 passes, 1 lane: the
//! OWASP recommendation) and a random salt, kept as a PHC string, which names its own
//! parameters so that they can be raised later without invalidating stored hashes.
//! Each run costs ~19 MiB and tens of milliseconds of CPU, so [`Hasher`] runs them off
//! the async threads, a few at a time and at most one per address, and [`Throttle`]
//! makes guessing slow.
//!
//! Every wait here is a place in a queue or a timer: a caller that gives up (its
//! connection is gone, its handshake timed out) leaves its queues when dropped, and
//! nothing is recorded for it.
//!
//! Passwords are never logged, and no error here contains one.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{OwnedMutexGuard, Semaphore};
use tokio::time::{Duration, Instant, sleep_until};

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
use super::lock;

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

/// How long wrong passwords are remembered after the last one. Until then the address
/// is *suspect*, and each further one doubles the delay; after it, delays start again
/// from [`FIRST_DELAY`].
const FORGET_AFTER: Duration = Duration::from_secs(10 * 60);

/// Checks a nickname's clean lane allows at once...
const CLEAN_BURST: u32 = 3;

/// ...and then one per this.
const CLEAN_INTERVAL: Duration = Duration::from_secs(2);

/// Addresses, and nicknames, remembered at most, by default.
const DEFAULT_CAPACITY: usize = 10_000;

/// Recent wrong passwords: of an address, or in a nickname's suspect lane.
#[derive(Debug, Clone, Copy)]
struct Failures {
    /// When the last one was answered.
    last: Instant,
    /// How long after it the next check waits.
    delay: Duration,
}

impl Failures {
    /// After one more wrong password at `now`: the delay doubles, or starts again if the
    /// earlier ones are forgotten.
    fn after(earlier: Option<Failures>, now: Instant) -> Failures {
        let delay = match earlier.filter(|f| f.recent(now)) {
            Some(earlier) => (earlier.delay * 2).min(MAX_DELAY),
            None => FIRST_DELAY,
        };
        Failures { last: now, delay }
    }

    /// When the next check may start.
    fn ready_at(&self) -> Instant {
        self.last + self.delay
    }

    /// Whether they are still remembered at `now`.
    fn recent(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) < FORGET_AFTER
    }
}

/// A nickname's clean lane: [`CLEAN_BURST`] checks at once, then one per
/// [`CLEAN_INTERVAL`].
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Checks allowed now, as of `since`.
    tokens: u32,
    /// When the next token started to accrue (meaningless while full).
    since: Instant,
}

impl Bucket {
    fn full(now: Instant) -> Bucket {
        Bucket {
            tokens: CLEAN_BURST,
            since: now,
        }
    }

    /// Adds the tokens accrued by `now`.
    fn refill(&mut self, now: Instant) {
        // At most CLEAN_BURST rounds, however long ago `since` was.
        while self.tokens < CLEAN_BURST && now >= self.since + CLEAN_INTERVAL {
            self.tokens += 1;
            self.since += CLEAN_INTERVAL;
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        if self.tokens == CLEAN_BURST {
            self.since = now;
        }
        self.tokens -= 1;
        true
    }

    /// When the next token is there.
    fn next_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens > 0 {
            now
        } else {
            self.since + CLEAN_INTERVAL
        }
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens == CLEAN_BURST
    }
}

/// What is remembered of one nickname: its two lanes.
#[derive(Debug)]
struct Lanes {
    /// Tokens for checks from clean addresses.
    clean: Bucket,
    /// The ticket of the newest clean check waiting for a token: it alone may take the
    /// next one, and older waiters go to the suspect lane. So the clean lane never
    /// queues: addresses that came before the owner cannot keep the owner waiting.
    waiting: Option<u64>,
    /// Wrong passwords answered in the suspect lane.
    suspect: Option<Failures>,
}

impl Lanes {
    fn new(now: Instant) -> Lanes {
        Lanes {
            clean: Bucket::full(now),
            waiting: None,
            suspect: None,
        }
    }

    /// Whether forgetting it changes nothing.
    fn forgettable(&mut self, now: Instant) -> bool {
        self.clean.is_full(now) && !self.suspect.is_some_and(|f| f.recent(now))
    }

    /// Its last use, roughly: the one forgotten first when memory is full of live ones.
    fn stamp(&self) -> Instant {
        self.suspect
            .map_or(self.clean.since, |f| f.last.max(self.clean.since))
    }
}

/// The throttle's memory, bounded.
#[derive(Debug)]
struct Memory {
    /// Recent wrong passwords by address ([`network`]).
    addresses: HashMap<IpAddr, Failures>,
    /// Lanes by folded nickname.
    nicks: HashMap<String, Lanes>,
    /// The last ticket given to a clean check that waits for a token.
    tickets: u64,
    /// Addresses held at most, and nicknames held at most.
    capacity: usize,
}

impl Memory {
    /// An address's wrong passwords, if recent.
    fn address(&self, address: IpAddr, now: Instant) -> Option<Failures> {
        self.addresses
            .get(&address)
            .copied()
            .filter(|f| f.recent(now))
    }

    /// Records a wrong password from `address`.
    fn address_failed(&mut self, address: IpAddr, now: Instant) {
        let earlier = self.addresses.get(&address).copied();
        if earlier.is_none() {
            make_room(
                &mut self.addresses,
                self.capacity,
                |f| !f.recent(now),
                |f| f.last,
            );
        }
        self.addresses
            .insert(address, Failures::after(earlier, now));
    }

    /// A nickname's lanes, remembered from now on if they were not.
    fn lanes(&mut self, nick: &str, now: Instant) -> &mut Lanes {
        if !self.nicks.contains_key(nick) {
            make_room(
                &mut self.nicks,
                self.capacity,
                |lanes| lanes.forgettable(now),
                Lanes::stamp,
            );
        }
        self.nicks
            .entry(nick.to_owned())
            .or_insert_with(|| Lanes::new(now))
    }
}

/// Frees a place in `map` if it holds `capacity`: drops the entries that can be
/// forgotten, and if none can, the one with the oldest stamp.
fn make_room<K: Clone + Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    capacity: usize,
    mut forgettable: impl FnMut(&mut V) -> bool,
    stamp: impl Fn(&V) -> Instant,
) {
    if map.len() < capacity {
        return;
    }
    map.retain(|_, value| !forgettable(value));
    if map.len() < capacity {
        return;
    }
    // A scan, but only when the map is full of live entries, and each cost its maker an
    // argon2 verification.
    let oldest = map
        .iter()
        .min_by_key(|(_, value)| stamp(value))
        .map(|(key, _)| key.clone());
    if let Some(oldest) = oldest {
        map.remove(&oldest);
    }
}

/// How a check got its turn on a nickname.
enum Lane {
    /// A token of the clean lane.
    Clean,
    /// The suspect lane's turn, held until the answer is recorded.
    Suspect { _turn: Turn<String> },
}

/// Slows down password guessing without locking out a nickname's owner.
///
/// - **Per address** ([`network`]: IPv4, or IPv6 by its /64): checks go one at a time,
///   in order, and after a wrong password the next starts no sooner than the address's
///   delay after the answer: 0.5 s, doubling with each wrong password, at most 30 s. An
///   address with a wrong password in the last 10 minutes is *suspect*; after 10 minutes
///   without one it is forgotten.
/// - **Per nickname, two lanes.** A check from a clean address takes a token of the
///   nickname's clean lane (3 at once, then one per 2 s); without one it waits for the
///   next, unless a newer clean check comes, which then waits instead. A check from a
///   suspect address, or one that a newer check displaced, waits in the nickname's
///   suspect lane: one at a time, in order, and after a wrong password there the next
///   starts no sooner than the lane's delay (0.5 s doubling to 30 s) after the answer. A
///   right password forgives the nickname's suspect lane, not the address.
///
/// So a nickname is checked at most 3 times at once and then once per 2 s from clean
/// addresses (each wrong guess makes its address suspect, so each of these costs the
/// guesser a fresh address), plus once per suspect-lane delay: in a sustained attack, at
/// most 32 checks a minute. Addresses that keep guessing only ever reach the suspect
/// lane, and the owner, from a clean address, waits at most 2 s for a token, unless a
/// check from yet another clean address displaces it meanwhile. Memory is bounded: at
/// most `capacity` addresses and as many nicknames are remembered (when full, the
/// forgettable ones go, then the oldest), and a queue exists only while someone is in
/// it.
pub(crate) struct Throttle {
    /// Each address's checks, one at a time.
    addresses: Arc<Queues<IpAddr>>,
    /// Each nickname's suspect lane, one check at a time.
    suspects: Arc<Queues<String>>,
    /// Wrong passwords and tokens.
    memory: Mutex<Memory>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(DEFAULT_CAPACITY)
    }
}

impl Throttle {
    /// A throttle remembering at most `capacity` addresses and as many nicknames.
    pub(crate) fn new(capacity: usize) -> Throttle {
        Throttle {
            addresses: Queues::new(),
            suspects: Queues::new(),
            memory: Mutex::new(Memory {
                addresses: HashMap::new(),
                nicks: HashMap::new(),
                tickets: 0,
                capacity: capacity.max(1),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Memory> {
        lock(&self.memory)
    }

    /// Checks a password for the folded nickname `nick`, from `ip`, with `verify` (run
    /// only once the throttle allows), and records the answer. Dropped midway, the check
    /// leaves every queue, and records nothing.
    pub(crate) async fn check(
        &self,
        nick: &str,
        ip: IpAddr,
        verify: impl Future<Output = bool>,
    ) -> bool {
        let address = network(ip);
        // The address's turn is held until the answer is recorded, so that parallel
        // checks see each other's failures; its delay counts from its last answer.
        let _address_turn = self.addresses.join(address).turn().await;
        let failures = self.lock().address(address, Instant::now());
        if let Some(failures) = failures {
            sleep_until(failures.ready_at()).await;
        }
        let lane = self.lane(nick, failures.is_some()).await;
        let right = verify.await;
        let now = Instant::now();
        let mut memory = self.lock();
        if right {
            // Knowing one password does not help guess others: the address stays suspect.
            if let Some(lanes) = memory.nicks.get_mut(nick) {
                lanes.suspect = None;
            }
        } else {
            memory.address_failed(address, now);
            if let Lane::Suspect { .. } = lane {
                let lanes = memory.lanes(nick, now);
                lanes.suspect = Some(Failures::after(lanes.suspect, now));
            }
        }
        right
    }

    /// Waits for a turn on `nick`: a clean token if the address is not `suspect` and no
    /// newer clean check displaces this one, else the suspect lane.
    async fn lane(&self, nick: &str, suspect: bool) -> Lane {
        if !suspect && self.clean_token(nick).await {
            return Lane::Clean;
        }
        let turn = self.suspects.join(nick.to_owned()).turn().await;
        let now = Instant::now();
        let failures = self
            .lock()
            .nicks
            .get(nick)
            .and_then(|lanes| lanes.suspect)
            .filter(|f| f.recent(now));
        if let Some(failures) = failures {
            sleep_until(failures.ready_at()).await;
        }
        Lane::Suspect { _turn: turn }
    }

    /// Takes a token of `nick`'s clean lane, waiting for the next (at most
    /// [`CLEAN_INTERVAL`]) as its newest waiter; false once a newer one displaces it.
    async fn clean_token(&self, nick: &str) -> bool {
        let ticket = {
            let mut memory = self.lock();
            memory.tickets += 1;
            let ticket = memory.tickets;
            memory.lanes(nick, Instant::now()).waiting = Some(ticket);
            ticket
        };
        loop {
            let next = {
                let now = Instant::now();
                let mut memory = self.lock();
                let lanes = memory.lanes(nick, now);
                if lanes.waiting != Some(ticket) {
                    return false;
                }
                if lanes.clean.take(now) {
                    lanes.waiting = None;
                    return true;
                }
                lanes.clean.next_at(now)
            };
            sleep_until(next).await;
        }
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

    /// The `n`th of many distinct addresses.
    fn address(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Checks a password for `nick` from `ip` that is `right` or not; returns when it was
    /// verified.
    async fn check_at(throttle: &Throttle, nick: &str, ip: IpAddr, right: bool) -> Instant {
        let mut verified = None;
        let answer = throttle
            .check(nick, ip, async {
                verified = Some(Instant::now());
                right
            })
            .await;
        assert_eq!(answer, right);
        verified.unwrap()
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

    /// Regression: the delay was read, slept and only recorded after the verification,
    /// so parallel checks all found none.
    #[tokio::test(start_paused = true)]
    async fn parallel_checks_from_one_address_are_spaced() {
        let throttle = Arc::new(Throttle::default());
        let t0 = Instant::now();
        let mut checks = JoinSet::new();
        for _ in 0..5 {
            let throttle = Arc::clone(&throttle);
            checks.spawn(async move { check_at(&throttle, "alice", IP, false).await });
        }
        let mut verified = checks.join_all().await;
        verified.sort();
        let after: Vec<_> = verified.iter().map(|at| *at - t0).collect();
        assert_eq!(after, [ms(0), ms(500), ms(1500), ms(3500), ms(7500)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_delay_doubles_to_the_cap_and_is_forgotten() {
        let throttle = Throttle::default();
        // A different nickname each time: only the address's delay counts.
        let mut last = check_at(&throttle, "nick 0", IP, false).await;
        let mut gaps = Vec::new();
        for i in 1..9 {
            let at = check_at(&throttle, &format!("nick {i}"), IP, false).await;
            gaps.push(at - last);
            last = at;
        }
        let expected = [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000].map(ms);
        assert_eq!(gaps, expected);
        // Ten minutes without a wrong password: forgotten, and the delay starts again.
        tokio::time::advance(FORGET_AFTER).await;
        let now = Instant::now();
        let at = check_at(&throttle, "nick 9", IP, false).await;
        assert_eq!(at, now);
        assert_eq!(check_at(&throttle, "nick 9", IP, false).await, at + ms(500));
    }

    #[tokio::test(start_paused = true)]
    async fn the_newest_clean_check_takes_the_next_token() {
        let throttle = Arc::new(Throttle::default());
        let t0 = Instant::now();
        for n in 0..3 {
            assert_eq!(check_at(&throttle, "alice", address(n), false).await, t0);
        }
        let (earlier, later) = {
            let (a, b) = (Arc::clone(&throttle), Arc::clone(&throttle));
            let earlier =
                tokio::spawn(async move { check_at(&a, "alice", address(3), false).await });
            tokio::time::sleep(ms(1000)).await;
            let later = tokio::spawn(async move { check_at(&b, "alice", address(4), false).await });
            (earlier, later)
        };
        // The later takes the token at 2 s; the earlier, displaced, is checked in the
        // suspect lane, where the later's answer is no failure.
        assert_eq!(later.await.unwrap(), t0 + ms(2000));
        assert_eq!(earlier.await.unwrap(), t0 + ms(2000));
        let suspect = throttle.lock().nicks["alice"].suspect.unwrap();
        assert_eq!((suspect.last, suspect.delay), (t0 + ms(2000), FIRST_DELAY));
        // Then one token per 2 s.
        assert_eq!(
            check_at(&throttle, "alice", address(5), false).await,
            t0 + ms(4000)
        );
    }

    /// Regression: one delay per nickname applied to everyone, so guessing kept the owner
    /// out.
    #[tokio::test(start_paused = true)]
    async fn the_owner_is_checked_within_2_s_while_21_addresses_hammer() {
        let throttle = Arc::new(Throttle::default());
        let checks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut attackers = JoinSet::new();
        for n in 0..21 {
            let (throttle, checks) = (Arc::clone(&throttle), Arc::clone(&checks));
            attackers.spawn(async move {
                loop {
                    check_at(&throttle, "alice", address(n), false).await;
                    checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        // Right after the first guesses, and long after.
        tokio::time::sleep(ms(100)).await;
        let asked = Instant::now();
        let verified = check_at(&throttle, "alice", OTHER_IP, true).await;
        assert!(verified - asked <= CLEAN_INTERVAL, "{:?}", verified - asked);
        tokio::time::sleep(Duration::from_secs(600)).await;
        let asked = Instant::now();
        assert_eq!(check_at(&throttle, "alice", IP, true).await, asked);
        // Meanwhile the attackers got through the clean lane once each at most, and
        // through the suspect lane once per delay.
        let checks = checks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            checks <= 21 + 600 / 30 + 8,
            "{checks} wrong guesses in 10 min"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_addresses_share_a_capped_clean_lane() {
        let throttle = Arc::new(Throttle::default());
        let checks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let mut guesses = JoinSet::new();
        // A fresh address every 100 ms for 60 s.
        for n in 0..600 {
            let (throttle, checks) = (Arc::clone(&throttle), Arc::clone(&checks));
            guesses.spawn(async move {
                let at = check_at(&throttle, "alice", address(n), false).await;
                if at - start < Duration::from_secs(60) {
                    checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
            tokio::time::sleep(ms(100)).await;
        }
        // The clean lane: 3, then one per 2 s. The suspect lane: at 0, 0.5, 1.5, 3.5, 7.5,
        // 15.5 and 31.5 s after its first check.
        let checks = checks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(checks <= 3 + 30 + 7, "{checks} guesses in 60 s");
        assert!(checks >= 30, "{checks} guesses in 60 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_check_leaves_no_trace() {
        let throttle = Throttle::default();
        let t0 = check_at(&throttle, "alice", IP, false).await;
        // IP is suspect now. Three checks that never finish: one waits out IP's delay, one
        // waits for IP's turn, and one, from an address made suspect by a wrong password
        // for bob, holds alice's suspect lane; a fourth, from yet another, waits for it.
        check_at(&throttle, "bob", OTHER_IP, false).await;
        check_at(&throttle, "bob", address(1), false).await;
        let never = async {
            tokio::join!(
                throttle.check("alice", IP, async { unreachable!() }),
                throttle.check("alice", IP, async { unreachable!() }),
                throttle.check("alice", OTHER_IP, std::future::pending()),
                throttle.check("alice", address(1), async { unreachable!() }),
            )
        };
        assert!(tokio::time::timeout(ms(400), never).await.is_err());
        assert_eq!(throttle.addresses.len(), 0);
        assert_eq!(throttle.suspects.len(), 0);
        // Nothing was recorded: IP's next check waits 0.5 s after its first answer.
        assert_eq!(check_at(&throttle, "alice", IP, false).await, t0 + ms(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_right_password_forgives_the_nickname_not_the_address() {
        let throttle = Throttle::default();
        check_at(&throttle, "bob", IP, false).await;
        check_at(&throttle, "alice", OTHER_IP, false).await;
        // Both suspect now; two wrong passwords in alice's suspect lane, then a right one.
        let first = check_at(&throttle, "alice", IP, false).await;
        let second = check_at(&throttle, "alice", OTHER_IP, false).await;
        assert_eq!(second, first + ms(500), "the suspect lane's delay");
        let right = check_at(&throttle, "alice", OTHER_IP, true).await;
        assert_eq!(
            right,
            second + ms(1000),
            "the lane's delay, and the address's"
        );
        assert!(throttle.lock().nicks["alice"].suspect.is_none());
        // The lane is forgiven: after its next wrong password it waits 0.5 s, not 2 s.
        let at = check_at(&throttle, "alice", IP, false).await;
        assert_eq!(at, right, "IP's own delay has passed");
        assert_eq!(
            check_at(&throttle, "alice", OTHER_IP, false).await,
            at + ms(500)
        );
        // The address is not: its delay went on doubling, to 2 s.
        assert_eq!(
            check_at(&throttle, "carol", OTHER_IP, false).await,
            at + ms(2500)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded() {
        let throttle = Throttle::new(4);
        for n in 0..6 {
            check_at(&throttle, &format!("nick {n}"), address(n), false).await;
            tokio::time::advance(ms(100)).await;
        }
        {
            let memory = throttle.lock();
            assert_eq!(memory.addresses.len(), 4);
            assert_eq!(memory.nicks.len(), 4);
            // The oldest went first.
            for n in 0..2 {
                assert!(!memory.addresses.contains_key(&address(n)));
                assert!(!memory.nicks.contains_key(&format!("nick {n}")));
            }
        }
        // Forgotten, address 0 is clean again: checked at once.
        let now = Instant::now();
        assert_eq!(check_at(&throttle, "x", address(0), false).await, now);
        // Once they are all forgotten, they all make room at once.
        tokio::time::advance(FORGET_AFTER).await;
        check_at(&throttle, "y", IP, false).await;
        let memory = throttle.lock();
        assert_eq!(memory.addresses.len(), 1);
        assert!(memory.nicks.len() <= 2, "{:?}", memory.nicks.keys());
    }

    #[test]
    fn ipv6_counts_by_its_64_prefix() {
        let net = |s: &str| network(s.parse().unwrap());
        assert_eq!(net("2001:db8::1"), net("2001:db8::ffff:2"));
        assert_ne!(net("2001:db8::1"), net("2001:db8:0:1::1"));
        assert_eq!(net("::ffff:192.0.2.1"), IP);
        assert_eq!(net("192.0.2.1"), IP);
    }
}

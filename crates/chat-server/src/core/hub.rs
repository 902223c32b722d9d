//! The registry of nicknames, rooms and accounts, and the one place where events get
//! their message ids.
//!
//! The hub is a plain `Mutex` over a few maps, held only for a few map operations and
//! never across an `.await`. Sessions come here to register, join, part, rename and
//! leave. An ordinary message does not: the session holds each room's [`Channel`] and
//! publishes to it directly.
//!
//! Every room event is *published*: under the room's own short lock it gets the next
//! message id, goes to the store's queue and is sent to the room's broadcast channel. So
//! ids rise in each room's order, the store receives a room's events in that order, and a
//! query queued after an event always sees it (the store answers in queue order). That
//! is what makes the seam between history and live traffic exact.
//!
//! Room events that concern membership (join, part, quit, rename) are published while the
//! hub lock is held, so their order in a room is the order in which membership changed.
//!
//! A room with more than `--presence-limit` members is *quiet*: its joins, parts and
//! quits are not announced to the others (the one joining or leaving still sees its own
//! `JOIN` or `PART`, with its id in the room's order), and a joiner is not sent the
//! member list (`/who` gives it). Without that, N people joining one room cost N²/2
//! `JOIN` deliveries (50 million for 10,000) and as many names in member lists.

use super::error::{self, Refusal};
use super::event::{Event, Kind, RoomName, Scope, Source, now};
use super::lock;
use super::mailbox::{MailboxSender, mailbox};
use super::metrics::{self, Metrics, Observed};
use super::op::{Local, Log, Logged, Op, Outcome, Said, Shown};
use super::password::{Hasher, Throttle};
use super::ring::{Budget, Cursor, Ring, Weigh};
pub(crate) use super::room::Topic;
use super::room::{
    self, Applied, Change, Flag, Identity, ModeRequest, Modes, RoomBan, Settings, Standing,
};
use super::store::{Account, Busy, Query, Store};
use chat_proto::name::{Nick, Room};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Departures `/whowas` remembers, server-wide; the oldest is forgotten first.
pub(crate) const WHOWAS_LIMIT: usize = 1000;

/// Departures `/whowas` remembers per nickname (the latest).
pub(crate) const WHOWAS_PER_NICK: usize = 3;

/// Ids handed out per millisecond of uptime before a restart could reuse one.
const IDS_PER_MS: u64 = 1024;

/// In a cluster, the events an entry of the log makes have the ids from its sequence
/// shifted left by this much, plus their place among its events (a quit makes one per
/// room): so ids rise in the log's order, and are the same on every node.
pub(crate) const ID_SHIFT: u32 = 16;

thread_local! {
    /// While this thread applies an entry of the cluster's log ([`Hub::apply`], which
    /// never awaits): the id of the next event it makes, and the entry's time in
    /// milliseconds. Sessions on other threads meanwhile make their own events (an
    /// operators' notice) from the hub's ids, and cannot disturb the log's.
    static APPLYING: std::cell::Cell<Option<(u64, i64)>> = const { std::cell::Cell::new(None) };
}

/// The first id of this run: past every stored id, and past every id an earlier run
/// can have handed out without storing it (a `RENAME *`, an event lost in a crash)
/// unless that run averaged over a million ids per second: ids start at the current
/// time in milliseconds times [`IDS_PER_MS`].
fn first_id(stored_next: u64) -> u64 {
    let now_ms = u64::try_from(now().as_millisecond()).unwrap_or(0);
    stored_next.max(now_ms.saturating_mul(IDS_PER_MS)).max(1)
}

impl Weigh for Arc<Event> {
    fn weight(&self) -> usize {
        Event::weight(self)
    }
}

/// One room's fan-out, shared by the hub and the room's members.
pub(crate) struct Channel {
    /// Its names: the folded one (its key in the hub and in the store) and the one its
    /// creator spelled; shared by its events.
    pub(crate) room: Arc<RoomName>,
    /// The room's lock: held while an event gets its id, is queued for the store and is
    /// sent, so that the three orders agree.
    order: Mutex<()>,
    /// The room's latest events, which each member reads at its own pace.
    pub(crate) ring: Ring<Arc<Event>>,
    /// Whether saying something here needs the hub's word ([`Hub::may_speak`]): the
    /// room is moderated ([`Channel::MODERATED`]) or has bans ([`Channel::BANS`]). Zero
    /// for most rooms, so a message costs one load more and no lock.
    gate: AtomicU8,
}

impl Channel {
    const MODERATED: u8 = 1;
    const BANS: u8 = 2;

    /// Whether a member must ask the hub before speaking here.
    pub(crate) fn is_gated(&self) -> bool {
        self.gate.load(Ordering::Relaxed) != 0
    }

    fn set_gate(&self, settings: &Settings) {
        let moderated = if settings.modes.has(Flag::Moderated) {
            Channel::MODERATED
        } else {
            0
        };
        let bans = if settings.bans.is_empty() {
            0
        } else {
            Channel::BANS
        };
        self.gate.store(moderated | bans, Ordering::Relaxed);
    }

    /// The folded name.
    pub(crate) fn key(&self) -> &Arc<str> {
        &self.room.key
    }

    /// The name as spelled.
    pub(crate) fn name(&self) -> &Room {
        &self.room.name
    }
}

/// The ids, the store and the password machinery: what publishing and accounts need.
pub(crate) struct Hub {
    state: Mutex<State>,
    /// The next message id.
    ids: AtomicU64,
    /// How rooms are made and how many may exist.
    rooms: RoomLimits,
    /// What the rooms' rings hold together, and may (`--room-buffer-total`).
    budget: Arc<Budget>,
    /// Rooms with more members than this do not announce joins, parts and quits (0: all
    /// rooms do).
    presence_limit: usize,
    /// History and accounts on disk (or in memory).
    store: Store,
    /// Runs argon2 off the async threads, a few at a time, fairly between addresses.
    pub(crate) hasher: Hasher,
    /// Slows down password guessing per address and per nickname, without locking a
    /// nickname's owner out.
    pub(crate) throttle: Throttle,
    /// What the server counts, for `/metrics`.
    pub(crate) metrics: Metrics,
    /// When the hub started: the origin of every [`Activity`] (by the runtime's clock),
    /// and the same moment by the wall clock.
    epoch: Instant,
    started: jiff::Timestamp,
    /// The server's operators: name, and the argon2 hash of its password.
    operators: HashMap<String, String>,
    /// Server bans (checked at accept, at the nickname and at a rename).
    pub(crate) bans: super::ban::Bans,
    /// The cluster's log, when the server is one node of a cluster: then every event is
    /// made by applying the log ([`Hub::apply`]), never straight from a session.
    log: OnceLock<Arc<dyn Log>>,
    /// Events with smaller ids are in the store already: a node replaying the log
    /// after a restart makes them again, for its state, but does not keep them twice.
    kept_from: u64,
}

/// A connected, named session as the hub sees it.
struct User {
    /// Who it is (its nickname as spelled, its account, its host).
    source: Arc<Source>,
    /// Where private messages for this session go.
    mailbox: MailboxSender<Arc<Event>>,
    /// Folded names of the rooms it is in, so a disconnect can leave them all.
    rooms: Vec<String>,
    /// Its away text (`/away`), if away. Bounded by the line limit, as any text.
    away: Option<Arc<str>>,
    /// When it connected, over what, and when its client last sent a line (written by
    /// its member).
    activity: Arc<Activity>,
}

/// When a session connected and over what, and when its client last sent a line:
/// shared by its member (which writes the last) and the hub (which reads them for
/// `/whois`). Times are whole seconds since the hub started ([`Hub::uptime_secs`]), the
/// last line's written only when the second changed, so a busy client costs one
/// relaxed load per line; 12 bytes (16 with the `Arc`'s counts... rounded by the
/// allocator), as every connection has one: the operator flags live in its padding.
#[derive(Debug)]
pub(crate) struct Activity {
    last_input: AtomicU32,
    /// When it connected.
    since: u32,
    /// Whether its connection is TLS.
    tls: bool,
    /// Whether it is a server operator (`/oper`); in the padding, so free.
    oper: AtomicBool,
    /// Whether it asked for operators' notices (`/wallops on`).
    wallops: AtomicBool,
}

impl User {
    /// What tells this session from a later one of the same nickname while it lives:
    /// the address of its activity record.
    fn session(&self) -> usize {
        Arc::as_ptr(&self.activity) as usize
    }
}

impl Activity {
    fn new(now: u32, tls: bool) -> Activity {
        Activity {
            last_input: AtomicU32::new(now),
            since: now,
            tls,
            oper: AtomicBool::new(false),
            wallops: AtomicBool::new(false),
        }
    }

    /// Whether the session is a server operator.
    pub(crate) fn is_oper(&self) -> bool {
        self.oper.load(Ordering::Relaxed)
    }

    /// Makes the session a server operator (for the rest of its life).
    pub(crate) fn set_oper(&self) {
        self.oper.store(true, Ordering::Relaxed);
    }

    /// Asks for operators' notices (`true`) or stops them.
    pub(crate) fn set_wallops(&self, on: bool) {
        self.wallops.store(on, Ordering::Relaxed);
    }

    /// Whether operators' notices reach the session.
    pub(crate) fn hears_wallops(&self) -> bool {
        self.is_oper() || self.wallops.load(Ordering::Relaxed)
    }

    /// The client sent a line at `now` (see [`Hub::uptime_secs`]).
    pub(crate) fn touch(&self, now: u32) {
        if self.last_input.load(Ordering::Relaxed) != now {
            self.last_input.store(now, Ordering::Relaxed);
        }
    }

    /// Whole seconds since the client last sent a line (or connected).
    fn idle(&self, now: u32) -> u64 {
        u64::from(now.saturating_sub(self.last_input.load(Ordering::Relaxed)))
    }
}

/// What `/whois` tells of someone connected.
#[derive(Debug, Clone)]
pub(crate) struct Whois {
    /// Its nickname as spelled, and account.
    pub(crate) source: Arc<Source>,
    /// When it connected.
    pub(crate) since: jiff::Timestamp,
    /// Seconds since its client last sent a line.
    pub(crate) idle: u64,
    /// Whether its connection is TLS.
    pub(crate) tls: bool,
    /// Its away text, if away.
    pub(crate) away: Option<Arc<str>>,
    /// Whether it is a server operator.
    pub(crate) oper: bool,
    /// The rooms it is in that the asker may see, with its standing in each.
    pub(crate) rooms: Vec<(Standing, Room)>,
}

/// What IRC's `WHO` tells of someone connected.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    /// Its nickname as spelled, account and ident.
    pub(crate) source: Arc<Source>,
    /// Its standing in the room asked about (none for a `WHO` by mask).
    pub(crate) standing: Standing,
    /// Whether it is away.
    pub(crate) away: bool,
    /// Whether it is a server operator.
    pub(crate) oper: bool,
    /// Seconds since its client last sent a line.
    pub(crate) idle: u64,
}

/// A session that ended, as `/whowas` remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Departure {
    /// The folded nickname.
    key: String,
    /// The nickname as spelled.
    pub(crate) nick: Nick,
    /// The account it identified to, if any.
    pub(crate) account: Option<Arc<str>>,
    /// When it left.
    pub(crate) left: jiff::Timestamp,
}

/// The recent departures: at most `limit` in all and `per_nick` per nickname, oldest
/// forgotten first.
#[derive(Debug)]
pub(crate) struct Whowas {
    list: VecDeque<Departure>,
    /// How many entries of `list` each folded nickname has.
    per_key: HashMap<String, usize>,
    limit: usize,
    per_nick: usize,
}

impl Default for Whowas {
    fn default() -> Whowas {
        Whowas::new(WHOWAS_LIMIT, WHOWAS_PER_NICK)
    }
}

impl Whowas {
    pub(crate) fn new(limit: usize, per_nick: usize) -> Whowas {
        Whowas {
            list: VecDeque::new(),
            per_key: HashMap::new(),
            limit: limit.max(1),
            per_nick: per_nick.max(1),
        }
    }

    /// Remembers a departure, forgetting that nickname's oldest past `per_nick` and the
    /// oldest of all past `limit`. At most one scan of the list, and only for a
    /// nickname that left `per_nick` times already.
    fn push(&mut self, departure: Departure) {
        let count = self.per_key.entry(departure.key.clone()).or_insert(0);
        if *count >= self.per_nick {
            if let Some(i) = self.list.iter().position(|d| d.key == departure.key) {
                self.list.remove(i);
            }
        } else {
            *count += 1;
        }
        if self.list.len() >= self.limit
            && let Some(oldest) = self.list.pop_front()
            && let Some(n) = self.per_key.get_mut(&oldest.key)
        {
            *n -= 1;
            if *n == 0 {
                self.per_key.remove(&oldest.key);
            }
        }
        self.list.push_back(departure);
    }

    /// The departures of `key` (a folded nickname), newest first.
    fn of(&self, key: &str) -> Vec<Departure> {
        if !self.per_key.contains_key(key) {
            return Vec::new();
        }
        self.list
            .iter()
            .rev()
            .filter(|d| d.key == key)
            .cloned()
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.len()
    }
}

/// How big each room's ring may grow, and how many rooms may exist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomLimits {
    /// Events each room's ring holds at most (`--room-capacity`).
    pub(crate) capacity: usize,
    /// Bytes of events each room's ring holds at most (`--room-buffer`).
    pub(crate) buffer: usize,
    /// Bytes of events all the rooms' rings hold together, past which the ring that
    /// sends gives back its oldest (`--room-buffer-total`).
    pub(crate) total_buffer: usize,
    /// Rooms that may exist at once (`--max-rooms-total`); `#general` is never refused.
    pub(crate) total: usize,
    /// Rooms created from one address that may exist at once (`--max-rooms-per-ip`);
    /// `#general` is never refused nor counted.
    pub(crate) per_address: usize,
}

/// One room.
struct RoomEntry {
    channel: Arc<Channel>,
    /// The members by folded nickname: the nickname as spelled (so that a big room's
    /// list is written without a lookup per member) and its standing.
    members: BTreeMap<String, Seat>,
    /// The address the room was created from, when it counts against that address's
    /// rooms (see [`RoomLimits::per_address`]).
    creator: Option<IpAddr>,
    /// Its modes, topic, bans and founder (boxed: one pointer in the map's node). A
    /// registered room's are also in [`State::registered`] and the store.
    settings: Box<Settings>,
    /// Sessions invited (`/invite`) and not yet joined, oldest first, at most
    /// [`room::INVITE_LIMIT`]: folded nickname and [`User::session`], so that an
    /// invitation is the session's, not its nickname's.
    invited: Vec<(String, usize)>,
}

/// A member in a room's list.
struct Seat {
    /// Who it is (the session's source, replaced with it): its nickname as spelled, so
    /// that a big room's list is written without a lookup per member, and its
    /// `user@host` for IRC's `userhost-in-names`.
    source: Arc<Source>,
    standing: Standing,
}

#[derive(Default)]
struct State {
    /// Sessions by folded nickname.
    users: HashMap<String, User>,
    /// Rooms by folded name. A room exists while it has members.
    rooms: HashMap<String, RoomEntry>,
    /// Rooms that exist, by the address that created them (only addresses with some).
    created: HashMap<IpAddr, usize>,
    /// Registered nicknames by folded name.
    accounts: HashMap<String, Account>,
    /// Registered rooms' settings by folded name, whether the room is open or not.
    registered: HashMap<String, Settings>,
    /// In a cluster, the sessions of other nodes (in [`State::users`] too), by folded
    /// nickname: the node and incarnation they connected to.
    remote: HashMap<String, Arc<str>>,
    /// Recent departures, for `/whowas`.
    whowas: Whowas,
    /// Why sessions that an operator killed end, by folded nickname, until they do
    /// (so at most one per session).
    kills: HashMap<String, String>,
    /// The server is shutting down: every session has been told, and so is every
    /// session registered from now on.
    shutting_down: bool,
}

/// The result of a join.
pub(crate) enum Joined {
    /// The session was already in the room.
    Already,
    /// The session is now in the room.
    New {
        /// The room.
        channel: Arc<Channel>,
        /// The room's events after the `JOIN`.
        cursor: Cursor,
        /// The join event (already given to the joiner's `shown`).
        join: Arc<Event>,
    },
}

/// Everyone in a room, with their standing, for a door to write out; and whether the
/// room is secret (IRC marks a secret room's names list).
pub(crate) struct Members<'a, 'b> {
    /// The room is secret (`+s`).
    pub(crate) secret: bool,
    list: &'a mut dyn Iterator<Item = (Standing, &'b Source)>,
}

impl<'a, 'b> Members<'a, 'b> {
    pub(crate) fn new(
        secret: bool,
        list: &'a mut dyn Iterator<Item = (Standing, &'b Source)>,
    ) -> Members<'a, 'b> {
        Members { secret, list }
    }
}

impl<'b> Iterator for Members<'_, 'b> {
    type Item = (Standing, &'b Source);

    fn next(&mut self) -> Option<Self::Item> {
        self.list.next()
    }
}

/// What a joiner gives beyond its name: the key it typed and who it is, for the room's
/// key and bans.
pub(crate) struct Pass<'a> {
    /// The key given with `/join`, if any.
    pub(crate) key: Option<&'a str>,
    /// Who the joiner is, for the room's bans.
    pub(crate) identity: &'a Identity,
}

/// The answer to a `/mode`.
pub(crate) enum ModeOutcome {
    /// The room's modes in IRC's form (asked for, or nothing changed).
    Modes(Arc<RoomName>, String),
    /// The room's bans (`+b` alone).
    Bans(Arc<RoomName>, Vec<RoomBan>),
    /// The change, announced to the room (where the member hears of it).
    Changed,
}

/// A room as `/rooms` lists it.
pub(crate) struct Listed {
    pub(crate) room: Arc<RoomName>,
    pub(crate) members: usize,
    pub(crate) topic: Option<Arc<Topic>>,
}

/// The account of a nickname, for the handshake and `/history`.
#[derive(Debug, Clone)]
pub(crate) struct AccountInfo {
    /// The argon2 hash of its password.
    pub(crate) hash: String,
    /// When it was registered (private history before that belonged to someone else).
    pub(crate) created_ms: i64,
}

impl Hub {
    /// A hub over `store`, whose next message id is `next_id` and whose accounts are
    /// `accounts`.
    pub(crate) fn new(
        rooms: RoomLimits,
        presence_limit: usize,
        store: Store,
        next_id: u64,
        accounts: Vec<Account>,
    ) -> Hub {
        let accounts = accounts.into_iter().map(|a| (a.nick.clone(), a)).collect();
        Hub {
            state: Mutex::new(State {
                accounts,
                ..State::default()
            }),
            ids: AtomicU64::new(first_id(next_id)),
            metrics: Metrics::new(store.commit_times(), store.pruned()),
            budget: Budget::new(rooms.total_buffer),
            rooms,
            presence_limit,
            store,
            hasher: Hasher::new(2),
            throttle: Throttle::new(10_000),
            epoch: Instant::now(),
            started: now(),
            operators: HashMap::new(),
            bans: super::ban::Bans::default(),
            log: OnceLock::new(),
            kept_from: next_id,
        }
    }

    /// Makes this hub a node of a cluster, whose `log` orders every event. Call before
    /// any session registers; a second call changes nothing.
    pub(crate) fn set_log(&self, log: Arc<dyn Log>) {
        let _ = self.log.set(log);
    }

    /// The cluster's log, if the server is a node of one.
    pub(crate) fn log(&self) -> Option<&Arc<dyn Log>> {
        self.log.get()
    }

    /// The current time: while this thread applies an entry of the log, the entry's.
    fn now(&self) -> jiff::Timestamp {
        match APPLYING.get() {
            Some((_, ms)) => jiff::Timestamp::from_millisecond(ms).unwrap_or_else(|_| now()),
            None => now(),
        }
    }

    /// Queues `event` for the store, unless the store has it already (see
    /// [`Hub::kept_from`]).
    fn keep(&self, event: &Arc<Event>) -> Result<(), Busy> {
        if event.id < self.kept_from {
            return Ok(());
        }
        self.store.append(event.clone())
    }

    /// The hub with these operators (name, argon2 hash); a later one of the same name
    /// wins.
    pub(crate) fn with_operators(
        mut self,
        operators: impl IntoIterator<Item = (String, String)>,
    ) -> Hub {
        self.operators = operators.into_iter().collect();
        self
    }

    /// The hub with these registered rooms (from the store).
    pub(crate) fn with_registered(self, rooms: impl IntoIterator<Item = Settings>) -> Hub {
        {
            let mut st = self.lock();
            st.registered = rooms.into_iter().map(|s| (s.name.folded(), s)).collect();
        }
        self
    }

    /// The hub with these server bans (from the store).
    pub(crate) fn with_bans(self, bans: impl IntoIterator<Item = super::ban::Ban>) -> Hub {
        let now = now();
        for ban in bans {
            if self.bans.add(ban, now).is_err() {
                tracing::warn!("more stored server bans than the server holds; some skipped");
                break;
            }
        }
        self
    }

    /// Sets a server ban, and keeps it in the store (a full store queue keeps it in
    /// memory only, and says so).
    pub(crate) fn add_ban(
        &self,
        ban: super::ban::Ban,
        now: jiff::Timestamp,
    ) -> Result<bool, super::ban::BansFull> {
        let replaced = self.bans.add(ban.clone(), now)?;
        let target = ban.target.to_string();
        if self.store.set_server_ban(ban).is_err() {
            tracing::warn!(target, "store queue full: server ban not kept on disk");
        }
        Ok(replaced)
    }

    /// Lifts a server ban, in memory and in the store; whether there was one.
    pub(crate) fn lift_ban(&self, target: &super::ban::BanTarget, now: jiff::Timestamp) -> bool {
        let lifted = self.bans.remove(target, now);
        if self.store.lift_server_ban(target.to_string()).is_err() {
            tracing::warn!(%target, "store queue full: lifted server ban stays on disk");
        }
        lifted
    }

    /// The password hash of the operator `name`, if there is one.
    pub(crate) fn operator_hash(&self, name: &str) -> Option<String> {
        self.operators.get(name).cloned()
    }

    /// Ends the session called `nick` (an operator's `/kill`): it is told through its
    /// mailbox, and [`Hub::take_kill`] gives it `reason`. Returns its nickname as
    /// spelled.
    pub(crate) fn kill(&self, nick: &Nick, reason: String) -> Result<Nick, Refusal> {
        let mut st = self.lock();
        let key = nick.folded();
        let user = st
            .users
            .get(&key)
            .ok_or_else(|| Refusal::NoSuchNick(nick.clone()))?;
        user.mailbox.shut_down();
        let spelled = user.source.nick.clone();
        st.kills.insert(key, reason);
        Ok(spelled)
    }

    /// Why the session `key` was killed, if it was.
    pub(crate) fn take_kill(&self, key: &str) -> Option<String> {
        self.lock().kills.remove(key)
    }

    /// Sends an operators' notice from `source` to every operator and every session
    /// that asked for them (a scan of all sessions under the hub's lock: operators'
    /// notices are rare). A session whose mailbox is full misses it. Returns how many
    /// got it.
    pub(crate) fn wallops(&self, source: &Arc<Source>, text: String) -> usize {
        let event = Arc::new(self.event(Scope::Wallops, source, Kind::Message { text }, None));
        let st = self.lock();
        st.users
            .values()
            .filter(|u| u.activity.hears_wallops())
            .filter(|u| u.mailbox.try_send(event.clone()).is_ok())
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A fresh message id, for an event that no room holds (a private message, a rename
    /// seen by nobody else).
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Gives an event its id (and cause, unless it shares one) and time.
    fn event(&self, scope: Scope, source: &Arc<Source>, kind: Kind, cause: Option<u64>) -> Event {
        let id = match APPLYING.get() {
            Some((id, ms)) => {
                APPLYING.set(Some((id + 1, ms)));
                id
            }
            None => self.next_id(),
        };
        Event::new(
            id,
            self.now(),
            cause.unwrap_or(id),
            scope,
            source.clone(),
            kind,
        )
    }

    /// Publishes what `source` said (a message or an action) to `channel` (see the
    /// module docs). One the store cannot queue is refused and sent to no one, so
    /// nothing accepted is ever missing from history.
    pub(crate) fn publish(
        &self,
        channel: &Channel,
        source: &Arc<Source>,
        kind: Kind,
    ) -> Result<Arc<Event>, Refusal> {
        let _order = lock(&channel.order);
        let event = Arc::new(self.event(Scope::Room(channel.room.clone()), source, kind, None));
        self.keep(&event)
            .map_err(|Busy| Refusal::Busy(error::Busy::Message))?;
        channel.ring.send(event.clone());
        self.metrics.published();
        Ok(event)
    }

    /// Publishes a membership event (join, part, quit, rename): like [`Hub::publish`],
    /// but a departure cannot be refused, so it is sent even when the store cannot keep
    /// it (a member refilled past it is then told it lagged). The caller holds the
    /// room's lock.
    fn announce(
        &self,
        channel: &Channel,
        source: &Arc<Source>,
        kind: Kind,
        cause: Option<u64>,
    ) -> Arc<Event> {
        let event = Arc::new(self.event(Scope::Room(channel.room.clone()), source, kind, cause));
        if self.keep(&event).is_err() {
            tracing::warn!(room = %channel.name(), id = event.id, "store queue full: event not kept");
        }
        channel.ring.send(event.clone());
        self.metrics.published();
        event
    }

    /// [`Hub::announce`] under the room's lock, for an event that needs nothing else
    /// done in the room's order.
    fn announce_in(
        &self,
        channel: &Channel,
        source: &Arc<Source>,
        kind: Kind,
        cause: Option<u64>,
    ) -> Arc<Event> {
        let _order = lock(&channel.order);
        self.announce(channel, source, kind, cause)
    }

    /// Whether a room of `members` members (the one joining or leaving included) keeps
    /// its joins, parts and quits to itself.
    fn is_quiet(&self, members: usize) -> bool {
        self.presence_limit > 0 && members > self.presence_limit
    }

    /// A membership event: announced to the room, or for a quiet room given its id and
    /// time in the room's order (the caller holds the room's lock) but neither sent nor
    /// stored; only its source sees it.
    fn membership(
        &self,
        channel: &Channel,
        source: &Arc<Source>,
        kind: Kind,
        quiet: bool,
    ) -> Arc<Event> {
        if quiet {
            Arc::new(self.event(Scope::Room(channel.room.clone()), source, kind, None))
        } else {
            self.announce(channel, source, kind, None)
        }
    }

    /// A private message (or notice) from `source` to `to`, with its id and time. It is
    /// kept ([`Hub::keep_private`]) once delivered.
    pub(crate) fn private(&self, source: &Arc<Source>, to: Nick, kind: Kind) -> Arc<Event> {
        Arc::new(self.event(Scope::Private { to }, source, kind, None))
    }

    /// Queues a delivered private message for the store, for its two parties' history.
    pub(crate) fn keep_private(&self, event: &Arc<Event>) -> Result<(), Busy> {
        self.keep(event)
    }

    /// Asks the store a question; the answer comes on the returned channel.
    pub(crate) fn query(
        &self,
        query: Query,
    ) -> Result<oneshot::Receiver<super::store::Answer>, Busy> {
        self.store.query(query)
    }

    /// Waits until everything queued for the store so far is committed.
    pub(crate) async fn flush(&self) {
        if let Ok(done) = self.store.flush() {
            let _ = done.await;
        }
    }

    /// The account of `key` (a folded nickname), if it is registered.
    pub(crate) fn account(&self, key: &str) -> Option<AccountInfo> {
        self.lock().accounts.get(key).map(|a| AccountInfo {
            hash: a.hash.clone(),
            created_ms: a.created_ms,
        })
    }

    /// Whether someone connected has the nickname `key`.
    pub(crate) fn is_connected(&self, key: &str) -> bool {
        self.lock().users.contains_key(key)
    }

    /// Creates the account of `nick` (`/register`), or changes its password
    /// (`change: true`). Returns the account's creation time.
    pub(crate) fn set_account(
        &self,
        nick: &Nick,
        hash: String,
        change: bool,
    ) -> Result<i64, Refusal> {
        let key = nick.folded();
        let mut st = self.lock();
        let created_ms = match (st.accounts.get(&key), change) {
            (Some(_), false) => return Err(Refusal::AlreadyRegistered(nick.clone())),
            (Some(account), true) => account.created_ms,
            (None, _) => self.now().as_millisecond(),
        };
        let account = Account {
            nick: key.clone(),
            hash,
            created_ms,
        };
        if self.store.set_account(account.clone()).is_err() {
            // Every node of a cluster has the account, whatever its own store's queue
            // holds (it is in the log); a single server refuses it.
            if APPLYING.get().is_none() {
                return Err(Refusal::Busy(error::Busy::Password));
            }
            tracing::warn!(nick = %nick, "store queue full: account not kept on disk");
        }
        st.accounts.insert(key, account);
        Ok(created_ms)
    }

    /// Claims `source`'s nickname for a new session (`tls`: over a TLS connection). A
    /// registered nickname needs `source.account` to be it (its password was given).
    /// Returns where the session's member records its client's activity.
    pub(crate) fn register(
        &self,
        source: &Arc<Source>,
        mailbox: MailboxSender<Arc<Event>>,
        tls: bool,
    ) -> Result<Arc<Activity>, Refusal> {
        let mut st = self.lock();
        let nick = &source.nick;
        let key = nick.folded();
        if st.users.contains_key(&key) {
            return Err(Refusal::NickTaken(nick.clone()));
        }
        if st.accounts.contains_key(&key) && source.account.as_deref() != Some(key.as_str()) {
            return Err(Refusal::NickRegistered(nick.clone()));
        }
        Ok(self.insert_user(&mut st, key, source, mailbox, tls))
    }

    /// Puts a session in the hub's users.
    fn insert_user(
        &self,
        st: &mut State,
        key: String,
        source: &Arc<Source>,
        mailbox: MailboxSender<Arc<Event>>,
        tls: bool,
    ) -> Arc<Activity> {
        if st.shutting_down {
            mailbox.shut_down();
        }
        let activity = Arc::new(Activity::new(self.uptime_secs(Instant::now()), tls));
        st.users.insert(
            key,
            User {
                source: source.clone(),
                mailbox,
                rooms: Vec::new(),
                away: None,
                activity: activity.clone(),
            },
        );
        activity
    }

    /// Registers a session as [`Hub::register`] does; in a cluster, first claims its
    /// nickname cluster-wide, then logs its arrival and waits until this node has
    /// applied it (the session is registered then, on every node in the log's order).
    pub(crate) async fn enter(
        &self,
        source: &Arc<Source>,
        mailbox: MailboxSender<Arc<Event>>,
        tls: bool,
    ) -> Result<Arc<Activity>, Refusal> {
        let Some(log) = self.log().cloned() else {
            return self.register(source, mailbox, tls);
        };
        let nick = &source.nick;
        let key = nick.folded();
        {
            let st = self.lock();
            if st.users.contains_key(&key) {
                return Err(Refusal::NickTaken(nick.clone()));
            }
            if st.accounts.contains_key(&key) && source.account.as_deref() != Some(key.as_str()) {
                return Err(Refusal::NickRegistered(nick.clone()));
            }
        }
        log.claim(nick).await?;
        let applied = log.submit(Op::hello(source), Some(Local { mailbox, tls }));
        match tokio::time::timeout(log.patience(), applied).await {
            Ok(Ok(Outcome::Entered(Ok(activity)))) => Ok(activity),
            Ok(Ok(Outcome::Entered(Err(refused)))) => {
                // Refused where it was applied, so on every node: nothing to undo.
                log.release(key);
                Err(refused)
            }
            _ => {
                // Not logged in time, yet perhaps logged: a quit after it undoes it.
                log.leave(key, "could not connect".to_owned());
                Err(Refusal::Busy(error::Busy::Cluster))
            }
        }
    }

    /// The session `key` ended: removed ([`Hub::unregister`]), or in a cluster its quit
    /// logged, which removes it on every node.
    pub(crate) fn leave(&self, key: &str, reason: &str) {
        match self.log() {
            Some(log) => log.leave(key.to_owned(), reason.to_owned()),
            None => self.unregister(key, reason),
        }
    }

    /// Applies the entry of the cluster's log at `sequence` (see [`super::op`]): the
    /// same operation in the same order on every node, so every node makes the same
    /// events, under ids from the sequence ([`ID_SHIFT`]) and with the entry's time.
    /// `owner`: the node and incarnation that logged it; `mine` when that is this node
    /// now, and `local` what registering its session needs (for a `Hello`). Returns
    /// what it gave, for the session that asked.
    pub(crate) fn apply(
        &self,
        sequence: u64,
        entry: &Logged,
        owner: &str,
        mine: bool,
        local: Option<Local>,
    ) -> Outcome {
        /// Ends the application on this thread, however it ends.
        struct Applying;
        impl Drop for Applying {
            fn drop(&mut self) {
                APPLYING.set(None);
            }
        }
        APPLYING.set(Some((sequence << ID_SHIFT, entry.time_ms)));
        let _applying = Applying;
        self.apply_op(&entry.op, owner, mine, local)
    }

    fn apply_op(&self, op: &Op, owner: &str, mine: bool, local: Option<Local>) -> Outcome {
        match op {
            Op::Hello { .. } => {
                let Some(source) = op.source() else {
                    tracing::warn!(
                        nick = op.nick(),
                        "a connection in the log has a bad nickname; skipped"
                    );
                    return Outcome::Done;
                };
                let source = Arc::new(source);
                let key = source.nick.folded();
                let mut st = self.lock();
                if st.users.contains_key(&key) {
                    return Outcome::Entered(Err(Refusal::NickTaken(source.nick.clone())));
                }
                match local {
                    Some(Local { mailbox, tls }) if mine => {
                        Outcome::Entered(Ok(self.insert_user(&mut st, key, &source, mailbox, tls)))
                    }
                    _ => {
                        // Nothing reads a remote session's mailbox.
                        let (mailbox, _) = mailbox(1);
                        self.insert_user(&mut st, key.clone(), &source, mailbox, false);
                        st.remote.insert(key, owner.into());
                        Outcome::Done
                    }
                }
            }
            Op::Join {
                nick,
                room,
                key,
                mask,
            } => {
                let Ok(room) = Room::new(room) else {
                    return Outcome::Done;
                };
                let Some(account) = self
                    .lock()
                    .users
                    .get(nick)
                    .map(|u| u.source.account.clone())
                else {
                    return Outcome::Done;
                };
                let identity = Identity {
                    mask: mask.clone(),
                    account,
                };
                let pass = Pass {
                    key: key.as_deref(),
                    identity: &identity,
                };
                let mut shown = Shown::default();
                // Rooms made count against no address: only the origin knows it.
                let joined = self.join(nick, &room, None, &pass, |_, members, topic| {
                    if mine {
                        shown.members = members.map(|m| {
                            let secret = m.secret;
                            (secret, m.map(|(s, source)| (s, source.clone())).collect())
                        });
                        shown.topic = topic.map(|t| Arc::new(t.clone()));
                    }
                });
                match mine {
                    true => Outcome::Joined(joined.map(|joined| Box::new((joined, shown)))),
                    false => Outcome::Done,
                }
            }
            Op::Part { nick, room, reason } => {
                let Ok(room) = Room::new(room) else {
                    return Outcome::Done;
                };
                Outcome::Parted(self.part(nick, &room.folded(), reason.clone()))
            }
            Op::Say {
                nick,
                room,
                what,
                text,
                mask,
            } => Outcome::Said(self.say_logged(nick, room, *what, text, mask.as_deref())),
            Op::Quit { nick, reason } => {
                self.unregister(nick, reason);
                Outcome::Done
            }
            Op::Topic { nick, room, text } => {
                let Ok(room) = Room::new(room) else {
                    return Outcome::Done;
                };
                Outcome::Applied(self.set_topic(nick, &room, text.clone()).map(drop))
            }
            Op::Mode { nick, room, words } => {
                let Ok(room) = Room::new(room) else {
                    return Outcome::Done;
                };
                Outcome::Applied(match room::parse_changes(words) {
                    Ok(request @ ModeRequest::Change(_)) => {
                        self.mode(nick, &room, request).map(drop)
                    }
                    // Asking is answered by the asker's node, and never logged.
                    Ok(ModeRequest::Show | ModeRequest::ListBans) => Ok(()),
                    Err(refused) => Err(refused),
                })
            }
            Op::Kick {
                nick,
                room,
                target,
                reason,
            } => {
                let (Ok(room), Ok(target)) = (Room::new(room), Nick::new(target)) else {
                    return Outcome::Done;
                };
                Outcome::Applied(self.kick(nick, &room, &target, reason.clone()).map(drop))
            }
            Op::Invite { nick, room, target } => {
                let (Ok(room), Ok(target)) = (Room::new(room), Nick::new(target)) else {
                    return Outcome::Done;
                };
                Outcome::Applied(self.invite(nick, &room, &target).map(drop))
            }
            Op::Away { nick, text } => {
                self.set_away(nick, text.clone());
                Outcome::Done
            }
            Op::Realname { nick, realname } => {
                self.set_realname(nick, realname);
                Outcome::Done
            }
            Op::Private {
                nick,
                to,
                what,
                text,
            } => {
                let Ok(to) = Nick::new(to) else {
                    return Outcome::Done;
                };
                Outcome::Said(self.private_logged(nick, to, *what, text))
            }
            Op::Rename { nick, new } => {
                let Ok(new) = Nick::new(new) else {
                    return Outcome::Done;
                };
                Outcome::Renamed(self.rename(nick, &new))
            }
            Op::Kill { target, reason, .. } => {
                // The node the target is on ends its session (the origin checked that
                // the killer is an operator); its quit follows in the log.
                if let Ok(target) = Nick::new(target)
                    && !self.lock().remote.contains_key(&target.folded())
                {
                    let _ = self.kill(&target, reason.clone());
                }
                Outcome::Done
            }
            Op::Account { nick, hash, change } => {
                let Ok(name) = Nick::new(nick) else {
                    return Outcome::Done;
                };
                let made = self.set_account(&name, hash.clone(), *change);
                if made.is_ok() {
                    // The session is identified to its new account, on every node.
                    let source = self.lock().users.get(nick).map(|u| {
                        Arc::new(Source {
                            account: Some(nick.as_str().into()),
                            ..Source::clone(&u.source)
                        })
                    });
                    if let Some(source) = source {
                        self.set_source(nick, &source);
                    }
                }
                Outcome::Account(made)
            }
            Op::Oper { nick } => {
                if let Some(user) = self.lock().users.get(nick) {
                    user.activity.set_oper();
                }
                Outcome::Done
            }
            Op::Wallops { nick, text } => {
                let source = self.lock().users.get(nick).map(|u| u.source.clone());
                if let Some(source) = source {
                    // This node's operators who asked for them.
                    self.wallops(&source, text.clone());
                }
                Outcome::Done
            }
        }
    }

    /// A private message of the log: kept on every node, delivered by the node its
    /// recipient is on (the sender's node shows the sender its copy).
    fn private_logged(
        &self,
        key: &str,
        to: Nick,
        what: Said,
        text: &str,
    ) -> Result<Arc<Event>, Refusal> {
        let to_key = to.folded();
        let (source, to, mailbox) = {
            let st = self.lock();
            let source = st.users.get(key).map(|u| u.source.clone());
            let recipient = st.users.get(&to_key);
            match (source, recipient) {
                (Some(source), Some(recipient)) => {
                    let local = !st.remote.contains_key(&to_key) && to_key != key;
                    let mailbox = local.then(|| recipient.mailbox.clone());
                    (source, recipient.source.nick.clone(), mailbox)
                }
                _ => return Err(Refusal::NoSuchNick(to)),
            }
        };
        let text = text.to_owned();
        let kind = match what {
            Said::Message => Kind::Message { text },
            Said::Action => Kind::Action { text },
            Said::Notice => Kind::Notice { text },
        };
        let event = Arc::new(self.event(Scope::Private { to }, &source, kind, None));
        if self.keep(&event).is_err() {
            tracing::warn!(nick = key, "store queue full: private message not kept");
        }
        if let Some(mailbox) = mailbox
            && mailbox.try_send(event.clone()).is_err()
        {
            tracing::debug!(
                nick = key,
                "a private message's recipient could not take it"
            );
        }
        Ok(event)
    }

    /// The session `key` gave another real name (IRC's `SETNAME`): its rooms are told.
    fn set_realname(&self, key: &str, realname: &str) {
        let source = {
            let st = self.lock();
            let Some(user) = st.users.get(key) else {
                return;
            };
            let Some(ident) = &user.source.ident else {
                return;
            };
            Arc::new(Source {
                ident: Some(Arc::new(super::event::Ident {
                    realname: realname.into(),
                    ..super::event::Ident::clone(ident)
                })),
                ..Source::clone(&user.source)
            })
        };
        self.set_source(key, &source);
    }

    /// A message of the log: re-checked (its sender is in the room and may speak
    /// there), then sent to the room. A full store queue does not refuse it here: every
    /// node has it, whatever its own store's queue holds.
    fn say_logged(
        &self,
        key: &str,
        room: &str,
        what: Said,
        text: &str,
        mask: Option<&str>,
    ) -> Result<Arc<Event>, Refusal> {
        let room = Room::new(room).map_err(|_| Refusal::NoSuchRoom(Room::general()))?;
        let (channel, source) = {
            let st = self.lock();
            let entry = st.rooms.get(&room.folded());
            let user = st.users.get(key);
            match (entry, user) {
                (Some(entry), Some(user)) if entry.members.contains_key(key) => {
                    (entry.channel.clone(), user.source.clone())
                }
                _ => return Err(Refusal::NotInRoom(room)),
            }
        };
        if channel.is_gated() {
            let identity = Identity {
                mask: mask.map_or_else(|| format!("{key}!{key}@*"), str::to_owned),
                account: source.account.clone(),
            };
            self.may_speak(key, &channel, &identity)?;
        }
        let text = text.to_owned();
        let kind = match what {
            Said::Message => Kind::Message { text },
            Said::Action => Kind::Action { text },
            Said::Notice => Kind::Notice { text },
        };
        Ok(self.announce_in(&channel, &source, kind, None))
    }

    /// The sessions of node incarnation `owner` (`node:incarnation`), by folded
    /// nickname: a dead node's, or this node's before it restarted.
    pub(crate) fn sessions_of(&self, owner: &str) -> Vec<String> {
        let st = self.lock();
        let mut keys: Vec<String> = st
            .remote
            .iter()
            .filter(|(_, o)| ***o == *owner)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Tells every session, and every session still to register, that the server is
    /// shutting down (through its mailbox: see [`super::mailbox`]).
    pub(crate) fn shut_down(&self) {
        let mut st = self.lock();
        st.shutting_down = true;
        for user in st.users.values() {
            user.mailbox.shut_down();
        }
    }

    /// Removes a session: each of its rooms is told it quit, with one cause, then the
    /// nickname is free.
    pub(crate) fn unregister(&self, key: &str, reason: &str) {
        let mut st = self.lock();
        let State {
            users,
            rooms,
            created,
            whowas,
            kills,
            remote,
            ..
        } = &mut *st;
        let Some(user) = users.remove(key) else {
            return;
        };
        remote.remove(key);
        kills.remove(key);
        whowas.push(Departure {
            key: key.to_owned(),
            nick: user.source.nick.clone(),
            account: user.source.account.clone(),
            left: now(),
        });
        let mut cause = None;
        for room_key in &user.rooms {
            if let Some(room) = rooms.get_mut(room_key) {
                let quiet = self.is_quiet(room.members.len());
                room.members.remove(key);
                let channel = &room.channel;
                if !quiet {
                    let kind = Kind::Quit {
                        reason: Some(reason.to_owned()),
                    };
                    let quit = self.announce_in(channel, &user.source, kind, cause);
                    cause.get_or_insert(quit.cause);
                }
                if room.members.is_empty() {
                    remove_room(rooms, created, room_key);
                }
            }
        }
    }

    /// Puts the session `key` in `room`, creating the room if need be. `origin` is the
    /// session's address when the rooms it creates count against that address (see
    /// [`RoomLimits::per_address`]); `None` for an exempt address. `pass` is checked
    /// against the room's invite-only flag, key, limit and bans, which neither a server
    /// operator nor the room's founder is held to. `shown` is given the join event,
    /// unless the room is quiet its members (the newcomer included), and its topic if it
    /// has one, under the hub's lock, so that list and topic are exact as of the join.
    ///
    /// Whoever makes a room is its operator, except in `#general` (which everyone is put
    /// in; server operators govern it) and in a registered room, where its founder is.
    /// A room made by a user identified to an account is registered to that account
    /// (at most [`room::ROOMS_PER_ACCOUNT`] each; `#general` never).
    pub(crate) fn join(
        &self,
        key: &str,
        room: &Room,
        origin: Option<IpAddr>,
        pass: &Pass<'_>,
        shown: impl FnOnce(&Event, Option<Members<'_, '_>>, Option<&Topic>),
    ) -> Result<Joined, Refusal> {
        let mut st = self.lock();
        let State {
            users,
            rooms,
            created,
            registered,
            ..
        } = &mut *st;
        let Some(user) = users.get_mut(key) else {
            // Cannot happen: a session is registered for its whole life.
            return Ok(Joined::Already);
        };
        let folded = room.folded();
        let general = folded == Room::general().folded();
        let account = user.source.account.clone();
        let open = rooms.get(&folded);
        if open.is_some_and(|r| r.members.contains_key(key)) {
            return Ok(Joined::Already);
        }
        // The room's rules, open or registered and empty; a new room has none yet.
        let settings = open
            .map(|r| &*r.settings)
            .or_else(|| registered.get(&folded));
        let founder = settings
            .and_then(|s| s.founder.as_deref())
            .is_some_and(|f| account.as_deref() == Some(f));
        if let Some(settings) = settings
            && !(founder || user.activity.is_oper())
        {
            let name = || settings.name.clone();
            let modes = &settings.modes;
            let session = user.session();
            let invited = open.is_some_and(|r| r.invited.contains(&(key.to_owned(), session)));
            if modes.has(Flag::InviteOnly) && !invited {
                return Err(Refusal::InviteOnly(name()));
            }
            if let Some(room_key) = &modes.key
                && pass.key != Some(&**room_key)
            {
                return Err(Refusal::BadKey(name()));
            }
            let members = open.map_or(0, |r| r.members.len());
            if let Some(limit) = modes.limit
                && members >= limit as usize
            {
                return Err(Refusal::RoomFull {
                    room: name(),
                    limit,
                });
            }
            if settings.banned(pass.identity).is_some() {
                return Err(Refusal::BannedFromRoom(name()));
            }
        }
        let existing = rooms.len();
        let mut made = false;
        let entry = match rooms.entry(folded.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                let limits = &self.rooms;
                // The room everyone starts in is never refused.
                if !general && existing >= limits.total {
                    let limit = limits.total;
                    self.metrics.refused(metrics::Refusal::RoomsFull);
                    return Err(Refusal::RoomsFull { limit });
                }
                let count = origin.map_or(0, |ip| created.get(&ip).copied().unwrap_or(0));
                if !general && count >= limits.per_address {
                    let limit = limits.per_address;
                    self.metrics.refused(metrics::Refusal::TooManyRoomsCreated);
                    return Err(Refusal::TooManyRoomsCreated { limit });
                }
                // Nor counted against whoever happened to make it.
                let origin = origin.filter(|_| !general);
                let settings = match registered.get(&folded) {
                    Some(settings) => settings.clone(),
                    None => {
                        let founder = account.filter(|a| {
                            !general
                                && registered
                                    .values()
                                    .filter(|s| s.founder.as_ref() == Some(a))
                                    .count()
                                    < room::ROOMS_PER_ACCOUNT
                        });
                        let mut settings = Settings::new(room.clone(), founder);
                        if general {
                            // Nobody is its operator: anyone may set its topic.
                            settings.modes = Modes::from_parts("n", None, None);
                        }
                        if settings.founder.is_some() {
                            self.keep_room(&settings);
                            registered.insert(folded.clone(), settings.clone());
                        }
                        settings
                    }
                };
                made = true;
                let channel = Channel {
                    room: RoomName::new(settings.name.clone()),
                    order: Mutex::new(()),
                    ring: Ring::new(limits.capacity, limits.buffer, self.budget.clone()),
                    gate: AtomicU8::new(0),
                };
                channel.set_gate(&settings);
                let entry = vacant.insert(RoomEntry {
                    channel: Arc::new(channel),
                    members: BTreeMap::new(),
                    creator: origin,
                    settings: Box::new(settings),
                    invited: Vec::new(),
                });
                if let Some(ip) = origin {
                    *created.entry(ip).or_insert(0) += 1;
                }
                entry
            }
        };
        entry.invited.retain(|(k, _)| k != key);
        // The founder, or the maker of a room that is nobody's (or that it just
        // registered).
        let founder = entry
            .settings
            .founder
            .as_deref()
            .is_some_and(|f| user.source.account.as_deref() == Some(f));
        let operator = founder || (made && !general && entry.settings.founder.is_none());
        let standing = if operator {
            Standing::OPERATOR
        } else {
            Standing::default()
        };
        entry.members.insert(
            key.to_owned(),
            Seat {
                source: user.source.clone(),
                standing,
            },
        );
        user.rooms.push(folded);
        let quiet = self.is_quiet(entry.members.len());
        let channel = entry.channel.clone();
        // Publish the JOIN and subscribe under the room's lock: the cursor starts at
        // exactly what follows the JOIN in the room's order.
        let order = lock(&channel.order);
        let join = self.membership(&channel, &user.source, Kind::Join, quiet);
        let cursor = channel.ring.subscribe();
        drop(order);
        // A quiet room's list would be stale at once, and writing it to every joiner is
        // what makes a crowd joining cost O(N²) bytes: `/who` gives it on demand.
        let mut members = entry.members.values().map(|s| (s.standing, &*s.source));
        let secret = entry.settings.modes.has(Flag::Secret);
        shown(
            &join,
            (!quiet).then(|| Members::new(secret, &mut members)),
            entry.settings.topic.as_deref(),
        );
        Ok(Joined::New {
            channel,
            cursor,
            join,
        })
    }

    /// Writes a registered room's settings to the store (a full queue loses this change
    /// on disk, not in memory: the next change writes them whole again).
    fn keep_room(&self, settings: &Settings) {
        if self.store.set_room(settings.clone()).is_err() {
            tracing::warn!(room = %settings.name, "store queue full: room settings not kept");
        }
    }

    /// Takes the session `key` out of the room `room_key`. Returns the part event, which
    /// the room has been sent and the leaver should be shown, or `None` if it was not in
    /// the room.
    pub(crate) fn part(
        &self,
        key: &str,
        room_key: &str,
        reason: Option<String>,
    ) -> Option<Arc<Event>> {
        let mut st = self.lock();
        let State {
            users,
            rooms,
            created,
            ..
        } = &mut *st;
        let user = users.get_mut(key)?;
        let room = rooms.get_mut(room_key)?;
        let quiet = self.is_quiet(room.members.len());
        room.members.remove(key)?;
        user.rooms.retain(|r| r != room_key);
        let order = lock(&room.channel.order);
        let part = self.membership(&room.channel, &user.source, Kind::Part { reason }, quiet);
        drop(order);
        if room.members.is_empty() {
            remove_room(rooms, created, room_key);
        }
        Some(part)
    }

    /// Renames the session `old_key` to `new`, keeping its account (the one whose
    /// password it gave, if any). Each of its rooms is sent a rename, with one cause.
    pub(crate) fn rename(&self, old_key: &str, new: &Nick) -> Result<Renamed, Refusal> {
        let mut st = self.lock();
        let State {
            users,
            rooms,
            accounts,
            kills,
            ..
        } = &mut *st;
        let new_key = new.folded();
        if new_key != old_key && users.contains_key(&new_key) {
            return Err(Refusal::NickTaken(new.clone()));
        }
        let Some(user) = users.get(old_key) else {
            return Err(Refusal::NickTaken(new.clone()));
        };
        if accounts.contains_key(&new_key)
            && user.source.account.as_deref() != Some(new_key.as_str())
        {
            return Err(Refusal::NickRegistered(new.clone()));
        }
        let Some(mut user) = users.remove(old_key) else {
            return Err(Refusal::NickTaken(new.clone()));
        };
        let renamed = Arc::new(Source {
            nick: new.clone(),
            ..Source::clone(&user.source)
        });
        let old = std::mem::replace(&mut user.source, renamed);
        let kind = || Kind::Rename { new: new.clone() };
        let mut cause = None;
        for room_key in &user.rooms {
            if let Some(room) = rooms.get_mut(room_key) {
                let standing = room
                    .members
                    .remove(old_key)
                    .map_or_else(Standing::default, |s| s.standing);
                room.members.insert(
                    new_key.clone(),
                    Seat {
                        source: user.source.clone(),
                        standing,
                    },
                );
                let rename = self.announce_in(&room.channel, &old, kind(), cause);
                cause.get_or_insert(rename.cause);
            }
        }
        let alone = user.rooms.is_empty();
        let source = user.source.clone();
        let in_rooms = user.rooms.clone();
        if let Some(reason) = kills.remove(old_key) {
            kills.insert(new_key.clone(), reason);
        }
        users.insert(new_key, user);
        Ok(Renamed {
            source,
            alone: alone.then(|| self.own(&old, kind())),
            rooms: in_rooms,
        })
    }

    /// Sets (`Some`) or clears the topic of `room` for the session `key`, which must be
    /// a member, and an operator when the room is `+t` (a server operator need be
    /// neither). The change is announced to the room, quiet or not, and stored like any
    /// room event; under the hub's lock, so that a joiner sees either the old topic and
    /// then this event, or the new topic. A registered room keeps it across restarts.
    pub(crate) fn set_topic(
        &self,
        key: &str,
        room: &Room,
        text: Option<String>,
    ) -> Result<Arc<Event>, Refusal> {
        let mut st = self.lock();
        let State {
            users,
            rooms,
            registered,
            ..
        } = &mut *st;
        let (entry, user) = Self::in_room(users, rooms, key, room)?;
        let oper = user.activity.is_oper();
        let seat = entry.members.get(key);
        if seat.is_none() && !oper {
            return Err(Refusal::NotInRoom(entry.settings.name.clone()));
        }
        let chanop = oper || seat.is_some_and(|s| s.standing.has(Standing::OPERATOR));
        if entry.settings.modes.has(Flag::TopicLock) && !chanop {
            return Err(Refusal::ChanopNeeded(entry.settings.name.clone()));
        }
        let kind = Kind::Topic { text: text.clone() };
        let event = self.announce_in(&entry.channel, &user.source, kind, None);
        entry.settings.topic = text.map(|text| {
            Arc::new(Topic {
                text,
                by: user.source.nick.clone(),
                time: event.time,
            })
        });
        self.settled(registered, entry);
        Ok(event)
    }

    /// The open room `room` (refused if there is none, or if it is secret and `key` is
    /// neither in it nor a server operator) and the session `key`.
    fn in_room<'s>(
        users: &'s HashMap<String, User>,
        rooms: &'s mut HashMap<String, RoomEntry>,
        key: &str,
        room: &Room,
    ) -> Result<(&'s mut RoomEntry, &'s User), Refusal> {
        let user = users
            .get(key)
            .ok_or_else(|| Refusal::NoSuchRoom(room.clone()))?;
        let entry = rooms
            .get_mut(&room.folded())
            .filter(|r| Self::visible(r, key, user))
            .ok_or_else(|| Refusal::NoSuchRoom(room.clone()))?;
        Ok((entry, user))
    }

    /// Whether the session `key` may see that the room exists: it is not secret, or
    /// `key` is in it, or a server operator.
    fn visible(room: &RoomEntry, key: &str, user: &User) -> bool {
        !room.settings.modes.has(Flag::Secret)
            || room.members.contains_key(key)
            || user.activity.is_oper()
    }

    /// After a change to a room's settings: its gate, and for a registered room its
    /// copy in [`State::registered`] and in the store.
    fn settled(&self, registered: &mut HashMap<String, Settings>, entry: &RoomEntry) {
        entry.channel.set_gate(&entry.settings);
        if entry.settings.founder.is_some() {
            self.keep_room(&entry.settings);
            registered.insert(entry.channel.key().to_string(), (*entry.settings).clone());
        }
    }

    /// The canonical name and the topic of `room`, for the session `key`; refused if the
    /// room does not exist (or is secret and `key` not in it).
    pub(crate) fn topic(
        &self,
        key: &str,
        room: &Room,
    ) -> Result<(Arc<RoomName>, Option<Topic>), Refusal> {
        let mut st = self.lock();
        let State { users, rooms, .. } = &mut *st;
        let (entry, _) = Self::in_room(users, rooms, key, room)?;
        Ok((
            entry.channel.room.clone(),
            entry.settings.topic.as_deref().cloned(),
        ))
    }

    /// Whether the member `key` may say something in `channel` (a gated room: see
    /// [`Channel::is_gated`]): it is still in the room, and the room is not moderated
    /// nor has a ban matching `who`, unless the member is voiced or an operator.
    pub(crate) fn may_speak(
        &self,
        key: &str,
        channel: &Channel,
        who: &Identity,
    ) -> Result<(), Refusal> {
        let st = self.lock();
        let name = || channel.name().clone();
        let entry = st
            .rooms
            .get(&**channel.key())
            .ok_or_else(|| Refusal::NotInRoom(name()))?;
        let seat = entry
            .members
            .get(key)
            .ok_or_else(|| Refusal::NotInRoom(name()))?;
        let exempt =
            seat.standing.may_speak() || st.users.get(key).is_some_and(|u| u.activity.is_oper());
        if exempt {
            return Ok(());
        }
        if entry.settings.modes.has(Flag::Moderated) {
            return Err(Refusal::Moderated(name()));
        }
        if entry.settings.banned(who).is_some() {
            return Err(Refusal::BannedFromRoom(name()));
        }
        Ok(())
    }

    /// Whether the session `key` acts as an operator of `entry`: it is one there, or a
    /// server operator.
    fn is_chanop(entry: &RoomEntry, key: &str, user: &User) -> bool {
        user.activity.is_oper()
            || entry
                .members
                .get(key)
                .is_some_and(|s| s.standing.has(Standing::OPERATOR))
    }

    /// Whether the session `key` (of `user`) may act on `target` (folded) in `entry`:
    /// the room's founder is protected from everyone but itself and server operators.
    fn may_act_on(
        &self,
        users: &HashMap<String, User>,
        entry: &RoomEntry,
        key: &str,
        user: &User,
        target: &str,
    ) -> Result<(), Refusal> {
        let Some(founder) = entry.settings.founder.as_deref() else {
            return Ok(());
        };
        let target_user = users.get(target);
        let target_is_founder =
            target_user.is_some_and(|u| u.source.account.as_deref() == Some(founder));
        let actor_is_founder = user.source.account.as_deref() == Some(founder);
        if target_is_founder && !actor_is_founder && !user.activity.is_oper() && target != key {
            return Err(Refusal::Founder {
                nick: target_user
                    .map(|u| u.source.nick.clone())
                    .unwrap_or_else(|| {
                        Nick::new(founder).unwrap_or_else(|_| user.source.nick.clone())
                    }),
                room: entry.settings.name.clone(),
            });
        }
        Ok(())
    }

    /// A `/mode` of the session `key` on `room`: show the modes, list the bans, or
    /// (room operators and server operators) change them. Changes are checked whole
    /// before any is made: each member named must be in the room, the founder keeps its
    /// operator status, the ban list has room. What changed is one `MODE` event to the
    /// room; when nothing did, the answer is the modes.
    pub(crate) fn mode(
        &self,
        key: &str,
        room: &Room,
        request: ModeRequest,
    ) -> Result<ModeOutcome, Refusal> {
        let mut st = self.lock();
        let State {
            users,
            rooms,
            registered,
            ..
        } = &mut *st;
        let (entry, user) = Self::in_room(users, rooms, key, room)?;
        let name = entry.channel.room.clone();
        let changes = match request {
            ModeRequest::Show => {
                let with_key = entry.members.contains_key(key) || user.activity.is_oper();
                return Ok(ModeOutcome::Modes(
                    name,
                    entry.settings.modes.describe(with_key),
                ));
            }
            ModeRequest::ListBans => {
                return Ok(ModeOutcome::Bans(name, entry.settings.bans.clone()));
            }
            ModeRequest::Change(changes) => changes,
        };
        if !Self::is_chanop(entry, key, user) {
            return Err(Refusal::ChanopNeeded(name.name.clone()));
        }
        let mut settings = (*entry.settings).clone();
        let mut applied = Applied::default();
        let mut standings = Vec::new();
        let now = self.now();
        for change in &changes {
            if let Change::Standing(what, on, nick) = change {
                let target = nick.folded();
                if !entry.members.contains_key(&target) {
                    return Err(Refusal::UserNotInRoom {
                        nick: nick.clone(),
                        room: name.name.clone(),
                    });
                }
                if !on && *what == Standing::OPERATOR {
                    self.may_act_on(users, entry, key, user, &target)?;
                }
                standings.push((target, *what, *on));
            } else {
                room::apply(&mut settings, change, &user.source.nick, now, &mut applied)?;
            }
        }
        // Checked: now the member changes, in the order given, after the room's.
        for (target, what, on) in standings {
            if let Some(seat) = entry.members.get_mut(&target) {
                room::apply_standing(
                    &mut seat.standing,
                    what,
                    on,
                    &seat.source.nick,
                    &mut applied,
                );
            }
        }
        if applied.is_empty() {
            let with_key = entry.members.contains_key(key) || user.activity.is_oper();
            return Ok(ModeOutcome::Modes(name, settings.modes.describe(with_key)));
        }
        *entry.settings = settings;
        let kind = Kind::Mode {
            changes: applied.finish(),
        };
        self.announce_in(&entry.channel, &user.source, kind, None);
        self.settled(registered, entry);
        Ok(ModeOutcome::Changed)
    }

    /// The session `key` removes `target` from `room` (room operators and server
    /// operators). Everyone in the room sees the `KICK`, the one kicked included: its
    /// session stops at that event (see `Member::rename` for a rename racing it).
    pub(crate) fn kick(
        &self,
        key: &str,
        room: &Room,
        target: &Nick,
        reason: Option<String>,
    ) -> Result<Arc<Event>, Refusal> {
        let mut st = self.lock();
        let State {
            users,
            rooms,
            created,
            ..
        } = &mut *st;
        let (entry, user) = Self::in_room(users, rooms, key, room)?;
        // Kicking from a room one is not in is IRC's 442, before any question of rank
        // (a server operator may).
        if !entry.members.contains_key(key) && !user.activity.is_oper() {
            return Err(Refusal::NotInRoom(entry.settings.name.clone()));
        }
        if !Self::is_chanop(entry, key, user) {
            return Err(Refusal::ChanopNeeded(entry.settings.name.clone()));
        }
        let target_key = target.folded();
        let Some(seat) = entry.members.get(&target_key) else {
            return Err(Refusal::UserNotInRoom {
                nick: target.clone(),
                room: entry.settings.name.clone(),
            });
        };
        self.may_act_on(users, entry, key, user, &target_key)?;
        let kind = Kind::Kick {
            target: seat.source.nick.clone(),
            reason: reason.unwrap_or_else(|| user.source.nick.to_string()),
        };
        let event = self.announce_in(&entry.channel, &user.source, kind, None);
        entry.members.remove(&target_key);
        let empty = entry.members.is_empty();
        let room_key = entry.channel.key().clone();
        if let Some(kicked) = users.get_mut(&target_key) {
            kicked.rooms.retain(|r| **r != *room_key);
        }
        if empty {
            remove_room(rooms, created, &room_key);
        }
        Ok(event)
    }

    /// The session `key` invites `target` to `room`: any member may, only operators in
    /// an invite-only room (and server operators anywhere). The invitation lets `target`
    /// past `+i` once; the `INVITE` goes to the room and to `target`.
    pub(crate) fn invite(
        &self,
        key: &str,
        room: &Room,
        target: &Nick,
    ) -> Result<Arc<Event>, Refusal> {
        let mut st = self.lock();
        let State { users, rooms, .. } = &mut *st;
        let (entry, user) = Self::in_room(users, rooms, key, room)?;
        let name = || entry.settings.name.clone();
        if !entry.members.contains_key(key) && !user.activity.is_oper() {
            return Err(Refusal::NotInRoom(name()));
        }
        if entry.settings.modes.has(Flag::InviteOnly) && !Self::is_chanop(entry, key, user) {
            return Err(Refusal::ChanopNeeded(name()));
        }
        let target_key = target.folded();
        let invited = users
            .get(&target_key)
            .ok_or_else(|| Refusal::NoSuchNick(target.clone()))?;
        if entry.members.contains_key(&target_key) {
            return Err(Refusal::AlreadyInRoom {
                nick: invited.source.nick.clone(),
                room: name(),
            });
        }
        let invitation = (target_key, invited.session());
        if !entry.invited.contains(&invitation) {
            if entry.invited.len() >= room::INVITE_LIMIT {
                entry.invited.remove(0);
            }
            entry.invited.push(invitation);
        }
        let kind = Kind::Invite {
            target: invited.source.nick.clone(),
        };
        let event = self.announce_in(&entry.channel, &user.source, kind, None);
        // A full mailbox: the invitation stands; the room saw it.
        let _ = invited.mailbox.try_send(event.clone());
        Ok(event)
    }

    /// When the hub started, by the wall clock.
    pub(crate) fn started(&self) -> jiff::Timestamp {
        self.started
    }

    /// Whole seconds from the hub's start to `now`, the clock of every [`Activity`].
    pub(crate) fn uptime_secs(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// An event its source alone sees (a rename while in no room), with its id and time.
    pub(crate) fn own(&self, source: &Arc<Source>, kind: Kind) -> Arc<Event> {
        Arc::new(self.event(Scope::Own, source, kind, None))
    }

    /// Replaces the source of the session `key` (it identified to an account, or
    /// changed its real name), in its rooms' seats too. A new account, and a new real
    /// name, is told to each of its rooms that are not quiet, with one cause (IRC's
    /// `account-notify` and `setname`; the native door shows nothing of them).
    pub(crate) fn set_source(&self, key: &str, source: &Arc<Source>) {
        let mut st = self.lock();
        let State { users, rooms, .. } = &mut *st;
        let Some(user) = users.get_mut(key) else {
            return;
        };
        let realname = |s: &Source| s.ident.as_ref().map(|i| i.realname.clone());
        let mut told = Vec::new();
        if user.source.account != source.account {
            told.push(Kind::Account);
        }
        if let Some(new) = realname(source)
            && realname(&user.source).as_ref() != Some(&new)
        {
            told.push(Kind::Realname {
                realname: new.to_string(),
            });
        }
        user.source = source.clone();
        for kind in told {
            let mut cause = None;
            for room_key in &user.rooms {
                if let Some(room) = rooms.get(room_key)
                    && !self.is_quiet(room.members.len())
                {
                    let told = self.announce_in(&room.channel, source, kind.clone(), cause);
                    cause.get_or_insert(told.cause);
                }
            }
        }
        for room_key in &user.rooms {
            if let Some(seat) = rooms
                .get_mut(room_key)
                .and_then(|room| room.members.get_mut(key))
            {
                seat.source = source.clone();
            }
        }
    }

    /// The nickname (as spelled), mailbox and away text of the session called `nick`.
    pub(crate) fn lookup(&self, nick: &Nick) -> Result<Recipient, Refusal> {
        let st = self.lock();
        st.users
            .get(&nick.folded())
            .map(|u| Recipient {
                nick: u.source.nick.clone(),
                mailbox: u.mailbox.clone(),
                away: u.away.clone(),
            })
            .ok_or_else(|| Refusal::NoSuchNick(nick.clone()))
    }

    /// Sets (`Some`) or clears the away text of the session `key`, and tells each of its
    /// rooms that are not quiet, with one cause (IRC's `away-notify`; the native door
    /// shows nothing of it). Setting what was set already tells nobody.
    pub(crate) fn set_away(&self, key: &str, text: Option<String>) {
        let mut st = self.lock();
        let State { users, rooms, .. } = &mut *st;
        let Some(user) = users.get_mut(key) else {
            return;
        };
        if user.away.as_deref() == text.as_deref() {
            return;
        }
        user.away = text.as_deref().map(Arc::from);
        let mut cause = None;
        for room_key in &user.rooms {
            if let Some(room) = rooms.get(room_key)
                && !self.is_quiet(room.members.len())
            {
                let kind = Kind::Away { text: text.clone() };
                let away = self.announce_in(&room.channel, &user.source, kind, cause);
                cause.get_or_insert(away.cause);
            }
        }
    }

    /// What `/whois` tells the session `asker` of the session called `nick`. A secret
    /// room is shown only to someone in it (or a server operator).
    pub(crate) fn whois(&self, asker: &str, nick: &Nick) -> Result<Whois, Refusal> {
        let st = self.lock();
        let user = st
            .users
            .get(&nick.folded())
            .ok_or_else(|| Refusal::NoSuchNick(nick.clone()))?;
        let viewer = st.users.get(asker);
        let target_key = nick.folded();
        let rooms = user
            .rooms
            .iter()
            .filter_map(|key| st.rooms.get(key))
            .filter(|r| viewer.is_some_and(|v| Self::visible(r, asker, v)))
            .map(|r| {
                let standing = r
                    .members
                    .get(&target_key)
                    .map_or_else(Standing::default, |s| s.standing);
                (standing, r.channel.name().clone())
            })
            .collect();
        Ok(Whois {
            source: user.source.clone(),
            since: self
                .started
                .checked_add(jiff::SignedDuration::from_secs(i64::from(
                    user.activity.since,
                )))
                .unwrap_or(self.started),
            idle: user.activity.idle(self.uptime_secs(Instant::now())),
            tls: user.activity.tls,
            oper: user.activity.is_oper(),
            away: user.away.clone(),
            rooms,
        })
    }

    /// What `WHO #room` tells the session `key` of each member of `room`, by folded
    /// nickname; refused as [`Hub::members`] is.
    pub(crate) fn who_in(
        &self,
        key: &str,
        room: &Room,
    ) -> Result<(Arc<RoomName>, Vec<Who>), Refusal> {
        let mut st = self.lock();
        let State { users, rooms, .. } = &mut *st;
        let (entry, _) = Self::in_room(users, rooms, key, room)?;
        let now = self.uptime_secs(Instant::now());
        let list = entry
            .members
            .iter()
            .filter_map(|(k, seat)| Some(Self::who_of(users.get(k)?, seat.standing, now)))
            .collect();
        Ok((entry.channel.room.clone(), list))
    }

    /// What `WHO <mask>` may show the session `key`: everyone it shares a room with, and
    /// itself, by folded nickname (the caller matches the mask outside the hub's lock).
    /// Every user is invisible (IRC's `+i`): a mask finds no one else.
    pub(crate) fn who_shared(&self, key: &str) -> Vec<Who> {
        let st = self.lock();
        let Some(asker) = st.users.get(key) else {
            return Vec::new();
        };
        let mut keys = BTreeSet::from([key]);
        for room in asker.rooms.iter().filter_map(|r| st.rooms.get(r)) {
            keys.extend(room.members.keys().map(String::as_str));
        }
        let now = self.uptime_secs(Instant::now());
        keys.into_iter()
            .filter_map(|k| st.users.get(k))
            .map(|user| Self::who_of(user, Standing::default(), now))
            .collect()
    }

    fn who_of(user: &User, standing: Standing, now: u32) -> Who {
        Who {
            source: user.source.clone(),
            standing,
            away: user.away.is_some(),
            oper: user.activity.is_oper(),
            idle: user.activity.idle(now),
        }
    }

    /// The recent departures under `nick` (case-insensitively), newest first; refused
    /// when there are none.
    pub(crate) fn whowas(&self, nick: &Nick) -> Result<Vec<Departure>, Refusal> {
        let st = self.lock();
        let found = st.whowas.of(&nick.folded());
        if found.is_empty() {
            return Err(Refusal::WasNoSuchNick(nick.clone()));
        }
        Ok(found)
    }

    /// Gives a room's members to `list`, under the hub's lock, for the session `key`;
    /// refused if the room does not exist (or is secret and `key` not in it).
    pub(crate) fn members(
        &self,
        key: &str,
        room: &Room,
        list: impl FnOnce(&RoomName, Members<'_, '_>),
    ) -> Result<(), Refusal> {
        let mut st = self.lock();
        let State { users, rooms, .. } = &mut *st;
        let (entry, _) = Self::in_room(users, rooms, key, room)?;
        let mut members = entry.members.values().map(|s| (s.standing, &*s.source));
        let secret = entry.settings.modes.has(Flag::Secret);
        list(&entry.channel.room, Members::new(secret, &mut members));
        Ok(())
    }

    /// The name to show for a `/history` of `room` by the session `key`, if it may read
    /// it. Any room's history is public, except a room that is secret, invite-only or
    /// keyed (open, or registered and empty): only its members and server operators read
    /// that (a secret room's is refused as if there were no such room). An unregistered
    /// room's modes end when it empties, and its history is public again: a room whose
    /// history must stay private is registered.
    pub(crate) fn readable(&self, key: &str, room: &Room) -> Result<Room, Refusal> {
        let st = self.lock();
        let folded = room.folded();
        let open = st.rooms.get(&folded);
        let Some(settings) = open
            .map(|r| &*r.settings)
            .or_else(|| st.registered.get(&folded))
        else {
            return Ok(room.clone());
        };
        let modes = &settings.modes;
        let closed = modes.has(Flag::Secret) || modes.has(Flag::InviteOnly) || modes.key.is_some();
        let member = open.is_some_and(|r| r.members.contains_key(key));
        let oper = st.users.get(key).is_some_and(|u| u.activity.is_oper());
        if closed && !member && !oper {
            return Err(if modes.has(Flag::Secret) {
                Refusal::NoSuchRoom(room.clone())
            } else {
                Refusal::NotInRoom(settings.name.clone())
            });
        }
        Ok(settings.name.clone())
    }

    /// Every room the session `key` may see (secret ones only if it is in them), with
    /// its member count and topic, by folded name. Little is copied under the hub's
    /// lock; the list is sorted after it is released.
    pub(crate) fn rooms(&self, key: &str) -> Vec<Listed> {
        let mut list: Vec<_> = {
            let st = self.lock();
            let Some(viewer) = st.users.get(key) else {
                return Vec::new();
            };
            st.rooms
                .values()
                .filter(|r| Self::visible(r, key, viewer))
                .map(|r| Listed {
                    room: r.channel.room.clone(),
                    members: r.members.len(),
                    topic: r.settings.topic.clone(),
                })
                .collect()
        };
        list.sort_unstable_by(|a, b| a.room.key.cmp(&b.room.key));
        list
    }

    /// Bytes of events held by every room's ring.
    pub(crate) fn room_bytes(&self) -> usize {
        self.budget.held()
    }

    /// Whether the store takes writes (see `Store::healthy`).
    pub(crate) fn store_healthy(&self) -> bool {
        self.store.healthy()
    }

    /// The metrics in the OpenMetrics text format, the gauges read from the hub now.
    pub(crate) fn metrics_text(&self) -> String {
        let (sessions, rooms) = self.counts();
        self.metrics.observe(Observed {
            sessions,
            rooms,
            room_bytes: self.room_bytes(),
            store_queue: self.store.queued(),
        });
        self.metrics.encode()
    }

    /// How many sessions are registered and how many rooms exist.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.users.len() - st.remote.len(), st.rooms.len())
    }
}

/// What a rename gives back.
pub(crate) struct Renamed {
    /// The session's new source.
    pub(crate) source: Arc<Source>,
    /// The rename for a session in no room (which would otherwise not hear of it).
    pub(crate) alone: Option<Arc<Event>>,
    /// The rooms (folded) the session is in as of the rename: one of its rooms missing
    /// here kicked it under its old name.
    pub(crate) rooms: Vec<String>,
}

/// The session a private message goes to.
pub(crate) struct Recipient {
    /// Its nickname as spelled.
    pub(crate) nick: Nick,
    /// Where its private messages go.
    pub(crate) mailbox: MailboxSender<Arc<Event>>,
    /// Its away text, if away.
    pub(crate) away: Option<Arc<str>>,
}

/// Removes the empty room `key`, and its count against the address that created it.
fn remove_room(
    rooms: &mut HashMap<String, RoomEntry>,
    created: &mut HashMap<IpAddr, usize>,
    key: &str,
) {
    let Some(room) = rooms.remove(key) else {
        return;
    };
    if let Some(ip) = room.creator
        && let Some(count) = created.get_mut(&ip)
    {
        *count -= 1;
        if *count == 0 {
            created.remove(&ip);
        }
    }
}

/// A hub over an in-memory store, for tests of the core without sockets.
#[cfg(test)]
pub(crate) fn test_hub(capacity: usize, presence_limit: usize) -> Arc<Hub> {
    let opened = super::store::open(
        &super::store::Location::Memory,
        super::store::StoreOptions::default(),
    )
    .expect("an in-memory store opens");
    let rooms = RoomLimits {
        capacity,
        buffer: 1024 * 1024,
        total_buffer: 16 * 1024 * 1024,
        total: 100,
        per_address: 100,
    };
    Arc::new(Hub::new(
        rooms,
        presence_limit,
        opened.store,
        opened.next_id,
        opened.accounts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn departure(nick: &str, n: i64) -> Departure {
        let nick = Nick::new(nick).unwrap();
        Departure {
            key: nick.folded(),
            nick,
            account: None,
            left: jiff::Timestamp::from_second(n).unwrap(),
        }
    }

    #[test]
    fn the_operator_flags_cost_no_memory() {
        assert_eq!(std::mem::size_of::<Activity>(), 12);
    }

    #[test]
    fn whowas_is_bounded_in_all_and_per_nickname() {
        let mut whowas = Whowas::new(10, 3);
        for n in 0..25 {
            whowas.push(departure(&format!("u{n}"), n));
        }
        assert_eq!(whowas.len(), 10, "bounded in all");
        assert!(whowas.of("u14").is_empty(), "the oldest are forgotten");
        assert_eq!(whowas.of("u15").len(), 1);
        assert_eq!(whowas.per_key.len(), 10, "counts follow the list");
        for n in 100..110 {
            whowas.push(departure(if n % 2 == 0 { "Alice" } else { "alice" }, n));
        }
        let alice = whowas.of("alice");
        assert_eq!(alice.len(), 3, "the latest few per nickname");
        let times: Vec<_> = alice.iter().map(|d| d.left.as_second()).collect();
        assert_eq!(times, vec![109, 108, 107], "newest first");
        assert_eq!(whowas.len(), 10);
        let counted: usize = whowas.per_key.values().sum();
        assert_eq!(counted, whowas.len());
    }

    #[test]
    fn a_quit_is_remembered_and_the_hub_list_is_bounded() {
        let hub = test_hub(16, 0);
        for n in 0..WHOWAS_LIMIT + 5 {
            let source = Arc::new(Source::named(Nick::new(&format!("u{n}")).unwrap(), None));
            let (tx, _rx) = super::super::mailbox::mailbox(4);
            hub.register(&source, tx, false).unwrap();
            hub.unregister(&source.nick.folded(), "bye");
        }
        let st = hub.lock();
        assert_eq!(st.whowas.len(), WHOWAS_LIMIT);
        drop(st);
        assert!(hub.whowas(&Nick::new("u0").unwrap()).is_err());
        let last = hub
            .whowas(&Nick::new(&format!("U{}", WHOWAS_LIMIT + 4)).unwrap())
            .unwrap();
        assert_eq!(last.len(), 1);
    }
}

//! The embedded store: room history, private messages and accounts in SQLite.
//!
//! One writer thread owns the database connection (a plain thread, since every SQLite
//! call blocks). Sessions never wait on disk: they hand an [`Op`] to the thread over a
//! bounded channel without blocking ([`Store::append`] fails with [`Busy`] when the queue
//! is full), and a query's answer comes back on a oneshot that the session awaits. The
//! thread applies operations in the order they were queued, on one connection, so a
//! query sees every record appended before it, committed or not.
//!
//! Writes are batched: the thread keeps a transaction open and commits it when its first
//! write is [`StoreOptions::batch_window`] old, when it holds
//! [`StoreOptions::max_batch`] records, on [`Store::flush`], and when the last [`Store`]
//! is dropped. A database file uses WAL with `synchronous=FULL`, so each commit is one
//! fsync (at most 10 a second at the default window), which gives this guarantee:
//!
//! **After a crash (`kill -9`, or a power loss), the database holds every record that was
//! appended more than `batch_window` before it, and nothing torn: a batch is there whole
//! or not at all.** Records still in the queue or in the open batch are lost.
//!
//! History is kept as `--history-retention` says: forever by default, or up to an age
//! and/or a count of events per room. The writer thread deletes what is past it in
//! small batches between its write batches (see `prune`); accounts are never deleted.
//!
//! - `schema`: opening a connection, its pragmas, the versioned migrations.
//! - `writer`: the writer thread: batching, commits, the SQL of each operation.
//! - `prune`: history retention, the writer's pruning passes.

mod prune;
mod queue;
mod schema;
mod writer;

use super::ban::Ban;
use super::event::{Event, Scope};
use super::room::Settings;
use crate::config::Retention;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

pub(crate) use writer::Writer;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// In memory, gone when the server stops: for tests.
    Memory,
    /// A SQLite file; its directory is created if need be.
    File(PathBuf),
}

impl Location {
    /// The default database file: `chat-server/chat.db` in the platform's data directory
    /// (`~/.local/share` on Linux), or `./chat.db` where there is none.
    pub(crate) fn default_file() -> PathBuf {
        dirs::data_dir().map_or_else(
            || PathBuf::from("chat.db"),
            |dir| dir.join("chat-server").join("chat.db"),
        )
    }

    /// The path to name in errors and logs.
    fn path(&self) -> &Path {
        match self {
            Location::Memory => Path::new(":memory:"),
            Location::File(path) => path,
        }
    }
}

/// How the writer batches and how much it queues.
#[derive(Debug, Clone)]
pub(crate) struct StoreOptions {
    /// Longest time a write waits for its commit: the most a crash can lose.
    pub(crate) batch_window: Duration,
    /// Records committed at most in one transaction, so that a burst does not hold one
    /// transaction (and its memory) open for the whole window.
    pub(crate) max_batch: usize,
    /// Appends queued for the writer, and apart from them queries and flushes; past it
    /// the store answers [`Busy`] (see `queue`).
    pub(crate) queue: usize,
    /// What history is kept (`--history-retention`); the default keeps everything.
    pub(crate) retention: Retention,
    /// Events one pruning pass deletes at most: what bounds the wait of the writes
    /// queued behind it.
    pub(crate) prune_batch: usize,
    /// Time between pruning passes (a pass that stopped at its bound is followed sooner).
    pub(crate) prune_every: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            batch_window: Duration::from_millis(100),
            max_batch: 4096,
            queue: 65536,
            retention: Retention::default(),
            prune_batch: 500,
            prune_every: Duration::from_secs(10),
        }
    }
}

/// What a record is, which decides which queries find it (the `events.kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message, an action or a notice in a room: what `/history` shows.
    Message,
    /// Anything else that happens in a room (join, part, quit, rename, topic, mode,
    /// kick, invite): replayed only to a member that lagged.
    Membership,
    /// A private message.
    Private,
}

impl Kind {
    /// The kind of `event`.
    pub(crate) fn of(event: &Event) -> Kind {
        match (&event.scope, event.is_said()) {
            (Scope::Room(_), true) => Kind::Message,
            (Scope::Room(_), false) => Kind::Membership,
            (Scope::Private { .. } | Scope::Own | Scope::Wallops, _) => Kind::Private,
        }
    }

    /// The value in the `events.kind` column. The history index is declared `WHERE kind
    /// = 0`, so `Message` must stay 0.
    fn code(self) -> i64 {
        match self {
            Kind::Message => 0,
            Kind::Membership => 1,
            Kind::Private => 2,
        }
    }
}

/// An event to keep: a room's event (stored under the room's folded name) or a
/// private message (stored under its pair, see [`pair`]). The store keeps its fields,
/// the canonical form every door rebuilds its history from (see `schema`).
pub(crate) type Record = Arc<Event>;

/// The key of a private conversation: both folded nicknames, sorted, space-separated.
pub(crate) fn pair(a: &str, b: &str) -> Arc<str> {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("{first} {second}").into()
}

/// A registered nickname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// The folded nickname.
    pub(crate) nick: String,
    /// The password's argon2 hash as a PHC string.
    pub(crate) hash: String,
    /// When the account was registered, in milliseconds since the epoch. Kept as it was
    /// when the password changes.
    pub(crate) created_ms: i64,
}

/// A question for the store. Every answer is oldest first.
#[derive(Debug, Clone)]
pub(crate) enum Query {
    /// The latest `limit` events of kind [`Kind::Message`] in `room` with an id below
    /// `before`.
    History {
        /// The folded room name.
        room: Arc<str>,
        /// Only ids below this (`u64::MAX` for the latest).
        before: u64,
        /// Most events returned.
        limit: usize,
    },
    /// The first `limit` events of every kind in `room` with an id above `after` and
    /// below `before`: to refill a member that lagged.
    After {
        /// The folded room name.
        room: Arc<str>,
        /// Only ids above this.
        after: u64,
        /// Only ids below this (`u64::MAX` for no bound).
        before: u64,
        /// Most events returned.
        limit: usize,
    },
    /// The latest `limit` private messages of `pair` with an id below `before` and a time
    /// at or after `since_ms`.
    Private {
        /// The two folded nicknames, as [`pair`] makes them.
        pair: Arc<str>,
        /// Only messages at or after this time, in milliseconds since the epoch.
        since_ms: i64,
        /// Only ids below this (`u64::MAX` for the latest).
        before: u64,
        /// Most messages returned.
        limit: usize,
    },
    /// The first (or, when `latest`, the last) `limit` messages of `of` in `span`: IRC's
    /// `CHATHISTORY BEFORE`, `AFTER`, `LATEST` and `BETWEEN`.
    Messages {
        of: Of,
        span: Span,
        latest: bool,
        limit: usize,
    },
    /// The last `limit / 2` messages of `of` in `older`, then the first of `newer` up to
    /// `limit` in all: IRC's `CHATHISTORY AROUND`.
    Around {
        of: Of,
        older: Span,
        newer: Span,
        limit: usize,
    },
}

/// Whose messages a [`Query::Messages`] or [`Query::Around`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Of {
    /// A room's, by its folded name.
    Room(Arc<str>),
    /// A private conversation's, as [`pair`] names it, at or after `since_ms` (the
    /// reader's account's creation: a nickname's earlier owner's talk is not shown).
    Pair { pair: Arc<str>, since_ms: i64 },
}

/// The messages strictly between two ids and strictly between two times (milliseconds
/// since the epoch). Ids and times grow together within a room, so either may bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) after_id: u64,
    pub(crate) before_id: u64,
    pub(crate) after_ms: i64,
    pub(crate) before_ms: i64,
}

impl Span {
    /// Every message.
    pub(crate) const ALL: Span = Span {
        after_id: 0,
        before_id: u64::MAX,
        after_ms: i64::MIN,
        before_ms: i64::MAX,
    };
}

/// An event as the store gives it back: rebuilt from its fields, with its original id,
/// time and cause, and a source that knows only its nickname and account.
pub(crate) type Stored = Event;

/// The answer to a [`Query`].
pub(crate) type Answer = Result<Vec<Stored>, StoreError>;

/// The writer's queue is full (or the writer has stopped, which only a bug can cause):
/// the operation was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the store is busy")]
pub(crate) struct Busy;

/// Why the store could not be opened or a query failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database's directory could not be created.
    #[error("cannot create the directory {}: {source}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file exists but SQLite cannot read it as a database.
    #[error("{} is not a SQLite database (or it is encrypted or damaged)", .path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The database was written by a newer program, whose schema this one does not know.
    #[error(
        "{} has schema version {found}, but this chat-server knows versions up to {known}: \
         run a newer chat-server, or choose another file with --db",
        .path.display()
    )]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The latest version this program knows.
        known: usize,
    },
    /// A migration failed; it was rolled back, and the database is at the version before it.
    #[error("cannot upgrade {} to schema version {version}: {source}", .path.display())]
    Migrate {
        /// The file.
        path: PathBuf,
        /// The version being applied.
        version: usize,
        /// Why.
        source: rusqlite::Error,
    },
    /// Any other SQLite failure.
    #[error("database {}: {source}", .path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the store's writer thread: {0}")]
    Spawn(std::io::Error),
    /// The writer thread stopped before answering (only a bug can cause it).
    #[error("the store's writer thread has stopped")]
    Stopped,
}

impl StoreError {
    /// Wraps an SQLite error, telling "not a database" apart from the rest.
    fn sqlite(path: &Path, source: rusqlite::Error) -> StoreError {
        let path = path.to_owned();
        match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotADatabase { path },
            _ => StoreError::Sqlite { path, source },
        }
    }
}

/// An operation for the writer thread.
enum Op {
    /// Insert an event.
    Append(Record),
    /// Insert or update an account; the time is when it was asked (`updated`).
    SetAccount(Account, i64),
    /// Insert or update a registered room's settings and bans.
    SetRoom(Box<Settings>, i64),
    /// Insert or replace a server ban; the time is when it was set.
    SetServerBan(Box<Ban>, i64),
    /// Delete the server ban of this target (as listed).
    LiftServerBan(String),
    /// Answer a query.
    Query(Query, oneshot::Sender<Answer>),
    /// Commit, then answer.
    Flush(oneshot::Sender<()>),
    /// Commit, run a pruning pass now, and answer with the events it deleted.
    // Passes are timed by the writer; tests ask for one.
    #[cfg_attr(not(test), allow(dead_code))]
    Prune(oneshot::Sender<u64>),
}

/// A handle for the store: cheap to clone, one per session. The writer thread stops when
/// every clone is gone.
#[derive(Clone)]
pub(crate) struct Store {
    tx: queue::Sender,
    /// How long each commit took, observed by the writer thread.
    commits: Histogram,
    /// Events deleted by history retention, counted by the writer thread.
    pruned: Counter,
    /// Whether the last write failed, for `/healthz`.
    health: Arc<Health>,
}

/// Whether writes succeed: set when a batch is lost (begin, commit or rollback fails),
/// when the queue refuses a write as full, or when the writer thread is gone; cleared by
/// the next commit that succeeds.
#[derive(Debug, Default)]
pub(crate) struct Health {
    failing: std::sync::atomic::AtomicBool,
}

impl Health {
    fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An opened store and what it held at opening.
pub(crate) struct Opened {
    /// The handle to give to sessions.
    pub(crate) store: Store,
    /// The writer thread, to await at shutdown.
    // The server flushes through `Store::flush` at shutdown and lets the thread end
    // with the process; tests await the thread's end.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) writer: Writer,
    /// The first unused message id: one more than the largest stored (1 if none).
    pub(crate) next_id: u64,
    /// Every account, ordered by nickname.
    pub(crate) accounts: Vec<Account>,
    /// Every registered room's settings.
    pub(crate) rooms: Vec<Settings>,
    /// The server bans that had not expired.
    pub(crate) server_bans: Vec<Ban>,
}

/// Opens (creating and upgrading if need be) the database and starts its writer thread.
///
/// This blocks on disk: call it before serving, or from `spawn_blocking`.
pub(crate) fn open(location: &Location, options: StoreOptions) -> Result<Opened, StoreError> {
    let path = location.path();
    let conn = schema::connect(location)?;
    let next_id = schema::next_id(&conn).map_err(|e| StoreError::sqlite(path, e))?;
    let accounts = schema::accounts(&conn).map_err(|e| StoreError::sqlite(path, e))?;
    let rooms = schema::rooms(&conn).map_err(|e| StoreError::sqlite(path, e))?;
    let server_bans =
        schema::server_bans(&conn, now_ms()).map_err(|e| StoreError::sqlite(path, e))?;
    let (tx, rx) = queue::channel(options.queue);
    let health = Arc::new(Health::default());
    let commits = crate::core::metrics::commit_histogram();
    let pruned = Counter::default();
    if !options.retention.is_forever() {
        tracing::info!(retention = %options.retention, "history retention");
    }
    let writer = writer::spawn(
        conn,
        path.to_owned(),
        &options,
        rx,
        health.clone(),
        commits.clone(),
        pruned.clone(),
    )
    .map_err(StoreError::Spawn)?;
    Ok(Opened {
        store: Store {
            tx,
            health,
            commits,
            pruned,
        },
        writer,
        next_id,
        accounts,
        rooms,
        server_bans,
    })
}

impl Store {
    /// Whether the store takes writes: its last batch committed and its writer runs.
    pub(crate) fn healthy(&self) -> bool {
        !self
            .health
            .failing
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues an event for writing.
    pub(crate) fn append(&self, record: Record) -> Result<(), Busy> {
        self.send(Op::Append(record), false)
    }

    /// Queues the creation of an account, or the change of its password hash if the
    /// nickname has one (its `created_ms` is then kept).
    pub(crate) fn set_account(&self, account: Account) -> Result<(), Busy> {
        self.send(Op::SetAccount(account, now_ms()), false)
    }

    /// Queues the settings of a registered room (all of them, bans included).
    pub(crate) fn set_room(&self, room: Settings) -> Result<(), Busy> {
        self.send(Op::SetRoom(Box::new(room), now_ms()), false)
    }

    /// Queues a server ban, replacing one of the same target.
    pub(crate) fn set_server_ban(&self, ban: Ban) -> Result<(), Busy> {
        self.send(Op::SetServerBan(Box::new(ban), now_ms()), false)
    }

    /// Queues the lifting of the server ban of `target` (as listed).
    pub(crate) fn lift_server_ban(&self, target: String) -> Result<(), Busy> {
        self.send(Op::LiftServerBan(target), false)
    }

    /// Queues a query. Its answer comes once everything queued before it is applied.
    pub(crate) fn query(&self, query: Query) -> Result<oneshot::Receiver<Answer>, Busy> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Query(query, tx), true)?;
        Ok(rx)
    }

    /// Asks for a commit of everything queued so far. The receiver is answered once it is
    /// durable, or gets an error if the commit failed (the writer logs why).
    pub(crate) fn flush(&self) -> Result<oneshot::Receiver<()>, Busy> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Flush(tx), true)?;
        Ok(rx)
    }

    /// Asks for a pruning pass now, after a commit of everything queued so far. The
    /// receiver gets the number of events it deleted (0 when everything is kept).
    #[cfg(test)]
    pub(crate) fn prune(&self) -> Result<oneshot::Receiver<u64>, Busy> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Prune(tx), true)?;
        Ok(rx)
    }

    /// Operations queued and not yet taken by the writer.
    pub(crate) fn queued(&self) -> usize {
        self.tx.len()
    }

    /// The histogram of commit times (in seconds) that the writer thread fills.
    pub(crate) fn commit_times(&self) -> Histogram {
        self.commits.clone()
    }

    /// The counter of events deleted by history retention, which the writer thread adds
    /// to.
    pub(crate) fn pruned(&self) -> Counter {
        self.pruned.clone()
    }

    /// Queues `op` without waiting; `urgent` when someone awaits its answer.
    fn send(&self, op: Op, urgent: bool) -> Result<(), Busy> {
        self.tx.send(op, urgent).map_err(|e| match e {
            queue::SendError::Full => {
                // A write refused is a store that does not take writes, until its writer
                // catches up and commits.
                self.health.set_failing(true);
                Busy
            }
            queue::SendError::Gone => {
                self.health.set_failing(true);
                tracing::error!("the store's writer thread has stopped");
                Busy
            }
        })
    }
}

/// The time now, in milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{self, RoomName, Source};
    use crate::core::room::{Mask, Modes, RoomBan, Topic};
    use chat_proto::name::{Nick, Room};
    use rusqlite::Connection;

    fn nick(name: &str) -> Nick {
        Nick::new(name).unwrap()
    }

    /// A record of `kind` with id `id`, its text naming both: in `room`, or between the
    /// two nicknames of `pair`.
    fn record(id: u64, kind: Kind, room: Option<&str>, pair: Option<&str>) -> Record {
        text_record(id, kind, room, pair, format!("EVENT {id} {kind:?}"))
    }

    fn text_record(
        id: u64,
        kind: Kind,
        room: Option<&str>,
        pair: Option<&str>,
        text: String,
    ) -> Record {
        record_at(id, kind, room, pair, text, 1_000 * id as i64)
    }

    /// A record as [`record`] makes it, at `time_ms`.
    fn dated(id: u64, kind: Kind, room: Option<&str>, pair: Option<&str>, time_ms: i64) -> Record {
        record_at(
            id,
            kind,
            room,
            pair,
            format!("EVENT {id} {kind:?}"),
            time_ms,
        )
    }

    fn record_at(
        id: u64,
        kind: Kind,
        room: Option<&str>,
        pair: Option<&str>,
        text: String,
        time_ms: i64,
    ) -> Record {
        let time = jiff::Timestamp::from_millisecond(time_ms).unwrap();
        let (from, scope) = match (room, pair) {
            (Some(room), _) => (
                "alice",
                Scope::Room(RoomName::new(Room::new(room).unwrap())),
            ),
            (None, Some(pair)) => {
                let (a, b) = pair.split_once(' ').unwrap();
                (a, Scope::Private { to: nick(b) })
            }
            (None, None) => panic!("a record is in a room or a pair"),
        };
        let kind = match kind {
            Kind::Message | Kind::Private => event::Kind::Message { text },
            Kind::Membership => event::Kind::Part { reason: Some(text) },
        };
        let source = Arc::new(Source::named(nick(from), None));
        Arc::new(Event::new(id, time, id, scope, source, kind))
    }

    /// The ids of an answer.
    fn ids(answer: Answer) -> Vec<u64> {
        answer.unwrap().into_iter().map(|s| s.id).collect()
    }

    /// Runs `query` on `store` and returns the ids of its answer.
    async fn ask(store: &Store, query: Query) -> Vec<u64> {
        ids(store.query(query).unwrap().await.unwrap())
    }

    /// A history query in `room`.
    fn history(room: &str, before: u64, limit: usize) -> Query {
        Query::History {
            room: room.into(),
            before,
            limit,
        }
    }

    /// Counts the events committed in the file at `path`, seen from another connection.
    fn committed(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM events", [], |row| row.get(0))
            .unwrap()
    }

    /// An options with a window long enough that only size, flush or exit commit, and
    /// pruning passes only when asked for.
    fn no_timer() -> StoreOptions {
        StoreOptions {
            batch_window: Duration::from_secs(3600),
            prune_every: Duration::from_secs(3600),
            ..StoreOptions::default()
        }
    }

    /// [`no_timer`] keeping history as `retention` says.
    fn retaining(retention: Retention) -> StoreOptions {
        StoreOptions {
            retention,
            ..no_timer()
        }
    }

    /// Runs pruning passes until one deletes nothing; returns what each deleted.
    async fn prune_all(store: &Store) -> Vec<u64> {
        let mut passes = Vec::new();
        loop {
            let deleted = store.prune().unwrap().await.unwrap();
            if deleted == 0 {
                return passes;
            }
            passes.push(deleted);
            assert!(passes.len() < 1000, "pruning ends");
        }
    }

    /// Every event of `room`, of every kind, by id.
    async fn room_ids(store: &Store, room: &str) -> Vec<u64> {
        let after = Query::After {
            room: room.into(),
            after: 0,
            before: u64::MAX,
            limit: 10_000,
        };
        ask(store, after).await
    }

    /// Every private message of `pair`, by id.
    async fn pair_ids(store: &Store, pair: &str) -> Vec<u64> {
        let private = Query::Private {
            pair: pair.into(),
            since_ms: 0,
            before: u64::MAX,
            limit: 10_000,
        };
        ask(store, private).await
    }

    /// Opens an in-memory store holding the events of two rooms and two pairs.
    fn sample() -> Opened {
        let opened = open(&Location::Memory, StoreOptions::default()).unwrap();
        let store = &opened.store;
        for id in 1..=10 {
            store
                .append(record(id, Kind::Message, Some("#general"), None))
                .unwrap();
        }
        store
            .append(record(11, Kind::Membership, Some("#general"), None))
            .unwrap();
        store
            .append(record(12, Kind::Message, Some("#rust"), None))
            .unwrap();
        store
            .append(record(13, Kind::Private, None, Some("alice bob")))
            .unwrap();
        store
            .append(record(14, Kind::Message, Some("#general"), None))
            .unwrap();
        store
            .append(record(15, Kind::Private, None, Some("alice carol")))
            .unwrap();
        store
            .append(record(16, Kind::Private, None, Some("alice bob")))
            .unwrap();
        opened
    }

    #[tokio::test]
    async fn history_is_the_latest_messages_oldest_first() {
        let opened = sample();
        let store = &opened.store;
        assert_eq!(
            ask(store, history("#general", u64::MAX, 3)).await,
            [9, 10, 14]
        );
        assert_eq!(ask(store, history("#general", 10, 3)).await, [7, 8, 9]);
        assert_eq!(ask(store, history("#general", 3, 100)).await, [1, 2]);
        assert_eq!(ask(store, history("#rust", u64::MAX, 100)).await, [12]);
        assert!(ask(store, history("#none", u64::MAX, 100)).await.is_empty());
        assert!(
            ask(store, history("#general", u64::MAX, 0))
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn spans_bound_messages_by_id_and_time_and_around_splits_the_limit() {
        let opened = sample();
        let store = &opened.store;
        let room = || Of::Room("#general".into());
        let messages = |span, latest, limit| Query::Messages {
            of: room(),
            span,
            latest,
            limit,
        };
        let ids = |after_id, before_id| Span {
            after_id,
            before_id,
            ..Span::ALL
        };
        // Records are dated 1 s per id: `time` bounds as `id` does, the membership
        // event (11) is never a message.
        let times = |after_ms, before_ms| Span {
            after_ms,
            before_ms,
            ..Span::ALL
        };
        assert_eq!(ask(store, messages(Span::ALL, true, 3)).await, [9, 10, 14]);
        assert_eq!(ask(store, messages(Span::ALL, false, 3)).await, [1, 2, 3]);
        assert_eq!(
            ask(store, messages(ids(3, 9), false, 100)).await,
            [4, 5, 6, 7, 8]
        );
        assert_eq!(ask(store, messages(ids(3, 9), true, 2)).await, [7, 8]);
        assert_eq!(
            ask(store, messages(ids(9, u64::MAX), false, 100)).await,
            [10, 14]
        );
        assert_eq!(
            ask(store, messages(times(3_000, 6_000), false, 100)).await,
            [4, 5]
        );
        assert_eq!(
            ask(store, messages(times(9_500, i64::MAX), true, 100)).await,
            [10, 14]
        );
        assert!(ask(store, messages(Span::ALL, true, 0)).await.is_empty());
        // Around 6: the two before it, then it and what follows up to the limit.
        let around = |pivot: u64, limit| Query::Around {
            of: room(),
            older: ids(0, pivot),
            newer: ids(pivot - 1, u64::MAX),
            limit,
        };
        assert_eq!(ask(store, around(6, 5)).await, [4, 5, 6, 7, 8]);
        assert_eq!(ask(store, around(2, 5)).await, [1, 2, 3, 4, 5]);
        assert_eq!(ask(store, around(14, 4)).await, [9, 10, 14]);
        // A pair's messages, from its reader's account's creation on.
        let pair = |since_ms| Query::Messages {
            of: Of::Pair {
                pair: "alice bob".into(),
                since_ms,
            },
            span: Span::ALL,
            latest: true,
            limit: 100,
        };
        assert_eq!(ask(store, pair(0)).await, [13, 16]);
        assert_eq!(ask(store, pair(14_000)).await, [16]);
        assert_eq!(ask(store, pair(13_000)).await, [13, 16]);
    }

    #[tokio::test]
    async fn after_returns_every_kind_in_the_room() {
        let opened = sample();
        let store = &opened.store;
        let after = |after, limit| Query::After {
            room: "#general".into(),
            after,
            before: u64::MAX,
            limit,
        };
        assert_eq!(ask(store, after(8, 100)).await, [9, 10, 11, 14]);
        assert_eq!(ask(store, after(8, 2)).await, [9, 10]);
        assert!(ask(store, after(14, 100)).await.is_empty());
    }

    #[tokio::test]
    async fn private_honours_pair_since_before_and_limit() {
        let opened = sample();
        let store = &opened.store;
        let private = |since_ms, before, limit| Query::Private {
            pair: "alice bob".into(),
            since_ms,
            before,
            limit,
        };
        assert_eq!(ask(store, private(0, u64::MAX, 100)).await, [13, 16]);
        assert_eq!(ask(store, private(0, u64::MAX, 1)).await, [16]);
        assert_eq!(ask(store, private(0, 16, 100)).await, [13]);
        assert_eq!(ask(store, private(14_000, u64::MAX, 100)).await, [16]);
        assert!(ask(store, private(17_000, u64::MAX, 100)).await.is_empty());
    }

    /// Every kind of event comes back as it went in, from its fields: its id, time,
    /// cause, room (as spelled) or recipient, nickname, account and payload.
    #[tokio::test]
    async fn events_come_back_whole() {
        use event::Kind as K;
        let opened = open(&Location::Memory, StoreOptions::default()).unwrap();
        let room = RoomName::new(Room::new("#Rust").unwrap());
        let alice = Arc::new(Source::named(nick("Alice"), Some("alice".into())));
        let kinds = [
            K::Message {
                text: "hi :) there".into(),
            },
            K::Action {
                text: "waves".into(),
            },
            K::Join,
            K::Part { reason: None },
            K::Part {
                reason: Some("bye".into()),
            },
            K::Quit {
                reason: Some("gone".into()),
            },
            K::Rename {
                new: nick("Alicia"),
            },
            K::Topic {
                text: Some("Rust and more".into()),
            },
            K::Topic { text: None },
            K::Mode {
                changes: "+o bob".into(),
            },
            K::Kick {
                target: nick("bob"),
                reason: "spam".into(),
            },
            K::Invite {
                target: nick("carol"),
            },
            K::Away {
                text: Some("lunch".into()),
            },
            K::Account,
            K::Realname {
                realname: "Alice Liddell".into(),
            },
            K::Notice {
                text: "the build is green".into(),
            },
        ];
        let mut sent = Vec::new();
        for (n, kind) in kinds.into_iter().enumerate() {
            let id = 100 + n as u64;
            let time = jiff::Timestamp::from_millisecond(1_700_000_000_000 + n as i64).unwrap();
            let event = Arc::new(Event::new(
                id,
                time,
                99,
                Scope::Room(room.clone()),
                alice.clone(),
                kind,
            ));
            opened.store.append(event.clone()).unwrap();
            sent.push(event);
        }
        let after = Query::After {
            room: "#rust".into(),
            after: 0,
            before: u64::MAX,
            limit: 100,
        };
        let back = opened.store.query(after).unwrap().await.unwrap().unwrap();
        assert_eq!(back.len(), sent.len());
        for (back, sent) in back.iter().zip(&sent) {
            assert_eq!(
                (
                    back.id,
                    back.time,
                    back.cause,
                    &back.scope,
                    &back.source,
                    &back.kind
                ),
                (
                    sent.id,
                    sent.time,
                    sent.cause,
                    &sent.scope,
                    &sent.source,
                    &sent.kind
                )
            );
        }
        let private = Arc::new(Event::new(
            200,
            jiff::Timestamp::from_millisecond(1_700_000_001_000).unwrap(),
            200,
            Scope::Private { to: nick("Bob") },
            alice.clone(),
            K::Message {
                text: "psst".into(),
            },
        ));
        opened.store.append(private.clone()).unwrap();
        let query = Query::Private {
            pair: pair("bob", "alice"),
            since_ms: 0,
            before: u64::MAX,
            limit: 10,
        };
        let back = opened.store.query(query).unwrap().await.unwrap().unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(
            (&back[0].scope, &back[0].source, &back[0].kind),
            (&private.scope, &private.source, &private.kind)
        );
    }

    /// A version 1 database (native frames in `line`) is converted on opening: its
    /// messages, private messages and membership events come back as events.
    #[tokio::test]
    async fn a_version_1_database_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        {
            let conn = Connection::open(&path).unwrap();
            let schema::Migration::Sql(v1) = &schema::MIGRATIONS[0] else {
                panic!("version 1 is SQL");
            };
            conn.execute_batch(v1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            let rows = [
                (
                    1,
                    0,
                    Some("#rust"),
                    None,
                    "MSG #Rust alice 2026-11-29T10:00:00.000Z 1 :hello :) world",
                ),
                (
                    2,
                    0,
                    Some("#rust"),
                    None,
                    "ACTION #Rust bob 2026-11-29T10:00:01.000Z 2 :waves",
                ),
                (
                    3,
                    1,
                    Some("#rust"),
                    None,
                    "RENAME #Rust bob robert 2026-11-29T10:00:02.000Z 3",
                ),
                (
                    4,
                    2,
                    None,
                    Some("alice bob"),
                    "PRIVMSG alice bob 2026-11-29T10:00:03.000Z 4 :psst",
                ),
                (
                    5,
                    1,
                    Some("#rust"),
                    None,
                    "QUIT #Rust alice 2026-11-29T10:00:04.000Z 5",
                ),
                (6, 0, Some("#rust"), None, "NONSENSE"),
            ];
            for (id, kind, room, pair, line) in rows {
                conn.execute(
                    "INSERT INTO events (id, kind, room, pair, time, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![id, kind, room, pair, 1_000 * id, line],
                )
                .unwrap();
            }
        }
        let opened = open(&Location::File(path), no_timer()).unwrap();
        let after = Query::After {
            room: "#rust".into(),
            after: 0,
            before: u64::MAX,
            limit: 100,
        };
        let back = opened.store.query(after).unwrap().await.unwrap().unwrap();
        let got: Vec<_> = back
            .iter()
            .map(|e| (e.id, e.source.nick.to_string(), e.kind.clone()))
            .collect();
        use event::Kind as K;
        assert_eq!(
            got,
            [
                (
                    1,
                    "alice".into(),
                    K::Message {
                        text: "hello :) world".into()
                    }
                ),
                (
                    2,
                    "bob".into(),
                    K::Action {
                        text: "waves".into()
                    }
                ),
                (
                    3,
                    "bob".into(),
                    K::Rename {
                        new: nick("robert")
                    }
                ),
                (5, "alice".into(), K::Quit { reason: None }),
            ],
            "the row that is no frame is dropped"
        );
        assert_eq!(back[0].room().unwrap().name.as_str(), "#Rust");
        assert_eq!(back[0].time.as_millisecond(), 1_000);
        let query = Query::Private {
            pair: pair("alice", "bob"),
            since_ms: 0,
            before: u64::MAX,
            limit: 10,
        };
        let private = opened.store.query(query).unwrap().await.unwrap().unwrap();
        assert_eq!(private.len(), 1);
        assert_eq!(private[0].scope, Scope::Private { to: nick("bob") });
        // The unreadable row is gone with its id (a new run starts past it anyway).
        assert_eq!(opened.next_id, 6);
    }

    #[tokio::test]
    async fn reopening_finds_records_next_id_and_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::File(dir.path().join("nested").join("chat.db"));
        let Opened {
            store,
            writer,
            next_id,
            accounts,
            rooms,
            server_bans,
        } = open(&location, no_timer()).unwrap();
        assert!(rooms.is_empty() && server_bans.is_empty());
        assert_eq!((next_id, accounts.len()), (1, 0));
        for id in [5, 6, 9] {
            store
                .append(record(id, Kind::Message, Some("#general"), None))
                .unwrap();
        }
        let alice = |hash: &str| Account {
            nick: "alice".into(),
            hash: hash.into(),
            created_ms: 42,
        };
        store.set_account(alice("first")).unwrap();
        store
            .set_account(Account {
                created_ms: 99,
                ..alice("second")
            })
            .unwrap();
        drop(store);
        writer.finished().await;

        let opened = open(&location, no_timer()).unwrap();
        assert_eq!(opened.next_id, 10);
        assert_eq!(opened.accounts, [alice("second")]);
        assert_eq!(
            ask(&opened.store, history("#general", u64::MAX, 10)).await,
            [5, 6, 9]
        );
    }

    #[tokio::test]
    async fn flush_answers_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let opened = open(&Location::File(path.clone()), no_timer()).unwrap();
        let store = &opened.store;
        for id in 1..=3 {
            store
                .append(record(id, Kind::Message, Some("#general"), None))
                .unwrap();
        }
        // The writer's own connection sees the open batch; another does not yet.
        assert_eq!(ask(store, history("#general", u64::MAX, 10)).await.len(), 3);
        assert_eq!(committed(&path), 0);
        store.flush().unwrap().await.unwrap();
        assert_eq!(committed(&path), 3);
        let text: String = Connection::open(&path)
            .unwrap()
            .query_row("SELECT text FROM events WHERE id = 1", [], |row| row.get(0))
            .unwrap();
        assert_eq!(text, "EVENT 1 Message", "stored as its fields");
    }

    #[tokio::test]
    async fn a_failed_write_fails_the_flush_but_not_the_writer() {
        let opened = open(&Location::Memory, no_timer()).unwrap();
        let store = &opened.store;
        let event = |id| record(id, Kind::Message, Some("#general"), None);
        store.append(event(1)).unwrap();
        store.append(event(1)).unwrap(); // The same id again: refused by the database.
        store.append(event(2)).unwrap();
        assert!(store.flush().unwrap().await.is_err());
        assert!(store.healthy(), "one refused record is not a failing store");
        assert_eq!(ask(store, history("#general", u64::MAX, 10)).await, [1, 2]);
        store.append(event(3)).unwrap();
        assert!(store.flush().unwrap().await.is_ok());
    }

    /// The writer inserts events several at a time, by one statement: a query still sees
    /// every event appended before it (those of a set not yet full too), and an event the
    /// database refuses costs only itself, not the others of its set.
    #[tokio::test]
    async fn events_inserted_in_sets_are_all_seen_and_a_refused_one_costs_only_itself() {
        let opened = open(&Location::Memory, no_timer()).unwrap();
        let store = &opened.store;
        let event = |id| record(id, Kind::Message, Some("#general"), None);
        // A first set of 16; a second with 24 twice, which the database refuses; 9 more.
        for id in 1..=24 {
            store.append(event(id)).unwrap();
        }
        store.append(event(24)).unwrap();
        for id in 25..=40 {
            store.append(event(id)).unwrap();
        }
        let all: Vec<u64> = (1..=40).collect();
        assert_eq!(ask(store, history("#general", u64::MAX, 100)).await, all);
        assert!(
            store.flush().unwrap().await.is_err(),
            "the refused one is reported"
        );
        assert_eq!(ask(store, history("#general", u64::MAX, 100)).await, all);
    }

    /// A full disk (here: a page limit on the database) fails the store's health until a
    /// commit succeeds again.
    #[tokio::test]
    async fn a_full_disk_fails_health_until_a_commit_succeeds() {
        let conn = schema::connect(&Location::Memory).unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages + 2)
            .unwrap();
        let (tx, rx) = queue::channel(1024);
        let health = Arc::new(Health::default());
        let commits = crate::core::metrics::commit_histogram();
        let writer = writer::spawn(
            conn,
            ":memory:".into(),
            &no_timer(),
            rx,
            health.clone(),
            commits.clone(),
            Counter::default(),
        )
        .unwrap();
        let store = Store {
            tx,
            health,
            commits,
            pruned: Counter::default(),
        };
        let big = |id| text_record(id, Kind::Message, Some("#general"), None, "x".repeat(3000));
        let mut id = 0;
        while store.healthy() {
            id += 1;
            assert!(id < 1000, "the page limit is reached");
            store.append(big(id)).unwrap();
            let _ = store.flush().unwrap().await;
        }
        // Small records fit again once the failed batch is gone.
        store
            .append(record(id + 1, Kind::Message, Some("#general"), None))
            .unwrap();
        assert!(store.flush().unwrap().await.is_ok());
        assert!(store.healthy(), "a commit that succeeds clears it");
        drop(store);
        writer.finished().await;
    }

    #[tokio::test]
    async fn a_full_batch_commits_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let options = StoreOptions {
            max_batch: 2,
            ..no_timer()
        };
        let opened = open(&Location::File(path.clone()), options).unwrap();
        let store = &opened.store;
        for id in 1..=3 {
            store
                .append(record(id, Kind::Message, Some("#general"), None))
                .unwrap();
        }
        // The query is applied after the appends, so the batch of 2 is committed by now.
        ask(store, history("#general", u64::MAX, 1)).await;
        assert_eq!(committed(&path), 2);
    }

    #[tokio::test]
    async fn an_expired_window_commits_before_the_next_operation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let options = StoreOptions {
            batch_window: Duration::ZERO,
            ..StoreOptions::default()
        };
        let opened = open(&Location::File(path.clone()), options).unwrap();
        let store = &opened.store;
        store
            .append(record(1, Kind::Message, Some("#general"), None))
            .unwrap();
        ask(store, history("#general", u64::MAX, 1)).await;
        assert_eq!(committed(&path), 1);
    }

    #[tokio::test]
    async fn the_writer_commits_when_the_last_handle_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let opened = open(&Location::File(path.clone()), no_timer()).unwrap();
        let clone = opened.store.clone();
        clone
            .append(record(1, Kind::Private, None, Some("alice bob")))
            .unwrap();
        drop(clone);
        drop(opened.store);
        opened.writer.finished().await;
        assert_eq!(committed(&path), 1);
    }

    #[test]
    fn a_full_queue_is_busy() {
        // A store whose writer has not taken anything yet: its queue holds one append,
        // and one awaited operation more.
        let (tx, rx) = queue::channel(1);
        let store = Store {
            tx,
            health: Arc::default(),
            commits: crate::core::metrics::commit_histogram(),
            pruned: Counter::default(),
        };
        let event = || record(1, Kind::Message, Some("#general"), None);
        assert_eq!(store.append(event()), Ok(()));
        assert!(store.healthy());
        assert_eq!(store.append(event()), Err(Busy));
        assert!(
            !store.healthy(),
            "/healthz says a full queue takes no writes"
        );
        // Full of appends, it still takes a query (a lagging member's refill), and
        // counts those apart: one is all it takes.
        assert!(store.query(history("#general", u64::MAX, 1)).is_ok());
        assert!(store.query(history("#general", u64::MAX, 1)).is_err());
        assert!(store.flush().is_err());
        assert!(matches!(rx.try_take(), Some(Op::Append(_))));
        // The query does not count against appends.
        assert_eq!(store.append(event()), Ok(()));
        assert!(matches!(rx.try_take(), Some(Op::Query(..))));
        assert_eq!(store.append(event()), Ok(()));
        drop(rx);
        assert_eq!(store.append(event()), Err(Busy), "the writer is gone");
    }

    #[test]
    fn half_full_the_writer_takes_everything_queued_before_it_sleeps_again() {
        let (tx, rx) = queue::channel(8);
        let store = Store {
            tx,
            health: Arc::default(),
            commits: crate::core::metrics::commit_histogram(),
            pruned: Counter::default(),
        };
        // A batch is open, its window far off: appends gather, until the queue is half
        // full; then the writer takes every one of them at once, not just the one that
        // brings it under half (it hovered there before, woken by every append).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for id in 1..=4 {
            store
                .append(record(id, Kind::Message, Some("#general"), None))
                .unwrap();
        }
        for _ in 1..=4 {
            assert!(matches!(
                rx.next(Some(deadline), None),
                queue::Next::Op(Op::Append(_))
            ));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "all four were taken before the window closed"
        );
    }

    #[tokio::test]
    async fn migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        for _ in 0..2 {
            let opened = open(&Location::File(path.clone()), no_timer()).unwrap();
            drop(opened.store);
            opened.writer.finished().await;
        }
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, schema::MIGRATIONS.len() as i64);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let Err(err) = open(&Location::File(path.clone()), no_timer()) else {
            panic!("a database from the future was opened");
        };
        assert!(
            matches!(err, StoreError::UnknownVersion { found: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chat.db"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "Not a database, just some notes.\n".repeat(64)).unwrap();
        let Err(err) = open(&Location::File(path.clone()), no_timer()) else {
            panic!("a text file was opened as a database");
        };
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
        assert!(err.to_string().contains("notes.txt"), "{err}");
    }

    /// Age: the events older than the age go, rooms' and private ones, whatever their
    /// kind; newer ones and accounts stay.
    #[tokio::test]
    async fn age_pruning_removes_old_events_and_keeps_new_ones_and_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let hour = Duration::from_secs(3600);
        let options = retaining(Retention {
            max_age: Some(hour),
            per_room: None,
        });
        let opened = open(&Location::File(path.clone()), options).unwrap();
        let store = &opened.store;
        let now = now_ms();
        let old = now - 2 * 3_600_000;
        let new = now - 60_000;
        store
            .set_account(Account {
                nick: "alice".into(),
                hash: "hash".into(),
                created_ms: old - 3_600_000,
            })
            .unwrap();
        let events = [
            dated(1, Kind::Message, Some("#general"), None, old),
            dated(2, Kind::Membership, Some("#general"), None, old),
            dated(3, Kind::Private, None, Some("alice bob"), old),
            dated(4, Kind::Message, Some("#rust"), None, old + 1),
            dated(5, Kind::Message, Some("#general"), None, new),
            dated(6, Kind::Private, None, Some("alice bob"), new),
            dated(7, Kind::Membership, Some("#rust"), None, new),
        ];
        for event in events {
            store.append(event).unwrap();
        }
        assert_eq!(prune_all(store).await, [4]);
        assert_eq!(room_ids(store, "#general").await, [5]);
        assert_eq!(room_ids(store, "#rust").await, [7]);
        assert_eq!(pair_ids(store, "alice bob").await, [6]);
        assert_eq!(committed(&path), 3, "the pass is committed");
        let accounts: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM accounts", [], |row| row.get(0))
            .unwrap();
        assert_eq!(accounts, 1, "accounts are never pruned");
        assert_eq!(store.pruned().get(), 4, "counted for the metrics");
        // Nor registered rooms, however old their settings.
        let mut room = Settings::new(
            chat_proto::name::Room::new("#rust").unwrap(),
            Some("alice".into()),
        );
        room.bans.push(RoomBan {
            mask: Mask::parse("eve").unwrap(),
            by: chat_proto::name::Nick::new("alice").unwrap(),
            time: jiff::Timestamp::from_millisecond(old).unwrap(),
        });
        store.set_room(room.clone()).unwrap();
        prune_all(store).await;
        let reopened = schema::rooms(&Connection::open(&path).unwrap()).unwrap();
        assert_eq!(reopened, [room], "registered rooms are never pruned");
    }

    /// A registered room's settings are written whole: a second write replaces the
    /// first, bans included, and they read back as written.
    #[tokio::test]
    async fn room_settings_are_replaced_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::File(dir.path().join("chat.db"));
        let opened = open(&location, no_timer()).unwrap();
        let mut room = Settings::new(
            chat_proto::name::Room::new("#Home").unwrap(),
            Some("alice".into()),
        );
        room.modes = Modes::from_parts("ntm", Some("door".into()), Some(5));
        room.topic = Some(Arc::new(Topic {
            text: "a topic".into(),
            by: chat_proto::name::Nick::new("alice").unwrap(),
            time: jiff::Timestamp::from_millisecond(1_700_000_000_000).unwrap(),
        }));
        for mask in ["eve", "$a:mallory"] {
            room.bans.push(RoomBan {
                mask: Mask::parse(mask).unwrap(),
                by: chat_proto::name::Nick::new("alice").unwrap(),
                time: jiff::Timestamp::from_millisecond(1_700_000_000_000).unwrap(),
            });
        }
        opened.store.set_room(room.clone()).unwrap();
        room.bans.remove(0);
        room.modes = Modes::from_parts("t", None, None);
        room.topic = None;
        opened.store.set_room(room.clone()).unwrap();
        opened.store.flush().unwrap().await.unwrap();
        drop(opened);
        let reopened = open(&location, no_timer()).unwrap();
        assert_eq!(reopened.rooms, [room]);
    }

    /// Count: each room keeps exactly its newest `per_room` events, of every kind;
    /// smaller rooms and private messages are left alone.
    #[tokio::test]
    async fn per_room_count_keeps_exactly_the_newest_per_room() {
        let options = retaining(Retention {
            max_age: None,
            per_room: Some(3),
        });
        let opened = open(&Location::Memory, options).unwrap();
        let store = &opened.store;
        let mut id = 0;
        let mut next = || {
            id += 1;
            id
        };
        for n in 0..10 {
            let kind = if n % 3 == 0 {
                Kind::Membership
            } else {
                Kind::Message
            };
            store
                .append(record(next(), kind, Some("#big"), None))
                .unwrap();
            store
                .append(record(next(), Kind::Private, None, Some("alice bob")))
                .unwrap();
            if n < 2 {
                store
                    .append(record(next(), Kind::Message, Some("#small"), None))
                    .unwrap();
            }
            if n < 3 {
                store
                    .append(record(next(), Kind::Message, Some("#three"), None))
                    .unwrap();
            }
        }
        let big = room_ids(store, "#big").await;
        let small = room_ids(store, "#small").await;
        let three = room_ids(store, "#three").await;
        let private = pair_ids(store, "alice bob").await;
        assert_eq!(prune_all(store).await, [7]);
        assert_eq!(room_ids(store, "#big").await, big[7..]);
        assert_eq!(room_ids(store, "#small").await, small);
        assert_eq!(room_ids(store, "#three").await, three);
        assert_eq!(pair_ids(store, "alice bob").await, private);
        // The messages' history shows the newest ones still there.
        let messages = ask(store, history("#big", u64::MAX, 100)).await;
        assert!(messages.iter().all(|id| big[7..].contains(id)));
        // New events push the oldest out on the next pass.
        store
            .append(record(next(), Kind::Message, Some("#small"), None))
            .unwrap();
        store
            .append(record(next(), Kind::Message, Some("#small"), None))
            .unwrap();
        assert_eq!(prune_all(store).await, [1]);
        assert_eq!(room_ids(store, "#small").await.len(), 3);
    }

    /// A pass deletes at most `prune_batch` events: a large prune takes several passes,
    /// and each room's count is respected in the end.
    #[tokio::test]
    async fn pruning_goes_in_bounded_batches() {
        let options = StoreOptions {
            prune_batch: 4,
            ..retaining(Retention {
                max_age: None,
                per_room: Some(2),
            })
        };
        let opened = open(&Location::Memory, options).unwrap();
        let store = &opened.store;
        for id in 1..=7 {
            store
                .append(record(id, Kind::Message, Some("#a"), None))
                .unwrap();
            store
                .append(record(100 + id, Kind::Message, Some("#b"), None))
                .unwrap();
        }
        let passes = prune_all(store).await;
        assert!(passes.len() >= 3, "{passes:?}");
        assert!(passes.iter().all(|&n| n <= 4), "{passes:?}");
        assert_eq!(passes.iter().sum::<u64>(), 10, "{passes:?}");
        assert_eq!(room_ids(store, "#a").await, [6, 7]);
        assert_eq!(room_ids(store, "#b").await, [106, 107]);

        // The same by age.
        let options = StoreOptions {
            prune_batch: 4,
            ..retaining(Retention {
                max_age: Some(Duration::from_secs(60)),
                per_room: None,
            })
        };
        let opened = open(&Location::Memory, options).unwrap();
        let store = &opened.store;
        for id in 1..=9 {
            store
                .append(record(id, Kind::Message, Some("#a"), None))
                .unwrap();
        }
        store
            .append(dated(10, Kind::Message, Some("#a"), None, now_ms()))
            .unwrap();
        assert_eq!(prune_all(store).await, [4, 4, 1]);
        assert_eq!(room_ids(store, "#a").await, [10]);
    }

    /// Both at once: an event goes when either the age or the count says so.
    #[tokio::test]
    async fn age_and_count_together() {
        let options = retaining(Retention {
            max_age: Some(Duration::from_secs(3600)),
            per_room: Some(2),
        });
        let opened = open(&Location::Memory, options).unwrap();
        let store = &opened.store;
        let now = now_ms();
        for id in 1..=3 {
            store
                .append(record(id, Kind::Message, Some("#old"), None))
                .unwrap();
        }
        for id in 4..=7 {
            store
                .append(dated(id, Kind::Message, Some("#new"), None, now))
                .unwrap();
        }
        assert_eq!(prune_all(store).await.iter().sum::<u64>(), 5);
        assert!(room_ids(store, "#old").await.is_empty());
        assert_eq!(room_ids(store, "#new").await, [6, 7]);
    }

    /// Without a retention nothing is ever deleted, however old.
    #[tokio::test]
    async fn with_no_retention_nothing_is_deleted() {
        let opened = open(&Location::Memory, no_timer()).unwrap();
        let store = &opened.store;
        for id in 1..=20 {
            store
                .append(record(id, Kind::Message, Some("#general"), None))
                .unwrap();
        }
        store
            .append(record(21, Kind::Private, None, Some("alice bob")))
            .unwrap();
        assert_eq!(store.prune().unwrap().await.unwrap(), 0);
        assert_eq!(room_ids(store, "#general").await.len(), 20);
        assert_eq!(pair_ids(store, "alice bob").await, [21]);
        assert_eq!(store.pruned().get(), 0);
    }

    /// The writer prunes on its own when a pass is due, with no write to wake it.
    #[tokio::test]
    async fn the_writer_prunes_on_its_own_when_idle() {
        let options = StoreOptions {
            prune_every: Duration::from_millis(1),
            ..retaining(Retention {
                max_age: None,
                per_room: Some(1),
            })
        };
        let opened = open(&Location::Memory, options).unwrap();
        let store = &opened.store;
        for id in 1..=5 {
            store
                .append(record(id, Kind::Message, Some("#general"), None))
                .unwrap();
        }
        store.flush().unwrap().await.unwrap();
        // Each query waits for the writer's answer: no sleeping, only asking until the
        // timer's pass has run.
        let pruned = async {
            while room_ids(store, "#general").await.len() > 1 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), pruned)
            .await
            .expect("a timed pass prunes");
        assert_eq!(room_ids(store, "#general").await, [5]);
        assert_eq!(store.pruned().get(), 4);
    }

    #[test]
    fn the_default_file_is_named_chat_db() {
        assert!(Location::default_file().ends_with("chat.db"));
    }
}

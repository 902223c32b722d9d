//! The writer thread: the one owner of the database connection.
//!
//! It takes operations from the store's queue in order. Writes go into an open
//! transaction that is committed by the rules in the [module docs](super); queries run on
//! the same connection, which sees its own uncommitted writes, so they need no commit.
//! A failed write or query is logged and the thread carries on: losing one record is
//! better than losing the store.

use super::prune::Pruner;
use super::queue::{Next, Receiver};
use super::{
    Account, Health, Kind, Of, Op, Query, Record, Span, StoreError, StoreOptions, Stored, now_ms,
    pair,
};
use crate::core::ban::Ban;
use crate::core::canonical::{self, fields};
use crate::core::event::{Event, RoomName, Scope, Source};
use crate::core::room::Settings;
use chat_proto::name::{Nick, Room};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use rusqlite::{Connection, params};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Inserts events (their columns are described in `schema`'s version 2): this, then
/// one `VALUES` row of [`COLUMNS`] parameters per event.
const INSERT: &str = "INSERT INTO events \
                      (id, kind, room, pair, time, cause, what, name, nick, account, target, text) \
                      VALUES ";

/// The columns [`INSERT`] sets.
const COLUMNS: usize = 12;

/// Events inserted by one statement when that many are waiting: a statement's own cost
/// (stepping it, halting it, resetting it) was as much as an event's in a long run's
/// profile, and is paid once for all of them (issue 17).
const ROWS_PER_INSERT: usize = 16;

/// The columns a query reads to rebuild an event, in [`rebuild`]'s order.
macro_rules! columns {
    () => {
        "id, time, cause, what, name, nick, account, target, text, room"
    };
}

/// A registered room's settings (its bans are replaced beside it).
const UPSERT_ROOM: &str = "INSERT INTO rooms \
     (room, name, founder, modes, key, lim, topic, topic_by, topic_time, updated) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (room) DO UPDATE SET name = excluded.name, founder = excluded.founder, \
     modes = excluded.modes, key = excluded.key, lim = excluded.lim, topic = excluded.topic, \
     topic_by = excluded.topic_by, topic_time = excluded.topic_time, updated = excluded.updated";

/// Registers an account or changes its password, keeping its creation time.
const UPSERT_ACCOUNT: &str = "INSERT INTO accounts (nick, hash, created, updated) \
                              VALUES (?1, ?2, ?3, ?4) \
                              ON CONFLICT (nick) DO UPDATE \
                              SET hash = excluded.hash, updated = excluded.updated";

/// The latest messages of a room before an id, newest first. `kind = 0` is written out,
/// not bound, so that the partial index `events_history` applies. Without statistics
/// SQLite rates `events_room` as good, and would then read every join and part in
/// between: `INDEXED BY` makes it use the index that holds messages only (and makes
/// preparing the query fail, rather than slow down, if the index ever stops applying).
///
/// Every message is thus in two indexes. One index carrying `kind` instead was tried
/// (issue 17): it saved a tenth of the writer's time in a long run, but then each join's
/// history walks every join and part since the room's last messages, and in a room of
/// 10,000 lurkers that held the joiners' live events back long enough to cost 750 bytes
/// more per idle connection.
pub(super) const HISTORY: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM events INDEXED BY events_history \
                                  WHERE room = ?1 AND kind = 0 AND id < ?2 \
                                  ORDER BY id DESC LIMIT ?3"
);

/// The events of a room after an id, oldest first.
pub(super) const AFTER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM events \
                                WHERE room = ?1 AND id > ?2 AND id < ?3 \
                                ORDER BY id LIMIT ?4"
);

/// The latest private messages of a pair before an id and since a time, newest first.
pub(super) const PRIVATE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM events \
                                  WHERE pair = ?1 AND id < ?2 AND time >= ?3 \
                                  ORDER BY id DESC LIMIT ?4"
);

/// The messages of a room in a span of ids and times, oldest first (`SPAN_FIRST`) or
/// newest first (`SPAN_LATEST`); the index of messages applies, as for [`HISTORY`].
macro_rules! room_span {
    ($order:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM events INDEXED BY events_history \
             WHERE room = ?1 AND kind = 0 AND id > ?2 AND id < ?3 AND time > ?4 AND time < ?5 \
             ORDER BY id ",
            $order,
            " LIMIT ?6"
        )
    };
}

/// The private messages of a pair in a span of ids and times.
macro_rules! pair_span {
    ($order:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM events \
             WHERE pair = ?1 AND id > ?2 AND id < ?3 AND time > ?4 AND time < ?5 \
             ORDER BY id ",
            $order,
            " LIMIT ?6"
        )
    };
}

pub(super) const ROOM_SPAN_FIRST: &str = room_span!("ASC");
pub(super) const ROOM_SPAN_LATEST: &str = room_span!("DESC");
pub(super) const PAIR_SPAN_FIRST: &str = pair_span!("ASC");
pub(super) const PAIR_SPAN_LATEST: &str = pair_span!("DESC");

/// The writer thread, to await at shutdown.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Writer {
    /// Fired by the thread as its last act, after its final commit and closing the
    /// database; dropped unfired if the thread panicked.
    done: oneshot::Receiver<()>,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Writer {
    /// Completes once the thread has committed its last batch, closed the database and
    /// exited: after every [`Store`](super::Store) clone has been dropped. Awaiting it
    /// blocks no runtime thread.
    pub(crate) async fn finished(self) {
        if self.done.await.is_err() {
            tracing::error!("the store's writer thread stopped abnormally");
        }
    }
}

/// Starts the writer thread on `conn`, taking operations from `ops`.
pub(super) fn spawn(
    conn: Connection,
    path: PathBuf,
    options: &StoreOptions,
    ops: Receiver,
    health: Arc<Health>,
    commits: Histogram,
    pruned: Counter,
) -> std::io::Result<Writer> {
    let (done_tx, done) = oneshot::channel();
    let batcher = Batcher {
        conn,
        path,
        window: options.batch_window,
        max_batch: options.max_batch.max(1),
        pending: 0,
        appends: Vec::with_capacity(ROWS_PER_INSERT),
        deadline: None,
        lost: false,
        health,
        commits,
        pruner: Pruner::new(
            options.retention,
            options.prune_batch,
            options.prune_every,
            pruned,
        ),
    };
    std::thread::Builder::new()
        .name("chat-store".into())
        .spawn(move || {
            batcher.run(&ops);
            let _ = done_tx.send(());
        })?;
    Ok(Writer { done })
}

/// The thread's state: the connection and the batch it has open.
struct Batcher {
    conn: Connection,
    /// For errors and logs.
    path: PathBuf,
    /// See [`StoreOptions::batch_window`].
    window: Duration,
    /// See [`StoreOptions::max_batch`].
    max_batch: usize,
    /// Writes in the open transaction: what a failed commit loses.
    pending: usize,
    /// Events appended in the open transaction and not inserted yet: inserted by one
    /// statement once there are [`ROWS_PER_INSERT`], and before anything else is done
    /// (a query sees them, a commit keeps them).
    appends: Vec<Record>,
    /// When the open transaction must be committed; `None` when there is none.
    deadline: Option<Instant>,
    /// A write was lost since the last flush, which must then not report success.
    lost: bool,
    /// Told when writes fail and when they succeed again.
    health: Arc<Health>,
    /// Each commit's time, in seconds, for the metrics.
    commits: Histogram,
    /// History retention: when its passes are due, and where its sweep is.
    pruner: Pruner,
}

impl Batcher {
    /// Applies operations until every sender is gone, then commits and closes.
    fn run(mut self, ops: &Receiver) {
        loop {
            // With a batch open the queue lets appends gather until the deadline, then
            // hands over everything queued before reporting the timeout. With none it
            // waits for an operation, or until a pruning pass is due.
            match ops.next(self.deadline, self.pruner.due()) {
                Next::Op(op) => {
                    // Everything queued before a query has been applied (FIFO): if the
                    // window is over, commit it before answering.
                    if matches!(op, Op::Query(..))
                        && self.deadline.is_some_and(|d| Instant::now() >= d)
                    {
                        self.commit();
                    }
                    self.apply(op);
                }
                Next::Timeout => self.commit(),
                Next::Closed => break,
            }
            // Between batches only: a pass is a short transaction of its own.
            if self.pruner.is_due() && self.conn.is_autocommit() {
                self.pruner.run(&self.conn, now_ms());
            }
        }
        self.commit();
        tracing::debug!(path = %self.path.display(), "store closed");
    }

    /// Applies one operation.
    fn apply(&mut self, op: Op) {
        if !matches!(op, Op::Append(_)) {
            self.insert_appends();
        }
        match op {
            Op::Append(record) => self.append(record),
            Op::SetAccount(account, updated) => {
                self.write("account", |conn| upsert(conn, &account, updated))
            }
            Op::SetRoom(room, updated) => {
                self.write("room", |conn| upsert_room(conn, &room, updated))
            }
            Op::SetServerBan(ban, time) => {
                self.write("server ban", |conn| upsert_server_ban(conn, &ban, time))
            }
            Op::LiftServerBan(target) => self.write("server ban", |conn| {
                conn.prepare_cached("DELETE FROM server_bans WHERE target = ?1")?
                    .execute(params![target])
            }),
            Op::Query(query, reply) => {
                let answer = run_query(&self.conn, &query).map_err(|source| {
                    tracing::warn!(error = %source, ?query, "store query failed");
                    StoreError::sqlite(&self.path, source)
                });
                // The session may have gone meanwhile; nobody is waiting then.
                let _ = reply.send(answer);
            }
            Op::Flush(reply) => {
                self.commit();
                // Dropping `reply` unanswered tells the flusher that something it
                // appended was lost (the writer has logged what).
                if !std::mem::take(&mut self.lost) {
                    let _ = reply.send(());
                }
            }
            Op::Prune(reply) => {
                self.commit();
                let deleted = if self.conn.is_autocommit() {
                    self.pruner.run(&self.conn, now_ms())
                } else {
                    0
                };
                let _ = reply.send(deleted);
            }
        }
    }

    /// Opens a transaction if none is open; false (and the write lost) if it cannot.
    fn begin(&mut self, what: &str) -> bool {
        if self.conn.is_autocommit() {
            // IMMEDIATE: take the write lock now, so a reader of the file cannot make a
            // later write of this batch fail on a lock upgrade.
            if let Err(error) = self.execute("BEGIN IMMEDIATE") {
                tracing::error!(%error, what, "store cannot begin a batch; write lost");
                self.lost = true;
                self.health.set_failing(true);
                return false;
            }
            self.deadline = Some(Instant::now() + self.window);
        }
        true
    }

    /// Runs one write in the open transaction, opening one if need be.
    fn write(&mut self, what: &str, f: impl FnOnce(&Connection) -> rusqlite::Result<usize>) {
        if self.begin(what) {
            let result = f(&self.conn);
            self.written(what, 1, result);
        }
    }

    /// Accounts for `count` records written (or not) by one statement.
    fn written(&mut self, what: &str, count: usize, result: rusqlite::Result<usize>) {
        if let Err(error) = result {
            self.lost = true;
            if self.conn.is_autocommit() {
                // Some errors (disk full, I/O) roll the whole transaction back: the
                // store, not one record, is failing.
                self.health.set_failing(true);
                let lost = self.pending + count;
                tracing::error!(%error, what, lost, "store write failed; batch rolled back");
                self.pending = 0;
                self.deadline = None;
            } else {
                tracing::warn!(%error, what, "store write failed");
            }
        } else {
            self.pending += count;
        }
        if self.pending >= self.max_batch {
            self.commit();
        }
    }

    /// Takes an event into the open transaction (opening one): inserted with the next
    /// ones, by one statement.
    fn append(&mut self, record: Record) {
        if self.appends.is_empty() && !self.begin("event") {
            return;
        }
        self.appends.push(record);
        if self.appends.len() >= ROWS_PER_INSERT
            || self.pending + self.appends.len() >= self.max_batch
        {
            self.insert_appends();
        }
    }

    /// Inserts the events taken so far: a full set by one statement, fewer one by one
    /// (each count of rows would be a statement of its own to prepare and cache). If
    /// the statement fails and the transaction lives on, they are inserted one by one,
    /// so that only the event at fault is lost.
    fn insert_appends(&mut self) {
        if self.appends.is_empty() {
            return;
        }
        let mut records = std::mem::take(&mut self.appends);
        let whole = records.len() == ROWS_PER_INSERT;
        match whole.then(|| insert_rows(&self.conn, &records)) {
            Some(Ok(_)) => self.written("event", records.len(), Ok(records.len())),
            Some(Err(error)) if self.conn.is_autocommit() => {
                self.written("event", records.len(), Err(error));
            }
            _ => {
                for record in &records {
                    if self.begin("event") {
                        let result = insert(&self.conn, record);
                        self.written("event", 1, result);
                    }
                }
            }
        }
        records.clear();
        if self.appends.capacity() == 0 {
            // Kept for the next set: no allocation per set.
            self.appends = records;
        }
    }

    /// Commits the open transaction, if any.
    fn commit(&mut self) {
        self.insert_appends();
        self.deadline = None;
        let pending = std::mem::take(&mut self.pending);
        if self.conn.is_autocommit() {
            return;
        }
        let started = Instant::now();
        match self.execute("COMMIT") {
            Ok(()) => {
                self.health.set_failing(false);
                let elapsed = started.elapsed();
                self.commits.observe(elapsed.as_secs_f64());
                tracing::trace!(records = pending, ?elapsed, "store batch committed");
            }
            Err(error) => {
                tracing::error!(%error, lost = pending, "store commit failed; batch lost");
                self.lost = true;
                self.health.set_failing(true);
                if !self.conn.is_autocommit() {
                    // Leave no transaction open, or the next batch would join this one.
                    if let Err(error) = self.execute("ROLLBACK") {
                        tracing::error!(%error, "store rollback failed");
                    }
                }
            }
        }
    }

    /// Runs a statement without parameters or rows, from the statement cache.
    fn execute(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(drop)
    }
}

/// Inserts `record` as its fields.
fn insert(conn: &Connection, record: &Record) -> rusqlite::Result<usize> {
    insert_rows(conn, std::slice::from_ref(record))
}

/// Inserts `records` (one, or [`ROWS_PER_INSERT`]) by one statement: all of them, or (on
/// an error) none.
fn insert_rows(conn: &Connection, records: &[Record]) -> rusqlite::Result<usize> {
    static ONE: LazyLock<String> = LazyLock::new(|| insert_sql(1));
    static SET: LazyLock<String> = LazyLock::new(|| insert_sql(ROWS_PER_INSERT));
    let sql = if records.len() == 1 { &ONE } else { &SET };
    debug_assert!(records.len() == 1 || records.len() == ROWS_PER_INSERT);
    let mut stmt = conn.prepare_cached(sql)?;
    for (row, record) in records.iter().enumerate() {
        bind_record(&mut stmt, row * COLUMNS, record)?;
    }
    stmt.raw_execute()
}

/// [`INSERT`] with `rows` rows of parameters.
fn insert_sql(rows: usize) -> String {
    let row = format!("({})", ["?"; COLUMNS].join(", "));
    let mut sql = String::from(INSERT);
    sql.push_str(&vec![row; rows].join(", "));
    sql
}

/// Binds the columns of `record` to the parameters after the first `offset`.
fn bind_record(
    stmt: &mut rusqlite::CachedStatement<'_>,
    offset: usize,
    record: &Record,
) -> rusqlite::Result<()> {
    let event: &Event = record;
    let (room, name, pair_key, target) = match &event.scope {
        Scope::Room(room) => (Some(&*room.key), Some(room.name.as_str()), None, None),
        Scope::Private { to } => {
            let pair = pair(&event.source.nick.folded(), &to.folded());
            (None, None, Some(pair), Some(to.as_str()))
        }
        // Seen by its source alone, so in no one's history: callers do not store it.
        // Operators' notices are never kept.
        Scope::Own | Scope::Wallops => (None, None, None, None),
    };
    let (what, text, kind_target) = fields(&event.kind);
    let values: [&dyn rusqlite::ToSql; COLUMNS] = [
        &sql_id(event.id),
        &Kind::of(event).code(),
        &room,
        &pair_key.as_deref(),
        &event.time.as_millisecond(),
        &sql_id(event.cause),
        &what,
        &name,
        &event.source.nick.as_str(),
        &event.source.account.as_deref(),
        &target.or(kind_target),
        &text,
    ];
    for (column, value) in values.into_iter().enumerate() {
        // Parameters count from 1.
        stmt.raw_bind_parameter(offset + column + 1, value)?;
    }
    Ok(())
}

/// Rebuilds an event from a row of [`columns!`]; `None` for a row this program cannot
/// read (a kind from a newer one, a name that is no longer valid).
fn rebuild(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Event>> {
    let id = u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0);
    let time_ms: i64 = row.get(1)?;
    let cause = u64::try_from(row.get::<_, i64>(2)?).unwrap_or(id);
    let what: i64 = row.get(3)?;
    let name: Option<String> = row.get(4)?;
    let nick: String = row.get(5)?;
    let account: Option<String> = row.get(6)?;
    let target: Option<String> = row.get(7)?;
    let text: Option<String> = row.get(8)?;
    let room_key: Option<String> = row.get(9)?;
    let nick_of = |s: Option<String>| s.and_then(|s| Nick::new(&s).ok());
    let Ok(time) = jiff::Timestamp::from_millisecond(time_ms) else {
        return Ok(None);
    };
    let Ok(nick) = Nick::new(&nick) else {
        return Ok(None);
    };
    let scope = match (name, room_key) {
        (Some(name), Some(key)) => match Room::new(&name) {
            Ok(name) => Scope::Room(std::sync::Arc::new(RoomName {
                key: key.into(),
                name,
            })),
            Err(_) => return Ok(None),
        },
        _ => match nick_of(target.clone()) {
            Some(to) => Scope::Private { to },
            None => return Ok(None),
        },
    };
    let private = matches!(scope, Scope::Private { .. });
    let Some(kind) = canonical::kind(what, text, target, private) else {
        return Ok(None);
    };
    let source = Source::named(nick, account.map(Into::into));
    Ok(Some(Event::new(
        id,
        time,
        cause,
        scope,
        std::sync::Arc::new(source),
        kind,
    )))
}

/// Registers `account` or changes its hash.
fn upsert(conn: &Connection, account: &Account, updated: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(UPSERT_ACCOUNT)?.execute(params![
        account.nick,
        account.hash,
        account.created_ms,
        updated,
    ])
}

/// Writes a server ban (replacing one of the same target).
fn upsert_server_ban(conn: &Connection, ban: &Ban, time: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO server_bans (target, until, by, reason, time) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        ban.target.to_string(),
        ban.until.map(|t| t.as_millisecond()),
        ban.by.as_str(),
        ban.reason.as_deref(),
        time,
    ])
}

/// Writes a registered room's settings and its whole ban list.
fn upsert_room(conn: &Connection, room: &Settings, updated: i64) -> rusqlite::Result<usize> {
    let key = room.name.folded();
    let topic = room.topic.as_deref();
    let written = conn.prepare_cached(UPSERT_ROOM)?.execute(params![
        key,
        room.name.as_str(),
        room.founder.as_deref().unwrap_or_default(),
        room.modes.letters(),
        room.modes.key.as_deref(),
        room.modes.limit,
        topic.map(|t| t.text.as_str()),
        topic.map(|t| t.by.as_str()),
        topic.map(|t| t.time.as_millisecond()),
        updated,
    ])?;
    conn.prepare_cached("DELETE FROM room_bans WHERE room = ?1")?
        .execute(params![key])?;
    let mut insert = conn
        .prepare_cached("INSERT INTO room_bans (room, mask, by, time) VALUES (?1, ?2, ?3, ?4)")?;
    for ban in &room.bans {
        insert.execute(params![
            key,
            ban.mask.to_string(),
            ban.by.as_str(),
            ban.time.as_millisecond()
        ])?;
    }
    Ok(written)
}

/// Answers `query`, oldest first.
fn run_query(conn: &Connection, query: &Query) -> rusqlite::Result<Vec<Stored>> {
    match query {
        Query::History {
            room,
            before,
            limit,
        } => {
            let mut stmt = conn.prepare_cached(HISTORY)?;
            let rows = stmt.query(params![room, sql_id(*before), sql_limit(*limit)])?;
            collect(rows, *limit).map(oldest_first)
        }
        Query::After {
            room,
            after,
            before,
            limit,
        } => {
            let mut stmt = conn.prepare_cached(AFTER)?;
            let rows = stmt.query(params![
                room,
                sql_id(*after),
                sql_id(*before),
                sql_limit(*limit)
            ])?;
            collect(rows, *limit)
        }
        Query::Private {
            pair,
            since_ms,
            before,
            limit,
        } => {
            let mut stmt = conn.prepare_cached(PRIVATE)?;
            let rows = stmt.query(params![pair, sql_id(*before), since_ms, sql_limit(*limit)])?;
            collect(rows, *limit).map(oldest_first)
        }
        Query::Messages {
            of,
            span,
            latest,
            limit,
        } => span_query(conn, of, span, *latest, *limit),
        Query::Around {
            of,
            older,
            newer,
            limit,
        } => {
            let mut messages = span_query(conn, of, older, true, limit / 2)?;
            let rest = limit - messages.len();
            messages.extend(span_query(conn, of, newer, false, rest)?);
            Ok(messages)
        }
    }
}

/// The first (or last, when `latest`) `limit` messages of `of` in `span`, oldest first.
fn span_query(
    conn: &Connection,
    of: &Of,
    span: &Span,
    latest: bool,
    limit: usize,
) -> rusqlite::Result<Vec<Stored>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let (key, after_ms, sql) = match (of, latest) {
        (Of::Room(room), false) => (room, span.after_ms, ROOM_SPAN_FIRST),
        (Of::Room(room), true) => (room, span.after_ms, ROOM_SPAN_LATEST),
        (Of::Pair { pair, since_ms }, latest) => (
            pair,
            // At or after `since_ms`: strictly after the millisecond before it.
            span.after_ms.max(since_ms.saturating_sub(1)),
            if latest {
                PAIR_SPAN_LATEST
            } else {
                PAIR_SPAN_FIRST
            },
        ),
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query(params![
        key,
        sql_id(span.after_id),
        sql_id(span.before_id),
        after_ms,
        span.before_ms,
        sql_limit(limit)
    ])?;
    let messages = collect(rows, limit)?;
    Ok(if latest {
        oldest_first(messages)
    } else {
        messages
    })
}

/// Rebuilds the events of `rows`; a row that cannot be read is skipped.
fn collect(mut rows: rusqlite::Rows<'_>, limit: usize) -> rusqlite::Result<Vec<Stored>> {
    // The limit comes from a client: do not reserve more than a page up front.
    let mut out = Vec::with_capacity(limit.min(256));
    while let Some(row) = rows.next()? {
        match rebuild(row)? {
            Some(event) => out.push(event),
            None => tracing::warn!(
                id = row.get::<_, i64>(0)?,
                "a stored event cannot be read; skipped"
            ),
        }
    }
    Ok(out)
}

/// Puts events read newest first (to take the latest `limit`) in the answer's order.
fn oldest_first(mut stored: Vec<Stored>) -> Vec<Stored> {
    stored.reverse();
    stored
}

/// A message id as SQLite's signed integer; ids past `i64::MAX` (never assigned) compare
/// as the largest.
fn sql_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// A row limit as SQLite's signed integer (a negative one would mean no limit).
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

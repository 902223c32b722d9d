//! Opening the database: the connection's settings and the versioned schema.
//!
//! The schema version is SQLite's `PRAGMA user_version`: the number of [`MIGRATIONS`]
//! applied. Each migration runs in its own transaction with the version bump, so a
//! database is always at one known version. A database newer than this program is
//! refused rather than guessed at.

use super::{Account, Location, StoreError};
use crate::core::ban::{Ban, BanTarget};
use crate::core::room::{Mask, Modes, RoomBan, Settings, Topic};
use chat_proto::name::{Nick, Room};
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The schema's migrations, in order: the database's version is how many it has applied.
/// Append to this list; never edit an entry that has shipped.
pub(super) const MIGRATIONS: &[Migration] =
    &[Migration::Sql(V1), Migration::Rust(v2), Migration::Sql(V3)];

/// One step of the schema.
pub(super) enum Migration {
    /// Statements to run.
    Sql(&'static str),
    /// A step that needs code (converting rows).
    Rust(fn(&Transaction<'_>) -> rusqlite::Result<()>),
}

/// Version 1: events and accounts.
///
/// `events.id` is the message id and the rowid. `kind` is 0 for a message or action, 1
/// for a membership change, 2 for a private message ([`super::Kind::code`]). `line` is
/// the wire frame without its newline. Each query has its own index:
/// `events_history` (partial on `kind = 0`, so skipping membership noise costs nothing)
/// for `/history`, `events_room` for refilling a member that lagged, `events_pair` for
/// private messages. STRICT makes SQLite refuse a value of the wrong type.
const V1: &str = "
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    room TEXT,
    pair TEXT,
    time INTEGER NOT NULL,
    line TEXT NOT NULL
) STRICT;
CREATE INDEX events_history ON events (room, id) WHERE kind = 0;
CREATE INDEX events_room ON events (room, id) WHERE room IS NOT NULL;
CREATE INDEX events_pair ON events (pair, id) WHERE pair IS NOT NULL;
CREATE TABLE accounts (
    nick TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
) STRICT;
";

/// Version 2: events as their fields, not as native frames, so that every door can
/// rebuild history in its own wire form.
///
/// The columns of an event ([`super::writer`] writes and reads them): `kind` as before
/// (which query finds it); `room` the folded room name, `pair` the folded pair of a
/// private message; `time` in milliseconds; `cause` the id of the action it is part of;
/// `what` its kind ([`crate::core::canonical::what`]); `name` the room as spelled; `nick` and
/// `account` its source (its user and host are not kept); `target` the private
/// recipient, the new nickname of a rename, the kicked or invited nickname; `text` what
/// was said, a reason, a topic, mode changes or an away message.
const V2_TABLE: &str = "
ALTER TABLE events RENAME TO events_v1;
DROP INDEX events_history;
DROP INDEX events_room;
DROP INDEX events_pair;
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    room TEXT,
    pair TEXT,
    time INTEGER NOT NULL,
    cause INTEGER NOT NULL,
    what INTEGER NOT NULL,
    name TEXT,
    nick TEXT NOT NULL,
    account TEXT,
    target TEXT,
    text TEXT
) STRICT;
CREATE INDEX events_history ON events (room, id) WHERE kind = 0;
CREATE INDEX events_room ON events (room, id) WHERE room IS NOT NULL;
CREATE INDEX events_pair ON events (pair, id) WHERE pair IS NOT NULL;
";

/// Version 3: registered rooms and their bans, and server bans.
///
/// `rooms` holds a registered room's settings: `room` its folded name, `name` as its
/// founder spelled it, `founder` the account it is registered to, `modes` its flags as
/// letters (`ntm`), `key` and `lim` its `+k` and `+l`, and its topic with who set it and
/// when (milliseconds). `room_bans` its bans: the mask as listed (`nick!user@host` or
/// `$a:account`), who set it and when. `server_bans` the server's bans: the target as
/// listed (an address, a network or a mask), until when (`NULL`: for ever), who set it,
/// why and when. None of these is ever pruned.
const V3: &str = "
CREATE TABLE rooms (
    room TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    founder TEXT NOT NULL,
    modes TEXT NOT NULL,
    key TEXT,
    lim INTEGER,
    topic TEXT,
    topic_by TEXT,
    topic_time INTEGER,
    updated INTEGER NOT NULL
) STRICT;
CREATE TABLE room_bans (
    room TEXT NOT NULL,
    mask TEXT NOT NULL,
    by TEXT NOT NULL,
    time INTEGER NOT NULL,
    PRIMARY KEY (room, mask)
) STRICT, WITHOUT ROWID;
CREATE TABLE server_bans (
    target TEXT PRIMARY KEY,
    until INTEGER,
    by TEXT NOT NULL,
    reason TEXT,
    time INTEGER NOT NULL
) STRICT;
";

/// Version 2's insert, frozen here: a later version's columns must not change what
/// this upgrade writes.
const V2_INSERT: &str = "INSERT INTO events \
                         (id, kind, room, pair, time, cause, what, name, nick, account, target, text) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Creates version 2's table and converts version 1's rows (native frames) into it; a
/// row that does not read as a frame this server wrote is dropped, and counted in the
/// log.
fn v2(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(V2_TABLE)?;
    let mut dropped = 0_u64;
    {
        let mut read = tx.prepare("SELECT id, kind, room, pair, time, line FROM events_v1")?;
        let mut rows = read.query([])?;
        let mut insert = tx.prepare(V2_INSERT)?;
        while let Some(row) = rows.next()? {
            let line: String = row.get(5)?;
            let Some(legacy) = legacy::read(&line) else {
                dropped += 1;
                continue;
            };
            let id: i64 = row.get(0)?;
            insert.execute(rusqlite::params![
                id,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, i64>(4)?,
                id,
                legacy.what,
                legacy.name,
                legacy.nick,
                None::<String>,
                legacy.target,
                legacy.text,
            ])?;
        }
    }
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "stored events that could not be converted were dropped"
        );
    }
    tx.execute_batch("DROP TABLE events_v1")
}

/// Version 1's rows: the native frames this server wrote (`MSG`, `ACTION`, `PRIVMSG`,
/// `JOIN`, `PART`, `QUIT`, `RENAME`), read once by the upgrade to version 2. Their form is
/// frozen here, apart from the native door's, which may change.
mod legacy {
    use crate::core::canonical::what;

    /// A version 1 row's fields, in version 2's columns.
    pub(super) struct Legacy<'a> {
        pub(super) what: i64,
        pub(super) name: Option<&'a str>,
        pub(super) nick: &'a str,
        pub(super) target: Option<&'a str>,
        pub(super) text: Option<&'a str>,
    }

    /// Reads `VERB <a> <b> [<c>] <time> <id> [:<text>]`.
    pub(super) fn read(line: &str) -> Option<Legacy<'_>> {
        let (head, text) = match line.split_once(" :") {
            Some((head, text)) => (head, Some(text)),
            None => (line, None),
        };
        let words: Vec<&str> = head.split(' ').collect();
        let legacy = |what, name, nick, target, text| {
            Some(Legacy {
                what,
                name,
                nick,
                target,
                text,
            })
        };
        match words.as_slice() {
            ["MSG", room, nick, _, _] => legacy(what::MESSAGE, Some(*room), nick, None, text),
            ["ACTION", room, nick, _, _] => legacy(what::ACTION, Some(*room), nick, None, text),
            ["PRIVMSG", from, to, _, _] => legacy(what::MESSAGE, None, from, Some(*to), text),
            ["JOIN", room, nick, _, _] => legacy(what::JOIN, Some(*room), nick, None, None),
            ["PART", room, nick, _, _] => legacy(what::PART, Some(*room), nick, None, text),
            ["QUIT", room, nick, _, _] => legacy(what::QUIT, Some(*room), nick, None, text),
            ["RENAME", room, old, new, _, _] => {
                legacy(what::RENAME, Some(*room), old, Some(*new), None)
            }
            _ => None,
        }
    }
}

/// How long a statement waits for a lock another process holds (someone reading the file
/// with `sqlite3`, say) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the database at `location`, sets it up for the writer and brings its schema up
/// to date.
pub(super) fn connect(location: &Location) -> Result<Connection, StoreError> {
    let path = location.path();
    let err = |e| StoreError::sqlite(path, e);
    let mut conn = match location {
        Location::Memory => Connection::open_in_memory().map_err(err)?,
        Location::File(file) => {
            create_parent(file)?;
            // The default flags add SQLITE_OPEN_URI, which would read a `--db` path that
            // starts with `file:` as a URI; a path is a path.
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(file, flags).map_err(err)?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
            // Reading the version first: SQLite opens files lazily, and this is where a
            // file that is not a database is found out, before anything writes to it.
            version(&conn).map_err(err)?;
            set_durable(&conn, path).map_err(err)?;
            conn
        }
    };
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Creates the directory the database file goes in.
fn create_parent(file: &Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// WAL (readers, such as a backup, never block the writer, and a commit appends to one
/// file) with `synchronous=FULL`: each commit is fsynced, so a committed batch survives a
/// power loss too. Batching keeps this to one fsync per batch.
fn set_durable(conn: &Connection, path: &Path) -> rusqlite::Result<()> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some file systems (network ones) cannot hold WAL's shared memory; SQLite then
        // keeps its rollback journal, which is as durable, only slower.
        tracing::warn!(path = %path.display(), mode, "the database is not in WAL mode");
    }
    conn.pragma_update(None, "synchronous", "FULL")
}

/// The database's schema version.
fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Applies the migrations the database lacks, each in its own transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found = version(conn).map_err(|e| StoreError::sqlite(path, e))?;
    let known = MIGRATIONS.len();
    let applied = usize::try_from(found)
        .ok()
        .filter(|&applied| applied <= known)
        .ok_or_else(|| StoreError::UnknownVersion {
            path: path.to_owned(),
            found,
            known,
        })?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = index + 1;
        apply(conn, migration, version).map_err(|source| StoreError::Migrate {
            path: path.to_owned(),
            version,
            source,
        })?;
        tracing::info!(path = %path.display(), version, "store schema upgraded");
    }
    Ok(())
}

/// Runs one migration and records its version, all or nothing.
fn apply(conn: &mut Connection, migration: &Migration, version: usize) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock at once, so two servers started on one file cannot
    // both migrate it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match migration {
        Migration::Sql(sql) => tx.execute_batch(sql)?,
        Migration::Rust(step) => step(&tx)?,
    }
    // Versions are small: the list is written by hand.
    tx.pragma_update(
        None,
        "user_version",
        i64::try_from(version).unwrap_or(i64::MAX),
    )?;
    tx.commit()
}

/// The first unused message id.
pub(super) fn next_id(conn: &Connection) -> rusqlite::Result<u64> {
    let max: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |row| {
        row.get(0)
    })?;
    Ok(u64::try_from(max).unwrap_or(0) + 1)
}

/// Every account, ordered by nickname.
pub(super) fn accounts(conn: &Connection) -> rusqlite::Result<Vec<Account>> {
    let mut stmt = conn.prepare("SELECT nick, hash, created FROM accounts ORDER BY nick")?;
    let rows = stmt.query_map([], |row| {
        Ok(Account {
            nick: row.get(0)?,
            hash: row.get(1)?,
            created_ms: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// Every registered room with its bans. A row that does not read (a name or mask this
/// version refuses) is skipped and logged.
pub(super) fn rooms(conn: &Connection) -> rusqlite::Result<Vec<Settings>> {
    let mut bans: HashMap<String, Vec<RoomBan>> = HashMap::new();
    let mut stmt =
        conn.prepare("SELECT room, mask, by, time FROM room_bans ORDER BY room, time")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (room, mask, by, time): (String, String, String, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        match (
            Mask::parse(&mask),
            Nick::new(&by),
            Timestamp::from_millisecond(time),
        ) {
            (Ok(mask), Ok(by), Ok(time)) => {
                bans.entry(room)
                    .or_default()
                    .push(RoomBan { mask, by, time })
            }
            _ => tracing::warn!(room, mask, "stored room ban does not read; skipped"),
        }
    }
    let mut stmt = conn.prepare(
        "SELECT room, name, founder, modes, key, lim, topic, topic_by, topic_time FROM rooms ORDER BY room",
    )?;
    let mut rows = stmt.query([])?;
    let mut rooms = Vec::new();
    while let Some(row) = rows.next()? {
        let room: String = row.get(0)?;
        let name: String = row.get(1)?;
        let founder: String = row.get(2)?;
        let modes: String = row.get(3)?;
        let key: Option<String> = row.get(4)?;
        let limit: Option<i64> = row.get(5)?;
        let topic: Option<String> = row.get(6)?;
        let topic_by: Option<String> = row.get(7)?;
        let topic_time: Option<i64> = row.get(8)?;
        let Ok(name) = Room::new(&name) else {
            tracing::warn!(room, "stored room name does not read; skipped");
            continue;
        };
        let topic = match (
            topic,
            topic_by.map(|n| Nick::new(&n)),
            topic_time.map(Timestamp::from_millisecond),
        ) {
            (Some(text), Some(Ok(by)), Some(Ok(time))) => {
                Some(std::sync::Arc::new(Topic { text, by, time }))
            }
            _ => None,
        };
        let limit = limit.and_then(|l| u32::try_from(l).ok());
        rooms.push(Settings {
            name,
            founder: Some(founder.into()),
            modes: Modes::from_parts(&modes, key, limit),
            topic,
            bans: bans.remove(&room).unwrap_or_default(),
        });
    }
    Ok(rooms)
}

/// Every server ban that has not expired by `now_ms`; the expired ones are deleted. A
/// row that does not read is skipped and logged.
pub(super) fn server_bans(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<Ban>> {
    conn.execute("DELETE FROM server_bans WHERE until <= ?1", [now_ms])?;
    let mut stmt = conn.prepare(
        "SELECT target, until, by, reason FROM server_bans \
         WHERE until IS NULL OR until > ?1 ORDER BY time",
    )?;
    let mut rows = stmt.query([now_ms])?;
    let mut bans = Vec::new();
    while let Some(row) = rows.next()? {
        let (target, until, by, reason): (String, Option<i64>, String, Option<String>) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let until = until.map(Timestamp::from_millisecond).transpose();
        match (BanTarget::parse(&target), until, Nick::new(&by)) {
            (Ok(target), Ok(until), Ok(by)) => bans.push(Ban {
                target,
                until,
                by,
                reason,
            }),
            _ => tracing::warn!(target, "stored server ban does not read; skipped"),
        }
    }
    Ok(bans)
}

#[cfg(test)]
mod tests {
    use super::super::writer::{AFTER, HISTORY, PRIVATE};
    use super::*;

    /// SQLite's plan for `sql`, one step a line.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        // Unbound parameters are NULL: the plan does not depend on them.
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps.join("\n")
    }

    #[test]
    fn every_query_uses_its_index() {
        let conn = connect(&Location::Memory).unwrap();
        for (sql, index) in [
            (HISTORY, "events_history"),
            (AFTER, "events_room"),
            (PRIVATE, "events_pair"),
        ] {
            let plan = plan(&conn, sql);
            assert!(
                plan.contains(&format!("USING INDEX {index}")),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "sorts: {sql}: {plan}");
        }
    }

    /// The pruning passes' statements find their rows through an index (or the table's
    /// own rowid order, bounded by a `LIMIT`), and never sort.
    #[test]
    fn every_pruning_query_uses_an_index() {
        use super::super::prune::{NEXT_ROOM, PRUNE_AGE, PRUNE_ROOM, ROOM_CUTOFF};
        let conn = connect(&Location::Memory).unwrap();
        for (sql, uses) in [
            (
                PRUNE_AGE,
                &["USING INTEGER PRIMARY KEY (rowid=?)", "SCAN events"][..],
            ),
            (
                NEXT_ROOM,
                &["USING COVERING INDEX events_room (room>?)"][..],
            ),
            (
                ROOM_CUTOFF,
                &["USING COVERING INDEX events_room (room=?)"][..],
            ),
            (
                PRUNE_ROOM,
                &[
                    "USING COVERING INDEX events_room (room=? AND id<?)",
                    "USING INTEGER PRIMARY KEY (rowid=?)",
                ][..],
            ),
        ] {
            let plan = plan(&conn, sql);
            for step in uses {
                assert!(plan.contains(step), "{sql}: {plan}");
            }
            assert!(!plan.contains("TEMP B-TREE"), "sorts: {sql}: {plan}");
        }
    }

    #[test]
    fn a_fresh_database_is_at_the_latest_version() {
        let conn = connect(&Location::Memory).unwrap();
        assert_eq!(version(&conn).unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(next_id(&conn).unwrap(), 1);
        assert!(accounts(&conn).unwrap().is_empty());
    }
}

//! History retention (`--history-retention`): the writer thread deletes what is past it,
//! a small batch at a time.
//!
//! A pruning pass is one short transaction of its own, run by the writer when no batch
//! of writes is open (after a commit, or when idle), never inside a batch. It deletes at
//! most [`StoreOptions::prune_batch`](super::StoreOptions::prune_batch) events, first by
//! age, then by count per room, and looks at a bounded number of rooms, so that appends
//! queued meanwhile wait a few milliseconds at most. A pass is due every
//! `prune_every`; one that stopped at its bound, with more to do, is followed by the
//! next after a fiftieth of that, so a backlog (a retention made shorter, a server
//! stopped for a while) drains steadily without ever holding the writer for long.
//!
//! - **By age**: of the oldest `prune_batch` events by id, those older than the age are
//!   deleted, rooms' and private ones alike. Ids follow time, so this is the oldest
//!   events, found in the table's own order with no index on time (which every append
//!   would pay for); an event whose time is out of step with its id (the clock was set
//!   back) waits until the events before it go.
//! - **By count**: a cursor walks the rooms in order (`events_room`, one room a step). For
//!   each, the id of its `per_room + 1`th newest event is the cut-off, and its events up
//!   to that id are deleted, oldest first. When the cursor passes the last room, the sweep
//!   is over and the next starts after the interval.
//!
//! Only `events` is touched: accounts are never deleted. A member that falls behind
//! further than what is kept is refilled with what remains and told `LAGGED` for the
//! rest, as for any event the store does not have.

use super::writer::sql_limit;
use crate::config::Retention;
use prometheus_client::metrics::counter::Counter;
use rusqlite::{Connection, params};
use std::time::{Duration, Instant};

/// Deletes the events older than `?1` (ms) among the oldest `?2` events. The inner
/// `LIMIT` bounds the scan (the table in rowid order, no sort); SQLite does not flatten a
/// subquery with a `LIMIT` under a `WHERE`, so the filter applies after it.
pub(super) const PRUNE_AGE: &str = "DELETE FROM events WHERE id IN \
                                    (SELECT id FROM (SELECT id, time FROM events ORDER BY id LIMIT ?2) \
                                    WHERE time < ?1)";

/// The first room, in order, after `?1`.
pub(super) const NEXT_ROOM: &str = "SELECT room FROM events WHERE room > ?1 ORDER BY room LIMIT 1";

/// The id of room `?1`'s event just older than its newest `?2`: the newest to delete.
pub(super) const ROOM_CUTOFF: &str =
    "SELECT id FROM events WHERE room = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2";

/// Deletes room `?1`'s oldest events up to id `?2`, at most `?3` of them.
pub(super) const PRUNE_ROOM: &str = "DELETE FROM events WHERE id IN \
                                     (SELECT id FROM events WHERE room = ?1 AND id <= ?2 ORDER BY id LIMIT ?3)";

/// Index entries a pass may step over to find rooms' cut-offs (`OFFSET per_room` steps
/// over `per_room` of them): it sets how many rooms a pass looks at, a few milliseconds'
/// worth.
const ROOM_STEPS: u64 = 100_000;

/// Rooms a pass looks at, at most, however small `per_room` is.
const MAX_ROOMS_PER_PASS: u64 = 1000;

/// The writer's pruning state.
pub(super) struct Pruner {
    retention: Retention,
    /// Events one pass deletes at most.
    batch: usize,
    /// Time between passes when there is nothing more to do.
    every: Duration,
    /// When the next pass is due; `None` when everything is kept.
    due: Option<Instant>,
    /// The last room the count sweep finished with ("" before the first).
    cursor: String,
    /// Events deleted, for the metrics.
    pruned: Counter,
}

/// What a pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pass {
    deleted: u64,
    /// It stopped at one of its bounds: more may be due now.
    more: bool,
}

impl Pruner {
    pub(super) fn new(
        retention: Retention,
        batch: usize,
        every: Duration,
        pruned: Counter,
    ) -> Pruner {
        let every = every.max(Duration::from_millis(1));
        Pruner {
            retention,
            batch: batch.max(1),
            every,
            due: (!retention.is_forever()).then(|| Instant::now() + every),
            cursor: String::new(),
            pruned,
        }
    }

    /// When the next pass is due, if one ever is.
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether a pass is due now.
    pub(super) fn is_due(&self) -> bool {
        self.due.is_some_and(|due| Instant::now() >= due)
    }

    /// Runs one pass now, in a transaction of its own (`conn` must have none open), and
    /// schedules the next. Returns the events deleted; a failure is logged and deletes
    /// nothing.
    pub(super) fn run(&mut self, conn: &Connection, now_ms: i64) -> u64 {
        if self.retention.is_forever() {
            return 0;
        }
        let started = Instant::now();
        let result = transaction(conn, |conn| self.pass(conn, now_ms));
        let elapsed = started.elapsed();
        let (deleted, next) = match result {
            Ok(pass) => {
                if pass.deleted > 0 {
                    self.pruned.inc_by(pass.deleted);
                }
                tracing::debug!(
                    deleted = pass.deleted,
                    more = pass.more,
                    ?elapsed,
                    "store pruning pass"
                );
                let next = if pass.more {
                    (self.every / 50).max(Duration::from_millis(1))
                } else {
                    self.every
                };
                (pass.deleted, next)
            }
            Err(error) => {
                tracing::warn!(%error, "store pruning pass failed; nothing deleted");
                (0, self.every)
            }
        };
        self.due = Some(Instant::now() + next);
        deleted
    }

    /// Deletes at most `batch` events: by age, then by count per room.
    fn pass(&mut self, conn: &Connection, now_ms: i64) -> rusqlite::Result<Pass> {
        let mut budget = self.batch as u64;
        let mut more = false;
        if let Some(age) = self.retention.max_age {
            let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let cutoff = now_ms.saturating_sub(age_ms);
            let deleted = conn
                .prepare_cached(PRUNE_AGE)?
                .execute(params![cutoff, sql_limit(self.batch)])? as u64;
            budget -= deleted.min(budget);
            more |= budget == 0;
        }
        if let Some(keep) = self.retention.per_room
            && budget > 0
        {
            more |= self.by_count(conn, keep, &mut budget)?;
        }
        Ok(Pass {
            deleted: self.batch as u64 - budget,
            more,
        })
    }

    /// Goes on with the sweep of rooms, keeping each room's newest `keep` events, until
    /// `budget` events are deleted, the pass has looked at its share of rooms, or the
    /// sweep is over. Returns whether it stopped before the end of the sweep.
    fn by_count(
        &mut self,
        conn: &Connection,
        keep: u64,
        budget: &mut u64,
    ) -> rusqlite::Result<bool> {
        let rooms = (ROOM_STEPS / keep.saturating_add(1)).clamp(1, MAX_ROOMS_PER_PASS);
        let offset = i64::try_from(keep).unwrap_or(i64::MAX);
        let mut next_room = conn.prepare_cached(NEXT_ROOM)?;
        let mut cutoff = conn.prepare_cached(ROOM_CUTOFF)?;
        let mut prune = conn.prepare_cached(PRUNE_ROOM)?;
        for _ in 0..rooms {
            let room: Option<String> = next_room
                .query_row([&self.cursor], |row| row.get(0))
                .map(Some)
                .or_else(none_if_no_rows)?;
            let Some(room) = room else {
                // The sweep is over; the next starts from the first room.
                self.cursor.clear();
                return Ok(false);
            };
            let last: Option<i64> = cutoff
                .query_row(params![room, offset], |row| row.get(0))
                .map(Some)
                .or_else(none_if_no_rows)?;
            if let Some(last) = last {
                let limit = i64::try_from(*budget).unwrap_or(i64::MAX);
                let deleted = prune.execute(params![room, last, limit])? as u64;
                *budget -= deleted.min(*budget);
                if *budget == 0 {
                    // The room may hold more: the next pass starts with it again.
                    return Ok(true);
                }
            }
            self.cursor = room;
        }
        Ok(true)
    }
}

/// `Ok(None)` for a query that found no row, the error otherwise.
fn none_if_no_rows<T>(error: rusqlite::Error) -> rusqlite::Result<Option<T>> {
    match error {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        error => Err(error),
    }
}

/// Runs `f` in an IMMEDIATE transaction, committed if it succeeds and rolled back if not.
fn transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let result = f(conn).and_then(|value| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(value)
    });
    if result.is_err()
        && !conn.is_autocommit()
        && let Err(error) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(%error, "store rollback of a pruning pass failed");
    }
    result
}

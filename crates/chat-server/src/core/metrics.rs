//! What the server counts, for Prometheus: one [`Metrics`] per hub, rendered in the
//! OpenMetrics text format by [`Metrics::encode`] (the `/metrics` route serves it).
//!
//! Counting must cost nothing next to the work counted. Every counter and gauge is one
//! atomic, added to with `Relaxed` ordering: no lock and no allocation. Labelled metrics
//! (by door, by refusal reason) are `Family`s, whose lookup takes a lock, so each label's
//! counter is looked up once here, at start, and kept; nothing looks one up afterwards.
//! The busiest counters, deliveries and bytes, are added to once per output batch (one
//! write), not once per event; the others count things that already cost a lock, a
//! syscall or a store operation (a published event, a connection, a refill).
//!
//! What a scrape can read from the hub instead (sessions, rooms, the store's queue, the
//! rooms' buffers) is not counted at all: [`Metrics::observe`] sets those gauges just
//! before encoding.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Where a connection came in: the `door` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Door {
    /// Plain TCP (the native protocol).
    Tcp,
    /// TLS over TCP (the native protocol).
    Tls,
    /// A WebSocket on the HTTP listener.
    Ws,
    /// The IRC door over plain TCP.
    Irc,
    /// The IRC door over TLS.
    Ircs,
}

impl Door {
    const ALL: [Door; 5] = [Door::Tcp, Door::Tls, Door::Ws, Door::Irc, Door::Ircs];

    fn as_str(self) -> &'static str {
        match self {
            Door::Tcp => "tcp",
            Door::Tls => "tls",
            Door::Ws => "ws",
            Door::Irc => "irc",
            Door::Ircs => "ircs",
        }
    }
}

impl EncodeLabelValue for Door {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Why a connection, or a room, was refused: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// A connection past `--max-connections` (`SERVER_FULL`).
    ServerFull,
    /// A connection past `--max-per-ip` (`TOO_MANY_CONNECTIONS`).
    PerAddress,
    /// A new room past `--max-rooms-total` (`ROOMS_FULL`).
    RoomsFull,
    /// A new room past `--max-rooms-per-ip` (`TOO_MANY_ROOMS_CREATED`).
    TooManyRoomsCreated,
    /// A WebSocket from a page of another origin (403 before the upgrade).
    Origin,
    /// A connection or nickname a server ban refused (`BANNED`).
    Banned,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::ServerFull,
        Refusal::PerAddress,
        Refusal::RoomsFull,
        Refusal::TooManyRoomsCreated,
        Refusal::Origin,
        Refusal::Banned,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Refusal::ServerFull => "server_full",
            Refusal::PerAddress => "per_address",
            Refusal::RoomsFull => "rooms_full",
            Refusal::TooManyRoomsCreated => "too_many_rooms_created",
            Refusal::Origin => "origin",
            Refusal::Banned => "banned",
        }
    }
}

impl EncodeLabelValue for Refusal {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DoorLabel {
    door: Door,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: Refusal,
}

/// The buckets of the store's commit times: 100 µs doubling to 3.3 s. An fsync on an
/// SSD takes a few hundred microseconds to a few milliseconds; a commit of seconds is a
/// disk in trouble, and the batch window (100 ms) is where it starts to hurt.
pub(crate) fn commit_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// A connection counted as open, from accept until this is dropped.
#[derive(Debug)]
pub(crate) struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Everything the server counts (see the module docs). Owned by the hub; sessions and the
/// listener reach it through it.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// By [`Door`], in the order of `Door::ALL`.
    accepted: [Counter; 5],
    open: [Gauge; 5],
    /// By [`Refusal`], in the order of `Refusal::ALL`.
    refusals: [Counter; 6],
    handshakes: Counter,
    handshakes_failed: Counter,
    published: Counter,
    encodings: Counter,
    deliveries: Counter,
    written: Counter,
    lagged: Counter,
    lost: Counter,
    refills: Counter,
    slow_consumers: Counter,
    flood_delayed: Counter,
    password_checks: Counter,
    password_failures: Counter,
    sessions: Gauge,
    rooms: Gauge,
    room_buffers: Gauge,
    store_queue: Gauge,
}

/// What a scrape reads from the hub rather than counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed {
    /// Sessions that have a nickname.
    pub(crate) sessions: usize,
    /// Rooms that exist.
    pub(crate) rooms: usize,
    /// Bytes of events the rooms' rings hold.
    pub(crate) room_bytes: usize,
    /// Operations waiting in the store's queue.
    pub(crate) store_queue: usize,
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Every metric at zero; `commits` is the store's commit-time histogram and
    /// `pruned` its count of events deleted by retention, which its writer thread keeps.
    pub(crate) fn new(commits: Histogram, pruned: Counter) -> Metrics {
        let mut registry = Registry::with_prefix("chat");
        let reg = &mut registry;

        let accepted_family = Family::<DoorLabel, Counter>::default();
        let open_family = Family::<DoorLabel, Gauge>::default();
        let accepted =
            Door::ALL.map(|door| accepted_family.get_or_create(&DoorLabel { door }).clone());
        let open = Door::ALL.map(|door| open_family.get_or_create(&DoorLabel { door }).clone());
        reg.register(
            "connections_accepted",
            "Connections accepted, by door (refused ones not included)",
            accepted_family,
        );
        reg.register(
            "connections_open",
            "Connections open now, by door (from accept to close, handshakes included)",
            open_family,
        );

        let refusal_family = Family::<ReasonLabel, Counter>::default();
        let refusals = Refusal::ALL.map(|reason| {
            refusal_family
                .get_or_create(&ReasonLabel { reason })
                .clone()
        });
        reg.register(
            "refusals",
            "Connections and new rooms refused, by the limit they hit",
            refusal_family,
        );

        let counter = |reg: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            reg.register(name, help, counter.clone());
            counter
        };
        let gauge = |reg: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            reg.register(name, help, gauge.clone());
            gauge
        };
        let handshakes = counter(
            reg,
            "handshakes_completed",
            "Handshakes that ended with a nickname",
        );
        let handshakes_failed = counter(
            reg,
            "handshakes_failed",
            "Handshakes (TLS or nickname) that ended without one: closed, timed out, failed",
        );
        let published = counter(
            reg,
            "room_events",
            "Room events published (messages, actions, joins, parts, quits, renames)",
        );
        let encodings = counter(
            reg,
            "encodings",
            "Events encoded to a door's wire form: once per event and wire flavour, however many members get it",
        );
        let deliveries = counter(
            reg,
            "deliveries",
            "Events put in a client's output: room events (live or refilled) and private messages",
        );
        let written = Counter::default();
        reg.register_with_unit(
            "written",
            "Bytes written to clients by sessions",
            Unit::Bytes,
            written.clone(),
        );
        let lagged = counter(
            reg,
            "lagged",
            "LAGGED frames sent: a member fell behind and the store could not refill it all",
        );
        let lost = counter(
            reg,
            "lost_deliveries",
            "Events members never got, as counted in the LAGGED frames sent",
        );
        let refills = counter(
            reg,
            "refills",
            "Times a member fell behind its room's buffer and was refilled from the store",
        );
        let slow_consumers = counter(
            reg,
            "slow_consumers",
            "Sessions ended because their client accepted no output for --write-timeout",
        );
        let flood_delayed = counter(
            reg,
            "flood_delayed",
            "Client lines after which flood control held back the next one",
        );
        let password_checks = counter(
            reg,
            "password_checks",
            "Passwords of registered nicknames checked in handshakes",
        );
        let password_failures = counter(
            reg,
            "password_failures",
            "Password checks that found a wrong password",
        );
        let sessions = gauge(reg, "sessions", "Sessions that have a nickname");
        let rooms = gauge(
            reg,
            "rooms",
            "Rooms that exist (a room exists while it has members)",
        );
        let room_buffers = Gauge::default();
        reg.register_with_unit(
            "room_buffers",
            "Bytes of events the rooms hold for members that have not read them",
            Unit::Bytes,
            room_buffers.clone(),
        );
        let store_queue = gauge(
            reg,
            "store_queue_depth",
            "Operations waiting in the store's queue (appends, queries, flushes)",
        );
        reg.register_with_unit(
            "store_commit",
            "Time taken by each store batch's COMMIT",
            Unit::Seconds,
            commits,
        );
        reg.register(
            "store_pruned",
            "Events deleted from the store by --history-retention",
            pruned,
        );
        Metrics {
            registry,
            accepted,
            open,
            refusals,
            handshakes,
            handshakes_failed,
            published,
            encodings,
            deliveries,
            written,
            lagged,
            lost,
            refills,
            slow_consumers,
            flood_delayed,
            password_checks,
            password_failures,
            sessions,
            rooms,
            room_buffers,
            store_queue,
        }
    }

    /// A connection accepted through `door`: counted, and open until the guard drops.
    pub(crate) fn accepted(&self, door: Door) -> Open {
        let index = door as usize;
        self.accepted[index].inc();
        let open = self.open[index].clone();
        open.inc();
        Open(open)
    }

    /// A connection or a new room refused.
    pub(crate) fn refused(&self, why: Refusal) {
        self.refusals[why as usize].inc();
    }

    /// A handshake ended: with a nickname (`true`) or without.
    pub(crate) fn handshake(&self, completed: bool) {
        if completed {
            self.handshakes.inc();
        } else {
            self.handshakes_failed.inc();
        }
    }

    /// A room event was sent to its room.
    pub(crate) fn published(&self) {
        self.published.inc();
    }

    /// `events` were encoded to a door's wire form (by the first member of that door to
    /// get each).
    pub(crate) fn encoded(&self, events: u64) {
        if events > 0 {
            self.encodings.inc_by(events);
        }
    }

    /// Events encoded so far.
    #[cfg(test)]
    pub(crate) fn encodings(&self) -> u64 {
        self.encodings.get()
    }

    /// `events` were put in a client's output. Called once per batch where possible.
    pub(crate) fn delivered(&self, events: usize) {
        if events > 0 {
            self.deliveries.inc_by(events as u64);
        }
    }

    /// `bytes` were written to a client (one batch).
    pub(crate) fn written(&self, bytes: usize) {
        if bytes > 0 {
            self.written.inc_by(bytes as u64);
        }
    }

    /// A member was told `LAGGED` with `missed` events it will never get.
    pub(crate) fn lagged(&self, missed: u64) {
        self.lagged.inc();
        self.lost.inc_by(missed);
    }

    /// A member fell behind and a refill from the store began.
    pub(crate) fn refill(&self) {
        self.refills.inc();
    }

    /// Refills started so far.
    #[cfg(test)]
    pub(crate) fn refills_total(&self) -> u64 {
        self.refills.get()
    }

    /// A session was ended for not reading its output.
    pub(crate) fn slow_consumer(&self) {
        self.slow_consumers.inc();
    }

    /// Flood control held back a client's next line.
    pub(crate) fn flood_delayed(&self) {
        self.flood_delayed.inc();
    }

    /// A password was checked; `right` tells whether it was the account's.
    pub(crate) fn password_checked(&self, right: bool) {
        self.password_checks.inc();
        if !right {
            self.password_failures.inc();
        }
    }

    /// Sets the gauges that a scrape reads from the hub.
    pub(crate) fn observe(&self, now: Observed) {
        self.sessions.set(gauge_value(now.sessions));
        self.rooms.set(gauge_value(now.rooms));
        self.room_buffers.set(gauge_value(now.room_bytes));
        self.store_queue.set(gauge_value(now.store_queue));
    }

    /// Everything, in the OpenMetrics text format (which Prometheus reads), ending with
    /// `# EOF`.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `name` (with its labels, as written), if present.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().unwrap())
        })
    }

    #[test]
    fn the_text_names_every_metric_and_moves_with_the_counts() {
        let commits = commit_histogram();
        let pruned = Counter::default();
        let metrics = Metrics::new(commits.clone(), pruned.clone());
        let open = metrics.accepted(Door::Tls);
        metrics.refused(Refusal::TooManyRoomsCreated);
        metrics.handshake(true);
        metrics.handshake(false);
        metrics.published();
        metrics.delivered(3);
        metrics.delivered(0);
        metrics.written(300);
        metrics.lagged(7);
        metrics.refill();
        metrics.slow_consumer();
        metrics.flood_delayed();
        metrics.password_checked(false);
        metrics.password_checked(true);
        metrics.observe(Observed {
            sessions: 2,
            rooms: 1,
            room_bytes: 456,
            store_queue: 9,
        });
        commits.observe(0.003);
        pruned.inc_by(12);
        let text = metrics.encode();
        let expected = [
            ("chat_connections_accepted_total{door=\"tcp\"}", 0.0),
            ("chat_connections_accepted_total{door=\"tls\"}", 1.0),
            ("chat_connections_accepted_total{door=\"ws\"}", 0.0),
            ("chat_connections_open{door=\"tls\"}", 1.0),
            ("chat_connections_open{door=\"ws\"}", 0.0),
            ("chat_refusals_total{reason=\"server_full\"}", 0.0),
            ("chat_refusals_total{reason=\"per_address\"}", 0.0),
            ("chat_refusals_total{reason=\"rooms_full\"}", 0.0),
            (
                "chat_refusals_total{reason=\"too_many_rooms_created\"}",
                1.0,
            ),
            ("chat_handshakes_completed_total", 1.0),
            ("chat_handshakes_failed_total", 1.0),
            ("chat_room_events_total", 1.0),
            ("chat_deliveries_total", 3.0),
            ("chat_written_bytes_total", 300.0),
            ("chat_lagged_total", 1.0),
            ("chat_lost_deliveries_total", 7.0),
            ("chat_refills_total", 1.0),
            ("chat_slow_consumers_total", 1.0),
            ("chat_flood_delayed_total", 1.0),
            ("chat_password_checks_total", 2.0),
            ("chat_password_failures_total", 1.0),
            ("chat_sessions", 2.0),
            ("chat_rooms", 1.0),
            ("chat_room_buffers_bytes", 456.0),
            ("chat_store_queue_depth", 9.0),
            ("chat_store_commit_seconds_count", 1.0),
            ("chat_store_pruned_total", 12.0),
            ("chat_store_commit_seconds_bucket{le=\"0.0032\"}", 1.0),
            ("chat_store_commit_seconds_bucket{le=\"0.0016\"}", 0.0),
        ];
        for (name, value) in expected {
            assert_eq!(sample(&text, name), Some(value), "{name} in:\n{text}");
        }
        assert!(
            text.contains("# TYPE chat_store_commit_seconds histogram"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        drop(open);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "chat_connections_open{door=\"tls\"}"),
            Some(0.0)
        );
    }
}

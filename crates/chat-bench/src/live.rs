//! State shared by every task of one run while it goes: counters for the progress line,
//! the latency histogram, and the semaphores the controller waits on.
//!
//! Receivers batch their updates (counters every few hundred frames, latencies in
//! chunks of runs of one value), so that the bench spends its time reading sockets, not contending on
//! shared cache lines.

use crate::client::Refusal;
use crate::report::Refusals;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::{Notify, Semaphore};

/// Longest latency the histogram holds, in nanoseconds (one hour); longer ones are
/// recorded as this.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Where a run is, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Opening connections and logging them in.
    Connecting = 0,
    /// Waiting until every member has seen everything that setting up caused.
    Syncing = 1,
    /// The workload proper.
    Running = 2,
    /// Sending is over; waiting for the last deliveries.
    Draining = 3,
}

/// Shared by the controller, the senders and the receivers of one run.
pub(crate) struct Live {
    /// Start of every nickname of this run (`b<run id>_`); messages and `QUIT`s of other
    /// nicknames are not this run's business.
    pub(crate) prefix: String,
    /// Origin of the send timestamps carried in messages, shared by all tasks.
    pub(crate) epoch: Instant,
    phase: AtomicU8,
    /// Connections logged in (and in the room).
    pub(crate) connected: AtomicU64,
    /// Bench messages written by the ordinary senders.
    pub(crate) sent: AtomicU64,
    /// Bench messages received by ordinary members (approximate while running).
    pub(crate) delivered: AtomicU64,
    /// Sum of `LAGGED` counts seen by ordinary members.
    pub(crate) lagged: AtomicU64,
    /// Lines written by flooders.
    pub(crate) flood_written: AtomicU64,
    /// Echoes of their own lines seen by flooders.
    pub(crate) flood_echoes: AtomicU64,
    /// Connect, handshake and quit cycles completed (churn).
    pub(crate) cycles: AtomicU64,
    /// Connections refused with `ERR SERVER_FULL` (with `--allow-refused`).
    refused_full: AtomicU64,
    /// Connections refused with `ERR TOO_MANY_CONNECTIONS`.
    refused_per_address: AtomicU64,
    /// Connections closed by the server before `NICK`, without a word.
    refused_closed: AtomicU64,
    /// One permit per receiver that has everything it will get (or has ended).
    pub(crate) done: Semaphore,
    /// One permit per `PONG` seen by a receiver.
    pub(crate) pongs: Semaphore,
    latencies: Mutex<Histogram<u64>>,
}

impl Live {
    pub(crate) fn new(prefix: String) -> Arc<Live> {
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
            .expect("constant histogram bounds are valid");
        Arc::new(Live {
            prefix,
            epoch: Instant::now(),
            phase: AtomicU8::new(Phase::Connecting as u8),
            connected: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            flood_written: AtomicU64::new(0),
            flood_echoes: AtomicU64::new(0),
            cycles: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
            refused_per_address: AtomicU64::new(0),
            refused_closed: AtomicU64::new(0),
            done: Semaphore::new(0),
            pongs: Semaphore::new(0),
            latencies: Mutex::new(histogram),
        })
    }

    /// Nanoseconds since [`Live::epoch`]: the clock of the send timestamps.
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Connecting,
            1 => Phase::Syncing,
            2 => Phase::Running,
            _ => Phase::Draining,
        }
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts a connection the server refused.
    pub(crate) fn refused(&self, refusal: Refusal) {
        let counter = match refusal {
            Refusal::Full => &self.refused_full,
            Refusal::PerAddress => &self.refused_per_address,
            Refusal::Closed => &self.refused_closed,
        };
        Live::add(counter, 1);
    }

    /// The refusals counted so far.
    pub(crate) fn refusals(&self) -> Refusals {
        Refusals::new(
            Live::get(&self.refused_full),
            Live::get(&self.refused_per_address),
            Live::get(&self.refused_closed),
        )
    }

    /// Records a batch of latencies and empties it.
    pub(crate) fn record(&self, batch: &mut Latencies) {
        if batch.runs.is_empty() {
            return;
        }
        let mut histogram = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &(ns, count) in &batch.runs {
            histogram.saturating_record_n(ns.max(1), count);
        }
        drop(histogram);
        batch.runs.clear();
    }

    /// A copy of the latencies recorded so far.
    pub(crate) fn latencies(&self) -> Histogram<u64> {
        self.latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Latencies in nanoseconds on their way to [`Live::record`], as runs of one value:
/// the messages of one sender's batch (stamped once) that a receiver reads at once
/// (its clock read once) have one latency, and cost one increment, not one record each.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    /// Each latency and how many times in a row it was seen.
    runs: Vec<(u64, u64)>,
}

impl Latencies {
    /// Runs a batch holds before it should be recorded.
    const RUNS: usize = 256;

    #[inline]
    pub(crate) fn push(&mut self, ns: u64) {
        match self.runs.last_mut() {
            Some((last, count)) if *last == ns => *count += 1,
            _ => self.runs.push((ns, 1)),
        }
    }

    /// Whether it is time to record the batch.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.runs.len() >= Latencies::RUNS
    }
}

/// How far one sender's own messages have come back to it, for `throughput --window`:
/// its receiver moves `next` on and wakes the sender.
#[derive(Debug, Default)]
pub(crate) struct Echo {
    /// The sender this is about.
    pub(crate) sender: usize,
    /// One more than the highest sequence number echoed so far.
    pub(crate) next: AtomicU64,
    pub(crate) notify: Notify,
}

impl Echo {
    pub(crate) fn new(sender: usize) -> Arc<Echo> {
        Arc::new(Echo {
            sender,
            ..Echo::default()
        })
    }

    /// Notes that message `seq` came back.
    pub(crate) fn echoed(&self, seq: u64) {
        self.next.fetch_max(seq + 1, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn next(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }
}

//! The writer's queue: bounded, FIFO, and quiet.
//!
//! A `std::sync::mpsc` channel wakes its receiver on every send: one futex call and, on
//! a busy core, two context switches per message, which the profile of a 100-member room
//! showed halving the server's throughput. Appends do not need the writer at once: they
//! only have to be committed within the batch window. So an append wakes the writer only
//! when it sleeps with no batch open (the first record of a batch starts the window) or
//! when the queue reaches half full; while a batch is open the writer sleeps until the
//! window closes and then takes everything queued at once. Queries and flushes, which
//! someone awaits, always wake it.
//!
//! Half full, the writer **drains**: it takes everything queued before it sleeps again,
//! and no append wakes it meanwhile. Without that, a writer that fell behind (it shares
//! a core with the sessions under a long overload) hovered at the half mark: every
//! append woke it, it took one record, and slept: a futex call and two context switches
//! per message, 537,601 futex calls in a 400,000-message run (issue 17).

use super::Op;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// The queue shared by every sender and the writer.
struct Shared {
    state: Mutex<State>,
    /// Signalled when the writer must look at the queue.
    wake: Condvar,
    capacity: usize,
}

struct State {
    ops: VecDeque<Op>,
    /// Queued operations that someone awaits (queries, flushes).
    urgent: usize,
    /// The writer sleeps with no batch open: any operation must wake it.
    idle: bool,
    /// The queue reached half full: the writer takes everything queued before it sleeps
    /// again, and appends do not wake it meanwhile.
    draining: bool,
    /// Every sender is gone.
    closed: bool,
    /// The writer is gone (it panicked): nothing will ever be taken.
    gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::core::lock(&self.state)
    }
}

/// The sending side; the queue closes when the last clone is dropped.
#[derive(Clone)]
pub(super) struct Sender {
    shared: Arc<Shared>,
    /// Counts the senders: its drop (the last one's) closes the queue.
    _closer: Arc<Closer>,
}

struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_one();
    }
}

/// Why an operation was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SendError {
    /// The queue is at capacity.
    Full,
    /// The writer is gone.
    Gone,
}

impl Sender {
    /// Queues `op` without blocking. `urgent`: someone awaits its answer, so the writer
    /// is woken now.
    ///
    /// Appends and urgent operations are counted apart, each up to `capacity`. Clients
    /// make appends as fast as they can type, but each session awaits only a few
    /// queries at a time (one per room it is in, and its own `/history`): so a queue full
    /// of appends still takes a lagging member's refill, and the member waits for its
    /// turn instead of losing the events; and refills do not crowd out messages.
    pub(super) fn send(&self, op: Op, urgent: bool) -> Result<(), SendError> {
        let mut st = self.shared.lock();
        if st.gone {
            return Err(SendError::Gone);
        }
        let queued = if urgent {
            st.urgent
        } else {
            st.ops.len().saturating_sub(st.urgent)
        };
        if queued >= self.shared.capacity {
            return Err(SendError::Full);
        }
        st.ops.push_back(op);
        st.urgent += usize::from(urgent);
        let half_full = st.ops.len().saturating_sub(st.urgent) * 2 >= self.shared.capacity;
        // Half full wakes it once: it then drains the queue.
        let wake = urgent || st.idle || (half_full && !st.draining);
        st.draining |= half_full;
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Operations queued, of every kind.
    pub(super) fn len(&self) -> usize {
        self.shared.lock().ops.len()
    }
}

/// The writer's side.
pub(super) struct Receiver {
    shared: Arc<Shared>,
}

/// What the writer gets next.
pub(super) enum Next {
    /// An operation, in queue order.
    Op(Op),
    /// The batch window is over, or with no batch open the wake-up time has come, and
    /// nothing is queued.
    Timeout,
    /// Every sender is gone and nothing is queued.
    Closed,
}

impl Receiver {
    /// The next operation. With no batch open (`deadline` is `None`) it waits for any
    /// operation, or until `wake` (the next pruning pass) if given. With one open it
    /// waits until the deadline, unless an urgent operation arrives or the queue fills
    /// up; then it hands out everything queued, in order, before reporting the timeout.
    pub(super) fn next(&self, deadline: Option<Instant>, wake: Option<Instant>) -> Next {
        let mut st = self.shared.lock();
        loop {
            // The clock last: a draining writer takes each operation without reading it.
            let due = st.urgent > 0
                || st.closed
                || st.draining
                || deadline.is_none_or(|d| Instant::now() >= d);
            if due && let Some(op) = st.ops.pop_front() {
                if matches!(op, Op::Query(..) | Op::Flush(_) | Op::Prune(_)) {
                    st.urgent -= 1;
                }
                if st.ops.is_empty() {
                    st.draining = false;
                }
                return Next::Op(op);
            }
            st.draining = false;
            if st.closed {
                return Next::Closed;
            }
            match deadline {
                Some(d) if Instant::now() >= d => return Next::Timeout,
                Some(d) => {
                    let wait = d.saturating_duration_since(Instant::now());
                    st = self
                        .shared
                        .wake
                        .wait_timeout(st, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                None => {
                    if wake.is_some_and(|w| Instant::now() >= w) {
                        return Next::Timeout;
                    }
                    st.idle = true;
                    st = match wake {
                        Some(w) => {
                            let wait = w.saturating_duration_since(Instant::now());
                            self.shared
                                .wake
                                .wait_timeout(st, wait)
                                .unwrap_or_else(|p| p.into_inner())
                                .0
                        }
                        None => self.shared.wake.wait(st).unwrap_or_else(|p| p.into_inner()),
                    };
                    st.idle = false;
                }
            }
        }
    }
}

/// A queue holding at most `capacity` appends, and as many queries and flushes besides.
pub(super) fn channel(capacity: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            ops: VecDeque::new(),
            urgent: 0,
            idle: false,
            draining: false,
            closed: false,
            gone: false,
        }),
        wake: Condvar::new(),
        capacity: capacity.max(1),
    });
    let sender = Sender {
        shared: shared.clone(),
        _closer: Arc::new(Closer(shared.clone())),
    };
    (sender, Receiver { shared })
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.gone = true;
        st.ops.clear();
    }
}

#[cfg(test)]
impl Receiver {
    /// Takes the next operation if one is queued, whatever the window.
    pub(super) fn try_take(&self) -> Option<Op> {
        self.shared.lock().ops.pop_front()
    }
}

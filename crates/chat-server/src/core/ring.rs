//! A room's broadcast channel: the room's latest events in a ring that grows with use,
//! read by every member at its own pace.
//!
//! Tokio's `broadcast` channel allocates all its slots when it is made (about 65 bytes
//! each, 67 KB for 1,024 events), so a room cost that much before anyone spoke, and one
//! address could make thousands of them. This ring holds its events in a `VecDeque`
//! that starts empty and grows (by doubling) only as events are sent, and holds only
//! what some receiver has yet to read: every receiver publishes its position, and every
//! [`TRIM_EVERY`] sends the ring drops the events that all of them have read. Past
//! `capacity` events or `max_bytes` of them, the oldest is dropped anyway (the receivers
//! behind it are told they lagged). And every ring of a server draws on one [`Budget`]:
//! while the rings together hold more than it, a ring that sends drops its oldest
//! events down to [`KEEP`]. So a room costs a few hundred bytes plus what its slowest
//! member has not read, at most its bounds, all of them together at most about the
//! budget, and everything goes back to the allocator when the room is dropped.
//!
//! Room for a member to fall behind is what lets a member that reads in bursts keep up
//! without a trip to the store, and a ring gives it once per room, shared by every
//! member, where a socket's send buffer gives it once per connection.
//!
//! The semantics are `broadcast`'s: every receiver sees every event sent after it
//! subscribed, in order, unless it falls more than the ring's contents behind; then it is
//! told how many it lost ([`Lagged`]) and carries on from the oldest event held. A sender
//! never waits for a receiver. A receiver is a [`Cursor`] (its position, and that
//! position shared with the ring), held by the member beside its `Arc` of the room.
//!
//! Readers take a read lock and may copy out many events under it
//! ([`Ring::drain`]): a batch costs one lock, not one per event as a slot-per-lock
//! channel does. Senders are already ordered by the room's own lock; the write lock is
//! held only to push. Waiting receivers are woken by a [`Notify`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

/// What an event weighs against a ring's byte bound.
pub(crate) trait Weigh {
    /// Bytes this event keeps alive while a ring holds it: its payload and bookkeeping.
    fn weight(&self) -> usize;
}

/// Events a ring keeps however far its server is over its [`Budget`]: enough for the
/// members of a room that talks now and then never to need the store.
pub(crate) const KEEP: usize = 64;

/// Sends between two looks at where the receivers are, to drop what all have read: the
/// look reads every receiver's position, so it is spread over this many sends.
const TRIM_EVERY: u64 = 64;

/// Bytes of events that all the rings of a server hold together, and how many they may.
#[derive(Debug)]
pub(crate) struct Budget {
    held: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes, shared by every ring made with it.
    pub(crate) fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            held: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes held now by the rings of this budget.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// A broadcast ring of `T` (see the module docs).
pub(crate) struct Ring<T> {
    held: RwLock<Held<T>>,
    /// The position the next event will take: how many events were ever sent. Read
    /// without the lock to tell whether a receiver has anything new.
    tail: AtomicU64,
    /// Wakes the receivers waiting in [`Ring::recv`].
    notify: Arc<Notify>,
    /// Most events held.
    capacity: usize,
    /// Most bytes of events held (by [`Weigh::weight`]); the bound never drops the newest
    /// event, so one event heavier than it is still held until everyone has read it.
    max_bytes: usize,
    /// What all the rings of the server hold, and may.
    budget: Arc<Budget>,
    /// Every receiver's position, as its [`Cursor`] publishes it. A position whose
    /// cursor is gone (the ring holds the last reference) is pruned at the next look.
    readers: Mutex<Vec<Arc<AtomicU64>>>,
}

/// The events a ring holds.
struct Held<T> {
    /// Oldest first.
    events: VecDeque<T>,
    /// The position of `events[0]`.
    head: u64,
    /// The weight of `events`.
    bytes: usize,
}

/// A receiver's place in a ring: the position of the next event it will read, shared
/// with the ring so that it can drop what every receiver has read.
#[derive(Debug)]
pub(crate) struct Cursor {
    next: u64,
    /// `next`, as the ring sees it.
    shared: Arc<AtomicU64>,
}

impl Cursor {
    fn advance(&mut self, to: u64) {
        self.next = to;
        self.shared.store(to, Ordering::Relaxed);
    }
}

/// A member's wait on one ring, kept across waits ([`Ring::waiter`]).
pub(crate) struct Waiter(Pin<Box<OwnedNotified>>);

/// The receiver fell behind: this many events were dropped before it read them. Its
/// cursor has moved to the oldest event held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lagged(pub(crate) u64);

/// Why [`Ring::try_recv`] gave no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    /// Nothing new.
    Empty,
    /// See [`Lagged`].
    Lagged(u64),
}

impl<T: Clone + Weigh> Ring<T> {
    /// An empty ring holding at most `capacity` events (at least one) and `max_bytes` of
    /// them, and drawing on `budget`. Allocates nothing until the first send.
    pub(crate) fn new(capacity: usize, max_bytes: usize, budget: Arc<Budget>) -> Ring<T> {
        Ring {
            held: RwLock::new(Held {
                events: VecDeque::new(),
                head: 0,
                bytes: 0,
            }),
            tail: AtomicU64::new(0),
            notify: Arc::new(Notify::new()),
            capacity: capacity.max(1),
            max_bytes,
            budget,
            readers: Mutex::default(),
        }
    }

    fn readers(&self) -> std::sync::MutexGuard<'_, Vec<Arc<AtomicU64>>> {
        self.readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The position of the slowest receiver (or `tail` when there is none), forgetting the
    /// positions of receivers that are gone.
    fn slowest(&self, tail: u64) -> u64 {
        let mut readers = self.readers();
        readers.retain(|r| Arc::strong_count(r) > 1);
        readers
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()
            .unwrap_or(tail)
    }

    fn read(&self) -> RwLockReadGuard<'_, Held<T>> {
        // Nothing panics while the lock is held but an allocation failure, which aborts.
        self.held
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Held<T>> {
        self.held
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `event` to every receiver, dropping the oldest events past the bounds. The
    /// caller orders sends (the room's lock).
    pub(crate) fn send(&self, event: T) {
        let weight = event.weight();
        let total = self.budget.held.fetch_add(weight, Ordering::Relaxed) + weight;
        // What the server holds past its budget: this ring gives back that much, if it
        // can spare it.
        let over = total.saturating_sub(self.budget.limit);
        let mut freed = 0;
        {
            let mut held = self.write();
            held.bytes += weight;
            held.events.push_back(event);
            let tail = self.tail.fetch_add(1, Ordering::Release) + 1;
            // What every receiver has read can go. (A receiver's published position is
            // never ahead of it, and one subscribing now waits for the room's lock, which
            // the caller holds.)
            let read_by_all = if tail.is_multiple_of(TRIM_EVERY) {
                self.slowest(tail)
            } else {
                held.head
            };
            loop {
                let len = held.events.len();
                let drop_one = held.head < read_by_all
                    || len > self.capacity
                    || (held.bytes > self.max_bytes && len > 1)
                    || (freed < over && len > KEEP);
                if !drop_one {
                    break;
                }
                let Some(old) = held.events.pop_front() else {
                    break;
                };
                held.bytes -= old.weight();
                held.head += 1;
                freed += old.weight();
            }
            // A room that has quietened gives its buffer back, not just its events
            // (amortised: it takes a quarter's emptiness to shrink by half).
            let (len, slots) = (held.events.len(), held.events.capacity());
            if slots > KEEP && len * 4 < slots {
                held.events.shrink_to(len * 2);
            }
        }
        self.budget.held.fetch_sub(freed, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    /// A receiver of every event sent from now on. Exact when the caller holds the
    /// room's lock, so that no send races with it.
    pub(crate) fn subscribe(&self) -> Cursor {
        let next = self.tail.load(Ordering::Acquire);
        let shared = Arc::new(AtomicU64::new(next));
        let mut readers = self.readers();
        // Positions of receivers that left are pruned here too, so that a room where
        // people come and go but nobody speaks keeps no more of them than it has members
        // (amortised: a pass each time the list doubles).
        if readers.len() >= 64 && readers.len().is_power_of_two() {
            readers.retain(|r| Arc::strong_count(r) > 1);
        }
        readers.push(shared.clone());
        Cursor { next, shared }
    }

    /// Events sent that `cursor` has not read, lost ones included.
    pub(crate) fn pending(&self, cursor: &Cursor) -> u64 {
        self.tail
            .load(Ordering::Acquire)
            .saturating_sub(cursor.next)
    }

    /// The next event for `cursor`, without waiting.
    pub(crate) fn try_recv(&self, cursor: &mut Cursor) -> Result<T, TryRecvError> {
        if self.pending(cursor) == 0 {
            return Err(TryRecvError::Empty);
        }
        let held = self.read();
        if cursor.next < held.head {
            let lost = held.head - cursor.next;
            cursor.advance(held.head);
            return Err(TryRecvError::Lagged(lost));
        }
        let index = usize::try_from(cursor.next - held.head).unwrap_or(usize::MAX);
        match held.events.get(index) {
            Some(event) => {
                cursor.advance(cursor.next + 1);
                Ok(event.clone())
            }
            None => Err(TryRecvError::Empty),
        }
    }

    /// Hands the events ready for `cursor` to `take`, in order, under one read lock: at
    /// most `max`, and none after `take` returns `false`. Returns how many it took.
    pub(crate) fn drain(
        &self,
        cursor: &mut Cursor,
        max: usize,
        mut take: impl FnMut(&T) -> bool,
    ) -> Result<usize, Lagged> {
        if self.pending(cursor) == 0 {
            return Ok(0);
        }
        let held = self.read();
        if cursor.next < held.head {
            let lost = held.head - cursor.next;
            cursor.advance(held.head);
            return Err(Lagged(lost));
        }
        let start = usize::try_from(cursor.next - held.head).unwrap_or(usize::MAX);
        let mut taken = 0;
        for event in held.events.iter().skip(start).take(max) {
            taken += 1;
            if !take(event) {
                break;
            }
        }
        cursor.advance(cursor.next + taken as u64);
        Ok(taken)
    }

    /// Waits for the next event for `cursor`. Cancel-safe: the cursor moves only when an
    /// event (or the news of a lag) is returned.
    ///
    /// Every waiting session carries this future, so it is kept small: a plain function
    /// returning an `async` block (an `async fn` keeps a second copy of its arguments),
    /// the `Notified` pinned in place and awaited by reference, and no value of the look
    /// kept across the wait.
    #[allow(clippy::manual_async_fn)] // written out on purpose; see above
    pub(crate) fn recv<'a>(
        &'a self,
        cursor: &'a mut Cursor,
    ) -> impl Future<Output = Result<T, Lagged>> + Send + 'a
    where
        T: Send + Sync,
    {
        async move {
            loop {
                // Made before looking, so that a send between the look and the wait still
                // wakes it (`notify_waiters` completes every `Notified` made before it).
                let notified = std::pin::pin!(self.notify.notified());
                match self.try_recv(cursor) {
                    Ok(event) => return Ok(event),
                    Err(TryRecvError::Lagged(lost)) => return Err(Lagged(lost)),
                    Err(TryRecvError::Empty) => {}
                }
                notified.await;
            }
        }
    }

    /// A wait on this ring that a member in several rooms keeps across its waits (see
    /// [`Ring::poll_recv`]).
    pub(crate) fn waiter(&self) -> Waiter {
        Waiter(Box::pin(self.notify.clone().notified_owned()))
    }

    /// Polls for the next event for `cursor`, with a `waiter` of this ring that is
    /// re-armed in place once it fires: a member in several rooms polls each of its rooms
    /// this way, allocating nothing per wait. Like [`Ring::recv`], the cursor moves only
    /// when an event (or the news of a lag) is returned.
    pub(crate) fn poll_recv(
        &self,
        cursor: &mut Cursor,
        waiter: &mut Waiter,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Lagged>> {
        loop {
            // Registered before looking, so that a send between the look and the poll
            // still completes it.
            waiter.0.as_mut().enable();
            match self.try_recv(cursor) {
                Ok(event) => return Poll::Ready(Ok(event)),
                Err(TryRecvError::Lagged(lost)) => return Poll::Ready(Err(Lagged(lost))),
                Err(TryRecvError::Empty) => {}
            }
            match waiter.0.as_mut().poll(cx) {
                Poll::Ready(()) => waiter.0.set(self.notify.clone().notified_owned()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Bytes of events held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Events held now and the slots allocated for them, for tests of memory use.
    #[cfg(test)]
    fn footprint(&self) -> (usize, usize) {
        let held = self.read();
        (held.events.len(), held.events.capacity())
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        let held = self
            .held
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.budget.held.fetch_sub(held.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Ev(u64, usize);

    impl Weigh for Ev {
        fn weight(&self) -> usize {
            self.1
        }
    }

    fn ev(n: u64) -> Ev {
        Ev(n, 10)
    }

    fn unlimited() -> Arc<Budget> {
        Budget::new(usize::MAX)
    }

    #[test]
    fn rings_over_their_shared_budget_give_back_down_to_keep() {
        let budget = Budget::new(1000);
        let busy = Ring::new(10_000, usize::MAX, budget.clone());
        let quiet = Ring::new(10_000, usize::MAX, budget.clone());
        // Receivers that read nothing, so that only the budget frees anything.
        let _stalled = (busy.subscribe(), quiet.subscribe());
        for n in 0..10 {
            quiet.send(ev(n));
        }
        for n in 0..200 {
            busy.send(ev(n));
        }
        // 2,100 bytes were sent; the busy ring gave back what went past 1,000.
        assert_eq!(budget.held(), 1000);
        assert_eq!((busy.bytes(), quiet.bytes()), (900, 100));
        // Over the budget, the ring that sends gives back, but keeps KEEP events.
        let small = Ring::new(10_000, usize::MAX, budget.clone());
        let _stalled_too = small.subscribe();
        for n in 0..100 {
            small.send(ev(n));
        }
        assert_eq!(small.footprint().0, KEEP);
        assert_eq!(budget.held(), 1000 + KEEP * 10);
        // A ring gives its bytes back when dropped.
        drop(small);
        drop(busy);
        assert_eq!(budget.held(), 100);
    }

    #[test]
    fn a_new_ring_allocates_nothing_and_grows_with_use() {
        let ring = Ring::<Ev>::new(1024, usize::MAX, unlimited());
        assert_eq!(ring.footprint(), (0, 0));
        // A receiver that reads nothing: the ring holds what it has not read.
        let _stalled = ring.subscribe();
        for n in 0..10 {
            ring.send(ev(n));
        }
        let (len, slots) = ring.footprint();
        assert_eq!(len, 10);
        assert!(slots < 64, "{slots} slots for 10 events");
        for n in 10..5000 {
            ring.send(ev(n));
        }
        let (len, slots) = ring.footprint();
        assert_eq!(len, 1024);
        assert!(slots <= 2048, "{slots} slots for a ring of 1024");
    }

    #[test]
    fn what_every_receiver_has_read_is_dropped_and_the_buffer_given_back() {
        let ring = Ring::new(100_000, usize::MAX, unlimited());
        let mut fast = ring.subscribe();
        let mut slow = ring.subscribe();
        for n in 0..1000 {
            ring.send(ev(n));
            assert_eq!(ring.try_recv(&mut fast), Ok(ev(n)));
        }
        // The slow receiver has read nothing: all is held for it.
        assert_eq!(ring.footprint().0, 1000);
        assert_eq!(ring.drain(&mut slow, 600, |_| true), Ok(600));
        ring.send(ev(1000));
        assert_eq!(ring.try_recv(&mut fast), Ok(ev(1000)));
        for n in 1001..1024 {
            ring.send(ev(n));
        }
        // At the next look (every 64 sends) what both have read is gone.
        assert_eq!(ring.footprint().0, 1024 - 600);
        assert_eq!(
            ring.try_recv(&mut slow),
            Ok(ev(600)),
            "nothing unread was lost"
        );
        // Once the slow one leaves and everything is read, the buffer itself goes.
        drop(slow);
        assert_eq!(ring.drain(&mut fast, 1000, |_| true), Ok(23));
        for n in 1024..1088 {
            ring.send(ev(n));
            assert_eq!(ring.try_recv(&mut fast), Ok(ev(n)));
        }
        // The look at send 1,088 found only that send unread.
        let (len, slots) = ring.footprint();
        assert_eq!(len, 1);
        assert!(slots < 16, "{slots} slots for one event");
    }

    #[test]
    fn every_receiver_reads_every_event_after_it_subscribed_in_order() {
        let ring = Ring::new(16, usize::MAX, unlimited());
        ring.send(ev(0));
        let mut a = ring.subscribe();
        ring.send(ev(1));
        let mut b = ring.subscribe();
        ring.send(ev(2));
        assert_eq!(ring.pending(&a), 2);
        assert_eq!(ring.try_recv(&mut a), Ok(ev(1)));
        assert_eq!(ring.try_recv(&mut a), Ok(ev(2)));
        assert_eq!(ring.try_recv(&mut a), Err(TryRecvError::Empty));
        assert_eq!(ring.try_recv(&mut b), Ok(ev(2)));
        assert_eq!(ring.try_recv(&mut b), Err(TryRecvError::Empty));
        assert_eq!(ring.pending(&b), 0);
    }

    #[test]
    fn a_receiver_that_falls_behind_is_told_how_much_it_lost_then_goes_on() {
        let ring = Ring::new(4, usize::MAX, unlimited());
        let mut slow = ring.subscribe();
        for n in 0..10 {
            ring.send(ev(n));
        }
        assert_eq!(ring.pending(&slow), 10);
        assert_eq!(ring.try_recv(&mut slow), Err(TryRecvError::Lagged(6)));
        for n in 6..10 {
            assert_eq!(ring.try_recv(&mut slow), Ok(ev(n)));
        }
        let mut slow2 = Cursor {
            next: 0,
            shared: Arc::default(),
        };
        assert_eq!(ring.drain(&mut slow2, 100, |_| true), Err(Lagged(6)));
        let mut got = Vec::new();
        assert_eq!(
            ring.drain(&mut slow2, 100, |e| {
                got.push(e.0);
                true
            }),
            Ok(4)
        );
        assert_eq!(got, [6, 7, 8, 9]);
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_but_keeps_the_newest() {
        let ring = Ring::new(100, 25, unlimited());
        let mut r = ring.subscribe();
        ring.send(Ev(0, 10));
        ring.send(Ev(1, 10));
        ring.send(Ev(2, 10));
        assert_eq!(ring.footprint().0, 2, "30 bytes > 25: the oldest goes");
        ring.send(Ev(3, 1000));
        assert_eq!(
            ring.footprint().0,
            1,
            "one event over the bound is still held"
        );
        assert_eq!(ring.try_recv(&mut r), Err(TryRecvError::Lagged(3)));
        assert_eq!(ring.try_recv(&mut r), Ok(Ev(3, 1000)));
    }

    #[test]
    fn drain_stops_at_max_and_when_told() {
        let ring = Ring::new(16, usize::MAX, unlimited());
        let mut r = ring.subscribe();
        for n in 0..10 {
            ring.send(ev(n));
        }
        let mut got = Vec::new();
        let took = ring.drain(&mut r, 3, |e| {
            got.push(e.0);
            true
        });
        assert_eq!(took, Ok(3));
        let took = ring.drain(&mut r, 100, |e| {
            got.push(e.0);
            e.0 < 5
        });
        assert_eq!(took, Ok(3), "stops after the event it was told to stop at");
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
        assert_eq!(ring.try_recv(&mut r), Ok(ev(6)));
        assert_eq!(ring.drain(&mut r, 100, |_| true), Ok(3));
        assert_eq!(ring.drain(&mut r, 100, |_| true), Ok(0));
    }

    #[tokio::test]
    async fn recv_waits_for_the_next_send() {
        let ring = Arc::new(Ring::new(16, usize::MAX, unlimited()));
        let mut r = ring.subscribe();
        let waiter = tokio::spawn({
            let ring = ring.clone();
            async move { ring.recv(&mut r).await }
        });
        tokio::task::yield_now().await;
        ring.send(ev(7));
        let got = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken by the send")
            .unwrap();
        assert_eq!(got, Ok(ev(7)));
    }

    /// Many senders and receivers on several threads: every receiver sees every event
    /// once, in the order they were sent, or is told exactly how many it lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_receivers_see_each_event_once_in_order() {
        const EVENTS: u64 = 20_000;
        let ring = Arc::new(Ring::new(64, usize::MAX, unlimited()));
        let order = Arc::new(std::sync::Mutex::new(0u64));
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let ring = ring.clone();
                let mut cursor = ring.subscribe();
                tokio::spawn(async move {
                    let (mut expected, mut seen, mut lost) = (0u64, 0u64, 0u64);
                    while expected < EVENTS {
                        match ring.recv(&mut cursor).await {
                            Ok(Ev(n, _)) => {
                                assert_eq!(n, expected, "in order, none twice");
                                expected += 1;
                                seen += 1;
                            }
                            Err(Lagged(n)) => {
                                expected += n;
                                lost += n;
                            }
                        }
                    }
                    (seen, lost)
                })
            })
            .collect();
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let (ring, order) = (ring.clone(), order.clone());
                tokio::spawn(async move {
                    for _ in 0..EVENTS / 2 {
                        {
                            // The room's lock: a number and its send in one step.
                            let mut next = order.lock().unwrap();
                            ring.send(ev(*next));
                            *next += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }
        for receiver in receivers {
            let (seen, lost) = tokio::time::timeout(Duration::from_secs(30), receiver)
                .await
                .expect("every receiver finishes")
                .unwrap();
            assert_eq!(seen + lost, EVENTS);
        }
    }
}

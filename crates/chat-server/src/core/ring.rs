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
//!
//! Beside its events a ring keeps the frames of its newest ones in one wire form, end to
//! end in one buffer of about 32 KiB ([`Ring::drain_frames`]): the first reader that
//! needs an event's frame appends it, and every reader then copies a run of frames with
//! one copy instead of one per event (a reader further behind reads event by event). The ring only keeps the bytes; what they are is the caller's (the core's
//! member, with its door's encoder). An event the caller says must be read on its own
//! (a `KICK`, which stops delivery to the one kicked) ends a run and is read with
//! [`Ring::drain`].

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
    /// The frames of some of `events`, appended by readers (under the read lock, hence
    /// the mutex; a send, which holds the write lock, reaches in without locking).
    frames: Mutex<Frames>,
}

/// The frames of a window of a ring's events, end to end: the events from position
/// `from` on, `ends[i]` being where the frame of the event at `from + i` ends. Offsets
/// are counted from the first byte ever appended, so that dropping the front of `bytes`
/// moves `base` and nothing else.
///
/// The window holds about [`FRAMES_WINDOW`] bytes: readers near the newest events (most
/// of them, in a busy room) find their frames there, and one further behind reads event
/// by event until it catches up. So the buffer stays under 64 KiB, below the size glibc
/// maps: a buffer that grew with everything a slow member had not read reached hundreds
/// of KiB by doubling, and with it the server held about 45 bytes more per connection in
/// the idle benchmark (a difference that went away with glibc's mapping threshold fixed,
/// so where the allocator placed such buffers, not what they held).
#[derive(Debug, Default)]
struct Frames {
    bytes: Vec<u8>,
    /// The offset of `bytes[0]`.
    base: usize,
    /// The position of the first event framed.
    from: u64,
    /// The offset where its frame begins.
    first: usize,
    ends: VecDeque<usize>,
    /// The positions of framed events to be read on their own, oldest first (their
    /// frames are empty).
    alone: VecDeque<u64>,
}

/// Bytes of frames a ring's window holds before it drops the oldest (those before the
/// reader that is adding more); one frame may take it past.
const FRAMES_WINDOW: usize = 32 * 1024;

/// Bytes of dropped frames kept before `bytes` is compacted, unless they are more than
/// the frames still held.
const FRAMES_SLACK: usize = 4096;

impl Frames {
    /// The position after the last event framed.
    fn end(&self) -> u64 {
        self.from + self.ends.len() as u64
    }

    /// Bytes of the frames held.
    fn live(&self) -> usize {
        self.base + self.bytes.len() - self.first
    }

    /// The offset where the frame of the event at `position` begins (framed, or the next
    /// to be).
    fn start(&self, position: u64) -> usize {
        match usize::try_from(position - self.from).unwrap_or(usize::MAX) {
            0 => self.first,
            index => self.ends[index - 1],
        }
    }

    /// Forgets every frame; the next one pushed starts the window.
    fn clear(&mut self) {
        self.ends.clear();
        self.alone.clear();
        self.first = self.base + self.bytes.len();
        self.compact();
    }

    /// Appends the frame of the event at `position` (the window's end, or anywhere when
    /// the window is empty); `None` when it is to be read on its own.
    fn push(&mut self, frame: Option<&[u8]>, position: u64) {
        if self.ends.is_empty() {
            self.from = position;
        }
        debug_assert_eq!(position, self.end());
        let frame = frame.unwrap_or_else(|| {
            self.alone.push_back(position);
            &[]
        });
        // Reuse the room of dropped frames before growing.
        if self.bytes.len() + frame.len() > self.bytes.capacity() && self.first > self.base {
            self.bytes.drain(..self.first - self.base);
            self.base = self.first;
        }
        self.bytes.extend_from_slice(frame);
        self.ends.push_back(self.base + self.bytes.len());
    }

    /// Drops the oldest frame.
    fn pop(&mut self) {
        let Some(end) = self.ends.pop_front() else {
            return;
        };
        if self.alone.front() == Some(&self.from) {
            self.alone.pop_front();
        }
        self.from += 1;
        self.first = end;
        self.compact();
    }

    /// Gives back the room of dropped frames once it is worth a copy, and the buffer of
    /// a window that has emptied out (amortised, as the events' deque).
    fn compact(&mut self) {
        let dead = self.first - self.base;
        let live = self.bytes.len() - dead;
        if live == 0 {
            self.bytes.clear();
            self.base = self.first;
        } else if dead > FRAMES_SLACK && dead >= live {
            self.bytes.drain(..dead);
            self.base = self.first;
        }
        let slots = self.bytes.capacity();
        if slots > FRAMES_SLACK && self.bytes.len() * 4 < slots {
            self.bytes.shrink_to(self.bytes.len() * 2);
        }
    }

    /// The events before `head` were dropped: so are their frames.
    fn dropped(&mut self, head: u64) {
        while self.from < head && !self.ends.is_empty() {
            self.pop();
        }
    }
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
                frames: Mutex::default(),
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
            let head = held.head;
            held.frames
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .dropped(head);
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

    /// Copies the frames of the events ready for `cursor` to `take` at once, with how many
    /// events they are and the last of them: at most `max` events, and no more once the
    /// frames copied reach `room` bytes (the frame that reaches it is still copied, as
    /// [`Ring::drain`] stops after the event it is told to). Events not yet framed are
    /// framed first by `frame`: the event's bytes, or `None` for one to be read on its
    /// own, which ends the run.
    ///
    /// `Ok(Some(n))`: `n` events were copied (0: none was ready). `Ok(None)`: read the
    /// next events with [`Ring::drain`] instead: the next is to be read on its own, or the
    /// cursor is behind the window of frames the ring keeps.
    pub(crate) fn drain_frames<F>(
        &self,
        cursor: &mut Cursor,
        max: usize,
        room: usize,
        mut frame: F,
        take: impl FnOnce(&[u8], usize, &T),
    ) -> Result<Option<usize>, Lagged>
    where
        F: for<'e> FnMut(&'e T) -> Option<&'e [u8]>,
    {
        if self.pending(cursor) == 0 {
            return Ok(Some(0));
        }
        let held = self.read();
        if cursor.next < held.head {
            let lost = held.head - cursor.next;
            cursor.advance(held.head);
            return Err(Lagged(lost));
        }
        let at = cursor.next;
        let ready = held.events.len() as u64 - (at - held.head);
        let ready = ready.min(max as u64);
        if ready == 0 {
            return Ok(Some(0));
        }
        let mut frames = held
            .frames
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !frames.ends.is_empty() {
            if at < frames.from {
                return Ok(None);
            }
            if at > frames.end() {
                // Ahead of every frame: those are for readers behind, which read event by
                // event meanwhile; the window moves here.
                frames.clear();
            }
        }
        // Room for this reader's frames: the oldest go, up to its own.
        while frames.live() >= FRAMES_WINDOW && frames.from < at && !frames.ends.is_empty() {
            frames.pop();
        }
        let mut next = if frames.ends.is_empty() {
            at
        } else {
            frames.end()
        };
        while next < at + ready && (next == at || frames.live() < FRAMES_WINDOW) {
            let index = usize::try_from(next - held.head).unwrap_or(usize::MAX);
            frames.push(frame(&held.events[index]), next);
            next += 1;
        }
        let framed = frames.end().min(at + ready) - at;
        // The run ends before the next event to be read on its own,
        let alone = frames.alone.partition_point(|&p| p < at);
        let run = frames
            .alone
            .get(alone)
            .map_or(framed, |&p| (p - at).min(framed));
        if run == 0 {
            return Ok(None);
        }
        // and after the frame that reaches `room` bytes.
        let from = frames.start(at);
        let index = usize::try_from(at - frames.from).unwrap_or(usize::MAX);
        let under = frames
            .ends
            .partition_point(|&end| end.saturating_sub(from) < room);
        let run = usize::try_from(run).unwrap_or(usize::MAX);
        let taken = run.min(under.saturating_sub(index) + 1);
        let to = frames.ends[index + taken - 1];
        let last = usize::try_from(at - held.head).unwrap_or(usize::MAX) + taken - 1;
        take(
            &frames.bytes[from - frames.base..to - frames.base],
            taken,
            &held.events[last],
        );
        cursor.advance(at + taken as u64);
        Ok(Some(taken))
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

    /// Bytes of frames held now (dropped ones included until compacted) and allocated.
    #[cfg(test)]
    fn frames_footprint(&self) -> (usize, usize) {
        let held = self.read();
        let frames = held.frames.lock().unwrap();
        (frames.bytes.len(), frames.bytes.capacity())
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

    /// A line with its frame; one starting with `!` is to be read on its own.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Line(Vec<u8>);

    impl Weigh for Line {
        fn weight(&self) -> usize {
            self.0.len()
        }
    }

    fn line(n: u64) -> Line {
        Line(format!("line {n:04}\n").into_bytes())
    }

    /// Drains `cursor` with `drain_frames`, counting the frames made in `framed`; returns
    /// the copied bytes as text and how many events they were (`None`: read event by
    /// event).
    fn frames_for(
        ring: &Ring<Line>,
        cursor: &mut Cursor,
        max: usize,
        room: usize,
        framed: &mut usize,
    ) -> Result<Option<(String, usize)>, Lagged> {
        let mut got = (String::new(), 0);
        let taken = ring.drain_frames(
            cursor,
            max,
            room,
            |line| {
                *framed += 1;
                (!line.0.starts_with(b"!")).then_some(&line.0[..])
            },
            |bytes, events, last| {
                assert!(bytes.ends_with(&last.0), "the last event is the last frame");
                got = (String::from_utf8(bytes.to_vec()).unwrap(), events);
            },
        )?;
        assert_eq!(taken.unwrap_or(0), got.1);
        Ok(taken.map(|_| got))
    }

    /// `Ok(Some(…))` of `text` and `events`, as `frames_for` gives it.
    fn run(text: &str, events: usize) -> Result<Option<(String, usize)>, Lagged> {
        Ok(Some((text.to_owned(), events)))
    }

    #[test]
    fn frames_are_made_once_and_copied_a_run_at_once() {
        let ring = Ring::new(100, usize::MAX, unlimited());
        let (mut a, mut b) = (ring.subscribe(), ring.subscribe());
        for n in 0..5 {
            ring.send(line(n));
        }
        let mut framed = 0;
        let all = "line 0000\nline 0001\nline 0002\nline 0003\nline 0004\n";
        let got = frames_for(&ring, &mut a, 100, usize::MAX, &mut framed);
        assert_eq!(got, run(all, 5));
        assert_eq!(framed, 5);
        // The second reader copies the same run; nothing is framed again.
        let got = frames_for(&ring, &mut b, 100, usize::MAX, &mut framed);
        assert_eq!(got, run(all, 5));
        assert_eq!(framed, 5);
        assert_eq!(ring.pending(&a), 0);
        assert_eq!(
            frames_for(&ring, &mut a, 100, usize::MAX, &mut framed),
            run("", 0)
        );
        // A later reader starts where it subscribed; only the new event is framed.
        let mut c = ring.subscribe();
        ring.send(line(5));
        let got = frames_for(&ring, &mut c, 100, usize::MAX, &mut framed);
        assert_eq!(got, run("line 0005\n", 1));
        assert_eq!(framed, 6);
    }

    #[test]
    fn a_run_stops_at_max_after_the_frame_that_fills_the_room_and_before_one_read_alone() {
        let ring = Ring::new(100, usize::MAX, unlimited());
        let mut r = ring.subscribe();
        for n in 0..6 {
            ring.send(line(n));
        }
        ring.send(Line(b"!kick\n".to_vec()));
        ring.send(line(7));
        let mut framed = 0;
        let got = frames_for(&ring, &mut r, 2, usize::MAX, &mut framed);
        assert_eq!(got, run("line 0000\nline 0001\n", 2));
        // Frames are 10 bytes: the third reaches 25, and is the last copied, as `drain`
        // stops after the event that reaches its limit.
        let got = frames_for(&ring, &mut r, 100, 25, &mut framed);
        assert_eq!(got, run("line 0002\nline 0003\nline 0004\n", 3));
        let got = frames_for(&ring, &mut r, 100, usize::MAX, &mut framed);
        assert_eq!(got, run("line 0005\n", 1), "stops before the one alone");
        assert_eq!(
            frames_for(&ring, &mut r, 100, usize::MAX, &mut framed),
            Ok(None),
            "the next is read on its own"
        );
        assert_eq!(ring.pending(&r), 2);
        let mut alone = Vec::new();
        assert_eq!(
            ring.drain(&mut r, 1, |e| {
                alone.push(e.clone());
                true
            }),
            Ok(1)
        );
        assert_eq!(alone, [Line(b"!kick\n".to_vec())]);
        let got = frames_for(&ring, &mut r, 100, usize::MAX, &mut framed);
        assert_eq!(got, run("line 0007\n", 1));
        assert_eq!(framed, 8, "each event framed once");
    }

    #[test]
    fn frames_of_events_dropped_unread_are_lagged_over() {
        let ring = Ring::new(4, usize::MAX, unlimited());
        let mut slow = ring.subscribe();
        let mut framed = 0;
        for n in 0..3 {
            ring.send(line(n));
        }
        // Framed, then dropped with their events.
        let mut fast = ring.subscribe();
        let mut behind = Cursor {
            next: 0,
            shared: Arc::default(),
        };
        assert_eq!(
            frames_for(&ring, &mut behind, 100, usize::MAX, &mut framed).map(|g| g.unwrap().1),
            Ok(3)
        );
        for n in 3..10 {
            ring.send(line(n));
        }
        assert_eq!(
            frames_for(&ring, &mut slow, 100, usize::MAX, &mut framed),
            Err(Lagged(6))
        );
        let got = frames_for(&ring, &mut slow, 100, usize::MAX, &mut framed);
        assert_eq!(got, run("line 0006\nline 0007\nline 0008\nline 0009\n", 4));
        assert_eq!(
            frames_for(&ring, &mut fast, 100, usize::MAX, &mut framed),
            Err(Lagged(3))
        );
        let got = frames_for(&ring, &mut fast, 100, usize::MAX, &mut framed);
        assert_eq!(got.map(|g| g.unwrap().1), Ok(4), "from the oldest held");
        assert_eq!(framed, 7, "the dropped events' frames are not made again");
    }

    #[test]
    fn the_frames_of_events_everyone_read_are_given_back() {
        let ring = Ring::new(100_000, usize::MAX, unlimited());
        let mut r = ring.subscribe();
        let mut framed = 0;
        for n in 0..10_000 {
            ring.send(line(n));
            let got = frames_for(&ring, &mut r, 100, usize::MAX, &mut framed);
            assert_eq!(got, run(&format!("line {n:04}\n"), 1));
        }
        // What is read is dropped every 64 sends, and the buffer compacted past a slack:
        // it never holds more than a few pages of the 100,000 bytes sent.
        let (bytes, slots) = ring.frames_footprint();
        assert!(bytes <= 2 * FRAMES_SLACK + 64 * 10, "{bytes} bytes held");
        assert!(slots <= 4 * FRAMES_SLACK, "{slots} bytes allocated");
        // At the next look (send 10,048) every framed event has been read: no frame is
        // held (the event just sent is not framed until someone reads it).
        for n in 10_000..10_047 {
            ring.send(line(n));
            let got = frames_for(&ring, &mut r, 100, usize::MAX, &mut framed);
            assert_eq!(got.map(|g| g.unwrap().1), Ok(1));
        }
        assert!(ring.frames_footprint().0 > 0);
        ring.send(line(10_047));
        assert_eq!(ring.frames_footprint().0, 0);
        assert_eq!(framed, 10_047);
    }

    #[test]
    fn the_window_of_frames_is_bounded_and_a_reader_outside_it_reads_event_by_event() {
        let ring = Ring::new(100_000, usize::MAX, unlimited());
        let (mut fast, mut slow) = (ring.subscribe(), ring.subscribe());
        let mut framed = 0;
        // 100-byte frames: the fast reader reads 1,000 of them as they come, the slow one
        // none (so the ring holds them all).
        let long = |n: u64| Line(format!("{n:099}\n").into_bytes());
        for n in 0..1000 {
            ring.send(long(n));
            let got = frames_for(&ring, &mut fast, 100, usize::MAX, &mut framed);
            assert_eq!(got.map(|g| g.unwrap().1), Ok(1));
        }
        assert_eq!(ring.footprint().0, 1000);
        // The window kept the newest frames, about FRAMES_WINDOW bytes of them, in a
        // buffer of two windows at most: under the 128 KiB from which glibc maps memory.
        let (bytes, slots) = ring.frames_footprint();
        assert!(bytes <= 2 * FRAMES_WINDOW + 100, "{bytes} bytes");
        assert!(slots <= 2 * FRAMES_WINDOW, "{slots} bytes allocated");
        // The slow reader is behind it: event by event, then runs once it catches up.
        let (mut one_by_one, mut in_runs) = (0, 0);
        loop {
            match frames_for(&ring, &mut slow, 100, usize::MAX, &mut framed) {
                Ok(None) => {
                    assert_eq!(in_runs, 0, "no going back once in the window");
                    let mut next = Vec::new();
                    let took = ring.drain(&mut slow, 100, |line| {
                        next.push(line.clone());
                        true
                    });
                    assert_eq!(next.first(), Some(&long(one_by_one)), "in order");
                    one_by_one += took.unwrap() as u64;
                }
                Ok(Some((_, 0))) => break,
                Ok(Some((text, events))) => {
                    assert!(text.starts_with(&format!("{:099}\n", one_by_one + in_runs)));
                    in_runs += events as u64;
                }
                Err(lagged) => panic!("{lagged:?}"),
            }
        }
        assert!(one_by_one > 0 && in_runs > 0, "{one_by_one} one by one");
        assert_eq!(one_by_one + in_runs, 1000);
        assert_eq!(framed, 1000, "each framed once");
        // A reader ahead of every frame moves the window there; the others then read
        // event by event until they reach it.
        let mut late = ring.subscribe();
        ring.send(long(1000));
        ring.send(long(1001));
        assert_eq!(
            frames_for(&ring, &mut late, 100, 100, &mut framed).map(|g| g.unwrap().1),
            Ok(1)
        );
        let mut other = Cursor {
            next: 1000,
            shared: Arc::default(),
        };
        assert_eq!(
            frames_for(&ring, &mut other, 100, usize::MAX, &mut framed).map(|g| g.unwrap().1),
            Ok(2),
            "at the window's start: a run"
        );
        ring.send(long(1002));
        assert_eq!(
            frames_for(&ring, &mut late, 100, usize::MAX, &mut framed),
            run(&format!("{:099}\n{:099}\n", 1001, 1002), 2)
        );
        assert_eq!(framed, 1003);
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

//! A session's queue of private messages: bounded, and allocated only while it holds
//! something.
//!
//! `tokio::sync::mpsc` allocates its first block of slots (about 1 KiB for `Bytes`) when
//! the channel is made, for every connection, though most people never receive a
//! private message. This queue is a `VecDeque` under a mutex, empty and unallocated
//! until a message arrives, with a `Notify` to wake the session.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

struct Shared {
    state: Mutex<State>,
    /// Messages queued, readable without the lock: the session checks its mailbox for
    /// every event it delivers, and almost always finds it empty.
    queued: AtomicUsize,
    /// `notify_one` per message: a wake-up is kept as a permit if the session is busy.
    arrived: Notify,
    capacity: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Bytes>,
    /// The session is gone.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The queue holds its capacity.
    Full,
    /// The session has ended.
    Closed,
}

/// The hub's handle for sending to a session.
#[derive(Clone)]
pub(crate) struct MailboxSender(Arc<Shared>);

/// The session's end.
pub(crate) struct Mailbox(Arc<Shared>);

/// A queue holding at most `capacity` messages.
pub(crate) fn mailbox(capacity: usize) -> (MailboxSender, Mailbox) {
    let shared = Arc::new(Shared {
        state: Mutex::default(),
        queued: AtomicUsize::new(0),
        arrived: Notify::new(),
        capacity: capacity.max(1),
    });
    (MailboxSender(shared.clone()), Mailbox(shared))
}

impl MailboxSender {
    /// Queues `bytes` without waiting.
    pub(crate) fn try_send(&self, bytes: Bytes) -> Result<(), SendError> {
        let mut state = self.0.lock();
        if state.closed {
            return Err(SendError::Closed);
        }
        if state.queue.len() >= self.0.capacity {
            return Err(SendError::Full);
        }
        state.queue.push_back(bytes);
        self.0.queued.store(state.queue.len(), Ordering::Release);
        drop(state);
        self.0.arrived.notify_one();
        Ok(())
    }
}

impl Mailbox {
    /// The oldest message, if any; the queue's memory is given back once it is empty.
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        if self.0.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut state = self.0.lock();
        let bytes = state.queue.pop_front();
        self.0.queued.store(state.queue.len(), Ordering::Release);
        if state.queue.is_empty() && state.queue.capacity() > 0 {
            state.queue = VecDeque::new();
        }
        bytes
    }

    /// Waits for the next message. Cancel-safe: a wake-up taken by a dropped wait is
    /// passed on by `Notify`, and the queue itself is the source of truth.
    pub(crate) async fn recv(&mut self) -> Bytes {
        loop {
            if let Some(bytes) = self.try_recv() {
                return bytes;
            }
            self.0.arrived.notified().await;
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.closed = true;
        state.queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn bounded_in_order_and_closed_with_the_session() {
        let (tx, mut rx) = mailbox(2);
        assert_eq!(tx.try_send(Bytes::from_static(b"a")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"b")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"c")), Err(SendError::Full));
        assert_eq!(rx.recv().await, "a");
        assert_eq!(rx.try_recv().as_deref(), Some(&b"b"[..]));
        assert_eq!(rx.try_recv(), None);
        assert!(rx.recv().now_or_never().is_none(), "waits when empty");
        drop(rx);
        assert_eq!(
            tx.try_send(Bytes::from_static(b"d")),
            Err(SendError::Closed)
        );
    }

    #[tokio::test]
    async fn a_waiting_session_is_woken() {
        let (tx, mut rx) = mailbox(4);
        let waiter = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.try_send(Bytes::from_static(b"hello")).unwrap();
        assert_eq!(waiter.await.unwrap(), "hello");
    }
}

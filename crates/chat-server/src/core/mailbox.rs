//! A session's queue of private messages (events): bounded, and allocated only while it holds
//! something. It also carries the server's shutdown notice to the session.
//!
//! `tokio::sync::mpsc` allocates its first block of slots (about 1 KiB for `Bytes`) when
//! the channel is made, for every connection, though most people never receive a
//! private message. This queue is a `VecDeque` under a mutex, empty and unallocated
//! until a message arrives, with an `AtomicWaker` to wake the session: polled directly,
//! it needs no waiting future inside every idle session.

use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Messages queued, readable without the lock: the session checks its mailbox for
    /// every event it delivers, and almost always finds it empty.
    queued: AtomicUsize,
    /// The session's waker, woken per message and by the shutdown notice.
    waker: AtomicWaker,
    capacity: usize,
}

struct State<T> {
    queue: VecDeque<T>,
    /// The session is gone.
    closed: bool,
    /// The server is shutting down: the session should say goodbye.
    shutting_down: bool,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        State {
            queue: VecDeque::new(),
            closed: false,
            shutting_down: false,
        }
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        super::lock(&self.state)
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
pub(crate) struct MailboxSender<T>(Arc<Shared<T>>);

impl<T> Clone for MailboxSender<T> {
    fn clone(&self) -> Self {
        MailboxSender(self.0.clone())
    }
}

/// The session's end.
pub(crate) struct Mailbox<T>(Arc<Shared<T>>);

/// A queue holding at most `capacity` messages.
pub(crate) fn mailbox<T>(capacity: usize) -> (MailboxSender<T>, Mailbox<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::default(),
        queued: AtomicUsize::new(0),
        waker: AtomicWaker::new(),
        capacity: capacity.max(1),
    });
    (MailboxSender(shared.clone()), Mailbox(shared))
}

impl<T> MailboxSender<T> {
    /// Queues `item` without waiting.
    pub(crate) fn try_send(&self, item: T) -> Result<(), SendError> {
        let mut state = self.0.lock();
        if state.closed {
            return Err(SendError::Closed);
        }
        if state.queue.len() >= self.0.capacity {
            return Err(SendError::Full);
        }
        state.queue.push_back(item);
        let pending = state.queue.len() + usize::from(state.shutting_down);
        self.0.queued.store(pending, Ordering::Release);
        drop(state);
        self.0.waker.wake();
        Ok(())
    }

    /// Tells the session that the server is shutting down (see [`Mailbox::poll_recv`]).
    pub(crate) fn shut_down(&self) {
        let mut state = self.0.lock();
        if !state.shutting_down {
            state.shutting_down = true;
            self.0
                .queued
                .store(state.queue.len() + 1, Ordering::Release);
        }
        drop(state);
        self.0.waker.wake();
    }
}

impl<T> Mailbox<T> {
    /// The oldest message, if any; the queue's memory is given back once it is empty.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        if self.0.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut state = self.0.lock();
        let bytes = state.queue.pop_front();
        // The shutdown notice counts as one pending item, so that it is never missed by
        // the lock-free check above.
        let pending = state.queue.len() + usize::from(state.shutting_down);
        self.0.queued.store(pending, Ordering::Release);
        if state.queue.is_empty() && state.queue.capacity() > 0 {
            state.queue = VecDeque::new();
        }
        bytes
    }

    /// The next message; `Ready(None)` once the server is shutting down (after the
    /// messages queued before that). Registers the waker first, so a message that
    /// arrives between the check and the return wakes the task.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.waker.register(cx.waker());
        if let Some(bytes) = self.try_recv() {
            return Poll::Ready(Some(bytes));
        }
        if self.0.queued.load(Ordering::Acquire) > 0 && self.0.lock().shutting_down {
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// Waits for [`Mailbox::poll_recv`].
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<T> Drop for Mailbox<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.closed = true;
        state.queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::FutureExt;

    #[tokio::test]
    async fn bounded_in_order_and_closed_with_the_session() {
        let (tx, mut rx) = mailbox(2);
        assert_eq!(tx.try_send(Bytes::from_static(b"a")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"b")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"c")), Err(SendError::Full));
        assert_eq!(rx.recv().await.as_deref(), Some(&b"a"[..]));
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
        let (tx, mut rx) = mailbox::<Bytes>(4);
        let waiter = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.try_send(Bytes::from_static(b"hello")).unwrap();
        assert_eq!(waiter.await.unwrap().as_deref(), Some(&b"hello"[..]));
    }

    #[tokio::test]
    async fn shutdown_comes_after_what_was_queued_and_wakes_a_waiting_session() {
        let (tx, mut rx) = mailbox(4);
        tx.try_send(Bytes::from_static(b"last words")).unwrap();
        tx.shut_down();
        assert_eq!(rx.recv().await.as_deref(), Some(&b"last words"[..]));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.recv().await, None, "and stays shut down");

        let (tx, mut rx) = mailbox::<Bytes>(4);
        let waiter = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.shut_down();
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert_eq!(woken.expect("woken").unwrap(), None);
    }
}

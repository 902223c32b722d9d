//! A node's copy of the log in its SQLite store (issue 16): every room and private event
//! of the stream, in the stream's order, under its sequence as its id, so that history
//! and paging answer from the local store as on a single server. A node that restarts
//! catches up from the sequence after the largest it kept ([`Opened::next_id`]): what it
//! had not committed is read again, and nothing is kept twice (an id is the store's
//! primary key, and the copy only goes forward).
//!
//! The applier of a later slice does this as one of its steps; here the copy stands
//! alone, so that it can be tested on its own against a real `nats-server`.
//!
//! [`Opened::next_id`]: crate::core::store::Opened::next_id

// Until the server runs it (issue 16's next slice); the expectation fails the build once
// it does, so that this line goes with it.
#![cfg_attr(
    not(test),
    expect(dead_code, reason = "the server copies the log from the next slice on")
)]

use super::{Cluster, ClusterError};
use crate::core::event::Scope;
use crate::core::logged;
use crate::core::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long the copy waits for the store's writer when its queue is full, before
/// trying again.
const STORE_FULL_PAUSE: Duration = Duration::from_millis(10);

/// How long the copy waits before opening a reader that ended or failed again.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);

/// Copies the log into `store` from sequence `from` on, for as long as it runs; `copied`
/// is told the sequence of each entry taken (kept or skipped). When the reader ends or
/// fails, or the node reconnects to NATS (the reader's consumer may have gone with the
/// server), it is opened again from the entry after the last taken. Returns only when
/// the log cannot be opened within `within`.
pub(crate) async fn copy_log(
    cluster: &Cluster,
    store: &Store,
    from: u64,
    within: Duration,
    copied: &watch::Sender<u64>,
) -> Result<(), ClusterError> {
    let mut next = from.max(1);
    let mut connections = cluster.connections();
    loop {
        connections.borrow_and_update();
        let mut tail = cluster.tail(next, within).await?;
        loop {
            let entry = tokio::select! {
                biased;
                entry = tail.next() => entry,
                // Back after a loss: the reader's consumer may have gone with the server.
                _ = connections.changed() => break,
            };
            let entry = match entry {
                Some(Ok(entry)) => entry,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, next, "reading the cluster's log; opening it again");
                    break;
                }
                None => break,
            };
            // An ordered reader never goes back; a reopened one starts at `next`.
            if entry.sequence < next {
                continue;
            }
            keep(store, &entry).await;
            next = entry.sequence + 1;
            copied.send_replace(entry.sequence);
        }
        tokio::time::sleep(REOPEN_PAUSE).await;
    }
}

/// Keeps one entry of the log in `store`, if it is a room's or a private event.
async fn keep(store: &Store, entry: &super::Entry) {
    match logged::decode(entry.sequence, &entry.payload) {
        Ok(event) if matches!(event.scope, Scope::Room(_) | Scope::Private { .. }) => {
            let event = Arc::new(event);
            // The writer's queue is bounded: wait for it rather than drop an event.
            while store.append(event.clone()).is_err() {
                tokio::time::sleep(STORE_FULL_PAUSE).await;
            }
        }
        // Operators' notices and the like are not history.
        Ok(_) => {}
        Err(e) => tracing::warn!(
            sequence = entry.sequence,
            subject = entry.subject,
            error = %e,
            "an event of the cluster's log cannot be read; skipped"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{Event, Kind, RoomName, Source};
    use crate::core::store::{Location, Query, StoreOptions, open};
    use chat_proto::name::{Nick, Room};

    use super::super::test_nats as nats;

    const WITHIN: Duration = Duration::from_secs(10);
    const WAIT: Duration = Duration::from_secs(10);

    fn said(room: &str, nick: &str, text: &str) -> Event {
        Event::new(
            0,
            jiff::Timestamp::now(),
            0,
            Scope::Room(RoomName::new(Room::new(room).unwrap())),
            Arc::new(Source::named(Nick::new(nick).unwrap(), None)),
            Kind::Message { text: text.into() },
        )
    }

    /// Appends `event` to the log under its room's subject; its sequence.
    async fn append(cluster: &Cluster, event: &Event, id: &str) -> u64 {
        let Scope::Room(room) = &event.scope else {
            unreachable!()
        };
        let subject = super::super::names::room_subject(&room.name);
        cluster
            .append(&subject, id, logged::encode(event, None).into(), WITHIN)
            .await
            .unwrap()
    }

    /// alice's `m<n>` in `#rust`, with id `a.1.<n>`: its sequence and text.
    async fn alice_says(cluster: &Cluster, n: u32) -> (u64, String) {
        let text = format!("m{n}");
        let sequence = append(cluster, &said("#rust", "alice", &text), &format!("a.1.{n}")).await;
        (sequence, text)
    }

    /// Waits until the copy has taken sequence `until`.
    async fn copied_up_to(seen: &mut watch::Receiver<u64>, until: u64) {
        tokio::time::timeout(WAIT, seen.wait_for(|&s| s >= until))
            .await
            .expect("copied in time")
            .unwrap();
    }

    /// The ids and texts of `room`'s history in `store`.
    async fn history(store: &Store, room: &str) -> Vec<(u64, String)> {
        let query = Query::History {
            room: room.into(),
            before: u64::MAX,
            limit: 100,
        };
        let events = store.query(query).unwrap().await.unwrap().unwrap();
        events
            .iter()
            .map(|e| match &e.kind {
                Kind::Message { text } => (e.id, text.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// Runs the copy into `store` from `from` until it has taken sequence `until`, then
    /// stops it and waits until the store has committed what it took.
    async fn copy_until(cluster: &Cluster, store: &Store, from: u64, until: u64) {
        let (copied, mut seen) = watch::channel(0);
        let copying = {
            let (cluster, store) = (cluster.clone(), store.clone());
            tokio::spawn(async move { copy_log(&cluster, &store, from, WITHIN, &copied).await })
        };
        copied_up_to(&mut seen, until).await;
        copying.abort();
        store.flush().unwrap().await.unwrap();
    }

    #[tokio::test]
    async fn the_copy_keeps_the_log_under_its_sequences_and_catches_up_after_a_restart() {
        let server = nats::NatsServer::start();
        let cluster = Cluster::connect(&[server.url()], "node-a").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let location = Location::File(dir.path().join("chat.db"));
        let mut expected = Vec::new();
        for n in 0..3 {
            expected.push(alice_says(&cluster, n).await);
        }
        let other = append(&cluster, &said("#go", "bob", "elsewhere"), "a.1.3").await;

        // A node that starts with an empty store copies everything, under the log's
        // sequences.
        {
            let opened = open(&location, StoreOptions::default()).unwrap();
            assert_eq!(opened.next_id, 1);
            copy_until(&cluster, &opened.store, opened.next_id, other).await;
            assert_eq!(history(&opened.store, "#rust").await, expected);
            assert_eq!(
                history(&opened.store, "#go").await,
                [(other, "elsewhere".to_owned())]
            );
        }
        // While it is down, the room goes on.
        for n in 4..6 {
            expected.push(alice_says(&cluster, n).await);
        }
        // Restarted, it catches up from after the last it kept: nothing twice, nothing
        // missing.
        let opened = open(&location, StoreOptions::default()).unwrap();
        assert_eq!(opened.next_id, other + 1);
        let last = expected.last().unwrap().0;
        copy_until(&cluster, &opened.store, opened.next_id, last).await;
        assert_eq!(history(&opened.store, "#rust").await, expected);
    }

    #[tokio::test]
    async fn the_copy_carries_on_across_a_nats_restart() {
        let mut server = nats::NatsServer::start();
        let cluster = Cluster::connect(&[server.url()], "node-a").await.unwrap();
        let opened = open(&Location::Memory, StoreOptions::default()).unwrap();
        let store = opened.store.clone();
        let (copied, mut seen) = watch::channel(0);
        let copying = {
            let (cluster, store) = (cluster.clone(), store.clone());
            tokio::spawn(async move { copy_log(&cluster, &store, 1, WITHIN, &copied).await })
        };
        let mut expected = Vec::new();
        let first = append(&cluster, &said("#rust", "alice", "before"), "a.1.0").await;
        expected.push((first, "before".to_owned()));
        copied_up_to(&mut seen, first).await;
        // NATS goes away and comes back (same port, same store): the copy's reader
        // recreates itself and goes on from where it was.
        server.stop();
        server.restart();
        let after = append(&cluster, &said("#rust", "alice", "after"), "a.1.1").await;
        expected.push((after, "after".to_owned()));
        copied_up_to(&mut seen, after).await;
        copying.abort();
        store.flush().unwrap().await.unwrap();
        assert_eq!(history(&store, "#rust").await, expected);
    }
}

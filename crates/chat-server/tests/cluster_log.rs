//! The cluster's log against a real `nats-server`: appends from two nodes read back in
//! one order by every reader, a retried append stored once, and an append that gives up
//! while NATS is away, then the log carrying on, with nothing acknowledged lost, once it
//! is back.

mod common;

use bytes::Bytes;
use chat_server::cluster::{Cluster, Entry, Options, Tail};
use common::WAIT;
use common::nats::{NatsCluster, NatsServer};
use std::time::Duration;

/// How long an append may try before it gives up, in these tests.
const WITHIN: Duration = Duration::from_secs(10);

/// Appends `"<word> <n>"` for each `n` to `#general` as node a (ids `a.1.<n>`); each
/// one's sequence and payload, once acknowledged.
async fn append_all(node: &Cluster, ns: std::ops::Range<u32>, word: &str) -> Vec<(u64, Bytes)> {
    let mut acknowledged = Vec::new();
    for n in ns {
        let payload = Bytes::from(format!("{word} {n}"));
        let id = format!("a.1.{n}");
        let sequence = node
            .append("chat.room.general", &id, payload.clone(), WITHIN)
            .await
            .unwrap();
        acknowledged.push((sequence, payload));
    }
    acknowledged
}

/// The next `n` entries of `tail`, each within [`WAIT`].
/// Reads the whole log from its start: exactly the `acknowledged` entries (sequence,
/// payload), in order.
async fn log_holds(node: &Cluster, acknowledged: &[(u64, Bytes)]) {
    let mut tail = node.tail(1, WITHIN).await.unwrap();
    let read_back: Vec<(u64, Bytes)> = read(&mut tail, acknowledged.len())
        .await
        .into_iter()
        .map(|e| (e.sequence, e.payload))
        .collect();
    assert_eq!(
        read_back, acknowledged,
        "every acknowledged event, in order"
    );
}

async fn read(tail: &mut Tail, n: usize) -> Vec<Entry> {
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let entry = tokio::time::timeout(WAIT, tail.next())
            .await
            .expect("an entry in time")
            .expect("the log goes on")
            .expect("the log reads");
        entries.push(entry);
    }
    entries
}

#[tokio::test]
async fn appends_from_two_nodes_are_read_in_one_order_by_every_reader() {
    let nats = NatsServer::start();
    let a = Cluster::connect(&[nats.url()], "node-a").await.unwrap();
    let b = Cluster::connect(&[nats.url()], "node-b").await.unwrap();
    let c = Cluster::connect(&[nats.url()], "node-c").await.unwrap();
    // Both nodes append to one room at once, 50 events each.
    let append = |node: Cluster, name: &'static str| async move {
        let mut sequences = Vec::new();
        for n in 0..50 {
            let payload = Bytes::from(format!("{name} {n}"));
            let id = format!("{name}.1.{n}");
            sequences.push(
                node.append("chat.room.general", &id, payload, WITHIN)
                    .await
                    .unwrap(),
            );
        }
        sequences
    };
    let (from_a, from_b) = tokio::join!(append(a.clone(), "a"), append(b.clone(), "b"));
    // Each node's own appends rise in the order it made them.
    assert!(from_a.windows(2).all(|w| w[0] < w[1]), "{from_a:?}");
    assert!(from_b.windows(2).all(|w| w[0] < w[1]), "{from_b:?}");

    // Every reader, on any node, reads the same 100 entries in the same order: the
    // sequences 1 to 100, each node's events in its own order among them.
    let mut orders = Vec::new();
    for node in [&a, &b, &c] {
        let mut tail = node.tail(1, WITHIN).await.unwrap();
        orders.push(read(&mut tail, 100).await);
    }
    let sequences: Vec<u64> = orders[0].iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=100).collect::<Vec<u64>>());
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[0], orders[2]);
    for (name, appended) in [("a", &from_a), ("b", &from_b)] {
        let seen: Vec<u64> = orders[0]
            .iter()
            .filter(|e| e.payload.starts_with(name.as_bytes()))
            .map(|e| e.sequence)
            .collect();
        assert_eq!(
            &seen, appended,
            "{name}'s events at the sequences it was told"
        );
    }
    let entry = &orders[0][(from_a[7] - 1) as usize];
    assert_eq!(entry.payload, Bytes::from("a 7"));
    assert_eq!(entry.subject, "chat.room.general");

    // A reader may start anywhere.
    let mut late = c.tail(99, WITHIN).await.unwrap();
    let last = read(&mut late, 2).await;
    assert_eq!(last, orders[0][98..]);
}

#[tokio::test]
async fn a_retried_append_is_stored_once() {
    let nats = NatsServer::start();
    let node = Cluster::connect(&[nats.url()], "node-a").await.unwrap();
    let first = node
        .append("chat.room.general", "a.1.0", Bytes::from("once"), WITHIN)
        .await
        .unwrap();
    // The same id again, as after an acknowledgement that was lost: the same sequence.
    let again = node
        .append("chat.room.general", "a.1.0", Bytes::from("once"), WITHIN)
        .await
        .unwrap();
    assert_eq!(first, again);
    let next = node
        .append("chat.room.general", "a.1.1", Bytes::from("next"), WITHIN)
        .await
        .unwrap();
    assert_eq!(next, first + 1);
    let mut tail = node.tail(1, WITHIN).await.unwrap();
    let entries = read(&mut tail, 2).await;
    assert_eq!(entries[0].payload, Bytes::from("once"));
    assert_eq!(entries[1].payload, Bytes::from("next"));
    assert_eq!(node.stream_info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn an_append_gives_up_while_nats_is_away_and_nothing_acknowledged_is_lost() {
    let mut nats = NatsServer::start();
    let node = Cluster::connect(&[nats.url()], "node-a").await.unwrap();
    let mut acknowledged = append_all(&node, 0..5, "before").await;
    nats.stop();
    // NATS is away: the append gives up within its bound, with a reason.
    let refused = node
        .append(
            "chat.room.general",
            "a.1.5",
            Bytes::from("while away"),
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.within, Duration::from_millis(500));
    assert!(!refused.reason.is_empty());
    // Back, on the same port and store: the client reconnects by itself, and the log
    // carries on after what it had acknowledged.
    nats.restart();
    acknowledged.extend(append_all(&node, 6..10, "after").await);
    log_holds(&node, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_nats_losing_its_stream_leader_loses_nothing_acknowledged() {
    let mut nats = NatsCluster::start(3).await;
    let options = Options {
        replicas: 3,
        ..Options::default()
    };
    // The chat node knows every NATS node, and fails over between them.
    let node = Cluster::connect_with(&nats.urls(), "node-a", &options)
        .await
        .unwrap();
    let mut acknowledged = append_all(&node, 0..5, "before").await;
    // SIGKILL the stream's leader: JetStream elects another (publishes fail for a few
    // seconds meanwhile, CLUSTER.md), and the appends, retried, get through.
    let (leader, index) = common::stream_leader(&node).await;
    nats.kill(index);
    acknowledged.extend(append_all(&node, 5..10, "after").await);
    log_holds(&node, &acknowledged).await;
    let (new_leader, _) = common::stream_leader(&node).await;
    assert_ne!(new_leader, leader, "another NATS node leads the stream");
}

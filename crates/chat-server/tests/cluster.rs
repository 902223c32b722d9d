//! The cluster's groundwork against real `nats-server` processes (tests/common/nats.rs):
//! joining (the stream and buckets made once, clear errors when NATS is missing or has
//! no JetStream) and nickname claims raced by two nodes.

mod common;

use async_nats::jetstream::stream::{DiscardPolicy, StorageType};
use chat_proto::Nick;
use chat_server::cluster::{self, Claim, Cluster, ClusterError, Options, Owner, Release};
use common::nats::{NatsCluster, NatsServer};
use std::time::{Duration, Instant};

fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}

#[tokio::test]
async fn joining_makes_the_stream_and_the_buckets() {
    let nats = NatsServer::start();
    let node = Cluster::connect(&[nats.url()], "node-1").await.unwrap();
    assert_eq!(node.node(), "node-1");
    assert!(
        node.server_version().starts_with("2."),
        "{}",
        node.server_version()
    );

    let info = node.stream_info().await.unwrap();
    let config = &info.config;
    assert_eq!(config.name, cluster::STREAM);
    assert_eq!(config.subjects, ["chat.>"]);
    assert_eq!(config.storage, StorageType::File);
    assert_eq!(config.num_replicas, 1);
    assert!(config.allow_direct);
    assert_eq!(config.duplicate_window, Duration::from_secs(120));
    assert_eq!(config.discard, DiscardPolicy::New);
    assert_eq!(config.max_bytes, 1 << 30);
    assert_eq!(config.max_message_size, cluster::STREAM_MAX_MESSAGE);
    assert_eq!(info.state.messages, 0);

    let buckets = node.buckets().await.unwrap();
    let names: Vec<&str> = buckets.iter().map(|b| b.config.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "KV_chat_nicks",
            "KV_chat_nodes",
            "KV_chat_accounts",
            "KV_chat_rooms"
        ]
    );
    for bucket in &buckets {
        assert_eq!(bucket.config.max_messages_per_subject, 1, "history 1");
        assert_eq!(bucket.config.storage, StorageType::File);
        assert_eq!(bucket.config.discard, DiscardPolicy::New);
        assert!(bucket.config.max_bytes > 0, "bounded");
    }
}

#[tokio::test]
async fn joining_twice_is_idempotent() {
    let nats = NatsServer::start();
    let first = Cluster::connect(&[nats.url()], "node-1").await.unwrap();
    let won = first.claim(&nick("alice"), &Owner::new("node-1", 1)).await;
    assert!(matches!(won, Ok(Claim::Won { .. })), "{won:?}");
    // The same node again (a restart) and a second node: neither remakes anything.
    let again = Cluster::connect(&[nats.url()], "node-1").await.unwrap();
    let second = Cluster::connect(&[nats.url()], "node-2").await.unwrap();
    for node in [&first, &again, &second] {
        let info = node.stream_info().await.unwrap();
        assert_eq!(info.config.subjects, ["chat.>"]);
        assert_eq!(node.buckets().await.unwrap().len(), 4);
        let (holder, _) = node.holder(&nick("Alice")).await.unwrap().unwrap();
        assert_eq!(holder, Owner::new("node-1", 1), "the claim survived");
    }
}

#[tokio::test]
async fn nothing_listening_is_a_clear_error_within_the_timeout() {
    // A port that was free a moment ago; nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let options = Options {
        timeout: Duration::from_secs(3),
        ..Options::default()
    };
    let started = Instant::now();
    let error = Cluster::connect_with(std::slice::from_ref(&url), "node-1", &options)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, ClusterError::Unreachable { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&url) && text.contains("nats-server -js"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_urls_and_node_ids_are_refused() {
    let error = Cluster::connect(&[], "node-1").await.unwrap_err();
    assert!(matches!(error, ClusterError::NoUrl), "{error:?}");
    for id in ["", "a b", &"n".repeat(65)] {
        let error = Cluster::connect(&["nats://127.0.0.1:1".to_owned()], id)
            .await
            .unwrap_err();
        assert!(matches!(error, ClusterError::BadNodeId { .. }), "{error:?}");
    }
}

#[tokio::test]
async fn a_server_without_jetstream_is_named() {
    let nats = NatsServer::start_without_jetstream();
    let error = Cluster::connect(&[nats.url()], "node-1").await.unwrap_err();
    assert!(
        matches!(error, ClusterError::NoJetStream { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("-js"), "{error}");
}

/// Two nodes claim the same nickname at once, `rounds` times: exactly one wins each
/// time. The winner's release frees it and the loser then gets it (a create after a
/// delete); the winner's stale release changes nothing.
async fn race(a: &Cluster, b: &Cluster, rounds: u64) {
    for round in 0..rounds {
        // Some nicknames that need the encoding, and case-folding.
        let name = match round % 3 {
            0 => format!("Racer{round}"),
            1 => format!("[r]{round}^"),
            _ => format!("r{{{round}}}|\\`"),
        };
        let nick = nick(&name);
        let owner_a = Owner::new(a.node(), round);
        let owner_b = Owner::new(b.node(), round);
        let (claim_a, claim_b) = tokio::join!(a.claim(&nick, &owner_a), b.claim(&nick, &owner_b));
        let (claim_a, claim_b) = (claim_a.unwrap(), claim_b.unwrap());
        let (winner, loser, won, owner_loser, owner_winner) = match (claim_a, claim_b) {
            (Claim::Won { revision }, Claim::Taken) => (a, b, revision, &owner_b, &owner_a),
            (Claim::Taken, Claim::Won { revision }) => (b, a, revision, &owner_a, &owner_b),
            other => panic!("round {round}: {other:?}, not exactly one winner"),
        };
        // Claimed again by the loser, in another case: still taken.
        let upper = self::nick(&name.to_ascii_uppercase());
        assert_eq!(
            loser.claim(&upper, owner_loser).await.unwrap(),
            Claim::Taken
        );
        assert_eq!(
            winner.holder(&nick).await.unwrap(),
            Some((owner_winner.clone(), won))
        );

        // The loser cannot release what it does not hold.
        assert_eq!(
            loser.release(&nick, won + 1).await.unwrap(),
            Release::NotHeld
        );
        assert_eq!(winner.release(&nick, won).await.unwrap(), Release::Freed);
        let again = match loser.claim(&nick, owner_loser).await.unwrap() {
            Claim::Won { revision } => revision,
            Claim::Taken => panic!("round {round}: a released nickname stays taken"),
        };
        assert!(again > won);
        // The winner's stale release does nothing.
        assert_eq!(winner.release(&nick, won).await.unwrap(), Release::NotHeld);
        assert_eq!(
            winner.holder(&nick).await.unwrap(),
            Some((owner_loser.clone(), again))
        );
        assert_eq!(loser.release(&nick, again).await.unwrap(), Release::Freed);
        assert_eq!(a.holder(&nick).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_race_for_a_nickname() {
    let nats = NatsServer::start();
    let a = Cluster::connect(&[nats.url()], "node-a").await.unwrap();
    let b = Cluster::connect(&[nats.url()], "node-b").await.unwrap();
    race(&a, &b, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_race_on_a_three_node_nats() {
    let nats = NatsCluster::start(3).await;
    let options = Options {
        replicas: 3,
        ..Options::default()
    };
    let urls = nats.urls();
    // Each chat node talks to a different NATS node.
    let a = Cluster::connect_with(&urls[..1], "node-a", &options)
        .await
        .unwrap();
    let b = Cluster::connect_with(&urls[2..], "node-b", &options)
        .await
        .unwrap();
    let info = a.stream_info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(
        info.cluster.map(|c| c.replicas.len()),
        Some(2),
        "two followers"
    );
    race(&a, &b, 50).await;
}

#[tokio::test]
async fn a_claim_outlives_a_nats_restart() {
    let mut nats = NatsServer::start();
    let a = Cluster::connect(&[nats.url()], "node-a").await.unwrap();
    let owner = Owner::new("node-a", 7);
    let Claim::Won { revision } = a.claim(&nick("dora"), &owner).await.unwrap() else {
        panic!("a free nickname");
    };
    nats.restart();
    // A fresh connection: the client's own reconnection is the later slice's concern.
    let b = Cluster::connect(&[nats.url()], "node-b").await.unwrap();
    assert_eq!(
        b.claim(&nick("Dora"), &Owner::new("node-b", 1))
            .await
            .unwrap(),
        Claim::Taken
    );
    assert_eq!(
        b.holder(&nick("dora")).await.unwrap(),
        Some((owner, revision))
    );
}

/// The harness itself: SIGKILL and SIGTERM end the process, a restart comes back on the
/// same port, and dropping the handle stops it.
#[tokio::test]
async fn the_harness_stops_what_it_starts() {
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    let mut nats = NatsServer::start();
    let (port, first) = (nats.port(), nats.pid().unwrap());
    assert!(alive(first));
    nats.kill();
    assert!(!alive(first), "SIGKILL ends it");
    nats.restart();
    assert_eq!(nats.port(), port);
    let second = nats.pid().unwrap();
    Cluster::connect(&[nats.url()], "node-1").await.unwrap();
    nats.stop();
    assert!(!alive(second), "SIGTERM ends it");
    nats.restart();
    let third = nats.pid().unwrap();
    drop(nats);
    assert!(!alive(third), "drop ends it");
}

/// A server older than 2.9.0 is refused, naming both versions. No such nats-server is
/// at hand, so a fake one speaks the first lines of the protocol: `INFO`, then `PONG`
/// to the client's `CONNECT` and `PING`.
#[tokio::test]
async fn an_old_server_is_refused() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    let fake = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        write
            .write_all(
                b"INFO {\"server_id\":\"fake\",\"version\":\"2.8.4\",\"proto\":1,\
                  \"max_payload\":1048576,\"headers\":true}\r\n",
            )
            .await
            .unwrap();
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("PING") {
                write.write_all(b"PONG\r\n").await.unwrap();
            }
        }
    });
    let error = Cluster::connect(std::slice::from_ref(&url), "node-1")
        .await
        .unwrap_err();
    assert!(matches!(error, ClusterError::TooOld { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("2.8.4") && text.contains("2.9.0"), "{text}");
    fake.abort();
}

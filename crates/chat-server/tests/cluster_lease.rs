//! Node leases and reaping against a real `nats-server`: a node that stops refreshing is
//! found dead by a survivor's own clock (no clocks compared across machines), reaped by
//! exactly one of two survivors, and only its nicknames are freed; the dead node learns
//! it lost its lease; a node restarted under the same id takes its lease back and is told
//! which earlier incarnation to clean up after.

mod common;

use chat_proto::Nick;
use chat_server::cluster::{Claim, Cluster, LeaseError, Owner, Reaper};
use common::nats::NatsServer;
use std::time::Duration;
use tokio::time::Instant;

const MAX_AGE: Duration = Duration::from_secs(15);

fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}

async fn claim(node: &Cluster, name: &str, owner: &Owner) {
    let claimed = node.claim(&nick(name), owner).await.unwrap();
    assert!(matches!(claimed, Claim::Won { .. }), "{name}: {claimed:?}");
}

#[tokio::test]
async fn a_dead_node_is_reaped_once_and_only_its_nicknames_are_freed() {
    let nats = NatsServer::start();
    let a = Cluster::connect(&[nats.url()], "node-a").await.unwrap();
    let b = Cluster::connect(&[nats.url()], "node-b").await.unwrap();
    let c = Cluster::connect(&[nats.url()], "node-c").await.unwrap();
    let (mut lease_a, earlier) = a.take_lease(1).await.unwrap();
    assert_eq!(earlier, None);
    let (mut lease_b, _) = b.take_lease(1).await.unwrap();
    let (mut lease_c, _) = c.take_lease(1).await.unwrap();
    claim(&a, "alice", lease_a.owner()).await;
    claim(&a, "[Bot]", lease_a.owner()).await;
    claim(&b, "bob", lease_b.owner()).await;
    assert_eq!(a.nicks_of(lease_a.owner()).await.unwrap().len(), 2);

    // B and C watch. Their clocks, not NATS's, say how long a lease went unchanged;
    // the test moves them forward instead of waiting.
    let start = Instant::now();
    let mut reaper_b = Reaper::new(MAX_AGE);
    let mut reaper_c = Reaper::new(MAX_AGE);
    assert!(reaper_b.look(&b, start).await.unwrap().is_empty());
    assert!(reaper_c.look(&c, start).await.unwrap().is_empty());
    // A refreshes in time: alive, however long after its first sight.
    a.refresh(&mut lease_a).await.unwrap();
    let later = start + MAX_AGE + Duration::from_secs(1);
    b.refresh(&mut lease_b).await.unwrap();
    c.refresh(&mut lease_c).await.unwrap();
    assert!(reaper_b.look(&b, later).await.unwrap().is_empty());
    assert!(reaper_c.look(&c, later).await.unwrap().is_empty());

    // A stops refreshing. Past MAX_AGE by both survivors' clocks, both try: one reaps.
    b.refresh(&mut lease_b).await.unwrap();
    c.refresh(&mut lease_c).await.unwrap();
    let dead_by = later + MAX_AGE;
    let (by_b, by_c) = tokio::join!(reaper_b.look(&b, dead_by), reaper_c.look(&c, dead_by));
    let reaped: Vec<Owner> = by_b.unwrap().into_iter().chain(by_c.unwrap()).collect();
    assert_eq!(reaped, [Owner::new("node-a", 1)], "reaped exactly once");
    let freed = b.free_nicks_of(&reaped[0]).await.unwrap();
    let mut freed: Vec<String> = freed.iter().map(|n| n.to_string()).collect();
    freed.sort();
    assert_eq!(freed, ["[bot]", "alice"]);
    assert_eq!(b.holder(&nick("alice")).await.unwrap(), None);
    assert!(
        b.holder(&nick("bob")).await.unwrap().is_some(),
        "the living keep theirs"
    );
    assert!(
        b.free_nicks_of(&reaped[0]).await.unwrap().is_empty(),
        "freed once"
    );
    // The dead node, should it wake up, learns it lost its lease.
    assert!(matches!(
        a.refresh(&mut lease_a).await,
        Err(LeaseError::Lost)
    ));
}

#[tokio::test]
async fn a_restarted_node_takes_its_lease_back_and_names_its_earlier_self() {
    let nats = NatsServer::start();
    let first = Cluster::connect(&[nats.url()], "node-a").await.unwrap();
    let (mut old, _) = first.take_lease(1).await.unwrap();
    claim(&first, "alice", old.owner()).await;
    // It crashes without letting go, and starts again as incarnation 2.
    let second = Cluster::connect(&[nats.url()], "node-a").await.unwrap();
    let (lease, earlier) = second.take_lease(2).await.unwrap();
    assert_eq!(lease.owner(), &Owner::new("node-a", 2));
    assert_eq!(earlier, Some(Owner::new("node-a", 1)));
    let freed = second
        .free_nicks_of(&Owner::new("node-a", 1))
        .await
        .unwrap();
    assert_eq!(freed, [nick("alice")]);
    // The old incarnation's lease is gone.
    assert!(matches!(
        first.refresh(&mut old).await,
        Err(LeaseError::Lost)
    ));
}

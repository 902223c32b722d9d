//! A chat server as one node of a cluster (issue 16; see `docs/cluster.md`).
//!
//! The node logs its sessions' operations ([`Op`]) in the stream and applies every
//! entry of the stream, its own included, in the stream's order, through the hub
//! ([`Hub::apply`]): so every node holds the same rooms and members and makes the same
//! events with the same ids, and a node's users hear their own messages from the log,
//! never straight from their sessions. A session waits for its operation to be applied
//! here (one in flight per session: its events keep the order it sent them in).
//!
//! Nicknames are claimed in the `chat_nicks` bucket before a session's `Hello` is
//! logged, and freed after its `Quit` has been applied. The node holds a lease it
//! refreshes; when another node's lease stops changing, one survivor logs that node's
//! users' quits and frees their nicknames.

use super::{Claim, Cluster, ClusterError, Lease, LeaseError, Owner, Reaper, names};
use crate::core::error::{Busy, Refusal};
use crate::core::hub::Hub;
use crate::core::lock;
use crate::core::op::{Local, Log, Logged, Op, Outcome};
use chat_proto::name::Nick;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// How long a session's quit is tried, in the background, before the node gives up
/// on it (its nickname stays held, and the node's lease shows it alive).
const QUIT_WITHIN: Duration = Duration::from_secs(600);

/// How often the node refreshes its lease and looks at the others'.
pub(crate) const LEASE_EVERY: Duration = Duration::from_secs(2);

/// A node whose lease has not changed for this long, by a survivor's clock, is dead:
/// with [`LEASE_EVERY`], its users are told within about 12 s.
pub(crate) const LEASE_MAX_AGE: Duration = Duration::from_secs(10);

/// How far apart the clocks of the nodes and of NATS may be: a node that gave up on an
/// operation tells its user so only this long after the operation's deadline, by when
/// the stream no longer stores it (see [`Logged::deadline_ms`]).
const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// How long the applier's reader may stay silent while the stream holds entries it has
/// not given, before it is opened again. Its consumer may live on a NATS node that died
/// while this node's own connection, to another, did not break: the client library
/// would notice only after two missed heartbeats of 15 s, and then not always recover.
const STALL: Duration = Duration::from_secs(2);

/// Tries at freeing a gone node's nicknames.
const FREE_ATTEMPTS: u32 = 5;

/// How long the applier waits before opening a reader that ended or failed again.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);

/// One node of the cluster: what the hub's [`Log`] is in a cluster.
#[derive(Clone)]
pub(crate) struct Node(Arc<Inner>);

struct Inner {
    cluster: Cluster,
    owner: Owner,
    /// `node:incarnation`, as remote sessions are marked in the hub.
    owner_text: Arc<str>,
    /// The number of the next operation this node logs.
    numbers: AtomicU64,
    /// Operations logged and not yet applied here, by number: who waits, and what the
    /// hub needs to register a session.
    waiting: Mutex<HashMap<u64, Waiting>>,
    /// This node's sessions' nickname claims: folded nickname, revision.
    claims: Mutex<HashMap<String, u64>>,
    /// The last sequence applied.
    applied: watch::Sender<u64>,
    /// The hub, once it applies the log.
    hub: Mutex<Weak<Hub>>,
    /// How long an operation is tried before its session is told the cluster is busy
    /// (`--cluster-timeout`).
    within: Duration,
    /// The quits of sessions that ended, being logged.
    quits: TaskTracker,
    /// Set when the other nodes took this one for dead.
    lost: watch::Sender<bool>,
}

/// A session of this node waiting for its operation to be applied, and what the hub
/// needs to register it (for a `Hello`).
type Waiting = (oneshot::Sender<Outcome>, Option<Local>);

impl Node {
    /// Joins the cluster at `urls` as `node_id`: connects, takes the node's lease, and
    /// makes `hub` a replica of the log, caught up with the stream as it is now before
    /// this returns. Then the node's background tasks run for as long as the hub lives:
    /// the applier, the lease's refresh and the watch over the other nodes.
    pub(crate) async fn start(
        urls: &[String],
        node_id: &str,
        options: &super::Options,
        hub: &Arc<Hub>,
    ) -> Result<Node, ClusterError> {
        let cluster = Cluster::connect_with(urls, node_id, options).await?;
        // A number this node id never had before: the time it started.
        let incarnation = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(1);
        let (lease, earlier) = cluster.take_lease(incarnation).await?;
        let owner = lease.owner().clone();
        let node = Node(Arc::new(Inner {
            owner_text: format!("{}:{}", owner.node, owner.incarnation).into(),
            cluster: cluster.clone(),
            owner,
            numbers: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashMap::new()),
            applied: watch::channel(0).0,
            hub: Mutex::new(Arc::downgrade(hub)),
            within: options.timeout,
            quits: TaskTracker::new(),
            lost: watch::channel(false).0,
        }));
        hub.set_log(Arc::new(node.clone()));
        let last = cluster.stream_info().await?.state.last_sequence;
        let mut applied = node.0.applied.subscribe();
        tokio::spawn(node.clone().apply_log(1, options.timeout));
        tracing::info!(
            node = node_id,
            entries = last,
            "catching up with the cluster's log"
        );
        applied
            .wait_for(|&applied| applied >= last)
            .await
            .map_err(|_| ClusterError::Request {
                what: "catching up with the log",
                reason: "the log could not be read".into(),
            })?;
        // An earlier run of this node that stopped without saying goodbye: its users
        // are gone.
        if let Some(earlier) = earlier {
            node.bury(&earlier).await;
        }
        tokio::spawn(node.clone().keep_lease(lease));
        tracing::info!(
            node = node_id,
            applied = last,
            "caught up with the cluster's log"
        );
        Ok(node)
    }

    fn hub(&self) -> Option<Arc<Hub>> {
        lock(&self.0.hub).upgrade()
    }

    /// The subject an operation is logged under.
    fn subject(op: &Op) -> String {
        if let Some(room) = op.room() {
            return names::room_subject(&room);
        }
        let (Ok(nick), to) = (Nick::new(op.nick()), op.recipient()) else {
            return "chat.user".to_owned();
        };
        match to.map(Nick::new) {
            Some(Ok(to)) => names::pair_subject(&nick, &to),
            _ => format!("chat.user.{}", names::nick_token(&nick)),
        }
    }

    /// The entry that logs `op` for this node, with its number; `deadline` for a
    /// session's operation, whose session is told if it is not logged in time.
    fn entry(&self, op: Op, deadline: bool) -> Logged {
        let time_ms = jiff::Timestamp::now().as_millisecond();
        let within = i64::try_from(self.0.within.as_millis()).unwrap_or(i64::MAX);
        Logged {
            node: self.0.owner.node.clone(),
            incarnation: self.0.owner.incarnation,
            number: self.0.numbers.fetch_add(1, Ordering::Relaxed),
            time_ms,
            deadline_ms: deadline.then(|| time_ms.saturating_add(within)),
            op,
        }
    }

    /// Appends `entry` under the message id `id`, trying for `within`; its sequence.
    async fn append(&self, entry: &Logged, id: &str, within: Duration) -> Option<u64> {
        let subject = Node::subject(&entry.op);
        match self
            .0
            .cluster
            .append(&subject, id, entry.encode().into(), within)
            .await
        {
            Ok(sequence) => Some(sequence),
            Err(e) => {
                tracing::warn!(error = %e, subject, "an operation was not logged");
                None
            }
        }
    }

    /// Waits until this node has applied the log up to `sequence`, for at most the
    /// node's bound.
    async fn applied(&self, sequence: u64) {
        let mut applied = self.0.applied.subscribe();
        let _ = tokio::time::timeout(self.0.within, applied.wait_for(|&a| a >= sequence)).await;
    }

    /// Logs the quit of the session `nick` (folded) of this node, waits until it is
    /// applied here, then frees its nickname.
    async fn quit(self, nick: String, reason: String) {
        let entry = self.entry(
            Op::Quit {
                nick: nick.clone(),
                reason,
            },
            false,
        );
        let id = format!("{}.{}.{}", entry.node, entry.incarnation, entry.number);
        let Some(sequence) = self.append(&entry, &id, QUIT_WITHIN).await else {
            tracing::error!(nick, "a quit could not be logged: the nickname stays held");
            return;
        };
        self.applied(sequence).await;
        self.free(nick).await;
    }

    /// Frees the claim of this node's session `nick` (folded).
    async fn free(&self, nick: String) {
        let revision = lock(&self.0.claims).remove(&nick);
        if let (Some(revision), Ok(name)) = (revision, Nick::new(&nick))
            && let Err(e) = self.0.cluster.release(&name, revision).await
        {
            tracing::warn!(nick, error = %e, "a nickname could not be freed");
        }
    }

    /// Logs the quits of the sessions of `owner` (a dead node, or this node before it
    /// restarted), then frees their nicknames. Each quit's message id names the owner
    /// and the nickname: logged twice, it is kept once.
    async fn bury(&self, owner: &Owner) {
        let owner_text = format!("{}:{}", owner.node, owner.incarnation);
        let Some(hub) = self.hub() else { return };
        let sessions = hub.sessions_of(&owner_text);
        tracing::warn!(
            owner = owner_text,
            sessions = sessions.len(),
            "a node is gone; its users quit"
        );
        for nick in sessions {
            let id = format!(
                "quit.{}.{}.{}",
                names::node_token(&owner.node),
                owner.incarnation,
                names::encode(&nick)
            );
            let entry = self.entry(
                Op::Quit {
                    nick,
                    reason: format!("{} left the cluster", owner.node),
                },
                false,
            );
            self.append(&entry, &id, self.0.within).await;
        }
        // One pass over the bucket, through a consumer a failing NATS node may hold up:
        // tried a few times.
        for attempt in 1..=FREE_ATTEMPTS {
            match self.0.cluster.free_nicks_of(owner).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(owner = owner_text, attempt, error = %e, "a gone node's nicknames could not be freed")
                }
            }
        }
    }

    /// Applies the log from `from` on, for as long as the hub lives (see the module
    /// docs). When the reader ends or fails, or the node reconnects to NATS (the
    /// reader's consumer may have gone with the server), it is opened again from the
    /// entry after the last applied.
    async fn apply_log(self, from: u64, within: Duration) {
        let mut next = from.max(1);
        let mut connections = self.0.cluster.connections();
        let mut check = tokio::time::interval(STALL / 2);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            connections.borrow_and_update();
            let mut tail = match self.0.cluster.tail(next, within).await {
                Ok(tail) => tail,
                Err(e) => {
                    tracing::warn!(error = %e, next, "cannot open the cluster's log; trying again");
                    tokio::time::sleep(REOPEN_PAUSE).await;
                    continue;
                }
            };
            let mut heard = Instant::now();
            loop {
                let entry = tokio::select! {
                    biased;
                    entry = tail.next() => entry,
                    // Back after a loss: the reader's consumer may have gone with the server.
                    _ = connections.changed() => break,
                    _ = check.tick() => {
                        if heard.elapsed() >= STALL && self.behind(next).await {
                            tracing::warn!(next, "the log's reader fell silent while the log went on; opening it again");
                            break;
                        }
                        continue;
                    }
                };
                heard = Instant::now();
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
                let Some(hub) = self.hub() else { return };
                self.apply(&hub, &entry);
                next = entry.sequence + 1;
                self.0.applied.send_replace(entry.sequence);
            }
            tokio::time::sleep(REOPEN_PAUSE).await;
        }
    }

    /// Whether the stream holds an entry at `next` or after, by its leader (`false` when
    /// it does not answer in time).
    async fn behind(&self, next: u64) -> bool {
        let info = tokio::time::timeout(STALL, self.0.cluster.stream_info()).await;
        matches!(info, Ok(Ok(info)) if info.state.last_sequence >= next)
    }

    /// Applies one entry, and answers the session of this node that logged it.
    fn apply(&self, hub: &Hub, stored: &super::Entry) {
        let sequence = stored.sequence;
        let entry = match Logged::decode(&stored.payload) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(sequence, error = %e, "an entry of the cluster's log cannot be read; skipped");
                return;
            }
        };
        let owner = &self.0.owner;
        let mine = entry.node == owner.node && entry.incarnation == owner.incarnation;
        let waiting = match mine {
            true => lock(&self.0.waiting).remove(&entry.number),
            false => None,
        };
        let (answer, local) = waiting.map_or((None, None), |(a, l)| (Some(a), l));
        // Stored after its deadline: void everywhere (its session was told, or will be).
        if entry.deadline_ms.is_some_and(|d| stored.published_ms > d) {
            tracing::debug!(sequence, "an operation stored after its deadline; void");
            if let Some(answer) = answer {
                let _ = answer.send(Outcome::NotLogged);
            }
            return;
        }
        let owner_text = match mine {
            true => self.0.owner_text.clone(),
            false => format!("{}:{}", entry.node, entry.incarnation).into(),
        };
        let outcome = hub.apply(sequence, &entry, &owner_text, mine, local);
        // A rename of this node's: the old nickname is free once it is applied; the
        // new one, if it was refused.
        if mine && let Op::Rename { nick, new } = &entry.op {
            let new = Nick::new(new).map(|n| n.folded()).unwrap_or_default();
            if new != *nick {
                let freed = match &outcome {
                    Outcome::Renamed(Ok(_)) => nick.clone(),
                    _ => new,
                };
                let node = self.clone();
                tokio::spawn(async move { node.free(freed).await });
            }
        }
        if let Some(answer) = answer {
            let _ = answer.send(outcome);
        }
    }

    /// Refreshes the lease and looks at the other nodes' every [`LEASE_EVERY`], for as
    /// long as the hub lives.
    async fn keep_lease(self, mut lease: Lease) {
        let cluster = self.0.cluster.clone();
        let mut reaper = Reaper::new(LEASE_MAX_AGE);
        let mut every = tokio::time::interval(LEASE_EVERY);
        let mut connections = cluster.connections();
        loop {
            every.tick().await;
            if self.hub().is_none() {
                return;
            }
            // A node cannot refresh its lease while NATS is away: time counts toward a
            // lease's age only while this node could look without a break, or every
            // node would take every other for dead after an outage of NATS itself.
            if connections.has_changed().unwrap_or(false) {
                connections.borrow_and_update();
                reaper = Reaper::new(LEASE_MAX_AGE);
            }
            match cluster.refresh(&mut lease).await {
                Ok(()) => {}
                Err(LeaseError::Lost) => {
                    tracing::error!(
                        "this node's lease was taken: the others took it for dead and its users for gone"
                    );
                    self.0.lost.send_replace(true);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot refresh this node's lease");
                    reaper = Reaper::new(LEASE_MAX_AGE);
                    continue;
                }
            }
            match reaper.look(&cluster, Instant::now()).await {
                Ok(dead) => {
                    for owner in dead {
                        self.bury(&owner).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look at the other nodes' leases");
                    reaper = Reaper::new(LEASE_MAX_AGE);
                }
            }
        }
    }
}

impl Log for Node {
    fn patience(&self) -> Duration {
        // The claim, then the hello: each within the bound, and the deadline's slack.
        2 * self.0.within + CLOCK_SLACK
    }

    fn submit(&self, op: Op, local: Option<Local>) -> oneshot::Receiver<Outcome> {
        let (answer, outcome) = oneshot::channel();
        let entry = self.entry(op, true);
        let number = entry.number;
        lock(&self.0.waiting).insert(number, (answer, local));
        let node = self.clone();
        tokio::spawn(async move {
            // A new nickname is claimed before the rename is logged.
            if let Op::Rename { nick, new } = &entry.op
                && let Ok(new) = Nick::new(new)
                && new.folded() != *nick
                && let Err(refused) = node.claim(&new).await
            {
                if let Some((answer, _)) = lock(&node.0.waiting).remove(&number) {
                    let _ = answer.send(match refused {
                        Refusal::NickTaken(_) => Outcome::Renamed(Err(refused)),
                        _ => Outcome::NotLogged,
                    });
                }
                return;
            }
            let id = format!("{}.{}.{}", entry.node, entry.incarnation, number);
            if node.append(&entry, &id, node.0.within).await.is_none() {
                // Past the deadline by every clock before the session is told: the
                // client library may still send it, but the log will not count it.
                let deadline = entry.deadline_ms.unwrap_or_default();
                let late = jiff::Timestamp::now()
                    .as_millisecond()
                    .saturating_sub(deadline);
                let slack = Duration::from_millis(u64::try_from(-late).unwrap_or(0)) + CLOCK_SLACK;
                tokio::time::sleep(slack).await;
                if let Some((answer, _)) = lock(&node.0.waiting).remove(&number) {
                    let _ = answer.send(Outcome::NotLogged);
                }
            }
        });
        outcome
    }

    fn claim(&self, nick: &Nick) -> BoxFuture<'static, Result<(), Refusal>> {
        let node = self.clone();
        let nick = nick.clone();
        Box::pin(async move {
            let claim = node.0.cluster.claim(&nick, &node.0.owner);
            match tokio::time::timeout(node.0.within, claim).await {
                Ok(Ok(Claim::Won { revision })) => {
                    lock(&node.0.claims).insert(nick.folded(), revision);
                    Ok(())
                }
                Ok(Ok(Claim::Taken)) => Err(Refusal::NickTaken(nick)),
                // Perhaps written, under this node's name: freed if the node dies or
                // restarts, and claimed again by the same node should it ask again.
                Ok(Err(e)) => {
                    tracing::warn!(%nick, error = %e, "cannot claim a nickname");
                    Err(Refusal::Busy(Busy::Cluster))
                }
                Err(_) => {
                    tracing::warn!(%nick, "cannot claim a nickname: NATS did not answer in time");
                    Err(Refusal::Busy(Busy::Cluster))
                }
            }
        })
    }

    fn release(&self, nick: String) {
        let node = self.clone();
        tokio::spawn(async move { node.free(nick).await });
    }

    fn leave(&self, nick: String, reason: String) {
        self.0.quits.spawn(self.clone().quit(nick, reason));
    }

    fn closed(&self) -> BoxFuture<'static, ()> {
        let quits = self.0.quits.clone();
        quits.close();
        Box::pin(async move { quits.wait().await })
    }

    fn lost(&self) -> BoxFuture<'static, ()> {
        let mut lost = self.0.lost.subscribe();
        Box::pin(async move {
            if lost.wait_for(|&lost| lost).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

//! Node leases in the `chat_nodes` bucket, and the reaping of a dead node's nicknames
//! (issue 16).
//!
//! A node holds a lease: the key is its id's token, the value its incarnation (a new one
//! at every start). It refreshes the lease by a compare-and-set at the revision it last
//! wrote, so a refresh after another node declared it dead fails: the node then knows
//! it lost its lease.
//!
//! A survivor's [`Reaper`] decides that a node is dead when the node's lease has not
//! changed for `max_age` **by the survivor's own clock** (it notes when it first saw each
//! revision): no two machines' clocks are ever compared. It then deletes the lease at
//! the revision it saw; only one delete at that revision can succeed, so of several
//! survivors reaping at once exactly one reaps each dead node, and only that one frees
//! the node's nicknames (and, in a later slice, tells its users' rooms they quit).

use super::{Cluster, ClusterError, Owner, error_chain, names};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::kv::{self, UpdateErrorKind};
use chat_proto::Nick;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// A node's lease, as it holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    key: String,
    owner: Owner,
    revision: u64,
}

/// Why a lease could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another node declared this one dead and took its lease.
    #[error("this node's lease was taken: another node declared it dead")]
    Lost,
    /// NATS did not answer.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl Lease {
    /// Who holds it: this node, this incarnation.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }
}

impl Cluster {
    /// Takes this node's lease for `incarnation`. Returns it, and the earlier
    /// incarnation of this node if that still held the lease (it stopped without
    /// letting go: its nicknames are to be freed, see [`Cluster::free_nicks_of`]).
    pub async fn take_lease(
        &self,
        incarnation: u64,
    ) -> Result<(Lease, Option<Owner>), ClusterError> {
        let key = names::node_token(&self.node);
        let owner = Owner::new(&self.node, incarnation);
        let request = |what, e: &dyn std::error::Error| ClusterError::Request {
            what,
            reason: e.to_string(),
        };
        // Never written, or released: create. Held by an earlier incarnation: take it
        // over at the revision read (a compare-and-set, so two starts of one node id
        // cannot both win).
        for _ in 0..4 {
            let last = self
                .nodes
                .entry(key.clone())
                .await
                .map_err(|e| request("lease read", &e))?;
            let (expected, earlier) = match &last {
                None => (0, None),
                Some(entry) => match Owner::from_bytes(&entry.value) {
                    Some(earlier) if earlier != owner => (entry.revision, Some(earlier)),
                    _ => (entry.revision, None),
                },
            };
            match self.nodes.update(&key, owner.to_bytes(), expected).await {
                Ok(revision) => {
                    return Ok((
                        Lease {
                            key,
                            owner,
                            revision,
                        },
                        earlier,
                    ));
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(request("lease take", &e)),
            }
        }
        Err(ClusterError::Request {
            what: "lease take",
            reason: "the lease kept changing under this node".into(),
        })
    }

    /// Refreshes `lease` (a new revision, for the reapers to see); `Lost` if another
    /// node reaped it.
    pub async fn refresh(&self, lease: &mut Lease) -> Result<(), LeaseError> {
        match self
            .nodes
            .update(&lease.key, lease.owner.to_bytes(), lease.revision)
            .await
        {
            Ok(revision) => {
                lease.revision = revision;
                Ok(())
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                // Our own last refresh, stored though its answer was lost, moved the
                // revision on: the lease is still ours. Anything else took it.
                let last = self.nodes.entry(lease.key.clone()).await.ok().flatten();
                match last {
                    Some(entry)
                        if entry.operation == kv::Operation::Put
                            && Owner::from_bytes(&entry.value).as_ref() == Some(&lease.owner) =>
                    {
                        lease.revision = entry.revision;
                        Ok(())
                    }
                    _ => Err(LeaseError::Lost),
                }
            }
            Err(e) => Err(LeaseError::Cluster(ClusterError::Request {
                what: "lease refresh",
                reason: e.to_string(),
            })),
        }
    }

    /// Frees every nickname `owner` still holds (each at the revision it was claimed,
    /// so one claimed again meanwhile is untouched); returns those freed.
    pub async fn free_nicks_of(&self, owner: &Owner) -> Result<Vec<Nick>, ClusterError> {
        let mut freed = Vec::new();
        for (nick, revision) in self.nicks_of(owner).await? {
            if self.release(&nick, revision).await? == super::Release::Freed {
                freed.push(nick);
            }
        }
        Ok(freed)
    }

    /// The nicknames `owner` holds, with their revisions: one pass over the bucket's
    /// last value per key (an ordered consumer), not a request per key.
    pub async fn nicks_of(&self, owner: &Owner) -> Result<Vec<(Nick, u64)>, ClusterError> {
        let request = |e: String| ClusterError::Request {
            what: "nicknames of a node",
            reason: e,
        };
        let info = self
            .nicks
            .stream
            .get_info()
            .await
            .map_err(|e| request(error_chain(&e)))?;
        if info.state.messages == 0 {
            return Ok(Vec::new());
        }
        let consumer = self
            .nicks
            .stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::LastPerSubject,
                // Required with LastPerSubject: every key of the bucket.
                filter_subject: format!("{}>", self.nicks.prefix),
                ..Default::default()
            })
            .await
            .map_err(|e| request(error_chain(&e)))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| request(error_chain(&e)))?;
        let wanted = owner.to_bytes();
        let mut held = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| request(error_chain(&e)))?;
            let info = message.info().map_err(|e| request(e.to_string()))?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            let deleted = message
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .is_some();
            if !deleted && message.payload == wanted {
                let token = message
                    .subject
                    .as_str()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default();
                if let Some(nick) = names::nick_from_token(token) {
                    held.push((nick, sequence));
                }
            }
            if pending == 0 {
                break;
            }
        }
        Ok(held)
    }
}

/// A survivor's watch over the other nodes' leases.
#[derive(Debug)]
pub struct Reaper {
    max_age: Duration,
    /// Per lease key: the revision last seen, and when this reaper first saw it.
    seen: HashMap<String, (u64, Instant)>,
}

impl Reaper {
    /// A reaper that takes a node for dead once its lease has not changed for `max_age`.
    pub fn new(max_age: Duration) -> Reaper {
        Reaper {
            max_age,
            seen: HashMap::new(),
        }
    }

    /// Looks at every other node's lease, as of `now` (this node's clock); reaps those
    /// unchanged for `max_age` and returns the owners it reaped (another survivor may
    /// have reaped some first: those are not returned).
    pub async fn look(
        &mut self,
        cluster: &Cluster,
        now: Instant,
    ) -> Result<Vec<Owner>, ClusterError> {
        let request = |what, e: String| ClusterError::Request { what, reason: e };
        let own = names::node_token(&cluster.node);
        // The bucket's subjects, from the stream's leader: no consumer, which a NATS
        // node that has just died could host and never answer for (the bucket's
        // `keys()` makes one each time).
        let prefix = cluster.nodes.prefix.clone();
        let mut subjects = cluster
            .nodes
            .stream
            .info_with_subjects(format!("{prefix}>"))
            .await
            .map_err(|e| request("lease list", error_chain(&e)))?;
        let mut present = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| request("lease list", error_chain(&e)))?;
            if let Some(key) = subject.strip_prefix(&prefix)
                && key != own
            {
                present.push(key.to_owned());
            }
        }
        present.sort();
        self.seen.retain(|key, _| present.contains(key));
        let mut reaped = Vec::new();
        for key in present {
            let Some(entry) = cluster
                .nodes
                .entry(key.clone())
                .await
                .map_err(|e| request("lease read", e.to_string()))?
            else {
                continue;
            };
            // A lease let go, or reaped: its delete marker is the subject's last message.
            if entry.operation != kv::Operation::Put {
                self.seen.remove(&key);
                continue;
            }
            let since = match self.seen.get(&key) {
                Some(&(revision, since)) if revision == entry.revision => since,
                _ => {
                    self.seen.insert(key, (entry.revision, now));
                    continue;
                }
            };
            if now.saturating_duration_since(since) < self.max_age {
                continue;
            }
            // Dead by this clock: reap it, if no other survivor did first.
            match cluster
                .nodes
                .delete_expect_revision(&key, Some(entry.revision))
                .await
            {
                Ok(()) => {
                    self.seen.remove(&key);
                    if let Some(owner) = Owner::from_bytes(&entry.value) {
                        reaped.push(owner);
                    }
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    self.seen.remove(&key);
                }
                Err(e) => return Err(request("lease reap", e.to_string())),
            }
        }
        Ok(reaped)
    }
}

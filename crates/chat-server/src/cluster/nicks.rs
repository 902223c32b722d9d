//! Nickname claims in the `chat_nicks` bucket: the key is the nickname's token
//! ([`names::nick_token`]), the value the [`Owner`] that holds it.
//!
//! A claim is decided only by a compare-and-set write: "create" is an update expecting
//! revision 0 (the key was never written) or the revision of the delete marker that
//! ended the last claim, and the server refuses it if anything else came first. Reads
//! only tell which compare-and-set to try next, never who won; even seeing our own
//! owner in the key (an earlier claim of the same session) is confirmed by a
//! compare-and-set at the revision read. Reads go to the stream's leader, not through a
//! direct get: on a replicated bucket a direct get may be answered by a follower that
//! has not applied the last release yet (measured: a freed nickname then read as taken). A release deletes the key
//! only if its last revision is still the claim's (`Nats-Expected-Last-Subject-Sequence`,
//! which 2.9 honours), so a stale release never frees someone else's claim.

use super::{Cluster, ClusterError, names};
use async_nats::jetstream::kv::{Operation, UpdateErrorKind};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;
use chat_proto::Nick;

/// Who holds a nickname: a node and the session's incarnation on that node (a number
/// the node never reuses while it runs). Written as `node:incarnation`; node ids hold
/// no spaces, and the number is the text after the last `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The node's id.
    pub node: String,
    /// The session's number on that node.
    pub incarnation: u64,
}

impl Owner {
    /// The owner `incarnation` on `node`.
    pub fn new(node: &str, incarnation: u64) -> Owner {
        Owner {
            node: node.to_owned(),
            incarnation,
        }
    }

    /// The value stored in the bucket.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(format!("{}:{}", self.node, self.incarnation))
    }

    /// The owner a stored value names, if it is one [`Owner::to_bytes`] wrote.
    pub fn from_bytes(value: &[u8]) -> Option<Owner> {
        let text = std::str::from_utf8(value).ok()?;
        let (node, number) = text.rsplit_once(':')?;
        if node.is_empty() || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let incarnation: u64 = number.parse().ok()?;
        (incarnation.to_string() == number).then(|| Owner::new(node, incarnation))
    }
}

/// The outcome of [`Cluster::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The claim is ours, at this revision of its key (what [`Cluster::release`] needs).
    Won {
        /// The key's revision written by our claim.
        revision: u64,
    },
    /// Someone else holds the nickname.
    Taken,
}

/// The outcome of [`Cluster::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The claim was ours and is deleted: the nickname is free.
    Freed,
    /// The key has moved on since that revision (released already, or claimed by
    /// someone else since): nothing was changed.
    NotHeld,
}

/// Compare-and-set attempts per claim: one for a never-used key; two when the last
/// claim was released (its delete marker's revision is read, then written against).
/// More only when the key changes between the two.
const CLAIM_ATTEMPTS: usize = 4;

impl Cluster {
    /// Claims `nick` (case-folded here) for `owner`, cluster-wide.
    ///
    /// `Taken` also when the key kept changing under us for [`CLAIM_ATTEMPTS`] tries
    /// (someone else is claiming and releasing it right now). An error means NATS did
    /// not answer in time: the claim may then have been written; its value names
    /// `owner`, so it can be found and released later.
    pub async fn claim(&self, nick: &Nick, owner: &Owner) -> Result<Claim, ClusterError> {
        let key = names::nick_token(nick);
        let value = owner.to_bytes();
        // Revision 0: the key was never written.
        let mut expected = 0;
        for _ in 0..CLAIM_ATTEMPTS {
            match self.nicks.update(&key, value.clone(), expected).await {
                Ok(revision) => return Ok(Claim::Won { revision }),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(e) => {
                    // Did our write land before the answer was lost? Only a second
                    // compare-and-set at the revision it would have made can say.
                    match self.last(&key).await {
                        Ok(Some(entry))
                            if entry.operation == Operation::Put
                                && Owner::from_bytes(&entry.value).as_ref() == Some(owner) =>
                        {
                            expected = entry.revision;
                            continue;
                        }
                        _ => {
                            return Err(ClusterError::Request {
                                what: "nickname claim",
                                reason: e.to_string(),
                            });
                        }
                    }
                }
            }
            expected = match self.last(&key).await? {
                // Released: try again against the delete marker's revision.
                Some(entry) if matches!(entry.operation, Operation::Delete | Operation::Purge) => {
                    entry.revision
                }
                // Our own session's claim, from an earlier call: confirmed only if it
                // is still the key's last revision.
                Some(entry) if Owner::from_bytes(&entry.value).as_ref() == Some(owner) => {
                    entry.revision
                }
                Some(_) => return Ok(Claim::Taken),
                // Refused, yet the key has no message: it was purged meanwhile (a
                // purge leaves a marker, so only a purge of the whole stream does
                // this): try from the start again.
                None => 0,
            };
        }
        Ok(Claim::Taken)
    }

    /// Releases the claim on `nick` written at `revision`, only if it is still the key's
    /// last revision.
    pub async fn release(&self, nick: &Nick, revision: u64) -> Result<Release, ClusterError> {
        let key = names::nick_token(nick);
        match self
            .nicks
            .delete_expect_revision(&key, Some(revision))
            .await
        {
            Ok(()) => Ok(Release::Freed),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(Release::NotHeld),
            Err(e) => Err(ClusterError::Request {
                what: "nickname release",
                reason: e.to_string(),
            }),
        }
    }

    /// Who holds `nick` and at which revision, as the stream's leader sees it now: for
    /// showing, never for deciding (it may change the moment after).
    pub async fn holder(&self, nick: &Nick) -> Result<Option<(Owner, u64)>, ClusterError> {
        let last = self.last(&names::nick_token(nick)).await?;
        Ok(last.and_then(|entry| match entry.operation {
            Operation::Put => Owner::from_bytes(&entry.value).map(|o| (o, entry.revision)),
            Operation::Delete | Operation::Purge => None,
        }))
    }

    /// The last operation on `key` in the nicks bucket, from the stream's leader.
    async fn last(&self, key: &str) -> Result<Option<Last>, ClusterError> {
        let subject = format!("{}{key}", self.nicks.prefix);
        match self
            .nicks
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(message) => {
                let operation = match message.headers.get(KV_OPERATION).map(|v| v.as_str()) {
                    Some("DEL") => Operation::Delete,
                    Some("PURGE") => Operation::Purge,
                    _ => Operation::Put,
                };
                Ok(Some(Last {
                    operation,
                    revision: message.sequence,
                    value: message.payload,
                }))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(ClusterError::Request {
                what: "nickname read",
                reason: e.to_string(),
            }),
        }
    }
}

/// The header async-nats's KV writes on a delete (`DEL`) or purge (`PURGE`).
const KV_OPERATION: &str = "KV-Operation";

/// A key's last message.
struct Last {
    operation: Operation,
    revision: u64,
    value: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip() {
        let owner = Owner::new("node:1", 42);
        assert_eq!(owner.to_bytes(), "node:1:42");
        assert_eq!(Owner::from_bytes(&owner.to_bytes()), Some(owner));
        assert_eq!(
            Owner::from_bytes(b"n:18446744073709551615"),
            Some(Owner::new("n", u64::MAX))
        );
        for bad in [
            &b"n"[..],
            b":1",
            b"n:",
            b"n:+1",
            b"n:01",
            b"n:1x",
            b"\xff:1",
        ] {
            assert_eq!(Owner::from_bytes(bad), None, "{bad:?}");
        }
    }
}

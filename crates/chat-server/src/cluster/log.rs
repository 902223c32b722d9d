//! The cluster's log: appending an event to the stream, and reading the stream in order.
//!
//! [`Cluster::append`] publishes one event with a `Nats-Msg-Id` and waits for
//! JetStream's acknowledgement, trying again (the same id: a publish whose ack was lost
//! is stored once) until a bound passes; the sequence it returns is the event's id on
//! every node. [`Cluster::tail`] reads every subject of the stream from a sequence on, in
//! the stream's order, through an ordered consumer (which the client recreates from
//! where it stopped if a message goes missing or the server goes away).

use super::{Cluster, ClusterError, STREAM, error_chain};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;
use tokio::time::Instant;

/// The bound on one try at opening the log.
const OPEN_ATTEMPT: Duration = Duration::from_secs(2);

/// What a node does with an event it could not append in time: the caller tells its
/// user the cluster is busy, and nothing was accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cluster did not take the event within {within:?}: {reason}")]
pub struct NotAppended {
    /// The bound that passed.
    pub within: Duration,
    /// The last error.
    pub reason: String,
}

/// One message of the log, as a node reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its stream sequence: the event's id.
    pub sequence: u64,
    /// When JetStream stored it, by the NATS server's clock, in milliseconds since the
    /// epoch.
    pub published_ms: i64,
    /// Its subject (`chat.room.<token>`, `chat.priv.<token>`...).
    pub subject: String,
    /// The event, as `core::logged` writes it.
    pub payload: Bytes,
}

/// The stream read in order from a sequence on: [`Tail::next`] gives each message once,
/// in the stream's order.
pub struct Tail {
    messages: pull::Ordered,
}

impl Tail {
    /// The next entry; `Err` when the stream cannot be read (the client keeps trying
    /// to recreate its consumer in between: an error is worth logging, not fatal).
    pub async fn next(&mut self) -> Option<Result<Entry, ClusterError>> {
        let message = self.messages.next().await?;
        Some(
            message
                .map_err(|e| ClusterError::Request {
                    what: "reading the log",
                    reason: error_chain(&e),
                })
                .and_then(|message| {
                    let info = message.info().map_err(|e| ClusterError::Request {
                        what: "reading the log",
                        reason: e.to_string(),
                    })?;
                    let published_ms =
                        i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000)
                            .unwrap_or(i64::MAX);
                    Ok(Entry {
                        sequence: info.stream_sequence,
                        published_ms,
                        subject: message.subject.to_string(),
                        payload: message.payload.clone(),
                    })
                }),
        )
    }
}

impl Cluster {
    /// Appends `payload` to the log under `subject`, with `id` as its `Nats-Msg-Id`, and
    /// returns its sequence once JetStream has stored it. Tries again, with the same id,
    /// until `within` has passed (a JetStream leader fails over in a few seconds).
    pub async fn append(
        &self,
        subject: &str,
        id: &str,
        payload: Bytes,
        within: Duration,
    ) -> Result<u64, NotAppended> {
        let deadline = Instant::now() + within;
        let mut pause = Duration::from_millis(25);
        loop {
            let publish = PublishMessage::build()
                .payload(payload.clone())
                .message_id(id);
            let tried = async {
                let ack = self
                    .jetstream
                    .send_publish(subject.to_owned(), publish)
                    .await
                    .map_err(|e| error_chain(&e))?;
                ack.await.map_err(|e| error_chain(&e))
            };
            let reason = match tokio::time::timeout_at(deadline, tried).await {
                Ok(Ok(ack)) => return Ok(ack.sequence),
                Ok(Err(reason)) => reason,
                Err(_) => "no acknowledgement in time".to_owned(),
            };
            if Instant::now() + pause >= deadline {
                return Err(NotAppended { within, reason });
            }
            tracing::debug!(subject, reason, "append failed; trying again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Reads the whole log (every subject) from sequence `from` on, in order. Opening
    /// the reader is tried again until `within` has passed (after a NATS node is lost,
    /// the stream answers once it has a new leader).
    pub async fn tail(&self, from: u64, within: Duration) -> Result<Tail, ClusterError> {
        let deadline = Instant::now() + within;
        let mut pause = Duration::from_millis(25);
        loop {
            // One try is bounded well below `within`: a consumer placed on a NATS node
            // that has just died is never answered for, and the next try is placed anew.
            let attempt = (Instant::now() + OPEN_ATTEMPT).min(deadline);
            let reason = match tokio::time::timeout_at(attempt, self.open_tail(from)).await {
                Ok(Ok(tail)) => return Ok(tail),
                Ok(Err(reason)) => reason,
                Err(_) => "no answer in time".to_owned(),
            };
            if Instant::now() + pause >= deadline {
                return Err(ClusterError::Request {
                    what: "opening the log",
                    reason,
                });
            }
            tracing::debug!(reason, "opening the log failed; trying again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    async fn open_tail(&self, from: u64) -> Result<Tail, String> {
        let stream = self
            .jetstream
            .get_stream(STREAM)
            .await
            .map_err(|e| error_chain(&e))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| error_chain(&e))?;
        let messages = consumer.messages().await.map_err(|e| error_chain(&e))?;
        Ok(Tail { messages })
    }
}

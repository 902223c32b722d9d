//! Several chat servers as one, through NATS JetStream (issue 16; see
//! `docs/cluster.md`): `--cluster` and `--node-id` make a server a node ([`node`]).
//!
//! [`Cluster::connect`] connects to NATS, refuses a server older than 2.9.0, and gets or
//! creates what every node shares: the stream `CHAT` (every room and private event, on
//! the subjects of [`names`]) and the KV buckets `chat_nicks` (nickname claims, see
//! `nicks.rs`), `chat_nodes` (node leases, see `lease.rs`), `chat_accounts` and
//! `chat_rooms` (not used yet). `log.rs` appends to the stream and reads it in order.
//!
//! This module is `pub` only so that the integration tests (`tests/cluster.rs`) can
//! drive it against real `nats-server` processes; it is not a stable interface.

mod lease;
mod log;
pub mod names;
mod nicks;
pub(crate) mod node;
/// Real `nats-server` processes, for the unit tests of what is not `pub` (the harness
/// the integration tests use).
#[cfg(test)]
#[path = "../../tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod test_nats;

pub use lease::{Lease, LeaseError, Reaper};
pub use log::{Entry, NotAppended, Tail};
pub use nicks::{Claim, Owner, Release};

use async_nats::jetstream::{self, kv, stream};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The stream every room and private event goes through.
pub const STREAM: &str = "CHAT";
/// Nickname claims: key the nickname's token, value its [`Owner`].
pub const NICKS: &str = "chat_nicks";
/// Node leases: key the node id's token.
pub const NODES: &str = "chat_nodes";
/// Registered accounts: key the nickname's token.
pub const ACCOUNTS: &str = "chat_accounts";
/// Registered rooms: key the room's token.
pub const ROOMS: &str = "chat_rooms";

/// The oldest NATS server the cluster runs on (Debian 12 ships 2.9.10).
pub const MIN_SERVER: (i64, i64, i64) = (2, 9, 0);

/// The bound on one try of the JetStream probe at connect. A healthy server answers in
/// a millisecond; a fresh cluster answers nothing until it has a meta leader.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The largest event the stream takes, in bytes.
pub const STREAM_MAX_MESSAGE: i32 = 64 * 1024;

/// Each bucket: name, description, largest value, size bound in bytes. With
/// `discard: new` (as async-nats makes KV buckets), a full bucket refuses new keys
/// rather than dropping old ones; history is 1 everywhere (only the current value
/// matters).
const BUCKETS: [(&str, &str, i32, i64); 4] = [
    (NICKS, "nickname claims", 256, 64 << 20),
    (NODES, "node leases", 4 << 10, 1 << 20),
    (ACCOUNTS, "registered accounts", 4 << 10, 256 << 20),
    (ROOMS, "registered rooms", 64 << 10, 256 << 20),
];

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Copies of the stream and each bucket: 1 for one `nats-server`, 3 for a
    /// three-node NATS cluster.
    pub replicas: usize,
    /// The bound on [`Cluster::connect`] as a whole: the TCP connection, the version
    /// check and the JetStream setup (retried while a fresh NATS cluster elects its
    /// leaders).
    pub timeout: Duration,
    /// The bound on one JetStream request (and a publish's acknowledgement).
    pub request_timeout: Duration,
    /// The stream's size bound in bytes; when full, publishes are refused
    /// (`discard: new`, error 10077) rather than old events dropped unseen.
    pub stream_max_bytes: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            replicas: 1,
            timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            stream_max_bytes: 1 << 30,
        }
    }
}

/// Why the cluster could not be joined or a request failed, in words an operator can
/// act on.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No URL was given.
    #[error("no NATS URL given (--cluster nats://host:port[,...])")]
    NoUrl,
    /// A URL could not be read.
    #[error("bad NATS URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The node id cannot be used.
    #[error("bad node id {id:?}: {reason}")]
    BadNodeId {
        /// The id as given.
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// Nothing answered at any of the URLs.
    #[error(
        "NATS is unreachable at {urls}: {reason} (is nats-server running there? for example `nats-server -js -sd /tmp/nats -a 127.0.0.1 -p 4222`)"
    )]
    Unreachable {
        /// The URLs tried, comma-separated.
        urls: String,
        /// The last error.
        reason: String,
    },
    /// The server is older than [`MIN_SERVER`].
    #[error(
        "the NATS server at {urls} is version {found}; the cluster needs nats-server {needed} or newer"
    )]
    TooOld {
        /// The URLs.
        urls: String,
        /// The server's version.
        found: String,
        /// The oldest version accepted.
        needed: String,
    },
    /// The server runs without JetStream.
    #[error(
        "JetStream is not enabled on the NATS server at {urls}: start nats-server with -js (and -sd DIR for its store)"
    )]
    NoJetStream {
        /// The URLs.
        urls: String,
    },
    /// The stream or a bucket could not be made or opened.
    #[error("could not set up {what} in NATS JetStream: {reason}")]
    Setup {
        /// The stream or bucket.
        what: String,
        /// The last error.
        reason: String,
    },
    /// A request to NATS failed or was not answered in time.
    #[error("NATS request failed ({what}): {reason}")]
    Request {
        /// What was asked.
        what: &'static str,
        /// The error.
        reason: String,
    },
}

/// A connection to the cluster: the NATS client, the stream and the buckets. Cheap to
/// clone (the client is shared).
#[derive(Clone)]
pub struct Cluster {
    node: String,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    nicks: kv::Store,
    nodes: kv::Store,
    accounts: kv::Store,
    rooms: kv::Store,
    /// Counts the client's connections (see [`Cluster::connections`]).
    connections: watch::Receiver<u64>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("server", &self.client.server_info().version)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to NATS at `urls` as node `node_id` with the default [`Options`].
    pub async fn connect(urls: &[String], node_id: &str) -> Result<Cluster, ClusterError> {
        Cluster::connect_with(urls, node_id, &Options::default()).await
    }

    /// Connects to NATS at `urls` (any of them; the client fails over between them and
    /// those the server announces), checks the server's version, and gets or creates
    /// the stream and the buckets. Bounded by `options.timeout`.
    pub async fn connect_with(
        urls: &[String],
        node_id: &str,
        options: &Options,
    ) -> Result<Cluster, ClusterError> {
        check_node_id(node_id)?;
        if urls.is_empty() {
            return Err(ClusterError::NoUrl);
        }
        let addrs = urls
            .iter()
            .map(|url| {
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|e| ClusterError::BadUrl {
                        url: url.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let joined = urls.join(",");
        let deadline = Instant::now() + options.timeout;

        // Each (re)connection is counted, so that readers whose consumers lived on a
        // server that went away open again at once (see `copy_log`), rather than after
        // the client's idle heartbeats have been missed (about 15 s).
        let (connected, connections) = watch::channel(0u64);
        let connected = Arc::new(connected);
        let connecting = async_nats::ConnectOptions::new()
            .name(format!("chat-server {node_id}"))
            .event_callback(move |event| {
                let connected = connected.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            connected.send_modify(|n| *n += 1);
                            tracing::info!("connected to NATS");
                        }
                        async_nats::Event::Disconnected => tracing::warn!("NATS connection lost"),
                        other => tracing::debug!(event = %other, "NATS"),
                    }
                }
            })
            .connection_timeout(options.request_timeout.min(options.timeout))
            .request_timeout(Some(options.request_timeout))
            .connect(addrs);
        let client = match tokio::time::timeout_at(deadline, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                return Err(ClusterError::Unreachable {
                    urls: joined,
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(ClusterError::Unreachable {
                    urls: joined,
                    reason: format!("no answer within {:?}", options.timeout),
                });
            }
        };

        let (major, minor, patch) = MIN_SERVER;
        if !client.is_server_compatible(major, minor, patch) {
            return Err(ClusterError::TooOld {
                urls: joined,
                found: client.server_info().version,
                needed: format!("{major}.{minor}.{patch}"),
            });
        }

        let jetstream = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .build(client.clone());

        // JetStream answers once its meta leader exists (a fresh three-node NATS takes
        // about half a second); no responders at all means it is off. Asked directly:
        // async-nats 0.51's `query_account` cannot read 2.9's answer (it requires
        // `reserved_memory`, which servers send from 2.10 on).
        // Each try is bounded by `PROBE_TIMEOUT`: a cluster without a meta leader
        // leaves the request unanswered rather than refusing it.
        retry(deadline, "JetStream", || async {
            let asked = jetstream.request::<_, _, ApiReply>("INFO", &());
            let answer = tokio::time::timeout(PROBE_TIMEOUT, asked)
                .await
                .map_err(|_| Attempt::Again("no answer to the account request".to_owned()))?;
            match answer {
                Ok(ApiReply { error: None }) => Ok(()),
                Ok(ApiReply { error: Some(e) }) => Err(Attempt::Again(format!(
                    "{} (error {})",
                    e.description, e.err_code
                ))),
                Err(e) if e.kind() == jetstream::context::RequestErrorKind::NoResponders => {
                    Err(Attempt::Fatal(ClusterError::NoJetStream {
                        urls: joined.clone(),
                    }))
                }
                Err(e) => Err(Attempt::Again(e.to_string())),
            }
        })
        .await?;

        let stream_config = stream_config(options);
        let what = format!("the stream {STREAM}");
        retry(deadline, &what, || async {
            let stream = jetstream
                .get_or_create_stream(stream_config.clone())
                .await
                .map_err(|e| attempt(&what, &e))?;
            let found = &stream.cached_info().config;
            if found.subjects != stream_config.subjects {
                return Err(Attempt::Fatal(ClusterError::Setup {
                    what: what.clone(),
                    reason: format!(
                        "it exists with subjects {:?}, not {:?}",
                        found.subjects, stream_config.subjects
                    ),
                }));
            }
            if found.num_replicas != stream_config.num_replicas {
                tracing::warn!(
                    stream = STREAM,
                    found = found.num_replicas,
                    asked = stream_config.num_replicas,
                    "the stream exists with another number of replicas; keeping it"
                );
            }
            Ok(())
        })
        .await?;

        let mut stores = Vec::with_capacity(BUCKETS.len());
        for (bucket, description, max_value, max_bytes) in BUCKETS {
            let config = bucket_config(bucket, description, max_value, max_bytes, options);
            let what = format!("the KV bucket {bucket}");
            let store = retry(deadline, &what, || async {
                if let Ok(store) = jetstream.get_key_value(bucket).await {
                    return Ok(store);
                }
                // Made as a plain stream: async-nats's `create_key_value` first asks
                // for the account's info, which it cannot read from 2.9 (see above).
                // Creating a stream that exists with the same configuration succeeds,
                // so a race with another node is harmless.
                jetstream
                    .create_stream(config.clone())
                    .await
                    .map_err(|e| attempt(&what, &e))?;
                jetstream
                    .get_key_value(bucket)
                    .await
                    .map_err(|e| attempt(&what, &e))
            })
            .await?;
            stores.push(store);
        }
        let [nicks, nodes, accounts, rooms] = <[kv::Store; 4]>::try_from(stores)
            .unwrap_or_else(|_| unreachable!("one store per bucket"));

        tracing::info!(
            node = node_id,
            server = %client.server_info().version,
            urls = %joined,
            replicas = options.replicas,
            "joined the NATS cluster"
        );
        Ok(Cluster {
            node: node_id.to_owned(),
            client,
            jetstream,
            nicks,
            nodes,
            accounts,
            rooms,
            connections,
        })
    }

    /// The number of times this node has (re)connected to NATS, watched: it changes when
    /// the connection comes back after a loss.
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.connections.clone()
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The version the NATS server this node is connected to announced.
    pub fn server_version(&self) -> String {
        self.client.server_info().version
    }

    /// The stream's current configuration and state, as the server reports it.
    pub async fn stream_info(&self) -> Result<stream::Info, ClusterError> {
        let mut stream =
            self.jetstream
                .get_stream(STREAM)
                .await
                .map_err(|e| ClusterError::Request {
                    what: "stream info",
                    reason: e.to_string(),
                })?;
        stream
            .info()
            .await
            .cloned()
            .map_err(|e| ClusterError::Request {
                what: "stream info",
                reason: e.to_string(),
            })
    }

    /// The four buckets' streams as the server reports them (configuration and state),
    /// in the order nicks, nodes, accounts, rooms.
    pub async fn buckets(&self) -> Result<Vec<stream::Info>, ClusterError> {
        let mut infos = Vec::with_capacity(BUCKETS.len());
        for store in [&self.nicks, &self.nodes, &self.accounts, &self.rooms] {
            let status = store.status().await.map_err(|e| ClusterError::Request {
                what: "bucket status",
                reason: e.to_string(),
            })?;
            infos.push(status.info);
        }
        Ok(infos)
    }
}

/// The stream's configuration: file storage, `allow_direct` (reads of one event by
/// sequence without a consumer), a two-minute duplicate window for `Nats-Msg-Id`, and a
/// size bound with `discard: new`, so that a full stream refuses publishes rather than
/// dropping events a node may not have copied yet. No age limit: retention is a later
/// slice's decision.
fn stream_config(options: &Options) -> stream::Config {
    stream::Config {
        name: STREAM.to_owned(),
        description: Some("chat: every room and private event".to_owned()),
        subjects: vec![names::STREAM_SUBJECTS.to_owned()],
        storage: stream::StorageType::File,
        num_replicas: options.replicas,
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        discard: stream::DiscardPolicy::New,
        max_bytes: options.stream_max_bytes,
        max_message_size: STREAM_MAX_MESSAGE,
        ..Default::default()
    }
}

/// A KV bucket's stream, as async-nats's `create_key_value` would make it (its
/// `kv_to_stream_config`, for a bucket without mirror or sources): subjects
/// `$KV.<bucket>.>`, rollups allowed (a purge), deletes only as markers, direct gets,
/// `discard: new`; history 1.
fn bucket_config(
    bucket: &str,
    description: &str,
    max_value: i32,
    max_bytes: i64,
    options: &Options,
) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(format!("chat: {description}")),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_bytes,
        max_message_size: max_value,
        storage: stream::StorageType::File,
        num_replicas: options.replicas,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// A JetStream API answer, read only for its error (the rest varies between server
/// versions).
#[derive(serde::Deserialize)]
struct ApiReply {
    error: Option<ApiError>,
}

#[derive(serde::Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

fn check_node_id(id: &str) -> Result<(), ClusterError> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > 64 {
        Some("it is longer than 64 bytes")
    } else if !id.bytes().all(|b| b.is_ascii_graphic()) {
        Some("it may hold only printable ASCII characters, no spaces")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ClusterError::BadNodeId {
            id: id.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// One failed attempt: worth another try before the deadline, or not.
enum Attempt {
    Again(String),
    Fatal(ClusterError),
}

/// JetStream errors that another try will not mend: a stream or bucket that exists with
/// another configuration, a configuration the server refuses, JetStream off.
const PERMANENT: [u64; 6] = [10039, 10052, 10058, 10061, 10074, 10076];

fn attempt(what: &str, error: &(dyn std::error::Error + 'static)) -> Attempt {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(js) = e.downcast_ref::<jetstream::Error>()
            && PERMANENT.contains(&(js.error_code().0))
        {
            return Attempt::Fatal(ClusterError::Setup {
                what: what.to_owned(),
                reason: js.to_string(),
            });
        }
        source = e.source();
    }
    Attempt::Again(error_chain(error))
}

/// An error and its sources, as one line.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// Runs `step` until it succeeds, fails for good, or `deadline` passes (backing off
/// from 50 ms to 1 s between tries); the error then names `what` and the last reason.
async fn retry<T, F, Fut>(deadline: Instant, what: &str, mut step: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let mut pause = Duration::from_millis(50);
    loop {
        let reason = match tokio::time::timeout_at(deadline, step()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(Attempt::Fatal(e))) => return Err(e),
            Ok(Err(Attempt::Again(reason))) => reason,
            Err(_) => "no answer in time".to_owned(),
        };
        if Instant::now() + pause >= deadline {
            return Err(ClusterError::Setup {
                what: what.to_owned(),
                reason: format!("{reason} (gave up at the connect timeout)"),
            });
        }
        tracing::debug!(what, reason, "NATS not ready yet; trying again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

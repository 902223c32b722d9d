//! The accept loop: connection limits (total and per address), socket options, one task
//! per connection, and graceful shutdown (stop accepting, tell every client, wait a
//! bounded time).

use crate::config::Config;
use crate::hub::Hub;
use crate::session;
use crate::store::{self, Location, StoreOptions};
use chat_proto::{ErrorCode, ServerFrame};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

/// A server: its hub and limits. [`Server::run`] serves a listener; [`Server::stats`]
/// shows what it holds, for tests and operators.
#[derive(Clone)]
pub struct Server {
    hub: Arc<Hub>,
    config: Arc<Config>,
    /// The total connection limit in force.
    limit: usize,
    /// Permits for connections being served.
    connections: Arc<Semaphore>,
    /// Connections held by each address.
    per_ip: Arc<PerIp>,
    /// Permits for connections being told they are refused; past them a connection is
    /// closed without a word, so a flood of refusals cannot hold sockets of its own.
    refusals: Arc<Semaphore>,
    /// Every connection task, for shutdown.
    tracker: TaskTracker,
    /// Counts live connection tasks and failed accepts; wakes [`Server::wait_until`].
    gauge: Arc<Gauge>,
}

/// Live counters, and a wake-up for whoever waits on them.
#[derive(Default)]
struct Gauge {
    /// Connection tasks (served or being refused) whose work is not finished.
    tasks: AtomicUsize,
    /// Accepts that failed (EMFILE and the like) since the server started.
    accept_errors: AtomicU64,
    /// Woken whenever a counter moves down or an accept fails.
    changed: Notify,
}

/// One connection task, counted from accept to the end of its work. Its permits are
/// released before the count drops, so a waiter woken by the drop sees them released.
struct TaskGuard {
    gauge: Arc<Gauge>,
    permits: Option<Permits>,
}

impl TaskGuard {
    fn new(gauge: &Arc<Gauge>, permits: Option<Permits>) -> TaskGuard {
        gauge.tasks.fetch_add(1, Ordering::SeqCst);
        TaskGuard {
            gauge: gauge.clone(),
            permits,
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        drop(self.permits.take());
        self.gauge.tasks.fetch_sub(1, Ordering::SeqCst);
        self.gauge.changed.notify_waiters();
    }
}

/// Connections being refused with an error frame at once.
const MAX_REFUSALS: usize = 64;

/// What a server holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Connections being served (handshaking or named).
    pub connections: usize,
    /// Sessions that have a nickname.
    pub sessions: usize,
    /// Rooms that exist (a room exists while it has members).
    pub rooms: usize,
    /// Connection tasks alive, refusals included.
    pub tasks: usize,
    /// Accepts that failed (for example for lack of file descriptors) since the start;
    /// the accept loop backs off and carries on after each.
    pub accept_errors: u64,
    /// Addresses holding at least one connection.
    pub addresses: usize,
}

impl Server {
    /// A server with these limits. Opens its store (`config.db`), applying any schema
    /// migration; fails if the database cannot be opened.
    pub fn new(config: Config) -> io::Result<Server> {
        let limit = config.connection_limit();
        let location = match config.db.as_deref() {
            None | Some(":memory:") => Location::Memory,
            Some(path) => Location::File(path.into()),
        };
        let opened = store::open(&location, StoreOptions::default()).map_err(io::Error::other)?;
        let hub = Hub::new(
            config.room_capacity,
            opened.store,
            opened.next_id,
            opened.accounts,
        );
        Ok(Server {
            hub: Arc::new(hub),
            limit,
            connections: Arc::new(Semaphore::new(limit)),
            per_ip: Arc::new(PerIp::default()),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            tracker: TaskTracker::new(),
            gauge: Arc::new(Gauge::default()),
            config: Arc::new(config),
        })
    }

    /// The total connection limit in force.
    pub fn connection_limit(&self) -> usize {
        self.limit
    }

    /// What the server holds now.
    pub fn stats(&self) -> Stats {
        let (sessions, rooms) = self.hub.counts();
        Stats {
            connections: self.limit - self.connections.available_permits(),
            sessions,
            rooms,
            tasks: self.gauge.tasks.load(Ordering::SeqCst),
            accept_errors: self.gauge.accept_errors.load(Ordering::SeqCst),
            addresses: self.per_ip.len(),
        }
    }

    /// Waits until `done(stats)` holds, re-checking whenever a connection ends or an
    /// accept fails.
    pub async fn wait_until(&self, done: impl Fn(&Stats) -> bool) {
        loop {
            let ended = self.gauge.changed.notified();
            let mut ended = std::pin::pin!(ended);
            ended.as_mut().enable();
            if done(&self.stats()) {
                return;
            }
            ended.await;
        }
    }

    /// Serves `listener` until `shutdown` completes, then tells every client, waits for
    /// them at most the shutdown grace, and returns.
    pub async fn run(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let token = CancellationToken::new();
        tokio::select! {
            () = self.accept_loop(&listener, &token) => {}
            () = shutdown => info!("shutting down"),
        }
        drop(listener);
        token.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.config.shutdown_grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = self.tracker.len(),
                "shutdown grace over; dropping remaining connections"
            );
        }
        // Everything the sessions published is on disk before `run` returns.
        self.hub.flush().await;
        Ok(())
    }

    async fn accept_loop(&self, listener: &TcpListener, token: &CancellationToken) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => {
                    backoff = Duration::from_millis(10);
                    accepted
                }
                Err(e) => {
                    // EMFILE, ENFILE, ECONNABORTED...: wait and retry, never give up.
                    error!(error = %e, ?backoff, "accept failed");
                    self.gauge.accept_errors.fetch_add(1, Ordering::SeqCst);
                    self.gauge.changed.notify_waiters();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            configure(&stream, self.config.keepalive);
            let span = info_span!("conn", %peer, nick = tracing::field::Empty);
            match self.admit(peer.ip()) {
                Ok(permits) => {
                    let guard = TaskGuard::new(&self.gauge, Some(permits));
                    let (hub, config, token) =
                        (self.hub.clone(), self.config.clone(), token.clone());
                    self.tracker.spawn(
                        async move {
                            let (read, write) = stream.into_split();
                            let peer = session::Peer {
                                addr: peer,
                                tls: false,
                            };
                            session::serve(read, write, peer, hub, config, token).await;
                            drop(guard);
                        }
                        .instrument(span),
                    );
                }
                Err(refusal) => {
                    let Ok(permit) = self.refusals.clone().try_acquire_owned() else {
                        continue;
                    };
                    let guard = TaskGuard::new(&self.gauge, None);
                    self.tracker.spawn(
                        async move {
                            refuse(stream, refusal).await;
                            drop(permit);
                            drop(guard);
                        }
                        .instrument(span),
                    );
                }
            }
        }
    }

    /// Takes the permits a new connection from `ip` needs, or says which limit it hit.
    fn admit(&self, ip: IpAddr) -> Result<Permits, Refusal> {
        // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let exempt = ip.is_loopback() && !self.config.limit_loopback;
        let address = if exempt {
            None
        } else {
            let limit = self.config.max_per_ip;
            Some(PerIp::acquire(&self.per_ip, ip, limit).ok_or(Refusal::PerAddress { limit })?)
        };
        let total = self
            .connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full { limit: self.limit })?;
        Ok(Permits {
            _total: total,
            _address: address,
        })
    }
}

/// What a served connection holds; released when its task ends.
struct Permits {
    _total: OwnedSemaphorePermit,
    _address: Option<AddressPermit>,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Full { limit: usize },
    PerAddress { limit: usize },
}

/// Connection counts by address. A plain map under a mutex: touched once at accept and
/// once at close, never while a connection is being served.
#[derive(Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn acquire(this: &Arc<PerIp>, ip: IpAddr, limit: usize) -> Option<AddressPermit> {
        let mut counts = this.lock();
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressPermit {
            per_ip: this.clone(),
            ip,
        })
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// One connection counted against its address.
struct AddressPermit {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut counts = self.per_ip.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Low latency, and dead peers found by keepalive probes: a peer that answers none of 5
/// probes sent 10 s apart, after `idle` without traffic, is taken as gone.
fn configure(stream: &TcpStream, idle: Duration) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(Duration::from_secs(10))
        .with_retries(5);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// Tells a refused connection which limit it hit, then closes it.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let (code, text) = match refusal {
        Refusal::Full { limit } => {
            warn!(limit, "connection refused: server full");
            (
                ErrorCode::ServerFull,
                format!("the server is at its limit of {limit} connections"),
            )
        }
        Refusal::PerAddress { limit } => {
            warn!(limit, "connection refused: too many from this address");
            (
                ErrorCode::TooManyConnections,
                format!("your address already has {limit} connections, the most allowed"),
            )
        }
    };
    let reason = match refusal {
        Refusal::Full { .. } => "server full",
        Refusal::PerAddress { .. } => "too many connections from your address",
    };
    let frames = ServerFrame::encode_all(&[
        ServerFrame::Error { code, text },
        ServerFrame::Bye {
            reason: reason.into(),
        },
    ]);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(&frames).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serves `listener` with `config` until `shutdown` completes. The binary and the tests
/// call this; see [`Server`] for a server whose state can be inspected.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Server::new(config)?.run(listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_get_keepalive_and_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        configure(&accepted, Duration::from_secs(42));
        let sock = socket2::SockRef::from(&accepted);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(42));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 5);
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }

    #[test]
    fn per_address_permits_count_and_release() {
        let per_ip = Arc::new(PerIp::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = PerIp::acquire(&per_ip, ip, 2).unwrap();
        let b = PerIp::acquire(&per_ip, ip, 2).unwrap();
        assert!(PerIp::acquire(&per_ip, ip, 2).is_none());
        drop(a);
        let c = PerIp::acquire(&per_ip, ip, 2).unwrap();
        drop((b, c));
        assert_eq!(
            per_ip.len(),
            0,
            "no entry is left for an address with no connection"
        );
    }
}

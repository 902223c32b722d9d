//! The accept loops: connection limits (total and per address), socket options, one task
//! per connection, and graceful shutdown (stop accepting, tell every client, wait a
//! bounded time).
//!
//! Listeners are bound by [`listen`], with a backlog sized for bursts (the system's
//! maximum by default): a crowd connecting at once waits in the kernel's accept queue
//! rather than having its handshakes dropped.
//!
//! A server may listen on two sockets at once, plain TCP and TLS ([`Server::run_with`]):
//! both feed the same hub under the same limits and stop on the same shutdown. A TLS
//! connection is admitted like a plain one; its handshake runs in its own task (never in
//! the accept loop, so a slow or silent client holds up no one else), bounded by the
//! handshake timeout, and then the session runs over the decrypted stream.

use crate::config::Config;
use crate::core::ban::Ban;
use crate::core::hub::{Hub, RoomLimits};
use crate::core::metrics::{self, Door};
use crate::core::store::{self, Location, StoreOptions};
use crate::door::{irc, native};
use crate::net::driver::Peer;
use crate::net::web::{self, Web};
use chat_proto::LineEof;
use futures::FutureExt;
use futures::future::Either;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

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
/// A WebSocket's session takes it over from the HTTP connection it upgraded.
pub(crate) struct TaskGuard {
    gauge: Arc<Gauge>,
    permits: Option<Permits>,
    /// Counts a served connection as open in the metrics.
    open: Option<metrics::Open>,
}

impl TaskGuard {
    fn new(gauge: &Arc<Gauge>, permits: Option<Permits>) -> TaskGuard {
        gauge.tasks.fetch_add(1, Ordering::SeqCst);
        TaskGuard {
            gauge: gauge.clone(),
            permits,
            open: None,
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        drop((self.permits.take(), self.open.take()));
        self.gauge.tasks.fetch_sub(1, Ordering::SeqCst);
        self.gauge.changed.notify_waiters();
    }
}

/// Connections being refused with an error frame at once.
const MAX_REFUSALS: usize = 64;

/// Longest time spent telling a refused connection why (its TLS handshake included).
const REFUSAL_LIMIT: Duration = Duration::from_secs(2);

/// How the connections of one listener are carried.
#[derive(Clone)]
enum Transport {
    /// Plain TCP.
    Plain,
    /// TLS over TCP, with this certificate.
    Tls(TlsAcceptor),
    /// IRC (over TLS with this certificate if given): the IRC door.
    Irc(Option<TlsAcceptor>),
    /// HTTP (over TLS with this certificate if given): the web door.
    Http {
        web: Arc<Web>,
        router: axum::Router,
        tls: Option<TlsAcceptor>,
    },
}

/// The sockets a server listens on; each is optional, and all feed one hub under the same
/// limits and stop on the same shutdown.
#[derive(Default)]
pub struct Listeners {
    /// The native protocol over plain TCP.
    pub tcp: Option<TcpListener>,
    /// The native protocol over TLS, with this certificate.
    pub tls: Option<(TcpListener, TlsAcceptor)>,
    /// The web door over plain HTTP: the page, `/ws`, `/healthz`, `/metrics`.
    pub http: Option<TcpListener>,
    /// The web door over HTTPS, with this certificate.
    pub https: Option<(TcpListener, TlsAcceptor)>,
    /// The IRC door over plain TCP.
    pub irc: Option<TcpListener>,
    /// The IRC door over TLS, with this certificate.
    pub ircs: Option<(TcpListener, TlsAcceptor)>,
}

impl Transport {
    /// The door a connection of this listener is counted under; an HTTP connection
    /// counts as `ws` only once it becomes a WebSocket (see `web`).
    fn door(&self) -> Option<Door> {
        match self {
            Transport::Plain => Some(Door::Tcp),
            Transport::Tls(_) => Some(Door::Tls),
            Transport::Irc(None) => Some(Door::Irc),
            Transport::Irc(Some(_)) => Some(Door::Ircs),
            Transport::Http { .. } => None,
        }
    }
}

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
    /// Bytes of events the rooms hold in memory for members that fall behind.
    pub room_bytes: usize,
}

impl Server {
    /// A server with these limits; with `config.cluster`, a node of that cluster (see
    /// `docs/cluster.md`), caught up with the cluster's log before this returns. Fails
    /// if the database cannot be opened or the cluster joined.
    pub async fn start(config: Config) -> io::Result<Server> {
        let urls = config.cluster.clone();
        if urls.is_empty() {
            return Server::new(config);
        }
        let node_id = config.node_id.clone().unwrap_or_default();
        let options = crate::cluster::Options {
            replicas: usize::from(config.cluster_replicas),
            timeout: config.cluster_timeout,
            ..crate::cluster::Options::default()
        };
        let server = Server::standalone(config, true)?;
        crate::cluster::node::Node::start(&urls, &node_id, &options, &server.hub)
            .await
            .map_err(io::Error::other)?;
        Ok(server)
    }

    /// A server standing alone, with these limits. Opens its store (`config.db`),
    /// applying any schema migration; fails if the database cannot be opened, or if
    /// `config.cluster` is set (a node of a cluster is made by [`Server::start`]).
    pub fn new(config: Config) -> io::Result<Server> {
        if !config.cluster.is_empty() {
            return Err(io::Error::other(
                "a node of a cluster needs Server::start, which joins it",
            ));
        }
        Server::standalone(config, false)
    }

    /// A server over its store; `clustered`, without the store's accounts and
    /// registered rooms: a node of a cluster has those from the cluster's log, which it
    /// replays from its first entry (the store's, from before, would make its replay
    /// decide otherwise than the other nodes did).
    fn standalone(config: Config, clustered: bool) -> io::Result<Server> {
        let limit = config.connection_limit();
        let location = match config.db.as_deref() {
            None | Some(":memory:") => Location::Memory,
            Some(path) => Location::File(path.into()),
        };
        let options = StoreOptions {
            retention: config.history_retention,
            ..StoreOptions::default()
        };
        let opened = store::open(&location, options).map_err(io::Error::other)?;
        let rooms = RoomLimits {
            capacity: config.room_capacity,
            buffer: config.room_buffer,
            total_buffer: config.room_buffer_total,
            total: config.max_rooms_total,
            per_address: config.max_rooms_per_ip,
        };
        let hub = Hub::new(
            rooms,
            config.presence_limit,
            opened.store,
            opened.next_id,
            if clustered {
                Vec::new()
            } else {
                opened.accounts
            },
        )
        .with_operators(
            config
                .operators
                .iter()
                .map(|o| (o.name.clone(), o.hash.clone())),
        )
        .with_registered(if clustered { Vec::new() } else { opened.rooms })
        .with_bans(opened.server_bans);
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

    /// The settings in force.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn config_arc(&self) -> Arc<Config> {
        self.config.clone()
    }

    pub(crate) fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// Every connection task, for shutdown: WebSocket sessions are tracked here too.
    pub(crate) fn tracker(&self) -> TaskTracker {
        self.tracker.clone()
    }

    /// Whether the store takes writes.
    pub(crate) fn store_healthy(&self) -> bool {
        self.hub.store_healthy()
    }

    /// Counts a connection that a proxy on loopback forwards for `ip` against that
    /// address (the connection itself was admitted as loopback). No address is exempt
    /// here, loopback included: behind a proxy, loopback is the proxy. `Err`: the
    /// address has the most connections allowed.
    pub(crate) fn admit_forwarded(&self, ip: IpAddr) -> Result<AddressPermit, usize> {
        let limit = self.config.max_per_ip;
        PerIp::acquire(&self.per_ip, ip.to_canonical(), limit).ok_or(limit)
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
            room_bytes: self.hub.room_bytes(),
        }
    }

    /// The server's metrics in the OpenMetrics text format, which Prometheus scrapes
    /// (served at `/metrics`).
    pub fn metrics_text(&self) -> String {
        self.hub.metrics_text()
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
        self.run_with(listener, None, shutdown).await
    }

    /// Serves plain TCP on `plain` and, if given, TLS on the second listener with the
    /// acceptor's certificate (see [`crate::tls::acceptor`]), until `shutdown`
    /// completes; then stops both as [`Server::run`] does.
    pub async fn run_with(
        &self,
        plain: TcpListener,
        tls: Option<(TcpListener, TlsAcceptor)>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let listeners = Listeners {
            tcp: Some(plain),
            tls,
            ..Listeners::default()
        };
        self.serve(listeners, shutdown).await
    }

    /// Serves every listener given until `shutdown` completes; then stops accepting,
    /// tells every client, waits for them at most the shutdown grace, and returns once
    /// the store has what they published.
    pub async fn serve(
        &self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let token = CancellationToken::new();
        let web = Web::new(self.clone(), token.clone());
        let http = |tls| Transport::Http {
            web: web.clone(),
            router: web.router(),
            tls,
        };
        let mut bound = Vec::new();
        bound.extend(listeners.tcp.map(|l| (l, Transport::Plain)));
        bound.extend(listeners.tls.map(|(l, a)| (l, Transport::Tls(a))));
        bound.extend(listeners.http.map(|l| (l, http(None))));
        bound.extend(listeners.https.map(|(l, a)| (l, http(Some(a)))));
        bound.extend(listeners.irc.map(|l| (l, Transport::Irc(None))));
        bound.extend(listeners.ircs.map(|(l, a)| (l, Transport::Irc(Some(a)))));
        let loops = bound
            .iter()
            .map(|(listener, transport)| self.accept_loop(listener, transport.clone(), &token));
        // A node of a cluster that the others took for dead stops: they have quit its
        // users.
        let lost = async {
            match self.hub.log() {
                Some(log) => log.lost().await,
                None => std::future::pending().await,
            }
        };
        let mut lost_lease = false;
        tokio::select! {
            _ = futures::future::join_all(loops) => {}
            () = shutdown => info!("shutting down"),
            () = lost => {
                lost_lease = true;
                tracing::error!("the other nodes took this one for dead and quit its users: shutting down");
            }
        }
        drop(bound);
        drop(web);
        // Sessions in their handshake watch the token; the others hear it from the hub,
        // through their mailboxes.
        token.cancel();
        self.hub.shut_down();
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
        // In a cluster, the sessions' quits are in the log before the node goes (what
        // is not, the other nodes log once its lease goes stale).
        if let Some(log) = self.hub.log()
            && tokio::time::timeout(self.config.shutdown_grace, log.closed())
                .await
                .is_err()
        {
            warn!("shutdown grace over before every session's quit was in the cluster's log");
        }
        // Everything the sessions published is on disk before `run` returns, unless the
        // disk takes longer than the grace (then the writer thread finishes on its own
        // while the process exits, losing at most that batch).
        if tokio::time::timeout(self.config.shutdown_grace, self.hub.flush())
            .await
            .is_err()
        {
            warn!("shutdown grace over before the store was flushed");
        }
        if lost_lease {
            return Err(io::Error::other(
                "this node's lease in the cluster was taken (the other nodes took it for dead)",
            ));
        }
        Ok(())
    }

    async fn accept_loop(
        &self,
        listener: &TcpListener,
        transport: Transport,
        token: &CancellationToken,
    ) {
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
            // The handshake's deadline starts now, and covers TLS and `NICK` together.
            let deadline = tokio::time::Instant::now() + self.config.handshake_timeout;
            configure(&stream, &self.config);
            match self.admit(peer.ip()) {
                Ok(permits) => {
                    let mut guard = TaskGuard::new(&self.gauge, Some(permits));
                    guard.open = transport.door().map(|door| self.hub.metrics.accepted(door));
                    let (hub, config, token) =
                        (self.hub.clone(), self.config.clone(), token.clone());
                    let transport = transport.clone();
                    let session =
                        serve(stream, peer, transport, hub, config, token, deadline, guard);
                    self.tracker.spawn(session);
                }
                Err(refusal) => {
                    self.hub.metrics.refused(refusal.metric());
                    let Ok(permit) = self.refusals.clone().try_acquire_owned() else {
                        continue;
                    };
                    let guard = TaskGuard::new(&self.gauge, None);
                    let transport = transport.clone();
                    self.tracker.spawn(async move {
                        refuse(stream, peer, transport, refusal).await;
                        drop(permit);
                        drop(guard);
                    });
                }
            }
        }
    }

    /// Takes the permits a new connection from `ip` needs, or says which limit it hit.
    fn admit(&self, ip: IpAddr) -> Result<Permits, Admission> {
        // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        // Lock-free unless some address is banned.
        if let Some(ban) = self.hub.bans.address(ip, crate::core::event::now()) {
            return Err(Admission::Banned(Box::new(ban)));
        }
        let exempt = ip.is_loopback() && !self.config.limit_loopback;
        let address = if exempt {
            None
        } else {
            let limit = self.config.max_per_ip;
            Some(PerIp::acquire(&self.per_ip, ip, limit).ok_or(Admission::PerAddress { limit })?)
        };
        let total = self
            .connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| Admission::Full { limit: self.limit })?;
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

/// Which limit (or ban) refused a connection.
#[derive(Debug, Clone)]
pub(crate) enum Admission {
    Full {
        limit: usize,
    },
    PerAddress {
        limit: usize,
    },
    /// A server ban of the address (boxed: rare, and larger than the others).
    Banned(Box<Ban>),
}

/// Connection counts by address. A plain map under a mutex: touched once at accept and
/// once at close, never while a connection is being served.
#[derive(Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        crate::core::lock(&self.counts)
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
pub(crate) struct AddressPermit {
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

/// Binds a listener on `addr` whose kernel accept queue holds `backlog` connections (the
/// kernel caps it at `net.core.somaxconn`). Every listener of the server is made here:
/// Tokio's own `bind`, like the standard library's, asks for 128, which a burst of
/// connections overflows; a client whose handshake the kernel then drops waits in
/// silence for a retransmission (seconds), or for ever if it got a SYN cookie, while
/// the server, which speaks first, never hears of it.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // As Tokio and the standard library do: a restarted server can bind its port while
    // the old one's connections are in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// Low latency; dead peers found by keepalive probes (a peer that answers none of 5
/// probes sent 10 s apart, after `--keepalive` without traffic, is taken as gone); and a
/// bounded kernel send buffer, so that a client that stops reading holds at most about
/// twice `--send-buffer` of kernel memory (the kernel doubles the value for its
/// bookkeeping) instead of the auto-tuned maximum (4 MiB on Linux), and is noticed by
/// the write timeout once that is full.
fn configure(stream: &TcpStream, config: &Config) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(config.keepalive)
        .with_interval(Duration::from_secs(10))
        .with_retries(5);
    let socket = socket2::SockRef::from(stream);
    let _ = socket.set_tcp_keepalive(&keepalive);
    let _ = socket.set_send_buffer_size(config.send_buffer);
}

/// Runs one admitted connection from accept to close: the TLS handshake first if it
/// came to a TLS listener, then the session (or, on the web door, HTTP). Both
/// handshakes, TLS and `NICK`, must be done by `deadline`. `guard` (its permits) lives as
/// long as the connection; a WebSocket takes it over from its HTTP connection.
///
/// A plain function returning the session's future, not an `async fn`: an async wrapper
/// would keep its own copy of every argument for the connection's whole life.
#[allow(clippy::too_many_arguments)]
fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    transport: Transport,
    hub: Arc<Hub>,
    config: Arc<Config>,
    shutdown: CancellationToken,
    deadline: tokio::time::Instant,
    guard: TaskGuard,
) -> impl Future<Output = ()> + Send + 'static {
    let peer = move |tls| Peer {
        addr,
        tls,
        proxied: false,
        websocket: false,
    };
    match transport {
        // `map`, not an async block: one would keep a second copy of the session's
        // future.
        Transport::Plain => Either::Left(Either::Left(
            native::serve(Box::new(native::Start {
                stream,
                peer: peer(false),
                hub,
                config,
                shutdown,
                deadline,
            }))
            .map(move |()| drop(guard)),
        )),
        Transport::Irc(None) => Either::Left(Either::Right(
            irc::serve(Box::new(irc::Start {
                stream,
                peer: peer(false),
                hub,
                config,
                shutdown,
                deadline,
            }))
            .map(move |()| drop(guard)),
        )),
        // Boxed: a TLS connection's state (over 1 KB of rustls inline, and its
        // handshake) would otherwise widen every plain connection's task too.
        Transport::Tls(acceptor) => Either::Right(Box::pin(async move {
            let handshake = tls_handshake(&acceptor, stream, addr, deadline, &shutdown);
            let Some(stream) = handshake.await else {
                hub.metrics.handshake(false);
                return;
            };
            native::serve(Box::new(native::Start {
                stream: LineEof::new(stream),
                peer: peer(true),
                hub,
                config,
                shutdown,
                deadline,
            }))
            .await;
            drop(guard);
        })
            as Pin<Box<dyn Future<Output = ()> + Send>>),
        // Boxed for the same reason as native TLS; plain IRC runs unboxed above.
        Transport::Irc(Some(acceptor)) => Either::Right(Box::pin(async move {
            let handshake = tls_handshake(&acceptor, stream, addr, deadline, &shutdown);
            let Some(stream) = handshake.await else {
                hub.metrics.handshake(false);
                return;
            };
            irc::serve(Box::new(irc::Start {
                stream: LineEof::new(stream),
                peer: peer(true),
                hub,
                config,
                shutdown,
                deadline,
            }))
            .await;
            drop(guard);
        })
            as Pin<Box<dyn Future<Output = ()> + Send>>),
        Transport::Http { web, router, tls } => Either::Right(Box::pin(async move {
            match tls {
                None => web::serve_connection(stream, addr, false, router, guard, &web).await,
                Some(acceptor) => {
                    let handshake = tls_handshake(&acceptor, stream, addr, deadline, &shutdown);
                    if let Some(stream) = handshake.await {
                        web::serve_connection(stream, addr, true, router, guard, &web).await;
                    }
                }
            }
        })
            as Pin<Box<dyn Future<Output = ()> + Send>>),
    }
}

/// The TLS handshake of a new connection, by `deadline` and given up on shutdown. A
/// failure is logged (with the peer's address) and closes the socket: there is no
/// channel yet on which to tell the client anything.
async fn tls_handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
    token: &CancellationToken,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::select! {
        result = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => match result {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                info!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                info!(%peer, "TLS handshake timed out");
                None
            }
        },
        () = token.cancelled() => None,
    }
}

/// Tells a refused connection which limit it hit, then closes it.
///
/// On the TLS listener the handshake is done first, so that the client reads the reason
/// rather than sees a bare close. That costs a handshake per refusal, but refusals are
/// bounded: [`MAX_REFUSALS`] at once (past them a connection is closed without a word),
/// each within [`REFUSAL_LIMIT`].
async fn refuse(stream: TcpStream, peer: SocketAddr, transport: Transport, refusal: Admission) {
    refusal.log(peer);
    let frames = native::encode::admission(refusal.clone());
    let _ = tokio::time::timeout(REFUSAL_LIMIT, async {
        match transport {
            Transport::Plain => say_and_close(stream, &frames).await,
            Transport::Irc(None) => say_and_close(stream, &refusal.irc_error()).await,
            Transport::Irc(Some(acceptor)) => match acceptor.accept(stream).await {
                Ok(stream) => say_and_close(stream, &refusal.irc_error()).await,
                Err(e) => info!(%peer, error = %e, "TLS handshake failed"),
            },
            Transport::Tls(acceptor) => match acceptor.accept(stream).await {
                Ok(stream) => say_and_close(stream, &frames).await,
                Err(e) => info!(%peer, error = %e, "TLS handshake failed"),
            },
            Transport::Http { tls: None, .. } => {
                say_and_close(stream, &refusal.http_response()).await;
            }
            Transport::Http {
                tls: Some(acceptor),
                ..
            } => match acceptor.accept(stream).await {
                Ok(stream) => say_and_close(stream, &refusal.http_response()).await,
                Err(e) => info!(%peer, error = %e, "TLS handshake failed"),
            },
        }
    })
    .await;
}

/// Writes `frames`, then closes the connection (for TLS, with its close notification).
async fn say_and_close<S: AsyncWrite + Unpin>(mut stream: S, frames: &[u8]) {
    let _ = stream.write_all(frames).await;
    let _ = stream.shutdown().await;
}

impl Admission {
    /// The IRC door's refusal: `ERROR :<why>`.
    fn irc_error(&self) -> Vec<u8> {
        let why = match self {
            Admission::Full { limit } => format!("the server is full ({limit} connections)"),
            Admission::PerAddress { limit } => {
                format!("your address holds {limit} connections, the most allowed")
            }
            Admission::Banned(ban) => match &ban.reason {
                Some(reason) => format!("you are banned from this server: {reason}"),
                None => "you are banned from this server".into(),
            },
        };
        format!("ERROR :Closing link: {why}\r\n").into_bytes()
    }

    fn metric(&self) -> metrics::Refusal {
        match self {
            Admission::Full { .. } => metrics::Refusal::ServerFull,
            Admission::PerAddress { .. } => metrics::Refusal::PerAddress,
            Admission::Banned(_) => metrics::Refusal::Banned,
        }
    }

    fn log(&self, peer: SocketAddr) {
        match self {
            Admission::Banned(ban) => {
                info!(%peer, ban = %ban.target, "connection refused: banned");
            }
            Admission::Full { limit } => warn!(%peer, limit, "connection refused: server full"),
            Admission::PerAddress { limit } => {
                warn!(%peer, limit, "connection refused: too many from this address");
            }
        }
    }

    /// The HTTP response that tells a web client (503 whichever limit it hit, 403 for a
    /// ban).
    fn http_response(&self) -> Vec<u8> {
        if let Admission::Banned(ban) = self {
            let text = native::encode::banned_text(ban.reason.as_deref(), ban.until);
            return web::refusal_response("403 Forbidden", &text);
        }
        let text = match self {
            Admission::Banned(_) => unreachable!("answered above"),
            Admission::Full { limit } => {
                format!("the server is at its limit of {limit} connections")
            }
            Admission::PerAddress { limit } => {
                format!("your address already has {limit} connections, the most allowed")
            }
        };
        web::refusal_response("503 Service Unavailable", &text)
    }
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

/// Serves plain TCP on `plain` and TLS on `tls` (if given) with `config` until
/// `shutdown` completes; see [`Server::run_with`].
pub async fn run_with(
    plain: TcpListener,
    tls: Option<(TcpListener, TlsAcceptor)>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Server::new(config)?.run_with(plain, tls, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_get_keepalive_nodelay_and_a_bounded_send_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let config = Config {
            keepalive: Duration::from_secs(42),
            send_buffer: 64 * 1024,
            ..Config::default()
        };
        configure(&accepted, &config);
        let sock = socket2::SockRef::from(&accepted);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(42));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 5);
        assert!(accepted.nodelay().unwrap());
        // Linux doubles the value asked for; auto-tuning would start far higher.
        let sndbuf = sock.send_buffer_size().unwrap();
        assert!((64 * 1024..=128 * 1024).contains(&sndbuf), "{sndbuf}");
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

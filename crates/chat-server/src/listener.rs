//! The accept loop: connection limit, socket options, one task per connection, and
//! graceful shutdown (stop accepting, tell every client, wait a bounded time).

use crate::config::Config;
use crate::hub::Hub;
use crate::session;
use chat_proto::{ErrorCode, ServerFrame};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

/// A server: its hub and limits. [`Server::run`] serves a listener; [`Server::stats`]
/// shows what it holds, for tests and operators.
#[derive(Clone)]
pub struct Server {
    hub: Arc<Hub>,
    config: Arc<Config>,
    /// Permits for connections being served.
    connections: Arc<Semaphore>,
    /// Permits for connections being told the server is full; past them a connection is
    /// closed without a word, so a flood of refusals cannot hold sockets of its own.
    refusals: Arc<Semaphore>,
}

/// Connections being refused with `ERR SERVER_FULL` at once.
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
}

impl Server {
    /// A server with these limits.
    pub fn new(config: Config) -> Server {
        let hub = Arc::new(Hub::new(config.room_capacity));
        let connections = Arc::new(Semaphore::new(config.max_connections));
        let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
        Server {
            hub,
            config: Arc::new(config),
            connections,
            refusals,
        }
    }

    /// What the server holds now.
    pub fn stats(&self) -> Stats {
        let (sessions, rooms) = self.hub.counts();
        let connections = self.config.max_connections - self.connections.available_permits();
        Stats {
            connections,
            sessions,
            rooms,
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
        let tracker = TaskTracker::new();
        tokio::select! {
            () = self.accept_loop(&listener, &token, &tracker) => {}
            () = shutdown => info!("shutting down"),
        }
        drop(listener);
        token.cancel();
        tracker.close();
        if tokio::time::timeout(self.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = tracker.len(),
                "shutdown grace over; dropping remaining connections"
            );
        }
        Ok(())
    }

    async fn accept_loop(
        &self,
        listener: &TcpListener,
        token: &CancellationToken,
        tracker: &TaskTracker,
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
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            configure(&stream);
            let span = info_span!("conn", %peer, nick = tracing::field::Empty);
            match self.connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    let (hub, config, token) =
                        (self.hub.clone(), self.config.clone(), token.clone());
                    tracker.spawn(
                        async move {
                            session::serve(stream, hub, config, token).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Err(_) => {
                    let limit = self.config.max_connections;
                    if let Ok(permit) = self.refusals.clone().try_acquire_owned() {
                        tracker.spawn(
                            async move {
                                refuse(stream, limit).await;
                                drop(permit);
                            }
                            .instrument(span),
                        );
                    }
                }
            }
        }
    }
}

/// Low latency, and dead peers found by keepalive probes.
fn configure(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(5);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// Tells a connection past the limit why it is closed.
async fn refuse(mut stream: TcpStream, limit: usize) {
    warn!(limit, "connection refused: server full");
    let frames = ServerFrame::encode_all(&[
        ServerFrame::Error {
            code: ErrorCode::ServerFull,
            text: format!("the server is at its limit of {limit} connections"),
        },
        ServerFrame::Bye {
            reason: "server full".into(),
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
    Server::new(config).run(listener, shutdown).await
}

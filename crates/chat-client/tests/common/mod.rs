//! A real chat server in the test's own runtime, and helpers to wait with a bound.

use chat_proto::{LineCodec, ServerFrame};
use futures::{SinkExt, StreamExt};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// Bound on every wait in the tests; a failure shows up as a panic, never a hang.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// `fut`, or a panic naming `what` if it takes longer than [`WAIT`].
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A `chat_server::run` on `127.0.0.1:0`, shut down when [`TestServer::shutdown`] is
/// called or the value is dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        TestServer::serve(listener)
    }

    /// A server on `addr`, which another server has just released: binding may take a
    /// few tries while the old sockets close (bounded by [`WAIT`]).
    pub(crate) async fn start_on(addr: SocketAddr) -> TestServer {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => return TestServer::serve(listener),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    // Not a synchronisation: a pause between bounded retries.
                    eprintln!("binding {addr} again: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot bind {addr} again: {e}"),
            }
        }
    }

    fn serve(listener: TcpListener) -> TestServer {
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(chat_server::run(
            listener,
            chat_server::Config::unthrottled(),
            shutdown,
        ));
        TestServer {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Starts the server's graceful shutdown and waits for it to finish.
    pub(crate) async fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            within("the server to shut down", task)
                .await
                .expect("server task")
                .expect("server result");
        }
    }
}

/// An address on which nothing listens: bound, then released.
pub(crate) async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr
}

/// Another user, speaking the protocol directly over TCP.
pub(crate) struct Peer {
    framed: Framed<TcpStream, LineCodec>,
}

impl Peer {
    /// Connects, registers `nick` and waits until it is talking in `#general`.
    pub(crate) async fn connect(addr: SocketAddr, nick: &str) -> Peer {
        let stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let mut peer = Peer {
            framed: Framed::new(stream, LineCodec::new(chat_proto::CLIENT_MAX_LINE)),
        };
        peer.expect("NICK", |f| *f == ServerFrame::NickPrompt).await;
        peer.send(nick).await;
        peer.expect("WELCOME", |f| matches!(f, ServerFrame::Welcome { .. }))
            .await;
        peer.expect("CURRENT", |f| matches!(f, ServerFrame::Current { .. }))
            .await;
        peer
    }

    pub(crate) async fn send(&mut self, line: &str) {
        within("a write", self.framed.send(line))
            .await
            .expect("send");
    }

    /// Reads frames until one matches `pred`, skipping the others.
    pub(crate) async fn expect(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&ServerFrame) -> bool,
    ) -> ServerFrame {
        within(what, async {
            loop {
                let line = self
                    .framed
                    .next()
                    .await
                    .unwrap_or_else(|| panic!("connection closed waiting for {what}"))
                    .expect("read")
                    .expect("line");
                let frame = ServerFrame::parse(&line).expect("valid frame");
                if pred(&frame) {
                    return frame;
                }
            }
        })
        .await
    }
}

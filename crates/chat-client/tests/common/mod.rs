//! A real chat server in the test's own runtime, and helpers to wait with a bound.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bound on every wait in the tests; a failure shows up as a panic, never a hang.
pub const WAIT: Duration = Duration::from_secs(10);

/// `fut`, or a panic naming `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A `chat_server::run` on `127.0.0.1:0`, shut down when [`TestServer::shutdown`] is
/// called or the value is dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(chat_server::run(
            listener,
            chat_server::Config::default(),
            shutdown,
        ));
        TestServer {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Starts the server's graceful shutdown and waits for it to finish.
    pub async fn shutdown(&mut self) {
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
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr
}

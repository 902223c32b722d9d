//! Real `nats-server` processes for the cluster tests: one node ([`NatsServer`]) or a
//! JetStream cluster ([`NatsCluster`]), on loopback, on ports the server picks (its log
//! says which), each with a temporary store directory. Every wait has a deadline and
//! waits for an event (a log line, an exit, an answer), never for a fixed time. Processes
//! are stopped by PID: SIGTERM, then SIGKILL if they have not exited in time.
//!
//! The tests need `nats-server` (Debian's package: `apt-get install nats-server`, which
//! puts it in /usr/sbin); without it they fail with that advice, in CI and outside.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a node may take to say it is ready, or a cluster to answer JetStream.
pub const NATS_START: Duration = Duration::from_secs(20);

/// The longest a node may take to exit after SIGTERM before it gets SIGKILL.
pub const NATS_STOP: Duration = Duration::from_secs(10);

/// The `nats-server` binary: on `PATH`, or Debian's /usr/sbin (not on a user's `PATH`).
/// Panics with install advice when there is none.
pub fn nats_server_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .collect::<Vec<_>>()
    });
    let found = on_path
        .chain([PathBuf::from("/usr/sbin/nats-server")])
        .find(|path| path.is_file());
    match found {
        Some(path) => path,
        None => {
            let context = if std::env::var_os("CI").is_some() {
                "CI must run these tests: .ci/run installs it with apt when missing"
            } else {
                "the cluster tests start real NATS servers"
            };
            panic!(
                "nats-server not found on PATH or in /usr/sbin ({context}). Install it: \
                 `sudo apt-get install nats-server` on Debian or Ubuntu, or a release \
                 from https://github.com/nats-io/nats-server/releases (2.9 or newer)"
            )
        }
    }
}

/// One running (or stopped) `nats-server` process and what its log said.
struct Process {
    pid: u32,
    /// The exit status, sent once by the thread that waits for the process.
    exited: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    /// Every line the server logged, for failure messages.
    log: Arc<Mutex<Vec<String>>>,
}

/// What a starting server's log told us.
struct Started {
    process: Process,
    client_port: u16,
}

fn spawn(args: &[String], deadline: Instant) -> Result<Started, String> {
    let mut child = Command::new(nats_server_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start nats-server: {e}"))?;
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (lines_tx, lines) = mpsc::channel::<String>();
    // The reader keeps draining after start, so that the server never blocks on a full
    // pipe; it ends at the server's exit.
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            kept.lock().unwrap().push(line.clone());
            let _ = lines_tx.send(line);
        }
    });
    let (exit_tx, exited) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = exit_tx.send(status);
        }
    });
    let mut process = Process {
        pid,
        exited,
        status: None,
        log,
    };
    let mut client_port = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(port) = port_after(&line, "Listening for client connections on ") {
                    client_port = Some(port);
                }
                if line.contains("Server is ready") {
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                process.wait(deadline);
                return Err(format!(
                    "nats-server exited before it was ready:\n{}",
                    process.log()
                ));
            }
            Err(RecvTimeoutError::Timeout) => {
                process.kill();
                return Err(format!(
                    "nats-server not ready within {NATS_START:?}:\n{}",
                    process.log()
                ));
            }
        }
    }
    let client_port = match client_port {
        Some(port) => port,
        None => {
            process.kill();
            return Err(format!("no client port in the log:\n{}", process.log()));
        }
    };
    Ok(Started {
        process,
        client_port,
    })
}

/// The port at the end of `line` after `marker` (`... on 127.0.0.1:4222`).
fn port_after(line: &str, marker: &str) -> Option<u16> {
    let (_, address) = line.split_once(marker)?;
    address.trim().rsplit_once(':')?.1.parse().ok()
}

impl Process {
    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn running(&mut self) -> bool {
        if self.status.is_none()
            && let Ok(status) = self.exited.try_recv()
        {
            self.status = Some(status);
        }
        self.status.is_none()
    }

    fn signal(&mut self, signal: &str) {
        // Only while our waiter has not reaped it, so the PID is still ours.
        if self.running() {
            let _ = Command::new("kill")
                .args([signal, &self.pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Waits for the exit until `deadline`; whether it came.
    fn wait(&mut self, deadline: Instant) -> bool {
        if self.status.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(status) = self.exited.recv_timeout(left) {
                self.status = Some(status);
            }
        }
        self.status.is_some()
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`NATS_STOP`].
    fn stop(&mut self) {
        self.signal("-TERM");
        if !self.wait(Instant::now() + NATS_STOP) {
            self.kill();
        }
    }

    /// SIGKILL, and wait for the exit.
    fn kill(&mut self) {
        self.signal("-KILL");
        assert!(
            self.wait(Instant::now() + NATS_STOP),
            "nats-server {} survived SIGKILL",
            self.pid
        );
    }
}

/// One `nats-server -js` on loopback with a temporary store.
pub struct NatsServer {
    process: Option<Process>,
    port: u16,
    /// `-js`, unless started with [`NatsServer::start_without_jetstream`].
    jetstream: bool,
    /// Extra arguments (a cluster node's name, cluster port and routes).
    extra: Vec<String>,
    store: PathBuf,
    /// Removed after the process has stopped (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a node on a port it picks; panics (with its log) if it is not ready in
    /// [`NATS_START`].
    pub fn start() -> NatsServer {
        NatsServer::start_with(true, Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a node without JetStream (no `-js`), for the error it must cause.
    pub fn start_without_jetstream() -> NatsServer {
        NatsServer::start_with(false, Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn start_with(jetstream: bool, extra: Vec<String>) -> Result<NatsServer, String> {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let started = spawn(
            &args(jetstream, &store, None, &extra),
            Instant::now() + NATS_START,
        )?;
        Ok(NatsServer {
            process: Some(started.process),
            port: started.client_port,
            jetstream,
            extra,
            store,
            _dir: dir,
        })
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// The store directory (kept across [`NatsServer::restart`]).
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// Everything the server has logged.
    pub fn log(&self) -> String {
        self.process.as_ref().map(Process::log).unwrap_or_default()
    }

    /// SIGTERM (a clean shutdown), waiting for the exit; SIGKILL if it takes longer than
    /// [`NATS_STOP`].
    pub fn stop(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.stop();
        }
    }

    /// SIGKILL (a crash), waiting for the exit.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.kill();
        }
    }

    /// Starts the server again (stopping it first if it runs) on the same client port
    /// and store directory.
    pub fn restart(&mut self) {
        self.stop();
        let started = spawn(
            &args(self.jetstream, &self.store, Some(self.port), &self.extra),
            Instant::now() + NATS_START,
        )
        .unwrap_or_else(|e| panic!("restart: {e}"));
        assert_eq!(started.client_port, self.port);
        self.process = Some(started.process);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn args(jetstream: bool, store: &Path, port: Option<u16>, extra: &[String]) -> Vec<String> {
    let port = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
    let mut args = Vec::new();
    if jetstream {
        args.extend([
            "-js".to_owned(),
            "-sd".to_owned(),
            store.display().to_string(),
        ]);
    }
    args.extend(["-a", "127.0.0.1", "-p", &port].map(str::to_owned));
    args.extend(extra.iter().cloned());
    args
}

/// A JetStream cluster of `nats-server` nodes on loopback.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes named `n1`... in the cluster `chat`, each routed to all, and
    /// returns once JetStream answers through a client (a meta leader exists; the
    /// monitoring `/healthz` says ok before that). Panics after [`NATS_START`].
    ///
    /// A cluster needs its route ports before it starts (a first node with no routes
    /// refuses to run JetStream), so they are reserved by binding port 0 and closing;
    /// another process could take one meanwhile, so a start whose node cannot bind is
    /// tried again with fresh ports, three times.
    pub async fn start(size: usize) -> NatsCluster {
        let mut failure = String::new();
        for _ in 0..3 {
            match NatsCluster::try_start(size) {
                Ok(cluster) => {
                    cluster.wait_for_jetstream().await;
                    return cluster;
                }
                Err(e) => failure = e,
            }
        }
        panic!("a NATS cluster of {size} did not start: {failure}");
    }

    fn try_start(size: usize) -> Result<NatsCluster, String> {
        let listeners: Vec<std::net::TcpListener> = (0..size)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(listeners);
        let routes = ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        // Started one after another: each start takes tens of milliseconds.
        let mut nodes = Vec::with_capacity(size);
        for (i, port) in ports.iter().enumerate() {
            let extra = vec![
                "-n".to_owned(),
                format!("n{}", i + 1),
                "--cluster_name".to_owned(),
                "chat".to_owned(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{port}"),
                "--routes".to_owned(),
                routes.clone(),
            ];
            nodes.push(NatsServer::start_with(true, extra)?);
        }
        Ok(NatsCluster { nodes })
    }

    /// Waits until every node answers a JetStream account request.
    async fn wait_for_jetstream(&self) {
        let deadline = tokio::time::Instant::now() + NATS_START;
        for node in &self.nodes {
            let client = tokio::time::timeout_at(deadline, async_nats::connect(node.url()))
                .await
                .expect("a cluster node accepts a client in time")
                .expect("a cluster node accepts a client");
            // A short timeout: without a meta leader, the request goes unanswered
            // (measured: the first one, sent at once, waited out its 10 s default).
            let jetstream = async_nats::jetstream::ContextBuilder::new()
                .timeout(Duration::from_millis(250))
                .build(client);
            // The account info request, read as JSON: async-nats 0.51's `query_account`
            // cannot parse 2.9's answer (no `reserved_memory`).
            let info = || async {
                match jetstream
                    .request::<_, _, serde_json::Value>("INFO", &())
                    .await
                {
                    Ok(reply) => match reply.get("error") {
                        None => Ok(()),
                        Some(error) => Err(error.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                }
            };
            loop {
                match tokio::time::timeout_at(deadline, info()).await {
                    Ok(Ok(())) => break,
                    // Not ready yet (no meta leader): ask again shortly.
                    Ok(Err(e)) => {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "JetStream not ready within {NATS_START:?} on {}: {e}\n{}",
                            node.url(),
                            node.log()
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(_) => panic!(
                        "JetStream not ready within {NATS_START:?} on {}:\n{}",
                        node.url(),
                        node.log()
                    ),
                }
            }
        }
    }

    /// Every node's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// Node `i` (from 0).
    pub fn node(&mut self, i: usize) -> &mut NatsServer {
        &mut self.nodes[i]
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// SIGTERM node `i`.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].stop();
    }
}

//! Test harness: a real server on 127.0.0.1:0 and raw protocol clients that talk to it.
//! Every wait is bounded by [`WAIT`]; nothing sleeps.

#![allow(dead_code, unreachable_pub)]

use chat_proto::{LineCodec, Nick, Room, ServerFrame};
use chat_server::{Config, Server, Stats};
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

pub mod irc;
pub mod nats;

/// The longest any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The longest the binary may take to start listening.
pub const START_WAIT: Duration = Duration::from_secs(20);

pub struct TestServer {
    pub addr: SocketAddr,
    /// The web door: the page, `/ws`, `/healthz`, `/metrics`.
    pub http: SocketAddr,
    /// The IRC door.
    pub irc: SocketAddr,
    pub server: Server,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with(Config::unthrottled()).await
    }

    pub async fn with(config: Config) -> TestServer {
        // Bound as the binary binds, with the server's backlog.
        let listener = chat_server::listen(loopback(), config.listen_backlog()).unwrap();
        let addr = listener.local_addr().unwrap();
        let http_listener = chat_server::listen(loopback(), config.listen_backlog()).unwrap();
        let http = http_listener.local_addr().unwrap();
        let irc_listener = chat_server::listen(loopback(), config.listen_backlog()).unwrap();
        let irc = irc_listener.local_addr().unwrap();
        let server = Server::start(config).await.expect("server starts");
        let (stop, stopped) = oneshot::channel::<()>();
        let runner = server.clone();
        let listeners = chat_server::Listeners {
            tcp: Some(listener),
            http: Some(http_listener),
            irc: Some(irc_listener),
            ..Default::default()
        };
        let task = tokio::spawn(async move {
            runner
                .serve(listeners, async {
                    let _ = stopped.await;
                })
                .await
        });
        TestServer {
            addr,
            http,
            irc,
            server,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn stats(&self) -> Stats {
        self.server.stats()
    }

    /// A connection that has read the `NICK` prompt.
    pub async fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let mut client = Client::new(stream);
        assert_eq!(client.recv().await, ServerFrame::NickPrompt);
        client
    }

    /// A connection from the loopback address `source` (127.0.0.2 and so on are
    /// loopback too: to the server, another client address) that has read `NICK`.
    pub async fn connect_from(&self, source: std::net::Ipv4Addr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        let mut client = Client::new(socket.connect(self.addr).await.unwrap());
        assert_eq!(client.recv().await, ServerFrame::NickPrompt);
        client
    }

    /// A client that has finished the handshake and the join to #general.
    pub async fn login(&self, nick: &str) -> Client {
        let mut client = self.connect().await;
        client.login(nick).await;
        client
    }

    /// Registers `nick` with `password` on a fresh login from 127.0.0.1, and leaves.
    pub async fn register(&self, nick: &str, password: &str) {
        let mut client = self.login(nick).await;
        client.send(&format!("/register {password}")).await;
        let (frame, _) = client
            .until(|f| matches!(f, ServerFrame::Account { .. } | ServerFrame::Error { .. }))
            .await;
        assert_eq!(
            frame,
            ServerFrame::Account {
                nick: crate::common::nick(nick),
                status: chat_proto::AccountStatus::Registered
            }
        );
        client.send("/quit").await;
        client.closed().await;
    }

    /// Asks the server to shut down and waits for `run` to return.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("server stops in time")
                .unwrap()
                .unwrap();
        }
    }
}

pub struct Client {
    pub framed: Framed<TcpStream, LineCodec>,
    pub nick: Option<Nick>,
    pings: u64,
}

impl Client {
    pub fn new(stream: TcpStream) -> Client {
        Client {
            framed: Framed::new(stream, LineCodec::new(chat_proto::CLIENT_MAX_LINE)),
            nick: None,
            pings: 0,
        }
    }

    /// Answers the prompt and checks the welcome sequence.
    pub async fn login(&mut self, nick: &str) {
        self.send(nick).await;
        let me = Nick::new(nick).unwrap();
        assert_eq!(
            self.recv().await,
            ServerFrame::Welcome {
                nick: me.clone(),
                text: format!("Welcome to the chat, {nick}!")
            }
        );
        match self.recv().await {
            ServerFrame::Join { room, nick, .. } => {
                assert_eq!(room, Room::general());
                assert_eq!(nick, me);
            }
            other => panic!("expected JOIN, got {other:?}"),
        }
        assert!(
            matches!(self.recv().await, ServerFrame::Members { room, members } if room == Room::general() && members.iter().any(|m| m.nick == me))
        );
        assert_eq!(
            self.recv().await,
            ServerFrame::Current {
                room: Some(Room::general())
            }
        );
        self.nick = Some(me);
    }

    pub async fn send(&mut self, line: &str) {
        self.framed.send(line).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.framed.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next raw line, or `None` at end of stream.
    pub async fn recv_line(&mut self) -> Option<String> {
        match tokio::time::timeout(WAIT, self.framed.next())
            .await
            .expect("a frame arrives in time")
        {
            None => None,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Some(item) => Some(item.unwrap().expect("server lines are valid")),
        }
    }

    /// The next frame; panics at end of stream.
    pub async fn recv(&mut self) -> ServerFrame {
        let line = self.recv_line().await.expect("connection open");
        ServerFrame::parse(&line).unwrap_or_else(|e| panic!("bad frame {line:?}: {e}"))
    }

    /// Sends `/ping` and returns every frame that came before the `PONG`: everything the
    /// earlier lines caused, with nothing left in flight.
    pub async fn sync(&mut self) -> Vec<ServerFrame> {
        self.pings += 1;
        let token = format!("sync-{}", self.pings);
        self.send(&format!("/ping {token}")).await;
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                ServerFrame::Pong { token: Some(t) } if t == token => return seen,
                frame => seen.push(frame),
            }
        }
    }

    /// Reads frames until one matches, returning it; the frames skipped are returned too.
    pub async fn until(
        &mut self,
        what: impl Fn(&ServerFrame) -> bool,
    ) -> (ServerFrame, Vec<ServerFrame>) {
        let mut skipped = Vec::new();
        loop {
            let frame = self.recv().await;
            if what(&frame) {
                return (frame, skipped);
            }
            skipped.push(frame);
        }
    }

    /// Reads until the server closes the connection, returning what came before.
    pub async fn closed(&mut self) -> Vec<ServerFrame> {
        let mut seen = Vec::new();
        while let Some(line) = self.recv_line().await {
            seen.push(ServerFrame::parse(&line).unwrap());
        }
        seen
    }
}

/// The index in a `NatsCluster` of the NATS node named `name` (`n1`, `n2`...).
pub fn nats_index(name: &str) -> usize {
    name.strip_prefix('n')
        .and_then(|n| n.parse::<usize>().ok())
        .expect("NATS nodes are named n1, n2, n3")
        - 1
}

/// The NATS node leading the cluster's stream, as `cluster` sees it: its name and its
/// index in the `NatsCluster`.
pub async fn stream_leader(cluster: &chat_server::cluster::Cluster) -> (String, usize) {
    let leader = cluster
        .stream_info()
        .await
        .unwrap()
        .cluster
        .and_then(|c| c.leader)
        .expect("the stream has a leader");
    let index = nats_index(&leader);
    (leader, index)
}

/// 127.0.0.1 on a port the system chooses.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A TLS client configuration that trusts exactly `roots`, with the ring provider.
pub fn connector(
    roots: &[rustls::pki_types::CertificateDer<'static>],
) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

pub fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}

pub fn room(s: &str) -> Room {
    Room::new(s).unwrap()
}

/// The text of a `MSG` frame in `room` from `from`, if it is one.
pub fn msg_text<'a>(frame: &'a ServerFrame, in_room: &str, who: &str) -> Option<&'a str> {
    match frame {
        ServerFrame::Message {
            room, from, text, ..
        } if room.as_str() == in_room && from.as_str() == who => Some(text),
        _ => None,
    }
}

impl TestServer {
    /// A logged-in client whose socket receive buffer is tiny, so that it holds back the
    /// server as soon as it stops reading.
    pub async fn login_small_buffer(&self, nick: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut client = Client::new(socket.connect(self.addr).await.unwrap());
        assert_eq!(client.recv().await, ServerFrame::NickPrompt);
        client.login(nick).await;
        client
    }

    /// Has `flooder` (logged in, in #general) send `count` lines of `size` bytes as fast
    /// as the server takes them, and returns once it has seen all its echoes: every
    /// message has then been broadcast. The flooder quits afterwards.
    pub async fn flood_general(&self, flooder: Client, count: usize, size: usize) {
        use tokio::io::AsyncWriteExt;
        let nick = flooder.nick.clone().expect("the flooder is logged in");
        let (read, mut write) = flooder.framed.into_inner().into_split();
        let body = "f".repeat(size);
        let writer = tokio::spawn(async move {
            for i in 0..count {
                write
                    .write_all(format!("{i} {body}\n").as_bytes())
                    .await
                    .unwrap();
            }
            write
        });
        let mut echoes =
            tokio_util::codec::FramedRead::new(read, LineCodec::new(chat_proto::CLIENT_MAX_LINE));
        let mine = format!("MSG #general {nick} ");
        let mut seen = 0;
        while seen < count {
            let line = tokio::time::timeout(WAIT, echoes.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
                .unwrap();
            seen += usize::from(line.starts_with(&mine));
        }
        let mut write = writer.await.unwrap();
        let _ = write.write_all(b"/quit\n").await;
    }
}

/// The binary, started with `args` (JSON logs), and what its start log said: every
/// line up to the last `listening` one, as JSON.
pub struct Started {
    pub child: tokio::process::Child,
    pub log: Vec<serde_json::Value>,
}

impl Started {
    /// Starts the binary with `args` and `env`, and reads its log until it has said
    /// `listening` `listeners` times; then keeps draining it.
    pub async fn spawn(args: &[&str], env: &[(&str, &str)], listeners: usize) -> Started {
        // No web or IRC door unless asked for: their default ports are fixed, and tests
        // run at once.
        let web: &[&str] = if args.contains(&"--http-addr") {
            &[]
        } else {
            &["--http-addr", "off"]
        };
        let irc: &[&str] = if args.contains(&"--irc-addr") {
            &[]
        } else {
            &["--irc-addr", "off"]
        };
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(args)
            .args(web)
            .args(irc)
            .envs(env.iter().copied())
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        tokio::time::timeout(START_WAIT, async {
            let mut seen = 0;
            while seen < listeners {
                let line = stderr.next_line().await.unwrap().expect("a start log");
                let entry: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("the server said: {line}"));
                let message = entry["fields"]["message"].as_str().unwrap_or_default();
                seen += usize::from(message.starts_with("listening"));
                log.push(entry);
            }
        })
        .await
        .expect("the server starts in time");
        // Keep draining its log, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        Started { child, log }
    }

    /// The field `field` of the log line whose message is `message`.
    pub fn logged(&self, message: &str, field: &str) -> &serde_json::Value {
        let entry = self
            .log
            .iter()
            .find(|e| e["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in the start log: {:?}", self.log));
        &entry["fields"][field]
    }

    /// Sends `signal` (`-STOP`, `-CONT`...) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }
}

//! TLS: a server serving plain TCP and TLS at once, one hub behind both; clients that do
//! not trust its certificate, or never finish the handshake; refusals told over TLS;
//! and `chat-server gen-cert`.
//!
//! Every wait is bounded by [`WAIT`]; nothing sleeps to synchronise.

mod common;

use chat_proto::{ErrorCode, LineCodec, ServerFrame};
use chat_server::{Config, Server, tls};
use futures::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

/// The longest any single expected event may take.
const WAIT: Duration = Duration::from_secs(10);

/// `fut`, or a panic naming `what` if it takes longer than [`WAIT`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A server on two loopback ports, plain and TLS, with a fresh self-signed certificate
/// for `localhost` and `127.0.0.1`.
struct TlsServer {
    plain: SocketAddr,
    tls: SocketAddr,
    server: Server,
    /// The server's certificate, for clients that trust it.
    cert: CertificateDer<'static>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// Holds the PEM files while the server runs.
    _dir: tempfile::TempDir,
}

impl TlsServer {
    async fn start(config: Config) -> TlsServer {
        let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = tls::write_self_signed(dir.path(), &names, false).unwrap();
        let acceptor = tls::acceptor(&cert_path, &key_path).expect("the pair loads");
        let cert = CertificateDer::from_pem_file(&cert_path).unwrap();
        let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let plain = chat_server::listen(any_port, config.listen_backlog()).unwrap();
        let secure = chat_server::listen(any_port, config.listen_backlog()).unwrap();
        let (plain_addr, tls_addr) = (plain.local_addr().unwrap(), secure.local_addr().unwrap());
        let server = Server::new(config).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let runner = server.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            runner
                .run_with(plain, Some((secure, acceptor)), shutdown)
                .await
        });
        TlsServer {
            plain: plain_addr,
            tls: tls_addr,
            server,
            cert,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// A TLS client that trusts the server's certificate, connected to the TLS port.
    async fn connect_tls(&self) -> Client<TlsStream<TcpStream>> {
        let stream = tls_connect(self.tls, "localhost", std::slice::from_ref(&self.cert))
            .await
            .expect("the TLS handshake succeeds");
        Client::new(stream)
    }

    async fn connect_plain(&self) -> Client<TcpStream> {
        let stream = within("connect", TcpStream::connect(self.plain))
            .await
            .unwrap();
        Client::new(stream)
    }

    /// Stops the server and waits for `run_with` to return.
    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within("the server to stop", task).await.unwrap().unwrap();
        }
    }
}

/// Connects to `addr` and does the TLS handshake for `name`, trusting `roots`.
async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    roots: &[CertificateDer<'static>],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = within("connect", TcpStream::connect(addr)).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    within(
        "the TLS handshake",
        common::connector(roots).connect(name, tcp),
    )
    .await
}

/// A protocol client over any stream.
struct Client<S> {
    framed: Framed<S, LineCodec>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Client<S> {
        Client {
            framed: Framed::new(stream, LineCodec::new(chat_proto::CLIENT_MAX_LINE)),
        }
    }

    async fn send(&mut self, line: &str) {
        within("a write", self.framed.send(line)).await.unwrap();
    }

    /// The next frame, or `None` when the server closes the connection.
    async fn next(&mut self) -> Option<ServerFrame> {
        let line = within("a frame", self.framed.next()).await?;
        let line = line.expect("read").expect("a valid line");
        Some(ServerFrame::parse(&line).unwrap_or_else(|e| panic!("bad frame {line:?}: {e}")))
    }

    /// Reads frames until one matches `what`.
    async fn until(&mut self, what: &str, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            match self.next().await {
                Some(frame) if pred(&frame) => return frame,
                Some(_) => {}
                None => panic!("connection closed waiting for {what}"),
            }
        }
    }

    /// Answers the `NICK` prompt and waits until the session talks in `#general`.
    async fn login(&mut self, nick: &str) {
        let prompt = self.next().await;
        assert_eq!(prompt, Some(ServerFrame::NickPrompt));
        self.send(nick).await;
        self.until("WELCOME", |f| matches!(f, ServerFrame::Welcome { .. }))
            .await;
        self.until("CURRENT", |f| matches!(f, ServerFrame::Current { .. }))
            .await;
    }

    /// Waits for `text` from `from` in `#general`.
    async fn message(&mut self, from: &str, text: &str) {
        self.until(&format!("<{from}> {text}"), |f| {
            matches!(f, ServerFrame::Message { from: who, text: t, .. }
                if who.as_str() == from && t == text)
        })
        .await;
    }
}

#[tokio::test]
async fn tls_and_plain_clients_share_one_hub() {
    let mut server = TlsServer::start(Config::unthrottled()).await;
    // A client stuck before its TLS handshake holds up no one: the handshake runs in
    // the connection's own task, not in the accept loop.
    let _silent = TcpStream::connect(server.tls).await.unwrap();

    let mut alice = server.connect_tls().await;
    alice.login("alice").await;
    let mut bob = server.connect_plain().await;
    bob.login("bob").await;

    alice.send("hello over TLS").await;
    bob.message("alice", "hello over TLS").await;
    bob.send("hello over TCP").await;
    alice.message("bob", "hello over TCP").await;
    assert_eq!(server.server.stats().sessions, 2);

    // The certificate is also valid for the address itself.
    let by_ip = tls_connect(server.tls, "127.0.0.1", std::slice::from_ref(&server.cert))
        .await
        .expect("a handshake naming 127.0.0.1");
    let mut carol = Client::new(by_ip);
    carol.login("carol").await;

    // One shutdown stops both listeners and tells every client.
    server.shutdown().await;
    alice
        .until("BYE", |f| matches!(f, ServerFrame::Bye { .. }))
        .await;
    bob.until("BYE", |f| matches!(f, ServerFrame::Bye { .. }))
        .await;
    carol
        .until("BYE", |f| matches!(f, ServerFrame::Bye { .. }))
        .await;
    assert!(TcpStream::connect(server.tls).await.is_err());
    assert!(TcpStream::connect(server.plain).await.is_err());
}

#[tokio::test]
async fn leaving_without_close_notify_is_a_plain_close_unless_it_cuts_a_line() {
    let server = TlsServer::start(Config::unthrottled()).await;
    let mut bob = server.connect_plain().await;
    bob.login("bob").await;

    // Most clients just close the socket when they exit: no TLS close_notify. (Its
    // sending side only: a socket closed with unread data would be reset instead.)
    let mut alice = server.connect_tls().await;
    alice.login("alice").await;
    alice.send("last words").await;
    bob.message("alice", "last words").await;
    let (tcp, _) = alice.framed.get_mut().get_mut();
    within("a TCP close", tcp.shutdown()).await.unwrap();
    let quit = bob.until("alice's QUIT", |f| is_quit(f, "alice")).await;
    assert!(
        matches!(&quit, ServerFrame::Quit { reason: Some(r), .. } if r == "connection closed"),
        "{quit:?}"
    );

    // Cut within a line, the connection was broken: the piece is not a message.
    let mut carol = server.connect_tls().await;
    carol.login("carol").await;
    let stream = carol.framed.get_mut();
    within("a write", stream.write_all(b"unfinished"))
        .await
        .unwrap();
    within("a flush", stream.flush()).await.unwrap();
    let (tcp, _) = stream.get_mut();
    within("a TCP close", tcp.shutdown()).await.unwrap();
    loop {
        let frame = bob.next().await.expect("bob's connection stays");
        if let ServerFrame::Message { text, .. } = &frame {
            assert_ne!(text, "unfinished", "a cut line was taken as whole");
        }
        if is_quit(&frame, "carol") {
            let ServerFrame::Quit { reason, .. } = &frame else {
                unreachable!()
            };
            let reason = reason.as_deref().unwrap_or_default();
            assert!(
                reason.starts_with("connection error: ") && reason.contains("within a line"),
                "{reason}"
            );
            break;
        }
    }
}

fn is_quit(frame: &ServerFrame, who: &str) -> bool {
    matches!(frame, ServerFrame::Quit { nick, .. } if nick.as_str() == who)
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_fails_and_others_carry_on() {
    let server = TlsServer::start(Config::unthrottled()).await;
    // Trusting another authority's certificate is trusting none that the server has.
    let other = rcgen::generate_simple_self_signed(["localhost".to_owned()])
        .unwrap()
        .cert
        .der()
        .clone();

    let err = tls_connect(server.tls, "localhost", &[other])
        .await
        .expect_err("an untrusted certificate fails the handshake");
    let cause = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            cause,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
    // A name the certificate is not for fails too, even from a client that trusts it.
    let err = tls_connect(
        server.tls,
        "chat.example.org",
        std::slice::from_ref(&server.cert),
    )
    .await
    .expect_err("a wrong name fails the handshake");
    let cause = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            cause,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );

    // The failed connections are released, and the server serves others.
    within(
        "the failed handshakes to be released",
        server.server.wait_until(|s| s.connections == 0),
    )
    .await;
    let mut alice = server.connect_tls().await;
    alice.login("alice").await;
    alice.send("still here").await;
    alice.message("alice", "still here").await;
}

#[tokio::test]
async fn a_tls_client_that_never_finishes_the_handshake_is_closed() {
    let timeout = Duration::from_millis(300);
    let config = Config {
        handshake_timeout: timeout,
        ..Config::unthrottled()
    };
    let server = TlsServer::start(config).await;
    let started = tokio::time::Instant::now();
    let mut silent = TcpStream::connect(server.tls).await.unwrap();
    let mut buf = [0u8; 64];
    let read = within("the server to close", silent.read(&mut buf)).await;
    match read {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    assert!(
        started.elapsed() >= timeout,
        "closed after {:?}, before the handshake timeout",
        started.elapsed()
    );
    within(
        "the connection to be released",
        server
            .server
            .wait_until(|s| s.connections == 0 && s.tasks == 0),
    )
    .await;
}

/// The TLS handshake and the `NICK` exchange share one deadline, counted from the
/// connection: what a slow TLS start takes is not given again to the nickname.
#[tokio::test]
async fn tls_and_nickname_share_one_handshake_deadline() {
    let timeout = Duration::from_secs(3);
    let config = Config {
        handshake_timeout: timeout,
        ..Config::unthrottled()
    };
    let server = TlsServer::start(config).await;
    let started = tokio::time::Instant::now();
    let tcp = TcpStream::connect(server.tls).await.unwrap();
    // The stimulus, not a synchronisation: a client that takes 2 s to start TLS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = common::connector(std::slice::from_ref(&server.cert))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake within the deadline");
    let mut client = Client::new(tls);
    assert_eq!(client.next().await, Some(ServerFrame::NickPrompt));
    let bye = client
        .until("BYE", |f| matches!(f, ServerFrame::Bye { .. }))
        .await;
    assert_eq!(
        bye,
        ServerFrame::Bye {
            reason: "handshake timed out".into()
        }
    );
    // One deadline: 3 s from the connection. Separate ones would give 2 s + 3 s.
    let elapsed = started.elapsed();
    assert!(
        (timeout..timeout + Duration::from_millis(1500)).contains(&elapsed),
        "BYE after {elapsed:?}, not {timeout:?} after connecting"
    );
}

#[tokio::test]
async fn a_full_server_says_so_over_tls() {
    let config = Config {
        max_connections: Some(1),
        ..Config::unthrottled()
    };
    let server = TlsServer::start(config).await;
    let mut alice = server.connect_tls().await;
    alice.login("alice").await;

    let mut refused = server.connect_tls().await;
    assert!(matches!(
        refused.next().await,
        Some(ServerFrame::Error {
            code: ErrorCode::ServerFull,
            ..
        })
    ));
    assert!(matches!(
        refused.next().await,
        Some(ServerFrame::Bye { .. })
    ));
    assert_eq!(refused.next().await, None);
}

#[tokio::test]
async fn a_tls_client_that_stops_reading_then_catches_up_gets_everything_once() {
    // Far more output than the socket buffers and rustls hold: the session's writes
    // wait for the client, and every byte reaches it once, in order, to the last one
    // (which no later event pushes out).
    let config = Config {
        room_capacity: 8192,
        ..Config::unthrottled()
    };
    let server = TlsServer::start(config).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.tls).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = within(
        "the TLS handshake",
        common::connector(std::slice::from_ref(&server.cert)).connect(name, tcp),
    )
    .await
    .unwrap();
    let mut slow = Client::new(stream);
    slow.login("slow").await;
    let mut fast = server.connect_plain().await;
    fast.login("fast").await;

    // `slow` reads nothing meanwhile; `fast` sees its own echoes, so every message has
    // gone to the room.
    let body = "x".repeat(3000);
    const COUNT: usize = 1500;
    for i in 0..COUNT {
        fast.send(&format!("{i} {body}")).await;
    }
    fast.message("fast", &format!("{} {body}", COUNT - 1)).await;

    for i in 0..COUNT {
        let frame = slow
            .until(
                "a message from fast",
                |f| matches!(f, ServerFrame::Message { from, .. } if from.as_str() == "fast"),
            )
            .await;
        let ServerFrame::Message { text, .. } = frame else {
            unreachable!()
        };
        assert_eq!(text, format!("{i} {body}"), "message {i}");
    }
}

#[tokio::test]
async fn gen_cert_writes_a_pair_that_loads_and_keeps_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let first = server_binary(&["gen-cert", "--out", out]).await;
    assert!(first.status.success(), "{first:?}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    assert!(
        stdout.contains(&format!("--tls-cert {}", cert.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("--tls-key {}", key.display())),
        "{stdout}"
    );
    tls::acceptor(&cert, &key).expect("gen-cert's pair loads");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private");
    }

    let before = std::fs::read(&key).unwrap();
    let again = server_binary(&["gen-cert", "--out", out]).await;
    assert!(!again.status.success(), "{again:?}");
    let line = one_error_line(&again.stderr);
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(std::fs::read(&key).unwrap(), before, "nothing overwritten");

    let forced = server_binary(&["gen-cert", "--out", out, "--force", "--name", "chat.test"]).await;
    assert!(forced.status.success(), "{forced:?}");
    assert_ne!(std::fs::read(&key).unwrap(), before);
    tls::acceptor(&cert, &key).expect("the new pair loads");
}

#[tokio::test]
async fn a_bad_certificate_file_stops_the_server_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["localhost".to_owned()];
    let (_, key) = tls::write_self_signed(dir.path(), &names, false).unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    for (cert, needle) in [
        (bad.as_path(), "bad.pem holds no certificate"),
        (
            Path::new("/nonexistent/cert.pem"),
            "cannot read /nonexistent/cert.pem",
        ),
    ] {
        let output = server_binary(&[
            "--addr",
            "127.0.0.1:0",
            "--tls-addr",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .await;
        assert!(!output.status.success(), "{output:?}");
        let line = one_error_line(&output.stderr);
        assert!(line.contains(needle), "{line}");
    }
}

/// Runs the `chat-server` binary with `args` to completion (it must not serve).
async fn server_binary(args: &[&str]) -> std::process::Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(args)
        .env_remove("CHAT_TLS_CERT")
        .env_remove("CHAT_TLS_KEY")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chat-server");
    within("chat-server to exit", child.wait_with_output())
        .await
        .unwrap()
}

/// Asserts that `stderr` is one line starting `chat-server: error: `; returns it.
fn one_error_line(stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr:?}");
    assert!(lines[0].starts_with("chat-server: error: "), "{stderr:?}");
    lines[0].to_owned()
}

//! The client over TLS, against an in-process server serving TLS and plain TCP with a
//! self-signed certificate: trusted with `--ca-cert`, refused without, and `--reconnect`
//! over TLS.
//!
//! Every wait is bounded by [`WAIT`]; nothing sleeps to synchronise.

#[allow(dead_code)]
mod common;

use chat_client::{ClientError, Connector, Options, Outcome, Trust};
use chat_proto::ServerFrame;
use common::{Peer, WAIT, within};
use futures::StreamExt;
use futures::channel::mpsc;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A chat server on two loopback ports, TLS and plain, one hub behind both.
struct TlsServer {
    tls: SocketAddr,
    plain: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, in a directory that lives
/// as long as the value: the server's `cert.pem` and `key.pem`.
struct Certificate {
    dir: tempfile::TempDir,
}

impl Certificate {
    fn new() -> Certificate {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        chat_server::tls::write_self_signed(dir.path(), &names, false).expect("gen-cert");
        Certificate { dir }
    }

    /// The certificate, which a client trusts with `--ca-cert`.
    fn cert(&self) -> PathBuf {
        self.dir.path().join(chat_server::tls::CERT_FILE)
    }

    fn cert_arg(&self) -> String {
        self.cert().to_str().expect("UTF-8 path").to_owned()
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join(chat_server::tls::KEY_FILE)
    }
}

impl TlsServer {
    async fn start(cert: &Certificate) -> TlsServer {
        let tls = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        TlsServer::serve(cert, tls, plain)
    }

    /// A server on the addresses another one has just released (bounded retries while
    /// the old sockets close).
    async fn start_on(cert: &Certificate, tls: SocketAddr, plain: SocketAddr) -> TlsServer {
        let tls = bind_again(tls).await;
        let plain = bind_again(plain).await;
        TlsServer::serve(cert, tls, plain)
    }

    fn serve(cert: &Certificate, tls: TcpListener, plain: TcpListener) -> TlsServer {
        let acceptor = chat_server::tls::acceptor(&cert.cert(), &cert.key()).expect("acceptor");
        let (tls_addr, plain_addr) = (
            tls.local_addr().expect("addr"),
            plain.local_addr().expect("addr"),
        );
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(chat_server::run_with(
            plain,
            Some((tls, acceptor)),
            chat_server::Config::unthrottled(),
            shutdown,
        ));
        TlsServer {
            tls: tls_addr,
            plain: plain_addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    async fn shutdown(&mut self) {
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

async fn bind_again(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if tokio::time::Instant::now() < deadline => {
                // Not a synchronisation: a pause between bounded retries.
                eprintln!("binding {addr} again: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

/// Starts the binary with `args` and piped standard streams; no `CHAT_*` or TLS
/// variables leak in, and `env` is added.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-client"));
    command.args(args);
    for var in [
        "CHAT_NICK",
        "CHAT_ADDR",
        "CHAT_TIMEOUT",
        "CHAT_TLS",
        "CHAT_CA_CERT",
        "CHAT_TLS_NAME",
        "CHAT_PASSWORD",
        "CHAT_PASSWORD_FILE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chat-client")
}

/// Runs the binary with `args`, `input` on standard input (then closed).
async fn run(args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
    let mut child = spawn(args, env);
    let mut stdin = child.stdin.take().expect("stdin");
    // The client may exit before it reads its input (a bad flag, an unreadable CA
    // file): the pipe is closed then, which is not the test's failure.
    if let Err(e) = stdin.write_all(input.as_bytes()).await {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(stdin);
    within("chat-client to exit", child.wait_with_output())
        .await
        .expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that standard error is exactly one line, `chat-client: error: ...`.
fn one_error_line(output: &Output) -> String {
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr:?}");
    assert!(lines[0].starts_with("chat-client: error: "), "{stderr:?}");
    lines[0].to_owned()
}

#[tokio::test]
async fn the_binary_talks_over_tls_with_ca_cert() {
    let cert = Certificate::new();
    let server = TlsServer::start(&cert).await;
    let mut bob = Peer::connect(server.plain, "bob").await;
    let addr = server.tls.to_string();
    let output = run(
        &[
            "--nick",
            "alice",
            "--addr",
            &addr,
            "--tls",
            "--ca-cert",
            &cert.cert_arg(),
        ],
        &[],
        "hello over TLS\n",
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("<alice> hello over TLS\n"), "{stdout}");
    assert!(output.stderr.is_empty(), "{output:?}");
    // A client on the plain port of the same server got it.
    bob.expect("alice's message", |f| {
        matches!(f, ServerFrame::Message { from, text, .. }
            if from.as_str() == "alice" && text == "hello over TLS")
    })
    .await;
}

#[tokio::test]
async fn a_self_signed_server_without_ca_cert_is_one_error_line() {
    let cert = Certificate::new();
    let server = TlsServer::start(&cert).await;
    // The system's roots, made predictable: one authority that is not the server's.
    let dir = tempfile::tempdir().expect("tempdir");
    let roots = dir.path().join("roots.pem");
    let other = rcgen::generate_simple_self_signed(["some.authority".to_owned()]).expect("cert");
    std::fs::write(&roots, other.cert.pem()).expect("write");
    let roots = roots.to_str().expect("UTF-8 path");

    let addr = server.tls.to_string();
    let output = run(
        &["--nick", "alice", "--addr", &addr, "--tls"],
        &[("SSL_CERT_FILE", roots)],
        "hello\n",
    )
    .await;
    assert!(!output.status.success(), "{output:?}");
    let line = one_error_line(&output);
    let want = format!(
        "chat-client: error: TLS handshake with {addr} failed: invalid peer certificate: UnknownIssuer"
    );
    assert!(line.starts_with(&want), "{line}");
    assert!(line.contains("--ca-cert"), "a hint: {line}");
    assert!(output.stdout.is_empty(), "{output:?}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let cert = Certificate::new();
    let server = TlsServer::start(&cert).await;
    let addr = server.tls.to_string();
    let args = [
        "--nick",
        "alice",
        "--addr",
        &addr,
        "--tls",
        "--ca-cert",
        &cert.cert_arg(),
        "--tls-name",
        "chat.example.org",
    ];
    let output = run(&args, &[], "hello\n").await;
    assert!(!output.status.success(), "{output:?}");
    let line = one_error_line(&output);
    assert!(line.contains("certificate not valid for name"), "{line}");

    // --tls-name names what the certificate is for when the address does not.
    let localhost = format!("localhost:{}", server.tls.port());
    let args = [
        "--nick",
        "alice",
        "--addr",
        &localhost,
        "--tls",
        "--ca-cert",
        &cert.cert_arg(),
        "--tls-name",
        "127.0.0.1",
    ];
    let output = run(&args, &[], "hello\n").await;
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test]
async fn a_bad_ca_file_is_one_error_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").expect("write");
    let empty = empty.to_str().expect("UTF-8 path");
    let output = run(
        &["--nick", "alice", "--tls", "--ca-cert", empty],
        &[],
        "hello\n",
    )
    .await;
    assert!(!output.status.success(), "{output:?}");
    let line = one_error_line(&output);
    assert!(line.contains(empty), "{line}");
}

#[tokio::test]
async fn reconnect_works_over_tls() {
    let cert = Certificate::new();
    let mut first = TlsServer::start(&cert).await;
    let addr = first.tls.to_string();
    let mut child = spawn(
        &[
            "--nick",
            "alice",
            "--addr",
            &addr,
            "--tls",
            "--ca-cert",
            &cert.cert_arg(),
            "--reconnect",
        ],
        &[],
    );
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut read_until = async |needle: &str| {
        within(needle, async {
            loop {
                let line = stdout.next_line().await.expect("read stdout");
                let line = line.unwrap_or_else(|| panic!("stdout ended before {needle:?}"));
                if line.contains(needle) {
                    return;
                }
            }
        })
        .await
    };
    stdin.write_all(b"/join #tls\n").await.expect("write");
    read_until("-- now talking in #tls").await;

    first.shutdown().await;
    let _second = TlsServer::start_on(&cert, first.tls, first.plain).await;
    read_until("-- reconnected as alice").await;
    read_until("-- now talking in #tls").await;
    stdin.write_all(b"hello again\n").await.expect("write");
    drop(stdin);
    read_until("[#tls] <alice> hello again").await;
    let output = within("chat-client to exit", child.wait_with_output())
        .await
        .expect("wait");
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[tokio::test]
async fn the_library_connects_over_tls_and_talks_both_ways() {
    let cert = Certificate::new();
    let server = TlsServer::start(&cert).await;
    let mut bob = Peer::connect(server.plain, "bob").await;
    let trust = Trust::File(cert.cert());
    let connector = Connector::tls(server.tls.to_string(), WAIT, &trust, None).expect("connector");
    assert!(connector.is_tls());
    let stream = within("connect", connector.connect())
        .await
        .expect("TLS connection");

    let (input, input_rx) = mpsc::unbounded::<String>();
    let (output_tx, mut output) = mpsc::unbounded::<String>();
    let mut opts = Options::new("alice");
    opts.time_zone = jiff::tz::TimeZone::UTC;
    let client = tokio::spawn(chat_client::run(stream, opts, input_rx, output_tx));
    let mut wait_for = async |needle: &str| {
        within(needle, async {
            loop {
                match output.next().await {
                    Some(line) if line.contains(needle) => return,
                    Some(_) => {}
                    None => panic!("the client ended before {needle:?}"),
                }
            }
        })
        .await
    };
    wait_for("-- now talking in #general").await;
    input.unbounded_send("hi bob".into()).expect("typed");
    bob.expect(
        "alice's message",
        |f| matches!(f, ServerFrame::Message { text, .. } if text == "hi bob"),
    )
    .await;
    bob.send("hi alice, over TLS").await;
    wait_for("<bob> hi alice, over TLS").await;
    drop(input);
    let result = within("the client to finish", client)
        .await
        .expect("client task");
    assert_eq!(result.expect("clean end"), Outcome::EndOfInput);
}

#[tokio::test]
async fn the_library_reports_an_untrusted_certificate() {
    let cert = Certificate::new();
    let server = TlsServer::start(&cert).await;
    let other = Certificate::new();
    let trust = Trust::File(other.cert());
    let connector = Connector::tls(server.tls.to_string(), WAIT, &trust, None).expect("connector");
    match within("the handshake", connector.connect()).await {
        Err(ClientError::Tls { reason, .. }) => {
            assert!(reason.starts_with("invalid peer certificate"), "{reason}")
        }
        Ok(_) => panic!("an untrusted certificate was accepted"),
        Err(other) => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_gone_without_close_notify_is_a_plain_close() {
    use futures::SinkExt;
    let cert = Certificate::new();
    let acceptor = chat_server::tls::acceptor(&cert.cert(), &cert.key()).expect("acceptor");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let tls = acceptor.accept(tcp).await.expect("handshake");
        let mut wire = tokio_util::codec::Framed::new(tls, chat_proto::LineCodec::default());
        wire.send("NICK").await.expect("send");
        let _nick = wire.next().await;
        wire.send("WELCOME alice :hi").await.expect("send");
        // Gone, as a killed server is: the TCP connection ends, with no close_notify.
        let (tcp, _) = wire.get_mut().get_mut();
        tcp.shutdown().await.expect("TCP close");
        // Hold the socket until the client has gone too.
        while let Some(Ok(_)) = wire.next().await {}
    });
    let trust = Trust::File(cert.cert());
    let connector = Connector::tls(addr.to_string(), WAIT, &trust, None).expect("connector");
    let stream = within("connect", connector.connect())
        .await
        .expect("connected");
    let (tx, _rx) = mpsc::unbounded();
    let input = futures::stream::pending::<String>();
    let result = within(
        "the client to end",
        chat_client::run(stream, Options::new("alice"), input, tx),
    )
    .await;
    assert!(matches!(result, Err(ClientError::Closed)), "{result:?}");
    within("the fake server", server).await.expect("script");
}

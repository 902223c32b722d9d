//! Registered nicknames: the client answers the server's `PASS` prompt from
//! `--password-file` or `CHAT_PASSWORD`, stops at a wrong password, says how to give one
//! when it has none, reuses it when reconnecting, and never lets a password cross a
//! connection that is neither encrypted nor local.
//!
//! The servers here are scripted fakes, in the test's runtime. Every wait is bounded by
//! `common::WAIT`; nothing sleeps to synchronise.

#[allow(dead_code)]
mod common;

use chat_client::{ClientError, Connection, Options, Outcome, Secure};
use chat_proto::LineCodec;
use common::within;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt, stream};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Output, Stdio};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

type Wire = Framed<TcpStream, LineCodec>;

/// A fake server on `127.0.0.1:0`: `script` gets the listener, accepts what it wants and
/// returns what it saw.
async fn fake_server<F, Fut, T>(script: F) -> (SocketAddr, JoinHandle<T>)
where
    F: FnOnce(TcpListener) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (addr, tokio::spawn(script(listener)))
}

async fn accept(listener: &TcpListener) -> Wire {
    let (stream, _) = within("a connection", listener.accept())
        .await
        .expect("accept");
    Framed::new(stream, LineCodec::default())
}

async fn send(wire: &mut Wire, line: &str) {
    wire.send(line).await.expect("fake server write");
}

/// The next line from the client, or `None` once it closed the connection.
async fn recv(wire: &mut Wire) -> Option<String> {
    within("a line from the client", wire.next())
        .await
        .map(|line| line.expect("read").expect("line"))
}

/// `NICK`, the nickname, `PASS`; returns the password the client sent.
async fn ask_password(wire: &mut Wire) -> String {
    send(wire, "NICK").await;
    let nick = recv(wire).await.expect("a nickname");
    assert_eq!(nick, "alice");
    send(wire, "PASS").await;
    recv(wire).await.expect("a password")
}

/// What the real server sends for a right password.
async fn welcome(wire: &mut Wire) {
    send(wire, "WELCOME alice :hi alice").await;
    send(wire, "ACCOUNT alice identified").await;
}

/// Answers `/ping` and `/quit` as the real server does; ignores anything else.
async fn replies(wire: &mut Wire) {
    while let Some(line) = recv(wire).await {
        if let Some(token) = line.strip_prefix("/ping ") {
            send(wire, &format!("PONG :{token}")).await;
        } else if line == "/quit" {
            send(wire, "BYE :quit").await;
            return;
        }
    }
}

/// One connection whose nickname is registered with the password the client sends;
/// returns that password.
async fn identified(listener: TcpListener) -> String {
    let mut wire = accept(&listener).await;
    let password = ask_password(&mut wire).await;
    welcome(&mut wire).await;
    replies(&mut wire).await;
    password
}

/// Runs the binary as `alice` against `addr` with `args` and `env` added, and piped
/// input that ends at once; no `CHAT_*` variables leak in.
async fn run_client(addr: SocketAddr, args: &[&str], env: &[(&str, &str)]) -> Output {
    let addr = addr.to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-client"));
    command
        .args(["--nick", "alice", "--addr", &addr])
        .args(args);
    for var in [
        "CHAT_NICK",
        "CHAT_ADDR",
        "CHAT_TIMEOUT",
        "CHAT_TLS",
        "CHAT_PASSWORD",
        "CHAT_PASSWORD_FILE",
    ] {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chat-client");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.shutdown().await.expect("close stdin");
    drop(stdin);
    within("chat-client to exit", child.wait_with_output())
        .await
        .expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that the password appears nowhere in what the client printed.
fn never_shown(output: &Output, password: &str) {
    assert!(!text(&output.stdout).contains(password), "{output:?}");
    assert!(!text(&output.stderr).contains(password), "{output:?}");
}

/// Asserts that standard error is exactly one line, `chat-client: error: ...`.
fn one_error_line(output: &Output) -> String {
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr:?}");
    assert!(lines[0].starts_with("chat-client: error: "), "{stderr:?}");
    lines[0].to_owned()
}

/// A file holding `contents`, alive as long as the returned directory.
fn password_file(contents: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("password");
    std::fs::write(&path, contents).expect("write");
    let path = path.to_str().expect("UTF-8 path").to_owned();
    (dir, path)
}

#[tokio::test]
async fn the_password_comes_from_the_first_line_of_the_password_file() {
    let (addr, server) = fake_server(identified).await;
    let (_dir, file) = password_file("correct horse battery\r\nnot this line\n");
    let output = run_client(addr, &["--password-file", &file], &[]).await;
    assert!(output.status.success(), "{output:?}");
    let sent = within("the fake server", server).await.expect("script");
    assert_eq!(sent, "correct horse battery");
    assert!(
        text(&output.stdout).contains("-- alice is yours: password accepted"),
        "{output:?}"
    );
    never_shown(&output, "correct horse");
}

#[tokio::test]
async fn the_password_comes_from_chat_password() {
    let (addr, server) = fake_server(identified).await;
    let output = run_client(addr, &[], &[("CHAT_PASSWORD", "tr0ub4dor&3")]).await;
    assert!(output.status.success(), "{output:?}");
    let sent = within("the fake server", server).await.expect("script");
    assert_eq!(sent, "tr0ub4dor&3");
    never_shown(&output, "tr0ub4dor");
}

#[tokio::test]
async fn the_password_file_wins_over_chat_password() {
    let (addr, server) = fake_server(identified).await;
    let (_dir, file) = password_file("from the file\n");
    let output = run_client(
        addr,
        &["--password-file", &file],
        &[("CHAT_PASSWORD", "from the environment")],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let sent = within("the fake server", server).await.expect("script");
    assert_eq!(sent, "from the file");
}

#[tokio::test]
async fn a_wrong_password_is_one_error_line_and_no_second_try() {
    let (addr, server) = fake_server(|listener| async move {
        let mut wire = accept(&listener).await;
        let password = ask_password(&mut wire).await;
        send(&mut wire, "ERR PASSWORD_WRONG :wrong password for alice").await;
        send(&mut wire, "NICK").await;
        // The client must leave rather than try again.
        (password, recv(&mut wire).await)
    })
    .await;
    let output = run_client(addr, &[], &[("CHAT_PASSWORD", "not-the-one")]).await;
    assert!(!output.status.success(), "{output:?}");
    let line = one_error_line(&output);
    assert_eq!(
        line,
        "chat-client: error: password for alice refused: PASSWORD_WRONG: wrong password for alice"
    );
    never_shown(&output, "not-the-one");
    let (sent, after) = within("the fake server", server).await.expect("script");
    assert_eq!(sent, "not-the-one");
    assert_eq!(after, None, "the client sent more after a wrong password");
}

#[tokio::test]
async fn without_a_password_or_a_terminal_the_client_says_how_to_give_one() {
    let (addr, server) = fake_server(|listener| async move {
        let mut wire = accept(&listener).await;
        send(&mut wire, "NICK").await;
        let _nick = recv(&mut wire).await;
        send(&mut wire, "PASS").await;
        recv(&mut wire).await
    })
    .await;
    let output = run_client(addr, &[], &[]).await;
    assert!(!output.status.success(), "{output:?}");
    let line = one_error_line(&output);
    assert!(
        line.contains("alice is registered")
            && line.contains("--password-file")
            && line.contains("CHAT_PASSWORD"),
        "{line}"
    );
    let after = within("the fake server", server).await.expect("script");
    assert_eq!(after, None, "nothing is sent as a password");
}

#[tokio::test]
async fn an_unreadable_password_file_is_one_error_line() {
    let (addr, _server) = fake_server(|listener| async move { drop(listener) }).await;
    let output = run_client(addr, &["--password-file", "/nonexistent/password"], &[]).await;
    assert!(!output.status.success(), "{output:?}");
    let line = one_error_line(&output);
    assert!(
        line.contains("cannot read the password from /nonexistent/password"),
        "{line}"
    );
}

#[tokio::test]
async fn reconnecting_identifies_again_with_the_same_password() {
    let (addr, server) = fake_server(|listener| async move {
        let mut first = accept(&listener).await;
        let once = ask_password(&mut first).await;
        welcome(&mut first).await;
        // The connection drops.
        drop(first);
        let mut second = accept(&listener).await;
        let again = ask_password(&mut second).await;
        welcome(&mut second).await;
        replies(&mut second).await;
        (once, again)
    })
    .await;
    let (_dir, file) = password_file("s4me-p4ssword\n");
    let output = run_client(addr, &["--password-file", &file, "--reconnect"], &[]).await;
    assert!(output.status.success(), "{output:?}");
    assert!(
        text(&output.stdout).contains("-- reconnected as alice"),
        "{output:?}"
    );
    let (once, again) = within("the fake server", server).await.expect("script");
    assert_eq!(
        (once.as_str(), again.as_str()),
        ("s4me-p4ssword", "s4me-p4ssword")
    );
    never_shown(&output, "s4me");
}

/// A TCP stream that claims to cross a network in clear text, as a plain connection
/// to another machine does.
struct Insecure(TcpStream);

impl Secure for Insecure {
    fn is_secure(&self) -> bool {
        false
    }
}

impl AsyncRead for Insecure {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Insecure {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

async fn connect_insecure(addr: SocketAddr) -> Insecure {
    let stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    Insecure(stream)
}

#[tokio::test]
async fn register_and_password_are_not_sent_in_clear_text() {
    let (addr, server) = fake_server(|listener| async move {
        let mut wire = accept(&listener).await;
        send(&mut wire, "NICK").await;
        let _nick = recv(&mut wire).await;
        send(&mut wire, "WELCOME alice :hi").await;
        let mut lines = Vec::new();
        while let Some(line) = recv(&mut wire).await {
            if let Some(token) = line.strip_prefix("/ping ") {
                send(&mut wire, &format!("PONG :{token}")).await;
            } else if line == "/quit" {
                send(&mut wire, "BYE :quit").await;
                break;
            }
            lines.push(line);
        }
        lines
    })
    .await;
    let conn = connect_insecure(addr).await;
    let typed = [
        "/register hunter2hunter2",
        "/password n3w-s3cret!",
        "still here",
    ];
    let input = stream::iter(typed.map(str::to_owned));
    let (tx, rx) = mpsc::unbounded();
    let result = within(
        "the client to finish",
        chat_client::run(conn, Options::new("alice"), input, tx),
    )
    .await;
    assert_eq!(result.expect("clean end"), Outcome::EndOfInput);
    let shown: Vec<String> = rx.collect().await;
    let refusals = shown
        .iter()
        .filter(|l| l.contains("!! not sent: /"))
        .count();
    assert_eq!(refusals, 2, "{shown:#?}");
    assert!(
        shown
            .iter()
            .all(|l| !l.contains("hunter2") && !l.contains("s3cret")),
        "{shown:#?}"
    );
    let received = within("the fake server", server).await.expect("script");
    assert!(
        received
            .iter()
            .all(|l| !l.contains("hunter2") && !l.contains("s3cret")),
        "{received:?}"
    );
    assert!(received.contains(&"still here".to_owned()), "{received:?}");
}

#[tokio::test]
async fn a_password_prompt_over_clear_text_is_not_answered() {
    let (addr, server) = fake_server(|listener| async move {
        let mut wire = accept(&listener).await;
        send(&mut wire, "NICK").await;
        let _nick = recv(&mut wire).await;
        send(&mut wire, "PASS").await;
        recv(&mut wire).await
    })
    .await;
    let mut opts = Options::new("alice");
    opts.password = Some(chat_proto::Password::new("hunter2hunter2"));
    let mut connection = Connection::new(connect_insecure(addr).await, &opts);
    let result = within("registration", connection.register("alice")).await;
    assert!(
        matches!(result, Err(ClientError::InsecurePassword { .. })),
        "{result:?}"
    );
    drop(connection);
    let after = within("the fake server", server).await.expect("script");
    assert_eq!(after, None, "the password was sent");
    // The error says what to do, and not the password.
    let message = ClientError::InsecurePassword {
        nick: "alice".into(),
    }
    .to_string();
    assert!(message.contains("--tls"), "{message}");
}

#[tokio::test]
async fn the_library_answers_pass_with_the_options_password() {
    let (addr, server) = fake_server(identified).await;
    let stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let mut opts = Options::new("alice");
    opts.password = Some(chat_proto::Password::new("library-secret"));
    let (tx, rx) = mpsc::unbounded();
    let result = within(
        "the client to finish",
        chat_client::run(stream, opts, stream::empty(), tx),
    )
    .await;
    assert_eq!(result.expect("clean end"), Outcome::EndOfInput);
    let sent = within("the fake server", server).await.expect("script");
    assert_eq!(sent, "library-secret");
    let shown: Vec<String> = rx.collect().await;
    assert!(
        shown.iter().any(|l| l.contains("alice is yours")),
        "{shown:#?}"
    );
    assert!(shown.iter().all(|l| !l.contains("library-secret")));
}

#[tokio::test]
async fn without_a_password_the_library_waits_for_one() {
    let (addr, server) = fake_server(identified).await;
    let stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let opts = Options::new("alice");
    let mut connection = Connection::new(stream, &opts);
    let needed = within("registration", connection.register("alice")).await;
    assert!(
        matches!(&needed, Err(ClientError::PasswordNeeded { nick }) if nick == "alice"),
        "{needed:?}"
    );
    let password = chat_proto::Password::new("typed later");
    let nick = within("identification", connection.identify("alice", password))
        .await
        .expect("identified");
    assert_eq!(nick.as_str(), "alice");
    let (tx, _rx) = mpsc::unbounded();
    let outcome = within("the chat", connection.chat(stream::empty(), tx))
        .await
        .expect("clean end");
    assert_eq!(outcome, Outcome::EndOfInput);
    let sent = within("the fake server", server).await.expect("script");
    assert_eq!(sent, "typed later");
}

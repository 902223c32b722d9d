//! The real `chat-client` binary, with piped standard input, against an in-process
//! server.

mod common;

use chat_proto::ServerFrame;
use common::{Peer, TestServer, closed_port, within};
use std::process::{Output, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Starts the binary with `args` and piped standard streams; no `CHAT_*` variables
/// leak in from the environment.
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chat-client"))
        .args(args)
        .env_remove("CHAT_NICK")
        .env_remove("CHAT_ADDR")
        .env_remove("CHAT_TIMEOUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chat-client")
}

/// Runs the binary with `args`, `input` on standard input (then closed).
async fn run(args: &[&str], input: &str) -> Output {
    let mut child = spawn(args);
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

/// Asserts that `stderr` is exactly one line, starting with `chat-client: error: `,
/// and returns it.
fn one_error_line(output: &Output) -> String {
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr:?}");
    assert!(lines[0].starts_with("chat-client: error: "), "{stderr:?}");
    lines[0].to_owned()
}

#[tokio::test]
async fn piped_message_is_echoed_and_the_exit_is_clean() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let output = run(&["--nick", "alice", "--addr", &addr], "hello\n").await;
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("[#general] <alice> hello\n"), "{stdout}");
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[tokio::test]
async fn without_nick_the_first_line_is_the_nickname() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let output = run(&["--addr", &addr], "alice\r\nhello\r\n").await;
    assert!(output.status.success(), "{output:?}");
    assert!(
        text(&output.stdout).contains("<alice> hello\n"),
        "{output:?}"
    );
    assert_eq!(text(&output.stderr), "Choose a nickname: alice\n");
}

#[tokio::test]
async fn without_nick_or_input_is_a_failure() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let output = run(&["--addr", &addr], "").await;
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(
        text(&output.stderr),
        "Choose a nickname: \nchat-client: error: no nickname given: standard input ended\n"
    );
}

#[tokio::test]
async fn connection_refused_is_one_line_and_a_failure() {
    let addr = closed_port().await.to_string();
    let output = run(&["--nick", "alice", "--addr", &addr], "hello\n").await;
    assert!(!output.status.success(), "{output:?}");
    let line = one_error_line(&output);
    assert!(
        line.starts_with(&format!("chat-client: error: cannot connect to {addr}: ")),
        "{line}"
    );
    assert!(output.stdout.is_empty(), "{output:?}");
}

#[tokio::test]
async fn taken_nickname_is_one_line_and_a_failure() {
    let server = TestServer::start().await;
    let _alice = Peer::connect(server.addr, "alice").await;
    let addr = server.addr.to_string();
    let output = run(&["--nick", "alice", "--addr", &addr], "hello\n").await;
    assert!(!output.status.success(), "{output:?}");
    let line = one_error_line(&output);
    assert!(line.contains("NICK_TAKEN"), "{line}");
}

#[tokio::test]
async fn server_shutdown_is_one_line_and_a_failure() {
    let mut server = TestServer::start().await;
    let mut bob = Peer::connect(server.addr, "bob").await;
    let addr = server.addr.to_string();
    // Standard input stays open: the client is waiting for the user when the server goes.
    let mut child = spawn(&["--nick", "alice", "--addr", &addr]);
    let stdin = child.stdin.take().expect("stdin");
    bob.expect(
        "alice's JOIN",
        |f| matches!(f, ServerFrame::Join { nick, .. } if nick.as_str() == "alice"),
    )
    .await;
    server.shutdown().await;
    let output = within("chat-client to exit", child.wait_with_output())
        .await
        .expect("wait");
    drop(stdin);
    assert!(!output.status.success(), "{output:?}");
    let line = one_error_line(&output);
    assert!(line.contains("server shutting down"), "{line}");
}

#[tokio::test]
async fn help_lists_flags_environment_and_commands() {
    let output = run(&["--help"], "").await;
    assert!(output.status.success(), "{output:?}");
    let help = text(&output.stdout);
    for needle in [
        "--nick",
        "--addr",
        "--timeout",
        "--reconnect",
        "--reconnect-attempts",
        "/clear",
        "CHAT_ADDR",
        "CHAT_NICK",
        "/join #room",
        "/quit",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from {help}");
    }
}

#[tokio::test]
async fn piped_input_goes_on_after_a_restart_with_reconnect() {
    let mut first = TestServer::start().await;
    let addr = first.addr.to_string();
    let mut child = spawn(&["--nick", "alice", "--addr", &addr, "--reconnect"]);
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
    stdin.write_all(b"/join #rust\n").await.expect("write");
    read_until("-- now talking in #rust").await;

    first.shutdown().await;
    let _second = TestServer::start_on(first.addr).await;
    read_until("-- reconnected as alice").await;
    read_until("-- now talking in #rust").await;
    stdin.write_all(b"hello again\n").await.expect("write");
    drop(stdin);
    read_until("[#rust] <alice> hello again").await;
    let output = within("chat-client to exit", child.wait_with_output())
        .await
        .expect("wait");
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
}

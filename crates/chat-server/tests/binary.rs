//! The `chat-server` binary: it serves, logs to stderr only, and stops cleanly on SIGTERM
//! after telling its clients.

use chat_proto::{LineCodec, ServerFrame};
use futures::{SinkExt, StreamExt};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(20);

/// The next frame from the server, within `WAIT`.
async fn next_frame(conn: &mut Framed<tokio::net::TcpStream, LineCodec>) -> ServerFrame {
    let line = tokio::time::timeout(WAIT, conn.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .expect("no I/O error")
        .expect("a valid line");
    ServerFrame::parse(&line).expect("a valid frame")
}

#[tokio::test]
async fn binary_serves_logs_to_stderr_and_stops_on_sigterm() {
    // Without --db the binary keeps its database in the platform's data directory:
    // here, a temporary one.
    let data = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--addr", "127.0.0.1:0", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .env("XDG_DATA_HOME", data.path())
        .env_remove("CHAT_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();

    // The address it bound is in its "listening" log line, after the database's.
    let mut db = None;
    let addr = tokio::time::timeout(WAIT, async {
        loop {
            let line = stderr
                .next_line()
                .await
                .unwrap()
                .expect("the server logs before it exits");
            let entry: serde_json::Value =
                serde_json::from_str(&line).expect("--log-format json logs JSON");
            if entry["fields"]["message"] == "database" {
                db = entry["fields"]["db"].as_str().map(str::to_owned);
            }
            if entry["fields"]["message"] == "listening" {
                return entry["fields"]["addr"].as_str().unwrap().to_owned();
            }
        }
    })
    .await
    .unwrap();
    let expected = data.path().join("chat-server").join("chat.db");
    assert_eq!(
        db.as_deref(),
        expected.to_str(),
        "the database is logged at start"
    );

    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut conn = Framed::new(stream, LineCodec::new(chat_proto::CLIENT_MAX_LINE));
    assert_eq!(next_frame(&mut conn).await, ServerFrame::NickPrompt);
    conn.send("alice").await.unwrap();
    let mut frames = Vec::new();
    while !matches!(frames.last(), Some(ServerFrame::Current { .. })) {
        frames.push(next_frame(&mut conn).await);
    }
    assert!(expected.exists(), "the database is created");

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        next_frame(&mut conn).await,
        ServerFrame::Bye {
            reason: "server shutting down".into()
        }
    );

    let exit = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    assert_eq!(stdout, "", "logs go to stderr, nothing to stdout");
}

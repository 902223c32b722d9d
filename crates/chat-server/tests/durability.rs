//! The store's promise under `kill -9`: a message accepted (echoed to its sender) more
//! than one batch window before the kill is in the history of the restarted server; at
//! most the last window's messages can be missing, and what remains has no hole.

mod common;

use chat_proto::{LineCodec, ServerFrame};
use futures::{SinkExt, StreamExt};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(20);

/// The store's batch window: a batch is committed once its oldest record is this old.
const WINDOW: Duration = Duration::from_millis(100);

/// Allowance on top of the window for the commit itself (one fsync) and for scheduling
/// on a loaded machine.
const COMMIT_ALLOWANCE: Duration = Duration::from_millis(150);

type Conn = Framed<tokio::net::TcpStream, LineCodec>;

/// Starts the binary on `db` and returns it with the address it listens on. It shows no
/// history on joining: the test asks for it.
async fn start(db: &Path) -> (Child, String) {
    let db = db.to_str().unwrap();
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--flood-rate",
        "0",
        "--history",
        "0",
        "--db",
        db,
    ];
    let server = common::Started::spawn(&args, &[], 1).await;
    let addr = server
        .logged("listening", "addr")
        .as_str()
        .unwrap()
        .to_owned();
    (server.child, addr)
}

async fn next_frame(conn: &mut Conn) -> ServerFrame {
    let line = tokio::time::timeout(WAIT, conn.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .unwrap()
        .unwrap();
    ServerFrame::parse(&line).unwrap()
}

async fn login(addr: &str, nick: &str) -> Conn {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut conn = Framed::new(stream, LineCodec::new(chat_proto::CLIENT_MAX_LINE));
    assert_eq!(next_frame(&mut conn).await, ServerFrame::NickPrompt);
    conn.send(nick).await.unwrap();
    while !matches!(next_frame(&mut conn).await, ServerFrame::Current { .. }) {}
    conn
}

#[tokio::test]
async fn after_kill_9_at_most_the_last_batch_window_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (mut server, addr) = start(&db).await;
    let mut writer = login(&addr, "writer").await;

    // Steady traffic for well over the window, each message sent once the previous one
    // was accepted; note when each was accepted.
    const TRAFFIC: Duration = Duration::from_millis(1500);
    let started = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    let mut accepted = Vec::new();
    while started.elapsed() < TRAFFIC {
        pace.tick().await;
        let n = accepted.len();
        writer.send(n.to_string()).await.unwrap();
        loop {
            if let ServerFrame::Message { text, .. } = next_frame(&mut writer).await {
                assert_eq!(text, n.to_string());
                break;
            }
        }
        accepted.push(Instant::now());
    }
    let killed = Instant::now();
    server.start_kill().unwrap();
    tokio::time::timeout(WAIT, server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(accepted.len() > 100, "traffic flowed: {}", accepted.len());

    let (_restarted, addr) = start(&db).await;
    let mut reader = login(&addr, "reader").await;
    reader.send("/history 500").await.unwrap();
    let mut kept = Vec::new();
    loop {
        match next_frame(&mut reader).await {
            ServerFrame::History(event) => match *event {
                ServerFrame::Message { text, .. } => kept.push(text.parse::<usize>().unwrap()),
                other => panic!("unexpected history {other:?}"),
            },
            ServerFrame::HistoryEnd { .. } => break,
            _ => {}
        }
    }
    // A prefix of what was accepted, with no hole...
    assert_eq!(kept, (0..kept.len()).collect::<Vec<_>>());
    assert!(kept.len() <= accepted.len());
    // ...that holds everything accepted before the last window (and its commit).
    let deadline = killed - WINDOW - COMMIT_ALLOWANCE;
    let must_keep = accepted.iter().filter(|&&t| t < deadline).count();
    assert!(
        kept.len() >= must_keep,
        "kept {} of {} accepted; {} were accepted over {:?} before the kill",
        kept.len(),
        accepted.len(),
        must_keep,
        WINDOW + COMMIT_ALLOWANCE
    );
}

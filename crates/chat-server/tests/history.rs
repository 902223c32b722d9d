//! History: what a newcomer is shown on joining, `/history` and paging back by message
//! id, the exact seam between history and live traffic, history surviving a restart on
//! the same database, and private conversations kept for their two parties only.

mod common;

use chat_proto::{ErrorCode, ServerFrame, Target};
use chat_server::Config;
use common::*;

/// The text and id of a `MSG` frame, live or inside `HISTORY`.
fn said(frame: &ServerFrame) -> Option<(&str, u64)> {
    match frame {
        ServerFrame::Message { text, id, .. } => Some((text.as_str(), *id)),
        ServerFrame::History(event) => said(event),
        _ => None,
    }
}

/// Reads a batch of history up to its `HISTORYEND`; returns the events and the count the
/// end frame gave.
async fn history_batch(client: &mut Client) -> (Vec<ServerFrame>, Target, usize) {
    let mut events = Vec::new();
    loop {
        match client.recv().await {
            ServerFrame::History(event) => events.push(*event),
            ServerFrame::HistoryEnd { target, count } => return (events, target, count),
            other => panic!("expected history, got {other:?}"),
        }
    }
}

fn texts(events: &[ServerFrame]) -> Vec<&str> {
    events.iter().filter_map(|e| said(e).map(|s| s.0)).collect()
}

#[tokio::test]
async fn a_newcomer_sees_the_latest_messages_with_their_time_then_live_traffic() {
    let config = Config {
        history: 3,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut alice = server.login("alice").await;
    for i in 1..=5 {
        alice.send(&format!("m{i}")).await;
    }
    let echoes = alice.sync().await;
    alice.send("/me waves").await;
    alice.sync().await;

    let mut bob = server.login("bob").await;
    let (events, target, count) = history_batch(&mut bob).await;
    assert_eq!(target, Target::Room(room("#general")));
    assert_eq!(count, 3);
    // The latest three, oldest first, exactly as they were sent: same time, same id.
    assert_eq!(&events[..2], &echoes[3..5]);
    assert!(matches!(&events[2], ServerFrame::Action { text, .. } if text == "waves"));

    alice.send("live").await;
    let frames = bob.sync().await;
    let live: Vec<_> = frames.iter().filter_map(said).collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].0, "live");
    assert!(live[0].1 > said(&echoes[4]).unwrap().1, "ids rise");
}

#[tokio::test]
async fn joining_while_the_room_talks_shows_every_message_once_at_the_seam() {
    let config = Config {
        history: 5000,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let flooder = server.login("flooder").await;
    // The flooder's first lines are in flight while bob joins; the rest follow once he
    // is in. Wherever the seam falls, history then live must be 0..COUNT exactly.
    const BEFORE: usize = 1000;
    const COUNT: usize = 3000;
    let (read, mut write) = flooder.framed.into_inner().into_split();
    let (first_echo, first_echoed) = tokio::sync::oneshot::channel();
    let (welcomed, bob_welcomed) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut bob_welcomed = Some(bob_welcomed);
        for i in 0..COUNT {
            if i == BEFORE {
                bob_welcomed.take().unwrap().await.unwrap();
            }
            write.write_all(format!("{i}\n").as_bytes()).await.unwrap();
        }
        write
    });
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(read).lines();
        let mut first_echo = Some(first_echo);
        let mut echoes = 0;
        while echoes < COUNT {
            let line = lines.next_line().await.unwrap().unwrap();
            if line.starts_with("MSG ") {
                echoes += 1;
                if let Some(tx) = first_echo.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    tokio::time::timeout(WAIT, first_echoed)
        .await
        .unwrap()
        .unwrap();

    let mut bob = server.connect().await;
    bob.send("bob").await;
    let (mut history, mut live) = (Vec::new(), Vec::new());
    let mut welcomed = Some(welcomed);
    while live.last() != Some(&(COUNT - 1)) {
        match bob.recv().await {
            ServerFrame::Welcome { .. } => {
                // The join happens with the welcome: everything sent from now on is live.
                let _ = welcomed.take().unwrap().send(());
            }
            ServerFrame::History(event) => {
                history.push(said(&event).unwrap().0.parse::<usize>().unwrap())
            }
            ServerFrame::Message { text, .. } => live.push(text.parse::<usize>().unwrap()),
            _ => {}
        }
    }
    assert!(!history.is_empty(), "the first message came before bob");
    assert!(live.len() >= COUNT - BEFORE);
    let all: Vec<usize> = history.iter().chain(&live).copied().collect();
    assert_eq!(
        all,
        (0..COUNT).collect::<Vec<_>>(),
        "no gap, no repeat at the seam"
    );
    writer.await.unwrap();
    reader.await.unwrap();
}

#[tokio::test]
async fn history_pages_back_by_message_id() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    for i in 0..10 {
        alice.send(&format!("m{i}")).await;
    }
    alice.sync().await;

    alice.send("/history 3").await;
    let (latest, target, count) = history_batch(&mut alice).await;
    assert_eq!((texts(&latest), count), (vec!["m7", "m8", "m9"], 3));
    assert_eq!(target, Target::Room(room("#general")));

    let oldest_shown = said(&latest[0]).unwrap().1;
    alice.send(&format!("/history 3 {oldest_shown}")).await;
    let (page, _, _) = history_batch(&mut alice).await;
    assert_eq!(texts(&page), ["m4", "m5", "m6"]);

    let first = said(&page[0]).unwrap().1;
    alice.send(&format!("/history #GENERAL 50 {first}")).await;
    let (rest, _, count) = history_batch(&mut alice).await;
    assert_eq!((texts(&rest), count), (vec!["m0", "m1", "m2", "m3"], 4));

    // A room with no history, and one that never existed, answer with an empty batch.
    alice.send("/history #nowhere").await;
    let (none, target, count) = history_batch(&mut alice).await;
    assert_eq!((none.len(), count), (0, 0));
    assert_eq!(target, Target::Room(room("#nowhere")));

    alice.send("/history 0").await;
    assert!(matches!(
        alice.recv().await,
        ServerFrame::Error {
            code: ErrorCode::Usage,
            ..
        }
    ));
}

#[tokio::test]
async fn a_restarted_server_shows_a_newcomer_what_was_said_before() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_owned();
    let config = || Config {
        db: Some(db.clone()),
        ..Config::unthrottled()
    };
    let mut first = TestServer::with(config()).await;
    let mut alice = first.login("alice").await;
    alice.send("before the restart").await;
    let echo = alice.sync().await.remove(0);
    first.shutdown().await;

    let second = TestServer::with(config()).await;
    let mut bob = second.login("bob").await;
    let (events, _, _) = history_batch(&mut bob).await;
    assert_eq!(events, std::slice::from_ref(&echo));
    // Ids carry on from where the database left them.
    bob.send("after").await;
    let after = bob.sync().await;
    assert!(said(&after[0]).unwrap().1 > said(&echo).unwrap().1);
}

#[tokio::test]
async fn private_messages_are_kept_for_their_registered_parties_only() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.send("/register correct horse").await;
    alice
        .until(|f| matches!(f, ServerFrame::Account { .. }))
        .await;
    alice.send("/msg bob psst").await;
    let (sent, _) = alice
        .until(|f| matches!(f, ServerFrame::Private { .. }))
        .await;
    alice.sync().await;

    alice.send("/history bob").await;
    let (events, target, _) = history_batch(&mut alice).await;
    assert_eq!(events, [sent]);
    assert_eq!(target, Target::Nick(nick("bob")));

    // Bob has no account: anyone could hold his nickname later, so no replay for him.
    bob.sync().await;
    bob.send("/history alice").await;
    assert!(matches!(
        bob.recv().await,
        ServerFrame::Error {
            code: ErrorCode::NotRegistered,
            ..
        }
    ));
    // And nothing private is in a room's history.
    let mut carol = server.login("carol").await;
    carol.send("/history").await;
    let (events, _, count) = history_batch(&mut carol).await;
    assert_eq!((events.len(), count), (0, 0));
}

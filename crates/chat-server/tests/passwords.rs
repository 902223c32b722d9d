//! Password guessing under load, through the real socket: the spacing after a wrong
//! password holds however many connections guess at once, and addresses hammering a
//! registered nickname do not lock its owner out.
//!
//! Each client binds its own loopback address (127.0.0.N): every 127.x address is
//! loopback, so passwords may cross, and the throttle tells the addresses apart.

mod common;

use chat_proto::{AccountStatus, ErrorCode, ServerFrame};
use common::*;
use futures::StreamExt;
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Connects from the loopback address `127.0.0.<host>` and reads the `NICK` prompt.
async fn connect_from(server: &TestServer, host: u8) -> Client {
    server.connect_from(Ipv4Addr::new(127, 0, 0, host)).await
}

fn is_wrong_password(frame: &ServerFrame) -> bool {
    matches!(
        frame,
        ServerFrame::Error {
            code: ErrorCode::PasswordWrong,
            ..
        }
    )
}

/// Regression: the session read the delay, slept, verified and only then recorded the
/// failure, so parallel guesses all saw no delay: 20 of them got 20 answers in the first
/// second. Now each address's checks go one at a time, the next no sooner than the
/// delay (0.5 s, then 1 s, ...) after a wrong answer: within any second, at most two.
#[tokio::test]
async fn parallel_guesses_from_one_address_are_spaced() {
    let server = TestServer::start().await;
    server.register("alice", "correct horse").await;
    let mut guessers = Vec::new();
    for _ in 0..20 {
        let mut guesser = connect_from(&server, 2).await;
        guesser.send("alice").await;
        assert_eq!(guesser.recv().await, ServerFrame::PassPrompt);
        guessers.push(guesser);
    }

    let (answered, mut answers) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for (i, mut guesser) in guessers.into_iter().enumerate() {
        let answered = answered.clone();
        tasks.spawn(async move {
            guesser.send(&format!("guess number {i}")).await;
            // No timeout here: the tasks are dropped with the test.
            if let Some(Ok(Ok(line))) = guesser.framed.next().await {
                let _ = answered.send(ServerFrame::parse(&line).unwrap());
            }
            // Stay connected until the test ends.
            std::future::pending::<()>().await;
        });
    }
    let mut within_a_second = 0;
    while let Ok(Some(frame)) =
        tokio::time::timeout_at(start + Duration::from_secs(1), answers.recv()).await
    {
        assert!(is_wrong_password(&frame), "{frame:?}");
        within_a_second += 1;
    }
    // The first answer comes at once; the second no sooner than 0.5 s after it, the
    // third 1 s after that.
    assert!(
        (1..=2).contains(&within_a_second),
        "{within_a_second} answers within the first second"
    );
}

/// Regression: the delay per nickname applied to everyone, so after 20 quick wrong
/// passwords from other addresses the owner waited ~30 s (longer than a client waits),
/// and a wrong guess every 30 s kept it out for good. Now addresses with recent failures
/// queue apart, and the owner, from an address with none, is checked within ~2 s.
#[tokio::test]
async fn hammering_a_nickname_does_not_lock_its_owner_out() {
    let server = TestServer::start().await;
    server.register("alice", "correct horse").await;

    // 21 addresses guess alice's password as fast as they are answered.
    let (failed, mut failures) = mpsc::unbounded_channel();
    let mut attackers = JoinSet::new();
    for host in 2..=22 {
        let mut attacker = connect_from(&server, host).await;
        let failed = failed.clone();
        attackers.spawn(async move {
            attacker.send("alice").await;
            // No timeout here: the tasks are dropped with the test.
            while let Some(Ok(Ok(line))) = attacker.framed.next().await {
                match ServerFrame::parse(&line).unwrap() {
                    ServerFrame::NickPrompt => attacker.send("alice").await,
                    ServerFrame::PassPrompt => attacker.send("not the password").await,
                    frame if is_wrong_password(&frame) => {
                        let _ = failed.send(host);
                    }
                    frame => panic!("unexpected {frame:?}"),
                }
            }
        });
    }
    // The attack is under way: several wrong answers have been given.
    for _ in 0..5 {
        tokio::time::timeout(WAIT, failures.recv())
            .await
            .expect("the attackers are answered")
            .unwrap();
    }

    let mut owner = connect_from(&server, 200).await;
    owner.send("alice").await;
    assert_eq!(owner.recv().await, ServerFrame::PassPrompt);
    let asked = Instant::now();
    owner.send("correct horse").await;
    let welcome = tokio::time::timeout(Duration::from_secs(3), owner.recv())
        .await
        .unwrap_or_else(|_| panic!("the owner is still waiting after {:?}", asked.elapsed()));
    assert!(
        matches!(welcome, ServerFrame::Welcome { .. }),
        "{welcome:?}"
    );
    assert_eq!(
        owner.recv().await,
        ServerFrame::Account {
            nick: nick("alice"),
            status: AccountStatus::Identified
        }
    );
}

//! Accounts: `/register` claims a nickname, which from then on needs its password in the
//! handshake (`PASS`); `/password` changes it; wrong passwords are refused and slowed
//! down; nobody takes a registered nickname with `/nick`.

mod common;

use chat_proto::{AccountStatus, ErrorCode, ServerFrame};
use common::*;
use std::time::{Duration, Instant};

fn error_code(frame: &ServerFrame) -> Option<&ErrorCode> {
    match frame {
        ServerFrame::Error { code, .. } => Some(code),
        _ => None,
    }
}

/// Connects, gives `nick`, and expects the password prompt.
async fn prompted(server: &TestServer, nick: &str) -> Client {
    let mut client = server.connect().await;
    client.send(nick).await;
    assert_eq!(client.recv().await, ServerFrame::PassPrompt);
    client
}

#[tokio::test]
async fn a_registered_nickname_needs_its_password() {
    let server = TestServer::start().await;
    server.register("alice", "correct horse").await;

    // A wrong password: refused, and asked for a nickname again.
    let mut mallory = prompted(&server, "alice").await;
    mallory.send("battery staple").await;
    assert_eq!(
        error_code(&mallory.recv().await),
        Some(&ErrorCode::PasswordWrong)
    );
    assert_eq!(mallory.recv().await, ServerFrame::NickPrompt);
    // Another nickname still works on the same connection.
    mallory.login("mallory").await;

    // The right one: welcome, and told it is identified.
    let mut alice = prompted(&server, "ALICE").await;
    alice.send("correct horse").await;
    assert!(matches!(alice.recv().await, ServerFrame::Welcome { .. }));
    assert_eq!(
        alice.recv().await,
        ServerFrame::Account {
            nick: nick("ALICE"),
            status: AccountStatus::Identified
        }
    );
    assert!(matches!(alice.recv().await, ServerFrame::Join { .. }));
}

#[tokio::test]
async fn nobody_renames_onto_a_registered_nickname() {
    let server = TestServer::start().await;
    server.register("alice", "correct horse").await;
    let mut bob = server.login("bob").await;
    bob.send("/nick Alice").await;
    assert_eq!(
        bob.sync()
            .await
            .iter()
            .filter_map(error_code)
            .collect::<Vec<_>>(),
        [&ErrorCode::NickRegistered]
    );
    // Registering twice is refused; the owner changes its password with /password.
    let mut alice = prompted(&server, "alice").await;
    alice.send("correct horse").await;
    alice
        .until(|f| matches!(f, ServerFrame::Current { .. }))
        .await;
    alice.send("/register another one").await;
    alice.send("/password battery staple").await;
    let frames = alice.sync().await;
    assert_eq!(
        frames.iter().filter_map(error_code).collect::<Vec<_>>(),
        [&ErrorCode::AlreadyRegistered]
    );
    assert!(frames.contains(&ServerFrame::Account {
        nick: nick("alice"),
        status: AccountStatus::PasswordChanged
    }));
    alice.send("/quit").await;
    alice.closed().await;

    let mut old = prompted(&server, "alice").await;
    old.send("correct horse").await;
    assert_eq!(
        error_code(&old.recv().await),
        Some(&ErrorCode::PasswordWrong)
    );
    let mut new = prompted(&server, "alice").await;
    new.send("battery staple").await;
    assert!(matches!(new.recv().await, ServerFrame::Welcome { .. }));
}

#[tokio::test]
async fn passwords_must_be_long_enough_and_belong_to_the_registered() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    bob.send("/register short").await;
    bob.send("/password whatever-long").await;
    assert_eq!(
        bob.sync()
            .await
            .iter()
            .filter_map(error_code)
            .collect::<Vec<_>>(),
        [&ErrorCode::PasswordInvalid, &ErrorCode::NotRegistered]
    );
}

#[tokio::test]
async fn wrong_passwords_are_slowed_down() {
    let server = TestServer::start().await;
    server.register("alice", "correct horse").await;
    let mut mallory = prompted(&server, "alice").await;
    mallory.send("guess one").await;
    assert_eq!(
        error_code(&mallory.recv().await),
        Some(&ErrorCode::PasswordWrong)
    );
    assert_eq!(mallory.recv().await, ServerFrame::NickPrompt);
    // The next guess is not even checked before the throttle's delay (0.5 s after one
    // failure) has passed; a lower bound, so a slow machine cannot break it.
    mallory.send("alice").await;
    assert_eq!(mallory.recv().await, ServerFrame::PassPrompt);
    let asked = Instant::now();
    mallory.send("guess two").await;
    assert_eq!(
        error_code(&mallory.recv().await),
        Some(&ErrorCode::PasswordWrong)
    );
    assert!(
        asked.elapsed() >= Duration::from_millis(450),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn accounts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_owned();
    let config = || chat_server::Config {
        db: Some(db.clone()),
        ..chat_server::Config::unthrottled()
    };
    let mut first = TestServer::with(config()).await;
    first.register("alice", "correct horse").await;
    first.shutdown().await;

    let second = TestServer::with(config()).await;
    let mut alice = prompted(&second, "alice").await;
    alice.send("correct horse").await;
    assert!(matches!(alice.recv().await, ServerFrame::Welcome { .. }));
}

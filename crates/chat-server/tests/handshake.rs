//! The original program's handshake: `NICK`, a nickname, and again until one is free.

mod common;

use chat_proto::{ErrorCode, ServerFrame};
use chat_server::Config;
use common::*;
use std::time::Duration;

#[tokio::test]
async fn nickname_is_asked_for_and_welcomed() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    alice.login("alice").await;
    assert_eq!(server.stats().sessions, 1);
}

#[tokio::test]
async fn taken_nickname_is_refused_case_insensitively_and_asked_again() {
    let server = TestServer::start().await;
    let _alice = server.login("alice").await;
    let mut other = server.connect().await;
    other.send("ALICE").await;
    assert!(matches!(
        other.recv().await,
        ServerFrame::Error {
            code: ErrorCode::NickTaken,
            ..
        }
    ));
    assert_eq!(other.recv().await, ServerFrame::NickPrompt);
    other.login("bob").await;
}

#[tokio::test]
async fn invalid_nicknames_are_refused_and_asked_again() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    for bad in ["", "9lives", "has space", "\u{1b}[31mred", &"x".repeat(33)] {
        c.send(bad).await;
        match c.recv().await {
            ServerFrame::Error {
                code: ErrorCode::NickInvalid,
                text,
            } => {
                assert!(
                    !text.contains('\u{1b}'),
                    "the error never echoes control characters: {text:?}"
                )
            }
            other => panic!("{bad:?}: expected NICK_INVALID, got {other:?}"),
        }
        assert_eq!(c.recv().await, ServerFrame::NickPrompt);
    }
    c.login("valid").await;
}

#[tokio::test]
async fn nickname_with_crlf_and_surrounding_spaces_is_accepted() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send_raw(b"  telnet-user \r\n").await;
    assert!(
        matches!(c.recv().await, ServerFrame::Welcome { nick, .. } if nick.as_str() == "telnet-user")
    );
}

#[tokio::test]
async fn handshake_that_does_not_finish_is_closed() {
    let config = Config {
        handshake_timeout: Duration::from_millis(200),
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut silent = server.connect().await;
    assert_eq!(
        silent.closed().await,
        vec![ServerFrame::Bye {
            reason: "handshake timed out".into()
        }]
    );
    // The server carries on.
    server.login("alice").await;
}

#[tokio::test]
async fn nickname_is_free_again_after_its_owner_leaves() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.sync().await;
    alice.send("/quit").await;
    assert_eq!(
        alice.closed().await,
        vec![ServerFrame::Bye {
            reason: "quit".into()
        }]
    );
    bob.until(|f| matches!(f, ServerFrame::Quit { nick, .. } if nick.as_str() == "alice"))
        .await;
    server.login("alice").await;
}

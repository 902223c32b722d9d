//! Bad input, lagging members, the connection limit and shutdown: the connection and
//! everyone else carry on, and every client is told what happened.

mod common;

use chat_proto::{ErrorCode, ServerFrame};
use chat_server::Config;
use common::*;

fn code(frames: &[ServerFrame]) -> Vec<ErrorCode> {
    frames
        .iter()
        .map(|f| match f {
            ServerFrame::Error { code, .. } => code.clone(),
            other => panic!("expected ERR, got {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn over_long_line_is_refused_and_the_connection_carries_on() {
    let config = Config {
        max_line: 64,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.sync().await;

    alice.send(&"x".repeat(65)).await;
    assert_eq!(code(&alice.sync().await), [ErrorCode::LineTooLong]);
    // A line far larger than any buffer, in pieces, is refused once and skipped whole.
    alice.send_raw(&vec![b'y'; 1 << 20]).await;
    alice.send_raw(b"still the same line\nfine\n").await;
    assert_eq!(code(&alice.sync().await[..1]), [ErrorCode::LineTooLong]);
    alice.send(&"z".repeat(64)).await;

    let frames = bob.sync().await;
    let texts: Vec<_> = frames
        .iter()
        .filter_map(|f| msg_text(f, "#general", "alice"))
        .collect();
    assert_eq!(texts, ["fine", &"z".repeat(64)]);
}

#[tokio::test]
async fn invalid_utf8_and_control_characters_are_refused() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.sync().await;

    alice.send_raw(b"caf\xe9 latin-1\n").await;
    alice.send("\u{1b}[2J\u{1b}[Hgotcha").await;
    alice.send("/me \u{202e}desrever").await;
    alice.send("bell\u{7}").await;
    alice.send("/msg bob \u{9b}31m").await;
    assert_eq!(
        code(&alice.sync().await),
        [
            ErrorCode::BadUtf8,
            ErrorCode::ControlChars,
            ErrorCode::ControlChars,
            ErrorCode::ControlChars,
            ErrorCode::ControlChars
        ]
    );
    alice.send("tabs\tare fine, and ünïcödé too").await;
    let frames = bob.sync().await;
    assert_eq!(frames.len(), 1, "nothing refused reached bob: {frames:?}");
    assert_eq!(
        msg_text(&frames[0], "#general", "alice"),
        Some("tabs\tare fine, and ünïcödé too")
    );
}

#[tokio::test]
async fn unknown_commands_and_bad_arguments_get_stable_codes() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/frobnicate now").await;
    match &alice.sync().await[..] {
        [
            ServerFrame::Error {
                code: ErrorCode::UnknownCommand,
                text,
            },
        ] => assert!(text.contains("/frobnicate")),
        other => panic!("{other:?}"),
    }
    for (line, expected) in [
        ("/join", ErrorCode::Usage),
        ("/join rust", ErrorCode::RoomInvalid),
        ("/join #a #b", ErrorCode::Usage),
        ("/join #a b c", ErrorCode::Usage),
        ("/mode #a +x", ErrorCode::UnknownMode),
        ("/mode #nowhere", ErrorCode::NoSuchRoom),
        ("/kick", ErrorCode::Usage),
        ("/op", ErrorCode::Usage),
        ("/invite", ErrorCode::Usage),
        ("/unban", ErrorCode::Usage),
        ("/nick 1st", ErrorCode::NickInvalid),
        ("/me", ErrorCode::Usage),
        ("/who #a #b", ErrorCode::Usage),
    ] {
        alice.send(line).await;
        assert_eq!(code(&alice.sync().await), [expected], "{line}");
    }
    // Blank lines are ignored.
    alice.send("   ").await;
    assert_eq!(alice.sync().await, vec![]);
}

#[tokio::test]
async fn rooms_per_connection_are_limited() {
    let config = Config {
        max_rooms: 3,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut alice = server.login("alice").await;
    alice.send("/join #two").await;
    alice.send("/join #three").await;
    alice.sync().await;
    alice.send("/join #four").await;
    assert_eq!(code(&alice.sync().await), [ErrorCode::TooManyRooms]);
    // Switching to a room one is already in is not a new room.
    alice.send("/join #two").await;
    assert_eq!(
        alice.sync().await,
        vec![ServerFrame::Current {
            room: Some(room("#two"))
        }]
    );
    alice.send("/part #three").await;
    alice.send("/join #four").await;
    let frames = alice.sync().await;
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Join { room, .. } if room.as_str() == "#four"))
    );
    assert_eq!(server.stats().rooms, 3);
}

#[tokio::test]
async fn lagging_member_is_refilled_from_history_in_order_and_keeps_receiving() {
    // A tiny room buffer, and a member whose socket accepts almost nothing until it reads.
    let config = Config {
        room_capacity: 16,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut slow = server.login_small_buffer("slow").await;
    let flooder = server.login("flooder").await;
    slow.sync().await;
    // More than the kernel buffers (the server's bounded send buffer and the slow
    // side's receive buffer) can hold; every message has been broadcast when this
    // returns.
    const COUNT: usize = 6000;
    server.flood_general(flooder, COUNT, 2000).await;

    // Now the slow member reads. Its room buffer holds 16 events and the kernel half a
    // MiB, so it fell far behind; what the buffer lost comes back from the store, in
    // order, with nothing missing and nothing twice.
    let (mut delivered, mut missed, mut last) = (0u64, 0u64, None);
    while delivered + missed < COUNT as u64 {
        match slow.recv().await {
            ServerFrame::Message { text, .. } => {
                let n: usize = text.split(' ').next().unwrap().parse().unwrap();
                assert_eq!(n, last.map_or(0, |l| l + 1), "in order, no gap, no repeat");
                last = Some(n);
                delivered += 1;
            }
            ServerFrame::Lagged { room, missed: m } => {
                assert_eq!(room.as_str(), "#general");
                missed += m;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((delivered, missed), (COUNT as u64, 0));
    // And it is live again.
    let mut bob = server.login("bob").await;
    bob.send("after the gap").await;
    let (frame, _) = slow
        .until(|f| matches!(f, ServerFrame::Message { .. }))
        .await;
    assert_eq!(msg_text(&frame, "#general", "bob"), Some("after the gap"));
}

/// A room keeps in memory what its slowest member has not read, and gives it back once
/// that member is gone: its memory follows the lag, not the traffic.
#[tokio::test]
async fn a_room_holds_what_its_slowest_member_has_not_read() {
    let server = TestServer::start().await;
    let stopped = server.login_small_buffer("stopped").await;
    let mut talker = server.login("talker").await;
    let flooder = server.login("flooder").await;
    // 2,000 lines of 1,000 bytes: far more than the stopped member's socket takes.
    server.flood_general(flooder, 2000, 1000).await;
    talker.sync().await;
    let held = server.stats().room_bytes;
    assert!(held > 1_000_000, "{held} bytes held for the stopped member");

    drop(stopped);
    tokio::time::timeout(WAIT, server.server.wait_until(|s| s.sessions == 1))
        .await
        .expect("the stopped member's session ends");
    // The room looks at its readers every 64 events.
    for i in 0..64 {
        talker.send(&format!("after {i}")).await;
    }
    talker.sync().await;
    let held = server.stats().room_bytes;
    assert!(
        held < 64 * 2000,
        "{held} bytes held when every member has read everything but the last few"
    );
}

#[tokio::test]
async fn connection_past_the_limit_is_told_and_the_others_carry_on() {
    let config = Config {
        max_connections: Some(2),
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut alice = server.login("alice").await;
    let _bob = server.login("bob").await;
    alice.sync().await;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut third = Client::new(stream);
    let frames = third.closed().await;
    assert!(
        matches!(
            &frames[..],
            [
                ServerFrame::Error {
                    code: ErrorCode::ServerFull,
                    ..
                },
                ServerFrame::Bye { .. }
            ]
        ),
        "{frames:?}"
    );
    alice.send("still here").await;
    assert_eq!(
        msg_text(&alice.sync().await[0], "#general", "alice"),
        Some("still here")
    );
    assert_eq!(server.stats().connections, 2);
}

#[tokio::test]
async fn shutdown_tells_every_client_and_returns() {
    let mut server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut handshaking = server.connect().await;
    alice.sync().await;
    server.shutdown().await;
    let bye = ServerFrame::Bye {
        reason: "server shutting down".into(),
    };
    for c in [&mut alice, &mut bob, &mut handshaking] {
        let frames = c.closed().await;
        assert_eq!(frames.last(), Some(&bye), "{frames:?}");
    }
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn errors_never_echo_control_characters() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/a\u{1}b\u{1b}[31m").await;
    match &alice.sync().await[..] {
        [
            ServerFrame::Error {
                code: ErrorCode::UnknownCommand,
                text,
            },
        ] => {
            assert!(
                chat_proto::text::first_forbidden(text).is_none(),
                "{text:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pong_follows_the_echo_even_behind_a_large_backlog() {
    // Regression: the batch limit used to stop collecting before the echo of the line
    // just sent, and the PONG of the next line overtook it.
    let server = TestServer::start().await;
    let mut alice = server.login_small_buffer("alice").await;
    let bob = server.login("bob").await;
    alice.sync().await;
    // A backlog of about 4 MB that alice has not read, within the room's buffer.
    server.flood_general(bob, 1000, 4000).await;

    alice.send("mine").await;
    let frames = alice.sync().await;
    assert!(
        frames
            .iter()
            .any(|f| msg_text(f, "#general", "alice") == Some("mine")),
        "the echo of alice's line comes before the PONG of her next one"
    );
}

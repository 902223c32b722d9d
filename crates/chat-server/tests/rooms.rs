//! Messages, rooms, private messages and renames, seen from several clients at once.

mod common;

use chat_proto::{ErrorCode, ServerFrame};
use chat_server::Config;
use common::*;

#[tokio::test]
async fn message_reaches_everyone_in_the_room_sender_included() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for i in 0..20 {
        clients.push(server.login(&format!("user{i}")).await);
    }
    clients[7].send("hello, everyone").await;
    for client in &mut clients {
        let (frame, _) = client
            .until(|f| matches!(f, ServerFrame::Message { .. }))
            .await;
        assert_eq!(
            msg_text(&frame, "#general", "user7"),
            Some("hello, everyone")
        );
    }
}

#[tokio::test]
async fn members_hear_joins_and_the_newcomer_gets_the_member_list() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.connect().await;
    bob.send("bob").await;
    assert!(matches!(bob.recv().await, ServerFrame::Welcome { .. }));
    assert!(matches!(bob.recv().await, ServerFrame::Join { nick, .. } if nick.as_str() == "bob"));
    match bob.recv().await {
        ServerFrame::Members { room, members } => {
            assert_eq!(room.as_str(), "#general");
            let mut nicks: Vec<_> = members.into_iter().map(|m| m.nick).collect();
            nicks.sort();
            assert_eq!(nicks, vec![nick("alice"), nick("bob")]);
        }
        other => panic!("expected MEMBERS, got {other:?}"),
    }
    let frames = alice.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Join { room, nick, .. }] if room.as_str() == "#general" && nick.as_str() == "bob")
    );
}

#[tokio::test]
async fn echo_of_own_message_comes_before_the_pong_of_the_next_line() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("one").await;
    alice.send("//two").await;
    alice.send("/me three").await;
    let frames = alice.sync().await;
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(msg_text(&frames[0], "#general", "alice"), Some("one"));
    assert_eq!(msg_text(&frames[1], "#general", "alice"), Some("/two"));
    assert!(matches!(&frames[2], ServerFrame::Action { text, .. } if text == "three"));
}

#[tokio::test]
async fn rooms_are_isolated() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.sync().await;
    for c in [&mut alice, &mut bob] {
        c.send("/join #Rust").await;
    }
    alice.sync().await;
    bob.sync().await;
    carol.sync().await;

    alice.send("only for rustaceans").await;
    let bob_frames = bob.sync().await;
    assert_eq!(bob_frames.len(), 1);
    assert_eq!(
        msg_text(&bob_frames[0], "#Rust", "alice"),
        Some("only for rustaceans")
    );
    alice.sync().await;
    // carol, in #general only, saw the two leave-less joins elsewhere as nothing at all.
    assert_eq!(carol.sync().await, vec![]);

    // A bare line goes to the current room, which /join changed.
    bob.send("/join #general").await;
    assert_eq!(
        bob.sync().await,
        vec![ServerFrame::Current {
            room: Some(room("#general"))
        }]
    );
    bob.send("back in general").await;
    let carol_frames = carol.sync().await;
    assert_eq!(
        msg_text(&carol_frames[0], "#general", "bob"),
        Some("back in general")
    );
}

#[tokio::test]
async fn part_is_told_to_the_room_and_moves_the_current_room() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    // One after the other, so that each has seen everything before the test goes on.
    bob.send("/join #rust").await;
    bob.sync().await;
    alice.send("/join #rust").await;
    alice.sync().await;
    bob.sync().await;

    bob.send("/part #rust gone fishing").await;
    let bob_frames = bob.sync().await;
    assert!(
        matches!(&bob_frames[0], ServerFrame::Part { room, nick, reason: Some(r), .. }
        if room.as_str() == "#rust" && nick.as_str() == "bob" && r == "gone fishing")
    );
    assert_eq!(
        bob_frames[1],
        ServerFrame::Current {
            room: Some(room("#general"))
        }
    );
    let alice_frames = alice.sync().await;
    assert!(
        matches!(&alice_frames[..], [ServerFrame::Part { nick, .. }] if nick.as_str() == "bob")
    );

    // No longer a member: messages there do not reach bob, and parting again is an error.
    alice.send("still here").await;
    alice.sync().await;
    assert_eq!(bob.sync().await, vec![]);
    bob.send("/part #rust").await;
    assert!(matches!(
        &bob.sync().await[..],
        [ServerFrame::Error {
            code: ErrorCode::NotInRoom,
            ..
        }]
    ));

    // Leaving the last room leaves nowhere to talk.
    bob.send("/part").await;
    let frames = bob.sync().await;
    assert_eq!(frames.last(), Some(&ServerFrame::Current { room: None }));
    bob.send("hello?").await;
    assert!(matches!(
        &bob.sync().await[..],
        [ServerFrame::Error {
            code: ErrorCode::NoCurrentRoom,
            ..
        }]
    ));
}

#[tokio::test]
async fn who_rooms_and_help() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    bob.send("/join #rust").await;
    bob.sync().await;
    alice.sync().await;

    // Bob made #rust: he is its operator.
    alice.send("/who #RUST").await;
    assert_eq!(
        alice.sync().await,
        vec![ServerFrame::Members {
            room: room("#rust"),
            members: vec![chat_proto::RoomMember {
                status: chat_proto::Status::Operator,
                nick: nick("bob")
            }]
        }]
    );
    alice.send("/rooms").await;
    assert_eq!(
        alice.sync().await,
        vec![ServerFrame::Rooms {
            rooms: vec![(room("#general"), 2), (room("#rust"), 1)]
        }]
    );
    alice.send("/who #nowhere").await;
    assert!(matches!(
        &alice.sync().await[..],
        [ServerFrame::Error {
            code: ErrorCode::NoSuchRoom,
            ..
        }]
    ));
    alice.send("/help").await;
    let help = alice.sync().await;
    assert_eq!(help.len(), chat_proto::command::HELP.len());
    for cmd in [
        "/join", "/part", "/rooms", "/who", "/msg", "/me", "/nick", "/quit", "/help", "/ping",
    ] {
        assert!(
            help.iter()
                .any(|f| matches!(f, ServerFrame::Help { text } if text.starts_with(cmd))),
            "/help lists {cmd}"
        );
    }
}

#[tokio::test]
async fn private_messages_reach_only_their_recipient() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.sync().await;
    bob.sync().await;

    alice.send("/msg BOB psst, a secret").await;
    let expected = |f: &ServerFrame| {
        matches!(f, ServerFrame::Private { from, to, text, .. }
            if from.as_str() == "alice" && to.as_str() == "bob" && text == "psst, a secret")
    };
    let bob_frames = bob.sync().await;
    assert!(
        bob_frames.len() == 1 && expected(&bob_frames[0]),
        "{bob_frames:?}"
    );
    let alice_frames = alice.sync().await;
    assert!(
        alice_frames.len() == 1 && expected(&alice_frames[0]),
        "sender sees its copy: {alice_frames:?}"
    );
    assert_eq!(carol.sync().await, vec![]);

    alice.send("/msg nobody hello").await;
    assert!(matches!(
        &alice.sync().await[..],
        [ServerFrame::Error {
            code: ErrorCode::NoSuchNick,
            ..
        }]
    ));
    alice.send("/msg bob").await;
    assert!(matches!(
        &alice.sync().await[..],
        [ServerFrame::Error {
            code: ErrorCode::Usage,
            ..
        }]
    ));
}

#[tokio::test]
async fn rename_is_told_to_every_room_and_frees_the_old_name() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.send("/join #rust").await;
    alice.sync().await;
    bob.send("/join #rust").await;
    bob.sync().await;
    alice.sync().await;

    bob.send("/nick alice").await;
    assert!(matches!(
        &bob.sync().await[..],
        [ServerFrame::Error {
            code: ErrorCode::NickTaken,
            ..
        }]
    ));

    alice.send("/nick Alicia").await;
    let frames = alice.sync().await;
    let mut rooms: Vec<_> = frames
        .iter()
        .map(|f| match f {
            ServerFrame::Rename {
                room: Some(room),
                old,
                new,
                ..
            } => {
                assert_eq!((old.as_str(), new.as_str()), ("alice", "Alicia"));
                room.to_string()
            }
            other => panic!("expected RENAME, got {other:?}"),
        })
        .collect();
    rooms.sort();
    assert_eq!(rooms, ["#general", "#rust"]);
    assert_eq!(bob.sync().await.len(), 2, "bob shares both rooms");

    // The new name is used for messages and lookups; the old one is free.
    alice.send("hi as Alicia").await;
    let (frame, _) = bob
        .until(|f| matches!(f, ServerFrame::Message { .. }))
        .await;
    assert_eq!(msg_text(&frame, "#rust", "Alicia"), Some("hi as Alicia"));
    bob.send("/msg alicia found you").await;
    assert!(
        matches!(&bob.sync().await[..], [ServerFrame::Private { to, .. }] if to.as_str() == "Alicia")
    );
    server.login("alice").await;
}

#[tokio::test]
async fn rename_while_in_no_room_is_still_confirmed() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/part").await;
    alice.sync().await;
    alice.send("/nick al").await;
    assert!(
        matches!(&alice.sync().await[..], [ServerFrame::Rename { room: None, new, .. }] if new.as_str() == "al")
    );
}

#[tokio::test]
async fn renaming_to_the_same_spelling_is_confirmed() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/nick alice").await;
    assert!(matches!(&alice.sync().await[..],
        [ServerFrame::Rename { room: None, old, new, .. }] if old == new && new.as_str() == "alice"));
}

/// Above `--presence-limit` members a room is quiet: joins, parts and quits reach only
/// the one joining or leaving, and a joiner gets no member list; messages flow as ever,
/// `/who` lists everyone, and a room back at the limit announces again.
#[tokio::test]
async fn a_room_above_the_presence_limit_does_not_announce_joins_parts_and_quits() {
    let server = TestServer::with(chat_server::Config {
        presence_limit: 2,
        ..chat_server::Config::unthrottled()
    })
    .await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let frames = alice.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Join { nick, .. }] if nick.as_str() == "bob"),
        "two members: announced, {frames:?}"
    );

    // The third member: quiet. Carol gets her own JOIN and no member list.
    let mut carol = server.connect().await;
    carol.send("carol").await;
    assert!(matches!(carol.recv().await, ServerFrame::Welcome { .. }));
    assert!(
        matches!(carol.recv().await, ServerFrame::Join { nick, .. } if nick.as_str() == "carol")
    );
    assert_eq!(
        carol.recv().await,
        ServerFrame::Current {
            room: Some(room("#general"))
        }
    );
    let frames = alice.sync().await;
    assert!(frames.is_empty(), "no JOIN above the limit: {frames:?}");
    carol.send("hello, quiet room").await;
    let (said, skipped) = alice
        .until(|f| matches!(f, ServerFrame::Message { .. }))
        .await;
    assert_eq!(
        msg_text(&said, "#general", "carol"),
        Some("hello, quiet room")
    );
    assert!(skipped.is_empty(), "{skipped:?}");
    alice.send("/who").await;
    match alice.recv().await {
        ServerFrame::Members { members, .. } => {
            let mut nicks: Vec<_> = members.into_iter().map(|m| m.nick).collect();
            nicks.sort();
            assert_eq!(nicks, vec![nick("alice"), nick("bob"), nick("carol")]);
        }
        other => panic!("expected MEMBERS, got {other:?}"),
    }

    // Leaving a quiet room: the leaver sees its PART, nobody else does.
    carol.send("/part").await;
    let (part, _) = carol.until(|f| matches!(f, ServerFrame::Part { .. })).await;
    assert!(matches!(part, ServerFrame::Part { nick, .. } if nick.as_str() == "carol"));
    carol.send("/join #general").await;
    carol.sync().await;
    carol.send("/quit").await;
    carol.closed().await;
    // Carol's QUIT, if any, is published when her session leaves the hub.
    tokio::time::timeout(WAIT, server.server.wait_until(|s| s.sessions == 2))
        .await
        .expect("carol's session ends");
    let frames = alice.sync().await;
    assert!(
        frames.is_empty(),
        "no PART or QUIT above the limit: {frames:?}"
    );

    // Two members again: announced.
    bob.send("/part").await;
    let (part, _) = alice.until(|f| matches!(f, ServerFrame::Part { .. })).await;
    assert!(matches!(part, ServerFrame::Part { nick, .. } if nick.as_str() == "bob"));
}

/// The error codes among `frames`.
fn errors(frames: &[ServerFrame]) -> Vec<ErrorCode> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .collect()
}

/// One address may have created only so many rooms that still exist; joining rooms
/// that exist is not creating, and a room that empties no longer counts.
#[tokio::test]
async fn rooms_created_per_address_are_limited() {
    let config = Config {
        max_rooms_per_ip: 2,
        limit_loopback: true,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut alice = server.connect_from([127, 0, 0, 2].into()).await;
    alice.login("alice").await;
    let mut bob = server.connect_from([127, 0, 0, 3].into()).await;
    bob.login("bob").await;
    bob.send("/join #bobs").await;
    bob.sync().await;

    alice.send("/join #one").await;
    alice.send("/join #two").await;
    assert_eq!(errors(&alice.sync().await), []);
    alice.send("/join #three").await;
    let frames = alice.sync().await;
    assert_eq!(
        errors(&frames),
        [ErrorCode::TooManyRoomsCreated],
        "{frames:?}"
    );
    assert!(
        !frames.iter().any(|f| matches!(f, ServerFrame::Join { .. })),
        "{frames:?}"
    );
    // Another address's room, and #general, are joined, not created.
    alice.send("/join #bobs").await;
    alice.send("/part #general").await;
    alice.send("/join #general").await;
    assert_eq!(errors(&alice.sync().await), []);
    // A second connection from the same address counts with the first.
    let mut carol = server.connect_from([127, 0, 0, 2].into()).await;
    carol.login("carol").await;
    carol.send("/join #four").await;
    assert_eq!(
        errors(&carol.sync().await),
        [ErrorCode::TooManyRoomsCreated]
    );
    // Once one of its rooms is empty, the address may create another.
    alice.send("/part #one").await;
    alice.sync().await;
    carol.send("/join #four").await;
    assert_eq!(errors(&carol.sync().await), []);
}

/// Past the total, new rooms are refused, while rooms that exist, #general among them,
/// can still be joined.
#[tokio::test]
async fn rooms_in_total_are_limited() {
    let config = Config {
        max_rooms_total: 3,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut alice = server.login("alice").await;
    alice.send("/join #one").await;
    alice.send("/join #two").await;
    assert_eq!(errors(&alice.sync().await), []);
    assert_eq!(server.stats().rooms, 3);
    let mut bob = server.login("bob").await;
    bob.send("/join #three").await;
    let frames = bob.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Error { code: ErrorCode::RoomsFull, text }] if text.contains('3')),
        "{frames:?}"
    );
    bob.send("/join #two").await;
    assert_eq!(errors(&bob.sync().await), []);
    alice.send("/part #one").await;
    alice.sync().await;
    bob.send("/join #three").await;
    assert_eq!(errors(&bob.sync().await), []);
    assert_eq!(server.stats().rooms, 3);
}

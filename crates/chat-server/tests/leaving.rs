//! Departures: by `/quit`, by closing the socket, by a broken connection. Each room the
//! leaver was in is told once, and nothing of the session is left behind.

mod common;

use chat_proto::ServerFrame;
use common::*;
use std::time::Duration;

fn quit_of<'a>(frames: &'a [ServerFrame], who: &str) -> Vec<(&'a str, Option<&'a str>)> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Quit {
                room, nick, reason, ..
            } if nick.as_str() == who => Some((room.as_str(), reason.as_deref())),
            _ => None,
        })
        .collect()
}

/// Waits until `observer` has seen `who` quit from `rooms` rooms, then checks nothing
/// more about them is in flight.
async fn quits_seen_by(observer: &mut Client, who: &str, rooms: usize) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    while quit_of(&frames, who).len() < rooms {
        frames.push(observer.recv().await);
    }
    frames.extend(observer.sync().await);
    frames
}

#[tokio::test]
async fn quit_with_reason_is_told_to_the_room_and_answered_with_bye() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.sync().await;
    alice.send("/quit going home").await;
    assert_eq!(
        alice.closed().await,
        vec![ServerFrame::Bye {
            reason: "going home".into()
        }]
    );
    let frames = quits_seen_by(&mut bob, "alice", 1).await;
    assert_eq!(
        quit_of(&frames, "alice"),
        vec![("#general", Some("going home"))]
    );
}

#[tokio::test]
async fn closing_the_socket_is_a_departure() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    // Read everything first: closing with unread input makes the kernel send a reset.
    alice.sync().await;
    drop(alice);
    let frames = quits_seen_by(&mut bob, "alice", 1).await;
    assert_eq!(
        quit_of(&frames, "alice"),
        vec![("#general", Some("connection closed"))]
    );
}

#[tokio::test]
async fn broken_connection_is_a_departure_told_once_per_room() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    for c in [&mut alice, &mut bob] {
        c.send("/join #rust").await;
        c.send("/join #chat").await;
    }
    alice.sync().await;
    bob.sync().await;

    // A reset instead of a close: what a crashed peer or a dropped route looks like.
    let stream = alice.framed.into_inner();
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);

    let frames = quits_seen_by(&mut bob, "alice", 3).await;
    let mut quits = quit_of(&frames, "alice");
    quits.sort();
    assert_eq!(
        quits.iter().map(|(room, _)| *room).collect::<Vec<_>>(),
        ["#chat", "#general", "#rust"]
    );
    for (_, reason) in quits {
        assert!(
            reason.is_some_and(|r| r.starts_with("connection")),
            "{reason:?}"
        );
    }
}

#[tokio::test]
async fn departures_leave_no_session_or_room_behind() {
    let server = TestServer::start().await;
    let mut watcher = server.login("watcher").await;
    let mut names = Vec::new();
    for i in 0..10 {
        let name = format!("guest{i}");
        let mut c = server.login(&name).await;
        c.send(&format!("/join #room{i}")).await;
        c.sync().await;
        match i % 3 {
            0 => {
                c.send("/quit").await;
                c.closed().await;
            }
            1 => drop(c),
            _ => {
                let stream = c.framed.into_inner();
                socket2::SockRef::from(&stream)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(stream);
            }
        }
        names.push(name);
    }
    for name in &names {
        watcher
            .until(|f| matches!(f, ServerFrame::Quit { nick, .. } if nick.as_str() == name))
            .await;
    }
    let stats = server.stats();
    assert_eq!(
        (stats.sessions, stats.rooms),
        (1, 1),
        "only the watcher and #general remain: {stats:?}"
    );
}

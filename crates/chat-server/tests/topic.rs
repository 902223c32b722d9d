//! `/topic`: set, shown, given to a joiner, cleared and refused, seen from real sockets.

mod common;

use chat_proto::{ErrorCode, ServerFrame, Topic};
use chat_server::Config;
use common::*;

/// The `TOPIC` frame of `frames`, which must be the only frame.
fn only_topic(
    frames: &[ServerFrame],
) -> (String, String, u64, Option<String>, chat_proto::Timestamp) {
    match frames {
        [
            ServerFrame::Topic {
                room,
                nick,
                time,
                id,
                text,
            },
        ] => (room.to_string(), nick.to_string(), *id, text.clone(), *time),
        other => panic!("expected one TOPIC, got {other:?}"),
    }
}

fn error_code(frames: &[ServerFrame]) -> ErrorCode {
    match frames {
        [ServerFrame::Error { code, .. }] => code.clone(),
        other => panic!("expected one ERR, got {other:?}"),
    }
}

/// `alice` and `bob`, both in `#Rust` (created by alice, who lifted `+t` so that any
/// member may set the topic) and in `#general`, with nothing in flight.
async fn two_in_rust(server: &TestServer) -> (Client, Client) {
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.send("/join #Rust").await;
    alice.send("/mode -t").await;
    alice.sync().await;
    bob.send("/join #rust").await;
    bob.sync().await;
    alice.sync().await;
    (alice, bob)
}

#[tokio::test]
async fn a_topic_is_announced_to_every_member_and_given_to_a_joiner() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_in_rust(&server).await;

    // From the current room, with its inner spacing kept.
    bob.send("/topic all  about : crabs").await;
    let (room, setter, id, text, time) = only_topic(&bob.sync().await);
    assert_eq!((room.as_str(), setter.as_str()), ("#Rust", "bob"));
    assert_eq!(text.as_deref(), Some("all  about : crabs"));
    // The same event, the same id, for every member, the setter included.
    assert_eq!(
        only_topic(&alice.sync().await),
        (room, setter, id, text.clone(), time)
    );

    // Shown to a member and to anyone else, by name or as the current room.
    let shown = ServerFrame::TopicIs {
        room: common::room("#Rust"),
        topic: Some(Topic {
            by: nick("bob"),
            time,
            text: "all  about : crabs".into(),
        }),
    };
    alice.send("/topic").await;
    assert_eq!(alice.sync().await, vec![shown.clone()]);
    let mut carol = server.login("carol").await;
    carol.send("/topic #RUST").await;
    assert_eq!(carol.sync().await, vec![shown.clone()]);

    // A joiner gets it right after its JOIN and MEMBERS, before CURRENT.
    carol.send("/join #rust").await;
    let frames = carol.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Join { room: r, nick: n, id: join, .. }, ServerFrame::Members { .. }, topic, ServerFrame::Current { room: Some(_) }]
            if r.as_str() == "#Rust" && n.as_str() == "carol" && *join > id && *topic == shown),
        "{frames:?}"
    );
    alice.sync().await;
    bob.sync().await;

    // A new topic replaces it, and every member, the newcomer included, hears of it.
    carol.send("/topic #rust second").await;
    let (_, setter, second, text, _) = only_topic(&carol.sync().await);
    assert_eq!(
        (setter.as_str(), text.as_deref()),
        ("carol", Some("second"))
    );
    assert!(second > id, "ids rise in the room's order");
    for client in [&mut alice, &mut bob] {
        assert_eq!(only_topic(&client.sync().await).2, second);
    }
}

#[tokio::test]
async fn with_t_only_operators_set_the_topic() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    // A new room is +nt, and its maker its operator.
    alice.send("/join #ops").await;
    alice.sync().await;
    alice.send("/mode").await;
    assert_eq!(
        alice.sync().await,
        vec![ServerFrame::Modes {
            room: common::room("#ops"),
            modes: "+nt".into()
        }]
    );
    bob.send("/join #ops").await;
    bob.sync().await;
    alice.sync().await;
    bob.send("/topic #ops mine now").await;
    assert_eq!(error_code(&bob.sync().await), ErrorCode::ChanopNeeded);
    alice.send("/topic #ops set by an operator").await;
    assert_eq!(only_topic(&alice.sync().await).1, "alice");
    assert_eq!(only_topic(&bob.sync().await).1, "alice");
    // Made an operator, bob may.
    alice.send("/op bob").await;
    alice.sync().await;
    bob.sync().await;
    bob.send("/topic #ops mine now").await;
    assert_eq!(only_topic(&bob.sync().await).3.as_deref(), Some("mine now"));
}

#[tokio::test]
async fn a_topic_is_cleared_with_a_colon() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_in_rust(&server).await;
    alice.send("/topic #rust crabs").await;
    alice.sync().await;
    bob.sync().await;

    bob.send("/topic #rust :").await;
    let (room, setter, id, text, time) = only_topic(&bob.sync().await);
    assert_eq!(
        (room.as_str(), setter.as_str(), text),
        ("#Rust", "bob", None)
    );
    assert_eq!(
        only_topic(&alice.sync().await),
        (room, setter, id, None, time)
    );

    alice.send("/topic").await;
    assert_eq!(
        alice.sync().await,
        vec![ServerFrame::TopicIs {
            room: common::room("#Rust"),
            topic: None
        }]
    );
    // A joiner of a room without a topic is told nothing of it.
    let mut carol = server.login("carol").await;
    carol.send("/join #rust").await;
    let frames = carol.sync().await;
    assert!(
        matches!(
            &frames[..],
            [
                ServerFrame::Join { .. },
                ServerFrame::Members { .. },
                ServerFrame::Current { .. }
            ]
        ),
        "{frames:?}"
    );
}

#[tokio::test]
async fn only_members_set_a_topic_of_a_room_that_exists() {
    let server = TestServer::start().await;
    let (mut alice, _bob) = two_in_rust(&server).await;
    let mut dave = server.login("dave").await;
    alice.sync().await;

    dave.send("/topic #rust mine now").await;
    assert_eq!(error_code(&dave.sync().await), ErrorCode::NotInRoom);
    dave.send("/topic #nowhere mine now").await;
    assert_eq!(error_code(&dave.sync().await), ErrorCode::NoSuchRoom);
    dave.send("/topic #nowhere").await;
    assert_eq!(error_code(&dave.sync().await), ErrorCode::NoSuchRoom);
    dave.send("/topic #rust \u{1b}[2J").await;
    assert_eq!(error_code(&dave.sync().await), ErrorCode::ControlChars);
    dave.send("/topic #no/such").await;
    assert_eq!(error_code(&dave.sync().await), ErrorCode::RoomInvalid);
    dave.send("/part").await;
    dave.sync().await;
    dave.send("/topic anything").await;
    assert_eq!(error_code(&dave.sync().await), ErrorCode::NoCurrentRoom);
    dave.send("/topic").await;
    assert_eq!(error_code(&dave.sync().await), ErrorCode::NoCurrentRoom);

    // Nothing reached the room, and it has no topic (dave's part of #general aside).
    alice.send("/topic #rust").await;
    let frames = alice.sync().await;
    assert_eq!(
        frames
            .into_iter()
            .filter(|f| !matches!(f, ServerFrame::Part { .. }))
            .collect::<Vec<_>>(),
        vec![ServerFrame::TopicIs {
            room: common::room("#Rust"),
            topic: None
        }]
    );
}

#[tokio::test]
async fn a_quiet_room_still_announces_its_topic() {
    let server = TestServer::with(Config {
        presence_limit: 2,
        ..Config::unthrottled()
    })
    .await;
    let (mut alice, mut bob) = two_in_rust(&server).await;
    // A third member makes both rooms quiet (no MEMBERS for carol: not `login`).
    let mut carol = server.connect().await;
    carol.send("carol").await;
    carol.send("/join #rust").await;
    let frames = carol.sync().await;
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Members { .. })),
        "quiet: {frames:?}"
    );
    assert!(
        alice.sync().await.is_empty(),
        "the joins were not announced"
    );
    bob.sync().await;

    alice.send("/topic #rust loud enough").await;
    let (_, _, id, text, _) = only_topic(&alice.sync().await);
    assert_eq!(text.as_deref(), Some("loud enough"));
    assert_eq!(only_topic(&bob.sync().await).2, id);
    assert_eq!(only_topic(&carol.sync().await).2, id);
}

#[tokio::test]
async fn a_topic_is_a_room_event_in_the_room_order_but_not_history() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_in_rust(&server).await;
    alice.send("/join #rust").await;
    alice.send("before").await;
    alice.send("/topic #rust between").await;
    alice.send("after").await;
    let frames = alice.sync().await;
    let ids: Vec<u64> = frames.iter().filter_map(ServerFrame::id).collect();
    assert_eq!(ids.len(), 3, "{frames:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{frames:?}");
    assert!(
        matches!(&frames[2], ServerFrame::Topic { .. }),
        "{frames:?}"
    );
    let seen: Vec<_> = bob
        .sync()
        .await
        .into_iter()
        .filter(|f| f.id().is_some())
        .collect();
    assert_eq!(
        seen,
        frames[1..].to_vec(),
        "the same order for every member"
    );
    // History shows what was said, not the topic change.
    bob.send("/history #rust").await;
    let history = bob.sync().await;
    assert_eq!(history.len(), 3, "{history:?}");
}

#[tokio::test]
async fn a_member_refilled_from_the_store_gets_the_topic_change_in_its_place() {
    // A tiny room buffer, and a member whose socket takes almost nothing until it reads:
    // it falls behind and is refilled from the store.
    let server = TestServer::with(Config {
        room_capacity: 16,
        ..Config::unthrottled()
    })
    .await;
    let mut slow = server.login_small_buffer("slow").await;
    let mut setter = server.login("setter").await;
    let first = server.login("first").await;
    let second = server.login("second").await;
    slow.sync().await;
    const COUNT: usize = 300;
    server.flood_general(first, COUNT, 2000).await;
    setter.send("/topic #general between the floods").await;
    let (frame, _) = setter
        .until(|f| matches!(f, ServerFrame::Topic { .. }))
        .await;
    let topic_id = frame.id().unwrap();
    server.flood_general(second, COUNT, 2000).await;

    let mut messages = 0;
    let mut before_topic = None;
    let mut last_id = 0;
    while messages < 2 * COUNT || before_topic.is_none() {
        let frame = slow.recv().await;
        if let Some(id) = frame.id() {
            assert!(id > last_id, "in the room's order: {frame:?}");
            last_id = id;
        }
        match frame {
            ServerFrame::Message { .. } => messages += 1,
            ServerFrame::Topic { id, text, .. } => {
                assert_eq!(id, topic_id);
                assert_eq!(text.as_deref(), Some("between the floods"));
                before_topic = Some(messages);
            }
            ServerFrame::Lagged { .. } => panic!("the store refills every event"),
            _ => {} // the flooders' QUITs
        }
    }
    assert_eq!(
        before_topic,
        Some(COUNT),
        "after the first flood, before the second"
    );
    let refills = server
        .server
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("chat_refills_total "))
        .and_then(|n| n.parse::<f64>().ok())
        .expect("chat_refills_total");
    assert!(refills >= 1.0, "the member was refilled");
}

//! `/away`, `/whois` and `/whowas`, seen from real sockets.

mod common;

use chat_proto::{ErrorCode, ServerFrame, Whois};
use common::*;

fn whois_of(frames: &[ServerFrame]) -> Whois {
    match frames {
        [ServerFrame::Whois(w)] => (**w).clone(),
        other => panic!("expected one WHOIS, got {other:?}"),
    }
}

#[tokio::test]
async fn away_is_set_cleared_and_answers_private_messages() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.sync().await;
    bob.sync().await;

    bob.send("/away gone  fishing").await;
    assert_eq!(
        bob.sync().await,
        vec![ServerFrame::Away {
            nick: nick("bob"),
            text: Some("gone  fishing".into())
        }]
    );
    // Nothing is told to the rooms.
    assert!(alice.sync().await.is_empty());

    alice.send("/msg BOB are you there?").await;
    let frames = alice.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Private { to, text, .. }, ServerFrame::IsAway { nick: away, text: why }]
            if to.as_str() == "bob" && text == "are you there?" && away.as_str() == "bob" && why == "gone  fishing"),
        "{frames:?}"
    );
    // Delivered as ever.
    let frames = bob.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Private { text, .. }] if text == "are you there?"),
        "{frames:?}"
    );

    bob.send("/away").await;
    assert_eq!(
        bob.sync().await,
        vec![ServerFrame::Away {
            nick: nick("bob"),
            text: None
        }]
    );
    alice.send("/msg bob back?").await;
    let frames = alice.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Private { .. }]),
        "no away reply once back: {frames:?}"
    );
}

#[tokio::test]
async fn whois_tells_connection_account_rooms_idle_and_away() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("Bob").await;
    bob.send("/join #Rust").await;
    bob.send("/away lunch").await;
    bob.sync().await;
    alice.sync().await;

    alice.send("/whois bob").await;
    let w = whois_of(&alice.sync().await);
    assert_eq!(w.nick.as_str(), "Bob", "as spelled");
    assert!(!w.tls, "plain TCP");
    assert!(!w.oper, "not a server operator");
    assert_eq!(w.account, None);
    let mut rooms: Vec<_> = w
        .rooms
        .iter()
        .map(|(s, r)| format!("{}{r}", s.prefix()))
        .collect();
    rooms.sort();
    assert_eq!(
        rooms,
        ["#general", "@#Rust"],
        "Bob made #Rust: its operator"
    );
    assert_eq!(w.away.as_deref(), Some("lunch"));
    // A test takes seconds at most; the clock is the server's.
    assert!(w.idle < 60, "idle {}", w.idle);
    let age = jiff::Timestamp::now().duration_since(w.since);
    assert!(
        age >= jiff::SignedDuration::from_secs(-5) && age < jiff::SignedDuration::from_secs(60),
        "connected {} ago",
        age
    );

    // Oneself, after coming back: no away text.
    bob.send("/away").await;
    bob.send("/whois BOB").await;
    let frames = bob.sync().await;
    assert!(matches!(&frames[0], ServerFrame::Away { text: None, .. }));
    let w = whois_of(&frames[1..]);
    assert_eq!(w.away, None);
}

#[tokio::test]
async fn whois_of_an_identified_user_names_its_account() {
    let server = TestServer::start().await;
    server.register("carol", "correct horse").await;
    let mut carol = server.connect().await;
    carol.send("carol").await;
    assert_eq!(carol.recv().await, ServerFrame::PassPrompt);
    carol.send("correct horse").await;
    carol.sync().await;
    let mut alice = server.login("alice").await;
    alice.sync().await;
    alice.send("/whois Carol").await;
    let w = whois_of(&alice.sync().await);
    assert_eq!(w.account, Some(nick("carol")));
}

#[tokio::test]
async fn whois_and_whowas_of_unknown_nicks_are_refused() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.sync().await;
    alice.send("/whois nobody").await;
    alice.send("/whowas nobody").await;
    let frames = alice.sync().await;
    assert!(
        matches!(
            &frames[..],
            [
                ServerFrame::Error {
                    code: ErrorCode::NoSuchNick,
                    ..
                },
                ServerFrame::Error {
                    code: ErrorCode::NoSuchNick,
                    ..
                },
            ]
        ),
        "{frames:?}"
    );
    alice.send("/whois").await;
    let frames = alice.sync().await;
    assert!(
        matches!(
            &frames[..],
            [ServerFrame::Error {
                code: ErrorCode::Usage,
                ..
            }]
        ),
        "{frames:?}"
    );
}

#[tokio::test]
async fn whowas_lists_recent_departures_newest_first() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.sync().await;
    for spelled in ["Dave", "dave"] {
        let mut dave = server.login(spelled).await;
        dave.sync().await;
        dave.send("/quit bye").await;
        dave.closed().await;
        // The quit reaches #general once the session is gone from the hub.
        alice
            .until(|f| matches!(f, ServerFrame::Quit { nick, .. } if nick.as_str() == spelled))
            .await;
    }
    // Connected again: still in whowas.
    let mut dave = server.login("DAVE").await;
    dave.sync().await;
    alice.send("/whowas DaVe").await;
    let frames: Vec<_> = alice
        .sync()
        .await
        .into_iter()
        .filter(|f| !matches!(f, ServerFrame::Join { .. }))
        .collect();
    match &frames[..] {
        [
            ServerFrame::Whowas {
                nick: newest,
                left: l2,
                account: None,
            },
            ServerFrame::Whowas {
                nick: oldest,
                left: l1,
                account: None,
            },
            ServerFrame::WhowasEnd {
                nick: asked,
                count: 2,
            },
        ] => {
            assert_eq!(newest.as_str(), "dave");
            assert_eq!(oldest.as_str(), "Dave");
            assert!(l2 >= l1);
            assert_eq!(asked.as_str(), "DaVe");
        }
        other => panic!("{other:?}"),
    }
}

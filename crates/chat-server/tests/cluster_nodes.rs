//! Whole chat servers as nodes of one cluster (issue 16): three in-process servers on
//! one real `nats-server`, each with its own clients, behave as one server; two on a
//! three-node NATS cluster lose nothing acknowledged when its stream leader is killed.

mod common;

use chat_proto::ServerFrame;
use chat_server::Config;
use common::nats::{NatsCluster, NatsServer};
use common::{Client, TestServer};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// A node of the cluster at `nats`, named `id`.
async fn node(nats: &NatsServer, id: &str) -> TestServer {
    node_with(nats, id, Config::unthrottled()).await
}

async fn node_with(nats: &NatsServer, id: &str, config: Config) -> TestServer {
    TestServer::with(Config {
        cluster: vec![nats.url()],
        node_id: Some(id.into()),
        ..config
    })
    .await
}

/// Nodes a and b (with these settings), alice logged in on a and bob on b, alice having
/// seen bob arrive.
async fn alice_and_bob(
    nats: &NatsServer,
    config_a: Config,
    config_b: Config,
) -> (TestServer, TestServer, Client, Client) {
    let a = node_with(nats, "a", config_a).await;
    let b = node_with(nats, "b", config_b).await;
    let mut alice = a.login("alice").await;
    let bob = b.login("bob").await;
    alice
        .until(|f| matches!(f, ServerFrame::Join { nick, .. } if nick.as_str() == "bob"))
        .await;
    (a, b, alice, bob)
}

/// Sends `nick` on fresh connections to `node` until it is not taken; the client and
/// the frame that answered. (A nickname is freed just after its quit is applied on the
/// node its session left: a few tries may still find it held.)
async fn once_free(node: &TestServer, nick: &str) -> (Client, ServerFrame) {
    for _ in 0..50 {
        let mut client = node.connect().await;
        client.send(nick).await;
        match client.recv().await {
            ServerFrame::Error {
                code: chat_proto::ErrorCode::NickTaken,
                ..
            } => {}
            answer => return (client, answer),
        }
    }
    panic!("{nick} stays taken");
}

/// A room's messages as one client saw them: (id, nick, text).
fn messages(frames: &[ServerFrame], in_room: &str) -> Vec<(u64, String, String)> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message {
                id,
                room,
                from,
                text,
                ..
            } if room.as_str() == in_room => Some((*id, from.to_string(), text.clone())),
            _ => None,
        })
        .collect()
}

/// Reads `client`'s frames until it has seen `count` messages in `room`; all it read.
async fn read_messages(client: &mut Client, room: &str, count: usize) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    while messages(&frames, room).len() < count {
        frames.push(client.recv().await);
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spanning_three_nodes_sees_one_order_on_every_node() {
    let nats = NatsServer::start();
    let nodes = [
        node(&nats, "a").await,
        node(&nats, "b").await,
        node(&nats, "c").await,
    ];
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut client = node.login(&format!("u{i}")).await;
        client.send("/join #span").await;
        client
            .until(|f| matches!(f, ServerFrame::Current { room: Some(r) } if r.as_str() == "#span"))
            .await;
        clients.push(client);
    }
    // Everyone is in: each sees the others' joins (those after its own) as the log has them.
    let (_, seen) = clients[0]
        .until(|f| matches!(f, ServerFrame::Join { room, nick, .. } if room.as_str() == "#span" && nick.as_str() == "u2"))
        .await;
    assert!(
        seen.iter()
            .any(|f| matches!(f, ServerFrame::Join { room, nick, .. } if room.as_str() == "#span" && nick.as_str() == "u1")),
        "u0 saw u1 join #span on another node: {seen:?}"
    );

    // All three talk at once.
    const EACH: usize = 30;
    for n in 0..EACH {
        for (i, client) in clients.iter_mut().enumerate() {
            client.send(&format!("m{n} from u{i}")).await;
        }
    }
    let mut orders = Vec::new();
    for client in &mut clients {
        let frames = read_messages(client, "#span", 3 * EACH).await;
        orders.push(messages(&frames, "#span"));
    }
    for (i, order) in orders.iter().enumerate() {
        assert_eq!(order.len(), 3 * EACH);
        assert_eq!(order, &orders[0], "node {i} saw the room in another order");
        assert!(
            order.windows(2).all(|w| w[0].0 < w[1].0),
            "ids rise in the room's order"
        );
        // Each sender's messages in the order it sent them.
        for sender in 0..3 {
            let own: Vec<&str> = order
                .iter()
                .filter(|(_, nick, _)| *nick == format!("u{sender}"))
                .map(|(_, _, text)| text.as_str())
                .collect();
            let sent: Vec<String> = (0..EACH).map(|n| format!("m{n} from u{sender}")).collect();
            assert_eq!(own, sent);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_on_another_node_while_the_room_talks_shows_every_message_once() {
    let nats = NatsServer::start();
    let config = || Config {
        history: 5000,
        ..Config::unthrottled()
    };
    let a = node_with(&nats, "a", config()).await;
    let b = node_with(&nats, "b", config()).await;
    let mut flooder = a.login("flooder").await;
    // The flooder's first lines are in the log before bob joins on the other node; the
    // rest follow while he joins. Wherever the seam falls, history then live must be
    // 0..COUNT exactly.
    const BEFORE: usize = 200;
    const COUNT: usize = 600;
    for i in 0..BEFORE {
        flooder.send(&i.to_string()).await;
    }
    let writer = tokio::spawn(async move {
        // Its own echoes pace it: each line waits for the log anyway.
        let mut echoed = 0;
        let mut sent = BEFORE;
        while echoed < COUNT {
            if let ServerFrame::Message { .. } = flooder.recv().await {
                echoed += 1;
                if sent < COUNT {
                    flooder.send(&sent.to_string()).await;
                    sent += 1;
                }
            }
        }
        flooder
    });
    let mut bob = b.connect().await;
    bob.send("bob").await;
    let (mut history, mut live) = (Vec::new(), Vec::new());
    while live.last() != Some(&(COUNT - 1)) {
        match bob.recv().await {
            ServerFrame::History(event) => match *event {
                ServerFrame::Message { text, .. } => history.push(text.parse::<usize>().unwrap()),
                other => panic!("unexpected history {other:?}"),
            },
            ServerFrame::Message { text, .. } => live.push(text.parse::<usize>().unwrap()),
            _ => {}
        }
    }
    let seen: Vec<usize> = history.iter().chain(&live).copied().collect();
    assert_eq!(
        seen,
        (0..COUNT).collect::<Vec<_>>(),
        "history {} then live {}",
        history.len(),
        live.len()
    );
    assert!(!history.is_empty(), "bob joined after the first messages");
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_one_nickname_let_exactly_one_have_it() {
    let nats = NatsServer::start();
    let a = node(&nats, "a").await;
    let b = node(&nats, "b").await;
    for round in 0..40 {
        let nick = format!("zed{round}");
        let (mut x, mut y) = (a.connect().await, b.connect().await);
        tokio::join!(x.send(&nick), y.send(&nick));
        let (fx, fy) = tokio::join!(x.recv(), y.recv());
        let won = |f: &ServerFrame| matches!(f, ServerFrame::Welcome { .. });
        let lost = |f: &ServerFrame| {
            matches!(
                f,
                ServerFrame::Error {
                    code: chat_proto::ErrorCode::NickTaken,
                    ..
                }
            )
        };
        assert!(
            (won(&fx) && lost(&fy)) || (lost(&fx) && won(&fy)),
            "round {round}: exactly one wins: {fx:?} / {fy:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_does_every_node_sees() {
    let nats = NatsServer::start();
    let (a, _b, mut alice, mut bob) =
        alice_and_bob(&nats, Config::unthrottled(), Config::unthrottled()).await;
    alice.send("/join #ops").await;
    alice.sync().await;
    bob.send("/join #ops").await;
    let (_, _) = bob
        .until(|f| matches!(f, ServerFrame::Current { room: Some(r) } if r.as_str() == "#ops"))
        .await;

    // A private message to a user on the other node.
    alice.send("/msg bob psst").await;
    let (got, _) = bob
        .until(|f| matches!(f, ServerFrame::Private { .. }))
        .await;
    let ServerFrame::Private { from, to, text, .. } = got else {
        unreachable!()
    };
    assert_eq!(
        (from.as_str(), to.as_str(), text.as_str()),
        ("alice", "bob", "psst")
    );
    let (echo, _) = alice
        .until(|f| matches!(f, ServerFrame::Private { .. }))
        .await;
    assert!(matches!(echo, ServerFrame::Private { text, .. } if text == "psst"));

    // The maker of #ops is its operator: a topic, then bob kicked, seen on both nodes.
    alice.send("/topic #ops shared plans").await;
    let (topic, _) = bob.until(|f| matches!(f, ServerFrame::Topic { .. })).await;
    assert!(
        matches!(topic, ServerFrame::Topic { nick, text: Some(t), .. } if nick.as_str() == "alice" && t == "shared plans")
    );

    // bob renames on his node; alice sees it in the rooms they share.
    bob.send("/nick robert").await;
    let (renamed, _) = alice
        .until(|f| matches!(f, ServerFrame::Rename { .. }))
        .await;
    assert!(
        matches!(renamed, ServerFrame::Rename { old, new, .. } if old.as_str() == "bob" && new.as_str() == "robert")
    );
    // The old nickname is free again cluster-wide (once its claim is let go), the new
    // one is taken.
    let mut taken = a.connect().await;
    taken.send("robert").await;
    assert!(matches!(
        taken.recv().await,
        ServerFrame::Error {
            code: chat_proto::ErrorCode::NickTaken,
            ..
        }
    ));

    alice.send("/kick #ops robert enough").await;
    let (kick, _) = bob.until(|f| matches!(f, ServerFrame::Kick { .. })).await;
    assert!(
        matches!(kick, ServerFrame::Kick { target, reason, .. } if target.as_str() == "robert" && reason == "enough")
    );
    let (kick, _) = alice.until(|f| matches!(f, ServerFrame::Kick { .. })).await;
    assert!(matches!(kick, ServerFrame::Kick { target, .. } if target.as_str() == "robert"));

    // robert leaves; alice, on the other node, sees the quit in #general.
    drop(bob);
    let (quit, _) = alice.until(|f| matches!(f, ServerFrame::Quit { .. })).await;
    assert!(matches!(quit, ServerFrame::Quit { nick, .. } if nick.as_str() == "robert"));
}

/// A room's message texts in `frames`.
fn texts(frames: &[ServerFrame], in_room: &str) -> Vec<String> {
    messages(frames, in_room)
        .into_iter()
        .map(|(_, _, t)| t)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_mid_traffic_loses_nothing_acknowledged() {
    let mut nats = NatsServer::start();
    let config = || Config {
        cluster_timeout: std::time::Duration::from_secs(3),
        ..Config::unthrottled()
    };
    let (_a, b, mut alice, mut bob) = alice_and_bob(&nats, config(), config()).await;
    for n in 0..10 {
        alice.send(&format!("before {n}")).await;
    }
    let frames = read_messages(&mut alice, "#general", 10).await;
    assert_eq!(texts(&frames, "#general").len(), 10);

    nats.stop();
    // Not taken within the bound: refused, and the connection stays.
    alice.send("during").await;
    let (busy, _) = alice
        .until(|f| matches!(f, ServerFrame::Error { .. }))
        .await;
    assert!(
        matches!(&busy, ServerFrame::Error { code: chat_proto::ErrorCode::ServerBusy, text } if text.contains("cluster")),
        "{busy:?}"
    );
    // A new login is refused with the reason, and may try again.
    let mut carol = b.connect().await;
    carol.send("carol").await;
    let refused = carol.recv().await;
    assert!(
        matches!(
            &refused,
            ServerFrame::Error {
                code: chat_proto::ErrorCode::ServerBusy,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(carol.recv().await, ServerFrame::NickPrompt);

    nats.restart();
    // Service resumes by itself: the first message after the restart may still meet
    // the client reconnecting, so try until one is taken.
    let mut after = 0;
    for attempt in 0..20 {
        alice.send(&format!("after {attempt}")).await;
        let (frame, _) = alice
            .until(|f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Message { .. }))
            .await;
        if let ServerFrame::Message { text, .. } = frame {
            assert_eq!(text, format!("after {attempt}"));
            after = attempt;
            break;
        }
    }
    let seen = read_messages(&mut bob, "#general", 11).await;
    let mut expected: Vec<String> = (0..10).map(|n| format!("before {n}")).collect();
    expected.push(format!("after {after}"));
    assert_eq!(
        texts(&seen, "#general"),
        expected,
        "bob saw every acknowledged message once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_catches_up_before_it_serves() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db").display().to_string();
    let config_b = || Config {
        db: Some(db.clone()),
        ..Config::unthrottled()
    };
    let a = node(&nats, "a").await;
    let mut b = node_with(&nats, "b", config_b()).await;
    let mut alice = a.login("alice").await;
    let mut bob = b.login("bob").await;
    alice.send("while b runs").await;
    read_messages(&mut bob, "#general", 1).await;
    drop(bob);
    b.shutdown().await;
    drop(b);
    for n in 0..5 {
        alice.send(&format!("while b is down {n}")).await;
    }
    read_messages(&mut alice, "#general", 6).await;

    // Restarted on the same store: it has the room's whole history, in order, and bob's
    // nickname is free again.
    let b = node_with(&nats, "b", config_b()).await;
    let mut bob = b.connect().await;
    bob.send("bob").await;
    let (frame, _) = bob
        .until(|f| {
            matches!(
                f,
                ServerFrame::HistoryEnd { .. } | ServerFrame::Error { .. }
            )
        })
        .await;
    assert!(matches!(frame, ServerFrame::HistoryEnd { .. }), "{frame:?}");
    bob.send("/history #general 10").await;
    let (_, page) = bob
        .until(|f| matches!(f, ServerFrame::HistoryEnd { .. }))
        .await;
    let history: Vec<String> = page
        .iter()
        .filter_map(|f| match f {
            ServerFrame::History(event) => match &**event {
                ServerFrame::Message { text, .. } => Some(text.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let mut expected = vec!["while b runs".to_owned()];
    expected.extend((0..5).map(|n| format!("while b is down {n}")));
    assert_eq!(history, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_quit_once_and_their_nicknames_are_freed() {
    let nats = NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db").display().to_string();
    // Node b is a real process, killed with SIGKILL: it says goodbye to no one.
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--flood-rate",
        "0",
        "--db",
        &db,
        "--cluster",
        &url,
        "--node-id",
        "b",
    ];
    let mut b = common::Started::spawn(&args, &[], 1).await;
    let b_addr = b.logged("listening", "addr").as_str().unwrap().to_owned();
    let a = node(&nats, "a").await;
    let c = node(&nats, "c").await;
    let mut alice = a.login("alice").await;
    let mut carol = c.login("carol").await;
    let mut bob = Client::new(tokio::net::TcpStream::connect(&b_addr).await.unwrap());
    assert_eq!(bob.recv().await, ServerFrame::NickPrompt);
    bob.login("bob").await;
    for watcher in [&mut alice, &mut carol] {
        watcher
            .until(|f| matches!(f, ServerFrame::Join { nick, .. } if nick.as_str() == "bob"))
            .await;
    }

    let pid = b.child.id().unwrap();
    let killed = std::time::Instant::now();
    // SIGKILL by PID.
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    b.child.wait().await.unwrap();

    // Within the target (20 s), both survivors see bob quit, once: one of them reaped
    // node b, and its quit is one entry of the log.
    let mut quits = Vec::new();
    for watcher in [&mut alice, &mut carol] {
        // Longer than a client's usual wait for one frame: nothing comes meanwhile.
        let quit = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                let line = watcher.framed.next().await.unwrap().unwrap().unwrap();
                let frame = ServerFrame::parse(&line).unwrap();
                if matches!(frame, ServerFrame::Quit { .. }) {
                    return frame;
                }
            }
        })
        .await
        .expect("bob's quit within 20 s");
        quits.push(quit);
    }
    let told = killed.elapsed();
    for quit in &quits {
        assert!(
            matches!(quit, ServerFrame::Quit { nick, reason: Some(r), .. } if nick.as_str() == "bob" && r.contains("left the cluster")),
            "{quit:?}"
        );
    }
    assert_eq!(
        quits[0], quits[1],
        "the same quit, with the same id, on both nodes"
    );
    // Once, then nothing more of bob.
    for watcher in [&mut alice, &mut carol] {
        let after = watcher.sync().await;
        assert!(
            !after.iter().any(|f| matches!(f, ServerFrame::Quit { .. })),
            "{after:?}"
        );
    }
    assert!(told < std::time::Duration::from_secs(20), "{told:?}");
    // His nickname is free again.
    let (_, answer) = once_free(&a, "bob").await;
    assert!(matches!(answer, ServerFrame::Welcome { .. }), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_taken_for_dead_stops_and_its_users_quit() {
    let nats = NatsServer::start();
    let (_a, _b, mut alice, mut bob) =
        alice_and_bob(&nats, Config::unthrottled(), Config::unthrottled()).await;
    // Another process takes node a's lease, as a node restarted under its id elsewhere
    // (or a survivor's reaper) would: node a learns it at its next refresh and stops.
    let usurper = chat_server::cluster::Cluster::connect(&[nats.url()], "a")
        .await
        .unwrap();
    usurper.take_lease(1).await.unwrap();
    let seen = alice.closed().await;
    assert!(
        seen.iter().any(|f| matches!(f, ServerFrame::Bye { .. })),
        "alice is told, then closed: {seen:?}"
    );
    // Her quit reached the log as node a went.
    let (quit, _) = bob.until(|f| matches!(f, ServerFrame::Quit { .. })).await;
    assert!(matches!(quit, ServerFrame::Quit { nick, .. } if nick.as_str() == "alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_made_on_one_node_asks_for_its_password_on_every_node() {
    let nats = NatsServer::start();
    let a = node(&nats, "a").await;
    let b = node(&nats, "b").await;
    let mut bob = b.login("bob").await;
    // alice registers on node a, and leaves; bob, on node b, sees her go: node b has
    // applied her account, which came before.
    a.register("alice", "correct horse").await;
    bob.until(|f| matches!(f, ServerFrame::Quit { nick, .. } if nick.as_str() == "alice"))
        .await;

    // On node b, the nickname asks for its password: a wrong one is refused, the right
    // one identifies.
    let (mut mallory, answer) = once_free(&b, "alice").await;
    assert_eq!(answer, ServerFrame::PassPrompt);
    mallory.send("battery staple").await;
    assert!(matches!(
        mallory.recv().await,
        ServerFrame::Error {
            code: chat_proto::ErrorCode::PasswordWrong,
            ..
        }
    ));
    assert_eq!(mallory.recv().await, ServerFrame::NickPrompt);
    mallory.send("alice").await;
    assert_eq!(mallory.recv().await, ServerFrame::PassPrompt);
    mallory.send("correct horse").await;
    assert!(matches!(mallory.recv().await, ServerFrame::Welcome { .. }));
    assert!(matches!(
        mallory.recv().await,
        ServerFrame::Account {
            status: chat_proto::AccountStatus::Identified,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_operator_on_one_node_is_one_on_every_node() {
    let nats = NatsServer::start();
    let password = "correct horse battery";
    let config = Config {
        operators: vec![chat_server::config::file::Operator {
            name: "root".into(),
            hash: chat_server::hash_password(password).unwrap(),
        }],
        ..Config::unthrottled()
    };
    let (_a, _b, mut alice, mut bob) = alice_and_bob(&nats, config, Config::unthrottled()).await;
    // #general has no room operator: only server operators may kick there. alice
    // becomes one on node a; node b, applying her kick, must see her as one too.
    alice.send(&format!("/oper root {password}")).await;
    alice.until(|f| matches!(f, ServerFrame::Oper { .. })).await;
    alice.send("/kick #general bob out").await;
    let (kick, _) = bob.until(|f| matches!(f, ServerFrame::Kick { .. })).await;
    assert!(
        matches!(&kick, ServerFrame::Kick { nick, target, .. } if nick.as_str() == "alice" && target.as_str() == "bob"),
        "{kick:?}"
    );
    let (kick, _) = alice.until(|f| matches!(f, ServerFrame::Kick { .. })).await;
    assert!(matches!(kick, ServerFrame::Kick { target, .. } if target.as_str() == "bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_users_on_two_nodes_share_a_room() {
    use common::irc::Irc;
    let nats = NatsServer::start();
    let a = node(&nats, "a").await;
    let b = node(&nats, "b").await;
    let caps = "batch echo-message labeled-response message-tags";
    let mut carol = Irc::login_with(&a, "carol", caps).await;
    let mut dave = Irc::login(&b, "dave").await;
    let joined = carol.join("#irc").await;
    assert!(
        joined[0].contains(" :carol!~carol@127.0.0.1 JOIN #irc"),
        "{joined:?}"
    );
    let joined = dave.join("#irc").await;
    assert!(
        joined
            .iter()
            .any(|l| l.contains(" 353 dave ") && l.contains("@carol") && l.contains("dave")),
        "dave's names list shows carol, on the other node, as the room's operator: {joined:?}"
    );
    carol
        .until(|l| l.contains(" :dave!~dave@127.0.0.1 JOIN #irc"))
        .await;

    // A labeled message: its echo is the answer, whatever the node.
    carol.send("@label=m1 PRIVMSG #irc :hi dave").await;
    let echo = carol.line().await;
    assert!(echo.starts_with("@label=m1;"), "{echo}");
    assert!(
        echo.ends_with(" :carol!~carol@127.0.0.1 PRIVMSG #irc :hi dave"),
        "{echo}"
    );
    // And nothing more for that label (no ACK after it).
    carol.send("@label=p1 PING tok").await;
    assert_eq!(
        carol.line().await,
        "@label=p1 :chat.localhost PONG chat.localhost :tok"
    );
    let heard = dave.until(|l| l.contains("PRIVMSG #irc")).await;
    assert!(
        heard
            .last()
            .unwrap()
            .ends_with(":carol!~carol@127.0.0.1 PRIVMSG #irc :hi dave"),
        "{heard:?}"
    );
    dave.send("PRIVMSG carol :psst").await;
    carol
        .until(|l| l.ends_with(":dave!~dave@127.0.0.1 PRIVMSG carol :psst"))
        .await;
}

/// The next frame `client` gets within `within`: longer than a [`Client::recv`] waits,
/// for an operation that waits out a failover (up to the cluster's timeout, then the
/// clock slack) before it is answered.
async fn recv_within(client: &mut Client, within: Duration, waiting_for: &str) -> ServerFrame {
    let line = tokio::time::timeout(within, client.framed.next())
        .await
        .unwrap_or_else(|_| panic!("nothing within {within:?} while waiting for {waiting_for}"))
        .expect("connection open")
        .expect("the connection reads")
        .expect("server lines are valid");
    ServerFrame::parse(&line).unwrap_or_else(|e| panic!("bad frame {line:?}: {e}"))
}

/// Two chat servers on a three-node NATS cluster (R3) while the stream's leader is
/// SIGKILLed: every message of alice's is answered within the cluster's timeout, echoed
/// (taken) or `ERR SERVER_BUSY` (refused, only during the failover); bob, on the other
/// server, sees exactly the taken ones, once each, in her order, with her ids, and no
/// refused one, then or later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_nats_losing_its_stream_leader_loses_nothing_acknowledged_between_servers() {
    // The cluster's timeout outlasts a JetStream leader's failover (about 4 s): most
    // operations meanwhile wait it out; one refused is told so only once it is past.
    const TIMEOUT: Duration = Duration::from_secs(10);
    // The longest one operation may take to be answered: its timeout, the clock slack
    // (1 s) and some room.
    const ANSWER: Duration = Duration::from_secs(25);
    const BEFORE: usize = 10;
    const AFTER: usize = 10;
    // A bound on the messages tried after the kill.
    const TRIES: usize = 40;
    let mut nats = NatsCluster::start(3).await;
    let node = |id: &str| Config {
        cluster: nats.urls(),
        node_id: Some(id.into()),
        cluster_replicas: 3,
        cluster_timeout: TIMEOUT,
        ..Config::unthrottled()
    };
    let a = TestServer::with(node("a")).await;
    let b = TestServer::with(node("b")).await;
    let mut alice = a.login("alice").await;
    let mut bob = b.login("bob").await;
    alice
        .until(|f| matches!(f, ServerFrame::Join { nick, .. } if nick.as_str() == "bob"))
        .await;
    let mut sent: Vec<String> = (0..BEFORE).map(|n| format!("before {n}")).collect();
    for text in &sent {
        alice.send(text).await;
    }
    let frames = read_messages(&mut alice, "#general", BEFORE).await;
    let mut echoed = messages(&frames, "#general");
    assert_eq!(texts(&frames, "#general"), sent);

    // SIGKILL the stream's leader, as a probe of the cluster tells it.
    let probe = chat_server::cluster::Cluster::connect_with(
        &nats.urls(),
        "probe",
        &chat_server::cluster::Options {
            replicas: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (leader, index) = common::stream_leader(&probe).await;
    nats.kill(index);
    let killed = Instant::now();

    // alice goes on talking, one message at a time: each is either taken (echoed) or
    // refused (`ERR SERVER_BUSY`), the latter only while the failover lasts, before the
    // cluster takes messages again.
    let (mut accepted, mut refused) = (0, Vec::new());
    let mut first_accepted = None;
    let mut other = Vec::new();
    for attempt in 0..TRIES {
        if accepted == AFTER {
            break;
        }
        let text = format!("after {attempt}");
        alice.send(&text).await;
        loop {
            let waiting_for = format!(
                "alice's {text:?}, sent {:?} after the kill, to be echoed or refused",
                killed.elapsed()
            );
            match recv_within(&mut alice, ANSWER, &waiting_for).await {
                ServerFrame::Message {
                    id,
                    room,
                    from,
                    text: echo,
                    ..
                } if room.as_str() == "#general" => {
                    assert_eq!(
                        (from.as_str(), echo.as_str()),
                        ("alice", text.as_str()),
                        "alice's echo is of the message she sent last (refused: {refused:?})"
                    );
                    echoed.push((id, from.to_string(), echo));
                    sent.push(text);
                    accepted += 1;
                    first_accepted.get_or_insert(killed.elapsed());
                    break;
                }
                ServerFrame::Error {
                    code: chat_proto::ErrorCode::ServerBusy,
                    ..
                } => {
                    assert!(
                        first_accepted.is_none(),
                        "{text:?} refused after the cluster took messages again, {:?} after the kill",
                        killed.elapsed()
                    );
                    refused.push(text);
                    break;
                }
                frame => {
                    assert!(
                        !matches!(frame, ServerFrame::Error { .. } | ServerFrame::Quit { .. }),
                        "{frame:?}"
                    );
                    other.push(frame);
                }
            }
        }
    }
    assert_eq!(
        accepted, AFTER,
        "{AFTER} messages taken after the kill within {TRIES} tries (refused: {refused:?})"
    );
    eprintln!(
        "stream leader {leader} killed: first message taken {:?} after, {} refused meanwhile, {AFTER} taken by {:?}",
        first_accepted.unwrap(),
        refused.len(),
        killed.elapsed()
    );

    // bob, on the other node, saw exactly what alice was told was taken: each message
    // once, in her order, with the ids she saw; nothing refused, then or later.
    let mut seen = Vec::new();
    while messages(&seen, "#general").len() < sent.len() {
        let waiting_for = format!(
            "bob to see alice's messages ({} of {})",
            messages(&seen, "#general").len(),
            sent.len()
        );
        seen.push(recv_within(&mut bob, ANSWER, &waiting_for).await);
    }
    seen.extend(bob.sync().await);
    assert_eq!(
        messages(&seen, "#general"),
        echoed,
        "bob saw every acknowledged message once, in order (refused: {refused:?})"
    );
    assert!(
        !seen
            .iter()
            .any(|f| matches!(f, ServerFrame::Quit { .. } | ServerFrame::Error { .. })),
        "{seen:?}"
    );
    // Nor did alice get anything more: no refused message taken late.
    let late = alice.sync().await;
    assert!(messages(&late, "#general").is_empty(), "{late:?}");
    assert!(
        !other
            .iter()
            .any(|f| matches!(f, ServerFrame::Message { .. })),
        "{other:?}"
    );
    let (new_leader, _) = common::stream_leader(&probe).await;
    assert_ne!(new_leader, leader, "another NATS node leads the stream");
}

/// A node connected to one NATS node only, whose log reader's consumer lives on another
/// that dies: its connection never breaks, so only the applier's watch over a silent
/// reader (while the stream goes on) opens it again. Before that watch the node applied
/// nothing more for a minute or more, and its user's message, stored, was never echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_log_reader_was_on_a_dead_nats_node_reads_on() {
    // The reader's host is NATS's choice: a cluster where it is the node's own server
    // proves nothing, and another is started (each time with odds of one in three).
    for _ in 0..8 {
        let mut nats = NatsCluster::start(3).await;
        let urls = nats.urls();
        let a = TestServer::with(Config {
            cluster: vec![urls[0].clone()],
            node_id: Some("a".into()),
            cluster_replicas: 3,
            ..Config::unthrottled()
        })
        .await;
        let mut alice = a.login("alice").await;
        let client = async_nats::connect(urls[1].as_str()).await.unwrap();
        let stream = async_nats::jetstream::new(client)
            .get_stream("CHAT")
            .await
            .unwrap();
        let hosts: Vec<String> = stream
            .consumers()
            .filter_map(|info| async move { info.ok()?.cluster?.leader })
            .collect()
            .await;
        assert_eq!(
            hosts.len(),
            1,
            "node a's reader is the stream's one consumer"
        );
        let host = common::nats_index(&hosts[0]);
        if host == 0 {
            continue;
        }
        nats.kill(host);
        alice.send("still here").await;
        loop {
            let frame = recv_within(&mut alice, Duration::from_secs(20), "the echo").await;
            match frame {
                ServerFrame::Message { text, .. } => {
                    assert_eq!(text, "still here");
                    return;
                }
                ServerFrame::Error { .. } => alice.send("still here").await,
                _ => {}
            }
        }
    }
    panic!("the reader was on the node's own NATS server every time");
}

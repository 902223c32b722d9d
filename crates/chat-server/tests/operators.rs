//! Server operators (`/oper`, `/kill`, `/wallops`) and the message of the day, seen from
//! real sockets.

mod common;

use chat_proto::{ErrorCode, ServerFrame};
use chat_server::Config;
use chat_server::config::file::Operator;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const PASSWORD: &str = "correct horse battery";

/// One hash for every test (argon2 is slow in a debug build).
fn hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| chat_server::hash_password(PASSWORD).unwrap())
}

fn config(motd: Option<&str>) -> Config {
    Config {
        operators: vec![Operator {
            name: "root".into(),
            hash: hash().into(),
        }],
        motd: motd.map(str::to_owned),
        ..Config::unthrottled()
    }
}

/// `/oper root <PASSWORD>`, answered.
async fn oper(client: &mut Client) {
    client.send(&format!("/oper root {PASSWORD}")).await;
    assert_eq!(
        client.sync().await,
        vec![ServerFrame::Oper {
            name: "root".into()
        }]
    );
}

fn error_code(frames: &[ServerFrame]) -> Option<&ErrorCode> {
    frames.iter().find_map(|f| match f {
        ServerFrame::Error { code, .. } => Some(code),
        _ => None,
    })
}

#[test]
fn hash_password_prints_a_hash_that_verifies() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let phc = printed.trim_end();
    assert!(phc.starts_with("$argon2id$"), "{phc:?}");
    // The server takes it as an operator's hash.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = TestServer::with(Config {
            operators: vec![Operator {
                name: "root".into(),
                hash: phc.into(),
            }],
            ..Config::unthrottled()
        })
        .await;
        let mut alice = server.login("alice").await;
        alice.sync().await;
        oper(&mut alice).await;
    });
}

#[tokio::test]
async fn oper_with_a_wrong_password_or_name_is_refused() {
    let server = TestServer::with(config(None)).await;
    let mut alice = server.login("alice").await;
    alice.sync().await;
    alice.send("/oper root wrong password").await;
    assert_eq!(
        error_code(&alice.sync().await),
        Some(&ErrorCode::PasswordWrong)
    );
    alice.send(&format!("/oper nobody {PASSWORD}")).await;
    assert_eq!(
        error_code(&alice.sync().await),
        Some(&ErrorCode::PasswordWrong)
    );
    // Still no operator.
    alice.send("/kill alice").await;
    assert_eq!(
        error_code(&alice.sync().await),
        Some(&ErrorCode::NotOperator)
    );
}

#[tokio::test]
async fn kill_ends_the_target_and_its_rooms_see_the_quit() {
    let server = TestServer::with(config(None)).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.sync().await;
    bob.sync().await;
    carol.sync().await;

    // Not an operator: refused.
    carol.send("/kill bob").await;
    assert_eq!(
        error_code(&carol.sync().await),
        Some(&ErrorCode::NotOperator)
    );
    carol.send("/wallops hello").await;
    assert_eq!(
        error_code(&carol.sync().await),
        Some(&ErrorCode::NotOperator)
    );

    oper(&mut alice).await;
    alice.send("/kill BOB spamming links").await;
    let reason = "killed by alice: spamming links";
    let (killed, _) = alice
        .until(|f| matches!(f, ServerFrame::Killed { .. }))
        .await;
    assert_eq!(
        killed,
        ServerFrame::Killed {
            nick: nick("bob"),
            reason: reason.into()
        }
    );
    let last = bob.closed().await;
    assert_eq!(
        last.last(),
        Some(&ServerFrame::Bye {
            reason: reason.into()
        }),
        "{last:?}"
    );
    let (quit, _) = carol.until(|f| matches!(f, ServerFrame::Quit { .. })).await;
    assert!(
        matches!(&quit, ServerFrame::Quit { nick: who, reason: Some(why), .. } if who.as_str() == "bob" && why == reason),
        "{quit:?}"
    );
    alice.send("/kill bob").await;
    assert_eq!(
        error_code(&alice.sync().await),
        Some(&ErrorCode::NoSuchNick)
    );
}

#[tokio::test]
async fn wallops_reach_operators_and_users_who_asked() {
    let server = TestServer::with(config(None)).await;
    let mut alice = server.login("alice").await;
    let mut dave = server.login("dave").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    for c in [&mut alice, &mut dave, &mut bob, &mut carol] {
        c.sync().await;
    }
    oper(&mut alice).await;
    oper(&mut dave).await;
    bob.send("/wallops on").await;
    assert_eq!(
        bob.sync().await,
        vec![ServerFrame::WallopsMode { on: true }]
    );
    carol.send("/wallops on").await;
    carol.sync().await;
    carol.send("/wallops OFF").await;
    assert_eq!(
        carol.sync().await,
        vec![ServerFrame::WallopsMode { on: false }]
    );

    alice.send("/wallops restart at noon").await;
    let got = |frames: Vec<ServerFrame>| {
        frames
            .into_iter()
            .filter_map(|f| match f {
                ServerFrame::Wallops { from, text, .. } => Some(format!("{from}: {text}")),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let want = vec!["alice: restart at noon".to_owned()];
    assert_eq!(got(alice.sync().await), want, "the sender, an operator");
    // Delivered through the mailboxes before the sender's PONG was even asked for;
    // each sync shows what was queued for that session.
    assert_eq!(got(dave.sync().await), want, "another operator");
    assert_eq!(got(bob.sync().await), want, "a user who asked");
    assert!(got(carol.sync().await).is_empty(), "a user who stopped");
}

#[tokio::test]
async fn the_motd_follows_welcome_and_motd_shows_it_again() {
    let server = TestServer::with(config(Some("Be nice.\n\nNo\tspam."))).await;
    let mut client = server.connect().await;
    client.send("alice").await;
    assert!(matches!(client.recv().await, ServerFrame::Welcome { .. }));
    let motd = vec![
        ServerFrame::Motd {
            text: "Be nice.".into(),
        },
        ServerFrame::Motd { text: "".into() },
        ServerFrame::Motd {
            text: "No spam.".into(),
        },
    ];
    for frame in &motd {
        assert_eq!(&client.recv().await, frame);
    }
    assert!(matches!(client.recv().await, ServerFrame::Join { .. }));
    client.sync().await;
    client.send("/motd").await;
    assert_eq!(client.sync().await, motd);

    // No MOTD: nothing after WELCOME (login checks the sequence), and /motd says so.
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    bob.sync().await;
    bob.send("/motd").await;
    assert_eq!(error_code(&bob.sync().await), Some(&ErrorCode::NoMotd));
}

/// A raw connection from the loopback address `source`, before any frame is read.
async fn raw_from(server: &TestServer, source: std::net::Ipv4Addr) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    Client::new(socket.connect(server.addr).await.unwrap())
}

fn is_banned(frames: &[ServerFrame]) -> bool {
    matches!(
        frames,
        [ServerFrame::Error { code: ErrorCode::Banned, .. }, ServerFrame::Bye { reason }] if reason == "banned"
    )
}

#[tokio::test]
async fn a_mask_ban_refuses_the_nickname_and_a_rename() {
    let server = TestServer::with(config(None)).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.sync().await;
    bob.sync().await;
    bob.send("/sban eve").await;
    assert_eq!(error_code(&bob.sync().await), Some(&ErrorCode::NotOperator));
    oper(&mut alice).await;
    alice.send("/sban EVE spamming").await;
    let frames = alice.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Sban { target, until: None, by, reason: Some(r) }]
            if target == "eve!*@*" && by.as_str() == "alice" && r == "spamming"),
        "{frames:?}"
    );

    let mut eve = server.connect().await;
    eve.send("Eve").await;
    let frames = eve.closed().await;
    assert!(is_banned(&frames), "{frames:?}");
    match &frames[0] {
        ServerFrame::Error { text, .. } => {
            assert_eq!(text, "you are banned from this server: spamming");
        }
        other => panic!("{other:?}"),
    }

    bob.send("/nick eve").await;
    assert_eq!(error_code(&bob.sync().await), Some(&ErrorCode::Banned));

    // Lifted: eve may come.
    alice.send("/unsban eve").await;
    assert_eq!(
        alice.sync().await,
        vec![ServerFrame::Unsban {
            target: "eve!*@*".into()
        }]
    );
    alice.send("/unsban eve").await;
    assert_eq!(error_code(&alice.sync().await), Some(&ErrorCode::NoSuchBan));
    server.login("eve").await;
}

#[tokio::test]
async fn an_address_ban_refuses_connections_at_accept_until_lifted_or_expired() {
    let server = TestServer::with(config(None)).await;
    let mut alice = server.login("alice").await;
    alice.sync().await;
    oper(&mut alice).await;
    // 127.0.0.2 and 127.0.0.3; 127.0.0.1, the test's own, stays free.
    alice.send("/sban 127.0.0.3/31 1h flood").await;
    let frames = alice.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Sban { target, until: Some(_), .. }] if target == "127.0.0.2/31"),
        "{frames:?}"
    );
    // Already expired: a duration of 0s.
    alice.send("/sban 127.0.0.4 0s").await;
    alice.sync().await;
    alice.send("/sban not/an address").await;
    assert_eq!(error_code(&alice.sync().await), Some(&ErrorCode::Usage));

    for source in [[127, 0, 0, 2], [127, 0, 0, 3]] {
        let mut refused = raw_from(&server, source.into()).await;
        let frames = refused.closed().await;
        assert!(is_banned(&frames), "{frames:?}");
        assert!(
            matches!(&frames[0], ServerFrame::Error { text, .. } if text.starts_with("you are banned from this server: flood (until ")),
            "{frames:?}"
        );
    }
    // The expired ban does not apply, and is no longer listed.
    let mut free = server.connect_from([127, 0, 0, 4].into()).await;
    free.login("dave").await;
    alice.send("/sbans").await;
    let frames: Vec<_> = alice
        .sync()
        .await
        .into_iter()
        .filter(|f| !matches!(f, ServerFrame::Join { .. }))
        .collect();
    assert!(
        matches!(&frames[..], [ServerFrame::Sban { target, .. }, ServerFrame::SbanEnd { count: 1 }] if target == "127.0.0.2/31"),
        "{frames:?}"
    );
    assert!(server.server.metrics_text().contains("banned"));

    alice.send("/unsban 127.0.0.2/31").await;
    alice.sync().await;
    let mut back = server.connect_from([127, 0, 0, 2].into()).await;
    back.login("carol").await;
}

#[tokio::test]
async fn server_bans_survive_a_restart_and_stay_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_owned();
    let persistent = || Config {
        db: Some(db.clone()),
        ..config(None)
    };
    let mut first = TestServer::with(persistent()).await;
    let mut alice = first.login("alice").await;
    oper(&mut alice).await;
    alice.send("/sban eve spamming").await;
    alice.send("/sban mallory").await;
    alice.send("/sban 127.0.0.9 1h").await;
    alice.send("/unsban mallory").await;
    let frames = alice.sync().await;
    assert_eq!(error_code(&frames), None, "{frames:?}");
    drop(alice);
    first.shutdown().await;

    let second = TestServer::with(persistent()).await;
    let mut eve = second.connect().await;
    eve.send("eve").await;
    let frames = eve.closed().await;
    assert!(is_banned(&frames), "{frames:?}");
    let mut refused = raw_from(&second, [127, 0, 0, 9].into()).await;
    assert!(is_banned(&refused.closed().await));
    // The lifted one stays lifted.
    second.login("mallory").await;
    let mut alice = second.login("alice").await;
    oper(&mut alice).await;
    alice.send("/sbans").await;
    let targets: Vec<_> = alice
        .sync()
        .await
        .into_iter()
        .filter_map(|f| match f {
            ServerFrame::Sban { target, .. } => Some(target),
            _ => None,
        })
        .collect();
    assert_eq!(targets, ["eve!*@*", "127.0.0.9"]);
}

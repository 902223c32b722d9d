//! Room governance from real sockets: operators and voice, `/mode` with `t n m s i k l
//! b`, `/kick`, `/ban`, `/unban`, `/invite`, registered rooms across a restart, and
//! server operators acting in every room.

mod common;

use chat_proto::{ErrorCode, RoomMember, ServerFrame, Status};
use chat_server::Config;
use chat_server::config::file::Operator;
use common::*;
use std::sync::OnceLock;

/// The code of the one `ERR` in `frames`.
fn error_code(frames: &[ServerFrame]) -> ErrorCode {
    match frames {
        [ServerFrame::Error { code, .. }] => code.clone(),
        other => panic!("expected one ERR, got {other:?}"),
    }
}

/// Who changed what, of the one `MODE` in `frames`.
fn only_mode(frames: &[ServerFrame]) -> (String, String) {
    match frames {
        [ServerFrame::Mode { nick, changes, .. }] => (nick.to_string(), changes.clone()),
        other => panic!("expected one MODE, got {other:?}"),
    }
}

/// The members (with `@`/`+`) of `frames`' `MEMBERS` frames, sorted.
fn members(frames: &[ServerFrame]) -> Vec<String> {
    let mut list: Vec<String> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Members { members, .. } => Some(members.iter().map(RoomMember::to_string)),
            _ => None,
        })
        .flatten()
        .collect();
    list.sort();
    list
}

/// `alice` makes `room` (so she is its operator); `others` join it after her. Nothing is
/// left in flight.
async fn room_of_alice(server: &TestServer, room: &str, others: &[&str]) -> Vec<Client> {
    let mut alice = server.login("alice").await;
    alice.send(&format!("/join {room}")).await;
    replies(&mut alice).await;
    let mut clients = vec![alice];
    for nick in others {
        let mut client = server.login(nick).await;
        client.send(&format!("/join {room}")).await;
        replies(&mut client).await;
        clients.push(client);
    }
    for client in &mut clients {
        replies(client).await;
    }
    clients
}

/// What `client` was sent, up to now, but for others' comings and goings in `#general`
/// (every login is one).
async fn replies(client: &mut Client) -> Vec<ServerFrame> {
    client
        .sync()
        .await
        .into_iter()
        .filter(|f| {
            !matches!(f, ServerFrame::Join { room, .. } | ServerFrame::Quit { room, .. } | ServerFrame::Part { room, .. }
                if *room == chat_proto::Room::general())
        })
        .collect()
}

async fn sync_all(clients: &mut [Client]) {
    for client in clients {
        replies(client).await;
    }
}

#[tokio::test]
async fn the_maker_of_a_room_is_its_operator_and_gives_operator_status_and_voice() {
    let server = TestServer::start().await;
    let mut c = room_of_alice(&server, "#ops", &["bob", "carol"]).await;

    c[2].send("/who #ops").await;
    assert_eq!(
        members(&replies(&mut c[2]).await),
        ["@alice", "bob", "carol"]
    );

    // A non-operator changes nothing.
    for line in [
        "/op bob",
        "/voice carol",
        "/mode +m",
        "/kick alice",
        "/ban alice",
        "/unban alice",
        "/mode -t",
    ] {
        c[1].send(line).await;
        assert_eq!(
            error_code(&replies(&mut c[1]).await),
            ErrorCode::ChanopNeeded,
            "{line}"
        );
    }
    // But anyone may look.
    c[1].send("/mode").await;
    assert!(
        matches!(&replies(&mut c[1]).await[..], [ServerFrame::Modes { modes, .. }] if modes == "+nt")
    );

    // Each change is one MODE to the room, saying who made it.
    c[0].send("/op bob").await;
    c[0].send("/voice carol").await;
    for client in &mut c {
        let frames = replies(client).await;
        let changes: Vec<_> = frames
            .iter()
            .map(|f| match f {
                ServerFrame::Mode { nick, changes, .. } => format!("{nick} {changes}"),
                other => panic!("expected MODE, got {other:?}"),
            })
            .collect();
        assert_eq!(changes, ["alice +o bob", "alice +v carol"]);
    }
    c[2].send("/who").await;
    assert_eq!(
        members(&replies(&mut c[2]).await),
        ["+carol", "@alice", "@bob"]
    );
    // A joiner's list shows them too.
    let mut dave = server.login("dave").await;
    dave.send("/join #ops").await;
    assert_eq!(
        members(&replies(&mut dave).await),
        ["+carol", "@alice", "@bob", "dave"]
    );
    sync_all(&mut c).await;

    // Several changes at once, and one that changes nothing answers with the modes.
    c[1].send("/mode #ops -o+v alice alice").await;
    for client in &mut c {
        assert_eq!(
            only_mode(&replies(client).await),
            ("bob".into(), "-o+v alice alice".into())
        );
    }
    c[1].send("/voice alice").await;
    assert!(matches!(
        &replies(&mut c[1]).await[..],
        [ServerFrame::Modes { .. }]
    ));
    // Someone not in the room cannot be given anything.
    c[1].send("/op zed").await;
    assert_eq!(
        error_code(&replies(&mut c[1]).await),
        ErrorCode::UserNotInRoom
    );
    c[1].send("/mode +q").await;
    assert_eq!(
        error_code(&replies(&mut c[1]).await),
        ErrorCode::UnknownMode
    );
    // Status follows a rename.
    c[2].send("/nick caroline").await;
    sync_all(&mut c).await;
    c[1].send("/who").await;
    assert_eq!(
        members(&replies(&mut c[1]).await),
        ["+alice", "+caroline", "@bob", "dave"]
    );
}

#[tokio::test]
async fn a_moderated_room_silences_the_unvoiced() {
    let server = TestServer::start().await;
    let mut c = room_of_alice(&server, "#quiet", &["bob", "carol"]).await;
    c[0].send("/mode +m").await;
    c[0].send("/voice bob").await;
    sync_all(&mut c).await;

    c[2].send("hello?").await;
    assert_eq!(error_code(&replies(&mut c[2]).await), ErrorCode::Moderated);
    c[2].send("/me waves").await;
    assert_eq!(error_code(&replies(&mut c[2]).await), ErrorCode::Moderated);
    // Nobody heard carol; everybody hears the voiced and the operator.
    c[1].send("voiced").await;
    c[0].send("operator").await;
    for client in &mut c {
        let said: Vec<_> = client
            .sync()
            .await
            .iter()
            .filter_map(|f| msg_text(f, "#quiet", "bob").or(msg_text(f, "#quiet", "alice")))
            .map(str::to_owned)
            .collect();
        assert_eq!(said, ["voiced", "operator"]);
    }
    // Other rooms are not affected, and -m lets everyone speak again.
    c[2].send("/join #loud").await;
    c[2].send("free here").await;
    assert!(
        replies(&mut c[2])
            .await
            .iter()
            .any(|f| msg_text(f, "#loud", "carol").is_some())
    );
    c[0].send("/mode #quiet -m").await;
    sync_all(&mut c).await;
    c[2].send("/join #quiet").await;
    replies(&mut c[2]).await;
    c[2].send("at last").await;
    assert_eq!(
        replies(&mut c[2])
            .await
            .iter()
            .filter_map(|f| msg_text(f, "#quiet", "carol"))
            .collect::<Vec<_>>(),
        ["at last"]
    );
}

#[tokio::test]
async fn an_invite_only_room_takes_the_invited_once() {
    let server = TestServer::start().await;
    let mut c = room_of_alice(&server, "#club", &["bob"]).await;
    let mut carol = server.login("carol").await;
    c[0].send("/mode +i").await;
    sync_all(&mut c).await;

    carol.send("/join #club").await;
    assert_eq!(
        error_code(&replies(&mut carol).await),
        ErrorCode::InviteOnly
    );
    // In an invite-only room only operators invite.
    c[1].send("/invite carol").await;
    assert_eq!(
        error_code(&replies(&mut c[1]).await),
        ErrorCode::ChanopNeeded
    );
    c[0].send("/invite carol #club").await;
    // The room and the one invited see it.
    let (alice, bob) = c.split_at_mut(1);
    for client in [&mut alice[0], &mut bob[0], &mut carol] {
        assert!(
            matches!(&replies(client).await[..], [ServerFrame::Invite { room, nick, target, .. }]
                if room.as_str() == "#club" && nick.as_str() == "alice" && target.as_str() == "carol"),
        );
    }
    c[0].send("/invite bob").await;
    assert_eq!(
        error_code(&replies(&mut c[0]).await),
        ErrorCode::AlreadyInRoom
    );
    c[0].send("/invite nobody").await;
    assert_eq!(error_code(&replies(&mut c[0]).await), ErrorCode::NoSuchNick);

    carol.send("/join #club").await;
    assert!(matches!(
        replies(&mut carol).await.first(),
        Some(ServerFrame::Join { .. })
    ));
    sync_all(&mut c).await;
    // Used up: after leaving, carol needs a new invitation.
    carol.send("/part #club").await;
    replies(&mut carol).await;
    carol.send("/join #club").await;
    assert_eq!(
        error_code(&replies(&mut carol).await),
        ErrorCode::InviteOnly
    );
    // An invitation is the session's: whoever takes the nickname next does not inherit
    // it. And what is said in the room is for its members.
    c[0].send("/invite carol").await;
    c[0].send("members only").await;
    sync_all(&mut c).await;
    replies(&mut carol).await;
    carol.send("/history #club").await;
    assert_eq!(error_code(&replies(&mut carol).await), ErrorCode::NotInRoom);
    carol.send("/quit").await;
    carol.closed().await;
    let mut carol = server.login("carol").await;
    carol.send("/join #club").await;
    assert_eq!(
        error_code(&replies(&mut carol).await),
        ErrorCode::InviteOnly
    );
}

#[tokio::test]
async fn a_key_and_a_limit_guard_the_door() {
    let server = TestServer::start().await;
    let mut c = room_of_alice(&server, "#vault", &["bob"]).await;
    c[0].send("/mode +kl sesame 3").await;
    for client in &mut c {
        assert_eq!(only_mode(&replies(client).await).1, "+kl sesame 3");
    }
    let mut carol = server.login("carol").await;
    // Members see the key; others do not.
    c[1].send("/mode").await;
    let frames = replies(&mut c[1]).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Modes { modes, .. }] if modes == "+ntkl sesame 3"),
        "{frames:?}"
    );
    carol.send("/mode #vault").await;
    assert!(
        matches!(&replies(&mut carol).await[..], [ServerFrame::Modes { modes, .. }] if modes == "+ntkl * 3")
    );

    carol.send("/join #vault").await;
    assert_eq!(error_code(&replies(&mut carol).await), ErrorCode::BadKey);
    carol.send("/join #vault open").await;
    assert_eq!(error_code(&replies(&mut carol).await), ErrorCode::BadKey);
    carol.send("/join #vault sesame").await;
    assert!(matches!(
        replies(&mut carol).await.first(),
        Some(ServerFrame::Join { .. })
    ));
    sync_all(&mut c).await;
    // Three members: full.
    let mut dave = server.login("dave").await;
    dave.send("/join #vault sesame").await;
    assert_eq!(error_code(&replies(&mut dave).await), ErrorCode::RoomFull);
    // -k needs no key: here 2 is +l's.
    c[0].send("/mode -k+l 2").await;
    assert_eq!(only_mode(&replies(&mut c[0]).await).1, "-k+l 2");
    c[0].send("/mode -l").await;
    replies(&mut c[0]).await;
    dave.send("/join #vault").await;
    assert!(matches!(
        replies(&mut dave).await.first(),
        Some(ServerFrame::Join { .. })
    ));
}

#[tokio::test]
async fn a_kick_is_seen_by_everyone_and_takes_the_kicked_out() {
    let server = TestServer::start().await;
    let mut c = room_of_alice(&server, "#rust", &["bob", "carol"]).await;

    c[1].send("/kick carol").await;
    assert_eq!(
        error_code(&replies(&mut c[1]).await),
        ErrorCode::ChanopNeeded
    );
    c[0].send("/kick bob spamming  links").await;
    for client in &mut c {
        let frames = replies(client).await;
        let kick = frames
            .iter()
            .find_map(|f| match f {
                ServerFrame::Kick {
                    room,
                    nick,
                    target,
                    reason,
                    ..
                } => Some((
                    room.to_string(),
                    nick.to_string(),
                    target.to_string(),
                    reason.clone(),
                )),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no KICK in {frames:?}"));
        assert_eq!(
            kick,
            (
                "#rust".into(),
                "alice".into(),
                "bob".into(),
                "spamming  links".into()
            )
        );
    }
    // Bob is out: #rust was his current room, so he is told his new one, and nothing
    // of #rust reaches him.
    c[0].send("after the kick").await;
    replies(&mut c[0]).await;
    replies(&mut c[2]).await;
    c[1].send("/who #rust").await;
    assert_eq!(members(&replies(&mut c[1]).await), ["@alice", "carol"]);
    c[1].send("/part #rust").await;
    assert_eq!(error_code(&replies(&mut c[1]).await), ErrorCode::NotInRoom);
    c[1].send("/whois bob").await;
    let frames = replies(&mut c[1]).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Whois(w)] if w.rooms.iter().all(|(_, r)| r.as_str() != "#rust")),
        "{frames:?}"
    );
    // The default reason is the kicker's nickname; someone not in the room is refused.
    c[0].send("/kick carol").await;
    let frames = replies(&mut c[0]).await;
    assert!(matches!(&frames[..], [ServerFrame::Kick { reason, .. }] if reason == "alice"));
    c[0].send("/kick carol").await;
    assert_eq!(
        error_code(&replies(&mut c[0]).await),
        ErrorCode::UserNotInRoom
    );
    // Kicked is not banned: bob comes back.
    c[1].send("/join #rust").await;
    assert!(matches!(
        replies(&mut c[1]).await.first(),
        Some(ServerFrame::Join { .. })
    ));
}

#[tokio::test]
async fn the_kicked_member_is_told_its_new_current_room() {
    let server = TestServer::start().await;
    let mut c = room_of_alice(&server, "#a", &["bob"]).await;
    c[0].send("/kick bob").await;
    replies(&mut c[0]).await;
    let frames = replies(&mut c[1]).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Kick { .. }, ServerFrame::Current { room: Some(r) }] if r.as_str() == "#general"),
        "{frames:?}"
    );
    // Bare lines now go to #general.
    c[1].send("back in the lobby").await;
    assert!(
        replies(&mut c[1])
            .await
            .iter()
            .any(|f| msg_text(f, "#general", "bob").is_some())
    );
}

#[tokio::test]
async fn a_ban_silences_and_keeps_out_until_lifted() {
    let server = TestServer::start().await;
    let mut c = room_of_alice(&server, "#rust", &["bob", "carol"]).await;

    // A nickname stands for nick!*@*.
    c[0].send("/ban Bob").await;
    for client in &mut c {
        assert_eq!(
            only_mode(&replies(client).await),
            ("alice".into(), "+b bob!*@*".into())
        );
    }
    c[1].send("can I speak?").await;
    assert_eq!(
        error_code(&replies(&mut c[1]).await),
        ErrorCode::BannedFromRoom
    );
    // Listed, with who set it.
    c[2].send("/ban").await;
    let frames = replies(&mut c[2]).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Ban { mask, by, .. }, ServerFrame::BanEnd { count: 1, .. }]
            if mask == "bob!*@*" && by.as_str() == "alice"),
        "{frames:?}"
    );
    c[2].send("/mode +b").await;
    assert_eq!(replies(&mut c[2]).await.len(), 2);
    // Kicked, bob cannot come back, nor as anyone else from his address by host mask.
    c[0].send("/kick bob").await;
    sync_all(&mut c).await;
    c[1].send("/join #rust").await;
    assert_eq!(
        error_code(&replies(&mut c[1]).await),
        ErrorCode::BannedFromRoom
    );
    c[0].send("/ban *!*@127.0.0.*").await;
    sync_all(&mut c).await;
    let mut dave = server.login("dave").await;
    dave.send("/join #rust").await;
    assert_eq!(
        error_code(&replies(&mut dave).await),
        ErrorCode::BannedFromRoom
    );
    // Operators and voiced members speak past a ban (alice's address matches too).
    c[0].send("still here").await;
    assert!(
        replies(&mut c[0])
            .await
            .iter()
            .any(|f| msg_text(f, "#rust", "alice").is_some())
    );
    // Lifted, and a mask not banned is refused.
    c[0].send("/unban *!*@127.0.0.*").await;
    c[0].send("/unban bob!*@*").await;
    replies(&mut c[0]).await;
    c[0].send("/unban nobody").await;
    assert!(matches!(
        &replies(&mut c[0]).await[..],
        [ServerFrame::Modes { .. }]
    ));
    c[1].send("/join #rust").await;
    assert!(matches!(
        replies(&mut c[1]).await.first(),
        Some(ServerFrame::Join { .. })
    ));
    c[1].send("I am back").await;
    assert!(
        replies(&mut c[1])
            .await
            .iter()
            .any(|f| msg_text(f, "#rust", "bob").is_some())
    );
}

#[tokio::test]
async fn a_room_holds_at_most_a_hundred_bans() {
    let server = TestServer::start().await;
    let mut c = room_of_alice(&server, "#strict", &[]).await;
    for n in 0..100 {
        c[0].send(&format!("/ban troll{n}")).await;
    }
    let frames = replies(&mut c[0]).await;
    assert_eq!(
        frames
            .iter()
            .filter(|f| matches!(f, ServerFrame::Mode { .. }))
            .count(),
        100
    );
    c[0].send("/ban one-more").await;
    assert_eq!(
        error_code(&replies(&mut c[0]).await),
        ErrorCode::BanListFull
    );
    // A ban already there is no new entry, and lifting one makes room.
    c[0].send("/ban troll7").await;
    assert!(matches!(
        &replies(&mut c[0]).await[..],
        [ServerFrame::Modes { .. }]
    ));
    c[0].send("/unban troll7!*@*").await;
    c[0].send("/ban one-more").await;
    let frames = replies(&mut c[0]).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Mode { .. }, ServerFrame::Mode { changes, .. }] if changes == "+b one-more!*@*"),
        "{frames:?}"
    );
}

#[tokio::test]
async fn a_secret_room_is_hidden_from_those_outside() {
    let server = TestServer::start().await;
    let mut c = room_of_alice(&server, "#hidden", &["bob"]).await;
    c[0].send("/topic psst").await;
    c[0].send("/mode +s").await;
    let frames = replies(&mut c[0]).await;
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Mode { changes, .. } if changes == "+s")),
        "{frames:?}"
    );
    replies(&mut c[1]).await;
    let mut carol = server.login("carol").await;

    carol.send("/rooms").await;
    let frames = replies(&mut carol).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Rooms { rooms }] if rooms.iter().all(|(r, _)| r.as_str() != "#hidden")),
        "{frames:?}"
    );
    for line in [
        "/who #hidden",
        "/topic #hidden",
        "/mode #hidden",
        "/history #hidden",
    ] {
        carol.send(line).await;
        assert_eq!(
            error_code(&replies(&mut carol).await),
            ErrorCode::NoSuchRoom,
            "{line}"
        );
    }
    carol.send("/whois alice").await;
    let frames = replies(&mut carol).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Whois(w)] if w.rooms.iter().all(|(_, r)| r.as_str() != "#hidden")),
        "{frames:?}"
    );
    // Members see it, its topic after the list.
    c[1].send("/rooms").await;
    let frames = replies(&mut c[1]).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Rooms { rooms }, ServerFrame::TopicIs { room, topic: Some(t) }]
            if rooms.iter().any(|(r, n)| r.as_str() == "#hidden" && *n == 2) && room.as_str() == "#hidden" && t.text == "psst"),
        "{frames:?}"
    );
    c[1].send("/whois alice").await;
    let frames = replies(&mut c[1]).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Whois(w)] if w.rooms.contains(&(Status::Operator, room("#hidden")))),
        "{frames:?}"
    );
}

const PASSWORD: &str = "correct horse battery";

/// One hash for every test (argon2 is slow in a debug build).
fn hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| chat_server::hash_password(PASSWORD).unwrap())
}

/// Logs in as the registered `nick`, giving its password; nothing left in flight.
async fn identified(server: &TestServer, nick: &str) -> Client {
    let mut client = server.connect().await;
    client.send(nick).await;
    assert_eq!(client.recv().await, ServerFrame::PassPrompt);
    client.send(PASSWORD).await;
    client
        .until(|f| matches!(f, ServerFrame::Current { .. }))
        .await;
    replies(&mut client).await;
    client
}

#[tokio::test]
async fn a_registered_room_keeps_its_founder_topic_modes_and_bans_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_owned();
    let config = || Config {
        db: Some(db.clone()),
        ..Config::unthrottled()
    };
    let mut first = TestServer::with(config()).await;
    first.register("alice", PASSWORD).await;
    let mut alice = identified(&first, "alice").await;
    alice.send("/join #home").await;
    alice.send("/topic #home where alice lives").await;
    alice.send("/mode #home +ik-t door").await;
    alice.send("/ban #home $a:mallory").await;
    alice.send("/ban #home eve").await;
    let frames = replies(&mut alice).await;
    assert_eq!(
        frames
            .iter()
            .filter(|f| matches!(f, ServerFrame::Mode { .. }))
            .count(),
        3,
        "{frames:?}"
    );
    // The founder is protected from the operators she makes.
    let mut bob = first.login("bob").await;
    alice.send("/invite bob").await;
    replies(&mut alice).await;
    bob.send("/join #home door").await;
    replies(&mut bob).await;
    alice.send("/op bob").await;
    replies(&mut alice).await;
    replies(&mut bob).await;
    bob.send("/deop alice").await;
    assert_eq!(
        error_code(&replies(&mut bob).await),
        ErrorCode::ChanopNeeded
    );
    bob.send("/kick alice").await;
    assert_eq!(
        error_code(&replies(&mut bob).await),
        ErrorCode::ChanopNeeded
    );
    drop((alice, bob));
    first.shutdown().await;

    let second = TestServer::with(config()).await;
    // The room is empty; whoever comes first is held to its rules and is not made its
    // operator.
    let mut bob = second.login("bob").await;
    bob.send("/join #home door").await;
    assert_eq!(error_code(&replies(&mut bob).await), ErrorCode::InviteOnly);
    bob.send("/mode #home").await;
    assert_eq!(
        error_code(&replies(&mut bob).await),
        ErrorCode::NoSuchRoom,
        "not open"
    );
    // The founder walks past the invitation and the key, and is its operator.
    let mut alice = identified(&second, "alice").await;
    alice.send("/join #home").await;
    let frames = replies(&mut alice).await;
    assert_eq!(members(&frames), ["@alice"]);
    assert!(
        frames.iter().any(|f| matches!(f, ServerFrame::TopicIs { topic: Some(t), .. } if t.text == "where alice lives" && t.by.as_str() == "alice")),
        "{frames:?}"
    );
    alice.send("/mode").await;
    assert!(
        matches!(&replies(&mut alice).await[..], [ServerFrame::Modes { modes, .. }] if modes == "+nik door")
    );
    alice.send("/ban").await;
    let masks: Vec<_> = alice
        .sync()
        .await
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Ban { mask, .. } => Some(mask.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(masks, ["$a:mallory", "eve!*@*"]);
    // The ban holds on a rejoin after the restart.
    alice.send("/mode -i").await;
    replies(&mut alice).await;
    let mut eve = second.login("eve").await;
    eve.send("/join #home door").await;
    assert_eq!(
        error_code(&replies(&mut eve).await),
        ErrorCode::BannedFromRoom
    );
    // A room made by someone without an account is not kept.
    let mut carol = second.login("carol").await;
    carol.send("/join #transient").await;
    carol.send("/topic #transient gone soon").await;
    carol.send("/part #transient").await;
    replies(&mut carol).await;
    carol.send("/join #transient").await;
    let frames = replies(&mut carol).await;
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, ServerFrame::TopicIs { .. })),
        "{frames:?}"
    );
}

#[tokio::test]
async fn a_server_operator_acts_as_operator_in_every_room() {
    let server = TestServer::with(Config {
        operators: vec![Operator {
            name: "root".into(),
            hash: hash().into(),
        }],
        ..Config::unthrottled()
    })
    .await;
    let mut c = room_of_alice(&server, "#wild", &["bob"]).await;
    c[0].send("/mode +is").await;
    sync_all(&mut c).await;
    let mut op = server.login("root").await;
    op.send(&format!("/oper root {PASSWORD}")).await;
    replies(&mut op).await;

    // Without being in it: sees it, changes it, kicks from it.
    op.send("/mode #wild").await;
    assert!(
        matches!(&replies(&mut op).await[..], [ServerFrame::Modes { modes, .. }] if modes == "+ntsi")
    );
    op.send("/mode #wild +m").await;
    op.send("/kick #wild bob behave").await;
    replies(&mut op).await;
    let frames: Vec<_> = c[0]
        .sync()
        .await
        .into_iter()
        .filter(|f| matches!(f, ServerFrame::Mode { .. } | ServerFrame::Kick { .. }))
        .collect();
    assert!(
        matches!(&frames[..], [ServerFrame::Mode { nick, .. }, ServerFrame::Kick { nick: k, .. }]
        if nick.as_str() == "root" && k.as_str() == "root"),
        "{frames:?}"
    );
    // And walks into an invite-only room, and is shown as an operator by /whois.
    op.send("/join #wild").await;
    assert!(matches!(
        replies(&mut op).await.first(),
        Some(ServerFrame::Join { .. })
    ));
    c[1].send("/whois root").await;
    let frames = replies(&mut c[1]).await;
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Whois(w) if w.oper)),
        "{frames:?}"
    );
}

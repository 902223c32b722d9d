//! The IRC door against the rest of the behaviour list (`../shared/IRC.md`) that the
//! other IRC tests do not cover: framing, racing registrations, nick changes, room modes
//! and their numerics, quiet rooms, kicks and invitations refused, and server operators.

mod common;

use chat_server::Config;
use chat_server::config::file::Operator;
use common::irc::{Irc, numeric, numerics};
use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn framing_takes_lf_lines_and_answers_invalid_utf8() {
    let server = TestServer::start().await;
    let mut irc = Irc::connect(&server).await;
    // Lines ending in a bare LF are lines too.
    irc.writer
        .write_all(b"NICK lf\nUSER lf 0 * :Lf\n")
        .await
        .unwrap();
    let welcome = irc.until(|l| l.contains(" 422 ")).await;
    assert_eq!(numeric(&welcome[0]), Some("001"));
    // Invalid UTF-8 is answered, never dropped in silence; the connection stays.
    irc.writer
        .write_all(b"PRIVMSG lf :\xff\xfe\r\n")
        .await
        .unwrap();
    let lines = irc.sync().await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("FAIL * INVALID_UTF8"), "{lines:?}");
    // Tags are allowed past 512 bytes, the message itself is not.
    irc.send(&format!("@+x={} PING tagged", "y".repeat(1000)))
        .await;
    assert_eq!(
        irc.line().await,
        ":chat.localhost PONG chat.localhost :tagged"
    );
    irc.send("PING").await;
    let missing = irc.sync().await;
    assert!(
        matches!(numerics(&missing)[..], ["409"] | ["461"]),
        "{missing:?}"
    );
}

#[tokio::test]
async fn of_two_racing_registrations_exactly_one_wins_and_a_closed_nick_is_free_at_once() {
    let server = TestServer::start().await;
    let mut first = Irc::connect(&server).await;
    let mut second = Irc::connect(&server).await;
    let register = "NICK racer\r\nUSER racer 0 * :Racer\r\n";
    let (a, b) = tokio::join!(
        first.writer.write_all(register.as_bytes()),
        second.writer.write_all(register.as_bytes())
    );
    a.unwrap();
    b.unwrap();
    let one = first.line().await;
    let two = second.line().await;
    let mut codes = [numeric(&one).unwrap(), numeric(&two).unwrap()];
    codes.sort_unstable();
    assert_eq!(codes, ["001", "433"], "{one} / {two}");
    // The winner closes its socket; the nickname is free for the next at once.
    let (mut winner, mut loser) = if numeric(&one) == Some("001") {
        (first, second)
    } else {
        (second, first)
    };
    winner.until(|l| l.contains(" 422 ")).await;
    winner.writer.shutdown().await.unwrap();
    drop(winner);
    // The loser retries until the hub has seen the close: each try is answered.
    let mut tries = 0;
    loop {
        loser.send("NICK racer").await;
        let answer = loser.line().await;
        if numeric(&answer) == Some("001") {
            break;
        }
        assert_eq!(numeric(&answer), Some("433"), "{answer}");
        tries += 1;
        assert!(tries < 500, "the nickname is freed");
    }
}

#[tokio::test]
async fn nick_changes_case_only_in_use_and_the_old_nick_freed() {
    let server = TestServer::start().await;
    let mut bob = Irc::login(&server, "bob").await;
    let mut carol = Irc::login(&server, "carol").await;
    for irc in [&mut bob, &mut carol] {
        irc.join("#n").await;
    }
    bob.sync().await;
    bob.send("NICK Bob").await;
    assert_eq!(bob.line().await, ":bob!~bob@127.0.0.1 NICK Bob");
    assert_eq!(carol.sync().await, [":bob!~bob@127.0.0.1 NICK Bob"]);
    // In use: 433 only, and nothing to anyone else.
    bob.send("NICK CAROL").await;
    assert_eq!(numerics(&bob.sync().await), ["433"]);
    assert!(carol.sync().await.is_empty());
    // The old nickname is free as soon as the change is made.
    bob.send("NICK robert").await;
    bob.sync().await;
    assert_eq!(carol.sync().await, [":Bob!~bob@127.0.0.1 NICK robert"]);
    carol.send("NICK bob").await;
    assert_eq!(carol.line().await, ":carol!~carol@127.0.0.1 NICK bob");
}

#[tokio::test]
async fn room_modes_refuse_with_their_numerics() {
    let server = TestServer::start().await;
    let mut op = Irc::login(&server, "op").await;
    let mut bob = Irc::login(&server, "bob").await;
    op.join("#m").await;
    // No topic yet: 331.
    op.send("TOPIC #m").await;
    assert_eq!(numerics(&op.sync().await), ["331"]);

    // +n: a non-member cannot speak in the room.
    bob.send("PRIVMSG #m :from outside").await;
    assert_eq!(numerics(&bob.sync().await), ["404"]);

    // +k: a key with a space or an empty one is refused; a wrong key gets 475.
    op.send("MODE #m +k :two words").await;
    op.send("MODE #m +k :").await;
    let refused = op.sync().await;
    assert_eq!(numerics(&refused), ["525", "525"], "{refused:?}");
    assert!(refused[0].ends_with(" 525 op #m :Key is not well-formed"));
    op.send("MODE #m").await;
    assert!(op.sync().await[0].ends_with(" 324 op #m +nt"));
    op.send("MODE #m +k sesame").await;
    assert_eq!(op.sync().await, [":op!~op@127.0.0.1 MODE #m +k sesame"]);
    bob.send("JOIN #m wrong").await;
    assert_eq!(numerics(&bob.sync().await), ["475"]);
    op.send("MODE #m -k sesame").await;
    op.sync().await;

    // +l: full is 471.
    op.send("MODE #m +l 1").await;
    assert_eq!(op.sync().await, [":op!~op@127.0.0.1 MODE #m +l 1"]);
    bob.send("JOIN #m").await;
    assert_eq!(numerics(&bob.sync().await), ["471"]);
    op.send("MODE #m -l").await;
    op.sync().await;

    // +b: a nick!user@host mask with globs, case-insensitive (kept lowercased): 474.
    op.send("MODE #m +b B?B!*@*").await;
    assert_eq!(op.sync().await, [":op!~op@127.0.0.1 MODE #m +b b?b!*@*"]);
    bob.send("JOIN #m").await;
    assert_eq!(numerics(&bob.sync().await), ["474"]);
    op.send("MODE #m -b B?B!*@*").await;
    op.sync().await;
    bob.join("#m").await;
    // Already a member: nothing, or the names again, never an error.
    bob.send("JOIN #m").await;
    let again = numerics(&bob.sync().await).join(" ");
    assert!(again.is_empty() || again == "353 366", "{again}");

    // A joiner gets the topic with exactly one 333; `TOPIC #m :` clears it.
    op.send("TOPIC #m :the topic").await;
    op.sync().await;
    let mut carol = Irc::login(&server, "carol").await;
    carol.send("JOIN #m").await;
    let joined = numerics(&carol.until(|l| l.contains(" 366 ")).await)
        .join(" ")
        .to_owned();
    assert_eq!(joined, "332 333 353 366");
    op.sync().await;
    op.send("TOPIC #m :").await;
    assert_eq!(op.sync().await, [":op!~op@127.0.0.1 TOPIC #m :"]);
    carol.sync().await;
    carol.send("TOPIC #m").await;
    assert_eq!(numerics(&carol.sync().await), ["331"]);

    // +s: hidden from LIST for non-members, shown to members.
    op.send("MODE #m +s").await;
    op.sync().await;
    let mut dave = Irc::login(&server, "dave").await;
    dave.send("LIST").await;
    let list = dave.sync().await;
    assert!(list.iter().all(|l| !l.contains(" #m ")), "{list:?}");
    carol.send("LIST").await;
    let list = carol.sync().await;
    assert!(
        list.iter().any(|l| l.contains(" 322 carol #m 3 ")),
        "{list:?}"
    );
}

#[tokio::test]
async fn kicks_and_invitations_refused() {
    let server = TestServer::start().await;
    let mut op = Irc::login(&server, "op").await;
    let mut bob = Irc::login(&server, "bob").await;
    let mut carol = Irc::login(&server, "carol").await;
    op.join("#k").await;
    bob.join("#k").await;
    op.sync().await;
    // Not an operator: 482; not in the room: 442; no such room: 403.
    bob.send("KICK #k op").await;
    assert_eq!(numerics(&bob.sync().await), ["482"]);
    carol.send("KICK #k bob").await;
    carol.send("KICK #none bob").await;
    assert_eq!(numerics(&carol.sync().await), ["442", "403"]);
    // The inviter must be in the room; +i needs an operator to invite.
    let mut dave = Irc::login(&server, "dave").await;
    carol.send("INVITE dave #k").await;
    assert_eq!(numerics(&carol.sync().await), ["442"]);
    op.send("MODE #k +i").await;
    op.sync().await;
    bob.sync().await;
    bob.send("INVITE dave #k").await;
    assert_eq!(numerics(&bob.sync().await), ["482"]);
    assert!(dave.sync().await.is_empty());
    // A kick without a reason gives the kicker's nickname as the reason.
    op.send("KICK #k bob").await;
    let kick = ":op!~op@127.0.0.1 KICK #k bob :op";
    assert_eq!(op.sync().await, [kick]);
    assert_eq!(bob.sync().await, [kick]);
    // Without a recipient: 411.
    bob.send("PRIVMSG").await;
    assert_eq!(numerics(&bob.sync().await), ["411"]);
}

#[tokio::test]
async fn a_quiet_room_sends_no_names_on_join_but_names_still_lists() {
    let server = TestServer::with(Config {
        presence_limit: 2,
        ..Config::unthrottled()
    })
    .await;
    let mut clients = Vec::new();
    for nick in ["q1", "q2", "q3"] {
        let mut irc = Irc::login(&server, nick).await;
        irc.send("JOIN #quiet").await;
        // The join is answered by the PONG behind it, names or not.
        let lines = irc.sync().await;
        assert!(lines[0].contains(" JOIN #quiet"), "{lines:?}");
        clients.push((irc, lines));
    }
    // The first two joined a room small enough to be shown; the third a quiet one.
    assert!(numerics(&clients[0].1).contains(&"353"));
    assert!(
        !numerics(&clients[2].1).contains(&"353"),
        "{:?}",
        clients[2].1
    );
    let third = &mut clients[2].0;
    third.send("NAMES #quiet").await;
    let names = third.sync().await;
    assert!(
        names
            .iter()
            .any(|l| l.contains(" 353 q3 ") && l.contains("q1")),
        "{names:?}"
    );
}

const OPER_PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn server_operators_oper_kill_and_wallops() {
    let server = TestServer::with(Config {
        operators: vec![Operator {
            name: "root".into(),
            hash: chat_server::hash_password(OPER_PASSWORD).unwrap(),
        }],
        ..Config::unthrottled()
    })
    .await;
    let mut admin = Irc::login(&server, "admin").await;
    let mut bob = Irc::login(&server, "bob").await;
    let mut victim = Irc::login(&server, "victim").await;
    admin.join("#ops").await;
    // Not an operator yet: 481 for KILL; a wrong password: 464.
    admin.send("KILL victim :no").await;
    admin.send("OPER root wrong").await;
    admin.send(&format!("OPER root :{OPER_PASSWORD}")).await;
    let lines = admin.sync().await;
    assert_eq!(numerics(&lines)[..2], ["481", "464"], "{lines:?}");
    assert!(numerics(&lines).contains(&"381"), "{lines:?}");
    admin.send("MODE admin").await;
    let modes = admin.sync().await;
    assert!(
        modes[0].contains(" 221 admin +") && modes[0].contains('o'),
        "{modes:?}"
    );
    // An operator shows `*` in WHO and 313 in WHOIS.
    bob.send("WHO admin").await;
    let who = bob.sync().await;
    assert!(who[0].contains(" admin H*"), "{who:?}");
    bob.send("WHOIS admin").await;
    assert!(numerics(&bob.sync().await).contains(&"313"));
    // WALLOPS reaches those with +w.
    bob.send("MODE bob +w").await;
    bob.sync().await;
    admin.send("WALLOPS :hear ye").await;
    admin.sync().await;
    let heard = bob.sync().await;
    assert!(
        heard.iter().any(|l| l.ends_with("WALLOPS :hear ye")),
        "{heard:?}"
    );
    assert!(victim.sync().await.is_empty());
    // KILL closes the victim's connection, with an ERROR first.
    admin.send("KILL victim :enough").await;
    admin.sync().await;
    let last = victim.closed().await;
    assert!(
        last.last().is_some_and(|l| l.starts_with("ERROR :")),
        "{last:?}"
    );
    bob.send("ISON victim").await;
    assert!(bob.sync().await[0].ends_with(" 303 bob :"));
}

#[tokio::test]
async fn register_makes_the_nickname_an_account() {
    let server = TestServer::start().await;
    let mut bob = Irc::login_with(&server, "bob", "draft/account-registration").await;
    let fails = [
        (
            "REGISTER * * short",
            "FAIL REGISTER UNACCEPTABLE_PASSWORD bob :",
        ),
        (
            "REGISTER someone * long enough",
            "FAIL REGISTER ACCOUNT_NAME_MUST_BE_NICK someone :",
        ),
    ];
    for (command, fail) in fails {
        bob.send(command).await;
        let lines = bob.sync().await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!(":chat.localhost {fail}")),
            "{command}: {lines:?}"
        );
    }
    bob.send("REGISTER * * :open sesame").await;
    assert_eq!(
        bob.line().await,
        ":chat.localhost REGISTER SUCCESS bob :Account created; you are logged in"
    );
    assert_eq!(
        bob.line().await,
        ":chat.localhost 900 bob bob!~bob@127.0.0.1 bob :You are now logged in as bob"
    );
    bob.send("WHOIS bob").await;
    assert!(numerics(&bob.sync().await).contains(&"330"));
    bob.send("REGISTER bob * :open sesame").await;
    let again = bob.sync().await;
    assert!(
        again[0].starts_with(":chat.localhost FAIL REGISTER ACCOUNT_EXISTS bob :"),
        "{again:?}"
    );
    bob.send("QUIT").await;
    bob.closed().await;
    // The nickname now needs its password, from any door.
    let mut thief = Irc::connect(&server).await;
    thief.send("NICK bob").await;
    thief.send("USER bob 0 * :x").await;
    assert_eq!(numeric(&thief.line().await), Some("433"));
    let mut back = Irc::connect(&server).await;
    back.send("PASS :open sesame").await;
    back.send("NICK bob").await;
    back.send("USER bob 0 * :Bob").await;
    let welcome = back.until(|l| l.contains(" 422 ")).await;
    assert_eq!(numeric(&welcome[0]), Some("001"));
}

#[tokio::test]
async fn a_private_action_stays_an_action() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = Irc::login(&server, "bob").await;
    let mut carol = Irc::login(&server, "carol").await;
    bob.send("PRIVMSG carol :\u{1}ACTION waves\u{1}").await;
    bob.send("PRIVMSG alice :\u{1}ACTION waves\u{1}").await;
    bob.sync().await;
    assert_eq!(
        carol.sync().await,
        [":bob!~bob@127.0.0.1 PRIVMSG carol :\u{1}ACTION waves\u{1}"]
    );
    let frames = alice.sync().await;
    assert!(
        matches!(&frames[..], [chat_proto::ServerFrame::Private { from, text, .. }]
            if from.as_str() == "bob" && text == "* bob waves"),
        "{frames:?}"
    );
}

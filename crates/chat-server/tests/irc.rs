//! The IRC door, spoken raw from real sockets: registration, rooms shared with native
//! clients, messages both ways, governance, queries, and the IRCv3 capabilities offered.

mod common;

use chat_proto::ServerFrame;
use common::irc::{Irc, numeric, numerics};
use common::*;

#[tokio::test]
async fn registration_with_capabilities_ends_in_the_welcome() {
    let server = TestServer::start().await;
    let mut irc = Irc::connect(&server).await;
    irc.send("CAP LS 302").await;
    // irssi's junk right after CAP LS is tolerated.
    irc.send("JOIN :").await;
    irc.send("NICK dave").await;
    irc.send("USER dave 0 * :Dave").await;
    let ls = irc.line().await;
    assert!(ls.starts_with(":chat.localhost CAP * LS :"), "{ls}");
    assert!(
        ls.contains("multi-prefix") && ls.contains("server-time"),
        "{ls}"
    );
    irc.send("CAP REQ :multi-prefix no-such-cap").await;
    assert_eq!(
        irc.line().await,
        ":chat.localhost CAP * NAK :multi-prefix no-such-cap"
    );
    irc.send("CAP REQ :multi-prefix server-time").await;
    assert_eq!(
        irc.line().await,
        ":chat.localhost CAP * ACK :multi-prefix server-time"
    );
    // Nothing until CAP END.
    irc.send("CAP END").await;
    let welcome = irc.until(|l| l.contains(" 422 ")).await;
    let codes = numerics(&welcome);
    assert_eq!(&codes[..4], ["001", "002", "003", "004"], "{welcome:?}");
    assert!(codes.contains(&"005") && codes.contains(&"251") && codes.contains(&"266"));
    assert!(
        welcome[0].starts_with(":chat.localhost 001 dave :Welcome"),
        "{welcome:?}"
    );
    let isupport = welcome
        .iter()
        .filter(|l| numeric(l) == Some("005"))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    for token in [
        "PREFIX=(ov)@+",
        "CHANTYPES=#",
        "CASEMAPPING=ascii",
        "CHANMODES=b,k,l,imnst",
    ] {
        assert!(isupport.contains(token), "{token} in {isupport}");
    }
    irc.send("CAP LIST").await;
    assert_eq!(
        irc.line().await,
        ":chat.localhost CAP dave LIST :multi-prefix server-time"
    );
}

#[tokio::test]
async fn nicknames_are_refused_as_irc_clients_expect() {
    let server = TestServer::start().await;
    let _alice = server.login("alice").await;
    let mut irc = Irc::connect(&server).await;
    irc.send("PING early").await;
    assert_eq!(
        irc.line().await,
        ":chat.localhost PONG chat.localhost :early"
    );
    irc.send("PRIVMSG #general :too soon").await;
    assert_eq!(numeric(&irc.line().await), Some("451"));
    irc.send("NICK :").await;
    assert_eq!(numeric(&irc.line().await), Some("431"));
    irc.send("NICK 1st").await;
    assert_eq!(numeric(&irc.line().await), Some("432"));
    irc.send("USER bob 0 * :").await;
    assert_eq!(numeric(&irc.line().await), Some("461"));
    // In use by a native session, case-insensitively: 433 and no welcome.
    irc.send("NICK ALICE").await;
    irc.send("USER bob 0 * :Bob").await;
    let line = irc.line().await;
    assert_eq!(
        line,
        ":chat.localhost 433 * ALICE :Nickname is already in use"
    );
    irc.send("NICK bob").await;
    let welcome = irc.until(|l| l.contains(" 422 ")).await;
    assert_eq!(numeric(&welcome[0]), Some("001"));
}

#[tokio::test]
async fn irc_and_native_users_talk_in_one_room() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.sync().await;
    let mut bob = Irc::login(&server, "bob").await;

    let joined = bob.join("#rust").await;
    assert!(
        joined[0].starts_with(":bob!~bob@127.0.0.1 JOIN #rust"),
        "{joined:?}"
    );
    assert!(
        joined
            .iter()
            .any(|l| l.ends_with(" 353 bob = #rust :@alice bob")),
        "{joined:?}"
    );
    let (frame, _) = alice
        .until(|f| matches!(f, ServerFrame::Join { nick, .. } if nick.as_str() == "bob"))
        .await;
    assert!(matches!(frame, ServerFrame::Join { .. }));

    // Native to IRC, as PRIVMSG from alice's mask; /me as CTCP ACTION.
    alice.send("hello bob").await;
    alice.send("/me waves").await;
    alice.sync().await;
    let heard = bob.sync().await;
    assert_eq!(
        heard,
        [
            ":alice!alice@chat.localhost PRIVMSG #rust :hello bob",
            ":alice!alice@chat.localhost PRIVMSG #rust :\u{1}ACTION waves\u{1}",
        ]
    );
    // IRC to native; no echo to bob without echo-message.
    bob.send("PRIVMSG #rust :hi alice").await;
    bob.send("PRIVMSG #rust :\u{1}ACTION nods\u{1}").await;
    assert_eq!(bob.sync().await, Vec::<String>::new());
    let frames = alice.sync().await;
    assert_eq!(
        msg_text(&frames[0], "#rust", "bob"),
        Some("hi alice"),
        "{frames:?}"
    );
    assert!(
        matches!(&frames[1], ServerFrame::Action { from, text, .. } if from.as_str() == "bob" && text == "nods"),
        "{frames:?}"
    );
    // Private messages both ways.
    bob.send("PRIVMSG alice :psst").await;
    let frames = alice.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Private { from, text, .. }] if from.as_str() == "bob" && text == "psst"),
        "{frames:?}"
    );
    alice.send("/msg bob back").await;
    alice.sync().await;
    assert_eq!(
        bob.sync().await,
        [":alice!alice@chat.localhost PRIVMSG bob :back"]
    );
    // Errors: an unknown nick, a room not joined, no text.
    bob.send("PRIVMSG nobody :hi").await;
    bob.send("PRIVMSG #nowhere :hi").await;
    bob.send("PRIVMSG #rust :").await;
    bob.send("NOTICE nobody :no reply ever").await;
    assert_eq!(numerics(&bob.sync().await), ["401", "403", "412"]);
    // A rename and a part, seen by the native side.
    bob.send("NICK robert").await;
    assert_eq!(bob.line().await, ":bob!~bob@127.0.0.1 NICK robert");
    bob.send("PART #rust :bye").await;
    assert_eq!(bob.line().await, ":robert!~bob@127.0.0.1 PART #rust :bye");
    let frames = alice.sync().await;
    assert!(
        matches!(&frames[..], [ServerFrame::Rename { new, .. }, ServerFrame::Part { .. }] if new.as_str() == "robert"),
        "{frames:?}"
    );
}

#[tokio::test]
async fn echo_message_and_tags_carry_the_cores_id_and_time() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #ids").await;
    alice.sync().await;
    let mut irc = Irc::login_with(&server, "bob", "echo-message message-tags server-time").await;
    irc.join("#ids").await;
    alice.sync().await;
    irc.send("PRIVMSG #ids :tagged").await;
    let echo = irc.line().await;
    let frames = alice.sync().await;
    let ServerFrame::Message { id, time, .. } = &frames[0] else {
        panic!("{frames:?}");
    };
    let want = format!("@time={time:.3};msgid={id} :bob!~bob@127.0.0.1 PRIVMSG #ids :tagged");
    assert_eq!(echo, want);
}

#[tokio::test]
async fn a_quit_is_one_line_per_observer_and_errors_close() {
    let server = TestServer::start().await;
    let mut carol = Irc::login(&server, "carol").await;
    let mut bob = Irc::login(&server, "bob").await;
    for room in ["#a", "#b"] {
        carol.send(&format!("JOIN {room}")).await;
        carol.until(|l| l.contains(" 366 ")).await;
        bob.send(&format!("JOIN {room}")).await;
        bob.until(|l| l.contains(" 366 ")).await;
    }
    carol.sync().await;
    bob.send("QUIT :gone fishing").await;
    let last = bob.closed().await;
    assert_eq!(last, ["ERROR :Closing link: gone fishing"]);
    let seen = carol.sync().await;
    assert_eq!(
        seen,
        [":bob!~bob@127.0.0.1 QUIT :gone fishing"],
        "one QUIT for two shared rooms"
    );
}

#[tokio::test]
async fn governance_maps_to_topic_mode_kick_and_invite() {
    let server = TestServer::start().await;
    let mut op = Irc::login(&server, "op").await;
    let mut bob = Irc::login(&server, "bob").await;
    op.join("#gov").await;
    let joined = bob.join("#gov").await;
    assert!(
        joined
            .iter()
            .any(|l| l.ends_with(" 353 bob = #gov :bob @op")),
        "{joined:?}"
    );
    op.sync().await;

    op.send("TOPIC #gov :rules here").await;
    op.send("MODE #gov +m").await;
    let lines = op.sync().await;
    assert_eq!(
        lines,
        [
            ":op!~op@127.0.0.1 TOPIC #gov :rules here",
            ":op!~op@127.0.0.1 MODE #gov +m",
        ]
    );
    assert_eq!(bob.sync().await, lines);
    // Not an operator: 482; moderated: 404.
    bob.send("TOPIC #gov :mine").await;
    bob.send("PRIVMSG #gov :can I?").await;
    assert_eq!(numerics(&bob.sync().await), ["482", "404"]);
    bob.send("TOPIC #gov").await;
    let topic = bob.sync().await;
    assert_eq!(numerics(&topic), ["332", "333"]);
    assert!(topic[0].ends_with(" 332 bob #gov :rules here"));
    bob.send("MODE #gov").await;
    assert!(bob.sync().await[0].ends_with(" 324 bob #gov +ntm"));
    op.send("MODE #gov +b").await;
    assert_eq!(numerics(&op.sync().await), ["368"]);
    // The kick reaches everyone, the one kicked included.
    op.send("KICK #gov bob :behave").await;
    let kick = ":op!~op@127.0.0.1 KICK #gov bob :behave";
    assert_eq!(op.sync().await, [kick]);
    assert_eq!(bob.sync().await, [kick]);
    bob.send("PART #gov").await;
    assert_eq!(numerics(&bob.sync().await), ["442"]);
    // An invitation: 341 to the inviter, INVITE to the invited.
    op.send("MODE #gov +i").await;
    op.sync().await;
    bob.send("JOIN #gov").await;
    assert_eq!(numerics(&bob.sync().await), ["473"]);
    op.send("INVITE bob #gov").await;
    let lines = op.sync().await;
    assert!(
        lines.iter().any(|l| l.ends_with(" 341 op bob #gov")),
        "{lines:?}"
    );
    assert_eq!(bob.sync().await, [":op!~op@127.0.0.1 INVITE bob #gov"]);
    bob.send("JOIN #gov").await;
    assert!(bob.until(|l| l.contains(" 366 ")).await[0].contains(" JOIN #gov"));
}

#[tokio::test]
async fn queries_answer_with_their_numerics() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #q").await;
    alice.send("/topic #q a topic").await;
    alice.send("/away lunch").await;
    alice.sync().await;
    let mut bob = Irc::login(&server, "bob").await;

    bob.send("WHOIS alice").await;
    let whois = bob.sync().await;
    assert_eq!(numerics(&whois).first(), Some(&"311"));
    assert_eq!(numerics(&whois).last(), Some(&"318"));
    assert!(
        whois
            .iter()
            .any(|l| l.ends_with(" 319 bob alice :#general @#q")),
        "{whois:?}"
    );
    assert!(
        whois.iter().any(|l| l.ends_with(" 301 bob alice :lunch")),
        "{whois:?}"
    );
    // An IRC user's real name is its USER's.
    bob.send("WHOIS bob").await;
    let own = bob.sync().await;
    assert!(
        own[0].ends_with(" 311 bob bob ~bob 127.0.0.1 * :bob the tester"),
        "{own:?}"
    );
    bob.send("WHOIS nobody").await;
    assert_eq!(numerics(&bob.sync().await), ["401", "318"]);

    bob.send("NAMES #q").await;
    let names = bob.sync().await;
    assert!(names[0].ends_with(" 353 bob = #q :@alice"), "{names:?}");
    bob.send("NAMES #nowhere").await;
    assert_eq!(numerics(&bob.sync().await), ["366"]);

    bob.send("WHO #q").await;
    let who = bob.sync().await;
    assert!(
        who[0].contains(" 352 bob #q alice chat.localhost chat.localhost alice G@ :0 alice"),
        "{who:?}"
    );
    assert!(who[1].ends_with(" 315 bob #q :End of /WHO list"), "{who:?}");

    bob.send("LIST").await;
    let list = bob.sync().await;
    assert!(
        list.iter().any(|l| l.ends_with(" 322 bob #q 1 :a topic")),
        "{list:?}"
    );
    assert_eq!(numerics(&list).last(), Some(&"323"));

    bob.send("AWAY :brb").await;
    bob.send("AWAY").await;
    assert_eq!(numerics(&bob.sync().await), ["306", "305"]);
    bob.send("FROBNICATE").await;
    assert_eq!(numerics(&bob.sync().await), ["421"]);
    alice.send("/msg bob hi").await;
    alice.sync().await;
    bob.send("PRIVMSG alice :are you there?").await;
    let lines = bob.sync().await;
    assert!(
        lines.iter().any(|l| l.ends_with(" 301 bob alice :lunch")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn shutdown_says_error_before_closing() {
    let mut server = TestServer::start().await;
    let mut bob = Irc::login(&server, "bob").await;
    bob.sync().await;
    server.shutdown().await;
    assert_eq!(bob.closed().await, ["ERROR :Server shutting down"]);
}

#[tokio::test]
async fn the_other_queries_and_user_modes() {
    let server = TestServer::start().await;
    let mut gone = Irc::login(&server, "gone").await;
    gone.send("QUIT").await;
    gone.closed().await;
    let _alice = server.login("alice").await;
    let mut bob = Irc::login(&server, "bob").await;

    bob.send("WHOWAS gone").await;
    bob.send("WHOWAS never").await;
    assert_eq!(
        numerics(&bob.sync().await),
        ["314", "312", "369", "406", "369"]
    );
    bob.send("ISON alice nobody bob").await;
    assert!(bob.sync().await[0].ends_with(" 303 bob :alice bob"));
    bob.send("USERHOST alice bob").await;
    let line = bob.sync().await.remove(0);
    assert!(
        line.ends_with(" 302 bob :alice=+alice@chat.localhost bob=+~bob@127.0.0.1"),
        "{line}"
    );
    for (command, codes) in [
        ("INFO", &["371", "374"][..]),
        ("ADMIN", &["256", "257", "258", "259"][..]),
        ("LINKS", &["364", "365"][..]),
        ("VERSION", &["351", "005", "005"][..]),
        ("TIME", &["391"][..]),
        (
            "LUSERS",
            &["251", "252", "253", "254", "255", "265", "266"][..],
        ),
        ("MOTD", &["422"][..]),
    ] {
        bob.send(command).await;
        assert_eq!(numerics(&bob.sync().await), codes, "{command}");
    }
    // User modes: +w asks for WALLOPS; another user's modes are not ours to change.
    bob.send("MODE bob").await;
    assert!(bob.sync().await[0].ends_with(" 221 bob +i"));
    bob.send("MODE bob +w").await;
    assert_eq!(bob.sync().await, [":bob MODE bob :+w"]);
    bob.send("MODE bob").await;
    assert!(bob.sync().await[0].ends_with(" 221 bob +iw"));
    bob.send("MODE alice +w").await;
    assert_eq!(numerics(&bob.sync().await), ["502"]);
    // A line too long, and one that is no message, are answered; the connection stays.
    bob.send(&format!("PRIVMSG alice :{}", "x".repeat(600)))
        .await;
    bob.send(":only-a-source").await;
    bob.send("USER again 0 * :x").await;
    assert_eq!(numerics(&bob.sync().await), ["417", "421", "462"]);
}

#[tokio::test]
async fn join_zero_leaves_every_room_and_several_rooms_join_at_once() {
    let server = TestServer::start().await;
    let mut bob = Irc::login(&server, "bob").await;
    bob.send("JOIN #one,#two,bad,#three").await;
    let lines = bob.sync().await;
    let joins: Vec<_> = lines.iter().filter(|l| l.contains(" JOIN ")).collect();
    assert_eq!(joins.len(), 3, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(" 403 bob bad :No such channel")),
        "{lines:?}"
    );
    bob.send("JOIN 0").await;
    let parts = bob.sync().await;
    assert_eq!(
        parts.iter().filter(|l| l.contains(" PART ")).count(),
        3,
        "{parts:?}"
    );
    bob.send("PART #one").await;
    assert_eq!(numerics(&bob.sync().await), ["403"]);
}

#[tokio::test]
async fn a_registered_nickname_needs_its_password_through_pass() {
    let server = TestServer::start().await;
    server.register("alice", "correct horse").await;
    let mut irc = Irc::connect(&server).await;
    irc.send("NICK alice").await;
    irc.send("USER alice 0 * :Alice").await;
    let line = irc.line().await;
    assert!(
        line.starts_with(":chat.localhost 433 * alice :Nickname is registered"),
        "{line}"
    );
    // Another nickname works; PASS then the right one claims it.
    let mut irc = Irc::connect(&server).await;
    irc.send("PASS :wrong password").await;
    irc.send("NICK alice").await;
    irc.send("USER alice 0 * :Alice").await;
    assert_eq!(numeric(&irc.line().await), Some("433"));
    let mut irc = Irc::connect(&server).await;
    irc.send("PASS :correct horse").await;
    irc.send("NICK alice").await;
    irc.send("USER alice 0 * :Alice").await;
    let welcome = irc.until(|l| l.contains(" 422 ")).await;
    assert_eq!(numeric(&welcome[0]), Some("001"));
    irc.send("WHOIS alice").await;
    let whois = irc.sync().await;
    assert!(
        whois
            .iter()
            .any(|l| l.ends_with(" 330 alice alice alice :is logged in as")),
        "{whois:?}"
    );
}

#[tokio::test]
async fn sasl_plain_logs_in_to_an_account() {
    use base64::Engine as _;
    let plain = |user: &str, password: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
    };
    let server = TestServer::start().await;
    server.register("alice", "correct horse").await;

    let mut irc = Irc::connect(&server).await;
    irc.send("CAP LS 302").await;
    let ls = irc.line().await;
    assert!(ls.contains("sasl=PLAIN"), "{ls}");
    irc.send("CAP REQ :sasl").await;
    assert_eq!(irc.line().await, ":chat.localhost CAP * ACK :sasl");
    irc.send("AUTHENTICATE SCRAM-SHA-256").await;
    assert_eq!(numeric(&irc.line().await), Some("908"));
    assert_eq!(numeric(&irc.line().await), Some("904"));
    irc.send("AUTHENTICATE PLAIN").await;
    assert_eq!(irc.line().await, "AUTHENTICATE +");
    irc.send(&format!("AUTHENTICATE {}", plain("alice", "wrong one")))
        .await;
    assert_eq!(numeric(&irc.line().await), Some("904"));
    irc.send("AUTHENTICATE PLAIN").await;
    irc.line().await;
    irc.send(&format!("AUTHENTICATE {}", plain("alice", "correct horse")))
        .await;
    let logged = irc.line().await;
    assert!(
        logged.contains(" 900 ") && logged.ends_with(":You are now logged in as alice"),
        "{logged}"
    );
    assert_eq!(numeric(&irc.line().await), Some("903"));
    // The registered nickname is now ours without PASS.
    irc.send("NICK alice").await;
    irc.send("USER alice 0 * :Alice").await;
    irc.send("CAP END").await;
    let welcome = irc.until(|l| l.contains(" 422 ")).await;
    assert_eq!(numeric(&welcome[0]), Some("001"), "{welcome:?}");
    irc.send("WHOIS alice").await;
    let whois = irc.sync().await;
    assert!(
        whois
            .iter()
            .any(|l| l.ends_with(" 330 alice alice alice :is logged in as")),
        "{whois:?}"
    );

    // Logged in to an account, under another nickname: the account shows in WHOIS.
    server.register("bob", "battery staple").await;
    let mut irc = Irc::connect(&server).await;
    irc.send("CAP REQ :sasl").await;
    irc.line().await;
    irc.send("AUTHENTICATE PLAIN").await;
    irc.line().await;
    irc.send(&format!("AUTHENTICATE {}", plain("bob", "battery staple")))
        .await;
    irc.until(|l| l.contains(" 903 ")).await;
    irc.send("NICK bobby").await;
    irc.send("USER bob 0 * :Bob").await;
    irc.send("CAP END").await;
    irc.until(|l| l.contains(" 422 ")).await;
    irc.send("WHOIS bobby").await;
    let whois = irc.sync().await;
    assert!(
        whois
            .iter()
            .any(|l| l.ends_with(" 330 bobby bobby bob :is logged in as")),
        "{whois:?}"
    );
}

#[tokio::test]
async fn away_notify_and_account_tag() {
    let server = TestServer::start().await;
    server.register("alice", "correct horse").await;
    let mut alice = identified_native(&server, "alice", "correct horse").await;
    alice.send("/join #tags").await;
    alice.sync().await;
    let mut irc = Irc::login_with(&server, "bob", "away-notify account-tag").await;
    irc.join("#tags").await;
    alice.sync().await;

    alice.send("/away lunch").await;
    alice.send("/away").await;
    alice.send("back").await;
    alice.sync().await;
    let lines = irc.sync().await;
    assert_eq!(
        lines,
        [
            "@account=alice :alice!alice@chat.localhost AWAY :lunch",
            "@account=alice :alice!alice@chat.localhost AWAY",
            "@account=alice :alice!alice@chat.localhost PRIVMSG #tags :back",
        ]
    );
    // Without away-notify, nothing of it.
    let mut carol = Irc::login(&server, "carol").await;
    carol.join("#tags").await;
    alice.send("/away again").await;
    alice.sync().await;
    assert_eq!(carol.sync().await, Vec::<String>::new());
}

/// A native session identified to its registered nickname, nothing left in flight.
async fn identified_native(server: &TestServer, nick: &str, password: &str) -> Client {
    let mut client = server.connect().await;
    client.send(nick).await;
    assert_eq!(client.recv().await, ServerFrame::PassPrompt);
    client.send(password).await;
    client
        .until(|f| matches!(f, ServerFrame::Current { .. }))
        .await;
    client.sync().await;
    client
}

#[tokio::test]
async fn invitations_reach_the_room_only_with_invite_notify() {
    let server = TestServer::start().await;
    let mut op = Irc::login(&server, "op").await;
    op.join("#inv").await;
    let mut plain = Irc::login(&server, "plain").await;
    let mut notified = Irc::login_with(&server, "notified", "invite-notify").await;
    for client in [&mut plain, &mut notified] {
        client.join("#inv").await;
    }
    op.sync().await;
    plain.sync().await;
    let mut guest = Irc::login(&server, "guest").await;
    op.send("INVITE guest #inv").await;
    let invite = ":op!~op@127.0.0.1 INVITE guest #inv";
    assert_eq!(numerics(&op.sync().await), ["341"]);
    assert_eq!(guest.sync().await, [invite]);
    assert_eq!(notified.sync().await, [invite]);
    assert_eq!(plain.sync().await, Vec::<String>::new());
}

//! The IRC door's IRCv3 capabilities beyond the first set (`userhost-in-names`,
//! `extended-join`, `account-notify`, `setname`) and WHOX, spoken raw from real
//! sockets, with native users in the same rooms.

mod common;

use common::irc::*;
use common::*;

/// The 353 lines among `lines`.
fn names(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| numeric(l) == Some("353"))
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn userhost_in_names_lists_every_mask_to_the_clients_that_took_it() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.sync().await;
    let mut bob = Irc::login_with(&server, "bob", "userhost-in-names multi-prefix").await;
    let joined = bob.join("#rust").await;
    assert_eq!(
        names(&joined),
        [":chat.localhost 353 bob = #rust :@alice!alice@chat.localhost bob!~bob@127.0.0.1"],
        "{joined:?}"
    );
    // Without the capability, nicknames only.
    let mut carol = Irc::login(&server, "carol").await;
    carol.join("#rust").await;
    carol.send("NAMES #rust").await;
    assert_eq!(
        names(&carol.sync().await),
        [":chat.localhost 353 carol = #rust :@alice bob carol"]
    );
    bob.send("NAMES #rust").await;
    let listed = bob.sync().await;
    assert_eq!(
        names(&listed),
        [concat!(
            ":chat.localhost 353 bob = #rust :@alice!alice@chat.localhost ",
            "bob!~bob@127.0.0.1 carol!~carol@127.0.0.1"
        )],
        "{listed:?}"
    );
}

#[tokio::test]
async fn a_secret_room_is_marked_in_its_names() {
    let server = TestServer::start().await;
    let mut alice = Irc::login(&server, "alice").await;
    alice.join("#hidden").await;
    alice.join("#open").await;
    alice.send("MODE #hidden +s").await;
    alice.send("NAMES #hidden").await;
    alice.send("NAMES #open").await;
    let lines = alice.sync().await;
    assert_eq!(
        names(&lines),
        [
            ":chat.localhost 353 alice @ #hidden :@alice",
            ":chat.localhost 353 alice = #open :@alice",
        ],
        "{lines:?}"
    );
    // A joiner's list says so too.
    let mut bob = Irc::login(&server, "bob").await;
    let joined = bob.join("#hidden").await;
    assert_eq!(
        names(&joined),
        [":chat.localhost 353 bob @ #hidden :@alice bob"]
    );
}

/// Connects as the registered `nick` with its password (`PASS`, from loopback), the
/// real name `realname` and the capabilities `caps` (none if empty), reading up to the
/// end of the welcome.
async fn login_identified(
    server: &TestServer,
    nick: &str,
    password: &str,
    realname: &str,
    caps: &str,
) -> Irc {
    let mut irc = Irc::connect(server).await;
    if !caps.is_empty() {
        irc.send(&format!("CAP REQ :{caps}")).await;
    }
    irc.send(&format!("PASS :{password}")).await;
    irc.send(&format!("NICK {nick}")).await;
    irc.send(&format!("USER {nick} 0 * :{realname}")).await;
    if !caps.is_empty() {
        irc.send("CAP END").await;
    }
    let welcome = irc
        .until(|l| l.contains(" 376 ") || l.contains(" 422 ") || l.contains(" 433 "))
        .await;
    assert!(
        welcome.iter().any(|l| numeric(l) == Some("001")),
        "{welcome:?}"
    );
    irc
}

/// The lines among `lines` with `verb` as their command (tags and source aside).
fn verbs<'a>(lines: &'a [String], verb: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| {
            let mut words = l.split(' ').skip_while(|w| w.starts_with('@'));
            words.next().is_some_and(|w| w.starts_with(':')) && words.next() == Some(verb)
        })
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn extended_join_carries_the_account_and_the_real_name() {
    let server = TestServer::start().await;
    server.register("dave", "correct horse").await;
    let mut bob = Irc::login_with(&server, "bob", "extended-join").await;
    let own = bob.join("#rust").await;
    assert_eq!(own[0], ":bob!~bob@127.0.0.1 JOIN #rust * :bob");
    // Without the capability (and with tags before the line), the plain JOIN.
    let mut carol = Irc::login_with(&server, "carol", "server-time").await;
    let own = carol.join("#rust").await;
    assert!(
        own[0].starts_with("@time=") && own[0].ends_with(" :carol!~carol@127.0.0.1 JOIN #rust"),
        "{own:?}"
    );

    let mut dave = login_identified(&server, "dave", "correct horse", "Dave Null", "").await;
    dave.join("#rust").await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.sync().await;

    let heard = bob.sync().await;
    assert_eq!(
        verbs(&heard, "JOIN"),
        [
            ":carol!~carol@127.0.0.1 JOIN #rust * :carol",
            ":dave!~dave@127.0.0.1 JOIN #rust dave :Dave Null",
            ":alice!alice@chat.localhost JOIN #rust * :alice",
        ],
        "{heard:?}"
    );
    let heard = carol.sync().await;
    let joins: Vec<_> = verbs(&heard, "JOIN")
        .into_iter()
        .map(|l| l.split_once(' ').unwrap().1)
        .collect();
    assert_eq!(
        joins,
        [
            ":dave!~dave@127.0.0.1 JOIN #rust",
            ":alice!alice@chat.localhost JOIN #rust",
        ],
        "{heard:?}"
    );
}

#[tokio::test]
async fn account_notify_tells_a_native_registration_once_per_observer() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.send("/join #go").await;
    alice.sync().await;
    let mut bob = Irc::login_with(&server, "bob", "account-notify account-tag").await;
    bob.send("JOIN #rust,#go").await;
    bob.until(|l| l.contains(" 366 bob #go ")).await;
    let mut carol = Irc::login(&server, "carol").await;
    carol.join("#rust").await;
    bob.sync().await;

    alice.send("/register correct horse").await;
    alice
        .until(|f| matches!(f, chat_proto::ServerFrame::Account { .. }))
        .await;
    alice.send("/join #rust").await;
    alice.send("registered now").await;
    alice.sync().await;
    // One ACCOUNT though bob shares two rooms with alice; her messages now carry it.
    let heard = bob.sync().await;
    assert_eq!(
        heard,
        [
            "@account=alice :alice!alice@chat.localhost ACCOUNT alice",
            "@account=alice :alice!alice@chat.localhost PRIVMSG #rust :registered now",
        ]
    );
    // Without the capability, nothing.
    assert_eq!(
        carol.sync().await,
        [":alice!alice@chat.localhost PRIVMSG #rust :registered now"]
    );
    // A changed password is no new account.
    alice.send("/password battery staple").await;
    alice
        .until(|f| matches!(f, chat_proto::ServerFrame::Account { .. }))
        .await;
    assert_eq!(bob.sync().await, Vec::<String>::new());
}

/// The ISUPPORT tokens (005) among `lines`.
fn isupport(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| numeric(l) == Some("005"))
        .flat_map(|l| {
            let params = l.split(" :").next().unwrap_or("");
            params
                .split(' ')
                .skip(3)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn setname_changes_the_real_name_and_tells_those_who_took_it() {
    let server = TestServer::start().await;
    let mut bob = Irc::connect(&server).await;
    bob.send("CAP REQ :setname").await;
    bob.send("NICK bob").await;
    bob.send("USER bob 0 * :Bob").await;
    bob.send("CAP END").await;
    let welcome = bob
        .until(|l| l.contains(" 376 ") || l.contains(" 422 "))
        .await;
    let tokens = isupport(&welcome);
    let namelen: usize = tokens
        .iter()
        .find_map(|t| t.strip_prefix("NAMELEN="))
        .unwrap_or_else(|| panic!("NAMELEN in {tokens:?}"))
        .parse()
        .unwrap();
    let mut dave = Irc::login_with(&server, "dave", "setname").await;
    let mut carol = Irc::login(&server, "carol").await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.sync().await;
    for (irc, rooms) in [
        (&mut bob, "#rust,#go"),
        (&mut dave, "#rust,#go"),
        (&mut carol, "#rust"),
    ] {
        irc.send(&format!("JOIN {rooms}")).await;
        irc.sync().await;
    }
    bob.sync().await;
    dave.sync().await;
    alice.sync().await;

    bob.send("SETNAME :Robert Tables").await;
    assert_eq!(
        bob.sync().await,
        [":bob!~bob@127.0.0.1 SETNAME :Robert Tables"]
    );
    // Once for dave, who shares two rooms; nothing to carol (no capability) nor alice.
    assert_eq!(
        dave.sync().await,
        [":bob!~bob@127.0.0.1 SETNAME :Robert Tables"]
    );
    assert_eq!(carol.sync().await, Vec::<String>::new());
    assert_eq!(alice.sync().await, Vec::new());
    carol.send("WHOIS bob").await;
    carol.send("WHO bob").await;
    let seen = carol.sync().await;
    assert!(
        seen.contains(&":chat.localhost 311 carol bob ~bob 127.0.0.1 * :Robert Tables".into()),
        "{seen:?}"
    );
    assert!(
        seen.contains(
            &":chat.localhost 352 carol * ~bob 127.0.0.1 chat.localhost bob H :0 Robert Tables"
                .into()
        ),
        "{seen:?}"
    );

    // Refused: empty, too long, a control character; the name stays.
    let long = "x".repeat(namelen + 1);
    for bad in [
        "SETNAME :".to_owned(),
        format!("SETNAME :{long}"),
        "SETNAME :a\u{7}b".into(),
    ] {
        bob.send(&bad).await;
        let failed = bob.sync().await;
        assert_eq!(failed.len(), 1, "{bad}: {failed:?}");
        assert!(
            failed[0].starts_with(":chat.localhost FAIL SETNAME INVALID_REALNAME :"),
            "{failed:?}"
        );
    }
    bob.send(&format!("SETNAME :{}", "y".repeat(namelen))).await;
    assert_eq!(bob.sync().await.len(), 1, "NAMELEN bytes are taken");
    assert_eq!(dave.sync().await.len(), 1);

    // Without the capability the change is silent, but made, and told to dave.
    carol.send("SETNAME :Caroline").await;
    assert_eq!(carol.sync().await, Vec::<String>::new());
    assert_eq!(
        dave.sync().await,
        [":carol!~carol@127.0.0.1 SETNAME :Caroline"]
    );
    dave.send("WHOIS carol").await;
    let seen = dave.sync().await;
    assert!(
        seen.contains(&":chat.localhost 311 dave carol ~carol 127.0.0.1 * :Caroline".into()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn whox_answers_the_fields_asked_for_in_their_order() {
    let server = TestServer::start().await;
    server.register("dave", "correct horse").await;
    let mut bob = Irc::connect(&server).await;
    bob.send("NICK bob").await;
    bob.send("USER bob 0 * :Bob B").await;
    let welcome = bob
        .until(|l| l.contains(" 376 ") || l.contains(" 422 "))
        .await;
    assert!(
        isupport(&welcome).contains(&"WHOX".to_owned()),
        "{welcome:?}"
    );
    bob.join("#rust").await;
    let mut dave = login_identified(&server, "dave", "correct horse", "Dave Null", "").await;
    dave.join("#rust").await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.sync().await;
    bob.sync().await;

    bob.send("WHO #rust %rnauhtsicfdo,42").await;
    assert_eq!(
        bob.sync().await,
        [
            ":chat.localhost 354 bob 42 #rust alice 0 chat.localhost chat.localhost alice H 0 0 0 :alice",
            ":chat.localhost 354 bob 42 #rust ~bob 127.0.0.1 127.0.0.1 chat.localhost bob H@ 0 0 0 :Bob B",
            ":chat.localhost 354 bob 42 #rust ~dave 127.0.0.1 127.0.0.1 chat.localhost dave H 0 dave 0 :Dave Null",
            ":chat.localhost 315 bob #rust :End of /WHO list",
        ]
    );
    // Seconds idle are a number; no token asked, none given; a nickname by itself.
    bob.send("WHO dave %nl").await;
    bob.send("WHO dave %na").await;
    let lines = bob.sync().await;
    let idle = lines[0]
        .strip_prefix(":chat.localhost 354 bob dave ")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(idle.parse::<u64>().is_ok(), "{lines:?}");
    assert_eq!(
        lines[1..],
        [
            ":chat.localhost 315 bob dave :End of /WHO list",
            ":chat.localhost 354 bob dave dave",
            ":chat.localhost 315 bob dave :End of /WHO list",
        ]
    );
}

#[tokio::test]
async fn who_masks_glob_over_those_sharing_a_room_and_exact_nicknames_find_anyone() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.sync().await;
    let mut dave = server.login("dave").await;
    dave.send("/join #go").await;
    dave.send("/part #general").await;
    dave.sync().await;
    let mut carol = Irc::login(&server, "carol").await;
    let mut bob = Irc::login(&server, "bob").await;
    bob.join("#rust").await;
    carol.sync().await;

    let who = async |bob: &mut Irc, mask: &str| {
        bob.send(&format!("WHO {mask}")).await;
        let lines = bob.sync().await;
        assert_eq!(
            lines.last().map(String::as_str),
            Some(format!(":chat.localhost 315 bob {mask} :End of /WHO list").as_str()),
            "{lines:?}"
        );
        lines[..lines.len() - 1]
            .iter()
            .map(|l| {
                assert_eq!(numeric(l), Some("352"), "{l}");
                l.split(' ').nth(7).unwrap().to_owned()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(who(&mut bob, "a*").await, ["alice"]);
    assert_eq!(who(&mut bob, "?ob").await, ["bob"]);
    assert_eq!(
        who(&mut bob, "*").await,
        ["alice", "bob"],
        "not carol nor dave"
    );
    assert_eq!(who(&mut bob, "0").await, ["alice", "bob"]);
    assert_eq!(
        who(&mut bob, "C*").await,
        Vec::<String>::new(),
        "carol is invisible"
    );
    assert_eq!(who(&mut bob, "*!*@chat.localhost").await, ["alice"]);
    assert_eq!(who(&mut bob, "*!~BOB@127.0.0.*").await, ["bob"]);
    // An exact nickname finds anyone; no one, only 315.
    assert_eq!(who(&mut bob, "carol").await, ["carol"]);
    assert_eq!(who(&mut bob, "DAVE").await, ["dave"]);
    assert_eq!(who(&mut bob, "nobody").await, Vec::<String>::new());
    bob.send("WHO a*").await;
    assert_eq!(
        bob.sync().await[0],
        ":chat.localhost 352 bob * alice chat.localhost chat.localhost alice H :0 alice"
    );
}

#[tokio::test]
async fn a_notice_is_a_notice_to_irc_and_a_message_to_native_clients_and_in_history() {
    use chat_proto::ServerFrame;
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.sync().await;
    let mut bob = Irc::login(&server, "bob").await;
    let mut carol = Irc::login_with(&server, "carol", "echo-message").await;
    for irc in [&mut bob, &mut carol] {
        irc.join("#rust").await;
    }
    alice.sync().await;
    bob.sync().await;

    bob.send("NOTICE #rust :the build is green").await;
    bob.send("NOTICE carol :psst carol").await;
    bob.send("NOTICE alice :psst alice").await;
    // Nothing back without echo-message, and a NOTICE never gets an error.
    bob.send("NOTICE nobody :hello?").await;
    assert_eq!(bob.sync().await, Vec::<String>::new());
    assert_eq!(
        carol.sync().await,
        [
            ":bob!~bob@127.0.0.1 NOTICE #rust :the build is green",
            ":bob!~bob@127.0.0.1 NOTICE carol :psst carol",
        ]
    );
    carol.send("NOTICE #rust :echoed").await;
    assert_eq!(
        carol.sync().await,
        [":carol!~carol@127.0.0.1 NOTICE #rust :echoed"]
    );
    let frames = alice.sync().await;
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(
        msg_text(&frames[0], "#rust", "bob"),
        Some("the build is green")
    );
    assert!(
        matches!(&frames[1], ServerFrame::Private { from, text, .. }
            if from.as_str() == "bob" && text == "psst alice"),
        "{frames:?}"
    );
    assert_eq!(msg_text(&frames[2], "#rust", "carol"), Some("echoed"));

    // Kept as said: the room's history has both notices.
    alice.send("/history #rust").await;
    let (_, history) = alice
        .until(|f| matches!(f, ServerFrame::HistoryEnd { .. }))
        .await;
    let kept: Vec<_> = history
        .iter()
        .filter_map(|f| match f {
            ServerFrame::History(inner) => match &**inner {
                ServerFrame::Message { text, .. } => Some(text.as_str()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(kept, ["the build is green", "echoed"], "{history:?}");
}

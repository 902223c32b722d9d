//! The IRC door's history and answers: `draft/chathistory` paging over msgid and
//! timestamp references (the same ids native clients see), `batch`, and
//! `labeled-response`.

mod common;

use chat_proto::ServerFrame;
use common::irc::Irc;
use common::*;

/// What a client of chathistory asks for.
const CAPS: &str = "batch draft/chathistory message-tags server-time";

/// The value of tag `key` in a line's tags.
fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

/// The text of a PRIVMSG line.
fn text(line: &str) -> &str {
    line.rsplit_once(" :").map_or("", |(_, t)| t)
}

/// Sends a `CHATHISTORY` and returns its batch: the start line's target, and the
/// messages inside (checked to carry the batch's tag).
async fn page(irc: &mut Irc, request: &str) -> (String, Vec<String>) {
    irc.send(&format!("CHATHISTORY {request}")).await;
    let start = irc.line().await;
    let (_, batch) = start
        .split_once(" BATCH +")
        .unwrap_or_else(|| panic!("a batch starts: {start}"));
    let (id, rest) = batch.split_once(' ').unwrap();
    let target = rest
        .strip_prefix("chathistory ")
        .expect("a chathistory batch");
    let end = format!(" BATCH -{id}");
    let lines = irc.until(|l| l.ends_with(&end)).await;
    let messages: Vec<String> = lines[..lines.len() - 1].to_vec();
    for m in &messages {
        assert_eq!(tag(m, "batch"), Some(id), "{m}");
    }
    (target.to_owned(), messages)
}

fn texts(messages: &[String]) -> Vec<&str> {
    messages.iter().map(|m| text(m)).collect()
}

#[tokio::test]
async fn chathistory_pages_by_msgid_and_timestamp_with_the_native_ids() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #h").await;
    alice.sync().await;
    // Six messages; the native door names each by the id IRC clients see as msgid.
    let mut ids = Vec::new();
    for n in 1..=6 {
        alice.send(&format!("m{n}")).await;
        let (frame, _) = alice
            .until(|f| matches!(f, ServerFrame::Message { .. }))
            .await;
        let ServerFrame::Message { id, text, .. } = frame else {
            unreachable!()
        };
        assert_eq!(text, format!("m{n}"));
        ids.push(id);
    }

    let mut irc = Irc::login_with(&server, "bob", CAPS).await;
    irc.send("VERSION").await;
    let isupport = irc.sync().await;
    assert!(
        isupport
            .iter()
            .any(|l| l.contains(" CHATHISTORY=500 ") && l.contains(" MSGREFTYPES=msgid,timestamp ")),
        "{isupport:?}"
    );
    // No replay on join: the client asks.
    let joined = irc.join("#h").await;
    assert!(joined.iter().all(|l| !l.contains("PRIVMSG")), "{joined:?}");
    assert!(irc.sync().await.is_empty());

    let (target, latest) = page(&mut irc, "LATEST #h * 3").await;
    assert_eq!(target, "#h");
    assert_eq!(texts(&latest), ["m4", "m5", "m6"]);
    let msgids: Vec<u64> = latest
        .iter()
        .map(|m| tag(m, "msgid").unwrap().parse().unwrap())
        .collect();
    assert_eq!(msgids, ids[3..]);
    assert!(latest[0].contains(" :alice!alice@chat.localhost PRIVMSG #h :m4"));
    assert!(tag(&latest[0], "time").is_some());

    let id = |n: usize| ids[n - 1];
    let (_, before) = page(&mut irc, &format!("BEFORE #h msgid={} 10", id(3))).await;
    assert_eq!(texts(&before), ["m1", "m2"]);
    let (_, after) = page(&mut irc, &format!("AFTER #h msgid={} 2", id(1))).await;
    assert_eq!(texts(&after), ["m2", "m3"]);
    let (_, latest_after) = page(&mut irc, &format!("LATEST #h msgid={} 10", id(4))).await;
    assert_eq!(texts(&latest_after), ["m5", "m6"]);
    let (_, around) = page(&mut irc, &format!("AROUND #h msgid={} 3", id(4))).await;
    assert_eq!(texts(&around), ["m3", "m4", "m5"]);
    let (_, between) = page(
        &mut irc,
        &format!("BETWEEN #h msgid={} msgid={} 10", id(1), id(5)),
    )
    .await;
    assert_eq!(texts(&between), ["m2", "m3", "m4"]);
    // From the later reference backwards: the latest before it.
    let (_, back) = page(
        &mut irc,
        &format!("BETWEEN #h msgid={} msgid={} 2", id(5), id(1)),
    )
    .await;
    assert_eq!(texts(&back), ["m3", "m4"]);

    // Timestamps bound strictly: the messages before m4's time are those sent in an
    // earlier millisecond (messages may share one).
    let times: Vec<&str> = latest.iter().map(|m| tag(m, "time").unwrap()).collect();
    let (_, all) = page(&mut irc, "LATEST #h * 100").await;
    let all_times: Vec<String> = all
        .iter()
        .map(|m| tag(m, "time").unwrap().to_owned())
        .collect();
    let earlier: Vec<&str> = all
        .iter()
        .zip(&all_times)
        .filter(|(_, t)| t.as_str() < times[0])
        .map(|(m, _)| text(m))
        .collect();
    let (_, by_time) = page(&mut irc, &format!("BEFORE #h timestamp={} 100", times[0])).await;
    assert_eq!(texts(&by_time), earlier);
    let later: Vec<&str> = all
        .iter()
        .zip(&all_times)
        .filter(|(_, t)| t.as_str() > times[0])
        .map(|(m, _)| text(m))
        .collect();
    let (_, by_time) = page(&mut irc, &format!("AFTER #h timestamp={} 100", times[0])).await;
    assert_eq!(texts(&by_time), later);
    // Just past the last message's time, and just before the first's: all of them.
    let shifted = |time: &str, ms: i64| {
        let time: jiff::Timestamp = time.parse().unwrap();
        let time = time
            .checked_add(jiff::SignedDuration::from_millis(ms))
            .unwrap();
        format!("{time:.3}")
    };
    let last = all_times.last().unwrap();
    let (_, by_time) = page(
        &mut irc,
        &format!("BEFORE #h timestamp={} 100", shifted(last, 1)),
    )
    .await;
    assert_eq!(texts(&by_time), ["m1", "m2", "m3", "m4", "m5", "m6"]);
    let (_, by_time) = page(
        &mut irc,
        &format!("AFTER #h timestamp={} 100", shifted(&all_times[0], -1)),
    )
    .await;
    assert_eq!(texts(&by_time), ["m1", "m2", "m3", "m4", "m5", "m6"]);

    // A message said now is in the next page, under the id everyone sees.
    irc.send("PRIVMSG #h :from irc").await;
    let (seen, _) = alice
        .until(|f| matches!(f, ServerFrame::Message { .. }))
        .await;
    let ServerFrame::Message { id: said, .. } = seen else {
        unreachable!()
    };
    let (_, newest) = page(&mut irc, "LATEST #h * 1").await;
    assert_eq!(texts(&newest), ["from irc"]);
    assert_eq!(tag(&newest[0], "msgid"), Some(said.to_string().as_str()));
}

#[tokio::test]
async fn chathistory_refuses_what_it_cannot_answer() {
    let server = TestServer::start().await;
    let mut op = Irc::login_with(&server, "op", CAPS).await;
    op.join("#secret").await;
    op.send("MODE #secret +s").await;
    op.send("PRIVMSG #secret :hidden").await;
    op.sync().await;
    let (_, mine) = page(&mut op, "LATEST #secret * 10").await;
    assert_eq!(texts(&mine), ["hidden"]);

    let mut irc = Irc::login_with(&server, "eve", CAPS).await;
    let fails = [
        (
            "LATEST #secret * 10",
            "FAIL CHATHISTORY INVALID_TARGET LATEST #secret :",
        ),
        ("TARGETS a b 5", "FAIL CHATHISTORY INVALID_PARAMS TARGETS :"),
        (
            "BEFORE #h msgid=1",
            "FAIL CHATHISTORY NEED_MORE_PARAMS BEFORE :",
        ),
        (
            "BEFORE #h yesterday 5",
            "FAIL CHATHISTORY INVALID_PARAMS BEFORE yesterday :",
        ),
        (
            "AFTER #h msgid=1 lots",
            "FAIL CHATHISTORY INVALID_PARAMS AFTER lots :",
        ),
        // Private history belongs to accounts.
        (
            "LATEST op * 10",
            "FAIL CHATHISTORY INVALID_TARGET LATEST op :",
        ),
    ];
    for (request, fail) in fails {
        irc.send(&format!("CHATHISTORY {request}")).await;
        let lines = irc.sync().await;
        assert_eq!(lines.len(), 1, "{request}: {lines:?}");
        assert!(
            lines[0].starts_with(&format!(":chat.localhost {fail}")),
            "{request}: {lines:?}"
        );
    }
    // A room nobody spoke in: an empty batch.
    let (target, none) = page(&mut irc, "LATEST #quiet * 10").await;
    assert_eq!((target.as_str(), none.len()), ("#quiet", 0));
}

#[tokio::test]
async fn chathistory_of_a_private_conversation_needs_its_account() {
    let server = TestServer::start().await;
    server.register("carol", "open sesame").await;
    let mut dave = server.login("dave").await;
    let mut carol = Irc::connect(&server).await;
    carol.send(&format!("CAP REQ :{CAPS}")).await;
    carol.send("PASS :open sesame").await;
    carol.send("NICK carol").await;
    carol.send("USER carol 0 * :Carol").await;
    carol.send("CAP END").await;
    carol
        .until(|l| l.contains(" 422 ") || l.contains(" 376 "))
        .await;

    carol.send("PRIVMSG dave :hello dave").await;
    carol.sync().await;
    dave.until(|f| matches!(f, ServerFrame::Private { .. }))
        .await;
    dave.send("/msg carol hello carol").await;
    carol
        .until(|l| l.contains("PRIVMSG carol :hello carol"))
        .await;

    let (target, talk) = page(&mut carol, "LATEST dave * 10").await;
    assert_eq!(target, "dave");
    assert_eq!(texts(&talk), ["hello dave", "hello carol"]);
    assert!(talk[0].contains(" :carol!"), "{talk:?}");
    assert!(
        talk[1].contains(" :dave!dave@chat.localhost PRIVMSG carol :"),
        "{talk:?}"
    );
}

#[tokio::test]
async fn labeled_commands_get_their_label_back() {
    let server = TestServer::start().await;
    let caps = "batch draft/chathistory echo-message labeled-response message-tags";
    let mut irc = Irc::login_with(&server, "lab", caps).await;
    let mut other = Irc::login(&server, "other").await;
    other.join("#l").await;

    // One line: the line is labeled.
    irc.send("@label=p1 PING tok").await;
    assert_eq!(
        irc.line().await,
        "@label=p1 :chat.localhost PONG chat.localhost :tok"
    );
    irc.send("@label=a1 AWAY :out").await;
    let away = irc.line().await;
    assert!(
        away.starts_with("@label=a1 :chat.localhost 306 lab "),
        "{away}"
    );
    // No answer: ACK.
    irc.send("@label=n1 PONG x").await;
    assert_eq!(irc.line().await, "@label=n1 :chat.localhost ACK");
    // Several lines: a labeled-response batch.
    irc.send("@label=j1 JOIN #l").await;
    let start = irc.line().await;
    let batch = start
        .strip_prefix("@label=j1 :chat.localhost BATCH +")
        .and_then(|b| b.strip_suffix(" labeled-response"))
        .unwrap_or_else(|| panic!("{start}"))
        .to_owned();
    let lines = irc
        .until(|l| l == format!(":chat.localhost BATCH -{batch}"))
        .await;
    let inside = &lines[..lines.len() - 1];
    assert!(
        inside[0].contains(" :lab!~lab@127.0.0.1 JOIN #l"),
        "{inside:?}"
    );
    assert!(
        inside.last().unwrap().contains(" 366 lab #l "),
        "{inside:?}"
    );
    for line in inside {
        assert_eq!(tag(line, "batch"), Some(batch.as_str()), "{line}");
    }
    other.sync().await;
    // A message to a room: its echo is the answer, labeled, with the id the others see.
    irc.send("@label=m1 PRIVMSG #l :hi all").await;
    let echo = irc.line().await;
    assert_eq!(tag(&echo, "label"), Some("m1"), "{echo}");
    assert!(
        echo.ends_with(" :lab!~lab@127.0.0.1 PRIVMSG #l :hi all"),
        "{echo}"
    );
    let heard = other.sync().await;
    assert_eq!(heard.len(), 1);
    assert!(heard[0].ends_with("PRIVMSG #l :hi all"));
    // An error is an answer too.
    irc.send("@label=e1 PRIVMSG #nowhere :x").await;
    let error = irc.line().await;
    assert!(
        error.starts_with("@label=e1 :chat.localhost 403 lab #nowhere "),
        "{error}"
    );
    // A history page: the chathistory batch itself carries the label.
    irc.send("@label=h1 CHATHISTORY LATEST #l * 5").await;
    let start = irc.line().await;
    assert!(
        start.starts_with("@label=h1 :chat.localhost BATCH +")
            && start.ends_with(" chathistory #l"),
        "{start}"
    );
    let page = irc.until(|l| l.contains(" BATCH -")).await;
    assert_eq!(page.len(), 2, "{page:?}");
    assert!(page[0].ends_with("PRIVMSG #l :hi all"));
    // Unlabeled commands stay unlabeled.
    irc.send("PING plain").await;
    assert_eq!(
        irc.line().await,
        ":chat.localhost PONG chat.localhost :plain"
    );
    // Without the capability, a label is ignored.
    other.send("@label=x PING y").await;
    assert_eq!(other.line().await, ":chat.localhost PONG chat.localhost :y");
}

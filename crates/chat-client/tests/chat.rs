//! The client's core against a real in-process server, and against scripted fake
//! servers for what the real one never sends (control characters, silence, a close).

mod common;

use chat_client::{
    Backoff, ClientError, Connection, Connector, Options, Outcome, chat_reconnecting,
};
use chat_proto::{ErrorCode, LineCodec, ServerFrame};
use common::{Peer, TestServer, closed_port, within};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt, stream};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

fn opts(nick: &str) -> Options {
    let mut opts = Options::new(nick);
    opts.time_zone = jiff::tz::TimeZone::UTC;
    opts
}

async fn connect(addr: SocketAddr) -> TcpStream {
    within("connect", TcpStream::connect(addr))
        .await
        .expect("connect")
}

/// Runs the client over `lines` (which then end, as piped input does) and returns its
/// result and everything it showed.
async fn run_piped(
    addr: SocketAddr,
    opts: Options,
    lines: &[&str],
) -> (Result<Outcome, ClientError>, Vec<String>) {
    let conn = connect(addr).await;
    let input = stream::iter(lines.iter().map(|l| l.to_string()).collect::<Vec<_>>());
    let (tx, rx) = mpsc::unbounded();
    let result = within(
        "the client to finish",
        chat_client::run(conn, opts, input, tx),
    )
    .await;
    (result, rx.collect().await)
}

/// A client running in its own task, typed into and watched by the test.
struct Client {
    input: Option<mpsc::UnboundedSender<String>>,
    output: mpsc::UnboundedReceiver<String>,
    task: JoinHandle<Result<Outcome, ClientError>>,
}

impl Client {
    async fn start(addr: SocketAddr, nick: &str) -> Client {
        let conn = connect(addr).await;
        let (input, input_rx) = mpsc::unbounded();
        let (output_tx, output) = mpsc::unbounded();
        let task = tokio::spawn(chat_client::run(conn, opts(nick), input_rx, output_tx));
        Client {
            input: Some(input),
            output,
            task,
        }
    }

    /// A client that reconnects (quickly, for the tests) when the connection is lost.
    async fn start_reconnecting(addr: SocketAddr, nick: &str) -> Client {
        let connector = Connector::plain(addr.to_string(), common::WAIT);
        let conn = within("connect", connector.connect())
            .await
            .expect("connect");
        let (input, input_rx) = mpsc::unbounded();
        let (output_tx, output) = mpsc::unbounded();
        let opts = opts(nick);
        let backoff = Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(100),
            attempts: 100,
        };
        let task = tokio::spawn(async move {
            let mut connection = Connection::new(conn, &opts);
            connection.register(&opts.nick).await?;
            chat_reconnecting(connection, &connector, &opts, &backoff, input_rx, output_tx).await
        });
        Client {
            input: Some(input),
            output,
            task,
        }
    }

    fn type_line(&self, line: &str) {
        self.input
            .as_ref()
            .expect("input open")
            .unbounded_send(line.to_owned())
            .expect("client running");
    }

    /// Reads what the client shows until a line contains `needle`; returns that line.
    async fn wait_for(&mut self, needle: &str) -> String {
        within(needle, async {
            loop {
                match self.output.next().await {
                    Some(line) if line.contains(needle) => return line,
                    Some(_) => {}
                    None => panic!("client ended before showing {needle:?}"),
                }
            }
        })
        .await
    }

    /// Reads what the client shows until every needle has been in some line, in any
    /// order (a private message and a room event travel different paths).
    async fn wait_for_all(&mut self, needles: &[&str]) {
        let mut missing: Vec<&str> = needles.to_vec();
        within(&format!("{missing:?}"), async {
            while !missing.is_empty() {
                let Some(line) = self.output.next().await else {
                    panic!("client ended before showing {missing:?}");
                };
                missing.retain(|needle| !line.contains(needle));
            }
        })
        .await
    }

    /// Ends the input (if still open) and waits for the client to finish.
    async fn finish(mut self) -> (Result<Outcome, ClientError>, Vec<String>) {
        self.input = None;
        let result = within("the client to finish", self.task)
            .await
            .expect("client task");
        (result, self.output.collect().await)
    }
}

fn shows(output: &[String], needle: &str) -> bool {
    output.iter().any(|line| line.contains(needle))
}

#[tokio::test]
async fn piped_lines_are_all_echoed_before_a_clean_exit() {
    let server = TestServer::start().await;
    let lines = [
        "hello",
        "/me waves",
        "//slash",
        "",
        "/join nohash",
        "bye now",
    ];
    let (result, output) = run_piped(server.addr, opts("alice"), &lines).await;
    assert_eq!(
        result.expect("clean exit"),
        Outcome::EndOfInput,
        "{output:#?}"
    );
    for needle in [
        "(you are alice)",
        "[#general] --> alice joined",
        "-- in #general: alice",
        "-- now talking in #general",
        "[#general] <alice> hello",
        "[#general] * alice waves",
        "[#general] <alice> /slash",
        "!! ROOM_INVALID: ",
        "[#general] <alice> bye now",
    ] {
        assert!(
            shows(&output, needle),
            "{needle:?} missing from {output:#?}"
        );
    }
    // The closing /ping is the client's own business.
    assert!(!shows(&output, "pong"), "{output:#?}");
    assert!(
        output.last().unwrap().starts_with("-- bye: "),
        "{output:#?}"
    );
}

#[tokio::test]
async fn quit_typed_by_the_user_ends_cleanly() {
    let server = TestServer::start().await;
    let lines = ["hello", "/quit see you", "never sent"];
    let (result, output) = run_piped(server.addr, opts("alice"), &lines).await;
    assert_eq!(result.expect("clean exit"), Outcome::Quit);
    assert!(shows(&output, "<alice> hello"), "{output:#?}");
    assert!(!shows(&output, "never sent"), "{output:#?}");
    assert_eq!(output.last().unwrap(), "-- bye: see you");
}

#[tokio::test]
async fn other_users_are_shown() {
    let server = TestServer::start().await;
    let mut bob = Peer::connect(server.addr, "bob").await;
    let mut alice = Client::start(server.addr, "alice").await;
    alice.wait_for("-- now talking in #general").await;
    bob.expect(
        "alice's JOIN",
        |f| matches!(f, ServerFrame::Join { nick, .. } if nick.as_str() == "alice"),
    )
    .await;

    alice.type_line("hi bob");
    alice.wait_for("[#general] <alice> hi bob").await;
    bob.expect("alice's message", |f| {
        matches!(f, ServerFrame::Message { from, text, .. } if from.as_str() == "alice" && text == "hi bob")
    })
    .await;

    bob.send("hello alice").await;
    bob.send("/me waves").await;
    bob.send("/msg alice psst").await;
    bob.send("/nick robert").await;
    bob.send("/quit later").await;
    alice
        .wait_for_all(&[
            "[#general] <bob> hello alice",
            "[#general] * bob waves",
            "[pm] <bob -> alice> psst",
            "[#general] -- bob is now known as robert",
            "[#general] <-- robert quit (later)",
        ])
        .await;

    alice.type_line("/who");
    alice.wait_for("-- in #general: alice").await;

    let (result, _) = alice.finish().await;
    assert_eq!(result.expect("clean exit"), Outcome::EndOfInput);
}

#[tokio::test]
async fn room_governance_is_shown_and_a_kick_leaves_the_room() {
    let server = TestServer::start().await;
    let mut bob = Peer::connect(server.addr, "bob").await;
    let mut alice = Client::start(server.addr, "alice").await;
    alice.wait_for("-- now talking in #general").await;

    // bob makes #den, so he is its operator; alice joins it.
    bob.send("/join #den").await;
    bob.expect(
        "bob's JOIN",
        |f| matches!(f, ServerFrame::Join { room, .. } if room.as_str() == "#den"),
    )
    .await;
    alice.type_line("/join #den");
    alice.wait_for("-- in #den: @bob alice").await;

    bob.send("/voice #den alice").await;
    alice.wait_for("[#den] -- bob sets mode +v alice").await;
    alice.type_line("/who");
    alice.wait_for("-- in #den: @bob +alice").await;
    alice.type_line("/mode");
    alice.wait_for("-- #den modes: +").await;
    alice.type_line("/kick bob");
    alice.wait_for("!! CHANOP_NEEDED: ").await;

    // Kicked from the current room: out of it, and talking in the next one.
    bob.send("/kick #den alice enough").await;
    alice
        .wait_for("[#den] <-- you were kicked by bob (enough)")
        .await;
    alice.wait_for("-- now talking in #general").await;
    alice.type_line("still here");
    alice.wait_for("[#general] <alice> still here").await;

    // An invitation to an invite-only room says how to accept it.
    bob.send("/join #inv").await;
    bob.send("/mode #inv +i").await;
    bob.send("/invite alice #inv").await;
    alice
        .wait_for("-- bob invites you to #inv (/join #inv to accept)")
        .await;
    alice.type_line("/join #inv");
    alice.wait_for("[#inv] --> alice joined").await;
    alice.type_line("/whois bob");
    let whois = alice.wait_for("-- bob connected ").await;
    assert!(whois.contains(" @#inv"), "{whois}");

    let (result, _) = alice.finish().await;
    assert_eq!(result.expect("clean exit"), Outcome::EndOfInput);
}

#[tokio::test]
async fn a_taken_nickname_is_an_error_when_not_interactive() {
    let server = TestServer::start().await;
    let _alice = Peer::connect(server.addr, "alice").await;
    let (result, output) = run_piped(server.addr, opts("ALICE"), &["hello"]).await;
    match result {
        Err(ClientError::NickRefused { nick, code, .. }) => {
            assert_eq!(nick, "ALICE");
            assert_eq!(code, ErrorCode::NickTaken);
        }
        other => panic!("expected NickRefused, got {other:?}"),
    }
    assert!(output.is_empty(), "{output:#?}");
}

#[tokio::test]
async fn another_nickname_can_be_tried_on_the_same_connection() {
    let server = TestServer::start().await;
    let _alice = Peer::connect(server.addr, "alice").await;
    let opts = opts("alice");
    let mut connection = Connection::new(connect(server.addr).await, &opts);

    let refused = within("refusal", connection.register("alice")).await;
    assert!(
        matches!(
            &refused,
            Err(ClientError::NickRefused {
                code: ErrorCode::NickTaken,
                ..
            })
        ),
        "{refused:?}"
    );
    // Refused locally: the server is not asked, and the connection stays usable.
    let refused = within("refusal", connection.register("1abc")).await;
    assert!(
        matches!(
            &refused,
            Err(ClientError::NickRefused {
                code: ErrorCode::NickInvalid,
                ..
            })
        ),
        "{refused:?}"
    );
    let nick = within("welcome", connection.register("alice2"))
        .await
        .expect("accepted");
    assert_eq!(nick.as_str(), "alice2");

    let (tx, rx) = mpsc::unbounded();
    let input = stream::iter(["hi".to_owned()]);
    let outcome = within("the chat", connection.chat(input, tx))
        .await
        .expect("clean exit");
    assert_eq!(outcome, Outcome::EndOfInput);
    let output: Vec<String> = rx.collect().await;
    assert!(shows(&output, "(you are alice2)"), "{output:#?}");
    assert!(shows(&output, "<alice2> hi"), "{output:#?}");
}

#[tokio::test]
async fn server_shutdown_is_an_error() {
    let mut server = TestServer::start().await;
    let mut alice = Client::start(server.addr, "alice").await;
    alice.wait_for("-- now talking in #general").await;
    server.shutdown().await;
    let (result, _) = alice.finish().await;
    match result {
        Err(ClientError::Bye { reason }) => assert_eq!(reason, "server shutting down"),
        other => panic!("expected Bye, got {other:?}"),
    }
}

#[tokio::test]
async fn connection_refused_is_an_error() {
    let addr = closed_port().await.to_string();
    let result = within(
        "connect",
        chat_client::connect(&addr, Duration::from_secs(5)),
    )
    .await;
    match result {
        Err(e @ ClientError::Connect { .. }) => {
            assert_eq!(e.to_string(), format!("cannot connect to {addr}"));
        }
        other => panic!("expected Connect, got {other:?}"),
    }
}

// Fake servers: a listener and a script, for what the real server never does.

type Wire = Framed<TcpStream, LineCodec>;

/// Serves one connection with `script` and returns the address to connect to.
async fn fake_server<F, Fut>(script: F) -> SocketAddr
where
    F: FnOnce(Wire) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        script(Framed::new(stream, LineCodec::default())).await;
    });
    addr
}

async fn send(wire: &mut Wire, line: &str) {
    wire.send(line).await.expect("fake server write");
}

async fn recv(wire: &mut Wire) -> Option<String> {
    wire.next().await.map(|l| l.expect("read").expect("line"))
}

/// `NICK`, the nickname, `WELCOME`.
async fn fake_handshake(wire: &mut Wire) {
    send(wire, "NICK").await;
    let nick = recv(wire).await.expect("a nickname");
    send(wire, &format!("WELCOME {nick} :hi {nick}")).await;
}

/// Answers `/ping` and `/quit` as the real server does; ignores anything else.
async fn fake_replies(wire: &mut Wire) {
    while let Some(line) = recv(wire).await {
        if let Some(token) = line.strip_prefix("/ping ") {
            send(wire, &format!("PONG :{token}")).await;
        } else if line == "/quit" {
            send(wire, "BYE :quit").await;
            return;
        }
    }
}

#[tokio::test]
async fn control_characters_from_the_server_are_escaped() {
    let addr = fake_server(|mut wire| async move {
        fake_handshake(&mut wire).await;
        let t = "2026-11-24T12:01:00.000Z";
        send(&mut wire, &format!("MSG #general bob {t} 1 :\x1b[2Jevil")).await;
        send(
            &mut wire,
            &format!("PART #general bob {t} 1 :\x1b]0;title\x07"),
        )
        .await;
        send(&mut wire, "WHAT \x1b[31mis this").await;
        send(&mut wire, "ERR \x1bX :\u{202e}reversed").await;
        fake_replies(&mut wire).await;
    })
    .await;
    let (result, output) = run_piped(addr, opts("alice"), &[]).await;
    assert_eq!(
        result.expect("clean exit"),
        Outcome::EndOfInput,
        "{output:#?}"
    );
    assert!(
        shows(&output, "12:01 [#general] <bob> \\x1b[2Jevil"),
        "{output:#?}"
    );
    assert!(
        shows(&output, "<-- bob left (\\x1b]0;title\\x07)"),
        "{output:#?}"
    );
    assert!(shows(&output, "?? WHAT \\x1b[31mis this ("), "{output:#?}");
    assert!(
        shows(&output, "!! \\x1bX: \\u{202e}reversed"),
        "{output:#?}"
    );
    for line in &output {
        assert_eq!(chat_proto::text::first_forbidden(line), None, "{line:?}");
    }
}

#[tokio::test]
async fn a_burst_of_frames_is_shown_whole_and_in_order() {
    // Far more frames than the client shows in one batch, in one write.
    const N: usize = 2000;
    let addr = fake_server(|mut wire| async move {
        fake_handshake(&mut wire).await;
        let t = "2026-11-24T12:01:00.000Z";
        for i in 0..N {
            wire.feed(format!("MSG #general bob {t} 1 :burst {i}"))
                .await
                .expect("feed");
        }
        SinkExt::<String>::flush(&mut wire).await.expect("flush");
        fake_replies(&mut wire).await;
    })
    .await;
    let (result, output) = run_piped(addr, opts("alice"), &[]).await;
    assert_eq!(result.expect("clean exit"), Outcome::EndOfInput);
    let bursts: Vec<&String> = output.iter().filter(|l| l.contains("burst")).collect();
    assert_eq!(bursts.len(), N);
    for (i, line) in bursts.iter().enumerate() {
        assert!(
            line.ends_with(&format!("<bob> burst {i}")),
            "{line:?} at {i}"
        );
    }
}

#[tokio::test]
async fn server_closing_the_connection_is_an_error() {
    let addr = fake_server(|mut wire| async move {
        fake_handshake(&mut wire).await;
        // Read one line, then hang up without BYE.
        let _ = recv(&mut wire).await;
    })
    .await;
    let alice = Client::start(addr, "alice").await;
    alice.type_line("anyone there?");
    let (result, _) = alice.finish().await;
    assert!(matches!(result, Err(ClientError::Closed)), "{result:?}");
}

#[tokio::test]
async fn server_closing_during_the_handshake_is_an_error() {
    let addr = fake_server(|mut wire| async move {
        send(&mut wire, "NICK").await;
        let _ = recv(&mut wire).await;
    })
    .await;
    let (result, _) = run_piped(addr, opts("alice"), &[]).await;
    assert!(matches!(result, Err(ClientError::Closed)), "{result:?}");
}

#[tokio::test]
async fn bye_without_quit_is_an_error_with_the_reason_escaped() {
    let addr = fake_server(|mut wire| async move {
        fake_handshake(&mut wire).await;
        send(&mut wire, "BYE :going \x1b[2J down").await;
        // Keep the connection open: the BYE alone must end the client.
        let _ = recv(&mut wire).await;
    })
    .await;
    let alice = Client::start(addr, "alice").await;
    let (result, _) = alice.finish().await;
    match result {
        Err(ClientError::Bye { reason }) => assert_eq!(reason, "going \\x1b[2J down"),
        other => panic!("expected Bye, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = fake_server(|wire| async move {
        // Hold the connection open and say nothing until the test ends.
        let _wire = wire;
        let _ = hold_rx.await;
    })
    .await;
    let mut opts = opts("alice");
    opts.timeout = Duration::from_millis(200);
    let (result, _) = run_piped(addr, opts, &["hello"]).await;
    assert!(
        matches!(result, Err(ClientError::Timeout { .. })),
        "{result:?}"
    );
    drop(hold_tx);
}

#[tokio::test]
async fn a_missing_pong_times_out() {
    let addr = fake_server(|mut wire| async move {
        fake_handshake(&mut wire).await;
        // Read everything, answer nothing.
        while recv(&mut wire).await.is_some() {}
    })
    .await;
    let mut opts = opts("alice");
    opts.timeout = Duration::from_millis(200);
    let (result, _) = run_piped(addr, opts, &["hello"]).await;
    match result {
        Err(ClientError::Timeout { waiting_for, .. }) => {
            assert!(waiting_for.contains("PONG"), "{waiting_for}")
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

// --reconnect, with piped input (a channel) and a real server that goes away.

#[tokio::test]
async fn reconnecting_restores_rooms_and_sends_what_was_typed_offline() {
    let mut first = TestServer::start().await;
    let addr = first.addr;
    let mut alice = Client::start_reconnecting(addr, "alice").await;
    alice.type_line("/join #rust");
    alice.type_line("/join #ops");
    alice.type_line("/join #rust");
    // Who makes a room is its operator.
    alice.wait_for("-- in #ops: @alice").await;
    alice.wait_for("-- now talking in #rust").await;

    first.shutdown().await;
    alice
        .wait_for("!! connection lost: the server closed the connection: server shutting down")
        .await;
    alice
        .wait_for("-- reconnecting in 0.01s (attempt 1 of 100)...")
        .await;
    alice.type_line("typed while offline");
    alice
        .wait_for("-- not connected: the line will be sent once reconnected")
        .await;
    alice
        .wait_for("!! reconnecting failed: cannot connect to")
        .await;

    let _second = TestServer::start_on(addr).await;
    alice
        .wait_for("-- reconnected as alice; joining your rooms")
        .await;
    // The rooms come back, the current one last; then the line typed offline goes there.
    alice
        .wait_for_all(&["[#ops] --> alice joined", "[#rust] --> alice joined"])
        .await;
    alice.wait_for("-- now talking in #rust").await;
    alice.wait_for("[#rust] <alice> typed while offline").await;

    let (result, _) = alice.finish().await;
    assert_eq!(result.expect("clean exit"), Outcome::EndOfInput);
}

#[tokio::test]
async fn reconnecting_waits_for_the_old_nickname_to_be_free() {
    let mut first = TestServer::start().await;
    let addr = first.addr;
    let mut alice = Client::start_reconnecting(addr, "alice").await;
    alice.wait_for("-- now talking in #general").await;
    first.shutdown().await;

    // On the new server someone still holds the name, as a server that has not noticed
    // the old connection's end would.
    let second = TestServer::start_on(addr).await;
    let mut holder = Peer::connect(second.addr, "alice").await;
    alice.wait_for("NICK_TAKEN").await;
    holder.send("/quit").await;
    holder
        .expect("BYE", |f| matches!(f, ServerFrame::Bye { .. }))
        .await;
    alice.wait_for("-- reconnected as alice").await;
    alice.wait_for("(you are alice)").await;
    let (result, _) = alice.finish().await;
    assert_eq!(result.expect("clean exit"), Outcome::EndOfInput);
}

#[tokio::test]
async fn quit_while_offline_ends_at_once() {
    let mut server = TestServer::start().await;
    let mut alice = Client::start_reconnecting(server.addr, "alice").await;
    alice.wait_for("-- now talking in #general").await;
    server.shutdown().await;
    alice.wait_for("-- reconnecting in").await;
    alice.type_line("/quit");
    let (result, output) = alice.finish().await;
    assert_eq!(result.expect("clean exit"), Outcome::Quit);
    assert_eq!(
        output.last().map(String::as_str),
        Some("-- bye"),
        "{output:#?}"
    );
}

#[tokio::test]
async fn reconnecting_gives_up_after_its_attempts() {
    let mut server = TestServer::start().await;
    let connector = Connector::plain(server.addr.to_string(), common::WAIT);
    let conn = within("connect", connector.connect())
        .await
        .expect("connect");
    let opts = opts("alice");
    let mut connection = Connection::new(conn, &opts);
    within("welcome", connection.register("alice"))
        .await
        .expect("accepted");
    server.shutdown().await;
    let backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
        attempts: 3,
    };
    let (tx, rx) = mpsc::unbounded();
    // The input stays open: only the failed attempts end the chat.
    let (_input, input_rx) = mpsc::unbounded::<String>();
    let result = within(
        "giving up",
        chat_reconnecting(connection, &connector, &opts, &backoff, input_rx, tx),
    )
    .await;
    match result {
        Err(ClientError::GaveUp { attempts: 3, last }) => {
            assert!(matches!(*last, ClientError::Connect { .. }), "{last:?}")
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    let output: Vec<String> = rx.collect().await;
    let attempts = output
        .iter()
        .filter(|l| l.starts_with("-- reconnecting in"))
        .count();
    assert_eq!(attempts, 3, "{output:#?}");
}

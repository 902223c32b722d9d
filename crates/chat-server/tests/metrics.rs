//! The metrics move with real traffic: clients over TCP, the text read back through
//! `Server::metrics_text` and parsed as Prometheus does. Each check is exact where the
//! protocol orders the count before what the client sees, and bounded where it cannot.

mod common;

use chat_proto::{ErrorCode, LineCodec, ServerFrame};
use chat_server::{Config, Server, tls};
use common::{TestServer, WAIT};
use futures::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

/// The samples of a scrape: each sample line's name with its labels, and its value.
struct Scrape(Vec<(String, f64)>);

impl Scrape {
    fn of(server: &Server) -> Scrape {
        let text = server.metrics_text();
        assert!(
            text.ends_with("# EOF\n"),
            "an OpenMetrics exposition: {text}"
        );
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                let (name, value) = line
                    .rsplit_once(' ')
                    .unwrap_or_else(|| panic!("a sample line: {line:?}"));
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("a number in {line:?}"));
                (name.to_owned(), value)
            })
            .collect();
        Scrape(samples)
    }

    /// The value of the sample `name` (with its labels, as written); panics if absent.
    fn get(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no sample {name} in {:?}", self.0))
    }
}

/// How much `name` moved from `before` to `after`.
fn moved(before: &Scrape, after: &Scrape, name: &str) -> f64 {
    after.get(name) - before.get(name)
}

#[tokio::test]
async fn an_irc_senders_own_message_is_no_delivery_without_echo_message() {
    use common::irc::Irc;
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #m").await;
    alice.sync().await;
    let mut plain = Irc::login(&server, "plain").await;
    let mut echoed = Irc::login_with(&server, "echoed", "echo-message").await;
    for irc in [&mut plain, &mut echoed] {
        irc.join("#m").await;
    }
    alice.sync().await;
    plain.sync().await;
    echoed.sync().await;
    let before = Scrape::of(&server.server);
    // Without echo-message the sender gets nothing back: two deliveries, not three.
    plain.send("PRIVMSG #m :one").await;
    plain.sync().await;
    alice
        .until(|f| matches!(f, ServerFrame::Message { .. }))
        .await;
    echoed.until(|l| l.ends_with("PRIVMSG #m :one")).await;
    let after = Scrape::of(&server.server);
    assert_eq!(moved(&before, &after, "chat_deliveries_total"), 2.0);
    // With it, the echo is a delivery.
    echoed.send("PRIVMSG #m :two").await;
    echoed.until(|l| l.ends_with("PRIVMSG #m :two")).await;
    alice
        .until(|f| matches!(f, ServerFrame::Message { .. }))
        .await;
    plain.until(|l| l.ends_with("PRIVMSG #m :two")).await;
    let later = Scrape::of(&server.server);
    assert_eq!(moved(&after, &later, "chat_deliveries_total"), 3.0);
}

const ACCEPTED_TCP: &str = "chat_connections_accepted_total{door=\"tcp\"}";
const OPEN_TCP: &str = "chat_connections_open{door=\"tcp\"}";

#[tokio::test]
async fn messages_move_deliveries_bytes_and_room_events() {
    let server = TestServer::start().await;
    let start = Scrape::of(&server.server);
    assert_eq!(start.get(ACCEPTED_TCP), 0.0);
    assert_eq!(start.get("chat_sessions"), 0.0);

    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    // Counted at accept and at the end of the handshake: before NICK and WELCOME.
    let joined = Scrape::of(&server.server);
    assert_eq!(moved(&start, &joined, ACCEPTED_TCP), 2.0);
    assert_eq!(joined.get(OPEN_TCP), 2.0);
    assert_eq!(
        moved(&start, &joined, "chat_handshakes_completed_total"),
        2.0
    );
    assert_eq!(joined.get("chat_sessions"), 2.0);
    assert_eq!(joined.get("chat_rooms"), 1.0);
    alice.sync().await;
    bob.sync().await;

    let before = Scrape::of(&server.server);
    let count = 20;
    for i in 0..count {
        alice.send(&format!("message {i}")).await;
    }
    // Everything alice's lines caused has been delivered to both once each sees its PONG.
    let mut received = 0;
    for client in [&mut alice, &mut bob] {
        let frames = client.sync().await;
        let messages: Vec<_> = frames
            .iter()
            .filter(|f| matches!(f, ServerFrame::Message { .. }))
            .collect();
        assert_eq!(messages.len(), count);
        received += messages.iter().map(|f| f.to_bytes().len()).sum::<usize>();
    }
    // A second round trip: each session wrote the batch before reading this line, so
    // the bytes of everything before the first PONG are counted now.
    alice.sync().await;
    bob.sync().await;
    let after = Scrape::of(&server.server);

    let published = moved(&before, &after, "chat_room_events_total");
    assert_eq!(published, count as f64, "one room event per message");
    let deliveries = moved(&before, &after, "chat_deliveries_total");
    assert_eq!(
        deliveries,
        2.0 * count as f64,
        "each message to both members"
    );
    let bytes = moved(&before, &after, "chat_written_bytes_total");
    // The messages, plus at most the PONG lines around them.
    assert!(
        bytes >= received as f64 && bytes <= (received + 4 * 20) as f64,
        "{bytes} bytes counted for {received} bytes of messages"
    );
    assert_eq!(moved(&before, &after, "chat_lagged_total"), 0.0);
}

#[tokio::test]
async fn a_handshake_given_up_counts_as_failed_and_its_connection_closes() {
    let server = TestServer::start().await;
    let _alice = server.login("alice").await;
    let before = Scrape::of(&server.server);
    let quitter = server.connect().await;
    drop(quitter);
    // A connection's task ends after its handshake is counted; wait for it.
    tokio::time::timeout(WAIT, server.server.wait_until(|s| s.connections == 1))
        .await
        .expect("the connection closes");
    let after = Scrape::of(&server.server);
    assert_eq!(moved(&before, &after, ACCEPTED_TCP), 1.0);
    assert_eq!(moved(&before, &after, "chat_handshakes_failed_total"), 1.0);
    assert_eq!(
        moved(&before, &after, "chat_handshakes_completed_total"),
        0.0
    );
    assert_eq!(after.get(OPEN_TCP), 1.0, "only alice's connection is open");
}

#[tokio::test]
async fn password_checks_and_failures_are_counted() {
    let server = TestServer::start().await;
    server.register("carol", "correct horse").await;
    let before = Scrape::of(&server.server);

    let mut guesser = server.connect().await;
    guesser.send("carol").await;
    assert_eq!(guesser.recv().await, ServerFrame::PassPrompt);
    guesser.send("wrong horse").await;
    assert!(matches!(
        guesser.recv().await,
        ServerFrame::Error {
            code: ErrorCode::PasswordWrong,
            ..
        }
    ));
    let wrong = Scrape::of(&server.server);
    assert_eq!(moved(&before, &wrong, "chat_password_checks_total"), 1.0);
    assert_eq!(moved(&before, &wrong, "chat_password_failures_total"), 1.0);

    // The right one, after the throttle's delay for the wrong one.
    assert_eq!(guesser.recv().await, ServerFrame::NickPrompt);
    guesser.send("carol").await;
    assert_eq!(guesser.recv().await, ServerFrame::PassPrompt);
    guesser.send("correct horse").await;
    assert!(matches!(guesser.recv().await, ServerFrame::Welcome { .. }));
    let right = Scrape::of(&server.server);
    assert_eq!(moved(&before, &right, "chat_password_checks_total"), 2.0);
    assert_eq!(moved(&before, &right, "chat_password_failures_total"), 1.0);
}

#[tokio::test]
async fn refusals_are_counted_by_reason() {
    let config = Config {
        max_connections: Some(1),
        max_rooms_total: 1,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut alice = server.login("alice").await;
    let reason = |r: &str| format!("chat_refusals_total{{reason=\"{r}\"}}");
    let before = Scrape::of(&server.server);

    // #general exists, and is the one room allowed.
    alice.send("/join #other").await;
    let (refused, _) = alice
        .until(|f| matches!(f, ServerFrame::Error { .. }))
        .await;
    assert!(matches!(
        refused,
        ServerFrame::Error {
            code: ErrorCode::RoomsFull,
            ..
        }
    ));
    let rooms_full = Scrape::of(&server.server);
    assert_eq!(moved(&before, &rooms_full, &reason("rooms_full")), 1.0);
    assert_eq!(moved(&before, &rooms_full, &reason("server_full")), 0.0);

    // The second connection is past the limit of one.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut late = common::Client::new(stream);
    assert!(matches!(
        late.recv().await,
        ServerFrame::Error {
            code: ErrorCode::ServerFull,
            ..
        }
    ));
    let full = Scrape::of(&server.server);
    assert_eq!(moved(&before, &full, &reason("server_full")), 1.0);
    assert_eq!(moved(&before, &full, &reason("per_address")), 0.0);
    assert_eq!(
        moved(&before, &full, ACCEPTED_TCP),
        0.0,
        "a refused connection is not counted as accepted"
    );
    assert_eq!(full.get(OPEN_TCP), 1.0);
}

#[tokio::test]
async fn a_stopped_reader_counts_as_a_slow_consumer() {
    let config = Config {
        write_timeout: Duration::from_millis(500),
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let _stopped = server.login_small_buffer("stopped").await;
    let mut observer = server.login("observer").await;
    let before = Scrape::of(&server.server);
    // About a megabyte: more than the stopped member's socket buffers hold.
    let flooder = server.login("flooder").await;
    server.flood_general(flooder, 6000, 100).await;
    // Counted before the session ends, so before its rooms hear its QUIT.
    observer
        .until(|f| matches!(f, ServerFrame::Quit { nick, .. } if nick.as_str() == "stopped"))
        .await;
    let after = Scrape::of(&server.server);
    assert_eq!(moved(&before, &after, "chat_slow_consumers_total"), 1.0);
}

#[tokio::test]
async fn a_member_that_falls_behind_is_counted_as_refilled_not_lagged() {
    // A tiny room buffer, and a member whose socket takes almost nothing until it reads.
    let config = Config {
        room_capacity: 16,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut slow = server.login_small_buffer("slow").await;
    slow.sync().await;
    let before = Scrape::of(&server.server);
    const COUNT: usize = 1000;
    // 2 MB: far more than the kernel's buffers between the server and the member.
    let flooder = server.login("flooder").await;
    server.flood_general(flooder, COUNT, 2000).await;
    let mut messages = 0;
    while messages < COUNT {
        match slow.recv().await {
            ServerFrame::Message { .. } => messages += 1,
            ServerFrame::Lagged { .. } => panic!("the store refills every message"),
            _ => {} // the flooder's JOIN and QUIT
        }
    }
    let after = Scrape::of(&server.server);
    assert!(moved(&before, &after, "chat_refills_total") >= 1.0);
    assert_eq!(moved(&before, &after, "chat_lagged_total"), 0.0);
    assert_eq!(moved(&before, &after, "chat_lost_deliveries_total"), 0.0);
    // The member's copies, refilled or live, and at least the flooder's echoes before
    // it left.
    assert!(moved(&before, &after, "chat_deliveries_total") >= COUNT as f64);
}

#[tokio::test]
async fn tls_connections_are_counted_at_their_own_door() {
    let names = ["localhost".to_owned()];
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = tls::write_self_signed(dir.path(), &names, false).unwrap();
    let acceptor = tls::acceptor(&cert_path, &key_path).unwrap();
    let cert = CertificateDer::from_pem_file(&cert_path).unwrap();
    let any_port = common::loopback();
    let plain = chat_server::listen(any_port, 128).unwrap();
    let secure = chat_server::listen(any_port, 128).unwrap();
    let tls_addr = secure.local_addr().unwrap();
    let server = Server::new(Config::unthrottled()).unwrap();
    let runner = server.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        runner
            .run_with(plain, Some((secure, acceptor)), shutdown)
            .await
    });

    // A client that completes the TLS handshake and reads the prompt.
    let tcp = TcpStream::connect(tls_addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let connecting = common::connector(&[cert]).connect(name, tcp);
    let stream = tokio::time::timeout(WAIT, connecting)
        .await
        .unwrap()
        .unwrap();
    let mut lines = FramedRead::new(stream, LineCodec::new(chat_proto::CLIENT_MAX_LINE));
    let prompt = tokio::time::timeout(WAIT, lines.next()).await.unwrap();
    assert_eq!(prompt.unwrap().unwrap().unwrap(), "NICK");
    let scrape = Scrape::of(&server);
    assert_eq!(
        scrape.get("chat_connections_accepted_total{door=\"tls\"}"),
        1.0
    );
    assert_eq!(scrape.get("chat_connections_open{door=\"tls\"}"), 1.0);
    assert_eq!(scrape.get(ACCEPTED_TCP), 0.0);

    // A client that speaks plain text to the TLS port: its TLS handshake fails.
    let mut confused = TcpStream::connect(tls_addr).await.unwrap();
    confused.write_all(b"NICK alice\n").await.unwrap();
    // The server closes it (so it was accepted), then its task ends (so it was counted).
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        WAIT,
        tokio::io::AsyncReadExt::read_to_end(&mut confused, &mut rest),
    )
    .await
    .expect("the server closes the connection");
    tokio::time::timeout(WAIT, server.wait_until(|s| s.connections == 1))
        .await
        .expect("the failed handshake's connection closes");
    let scrape = Scrape::of(&server);
    assert_eq!(
        scrape.get("chat_connections_accepted_total{door=\"tls\"}"),
        2.0
    );
    assert_eq!(scrape.get("chat_connections_open{door=\"tls\"}"), 1.0);
    assert_eq!(scrape.get("chat_handshakes_failed_total"), 1.0);

    drop((lines, confused));
    let _ = stop.send(());
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

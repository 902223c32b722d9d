//! The metrics move with real traffic: clients over TCP, the text read back through
//! `Server::metrics_text` and parsed as Prometheus does. Each check is exact where the
//! protocol orders the count before what the client sees, and bounded where it cannot.

mod common;

use chat_proto::{ErrorCode, ServerFrame};
use chat_server::{Config, Server};
use common::{TestServer, WAIT};

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

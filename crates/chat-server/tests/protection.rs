//! Protection against floods, slow and idle peers, connection storms and too many
//! connections from one address. Each test fails if its protection is removed.

mod common;

use chat_proto::{ErrorCode, ServerFrame};
use chat_server::Config;
use common::*;
use futures::StreamExt;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn per_address_limit_refuses_with_a_reason_and_the_others_carry_on() {
    let config = Config {
        max_per_ip: 2,
        limit_loopback: true,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut alice = server.login("alice").await;
    let _bob = server.login("bob").await;
    alice.sync().await;

    let mut third = Client::new(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    let frames = third.closed().await;
    assert!(
        matches!(&frames[..], [
            ServerFrame::Error { code: ErrorCode::TooManyConnections, text },
            ServerFrame::Bye { .. },
        ] if text.contains('2')),
        "{frames:?}"
    );
    alice.send("unaffected").await;
    assert_eq!(
        msg_text(&alice.sync().await[0], "#general", "alice"),
        Some("unaffected")
    );

    // A slot freed is a slot available again.
    alice.send("/quit").await;
    alice.closed().await;
    tokio::time::timeout(WAIT, server.server.wait_until(|s| s.connections == 1))
        .await
        .unwrap();
    server.login("carol").await;
}

#[tokio::test]
async fn loopback_is_exempt_from_the_per_address_limit_by_default() {
    let config = Config {
        max_per_ip: 2,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut clients = Vec::new();
    for i in 0..6 {
        clients.push(server.login(&format!("local{i}")).await);
    }
    assert_eq!(server.stats().connections, 6);
}

#[test]
fn default_connection_limit_follows_the_open_file_limit() {
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let derived = Config::default().connection_limit();
    assert_eq!(derived as u64, soft.saturating_sub(64).max(1));
    assert_eq!(
        Config {
            max_connections: Some(7),
            ..Config::default()
        }
        .connection_limit(),
        7
    );
}

#[tokio::test]
async fn flooder_is_slowed_not_dropped_and_no_one_else_is_slowed() {
    // Burst of 3, then 20 lines a second: 13 lines take at least 0.5 s.
    let config = Config {
        flood_burst: 3,
        flood_rate: 20.0,
        ..Config::default()
    };
    let server = TestServer::with(config).await;
    let mut flooder = server.login("flooder").await;
    let mut bob = server.login("bob").await;
    let mut observer = server.login("observer").await;

    let mut paste = String::new();
    for i in 0..13 {
        paste.push_str(&format!("line {i}\n"));
    }
    flooder.send_raw(paste.as_bytes()).await;
    // While the paste trickles in, bob speaks; he is not queued behind it.
    let (first, _) = observer
        .until(|f| msg_text(f, "#general", "flooder").is_some())
        .await;
    bob.send("bob is not slowed").await;

    let mut flood = vec![first];
    let mut bob_seen_after = None;
    while flood.len() < 13 {
        let frame = observer.recv().await;
        if msg_text(&frame, "#general", "bob") == Some("bob is not slowed") {
            bob_seen_after = Some(flood.len());
        } else if msg_text(&frame, "#general", "flooder").is_some() {
            flood.push(frame);
        }
    }
    let texts: Vec<_> = flood
        .iter()
        .map(|f| msg_text(f, "#general", "flooder").unwrap().to_owned())
        .collect();
    let expected: Vec<_> = (0..13).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, expected, "every line arrives, in order");
    let seen_after = bob_seen_after.expect("bob's line arrived during the flood");
    assert!(seen_after < 13, "bob's line came before the flood ended");

    let time = |f: &ServerFrame| match f {
        ServerFrame::Message { time, .. } => *time,
        _ => unreachable!(),
    };
    // Lines 3..13 each waited for a token: at least 10 × 50 ms after the burst.
    let spread_ms = time(&flood[12]).as_millisecond() - time(&flood[2]).as_millisecond();
    assert!(
        spread_ms >= 499,
        "flood was spread over only {spread_ms} ms"
    );
}

#[tokio::test]
async fn consumer_that_stops_reading_is_disconnected_and_its_rooms_told() {
    let config = Config {
        write_timeout: Duration::from_millis(300),
        room_capacity: 64,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = Client::new(socket.connect(server.addr).await.unwrap());
    assert_eq!(stalled.recv().await, ServerFrame::NickPrompt);
    stalled.login("stalled").await;
    let flooder = server.login("flooder").await;
    let mut observer = server.login("observer").await;
    stalled.sync().await;

    // Traffic until the stalled member's buffers are full and the write timeout runs out.
    let (read, mut write) = flooder.framed.into_inner().into_split();
    let body = "x".repeat(4000);
    let writer = tokio::spawn(async move {
        for _ in 0..20_000 {
            if write
                .write_all(format!("{body}\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    // The flooder keeps reading its echoes so that only the stalled member stalls.
    let drain = tokio::spawn(async move {
        let mut lines = tokio_util::codec::FramedRead::new(
            read,
            chat_proto::LineCodec::new(chat_proto::CLIENT_MAX_LINE),
        );
        while let Some(Ok(_)) = lines.next().await {}
    });
    let (quit, _) = observer
        .until(|f| matches!(f, ServerFrame::Quit { nick, .. } if nick.as_str() == "stalled"))
        .await;
    writer.abort();
    drain.abort();
    match quit {
        ServerFrame::Quit {
            reason: Some(reason),
            ..
        } => assert!(reason.starts_with("slow consumer"), "{reason}"),
        other => panic!("{other:?}"),
    }
    tokio::time::timeout(WAIT, server.server.wait_until(|s| s.sessions == 2))
        .await
        .unwrap();
}

/// A client that stops reading holds a bounded amount of the server's kernel memory
/// (`--send-buffer`, 256 KiB by default, which the kernel doubles), not the 4 MiB that
/// auto-tuning grows a loopback socket's buffer to: 1 MB of room traffic fills it, and
/// the write timeout then disconnects the client, while the others carry on.
#[tokio::test]
async fn a_stopped_reader_is_found_out_once_its_bounded_send_buffer_fills() {
    let config = Config {
        write_timeout: Duration::from_millis(500),
        ..Config::unthrottled()
    };
    assert_eq!(
        config.send_buffer,
        256 * 1024,
        "the default is what is tested"
    );
    let server = TestServer::with(config).await;
    let _stopped = server.login_small_buffer("stopped").await;
    let mut observer = server.login("observer").await;
    // About 160 bytes a line on the wire: 6,000 lines are a megabyte.
    let flooder = server.login("flooder").await;
    server.flood_general(flooder, 6000, 100).await;
    let (quit, _) = observer
        .until(|f| matches!(f, ServerFrame::Quit { nick, .. } if nick.as_str() == "stopped"))
        .await;
    assert!(
        matches!(&quit, ServerFrame::Quit { reason: Some(reason), .. } if reason.starts_with("slow consumer")),
        "{quit:?}"
    );
}

#[tokio::test]
async fn idle_timeout_is_off_by_default_and_closes_when_set() {
    assert_eq!(Config::default().idle_timeout, None);
    let config = Config {
        idle_timeout: Some(Duration::from_millis(300)),
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut idle = server.login("idle").await;
    let frames = idle.closed().await;
    assert!(
        matches!(frames.last(), Some(ServerFrame::Bye { reason }) if reason.starts_with("idle timeout")),
        "{frames:?}"
    );
    tokio::time::timeout(WAIT, server.server.wait_until(|s| s.sessions == 0))
        .await
        .unwrap();
}

#[tokio::test]
async fn connection_storm_leaves_nothing_behind() {
    // The per-address map is in play too: loopback is not exempt here.
    let config = Config {
        limit_loopback: true,
        max_per_ip: 10_000,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let addr = server.addr;
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 100;
    for round in 0..ROUNDS {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..PER_ROUND {
            let n = round * PER_ROUND + i;
            tasks.spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let mut c = Client::new(stream);
                match n % 4 {
                    // Half drop mid-handshake: before the prompt, or after it.
                    0 => drop(c),
                    1 => {
                        c.recv().await;
                        drop(c);
                    }
                    // The other half finish it, then quit or vanish.
                    2 => {
                        c.recv().await;
                        c.login(&format!("q{n}")).await;
                        c.send("/quit").await;
                        c.closed().await;
                    }
                    _ => {
                        c.recv().await;
                        c.login(&format!("d{n}")).await;
                        c.send(&format!("/join #r{}", n % 7)).await;
                        drop(c);
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }
    let idle = |s: &chat_server::Stats| {
        s.connections == 0 && s.sessions == 0 && s.rooms == 0 && s.tasks == 0 && s.addresses == 0
    };
    tokio::time::timeout(Duration::from_secs(30), server.server.wait_until(idle))
        .await
        .unwrap_or_else(|_| panic!("server still holds {:?}", server.stats()));
    // And it still serves.
    server.login("after-the-storm").await;
}

#[tokio::test]
async fn private_messages_to_a_stalled_recipient_are_refused_once_its_queue_is_full() {
    let config = Config {
        mailbox_capacity: 2,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let _bob = server.login_small_buffer("bob").await;
    let mut alice = server.login("alice").await;
    alice.send("/part").await;
    alice.sync().await;
    // More room traffic than bob's socket and the kernel can hold: bob's session now
    // waits on its socket and no longer empties its mailbox.
    let flooder = server.login("flooder").await;
    server.flood_general(flooder, 4000, 2000).await;

    for i in 0..4 {
        alice.send(&format!("/msg bob note {i}")).await;
    }
    let frames = alice.sync().await;
    let delivered = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Private { .. }))
        .count();
    let busy: Vec<_> = frames
        .iter()
        .filter(|f| {
            matches!(
                f,
                ServerFrame::Error {
                    code: ErrorCode::RecipientBusy,
                    ..
                }
            )
        })
        .collect();
    assert_eq!((delivered, busy.len()), (2, 2), "{frames:?}");
}

#[tokio::test]
async fn shutdown_is_bounded_by_the_grace_even_with_a_stalled_client() {
    let config = Config {
        shutdown_grace: Duration::from_millis(300),
        ..Config::unthrottled()
    };
    let mut server = TestServer::with(config).await;
    let _stalled = server.login_small_buffer("stalled").await;
    let flooder = server.login("flooder").await;
    server.flood_general(flooder, 4000, 2000).await;
    // The stalled session waits on a write that the 60 s write timeout would end; the
    // grace ends it first (TestServer::shutdown allows 10 s).
    server.shutdown().await;
}

#[tokio::test]
async fn nickname_attempts_are_flood_controlled_too() {
    // Burst of 2, then 20 a second: 8 taken nicknames take at least 6 x 50 ms.
    let config = Config {
        flood_burst: 2,
        flood_rate: 20.0,
        ..Config::default()
    };
    let server = TestServer::with(config).await;
    let _alice = server.login("alice").await;
    let mut c = server.connect().await;
    let started = std::time::Instant::now();
    c.send_raw("alice\n".repeat(8).as_bytes()).await;
    for _ in 0..8 {
        assert!(matches!(
            c.recv().await,
            ServerFrame::Error {
                code: ErrorCode::NickTaken,
                ..
            }
        ));
        assert_eq!(c.recv().await, ServerFrame::NickPrompt);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(299),
        "8 attempts answered in {elapsed:?}"
    );
    c.login("bob").await;
}

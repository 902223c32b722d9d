//! The web door through real sockets: WebSocket users and TCP users in one room, the
//! checks before the upgrade (origin, proxies), what closes a WebSocket (binary and
//! multi-line messages, the line limit), the shutdown notice, pings while idle, the
//! health check and the headers every response carries.

mod common;

use chat_proto::{ErrorCode, Nick, Room, ServerFrame};
use chat_server::Config;
use common::{TestServer, WAIT, msg_text};
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A native-protocol client over a WebSocket: one line per text message.
struct Ws<S = MaybeTlsStream<TcpStream>> {
    socket: WebSocketStream<S>,
}

/// How the server closed a WebSocket: its close code and reason, and the frames before.
#[derive(Debug)]
struct Closed {
    code: Option<u16>,
    reason: String,
    frames: Vec<ServerFrame>,
}

impl Ws {
    /// Opens `/ws` on `http` with extra request `headers`; the server's refusal (an
    /// HTTP status) is an `Err`.
    async fn open(http: SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, StatusCode> {
        let mut request = format!("ws://{http}/ws").into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(WAIT, connect).await.expect("in time") {
            Ok((socket, _)) => Ok(Ws { socket }),
            Err(tungstenite::Error::Http(response)) => Err(response.status()),
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }

    /// Opens `/ws` as a browser on the server's own page would, and reads `NICK`.
    async fn connect(server: &TestServer) -> Ws {
        let origin = format!("http://{}", server.http);
        let mut ws = Ws::open(server.http, &[("origin", &origin)]).await.unwrap();
        assert_eq!(ws.recv().await, ServerFrame::NickPrompt);
        ws
    }

    /// Connects and logs in as `nick`, reading up to `CURRENT #general`.
    async fn login(server: &TestServer, nick: &str) -> Ws {
        let mut ws = Ws::connect(server).await;
        ws.send(nick).await;
        let (welcome, _) = ws.until(|f| matches!(f, ServerFrame::Welcome { .. })).await;
        assert_eq!(
            welcome,
            ServerFrame::Welcome {
                nick: Nick::new(nick).unwrap(),
                text: format!("Welcome to the chat, {nick}!")
            }
        );
        ws.until(|f| matches!(f, ServerFrame::Current { .. })).await;
        ws
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ws<S> {
    async fn send(&mut self, line: &str) {
        self.socket.send(Message::text(line)).await.unwrap();
    }

    /// The next message that is not a ping or pong.
    async fn next(&mut self) -> Option<Message> {
        loop {
            let next = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a message arrives in time");
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(message)) => return Some(message),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next frame; each text message must be exactly one frame, without a newline.
    async fn recv(&mut self) -> ServerFrame {
        match self.next().await {
            Some(Message::Text(text)) => {
                assert!(!text.contains('\n'), "one line per message: {text:?}");
                ServerFrame::parse(&text).unwrap_or_else(|e| panic!("bad frame {text:?}: {e}"))
            }
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    async fn until(
        &mut self,
        what: impl Fn(&ServerFrame) -> bool,
    ) -> (ServerFrame, Vec<ServerFrame>) {
        let mut skipped = Vec::new();
        loop {
            let frame = self.recv().await;
            if what(&frame) {
                return (frame, skipped);
            }
            skipped.push(frame);
        }
    }

    /// Sends `/ping` and reads up to its `PONG`: everything before it has been handled.
    async fn sync_with_ping(&mut self) {
        self.send("/ping sync").await;
        self.until(|f| matches!(f, ServerFrame::Pong { token: Some(t) } if t == "sync"))
            .await;
    }

    /// Reads until the server closes the socket.
    async fn closed(&mut self) -> Closed {
        let mut frames = Vec::new();
        loop {
            match self.next().await {
                Some(Message::Text(text)) => frames.push(ServerFrame::parse(&text).unwrap()),
                Some(Message::Close(frame)) => {
                    return Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                        frames,
                    };
                }
                None => {
                    return Closed {
                        code: None,
                        reason: String::new(),
                        frames,
                    };
                }
                Some(other) => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// One HTTP/1.1 request on a fresh connection: the status, the headers (names in lower
/// case) and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("the response comes in time")
        .unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn websocket_and_tcp_users_chat_in_one_room() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = Ws::login(&server, "bob").await;
    // alice sees bob arrive, so both are in #general.
    alice
        .until(|f| matches!(f, ServerFrame::Join { nick, .. } if nick.as_str() == "bob"))
        .await;

    bob.send("hello from the browser").await;
    let (frame, _) = alice
        .until(|f| msg_text(f, "#general", "bob").is_some())
        .await;
    assert_eq!(
        msg_text(&frame, "#general", "bob"),
        Some("hello from the browser")
    );

    alice.send("hello from the terminal").await;
    let (frame, _) = bob
        .until(|f| msg_text(f, "#general", "alice").is_some())
        .await;
    assert_eq!(
        msg_text(&frame, "#general", "alice"),
        Some("hello from the terminal")
    );

    // Commands work as over TCP: a room of its own, and history.
    bob.send("/join #web").await;
    bob.until(
        |f| matches!(f, ServerFrame::Current { room: Some(r) } if *r == Room::new("#web").unwrap()),
    )
    .await;
    bob.send("/ping token-1").await;
    let (pong, _) = bob.until(|f| matches!(f, ServerFrame::Pong { .. })).await;
    assert_eq!(
        pong,
        ServerFrame::Pong {
            token: Some("token-1".into())
        }
    );
    assert_eq!(server.stats().sessions, 2);
}

#[tokio::test]
async fn irc_websocket_and_tcp_users_share_a_room_and_its_message_ids() {
    use common::irc::Irc;
    let server = TestServer::start().await;
    let mut tcp = server.login("tcp").await;
    let mut web = Ws::login(&server, "web").await;
    let mut irc = Irc::login_with(&server, "irc", "message-tags").await;
    tcp.send("/join #three").await;
    tcp.sync().await;
    web.send("/join #three").await;
    web.until(|f| matches!(f, ServerFrame::Current { room: Some(r) } if r.as_str() == "#three"))
        .await;
    let names = irc.join("#three").await;
    assert!(
        names
            .iter()
            .any(|l| l.ends_with(" 353 irc = #three :irc @tcp web")),
        "{names:?}"
    );
    // Each door's line reaches the other two under one id.
    web.send("from the browser").await;
    let (said, _) = tcp.until(|f| msg_text(f, "#three", "web").is_some()).await;
    let ServerFrame::Message { id, .. } = said else {
        unreachable!()
    };
    let line = irc
        .until(|l| l.contains("PRIVMSG #three"))
        .await
        .pop()
        .unwrap();
    assert!(
        line.starts_with("@")
            && line.contains(&format!("msgid={id}"))
            && line.ends_with(" :web!web@chat.localhost PRIVMSG #three :from the browser"),
        "{line}"
    );
    irc.send("PRIVMSG #three :from irssi").await;
    let (heard, _) = web.until(|f| msg_text(f, "#three", "irc").is_some()).await;
    let (also, _) = tcp.until(|f| msg_text(f, "#three", "irc").is_some()).await;
    assert_eq!(heard, also);
    assert_eq!(msg_text(&heard, "#three", "irc"), Some("from irssi"));
    // A part from the browser is seen on IRC.
    web.send("/part").await;
    let part = irc.until(|l| l.contains(" PART ")).await.pop().unwrap();
    assert!(
        part.ends_with(":web!web@chat.localhost PART #three"),
        "{part}"
    );
}

#[tokio::test]
async fn a_foreign_origin_is_refused_before_the_upgrade() {
    let config = Config {
        http_allow_origin: vec!["https://chat.example.org".into()],
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let evil = Ws::open(server.http, &[("origin", "http://evil.example")]).await;
    assert_eq!(evil.err(), Some(StatusCode::FORBIDDEN));
    let null = Ws::open(server.http, &[("origin", "null")]).await;
    assert_eq!(null.err(), Some(StatusCode::FORBIDDEN));
    // A look-alike host is another origin.
    let lookalike = format!("http://{}.evil.example", server.http);
    let lookalike = Ws::open(server.http, &[("origin", &lookalike)]).await;
    assert_eq!(lookalike.err(), Some(StatusCode::FORBIDDEN));
    let metrics = server.server.metrics_text();
    assert_eq!(
        sample(&metrics, "chat_refusals_total{reason=\"origin\"}"),
        3.0
    );
    // No session holds those connections: the server lets go of them.
    let closed = server.server.wait_until(|s| s.connections == 0);
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("no session was started");

    // The server's own page, and an allowed one, may.
    let own = format!("http://{}", server.http);
    let mut ws = Ws::open(server.http, &[("origin", &own)]).await.unwrap();
    assert_eq!(ws.recv().await, ServerFrame::NickPrompt);
    let allowed = Ws::open(server.http, &[("origin", "https://chat.example.org")]).await;
    assert_eq!(allowed.unwrap().recv().await, ServerFrame::NickPrompt);
}

#[tokio::test]
async fn binary_and_multi_line_messages_close_the_socket_and_the_room_carries_on() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;

    let mut binary = Ws::login(&server, "bin").await;
    binary
        .socket
        .send(Message::binary(b"hello".to_vec()))
        .await
        .unwrap();
    let closed = binary.closed().await;
    assert_eq!(closed.code, Some(1003), "{closed:?}");
    assert!(closed.reason.contains("binary"), "{closed:?}");

    let mut lines = Ws::login(&server, "lines").await;
    lines.send("first\n/nick mallory").await;
    let closed = lines.closed().await;
    assert_eq!(closed.code, Some(1008), "{closed:?}");
    assert!(closed.reason.contains("line"), "{closed:?}");
    let mut cr = Ws::login(&server, "cr").await;
    cr.send("first\rsecond").await;
    assert_eq!(cr.closed().await.code, Some(1008));

    // Neither line was taken as a message; the others carry on.
    let seen = alice.sync().await;
    assert!(
        !seen
            .iter()
            .any(|f| matches!(f, ServerFrame::Message { .. })),
        "{seen:?}"
    );
    let mut bob = Ws::login(&server, "bob").await;
    bob.send("still here").await;
    let (frame, _) = alice
        .until(|f| msg_text(f, "#general", "bob").is_some())
        .await;
    assert_eq!(msg_text(&frame, "#general", "bob"), Some("still here"));
}

#[tokio::test]
async fn the_line_limit_is_the_message_limit() {
    let config = Config {
        max_line: 100,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut alice = server.login("alice").await;
    let mut bob = Ws::login(&server, "bob").await;
    let longest = "x".repeat(100);
    bob.send(&longest).await;
    let (frame, _) = alice
        .until(|f| msg_text(f, "#general", "bob").is_some())
        .await;
    assert_eq!(msg_text(&frame, "#general", "bob"), Some(longest.as_str()));

    bob.send(&"y".repeat(101)).await;
    let closed = bob.closed().await;
    assert_eq!(closed.code, Some(1009), "{closed:?}");
    assert!(closed.reason.contains("100 bytes"), "{closed:?}");
    let seen = alice.sync().await;
    assert!(
        !seen
            .iter()
            .any(|f| matches!(f, ServerFrame::Message { .. })),
        "{seen:?}"
    );
}

#[tokio::test]
async fn websocket_users_hear_the_shutdown_notice() {
    let mut server = TestServer::start().await;
    let mut bob = Ws::login(&server, "bob").await;
    let mut fresh = Ws::connect(&server).await;
    let stopping = async { server.shutdown().await };
    let (_, bob_closed, fresh_closed) = tokio::join!(stopping, bob.closed(), fresh.closed());
    for closed in [bob_closed, fresh_closed] {
        assert_eq!(
            closed.frames.last(),
            Some(&ServerFrame::Bye {
                reason: "server shutting down".into()
            }),
            "{closed:?}"
        );
        assert_eq!(closed.code, Some(1000), "{closed:?}");
    }
}

#[tokio::test]
async fn the_server_pings_a_silent_websocket() {
    let config = Config {
        ws_ping: Duration::from_millis(200),
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let mut ws = Ws::login(&server, "quiet").await;
    let ping = tokio::time::timeout(WAIT, async {
        loop {
            match ws.socket.next().await {
                Some(Ok(Message::Ping(_))) => return,
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    });
    ping.await.expect("a ping while the client is silent");
    // The client's pong is taken in, and it stays.
    ws.send("/ping still-here").await;
    let (pong, _) = ws.until(|f| matches!(f, ServerFrame::Pong { .. })).await;
    assert_eq!(
        pong,
        ServerFrame::Pong {
            token: Some("still-here".into())
        }
    );
}

#[tokio::test]
async fn passwords_cross_a_websocket_only_from_loopback_without_a_proxy() {
    let server = TestServer::start().await;
    server.register("carol", "correct horse battery").await;

    // Straight from loopback: asked for the password, and accepted.
    let mut direct = Ws::connect(&server).await;
    direct.send("carol").await;
    assert_eq!(direct.recv().await, ServerFrame::PassPrompt);
    direct.send("correct horse battery").await;
    direct
        .until(|f| matches!(f, ServerFrame::Welcome { .. }))
        .await;
    direct.send("/quit").await;
    direct.closed().await;

    // Through a proxy on loopback: the user is elsewhere, and the password would have
    // crossed the network in the clear.
    let origin = format!("http://{}", server.http);
    let headers = [
        ("origin", origin.as_str()),
        ("x-forwarded-for", "192.0.2.44"),
    ];
    let mut proxied = Ws::open(server.http, &headers).await.unwrap();
    assert_eq!(proxied.recv().await, ServerFrame::NickPrompt);
    proxied.send("carol").await;
    match proxied.recv().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::InsecureTransport),
        other => panic!("expected INSECURE_TRANSPORT, got {other:?}"),
    }
    assert_eq!(proxied.recv().await, ServerFrame::NickPrompt);
}

#[tokio::test]
async fn a_proxied_user_counts_against_their_own_address() {
    let config = Config {
        max_per_ip: 2,
        http_proxy_header: Some(chat_server::config::ProxyHeader::XForwardedFor),
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let origin = format!("http://{}", server.http);
    let from = |ip: &'static str| {
        [
            ("origin", origin.clone()),
            ("x-forwarded-for", ip.to_owned()),
        ]
    };
    let open = |headers: [(&'static str, String); 2]| async move {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        Ws::open(server.http, &headers).await
    };
    let mut first = open(from("192.0.2.10")).await.unwrap();
    let mut second = open(from("192.0.2.10")).await.unwrap();
    assert_eq!(first.recv().await, ServerFrame::NickPrompt);
    assert_eq!(second.recv().await, ServerFrame::NickPrompt);
    let third = open(from("192.0.2.10")).await;
    assert_eq!(third.err(), Some(StatusCode::TOO_MANY_REQUESTS));
    let metrics = server.server.metrics_text();
    assert_eq!(
        sample(&metrics, "chat_refusals_total{reason=\"per_address\"}"),
        1.0
    );
    // Another user behind the same proxy is not held back.
    let mut other = open(from("192.0.2.11")).await.unwrap();
    assert_eq!(other.recv().await, ServerFrame::NickPrompt);
    // A proxied request must say whom it is for.
    let vague = Ws::open(
        server.http,
        &[("origin", &origin), ("x-forwarded-for", "unknown")],
    )
    .await;
    assert_eq!(vague.err(), Some(StatusCode::BAD_REQUEST));
    // Its place comes back when it leaves: once only `second` and `other` are left.
    drop(first);
    let left = server.server.wait_until(|s| s.connections == 2);
    tokio::time::timeout(WAIT, left)
        .await
        .expect("the first one's end is seen");
    let mut again = open(from("192.0.2.10")).await.unwrap();
    assert_eq!(again.recv().await, ServerFrame::NickPrompt);
}

#[tokio::test]
async fn pages_health_and_unknown_paths_carry_the_security_headers() {
    let server = TestServer::start().await;
    let _alice = server.login("alice").await;
    for (path, status, content_type) in [
        ("/", 200, "text/html; charset=utf-8"),
        ("/app.js", 200, "text/javascript; charset=utf-8"),
        ("/style.css", 200, "text/css; charset=utf-8"),
        ("/favicon.svg", 200, "image/svg+xml"),
        ("/favicon.ico", 200, "image/svg+xml"),
        ("/healthz", 200, "application/json"),
        ("/nothing-here", 404, "text/plain; charset=utf-8"),
        ("/ws", 426, "text/plain; charset=utf-8"),
    ] {
        let (code, headers, body) = http_get(server.http, path).await;
        assert_eq!(code, status, "{path}: {body}");
        assert_eq!(
            header(&headers, "content-type"),
            Some(content_type),
            "{path}"
        );
        assert_eq!(
            header(&headers, "content-security-policy"),
            Some(chat_server::CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert_eq!(
            header(&headers, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    let (_, _, page) = http_get(server.http, "/").await;
    assert!(page.contains("<script src=\"/app.js\""), "{page}");
    assert!(
        !page.contains("<script>"),
        "no inline script: the policy forbids it"
    );

    let (_, _, health) = http_get(server.http, "/healthz").await;
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"], "ok");
    assert_eq!(health["sessions"], 1);
    assert!(health["uptime_seconds"].is_u64());
}

#[tokio::test]
async fn https_serves_the_same_routes_and_passwords_cross_it() {
    use rustls::pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    let names = ["localhost".to_owned()];
    let (cert_path, key_path) =
        chat_server::tls::write_self_signed(dir.path(), &names, false).unwrap();
    let acceptor = chat_server::tls::acceptor(&cert_path, &key_path).unwrap();
    let cert = rustls::pki_types::CertificateDer::from_pem_file(&cert_path).unwrap();
    let config = Config::unthrottled();
    let tcp = chat_server::listen(common::loopback(), 128).unwrap();
    let https = chat_server::listen(common::loopback(), 128).unwrap();
    let (tcp_addr, https_addr) = (tcp.local_addr().unwrap(), https.local_addr().unwrap());
    let server = chat_server::Server::new(config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = server.clone();
    let task = tokio::spawn(async move {
        let listeners = chat_server::Listeners {
            tcp: Some(tcp),
            https: Some((https, acceptor)),
            ..Default::default()
        };
        runner
            .serve(listeners, async {
                let _ = stopped.await;
            })
            .await
    });
    let connector = common::connector(std::slice::from_ref(&cert));
    let tls = || async {
        let stream = TcpStream::connect(https_addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(WAIT, connector.connect(name, stream))
            .await
            .expect("the TLS handshake in time")
            .expect("the TLS handshake succeeds")
    };

    // A page over HTTPS.
    let mut stream = tls().await;
    let request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"status\":\"ok\""), "{response}");

    // Register carol over TCP from loopback.
    let mut tcp_client = common::Client::new(TcpStream::connect(tcp_addr).await.unwrap());
    assert_eq!(tcp_client.recv().await, ServerFrame::NickPrompt);
    tcp_client.login("carol").await;
    tcp_client.send("/register correct horse battery").await;
    tcp_client
        .until(|f| matches!(f, ServerFrame::Account { .. }))
        .await;
    tcp_client.send("/quit").await;
    tcp_client.closed().await;

    // Over HTTPS the password is taken, even through a proxy: it never crossed in the
    // clear. The origin is the https one.
    let mut request = format!("wss://localhost:{}/ws", https_addr.port())
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    let origin = format!("https://localhost:{}", https_addr.port());
    headers.insert("origin", HeaderValue::from_str(&origin).unwrap());
    headers.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.80"));
    let (socket, _) =
        tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, tls().await))
            .await
            .unwrap()
            .expect("the upgrade over TLS");
    let mut ws = Ws { socket };
    assert_eq!(ws.recv().await, ServerFrame::NickPrompt);
    ws.send("carol").await;
    assert_eq!(ws.recv().await, ServerFrame::PassPrompt);
    ws.send("correct horse battery").await;
    ws.until(|f| matches!(f, ServerFrame::Welcome { .. })).await;

    // The plain-http origin is another origin for an HTTPS door.
    let mut request = format!("wss://localhost:{}/ws", https_addr.port())
        .into_client_request()
        .unwrap();
    let plain_origin = format!("http://localhost:{}", https_addr.port());
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_str(&plain_origin).unwrap());
    let refused = tokio_tungstenite::client_async(request, tls().await).await;
    match refused {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }

    let _ = stop.send(());
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// The value of the sample `name` (labels as written) in an OpenMetrics text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (n, value) = line.rsplit_once(' ')?;
            (n == name).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no sample {name} in {text}"))
}

#[tokio::test]
async fn metrics_are_scraped_over_http_and_count_the_websocket_door() {
    const ACCEPTED_WS: &str = "chat_connections_accepted_total{door=\"ws\"}";
    const OPEN_WS: &str = "chat_connections_open{door=\"ws\"}";
    let server = TestServer::start().await;
    let (status, headers, before) = http_get(server.http, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(before.ends_with("# EOF\n"), "{before}");
    assert_eq!(sample(&before, ACCEPTED_WS), 0.0);
    assert_eq!(
        sample(&before, OPEN_WS),
        0.0,
        "HTTP requests are not WebSockets"
    );

    let mut alice = server.login("alice").await;
    let mut bob = Ws::login(&server, "bob").await;
    bob.send("counted").await;
    alice
        .until(|f| msg_text(f, "#general", "bob").is_some())
        .await;
    bob.sync_with_ping().await;
    let (_, _, during) = http_get(server.http, "/metrics").await;
    assert_eq!(sample(&during, ACCEPTED_WS), 1.0);
    assert_eq!(sample(&during, OPEN_WS), 1.0);
    assert!(
        sample(&during, "chat_deliveries_total") >= sample(&before, "chat_deliveries_total") + 2.0,
        "the message reached alice and bob's echo: {during}"
    );
    assert!(sample(&during, "chat_room_events_total") > sample(&before, "chat_room_events_total"));

    bob.send("/quit").await;
    bob.closed().await;
    let gone = server.server.wait_until(|s| s.sessions == 1);
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("bob's session ends");
    let after = server.server.metrics_text();
    assert_eq!(sample(&after, ACCEPTED_WS), 1.0);
    assert_eq!(sample(&after, OPEN_WS), 0.0, "open only while it lasts");
}

#[tokio::test]
async fn a_client_that_closes_gets_a_clean_close_and_its_room_hears_it_leave() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = Ws::login(&server, "bob").await;
    bob.socket.close(None).await.unwrap();
    // The server answers the close frame before it lets go of the connection.
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match bob.socket.next().await {
                Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return false,
            }
        }
    })
    .await
    .expect("the server answers in time");
    assert!(answer, "a clean close, not a reset");
    let (quit, _) = alice
        .until(|f| matches!(f, ServerFrame::Quit { nick, .. } if nick.as_str() == "bob"))
        .await;
    assert!(matches!(quit, ServerFrame::Quit { .. }));
}

/// Behind a proxy that is not named with --http-proxy-header, its forwarding headers are
/// believed from no one: every proxied WebSocket counts against the proxy's own
/// address, loopback or not, and a client's made-up addresses change nothing.
#[tokio::test]
async fn an_unnamed_proxy_is_limited_like_one_address() {
    let config = Config {
        max_per_ip: 2,
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let origin = format!("http://{}", server.http);
    let mut kept = Vec::new();
    for ip in ["198.51.100.1", "198.51.100.2"] {
        let mut ws = Ws::open(server.http, &[("origin", &origin), ("x-forwarded-for", ip)])
            .await
            .unwrap();
        assert_eq!(ws.recv().await, ServerFrame::NickPrompt);
        kept.push(ws);
    }
    let third = Ws::open(
        server.http,
        &[("origin", &origin), ("x-forwarded-for", "198.51.100.3")],
    )
    .await;
    assert_eq!(third.err(), Some(StatusCode::TOO_MANY_REQUESTS));
    // A direct WebSocket from loopback (no proxy headers) is still exempt.
    let _direct = Ws::connect(&server).await;
}

/// With --http-proxy-header x-real-ip, a client's own X-Forwarded-For (passed on by a
/// proxy that sets X-Real-IP) is not believed.
#[tokio::test]
async fn only_the_named_proxy_header_is_believed() {
    let config = Config {
        max_per_ip: 1,
        http_proxy_header: Some(chat_server::config::ProxyHeader::XRealIp),
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    let origin = format!("http://{}", server.http);
    let mut first = Ws::open(
        server.http,
        &[("origin", &origin), ("x-real-ip", "203.0.113.5")],
    )
    .await
    .unwrap();
    assert_eq!(first.recv().await, ServerFrame::NickPrompt);
    for spoofed in ["198.51.100.9", "127.0.0.1"] {
        let again = Ws::open(
            server.http,
            &[
                ("origin", &origin),
                ("x-real-ip", "203.0.113.5"),
                ("x-forwarded-for", spoofed),
            ],
        )
        .await;
        assert_eq!(
            again.err(),
            Some(StatusCode::TOO_MANY_REQUESTS),
            "{spoofed}"
        );
    }
}

/// A TLS-terminating proxy named with --http-proxy-header that says the page came over
/// HTTPS: the password is asked for; the same page in the clear from another host is not
/// trusted with one, proxy or not.
#[tokio::test]
async fn passwords_follow_the_pages_scheme_behind_a_proxy() {
    let config = Config {
        http_proxy_header: Some(chat_server::config::ProxyHeader::XForwardedFor),
        http_allow_origin: vec![
            "https://chat.example.org".into(),
            "http://chat.example.org".into(),
        ],
        ..Config::unthrottled()
    };
    let server = TestServer::with(config).await;
    server.register("carol", "correct horse battery").await;
    let secure = [
        ("origin", "https://chat.example.org"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
    ];
    let mut ws = Ws::open(server.http, &secure).await.unwrap();
    assert_eq!(ws.recv().await, ServerFrame::NickPrompt);
    ws.send("carol").await;
    assert_eq!(ws.recv().await, ServerFrame::PassPrompt);

    // A plain-HTTP page from another host, even with no proxy headers at all.
    let clear = [("origin", "http://chat.example.org")];
    let mut ws = Ws::open(server.http, &clear).await.unwrap();
    assert_eq!(ws.recv().await, ServerFrame::NickPrompt);
    ws.send("carol").await;
    match ws.recv().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::InsecureTransport),
        other => panic!("expected INSECURE_TRANSPORT, got {other:?}"),
    }
}

/// DNS rebinding: a site whose name now points at this machine sends an Origin and a
/// Host that match; a name must be listed in --http-allow-origin.
#[tokio::test]
async fn a_rebound_name_is_refused() {
    let server = TestServer::start().await;
    let host = format!("attacker.example:{}", server.http.port());
    let origin = format!("http://{host}");
    let rebound = Ws::open(server.http, &[("host", &host), ("origin", &origin)]).await;
    assert_eq!(rebound.err(), Some(StatusCode::FORBIDDEN));
    let local = format!("localhost:{}", server.http.port());
    let origin = format!("http://{local}");
    let mut ws = Ws::open(server.http, &[("host", &local), ("origin", &origin)])
        .await
        .unwrap();
    assert_eq!(ws.recv().await, ServerFrame::NickPrompt);
}

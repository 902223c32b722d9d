//! The web page in a real browser: Debian's Chromium, driven through chromedriver by
//! fantoccini, against a real server on loopback, with raw TCP clients of the native
//! protocol in the same rooms.
//!
//! Each test starts its own chromedriver (`--port=0`, the port read from what it
//! prints) in a process group of its own, and kills that group when it ends, panicking
//! or not. The tests take turns (one browser test at a time), so that they do not
//! starve each other of the machine's cores. Nothing sleeps to synchronise: every wait
//! polls the page for an element or a text, bounded by [`WAIT`].
//!
//! Console errors (script errors, CSP violations, failed requests) are read from
//! chromedriver's log endpoint (`POST /session/{id}/se/log`, kept by the
//! `goog:loggingPrefs` capability): every test ends by finding none, and one checks
//! that a `console.error` from the page does show up there.
//!
//! The browser and its driver must be installed (`apt-get install -y
//! --no-install-recommends chromium chromium-driver fonts-dejavu-core`); without them
//! these tests fail, and say how to install them.
//!
//! With `CHAT_SCREENSHOT=<path>` (relative to the workspace),
//! [`screenshot_of_a_populated_page`] also saves its picture of the page there:
//! `CHAT_SCREENSHOT=docs/web-screenshot.png cargo test -p chat-server --test browser
//! screenshot` makes the README's.

mod common;

use chat_proto::ServerFrame;
use chat_server::{Config, Listeners, Server};
use common::{Client, loopback, msg_text};
use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The longest any expected change of the page may take (a loaded machine runs a
/// browser slowly).
const WAIT: Duration = Duration::from_secs(20);

/// The longest the page may take to reconnect after a restart: its backoff grows while
/// the server is away.
const RECONNECT_WAIT: Duration = Duration::from_secs(45);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str =
    "apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core";

/// One browser test at a time: each runs one or two browsers, and two cores are few.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- chromedriver --------------------------------------------------------------------

/// A running chromedriver. Dropping it kills its process group: the driver and every
/// browser it started.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts chromedriver, or fails saying how to install it.
    fn start() -> Driver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(path).exists() {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("{path} is missing: CI must install the browser ({INSTALL})");
                }
                panic!(
                    "{path} is missing: the browser tests need Chromium; install it with `{INSTALL}`"
                );
            }
        }
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own, so that the browsers it starts can be killed with it.
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            // "ChromeDriver was started successfully on port 37819." (an earlier line
            // says "on port 0"), then keep reading so that the pipe never fills.
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = port_tx.send(rest.trim_end_matches('.').parse::<u16>());
                }
            }
        });
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                // Debian's chromium wrapper script trips over two /dev/shm mounts.
                if !line.contains("unexpected operator") {
                    eprintln!("chromedriver: {line}");
                }
            }
        });
        let mut driver = Driver { child, port: 0 };
        driver.port = port_rx
            .recv_timeout(WAIT)
            .expect("chromedriver says its port")
            .expect("chromedriver's port is a number");
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The process group has the driver's id: kill it and every browser in it.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Sends a WebDriver command that fantoccini has no method for (`POST`, JSON body) and
/// returns the reply's `value`.
async fn webdriver_post(port: u16, path: &str, body: &Value) -> Value {
    let exchange = async {
        let body = body.to_string();
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let mut stream = tokio::io::BufReader::new(stream);
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.get_mut().write_all(request.as_bytes()).await?;
        // chromedriver keeps the connection open: read the head, then Content-Length bytes.
        let mut length = 0;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("a Content-Length");
            }
        }
        let mut reply = vec![0; length];
        stream.read_exact(&mut reply).await?;
        std::io::Result::Ok(reply)
    };
    let reply = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("chromedriver answers in time")
        .expect("chromedriver answers");
    let value: Value = serde_json::from_slice(&reply).expect("a JSON reply");
    value["value"].clone()
}

// ---- a browser -----------------------------------------------------------------------

/// One browser (a WebDriver session with a fresh profile) showing the page.
struct Browser {
    client: WebDriver,
    driver_port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A headless Chromium whose page area is `width` x `height` CSS pixels.
    async fn open(driver: &Driver, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            // Keeps the console for the log endpoint (`se/log`).
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a browser session");
        let session = client.session_id().await.unwrap().expect("a session id");
        let browser = Browser {
            client,
            driver_port: driver.port,
            session,
            _profile: profile,
        };
        // The window size includes the browser's frame: grow it by that much.
        let frame = browser
            .js(
                "return [outerWidth - innerWidth, outerHeight - innerHeight]",
                vec![],
            )
            .await;
        let extra = |i: usize| u32::try_from(frame[i].as_u64().unwrap_or(0)).unwrap();
        browser
            .client
            .set_window_size(width + extra(0), height + extra(1))
            .await
            .unwrap();
        browser
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        tokio::time::timeout(WAIT, self.client.execute(script, args))
            .await
            .unwrap_or_else(|_| panic!("script {script:?} hangs"))
            .unwrap_or_else(|e| panic!("script {script:?} fails: {e}"))
    }

    /// Polls `script` until it returns something truthy, and returns that; panics after
    /// `limit`, saying `what` was awaited and what the page shows.
    async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        args: Vec<Value>,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.js(script, args.clone()).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited {limit:?} for {what}; the page shows:\n{}",
                    self.dump().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.wait_until(what, WAIT, script, args).await
    }

    /// The status line and the last lines of the room on screen, for failure messages.
    async fn dump(&self) -> String {
        let shown = self
            .client
            .execute(
                "const lines = [...document.querySelectorAll('.log:not(.hidden) > *')]
                   .slice(-25).map((e) => e.className + ' | ' + e.textContent);
                 return ['status: ' + document.getElementById('status').textContent,
                         'login: ' + document.getElementById('login-error').textContent,
                         ...lines].join('\\n');",
                vec![],
            )
            .await;
        match shown {
            Ok(Value::String(text)) => text,
            other => format!("{other:?}"),
        }
    }

    /// Signs in as `nick` through the form (Enter submits) and waits for the chat.
    async fn login(&self, url: &str, nick: &str) {
        self.goto(url).await;
        let input = self.client.find(Locator::Id("nick-input")).await.unwrap();
        input.send_keys(&format!("{nick}\u{E007}")).await.unwrap();
        self.wait(
            &format!("the chat, signed in as {nick}"),
            "return !document.getElementById('chat').classList.contains('hidden')
               && document.querySelector('#rooms .room.active') !== null",
            vec![],
        )
        .await;
    }

    /// Types `line` into the input line and presses Enter.
    async fn type_line(&self, line: &str) {
        let input = self.client.find(Locator::Id("input")).await.unwrap();
        input.send_keys(&format!("{line}\u{E007}")).await.unwrap();
    }

    /// Waits for a message whose text is exactly `text` in the room on screen.
    async fn wait_message(&self, text: &str) {
        self.wait(
            &format!("the message {text:?}"),
            "return [...document.querySelectorAll('.log:not(.hidden) .message .text')]
               .some((e) => e.textContent === arguments[0])",
            vec![json!(text)],
        )
        .await;
    }

    /// The browser's console messages since the last call, through chromedriver's log
    /// endpoint (kept by the `goog:loggingPrefs` capability).
    async fn console(&self) -> Vec<Value> {
        let path = format!("/session/{}/se/log", self.session);
        let log = webdriver_post(self.driver_port, &path, &json!({ "type": "browser" })).await;
        log.as_array().cloned().expect("the browser log is a list")
    }

    /// Panics if the console holds an error (a script error, a CSP violation, a failed
    /// request...), except those `allowed` says are expected.
    async fn assert_no_console_errors(&self, allowed: impl Fn(&str) -> bool) {
        let errors: Vec<Value> = self
            .console()
            .await
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter(|entry| !allowed(entry["message"].as_str().unwrap_or_default()))
            .collect();
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

// ---- the server ----------------------------------------------------------------------

/// A server with a TCP listener and (unless `tcp_only`) an HTTP one.
struct WebServer {
    tcp: SocketAddr,
    http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl WebServer {
    /// Starts a server, its HTTP listener on `http` (port 0: any), with the store in
    /// `db` (in memory if `None`) and no flood control.
    async fn start(http: SocketAddr, db: Option<&Path>) -> WebServer {
        WebServer::with(Some(http), db).await
    }

    async fn with(http: Option<SocketAddr>, db: Option<&Path>) -> WebServer {
        let config = Config {
            db: db.map(|path| path.display().to_string()),
            ..Config::unthrottled()
        };
        let tcp = chat_server::listen(loopback(), config.listen_backlog()).unwrap();
        let http = http.map(|addr| chat_server::listen(addr, config.listen_backlog()).unwrap());
        let addrs = (
            tcp.local_addr().unwrap(),
            http.as_ref()
                .map_or(loopback(), |l| l.local_addr().unwrap()),
        );
        let server = Server::new(config).expect("server starts");
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            tcp: Some(tcp),
            http,
            ..Default::default()
        };
        let task = tokio::spawn(async move {
            server
                .serve(listeners, async {
                    let _ = stopped.await;
                })
                .await
        });
        WebServer {
            tcp: addrs.0,
            http: addrs.1,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.http)
    }

    /// A TCP client of the native protocol, signed in as `nick` and in #general.
    async fn login(&self, nick: &str) -> Client {
        let stream = tokio::net::TcpStream::connect(self.tcp).await.unwrap();
        let mut client = Client::new(stream);
        assert_eq!(client.recv().await, ServerFrame::NickPrompt);
        client.login(nick).await;
        client
    }

    /// Shuts the server down (its clients are told `BYE`) and waits until it is gone.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("the server stops in time")
                .unwrap()
                .unwrap();
        }
    }
}

/// Reads `client`'s frames until it has seen a message with each of `texts` in `room`.
async fn wait_messages(client: &mut Client, room: &str, texts: &[&str]) {
    let mut missing: Vec<&str> = texts.to_vec();
    while !missing.is_empty() {
        let frame = client.recv().await;
        if let ServerFrame::Message { room: r, text, .. } = &frame
            && r.as_str() == room
        {
            missing.retain(|t| t != text);
        }
    }
}

/// The terminal client's colour of `nick` (chat-client's `render::nick_color`): FNV-1a
/// of the folded nickname into twelve SGR colours. The page must pick the same.
fn nick_color(nick: &str) -> u8 {
    const NICK_COLORS: [u8; 12] = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];
    let hash = nick
        .to_ascii_lowercase()
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    NICK_COLORS[hash as usize % NICK_COLORS.len()]
}

// ---- the tests -----------------------------------------------------------------------

#[tokio::test]
async fn two_browsers_and_a_tcp_client_chat_in_one_room() {
    let _turn = TURN.lock().await;
    let driver = Driver::start();
    let mut server = WebServer::start(loopback(), None).await;
    let alice = Browser::open(&driver, 1100, 700).await;
    let bob = Browser::open(&driver, 1100, 700).await;
    alice.login(&server.url(), "alice").await;
    bob.login(&server.url(), "bob").await;
    let mut carol = server.login("carol").await;

    // Everyone is in #general: alice's member list says so.
    alice
        .wait(
            "alice, bob and carol in alice's member list",
            "return [...document.querySelectorAll('#members li')].map((e) => e.textContent)
               .sort().join(' ') === 'alice bob carol'",
            vec![],
        )
        .await;

    alice.type_line("hello from alice").await;
    bob.type_line("hello from bob").await;
    carol.send("hello from carol").await;
    for browser in [&alice, &bob] {
        for text in ["hello from alice", "hello from bob", "hello from carol"] {
            browser.wait_message(text).await;
        }
    }
    wait_messages(
        &mut carol,
        "#general",
        &["hello from alice", "hello from bob"],
    )
    .await;

    // Each sender's name is shown in the terminal client's colour for it.
    for nick in ["alice", "bob", "carol"] {
        let class = alice
            .js(
                "const m = [...document.querySelectorAll('.log:not(.hidden) .message')]
                   .find((e) => e.querySelector('.nick').textContent === arguments[0]);
                 return m.querySelector('.nick').className",
                vec![json!(nick)],
            )
            .await;
        let want = format!("nc-{}", nick_color(nick));
        assert!(
            class.as_str().unwrap().split(' ').any(|c| c == want),
            "{nick}: {class} lacks {want}"
        );
    }

    // A room of their own: carol makes it (so she is its operator) and lets anyone set
    // its topic; the browsers join from the input line and from the join control.
    carol.send("/join #web").await;
    carol.send("/mode #web -t").await;
    carol
        .until(|f| matches!(f, ServerFrame::Mode { changes, .. } if changes == "-t"))
        .await;
    alice.type_line("/join #web").await;
    let join = bob.client.find(Locator::Id("join-input")).await.unwrap();
    join.send_keys("#web\u{E007}").await.unwrap();
    for browser in [&alice, &bob] {
        browser
            .wait(
                "#web on screen with three members",
                "return document.getElementById('room-title').textContent === '#web'
                   && document.querySelectorAll('#members li').length === 3",
                vec![],
            )
            .await;
    }
    bob.type_line("only in #web").await;
    alice.wait_message("only in #web").await;
    let (frame, _) = carol.until(|f| msg_text(f, "#web", "bob").is_some()).await;
    assert_eq!(msg_text(&frame, "#web", "bob"), Some("only in #web"));

    // A topic set from the terminal: in the header of the room, and a line in its log.
    carol.send("/topic #web <b>crabs</b> only").await;
    for browser in [&alice, &bob] {
        browser
            .wait(
                "the topic in the header and the log",
                "return document.getElementById('room-topic').textContent === '<b>crabs</b> only'
                   && [...document.querySelectorAll('.log:not(.hidden) .event.topic')]
                     .some((e) => e.textContent.includes('carol set the topic: <b>crabs</b> only'))",
                vec![],
            )
            .await;
    }
    // Cleared from the page, for the room on screen.
    bob.type_line("/topic :").await;
    alice
        .wait(
            "the topic cleared",
            "return document.getElementById('room-topic').textContent === ''
               && [...document.querySelectorAll('.log:not(.hidden) .event.topic')]
                 .some((e) => e.textContent.includes('bob cleared the topic'))",
            vec![],
        )
        .await;

    // Governance from the terminal, as the pages show it: bob made an operator (marked
    // in the member list), the room moderated, alice kicked.
    carol.send("/op #web bob").await;
    carol.send("/mode #web +m").await;
    for browser in [&alice, &bob] {
        browser
            .wait(
                "bob marked an operator, and the mode lines in the log",
                "const bob = [...document.querySelectorAll('#members li')]
                   .find((li) => li.textContent === 'bob');
                 const lines = [...document.querySelectorAll('.log:not(.hidden) .event.mode')]
                   .map((e) => e.textContent);
                 return bob && bob.classList.contains('op') && bob.dataset.status === '@'
                   && lines.some((t) => t.includes('carol sets mode +o bob'))
                   && lines.some((t) => t.includes('carol sets mode +m'))",
                vec![],
            )
            .await;
    }
    carol.send("/kick #web alice spam").await;
    bob.wait(
        "alice's kick in bob's log, and alice gone from the member list",
        "return [...document.querySelectorAll('.log:not(.hidden) .event.kick')]
               .some((e) => e.textContent.includes('alice was kicked by carol (spam)'))
           && ![...document.querySelectorAll('#members li')].some((li) => li.textContent === 'alice')",
        vec![],
    )
    .await;
    alice
        .wait(
            "#web gone from alice's rooms, and why",
            "return ![...document.querySelectorAll('#rooms li')].some((li) => li.textContent.includes('#web'))
               && document.body.textContent.includes('You were kicked from #web by carol (spam).')",
            vec![],
        )
        .await;

    alice.assert_no_console_errors(|_| false).await;
    bob.assert_no_console_errors(|_| false).await;
    alice.close().await;
    bob.close().await;
    server.stop().await;
}

#[tokio::test]
async fn html_in_a_message_stays_text() {
    let _turn = TURN.lock().await;
    let driver = Driver::start();
    let mut server = WebServer::start(loopback(), None).await;
    let alice = Browser::open(&driver, 1100, 700).await;
    alice.login(&server.url(), "alice").await;
    let mut carol = server.login("carol").await;

    let from_tcp = "<img src=x onerror=alert(1)>";
    let typed = "<b>bold</b> & <script>document.title='pwned'</script> &lt;";
    carol.send(from_tcp).await;
    alice.type_line(typed).await;
    alice.wait_message(from_tcp).await;
    alice.wait_message(typed).await;
    wait_messages(&mut carol, "#general", &[typed]).await;

    // Shown as those characters: no element was made of them, no script ran.
    let made = alice
        .js(
            "return document.querySelectorAll('#messages img, #messages b, #messages script').length",
            vec![],
        )
        .await;
    assert_eq!(made, json!(0), "elements were created from message text");
    assert_ne!(alice.client.title().await.unwrap(), "pwned");
    assert!(
        alice.client.get_alert_text().await.is_err(),
        "an alert is open"
    );
    alice.assert_no_console_errors(|_| false).await;
    alice.close().await;
    server.stop().await;
}

#[tokio::test]
async fn scrolling_up_loads_older_history() {
    let _turn = TURN.lock().await;
    let driver = Driver::start();
    let mut server = WebServer::start(loopback(), None).await;
    let mut carol = server.login("carol").await;
    for i in 1..=200 {
        carol.send(&format!("seed {i}")).await;
    }
    carol.sync().await;

    let alice = Browser::open(&driver, 1100, 700).await;
    alice.login(&server.url(), "alice").await;
    // The join shows the latest 50.
    alice.wait_message("seed 200").await;
    alice.wait_message("seed 151").await;
    let shown = "return [...document.querySelectorAll('.log:not(.hidden) .message')]
                   .map((e) => Number(e.dataset.id))";
    let ids: Vec<u64> = serde_json::from_value(alice.js(shown, vec![]).await).unwrap();
    assert_eq!(ids.len(), 50, "{ids:?}");

    // Each scroll to the top brings the page before: three pages back to the first.
    let mut oldest = ids[0];
    for page in 0..3 {
        alice
            .js("document.getElementById('messages').scrollTop = 0", vec![])
            .await;
        let now = alice
            .wait(
                &format!("older messages after scroll {page}"),
                "const ids = [...document.querySelectorAll('.log:not(.hidden) .message')]
                   .map((e) => Number(e.dataset.id));
                 const oldest = Math.min(...ids);
                 return oldest < arguments[0] && !document.querySelector('.loading') ? oldest : 0",
                vec![json!(oldest)],
            )
            .await;
        oldest = now.as_u64().unwrap();
        // Where the user was reading stays on screen: the view is not at the top.
        let top = alice
            .js(
                "return document.getElementById('messages').scrollTop",
                vec![],
            )
            .await;
        assert!(top.as_f64().unwrap() > 0.0, "the view jumped to the top");
    }
    alice.wait_message("seed 1").await;
    let ids: Vec<u64> = serde_json::from_value(alice.js(shown, vec![]).await).unwrap();
    assert_eq!(ids.len(), 200, "each message once");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");

    // Scrolled up, a new message does not move the view, and the unread ones are marked.
    alice
        .js(
            "document.getElementById('messages').scrollTop = 300",
            vec![],
        )
        .await;
    carol.send("while alice reads old ones").await;
    alice.wait_message("while alice reads old ones").await;
    let view = alice
        .js(
            "const m = document.getElementById('messages');
             const marker = document.querySelector('.log:not(.hidden) .unread-marker');
             return [m.scrollTop, marker && marker.nextElementSibling.querySelector('.text').textContent]",
            vec![],
        )
        .await;
    assert_eq!(view, json!([300, "while alice reads old ones"]));

    // At the bottom, the view follows new messages.
    alice
        .js(
            "const m = document.getElementById('messages'); m.scrollTop = m.scrollHeight",
            vec![],
        )
        .await;
    for i in 0..5 {
        carol.send(&format!("live {i}")).await;
    }
    alice.wait_message("live 4").await;
    alice
        .wait(
            "the view pinned to the bottom",
            "const m = document.getElementById('messages');
             return m.scrollHeight - m.scrollTop - m.clientHeight < 2",
            vec![],
        )
        .await;

    alice.assert_no_console_errors(|_| false).await;
    alice.close().await;
    server.stop().await;
}

#[tokio::test]
async fn the_page_recovers_after_the_server_restarts() {
    let _turn = TURN.lock().await;
    let driver = Driver::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut server = WebServer::start(loopback(), Some(&db)).await;
    let http = server.http;

    let alice = Browser::open(&driver, 1100, 700).await;
    alice.login(&server.url(), "alice").await;
    alice.type_line("/join #ops").await;
    let mut carol = server.login("carol").await;
    carol.send("/join #ops").await;
    carol.send("before the restart").await;
    alice.wait_message("before the restart").await;

    // The server goes away: the page says so.
    server.stop().await;
    alice
        .wait(
            "the page to say the connection is lost",
            "return document.getElementById('status').classList.contains('offline')",
            vec![],
        )
        .await;

    // While the page cannot connect, more is said in #ops than one join shows (a server
    // with the same store, but no web door).
    let mut meanwhile = WebServer::with(None, Some(&db)).await;
    let mut dave = meanwhile.login("dave").await;
    dave.send("/join #ops").await;
    for i in 1..=120 {
        dave.send(&format!("missed {i}")).await;
    }
    dave.sync().await;
    meanwhile.stop().await;

    // The server is back on the same port: the page reconnects, rejoins #ops, fills in
    // what it missed, and says so.
    let mut server = WebServer::start(http, Some(&db)).await;
    alice
        .wait_until(
            "the page to say it reconnected",
            RECONNECT_WAIT,
            "return document.getElementById('status').textContent.startsWith('Reconnected')
               && !document.getElementById('status').classList.contains('offline')",
            vec![],
        )
        .await;
    alice
        .wait(
            "#ops on screen again",
            "return document.getElementById('room-title').textContent === '#ops'",
            vec![],
        )
        .await;
    alice
        .wait(
            "the page to say what it filled in",
            "return [...document.querySelectorAll('.log:not(.hidden) .event.reconnected')]
               .some((e) => e.textContent.startsWith('120 messages from while you were away'))",
            vec![],
        )
        .await;
    let texts: Vec<String> = serde_json::from_value(
        alice
            .js(
                "return [...document.querySelectorAll('.log:not(.hidden) .message .text')]
                   .map((e) => e.textContent)",
                vec![],
            )
            .await,
    )
    .unwrap();
    let mut want = vec!["before the restart".to_owned()];
    want.extend((1..=120).map(|i| format!("missed {i}")));
    assert_eq!(texts, want, "each message once, in order");

    // And it chats: a message after the restart reaches it.
    let mut erin = server.login("erin").await;
    erin.send("/join #ops").await;
    erin.send("after the restart").await;
    alice.wait_message("after the restart").await;
    alice.type_line("alice is back").await;
    wait_messages(&mut erin, "#ops", &["alice is back"]).await;

    // The failed attempts to connect while the server was away are the only errors.
    alice
        .assert_no_console_errors(|message| {
            message.contains("WebSocket connection to") && message.contains("/ws")
        })
        .await;
    alice.close().await;
    server.stop().await;
}

#[tokio::test]
async fn no_console_errors_while_using_the_page() {
    let _turn = TURN.lock().await;
    let driver = Driver::start();
    let mut server = WebServer::start(loopback(), None).await;
    let alice = Browser::open(&driver, 1100, 700).await;
    alice.login(&server.url(), "alice").await;
    let mut bob = server.login("bob").await;

    // A tour of the page: commands, a private message, another room, a rename, leaving.
    for line in [
        "/help",
        "/me looks around",
        "/rooms",
        "/who",
        "/msg bob psst",
        "/join #tour",
        "hello #tour",
        "/nick alicia",
        "/part #tour bye",
        "/frobnicate",
        "/ping 42",
    ] {
        alice.type_line(line).await;
    }
    alice
        .wait(
            "the last replies",
            "return [...document.querySelectorAll('.event.pong')].some((e) => e.textContent === 'PONG 42')
               && document.querySelectorAll('#messages .error').length === 1
               && [...document.querySelectorAll('.event.rename')]
                    .some((e) => e.textContent.endsWith('alice is now known as alicia'))",
            vec![],
        )
        .await;
    bob.send("/msg alicia hi back").await;
    alice
        .wait(
            "an unread private message",
            "return document.querySelector('#rooms .room.query .unread-count').textContent === '1'",
            vec![],
        )
        .await;

    // On a phone-sized screen the lists are drawers.
    alice.client.set_window_size(420, 800).await.unwrap();
    let toggle = alice
        .client
        .find(Locator::Id("rooms-toggle"))
        .await
        .unwrap();
    toggle.click().await.unwrap();
    alice
        .wait(
            "the room drawer open",
            "const r = document.getElementById('sidebar').getBoundingClientRect();
             return r.left >= 0 && r.width > 0",
            vec![],
        )
        .await;

    alice.assert_no_console_errors(|_| false).await;
    // The console is really read: an error logged now is seen.
    alice
        .js("console.error('probe from the test')", vec![])
        .await;
    let seen = alice.console().await;
    assert!(
        seen.iter().any(|e| e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("probe from the test")),
        "the log endpoint does not show the console: {seen:?}"
    );
    alice.close().await;
    server.stop().await;
}

#[tokio::test]
async fn screenshot_of_a_populated_page() {
    let _turn = TURN.lock().await;
    let driver = Driver::start();
    let mut server = WebServer::start(loopback(), None).await;
    let mut users = [
        server.login("bob").await,
        server.login("carol").await,
        server.login("dave").await,
    ];
    for (who, line) in [
        (0, "/join #rust"),
        (0, "/join #general"),
        (1, "morning all"),
        (2, "morning! coffee first, then the release notes"),
        (0, "the web door is up: http://127.0.0.1:8080"),
        (1, "/me opens it in a browser"),
        (1, "works on my phone too: the room list is a drawer there"),
        (2, "and /metrics scrapes fine, prometheus is happy"),
        (0, "a thousand members in one room, still quick over ws"),
    ] {
        users[who].send(line).await;
        users[who].sync().await;
    }
    let [mut bob, mut carol, _dave] = users;
    let alice = Browser::open(&driver, 1100, 700).await;
    alice.login(&server.url(), "alice").await;
    alice
        .wait_message("a thousand members in one room, still quick over ws")
        .await;
    alice.type_line("hello from the browser, bob").await;
    alice.wait_message("hello from the browser, bob").await;
    bob.send("hi alice, welcome").await;
    alice.wait_message("hi alice, welcome").await;
    alice.type_line("/join #rust").await;
    bob.send("/join #rust").await;
    bob.send("anyone tried the new chat-bench --transport ws?")
        .await;
    alice
        .wait_message("anyone tried the new chat-bench --transport ws?")
        .await;
    alice.type_line("/join #general").await;
    alice
        .wait(
            "#general on screen",
            "return document.getElementById('room-title').textContent === '#general'",
            vec![],
        )
        .await;
    let mut judy = server.login("judy").await;
    judy.send("/quit back after lunch").await;
    alice
        .wait(
            "judy's quit",
            "return [...document.querySelectorAll('.event.quit')]
               .some((e) => e.textContent.endsWith('judy quit (back after lunch)'))",
            vec![],
        )
        .await;
    carol.send("see you in #rust").await;
    alice.wait_message("see you in #rust").await;
    bob.send("the numbers are in docs/performance.md").await;
    alice
        .wait(
            "an unread message in #rust",
            "return document.querySelector('#rooms .room[data-name=\"#rust\"] .unread-count')
               .textContent === '1'",
            vec![],
        )
        .await;

    let png = alice.client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    if let Ok(path) = std::env::var("CHAT_SCREENSHOT") {
        // Tests run in the crate's directory: a relative path is from the workspace's.
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path);
        std::fs::write(&path, &png).unwrap();
        eprintln!("screenshot saved to {}", path.display());
    }
    alice.assert_no_console_errors(|_| false).await;
    alice.close().await;
    server.stop().await;
}

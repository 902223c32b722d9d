//! The real `chat-client` binary in a pseudo-terminal, against an in-process server:
//! what a person sees. The pty's output goes through a terminal emulator (`vt100`), so
//! the tests read the screen as drawn, cursor included.
//!
//! Every wait is for something to appear on the screen (or from the server), bounded by
//! [`WAIT`]; nothing sleeps to synchronise.

#[allow(dead_code)]
mod common;

use chat_proto::ServerFrame;
use common::{Peer, TestServer, WAIT};
use portable_pty::{ChildKiller, CommandBuilder, ExitStatus, PtySize, native_pty_system};
use std::io::{Read as _, Write as _};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Instant;
use tokio::runtime::Runtime;

/// Tall enough for the whole of `/help` (client and server commands, one line each).
const ROWS: u16 = 50;
const COLUMNS: u16 = 80;

fn nonzero(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).expect("not zero")
}

/// A runtime for the server and the other users, driven from the test's thread.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// What the reader thread shares with the test: the emulated screen, and whether the
/// pty has closed (the client exited).
struct Shared {
    parser: vt100::Parser,
    closed: bool,
    /// Every byte the client wrote, to check what was never shown.
    written: Vec<u8>,
}

/// The client running in a pseudo-terminal.
struct Term {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    writer: Box<dyn std::io::Write + Send>,
    exit: mpsc::Receiver<std::io::Result<ExitStatus>>,
    killer: Box<dyn ChildKiller + Send + Sync>,
    /// Kept open for the client's whole life: closing it hangs up the terminal.
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Term {
    /// Starts the binary with `args` in a fresh 80×40 pty; `env` is added to a clean
    /// environment (no `CHAT_*`, no `NO_COLOR`).
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Term {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLUMNS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_chat-client"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        for var in ["NO_COLOR", "CHAT_NICK", "CHAT_ADDR", "CHAT_TIMEOUT"] {
            cmd.env_remove(var);
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = pty.slave.spawn_command(cmd).expect("spawn chat-client");
        drop(pty.slave);
        let killer = child.clone_killer();
        let (exit_tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(child.wait());
        });

        let shared = Arc::new((
            Mutex::new(Shared {
                parser: vt100::Parser::new(nonzero(ROWS), nonzero(COLUMNS), 0),
                closed: false,
                written: Vec::new(),
            }),
            Condvar::new(),
        ));
        let mut reader = pty.master.try_clone_reader().expect("pty reader");
        let screen = shared.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, changed) = &*screen;
                let mut shared = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    shared.closed = true;
                } else {
                    shared.parser.process(&buf[..n]);
                    shared.written.extend_from_slice(&buf[..n]);
                }
                changed.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        let writer = pty.master.take_writer().expect("pty writer");
        Term {
            shared,
            writer,
            exit,
            killer,
            _master: pty.master,
        }
    }

    /// Types `keys` (raw bytes: `\r` is Enter, `\t` Tab, `\x03` Ctrl-C).
    fn type_keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("type");
        self.writer.flush().expect("flush");
    }

    /// Waits until `ready` holds for the screen; panics with the screen after [`WAIT`].
    fn wait_for(&self, what: &str, ready: impl Fn(&Screen) -> bool) -> Screen {
        let deadline = Instant::now() + WAIT;
        let (lock, changed) = &*self.shared;
        let mut shared = lock.lock().unwrap();
        loop {
            let screen = Screen::of(shared.parser.screen());
            if ready(&screen) {
                return screen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || shared.closed {
                panic!(
                    "{} waiting for {what}; the screen:\n{}",
                    if shared.closed {
                        "the client exited"
                    } else {
                        "timed out"
                    },
                    screen.rows.join("\n")
                );
            }
            shared = changed.wait_timeout(shared, left).unwrap().0;
        }
    }

    /// Waits until the row with the cursor (the line being typed) is `row` (give or
    /// take trailing blanks, which a screen does not show).
    fn wait_for_input(&self, row: &str) -> Screen {
        let row = row.trim_end();
        self.wait_for(&format!("the input row {row:?}"), |s| s.input() == row)
    }

    /// Whether the client ever wrote `needle` to the terminal.
    fn ever_wrote(&self, needle: &str) -> bool {
        let (lock, _) = &*self.shared;
        let shared = lock.lock().unwrap_or_else(|e| e.into_inner());
        shared
            .written
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    /// Waits for the client to exit and returns how.
    fn wait_exit(&self) -> ExitStatus {
        self.exit
            .recv_timeout(WAIT)
            .expect("chat-client to exit")
            .expect("wait")
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        // A failed test must not leave the client running.
        let _ = self.killer.kill();
    }
}

/// A copy of the screen: its rows (trailing blanks trimmed), the cursor, and the
/// colours of each cell for the colour tests.
struct Screen {
    rows: Vec<String>,
    cursor_row: usize,
    /// For each row, the foreground colour of each column.
    colors: Vec<Vec<vt100::Color>>,
}

impl Screen {
    fn of(screen: &vt100::Screen) -> Screen {
        let rows = screen
            .rows(0, COLUMNS)
            .map(|row| row.trim_end().to_owned())
            .collect();
        let colors = (0..ROWS)
            .map(|r| {
                (0..COLUMNS)
                    .map(|c| {
                        screen
                            .cell(r, c)
                            .map(|cell| cell.fgcolor())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        Screen {
            rows,
            cursor_row: usize::from(screen.cursor_position().0),
            colors,
        }
    }

    /// The row being typed in.
    fn input(&self) -> &str {
        &self.rows[self.cursor_row]
    }

    /// Whether some row contains `needle`.
    fn shows(&self, needle: &str) -> bool {
        self.rows.iter().any(|row| row.contains(needle))
    }

    /// The first row containing `needle`, and its index.
    fn find(&self, needle: &str) -> Option<(usize, &str)> {
        self.rows
            .iter()
            .enumerate()
            .find(|(_, row)| row.contains(needle))
            .map(|(i, row)| (i, row.as_str()))
    }
}

/// Waits until `peer` sees `nick` join `room`.
async fn joined(peer: &mut Peer, room: &str, nick: &str) {
    peer.expect(&format!("{nick} joining {room}"), |f| {
        matches!(f, ServerFrame::Join { room: r, nick: n, .. }
            if r.as_str() == room && n.as_str() == nick)
    })
    .await;
}

/// Waits until `peer` gets `text` from `from` in a room.
async fn said(peer: &mut Peer, from: &str, text: &str) {
    peer.expect(&format!("{from} saying {text:?}"), |f| {
        matches!(f, ServerFrame::Message { from: n, text: t, .. }
            if n.as_str() == from && t == text)
    })
    .await;
}

#[test]
fn typing_survives_a_flood_of_messages() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let addr = server.addr.to_string();
    let mut bob = rt.block_on(Peer::connect(server.addr, "bob"));
    let mut term = Term::spawn(&["--nick", "alice", "--addr", &addr], &[]);
    term.wait_for_input("#general>");
    rt.block_on(joined(&mut bob, "#general", "alice"));

    let typed = "still typing, ";
    term.type_keys(typed);
    term.wait_for_input(&format!("#general> {typed}"));

    // Far more messages than the screen has rows, as fast as the server relays them,
    // while a key is typed every 20 messages.
    let more = "while flooding!";
    rt.block_on(async {
        for i in 0..300 {
            bob.send(&format!("flood {i:03} from bob")).await;
            if i % 20 == 19 {
                term.type_keys(&more[i / 20..=i / 20]);
            }
        }
    });
    let typed = format!("{typed}{more}");
    let screen = term.wait_for("the last message and key", |s| {
        s.shows("<bob> flood 299 from bob") && s.input() == format!("#general> {typed}")
    });
    // The line being typed is whole, on the last row, below every message.
    assert_eq!(screen.cursor_row, usize::from(ROWS) - 1);
    // Each row above it is one whole message, in order, with nothing typed mixed in.
    let messages = &screen.rows[..screen.cursor_row];
    for (i, row) in messages.iter().enumerate() {
        let n = 300 - messages.len() + i;
        let want = format!("[#general] <bob> flood {n:03} from bob");
        assert!(
            row.len() == "12:34 ".len() + want.len() && row.ends_with(&want),
            "row {i} is {row:?}, not {want:?}; screen:\n{}",
            screen.rows.join("\n")
        );
    }

    // Messages keep arriving between keystrokes; the line sent is exactly what was typed.
    for (i, word) in [" and", " finished", " now"].iter().enumerate() {
        term.type_keys(word);
        rt.block_on(bob.send(&format!("interruption {i}")));
    }
    term.wait_for("the last interruption", |s| s.shows("<bob> interruption 2"));
    let complete = format!("{typed} and finished now");
    term.wait_for_input(&format!("#general> {complete}"));
    term.type_keys("\r");
    term.wait_for("alice's message", |s| {
        s.shows(&format!("[#general] <alice> {complete}"))
    });
    term.wait_for_input("#general>");
    rt.block_on(said(&mut bob, "alice", &complete));

    // Ctrl-C leaves cleanly: /quit, the server's goodbye, exit status 0.
    term.type_keys("\x03");
    rt.block_on(bob.expect("alice's quit", |f| {
        matches!(f, ServerFrame::Quit { nick, reason: Some(r), .. }
            if nick.as_str() == "alice" && r == "quit")
    }));
    let status = term.wait_exit();
    assert!(status.success(), "{status:?}");
    term.wait_for("the goodbye", |s| s.shows("-- bye: quit"));
}

#[test]
fn tab_completes_commands_rooms_and_nicknames() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let addr = server.addr.to_string();
    let _bob = rt.block_on(Peer::connect(server.addr, "bob"));
    let mut bobby = rt.block_on(Peer::connect(server.addr, "bobby"));
    let mut term = Term::spawn(&["--nick", "alice", "--addr", &addr], &[]);
    term.wait_for("the member list", |s| {
        s.shows("-- in #general:") && s.input() == "#general>"
    });

    // Nicknames of the room; at the start of a line, with ": ". Tab again: the next.
    term.type_keys("bo\t");
    term.wait_for_input("#general> bob:");
    term.type_keys("\t");
    term.wait_for_input("#general> bobby:");
    term.type_keys("\x15"); // Ctrl-U
    term.wait_for_input("#general>");

    // A command, then a room.
    term.type_keys("/jo\t#gen\t");
    term.wait_for_input("#general> /join #general");
    term.type_keys("\x15");

    // /msg takes a nickname; the message goes to bobby.
    term.type_keys("/msg bobb\thello there\r");
    rt.block_on(bobby.expect("alice's private message", |f| {
        matches!(f, ServerFrame::Private { from, text, .. }
            if from.as_str() == "alice" && text == "hello there")
    }));
    term.wait_for("the private message", |s| {
        s.shows("[pm] <alice -> bobby> hello there")
    });

    // Up brings the line back from the history.
    term.wait_for_input("#general>");
    term.type_keys("\x1b[A");
    term.wait_for_input("#general> /msg bobby hello there");

    // Ctrl-D leaves on an empty line only.
    term.type_keys("\x04");
    term.wait_for_input("#general> /msg bobby hello there");
    term.type_keys("\x15\x04");
    let status = term.wait_exit();
    assert!(status.success(), "{status:?}");
}

#[test]
fn reconnects_after_the_server_drops() {
    let rt = runtime();
    let mut first = rt.block_on(TestServer::start());
    let addr = first.addr;
    let mut term = Term::spawn(
        &[
            "--nick",
            "alice",
            "--addr",
            &addr.to_string(),
            "--reconnect",
        ],
        &[],
    );
    term.wait_for_input("#general>");
    term.type_keys("/join #rust\r");
    term.wait_for_input("#rust>");
    term.type_keys("typed before");
    term.wait_for_input("#rust> typed before");

    rt.block_on(first.shutdown());
    let screen = term.wait_for("the notice", |s| s.shows("-- reconnecting in 0.5s"));
    assert!(screen.shows("!! connection lost: "), "{:?}", screen.rows);
    // While offline, the prompt says so and what was typed stays.
    term.wait_for_input("#rust (offline)> typed before");

    let _second = rt.block_on(TestServer::start_on(addr));
    // Rejoined #rust, current again, and the typed text is still there.
    let after_reconnecting = |s: &Screen, needle: &str| {
        s.find("-- reconnected as alice")
            .is_some_and(|(i, _)| s.rows[i..].iter().any(|r| r.contains(needle)))
    };
    term.wait_for("the reconnection", |s| {
        after_reconnecting(s, "-- now talking in #rust") && s.input() == "#rust> typed before"
    });
    let screen = term.wait_for_input("#rust> typed before");
    assert!(
        after_reconnecting(&screen, "[#rust] --> alice joined"),
        "{:?}",
        screen.rows
    );

    // The new server knows alice in #rust, and her next line reaches it.
    let mut carol = rt.block_on(Peer::connect(addr, "carol"));
    rt.block_on(carol.send("/join #rust"));
    rt.block_on(carol.expect("the members of #rust", |f| {
        matches!(f, ServerFrame::Members { room, members }
            if room.as_str() == "#rust" && members.iter().any(|m| m.nick.as_str() == "alice"))
    }));
    term.type_keys(", sent after\r");
    rt.block_on(said(&mut carol, "alice", "typed before, sent after"));

    term.type_keys("\x03");
    let status = term.wait_exit();
    assert!(status.success(), "{status:?}");
}

#[test]
fn colours_help_and_the_nickname_prompt() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let addr = server.addr.to_string();
    let mut bob = rt.block_on(Peer::connect(server.addr, "bob"));

    // Without --nick, the client asks on the prompt row.
    let mut colored = Term::spawn(&["--addr", &addr], &[]);
    colored.wait_for_input("Choose a nickname:");
    colored.type_keys("alice\r");
    colored.wait_for_input("#general>");
    let plain = Term::spawn(&["--nick", "carol", "--addr", &addr], &[("NO_COLOR", "1")]);
    plain.wait_for_input("#general>");
    rt.block_on(joined(&mut bob, "#general", "carol"));

    rt.block_on(bob.send("hi alice and carol"));
    let needle = "<bob> hi alice and carol";
    for (term, colours) in [(&colored, true), (&plain, false)] {
        let screen = term.wait_for("bob's message", |s| s.shows(needle));
        let (row, text) = screen.find(needle).unwrap();
        let col = text.find("bob>").unwrap();
        let bob_colour = screen.colors[row][col];
        assert_eq!(
            bob_colour != vt100::Color::Default,
            colours,
            "colour of bob's nickname: {bob_colour:?}"
        );
        if !colours {
            let coloured = screen
                .colors
                .iter()
                .flatten()
                .any(|c| *c != vt100::Color::Default);
            assert!(!coloured, "NO_COLOR: no colour at all");
        }
    }

    // /help: the client's commands and keys, then the server's, one line each.
    colored.type_keys("/help\r");
    let screen = colored.wait_for("the help", |s| s.shows("-- //text"));
    let (client, _) = screen.find("-- /clear ").expect("the client's /clear");
    let (server, _) = screen.find("-- /join #room ").expect("the server's /join");
    assert!(client < server, "{:?}", screen.rows);
    assert!(screen.shows("-- Tab, Shift-Tab "), "{:?}", screen.rows);

    // /clear is the client's: the screen empties, the server never sees it.
    colored.type_keys("/clear\r");
    let screen = colored.wait_for("a clear screen", |s| !s.shows("-- //text"));
    assert_eq!(screen.cursor_row, 0);
    assert_eq!(screen.input(), "#general>");
}

/// A fake server for `alice`, whose nickname is registered: it asks for her password,
/// welcomes her into `#general`, answers `/ping` and `/quit`, and passes on every line
/// it gets (the password first).
async fn registered_alice(listener: tokio::net::TcpListener, lines: mpsc::Sender<String>) {
    use futures::{SinkExt, StreamExt};
    let (stream, _) = listener.accept().await.expect("accept");
    let mut wire = tokio_util::codec::Framed::new(stream, chat_proto::LineCodec::default());
    let t = "2026-11-24T12:00:00.000Z";
    wire.send("NICK").await.expect("send");
    let _nick = wire.next().await;
    wire.send("PASS").await.expect("send");
    while let Some(Ok(Ok(line))) = wire.next().await {
        let reply = if lines.send(line.clone()).is_err() {
            return;
        } else if line == "/quit" {
            vec!["BYE :quit".to_owned()]
        } else if let Some(token) = line.strip_prefix("/ping ") {
            vec![format!("PONG :{token}")]
        } else if line.starts_with('/') {
            vec![]
        } else if line.starts_with("hello") {
            vec![format!("MSG #general alice {t} 2 :{line}")]
        } else {
            // The password.
            vec![
                "WELCOME alice :hi alice".to_owned(),
                format!("JOIN #general alice {t} 1"),
                "MEMBERS #general alice".to_owned(),
                "CURRENT #general".to_owned(),
                "ACCOUNT alice identified".to_owned(),
            ]
        };
        for frame in reply {
            wire.send(frame).await.expect("send");
        }
    }
}

#[test]
fn a_password_typed_at_the_prompt_is_never_shown_nor_recalled() {
    let rt = runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (lines_tx, lines) = mpsc::channel();
    rt.spawn(registered_alice(listener, lines_tx));
    let next_line = || lines.recv_timeout(WAIT).expect("a line at the server");
    let mut term = Term::spawn(&["--nick", "alice", "--addr", &addr], &[]);

    term.wait_for_input("Password for alice:");
    term.type_keys("s3cret pass\r");
    assert_eq!(next_line(), "s3cret pass");
    term.wait_for("the welcome", |s| {
        s.shows("-- alice is yours: password accepted") && s.input() == "#general>"
    });

    // The argument of /register is masked as it is typed, and sent as typed.
    term.type_keys("/register n3w-passw0rd");
    term.wait_for_input("#general> /register ************");
    term.type_keys("\r");
    assert_eq!(next_line(), "/register n3w-passw0rd");
    term.type_keys("hello\r");
    assert_eq!(next_line(), "hello");
    term.wait_for("the echo", |s| s.shows("<alice> hello"));
    // Up, Up: only "hello" is in the history, not the /register line.
    term.type_keys("\x1b[A\x1b[Ax");
    term.wait_for_input("#general> hellox");

    term.type_keys("\x15\x03");
    let status = term.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(
        term.ever_wrote("Password for alice: "),
        "what is written is seen"
    );
    assert!(
        !term.ever_wrote("s3cret"),
        "the password reached the screen"
    );
    assert!(
        !term.ever_wrote("n3w-passw0rd"),
        "the new password reached the screen"
    );
}

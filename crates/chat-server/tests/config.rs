//! The configuration file (`--config`): its values apply, flags and environment
//! variables override them, a bad file is one error naming the file, the line and the
//! key, and `print-config` writes a file that gives the same configuration back.
//!
//! Every run of the binary here starts without the caller's `CHAT_*` variables, so
//! that only what a test sets counts.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// The longest the binary may take to start listening, or to exit.
const WAIT: Duration = Duration::from_secs(20);

/// A syntactically valid argon2id PHC string.
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$\
                    7k0Tmz8yC5bHmnX0mqJQb6RkMdUw9KcKKXeKoZ0JvqA";

/// The binary with `args` and `env`, and none of the caller's `CHAT_*` variables.
fn command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CHAT_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs the binary to its end (`print-config`, or a refused start).
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the binary exits in time")
        .unwrap()
}

/// `text` written to `name` in `dir`; its path.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A server started from the binary, with its start log.
struct Serving {
    child: tokio::process::Child,
    log: Vec<serde_json::Value>,
}

impl Serving {
    /// Starts the binary with `args` (and JSON logs) and reads its log until it listens.
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Serving {
        let mut child = command(args, env)
            .args(["--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        tokio::time::timeout(WAIT, async {
            loop {
                let line = stderr.next_line().await.unwrap().expect("a start log");
                let entry: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("the server said: {line}"));
                let listening = entry["fields"]["message"] == "listening";
                log.push(entry);
                if listening {
                    break;
                }
            }
        })
        .await
        .expect("the server starts in time");
        // Keep draining its log, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        Serving { child, log }
    }

    /// The field `field` of the start log line whose message is `message`.
    fn logged(&self, message: &str, field: &str) -> &serde_json::Value {
        let entry = self
            .log
            .iter()
            .find(|e| e["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in the start log: {:?}", self.log));
        &entry["fields"][field]
    }

    /// Kills the server (by its PID) and waits for it.
    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A file that sets the listener, the store, the backlog and the connection limit
/// (the last two are logged at start).
const FILE: &str = "\
# A test configuration.
addr = \"127.0.0.1:0\"
http-addr = \"off\"
db = \":memory:\"
listen-backlog = 77
max-connections = 123
";

#[tokio::test]
async fn a_file_value_applies() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "chat.toml", FILE);
    let server = Serving::start(&["--config", &file], &[]).await;
    assert_eq!(server.logged("listening", "backlog"), 77);
    assert_eq!(server.logged("database", "db"), ":memory:");
    let max = &server
        .log
        .iter()
        .find(|e| e["fields"]["max_connections"].is_u64());
    assert_eq!(max.unwrap()["fields"]["max_connections"], 123);
    let addr = server
        .logged("listening", "addr")
        .as_str()
        .unwrap()
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_ne!(
        addr,
        chat_proto::DEFAULT_ADDR,
        "the file's port 0, not the default"
    );
    assert_eq!(server.logged("configuration file", "path"), file.as_str());
    assert_eq!(server.logged("configuration file", "operators"), 0);
    tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(&addr))
        .await
        .unwrap()
        .expect("it serves on the address of the file");
    server.stop().await;
}

#[tokio::test]
async fn a_flag_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "chat.toml", FILE);
    let args = ["--config", &file, "--listen-backlog", "88"];
    let server = Serving::start(&args, &[("CHAT_LISTEN_BACKLOG", "99")]).await;
    assert_eq!(
        server.logged("listening", "backlog"),
        88,
        "the flag, over the variable and the file"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_variable_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "chat.toml", FILE);
    // The file named by CHAT_CONFIG this time.
    let env = [
        ("CHAT_CONFIG", file.as_str()),
        ("CHAT_LISTEN_BACKLOG", "99"),
    ];
    let server = Serving::start(&[], &env).await;
    assert_eq!(server.logged("listening", "backlog"), 99);
    assert_eq!(server.logged("configuration file", "path"), file.as_str());
    server.stop().await;
}

/// The binary refuses `text` as its configuration file with one line naming the file,
/// the place and the key: `expected` after the file's path.
async fn refused(text: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", text);
    let output = run(&["--config", &file, "--db", ":memory:"], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!("chat-server: error: {file}:{expected}\n"),
        "one line on standard error"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn an_unknown_key_is_refused_with_its_line() {
    refused(
        "addr = \"127.0.0.1:0\"\n\nmax-lines = 4096\n",
        "3:1: key `max-lines`: unknown key (did you mean `max-line`?): the keys are the \
         long flags of `chat-server --help` without their dashes, `motd` and \
         `[[operator]]` tables",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_type_is_refused_with_its_line() {
    refused(
        "# limits\nmax-rooms = 8\nlimit-loopback = \"sometimes\"\n",
        "3:18: key `limit-loopback`: wrong type: expected true or false, found a string",
    )
    .await;
    refused(
        "idle-timeout = [\"5m\"]\n",
        "1:16: key `idle-timeout`: wrong type: expected a string or a number, found an array",
    )
    .await;
}

#[tokio::test]
async fn a_bad_value_is_refused_with_its_line() {
    refused(
        "max-line = 4096\nidle-timeout = \"soon\"\n",
        "2:16: key `idle-timeout`: invalid value 'soon' for '--idle-timeout \
         <IDLE_TIMEOUT>': \"soon\" is not a duration like 30s, 500ms or 2m",
    )
    .await;
    // Even when a flag would override it: the file itself is wrong.
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "max-rooms = 0\n");
    let output = run(
        &["--config", &file, "--max-rooms", "5", "print-config"],
        &[],
    )
    .await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(":1:13: key `max-rooms`"),
        "{output:?}"
    );
}

#[tokio::test]
async fn a_syntax_error_or_a_bad_operator_is_refused_with_its_line() {
    refused(
        "max-line = 4096\nmotd = hello\n",
        "2:8: key `motd`: string values must be quoted, expected literal string",
    )
    .await;
    refused(
        "[[operator]]\nname = \"alice\"\nhash = \"hunter2\"\n",
        "3:8: key `operator`: `hash` is not an argon2 hash (a PHC string): password hash \
         string missing field",
    )
    .await;
}

#[tokio::test]
async fn a_missing_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("none.toml");
    let output = run(&["--config", file.to_str().unwrap()], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "chat-server: error: cannot read the configuration file {}: No such file or \
             directory (os error 2)\n",
            file.display()
        )
    );
}

/// `print-config` writes the configuration in force (file, variables, flags) as a file
/// that, read back, gives the same configuration, and so does its output without a file.
#[tokio::test]
async fn print_config_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{FILE}flood-rate = 0.5\nlimit-loopback = true\nidle-timeout = \"5m\"\n\
         http-allow-origin = [\"https://a.example\", \"https://b.example\"]\n\
         http-proxy-header = \"x-real-ip\"\nmotd = \"Welcome, \\\"friend\\\"\"\n\
         [[operator]]\nname = \"alice\"\nhash = \"{HASH}\"\n"
    );
    let file = write(dir.path(), "chat.toml", &text);
    let args = ["--config", &file, "--max-line", "999", "print-config"];
    let output = run(&args, &[("CHAT_WS_PING", "7s")]).await;
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    for line in [
        "addr = \"127.0.0.1:0\"",
        "listen-backlog = 77",
        "max-connections = 123",
        "max-line = 999",
        "ws-ping = \"7s\"",
        "flood-rate = 0.5",
        "limit-loopback = true",
        "idle-timeout = \"5m\"",
        "http-allow-origin = [\"https://a.example\", \"https://b.example\"]",
        "http-proxy-header = \"x-real-ip\"",
        "handshake-timeout = \"30s\"",
        "# tls-cert =",
        "motd = 'Welcome, \"friend\"'",
        "[[operator]]",
        "name = \"alice\"",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line:?} in the printed configuration:\n{printed}"
        );
    }
    assert!(
        printed.contains("# Longest line a client may send, in bytes"),
        "help as comments:\n{printed}"
    );

    let again = write(dir.path(), "printed.toml", &printed);
    let output = run(&["--config", &again, "print-config"], &[]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), printed);

    // The built-in defaults, printed, read back the same too.
    let output = run(&["print-config"], &[]).await;
    assert!(output.status.success(), "{output:?}");
    let defaults = String::from_utf8(output.stdout).unwrap();
    let file = write(dir.path(), "defaults.toml", &defaults);
    let output = run(&["--config", &file, "print-config"], &[]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), defaults);

    // And the printed file serves.
    let server = Serving::start(&["--config", &again], &[]).await;
    assert_eq!(server.logged("listening", "backlog"), 77);
    assert_eq!(server.logged("configuration file", "operators"), 1);
    assert_eq!(server.logged("configuration file", "motd"), true);
    server.stop().await;
}

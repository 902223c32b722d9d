//! `chat-client`: talk to a chat server from a terminal or a script.
//!
//! Parses flags, asks for a nickname if none was given, connects (over TLS with
//! `--tls`), wires the terminal (a line editor, see `chat_client::terminal`) or, when
//! standard input or output is not a terminal, plain standard input and output to
//! [`chat_client::Connection`], and turns any error into one line on standard error and
//! a non-zero exit code.
//!
//! A registered nickname's password comes from `--password-file`, else `CHAT_PASSWORD`,
//! else a prompt that does not echo, when standard input is a terminal.

use anyhow::{Context as _, bail};
use chat_client::state::{self, SharedState};
use chat_client::terminal::{self, TerminalInput, TerminalOutput};
use chat_client::transport::DEFAULT_TLS_ADDR;
use chat_client::{
    Backoff, ClientError, Connection, Connector, Options, Outcome, ServerStream, Trust,
};
use chat_proto::{LineCodec, Password};
use clap::Parser;
use futures::{SinkExt, Stream, StreamExt};
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;

/// A terminal client for the chat server.
///
/// Lines typed are sent to the current room; lines starting with `/` are commands (see
/// below). In a terminal, messages appear above the line being typed, Tab completes
/// commands, rooms and nicknames, Up and Down recall earlier lines, and Ctrl-C or
/// Ctrl-D leaves. With standard input or output not a terminal, each line of input is
/// sent in turn, and at the end of input the client waits until the server has handled
/// every line, then quits. Colours are used only on a terminal, and never with NO_COLOR
/// set.
#[derive(Debug, Parser)]
#[command(version, after_help = commands_help())]
struct Args {
    /// Nickname to use; without it, the client asks for one (on a terminal), or takes
    /// the first line of standard input (after a "Choose a nickname: " prompt on
    /// standard error).
    #[arg(long, short, env = "CHAT_NICK")]
    nick: Option<String>,

    /// Address of the server, host:port [default: 127.0.0.1:55555, or with --tls
    /// 127.0.0.1:55556].
    #[arg(long, short, env = "CHAT_ADDR")]
    addr: Option<String>,

    /// Connect with TLS. The server's certificate must verify (against the system's
    /// trusted certificates, or --ca-cert) for the host of --addr (or --tls-name);
    /// otherwise the client stops, it never falls back to plain TCP.
    #[arg(long, env = "CHAT_TLS", value_parser = clap::builder::BoolishValueParser::new())]
    tls: bool,

    /// With --tls: trust exactly the certificates in this PEM file instead of the
    /// system's, for example a self-signed server's cert.pem from `chat-server gen-cert`.
    #[arg(long, env = "CHAT_CA_CERT", value_name = "PEM", requires = "tls")]
    ca_cert: Option<PathBuf>,

    /// With --tls: the name the server's certificate must be valid for, when it is not
    /// the host of --addr.
    #[arg(long, env = "CHAT_TLS_NAME", value_name = "NAME", requires = "tls")]
    tls_name: Option<String>,

    /// File whose first line is the password of a registered nickname, sent when the
    /// server asks for it. Without it: the CHAT_PASSWORD environment variable, else a
    /// prompt on the terminal.
    #[arg(long, env = "CHAT_PASSWORD_FILE", value_name = "PATH")]
    password_file: Option<PathBuf>,

    /// Seconds to wait for the server before giving up (connecting, handshake, the
    /// confirmation at the end of input, the goodbye after /quit).
    #[arg(long, env = "CHAT_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,

    /// When the connection drops, connect again (waiting 0.5 s, then twice as long
    /// each time, up to 30 s), with the same nickname, rooms and current room. Lines
    /// typed meanwhile are sent once reconnected. Works with piped input too.
    #[arg(long)]
    reconnect: bool,

    /// With --reconnect: how many attempts in a row may fail before giving up.
    #[arg(long, default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    reconnect_attempts: u32,
}

/// The chat commands, for the end of `--help`.
fn commands_help() -> String {
    let mut help = "Commands, typed in the chat:\n".to_owned();
    for (usage, what) in chat_proto::command::HELP {
        help.push_str(&format!("  {usage:<24} {what}\n"));
    }
    help.push_str("Commands of the client, in a terminal:\n");
    for (usage, what) in chat_client::complete::CLIENT_COMMANDS {
        help.push_str(&format!("  {usage:<24} {what}\n"));
    }
    help
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-client: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<Outcome> {
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let mut opts = Options::new(args.nick.clone().unwrap_or_default());
    opts.timeout = Duration::from_secs(args.timeout);
    opts.password = password(&args)?;
    let connector = connector(&args, opts.timeout)?;
    // https://no-color.org: set and not empty means no colours.
    opts.color = stdout_is_terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|term| term != "dumb");
    if std::io::stdin().is_terminal() && stdout_is_terminal {
        let state = state::shared();
        let (mut input, mut output, guard) = terminal::open(state.subscribe(), opts.color)?;
        let io = (&mut input, &mut output);
        let result = run_terminal(&args, &connector, opts, state, io).await;
        // The terminal is itself again before an error is printed.
        drop(guard);
        result
    } else {
        run_lines(&args, &connector, opts).await
    }
}

/// How to reach the server, from `--addr`, `--tls`, `--ca-cert` and `--tls-name`.
fn connector(args: &Args, timeout: Duration) -> Result<Connector, ClientError> {
    let default = if args.tls {
        DEFAULT_TLS_ADDR
    } else {
        chat_proto::DEFAULT_ADDR
    };
    let addr = args.addr.clone().unwrap_or_else(|| default.to_owned());
    if !args.tls {
        return Ok(Connector::plain(addr, timeout));
    }
    let trust = match &args.ca_cert {
        Some(path) => Trust::File(path.clone()),
        None => Trust::System,
    };
    Connector::tls(addr, timeout, &trust, args.tls_name.as_deref())
}

/// The password given ahead: the first line of `--password-file`, else
/// `CHAT_PASSWORD`. Never printed, not even in an error.
fn password(args: &Args) -> anyhow::Result<Option<Password>> {
    if let Some(path) = &args.password_file {
        return password_from_file(path).map(Some);
    }
    match std::env::var("CHAT_PASSWORD") {
        Ok(password) if !password.is_empty() => Ok(Some(Password::new(password))),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("CHAT_PASSWORD is not valid UTF-8"),
    }
}

/// The first line of the file at `path`, without its line ending.
fn password_from_file(path: &Path) -> anyhow::Result<Password> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password from {}", path.display()))?;
    let line = text.split('\n').next().unwrap_or_default();
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        bail!("the first line of {} is empty: no password", path.display());
    }
    Ok(Password::new(line))
}

fn backoff(args: &Args) -> Backoff {
    Backoff {
        attempts: args.reconnect_attempts,
        ..Backoff::default()
    }
}

/// The chat in a terminal, with the line editor.
async fn run_terminal(
    args: &Args,
    connector: &Connector,
    mut opts: Options,
    state: SharedState,
    (input, output): (&mut TerminalInput, &mut TerminalOutput),
) -> anyhow::Result<Outcome> {
    let renderer = opts.renderer();
    let mut nick = match &args.nick {
        Some(nick) => nick.clone(),
        None => match ask_nick_in_terminal(input, output).await? {
            Some(nick) => nick,
            None => return Ok(Outcome::Quit),
        },
    };
    let conn = connector.connect().await?;
    let mut connection = Connection::with_state(conn, &opts, state);
    loop {
        let registered = match connection.register(&nick).await {
            Err(ClientError::PasswordNeeded { .. }) => {
                let Some(password) = ask_password_in_terminal(input, output, &nick).await? else {
                    return Ok(Outcome::Quit);
                };
                // Kept for --reconnect, which registers again.
                opts.password = Some(password.clone());
                connection.identify(&nick, password).await
            }
            other => other,
        };
        match registered {
            Ok(_) => break,
            Err(e @ ClientError::NickRefused { .. }) => {
                output.send(renderer.error(format!("!! {e}"))).await?;
                nick = match ask_nick_in_terminal(input, output).await? {
                    Some(nick) => nick,
                    None => return Ok(Outcome::Quit),
                };
            }
            Err(e) => return Err(e.into()),
        }
    }
    opts.nick = nick;
    chat(args, connector, &opts, connection, input, output).await
}

/// Asks for the password of `nick` on the terminal's prompt, showing nothing of what is
/// typed; `None` if the user leaves instead.
async fn ask_password_in_terminal(
    input: &mut TerminalInput,
    output: &mut TerminalOutput,
    nick: &str,
) -> anyhow::Result<Option<Password>> {
    output.set_secret_prompt(format!("Password for {nick}: "))?;
    let answer = input.next().await;
    output.set_prompt(None)?;
    Ok(answer.map(Password::new))
}

/// Asks for a nickname on the terminal's prompt; `None` if the user leaves instead.
async fn ask_nick_in_terminal(
    input: &mut TerminalInput,
    output: &mut TerminalOutput,
) -> anyhow::Result<Option<String>> {
    output.set_prompt(Some("Choose a nickname: ".to_owned()))?;
    let answer = input.next().await;
    output.set_prompt(None)?;
    Ok(answer
        .filter(|nick| nick.trim() != "/quit")
        .map(|nick| nick.trim().to_owned()))
}

/// The chat with plain lines: standard input and output are not both terminals.
async fn run_lines(
    args: &Args,
    connector: &Connector,
    mut opts: Options,
) -> anyhow::Result<Outcome> {
    let interactive = std::io::stdin().is_terminal();
    let mut input = stdin_lines();
    if args.nick.is_none() {
        opts.nick = ask_nick(&mut input, interactive).await?;
    }
    let conn = connector.connect().await?;
    let mut connection = Connection::new(conn, &opts);
    let mut nick = opts.nick.clone();
    loop {
        let registered = match connection.register(&nick).await {
            Err(ClientError::PasswordNeeded { .. }) if interactive => {
                let password = ask_password(&mut input, &nick).await?;
                opts.password = Some(password.clone());
                connection.identify(&nick, password).await
            }
            other => other,
        };
        match registered {
            Ok(_) => break,
            Err(e @ ClientError::NickRefused { .. }) if interactive => {
                eprintln!("chat-client: {e}");
                nick = ask_nick(&mut input, interactive).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    opts.nick = nick;
    let output = FramedWrite::new(tokio::io::stdout(), LineCodec::default());
    chat(args, connector, &opts, connection, input, output).await
}

/// The chat on a registered connection, reconnecting if asked to.
async fn chat<I, O>(
    args: &Args,
    connector: &Connector,
    opts: &Options,
    connection: Connection<ServerStream>,
    input: I,
    output: O,
) -> anyhow::Result<Outcome>
where
    I: Stream<Item = String>,
    O: futures::Sink<String>,
    O::Error: std::error::Error + Send + Sync + 'static,
{
    let outcome = if args.reconnect {
        let backoff = backoff(args);
        chat_client::chat_reconnecting(connection, connector, opts, &backoff, input, output).await?
    } else {
        connection.chat(input, output).await?
    };
    Ok(outcome)
}

/// Prompts on standard error and takes the next line of input as a nickname. When
/// input is not a terminal, nothing echoes the answer, so it is written after the
/// prompt, and standard error reads as it would on a terminal.
async fn ask_nick(
    input: &mut (impl Stream<Item = String> + Unpin),
    interactive: bool,
) -> anyhow::Result<String> {
    eprint!("Choose a nickname: ");
    let _ = std::io::stderr().flush();
    let answer = input.next().await.map(|line| line.trim().to_owned());
    if !interactive || answer.is_none() {
        eprintln!("{}", answer.as_deref().unwrap_or_default());
    }
    match answer {
        Some(nick) => Ok(nick),
        None => bail!("no nickname given: standard input ended"),
    }
}

/// Prompts on standard error for the password of `nick` and takes the next line of
/// input (a terminal, here) with its echo off.
async fn ask_password(
    input: &mut (impl Stream<Item = String> + Unpin),
    nick: &str,
) -> anyhow::Result<Password> {
    eprint!("Password for {nick}: ");
    let _ = std::io::stderr().flush();
    let echo = terminal::echo_off();
    let answer = input.next().await;
    drop(echo);
    match answer {
        Some(password) => Ok(Password::new(password)),
        None => bail!("no password given: standard input ended"),
    }
}

/// Lines of standard input, read on a thread of their own.
///
/// Not `tokio::io::stdin`: its read cannot be cancelled, so a runtime waiting for it at
/// exit would hang until the user pressed Enter. A plain thread is simply left behind
/// when the process exits. Invalid UTF-8 is replaced rather than ending the input.
fn stdin_lines() -> impl Stream<Item = String> + Unpin {
    let (tx, rx) = mpsc::channel::<String>(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    }))
}

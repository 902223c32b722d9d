//! `chat-client`: talk to a chat server from a terminal or a script.
//!
//! Parses flags, asks for a nickname if none was given, wires standard input and output
//! to [`chat_client::Connection`], and turns any error into one line on standard error
//! and a non-zero exit code.

use anyhow::bail;
use chat_client::{ClientError, Connection, Options};
use chat_proto::LineCodec;
use clap::Parser;
use futures::{Stream, StreamExt};
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;

/// A terminal client for the chat server.
///
/// Lines typed are sent to the current room; lines starting with `/` are commands (see
/// below). With standard input not a terminal, each line is sent in turn, and at the end
/// of input the client waits until the server has handled every line, then quits.
#[derive(Debug, Parser)]
#[command(version, after_help = commands_help())]
struct Args {
    /// Nickname to use; without it, the first line of standard input is taken (after a
    /// "Choose a nickname: " prompt on standard error).
    #[arg(long, short, env = "CHAT_NICK")]
    nick: Option<String>,

    /// Address of the server, host:port.
    #[arg(long, short, env = "CHAT_ADDR", default_value = chat_proto::DEFAULT_ADDR)]
    addr: String,

    /// Seconds to wait for the server before giving up (connecting, handshake, the
    /// confirmation at the end of input, the goodbye after /quit).
    #[arg(long, env = "CHAT_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

/// The chat commands, for the end of `--help`.
fn commands_help() -> String {
    let mut help = "Commands, typed in the chat:\n".to_owned();
    for (usage, what) in chat_proto::command::HELP {
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

async fn run(args: Args) -> anyhow::Result<chat_client::Outcome> {
    let interactive = std::io::stdin().is_terminal();
    let mut input = stdin_lines();
    let mut opts = Options::new(args.nick.clone().unwrap_or_default());
    opts.timeout = Duration::from_secs(args.timeout);
    if args.nick.is_none() {
        opts.nick = ask_nick(&mut input, interactive).await?;
    }
    let conn = chat_client::connect(&args.addr, opts.timeout).await?;
    let mut connection = Connection::new(conn, &opts);
    let mut nick = opts.nick;
    loop {
        match connection.register(&nick).await {
            Ok(_) => break,
            Err(e @ ClientError::NickRefused { .. }) if interactive => {
                eprintln!("chat-client: {e}");
                nick = ask_nick(&mut input, interactive).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let output = FramedWrite::new(tokio::io::stdout(), LineCodec::default());
    Ok(connection.chat(input, output).await?)
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

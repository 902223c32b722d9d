//! `idle`: N connections logged in and held; how fast they connect and, with
//! `--server-pid`, what each costs the server in memory (`VmRSS` from
//! `/proc/<pid>/status` before connecting and once every connection is settled).
//!
//! By default the connections leave `#general` and sit in no room, so that connecting
//! 10,000 of them costs O(N) events, not the O(N²) `JOIN`s of one shared room; with
//! `--in-room` they all join `--room`.
//!
//! Several `idle` processes may fill one server together (`scripts/limit.sh`): each has
//! its own nicknames (a random run id), its own `--source` addresses, counts the
//! connections the server refuses at its limit instead of failing
//! (`--allow-refused`), says when all its connections are in (`--ready-file`), and ends
//! a long `--hold` early, with its report, on SIGTERM or Ctrl-C.

use crate::client::{self, Setup, SocketOptions};
use crate::live::{Live, Phase};
use crate::process::rss;
use crate::progress::Progress;
use crate::receiver::{self, Listen, Role};
use crate::report::{self, Disconnect, Disconnects, Refusals, Report, per_sec};
use crate::room::Run;
use crate::{Common, parse_duration};
use anyhow::{Context, ensure};
use chat_proto::Room;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Options of `chat-bench idle`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct IdleArgs {
    /// Options every mode takes.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: Common,

    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,

    /// How long to hold the connections once they are all in.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    #[serde(rename = "hold_s", serialize_with = "report::secs")]
    pub hold: Duration,

    /// Put every connection in --room (by default they are in no room).
    #[arg(long)]
    pub in_room: bool,

    /// Count connections the server refuses (`ERR SERVER_FULL`, `ERR
    /// TOO_MANY_CONNECTIONS`, or closed before `NICK`) and hold the others, instead of
    /// failing: for filling a server up to its limit.
    #[arg(long)]
    pub allow_refused: bool,

    /// Once every connection is in (or refused), before holding, write one JSON line
    /// (`connections`, `refused`, `connect_s`) to this file, for a script that drives
    /// several benches. Written whole under another name, then renamed.
    #[arg(long)]
    pub ready_file: Option<std::path::PathBuf>,
}

/// Figures of an `idle` run.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    /// The server addresses the connections went to, in turn.
    pub addrs: Vec<SocketAddr>,
    /// Connections logged in and held.
    pub connections: usize,
    /// Connections refused by the server (only with `--allow-refused`; otherwise a
    /// refusal fails the run).
    #[serde(flatten)]
    pub refusals: Refusals,
    /// Seconds to open, log in and settle them all.
    pub connect_s: f64,
    /// Connections per second over `connect_s`.
    pub connects_per_sec: f64,
    /// The server's resident memory before connecting, in bytes (with `--server-pid`).
    pub server_rss_before_bytes: Option<u64>,
    /// The server's resident memory with every connection in, in bytes.
    pub server_rss_after_bytes: Option<u64>,
    /// (after − before) / connections.
    pub rss_per_conn_bytes: Option<f64>,
    /// This bench's own resident memory with every connection in, in bytes.
    pub bench_rss_bytes: Option<u64>,
    /// Seconds the connections were actually held (less than `--hold` if stopped).
    pub held_s: f64,
    /// Connections that ended while held.
    pub disconnected: Vec<Disconnect>,
}

/// Runs the workload.
pub async fn run(args: &IdleArgs) -> anyhow::Result<Idle> {
    ensure!(args.connections >= 1, "--connections must be at least 1");
    let door = args.common.door()?;
    let targets = args.common.targets().await?;
    let room_name = Room::new(&args.common.room).context("--room")?;
    let rss_before = args.common.server_pid.map(rss).transpose()?;
    let run = Run::new();
    let live = &run.live;
    let total = args.connections;
    let progress = Progress::start(!args.common.no_progress, {
        let live = live.clone();
        move |elapsed| {
            let what = match live.phase() {
                Phase::Connecting => "connected",
                Phase::Syncing => "syncing",
                _ => "holding",
            };
            let refused = live.refusals().refused;
            format!(
                "idle {:>4.0}s  {what} {}/{total}{}",
                elapsed.as_secs_f64(),
                Live::get(&live.connected),
                if refused > 0 {
                    format!("  refused {refused}")
                } else {
                    String::new()
                }
            )
        }
    });

    let start = Instant::now();
    let prefix = &run.prefix;
    let setup = Setup {
        targets: &targets,
        door,
        room: args.in_room.then_some(&room_name),
        options: SocketOptions::default(),
        allow_refused: args.allow_refused,
        concurrency: args.common.connect_concurrency as usize,
        timeout: args.common.timeout,
        live,
    };
    let nicks = (0..total).map(|i| format!("{prefix}{i}")).collect();
    let mut conns = client::connect_many(&setup, nicks, |_, c| {
        let receiver = tokio::spawn(receiver::receive(
            c.frames,
            Listen::other(door.protocol, Role::Idle),
            None,
            live.clone(),
            run.stop.clone(),
        ));
        (c.nick, c.writer, receiver)
    })
    .await?;
    live.set_phase(Phase::Syncing);
    client::sync(
        conns.iter_mut().map(|(_, w, _)| w),
        door.protocol,
        live,
        args.common.timeout,
    )
    .await?;
    let connect = start.elapsed();
    let held = conns.len();
    let refusals = live.refusals();
    let rss_after = args.common.server_pid.map(rss).transpose()?;
    let bench_rss = rss(std::process::id()).ok();
    if let Some(path) = &args.ready_file {
        let line = serde_json::json!({
            "connections": held,
            "refused": refusals.refused,
            "connect_s": report::round(connect.as_secs_f64(), 3),
        });
        write_whole(path, &format!("{line}\n"))?;
    }

    live.set_phase(Phase::Running);
    let hold_start = Instant::now();
    hold_for(args.hold).await;
    let held_s = hold_start.elapsed();
    run.stop.cancel();
    let mut disconnects = Disconnects::default();
    for (nick, writer, receiver) in conns {
        if let Ok(seen) = receiver.await
            && let Some(reason) = seen.closed
        {
            disconnects.closed(nick, reason);
        }
        drop(writer);
    }
    progress.finish().await;

    let rss_per_conn = rss_before
        .zip(rss_after)
        .filter(|_| held > 0)
        .map(|(before, after)| report::round((after as f64 - before as f64) / held as f64, 1));
    Ok(Idle {
        addrs: targets.addrs(),
        connections: held,
        refusals,
        connect_s: report::round(connect.as_secs_f64(), 3),
        connects_per_sec: per_sec(held as u64, connect),
        server_rss_before_bytes: rss_before,
        server_rss_after_bytes: rss_after,
        rss_per_conn_bytes: rss_per_conn,
        bench_rss_bytes: bench_rss,
        held_s: report::round(held_s.as_secs_f64(), 3),
        disconnected: disconnects.into_list(|_| "member"),
    })
}

/// Writes `text` to `path` so that a reader sees all of it or no file: to a temporary
/// name beside it first, then renamed.
fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    std::fs::write(&temporary, text)
        .with_context(|| format!("cannot write {}", Path::new(&temporary).display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot rename the ready file to {}", path.display()))
}

/// Waits `hold`, or less if the process is told to stop (SIGTERM, Ctrl-C): a script
/// that holds connections as long as it needs them ends the hold and still gets the
/// report. A zero hold returns at once, without touching signal handling.
async fn hold_for(hold: Duration) {
    if hold.is_zero() {
        return;
    }
    tokio::select! {
        () = tokio::time::sleep(hold) => {}
        () = stop_signal() => {}
    }
}

/// Completes on Ctrl-C, or SIGTERM on Unix; never if they cannot be listened for.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

impl Idle {
    /// The summary and the JSON line.
    pub fn report(&self, args: &IdleArgs) -> Report {
        let mut s = String::new();
        let where_ = if args.in_room {
            format!("in room {}", args.common.room)
        } else {
            "in no room".to_owned()
        };
        let _ = writeln!(
            s,
            "idle: {} connections {where_} at {}",
            args.connections,
            args.common.addr_list()
        );
        let _ = writeln!(
            s,
            "  connected          {} in {:.2} s ({:.0} connections/s)",
            self.connections, self.connect_s, self.connects_per_sec
        );
        if self.refusals.refused > 0 {
            let _ = writeln!(s, "  refused            {}", self.refusals.line());
        }
        if let (Some(before), Some(after), Some(per)) = (
            self.server_rss_before_bytes,
            self.server_rss_after_bytes,
            self.rss_per_conn_bytes,
        ) {
            let _ = writeln!(
                s,
                "  server RSS         {:.1} MiB before, {:.1} MiB after: {:.0} bytes ({:.1} KiB) per connection",
                before as f64 / 1048576.0,
                after as f64 / 1048576.0,
                per,
                per / 1024.0
            );
        }
        if let Some(own) = self.bench_rss_bytes {
            let _ = writeln!(s, "  bench RSS          {:.1} MiB", own as f64 / 1048576.0);
        }
        report::disconnect_lines(&mut s, &self.disconnected);
        Report::new("idle", args, self, s)
    }
}

//! `chat-bench`, the chat server's load generator (in the spirit of `redis-benchmark`).
//!
//! It speaks the native line protocol: it connects many clients (raising its own
//! open-file limit first), logs each one in with a unique nickname, puts them in one room
//! and runs one of four workloads:
//!
//! - [`throughput`]: S senders × M messages as fast as the sockets accept them;
//!   delivered messages per second, loss, out-of-order, latency percentiles.
//! - [`rate`]: an open-loop fixed total rate for a duration; latency percentiles from a
//!   send timestamp carried in every message, loss; optionally with members that never
//!   read (`--stalled`) and members that flood the room (`--flooders`).
//! - [`idle`]: N connections held; with `--server-pid`, the server's memory per
//!   connection.
//! - [`churn`]: connect, handshake and quit cycles per second.
//! - [`burst`]: N connections opened at once, C in flight, none logged in: how long
//!   each waits for the server's `NICK`, and how many never get it (a listen backlog
//!   that overflows).
//!
//! `--source` spreads the connections of any mode over several loopback source
//! addresses ([`source`]), so that neither one bench nor several against one server
//! run out of ephemeral ports before the server runs out of connections.
//!
//! `--addr` may name several servers (`--addr A,B` or `--addr A --addr B`), say several
//! processes sharing their rooms: the connections of every mode are spread over them
//! round-robin, connection *i* to address *i* mod *n* ([`target`]), so one room's
//! members and its senders sit on every server. Latency is measured as always, from the
//! send time each message carries to its arrival: a delivery whose sender and receiver
//! sit on different servers crosses from one to the other.
//!
//! `--transport ws` ([`transport`]) runs the same workloads through the server's web
//! door (`ws://ADDR/ws`, one protocol line per WebSocket text message) instead of plain
//! TCP, every mode but `burst`: what a browser user costs beside a terminal user.
//!
//! `--protocol irc` ([`protocol`]) speaks IRC instead of the native protocol, every mode
//! but `burst`, to the server's IRC door (`--irc-addr`) or to another IRC server (ngIRCd
//! for a comparison): what an IRC user costs beside a native one. Over IRC a sender does
//! not receive its own messages, so each reaches the members but its sender.
//!
//! Each run prints a summary for people on stdout, then one line of JSON with every
//! figure ([`report::Report`]); a progress line goes to stderr once a second. Every run is
//! bounded in time (`--timeout`, `--duration`) and in count.
//!
//! The server's flood control would throttle the senders to a few lines per second:
//! benchmark a server started with `--flood-rate 0`.
//!
//! The binary only parses flags, builds the runtime and calls [`run`]; the tests call
//! the modes directly against a server in the same process.

pub mod burst;
pub mod churn;
mod client;
pub mod idle;
mod irc;
mod live;
mod message;
pub mod process;
mod progress;
pub mod protocol;
pub mod rate;
mod receiver;
pub mod report;
mod room;
pub mod source;
pub mod target;
pub mod throughput;
pub mod transport;

use anyhow::Context;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// What `chat-bench --help` shows above the list of modes.
const LONG_ABOUT: &str = "\
Load generator for the chat server: throughput, latency at a fixed rate, idle connections,
churn, connection bursts.

Start the server with flood control off (`chat-server --flood-rate 0`): otherwise it reads
each bench client's lines at a few per second and the figures measure the flood limit, not
the server. Each run prints a summary on stdout, then one line of JSON with every figure;
a progress line goes to stderr.";

/// Command line of `chat-bench`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "chat-bench", version, about, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Worker threads of the bench's runtime (default: one per CPU it may run on).
    #[arg(long, global = true, env = "CHAT_BENCH_THREADS")]
    pub threads: Option<usize>,

    /// The workload.
    #[command(subcommand)]
    pub mode: Mode,
}

/// Shown under each mode's `--help`.
const FLOOD_NOTE: &str = "Benchmark a server started with `--flood-rate 0` (flood control off).";

/// The workloads.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Mode {
    /// S senders × M messages as fast as the sockets accept: messages/s, loss, latency.
    #[command(after_help = FLOOD_NOTE)]
    Throughput(throughput::ThroughputArgs),
    /// A fixed total message rate for a duration: latency percentiles and loss.
    #[command(after_help = FLOOD_NOTE)]
    Rate(rate::RateArgs),
    /// N connections held; with --server-pid, the server's RSS per connection.
    #[command(after_help = FLOOD_NOTE)]
    Idle(idle::IdleArgs),
    /// Connect, handshake and quit cycles per second.
    #[command(after_help = FLOOD_NOTE)]
    Churn(churn::ChurnArgs),
    /// N connections at once, C in flight, not logged in: time to the server's NICK, and
    /// how many never get it.
    Burst(burst::BurstArgs),
}

/// Options every mode takes.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Common {
    /// Address of the server. Any address works; the project's own tests use loopback.
    /// With `--transport ws`, the address of its web door (`chat-server --http-addr`);
    /// with `--protocol irc`, of its IRC door (`chat-server --irc-addr`) or of another
    /// IRC server. Several servers (sharing their rooms): a comma list, the flag
    /// repeated, or both; connection i goes to address i mod n (in `throughput` and
    /// `rate`, member i, and sender i is member i), so a delivery's latency crosses
    /// servers when its sender and receiver sit on different ones. `--server-pid`
    /// still measures one process.
    #[arg(
        long,
        env = "CHAT_ADDR",
        default_value = chat_proto::DEFAULT_ADDR,
        value_delimiter = ',',
        value_parser = parse_addr,
    )]
    #[serde(serialize_with = "comma_list")]
    pub addr: Vec<String>,

    /// What the clients speak: the native protocol, or IRC (`NICK`/`USER`, `JOIN`,
    /// `PRIVMSG`, no capabilities; a sender does not get its own messages back). IRC
    /// goes over TCP only; `burst` is native only.
    #[arg(long, value_enum, default_value_t = protocol::Protocol::Native)]
    pub protocol: protocol::Protocol,

    /// How the clients reach the server: the native protocol over plain TCP, or over
    /// the web door's WebSocket (`ws://ADDR/ws`, one protocol line per text message).
    /// `burst` is TCP only.
    #[arg(long, value_enum, default_value_t = transport::Transport::Tcp)]
    pub transport: transport::Transport,

    /// Room the bench clients meet in. They leave #general, so that the bench does not
    /// disturb (or get disturbed by) people there.
    #[arg(long, default_value = "#bench", value_parser = parse_room)]
    pub room: String,

    /// Connections being opened and logged in at once while setting up.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_concurrency: u32,

    /// Upper bound on each phase: setting up, and waiting for deliveries (for
    /// `throughput`, from the first message; for `rate`, after the last one).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    #[serde(rename = "timeout_s", serialize_with = "report::secs")]
    pub timeout: Duration,

    /// Process id of the server, when it runs on this machine: `idle` reports its memory
    /// per connection, the other modes its CPU use.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Source addresses to connect from, taken in turn by the connections: a range
    /// (`127.0.0.2-127.0.0.9`), a comma list, or both. Loopback only (127.0.0.0/8,
    /// ::1). Each address has its own ~28,000 ephemeral ports. Default: the kernel
    /// chooses.
    #[arg(long, value_parser = source::SourceList::parse)]
    pub source: Option<source::SourceList>,

    /// No progress line on stderr.
    #[arg(long)]
    #[serde(skip)]
    pub no_progress: bool,
}

impl Common {
    /// The transport and protocol, if they go together.
    pub(crate) fn door(&self) -> anyhow::Result<protocol::Door> {
        protocol::Door::new(self.transport, self.protocol)
    }

    /// Resolves each `--addr` to one socket address (its first), in the order given.
    pub async fn resolve(&self) -> anyhow::Result<Vec<SocketAddr>> {
        anyhow::ensure!(!self.addr.is_empty(), "--addr: no server address given");
        let mut addrs = Vec::with_capacity(self.addr.len());
        for addr in &self.addr {
            let resolved = tokio::net::lookup_host(addr)
                .await
                .with_context(|| format!("cannot resolve {addr}"))?
                .next()
                .with_context(|| format!("{addr} resolves to no address"))?;
            addrs.push(resolved);
        }
        Ok(addrs)
    }

    /// The server addresses, resolved, each with its `--source` addresses.
    pub(crate) async fn targets(&self) -> anyhow::Result<target::Targets> {
        let addrs = self.resolve().await?;
        target::Targets::new(&addrs, self.source.as_ref()).context("--source")
    }

    /// `--addr` as given, the addresses joined by commas, for the summaries.
    pub fn addr_list(&self) -> String {
        self.addr.join(",")
    }
}

/// Serialises `--addr` as one string, the addresses joined by commas: with one address,
/// the JSON line's `params.addr` is what it always was.
fn comma_list<S: serde::Serializer>(addrs: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&addrs.join(","))
}

/// Accepts one server address of a `--addr` list (resolved later): not empty.
fn parse_addr(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("an empty server address (a stray comma?)".to_owned());
    }
    Ok(s.to_owned())
}

/// Runs the workload `cli` asks for and returns its report. Raises the open-file limit
/// first, as far as the hard limit allows.
pub async fn run(cli: &Cli) -> anyhow::Result<report::Report> {
    raise_open_file_limit();
    match &cli.mode {
        Mode::Throughput(args) => Ok(throughput::run(args).await?.report(args)),
        Mode::Rate(args) => Ok(rate::run(args).await?.report(args)),
        Mode::Idle(args) => Ok(idle::run(args).await?.report(args)),
        Mode::Churn(args) => Ok(churn::run(args).await?.report(args)),
        Mode::Burst(args) => Ok(burst::run(args).await?.report(args)),
    }
}

/// Raises this process's open-file soft limit to its hard limit, so that one bench can
/// hold thousands of connections. Returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// Parses `10s`, `500ms`, `2m`, `1.5s` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("{s:?} is not a duration like 10s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Accepts a valid room name (`#` and 1 to 50 letters, digits, `-`, `_`, `.`).
fn parse_room(s: &str) -> Result<String, String> {
    chat_proto::Room::new(s)
        .map(|room| room.as_str().to_owned())
        .map_err(|e| format!("invalid room name {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
    }

    /// `--addr` of `chat-bench idle <args>`.
    fn addrs(args: &[&str]) -> Result<Vec<String>, clap::Error> {
        use clap::Parser;
        let argv = ["chat-bench", "idle"].iter().chain(args);
        let cli = Cli::try_parse_from(argv)?;
        let Mode::Idle(idle) = cli.mode else {
            unreachable!()
        };
        Ok(idle.common.addr)
    }

    #[test]
    fn several_addresses_by_commas_by_repeating_or_both() {
        let (a, b, c) = ("127.0.0.1:7000", "127.0.0.1:7001", "[::1]:7002");
        assert_eq!(addrs(&["--addr", a]).unwrap(), [a]);
        assert_eq!(addrs(&["--addr", &format!("{a},{b}")]).unwrap(), [a, b]);
        assert_eq!(addrs(&["--addr", a, "--addr", b]).unwrap(), [a, b]);
        assert_eq!(
            addrs(&["--addr", &format!("{a},{b}"), "--addr", c]).unwrap(),
            [a, b, c]
        );
        assert_eq!(addrs(&[&format!("--addr={c},{a}")]).unwrap(), [c, a]);
        // The same server twice is two addresses, taken in turn.
        assert_eq!(addrs(&["--addr", &format!("{a},{a}")]).unwrap(), [a, a]);
        assert_eq!(addrs(&["--addr", &format!("{a}, {b}")]).unwrap(), [a, b]);
        for stray in [",", &format!("{a},"), &format!("{a},,{b}"), ""] {
            assert!(addrs(&["--addr", stray]).is_err(), "{stray:?}");
        }
        if std::env::var_os("CHAT_ADDR").is_none() {
            assert_eq!(addrs(&[]).unwrap(), [chat_proto::DEFAULT_ADDR]);
        }
    }

    #[test]
    fn params_addr_stays_one_string() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["chat-bench", "idle", "--addr", "a:1,b:2", "--addr", "c:3"])
            .unwrap();
        let Mode::Idle(idle) = &cli.mode else {
            unreachable!()
        };
        let json = serde_json::to_value(idle).unwrap();
        assert_eq!(json["addr"], "a:1,b:2,c:3");
        assert_eq!(idle.common.addr_list(), "a:1,b:2,c:3");
    }

    #[tokio::test]
    async fn every_address_is_resolved_in_order() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "chat-bench",
            "idle",
            "--addr",
            "127.0.0.1:7001,[::1]:7002",
            "--addr",
            "127.0.0.1:7001",
        ])
        .unwrap();
        let Mode::Idle(idle) = &cli.mode else {
            unreachable!()
        };
        let resolved = idle.common.resolve().await.unwrap();
        let expected: Vec<SocketAddr> = ["127.0.0.1:7001", "[::1]:7002", "127.0.0.1:7001"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(resolved, expected);
        let targets = idle.common.targets().await.unwrap();
        assert_eq!(targets.addrs(), expected);
    }

    #[test]
    fn rooms() {
        assert_eq!(parse_room("#bench"), Ok("#bench".to_owned()));
        assert!(parse_room("bench").is_err());
    }
}

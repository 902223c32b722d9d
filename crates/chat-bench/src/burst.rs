//! `burst`: N connections opened as fast as loopback allows, at most C in flight, none
//! logged in. For each, the time from starting `connect()` to the server's first line
//! (`NICK`), and the time of `connect()` alone.
//!
//! This is what a listen backlog is about: the kernel completes the TCP handshake of a
//! connection the server has not accepted yet, so `connect()` returns at once, but when
//! the accept queue is full it drops the client's last handshake packet and the
//! connection waits for a retransmission (1 s, 3 s, 7 s ...) before the server ever
//! sees it. Such a connection gets its `NICK` late or not within `--nick-timeout`.
//!
//! A connection counts as in flight from `connect()` until its first line or its
//! deadline; then it is held open, not logged in, until every connection's outcome is
//! known, so that the server really has them all at once. Nothing is awaited without a
//! bound: each connection has `--nick-timeout`, the whole burst `--timeout`.

use crate::client::{self, Greeting, Refusal, SocketOptions};
use crate::live::Live;
use crate::process::{Cpu, CpuMeter};
use crate::progress::Progress;
use crate::protocol::Protocol;
use crate::report::{self, Latency, Refusals, Report, per_sec};
use crate::transport::Transport;
use crate::{Common, parse_duration};
use anyhow::ensure;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Longest first line read; the server's refusals are about 80 bytes.
const FIRST_LINE_MAX: usize = 512;

/// Longest time the histograms hold, in nanoseconds (one hour).
const MAX_NS: u64 = 3_600_000_000_000;

/// Options of `chat-bench burst`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct BurstArgs {
    /// Options every mode takes (`--connect-concurrency` is not used: see --in-flight;
    /// `--timeout` bounds the whole burst).
    #[command(flatten)]
    #[serde(flatten)]
    pub common: Common,

    /// Connections to open.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,

    /// Connections between the start of their `connect()` and their first line (or
    /// deadline) at once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub in_flight: u32,

    /// How long one connection may wait for its `NICK`, from the start of its
    /// `connect()`; past it the connection counts as without NICK.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(rename = "nick_timeout_s", serialize_with = "report::secs")]
    pub nick_timeout: Duration,
}

/// Figures of a `burst` run. Every connection is in exactly one of `got_nick`,
/// `timed_out`, `refused`, `errors` and `not_started`.
#[derive(Debug, Clone, Serialize)]
pub struct Burst {
    /// The server addresses the connections went to, in turn.
    pub addrs: Vec<SocketAddr>,
    /// Connections asked for.
    pub connections: u64,
    /// Connections whose first line was `NICK` within their bound.
    pub got_nick: u64,
    /// All the others: the failures.
    pub no_nick: u64,
    /// Connections that got no line within `--nick-timeout` (or before `--timeout`).
    pub timed_out: u64,
    /// Of `timed_out`, those whose `connect()` itself had not completed.
    pub timed_out_in_connect: u64,
    /// Connections the server refused, or closed before a line.
    #[serde(flatten)]
    pub refusals: Refusals,
    /// Connections that failed otherwise: `connect()` failed, a read failed, or the
    /// first line was not `NICK` or a refusal.
    pub errors: u64,
    /// What the first error was.
    pub first_error: Option<String>,
    /// Connections never started because `--timeout` passed first.
    pub not_started: u64,
    /// Seconds from the first `connect()` to the last outcome.
    pub elapsed_s: f64,
    /// `got_nick` per second over `elapsed_s`.
    pub nicks_per_sec: f64,
    /// CPU use over `elapsed_s`.
    #[serde(flatten)]
    pub cpu: Cpu,
    /// Start of `connect()` to the `NICK` line, over the connections that got it.
    pub nick_latency: Latency,
    /// `connect()` alone, over the connections whose `connect()` completed.
    pub connect_latency: Latency,
}

/// How one connection ended.
#[derive(Debug)]
enum Outcome {
    /// `NICK` came: after `connect` for `connect()`, `nick` from its start.
    Nick { connect: Duration, nick: Duration },
    /// No line before the deadline; `connect` if `connect()` had completed.
    TimedOut { connect: Option<Duration> },
    /// The server refused it.
    Refused { refusal: Refusal, connect: Duration },
    /// Anything else.
    Error {
        what: String,
        connect: Option<Duration>,
    },
}

/// Counters for the progress line.
#[derive(Debug, Default)]
struct Counts {
    started: AtomicU64,
    nick: AtomicU64,
    failed: AtomicU64,
}

/// Runs the workload.
pub async fn run(args: &BurstArgs) -> anyhow::Result<Burst> {
    ensure!(
        !args.nick_timeout.is_zero(),
        "--nick-timeout must be positive"
    );
    ensure!(
        args.common.transport == Transport::Tcp,
        "burst measures the wait for NICK over plain TCP: --transport ws is not supported"
    );
    ensure!(
        args.common.protocol == Protocol::Native,
        "burst measures the wait for the native NICK prompt: --protocol irc is not supported"
    );
    let targets = args.common.targets().await?;
    let total = u64::from(args.connections);
    let counts = Arc::new(Counts::default());
    let progress = Progress::start(!args.common.no_progress, {
        let counts = counts.clone();
        move |elapsed| {
            format!(
                "burst {:>4.0}s  started {}/{total}  NICK {}  failed {}",
                elapsed.as_secs_f64(),
                Live::get(&counts.started),
                Live::get(&counts.nick),
                Live::get(&counts.failed),
            )
        }
    });

    let cpu = CpuMeter::start(args.common.server_pid);
    let start = Instant::now();
    let end = start + args.common.timeout;
    let in_flight = Arc::new(Semaphore::new(args.in_flight as usize));
    let mut tasks = JoinSet::new();
    let mut not_started = 0;
    for i in 0..total {
        let Ok(Ok(permit)) = tokio::time::timeout_at(end, in_flight.clone().acquire_owned()).await
        else {
            not_started = total - i;
            break;
        };
        let (addr, source) = targets.nth(usize::try_from(i).unwrap_or(usize::MAX));
        let options = SocketOptions {
            source,
            ..SocketOptions::default()
        };
        let deadline = end.min(Instant::now() + args.nick_timeout);
        let counts = counts.clone();
        tasks.spawn(async move {
            Live::add(&counts.started, 1);
            let (outcome, stream) = greet(addr, options, deadline).await;
            // Out of flight: the next connection may start while this one is held.
            drop(permit);
            let counter = match outcome {
                Outcome::Nick { .. } => &counts.nick,
                _ => &counts.failed,
            };
            Live::add(counter, 1);
            (outcome, stream)
        });
    }

    let mut figures = Tally::new(total, not_started)?;
    // Held until every outcome is known, then dropped together.
    let mut held: Vec<TcpStream> = Vec::with_capacity(total as usize);
    while let Some(joined) = tasks.join_next().await {
        let (outcome, stream) = joined?;
        figures.add(outcome);
        held.extend(stream);
    }
    let elapsed = start.elapsed();
    let cpu = cpu.stop();
    drop(held);
    progress.finish().await;
    Ok(figures.finish(targets.addrs(), elapsed, cpu))
}

/// Connects to `addr` and reads the server's first line, all before `deadline`.
/// Returns the connection too, when it got that far, so that it can be held.
async fn greet(
    addr: SocketAddr,
    options: SocketOptions,
    deadline: Instant,
) -> (Outcome, Option<TcpStream>) {
    let socket = match client::socket(addr, options) {
        Ok(socket) => socket,
        Err(e) => {
            let what = format!("{e:#}");
            return (
                Outcome::Error {
                    what,
                    connect: None,
                },
                None,
            );
        }
    };
    let start = Instant::now();
    let mut stream = match tokio::time::timeout_at(deadline, socket.connect(addr)).await {
        Err(_) => return (Outcome::TimedOut { connect: None }, None),
        Ok(Err(e)) => {
            let what = format!("cannot connect to {addr}: {e}");
            return (
                Outcome::Error {
                    what,
                    connect: None,
                },
                None,
            );
        }
        Ok(Ok(stream)) => stream,
    };
    let connect = start.elapsed();
    let outcome = match tokio::time::timeout_at(deadline, first_line(&mut stream)).await {
        Err(_) => Outcome::TimedOut {
            connect: Some(connect),
        },
        Ok(Err(e)) => Outcome::Error {
            what: format!("reading the first line: {e}"),
            connect: Some(connect),
        },
        Ok(Ok(line)) => {
            let nick = start.elapsed();
            match Greeting::of(line.as_deref()) {
                Greeting::Nick => Outcome::Nick { connect, nick },
                Greeting::Refused(refused) => Outcome::Refused {
                    refusal: refused.refusal,
                    connect,
                },
                Greeting::Unexpected(line) => Outcome::Error {
                    what: format!("expected NICK, got: {line}"),
                    connect: Some(connect),
                },
            }
        }
    };
    (outcome, Some(stream))
}

/// The first line the server sends, without its `\n`; `None` if it closes first.
async fn first_line(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut line = Vec::with_capacity(64);
    let mut buf = [0u8; FIRST_LINE_MAX];
    loop {
        let n = stream.read(&mut buf[..FIRST_LINE_MAX - line.len()]).await?;
        if n == 0 {
            // A partial line before the close is as good as none.
            return Ok(None);
        }
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = memchr::memchr(b'\n', &line) {
            line.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
        if line.len() >= FIRST_LINE_MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("no end of line in the first {FIRST_LINE_MAX} bytes"),
            ));
        }
    }
}

/// The outcomes, summed as they come.
struct Tally {
    connections: u64,
    not_started: u64,
    timed_out: u64,
    timed_out_in_connect: u64,
    full: u64,
    per_address: u64,
    closed: u64,
    errors: u64,
    first_error: Option<String>,
    nick: Histogram<u64>,
    connect: Histogram<u64>,
}

impl Tally {
    fn new(connections: u64, not_started: u64) -> anyhow::Result<Tally> {
        Ok(Tally {
            connections,
            not_started,
            timed_out: 0,
            timed_out_in_connect: 0,
            full: 0,
            per_address: 0,
            closed: 0,
            errors: 0,
            first_error: None,
            nick: Histogram::new_with_bounds(1, MAX_NS, 3)?,
            connect: Histogram::new_with_bounds(1, MAX_NS, 3)?,
        })
    }

    fn add(&mut self, outcome: Outcome) {
        let connect = match outcome {
            Outcome::Nick { connect, nick } => {
                self.nick.saturating_record(nanos(nick));
                Some(connect)
            }
            Outcome::TimedOut { connect } => {
                self.timed_out += 1;
                self.timed_out_in_connect += u64::from(connect.is_none());
                connect
            }
            Outcome::Refused { refusal, connect } => {
                *match refusal {
                    Refusal::Full => &mut self.full,
                    Refusal::PerAddress => &mut self.per_address,
                    Refusal::Closed => &mut self.closed,
                } += 1;
                Some(connect)
            }
            Outcome::Error { what, connect } => {
                self.errors += 1;
                self.first_error.get_or_insert(what);
                connect
            }
        };
        if let Some(connect) = connect {
            self.connect.saturating_record(nanos(connect));
        }
    }

    fn finish(self, addrs: Vec<SocketAddr>, elapsed: Duration, cpu: Cpu) -> Burst {
        let got_nick = self.nick.len();
        Burst {
            addrs,
            connections: self.connections,
            got_nick,
            no_nick: self.connections - got_nick,
            timed_out: self.timed_out,
            timed_out_in_connect: self.timed_out_in_connect,
            refusals: Refusals::new(self.full, self.per_address, self.closed),
            errors: self.errors,
            first_error: self.first_error,
            not_started: self.not_started,
            elapsed_s: report::round(elapsed.as_secs_f64(), 3),
            nicks_per_sec: per_sec(got_nick, elapsed),
            cpu,
            nick_latency: Latency::from_nanos(&self.nick),
            connect_latency: Latency::from_nanos(&self.connect),
        }
    }
}

/// A duration in nanoseconds, at least 1 (the histograms' lowest value).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl Burst {
    /// The summary and the JSON line.
    pub fn report(&self, args: &BurstArgs) -> Report {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "burst: {} connections, {} in flight, NICK within {:?}, at {}",
            args.connections,
            args.in_flight,
            args.nick_timeout,
            args.common.addr_list()
        );
        let pct = |n: u64| 100.0 * n as f64 / self.connections.max(1) as f64;
        let _ = writeln!(
            s,
            "  got NICK           {} of {} ({:.1}%) in {:.2} s ({:.0}/s)",
            self.got_nick,
            self.connections,
            pct(self.got_nick),
            self.elapsed_s,
            self.nicks_per_sec
        );
        let _ = writeln!(
            s,
            "  no NICK            {} ({:.1}%): timed out {} ({} still in connect()), refused {}, errors {}, not started {}",
            self.no_nick,
            pct(self.no_nick),
            self.timed_out,
            self.timed_out_in_connect,
            self.refusals.line(),
            self.errors,
            self.not_started
        );
        if let Some(error) = &self.first_error {
            let _ = writeln!(s, "  first error        {error}");
        }
        let _ = writeln!(s, "  connect → NICK     {}", self.nick_latency.line());
        let _ = writeln!(s, "  connect() alone    {}", self.connect_latency.line());
        if self.no_nick > 0 {
            let _ = writeln!(
                s,
                "  (percentiles of the connections that got NICK; the {} without are above)",
                self.no_nick
            );
        }
        if let Some(cpu) = self.cpu.line() {
            let _ = writeln!(s, "  cpu                {cpu}");
        }
        Report::new("burst", args, self, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_is_counted_once() {
        let mut tally = Tally::new(7, 1).unwrap();
        let ms = Duration::from_millis;
        tally.add(Outcome::Nick {
            connect: ms(1),
            nick: ms(2),
        });
        tally.add(Outcome::TimedOut { connect: None });
        tally.add(Outcome::TimedOut {
            connect: Some(ms(1)),
        });
        tally.add(Outcome::Refused {
            refusal: Refusal::Full,
            connect: ms(1),
        });
        tally.add(Outcome::Refused {
            refusal: Refusal::Closed,
            connect: ms(1),
        });
        tally.add(Outcome::Error {
            what: "cannot connect".into(),
            connect: None,
        });
        let burst = tally.finish(Vec::new(), Duration::from_secs(1), Cpu::default());
        assert_eq!(burst.got_nick, 1);
        assert_eq!(burst.no_nick, 6);
        assert_eq!(
            burst.got_nick
                + burst.timed_out
                + burst.refusals.refused
                + burst.errors
                + burst.not_started,
            burst.connections
        );
        assert_eq!(burst.timed_out_in_connect, 1);
        assert_eq!(burst.refusals.refused_server_full, 1);
        assert_eq!(burst.refusals.refused_closed, 1);
        assert_eq!(burst.nick_latency.samples, 1);
        assert_eq!(burst.connect_latency.samples, 4);
        assert_eq!(burst.first_error.as_deref(), Some("cannot connect"));
    }
}

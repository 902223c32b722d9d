//! `churn`: connect, handshake (`NICK`, nickname, `WELCOME`) and `/quit` (until the
//! server closes), over and over from a few concurrent workers for a duration; cycles
//! per second and the time of one cycle.

use crate::client::{Client, SocketOptions};
use crate::live::{Live, Phase};
use crate::process::{Cpu, CpuMeter};
use crate::progress::{Progress, short};
use crate::protocol::Door;
use crate::report::{self, Latency, Report, per_sec};
use crate::room::Run;
use crate::target::Targets;
use crate::{Common, parse_duration};
use anyhow::ensure;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Pause of a worker after a failed cycle, so that a refusing server is not spun on.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Options of `chat-bench churn`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ChurnArgs {
    /// Options every mode takes.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: Common,

    /// How long to keep cycling.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(rename = "duration_s", serialize_with = "report::secs")]
    pub duration: Duration,

    /// Workers cycling at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// Figures of a `churn` run.
#[derive(Debug, Clone, Serialize)]
pub struct Churn {
    /// The server addresses the cycles went to, in turn.
    pub addrs: Vec<SocketAddr>,
    /// Cycles completed.
    pub cycles: u64,
    /// Seconds the workers ran.
    pub elapsed_s: f64,
    /// Cycles per second.
    pub cycles_per_sec: f64,
    /// Cycles that failed.
    pub errors: u64,
    /// What the first failure was.
    pub first_error: Option<String>,
    /// CPU use while cycling.
    #[serde(flatten)]
    pub cpu: Cpu,
    /// Time of one cycle, from connecting to the server's close.
    #[serde(flatten)]
    pub latency: Latency,
}

/// What one worker did.
struct Worker {
    cycles: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs the workload.
pub async fn run(args: &ChurnArgs) -> anyhow::Result<Churn> {
    ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let door = args.common.door()?;
    let targets = Arc::new(args.common.targets().await?);
    let run = Run::new();
    let live = &run.live;
    live.set_phase(Phase::Running);
    let progress = Progress::start(!args.common.no_progress, {
        let live = live.clone();
        let mut last = (Duration::ZERO, 0);
        move |elapsed| {
            let cycles = Live::get(&live.cycles);
            let rate = per_sec(cycles - last.1, elapsed - last.0);
            last = (elapsed, cycles);
            format!(
                "churn {:>4.0}s  cycles {}  {}/s",
                elapsed.as_secs_f64(),
                short(cycles as f64),
                short(rate)
            )
        }
    });
    let prefix = &run.prefix;
    let cpu = CpuMeter::start(args.common.server_pid);
    let start = Instant::now();
    let end = start + args.duration;
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            tokio::spawn(cycle(
                targets.clone(),
                door,
                format!("{prefix}c{w}_"),
                end,
                args.common.timeout,
                live.clone(),
            ))
        })
        .collect();
    let mut cycles = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)?;
    let (mut errors, mut first_error) = (0, None);
    for worker in workers {
        let worker = worker.await?;
        cycles.add(&worker.cycles)?;
        errors += worker.errors;
        first_error = first_error.or(worker.first_error);
    }
    let elapsed = start.elapsed();
    let cpu = cpu.stop();
    progress.finish().await;
    Ok(Churn {
        addrs: targets.addrs(),
        cycles: cycles.len(),
        elapsed_s: report::round(elapsed.as_secs_f64(), 3),
        cycles_per_sec: per_sec(cycles.len(), elapsed),
        errors,
        first_error,
        cpu,
        latency: Latency::from_nanos(&cycles),
    })
}

/// One worker: starts cycles until `end`, each bounded by `timeout`, each to the next
/// server address of the run's turn.
async fn cycle(
    targets: Arc<Targets>,
    door: Door,
    prefix: String,
    end: Instant,
    timeout: Duration,
    live: Arc<Live>,
) -> Worker {
    let mut worker = Worker {
        cycles: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .expect("constant histogram bounds are valid"),
        errors: 0,
        first_error: None,
    };
    let mut n = 0u64;
    while Instant::now() < end {
        let started = Instant::now();
        let nick = format!("{prefix}{n}");
        n += 1;
        let once = async {
            let (addr, source) = targets.next();
            let options = SocketOptions {
                source,
                ..SocketOptions::default()
            };
            let client = Client::connect(addr, door, nick, options).await?;
            client.quit().await
        };
        let result = match tokio::time::timeout(timeout, once).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("cycle not done within {timeout:?}")),
        };
        match result {
            Ok(()) => {
                let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                worker.cycles.saturating_record(ns.max(1));
                Live::add(&live.cycles, 1);
            }
            Err(e) => {
                worker.errors += 1;
                worker.first_error.get_or_insert_with(|| format!("{e:#}"));
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    worker
}

impl Churn {
    /// The summary and the JSON line.
    pub fn report(&self, args: &ChurnArgs) -> Report {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "churn: {} workers for {:?} at {}",
            args.concurrency,
            args.duration,
            args.common.addr_list()
        );
        let _ = writeln!(
            s,
            "  cycles             {} in {:.2} s: {:.0} cycles/s (connect, handshake, /quit)",
            self.cycles, self.elapsed_s, self.cycles_per_sec
        );
        let _ = writeln!(s, "  cycle time         {}", self.latency.line());
        if let Some(cpu) = self.cpu.line() {
            let _ = writeln!(s, "  cpu                {cpu}");
        }
        if self.errors > 0 {
            let _ = writeln!(
                s,
                "  errors             {} (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        Report::new("churn", args, self, s)
    }
}

//! What `/proc` says about a process (Linux): its resident memory and its CPU time, so
//! that a run can tell what a connection costs the server and which side was busy.

use anyhow::Context;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat` (`USER_HZ`, fixed at
/// 100 by the kernel's user-space interface).
const USER_HZ: f64 = 100.0;

/// The resident memory of process `pid`, in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn rss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// The CPU time process `pid` has used, user and system, all threads.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_secs_f64(ticks as f64 / USER_HZ))
        .with_context(|| format!("cannot read the CPU times in {path}"))
}

/// `VmRSS:    12345 kB` → bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(n * 1024),
        Some(_) => None,
    }
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after it.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU use of the bench and of the server over a measurement window, in percent of
/// one core (above 100 when several threads ran).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cpu {
    /// This bench (all its threads).
    pub bench_cpu_pct: Option<f64>,
    /// The server, with `--server-pid`.
    pub server_cpu_pct: Option<f64>,
}

/// Started at the beginning of a measurement window; [`CpuMeter::stop`] at its end.
#[derive(Debug)]
pub(crate) struct CpuMeter {
    start: Instant,
    bench: Option<Duration>,
    server: Option<(u32, Duration)>,
}

impl CpuMeter {
    pub(crate) fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            start: Instant::now(),
            bench: cpu_time(std::process::id()).ok(),
            server: server_pid.and_then(|pid| Some((pid, cpu_time(pid).ok()?))),
        }
    }

    pub(crate) fn stop(&self) -> Cpu {
        let wall = self.start.elapsed().as_secs_f64();
        let pct = |before: Duration, after: Duration| {
            crate::report::round(100.0 * (after - before).as_secs_f64() / wall.max(1e-9), 1)
        };
        Cpu {
            bench_cpu_pct: self
                .bench
                .and_then(|before| Some(pct(before, cpu_time(std::process::id()).ok()?))),
            server_cpu_pct: self
                .server
                .and_then(|(pid, before)| Some(pct(before, cpu_time(pid).ok()?))),
        }
    }
}

impl Cpu {
    /// `bench 64%, server 58% of a core`, or nothing if unknown.
    pub fn line(&self) -> Option<String> {
        let part = |who: &str, pct: Option<f64>| pct.map(|p| format!("{who} {p:.0}%"));
        let parts: Vec<String> = [
            part("bench", self.bench_cpu_pct),
            part("server", self.server_cpu_pct),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| format!("{} (of one core)", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tchat-server\nVmPeak:\t  999 kB\nVmRSS:\t    2048 kB\nThreads: 2\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn cpu_ticks_are_counted_after_the_name() {
        let stat = "42 (chat server) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(280));
    }

    #[test]
    fn own_figures_are_readable() {
        assert!(rss(std::process::id()).unwrap() > 0);
        assert!(cpu_time(std::process::id()).is_ok());
        let meter = CpuMeter::start(Some(std::process::id()));
        assert!(meter.stop().server_cpu_pct.is_some());
    }
}

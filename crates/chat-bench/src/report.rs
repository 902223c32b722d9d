//! What a run prints: a summary for people, then one line of JSON with every figure
//! (`{"mode": ..., "params": {...}, <figures>}`), for scripts that keep results.

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The result of a run, ready to print.
#[derive(Debug, Clone)]
pub struct Report {
    /// Lines for people.
    pub summary: String,
    /// Every figure, with the mode and its parameters.
    pub json: serde_json::Value,
}

impl Report {
    /// Builds a report from a mode's parameters and figures.
    pub fn new(
        mode: &'static str,
        params: &impl Serialize,
        figures: &impl Serialize,
        summary: String,
    ) -> Report {
        let mut json = serde_json::json!({ "mode": mode });
        json["params"] = serde_json::to_value(params).unwrap_or_default();
        if let Ok(serde_json::Value::Object(figures)) = serde_json::to_value(figures)
            && let Some(object) = json.as_object_mut()
        {
            object.extend(figures);
        }
        Report { summary, json }
    }

    /// The JSON line, without its newline.
    pub fn json_line(&self) -> String {
        self.json.to_string()
    }
}

impl std::fmt::Display for Report {
    /// The summary, then the JSON line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.summary, self.json_line())
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// How many latencies were measured.
    pub samples: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Highest.
    pub max_us: f64,
}

impl Latency {
    /// Summarises a histogram of nanoseconds.
    pub fn from_nanos(histogram: &Histogram<u64>) -> Latency {
        if histogram.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| round(ns as f64 / 1000.0, 1);
        Latency {
            samples: histogram.len(),
            mean_us: round(histogram.mean() / 1000.0, 1),
            p50_us: us(histogram.value_at_quantile(0.5)),
            p90_us: us(histogram.value_at_quantile(0.9)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        }
    }

    /// One line: `p50 41.2 µs  p99 ...`.
    pub fn line(&self) -> String {
        if self.samples == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {}, {} samples)",
            micros(self.p50_us),
            micros(self.p90_us),
            micros(self.p99_us),
            micros(self.p999_us),
            micros(self.max_us),
            micros(self.mean_us),
            self.samples
        )
    }
}

/// Connections the server turned away instead of asking for a nickname.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Refusals {
    /// All of them.
    pub refused: u64,
    /// `ERR SERVER_FULL`: the server was at its connection limit.
    pub refused_server_full: u64,
    /// `ERR TOO_MANY_CONNECTIONS`: the per-address limit (not applied to loopback
    /// unless the server is told to).
    pub refused_too_many_connections: u64,
    /// Closed before `NICK` without a word: the server does that past its limit on
    /// refusals in progress.
    pub refused_closed: u64,
}

impl Refusals {
    pub(crate) fn new(server_full: u64, too_many: u64, closed: u64) -> Refusals {
        Refusals {
            refused: server_full + too_many + closed,
            refused_server_full: server_full,
            refused_too_many_connections: too_many,
            refused_closed: closed,
        }
    }

    /// `12 (SERVER_FULL 10, closed 2)`.
    pub fn line(&self) -> String {
        let parts: Vec<String> = [
            ("SERVER_FULL", self.refused_server_full),
            ("TOO_MANY_CONNECTIONS", self.refused_too_many_connections),
            ("closed before NICK", self.refused_closed),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect();
        if parts.is_empty() {
            return self.refused.to_string();
        }
        format!("{} ({})", self.refused, parts.join(", "))
    }
}

/// A connection that ended before the run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disconnect {
    /// Its nickname.
    pub nick: String,
    /// `member`, `stalled` or `flooder`.
    pub role: &'static str,
    /// Why: the reason of the `QUIT` its room saw, or what its own connection saw.
    pub reason: String,
}

/// Collects disconnections, one per nickname; a `QUIT` reason (the server's word) wins
/// over what the connection itself saw.
#[derive(Debug, Default)]
pub(crate) struct Disconnects {
    by_nick: BTreeMap<String, (bool, String)>,
}

impl Disconnects {
    pub(crate) fn quit(&mut self, nick: String, reason: String) {
        self.by_nick.insert(nick, (true, reason));
    }

    pub(crate) fn closed(&mut self, nick: String, reason: String) {
        self.by_nick.entry(nick).or_insert((false, reason));
    }

    pub(crate) fn into_list(self, role: impl Fn(&str) -> &'static str) -> Vec<Disconnect> {
        self.by_nick
            .into_iter()
            .map(|(nick, (_, reason))| Disconnect {
                role: role(&nick),
                nick,
                reason,
            })
            .collect()
    }
}

/// Summary lines for disconnections (at most a few, then a count).
pub(crate) fn disconnect_lines(out: &mut String, list: &[Disconnect]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "  disconnected       {}", list.len());
    for d in list.iter().take(10) {
        let _ = writeln!(out, "    {} ({}): {}", d.nick, d.role, d.reason);
    }
    if list.len() > 10 {
        let _ = writeln!(out, "    ... and {} more", list.len() - 10);
    }
}

/// With several server addresses, a summary line with how many members and senders each
/// has: `  servers            127.0.0.1:7000 3 members (1 sender), ...`.
pub(crate) fn spread_line(
    out: &mut String,
    addrs: &[std::net::SocketAddr],
    members: &[usize],
    senders: &[usize],
) {
    if addrs.len() < 2 {
        return;
    }
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let parts: Vec<String> = addrs
        .iter()
        .zip(members.iter().zip(senders))
        .map(|(addr, (&m, &s))| format!("{addr} {} ({})", plural(m, "member"), plural(s, "sender")))
        .collect();
    let _ = writeln!(out, "  servers            {}", parts.join(", "));
}

/// `1234.5` µs as `1.23 ms`, `41.2` as `41.2 µs`.
pub(crate) fn micros(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

/// `n` per second over `elapsed`, 0 if no time passed.
pub(crate) fn per_sec(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        round(n as f64 / secs, 1)
    } else {
        0.0
    }
}

/// Rounds to `digits` decimals, so the JSON stays readable.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Serialises a duration as seconds (`timeout_s: 60.0`).
pub fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_in_microseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for ns in [10_000, 20_000, 30_000, 40_000, 1_000_000] {
            h.record(ns).unwrap();
        }
        let l = Latency::from_nanos(&h);
        assert_eq!(l.samples, 5);
        assert_eq!(l.p50_us, 30.0);
        assert!((l.max_us - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(Latency::from_nanos(&Histogram::new(3).unwrap()).samples, 0);
    }

    #[test]
    fn json_has_mode_params_and_flat_figures() {
        #[derive(Serialize)]
        struct Figures {
            delivered: u64,
            #[serde(flatten)]
            latency: Latency,
        }
        let figures = Figures {
            delivered: 7,
            latency: Latency::default(),
        };
        let report = Report::new(
            "x",
            &serde_json::json!({"members": 3}),
            &figures,
            String::new(),
        );
        let v: serde_json::Value = serde_json::from_str(&report.json_line()).unwrap();
        assert_eq!(v["mode"], "x");
        assert_eq!(v["params"]["members"], 3);
        assert_eq!(v["delivered"], 7);
        assert_eq!(v["p99_us"], 0.0);
    }

    #[test]
    fn readable_units() {
        assert_eq!(micros(41.24), "41.2 µs");
        assert_eq!(micros(1500.0), "1.50 ms");
        assert_eq!(micros(2_500_000.0), "2.50 s");
    }
}

//! `rate`: an open-loop fixed total message rate for a duration; the latency of every
//! delivery, from the send timestamp each message carries, and loss.
//!
//! The senders share the rate and are spread evenly in time; each sends what is due
//! whether or not earlier messages have arrived (open loop), so a slow server shows up
//! as latency, not as a lower rate. How late the senders themselves were against their
//! schedule is reported (`max_send_lag_us`), so that a saturated bench is visible.
//!
//! For testing the server's protection against abuse, the room can also hold members
//! that never read their sockets (`--stalled`, with small receive buffers) and members
//! that send as fast as their sockets accept (`--flooders`). Latency and loss are
//! still measured on the ordinary senders' messages at the ordinary members; for the
//! flooders the run reports how many of their lines the server accepted (the echoes
//! they saw), and every member that was disconnected, with the server's reason.

use crate::client::{self, Client, Setup, SocketOptions};
use crate::live::{Live, Phase};
use crate::message;
use crate::process::{Cpu, CpuMeter};
use crate::progress::{Progress, short};
use crate::protocol::{Envelope, Protocol};
use crate::receiver::{Listen, Role};
use crate::report::{self, Disconnect, Latency, Report, micros, per_sec};
use crate::room::{self, BATCH, Finish, Run, Tally};
use crate::transport::Writer;
use crate::{Common, parse_duration};
use anyhow::{Context, ensure};
use bytes::BytesMut;
use chat_proto::Room;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A send more than this behind its schedule counts as late.
const LATE: Duration = Duration::from_millis(1);

/// Options of `chat-bench rate`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RateArgs {
    /// Options every mode takes.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: Common,

    /// Ordinary members of the room (they read everything), the senders included.
    #[arg(long, default_value_t = 100)]
    pub members: usize,

    /// Ordinary members that send; they share the rate.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,

    /// Messages per second, all senders together. Each is delivered to every member:
    /// 990 msgs/s to 100 members offers 99,000 deliveries/s (over IRC, to every member
    /// but its sender: 98,010).
    #[arg(long, default_value_t = 990.0, value_parser = parse_rate)]
    pub rate: f64,

    /// How long the senders send.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(rename = "duration_s", serialize_with = "report::secs")]
    pub duration: Duration,

    /// Bytes of text per message (at least its header, `s<sender> <seq> <time>`).
    #[arg(long, default_value_t = 100)]
    pub size: usize,

    /// Extra members that join the room and then never read their sockets.
    #[arg(long, default_value_t = 0)]
    pub stalled: usize,

    /// Receive buffer (SO_RCVBUF) of the stalled members, in bytes, so that they fill up
    /// quickly.
    #[arg(long, default_value_t = 4096)]
    pub stalled_recv_buffer: u32,

    /// Extra members that send lines of --size bytes as fast as their sockets accept,
    /// for the whole duration (they read, to count their echoes).
    #[arg(long, default_value_t = 0)]
    pub flooders: usize,
}

/// A flooder's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Flooder {
    /// Its nickname.
    pub nick: String,
    /// Lines it wrote to its socket.
    pub written: u64,
    /// Echoes of its lines it received: the lines the server accepted.
    pub accepted: u64,
    /// Why its connection ended during the run, if it did.
    pub closed: Option<String>,
}

/// Figures of a `rate` run.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// The server addresses the members went to, in turn: member *i* (and sender *i*,
    /// which is member *i*) to address *i* mod *n*.
    pub addrs: Vec<SocketAddr>,
    /// Ordinary members on each address, in the order of `addrs`.
    pub members_per_addr: Vec<usize>,
    /// Senders on each address, in the order of `addrs`.
    pub senders_per_addr: Vec<usize>,
    /// Time to connect, log in and gather the members, in seconds.
    pub setup_s: f64,
    /// Deliveries per second asked for: rate × the members that receive each message.
    pub offered_deliveries_per_sec: f64,
    /// Messages the ordinary senders wrote.
    pub sent: u64,
    /// Messages per second they wrote, over the duration.
    pub sent_per_sec: f64,
    /// Deliveries due: messages sent × the ordinary members that receive each (all of
    /// them natively, all but the sender over IRC).
    pub expected: u64,
    /// Messages received by ordinary members (duplicates included).
    pub delivered: u64,
    /// Seconds from the first message to the last delivery (or the timeout).
    pub elapsed_s: f64,
    /// Deliveries per second over `elapsed_s`.
    pub msgs_per_sec: f64,
    /// Deliveries due and not made.
    pub lost: u64,
    /// Events the server said ordinary members missed (`LAGGED` counts, summed).
    pub lagged: u64,
    /// `LAGGED` frames ordinary members received.
    pub lagged_frames: u64,
    /// Messages that arrived after a later one from the same sender.
    pub out_of_order: u64,
    /// Whether `--timeout` ended the wait for the last deliveries.
    pub timed_out: bool,
    /// CPU use from the first message to the last delivery.
    #[serde(flatten)]
    pub cpu: Cpu,
    /// From each message's send timestamp to its arrival, over all ordinary members.
    /// With several addresses, a delivery whose sender and receiver sit on different
    /// servers crosses from one to the other, and its latency with it.
    #[serde(flatten)]
    pub latency: Latency,
    /// The furthest a sender fell behind its schedule, in microseconds.
    pub max_send_lag_us: f64,
    /// Messages sent more than 1 ms behind schedule.
    pub late_sends: u64,
    /// Stalled members.
    pub stalled: usize,
    /// Each flooder's figures.
    pub flooders: Vec<Flooder>,
    /// Flood lines received by ordinary members, summed.
    pub flood_received: u64,
    /// Connections (ordinary, stalled or flooding) that ended during the run.
    pub disconnected: Vec<Disconnect>,
}

/// How far a sender kept to its schedule.
#[derive(Debug, Clone, Copy, Default)]
struct Pace {
    max_lag: Duration,
    late: u64,
}

/// Runs the workload.
pub async fn run(args: &RateArgs) -> anyhow::Result<Rate> {
    ensure!(args.members >= 1, "--members must be at least 1");
    ensure!(
        (1..=args.members).contains(&args.senders),
        "--senders must be from 1 to --members ({})",
        args.members
    );
    ensure!(!args.duration.is_zero(), "--duration must be positive");
    let door = args.common.door()?;
    ensure!(
        args.flooders == 0 || door.protocol.echoes(),
        "--flooders count their own lines coming back: over IRC they do not"
    );
    let targets = args.common.targets().await?;
    let room_name = Room::new(&args.common.room).context("--room")?;
    let run = Run::new();
    let live = &run.live;
    let total = args.members + args.flooders + args.stalled;
    let progress = Progress::start(!args.common.no_progress, render(live.clone(), total));

    let setup_start = std::time::Instant::now();
    let prefix = &run.prefix;
    let mut setup = Setup {
        targets: &targets,
        door,
        room: Some(&room_name),
        options: SocketOptions::default(),
        allow_refused: false,
        concurrency: args.common.connect_concurrency as usize,
        timeout: args.common.timeout,
        live,
    };
    let nicks = (0..args.members).map(|i| format!("{prefix}{i}")).collect();
    let mut members = room::open(
        &setup,
        nicks,
        |i| (Listen::member(door.protocol, args.senders, i), None),
        &run.stop,
    )
    .await?;
    let nicks = (0..args.flooders)
        .map(|i| format!("{prefix}f{i}"))
        .collect();
    let flooder = |i| (Listen::other(door.protocol, Role::Flooder(i)), None);
    let mut flooders = room::open(&setup, nicks, flooder, &run.stop).await?;
    // Last, so that they are not already full of the others' JOINs when the run starts.
    setup.options.recv_buffer = Some(args.stalled_recv_buffer);
    let nicks = (0..args.stalled).map(|i| format!("{prefix}s{i}")).collect();
    let stalled: Vec<Client> = client::connect_many(&setup, nicks, |_, c| c).await?;
    live.set_phase(Phase::Syncing);
    room::sync(&mut members, door.protocol, live, args.common.timeout).await?;
    room::sync(&mut flooders, door.protocol, live, args.common.timeout).await?;
    let setup_s = setup_start.elapsed().as_secs_f64();

    live.set_phase(Phase::Running);
    let cpu = CpuMeter::start(args.common.server_pid);
    let envelope = Envelope::new(door.protocol, room_name.as_str());
    let start = Instant::now();
    let end = start + args.duration;
    let flooding: Vec<_> = room::take_writers(&mut flooders, args.flooders)
        .into_iter()
        .enumerate()
        .map(|(flooder, writer)| {
            tokio::spawn(flood(
                writer,
                envelope.clone(),
                flooder,
                args.size,
                end,
                live.clone(),
                run.stop.clone(),
            ))
        })
        .collect();
    let senders = room::take_writers(&mut members, args.senders)
        .into_iter()
        .enumerate()
        .map(|(sender, writer)| {
            let schedule = Schedule {
                start,
                end,
                interval: Duration::from_secs_f64(args.senders as f64 / args.rate),
                offset: Duration::from_secs_f64(sender as f64 / args.rate),
            };
            tokio::spawn(paced(
                writer,
                envelope.clone(),
                sender,
                schedule,
                args.size,
                live.clone(),
                run.stop.clone(),
            ))
        })
        .collect();
    let deadline = end + args.common.timeout;
    let (finish, last, finished) =
        room::await_deliveries(live, &envelope, members.len(), senders, deadline, &run.stop).await;
    let elapsed = last - start;
    let cpu = cpu.stop();
    let mut written = vec![0; args.flooders];
    let mut flood_writers = Vec::new();
    for task in flooding {
        if let Ok((flooder, writer, n)) = task.await {
            written[flooder] = n;
            flood_writers.push(writer);
        }
    }
    members.extend(flooders);
    let mut seen = room::gather(members).await;
    let flooders_seen = seen.split_off(args.members);
    progress.finish().await;
    let pace = finished
        .iter()
        .fold(Pace::default(), |acc, (_, _, p)| Pace {
            max_lag: acc.max_lag.max(p.max_lag),
            late: acc.late + p.late,
        });
    // Only now: closing a connection would be seen by the others as a QUIT.
    drop((finished, flood_writers, stalled));
    let tally = Tally::new(&seen, &flooders_seen);
    let sent = Live::get(&live.sent);
    let expected = sent * door.protocol.receivers(args.members);
    let flooders = flooders_seen
        .iter()
        .zip(written)
        .map(|((nick, seen), written)| Flooder {
            nick: nick.clone(),
            written,
            accepted: seen.own_echoes,
            closed: seen.closed.clone(),
        })
        .collect();
    Ok(Rate {
        addrs: targets.addrs(),
        members_per_addr: targets.per_address(args.members),
        senders_per_addr: targets.per_address(args.senders),
        setup_s: report::round(setup_s, 3),
        offered_deliveries_per_sec: report::round(
            args.rate * door.protocol.receivers(args.members) as f64,
            1,
        ),
        sent,
        sent_per_sec: per_sec(sent, args.duration),
        expected,
        delivered: tally.received,
        elapsed_s: report::round(elapsed.as_secs_f64(), 3),
        msgs_per_sec: per_sec(tally.received, elapsed),
        lost: expected.saturating_sub(tally.received),
        lagged: tally.lagged,
        lagged_frames: tally.lagged_frames,
        out_of_order: tally.out_of_order,
        timed_out: finish == Finish::TimedOut,
        cpu,
        latency: Latency::from_nanos(&live.latencies()),
        max_send_lag_us: report::round(pace.max_lag.as_secs_f64() * 1e6, 1),
        late_sends: pace.late,
        stalled: args.stalled,
        flooders,
        flood_received: tally.flood_received,
        disconnected: tally.disconnects.into_list(role_of),
    })
}

/// A member's role, from its nickname (`b<id>_s<k>`: stalled, `b<id>_f<k>`: flooder).
fn role_of(nick: &str) -> &'static str {
    match nick.rsplit('_').next().and_then(|tail| tail.chars().next()) {
        Some('s') => "stalled",
        Some('f') => "flooder",
        _ => "member",
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of messages per second"
        )),
    }
}

/// When one sender's messages are due: `start + offset + k × interval`, before `end`.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    end: Instant,
    interval: Duration,
    offset: Duration,
}

impl Schedule {
    fn due(&self, k: u64) -> Instant {
        self.start + self.offset + self.interval.mul_f64(k as f64)
    }
}

/// One sender: each message when it is due (all those due at once in one write),
/// stamped when it is written; then its end marker.
async fn paced(
    mut writer: Writer,
    envelope: Envelope,
    sender: usize,
    schedule: Schedule,
    size: usize,
    live: Arc<Live>,
    stop: CancellationToken,
) -> (usize, Writer, Pace) {
    let mut pace = Pace::default();
    let mut buf = BytesMut::with_capacity(4 * size);
    let mut k = 0;
    loop {
        let due = schedule.due(k);
        if due >= schedule.end {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = stop.cancelled() => return (sender, writer, pace),
        }
        let now = Instant::now();
        let now_ns = live.now_ns();
        let first = k;
        loop {
            let due = schedule.due(k);
            if due > now || due >= schedule.end || buf.len() >= BATCH {
                break;
            }
            let lag = now - due;
            pace.max_lag = pace.max_lag.max(lag);
            pace.late += u64::from(lag > LATE);
            message::put_bench(&mut buf, &envelope, sender, k, now_ns, size);
            k += 1;
        }
        tokio::select! {
            result = writer.write_buf(&mut buf) => if result.is_err() {
                return (sender, writer, pace);
            },
            () = stop.cancelled() => return (sender, writer, pace),
        }
        Live::add(&live.sent, k - first);
    }
    let end = message::end_line(&envelope, sender);
    tokio::select! {
        _ = writer.write_lines(&end) => {}
        () = stop.cancelled() => {}
    }
    (sender, writer, pace)
}

/// One flooder: lines as fast as the socket takes them, until `end`. Returns how many
/// it wrote whole.
async fn flood(
    mut writer: Writer,
    envelope: Envelope,
    flooder: usize,
    size: usize,
    end: Instant,
    live: Arc<Live>,
    stop: CancellationToken,
) -> (usize, Writer, u64) {
    let mut buf = BytesMut::with_capacity(BATCH + size + 64);
    let mut n = 0;
    let mut written = 0;
    while Instant::now() < end {
        let first = n;
        while buf.len() < BATCH {
            message::put_flood(&mut buf, &envelope, flooder, n, size);
            n += 1;
        }
        tokio::select! {
            result = writer.write_buf(&mut buf) => if result.is_err() { break },
            () = tokio::time::sleep_until(end) => break,
            () = stop.cancelled() => break,
        }
        written += n - first;
        Live::add(&live.flood_written, n - first);
    }
    (flooder, writer, written)
}

/// The progress line.
fn render(live: Arc<Live>, total: usize) -> impl FnMut(Duration) -> String {
    let mut last = (Duration::ZERO, 0u64);
    move |elapsed| match live.phase() {
        Phase::Connecting => format!(
            "rate {:>4.0}s  connecting {}/{total}",
            elapsed.as_secs_f64(),
            Live::get(&live.connected)
        ),
        Phase::Syncing => format!("rate {:>4.0}s  syncing", elapsed.as_secs_f64()),
        phase => {
            let delivered = Live::get(&live.delivered);
            let rate = per_sec(delivered - last.1, elapsed - last.0);
            last = (elapsed, delivered);
            let mut line = format!(
                "rate {:>4.0}s  {}sent {}  delivered {}  {}/s  lagged {}",
                elapsed.as_secs_f64(),
                if phase == Phase::Draining {
                    "draining  "
                } else {
                    ""
                },
                short(Live::get(&live.sent) as f64),
                short(delivered as f64),
                short(rate),
                Live::get(&live.lagged),
            );
            let written = Live::get(&live.flood_written);
            if written > 0 {
                let echoes = Live::get(&live.flood_echoes);
                let _ = write!(
                    line,
                    "  flood {}/{}",
                    short(echoes as f64),
                    short(written as f64)
                );
            }
            line
        }
    }
}

impl Rate {
    /// The summary and the JSON line.
    pub fn report(&self, args: &RateArgs) -> Report {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rate: {} members, {} senders, {} msgs/s for {:?} ({} deliveries/s offered), {} bytes, room {} at {}{}",
            args.members,
            args.senders,
            args.rate,
            args.duration,
            short(self.offered_deliveries_per_sec),
            args.size,
            args.common.room,
            args.common.addr_list(),
            if args.common.protocol == Protocol::Irc {
                " over IRC"
            } else {
                ""
            }
        );
        if args.stalled > 0 || args.flooders > 0 {
            let _ = writeln!(
                s,
                "  extra members      {} stalled, {} flooders",
                args.stalled, args.flooders
            );
        }
        report::spread_line(
            &mut s,
            &self.addrs,
            &self.members_per_addr,
            &self.senders_per_addr,
        );
        let _ = writeln!(s, "  setup              {:.2} s", self.setup_s);
        let _ = writeln!(
            s,
            "  sent               {} ({:.1} msgs/s; senders at most {} behind schedule, {} sends late by over 1 ms)",
            self.sent,
            self.sent_per_sec,
            micros(self.max_send_lag_us),
            self.late_sends
        );
        let _ = writeln!(
            s,
            "  delivered          {} of {} in {:.3} s: {:.0} msgs/s{}",
            self.delivered,
            self.expected,
            self.elapsed_s,
            self.msgs_per_sec,
            if self.timed_out { " (timed out)" } else { "" }
        );
        let _ = writeln!(
            s,
            "  lost               {}  (LAGGED: {} frames, {} events missed)",
            self.lost, self.lagged_frames, self.lagged
        );
        let _ = writeln!(s, "  out of order       {}", self.out_of_order);
        let _ = writeln!(s, "  latency            {}", self.latency.line());
        if let Some(cpu) = self.cpu.line() {
            let _ = writeln!(s, "  cpu                {cpu}");
        }
        for f in &self.flooders {
            let _ = writeln!(
                s,
                "  flooder {}  wrote {} lines, server accepted {}{}",
                f.nick,
                f.written,
                f.accepted,
                f.closed
                    .as_ref()
                    .map(|c| format!("; ended: {c}"))
                    .unwrap_or_default()
            );
        }
        if self.flood_received > 0 {
            let _ = writeln!(
                s,
                "  flood received     {} lines by ordinary members",
                self.flood_received
            );
        }
        if self.timed_out && self.lost > 0 && self.lagged == 0 {
            let _ = writeln!(
                s,
                "  note: deliveries missing; is the server's flood control off (--flood-rate 0)?"
            );
        }
        report::disconnect_lines(&mut s, &self.disconnected);
        Report::new("rate", args, self, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_nicknames() {
        assert_eq!(role_of("b1a2b3c_s0"), "stalled");
        assert_eq!(role_of("b1a2b3c_f12"), "flooder");
        assert_eq!(role_of("b1a2b3c_7"), "member");
    }

    #[test]
    fn a_schedule_spreads_senders() {
        let start = Instant::now();
        let s = Schedule {
            start,
            end: start + Duration::from_secs(1),
            interval: Duration::from_millis(10),
            offset: Duration::from_millis(5),
        };
        assert_eq!(s.due(0) - start, Duration::from_millis(5));
        assert_eq!(s.due(3) - start, Duration::from_millis(35));
    }
}

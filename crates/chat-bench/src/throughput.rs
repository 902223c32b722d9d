//! `throughput`: S senders × M messages, written as fast as the sockets accept them, to
//! a room of N members; how fast the server delivers them all, and what it loses.
//!
//! Every member (natively the senders too: their echo is their receipt; over IRC a
//! sender gets none) counts what it receives. The run is complete when every member has
//! every sender's end marker, or at `--timeout` from the first message. Loss is what was
//! sent and not delivered; `LAGGED` counts (over the IRC door, its notices of missed
//! messages) are reported beside it.

use crate::client::{Setup, SocketOptions};
use crate::live::{Echo, Live, Phase};
use crate::message;
use crate::process::{Cpu, CpuMeter};
use crate::progress::{Progress, short};
use crate::protocol::{Envelope, Protocol};
use crate::report::{self, Disconnect, Latency, Report, per_sec};
use crate::room::{self, BATCH, Finish, Run, Tally};
use crate::transport::Writer;
use crate::{Common, receiver::Listen};
use anyhow::{Context, ensure};
use bytes::BytesMut;
use chat_proto::Room;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a sender waits for an echo (`--window`) before it takes the messages in
/// flight as lost and goes on.
const WINDOW_WAIT: Duration = Duration::from_secs(1);

/// Options of `chat-bench throughput`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ThroughputArgs {
    /// Options every mode takes.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: Common,

    /// Members of the room, the senders included.
    #[arg(long, default_value_t = 100)]
    pub members: usize,

    /// Members that send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,

    /// Messages each sender sends.
    #[arg(long, default_value_t = 2000)]
    pub messages: u64,

    /// Bytes of text per message (at least its header, `s<sender> <seq> <time>`).
    #[arg(long, default_value_t = 100)]
    pub size: usize,

    /// Messages a sender may have sent and not yet seen come back (0: no limit, send as
    /// fast as the socket accepts). With senders × window below the server's room
    /// capacity, nobody should lag: this measures the sustained lossless rate.
    #[arg(long, default_value_t = 0)]
    pub window: u64,
}

/// Figures of a `throughput` run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// The server addresses the members went to, in turn: member *i* (and sender *i*,
    /// which is member *i*) to address *i* mod *n*.
    pub addrs: Vec<SocketAddr>,
    /// Members on each address, in the order of `addrs`.
    pub members_per_addr: Vec<usize>,
    /// Senders on each address, in the order of `addrs`.
    pub senders_per_addr: Vec<usize>,
    /// Time to connect, log in and gather the members, in seconds.
    pub setup_s: f64,
    /// Messages the senders wrote.
    pub sent: u64,
    /// Seconds from the first message to the last one written.
    pub send_s: f64,
    /// Deliveries due: messages sent × the members that receive each (all of them
    /// natively, all but the sender over IRC).
    pub expected: u64,
    /// Messages received by members (duplicates included).
    pub delivered: u64,
    /// Seconds from the first message to the last delivery (or the timeout).
    pub elapsed_s: f64,
    /// Deliveries per second over `elapsed_s`.
    pub msgs_per_sec: f64,
    /// Deliveries due and not made.
    pub lost: u64,
    /// Events the server said members missed (`LAGGED` counts, summed).
    pub lagged: u64,
    /// `LAGGED` frames received.
    pub lagged_frames: u64,
    /// Messages that arrived after a later one from the same sender.
    pub out_of_order: u64,
    /// Whether `--timeout` ended the run.
    pub timed_out: bool,
    /// Times a sender gave up waiting for its echoes (`--window`) and went on.
    pub window_timeouts: u64,
    /// CPU use from the first message to the last delivery.
    #[serde(flatten)]
    pub cpu: Cpu,
    /// From each message's send timestamp to its arrival, over all members. With
    /// several addresses, a delivery whose sender and receiver sit on different servers
    /// crosses from one to the other, and its latency with it.
    #[serde(flatten)]
    pub latency: Latency,
    /// Members whose connection ended during the run.
    pub disconnected: Vec<Disconnect>,
}

/// Runs the workload.
pub async fn run(args: &ThroughputArgs) -> anyhow::Result<Throughput> {
    ensure!(args.members >= 1, "--members must be at least 1");
    ensure!(
        (1..=args.members).contains(&args.senders),
        "--senders must be from 1 to --members ({})",
        args.members
    );
    let door = args.common.door()?;
    ensure!(
        args.window == 0 || door.protocol.echoes(),
        "--window waits for the senders' own messages to come back: over IRC they do not"
    );
    let targets = args.common.targets().await?;
    let room_name = Room::new(&args.common.room).context("--room")?;
    let run = Run::new();
    let live = &run.live;
    let receivers = door.protocol.receivers(args.members);
    let expected_total = args.senders as u64 * args.messages * receivers;
    let progress = Progress::start(
        !args.common.no_progress,
        render(live.clone(), args.members, expected_total),
    );

    let setup_start = Instant::now();
    let prefix = &run.prefix;
    let setup = Setup {
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
    let echoes: Vec<Arc<Echo>> = (0..args.senders).map(Echo::new).collect();
    let listen = |i: usize| {
        let echo = echoes.get(i).filter(|_| args.window > 0).cloned();
        (Listen::member(door.protocol, args.senders, i), echo)
    };
    let mut members = room::open(&setup, nicks, listen, &run.stop).await?;
    live.set_phase(Phase::Syncing);
    room::sync(&mut members, door.protocol, live, args.common.timeout).await?;
    let setup_s = setup_start.elapsed().as_secs_f64();

    live.set_phase(Phase::Running);
    let cpu = CpuMeter::start(args.common.server_pid);
    let envelope = Envelope::new(door.protocol, room_name.as_str());
    let start = tokio::time::Instant::now();
    let senders = room::take_writers(&mut members, args.senders)
        .into_iter()
        .enumerate()
        .map(|(sender, writer)| {
            let window = (args.window > 0).then(|| (args.window, echoes[sender].clone()));
            let script = Script {
                envelope: envelope.clone(),
                messages: args.messages,
                size: args.size,
            };
            tokio::spawn(send(
                writer,
                sender,
                script,
                window,
                live.clone(),
                run.stop.clone(),
            ))
        })
        .collect();
    let deadline = start + args.common.timeout;
    let (finish, last, finished) =
        room::await_deliveries(live, &envelope, members.len(), senders, deadline, &run.stop).await;
    let elapsed = last - start;
    let cpu = cpu.stop();
    let send_s = finished
        .iter()
        .map(|(_, _, (d, _))| *d)
        .max()
        .unwrap_or_default();
    let window_timeouts = finished.iter().map(|(_, _, (_, t))| *t).sum();
    let seen = room::gather(members).await;
    progress.finish().await;
    drop(finished);

    let tally = Tally::new(&seen, []);
    let sent = Live::get(&live.sent);
    let expected = sent * receivers;
    Ok(Throughput {
        addrs: targets.addrs(),
        members_per_addr: targets.per_address(args.members),
        senders_per_addr: targets.per_address(args.senders),
        setup_s: report::round(setup_s, 3),
        sent,
        send_s: report::round(send_s.as_secs_f64(), 3),
        expected,
        delivered: tally.received,
        elapsed_s: report::round(elapsed.as_secs_f64(), 3),
        msgs_per_sec: per_sec(tally.received, elapsed),
        lost: expected.saturating_sub(tally.received),
        lagged: tally.lagged,
        lagged_frames: tally.lagged_frames,
        out_of_order: tally.out_of_order,
        timed_out: finish == Finish::TimedOut,
        window_timeouts,
        cpu,
        latency: Latency::from_nanos(&live.latencies()),
        disconnected: tally.disconnects.into_list(|_| "member"),
    })
}

/// What one sender sends.
struct Script {
    /// The line around each message's text.
    envelope: Envelope,
    /// How many messages.
    messages: u64,
    /// Bytes of text in each.
    size: usize,
}

/// One sender: `script.messages` messages in batches of up to [`BATCH`] bytes, each
/// batch stamped when it is formatted, then its end marker. With a window, it waits
/// before getting `window` messages ahead of its echoes. Returns how long it took and
/// how often it stopped waiting for echoes that did not come.
async fn send(
    mut writer: Writer,
    sender: usize,
    script: Script,
    window: Option<(u64, Arc<Echo>)>,
    live: Arc<Live>,
    stop: CancellationToken,
) -> (usize, Writer, (Duration, u64)) {
    let Script {
        envelope,
        messages,
        size,
    } = script;
    let start = Instant::now();
    let mut buf = BytesMut::with_capacity(BATCH + size + 64);
    let (mut seq, mut timeouts) = (0, 0);
    // Messages before this are taken as lost: their echoes were waited for in vain.
    let mut written_off = 0;
    while seq < messages {
        let mut limit = messages;
        if let Some((window, echo)) = &window {
            loop {
                let notified = echo.notify.notified();
                let back = echo.next().max(written_off);
                if seq < back + window {
                    limit = limit.min(back + window);
                    break;
                }
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(WINDOW_WAIT) => {
                        timeouts += 1;
                        written_off = seq;
                    }
                    () = stop.cancelled() => return (sender, writer, (start.elapsed(), timeouts)),
                }
            }
        }
        let now = live.now_ns();
        let first = seq;
        while seq < limit && buf.len() < BATCH {
            message::put_bench(&mut buf, &envelope, sender, seq, now, size);
            seq += 1;
        }
        tokio::select! {
            result = writer.write_buf(&mut buf) => if result.is_err() {
                return (sender, writer, (start.elapsed(), timeouts));
            },
            () = stop.cancelled() => return (sender, writer, (start.elapsed(), timeouts)),
        }
        Live::add(&live.sent, seq - first);
    }
    let elapsed = start.elapsed();
    let end = message::end_line(&envelope, sender);
    tokio::select! {
        _ = writer.write_lines(&end) => {}
        () = stop.cancelled() => {}
    }
    (sender, writer, (elapsed, timeouts))
}

/// The progress line.
fn render(live: Arc<Live>, members: usize, expected: u64) -> impl FnMut(Duration) -> String {
    let mut last = (Duration::ZERO, 0u64);
    move |elapsed| match live.phase() {
        Phase::Connecting => format!(
            "throughput {:>4.0}s  connecting {}/{members}",
            elapsed.as_secs_f64(),
            Live::get(&live.connected)
        ),
        Phase::Syncing => format!("throughput {:>4.0}s  syncing", elapsed.as_secs_f64()),
        Phase::Running | Phase::Draining => {
            let delivered = Live::get(&live.delivered);
            let rate = per_sec(delivered - last.1, elapsed - last.0);
            last = (elapsed, delivered);
            format!(
                "throughput {:>4.0}s  sent {}  delivered {}/{} ({:.1}%)  {}/s  lagged {}",
                elapsed.as_secs_f64(),
                short(Live::get(&live.sent) as f64),
                short(delivered as f64),
                short(expected as f64),
                100.0 * delivered as f64 / expected.max(1) as f64,
                short(rate),
                Live::get(&live.lagged),
            )
        }
    }
}

impl Throughput {
    /// The summary and the JSON line.
    pub fn report(&self, args: &ThroughputArgs) -> Report {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "throughput: {} members, {} senders × {} messages of {} bytes, room {} at {}{}",
            args.members,
            args.senders,
            args.messages,
            args.size,
            args.common.room,
            args.common.addr_list(),
            if args.common.protocol == Protocol::Irc {
                " over IRC (a sender does not get its own messages)"
            } else {
                ""
            }
        );
        report::spread_line(
            &mut s,
            &self.addrs,
            &self.members_per_addr,
            &self.senders_per_addr,
        );
        let _ = writeln!(s, "  setup              {:.2} s", self.setup_s);
        let _ = writeln!(
            s,
            "  sent               {} in {:.3} s{}",
            self.sent,
            self.send_s,
            if args.window > 0 {
                format!(" (window {} per sender)", args.window)
            } else {
                " (as fast as the sockets accept)".to_owned()
            }
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
        if self.window_timeouts > 0 {
            let _ = writeln!(
                s,
                "  window timeouts    {} (echoes awaited {WINDOW_WAIT:?} in vain)",
                self.window_timeouts
            );
        }
        if self.timed_out && self.sent < args.senders as u64 * args.messages {
            let _ = writeln!(
                s,
                "  note: not everything was sent; is the server's flood control off (--flood-rate 0)?"
            );
        }
        report::disconnect_lines(&mut s, &self.disconnected);
        Report::new("throughput", args, self, s)
    }
}

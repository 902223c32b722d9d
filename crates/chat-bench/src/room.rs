//! The bench room shared by `throughput` and `rate`: members with their receivers,
//! the wait for the last deliveries, and the tally of what every receiver saw.
//!
//! Completion does not depend on counting: every ordinary sender ends with an end
//! marker (`e<sender>`), and since all members of a room receive its events in one
//! order (docs/protocol.md §6), a member that has seen every end marker has seen, or has
//! been told by `LAGGED` that it missed, everything before them. Markers are repeated
//! until every member has seen them, so a marker lost in a gap does not stall the run.
//! Over IRC a sender does not get its own marker (nor its messages): it waits for the
//! others' only.

use crate::client::{self, Client, Setup};
use crate::live::{Echo, Live};
use crate::message;
use crate::protocol::{Envelope, Protocol};
use crate::receiver::{self, Listen, Seen};
use crate::report::Disconnects;
use crate::transport::Writer;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the end markers are repeated while members still miss some.
const RESEND_END: Duration = Duration::from_millis(100);

/// Bytes of messages a sender formats before it writes them in one go.
pub(crate) const BATCH: usize = 16 * 1024;

/// A connection whose receiver is running.
pub(crate) struct Member {
    pub(crate) nick: String,
    /// `None` while a sender task has it.
    pub(crate) writer: Option<Writer>,
    pub(crate) receiver: JoinHandle<Seen>,
}

/// Opens one connection per nickname and starts a receiver on each, listening as
/// `listen` says for its index (with the echo tracker it gives).
pub(crate) async fn open(
    setup: &Setup<'_>,
    nicks: Vec<String>,
    listen: impl Fn(usize) -> (Listen, Option<Arc<Echo>>),
    stop: &CancellationToken,
) -> anyhow::Result<Vec<Member>> {
    client::connect_many(setup, nicks, |i, client: Client| {
        let (listen, echo) = listen(i);
        let receiver = tokio::spawn(receiver::receive(
            client.frames,
            listen,
            echo,
            setup.live.clone(),
            stop.clone(),
        ));
        Member {
            nick: client.nick,
            writer: Some(client.writer),
            receiver,
        }
    })
    .await
}

/// The writers of the first `n` members, for their sender tasks.
pub(crate) fn take_writers(members: &mut [Member], n: usize) -> Vec<Writer> {
    members[..n]
        .iter_mut()
        .filter_map(|m| m.writer.take())
        .collect()
}

/// Sends `/ping` (`PING`) on every connection and waits for all the `PONG`s.
pub(crate) async fn sync(
    members: &mut [Member],
    protocol: Protocol,
    live: &Live,
    timeout: Duration,
) -> anyhow::Result<()> {
    client::sync(
        members.iter_mut().filter_map(|m| m.writer.as_mut()),
        protocol,
        live,
        timeout,
    )
    .await
}

/// A sender task's result: its index and its connection's writing side, kept open
/// until the run is over (dropping it would end the member's session).
pub(crate) type Sender<T> = JoinHandle<(usize, Writer, T)>;

/// How the wait for deliveries ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Every member has seen every end marker (or has ended).
    Complete,
    /// The deadline passed first.
    TimedOut,
}

/// Waits until all `receivers` members are done or `deadline` passes, while the
/// `senders` finish; repeats their end markers (in `envelope`) every [`RESEND_END`] once
/// they all have. Returns how it ended, when the last delivery came, and the senders'
/// results.
pub(crate) async fn await_deliveries<T>(
    live: &Live,
    envelope: &Envelope,
    receivers: usize,
    senders: Vec<Sender<T>>,
    deadline: Instant,
    stop: &CancellationToken,
) -> (Finish, Instant, Vec<(usize, Writer, T)>) {
    let mut sending: futures::stream::FuturesUnordered<_> = senders.into_iter().collect();
    let mut finished = Vec::new();
    let all_done = live
        .done
        .acquire_many(u32::try_from(receivers).unwrap_or(u32::MAX));
    tokio::pin!(all_done);
    let mut resend = tokio::time::interval_at(Instant::now() + RESEND_END, RESEND_END);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let finish = loop {
        tokio::select! {
            permits = &mut all_done => {
                if let Ok(permits) = permits {
                    permits.forget();
                }
                break Finish::Complete;
            }
            () = tokio::time::sleep_until(deadline) => break Finish::TimedOut,
            Some(result) = futures::StreamExt::next(&mut sending) => {
                if let Ok(result) = result {
                    finished.push(result);
                }
                if sending.is_empty() {
                    live.set_phase(crate::live::Phase::Draining);
                }
            }
            _ = resend.tick(), if sending.is_empty() => {
                for (sender, writer, _) in &mut finished {
                    // Never blocks: a marker that does not fit now goes with the next tick.
                    writer.try_write_lines(&message::end_line(envelope, *sender));
                }
            }
        }
    };
    let last = Instant::now();
    // Senders still going (a timeout) stop at the signal and hand back their writers.
    stop.cancel();
    while let Some(result) = futures::StreamExt::next(&mut sending).await {
        if let Ok(result) = result {
            finished.push(result);
        }
    }
    (finish, last, finished)
}

/// Waits for every receiver (stopped by the run's token) and returns what each saw.
pub(crate) async fn gather(members: Vec<Member>) -> Vec<(String, Seen)> {
    let mut seen = Vec::with_capacity(members.len());
    // Every receiver ends before any connection closes: the others would see its QUIT.
    let mut writers = Vec::with_capacity(members.len());
    for member in members {
        let result = member.receiver.await.unwrap_or_else(|e| Seen {
            closed: Some(format!("receiver failed: {e}")),
            ..Seen::default()
        });
        seen.push((member.nick, result));
        writers.push(member.writer);
    }
    drop(writers);
    seen
}

/// What the ordinary members saw, summed.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) received: u64,
    pub(crate) out_of_order: u64,
    pub(crate) lagged: u64,
    pub(crate) lagged_frames: u64,
    pub(crate) flood_received: u64,
    pub(crate) disconnects: Disconnects,
}

impl Tally {
    /// Sums the members' counts; `QUIT`s seen by anyone and the ends of every listed
    /// connection go to the disconnections.
    pub(crate) fn new<'a>(
        members: &'a [(String, Seen)],
        others: impl IntoIterator<Item = &'a (String, Seen)>,
    ) -> Tally {
        let mut tally = Tally::default();
        for (_, seen) in members {
            tally.received += seen.received;
            tally.out_of_order += seen.out_of_order;
            tally.lagged += seen.lagged;
            tally.lagged_frames += seen.lagged_frames;
            tally.flood_received += seen.flood_received;
        }
        for (nick, seen) in members.iter().chain(others) {
            for (who, reason) in &seen.quits {
                tally.disconnects.quit(who.clone(), reason.clone());
            }
            if let Some(reason) = &seen.closed {
                tally.disconnects.closed(nick.clone(), reason.clone());
            }
        }
        tally
    }
}

/// What every mode's run has: its nicknames, token and counters.
pub(crate) struct Run {
    /// Every nickname of the run is `<prefix><something>`.
    pub(crate) prefix: String,
    pub(crate) live: Arc<Live>,
    pub(crate) stop: CancellationToken,
    /// Cancels the token if the run ends early (an error), so its tasks end too.
    _guard: tokio_util::sync::DropGuard,
}

impl Run {
    pub(crate) fn new() -> Run {
        let stop = CancellationToken::new();
        let prefix = format!("b{}_", client::run_id());
        Run {
            live: Live::new(prefix.clone()),
            prefix,
            _guard: stop.clone().drop_guard(),
            stop,
        }
    }
}

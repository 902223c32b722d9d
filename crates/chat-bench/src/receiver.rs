//! The task that reads one connection for the whole run: it counts the ordinary
//! senders' messages, their latency and order, `LAGGED` counts, flood lines and who
//! left, and answers the controller's questions through [`Live`].

use crate::live::{Echo, Latencies, Live};
use crate::message::{self, Body, Frame};
use crate::protocol::Protocol;
use crate::transport::Reader;
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Counters are published to [`Live`] after this many frames.
const PUBLISH_EVERY: u64 = 256;

/// Which connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// An ordinary member: its deliveries and their latency are the measurement.
    Member,
    /// Flooder `id`: counts the echoes of its own lines.
    Flooder(usize),
    /// A connection held open (idle, churn): only reads.
    Idle,
}

/// What a receiver reads and for whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listen {
    pub(crate) role: Role,
    /// Ordinary senders in the room.
    pub(crate) senders: usize,
    /// The ordinary sender this member is, if its own messages do not come back to it
    /// (IRC): its end marker counts as seen.
    pub(crate) own: Option<usize>,
    pub(crate) protocol: Protocol,
}

impl Listen {
    /// A member of a room of `senders` ordinary senders, the `index`th connection (the
    /// first `senders` send).
    pub(crate) fn member(protocol: Protocol, senders: usize, index: usize) -> Listen {
        Listen {
            role: Role::Member,
            senders,
            own: (!protocol.echoes() && index < senders).then_some(index),
            protocol,
        }
    }

    /// A connection of `role` that counts nobody's messages.
    pub(crate) fn other(protocol: Protocol, role: Role) -> Listen {
        Listen {
            role,
            senders: 0,
            own: None,
            protocol,
        }
    }
}

/// What one receiver saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    /// Ordinary senders' messages received (duplicates included).
    pub(crate) received: u64,
    /// Messages that arrived after a later one of the same sender.
    pub(crate) out_of_order: u64,
    /// `LAGGED` frames, and the sum of their counts.
    pub(crate) lagged_frames: u64,
    pub(crate) lagged: u64,
    /// Flooders' lines received.
    pub(crate) flood_received: u64,
    /// For a flooder: echoes of its own lines.
    pub(crate) own_echoes: u64,
    /// `QUIT` frames of the room: who left, and why.
    pub(crate) quits: Vec<(String, String)>,
    /// Why this connection ended before the run did, if it did.
    pub(crate) closed: Option<String>,
}

/// Reads `frames` until `stop`, the end of the connection, or a `BYE`.
///
/// It reads what the socket holds (up to a buffer's worth, [`Reader::fill`]), then
/// walks every complete line of that read in place; the stop signal is looked at only
/// when the socket has nothing ready, as before any read. The clock is read once per
/// read: that instant is the receive time of every line in it, the time they reached
/// this process, and a message's latency is from its send timestamp to then.
///
/// A [`Role::Member`] receiver is *done* (one permit on [`Live::done`]) once it has seen
/// the end marker of each of the `listen.senders` ordinary senders (its own aside, if it
/// does not get its own messages), or has ended; the others never take part.
///
/// `echo`, for a member that sends with a window, is told when its own messages come back.
pub(crate) async fn receive(
    mut frames: Reader,
    listen: Listen,
    echo: Option<Arc<Echo>>,
    live: Arc<Live>,
    stop: CancellationToken,
) -> Seen {
    let mut state = State::new(listen, echo, &live);
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    // Lines read while setting up, if any, were received before this.
    let mut now = live.now_ns();
    'reads: loop {
        loop {
            match frames.next_line() {
                Ok(Some(line)) => {
                    if state.line(line, now, &live).is_break() {
                        break 'reads;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    state.seen.closed = Some(format!("connection error: {e}"));
                    break 'reads;
                }
            }
        }
        // The socket first: the stop signal is only looked at when nothing is ready.
        let read = tokio::select! {
            biased;
            read = frames.fill() => read,
            () = &mut stopped => break,
        };
        match read {
            Ok(true) => now = live.now_ns(),
            Ok(false) => {
                state.seen.closed = Some("the server closed the connection".into());
                break;
            }
            Err(e) => {
                state.seen.closed = Some(format!("connection error: {e}"));
                break;
            }
        }
    }
    state.finish(&live)
}

/// A receiver's bookkeeping.
struct State {
    listen: Listen,
    echo: Option<Arc<Echo>>,
    /// What it has seen so far.
    seen: Seen,
    /// Highest sequence number seen per ordinary sender.
    max_seq: Vec<Option<u64>>,
    /// Which senders' end markers have been seen.
    ended: Vec<bool>,
    ends_missing: usize,
    done: bool,
    /// Latencies in nanoseconds, not yet in the shared histogram, run-length encoded:
    /// the lines of one read from one batch of one sender share one latency.
    latencies: Latencies,
    /// Deliveries and `LAGGED` counts not yet added to the shared counters.
    unpublished: u64,
    unpublished_lagged: u64,
}

impl State {
    fn new(listen: Listen, echo: Option<Arc<Echo>>, live: &Live) -> State {
        let Listen {
            role, senders, own, ..
        } = listen;
        let mut state = State {
            listen,
            echo,
            seen: Seen::default(),
            max_seq: vec![None; senders],
            ended: vec![false; senders],
            ends_missing: senders,
            done: role != Role::Member,
            latencies: Latencies::default(),
            unpublished: 0,
            unpublished_lagged: 0,
        };
        if let Some(own) = own.filter(|&own| own < senders) {
            state.ended[own] = true;
            state.ends_missing -= 1;
        }
        if state.ends_missing == 0 && !state.done {
            // A lone sender over IRC: nothing will ever come to it.
            state.done = true;
            live.done.add_permits(1);
        }
        state
    }

    /// Takes in one line, received at `now`; breaks on the server's `BYE`.
    fn line(&mut self, line: &[u8], now: u64, live: &Live) -> ControlFlow<()> {
        let Listen {
            role,
            senders,
            protocol,
            ..
        } = self.listen;
        match protocol.classify(line) {
            Frame::Msg { from, text } if from.starts_with(live.prefix.as_bytes()) => {
                match message::parse_body(text) {
                    Body::Bench {
                        sender,
                        seq,
                        sent_ns,
                    } if role == Role::Member && sender < senders => {
                        self.seen.received += 1;
                        self.unpublished += 1;
                        self.latencies.push(now.saturating_sub(sent_ns));
                        if self.latencies.is_full() {
                            live.record(&mut self.latencies);
                        }
                        if let Some(echo) = self.echo.as_ref().filter(|e| e.sender == sender) {
                            echo.echoed(seq);
                        }
                        match &mut self.max_seq[sender] {
                            Some(max) if seq <= *max => self.seen.out_of_order += 1,
                            max => *max = Some(seq),
                        }
                        if self.unpublished >= PUBLISH_EVERY {
                            self.publish(live);
                        }
                    }
                    Body::End { sender } if sender < senders && !self.ended[sender] => {
                        self.ended[sender] = true;
                        self.ends_missing -= 1;
                        if self.ends_missing == 0 && !self.done {
                            self.done = true;
                            self.publish(live);
                            live.done.add_permits(1);
                        }
                    }
                    Body::Flood { flooder } => {
                        self.seen.flood_received += 1;
                        if role == Role::Flooder(flooder) {
                            self.seen.own_echoes += 1;
                            Live::add(&live.flood_echoes, 1);
                        }
                    }
                    _ => {}
                }
            }
            Frame::Lagged(missed) => {
                self.seen.lagged_frames += 1;
                self.seen.lagged += missed;
                if role == Role::Member {
                    self.unpublished_lagged += missed;
                }
            }
            Frame::Quit => {
                if let Some((nick, reason)) = protocol.who_quit(line)
                    && nick.starts_with(&live.prefix)
                {
                    self.seen.quits.push((nick, reason));
                }
            }
            Frame::Pong => live.pongs.add_permits(1),
            Frame::Bye => {
                let reason = std::str::from_utf8(line).unwrap_or("BYE").trim_end();
                self.seen.closed = Some(format!("the server said {reason}"));
                return ControlFlow::Break(());
            }
            Frame::Msg { .. } | Frame::Other => {}
        }
        ControlFlow::Continue(())
    }

    fn publish(&mut self, live: &Live) {
        Live::add(&live.delivered, std::mem::take(&mut self.unpublished));
        Live::add(&live.lagged, std::mem::take(&mut self.unpublished_lagged));
    }

    /// Publishes the rest; what it saw.
    fn finish(mut self, live: &Live) -> Seen {
        self.publish(live);
        live.record(&mut self.latencies);
        if !self.done {
            // It will get nothing more: the controller need not wait for it.
            live.done.add_permits(1);
        }
        self.seen
    }
}

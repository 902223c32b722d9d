//! Drives one connection after its door's handshake: the loop every door shares. It
//! collects what is ready for the member into one output buffer, writes the buffer in
//! one go (failing a client that accepts nothing for the write timeout), waits for the
//! next thing to do, and hands the client's lines to the door.
//!
//! The task's future is allocated once per connection and lives as long as it, so its
//! size is most of what an idle connection costs. The wait therefore polls the socket,
//! the mailbox, the timer and the store's answers directly, holding no future for them;
//! only a room's ring needs one (its place in the room's wait list). What happens once
//! per session (the handshake, the goodbye) is boxed, so that its state is freed when
//! done instead of widening every session's future.

use crate::config::Config;
use crate::core::member::{Ended, Member, Output};
use crate::net::reader::{LineReader, Stream};
use bytes::{Buf, BytesMut};
use chat_proto::LineError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Output beyond which the session stops collecting ready events and writes.
pub(crate) const BATCH_LIMIT: usize = 64 * 1024;

/// Room an output makes for the events a collect expects ([`Output::expect`]): the
/// buffer is allocated once a turn at about the size it will reach, instead of growing
/// from nothing by doubling, which was a reallocation and a copy every few events of
/// each turn of each member in a long run's profile (issue 17).
///
/// [`Output::expect`]: crate::core::member::Output::expect
#[derive(Debug, Default)]
pub(crate) struct Expected(usize);

impl Expected {
    /// `events` are about to be written.
    pub(crate) fn expect(&mut self, events: usize) {
        self.0 = events;
    }

    /// Before appending a frame of `len` bytes: the first after [`Expected::expect`]
    /// makes room in `out` for all of them, each taken to be as long as it, within
    /// [`BATCH_LIMIT`] (a turn writes no more).
    #[inline]
    pub(crate) fn reserve(&mut self, out: &mut BytesMut, len: usize) {
        if self.0 > 0 {
            out.reserve(len.saturating_mul(self.0).min(BATCH_LIMIT));
            self.0 = 0;
        }
    }
}

/// Longest wait to write a goodbye (after `/quit` or a handshake timeout).
const FAREWELL_LIMIT: Duration = Duration::from_secs(5);

/// Why a session ended; told to its rooms in its quit event and logged.
pub(crate) type Reason = String;

/// How the reason of a session ended for not reading its output begins.
const SLOW_CONSUMER: &str = "slow consumer";

/// How a connection reached the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// The client's address.
    pub(crate) addr: SocketAddr,
    /// Whether the connection is encrypted (TLS, or HTTPS for a WebSocket).
    pub(crate) tls: bool,
    /// A WebSocket whose request came through a reverse proxy (it carried forwarding
    /// headers): `addr` is then the user's address as the proxy gave it, and the
    /// connection is not taken as loopback.
    pub(crate) proxied: bool,
    /// A WebSocket (the web door) rather than a TCP connection.
    pub(crate) websocket: bool,
}

impl Peer {
    /// Whether a password may cross this connection: TLS, or loopback (which never leaves
    /// the machine) unless a proxy forwarded it (then it left the machine before).
    pub(crate) fn secure(&self) -> bool {
        self.tls || (!self.proxied && self.addr.ip().to_canonical().is_loopback())
    }
}

/// The socket and its output buffer.
pub(crate) struct Connection<S> {
    pub(crate) stream: S,
    pub(crate) reader: LineReader,
    /// Bytes waiting to be written, in order.
    pub(crate) out: BytesMut,
    pub(crate) peer: Peer,
    pub(crate) config: Arc<Config>,
}

impl<S: Stream> Connection<S> {
    /// Writes everything pending, or fails once the client has accepted nothing for the
    /// write timeout.
    pub(crate) async fn flush(&mut self) -> Result<(), Reason> {
        if self.out.is_empty() {
            return Ok(());
        }
        // The timeout is on progress: a client that reads slowly but steadily stays.
        while !self.out.is_empty() {
            // `write`, not `write_buf`: the output is one slice, and a TCP stream's
            // vectored write is a `writev`, whose file layer cost more than the `send`
            // a plain write makes (issue 17).
            match tokio::time::timeout(self.config.write_timeout, self.stream.write(&self.out))
                .await
            {
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Ok(n)) => self.out.advance(n),
                Ok(Err(e)) => return Err(io_reason(&e)),
                Err(_) => return Err(self.slow_consumer()),
            }
        }
        // TLS keeps the tail of what it was given until flushed (plain TCP's flush does
        // nothing): push it to the socket, under the same timeout.
        match tokio::time::timeout(self.config.write_timeout, self.stream.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(io_reason(&e)),
            Err(_) => return Err(self.slow_consumer()),
        }
        // Everything is written: hold no buffer while idle (the next batch allocates
        // afresh, which costs far less than the write it goes with).
        self.out = BytesMut::new();
        Ok(())
    }

    fn slow_consumer(&self) -> Reason {
        format!(
            "{SLOW_CONSUMER}: no output accepted for {:?}",
            self.config.write_timeout
        )
    }

    /// How long a goodbye may take to write before the connection is dropped anyway.
    pub(crate) fn farewell_limit(&self) -> Duration {
        self.config.write_timeout.min(FAREWELL_LIMIT)
    }

    /// Writes what is pending (a last frame the door appended) and closes, without
    /// waiting longer than `limit`.
    pub(crate) async fn close(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            let _ = self.stream.write_all_buf(&mut self.out).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }

    /// After a read error, closes the stream within the farewell limit: for a
    /// WebSocket that sends the close frame saying why and drains what the client sent
    /// meanwhile, so that the close is not turned into a reset; for TCP it is at most a
    /// `shutdown`.
    pub(crate) async fn linger(&mut self) {
        let limit = self.farewell_limit();
        let _ = tokio::time::timeout(limit, self.stream.shutdown()).await;
    }
}

/// The reason for a connection that failed.
pub(crate) fn io_reason(e: &io::Error) -> Reason {
    format!("connection error: {e}")
}

/// What to do after a line.
pub(crate) enum Flow {
    Continue,
    Quit(Reason),
}

/// A protocol spoken at a door, as the driver needs it once the handshake is done.
pub(crate) trait Door {
    /// What the door writes a member's output with: its encoding of events, lists and
    /// refusals into the connection's buffer.
    type Out<'a>: Output
    where
        Self: 'a;

    /// The door's output over `out`.
    fn output<'a>(&'a mut self, out: &'a mut BytesMut) -> Self::Out<'a>;

    /// Handles one line from the client.
    fn line(&mut self, line: &str, member: &mut Member, out: &mut BytesMut, peer: &Peer) -> Flow;

    /// Reports a line the codec refused (too long, not UTF-8); the connection carries on.
    fn line_error(&mut self, error: LineError, out: &mut BytesMut);

    /// Appends the door's last words before the server closes the connection.
    fn goodbye(&mut self, reason: &str, out: &mut BytesMut);
}

/// Runs a connection whose handshake is done until it ends; returns why.
pub(crate) async fn drive<S: Stream, D: Door>(
    conn: &mut Connection<S>,
    member: &mut Member,
    door: &mut D,
) -> Reason {
    loop {
        let turn_over = member.turn_over();
        if turn_over {
            // Let the room's other members run before reading more: a client whose
            // lines are all buffered would otherwise publish far more than a room holds
            // before any member gets to read it.
            tokio::task::yield_now().await;
        }
        // A line the client already sent is handled before anything is written: a
        // client that sends many lines at once gets its answers and echoes in one write
        // a turn, not one write a line (a sender's echoes were four writes in five of a
        // long run, issue 17). Not while anything else holds its reading back, and not
        // past its turn: a sender must read its rooms once a turn too, or it falls
        // behind them by what every other sender says meanwhile.
        let more = !turn_over
            && conn.reader.has_line()
            && member.reading()
            && conn.out.len() < BATCH_LIMIT;
        if !more {
            member.collect_ready(&mut door.output(&mut conn.out), BATCH_LIMIT);
            let batch = conn.out.len();
            if let Err(reason) = conn.flush().await {
                if reason.starts_with(SLOW_CONSUMER) {
                    member.hub().metrics.slow_consumer();
                }
                return reason;
            }
            member.hub().metrics.written(batch);
        }
        member.arm_timer();
        let Connection { stream, reader, .. } = conn;
        let wake = member.wait(|cx| reader.poll_next_line(stream, cx)).await;
        match wake {
            Err(None) => return "connection closed".into(),
            Err(Some(Err(e))) => {
                // Boxed, as the goodbyes are: no room in every session's future.
                Box::pin(conn.linger()).await;
                return io_reason(&e);
            }
            Err(Some(Ok(line))) => {
                member.line_received();
                match line {
                    Err(e) => door.line_error(e, &mut conn.out),
                    Ok(line) => {
                        if let Flow::Quit(reason) =
                            door.line(&line, member, &mut conn.out, &conn.peer)
                        {
                            // What the client's earlier lines caused goes out first
                            // (lines sent at once are collected only after the last).
                            member.collect_ready(&mut door.output(&mut conn.out), BATCH_LIMIT);
                            return Box::pin(farewell(conn, door, reason)).await;
                        }
                    }
                }
            }
            Ok(wake) => {
                let ended = member.woken(wake, &mut door.output(&mut conn.out));
                match ended {
                    Ok(()) => {}
                    Err(Ended::Shutdown) => {
                        let reason: Reason = "server shutting down".into();
                        door.goodbye(&reason, &mut conn.out);
                        let grace = conn.config.shutdown_grace;
                        Box::pin(conn.close(grace)).await;
                        return reason;
                    }
                    Err(Ended::Killed(reason)) => {
                        return Box::pin(farewell(conn, door, reason)).await;
                    }
                    Err(Ended::Idle(idle)) => {
                        let reason = format!("idle timeout: nothing received for {idle:?}");
                        return Box::pin(farewell(conn, door, reason)).await;
                    }
                }
            }
        }
    }
}

/// Says goodbye with `reason` and closes, within the farewell limit; returns `reason`.
async fn farewell<S: Stream, D: Door>(
    conn: &mut Connection<S>,
    door: &mut D,
    reason: Reason,
) -> Reason {
    door.goodbye(&reason, &mut conn.out);
    let limit = conn.farewell_limit();
    conn.close(limit).await;
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::LineCodec;

    /// A connection from loopback over `stream`, with nothing to write yet.
    fn connection<S>(stream: S) -> Connection<S> {
        Connection {
            stream,
            reader: LineReader::new(LineCodec::new(1024)),
            out: BytesMut::new(),
            peer: Peer {
                addr: "127.0.0.1:1".parse().unwrap(),
                tls: false,
                proxied: false,
                websocket: false,
            },
            config: Arc::new(Config::unthrottled()),
        }
    }

    /// The first frame after `expect` makes room for all of them: the buffer is
    /// allocated once, not grown by doubling; and never beyond a batch.
    #[test]
    fn expected_frames_are_made_room_for_at_once() {
        let frame = [b'x'; 100];
        let mut out = BytesMut::new();
        let mut expected = Expected::default();
        expected.expect(10);
        expected.reserve(&mut out, frame.len());
        out.extend_from_slice(&frame);
        let room = out.capacity();
        assert!(room >= 10 * frame.len(), "{room}");
        for _ in 1..10 {
            expected.reserve(&mut out, frame.len());
            out.extend_from_slice(&frame);
        }
        assert_eq!(out.capacity(), room, "no reallocation for the ten");
        // Announced once: the next frame does not reserve again.
        let mut out = BytesMut::new();
        expected.reserve(&mut out, frame.len());
        assert_eq!(out.capacity(), 0);
        // However many are announced, no more than a batch is reserved.
        expected.expect(usize::MAX);
        expected.reserve(&mut out, frame.len());
        let room = out.capacity();
        assert!((BATCH_LIMIT..2 * BATCH_LIMIT).contains(&room), "{room}");
    }

    /// Flushes `conn` while reading `len` bytes at `far`'s end; returns them.
    async fn flush_to<S: Stream>(
        conn: &mut Connection<S>,
        far: &mut tokio::io::DuplexStream,
        len: usize,
    ) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut got = vec![0; len];
        let read = far.read_exact(&mut got);
        let (flushed, read) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(conn.flush(), read)
        })
        .await
        .expect("everything written arrives");
        flushed.unwrap();
        read.unwrap();
        got
    }

    /// rustls keeps the tail of what it is given until flushed, as a `BufWriter` does:
    /// the flush must get everything to the peer anyway.
    #[tokio::test]
    async fn a_flush_gets_what_the_stream_keeps_to_the_peer() {
        use tokio::io::BufWriter;
        let (near, mut far) = tokio::io::duplex(8);
        let mut conn = connection(BufWriter::new(near));
        let message = b"a batch longer than the pipe holds at once\n";
        conn.out.extend_from_slice(message);
        let got = flush_to(&mut conn, &mut far, message.len()).await;
        assert_eq!(&got[..], &message[..], "each byte once, in order");
        assert_eq!(conn.out.capacity(), 0, "no buffer is held once flushed");
    }

    /// A stream that takes vectored writes, as a TCP stream does, and counts them.
    struct Vectored {
        inner: tokio::io::DuplexStream,
        vectored: usize,
    }

    impl tokio::io::AsyncWrite for Vectored {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            self.vectored += 1;
            std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    impl Stream for Vectored {
        fn poll_read_some(
            &mut self,
            _cx: &mut std::task::Context<'_>,
            _buf: &mut BytesMut,
        ) -> std::task::Poll<io::Result<usize>> {
            std::task::Poll::Pending
        }
    }

    /// The output is one slice, and it goes out by plain writes (a `send` on TCP), not
    /// vectored ones (a `writev`, whose file layer cost 3 % more of the server's CPU at
    /// a fixed rate, issue 17); every byte arrives once, in order.
    #[tokio::test]
    async fn a_flush_writes_one_slice_without_vectored_writes() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut conn = connection(Vectored {
            inner: near,
            vectored: 0,
        });
        let message: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        conn.out.extend_from_slice(&message);
        let got = flush_to(&mut conn, &mut far, message.len()).await;
        assert_eq!(got, message, "each byte once, in order");
        assert_eq!(conn.stream.vectored, 0, "no vectored write");
    }

    #[test]
    fn passwords_may_cross_tls_or_loopback_only() {
        let peer = |addr: &str, tls| Peer {
            addr: addr.parse().unwrap(),
            tls,
            proxied: false,
            websocket: false,
        };
        assert!(peer("127.0.0.1:1", false).secure());
        assert!(peer("[::1]:1", false).secure());
        assert!(peer("[::ffff:127.0.0.1]:1", false).secure());
        assert!(peer("192.0.2.7:1", true).secure());
        assert!(!peer("192.0.2.7:1", false).secure());
        assert!(!peer("[2001:db8::1]:1", false).secure());
        // Through a reverse proxy, loopback is the proxy, not the user.
        let proxied = |addr: &str, tls| Peer {
            proxied: true,
            websocket: true,
            ..peer(addr, tls)
        };
        assert!(!proxied("127.0.0.1:1", false).secure());
        assert!(proxied("127.0.0.1:1", true).secure());
    }
}

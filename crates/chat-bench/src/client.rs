//! A bench client's connection: the socket, the handshake and entering the room, over
//! either [`Transport`](crate::transport::Transport) and in either [`Protocol`]; and
//! opening many of them at once with bounded concurrency.
//!
//! A server at one of its limits answers a new connection with `ERR SERVER_FULL` or
//! `ERR TOO_MANY_CONNECTIONS` instead of `NICK` (or, past its limit on refusals in
//! progress, closes it without a word): that is a [`Refused`] error, which a mode may
//! count instead of failing on it. Through the web door the refusal is the HTTP answer
//! to the WebSocket upgrade (`503`), and is the same error; through the IRC door, an
//! `ERROR` before the welcome.

use crate::irc;
use crate::live::Live;
use crate::protocol::{Door, Protocol};
use crate::target::Targets;
use crate::transport::{self, Reader, Writer};
use anyhow::{Context, anyhow, bail};
use chat_proto::{ErrorCode, Room, ServerFrame};
use futures::{StreamExt, TryStreamExt};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpSocket;

/// A connection that has a nickname.
pub(crate) struct Client {
    pub(crate) nick: String,
    pub(crate) protocol: Protocol,
    pub(crate) frames: Reader,
    pub(crate) writer: Writer,
}

/// Socket options of a bench connection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SocketOptions {
    /// `SO_RCVBUF`, for members that must fill up quickly when they stop reading.
    pub(crate) recv_buffer: Option<u32>,
    /// Local address to bind (port 0) before connecting, so that connections spread
    /// over several source addresses and their ephemeral ports (`--source`).
    pub(crate) source: Option<IpAddr>,
}

/// A socket for a connection to `addr`, with `options` applied, not yet connected.
pub(crate) fn socket(addr: SocketAddr, options: SocketOptions) -> anyhow::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("cannot create a socket")?;
    if let Some(size) = options.recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .context("cannot set the receive buffer size")?;
    }
    if let Some(ip) = options.source {
        // Port 0: the kernel picks a free port of this address. (Linux's
        // IP_BIND_ADDRESS_NO_PORT would defer that choice to connect(); socket2 does
        // not offer it and the workspace forbids `unsafe`, so each address is limited
        // to its ~28,000 ephemeral ports, which is what spreading over several is for.)
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("cannot bind the source address {ip}"))?;
    }
    Ok(socket)
}

/// How a server turned a new connection away instead of asking for its nickname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `ERR SERVER_FULL`: the server is at its connection limit.
    Full,
    /// `ERR TOO_MANY_CONNECTIONS`: the connection's address holds as many as it may.
    PerAddress,
    /// Closed before sending any line: what the server does past its limit on
    /// refusals in progress.
    Closed,
}

/// The server refused a connection before its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Which way.
    pub(crate) refusal: Refusal,
    /// What the server said, for the error message.
    pub(crate) said: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.refusal {
            Refusal::Closed => f.write_str("the server closed the connection before NICK"),
            _ => write!(f, "the server refused the connection: {}", self.said),
        }
    }
}

impl std::error::Error for Refused {}

/// What the first line of a new connection (`None`: the server closed it first) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Greeting {
    /// `NICK`: the server asks for a nickname.
    Nick,
    /// A refusal.
    Refused(Refused),
    /// Anything else, verbatim.
    Unexpected(String),
}

impl Greeting {
    pub(crate) fn of(first_line: Option<&str>) -> Greeting {
        let Some(line) = first_line else {
            return Greeting::Refused(Refused {
                refusal: Refusal::Closed,
                said: String::new(),
            });
        };
        let refused = |refusal| {
            Greeting::Refused(Refused {
                refusal,
                said: line.to_owned(),
            })
        };
        match ServerFrame::parse(line) {
            Ok(ServerFrame::NickPrompt) => Greeting::Nick,
            Ok(ServerFrame::Error {
                code: ErrorCode::ServerFull,
                ..
            }) => refused(Refusal::Full),
            Ok(ServerFrame::Error {
                code: ErrorCode::TooManyConnections,
                ..
            }) => refused(Refusal::PerAddress),
            _ => Greeting::Unexpected(line.to_owned()),
        }
    }
}

impl Client {
    /// Connects through `door` and completes the handshake as `nick`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        door: Door,
        nick: String,
        options: SocketOptions,
    ) -> anyhow::Result<Client> {
        let stream = socket(addr, options)?
            .connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (frames, writer) = transport::open(stream, addr, door.transport).await?;
        let mut client = Client {
            nick,
            protocol: door.protocol,
            frames,
            writer,
        };
        match door.protocol {
            Protocol::Native => client.handshake().await?,
            Protocol::Irc => client.register().await?,
        }
        Ok(client)
    }

    /// `NICK`, the nickname, `WELCOME`. A refusal instead of `NICK` is a [`Refused`]
    /// error.
    async fn handshake(&mut self) -> anyhow::Result<()> {
        let first = match self.frames.next().await {
            Some(line) => Some(line?),
            None => None,
        };
        let first = first
            .as_deref()
            .map(|line| String::from_utf8_lossy(line).into_owned());
        match Greeting::of(first.as_deref()) {
            Greeting::Nick => {}
            Greeting::Refused(refused) => return Err(refused.into()),
            Greeting::Unexpected(line) => bail!("expected the NICK prompt, got: {line}"),
        }
        let line = format!("{}\n", self.nick);
        self.writer.write_lines(&line).await?;
        loop {
            match self.next_frame().await? {
                ServerFrame::Welcome { .. } => return Ok(()),
                ServerFrame::Error { code, text } => {
                    bail!("nickname {} refused: {code} {text}", self.nick)
                }
                other => self.fail_on_close(&other)?,
            }
        }
    }

    /// IRC: `NICK` and `USER`, then the lines up to `001`. An `ERROR` that says the
    /// server is full, or the connection closed before `001`, is a [`Refused`] error.
    async fn register(&mut self) -> anyhow::Result<()> {
        self.writer.write_lines(&irc::register(&self.nick)).await?;
        loop {
            let line = match self.frames.next().await {
                Some(line) => line?,
                None => {
                    return Err(Refused {
                        refusal: Refusal::Closed,
                        said: String::new(),
                    }
                    .into());
                }
            };
            match irc::Reply::of(&line) {
                irc::Reply::Welcome => return Ok(()),
                irc::Reply::Error(said) => match irc::refusal(&said) {
                    Some(refusal) => return Err(Refused { refusal, said }.into()),
                    None => bail!("the server closed the connection of {}: {said}", self.nick),
                },
                irc::Reply::Failure(_, line) => {
                    bail!("{} could not register: {line}", self.nick)
                }
                irc::Reply::Pong | irc::Reply::Other => {}
            }
        }
    }

    /// Joins `room` (none: stays in no room), natively leaving `#general`, then waits
    /// until the server has handled it all.
    pub(crate) async fn enter(&mut self, room: Option<&Room>) -> anyhow::Result<()> {
        match self.protocol {
            Protocol::Native => self.enter_native(room).await,
            Protocol::Irc => self.enter_irc(room).await,
        }
    }

    /// IRC: `JOIN` (an IRC client starts in no room), then `PING`; an error numeric
    /// before the `PONG` fails.
    async fn enter_irc(&mut self, room: Option<&Room>) -> anyhow::Result<()> {
        let mut lines = room
            .map(|room| irc::join(room.as_str()))
            .unwrap_or_default();
        lines.push_str(&Protocol::Irc.ping("entered"));
        self.writer.write_lines(&lines).await?;
        loop {
            let line = match self.frames.next().await {
                Some(line) => line?,
                None => bail!("the server closed the connection of {}", self.nick),
            };
            match irc::Reply::of(&line) {
                irc::Reply::Pong => return Ok(()),
                irc::Reply::Failure(_, line) => {
                    bail!("{} could not enter the room: {line}", self.nick)
                }
                irc::Reply::Error(said) => {
                    bail!("the server closed the connection of {}: {said}", self.nick)
                }
                irc::Reply::Welcome | irc::Reply::Other => {}
            }
        }
    }

    async fn enter_native(&mut self, room: Option<&Room>) -> anyhow::Result<()> {
        let mut lines = String::new();
        let general = Room::general();
        match room {
            Some(room) if room.folded() == general.folded() => {}
            Some(room) => lines.push_str(&format!("/join {room}\n/part {general}\n")),
            None => lines.push_str(&format!("/part {general}\n")),
        }
        lines.push_str("/ping entered\n");
        self.writer.write_lines(&lines).await?;
        loop {
            match self.next_frame().await? {
                ServerFrame::Pong { .. } => return Ok(()),
                ServerFrame::Error { code, text } => {
                    bail!("{} could not enter the room: {code} {text}", self.nick)
                }
                other => self.fail_on_close(&other)?,
            }
        }
    }

    /// Sends `/quit` (`QUIT`) and waits for the server to close the connection.
    pub(crate) async fn quit(mut self) -> anyhow::Result<()> {
        self.writer.write_lines(self.protocol.quit_line()).await?;
        loop {
            match self.frames.next().await {
                None => return Ok(()),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next frame that this version of the protocol knows.
    async fn next_frame(&mut self) -> anyhow::Result<ServerFrame> {
        loop {
            let line = match self.frames.next().await {
                Some(line) => line?,
                None => bail!("the server closed the connection of {}", self.nick),
            };
            let line = std::str::from_utf8(&line)
                .map_err(|_| anyhow!("the server sent a line that is not UTF-8"))?;
            if let Ok(frame) = ServerFrame::parse(line) {
                return Ok(frame);
            }
        }
    }

    fn fail_on_close(&self, frame: &ServerFrame) -> anyhow::Result<()> {
        match frame {
            ServerFrame::Bye { reason } => {
                bail!(
                    "the server closed the connection of {}: {reason}",
                    self.nick
                )
            }
            _ => Ok(()),
        }
    }
}

/// A name for this run, so that two benches against one server do not collide: 6 hex
/// digits from the clock and the process id.
pub(crate) fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(11)
        });
    format!(
        "{:06x}",
        (nanos ^ std::process::id().rotate_left(7)) & 0xff_ffff
    )
}

/// How [`connect_many`] opens and logs in connections.
pub(crate) struct Setup<'a> {
    /// The server addresses: connection *i* (of the nicknames given) goes to address
    /// *i* mod *n*, from the next of that address's source addresses (overriding
    /// `options.source`), if any.
    pub(crate) targets: &'a Targets,
    pub(crate) door: Door,
    pub(crate) room: Option<&'a Room>,
    pub(crate) options: SocketOptions,
    /// Count a refused connection ([`Refused`]) in [`Live`] and carry on without it,
    /// rather than fail.
    pub(crate) allow_refused: bool,
    pub(crate) concurrency: usize,
    /// Bound on each connection's setup.
    pub(crate) timeout: Duration,
    pub(crate) live: &'a Arc<Live>,
}

/// Opens one connection per nickname, at most `setup.concurrency` at a time, logs each
/// in and brings it into the room, and hands it at once to `start` (which typically
/// spawns its receiver, so that nothing piles up while the others connect). Fails on
/// the first connection that cannot be set up, except, with `setup.allow_refused`, a
/// refused one: that is counted and left out (the result is shorter than `nicks`).
pub(crate) async fn connect_many<T>(
    setup: &Setup<'_>,
    nicks: Vec<String>,
    mut start: impl FnMut(usize, Client) -> T,
) -> anyhow::Result<Vec<T>> {
    let total = nicks.len();
    let mut started: Vec<(usize, T)> = Vec::with_capacity(total);
    let mut connecting = futures::stream::iter(nicks.into_iter().enumerate())
        .map(|(i, nick)| async move {
            let (addr, source) = setup.targets.nth(i);
            let options = SocketOptions {
                source: source.or(setup.options.source),
                ..setup.options
            };
            let set_up = async {
                let mut client = Client::connect(addr, setup.door, nick.clone(), options).await?;
                client.enter(setup.room).await?;
                anyhow::Ok(client)
            };
            let client = match tokio::time::timeout(setup.timeout, set_up).await {
                Err(_) => bail!("{nick} not set up within {:?}", setup.timeout),
                Ok(Ok(client)) => client,
                Ok(Err(e)) => match e.downcast_ref::<Refused>() {
                    Some(refused) if setup.allow_refused => {
                        setup.live.refused(refused.refusal);
                        return anyhow::Ok((i, None));
                    }
                    _ => return Err(e.context(format!("connection {} of {total}", i + 1))),
                },
            };
            anyhow::Ok((i, Some(client)))
        })
        .buffer_unordered(setup.concurrency.max(1));
    while let Some((i, client)) = connecting.try_next().await? {
        let Some(client) = client else { continue };
        Live::add(&setup.live.connected, 1);
        started.push((i, start(i, client)));
    }
    started.sort_unstable_by_key(|(i, _)| *i);
    Ok(started.into_iter().map(|(_, t)| t).collect())
}

/// Makes sure every receiver has read everything that setting up caused (the `JOIN`s of
/// later members...): each connection sends `/ping` (`PING`), whose `PONG` comes after
/// all of it, and this waits for as many `PONG`s (counted by the receivers) as it sent.
pub(crate) async fn sync(
    writers: impl IntoIterator<Item = &mut Writer>,
    protocol: Protocol,
    live: &Live,
    timeout: Duration,
) -> anyhow::Result<()> {
    let ping = protocol.ping("sync");
    let mut pinged = 0u32;
    for writer in writers {
        writer.write_lines(&ping).await?;
        pinged += 1;
    }
    let pongs = tokio::time::timeout(timeout, live.pongs.acquire_many(pinged))
        .await
        .map_err(|_| {
            let seen = live.pongs.available_permits();
            anyhow!("only {seen} of {pinged} connections answered /ping within {timeout:?}")
        })?
        .context("the run was abandoned")?;
    pongs.forget();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_make_valid_nicknames() {
        let id = run_id();
        assert_eq!(id.len(), 6);
        let nick = format!("b{id}_c65535_4294967295");
        assert!(chat_proto::Nick::new(&nick).is_ok(), "{nick}");
    }
}

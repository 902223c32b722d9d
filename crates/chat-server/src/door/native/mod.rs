//! The native door: the line protocol of `docs/protocol.md`, over TCP, TLS, or a
//! WebSocket's text messages. Its parts: the handshake (`NICK`, then `PASS` for a
//! registered nickname), the translation of commands into calls on the member
//! ([`Native::line`]), and the encoding of events and replies (`encode`). Everything
//! else (waiting, batching, flushing) is the shared driver's, and everything a command
//! does is the core's.

pub(crate) mod encode;

use crate::config::Config;
use crate::core::error::Refusal;
use crate::core::event::Source;
use crate::core::flood::TokenBucket;
use crate::core::hub::{Hub, ModeOutcome};
use crate::core::mailbox::mailbox;
use crate::core::member::{HistoryOf, Member, Output};
use crate::net::driver::{self, Connection, Door, Flow, Peer, Reason, io_reason};
use crate::net::reader::{LineReader, Stream};
use bytes::BytesMut;
use chat_proto::{
    AccountStatus, Command, CommandError, ErrorCode, LineCodec, LineError, Nick, Password, Room,
    ServerFrame, Target, command::DEFAULT_HISTORY, command::HELP,
};
use encode::Native as Out;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// What a connection's session starts from. The caller boxes it: an async fn keeps its
/// arguments for its whole life, so the session's future keeps only a pointer, and the
/// box is freed once the handshake is done.
pub(crate) struct Start<S> {
    pub(crate) stream: S,
    pub(crate) peer: Peer,
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: Arc<Config>,
    /// Watched during the handshake; a session hears of shutdown from the hub.
    pub(crate) shutdown: CancellationToken,
    /// When the handshake must be done: `--handshake-timeout` after the connection was
    /// accepted, a TLS handshake included.
    pub(crate) deadline: Instant,
}

/// A connection after its handshake: its socket and its member.
struct Session<S> {
    conn: Connection<S>,
    member: Member,
}

/// Runs one connection from accept (and TLS handshake) to close.
///
/// There is no tracing span per connection (one costs about 0.45 KB for the life of the
/// connection at the default level); its log lines name the peer and the nickname.
pub(crate) async fn serve<S: Stream>(start: Box<Start<S>>) {
    let addr = start.peer.addr;
    // Built in a block of its own, and the session boxed: a value moved out of a local
    // would otherwise keep its place in the future for the session's whole life.
    let login = {
        let start = start;
        let Start {
            stream,
            peer,
            hub,
            config,
            shutdown,
            deadline,
        } = *start;
        info!(peer = %addr, tls = peer.tls, websocket = peer.websocket, "connected");
        let mut conn = Connection {
            stream,
            reader: LineReader::new(LineCodec::new(config.max_line)),
            out: BytesMut::new(),
            peer,
            config,
        };
        // Boxed: its state is freed once done (see the driver's docs).
        match Box::pin(handshake(&mut conn, &hub, &shutdown, deadline)).await {
            Ok(member) => Ok(Box::new(Session { conn, member })),
            Err(reason) => Err(reason),
        }
    };
    match login {
        Ok(mut session) => {
            let Session { conn, member } = &mut *session;
            info!(peer = %addr, nick = %member.nick(), "handshake complete");
            welcome(conn, member);
            let reason = driver::drive(conn, member, &mut Native).await;
            info!(peer = %addr, nick = %member.nick(), %reason, "disconnected");
            member.set_reason(reason);
        }
        Err(reason) => info!(peer = %addr, %reason, "disconnected"),
    }
}

fn push(out: &mut BytesMut, frame: &ServerFrame) {
    frame.encode(out);
}

fn error(out: &mut BytesMut, code: ErrorCode, text: impl Into<String>) {
    push(
        out,
        &ServerFrame::Error {
            code,
            text: text.into(),
        },
    );
}

/// Reports a line the codec refused.
fn line_error(out: &mut BytesMut, error_: LineError) {
    match error_ {
        LineError::TooLong { limit } => error(
            out,
            ErrorCode::LineTooLong,
            format!("line longer than {limit} bytes, discarded"),
        ),
        LineError::InvalidUtf8 => error(
            out,
            ErrorCode::BadUtf8,
            "line is not valid UTF-8, discarded",
        ),
    }
}

/// Sends a last frame and closes, without waiting longer than `limit`.
async fn close_with<S: Stream>(
    conn: &mut Connection<S>,
    frame: ServerFrame,
    limit: std::time::Duration,
) {
    push(&mut conn.out, &frame);
    conn.close(limit).await;
}

/// The original program's exchange: `NICK`, a nickname, again until one is free;
/// `PASS` and its password for a registered one; all by `deadline`.
async fn handshake<S: Stream>(
    conn: &mut Connection<S>,
    hub: &Arc<Hub>,
    shutdown: &CancellationToken,
    deadline: Instant,
) -> Result<Member, Reason> {
    let result = tokio::select! {
        result = tokio::time::timeout_at(deadline, choose_nick(conn, hub)) => match result {
            Ok(result) => result,
            Err(_) => {
                let limit = conn.farewell_limit();
                close_with(conn, ServerFrame::Bye { reason: "handshake timed out".into() }, limit).await;
                Err("handshake timed out".into())
            }
        },
        _ = shutdown.cancelled() => {
            let grace = conn.config.shutdown_grace;
            close_with(conn, ServerFrame::Bye { reason: "server shutting down".into() }, grace).await;
            Err("server shutting down".into())
        }
    };
    hub.metrics.handshake(result.is_ok());
    result
}

async fn choose_nick<S: Stream>(
    conn: &mut Connection<S>,
    hub: &Arc<Hub>,
) -> Result<Member, Reason> {
    push(&mut conn.out, &ServerFrame::NickPrompt);
    // Flood control holds for nickname attempts too: each taken one costs the hub lock.
    let config = conn.config.clone();
    let mut bucket = TokenBucket::new(config.flood_burst, config.flood_rate, Instant::now());
    loop {
        let Some(line) = prompted_line(conn, &mut bucket).await? else {
            push(&mut conn.out, &ServerFrame::NickPrompt);
            continue;
        };
        let answer = line.trim();
        let nick = match Nick::new(answer) {
            Ok(nick) => nick,
            Err(e) => {
                error(
                    &mut conn.out,
                    ErrorCode::NickInvalid,
                    format!("{answer:?} is not a valid nickname: {e}"),
                );
                push(&mut conn.out, &ServerFrame::NickPrompt);
                continue;
            }
        };
        // A server ban (by mask, or by the address, which a proxy may have given) ends
        // the connection: trying other nicknames would only be evasion.
        let ip = conn.peer.addr.ip();
        if let Some(ban) = hub.bans.session(&nick, ip, crate::core::event::now()) {
            info!(peer = %conn.peer.addr, nick = %nick, ban = %ban.target, "banned");
            hub.metrics.refused(crate::core::metrics::Refusal::Banned);
            let refusal = Refusal::Banned {
                reason: ban.reason,
                until: ban.until,
            };
            push(&mut conn.out, &encode::refusal(&refusal));
            let limit = conn.farewell_limit();
            let reason = "banned";
            close_with(
                conn,
                ServerFrame::Bye {
                    reason: reason.into(),
                },
                limit,
            )
            .await;
            return Err(reason.into());
        }
        let key = nick.folded();
        // A nickname in use is refused before any password is asked for.
        let identified = match hub.account(&key) {
            _ if hub.is_connected(&key) => Err(Some(Refusal::NickTaken(nick.clone()))),
            None => Ok(None),
            // Boxed: only registered nicknames pay for the password exchange's state.
            Some(account) => match Box::pin(password(conn, hub, &nick, &mut bucket)).await? {
                true => Ok(Some(account.created_ms)),
                // The password exchange has said what went wrong.
                false => Err(None),
            },
        };
        let refused = match identified {
            Ok(since) => {
                let (tx, rx) = mailbox(config.mailbox_capacity);
                let source = Arc::new(Source {
                    nick: nick.clone(),
                    account: since.map(|_| key.as_str().into()),
                    // What IRC would show as user@host is for the door that shows it.
                    ident: None,
                });
                match hub.enter(&source, tx, conn.peer.tls).await {
                    Ok(activity) => {
                        let ip = conn.peer.addr.ip();
                        return Ok(Member::new(
                            hub.clone(),
                            source,
                            activity,
                            rx,
                            since,
                            ip,
                            config,
                        ));
                    }
                    Err(refused) => Some(refused),
                }
            }
            Err(refused) => refused,
        };
        match refused {
            Some(Refusal::NickRegistered(nick)) => error(
                &mut conn.out,
                ErrorCode::NickRegistered,
                format!("nickname {nick} is registered: reconnect and give its password"),
            ),
            Some(refused) => push(&mut conn.out, &encode::refusal(&refused)),
            None => {}
        }
        push(&mut conn.out, &ServerFrame::NickPrompt);
    }
}

/// Flushes what is pending and reads the answer to a prompt, paced by flood control.
/// `None`: the line was refused (the error is queued).
async fn prompted_line<S: Stream>(
    conn: &mut Connection<S>,
    bucket: &mut Option<TokenBucket>,
) -> Result<Option<String>, Reason> {
    conn.flush().await?;
    let line = match conn.reader.next_line(&mut conn.stream).await {
        None => return Err("closed during handshake".into()),
        Some(Err(e)) => {
            conn.linger().await;
            return Err(io_reason(&e));
        }
        Some(Ok(Err(e))) => {
            line_error(&mut conn.out, e);
            return Ok(None);
        }
        Some(Ok(Ok(line))) => line,
    };
    if let Some(at) = bucket.as_mut().and_then(|b| b.take(Instant::now())) {
        tokio::time::sleep_until(at).await;
    }
    Ok(Some(line))
}

/// Asks for the password of the registered `nick` and checks it. `false`: refused,
/// with the error queued.
async fn password<S: Stream>(
    conn: &mut Connection<S>,
    hub: &Hub,
    nick: &Nick,
    bucket: &mut Option<TokenBucket>,
) -> Result<bool, Reason> {
    if !conn.peer.secure() {
        error(
            &mut conn.out,
            ErrorCode::InsecureTransport,
            format!(
                "nickname {nick} is registered; its password is only accepted over TLS \
                 or from loopback, never in the clear"
            ),
        );
        return Ok(false);
    }
    push(&mut conn.out, &ServerFrame::PassPrompt);
    let Some(password) = prompted_line(conn, bucket).await? else {
        return Ok(false);
    };
    let key = nick.folded();
    let from = conn.peer.addr.ip();
    let verify = async {
        match hub.account(&key) {
            Some(account) => hub.hasher.verify(from, password, account.hash).await,
            // Unregistered meanwhile (cannot happen today): nothing to check against.
            None => true,
        }
    };
    // Wrong guesses cost time, per address and per nickname; the wait counts against
    // the handshake timeout.
    let right = hub.throttle.check(&key, from, verify).await;
    hub.metrics.password_checked(right);
    if right {
        info!(peer = %conn.peer.addr, nick = %nick, "password accepted");
    } else {
        info!(peer = %conn.peer.addr, nick = %nick, "wrong password");
        push(
            &mut conn.out,
            &encode::refusal(&Refusal::PasswordWrong(nick.clone())),
        );
    }
    Ok(right)
}

/// The first frames of a session: `WELCOME`, the account if identified, the message of
/// the day, and the join of `#general`.
fn welcome<S>(conn: &mut Connection<S>, member: &mut Member) {
    let nick = member.nick().clone();
    push(
        &mut conn.out,
        &ServerFrame::Welcome {
            text: format!("Welcome to the chat, {nick}!"),
            nick: nick.clone(),
        },
    );
    if member.identified() {
        push(
            &mut conn.out,
            &ServerFrame::Account {
                nick,
                status: AccountStatus::Identified,
            },
        );
    }
    if let Some(motd) = member.motd() {
        motd_frames(motd, &mut conn.out);
    }
    Native.line_command(
        Command::Join {
            room: Room::general(),
            key: None,
        },
        member,
        &mut conn.out,
        &conn.peer,
    );
}

/// The message of the day, one `MOTD` frame per line (a control character, a tab
/// say, shown as a space).
fn motd_frames(motd: &str, out: &mut BytesMut) {
    for line in motd.lines() {
        let text = line.replace(|c: char| c.is_control(), " ");
        push(out, &ServerFrame::Motd { text });
    }
}

/// The answer to a `/mode` (and to `/op`, `/ban`... which are modes): the modes, or the
/// ban list; nothing for a change, which the member hears through the room.
fn mode_answer(outcome: ModeOutcome, output: &mut Out<'_>) {
    match outcome {
        ModeOutcome::Modes(room, modes) => output.push(&ServerFrame::Modes {
            room: room.name.clone(),
            modes,
        }),
        ModeOutcome::Bans(room, bans) => {
            for ban in &bans {
                output.push(&encode::room_ban(&room, ban));
            }
            output.push(&ServerFrame::BanEnd {
                room: room.name.clone(),
                count: bans.len(),
            });
        }
        ModeOutcome::Changed => {}
    }
}

/// The native door (it keeps no state of its own).
pub(crate) struct Native;

impl Native {
    fn line_command(
        &mut self,
        command: Command,
        member: &mut Member,
        out: &mut BytesMut,
        peer: &Peer,
    ) -> Flow {
        let mut output = Out::new(out);
        // What to suggest to a member in no room.
        let no_room = match &command {
            Command::Say(_) | Command::Me(_) => ": /join #room first",
            Command::Who(_) => ": /who #room",
            Command::History { .. } => ": /history #room",
            Command::Topic { set: None, .. } => ": /topic #room",
            Command::Topic { .. } => ": /join #room first",
            Command::Mode { .. }
            | Command::Grant { .. }
            | Command::Kick { .. }
            | Command::Ban { .. }
            | Command::Unban { .. }
            | Command::Invite { .. } => ": name the #room",
            _ => "",
        };
        let done = match command {
            Command::Say(text) => member.say(None, text, false).map(drop),
            Command::Me(text) => member.say(None, text, true).map(drop),
            Command::Join { room, key } => {
                member.join(&room, key.as_deref(), &mut output).map(|()| {
                    // In a cluster, the join is done once the log has it: the member
                    // then says which room is current.
                    if !member.answering() {
                        let room = member.current_room().cloned();
                        output.push(&ServerFrame::Current { room });
                    }
                })
            }
            Command::Part { room, reason } => {
                member.part(room, reason, &mut output).map(|changed| {
                    if changed {
                        let room = member.current_room().cloned();
                        output.push(&ServerFrame::Current { room });
                    }
                })
            }
            Command::Rooms => {
                let rooms = member.rooms();
                if rooms.is_empty() {
                    output.push(&ServerFrame::Rooms { rooms: Vec::new() });
                }
                for chunk in rooms.chunks(encode::LIST_CHUNK) {
                    output.push(&ServerFrame::Rooms {
                        rooms: chunk
                            .iter()
                            .map(|l| (l.room.name.clone(), l.members))
                            .collect(),
                    });
                }
                // Then each topic, as `/topic` shows it.
                for listed in &rooms {
                    if let Some(topic) = &listed.topic {
                        output.topic(&listed.room, Some(topic));
                    }
                }
                Ok(())
            }
            Command::Who(room) => member.who(room, &mut output),
            // The recipient's away text follows the sender's copy of the message.
            Command::Msg { to, text } => {
                member.private(&to, text, false, &mut output).map(|away| {
                    if let Some((nick, text)) = away {
                        output.push(&ServerFrame::IsAway {
                            nick,
                            text: text.to_string(),
                        });
                    }
                })
            }
            Command::Away(text) => {
                member.set_away(text.clone());
                output.push(&ServerFrame::Away {
                    nick: member.nick().clone(),
                    text,
                });
                Ok(())
            }
            Command::Whois(nick) => member.whois(&nick).map(|w| {
                output.push(&ServerFrame::Whois(Box::new(encode::whois(&w))));
            }),
            Command::Whowas(nick) => member.whowas(&nick).map(|found| {
                for d in &found {
                    output.push(&ServerFrame::Whowas {
                        nick: d.nick.clone(),
                        left: d.left,
                        account: d.account.as_deref().and_then(|a| Nick::new(a).ok()),
                    });
                }
                output.push(&ServerFrame::WhowasEnd {
                    nick,
                    count: found.len(),
                });
            }),
            Command::Topic { room, set: None } => member.topic(room, &mut output),
            Command::Topic {
                room,
                set: Some(text),
            } => member.set_topic(room, text),
            Command::Mode { room, changes } => member
                .mode(room, &changes)
                .map(|outcome| mode_answer(outcome, &mut output)),
            Command::Grant {
                room,
                nick,
                status,
                give,
            } => {
                let letter = if status == chat_proto::Status::Voice {
                    'v'
                } else {
                    'o'
                };
                let sign = if give { '+' } else { '-' };
                let words = [format!("{sign}{letter}"), nick.to_string()];
                member
                    .mode(room, &words)
                    .map(|outcome| mode_answer(outcome, &mut output))
            }
            Command::Kick { room, nick, reason } => member.kick(room, &nick, reason),
            Command::Ban { room, mask } => {
                let words: Vec<String> = std::iter::once("+b".to_owned()).chain(mask).collect();
                member
                    .mode(room, &words)
                    .map(|outcome| mode_answer(outcome, &mut output))
            }
            Command::Unban { room, mask } => member
                .mode(room, &["-b".to_owned(), mask])
                .map(|outcome| mode_answer(outcome, &mut output)),
            Command::Invite { nick, room } => member.invite(&nick, room),
            Command::Nick(new) => member.rename(new, &mut output),
            Command::Quit(reason) => return Flow::Quit(reason.unwrap_or_else(|| "quit".into())),
            Command::Help => {
                for (usage, what) in HELP {
                    output.push(&ServerFrame::Help {
                        text: format!("{usage:<24} {what}"),
                    });
                }
                Ok(())
            }
            Command::Register(password) => set_password(member, password, false, peer),
            Command::Password(password) => set_password(member, password, true, peer),
            Command::History {
                target,
                count,
                before,
            } => {
                let target = target.map(|target| match target {
                    Target::Room(room) => HistoryOf::Room(room),
                    Target::Nick(nick) => HistoryOf::Nick(nick),
                });
                member.history(target, count.unwrap_or(DEFAULT_HISTORY), before)
            }
            Command::Ping(token) => {
                member.ping(token);
                Ok(())
            }
            Command::Motd => match member.motd() {
                Some(motd) => {
                    motd_frames(motd, output.out);
                    Ok(())
                }
                None => Err(Refusal::NoMotd),
            },
            Command::Oper { name, password } => {
                member.oper(name, password.expose().to_owned(), peer.secure())
            }
            Command::Kill { nick, reason } => member
                .kill(&nick, reason)
                .map(|(nick, reason)| output.push(&ServerFrame::Killed { nick, reason })),
            Command::Wallops(text) => member.wallops(text),
            Command::Sban {
                target,
                duration,
                reason,
            } => member
                .sban(&target, duration, reason)
                .map(|ban| output.push(&encode::ban(&ban))),
            Command::Unsban(target) => member
                .unsban(&target)
                .map(|target| output.push(&ServerFrame::Unsban { target })),
            Command::Sbans => member.sbans().map(|bans| {
                for ban in &bans {
                    output.push(&encode::ban(ban));
                }
                output.push(&ServerFrame::SbanEnd { count: bans.len() });
            }),
            Command::WallopsMode(on) => {
                member.set_wallops(on);
                output.push(&ServerFrame::WallopsMode { on });
                Ok(())
            }
        };
        match done {
            Ok(()) => {}
            Err(Refusal::NoCurrentRoom) => error(
                output.out,
                ErrorCode::NoCurrentRoom,
                format!("you are in no room{no_room}"),
            ),
            Err(refused) => output.push(&encode::refusal(&refused)),
        }
        member.count_encodings(&mut output);
        Flow::Continue
    }
}

/// `/register` (`change: false`) and `/password` (`change: true`).
fn set_password(
    member: &mut Member,
    password: Password,
    change: bool,
    peer: &Peer,
) -> Result<(), Refusal> {
    member.set_password(
        password.expose().to_owned(),
        password
            .acceptable()
            .then_some(())
            .ok_or(Refusal::PasswordInvalid {
                min_chars: Password::MIN_CHARS,
                max_bytes: Password::MAX_BYTES,
            }),
        change,
        peer.secure(),
    )
}

impl Door for Native {
    type Out<'a> = Out<'a>;

    fn output<'a>(&'a mut self, out: &'a mut BytesMut) -> Out<'a> {
        Out::new(out)
    }

    fn line(&mut self, line: &str, member: &mut Member, out: &mut BytesMut, peer: &Peer) -> Flow {
        match Command::parse(line) {
            Ok(command) => self.line_command(command, member, out, peer),
            Err(CommandError::Empty) => Flow::Continue,
            Err(e) => {
                error(out, e.code(), e.to_string());
                Flow::Continue
            }
        }
    }

    fn line_error(&mut self, error: LineError, out: &mut BytesMut) {
        line_error(out, error);
    }

    fn goodbye(&mut self, reason: &str, out: &mut BytesMut) {
        push(
            out,
            &ServerFrame::Bye {
                reason: reason.into(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hub::test_hub;
    use futures::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio_util::codec::Framed;

    async fn next(wire: &mut Framed<tokio::io::DuplexStream, LineCodec>) -> ServerFrame {
        let line = tokio::time::timeout(Duration::from_secs(10), wire.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .unwrap();
        ServerFrame::parse(&line).unwrap()
    }

    /// A member of `hub` called `nick`, without history on join, joined to `room`; what
    /// its join wrote is discarded.
    fn joined_member(hub: &Arc<Hub>, nick: &str, room: &str) -> Member {
        let config = Arc::new(Config {
            history: 0,
            ..Config::unthrottled()
        });
        let source = Arc::new(Source::named(Nick::new(nick).unwrap(), None));
        let (tx, rx) = mailbox(16);
        let activity = hub.register(&source, tx, false).unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        let mut member = Member::new(hub.clone(), source, activity, rx, None, ip, config);
        let mut out = BytesMut::new();
        let mut output = Out::new(&mut out);
        member
            .join(&Room::new(room).unwrap(), None, &mut output)
            .unwrap();
        member.collect_ready(&mut output, usize::MAX);
        member
    }

    /// One event reaching 1,000 members of the native door is encoded once: the first
    /// member to collect it encodes it, every other copies the same bytes.
    #[tokio::test]
    async fn one_event_to_a_thousand_members_is_encoded_once() {
        // Quiet past 10 members, so that the thousand joins are not announced to all.
        let hub = test_hub(1024, 10);
        let mut members: Vec<_> = (0..1000)
            .map(|n| joined_member(&hub, &format!("m{n}"), "#crowd"))
            .collect();
        // Everyone has heard the first ten joins (announced before the room went quiet).
        for member in &mut members {
            let mut out = BytesMut::new();
            let mut output = Out::new(&mut out);
            member.collect_ready(&mut output, usize::MAX);
        }
        let before = hub.metrics.encodings();
        members[0].say(None, "hello, crowd".into(), false).unwrap();
        let mut outputs = Vec::new();
        for member in &mut members {
            let mut out = BytesMut::new();
            member.collect_ready(&mut Out::new(&mut out), usize::MAX);
            outputs.push(out);
        }
        assert_eq!(hub.metrics.encodings() - before, 1, "one encoding");
        let line = &outputs[0];
        assert!(line.starts_with(b"MSG #crowd m0 "), "{line:?}");
        assert!(line.ends_with(b" :hello, crowd\n"), "{line:?}");
        assert!(
            outputs.iter().all(|out| out == line),
            "the same bytes for all"
        );
    }

    /// A turn's output is allocated once, at the size its frames need: the collect
    /// announces the ready events and the first frame makes room for all of them.
    #[tokio::test]
    async fn a_turns_frames_are_written_into_one_allocation() {
        let hub = test_hub(1024, 0);
        // Each has read everything so far (the helper collects after the join).
        let mut members = [
            joined_member(&hub, "alice", "#room"),
            joined_member(&hub, "bob", "#room"),
        ];
        // Five frames of one length.
        for n in 0..5 {
            members[0].say(None, format!("m{n}"), false).unwrap();
        }
        let mut out = BytesMut::new();
        members[1].collect_ready(&mut Out::new(&mut out), usize::MAX);
        let frames = out.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(frames, 5, "{out:?}");
        // Grown by doubling, it would hold eight frames' room for five.
        assert_eq!(
            out.capacity(),
            out.len(),
            "one allocation, exactly the turn's"
        );
    }

    /// A session over an in-memory pipe that claims to come from a documentation
    /// address (192.0.2.0/24, never routed): the plain-TCP, non-loopback case, which no
    /// loopback-only socket test can produce.
    #[tokio::test]
    async fn passwords_are_refused_in_the_clear() {
        let hub = test_hub(16, 0);
        let hash = crate::core::password::hash("correct horse").unwrap();
        assert!(
            hub.set_account(&Nick::new("alice").unwrap(), hash, false)
                .is_ok()
        );
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let peer = Peer {
            addr: "192.0.2.7:40000".parse().unwrap(),
            tls: false,
            proxied: false,
            websocket: false,
        };
        let config = Arc::new(Config::unthrottled());
        tokio::spawn(serve(Box::new(Start {
            stream: tokio::io::BufWriter::new(theirs),
            peer,
            hub,
            deadline: Instant::now() + config.handshake_timeout,
            config,
            shutdown: CancellationToken::new(),
        })));
        let mut wire = Framed::new(ours, LineCodec::new(chat_proto::CLIENT_MAX_LINE));
        assert_eq!(next(&mut wire).await, ServerFrame::NickPrompt);
        wire.send("alice").await.unwrap();
        // No PASS prompt: the password is never asked for in the clear.
        assert!(matches!(
            next(&mut wire).await,
            ServerFrame::Error {
                code: ErrorCode::InsecureTransport,
                ..
            }
        ));
        assert_eq!(next(&mut wire).await, ServerFrame::NickPrompt);
        wire.send("bob").await.unwrap();
        assert!(matches!(next(&mut wire).await, ServerFrame::Welcome { .. }));
        wire.send("/register correct horse").await.unwrap();
        let refused = loop {
            if let ServerFrame::Error { code, .. } = next(&mut wire).await {
                break code;
            }
        };
        assert_eq!(refused, ErrorCode::InsecureTransport);
    }

    /// A writer that counts its writes, over an in-memory pipe.
    struct Counting {
        inner: tokio::io::DuplexStream,
        writes: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl tokio::io::AsyncRead for Counting {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl tokio::io::AsyncWrite for Counting {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A session of alice in `#a` on `hub` over an in-memory pipe that counts the
    /// server's writes: the member, its connection, the client's end and the count.
    fn piped_session(
        hub: &Arc<crate::core::hub::Hub>,
    ) -> (
        Member,
        crate::net::driver::Connection<chat_proto::LineEof<Counting>>,
        tokio::io::DuplexStream,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let config = Arc::new(Config {
            history: 0,
            ..Config::unthrottled()
        });
        let source = Arc::new(Source::named(Nick::new("alice").unwrap(), None));
        let (tx, rx) = mailbox(16);
        let activity = hub.register(&source, tx, false).unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        let mut member = Member::new(hub.clone(), source, activity, rx, None, ip, config.clone());
        let (near, far) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut conn = crate::net::driver::Connection {
            stream: chat_proto::LineEof::new(Counting {
                inner: near,
                writes: writes.clone(),
            }),
            reader: crate::net::reader::LineReader::new(chat_proto::LineCodec::new(4096)),
            out: BytesMut::new(),
            peer: crate::net::driver::Peer {
                addr: "127.0.0.1:1".parse().unwrap(),
                tls: false,
                proxied: false,
                websocket: false,
            },
            config,
        };
        member
            .join(
                &Room::new("#a").unwrap(),
                None,
                &mut Out::new(&mut conn.out),
            )
            .unwrap();
        (member, conn, far, writes)
    }

    /// Runs alice's session of [`piped_session`] after its client sent `m1` … `m{count}`
    /// and a `/quit` at once, until the `/quit` ends it; returns what the client got and
    /// how many writes the server made.
    async fn sent_at_once(hub: &Arc<crate::core::hub::Hub>, count: usize) -> (String, usize) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut member, mut conn, mut far, writes) = piped_session(hub);
        let mut lines: String = (1..=count).map(|n| format!("m{n}\n")).collect();
        lines.push_str("/quit\n");
        // Written whole before the session runs: every line is there to read at once.
        far.write_all(lines.as_bytes()).await.unwrap();
        let reason = tokio::time::timeout(
            Duration::from_secs(10),
            crate::net::driver::drive(&mut conn, &mut member, &mut Native),
        )
        .await
        .expect("the session ends at its /quit");
        assert!(reason.contains("quit"), "{reason}");
        drop(conn);
        let mut seen = String::new();
        far.read_to_string(&mut seen).await.unwrap();
        (seen, writes.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Lines a client sends at once are all handled before the session writes: their
    /// echoes go out in one write, not one write a line (a long run's senders made four
    /// writes in five of the server's, issue 17); and a `/quit` among them still sends
    /// what the lines before it caused.
    #[tokio::test]
    async fn lines_sent_at_once_are_answered_in_one_write() {
        let (seen, writes) = sent_at_once(&test_hub(1024, 0), 20).await;
        let echoes = seen
            .lines()
            .filter(|l| l.starts_with("MSG #a alice "))
            .count();
        assert_eq!(echoes, 20, "every line's echo, before the goodbye: {seen}");
        assert!(
            writes <= 3,
            "{writes} writes for the join, 20 echoes and the goodbye"
        );
    }

    /// A client that sends many lines at once still reads its rooms once a turn: its
    /// own echoes never fall further behind than a turn's lines, so a room that keeps
    /// fewer events than the client sent still hands it every one, with no trip to the
    /// store. (Reading only once every line read was handled, a long run's senders fell
    /// 100,000 events behind and were refilled from SQLite, issue 17.)
    #[tokio::test]
    async fn a_client_sending_many_lines_reads_its_rooms_every_turn() {
        // A room keeping 48 events, past a turn's 32 lines.
        let hub = test_hub(48, 0);
        let (seen, _) = sent_at_once(&hub, 400).await;
        let echoes: Vec<&str> = seen
            .lines()
            .filter_map(|l| l.strip_prefix("MSG #a alice "))
            .map(|rest| rest.rsplit(" :").next().unwrap())
            .collect();
        let sent: Vec<String> = (1..=400).map(|n| format!("m{n}")).collect();
        assert_eq!(echoes, sent, "every echo, in order");
        assert_eq!(
            hub.metrics.refills_total(),
            0,
            "none refilled from the store"
        );
    }
}

//! The IRC door: the dialect irssi, WeeChat and HexChat speak (RFC 1459/2812 as modern
//! servers implement it, with IRCv3 capabilities), on the same hub, rooms, nicknames,
//! accounts and history as the native door. `../shared/IRC.md` is the behaviour list;
//! `docs/irc.md` says what is supported.
//!
//! Its parts: registration (`CAP`, `PASS`, `NICK`, `USER`, then the welcome burst), the
//! translation of commands into calls on the member ([`IrcDoor::line`]), and the
//! encoding of events and replies (`encode`). The shared driver does the rest.

pub(crate) mod caps;
pub(crate) mod encode;
pub(crate) mod history;
pub(crate) mod label;
pub(crate) mod realname;
pub(crate) mod who;

use crate::config::Config;
use crate::core::error::Refusal;
use crate::core::event::{Ident, Source};
use crate::core::flood::TokenBucket;
use crate::core::hub::{Hub, ModeOutcome};
use crate::core::mailbox::mailbox;
use crate::core::member::Member;
use crate::core::room::Standing;
use crate::net::driver::{self, Connection, Door, Flow, Peer, Reason, io_reason};
use crate::net::reader::{LineReader, Stream};
use bytes::BytesMut;
use caps::Caps;
use chat_proto::irc::Message;
use chat_proto::{LineCodec, LineError, Nick, Room};
use encode::{Irc, View, numeric};
use std::fmt::Write as _;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The longest line read: 512 bytes of message and 8191 of tags (IRCv3).
pub(crate) const MAX_LINE: usize = chat_proto::irc::MAX_LINE + chat_proto::irc::MAX_TAGS;

/// Lines a client may send at once while registering before flood control paces it.
const REGISTRATION_BURST: usize = 12;

/// What the server says it is (002, 004, `VERSION`).
const VERSION: &str = concat!("chat-server-", env!("CARGO_PKG_VERSION"));

/// What a connection's session starts from (boxed by the caller, as the native door's).
pub(crate) struct Start<S> {
    pub(crate) stream: S,
    pub(crate) peer: Peer,
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: Arc<Config>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) deadline: Instant,
}

/// Runs one IRC connection from accept to close.
pub(crate) async fn serve<S: Stream>(start: Box<Start<S>>) {
    let addr = start.peer.addr;
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
        info!(peer = %addr, tls = peer.tls, door = "irc", "connected");
        let mut conn = Connection {
            stream,
            reader: LineReader::new(LineCodec::new(MAX_LINE)),
            out: BytesMut::new(),
            peer,
            config,
        };
        match Box::pin(register(&mut conn, &hub, &shutdown, deadline)).await {
            Ok((member, door)) => Ok(Box::new((conn, member, door))),
            Err(reason) => Err(reason),
        }
    };
    match login {
        Ok(mut session) => {
            let (conn, member, door) = &mut *session;
            info!(peer = %addr, nick = %member.nick(), door = "irc", "registered");
            door.welcome(member, &mut conn.out);
            let reason = driver::drive(conn, member, door).await;
            info!(peer = %addr, nick = %member.nick(), %reason, "disconnected");
            member.set_reason(reason);
        }
        Err(reason) => info!(peer = %addr, %reason, "disconnected"),
    }
}

/// What registration gathers before the nickname is claimed.
#[derive(Default)]
struct Registration {
    nick: Option<Nick>,
    /// `USER`'s user name and real name.
    user: Option<(String, String)>,
    /// `PASS`: the password of a registered nickname.
    pass: Option<String>,
    caps: Caps,
    /// `CAP LS` or `CAP REQ` was seen and `CAP END` not yet: registration waits.
    negotiating: bool,
    /// SASL: `AUTHENTICATE PLAIN` was accepted, its credentials are awaited (base64,
    /// in pieces of 400 bytes).
    sasl: Option<String>,
    /// The account SASL logged in to: its folded name and creation time.
    account: Option<(String, i64)>,
}

/// Reads lines until the client has a nickname, a user name and (if it negotiates
/// capabilities) ended negotiation, then claims the nickname; all by `deadline`.
async fn register<S: Stream>(
    conn: &mut Connection<S>,
    hub: &Arc<Hub>,
    shutdown: &CancellationToken,
    deadline: Instant,
) -> Result<(Member, IrcDoor), Reason> {
    let server: Arc<str> = conn.config.irc_server_name.as_str().into();
    let result = tokio::select! {
        result = tokio::time::timeout_at(deadline, registration(conn, hub, &server)) => match result {
            Ok(result) => result,
            Err(_) => {
                let _ = write!(encode::Writer(&mut conn.out), "ERROR :Closing link: registration timed out\r\n");
                let limit = conn.farewell_limit();
                conn.close(limit).await;
                Err("handshake timed out".into())
            }
        },
        _ = shutdown.cancelled() => {
            let _ = write!(encode::Writer(&mut conn.out), "ERROR :Server shutting down\r\n");
            let grace = conn.config.shutdown_grace;
            conn.close(grace).await;
            Err("server shutting down".into())
        }
    };
    hub.metrics.handshake(result.is_ok());
    result
}

async fn registration<S: Stream>(
    conn: &mut Connection<S>,
    hub: &Arc<Hub>,
    server: &Arc<str>,
) -> Result<(Member, IrcDoor), Reason> {
    let mut reg = Registration::default();
    // Flood control holds during registration too (each NICK tried costs the hub's
    // lock), with room for the burst a client sends at once (CAP, NICK, USER, SASL).
    let config = conn.config.clone();
    let burst = config.flood_burst.max(REGISTRATION_BURST);
    let mut bucket = TokenBucket::new(burst, config.flood_rate, Instant::now());
    loop {
        conn.flush().await?;
        let line = match conn.reader.next_line(&mut conn.stream).await {
            None => return Err("closed during registration".into()),
            Some(Err(e)) => return Err(io_reason(&e)),
            Some(Ok(Err(e))) => {
                line_error(&mut conn.out, server, "*", e);
                continue;
            }
            Some(Ok(Ok(line))) => line,
        };
        if let Some(at) = bucket.as_mut().and_then(|b| b.take(Instant::now())) {
            tokio::time::sleep_until(at).await;
        }
        let Ok(message) = Message::parse(&line) else {
            continue;
        };
        let me = reg.nick.as_ref().map_or("*", Nick::as_str).to_owned();
        let out = &mut conn.out;
        match message.verb.to_ascii_uppercase().as_str() {
            // Before registration a reply's target is `*`.
            "CAP" => cap(
                out,
                server,
                "*",
                &message,
                &mut reg.caps,
                Some(&mut reg.negotiating),
            ),
            "PASS" => reg.pass = message.params.first().cloned(),
            "AUTHENTICATE" => {
                let me = me.clone();
                authenticate(conn, hub, server, &me, &message, &mut reg).await;
            }
            "NICK" => match message.params.first().map(String::as_str) {
                None | Some("") => {
                    numeric(out, server, &me, "431", format_args!(":No nickname given"));
                }
                Some(name) => match Nick::new(name) {
                    Ok(nick) => reg.nick = Some(nick),
                    Err(e) => numeric(
                        out,
                        server,
                        &me,
                        "432",
                        format_args!("{name} :Erroneous nickname: {e}"),
                    ),
                },
            },
            "USER" => {
                if message.params.len() < 4 || message.params[3].is_empty() {
                    numeric(
                        out,
                        server,
                        &me,
                        "461",
                        format_args!("USER :Not enough parameters"),
                    );
                } else {
                    let realname = realname::cut(&message.params[3]).to_owned();
                    reg.user = Some((message.params[0].clone(), realname));
                }
            }
            "PING" => match message.params.first() {
                Some(token) => {
                    let _ = write!(encode::Writer(out), ":{server} PONG {server} :{token}\r\n");
                }
                None => numeric(
                    out,
                    server,
                    &me,
                    "409",
                    format_args!(":No origin specified"),
                ),
            },
            "PONG" => {}
            "QUIT" => {
                let _ = write!(encode::Writer(out), "ERROR :Closing link: quit\r\n");
                let limit = conn.farewell_limit();
                conn.close(limit).await;
                return Err("quit during registration".into());
            }
            // irssi sends a bare `JOIN :` right after `CAP LS`.
            "JOIN" if message.param(0).is_empty() => {}
            _ => numeric(
                out,
                server,
                &me,
                "451",
                format_args!(":You have not registered"),
            ),
        }
        if reg.negotiating {
            continue;
        }
        let (Some(nick), Some((user, realname))) = (reg.nick.clone(), reg.user.clone()) else {
            continue;
        };
        match claim(conn, hub, server, &mut reg, &nick, &user, &realname).await? {
            Some(member) => {
                let view = View::new(server.clone(), nick, reg.caps);
                return Ok((member, IrcDoor { view }));
            }
            // Refused (433...): the client may choose another nickname.
            None => reg.nick = None,
        }
    }
}

/// Claims `nick` for the client: with `PASS`'s password for a registered one (over TLS
/// or loopback only). `None`: refused, the numeric queued.
async fn claim<S: Stream>(
    conn: &mut Connection<S>,
    hub: &Arc<Hub>,
    server: &Arc<str>,
    reg: &mut Registration,
    nick: &Nick,
    user: &str,
    realname: &str,
) -> Result<Option<Member>, Reason> {
    let key = nick.folded();
    let ip = conn.peer.addr.ip();
    if let Some(ban) = hub.bans.session(nick, ip, crate::core::event::now()) {
        hub.metrics.refused(crate::core::metrics::Refusal::Banned);
        let reason = ban.reason.unwrap_or_else(|| "banned".into());
        numeric(
            &mut conn.out,
            server,
            nick.as_str(),
            "465",
            format_args!(":You are banned from this server: {reason}"),
        );
        let _ = write!(
            encode::Writer(&mut conn.out),
            "ERROR :Closing link: banned\r\n"
        );
        let limit = conn.farewell_limit();
        conn.close(limit).await;
        return Err("banned".into());
    }
    if hub.is_connected(&key) {
        numeric(
            &mut conn.out,
            server,
            "*",
            "433",
            format_args!("{nick} :Nickname is already in use"),
        );
        return Ok(None);
    }
    let since = match hub.account(&key) {
        None => None,
        // Logged in to this very account with SASL.
        Some(_) if reg.account.as_ref().is_some_and(|(k, _)| *k == key) => {
            reg.account.as_ref().map(|(_, since)| *since)
        }
        Some(account) => {
            let password = reg.pass.take();
            let right = match password {
                Some(password) if conn.peer.secure() => {
                    let verify = hub.hasher.verify(ip, password, account.hash);
                    let right = hub.throttle.check(&key, ip, verify).await;
                    hub.metrics.password_checked(right);
                    right
                }
                _ => false,
            };
            if !right {
                numeric(
                    &mut conn.out,
                    server,
                    "*",
                    "433",
                    format_args!(
                        "{nick} :Nickname is registered: connect with its password (PASS), over TLS or from loopback"
                    ),
                );
                return Ok(None);
            }
            Some(account.created_ms)
        }
    };
    let config = conn.config.clone();
    let (tx, rx) = mailbox(config.mailbox_capacity);
    let host = ip.to_canonical().to_string();
    // The account: the nickname's own (its password given), or the one SASL logged in to.
    let (account, since) = match (since, &reg.account) {
        (Some(since), _) => (Some(key.clone()), Some(since)),
        (None, Some((account, since))) => (Some(account.clone()), Some(*since)),
        (None, None) => (None, None),
    };
    let source = Arc::new(Source {
        nick: nick.clone(),
        account: account.map(|a| a.as_str().into()),
        ident: Some(Arc::new(Ident {
            user: format!("~{}", user_name(user)).into(),
            host: host.into(),
            realname: realname.into(),
        })),
    });
    match hub.enter(&source, tx, conn.peer.tls).await {
        Ok(activity) => {
            // Events weigh their IRC encoding from now on.
            crate::core::event::Flavour::Irc.activate();
            Ok(Some(Member::new(
                hub.clone(),
                source,
                activity,
                rx,
                since,
                ip,
                config,
            )))
        }
        Err(refused) => {
            // Taken at the very last moment, or registered meanwhile.
            let text = match refused {
                Refusal::NickRegistered(_) => "Nickname is registered",
                _ => "Nickname is already in use",
            };
            numeric(
                &mut conn.out,
                server,
                "*",
                "433",
                format_args!("{nick} :{text}"),
            );
            Ok(None)
        }
    }
}

/// `AUTHENTICATE`: SASL PLAIN (the only mechanism), over TLS or loopback only, checked
/// against the accounts as a native password is (the same hasher and throttle).
async fn authenticate<S: Stream>(
    conn: &mut Connection<S>,
    hub: &Arc<Hub>,
    server: &str,
    me: &str,
    message: &Message,
    reg: &mut Registration,
) {
    use base64::Engine as _;
    let out = &mut conn.out;
    let arg = message.param(0);
    if !reg.caps.has(caps::SASL) {
        numeric(
            out,
            server,
            me,
            "904",
            format_args!(":SASL authentication failed (request the sasl capability first)"),
        );
        return;
    }
    if arg == "*" {
        reg.sasl = None;
        numeric(
            out,
            server,
            me,
            "906",
            format_args!(":SASL authentication aborted"),
        );
        return;
    }
    let Some(mut pending) = reg.sasl.take() else {
        if arg.eq_ignore_ascii_case("PLAIN") {
            reg.sasl = Some(String::new());
            let _ = write!(encode::Writer(out), "AUTHENTICATE +\r\n");
        } else {
            numeric(
                out,
                server,
                me,
                "908",
                format_args!("PLAIN :are available SASL mechanisms"),
            );
            numeric(
                out,
                server,
                me,
                "904",
                format_args!(":SASL authentication failed"),
            );
        }
        return;
    };
    // Credentials come in pieces of 400 bytes; a shorter one (or `+`) ends them.
    if arg != "+" {
        pending.push_str(arg);
    }
    if arg.len() == 400 {
        if pending.len() > 4 * 400 {
            numeric(
                out,
                server,
                me,
                "905",
                format_args!(":SASL message too long"),
            );
        } else {
            reg.sasl = Some(pending);
        }
        return;
    }
    if !conn.peer.secure() {
        numeric(
            out,
            server,
            me,
            "904",
            format_args!(
                ":SASL authentication failed: passwords are only accepted over TLS or from loopback"
            ),
        );
        return;
    }
    let credentials = base64::engine::general_purpose::STANDARD
        .decode(pending.as_bytes())
        .ok()
        .and_then(|decoded| {
            let mut parts = decoded.split(|b| *b == 0);
            let (Some(_authzid), Some(authcid), Some(password), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            let authcid = std::str::from_utf8(authcid).ok()?;
            let password = std::str::from_utf8(password).ok()?;
            Some((Nick::new(authcid).ok()?, password.to_owned()))
        });
    let Some((name, password)) = credentials else {
        numeric(
            out,
            server,
            me,
            "904",
            format_args!(":SASL authentication failed"),
        );
        return;
    };
    let key = name.folded();
    let ip = conn.peer.addr.ip();
    let account = hub.account(&key);
    let hash = account.as_ref().map(|a| a.hash.clone());
    let verify = async {
        match hash {
            Some(hash) => hub.hasher.verify(ip, password, hash).await,
            None => false,
        }
    };
    let right = hub.throttle.check(&key, ip, verify).await;
    hub.metrics.password_checked(right);
    let out = &mut conn.out;
    match account.filter(|_| right) {
        Some(account) => {
            info!(peer = %conn.peer.addr, account = %key, "SASL PLAIN accepted");
            numeric(
                out,
                server,
                me,
                "900",
                format_args!("{me}!*@* {key} :You are now logged in as {key}"),
            );
            numeric(
                out,
                server,
                me,
                "903",
                format_args!(":SASL authentication successful"),
            );
            reg.account = Some((key, account.created_ms));
        }
        None => {
            info!(peer = %conn.peer.addr, account = %key, "SASL PLAIN refused");
            numeric(
                out,
                server,
                me,
                "904",
                format_args!(":SASL authentication failed"),
            );
        }
    }
}

/// A user name as IRC shows it: `USER`'s first word, cut to 10 characters of
/// letters, digits, `-`, `_` and `.` (anything else dropped), or `user`.
fn user_name(given: &str) -> String {
    let name: String = given
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(10)
        .collect();
    if name.is_empty() { "user".into() } else { name }
}

/// `CAP LS|LIST|REQ|END`. `negotiating`: during registration, which `LS` and `REQ` hold
/// until `END`.
fn cap(
    out: &mut BytesMut,
    server: &str,
    me: &str,
    message: &Message,
    caps: &mut Caps,
    negotiating: Option<&mut bool>,
) {
    let sub = message.param(0).to_ascii_uppercase();
    let hold = |on: bool| {
        if let Some(n) = negotiating {
            *n = on;
        }
    };
    match sub.as_str() {
        "LS" => {
            hold(true);
            let v302 = message.param(1).parse::<u32>().is_ok_and(|v| v >= 302);
            let _ = write!(
                encode::Writer(out),
                ":{server} CAP {me} LS :{}\r\n",
                caps::offered(v302)
            );
        }
        "LIST" => {
            let _ = write!(
                encode::Writer(out),
                ":{server} CAP {me} LIST :{}\r\n",
                caps.names()
            );
        }
        "REQ" => {
            hold(true);
            let list = message.param(1);
            match caps.requested(list) {
                Some(new) => {
                    *caps = new;
                    let _ = write!(encode::Writer(out), ":{server} CAP {me} ACK :{list}\r\n");
                }
                None => {
                    let _ = write!(encode::Writer(out), ":{server} CAP {me} NAK :{list}\r\n");
                }
            }
        }
        "END" => hold(false),
        _ => numeric(
            out,
            server,
            me,
            "410",
            format_args!("{} :Invalid CAP command", message.param(0)),
        ),
    }
}

/// Reports a line the codec refused; the connection carries on.
fn line_error(out: &mut BytesMut, server: &str, me: &str, error: LineError) {
    match error {
        LineError::TooLong { .. } => numeric(
            out,
            server,
            me,
            "417",
            format_args!(":Input line was too long"),
        ),
        LineError::InvalidUtf8 => {
            let _ = write!(
                encode::Writer(out),
                ":{server} FAIL * INVALID_UTF8 :Message rejected, your IRC software MUST use UTF-8\r\n"
            );
        }
    }
}

/// The IRC door of one session.
pub(crate) struct IrcDoor {
    view: View,
}

impl IrcDoor {
    /// 001–005, LUSERS and the MOTD.
    fn welcome(&mut self, member: &Member, out: &mut BytesMut) {
        let server = self.view.server.clone();
        let config = member.config().clone();
        let mut irc = Irc::new(out, &mut self.view);
        let who = encode::mask(member.source(), &server);
        irc.numeric(
            "001",
            format_args!(":Welcome to the chat IRC Network {who}"),
        );
        irc.numeric(
            "002",
            format_args!(":Your host is {server}, running version {VERSION}"),
        );
        irc.numeric(
            "003",
            format_args!(":This server was created {}", member.hub().started()),
        );
        irc.numeric(
            "004",
            format_args!("{server} {VERSION} iow biklmnostv bklov"),
        );
        isupport(&mut irc, &config);
        let (sessions, rooms) = member.hub().counts();
        lusers(&mut irc, sessions, rooms);
        match member.motd() {
            Some(motd) => {
                irc.numeric("375", format_args!(":- {server} Message of the day -"));
                for line in motd.lines() {
                    let text = line.replace(|c: char| c.is_control(), " ");
                    irc.numeric("372", format_args!(":- {text}"));
                }
                irc.numeric("376", format_args!(":End of /MOTD command."));
            }
            None => irc.numeric("422", format_args!(":MOTD File is missing")),
        }
    }
}

/// The 005 lines: what this server supports, at most 13 tokens a line.
fn isupport(irc: &mut Irc<'_>, config: &Config) {
    let tokens = [
        "AWAYLEN=390".to_owned(),
        "CASEMAPPING=ascii".into(),
        "CHANLIMIT=#:".to_owned() + &config.max_rooms.to_string(),
        "CHANMODES=b,k,l,imnst".into(),
        format!("CHANNELLEN={}", Room::MAX_LEN + 1),
        "CHANTYPES=#".into(),
        format!("CHATHISTORY={}", crate::core::member::HISTORY_MAX),
        "ELIST=".into(),
        "KICKLEN=390".into(),
        format!("MAXLIST=b:{}", crate::core::room::ROOM_BAN_LIMIT),
        format!("MODES={}", crate::core::room::CHANGES_WITH_ARGS),
        "MSGREFTYPES=msgid,timestamp".into(),
        format!("NAMELEN={}", realname::NAMELEN),
        "NETWORK=chat".into(),
        format!("NICKLEN={}", Nick::MAX_LEN),
        "PREFIX=(ov)@+".into(),
        "STATUSMSG=@+".into(),
        "TARGMAX=PRIVMSG:4,NOTICE:4,JOIN:,PART:,KICK:1,NAMES:1,WHOIS:1".into(),
        "TOPICLEN=390".into(),
        "WHOX".into(),
    ];
    for chunk in tokens.chunks(13) {
        irc.numeric(
            "005",
            format_args!("{} :are supported by this server", chunk.join(" ")),
        );
    }
}

/// 251–255, 265, 266.
fn lusers(irc: &mut Irc<'_>, sessions: usize, rooms: usize) {
    irc.numeric(
        "251",
        format_args!(":There are {sessions} users and 0 invisible on 1 servers"),
    );
    irc.numeric("252", format_args!("0 :IRC Operators online"));
    irc.numeric("253", format_args!("0 :unknown connection(s)"));
    irc.numeric("254", format_args!("{rooms} :channels formed"));
    irc.numeric(
        "255",
        format_args!(":I have {sessions} clients and 0 servers"),
    );
    irc.numeric(
        "265",
        format_args!("{sessions} {sessions} :Current local users {sessions}, max {sessions}"),
    );
    irc.numeric(
        "266",
        format_args!("{sessions} {sessions} :Current global users {sessions}, max {sessions}"),
    );
}

impl Door for IrcDoor {
    type Out<'a> = Irc<'a>;

    fn output<'a>(&'a mut self, out: &'a mut BytesMut) -> Irc<'a> {
        Irc::new(out, &mut self.view)
    }

    fn line(&mut self, line: &str, member: &mut Member, out: &mut BytesMut, peer: &Peer) -> Flow {
        // 512 bytes with CRLF, tags aside: longer is refused whole, the connection stays.
        let body = match line.strip_prefix('@') {
            Some(tagged) => tagged.split_once(' ').map_or("", |(_, rest)| rest),
            None => line,
        };
        if body.len() + 2 > chat_proto::irc::MAX_LINE {
            let server = self.view.server.clone();
            let me = self.view.me.to_string();
            numeric(
                out,
                &server,
                &me,
                "417",
                format_args!(":Input line was too long"),
            );
            return Flow::Continue;
        }
        let Ok(message) = Message::parse(line) else {
            // A line that is no message still gets an answer: a client waits for one.
            let server = self.view.server.clone();
            let me = self.view.me.to_string();
            numeric(out, &server, &me, "421", format_args!("* :Unknown command"));
            return Flow::Continue;
        };
        // labeled-response: the answer carries the command's label. One written now is
        // labeled here; one that comes later (a PONG, a history page, a password
        // check, an echo) is labeled where it is written.
        let label = self
            .view
            .caps
            .has(caps::LABELED_RESPONSE)
            .then(|| label::of(&message.tags))
            .flatten();
        let start = out.len();
        self.view.answering(label);
        let flow = self.command(&message, member, out, peer);
        if member.answering() {
            let label = self.view.take_label();
            if label.is_some() {
                self.view.answers().later = label;
            }
        } else if let Some(label) = self.view.take_label() {
            let server = self.view.server.clone();
            label::wrap(
                out,
                start,
                &server,
                &label,
                &mut self.view.answers().batches,
            );
        }
        let mut irc = Irc::new(out, &mut self.view);
        member.count_encodings(&mut irc);
        flow
    }

    fn line_error(&mut self, error: LineError, out: &mut BytesMut) {
        line_error(out, &self.view.server, self.view.me.as_str(), error);
    }

    fn goodbye(&mut self, reason: &str, out: &mut BytesMut) {
        let _ = write!(encode::Writer(out), "ERROR :{}\r\n", goodbye_text(reason));
    }
}

/// What `ERROR` says when the server closes a connection.
fn goodbye_text(reason: &str) -> String {
    if reason == "server shutting down" {
        "Server shutting down".into()
    } else {
        format!("Closing link: {reason}")
    }
}

/// A room named by an IRC client, or the numeric refusing it.
fn room_of(irc: &mut Irc<'_>, name: &str) -> Option<Room> {
    match Room::new(name) {
        Ok(room) => Some(room),
        Err(_) => {
            irc.numeric("403", format_args!("{name} :No such channel"));
            None
        }
    }
}

impl IrcDoor {
    fn command(
        &mut self,
        m: &Message,
        member: &mut Member,
        out: &mut BytesMut,
        peer: &Peer,
    ) -> Flow {
        let verb = m.verb.to_ascii_uppercase();
        let mut irc = Irc::new(out, &mut self.view);
        let need = |irc: &mut Irc<'_>, n: usize| {
            if m.params.len() < n {
                irc.numeric("461", format_args!("{} :Not enough parameters", m.verb));
                false
            } else {
                true
            }
        };
        let done: Result<(), Refusal> = match verb.as_str() {
            "PING" => {
                if !need(&mut irc, 1) {
                    return Flow::Continue;
                }
                member.ping(Some(m.params[0].clone()));
                Ok(())
            }
            "PONG" => Ok(()),
            "QUIT" => {
                let reason = m.params.first().filter(|r| !r.is_empty()).cloned();
                // The reason as given: native clients show it as typed.
                return Flow::Quit(reason.unwrap_or_else(|| "quit".into()));
            }
            "CAP" => {
                let server = irc.view.server.clone();
                let me = irc.view.me.to_string();
                cap(irc.out, &server, &me, m, &mut irc.view.caps, None);
                Ok(())
            }
            "NICK" => match m.params.first().map(String::as_str) {
                None | Some("") => {
                    irc.numeric("431", format_args!(":No nickname given"));
                    Ok(())
                }
                Some(name) => match Nick::new(name) {
                    Err(e) => {
                        irc.numeric("432", format_args!("{name} :Erroneous nickname: {e}"));
                        Ok(())
                    }
                    Ok(new) => member.rename(new, &mut irc).map(|()| {
                        irc.view.me = member.nick().clone();
                    }),
                },
            },
            "JOIN" => {
                if !need(&mut irc, 1) {
                    return Flow::Continue;
                }
                if m.params[0] == "0" {
                    for room in member.room_names() {
                        if let Err(refused) = member.part(Some(room), None, &mut irc) {
                            encode::refusal(&mut irc, &refused);
                        }
                    }
                    return Flow::Continue;
                }
                let keys: Vec<&str> = m.param(1).split(',').collect();
                for (i, name) in m.params[0].split(',').filter(|n| !n.is_empty()).enumerate() {
                    let Some(room) = room_of(&mut irc, name) else {
                        continue;
                    };
                    let key = keys.get(i).copied().filter(|k| !k.is_empty());
                    if let Err(refused) = member.join(&room, key, &mut irc) {
                        encode::refusal(&mut irc, &refused);
                    }
                }
                Ok(())
            }
            "PART" => {
                if !need(&mut irc, 1) {
                    return Flow::Continue;
                }
                let reason = m.params.get(1).filter(|r| !r.is_empty()).cloned();
                for name in m.params[0].split(',').filter(|n| !n.is_empty()) {
                    let Some(room) = room_of(&mut irc, name) else {
                        continue;
                    };
                    if let Err(refused) = member.part(Some(room), reason.clone(), &mut irc) {
                        let refused = match refused {
                            Refusal::NotInRoom(room) if !member.room_exists(&room) => {
                                Refusal::NoSuchRoom(room)
                            }
                            other => other,
                        };
                        encode::refusal(&mut irc, &refused);
                    }
                }
                Ok(())
            }
            "PRIVMSG" | "NOTICE" => {
                let notice = verb == "NOTICE";
                let (Some(targets), Some(text)) = (m.params.first(), m.params.get(1)) else {
                    if !notice {
                        if m.params.is_empty() {
                            irc.numeric("411", format_args!(":No recipient given (PRIVMSG)"));
                        } else {
                            irc.numeric("412", format_args!(":No text to send"));
                        }
                    }
                    return Flow::Continue;
                };
                if text.is_empty() {
                    if !notice {
                        irc.numeric("412", format_args!(":No text to send"));
                    }
                    return Flow::Continue;
                }
                let (text, action) = match text
                    .strip_prefix("\x01ACTION ")
                    .map(|t| t.strip_suffix('\x01').unwrap_or(t))
                {
                    Some(action) => (action.to_owned(), true),
                    None => (text.clone(), false),
                };
                if let Some(c) = chat_proto::text::first_forbidden(&text) {
                    if !notice {
                        let me = irc.view.me.clone();
                        irc.server_line(format_args!(
                            "FAIL PRIVMSG INVALID_TEXT :text contains the control character {c:?}, which is not allowed ({me})"
                        ));
                    }
                    return Flow::Continue;
                }
                let single = !targets.contains(',');
                for target in targets.split(',').filter(|t| !t.is_empty()).take(4) {
                    let result =
                        if let Some(room) = target.starts_with('#').then(|| Room::new(target).ok())
                        {
                            match room {
                                Some(room) => {
                                    let said = if notice {
                                        member.notice(Some(&room), text.clone())
                                    } else {
                                        member.say(Some(&room), text.clone(), action)
                                    };
                                    said.map(|id| {
                                        // A labeled message to one room: its echo is the
                                        // answer (in a cluster, its id comes later: the
                                        // label gets an `ACK`).
                                        if let Some(id) = id
                                            && single
                                            && irc.view.caps.has(caps::ECHO_MESSAGE)
                                        {
                                            irc.view.label_echo(id);
                                        }
                                    })
                                }
                                None => Err(Refusal::NoSuchRoom(Room::general())),
                            }
                        } else {
                            match Nick::new(target) {
                                Ok(to) if notice => {
                                    member.private_notice(&to, text.clone(), &mut irc).map(drop)
                                }
                                Ok(to) => member.private(&to, text.clone(), action, &mut irc).map(
                                    |away| {
                                        if let Some((nick, text)) = away
                                            && !notice
                                        {
                                            irc.numeric("301", format_args!("{nick} :{text}"));
                                        }
                                    },
                                ),
                                Err(_) => Err(Refusal::NoSuchNick(member.nick().clone())),
                            }
                        };
                    let Err(refused) = result else {
                        continue;
                    };
                    if notice {
                        continue;
                    }
                    match refused {
                        Refusal::NoSuchRoom(_) => {
                            irc.numeric("403", format_args!("{target} :No such channel"));
                        }
                        Refusal::NoSuchNick(_) => {
                            irc.numeric("401", format_args!("{target} :No such nick/channel"));
                        }
                        // Not in the room (the room may not exist): IRC's "cannot send".
                        Refusal::NotInRoom(room) if member.room_exists(&room) => irc.numeric(
                            "404",
                            format_args!("{room} :Cannot send to channel (you are not in it)"),
                        ),
                        Refusal::NotInRoom(_) => {
                            irc.numeric("403", format_args!("{target} :No such channel"));
                        }
                        other => encode::refusal(&mut irc, &other),
                    }
                }
                Ok(())
            }
            "REGISTER" => {
                // draft/account-registration, after connecting only: the account is the
                // nickname, the email is not kept.
                if !need(&mut irc, 3) {
                    return Flow::Continue;
                }
                let account = m.params[0].as_str();
                let nick = member.nick().clone();
                let fail = |irc: &mut Irc<'_>, code: &str, text: &str| {
                    irc.server_line(format_args!("FAIL REGISTER {code} {account} :{text}"));
                };
                if account != "*" && !account.eq_ignore_ascii_case(nick.as_str()) {
                    fail(
                        &mut irc,
                        "ACCOUNT_NAME_MUST_BE_NICK",
                        "The account is the nickname: change nickname first",
                    );
                    return Flow::Continue;
                }
                let password = chat_proto::Password::new(m.params[2].as_str());
                let acceptable =
                    password
                        .acceptable()
                        .then_some(())
                        .ok_or(Refusal::PasswordInvalid {
                            min_chars: chat_proto::Password::MIN_CHARS,
                            max_bytes: chat_proto::Password::MAX_BYTES,
                        });
                match member.set_password(
                    password.expose().to_owned(),
                    acceptable,
                    false,
                    peer.secure(),
                ) {
                    Ok(()) => {
                        let mask = encode::mask(member.source(), &irc.view.server);
                        irc.view.answers().registering = Some(mask.into());
                    }
                    Err(refused) => encode::register_failed(&mut irc, &nick, &refused),
                }
                Ok(())
            }
            "CHATHISTORY" => {
                match history::parse(&m.params) {
                    Ok(request) => {
                        let target = m.params[1].clone();
                        let sub = m.params[0].to_ascii_uppercase();
                        if let Err(refused) =
                            member.history_span(request.target, request.page, request.limit)
                        {
                            let (code, text) = match refused {
                                Refusal::Busy(_) => ("MESSAGE_ERROR", "The server is busy"),
                                _ => ("INVALID_TARGET", "Messages could not be retrieved"),
                            };
                            irc.server_line(format_args!(
                                "FAIL CHATHISTORY {code} {sub} {target} :{text}"
                            ));
                        }
                    }
                    Err(fail) => irc.server_line(format_args!(
                        "FAIL CHATHISTORY {} {} :{}",
                        fail.code, fail.context, fail.text
                    )),
                }
                Ok(())
            }
            "TOPIC" => {
                if !need(&mut irc, 1) {
                    return Flow::Continue;
                }
                let Some(room) = room_of(&mut irc, &m.params[0]) else {
                    return Flow::Continue;
                };
                match m.params.get(1) {
                    None => member.topic(Some(room), &mut irc),
                    Some(text) if text.is_empty() => member.set_topic(Some(room), None),
                    Some(text) => member.set_topic(Some(room), Some(text.clone())),
                }
            }
            "NAMES" => {
                let Some(name) = m.params.first() else {
                    irc.numeric("366", format_args!("* :End of /NAMES list"));
                    return Flow::Continue;
                };
                for name in name.split(',').filter(|n| !n.is_empty()) {
                    let shown = Room::new(name)
                        .ok()
                        .is_some_and(|room| member.who(Some(room), &mut irc).is_ok());
                    if !shown {
                        irc.numeric("366", format_args!("{name} :End of /NAMES list"));
                    }
                }
                Ok(())
            }
            "MODE" => {
                if !need(&mut irc, 1) {
                    return Flow::Continue;
                }
                let target = &m.params[0];
                if !target.starts_with('#') {
                    user_mode(&mut irc, member, target, m.param(1));
                    return Flow::Continue;
                }
                let Some(room) = room_of(&mut irc, target) else {
                    return Flow::Continue;
                };
                let words: Vec<String> = m.params[1..].to_vec();
                match member.mode(Some(room.clone()), &words) {
                    Ok(ModeOutcome::Modes(room, modes)) => {
                        irc.numeric("324", format_args!("{} {modes}", room.name));
                        Ok(())
                    }
                    Ok(ModeOutcome::Bans(room, bans)) => {
                        for ban in &bans {
                            irc.numeric(
                                "367",
                                format_args!(
                                    "{} {} {} {}",
                                    room.name,
                                    ban.mask,
                                    ban.by,
                                    ban.time.as_second()
                                ),
                            );
                        }
                        irc.numeric(
                            "368",
                            format_args!("{} :End of channel ban list", room.name),
                        );
                        Ok(())
                    }
                    Ok(ModeOutcome::Changed) => Ok(()),
                    Err(Refusal::InvalidKey { .. }) => {
                        irc.numeric("525", format_args!("{room} :Key is not well-formed"));
                        Ok(())
                    }
                    Err(refused) => Err(refused),
                }
            }
            "KICK" => {
                if !need(&mut irc, 2) {
                    return Flow::Continue;
                }
                let Some(room) = room_of(&mut irc, &m.params[0]) else {
                    return Flow::Continue;
                };
                let reason = m.params.get(2).filter(|r| !r.is_empty()).cloned();
                match Nick::new(&m.params[1]) {
                    Ok(nick) => member.kick(Some(room), &nick, reason),
                    Err(_) => {
                        irc.numeric("401", format_args!("{} :No such nick/channel", m.params[1]));
                        Ok(())
                    }
                }
            }
            "INVITE" => {
                if !need(&mut irc, 2) {
                    return Flow::Continue;
                }
                let Some(room) = room_of(&mut irc, &m.params[1]) else {
                    return Flow::Continue;
                };
                match Nick::new(&m.params[0]) {
                    Ok(nick) => member.invite(&nick, Some(room.clone())).map(|()| {
                        irc.numeric("341", format_args!("{nick} {room}"));
                    }),
                    Err(_) => {
                        irc.numeric("401", format_args!("{} :No such nick/channel", m.params[0]));
                        Ok(())
                    }
                }
            }
            "SETNAME" => {
                realname::setname(&mut irc, member, m.params.first().map(String::as_str));
                Ok(())
            }
            "AWAY" => {
                let text = m.params.first().filter(|t| !t.is_empty()).cloned();
                let away = text.is_some();
                member.set_away(text);
                if away {
                    irc.numeric("306", format_args!(":You have been marked as being away"));
                } else {
                    irc.numeric(
                        "305",
                        format_args!(":You are no longer marked as being away"),
                    );
                }
                Ok(())
            }
            "WHOIS" => {
                let Some(name) = m.params.last() else {
                    irc.numeric("431", format_args!(":No nickname given"));
                    return Flow::Continue;
                };
                whois(&mut irc, member, name);
                Ok(())
            }
            "WHO" => {
                who::who(
                    &mut irc,
                    member,
                    m.param(0),
                    m.params.get(1).map(String::as_str),
                );
                Ok(())
            }
            "LIST" => {
                irc.numeric("321", format_args!("Channel :Users  Name"));
                for listed in member.rooms() {
                    let topic = listed.topic.as_ref().map_or("", |t| t.text.as_str());
                    irc.numeric(
                        "322",
                        format_args!("{} {} :{topic}", listed.room.name, listed.members),
                    );
                }
                irc.numeric("323", format_args!(":End of /LIST"));
                Ok(())
            }
            "LUSERS" => {
                let (sessions, rooms) = member.hub().counts();
                lusers(&mut irc, sessions, rooms);
                Ok(())
            }
            "MOTD" => match member.motd() {
                Some(motd) => {
                    let server = irc.view.server.clone();
                    irc.numeric("375", format_args!(":- {server} Message of the day -"));
                    for line in motd.lines() {
                        let text = line.replace(|c: char| c.is_control(), " ");
                        irc.numeric("372", format_args!(":- {text}"));
                    }
                    irc.numeric("376", format_args!(":End of /MOTD command."));
                    Ok(())
                }
                None => Err(Refusal::NoMotd),
            },
            "VERSION" => {
                let server = irc.view.server.clone();
                irc.numeric(
                    "351",
                    format_args!("{VERSION} {server} :the chat server's IRC door"),
                );
                isupport(&mut irc, member.config());
                Ok(())
            }
            "TIME" => {
                let server = irc.view.server.clone();
                irc.numeric(
                    "391",
                    format_args!("{server} :{}", encode::Time(&jiff::Timestamp::now())),
                );
                Ok(())
            }
            "OPER" => {
                if !need(&mut irc, 2) {
                    return Flow::Continue;
                }
                member.oper(m.params[0].clone(), m.params[1].clone(), peer.secure())
            }
            "KILL" => {
                if !need(&mut irc, 1) {
                    return Flow::Continue;
                }
                match Nick::new(&m.params[0]) {
                    Ok(nick) => {
                        let reason = m.params.get(1).filter(|r| !r.is_empty()).cloned();
                        member.kill(&nick, reason).map(drop)
                    }
                    Err(_) => Err(Refusal::NoSuchNick(member.nick().clone())),
                }
            }
            "WALLOPS" => {
                if !need(&mut irc, 1) {
                    return Flow::Continue;
                }
                member.wallops(m.params[0].clone())
            }
            "WHOWAS" => {
                if !need(&mut irc, 1) {
                    return Flow::Continue;
                }
                let name = m.params[0].clone();
                let count = m.param(1).parse::<usize>().ok().filter(|n| *n > 0);
                let server = irc.view.server.clone();
                match Nick::new(&name)
                    .map_err(|_| ())
                    .and_then(|n| member.whowas(&n).map_err(|_| ()))
                {
                    Ok(found) => {
                        for d in found.iter().take(count.unwrap_or(usize::MAX)) {
                            irc.numeric(
                                "314",
                                format_args!("{} {} {server} * :{}", d.nick, d.nick, d.nick),
                            );
                            irc.numeric(
                                "312",
                                format_args!("{} {server} :{}", d.nick, encode::Time(&d.left)),
                            );
                        }
                    }
                    Err(()) => {
                        irc.numeric("406", format_args!("{name} :There was no such nickname"))
                    }
                }
                irc.numeric("369", format_args!("{name} :End of WHOWAS"));
                Ok(())
            }
            "ISON" => {
                let mut on = Vec::new();
                for name in m
                    .params
                    .iter()
                    .flat_map(|p| p.split(' '))
                    .filter(|n| !n.is_empty())
                {
                    if let Ok(nick) = Nick::new(name)
                        && let Ok(w) = member.whois(&nick)
                    {
                        on.push(w.source.nick.to_string());
                    }
                }
                irc.numeric("303", format_args!(":{}", on.join(" ")));
                Ok(())
            }
            "USERHOST" => {
                let server = irc.view.server.clone();
                let mut found = Vec::new();
                for name in m.params.iter().take(5) {
                    if let Ok(nick) = Nick::new(name)
                        && let Ok(w) = member.whois(&nick)
                    {
                        let (user, host) = match &w.source.ident {
                            Some(ident) => (ident.user.to_string(), ident.host.to_string()),
                            None => (w.source.nick.to_string(), server.to_string()),
                        };
                        let oper = if w.oper { "*" } else { "" };
                        let away = if w.away.is_some() { '-' } else { '+' };
                        found.push(format!("{}{oper}={away}{user}@{host}", w.source.nick));
                    }
                }
                irc.numeric("302", format_args!(":{}", found.join(" ")));
                Ok(())
            }
            "INFO" => {
                irc.numeric(
                    "371",
                    format_args!(
                        ":{VERSION}: a chat server on Tokio, with a native, a web and an IRC door"
                    ),
                );
                irc.numeric("374", format_args!(":End of INFO list"));
                Ok(())
            }
            "ADMIN" => {
                let server = irc.view.server.clone();
                irc.numeric("256", format_args!("{server} :Administrative info"));
                irc.numeric("257", format_args!(":This server's operators"));
                irc.numeric("258", format_args!(":(see the server's configuration)"));
                irc.numeric("259", format_args!(":-"));
                Ok(())
            }
            "LINKS" => {
                let server = irc.view.server.clone();
                irc.numeric("364", format_args!("{server} {server} :0 the chat server"));
                irc.numeric("365", format_args!("* :End of /LINKS list"));
                Ok(())
            }
            "USER" | "PASS" => {
                irc.numeric("462", format_args!(":You may not reregister"));
                Ok(())
            }
            _ => {
                irc.numeric("421", format_args!("{} :Unknown command", m.verb));
                Ok(())
            }
        };
        if let Err(refused) = done {
            encode::refusal(&mut irc, &refused);
        }
        Flow::Continue
    }
}

/// `MODE <me> [changes]`: user modes. `+i` is always set (nobody is listed to those who
/// share no room with them by a mask), `+w` receives WALLOPS, `+o` comes with `OPER`
/// (and cannot be set here; `-o` is not offered either).
fn user_mode(irc: &mut Irc<'_>, member: &Member, target: &str, changes: &str) {
    if !target.eq_ignore_ascii_case(irc.view.me.as_str()) {
        irc.numeric("502", format_args!(":Can't change mode for other users"));
        return;
    }
    let mut on = true;
    let mut applied = String::new();
    let mut sign = None;
    for c in changes.chars() {
        match c {
            '+' => on = true,
            '-' => on = false,
            'w' => {
                member.set_wallops(on);
                if sign != Some(on) {
                    applied.push(if on { '+' } else { '-' });
                    sign = Some(on);
                }
                applied.push('w');
            }
            'i' | 'o' => {}
            other => irc.numeric("501", format_args!(":Unknown MODE flag {other}")),
        }
    }
    if !applied.is_empty() {
        let me = irc.view.me.clone();
        let _ = write!(encode::Writer(irc.out), ":{me} MODE {me} :{applied}\r\n");
        return;
    }
    if changes.is_empty() {
        let mut modes = String::from("+i");
        if member.hears_wallops() {
            modes.push('w');
        }
        if member.is_oper() {
            modes.push('o');
        }
        irc.numeric("221", format_args!("{modes}"));
    }
}

/// `WHOIS nick`: 311, 319, 312, 313, 301, 330, 671, 317, then 318; unknown: 401, 318.
fn whois(irc: &mut Irc<'_>, member: &Member, name: &str) {
    let Ok(nick) = Nick::new(name) else {
        irc.numeric("401", format_args!("{name} :No such nick/channel"));
        irc.numeric("318", format_args!("{name} :End of /WHOIS list"));
        return;
    };
    match member.whois(&nick) {
        Err(_) => irc.numeric("401", format_args!("{name} :No such nick/channel")),
        Ok(w) => {
            let server = irc.view.server.clone();
            let (user, host) = match &w.source.ident {
                Some(ident) => (ident.user.to_string(), ident.host.to_string()),
                None => (w.source.nick.to_string(), server.to_string()),
            };
            let nick = &w.source.nick;
            let realname = realname_of(&w.source);
            irc.numeric("311", format_args!("{nick} {user} {host} * :{realname}"));
            if !w.rooms.is_empty() {
                let mut rooms = String::new();
                for (standing, room) in &w.rooms {
                    if !rooms.is_empty() {
                        rooms.push(' ');
                    }
                    if standing.has(Standing::OPERATOR) {
                        rooms.push('@');
                    } else if standing.has(Standing::VOICE) {
                        rooms.push('+');
                    }
                    rooms.push_str(room.as_str());
                }
                irc.numeric("319", format_args!("{nick} :{rooms}"));
            }
            irc.numeric("312", format_args!("{nick} {server} :the chat server"));
            if w.oper {
                irc.numeric("313", format_args!("{nick} :is an IRC operator"));
            }
            if let Some(away) = &w.away {
                irc.numeric("301", format_args!("{nick} :{away}"));
            }
            if let Some(account) = &w.source.account {
                irc.numeric("330", format_args!("{nick} {account} :is logged in as"));
            }
            if w.tls {
                irc.numeric("671", format_args!("{nick} :is using a secure connection"));
            }
            irc.numeric(
                "317",
                format_args!(
                    "{nick} {} {} :seconds idle, signon time",
                    w.idle,
                    w.since.as_second()
                ),
            );
        }
    }
    irc.numeric("318", format_args!("{name} :End of /WHOIS list"));
}

/// The real name shown for a source: its `USER`'s, or for a session of another door its
/// nickname.
fn realname_of(source: &crate::core::event::Source) -> String {
    match &source.ident {
        Some(ident) => ident.realname.to_string(),
        None => source.nick.to_string(),
    }
}

//! Server settings: every limit, with its default, flag and environment variable.

use std::time::Duration;

pub mod file;

pub use file::FileConfig;

/// Limits and timeouts of a server. `Config::default()` is what `cargo run -p
/// chat-server` uses; every field is also a flag (see `chat-server --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Longest line a client may send, in bytes (without the newline). Longer lines are
    /// refused with `ERR LINE_TOO_LONG` and discarded; the connection stays.
    #[arg(long, env = "CHAT_MAX_LINE", default_value_t = chat_proto::DEFAULT_MAX_LINE)]
    pub max_line: usize,

    /// The IRC door's server name: the source of its numerics, and the host shown for
    /// sessions of other doors.
    #[arg(long, env = "CHAT_IRC_SERVER_NAME", default_value = "chat.localhost")]
    pub irc_server_name: String,

    /// Web pages, besides the server's own, whose scripts may open a chat WebSocket
    /// (`/ws`), as origins: `https://chat.example.org`. Comma-separated or repeated. A
    /// WebSocket request whose `Origin` is neither this nor the host it was sent to is
    /// refused with 403, so that another site a user visits cannot chat in their name.
    #[arg(
        long,
        env = "CHAT_HTTP_ALLOW_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub http_allow_origin: Vec<String>,

    /// The header in which the reverse proxy in front of the web door, on this machine,
    /// gives the user's address: `x-forwarded-for` (its last entry), `x-real-ip` or
    /// `forwarded`. From loopback peers only, that header and `X-Forwarded-Proto` (or
    /// `Forwarded: proto=`) are then believed: the user's address counts against the
    /// per-address limit, and a page served over HTTPS by the proxy may take passwords.
    /// Unset, forwarding headers are believed from no one, and a proxied WebSocket counts
    /// against the proxy's own address.
    #[arg(long, env = "CHAT_HTTP_PROXY_HEADER", value_enum)]
    pub http_proxy_header: Option<ProxyHeader>,

    /// Time a new connection has to choose a nickname before it is closed.
    #[arg(long, env = "CHAT_HANDSHAKE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Events a room keeps in memory for its members that fall behind, at most. A room
    /// holds only what some member has not read yet; a member further behind is sent
    /// what it missed from the store.
    #[arg(long, env = "CHAT_ROOM_CAPACITY", default_value_t = 131_072, value_parser = parse_capacity)]
    pub room_capacity: usize,

    /// Bytes a room keeps in memory for its members that fall behind, at most, whatever
    /// --room-capacity allows (events and their bookkeeping; the oldest go first, and
    /// members behind them are sent them from the store). Sizes: bytes, or with
    /// `k`/`m`/`g` (KiB/MiB/GiB).
    #[arg(long, env = "CHAT_ROOM_BUFFER", default_value = "96m", value_parser = parse_size)]
    pub room_buffer: usize,

    /// Bytes of events all the rooms together keep in memory. Past it, a room that
    /// speaks drops its oldest events (keeping its last 64), so that many busy rooms
    /// cannot take the machine's memory.
    #[arg(long, env = "CHAT_ROOM_BUFFER_TOTAL", default_value = "256m", value_parser = parse_size)]
    pub room_buffer_total: usize,

    /// A room with more members than this is quiet: joins, parts and quits are not
    /// announced to its members (each person still sees their own; `/who` lists the
    /// room). 0: every room announces them.
    #[arg(long, env = "CHAT_PRESENCE_LIMIT", default_value_t = 1000)]
    pub presence_limit: usize,

    /// Private messages queued for one connection. A private message to a full queue is
    /// refused with `ERR RECIPIENT_BUSY`.
    #[arg(long, env = "CHAT_MAILBOX_CAPACITY", default_value_t = 256, value_parser = parse_capacity)]
    pub mailbox_capacity: usize,

    /// Rooms one connection may be in at once. Past it, `/join` is refused with
    /// `ERR TOO_MANY_ROOMS`.
    #[arg(long, env = "CHAT_MAX_ROOMS", default_value_t = 64, value_parser = parse_capacity)]
    pub max_rooms: usize,

    /// Rooms that may exist at once on the server. Past it, `/join` of a new room is
    /// refused with `ERR ROOMS_FULL` (rooms that exist can still be joined).
    #[arg(long, env = "CHAT_MAX_ROOMS_TOTAL", default_value_t = 50_000, value_parser = parse_capacity)]
    pub max_rooms_total: usize,

    /// Rooms created from one IP address that may exist at once (a room counts against
    /// the address of the connection that created it until it empties; #general never
    /// does). Past it, `/join` of a new room is refused with `ERR TOO_MANY_ROOMS_CREATED`.
    /// Loopback is exempt unless `--limit-loopback`.
    #[arg(long, env = "CHAT_MAX_ROOMS_PER_IP", default_value_t = 256, value_parser = parse_capacity)]
    pub max_rooms_per_ip: usize,

    /// Connections served at once. Past it a new connection is told `ERR SERVER_FULL`
    /// and closed. Default: the process's open-file limit less a reserve of 64 (the
    /// binary first raises its soft limit to the hard limit).
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", value_parser = parse_capacity)]
    pub max_connections: Option<usize>,

    /// Connections one IP address may hold at once. Past it a new connection from that
    /// address is told `ERR TOO_MANY_CONNECTIONS` and closed.
    #[arg(long, env = "CHAT_MAX_PER_IP", default_value_t = 64, value_parser = parse_capacity)]
    pub max_per_ip: usize,

    /// Apply the per-address limits (connections, rooms created) to loopback too (by
    /// default local clients, tests and benchmarks may open as many connections and
    /// create as many rooms as the total limits allow). Its variable takes 1/0,
    /// true/false, yes/no, on/off.
    #[arg(
        long,
        env = "CHAT_LIMIT_LOOPBACK",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub limit_loopback: bool,

    /// Connections the kernel may hold for each listener before the server accepts them
    /// (the `listen(2)` backlog). Default: the system's maximum
    /// (`/proc/sys/net/core/somaxconn`, 4096 on most systems), so that a burst of
    /// connections waits in the kernel instead of being dropped; the kernel caps it at
    /// that maximum.
    #[arg(long, env = "CHAT_LISTEN_BACKLOG", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub listen_backlog: Option<u32>,

    /// The kernel's send buffer of each connection (`SO_SNDBUF`; Linux reserves twice
    /// this for its bookkeeping). It bounds what a client that stops reading holds in
    /// the kernel; past it the server's writes wait, and `--write-timeout` later the
    /// client is disconnected. Sizes: bytes, or with `k`/`m` (KiB/MiB).
    #[arg(long, env = "CHAT_SEND_BUFFER", default_value = "256k", value_parser = parse_size)]
    pub send_buffer: usize,

    /// Lines a client may send in a burst before flood control slows it down.
    #[arg(long, env = "CHAT_FLOOD_BURST", default_value_t = 5, value_parser = parse_capacity)]
    pub flood_burst: usize,

    /// Lines per second a client may send in the long run; past it the server reads its
    /// next line later (nothing is dropped). 0 turns flood control off (for benchmarks).
    #[arg(long, env = "CHAT_FLOOD_RATE", default_value_t = 2.0, value_parser = parse_rate)]
    pub flood_rate: f64,

    /// Disconnect a client that sends nothing for this long (`BYE :idle timeout`).
    /// Off by default: idle but alive people are not kicked; dead peers are found by
    /// TCP keepalive.
    #[arg(long, env = "CHAT_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Idle time before TCP keepalive probes start on a connection; a peer that answers
    /// none of 5 probes 10 s apart is taken as gone.
    #[arg(long, env = "CHAT_KEEPALIVE", default_value = "60s", value_parser = parse_duration)]
    pub keepalive: Duration,

    /// Silence from a WebSocket client after which the server pings it, so that proxies
    /// that cut idle connections keep it open.
    #[arg(long, env = "CHAT_WS_PING", default_value = "25s", value_parser = parse_duration)]
    pub ws_ping: Duration,

    /// A client that accepts no byte of pending output for this long is disconnected as
    /// a slow consumer.
    #[arg(long, env = "CHAT_WRITE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// On shutdown, time given to connections to receive their notice and flush.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// The database (SQLite) holding history and accounts: a file path, or `:memory:`
    /// for a store that lasts as long as the process. The binary's default is
    /// `chat.db` in the platform's data directory (logged at start); the library's
    /// default (`None`) is in memory, for tests.
    #[arg(long, env = "CHAT_DB")]
    pub db: Option<String>,

    /// Messages of a room's history shown to whoever joins it (0: none).
    #[arg(long, env = "CHAT_HISTORY", default_value_t = chat_proto::command::DEFAULT_HISTORY)]
    pub history: usize,

    /// How long the store keeps room history and private messages: `forever` (the
    /// default); an age, past which events are deleted (`30d`, `12h`; units s, m, h, d,
    /// w); a count of events each room keeps, its newest of every kind (`10000`); or both,
    /// comma-separated (`30d,10000`: an event goes when either says so). The age applies
    /// to private messages too, the count to rooms only; accounts are never deleted. The
    /// store deletes in the background, in small batches between its writes; a member
    /// that falls behind further than what is kept is told `LAGGED` for the rest.
    #[arg(
        long,
        env = "CHAT_HISTORY_RETENTION",
        value_name = "AGE,COUNT",
        default_value = "forever",
        value_parser = parse_retention
    )]
    pub history_retention: Retention,

    /// Join a cluster of chat servers through NATS JetStream at these URLs
    /// (`nats://127.0.0.1:4222`, comma-separated for a NATS cluster): every node shares
    /// the rooms, one history in one order, and the nicknames (see `docs/cluster.md`).
    /// Needs `--node-id`. Without it the server stands alone and needs nothing else.
    #[arg(
        long,
        env = "CHAT_CLUSTER",
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        requires = "node_id"
    )]
    pub cluster: Vec<String>,

    /// This server's name in the cluster (`--cluster`), unique among its nodes, kept
    /// across restarts: letters, digits, `-` and `_`.
    #[arg(long, env = "CHAT_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,

    /// Copies NATS keeps of the cluster's stream and buckets, when this node is the
    /// first to make them: 1 for one `nats-server`, 3 for a three-node NATS cluster.
    #[arg(long, env = "CHAT_CLUSTER_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub cluster_replicas: u8,

    /// How long a node tries to log an operation while NATS does not take it (a
    /// JetStream leader fails over in about 4 s) before its user is told `ERR
    /// SERVER_BUSY`, nothing done; also the bound on joining the cluster at start.
    #[arg(long, env = "CHAT_CLUSTER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub cluster_timeout: Duration,

    /// The server's operators (the configuration file's `[[operator]]` tables; no
    /// flag): `/oper name password` checks the password against the name's hash.
    #[arg(skip)]
    pub operators: Vec<file::Operator>,

    /// The message of the day (the configuration file's `motd`; no flag), sent after
    /// `WELCOME` one `MOTD` frame per line, and by `/motd`.
    #[arg(skip)]
    pub motd: Option<String>,
}

/// What the store keeps of history (`--history-retention`): both `None` keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Events older than this are deleted: rooms' events and private messages alike.
    pub max_age: Option<Duration>,
    /// Each room keeps its newest this many events (of every kind), and no more.
    pub per_room: Option<u64>,
}

impl Retention {
    /// Keeps everything: the default.
    pub fn is_forever(&self) -> bool {
        self.max_age.is_none() && self.per_room.is_none()
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.max_age, self.per_room) {
            (None, None) => f.write_str("forever"),
            (Some(age), None) => write!(f, "{}s", age.as_secs()),
            (None, Some(count)) => write!(f, "{count}"),
            (Some(age), Some(count)) => write!(f, "{}s,{count}", age.as_secs()),
        }
    }
}

/// The binary's database when `--db` is not given: `chat-server/chat.db` in the
/// platform's data directory (`~/.local/share` on Linux), or `./chat.db` where there is
/// none.
pub fn default_db_path() -> std::path::PathBuf {
    crate::core::store::Location::default_file()
}

/// Most messages one `/history` answer holds; a larger count is cut to this.
pub const HISTORY_MAX: usize = 500;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: chat_proto::DEFAULT_MAX_LINE,
            irc_server_name: "chat.localhost".into(),
            http_allow_origin: Vec::new(),
            http_proxy_header: None,
            handshake_timeout: Duration::from_secs(30),
            room_capacity: 131_072,
            room_buffer: 96 * 1024 * 1024,
            room_buffer_total: 256 * 1024 * 1024,
            presence_limit: 1000,
            mailbox_capacity: 256,
            max_rooms: 64,
            max_rooms_total: 50_000,
            max_rooms_per_ip: 256,
            max_connections: None,
            max_per_ip: 64,
            limit_loopback: false,
            listen_backlog: None,
            send_buffer: DEFAULT_SEND_BUFFER,
            flood_burst: 5,
            flood_rate: 2.0,
            idle_timeout: None,
            keepalive: Duration::from_secs(60),
            ws_ping: Duration::from_secs(25),
            write_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            db: None,
            history: chat_proto::command::DEFAULT_HISTORY,
            history_retention: Retention::default(),
            operators: Vec::new(),
            motd: None,
            cluster: Vec::new(),
            node_id: None,
            cluster_replicas: 1,
            cluster_timeout: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// The connection limit in force: the configured one, or one derived from the
    /// process's open-file limit.
    pub fn connection_limit(&self) -> usize {
        self.max_connections
            .unwrap_or_else(|| {
                let soft =
                    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
                usize::try_from(soft)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(FD_RESERVE)
            })
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
    }

    /// The listen backlog in force: the configured one, or the system's maximum.
    pub fn listen_backlog(&self) -> u32 {
        self.listen_backlog.unwrap_or_else(system_backlog)
    }

    /// A configuration without flood control, for tests and benchmarks that send fast.
    pub fn unthrottled() -> Config {
        Config {
            flood_rate: 0.0,
            ..Config::default()
        }
    }
}

/// Where a trusted reverse proxy puts the user's address (`--http-proxy-header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyHeader {
    /// `X-Forwarded-For`: its last entry, the one the proxy added.
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// `X-Real-IP`.
    #[value(name = "x-real-ip")]
    XRealIp,
    /// `Forwarded` (RFC 7239): the `for=` of its last element.
    #[value(name = "forwarded")]
    Forwarded,
}

impl std::fmt::Display for ProxyHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyHeader::XForwardedFor => "X-Forwarded-For",
            ProxyHeader::XRealIp => "X-Real-IP",
            ProxyHeader::Forwarded => "Forwarded",
        })
    }
}

/// The default `--send-buffer`: 256 KiB holds about 2,500 chat lines, ample for a busy
/// room and a history replay, and still lets a client on a 100 ms path receive over
/// 2 MB/s.
const DEFAULT_SEND_BUFFER: usize = 256 * 1024;

/// The system's largest listen backlog (`net.core.somaxconn`), or 4096 (Linux's default
/// since 5.4) where it cannot be read.
pub fn system_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4096)
}

/// File descriptors kept back from the derived connection limit, for the listener, logs,
/// the store and connections being refused.
const FD_RESERVE: usize = 64;

/// Raises the open-file soft limit to the hard limit, so that the derived connection
/// limit is as high as the system allows. Returns the new soft limit.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Parses a rate in lines per second: 0 (off) or a positive number.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r == 0.0 || (0.001..=1_000_000.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate in lines per second from 0.001 to 1000000 (0 turns it off)"
        )),
    }
}

/// Parses a capacity: a whole number from 1 to 1,000,000.
fn parse_capacity(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a whole number from 1 to 1000000")),
    }
}

/// Parses a size in bytes: `65536`, `64k` (KiB), `1m` (MiB) or `1g` (GiB), from 4 KiB to
/// 1 TiB.
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t.as_str(), ""),
    };
    let scale = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use k or m")),
    };
    match number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
    {
        Some(n) if (4096..=1 << 40).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a size from 4k to 1024g")),
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 500ms or 2m"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use ms, s, m or h")),
    };
    Ok(d)
}

/// Parses `--history-retention`: `forever`, an age (`30d`), a count of events per room
/// (`10000`), or an age and a count, comma-separated in either order (`30d,10000`).
pub fn parse_retention(s: &str) -> Result<Retention, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("forever") {
        return Ok(Retention::default());
    }
    let mut retention = Retention::default();
    for part in t.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!(
                "{s:?} is not a retention: give an age like 30d, a count of events per room \
                 like 10000, both as 30d,10000, or forever"
            ));
        }
        if part.bytes().all(|b| b.is_ascii_digit()) {
            let count = part
                .parse::<u64>()
                .ok()
                .filter(|&n| (1..=MAX_PER_ROOM).contains(&n))
                .ok_or_else(|| {
                    format!("{part:?} is not a count of events per room from 1 to {MAX_PER_ROOM}")
                })?;
            if retention.per_room.replace(count).is_some() {
                return Err(format!("{s:?} gives two counts of events per room"));
            }
        } else {
            let age = parse_age(part)?;
            if retention.max_age.replace(age).is_some() {
                return Err(format!("{s:?} gives two ages"));
            }
        }
    }
    Ok(retention)
}

/// The largest count of events per room `--history-retention` takes: far more than any
/// room holds, and small enough for SQLite's signed integers.
const MAX_PER_ROOM: u64 = 1 << 40;

/// Parses an age of history: a positive whole number with a unit, `s`, `m`, `h`, `d`
/// (days) or `w` (weeks).
fn parse_age(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{s:?} is not an age like 30d or 12h (units s, m, h, d, w) nor a count of events"
            ));
        }
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n.saturating_mul(scale))),
        _ => Err(format!("{s:?} is not a positive age like 30d or 12h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("256k"), Ok(256 * 1024));
        assert_eq!(parse_size("1M"), Ok(1024 * 1024));
        assert!(parse_size("1k").is_err(), "below 4 KiB");
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("2t").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn retentions() {
        let day = Duration::from_secs(86_400);
        let r = |max_age, per_room| Ok(Retention { max_age, per_room });
        assert_eq!(parse_retention("forever"), r(None, None));
        assert!(parse_retention("forever").unwrap().is_forever());
        assert_eq!(parse_retention("30d"), r(Some(30 * day), None));
        assert_eq!(
            parse_retention("12h"),
            r(Some(Duration::from_secs(12 * 3600)), None)
        );
        assert_eq!(parse_retention("2w"), r(Some(14 * day), None));
        assert_eq!(parse_retention("10000"), r(None, Some(10_000)));
        assert_eq!(
            parse_retention("30d,10000"),
            r(Some(30 * day), Some(10_000))
        );
        assert_eq!(parse_retention(" 500 , 1d "), r(Some(day), Some(500)));
        for bad in [
            "", "0", "0d", "-1", "30d,", ",30d", "30d,1d", "10,20", "30x", "1.5d", "d", "soon",
            "30ms",
        ] {
            let err = parse_retention(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(
            parse_retention("30d,1d").unwrap_err().contains("two ages"),
            "a clear reason"
        );
        assert!(parse_retention("99999999999999999999").is_err());
        assert_eq!(
            parse_retention("30d,10000").unwrap().to_string(),
            "2592000s,10000"
        );
        assert_eq!(Retention::default().to_string(), "forever");
    }

    /// The flag and its variable reach the config; without either, history is kept.
    #[test]
    fn the_retention_flag_parses() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            config: Config,
        }
        let cli = Cli::try_parse_from(["chat-server"]).unwrap();
        assert!(cli.config.history_retention.is_forever());
        let cli = Cli::try_parse_from(["chat-server", "--history-retention", "7d,200"]).unwrap();
        assert_eq!(
            cli.config.history_retention,
            Retention {
                max_age: Some(Duration::from_secs(7 * 86_400)),
                per_room: Some(200)
            }
        );
        assert!(Cli::try_parse_from(["chat-server", "--history-retention", "7x"]).is_err());
    }
}

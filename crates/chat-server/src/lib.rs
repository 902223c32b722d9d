//! The chat server as a library: [`run`] serves a listener until a shutdown future
//! completes. The `chat-server` binary only parses flags, binds and calls it; tests bind
//! `127.0.0.1:0` and talk to the real socket.
//!
//! The tree is a core with doors (see `docs/architecture.md`):
//!
//! - [`config`]: every limit and timeout; `config::file`, the configuration file.
//! - `core`: what a chat is, whatever the protocol: events, refusals, the hub of
//!   nicknames and rooms, each room's ring, mailboxes, member state, flood control,
//!   passwords, metrics and the store. It names no wire type.
//!   - `core::event`: protocol-neutral events, encoded once per wire flavour.
//!   - `core::error`: the one refusal enum every door maps.
//!   - `core::hub`: nicknames, rooms and accounts; ids and publishing.
//!   - `core::ring`: each room's broadcast channel.
//!   - `core::mailbox`: a session's private queue and shutdown notice.
//!   - `core::member`: one user's rooms, holds, refills, pacing and `PONG` rule.
//!   - `core::flood` (the token bucket), `core::password` (argon2 off the async
//!     threads, guessing throttles), `core::metrics` ([`Server::metrics_text`]).
//!   - `core::store`: SQLite history and accounts: `queue` (the writer's bounded
//!     queue), `schema` (connection settings, migrations), `writer` (the one thread
//!     that owns the database).
//! - `net`: how bytes arrive: `net::listener` (accept loops, limits, shutdown),
//!   [`tls`], `net::reader`, `net::driver` (the loop every door's session runs),
//!   `net::web` (the page, `/ws`, `/healthz`, `/metrics`), `net::ws` (a WebSocket as
//!   lines).
//! - [`cluster`]: several servers sharing rooms through NATS JetStream: the connection,
//!   the stream and buckets, names as subject tokens and KV keys, nickname claims. Not
//!   used by the server yet; `pub` for its integration tests only.
//! - `door`: the protocols: `door::native` (handshake and commands) and
//!   `door::native::encode` (events, refusals and lists as native frames), for TCP, TLS
//!   and WebSocket clients.

#[doc(hidden)]
pub mod cluster;
pub mod config;
mod core;
mod door;
mod net;

pub use config::Config;
pub use net::listener::{Listeners, Server, Stats, listen, run, run_with};
pub use net::tls;
pub use net::web::CONTENT_SECURITY_POLICY;

/// The argon2id PHC string of `password` (with a fresh salt), for a configuration
/// file's `[[operator]]` `hash` (`chat-server hash-password`). Blocks for tens of
/// milliseconds.
pub fn hash_password(password: &str) -> Result<String, String> {
    core::password::hash(password).map_err(|e| e.to_string())
}

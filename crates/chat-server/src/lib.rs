//! The chat server as a library: [`run`] serves a listener until a shutdown future
//! completes. The `chat-server` binary only parses flags, binds and calls it; tests bind
//! `127.0.0.1:0` and talk to the real socket.
//!
//! - [`config`]: every limit and timeout.
//! - `listener`: the accept loops (plain TCP and TLS), connection limit, graceful
//!   shutdown.
//! - [`tls`]: the certificate and key for TLS, and self-signed pairs for a first try.
//! - `session`: one task per connection: handshake, commands, output batching.
//! - `hub`: nicknames and rooms; touched on join, part, rename, connect and disconnect,
//!   never for an ordinary message.
//! - `ring`: each room's broadcast channel, which grows with the room's traffic.
//! - `metrics`: what the server counts, for Prometheus ([`Server::metrics_text`]).
//! - `web`: the web door: the page, `/ws`, `/healthz` and `/metrics` over HTTP(S).
//! - `ws`: a WebSocket as a stream of protocol lines, under the native session.

pub mod config;
mod flood;
mod hub;
mod listener;
mod mailbox;
mod metrics;
mod password;
mod reader;
mod ring;
mod session;
mod store;
pub mod tls;
mod web;
mod ws;

pub use config::Config;
pub use listener::{Listeners, Server, Stats, listen, run, run_with};
pub use web::CONTENT_SECURITY_POLICY;

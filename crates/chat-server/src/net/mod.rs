//! Networking: how bytes reach a door.
//!
//! - `listener`: the accept loops (TCP, TLS, HTTP, HTTPS), connection limits, graceful
//!   shutdown.
//! - `tls`: certificates and keys, and self-signed pairs for a first try.
//! - `reader`: reading lines with no buffer held while idle.
//! - `driver`: the loop every door's session runs after its handshake (wait, collect,
//!   flush with a progress timeout).
//! - `web`: the web door's HTTP routes: the page, `/ws`, `/healthz`, `/metrics`.
//! - `ws`: a WebSocket as a stream of lines, under the native door.

pub(crate) mod driver;
pub(crate) mod listener;
pub(crate) mod reader;
pub mod tls;
pub(crate) mod web;
pub(crate) mod ws;

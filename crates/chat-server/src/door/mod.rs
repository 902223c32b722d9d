//! The doors: each turns its protocol's commands into calls on the core and the core's
//! events and refusals into its own wire bytes, over the shared driver
//! (`net::driver`).
//!
//! - `native`: the line protocol of `docs/protocol.md` (TCP, TLS, and the web page's
//!   WebSocket, which carries the same lines one per text message).

pub(crate) mod irc;
pub(crate) mod native;

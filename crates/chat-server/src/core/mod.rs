//! The core: everything a chat is, whichever door a user came through. It never imports
//! a wire type (the protocol crate's names are domain types; its frames, codec and commands
//! are the native door's), which `core_imports_no_wire_type` below checks.
//!
//! - `event`: what happens (protocol-neutral events, encoded once per wire flavour).
//! - `error`: why the core refuses something (one enum, mapped by each door).
//! - `hub`: nicknames, rooms and accounts; gives events their ids and publishes them.
//! - `ring`: each room's broadcast channel.
//! - `mailbox`: a session's private queue (private messages, the shutdown notice).
//! - `member`: one user's state as a member: rooms, store holds, refills, pacing, the
//!   `PONG` ordering rule; no socket.
//! - `flood`: the token bucket that paces a client's input.
//! - `password`: argon2 hashing off the async threads, and guessing throttles.
//! - `metrics`: what the server counts.
//! - `store`: history and accounts in SQLite, written by one thread.
//! - `ban`: server bans by address, network or mask (in memory).
//! - `canonical`: an event's kind as the fields the store keeps, and back.
//! - `op`: an operation as a cluster's log carries it, and the log as the core sees it.

pub(crate) mod ban;
pub(crate) mod canonical;
pub(crate) mod error;
pub(crate) mod event;
pub(crate) mod flood;
pub(crate) mod hub;
pub(crate) mod mailbox;
pub(crate) mod member;
pub(crate) mod metrics;
pub(crate) mod op;
pub(crate) mod password;
pub(crate) mod ring;
pub(crate) mod room;
pub(crate) mod store;

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, carrying on after a panic elsewhere: every critical section of the
/// server leaves its data consistent enough to serve.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    /// The core is protocol-neutral: no file under `src/core` names the native wire's
    /// frames, codec, commands or error codes (a door maps the core's values to them).
    #[test]
    fn core_imports_no_wire_type() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
        let mut files = vec![dir];
        let mut checked = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    files.push(entry.unwrap().path());
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Spelled in pieces, so that this test's own text does not match.
            let proto = concat!("chat", "_proto");
            let wire = [
                concat!("Server", "Frame"),
                concat!("Line", "Codec"),
                concat!("Command", "::"),
                concat!("Command", "Error"),
                concat!("proto::", "ErrorCode"),
                concat!("proto::{", "ErrorCode"),
            ];
            for (number, line) in text.lines().enumerate() {
                let imports_proto =
                    line.contains(proto) && !line.contains(concat!("chat", "_proto::name::"));
                let names_wire = wire.iter().any(|w| line.contains(w));
                assert!(
                    !imports_proto && !names_wire,
                    "{}:{}: the core names a wire type: {line}",
                    path.display(),
                    number + 1
                );
            }
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} files found");
    }
}

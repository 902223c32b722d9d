//! The wire format of the chat system, and nothing else.
//!
//! Like `quinn-proto`, this crate holds no networking code: it is values, parsing and
//! encoding, testable without sockets. The server and the client put it on a socket
//! with [`tokio_util::codec::Framed`] and [`LineCodec`].
//!
//! - [`codec`]: newline framing with a length limit that never ends the stream.
//! - [`name`]: the validated [`Nick`] and [`Room`] names.
//! - [`command`]: what a client sends after the handshake ([`Command`]).
//! - [`frame`]: everything the server sends ([`ServerFrame`]).
//! - [`text`]: the control-character rules shared by both sides.
//! - [`eof`]: a peer's unannounced close at a line boundary read as a clean end.
//! - [`irc`]: IRC messages (tags, source, verb, parameters), for the server's IRC door.
//!
//! `docs/protocol.md` at the top of the repository is the normative description.

pub mod codec;
pub mod command;
pub mod eof;
pub mod frame;
pub mod irc;
pub mod name;
pub mod text;

pub use codec::{LineCodec, LineError};
pub use command::{Command, CommandError, Password};
pub use eof::LineEof;
pub use frame::{
    AccountStatus, ErrorCode, FrameError, RoomMember, ServerFrame, Status, Timestamp, Topic, Whois,
};
pub use name::{NameError, Nick, Room, Target};

/// The port of the original teaching program, kept as the default.
pub const DEFAULT_PORT: u16 = 55555;

/// The default address of the server: loopback, the original program's port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:55555";

/// Default limit on the length of a line a client sends, in bytes, without the newline.
pub const DEFAULT_MAX_LINE: usize = 4096;

/// Limit a client puts on lines from the server. Server frames carry a client line plus a
/// header (room, nick, time), and member lists are split well below this.
pub const CLIENT_MAX_LINE: usize = 64 * 1024;

//! Which protocol the bench clients speak, the native one or IRC (`irc.rs`), and
//! what differs between them once a client is in its room: the lines it writes (a
//! message, `PING`) and how it reads the server's.
//!
//! The workloads are the same either way. One difference shows in their figures: a
//! native sender receives its own messages back (its receipt), an IRC sender does not
//! (without `echo-message`, which the bench does not ask for, as ngIRCd has none), so a
//! message is delivered to every member natively and to every member but its sender
//! over IRC (`Protocol::receivers`).

use crate::irc;
use crate::message::{self, Frame};
use crate::transport::Transport;
use anyhow::ensure;
use bytes::{BufMut, BytesMut};
use chat_proto::ServerFrame;
use serde::Serialize;
use std::sync::Arc;

/// The protocol of the bench's connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The server's own line protocol (docs/protocol.md).
    #[default]
    Native,
    /// IRC (`NICK`/`USER`, `JOIN`, `PRIVMSG`), to the server's IRC door
    /// (`--irc-addr`) or to any IRC server.
    Irc,
}

impl Protocol {
    /// Whether a sender receives its own messages back.
    pub(crate) fn echoes(self) -> bool {
        self == Protocol::Native
    }

    /// How many of a room's `members` receive each message.
    pub(crate) fn receivers(self, members: usize) -> u64 {
        let members = members as u64;
        if self.echoes() {
            members
        } else {
            members.saturating_sub(1)
        }
    }

    /// What a line from the server is, as far as a receiver cares.
    pub(crate) fn classify(self, line: &[u8]) -> Frame<'_> {
        match self {
            Protocol::Native => message::classify(line),
            Protocol::Irc => irc::classify(line),
        }
    }

    /// Asks the server for a `PONG` that comes after everything it owes this client.
    pub(crate) fn ping(self, token: &str) -> String {
        match self {
            Protocol::Native => format!("/ping {token}\n"),
            Protocol::Irc => format!("PING {token}\r\n"),
        }
    }

    /// Who left and why, from a line that [`Protocol::classify`] found to be a
    /// [`Frame::Quit`].
    pub(crate) fn who_quit(self, line: &[u8]) -> Option<(String, String)> {
        match self {
            Protocol::Native => {
                let line = std::str::from_utf8(line).ok()?;
                match ServerFrame::parse(line) {
                    Ok(ServerFrame::Quit { nick, reason, .. }) => {
                        Some((nick.to_string(), reason.unwrap_or_default()))
                    }
                    _ => None,
                }
            }
            Protocol::Irc => irc::quit(line),
        }
    }

    /// The line that ends the session.
    pub(crate) fn quit_line(self) -> &'static str {
        match self {
            Protocol::Native => "/quit\n",
            Protocol::Irc => "QUIT\r\n",
        }
    }
}

/// How the bench reaches the server: the transport under the protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Door {
    pub(crate) transport: Transport,
    pub(crate) protocol: Protocol,
}

impl Door {
    /// The pair, if it makes sense: the web door's WebSocket carries the native
    /// protocol only.
    pub(crate) fn new(transport: Transport, protocol: Protocol) -> anyhow::Result<Door> {
        ensure!(
            !(transport == Transport::Ws && protocol == Protocol::Irc),
            "--protocol irc runs over plain TCP (to the IRC door, --irc-addr): \
             --transport ws carries the native protocol only"
        );
        Ok(Door {
            transport,
            protocol,
        })
    }
}

/// How a bench message's text becomes a line to the room: as it is natively (a line
/// that is no command is said in the current room), in a `PRIVMSG` over IRC.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    /// What goes before the text.
    head: Arc<str>,
    /// What ends the line.
    tail: &'static str,
}

impl Envelope {
    /// The envelope for messages to `room` in `protocol`.
    pub(crate) fn new(protocol: Protocol, room: &str) -> Envelope {
        match protocol {
            Protocol::Native => Envelope {
                head: "".into(),
                tail: "\n",
            },
            Protocol::Irc => Envelope {
                head: format!("PRIVMSG {room} :").into(),
                tail: "\r\n",
            },
        }
    }

    /// Starts a line in `buf`; returns where its text begins.
    pub(crate) fn open(&self, buf: &mut BytesMut) -> usize {
        buf.put_slice(self.head.as_bytes());
        buf.len()
    }

    /// Ends the line begun with [`Envelope::open`].
    pub(crate) fn close(&self, buf: &mut BytesMut) {
        buf.put_slice(self.tail.as_bytes());
    }

    /// The whole line for `text`.
    pub(crate) fn line(&self, text: &str) -> String {
        format!("{}{text}{}", self.head, self.tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_irc_sender_is_not_among_its_receivers() {
        assert_eq!(Protocol::Native.receivers(100), 100);
        assert_eq!(Protocol::Irc.receivers(100), 99);
        assert_eq!(Protocol::Irc.receivers(0), 0);
    }

    #[test]
    fn envelopes_wrap_the_text() {
        let native = Envelope::new(Protocol::Native, "#bench");
        assert_eq!(native.line("e3"), "e3\n");
        let irc = Envelope::new(Protocol::Irc, "#bench");
        assert_eq!(irc.line("e3"), "PRIVMSG #bench :e3\r\n");
        let mut buf = BytesMut::new();
        let start = irc.open(&mut buf);
        buf.put_slice(b"hi");
        irc.close(&mut buf);
        assert_eq!(start, "PRIVMSG #bench :".len());
        assert_eq!(&buf[..], b"PRIVMSG #bench :hi\r\n");
    }

    #[test]
    fn irc_goes_over_tcp_only() {
        assert!(Door::new(Transport::Tcp, Protocol::Irc).is_ok());
        assert!(Door::new(Transport::Ws, Protocol::Native).is_ok());
        let e = Door::new(Transport::Ws, Protocol::Irc).unwrap_err();
        assert!(e.to_string().contains("--transport ws"), "{e}");
    }

    #[test]
    fn pings_and_quits() {
        assert_eq!(Protocol::Native.ping("sync"), "/ping sync\n");
        assert_eq!(Protocol::Irc.ping("sync"), "PING sync\r\n");
        assert_eq!(Protocol::Irc.quit_line(), "QUIT\r\n");
        assert_eq!(
            Protocol::Irc.who_quit(b":b1_2!u@h QUIT :Ping timeout"),
            Some(("b1_2".to_owned(), "Ping timeout".to_owned()))
        );
        assert_eq!(
            Protocol::Native
                .who_quit(b"QUIT #bench b1_2 2026-11-24T19:46:21.275Z 17 :slow consumer"),
            Some(("b1_2".to_owned(), "slow consumer".to_owned()))
        );
    }
}

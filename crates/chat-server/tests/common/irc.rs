//! A raw IRC client for the tests of the IRC door: lines out, lines in, every wait
//! bounded by [`WAIT`].

use super::{TestServer, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// An IRC client speaking raw lines.
pub struct Irc {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

impl Irc {
    pub async fn connect(server: &TestServer) -> Irc {
        let (read, writer) = TcpStream::connect(server.irc).await.unwrap().into_split();
        Irc {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Connects and registers as `nick` (no capabilities), reading up to the end of the
    /// welcome (the MOTD's end or its absence).
    pub async fn login(server: &TestServer, nick: &str) -> Irc {
        let mut irc = Irc::connect(server).await;
        irc.send(&format!("NICK {nick}")).await;
        irc.send(&format!("USER {nick} 0 * :{nick} the tester"))
            .await;
        irc.until(|l| l.contains(" 376 ") || l.contains(" 422 "))
            .await;
        irc
    }

    /// Connects and registers as `nick` with the capabilities `caps` (space-separated),
    /// reading up to the end of the welcome.
    pub async fn login_with(server: &TestServer, nick: &str, caps: &str) -> Irc {
        let mut irc = Irc::connect(server).await;
        irc.send(&format!("CAP REQ :{caps}")).await;
        irc.send(&format!("NICK {nick}")).await;
        irc.send(&format!("USER {nick} 0 * :{nick}")).await;
        irc.send("CAP END").await;
        let welcome = irc
            .until(|l| l.contains(" 376 ") || l.contains(" 422 "))
            .await;
        assert!(
            welcome[0].ends_with(&format!("CAP * ACK :{caps}")),
            "{welcome:?}"
        );
        irc
    }

    /// Joins `room` and reads up to the end of its names list (366): the lines of the
    /// join.
    pub async fn join(&mut self, room: &str) -> Vec<String> {
        self.send(&format!("JOIN {room}")).await;
        self.until(|l| l.contains(" 366 ")).await
    }

    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next line, without its CRLF (which every line must end with).
    pub async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .unwrap();
        assert!(n > 0, "connection closed");
        assert!(line.ends_with("\r\n"), "{line:?} ends in CRLF");
        line.truncate(line.len() - 2);
        line
    }

    /// Lines up to and including the first for which `what` holds.
    pub async fn until(&mut self, what: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = what(&line);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Everything the server sent before the `PONG` of a `PING` sent now.
    pub async fn sync(&mut self) -> Vec<String> {
        self.send("PING sync").await;
        let mut lines = self
            .until(|l| l.ends_with("PONG chat.localhost :sync"))
            .await;
        lines.pop();
        lines
    }

    /// Whether the server closed the connection (after what it still had to say).
    pub async fn closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("closed in time")
                .unwrap_or(0);
            if n == 0 {
                return lines;
            }
            lines.push(line.trim_end().to_owned());
        }
    }
}

/// The numeric of a server line (`:server NNN me ...`), if it is one.
pub fn numeric(line: &str) -> Option<&str> {
    let mut words = line.split(' ');
    words.next()?.strip_prefix(':')?;
    let code = words.next()?;
    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

pub fn numerics(lines: &[String]) -> Vec<&str> {
    lines.iter().filter_map(|l| numeric(l)).collect()
}

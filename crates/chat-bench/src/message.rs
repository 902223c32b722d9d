//! The text of bench messages, and a cheap reading of the frames that carry them.
//!
//! An ordinary sender's message is `s<sender> <seq> <sent_ns> xxxx...`, padded with `x`
//! to `--size` bytes; `sent_ns` is the send time in nanoseconds since the run's epoch,
//! so a receiver computes the latency without a clock read of its own per message: it
//! reads the clock once per socket read, the receive time of every line in it. A sender that has finished
//! says `e<sender>`; a flooder's lines are `f<flooder> <n> xxxx...`.
//!
//! The line around the text is the protocol's ([`Envelope`]): the text alone natively,
//! `PRIVMSG <room> :<text>` over IRC.
//!
//! Only messages from this run's nicknames (`b<run>_...`) count, so that a bench
//! started right after another one in the same room is not confused by its leftovers.
//!
//! Receivers see tens of thousands of frames a second, so this module reads frames as
//! bytes without allocating: it recognises the verb by its prefix and, for `MSG`, cuts
//! the text at the first ` :` (docs/protocol.md §5) and parses only the numbers it needs.
//! Rare frames (`QUIT`, `BYE`) are parsed fully with [`chat_proto::ServerFrame`].

use crate::protocol::Envelope;
use bytes::{BufMut, BytesMut};
use std::fmt::Write as _;

/// What a bench message's text says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// Message `seq` of ordinary sender `sender`, sent at `sent_ns`.
    Bench {
        sender: usize,
        seq: u64,
        sent_ns: u64,
    },
    /// Ordinary sender `sender` has sent everything.
    End { sender: usize },
    /// A line of flooder `flooder`.
    Flood { flooder: usize },
    /// Not a bench message.
    Other,
}

/// A frame from the server, as far as a receiver cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// `MSG <room> <from> <time> <id> :<text>`.
    Msg { from: &'a [u8], text: &'a [u8] },
    /// `LAGGED <room> <missed>`.
    Lagged(u64),
    /// `QUIT ...`: someone left; parse the line for who and why.
    Quit,
    /// `PONG [:token]`.
    Pong,
    /// `BYE :reason`: the server closes this connection.
    Bye,
    /// Anything else (joins, member lists...).
    Other,
}

/// Appends the line of ordinary message `seq` of `sender`, stamped `sent_ns`, its text
/// padded to `size` bytes.
pub(crate) fn put_bench(
    buf: &mut BytesMut,
    envelope: &Envelope,
    sender: usize,
    seq: u64,
    sent_ns: u64,
    size: usize,
) {
    let start = envelope.open(buf);
    let _ = write!(buf, "s{sender} {seq} {sent_ns}");
    pad(buf, start, size);
    envelope.close(buf);
}

/// Appends the line of message `n` of flooder `flooder`, its text padded to `size` bytes.
pub(crate) fn put_flood(
    buf: &mut BytesMut,
    envelope: &Envelope,
    flooder: usize,
    n: u64,
    size: usize,
) {
    let start = envelope.open(buf);
    let _ = write!(buf, "f{flooder} {n}");
    pad(buf, start, size);
    envelope.close(buf);
}

/// The line (with its end) by which ordinary sender `sender` says it has finished.
pub(crate) fn end_line(envelope: &Envelope, sender: usize) -> String {
    envelope.line(&format!("e{sender}"))
}

/// Pads the text begun at `start` with ` xxx...` to `size` bytes.
fn pad(buf: &mut BytesMut, start: usize, size: usize) {
    let len = buf.len() - start;
    if len + 1 < size {
        buf.put_u8(b' ');
        buf.put_bytes(b'x', size - len - 1);
    }
}

/// Recognises a server frame by its verb.
pub(crate) fn classify(line: &[u8]) -> Frame<'_> {
    if let Some(rest) = line.strip_prefix(b"MSG ") {
        let mut words = rest.splitn(3, |&b| b == b' ');
        let from = words.nth(1).unwrap_or_default();
        return match find_trailing(rest) {
            Some(text) => Frame::Msg { from, text },
            None => Frame::Other,
        };
    }
    if let Some(rest) = line.strip_prefix(b"LAGGED ") {
        let missed = rest
            .rsplit(|&b| b == b' ')
            .next()
            .and_then(parse_u64)
            .unwrap_or(0);
        return Frame::Lagged(missed);
    }
    if line.starts_with(b"QUIT ") {
        return Frame::Quit;
    }
    if line == b"PONG" || line.starts_with(b"PONG :") {
        return Frame::Pong;
    }
    if line.starts_with(b"BYE") {
        return Frame::Bye;
    }
    Frame::Other
}

/// The trailing text: what follows the first ` :`.
pub(crate) fn find_trailing(line: &[u8]) -> Option<&[u8]> {
    // From colon to colon (a native `MSG`'s time has two before it), not byte by byte.
    let mut from = 1;
    loop {
        let colon = from + memchr::memchr(b':', line.get(from..)?)?;
        if line[colon - 1] == b' ' {
            return Some(&line[colon + 1..]);
        }
        from = colon + 1;
    }
}

/// Reads a bench message's text, in one pass over its header (the padding is not
/// looked at).
pub(crate) fn parse_body(text: &[u8]) -> Body {
    let Some((&kind, mut rest)) = text.split_first() else {
        return Body::Other;
    };
    let Some(id) = take_word_u64(&mut rest).and_then(|id| usize::try_from(id).ok()) else {
        return Body::Other;
    };
    match kind {
        b's' => {
            let seq = take_word_u64(&mut rest);
            let sent_ns = take_word_u64(&mut rest);
            match (seq, sent_ns) {
                (Some(seq), Some(sent_ns)) => Body::Bench {
                    sender: id,
                    seq,
                    sent_ns,
                },
                _ => Body::Other,
            }
        }
        b'e' => Body::End { sender: id },
        b'f' => Body::Flood { flooder: id },
        _ => Body::Other,
    }
}

/// Takes the first word of `rest` (up to a space, which is taken too, or the end) if it
/// is a decimal number of 1 to 19 ASCII digits, as [`parse_u64`] reads one; `None`,
/// and `rest` is left as it is, if it is not.
fn take_word_u64(rest: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    let mut digits = 0;
    for &b in rest.iter() {
        if b.is_ascii_digit() {
            n = n.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
            digits += 1;
        } else {
            break;
        }
    }
    if digits == 0 || digits > 19 {
        return None;
    }
    match rest.get(digits) {
        None => *rest = &[],
        Some(b' ') => *rest = &rest[digits + 1..],
        Some(_) => return None,
    }
    Some(n)
}

/// A decimal number of ASCII digits, nothing else.
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;

    fn native() -> Envelope {
        Envelope::new(Protocol::Native, "#bench")
    }

    fn line(buf: &BytesMut) -> &[u8] {
        buf.strip_suffix(b"\n").expect("ends with a newline")
    }

    #[test]
    fn bench_messages_round_trip_and_have_their_size() {
        let mut buf = BytesMut::new();
        put_bench(&mut buf, &native(), 3, 41, 123_456_789, 100);
        assert_eq!(buf.len(), 101);
        assert_eq!(
            parse_body(line(&buf)),
            Body::Bench {
                sender: 3,
                seq: 41,
                sent_ns: 123_456_789
            }
        );
        // Too small a size: no padding, the header is kept whole.
        let mut small = BytesMut::new();
        put_bench(&mut small, &native(), 3, 41, 123_456_789, 5);
        assert_eq!(&small[..], b"s3 41 123456789\n");
    }

    #[test]
    fn flood_and_end_lines() {
        let mut buf = BytesMut::new();
        put_flood(&mut buf, &native(), 2, 7, 50);
        assert_eq!(buf.len(), 51);
        assert_eq!(parse_body(line(&buf)), Body::Flood { flooder: 2 });
        let end = end_line(&native(), 9);
        assert_eq!(
            parse_body(end.trim_end().as_bytes()),
            Body::End { sender: 9 }
        );
        assert_eq!(parse_body(b"hello there"), Body::Other);
        assert_eq!(parse_body(b"s1 2"), Body::Other);
        assert_eq!(parse_body(b"e3e3"), Body::Other);
        assert_eq!(parse_body(b""), Body::Other);
    }

    #[test]
    fn bench_headers_are_whole_words_of_digits() {
        let bench = Body::Bench {
            sender: 1,
            seq: 2,
            sent_ns: 3,
        };
        assert_eq!(parse_body(b"s1 2 3"), bench);
        assert_eq!(parse_body(b"s1 2 3 xxxx"), bench);
        assert_eq!(parse_body(b"s1 2 3x"), Body::Other);
        assert_eq!(parse_body(b"s1  2 3"), Body::Other);
        assert_eq!(parse_body(b"s1 2 "), Body::Other);
        assert_eq!(parse_body(b"s 1 2 3"), Body::Other);
        assert_eq!(parse_body(b"s1 2 18446744073709551615"), Body::Other);
        assert_eq!(
            parse_body(b"s1 2 9999999999999999999"),
            Body::Bench {
                sender: 1,
                seq: 2,
                sent_ns: 9_999_999_999_999_999_999
            }
        );
        assert_eq!(parse_body(b"e3 "), Body::End { sender: 3 });
        assert_eq!(parse_body(b"f2 7 xx"), Body::Flood { flooder: 2 });
        assert_eq!(parse_body(b"x2 7"), Body::Other);
    }

    #[test]
    fn over_irc_the_text_is_padded_inside_a_privmsg() {
        let irc = Envelope::new(Protocol::Irc, "#bench");
        let mut buf = BytesMut::new();
        put_bench(&mut buf, &irc, 3, 41, 123_456_789, 100);
        let text = buf
            .strip_prefix(b"PRIVMSG #bench :")
            .and_then(|rest| rest.strip_suffix(b"\r\n"))
            .expect("a PRIVMSG line");
        assert_eq!(text.len(), 100);
        assert_eq!(
            parse_body(text),
            Body::Bench {
                sender: 3,
                seq: 41,
                sent_ns: 123_456_789
            }
        );
        assert_eq!(end_line(&irc, 2), "PRIVMSG #bench :e2\r\n");
    }

    #[test]
    fn frames_are_recognised_by_their_verb() {
        let msg = b"MSG #bench b1_0 2026-11-24T19:46:21.275Z 17 :s0 1 2 x :y";
        assert_eq!(
            classify(msg),
            Frame::Msg {
                from: b"b1_0",
                text: b"s0 1 2 x :y"
            }
        );
        assert_eq!(find_trailing(b"a :b :c"), Some(&b"b :c"[..]));
        assert_eq!(find_trailing(b":a :b"), Some(&b"b"[..]));
        assert_eq!(find_trailing(b"a: b:c :"), Some(&b""[..]));
        assert_eq!(find_trailing(b"a:b"), None);
        assert_eq!(find_trailing(b" "), None);
        assert_eq!(find_trailing(b""), None);
        assert_eq!(classify(b"LAGGED #bench 17"), Frame::Lagged(17));
        assert_eq!(
            classify(b"QUIT #bench b1_s0 2026-11-24T19:46:21.275Z :slow consumer"),
            Frame::Quit
        );
        assert_eq!(classify(b"PONG"), Frame::Pong);
        assert_eq!(classify(b"PONG :sync"), Frame::Pong);
        assert_eq!(classify(b"BYE :quit"), Frame::Bye);
        assert_eq!(
            classify(b"JOIN #bench b1_2 2026-11-24T19:46:21.275Z"),
            Frame::Other
        );
    }
}

//! Byte-level tests of the line codec: what goes in on the wire, what comes out.

use bytes::BytesMut;
use chat_proto::{LineCodec, LineError};
use tokio_util::codec::{Decoder, Encoder};

fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Vec<Result<String, LineError>> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(item) = codec.decode(&mut buf).unwrap() {
        out.push(item);
    }
    out
}

fn ok(s: &str) -> Result<String, LineError> {
    Ok(s.to_owned())
}

#[test]
fn splits_lines_and_drops_cr() {
    let mut c = LineCodec::new(64);
    assert_eq!(
        decode_all(&mut c, b"alice\nhello\r\n\nbye"),
        vec![ok("alice"), ok("hello"), ok("")]
    );
}

#[test]
fn only_one_cr_is_dropped() {
    let mut c = LineCodec::new(64);
    assert_eq!(decode_all(&mut c, b"a\r\r\n"), vec![ok("a\r")]);
}

#[test]
fn line_at_the_limit_is_accepted_with_and_without_cr() {
    let mut c = LineCodec::new(4);
    assert_eq!(
        decode_all(&mut c, b"abcd\nabcd\r\n"),
        vec![ok("abcd"), ok("abcd")]
    );
}

#[test]
fn line_over_the_limit_is_reported_and_skipped() {
    let mut c = LineCodec::new(4);
    assert_eq!(
        decode_all(&mut c, b"abcde\nok\n"),
        vec![Err(LineError::TooLong { limit: 4 }), ok("ok")]
    );
}

#[test]
fn long_line_is_reported_before_its_newline_arrives() {
    // The limit is enforced while reading: a peer that never sends '\n' is told at once
    // and its bytes are not kept.
    let mut c = LineCodec::new(8);
    let mut buf = BytesMut::from(&b"0123456789abcdef"[..]);
    assert_eq!(
        c.decode(&mut buf).unwrap(),
        Some(Err(LineError::TooLong { limit: 8 }))
    );
    assert!(c.is_discarding());
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty(), "discarded bytes are not buffered");
    buf.extend_from_slice(b"more junk");
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
    buf.extend_from_slice(b" end\nnext\n");
    assert_eq!(c.decode(&mut buf).unwrap(), Some(ok("next")));
    assert!(!c.is_discarding());
}

#[test]
fn line_arriving_byte_by_byte() {
    let mut c = LineCodec::new(16);
    let mut buf = BytesMut::new();
    for &b in b"hello world" {
        buf.extend_from_slice(&[b]);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
    }
    buf.extend_from_slice(b"\n");
    assert_eq!(c.decode(&mut buf).unwrap(), Some(ok("hello world")));
}

#[test]
fn invalid_utf8_is_an_item_and_the_stream_goes_on() {
    let mut c = LineCodec::new(64);
    assert_eq!(
        decode_all(&mut c, b"caf\xc3\xa9\n\xff\xfe\nafter\n"),
        vec![ok("café"), Err(LineError::InvalidUtf8), ok("after")]
    );
}

#[test]
fn utf8_split_across_reads() {
    let mut c = LineCodec::new(64);
    let mut buf = BytesMut::from(&b"caf\xc3"[..]);
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\xa9\n");
    assert_eq!(c.decode(&mut buf).unwrap(), Some(ok("café")));
}

#[test]
fn last_line_without_newline_counts_at_eof() {
    let mut c = LineCodec::new(64);
    let mut buf = BytesMut::from(&b"alice"[..]);
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    assert_eq!(c.decode_eof(&mut buf).unwrap(), Some(ok("alice")));
    assert_eq!(c.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn eof_while_discarding_yields_nothing() {
    let mut c = LineCodec::new(4);
    let mut buf = BytesMut::from(&b"abcdefgh"[..]);
    assert_eq!(
        c.decode(&mut buf).unwrap(),
        Some(Err(LineError::TooLong { limit: 4 }))
    );
    assert_eq!(c.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn encode_appends_newline_and_refuses_embedded_newlines() {
    let mut c = LineCodec::new(64);
    let mut buf = BytesMut::new();
    c.encode("alice", &mut buf).unwrap();
    c.encode(String::from("/join #rust"), &mut buf).unwrap();
    assert_eq!(&buf[..], b"alice\n/join #rust\n");
    assert!(c.encode("a\nb", &mut buf).is_err());
    assert!(c.encode("a\rb", &mut buf).is_err());
}

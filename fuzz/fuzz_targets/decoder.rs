//! The line decoder on arbitrary bytes, delivered in arbitrary pieces: it never panics,
//! never yields a line over its limit or with a newline, and never buffers more than one
//! line could need.
#![no_main]

use bytes::BytesMut;
use chat_proto::LineCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the limit; the rest is cut into pieces at every 0xff byte.
    let max = 1 + usize::from(first % 64);
    let mut codec = LineCodec::new(max);
    let mut buf = BytesMut::new();
    let check = |item: Result<String, chat_proto::LineError>| {
        if let Ok(line) = item {
            assert!(
                line.len() <= max,
                "line of {} bytes over the limit {max}",
                line.len()
            );
            assert!(!line.contains('\n'));
        }
    };
    for piece in rest.split(|&b| b == 0xff) {
        buf.extend_from_slice(piece);
        while let Some(item) = codec
            .decode(&mut buf)
            .expect("the decoder has no I/O errors")
        {
            check(item);
        }
        assert!(
            buf.len() <= max + 2,
            "{} bytes buffered with a limit of {max}",
            buf.len()
        );
    }
    while let Some(item) = codec
        .decode_eof(&mut buf)
        .expect("the decoder has no I/O errors")
    {
        check(item);
    }
});

//! IRC message parsing (what the server's IRC door does with every line), on arbitrary
//! bytes decoded lossily as the door does: no panic, and every line that parses writes
//! back to a line that parses to the same message.
#![no_main]

use chat_proto::irc::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Ok(message) = Message::parse(&line) {
        let written = message.to_string();
        assert_eq!(
            Message::parse(&written).as_ref(),
            Ok(&message),
            "{line:?} -> {written:?}"
        );
    }
});

//! Client command parsing (what the server does with every line) and server frame
//! parsing (what the client does), on arbitrary text: no panic, and every command that
//! parses encodes back to a line that parses to the same command.
#![no_main]

use chat_proto::{Command, ServerFrame, text::first_forbidden};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if line.contains('\n') {
        return;
    }
    if let Ok(cmd) = Command::parse(line) {
        let encoded = cmd.to_string();
        assert_eq!(
            Command::parse(&encoded).as_ref(),
            Ok(&cmd),
            "{line:?} -> {encoded:?}"
        );
        // Text the server accepts can never act on a terminal.
        assert!(first_forbidden(&encoded).is_none(), "{encoded:?}");
    }
    if let Ok(frame) = ServerFrame::parse(line) {
        let encoded = frame.to_string();
        assert!(
            ServerFrame::parse(&encoded).is_ok(),
            "{line:?} -> {encoded:?}"
        );
    }
});

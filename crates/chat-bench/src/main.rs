//! `chat-bench`: a load generator for the chat server (being written).

fn main() {}

//! An accept that fails for lack of file descriptors is retried after a pause; it never
//! ends the accept loop. Alone in its test binary because it lowers the process's
//! open-file limit.

mod common;

use common::*;
use std::time::Duration;

fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(64)
}

#[tokio::test]
async fn accept_loop_survives_running_out_of_file_descriptors() {
    let server = TestServer::start().await;
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, open_files() + 16, hard).unwrap();

    // Connect until this process runs out of descriptors; the server, in the same
    // process, runs out too and its accepts fail.
    let mut clients = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(server.addr))
            .await
            .unwrap()
        {
            Ok(stream) => clients.push(stream),
            Err(_) => break,
        }
    }
    let failed =
        tokio::time::timeout(WAIT, server.server.wait_until(|s| s.accept_errors > 0)).await;
    drop(clients);
    rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).unwrap();
    failed.expect("the server's accept failed at least once");

    // Descriptors are back: the same accept loop serves new clients.
    let mut alice = tokio::time::timeout(Duration::from_secs(20), server.login("alice"))
        .await
        .unwrap();
    alice.send("still accepting").await;
    assert_eq!(
        msg_text(&alice.sync().await[0], "#general", "alice"),
        Some("still accepting")
    );
}

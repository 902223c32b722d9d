//! The IRC door's IRCv3 capabilities beyond the first set (`userhost-in-names`,
//! `extended-join`, `account-notify`, `setname`) and WHOX, spoken raw from real
//! sockets, with native users in the same rooms.

mod common;

use common::irc::*;
use common::*;

/// The 353 lines among `lines`.
fn names(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| numeric(l) == Some("353"))
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn userhost_in_names_lists_every_mask_to_the_clients_that_took_it() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.sync().await;
    let mut bob = Irc::login_with(&server, "bob", "userhost-in-names multi-prefix").await;
    bob.send("JOIN #rust").await;
    let joined = bob.until(|l| l.contains(" 366 ")).await;
    assert_eq!(
        names(&joined),
        [":chat.localhost 353 bob = #rust :@alice!alice@chat.localhost bob!~bob@127.0.0.1"],
        "{joined:?}"
    );
    // Without the capability, nicknames only.
    let mut carol = Irc::login(&server, "carol").await;
    carol.send("JOIN #rust").await;
    carol.until(|l| l.contains(" 366 ")).await;
    carol.send("NAMES #rust").await;
    assert_eq!(
        names(&carol.sync().await),
        [":chat.localhost 353 carol = #rust :@alice bob carol"]
    );
    bob.send("NAMES #rust").await;
    let listed = bob.sync().await;
    assert_eq!(
        names(&listed),
        [concat!(
            ":chat.localhost 353 bob = #rust :@alice!alice@chat.localhost ",
            "bob!~bob@127.0.0.1 carol!~carol@127.0.0.1"
        )],
        "{listed:?}"
    );
}

#[tokio::test]
async fn a_secret_room_is_marked_in_its_names() {
    let server = TestServer::start().await;
    let mut alice = Irc::login(&server, "alice").await;
    alice.send("JOIN #hidden").await;
    alice.until(|l| l.contains(" 366 ")).await;
    alice.send("JOIN #open").await;
    alice.until(|l| l.contains(" 366 ")).await;
    alice.send("MODE #hidden +s").await;
    alice.send("NAMES #hidden").await;
    alice.send("NAMES #open").await;
    let lines = alice.sync().await;
    assert_eq!(
        names(&lines),
        [
            ":chat.localhost 353 alice @ #hidden :@alice",
            ":chat.localhost 353 alice = #open :@alice",
        ],
        "{lines:?}"
    );
    // A joiner's list says so too.
    let mut bob = Irc::login(&server, "bob").await;
    bob.send("JOIN #hidden").await;
    let joined = bob.until(|l| l.contains(" 366 ")).await;
    assert_eq!(
        names(&joined),
        [":chat.localhost 353 bob @ #hidden :@alice bob"]
    );
}

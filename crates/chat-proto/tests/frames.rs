//! Server frames and client commands: examples as they look on the wire, and proptest
//! round trips (encode then parse is the identity) for every variant.

use chat_proto::{
    AccountStatus, Command, CommandError, ErrorCode, LineCodec, Nick, Password, Room, RoomMember,
    ServerFrame, Status, Target, Timestamp, Topic, Whois,
};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}
fn room(s: &str) -> Room {
    Room::new(s).unwrap()
}
fn t(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

#[test]
fn frames_read_like_the_protocol_document() {
    let time = t(1_795_000_000_123);
    let cases = [
        (ServerFrame::NickPrompt, "NICK"),
        (
            ServerFrame::Welcome {
                nick: nick("alice"),
                text: "hi alice".into(),
            },
            "WELCOME alice :hi alice",
        ),
        (
            ServerFrame::Message {
                room: room("#general"),
                from: nick("bob"),
                time,
                id: 41,
                text: "hello :) world".into(),
            },
            "MSG #general bob 2026-11-18T11:06:40.123Z 41 :hello :) world",
        ),
        (
            ServerFrame::Part {
                room: room("#rust"),
                nick: nick("bob"),
                time,
                id: 7,
                reason: None,
            },
            "PART #rust bob 2026-11-18T11:06:40.123Z 7",
        ),
        (
            ServerFrame::Quit {
                room: room("#rust"),
                nick: nick("bob"),
                time,
                id: 8,
                reason: Some(String::new()),
            },
            "QUIT #rust bob 2026-11-18T11:06:40.123Z 8 :",
        ),
        (
            ServerFrame::Rename {
                room: None,
                old: nick("a"),
                new: nick("b"),
                time,
                id: 9,
            },
            "RENAME * a b 2026-11-18T11:06:40.123Z 9",
        ),
        (
            ServerFrame::Join {
                room: room("#a"),
                nick: nick("x"),
                time: t(1_795_000_000_000),
                id: 18446744073709551615,
            },
            "JOIN #a x 2026-11-18T11:06:40.000Z 18446744073709551615",
        ),
        (ServerFrame::PassPrompt, "PASS"),
        (
            ServerFrame::History(Box::new(ServerFrame::Action {
                room: room("#a"),
                from: nick("bob"),
                time,
                id: 3,
                text: "waves".into(),
            })),
            "HISTORY ACTION #a bob 2026-11-18T11:06:40.123Z 3 :waves",
        ),
        (
            ServerFrame::HistoryEnd {
                target: Target::Nick(nick("bob")),
                count: 0,
            },
            "HISTORYEND bob 0",
        ),
        (
            ServerFrame::Account {
                nick: nick("alice"),
                status: AccountStatus::PasswordChanged,
            },
            "ACCOUNT alice password-changed",
        ),
        (ServerFrame::Current { room: None }, "CURRENT *"),
        (
            ServerFrame::Members {
                room: room("#a"),
                members: vec![
                    RoomMember {
                        status: Status::Operator,
                        nick: nick("x"),
                    },
                    RoomMember {
                        status: Status::Member,
                        nick: nick("y"),
                    },
                    RoomMember {
                        status: Status::Voice,
                        nick: nick("z"),
                    },
                ],
            },
            "MEMBERS #a @x y +z",
        ),
        (
            ServerFrame::Mode {
                room: room("#a"),
                nick: nick("alice"),
                time,
                id: 9,
                changes: "+ol bob 20".into(),
            },
            "MODE #a alice 2026-11-18T11:06:40.123Z 9 :+ol bob 20",
        ),
        (
            ServerFrame::Modes {
                room: room("#a"),
                modes: "+ntk sesame".into(),
            },
            "MODES #a :+ntk sesame",
        ),
        (
            ServerFrame::Kick {
                room: room("#a"),
                nick: nick("alice"),
                target: nick("bob"),
                time,
                id: 10,
                reason: "spam".into(),
            },
            "KICK #a alice bob 2026-11-18T11:06:40.123Z 10 :spam",
        ),
        (
            ServerFrame::Invite {
                room: room("#a"),
                nick: nick("alice"),
                target: nick("bob"),
                time,
                id: 11,
            },
            "INVITE #a alice bob 2026-11-18T11:06:40.123Z 11",
        ),
        (
            ServerFrame::Ban {
                room: room("#a"),
                mask: "*!*@192.0.2.*".into(),
                by: nick("alice"),
                time,
            },
            "BAN #a *!*@192.0.2.* alice 2026-11-18T11:06:40.123Z",
        ),
        (
            ServerFrame::BanEnd {
                room: room("#a"),
                count: 1,
            },
            "BANEND #a 1",
        ),
        (
            ServerFrame::Rooms {
                rooms: vec![(room("#a"), 3), (room("#b"), 1)],
            },
            "ROOMS #a=3 #b=1",
        ),
        (ServerFrame::Pong { token: None }, "PONG"),
        (
            ServerFrame::Error {
                code: ErrorCode::NickTaken,
                text: "taken".into(),
            },
            "ERR NICK_TAKEN :taken",
        ),
        (
            ServerFrame::Bye {
                reason: "bye".into(),
            },
            "BYE :bye",
        ),
        (
            ServerFrame::Away {
                nick: nick("alice"),
                text: Some("gone fishing".into()),
            },
            "AWAY alice :gone fishing",
        ),
        (
            ServerFrame::Away {
                nick: nick("alice"),
                text: None,
            },
            "AWAY alice",
        ),
        (
            ServerFrame::IsAway {
                nick: nick("bob"),
                text: "back at 5".into(),
            },
            "ISAWAY bob :back at 5",
        ),
        (
            ServerFrame::Whois(Box::new(Whois {
                nick: nick("Bob"),
                since: time,
                idle: 42,
                tls: true,
                account: Some(nick("bob")),
                oper: true,
                rooms: vec![
                    (Status::Member, room("#general")),
                    (Status::Operator, room("#Rust")),
                ],
                away: Some("lunch".into()),
            })),
            "WHOIS Bob 2026-11-18T11:06:40.123Z 42 tls bob oper #general @#Rust :lunch",
        ),
        (
            ServerFrame::Whois(Box::new(Whois {
                nick: nick("carol"),
                since: time,
                idle: 0,
                tls: false,
                account: None,
                oper: false,
                rooms: vec![],
                away: None,
            })),
            "WHOIS carol 2026-11-18T11:06:40.123Z 0 plain * user",
        ),
        (
            ServerFrame::Whowas {
                nick: nick("Dave"),
                left: time,
                account: None,
            },
            "WHOWAS Dave 2026-11-18T11:06:40.123Z *",
        ),
        (
            ServerFrame::WhowasEnd {
                nick: nick("dave"),
                count: 1,
            },
            "WHOWASEND dave 1",
        ),
        (
            ServerFrame::Topic {
                room: room("#Rust"),
                nick: nick("alice"),
                time,
                id: 42,
                text: Some("borrow checking :: all day".into()),
            },
            "TOPIC #Rust alice 2026-11-18T11:06:40.123Z 42 :borrow checking :: all day",
        ),
        (
            ServerFrame::Topic {
                room: room("#Rust"),
                nick: nick("alice"),
                time,
                id: 43,
                text: None,
            },
            "TOPIC #Rust alice 2026-11-18T11:06:40.123Z 43",
        ),
        (
            ServerFrame::TopicIs {
                room: room("#Rust"),
                topic: Some(Topic {
                    by: nick("alice"),
                    time,
                    text: "borrow checking".into(),
                }),
            },
            "TOPICIS #Rust alice 2026-11-18T11:06:40.123Z :borrow checking",
        ),
        (
            ServerFrame::TopicIs {
                room: room("#Rust"),
                topic: None,
            },
            "TOPICIS #Rust",
        ),
        (
            ServerFrame::Motd {
                text: "be  nice: no spam".into(),
            },
            "MOTD :be  nice: no spam",
        ),
        (ServerFrame::Motd { text: "".into() }, "MOTD :"),
        (
            ServerFrame::Oper {
                name: "root admin".into(),
            },
            "OPER :root admin",
        ),
        (
            ServerFrame::Wallops {
                from: nick("alice"),
                time,
                text: "restart at noon".into(),
            },
            "WALLOPS alice 2026-11-18T11:06:40.123Z :restart at noon",
        ),
        (
            ServerFrame::Killed {
                nick: nick("bob"),
                reason: "killed by alice: spam".into(),
            },
            "KILLED bob :killed by alice: spam",
        ),
        (
            ServerFrame::Sban {
                target: "192.0.2.0/24".into(),
                until: Some(time),
                by: nick("root"),
                reason: Some("spam wave".into()),
            },
            "SBAN 192.0.2.0/24 2026-11-18T11:06:40.123Z root :spam wave",
        ),
        (
            ServerFrame::Sban {
                target: "eve!*@*".into(),
                until: None,
                by: nick("root"),
                reason: None,
            },
            "SBAN eve!*@* * root",
        ),
        (ServerFrame::SbanEnd { count: 2 }, "SBANEND 2"),
        (
            ServerFrame::Unsban {
                target: "eve!*@*".into(),
            },
            "UNSBAN eve!*@*",
        ),
        (ServerFrame::WallopsMode { on: true }, "WALLOPSMODE on"),
        (ServerFrame::WallopsMode { on: false }, "WALLOPSMODE off"),
    ];
    for (frame, line) in cases {
        assert_eq!(frame.to_string(), line);
        assert_eq!(frame.to_bytes(), format!("{line}\n").as_bytes());
        assert_eq!(ServerFrame::parse(line).as_ref(), Ok(&frame), "{line}");
    }
}

#[test]
fn unknown_error_codes_are_kept() {
    assert_eq!(
        ServerFrame::parse("ERR SOMETHING_NEW :text"),
        Ok(ServerFrame::Error {
            code: ErrorCode::Other("SOMETHING_NEW".into()),
            text: "text".into()
        })
    );
}

#[test]
fn malformed_frames_are_errors() {
    for line in [
        "",
        "WHAT",
        "MSG #a",
        "MSG #a bob nottime 1 :x",
        "MSG #a bob 2026-11-18T11:06:40.123Z :no id",
        "MSG #a bob 2026-11-18T11:06:40.123Z -1 :negative id",
        "HISTORY JOIN #a x 2026-11-18T11:06:40.000Z 1",
        "HISTORY",
        "HISTORYEND #a",
        "ACCOUNT alice lost",
        "JOIN a b c",
        "LAGGED #a x",
        "NICK extra",
        "ERR X",
        "ISAWAY bob",
        "WHOIS bob 2026-11-18T11:06:40.123Z 1 maybe *",
        "WHOIS bob 2026-11-18T11:06:40.123Z -1 plain *",
        "WHOIS bob 2026-11-18T11:06:40.123Z 1 plain * notaroom",
        "WHOWAS bob 2026-11-18T11:06:40.123Z",
        "WHOWASEND bob",
    ] {
        assert!(
            ServerFrame::parse(line).is_err(),
            "{line:?} should not parse"
        );
    }
}

#[test]
fn commands_parse() {
    assert_eq!(Command::parse("hello"), Ok(Command::Say("hello".into())));
    assert_eq!(
        Command::parse("//etc/passwd"),
        Ok(Command::Say("/etc/passwd".into()))
    );
    assert_eq!(
        Command::parse("/JOIN   #Rust "),
        Ok(Command::Join {
            room: room("#Rust"),
            key: None
        })
    );
    assert_eq!(
        Command::parse("/join #vault sesame"),
        Ok(Command::Join {
            room: room("#vault"),
            key: Some("sesame".into())
        })
    );
    assert_eq!(
        Command::parse("/mode #a +kl sesame 5"),
        Ok(Command::Mode {
            room: Some(room("#a")),
            changes: vec!["+kl".into(), "sesame".into(), "5".into()]
        })
    );
    assert_eq!(
        Command::parse("/mode"),
        Ok(Command::Mode {
            room: None,
            changes: vec![]
        })
    );
    assert_eq!(
        Command::parse("/devoice bob"),
        Ok(Command::Grant {
            room: None,
            nick: nick("bob"),
            status: Status::Voice,
            give: false
        })
    );
    assert_eq!(
        Command::parse("/op #a bob"),
        Ok(Command::Grant {
            room: Some(room("#a")),
            nick: nick("bob"),
            status: Status::Operator,
            give: true
        })
    );
    assert_eq!(
        Command::parse("/kick bob  stop  it"),
        Ok(Command::Kick {
            room: None,
            nick: nick("bob"),
            reason: Some("stop  it".into())
        })
    );
    assert_eq!(
        Command::parse("/ban #a"),
        Ok(Command::Ban {
            room: Some(room("#a")),
            mask: None
        })
    );
    assert_eq!(
        Command::parse("/unban *!*@host"),
        Ok(Command::Unban {
            room: None,
            mask: "*!*@host".into()
        })
    );
    assert_eq!(
        Command::parse("/invite bob #a"),
        Ok(Command::Invite {
            nick: nick("bob"),
            room: Some(room("#a"))
        })
    );
    assert!(matches!(
        Command::parse("/op"),
        Err(CommandError::Usage("/op [#room] nick"))
    ));
    assert!(matches!(
        Command::parse("/kick #a"),
        Err(CommandError::Usage(_))
    ));
    assert_eq!(
        Command::parse("/part #rust gone  fishing"),
        Ok(Command::Part {
            room: Some(room("#rust")),
            reason: Some("gone  fishing".into())
        })
    );
    assert_eq!(
        Command::parse("/part bye"),
        Ok(Command::Part {
            room: None,
            reason: Some("bye".into())
        })
    );
    assert_eq!(
        Command::parse("/msg bob  hi there"),
        Ok(Command::Msg {
            to: nick("bob"),
            text: "hi there".into()
        })
    );
    assert_eq!(Command::parse("/ping"), Ok(Command::Ping(None)));
    assert_eq!(Command::parse("/away"), Ok(Command::Away(None)));
    assert_eq!(
        Command::parse("/AWAY gone  fishing"),
        Ok(Command::Away(Some("gone  fishing".into())))
    );
    assert_eq!(
        Command::parse("/whois Bob"),
        Ok(Command::Whois(nick("Bob")))
    );
    assert_eq!(
        Command::parse("/whowas  bob "),
        Ok(Command::Whowas(nick("bob")))
    );
    let topic = |room: Option<&str>, set: Option<Option<&str>>| Command::Topic {
        room: room.map(|r| Room::new(r).unwrap()),
        set: set.map(|s| s.map(str::to_owned)),
    };
    assert_eq!(Command::parse("/topic"), Ok(topic(None, None)));
    assert_eq!(
        Command::parse("/TOPIC  #Rust "),
        Ok(topic(Some("#Rust"), None))
    );
    assert_eq!(
        Command::parse("/topic all  about  crabs"),
        Ok(topic(None, Some(Some("all  about  crabs"))))
    );
    assert_eq!(
        Command::parse("/topic #rust all about crabs"),
        Ok(topic(Some("#rust"), Some(Some("all about crabs"))))
    );
    assert_eq!(Command::parse("/topic :"), Ok(topic(None, Some(None))));
    assert_eq!(
        Command::parse("/topic #rust : "),
        Ok(topic(Some("#rust"), Some(None)))
    );
    assert_eq!(
        Command::parse("/topic :-)"),
        Ok(topic(None, Some(Some(":-)"))))
    );
    assert!(matches!(
        Command::parse("/topic #no/such room"),
        Err(CommandError::BadRoom { .. })
    ));
    assert!(matches!(
        Command::parse("/topic #rust \u{1b}[2J"),
        Err(CommandError::ControlChars('\u{1b}'))
    ));
    for set in [None, Some(None), Some(Some("hi there"))] {
        let cmd = topic(Some("#rust"), set);
        assert_eq!(Command::parse(&cmd.to_string()), Ok(cmd));
    }
    assert_eq!(
        Command::parse("/oper root correct  horse"),
        Ok(Command::Oper {
            name: "root".into(),
            password: chat_proto::Password::new("correct  horse")
        })
    );
    assert_eq!(
        Command::parse("/kill bob spamming  links"),
        Ok(Command::Kill {
            nick: nick("bob"),
            reason: Some("spamming  links".into())
        })
    );
    assert_eq!(
        Command::parse("/kill bob"),
        Ok(Command::Kill {
            nick: nick("bob"),
            reason: None
        })
    );
    assert_eq!(
        Command::parse("/wallops ON"),
        Ok(Command::WallopsMode(true))
    );
    assert_eq!(
        Command::parse("/wallops off"),
        Ok(Command::WallopsMode(false))
    );
    assert_eq!(
        Command::parse("/wallops restart at noon"),
        Ok(Command::Wallops("restart at noon".into()))
    );
    assert_eq!(Command::parse("/motd"), Ok(Command::Motd));
    assert_eq!(
        Command::parse("/sban 192.0.2.0/24 7d spam  wave"),
        Ok(Command::Sban {
            target: "192.0.2.0/24".into(),
            duration: Some(std::time::Duration::from_secs(7 * 86_400)),
            reason: Some("spam  wave".into())
        })
    );
    assert_eq!(
        Command::parse("/sban eve 7 days"),
        Ok(Command::Sban {
            target: "eve".into(),
            duration: None,
            reason: Some("7 days".into())
        })
    );
    assert_eq!(
        Command::parse("/sban eve 0s"),
        Ok(Command::Sban {
            target: "eve".into(),
            duration: Some(std::time::Duration::ZERO),
            reason: None
        })
    );
    assert_eq!(
        Command::parse("/sban eve 90m").unwrap().to_string(),
        "/sban eve 90m"
    );
    assert_eq!(
        Command::parse("/unsban eve"),
        Ok(Command::Unsban("eve".into()))
    );
    assert_eq!(Command::parse("/sbans"), Ok(Command::Sbans));
    for line in [
        "/whois",
        "/whois a b",
        "/whowas",
        "/oper",
        "/oper root",
        "/kill",
        "/wallops",
        "/motd x",
    ] {
        assert!(
            matches!(Command::parse(line), Err(CommandError::Usage(_))),
            "{line}"
        );
    }
    assert!(matches!(
        Command::parse("/whois #room"),
        Err(CommandError::BadNick { .. })
    ));
    let history = |target: Option<Target>, count, before| Command::History {
        target,
        count,
        before,
    };
    assert_eq!(Command::parse("/history"), Ok(history(None, None, None)));
    assert_eq!(
        Command::parse("/history 20 1234"),
        Ok(history(None, Some(20), Some(1234)))
    );
    assert_eq!(
        Command::parse("/history #Rust 5"),
        Ok(history(Some(Target::Room(room("#Rust"))), Some(5), None))
    );
    assert_eq!(
        Command::parse("/history bob"),
        Ok(history(Some(Target::Nick(nick("bob"))), None, None))
    );
    for bad in [
        "/history 0",
        "/history x y",
        "/history 5 6 7",
        "/history 5 -1",
    ] {
        assert!(
            matches!(Command::parse(bad), Err(CommandError::Usage(_))),
            "{bad}"
        );
    }
    assert_eq!(
        Command::parse("/register  correct horse "),
        Ok(Command::Register(Password::new("correct horse ")))
    );
    assert_eq!(
        format!("{:?}", Command::parse("/password hunter22").unwrap()),
        "Password(Password(<hidden>))"
    );
    assert!(matches!(
        Command::parse("/register"),
        Err(CommandError::Usage(_))
    ));
    assert_eq!(Command::parse("   "), Err(CommandError::Empty));
    assert_eq!(
        Command::parse("/frobnicate x"),
        Err(CommandError::Unknown("frobnicate".into()))
    );
    assert_eq!(
        Command::parse("/join"),
        Err(CommandError::Usage("/join #room [key]"))
    );
    assert_eq!(
        Command::parse("/join #a #b"),
        Err(CommandError::Usage("/join #room [key]"))
    );
    assert_eq!(
        Command::parse("/msg bob"),
        Err(CommandError::Usage("/msg nick text"))
    );
    assert_eq!(
        Command::parse("/me"),
        Err(CommandError::Usage("/me action"))
    );
    assert_eq!(
        Command::parse("/rooms now"),
        Err(CommandError::Usage("/rooms"))
    );
    assert!(matches!(
        Command::parse("/join rust"),
        Err(CommandError::BadRoom { .. })
    ));
    assert!(matches!(
        Command::parse("/nick 9lives"),
        Err(CommandError::BadNick { .. })
    ));
    assert_eq!(
        Command::parse("hi\x1b[2J"),
        Err(CommandError::ControlChars('\x1b'))
    );
    assert_eq!(
        Command::parse("/me \u{202e}olleh"),
        Err(CommandError::ControlChars('\u{202e}'))
    );
    assert_eq!(
        Command::parse("/frob").unwrap_err().code(),
        ErrorCode::UnknownCommand
    );
}

// ---- proptest strategies ----

fn arb_nick() -> impl Strategy<Value = Nick> {
    "[A-Za-z\\[\\]\\\\`_^{|}][A-Za-z0-9\\-\\[\\]\\\\`_^{|}]{0,31}"
        .prop_map(|s| Nick::new(&s).unwrap())
}

fn arb_room() -> impl Strategy<Value = Room> {
    "#[A-Za-z0-9._\\-]{1,50}".prop_map(|s| Room::new(&s).unwrap())
}

fn arb_time() -> impl Strategy<Value = Timestamp> {
    // Years 1970 to about 2500, millisecond precision as on the wire.
    (0i64..16_725_225_600_000).prop_map(t)
}

/// Text as users send it: no control characters, not starting with white space.
fn arb_text() -> impl Strategy<Value = String> {
    "[^\\s\\p{Cc}\u{202a}-\u{202e}\u{2066}-\u{2069}][^\\p{Cc}\u{202a}-\u{202e}\u{2066}-\u{2069}]{0,40}"
}

/// Anything a server may put in a trailing text: any char but newline and carriage return.
fn arb_trailing() -> impl Strategy<Value = String> {
    "[^\r\n]{0,40}"
}

fn arb_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        proptest::sample::select(ErrorCode::KNOWN.to_vec()),
        "[A-Z][A-Z_]{0,15}".prop_map(|s| {
            let known = ErrorCode::KNOWN.iter().find(|c| c.as_str() == s).cloned();
            known.unwrap_or(ErrorCode::Other(s))
        }),
    ]
}

fn arb_frame() -> impl Strategy<Value = ServerFrame> {
    let opt = || proptest::option::of(arb_trailing());
    prop_oneof![
        Just(ServerFrame::NickPrompt),
        (arb_nick(), arb_trailing()).prop_map(|(nick, text)| ServerFrame::Welcome { nick, text }),
        (
            arb_room(),
            arb_nick(),
            arb_time(),
            any::<u64>(),
            arb_trailing()
        )
            .prop_map(|(room, from, time, id, text)| ServerFrame::Message {
                room,
                from,
                time,
                id,
                text
            }),
        (
            arb_room(),
            arb_nick(),
            arb_time(),
            any::<u64>(),
            arb_trailing()
        )
            .prop_map(|(room, from, time, id, text)| ServerFrame::Action {
                room,
                from,
                time,
                id,
                text
            }),
        (
            arb_nick(),
            arb_nick(),
            arb_time(),
            any::<u64>(),
            arb_trailing()
        )
            .prop_map(|(from, to, time, id, text)| ServerFrame::Private {
                from,
                to,
                time,
                id,
                text,
            }),
        (arb_room(), arb_nick(), arb_time(), any::<u64>()).prop_map(|(room, nick, time, id)| {
            ServerFrame::Join {
                room,
                nick,
                time,
                id,
            }
        }),
        (arb_room(), arb_nick(), arb_time(), any::<u64>(), opt()).prop_map(
            |(room, nick, time, id, reason)| ServerFrame::Part {
                room,
                nick,
                time,
                id,
                reason,
            }
        ),
        (arb_room(), arb_nick(), arb_time(), any::<u64>(), opt()).prop_map(
            |(room, nick, time, id, reason)| ServerFrame::Quit {
                room,
                nick,
                time,
                id,
                reason,
            }
        ),
        (
            proptest::option::of(arb_room()),
            arb_nick(),
            arb_nick(),
            arb_time(),
            any::<u64>()
        )
            .prop_map(|(room, old, new, time, id)| ServerFrame::Rename {
                room,
                old,
                new,
                time,
                id,
            }),
        Just(ServerFrame::PassPrompt),
        (
            prop_oneof![
                arb_room().prop_map(Target::Room),
                arb_nick().prop_map(Target::Nick)
            ],
            any::<usize>()
        )
            .prop_map(|(target, count)| ServerFrame::HistoryEnd { target, count }),
        (
            arb_nick(),
            proptest::sample::select(vec![
                AccountStatus::Registered,
                AccountStatus::PasswordChanged,
                AccountStatus::Identified
            ])
        )
            .prop_map(|(nick, status)| ServerFrame::Account { nick, status }),
        (arb_room(), any::<u64>()).prop_map(|(room, missed)| ServerFrame::Lagged { room, missed }),
        proptest::option::of(arb_room()).prop_map(|room| ServerFrame::Current { room }),
        (
            arb_room(),
            proptest::collection::vec((arb_status(), arb_nick()), 0..8)
        )
            .prop_map(|(room, members)| ServerFrame::Members {
                room,
                members: members
                    .into_iter()
                    .map(|(status, nick)| RoomMember { status, nick })
                    .collect(),
            }),
        proptest::collection::vec((arb_room(), any::<usize>()), 0..8)
            .prop_map(|rooms| ServerFrame::Rooms { rooms }),
        opt().prop_map(|token| ServerFrame::Pong { token }),
        arb_trailing().prop_map(|text| ServerFrame::Help { text }),
        (arb_code(), arb_trailing()).prop_map(|(code, text)| ServerFrame::Error { code, text }),
        arb_trailing().prop_map(|reason| ServerFrame::Bye { reason }),
        (arb_nick(), opt()).prop_map(|(nick, text)| ServerFrame::Away { nick, text }),
        (arb_nick(), arb_trailing()).prop_map(|(nick, text)| ServerFrame::IsAway { nick, text }),
        (
            (arb_nick(), arb_time(), any::<u64>(), any::<bool>()),
            (proptest::option::of(arb_nick()), any::<bool>()),
            proptest::collection::vec((arb_status(), arb_room()), 0..8),
            opt()
        )
            .prop_map(|((nick, since, idle, tls), (account, oper), rooms, away)| {
                ServerFrame::Whois(Box::new(Whois {
                    nick,
                    since,
                    idle,
                    tls,
                    account,
                    oper,
                    rooms,
                    away,
                }))
            }),
        (arb_nick(), arb_time(), proptest::option::of(arb_nick())).prop_map(
            |(nick, left, account)| ServerFrame::Whowas {
                nick,
                left,
                account
            }
        ),
        (arb_nick(), any::<usize>())
            .prop_map(|(nick, count)| ServerFrame::WhowasEnd { nick, count }),
        (arb_room(), arb_nick(), arb_time(), any::<u64>(), opt()).prop_map(
            |(room, nick, time, id, text)| ServerFrame::Topic {
                room,
                nick,
                time,
                id,
                text,
            }
        ),
        (
            arb_room(),
            proptest::option::of((arb_nick(), arb_time(), arb_trailing()))
        )
            .prop_map(|(room, topic)| ServerFrame::TopicIs {
                room,
                topic: topic.map(|(by, time, text)| Topic { by, time, text }),
            }),
        (
            arb_room(),
            arb_nick(),
            arb_time(),
            any::<u64>(),
            arb_trailing()
        )
            .prop_map(|(room, nick, time, id, changes)| ServerFrame::Mode {
                room,
                nick,
                time,
                id,
                changes,
            }),
        (arb_room(), arb_trailing()).prop_map(|(room, modes)| ServerFrame::Modes { room, modes }),
        (
            (arb_room(), arb_nick(), arb_nick()),
            arb_time(),
            any::<u64>(),
            arb_trailing()
        )
            .prop_map(
                |((room, nick, target), time, id, reason)| ServerFrame::Kick {
                    room,
                    nick,
                    target,
                    time,
                    id,
                    reason,
                }
            ),
        (arb_room(), arb_nick(), arb_nick(), arb_time(), any::<u64>()).prop_map(
            |(room, nick, target, time, id)| ServerFrame::Invite {
                room,
                nick,
                target,
                time,
                id,
            }
        ),
        (arb_room(), "[!-~&&[^:]][!-~]{0,30}", arb_nick(), arb_time()).prop_map(
            |(room, mask, by, time)| ServerFrame::Ban {
                room,
                mask,
                by,
                time,
            }
        ),
        (arb_room(), any::<usize>()).prop_map(|(room, count)| ServerFrame::BanEnd { room, count }),
    ]
}

fn arb_status() -> impl Strategy<Value = Status> {
    proptest::sample::select(vec![Status::Member, Status::Voice, Status::Operator])
}

/// Every frame, and history wrapping the events that history holds.
fn arb_any_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        4 => arb_frame(),
        1 => arb_frame()
            .prop_filter("history holds messages", |f| matches!(
                f,
                ServerFrame::Message { .. } | ServerFrame::Action { .. } | ServerFrame::Private { .. }
            ))
            .prop_map(|f| ServerFrame::History(Box::new(f))),
    ]
}

fn arb_command() -> impl Strategy<Value = Command> {
    let opt = || proptest::option::of(arb_text());
    prop_oneof![
        arb_text().prop_map(Command::Say),
        "/[^\\p{Cc}\u{202a}-\u{202e}\u{2066}-\u{2069}]{0,20}".prop_map(Command::Say),
        (arb_room(), proptest::option::of("[!-\"$-~][!-~]{0,20}"))
            .prop_map(|(room, key)| Command::Join { room, key }),
        (
            proptest::option::of(arb_room()),
            proptest::collection::vec("[!-\"$-~][!-~]{0,10}", 0..4)
        )
            .prop_map(|(room, changes)| Command::Mode { room, changes }),
        (
            proptest::option::of(arb_room()),
            arb_nick(),
            proptest::sample::select(vec![Status::Operator, Status::Voice]),
            any::<bool>()
        )
            .prop_map(|(room, nick, status, give)| Command::Grant {
                room,
                nick,
                status,
                give
            }),
        (proptest::option::of(arb_room()), arb_nick(), opt())
            .prop_map(|(room, nick, reason)| Command::Kick { room, nick, reason }),
        (
            proptest::option::of(arb_room()),
            proptest::option::of("[!-\"$-~][!-~]{0,20}")
        )
            .prop_map(|(room, mask)| Command::Ban { room, mask }),
        (proptest::option::of(arb_room()), "[!-\"$-~][!-~]{0,20}")
            .prop_map(|(room, mask)| Command::Unban { room, mask }),
        (arb_nick(), proptest::option::of(arb_room()))
            .prop_map(|(nick, room)| Command::Invite { nick, room }),
        (proptest::option::of(arb_room()), opt()).prop_filter_map(
            "reason would read as a room",
            |(room, reason)| {
                let ambiguous =
                    room.is_none() && reason.as_deref().is_some_and(|r| r.starts_with('#'));
                (!ambiguous).then_some(Command::Part { room, reason })
            }
        ),
        Just(Command::Rooms),
        proptest::option::of(arb_room()).prop_map(Command::Who),
        (arb_nick(), arb_text()).prop_map(|(to, text)| Command::Msg { to, text }),
        arb_text().prop_map(Command::Me),
        arb_nick().prop_map(Command::Nick),
        opt().prop_map(Command::Quit),
        Just(Command::Help),
        opt().prop_map(Command::Ping),
        "[!-~][ -~]{0,20}".prop_map(|p| Command::Register(Password::new(p))),
        "[!-~][ -~]{0,20}".prop_map(|p| Command::Password(Password::new(p))),
        (
            proptest::option::of(prop_oneof![
                arb_room().prop_map(Target::Room),
                arb_nick().prop_map(Target::Nick)
            ]),
            proptest::option::of(1usize..1000),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(|(target, count, id, paged)| Command::History {
                target,
                count: count.or(paged.then_some(chat_proto::command::DEFAULT_HISTORY)),
                before: paged.then_some(id),
            }),
        opt().prop_map(Command::Away),
        arb_nick().prop_map(Command::Whois),
        arb_nick().prop_map(Command::Whowas),
        (
            proptest::option::of(arb_room()),
            proptest::option::of(opt())
        )
            .prop_filter_map("text would read as a room or a clear", |(room, set)| {
                let text = set.as_ref().and_then(|t| t.as_deref());
                let ambiguous = text
                    .is_some_and(|t| t.trim_end() == ":" || (room.is_none() && t.starts_with('#')));
                (!ambiguous).then_some(Command::Topic { room, set })
            }),
    ]
}

proptest! {
    /// The fast `MEMBERS` encoder writes exactly the frames of the slow path.
    #[test]
    fn members_encode_as_their_frames(
        room in arb_room(),
        members in proptest::collection::vec((arb_status(), arb_nick()), 0..40),
        per_frame in 1usize..12,
    ) {
        let mut fast = bytes::BytesMut::new();
        ServerFrame::encode_members(&room, members.iter().map(|(s, n)| (*s, n)), per_frame, &mut fast);
        let frames: Vec<ServerFrame> = members
            .chunks(per_frame)
            .map(|chunk| ServerFrame::Members {
                room: room.clone(),
                members: chunk.iter().map(|(status, nick)| RoomMember { status: *status, nick: nick.clone() }).collect(),
            })
            .collect();
        prop_assert_eq!(&fast[..], &ServerFrame::encode_all(&frames)[..]);
    }

    #[test]
    fn server_frame_round_trip(frame in arb_any_frame()) {
        let line = frame.to_string();
        prop_assert!(!line.contains('\n'));
        prop_assert_eq!(ServerFrame::parse(&line), Ok(frame.clone()));
        // And through the codec, as a client reads it.
        let mut buf = bytes::BytesMut::from(&frame.to_bytes()[..]);
        let decoded = LineCodec::new(chat_proto::CLIENT_MAX_LINE).decode(&mut buf).unwrap();
        prop_assert_eq!(decoded, Some(Ok(line)));
    }

    #[test]
    fn command_round_trip(cmd in arb_command()) {
        let line = cmd.to_string();
        prop_assert_eq!(Command::parse(&line), Ok(cmd));
    }

    #[test]
    fn decoder_never_panics_and_keeps_its_promises(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16),
        max in 1usize..32,
    ) {
        let mut codec = LineCodec::new(max);
        let mut buf = bytes::BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(&chunk);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                if let Ok(line) = item {
                    prop_assert!(line.len() <= max);
                    prop_assert!(!line.contains('\n'));
                }
            }
            // Never more buffered than one line could need.
            prop_assert!(buf.len() <= max + 2);
        }
        while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
            if let Ok(line) = item {
                prop_assert!(line.len() <= max);
            }
        }
    }

    #[test]
    fn parsers_never_panic(line in "\\PC{0,80}") {
        let _ = ServerFrame::parse(&line);
        let _ = Command::parse(&line);
    }
}

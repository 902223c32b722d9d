//! IRCv3 `draft/chathistory`: `CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN` over
//! `msgid=` (the core's event id) and `timestamp=` references, answered from the store
//! in a `chathistory` batch.
//!
//! The references bound the store's query directly: a msgid is an event id, and ids and
//! times grow together within a room, so neither needs looking up first.

use crate::core::member::{HISTORY_MAX, HistoryOf, Page};
use crate::core::store::Span;
use chat_proto::{Nick, Room};

/// What a `CHATHISTORY` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) target: HistoryOf,
    pub(crate) page: Page,
    pub(crate) limit: usize,
}

/// Why a `CHATHISTORY` cannot be answered: `FAIL CHATHISTORY <code> <context> :<text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub(crate) code: &'static str,
    /// The parameters that say what failed (the subcommand, and the target or
    /// reference).
    pub(crate) context: String,
    pub(crate) text: &'static str,
}

/// A message reference: `msgid=<id>` or `timestamp=<RFC 3339 time>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ref {
    Id(u64),
    /// Milliseconds since the epoch.
    Time(i64),
}

impl Ref {
    fn parse(word: &str) -> Option<Ref> {
        if let Some(id) = word.strip_prefix("msgid=") {
            return id.parse().ok().map(Ref::Id);
        }
        let time: jiff::Timestamp = word.strip_prefix("timestamp=")?.parse().ok()?;
        Some(Ref::Time(time.as_millisecond()))
    }

    /// The messages strictly before it.
    fn before(self, span: Span) -> Span {
        match self {
            Ref::Id(id) => Span {
                before_id: id,
                ..span
            },
            Ref::Time(ms) => Span {
                before_ms: ms,
                ..span
            },
        }
    }

    /// The messages strictly after it.
    fn after(self, span: Span) -> Span {
        match self {
            Ref::Id(id) => Span {
                after_id: id,
                ..span
            },
            Ref::Time(ms) => Span {
                after_ms: ms,
                ..span
            },
        }
    }

    /// It and the messages after it.
    fn from(self) -> Span {
        match self {
            Ref::Id(id) => Ref::Id(id.saturating_sub(1)).after(Span::ALL),
            Ref::Time(ms) => Ref::Time(ms.saturating_sub(1)).after(Span::ALL),
        }
    }
}

/// Reads `CHATHISTORY`'s parameters. `TARGETS` is not offered.
pub(crate) fn parse(params: &[String]) -> Result<Request, Fail> {
    let sub = params
        .first()
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_default();
    let fail = |code, context: &str, text| Fail {
        code,
        context: if context.is_empty() {
            sub.clone()
        } else {
            format!("{sub} {context}")
        },
        text,
    };
    let arity = match sub.as_str() {
        "LATEST" | "BEFORE" | "AFTER" | "AROUND" => 4,
        "BETWEEN" => 5,
        "" => return Err(fail("NEED_MORE_PARAMS", "", "Missing parameters")),
        _ => return Err(fail("INVALID_PARAMS", "", "Unknown subcommand")),
    };
    if params.len() < arity {
        return Err(fail("NEED_MORE_PARAMS", "", "Missing parameters"));
    }
    let name = params[1].as_str();
    let target = if name.starts_with('#') {
        Room::new(name).map(HistoryOf::Room).ok()
    } else {
        Nick::new(name).map(HistoryOf::Nick).ok()
    }
    .ok_or_else(|| fail("INVALID_TARGET", name, "Messages could not be retrieved"))?;
    let limit = match params[arity - 1].parse::<usize>() {
        Ok(0) => HISTORY_MAX,
        Ok(n) => n.min(HISTORY_MAX),
        Err(_) => return Err(fail("INVALID_PARAMS", &params[arity - 1], "Invalid limit")),
    };
    let reference = |word: &String| {
        Ref::parse(word).ok_or_else(|| fail("INVALID_PARAMS", word, "Invalid message reference"))
    };
    let page = match sub.as_str() {
        "LATEST" if params[2] == "*" => Page::Span {
            span: Span::ALL,
            latest: true,
        },
        "LATEST" => Page::Span {
            span: reference(&params[2])?.after(Span::ALL),
            latest: true,
        },
        "BEFORE" => Page::Span {
            span: reference(&params[2])?.before(Span::ALL),
            latest: true,
        },
        "AFTER" => Page::Span {
            span: reference(&params[2])?.after(Span::ALL),
            latest: false,
        },
        "AROUND" => {
            let at = reference(&params[2])?;
            Page::Around {
                older: at.before(Span::ALL),
                newer: at.from(),
            }
        }
        _ => {
            // BETWEEN: from the first reference towards the second, either way.
            let (a, b) = (reference(&params[2])?, reference(&params[3])?);
            if std::mem::discriminant(&a) != std::mem::discriminant(&b) {
                return Err(fail(
                    "INVALID_PARAMS",
                    &params[3],
                    "Both references must be of one type",
                ));
            }
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            Page::Span {
                span: high.before(low.after(Span::ALL)),
                latest: a > b,
            }
        }
    };
    Ok(Request {
        target,
        page,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Request, Fail> {
        let params: Vec<String> = line.split(' ').map(str::to_owned).collect();
        parse(&params)
    }

    fn span(line: &str) -> (Span, bool) {
        match parse_line(line).unwrap().page {
            Page::Span { span, latest } => (span, latest),
            Page::Around { .. } => panic!("{line} is no span"),
        }
    }

    #[test]
    fn references_bound_the_span() {
        assert_eq!(span("LATEST #a * 10"), (Span::ALL, true));
        let (s, latest) = span("latest #a msgid=7 10");
        assert!(latest && s.after_id == 7 && s.before_id == u64::MAX);
        let (s, latest) = span("BEFORE #a msgid=7 10");
        assert!(latest && s.before_id == 7 && s.after_id == 0);
        let (s, latest) = span("AFTER #a timestamp=1970-01-01T00:00:01.500Z 10");
        assert!(!latest && s.after_ms == 1_500 && s.before_ms == i64::MAX);
        let (s, latest) = span("BETWEEN #a msgid=3 msgid=9 10");
        assert!(!latest && s.after_id == 3 && s.before_id == 9);
        let (s, latest) = span("BETWEEN #a msgid=9 msgid=3 10");
        assert!(latest && s.after_id == 3 && s.before_id == 9);
        let around = parse_line("AROUND bob msgid=5 0").unwrap();
        assert_eq!(around.target, HistoryOf::Nick(Nick::new("bob").unwrap()));
        assert_eq!(around.limit, HISTORY_MAX);
        let Page::Around { older, newer } = around.page else {
            panic!("around");
        };
        assert_eq!((older.before_id, newer.after_id), (5, 4));
    }

    #[test]
    fn bad_requests_fail_with_their_code() {
        let code = |line: &str| parse_line(line).unwrap_err().code;
        assert_eq!(code("TARGETS x y 5"), "INVALID_PARAMS");
        assert_eq!(code("BEFORE #a msgid=1"), "NEED_MORE_PARAMS");
        assert_eq!(code("BEFORE #a msgid=x 5"), "INVALID_PARAMS");
        assert_eq!(code("BEFORE #a when 5"), "INVALID_PARAMS");
        assert_eq!(code("BEFORE #a msgid=1 many"), "INVALID_PARAMS");
        assert_eq!(code("BEFORE #a* msgid=1 5"), "INVALID_TARGET");
        assert_eq!(
            code("BETWEEN #a msgid=1 timestamp=2026-01-01T00:00:00Z 5"),
            "INVALID_PARAMS"
        );
        let fail = parse_line("BEFORE #a* msgid=1 5").unwrap_err();
        assert_eq!(fail.context, "BEFORE #a*");
        assert_eq!(parse_line("LATEST #a * 9999").unwrap().limit, HISTORY_MAX);
    }
}

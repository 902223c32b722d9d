//! The canonical form of an event's kind: the `what` code and the `text` and `target`
//! fields that the store keeps in its columns, and the kind rebuilt from them. One mapping, so that every reader of a kept event agrees.

use super::event::Kind;
use chat_proto::name::Nick;

/// An event's kind as a number. Never renumber one that has shipped: it is in every
/// database (the `events.what` column).
pub(crate) mod what {
    pub(crate) const MESSAGE: i64 = 0;
    pub(crate) const ACTION: i64 = 1;
    pub(crate) const JOIN: i64 = 2;
    pub(crate) const PART: i64 = 3;
    pub(crate) const QUIT: i64 = 4;
    pub(crate) const RENAME: i64 = 5;
    pub(crate) const TOPIC: i64 = 6;
    pub(crate) const MODE: i64 = 7;
    pub(crate) const KICK: i64 = 8;
    pub(crate) const INVITE: i64 = 9;
    pub(crate) const AWAY: i64 = 10;
    pub(crate) const ACCOUNT: i64 = 11;
    pub(crate) const REALNAME: i64 = 12;
    pub(crate) const NOTICE: i64 = 13;
}

/// A kind's `what`, `text` and `target` fields.
pub(crate) fn fields(kind: &Kind) -> (i64, Option<&str>, Option<&str>) {
    match kind {
        Kind::Message { text } => (what::MESSAGE, Some(text), None),
        Kind::Action { text } => (what::ACTION, Some(text), None),
        Kind::Notice { text } => (what::NOTICE, Some(text), None),
        Kind::Join => (what::JOIN, None, None),
        Kind::Part { reason } => (what::PART, reason.as_deref(), None),
        Kind::Quit { reason } => (what::QUIT, reason.as_deref(), None),
        Kind::Rename { new } => (what::RENAME, None, Some(new.as_str())),
        Kind::Topic { text } => (what::TOPIC, text.as_deref(), None),
        Kind::Mode { changes } => (what::MODE, Some(changes), None),
        Kind::Kick { target, reason } => (what::KICK, Some(reason), Some(target.as_str())),
        Kind::Invite { target } => (what::INVITE, None, Some(target.as_str())),
        Kind::Away { text } => (what::AWAY, text.as_deref(), None),
        // The account is the source's own field.
        Kind::Account => (what::ACCOUNT, None, None),
        Kind::Realname { realname } => (what::REALNAME, Some(realname), None),
    }
}

/// The kind of `what` with its `text` and `target` (for a private event, `target` is
/// the recipient, not the kind's); `None` for a kind this program does not know (a
/// newer one's) or a target that is no longer a valid nickname.
pub(crate) fn kind(
    what: i64,
    text: Option<String>,
    target: Option<String>,
    private: bool,
) -> Option<Kind> {
    let nick_of = |s: Option<String>| s.and_then(|s| Nick::new(&s).ok());
    Some(match what {
        what::MESSAGE => Kind::Message {
            text: text.unwrap_or_default(),
        },
        what::ACTION => Kind::Action {
            text: text.unwrap_or_default(),
        },
        what::NOTICE => Kind::Notice {
            text: text.unwrap_or_default(),
        },
        what::JOIN => Kind::Join,
        what::PART => Kind::Part { reason: text },
        what::QUIT => Kind::Quit { reason: text },
        what::RENAME if !private => Kind::Rename {
            new: nick_of(target)?,
        },
        what::TOPIC => Kind::Topic { text },
        what::MODE => Kind::Mode {
            changes: text.unwrap_or_default(),
        },
        what::KICK if !private => Kind::Kick {
            target: nick_of(target)?,
            reason: text.unwrap_or_default(),
        },
        what::INVITE if !private => Kind::Invite {
            target: nick_of(target)?,
        },
        what::AWAY => Kind::Away { text },
        what::ACCOUNT => Kind::Account,
        what::REALNAME => Kind::Realname {
            realname: text.unwrap_or_default(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_comes_back_from_its_fields() {
        let nick = || Nick::new("bob").unwrap();
        let kinds = [
            Kind::Message { text: "hi".into() },
            Kind::Action {
                text: "waves".into(),
            },
            Kind::Notice {
                text: "note".into(),
            },
            Kind::Join,
            Kind::Part { reason: None },
            Kind::Part {
                reason: Some("bye".into()),
            },
            Kind::Quit {
                reason: Some("gone".into()),
            },
            Kind::Rename { new: nick() },
            Kind::Topic { text: None },
            Kind::Topic {
                text: Some("t".into()),
            },
            Kind::Mode {
                changes: "+m".into(),
            },
            Kind::Kick {
                target: nick(),
                reason: "r".into(),
            },
            Kind::Invite { target: nick() },
            Kind::Away {
                text: Some("lunch".into()),
            },
            Kind::Account,
            Kind::Realname {
                realname: "Bob".into(),
            },
        ];
        for original in kinds {
            let (what, text, target) = fields(&original);
            let back = kind(what, text.map(Into::into), target.map(Into::into), false);
            assert_eq!(back.as_ref(), Some(&original));
        }
        assert_eq!(kind(99, None, None, false), None);
        assert_eq!(
            kind(what::KICK, None, Some("not a nick!".into()), false),
            None
        );
    }
}

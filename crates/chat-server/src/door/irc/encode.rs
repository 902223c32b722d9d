//! The IRC door's wire form of the core's values: events as IRC lines (encoded once per
//! event, see [`Event::encoded`]), refusals as numerics, and the [`Output`] a member
//! writes through.
//!
//! An event's IRC bytes always begin with its tags, `@time=…;msgid=… `, so that one
//! encoding serves every client: one that negotiated `message-tags` gets the whole line,
//! one with only `server-time` gets `@time=…` and the rest, one with neither gets the
//! line after the tags.

use super::caps::{self, Caps};
use super::label::{self, Batches};
use crate::core::error::{Busy, Refusal};
use crate::core::event::{Event, Flavour, Kind, RoomName, Scope, Source};
use crate::core::hub::{Members, Topic};
use crate::core::member::{AccountChange, HistoryOf, Output};
use crate::core::room::Standing;
use crate::net::driver::Expected;
use bytes::BytesMut;
use chat_proto::Nick;
use std::collections::VecDeque;
use std::fmt::Write as _;

/// The most bytes of a line the door writes, CRLF included (names lists are cut to fit).
const LINE: usize = chat_proto::irc::MAX_LINE;

/// `nick!user@host` of a source: its door's ident, or for a session without one (the
/// native door's) its nickname as the user and the server's name as the host.
pub(crate) fn mask(source: &Source, server: &str) -> String {
    let mut mask = String::new();
    write_mask(&mut mask, source, server);
    mask
}

/// Appends [`mask`] to `into`.
pub(crate) fn write_mask(into: &mut String, source: &Source, server: &str) {
    let _ = match &source.ident {
        Some(ident) => write!(into, "{}!{}@{}", source.nick, ident.user, ident.host),
        None => write!(into, "{}!{}@{server}", source.nick, source.nick),
    };
}

/// Appends the real name IRC shows for a source: its `USER`'s (or `SETNAME`'s), or for
/// a session of another door its nickname.
pub(crate) fn write_realname(into: &mut String, source: &Source) {
    match &source.ident {
        Some(ident) => into.push_str(&ident.realname),
        None => into.push_str(source.nick.as_str()),
    }
}

/// The length of a `JOIN`'s ` <account> :<realname>` (`extended-join`), CRLF included:
/// what a client without the capability does not get. The tags and the mask have no
/// space, so the first ` JOIN ` is the verb.
fn extended_join_suffix(bytes: &[u8], room: &RoomName) -> Option<usize> {
    let verb = memchr::memmem::find(bytes, b" JOIN ")?;
    bytes
        .len()
        .checked_sub(verb + " JOIN ".len() + room.name.as_str().len())
}

/// An event's IRC bytes, encoded by the first reader that needs them (counted in
/// `encodings`).
fn encoded<'e>(event: &'e Event, encodings: &mut u64, server: &str) -> &'e [u8] {
    event.encoded(Flavour::Irc, |event| {
        *encodings += 1;
        encode(event, server)
    })
}

/// An event's line with its tags and CRLF, or nothing for one IRC does not show.
pub(crate) fn encode(event: &Event, server: &str) -> Box<[u8]> {
    let mut line = String::with_capacity(event.weight());
    let _ = write!(line, "@time={};msgid={}", Time(&event.time), event.id);
    if let Some(account) = &event.source.account {
        let _ = write!(line, ";account={account}");
    }
    let _ = write!(line, " :{} ", mask(&event.source, server));
    let verb_at = line.len();
    match (&event.scope, &event.kind) {
        (Scope::Room(room), Kind::Message { text }) => {
            let _ = write!(line, "PRIVMSG {} :{text}", room.name);
        }
        (Scope::Room(room), Kind::Action { text }) => {
            let _ = write!(line, "PRIVMSG {} :\x01ACTION {text}\x01", room.name);
        }
        (Scope::Private { to }, Kind::Message { text }) => {
            let _ = write!(line, "PRIVMSG {to} :{text}");
        }
        (Scope::Room(room), Kind::Notice { text }) => {
            let _ = write!(line, "NOTICE {} :{text}", room.name);
        }
        (Scope::Private { to }, Kind::Notice { text }) => {
            let _ = write!(line, "NOTICE {to} :{text}");
        }
        (Scope::Private { to }, Kind::Action { text }) => {
            let _ = write!(line, "PRIVMSG {to} :\x01ACTION {text}\x01");
        }
        // The extended form (`extended-join`): clients without it get the line cut
        // after the room (see `Irc::event`).
        (Scope::Room(room), Kind::Join) => {
            let account = event.source.account.as_deref().unwrap_or("*");
            let _ = write!(line, "JOIN {} {account} :", room.name);
            write_realname(&mut line, &event.source);
        }
        (Scope::Room(room), Kind::Part { reason }) => {
            let _ = write!(line, "PART {}", room.name);
            if let Some(reason) = reason {
                let _ = write!(line, " :{reason}");
            }
        }
        (Scope::Room(_), Kind::Quit { reason }) => {
            let _ = write!(line, "QUIT :{}", reason.as_deref().unwrap_or(""));
        }
        (_, Kind::Rename { new }) => {
            let _ = write!(line, "NICK {new}");
        }
        (Scope::Room(room), Kind::Topic { text }) => {
            let _ = write!(
                line,
                "TOPIC {} :{}",
                room.name,
                text.as_deref().unwrap_or("")
            );
        }
        (Scope::Room(room), Kind::Mode { changes }) => {
            let _ = write!(line, "MODE {} {changes}", room.name);
        }
        (Scope::Room(room), Kind::Kick { target, reason }) => {
            let _ = write!(line, "KICK {} {target} :{reason}", room.name);
        }
        (Scope::Room(room), Kind::Invite { target }) => {
            let _ = write!(line, "INVITE {target} {}", room.name);
        }
        (Scope::Wallops, Kind::Message { text }) => {
            let _ = write!(line, "WALLOPS :{text}");
        }
        (Scope::Room(_), Kind::Account) => {
            let account = event.source.account.as_deref().unwrap_or("*");
            let _ = write!(line, "ACCOUNT {account}");
        }
        (Scope::Room(_), Kind::Realname { realname }) => {
            let _ = write!(line, "SETNAME :{realname}");
        }
        (Scope::Room(_), Kind::Away { text }) => {
            line.push_str("AWAY");
            if let Some(text) = text {
                let _ = write!(line, " :{text}");
            }
        }
        _ => return Box::default(),
    }
    debug_assert!(line.len() > verb_at);
    line.push_str("\r\n");
    line.into_bytes().into_boxed_slice()
}

/// A time as IRCv3's `server-time` writes it: UTC, milliseconds, `Z`.
pub(crate) struct Time<'a>(pub(crate) &'a jiff::Timestamp);

impl std::fmt::Display for Time<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}", self.0)
    }
}

/// Appends the part of an event's bytes (`@time=…;msgid=…[;account=…] <line>`) a client
/// with `caps` gets: all of it with `message-tags`; else `time` with `server-time` and
/// `account` with `account-tag`; else the line alone.
fn write_for_caps(bytes: &[u8], caps: Caps, out: &mut BytesMut) {
    if caps.has(caps::MESSAGE_TAGS) {
        out.extend_from_slice(bytes);
        return;
    }
    let Some(tags_end) = memchr::memchr(b' ', bytes) else {
        out.extend_from_slice(bytes);
        return;
    };
    if !caps.has(caps::ANY_TAG) {
        // The most common client: the line alone, no tag looked at.
        out.extend_from_slice(&bytes[tags_end + 1..]);
        return;
    }
    let tags = &bytes[1..tags_end];
    let mut first = true;
    for tag in tags.split(|b| *b == b';') {
        let wanted = (tag.starts_with(b"time=") && caps.has(caps::SERVER_TIME))
            || (tag.starts_with(b"account=") && caps.has(caps::ACCOUNT_TAG));
        if wanted {
            out.extend_from_slice(if first { b"@" } else { b";" });
            out.extend_from_slice(tag);
            first = false;
        }
    }
    if !first {
        out.extend_from_slice(b" ");
    }
    out.extend_from_slice(&bytes[tags_end + 1..]);
}

/// What the door keeps between lines for its output: who the client is, what it
/// negotiated, and what it was last shown. What every delivery reads (the name, the
/// capabilities) is kept small and together; what labeled answers and `REGISTER` need
/// is boxed apart, made only for a client that uses them.
pub(crate) struct View {
    /// The server's name, the source of numerics.
    pub(crate) server: std::sync::Arc<str>,
    /// The client's nickname now (the target of numerics, and whose own messages are
    /// not echoed without `echo-message`).
    pub(crate) me: Nick,
    pub(crate) caps: Caps,
    /// Labels, batches and a pending `REGISTER`, once the client needs any.
    answers: Option<Box<Answers>>,
    /// The causes of the last `QUIT`, `NICK`, `AWAY`, `ACCOUNT` and `SETNAME` lines
    /// shown: one per observer, however many rooms it shares with their source.
    shown: Causes,
}

/// What answering labeled commands (`labeled-response`), writing batches and a
/// `REGISTER` keep between lines.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    /// The label of the command being answered.
    pub(crate) label: Option<Box<str>>,
    /// The label of a command whose answer comes later (a `PONG`, a history page, an
    /// operator's password checked): the next answer written takes it.
    pub(crate) later: Option<Box<str>>,
    /// The labels of messages said to a room, by the message's id, until their echoes
    /// (the answers) are written; at most [`ECHO_LABELS`].
    echo_labels: VecDeque<(u64, Box<str>)>,
    pub(crate) batches: Batches,
    /// While a `REGISTER`'s password is hashed: the client's `nick!user@host`, for the
    /// answer (900).
    pub(crate) registering: Option<Box<str>>,
}

/// The causes of the user events last shown, so that an event announced in several
/// rooms (a `QUIT`, a `NICK`...) is shown once. A member drains its rooms one after the
/// other, so other users' such events may come between two rooms' copies of one: the
/// last [`Causes::KEPT`] are remembered, far more than come between in practice.
#[derive(Debug, Default)]
struct Causes {
    kept: [u64; Causes::KEPT],
    next: usize,
}

impl Causes {
    const KEPT: usize = 8;

    /// Whether `cause` is new; it is remembered either way.
    fn first_sight(&mut self, cause: u64) -> bool {
        if self.kept.contains(&cause) {
            return false;
        }
        self.kept[self.next] = cause;
        self.next = (self.next + 1) % Causes::KEPT;
        true
    }
}

/// The most labeled messages whose echoes a client may await at once; a message past it
/// is answered with `ACK` at once and echoed unlabeled.
const ECHO_LABELS: usize = 8;

impl View {
    pub(crate) fn new(server: std::sync::Arc<str>, me: Nick, caps: Caps) -> View {
        View {
            server,
            me,
            caps,
            answers: None,
            shown: Causes::default(),
        }
    }

    /// What labeled answers, batches and `REGISTER` keep, made at first need.
    pub(crate) fn answers(&mut self) -> &mut Answers {
        self.answers.get_or_insert_with(Box::default)
    }

    /// Starts answering a line, with its label if it has one.
    pub(crate) fn answering(&mut self, label: Option<Box<str>>) {
        if label.is_some() || self.answers.is_some() {
            let answers = self.answers();
            answers.label = label;
            answers.later = None;
        }
    }

    /// The label of the line being answered, taken.
    pub(crate) fn take_label(&mut self) -> Option<Box<str>> {
        self.answers.as_mut().and_then(|a| a.label.take())
    }

    /// The label of an answer that came later, taken.
    pub(crate) fn take_later(&mut self) -> Option<Box<str>> {
        self.answers.as_mut().and_then(|a| a.later.take())
    }

    /// A new batch reference.
    pub(crate) fn next_batch(&mut self) -> String {
        self.answers().batches.next()
    }

    /// The message `id` just said answers the command being answered: its echo takes
    /// the command's label, if it has one.
    pub(crate) fn label_echo(&mut self, id: u64) {
        if let Some(answers) = self.answers.as_mut()
            && answers.echo_labels.len() < ECHO_LABELS
            && let Some(label) = answers.label.take()
        {
            answers.echo_labels.push_back((id, label));
        }
    }

    /// Whether an echo awaits its label: one read of the view, per delivery.
    fn awaiting_echo(&self) -> bool {
        self.answers
            .as_ref()
            .is_some_and(|a| !a.echo_labels.is_empty())
    }

    /// The label awaited by the echo of `event`, one of the client's own messages.
    fn echo_label(&mut self, event: &Event) -> Option<Box<str>> {
        let labels = &mut self.answers.as_mut()?.echo_labels;
        // An echo never written (its room was left, or the client fell behind) leaves
        // its label behind: drop it.
        while labels.front().is_some_and(|(id, _)| *id < event.id) {
            labels.pop_front();
        }
        match labels.front() {
            Some((id, _)) if *id == event.id => labels.pop_front().map(|(_, l)| l),
            _ => None,
        }
    }
}

/// The IRC [`Output`]: a member's events and replies, as IRC lines, into `out`.
pub(crate) struct Irc<'a> {
    pub(crate) out: &'a mut BytesMut,
    pub(crate) view: &'a mut View,
    encodings: u64,
    /// Events not shown to this client (see [`Output::take_withheld`]).
    withheld: u64,
    /// Room to make for the events a collect expects.
    expected: Expected,
}

impl<'a> Irc<'a> {
    pub(crate) fn new(out: &'a mut BytesMut, view: &'a mut View) -> Irc<'a> {
        Irc {
            out,
            view,
            encodings: 0,
            withheld: 0,
            expected: Expected::default(),
        }
    }

    /// Appends `:server NNN me <params>` (the parameters as written: the caller puts the
    /// `:` before a trailing one) and CRLF.
    pub(crate) fn numeric(&mut self, code: &str, params: std::fmt::Arguments<'_>) {
        numeric(
            self.out,
            &self.view.server,
            self.view.me.as_str(),
            code,
            params,
        );
    }

    /// Appends `:server <line>` and CRLF.
    pub(crate) fn server_line(&mut self, line: std::fmt::Arguments<'_>) {
        let _ = write!(Writer(self.out), ":{} {line}\r\n", self.view.server);
    }

    /// What was written from `start` on answers a command that waited (a `PONG`, an
    /// operator's password checked, a refusal): it takes that command's label.
    fn answered(&mut self, start: usize) {
        if let Some(label) = self.view.take_later() {
            self.labeled(start, &label);
        }
    }

    fn labeled(&mut self, start: usize, label: &str) {
        let server = self.view.server.clone();
        label::wrap(
            self.out,
            start,
            &server,
            label,
            &mut self.view.answers().batches,
        );
    }

    fn is_me(&self, nick: &Nick) -> bool {
        nick.as_str().eq_ignore_ascii_case(self.view.me.as_str())
    }
}

/// Appends `:server NNN me <params>` and CRLF to `out`.
pub(crate) fn numeric(
    out: &mut BytesMut,
    server: &str,
    me: &str,
    code: &str,
    params: std::fmt::Arguments<'_>,
) {
    let _ = write!(Writer(out), ":{server} {code} {me} {params}\r\n");
}

/// `fmt::Write` into a `BytesMut`.
pub(crate) struct Writer<'a>(pub(crate) &'a mut BytesMut);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The prefix of a member's standing in a names list: every prefix with `multi-prefix`,
/// the highest without.
pub(crate) fn prefixes(standing: Standing, multi: bool, into: &mut String) {
    if standing.has(Standing::OPERATOR) {
        into.push('@');
        if !multi {
            return;
        }
    }
    if standing.has(Standing::VOICE) {
        into.push('+');
    }
}

impl Output for Irc<'_> {
    fn event(&mut self, event: &Event) {
        match &event.kind {
            // Without echo-message, a client is not sent what it said itself.
            Kind::Message { .. } | Kind::Action { .. } | Kind::Notice { .. }
                if !self.view.caps.has(caps::ECHO_MESSAGE)
                    && !matches!(event.scope, Scope::Wallops)
                    && self.is_me(&event.source.nick) =>
            {
                self.withheld += 1;
                return;
            }
            // An invitation: to the one invited (its mailbox), and with invite-notify to the
            // room's other members; the inviter has its 341.
            Kind::Invite { target }
                if !self.is_me(target)
                    && (!self.view.caps.has(caps::INVITE_NOTIFY)
                        || self.is_me(&event.source.nick)) =>
            {
                self.withheld += 1;
                return;
            }
            Kind::Join if !self.view.caps.has(caps::EXTENDED_JOIN) => {
                let bytes = encoded(event, &mut self.encodings, &self.view.server);
                write_for_caps(bytes, self.view.caps, self.out);
                if let Some(room) = event.room()
                    && let Some(cut) = extended_join_suffix(bytes, room)
                {
                    self.out.truncate(self.out.len() - cut);
                    self.out.extend_from_slice(b"\r\n");
                }
                return;
            }
            // One QUIT, NICK, AWAY, ACCOUNT or SETNAME per observer, however many rooms
            // it heard it in; the last three with their capabilities, and not to their
            // source (the door answered it).
            Kind::Quit { .. }
            | Kind::Rename { .. }
            | Kind::Away { .. }
            | Kind::Account
            | Kind::Realname { .. } => {
                let notify = match event.kind {
                    Kind::Away { .. } => Some(caps::AWAY_NOTIFY),
                    Kind::Account => Some(caps::ACCOUNT_NOTIFY),
                    Kind::Realname { .. } => Some(caps::SETNAME),
                    _ => None,
                };
                if notify
                    .is_some_and(|cap| !self.view.caps.has(cap) || self.is_me(&event.source.nick))
                    || !self.view.shown.first_sight(event.cause)
                {
                    self.withheld += 1;
                    return;
                }
            }
            _ => {}
        }
        let label = match (&event.kind, &event.scope) {
            (Kind::Message { .. } | Kind::Action { .. } | Kind::Notice { .. }, Scope::Room(_))
                if self.view.awaiting_echo() && self.is_me(&event.source.nick) =>
            {
                self.view.echo_label(event)
            }
            _ => None,
        };
        let bytes = encoded(event, &mut self.encodings, &self.view.server);
        if bytes.is_empty() {
            // A kind IRC does not show.
            self.withheld += 1;
            return;
        }
        self.expected.reserve(self.out, bytes.len());
        match label {
            None => write_for_caps(bytes, self.view.caps, self.out),
            Some(label) => {
                let mut line = BytesMut::new();
                write_for_caps(bytes, self.view.caps, &mut line);
                label::tagged(&line, &label::label_tag(&label), self.out);
            }
        }
    }

    fn members(&mut self, room: &RoomName, members: Members<'_, '_>) {
        let multi = self.view.caps.has(caps::MULTI_PREFIX);
        let userhost = self.view.caps.has(caps::USERHOST_IN_NAMES);
        let mut names = BytesMut::new();
        let server = self.view.server.clone();
        let me = self.view.me.clone();
        // `:server 353 me <=|@> #room :` and the names, each line within 512 bytes.
        let symbol = if members.secret { '@' } else { '=' };
        let head = format!(":{server} 353 {me} {symbol} {} :", room.name);
        let mut line = head.clone();
        let mut any = false;
        let mut name = String::new();
        for (standing, source) in members {
            name.clear();
            prefixes(standing, multi, &mut name);
            if userhost {
                write_mask(&mut name, source, &server);
            } else {
                name.push_str(source.nick.as_str());
            }
            if any && line.len() + 1 + name.len() + 2 > LINE {
                line.push_str("\r\n");
                names.extend_from_slice(line.as_bytes());
                line.clone_from(&head);
                any = false;
            }
            if any {
                line.push(' ');
            }
            line.push_str(&name);
            any = true;
        }
        if any {
            line.push_str("\r\n");
            names.extend_from_slice(line.as_bytes());
        }
        numeric(
            &mut names,
            &server,
            me.as_str(),
            "366",
            format_args!("{} :End of /NAMES list", room.name),
        );
        self.out.extend_from_slice(&names);
    }

    /// The topic (332, 333) before the names list, as IRC clients expect.
    fn joined(&mut self, join: &Event, members: Option<Members<'_, '_>>, topic: Option<&Topic>) {
        self.event(join);
        if let Some(room) = join.room() {
            if let Some(topic) = topic {
                self.topic(room, Some(topic));
            }
            if let Some(members) = members {
                self.members(room, members);
            }
        }
    }

    fn topic(&mut self, room: &RoomName, topic: Option<&Topic>) {
        match topic {
            Some(t) => {
                self.numeric("332", format_args!("{} :{}", room.name, t.text));
                self.numeric(
                    "333",
                    format_args!("{} {} {}", room.name, t.by, t.time.as_second()),
                );
            }
            None => self.numeric("331", format_args!("{} :No topic is set", room.name)),
        }
    }

    fn current(&mut self, _room: Option<&RoomName>) {}

    fn lagged(&mut self, room: &RoomName, missed: u64) {
        let me = self.view.me.clone();
        self.server_line(format_args!(
            "NOTICE {me} :You missed {missed} messages in {} (your connection fell behind)",
            room.name
        ));
    }

    fn history(&mut self, target: &HistoryOf, events: &[Event], asked: bool) {
        // IRC clients get no replay on join: they ask with `CHATHISTORY`, and the page
        // is a `chathistory` batch (with `batch`), labeled on its start.
        if !asked {
            return;
        }
        let start = self.out.len();
        let batch = self
            .view
            .caps
            .has(caps::BATCH)
            .then(|| self.view.next_batch());
        if let Some(batch) = &batch {
            let name = match target {
                HistoryOf::Room(room) => room.as_str(),
                HistoryOf::Nick(nick) => nick.as_str(),
            };
            self.server_line(format_args!("BATCH +{batch} chathistory {name}"));
        }
        let tag = batch.as_ref().map(|b| format!("batch={b}"));
        let mut line = BytesMut::new();
        for event in events {
            let bytes = encoded(event, &mut self.encodings, &self.view.server);
            match &tag {
                None => write_for_caps(bytes, self.view.caps, self.out),
                Some(tag) => {
                    line.clear();
                    write_for_caps(bytes, self.view.caps, &mut line);
                    label::tagged(&line, tag, self.out);
                }
            }
        }
        if let Some(batch) = &batch {
            self.server_line(format_args!("BATCH -{batch}"));
        }
        if let Some(label) = self.view.take_later() {
            if batch.is_some() {
                // One batch is the answer: its start line carries the label.
                let answer = self.out[start..].to_vec();
                self.out.truncate(start);
                let first = answer
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(answer.len(), |i| i + 1);
                label::tagged(&answer[..first], &label::label_tag(&label), self.out);
                self.out.extend_from_slice(&answer[first..]);
            } else {
                self.labeled(start, &label);
            }
        }
    }

    fn account(&mut self, nick: &Nick, change: AccountChange) {
        if let Some(mask) = self
            .view
            .answers
            .as_mut()
            .and_then(|a| a.registering.take())
        {
            let start = self.out.len();
            self.server_line(format_args!(
                "REGISTER SUCCESS {nick} :Account created; you are logged in"
            ));
            let account = nick.folded();
            self.numeric(
                "900",
                format_args!("{mask} {account} :You are now logged in as {account}"),
            );
            self.answered(start);
            return;
        }
        let what = match change {
            AccountChange::Registered => "is now registered",
            AccountChange::PasswordChanged => "has a new password",
        };
        let me = self.view.me.clone();
        self.server_line(format_args!("NOTICE {me} :{nick} {what}"));
    }

    fn oper(&mut self, _name: &str) {
        let start = self.out.len();
        self.numeric("381", format_args!(":You are now an IRC operator"));
        self.answered(start);
    }

    fn refused(&mut self, refused: Refusal) {
        let start = self.out.len();
        if self
            .view
            .answers
            .as_mut()
            .and_then(|a| a.registering.take())
            .is_some()
        {
            let me = self.view.me.clone();
            register_failed(self, &me, &refused);
        } else {
            refusal(self, &refused);
        }
        self.answered(start);
    }

    fn pong(&mut self, token: Option<String>) {
        let start = self.out.len();
        let server = self.view.server.clone();
        self.server_line(format_args!(
            "PONG {server} :{}",
            token.as_deref().unwrap_or(&server)
        ));
        self.answered(start);
    }

    fn pending(&self) -> usize {
        self.out.len()
    }

    fn take_encodings(&mut self) -> u64 {
        std::mem::take(&mut self.encodings)
    }

    fn take_withheld(&mut self) -> u64 {
        std::mem::take(&mut self.withheld)
    }

    fn said(&mut self, id: u64) {
        // A labeled message to a room, answered later (in a cluster): its echo, which
        // comes next, is the answer.
        if self.view.caps.has(super::caps::ECHO_MESSAGE)
            && let Some(label) = self.view.take_later()
        {
            self.view.answers().label = Some(label);
            self.view.label_echo(id);
        }
    }

    fn renamed(&mut self, nick: &Nick) {
        self.view.me = nick.clone();
    }
}

/// Writes the refusal of a `REGISTER` as draft/account-registration's `FAIL`.
pub(crate) fn register_failed(out: &mut Irc<'_>, account: &Nick, refused: &Refusal) {
    let code = match refused {
        Refusal::AlreadyRegistered(_) | Refusal::NickRegistered(_) => "ACCOUNT_EXISTS",
        Refusal::PasswordInvalid { .. } | Refusal::InsecureTransport => "UNACCEPTABLE_PASSWORD",
        Refusal::Busy(_) => "TEMPORARILY_UNAVAILABLE",
        _ => "BAD_ACCOUNT_NAME",
    };
    out.server_line(format_args!("FAIL REGISTER {code} {account} :{refused}"));
}

/// Writes a refusal as its numeric.
pub(crate) fn refusal(out: &mut Irc<'_>, refusal: &Refusal) {
    match refusal {
        Refusal::NickTaken(nick) => {
            out.numeric("433", format_args!("{nick} :Nickname is already in use"));
        }
        Refusal::NickRegistered(nick) => out.numeric(
            "433",
            format_args!("{nick} :Nickname is registered: give its password with PASS"),
        ),
        Refusal::NoSuchNick(nick) | Refusal::Gone(nick) => {
            out.numeric("401", format_args!("{nick} :No such nick/channel"));
        }
        Refusal::WasNoSuchNick(nick) => {
            out.numeric("406", format_args!("{nick} :There was no such nickname"));
        }
        Refusal::RecipientBusy(nick) => out.numeric(
            "404",
            format_args!("{nick} :Cannot send: the recipient is not keeping up"),
        ),
        Refusal::NoCurrentRoom => out.numeric("412", format_args!(":No recipient given")),
        Refusal::NotInRoom(room) => {
            out.numeric("442", format_args!("{room} :You're not on that channel"));
        }
        Refusal::NoSuchRoom(room) => {
            out.numeric("403", format_args!("{room} :No such channel"));
        }
        Refusal::TooManyRooms { limit } => out.numeric(
            "405",
            format_args!("* :You have joined too many channels ({limit})"),
        ),
        Refusal::RoomsFull { limit } => out.numeric(
            "405",
            format_args!("* :The server holds {limit} channels, the most it allows"),
        ),
        Refusal::TooManyRoomsCreated { limit } => out.numeric(
            "405",
            format_args!("* :Your address created {limit} channels that are still open"),
        ),
        Refusal::ChanopNeeded(room) => {
            out.numeric("482", format_args!("{room} :You're not channel operator"));
        }
        Refusal::Founder { nick, room } => out.numeric(
            "482",
            format_args!("{room} :{nick} founded {room}: only the founder or an IRC operator may"),
        ),
        Refusal::InviteOnly(room) => {
            out.numeric("473", format_args!("{room} :Cannot join channel (+i)"));
        }
        Refusal::BadKey(room) => {
            out.numeric("475", format_args!("{room} :Cannot join channel (+k)"))
        }
        Refusal::RoomFull { room, .. } => {
            out.numeric("471", format_args!("{room} :Cannot join channel (+l)"));
        }
        Refusal::BannedFromRoom(room) => {
            out.numeric("474", format_args!("{room} :Cannot join channel (+b)"));
        }
        Refusal::Moderated(room) => {
            out.numeric("404", format_args!("{room} :Cannot send to channel (+m)"));
        }
        Refusal::UserNotInRoom { nick, room } => out.numeric(
            "441",
            format_args!("{nick} {room} :They aren't on that channel"),
        ),
        Refusal::AlreadyInRoom { nick, room } => {
            out.numeric("443", format_args!("{nick} {room} :is already on channel"));
        }
        Refusal::UnknownMode(why) => out.numeric("472", format_args!("* :{why}")),
        Refusal::BanListFull { room, .. } => {
            out.numeric("478", format_args!("{room} b :Channel ban list is full"));
        }
        Refusal::NotOperator => {
            out.numeric(
                "481",
                format_args!(":Permission Denied- You're not an IRC operator"),
            );
        }
        Refusal::OperWrong => out.numeric("464", format_args!(":Password incorrect")),
        Refusal::PasswordWrong(_) => out.numeric("464", format_args!(":Password incorrect")),
        Refusal::NoMotd => out.numeric("422", format_args!(":MOTD File is missing")),
        other => {
            // The rest have no numeric of their own: a notice with the core's words.
            let text = match other {
                Refusal::Busy(Busy::Message) => {
                    "the server cannot keep up with saving history; message not sent".to_owned()
                }
                other => other.to_string(),
            };
            let me = out.view.me.clone();
            out.server_line(format_args!("NOTICE {me} :{text}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_shown_once_though_others_come_between() {
        let mut shown = Causes::default();
        assert!(shown.first_sight(7));
        for other in 100..105 {
            assert!(shown.first_sight(other));
        }
        assert!(!shown.first_sight(7), "seen five causes ago");
        for other in 200..200 + Causes::KEPT as u64 {
            assert!(shown.first_sight(other));
        }
        assert!(shown.first_sight(7), "forgotten past the bound");
    }
}

//! The terminal as an input [`Stream`] of typed lines and an output [`Sink`] of lines to
//! show, so that the chat loop stays a `select!` over the terminal and the socket.
//!
//! The bottom row of the screen is the line being typed, after a prompt naming the
//! current room. A line to show is printed *above* it: clear the bottom row, print the
//! line and a newline, draw the prompt and the typed text again. Both halves share one
//! screen state behind a mutex, and every change is written in one piece (the lines of a
//! flush together, in synchronized-output mode for terminals that know it), so a message
//! can never land in the middle of what is being typed, however fast messages arrive.
//!
//! Keys are read with crossterm's [`EventStream`] in raw mode and edited by
//! [`LineEditor`]. Ctrl-C, Ctrl-D on an empty line, SIGINT, SIGTERM and SIGHUP all yield
//! `/quit` and end the stream, so the client leaves as after `/quit`. The client's own
//! commands are handled here: `/clear` never leaves the terminal, and `/help` prints the
//! client's half before it goes on to the server for the server's half. A password is
//! asked for on the same row ([`TerminalOutput::set_secret_prompt`]), with nothing
//! shown as it is typed.
//! [`TerminalGuard`] puts the terminal back as it was, also on a panic.

use crate::complete::{CLIENT_COMMANDS, KEYS, complete};
use crate::editor::{Action, Key, LineEditor, text_width};
use crate::state::ChatState;
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::{Sink, Stream, StreamExt};
use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::watch;

/// Puts the terminal in raw mode and returns its input, its output, and the guard that
/// restores it. `color` makes the prompt bold; the lines shown carry their own colours.
pub fn open(
    state: watch::Receiver<ChatState>,
    color: bool,
) -> io::Result<(TerminalInput, TerminalOutput, TerminalGuard)> {
    crossterm::terminal::enable_raw_mode()?;
    let columns = crossterm::terminal::size().map_or(80, |(columns, _)| columns);
    let screen = Arc::new(Mutex::new(Screen {
        editor: LineEditor::new(),
        state,
        color,
        columns: usize::from(columns),
        prompt: None,
        restored: false,
    }));
    let guard = TerminalGuard {
        screen: screen.clone(),
    };
    lock(&screen).redraw()?;
    let input = TerminalInput {
        screen: screen.clone(),
        events: EventStream::new(),
        signals: Signals::new()?,
        queue: VecDeque::new(),
        ended: false,
    };
    let output = TerminalOutput {
        screen,
        pending: Vec::new(),
    };
    Ok((input, output, guard))
}

/// The prompt for `state`: the current room, and whether the client is connected.
pub fn prompt(state: &ChatState) -> String {
    let room = state
        .current()
        .map_or_else(|| "(no room)".to_owned(), |room| room.to_string());
    match (state.is_online(), state.me()) {
        (true, _) => format!("{room}> "),
        (false, Some(_)) => format!("{room} (offline)> "),
        (false, None) => "(connecting)> ".to_owned(),
    }
}

/// The client's half of `/help`: its own commands and keys, one line each; the server's
/// commands follow as its `HELP` frames.
pub fn help_lines() -> Vec<String> {
    let mut lines = vec!["-- commands of this client:".to_owned()];
    for (usage, what) in CLIENT_COMMANDS {
        lines.push(format!("-- {usage:<24} {what}"));
    }
    for (keys, what) in KEYS {
        lines.push(format!("-- {keys:<24} {what}"));
    }
    lines.push("-- commands of the server:".to_owned());
    lines
}

/// Turns a key press into an editing [`Key`], or `None` for keys the editor ignores.
pub fn map_key(event: KeyEvent) -> Option<Key> {
    let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
    let alt = event.modifiers.contains(KeyModifiers::ALT);
    let key = match event.code {
        KeyCode::Char(c) if ctrl => match c.to_ascii_lowercase() {
            'a' => Key::Home,
            'e' => Key::End,
            'b' => Key::Left,
            'f' => Key::Right,
            'p' => Key::Up,
            'n' => Key::Down,
            'u' => Key::KillToStart,
            'k' => Key::KillToEnd,
            'w' => Key::KillWord,
            'h' => Key::Backspace,
            'j' | 'm' => Key::Enter,
            'c' => Key::Interrupt,
            'd' => Key::EndOfFile,
            'l' => Key::ClearScreen,
            _ => return None,
        },
        KeyCode::Char(c) if alt => match c {
            'b' => Key::WordLeft,
            'f' => Key::WordRight,
            _ => return None,
        },
        // Control characters never go into the line: the server refuses them anyway.
        KeyCode::Char(c) if c.is_control() => return None,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Backspace if ctrl || alt => Key::KillWord,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Left if ctrl || alt => Key::WordLeft,
        KeyCode::Left => Key::Left,
        KeyCode::Right if ctrl || alt => Key::WordRight,
        KeyCode::Right => Key::Right,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        _ => return None,
    };
    Some(key)
}

/// Synchronized output (DEC mode 2026): a terminal that knows it shows what comes
/// before [`END_UPDATE`] at once, so the prompt row is never seen half drawn; others
/// ignore it.
const BEGIN_UPDATE: &str = "\x1b[?2026h";
const END_UPDATE: &str = "\x1b[?2026l";

/// What both halves of the terminal share: the line being typed and how to draw it.
struct Screen {
    /// The line being typed and its history.
    editor: LineEditor,
    /// The session, for the prompt and completion.
    state: watch::Receiver<ChatState>,
    /// Whether the prompt is bold.
    color: bool,
    /// Width of the terminal.
    columns: usize,
    /// A prompt that replaces the usual one (when asking for a nickname).
    prompt: Option<String>,
    /// Set once the terminal is restored: from then on lines are printed plainly.
    restored: bool,
}

fn lock(screen: &Mutex<Screen>) -> MutexGuard<'_, Screen> {
    screen.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Screen {
    /// Appends what draws the bottom row: the prompt, the visible part of the line, and
    /// the cursor in place.
    fn draw_input(&mut self, out: &mut String) {
        let prompt = match &self.prompt {
            Some(prompt) => prompt.clone(),
            None => prompt(&self.state.borrow()),
        };
        let view = self.editor.view(text_width(&prompt), self.columns);
        out.push_str("\r\x1b[2K");
        if self.color {
            out.push_str(&format!("\x1b[1m{prompt}\x1b[0m"));
        } else {
            out.push_str(&prompt);
        }
        out.push_str(&view.text);
        let back = view.width - view.cursor;
        if back > 0 {
            out.push_str(&format!("\x1b[{back}D"));
        }
    }

    /// Prints `lines` above the line being typed, then draws that line again; all in
    /// one write.
    fn print(&mut self, lines: &[String]) -> io::Result<()> {
        let mut out = String::new();
        if self.restored {
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        } else {
            out.push_str(BEGIN_UPDATE);
            out.push_str("\r\x1b[2K");
            for line in lines {
                // Raw mode: a newline does not return the carriage by itself.
                out.push_str(&line.replace('\n', "\r\n"));
                out.push_str("\r\n");
            }
            self.draw_input(&mut out);
            out.push_str(END_UPDATE);
        }
        let mut stdout = io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()
    }

    fn redraw(&mut self) -> io::Result<()> {
        self.print(&[])
    }

    fn clear_screen(&mut self) -> io::Result<()> {
        let mut out = format!("{BEGIN_UPDATE}\x1b[H\x1b[2J");
        self.draw_input(&mut out);
        out.push_str(END_UPDATE);
        let mut stdout = io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()
    }

    /// Erases the prompt row and leaves raw mode.
    fn restore(&mut self) {
        if std::mem::replace(&mut self.restored, true) {
            return;
        }
        let mut stdout = io::stdout().lock();
        let _ = stdout.write_all(b"\r\x1b[2K");
        let _ = stdout.flush();
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Lines typed at the terminal. Ends (after a last `/quit`) when the user leaves.
pub struct TerminalInput {
    screen: Arc<Mutex<Screen>>,
    events: EventStream,
    signals: Signals,
    /// Lines ready to be taken.
    queue: VecDeque<String>,
    /// Set once the user left: nothing more after the queue.
    ended: bool,
}

impl TerminalInput {
    /// Applies one terminal event: edits, draws, and queues a finished line.
    fn handle(&mut self, event: Event) {
        let mut screen = lock(&self.screen);
        let screen = &mut *screen;
        // Drawing errors are ignored here: the output sink reports a broken terminal.
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => {
                let Some(key) = map_key(key) else { return };
                let state = &screen.state;
                let action = screen
                    .editor
                    .handle(key, |line, cursor| complete(line, cursor, &state.borrow()));
                match action {
                    Action::Nothing => {}
                    Action::Redraw => {
                        let _ = screen.redraw();
                    }
                    Action::ClearScreen => {
                        let _ = screen.clear_screen();
                    }
                    // Leaving at a password prompt is not a line to answer it with.
                    Action::Quit if screen.editor.is_secret() => self.ended = true,
                    Action::Quit => {
                        self.queue.push_back("/quit".to_owned());
                        self.ended = true;
                    }
                    Action::Submit(line) if screen.editor.is_secret() => {
                        let _ = screen.redraw();
                        self.queue.push_back(line);
                    }
                    Action::Submit(line) => {
                        let _ = screen.redraw();
                        match line.trim().to_ascii_lowercase().as_str() {
                            "/clear" => {
                                let _ = screen.clear_screen();
                            }
                            "/help" => {
                                let _ = screen.print(&help_lines());
                                self.queue.push_back(line);
                            }
                            _ => self.queue.push_back(line),
                        }
                    }
                }
            }
            Event::Resize(columns, _) => {
                screen.columns = usize::from(columns);
                let _ = screen.redraw();
            }
            _ => {}
        }
    }
}

impl Stream for TerminalInput {
    type Item = String;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<String>> {
        let this = self.get_mut();
        loop {
            if let Some(line) = this.queue.pop_front() {
                return Poll::Ready(Some(line));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let event = if this.signals.poll(cx) {
                None
            } else {
                match this.events.poll_next_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(event))) => Some(event),
                    Poll::Ready(Some(Err(_)) | None) => None,
                }
            };
            match event {
                Some(event) => this.handle(event),
                // A signal, or the terminal is gone: leave.
                None => {
                    this.queue.push_back("/quit".to_owned());
                    this.ended = true;
                }
            }
        }
    }
}

/// Lines to show, printed above the line being typed when flushed: the lines sent
/// between two flushes go out in one write, with one redraw of the prompt.
pub struct TerminalOutput {
    screen: Arc<Mutex<Screen>>,
    /// Lines given and not yet printed.
    pending: Vec<String>,
}

impl TerminalOutput {
    /// Replaces the prompt (`Some`, for example when asking for a nickname) or brings
    /// back the usual one (`None`); either way what is typed is shown again.
    pub fn set_prompt(&self, prompt: Option<String>) -> io::Result<()> {
        let mut screen = lock(&self.screen);
        screen.prompt = prompt;
        screen.editor.set_secret(false);
        screen.redraw()
    }

    /// Replaces the prompt with `prompt` for a password: the next line typed is neither
    /// shown nor kept in the history, and leaving ends the input without a `/quit`.
    /// [`TerminalOutput::set_prompt`] ends this.
    pub fn set_secret_prompt(&self, prompt: String) -> io::Result<()> {
        let mut screen = lock(&self.screen);
        screen.prompt = Some(prompt);
        screen.editor.set_secret(true);
        screen.redraw()
    }
}

impl Sink<String> for TerminalOutput {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, line: String) -> io::Result<()> {
        self.get_mut().pending.push(line);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let lines = std::mem::take(&mut this.pending);
        Poll::Ready(lock(&this.screen).print(&lines))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Restores the terminal when dropped: the prompt row erased, raw mode off.
pub struct TerminalGuard {
    screen: Arc<Mutex<Screen>>,
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        lock(&self.screen).restore();
    }
}

/// Turns the echo of standard input off, when it is a terminal, until dropped: for a
/// password typed while the line editor is not in use. The line discipline still
/// collects the line; only what is typed is not shown (Enter still shows as a new line).
pub fn echo_off() -> EchoOff {
    #[cfg(unix)]
    {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return EchoOff { saved: None };
        };
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        quiet.local_modes.insert(LocalModes::ECHONL);
        match tcsetattr(&stdin, OptionalActions::Now, &quiet) {
            Ok(()) => EchoOff { saved: Some(saved) },
            Err(_) => EchoOff { saved: None },
        }
    }
    #[cfg(not(unix))]
    EchoOff {}
}

/// Restores standard input's echo when dropped; see [`echo_off`].
pub struct EchoOff {
    /// The settings to restore, if they were changed.
    #[cfg(unix)]
    saved: Option<rustix::termios::Termios>,
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

/// The signals that mean "leave": in raw mode Ctrl-C is a key, so SIGINT only comes
/// from `kill`; SIGTERM and SIGHUP (the terminal closed) too.
struct Signals {
    #[cfg(unix)]
    signals: Vec<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let kinds = [
                SignalKind::interrupt(),
                SignalKind::terminate(),
                SignalKind::hangup(),
            ];
            let signals = kinds.into_iter().map(signal).collect::<io::Result<_>>()?;
            Ok(Signals { signals })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Whether one of the signals came.
    fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        #[cfg(unix)]
        {
            self.signals
                .iter_mut()
                .any(|signal| signal.poll_recv(cx).is_ready())
        }
        #[cfg(not(unix))]
        {
            let _ = cx;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::ServerFrame;

    #[test]
    fn the_prompt_names_the_current_room() {
        let mut state = ChatState::default();
        assert_eq!(prompt(&state), "(connecting)> ");
        for line in [
            "WELCOME alice :hi",
            "JOIN #general alice 2026-11-24T12:00:00.000Z 1",
            "CURRENT #general",
        ] {
            state.apply(&ServerFrame::parse(line).unwrap());
        }
        assert_eq!(prompt(&state), "#general> ");
        state.set_online(false);
        assert_eq!(prompt(&state), "#general (offline)> ");
        state.set_online(true);
        state.apply(&ServerFrame::parse("CURRENT *").unwrap());
        assert_eq!(prompt(&state), "(no room)> ");
    }

    #[test]
    fn keys() {
        let key = |code, modifiers| map_key(KeyEvent::new(code, modifiers));
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        assert_eq!(key(KeyCode::Char('a'), none), Some(Key::Char('a')));
        assert_eq!(
            key(KeyCode::Char('A'), KeyModifiers::SHIFT),
            Some(Key::Char('A'))
        );
        assert_eq!(key(KeyCode::Char('c'), ctrl), Some(Key::Interrupt));
        assert_eq!(key(KeyCode::Char('d'), ctrl), Some(Key::EndOfFile));
        assert_eq!(key(KeyCode::Char('a'), ctrl), Some(Key::Home));
        assert_eq!(key(KeyCode::Char('z'), ctrl), None);
        assert_eq!(key(KeyCode::Char('\u{7}'), none), None);
        assert_eq!(key(KeyCode::Left, ctrl), Some(Key::WordLeft));
        assert_eq!(key(KeyCode::Tab, none), Some(Key::Tab));
        assert_eq!(
            key(KeyCode::BackTab, KeyModifiers::SHIFT),
            Some(Key::BackTab)
        );
        assert_eq!(key(KeyCode::F(1), none), None);
    }

    #[test]
    fn help_has_one_line_per_command() {
        let lines = help_lines();
        assert!(
            lines.iter().any(|l| l.starts_with("-- /clear ")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("-- /help ")),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.starts_with("-- Tab")), "{lines:?}");
        // One line each, and short enough for a terminal 80 columns wide.
        assert!(
            lines.iter().all(|l| !l.contains('\n') && l.len() < 80),
            "{lines:?}"
        );
    }
}

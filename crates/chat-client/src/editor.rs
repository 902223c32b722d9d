//! The line being typed: editing keys, the session's input history, Tab completion, and
//! which part of a long line fits on the screen.
//!
//! A pure value, with no terminal: [`crate::terminal`] turns key presses into [`Key`]s,
//! calls [`LineEditor::handle`], and draws [`LineEditor::view`] on the bottom row. The
//! line never wraps: when it is wider than the screen it scrolls sideways around the
//! cursor (as irssi does), so redrawing it is always "clear one row, write one row", and
//! messages printed above it can never be mixed into it.
//!
//! Passwords stay off the screen and out of the history: in secret mode (a password
//! prompt) nothing typed is shown, and the arguments of `/register` and `/password` are
//! shown as `*`; neither kind of line is kept in the history.

use crate::complete::Completion;
use crate::input::carries_password;
use unicode_width::UnicodeWidthChar;

/// How many typed lines the history keeps.
const HISTORY_LIMIT: usize = 1000;

/// A key press, as the editor understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Enter: send the line.
    Enter,
    /// Delete the character before the cursor.
    Backspace,
    /// Delete the character under the cursor.
    Delete,
    /// Move one character left.
    Left,
    /// Move one character right.
    Right,
    /// Move to the start of the previous word (Ctrl-Left, Alt-B).
    WordLeft,
    /// Move past the end of the next word (Ctrl-Right, Alt-F).
    WordRight,
    /// Move to the start of the line (Home, Ctrl-A).
    Home,
    /// Move to the end of the line (End, Ctrl-E).
    End,
    /// An earlier line from the history (Up, Ctrl-P).
    Up,
    /// A later line from the history, or back to what was being typed (Down, Ctrl-N).
    Down,
    /// Complete the word before the cursor, or the next candidate.
    Tab,
    /// The previous completion candidate (Shift-Tab).
    BackTab,
    /// Delete from the start of the line to the cursor (Ctrl-U).
    KillToStart,
    /// Delete from the cursor to the end of the line (Ctrl-K).
    KillToEnd,
    /// Delete the word before the cursor (Ctrl-W).
    KillWord,
    /// Ctrl-C: leave.
    Interrupt,
    /// Ctrl-D: leave on an empty line, else delete the character under the cursor.
    EndOfFile,
    /// Ctrl-L: clear the screen.
    ClearScreen,
}

/// What the terminal should do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed.
    Nothing,
    /// The line changed: draw it again.
    Redraw,
    /// Enter was pressed on this line; the editor is empty again.
    Submit(String),
    /// The user wants to leave.
    Quit,
    /// Clear the screen, then draw the line.
    ClearScreen,
}

/// A Tab completion in progress: further Tabs cycle through its candidates.
#[derive(Debug, Clone)]
struct Cycle {
    /// Where the completed word starts.
    start: usize,
    /// What the word may become.
    candidates: Vec<String>,
    /// Which candidate is in the line now.
    index: usize,
}

/// The part of the line that fits on the screen, and where the cursor is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The visible characters.
    pub text: String,
    /// Display columns from the start of `text` to the cursor.
    pub cursor: usize,
    /// Display columns of `text`.
    pub width: usize,
}

/// The line being typed and the session's history.
#[derive(Debug, Default, Clone)]
pub struct LineEditor {
    /// The line, as characters so that the cursor is an index.
    line: Vec<char>,
    /// Cursor position in `line`, `0..=line.len()`.
    cursor: usize,
    /// Lines sent in this session, oldest first.
    history: Vec<String>,
    /// Which history entry is shown, while browsing it.
    browsing: Option<usize>,
    /// What was being typed before browsing the history started.
    draft: Vec<char>,
    /// The completion that the last Tab started.
    cycle: Option<Cycle>,
    /// First visible character when the line is wider than the screen.
    scroll: usize,
    /// Whether a password is being typed: nothing shown, nothing remembered.
    secret: bool,
}

impl LineEditor {
    /// An empty line with an empty history.
    pub fn new() -> LineEditor {
        LineEditor::default()
    }

    /// The line as typed so far.
    pub fn line(&self) -> String {
        self.line.iter().collect()
    }

    /// The cursor position, in characters.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The history, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Starts (`true`) or ends secret mode, for a password: what is typed is not shown,
    /// Tab and the history do nothing, and the line is not kept in the history.
    pub fn set_secret(&mut self, secret: bool) {
        self.secret = secret;
    }

    /// Whether the editor is in secret mode.
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// Applies one key; `complete` is asked for candidates when Tab starts a completion.
    pub fn handle(
        &mut self,
        key: Key,
        complete: impl FnOnce(&str, usize) -> Option<Completion>,
    ) -> Action {
        if !matches!(key, Key::Tab | Key::BackTab) {
            self.cycle = None;
        }
        if self.secret && matches!(key, Key::Up | Key::Down | Key::Tab | Key::BackTab) {
            return Action::Nothing;
        }
        let len = self.line.len();
        match key {
            Key::Char(c) => {
                self.line.insert(self.cursor, c);
                self.cursor += 1;
            }
            Key::Enter => return Action::Submit(self.submit()),
            Key::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.line.remove(self.cursor);
            }
            Key::Delete if self.cursor < len => {
                self.line.remove(self.cursor);
            }
            Key::EndOfFile if len == 0 => return Action::Quit,
            Key::EndOfFile if self.cursor < len => {
                self.line.remove(self.cursor);
            }
            Key::Left if self.cursor > 0 => self.cursor -= 1,
            Key::Right if self.cursor < len => self.cursor += 1,
            Key::WordLeft => self.cursor = self.word_start(),
            Key::WordRight => {
                while self.cursor < len && self.line[self.cursor].is_whitespace() {
                    self.cursor += 1;
                }
                while self.cursor < len && !self.line[self.cursor].is_whitespace() {
                    self.cursor += 1;
                }
            }
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = len,
            Key::Up => return self.history_back(),
            Key::Down => return self.history_forward(),
            Key::Tab => return self.complete(1, complete),
            Key::BackTab => return self.complete(-1, complete),
            Key::KillToStart => {
                self.line.drain(..self.cursor);
                self.cursor = 0;
            }
            Key::KillToEnd => self.line.truncate(self.cursor),
            Key::KillWord => {
                let start = self.word_start();
                self.line.drain(start..self.cursor);
                self.cursor = start;
            }
            Key::Interrupt => return Action::Quit,
            Key::ClearScreen => return Action::ClearScreen,
            Key::Backspace | Key::Delete | Key::EndOfFile | Key::Left | Key::Right => {
                return Action::Nothing;
            }
        }
        Action::Redraw
    }

    /// Empties the line, records it in the history and returns it.
    fn submit(&mut self) -> String {
        let line: String = self.line.drain(..).collect();
        self.cursor = 0;
        self.scroll = 0;
        self.browsing = None;
        self.draft.clear();
        let private = self.secret || carries_password(&line);
        if !private && !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY_LIMIT {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        line
    }

    /// Where the word before the cursor starts (skipping white space before it).
    fn word_start(&self) -> usize {
        let mut i = self.cursor;
        while i > 0 && self.line[i - 1].is_whitespace() {
            i -= 1;
        }
        while i > 0 && !self.line[i - 1].is_whitespace() {
            i -= 1;
        }
        i
    }

    fn set_line(&mut self, line: Vec<char>) {
        self.cursor = line.len();
        self.line = line;
    }

    fn history_back(&mut self) -> Action {
        let index = match self.browsing {
            None if self.history.is_empty() => return Action::Nothing,
            None => {
                self.draft = self.line.clone();
                self.history.len() - 1
            }
            Some(0) => return Action::Nothing,
            Some(i) => i - 1,
        };
        self.browsing = Some(index);
        self.set_line(self.history[index].chars().collect());
        Action::Redraw
    }

    fn history_forward(&mut self) -> Action {
        let Some(index) = self.browsing else {
            return Action::Nothing;
        };
        if index + 1 < self.history.len() {
            self.browsing = Some(index + 1);
            self.set_line(self.history[index + 1].chars().collect());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.set_line(draft);
        }
        Action::Redraw
    }

    /// Starts a completion, or moves `step` candidates on in the one in progress.
    fn complete(
        &mut self,
        step: isize,
        complete: impl FnOnce(&str, usize) -> Option<Completion>,
    ) -> Action {
        let (start, replace_end, candidate) = match &mut self.cycle {
            Some(cycle) => {
                let n = cycle.candidates.len() as isize;
                let shown = cycle.candidates[cycle.index].chars().count();
                cycle.index = (cycle.index as isize + step).rem_euclid(n) as usize;
                (
                    cycle.start,
                    cycle.start + shown,
                    cycle.candidates[cycle.index].clone(),
                )
            }
            None => {
                let Some(found) = complete(&self.line(), self.cursor) else {
                    return Action::Nothing;
                };
                if found.candidates.is_empty() || found.start > self.cursor {
                    return Action::Nothing;
                }
                let index = if step < 0 {
                    found.candidates.len() - 1
                } else {
                    0
                };
                let candidate = found.candidates[index].clone();
                let start = found.start;
                self.cycle = Some(Cycle {
                    start,
                    candidates: found.candidates,
                    index,
                });
                (start, self.cursor, candidate)
            }
        };
        let chars: Vec<char> = candidate.chars().collect();
        self.cursor = start + chars.len();
        self.line.splice(start..replace_end, chars);
        Action::Redraw
    }

    /// The part of the line to show after a prompt `prompt_width` columns wide on a
    /// screen `columns` wide, scrolled so that the cursor is visible. The last column
    /// stays free, so the terminal never wraps the row.
    pub fn view(&mut self, prompt_width: usize, columns: usize) -> View {
        if self.secret {
            // Not even the length of a password shows.
            return View {
                text: String::new(),
                cursor: 0,
                width: 0,
            };
        }
        let shown = self.shown();
        let room = columns.saturating_sub(prompt_width + 1).max(1);
        let width = |chars: &[char]| -> usize { chars.iter().map(|&c| char_width(c)).sum() };
        self.scroll = self.scroll.min(self.cursor);
        // The cursor's own cell must fit too.
        while self.scroll < self.cursor && width(&shown[self.scroll..self.cursor]) + 1 > room {
            self.scroll += 1;
        }
        let mut text = String::new();
        let mut used = 0;
        for &c in &shown[self.scroll..] {
            let w = char_width(c);
            if used + w > room {
                break;
            }
            used += w;
            text.push(c);
        }
        View {
            text,
            cursor: width(&shown[self.scroll..self.cursor]),
            width: used,
        }
    }

    /// The line as shown: a password after `/register` or `/password` as `*`s, one per
    /// character, so that the cursor keeps its place.
    fn shown(&self) -> Vec<char> {
        if !carries_password(&self.line()) {
            return self.line.clone();
        }
        let name_end = self
            .line
            .iter()
            .position(|c| c.is_whitespace())
            .unwrap_or(self.line.len());
        let mut shown = self.line.clone();
        for c in &mut shown[name_end..] {
            if !c.is_whitespace() {
                *c = '*';
            }
        }
        shown
    }
}

/// Columns a character takes: 0 for combining marks, 2 for wide ones. Control
/// characters cannot be typed into the line; pasted ones are shown as one column.
fn char_width(c: char) -> usize {
    c.width().unwrap_or(1)
}

/// Columns `s` takes on the screen (for prompts; no escape sequences in `s`).
pub fn text_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_completion(_: &str, _: usize) -> Option<Completion> {
        None
    }

    fn typed(editor: &mut LineEditor, text: &str) {
        for c in text.chars() {
            editor.handle(Key::Char(c), no_completion);
        }
    }

    fn press(editor: &mut LineEditor, key: Key) -> Action {
        editor.handle(key, no_completion)
    }

    #[test]
    fn typing_and_moving() {
        let mut e = LineEditor::new();
        typed(&mut e, "helo");
        press(&mut e, Key::Left);
        typed(&mut e, "l");
        assert_eq!((e.line().as_str(), e.cursor()), ("hello", 4));
        press(&mut e, Key::Home);
        press(&mut e, Key::Delete);
        typed(&mut e, "H");
        press(&mut e, Key::End);
        typed(&mut e, " world");
        press(&mut e, Key::WordLeft);
        assert_eq!(e.cursor(), 6);
        press(&mut e, Key::KillToEnd);
        assert_eq!(e.line(), "Hello ");
        press(&mut e, Key::Backspace);
        press(&mut e, Key::WordLeft);
        press(&mut e, Key::WordRight);
        assert_eq!(e.cursor(), 5);
        press(&mut e, Key::KillWord);
        assert_eq!(e.line(), "");
        assert_eq!(press(&mut e, Key::Backspace), Action::Nothing);
    }

    #[test]
    fn kill_to_start_and_ctrl_d() {
        let mut e = LineEditor::new();
        typed(&mut e, "abc def");
        press(&mut e, Key::Left);
        press(&mut e, Key::Left);
        press(&mut e, Key::KillToStart);
        assert_eq!((e.line().as_str(), e.cursor()), ("ef", 0));
        assert_eq!(press(&mut e, Key::EndOfFile), Action::Redraw);
        assert_eq!(e.line(), "f");
        press(&mut e, Key::KillToEnd);
        assert_eq!(press(&mut e, Key::EndOfFile), Action::Quit);
        typed(&mut e, "x");
        assert_eq!(press(&mut e, Key::Interrupt), Action::Quit);
    }

    #[test]
    fn enter_submits_and_remembers() {
        let mut e = LineEditor::new();
        typed(&mut e, "one");
        assert_eq!(press(&mut e, Key::Enter), Action::Submit("one".into()));
        assert_eq!(e.line(), "");
        typed(&mut e, "two");
        press(&mut e, Key::Enter);
        press(&mut e, Key::Enter);
        typed(&mut e, "two");
        press(&mut e, Key::Enter);
        // Blank lines and repeats are not remembered.
        assert_eq!(e.history(), ["one", "two"]);
    }

    #[test]
    fn history_browsing_keeps_the_draft() {
        let mut e = LineEditor::new();
        assert_eq!(press(&mut e, Key::Up), Action::Nothing);
        for line in ["one", "two"] {
            typed(&mut e, line);
            press(&mut e, Key::Enter);
        }
        typed(&mut e, "draft");
        press(&mut e, Key::Up);
        assert_eq!(e.line(), "two");
        press(&mut e, Key::Up);
        assert_eq!(e.line(), "one");
        assert_eq!(press(&mut e, Key::Up), Action::Nothing);
        press(&mut e, Key::Down);
        assert_eq!(e.line(), "two");
        press(&mut e, Key::Down);
        assert_eq!((e.line().as_str(), e.cursor()), ("draft", 5));
        assert_eq!(press(&mut e, Key::Down), Action::Nothing);
        // An edited history line is sent as edited; the entry stays.
        press(&mut e, Key::Up);
        typed(&mut e, "!");
        assert_eq!(press(&mut e, Key::Enter), Action::Submit("two!".into()));
        assert_eq!(e.history(), ["one", "two", "two!"]);
    }

    #[test]
    fn passwords_are_neither_shown_nor_remembered() {
        let mut e = LineEditor::new();
        typed(&mut e, "/register hunter2");
        let view = e.view(0, 80);
        assert_eq!(view.text, "/register *******");
        assert_eq!(view.cursor, 17);
        assert_eq!(
            press(&mut e, Key::Enter),
            Action::Submit("/register hunter2".into())
        );
        typed(&mut e, "/PASSWORD n3w secret");
        assert_eq!(e.view(0, 80).text, "/PASSWORD *** ******");
        press(&mut e, Key::Enter);
        typed(&mut e, "hello");
        press(&mut e, Key::Enter);
        assert_eq!(e.history(), ["hello"]);

        e.set_secret(true);
        typed(&mut e, "s3cret");
        assert_eq!(
            e.view(0, 80),
            View {
                text: String::new(),
                cursor: 0,
                width: 0
            }
        );
        assert_eq!(
            press(&mut e, Key::Up),
            Action::Nothing,
            "no history while secret"
        );
        assert_eq!(press(&mut e, Key::Enter), Action::Submit("s3cret".into()));
        e.set_secret(false);
        assert_eq!(e.history(), ["hello"]);
    }

    #[test]
    fn tab_cycles_through_candidates() {
        let mut e = LineEditor::new();
        typed(&mut e, "hi b tail");
        for _ in 0..5 {
            press(&mut e, Key::Left);
        }
        let complete = |line: &str, cursor: usize| {
            assert_eq!((line, cursor), ("hi b tail", 4));
            Some(Completion {
                start: 3,
                candidates: vec!["bob ".into(), "bobby ".into()],
            })
        };
        assert_eq!(e.handle(Key::Tab, complete), Action::Redraw);
        assert_eq!((e.line().as_str(), e.cursor()), ("hi bob  tail", 7));
        let unused = |_: &str, _: usize| -> Option<Completion> { panic!("cycling") };
        e.handle(Key::Tab, unused);
        assert_eq!((e.line().as_str(), e.cursor()), ("hi bobby  tail", 9));
        e.handle(Key::Tab, unused);
        assert_eq!(e.line(), "hi bob  tail");
        e.handle(Key::BackTab, unused);
        assert_eq!(e.line(), "hi bobby  tail");
        // Any other key ends the cycle; the next Tab asks again.
        typed(&mut e, "x");
        assert_eq!(e.handle(Key::Tab, no_completion), Action::Nothing);
        assert_eq!(e.line(), "hi bobby x tail");
    }

    #[test]
    fn a_long_line_scrolls_around_the_cursor() {
        let mut e = LineEditor::new();
        typed(&mut e, "abcdefghij");
        // Prompt of 3 columns on a screen of 10: 6 columns for text, the cursor included.
        let v = e.view(3, 10);
        assert_eq!((v.text.as_str(), v.cursor), ("fghij", 5));
        press(&mut e, Key::Home);
        let v = e.view(3, 10);
        assert_eq!((v.text.as_str(), v.cursor, v.width), ("abcdef", 0, 6));
        press(&mut e, Key::End);
        assert!(e.view(3, 10).cursor + 3 < 10);
        let mut short = LineEditor::new();
        typed(&mut short, "hi");
        assert_eq!(short.view(3, 80).text, "hi");
    }

    #[test]
    fn wide_characters_count_twice() {
        let mut e = LineEditor::new();
        typed(&mut e, "日本語です");
        let v = e.view(0, 8);
        assert_eq!((v.text.as_str(), v.cursor), ("語です", 6));
        assert_eq!(text_width("#日本> "), 7);
    }
}

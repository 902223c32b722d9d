//! The configuration file (`--config chat.toml`): TOML whose keys are the binary's long
//! flags (`max-line = 4096`, `idle-timeout = "5m"`), plus `motd` and `[[operator]]`
//! tables.
//!
//! The file does not parse values itself: each is turned into the text a flag would
//! carry, checked with that flag's own clap value parser, and then set as the flag's
//! default ([`Loaded::apply`]), so that clap's usual order holds: a flag given on the
//! command line, then its environment variable, then the file, then the built-in
//! default. [`render`] writes the configuration in force back as a file.
//!
//! Every error names the file, the line and column, and the key.

use argon2::password_hash::PasswordHash;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use toml::{Spanned, Value};

/// The flag that names the file (`--config`); it cannot be set in the file itself.
pub const CONFIG_FLAG: &str = "config";

/// The environment variable that names the file when `--config` is not given.
pub const CONFIG_ENV: &str = "CHAT_CONFIG";

/// The key of the message of the day.
const MOTD: &str = "motd";

/// The key of the operators' tables (`[[operator]]`).
const OPERATOR: &str = "operator";

/// What the file holds besides flags: the binary puts them in [`crate::Config`]'s
/// `operators` and `motd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileConfig {
    /// The server's operators (`[[operator]]` tables).
    pub operators: Vec<Operator>,
    /// The message of the day (`motd`).
    pub motd: Option<String>,
}

/// A server operator: a nickname and the argon2 hash of their password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The operator's nickname.
    pub name: String,
    /// Their password's argon2 hash, as a PHC string (`$argon2id$v=19$...`).
    pub hash: String,
}

/// A configuration file, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Where it was read from.
    pub path: PathBuf,
    /// Each flag it sets, by clap id, with the values as they would be written after
    /// the flag (several for a flag that takes a list).
    pub flags: Vec<(clap::Id, Vec<String>)>,
    /// Operators and the message of the day.
    pub file: FileConfig,
}

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It cannot be read.
    #[error("cannot read the configuration file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// It is not TOML, or a key or value in it is wrong.
    #[error("{}:{}", path.display(), Located(*line, *column, key.as_deref(), message))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line (from 1) where the error is, if known.
        line: usize,
        /// The column (from 1, in characters).
        column: usize,
        /// The key it concerns, if any.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
}

/// The part of an error after the file name: `3:1: max-line: ...`.
struct Located<'a>(usize, usize, Option<&'a str>, &'a String);

impl std::fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Located(line, column, key, message) = *self;
        if line > 0 {
            write!(f, "{line}:{column}:")?;
        }
        match key {
            Some(key) => write!(f, " key `{key}`: {message}"),
            None => write!(f, " {message}"),
        }
    }
}

/// The file named by `--config PATH` or `--config=PATH` in `args` (the command line
/// without the program's name; the last one wins, none after `--`), else by the
/// variable `env` (`CHAT_CONFIG`) unless empty.
pub fn path_from_args(args: &[OsString], env: Option<OsString>) -> Option<PathBuf> {
    let long = format!("--{CONFIG_FLAG}");
    let with_value = format!("--{CONFIG_FLAG}=");
    let mut found = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        } else if *arg == *long {
            // Without a value clap refuses the command line; nothing to read.
            found = args.next().map(PathBuf::from);
        } else if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix(&with_value)) {
            found = Some(PathBuf::from(value));
        }
    }
    found.or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
}

/// Reads and checks the file at `path` against the flags of `cmd`.
pub fn load(path: &Path, cmd: &Command) -> Result<Loaded, FileError> {
    let text = std::fs::read_to_string(path).map_err(|error| FileError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text, path, cmd)
}

/// Checks `text`, the file at `path`, against the flags of `cmd`: every key must be one
/// of its long flags (but `--config`, `--help` and `--version`), `motd` or `operator`,
/// and every value one the flag would take.
pub fn parse(text: &str, path: &Path, cmd: &Command) -> Result<Loaded, FileError> {
    let error = |span: Option<std::ops::Range<usize>>, key: Option<&str>, message: String| {
        let (line, column) = span.map_or((0, 0), |s| position(text, s.start));
        FileError::Invalid {
            path: path.to_owned(),
            line,
            column,
            key: key.map(str::to_owned),
            message,
        }
    };
    // A syntax error names the key of its line, if it has one.
    let syntax = |e: toml::de::Error, key: Option<&str>| {
        let key = key.or_else(|| e.span().and_then(|s| key_of_line(text, s.start)));
        error(e.span(), key, e.message().into())
    };

    let entries: BTreeMap<Spanned<String>, Spanned<Value>> =
        toml::from_str(text).map_err(|e| syntax(e, None))?;
    let mut entries: Vec<_> = entries.into_iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);

    let mut loaded = Loaded {
        path: path.to_owned(),
        ..Loaded::default()
    };
    for (key, value) in &entries {
        let name = key.get_ref().as_str();
        let at_key = |message: String| error(Some(key.span()), Some(name), message);
        let at_value = |message: String| error(Some(value.span()), Some(name), message);
        match name {
            MOTD => match value.get_ref() {
                Value::String(motd) => loaded.file.motd = Some(motd.clone()),
                other => return Err(at_value(wrong_type("a string", other))),
            },
            OPERATOR => {} // Read below, with their own spans.
            CONFIG_FLAG => {
                return Err(at_key(format!(
                    "--{CONFIG_FLAG} names the file; it cannot be set inside it"
                )));
            }
            _ => {
                let Some(arg) = file_args(cmd).find(|a| a.get_long() == Some(name)) else {
                    return Err(at_key(unknown_key(name, cmd)));
                };
                let values = flag_values(arg, value.get_ref()).map_err(&at_value)?;
                check(arg, &values).map_err(&at_value)?;
                loaded.flags.push((arg.get_id().clone(), values));
            }
        }
    }

    let operators: Operators = toml::from_str(text).map_err(|e| syntax(e, Some(OPERATOR)))?;
    for operator in operators.operator {
        let RawOperator { name, hash } = operator.into_inner();
        if name.get_ref().trim().is_empty() {
            let message = "an operator's `name` cannot be empty".to_owned();
            return Err(error(Some(name.span()), Some(OPERATOR), message));
        }
        if let Err(why) = check_hash(hash.get_ref()) {
            let message = format!("`hash` is not an argon2 hash (a PHC string): {why}");
            return Err(error(Some(hash.span()), Some(OPERATOR), message));
        }
        loaded.file.operators.push(Operator {
            name: name.into_inner(),
            hash: hash.into_inner(),
        });
    }
    Ok(loaded)
}

/// The operators' tables, read apart so that each field keeps its place in the file.
#[derive(serde::Deserialize)]
struct Operators {
    #[serde(default)]
    operator: Vec<Spanned<RawOperator>>,
}

/// One `[[operator]]` table as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    name: Spanned<String>,
    hash: Spanned<String>,
}

/// Whether `hash` is a PHC string that argon2 can verify passwords against.
fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| e.to_string())?;
    argon2::Algorithm::try_from(parsed.algorithm).map_err(|e| e.to_string())?;
    argon2::Params::try_from(&parsed).map_err(|e| e.to_string())?;
    if parsed.hash.is_none() {
        return Err("it holds no hash".into());
    }
    Ok(())
}

impl Loaded {
    /// `cmd` with the file's values as its flags' defaults: a flag on the command line
    /// or its environment variable still wins.
    ///
    /// clap takes no default as given for `requires`, so a pair split between the file
    /// and the command line (`tls-key` in the file, `--tls-cert` on the command line)
    /// would be refused: with a file that sets flags, no flag requires another, and the
    /// caller checks such pairs itself (as the binary does for the TLS pair).
    pub fn apply(&self, mut cmd: Command) -> Command {
        if self.flags.is_empty() {
            return cmd;
        }
        cmd = cmd.mut_args(|arg| arg.requires(clap::builder::Resettable::Reset));
        for (id, values) in &self.flags {
            cmd = cmd.mut_arg(id, |arg| arg.default_values(values.clone()));
        }
        cmd
    }
}

/// The flags of `cmd` that the file may set: every long flag but `--config`, `--help`
/// and `--version`.
pub fn file_args(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|arg| {
        let informational = matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        );
        !informational && arg.get_long().is_some_and(|long| long != CONFIG_FLAG)
    })
}

/// Whether `arg` is a switch (`--limit-loopback`): in the file, `true` or `false`.
fn is_switch(arg: &Arg) -> bool {
    !arg.get_action().takes_values()
}

/// Whether `arg` takes a list (`--http-allow-origin`): in the file, an array.
fn is_list(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

/// The values of `value` as they would be written after the flag `arg`.
fn flag_values(arg: &Arg, value: &Value) -> Result<Vec<String>, String> {
    if is_switch(arg) {
        return match value {
            Value::Boolean(b) => Ok(vec![b.to_string()]),
            other => Err(wrong_type("true or false", other)),
        };
    }
    match value {
        Value::Array(items) if is_list(arg) => items
            .iter()
            .map(|item| scalar(item).ok_or_else(|| wrong_type("an array of strings", item)))
            .collect(),
        other => scalar(other).map(|v| vec![v]).ok_or_else(|| {
            let expected = if is_list(arg) {
                "a string or an array of strings"
            } else {
                "a string or a number"
            };
            wrong_type(expected, other)
        }),
    }
}

/// A string or number as text; nothing for other types.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        // `{:?}` keeps a point (`2.0`), as `print-config` writes it back.
        Value::Float(f) => Some(format!("{f:?}")),
        _ => None,
    }
}

/// "wrong type: expected ..., found an array".
fn wrong_type(expected: &str, found: &Value) -> String {
    let found = found.type_str();
    let article = if found.starts_with(['a', 'i']) {
        "an"
    } else {
        "a"
    };
    format!("wrong type: expected {expected}, found {article} {found}")
}

/// Runs `values` through `arg`'s own value parser, as if given on the command line.
fn check(arg: &Arg, values: &[String]) -> Result<(), String> {
    if is_switch(arg) {
        return Ok(()); // A TOML boolean, already checked.
    }
    let long = arg.get_long().unwrap_or_default();
    let mut probe = Arg::new("value")
        .long(long.to_owned())
        .action(arg.get_action().clone())
        .value_parser(arg.get_value_parser().clone())
        .value_name(long.to_ascii_uppercase().replace('-', "_"));
    if let Some(delimiter) = arg.get_value_delimiter() {
        probe = probe.value_delimiter(delimiter);
    }
    if let Some(range) = arg.get_num_args() {
        probe = probe.num_args(range);
    }
    let cmd = Command::new("chat-server")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(probe);
    let line = values.iter().map(|v| format!("--{long}={v}"));
    match cmd.try_get_matches_from(line) {
        Ok(_) => Ok(()),
        Err(e) => Err(clap_message(&e)),
    }
}

/// clap's message for a refused value, on one line, without its advice on `--help`.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}

/// "unknown key", with the nearest flag if one is close.
fn unknown_key(key: &str, cmd: &Command) -> String {
    let nearest = file_args(cmd)
        .filter_map(Arg::get_long)
        .chain([MOTD, OPERATOR])
        .map(|name| (edit_distance(key, name), name))
        .min();
    let hint = match nearest {
        Some((distance, name)) if distance <= 2 => format!(" (did you mean `{name}`?)"),
        _ => String::new(),
    };
    format!(
        "unknown key{hint}: the keys are the long flags of `chat-server --help` without \
         their dashes, `{MOTD}` and `[[{OPERATOR}]]` tables"
    )
}

/// Levenshtein distance between `a` and `b`, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The bare key that the line holding byte `offset` of `text` sets, if any
/// (`max-line = ...`).
fn key_of_line(text: &str, offset: usize) -> Option<&str> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or_default();
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    (!key.is_empty() && key.chars().all(bare)).then_some(key)
}

/// The line and column (from 1, the column in characters) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The configuration in force, as a configuration file: each flag of `cmd` (the
/// command before the file's values were set, for its built-in defaults) with its help
/// as a comment and its value in `matches`, then the message of the day and the
/// operators. Read back with `--config`, it gives the same configuration.
pub fn render(cmd: &Command, matches: &ArgMatches, file: &FileConfig) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        "The chat server's configuration (TOML), as written by `chat-server print-config`. \
         Use it with `chat-server --config FILE` (or CHAT_CONFIG=FILE). The keys are the \
         long flags of `chat-server --help`; a flag on the command line or its \
         environment variable overrides the value here, which overrides the built-in \
         default. A key that is commented out has no value: the help above it says what \
         the server does then.",
    );
    for arg in file_args(cmd) {
        let long = arg.get_long().unwrap_or_default();
        out.push('\n');
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        // clap drops the doc comment's last full stop.
        let help = match help.trim_end() {
            "" => String::new(),
            h if h.ends_with('.') => h.to_owned(),
            h => format!("{h}."),
        };
        for paragraph in help.split("\n\n") {
            comment(&mut out, paragraph);
        }
        let mut origin = format!("Flag --{long}");
        if let Some(env) = arg.get_env() {
            let _ = write!(origin, ", variable {}", env.to_string_lossy());
        }
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy())
            .collect();
        if !defaults.is_empty() && !is_switch(arg) {
            let _ = write!(origin, ", default {}", defaults.join(","));
        }
        comment(&mut out, &format!("{origin}."));
        match value(arg, matches) {
            Some(value) => {
                let _ = writeln!(out, "{long} = {value}");
            }
            None => {
                let _ = writeln!(out, "# {long} =");
            }
        }
    }

    out.push('\n');
    comment(
        &mut out,
        "The message of the day. Read and checked, but not yet shown by this version of \
         the server.",
    );
    match &file.motd {
        Some(motd) => {
            let _ = writeln!(out, "{MOTD} = {}", Value::String(motd.clone()));
        }
        None => {
            let _ = writeln!(out, "# {MOTD} = \"\"");
        }
    }
    out.push('\n');
    comment(
        &mut out,
        "Server operators: one [[operator]] table each, with `name` (a nickname) and \
         `hash` (the argon2 hash of their password, a PHC string such as \
         `$argon2id$v=19$m=19456,t=2,p=1$...`). Read and checked, but not yet used by \
         this version of the server.",
    );
    if file.operators.is_empty() {
        let _ = writeln!(out, "# [[{OPERATOR}]]\n# name = \"\"\n# hash = \"\"");
    }
    for operator in &file.operators {
        let _ = writeln!(
            out,
            "[[{OPERATOR}]]\nname = {}\nhash = {}",
            Value::String(operator.name.clone()),
            Value::String(operator.hash.clone())
        );
    }
    out
}

/// The value of `arg` in `matches` as TOML, if it has one.
fn value(arg: &Arg, matches: &ArgMatches) -> Option<Value> {
    let id = arg.get_id().as_str();
    if is_switch(arg) {
        let on = matches.try_get_one::<bool>(id).ok().flatten().copied();
        return Some(Value::Boolean(on.unwrap_or(false)));
    }
    let raw: Vec<String> = matches
        .get_raw(id)?
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if is_list(arg) {
        return Some(Value::Array(raw.into_iter().map(Value::String).collect()));
    }
    let raw = raw.into_iter().next_back()?;
    let parser = arg.get_value_parser().type_id();
    let integers = [
        TypeId::of::<usize>(),
        TypeId::of::<u64>(),
        TypeId::of::<u32>(),
        TypeId::of::<u16>(),
        TypeId::of::<i64>(),
    ];
    let is_float = parser == TypeId::of::<f64>();
    if (is_float || integers.iter().any(|t| parser == *t))
        && let Ok(i) = raw.parse::<i64>()
        && i.to_string() == raw
    {
        return Some(Value::Integer(i));
    }
    if is_float
        && let Ok(f) = raw.parse::<f64>()
        && f.is_finite()
    {
        return Some(Value::Float(f));
    }
    Some(Value::String(raw))
}

/// `text` as `#` comment lines of at most 88 columns.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > 88 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use clap::Args as _;

    fn command() -> Command {
        Config::augment_args(Command::new("chat-server"))
    }

    fn parse_text(text: &str) -> Result<Loaded, FileError> {
        parse(text, Path::new("chat.toml"), &command())
    }

    fn error_of(text: &str) -> String {
        parse_text(text).unwrap_err().to_string()
    }

    #[test]
    fn finds_the_path() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let env = Some(OsString::from("env.toml"));
        let path = |p: &str| Some(PathBuf::from(p));
        assert_eq!(
            path_from_args(&args(&["--config", "a.toml"]), None),
            path("a.toml")
        );
        assert_eq!(
            path_from_args(&args(&["--config=b.toml"]), None),
            path("b.toml")
        );
        assert_eq!(
            path_from_args(&args(&["--max-line", "9"]), env.clone()),
            path("env.toml")
        );
        assert_eq!(path_from_args(&args(&["--config", "a"]), env), path("a"));
        assert_eq!(path_from_args(&args(&["--", "--config", "a"]), None), None);
        assert_eq!(path_from_args(&[], Some(OsString::new())), None);
    }

    #[test]
    fn values_of_every_type() {
        let loaded = parse_text(
            "max-line = 100\nidle-timeout = \"5m\"\nflood-rate = 0.5\nlimit-loopback = true\n\
             http-allow-origin = [\"https://a.example\", \"https://b.example\"]\n\
             http-proxy-header = \"x-real-ip\"\n",
        )
        .unwrap();
        let flags: Vec<(&str, Vec<&str>)> = loaded
            .flags
            .iter()
            .map(|(id, v)| (id.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            flags,
            [
                ("max_line", vec!["100"]),
                ("idle_timeout", vec!["5m"]),
                ("flood_rate", vec!["0.5"]),
                ("limit_loopback", vec!["true"]),
                (
                    "http_allow_origin",
                    vec!["https://a.example", "https://b.example"]
                ),
                ("http_proxy_header", vec!["x-real-ip"]),
            ]
        );
    }

    #[test]
    fn operators_and_motd() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$\
                    7k0Tmz8yC5bHmnX0mqJQb6RkMdUw9KcKKXeKoZ0JvqA";
        let text = format!(
            "motd = \"hello\"\n[[operator]]\nname = \"alice\"\nhash = \"{hash}\"\n\
             [[operator]]\nname = \"bob\"\nhash = \"{hash}\"\n"
        );
        let loaded = parse_text(&text).unwrap();
        assert_eq!(loaded.file.motd.as_deref(), Some("hello"));
        let names: Vec<_> = loaded.file.operators.iter().map(|o| &o.name).collect();
        assert_eq!(names, ["alice", "bob"]);

        let bad = format!("[[operator]]\nname = \"\"\nhash = \"{hash}\"\n");
        assert_eq!(
            error_of(&bad),
            "chat.toml:2:8: key `operator`: an operator's `name` cannot be empty"
        );
        let bad = "[[operator]]\nname = \"carol\"\nhash = \"secret\"\n";
        assert!(
            error_of(bad).starts_with("chat.toml:3:8: key `operator`: `hash` is not an argon2"),
            "{}",
            error_of(bad)
        );
        let bad = "[[operator]]\nname = \"carol\"\npassword = \"x\"\n";
        assert!(
            error_of(bad).starts_with("chat.toml:3:1: key `operator`: unknown field `password`"),
            "{}",
            error_of(bad)
        );
        assert_eq!(
            error_of("motd = 3\n"),
            "chat.toml:1:8: key `motd`: wrong type: expected a string, found an integer"
        );
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        assert_eq!(
            error_of("max-line = 100\n\nmax-lin = 5\n"),
            "chat.toml:3:1: key `max-lin`: unknown key (did you mean `max-line`?): the keys \
             are the long flags of `chat-server --help` without their dashes, `motd` and \
             `[[operator]]` tables"
        );
        assert_eq!(
            error_of("max-line = true\n"),
            "chat.toml:1:12: key `max-line`: wrong type: expected a string or a number, \
             found a boolean"
        );
        assert_eq!(
            error_of("limit-loopback = \"yes\"\n"),
            "chat.toml:1:18: key `limit-loopback`: wrong type: expected true or false, \
             found a string"
        );
        assert_eq!(
            error_of("max-rooms = 0\n"),
            "chat.toml:1:13: key `max-rooms`: invalid value '0' for '--max-rooms <MAX_ROOMS>': \
             \"0\" is not a whole number from 1 to 1000000"
        );
        assert!(
            error_of("# comment\nhttp-proxy-header = \"via\"\n")
                .starts_with("chat.toml:2:21: key `http-proxy-header`: invalid value 'via'"),
            "{}",
            error_of("http-proxy-header = \"via\"\n")
        );
        assert_eq!(
            error_of("config = \"other.toml\"\n"),
            "chat.toml:1:1: key `config`: --config names the file; it cannot be set inside it"
        );
        assert!(
            error_of("max-line = \n").starts_with("chat.toml:1:12: key `max-line`: "),
            "{}",
            error_of("max-line = \n")
        );
        assert_eq!(
            error_of("max-line = 5\nmax-line = 6\n"),
            "chat.toml:2:1: key `max-line`: duplicate key"
        );
    }
}

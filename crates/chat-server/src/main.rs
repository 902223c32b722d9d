//! `chat-server`: reads its configuration (the file named by `--config`, then the
//! environment and flags over it), sets up logging, binds, and serves until Ctrl-C or
//! SIGTERM; or, with `gen-cert`, writes a self-signed certificate for a first try with
//! TLS; or, with `print-config`, writes the configuration in force as a file. Any error
//! is one line on standard error and a non-zero exit code.

use anyhow::Context;
use chat_server::config::FileConfig;
use chat_server::config::file::{self, FileError};
use chat_server::tls::{self, DEFAULT_NAMES, DEFAULT_TLS_ADDR};
use clap::{CommandFactory, FromArgMatches, Parser};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing_subscriber::EnvFilter;

/// A chat server: rooms, private messages and a line protocol you can type into `nc`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Configuration file (TOML): its keys are the long flags without their dashes
    /// (`max-line = 4096`, `idle-timeout = "5m"`), with `motd` and `[[operator]]`
    /// tables. A flag or its environment variable overrides the file;
    /// `chat-server print-config` writes one to start from.
    #[arg(long = file::CONFIG_FLAG, env = "CHAT_CONFIG", value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// Address to listen on (plain TCP).
    #[arg(long, env = "CHAT_ADDR", default_value = chat_proto::DEFAULT_ADDR)]
    addr: String,

    #[command(flatten)]
    tls: TlsArgs,

    /// Address of the web door (the web page, its WebSocket `/ws`, `/healthz` and
    /// `/metrics`) over plain HTTP; `off` for none.
    #[arg(long, env = "CHAT_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    http_addr: String,

    /// Address of the IRC door (irssi, WeeChat, HexChat...) over plain TCP; `off` for
    /// none.
    #[arg(long, env = "CHAT_IRC_ADDR", default_value = DEFAULT_IRC_ADDR)]
    irc_addr: String,

    /// Log format.
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(flatten)]
    config: chat_server::Config,
}

/// TLS: given a certificate and its key, the server serves TLS on its own address as
/// well as plain TCP on `--addr`.
#[derive(Debug, clap::Args)]
struct TlsArgs {
    /// Certificate chain for TLS, PEM, the server's certificate first. With --tls-key,
    /// the server also serves TLS on --tls-addr (`chat-server gen-cert` makes a
    /// self-signed pair to try it).
    #[arg(long, env = "CHAT_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// Private key of the TLS certificate, PEM.
    #[arg(long, env = "CHAT_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Address to listen on for TLS, with --tls-cert and --tls-key.
    #[arg(long, env = "CHAT_TLS_ADDR", default_value = DEFAULT_TLS_ADDR)]
    tls_addr: String,

    /// Address of the web door over HTTPS (the same routes as --http-addr), with
    /// --tls-cert and --tls-key; `off` for none.
    #[arg(long, env = "CHAT_HTTPS_ADDR", default_value = DEFAULT_HTTPS_ADDR)]
    https_addr: String,

    /// Address of the IRC door over TLS, with --tls-cert and --tls-key; `off` for none.
    #[arg(long, env = "CHAT_IRCS_ADDR", default_value = DEFAULT_IRCS_ADDR)]
    ircs_addr: String,
}

/// Where the web door listens by default: the page, `/ws`, `/healthz`, `/metrics`.
const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

/// Where the web door listens over HTTPS by default, when a certificate is given.
const DEFAULT_HTTPS_ADDR: &str = "127.0.0.1:8443";

/// Where the IRC door listens by default (IRC's port).
const DEFAULT_IRC_ADDR: &str = "127.0.0.1:6667";

/// Where the IRC door listens over TLS by default, when a certificate is given.
const DEFAULT_IRCS_ADDR: &str = "127.0.0.1:6697";

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a self-signed certificate and its key (cert.pem, key.pem) to try TLS with.
    ///
    /// Clients must be told to trust that very certificate (chat-client --tls
    /// --ca-cert cert.pem); for a public server, use a certificate from a real
    /// authority instead.
    GenCert(GenCert),

    /// Write the configuration in force (the file of --config, the environment and the
    /// flags before `print-config`) to standard output as a configuration file, each
    /// key with its help: `chat-server print-config > chat.toml` starts one.
    PrintConfig,

    /// Read a password (one line) from standard input and write its argon2 hash, for
    /// the `hash` of an `[[operator]]` table in the configuration file.
    HashPassword,
}

#[derive(Debug, clap::Args)]
struct GenCert {
    /// Directory to write cert.pem and key.pem into (created if need be).
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,

    /// A name the certificate is valid for: a DNS name or an IP address (several may
    /// follow one --name, and --name may be repeated).
    #[arg(long = "name", value_name = "NAME", num_args = 1.., default_values = DEFAULT_NAMES)]
    names: Vec<String>,

    /// Overwrite cert.pem and key.pem if they exist.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args(std::env::args_os().collect()) {
        Ok(Parsed {
            mut args,
            matches,
            file,
        }) => match args.command.take() {
            Some(Command::GenCert(gen_cert)) => write_cert(&gen_cert),
            Some(Command::PrintConfig) => {
                let file = file.map(|f| f.file).unwrap_or_default();
                print!("{}", file::render(&Args::command(), &matches, &file));
                Ok(())
            }
            Some(Command::HashPassword) => hash_password(),
            None => serve(args, file).await,
        },
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, read over the configuration file's values.
struct Parsed {
    /// The flags in force.
    args: Args,
    /// The same, as clap holds them (for `print-config`).
    matches: clap::ArgMatches,
    /// The configuration file, if one was named.
    file: Option<file::Loaded>,
}

/// Reads the configuration file named by `--config` or `CHAT_CONFIG`, if any, sets its
/// values as the flags' defaults, and parses `argv` (the command line, program name
/// first). Precedence is clap's: a flag, else its environment variable, else the file,
/// else the built-in default. A bad file is an error; a bad command line exits as clap
/// does (usage and code 2), as do `--help` and `--version`.
fn parse_args(argv: Vec<OsString>) -> Result<Parsed, FileError> {
    let path = file::path_from_args(
        argv.get(1..).unwrap_or_default(),
        std::env::var_os(file::CONFIG_ENV),
    );
    let mut cmd = Args::command();
    let file = match path {
        Some(path) => Some(file::load(&path, &cmd)?),
        None => None,
    };
    if let Some(file) = &file {
        cmd = file.apply(cmd);
    }
    let matches = cmd
        .try_get_matches_from_mut(argv)
        .unwrap_or_else(|e| e.exit());
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit());
    Ok(Parsed {
        args,
        matches,
        file,
    })
}

/// `gen-cert`: writes the pair and says how to use it.
fn write_cert(args: &GenCert) -> anyhow::Result<()> {
    let (cert, key) = tls::write_self_signed(&args.out, &args.names, args.force)?;
    println!(
        "wrote {} (self-signed certificate for {})",
        cert.display(),
        args.names.join(", ")
    );
    println!("wrote {} (its private key; keep it secret)", key.display());
    println!("start the server with:");
    println!(
        "  chat-server --tls-cert {} --tls-key {}",
        shell_word(&cert),
        shell_word(&key)
    );
    println!("and connect with:");
    println!("  chat-client --tls --ca-cert {}", shell_word(&cert));
    Ok(())
}

/// `hash-password`: one line of standard input (without its line ending) to its argon2
/// PHC string on standard output.
fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    let hash = chat_server::hash_password(password).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

/// `path` as one word for a shell: quoted if it holds anything a shell would split or
/// expand.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Serves until Ctrl-C or SIGTERM.
async fn serve(mut args: Args, file: Option<file::Loaded>) -> anyhow::Result<()> {
    init_logging(args.log_format);
    if let Some(file) = file {
        log_file(&file);
        // Operators and the message of the day have no flag: the file gives them.
        args.config.operators = file.file.operators;
        args.config.motd = file.file.motd;
    }
    // The library's default store is in memory (for tests); the binary keeps history
    // and accounts in a file unless told otherwise.
    let db = args
        .config
        .db
        .get_or_insert_with(|| chat_server::config::default_db_path().display().to_string())
        .clone();
    tracing::info!(db = %db, "database");
    // Before anything is bound: a bad certificate stops the server at once.
    let acceptor = tls_acceptor(&args.tls)?;
    // The soft limit is raised to the hard one; the connection limit follows from it
    // (less a reserve for the listeners, the store and refusals) unless given.
    let open_files = match chat_server::config::raise_open_file_limit() {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            None
        }
    };
    let max_connections = args.config.connection_limit();
    tracing::info!(
        open_file_limit = open_files,
        max_connections,
        "open-file limit raised to the hard limit; connections allowed at once: {max_connections}"
    );
    let backlog = args.config.listen_backlog();
    let listener = bind(&args.addr, backlog).await?;
    tracing::info!(addr = %listener.local_addr()?, backlog, "listening");
    let tls = match &acceptor {
        Some(acceptor) => {
            let tls_listener = bind(&args.tls.tls_addr, backlog).await?;
            tracing::info!(addr = %tls_listener.local_addr()?, backlog, "listening for TLS");
            Some((tls_listener, acceptor.clone()))
        }
        None => None,
    };
    let http = match off(&args.http_addr) {
        Some(addr) => {
            let http = bind(addr, backlog).await?;
            let addr = http.local_addr()?;
            tracing::info!(%addr, backlog, "listening for HTTP: open http://{addr}/");
            Some(http)
        }
        None => None,
    };
    let irc = match off(&args.irc_addr) {
        Some(addr) => {
            let irc = bind(addr, backlog).await?;
            tracing::info!(addr = %irc.local_addr()?, backlog, "listening for IRC");
            Some(irc)
        }
        None => None,
    };
    let ircs = match (&acceptor, off(&args.tls.ircs_addr)) {
        (Some(acceptor), Some(addr)) => {
            let ircs = bind(addr, backlog).await?;
            tracing::info!(addr = %ircs.local_addr()?, backlog, "listening for IRC over TLS");
            Some((ircs, acceptor.clone()))
        }
        _ => None,
    };
    let https = match (acceptor, off(&args.tls.https_addr)) {
        (Some(acceptor), Some(addr)) => {
            let https = bind(addr, backlog).await?;
            let addr = https.local_addr()?;
            tracing::info!(%addr, backlog, "listening for HTTPS: open https://{addr}/");
            Some((https, acceptor))
        }
        _ => None,
    };
    let listeners = chat_server::Listeners {
        tcp: Some(listener),
        tls,
        http,
        https,
        irc,
        ircs,
    };
    let server = chat_server::Server::start(args.config).await?;
    // On a worker thread rather than the main thread that `block_on` polls: accepting
    // and spawning there put every connection's task in one more malloc arena than its
    // session's own allocations, about 0.25 KB per idle connection (issue 4).
    let server = tokio::spawn(async move { server.serve(listeners, shutdown_signal()).await });
    server.await??;
    tracing::info!("stopped");
    Ok(())
}

/// Says which configuration file was read, and what it holds besides flags: operators
/// and the message of the day.
fn log_file(file: &file::Loaded) {
    let FileConfig { operators, motd } = &file.file;
    tracing::info!(
        path = %file.path.display(),
        flags = file.flags.len(),
        operators = operators.len(),
        motd = motd.is_some(),
        "configuration file"
    );
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The TLS acceptor, if a certificate and key were given (clap makes sure that both or
/// neither are).
fn tls_acceptor(args: &TlsArgs) -> anyhow::Result<Option<TlsAcceptor>> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(tls::acceptor(cert, key)?)),
        (None, None) => Ok(None),
        _ => anyhow::bail!("--tls-cert and --tls-key go together: give both, or neither"),
    }
}

/// `None` for `off` (any case): that listener is not wanted.
fn off(addr: &str) -> Option<&str> {
    (!addr.eq_ignore_ascii_case("off")).then_some(addr)
}

/// Listens on the first address `addr` resolves to that can be bound, with the server's
/// backlog ([`chat_server::listen`]).
async fn bind(addr: &str, backlog: u32) -> anyhow::Result<TcpListener> {
    let mut last_error = None;
    let addrs = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    for resolved in addrs {
        match chat_server::listen(resolved, backlog) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => anyhow::Error::new(e),
        None => anyhow::anyhow!("it resolves to no address"),
    })
    .with_context(|| format!("cannot listen on {addr}"))
}

/// Completes on Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_well_formed() {
        Args::command().debug_assert();
    }

    /// The pre-scan for the file and clap agree on its variable.
    #[test]
    fn config_variable() {
        let cmd = Args::command();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(file::CONFIG_FLAG))
            .unwrap();
        assert_eq!(arg.get_env().unwrap(), file::CONFIG_ENV);
    }
}

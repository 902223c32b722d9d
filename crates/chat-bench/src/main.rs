//! `chat-bench`: parses flags, builds the runtime, runs the workload, prints the summary
//! and the JSON line on stdout. See the library for what each mode measures.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = chat_bench::Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(chat_bench::run(&cli));
    // Connections still open are simply dropped: quitting each would only make work.
    runtime.shutdown_background();
    match result {
        Ok(report) => {
            // A closed stdout (`| head`) is not worth a panic.
            let _ = writeln!(std::io::stdout().lock(), "{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The progress line on stderr, once a second: rewritten in place (`\r`) on a terminal,
//! one plain line per second otherwise (logs, CI).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Prints `render(elapsed)` every second until dropped. Does nothing when disabled.
pub(crate) struct Progress {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(
        enabled: bool,
        mut render: impl FnMut(Duration) -> String + Send + 'static,
    ) -> Progress {
        let stop = CancellationToken::new();
        let task = enabled.then(|| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let tty = std::io::stderr().is_terminal();
                let start = Instant::now();
                let mut tick = tokio::time::interval_at(
                    tokio::time::Instant::now() + Duration::from_secs(1),
                    Duration::from_secs(1),
                );
                let mut printed = false;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let line = render(start.elapsed());
                    let mut err = std::io::stderr().lock();
                    let _ = if tty {
                        write!(err, "\r{line}\x1b[K")
                    } else {
                        writeln!(err, "{line}")
                    };
                    let _ = err.flush();
                    printed = true;
                }
                if tty && printed {
                    let _ = write!(std::io::stderr(), "\r\x1b[K");
                }
            })
        });
        Progress { stop, task }
    }

    /// Stops the line and clears it from a terminal.
    pub(crate) async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `12345` as `12.3k`, for a line that must stay short.
pub(crate) fn short(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

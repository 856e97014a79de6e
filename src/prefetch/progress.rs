//! What `artifactfs prefetch` shows while it works: on a terminal (stderr), a progress bar
//! with bytes, rate and ETA; otherwise nothing moving. Either way one line per artifact done
//! on stdout (a failure on stderr) and a summary line at the end.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub enum Progress {
    Bar(ProgressBar),
    Lines,
}

impl Progress {
    /// A bar for `total` bytes when stderr is a terminal, else plain lines.
    pub fn new(total: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress::Bar(bar)
    }

    /// `bytes` read so far, in all.
    pub fn set(&self, bytes: u64) {
        if let Progress::Bar(b) = self {
            b.set_position(bytes);
        }
    }

    /// One artifact finished: its bytes, or why it failed.
    pub fn done(&self, label: &str, result: &Result<u64, String>) {
        let line = || match result {
            Ok(n) => println!("{label}  {}", HumanBytes(*n)),
            Err(e) => eprintln!("artifactfs: prefetch {label}: {e}"),
        };
        match self {
            Progress::Bar(b) => b.suspend(line),
            Progress::Lines => line(),
        }
    }

    /// Takes the bar away before the summary.
    pub fn finish(&self) {
        if let Progress::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}

//! The last warnings and errors a process logged, for `artifactfs status`: a tracing
//! [`Layer`] that keeps the WARN and ERROR events (message and fields, one line each) in a
//! small ring ([`RecentWarnings`]). The GitHub client never logs a token or a signed URL's
//! query; as a second guard, secrets handed to [`RecentWarnings::hide`] (the token) are masked
//! before a line is kept.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How many warnings a status shows.
pub const KEPT: usize = 10;

/// One warning or error as logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// When it was logged, in Unix seconds.
    pub unix_time: u64,
    /// `WARN` or `ERROR`.
    pub level: String,
    pub message: String,
}

/// The last few warnings and errors, and how many there were in all.
#[derive(Debug)]
pub struct RecentWarnings {
    capacity: usize,
    ring: Mutex<VecDeque<Warning>>,
    total: AtomicU64,
    secrets: Mutex<Vec<String>>,
}

/// The process's ring: what the log's layer ([`layer`]) fills and a core's status shows.
pub fn global() -> Arc<RecentWarnings> {
    static GLOBAL: OnceLock<Arc<RecentWarnings>> = OnceLock::new();
    GLOBAL
        .get_or_init(|| Arc::new(RecentWarnings::new(KEPT)))
        .clone()
}

/// The layer that keeps WARN and ERROR events in the process's ring.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    WarningLayer(global()).with_filter(tracing_subscriber::filter::LevelFilter::WARN)
}

impl RecentWarnings {
    pub fn new(capacity: usize) -> RecentWarnings {
        RecentWarnings {
            capacity,
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            total: AtomicU64::new(0),
            secrets: Mutex::new(Vec::new()),
        }
    }

    /// Masks `secret` in every line kept from now on.
    pub fn hide(&self, secret: &str) {
        if !secret.is_empty() {
            self.secrets.lock().unwrap().push(secret.to_string());
        }
    }

    pub fn push(&self, level: &Level, message: &str) {
        let mut message = message.to_string();
        for s in self.secrets.lock().unwrap().iter() {
            message = message.replace(s.as_str(), "***");
        }
        let w = Warning {
            unix_time: super::unix_now(),
            level: level.to_string(),
            message,
        };
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut ring = self.ring.lock().unwrap();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(w);
    }

    /// Oldest first.
    pub fn recent(&self) -> Vec<Warning> {
        self.ring.lock().unwrap().iter().cloned().collect()
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// Keeps every event it sees (filtered to WARN and above by [`layer`]).
pub struct WarningLayer(pub Arc<RecentWarnings>);

impl<S: Subscriber> Layer<S> for WarningLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        let mut text = line.message;
        if !line.fields.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&line.fields);
        }
        self.0.push(event.metadata().level(), &text);
    }
}

/// An event as one line: its message, then its other fields as `key=value`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.field(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }
}

impl Line {
    fn field(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_the_last_warnings_and_errors_as_lines() {
        let ring = Arc::new(RecentWarnings::new(3));
        let sub = tracing_subscriber::registry().with(
            WarningLayer(ring.clone()).with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        );
        tracing::subscriber::with_default(sub, || {
            tracing::info!("not kept");
            for i in 0..4 {
                tracing::warn!(artifact = i, error = %"boom", "blob read failed");
            }
            tracing::error!("the end");
        });
        let got = ring.recent();
        assert_eq!(ring.total(), 5);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].message, "blob read failed artifact=2 error=boom");
        assert_eq!(got[2].level, "ERROR");
        assert_eq!(got[2].message, "the end");
    }

    #[test]
    fn a_hidden_secret_never_appears() {
        let ring = RecentWarnings::new(3);
        ring.hide("ghp_secret123");
        ring.push(&Level::WARN, "header Bearer ghp_secret123 refused");
        assert_eq!(ring.recent()[0].message, "header Bearer *** refused");
    }
}

//! Logging set-up. Human-readable lines by default, JSON with
//! `WSTICKET_LOG_FORMAT=json`; the filter comes from `WSTICKET_LOG`
//! (default `info`). Nothing in wsticket logs a header, a query string, a
//! body, a ticket or a key; request lines carry the route pattern only.
//!
//! Lines are formatted on the thread that logs them ([`format`]) and written
//! to stderr in batches by a thread of their own ([`sink`]), so a request
//! never waits for the log's reader. When the reader falls behind (a stalled
//! pipe, a slow disk), at most 8,192 lines wait; the lines beyond are
//! dropped and counted ([`dropped_lines`], the metric
//! `wsticket_log_lines_dropped_total`).
//!
//! Lines are formatted by [`format::Lines`] (see there for the shapes and
//! why not `tracing-subscriber`'s `fmt` layer). A value a caller chose (a
//! user id, a client name) is always recorded as a `&str` field, never with
//! `%`: the text format then prints it quoted and escaped
//! (`user_id="mallory audience=admin"`), the JSON format as a JSON string,
//! so it cannot pose as other fields or lines.

mod format;
mod sink;

pub(crate) use format::REQUEST_ID;
pub(crate) use sink::{MAX_PENDING_LINES, dropped_lines};

use format::{Lines, Style};
use sink::{Sink, SinkGuard};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// actix's HTTP/1 dispatcher ends every connection it drops for a protocol
/// error with an ERROR line ("stream error: request parse error: …"): a
/// client's malformed request, not an error of wsticket, and attacker-made
/// at will. Those lines are dropped; `routes::wire` logs the answer it gives
/// such a request at DEBUG. Every other line passes.
struct QuietClientErrors;

impl<S: Subscriber> Layer<S> for QuietClientErrors {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("actix_http::h1") {
            return true;
        }
        let mut stream_error = IsStreamError(false);
        event.record(&mut stream_error);
        !stream_error.0
    }
}

struct IsStreamError(bool);

impl Visit for IsStreamError {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}").starts_with("stream error");
        }
    }
}

/// Keeps the writer thread; dropping it writes out the lines still queued
/// (for up to a second), so hold it until the process is about to exit.
#[must_use = "dropping the guard stops the log writer"]
pub(crate) struct LogGuard {
    _writer: Option<SinkGuard>,
}

pub(crate) fn init() -> LogGuard {
    let filter = std::env::var("WSTICKET_LOG").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("WSTICKET_LOG is not a valid filter ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let json = std::env::var("WSTICKET_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let style = if json { Style::Json } else { Style::Text };
    let Some((sink, guard)) = Sink::start(std::io::stderr()) else {
        eprintln!("wsticket: cannot start the log writer thread; logging nothing");
        return LogGuard { _writer: None };
    };
    // A second init (tests in one process) keeps the first subscriber, and
    // its writer: the new one is stopped unused.
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(QuietClientErrors)
        .with(Lines::new(sink, style))
        .try_init();
    match installed {
        Ok(()) => LogGuard {
            _writer: Some(guard),
        },
        Err(_) => LogGuard { _writer: None },
    }
}

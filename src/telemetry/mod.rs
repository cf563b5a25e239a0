//! Logging set-up. Human-readable lines by default, JSON with
//! `WSTICKET_LOG_FORMAT=json`; the filter comes from `WSTICKET_LOG`
//! (default `info`). Nothing in wsticket logs a header, a query string, a
//! body, a ticket or a key; request lines carry the route pattern only.
//!
//! Lines are formatted on the thread that logs them ([`format`]) and written
//! to stderr by a thread of their own (`tracing-appender`'s non-blocking
//! writer, through a 64 KiB buffer: one `write` per batch of lines), so a
//! request never waits for the log's reader. When the reader falls behind
//! (a stalled pipe, a slow disk), at most [`QUEUED_LINES`] lines wait; the
//! lines beyond are dropped and counted ([`dropped_lines`], the metric
//! `wsticket_log_lines_dropped_total`).
//!
//! Lines are formatted by [`format::Lines`] (see there for the shapes and
//! why not `tracing-subscriber`'s `fmt` layer). A value a caller chose (a
//! user id, a client name) is always recorded as a `&str` field, never with
//! `%`: the text format then prints it quoted and escaped
//! (`user_id="mallory audience=admin"`), the JSON format as a JSON string,
//! so it cannot pose as other fields or lines.

mod format;

pub(crate) use format::REQUEST_ID;

use format::{Lines, Style};
use std::fmt;
use std::io::{BufWriter, Write as _};
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
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

/// Lines that may wait for the writer thread: about 2 MiB at ~250 bytes a
/// line, 0.1 s of a busy instance's log.
const QUEUED_LINES: usize = 8192;

/// The writer's buffer: one `write` to stderr per this many bytes at most.
const WRITE_BUFFER: usize = 64 * 1024;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines dropped since start because [`QUEUED_LINES`] were already
/// waiting.
pub(crate) fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |c| u64::try_from(c.dropped_lines()).unwrap_or(u64::MAX))
}

/// The writer's end for [`Lines`].
struct Sink(NonBlocking);

impl format::Output for Sink {
    fn line(&self, line: &[u8]) {
        // A clone is two reference counts; a line that cannot be queued is
        // dropped (and counted) by the writer itself.
        let _ = self.0.clone().write_all(line);
    }
}

/// Keeps the writer thread; dropping it writes out the lines still queued
/// (for up to a second), so hold it until the process is about to exit.
#[must_use = "dropping the guard stops the log writer"]
pub(crate) struct LogGuard {
    _writer: Option<WorkerGuard>,
}

pub(crate) fn init() -> LogGuard {
    let filter = std::env::var("WSTICKET_LOG").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("WSTICKET_LOG is not a valid filter ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let json = std::env::var("WSTICKET_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let style = if json { Style::Json } else { Style::Text };
    // A line that cannot be written (whoever read stderr went away) is
    // lost, and that is all: nothing reports it on the same closed stderr.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("wsticket-log")
        .finish(BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr()));
    let dropped = writer.error_counter();
    // A second init (tests in one process) keeps the first subscriber, and
    // its writer: the new one is dropped unused.
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(QuietClientErrors)
        .with(Lines::new(Sink(writer), style))
        .try_init();
    match installed {
        Ok(()) => {
            let _ = DROPPED.set(dropped);
            LogGuard {
                _writer: Some(guard),
            }
        }
        Err(_) => LogGuard { _writer: None },
    }
}

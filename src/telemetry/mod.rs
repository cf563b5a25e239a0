//! Logging set-up. Human-readable lines by default, JSON with
//! `WSTICKET_LOG_FORMAT=json`; the filter comes from `WSTICKET_LOG`
//! (default `info`). Nothing in wsticket logs a header, a query string, a
//! body, a ticket or a key; request lines carry the route pattern only.
//!
//! A value a caller chose (a user id, a client name) is always recorded as a
//! `&str` field, never with `%`: the text format then prints it quoted and
//! escaped (`user_id="mallory audience=admin"`), the JSON format as a JSON
//! string, so it cannot pose as other fields or lines.

use std::fmt;
use std::io::IsTerminal;
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

pub(crate) fn init() {
    let filter = std::env::var("WSTICKET_LOG").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("WSTICKET_LOG is not a valid filter ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (whoever read stderr went away)
        // is lost, and that is all: by default the library reports it with
        // eprintln!, which panics on the same closed stderr, in whatever
        // thread logged (a request worker, the shutdown task).
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let json = std::env::var("WSTICKET_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // A second init (tests in one process) keeps the first subscriber.
    let _ = if json {
        builder.json().finish().with(QuietClientErrors).try_init()
    } else {
        builder.finish().with(QuietClientErrors).try_init()
    };
}

//! Logging set-up. Human-readable lines by default, JSON with
//! `WSTICKET_LOG_FORMAT=json`; the filter comes from `WSTICKET_LOG`
//! (default `info`). Nothing in wsticket logs a header, a query string, a
//! body, a ticket or a key; request lines carry the route pattern only.
//!
//! A value a caller chose (a user id, a client name) is always recorded as a
//! `&str` field, never with `%`: the text format then prints it quoted and
//! escaped (`user_id="mallory audience=admin"`), the JSON format as a JSON
//! string, so it cannot pose as other fields or lines.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub(crate) fn init() {
    let filter = std::env::var("WSTICKET_LOG").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("WSTICKET_LOG is not a valid filter ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let json = std::env::var("WSTICKET_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // A second init (tests in one process) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

//! Prometheus metrics, served on the admin listener.
//!
//! Every label is bounded: routes are matched patterns (never a raw path),
//! methods and statuses come from fixed tables, audiences from the
//! configuration (anything else is `unknown`), outcomes, reasons, store
//! operations and error kinds are our own constants. No user, ticket, key or
//! origin is ever a label.

use crate::domain::Audience;
use crate::store::MemoryStore;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The in-memory store's gauges, set from its usage when scraped.
struct MemoryStoreCollector {
    store: Arc<MemoryStore>,
    entries: prometheus::IntGauge,
    bytes: prometheus::IntGauge,
    max_bytes: prometheus::IntGauge,
    full: prometheus::IntGauge,
}

impl MemoryStoreCollector {
    fn gauges(&self) -> [&prometheus::IntGauge; 4] {
        [&self.entries, &self.bytes, &self.max_bytes, &self.full]
    }
}

impl Collector for MemoryStoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let usage = self.store.usage();
        let int = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.entries.set(int(usage.entries));
        self.bytes.set(int(usage.bytes));
        self.max_bytes.set(int(usage.max_bytes));
        self.full.set(i64::from(usage.full()));
        self.gauges()
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}

/// `wsticket_log_lines_dropped_total`, brought up to the log writer's own
/// count at every scrape; one scrape at a time, or two at once would both
/// add the same lines.
struct DroppedLogLines {
    counter: prometheus::IntCounter,
    scrape: std::sync::Mutex<()>,
}

impl Collector for DroppedLogLines {
    fn desc(&self) -> Vec<&Desc> {
        self.counter.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let behind = crate::telemetry::dropped_lines().saturating_sub(self.counter.get());
        self.counter.inc_by(behind);
        self.counter.collect()
    }
}

/// 0.5 ms … 1 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

pub(crate) struct Metrics {
    registry: Registry,
    audiences: HashSet<String>,
    tickets_issued: IntCounterVec,
    redemptions: IntCounterVec,
    mints_limited: IntCounterVec,
    revocations: IntCounterVec,
    event_subscribers: prometheus::IntGauge,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    store_duration: HistogramVec,
    /// `store_duration`'s child of each of [`STORE_OPS`], looked up on
    /// first use: a store call then observes without hashing its label.
    store_duration_of: [OnceLock<Histogram>; STORE_OPS.len()],
    store_errors: IntCounterVec,
    auth_failures: IntCounterVec,
}

/// The `op` labels of the store calls (`TicketCore::timed`).
const STORE_OPS: [&str; 8] = [
    "mint",
    "redeem",
    "not_before",
    "revoke",
    "limit",
    "ping",
    "publish",
    "events",
];

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<HistogramVec, prometheus::Error> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// `audiences`: the configured ones, the only audience label values.
    pub(crate) fn new(audiences: &[Audience]) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            audiences: audiences.iter().map(|a| a.as_ref().to_owned()).collect(),
            tickets_issued: counter(
                &registry,
                "wsticket_tickets_issued_total",
                "Tickets minted and stored",
                &["audience"],
            )?,
            redemptions: counter(
                &registry,
                "wsticket_redemptions_total",
                "Redeem attempts by door (redeem, gateway) and outcome (reused: a redeemed ticket was presented again)",
                &["door", "audience", "outcome"],
            )?,
            mints_limited: counter(
                &registry,
                "wsticket_mints_limited_total",
                "Mints refused with 429 by [limits], by limit (user, ip, live)",
                &["limit"],
            )?,
            revocations: counter(
                &registry,
                "wsticket_revocations_total",
                "Revocations by kind (ticket, user) and reason (request, reuse)",
                &["kind", "reason"],
            )?,
            event_subscribers: {
                let g = prometheus::IntGauge::new(
                    "wsticket_event_subscribers",
                    "Open GET /v1/events streams of this process",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            http_requests: counter(
                &registry,
                "wsticket_http_requests_total",
                "HTTP requests answered",
                &["route", "method", "status"],
            )?,
            http_duration: histogram(
                &registry,
                "wsticket_http_request_duration_seconds",
                "Time from request to response",
                &["route"],
            )?,
            store_duration: histogram(
                &registry,
                "wsticket_store_operation_duration_seconds",
                "Ticket store operations, failed ones included",
                &["op"],
            )?,
            store_duration_of: Default::default(),
            store_errors: counter(
                &registry,
                "wsticket_store_errors_total",
                "Failed ticket store operations",
                &["op", "kind"],
            )?,
            auth_failures: counter(
                &registry,
                "wsticket_auth_failures_total",
                "Refused or failed authentications",
                &["reason"],
            )?,
            registry,
        };
        let build = IntGaugeVec::new(
            Opts::new("wsticket_build_info", "Build information"),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.registry.register(Box::new(build))?;
        m.registry
            .register(Box::new(DroppedLogLines {
                counter: prometheus::IntCounter::new(
                    "wsticket_log_lines_dropped_total",
                    format!(
                        "Log lines dropped because {} lines were already waiting to be written (stderr not read fast enough)",
                        crate::telemetry::MAX_PENDING_LINES
                    ),
                )?,
                scrape: std::sync::Mutex::new(()),
            }))?;
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(m)
    }

    /// The in-memory store's budget and use, read at every scrape.
    pub(crate) fn watch_memory_store(
        &self,
        store: Arc<MemoryStore>,
    ) -> Result<(), prometheus::Error> {
        let gauge = |name: &str, help: &str| prometheus::IntGauge::new(name, help);
        let collector = MemoryStoreCollector {
            store,
            entries: gauge(
                "wsticket_store_memory_entries",
                "Tickets in the in-memory store (fresh, used and revoked, until they expire)",
            )?,
            bytes: gauge(
                "wsticket_store_memory_bytes",
                "Estimated bytes of those tickets (store.memory_max_bytes counts these)",
            )?,
            max_bytes: gauge("wsticket_store_memory_max_bytes", "store.memory_max_bytes")?,
            full: gauge(
                "wsticket_store_memory_full",
                "1 while the in-memory store cannot take a typical ticket: mints answer 503 and /readyz is 503",
            )?,
        };
        self.registry.register(Box::new(collector))
    }

    fn audience<'a>(&self, a: Option<&'a str>) -> &'a str {
        match a {
            Some(a) if self.audiences.contains(a) => a,
            _ => "unknown",
        }
    }

    pub(crate) fn ticket_issued(&self, audience: &str) {
        self.tickets_issued
            .with_label_values(&[self.audience(Some(audience))])
            .inc();
    }

    pub(crate) fn redemption(
        &self,
        door: &'static str,
        audience: Option<&str>,
        outcome: &'static str,
    ) {
        self.redemptions
            .with_label_values(&[door, self.audience(audience), outcome])
            .inc();
    }

    pub(crate) fn mint_limited(&self, limit: &'static str) {
        self.mints_limited.with_label_values(&[limit]).inc();
    }

    pub(crate) fn revocation(&self, kind: &'static str, reason: &'static str) {
        self.revocations.with_label_values(&[kind, reason]).inc();
    }

    /// One more (`+1`) or one fewer (`-1`) event stream open.
    pub(crate) fn event_subscribers(&self, change: i64) {
        self.event_subscribers.add(change);
    }

    pub(crate) fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests
            .with_label_values(&[route, method, status_label(status)])
            .inc();
        self.http_duration
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    pub(crate) fn store_op(&self, op: &'static str, took: Duration, error: Option<&'static str>) {
        let took = took.as_secs_f64();
        match STORE_OPS.iter().position(|o| *o == op) {
            Some(i) => self.store_duration_of[i]
                .get_or_init(|| self.store_duration.with_label_values(&[op]))
                .observe(took),
            None => self.store_duration.with_label_values(&[op]).observe(took),
        }
        if let Some(kind) = error {
            self.store_errors.with_label_values(&[op, kind]).inc();
        }
    }

    pub(crate) fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(buf)
    }
}

fn status_label(status: u16) -> &'static str {
    // A static table keeps label values allocation-free and bounded.
    const CODES: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    CODES
        .iter()
        .find(|(c, _)| *c == status)
        .map(|(_, s)| *s)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_calls_are_observed_under_their_own_label_known_or_not() {
        let m = Metrics::new(&[]).unwrap();
        let ms = Duration::from_millis(1);
        m.store_op("redeem", ms, None);
        m.store_op("redeem", ms, Some("timeout"));
        m.store_op("mint", ms, None);
        m.store_op("not_in_the_list", ms, None);
        let text = String::from_utf8(m.encode().unwrap()).unwrap();
        let count = |op: &str| {
            let line = format!("wsticket_store_operation_duration_seconds_count{{op=\"{op}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&line))
                .unwrap_or_else(|| panic!("no count for {op}:\n{text}"))
                .to_owned()
        };
        assert_eq!(count("redeem"), "2");
        assert_eq!(count("mint"), "1");
        assert_eq!(count("not_in_the_list"), "1");
        assert!(text.contains("wsticket_store_errors_total{kind=\"timeout\",op=\"redeem\"} 1"));
    }
}

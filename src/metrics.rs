//! Prometheus metrics, served on the admin listener. Labels are bounded: the
//! route is the matched pattern (never the raw path), the method one of a
//! fixed set, the status a number.

use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("wsticket_http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
        })
    }

    pub fn http_request(&self, route: &str, method: &str, status: u16) {
        self.http_requests
            .with_label_values(&[route, method, status_label(status)])
            .inc();
    }

    pub fn encode(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(buf)
    }
}

/// The methods we label by name; anything else is `other`.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
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

//! Metrics, request ids, and what an operator scrapes.

use crate::helpers::*;
use crate::redis_server::RedisServer;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// `name{a="1",b="2"}` → value, with labels in sorted order.
fn parse(scrape: &str) -> BTreeMap<String, f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let series = match series.split_once('{') {
                // Re-key with sorted labels (the encoder puts `le` last).
                Some((name, labels)) => {
                    let labels = labels.trim_end_matches('}');
                    let mut pairs: Vec<(&str, &str)> = labels
                        .split("\",")
                        .filter_map(|p| p.split_once('='))
                        .map(|(k, v)| (k, v.trim_matches('"')))
                        .collect();
                    pairs.sort();
                    key(name, &pairs)
                }
                None => series.to_owned(),
            };
            Some((series, value.parse().ok()?))
        })
        .collect()
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    if labels.is_empty() {
        return name.to_owned();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn get(m: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.get(&key(name, labels)).copied().unwrap_or(0.0)
}

/// `promtool check metrics`: Prometheus' own linter. The suite needs it
/// (CI installs the `prometheus` package); it never skips.
fn promtool_check(scrape: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("promtool is needed to lint /metrics ({e}): apt-get install -y prometheus")
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics complained:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_moves_by_the_right_amount_and_promtool_agrees() {
    let redis = RedisServer::start();
    let app = spawn_with(Backend::Redis, Some(&redis.url()), "").await;
    let before = parse(&app.metrics().await);

    let a = app.mint().await;
    let b = app.mint().await;
    let c = app.mint().await;
    let chat = app
        .mint_with(json!({"user_id": "u", "origin": ORIGIN, "audience": "chat"}))
        .await;
    app.redeem(&a, Some(ORIGIN)).await.expect(200, None);
    app.redeem(&chat, Some(ORIGIN)).await.expect(200, None);
    app.redeem(&a, Some(ORIGIN)).await.expect(409, None);
    app.redeem(&b, Some("https://evil.example.com"))
        .await
        .expect(403, Some("origin_mismatch"));
    app.redeem_as(CHAT_REDEEMER, json!({"ticket": c, "origin": ORIGIN}))
        .await
        .expect(403, Some("audience_mismatch"));
    app.redeem(
        "wst_k1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        Some(ORIGIN),
    )
    .await
    .expect(404, None);
    app.redeem("not-a-ticket", Some(ORIGIN))
        .await
        .expect(400, None);
    app.post_json("/v1/tickets", None, &json!({}))
        .await
        .expect(401, None);
    app.mint_as(UNKNOWN_KEY, json!({})).await.expect(401, None);
    app.get("/readyz").await.expect(200, None);
    let port = redis.stop();
    app.mint_as(ISSUER, json!({"user_id": "u", "origin": ORIGIN}))
        .await
        .expect(503, Some("store_unavailable"));
    app.redeem(&c, Some(ORIGIN))
        .await
        .expect(503, Some("store_unavailable"));
    let _redis = RedisServer::start_on(port);

    let scrape = app.metrics().await;
    let after = parse(&scrape);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        get(&after, name, labels) - get(&before, name, labels)
    };

    let issued = "wsticket_tickets_issued_total";
    assert_eq!(delta(issued, &[("audience", "default")]), 3.0);
    assert_eq!(delta(issued, &[("audience", "chat")]), 1.0);
    let red = "wsticket_redemptions_total";
    for (audience, outcome, n) in [
        ("default", "ok", 1.0),
        ("chat", "ok", 1.0),
        ("default", "reused", 1.0),
        ("default", "origin_mismatch", 1.0),
        ("default", "audience_mismatch", 1.0),
        ("unknown", "invalid", 1.0),
        ("unknown", "malformed", 1.0),
    ] {
        assert_eq!(
            delta(
                red,
                &[
                    ("door", "redeem"),
                    ("audience", audience),
                    ("outcome", outcome)
                ]
            ),
            n,
            "{audience}/{outcome}\n{scrape}"
        );
    }
    let auth = "wsticket_auth_failures_total";
    assert_eq!(delta(auth, &[("reason", "missing_credential")]), 1.0);
    assert_eq!(delta(auth, &[("reason", "unknown_api_key")]), 1.0);

    let http = "wsticket_http_requests_total";
    let route = |r: &'static str, s: &'static str| {
        delta(http, &[("method", "POST"), ("route", r), ("status", s)])
    };
    assert_eq!(route("/v1/tickets", "201"), 4.0);
    assert_eq!(route("/v1/tickets", "401"), 2.0);
    assert_eq!(route("/v1/tickets", "503"), 1.0);
    assert_eq!(route("/v1/tickets/redeem", "200"), 2.0);
    assert_eq!(route("/v1/tickets/redeem", "409"), 1.0);
    assert_eq!(route("/v1/tickets/redeem", "403"), 2.0);
    assert_eq!(route("/v1/tickets/redeem", "404"), 1.0);
    assert_eq!(route("/v1/tickets/redeem", "400"), 1.0);
    assert_eq!(route("/v1/tickets/redeem", "503"), 1.0);
    let hist = "wsticket_http_request_duration_seconds_count";
    assert_eq!(delta(hist, &[("route", "/v1/tickets")]), 7.0);
    assert_eq!(delta(hist, &[("route", "/v1/tickets/redeem")]), 8.0);
    assert_eq!(
        delta(
            "wsticket_http_request_duration_seconds_bucket",
            &[("le", "+Inf"), ("route", "/v1/tickets")]
        ),
        7.0
    );

    // Store: 5 mint attempts; 7 takes (every redeem but the malformed one,
    // which never reaches the store); 1 ping.
    let ops = "wsticket_store_operation_duration_seconds_count";
    assert_eq!(delta(ops, &[("op", "mint")]), 5.0);
    assert_eq!(delta(ops, &[("op", "redeem")]), 7.0);
    assert_eq!(delta(ops, &[("op", "ping")]), 1.0);
    let errors = "wsticket_store_errors_total";
    for op in ["mint", "redeem"] {
        let failed: f64 = ["timeout", "connection", "other"]
            .iter()
            .map(|k| delta(errors, &[("op", op), ("kind", k)]))
            .sum();
        assert_eq!(failed, 1.0, "{op}\n{scrape}");
    }

    assert_eq!(
        get(
            &after,
            "wsticket_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(
        get(&after, "process_resident_memory_bytes", &[]) > 0.0,
        "{scrape}"
    );
    assert!(after.contains_key("process_open_fds"), "{scrape}");
    assert!(after.contains_key("process_cpu_seconds_total"), "{scrape}");

    // Nothing identifying in any label.
    for secret in [
        &a[7..],
        "alice",
        ORIGIN,
        "app.example.com",
        ISSUER,
        REDEEMER,
    ] {
        assert!(!scrape.contains(secret), "{secret} in /metrics");
    }
    promtool_check(&scrape);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = spawn_app(Backend::Memory).await;
    let url = format!("{}/healthz", app.base);
    let r = app
        .send(
            "GET",
            Some("/healthz"),
            &url,
            &[("x-request-id", "trace-42.a_b:c")],
            None,
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-42.a_b:c"));
    let made = app.send("GET", Some("/healthz"), &url, &[], None).await;
    let id = made.header("x-request-id").unwrap().to_owned();
    assert_eq!(id.len(), 32);
    // A ticket-looking id is never taken over (it would reach the logs).
    let t = app.mint().await;
    let r = app
        .send("GET", Some("/healthz"), &url, &[("x-request-id", &t)], None)
        .await;
    assert_ne!(r.header("x-request-id"), Some(t.as_str()));
    // Errors carry one too.
    let r = app
        .send("GET", None, &format!("{}/nope", app.base), &[], None)
        .await;
    assert!(r.header("x-request-id").is_some());
}

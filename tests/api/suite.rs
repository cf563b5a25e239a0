//! The behavioural suite: every test runs against the in-memory store, a
//! real Redis, a real Redis Cluster (3 masters, 3 replicas) and a real
//! Sentinel set-up (master, replica, 3 sentinels).

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

for_every_store!(
    mint_then_redeem_returns_what_was_bound,
    claims_pass_through_untouched,
    a_second_redeem_is_reuse,
    expired_tickets_are_invalid,
    unknown_and_forged_tickets_are_invalid,
    origin_mismatch_burns_the_ticket,
    audience_mismatch_burns_the_ticket,
    a_stated_audience_must_be_the_tickets,
    originless_tickets_only_redeem_without_origin,
    mint_validates_its_input,
    mint_enforces_permissions_and_audiences,
    redeem_validates_its_input,
    concurrent_redeemers_have_exactly_one_winner,
    readiness_answers_and_metrics_count_requests,
);

async fn mint_then_redeem_returns_what_was_bound(b: Backend) {
    let app = spawn_app(b).await;
    let r = app
        .mint_as(
            ISSUER,
            json!({
                "user_id": "alice",
                "origin": "HTTPS://App.Example.com:443",
                "audience": "chat",
                "ttl_secs": 60,
                "claims": {"room": "42", "roles": ["admin"], "n": 1.5}
            }),
        )
        .await;
    r.expect(201, None);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body["expires_in"], 60);
    assert_eq!(r.body["audience"], "chat");
    let ticket = r.body["ticket"].as_str().unwrap();
    assert!(ticket.starts_with("wst_k1_"), "{ticket}");

    let r = app.redeem(ticket, Some(ORIGIN)).await;
    r.expect(200, None);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body["user_id"], "alice");
    assert_eq!(r.body["origin"], ORIGIN);
    assert_eq!(r.body["audience"], "chat");
    assert_eq!(
        r.body["claims"],
        json!({"room": "42", "roles": ["admin"], "n": 1.5})
    );
    let issued = humantime::parse_rfc3339(r.body["issued_at"].as_str().unwrap()).unwrap();
    let expires = humantime::parse_rfc3339(r.body["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = expires.duration_since(issued).unwrap().as_secs();
    assert!((59..=61).contains(&lifetime), "{lifetime}");

    // Defaults: audience, ttl, empty claims; the origin is matched
    // canonically on redeem as well.
    let t = app.mint().await;
    let r = app.redeem(&t, Some("https://APP.example.com")).await;
    r.expect(200, None);
    assert_eq!(r.body["audience"], "default");
    assert_eq!(r.body["claims"], json!({}));
}

/// Claims reach the redeemer byte for byte: numbers of any size or
/// precision, escapes and spacing as the minting caller wrote them.
async fn claims_pass_through_untouched(b: Backend) {
    let app = spawn_app(b).await;
    let claims = r#"{"big":123456789012345678901234567890,"f":1.10,"e":-0.0e-0,"s":"\u00e9\n","nested":{ "k" : [ 1 , 2 ] }}"#;
    let body = format!(r#"{{"user_id":"alice","origin":"{ORIGIN}","claims":{claims}}}"#);
    let headers = [
        ("content-type", "application/json"),
        ("authorization", &format!("Bearer {ISSUER}")),
    ];
    let r = app
        .post_raw("/v1/tickets", &headers, body.into_bytes())
        .await;
    r.expect(201, None);
    let r = app
        .redeem(r.body["ticket"].as_str().unwrap(), Some(ORIGIN))
        .await;
    r.expect(200, None);
    assert!(
        r.text.contains(&format!(r#""claims":{claims}"#)),
        "claims changed on the way: {}",
        r.text
    );
    // null counts as absent.
    let r = app
        .mint_as(
            ISSUER,
            json!({"user_id": "a", "origin": ORIGIN, "claims": null}),
        )
        .await;
    r.expect(201, None);
    let r = app
        .redeem(r.body["ticket"].as_str().unwrap(), Some(ORIGIN))
        .await;
    assert!(r.text.contains(r#""claims":{}"#), "{}", r.text);
}

async fn a_second_redeem_is_reuse(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.mint().await;
    app.redeem(&t, Some(ORIGIN)).await.expect(200, None);
    let r = app.redeem(&t, Some(ORIGIN)).await;
    r.expect(409, Some("ticket_reused"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    app.redeem(&t, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
}

async fn expired_tickets_are_invalid(b: Backend) {
    let app = spawn_app(b).await;
    let unused = app
        .mint_with(json!({"user_id": "a", "origin": ORIGIN, "ttl_secs": 1}))
        .await;
    let used = app
        .mint_with(json!({"user_id": "a", "origin": ORIGIN, "ttl_secs": 1}))
        .await;
    app.redeem(&used, Some(ORIGIN)).await.expect(200, None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.redeem(&unused, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    // Reuse is reported only within the ticket's lifetime.
    app.redeem(&used, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
}

async fn unknown_and_forged_tickets_are_invalid(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.mint().await;
    // Same shape, other bytes: never minted.
    let mut forged = t.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'Q' } else { 'A' });
    app.redeem(&forged, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    // A key id the server does not know.
    let other_kid = t.replacen("wst_k1_", "wst_k9_", 1);
    app.redeem(&other_kid, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    // The real ticket is untouched by all this.
    app.redeem(&t, Some(ORIGIN)).await.expect(200, None);
}

async fn origin_mismatch_burns_the_ticket(b: Backend) {
    let app = spawn_app(b).await;
    for wrong in [
        Some("https://evil.example.com"),
        Some("https://app.example.com.evil.com"),
        Some("http://app.example.com"),
        Some("https://app.example.com:8443"),
        Some("null"),
        Some("not an origin"),
        None,
    ] {
        let t = app.mint().await;
        app.redeem(&t, wrong)
            .await
            .expect(403, Some("origin_mismatch"));
        app.redeem(&t, Some(ORIGIN))
            .await
            .expect(409, Some("ticket_reused"));
    }
}

async fn audience_mismatch_burns_the_ticket(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.mint().await; // audience "default"
    app.redeem_as(CHAT_REDEEMER, json!({"ticket": t, "origin": ORIGIN}))
        .await
        .expect(403, Some("audience_mismatch"));
    app.redeem(&t, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
    // The chat redeemer may redeem chat tickets.
    let t = app
        .mint_with(json!({"user_id": "a", "origin": ORIGIN, "audience": "chat"}))
        .await;
    app.redeem_as(CHAT_REDEEMER, json!({"ticket": t, "origin": ORIGIN}))
        .await
        .expect(200, None);
}

/// A WebSocket server may state the audience it serves: a ticket for
/// another is consumed (403 audience_mismatch); an audience the caller may
/// not redeem touches no ticket (403 forbidden); a malformed one is a 400.
async fn a_stated_audience_must_be_the_tickets(b: Backend) {
    let app = spawn_app(b).await;
    let chat = json!({"user_id": "a", "origin": ORIGIN, "audience": "chat"});
    let t = app.mint_with(chat.clone()).await;
    let redeem = |ticket: &str, audience: &str| {
        app.redeem_as(
            REDEEMER,
            json!({"ticket": ticket, "origin": ORIGIN, "audience": audience}),
        )
    };
    redeem(&t, "bad audience")
        .await
        .expect(400, Some("invalid_request"));
    redeem(&t, "billing").await.expect(403, Some("forbidden"));
    let r = app
        .redeem_as(
            CHAT_REDEEMER,
            json!({"ticket": t, "origin": ORIGIN, "audience": "default"}),
        )
        .await;
    r.expect(403, Some("forbidden"));
    // None of those touched it.
    redeem(&t, "chat").await.expect(200, None);

    let t = app.mint_with(chat).await;
    redeem(&t, "default")
        .await
        .expect(403, Some("audience_mismatch"));
    redeem(&t, "chat").await.expect(409, Some("ticket_reused"));
}

async fn originless_tickets_only_redeem_without_origin(b: Backend) {
    let strict = spawn_app(b).await;
    strict
        .mint_as(ISSUER, json!({"user_id": "a"}))
        .await
        .expect(400, Some("invalid_request"));

    let app = spawn_with(b, None, "allow_originless = true").await;
    let t = app.mint_with(json!({"user_id": "a"})).await;
    let r = app.redeem_as(REDEEMER, json!({"ticket": t})).await;
    r.expect(200, None);
    assert_eq!(r.body["origin"], serde_json::Value::Null);
    let t = app.mint_with(json!({"user_id": "a"})).await;
    app.redeem(&t, Some(ORIGIN))
        .await
        .expect(403, Some("origin_mismatch"));
    // An origin-bound ticket still needs its origin there.
    let t = app.mint().await;
    app.redeem(&t, None)
        .await
        .expect(403, Some("origin_mismatch"));
}

async fn mint_validates_its_input(b: Backend) {
    let app = spawn_app(b).await;
    let bad_request = [
        json!({"origin": ORIGIN}),
        json!({"user_id": "", "origin": ORIGIN}),
        json!({"user_id": "a".repeat(257), "origin": ORIGIN}),
        json!({"user_id": "a\u{7}b", "origin": ORIGIN}),
        json!({"user_id": 5, "origin": ORIGIN}),
        json!({"user_id": "a", "origin": ORIGIN, "ttl_secs": 0}),
        json!({"user_id": "a", "origin": ORIGIN, "ttl_secs": 121}),
        json!({"user_id": "a", "origin": ORIGIN, "ttl_secs": -1}),
        json!({"user_id": "a", "origin": ORIGIN, "ttl_secs": 1.5}),
        json!({"user_id": "a", "origin": ORIGIN, "claims": "x"}),
        json!({"user_id": "a", "origin": ORIGIN, "claims": [1]}),
        json!({"user_id": "a", "origin": ORIGIN, "claims": {"big": "x".repeat(4096)}}),
        json!({"user_id": "a", "origin": ORIGIN, "audience": "bad audience"}),
        json!({"user_id": "a", "origin": ORIGIN, "extra": 1}),
        json!({"user_id": "a", "origin": "https://a@app.example.com"}),
        json!({"user_id": "a", "origin": "https://app.example.com/path"}),
        json!({"user_id": "a", "origin": "https://app.example.com?q=1"}),
        json!({"user_id": "a", "origin": "app.example.com"}),
        json!(null),
        json!([]),
    ];
    for body in bad_request {
        let r = app.mint_as(ISSUER, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request"),
            "{body}: {}",
            r.text
        );
    }
    // Exactly at the claims limit is fine.
    let filler = "x".repeat(4096 - r#"{"k":""}"#.len());
    app.mint_with(json!({"user_id": "a", "origin": ORIGIN, "claims": {"k": filler}}))
        .await;

    for origin in [
        "https://evil.com",
        "https://app.example.com.evil.com",
        "https://evilexample.org",
        "https://example.org",
        "https://app.example.com.",
        "http://app.example.com",
        "https://app.example.com:8443",
        "null",
        "file://",
        "file:///etc/passwd",
    ] {
        let r = app
            .mint_as(ISSUER, json!({"user_id": "a", "origin": origin}))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (403, "origin_not_allowed"),
            "{origin}: {}",
            r.text
        );
    }
    for origin in [
        "https://a.example.org",
        "https://deep.sub.example.org:443",
        "HTTP://LOCALHOST:3000",
    ] {
        app.mint_with(json!({"user_id": "a", "origin": origin}))
            .await;
    }
}

async fn mint_enforces_permissions_and_audiences(b: Backend) {
    let app = spawn_app(b).await;
    let body = json!({"user_id": "a", "origin": ORIGIN});
    let r = app.post_json("/v1/tickets", None, &body).await;
    r.expect(401, Some("unauthenticated"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    app.mint_as(UNKNOWN_KEY, body.clone())
        .await
        .expect(401, Some("unauthenticated"));
    app.mint_as("not-a-key", body.clone())
        .await
        .expect(401, Some("unauthenticated"));
    app.mint_as(REDEEMER, body.clone())
        .await
        .expect(403, Some("forbidden"));
    // Unknown audience; audience the client may not use.
    app.mint_as(
        ISSUER,
        json!({"user_id": "a", "origin": ORIGIN, "audience": "billing"}),
    )
    .await
    .expect(403, Some("forbidden"));
    app.mint_as(CHAT_ISSUER, body.clone())
        .await
        .expect(403, Some("forbidden"));
    app.mint_as(
        CHAT_ISSUER,
        json!({"user_id": "a", "origin": ORIGIN, "audience": "chat"}),
    )
    .await
    .expect(201, None);
}

async fn redeem_validates_its_input(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.mint().await;
    for body in [
        json!({}),
        json!({"ticket": 1}),
        json!({"ticket": null}),
        json!({"ticket": "wst_k1_short"}),
        json!({"ticket": t.to_uppercase()}),
        json!({"ticket": format!("{t}=")}),
        json!({"ticket": format!(" {t}")}),
        json!({"ticket": t, "origin": 5}),
        json!({"ticket": t, "extra": true}),
    ] {
        let r = app.redeem_as(REDEEMER, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request"),
            "{body}: {}",
            r.text
        );
        // The detail never echoes what was sent.
        assert!(!r.text.contains(&t[7..]), "{}", r.text);
    }
    let body = json!({"ticket": t, "origin": ORIGIN});
    let r = app.post_json("/v1/tickets/redeem", None, &body).await;
    r.expect(401, Some("unauthenticated"));
    app.redeem_as(ISSUER, body.clone())
        .await
        .expect(403, Some("forbidden"));
    // None of that consumed the ticket.
    app.redeem(&t, Some(ORIGIN)).await.expect(200, None);
}

async fn concurrent_redeemers_have_exactly_one_winner(b: Backend) {
    let app = std::sync::Arc::new(spawn_app(b).await);
    let mut tickets = Vec::new();
    for _ in 0..200 {
        tickets.push(app.mint().await);
    }
    // Each ticket's 8 redeemers race each other; 16 tickets are in play at
    // a time (128 requests in flight, well under the store's bound).
    use futures_util::StreamExt;
    let results: Vec<(String, u16)> = futures_util::stream::iter(tickets)
        .map(|t| {
            let app = app.clone();
            async move {
                let racers = (0..8).map(|_| {
                    let (app, t) = (app.clone(), t.clone());
                    tokio::spawn(async move { app.redeem(&t, Some(ORIGIN)).await.status })
                });
                let statuses = futures_util::future::join_all(racers).await;
                statuses
                    .into_iter()
                    .map(|s| (t.clone(), s.unwrap()))
                    .collect::<Vec<_>>()
            }
        })
        .buffer_unordered(16)
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;
    let mut wins = std::collections::HashMap::<String, usize>::new();
    let mut reused = 0;
    for (t, status) in results {
        match status {
            200 => *wins.entry(t).or_default() += 1,
            409 => reused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(wins.len(), 200, "every ticket redeemed once");
    assert!(
        wins.values().all(|&n| n == 1),
        "a ticket was redeemed twice"
    );
    assert_eq!(reused, 200 * 7);
}

async fn readiness_answers_and_metrics_count_requests(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.get("/healthz").await;
    r.expect(200, None);
    assert_eq!(r.body, json!({"status": "ok"}));
    let r = app.get("/readyz").await;
    r.expect(200, None);
    assert_eq!(r.body, json!({"status": "ready"}));
    app.mint().await;
    app.mint_as(REDEEMER, json!({}))
        .await
        .expect(403, Some("forbidden"));
    let m = app.metrics().await;
    assert!(
        m.contains(
            r#"wsticket_http_requests_total{method="POST",route="/v1/tickets",status="201"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"wsticket_http_requests_total{method="POST",route="/v1/tickets",status="403"} 1"#
        ),
        "{m}"
    );
    assert!(m.contains(r#"route="/readyz",status="200"} 1"#), "{m}");
}

//! Tickets bound to the client's address (`bind_ip`): minted by a backend
//! (which says the address) or a browser (whose request's address it is),
//! redeemed only with the same address, else burned with 403 ip_mismatch.

use crate::frontend::{HS_SECRET, claims, hs, jwt_config, sign};
use crate::helpers::*;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

impl TestApp {
    async fn mint_bound(&self, extra: Value) -> Resp {
        let mut body = json!({ "user_id": "alice", "origin": ORIGIN, "bind_ip": true });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.mint_as(ISSUER, body).await
    }

    async fn redeem_from(&self, ticket: &str, client_ip: Option<&str>) -> Resp {
        self.redeem_as(
            REDEEMER,
            json!({ "ticket": ticket, "origin": ORIGIN, "client_ip": client_ip }),
        )
        .await
    }
}

fn ticket(r: &Resp) -> String {
    r.expect(201, None);
    r.body["ticket"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_bound_ticket_redeems_only_from_its_address() {
    let app = spawn_app(Backend::Memory).await;
    let t = ticket(&app.mint_bound(json!({ "client_ip": "203.0.113.7" })).await);
    app.redeem_from(&t, Some("203.0.113.7"))
        .await
        .expect(200, None);

    // Another address: refused and burned.
    let t = ticket(&app.mint_bound(json!({ "client_ip": "203.0.113.7" })).await);
    app.redeem_from(&t, Some("203.0.113.8"))
        .await
        .expect(403, Some("ip_mismatch"));
    app.redeem_from(&t, Some("203.0.113.7"))
        .await
        .expect(409, Some("ticket_reused"));

    // No address at all is a mismatch too.
    let t = ticket(&app.mint_bound(json!({ "client_ip": "2001:db8::1" })).await);
    app.redeem_from(&t, None)
        .await
        .expect(403, Some("ip_mismatch"));

    // Two spellings of one address are one address.
    let t = ticket(
        &app.mint_bound(json!({ "client_ip": "::ffff:203.0.113.7" }))
            .await,
    );
    app.redeem_from(&t, Some("203.0.113.7"))
        .await
        .expect(200, None);
    let t = ticket(
        &app.mint_bound(json!({ "client_ip": "2001:DB8:0::1" }))
            .await,
    );
    app.redeem_from(&t, Some("2001:db8::1"))
        .await
        .expect(200, None);

    // A malformed address is a 400 before the ticket is touched.
    let t = ticket(&app.mint_bound(json!({ "client_ip": "203.0.113.7" })).await);
    app.redeem_from(&t, Some("203.0.113"))
        .await
        .expect(400, Some("invalid_request"));
    app.redeem_from(&t, Some("203.0.113.7"))
        .await
        .expect(200, None);

    // An unbound ticket ignores the address.
    let t = app.mint().await;
    app.redeem_from(&t, Some("198.51.100.1"))
        .await
        .expect(200, None);

    let m = app.metrics().await;
    assert!(
        m.contains(r#"wsticket_redemptions_total{audience="default",door="redeem",outcome="ip_mismatch"} 2"#),
        "{m}"
    );
}

#[tokio::test]
async fn a_backend_must_say_the_address_to_bind() {
    let app = spawn_app(Backend::Memory).await;
    for (extra, needle) in [
        (json!({}), "client_ip is required"),
        (json!({ "client_ip": "not-an-ip" }), "not an IPv4 or IPv6"),
        (
            json!({ "bind_ip": false, "client_ip": "203.0.113.7" }),
            "only accepted with bind_ip",
        ),
    ] {
        let r = app.mint_bound(extra).await;
        r.expect(400, Some("invalid_request"));
        assert!(
            r.body["detail"].as_str().unwrap().contains(needle),
            "{}",
            r.text
        );
    }
    // With tickets.bind_ip, binding is the default; a backend may opt out.
    let app = spawn_with(Backend::Memory, None, "bind_ip = true").await;
    app.mint_as(ISSUER, json!({ "user_id": "alice", "origin": ORIGIN }))
        .await
        .expect(400, Some("invalid_request"));
    let t = ticket(
        &app.mint_as(
            ISSUER,
            json!({ "user_id": "alice", "origin": ORIGIN, "client_ip": "203.0.113.7" }),
        )
        .await,
    );
    app.redeem_from(&t, Some("203.0.113.9"))
        .await
        .expect(403, Some("ip_mismatch"));
    let t = ticket(
        &app.mint_as(
            ISSUER,
            json!({ "user_id": "alice", "origin": ORIGIN, "bind_ip": false }),
        )
        .await,
    );
    app.redeem_from(&t, None).await.expect(200, None);
}

/// The test configuration with `[auth.jwt]` (HS256), `tickets_extra` and
/// `[limits]` trusting loopback as a proxy.
async fn spawn_browser(tickets_extra: &str) -> TestApp {
    let prefix = random_prefix();
    let text = format!(
        "{}\n{}\n[limits]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
        base_config(Backend::Memory, None, &prefix, tickets_extra),
        jwt_config(&format!("hs_secret = \"{HS_SECRET}\""), "[\"HS256\"]")
    );
    spawn_toml(&text, prefix).await
}

async fn browser_mint(app: &TestApp, body: Value, forwarded_for: &str) -> Resp {
    let auth = format!(
        "Bearer {}",
        sign(Algorithm::HS256, &hs(), None, &claims("bob"))
    );
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
        ("origin", ORIGIN),
        ("x-forwarded-for", forwarded_for),
    ];
    app.post_raw("/v1/tickets", &headers, serde_json::to_vec(&body).unwrap())
        .await
}

#[tokio::test]
async fn a_browser_ticket_is_bound_to_the_address_of_its_request() {
    let app = spawn_browser("").await;
    // Behind a trusted proxy: the forwarded address, not the proxy's.
    let t = ticket(&browser_mint(&app, json!({ "bind_ip": true }), "198.51.100.9").await);
    app.redeem_from(&t, Some("127.0.0.1"))
        .await
        .expect(403, Some("ip_mismatch"));
    let t = ticket(&browser_mint(&app, json!({ "bind_ip": true }), "198.51.100.9").await);
    app.redeem_from(&t, Some("198.51.100.9"))
        .await
        .expect(200, None);
    // A page cannot name an address.
    browser_mint(
        &app,
        json!({ "bind_ip": true, "client_ip": "203.0.113.7" }),
        "198.51.100.9",
    )
    .await
    .expect(400, Some("invalid_request"));

    // Nor turn the policy's binding off; asking for nothing gets it.
    let app = spawn_browser("bind_ip = true").await;
    browser_mint(&app, json!({ "bind_ip": false }), "198.51.100.9")
        .await
        .expect(400, Some("invalid_request"));
    let t = ticket(&browser_mint(&app, json!({}), "198.51.100.9").await);
    app.redeem_from(&t, Some("198.51.100.10"))
        .await
        .expect(403, Some("ip_mismatch"));
}

#[tokio::test]
async fn the_gateway_checks_a_binding_against_the_forwarded_address() {
    let prefix = random_prefix();
    let text = format!(
        "{}\n[limits]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
        base_config(Backend::Memory, None, &prefix, "")
    );
    let app = spawn_toml(&text, prefix).await;
    let check = |ticket: String, from: &'static str| {
        let app = &app;
        async move {
            let url = format!("{}/v1/gateway/check?ticket={ticket}", app.base);
            let headers = [
                ("x-wsticket-gateway-key", REDEEMER),
                ("origin", ORIGIN),
                ("x-forwarded-for", from),
            ];
            app.send("GET", Some("/v1/gateway/check"), &url, &headers, None)
                .await
        }
    };
    let t = ticket(&app.mint_bound(json!({ "client_ip": "203.0.113.7" })).await);
    check(t, "203.0.113.7").await.expect(200, None);
    let t = ticket(&app.mint_bound(json!({ "client_ip": "203.0.113.7" })).await);
    check(t, "203.0.113.99")
        .await
        .expect(403, Some("ip_mismatch"));
}

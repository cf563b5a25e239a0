//! The gateway check, with the exact request shapes of each proxy (nginx,
//! ingress-nginx, Traefik, Caddy, Envoy). The real nginx and Caddy in front
//! of a real WebSocket server are tested in integrations/gateways.

use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

const CHECK: &str = "/v1/gateway/check";

impl TestApp {
    /// GET `path` (a route of the table, `route` its OpenAPI form) with
    /// these headers, as a proxy would.
    async fn check(&self, route: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let url = format!("{}{path}", self.base);
        self.send("GET", Some(route), &url, headers, None).await
    }
}

/// The headers every check carries: the gateway's key and the page's
/// origin (and the browser's own Authorization, which must not matter).
fn base<'a>(key: &'a str, origin: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("x-wsticket-gateway-key", key),
        ("origin", origin),
        ("authorization", "Bearer some-browser-token"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proxy_shape_redeems_once_and_passes_the_identity() {
    let app = spawn_app(Backend::Memory).await;
    let claims = json!({"room": "42", "big": 12345678901234567890u64});
    let mint = || {
        app.mint_with(
            json!({"user_id": "alice é,x", "origin": ORIGIN, "audience": "chat", "claims": claims}),
        )
    };

    // nginx auth_request: X-Original-URI.
    let t = mint().await;
    let uri = format!("/ws?room=1&ticket={t}");
    let mut h = base(REDEEMER, ORIGIN);
    h.push(("x-original-uri", &uri));
    let r = app.check(CHECK, CHECK, &h).await;
    r.expect(200, None);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-wsticket-user"), Some("alice%20%C3%A9%2Cx"));
    assert_eq!(r.header("x-wsticket-audience"), Some("chat"));
    assert_eq!(r.header("x-wsticket-origin"), Some(ORIGIN));
    let issued = humantime::parse_rfc3339(r.header("x-wsticket-issued-at").unwrap()).unwrap();
    let age = std::time::SystemTime::now().duration_since(issued).unwrap();
    assert!(age < std::time::Duration::from_secs(10), "{age:?}");
    assert!(r.header("x-wsticket-issued-at").unwrap().contains('.'));
    let decoded = URL_SAFE_NO_PAD
        .decode(r.header("x-wsticket-claims").unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        r#"{"room":"42","big":12345678901234567890}"#
    );
    // The same ticket again: 401, which every proxy understands.
    let r = app.check(CHECK, CHECK, &h).await;
    r.expect(401, Some("unauthenticated"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // ingress-nginx: the whole URL in X-Original-URL.
    let t = mint().await;
    let url = format!("https://chat.example.com/ws?ticket={t}");
    let mut h = base(REDEEMER, ORIGIN);
    h.extend([
        ("x-original-url", url.as_str()),
        ("x-original-method", "GET"),
    ]);
    app.check(CHECK, CHECK, &h).await.expect(200, None);

    // Traefik: X-Forwarded-Uri, hop-by-hop headers gone, the client's
    // headers (cookies, its own X-Wsticket-User) copied.
    let t = mint().await;
    let uri = format!("/ws?ticket={t}");
    let mut h = base(REDEEMER, ORIGIN);
    h.extend([
        ("x-forwarded-uri", uri.as_str()),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("cookie", "session=abc"),
        ("x-wsticket-user", "mallory"),
    ]);
    let r = app.check(CHECK, CHECK, &h).await;
    r.expect(200, None);
    assert!(r.header("x-wsticket-user").unwrap().starts_with("alice"));

    // Caddy: X-Forwarded-Uri, and the client's Upgrade headers: answered
    // like any GET, never switched.
    let t = mint().await;
    let uri = format!("/ws?ticket={t}");
    let mut h = base(REDEEMER, ORIGIN);
    h.extend([
        ("x-forwarded-uri", uri.as_str()),
        ("x-forwarded-method", "GET"),
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ]);
    let r = app.check(CHECK, CHECK, &h).await;
    r.expect(200, None);

    // Envoy ext_authz: the original path and query after the path_prefix;
    // exactly 200 allows.
    let t = mint().await;
    let path = format!("{CHECK}/chat/ws/room/7?ticket={t}");
    let r = app
        .check(
            "/v1/gateway/check/{audience}/{path}",
            &path,
            &base(REDEEMER, ORIGIN),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The subprotocol carrier.
    let t = mint().await;
    let protocols = format!("chat.v1, wsticket.{t}");
    let mut h = base(REDEEMER, ORIGIN);
    h.extend([
        ("x-forwarded-uri", "/ws"),
        ("sec-websocket-protocol", protocols.as_str()),
    ]);
    app.check(CHECK, CHECK, &h).await.expect(200, None);

    // Metrics and logs name the door.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"wsticket_redemptions_total{audience="chat",door="gateway",outcome="ok"} 6"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"wsticket_redemptions_total{audience="chat",door="gateway",outcome="reused"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_401_or_403_and_a_bad_gateway_never_spends_a_ticket() {
    let app = spawn_app(Backend::Memory).await;
    let ticket = app.mint_with(json!({"user_id": "a", "origin": ORIGIN, "audience": "chat"}));
    let with_ticket = |t: &str| format!("/ws?ticket={t}");

    // No gateway key, an unknown one, or one without redeem: 403, and the
    // ticket is still good.
    let t = ticket.await;
    let uri = with_ticket(&t);
    for key in ["", UNKNOWN_KEY, ISSUER, "not-a-key"] {
        let mut h = base(key, ORIGIN);
        if key.is_empty() {
            h.retain(|(k, _)| *k != "x-wsticket-gateway-key");
        }
        h.push(("x-original-uri", &uri));
        let r = app.check(CHECK, CHECK, &h).await;
        r.expect(403, Some("forbidden"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // A route for an audience the key may not redeem (or that does not
    // exist): 403 before the ticket is touched.
    for audience in ["default", "billing", "not valid"] {
        let path = format!("{CHECK}/{}", audience.replace(' ', "%20"));
        let mut h = base(CHAT_REDEEMER, ORIGIN);
        h.push(("x-original-uri", &uri));
        // The chat key may not redeem "default"; "billing" is no audience.
        app.check("/v1/gateway/check/{audience}", &path, &h)
            .await
            .expect(403, Some("forbidden"));
    }
    let mut h = base(CHAT_REDEEMER, ORIGIN);
    h.push(("x-original-uri", &uri));
    app.check("/v1/gateway/check/{audience}", &format!("{CHECK}/chat"), &h)
        .await
        .expect(200, None);

    // Another origin: 403 origin_mismatch, and the ticket is spent.
    let t = app
        .mint_with(json!({"user_id": "a", "origin": ORIGIN, "audience": "chat"}))
        .await;
    let uri = with_ticket(&t);
    let mut h = base(REDEEMER, "https://evil.example.com");
    h.push(("x-original-uri", &uri));
    app.check(CHECK, CHECK, &h)
        .await
        .expect(403, Some("origin_mismatch"));
    let mut h = base(REDEEMER, ORIGIN);
    h.push(("x-original-uri", &uri));
    app.check(CHECK, CHECK, &h)
        .await
        .expect(401, Some("unauthenticated"));

    // A route for another audience than the ticket's: audience_mismatch.
    let t = app.mint().await; // audience "default"
    let uri = with_ticket(&t);
    let mut h = base(REDEEMER, ORIGIN);
    h.push(("x-original-uri", &uri));
    app.check("/v1/gateway/check/{audience}", &format!("{CHECK}/chat"), &h)
        .await
        .expect(403, Some("audience_mismatch"));

    // No ticket anywhere, or a malformed one: 401, never 400 (nginx would
    // turn a 400 into a 500).
    for uri in [
        "/ws",
        "/ws?ticket=",
        "/ws?ticket=not-a-ticket",
        "/ws?ticket=wst_k1_short",
    ] {
        let mut h = base(REDEEMER, ORIGIN);
        h.push(("x-original-uri", uri));
        app.check(CHECK, CHECK, &h)
            .await
            .expect(401, Some("unauthenticated"));
    }
}

/// Two different tickets in one request (an app's own `ticket` parameter, a
/// header the client slipped past the proxy): 401, and neither is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tickets_are_refused_and_neither_is_spent() {
    let app = spawn_app(Backend::Memory).await;
    let (a, b) = (app.mint().await, app.mint().await);
    let uri = format!("/ws?ticket={a}");
    let protocols = format!("chat.v1, wsticket.{b}");
    let mut h = base(REDEEMER, ORIGIN);
    h.push(("x-original-uri", &uri));
    h.push(("sec-websocket-protocol", &protocols));
    let r = app.check(CHECK, CHECK, &h).await;
    r.expect(401, Some("unauthenticated"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("more than one ticket"),
        "{}",
        r.body
    );
    // The same ticket in two places is one ticket.
    let mut h = base(REDEEMER, ORIGIN);
    let url = format!("https://chat.example.com/ws?ticket={a}");
    h.push(("x-original-uri", &uri));
    h.push(("x-original-url", &url));
    app.check(CHECK, CHECK, &h).await.expect(200, None);
    app.redeem(&b, Some(ORIGIN)).await.expect(200, None);
}

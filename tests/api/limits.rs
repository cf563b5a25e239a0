//! `[limits]`: per-user and per-address mint rates and the cap on a user's
//! live tickets, shared through the store (so on every backend), and the
//! client address behind trusted proxies.

use crate::frontend::{HS_SECRET, claims, hs, jwt_config, sign};
use crate::helpers::*;
use crate::redis_server::RedisServer;
use jsonwebtoken::Algorithm;
use serde_json::json;

/// The test configuration with `[auth.jwt]` (HS256) and `limits`.
async fn spawn_limited(b: Backend, limits: &str) -> TestApp {
    let prefix = random_prefix();
    let text = format!(
        "{}\n{}\n[limits]\n{limits}\n",
        base_config(b, None, &prefix, ""),
        jwt_config(&format!("hs_secret = \"{HS_SECRET}\""), "[\"HS256\"]")
    );
    spawn_toml(&text, prefix).await
}

fn jwt(user: &str) -> String {
    sign(Algorithm::HS256, &hs(), None, &claims(user))
}

impl TestApp {
    /// Mint as a browser, with extra headers.
    async fn mint_from(&self, user: &str, headers: &[(&str, &str)]) -> Resp {
        let auth = format!("Bearer {}", jwt(user));
        let mut h = vec![
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
            ("origin", ORIGIN),
        ];
        h.extend_from_slice(headers);
        self.post_raw("/v1/tickets", &h, b"{}".to_vec()).await
    }
}

#[track_caller]
fn assert_limited(r: &Resp, limit: &str, quota: u32, window: u64) {
    r.expect(429, Some("rate_limited"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    assert_eq!(
        r.header("ratelimit-policy"),
        Some(format!("\"{limit}\";q={quota};w={window}").as_str())
    );
    assert_eq!(
        r.header("ratelimit"),
        Some(format!("\"{limit}\";r=0;t={retry}").as_str())
    );
}

async fn a_user_mints_at_its_rate(b: Backend) {
    let app = spawn_limited(
        b,
        "mint_per_user = \"1/m\"\nmint_per_user_burst = 2\nmint_per_ip = \"off\"",
    )
    .await;
    app.mint_from("ann", &[]).await.expect(201, None);
    app.mint_from("ann", &[]).await.expect(201, None);
    let r = app.mint_from("ann", &[]).await;
    assert_limited(&r, "user", 2, 120);
    // The page's script may read them, cross-origin.
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("Retry-After, RateLimit, RateLimit-Policy")
    );
    assert!(
        r.header("retry-after").unwrap().parse::<u64>().unwrap() > 50,
        "{:?}",
        r.headers
    );
    // Another user has a limit of their own.
    app.mint_from("bob", &[]).await.expect(201, None);
    // API-key callers (trusted backends) are not limited by default.
    for _ in 0..4 {
        app.mint_as(ISSUER, json!({"user_id": "ann", "origin": ORIGIN}))
            .await
            .expect(201, None);
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("wsticket_mints_limited_total{limit=\"user\"} 1"),
        "{metrics}"
    );
}

async fn api_keys_are_limited_when_told(b: Backend) {
    let app = spawn_limited(
        b,
        "mint_per_user = \"1/h\"\nmint_per_user_burst = 1\napply_to_api_keys = true",
    )
    .await;
    let mint = |user: &str| app.mint_as(ISSUER, json!({"user_id": user, "origin": ORIGIN}));
    mint("ann").await.expect(201, None);
    assert_limited(&mint("ann").await, "user", 1, 3600);
    mint("bob").await.expect(201, None);
}

async fn an_address_mints_at_its_rate(b: Backend) {
    let app = spawn_limited(
        b,
        "mint_per_user = \"off\"\nmint_per_ip = \"1/m\"\nmint_per_ip_burst = 2",
    )
    .await;
    app.mint_from("ann", &[]).await.expect(201, None);
    app.mint_from("bob", &[]).await.expect(201, None);
    // A third user from the same address; a spoofed X-Forwarded-For from
    // an untrusted peer changes nothing.
    let r = app
        .mint_from("cid", &[("x-forwarded-for", "203.0.113.99")])
        .await;
    assert_limited(&r, "ip", 2, 120);
}

async fn live_tickets_are_capped_per_user(b: Backend) {
    let app = spawn_limited(
        b,
        "max_live_per_user = 2\nmint_per_user = \"off\"\nmint_per_ip = \"off\"",
    )
    .await;
    let first = app.mint_from("ann", &[]).await;
    first.expect(201, None);
    app.mint_from("ann", &[]).await.expect(201, None);
    let r = app.mint_from("ann", &[]).await;
    assert_limited(&r, "live", 2, 120);
    app.mint_from("bob", &[]).await.expect(201, None);
    // Redeeming one frees its place.
    app.redeem(first.body["ticket"].as_str().unwrap(), Some(ORIGIN))
        .await
        .expect(200, None);
    app.mint_from("ann", &[]).await.expect(201, None);
    assert_limited(&app.mint_from("ann", &[]).await, "live", 2, 120);
}

/// Behind a trusted proxy (here: the test's own loopback peer), the client
/// is the rightmost address of X-Forwarded-For that is not itself trusted:
/// what a client writes at the left changes nothing.
async fn behind_a_trusted_proxy_the_rightmost_untrusted_address_counts(b: Backend) {
    let app = spawn_limited(
        b,
        "mint_per_user = \"off\"\nmint_per_ip = \"1/m\"\nmint_per_ip_burst = 1\n\
         trusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]",
    )
    .await;
    let via = |xff: &'static str| [("x-forwarded-for", xff)];
    app.mint_from("ann", &via("6.6.6.6, 198.51.100.1"))
        .await
        .expect(201, None);
    // The same client, whatever it claims before it.
    let r = app
        .mint_from("bob", &via("1.2.3.4, 198.51.100.1, 10.0.0.3"))
        .await;
    assert_limited(&r, "ip", 1, 60);
    // Another client behind the same proxies.
    app.mint_from("cid", &via("198.51.100.2"))
        .await
        .expect(201, None);
    // Forwarded, when there is no X-Forwarded-For.
    let r = app
        .mint_from("dee", &[("forwarded", "for=198.51.100.2;proto=https")])
        .await;
    assert_limited(&r, "ip", 1, 60);
}

/// A limiter that cannot ask the store fails closed, like every store call:
/// no ticket for a browser while Redis is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_without_its_store_fails_closed() {
    let redis = RedisServer::start();
    let prefix = random_prefix();
    let text = format!(
        "{}\n{}\n[limits]\nmint_per_user = \"10/s\"\n",
        base_config(Backend::Redis, Some(&redis.url()), &prefix, ""),
        jwt_config(&format!("hs_secret = \"{HS_SECRET}\""), "[\"HS256\"]")
    );
    let app = spawn_toml(&text, prefix).await;
    app.mint_from("ann", &[]).await.expect(201, None);
    let _port = redis.stop();
    app.mint_from("ann", &[])
        .await
        .expect(503, Some("store_unavailable"));
}

for_every_store!(
    a_user_mints_at_its_rate,
    api_keys_are_limited_when_told,
    an_address_mints_at_its_rate,
    live_tickets_are_capped_per_user,
    behind_a_trusted_proxy_the_rightmost_untrusted_address_counts,
);

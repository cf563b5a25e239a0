//! Frontend callers: JWTs signed here with real keys of every family, a JWKS
//! served over real HTTP, a forward-auth app on loopback, and CORS.

use crate::helpers::*;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");
pub(crate) const HS_SECRET: &str = "hs-secret-hs-secret-hs-secret-hs-secret!";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn fixture_path(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 300, "iss": "https://idp.test", "aud": "wsticket", "roles": ["admin"], "email": "x@y"})
}

pub(crate) fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn rsa(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture(name)).unwrap()
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(&fixture("ec1.key.pem")).unwrap()
}

fn ed() -> EncodingKey {
    EncodingKey::from_ed_pem(&fixture("ed1.key.pem")).unwrap()
}

pub(crate) fn hs() -> EncodingKey {
    EncodingKey::from_secret(HS_SECRET.as_bytes())
}

/// The test configuration plus `auth` tables.
async fn spawn_auth(auth: &str) -> TestApp {
    let prefix = random_prefix();
    let text = format!(
        "{}\n{auth}",
        base_config(Backend::Memory, None, &prefix, "")
    );
    spawn_toml(&text, prefix).await
}

pub(crate) fn jwt_config(source: &str, algorithms: &str) -> String {
    format!(
        "[auth.jwt]\nissuer = \"https://idp.test\"\naudience = \"wsticket\"\nalgorithms = {algorithms}\n\
         copy_claims = [\"roles\"]\n{source}\n"
    )
}

impl TestApp {
    /// Mint as a browser would: a bearer credential and an Origin header.
    pub(crate) async fn mint_browser(
        &self,
        bearer: Option<&str>,
        cookie: Option<&str>,
        origin: Option<&str>,
        body: Value,
    ) -> Resp {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let url = format!("{}/v1/tickets", self.base);
        self.send(
            "POST",
            Some("/v1/tickets"),
            &url,
            &headers,
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    async fn mint_jwt(&self, token: &str) -> Resp {
        self.mint_browser(Some(token), None, Some(ORIGIN), json!({}))
            .await
    }
}

#[tokio::test]
async fn every_key_family_verifies_and_the_ticket_carries_the_user() {
    let cases: Vec<(String, String)> = vec![
        (
            jwt_config(&format!("hs_secret = \"{HS_SECRET}\""), "[\"HS256\"]"),
            sign(Algorithm::HS256, &hs(), None, &claims("hs-user")),
        ),
        (
            jwt_config(
                &format!("public_key_file = \"{}\"", fixture_path("rsa1.pub.pem")),
                "[\"RS256\", \"PS256\"]",
            ),
            sign(
                Algorithm::RS256,
                &rsa("rsa1.key.pem"),
                None,
                &claims("rs-user"),
            ),
        ),
        (
            jwt_config(
                &format!("public_key_file = \"{}\"", fixture_path("rsa1.pub.pem")),
                "[\"PS256\"]",
            ),
            sign(
                Algorithm::PS256,
                &rsa("rsa1.key.pem"),
                None,
                &claims("ps-user"),
            ),
        ),
        (
            jwt_config(
                &format!("jwks_file = \"{}\"", fixture_path("jwks-v1.json")),
                "[\"RS256\", \"ES256\", \"EdDSA\"]",
            ),
            sign(Algorithm::ES256, &ec(), Some("e1"), &claims("es-user")),
        ),
        (
            jwt_config(
                &format!("jwks_file = \"{}\"", fixture_path("jwks-v1.json")),
                "[\"RS256\", \"ES256\", \"EdDSA\"]",
            ),
            sign(Algorithm::EdDSA, &ed(), Some("d1"), &claims("ed-user")),
        ),
        (
            jwt_config(
                &format!(
                    "public_key_pem = \"\"\"\n{}\"\"\"",
                    String::from_utf8(fixture("ed1.pub.pem")).unwrap()
                ),
                "[\"EdDSA\"]",
            ),
            sign(Algorithm::EdDSA, &ed(), None, &claims("ed-pem-user")),
        ),
    ];
    for (config, token) in cases {
        let app = spawn_auth(&config).await;
        let r = app.mint_jwt(&token).await;
        r.expect(201, None);
        let t = r.body["ticket"].as_str().unwrap();
        let redeemed = app.redeem(t, Some(ORIGIN)).await;
        redeemed.expect(200, None);
        let user = redeemed.body["user_id"].as_str().unwrap();
        assert!(user.ends_with("-user"), "{user}");
        // copy_claims: roles only.
        assert_eq!(
            redeemed.body["claims"],
            json!({"roles": ["admin"]}),
            "{config}"
        );
    }
}

#[tokio::test]
async fn bad_jwts_are_401() {
    let rs_app = spawn_auth(&jwt_config(
        &format!(
            "public_key_file = \"{}\"\nleeway_secs = 30",
            fixture_path("rsa1.pub.pem")
        ),
        "[\"RS256\"]",
    ))
    .await;
    let key = rsa("rsa1.key.pem");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("u");
        f(&mut c);
        sign(Algorithm::RS256, &key, None, &c)
    };
    // Within the leeway is fine.
    rs_app
        .mint_jwt(&with(&|c| c["exp"] = json!(now() - 10)))
        .await
        .expect(201, None);
    rs_app
        .mint_jwt(&with(&|c| c["nbf"] = json!(now() + 10)))
        .await
        .expect(201, None);

    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("u").to_string());
    let rsa_pub = fixture("rsa1.pub.pem");
    let bad = [
        ("expired", with(&|c| c["exp"] = json!(now() - 100))),
        ("not yet valid", with(&|c| c["nbf"] = json!(now() + 100))),
        (
            "wrong iss",
            with(&|c| c["iss"] = json!("https://evil.test")),
        ),
        ("wrong aud", with(&|c| c["aud"] = json!("other"))),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "no sub",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        (
            "wrong key",
            sign(Algorithm::RS256, &rsa("rsa2.key.pem"), None, &claims("u")),
        ),
        ("alg none", format!("{header_none}.{payload}.")),
        (
            "alg none with signature",
            format!("{header_none}.{payload}.c2ln"),
        ),
        // Algorithm confusion: HMAC keyed with the RSA public key.
        (
            "HS256 with the RSA public key",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(&rsa_pub),
                None,
                &claims("u"),
            ),
        ),
        ("tampered payload", {
            let t = with(&|_| {});
            let parts: Vec<&str> = t.split('.').collect();
            let evil = URL_SAFE_NO_PAD.encode(claims("admin").to_string());
            format!("{}.{evil}.{}", parts[0], parts[2])
        }),
        ("garbage", "a.b.c".to_owned()),
        // Claims of the wrong JSON type: jsonwebtoken alone would skip such
        // an nbf.
        (
            "nbf as a string",
            with(&|c| c["nbf"] = json!((now() + 1000).to_string())),
        ),
        (
            "exp as a string",
            with(&|c| c["exp"] = json!((now() + 300).to_string())),
        ),
        ("exp as an object", with(&|c| c["exp"] = json!({"t": 1}))),
        // A critical extension nobody here understands, validly signed.
        (
            "crit",
            signed_with_header(&json!({"alg": "RS256", "typ": "JWT", "crit": ["exp"]})),
        ),
        (
            "empty crit",
            signed_with_header(&json!({"alg": "RS256", "crit": []})),
        ),
    ];
    for (what, token) in bad {
        let r = rs_app.mint_jwt(&token).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthenticated"),
            "{what}: {}",
            r.text
        );
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
}

/// A token for user "u" with kid r1, signed with rsa1 (RS256).
fn rsa1_token() -> String {
    sign(
        Algorithm::RS256,
        &rsa("rsa1.key.pem"),
        Some("r1"),
        &claims("u"),
    )
}

/// A token with this exact header, signed with rsa1 (RS256).
fn signed_with_header(header: &Value) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims("u").to_string())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &rsa("rsa1.key.pem"), Algorithm::RS256)
            .unwrap();
    format!("{message}.{signature}")
}

/// A JWKS endpoint on loopback whose key set can be swapped, counting hits.
struct Idp {
    url: String,
    jwks: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    fail: Arc<Mutex<bool>>,
}

async fn start_idp(initial: Value) -> Idp {
    let jwks = Arc::new(Mutex::new(initial));
    let hits = Arc::new(AtomicUsize::new(0));
    let fail = Arc::new(Mutex::new(false));
    let (j, h, f) = (jwks.clone(), hits.clone(), fail.clone());
    let server = HttpServer::new(move || {
        let (j, h, f) = (j.clone(), h.clone(), f.clone());
        App::new()
            .route(
                "/jwks.json",
                web::get().to(move || {
                    let (j, h, f) = (j.clone(), h.clone(), f.clone());
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        if *f.lock().unwrap() {
                            return HttpResponse::InternalServerError().finish();
                        }
                        HttpResponse::Ok().json(j.lock().unwrap().clone())
                    }
                }),
            )
            // Where a redirect would lead: the same keys, elsewhere.
            .route(
                "/moved",
                web::get().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "/jwks.json"))
                        .finish()
                }),
            )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    Idp {
        url: format!("http://127.0.0.1:{port}/jwks.json"),
        jwks,
        hits,
        fail,
    }
}

fn jwks(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// Twenty tokens naming kids nobody published: each a 401.
async fn flood_with_invented_kids(app: &TestApp) {
    for i in 0..20 {
        let kid = format!("made-up-{i}");
        let t = sign(
            Algorithm::RS256,
            &rsa("rsa2.key.pem"),
            Some(&kid),
            &claims("u"),
        );
        app.mint_jwt(&t).await.expect(401, Some("unauthenticated"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetches_the_rotated_jwks_at_most_once_per_interval() {
    let idp = start_idp(jwks("jwks-v1.json")).await;
    let config = jwt_config(
        &format!("jwks_url = \"{}\"\njwks_min_refetch_secs = 1", idp.url),
        "[\"RS256\", \"ES256\"]",
    );
    let app = spawn_auth(&config).await;
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1, "fetched once at start");
    app.mint_jwt(&rsa1_token()).await.expect(201, None);

    // The IdP rotates to a new key. Within the interval, neither the new kid
    // nor a flood of invented ones makes wsticket ask again.
    *idp.jwks.lock().unwrap() = jwks("jwks-v2.json");
    let rotated = sign(
        Algorithm::RS256,
        &rsa("rsa2.key.pem"),
        Some("r2"),
        &claims("rotated-user"),
    );
    app.mint_jwt(&rotated)
        .await
        .expect(401, Some("unauthenticated"));
    flood_with_invented_kids(&app).await;
    assert_eq!(
        idp.hits.load(Ordering::SeqCst),
        1,
        "no fetch within the interval"
    );

    // After it, the unknown kid triggers exactly one fetch and verifies.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = app.mint_jwt(&rotated).await;
    r.expect(201, None);
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2);
    flood_with_invented_kids(&app).await;
    assert_eq!(
        idp.hits.load(Ordering::SeqCst),
        2,
        "invented kids right after a fetch cost nothing"
    );
    let t = r.body["ticket"].as_str().unwrap();
    let redeemed = app.redeem(t, Some(ORIGIN)).await;
    assert_eq!(redeemed.body["user_id"], "rotated-user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_provider_that_is_down_gives_503_and_api_keys_keep_working() {
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = jwt_config(
        &format!("jwks_url = \"http://127.0.0.1:{closed}/jwks.json\""),
        "[\"RS256\"]",
    );
    let app = spawn_auth(&config).await;
    let token = rsa1_token();
    app.mint_jwt(&token)
        .await
        .expect(503, Some("auth_unavailable"));
    app.mint().await; // API keys do not depend on the IdP.

    // An IdP answering 500 at start; it recovers; tokens then verify.
    let idp = start_idp(jwks("jwks-v1.json")).await;
    *idp.fail.lock().unwrap() = true;
    let config = jwt_config(
        &format!("jwks_url = \"{}\"\njwks_min_refetch_secs = 1", idp.url),
        "[\"RS256\"]",
    );
    let app = spawn_auth(&config).await;
    app.mint_jwt(&token)
        .await
        .expect(503, Some("auth_unavailable"));
    *idp.fail.lock().unwrap() = false;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.mint_jwt(&token).await.expect(201, None);
}

/// The key set comes from the configured URL or not at all: a redirect
/// (which could lead from https to http, or anywhere) is not followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_client_follows_no_redirect() {
    let idp = start_idp(jwks("jwks-v1.json")).await;
    let moved = idp.url.replace("/jwks.json", "/moved");
    let app = spawn_auth(&jwt_config(
        &format!("jwks_url = \"{moved}\""),
        "[\"RS256\"]",
    ))
    .await;
    let token = rsa1_token();
    app.mint_jwt(&token)
        .await
        .expect(503, Some("auth_unavailable"));
    assert_eq!(
        idp.hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

/// The app whose sessions forward auth asks about.
struct ForwardApp {
    base: String,
    seen: Arc<Mutex<Vec<Vec<String>>>>,
}

async fn start_forward_app() -> ForwardApp {
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let server = HttpServer::new(move || {
        let s = s.clone();
        App::new()
            .route(
                "/whoami",
                web::route().to(move |req: HttpRequest| {
                    let s = s.clone();
                    async move {
                        let names: Vec<String> = req
                            .headers()
                            .keys()
                            .map(|k| k.as_str().to_owned())
                            .collect();
                        s.lock().unwrap().push(names);
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        let tenant = h("x-tenant");
                        if h("cookie").contains("session=good-cookie") {
                            return HttpResponse::Ok().json(
                                json!({"user_id": "cookie-user", "claims": {"tenant": tenant}}),
                            );
                        }
                        if h("authorization") == "Bearer good-token" {
                            return HttpResponse::Ok()
                                .json(json!({"user_id": 4242, "claims": {"via": "token"}}));
                        }
                        // Django REST framework's TokenAuthentication.
                        if h("authorization") == "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b" {
                            return HttpResponse::Ok().json(json!({"user_id": "drf-user"}));
                        }
                        if h("authorization") == "Bearer banned-token" {
                            return HttpResponse::Forbidden().finish();
                        }
                        HttpResponse::Unauthorized().finish()
                    }
                }),
            )
            .route(
                "/slow",
                web::get().to(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    HttpResponse::Ok().json(json!({"user_id": "slow"}))
                }),
            )
            .route(
                "/boom",
                web::get().to(|| async { HttpResponse::BadGateway().finish() }),
            )
            .route(
                "/redirect",
                web::get().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "/whoami"))
                        .finish()
                }),
            )
            .route(
                "/anon",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"user_id": null})) }),
            )
            .route(
                "/notjson",
                web::get().to(|| async { HttpResponse::Ok().body("<html>") }),
            )
            .route(
                "/huge",
                web::get().to(|| async {
                    HttpResponse::Ok().json(json!({"user_id": "u", "pad": "x".repeat(70 * 1024)}))
                }),
            )
            .route(
                "/badclaims",
                web::get().to(|| async {
                    HttpResponse::Ok().json(json!({"user_id": "u", "claims": [1]}))
                }),
            )
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    ForwardApp {
        base: format!("http://127.0.0.1:{port}"),
        seen,
    }
}

fn forward_config(url: &str) -> String {
    format!(
        "[auth.forward]\nurl = \"{url}\"\nforward_headers = [\"authorization\", \"cookie\", \"x-tenant\"]\n\
         claims_pointer = \"/claims\"\ntimeout_ms = 500\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_accepts_a_cookie_or_a_token_and_refuses_the_rest() {
    let fwd = start_forward_app().await;
    let app = spawn_auth(&forward_config(&format!("{}/whoami", fwd.base))).await;

    // The session cookie, plus a configured header and one that is not.
    let headers = [
        ("content-type", "application/json"),
        ("cookie", "theme=dark; session=good-cookie"),
        ("origin", ORIGIN),
        ("x-tenant", "acme"),
        ("x-not-forwarded", "secret"),
    ];
    let r = app.post_raw("/v1/tickets", &headers, b"{}".to_vec()).await;
    r.expect(201, None);
    let redeemed = app
        .redeem(r.body["ticket"].as_str().unwrap(), Some(ORIGIN))
        .await;
    redeemed.expect(200, None);
    assert_eq!(redeemed.body["user_id"], "cookie-user");
    assert_eq!(redeemed.body["claims"], json!({"tenant": "acme"}));
    let seen = fwd.seen.lock().unwrap().last().unwrap().clone();
    assert!(
        seen.contains(&"x-tenant".to_owned()) && seen.contains(&"cookie".to_owned()),
        "{seen:?}"
    );
    assert!(!seen.contains(&"x-not-forwarded".to_owned()), "{seen:?}");
    assert!(!seen.contains(&"origin".to_owned()), "{seen:?}");

    // A non-JWT bearer token goes to the app too; a numeric user id is fine.
    let r = app
        .mint_browser(
            Some("good-token"),
            None,
            Some(ORIGIN),
            json!({"audience": "chat"}),
        )
        .await;
    r.expect(201, None);
    let redeemed = app
        .redeem(r.body["ticket"].as_str().unwrap(), Some(ORIGIN))
        .await;
    assert_eq!(redeemed.body["user_id"], "4242");
    assert_eq!(redeemed.body["audience"], "chat");

    for (bearer, cookie) in [
        (None, Some("session=bad-cookie")),
        (Some("bad-token"), None),
        (Some("banned-token"), None),
        (None, None),
    ] {
        let r = app
            .mint_browser(bearer, cookie, Some(ORIGIN), json!({}))
            .await;
        r.expect(401, Some("unauthenticated"));
    }
    // API keys are never forwarded.
    let before = fwd.seen.lock().unwrap().len();
    app.mint().await;
    app.mint_as(UNKNOWN_KEY, json!({"user_id": "a", "origin": ORIGIN}))
        .await
        .expect(401, Some("unauthenticated"));
    assert_eq!(fwd.seen.lock().unwrap().len(), before);
}

/// Django REST framework clients send `Authorization: Token <key>`: any
/// scheme but a Bearer API key or a Bearer JWT goes to forward auth. An API
/// key in any other form is refused without asking the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_takes_any_other_scheme_but_never_an_api_key() {
    let fwd = start_forward_app().await;
    let app = spawn_auth(&forward_config(&format!("{}/whoami", fwd.base))).await;
    let mint = |authorization: String| {
        let app = &app;
        async move {
            let headers = [
                ("authorization", authorization.as_str()),
                ("content-type", "application/json"),
                ("origin", ORIGIN),
            ];
            app.post_raw("/v1/tickets", &headers, b"{}".to_vec()).await
        }
    };
    let asked = || fwd.seen.lock().unwrap().len();

    let r = mint("Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b".into()).await;
    r.expect(201, None);
    let redeemed = app
        .redeem(r.body["ticket"].as_str().unwrap(), Some(ORIGIN))
        .await;
    redeemed.expect(200, None);
    assert_eq!(redeemed.body["user_id"], "drf-user");

    let before = asked();
    mint("Token not-a-known-key".into())
        .await
        .expect(401, Some("unauthenticated"));
    assert_eq!(asked(), before + 1, "the app judges other schemes");

    let before = asked();
    for authorization in [
        format!("Token {ISSUER}"),
        format!("Basic {ISSUER}"),
        ISSUER.to_owned(),
    ] {
        mint(authorization)
            .await
            .expect(401, Some("unauthenticated"));
    }
    assert_eq!(asked(), before, "an API key was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_fails_closed() {
    let fwd = start_forward_app().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (path, code, status) in [
        (format!("{}/slow", fwd.base), "auth_unavailable", 503),
        (format!("{}/boom", fwd.base), "auth_unavailable", 503),
        (format!("{}/redirect", fwd.base), "auth_unavailable", 503),
        (format!("{}/notjson", fwd.base), "auth_unavailable", 503),
        (format!("{}/huge", fwd.base), "auth_unavailable", 503),
        (format!("{}/badclaims", fwd.base), "auth_unavailable", 503),
        (
            format!("http://127.0.0.1:{closed}/whoami"),
            "auth_unavailable",
            503,
        ),
        (format!("{}/anon", fwd.base), "unauthenticated", 401),
    ] {
        let app = spawn_auth(&forward_config(&path)).await;
        let started = std::time::Instant::now();
        let r = app
            .mint_browser(None, Some("session=good-cookie"), Some(ORIGIN), json!({}))
            .await;
        assert_eq!((r.status, r.code()), (status, code), "{path}: {}", r.text);
        // timeout_ms = 500: the slow app is cut off, not waited for.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} took {:?}",
            started.elapsed()
        );
    }
}

/// A browser request whose Origin is missing or not allowed is refused
/// before any authentication work: forward auth never hears of it (no
/// side effects at the app, no 1:1 amplification towards it), and a JWT
/// that would need a JWKS fetch triggers none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_request_is_refused_before_authentication() {
    let fwd = start_forward_app().await;
    let idp = start_idp(jwks("jwks-v1.json")).await;
    let config = format!(
        "{}\n{}",
        forward_config(&format!("{}/whoami", fwd.base)),
        jwt_config(
            &format!("jwks_url = \"{}\"\njwks_min_refetch_secs = 1", idp.url),
            "[\"RS256\"]"
        )
    );
    let app = spawn_auth(&config).await;
    let asked = || fwd.seen.lock().unwrap().len();
    let fetched = || idp.hits.load(Ordering::SeqCst);
    let (asked_before, fetched_before) = (asked(), fetched());
    // A kid the key set does not have: verifying it would fetch the JWKS.
    let jwt = sign(
        Algorithm::RS256,
        &rsa("rsa1.key.pem"),
        Some("unknown-kid"),
        &claims("u"),
    );
    for (what, bearer, origin, status, code) in [
        (
            "cookie, evil origin",
            None,
            Some("https://evil.com"),
            403,
            "origin_not_allowed",
        ),
        (
            "cookie, null origin",
            None,
            Some("null"),
            403,
            "origin_not_allowed",
        ),
        ("cookie, no origin", None, None, 400, "invalid_request"),
        (
            "jwt, evil origin",
            Some(jwt.as_str()),
            Some("https://evil.com"),
            403,
            "origin_not_allowed",
        ),
        (
            "jwt, no origin",
            Some(jwt.as_str()),
            None,
            400,
            "invalid_request",
        ),
    ] {
        let r = app
            .mint_browser(bearer, Some("session=good-cookie"), origin, json!({}))
            .await;
        assert_eq!((r.status, r.code()), (status, code), "{what}: {}", r.text);
    }
    assert_eq!(asked(), asked_before, "forward auth was called");
    assert_eq!(fetched(), fetched_before, "the JWKS was fetched");
    // From the allowed origin, the same cookie is judged by the app.
    app.mint_browser(None, Some("session=good-cookie"), Some(ORIGIN), json!({}))
        .await
        .expect(201, None);
    assert_eq!(asked(), asked_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_callers_follow_the_browser_rules() {
    let fwd = start_forward_app().await;
    let config = format!(
        "{}\n{}",
        forward_config(&format!("{}/whoami", fwd.base)),
        jwt_config(&format!("hs_secret = \"{HS_SECRET}\""), "[\"HS256\"]")
    );
    let app = spawn_auth(&config).await;
    let jwt = sign(Algorithm::HS256, &hs(), None, &claims("jwt-user"));
    let cookie = Some("session=good-cookie");

    for (what, bearer, cookie, origin, body, status, code) in [
        (
            "missing Origin",
            Some(jwt.as_str()),
            None,
            None,
            json!({}),
            400,
            "invalid_request",
        ),
        (
            "user_id in body",
            Some(&jwt),
            None,
            Some(ORIGIN),
            json!({"user_id": "mallory"}),
            400,
            "invalid_request",
        ),
        (
            "claims in body",
            None,
            cookie,
            Some(ORIGIN),
            json!({"claims": {"admin": true}}),
            400,
            "invalid_request",
        ),
        (
            "body origin differs",
            Some(&jwt),
            None,
            Some(ORIGIN),
            json!({"origin": "https://a.example.org"}),
            400,
            "invalid_request",
        ),
        (
            "Origin not allowed",
            Some(&jwt),
            None,
            Some("https://evil.com"),
            json!({}),
            403,
            "origin_not_allowed",
        ),
        (
            "Origin null",
            None,
            cookie,
            Some("null"),
            json!({}),
            403,
            "origin_not_allowed",
        ),
        (
            "unknown audience",
            Some(&jwt),
            None,
            Some(ORIGIN),
            json!({"audience": "billing"}),
            403,
            "forbidden",
        ),
    ] {
        let r = app.mint_browser(bearer, cookie, origin, body).await;
        assert_eq!((r.status, r.code()), (status, code), "{what}: {}", r.text);
    }
    // A body origin equal to the header (canonically) is fine; the JWT goes
    // to [auth.jwt], the cookie to [auth.forward].
    let r = app
        .mint_browser(
            Some(&jwt),
            None,
            Some(ORIGIN),
            json!({"origin": "HTTPS://app.example.com:443"}),
        )
        .await;
    r.expect(201, None);
    let by_jwt = app
        .redeem(r.body["ticket"].as_str().unwrap(), Some(ORIGIN))
        .await;
    assert_eq!(by_jwt.body["user_id"], "jwt-user");
    let r = app
        .mint_browser(None, cookie, Some(ORIGIN), json!({"ttl_secs": 5}))
        .await;
    r.expect(201, None);
    assert_eq!(r.body["expires_in"], 5);

    // Frontend credentials cannot redeem: the redeem route takes API keys only.
    let t = app.mint().await;
    let body = serde_json::to_vec(&json!({"ticket": t, "origin": ORIGIN})).unwrap();
    let bearer = format!("Bearer {jwt}");
    for headers in [
        vec![
            ("content-type", "application/json"),
            ("authorization", bearer.as_str()),
        ],
        vec![
            ("content-type", "application/json"),
            ("cookie", "session=good-cookie"),
        ],
    ] {
        let r = app
            .post_raw("/v1/tickets/redeem", &headers, body.clone())
            .await;
        r.expect(401, Some("unauthenticated"));
    }
    app.redeem(&t, Some(ORIGIN)).await.expect(200, None);
}

#[tokio::test]
async fn cors_only_for_allowed_origins_on_the_mint_route() {
    let app = spawn_auth(&jwt_config(
        &format!("hs_secret = \"{HS_SECRET}\""),
        "[\"HS256\"]",
    ))
    .await;
    let url = format!("{}/v1/tickets", app.base);
    let preflight = |origin: Option<&'static str>| {
        let mut headers = vec![
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        headers
    };
    for origin in [
        "https://app.example.com",
        "https://a.b.example.org",
        "http://localhost:3000",
    ] {
        let r = app
            .send(
                "OPTIONS",
                Some("/v1/tickets"),
                &url,
                &preflight(Some(origin)),
                None,
            )
            .await;
        r.expect(204, None);
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
        assert!(
            r.header("access-control-allow-headers")
                .unwrap()
                .contains("authorization")
        );
        assert_eq!(r.header("vary"), Some("Origin"));
    }
    for origin in [
        Some("https://evil.com"),
        Some("null"),
        Some("https://app.example.com.evil.com"),
        None,
    ] {
        let r = app
            .send(
                "OPTIONS",
                Some("/v1/tickets"),
                &url,
                &preflight(origin),
                None,
            )
            .await;
        r.expect(403, Some("origin_not_allowed"));
        assert_eq!(r.header("access-control-allow-origin"), None);
        assert_eq!(r.header("access-control-allow-credentials"), None);
    }

    // Actual requests: allowed origins may read the answer, errors included.
    let jwt = sign(Algorithm::HS256, &hs(), None, &claims("u"));
    let r = app
        .mint_browser(Some(&jwt), None, Some(ORIGIN), json!({}))
        .await;
    r.expect(201, None);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = app
        .mint_browser(Some("not-valid"), None, Some(ORIGIN), json!({}))
        .await;
    r.expect(401, Some("unauthenticated"));
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    let r = app
        .mint_browser(Some(&jwt), None, Some("https://evil.com"), json!({}))
        .await;
    r.expect(403, Some("origin_not_allowed"));
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("vary"), Some("Origin"));
    assert!(!r.text.contains("evil"));

    // No CORS on redeem.
    let redeem_url = format!("{}/v1/tickets/redeem", app.base);
    let r = app
        .send(
            "OPTIONS",
            Some("/v1/tickets/redeem"),
            &redeem_url,
            &preflight(Some(ORIGIN)),
            None,
        )
        .await;
    r.expect(405, Some("method_not_allowed"));
    assert_eq!(r.header("access-control-allow-origin"), None);
    let t = app.mint().await;
    let body = serde_json::to_vec(&json!({"ticket": t, "origin": ORIGIN})).unwrap();
    let bearer = format!("Bearer {REDEEMER}");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
        ("origin", ORIGIN),
    ];
    let r = app
        .send(
            "POST",
            Some("/v1/tickets/redeem"),
            &redeem_url,
            &headers,
            Some(body),
        )
        .await;
    r.expect(200, None);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

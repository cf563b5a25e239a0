//! Spawn the real application on port 0 and talk to it over HTTP.

use crate::openapi;
use crate::redis_server;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use std::time::Duration;
use wsticket::config::Settings;
use wsticket::startup::Application;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    /// A 3-master, 3-replica Redis Cluster.
    Cluster,
    /// A master and a replica behind three Sentinels.
    Sentinel,
}

/// API keys of the test configuration (and the permissions they carry).
pub const ISSUER: &str = "wsk_issuer-issuer-issuer-issuer-issuer-issuer-is";
pub const REDEEMER: &str = "wsk_redeemer-redeemer-redeemer-redeemer-redeem";
pub const CHAT_ISSUER: &str = "wsk_chat-issuer-chat-issuer-chat-issuer-chat-i";
pub const CHAT_REDEEMER: &str = "wsk_chat-redeemer-chat-redeemer-chat-redeemer";
/// `revoke` for every audience.
pub const REVOKER: &str = "wsk_revoker-revoker-revoker-revoker-revoker-revo";
/// `redeem` and `revoke` for the chat audience only.
pub const CHAT_REVOKER: &str = "wsk_chat-revoker-chat-revoker-chat-revoker-cha";
pub const UNKNOWN_KEY: &str = "wsk_unknown-unknown-unknown-unknown-unknown-unk";

pub const ORIGIN: &str = "https://app.example.com";
pub const SECRET_K1: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I";

fn sha(key: &str) -> String {
    wsticket::auth::key_sha256_hex(key)
}

/// The configuration every test starts from: the store of `backend` (for
/// `Redis`, at `redis_url` or the shared test Redis) under `prefix`, with
/// `tickets_extra` appended to `[tickets]` (TOML keys).
pub fn base_config(
    backend: Backend,
    redis_url: Option<&str>,
    prefix: &str,
    tickets_extra: &str,
) -> String {
    let store = match backend {
        Backend::Memory => "memory_max_entries = 100000".to_owned(),
        Backend::Redis => format!(
            "redis_url = \"{}\"\ncommand_timeout_ms = 1000\nconnect_timeout_ms = 1000",
            redis_url
                .map(str::to_owned)
                .unwrap_or_else(redis_server::shared_url)
        ),
        Backend::Cluster => redis_server::shared_cluster().store_toml(1000),
        Backend::Sentinel => redis_server::shared_sentinel().store_toml(1000),
    };
    format!(
        r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[store]
key_prefix = "{prefix}"
{store}

[tickets]
allowed_origins = ["{ORIGIN}", "https://*.example.org", "http://localhost:3000"]
audiences = ["default", "chat"]
secrets = [{{ id = "k1", secret = "{SECRET_K1}" }}]
{tickets_extra}

[[clients]]
name = "issuer"
key_sha256 = "{issuer}"
can = ["issue"]

[[clients]]
name = "redeemer"
key_sha256 = "{redeemer}"
can = ["redeem"]

[[clients]]
name = "chat-issuer"
key_sha256 = "{chat_issuer}"
can = ["issue"]
audiences = ["chat"]

[[clients]]
name = "chat-redeemer"
key_sha256 = "{chat_redeemer}"
can = ["redeem"]
audiences = ["chat"]

[[clients]]
name = "revoker"
key_sha256 = "{revoker}"
can = ["revoke"]

[[clients]]
name = "chat-revoker"
key_sha256 = "{chat_revoker}"
can = ["redeem", "revoke"]
audiences = ["chat"]
"#,
        issuer = sha(ISSUER),
        redeemer = sha(REDEEMER),
        chat_issuer = sha(CHAT_ISSUER),
        chat_redeemer = sha(CHAT_REDEEMER),
        revoker = sha(REVOKER),
        chat_revoker = sha(CHAT_REVOKER),
    )
}

pub fn random_prefix() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("wst-test-{n:016x}:")
}

pub struct TestApp {
    pub base: String,
    pub admin: String,
    pub prefix: String,
    pub http: reqwest::Client,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("<no code>")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert status and (for errors) problem code, with the body on failure.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        if let Some(code) = code {
            assert_eq!(self.code(), code, "unexpected code; body: {}", self.text);
        }
        self
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, None, "").await
}

/// Spawn with a config built from `base_config`.
pub async fn spawn_with(backend: Backend, redis_url: Option<&str>, tickets_extra: &str) -> TestApp {
    let prefix = random_prefix();
    let text = base_config(backend, redis_url, &prefix, tickets_extra);
    spawn_toml(&text, prefix).await
}

pub async fn spawn_toml(text: &str, prefix: String) -> TestApp {
    let no_env = |_: &str| None;
    let settings = Settings::from_toml(text, &no_env).expect("test config is valid");
    let app = Application::build(settings).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        admin,
        prefix,
        http: {
            wsticket::tls::ensure_crypto_provider();
            reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                // Below the server's 5 s keep-alive: never send on a
                // connection the server is closing.
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("reqwest client")
        },
    }
}

impl TestApp {
    /// Send a request; the response is checked against openapi.yaml for
    /// `route` (the OpenAPI path template), when it names one.
    pub async fn send(
        &self,
        method: &str,
        route: Option<&str>,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method.clone(), url);
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_bytes(v.as_bytes()).expect("header value"),
            );
        }
        req = req.headers(map);
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.expect("request reaches the server");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let resp = Resp {
            status,
            headers,
            body,
            text,
        };
        openapi::check_response(method.as_str(), route, &resp);
        resp
    }

    /// POST raw bytes with these headers to a route of the main listener.
    pub async fn post_raw(&self, route: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        let url = format!("{}{route}", self.base);
        self.send("POST", Some(route), &url, headers, Some(body))
            .await
    }

    pub async fn post_json(&self, route: &str, key: Option<&str>, body: &Value) -> Resp {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let url = format!("{}{route}", self.base);
        self.send(
            "POST",
            Some(route),
            &url,
            &headers,
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    pub async fn mint_as(&self, key: &str, body: Value) -> Resp {
        self.post_json("/v1/tickets", Some(key), &body).await
    }

    pub async fn redeem_as(&self, key: &str, body: Value) -> Resp {
        self.post_json("/v1/tickets/redeem", Some(key), &body).await
    }

    /// Mint for alice at ORIGIN, default audience; returns the ticket.
    pub async fn mint(&self) -> String {
        self.mint_with(json!({ "user_id": "alice", "origin": ORIGIN }))
            .await
    }

    pub async fn mint_with(&self, body: Value) -> String {
        let r = self.mint_as(ISSUER, body).await;
        r.expect(201, None);
        r.body["ticket"].as_str().expect("ticket").to_owned()
    }

    pub async fn redeem(&self, ticket: &str, origin: Option<&str>) -> Resp {
        self.redeem_as(REDEEMER, json!({ "ticket": ticket, "origin": origin }))
            .await
    }

    pub async fn get(&self, route: &str) -> Resp {
        let url = format!("{}{route}", self.base);
        self.send("GET", Some(route), &url, &[], None).await
    }

    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.admin);
        let r = self.send("GET", Some("/metrics"), &url, &[], None).await;
        r.expect(200, None);
        r.text
    }
}

/// Each test once per backend: a module per backend, a test per name.
macro_rules! for_every_store {
    ($($name:ident),* $(,)?) => {
        for_every_store!(@backend memory, Memory, $($name),*);
        for_every_store!(@backend redis, Redis, $($name),*);
        for_every_store!(@backend cluster, Cluster, $($name),*);
        for_every_store!(@backend sentinel, Sentinel, $($name),*);
    };
    (@backend $module:ident, $backend:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::$backend).await
                }
            )*
        }
    };
}
pub(crate) use for_every_store;

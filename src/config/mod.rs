//! Configuration: compiled-in defaults, then the TOML file, then `WSTICKET_*`
//! environment variables, validated once into [`Settings`]. An invalid value
//! stops start-up with a message that names the field; a message never
//! repeats a secret, and secrets are held in `secrecy` types (or types with
//! their own redacting `Debug`), so that `Debug` of the settings is safe.
//!
//! One module per TOML table: [`store`] (`[store]`), [`tickets`]
//! (`[tickets]`), [`clients`] (`[[clients]]`), [`auth`] (`[auth.jwt]`,
//! `[auth.forward]`), the top-level keys here, and the checks they share in
//! [`checks`]. The reference for operators is docs/configuration.md; a test
//! keeps the two in step.
//!
//! Environment variables read here: `WSTICKET_CONFIG` (the file, also a
//! `--config` default), `WSTICKET_LISTEN`, `WSTICKET_ADMIN_LISTEN`,
//! `WSTICKET_REDIS_URL`, `WSTICKET_TICKET_SECRETS` and
//! `WSTICKET_AUTH_JWT_HS_SECRET`. Logging reads `WSTICKET_LOG` and
//! `WSTICKET_LOG_FORMAT` (see `telemetry`).

mod auth;
mod checks;
mod clients;
mod events;
mod limits;
mod store;
mod tickets;

pub use checks::ConfigError;
use checks::{err, in_range, read_file};
pub(crate) use tickets::SecretSource;

use crate::auth::forward::ForwardSettings;
use crate::auth::jwt::JwtSettings;
use crate::auth::{ApiClient, Permission, key_sha256_hex};
use crate::core::{EventSettings, LimitPolicy, TicketPolicy};
use crate::domain::{AudienceScope, Origin};
use crate::store::{StoreBackend, StoreSettings};
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The two demo keys of `serve --dev`. They are public (the README prints
/// them) and accepted only in dev mode.
pub const DEV_ISSUE_KEY: &str = "wsk_demo-issue-key-not-for-production-000000000";
pub const DEV_REDEEM_KEY: &str = "wsk_demo-redeem-key-not-for-production-00000000";
pub const DEV_ORIGIN: &str = "http://localhost:3000";

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9102";
const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
const DEFAULT_SHUTDOWN_DELAY_SECS: u64 = 0;

// ---- the file, as written -------------------------------------------------
// No `Debug` on the raw tables: they hold secrets in clear.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    shutdown_grace_secs: Option<u64>,
    shutdown_delay_secs: Option<u64>,
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    tickets: tickets::RawTickets,
    #[serde(default)]
    clients: Vec<clients::RawClient>,
    #[serde(default)]
    auth: auth::RawAuth,
    #[serde(default)]
    limits: limits::RawLimits,
    #[serde(default)]
    events: events::RawEvents,
}

// ---- validated -------------------------------------------------------------

#[derive(Debug)]
pub struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) admin_listen: SocketAddr,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub(crate) shutdown_grace: Duration,
    /// How long to keep serving (readyz 503) after SIGTERM before draining.
    pub(crate) shutdown_delay: Duration,
    pub(crate) store: StoreSettings,
    pub(crate) tickets: TicketPolicy,
    pub(crate) limits: LimitPolicy,
    pub(crate) events: EventSettings,
    pub(crate) secret_source: SecretSource,
    pub(crate) clients: Vec<ApiClient>,
    pub(crate) jwt: Option<JwtSettings>,
    pub(crate) forward: Option<ForwardSettings>,
    /// `serve --dev`: the demo set-up, never for production.
    pub(crate) dev_mode: bool,
    /// Found while reading files (secret files every user may read).
    file_warnings: Vec<String>,
}

/// Where environment variables come from (the process, or a map in tests).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

fn socket_addr(field: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        err(
            field,
            format!("{value:?} is not an ip:port such as 127.0.0.1:8080"),
        )
    })
}

/// `config file, line N`: where a syntax error is. toml's own message quotes
/// the offending line, which may hold a secret: only the line number.
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => format!(
            "config file, line {}",
            text[..s.start.min(text.len())].matches('\n').count() + 1
        ),
        None => "config file".into(),
    }
}

/// serde's "invalid type: string \"ten\", expected u64" without the value:
/// "expected u64, found a string". `None` for other messages.
fn type_mismatch(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))?;
    let (found, expected) = rest.split_once(", expected ")?;
    let kind = found.split(['"', '`']).next().unwrap_or_default().trim();
    Some(format!("expected {}, found {kind}", expected.trim()))
}

fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| err(line_of(text, e.span()), e.message().trim().to_owned()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match type_mismatch(inner.message()) {
            // A value of the wrong type: name the field, never the value.
            Some(message) if path != "." => err(path, message),
            _ => err(
                line_of(text, inner.span()),
                inner.message().trim().to_owned(),
            ),
        }
    })
}

fn read_raw(path: Option<&Path>, env: &dyn Env) -> Result<RawConfig, ConfigError> {
    let path = path
        .map(Path::to_path_buf)
        .or_else(|| env.var("WSTICKET_CONFIG").map(PathBuf::from));
    match path {
        Some(p) => parse_raw(&read_file("--config", &p)?),
        None => Ok(RawConfig::default()),
    }
}

/// `serve --dev` adds public demo keys and a throw-away secret, so it must
/// never run beside anything of a real deployment: no clients, no frontend
/// auth, no Redis (whose tickets other replicas would honour), and no
/// listener beyond this machine.
fn dev_mode_alone(
    clients: &[clients::RawClient],
    auth: &auth::RawAuth,
    shared_store: bool,
    listeners: [(&str, SocketAddr); 2],
) -> Result<(), ConfigError> {
    let refuse = |field: &str, what: &str| {
        err(
            field,
            format!(
                "serve --dev adds public demo keys and must run alone: {what}; \
                 run without --dev, or without this configuration"
            ),
        )
    };
    if shared_store {
        return Err(refuse(
            "store.redis_url",
            "it runs only with the in-memory store (unset WSTICKET_REDIS_URL and the Redis \
             settings of [store])",
        ));
    }
    if !clients.is_empty() {
        return Err(refuse(
            "clients",
            "it refuses a configuration with [[clients]]",
        ));
    }
    if auth.jwt.is_some() {
        return Err(refuse("auth.jwt", "it refuses frontend authentication"));
    }
    if auth.forward.is_some() {
        return Err(refuse("auth.forward", "it refuses frontend authentication"));
    }
    for (field, addr) in listeners {
        if !addr.ip().is_loopback() {
            return Err(refuse(
                field,
                "it listens on loopback addresses only (127.0.0.1, ::1)",
            ));
        }
    }
    Ok(())
}

impl Settings {
    /// Load `path` (or `WSTICKET_CONFIG`, or nothing) and the environment.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Settings, ConfigError> {
        Self::from_raw(read_raw(path, env)?, env, false)
    }

    /// `serve --dev`: the configuration (if any) plus the demo set-up.
    pub fn load_dev(path: Option<&Path>, env: &dyn Env) -> Result<Settings, ConfigError> {
        Self::from_raw(read_raw(path, env)?, env, true)
    }

    /// Parse a TOML text (tests).
    pub fn from_toml(text: &str, env: &dyn Env) -> Result<Settings, ConfigError> {
        Self::from_raw(parse_raw(text)?, env, false)
    }

    fn from_raw(raw: RawConfig, env: &dyn Env, dev: bool) -> Result<Settings, ConfigError> {
        let listen = env
            .var("WSTICKET_LISTEN")
            .or(raw.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = socket_addr("listen", &listen)?;
        let admin_listen = env
            .var("WSTICKET_ADMIN_LISTEN")
            .or(raw.admin_listen)
            .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.into());
        let admin_listen = socket_addr("admin_listen", &admin_listen)?;
        let shutdown_grace_secs = in_range(
            "shutdown_grace_secs",
            raw.shutdown_grace_secs,
            DEFAULT_SHUTDOWN_GRACE_SECS,
            1..=300,
        )?;
        let shutdown_delay_secs = in_range(
            "shutdown_delay_secs",
            raw.shutdown_delay_secs,
            DEFAULT_SHUTDOWN_DELAY_SECS,
            0..=60,
        )?;

        // Warnings found while reading (secret files anyone may read).
        let mut file_warnings = Vec::new();
        let store = store::parse(raw.store, env, &mut file_warnings)?;
        let shared_store = matches!(store.backend, StoreBackend::Redis(_));
        if dev {
            dev_mode_alone(
                &raw.clients,
                &raw.auth,
                shared_store,
                [("listen", listen), ("admin_listen", admin_listen)],
            )?;
        }
        let (mut tickets, secret_source) =
            tickets::parse(raw.tickets, env, shared_store, dev, &mut file_warnings)?;
        let mut clients = clients::parse(raw.clients, &tickets.audiences, &mut file_warnings)?;
        if dev {
            let origin = Origin::parse(DEV_ORIGIN).map_err(|e| err("dev", e.to_string()))?;
            tickets.allowed_origins.push_exact(origin);
            for (name, key, can) in [
                ("demo-issuer", DEV_ISSUE_KEY, Permission::Issue),
                ("demo-redeemer", DEV_REDEEM_KEY, Permission::Redeem),
            ] {
                let c = ApiClient::new(
                    name.into(),
                    &key_sha256_hex(key),
                    HashSet::from([can]),
                    AudienceScope::All,
                )
                .map_err(|e| err("dev", e))?;
                clients.push(c);
            }
        }
        let jwt = raw
            .auth
            .jwt
            .map(|j| auth::jwt(j, env, &tickets.audiences, &mut file_warnings))
            .transpose()?;
        let forward = raw
            .auth
            .forward
            .map(|f| auth::forward(f, &tickets.audiences))
            .transpose()?;
        let limits = limits::parse(raw.limits)?;
        let events = events::parse(raw.events)?;
        Ok(Settings {
            listen,
            admin_listen,
            shutdown_grace: Duration::from_secs(shutdown_grace_secs),
            shutdown_delay: Duration::from_secs(shutdown_delay_secs),
            store,
            tickets,
            limits,
            events,
            secret_source,
            clients,
            jwt,
            forward,
            dev_mode: dev,
            file_warnings,
        })
    }

    /// What a valid configuration may still get wrong: `serve` logs these at
    /// start and `check-config` prints them.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut out = self.file_warnings.clone();
        if self.dev_mode {
            out.push(
                "DEV MODE: in-memory store, a throw-away ticket secret and PUBLIC demo API keys. \
                 NOT FOR PRODUCTION: anyone who read the README can mint and redeem tickets."
                    .to_owned(),
            );
        } else if self.secret_source == SecretSource::Generated {
            out.push(
                "no tickets.secrets configured: generated one for this process; \
                 tickets will not survive a restart (make one with `wsticket keygen`)"
                    .to_owned(),
            );
        }
        let frontend = self.jwt.is_some() || self.forward.is_some();
        let can = |p| self.clients.iter().any(|c| c.can(p));
        if !frontend && !can(Permission::Issue) {
            out.push(
                "no client has the issue permission and no frontend auth ([auth.jwt], \
                 [auth.forward]) is configured: nobody can mint tickets"
                    .to_owned(),
            );
        }
        if !can(Permission::Redeem) {
            out.push("no client has the redeem permission: no ticket can be redeemed".to_owned());
        }
        if self
            .jwt
            .as_ref()
            .is_some_and(|j| j.insecure_skip_issuer_audience)
        {
            out.push(
                "auth.jwt.insecure_skip_issuer_audience = true: iss and aud are not required, so a \
                 token the identity provider issued for ANY of its applications mints tickets here"
                    .to_owned(),
            );
        }
        // With several audiences, a caller that may use them all makes the
        // audience binding depend on every WebSocket server stating its own.
        if self.tickets.audiences.len() > 1 {
            let all = |s: &AudienceScope| matches!(s, AudienceScope::All);
            for c in &self.clients {
                if c.can(Permission::Redeem) && all(c.audiences()) {
                    out.push(format!(
                        "client {:?} may redeem every audience: give it an `audiences` list, \
                         or have its WebSocket servers state theirs on each redeem",
                        c.name
                    ));
                }
            }
            if self.jwt.as_ref().is_some_and(|j| all(&j.audiences)) {
                out.push(
                    "[auth.jwt] has no `audiences`: every signed-in user may mint for every \
                     audience"
                        .to_owned(),
                );
            }
            if self.forward.as_ref().is_some_and(|f| all(&f.audiences)) {
                out.push(
                    "[auth.forward] has no `audiences`: every signed-in user may mint for every \
                     audience"
                        .to_owned(),
                );
            }
        }
        if self.tickets.allowed_origins.is_empty() && !self.tickets.allow_originless {
            out.push("tickets.allowed_origins is empty: every mint will be refused".to_owned());
        }
        out
    }

    /// One line for `check-config`: what this configuration runs.
    pub(crate) fn summary(&self) -> String {
        let store = match self.store.backend {
            StoreBackend::Memory { .. } => "memory",
            StoreBackend::Redis(_) => "redis",
        };
        format!(
            "listen {}, admin {}, store {store}, {} client(s), minting key id {:?}{}",
            self.listen,
            self.admin_listen,
            self.clients.len(),
            self.tickets.keyring.minting_kid().as_ref(),
            if self.secret_source == SecretSource::Generated {
                " (generated: none configured)"
            } else {
                ""
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ServerSecret;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(text, &no_env)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = load("").unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.admin_listen.to_string(), "127.0.0.1:9102");
        assert!(matches!(
            s.store.backend,
            StoreBackend::Memory {
                max_entries: 1_000_000,
                max_bytes: 67_108_864,
            }
        ));
        assert_eq!(s.events.heartbeat, std::time::Duration::from_secs(15));
        assert_eq!(s.events.backlog, 10_000);
        assert_eq!(s.tickets.on_reuse, crate::core::OnReuse::Report);
        assert_eq!(s.store.key_prefix, "wsticket:");
        assert_eq!(s.tickets.default_ttl_secs, 30);
        assert_eq!(s.tickets.max_ttl_secs, 120);
        assert_eq!(s.tickets.max_claims_bytes, 4096);
        assert_eq!(s.tickets.default_audience.as_ref(), "default");
        assert_eq!(s.secret_source, SecretSource::Generated);
        assert!(!s.tickets.allow_originless);
    }

    #[test]
    fn env_overrides_the_file() {
        let env = |name: &str| match name {
            "WSTICKET_LISTEN" => Some("0.0.0.0:1".to_owned()),
            "WSTICKET_REDIS_URL" => Some("redis://127.0.0.1:1/0".to_owned()),
            "WSTICKET_TICKET_SECRETS" => Some(format!(
                "k2:{}",
                ServerSecret::generate("x").unwrap().expose_base64()
            )),
            _ => None,
        };
        let s = Settings::from_toml("listen = \"127.0.0.1:2\"", &env).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:1");
        assert!(matches!(s.store.backend, StoreBackend::Redis(_)));
        assert_eq!(s.tickets.keyring.minting_kid().as_ref(), "k2");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("listen = \"nope\"", "listen"),
            ("[store]\nredis_url = \"redis://x\"", "tickets.secrets"),
            ("[store]\nredis_url = \"http://x\"", "store.redis_url"),
            ("[tickets]\nmax_ttl_secs = 0", "tickets.max_ttl_secs"),
            (
                "[tickets]\ndefault_ttl_secs = 200",
                "tickets.default_ttl_secs",
            ),
            (
                "[tickets]\nallowed_origins = [\"null\"]",
                "tickets.allowed_origins",
            ),
            (
                "[tickets]\ndefault_audience = \"chat\"",
                "tickets.default_audience",
            ),
            (
                "[tickets]\nsecrets = [{ id = \"k1\", secret = \"short\" }]",
                "tickets.secrets[0]",
            ),
            (
                "[[clients]]\nname = \"a\"\nkey_sha256 = \"00\"\ncan = [\"issue\"]",
                "clients[0].key_sha256",
            ),
            (
                "[[clients]]\nname = \"a\"\nkey_sha256 = \"00\"\ncan = [\"all\"]",
                "clients[0].can",
            ),
            ("nonsense = 1", "config file, line 1"),
            ("[store]\nredis_uri = \"redis://x\"", "config file, line 2"),
            (
                "[store]\nredis_url = \"redis://x\"\ncluster_password_file = \"/p\"",
                "store.cluster_password_file",
            ),
            (
                "[store]\ncluster_urls = [\"redis://x\"]\ncluster_password_file = \"/nonexistent/pw\"",
                "store.cluster_password_file",
            ),
            (
                "[store]\ncluster_urls = [\"redis://a\", \"rediss://b\"]",
                "store.cluster_urls",
            ),
            (
                "[store.sentinel]\nmaster_name = \"m\"\nurls = [\"rediss://a\", \"redis://b\"]",
                "store.sentinel.urls",
            ),
            (
                "[store.sentinel]\nmaster_name = \"m\"\nurls = [\"redis://a\", \"http://b\"]",
                "store.sentinel.urls[1]",
            ),
            (
                "[store.sentinel]\nmaster_name = \"m\"\nurls = [\"redis://a\"]\nsentinel_password_file = \"/nonexistent/pw\"",
                "store.sentinel.sentinel_password_file",
            ),
        ];
        for (text, field) in cases {
            let e = load(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }

    #[test]
    fn error_messages_never_repeat_secrets() {
        let text = "[tickets]\nsecrets = [{ id = \"k1\", secret = \"SUPERSECRETVALUE\" }\n";
        let e = load(text).unwrap_err();
        assert!(!e.to_string().contains("SUPERSECRETVALUE"), "{e}");
        let env =
            |name: &str| (name == "WSTICKET_REDIS_URL").then(|| "http://user:hunter2@x".to_owned());
        let e = Settings::from_toml("", &env).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = load("[tickets]\nsecrets = [{ id = \"k1\", secret = \"SUPERSECRETVALUE\" }]")
            .unwrap_err();
        assert!(!e.to_string().contains("SUPERSECRETVALUE"), "{e}");
    }

    #[test]
    fn limits_default_to_the_documented_ones_and_refuse_nonsense() {
        let l = load("").unwrap().limits;
        let b = l.per_user.unwrap();
        assert_eq!((b.rate.to_string(), b.burst), ("10/s".to_owned(), 20));
        let b = l.per_ip.unwrap();
        assert_eq!((b.rate.to_string(), b.burst), ("60/s".to_owned(), 120));
        assert_eq!(l.max_live_per_user, Some(20));
        assert!(l.trusted_proxies.is_empty() && !l.apply_to_api_keys);

        let l =
            load("[limits]\nmint_per_user = \"OFF\"\nmint_per_ip = \"off\"\nmax_live_per_user = 0")
                .unwrap()
                .limits;
        assert!(l.per_user.is_none() && l.per_ip.is_none() && l.max_live_per_user.is_none());

        for (text, field) in [
            ("mint_per_user = \"10\"", "limits.mint_per_user"),
            ("mint_per_ip = \"0/s\"", "limits.mint_per_ip"),
            ("mint_per_user_burst = 0", "limits.mint_per_user_burst"),
            ("mint_per_ip_burst = 1000001", "limits.mint_per_ip_burst"),
            (
                "trusted_proxies = [\"10.0.0.0/33\"]",
                "limits.trusted_proxies[0]",
            ),
            (
                "trusted_proxies = [\"proxy.local\"]",
                "limits.trusted_proxies[0]",
            ),
        ] {
            let e = load(&format!("[limits]\n{text}")).unwrap_err();
            assert!(e.to_string().contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn revocation_events_and_the_memory_budget_refuse_nonsense() {
        let s = load(
            "[tickets]\non_reuse = \"revoke_user\"\n[events]\nheartbeat_secs = 1\nbacklog = 5",
        )
        .unwrap();
        assert_eq!(s.tickets.on_reuse, crate::core::OnReuse::RevokeUser);
        assert_eq!(s.events.heartbeat, std::time::Duration::from_secs(1));
        assert_eq!(s.events.backlog, 5);
        for (text, field) in [
            ("[tickets]\non_reuse = \"revoke\"", "tickets.on_reuse"),
            ("[events]\nheartbeat_secs = 0", "events.heartbeat_secs"),
            ("[events]\nheartbeat_secs = 301", "events.heartbeat_secs"),
            ("[events]\nbacklog = 0", "events.backlog"),
            (
                "[store]\nmemory_max_bytes = 1048575",
                "store.memory_max_bytes",
            ),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.to_string().contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn auth_sections_are_checked() {
        let pem = "tests/fixtures/jwt/rsa1.pub.pem";
        let cases = [
            (
                "[auth.jwt]\nalgorithms = []\nhs_secret = \"x\"",
                "auth.jwt.algorithms",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"none\"]\nhs_secret = \"x\"",
                "auth.jwt.algorithms",
            ),
            ("[auth.jwt]\nalgorithms = [\"RS256\"]", "auth.jwt"),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nhs_secret = \"0123456789abcdef0123456789abcdef\"\njwks_url = \"https://x\"",
                "auth.jwt",
            ),
            // HMAC beside an asymmetric family: the confusion attack.
            (
                "[auth.jwt]\nalgorithms = [\"HS256\", \"RS256\"]\njwks_url = \"https://x/jwks\"",
                "auth.jwt.algorithms",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nhs_secret = \"short\"",
                "auth.jwt.hs_secret",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\nhs_secret = \"0123456789abcdef0123456789abcdef\"",
                "auth.jwt.hs_secret",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"ES256\"]\npublic_key_pem = \"junk\"",
                "auth.jwt.public_key_pem",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks_url = \"ftp://x\"",
                "auth.jwt.jwks_url",
            ),
            ("[auth.forward]\nurl = \"django:8000\"", "auth.forward.url"),
            (
                "[auth.forward]\nurl = \"http://x\"\nmethod = \"PUT\"",
                "auth.forward.method",
            ),
            (
                "[auth.forward]\nurl = \"http://x\"\nforward_headers = [\"host\"]",
                "auth.forward.forward_headers",
            ),
            (
                "[auth.forward]\nurl = \"http://x\"\nuser_pointer = \"user_id\"",
                "auth.forward.user_pointer",
            ),
            (
                "[auth.forward]\nurl = \"http://x\"\naudiences = [\"nope\"]",
                "auth.forward.audiences",
            ),
        ];
        for (text, field) in cases {
            let e = load(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
        let ok = format!(
            "[auth.jwt]\nalgorithms = [\"RS256\", \"PS256\"]\npublic_key_file = \"{pem}\"\n[auth.forward]\nurl = \"http://django:8000/api/whoami/\""
        );
        let s = load(&ok).unwrap();
        assert!(s.jwt.is_some() && s.forward.is_some());
    }

    #[test]
    fn dev_mode_adds_the_demo_and_refuses_redis() {
        let s = Settings::load_dev(None, &no_env).unwrap();
        assert!(s.dev_mode);
        assert_eq!(s.clients.len(), 2);
        assert!(
            s.tickets
                .allowed_origins
                .allows(&Origin::parse(DEV_ORIGIN).unwrap())
        );
        let env = |name: &str| {
            (name == "WSTICKET_REDIS_URL").then(|| "redis://127.0.0.1:6379".to_owned())
        };
        let e = Settings::load_dev(None, &env).unwrap_err();
        assert_eq!(e.field, "store.redis_url");
    }

    /// Nothing of a real deployment runs beside the public demo keys.
    #[test]
    fn dev_mode_refuses_clients_frontend_auth_and_public_listeners() {
        let dev = |text: &str, env: &dyn Env| {
            Settings::from_raw(parse_raw(text).unwrap(), env, true).map(|_| ())
        };
        let client = format!(
            "[[clients]]\nname = \"prod\"\nkey_sha256 = \"{}\"\ncan = [\"issue\"]",
            key_sha256_hex("wsk_x")
        );
        let pem = "tests/fixtures/jwt/rsa1.pub.pem";
        let cases = [
            (client.as_str(), "clients"),
            (
                &format!("[auth.jwt]\nalgorithms = [\"RS256\"]\npublic_key_file = \"{pem}\""),
                "auth.jwt",
            ),
            (
                "[auth.forward]\nurl = \"http://app/whoami\"",
                "auth.forward",
            ),
            ("listen = \"0.0.0.0:8080\"", "listen"),
            ("admin_listen = \"192.0.2.1:9102\"", "admin_listen"),
            (
                "[store]\ncluster_urls = [\"redis://a:1\"]",
                "store.redis_url",
            ),
        ];
        for (text, field) in cases {
            let e = dev(text, &no_env).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
            assert!(e.message.contains("--dev"), "{e}");
        }
        let public = |name: &str| (name == "WSTICKET_LISTEN").then(|| "0.0.0.0:8080".to_owned());
        assert_eq!(dev("", &public).unwrap_err().field, "listen");
        // Loopback on either family is fine, and so are tickets settings.
        assert!(
            dev(
                "listen = \"[::1]:8080\"\n[tickets]\nmax_ttl_secs = 60",
                &no_env
            )
            .is_ok()
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_field_but_not_the_value() {
        let e = load("[tickets]\nmax_ttl_secs = \"ten\"").unwrap_err();
        assert_eq!(e.field, "tickets.max_ttl_secs");
        assert_eq!(e.message, "expected u64, found string");
        let e = load("[[clients]]\nname = \"a\"\ncan = \"issue\"\nkey_sha256 = \"x\"").unwrap_err();
        assert_eq!(e.field, "clients[0].can", "{e}");
        let e = load("[store]\ncommand_timeout_ms = -5").unwrap_err();
        assert_eq!(e.field, "store.command_timeout_ms", "{e}");
        assert!(!e.message.contains("-5"), "{e}");
        let e = load("[auth.jwt]\nalgorithms = [\"HS256\"]\nhs_secret = 12345678901234567890")
            .unwrap_err();
        assert_eq!(e.field, "auth.jwt.hs_secret", "{e}");
        assert!(!e.to_string().contains("12345678901234567890"), "{e}");
    }

    #[test]
    fn a_value_and_its_file_together_are_an_error_naming_both() {
        for (text, field, file_field) in [
            (
                "[store]\nredis_url = \"redis://x\"\nredis_url_file = \"/p\"",
                "store.redis_url",
                "store.redis_url_file",
            ),
            (
                "[tickets]\nsecrets = [{ id = \"k1\", secret = \"x\", secret_file = \"/p\" }]",
                "tickets.secrets[0].secret",
                "tickets.secrets[0].secret_file",
            ),
            (
                "[[clients]]\nname = \"a\"\nkey_sha256 = \"00\"\nkey_sha256_file = \"/p\"\ncan = [\"issue\"]",
                "clients[0].key_sha256",
                "clients[0].key_sha256_file",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nhs_secret = \"x\"\nhs_secret_file = \"/p\"",
                "auth.jwt.hs_secret",
                "auth.jwt.hs_secret_file",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\npublic_key_pem = \"x\"\npublic_key_file = \"/p\"",
                "auth.jwt.public_key_pem",
                "auth.jwt.public_key_file",
            ),
        ] {
            let e = load(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
            assert_eq!(
                e.message,
                format!("set {field} or {file_field}, not both"),
                "{text}"
            );
        }
    }

    /// A file holding a secret, with `mode`.
    fn secret_file(mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("wsticket-config-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, ServerSecret::generate("k1").unwrap().expose_base64()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn secret_files_others_may_write_are_refused_and_readable_ones_warned_about() {
        let with = |path: &std::path::Path| {
            load(&format!(
                "[tickets]\nsecrets = [{{ id = \"k1\", secret_file = {:?} }}]",
                path.display().to_string()
            ))
        };
        for mode in [0o666, 0o620, 0o602, 0o660] {
            let path = secret_file(mode);
            let e = with(&path).unwrap_err();
            assert_eq!(e.field, "tickets.secrets[0].secret_file", "{mode:o}: {e}");
            assert!(
                e.message.contains(&format!("chmod 600 {}", path.display())),
                "{e}"
            );
        }
        let readable = secret_file(0o644);
        let w = with(&readable).unwrap().warnings();
        assert!(
            w.iter()
                .any(|w| w.contains("every user may read it") && w.contains("chmod 600")),
            "{w:?}"
        );
        for mode in [0o600, 0o400, 0o640, 0o440] {
            let w = with(&secret_file(mode)).unwrap().warnings();
            assert!(!w.iter().any(|w| w.contains("may read")), "{mode:o}: {w:?}");
        }
        // Every kind of secret file is checked, not only ticket secrets.
        let open = secret_file(0o666);
        let p = format!("{:?}", open.display().to_string());
        for (text, field) in [
            (
                format!("[store]\nredis_url_file = {p}"),
                "store.redis_url_file",
            ),
            (
                format!("[store]\ncluster_urls = [\"redis://a\"]\ncluster_password_file = {p}"),
                "store.cluster_password_file",
            ),
            (
                format!(
                    "[store.sentinel]\nmaster_name = \"m\"\nurls = [\"redis://a\"]\nmaster_password_file = {p}"
                ),
                "store.sentinel.master_password_file",
            ),
            (
                format!(
                    "[store.sentinel]\nmaster_name = \"m\"\nurls = [\"redis://a\"]\nsentinel_password_file = {p}"
                ),
                "store.sentinel.sentinel_password_file",
            ),
            (
                format!("[[clients]]\nname = \"a\"\nkey_sha256_file = {p}\ncan = [\"issue\"]"),
                "clients[0].key_sha256_file",
            ),
            (
                format!("[auth.jwt]\nalgorithms = [\"HS256\"]\nhs_secret_file = {p}"),
                "auth.jwt.hs_secret_file",
            ),
        ] {
            let e = load(&text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
            assert!(e.message.contains("chmod 600"), "{e}");
        }
    }

    #[test]
    fn with_several_audiences_callers_without_a_list_are_warned_about() {
        let hash = key_sha256_hex("wsk_x");
        let hash2 = key_sha256_hex("wsk_y");
        let text = format!(
            "[tickets]\naudiences = [\"default\", \"chat\"]\n\
             [[clients]]\nname = \"ws-all\"\nkey_sha256 = \"{hash}\"\ncan = [\"redeem\"]\n\
             [[clients]]\nname = \"ws-chat\"\nkey_sha256 = \"{hash2}\"\ncan = [\"redeem\"]\naudiences = [\"chat\"]\n\
             [auth.forward]\nurl = \"https://app.example/whoami\""
        );
        let w = load(&text).unwrap().warnings();
        assert!(
            w.iter()
                .any(|w| w.contains("\"ws-all\" may redeem every audience")),
            "{w:?}"
        );
        assert!(!w.iter().any(|w| w.contains("ws-chat")), "{w:?}");
        assert!(
            w.iter()
                .any(|w| w.contains("[auth.forward] has no `audiences`")),
            "{w:?}"
        );
        // One audience: nothing to choose between.
        let one =
            format!("[[clients]]\nname = \"ws\"\nkey_sha256 = \"{hash}\"\ncan = [\"redeem\"]");
        assert!(
            !load(&one)
                .unwrap()
                .warnings()
                .iter()
                .any(|w| w.contains("every audience"))
        );
    }

    #[test]
    fn warnings_say_when_nobody_can_mint_or_redeem() {
        let w = load("").unwrap().warnings();
        assert!(w.iter().any(|w| w.contains("nobody can mint")), "{w:?}");
        assert!(
            w.iter().any(|w| w.contains("no ticket can be redeemed")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.contains("allowed_origins is empty")),
            "{w:?}"
        );
        assert!(w.iter().any(|w| w.contains("generated one")), "{w:?}");
        let hash = key_sha256_hex("wsk_x");
        let ok = format!(
            "[tickets]\nallowed_origins = [\"https://a.example\"]\nsecrets = [{{ id = \"k1\", secret = \"{}\" }}]\n\
             [[clients]]\nname = \"a\"\nkey_sha256 = \"{hash}\"\ncan = [\"issue\", \"redeem\"]",
            crate::crypto::ServerSecret::generate("k1")
                .unwrap()
                .expose_base64()
        );
        assert_eq!(load(&ok).unwrap().warnings(), Vec::<String>::new());
    }

    #[test]
    fn debug_of_the_settings_shows_no_secret() {
        let secret = crate::crypto::ServerSecret::generate("k1")
            .unwrap()
            .expose_base64();
        let text = format!(
            "[store]\nredis_url = \"redis://:hunter2@127.0.0.1:6379\"\n\
             [tickets]\nsecrets = [{{ id = \"k1\", secret = \"{secret}\" }}]\n\
             [auth.forward]\nurl = \"https://app:fwdpass@app.example/whoami\"\n\
             [auth.jwt]\nalgorithms = [\"HS256\"]\nhs_secret = \"hs-secret-hs-secret-hs-secret-hs-secret\""
        );
        let debug = format!("{:?}", load(&text).unwrap());
        for s in ["hunter2", &secret, "fwdpass", "hs-secret"] {
            assert!(!debug.contains(s), "{s} in {debug}");
        }
    }

    /// A key set serves every application of an identity provider: without
    /// iss and aud checks, their tokens would mint here (a confused deputy).
    #[test]
    fn a_key_set_needs_issuer_and_audience_unless_told_otherwise() {
        let jwks = "tests/fixtures/jwt/jwks-v1.json";
        let base = format!("[auth.jwt]\nalgorithms = [\"RS256\"]\njwks_file = \"{jwks}\"\n");
        let e = load(&base).unwrap_err();
        assert_eq!(e.field, "auth.jwt.issuer", "{e}");
        assert!(e.message.contains("insecure_skip_issuer_audience"), "{e}");
        let e = load(&format!("{base}issuer = \"https://idp\"\n")).unwrap_err();
        assert_eq!(e.field, "auth.jwt.audience", "{e}");
        let e = load("[auth.jwt]\nalgorithms = [\"RS256\"]\njwks_url = \"https://idp/jwks\"\naudience = \"a\"")
            .unwrap_err();
        assert_eq!(e.field, "auth.jwt.issuer", "{e}");
        let s = load(&format!(
            "{base}issuer = \"https://idp\"\naudience = \"app\"\n"
        ))
        .unwrap();
        assert!(!s.warnings().iter().any(|w| w.contains("insecure")));
        let s = load(&format!("{base}insecure_skip_issuer_audience = true\n")).unwrap();
        assert!(
            s.warnings()
                .iter()
                .any(|w| w.contains("insecure_skip_issuer_audience")),
            "{:?}",
            s.warnings()
        );
        // A single public key or an HMAC secret is the operator's own.
        let pem = "tests/fixtures/jwt/rsa1.pub.pem";
        assert!(
            load(&format!(
                "[auth.jwt]\nalgorithms = [\"RS256\"]\npublic_key_file = \"{pem}\""
            ))
            .is_ok()
        );
    }

    #[test]
    fn jwks_url_is_https_except_to_loopback() {
        let with = |url: &str| {
            load(&format!(
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks_url = \"{url}\"\nissuer = \"i\"\naudience = \"a\""
            ))
        };
        for ok in [
            "https://idp.example.com/jwks.json",
            "http://127.0.0.1:8080/jwks.json",
            "http://127.1.2.3/jwks.json",
            "http://[::1]:9000/jwks.json",
            "http://localhost/jwks.json",
        ] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example.com/jwks.json",
            "http://10.0.0.1/jwks.json",
            "http://user:pw@idp.example.com/jwks.json",
            "ftp://idp/jwks",
            "https//idp",
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.field, "auth.jwt.jwks_url", "{bad}: {e}");
            assert!(!e.to_string().contains("idp.example.com"), "{e}");
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
    }

    /// check-config catches what serve would refuse: a URL the Redis client
    /// or the HTTP client cannot use, never echoing a password.
    #[test]
    fn urls_are_parsed_as_serve_will_use_them() {
        let env =
            |name: &str| (name == "WSTICKET_REDIS_URL").then(|| "redis://:pw@[::1".to_owned());
        let e = Settings::from_toml("", &env).unwrap_err();
        assert_eq!(e.field, "WSTICKET_REDIS_URL", "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
        for (text, field) in [
            (
                "[store]\nredis_url = \"redis://:hunter2@host:notaport/0\"",
                "store.redis_url",
            ),
            (
                "[store]\nredis_url = \"redis://host:6379/zero\"",
                "store.redis_url",
            ),
            (
                "[store]\ncluster_urls = [\"redis://a:1\", \"redis://:hunter2@[::1\"]",
                "store.cluster_urls[1]",
            ),
            (
                "[store.sentinel]\nmaster_name = \"m\"\nurls = [\"redis://:hunter2@[::1\"]",
                "store.sentinel.urls[0]",
            ),
            (
                "[auth.forward]\nurl = \"http://:hunter2@[::1\"",
                "auth.forward.url",
            ),
            ("[auth.forward]\nurl = \"https://\"", "auth.forward.url"),
        ] {
            let text = if text.starts_with("[store]\nredis_url") {
                format!(
                    "{text}\n[tickets]\nsecrets = [{{ id = \"k1\", secret = \"{}\" }}]",
                    ServerSecret::generate("k1").unwrap().expose_base64()
                )
            } else {
                text.to_owned()
            };
            let e = load(&text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }
}

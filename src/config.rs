//! Configuration: compiled-in defaults, then the TOML file, then `WSTICKET_*`
//! environment variables, validated once into [`Settings`]. An invalid value
//! stops start-up with a message that names the field; a message never
//! repeats a secret.

use crate::auth::forward::{ForwardMethod, ForwardSettings};
use crate::auth::jwt::{self, Family, JwtSettings, KeySource, VerifyingKey};
use crate::auth::{ApiClient, Permission, key_sha256_hex};
use crate::crypto::{Keyring, ServerSecret};
use crate::domain::{Audience, Origin, OriginAllowlist};
use crate::store::{RedisSettings, RedisTopology};
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The two demo keys of `serve --dev`. They are public (the README prints
/// them) and accepted only in dev mode.
pub const DEV_ISSUE_KEY: &str = "wsk_demo-issue-key-not-for-production-000000000";
pub const DEV_REDEEM_KEY: &str = "wsk_demo-redeem-key-not-for-production-00000000";
pub const DEV_ORIGIN: &str = "http://localhost:3000";

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

// ---- the file, as written -------------------------------------------------
// No `Debug` on these: they hold secrets in clear.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    shutdown_grace_secs: Option<u64>,
    shutdown_delay_secs: Option<u64>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    tickets: RawTickets,
    #[serde(default)]
    clients: Vec<RawClient>,
    #[serde(default)]
    auth: RawAuth,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    jwt: Option<RawJwt>,
    forward: Option<RawForward>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    issuer: Option<String>,
    audience: Option<String>,
    algorithms: Vec<String>,
    jwks_url: Option<String>,
    jwks_file: Option<PathBuf>,
    public_key_pem: Option<String>,
    public_key_file: Option<PathBuf>,
    hs_secret: Option<String>,
    hs_secret_file: Option<PathBuf>,
    user_claim: Option<String>,
    copy_claims: Option<Vec<String>>,
    leeway_secs: Option<u64>,
    jwks_refresh_secs: Option<u64>,
    jwks_min_refetch_secs: Option<u64>,
    audiences: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    url: String,
    method: Option<String>,
    forward_headers: Option<Vec<String>>,
    user_pointer: Option<String>,
    claims_pointer: Option<String>,
    timeout_ms: Option<u64>,
    audiences: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    redis_url: Option<String>,
    redis_url_file: Option<PathBuf>,
    cluster_urls: Option<Vec<String>>,
    cluster_password_file: Option<PathBuf>,
    sentinel: Option<RawSentinel>,
    key_prefix: Option<String>,
    command_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    max_in_flight: Option<usize>,
    memory_max_entries: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSentinel {
    master_name: String,
    urls: Vec<String>,
    db: Option<i64>,
    master_password_file: Option<PathBuf>,
    sentinel_password_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTickets {
    default_ttl_secs: Option<u64>,
    max_ttl_secs: Option<u64>,
    allowed_origins: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    default_audience: Option<String>,
    max_claims_bytes: Option<usize>,
    allow_originless: Option<bool>,
    secrets: Option<Vec<RawSecret>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    id: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    key_sha256: Option<String>,
    key_sha256_file: Option<PathBuf>,
    can: Vec<String>,
    audiences: Option<Vec<String>>,
}

// ---- validated -------------------------------------------------------------

#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How long to keep serving (readyz 503) after SIGTERM before draining.
    pub shutdown_delay: Duration,
    pub store: StoreSettings,
    pub tickets: TicketSettings,
    pub clients: Vec<ApiClient>,
    pub jwt: Option<JwtSettings>,
    pub forward: Option<ForwardSettings>,
    /// `serve --dev`: the demo set-up, never for production.
    pub dev_mode: bool,
}

#[derive(Debug)]
pub enum StoreBackend {
    Memory { max_entries: usize },
    Redis(RedisSettings),
}

#[derive(Debug)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    pub key_prefix: String,
}

#[derive(Debug, Clone)]
pub struct TicketSettings {
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
    pub allowed_origins: OriginAllowlist,
    pub audiences: Vec<Audience>,
    pub default_audience: Audience,
    pub max_claims_bytes: usize,
    pub allow_originless: bool,
    pub keyring: Keyring,
    /// No secret was configured, so one was generated at start (memory only).
    pub secrets_generated: bool,
}

pub const MAX_TTL_LIMIT_SECS: u64 = 3600;

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

fn read_file(field: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| err(field, format!("cannot read {}: {e}", path.display())))
}

fn socket_addr(field: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        err(
            field,
            format!("{value:?} is not an ip:port such as 127.0.0.1:8080"),
        )
    })
}

fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        // toml's Display quotes the offending line, which may hold a secret:
        // report the line number and the message only.
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let field = match line {
            Some(l) => format!("config file, line {l}"),
            None => "config file".into(),
        };
        err(field, e.message().trim().to_owned())
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
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = socket_addr("listen", &listen)?;
        let admin_listen = env
            .var("WSTICKET_ADMIN_LISTEN")
            .or(raw.admin_listen)
            .unwrap_or_else(|| "127.0.0.1:9102".into());
        let admin_listen = socket_addr("admin_listen", &admin_listen)?;
        let shutdown_grace_secs = raw.shutdown_grace_secs.unwrap_or(10);
        if !(1..=300).contains(&shutdown_grace_secs) {
            return Err(err("shutdown_grace_secs", "must be between 1 and 300"));
        }
        let shutdown_delay_secs = raw.shutdown_delay_secs.unwrap_or(0);
        if shutdown_delay_secs > 60 {
            return Err(err("shutdown_delay_secs", "must be at most 60"));
        }

        let store = store_settings(raw.store, env)?;
        if dev && matches!(store.backend, StoreBackend::Redis(_)) {
            return Err(err(
                "store.redis_url",
                "serve --dev runs only with the in-memory store; unset the Redis URL \
                 (WSTICKET_REDIS_URL, store.redis_url) or run without --dev",
            ));
        }
        let mut tickets = ticket_settings(raw.tickets, env, &store, dev)?;
        let mut clients = raw
            .clients
            .into_iter()
            .enumerate()
            .map(|(i, c)| client(i, c, &tickets.audiences))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, c) in clients.iter().enumerate() {
            if clients[..i].iter().any(|o| o.name == c.name) {
                return Err(err(
                    format!("clients[{i}].name"),
                    format!("duplicate client name {:?}", c.name),
                ));
            }
        }
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
                    None,
                )
                .map_err(|e| err("dev", e))?;
                clients.push(c);
            }
        }
        let jwt = raw
            .auth
            .jwt
            .map(|j| jwt_settings(j, env, &tickets.audiences))
            .transpose()?;
        let forward = raw
            .auth
            .forward
            .map(|f| forward_settings(f, &tickets.audiences))
            .transpose()?;
        Ok(Settings {
            listen,
            admin_listen,
            shutdown_grace: Duration::from_secs(shutdown_grace_secs),
            shutdown_delay: Duration::from_secs(shutdown_delay_secs),
            store,
            tickets,
            clients,
            jwt,
            forward,
            dev_mode: dev,
        })
    }
}

fn store_settings(raw: RawStore, env: &dyn Env) -> Result<StoreSettings, ConfigError> {
    let url = match env.var("WSTICKET_REDIS_URL") {
        Some(u) => Some(("WSTICKET_REDIS_URL", u)),
        None => match (&raw.redis_url_file, raw.redis_url) {
            (Some(p), _) => Some((
                "store.redis_url_file",
                read_file("store.redis_url_file", p)?,
            )),
            (None, Some(u)) => Some(("store.redis_url", u)),
            (None, None) => None,
        },
    };
    let command_timeout_ms = raw.command_timeout_ms.unwrap_or(500);
    if !(1..=60_000).contains(&command_timeout_ms) {
        return Err(err(
            "store.command_timeout_ms",
            "must be between 1 and 60000",
        ));
    }
    let connect_timeout_ms = raw.connect_timeout_ms.unwrap_or(1000);
    if !(1..=60_000).contains(&connect_timeout_ms) {
        return Err(err(
            "store.connect_timeout_ms",
            "must be between 1 and 60000",
        ));
    }
    let redis_url = |field: &str, url: &str| -> Result<(), ConfigError> {
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            Ok(())
        } else {
            // Never echo the URL: it may carry a password.
            Err(err(field, "must start with redis:// or rediss://"))
        }
    };
    // One scheme per list: the Cluster client refuses a mix at start-up, and
    // for Sentinel the scheme also decides whether the master is reached
    // over TLS.
    let one_scheme = |field: &str, urls: &[String]| -> Result<(), ConfigError> {
        for (i, u) in urls.iter().enumerate() {
            redis_url(&format!("{field}[{i}]"), u)?;
        }
        let tls = urls.iter().filter(|u| u.starts_with("rediss://")).count();
        if tls != 0 && tls != urls.len() {
            return Err(err(
                field,
                "mixes redis:// and rediss://: use one scheme for all",
            ));
        }
        Ok(())
    };
    if raw.cluster_password_file.is_some() && raw.cluster_urls.is_none() {
        return Err(err(
            "store.cluster_password_file",
            "only applies with store.cluster_urls",
        ));
    }
    let topology = match (url, raw.cluster_urls, raw.sentinel) {
        (Some((field, url)), _, _) if field == "WSTICKET_REDIS_URL" => {
            redis_url(field, &url)?;
            Some(RedisTopology::Single { url })
        }
        (Some((field, url)), None, None) => {
            redis_url(field, &url)?;
            Some(RedisTopology::Single { url })
        }
        (None, Some(urls), None) => {
            if urls.is_empty() {
                return Err(err("store.cluster_urls", "name at least one node"));
            }
            one_scheme("store.cluster_urls", &urls)?;
            let password = raw
                .cluster_password_file
                .as_ref()
                .map(|p| read_file("store.cluster_password_file", p))
                .transpose()?;
            Some(RedisTopology::Cluster { urls, password })
        }
        (None, None, Some(s)) => {
            if s.urls.is_empty() {
                return Err(err("store.sentinel.urls", "name at least one sentinel"));
            }
            one_scheme("store.sentinel.urls", &s.urls)?;
            if s.master_name.is_empty() {
                return Err(err("store.sentinel.master_name", "must not be empty"));
            }
            let password = s
                .master_password_file
                .as_ref()
                .map(|p| read_file("store.sentinel.master_password_file", p))
                .transpose()?;
            let sentinel_password = s
                .sentinel_password_file
                .as_ref()
                .map(|p| read_file("store.sentinel.sentinel_password_file", p))
                .transpose()?;
            Some(RedisTopology::Sentinel {
                master_name: s.master_name,
                urls: s.urls,
                db: s.db.unwrap_or(0),
                password,
                sentinel_password,
            })
        }
        (None, None, None) => None,
        _ => {
            return Err(err(
                "store",
                "set one of redis_url (or redis_url_file), cluster_urls and sentinel",
            ));
        }
    };
    let max_in_flight = raw.max_in_flight.unwrap_or(1024);
    if !(1..=1_000_000).contains(&max_in_flight) {
        return Err(err("store.max_in_flight", "must be between 1 and 1000000"));
    }
    let backend = match topology {
        Some(topology) => StoreBackend::Redis(RedisSettings {
            topology,
            command_timeout: Duration::from_millis(command_timeout_ms),
            connect_timeout: Duration::from_millis(connect_timeout_ms),
            max_in_flight,
        }),
        None => {
            let max_entries = raw.memory_max_entries.unwrap_or(1_000_000);
            if max_entries == 0 {
                return Err(err("store.memory_max_entries", "must be at least 1"));
            }
            StoreBackend::Memory { max_entries }
        }
    };
    let key_prefix = raw.key_prefix.unwrap_or_else(|| "wsticket:".into());
    if key_prefix.len() > 128
        || key_prefix
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(err(
            "store.key_prefix",
            "at most 128 characters, no spaces or control characters",
        ));
    }
    Ok(StoreSettings {
        backend,
        key_prefix,
    })
}

fn secrets(raw: Option<Vec<RawSecret>>, env: &dyn Env) -> Result<Vec<ServerSecret>, ConfigError> {
    if let Some(list) = env.var("WSTICKET_TICKET_SECRETS") {
        let field = "WSTICKET_TICKET_SECRETS";
        return list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, entry)| {
                let (id, secret) = entry
                    .split_once(':')
                    .ok_or_else(|| err(format!("{field}[{i}]"), "expected id:base64url-secret"))?;
                ServerSecret::parse(id.trim(), secret).map_err(|e| err(format!("{field}[{i}]"), e))
            })
            .collect();
    }
    raw.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let field = format!("tickets.secrets[{i}]");
            let value = match (s.secret, s.secret_file) {
                (Some(v), None) => v,
                (None, Some(p)) => read_file(&format!("{field}.secret_file"), &p)?,
                _ => return Err(err(field, "set exactly one of secret and secret_file")),
            };
            ServerSecret::parse(&s.id, &value).map_err(|e| err(field, e))
        })
        .collect()
}

fn ticket_settings(
    raw: RawTickets,
    env: &dyn Env,
    store: &StoreSettings,
    dev: bool,
) -> Result<TicketSettings, ConfigError> {
    let max_ttl_secs = raw.max_ttl_secs.unwrap_or(120);
    if !(1..=MAX_TTL_LIMIT_SECS).contains(&max_ttl_secs) {
        return Err(err(
            "tickets.max_ttl_secs",
            format!("must be between 1 and {MAX_TTL_LIMIT_SECS}"),
        ));
    }
    let default_ttl_secs = raw.default_ttl_secs.unwrap_or(30.min(max_ttl_secs));
    if !(1..=max_ttl_secs).contains(&default_ttl_secs) {
        return Err(err(
            "tickets.default_ttl_secs",
            "must be between 1 and tickets.max_ttl_secs",
        ));
    }
    let allowed_origins = OriginAllowlist::parse(&raw.allowed_origins.unwrap_or_default())
        .map_err(|e| err("tickets.allowed_origins", e))?;
    let audiences = raw
        .audiences
        .unwrap_or_else(|| vec!["default".into()])
        .iter()
        .enumerate()
        .map(|(i, a)| Audience::parse(a).map_err(|e| err(format!("tickets.audiences[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    if audiences.is_empty() {
        return Err(err("tickets.audiences", "must name at least one audience"));
    }
    let default_audience = raw.default_audience.unwrap_or_else(|| "default".into());
    let default_audience =
        Audience::parse(&default_audience).map_err(|e| err("tickets.default_audience", e))?;
    if !audiences.contains(&default_audience) {
        return Err(err(
            "tickets.default_audience",
            format!(
                "{:?} is not one of tickets.audiences",
                default_audience.as_ref()
            ),
        ));
    }
    let max_claims_bytes = raw.max_claims_bytes.unwrap_or(4096);
    if max_claims_bytes > 16 * 1024 {
        return Err(err(
            "tickets.max_claims_bytes",
            "at most 16384 (the request body limit)",
        ));
    }
    let mut secrets = secrets(raw.secrets, env)?;
    let mut secrets_generated = false;
    if dev {
        secrets = vec![ServerSecret::generate("dev").map_err(|e| err("tickets.secrets", e))?];
        secrets_generated = true;
    } else if secrets.is_empty() {
        if matches!(store.backend, StoreBackend::Redis(_)) {
            return Err(err(
                "tickets.secrets",
                "required with a Redis store (every replica must share them); \
                 make one with `wsticket keygen`",
            ));
        }
        secrets = vec![ServerSecret::generate("mem").map_err(|e| err("tickets.secrets", e))?];
        secrets_generated = true;
    }
    let keyring = Keyring::new(secrets).map_err(|e| err("tickets.secrets", e))?;
    Ok(TicketSettings {
        default_ttl_secs,
        max_ttl_secs,
        allowed_origins,
        audiences,
        default_audience,
        max_claims_bytes,
        allow_originless: raw.allow_originless.unwrap_or(false),
        keyring,
        secrets_generated,
    })
}

/// An optional list of configured audiences, as a set.
fn audience_set(
    field: &str,
    list: Option<Vec<String>>,
    known: &[Audience],
) -> Result<Option<std::sync::Arc<HashSet<Audience>>>, ConfigError> {
    let Some(list) = list else { return Ok(None) };
    let set = list
        .iter()
        .map(|a| {
            let a = Audience::parse(a).map_err(|e| err(field, e))?;
            if !known.contains(&a) {
                return Err(err(
                    field,
                    format!("{:?} is not one of tickets.audiences", a.as_ref()),
                ));
            }
            Ok(a)
        })
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(Some(std::sync::Arc::new(set)))
}

fn jwt_settings(
    raw: RawJwt,
    env: &dyn Env,
    audiences: &[Audience],
) -> Result<JwtSettings, ConfigError> {
    let f = |name: &str| format!("auth.jwt.{name}");
    if raw.algorithms.is_empty() {
        return Err(err(
            f("algorithms"),
            "name at least one algorithm, e.g. [\"RS256\"]",
        ));
    }
    let algorithms = raw
        .algorithms
        .iter()
        .map(|a| jwt::parse_algorithm(a).map_err(|e| err(f("algorithms"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let families: HashSet<Family> = algorithms.iter().map(|a| jwt::family(*a)).collect();
    let hs_secret = env
        .var("WSTICKET_AUTH_JWT_HS_SECRET")
        .map(Ok)
        .or_else(|| {
            raw.hs_secret_file
                .as_ref()
                .map(|p| read_file(&f("hs_secret_file"), p))
        })
        .transpose()?
        .or(raw.hs_secret);
    let pem = match (raw.public_key_pem, &raw.public_key_file) {
        (Some(p), None) => Some(p),
        (None, Some(path)) => Some(read_file(&f("public_key_file"), path)?),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(err(
                f("public_key_pem"),
                "set public_key_pem or public_key_file, not both",
            ));
        }
    };
    let sources = [
        raw.jwks_url.is_some(),
        raw.jwks_file.is_some(),
        pem.is_some(),
        hs_secret.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(err(
            "auth.jwt",
            "set exactly one key source: jwks_url, jwks_file, public_key_pem/public_key_file or hs_secret/hs_secret_file",
        ));
    }
    let hmac = families.contains(&Family::Hmac);
    if hmac && (hs_secret.is_none() || families.len() > 1) {
        // An HMAC algorithm beside public keys is the algorithm-confusion
        // attack waiting to happen.
        return Err(err(
            f("algorithms"),
            "HS256/384/512 go only with hs_secret, and never beside RSA/EC/EdDSA algorithms",
        ));
    }
    let keys = if let Some(url) = raw.jwks_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(err(f("jwks_url"), "must be an http(s) URL"));
        }
        KeySource::JwksUrl(url)
    } else if let Some(path) = &raw.jwks_file {
        let text = read_file(&f("jwks_file"), path)?;
        let keys = jwt::parse_jwks(text.as_bytes()).map_err(|e| err(f("jwks_file"), e))?;
        if keys.is_empty() {
            return Err(err(f("jwks_file"), "holds no usable signature key"));
        }
        KeySource::Static(keys)
    } else if let Some(pem) = pem {
        if families.len() != 1 {
            return Err(err(
                f("algorithms"),
                "one public key verifies one family of algorithms",
            ));
        }
        let family = *families.iter().next().unwrap_or(&Family::Rsa);
        KeySource::Static(vec![
            VerifyingKey::pem(pem.as_bytes(), family).map_err(|e| err(f("public_key_pem"), e))?,
        ])
    } else {
        let secret = hs_secret.unwrap_or_default();
        if !hmac {
            return Err(err(
                f("hs_secret"),
                "an HMAC secret needs HS256, HS384 or HS512 in algorithms",
            ));
        }
        KeySource::Static(vec![
            VerifyingKey::hmac(secret.as_bytes()).map_err(|e| err(f("hs_secret"), e))?,
        ])
    };
    let leeway_secs = raw.leeway_secs.unwrap_or(30);
    if leeway_secs > 300 {
        return Err(err(f("leeway_secs"), "at most 300"));
    }
    let refresh = raw.jwks_refresh_secs.unwrap_or(300);
    if !(30..=86_400).contains(&refresh) {
        return Err(err(f("jwks_refresh_secs"), "between 30 and 86400"));
    }
    let min_refetch = raw
        .jwks_min_refetch_secs
        .unwrap_or(jwt::MIN_REFETCH_INTERVAL.as_secs());
    if !(1..=3600).contains(&min_refetch) {
        return Err(err(f("jwks_min_refetch_secs"), "between 1 and 3600"));
    }
    Ok(JwtSettings {
        min_refetch: Duration::from_secs(min_refetch),
        issuer: raw.issuer,
        audience: raw.audience,
        algorithms,
        keys,
        user_claim: raw.user_claim.unwrap_or_else(|| "sub".into()),
        copy_claims: raw.copy_claims.unwrap_or_default(),
        leeway_secs,
        refresh_every: Duration::from_secs(refresh),
        audiences: audience_set(&f("audiences"), raw.audiences, audiences)?,
    })
}

fn json_pointer(field: &str, p: String) -> Result<String, ConfigError> {
    if p.starts_with('/') {
        Ok(p)
    } else {
        Err(err(
            field,
            "a JSON pointer starts with / (e.g. \"/user_id\")",
        ))
    }
}

fn forward_settings(
    raw: RawForward,
    audiences: &[Audience],
) -> Result<ForwardSettings, ConfigError> {
    let f = |name: &str| format!("auth.forward.{name}");
    if !(raw.url.starts_with("http://") || raw.url.starts_with("https://")) {
        return Err(err(f("url"), "must be an http(s) URL"));
    }
    let method = match raw
        .method
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("GET") => ForwardMethod::Get,
        Some("POST") => ForwardMethod::Post,
        Some(_) => return Err(err(f("method"), "GET or POST")),
    };
    let forward_headers = raw
        .forward_headers
        .unwrap_or_else(|| vec!["authorization".into(), "cookie".into()])
        .into_iter()
        .map(|h| {
            let h = h.to_ascii_lowercase();
            let valid = !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let hop =
                ["host", "content-length", "transfer-encoding", "connection"].contains(&h.as_str());
            if valid && !hop {
                Ok(h)
            } else {
                Err(err(
                    f("forward_headers"),
                    format!("{h:?} cannot be forwarded"),
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let timeout_ms = raw.timeout_ms.unwrap_or(2000);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(err(f("timeout_ms"), "between 1 and 60000"));
    }
    Ok(ForwardSettings {
        url: raw.url,
        method,
        forward_headers,
        user_pointer: json_pointer(
            &f("user_pointer"),
            raw.user_pointer.unwrap_or_else(|| "/user_id".into()),
        )?,
        claims_pointer: raw
            .claims_pointer
            .map(|p| json_pointer(&f("claims_pointer"), p))
            .transpose()?,
        timeout: Duration::from_millis(timeout_ms),
        audiences: audience_set(&f("audiences"), raw.audiences, audiences)?,
    })
}

fn client(i: usize, raw: RawClient, audiences: &[Audience]) -> Result<ApiClient, ConfigError> {
    let field = |name: &str| format!("clients[{i}].{name}");
    if raw.name.is_empty() || raw.name.len() > 64 || raw.name.chars().any(char::is_control) {
        return Err(err(field("name"), "1-64 characters, no control characters"));
    }
    let can = raw
        .can
        .iter()
        .map(|p| Permission::parse(p).map_err(|e| err(field("can"), e)))
        .collect::<Result<HashSet<_>, _>>()?;
    if can.is_empty() {
        return Err(err(
            field("can"),
            "name at least one of issue, redeem, revoke",
        ));
    }
    let allowed = match raw.audiences {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|a| {
                    let a = Audience::parse(a).map_err(|e| err(field("audiences"), e))?;
                    if !audiences.contains(&a) {
                        return Err(err(
                            field("audiences"),
                            format!("{:?} is not one of tickets.audiences", a.as_ref()),
                        ));
                    }
                    Ok(a)
                })
                .collect::<Result<HashSet<_>, _>>()?,
        ),
    };
    let (hash_field, hash) = match (raw.key_sha256, &raw.key_sha256_file) {
        (Some(h), None) => (field("key_sha256"), h),
        (None, Some(p)) => (
            field("key_sha256_file"),
            read_file(&field("key_sha256_file"), p)?,
        ),
        _ => {
            return Err(err(
                field("key_sha256"),
                "set exactly one of key_sha256 and key_sha256_file",
            ));
        }
    };
    ApiClient::new(raw.name, &hash, can, allowed).map_err(|e| err(hash_field, e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                max_entries: 1_000_000
            }
        ));
        assert_eq!(s.store.key_prefix, "wsticket:");
        assert_eq!(s.tickets.default_ttl_secs, 30);
        assert_eq!(s.tickets.max_ttl_secs, 120);
        assert_eq!(s.tickets.max_claims_bytes, 4096);
        assert_eq!(s.tickets.default_audience.as_ref(), "default");
        assert!(s.tickets.secrets_generated);
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
}

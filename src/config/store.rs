//! `[store]`: the in-memory store (the default) or Redis, single, Cluster or
//! Sentinel.

use super::Env;
use super::checks::{ConfigError, FileHolds, Pair, err, in_range, read_secret_file, value_or_file};
use crate::store::{RedeemReplicas, RedisSettings, RedisTopology, StoreBackend, StoreSettings};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const DEFAULT_KEY_PREFIX: &str = "wsticket:";
const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 500;
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1000;
const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
const DEFAULT_REDEEM_REPLICAS_TIMEOUT_MS: u64 = 100;
const DEFAULT_REDEEM_REPLICAS_CONNECTIONS: usize = 64;
pub(crate) const DEFAULT_MEMORY_MAX_ENTRIES: usize = 1_000_000;
/// Half of the Helm chart's default memory limit (128 MiB): the rest is the
/// process itself, its buffers and the allocator's slack.
pub(crate) const DEFAULT_MEMORY_MAX_BYTES: usize = 64 << 20;
const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 1..=60_000;

// No `Debug` on the raw tables: they hold secrets in clear.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
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
    memory_max_bytes: Option<usize>,
    redeem_replicas: Option<u32>,
    redeem_replicas_timeout_ms: Option<u64>,
    redeem_replicas_connections: Option<usize>,
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

/// A `redis://` or `rediss://` URL the Redis client accepts, as `serve`
/// will need it. Never echoed: it may carry a password.
fn redis_url(field: &str, url: &str) -> Result<(), ConfigError> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(err(field, "must start with redis:// or rediss://"));
    }
    crate::store::check_url(url).map_err(|why| {
        err(
            field,
            format!("is not a valid Redis URL ({why}): check the host, port, database and password parts"),
        )
    })
}

/// One scheme per list: the Cluster client refuses a mix at start-up, and for
/// Sentinel the scheme also decides whether the master is reached over TLS.
fn url_list(field: &str, urls: Vec<String>) -> Result<Vec<SecretString>, ConfigError> {
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
    Ok(urls.into_iter().map(SecretString::from).collect())
}

fn password(
    field: &str,
    path: Option<&PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<Option<SecretString>, ConfigError> {
    path.map(|p| read_secret_file(field, p, &mut *warnings).map(SecretString::from))
        .transpose()
}

/// Which Redis, if any. `WSTICKET_REDIS_URL` names a single node and wins
/// over everything in the file.
fn topology(
    raw: &mut RawStore,
    env: &dyn Env,
    warnings: &mut Vec<String>,
) -> Result<Option<RedisTopology>, ConfigError> {
    if let Some(url) = env.var("WSTICKET_REDIS_URL") {
        redis_url("WSTICKET_REDIS_URL", &url)?;
        return Ok(Some(RedisTopology::Single { url: url.into() }));
    }
    let pair = Pair {
        field: "store.redis_url",
        value: raw.redis_url.take(),
        file_field: "store.redis_url_file",
        file: raw.redis_url_file.as_deref(),
    };
    let single_field = pair.given_field();
    let single = value_or_file(pair, FileHolds::Secret(warnings))?;
    if raw.cluster_password_file.is_some() && raw.cluster_urls.is_none() {
        return Err(err(
            "store.cluster_password_file",
            "only applies with store.cluster_urls",
        ));
    }
    Ok(
        match (single, raw.cluster_urls.take(), raw.sentinel.take()) {
            (Some(url), None, None) => {
                redis_url(single_field, url.expose_secret())?;
                Some(RedisTopology::Single { url })
            }
            (None, Some(urls), None) => {
                if urls.is_empty() {
                    return Err(err("store.cluster_urls", "name at least one node"));
                }
                Some(RedisTopology::Cluster {
                    urls: url_list("store.cluster_urls", urls)?,
                    password: password(
                        "store.cluster_password_file",
                        raw.cluster_password_file.as_ref(),
                        warnings,
                    )?,
                })
            }
            (None, None, Some(s)) => {
                if s.urls.is_empty() {
                    return Err(err("store.sentinel.urls", "name at least one sentinel"));
                }
                let urls = url_list("store.sentinel.urls", s.urls)?;
                if s.master_name.is_empty() {
                    return Err(err("store.sentinel.master_name", "must not be empty"));
                }
                Some(RedisTopology::Sentinel {
                    master_name: s.master_name,
                    urls,
                    db: s.db.unwrap_or(0),
                    password: password(
                        "store.sentinel.master_password_file",
                        s.master_password_file.as_ref(),
                        warnings,
                    )?,
                    sentinel_password: password(
                        "store.sentinel.sentinel_password_file",
                        s.sentinel_password_file.as_ref(),
                        warnings,
                    )?,
                })
            }
            (None, None, None) => None,
            _ => {
                return Err(err(
                    "store",
                    "set one of redis_url (or redis_url_file), cluster_urls and sentinel",
                ));
            }
        },
    )
}

pub(super) fn parse(
    mut raw: RawStore,
    env: &dyn Env,
    warnings: &mut Vec<String>,
) -> Result<StoreSettings, ConfigError> {
    let command_timeout_ms = in_range(
        "store.command_timeout_ms",
        raw.command_timeout_ms,
        DEFAULT_COMMAND_TIMEOUT_MS,
        TIMEOUT_RANGE_MS,
    )?;
    let connect_timeout_ms = in_range(
        "store.connect_timeout_ms",
        raw.connect_timeout_ms,
        DEFAULT_CONNECT_TIMEOUT_MS,
        TIMEOUT_RANGE_MS,
    )?;
    let topology = topology(&mut raw, env, warnings)?;
    let max_in_flight = in_range(
        "store.max_in_flight",
        raw.max_in_flight,
        DEFAULT_MAX_IN_FLIGHT,
        1..=1_000_000,
    )?;
    let redeem_replicas = in_range("store.redeem_replicas", raw.redeem_replicas, 0, 0..=16)?;
    let redeem_replicas_timeout_ms = in_range(
        "store.redeem_replicas_timeout_ms",
        raw.redeem_replicas_timeout_ms,
        DEFAULT_REDEEM_REPLICAS_TIMEOUT_MS,
        TIMEOUT_RANGE_MS,
    )?;
    let redeem_replicas_connections = in_range(
        "store.redeem_replicas_connections",
        raw.redeem_replicas_connections,
        DEFAULT_REDEEM_REPLICAS_CONNECTIONS,
        1..=1024,
    )?;
    let backend = match topology {
        Some(topology) => StoreBackend::Redis(RedisSettings {
            topology,
            command_timeout: Duration::from_millis(command_timeout_ms),
            connect_timeout: Duration::from_millis(connect_timeout_ms),
            max_in_flight,
            redeem_replicas: (redeem_replicas > 0).then(|| RedeemReplicas {
                replicas: redeem_replicas,
                timeout: Duration::from_millis(redeem_replicas_timeout_ms),
                connections: redeem_replicas_connections,
            }),
        }),
        None if redeem_replicas > 0 => {
            return Err(err(
                "store.redeem_replicas",
                "needs a Redis store: the in-memory store has no replicas",
            ));
        }
        None => {
            let max_entries = raw.memory_max_entries.unwrap_or(DEFAULT_MEMORY_MAX_ENTRIES);
            if max_entries == 0 {
                return Err(err("store.memory_max_entries", "must be at least 1"));
            }
            let max_bytes = in_range(
                "store.memory_max_bytes",
                raw.memory_max_bytes,
                DEFAULT_MEMORY_MAX_BYTES,
                (1 << 20)..=(1 << 40),
            )?;
            StoreBackend::Memory {
                max_entries,
                max_bytes,
            }
        }
    };
    let key_prefix = raw.key_prefix.unwrap_or_else(|| DEFAULT_KEY_PREFIX.into());
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

//! `[tickets]`: the ticket policy and the server secrets.

use super::Env;
use super::checks::{ConfigError, Pair, err, in_range, required_secret};
use crate::core::{MAX_TTL_LIMIT_SECS, OnReuse, TicketPolicy};
use crate::crypto::{Keyring, ServerSecret};
use crate::domain::{Audience, OriginAllowlist};
use crate::routes::MAX_BODY_BYTES;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::path::PathBuf;

pub(crate) const DEFAULT_TTL_SECS: u64 = 30;
pub(crate) const DEFAULT_MAX_TTL_SECS: u64 = 120;
pub(crate) const DEFAULT_AUDIENCE: &str = "default";
pub(crate) const DEFAULT_MAX_CLAIMS_BYTES: usize = 4096;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTickets {
    default_ttl_secs: Option<u64>,
    max_ttl_secs: Option<u64>,
    allowed_origins: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    default_audience: Option<String>,
    max_claims_bytes: Option<usize>,
    allow_originless: Option<bool>,
    on_reuse: Option<String>,
    bind_ip: Option<bool>,
    secrets: Option<Vec<RawSecret>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    id: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
}

/// Where the ticket secrets came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretSource {
    Configured,
    /// None configured (memory store only): one was generated at start.
    Generated,
}

/// `WSTICKET_TICKET_SECRETS` (`id:secret,id:secret`) or `tickets.secrets`.
fn secrets(
    raw: Option<Vec<RawSecret>>,
    env: &dyn Env,
    warnings: &mut Vec<String>,
) -> Result<Vec<ServerSecret>, ConfigError> {
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
            let value = required_secret(
                Pair {
                    field: &format!("{field}.secret"),
                    value: s.secret,
                    file_field: &format!("{field}.secret_file"),
                    file: s.secret_file.as_deref(),
                },
                &mut *warnings,
            )?;
            ServerSecret::parse(&s.id, value.expose_secret()).map_err(|e| err(field, e))
        })
        .collect()
}

/// `needs_secrets`: a store shared between replicas (Redis), where every
/// replica must open what another minted.
pub(super) fn parse(
    raw: RawTickets,
    env: &dyn Env,
    needs_secrets: bool,
    dev: bool,
    warnings: &mut Vec<String>,
) -> Result<(TicketPolicy, SecretSource), ConfigError> {
    let max_ttl_secs = in_range(
        "tickets.max_ttl_secs",
        raw.max_ttl_secs,
        DEFAULT_MAX_TTL_SECS,
        1..=MAX_TTL_LIMIT_SECS,
    )?;
    let default_ttl_secs = raw
        .default_ttl_secs
        .unwrap_or(DEFAULT_TTL_SECS.min(max_ttl_secs));
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
        .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.into()])
        .iter()
        .enumerate()
        .map(|(i, a)| Audience::parse(a).map_err(|e| err(format!("tickets.audiences[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    if audiences.is_empty() {
        return Err(err("tickets.audiences", "must name at least one audience"));
    }
    let default_audience = raw
        .default_audience
        .unwrap_or_else(|| DEFAULT_AUDIENCE.into());
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
    let max_claims_bytes = raw.max_claims_bytes.unwrap_or(DEFAULT_MAX_CLAIMS_BYTES);
    if max_claims_bytes > MAX_BODY_BYTES {
        return Err(err(
            "tickets.max_claims_bytes",
            format!("at most {MAX_BODY_BYTES} (the request body limit)"),
        ));
    }
    let mut secrets = secrets(raw.secrets, env, warnings)?;
    let mut source = SecretSource::Configured;
    if dev {
        secrets = vec![ServerSecret::generate("dev").map_err(|e| err("tickets.secrets", e))?];
        source = SecretSource::Generated;
    } else if secrets.is_empty() {
        if needs_secrets {
            return Err(err(
                "tickets.secrets",
                "required with a Redis store (every replica must share them); \
                 make one with `wsticket keygen`",
            ));
        }
        secrets = vec![ServerSecret::generate("mem").map_err(|e| err("tickets.secrets", e))?];
        source = SecretSource::Generated;
    }
    let keyring = Keyring::new(secrets).map_err(|e| err("tickets.secrets", e))?;
    let on_reuse = match raw.on_reuse {
        None => OnReuse::default(),
        Some(s) => OnReuse::parse(&s).map_err(|e| err("tickets.on_reuse", e))?,
    };
    let policy = TicketPolicy {
        default_ttl_secs,
        max_ttl_secs,
        allowed_origins,
        audiences,
        default_audience,
        max_claims_bytes,
        allow_originless: raw.allow_originless.unwrap_or(false),
        keyring,
        on_reuse,
        bind_ip: raw.bind_ip.unwrap_or(false),
    };
    Ok((policy, source))
}

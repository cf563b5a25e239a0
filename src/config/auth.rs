//! `[auth.jwt]` and `[auth.forward]`: how frontend callers (browsers of a
//! signed-in user) prove who they are.

use super::Env;
use super::checks::{
    ConfigError, FileHolds, Pair, audience_scope, err, http_url, in_range, read_file, value_or_file,
};
use crate::auth::forward::{ForwardMethod, ForwardSettings};
use crate::auth::jwt::{self, Family, JwtSettings, KeySource, VerifyingKey};
use crate::domain::Audience;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

const DEFAULT_USER_CLAIM: &str = "sub";
const DEFAULT_LEEWAY_SECS: u64 = 30;
const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;
const DEFAULT_FORWARD_HEADERS: [&str; 2] = ["authorization", "cookie"];
const DEFAULT_USER_POINTER: &str = "/user_id";
const DEFAULT_FORWARD_TIMEOUT_MS: u64 = 2000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) jwt: Option<RawJwt>,
    pub(super) forward: Option<RawForward>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwt {
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
    insecure_skip_issuer_audience: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForward {
    url: String,
    method: Option<String>,
    forward_headers: Option<Vec<String>>,
    user_pointer: Option<String>,
    claims_pointer: Option<String>,
    timeout_ms: Option<u64>,
    audiences: Option<Vec<String>>,
}

fn jwt_field(name: &str) -> String {
    format!("auth.jwt.{name}")
}

/// The one key source of `[auth.jwt]`, checked against the algorithms.
fn key_source(
    raw: &mut RawJwt,
    env: &dyn Env,
    families: &HashSet<Family>,
    warnings: &mut Vec<String>,
) -> Result<KeySource, ConfigError> {
    let f = jwt_field;
    let hs_secret = match env.var("WSTICKET_AUTH_JWT_HS_SECRET") {
        Some(s) => Some(SecretString::from(s)),
        None => value_or_file(
            Pair {
                field: &f("hs_secret"),
                value: raw.hs_secret.take(),
                file_field: &f("hs_secret_file"),
                file: raw.hs_secret_file.as_deref(),
            },
            FileHolds::Secret(warnings),
        )?,
    };
    let pem = value_or_file(
        Pair {
            field: &f("public_key_pem"),
            value: raw.public_key_pem.take(),
            file_field: &f("public_key_file"),
            file: raw.public_key_file.as_deref(),
        },
        FileHolds::Public,
    )?;
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
    if let Some(url) = raw.jwks_url.take() {
        jwks_url(&f("jwks_url"), &url)?;
        return Ok(KeySource::JwksUrl(url.into()));
    }
    if let Some(path) = &raw.jwks_file {
        let text = read_file(&f("jwks_file"), path)?;
        let keys = jwt::parse_jwks(text.as_bytes()).map_err(|e| err(f("jwks_file"), e))?;
        if keys.is_empty() {
            return Err(err(f("jwks_file"), "holds no usable signature key"));
        }
        return Ok(KeySource::Static(keys));
    }
    if let Some(pem) = pem {
        let [family] = families.iter().copied().collect::<Vec<_>>()[..] else {
            return Err(err(
                f("algorithms"),
                "one public key verifies one family of algorithms",
            ));
        };
        let key = VerifyingKey::pem(pem.expose_secret().as_bytes(), family)
            .map_err(|e| err(f("public_key_pem"), e))?;
        return Ok(KeySource::Static(vec![key]));
    }
    let secret = hs_secret.unwrap_or_else(|| SecretString::from(""));
    if !hmac {
        return Err(err(
            f("hs_secret"),
            "an HMAC secret needs HS256, HS384 or HS512 in algorithms",
        ));
    }
    let key = VerifyingKey::hmac(secret.expose_secret().as_bytes())
        .map_err(|e| err(f("hs_secret"), e))?;
    Ok(KeySource::Static(vec![key]))
}

/// `https://`, or `http://` to a loopback host: a key set fetched over
/// plain HTTP from elsewhere could be replaced on the way. Never echoed: a
/// URL may carry credentials.
fn jwks_url(field: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(url).map_err(|_| err(field, "is not a valid URL"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(err(
            field,
            "must be an https:// URL (http:// only to a loopback host)",
        )),
    }
}

pub(super) fn jwt(
    mut raw: RawJwt,
    env: &dyn Env,
    audiences: &[Audience],
    warnings: &mut Vec<String>,
) -> Result<JwtSettings, ConfigError> {
    let f = jwt_field;
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
    // A key set (a JWKS) is what identity providers publish for all their
    // applications: without iss and aud checks, a token the provider issued
    // for any other application would mint tickets here.
    let key_set = raw.jwks_url.is_some() || raw.jwks_file.is_some();
    let skip_checks = raw.insecure_skip_issuer_audience.unwrap_or(false);
    let keys = key_source(&mut raw, env, &families, warnings)?;
    if key_set && !skip_checks {
        for (name, value) in [("issuer", &raw.issuer), ("audience", &raw.audience)] {
            if value.is_none() {
                return Err(err(
                    f(name),
                    "required with jwks_url or jwks_file: an identity provider's key set \
                     also signs tokens for its other applications, which would otherwise \
                     mint tickets here. Set issuer (the provider's iss) and audience (your \
                     client id); or, to accept every token of the key set, set \
                     insecure_skip_issuer_audience = true",
                ));
            }
        }
    }
    let leeway_secs = in_range(
        &f("leeway_secs"),
        raw.leeway_secs,
        DEFAULT_LEEWAY_SECS,
        0..=300,
    )?;
    let refresh = in_range(
        &f("jwks_refresh_secs"),
        raw.jwks_refresh_secs,
        DEFAULT_JWKS_REFRESH_SECS,
        30..=86_400,
    )?;
    let min_refetch = in_range(
        &f("jwks_min_refetch_secs"),
        raw.jwks_min_refetch_secs,
        jwt::MIN_REFETCH_INTERVAL.as_secs(),
        1..=3600,
    )?;
    Ok(JwtSettings {
        min_refetch: Duration::from_secs(min_refetch),
        issuer: raw.issuer,
        audience: raw.audience,
        algorithms,
        keys,
        user_claim: raw.user_claim.unwrap_or_else(|| DEFAULT_USER_CLAIM.into()),
        copy_claims: raw.copy_claims.unwrap_or_default(),
        leeway_secs,
        refresh_every: Duration::from_secs(refresh),
        audiences: audience_scope(&f("audiences"), raw.audiences, audiences)?,
        insecure_skip_issuer_audience: skip_checks,
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

pub(super) fn forward(
    raw: RawForward,
    audiences: &[Audience],
) -> Result<ForwardSettings, ConfigError> {
    let f = |name: &str| format!("auth.forward.{name}");
    http_url(&f("url"), &raw.url)?;
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
        .unwrap_or_else(|| DEFAULT_FORWARD_HEADERS.map(String::from).to_vec())
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
    let timeout_ms = in_range(
        &f("timeout_ms"),
        raw.timeout_ms,
        DEFAULT_FORWARD_TIMEOUT_MS,
        1..=60_000,
    )?;
    Ok(ForwardSettings {
        url: raw.url.into(),
        method,
        forward_headers,
        user_pointer: json_pointer(
            &f("user_pointer"),
            raw.user_pointer
                .unwrap_or_else(|| DEFAULT_USER_POINTER.into()),
        )?,
        claims_pointer: raw
            .claims_pointer
            .map(|p| json_pointer(&f("claims_pointer"), p))
            .transpose()?,
        timeout: Duration::from_millis(timeout_ms),
        audiences: audience_scope(&f("audiences"), raw.audiences, audiences)?,
    })
}

//! `[[clients]]`: the API keys of trusted backends and WebSocket servers.

use super::checks::{ConfigError, Pair, audience_scope, err, required_secret};
use crate::auth::{ApiClient, Permission};
use crate::domain::Audience;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    name: String,
    key_sha256: Option<String>,
    key_sha256_file: Option<PathBuf>,
    can: Vec<String>,
    audiences: Option<Vec<String>>,
}

fn client(
    i: usize,
    raw: RawClient,
    audiences: &[Audience],
    warnings: &mut Vec<String>,
) -> Result<ApiClient, ConfigError> {
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
    let scope = audience_scope(&field("audiences"), raw.audiences, audiences)?;
    let (value_field, file_field) = (field("key_sha256"), field("key_sha256_file"));
    let pair = Pair {
        field: &value_field,
        value: raw.key_sha256,
        file_field: &file_field,
        file: raw.key_sha256_file.as_deref(),
    };
    let hash_field = pair.given_field();
    let hash = required_secret(pair, warnings)?;
    ApiClient::new(raw.name, hash.expose_secret(), can, scope).map_err(|e| err(hash_field, e))
}

/// Every client, with unique names.
pub(super) fn parse(
    raw: Vec<RawClient>,
    audiences: &[Audience],
    warnings: &mut Vec<String>,
) -> Result<Vec<ApiClient>, ConfigError> {
    let clients = raw
        .into_iter()
        .enumerate()
        .map(|(i, c)| client(i, c, audiences, warnings))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, c) in clients.iter().enumerate() {
        if clients[..i].iter().any(|o| o.name == c.name) {
            return Err(err(
                format!("clients[{i}].name"),
                format!("duplicate client name {:?}", c.name),
            ));
        }
    }
    Ok(clients)
}

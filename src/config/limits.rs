//! `[limits]`: how fast and how much a signed-in user (or an address) may
//! mint, and which proxies to believe about the client's address.

use super::checks::{ConfigError, err, in_range};
use crate::core::{Burst, LimitPolicy};
use crate::domain::{Cidr, Rate};
use serde::Deserialize;

const DEFAULT_MINT_PER_USER: &str = "10/s";
const DEFAULT_MINT_PER_USER_BURST: u32 = 20;
const DEFAULT_MINT_PER_IP: &str = "60/s";
const DEFAULT_MINT_PER_IP_BURST: u32 = 120;
const DEFAULT_MAX_LIVE_PER_USER: u32 = 20;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    mint_per_user: Option<String>,
    mint_per_user_burst: Option<u32>,
    mint_per_ip: Option<String>,
    mint_per_ip_burst: Option<u32>,
    max_live_per_user: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
    apply_to_api_keys: Option<bool>,
}

/// A rate and its burst; `"off"` turns the limit off.
fn burst(
    name: &str,
    rate: Option<String>,
    default_rate: &str,
    burst: Option<u32>,
    default_burst: u32,
) -> Result<Option<Burst>, ConfigError> {
    let field = format!("limits.{name}");
    let rate = rate.unwrap_or_else(|| default_rate.to_owned());
    if rate.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let rate = Rate::parse(&rate).map_err(|e| err(&field, e))?;
    let burst = in_range(
        &format!("{field}_burst"),
        burst,
        default_burst,
        1..=1_000_000,
    )?;
    Ok(Some(Burst { rate, burst }))
}

pub(super) fn parse(raw: RawLimits) -> Result<LimitPolicy, ConfigError> {
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, c)| Cidr::parse(c).map_err(|e| err(format!("limits.trusted_proxies[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let max_live = in_range(
        "limits.max_live_per_user",
        raw.max_live_per_user,
        DEFAULT_MAX_LIVE_PER_USER,
        0..=1_000_000,
    )?;
    Ok(LimitPolicy {
        per_user: burst(
            "mint_per_user",
            raw.mint_per_user,
            DEFAULT_MINT_PER_USER,
            raw.mint_per_user_burst,
            DEFAULT_MINT_PER_USER_BURST,
        )?,
        per_ip: burst(
            "mint_per_ip",
            raw.mint_per_ip,
            DEFAULT_MINT_PER_IP,
            raw.mint_per_ip_burst,
            DEFAULT_MINT_PER_IP_BURST,
        )?,
        // 0: no cap.
        max_live_per_user: (max_live > 0).then_some(max_live),
        trusted_proxies,
        apply_to_api_keys: raw.apply_to_api_keys.unwrap_or(false),
    })
}

//! What is sealed into the store for a ticket, in one place: the fresh record
//! (everything the first redeem answers with) and the used record (what is
//! left after it). Short names: both are stored once per ticket.
//!
//! A change here must still open what the previous version sealed, or say in
//! docs/operations.md that tickets minted before an upgrade are refused
//! after it (they live seconds; a client mints another).

use crate::domain::Claims;
use serde::{Deserialize, Serialize};

/// Written at mint, borrowing from the request.
#[derive(Serialize)]
pub(super) struct Sealing<'a> {
    #[serde(rename = "u")]
    pub(super) user_id: &'a str,
    #[serde(rename = "o")]
    pub(super) origin: Option<&'a str>,
    #[serde(rename = "a")]
    pub(super) audience: &'a str,
    #[serde(rename = "c")]
    pub(super) claims: &'a Claims,
    /// Unix milliseconds.
    pub(super) iat: u64,
    pub(super) exp: u64,
    /// The set the ticket is counted in against its user's cap
    /// (`limits.max_live_per_user`), if it is.
    #[serde(rename = "l", skip_serializing_if = "Option::is_none")]
    pub(super) live: Option<&'a str>,
    /// The API-key client that minted it (`None`: a signed-in user did),
    /// which may revoke it.
    #[serde(rename = "m", skip_serializing_if = "Option::is_none")]
    pub(super) minted_by: Option<&'a str>,
    /// The client address the ticket is bound to (canonical: IPv4-mapped
    /// IPv6 addresses as IPv4), if it is.
    #[serde(rename = "ip", skip_serializing_if = "Option::is_none")]
    pub(super) ip: Option<&'a str>,
}

/// Read at redeem.
#[derive(Deserialize)]
pub(super) struct Opened {
    #[serde(rename = "u")]
    pub(super) user_id: String,
    #[serde(rename = "o")]
    pub(super) origin: Option<String>,
    #[serde(rename = "a")]
    pub(super) audience: String,
    #[serde(rename = "c")]
    pub(super) claims: Claims,
    pub(super) iat: u64,
    pub(super) exp: u64,
    #[serde(rename = "l", default)]
    pub(super) live: Option<String>,
    #[serde(rename = "m", default)]
    pub(super) minted_by: Option<String>,
    #[serde(rename = "ip", default)]
    pub(super) ip: Option<String>,
}

/// The used record: what is kept once a ticket is redeemed, to name the
/// user and audience of a reuse. Sealed as a used record, so it never opens
/// as a fresh ticket.
#[derive(Serialize)]
pub(super) struct SealingUsed<'a> {
    #[serde(rename = "u")]
    pub(super) user_id: &'a str,
    #[serde(rename = "a")]
    pub(super) audience: &'a str,
}

#[derive(Deserialize)]
pub(super) struct OpenedUsed {
    #[serde(rename = "u")]
    pub(super) user_id: String,
    #[serde(rename = "a")]
    pub(super) audience: String,
}

//! What is sealed into the store for a ticket: the stored format, in one
//! place. Short names: it is stored once per ticket. Tickets minted by one
//! version are redeemed by the next during a rolling upgrade, so a change
//! here must still open what the previous version sealed.

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
}

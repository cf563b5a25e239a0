//! Minting and redeeming: the core, between the HTTP edge (which has already
//! parsed every input into domain types and authenticated the caller) and the
//! store.

use crate::auth::Caller;
use crate::config::TicketSettings;
use crate::crypto::TicketKeys;
use crate::domain::{Audience, Origin, Ticket, UserId};
use crate::error::ApiError;
use crate::store::{Store, StoreError, Taken, TicketStore};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// What is sealed into the store. Short names: it is stored once per ticket.
#[derive(Serialize, Deserialize)]
struct Payload {
    #[serde(rename = "u")]
    user_id: String,
    #[serde(rename = "o")]
    origin: Option<String>,
    #[serde(rename = "a")]
    audience: String,
    #[serde(rename = "c")]
    claims: Map<String, Value>,
    /// Unix milliseconds.
    iat: u64,
    exp: u64,
}

/// A mint request whose every part has been parsed and checked against the
/// policy.
pub struct MintInput {
    pub user: UserId,
    pub origin: Option<Origin>,
    pub audience: Audience,
    pub ttl_secs: u64,
    pub claims: Map<String, Value>,
}

pub struct Minted {
    pub ticket: Ticket,
    pub expires_at: SystemTime,
    pub expires_in: u64,
    pub audience: Audience,
}

pub struct Redeemed {
    pub user_id: String,
    pub origin: Option<String>,
    pub audience: String,
    pub claims: Map<String, Value>,
    pub issued_at: SystemTime,
    pub expires_at: SystemTime,
}

/// How a redeem ended, for logs (and later metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Invalid,
    Reused,
    OriginMismatch,
    AudienceMismatch,
    Malformed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Invalid => "invalid",
            Outcome::Reused => "reused",
            Outcome::OriginMismatch => "origin_mismatch",
            Outcome::AudienceMismatch => "audience_mismatch",
            Outcome::Malformed => "malformed",
        }
    }
}

pub struct TicketService {
    policy: TicketSettings,
    store: Store,
    key_prefix: String,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn store_failed(op: &'static str, e: StoreError) -> ApiError {
    tracing::warn!(op, kind = e.kind(), error = %e, "ticket store failed");
    ApiError::StoreUnavailable
}

impl TicketService {
    pub fn new(policy: TicketSettings, store: Store, key_prefix: String) -> Self {
        TicketService {
            policy,
            store,
            key_prefix,
        }
    }

    pub fn policy(&self) -> &TicketSettings {
        &self.policy
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn mint(&self, input: MintInput) -> Result<Minted, ApiError> {
        let now = SystemTime::now();
        let ttl = Duration::from_secs(input.ttl_secs);
        let expires_at = now + ttl;
        let payload = Payload {
            user_id: input.user.into_inner(),
            origin: input.origin.map(|o| o.as_ref().to_owned()),
            audience: input.audience.as_ref().to_owned(),
            claims: input.claims,
            iat: unix_ms(now),
            exp: unix_ms(expires_at),
        };
        let plaintext = Zeroizing::new(serde_json::to_vec(&payload).map_err(|e| {
            tracing::error!(error = %e, "cannot serialise a ticket payload");
            ApiError::Internal
        })?);
        // Two tickets colliding is a 2^-256 event; a second attempt makes a
        // storage error or a broken RNG visible instead of looping.
        for _ in 0..2 {
            let (ticket, keys) = self.policy.keyring.mint().map_err(|e| {
                tracing::error!(error = %e, "cannot mint a ticket");
                ApiError::Internal
            })?;
            let key = keys.store_key(&self.key_prefix);
            let sealed = keys.seal(&key, &plaintext).map_err(|e| {
                tracing::error!(error = %e, "cannot seal a ticket");
                ApiError::Internal
            })?;
            if self
                .store
                .put_new(&key, &sealed, ttl)
                .await
                .map_err(|e| store_failed("mint", e))?
            {
                return Ok(Minted {
                    ticket,
                    expires_at,
                    expires_in: input.ttl_secs,
                    audience: input.audience,
                });
            }
        }
        tracing::error!("two fresh tickets collided with stored keys");
        Err(ApiError::Internal)
    }

    /// Consume `ticket`. `origin` is the handshake's `Origin` header as the
    /// WebSocket server saw it (`None` when there was none).
    pub async fn redeem(
        &self,
        ticket: &Ticket,
        origin: Option<&str>,
        caller: &Caller,
    ) -> Result<Redeemed, (ApiError, Outcome)> {
        // An unknown key id cannot name a stored ticket: no store access.
        let Some(keys) = self.policy.keyring.keys_for(ticket) else {
            return Err((ApiError::TicketInvalid, Outcome::Invalid));
        };
        let key = keys.store_key(&self.key_prefix);
        let taken = self
            .store
            .take(&key)
            .await
            .map_err(|e| (store_failed("redeem", e), Outcome::Invalid))?;
        let sealed = match taken {
            Taken::Missing => return Err((ApiError::TicketInvalid, Outcome::Invalid)),
            Taken::Used(sealed) => {
                let user_id = open(&keys, &key, &sealed).map(|p| p.user_id);
                tracing::warn!(
                    user_id = user_id.as_deref().unwrap_or("<unreadable>"),
                    caller = caller.name(),
                    "ticket reused: a redeemed ticket was presented again (possible leak)"
                );
                return Err((ApiError::TicketReused, Outcome::Reused));
            }
            Taken::Value(sealed) => sealed,
        };
        let Some(payload) = open(&keys, &key, &sealed) else {
            tracing::error!(
                "a stored ticket failed authentication: the store was tampered with or the secret changed"
            );
            return Err((ApiError::TicketInvalid, Outcome::Invalid));
        };
        if unix_ms(SystemTime::now()) >= payload.exp {
            return Err((ApiError::TicketInvalid, Outcome::Invalid));
        }
        let presented = origin.filter(|o| !o.is_empty());
        let origin_ok = match (&payload.origin, presented) {
            (None, None) => true,
            (Some(bound), Some(seen)) => Origin::parse(seen).is_ok_and(|o| o.as_ref() == bound),
            _ => false,
        };
        if !origin_ok {
            tracing::warn!(user_id = %payload.user_id, caller = caller.name(), "ticket redeemed from another origin; consumed");
            return Err((ApiError::OriginMismatch, Outcome::OriginMismatch));
        }
        let audience_ok = Audience::parse(&payload.audience).is_ok_and(|a| caller.may_use(&a));
        if !audience_ok {
            tracing::warn!(user_id = %payload.user_id, caller = caller.name(), audience = %payload.audience, "caller may not redeem this audience; ticket consumed");
            return Err((ApiError::AudienceMismatch, Outcome::AudienceMismatch));
        }
        Ok(Redeemed {
            user_id: payload.user_id,
            origin: payload.origin,
            audience: payload.audience,
            claims: payload.claims,
            issued_at: from_unix_ms(payload.iat),
            expires_at: from_unix_ms(payload.exp),
        })
    }

    /// Does the store answer? (`/readyz`)
    pub async fn ready(&self) -> Result<(), ApiError> {
        self.store.ping().await.map_err(|e| store_failed("ping", e))
    }
}

fn open(keys: &TicketKeys, key: &str, sealed: &[u8]) -> Option<Payload> {
    let plain = keys.open(key, sealed)?;
    serde_json::from_slice(&plain).ok()
}

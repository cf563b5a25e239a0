//! Minting and redeeming: the core, between the HTTP edge (which has already
//! parsed every input into domain types and authenticated the caller) and the
//! store.

use crate::auth::Caller;
use crate::config::TicketSettings;
use crate::crypto::TicketKeys;
use crate::domain::{Audience, Origin, Ticket, UserId};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, Taken, TicketStore};
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;
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
    /// See [`TicketKeys::reference`]: for logs.
    pub ticket_ref: String,
    pub user_id: String,
    pub origin: Option<String>,
    pub audience: String,
    pub claims: Map<String, Value>,
    pub issued_at: SystemTime,
    pub expires_at: SystemTime,
}

/// How a redeem ended, for logs and metrics.
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

/// A redeem that did not succeed: the answer, and what is known of the
/// ticket for logs and metrics (never the ticket itself).
#[derive(Debug)]
pub struct RedeemFailure {
    pub error: ApiError,
    /// `None` when the store failed: that is no outcome of the ticket.
    pub outcome: Option<Outcome>,
    /// See [`TicketKeys::reference`]; `None` when the key id is unknown.
    pub ticket_ref: Option<String>,
    pub user_id: Option<String>,
    pub audience: Option<String>,
}

impl RedeemFailure {
    fn new(error: ApiError, outcome: Outcome, keys: Option<&TicketKeys>) -> Self {
        RedeemFailure {
            error,
            outcome: Some(outcome),
            ticket_ref: keys.map(TicketKeys::reference),
            user_id: None,
            audience: None,
        }
    }

    fn of(error: ApiError, outcome: Outcome, keys: &TicketKeys, payload: &Payload) -> Self {
        RedeemFailure {
            user_id: Some(payload.user_id.clone()),
            audience: Some(payload.audience.clone()),
            ..RedeemFailure::new(error, outcome, Some(keys))
        }
    }
}

pub struct TicketService {
    policy: TicketSettings,
    store: Store,
    key_prefix: String,
    metrics: Arc<Metrics>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl TicketService {
    pub fn new(
        policy: TicketSettings,
        store: Store,
        key_prefix: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        TicketService {
            policy,
            store,
            key_prefix,
            metrics,
        }
    }

    /// Time a store operation and count its failure; a failure becomes 503.
    /// A combinator rather than an `async fn`: an `async fn` would hold `fut`
    /// twice (as argument and as awaitee), and every request moves the
    /// handler's future, so its size is paid in copies.
    fn timed<'a, T>(
        &'a self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StoreError>> + 'a,
    ) -> impl Future<Output = Result<T, ApiError>> + 'a {
        let started = Instant::now();
        fut.map(move |result| {
            let kind = result.as_ref().err().map(StoreError::kind);
            self.metrics.store_op(op, started.elapsed(), kind);
            result.map_err(|e| {
                tracing::warn!(op, kind = e.kind(), error = %e, "ticket store failed");
                ApiError::StoreUnavailable
            })
        })
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
                .timed("mint", self.store.put_new(&key, &sealed, ttl))
                .await?
            {
                self.metrics.ticket_issued(input.audience.as_ref());
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
    ) -> Result<Redeemed, RedeemFailure> {
        use Outcome as O;
        // An unknown key id cannot name a stored ticket: no store access.
        let Some(keys) = self.policy.keyring.keys_for(ticket) else {
            return Err(RedeemFailure::new(
                ApiError::TicketInvalid,
                O::Invalid,
                None,
            ));
        };
        let key = keys.store_key(&self.key_prefix);
        let taken = self
            .timed("redeem", self.store.take(&key))
            .await
            .map_err(|error| RedeemFailure {
                outcome: None,
                ..RedeemFailure::new(error, O::Invalid, Some(&keys))
            })?;
        let fail = |error, outcome| Err(RedeemFailure::new(error, outcome, Some(&keys)));
        let sealed = match taken {
            Taken::Missing => return fail(ApiError::TicketInvalid, O::Invalid),
            Taken::Used(sealed) => {
                return Err(match open(&keys, &key, &sealed) {
                    Some(p) => RedeemFailure::of(ApiError::TicketReused, O::Reused, &keys, &p),
                    None => RedeemFailure::new(ApiError::TicketReused, O::Reused, Some(&keys)),
                });
            }
            Taken::Value(sealed) => sealed,
        };
        let Some(payload) = open(&keys, &key, &sealed) else {
            tracing::error!(
                "a stored ticket failed authentication: the store was tampered with or the secret changed"
            );
            return fail(ApiError::TicketInvalid, O::Invalid);
        };
        if unix_ms(SystemTime::now()) >= payload.exp {
            return Err(RedeemFailure::of(
                ApiError::TicketInvalid,
                O::Invalid,
                &keys,
                &payload,
            ));
        }
        let presented = origin.filter(|o| !o.is_empty());
        let origin_ok = match (&payload.origin, presented) {
            (None, None) => true,
            // `bound` is canonical, so the usual exact match needs no parse.
            (Some(bound), Some(seen)) => {
                seen == bound || Origin::parse(seen).is_ok_and(|o| o.as_ref() == bound)
            }
            _ => false,
        };
        if !origin_ok {
            return Err(RedeemFailure::of(
                ApiError::OriginMismatch,
                O::OriginMismatch,
                &keys,
                &payload,
            ));
        }
        let audience_ok = Audience::parse(&payload.audience).is_ok_and(|a| caller.may_use(&a));
        if !audience_ok {
            return Err(RedeemFailure::of(
                ApiError::AudienceMismatch,
                O::AudienceMismatch,
                &keys,
                &payload,
            ));
        }
        Ok(Redeemed {
            ticket_ref: keys.reference(),
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
        self.timed("ping", self.store.ping()).await
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

fn open(keys: &TicketKeys, key: &str, sealed: &[u8]) -> Option<Payload> {
    let plain = keys.open(key, sealed)?;
    serde_json::from_slice(&plain).ok()
}

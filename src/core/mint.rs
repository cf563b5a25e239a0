//! Minting: a request checked against the policy in a fixed order (who the
//! ticket is for, where it may be used, which service, how long, what it
//! carries), then sealed and stored.

use super::limits::Limited;
use super::payload::{Sealing, SealingUsed};
use super::{StoreUnavailable, TicketCore, unix_ms};
use crate::auth::{Caller, Permission};
use crate::crypto::Record;
use crate::domain::{Audience, Claims, Origin, Ticket, UserId};
use crate::store::{Records, TicketStore};
use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// A mint request as a door received it, before the policy.
pub(crate) struct MintRequest<'a> {
    pub(crate) user_id: Option<String>,
    pub(crate) origin: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) ttl_secs: Option<u64>,
    pub(crate) claims: Option<Claims>,
    /// The request's `Origin` header: where a browser caller's page is.
    pub(crate) origin_header: Option<&'a str>,
    /// The address the request came from (behind trusted proxies, the
    /// client's), for the per-address limit.
    pub(crate) client_ip: Option<IpAddr>,
    /// Bind the ticket to the client's address? `None`: `tickets.bind_ip`.
    pub(crate) bind_ip: Option<bool>,
    /// The user's address as an API-key caller (a backend) saw it, to bind
    /// the ticket to.
    pub(crate) user_ip: Option<String>,
}

pub(crate) struct Minted {
    pub(crate) ticket: Ticket,
    pub(crate) expires_at: SystemTime,
    pub(crate) expires_in: u64,
    pub(crate) audience: Audience,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum MintError {
    /// The request breaks a rule; the detail says which, in our own words.
    #[error("invalid request: {0}")]
    Invalid(Cow<'static, str>),
    /// The caller may not do this (permission or audience).
    #[error("forbidden: {0}")]
    Forbidden(Cow<'static, str>),
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// Over one of the `[limits]`.
    #[error("rate limited ({})", .0.limit.as_str())]
    RateLimited(Limited),
    #[error(transparent)]
    StoreUnavailable(#[from] StoreUnavailable),
    /// Never expected: the random generator or the sealing failed.
    #[error("internal error")]
    Internal,
}

impl MintError {
    /// A bounded label for the log.
    fn reason(&self) -> &'static str {
        match self {
            MintError::Invalid(_) => "invalid_request",
            MintError::Forbidden(_) => "forbidden",
            MintError::OriginNotAllowed => "origin_not_allowed",
            MintError::RateLimited(_) => "rate_limited",
            MintError::StoreUnavailable(_) => "store_unavailable",
            MintError::Internal => "internal",
        }
    }
}

/// Who a ticket is for, where it may be used and what it carries.
struct Subject {
    user: UserId,
    origin: Option<Origin>,
    claims: Claims,
    /// The address it is bound to, canonical.
    ip: Option<String>,
}

/// An address as sealed into a ticket: parsed, and IPv4-mapped IPv6 as IPv4,
/// so that the two spellings of one address compare equal at redeem.
fn canonical_ip(raw: &str) -> Result<String, MintError> {
    raw.trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical().to_string())
        .map_err(|_| MintError::Invalid("client_ip is not an IPv4 or IPv6 address".into()))
}

impl TicketCore {
    pub(crate) async fn mint(
        &self,
        caller: &Caller,
        request: MintRequest<'_>,
    ) -> Result<Minted, MintError> {
        let client_ip = request.client_ip;
        let result = self.mint_checked(caller, request).await;
        match &result {
            Ok((minted, user, ticket_ref)) => {
                self.metrics.ticket_issued(minted.audience.as_ref());
                tracing::info!(
                    caller = caller.name(),
                    user_id = user.as_ref(),
                    client_ip = client_ip.map(tracing::field::display),
                    audience = minted.audience.as_ref(),
                    ticket_ref = %ticket_ref,
                    expires_in = minted.expires_in,
                    "ticket minted"
                );
            }
            // Counted and logged, with the user and address, where refused.
            Err(MintError::RateLimited(_)) => {}
            Err(e) => tracing::info!(caller = caller.name(), reason = e.reason(), "mint refused"),
        }
        result.map(|(minted, _, _)| minted)
    }

    async fn mint_checked(
        &self,
        caller: &Caller,
        mut request: MintRequest<'_>,
    ) -> Result<(Minted, UserId, String), MintError> {
        caller
            .require(Permission::Issue)
            .map_err(|e| MintError::Forbidden(e.to_string().into()))?;
        let subject = self.subject(caller, &mut request)?;
        let policy = self.policy();
        let audience = policy.audience(request.audience.as_deref(), caller)?;
        let ttl_secs = policy.ttl_secs(request.ttl_secs)?;
        policy.check_claims(&subject.claims)?;
        let who = self.who(caller, subject.user.as_ref(), request.client_ip);
        self.check_rates(&who).await?;

        let now = SystemTime::now();
        let expires_at = now + Duration::from_secs(ttl_secs);
        let serialise = |r: Result<Vec<u8>, serde_json::Error>| {
            r.map(Zeroizing::new).map_err(|e| {
                tracing::error!(error = %e, "cannot serialise a ticket payload");
                MintError::Internal
            })
        };
        let used = serialise(serde_json::to_vec(&SealingUsed {
            user_id: subject.user.as_ref(),
            audience: audience.as_ref(),
        }))?;
        // Two tickets colliding is a 2^-256 event; a second attempt makes a
        // storage error or a broken RNG visible instead of looping.
        for _ in 0..2 {
            let (ticket, keys) = policy.keyring.mint().map_err(|e| {
                tracing::error!(error = %e, "cannot mint a ticket");
                MintError::Internal
            })?;
            let ticket_ref = keys.reference();
            let live = self
                .hold_live(&who, &ticket_ref, unix_ms(expires_at))
                .await?;
            let fresh = serialise(serde_json::to_vec(&Sealing {
                user_id: subject.user.as_ref(),
                origin: subject.origin.as_ref().map(AsRef::as_ref),
                audience: audience.as_ref(),
                claims: &subject.claims,
                iat: unix_ms(now),
                exp: unix_ms(expires_at),
                live: live.as_deref(),
                ip: subject.ip.as_deref(),
                minted_by: match caller {
                    Caller::Client(c) => Some(c.name.as_str()),
                    Caller::Frontend(_) => None,
                },
            }))?;
            let key = keys.store_key(&self.key_prefix);
            let seal = |record, plaintext: &[u8]| {
                keys.seal(record, &key, plaintext).map_err(|e| {
                    tracing::error!(error = %e, "cannot seal a ticket");
                    MintError::Internal
                })
            };
            let (fresh, used) = (seal(Record::Fresh, &fresh)?, seal(Record::Used, &used)?);
            // Where the redeem will look for its user's revocations, for a
            // store that reads them in the same step as the take.
            let not_before_key = self
                .store
                .reads_not_before_in_take()
                .then(|| {
                    let fp =
                        policy
                            .keyring
                            .fingerprint_for(&ticket, "user", subject.user.as_ref())?;
                    Some(self.not_before_key(&fp))
                })
                .flatten();
            let records = Records {
                fresh: &fresh,
                used: &used,
                not_before_key: not_before_key.as_deref(),
            };
            let ttl = Duration::from_secs(ttl_secs);
            if self
                .timed("mint", self.store.put_new(&key, records, ttl))
                .await?
            {
                let minted = Minted {
                    ticket,
                    expires_at,
                    expires_in: ttl_secs,
                    audience,
                };
                return Ok((minted, subject.user, ticket_ref));
            }
            if let Some(live) = live {
                self.release_live(&live, &ticket_ref).await;
            }
        }
        tracing::error!("two fresh tickets collided with stored keys");
        Err(MintError::Internal)
    }

    /// From the request for API-key callers; from the credential and the
    /// browser's `Origin` header for frontend callers.
    fn subject(
        &self,
        caller: &Caller,
        request: &mut MintRequest<'_>,
    ) -> Result<Subject, MintError> {
        let invalid = |detail: &'static str| MintError::Invalid(detail.into());
        let policy = self.policy();
        match caller {
            Caller::Client(_) => {
                let user = request
                    .user_id
                    .take()
                    .ok_or_else(|| invalid("missing field `user_id`"))?;
                let user = UserId::parse(user).map_err(invalid)?;
                let origin = match request.origin.as_deref() {
                    Some(raw) => Some(policy.mint_origin(raw)?),
                    None if policy.allow_originless => None,
                    None => return Err(invalid("missing field `origin`")),
                };
                let claims = request.claims.take().unwrap_or_else(Claims::empty);
                let ip = match (
                    request.bind_ip.unwrap_or(policy.bind_ip),
                    request.user_ip.take(),
                ) {
                    (true, Some(raw)) => Some(canonical_ip(&raw)?),
                    (true, None) => {
                        return Err(invalid(
                            "client_ip is required to bind a ticket (bind_ip, or tickets.bind_ip): \
                             the user's address as your backend saw it",
                        ));
                    }
                    (false, Some(_)) => {
                        return Err(invalid("client_ip is only accepted with bind_ip"));
                    }
                    (false, None) => None,
                };
                Ok(Subject {
                    user,
                    origin,
                    claims,
                    ip,
                })
            }
            Caller::Frontend(f) => {
                if request.user_id.is_some() {
                    return Err(invalid(
                        "user_id is not accepted from browser callers: the user comes from the credential",
                    ));
                }
                if request.claims.is_some() {
                    return Err(invalid(
                        "claims are not accepted from browser callers: they come from the credential",
                    ));
                }
                let header = request
                    .origin_header
                    .ok_or_else(|| invalid("browser callers must send an Origin header"))?;
                let origin = policy.mint_origin(header)?;
                if let Some(raw) = request.origin.as_deref()
                    && Origin::parse(raw).ok().as_ref() != Some(&origin)
                {
                    return Err(invalid("origin must equal the Origin header"));
                }
                if request.user_ip.is_some() {
                    return Err(invalid(
                        "client_ip is not accepted from browser callers: the address is the request's",
                    ));
                }
                // A page may ask for a binding, never turn off the policy's.
                let ip = match request.bind_ip {
                    Some(false) if policy.bind_ip => {
                        return Err(invalid(
                            "bind_ip cannot be turned off by browser callers (tickets.bind_ip)",
                        ));
                    }
                    Some(true) => true,
                    _ => policy.bind_ip,
                };
                let ip = match (ip, request.client_ip) {
                    (true, Some(addr)) => Some(addr.to_canonical().to_string()),
                    (true, None) => return Err(MintError::Internal),
                    (false, _) => None,
                };
                Ok(Subject {
                    user: f.identity.user.clone(),
                    origin: Some(origin),
                    claims: Claims::from_map(&f.identity.claims),
                    ip,
                })
            }
        }
    }
}

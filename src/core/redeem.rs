//! Redeeming: consume a ticket atomically, then check what it was bound to.
//! Any well-formed redeem that finds the ticket consumes it, whatever the
//! checks say afterwards.

use super::events::{Event, RevokeReason};
use super::payload::{Opened, OpenedUsed};
use super::policy::OnReuse;
use super::revoke::UserRevocation;
use super::{StoreUnavailable, TicketCore, from_unix_ms, unix_ms_now};
use crate::auth::{Caller, NotPermitted, Permission};
use crate::crypto::{Record, TicketKeys};
use crate::domain::{Audience, Claims, Origin, Ticket, UserId};
use crate::store::{Taken, TicketStore};
use std::net::IpAddr;
use std::time::SystemTime;

/// A redeem request as a door received it.
pub(crate) struct RedeemRequest<'a> {
    pub(crate) ticket: &'a str,
    /// The `Origin` header of the WebSocket handshake (`None` or empty when
    /// there was none).
    pub(crate) origin: Option<&'a str>,
    /// Which door the request came through, for metrics and logs.
    pub(crate) door: Door,
    /// The one audience this redeem is for (a gateway route's), besides
    /// those the caller may use; `None`: any of those.
    pub(crate) audience: Option<&'a Audience>,
    /// The client address the WebSocket server (or the proxy) saw, for a
    /// ticket bound to one.
    pub(crate) client_ip: Option<IpAddr>,
}

/// The ways into redeem: `POST /v1/tickets/redeem` (a WebSocket server
/// calls it) and the gateway check (a proxy calls it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    Redeem,
    Gateway,
}

impl Door {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Door::Redeem => "redeem",
            Door::Gateway => "gateway",
        }
    }
}

/// The first and only success of a ticket.
pub(crate) struct Redeemed {
    pub(crate) user: UserId,
    pub(crate) origin: Option<Origin>,
    pub(crate) audience: Audience,
    pub(crate) claims: Claims,
    pub(crate) issued_at: SystemTime,
    pub(crate) expires_at: SystemTime,
}

/// How a redeem ended: a bounded label for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Invalid,
    Reused,
    /// Presented again after a redeem of it failed in the store (this
    /// process saw the failure): the store may have consumed it then, so a
    /// retried redeem, not a leak.
    ReusedAfterStoreError,
    OriginMismatch,
    AudienceMismatch,
    /// Bound to another client address than the one the redeemer saw.
    IpMismatch,
    Malformed,
    /// Revoked before it was redeemed: the ticket itself, or its user.
    Revoked,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Invalid => "invalid",
            Outcome::Reused => "reused",
            Outcome::ReusedAfterStoreError => "reused_after_store_error",
            Outcome::OriginMismatch => "origin_mismatch",
            Outcome::AudienceMismatch => "audience_mismatch",
            Outcome::IpMismatch => "ip_mismatch",
            Outcome::Malformed => "malformed",
            Outcome::Revoked => "revoked",
        }
    }
}

/// A ticket that did not redeem: why, and what is known of it (never the
/// ticket itself).
#[derive(Debug)]
pub(crate) struct Refusal {
    /// Never [`Outcome::Ok`].
    pub(crate) outcome: Outcome,
    /// A fingerprint of the ticket for logs ([`TicketKeys::reference`]);
    /// `None` when it is malformed or its key id unknown.
    pub(crate) ticket_ref: Option<String>,
    /// Known when the stored value could be opened.
    pub(crate) user: Option<UserId>,
    pub(crate) audience: Option<Audience>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RedeemError {
    #[error(transparent)]
    NotPermitted(#[from] NotPermitted),
    /// The stated audience is not one the caller may redeem (or not one of
    /// tickets.audiences): no ticket could pass, so none is spent.
    #[error("the stated audience is not one this caller may redeem")]
    AudienceNotPermitted,
    #[error("ticket refused: {}", .0.outcome.as_str())]
    Refused(Refusal),
    /// The outcome for the ticket is unknown: nothing was accepted.
    #[error(transparent)]
    StoreUnavailable(#[from] StoreUnavailable),
}

impl Refusal {
    fn new(outcome: Outcome, ticket_ref: Option<String>) -> Self {
        Refusal {
            outcome,
            ticket_ref,
            user: None,
            audience: None,
        }
    }
}

impl TicketCore {
    /// Consume a ticket for `caller`, and record the outcome (metric and
    /// audit line) whatever it is.
    pub(crate) async fn redeem(
        &self,
        caller: &Caller,
        request: RedeemRequest<'_>,
    ) -> Result<Redeemed, RedeemError> {
        caller.require(Permission::Redeem)?;
        if let Some(a) = request.audience
            && !(self.policy.audiences.contains(a) && caller.may_use(a))
        {
            return Err(RedeemError::AudienceNotPermitted);
        }
        let door = request.door;
        let mut result = self.consume(caller, request).await;
        if let Err(RedeemError::Refused(f)) = &mut result
            && f.outcome == Outcome::Reused
            && f.ticket_ref
                .as_deref()
                .is_some_and(|r| self.store_failed.contains(r))
        {
            f.outcome = Outcome::ReusedAfterStoreError;
        }
        match &result {
            Ok((r, ticket_ref)) => {
                // Its redeem succeeded after all: a later reuse is a leak.
                self.store_failed.forget(ticket_ref);
                self.metrics.redemption(
                    door.as_str(),
                    Some(r.audience.as_ref()),
                    Outcome::Ok.as_str(),
                );
                // The audit trail of who connected to which service; its
                // ticket_ref is what a later reuse warning names.
                tracing::info!(
                    door = door.as_str(),
                    caller = caller.name(),
                    user_id = r.user.as_ref(),
                    audience = r.audience.as_ref(),
                    ticket_ref = %ticket_ref,
                    "ticket redeemed"
                );
            }
            Err(RedeemError::Refused(f)) => {
                self.record_refusal(door, caller, f);
                if f.outcome == Outcome::Reused {
                    self.on_reuse(caller, f).await;
                }
            }
            Err(_) => {}
        }
        result.map(|(r, _)| r)
    }

    /// A likely leak: tell the subscribers, and revoke the user when so
    /// configured. The refusal stands whatever happens here.
    async fn on_reuse(&self, caller: &Caller, f: &Refusal) {
        let (Some(user), Some(audience)) = (&f.user, &f.audience) else {
            return;
        };
        let reused = Event::TicketReused {
            user_id: user.as_ref(),
            audience: audience.as_ref(),
        };
        let _: Result<(), StoreUnavailable> = self.publish(&reused).await;
        if self.policy.on_reuse == OnReuse::RevokeUser {
            let revocation = UserRevocation {
                user: user.as_ref(),
                audience: None,
                reason: RevokeReason::Reuse,
            };
            let _: Result<_, StoreUnavailable> = self.revoke_user(caller, &revocation).await;
        }
    }

    fn record_refusal(&self, door: Door, caller: &Caller, f: &Refusal) {
        let outcome = f.outcome.as_str();
        self.metrics.redemption(
            door.as_str(),
            f.audience.as_ref().map(AsRef::as_ref),
            outcome,
        );
        let door = door.as_str();
        let user_id = f.user.as_ref().map_or("<unknown>", AsRef::as_ref);
        let ticket_ref = f.ticket_ref.as_deref().unwrap_or("<none>");
        if f.outcome == Outcome::Reused {
            // A security signal: a ticket was presented after use.
            tracing::warn!(
                door,
                caller = caller.name(),
                user_id,
                ticket_ref,
                outcome,
                "ticket reused: a redeemed ticket was presented again (possible leak)"
            );
        } else if f.outcome == Outcome::ReusedAfterStoreError {
            tracing::info!(
                door,
                caller = caller.name(),
                user_id,
                ticket_ref,
                outcome,
                "ticket presented again after its redeem failed in the store: \
                 probably a retried redeem, not a leak (never retry a redeem)"
            );
        } else {
            tracing::info!(
                door,
                caller = caller.name(),
                user_id,
                ticket_ref,
                outcome,
                "redeem refused"
            );
        }
    }

    async fn consume(
        &self,
        caller: &Caller,
        request: RedeemRequest<'_>,
    ) -> Result<(Redeemed, String), RedeemError> {
        use Outcome as O;
        let refuse = |outcome, r| Err(RedeemError::Refused(Refusal::new(outcome, r)));
        let Ok(ticket) = Ticket::parse(request.ticket) else {
            return refuse(O::Malformed, None);
        };
        // An unknown key id cannot name a stored ticket: no store access.
        let Some(keys) = self.policy.keyring.keys_for(&ticket) else {
            return refuse(O::Invalid, None);
        };
        let key = keys.store_key(&self.key_prefix);
        // What the logs name the ticket by; every answer from here has one.
        let ticket_ref = keys.reference();
        let take = self.store.take_reading_not_before(&key);
        let (taken, not_before_read) = match self.timed("redeem", take).await {
            Ok(taken) => taken,
            Err(e) => return Err(self.outcome_unknown(ticket_ref, e)),
        };
        let (outcome, used) = match taken {
            Taken::Missing => return refuse(O::Invalid, Some(ticket_ref)),
            Taken::Fresh(sealed) => (O::Ok, sealed),
            Taken::Used(used) => (O::Reused, used),
            Taken::Revoked(used) => (O::Revoked, used),
        };
        if outcome != O::Ok {
            // Named by its used record; one that does not open (edited
            // behind wsticket's back) is still refused, of nobody known.
            let mut refusal = Refusal::new(outcome, Some(ticket_ref));
            if let Some(used) = open::<OpenedUsed>(&keys, Record::Used, &key, &used) {
                refusal.user = UserId::parse(used.user_id).ok();
                refusal.audience = self.policy.bound_audience(&used.audience);
            }
            return Err(RedeemError::Refused(refusal));
        }
        let sealed = used;
        let Some(payload) = open::<Opened>(&keys, Record::Fresh, &key, &sealed) else {
            tracing::error!(
                "a stored ticket failed authentication: the store was tampered with or the secret changed"
            );
            return refuse(O::Invalid, Some(ticket_ref));
        };
        // Consumed: its place in its user's cap is free again.
        if let Some(live) = &payload.live {
            self.release_live(live, &ticket_ref).await;
        }
        if unix_ms_now() >= payload.exp {
            return Err(self.refusal(O::Invalid, ticket_ref, &payload));
        }
        // Its user revoked since it was issued? (Read after the take: a
        // revocation that lands first is always seen.)
        let Some(fp) = self
            .policy
            .keyring
            .fingerprint_for(&ticket, "user", &payload.user_id)
        else {
            return refuse(O::Invalid, Some(ticket_ref));
        };
        let not_before_key = self.not_before_key(&fp);
        // Read with the take when the stored value named this user's key
        // (the name is stored in the clear: one naming another key is not
        // trusted); else in a call of its own.
        let not_before = match not_before_read {
            Some(read) if read.key == not_before_key => Ok(read.for_audience(&payload.audience)),
            _ => {
                let read = self.store.not_before(&not_before_key, &payload.audience);
                self.timed("not_before", read).await
            }
        };
        match not_before {
            Ok(at) if payload.iat < at => {
                // Stored as revoked, not used: presented again, it is not a
                // reuse (which `on_reuse` could act on) but still revoked.
                let marked = self.store.mark_revoked(&key);
                let _: Result<bool, StoreUnavailable> = self.timed("revoke", marked).await;
                return Err(self.refusal(O::Revoked, ticket_ref, &payload));
            }
            Ok(_) => {}
            // Consumed, but not accepted.
            Err(e) => return Err(self.outcome_unknown(ticket_ref, e)),
        }
        let presented = request.origin.filter(|o| !o.is_empty());
        let origin_ok = match (&payload.origin, presented) {
            (None, None) => true,
            // `bound` is canonical, so the usual exact match needs no parse.
            (Some(bound), Some(seen)) => {
                seen == bound || Origin::parse(seen).is_ok_and(|o| o.as_ref() == bound)
            }
            _ => false,
        };
        if !origin_ok {
            return Err(self.refusal(O::OriginMismatch, ticket_ref, &payload));
        }
        let audience = self.policy.bound_audience(&payload.audience);
        let wanted = |a: &Audience| request.audience.is_none_or(|r| r == a);
        let Some(audience) = audience.filter(|a| caller.may_use(a) && wanted(a)) else {
            return Err(self.refusal(O::AudienceMismatch, ticket_ref, &payload));
        };
        // Bound to an address: the redeemer must have seen that one (no
        // address given is a mismatch too).
        if let Some(bound) = &payload.ip {
            let seen = request.client_ip.map(|ip| ip.to_canonical().to_string());
            if seen.as_deref() != Some(bound.as_str()) {
                return Err(self.refusal(O::IpMismatch, ticket_ref, &payload));
            }
        }
        // What was sealed was checked when it was minted; values that no
        // longer parse (rules tightened since) fail closed.
        let origin = match &payload.origin {
            None => None,
            Some(o) => match self.policy.bound_origin(o) {
                Some(o) => Some(o),
                None => return Err(self.refusal(O::Invalid, ticket_ref, &payload)),
            },
        };
        let Ok(user) = UserId::parse(payload.user_id) else {
            return refuse(O::Invalid, Some(ticket_ref));
        };
        let redeemed = Redeemed {
            user,
            origin,
            audience,
            claims: payload.claims,
            issued_at: from_unix_ms(payload.iat),
            expires_at: from_unix_ms(payload.exp),
        };
        Ok((redeemed, ticket_ref))
    }

    /// The store failed during a redeem: the ticket may be consumed, and
    /// the caller cannot know. Noted, so that its retry is not taken for a
    /// leak.
    fn outcome_unknown(&self, ticket_ref: String, e: StoreUnavailable) -> RedeemError {
        let window = std::time::Duration::from_secs(self.policy.max_ttl_secs);
        self.store_failed.note(ticket_ref, window);
        e.into()
    }

    /// A refusal of an opened ticket, with its user and audience.
    fn refusal(&self, outcome: Outcome, ticket_ref: String, payload: &Opened) -> RedeemError {
        let mut refusal = Refusal::new(outcome, Some(ticket_ref));
        refusal.user = UserId::parse(payload.user_id.clone()).ok();
        refusal.audience = self.policy.bound_audience(&payload.audience);
        RedeemError::Refused(refusal)
    }
}

fn open<T: serde::de::DeserializeOwned>(
    keys: &TicketKeys,
    record: Record,
    key: &str,
    sealed: &[u8],
) -> Option<T> {
    let plain = keys.open(record, key, sealed)?;
    serde_json::from_slice(&plain).ok()
}

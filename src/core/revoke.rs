//! Revoking: one ticket (its minting client, or a client with `revoke`), or
//! every ticket of a user issued before now (`revoke`). A revoked ticket
//! redeems as invalid; the outcome says `revoked`.
//!
//! A user's revocation is one per-user key of not-before times (one per
//! audience, and `*` for all), which every redeem of that user's tickets
//! reads: one key, so a Redis Cluster needs no cross-slot operation. It
//! lives as long as a ticket can (`tickets.max_ttl_secs`): by then every
//! ticket it revoked has expired anyway. The key is named by the user's
//! fingerprint under a secret, and written under every configured secret:
//! a redeem reads the one of the secret that minted its ticket, so a key
//! rotation loses no revocation.

use super::events::{self, Event, RevokeReason, rfc3339_ms};
use super::payload::Opened;
use super::policy::AudienceRefused;
use super::{StoreUnavailable, TicketCore};
use crate::auth::{Caller, NotPermitted, Permission};
use crate::crypto::Record;
use crate::domain::{Ticket, UserId};
use crate::store::{Taken, TicketStore, unix_ms_now};
use std::borrow::Cow;
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RevokeError {
    #[error(transparent)]
    NotPermitted(#[from] NotPermitted),
    #[error("invalid request: {0}")]
    Invalid(Cow<'static, str>),
    #[error("forbidden: {0}")]
    Forbidden(Cow<'static, str>),
    #[error(transparent)]
    StoreUnavailable(#[from] StoreUnavailable),
}

/// What `on_reuse` and the users route revoke: a user, for one audience or
/// all of them.
pub(crate) struct UserRevocation<'a> {
    pub(crate) user: &'a str,
    pub(crate) audience: Option<&'a str>,
    pub(crate) reason: RevokeReason,
}

/// Field of the not-before key that revokes every audience.
const ALL: &str = "*";

impl TicketCore {
    /// The store key of a user's not-before times, for tickets minted
    /// under the secret `fp` was made with.
    pub(super) fn not_before_key(&self, fp: &str) -> String {
        format!("{}nb:{fp}", self.key_prefix)
    }

    /// `POST /v1/tickets/revoke`: the ticket is dead, whether or not it
    /// was there (the answer reveals nothing of it), unless the caller may
    /// not revoke it.
    pub(crate) async fn revoke_ticket(
        &self,
        caller: &Caller,
        ticket: &str,
    ) -> Result<(), RevokeError> {
        let may_revoke_any = caller.require(Permission::Revoke).is_ok();
        if !may_revoke_any && caller.require(Permission::Issue).is_err() {
            return Err(RevokeError::Forbidden(
                "this caller has neither the issue nor the revoke permission".into(),
            ));
        }
        let ticket = Ticket::parse(ticket)
            .map_err(|_| RevokeError::Invalid("`ticket` is not a wsticket ticket".into()))?;
        // An unknown key id names no stored ticket.
        let Some(keys) = self.policy.keyring.keys_for(&ticket) else {
            return Ok(());
        };
        let key = keys.store_key(&self.key_prefix);
        let Taken::Fresh(sealed) = self.timed("revoke", self.store.peek(&key)).await? else {
            // Missing, used or revoked already: nothing to do.
            return Ok(());
        };
        let Some(payload) = keys
            .open(Record::Fresh, &key, &sealed)
            .and_then(|plain| serde_json::from_slice::<Opened>(&plain).ok())
        else {
            tracing::error!(
                "a stored ticket failed authentication: the store was tampered with or the secret changed"
            );
            return Ok(());
        };
        let audience = self.policy.bound_audience(&payload.audience);
        let own = match caller {
            Caller::Client(c) => payload.minted_by.as_deref() == Some(c.name.as_str()),
            Caller::Frontend(_) => false,
        };
        if !(own || may_revoke_any) || !audience.as_ref().is_some_and(|a| caller.may_use(a)) {
            return Err(RevokeError::Forbidden(
                "only the client that minted a ticket, or one with the revoke permission \
                 for its audience, may revoke it"
                    .into(),
            ));
        }
        let ticket_ref = keys.reference();
        if !self.timed("revoke", self.store.revoke(&key)).await? {
            // Redeemed (or revoked) since the look: dead already.
            return Ok(());
        }
        if let Some(live) = &payload.live {
            self.release_live(live, &ticket_ref).await;
        }
        let audience = audience.as_ref().map_or("<unknown>", AsRef::as_ref);
        self.metrics
            .revocation("ticket", RevokeReason::Request.as_str());
        tracing::info!(
            caller = caller.name(),
            user_id = payload.user_id,
            audience,
            ticket_ref = %ticket_ref,
            "ticket revoked"
        );
        Ok(())
    }

    /// `POST /v1/users/revoke`: every ticket of the user issued before now
    /// (for one audience, or all) is dead. Answers that time.
    pub(crate) async fn revoke_user_request(
        &self,
        caller: &Caller,
        user_id: String,
        audience: Option<String>,
    ) -> Result<SystemTime, RevokeError> {
        caller.require(Permission::Revoke)?;
        let user = UserId::parse(user_id).map_err(|e| RevokeError::Invalid(e.into()))?;
        let audience =
            match audience {
                None => {
                    if !self.policy.audiences.iter().all(|a| caller.may_use(a)) {
                        return Err(RevokeError::Forbidden(
                            "this client may revoke only for its own audiences: name one".into(),
                        ));
                    }
                    None
                }
                Some(raw) => Some(self.policy.usable_audience(&raw, caller).map_err(
                    |r| match r {
                        AudienceRefused::Malformed(e) => RevokeError::Invalid(e.into()),
                        _ => RevokeError::Forbidden(r.detail().into()),
                    },
                )?),
            };
        let revocation = UserRevocation {
            user: user.as_ref(),
            audience: audience.as_ref().map(AsRef::as_ref),
            reason: RevokeReason::Request,
        };
        Ok(self.revoke_user(caller, &revocation).await?)
    }

    /// Revoke, count, log, and tell the subscribers. The answer is the
    /// not-before time: tickets issued earlier are dead.
    pub(super) async fn revoke_user(
        &self,
        caller: &Caller,
        r: &UserRevocation<'_>,
    ) -> Result<SystemTime, StoreUnavailable> {
        let before_ms = unix_ms_now();
        let before = super::from_unix_ms(before_ms);
        // Tickets issued before it live at most this long; so does the key.
        let ttl = Duration::from_secs(self.policy.max_ttl_secs) + Duration::from_secs(1);
        let field = r.audience.unwrap_or(ALL);
        for fp in self.policy.keyring.fingerprints("user", r.user) {
            let key = self.not_before_key(&fp);
            let write = self.store.revoke_user(&key, field, before_ms, ttl);
            self.timed("revoke", write).await?;
        }
        if r.audience.is_none()
            && let Some(live) = self.live_key(r.user)
        {
            // Every live ticket of the user is dead: free their places.
            let _: Result<(), StoreUnavailable> =
                self.timed("limit", self.store.forget(&live)).await;
        }
        self.metrics.revocation("user", r.reason.as_str());
        tracing::info!(
            caller = caller.name(),
            user_id = r.user,
            audience = r.audience.unwrap_or("<all>"),
            reason = r.reason.as_str(),
            "user revoked: tickets issued before now are dead"
        );
        let event = Event::UserRevoked {
            user_id: r.user,
            audience: r.audience,
            before: rfc3339_ms(before),
            reason: r.reason,
        };
        self.publish(&event).await?;
        Ok(before)
    }

    /// Tell every replica's subscribers.
    pub(super) async fn publish(&self, event: &Event<'_>) -> Result<(), StoreUnavailable> {
        let published = events::publish(&self.store, &self.key_prefix, self.backlog, event);
        self.timed("publish", published).await.map(drop)
    }
}

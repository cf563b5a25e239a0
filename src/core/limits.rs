//! `[limits]`: how fast and how much one signed-in user (or one address)
//! may mint. Shared by every replica through the store: one atomic step per
//! limiter key, one key per user or address, so a Redis Cluster needs no
//! cross-slot operation.

use super::{MintError, StoreUnavailable, TicketCore};
use crate::auth::Caller;
use crate::domain::{Cidr, Rate};
use crate::store::{Hold, Throttle, TicketStore};
use std::net::IpAddr;
use std::time::Duration;

/// A rate, and how many requests may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Burst {
    pub(crate) rate: Rate,
    pub(crate) burst: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct LimitPolicy {
    pub(crate) per_user: Option<Burst>,
    pub(crate) per_ip: Option<Burst>,
    pub(crate) max_live_per_user: Option<u32>,
    pub(crate) trusted_proxies: Vec<Cidr>,
    pub(crate) apply_to_api_keys: bool,
}

/// Which limit refused a mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    User,
    Ip,
    Live,
}

impl Limit {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Limit::User => "user",
            Limit::Ip => "ip",
            Limit::Live => "live",
        }
    }
}

/// A mint over a limit: which, when to try again, and the policy that
/// refused it (for the `RateLimit-Policy` header: a quota per window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    pub(crate) limit: Limit,
    pub(crate) retry_after: Duration,
    pub(crate) quota: u32,
    pub(crate) window: Duration,
}

/// Who mints: the caller, the user the ticket is for, the client address.
#[derive(Clone, Copy)]
pub(super) struct Who<'a> {
    pub(super) caller: &'a Caller,
    pub(super) user: &'a str,
    pub(super) ip: Option<IpAddr>,
}

/// A live ticket counted against its user: the set and the member, so that
/// redeeming it (or its expiry) frees its place.
pub(crate) struct LiveSlot {
    pub(crate) key: String,
    pub(crate) member: String,
}

impl LimitPolicy {
    /// Do these limits apply to `caller`? Signed-in users always; API-key
    /// callers (trusted backends) only when configured.
    pub(crate) fn applies_to(&self, caller: &Caller) -> bool {
        matches!(caller, Caller::Frontend(_)) || self.apply_to_api_keys
    }
}

impl TicketCore {
    fn limit_key(&self, kind: &str, value: &str) -> String {
        let fp = self.policy.keyring.fingerprint(kind, value);
        format!("{}{kind}:{fp}", self.key_prefix)
    }

    /// A refused mint: counted, logged with who and from where, answered.
    fn refuse(&self, who: Who<'_>, limited: Limited) -> MintError {
        self.metrics.mint_limited(limited.limit.as_str());
        tracing::info!(
            caller = who.caller.name(),
            user_id = who.user,
            client_ip = who.ip.map(tracing::field::display),
            reason = "rate_limited",
            limit = limited.limit.as_str(),
            retry_after_ms = limited.retry_after.as_millis() as u64,
            "mint refused"
        );
        MintError::RateLimited(limited)
    }

    async fn throttle(
        &self,
        who: Who<'_>,
        limit: Limit,
        key: &str,
        b: Burst,
    ) -> Result<(), MintError> {
        let throttled = self
            .timed(
                "limit",
                self.store.throttle(key, b.rate.interval(), b.burst),
            )
            .await?;
        match throttled {
            Throttle::Allowed { .. } => Ok(()),
            Throttle::Wait(retry_after) => Err(self.refuse(
                who,
                Limited {
                    limit,
                    retry_after,
                    quota: b.burst,
                    window: b.rate.interval() * b.burst,
                },
            )),
        }
    }

    /// The rate limits of a mint.
    pub(super) async fn check_rates(&self, who: Who<'_>) -> Result<(), MintError> {
        let limits = &self.limits;
        if !limits.applies_to(who.caller) {
            return Ok(());
        }
        if let Some(b) = limits.per_user {
            self.throttle(who, Limit::User, &self.limit_key("ru", who.user), b)
                .await?;
        }
        if let (Some(b), Some(ip)) = (limits.per_ip, who.ip) {
            let key = self.limit_key("ri", &ip.to_string());
            self.throttle(who, Limit::Ip, &key, b).await?;
        }
        Ok(())
    }

    /// Count a ticket (`member`, live until `until`, unix ms) against its
    /// user's cap, when one applies.
    pub(super) async fn hold_live(
        &self,
        who: Who<'_>,
        member: &str,
        until: u64,
    ) -> Result<Option<LiveSlot>, MintError> {
        let Some(max) = self.limits.max_live_per_user else {
            return Ok(None);
        };
        if !self.limits.applies_to(who.caller) {
            return Ok(None);
        }
        let key = self.limit_key("lu", who.user);
        match self
            .timed("limit", self.store.hold(&key, member, until, max))
            .await?
        {
            Hold::Held => Ok(Some(LiveSlot {
                key,
                member: member.to_owned(),
            })),
            Hold::Full(retry_after) => Err(self.refuse(
                who,
                Limited {
                    limit: Limit::Live,
                    retry_after,
                    quota: max,
                    window: Duration::from_secs(self.policy.max_ttl_secs),
                },
            )),
        }
    }

    /// Free a ticket's place in its user's cap (it was redeemed). A failure
    /// only leaves the place taken until the ticket would have expired.
    pub(super) async fn release_live(&self, key: &str, member: &str) {
        let _: Result<(), StoreUnavailable> =
            self.timed("limit", self.store.release(key, member)).await;
    }
}

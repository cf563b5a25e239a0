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

/// Who mints: the caller, the user the ticket is for, the client address,
/// and the user's keyed fingerprint when a per-user limit applies (computed
/// once, for both the user's rate and live set).
pub(super) struct Who<'a> {
    caller: &'a Caller,
    user: &'a str,
    ip: Option<IpAddr>,
    user_fp: Option<String>,
}

impl LimitPolicy {
    /// Do these limits apply to `caller`? Signed-in users always; API-key
    /// callers (trusted backends) only when configured.
    pub(crate) fn applies_to(&self, caller: &Caller) -> bool {
        matches!(caller, Caller::Frontend(_)) || self.apply_to_api_keys
    }
}

impl TicketCore {
    pub(super) fn who<'a>(&self, caller: &'a Caller, user: &'a str, ip: Option<IpAddr>) -> Who<'a> {
        let limits = &self.limits;
        let per_user = limits.per_user.is_some() || limits.max_live_per_user.is_some();
        let user_fp = (per_user && limits.applies_to(caller))
            .then(|| self.policy.keyring.fingerprint("user", user));
        Who {
            caller,
            user,
            ip,
            user_fp,
        }
    }

    /// The key of `user`'s live-ticket set, when their live tickets are
    /// capped.
    pub(super) fn live_key(&self, user: &str) -> Option<String> {
        self.limits.max_live_per_user?;
        let fp = self.policy.keyring.fingerprint("user", user);
        Some(self.limit_key("lu", &fp))
    }

    /// A limiter's store key: `kind` and the fingerprint of what it limits.
    fn limit_key(&self, kind: &str, fp: &str) -> String {
        format!("{}{kind}:{fp}", self.key_prefix)
    }

    /// A refused mint: counted, logged with who and from where, answered.
    fn refuse(&self, who: &Who<'_>, limited: Limited) -> MintError {
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
        who: &Who<'_>,
        limit: Limit,
        key: &str,
        b: Burst,
    ) -> Result<(), MintError> {
        // Stores count whole milliseconds: a rate over 1000/s is 1000/s.
        let interval = b.rate.interval().max(Duration::from_millis(1));
        let throttled = self
            .timed("limit", self.store.throttle(key, interval, b.burst))
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
    pub(super) async fn check_rates(&self, who: &Who<'_>) -> Result<(), MintError> {
        let limits = &self.limits;
        if !limits.applies_to(who.caller) {
            return Ok(());
        }
        if let (Some(b), Some(fp)) = (limits.per_user, &who.user_fp) {
            self.throttle(who, Limit::User, &self.limit_key("ru", fp), b)
                .await?;
        }
        if let (Some(b), Some(ip)) = (limits.per_ip, who.ip) {
            let fp = self.policy.keyring.fingerprint("ip", &ip.to_string());
            self.throttle(who, Limit::Ip, &self.limit_key("ri", &fp), b)
                .await?;
        }
        Ok(())
    }

    /// Count a ticket (`member`, live until `until`, unix ms) against its
    /// user's cap, when one applies: the key of the set it holds a place
    /// in, which redeeming it (or its expiry) frees.
    pub(super) async fn hold_live(
        &self,
        who: &Who<'_>,
        member: &str,
        until: u64,
    ) -> Result<Option<String>, MintError> {
        let (Some(max), Some(fp)) = (self.limits.max_live_per_user, &who.user_fp) else {
            return Ok(None);
        };
        let key = self.limit_key("lu", fp);
        match self
            .timed("limit", self.store.hold(&key, member, until, max))
            .await?
        {
            Hold::Held => Ok(Some(key)),
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

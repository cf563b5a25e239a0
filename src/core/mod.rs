//! The ticket core: the rules of minting and redeeming, their outcomes, and
//! the bookkeeping of every outcome (metrics and the audit log), whichever
//! door a call came through. It knows nothing of HTTP: a door (the REST
//! routes today) parses its request, calls [`TicketCore::mint`] or
//! [`TicketCore::redeem`], and shapes the answer from the result or from the
//! core's own error types.
//!
//! The behaviour is specified in docs/contract.md.

mod events;
mod limits;
mod mint;
mod payload;
mod policy;
mod redeem;
mod revoke;

pub(crate) use events::{
    DEFAULT_BACKLOG, DEFAULT_HEARTBEAT_SECS, EventHub, EventSettings, may_see, rfc3339_ms,
};
pub(crate) use limits::{Burst, Limit, LimitPolicy, Limited};
pub(crate) use mint::{MintError, MintRequest};
pub(crate) use policy::{MAX_TTL_LIMIT_SECS, OnReuse, TicketPolicy};
pub(crate) use redeem::{Door, Outcome, RedeemError, RedeemRequest};
pub(crate) use revoke::RevokeError;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError, unix_ms, unix_ms_now};
use futures_util::FutureExt;
use std::sync::Arc;
use std::time::Instant;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The store failed or did not answer in time: nothing was issued or
/// accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ticket store is unavailable")]
pub(crate) struct StoreUnavailable;

/// One per HTTP worker: the policy and the metrics are shared, the store
/// handle is the worker's own (with Redis, its own connection).
pub(crate) struct TicketCore {
    policy: Arc<TicketPolicy>,
    limits: Arc<LimitPolicy>,
    store: Store,
    key_prefix: Arc<str>,
    metrics: Arc<Metrics>,
    store_failed: Arc<StoreFailedRedeems>,
    /// `events.backlog`, for publishing.
    backlog: usize,
}

/// Tickets whose redeem failed in the store lately, in this process (shared
/// by its workers). A store that timed out may still have consumed the
/// ticket, so when one of these is presented again (a retried redeem, most
/// likely) it is no sign of a leak: see [`Outcome::ReusedAfterStoreError`].
/// Bounded, and touched only on store failures and reuses.
#[derive(Debug, Default)]
pub(crate) struct StoreFailedRedeems {
    refs: std::sync::Mutex<FailedRefs>,
    /// Whether `refs` may hold anything: every successful redeem asks, and
    /// must not take the lock for it while there was no store failure.
    any: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct FailedRefs {
    /// `ticket_ref` → until when it counts.
    until: std::collections::HashMap<String, Instant>,
    /// The latest of those: past it, none counts any more.
    latest: Option<Instant>,
}

impl StoreFailedRedeems {
    const MAX: usize = 10_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, FailedRefs> {
        self.refs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, ticket_ref: String, window: Duration) {
        let now = Instant::now();
        let refs = &mut *self.lock();
        if refs.until.len() >= Self::MAX {
            refs.until.retain(|_, until| *until > now);
        }
        if refs.until.len() < Self::MAX {
            let until = now + window;
            refs.until.insert(ticket_ref, until);
            refs.latest = refs.latest.max(Some(until));
            self.any.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// One lookup per call; the whole record goes once all of it is stale.
    fn forget(&self, ticket_ref: &str) {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let refs = &mut *self.lock();
        refs.until.remove(ticket_ref);
        if refs.until.is_empty() || refs.latest.is_none_or(|l| l <= Instant::now()) {
            *refs = FailedRefs::default();
            self.any.store(false, std::sync::atomic::Ordering::Release);
        }
    }

    fn contains(&self, ticket_ref: &str) -> bool {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        self.lock()
            .until
            .get(ticket_ref)
            .is_some_and(|until| *until > Instant::now())
    }
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl TicketCore {
    pub(crate) fn new(
        policy: Arc<TicketPolicy>,
        limits: Arc<LimitPolicy>,
        store: Store,
        key_prefix: Arc<str>,
        metrics: Arc<Metrics>,
        store_failed: Arc<StoreFailedRedeems>,
        backlog: usize,
    ) -> Self {
        TicketCore {
            policy,
            limits,
            store,
            key_prefix,
            metrics,
            store_failed,
            backlog,
        }
    }

    pub(crate) fn policy(&self) -> &TicketPolicy {
        &self.policy
    }

    pub(crate) fn limits(&self) -> &LimitPolicy {
        &self.limits
    }

    /// Time a store operation and count its failure. A combinator rather than
    /// an `async fn`: an `async fn` would hold `fut` twice (as argument and as
    /// awaitee), and every request moves the handler's future, so its size is
    /// paid in copies.
    fn timed<'a, T>(
        &'a self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StoreError>> + 'a,
    ) -> impl Future<Output = Result<T, StoreUnavailable>> + 'a {
        let started = Instant::now();
        fut.map(move |result| {
            let kind = result.as_ref().err().map(StoreError::kind);
            self.metrics.store_op(op, started.elapsed(), kind);
            result.map_err(|e| {
                tracing::warn!(op, kind = e.kind(), error = %e, "ticket store failed");
                StoreUnavailable
            })
        })
    }

    /// Does the store answer? (`/readyz`)
    pub(crate) async fn ready(&self) -> Result<(), StoreUnavailable> {
        use crate::store::TicketStore;
        self.timed("ping", self.store.ping()).await
    }
}

//! The ticket core: the rules of minting and redeeming, their outcomes, and
//! the bookkeeping of every outcome (metrics and the audit log), whichever
//! door a call came through. It knows nothing of HTTP: a door (the REST
//! routes today) parses its request, calls [`TicketCore::mint`] or
//! [`TicketCore::redeem`], and shapes the answer from the result or from the
//! core's own error types.
//!
//! The behaviour is specified in docs/contract.md.

mod mint;
mod payload;
mod policy;
mod redeem;

pub(crate) use mint::{MintError, MintRequest};
pub(crate) use policy::{MAX_TTL_LIMIT_SECS, TicketPolicy};
pub(crate) use redeem::{Outcome, RedeemError, RedeemRequest};

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
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
    store: Store,
    key_prefix: Arc<str>,
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

impl TicketCore {
    pub(crate) fn new(
        policy: Arc<TicketPolicy>,
        store: Store,
        key_prefix: Arc<str>,
        metrics: Arc<Metrics>,
    ) -> Self {
        TicketCore {
            policy,
            store,
            key_prefix,
            metrics,
        }
    }

    pub(crate) fn policy(&self) -> &TicketPolicy {
        &self.policy
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

//! Where sealed tickets live until they are redeemed or expire.
//!
//! Two backends behind one trait: the in-memory store (the default, for one
//! process) and Redis. The core holds a [`Store`], a closed enum, so no
//! generic leaks into it. Both pass the same behavioural suite (`tests/api`).

mod memory;
mod redis;

pub(crate) use memory::MemoryStore;
pub(crate) use redis::{RedeemReplicas, RedisSettings, RedisStore, RedisTopology, check_url};

use std::sync::Arc;
use std::time::Duration;

/// `[store]`, validated.
#[derive(Debug)]
pub(crate) struct StoreSettings {
    pub(crate) backend: StoreBackend,
    pub(crate) key_prefix: String,
}

#[derive(Debug)]
pub(crate) enum StoreBackend {
    Memory {
        max_entries: usize,
        max_bytes: usize,
    },
    Redis(RedisSettings),
}

/// A ticket as stored: two sealed records. `fresh` is what the first redeem
/// gets; `used` is all that is kept once it has: enough to log a reuse with
/// its user (docs/contract.md), and nothing that opens as a fresh ticket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Records<'a> {
    pub(crate) fresh: &'a [u8],
    pub(crate) used: &'a [u8],
    /// The key of its user's not-before times, for a store that reads them
    /// in the same step as the take ([`TicketStore::reads_not_before_in_take`]);
    /// not secret (a keyed fingerprint, like every key name).
    pub(crate) not_before_key: Option<&'a str>,
}

/// The not-before times a take found under the key the stored value named,
/// read in the same atomic step as the take. The redeemer checks that the
/// key is its user's (the name is stored in the clear) before trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotBeforeRead {
    pub(crate) key: String,
    /// Field (`*` or an audience) and time (unix ms); fields that were not
    /// a time are left out.
    pub(crate) times: Vec<(String, u64)>,
}

impl NotBeforeRead {
    /// The latest of the times of `*` and of `audience` (0: none), as
    /// [`TicketStore::not_before`] answers.
    pub(crate) fn for_audience(&self, audience: &str) -> u64 {
        self.times
            .iter()
            .filter(|(field, _)| field == "*" || field == audience)
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(0)
    }
}

/// What an atomic take found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The fresh record; only the used record is left in the store now.
    Fresh(Vec<u8>),
    /// The ticket was redeemed before: its used record.
    Used(Vec<u8>),
    /// The ticket was revoked before it was redeemed: its used record.
    Revoked(Vec<u8>),
    /// No such key (never minted, expired, or the store lost it), or a value
    /// of no known shape (not written by wsticket).
    Missing,
}

/// What a limiter key said (generic cell rate algorithm: one request costs
/// `interval`, and `burst` of them may come at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// Allowed; so many more would be allowed right now.
    Allowed { remaining: u32 },
    /// Refused; allowed again in this long.
    Wait(Duration),
}

/// What a live-ticket set said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    Held,
    /// At its cap; the first of its tickets expires in this long.
    Full(Duration),
}

/// An event's place in the event log: `ms-seq`, as Redis streams number
/// entries, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct EventId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl EventId {
    /// Before every event.
    pub(crate) const ZERO: EventId = EventId { ms: 0, seq: 0 };

    pub(crate) fn parse(s: &str) -> Option<EventId> {
        let (ms, seq) = s.split_once('-')?;
        let digits =
            |d: &str| !d.is_empty() && d.len() <= 20 && d.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(EventId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry of the event log, as published: its type, the audience it
/// concerns (`None`: every audience) and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredEvent {
    pub(crate) id: EventId,
    pub(crate) kind: String,
    pub(crate) audience: Option<String>,
    pub(crate) data: String,
}

/// What a read of the event log found after a given id.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct EventBatch {
    /// The id read after is no longer (or never was) in the log: events
    /// may have been missed.
    pub(crate) gap: bool,
    pub(crate) events: Vec<StoredEvent>,
}

/// A store failure. None of these is ever turned into a success.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("store command timed out")]
    Timeout,
    #[error("store connection failed: {0}")]
    Connection(String),
    #[error("store is full")]
    Full,
    #[error("too many store operations in flight")]
    Busy,
    /// A consume was applied, but fewer replicas than required confirmed
    /// it in time: a failover could lose it.
    #[error("{acked} replica(s) confirmed the consume in time, {wanted} required")]
    NotReplicated { acked: u32, wanted: u32 },
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// A bounded label for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            StoreError::Timeout => "timeout",
            StoreError::Connection(_) => "connection",
            StoreError::Busy => "busy",
            StoreError::Full => "full",
            StoreError::NotReplicated { .. } => "not_replicated",
            StoreError::Other(_) => "other",
        }
    }
}

/// The operations the ticket service needs; each touches exactly one key,
/// but for `take_reading_not_before`, which may read a second (never in a
/// Redis Cluster).
pub(crate) trait TicketStore {
    /// Store a ticket's `records` under `key` for `ttl` unless the key
    /// exists. `Ok(false)` when it existed (the caller mints another ticket).
    fn put_new(
        &self,
        key: &str,
        records: Records<'_>,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Atomically take the fresh record, leaving only the used one for the
    /// remaining time to live; or find the used one. Never creates a key.
    fn take(&self, key: &str) -> impl Future<Output = Result<Taken, StoreError>> + Send;

    /// Does `take_reading_not_before` read the not-before times that a
    /// fresh value names (its [`Records::not_before_key`])? Then minting
    /// should name them.
    fn reads_not_before_in_take(&self) -> bool {
        false
    }

    /// [`take`](Self::take), and for a fresh value that names its user's
    /// not-before key, the times under it, read in the same atomic step
    /// (one round trip instead of two). `None`: read them separately.
    fn take_reading_not_before(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<(Taken, Option<NotBeforeRead>), StoreError>> + Send
    where
        Self: Sync,
    {
        async move { Ok((self.take(key).await?, None)) }
    }

    /// Does the store answer?
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Charge one request to the limiter `key` (atomically; the key lives
    /// as long as it limits anything). `interval`, a request's cost, is
    /// whole milliseconds, at least one.
    fn throttle(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> impl Future<Output = Result<Throttle, StoreError>> + Send;

    /// Add `member` (until `until`, unix milliseconds) to the set `key`
    /// unless it holds `max` members that have not expired.
    fn hold(
        &self,
        key: &str,
        member: &str,
        until: u64,
        max: u32,
    ) -> impl Future<Output = Result<Hold, StoreError>> + Send;

    /// Take `member` out of the set `key`.
    fn release(
        &self,
        key: &str,
        member: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drop the set (or any key) `key`.
    fn forget(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What the ticket under `key` is now, without changing it.
    fn peek(&self, key: &str) -> impl Future<Output = Result<Taken, StoreError>> + Send;

    /// Revoke a fresh ticket: its fresh record goes, like a redeem's, and
    /// later takes find it revoked. `Ok(false)`: it was not fresh (missing,
    /// used or revoked already), and nothing changed.
    fn revoke(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Mark a used ticket revoked: one taken by a redeem that then found
    /// its user revoked. `Ok(false)`: it was not used (nothing changed).
    fn mark_revoked(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Raise the not-before time `field` (an audience, or `*` for all) of
    /// the per-user key `key` to `at` (unix ms) unless it is later already;
    /// the key lives at least `ttl` from now.
    fn revoke_user(
        &self,
        key: &str,
        field: &str,
        at: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The latest of the not-before times `*` and `audience` of `key`
    /// (unix ms; 0 when there is none).
    fn not_before(
        &self,
        key: &str,
        audience: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Append an event to the log `key`, which keeps about the last
    /// `backlog` events.
    fn publish(
        &self,
        key: &str,
        event: &StoredEvent,
        backlog: usize,
    ) -> impl Future<Output = Result<EventId, StoreError>> + Send;

    /// The id of the last event in the log `key` ([`EventId::ZERO`] if none).
    fn last_event(&self, key: &str) -> impl Future<Output = Result<EventId, StoreError>> + Send;

    /// Up to `max` events of the log `key` after `after`, waiting up to
    /// `wait` for one when there is none yet.
    fn events(
        &self,
        key: &str,
        after: EventId,
        wait: Duration,
        max: usize,
    ) -> impl Future<Output = Result<EventBatch, StoreError>> + Send;
}

pub(crate) enum Store {
    /// Shared by every worker: one map per process.
    Memory(Arc<MemoryStore>),
    Redis(Box<RedisStore>),
}

impl Store {
    /// One store handle per HTTP worker. The memory store is one map shared
    /// by all. With Redis each worker gets its own connection, made on first
    /// use from that worker's thread, so the connection's driver runs beside
    /// the requests instead of handing every command to another thread and
    /// back; `max_in_flight` is shared out between them.
    pub(crate) fn per_worker(backend: &StoreBackend, workers: usize) -> Result<Vec<Store>, String> {
        match backend {
            StoreBackend::Memory {
                max_entries,
                max_bytes,
            } => {
                let shared = Arc::new(MemoryStore::new(*max_entries, *max_bytes));
                Ok((0..workers)
                    .map(|_| Store::Memory(shared.clone()))
                    .collect())
            }
            StoreBackend::Redis(r) => {
                let mut per_worker = r.clone();
                per_worker.max_in_flight = r.max_in_flight.div_ceil(workers).max(1);
                if let Some(w) = &mut per_worker.redeem_replicas {
                    w.connections = w.connections.div_ceil(workers).max(1);
                }
                (0..workers)
                    .map(|_| RedisStore::new(&per_worker).map(|s| Store::Redis(Box::new(s))))
                    .collect()
            }
        }
    }

    /// A handle of its own for the event log's reader: with Redis its own
    /// connection, since a blocking read holds the connection it runs on;
    /// the memory store is the same map.
    pub(crate) fn for_events(&self, backend: &StoreBackend) -> Result<Store, String> {
        match (self, backend) {
            (Store::Memory(shared), _) => Ok(Store::Memory(shared.clone())),
            (Store::Redis(_), StoreBackend::Redis(r)) => {
                let mut own = r.clone();
                own.max_in_flight = 1;
                own.redeem_replicas = None;
                // A blocking read waits up to half its timeout for events
                // (`events`); doubled, the answer still has a whole command
                // timeout to arrive. With half of one, a busy host (a
                // saturated CPU delays the idle reader's wake-up) had the
                // reader warn of timeouts though Redis answered.
                own.command_timeout *= 2;
                RedisStore::new(&own).map(|s| Store::Redis(Box::new(s)))
            }
            (Store::Redis(_), StoreBackend::Memory { .. }) => {
                Err("the event reader needs the store's own backend".into())
            }
        }
    }

    pub(crate) fn backend(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }
}

impl TicketStore for Store {
    async fn put_new(
        &self,
        key: &str,
        records: Records<'_>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.put_new(key, records, ttl).await,
            Store::Redis(s) => s.put_new(key, records, ttl).await,
        }
    }

    async fn take(&self, key: &str) -> Result<Taken, StoreError> {
        match self {
            Store::Memory(s) => s.take(key).await,
            Store::Redis(s) => s.take(key).await,
        }
    }

    fn reads_not_before_in_take(&self) -> bool {
        match self {
            Store::Memory(s) => s.reads_not_before_in_take(),
            Store::Redis(s) => s.reads_not_before_in_take(),
        }
    }

    async fn take_reading_not_before(
        &self,
        key: &str,
    ) -> Result<(Taken, Option<NotBeforeRead>), StoreError> {
        match self {
            Store::Memory(s) => s.take_reading_not_before(key).await,
            Store::Redis(s) => s.take_reading_not_before(key).await,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.ping().await,
            Store::Redis(s) => s.ping().await,
        }
    }

    async fn throttle(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Throttle, StoreError> {
        match self {
            Store::Memory(s) => s.throttle(key, interval, burst).await,
            Store::Redis(s) => s.throttle(key, interval, burst).await,
        }
    }

    async fn hold(
        &self,
        key: &str,
        member: &str,
        until: u64,
        max: u32,
    ) -> Result<Hold, StoreError> {
        match self {
            Store::Memory(s) => s.hold(key, member, until, max).await,
            Store::Redis(s) => s.hold(key, member, until, max).await,
        }
    }

    async fn release(&self, key: &str, member: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.release(key, member).await,
            Store::Redis(s) => s.release(key, member).await,
        }
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.forget(key).await,
            Store::Redis(s) => s.forget(key).await,
        }
    }

    async fn peek(&self, key: &str) -> Result<Taken, StoreError> {
        match self {
            Store::Memory(s) => s.peek(key).await,
            Store::Redis(s) => s.peek(key).await,
        }
    }

    async fn revoke(&self, key: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.revoke(key).await,
            Store::Redis(s) => s.revoke(key).await,
        }
    }

    async fn mark_revoked(&self, key: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.mark_revoked(key).await,
            Store::Redis(s) => s.mark_revoked(key).await,
        }
    }

    async fn revoke_user(
        &self,
        key: &str,
        field: &str,
        at: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.revoke_user(key, field, at, ttl).await,
            Store::Redis(s) => s.revoke_user(key, field, at, ttl).await,
        }
    }

    async fn not_before(&self, key: &str, audience: &str) -> Result<u64, StoreError> {
        match self {
            Store::Memory(s) => s.not_before(key, audience).await,
            Store::Redis(s) => s.not_before(key, audience).await,
        }
    }

    async fn publish(
        &self,
        key: &str,
        event: &StoredEvent,
        backlog: usize,
    ) -> Result<EventId, StoreError> {
        match self {
            Store::Memory(s) => s.publish(key, event, backlog).await,
            Store::Redis(s) => s.publish(key, event, backlog).await,
        }
    }

    async fn last_event(&self, key: &str) -> Result<EventId, StoreError> {
        match self {
            Store::Memory(s) => s.last_event(key).await,
            Store::Redis(s) => s.last_event(key).await,
        }
    }

    async fn events(
        &self,
        key: &str,
        after: EventId,
        wait: Duration,
        max: usize,
    ) -> Result<EventBatch, StoreError> {
        match self {
            Store::Memory(s) => s.events(key, after, wait, max).await,
            Store::Redis(s) => s.events(key, after, wait, max).await,
        }
    }
}

/// A time as unix milliseconds (0 before the epoch).
pub(crate) fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Unix milliseconds now.
pub(crate) fn unix_ms_now() -> u64 {
    unix_ms(std::time::SystemTime::now())
}

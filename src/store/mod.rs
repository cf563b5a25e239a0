//! Where sealed tickets live until they are redeemed or expire.
//!
//! Two backends behind one trait: the in-memory store (the default, for one
//! process) and Redis. The core holds a [`Store`], a closed enum, so no
//! generic leaks into it. Both pass the same behavioural suite (`tests/api`).

mod memory;
mod redis;

pub(crate) use memory::MemoryStore;
pub(crate) use redis::{RedisSettings, RedisStore, RedisTopology, check_url};

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
    Memory { max_entries: usize },
    Redis(RedisSettings),
}

/// A ticket as stored: two sealed records. `fresh` is what the first redeem
/// gets; `used` is all that is kept once it has: enough to log a reuse with
/// its user (docs/contract.md), and nothing that opens as a fresh ticket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Records<'a> {
    pub(crate) fresh: &'a [u8],
    pub(crate) used: &'a [u8],
}

/// What an atomic take found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The fresh record; only the used record is left in the store now.
    Fresh(Vec<u8>),
    /// The ticket was redeemed before: its used record.
    Used(Vec<u8>),
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
            StoreError::Full | StoreError::Other(_) => "other",
        }
    }
}

/// The operations the ticket service needs; each touches exactly one key.
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
            StoreBackend::Memory { max_entries } => {
                let shared = Arc::new(MemoryStore::new(*max_entries));
                Ok((0..workers)
                    .map(|_| Store::Memory(shared.clone()))
                    .collect())
            }
            StoreBackend::Redis(r) => {
                let mut per_worker = r.clone();
                per_worker.max_in_flight = r.max_in_flight.div_ceil(workers).max(1);
                (0..workers)
                    .map(|_| RedisStore::new(&per_worker).map(|s| Store::Redis(Box::new(s))))
                    .collect()
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

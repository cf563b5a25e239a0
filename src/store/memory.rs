//! The in-memory store: a map plus an expiry heap behind one mutex.
//!
//! Every operation first drops what has expired (the heap pops them in
//! order, so this costs O(log n) per expired entry), then does its work.
//! A used entry keeps its original expiry, like Redis `KEEPTTL`, and keeps
//! only the used record, like the Redis store.
//! The store has a budget: a number of entries and an estimate of the
//! bytes they take ([`entry_cost`]); a full store refuses to mint, and says
//! so to `/readyz` (its `ping` fails).

use super::{
    EventBatch, EventId, Hold, Records, StoreError, StoredEvent, Taken, Throttle, TicketStore,
    unix_ms_now,
};
use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one ticket costs, estimated from what it holds: its key twice (the
/// map's and the expiry heap's), its two records, and [`ENTRY_OVERHEAD`].
pub(crate) fn entry_cost(key: &str, fresh: usize, used: usize) -> usize {
    2 * key.len() + fresh + used + ENTRY_OVERHEAD
}

/// Per ticket, besides its bytes: the map slot (key and entry, 96 bytes,
/// at a load of 7/8 to 7/16 as the table doubles), the heap slot (40 bytes,
/// up to half unused), and four allocations rounded up to the allocator's
/// size classes. Checked against the process's resident memory by
/// `tests/api/binary.rs` (`the_memory_budget_is_an_honest_estimate`).
pub(crate) const ENTRY_OVERHEAD: usize = 256;

/// Room a typical ticket needs: a store with less left is full.
const TYPICAL_ENTRY: usize = 1024;

/// How much of its budget the store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
    pub(crate) max_entries: usize,
    pub(crate) max_bytes: usize,
    /// The cost of the last ticket refused for want of room, until a
    /// mint succeeds again.
    refused: usize,
}

impl Usage {
    /// Would a typical mint, or the last one refused, be refused now?
    pub(crate) fn full(&self) -> bool {
        self.entries >= self.max_entries
            || self.bytes + TYPICAL_ENTRY.max(self.refused) > self.max_bytes
    }
}

struct Entry {
    /// `None` once redeemed or revoked.
    fresh: Option<Vec<u8>>,
    used: Vec<u8>,
    revoked: bool,
    expires: Instant,
}

impl Entry {
    fn state(&self) -> Taken {
        match &self.fresh {
            Some(fresh) => Taken::Fresh(fresh.clone()),
            None if self.revoked => Taken::Revoked(self.used.clone()),
            None => Taken::Used(self.used.clone()),
        }
    }
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// The estimated bytes of `map`'s entries ([`entry_cost`]).
    bytes: usize,
    /// See [`Usage::refused`].
    refused: usize,
    by_expiry: BinaryHeap<Reverse<(Instant, String)>>,
    /// Limiter key → its theoretical arrival time (unix ms).
    limiters: HashMap<String, u64>,
    /// Live-ticket set → (until, member), unix ms.
    live: HashMap<String, Vec<(u64, String)>>,
    /// Per-user key → (not-before time per audience or `*`, until when
    /// the key lives), unix ms.
    not_before: HashMap<String, (HashMap<String, u64>, u64)>,
    /// Event log key → its events, oldest first.
    logs: HashMap<String, VecDeque<StoredEvent>>,
    /// Sweep `limiters` (`live`, `not_before`) once it holds more keys
    /// than this.
    sweep_limiters_above: usize,
    sweep_live_above: usize,
    sweep_not_before_above: usize,
}

/// Past this many limiter keys or live sets, a call first drops those that
/// no longer limit anything. After a sweep the threshold is twice what is
/// left (at least this), so that many keys still in use cost one sweep per
/// doubling, not one per call.
const SWEEP_ABOVE: usize = 10_000;

/// Drop the entries of `map` that `keep` refuses, when it has grown past
/// `*above`; then move `*above` to twice what is left.
fn sweep<V>(
    map: &mut HashMap<String, V>,
    above: &mut usize,
    keep: impl FnMut(&String, &mut V) -> bool,
) {
    if map.len() > (*above).max(SWEEP_ABOVE) {
        map.retain(keep);
        *above = (map.len() * 2).max(SWEEP_ABOVE);
    }
}

impl Inner {
    fn purge_expired(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.by_expiry.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.by_expiry.pop() else {
                break;
            };
            // Only remove the entry this heap item was pushed for.
            if self.map.get(&key).is_some_and(|e| e.expires == at)
                && let Some(e) = self.map.remove(&key)
            {
                let fresh = e.fresh.as_ref().map_or(0, Vec::len);
                self.bytes = self
                    .bytes
                    .saturating_sub(entry_cost(&key, fresh, e.used.len()));
            }
        }
    }
}

pub(crate) struct MemoryStore {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
    /// Wakes readers of the event logs when an event is published.
    published: tokio::sync::Notify,
}

impl MemoryStore {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            max_entries,
            max_bytes,
            published: tokio::sync::Notify::new(),
        }
    }

    /// The events of `key` after `after` (at most `max`), and whether
    /// `after` is still in the log.
    fn read_events(&self, key: &str, after: EventId, max: usize) -> EventBatch {
        let inner = self.lock();
        let Some(log) = inner.logs.get(key) else {
            return EventBatch {
                gap: after != EventId::ZERO,
                events: Vec::new(),
            };
        };
        // Ids only grow: the first one past `after` is found by bisection.
        let start = log.partition_point(|e| e.id <= after);
        let kept = after == EventId::ZERO || (start > 0 && log[start - 1].id == after);
        EventBatch {
            gap: !kept,
            events: log.iter().skip(start).take(max).cloned().collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written
        // (every mutation is a single insert, remove or take), so keep
        // serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// The budget and its use, after dropping what has expired.
    pub(crate) fn usage(&self) -> Usage {
        let mut inner = self.lock();
        inner.purge_expired(Instant::now());
        Usage {
            entries: inner.map.len(),
            bytes: inner.bytes,
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            refused: inner.refused,
        }
    }
}

impl TicketStore for MemoryStore {
    async fn put_new(
        &self,
        key: &str,
        records: Records<'_>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let expires = now + ttl;
        let cost = entry_cost(key, records.fresh.len(), records.used.len());
        let inner = &mut *self.lock();
        inner.purge_expired(now);
        if inner.map.len() >= self.max_entries || inner.bytes + cost > self.max_bytes {
            inner.refused = cost;
            return Err(StoreError::Full);
        }
        match inner.map.entry(key.to_owned()) {
            MapEntry::Occupied(_) => Ok(false),
            MapEntry::Vacant(slot) => {
                inner.bytes += cost;
                inner.refused = 0;
                slot.insert(Entry {
                    fresh: Some(records.fresh.to_vec()),
                    used: records.used.to_vec(),
                    revoked: false,
                    expires,
                });
                inner.by_expiry.push(Reverse((expires, key.to_owned())));
                Ok(true)
            }
        }
    }

    async fn take(&self, key: &str) -> Result<Taken, StoreError> {
        let now = Instant::now();
        let inner = &mut *self.lock();
        inner.purge_expired(now);
        Ok(match inner.map.get_mut(key) {
            None => Taken::Missing,
            Some(entry) if entry.expires <= now => Taken::Missing,
            Some(entry) => match entry.fresh.take() {
                Some(fresh) => {
                    inner.bytes = inner.bytes.saturating_sub(fresh.len());
                    Taken::Fresh(fresh)
                }
                None => entry.state(),
            },
        })
    }

    async fn peek(&self, key: &str) -> Result<Taken, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.purge_expired(now);
        Ok(match inner.map.get(key) {
            Some(entry) if entry.expires > now => entry.state(),
            _ => Taken::Missing,
        })
    }

    async fn revoke(&self, key: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let inner = &mut *self.lock();
        inner.purge_expired(now);
        Ok(match inner.map.get_mut(key) {
            Some(entry) if entry.expires > now && entry.fresh.is_some() => {
                let freed = entry.fresh.take().map_or(0, |f| f.len());
                entry.revoked = true;
                inner.bytes = inner.bytes.saturating_sub(freed);
                true
            }
            _ => false,
        })
    }

    async fn mark_revoked(&self, key: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let inner = &mut *self.lock();
        inner.purge_expired(now);
        Ok(match inner.map.get_mut(key) {
            Some(e) if e.expires > now && e.fresh.is_none() && !e.revoked => {
                e.revoked = true;
                true
            }
            _ => false,
        })
    }

    async fn revoke_user(
        &self,
        key: &str,
        field: &str,
        at: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = unix_ms_now();
        let until = now + ttl.as_millis() as u64;
        let inner = &mut *self.lock();
        sweep(
            &mut inner.not_before,
            &mut inner.sweep_not_before_above,
            |_, (_, until)| *until > now,
        );
        let (fields, expires) = inner.not_before.entry(key.to_owned()).or_default();
        if *expires <= now {
            fields.clear();
        }
        *expires = (*expires).max(until);
        let at_least = fields.entry(field.to_owned()).or_default();
        *at_least = (*at_least).max(at);
        Ok(())
    }

    async fn not_before(&self, key: &str, audience: &str) -> Result<u64, StoreError> {
        let inner = self.lock();
        Ok(match inner.not_before.get(key) {
            Some((fields, until)) if *until > unix_ms_now() => {
                let at = |f: &str| fields.get(f).copied().unwrap_or(0);
                at("*").max(at(audience))
            }
            _ => 0,
        })
    }

    async fn publish(
        &self,
        key: &str,
        event: &StoredEvent,
        backlog: usize,
    ) -> Result<EventId, StoreError> {
        let now = unix_ms_now();
        let id = {
            let mut inner = self.lock();
            let log = inner.logs.entry(key.to_owned()).or_default();
            // Like a stream's ids: the clock, or one past the last id when
            // the clock has not moved on (or went back).
            let id = match log.back() {
                Some(last) if last.id.ms >= now => EventId {
                    ms: last.id.ms,
                    seq: last.id.seq + 1,
                },
                _ => EventId { ms: now, seq: 0 },
            };
            log.push_back(StoredEvent {
                id,
                ..event.clone()
            });
            while log.len() > backlog.max(1) {
                log.pop_front();
            }
            id
        };
        self.published.notify_waiters();
        Ok(id)
    }

    async fn last_event(&self, key: &str) -> Result<EventId, StoreError> {
        let inner = self.lock();
        Ok(inner
            .logs
            .get(key)
            .and_then(|log| log.back())
            .map_or(EventId::ZERO, |e| e.id))
    }

    async fn events(
        &self,
        key: &str,
        after: EventId,
        wait: Duration,
        max: usize,
    ) -> Result<EventBatch, StoreError> {
        // Registered before the look, so a publish in between still wakes.
        let published = self.published.notified();
        tokio::pin!(published);
        published.as_mut().enable();
        let batch = self.read_events(key, after, max);
        if !batch.events.is_empty() || wait.is_zero() {
            return Ok(batch);
        }
        let _ = tokio::time::timeout(wait, published).await;
        Ok(EventBatch {
            gap: batch.gap,
            ..self.read_events(key, after, max)
        })
    }

    /// Fails while the store is full: it cannot take a mint.
    async fn ping(&self) -> Result<(), StoreError> {
        if self.usage().full() {
            Err(StoreError::Full)
        } else {
            Ok(())
        }
    }

    async fn throttle(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Throttle, StoreError> {
        let now = unix_ms_now();
        let interval = interval.as_millis() as u64;
        let tolerance = interval * u64::from(burst);
        let inner = &mut *self.lock();
        sweep(
            &mut inner.limiters,
            &mut inner.sweep_limiters_above,
            |_, tat| *tat > now,
        );
        let tat = inner.limiters.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        let allow_at = new_tat.saturating_sub(tolerance);
        if allow_at > now {
            return Ok(Throttle::Wait(Duration::from_millis(allow_at - now)));
        }
        inner.limiters.insert(key.to_owned(), new_tat);
        let remaining = (tolerance - (new_tat - now)) / interval.max(1);
        Ok(Throttle::Allowed {
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        })
    }

    async fn hold(
        &self,
        key: &str,
        member: &str,
        until: u64,
        max: u32,
    ) -> Result<Hold, StoreError> {
        let now = unix_ms_now();
        let inner = &mut *self.lock();
        sweep(&mut inner.live, &mut inner.sweep_live_above, |_, set| {
            set.iter().any(|(u, _)| *u > now)
        });
        let set = inner.live.entry(key.to_owned()).or_default();
        set.retain(|(u, _)| *u > now);
        if set.len() >= max as usize {
            let first = set.iter().map(|(u, _)| *u).min().unwrap_or(now);
            return Ok(Hold::Full(Duration::from_millis(first.saturating_sub(now))));
        }
        set.push((until, member.to_owned()));
        Ok(Hold::Held)
    }

    async fn release(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(set) = inner.live.get_mut(key) {
            set.retain(|(_, m)| m != member);
            if set.is_empty() {
                inner.live.remove(key);
            }
        }
        Ok(())
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        let inner = &mut *self.lock();
        inner.live.remove(key);
        inner.limiters.remove(key);
        inner.not_before.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    fn records(fresh: &'static [u8]) -> Records<'static> {
        Records {
            fresh,
            used: b"u",
            not_before_key: None,
        }
    }

    #[tokio::test]
    async fn take_returns_the_fresh_record_once_then_the_used_one() {
        let s = MemoryStore::new(10, 1 << 20);
        assert!(s.put_new("k", records(b"v"), LONG).await.unwrap());
        assert!(!s.put_new("k", records(b"w"), LONG).await.unwrap());
        assert_eq!(s.take("k").await.unwrap(), Taken::Fresh(b"v".to_vec()));
        assert_eq!(s.take("k").await.unwrap(), Taken::Used(b"u".to_vec()));
        assert_eq!(s.take("other").await.unwrap(), Taken::Missing);
        // Taking an unknown key created nothing.
        assert_eq!(s.len(), 1);
    }

    #[tokio::test]
    async fn entries_and_markers_expire() {
        let s = MemoryStore::new(10, 1 << 20);
        let short = Duration::from_millis(30);
        s.put_new("a", records(b"v"), short).await.unwrap();
        s.put_new("b", records(b"v"), short).await.unwrap();
        assert_eq!(s.take("b").await.unwrap(), Taken::Fresh(b"v".to_vec()));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(s.take("a").await.unwrap(), Taken::Missing);
        assert_eq!(s.take("b").await.unwrap(), Taken::Missing);
        assert_eq!(s.len(), 0);
    }

    #[tokio::test]
    async fn a_full_store_refuses_until_entries_expire() {
        let s = MemoryStore::new(2, 1 << 20);
        s.put_new("a", records(b"v"), Duration::from_millis(30))
            .await
            .unwrap();
        s.put_new("b", records(b"v"), LONG).await.unwrap();
        assert!(matches!(
            s.put_new("c", records(b"v"), LONG).await,
            Err(StoreError::Full)
        ));
        // Redeemed entries still count until they expire.
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(s.put_new("c", records(b"v"), LONG).await.unwrap());
    }

    #[tokio::test]
    async fn the_byte_budget_counts_what_each_ticket_holds_until_it_goes() {
        let cost = entry_cost("a", 5, 1);
        let s = MemoryStore::new(10, 2 * cost);
        s.put_new("a", records(b"fresh"), LONG).await.unwrap();
        assert_eq!(s.usage().bytes, cost);
        s.put_new("b", records(b"fresh"), Duration::from_millis(30))
            .await
            .unwrap();
        assert!(s.usage().full());
        assert!(matches!(
            s.put_new("c", records(b"fresh"), LONG).await,
            Err(StoreError::Full)
        ));
        assert!(matches!(s.ping().await, Err(StoreError::Full)));
        // A redeem frees the fresh record; a revocation too.
        s.take("a").await.unwrap();
        assert_eq!(s.usage().bytes, 2 * cost - 5);
        assert!(s.revoke("b").await.unwrap());
        assert_eq!(s.usage().bytes, 2 * cost - 10);
        // Expiry frees the rest.
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(s.usage().bytes, cost - 5);
        assert!(s.ping().await.is_ok() || s.usage().full());
    }

    #[tokio::test]
    async fn a_limiter_allows_a_burst_then_one_per_interval() {
        let s = MemoryStore::new(10, 1 << 20);
        let interval = Duration::from_millis(100);
        assert_eq!(
            s.throttle("k", interval, 3).await.unwrap(),
            Throttle::Allowed { remaining: 2 }
        );
        s.throttle("k", interval, 3).await.unwrap();
        assert_eq!(
            s.throttle("k", interval, 3).await.unwrap(),
            Throttle::Allowed { remaining: 0 }
        );
        match s.throttle("k", interval, 3).await.unwrap() {
            Throttle::Wait(d) => assert!(d <= interval && d > Duration::ZERO, "{d:?}"),
            other => panic!("{other:?}"),
        }
        // Other keys are their own.
        assert!(matches!(
            s.throttle("other", interval, 3).await.unwrap(),
            Throttle::Allowed { .. }
        ));
        tokio::time::sleep(interval + Duration::from_millis(10)).await;
        assert!(matches!(
            s.throttle("k", interval, 3).await.unwrap(),
            Throttle::Allowed { .. }
        ));
    }

    #[tokio::test]
    async fn a_live_set_holds_up_to_its_cap_until_members_go() {
        let s = MemoryStore::new(10, 1 << 20);
        let later = unix_ms_now() + 60_000;
        assert_eq!(s.hold("u", "a", later, 2).await.unwrap(), Hold::Held);
        assert_eq!(s.hold("u", "b", later, 2).await.unwrap(), Hold::Held);
        assert!(matches!(
            s.hold("u", "c", later, 2).await.unwrap(),
            Hold::Full(_)
        ));
        s.release("u", "a").await.unwrap();
        assert_eq!(s.hold("u", "c", later, 2).await.unwrap(), Hold::Held);
        // Expired members do not count.
        let soon = unix_ms_now() + 30;
        assert_eq!(s.hold("v", "x", soon, 1).await.unwrap(), Hold::Held);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(s.hold("v", "y", later, 1).await.unwrap(), Hold::Held);
    }

    #[tokio::test]
    async fn concurrent_takes_have_exactly_one_winner() {
        let s = std::sync::Arc::new(MemoryStore::new(10, 1 << 20));
        s.put_new("k", records(b"v"), LONG).await.unwrap();
        let mut handles = Vec::new();
        for _ in 0..16 {
            let s = s.clone();
            handles.push(tokio::spawn(async move { s.take("k").await.unwrap() }));
        }
        let mut wins = 0;
        for h in handles {
            if matches!(h.await.unwrap(), Taken::Fresh(_)) {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
    }
}

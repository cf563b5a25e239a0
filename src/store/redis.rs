//! The Redis store: a single node, a Redis Cluster, or a master found through
//! Sentinel.
//!
//! * mint: `SET key value NX EX ttl` — never overwrites. The value holds
//!   both sealed records of the ticket: `0x02 || len(fresh) as u16 BE ||
//!   fresh || used`, or, naming the key of its user's not-before times (in
//!   the clear: a keyed fingerprint, like every key name), `0x03 ||
//!   len(name) as u8 || name || len(fresh) as u16 BE || fresh || used`;
//! * redeem: one Lua script (atomic in Redis) that returns the old value and,
//!   if it is fresh, replaces it with `0x00 || used`, keeping the TTL; for a
//!   value that names a not-before key, outside a Cluster, it returns that
//!   key's times too, read in the same step (a Cluster would need the key in
//!   the ticket's slot: there the redeemer reads them in a second call). The
//!   fresh record is gone from Redis from then on, so no edit of a used value
//!   can bring it back (the used record is sealed as such and never opens as
//!   a fresh one), while the used record still names the user of a reuse.
//!   Reuse (`0x00`) is told apart from unknown (nil) for the rest of the
//!   ticket's life. The script only writes a key it has just read, so no key
//!   is ever created for an unknown ticket.
//!
//! In a Cluster every call touches exactly one key, so none is cross-slot
//! (elsewhere the take may also read the not-before key its value names).
//! Connections are made lazily, so wsticket starts (and reports
//! not ready) while Redis is down. Every command runs under a timeout; a
//! command whose outcome is unknown is an error and is never retried here: a
//! retried redeem could report a ticket it consumed as reused.
//!
//! * single node: a `ConnectionManager`, which reconnects by itself;
//! * Cluster: the crate's cluster connection, which follows slot moves and
//!   failovers by itself;
//! * Sentinel: a multiplexed connection to the master Sentinel names. The
//!   crate does not follow a failover, so any failure drops the connection
//!   and the next call asks Sentinel for the master again (a demoted master
//!   answers writes with `READONLY`, which is such a failure).

use super::{
    EventBatch, EventId, Hold, NotBeforeRead, Records, StoreError, StoredEvent, Taken, Throttle,
    TicketStore,
};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::io::tcp::socket2::TcpKeepalive;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, Value,
};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio::sync::{Mutex, RwLock};

/// First byte of a stored value: a fresh ticket (both records), or a used
/// or revoked one (the used record alone).
const FRESH: u8 = 2;
/// A fresh ticket whose value names its user's not-before key.
const FRESH_NAMED: u8 = 3;
const USED: u8 = 0;
const REVOKED: u8 = 1;

/// KEYS[1]: the ticket's store key; ARGV[1]: `1` to read the not-before
/// key a fresh value names (never in a Cluster: another slot). Returns the
/// value found (nil if none), or `{value, not-before key, its HGETALL}`;
/// a fresh value is replaced by its used record.
const TAKE_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v or #v < 3 then return v end
local t, at, nb = string.byte(v, 1), 2, nil
if t == 3 then
  local m = string.byte(v, 2)
  nb, at = string.sub(v, 3, 2 + m), 3 + m
elseif t ~= 2 then
  return v
end
if #v < at + 1 then return v end
local n = string.byte(v, at) * 256 + string.byte(v, at + 1)
redis.call('SET', KEYS[1], '\0' .. string.sub(v, at + 2 + n), 'KEEPTTL')
if nb and ARGV[1] == '1' then
  return {v, nb, redis.call('HGETALL', nb)}
end
return v
"#;

/// KEYS[1]: the ticket's store key. A fresh value is replaced by its used
/// record marked revoked, keeping the TTL; returns 1 then, else 0.
const REVOKE_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v or #v < 3 then return 0 end
local t, at = string.byte(v, 1), 2
if t == 3 then
  at = 3 + string.byte(v, 2)
elseif t ~= 2 then
  return 0
end
if #v < at + 1 then return 0 end
local n = string.byte(v, at) * 256 + string.byte(v, at + 1)
redis.call('SET', KEYS[1], '\1' .. string.sub(v, at + 2 + n), 'KEEPTTL')
return 1
"#;

/// KEYS[1]: the ticket's store key. A used value is marked revoked,
/// keeping the TTL; returns 1 then, else 0.
const MARK_REVOKED_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and #v >= 1 and string.byte(v, 1) == 0 then
  redis.call('SET', KEYS[1], '\1' .. string.sub(v, 2), 'KEEPTTL')
  return 1
end
return 0
"#;

/// KEYS[1]: a user's not-before hash; ARGV: the field (an audience or
/// `*`), the time (unix ms), the least time to live (ms). Never moves a
/// time back, never shortens the key's life.
const REVOKE_USER_SCRIPT: &str = r#"
local at = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if not cur or cur < at then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"#;

/// The generic cell rate algorithm on one key, on Redis' clock (the same
/// for every replica). KEYS[1]: the limiter key; ARGV: the interval (ms)
/// and the burst. Returns {1, remaining} or {0, wait ms}.
const THROTTLE_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - tolerance - now
if wait > 0 then return {0, wait} end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, math.floor((tolerance - (new_tat - now)) / interval)}
"#;

/// A capped set of live tickets. KEYS[1]: the set; ARGV: the member, until
/// when it counts (unix ms), the cap. Returns {1, 0} or {0, ms until the
/// first member expires}.
const HOLD_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(0, tonumber(first[2]) - now)}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return {1, 0}
"#;

/// The stored value of a fresh ticket.
fn encode(records: Records<'_>) -> Result<Vec<u8>, StoreError> {
    let len = u16::try_from(records.fresh.len())
        .map_err(|_| StoreError::Other("a fresh record over 64 KiB".into()))?;
    // A name too long to state in a byte is left out: the redeemer then
    // reads the times in a call of their own.
    let named = records
        .not_before_key
        .and_then(|k| Some((k, u8::try_from(k.len()).ok()?)));
    let mut v = Vec::with_capacity(
        4 + named.map_or(0, |(k, _)| k.len()) + records.fresh.len() + records.used.len(),
    );
    match named {
        Some((key, n)) => {
            v.push(FRESH_NAMED);
            v.push(n);
            v.extend_from_slice(key.as_bytes());
        }
        None => v.push(FRESH),
    }
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(records.fresh);
    v.extend_from_slice(records.used);
    Ok(v)
}

/// Where a fresh value's fresh record is, if `v` is one.
fn fresh_record(v: &[u8]) -> Option<std::ops::Range<usize>> {
    let at = match *v.first()? {
        FRESH => 1,
        FRESH_NAMED => 2 + usize::from(*v.get(1)?),
        _ => return None,
    };
    let len = v.get(at..at + 2)?;
    let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let fresh = at + 2..at + 2 + n;
    (v.len() >= fresh.end).then_some(fresh)
}

/// What the take script returned, as the script read it.
fn decode(old: Option<Vec<u8>>) -> Taken {
    let Some(mut v) = old else {
        return Taken::Missing;
    };
    match v.first() {
        Some(&FRESH | &FRESH_NAMED) => match fresh_record(&v) {
            Some(fresh) => {
                v.truncate(fresh.end);
                v.drain(..fresh.start);
                Taken::Fresh(v)
            }
            // Cut short: not written by wsticket.
            None => Taken::Missing,
        },
        Some(&USED) => {
            v.remove(0);
            Taken::Used(v)
        }
        Some(&REVOKED) => {
            v.remove(0);
            Taken::Revoked(v)
        }
        // Not written by this version of wsticket.
        _ => Taken::Missing,
    }
}

/// The take script's reply: the value it found, and the not-before times
/// it read, if it read any.
fn take_reply(reply: Value) -> redis::RedisResult<(Option<Vec<u8>>, Option<NotBeforeRead>)> {
    let Value::Array(items) = reply else {
        return Ok((Option::<Vec<u8>>::from_redis_value(reply)?, None));
    };
    let Ok([old, key, fields]) = <[Value; 3]>::try_from(items) else {
        return Err(RedisError::from((
            redis::ErrorKind::Client,
            "the take script answered an array of another length",
        )));
    };
    let flat = Vec::<String>::from_redis_value(fields)?;
    let times = flat
        .chunks_exact(2)
        .filter_map(|pair| Some((pair[0].clone(), pair[1].parse().ok()?)))
        .collect();
    let read = NotBeforeRead {
        key: String::from_redis_value(key)?,
        times,
    };
    Ok((Option::<Vec<u8>>::from_redis_value(old)?, Some(read)))
}

/// Where Redis is. URLs and passwords are secrets: a URL may carry a
/// password, and `Debug` must never print one.
#[derive(Debug, Clone)]
pub(crate) enum RedisTopology {
    Single {
        url: SecretString,
    },
    Cluster {
        urls: Vec<SecretString>,
        /// Overrides a password in the URLs (kept out of them so that the
        /// URLs can sit in a plain config file).
        password: Option<SecretString>,
    },
    Sentinel {
        master_name: String,
        urls: Vec<SecretString>,
        db: i64,
        /// The master's.
        password: Option<SecretString>,
        /// The sentinels' own (`requirepass` in sentinel.conf), kept out
        /// of the URLs like the Cluster's.
        sentinel_password: Option<SecretString>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct RedisSettings {
    pub(crate) topology: RedisTopology,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// Store operations allowed in flight at once; more fail at once with
    /// `Busy` instead of queueing behind a stalled Redis.
    pub(crate) max_in_flight: usize,
    /// `store.redeem_replicas`, when above 0.
    pub(crate) redeem_replicas: Option<RedeemReplicas>,
}

/// A redeem answers 200 only once `replicas` replicas confirmed its consume
/// (`WAIT`), within `timeout`; its consumes run on `connections` connections
/// of their own (per process), one at a time each, since `WAIT` holds the
/// connection it runs on: nothing else queues behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RedeemReplicas {
    pub(crate) replicas: u32,
    pub(crate) timeout: Duration,
    pub(crate) connections: usize,
}

/// How the waiting pool makes a connection of its own.
enum Connector {
    Single {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster(ClusterClient),
    Sentinel {
        client: Mutex<SentinelClient>,
        config: AsyncConnectionConfig,
    },
}

/// The connections of the consumes that wait for replicas.
struct WaitPool {
    settings: RedeemReplicas,
    connector: Connector,
    /// `None` until first used, and again after a failure.
    slots: Vec<Mutex<Option<Conn>>>,
    /// One per slot: who holds one finds a slot free.
    free: tokio::sync::Semaphore,
    next: std::sync::atomic::AtomicUsize,
}

/// A connection slot of the waiting pool, held for one redeem.
type Checkout<'a> = (
    tokio::sync::SemaphorePermit<'a>,
    tokio::sync::MutexGuard<'a, Option<Conn>>,
);

impl WaitPool {
    /// A free connection slot, waiting at most `patience` for one (how many
    /// wait is bounded by `max_in_flight`, like every store call).
    async fn checkout(&self, patience: Duration) -> Option<Checkout<'_>> {
        let permit = tokio::time::timeout(patience, self.free.acquire())
            .await
            .ok()?
            .ok()?;
        let n = self.slots.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = (0..n).find_map(|i| self.slots[(start + i) % n].try_lock().ok())?;
        Some((permit, slot))
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        Ok(match &self.connector {
            Connector::Single { client, config } => Conn::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?,
            ),
            Connector::Cluster(client) => {
                Conn::Cluster(Box::pin(client.get_async_connection()).await?)
            }
            Connector::Sentinel { client, config } => {
                let mut client = client.lock().await;
                Conn::Sentinel(Box::pin(client.get_async_connection_with_config(config)).await?)
            }
        })
    }
}

/// A connection of any topology, usable wherever the crate wants one.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

enum Source {
    Single(ConnectionManager),
    Cluster {
        client: ClusterClient,
        conn: RwLock<Option<ClusterConnection>>,
    },
    Sentinel {
        client: Mutex<SentinelClient>,
        config: AsyncConnectionConfig,
        conn: RwLock<Option<MultiplexedConnection>>,
    },
}

pub(crate) struct RedisStore {
    source: Source,
    timeout: Duration,
    take: redis::Script,
    throttle: redis::Script,
    hold: redis::Script,
    revoke: redis::Script,
    mark_revoked: redis::Script,
    revoke_user: redis::Script,
    in_flight: tokio::sync::Semaphore,
    waiting: Option<WaitPool>,
}

/// Does the Redis client accept `url`? What is wrong, without the URL (it
/// may hold a password), when it does not.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    url.into_connection_info()
        .map(drop)
        .map_err(|e| format!("{:?}", e.kind()))
}

fn invalid(what: &str, e: &RedisError) -> String {
    format!("{what} is not valid ({:?})", e.kind())
}

/// TCP options for every connection to Redis (the crate's defaults leave
/// both off):
///
/// * `TCP_NODELAY`: commands from many requests share one pipelined
///   connection. With Nagle's algorithm a small write may wait for the ACK
///   of the previous one, which the other side may delay, holding up every
///   request in the batch. (The benchmark could not show a difference on
///   loopback; it is what Redis itself and its C client do.)
/// * keepalive: a peer that vanished without a reset (a node gone during a
///   failover, a dropped NAT entry) is noticed within about a minute instead
///   of never; until then every command on it only times out.
fn tcp_settings() -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
}

/// How to reach the master Sentinel names: TLS (verified) when the sentinels
/// are `rediss://` (the config allows no mix), so a TLS deployment never
/// falls back to plain TCP for the data.
fn sentinel_node_info(
    sentinel_urls: &[SecretString],
    db: i64,
    password: Option<&SecretString>,
) -> SentinelNodeConnectionInfo {
    let mut info = redis::RedisConnectionInfo::default().set_db(db);
    if let Some(p) = password {
        info = info.set_password(p.expose_secret());
    }
    let node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(info)
        .set_tcp_settings(tcp_settings());
    if sentinel_urls
        .iter()
        .all(|u| u.expose_secret().starts_with("rediss://"))
    {
        node.set_tls_mode(redis::TlsMode::Secure)
    } else {
        node
    }
}

/// A single node, with [`tcp_settings`].
fn single_client(url: &SecretString) -> Result<redis::Client, String> {
    let info = url
        .expose_secret()
        .into_connection_info()
        .map_err(|e| invalid("store.redis_url", &e))?
        .set_tcp_settings(tcp_settings());
    redis::Client::open(info).map_err(|e| invalid("store.redis_url", &e))
}

/// A Cluster client, with [`tcp_settings`] for every node it connects to.
fn cluster_client(
    urls: &[SecretString],
    password: Option<&SecretString>,
    settings: &RedisSettings,
) -> Result<ClusterClient, String> {
    let mut builder =
        ClusterClient::builder(urls.iter().map(|u| u.expose_secret())).tcp_settings(tcp_settings());
    if let Some(p) = password {
        builder = builder.password(p.expose_secret());
    }
    builder
        .connection_timeout(settings.connect_timeout)
        .response_timeout(settings.command_timeout)
        // Retries follow MOVED/ASK during slot moves and failovers. A retried
        // redeem can at worst find its own used mark and answer 409: never a
        // second success.
        .retries(2)
        .min_retry_wait(20)
        .max_retry_wait(200)
        .build()
        .map_err(|e| invalid("store.cluster_urls", &e))
}

/// The connection source of `settings`, and a connector that makes
/// connections of its own to the same place (for the waiting pool).
fn connect_to(settings: &RedisSettings) -> Result<(Source, Connector), String> {
    Ok(match &settings.topology {
        RedisTopology::Single { url } => {
            let client = single_client(url)?;
            // No response timeout of the crate's: every call already runs
            // under the command timeout (`with_conn`), and a second timer per
            // command costs CPU for nothing (a timed-out reply never made the
            // crate reconnect either: it is not an unrecoverable error).
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(None)
                .set_connection_timeout(Some(settings.connect_timeout))
                // Reconnect quickly; every request that finds the
                // connection broken starts a new attempt anyway.
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                .map_err(|e| invalid("the Redis connection", &e))?;
            (Source::Single(conn), Connector::Single { client, config })
        }
        RedisTopology::Cluster { urls, password } => {
            let client = cluster_client(urls, password.as_ref(), settings)?;
            let source = Source::Cluster {
                client: client.clone(),
                conn: RwLock::new(None),
            };
            (source, Connector::Cluster(client))
        }
        RedisTopology::Sentinel {
            master_name,
            urls,
            db,
            password,
            sentinel_password,
        } => {
            let node = sentinel_node_info(urls, *db, password.as_ref());
            let sentinels = urls
                .iter()
                .map(|u| {
                    let info = u.expose_secret().into_connection_info()?;
                    Ok(match sentinel_password {
                        Some(p) => {
                            let auth = info
                                .redis_settings()
                                .clone()
                                .set_password(p.expose_secret());
                            info.set_redis_settings(auth)
                        }
                        None => info,
                    })
                })
                .collect::<redis::RedisResult<Vec<_>>>()
                .map_err(|e| invalid("store.sentinel.urls", &e))?;
            let build = || {
                SentinelClient::build(
                    sentinels.clone(),
                    master_name.clone(),
                    Some(node.clone()),
                    SentinelServerType::Master,
                )
                .map_err(|e| invalid("store.sentinel", &e))
            };
            // Like the single node's: only the command timeout of `with_conn`.
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(settings.connect_timeout))
                .set_response_timeout(None);
            let source = Source::Sentinel {
                client: Mutex::new(build()?),
                config: config.clone(),
                conn: RwLock::new(None),
            };
            let connector = Connector::Sentinel {
                client: Mutex::new(build()?),
                config,
            };
            (source, connector)
        }
    })
}

impl RedisStore {
    /// Parses the addresses and prepares the connection; does not connect.
    pub(crate) fn new(settings: &RedisSettings) -> Result<Self, String> {
        let (source, _) = connect_to(settings)?;
        let waiting = match settings.redeem_replicas {
            None => None,
            Some(r) => {
                // Its connections wait for WAIT besides the command.
                let mut own = settings.clone();
                own.command_timeout += r.timeout;
                let (_, connector) = connect_to(&own)?;
                Some(WaitPool {
                    settings: r,
                    connector,
                    slots: (0..r.connections).map(|_| Mutex::new(None)).collect(),
                    free: tokio::sync::Semaphore::new(r.connections),
                    next: Default::default(),
                })
            }
        };
        Ok(RedisStore {
            source,
            timeout: settings.command_timeout,
            take: redis::Script::new(TAKE_SCRIPT),
            throttle: redis::Script::new(THROTTLE_SCRIPT),
            hold: redis::Script::new(HOLD_SCRIPT),
            revoke: redis::Script::new(REVOKE_SCRIPT),
            mark_revoked: redis::Script::new(MARK_REVOKED_SCRIPT),
            revoke_user: redis::Script::new(REVOKE_USER_SCRIPT),
            in_flight: tokio::sync::Semaphore::new(settings.max_in_flight),
            waiting,
        })
    }

    /// The current connection, made on first use (and, for Sentinel, again
    /// after a failure).
    async fn conn(&self) -> Result<Conn, RedisError> {
        match &self.source {
            Source::Single(c) => Ok(Conn::Single(c.clone())),
            Source::Cluster { client, conn } => {
                if let Some(c) = conn.read().await.clone() {
                    return Ok(Conn::Cluster(c));
                }
                let mut slot = conn.write().await;
                if let Some(c) = slot.clone() {
                    return Ok(Conn::Cluster(c));
                }
                // Boxed: connecting is rare, and its future is large; inline,
                // it would grow every store call's future (copied per request).
                let c = Box::pin(client.get_async_connection()).await?;
                *slot = Some(c.clone());
                Ok(Conn::Cluster(c))
            }
            Source::Sentinel {
                client,
                config,
                conn,
            } => {
                if let Some(c) = conn.read().await.clone() {
                    return Ok(Conn::Sentinel(c));
                }
                let mut slot = conn.write().await;
                if let Some(c) = slot.clone() {
                    return Ok(Conn::Sentinel(c));
                }
                let mut client = client.lock().await;
                // Boxed like the Cluster's: the Sentinel future is ~3 KiB.
                let c = Box::pin(client.get_async_connection_with_config(config)).await?;
                drop(client);
                tracing::info!("connected to the master named by Sentinel");
                *slot = Some(c.clone());
                Ok(Conn::Sentinel(c))
            }
        }
    }

    /// After a failure, forget a Sentinel master: it may have been demoted.
    async fn failed(&self) {
        if let Source::Sentinel { conn, .. } = &self.source {
            conn.write().await.take();
        }
    }

    /// Run `call` on a connection under the command timeout.
    async fn with_conn<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        // When Redis stalls, requests would pile up for the whole timeout
        // each; past the bound they fail at once instead.
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return Err(StoreError::Busy);
        };
        let attempt = async {
            let mut conn = self.conn().await?;
            call(&mut conn).await
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e)),
        };
        if result.is_err() {
            self.failed().await;
        }
        result
    }

    /// The take, then `WAIT replicas timeout`, in one pipeline on a
    /// connection of the waiting pool (in a Cluster, sent to the master of
    /// the key's slot, so that the WAIT covers the take). A fresh ticket
    /// counts as taken only once enough replicas confirmed it: otherwise
    /// `NotReplicated`, an unknown outcome (the master consumed it, and a
    /// failover may forget that). Finding it used or missing wrote nothing,
    /// so the WAIT does not matter then.
    async fn take_replicated(&self, pool: &WaitPool, key: &str) -> Result<Taken, StoreError> {
        let wanted = pool.settings.replicas;
        // Bounded like every store call; then queued for a connection (each
        // carries one WAIT at a time) for at most the command timeout.
        let Ok(_in_flight) = self.in_flight.try_acquire() else {
            return Err(StoreError::Busy);
        };
        let Some((_free, mut slot)) = pool.checkout(self.timeout).await else {
            return Err(StoreError::Busy);
        };
        let mut pipe = redis::pipe();
        // EVAL, not EVALSHA: a NOSCRIPT inside the pipeline would still run
        // the WAIT; Redis caches the compiled script by its digest anyway.
        pipe.cmd("EVAL").arg(TAKE_SCRIPT).arg(1).arg(key);
        pipe.cmd("WAIT")
            .arg(wanted)
            .arg(pool.settings.timeout.as_millis() as u64);
        // The connection is out of its slot while in use, and goes back only
        // after a whole answer: one that failed or timed out is dropped, and
        // the next redeem on this slot makes another.
        let attempt = async {
            let mut conn = match slot.take() {
                Some(conn) => conn,
                None => pool.connect().await?,
            };
            let replies = match &mut conn {
                Conn::Cluster(c) => {
                    use redis::cluster_routing::{Route, SingleNodeRoutingInfo, Slot, SlotAddr};
                    let master = Route::with_slot(Slot::for_key(key), SlotAddr::Master);
                    let route = SingleNodeRoutingInfo::SpecificNode(master);
                    c.route_pipeline(pipe, 0, 2, route).await?
                }
                other => pipe.query_async::<Vec<Value>>(other).await?,
            };
            let [old, acked] = <[Value; 2]>::try_from(replies).map_err(|_| {
                RedisError::from((
                    redis::ErrorKind::Client,
                    "a pipeline of two answered otherwise",
                ))
            })?;
            let answer = (
                Option::<Vec<u8>>::from_redis_value(old)?,
                u32::from_redis_value(acked)?,
            );
            *slot = Some(conn);
            Ok::<_, RedisError>(answer)
        };
        let result = match tokio::time::timeout(self.timeout + pool.settings.timeout, attempt).await
        {
            Err(_) => Err(StoreError::Timeout),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e)),
        };
        let (old, acked) = result?;
        match decode(old) {
            Taken::Fresh(_) if acked < wanted => Err(StoreError::NotReplicated { acked, wanted }),
            taken => Ok(taken),
        }
    }

    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.with_conn(async |c| cmd.query_async::<T>(c).await)
            .await
    }
}

fn classify(e: &RedisError) -> StoreError {
    // Messages of the redis crate name the kind and the server's reply, never
    // our arguments; still, keep only the kind.
    if e.is_timeout() {
        StoreError::Timeout
    } else if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.is_cluster_error()
    {
        StoreError::Connection(format!("{:?}", e.kind()))
    } else {
        StoreError::Other(format!("{:?}", e.kind()))
    }
}

impl TicketStore for RedisStore {
    async fn put_new(
        &self,
        key: &str,
        records: Records<'_>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(encode(records)?)
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1));
        let reply: Option<String> = self.run(&cmd).await?;
        Ok(reply.is_some())
    }

    async fn take(&self, key: &str) -> Result<Taken, StoreError> {
        if let Some(pool) = &self.waiting {
            return self.take_replicated(pool, key).await;
        }
        // EVALSHA, and EVAL only when Redis answers NOSCRIPT: the script did
        // not run then, so sending it again cannot consume a ticket twice.
        let invocation = self.take.key(key);
        let old: Option<Vec<u8>> = self
            .with_conn(async |c| invocation.invoke_async(c).await)
            .await?;
        Ok(decode(old))
    }

    fn reads_not_before_in_take(&self) -> bool {
        // A Cluster keeps the user's key in another slot; the waiting
        // pool's take is a pipeline of its own.
        !matches!(self.source, Source::Cluster { .. }) && self.waiting.is_none()
    }

    async fn take_reading_not_before(
        &self,
        key: &str,
    ) -> Result<(Taken, Option<NotBeforeRead>), StoreError> {
        if !self.reads_not_before_in_take() {
            return Ok((self.take(key).await?, None));
        }
        let mut invocation = self.take.key(key);
        invocation.arg(1);
        let reply: Value = self
            .with_conn(async |c| invocation.invoke_async(c).await)
            .await?;
        let (old, read) = take_reply(reply).map_err(|e| classify(&e))?;
        Ok((decode(old), read))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A cluster answers PING from any node; ask about the whole cluster.
        if let Source::Cluster { .. } = self.source {
            let info: String = self.run(&redis::cmd("CLUSTER").arg("INFO").clone()).await?;
            return if info.contains("cluster_state:ok") {
                Ok(())
            } else {
                Err(StoreError::Other("cluster_state is not ok".into()))
            };
        }
        let pong: String = self.run(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Other("unexpected PING reply".into()))
        }
    }

    async fn throttle(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Throttle, StoreError> {
        let mut invocation = self.throttle.key(key);
        invocation.arg(interval.as_millis() as u64).arg(burst);
        let (allowed, n): (u8, u64) = self
            .with_conn(async |c| invocation.invoke_async(c).await)
            .await?;
        Ok(if allowed == 1 {
            Throttle::Allowed {
                remaining: u32::try_from(n).unwrap_or(u32::MAX),
            }
        } else {
            Throttle::Wait(Duration::from_millis(n))
        })
    }

    async fn hold(
        &self,
        key: &str,
        member: &str,
        until: u64,
        max: u32,
    ) -> Result<Hold, StoreError> {
        let mut invocation = self.hold.key(key);
        invocation.arg(member).arg(until).arg(max);
        let (held, wait): (u8, u64) = self
            .with_conn(async |c| invocation.invoke_async(c).await)
            .await?;
        Ok(if held == 1 {
            Hold::Held
        } else {
            Hold::Full(Duration::from_millis(wait))
        })
    }

    async fn release(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let _: i64 = self.run(redis::cmd("ZREM").arg(key).arg(member)).await?;
        Ok(())
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        let _: i64 = self.run(redis::cmd("DEL").arg(key)).await?;
        Ok(())
    }

    async fn peek(&self, key: &str) -> Result<Taken, StoreError> {
        let v: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(key)).await?;
        Ok(decode(v))
    }

    async fn revoke(&self, key: &str) -> Result<bool, StoreError> {
        let invocation = self.revoke.key(key);
        let revoked: u8 = self
            .with_conn(async |c| invocation.invoke_async(c).await)
            .await?;
        Ok(revoked == 1)
    }

    async fn mark_revoked(&self, key: &str) -> Result<bool, StoreError> {
        let invocation = self.mark_revoked.key(key);
        let marked: u8 = self
            .with_conn(async |c| invocation.invoke_async(c).await)
            .await?;
        Ok(marked == 1)
    }

    async fn revoke_user(
        &self,
        key: &str,
        field: &str,
        at: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut invocation = self.revoke_user.key(key);
        invocation
            .arg(field)
            .arg(at)
            .arg(ttl.as_millis().max(1) as u64);
        let _: u8 = self
            .with_conn(async |c| invocation.invoke_async(c).await)
            .await?;
        Ok(())
    }

    async fn not_before(&self, key: &str, audience: &str) -> Result<u64, StoreError> {
        let times: Vec<Option<u64>> = self
            .run(redis::cmd("HMGET").arg(key).arg("*").arg(audience))
            .await?;
        Ok(times.into_iter().flatten().max().unwrap_or(0))
    }

    async fn publish(
        &self,
        key: &str,
        event: &StoredEvent,
        backlog: usize,
    ) -> Result<EventId, StoreError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(backlog.max(1))
            .arg("*");
        cmd.arg("t").arg(&event.kind).arg("d").arg(&event.data);
        if let Some(a) = &event.audience {
            cmd.arg("a").arg(a);
        }
        let id: String = self.run(&cmd).await?;
        EventId::parse(&id).ok_or_else(|| StoreError::Other("an XADD id of no known shape".into()))
    }

    async fn last_event(&self, key: &str) -> Result<EventId, StoreError> {
        let last: Vec<StreamEntry> = self
            .run(
                redis::cmd("XREVRANGE")
                    .arg(key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        Ok(last
            .first()
            .and_then(|(id, _)| EventId::parse(id))
            .unwrap_or(EventId::ZERO))
    }

    async fn events(
        &self,
        key: &str,
        after: EventId,
        wait: Duration,
        max: usize,
    ) -> Result<EventBatch, StoreError> {
        let after_s = after.to_string();
        if !wait.is_zero() {
            // A blocking read holds its connection (the caller's own) for
            // `wait`: kept inside the command timeout, and never BLOCK 0
            // (for ever).
            let block = wait.min(self.timeout / 2).as_millis().max(1) as u64;
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT").arg(max.max(1)).arg("BLOCK").arg(block);
            cmd.arg("STREAMS").arg(key).arg(&after_s);
            let read: Option<Vec<(String, Vec<StreamEntry>)>> = self.run(&cmd).await?;
            let entries = read.into_iter().flatten().flat_map(|(_, e)| e);
            return Ok(EventBatch {
                gap: false,
                events: entries.filter_map(stored_event).collect(),
            });
        }
        // Whether `after` is still kept, and what came after it: one
        // transaction, so no trim falls between the two.
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XRANGE").arg(key).arg(&after_s).arg(&after_s);
        pipe.cmd("XRANGE")
            .arg(key)
            .arg(format!("({after_s}"))
            .arg("+")
            .arg("COUNT")
            .arg(max.max(1));
        let (kept, entries): (Vec<StreamEntry>, Vec<StreamEntry>) =
            self.with_conn(async |c| pipe.query_async(c).await).await?;
        Ok(EventBatch {
            gap: after != EventId::ZERO && kept.is_empty(),
            events: entries.into_iter().filter_map(stored_event).collect(),
        })
    }
}

/// A stream entry as XRANGE and XREAD return it: its id and its fields and
/// values, flat.
type StreamEntry = (String, Vec<String>);

/// An event as [`RedisStore::publish`] wrote it; anything else is skipped.
fn stored_event((id, fields): StreamEntry) -> Option<StoredEvent> {
    let id = EventId::parse(&id)?;
    let (mut kind, mut audience, mut data) = (None, None, None);
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        match name.as_str() {
            "t" => kind = Some(value),
            "a" => audience = Some(value),
            "d" => data = Some(value),
            _ => {}
        }
    }
    let event = StoredEvent {
        id,
        kind: kind?,
        audience,
        data: data?,
    };
    // Written by wsticket, these are one line each; anything else (someone
    // else's write) could forge frames of the event stream.
    let one_line = |s: &str| !s.contains(['\r', '\n']);
    let ok = event
        .kind
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_')
        && one_line(&event.data)
        && event.audience.as_deref().is_none_or(one_line);
    ok.then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_decode_as_the_script_reads_them() {
        let v = encode(Records {
            fresh: b"FRESH",
            used: b"USED",
            not_before_key: None,
        })
        .unwrap();
        assert_eq!(&v[..3], &[2, 0, 5]);
        assert_eq!(decode(Some(v.clone())), Taken::Fresh(b"FRESH".to_vec()));
        // What the script leaves: the mark and the used record.
        assert_eq!(
            decode(Some(b"\0USED".to_vec())),
            Taken::Used(b"USED".to_vec())
        );
        assert_eq!(decode(Some(vec![0])), Taken::Used(vec![]));
        assert_eq!(decode(None), Taken::Missing);
        // Truncated, or of another shape (an old version's, or anyone's).
        assert_eq!(decode(Some(v[..6].to_vec())), Taken::Missing);
        assert_eq!(decode(Some(vec![2, 0])), Taken::Missing);
        assert_eq!(
            decode(Some(b"\x01USED".to_vec())),
            Taken::Revoked(b"USED".to_vec())
        );
        assert_eq!(decode(Some(b"\x03old".to_vec())), Taken::Missing);
        // Naming its user's not-before key.
        let named = encode(Records {
            fresh: b"FRESH",
            used: b"USED",
            not_before_key: Some("p:nb:abc"),
        })
        .unwrap();
        assert_eq!(named, b"\x03\x08p:nb:abc\x00\x05FRESHUSED");
        assert_eq!(decode(Some(named.clone())), Taken::Fresh(b"FRESH".to_vec()));
        for cut in 1..named.len() - 4 {
            assert_eq!(decode(Some(named[..cut].to_vec())), Taken::Missing, "{cut}");
        }
        // A name too long for its length byte is left out.
        let long = "k".repeat(256);
        let unnamed = encode(Records {
            fresh: b"FRESH",
            used: b"USED",
            not_before_key: Some(&long),
        })
        .unwrap();
        assert_eq!(unnamed, v);
    }

    #[test]
    fn the_take_script_reply_gives_the_value_and_the_times_it_read() {
        let bulk = |s: &[u8]| Value::BulkString(s.to_vec());
        assert_eq!(take_reply(Value::Nil).unwrap(), (None, None));
        assert_eq!(
            take_reply(bulk(b"\0USED")).unwrap(),
            (Some(b"\0USED".to_vec()), None)
        );
        let reply = Value::Array(vec![
            bulk(b"v"),
            bulk(b"p:nb:abc"),
            Value::Array(vec![
                bulk(b"*"),
                bulk(b"100"),
                bulk(b"chat"),
                bulk(b"300"),
                bulk(b"odd"),
                bulk(b"not a time"),
            ]),
        ]);
        let (old, read) = take_reply(reply).unwrap();
        assert_eq!(old, Some(b"v".to_vec()));
        let read = read.unwrap();
        assert_eq!(read.key, "p:nb:abc");
        assert_eq!(read.for_audience("chat"), 300);
        assert_eq!(read.for_audience("other"), 100);
        assert!(take_reply(Value::Array(vec![bulk(b"v")])).is_err());
    }

    #[test]
    fn the_master_is_reached_over_tls_when_the_sentinels_are() {
        // The crate keeps the mode private; its Debug output shows it.
        let tls = format!(
            "{:?}",
            sentinel_node_info(&["rediss://s1:26379".into()], 0, None)
        );
        assert!(tls.contains("tls_mode: Some(Secure)"), "{tls}");
        let plain = format!(
            "{:?}",
            sentinel_node_info(&["redis://s1:26379".into()], 0, None)
        );
        assert!(plain.contains("tls_mode: None"), "{plain}");
    }

    #[test]
    fn every_topology_connects_with_nodelay_and_keepalive() {
        let single = single_client(&"redis://127.0.0.1:6379/0".into()).unwrap();
        let tcp = single.get_connection_info().tcp_settings();
        assert!(tcp.nodelay());
        assert!(tcp.keepalive().is_some());
        // The crate keeps these private too; Debug shows them.
        let settings = RedisSettings {
            topology: RedisTopology::Single { url: "".into() },
            command_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_in_flight: 1,
            redeem_replicas: None,
        };
        let cluster = cluster_client(&["redis://127.0.0.1:7000".into()], None, &settings).unwrap();
        let sentinel = sentinel_node_info(&["redis://s1:26379".into()], 0, None);
        for debug in [format!("{cluster:?}"), format!("{sentinel:?}")] {
            assert!(debug.contains("nodelay: true"), "{debug}");
            assert!(debug.contains("keepalive: Some"), "{debug}");
        }
    }
}

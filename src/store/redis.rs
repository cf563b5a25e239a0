//! The Redis store.
//!
//! * mint: `SET key value NX EX ttl` — never overwrites;
//! * redeem: one Lua script (atomic in Redis) that returns the old value and,
//!   if it was not yet used, rewrites it with a leading `0x00` used mark and
//!   `KEEPTTL`, so reuse (mark) is told apart from unknown (nil) for the rest
//!   of the ticket's life. The sealed payload stays behind the mark so that a
//!   reuse can be logged with its user id. The script only writes a key it
//!   has just read, so no key is ever created for an unknown ticket.
//!
//! The connection is a `ConnectionManager`, which reconnects by itself, made
//! lazily so that wsticket starts (and reports not ready) while Redis is down.
//! Every command runs under a timeout. A command whose outcome is unknown is
//! reported as an error and never retried here: a retried redeem could
//! consume a ticket twice or report a consumed ticket as reused.

use super::{StoreError, Taken, TicketStore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, RedisError};
use std::fmt;
use std::time::Duration;

/// Sealed values start with a version byte of 1; a leading 0 marks a used
/// ticket.
const USED_MARK: u8 = 0;

/// KEYS[1]: the ticket's store key. Returns the value found (nil if none).
const TAKE_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and string.byte(v, 1) ~= 0 then
  redis.call('SET', KEYS[1], '\0' .. v, 'KEEPTTL')
end
return v
"#;

pub struct RedisSettings {
    pub url: String,
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisSettings")
            .field("url", &"***")
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
    take: redis::Script,
}

impl RedisStore {
    /// Parses the URL and prepares the connection; does not connect.
    pub fn new(settings: &RedisSettings) -> Result<Self, String> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| format!("store.redis_url is not a valid Redis URL ({:?})", e.kind()))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(settings.command_timeout))
            .set_connection_timeout(Some(settings.connect_timeout))
            // Reconnect quickly; every request that finds the connection
            // broken starts a new attempt anyway.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("cannot prepare the Redis connection ({:?})", e.kind()))?;
        Ok(RedisStore {
            conn,
            timeout: settings.command_timeout,
            take: redis::Script::new(TAKE_SCRIPT),
        })
    }

    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        within(self.timeout, cmd.query_async::<T>(&mut conn)).await
    }
}

async fn within<T>(
    limit: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Err(StoreError::Timeout),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
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
    {
        StoreError::Connection(format!("{:?}", e.kind()))
    } else {
        StoreError::Other(format!("{:?}", e.kind()))
    }
}

impl TicketStore for RedisStore {
    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(value)
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1));
        let reply: Option<String> = self.run(&cmd).await?;
        Ok(reply.is_some())
    }

    async fn take(&self, key: &str) -> Result<Taken, StoreError> {
        // EVALSHA, and EVAL only when Redis answers NOSCRIPT: the script did
        // not run then, so sending it again cannot consume a ticket twice.
        let mut conn = self.conn.clone();
        let invocation = self.take.key(key);
        let old: Option<Vec<u8>> = within(self.timeout, invocation.invoke_async(&mut conn)).await?;
        Ok(match old {
            None => Taken::Missing,
            Some(mut v) if v.first() == Some(&USED_MARK) => {
                v.remove(0);
                Taken::Used(v)
            }
            Some(v) => Taken::Value(v),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.run(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Other("unexpected PING reply".into()))
        }
    }
}

//! Events for the WebSocket servers: a user's tickets were revoked, a
//! ticket was reused. They go into one log in the store (a Redis stream, or
//! the memory store's own list), so every replica's subscribers see every
//! replica's events, and a subscriber that reconnects resumes after the last
//! event it saw, as long as the log still holds it (`events.backlog`).
//!
//! One reader per process follows the log and hands each event to the
//! subscribers of that process ([`EventHub::subscribe`]).

use crate::store::{EventBatch, EventId, Store, StoreError, StoredEvent, TicketStore};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

pub(crate) const DEFAULT_HEARTBEAT_SECS: u64 = 15;
pub(crate) const DEFAULT_BACKLOG: usize = 10_000;

/// `[events]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventSettings {
    /// How often a quiet stream gets a comment line, so that both ends
    /// notice a dead connection.
    pub(crate) heartbeat: Duration,
    /// About how many events the log keeps for subscribers to resume.
    pub(crate) backlog: usize,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            heartbeat: Duration::from_secs(DEFAULT_HEARTBEAT_SECS),
            backlog: DEFAULT_BACKLOG,
        }
    }
}

/// Why a user's tickets were revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RevokeReason {
    /// `POST /v1/users/revoke`.
    Request,
    /// A reused ticket, with `tickets.on_reuse = "revoke_user"`.
    Reuse,
}

impl RevokeReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Request => "request",
            RevokeReason::Reuse => "reuse",
        }
    }
}

/// An event as subscribers read it (the `data` of a server-sent event).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Event<'a> {
    UserRevoked {
        user_id: &'a str,
        /// `None`: every audience.
        audience: Option<&'a str>,
        /// RFC 3339: tickets issued before it are dead.
        before: String,
        reason: RevokeReason,
    },
    TicketReused {
        user_id: &'a str,
        audience: &'a str,
    },
}

impl Event<'_> {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Event::UserRevoked { .. } => "user_revoked",
            Event::TicketReused { .. } => "ticket_reused",
        }
    }

    fn audience(&self) -> Option<&str> {
        match self {
            Event::UserRevoked { audience, .. } => *audience,
            Event::TicketReused { audience, .. } => Some(audience),
        }
    }

    /// As the log stores it (its id is given by the log).
    pub(crate) fn to_stored(&self) -> Result<StoredEvent, serde_json::Error> {
        Ok(StoredEvent {
            id: EventId::ZERO,
            kind: self.kind().to_owned(),
            audience: self.audience().map(str::to_owned),
            data: serde_json::to_string(self)?,
        })
    }
}

/// RFC 3339 with milliseconds, UTC: how events and answers write a time.
pub(crate) fn rfc3339_ms(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The events of one process: the log's reader and its subscribers.
pub(crate) struct EventHub {
    /// The reader's own store handle: with Redis its own connection, since a
    /// blocking read holds the connection it runs on.
    store: Store,
    key: String,
    settings: EventSettings,
    sender: broadcast::Sender<Arc<StoredEvent>>,
}

/// Events one subscriber may lag behind before it is cut off (it then
/// reconnects and resumes from the log).
const SUBSCRIBER_BUFFER: usize = 1024;
/// Events read from the log at once.
const READ_MAX: usize = 256;

impl EventHub {
    pub(crate) fn new(store: Store, key_prefix: &str, settings: EventSettings) -> Arc<Self> {
        Arc::new(EventHub {
            store,
            key: log_key(key_prefix),
            settings,
            sender: broadcast::channel(SUBSCRIBER_BUFFER).0,
        })
    }

    pub(crate) fn settings(&self) -> EventSettings {
        self.settings
    }

    /// Live events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.sender.subscribe()
    }

    /// Follow the log until the process ends, handing every event to the
    /// subscribers. Store failures are logged once each time they start and
    /// retried with a growing pause; events are not lost meanwhile (the log
    /// keeps them), only late.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut failing = false;
        let mut pause = Duration::from_millis(50);
        let mut last = None;
        loop {
            let read = match last {
                None => self.store.last_event(&self.key).await.map(|id| {
                    last = Some(id);
                    EventBatch::default()
                }),
                // After a failure, a read that says whether the log still
                // holds the last event seen: if not, some were trimmed away
                // meanwhile, and the subscribers must know.
                Some(after) => {
                    let wait = if failing {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(5)
                    };
                    self.store.events(&self.key, after, wait, READ_MAX).await
                }
            };
            match read {
                Ok(batch) => {
                    if failing {
                        tracing::info!("the event log can be read again");
                        failing = false;
                    }
                    pause = Duration::from_millis(50);
                    if batch.gap {
                        tracing::warn!(
                            "events were trimmed from the log while it could not be read: \
                             subscribers are told of a gap"
                        );
                        let _ = self.sender.send(Arc::new(gap_marker()));
                    }
                    for event in batch.events {
                        last = Some(event.id);
                        // No subscriber: nobody to tell.
                        let _ = self.sender.send(Arc::new(event));
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(kind = e.kind(), error = %e, "cannot read the event log");
                        failing = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Handed to subscribers when events may have been lost: no id (it is no
/// event of the log), only the news.
fn gap_marker() -> StoredEvent {
    StoredEvent {
        id: EventId::ZERO,
        kind: GAP.to_owned(),
        audience: None,
        data: String::new(),
    }
}

/// The kind of [`gap_marker`].
pub(crate) const GAP: &str = "gap";

/// The store key of the event log.
pub(crate) fn log_key(key_prefix: &str) -> String {
    format!("{key_prefix}events")
}

/// Append `event` to the log through `store`.
pub(crate) async fn publish(
    store: &Store,
    key_prefix: &str,
    backlog: usize,
    event: &Event<'_>,
) -> Result<EventId, StoreError> {
    let stored = event
        .to_stored()
        .map_err(|e| StoreError::Other(format!("cannot serialise an event: {e}")))?;
    store.publish(&log_key(key_prefix), &stored, backlog).await
}

impl super::TicketCore {
    /// The events after `after` that the log still holds, for a subscriber
    /// that resumes; `gap` when `after` is no longer among them.
    pub(crate) async fn events_after(
        &self,
        after: EventId,
    ) -> Result<EventBatch, super::StoreUnavailable> {
        let key = log_key(&self.key_prefix);
        let read = self.store.events(&key, after, Duration::ZERO, self.backlog);
        self.timed("events", read).await
    }
}

/// May `caller` see `event`? Events of an audience go to the clients that
/// may use it; events of every audience to all.
pub(crate) fn may_see(caller: &crate::auth::Caller, event: &StoredEvent) -> bool {
    match &event.audience {
        None => true,
        Some(a) => crate::domain::Audience::parse(a).is_ok_and(|a| caller.may_use(&a)),
    }
}

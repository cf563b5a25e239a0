//! `GET /v1/events`: revocations and reuses as Server-Sent Events, for the
//! WebSocket servers (clients with `redeem` or `revoke`). Parse (the key,
//! `Last-Event-ID`) → core (what the log still holds after it) → answer (a
//! stream of it, then of live events, with heartbeats, until the client
//! leaves or the process drains).

use super::extract::KeyCaller;
use super::no_store;
use super::problem::{ApiError, Code};
use crate::auth::{Caller, Permission};
use crate::core::{EventHub, TicketCore, may_see};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::store::{EventId, StoredEvent};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

/// The first frame: how long a client waits before it reconnects.
const RETRY: &[u8] = b"retry: 1000\n\n";
const HEARTBEAT: &[u8] = b": keep-alive\n\n";
const GAP: &[u8] = b"event: gap\ndata: {\"detail\":\"events after the given Last-Event-ID \
may have been missed\"}\n\n";

pub(crate) async fn events(
    req: HttpRequest,
    KeyCaller(caller): KeyCaller,
    core: web::Data<TicketCore>,
    hub: web::Data<EventHub>,
    lifecycle: web::Data<Lifecycle>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    if caller.require(Permission::Redeem).is_err() && caller.require(Permission::Revoke).is_err() {
        return Err(ApiError::with_detail(
            Code::Forbidden,
            "this caller has neither the redeem nor the revoke permission",
        ));
    }
    // An id of no known shape was not ours: all after it may be missed.
    let resume = req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().ok().and_then(EventId::parse));
    // Subscribed before the log is read, so nothing falls in between.
    let live = hub.subscribe();
    let mut frames = VecDeque::from([Bytes::from_static(RETRY)]);
    let mut last = EventId::ZERO;
    match resume {
        None => {}
        Some(None) => frames.push_back(Bytes::from_static(GAP)),
        Some(Some(after)) => {
            let batch = core.events_after(after).await?;
            if batch.gap {
                frames.push_back(Bytes::from_static(GAP));
            }
            for e in &batch.events {
                last = e.id;
                if may_see(&caller, e) {
                    frames.push_back(frame(e));
                }
            }
        }
    }
    let stream = Subscriber {
        caller,
        live,
        last,
        frames,
        heartbeat: tokio::time::interval_at(
            tokio::time::Instant::now() + hub.settings().heartbeat,
            hub.settings().heartbeat,
        ),
        drained: lifecycle.drained().boxed_local(),
        _count: Counted::new(metrics.into_inner()),
    };
    Ok(no_store(StatusCode::OK)
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/event-stream")))
        // Proxies (nginx) must pass events on as they come.
        .insert_header(("x-accel-buffering", HeaderValue::from_static("no")))
        .streaming(futures_util::stream::unfold(stream, Subscriber::next)))
}

/// One event as a server-sent event. Ids and kinds are ours; the data is
/// one line of JSON.
fn frame(e: &StoredEvent) -> Bytes {
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        e.id, e.kind, e.data
    ))
}

struct Subscriber {
    caller: Caller,
    live: Receiver<Arc<StoredEvent>>,
    /// The last event sent (or skipped), so a live event the log read
    /// already gave is not sent twice.
    last: EventId,
    frames: VecDeque<Bytes>,
    heartbeat: tokio::time::Interval,
    drained: LocalBoxFuture<'static, ()>,
    _count: Counted,
}

impl Subscriber {
    async fn next(mut self) -> Option<(Result<Bytes, std::convert::Infallible>, Self)> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Some((Ok(f), self));
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    // The reader lost events: so may this subscriber have.
                    Ok(e) if e.id == EventId::ZERO => {
                        self.frames.push_back(Bytes::from_static(GAP));
                    }
                    Ok(e) if e.id > self.last => {
                        self.last = e.id;
                        if may_see(&self.caller, &e) {
                            self.frames.push_back(frame(&e));
                        }
                    }
                    Ok(_) => {}
                    // Too far behind (or the reader is gone): the client
                    // reconnects and resumes from the log.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
                },
                _ = self.heartbeat.tick() => self.frames.push_back(Bytes::from_static(HEARTBEAT)),
                () = &mut self.drained => return None,
            }
        }
    }
}

/// Counts an open stream in `wsticket_event_subscribers` while it lives.
struct Counted(Arc<Metrics>);

impl Counted {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.event_subscribers(1);
        Counted(metrics)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.event_subscribers(-1);
    }
}

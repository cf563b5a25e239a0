//! `[events]`: the event stream for WebSocket servers (`GET /v1/events`).

use super::checks::{ConfigError, in_range};
use crate::core::{DEFAULT_BACKLOG, DEFAULT_HEARTBEAT_SECS, EventSettings};
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    heartbeat_secs: Option<u64>,
    backlog: Option<usize>,
}

pub(super) fn parse(raw: RawEvents) -> Result<EventSettings, ConfigError> {
    let heartbeat_secs = in_range(
        "events.heartbeat_secs",
        raw.heartbeat_secs,
        DEFAULT_HEARTBEAT_SECS,
        1..=300,
    )?;
    let backlog = in_range(
        "events.backlog",
        raw.backlog,
        DEFAULT_BACKLOG,
        1..=1_000_000,
    )?;
    Ok(EventSettings {
        heartbeat: Duration::from_secs(heartbeat_secs),
        backlog,
    })
}

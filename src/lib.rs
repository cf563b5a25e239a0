#![forbid(unsafe_code)]
//! wsticket: short-lived, single-use tickets that let a browser authenticate
//! a WebSocket handshake. docs/contract.md states what it promises,
//! docs/threat-model.md what that protects against.
//!
//! Modules are crate-private unless the binary, the integration tests or the
//! fuzz targets need them; inside, items are `pub(crate)` unless they do.

pub mod auth;
pub mod cli;
pub mod config;
mod core;
pub mod crypto;
pub mod domain;
mod lifecycle;
mod metrics;
pub mod routes;
pub mod startup;
mod store;
mod telemetry;
pub mod tls;

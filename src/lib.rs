#![forbid(unsafe_code)]
//! wsticket: short-lived, single-use tickets that let a browser authenticate
//! a WebSocket handshake. See README.md for the threat model.

pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tickets;
pub mod tls;

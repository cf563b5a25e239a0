//! One integration-test binary: it spawns the real application on port 0 and
//! runs the same behavioural suite against the in-memory store and a real
//! Redis (`WSTICKET_TEST_REDIS_URL`, or a `redis-server` it starts itself).

mod architecture;
pub mod binary;
mod docs;
mod frontend;
mod helpers;
mod http_edge;
mod observability;
mod openapi;
mod redis_faults;
mod redis_server;
mod suite;
mod topologies;

//! One integration-test binary: it spawns the real application on port 0 and
//! runs the same behavioural suite against four backends: the in-memory
//! store, a real Redis (`WSTICKET_TEST_REDIS_URL`, or a `redis-server` it
//! starts itself), a Redis Cluster and a Sentinel set-up.

mod architecture;
pub mod binary;
mod docs;
mod frontend;
mod gateway;
mod helpers;
mod http_edge;
mod ip_binding;
mod limits;
mod observability;
mod openapi;
mod redis_faults;
mod redis_server;
mod replicated;
mod revocation;
mod rotation;
mod suite;
mod topologies;

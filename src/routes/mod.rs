//! The HTTP layer: everything that knows actix-web. The route tables are
//! here: each listener's routes are listed once, the app is built from the
//! table, and the OpenAPI test compares the table with `openapi.yaml`, so
//! the two cannot drift apart silently.

mod cors;
mod events;
mod extract;
mod gateway;
mod health;
mod metrics;
pub(crate) mod middleware;
pub mod problem;
mod revoke;
mod tickets;
pub(crate) mod wire;

pub(crate) use extract::MAX_BODY_BYTES;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder, Route, web};
use problem::{ApiError, Code};

pub struct RouteDef {
    pub method: &'static str,
    /// As openapi.yaml spells it.
    pub path: &'static str,
    /// As actix matches it (the same, unless a parameter spans segments).
    pattern: &'static str,
    route: fn() -> Route,
}

impl RouteDef {
    const fn new(method: &'static str, path: &'static str, route: fn() -> Route) -> Self {
        RouteDef {
            method,
            path,
            pattern: path,
            route,
        }
    }
}

/// The public listener.
pub const API_ROUTES: &[RouteDef] = &[
    RouteDef::new("POST", "/v1/tickets", || web::post().to(tickets::mint)),
    RouteDef::new("OPTIONS", "/v1/tickets", || {
        web::route()
            .method(actix_web::http::Method::OPTIONS)
            .to(cors::preflight)
    }),
    RouteDef::new("POST", "/v1/tickets/redeem", || {
        web::post().to(tickets::redeem)
    }),
    RouteDef::new("POST", "/v1/tickets/revoke", || {
        web::post().to(revoke::revoke_ticket)
    }),
    RouteDef::new("POST", "/v1/users/revoke", || {
        web::post().to(revoke::revoke_user)
    }),
    RouteDef::new("GET", "/v1/events", || web::get().to(events::events)),
    RouteDef::new("GET", "/healthz", || web::get().to(health::healthz)),
    RouteDef::new("GET", "/readyz", || web::get().to(health::readyz)),
    // Last: the router tries routes in this order, and the patterns with
    // parameters cost a regex match each.
    RouteDef::new("GET", "/v1/gateway/check", || web::get().to(gateway::check)),
    RouteDef::new("GET", "/v1/gateway/check/{audience}", || {
        web::get().to(gateway::check)
    }),
    // Envoy appends the checked request's path to its path_prefix.
    RouteDef {
        pattern: "/v1/gateway/check/{audience}/{path:.*}",
        ..RouteDef::new("GET", "/v1/gateway/check/{audience}/{path}", || {
            web::get().to(gateway::check)
        })
    },
];

/// The admin listener.
pub const ADMIN_ROUTES: &[RouteDef] = &[RouteDef::new("GET", "/metrics", || {
    web::get().to(metrics::metrics)
})];

/// Register `routes`, one resource per distinct path (wherever its rows are
/// in the table); a known path with another method answers 405 with `Allow`,
/// any other path 404, both as problem+json.
pub(crate) fn configure(routes: &'static [RouteDef], cfg: &mut web::ServiceConfig) {
    let mut patterns: Vec<&'static str> = Vec::new();
    for r in routes {
        if !patterns.contains(&r.pattern) {
            patterns.push(r.pattern);
        }
    }
    for pattern in patterns {
        let here = routes.iter().filter(|r| r.pattern == pattern);
        let allow = here
            .clone()
            .map(|r| r.method)
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(pattern);
        for r in here {
            resource = resource.route((r.route)());
        }
        resource = resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move {
                let detail = format!("this route only answers {allow}");
                let error = ApiError::with_detail(Code::MethodNotAllowed, detail);
                Err::<HttpResponse, _>(match HeaderValue::from_str(&allow) {
                    Ok(v) => error.with_header(v),
                    Err(_) => error,
                })
            }
        }));
        cfg.service(resource);
    }
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(Code::NotFound.into())
}

/// An answer that no cache may keep (a ticket, an identity, a verdict).
pub(crate) fn no_store(status: StatusCode) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    res
}

//! The route tables. Each listener's routes are listed once, here; the app is
//! built from the table and the OpenAPI test compares the table with
//! `openapi.yaml`, so the two cannot drift apart silently.

pub mod cors;
mod health;
mod json;
mod metrics;
mod tickets;

pub use json::MAX_BODY_BYTES;

use crate::error::ApiError;
use actix_web::{HttpResponse, Route, web};

pub struct RouteDef {
    pub method: &'static str,
    pub path: &'static str,
    route: fn() -> Route,
}

/// The public listener.
pub const API_ROUTES: &[RouteDef] = &[
    RouteDef {
        method: "POST",
        path: "/v1/tickets",
        route: || web::post().to(tickets::mint),
    },
    RouteDef {
        method: "OPTIONS",
        path: "/v1/tickets",
        route: || {
            web::route()
                .method(actix_web::http::Method::OPTIONS)
                .to(cors::preflight)
        },
    },
    RouteDef {
        method: "POST",
        path: "/v1/tickets/redeem",
        route: || web::post().to(tickets::redeem),
    },
    RouteDef {
        method: "GET",
        path: "/healthz",
        route: || web::get().to(health::healthz),
    },
    RouteDef {
        method: "GET",
        path: "/readyz",
        route: || web::get().to(health::readyz),
    },
];

/// The admin listener.
pub const ADMIN_ROUTES: &[RouteDef] = &[RouteDef {
    method: "GET",
    path: "/metrics",
    route: || web::get().to(metrics::metrics),
}];

/// Register `routes`; a known path with another method answers 405 with
/// `Allow`, any other path 404, both as problem+json.
pub fn configure(routes: &'static [RouteDef], cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<&'static str> = routes.iter().map(|r| r.path).collect();
    paths.dedup();
    for path in paths {
        let here = routes.iter().filter(|r| r.path == path);
        let allow = here
            .clone()
            .map(|r| r.method)
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(path);
        for r in here {
            resource = resource.route((r.route)());
        }
        resource = resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) }
        }));
        cfg.service(resource);
    }
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

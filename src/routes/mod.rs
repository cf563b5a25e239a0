//! The HTTP layer: everything that knows actix-web. The route tables are
//! here: each listener's routes are listed once, the app is built from the
//! table, and the OpenAPI test compares the table with `openapi.yaml`, so
//! the two cannot drift apart silently.

mod cors;
mod extract;
mod health;
mod metrics;
pub(crate) mod middleware;
pub mod problem;
mod tickets;
pub(crate) mod wire;

pub(crate) use extract::MAX_BODY_BYTES;

use actix_web::http::header::HeaderValue;
use actix_web::{HttpResponse, Route, web};
use problem::{ApiError, Code};

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

/// Register `routes`, one resource per distinct path (wherever its rows are
/// in the table); a known path with another method answers 405 with `Allow`,
/// any other path 404, both as problem+json.
pub(crate) fn configure(routes: &'static [RouteDef], cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<&'static str> = Vec::new();
    for r in routes {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
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

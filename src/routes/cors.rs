//! CORS for the mint route only: browsers of allowed origins may call it with
//! credentials (cookies for forward auth, a bearer JWT). Never a wildcard:
//! the allowed origin is echoed, with `Vary: Origin`. The redeem route has no
//! CORS at all — WebSocket servers call it, not browsers.

use crate::domain::Origin;
use crate::error::ApiError;
use crate::tickets::TicketService;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

/// The route pattern CORS applies to.
pub const CORS_ROUTE: &str = "/v1/tickets";

fn allowed<'a>(svc: &TicketService, origin: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
    let o = origin?;
    let parsed = Origin::parse(o.to_str().ok()?).ok()?;
    svc.policy().allowed_origins.allows(&parsed).then_some(o)
}

/// Add the CORS response headers for a request with `origin`.
pub fn decorate(svc: &TicketService, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = allowed(svc, origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// `OPTIONS /v1/tickets`: 204 for an allowed origin, else 403
/// `origin_not_allowed` (and no CORS headers, so the browser stops).
pub async fn preflight(
    req: HttpRequest,
    svc: web::Data<TicketService>,
) -> Result<HttpResponse, ApiError> {
    if allowed(&svc, req.headers().get(header::ORIGIN)).is_none() {
        return Err(ApiError::OriginNotAllowed);
    }
    Ok(HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "authorization, content-type",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .finish())
}

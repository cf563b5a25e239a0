//! CORS for the mint route only: browsers of allowed origins may call it with
//! credentials (cookies for forward auth, a bearer JWT). Never a wildcard:
//! the allowed origin is echoed, with `Vary: Origin`. The redeem route has no
//! CORS at all — WebSocket servers call it, not browsers.

use super::problem::{ApiError, Code};
use crate::core::TicketCore;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

/// The route pattern CORS applies to.
pub(crate) const CORS_ROUTE: &str = "/v1/tickets";

fn allowed<'a>(core: &TicketCore, origin: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
    let o = origin?;
    core.policy().allows_origin(o.to_str().ok()?).then_some(o)
}

/// Add the CORS response headers for a request with `origin`.
pub(crate) fn decorate(core: &TicketCore, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = allowed(core, origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        // A 429's wait, which the page's script needs to back off
        // (CORS hides every header not listed here or safelisted).
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After, RateLimit, RateLimit-Policy"),
        );
    }
}

/// `OPTIONS /v1/tickets`: 204 for an allowed origin, else 403
/// `origin_not_allowed` (and no CORS headers, so the browser stops).
pub(crate) async fn preflight(
    req: HttpRequest,
    core: web::Data<TicketCore>,
) -> Result<HttpResponse, ApiError> {
    if allowed(&core, req.headers().get(header::ORIGIN)).is_none() {
        return Err(Code::OriginNotAllowed.into());
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

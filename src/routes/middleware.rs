//! What wraps every request: a request id, one access-log line and one
//! metrics observation per request, and the CORS headers of the mint route.
//! Each is a function for `App::wrap_fn`, so `startup` only wires them.

use super::cors::{self, CORS_ROUTE};
use crate::auth::{API_KEY_PREFIX, looks_like_jwt};
use crate::core::TicketCore;
use crate::domain::TICKET_PREFIX;
use crate::metrics::Metrics;
use crate::telemetry::REQUEST_ID;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{Error, web};
use std::time::Instant;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` when it is a sane token (and not something
/// that looks like a ticket or a key, which must never reach a log), else a
/// fresh random one.
fn request_id(given: Option<&HeaderValue>) -> String {
    let usable = |s: &str| {
        (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
            && ![TICKET_PREFIX, API_KEY_PREFIX]
                .iter()
                .any(|p| s.get(..4).is_some_and(|h| h.eq_ignore_ascii_case(p)))
            // A caller that sends its JWT as a request id gets it back in
            // no answer and no log line.
            && !looks_like_jwt(s)
    };
    match given.and_then(|v| v.to_str().ok()) {
        Some(s) if usable(s) => s.to_owned(),
        _ => {
            use rand::RngCore;
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            let mut id = [0u8; 32];
            // Cannot fail: 32 hex digits for 16 bytes.
            let _ = hex::encode_to_slice(bytes, &mut id);
            std::str::from_utf8(&id).unwrap_or_default().to_owned()
        }
    }
}

fn set_request_id<B>(res: &mut ServiceResponse<B>, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
}

/// The methods we label by name; anything else is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The public listener's outer layer: a request id in a span around the
/// request, then one log line and one observation: method, route pattern,
/// status, latency, request id. Never the path, the query string or a
/// header.
pub(crate) fn observe<S, B>(
    metrics: &web::Data<Metrics>,
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let metrics = metrics.clone();
    let id = request_id(req.headers().get(X_REQUEST_ID));
    let started = Instant::now();
    let fut = srv.call(req);
    // Every line logged while serving the request names its id.
    REQUEST_ID.scope(id.into_boxed_str(), async move {
        let mut res = fut.await?;
        let took = started.elapsed();
        let req = res.request();
        let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
        let method = method_label(req.method());
        let status = res.status().as_u16();
        metrics.http_request(&route, method, status, took);
        tracing::info!(
            target: "wsticket::access",
            method,
            route = %route,
            status,
            latency_ms = took.as_secs_f64() * 1000.0,
            "request"
        );
        REQUEST_ID.with(|id| set_request_id(&mut res, id));
        Ok(res)
    })
}

/// The admin listener's: a request id on every answer, nothing logged.
pub(crate) fn request_id_only<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
{
    let id = request_id(req.headers().get(X_REQUEST_ID));
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        set_request_id(&mut res, &id);
        Ok(res)
    }
}

/// CORS headers on answers of the mint route (see [`cors`]).
pub(crate) fn cors<S, B>(
    core: &web::Data<TicketCore>,
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
{
    // The route is a literal path, so comparing paths needs no pattern match.
    let core = (req.path() == CORS_ROUTE).then(|| {
        let origin = req.headers().get(header::ORIGIN).cloned();
        (core.clone(), origin)
    });
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        if let Some((core, origin)) = core {
            cors::decorate(&core, origin.as_ref(), res.headers_mut());
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_only_when_safe() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(request_id(Some(&v("abc-123_x.y:z"))), "abc-123_x.y:z");
        for bad in [
            "",
            "has space",
            "wst_k1_AAAA",
            "WSK_abc",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
            "a.b.c",
            &"a".repeat(129),
            "a/b",
        ] {
            let id = request_id(Some(&v(bad)));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        assert_ne!(request_id(None), request_id(None));
    }
}

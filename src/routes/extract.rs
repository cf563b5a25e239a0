//! Extractors: what a handler's signature asks of a request.
//!
//! * [`JsonBody`]: the request body. Unlike `web::Json`, its every rejection
//!   is an [`ApiError`] (problem+json), and its messages never quote the
//!   input: a ticket sent in the wrong field must not come back in an error
//!   body.
//! * [`Caller`]: any verified caller (API key, JWT, forward auth);
//!   [`KeyCaller`]: an API-key caller and nothing else. They copy what
//!   authentication needs out of the request and hand it to the
//!   [`Authenticator`], which knows no HTTP framework.

use super::problem::{ApiError, Code};
use crate::auth::{Authenticator, Caller, Credentials};
use crate::core::{MintError, TicketCore};
use crate::domain::Cidr;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use std::net::IpAddr;

/// Request bodies over 16 KiB get 413 (docs/contract.md).
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;

pub(crate) struct JsonBody<T>(pub(crate) T);

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !is_json(req) {
            return Box::pin(async { Err(Code::UnsupportedMediaType.into()) });
        }
        if declared_length(req).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Box::pin(async { Err(Code::PayloadTooLarge.into()) });
        }
        let mut payload = payload.take();
        Box::pin(async move {
            let mut body = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|_| ApiError::invalid("the request body could not be read"))?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(Code::PayloadTooLarge.into());
                }
                body.extend_from_slice(&chunk);
            }
            parse(&body).map(JsonBody)
        })
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // The plain parse is the fast path; only a body it refuses is parsed
    // again with path tracking, for the error message.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(describe)?;
    de.end()
        .map_err(|_| ApiError::invalid("unexpected characters after the JSON body"))?;
    Ok(value)
}

/// A detail built from our own words: field names come from our types, the
/// `expected …` part from serde's description of our types. Values from the
/// input are never quoted.
fn describe(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let at = format!("line {}, column {}", inner.line(), inner.column());
    if !inner.is_data() {
        return ApiError::invalid(format!("the body is not valid JSON ({at})"));
    }
    let msg = inner.to_string();
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return ApiError::invalid(format!("missing field `{field}`"));
    }
    if msg.starts_with("unknown field") {
        let expected = msg
            .split_once(", expected")
            .map(|(_, e)| {
                format!(
                    ": expected{}",
                    e.split(" at line").next().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        return ApiError::invalid(format!("unknown field ({at}){expected}"));
    }
    let expected = msg
        .split_once(", expected ")
        .and_then(|(_, e)| e.rsplit_once(" at line"))
        .map(|(e, _)| format!(": expected {e}"))
        .unwrap_or_default();
    let plain_path = !path.is_empty()
        && path.len() <= 64
        && path
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.');
    if plain_path && path != "." {
        ApiError::invalid(format!("invalid value for `{path}`{expected}"))
    } else {
        ApiError::invalid(format!(
            "the body does not match the request schema ({at}){expected}"
        ))
    }
}

/// The `Authenticator` registered in the app (`startup` always does).
fn authenticator(req: &HttpRequest) -> Result<&web::Data<Authenticator>, ApiError> {
    req.app_data::<web::Data<Authenticator>>().ok_or_else(|| {
        tracing::error!("no Authenticator registered in the app");
        Code::Internal.into()
    })
}

/// The address a request comes from: its peer, or behind a proxy of
/// `limits.trusted_proxies` the client the forwarding headers name.
pub(crate) fn client_ip(req: &HttpRequest, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let headers = req.headers();
    let values = |name| headers.get_all(name).filter_map(|v| v.to_str().ok());
    if trusted.is_empty() {
        // No proxy is believed: the headers are not read, only noticed.
        if values(X_FORWARDED_FOR).next().is_some() || values(header::FORWARDED).next().is_some() {
            warn_untrusted_proxy(peer);
        }
        return Some(crate::domain::client_ip(peer, &[], &[], trusted));
    }
    let forwarded_for: Vec<&str> = values(X_FORWARDED_FOR).collect();
    let forwarded: Vec<&str> = values(header::FORWARDED).collect();
    Some(crate::domain::client_ip(
        peer,
        &forwarded_for,
        &forwarded,
        trusted,
    ))
}

/// Once per process: forwarding headers arrive, but no proxy is trusted.
fn warn_untrusted_proxy(peer: IpAddr) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            peer = %peer,
            "a request came through a proxy (X-Forwarded-For or Forwarded), but \
             limits.trusted_proxies is empty: the per-address mint limit counts the \
             proxy's address for all its clients. List the proxies, or set \
             limits.mint_per_ip = \"off\"."
        );
    });
}

const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");

/// The `Authorization` value, when it is visible ASCII.
fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// A caller that proved itself with an API key and nothing else: the redeem
/// route's extractor. WebSocket servers never reach the JWT or forward-auth
/// paths (so their key is never forwarded anywhere).
#[derive(Debug, Clone)]
pub(crate) struct KeyCaller(pub(crate) Caller);

impl FromRequest for KeyCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticator(req).and_then(|auth| {
            auth.authenticate_key(authorization(req))
                .map(KeyCaller)
                .map_err(ApiError::from)
        }))
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let auth = match authenticator(req) {
            Ok(auth) => auth.clone().into_inner(),
            Err(e) => return Box::pin(async { Err(e) }),
        };
        // Everything the future needs is copied out of the request first.
        let headers = req.headers();
        let creds = Credentials {
            authorization: authorization(req).map(str::to_owned),
            has_cookie: headers.contains_key(header::COOKIE),
            forwarded: auth
                .forward_headers()
                .iter()
                .flat_map(|name| {
                    headers
                        .get_all(name.as_str())
                        .map(move |v| (name.clone(), v.as_bytes().to_vec()))
                })
                .collect(),
        };
        if auth.is_frontend(&creds)
            && let Err(e) = browser_origin(req)
        {
            return Box::pin(async { Err(e) });
        }
        Box::pin(async move { auth.authenticate(creds).await.map_err(ApiError::from) })
    }
}

/// A browser caller's `Origin` must be allowed, whoever the caller turns
/// out to be: checked before any verification work or forward-auth call, so
/// that a cross-site request with the victim's cookies costs nothing and
/// reaches nobody. The core checks it again when it mints.
fn browser_origin(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(core) = req.app_data::<web::Data<TicketCore>>() else {
        tracing::error!("no TicketCore registered in the app");
        return Err(Code::Internal.into());
    };
    let refused = |e: MintError| {
        tracing::info!(error = %e, "browser request refused before authentication");
        ApiError::from(e)
    };
    match req.headers().get(header::ORIGIN).map(|v| v.to_str()) {
        Some(Ok(origin)) => core.policy().mint_origin(origin).map(drop).map_err(refused),
        Some(Err(_)) => Err(refused(MintError::Invalid(
            "the Origin header is not valid".into(),
        ))),
        None => Err(refused(MintError::Invalid(
            "browser callers must send an Origin header".into(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        ticket: String,
        ttl_secs: Option<u64>,
    }

    fn detail(body: &str) -> String {
        match parse::<Body>(body.as_bytes()) {
            Err(e) if e.code() == Code::InvalidRequest => e.detail().to_owned(),
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn details_name_fields_but_never_quote_values() {
        let secret = "wst_k1_SECRETSECRETSECRETSECRETSECRETSECRETSEC";
        let d = detail(&format!(r#"{{"ticket": "x", "ttl_secs": "{secret}"}}"#));
        assert!(d.contains("`ttl_secs`") && d.contains("u64"), "{d}");
        assert!(!d.contains("SECRET"), "{d}");
        let d = detail(&format!(r#"{{"{secret}": 1}}"#));
        assert!(d.starts_with("unknown field"), "{d}");
        assert!(!d.contains("SECRET"), "{d}");
        let d = detail(&format!(r#"{{"ticket": {secret}}}"#));
        assert!(d.contains("not valid JSON"), "{d}");
        assert!(!d.contains("SECRET"), "{d}");
        assert_eq!(detail("{}"), "missing field `ticket`");
        assert!(detail(r#"{"ticket":"a"} x"#).contains("after the JSON body"));
        assert!(detail("[1]").contains("does not match"));
    }
}

//! The one mapping from outcomes to HTTP. Every failure, including actix's
//! own extractor rejections and unknown routes, leaves the server as an
//! RFC 9457 `application/problem+json` body with a stable `code`.
//!
//! [`Code::row`] is the table: each code's name, status, title, default
//! detail and extra header, stated once. The `From` impls below map the
//! core's and the authenticator's errors onto codes. A new code is one row
//! (and, if something produces it, one arm in a `From`).
//!
//! Details are written by us, never copied from input: a ticket or a key that
//! a client put in the wrong field must not be echoed back.

use crate::auth::{AuthError, NotPermitted};
use crate::core::{Limit, Limited, MintError, Outcome, RedeemError, RevokeError, StoreUnavailable};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;

/// The enum of codes and `Code::ALL`, from one list, so neither can miss one.
macro_rules! codes {
    ($($name:ident),* $(,)?) => {
        /// Every problem code the server can send.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($name),*
        }

        impl Code {
            pub const ALL: &[Code] = &[$(Code::$name),*];
        }
    };
}

codes![
    InvalidRequest,
    Unauthenticated,
    Forbidden,
    OriginNotAllowed,
    OriginMismatch,
    AudienceMismatch,
    IpMismatch,
    TicketInvalid,
    TicketReused,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    StoreUnavailable,
    AuthUnavailable,
    ShuttingDown,
    Internal,
];

/// An extra response header of a code: a fixed value, or one the error
/// carries (see [`ApiError::with_header`]).
#[derive(Debug, Clone)]
pub(crate) enum Extra {
    Fixed(HeaderName, &'static str),
    FromError(HeaderName),
}

/// One row of the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) code: &'static str,
    pub(crate) status: StatusCode,
    pub(crate) title: &'static str,
    /// The detail unless the error brings its own.
    pub(crate) detail: &'static str,
    pub(crate) extra: Option<Extra>,
}

const fn row(
    code: &'static str,
    status: StatusCode,
    title: &'static str,
    detail: &'static str,
) -> Row {
    Row {
        code,
        status,
        title,
        detail,
        extra: None,
    }
}

impl Code {
    /// The table (docs/contract.md, "Problem codes").
    pub(crate) fn row(self) -> Row {
        use StatusCode as S;
        match self {
            Code::InvalidRequest => row(
                "invalid_request",
                S::BAD_REQUEST,
                "Invalid request",
                "the request is not valid",
            ),
            Code::Unauthenticated => Row {
                extra: Some(Extra::Fixed(header::WWW_AUTHENTICATE, "Bearer")),
                ..row(
                    "unauthenticated",
                    S::UNAUTHORIZED,
                    "Unauthenticated",
                    "a valid credential is required: Authorization: Bearer <credential>",
                )
            },
            Code::Forbidden => row(
                "forbidden",
                S::FORBIDDEN,
                "Forbidden",
                "this caller may not do that",
            ),
            Code::OriginNotAllowed => row(
                "origin_not_allowed",
                S::FORBIDDEN,
                "Origin not allowed",
                "the origin is not in tickets.allowed_origins",
            ),
            Code::OriginMismatch => row(
                "origin_mismatch",
                S::FORBIDDEN,
                "Origin mismatch",
                "the ticket was minted for another origin; it has been consumed",
            ),
            Code::AudienceMismatch => row(
                "audience_mismatch",
                S::FORBIDDEN,
                "Audience mismatch",
                "this caller may not redeem the ticket's audience; it has been consumed",
            ),
            Code::IpMismatch => row(
                "ip_mismatch",
                S::FORBIDDEN,
                "Address mismatch",
                "the ticket is bound to another client address; it has been consumed",
            ),
            Code::TicketInvalid => row(
                "ticket_invalid",
                S::NOT_FOUND,
                "Ticket invalid",
                "the ticket is unknown or expired",
            ),
            Code::TicketReused => row(
                "ticket_reused",
                S::CONFLICT,
                "Ticket reused",
                "the ticket has already been redeemed",
            ),
            Code::NotFound => row("not_found", S::NOT_FOUND, "Not found", "no such route"),
            Code::MethodNotAllowed => Row {
                extra: Some(Extra::FromError(header::ALLOW)),
                ..row(
                    "method_not_allowed",
                    S::METHOD_NOT_ALLOWED,
                    "Method not allowed",
                    "this route does not answer that method",
                )
            },
            Code::PayloadTooLarge => row(
                "payload_too_large",
                S::PAYLOAD_TOO_LARGE,
                "Payload too large",
                "request bodies are limited to 16 KiB",
            ),
            Code::UnsupportedMediaType => row(
                "unsupported_media_type",
                S::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                "the request body must be application/json",
            ),
            Code::RateLimited => Row {
                extra: Some(Extra::FromError(header::RETRY_AFTER)),
                ..row(
                    "rate_limited",
                    S::TOO_MANY_REQUESTS,
                    "Too many requests",
                    "over a limit of [limits]: try again after Retry-After seconds",
                )
            },
            Code::StoreUnavailable => row(
                "store_unavailable",
                S::SERVICE_UNAVAILABLE,
                "Store unavailable",
                "the ticket store failed or did not answer in time; nothing was issued or accepted",
            ),
            Code::AuthUnavailable => row(
                "auth_unavailable",
                S::SERVICE_UNAVAILABLE,
                "Authentication unavailable",
                "the identity provider or forward-auth endpoint did not answer usably; try again",
            ),
            Code::ShuttingDown => row(
                "shutting_down",
                S::SERVICE_UNAVAILABLE,
                "Shutting down",
                "this instance is draining before it stops",
            ),
            Code::Internal => row(
                "internal",
                S::INTERNAL_SERVER_ERROR,
                "Internal error",
                "unexpected error",
            ),
        }
    }

    /// The stable machine-readable code.
    pub fn as_str(self) -> &'static str {
        self.row().code
    }
}

/// The error every handler and extractor answers with.
#[derive(Debug)]
pub(crate) struct ApiError {
    code: Code,
    detail: Option<Cow<'static, str>>,
    header: Option<HeaderValue>,
    /// Headers beyond the table's, that a door adds (`RateLimit`).
    more: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail())
    }
}

impl From<Code> for ApiError {
    fn from(code: Code) -> Self {
        ApiError {
            code,
            detail: None,
            header: None,
            more: Vec::new(),
        }
    }
}

impl ApiError {
    pub(crate) fn with_detail(code: Code, detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            detail: Some(detail.into()),
            ..ApiError::from(code)
        }
    }

    /// `invalid_request` with a detail in our own words.
    pub(crate) fn invalid(detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::with_detail(Code::InvalidRequest, detail)
    }

    /// The value of the code's [`Extra::FromError`] header.
    pub(crate) fn with_header(mut self, value: HeaderValue) -> Self {
        self.header = Some(value);
        self
    }

    /// One more header on the answer.
    pub(crate) fn with_more(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.more.push((name, value));
        self
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> Code {
        self.code
    }

    pub(crate) fn detail(&self) -> &str {
        self.detail.as_deref().unwrap_or(self.code.row().detail)
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.row().status
    }

    fn error_response(&self) -> HttpResponse {
        let row = self.code.row();
        let mut res = HttpResponse::build(row.status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"))
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        match (&row.extra, &self.header) {
            (Some(Extra::Fixed(name, value)), _) => {
                res.insert_header((name.clone(), HeaderValue::from_static(value)));
            }
            (Some(Extra::FromError(name)), Some(value)) => {
                res.insert_header((name.clone(), value.clone()));
            }
            _ => {}
        }
        for (name, value) in &self.more {
            res.insert_header((name.clone(), value.clone()));
        }
        res.body(problem_body(self))
    }
}

/// The problem+json body of `error`.
fn problem_body(error: &ApiError) -> Vec<u8> {
    let row = error.code.row();
    // Serialising a struct of strings and an integer cannot fail.
    serde_json::to_vec(&Problem {
        kind: format!("urn:wsticket:problem:{}", row.code),
        title: row.title,
        status: row.status.as_u16(),
        code: row.code,
        detail: error.detail(),
    })
    .unwrap_or_default()
}

/// A whole HTTP/1.1 answer for `error`, as bytes, that closes the
/// connection: for `wire`, which answers below actix's routing.
pub(crate) fn raw_http_response(error: &ApiError) -> Vec<u8> {
    let row = error.code.row();
    let body = problem_body(error);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\n\
         cache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        row.status.as_u16(),
        row.status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

// ---- what the core and the authenticator say, as codes ---------------------

/// Whole seconds, at least 1 (what `Retry-After` and `RateLimit` carry).
fn whole_secs(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// 429 with `Retry-After` and the IETF `RateLimit-Policy` and `RateLimit`
/// fields: the refusing limit's quota per window, none left, and when.
fn rate_limited(l: &Limited) -> ApiError {
    let name = l.limit.as_str();
    let retry = whole_secs(l.retry_after);
    let policy = format!("\"{name}\";q={};w={}", l.quota, whole_secs(l.window));
    let now = format!("\"{name}\";r=0;t={retry}");
    let value = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("1"));
    ApiError::with_detail(
        Code::RateLimited,
        match l.limit {
            Limit::User => "this user mints too fast: try again after Retry-After seconds",
            Limit::Ip => "this address mints too fast: try again after Retry-After seconds",
            Limit::Live => {
                "this user holds too many unused tickets: use or let some expire, then try again"
            }
        },
    )
    .with_header(HeaderValue::from(retry))
    .with_more(HeaderName::from_static("ratelimit-policy"), value(policy))
    .with_more(HeaderName::from_static("ratelimit"), value(now))
}

impl From<StoreUnavailable> for ApiError {
    fn from(_: StoreUnavailable) -> Self {
        Code::StoreUnavailable.into()
    }
}

impl From<NotPermitted> for ApiError {
    fn from(e: NotPermitted) -> Self {
        ApiError::with_detail(Code::Forbidden, e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(_) => Code::Unauthenticated.into(),
            AuthError::Unavailable(_) => Code::AuthUnavailable.into(),
        }
    }
}

impl From<MintError> for ApiError {
    fn from(e: MintError) -> Self {
        match e {
            MintError::Invalid(detail) => ApiError::with_detail(Code::InvalidRequest, detail),
            MintError::Forbidden(detail) => ApiError::with_detail(Code::Forbidden, detail),
            MintError::OriginNotAllowed => Code::OriginNotAllowed.into(),
            MintError::RateLimited(l) => rate_limited(&l),
            MintError::StoreUnavailable(e) => e.into(),
            MintError::Internal => Code::Internal.into(),
        }
    }
}

impl From<RedeemError> for ApiError {
    fn from(e: RedeemError) -> Self {
        match e {
            RedeemError::NotPermitted(e) => e.into(),
            RedeemError::AudienceNotPermitted => ApiError::with_detail(
                Code::Forbidden,
                "the audience is not one this caller may redeem; no ticket was touched",
            ),
            // Not accepted, but a store that failed or timed out may still
            // have consumed the ticket: nobody may count on it any more.
            RedeemError::StoreUnavailable(_) => ApiError::with_detail(
                Code::StoreUnavailable,
                "the ticket store failed or did not answer in time: the redeem was not \
                 accepted, but its outcome in the store is unknown; treat the ticket as \
                 burned (mint a new one) and never retry a redeem",
            ),
            RedeemError::Refused(r) => match r.outcome {
                Outcome::Malformed => ApiError::invalid(
                    "ticket does not have the form wst_<kid>_<43 base64url characters>",
                ),
                // A revoked ticket is as good as unknown to its presenter.
                Outcome::Invalid | Outcome::Revoked => Code::TicketInvalid.into(),
                Outcome::Reused | Outcome::ReusedAfterStoreError => Code::TicketReused.into(),
                Outcome::OriginMismatch => Code::OriginMismatch.into(),
                Outcome::AudienceMismatch => Code::AudienceMismatch.into(),
                Outcome::IpMismatch => Code::IpMismatch.into(),
                // A refusal is never Ok; should one be, it must not pass.
                Outcome::Ok => Code::Internal.into(),
            },
        }
    }
}

impl From<RevokeError> for ApiError {
    fn from(e: RevokeError) -> Self {
        match e {
            RevokeError::NotPermitted(e) => e.into(),
            RevokeError::Invalid(detail) => ApiError::with_detail(Code::InvalidRequest, detail),
            RevokeError::Forbidden(detail) => ApiError::with_detail(Code::Forbidden, detail),
            RevokeError::StoreUnavailable(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn problem_body_has_every_field_and_no_store() {
        let res = ApiError::from(Code::TicketReused).error_response();
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
        assert_eq!(
            res.headers().get(header::CACHE_CONTROL).unwrap(),
            "no-store"
        );
        let body = res.into_body().try_into_bytes().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "ticket_reused");
        assert_eq!(v["status"], 409);
        assert_eq!(v["type"], "urn:wsticket:problem:ticket_reused");
        assert!(v["title"].is_string() && v["detail"].is_string());
    }

    #[test]
    fn unauthenticated_carries_www_authenticate() {
        let res = ApiError::from(Code::Unauthenticated).error_response();
        assert_eq!(
            res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
    }

    #[test]
    fn a_header_from_the_error_is_sent_only_for_its_code() {
        let res = ApiError::from(Code::MethodNotAllowed)
            .with_header(HeaderValue::from_static("GET"))
            .error_response();
        assert_eq!(res.headers().get(header::ALLOW).unwrap(), "GET");
        let res = ApiError::from(Code::NotFound)
            .with_header(HeaderValue::from_static("GET"))
            .error_response();
        assert!(res.headers().get(header::ALLOW).is_none());
    }

    #[test]
    fn the_body_limit_is_the_one_the_detail_names() {
        assert_eq!(super::super::MAX_BODY_BYTES, 16 * 1024);
        assert!(Code::PayloadTooLarge.row().detail.contains("16 KiB"));
    }

    #[test]
    fn every_code_is_listed_once_with_a_distinct_name() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        for c in Code::ALL {
            let r = c.row();
            assert!(r.status.is_client_error() || r.status.is_server_error());
        }
    }
}

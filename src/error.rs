//! The one error type at the HTTP edge. Every failure, including actix's own
//! extractor rejections and unknown routes, leaves the server as an RFC 9457
//! `application/problem+json` body with a stable `code`.
//!
//! Details are written by us, never copied from input: a ticket or a key that a
//! client put in the wrong field must not be echoed back.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::borrow::Cow;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request: {0}")]
    InvalidRequest(Cow<'static, str>),
    #[error("unauthenticated")]
    Unauthenticated,
    #[error("forbidden: {0}")]
    Forbidden(Cow<'static, str>),
    #[error("origin not allowed")]
    OriginNotAllowed,
    #[error("origin mismatch")]
    OriginMismatch,
    #[error("audience mismatch")]
    AudienceMismatch,
    #[error("ticket invalid")]
    TicketInvalid,
    #[error("ticket reused")]
    TicketReused,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("store unavailable")]
    StoreUnavailable,
    #[error("authentication unavailable")]
    AuthUnavailable,
    #[error("shutting down")]
    ShuttingDown,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn invalid(detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::InvalidRequest(detail.into())
    }

    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Forbidden(detail.into())
    }

    /// The stable machine-readable code (SPEC "Error codes").
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::OriginNotAllowed => "origin_not_allowed",
            ApiError::OriginMismatch => "origin_mismatch",
            ApiError::AudienceMismatch => "audience_mismatch",
            ApiError::TicketInvalid => "ticket_invalid",
            ApiError::TicketReused => "ticket_reused",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::StoreUnavailable => "store_unavailable",
            ApiError::AuthUnavailable => "auth_unavailable",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Internal => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "Invalid request",
            ApiError::Unauthenticated => "Unauthenticated",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::OriginNotAllowed => "Origin not allowed",
            ApiError::OriginMismatch => "Origin mismatch",
            ApiError::AudienceMismatch => "Audience mismatch",
            ApiError::TicketInvalid => "Ticket invalid",
            ApiError::TicketReused => "Ticket reused",
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed { .. } => "Method not allowed",
            ApiError::PayloadTooLarge => "Payload too large",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::StoreUnavailable => "Store unavailable",
            ApiError::AuthUnavailable => "Authentication unavailable",
            ApiError::ShuttingDown => "Shutting down",
            ApiError::Internal => "Internal error",
        }
    }

    fn detail(&self) -> Cow<'static, str> {
        match self {
            ApiError::InvalidRequest(d) | ApiError::Forbidden(d) => d.clone(),
            ApiError::Unauthenticated => {
                "a valid credential is required: Authorization: Bearer <credential>".into()
            }
            ApiError::OriginNotAllowed => "the origin is not in tickets.allowed_origins".into(),
            ApiError::OriginMismatch => {
                "the ticket was minted for another origin; it has been consumed".into()
            }
            ApiError::AudienceMismatch => {
                "this caller may not redeem the ticket's audience; it has been consumed".into()
            }
            ApiError::TicketInvalid => "the ticket is unknown, expired or revoked".into(),
            ApiError::TicketReused => "the ticket has already been redeemed".into(),
            ApiError::NotFound => "no such route".into(),
            ApiError::MethodNotAllowed { allow } => {
                format!("this route only answers {allow}").into()
            }
            ApiError::PayloadTooLarge => "request bodies are limited to 16 KiB".into(),
            ApiError::UnsupportedMediaType => "the request body must be application/json".into(),
            ApiError::StoreUnavailable => {
                "the ticket store failed or did not answer in time; nothing was issued or accepted"
                    .into()
            }
            ApiError::AuthUnavailable => {
                "the identity provider or forward-auth endpoint did not answer usably; try again"
                    .into()
            }
            ApiError::ShuttingDown => "this instance is draining before it stops".into(),
            ApiError::Internal => "unexpected error".into(),
        }
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
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_)
            | ApiError::OriginNotAllowed
            | ApiError::OriginMismatch
            | ApiError::AudienceMismatch => StatusCode::FORBIDDEN,
            ApiError::TicketInvalid | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::TicketReused => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::StoreUnavailable | ApiError::AuthUnavailable | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = self.detail();
        let body = Problem {
            kind: format!("urn:wsticket:problem:{}", self.code()),
            title: self.title(),
            status: status.as_u16(),
            code: self.code(),
            detail: &detail,
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"))
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        match self {
            ApiError::Unauthenticated => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed { allow } => {
                res.insert_header((header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        // Serialising a struct of strings and an integer cannot fail.
        res.body(serde_json::to_vec(&body).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn problem_body_has_every_field_and_no_store() {
        let res = ApiError::TicketReused.error_response();
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
        let res = ApiError::Unauthenticated.error_response();
        assert_eq!(
            res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
    }
}

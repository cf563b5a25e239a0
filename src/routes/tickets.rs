//! `POST /v1/tickets` and `POST /v1/tickets/redeem`: the REST doors of the
//! ticket core. Each handler parses (its extractors), calls the core, and
//! shapes the answer; the core enforces the policy and keeps the books.

use super::extract::{JsonBody, KeyCaller, client_ip};
use super::no_store;
use super::problem::ApiError;
use crate::auth::Caller;
use crate::core::{Door, MintRequest, RedeemRequest, TicketCore, rfc3339_ms};
use crate::domain::{Audience, Claims};
use actix_web::http::StatusCode;
use actix_web::http::header::ORIGIN;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::net::IpAddr;
use std::time::SystemTime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintBody {
    user_id: Option<String>,
    origin: Option<String>,
    audience: Option<String>,
    ttl_secs: Option<u64>,
    /// Kept as the caller wrote it: passed to the redeemer untouched.
    claims: Option<Box<RawValue>>,
    bind_ip: Option<bool>,
    /// API-key callers: the user's address, to bind the ticket to.
    client_ip: Option<String>,
}

#[derive(Serialize)]
struct MintResponse<'a> {
    ticket: String,
    expires_at: String,
    expires_in: u64,
    audience: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedeemBody {
    ticket: String,
    origin: Option<String>,
    /// The audience the WebSocket server expects, if it says.
    audience: Option<String>,
    /// The client address the WebSocket server saw.
    client_ip: Option<String>,
}

#[derive(Serialize)]
struct RedeemResponse<'a> {
    user_id: &'a str,
    origin: Option<&'a str>,
    audience: &'a str,
    claims: &'a RawValue,
    issued_at: String,
    expires_at: String,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub(crate) async fn mint(
    req: HttpRequest,
    caller: Caller,
    core: web::Data<TicketCore>,
    body: JsonBody<MintBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let claims = match body.claims {
        None => None,
        Some(raw) => Some(
            Claims::from_raw(raw)
                .ok_or_else(|| ApiError::invalid("invalid value for `claims`: expected a map"))?,
        ),
    };
    let request = MintRequest {
        user_id: body.user_id,
        origin: body.origin,
        audience: body.audience,
        ttl_secs: body.ttl_secs,
        claims,
        origin_header: req.headers().get(ORIGIN).and_then(|v| v.to_str().ok()),
        client_ip: client_ip(&req, &core.limits().trusted_proxies),
        bind_ip: body.bind_ip,
        user_ip: body.client_ip,
    };
    let minted = core.mint(&caller, request).await?;
    Ok(no_store(StatusCode::CREATED).json(MintResponse {
        ticket: minted.ticket.expose(),
        expires_at: rfc3339(minted.expires_at),
        expires_in: minted.expires_in,
        audience: minted.audience.as_ref(),
    }))
}

pub(crate) async fn redeem(
    KeyCaller(caller): KeyCaller,
    core: web::Data<TicketCore>,
    body: JsonBody<RedeemBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let audience = body
        .audience
        .as_deref()
        .map(Audience::parse)
        .transpose()
        .map_err(ApiError::invalid)?;
    // Parsed before the ticket is touched: a malformed address spends none.
    let client_ip = body
        .client_ip
        .as_deref()
        .map(|ip| ip.trim().parse::<IpAddr>())
        .transpose()
        .map_err(|_| ApiError::invalid("client_ip is not an IPv4 or IPv6 address"))?;
    let request = RedeemRequest {
        ticket: &body.ticket,
        origin: body.origin.as_deref(),
        door: Door::Redeem,
        audience: audience.as_ref(),
        client_ip,
    };
    let r = core.redeem(&caller, request).await?;
    Ok(no_store(StatusCode::OK).json(RedeemResponse {
        user_id: r.user.as_ref(),
        origin: r.origin.as_ref().map(AsRef::as_ref),
        audience: r.audience.as_ref(),
        claims: r.claims.as_raw(),
        // Milliseconds: compared with a revocation's `before`.
        issued_at: rfc3339_ms(r.issued_at),
        expires_at: rfc3339(r.expires_at),
    }))
}

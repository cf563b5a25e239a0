//! `POST /v1/tickets` and `POST /v1/tickets/redeem`.

use super::json::JsonBody;
use crate::auth::{Caller, KeyCaller, Permission};
use crate::domain::{Audience, Origin, OriginError, Ticket, UserId};
use crate::error::ApiError;
use crate::tickets::{MintInput, Outcome, TicketService};
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, ORIGIN};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::SystemTime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintBody {
    user_id: Option<String>,
    origin: Option<String>,
    audience: Option<String>,
    ttl_secs: Option<u64>,
    claims: Option<Map<String, Value>>,
}

#[derive(Serialize)]
struct MintResponse {
    ticket: String,
    expires_at: String,
    expires_in: u64,
    audience: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    ticket: String,
    origin: Option<String>,
}

#[derive(Serialize)]
struct RedeemResponse {
    user_id: String,
    origin: Option<String>,
    audience: String,
    claims: Map<String, Value>,
    issued_at: String,
    expires_at: String,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn no_store(status: actix_web::http::StatusCode) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    res
}

/// An origin a ticket may be minted for: well-formed and allowed.
fn allowed_origin(svc: &TicketService, raw: &str) -> Result<Origin, ApiError> {
    if let Some(origin) = svc.policy().allowed_origins.exact_entry(raw) {
        return Ok(origin.clone());
    }
    let origin = Origin::parse(raw).map_err(|e| match e {
        OriginError::Opaque => ApiError::OriginNotAllowed,
        OriginError::Malformed(_) => ApiError::invalid(e.to_string()),
    })?;
    if !svc.policy().allowed_origins.allows(&origin) {
        return Err(ApiError::OriginNotAllowed);
    }
    Ok(origin)
}

/// Who a ticket is for, where it may be used, what it carries.
type Subject = (UserId, Option<Origin>, Map<String, Value>);

/// Who the ticket is for, where it may be used and what it carries:
/// from the body for API-key callers, from the credential and the browser's
/// `Origin` header for frontend callers.
fn subject(
    svc: &TicketService,
    caller: &Caller,
    origin_header: Option<&str>,
    body: &mut MintBody,
) -> Result<Subject, ApiError> {
    match caller {
        Caller::Client(_) => {
            let user = UserId::parse(
                body.user_id
                    .take()
                    .ok_or_else(|| ApiError::invalid("missing field `user_id`"))?,
            )
            .map_err(ApiError::invalid)?;
            let origin = match body.origin.as_deref() {
                Some(raw) => Some(allowed_origin(svc, raw)?),
                None if svc.policy().allow_originless => None,
                None => return Err(ApiError::invalid("missing field `origin`")),
            };
            Ok((user, origin, body.claims.take().unwrap_or_default()))
        }
        Caller::Frontend(f) => {
            if body.user_id.is_some() {
                return Err(ApiError::invalid(
                    "user_id is not accepted from browser callers: the user comes from the credential",
                ));
            }
            if body.claims.is_some() {
                return Err(ApiError::invalid(
                    "claims are not accepted from browser callers: they come from the credential",
                ));
            }
            let header = origin_header
                .ok_or_else(|| ApiError::invalid("browser callers must send an Origin header"))?;
            let origin = allowed_origin(svc, header)?;
            if let Some(raw) = body.origin.as_deref()
                && Origin::parse(raw).ok().as_ref() != Some(&origin)
            {
                return Err(ApiError::invalid("origin must equal the Origin header"));
            }
            Ok((f.user.clone(), Some(origin), f.claims.clone()))
        }
    }
}

/// Body → domain types, against the policy. Order: who the ticket is for,
/// where it may be used, which service, how long, what it carries.
fn mint_input(
    svc: &TicketService,
    caller: &Caller,
    origin_header: Option<&str>,
    mut body: MintBody,
) -> Result<MintInput, ApiError> {
    let policy = svc.policy();
    let (user, origin, claims) = subject(svc, caller, origin_header, &mut body)?;
    let audience = match body.audience {
        Some(a) => Audience::parse(&a).map_err(ApiError::invalid)?,
        None => policy.default_audience.clone(),
    };
    if !policy.audiences.contains(&audience) {
        return Err(ApiError::forbidden(
            "the audience is not one of tickets.audiences",
        ));
    }
    if !caller.may_use(&audience) {
        return Err(ApiError::forbidden(
            "this client may not mint tickets for that audience",
        ));
    }
    let ttl_secs = body.ttl_secs.unwrap_or(policy.default_ttl_secs);
    if !(1..=policy.max_ttl_secs).contains(&ttl_secs) {
        return Err(ApiError::invalid(format!(
            "ttl_secs must be between 1 and {}",
            policy.max_ttl_secs
        )));
    }
    let claims_len = serde_json::to_vec(&claims)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if claims_len > policy.max_claims_bytes {
        return Err(ApiError::invalid(format!(
            "claims are limited to {} serialised bytes",
            policy.max_claims_bytes
        )));
    }
    Ok(MintInput {
        user,
        origin,
        audience,
        ttl_secs,
        claims,
    })
}

pub async fn mint(
    req: HttpRequest,
    caller: Caller,
    svc: web::Data<TicketService>,
    body: JsonBody<MintBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::Issue)?;
    let origin_header = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok());
    let input = mint_input(&svc, &caller, origin_header, body.0)?;
    let minted = svc.mint(input).await?;
    Ok(
        no_store(actix_web::http::StatusCode::CREATED).json(MintResponse {
            ticket: minted.ticket.expose(),
            expires_at: rfc3339(minted.expires_at),
            expires_in: minted.expires_in,
            audience: minted.audience.as_ref().to_owned(),
        }),
    )
}

pub async fn redeem(
    KeyCaller(caller): KeyCaller,
    svc: web::Data<TicketService>,
    body: JsonBody<RedeemBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::Redeem)?;
    let body = body.0;
    let Ok(ticket) = Ticket::parse(&body.ticket) else {
        svc.metrics().redemption(None, Outcome::Malformed.as_str());
        tracing::info!(
            caller = caller.name(),
            outcome = Outcome::Malformed.as_str(),
            "redeem refused"
        );
        return Err(ApiError::invalid(
            "ticket does not have the form wst_<kid>_<43 base64url characters>",
        ));
    };
    match svc.redeem(&ticket, body.origin.as_deref(), &caller).await {
        Ok(r) => {
            svc.metrics()
                .redemption(Some(&r.audience), Outcome::Ok.as_str());
            // The audit trail of who connected to which service; its
            // ticket_ref is what a later reuse warning names.
            tracing::info!(
                caller = caller.name(),
                user_id = %r.user_id,
                audience = %r.audience,
                ticket_ref = %r.ticket_ref,
                "ticket redeemed"
            );
            Ok(
                no_store(actix_web::http::StatusCode::OK).json(RedeemResponse {
                    user_id: r.user_id,
                    origin: r.origin,
                    audience: r.audience,
                    claims: r.claims,
                    issued_at: rfc3339(r.issued_at),
                    expires_at: rfc3339(r.expires_at),
                }),
            )
        }
        Err(f) => {
            if let Some(outcome) = f.outcome {
                svc.metrics()
                    .redemption(f.audience.as_deref(), outcome.as_str());
                let user_id = f.user_id.as_deref().unwrap_or("<unknown>");
                let ticket_ref = f.ticket_ref.as_deref().unwrap_or("<none>");
                if outcome == Outcome::Reused {
                    // A security signal: a ticket was presented after use.
                    tracing::warn!(
                        caller = caller.name(),
                        user_id,
                        ticket_ref,
                        outcome = outcome.as_str(),
                        "ticket reused: a redeemed ticket was presented again (possible leak)"
                    );
                } else {
                    tracing::info!(
                        caller = caller.name(),
                        user_id,
                        ticket_ref,
                        outcome = outcome.as_str(),
                        "redeem refused"
                    );
                }
            }
            Err(f.error)
        }
    }
}

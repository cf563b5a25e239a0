//! `POST /v1/tickets/revoke` and `POST /v1/users/revoke`: the revocation
//! doors of the ticket core. Neither puts a ticket or a user id in a URL.

use super::extract::{JsonBody, KeyCaller};
use super::no_store;
use super::problem::ApiError;
use crate::core::{TicketCore, rfc3339_ms};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeTicketBody {
    ticket: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeUserBody {
    user_id: String,
    /// Absent: every audience.
    audience: Option<String>,
}

#[derive(Serialize)]
struct UserRevoked {
    revoked_before: String,
}

/// 204 whether or not the ticket existed: the answer tells nothing of it.
pub(crate) async fn revoke_ticket(
    KeyCaller(caller): KeyCaller,
    core: web::Data<TicketCore>,
    body: JsonBody<RevokeTicketBody>,
) -> Result<HttpResponse, ApiError> {
    core.revoke_ticket(&caller, &body.0.ticket).await?;
    Ok(no_store(StatusCode::NO_CONTENT).finish())
}

pub(crate) async fn revoke_user(
    KeyCaller(caller): KeyCaller,
    core: web::Data<TicketCore>,
    body: JsonBody<RevokeUserBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let before = core
        .revoke_user_request(&caller, body.user_id, body.audience)
        .await?;
    Ok(no_store(StatusCode::OK).json(UserRevoked {
        revoked_before: rfc3339_ms(before),
    }))
}

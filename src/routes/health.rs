use super::problem::{ApiError, Code};
use crate::core::TicketCore;
use crate::lifecycle::Lifecycle;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// 200 while the process serves.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when the store answers, else 503 `store_unavailable`; 503
/// `shutting_down` once a shutdown signal arrived.
pub(crate) async fn readyz(
    core: web::Data<TicketCore>,
    lifecycle: web::Data<Lifecycle>,
) -> Result<HttpResponse, ApiError> {
    if lifecycle.is_draining() {
        return Err(Code::ShuttingDown.into());
    }
    core.ready().await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}

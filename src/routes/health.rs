use crate::error::ApiError;
use crate::startup::Lifecycle;
use crate::tickets::TicketService;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// 200 while the process serves.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when the store answers, else 503 `store_unavailable`; 503
/// `shutting_down` once a shutdown signal arrived.
pub async fn readyz(
    svc: web::Data<TicketService>,
    lifecycle: web::Data<Lifecycle>,
) -> Result<HttpResponse, ApiError> {
    if lifecycle.is_draining() {
        return Err(ApiError::ShuttingDown);
    }
    svc.ready().await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}

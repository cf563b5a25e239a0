use crate::error::ApiError;
use crate::tickets::TicketService;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// 200 while the process serves.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when the store answers, else 503 `store_unavailable`.
pub async fn readyz(svc: web::Data<TicketService>) -> Result<HttpResponse, ApiError> {
    svc.ready().await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}

use crate::error::ApiError;
use crate::metrics::Metrics;
use actix_web::{HttpResponse, web};

/// Prometheus text format.
pub async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, ApiError> {
    let body = metrics.encode().map_err(|e| {
        tracing::error!(error = %e, "cannot encode metrics");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(body))
}

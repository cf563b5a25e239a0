use super::problem::{ApiError, Code};
use crate::metrics::Metrics;
use actix_web::{HttpResponse, web};

/// Prometheus text format.
pub(crate) async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, ApiError> {
    let body = metrics.encode().map_err(|e| {
        tracing::error!(error = %e, "cannot encode metrics");
        ApiError::from(Code::Internal)
    })?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(body))
}

//! `GET /admin/usage` (totals from the daily rollups) and `GET /admin/logs` (request log pages).

use axum::Json;
use axum::extract::{RawQuery, State};

use crate::admin::{List, LogRequest, LogView, UsageReport, UsageRequest};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn totals(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<UsageReport>, ApiError> {
    let today = chrono::Utc::now().date_naive();
    let request = UsageRequest::parse(query.as_deref(), today)?;
    Ok(Json(state.admin.usage(request).await?))
}

pub async fn logs(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<List<LogView>>, ApiError> {
    let request = LogRequest::parse(query.as_deref())?;
    Ok(Json(state.admin.logs(request).await?))
}

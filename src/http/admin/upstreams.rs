//! `GET /admin/upstreams`: each route and account with its live state.

use axum::Json;
use axum::extract::{RawQuery, State};

use crate::admin::{UpstreamState, UpstreamsView};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<UpstreamsView>, ApiError> {
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        return Err(ApiError::invalid_request(format!(
            "GET /admin/upstreams takes no query parameters, got '{query}'."
        )));
    }
    // Health tracking reports into `UpstreamState`; until it does, every upstream reads healthy.
    Ok(Json(
        state
            .admin
            .upstreams(|_upstream| UpstreamState::default())
            .await?,
    ))
}

//! `/admin/providers`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;

use super::{object_id, parse_json};
use crate::admin::{List, ProviderDeleted, ProviderView, parse_query, query_flag};
use crate::error::ApiError;
use crate::http::extract::Body;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<List<ProviderView>>, ApiError> {
    let (page, _) = parse_query(query.as_deref(), &[])?;
    Ok(Json(state.admin.list_providers(page).await?))
}

pub async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ProviderView>, ApiError> {
    let id = object_id("provider", path)?;
    Ok(Json(state.admin.provider(id).await?))
}

pub async fn create(
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<(StatusCode, Json<ProviderView>), ApiError> {
    let new = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(state.admin.create_provider(new).await?),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Body(body): Body,
) -> Result<Json<ProviderView>, ApiError> {
    let id = object_id("provider", path)?;
    let patch = parse_json(&body)?;
    Ok(Json(state.admin.update_provider(id, patch).await?))
}

/// `DELETE /admin/providers/{id}[?cascade=true]`.
pub async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<ProviderDeleted>, ApiError> {
    let id = object_id("provider", path)?;
    let (_, extra) = parse_query(query.as_deref(), &["cascade"])?;
    let mut cascade = false;
    for (name, value) in extra {
        cascade = query_flag(name, &value)?;
    }
    Ok(Json(state.admin.delete_provider(id, cascade).await?))
}

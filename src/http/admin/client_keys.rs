//! `/admin/keys`: the same operations as `llmgate keys`, through `crate::auth`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;

use super::{object_id, parse_json};
use crate::admin::{Deleted, KeyView, List, parse_query};
use crate::error::ApiError;
use crate::http::extract::Body;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<List<KeyView>>, ApiError> {
    let (page, _) = parse_query(query.as_deref(), &[])?;
    Ok(Json(state.admin.list_keys(page).await?))
}

pub async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KeyView>, ApiError> {
    let id = object_id("key", path)?;
    Ok(Json(state.admin.key(id).await?))
}

/// The answer carries the plaintext `key`, this once.
pub async fn create(
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let new = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(state.admin.create_key(new).await?),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Body(body): Body,
) -> Result<Json<KeyView>, ApiError> {
    let id = object_id("key", path)?;
    let patch = parse_json(&body)?;
    Ok(Json(state.admin.update_key(id, patch).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Deleted>, ApiError> {
    let id = object_id("key", path)?;
    Ok(Json(state.admin.delete_key(id).await?))
}

/// A new plaintext, returned this once; the old one stops working.
pub async fn rotate(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KeyView>, ApiError> {
    let id = object_id("key", path)?;
    Ok(Json(state.admin.rotate_key(id).await?))
}

pub async fn revoke(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KeyView>, ApiError> {
    let id = object_id("key", path)?;
    Ok(Json(state.admin.revoke_key(id).await?))
}

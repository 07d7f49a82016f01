//! `/admin/models` (with their routes) and `/admin/routes/{id}`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;

use super::{object_id, parse_json};
use crate::admin::{Deleted, List, ModelView, RouteView, parse_query};
use crate::error::ApiError;
use crate::http::extract::Body;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<List<ModelView>>, ApiError> {
    let (page, _) = parse_query(query.as_deref(), &[])?;
    Ok(Json(state.admin.list_models(page).await?))
}

pub async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ModelView>, ApiError> {
    let id = object_id("model", path)?;
    Ok(Json(state.admin.model(id).await?))
}

pub async fn create(
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    let new = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(state.admin.create_model(new).await?),
    ))
}

/// `routes`, when present, replaces the model's whole route list.
pub async fn update(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Body(body): Body,
) -> Result<Json<ModelView>, ApiError> {
    let id = object_id("model", path)?;
    let patch = parse_json(&body)?;
    Ok(Json(state.admin.update_model(id, patch).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Deleted>, ApiError> {
    let id = object_id("model", path)?;
    Ok(Json(state.admin.delete_model(id).await?))
}

pub async fn get_route(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<RouteView>, ApiError> {
    let id = object_id("route", path)?;
    Ok(Json(state.admin.route(id).await?))
}

/// Switches, re-weights or re-prioritises one route.
pub async fn update_route(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Body(body): Body,
) -> Result<Json<RouteView>, ApiError> {
    let id = object_id("route", path)?;
    let patch = parse_json(&body)?;
    Ok(Json(state.admin.update_route(id, patch).await?))
}

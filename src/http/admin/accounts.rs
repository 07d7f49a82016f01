//! `/admin/accounts`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;

use super::{object_id, parse_json};
use crate::admin::{AccountView, Deleted, List, parse_query};
use crate::error::ApiError;
use crate::http::extract::Body;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<List<AccountView>>, ApiError> {
    let (page, _) = parse_query(query.as_deref(), &[])?;
    Ok(Json(state.admin.list_accounts(page).await?))
}

pub async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AccountView>, ApiError> {
    let id = object_id("account", path)?;
    Ok(Json(state.admin.account(id).await?))
}

pub async fn create(
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    let new = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(state.admin.create_account(new).await?),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Body(body): Body,
) -> Result<Json<AccountView>, ApiError> {
    let id = object_id("account", path)?;
    let patch = parse_json(&body)?;
    Ok(Json(state.admin.update_account(id, patch).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Deleted>, ApiError> {
    let id = object_id("account", path)?;
    Ok(Json(state.admin.delete_account(id).await?))
}

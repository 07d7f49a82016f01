//! `GET /admin/upstreams`: each route and account with its live state.

use axum::Json;
use axum::extract::{RawQuery, State};

use crate::admin::{ModelCooldownState, Upstream, UpstreamState, UpstreamsView};
use crate::error::ApiError;
use crate::routing::CircuitState;
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
    let health = &state.health;
    let now = health.now_ms();
    let rfc3339 = |at_ms: i64| {
        chrono::DateTime::from_timestamp_millis(health.to_unix_ms(at_ms))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    let state_of = |upstream: Upstream| match upstream {
        Upstream::Route(id) => health
            .peek_route(id)
            .map(|route| UpstreamState {
                healthy: route.circuit(now) == CircuitState::Closed,
                cooldown_until: route.open_until().and_then(rfc3339),
                recent_errors: route.recent_errors(),
            })
            .unwrap_or_default(),
        Upstream::Account(id) => health
            .peek_account(id)
            .map(|account| UpstreamState {
                healthy: account.usable(now),
                cooldown_until: account.cooling_until(now).and_then(rfc3339),
                recent_errors: account.recent_errors(),
            })
            .unwrap_or_default(),
    };
    let model_cooldowns_of = |account_id: i64| {
        health
            .cooling_models(account_id, now)
            .into_iter()
            .map(
                |(upstream_model, until, recent_errors)| ModelCooldownState {
                    upstream_model,
                    cooldown_until: rfc3339(until),
                    recent_errors,
                },
            )
            .collect()
    };
    Ok(Json(
        state.admin.upstreams(state_of, model_cooldowns_of).await?,
    ))
}

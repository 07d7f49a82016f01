//! Operations endpoints that need no key: liveness, readiness and metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::cluster::Cluster;
use crate::routing::CircuitState;
use crate::state::AppState;

pub async fn healthz() -> impl IntoResponse {
    ([("content-type", "application/json")], r#"{"status":"ok"}"#)
}

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.db.ping().await {
        // Redis down degrades limits to per process; the replica still serves, so it stays
        // ready and says so.
        let body = match &state.cluster {
            Some(cluster) if !cluster.is_up() => {
                r#"{"status":"ready","degraded":"redis unreachable: rate limits, budgets, cooldowns and circuits are per process until it is back"}"#
            }
            _ => r#"{"status":"ready"}"#,
        };
        (StatusCode::OK, [("content-type", "application/json")], body)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "application/json")],
            r#"{"status":"unavailable","reason":"database unreachable"}"#,
        )
    }
}

/// Prometheus text exposition. Route and account states are read from the health registry at
/// scrape time, so they are current without any bookkeeping on the request path.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let metrics = &state.metrics;
    let now = state.health.now_ms();
    let catalog = state.gateway.catalog();
    metrics.redis_up.set(i64::from(
        state.cluster.as_ref().is_some_and(Cluster::is_up),
    ));
    metrics.circuit_state.reset();
    metrics.account_cooling.reset();
    for model in catalog.models() {
        for route in &model.routes {
            let value = match route.health.circuit(now) {
                CircuitState::Closed => 0,
                CircuitState::Open => 1,
                CircuitState::HalfOpen => 2,
            };
            metrics
                .circuit_state
                .with_label_values(&[&model.name, &route.provider.name, &route.id.to_string()])
                .set(value);
            // One series per (account, upstream model) pair, the grain of upstream limits.
            for (account, cooldown) in route.accounts() {
                let value = if account.health.is_invalid() {
                    2
                } else if account.health.cooling_until(now).is_some() {
                    3
                } else if cooldown.cooling_until(now).is_some() {
                    1
                } else {
                    0
                };
                metrics
                    .account_cooling
                    .with_label_values(&[
                        &route.provider.name,
                        &account.name,
                        &route.upstream_model,
                    ])
                    .set(value);
            }
        }
    }
    // Dropped log rows are counted by the recorder (one atomic add); copied here at scrape time.
    metrics.request_log_dropped.reset();
    metrics
        .request_log_dropped
        .inc_by(state.usage.dropped_rows());
    metrics.responses_unstored.reset();
    metrics
        .responses_unstored
        .inc_by(state.usage.unstored_responses());
    let (hits, misses) = state.keys.lookups();
    metrics.key_cache.with_label_values(&["hit"]).reset();
    metrics.key_cache.with_label_values(&["hit"]).inc_by(hits);
    metrics.key_cache.with_label_values(&["miss"]).reset();
    metrics
        .key_cache
        .with_label_values(&["miss"])
        .inc_by(misses);
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
}

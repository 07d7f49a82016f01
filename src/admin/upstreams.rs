//! The upstream health view: every route and account with its configuration and live state.
//!
//! The state fields live in one struct, [`UpstreamState`], filled by the function the caller
//! passes to [`view`]; until health tracking reports into it, every upstream reads healthy.
//! Upstream 429s cool an account for one upstream model at a time: each account lists those
//! cooldowns in `model_cooldowns`, while its own `healthy` and `cooldown_until` say whether the
//! account as a whole is usable (credential accepted, not out of quota).

use serde::Serialize;

use super::{Admin, AdminError};
use crate::db::{AccountRecord, RouteRecord, UpstreamRows};

/// The live state of one route or account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamState {
    /// Whether requests may go there now (closed circuit; account not cooling down or refused).
    pub healthy: bool,
    /// RFC 3339 time until which it is skipped, if it is.
    pub cooldown_until: Option<String>,
    /// Failures since the last success.
    pub recent_errors: u32,
}

impl Default for UpstreamState {
    fn default() -> Self {
        Self {
            healthy: true,
            cooldown_until: None,
            recent_errors: 0,
        }
    }
}

/// One upstream model an account is cooling down for after that model's upstream 429s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelCooldownState {
    pub upstream_model: String,
    /// RFC 3339 time until which the account is not sent requests for this model.
    pub cooldown_until: Option<String>,
    /// 429s for this model since it last answered.
    pub recent_errors: u32,
}

/// Which upstream a state is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Route(i64),
    Account(i64),
}

#[derive(Debug, Serialize)]
pub struct RouteUpstream {
    pub id: i64,
    /// The public model.
    pub model: String,
    pub provider: String,
    /// The upstream's own name for the model.
    pub upstream_model: String,
    pub weight: i64,
    pub priority: i64,
    pub enabled: bool,
    /// False when neither the route nor llmgate's built-in catalog gives it an input and an
    /// output price: its requests cost 0 and no dollar budget is charged for them.
    pub priced: bool,
    #[serde(flatten)]
    pub state: UpstreamState,
}

#[derive(Debug, Serialize)]
pub struct AccountUpstream {
    pub id: i64,
    pub provider: String,
    pub name: String,
    pub weight: i64,
    pub rpm: Option<i64>,
    pub enabled: bool,
    pub api_key_hint: String,
    #[serde(flatten)]
    pub state: UpstreamState,
    /// The upstream models this account is cooling down for now.
    pub model_cooldowns: Vec<ModelCooldownState>,
}

/// `GET /admin/upstreams`: `{"routes": [...], "accounts": [...]}`.
#[derive(Debug, Serialize)]
pub struct UpstreamsView {
    pub routes: Vec<RouteUpstream>,
    pub accounts: Vec<AccountUpstream>,
}

/// Builds the view from the stored rows, the live state of each upstream, and the per-model
/// cooldowns of each account (by account id).
pub fn view(
    rows: UpstreamRows,
    state_of: impl Fn(Upstream) -> UpstreamState,
    model_cooldowns_of: impl Fn(i64) -> Vec<ModelCooldownState>,
) -> UpstreamsView {
    UpstreamsView {
        routes: rows
            .routes
            .into_iter()
            .map(|r: RouteRecord| RouteUpstream {
                state: state_of(Upstream::Route(r.id)),
                priced: super::models::route_terms(&r).prices.is_some(),
                id: r.id,
                model: r.model,
                provider: r.provider,
                upstream_model: r.upstream_model,
                weight: r.weight,
                priority: r.priority,
                enabled: r.enabled,
            })
            .collect(),
        accounts: rows
            .accounts
            .into_iter()
            .map(|a: AccountRecord| AccountUpstream {
                state: state_of(Upstream::Account(a.id)),
                model_cooldowns: model_cooldowns_of(a.id),
                id: a.id,
                provider: a.provider,
                name: a.name,
                weight: a.weight,
                rpm: a.rpm,
                enabled: a.enabled,
                api_key_hint: a.api_key_hint,
            })
            .collect(),
    }
}

impl Admin {
    /// Every route and account with its live state as `state_of` and `model_cooldowns_of`
    /// report it.
    pub async fn upstreams(
        &self,
        state_of: impl Fn(Upstream) -> UpstreamState,
        model_cooldowns_of: impl Fn(i64) -> Vec<ModelCooldownState>,
    ) -> Result<UpstreamsView, AdminError> {
        Ok(view(
            self.db.upstream_rows().await?,
            state_of,
            model_cooldowns_of,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_carries_each_upstream_with_its_state() {
        let rows = UpstreamRows {
            routes: vec![RouteRecord {
                id: 1,
                model_id: 1,
                model: "m".into(),
                provider_id: 1,
                provider: "p".into(),
                upstream_model: "up".into(),
                weight: 2,
                priority: 1,
                enabled: true,
                overrides: crate::db::RouteOverridesRow::default(),
                created_at: 0,
                updated_at: 0,
            }],
            accounts: vec![AccountRecord {
                id: 7,
                provider_id: 1,
                provider: "p".into(),
                name: "a".into(),
                api_key_hint: "sk-…1234".into(),
                weight: 1,
                rpm: None,
                enabled: false,
                source: "api".into(),
                created_at: 0,
                updated_at: 0,
            }],
        };
        let view = view(
            rows,
            |upstream| match upstream {
                Upstream::Account(7) => UpstreamState {
                    healthy: false,
                    cooldown_until: Some("2030-01-01T00:00:00Z".into()),
                    recent_errors: 3,
                },
                _ => UpstreamState::default(),
            },
            |account| {
                vec![ModelCooldownState {
                    upstream_model: format!("up-{account}"),
                    cooldown_until: Some("2030-01-01T00:00:00Z".into()),
                    recent_errors: 1,
                }]
            },
        );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["routes"][0]["upstream_model"], "up");
        assert_eq!(json["routes"][0]["healthy"], true);
        assert_eq!(json["routes"][0]["cooldown_until"], serde_json::Value::Null);
        assert_eq!(
            json["routes"][0]["priced"], false,
            "'up' is in no catalog and the route sets no price"
        );
        assert_eq!(json["accounts"][0]["api_key_hint"], "sk-…1234");
        assert_eq!(json["accounts"][0]["healthy"], false);
        assert_eq!(json["accounts"][0]["recent_errors"], 3);
        assert_eq!(
            json["accounts"][0]["model_cooldowns"][0]["upstream_model"],
            "up-7"
        );
    }
}

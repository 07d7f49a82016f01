//! Providers: an upstream API's name, dialect and base URL, the extra headers sent to it, and
//! the settings of the cloud kinds (`api_version`, `project`, `region`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Admin, AdminError, List, MAX_URL_CHARS, check_name, nullable, time};
use crate::db::{
    NewProviderRow, Page, ProviderChanges, ProviderCloud, ProviderDeletion, ProviderRecord,
};
use crate::routing::{ProviderSettings, check_settings};
use crate::vocab::ProviderKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderCreate {
    pub name: String,
    pub kind: String,
    /// Optional for Vertex AI only (its region's endpoint).
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub api_version: Option<String>,
    pub project: Option<String>,
    pub region: Option<String>,
    /// The upstream serves OpenAI's Responses API itself (OpenAI-compatible kinds only).
    #[serde(default)]
    pub responses: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub base_url: Option<String>,
    pub responses: Option<bool>,
    /// Replaces the extra headers (`{}` removes them all).
    pub headers: Option<BTreeMap<String, String>>,
    /// `null` removes the setting (as a change of kind needs).
    #[serde(default, deserialize_with = "nullable")]
    pub api_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub project: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub region: Option<Option<String>>,
}

impl ProviderPatch {
    /// Whether the patch touches what [`check_settings`] checks together.
    fn changes_settings(&self) -> bool {
        self.kind.is_some()
            || self.base_url.is_some()
            || self.headers.is_some()
            || self.api_version.is_some()
            || self.project.is_some()
            || self.region.is_some()
    }
}

/// The settings of a provider as stored, checked together again after a change.
fn settings_problem((field, message): (&'static str, String)) -> AdminError {
    AdminError::invalid(field, message)
}

#[derive(Debug, Serialize)]
pub struct ProviderView {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    /// `/v1/responses` is forwarded to it as is, rather than translated.
    pub responses: bool,
    /// Extra headers sent upstream; configuration, not secrets, so they are shown.
    pub headers: BTreeMap<String, String>,
    pub api_version: Option<String>,
    pub project: Option<String>,
    pub region: Option<String>,
    /// Who created it: `api`, `config` (the config file owns it) or `demo`.
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ProviderRecord> for ProviderView {
    fn from(row: ProviderRecord) -> Self {
        Self {
            id: row.id,
            name: row.name,
            kind: row.kind,
            base_url: row.base_url,
            responses: row.responses,
            headers: stored_headers(&row.cloud),
            api_version: row.cloud.api_version,
            project: row.cloud.project,
            region: row.cloud.region,
            source: row.source,
            created_at: time(row.created_at),
            updated_at: time(row.updated_at),
        }
    }
}

fn stored_headers(cloud: &ProviderCloud) -> BTreeMap<String, String> {
    serde_json::from_str(&cloud.headers).unwrap_or_default()
}

/// The answer to deleting a provider: its accounts went with it, and with `?cascade=true`
/// the routes that used it.
#[derive(Debug, Serialize)]
pub struct ProviderDeleted {
    pub id: i64,
    pub deleted: bool,
    pub deleted_routes: Vec<i64>,
}

/// `responses: true` only on a kind that may serve the Responses API.
fn check_responses(kind: &str, responses: bool) -> Result<(), AdminError> {
    let refusal = ProviderKind::parse(kind)
        .filter(|_| responses)
        .and_then(ProviderKind::responses_refusal);
    match refusal {
        Some(message) => Err(AdminError::invalid("responses", message)),
        None => Ok(()),
    }
}

fn check_kind(kind: &str) -> Result<String, AdminError> {
    ProviderKind::parse(kind.trim())
        .map(|kind| kind.as_str().to_owned())
        .ok_or_else(|| {
            AdminError::invalid(
                "kind",
                format!(
                    "unknown provider kind '{kind}'; expected one of: {}",
                    ProviderKind::names()
                ),
            )
        })
}

/// Endpoint paths are appended to the base URL, so it must be absolute, speak HTTP, and end
/// with its path (the same rule as the config file's).
fn check_base_url(url: &str) -> Result<String, AdminError> {
    let text = url.trim();
    let problem = if text.chars().count() > MAX_URL_CHARS {
        Some(format!("must be at most {MAX_URL_CHARS} characters"))
    } else {
        match url::Url::parse(text) {
            Err(error) => Some(format!(
                "'{text}' is not an absolute URL ({error}); write it like https://api.openai.com/v1"
            )),
            Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => Some(format!(
                "'{text}' is not an http or https URL; write it like https://api.openai.com/v1"
            )),
            Ok(parsed) if parsed.query().is_some() || parsed.fragment().is_some() => Some(format!(
                "'{text}' must not have a query or fragment: endpoint paths are appended to it"
            )),
            Ok(_) => None,
        }
    };
    match problem {
        Some(message) => Err(AdminError::invalid("base_url", message)),
        None => Ok(text.trim_end_matches('/').to_owned()),
    }
}

fn not_found(id: i64) -> AdminError {
    AdminError::NotFound(format!("no provider with id {id}"))
}

impl Admin {
    pub async fn list_providers(&self, page: Page) -> Result<List<ProviderView>, AdminError> {
        let page = self.db.list_providers(page).await?;
        Ok(List {
            data: page.rows.into_iter().map(ProviderView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn provider(&self, id: i64) -> Result<ProviderView, AdminError> {
        self.db
            .provider(id)
            .await?
            .map(ProviderView::from)
            .ok_or_else(|| not_found(id))
    }

    pub async fn create_provider(&self, new: ProviderCreate) -> Result<ProviderView, AdminError> {
        let kind = check_kind(&new.kind)?;
        let settings = ProviderSettings {
            kind: ProviderKind::parse(&kind),
            base_url: new.base_url.as_deref().map(check_base_url).transpose()?,
            headers: new.headers,
            api_version: new.api_version,
            project: new.project,
            region: new.region,
        };
        let (cloud, base_url) = check_settings(&settings).map_err(settings_problem)?;
        let row = NewProviderRow {
            name: check_name("name", &new.name)?,
            kind,
            base_url,
            responses: new.responses,
            cloud,
        };
        check_responses(&row.kind, row.responses)?;
        let created = self.db.insert_provider(&row).await?;
        self.changed("provider created", created.id);
        Ok(created.into())
    }

    pub async fn update_provider(
        &self,
        id: i64,
        patch: ProviderPatch,
    ) -> Result<ProviderView, AdminError> {
        let kind = patch.kind.as_deref().map(check_kind).transpose()?;
        let base_url = patch.base_url.as_deref().map(check_base_url).transpose()?;
        // Kind, base URL, headers and cloud settings are checked together, as they will be.
        let cloud = if patch.changes_settings() {
            let stored = self.db.provider(id).await?.ok_or_else(|| not_found(id))?;
            let settings = ProviderSettings {
                kind: ProviderKind::parse(kind.as_deref().unwrap_or(&stored.kind)),
                base_url: Some(base_url.clone().unwrap_or(stored.base_url)),
                headers: patch
                    .headers
                    .clone()
                    .unwrap_or_else(|| stored_headers(&stored.cloud)),
                api_version: patch
                    .api_version
                    .clone()
                    .unwrap_or(stored.cloud.api_version),
                project: patch.project.clone().unwrap_or(stored.cloud.project),
                region: patch.region.clone().unwrap_or(stored.cloud.region),
            };
            Some(check_settings(&settings).map_err(settings_problem)?.0)
        } else {
            None
        };
        let changes = ProviderChanges {
            name: patch
                .name
                .map(|name| check_name("name", &name))
                .transpose()?,
            kind,
            base_url,
            responses: patch.responses,
            cloud,
        };
        // The flag and the kind are checked together, as they will be stored: a change of
        // either is held against the other's current value.
        if changes.kind.is_some() || changes.responses == Some(true) {
            let current = self.db.provider(id).await?.ok_or_else(|| not_found(id))?;
            let kind = changes.kind.as_deref().unwrap_or(&current.kind);
            check_responses(kind, changes.responses.unwrap_or(current.responses))?;
        }
        let updated = self
            .db
            .update_provider(id, &changes)
            .await?
            .ok_or_else(|| not_found(id))?;
        self.changed("provider updated", id);
        Ok(updated.into())
    }

    /// Deletes a provider with its accounts. Routes still using it refuse the deletion with a
    /// message naming them, unless `cascade` asks to delete them too.
    pub async fn delete_provider(
        &self,
        id: i64,
        cascade: bool,
    ) -> Result<ProviderDeleted, AdminError> {
        match self.db.delete_provider(id, cascade).await? {
            ProviderDeletion::NotFound => Err(not_found(id)),
            ProviderDeletion::InUse(routes) => {
                let used: Vec<String> = routes
                    .iter()
                    .map(|r| {
                        format!(
                            "route {} of model '{}' (upstream model '{}')",
                            r.id, r.model, r.upstream_model
                        )
                    })
                    .collect();
                Err(AdminError::Conflict(format!(
                    "provider '{}' is still used by {}; change or delete those routes first, or \
                     repeat with ?cascade=true to delete them along with the provider",
                    routes
                        .first()
                        .map(|r| r.provider.as_str())
                        .unwrap_or_default(),
                    used.join(", ")
                )))
            }
            ProviderDeletion::Deleted { routes } => {
                self.changed("provider deleted", id);
                Ok(ProviderDeleted {
                    id,
                    deleted: true,
                    deleted_routes: routes.iter().map(|r| r.id).collect(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_absolute_http_without_query() {
        assert_eq!(
            check_base_url(" https://api.openai.com/v1/ ").unwrap(),
            "https://api.openai.com/v1"
        );
        for bad in [
            "api.openai.com/v1",
            "ftp://x/v1",
            "http://x/v1?a=1",
            "http://x/v1#f",
            "",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
        let long = format!("http://x/{}", "a".repeat(MAX_URL_CHARS));
        assert!(check_base_url(&long).is_err());
        assert!(check_kind("openai").is_ok());
        assert!(check_kind("nope").is_err());
        assert!(check_responses("openai", true).is_ok());
        assert!(check_responses("anthropic", false).is_ok());
        assert!(check_responses("anthropic", true).is_err());
        assert!(check_responses("gemini", true).is_err());
    }
}

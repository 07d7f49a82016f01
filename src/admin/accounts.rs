//! Accounts: the upstream credentials of a provider. The credential is write-only: it is
//! sealed before it is stored, and reads show only a hint like `sk-…a1b2`.

use serde::{Deserialize, Serialize};

use super::{
    Admin, AdminError, List, MAX_SECRET_CHARS, check_name, check_positive, nullable, time,
};
use crate::db::{AccountChanges, AccountRecord, NewAccountRow, Page};
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountCreate {
    /// The provider's name.
    pub provider: String,
    pub name: String,
    /// Either `api_key`, `service_account_json` (Vertex AI) or `aws_access_key_id` with
    /// `aws_secret_access_key` and an optional `aws_session_token` (AWS Bedrock), all
    /// write-only.
    pub api_key: Option<Secret>,
    pub service_account_json: Option<Secret>,
    pub aws_access_key_id: Option<Secret>,
    pub aws_secret_access_key: Option<Secret>,
    pub aws_session_token: Option<Secret>,
    pub weight: Option<u32>,
    pub rpm: Option<u32>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    pub provider: Option<String>,
    pub name: Option<String>,
    pub api_key: Option<Secret>,
    pub service_account_json: Option<Secret>,
    pub aws_access_key_id: Option<Secret>,
    pub aws_secret_access_key: Option<Secret>,
    pub aws_session_token: Option<Secret>,
    pub weight: Option<u32>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "nullable")]
    pub rpm: Option<Option<u32>>,
    pub enabled: Option<bool>,
}

/// An AWS account's credentials (Bedrock), stored together as the account's credential and
/// shown by the access key id only.
struct AwsKeys<'a> {
    aws_access_key_id: Option<&'a Secret>,
    aws_secret_access_key: Option<&'a Secret>,
    aws_session_token: Option<&'a Secret>,
}

impl AwsKeys<'_> {
    /// The stored credential and its hint, when an access key id is given.
    fn credential(&self) -> Result<Option<(Secret, String)>, AdminError> {
        let Some(key_id) = self.aws_access_key_id else {
            return match (self.aws_secret_access_key, self.aws_session_token) {
                (None, None) => Ok(None),
                _ => Err(AdminError::invalid(
                    "aws_access_key_id",
                    "give aws_access_key_id with aws_secret_access_key",
                )),
            };
        };
        let secret = self.aws_secret_access_key.ok_or_else(|| {
            AdminError::invalid(
                "aws_secret_access_key",
                "give aws_secret_access_key with aws_access_key_id",
            )
        })?;
        let credential = crate::providers::aws_credential(
            key_id.expose(),
            secret.expose(),
            self.aws_session_token.map(Secret::expose),
        )
        .map_err(|(field, problem)| AdminError::invalid(field, problem))?;
        Ok(Some((credential, key_id.expose().trim().to_owned())))
    }
}

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub id: i64,
    pub provider: String,
    pub name: String,
    pub api_key_hint: String,
    pub weight: i64,
    pub rpm: Option<i64>,
    pub enabled: bool,
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<AccountRecord> for AccountView {
    fn from(row: AccountRecord) -> Self {
        Self {
            id: row.id,
            provider: row.provider,
            name: row.name,
            api_key_hint: row.api_key_hint,
            weight: row.weight,
            rpm: row.rpm,
            enabled: row.enabled,
            source: row.source,
            created_at: time(row.created_at),
            updated_at: time(row.updated_at),
        }
    }
}

/// A credential as it will be sent: trimmed, not empty, bounded, and valid in an HTTP header.
/// Problems are described without echoing the value.
fn check_api_key(key: &Secret) -> Result<Secret, AdminError> {
    let text = key.expose().trim();
    if text.is_empty() {
        return Err(AdminError::invalid("api_key", "must not be empty"));
    }
    if text.chars().count() > MAX_SECRET_CHARS {
        return Err(AdminError::invalid(
            "api_key",
            format!("must be at most {MAX_SECRET_CHARS} characters"),
        ));
    }
    if text.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(AdminError::invalid(
            "api_key",
            "must be printable ASCII (it is sent in an HTTP header)",
        ));
    }
    Ok(Secret::new(text))
}

/// The account's credential: an API key, or a service account's key file (Vertex AI), which is
/// checked to be one that can sign and shown by its `client_email`. `None` when neither is
/// given.
fn check_credential(
    api_key: Option<&Secret>,
    service_account_json: Option<&Secret>,
    aws: &AwsKeys<'_>,
) -> Result<Option<(Secret, String)>, AdminError> {
    if let Some(aws) = aws.credential()? {
        if api_key.is_some() || service_account_json.is_some() {
            return Err(AdminError::invalid(
                "aws_access_key_id",
                "give either api_key, service_account_json or aws_access_key_id, not several",
            ));
        }
        return Ok(Some(aws));
    }
    match (api_key, service_account_json) {
        (Some(_), Some(_)) => Err(AdminError::invalid(
            "service_account_json",
            "give either api_key or service_account_json, not both",
        )),
        (Some(key), None) => check_api_key(key).map(|key| {
            let hint = key.hint();
            Some((key, hint))
        }),
        (None, Some(key_file)) => {
            if key_file.expose().chars().count() > MAX_KEY_FILE_CHARS {
                return Err(AdminError::invalid(
                    "service_account_json",
                    format!("must be at most {MAX_KEY_FILE_CHARS} characters"),
                ));
            }
            crate::providers::check_service_account(key_file.expose())
                .map(|email| Some((Secret::new(key_file.expose().trim()), email)))
                .map_err(|problem| AdminError::invalid("service_account_json", problem))
        }
        (None, None) => Ok(None),
    }
}

/// A service account's key file is a few kilobytes of JSON.
const MAX_KEY_FILE_CHARS: usize = 16 * 1024;

fn not_found(id: i64) -> AdminError {
    AdminError::NotFound(format!("no account with id {id}"))
}

impl Admin {
    pub async fn list_accounts(&self, page: Page) -> Result<List<AccountView>, AdminError> {
        let page = self.db.list_accounts(page).await?;
        Ok(List {
            data: page.rows.into_iter().map(AccountView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn account(&self, id: i64) -> Result<AccountView, AdminError> {
        self.db
            .account(id)
            .await?
            .map(AccountView::from)
            .ok_or_else(|| not_found(id))
    }

    async fn provider_named(&self, name: &str) -> Result<i64, AdminError> {
        let name = check_name("provider", name)?;
        self.db.provider_id_by_name(&name).await?.ok_or_else(|| {
            AdminError::invalid(
                "provider",
                format!("no provider named '{name}'; create it first with POST /admin/providers"),
            )
        })
    }

    pub async fn create_account(&self, new: AccountCreate) -> Result<AccountView, AdminError> {
        let name = check_name("name", &new.name)?;
        let (api_key, hint) = check_credential(
            new.api_key.as_ref(),
            new.service_account_json.as_ref(),
            &AwsKeys {
                aws_access_key_id: new.aws_access_key_id.as_ref(),
                aws_secret_access_key: new.aws_secret_access_key.as_ref(),
                aws_session_token: new.aws_session_token.as_ref(),
            },
        )?
        .ok_or_else(|| {
            AdminError::invalid(
                "api_key",
                "an account needs api_key (or service_account_json for Vertex AI, or \
                         aws_access_key_id and aws_secret_access_key for AWS Bedrock)",
            )
        })?;
        let weight = check_positive("weight", new.weight.unwrap_or(1))?;
        let rpm = new.rpm.map(|rpm| check_positive("rpm", rpm)).transpose()?;
        let provider_id = self.provider_named(&new.provider).await?;
        let row = NewAccountRow {
            provider_id,
            name,
            api_key: self.cipher.seal(api_key.expose()),
            api_key_hint: hint,
            weight,
            rpm,
            enabled: new.enabled.unwrap_or(true),
        };
        let id = self.db.insert_account(&row).await?;
        self.changed("account created", id);
        self.account(id).await
    }

    pub async fn update_account(
        &self,
        id: i64,
        patch: AccountPatch,
    ) -> Result<AccountView, AdminError> {
        let name = patch
            .name
            .map(|name| check_name("name", &name))
            .transpose()?;
        let api_key = check_credential(
            patch.api_key.as_ref(),
            patch.service_account_json.as_ref(),
            &AwsKeys {
                aws_access_key_id: patch.aws_access_key_id.as_ref(),
                aws_secret_access_key: patch.aws_secret_access_key.as_ref(),
                aws_session_token: patch.aws_session_token.as_ref(),
            },
        )?;
        let weight = patch
            .weight
            .map(|w| check_positive("weight", w))
            .transpose()?;
        let rpm = patch
            .rpm
            .map(|rpm| rpm.map(|rpm| check_positive("rpm", rpm)).transpose())
            .transpose()?;
        let provider_id = match &patch.provider {
            Some(provider) => Some(self.provider_named(provider).await?),
            None => None,
        };
        let changes = AccountChanges {
            provider_id,
            name,
            api_key: api_key.map(|(key, hint)| (self.cipher.seal(key.expose()), hint)),
            weight,
            rpm,
            enabled: patch.enabled,
        };
        self.db
            .update_account(id, &changes)
            .await?
            .ok_or_else(|| not_found(id))?;
        self.changed("account updated", id);
        self.account(id).await
    }

    pub async fn delete_account(&self, id: i64) -> Result<super::Deleted, AdminError> {
        if !self.db.delete_account(id).await? {
            return Err(not_found(id));
        }
        self.changed("account deleted", id);
        Ok(super::Deleted { id, deleted: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_checked_without_being_echoed() {
        let key = check_api_key(&Secret::new("  sk-live-abcdefghijkl1234 ")).unwrap();
        assert_eq!(key.expose(), "sk-live-abcdefghijkl1234");
        for bad in ["", "  ", "sk-with\nnewline-secret", "sk-ünïcode-secret"] {
            match check_api_key(&Secret::new(bad)) {
                Err(AdminError::Invalid { field, message }) => {
                    assert_eq!(field, "api_key");
                    assert!(bad.trim().is_empty() || !message.contains(bad.trim()));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(check_api_key(&Secret::new("k".repeat(MAX_SECRET_CHARS + 1))).is_err());
    }
}

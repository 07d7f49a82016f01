//! The admin plane without HTTP: login and tokens, and the use cases behind `/admin` (validate
//! a change, seal secrets, write it, wake the change watcher).
//!
//! Requests arrive as plain structs (serde, unknown fields refused); answers leave as views
//! that never hold a stored secret. Every write calls [`Admin::changed`], so this process
//! applies it at once and others within their poll interval.

mod accounts;
mod client_keys;
mod login;
mod models;
mod providers;
mod upstreams;
mod usage;

use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use tokio::sync::Notify;

pub use accounts::{AccountCreate, AccountPatch, AccountView};
pub use client_keys::{KeyCreate, KeyPatch, KeyView};
pub use login::{
    AdminAuth, IssuedToken, LoginError, LoginThrottle, MAX_PASSWORD_CHARS, SetupError, TokenError,
    logout_all, setup,
};
pub use models::{ModelCreate, ModelPatch, ModelView, RouteIn, RoutePatch, RouteView};
pub use providers::{ProviderCreate, ProviderDeleted, ProviderPatch, ProviderView};
pub use upstreams::{
    AccountUpstream, ModelCooldownState, RouteUpstream, Upstream, UpstreamState, UpstreamsView,
    view,
};
pub use usage::{Counts, LogRequest, LogView, UsageLine, UsageReport, UsageRequest};

use crate::auth::KeyError;
use crate::db::{Db, DbError, Page};
use crate::secret::SecretCipher;

/// Why an admin request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is invalid; `field` names the offending value, like `routes[1].weight`.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// A taken name, or an object still in use.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(DbError),
}

impl AdminError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<DbError> for AdminError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Conflict(message) => Self::Conflict(message),
            DbError::NotFound(message) => Self::NotFound(message),
            other => Self::Store(other),
        }
    }
}

impl From<KeyError> for AdminError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Invalid { field, message } => Self::invalid(field, message),
            KeyError::Conflict(message) => Self::Conflict(message),
            KeyError::NotFound(id) => Self::NotFound(format!("no key with id {id}")),
            KeyError::Db(error) => Self::from(error),
        }
    }
}

/// The handles the admin use cases work with.
#[derive(Clone, Debug)]
pub struct Admin {
    db: Db,
    cipher: SecretCipher,
    changed: Arc<Notify>,
    auth: AdminAuth,
}

impl Admin {
    /// `changed` must be the notifier the change watcher listens to.
    pub fn new(db: Db, cipher: SecretCipher, changed: Arc<Notify>, auth: AdminAuth) -> Self {
        Self {
            db,
            cipher,
            changed,
            auth,
        }
    }

    pub fn auth(&self) -> &AdminAuth {
        &self.auth
    }

    /// Records an applied write in the log (an audit trail of names and ids, never secrets)
    /// and wakes the change watcher so this process applies it at once; other processes see
    /// it at their next poll through the database's change counters.
    fn changed(&self, change: &'static str, id: i64) {
        tracing::info!(change, id, "admin change");
        self.changed.notify_one();
    }
}

/// A list answer: `{"data": [...], "next_cursor": id | null}`.
#[derive(Debug, serde::Serialize)]
pub struct List<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<i64>,
}

/// The answer to a deletion.
#[derive(Debug, serde::Serialize)]
pub struct Deleted {
    pub id: i64,
    pub deleted: bool,
}

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

/// Longest accepted name of anything (providers, accounts, models, keys, upstream models).
pub use crate::names::MAX_NAME_CHARS;
/// Longest accepted URL.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest accepted upstream credential.
pub const MAX_SECRET_CHARS: usize = 4096;

/// Query parameters an endpoint takes besides `limit` and `cursor`, by name.
pub type Extra = Vec<(&'static str, String)>;

/// Reads `?limit=&cursor=` (and any of `extra`, returned by name) from a query string.
/// Unknown parameters are refused, like unknown body fields.
pub fn parse_query(
    query: Option<&str>,
    extra: &[&'static str],
) -> Result<(Page, Extra), AdminError> {
    let mut page = Page {
        after: 0,
        limit: DEFAULT_PAGE,
    };
    let mut found = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "limit" => {
                page.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        AdminError::invalid(
                            "limit",
                            format!("'{value}' is not a page size; use a whole number from 1 to {MAX_PAGE}"),
                        )
                    })?;
            }
            "cursor" => {
                page.after = value.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    AdminError::invalid(
                        "cursor",
                        format!(
                            "'{value}' is not a cursor; pass the next_cursor of the previous page"
                        ),
                    )
                })?;
            }
            other => match extra.iter().find(|known| **known == other) {
                Some(known) => found.push((*known, value.into_owned())),
                None => {
                    let mut accepted = vec!["limit", "cursor"];
                    accepted.extend_from_slice(extra);
                    return Err(AdminError::invalid(
                        other.to_owned(),
                        format!(
                            "unknown query parameter; this endpoint takes: {}",
                            accepted.join(", ")
                        ),
                    ));
                }
            },
        }
    }
    Ok((page, found))
}

/// A boolean query parameter's value (`true`/`false`, `1`/`0`).
pub fn query_flag(name: &str, value: &str) -> Result<bool, AdminError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(AdminError::invalid(
            name.to_owned(),
            format!("'{value}' is not a boolean; use true or false"),
        )),
    }
}

/// For PATCH fields that may be cleared: absent is `None`, `null` is `Some(None)`.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A name, by the one rule of [`crate::names::check_name`], trimmed.
fn check_name(field: &str, value: &str) -> Result<String, AdminError> {
    crate::names::check_name(value)
        .map(str::to_owned)
        .map_err(|problem| AdminError::invalid(field, problem.to_string()))
}

/// At least 1 (weights and limits; omit or disable rather than set 0).
fn check_positive(field: &str, value: u32) -> Result<i64, AdminError> {
    if value == 0 {
        return Err(AdminError::invalid(field, "must be at least 1"));
    }
    Ok(i64::from(value))
}

/// A Unix time as RFC 3339 (UTC, whole seconds).
fn time(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| seconds.to_string())
}

/// The id in a path like `/admin/providers/{id}`; anything else names no object.
pub fn parse_id(kind: &str, text: &str) -> Result<i64, AdminError> {
    text.parse::<i64>()
        .map_err(|_| AdminError::NotFound(format!("no {kind} with id '{text}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_give_a_page_and_refuse_what_they_do_not_know() {
        let (page, extra) = parse_query(None, &[]).unwrap();
        assert_eq!((page.after, page.limit, extra.len()), (0, DEFAULT_PAGE, 0));
        let (page, extra) =
            parse_query(Some("limit=5&cursor=9&cascade=true"), &["cascade"]).unwrap();
        assert_eq!((page.after, page.limit), (9, 5));
        assert_eq!(extra, [("cascade", "true".to_owned())]);
        let field = |q: &str| match parse_query(Some(q), &[]) {
            Err(AdminError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field("limit=0"), "limit");
        assert_eq!(field("limit=1001"), "limit");
        assert_eq!(field("limit=x"), "limit");
        assert_eq!(field("cursor=-1"), "cursor");
        assert_eq!(field("offset=3"), "offset");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("name", "  a ").unwrap(), "a");
        for bad in ["", "   ", "a\nb", "\u{200B}", "a\u{202E}b"] {
            assert!(check_name("name", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("name", &"x".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_name("name", &"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(query_flag("cascade", "yes").is_err());
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
    }
}

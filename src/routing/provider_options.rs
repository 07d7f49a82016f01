//! What a provider needs beyond its kind and base URL: the extra headers any provider may send
//! upstream, and the settings of the cloud kinds (Azure's `api_version`, Vertex AI's `project`
//! and `region`). One check for the admin API and the config file, and one parse of what they
//! stored, for the catalog.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};

use crate::db::ProviderCloud;
use crate::vocab::ProviderKind;

/// Headers llmgate sets itself on upstream requests (credentials, framing, the request id,
/// trace context, Anthropic's version), and hop-by-hop headers, which belong to one connection
/// and not to the request. A provider's `headers` may name none of them: an operator's value
/// would either be overwritten or break the request.
const REFUSED_HEADERS: &[&str] = &[
    "authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "proxy-authorization",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "x-request-id",
    "traceparent",
    "tracestate",
    "anthropic-version",
];

/// At most this many extra headers per provider, each value at most [`MAX_HEADER_VALUE`]
/// bytes: they go on every upstream request.
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 4096;

/// What Vertex AI's Anthropic models are told the request body's version is.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// A provider's options, parsed once per catalog snapshot.
#[derive(Debug, Default)]
pub struct ProviderOptions {
    /// Sent on every upstream request of the provider, before its credential.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Azure's `api-version` query parameter.
    pub api_version: Option<String>,
    /// Vertex AI's project.
    pub project: Option<String>,
    /// Vertex AI's location.
    pub region: Option<String>,
}

impl ProviderOptions {
    /// The options as stored (already checked when they were written).
    pub fn from_stored(stored: &ProviderCloud) -> Result<Self, String> {
        let headers: BTreeMap<String, String> = serde_json::from_str(&stored.headers)
            .map_err(|error| format!("headers are not a JSON object of strings: {error}"))?;
        Ok(Self {
            headers: check_headers(&headers).map_err(|(_, message)| message)?,
            api_version: stored.api_version.clone(),
            project: stored.project.clone(),
            region: stored.region.clone(),
        })
    }
}

/// A provider's settings as an operator wrote them, before they are checked.
#[derive(Debug, Default, Clone)]
pub struct ProviderSettings {
    pub kind: Option<ProviderKind>,
    pub base_url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub api_version: Option<String>,
    pub project: Option<String>,
    pub region: Option<String>,
}

/// A problem with one field of a provider's settings: the field's name and what to do.
pub type SettingsProblem = (&'static str, String);

/// The extra headers, checked: valid names and values, none that llmgate sets itself or that
/// belongs to one connection.
pub fn check_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, SettingsProblem> {
    if headers.len() > MAX_HEADERS {
        return Err((
            "headers",
            format!("at most {MAX_HEADERS} extra headers are allowed"),
        ));
    }
    let mut checked = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let parsed = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            (
                "headers",
                format!("{name:?} is not a valid header name (letters, digits and -_ only)"),
            )
        })?;
        if REFUSED_HEADERS.contains(&parsed.as_str()) {
            return Err((
                "headers",
                format!(
                    "header {name:?} is set by llmgate itself (credentials, framing, tracing) or \
                     belongs to one connection; leave it out (an account's credential goes in \
                     the account)"
                ),
            ));
        }
        if value.len() > MAX_HEADER_VALUE {
            return Err((
                "headers",
                format!("the value of header {name:?} is longer than {MAX_HEADER_VALUE} bytes"),
            ));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            (
                "headers",
                format!(
                    "the value of header {name:?} has characters a header cannot carry \
                     (control characters or non-ASCII)"
                ),
            )
        })?;
        checked.push((parsed, value));
    }
    Ok(checked)
}

/// The settings of a provider of `settings.kind`, checked and ready to store, and its base URL:
/// the one given, or for Vertex AI and Bedrock the region's endpoint when none is. Azure needs its
/// `api_version`, Vertex AI its `project` and `region`, Bedrock its `region`; a setting the kind does not use is
/// refused rather than silently ignored.
pub fn check_settings(
    settings: &ProviderSettings,
) -> Result<(ProviderCloud, String), SettingsProblem> {
    let kind = settings
        .kind
        .ok_or(("kind", "a provider needs a kind".to_owned()))?;
    check_headers(&settings.headers)?;
    let blank = |value: &Option<String>| value.as_deref().map(str::trim).map(str::to_owned);
    let api_version = blank(&settings.api_version);
    let project = blank(&settings.project);
    let region = blank(&settings.region);
    let unused = |field: &'static str, value: &Option<String>, used_by: &str| match value {
        Some(_) => Err((
            field,
            format!(
                "{field} is a setting of kind {used_by} only; remove it from this '{}' provider",
                kind.as_str()
            ),
        )),
        None => Ok(()),
    };
    let required = |field: &'static str, value: &Option<String>, example: &str| match value {
        Some(text) if !text.is_empty() => Ok(()),
        _ => Err((
            field,
            format!(
                "a '{}' provider needs {field}, like {field} = \"{example}\"",
                kind.as_str()
            ),
        )),
    };
    match kind {
        ProviderKind::Azure => {
            required("api_version", &api_version, "2024-10-21")?;
            check_token("api_version", api_version.as_deref())?;
        }
        ProviderKind::Vertex => {
            required("project", &project, "my-project")?;
            required("region", &region, "us-central1")?;
            check_token("project", project.as_deref())?;
            check_token("region", region.as_deref())?;
        }
        ProviderKind::Bedrock => {
            // The region is part of every signature (and of the default endpoint).
            required("region", &region, "us-east-1")?;
            check_token("region", region.as_deref())?;
        }
        _ => {}
    }
    if kind != ProviderKind::Azure {
        unused("api_version", &api_version, "azure")?;
    }
    if kind != ProviderKind::Vertex {
        unused("project", &project, "vertex")?;
    }
    if !matches!(kind, ProviderKind::Vertex | ProviderKind::Bedrock) {
        unused("region", &region, "vertex or bedrock")?;
    }
    let base_url = match (&settings.base_url, kind, &region) {
        (Some(url), _, _) => url.clone(),
        // The global endpoint has no region in its host name.
        (None, ProviderKind::Vertex, Some(region)) if region == "global" => {
            "https://aiplatform.googleapis.com/v1".to_owned()
        }
        (None, ProviderKind::Vertex, Some(region)) => {
            format!("https://{region}-aiplatform.googleapis.com/v1")
        }
        (None, ProviderKind::Bedrock, Some(region)) => {
            format!("https://bedrock-runtime.{region}.amazonaws.com")
        }
        (None, _, _) => {
            return Err((
                "base_url",
                "a provider needs a base_url, like https://api.openai.com/v1 (only Vertex AI's \
                 and Bedrock's default to their region's endpoint)"
                    .to_owned(),
            ));
        }
    };
    let headers = serde_json::to_string(&settings.headers).unwrap_or_else(|_| "{}".to_owned());
    Ok((
        ProviderCloud {
            headers,
            api_version,
            project,
            region,
        },
        base_url,
    ))
}

/// A setting that becomes part of a URL (a path segment, a host name, a query value): letters,
/// digits and `-_.:` only, so it cannot change the URL's shape.
fn check_token(field: &'static str, value: Option<&str>) -> Result<(), SettingsProblem> {
    match value {
        Some(text)
            if text.len() <= 128
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) =>
        {
            Ok(())
        }
        Some(text) => Err((
            field,
            format!("{text:?} is not a valid {field}: letters, digits and -_.: only"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn extra_headers_are_checked() {
        let ok = check_headers(&headers(&[
            ("x-team", "search"),
            ("OpenAI-Organization", "o"),
        ]))
        .unwrap();
        assert_eq!(ok.len(), 2);
        for (name, value) in [
            ("Authorization", "Bearer x"),
            ("api-key", "k"),
            ("x-api-key", "k"),
            ("host", "h"),
            ("content-length", "1"),
            ("connection", "close"),
            ("bad name", "v"),
            ("x-ok", "line\nbreak"),
        ] {
            assert!(
                check_headers(&headers(&[(name, value)])).is_err(),
                "{name}: {value:?}"
            );
        }
    }

    #[test]
    fn each_cloud_kind_needs_its_settings_and_only_its_own() {
        let azure = ProviderSettings {
            kind: Some(ProviderKind::Azure),
            base_url: Some("https://r.openai.azure.com/openai".into()),
            ..ProviderSettings::default()
        };
        assert_eq!(check_settings(&azure).unwrap_err().0, "api_version");
        let azure = ProviderSettings {
            api_version: Some("2024-10-21".into()),
            ..azure
        };
        assert!(check_settings(&azure).is_ok());

        let vertex = ProviderSettings {
            kind: Some(ProviderKind::Vertex),
            project: Some("p".into()),
            region: Some("us-central1".into()),
            ..ProviderSettings::default()
        };
        let (cloud, base_url) = check_settings(&vertex).unwrap();
        assert_eq!(base_url, "https://us-central1-aiplatform.googleapis.com/v1");
        let global = ProviderSettings {
            region: Some("global".into()),
            ..vertex.clone()
        };
        assert_eq!(
            check_settings(&global).unwrap().1,
            "https://aiplatform.googleapis.com/v1"
        );
        assert_eq!(cloud.project.as_deref(), Some("p"));
        let bad_region = ProviderSettings {
            region: Some("us/../x".into()),
            ..vertex.clone()
        };
        assert_eq!(check_settings(&bad_region).unwrap_err().0, "region");
        let no_project = ProviderSettings {
            project: None,
            ..vertex
        };
        assert_eq!(check_settings(&no_project).unwrap_err().0, "project");

        let openai = ProviderSettings {
            kind: Some(ProviderKind::OpenAi),
            base_url: Some("https://api.openai.com/v1".into()),
            api_version: Some("1".into()),
            ..ProviderSettings::default()
        };
        assert_eq!(check_settings(&openai).unwrap_err().0, "api_version");
        let openai = ProviderSettings {
            kind: Some(ProviderKind::OpenAi),
            base_url: None,
            ..ProviderSettings::default()
        };
        assert_eq!(check_settings(&openai).unwrap_err().0, "base_url");
    }
}

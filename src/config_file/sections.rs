//! The file's schema: reading each section into its spec and checking the rules that span
//! several entries (unique names, routes to declared providers).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use toml::de::DeValue;

use super::reader::{Located, Node, Reader};
use super::{AccountSpec, ConfigFile, KeySpec, ModelSpec, ProviderSpec, RouteSpec, ServerSection};
use crate::pricing::{Nanodollars, Price, RouteOverrides};
use crate::routing::{ProviderSettings, check_settings};
use crate::secret::Secret;
use crate::settings::parse_duration;
use crate::vocab::BudgetWindow;
use crate::vocab::{ProviderKind, Strategy};

const TOP_KEYS: &[&str] = &["server", "providers", "models", "keys"];
const SERVER_KEYS: &[&str] = &["listen", "database", "redis"];
const PROVIDER_KEYS: &[&str] = &[
    "name",
    "kind",
    "base_url",
    "responses",
    "accounts",
    "headers",
    "api_version",
    "project",
    "region",
];
const ACCOUNT_KEYS: &[&str] = &[
    "name",
    "api_key",
    "service_account_json",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "weight",
    "rpm",
];
const MODEL_KEYS: &[&str] = &["name", "strategy", "max_attempts", "timeout", "routes"];
const ROUTE_KEYS: &[&str] = &[
    "provider",
    "model",
    "weight",
    "priority",
    "input_price",
    "output_price",
    "cached_input_price",
    "cache_write_price",
    "max_output_tokens",
    "context_window",
];
const KEY_KEYS: &[&str] = &[
    "name",
    "key",
    "models",
    "rpm",
    "tpm",
    "budget_tokens",
    "budget_usd",
    "budget_window",
    "expires_at",
];

/// A key in the file is chosen by a person, not generated: 32 characters keep it out of reach
/// of guessing even with its listed prefix known (`openssl rand -base64 32` gives 44).
const MIN_KEY_CHARS: usize = 32;
const MAX_ATTEMPTS: u32 = 10;
const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Reads the whole document. The result is meaningful only when the reader found no problem:
/// entries with problems are left out of it.
pub(super) fn read(r: &mut Reader<'_>, root: &Node<'_, '_>) -> ConfigFile {
    r.known_keys(root, TOP_KEYS);
    let server = r
        .table(root, "server")
        .map(|node| read_server(r, &node))
        .unwrap_or_default();

    let mut provider_names = Names::new("provider");
    let providers = r
        .tables(root, "providers", "providers")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|node| read_provider(r, node, &mut provider_names))
        .collect();

    let mut model_names = Names::new("model");
    let models = r
        .tables(root, "models", "models")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|node| read_model(r, node, &mut model_names, &provider_names))
        .collect();

    let mut key_names = Names::new("key");
    let keys = r
        .tables(root, "keys", "keys")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|node| read_key(r, node, &mut key_names))
        .collect();

    ConfigFile {
        server,
        providers,
        models,
        keys,
    }
}

fn read_server(r: &mut Reader<'_>, node: &Node<'_, '_>) -> ServerSection {
    r.known_keys(node, SERVER_KEYS);
    let listen = r.string(node, "listen").and_then(|listen| {
        let parsed = listen.value.trim().parse::<SocketAddr>().ok();
        if parsed.is_none() {
            r.problem_at(
                &listen,
                format!(
                    "{:?} is not a socket address; write it like 127.0.0.1:8080",
                    listen.value
                ),
            );
        }
        parsed
    });
    let database = r
        .string(node, "database")
        .and_then(|database| r.non_blank(database))
        .map(|database| database.value);
    let redis = r
        .string(node, "redis")
        .and_then(|redis| r.non_blank(redis))
        .map(|redis| redis.value);
    ServerSection {
        listen,
        database,
        redis,
    }
}

fn read_provider(
    r: &mut Reader<'_>,
    node: Node<'_, '_>,
    names: &mut Names,
) -> Option<ProviderSpec> {
    let name = read_name(r, &node, names);
    let node = node.named(name.as_ref());
    r.known_keys(&node, PROVIDER_KEYS);
    let kind = r.required_string(&node, "kind").and_then(|kind| {
        let parsed = ProviderKind::parse(kind.value.trim());
        if parsed.is_none() {
            r.problem_at(
                &kind,
                format!(
                    "unknown provider kind {:?}; expected one of: {}",
                    kind.value,
                    ProviderKind::names()
                ),
            );
        }
        parsed
    });
    // Vertex AI's and Bedrock's base URLs default to their region's endpoint; every other kind
    // needs one.
    let regional = matches!(kind, Some(ProviderKind::Vertex | ProviderKind::Bedrock));
    let base_url = if r.field(&node, "base_url").is_some() || !regional {
        r.required_string(&node, "base_url")
            .and_then(|url| check_base_url(r, &url))
            .map(Some)
    } else {
        Some(None)
    };
    let headers = read_headers(r, &node);
    let settings = ProviderSettings {
        kind,
        base_url: base_url.clone().flatten(),
        headers: headers.clone().unwrap_or_default(),
        api_version: r.string(&node, "api_version").map(|v| v.value),
        project: r.string(&node, "project").map(|v| v.value),
        region: r.string(&node, "region").map(|v| v.value),
    };
    let checked = match (kind, &base_url, &headers) {
        (Some(_), Some(_), Some(_)) => match check_settings(&settings) {
            Ok(checked) => Some(checked),
            Err((field, message)) => {
                r.problem(&node.path.key(field), node.offset, message);
                None
            }
        },
        _ => None,
    };
    let responses = r.boolean(&node, "responses");
    let refusal = responses
        .as_ref()
        .filter(|flag| flag.value)
        .zip(kind)
        .and_then(|(flag, kind)| Some((flag, kind.responses_refusal()?)));
    if let Some((flag, refusal)) = refusal {
        r.problem_at(flag, refusal);
    }
    let mut account_names = Names::new("account");
    let accounts = r
        .tables(&node, "accounts", "providers.accounts")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|account| read_account(r, account, &mut account_names))
        .collect();
    let (cloud, base_url) = checked?;
    Some(ProviderSpec {
        name: name?.value,
        kind: kind?,
        base_url,
        responses: responses.is_some_and(|flag| flag.value),
        cloud,
        accounts,
    })
}

/// A provider's `headers = { name = "value" }`, each value a string (`${VAR}` expanded).
fn read_headers(r: &mut Reader<'_>, node: &Node<'_, '_>) -> Option<BTreeMap<String, String>> {
    let Some(table) = r.table(node, "headers") else {
        return Some(BTreeMap::new());
    };
    let mut headers = BTreeMap::new();
    let mut complete = true;
    for (key, value) in table.table.iter() {
        let name = key.get_ref().to_string();
        match r.expect_string(table.path.key(&name), value) {
            Some(value) => {
                headers.insert(name, value.value);
            }
            None => complete = false,
        }
    }
    complete.then_some(headers)
}

/// Endpoint paths are appended to the base URL, so it must be absolute, speak HTTP, and end
/// with its path.
fn check_base_url(r: &mut Reader<'_>, url: &Located<String>) -> Option<String> {
    let text = url.value.trim();
    let problem = match url::Url::parse(text) {
        Err(error) => Some(format!(
            "{text:?} is not an absolute URL ({error}); write it like https://api.openai.com/v1"
        )),
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => Some(format!(
            "{text:?} is not an http or https URL; write it like https://api.openai.com/v1"
        )),
        Ok(parsed) if parsed.query().is_some() || parsed.fragment().is_some() => Some(format!(
            "{text:?} must not have a query or fragment: endpoint paths are appended to it"
        )),
        Ok(_) => None,
    };
    match problem {
        Some(message) => {
            r.problem_at(url, message);
            None
        }
        None => Some(text.trim_end_matches('/').to_owned()),
    }
}

fn read_account(r: &mut Reader<'_>, node: Node<'_, '_>, names: &mut Names) -> Option<AccountSpec> {
    let name = read_name(r, &node, names);
    let node = node.named(name.as_ref());
    r.known_keys(&node, ACCOUNT_KEYS);
    // A service account's key file (Vertex AI) is the account's credential, stored sealed
    // like an API key.
    let api_key = match r.string(&node, "service_account_json") {
        Some(key_file) if r.field(&node, "api_key").is_some() => {
            r.problem_at(
                &key_file,
                "an account has either api_key or service_account_json, not both",
            );
            None
        }
        Some(key_file) => match crate::providers::check_service_account(&key_file.value) {
            Ok(_) => Some(Secret::new(key_file.value)),
            Err(problem) => {
                r.problem_at(&key_file, problem);
                None
            }
        },
        // AWS credentials (Bedrock) are stored together, sealed, as the account's credential.
        None if r.field(&node, "aws_access_key_id").is_some() => {
            let key_id = r.required_text(&node, "aws_access_key_id");
            let secret = r.required_text(&node, "aws_secret_access_key");
            let token = r.string(&node, "aws_session_token");
            match (key_id, secret) {
                (Some(key_id), Some(_)) if r.field(&node, "api_key").is_some() => {
                    r.problem_at(
                        &key_id,
                        "an account has either api_key or aws_access_key_id, not both",
                    );
                    None
                }
                (Some(key_id), Some(secret)) => {
                    match crate::providers::aws_credential(
                        &key_id.value,
                        &secret.value,
                        token.as_ref().map(|token| token.value.as_str()),
                    ) {
                        Ok(credential) => Some(credential),
                        Err((_, problem)) => {
                            r.problem_at(&key_id, problem);
                            None
                        }
                    }
                }
                _ => None,
            }
        }
        None => r
            .required_text(&node, "api_key")
            .map(|key| Secret::new(key.value)),
    };
    let weight = r
        .integer(&node, "weight", 1, u32::MAX)
        .map_or(1, |w| w.value);
    let rpm = r.integer(&node, "rpm", 1, u32::MAX).map(|rpm| rpm.value);
    Some(AccountSpec {
        name: name?.value,
        api_key: api_key?,
        weight,
        rpm,
    })
}

fn read_model(
    r: &mut Reader<'_>,
    node: Node<'_, '_>,
    names: &mut Names,
    providers: &Names,
) -> Option<ModelSpec> {
    let name = read_name(r, &node, names);
    let node = node.named(name.as_ref());
    r.known_keys(&node, MODEL_KEYS);
    let strategy = match r.string(&node, "strategy") {
        None => Some(Strategy::default()),
        Some(strategy) => {
            let parsed = Strategy::parse(strategy.value.trim());
            if parsed.is_none() {
                r.problem_at(
                    &strategy,
                    format!(
                        "unknown strategy {:?}; expected one of: {}",
                        strategy.value,
                        Strategy::names()
                    ),
                );
            }
            parsed
        }
    };
    let max_attempts = r
        .integer(&node, "max_attempts", 1, MAX_ATTEMPTS)
        .map_or(DEFAULT_MAX_ATTEMPTS, |n| n.value);
    let timeout =
        r.string(&node, "timeout")
            .and_then(|timeout| match parse_duration(&timeout.value) {
                Ok(duration) if duration.is_zero() => {
                    r.problem_at(&timeout, "must be greater than zero");
                    None
                }
                Ok(duration) => Some(duration),
                Err(message) => {
                    r.problem_at(&timeout, message);
                    None
                }
            });

    let route_nodes = r.tables(&node, "routes", "models.routes");
    if route_nodes.as_ref().is_some_and(Vec::is_empty) {
        r.problem(
            &node.path,
            node.offset,
            "has no routes; add at least one [[models.routes]]",
        );
    }
    let mut targets: HashMap<(String, String), usize> = HashMap::new();
    let mut routes = Vec::new();
    for route in route_nodes.unwrap_or_default() {
        let (path, offset) = (route.path.clone(), route.offset);
        let Some(route) = read_route(r, route, providers) else {
            continue;
        };
        let target = (route.provider.clone(), route.model.clone());
        if let Some(&first) = targets.get(&target) {
            let line = r.line(first);
            r.problem(
                &path,
                offset,
                format!(
                    "another route of this model already goes to provider {:?}, model {:?} (line {line})",
                    route.provider, route.model
                ),
            );
        } else {
            targets.insert(target, offset);
        }
        routes.push(route);
    }

    Some(ModelSpec {
        name: name?.value,
        strategy: strategy?,
        max_attempts,
        timeout,
        routes,
    })
}

fn read_route(r: &mut Reader<'_>, node: Node<'_, '_>, providers: &Names) -> Option<RouteSpec> {
    r.known_keys(&node, ROUTE_KEYS);
    let provider = r.required_name(&node, "provider").and_then(|provider| {
        if providers.contains(&provider.value) {
            return Some(provider.value);
        }
        let message = if providers.is_empty() {
            format!(
                "unknown provider {:?}; the file declares no providers",
                provider.value
            )
        } else {
            format!(
                "unknown provider {:?}; declared providers: {}",
                provider.value,
                providers.list()
            )
        };
        r.problem_at(&provider, message);
        None
    });
    let model = r.required_name(&node, "model").map(|model| model.value);
    let weight = r
        .integer(&node, "weight", 1, u32::MAX)
        .map_or(1, |w| w.value);
    let priority = r
        .integer(&node, "priority", 0, u32::MAX)
        .map_or(0, |p| p.value);
    let mut price = |key: &str| {
        r.amount(&node, key, Price::from_usd)
            .map(|price| price.value)
    };
    let (input, output) = (price("input_price"), price("output_price"));
    let (cached_input, cache_write) = (price("cached_input_price"), price("cache_write_price"));
    let max_output_tokens = r.integer(&node, "max_output_tokens", 1, u64::MAX);
    let context_window = r.integer(&node, "context_window", 1, u64::MAX);
    if let (Some(max), Some(window)) = (&max_output_tokens, &context_window)
        && max.value > window.value
    {
        r.problem_at(
            max,
            format!(
                "is larger than context_window ({}); the completion must fit in the window",
                window.value
            ),
        );
    }
    Some(RouteSpec {
        provider: provider?,
        model: model?,
        weight,
        priority,
        overrides: RouteOverrides {
            input,
            output,
            cached_input,
            cache_write,
            max_output_tokens: max_output_tokens.map(|max| max.value),
            context_window: context_window.map(|window| window.value),
        },
    })
}

fn read_key(r: &mut Reader<'_>, node: Node<'_, '_>, names: &mut Names) -> Option<KeySpec> {
    let name = read_name(r, &node, names);
    let node = node.named(name.as_ref());
    r.known_keys(&node, KEY_KEYS);
    let key = r.required_string(&node, "key").and_then(|key| {
        if key.value.chars().count() < MIN_KEY_CHARS {
            r.problem_at(
                &key,
                format!(
                    "must be at least {MIN_KEY_CHARS} characters long; generate one with \
                     `openssl rand -base64 32`"
                ),
            );
            return None;
        }
        Some(Secret::new(key.value))
    });
    let models = r.string_list(&node, "models").map(|models| {
        models
            .into_iter()
            .flatten()
            .filter_map(|model| r.name(model))
            .map(|model| model.value)
            .collect()
    });
    let rpm = r.integer(&node, "rpm", 1, u32::MAX).map(|rpm| rpm.value);
    let tpm = r.integer(&node, "tpm", 1, u32::MAX).map(|tpm| tpm.value);
    let budget_tokens = r
        .integer(&node, "budget_tokens", 1, u64::MAX)
        .map(|tokens| tokens.value);
    let budget_window = r.string(&node, "budget_window").and_then(|window| {
        let parsed = BudgetWindow::parse(window.value.trim());
        if parsed.is_none() {
            r.problem_at(
                &window,
                format!(
                    "unknown budget window {:?}; expected one of: {}",
                    window.value,
                    BudgetWindow::names()
                ),
            );
        } else if r.field(&node, "budget_tokens").is_none()
            && r.field(&node, "budget_usd").is_none()
        {
            r.problem_at(
                &window,
                "needs budget_tokens or budget_usd: the window says when that budget resets",
            );
        }
        parsed
    });
    let budget_usd = r
        .amount(&node, "budget_usd", |usd| {
            match Nanodollars::from_usd(usd)? {
                Nanodollars(0) => Err("must be more than 0; omit it for no spending budget".into()),
                budget => Ok(budget),
            }
        })
        .map(|budget| budget.value);
    let expires_at = read_expires_at(r, &node);
    Some(KeySpec {
        name: name?.value,
        key: key?,
        models,
        rpm,
        tpm,
        budget_tokens,
        budget_usd,
        budget_window,
        expires_at,
    })
}

/// `expires_at` as a quoted RFC 3339 string, or as a bare TOML datetime with an offset.
fn read_expires_at(r: &mut Reader<'_>, node: &Node<'_, '_>) -> Option<DateTime<Utc>> {
    let (path, value) = r.field(node, "expires_at")?;
    let text = match value.get_ref() {
        DeValue::Datetime(datetime) => Located {
            value: datetime.to_string(),
            path,
            offset: value.span().start,
        },
        _ => r.expect_string(path, value)?,
    };
    match DateTime::parse_from_rfc3339(text.value.trim()) {
        Ok(time) => Some(time.with_timezone(&Utc)),
        Err(_) => {
            r.problem_at(
                &text,
                format!(
                    "{:?} is not an RFC 3339 time with a time zone; write it like 2027-01-01T00:00:00Z",
                    text.value
                ),
            );
            None
        }
    }
}

/// The required `name` of an entry, checked by the rule for names and for uniqueness among its
/// kind.
fn read_name(
    r: &mut Reader<'_>,
    node: &Node<'_, '_>,
    names: &mut Names,
) -> Option<Located<String>> {
    let mut name = r.required_name(node, "name")?;
    // Read before the entry's path knows its name; a duplicate is easier to find named.
    name.path = node.path.named(&name.value).key("name");
    names.claim(r, &name);
    Some(name)
}

/// The names declared so far for one kind of entry, in file order.
struct Names {
    kind: &'static str,
    first_seen: HashMap<String, usize>,
    order: Vec<String>,
}

impl Names {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            first_seen: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Records `name`, reporting it where it repeats an earlier one.
    fn claim(&mut self, r: &mut Reader<'_>, name: &Located<String>) {
        if let Some(&first) = self.first_seen.get(&name.value) {
            let line = r.line(first);
            r.problem_at(
                name,
                format!(
                    "duplicate {} name {:?}; the first is at line {line}",
                    self.kind, name.value
                ),
            );
            return;
        }
        self.first_seen.insert(name.value.clone(), name.offset);
        self.order.push(name.value.clone());
    }

    fn contains(&self, name: &str) -> bool {
        self.first_seen.contains_key(name)
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn list(&self) -> String {
        self.order.join(", ")
    }
}

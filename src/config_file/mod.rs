//! The TOML config file: parsing, `${VAR}` interpolation and validation into plain specs, and
//! their preparation as rows (`import`) that `db` writes to the database.
//!
//! Every problem in a file is reported at once, each with a location people can find:
//! `models[1] "gpt-4o" .routes[0].provider (line 23)` — the path of the value, the object's
//! name where it has one, and the line. Syntax errors stop the parser, so there is at most one,
//! located as `line 3, column 10`. Problem messages never contain a secret.

mod import;
mod interpolate;
mod reader;
mod sections;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use toml::de::DeTable;

pub use import::{import, import_rows};

use crate::pricing::{Nanodollars, RouteOverrides};
use crate::secret::Secret;
use crate::vocab::BudgetWindow;
use crate::vocab::{ProviderKind, Strategy};

/// A validated config file. Every name it holds is unique within its kind, and every route
/// names a provider declared in the same file.
#[derive(Debug, Default)]
pub struct ConfigFile {
    pub server: ServerSection,
    pub providers: Vec<ProviderSpec>,
    pub models: Vec<ModelSpec>,
    pub keys: Vec<KeySpec>,
}

/// `[server]`: defaults that flags and `LLMGATE_*` variables override.
#[derive(Debug, Default)]
pub struct ServerSection {
    pub listen: Option<SocketAddr>,
    pub database: Option<String>,
    /// The Redis URL that makes limits, cooldowns and change notifications shared by replicas.
    pub redis: Option<String>,
}

/// A `[[providers]]` entry.
#[derive(Debug)]
pub struct ProviderSpec {
    pub name: String,
    pub kind: ProviderKind,
    /// An absolute http(s) URL without a trailing `/`.
    pub base_url: String,
    /// `responses = true`: the upstream serves OpenAI's Responses API itself (only on a kind
    /// that may, [`ProviderKind::may_serve_responses`]).
    pub responses: bool,
    /// Extra headers and the cloud kinds' settings, checked.
    pub cloud: crate::db::ProviderCloud,
    pub accounts: Vec<AccountSpec>,
}

/// A `[[providers.accounts]]` entry: one upstream credential.
#[derive(Debug)]
pub struct AccountSpec {
    pub name: String,
    pub api_key: Secret,
    pub weight: u32,
    pub rpm: Option<u32>,
}

/// A `[[models]]` entry: a public model name and where its requests may go.
#[derive(Debug)]
pub struct ModelSpec {
    pub name: String,
    pub strategy: Strategy,
    /// Within 1..=10.
    pub max_attempts: u32,
    /// Greater than zero when given.
    pub timeout: Option<Duration>,
    /// At least one.
    pub routes: Vec<RouteSpec>,
}

/// A `[[models.routes]]` entry.
#[derive(Debug)]
pub struct RouteSpec {
    /// The name of a provider declared in the same file.
    pub provider: String,
    /// The upstream's own name for the model.
    pub model: String,
    pub weight: u32,
    pub priority: u32,
    /// Its own prices and limits (`input_price`, …); absent ones are the built-in catalog's.
    pub overrides: RouteOverrides,
}

/// A `[[keys]]` entry: a client key declared in the file.
#[derive(Debug)]
pub struct KeySpec {
    pub name: String,
    /// The plaintext, at least 32 characters; stored only as a hash.
    pub key: Secret,
    /// The allowed models; `None` allows all.
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget_tokens: Option<u64>,
    /// The spending budget (`budget_usd`).
    pub budget_usd: Option<Nanodollars>,
    /// Only given together with `budget_tokens` or `budget_usd`.
    pub budget_window: Option<BudgetWindow>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// One thing wrong with a config file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub location: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Everything wrong with one config file; displays one line per problem.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {problem}", self.file.display())?;
        }
        Ok(())
    }
}

/// Reads and validates the file at `path`, expanding `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let error = |problems| ConfigError {
        file: path.to_owned(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        error(vec![ConfigProblem {
            location: "file".to_owned(),
            message: format!("cannot be read: {e}"),
        }])
    })?;
    parse(&text, &|name| std::env::var(name).ok()).map_err(error)
}

/// Parses and validates a config file's text; `env` resolves `${VAR}` references. Returns
/// every problem found, in file order.
pub fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConfigFile, Vec<ConfigProblem>> {
    let document = DeTable::parse(text).map_err(|error| vec![syntax_problem(text, &error)])?;
    let mut reader = reader::Reader::new(text, env);
    let config = sections::read(&mut reader, &reader::Node::root(document.get_ref()));
    let problems = reader.into_problems();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

fn syntax_problem(text: &str, error: &toml::de::Error) -> ConfigProblem {
    let location = match error.span() {
        Some(span) => {
            let (line, column) = reader::line_and_column(text, span.start);
            format!("line {line}, column {column}")
        }
        None => "document".to_owned(),
    };
    let mut message = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    // toml's message does not say which key; the span covers it, and keys are never secret.
    if message == "duplicate key"
        && let Some(key) = error.span().and_then(|span| text.get(span))
        && !key.is_empty()
    {
        message = format!("duplicate key `{key}`");
    }
    ConfigProblem { location, message }
}

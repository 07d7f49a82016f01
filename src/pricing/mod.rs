//! The built-in catalog of well-known upstream models (prices, limits, capabilities), a route's
//! terms (its own overrides over the catalog's figures, [`RouteTerms`]) and the cost of a
//! request's tokens at those prices.
//!
//! The data lives in `models.toml` beside this file, compiled into the binary with
//! `include_str!` and parsed once, on first use, behind a `LazyLock`: nothing pays for it
//! before a command or request asks (parsing the ~60 entries takes well under a millisecond).
//! A unit test parses the shipped file, so a release never carries a catalog that fails to load.
//!
//! Money is exact integers: a price is held in micro-dollars per million tokens (the file's
//! decimals, at most six places), and a cost is computed exactly in pico-dollars (tokens ×
//! micro-dollars per million tokens) before being rounded once, half up, to nano-dollars.
//! No float ever touches an amount that is added up, so a day of requests sums without drift.
//!
//! This module imports nothing of the crate: it sits at the bottom, beside `vocab`.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;

/// The shipped catalog's text.
const SHIPPED: &str = include_str!("models.toml");

static CATALOG: LazyLock<Result<Catalog, CatalogError>> = LazyLock::new(|| Catalog::parse(SHIPPED));

/// The shipped catalog. An error is impossible in a released binary (a unit test parses the
/// same text), but it is reported rather than panicked on.
pub fn catalog() -> Result<&'static Catalog, &'static CatalogError> {
    CATALOG.as_ref()
}

/// The catalog's entry for an upstream model name, as [`Catalog::lookup`] finds it; `None`
/// when the name is unknown (or, impossibly, the shipped catalog did not load).
pub fn lookup(upstream_model: &str) -> Option<Match<'static>> {
    catalog().ok()?.lookup(upstream_model)
}

/// What an upstream model takes, as far as llmgate knows: the largest completion one request
/// may ask for, and whether it reasons. Requests are shaped to it (an output cap above the
/// maximum is lowered, a reasoning setting the model cannot take is left out); a part that is
/// not known shapes nothing, so a model the catalog does not know is never guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelLimits {
    /// The largest completion (reasoning included) one request may ask for.
    pub max_output_tokens: Option<u64>,
    /// Whether the model takes a reasoning effort or a thinking budget.
    pub reasoning: Option<bool>,
}

impl ModelLimits {
    /// Nothing known: no request is shaped.
    pub const UNKNOWN: Self = Self {
        max_output_tokens: None,
        reasoning: None,
    };

    /// The catalog's figures for `upstream_model` ([`lookup`]), or [`Self::UNKNOWN`] for a name
    /// it does not know.
    pub fn of(upstream_model: &str) -> Self {
        lookup(upstream_model).map_or(Self::UNKNOWN, |found| Self::from(found.entry))
    }

    /// The output cap a request asking for `requested` tokens is sent with.
    pub fn output_cap(self, requested: u64) -> u64 {
        self.max_output_tokens
            .map_or(requested, |max| requested.min(max))
    }

    /// Whether a request asking for `requested` output tokens is lowered.
    pub fn lowers(self, requested: u64) -> bool {
        self.output_cap(requested) < requested
    }

    /// Whether a reasoning effort or thinking budget may be sent: unless the model is known
    /// to have no reasoning.
    pub fn takes_reasoning(self) -> bool {
        self.reasoning != Some(false)
    }
}

impl From<&ModelEntry> for ModelLimits {
    /// An embedding model's maximum of 0 output tokens is no cap: it generates nothing.
    fn from(entry: &ModelEntry) -> Self {
        Self {
            max_output_tokens: (entry.max_output_tokens > 0).then_some(entry.max_output_tokens),
            reasoning: Some(entry.capabilities.reasoning),
        }
    }
}

/// A price in micro-dollars (millionths of a USD) per million tokens: `2.50` in the file is
/// `Price(2_500_000)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Price(pub u64);

impl Price {
    /// USD per million tokens, for display only.
    pub fn usd_per_million(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// A USD-per-million decimal (the catalog's, a config file's or the admin API's), exactly:
    /// refuses a negative price, a non-finite one, and one with more than six decimal places
    /// (a precision below a micro-dollar no provider publishes).
    pub fn from_usd(usd: f64) -> Result<Self, String> {
        if !usd.is_finite() || usd < 0.0 {
            return Err(format!("{usd} is not a price (a non-negative number)"));
        }
        let micros = (usd * 1e6).round();
        if (usd * 1e6 - micros).abs() > 1e-3 || micros > 1e15 {
            return Err(format!("{usd} has more than six decimal places"));
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked above: a non-negative integer below 1e15"
        )]
        Ok(Self(micros as u64))
    }
}

impl fmt::Display for Price {
    /// USD per million tokens with as many decimals as the price has (at least two).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000;
        let fraction = format!("{:06}", self.0 % 1_000_000);
        let trimmed = fraction.trim_end_matches('0');
        let shown = if trimmed.len() < 2 {
            &fraction[..2]
        } else {
            trimmed
        };
        write!(f, "{whole}.{shown}")
    }
}

/// What one model costs per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prices {
    /// An uncached prompt token.
    pub input: Price,
    /// A prompt token read from the provider's cache; `None` when no price is published (such
    /// tokens are then charged as `input`).
    pub cached_input: Option<Price>,
    /// A prompt token written to the cache (Anthropic's 5-minute write); `None` when the
    /// provider charges no separate write price (such tokens are then charged as `input`).
    pub cache_write: Option<Price>,
    /// A completion token, reasoning tokens included.
    pub output: Price,
}

/// The model's features a request may lean on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub tools: bool,
    pub vision: bool,
    /// Reasoning or thinking (a reasoning effort, a thinking budget).
    pub reasoning: bool,
    /// Structured output against a JSON schema.
    pub json_schema: bool,
}

impl Capabilities {
    /// The names of the capabilities present, in the file's order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.tools, "tools"),
            (self.vision, "vision"),
            (self.reasoning, "reasoning"),
            (self.json_schema, "json_schema"),
        ]
        .into_iter()
        .filter_map(|(present, name)| present.then_some(name))
        .collect()
    }
}

/// One upstream model as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// The provider's own name for the model, lower case.
    pub name: String,
    /// Other names the provider accepts for the same model.
    pub aliases: Vec<String>,
    /// Who serves it at these prices: openai, anthropic, gemini, or the reference host of an
    /// open model.
    pub provider: String,
    pub prices: Prices,
    pub context_window: u64,
    /// The largest completion one request may ask for (0 for embedding models).
    pub max_output_tokens: u64,
    pub capabilities: Capabilities,
    /// The page the figures were read from.
    pub source: String,
    /// When they were read, `YYYY-MM-DD`.
    pub read_on: chrono::NaiveDate,
    /// What a price alone would hide (a tiered price, a shutdown date).
    pub note: Option<String>,
}

/// How a looked-up name reached its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'a> {
    pub entry: &'a ModelEntry,
    /// True when the name (without a `vendor/` prefix, in any case) is the entry's name or one
    /// of its aliases; false when it is a dated snapshot or version of it.
    pub exact: bool,
}

/// Why a catalog text was refused; names the entry and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model catalog: {0}")]
pub struct CatalogError(String);

/// Every known model, looked up by upstream model name.
#[derive(Debug)]
pub struct Catalog {
    entries: Vec<ModelEntry>,
    /// Each name and alias, lower case, to its entry's index.
    by_name: HashMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCatalog {
    model: Vec<FileEntry>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum FileCapability {
    Tools,
    Vision,
    Reasoning,
    JsonSchema,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    provider: String,
    input: f64,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    output: f64,
    context_window: u64,
    max_output_tokens: u64,
    capabilities: Vec<FileCapability>,
    source: String,
    read_on: String,
    note: Option<String>,
}

impl FileEntry {
    fn into_entry(self) -> Result<ModelEntry, String> {
        let name = self.name.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains('/') || name != self.name {
            return Err(format!(
                "'{}': a name is the provider's model id in lower case, without a vendor/ prefix",
                self.name
            ));
        }
        let price = |field: &str, usd: f64| {
            Price::from_usd(usd).map_err(|why| format!("'{name}': {field} {why}"))
        };
        let input = price("input", self.input)?;
        let output = price("output", self.output)?;
        let cached_input = self
            .cached_input
            .map(|usd| price("cached_input", usd))
            .transpose()?;
        let cache_write = self
            .cache_write
            .map(|usd| price("cache_write", usd))
            .transpose()?;
        if cached_input.is_some_and(|cached| cached > input) {
            return Err(format!(
                "'{name}': cached_input is dearer than input; a cache read is a discount"
            ));
        }
        if cache_write.is_some_and(|write| write < input) {
            return Err(format!(
                "'{name}': cache_write is cheaper than input; a cache write costs at least an uncached token"
            ));
        }
        if self.context_window == 0 {
            return Err(format!("'{name}': context_window must be positive"));
        }
        if self.max_output_tokens > self.context_window {
            return Err(format!(
                "'{name}': max_output_tokens is larger than context_window"
            ));
        }
        if !(self.source.starts_with("https://") && self.source.len() > "https://".len()) {
            return Err(format!(
                "'{name}': source must be the https:// page the figures were read from"
            ));
        }
        let read_on = chrono::NaiveDate::parse_from_str(&self.read_on, "%Y-%m-%d")
            .map_err(|_| format!("'{name}': read_on must be a date like 2026-12-07"))?;
        let has = |capability| self.capabilities.contains(&capability);
        let capabilities = Capabilities {
            tools: has(FileCapability::Tools),
            vision: has(FileCapability::Vision),
            reasoning: has(FileCapability::Reasoning),
            json_schema: has(FileCapability::JsonSchema),
        };
        let provider = self.provider.trim().to_owned();
        if provider.is_empty() {
            return Err(format!("'{name}': provider is empty"));
        }
        Ok(ModelEntry {
            name,
            aliases: self
                .aliases
                .iter()
                .map(|alias| alias.trim().to_ascii_lowercase())
                .collect(),
            provider,
            prices: Prices {
                input,
                cached_input,
                cache_write,
                output,
            },
            context_window: self.context_window,
            max_output_tokens: self.max_output_tokens,
            capabilities,
            source: self.source,
            read_on,
            note: self.note.filter(|note| !note.trim().is_empty()),
        })
    }
}

impl Catalog {
    /// Parses and validates a catalog text (the shipped one, or a test's).
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let file: FileCatalog =
            toml::from_str(text).map_err(|error| CatalogError(error.to_string()))?;
        let mut entries = Vec::with_capacity(file.model.len());
        let mut by_name = HashMap::new();
        for raw in file.model {
            let entry = raw.into_entry().map_err(CatalogError)?;
            let index = entries.len();
            for name in std::iter::once(&entry.name).chain(&entry.aliases) {
                if by_name.insert(name.clone(), index).is_some() {
                    return Err(CatalogError(format!("'{name}' is listed twice")));
                }
            }
            entries.push(entry);
        }
        Ok(Self { entries, by_name })
    }

    /// Every entry, in the file's order.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The entry for an upstream model name. A `vendor/` or `models/` prefix is ignored and
    /// case does not matter. An exact name (or alias) wins; otherwise the longest known name
    /// that the given one extends with `-` and a date or version suffix (`-2024-08-06`,
    /// `-20250929`, `-preview-05-20`, `-0613`, `-001`, `-latest`). Nothing looser: `gpt-4o-mini`
    /// is its own model, never `gpt-4o` with a suffix, and an unknown name is `None`.
    ///
    /// An AWS Bedrock model id is read as the model it names: its inference profile's region
    /// (`us.`, `eu.`, `apac.`, `global.`, …), its vendor (`anthropic.`, `meta.`, …) and its
    /// version (`-v1:0`) are left out, so `us.anthropic.claude-3-5-haiku-20241022-v1:0` is
    /// `claude-3-5-haiku-20241022`.
    pub fn lookup(&self, upstream_model: &str) -> Option<Match<'_>> {
        let bare = upstream_model
            .rsplit('/')
            .next()
            .unwrap_or(upstream_model)
            .trim()
            .to_ascii_lowercase();
        match bedrock_model(&bare) {
            Some(model) => self.lookup_bare(model),
            None => self.lookup_bare(&bare),
        }
    }

    fn lookup_bare(&self, bare: &str) -> Option<Match<'_>> {
        if let Some(&index) = self.by_name.get(bare) {
            return Some(Match {
                entry: &self.entries[index],
                exact: true,
            });
        }
        // Try each `-` boundary from the right, so the longest known family wins.
        let mut cut = bare.len();
        while let Some(dash) = bare[..cut].rfind('-') {
            let (family, suffix) = (&bare[..dash], &bare[dash + 1..]);
            if let Some(&index) = self.by_name.get(family) {
                return is_version_suffix(suffix).then(|| Match {
                    entry: &self.entries[index],
                    exact: false,
                });
            }
            cut = dash;
        }
        None
    }
}

/// The model an AWS Bedrock model id names (`[region.]vendor.model[-vN][:N]`), or `None` for a
/// name that is not one.
fn bedrock_model(id: &str) -> Option<&str> {
    const REGIONS: &[&str] = &["us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"];
    const VENDORS: &[&str] = &[
        "anthropic",
        "meta",
        "amazon",
        "mistral",
        "cohere",
        "ai21",
        "deepseek",
        "openai",
        "qwen",
        "writer",
    ];
    let mut rest = id;
    if let Some((region, after)) = rest.split_once('.')
        && REGIONS.contains(&region)
    {
        rest = after;
    }
    let (vendor, model) = rest.split_once('.')?;
    if !VENDORS.contains(&vendor) {
        return None;
    }
    let model = match model.rsplit_once(':') {
        Some((before, number)) if number.bytes().all(|b| b.is_ascii_digit()) => before,
        _ => model,
    };
    let model = match model.rsplit_once("-v") {
        Some((before, number))
            if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            before
        }
        _ => model,
    };
    Some(model)
}

/// Whether what follows a family name marks a snapshot or version of that same model: a date
/// (`2024-08-06`, `20250929`, `05-20`), a four-digit snapshot (`0613`) or a three-digit
/// version (`001`), each optionally after `preview` or `exp`; or a lone `latest`. A single
/// digit or a word such as `mini` names a different model and is refused (`claude-opus-4-5`
/// is not a version of `claude-opus-4`), and so is an undated `preview` (`o1-preview` was
/// its own model, with its own limits).
fn is_version_suffix(suffix: &str) -> bool {
    let parts: Vec<&str> = suffix.split('-').collect();
    let words = parts
        .iter()
        .take_while(|part| matches!(**part, "preview" | "exp" | "latest"))
        .count();
    let digits = &parts[words..];
    if !digits
        .iter()
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let lengths: Vec<usize> = digits.iter().map(|part| part.len()).collect();
    match lengths.as_slice() {
        [] => parts == ["latest"],
        [8] | [4] | [3] | [4, 2, 2] | [2, 2] => true,
        _ => false,
    }
}

/// The tokens of one request, as billed. `prompt_tokens` is the whole prompt: it includes the
/// `cached_tokens` read from the cache and the `cache_write_tokens` written to it.
/// `completion_tokens` includes reasoning tokens, which are billed as output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BilledTokens {
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub completion_tokens: u64,
}

/// An amount of money in nano-dollars (billionths of a USD): a request's cost, a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Nanodollars(pub u64);

impl Nanodollars {
    /// USD, for display and JSON only; sums are made on the integers.
    pub fn usd(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// An amount of USD (a budget from a config file or the admin API), to the nearest
    /// nano-dollar; refuses a negative, non-finite or absurdly large one.
    pub fn from_usd(usd: f64) -> Result<Self, String> {
        if !usd.is_finite() || usd < 0.0 {
            return Err(format!(
                "{usd} is not an amount of USD (a non-negative number)"
            ));
        }
        if usd > 1e9 {
            return Err(format!("{usd} is more than a billion USD"));
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked above: a non-negative number below 1e18 after scaling"
        )]
        Ok(Self((usd * 1e9).round() as u64))
    }

    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

/// What `tokens` cost at `prices`: cached tokens at the cached price, cache writes at the
/// cache-write price (each at the input price when the provider publishes none), the rest of
/// the prompt at the input price, and every completion token (reasoning included) at the
/// output price. Computed exactly in pico-dollars, rounded half up to nano-dollars once.
/// Counts that do not add up (more cached than prompt tokens) are clamped, never negative.
pub fn cost_usd(prices: &Prices, tokens: BilledTokens) -> Nanodollars {
    let cached = tokens.cached_tokens.min(tokens.prompt_tokens);
    let written = tokens.cache_write_tokens.min(tokens.prompt_tokens - cached);
    let fresh = tokens.prompt_tokens - cached - written;
    let line = |count: u64, price: Price| u128::from(count) * u128::from(price.0);
    let picodollars = line(fresh, prices.input)
        + line(cached, prices.cached_input.unwrap_or(prices.input))
        + line(written, prices.cache_write.unwrap_or(prices.input))
        + line(tokens.completion_tokens, prices.output);
    let nanodollars = picodollars.saturating_add(500) / 1000;
    Nanodollars(u64::try_from(nanodollars).unwrap_or(u64::MAX))
}

/// A route's own prices and limits (the config file's and admin API's `input_price`,
/// `output_price`, `cached_input_price`, `cache_write_price`, `max_output_tokens`,
/// `context_window`); each `None` leaves that figure to the built-in catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteOverrides {
    pub input: Option<Price>,
    pub output: Option<Price>,
    pub cached_input: Option<Price>,
    pub cache_write: Option<Price>,
    pub max_output_tokens: Option<u64>,
    pub context_window: Option<u64>,
}

/// What a route costs and allows once its overrides and the catalog are put together; resolved
/// once per routing snapshot, never per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteTerms {
    /// `None`: neither the route nor the catalog gives both an input and an output price. Such
    /// a route costs nothing and is flagged; a price is never guessed.
    pub prices: Option<Prices>,
    pub max_output_tokens: Option<u64>,
    pub context_window: Option<u64>,
}

impl RouteTerms {
    /// Each figure from `overrides` where it is set, else from the catalog's entry for
    /// `upstream_model` (dated snapshots included), else unknown. The input and output prices
    /// are needed together: a route that has only one of them anywhere is unpriced. A cached
    /// or cache-write price missing everywhere bills those tokens at the input price.
    pub fn resolve(upstream_model: &str, overrides: &RouteOverrides) -> Self {
        let known = lookup(upstream_model).map(|found| found.entry);
        let input = overrides.input.or(known.map(|e| e.prices.input));
        let output = overrides.output.or(known.map(|e| e.prices.output));
        let prices = match (input, output) {
            (Some(input), Some(output)) => Some(Prices {
                input,
                output,
                cached_input: overrides
                    .cached_input
                    .or(known.and_then(|e| e.prices.cached_input)),
                cache_write: overrides
                    .cache_write
                    .or(known.and_then(|e| e.prices.cache_write)),
            }),
            _ => None,
        };
        Self {
            prices,
            max_output_tokens: overrides
                .max_output_tokens
                .or(known.map(|e| e.max_output_tokens).filter(|max| *max > 0)),
            context_window: overrides.context_window.or(known.map(|e| e.context_window)),
        }
    }

    /// Every figure in effect, in the shape of overrides (for display beside the route's own).
    pub fn figures(&self) -> RouteOverrides {
        let prices = self.prices.as_ref();
        RouteOverrides {
            input: prices.map(|p| p.input),
            output: prices.map(|p| p.output),
            cached_input: prices.and_then(|p| p.cached_input),
            cache_write: prices.and_then(|p| p.cache_write),
            max_output_tokens: self.max_output_tokens,
            context_window: self.context_window,
        }
    }

    /// The most a request can cost on this route before it runs: `prompt_tokens` at the
    /// dearest prompt price (a cache write where that costs more than an uncached token) and
    /// `output_cap` completion tokens at the output price. Zero on an unpriced route.
    pub fn worst_case(&self, prompt_tokens: u64, output_cap: u64) -> Nanodollars {
        let Some(prices) = self.prices else {
            return Nanodollars::default();
        };
        let dearest_prompt = prices.input.max(prices.cache_write.unwrap_or(prices.input));
        cost_usd(
            &Prices {
                input: dearest_prompt,
                cached_input: None,
                cache_write: None,
                output: prices.output,
            },
            BilledTokens {
                prompt_tokens,
                completion_tokens: output_cap,
                ..BilledTokens::default()
            },
        )
    }
}

#[cfg(test)]
mod tests;

//! Usage accounting: reading token usage from upstream answers (whole bodies and event streams),
//! estimating it when the upstream reports none, and recording one event per request without
//! ever waiting on the database.
//!
//! The request path calls [`UsageRecorder::record`], which only touches memory; the
//! [`UsageWriter`] task writes counters and log rows in one transaction per flush, and
//! [`retention::run`] trims old log rows. Stored responses of the Responses API take the same
//! way: [`UsageRecorder::keep_response`] holds them in memory (where reads find them) until the
//! writer's next transaction has written them, and the retention task deletes expired ones.

mod estimate;
mod extract;
mod recorder;
mod responses;
pub mod retention;
mod stream;

pub use estimate::{Encoding, count_tokens, estimate_prompt_tokens, estimate_usage};
pub use extract::{IncludeUsage, WholeAnswer, ensure_include_usage, from_body, read_answer};
pub use recorder::{DEFAULT_QUEUE, FlushReport, UsageRecorder, UsageWriter};
pub use responses::{PendingResponse, Unkept};
pub use stream::{EventForm, StreamUsage, is_usage_only_chunk};

/// Tokens used by one request, as the upstream reported them or as llmgate estimated them, in
/// OpenAI's terms whatever the upstream's dialect: `prompt_tokens` includes the cached ones,
/// `completion_tokens` the reasoning ones. The translators, the accounting and the request log
/// all count with this one type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Prompt tokens served from the upstream's prompt cache (part of `prompt_tokens`).
    pub cached_tokens: u64,
    /// Prompt tokens written to the upstream's prompt cache (part of `prompt_tokens`; Anthropic
    /// reports them). Billed at the cache-write price; not a rollup column of its own. In chat
    /// form they travel as `prompt_tokens_details.cache_write_tokens`.
    pub cache_creation_tokens: u64,
    /// Reasoning tokens (part of `completion_tokens`).
    pub reasoning_tokens: u64,
    /// Counted by llmgate's tokenizer because the upstream reported nothing.
    pub estimated: bool,
}

impl Usage {
    /// The tokens that count against rate limits and budgets: prompt plus completion.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// The tokens as a price list bills them. `Usage` already counts in OpenAI's terms for
    /// every dialect (an Anthropic answer's `input_tokens`, which leaves out cache reads and
    /// writes, arrives here with both added back into `prompt_tokens`), so this is a copy.
    pub fn billed(&self) -> crate::pricing::BilledTokens {
        crate::pricing::BilledTokens {
            prompt_tokens: self.prompt_tokens,
            cached_tokens: self.cached_tokens,
            cache_write_tokens: self.cache_creation_tokens,
            completion_tokens: self.completion_tokens,
        }
    }

    /// What these tokens cost at `prices`; nothing on a route without prices.
    pub fn cost(&self, prices: Option<&crate::pricing::Prices>) -> crate::pricing::Nanodollars {
        prices.map_or_else(Default::default, |prices| {
            crate::pricing::cost_usd(prices, self.billed())
        })
    }

    /// The same counts with `total_tokens` set to prompt plus completion (as an upstream's
    /// answer is read: its own total is not trusted).
    #[must_use]
    pub fn totalled(mut self) -> Self {
        self.total_tokens = self.tokens();
        self
    }
}

/// What happened to one request, as recorded in the rollups and the request log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    /// When the request finished, in Unix milliseconds (UTC). Its UTC day is the rollup's day.
    pub at_ms: i64,
    pub request_id: String,
    pub key_id: i64,
    /// The public model name the client asked for: a configured model's name, or (when
    /// `model_configured` is false) an escaped excerpt of what the client sent, kept in the
    /// request log only.
    pub model: String,
    /// Whether `model` is a configured model. Rollups count every other name under
    /// [`crate::telemetry::metrics::UNKNOWN_MODEL`], so a client cannot add rows at will.
    pub model_configured: bool,
    /// `chat_completions`, `completions` or `embeddings` (`Endpoint::name`).
    pub endpoint: &'static str,
    pub stream: bool,
    /// The provider that answered (or last failed); `None` when no attempt was made.
    pub provider: Option<String>,
    pub route_id: Option<i64>,
    /// The upstream account used, if the provider has accounts.
    pub account_id: Option<i64>,
    /// The status the client saw. A stream that broke after it started should be recorded as
    /// an upstream failure (502 or 504): the rollups count every status from 400 up as an error.
    pub status: u16,
    pub attempts: u32,
    pub latency_ms: u64,
    /// Time to the first response byte, when a response started.
    pub ttfb_ms: Option<u64>,
    pub usage: Usage,
    /// What `usage` cost at the prices of the route that served the request (an estimate when
    /// `usage.estimated`; nothing on an unpriced route or without an attempt).
    pub cost: crate::pricing::Nanodollars,
}

impl UsageEvent {
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }

    /// The model its rollup row counts it under.
    pub fn rollup_model(&self) -> &str {
        if self.model_configured {
            &self.model
        } else {
            crate::telemetry::metrics::UNKNOWN_MODEL
        }
    }
}

/// The usage a whole response reports or, when it reports none, an estimate from the request
/// and the response's generated text.
pub fn usage_of_response(model: &str, request: &[u8], response: &[u8]) -> Usage {
    from_body(response)
        .unwrap_or_else(|| estimate_usage(model, request, &stream::response_text(response)))
}

/// The current time in Unix milliseconds, for [`UsageEvent::at_ms`].
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

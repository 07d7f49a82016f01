//! llmgate: a single-binary, OpenAI-compatible LLM gateway.
//!
//! # Architecture map
//!
//! One chat request flows through these modules, top to bottom:
//!
//! ```text
//! http        axum router and its single middleware stack (request id, error rendering,
//!             panic catching); extractors turn headers into a `ClientKey` and a body into bytes
//! auth        client keys: hashing, the moka cache (negative entries included), expiry
//! gateway     the use cases without axum: parse the few request fields we need, pick a target,
//!             send upstream, relay the answer (streamed frame by frame, or whole);
//!             `gateway::dialect` decides per attempt whether the body passes through or is
//!             translated, and how the answer goes back in the client's dialect
//! translate   pure translators between OpenAI chat, Anthropic Messages and Gemini, whole bodies
//!             and event streams fed chunk by chunk
//! limits      in-memory rpm/tpm buckets and token budgets, admitted before any upstream work
//! usage       usage read from answers (or estimated), recorded in memory, written by one task
//! telemetry   tracing setup (JSON or pretty logs, optional OTLP) and the Prometheus metrics
//! pricing     the built-in catalog of well-known upstream models (prices per million tokens,
//!             limits, capabilities) read from `pricing/models.toml`, and the exact cost of a
//!             request's tokens; it imports nothing of the crate
//! routing     the `Catalog`: an immutable snapshot of providers, accounts, models and routes
//!             behind `ArcSwap`, rebuilt from the database when it changes
//! providers   the endpoints served, and how to address and authenticate each kind of upstream
//! upstream    the one shared `reqwest::Client` and its tuning
//! db          the only module with SQL: pools (one writer, a read pool), migrations, queries
//! config_file the TOML file: parse, `${VAR}` interpolation, validation, import into the database
//! mock        the mock upstream behind `llmgate mock-upstream`, used by tests, demo and benches
//! app         builds the state, owns the background tasks, serves until shutdown
//! admin       the admin plane without axum: login and tokens, validation, sealing secrets,
//!             writes that wake the change watcher (`http::admin` is its thin HTTP side)
//! ```
//!
//! # Invariants
//!
//! - A request never waits on the database: the catalog is a snapshot, keys come from a cache,
//!   and the database is read only on a key-cache miss (once per key, single-flight).
//! - Only `db` contains SQL. Only `http` knows axum. Only `error` writes error JSON.
//! - There is one `reqwest::Client`, built in `upstream` and handed to providers; nothing else
//!   opens upstream connections.
//! - The request body reaches an upstream of the client's own dialect byte for byte, except the
//!   value of `model`; to another dialect it is translated, never silently trimmed.
//! - Client credentials never reach an upstream; secrets print `[redacted]` in `Debug`.
//! - The admin API never returns a stored secret: account credentials are write-only (sealed
//!   with the `SecretCipher`), key plaintexts are shown once, the admin password is stored only
//!   as an argon2 hash.
//! - Every background task is owned by `App` and stopped (drained where it holds data) on
//!   shutdown.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config_file;
pub mod db;
pub mod error;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod mock;
pub mod pricing;
pub mod providers;
pub mod routing;
pub mod secret;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod translate;
pub mod upstream;
pub mod usage;
pub mod vocab;

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
//!             send upstream, relay the answer (streamed frame by frame, or whole)
//! routing     the `Catalog`: an immutable snapshot of providers, accounts, models and routes
//!             behind `ArcSwap`, rebuilt from the database when it changes
//! providers   one file per upstream dialect: how to address and authenticate an upstream
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
//! - The request body reaches the upstream byte for byte, except the value of `model`.
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
pub mod providers;
pub mod routing;
pub mod secret;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod translate;
pub mod upstream;
pub mod usage;

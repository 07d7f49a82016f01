//! llmgate: a single-binary, OpenAI-compatible LLM gateway.
//!
//! # Architecture map
//!
//! One chat request flows through these modules, top to bottom:
//!
//! ```text
//! http        the axum edge: the router and its one middleware stack (request id, error
//!             rendering, panic catching), extractors (`ClientKey`, the body), one handler for
//!             every proxied endpoint, the admin API and the web console (`/ui/`); serves the
//!             listener until shutdown (`http::serve`); the only place an `ApiError` becomes a
//!             response (`http::respond`)
//! auth        client keys: hashing, the moka cache (negative entries included), expiry
//! gateway     the use cases without axum: parse the few request fields we need, pick a target,
//!             send upstream, relay the answer (streamed frame by frame, or whole);
//!             `gateway::dialect` dispatches each attempt through an `Ingress` (what the client
//!             speaks) and a `Provider` (what the upstream speaks), one file per dialect, with
//!             OpenAI chat between two dialects and the body passed through when both agree
//!             (for Responses, when the provider is declared `responses = true`);
//!             `gateway::attempts` holds one request's way through its targets (next target,
//!             backoff, failures, the final error); `gateway::outcome` decides what an
//!             upstream's answer means; `gateway::record` is the request's record, reported once
//! translate   pure translators between OpenAI chat, Anthropic Messages, Gemini, Bedrock's
//!             Converse (its binary event stream decoded with `aws-smithy-eventstream`) and the
//!             Responses API, whole bodies and event streams fed chunk by chunk; every stream
//!             translator is a `translate::StreamTranslator`; every request translator writes
//!             within the upstream model's `ModelLimits`, and `translate::shape` edits a
//!             same-dialect body in place
//! limits      in-memory rpm/tpm buckets and budgets (in tokens and in nano-dollars), admitted
//!             before any upstream work
//! usage       usage read from answers (or estimated), recorded in memory, written by one task,
//!             which also writes stored responses (readable in memory until written)
//! telemetry   tracing setup (JSON or pretty logs, optional OTLP) and the Prometheus metrics
//! pricing     the built-in catalog of well-known upstream models (prices per million tokens,
//!             limits, capabilities) read from `pricing/models.toml`, each route's terms
//!             (`RouteTerms`: its overrides, else the catalog's figures), the exact cost of a
//!             request's tokens, and `ModelLimits` (what an upstream model takes: maximum
//!             output, reasoning); it imports nothing of the crate
//! routing     the `Catalog`: an immutable snapshot of providers, accounts, models and routes
//!             behind `ArcSwap`, rebuilt from the database when it changes
//!             (`routing::rebuild_catalog`); each `Route` carries its upstream model's
//!             `ModelLimits`, resolved at rebuild
//! providers   how to address and authenticate each kind of upstream, and the access tokens
//!             minted from service accounts (`providers::AccessTokens`: per account, single
//!             flight, on the App's clock, through the one client), and the SigV4 signature
//!             of every Bedrock request (`aws-sigv4`), made in `build_request`
//! upstream    the one shared `reqwest::Client` at a time and its tuning (`UpstreamClient`:
//!             replaced by a fresh one of the same settings at `LLMGATE_UPSTREAM_POOL_MAX_AGE`,
//!             answers under way finishing on the old one)
//! db          the only module with SQL: pools (one writer, a read pool), migrations, queries;
//!             it takes rows its callers prepared (hashed, sealed, rolled up) and imports
//!             nothing of the crate but `vocab`;
//!             migrations per backend, `migrations/` (SQLite) and `migrations/postgres/`
//!             (PostgreSQL, whose queries are not ported yet: its URLs are refused), same
//!             numbers and meaning, checked against each other; `migrate_data` copies a SQLite
//!             database into PostgreSQL
//! config_file the TOML file: parse, `${VAR}` interpolation, validation, preparation of its rows
//!             for import
//! mock        the mock upstream behind `llmgate mock-upstream`, used by tests, demo and benches
//! app         builds the state, owns the background tasks, runs until shutdown
//! admin       the admin plane without axum: login and tokens, validation, sealing secrets,
//!             writes that wake the change watcher (`http::admin` is its thin HTTP side)
//! secret      `Secret`, the `SecretCipher`, the key file beside the database, credential
//!             redaction
//! vocab       the closed sets of names every layer speaks of: endpoints, dialects, provider
//!             kinds, strategies, budget windows
//! clock       the one clock (monotonic and calendar) that limits, health, key expiry and
//!             retention read; a manual one in tests
//! names       the one check of object names (visible, single-line, no bidi overrides), used
//!             by the admin API, the CLI and the config file alike
//! sse         the one server-sent-events line reader and decoder, and the per-event size cap
//! cluster     what replicas share through Redis (`LLMGATE_REDIS_URL`): the connection,
//!             script calls bounded by `LLMGATE_REDIS_TIMEOUT`, the writer and listener tasks,
//!             and the notices replicas publish (changes, cooldowns, circuits)
//! untrusted   how text a client chose is escaped and shortened before it is echoed,
//!             logged or recorded
//! ```
//!
//! # Invariants
//!
//! - A request never waits on the database: the catalog is a snapshot, keys come from a cache,
//!   and the database is read only on a key-cache miss (once per key, single-flight), and for
//!   a Responses request that continues a stored response (one read-pool query for its chain)
//!   or reads or deletes one; stored responses are written by the usage writer, and read from
//!   memory until they are.
//! - Only `db` contains SQL. Only `http` knows axum. Only `error` writes error JSON.
//! - There is one current `reqwest::Client`, built in `upstream` (replaced at its age by the
//!   first request past it) and handed to providers; nothing else opens upstream connections
//!   (`clippy.toml` refuses building another).
//! - The request body reaches an upstream of the client's own dialect byte for byte, except the
//!   value of `model` (and, for an Anthropic upstream, `system`-role messages moved into
//!   `system`, which it would refuse in `messages`) and the values shaped to the route's upstream
//!   model: an output cap above its maximum lowered to it, a reasoning setting it cannot take left
//!   out, only for a model whose limits are known and only when the request asks beyond them,
//!   named in `x-llmgate-shaped`; a request that needs no shaping is not re-serialized. To
//!   another dialect it is translated within the same limits, never silently trimmed.
//! - Every request is reported once, with one outcome, through its `RequestRecord` (changed only
//!   by its named methods): the log line, the request log and the metrics agree; at shutdown, streams still open when the grace ends get an error event and
//!   are recorded before the usage writer drains.
//! - A request makes at most one Redis round trip (its admission, one script call; none for a
//!   key without limits); settlements and notices go through the cluster's writer task; while
//!   Redis is down, requests skip it without waiting and use per-process limits.
//! - Client credentials never reach an upstream; secrets print `[redacted]` in `Debug`.
//! - An account whose kind mints access tokens sends one token request per expiry, however many
//!   requests wait for it.
//! - Text a client chose never reaches a log line unescaped, an error message or a record at
//!   any length, or a metric label or rollup row unless it names a configured model.
//! - An upstream's error answer (non-2xx, or an error event inside a stream) is logged or
//!   relayed only through `secret::redact_credentials`.
//! - No upstream answer is buffered past `LLMGATE_MAX_UPSTREAM_BODY_BYTES`, whole or as one
//!   event of a stream.
//! - The admin API never returns a stored secret: account credentials are write-only (sealed
//!   with the `SecretCipher`), key plaintexts are shown once, the admin password is stored only
//!   as an argon2 hash.
//! - Every background task is owned by `App` and stopped (drained where it holds data) on
//!   shutdown; `clippy.toml` refuses `tokio::spawn` and `std::thread::spawn` elsewhere.
//! - Modules are layered, and `tests/architecture.rs` holds the ranks: vocab, clock, untrusted,
//!   names, pricing, sse, cluster < db, telemetry < secret, auth, usage < routing, limits, translate <
//!   providers, settings, error, mock < config_file, upstream < gateway, admin < state < http <
//!   app < cli; no module imports one of its own rank or above.
//! - Behaviour that depends on time (limits, cooldowns, circuits, key expiry, retention) reads
//!   the App's `Clock`; no test sleeps to wait for a cooldown.
//! - A dialect is a type: adding one adds a file under `gateway/dialect/` and one line in its
//!   registry; every stream translator ends once (finish or fail) through one shared
//!   implementation. Token counts have one type, `usage::Usage`, from the translators to the
//!   request log.
//! - What an upstream's answer (or silence) means is decided only in `gateway::outcome`: the
//!   attempt loop and the stream relay both ask it, and neither classifies a status, a timeout
//!   or a cut inline.
//! - Files llmgate creates (the database and its `-wal`/`-shm`, the key file, backups) are
//!   readable by their owner only: llmgate creates each one 0600 before anything is written.
//! - Admin tokens are revoked by generation, never one by one: a token of an earlier generation
//!   than the database's is refused by every process within its change-poll interval.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config_file;
pub mod db;
pub mod error;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod mock;
pub mod names;
pub mod pricing;
pub mod providers;
pub mod routing;
pub mod secret;
pub mod settings;
mod sse;
pub mod state;
pub mod telemetry;
pub mod translate;
pub mod untrusted;
pub mod upstream;
pub mod usage;
pub mod vocab;

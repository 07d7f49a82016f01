//! The command line: clap definitions and one function per command. Each returns the process
//! exit code: 0 ok, 2 bad usage or configuration, 1 anything else.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::{App, StartError};
use crate::auth::{self, KeyError, NewKey};
use crate::config_file::{self, ConfigFile};
use crate::db::{self, Db, KeyRow};
use crate::pricing;
use crate::secret::Secret;
use crate::settings::{Settings, parse_duration, parse_listen};
use crate::vocab::BudgetWindow;

#[derive(Debug, Parser)]
#[command(
    name = "llmgate",
    version,
    about = "A single-binary, OpenAI-compatible LLM gateway"
)]
pub struct Cli {
    /// Database URL, like sqlite://llmgate.db [default: sqlite://llmgate.db]
    #[arg(long, global = true, env = "LLMGATE_DATABASE_URL")]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage client keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage admin sessions.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// What llmgate knows about upstream models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Write a consistent snapshot of the database to FILE while the gateway keeps running.
    Backup {
        /// Where to write the snapshot (0600): a plain path that does not exist yet, not a
        /// symbolic link or a file: URI.
        file: PathBuf,
    },
    /// Copy every row of a SQLite database into an empty PostgreSQL database, keeping ids.
    MigrateData {
        /// The SQLite database to copy (sqlite://path or a path).
        #[arg(long)]
        from: String,
        /// The empty PostgreSQL database to fill (postgres://…); its schema is created first.
        #[arg(long)]
        to: String,
    },
    /// Run a fast mock OpenAI-compatible upstream, for demos, tests and benchmarks.
    MockUpstream(MockArgs),
    /// Exit 0 when the gateway answers GET /healthz (for container health checks).
    Healthcheck {
        /// The gateway's address [default: LLMGATE_LISTEN, with 0.0.0.0 read as 127.0.0.1]
        #[arg(long, env = "LLMGATE_LISTEN", default_value = crate::settings::DEFAULT_LISTEN)]
        listen: String,
        /// Ask GET /readyz instead: ready to serve, its database reachable (a replica behind a
        /// load balancer is taken out while it is not).
        #[arg(long)]
        ready: bool,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Config file to import at start-up.
    #[arg(long, env = "LLMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "LLMGATE_LISTEN")]
    listen: Option<String>,
    /// Also start a local mock provider with model demo-echo and print a demo key.
    #[arg(long)]
    demo: bool,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file; print every problem with its location.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a client key and print its plaintext (shown only once).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated model names this key may use (default: all).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u32>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u32>,
        /// Token budget.
        #[arg(long)]
        budget_tokens: Option<u64>,
        /// Spending budget in USD, at the prices of the routes that serve the key's requests.
        #[arg(long, value_parser = parse_budget_usd)]
        budget_usd: Option<crate::pricing::Nanodollars>,
        /// When the budgets reset: daily, weekly or monthly (default: never).
        #[arg(long, value_parser = parse_window)]
        budget_window: Option<BudgetWindow>,
        /// Lifetime of the key, like 30d or 12h.
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List keys (never their plaintext).
    List,
    /// Revoke a key by name or id.
    Revoke { name_or_id: String },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// End every admin token issued so far, on every server sharing the database (within a
    /// second); everyone logs in again.
    LogoutAll,
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Print the built-in catalog of well-known upstream models (prices in USD per million
    /// tokens, limits, capabilities), or the entry an upstream model NAME matches.
    Catalog {
        /// An upstream model name, like gpt-4o-2024-08-06 or openai/gpt-4o.
        name: Option<String>,
    },
}

#[derive(Debug, Args)]
struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: String,
    /// Delay before each response.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    latency: Duration,
    /// Content chunks in a streamed answer.
    #[arg(long, default_value_t = 8)]
    chunks: usize,
    /// Delay between streamed chunks.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    chunk_delay: Duration,
    /// Answer every request with this HTTP status (to test failures).
    #[arg(long)]
    fail_status: Option<u16>,
    /// The only `api-key` the Azure paths accept (default: any non-empty key).
    #[arg(long)]
    azure_api_key: Option<String>,
    /// A PEM file with the service account's public key, which the Vertex token endpoint
    /// (`/token`) verifies JWT assertions with.
    #[arg(long, env = "LLMGATE_MOCK_VERTEX_PUBLIC_KEY")]
    vertex_public_key: Option<std::path::PathBuf>,
    /// How long the access tokens the Vertex token endpoint issues live.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    token_lifetime: Duration,
    /// The only AWS access key id Bedrock's paths (`/bedrock/model/…`) accept; with
    /// `--aws-secret-access-key`, every request's SigV4 signature is recomputed and checked.
    #[arg(long, env = "LLMGATE_MOCK_AWS_ACCESS_KEY_ID")]
    aws_access_key_id: Option<String>,
    /// The secret of `--aws-access-key-id`.
    #[arg(long, env = "LLMGATE_MOCK_AWS_SECRET_ACCESS_KEY")]
    aws_secret_access_key: Option<String>,
    /// When set, the session token every Bedrock request must carry.
    #[arg(long, env = "LLMGATE_MOCK_AWS_SESSION_TOKEN")]
    aws_session_token: Option<String>,
}

fn parse_budget_usd(text: &str) -> Result<crate::pricing::Nanodollars, String> {
    let usd: f64 = text
        .trim()
        .trim_start_matches('$')
        .parse()
        .map_err(|_| format!("'{text}' is not an amount of USD, like 250 or 12.50"))?;
    crate::pricing::Nanodollars::from_usd(usd)
}

fn parse_window(text: &str) -> Result<BudgetWindow, String> {
    BudgetWindow::parse(text).ok_or_else(|| {
        format!(
            "'{text}' is not a budget window; use {}",
            BudgetWindow::names()
        )
    })
}

/// Output meant for the user of a command (as opposed to logs, which go to stderr). A closed
/// stdout (its reader went away) is not worth crashing a running server over.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

#[expect(
    clippy::print_stderr,
    reason = "reporting a failed command to its user"
)]
fn complain(text: &str) {
    eprintln!("llmgate: {text}");
}

const OK: ExitCode = ExitCode::SUCCESS;

fn usage_error(text: &str) -> ExitCode {
    complain(text);
    ExitCode::from(2)
}

fn failure(text: &str) -> ExitCode {
    complain(text);
    ExitCode::from(1)
}

pub async fn run(cli: Cli) -> ExitCode {
    let database = cli.database;
    match cli.command {
        Command::Serve(args) => serve(args, database).await,
        Command::Migrate => match open_db(database.as_deref()).await {
            Ok(_) => {
                say("migrations applied");
                OK
            }
            Err(code) => code,
        },
        Command::Config(ConfigCommand::Check { file }) => match config_file::load(&file) {
            Ok(config) => {
                say(&format!(
                    "{}: ok ({} providers, {} models, {} keys)",
                    file.display(),
                    config.providers.len(),
                    config.models.len(),
                    config.keys.len()
                ));
                OK
            }
            Err(error) => usage_error(&error.to_string()),
        },
        Command::Keys(command) => keys(command, database).await,
        Command::Admin(AdminCommand::LogoutAll) => logout_all(database).await,
        Command::Models(ModelsCommand::Catalog { name }) => models_catalog(name.as_deref()),
        Command::Backup { file } => backup(&file, database).await,
        Command::MigrateData { from, to } => migrate_data(&from, &to).await,
        Command::MockUpstream(args) => mock_upstream(args).await,
        Command::Healthcheck { listen, ready } => healthcheck(&listen, ready).await,
    }
}

async fn open_db(database: Option<&str>) -> Result<Db, ExitCode> {
    let url = database.unwrap_or(db::DEFAULT_URL);
    Db::open(url).await.map_err(|error| match error {
        db::DbError::InvalidUrl { .. } => usage_error(&error.to_string()),
        other => failure(&other.to_string()),
    })
}

async fn serve(args: ServeArgs, database: Option<String>) -> ExitCode {
    let config: Option<ConfigFile> = match &args.config {
        Some(path) => match config_file::load(path) {
            Ok(config) => Some(config),
            Err(error) => return usage_error(&format!("refusing to start:\n{error}")),
        },
        None => None,
    };
    let mut settings = match Settings::from_env(&|name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return usage_error(&format!("refusing to start:\n{}", lines.join("\n")));
        }
    };
    let server = config.as_ref().map(|c| &c.server);
    settings.listen = match args.listen {
        Some(text) => match parse_listen(&text) {
            Ok(addr) => addr,
            Err(why) => return usage_error(&format!("--listen / LLMGATE_LISTEN: {why}")),
        },
        None => server.and_then(|s| s.listen).unwrap_or(settings.listen),
    };
    settings.database_url = database
        .or_else(|| server.and_then(|s| s.database.clone()))
        .unwrap_or_else(|| db::DEFAULT_URL.to_owned());
    settings.config_path = args.config;
    settings.demo = args.demo;
    if settings.redis_url.is_none() {
        settings.redis_url = server.and_then(|s| s.redis.clone()).map(Secret::new);
    }
    if settings.redis_url.is_none() && settings.database_url.starts_with("postgres") {
        tracing::warn!(
            "no Redis configured (LLMGATE_REDIS_URL): rate limits, budgets, cooldowns and circuits are per process, so each replica on this database enforces them on its own"
        );
    }

    let app = match App::build(settings, config.as_ref()).await {
        Ok(app) => app,
        Err(StartError::Invalid(why)) => return usage_error(&format!("refusing to start: {why}")),
        Err(StartError::Failed(error)) => return failure(&format!("cannot start: {error:#}")),
    };
    let addr = match app.local_addr() {
        Ok(addr) => addr,
        Err(error) => return failure(&error.to_string()),
    };
    tracing::info!(%addr, "llmgate is listening");
    if let Some(password) = app.generated_admin_password() {
        say(&format!(
            "admin password (generated, shown only this once): {}\n  \
             log in with POST http://{addr}/admin/login; set LLMGATE_ADMIN_PASSWORD to choose your own",
            password.expose()
        ));
    }
    if let Some(demo) = app.demo() {
        say(&demo_banner(addr, &demo.key));
    }
    match app.run(shutdown_signal()).await {
        Ok(()) => OK,
        Err(error) => failure(&format!("{error:#}")),
    }
}

fn demo_banner(addr: std::net::SocketAddr, key: &str) -> String {
    format!(
        "\nllmgate demo is ready on http://{addr}\n\
         demo key (shown once): {key}\n\n\
         try it:\n  curl http://{addr}/v1/chat/completions \\\n    \
         -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n    \
         -d '{{\"model\": \"demo-echo\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'\n"
    )
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

async fn keys(command: KeysCommand, database: Option<String>) -> ExitCode {
    let db = match open_db(database.as_deref()).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let code = match command {
        KeysCommand::Create {
            name,
            models,
            rpm,
            tpm,
            budget_tokens,
            budget_usd,
            budget_window,
            expires_in,
        } => {
            let expires_at = match expires_in.map(chrono::Duration::from_std) {
                Some(Ok(d)) => Some(chrono::Utc::now() + d),
                Some(Err(_)) => return usage_error("--expires-in is too long"),
                None => None,
            };
            let new = NewKey {
                name,
                models,
                rpm,
                tpm,
                budget_tokens,
                budget_usd,
                budget_window,
                expires_at,
            };
            match auth::create_key(&db, new).await {
                Ok((row, plaintext)) => {
                    say(&format!(
                        "created key '{}' (id {}). Its plaintext is shown only this once:\n{plaintext}",
                        row.name, row.id
                    ));
                    OK
                }
                Err(error) => key_error(&error),
            }
        }
        KeysCommand::List => match key_usage(&db).await {
            Ok((rows, used)) => {
                say(&key_table(&rows, &used, chrono::Utc::now().timestamp()));
                OK
            }
            Err(error) => failure(&error.to_string()),
        },
        KeysCommand::Revoke { name_or_id } => match auth::revoke_key(&db, &name_or_id).await {
            Ok(row) => {
                say(&format!("revoked key '{}' (id {})", row.name, row.id));
                OK
            }
            Err(error) => key_error(&error),
        },
    };
    db.close().await;
    code
}

async fn logout_all(database: Option<String>) -> ExitCode {
    let db = match open_db(database.as_deref()).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let code = match crate::admin::logout_all(&db).await {
        Ok(_) => {
            say(
                "every earlier admin token is refused (running servers apply it within a second); \
                 log in again with POST /admin/login",
            );
            OK
        }
        Err(error) => failure(&format!("cannot end the admin tokens: {error}")),
    };
    db.close().await;
    code
}

fn key_error(error: &KeyError) -> ExitCode {
    match error {
        KeyError::Invalid { .. } | KeyError::Conflict(_) | KeyError::NotFound(_) => {
            usage_error(&error.to_string())
        }
        KeyError::Db(_) => failure(&error.to_string()),
    }
}

/// Every key, and the tokens each spent in its current period (and the USD, for a key with a
/// spending budget): its budget's window, or the current UTC month for a key without a window
/// (a budget without a window counts from the start). Read from the daily rollups, which the
/// serving process writes every second.
async fn key_usage(db: &Db) -> Result<(Vec<KeyRow>, HashMap<i64, String>), db::DbError> {
    let rows = db.list_keys().await?;
    let today = chrono::Utc::now().date_naive();
    let mut spent_since: HashMap<chrono::NaiveDate, HashMap<i64, u64>> = HashMap::new();
    let mut cost_since: HashMap<chrono::NaiveDate, HashMap<i64, u64>> = HashMap::new();
    let mut used = HashMap::with_capacity(rows.len());
    for row in &rows {
        let window = row.budget_window.as_deref().and_then(BudgetWindow::parse);
        let budgeted = row.budget_tokens.is_some() || row.budget_nanos.is_some();
        let (start, period) = match (window, budgeted) {
            (Some(window), _) => (
                crate::limits::window_start(Some(window), today),
                window.as_str(),
            ),
            (None, true) => (crate::limits::window_start(None, today), "total"),
            (None, false) => (
                crate::limits::window_start(Some(BudgetWindow::Monthly), today),
                "monthly",
            ),
        };
        let spent = read_once(&mut spent_since, start, |day| db.tokens_spent_since(day)).await?;
        let tokens = spent.get(&row.id).copied().unwrap_or(0);
        let mut text = tokens.to_string();
        if row.budget_nanos.is_some() {
            let cost = read_once(&mut cost_since, start, |day| db.cost_spent_since(day)).await?;
            let nanos = cost.get(&row.id).copied().unwrap_or(0);
            text = format!("{text} {}", dollars(nanos));
        }
        used.insert(row.id, format!("{text}/{period}"));
    }
    Ok((rows, used))
}

/// Each key's spend from `start` on, read with `read` the first time a period starts then.
async fn read_once<F, Fut>(
    cache: &mut HashMap<chrono::NaiveDate, HashMap<i64, u64>>,
    start: chrono::NaiveDate,
    read: F,
) -> Result<&HashMap<i64, u64>, db::DbError>
where
    F: FnOnce(chrono::NaiveDate) -> Fut,
    Fut: Future<Output = Result<HashMap<i64, u64>, db::DbError>>,
{
    Ok(match cache.entry(start) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => entry.insert(read(start).await?),
    })
}

/// Nano-dollars as USD with cents, for the key table.
fn dollars(nanos: u64) -> String {
    format!("${:.2}", pricing::Nanodollars(nanos).usd())
}

/// The `keys list` table; `used` holds each key's tokens of its period (see [`key_usage`]).
fn key_table(rows: &[KeyRow], used: &HashMap<i64, String>, now: i64) -> String {
    let mut lines = vec![format!(
        "{:<5} {:<20} {:<13} {:<8} {:<24} {:<8} {:<8} {:<12} {:<18} {}",
        "ID", "NAME", "PREFIX", "STATUS", "MODELS", "RPM", "TPM", "BUDGET", "USED", "EXPIRES"
    )];
    let or_dash = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    for row in rows {
        let status = auth::key_status(row, now);
        let models = row
            .models
            .as_deref()
            .and_then(|json| serde_json::from_str::<Vec<String>>(json).ok())
            .map_or("all".to_owned(), |m| m.join(","));
        let amounts: Vec<String> = [
            row.budget_tokens.map(|tokens| tokens.to_string()),
            row.budget_nanos
                .and_then(|nanos| u64::try_from(nanos).ok())
                .map(dollars),
        ]
        .into_iter()
        .flatten()
        .collect();
        let budget = match (amounts.join(" "), row.budget_window.as_deref()) {
            (amounts, _) if amounts.is_empty() => "-".to_owned(),
            (amounts, Some(window)) => format!("{amounts}/{window}"),
            (amounts, None) => amounts,
        };
        let expires = row
            .expires_at
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or("never".to_owned(), |t| t.to_rfc3339());
        lines.push(format!(
            "{:<5} {:<20} {:<13} {:<8} {:<24} {:<8} {:<8} {:<12} {:<18} {}",
            row.id,
            row.name,
            row.prefix,
            status,
            models,
            or_dash(row.rpm),
            or_dash(row.tpm),
            budget,
            used.get(&row.id).map_or("-", String::as_str),
            expires
        ));
    }
    lines.join("\n")
}

/// `models catalog [NAME]`: reads only the catalog compiled into the binary, never the database.
fn models_catalog(name: Option<&str>) -> ExitCode {
    let catalog = match pricing::catalog() {
        Ok(catalog) => catalog,
        Err(error) => return failure(&error.to_string()),
    };
    match name {
        None => {
            say(&catalog_table(catalog.entries()));
            OK
        }
        Some(name) => match catalog.lookup(name) {
            Some(found) => {
                say(&catalog_entry(name, found));
                OK
            }
            None => failure(&format!(
                "'{name}' is not in the catalog; `llmgate models catalog` lists the models it \
                 knows, and a route can carry its own prices"
            )),
        },
    }
}

fn price_or_dash(price: Option<pricing::Price>) -> String {
    price.map_or("-".to_owned(), |price| price.to_string())
}

/// The `models catalog` table: one line per model, prices in USD per million tokens.
fn catalog_table(entries: &[pricing::ModelEntry]) -> String {
    let row = |cells: [&str; 9]| {
        format!(
            "{:<28} {:<10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8]
        )
    };
    let mut lines = vec![row([
        "MODEL",
        "PROVIDER",
        "INPUT",
        "CACHED",
        "WRITE",
        "OUTPUT",
        "CONTEXT",
        "MAX OUT",
        "CAPABILITIES",
    ])];
    for entry in entries {
        let prices = entry.prices;
        let capabilities = entry.capabilities.names().join(",");
        lines.push(row([
            &entry.name,
            &entry.provider,
            &prices.input.to_string(),
            &price_or_dash(prices.cached_input),
            &price_or_dash(prices.cache_write),
            &prices.output.to_string(),
            &entry.context_window.to_string(),
            &entry.max_output_tokens.to_string(),
            if capabilities.is_empty() {
                "-"
            } else {
                &capabilities
            },
        ]));
    }
    lines.push(format!(
        "\n{} models. Prices are USD per million tokens (WRITE: Anthropic's 5-minute cache write); \
         `llmgate models catalog NAME` shows one with its source.",
        entries.len()
    ));
    lines.join("\n")
}

/// One entry as `models catalog NAME` prints it, saying how NAME reached it.
fn catalog_entry(name: &str, found: pricing::Match<'_>) -> String {
    let entry = found.entry;
    let prices = entry.prices;
    let per_million = |price: Option<pricing::Price>| {
        price.map_or("-".to_owned(), |p| format!("${p} per million tokens"))
    };
    let matched = if found.exact {
        format!("{name} (exact)")
    } else {
        format!(
            "{name} → {} (a dated snapshot or version of it)",
            entry.name
        )
    };
    let mut lines = vec![
        matched,
        format!("  {:<16}{}", "model", entry.name),
        format!("  {:<16}{}", "provider", entry.provider),
        format!("  {:<16}{}", "input", per_million(Some(prices.input))),
        format!(
            "  {:<16}{}",
            "cached input",
            per_million(prices.cached_input)
        ),
        format!("  {:<16}{}", "cache write", per_million(prices.cache_write)),
        format!("  {:<16}{}", "output", per_million(Some(prices.output))),
        format!("  {:<16}{} tokens", "context window", entry.context_window),
        format!("  {:<16}{} tokens", "max output", entry.max_output_tokens),
        format!(
            "  {:<16}{}",
            "capabilities",
            match entry.capabilities.names().join(", ") {
                names if names.is_empty() => "-".to_owned(),
                names => names,
            }
        ),
    ];
    if !entry.aliases.is_empty() {
        lines.push(format!(
            "  {:<16}{}",
            "also known as",
            entry.aliases.join(", ")
        ));
    }
    if let Some(note) = &entry.note {
        lines.push(format!("  {:<16}{note}", "note"));
    }
    lines.push(format!(
        "  {:<16}{} (read {})",
        "source", entry.source, entry.read_on
    ));
    lines.join("\n")
}

async fn backup(file: &std::path::Path, database: Option<String>) -> ExitCode {
    if let Some(url) = database.as_deref().filter(|url| db::is_postgres(url)) {
        return usage_error(&postgres_backup_advice(url, file));
    }
    let db = match open_db(database.as_deref()).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let code = match db.backup_to(file).await {
        Ok(()) => {
            say(&format!(
                "wrote a consistent snapshot to {} (readable by its owner only)",
                file.display()
            ));
            OK
        }
        Err(error @ db::BackupError::Refused(_)) => {
            usage_error(&format!("backup refused: {error}"))
        }
        Err(error @ db::BackupError::Failed(_)) => failure(&format!("backup failed: {error}")),
    };
    db.close().await;
    code
}

async fn migrate_data(from: &str, to: &str) -> ExitCode {
    match db::migrate_data(from, to).await {
        Ok(report) => {
            let total: u64 = report.tables.iter().map(|(_, rows)| rows).sum();
            let tables = report
                .tables
                .iter()
                .map(|(table, rows)| format!("{table} {rows}"))
                .collect::<Vec<_>>()
                .join(", ");
            say(&format!(
                "copied {total} rows from {from} to {} ({tables}); account credentials stay \
                 sealed with the SQLite database's encryption key: give every server on the \
                 new database that key as LLMGATE_ENCRYPTION_KEY (the key file beside the \
                 SQLite database, like llmgate.db.key, holds it)",
                db::redact_password(to)
            ));
            OK
        }
        Err(
            error @ (db::DbError::InvalidUrl { .. }
            | db::DbError::Conflict(_)
            | db::DbError::NotFound(_)),
        ) => usage_error(&format!("migrate-data refused: {error}")),
        Err(error) => failure(&format!("migrate-data failed: {error}")),
    }
}

/// Why `llmgate backup` writes no snapshot of a PostgreSQL database, and what does.
fn postgres_backup_advice(url: &str, file: &std::path::Path) -> String {
    format!(
        "backup refused: {} is a PostgreSQL database, and PostgreSQL backups use its own tools: \
         `pg_dump --format=custom --file={} '<the database URL>'` writes a consistent snapshot \
         while llmgate keeps serving, and `pg_restore --dbname='<an empty database URL>' {}` \
         restores it",
        db::redact_password(url),
        file.display(),
        file.display()
    )
}

#[expect(
    clippy::disallowed_methods,
    reason = "`llmgate healthcheck` asks a running llmgate, not an upstream, once, and exits"
)]
async fn healthcheck(listen: &str, ready: bool) -> ExitCode {
    let mut addr = match parse_listen(listen) {
        Ok(addr) => addr,
        Err(why) => return usage_error(&format!("--listen: {why}")),
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(client) => client,
        Err(error) => return failure(&error.to_string()),
    };
    let path = if ready { "/readyz" } else { "/healthz" };
    match client.get(format!("http://{addr}{path}")).send().await {
        Ok(response) if response.status().is_success() => OK,
        Ok(response) => failure(&format!("unhealthy: {path} answered {}", response.status())),
        Err(error) => failure(&format!("unhealthy: {error}")),
    }
}

async fn mock_upstream(args: MockArgs) -> ExitCode {
    let addr = match parse_listen(&args.listen) {
        Ok(addr) => addr,
        Err(why) => return usage_error(&format!("--listen: {why}")),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => return failure(&format!("cannot listen on {addr}: {error}")),
    };
    let vertex_public_key = match &args.vertex_public_key {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(pem) => Some(pem),
            Err(error) => {
                return usage_error(&format!(
                    "--vertex-public-key: cannot read {}: {error}",
                    path.display()
                ));
            }
        },
        None => None,
    };
    let config = crate::mock::MockConfig {
        latency: args.latency,
        chunks: args.chunks.max(1),
        chunk_delay: args.chunk_delay,
        fail_status: args.fail_status,
        record: false,
        azure_api_key: args.azure_api_key,
        vertex_public_key,
        token_lifetime: args.token_lifetime,
        aws_access_key_id: args.aws_access_key_id,
        aws_secret_access_key: args.aws_secret_access_key,
        aws_session_token: args.aws_session_token,
    };
    tracing::info!(%addr, "mock upstream is listening; base URL http://{addr}/v1");
    match crate::mock::serve(listener, config, shutdown_signal()).await {
        Ok(()) => OK,
        Err(error) => failure(&error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "llmgate",
            "keys",
            "create",
            "--name",
            "ci",
            "--models",
            "a,b",
            "--rpm",
            "5",
            "--expires-in",
            "30d",
        ])
        .unwrap();
        let Command::Keys(KeysCommand::Create {
            models,
            rpm,
            expires_in,
            ..
        }) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(models, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(rpm, Some(5));
        assert_eq!(expires_in, Some(Duration::from_secs(30 * 86400)));
        assert!(Cli::try_parse_from(["llmgate", "keys", "create"]).is_err());
    }

    #[test]
    fn the_catalog_command_parses_with_and_without_a_name() {
        let cli = Cli::try_parse_from(["llmgate", "models", "catalog"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Models(ModelsCommand::Catalog { name: None })
        ));
        let cli = Cli::try_parse_from(["llmgate", "models", "catalog", "gpt-4o"]).unwrap();
        let Command::Models(ModelsCommand::Catalog { name }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(name.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn the_catalog_table_and_entry_show_prices_limits_and_source() {
        let catalog = pricing::catalog().unwrap();
        let table = catalog_table(catalog.entries());
        assert_eq!(table.lines().count(), catalog.entries().len() + 3);
        let gpt_4o = table
            .lines()
            .find(|line| line.starts_with("gpt-4o "))
            .unwrap();
        for cell in [
            "openai",
            "2.50",
            "1.25",
            "10.00",
            "128000",
            "16384",
            "tools,vision,json_schema",
        ] {
            assert!(gpt_4o.contains(cell), "{cell} in {gpt_4o}");
        }
        let found = catalog.lookup("gpt-4o-2024-08-06").unwrap();
        let entry = catalog_entry("gpt-4o-2024-08-06", found);
        assert!(entry.starts_with("gpt-4o-2024-08-06 → gpt-4o "), "{entry}");
        assert!(entry.contains("$2.50 per million tokens"));
        assert!(entry.contains("cache write     -"));
        assert!(entry.contains("(read 2026-12-07)"));
    }

    #[test]
    fn the_key_table_shows_status_and_never_a_hash() {
        let row = KeyRow {
            id: 1,
            name: "ci".into(),
            key_hash: "deadbeefhash".into(),
            prefix: "sk-lg-abcdef".into(),
            models: Some(r#"["m1","m2"]"#.into()),
            rpm: Some(10),
            tpm: None,
            budget_tokens: Some(100),
            budget_nanos: None,
            budget_window: Some("daily".into()),
            expires_at: Some(50),
            revoked_at: None,
            enabled: true,
            source: "api".into(),
            created_at: 0,
            updated_at: 0,
        };
        let used = HashMap::from([(1, "42/daily".to_owned())]);
        let spender = KeyRow {
            id: 2,
            name: "spender".into(),
            budget_tokens: None,
            budget_nanos: Some(250_500_000_000),
            budget_window: None,
            ..row.clone()
        };
        let table = key_table(&[row, spender], &used, 100);
        assert!(table.contains("expired"));
        assert!(table.contains("42/daily"));
        assert!(table.contains("m1,m2"));
        assert!(table.contains("100/daily"));
        assert!(table.contains("$250.50 "), "{table}");
        assert!(!table.contains("deadbeef"));
    }
}

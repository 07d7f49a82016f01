//! The database: SQLite (one writer, a read pool) or PostgreSQL (one pool), migrations, and
//! every SQL query.
//!
//! This is the only module that contains SQL. Callers get plain row structs back. Statements
//! are written once for both backends: placeholders are `$N` (sqlx's SQLite driver binds `$N`
//! to the N-th argument as PostgreSQL does), integers are `BIGINT` on PostgreSQL so every one
//! reads as `i64`, flags are `BOOLEAN` there and `0`/`1` in SQLite (both read as `bool`), and
//! aggregates are cast back to `BIGINT`. [`on_pool!`] runs one statement on whichever pool a
//! database has, type-checked for each backend; the few statements that differ take their text
//! from [`Dialect`].

/// Runs `$body` with `$pool` bound to the backend's own pool (`&SqlitePool` or `&PgPool`):
/// the same code, compiled once per backend.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::Postgres($p) => $body,
        }
    };
}

mod admin;
mod catalog;
mod client_keys;
mod import;
mod migrate_data;
mod stored_responses;
#[cfg(test)]
#[path = "../../tests/support/postgres.rs"]
mod test_postgres;
mod usage;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgPool, SqliteConnection, SqlitePool};

pub use admin::{
    AccountChanges, AccountRecord, KeyChanges, ModelChanges, ModelRecord, NewAccountRow,
    NewModelRow, NewProviderRow, NewRouteRow, OverrideChanges, Page, Paged, ProviderChanges,
    ProviderDeletion, ProviderRecord, RouteChanges, RouteRecord, UpstreamRows,
};
pub use catalog::{
    AccountRow, CatalogRows, ModelRow, ProviderCloud, ProviderRow, RouteOverridesRow, RouteRow,
};
pub use client_keys::{KeyRow, NewKeyRow};
pub use import::{
    ImportAccount, ImportKey, ImportModel, ImportProvider, ImportReport, ImportRoute, ImportRows,
};
pub use migrate_data::{DataMigration, migrate_data};
pub use stored_responses::{ChainLink, StoredResponseRow, StoredWrites};
pub(crate) use usage::write_statement_texts;
pub use usage::{
    AsLogRow, LogPage, LogQuery, LogRow, NewLogRow, RollupRow, UsageCounts, UsageGroup, UsageQuery,
    UsageTotals,
};

/// The default database URL: `llmgate.db` in the working directory.
pub const DEFAULT_URL: &str = "sqlite://llmgate.db";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL '{url}': {source}")]
    InvalidUrl { url: String, source: sqlx::Error },
    #[error("cannot open database '{url}': {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
}

/// A pool of connections to one backend.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[cfg(test)]
impl Pool {
    /// The SQLite pool, for tests of what only SQLite has (PRAGMAs, query plans).
    pub(crate) fn sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Self::Sqlite(pool) => Some(pool),
            Self::Postgres(_) => None,
        }
    }
}

/// The statements whose text differs between the backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A subquery yielding the strings of the JSON array bound at placeholder `$n`.
    pub(crate) fn json_strings(self, n: u8) -> String {
        match self {
            Self::Sqlite => format!("SELECT value FROM json_each(${n})"),
            Self::Postgres => format!("SELECT jsonb_array_elements_text(CAST(${n} AS JSONB))"),
        }
    }

    /// A subquery yielding the integers of the JSON array bound at placeholder `$n`.
    pub(crate) fn json_integers(self, n: u8) -> String {
        match self {
            Self::Sqlite => format!("SELECT value FROM json_each(${n})"),
            Self::Postgres => {
                format!("SELECT CAST(jsonb_array_elements_text(CAST(${n} AS JSONB)) AS BIGINT)")
            }
        }
    }

    /// What ends a `SELECT` that locks the rows it reads until the transaction ends: `FOR
    /// UPDATE` on PostgreSQL; nothing on SQLite, whose single writer already runs write
    /// transactions one at a time.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE",
        }
    }

    /// What follows a text column in `ORDER BY` to sort it by its bytes, as SQLite's default
    /// `BINARY` collation does: PostgreSQL otherwise sorts by the database's locale.
    pub(crate) fn bytewise(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " COLLATE \"C\"",
        }
    }

    /// The statement that makes a just-begun transaction read one snapshot throughout. A
    /// SQLite read transaction does already; PostgreSQL's default, `READ COMMITTED`, takes a
    /// new snapshot for each statement.
    pub(crate) fn snapshot(self) -> Option<&'static str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        }
    }
}

/// Handles to one database. On SQLite: a single writer connection (SQLite allows one writer at
/// a time; queuing in the pool beats busy-waiting in the engine) and a pool of readers. On
/// PostgreSQL, which has no such limit, both are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    writer: Pool,
    reader: Pool,
    /// SQLite's connection options (`None` on PostgreSQL).
    sqlite: Option<SqliteConnectOptions>,
    /// `sqlite::memory:`: no file (sqlx names it `file:sqlx-in-memory-N`, which is none).
    in_memory: bool,
}

/// How many reader connections to keep on SQLite.
const READERS: u32 = 4;
/// Connections to PostgreSQL per process: the request path never waits on them; the usage
/// writer, the admin API and the change watcher share them.
const POSTGRES_CONNECTIONS: u32 = 8;

impl Db {
    /// Opens the database at `url` and applies pending migrations.
    ///
    /// `url` may be `postgres://…` (or `postgresql://…`), or for SQLite (creating the file if
    /// missing) `sqlite://path`, `sqlite:path`, `sqlite::memory:` (or `?mode=memory`) or a
    /// plain file path; SQLite URI filenames (`sqlite://file:…`) are refused. A database file
    /// llmgate creates is its owner's only (0600), and so are its `-wal` and `-shm` files.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        if is_postgres(url) {
            return Self::open_postgres(url).await;
        }
        let options = connect_options(url)?;
        let open_error = |source| DbError::Open {
            url: url.to_owned(),
            source,
        };
        let in_memory = is_memory(url);
        if !in_memory {
            create_private(options.get_filename())
                .await
                .map_err(|error| open_error(sqlx::Error::Io(error)))?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        let reader = if in_memory {
            // Every connection to `:memory:` is a database of its own: read through the writer.
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .min_connections(1)
                .connect_with(options.clone().read_only(true))
                .await
                .map_err(open_error)?
        };
        Ok(Self {
            writer: Pool::Sqlite(writer),
            reader: Pool::Sqlite(reader),
            sqlite: Some(options),
            in_memory,
        })
    }

    async fn open_postgres(url: &str) -> Result<Self, DbError> {
        let shown = redact_password(url);
        let options = PgConnectOptions::from_str(url).map_err(|source| DbError::InvalidUrl {
            url: shown.clone(),
            source,
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| DbError::Open { url: shown, source })?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            writer: Pool::Postgres(pool.clone()),
            reader: Pool::Postgres(pool),
            sqlite: None,
            in_memory: false,
        })
    }

    /// Which SQL this database speaks.
    pub(crate) fn dialect(&self) -> Dialect {
        match self.writer {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.dialect() == Dialect::Postgres
    }

    /// The file behind this database, if it is one.
    pub fn path(&self) -> Option<PathBuf> {
        let options = self.sqlite.as_ref()?;
        let filename = options.get_filename();
        let name = filename.to_string_lossy();
        (!self.in_memory && !name.is_empty() && !name.contains(":memory:"))
            .then(|| filename.to_path_buf())
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        on_pool!(&self.reader, |pool| sqlx::query_scalar::<_, i64>(
            "SELECT CAST(1 AS BIGINT)"
        )
        .fetch_one(pool)
        .await
        .is_ok())
    }

    /// A watcher of configuration changes. On SQLite it keeps a dedicated connection, since
    /// `PRAGMA data_version` is per connection; on PostgreSQL it listens for the triggers'
    /// notices.
    pub async fn change_watcher(&self) -> Result<ChangeWatcher, DbError> {
        let listening = match &self.writer {
            Pool::Sqlite(writer) => Listening::DataVersion {
                connection: match (&self.sqlite, self.path()) {
                    (Some(options), Some(_)) => Some(
                        SqliteConnection::connect_with(&options.clone().read_only(true)).await?,
                    ),
                    _ => None,
                },
                writer: writer.clone(),
                data_version: None,
            },
            Pool::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(CHANGES_CHANNEL).await?;
                Listening::Notices {
                    listener,
                    pool: pool.clone(),
                    seen: None,
                }
            }
        };
        Ok(ChangeWatcher { listening })
    }

    /// Closes every connection, checkpointing SQLite's WAL.
    pub async fn close(&self) {
        on_pool!(&self.reader, |pool| pool.close().await);
        on_pool!(&self.writer, |pool| pool.close().await);
    }

    pub async fn get_setting(&self, name: &str) -> Result<Option<String>, DbError> {
        Ok(on_pool!(&self.writer, |pool| sqlx::query_scalar(
            "SELECT value FROM settings WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn put_setting(&self, name: &str, value: &str) -> Result<(), DbError> {
        on_pool!(&self.writer, |pool| {
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(value)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Writes a consistent snapshot of the database to `file` (`VACUUM INTO`), while other
    /// connections keep reading and writing. The snapshot is its owner's only (0600): llmgate
    /// creates the file itself, empty, before SQLite fills it, which also refuses a file that
    /// exists or a symbolic link (dangling or not) at `file` rather than writing through it.
    pub async fn backup_to(&self, file: &std::path::Path) -> Result<(), BackupError> {
        let Pool::Sqlite(reader) = &self.reader else {
            return Err(BackupError::Refused(
                "the database is PostgreSQL: back it up with pg_dump (for example `pg_dump \
                 --format=custom --file=llmgate.dump <url>`), which takes a consistent \
                 snapshot while llmgate keeps serving"
                    .into(),
            ));
        };
        if self.path().is_none() {
            return Err(BackupError::Refused(
                "the database is in memory: it has nothing to back up; give the --database \
                 of a file"
                    .into(),
            ));
        }
        let shown = file.display();
        let target = file.to_str().ok_or_else(|| {
            BackupError::Refused(format!("{shown}: the snapshot's path must be valid UTF-8"))
        })?;
        // Connections open with URI filenames allowed: SQLite would read `file:…?mode=memory`
        // as an in-memory database and write nothing.
        if target.starts_with("file:") {
            return Err(BackupError::Refused(format!(
                "{shown} would be read by SQLite as a URI, not a file name; give a plain path \
                 (like ./{shown})"
            )));
        }
        match tokio::fs::symlink_metadata(file).await {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(BackupError::Refused(format!(
                    "{shown} is a symbolic link; refusing to write through it: choose a new file"
                )));
            }
            Ok(_) => {
                return Err(BackupError::Refused(format!(
                    "{shown} already exists; choose a new file"
                )));
            }
            Err(_) => {}
        }
        let mut options = tokio::fs::OpenOptions::new();
        // `create_new` is O_CREAT | O_EXCL, which never follows a symbolic link: a link made
        // after the check above is refused here.
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        if let Err(error) = options.open(file).await {
            return Err(if error.kind() == std::io::ErrorKind::AlreadyExists {
                BackupError::Refused(format!("{shown} already exists; choose a new file"))
            } else {
                BackupError::Failed(format!("cannot create {shown}: {error}"))
            });
        }
        let written = sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(reader)
            .await;
        if let Err(error) = written {
            // Leave no empty or partial snapshot that could be mistaken for one.
            let _ = tokio::fs::remove_file(file).await;
            return Err(BackupError::Failed(error.to_string()));
        }
        Ok(())
    }

    /// SQLite's `PRAGMA integrity_check`: `"ok"`, or the problems it found. PostgreSQL
    /// checksums its own pages; there it answers whether the server can be read at all.
    pub async fn integrity_check(&self) -> Result<String, DbError> {
        match &self.writer {
            Pool::Sqlite(pool) => {
                let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_all(pool)
                    .await?;
                Ok(rows.join("\n"))
            }
            Pool::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
                Ok("ok".to_owned())
            }
        }
    }

    /// Whether any account credential is stored (and so an encryption key must already exist).
    pub async fn has_sealed_secrets(&self) -> Result<bool, DbError> {
        Ok(on_pool!(&self.writer, |pool| sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM accounts)"
        )
        .fetch_one(pool)
        .await?))
    }
}

/// Why `llmgate backup` wrote no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The operator's to fix: an in-memory database, a target that exists, is a link, or
    /// would be read as a URI.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

/// Creates the database file, empty and readable by its owner only, unless it exists. SQLite
/// would create it with the process's umask (0644, usually), and gives the `-wal` and `-shm`
/// files the mode of the database file: creating it first with 0600 makes all three private,
/// before any data is written, and without changing the umask, which is shared by every thread
/// of the process.
async fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    match options.open(path).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            warn_if_readable_by_others(path).await;
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Databases created by earlier versions were readable by every user of the machine; say so
/// rather than change the mode of a file the operator may have set on purpose.
async fn warn_if_readable_by_others(path: &std::path::Path) {
    #[cfg(unix)]
    if let Ok(meta) = tokio::fs::metadata(path).await {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the database file is readable by other users; `chmod 600` it (and its -wal \
                 and -shm files) unless they need it"
            );
        }
    }
}

/// The versions of the configuration domains, as counted by the database's triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeVersions {
    pub catalog: i64,
    pub keys: i64,
    /// The generation of admin tokens (moved on by a password change or a logout of all).
    pub admin_tokens: i64,
}

/// The channel PostgreSQL's triggers notify on, with the domain whose counter moved.
const CHANGES_CHANNEL: &str = "llmgate_changes";

/// Reads the configuration domains' counters, as the triggers keep them, through `$executor`
/// (a pool or a connection of either backend).
macro_rules! read_versions {
    ($executor:expr) => {
        sqlx::query_as::<_, (String, i64)>(VERSIONS_SQL)
            .fetch_all($executor)
            .await
            .map(|rows| ChangeVersions::from_rows(rows))
            .map_err(DbError::from)
    };
}

/// Detects configuration changes made by this or any other process, cheaply enough to poll
/// several times a second: on SQLite `PRAGMA data_version` first, the change counters only when
/// it moved; on PostgreSQL the counters on every poll (three rows), with the triggers' notices
/// to wake the caller at once ([`ChangeWatcher::notice`]).
#[derive(Debug)]
pub struct ChangeWatcher {
    listening: Listening,
}

#[derive(Debug)]
enum Listening {
    DataVersion {
        /// `None` for an in-memory database, which has a single connection: the writer's.
        connection: Option<SqliteConnection>,
        writer: SqlitePool,
        data_version: Option<i64>,
    },
    Notices {
        listener: PgListener,
        pool: PgPool,
        seen: Option<ChangeVersions>,
    },
}

impl ChangeWatcher {
    /// The current versions, or `None` when nothing was committed since the last call.
    pub async fn poll(&mut self) -> Result<Option<ChangeVersions>, DbError> {
        match &mut self.listening {
            Listening::DataVersion {
                connection: None,
                writer,
                ..
            } => read_versions!(&*writer).map(Some),
            Listening::DataVersion {
                connection: Some(connection),
                data_version: seen,
                ..
            } => {
                // `fetch_all` runs each statement to completion, so no read transaction stays
                // open between polls (an open one would pin an old snapshot and hide every
                // later change).
                let data_version: Vec<i64> = sqlx::query_scalar("PRAGMA data_version")
                    .fetch_all(&mut *connection)
                    .await?;
                let data_version = data_version.first().copied();
                if data_version.is_some() && *seen == data_version {
                    return Ok(None);
                }
                let versions = read_versions!(&mut *connection)?;
                // Remember the data version only once the versions were read: a failed read
                // must be retried on the next poll rather than lost.
                *seen = data_version;
                Ok(Some(versions))
            }
            Listening::Notices {
                listener,
                pool,
                seen,
            } => {
                // Notices only wake the caller early; the counters decide.
                while listener.next_buffered().is_some() {}
                let versions = read_versions!(&*pool)?;
                if *seen == Some(versions) {
                    return Ok(None);
                }
                *seen = Some(versions);
                Ok(Some(versions))
            }
        }
    }

    /// Resolves when another process may have changed the configuration: a PostgreSQL notice
    /// arrived. Never resolves on SQLite, whose watcher finds changes by polling alone.
    /// Cancel-safe: a notice received while the future is dropped stays buffered.
    pub async fn notice(&mut self) {
        match &mut self.listening {
            Listening::Notices { listener, .. } => {
                // An error is a lost connection, which the listener re-establishes on the next
                // call; polling covers the gap. Pause so a dead server is not retried in a loop.
                if listener.try_recv().await.ok().flatten().is_none() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Listening::DataVersion { .. } => std::future::pending().await,
        }
    }
}

const VERSIONS_SQL: &str = "SELECT domain, version FROM change_versions";

impl ChangeVersions {
    fn from_rows(rows: Vec<(String, i64)>) -> Self {
        let mut versions = Self::default();
        for (domain, version) in rows {
            match domain.as_str() {
                "catalog" => versions.catalog = version,
                "keys" => versions.keys = version,
                "admin_tokens" => versions.admin_tokens = version,
                _ => {}
            }
        }
        versions
    }
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
}

/// `url` with its password, if any, replaced by `***`, to show in messages.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only a URL that cannot have a password refuses one; this one has one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // A URL too broken to parse may still carry a password: hide whatever follows the
        // user name in its authority.
        Err(_) => {
            let Some((scheme, rest)) = url.split_once("://") else {
                return url.to_owned();
            };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((user_info, host)) if user_info.contains(':') => {
                    let user = user_info
                        .split_once(':')
                        .map_or(user_info, |(user, _)| user);
                    format!("{scheme}://{user}:***@{host}{path}")
                }
                _ => url.to_owned(),
            }
        }
    }
}

/// Whether `url` names an in-memory database: `sqlite::memory:`, or `mode=memory` in its query.
fn is_memory(url: &str) -> bool {
    url.contains(":memory:")
        || url.split_once('?').is_some_and(|(_, query)| {
            url::form_urlencoded::parse(query.as_bytes())
                .any(|(name, value)| name == "mode" && value == "memory")
        })
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions, DbError> {
    let normalized = if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    };
    // sqlx opens connections with URI filenames allowed, so SQLite would read `file:x.db?…`
    // by its own rules (another file, or memory) while llmgate put the key file beside a
    // file named `file:x.db`.
    let location = normalized
        .strip_prefix("sqlite://")
        .or_else(|| normalized.strip_prefix("sqlite:"))
        .unwrap_or(&normalized);
    if location.starts_with("file:") {
        return Err(DbError::InvalidUrl {
            url: url.to_owned(),
            source: sqlx::Error::Configuration(
                "SQLite URI filenames (file:…) are not supported; give a path, like \
                 sqlite://llmgate.db"
                    .into(),
            ),
        });
    }
    let options =
        SqliteConnectOptions::from_str(&normalized).map_err(|source| DbError::InvalidUrl {
            url: url.to_owned(),
            source,
        })?;
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true))
}

/// The current time as Unix seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub async fn temp_db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::open(&url).await.unwrap();
        (dir, db)
    }

    /// A fresh database on the test process's PostgreSQL cluster, opened as llmgate opens one.
    pub async fn postgres_db() -> Db {
        Db::open(&super::test_postgres::fresh_database().await)
            .await
            .unwrap()
    }

    /// One database of each backend, for the tests that must hold on both: SQLite (in the
    /// returned directory) first, then PostgreSQL.
    pub async fn both_dbs() -> (tempfile::TempDir, [Db; 2]) {
        let (dir, sqlite) = temp_db().await;
        (dir, [sqlite, postgres_db().await])
    }

    /// Inserts a client key named `name` with no limits; its id.
    pub async fn insert_test_key(db: &Db, name: &str) -> i64 {
        db.insert_key(&NewKeyRow {
            name: name.into(),
            key_hash: format!("hash-{name}"),
            prefix: "sk-".into(),
            models: None,
            rpm: None,
            tpm: None,
            budget_tokens: None,
            budget_nanos: None,
            budget_window: None,
            expires_at: None,
            source: "api",
        })
        .await
        .unwrap()
        .id
    }

    #[tokio::test]
    async fn an_in_memory_database_has_no_file() {
        // sqlx names it `file:sqlx-in-memory-N`: a key file beside that would land in the
        // working directory.
        let db = Db::open("sqlite::memory:").await.unwrap();
        assert_eq!(db.path(), None);
    }

    #[tokio::test]
    async fn memory_is_memory_however_it_is_asked_for_and_uri_filenames_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("named.db");
        let db = Db::open(&format!("sqlite://{}?mode=memory", named.display()))
            .await
            .unwrap();
        assert_eq!(db.path(), None);
        assert!(!named.exists(), "an in-memory database leaves no file");
        for url in [
            "sqlite://file:x.db",
            "sqlite:file:x.db?mode=memory",
            "file:x.db",
        ] {
            assert!(
                matches!(Db::open(url).await, Err(DbError::InvalidUrl { .. })),
                "{url}"
            );
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_created_database_and_its_snapshots_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let (dir, db) = temp_db().await;
        db.put_setting("x", "1").await.unwrap();
        for name in ["test.db", "test.db-wal", "test.db-shm"] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
        let snapshot = dir.path().join("snapshot.db");
        db.backup_to(&snapshot).await.unwrap();
        assert_eq!(mode(&snapshot), 0o600);
        assert!(matches!(
            db.backup_to(&snapshot).await,
            Err(BackupError::Refused(m)) if m.contains("already exists")
        ));
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(dir.path().join("nowhere.db"), &link).unwrap();
        assert!(matches!(
            db.backup_to(&link).await,
            Err(BackupError::Refused(m)) if m.contains("symbolic link")
        ));
        assert!(!dir.path().join("nowhere.db").exists());
        let memory = Db::open("sqlite::memory:").await.unwrap();
        assert!(matches!(
            memory.backup_to(&dir.path().join("m.db")).await,
            Err(BackupError::Refused(m)) if m.contains("in memory")
        ));
    }

    #[tokio::test]
    async fn opening_creates_the_file_in_wal_mode_and_migrates() {
        let (dir, db) = temp_db().await;
        assert!(dir.path().join("test.db").exists());
        assert_eq!(db.path(), Some(dir.path().join("test.db")));
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(db.writer.sqlite().unwrap())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(db.writer.sqlite().unwrap())
            .await
            .unwrap();
        assert_eq!(fk, 1);
        assert!(db.ping().await);
        // Opening again applies nothing new and succeeds.
        drop(db);
        Db::open(&format!("{}", dir.path().join("test.db").display()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_watcher_sees_commits_of_other_connections_only_when_versions_move() {
        let (_dir, db) = temp_db().await;
        let mut watcher = db.change_watcher().await.unwrap();
        let first = watcher.poll().await.unwrap().unwrap();
        assert_eq!(watcher.poll().await.unwrap(), None);
        db.put_setting("x", "1").await.unwrap();
        // A commit that touches no configuration moves data_version but not the versions.
        assert_eq!(watcher.poll().await.unwrap(), Some(first));
        sqlx::query("INSERT INTO providers (name, kind, base_url, created_at, updated_at) VALUES ('p', 'openai', 'http://x', 0, 0)")
            .execute(db.writer.sqlite().unwrap())
            .await
            .unwrap();
        let next = watcher.poll().await.unwrap().unwrap();
        assert_eq!(next.catalog, first.catalog + 1);
        assert_eq!(next.keys, first.keys);
    }

    #[tokio::test]
    async fn migration_3_shortens_the_key_prefixes_stored_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let pool = SqlitePool::connect_with(connect_options(&url).unwrap())
            .await
            .unwrap();
        let mut before = sqlx::migrate!("./migrations");
        before.migrations = before
            .migrations
            .iter()
            .filter(|migration| migration.version < 3)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        before.run(&pool).await.unwrap();
        // Keys as they were listed before: their first twelve characters.
        let keys = [
            "sk-lg-AbCdEfGhIjKlMnOp",
            "sk-team-0123456789abcdefghijklmn",
            "0123456789abcdef0123456789abcdef",
            "SK-LG-0123456789abcdef0123456789",
            "ééééééééééééééééééééééééééééééééé",
            "sk-lg-abc",
        ];
        for (id, key) in keys.iter().enumerate() {
            let old_prefix: String = key.chars().take(12).collect();
            sqlx::query(
                "INSERT INTO client_keys (id, name, key_hash, prefix, created_at, updated_at)
                 VALUES (?, ?, ?, ?, 0, 0)",
            )
            .bind(id as i64)
            .bind(format!("k{id}"))
            .bind(format!("h{id}"))
            .bind(old_prefix)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let db = Db::open(&url).await.unwrap();
        for (id, key) in keys.iter().enumerate() {
            let row = db.key_by_id(id as i64).await.unwrap().unwrap();
            assert_eq!(row.prefix, crate::auth::display_prefix(key), "{key}");
        }
        assert_eq!(db.admin_token_generation().await.unwrap(), 0);
    }

    /// A fresh database on the test process's PostgreSQL cluster, with PostgreSQL's migrations.
    async fn postgres_pool() -> sqlx::PgPool {
        let url = super::test_postgres::fresh_database().await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .unwrap();
        pool
    }

    /// One column as both backends can spell it: name, type (`integer`, `text` or `bytes`)
    /// and whether it is NOT NULL. PostgreSQL's BOOLEAN flags are SQLite's INTEGER 0 and 1.
    type Column = (String, String, bool);

    fn neutral_type(declared: &str) -> String {
        match declared.to_ascii_lowercase().as_str() {
            "integer" | "bigint" | "boolean" => "integer",
            "text" => "text",
            "blob" | "bytea" => "bytes",
            other => panic!("a column type the schema test does not know: {other}"),
        }
        .to_owned()
    }

    #[test]
    fn both_migration_sets_have_the_same_versions_and_names() {
        let list = |migrator: sqlx::migrate::Migrator| {
            migrator
                .migrations
                .iter()
                .map(|migration| (migration.version, migration.description.to_string()))
                .collect::<Vec<_>>()
        };
        let sqlite = list(sqlx::migrate!("./migrations"));
        assert_eq!(
            sqlite.len(),
            7,
            "a new migration needs its PostgreSQL copy too"
        );
        assert_eq!(sqlite, list(sqlx::migrate!("./migrations/postgres")));
    }

    #[tokio::test]
    async fn postgres_schema_has_the_tables_columns_and_indexes_of_sqlite() {
        use std::collections::BTreeMap;
        let (_dir, db) = temp_db().await;
        let mut sqlite: BTreeMap<String, Vec<Column>> = BTreeMap::new();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             AND name <> '_sqlx_migrations'",
        )
        .fetch_all(db.writer.sqlite().unwrap())
        .await
        .unwrap();
        for table in tables {
            let columns: Vec<(String, String, bool, i64)> = sqlx::query_as(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid",
            )
            .bind(&table)
            .fetch_all(db.writer.sqlite().unwrap())
            .await
            .unwrap();
            // SQLite reports a primary key column as nullable unless declared NOT NULL;
            // PostgreSQL's primary keys are NOT NULL, as SQLite's behave.
            let columns = columns
                .into_iter()
                .map(|(name, kind, not_null, pk)| (name, neutral_type(&kind), not_null || pk > 0))
                .collect();
            sqlite.insert(table, columns);
        }
        let sqlite_indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .fetch_all(db.writer.sqlite().unwrap())
        .await
        .unwrap();

        let pool = postgres_pool().await;
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'
             ORDER BY table_name, ordinal_position",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut postgres: BTreeMap<String, Vec<Column>> = BTreeMap::new();
        for (table, name, kind, nullable) in rows {
            postgres
                .entry(table)
                .or_default()
                .push((name, neutral_type(&kind), nullable == "NO"));
        }
        // Indexes made by UNIQUE and PRIMARY KEY constraints are SQLite's automatic ones.
        let postgres_indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'
             AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(postgres, sqlite);
        assert_eq!(postgres_indexes, sqlite_indexes);
        pool.close().await;
    }

    #[tokio::test]
    async fn postgres_triggers_count_changes_and_drop_a_deleted_keys_responses_as_sqlite_does() {
        let pool = postgres_pool().await;
        let versions = || async {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT domain, version FROM change_versions ORDER BY domain")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            rows.into_iter()
                .map(|(domain, version)| format!("{domain}={version}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(versions().await, "admin_tokens=0 catalog=0 keys=0");
        for statement in [
            "INSERT INTO providers (name, kind, base_url, created_at, updated_at)
             VALUES ('p', 'openai', 'http://x', 0, 0)",
            "UPDATE providers SET base_url = 'http://y'",
            "INSERT INTO client_keys (id, name, key_hash, prefix, created_at, updated_at)
             VALUES (7, 'k', 'h', 'sk-', 0, 0)",
            // Usage writes move no counter.
            "INSERT INTO usage_daily (day, key_id, model) VALUES ('2026-01-01', 7, 'm')",
            "INSERT INTO stored_responses (id, key_id, created_at, response, turn)
             VALUES ('resp_a', 7, 0, '\\x7b7d', '\\x7b7d'), ('resp_b', 8, 0, '', '')",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        assert_eq!(versions().await, "admin_tokens=0 catalog=2 keys=1");
        sqlx::query("DELETE FROM client_keys WHERE id = 7")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(versions().await, "admin_tokens=0 catalog=2 keys=2");
        let left: Vec<String> = sqlx::query_scalar("SELECT id FROM stored_responses")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(left, ["resp_b"]);
        pool.close().await;
    }

    #[tokio::test]
    async fn postgres_announces_each_committed_change_of_a_counter() {
        let pool = postgres_pool().await;
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
            .await
            .unwrap();
        listener.listen("llmgate_changes").await.unwrap();
        for statement in [
            "INSERT INTO client_keys (name, key_hash, prefix, created_at, updated_at)
             VALUES ('k', 'h', 'sk-', 0, 0)",
            "UPDATE change_versions SET version = version + 1 WHERE domain = 'admin_tokens'",
            // Usage writes announce nothing.
            "INSERT INTO usage_daily (day, key_id, model) VALUES ('2026-01-01', 1, 'm')",
            "INSERT INTO models (name, created_at, updated_at) VALUES ('m', 0, 0)",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        let mut heard = Vec::new();
        for _ in 0..3 {
            let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
                .await
                .unwrap()
                .unwrap();
            heard.push(notification.payload().to_owned());
        }
        assert_eq!(heard, ["keys", "admin_tokens", "catalog"]);
        // The listener holds one of the pool's connections; closing waits for it.
        drop(listener);
        pool.close().await;
    }

    #[tokio::test]
    async fn a_bad_postgres_url_is_refused_without_showing_its_password() {
        let error = Db::open("postgres://u:secret@db:port/llmgate")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, DbError::InvalidUrl { url, .. } if !url.contains("secret")),
            "{error}"
        );
        assert!(!is_postgres("sqlite://postgres.db"));
        assert!(!is_postgres("postgres.db"));
    }

    #[tokio::test]
    async fn settings_round_trip() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            assert_eq!(db.get_setting("a").await.unwrap(), None);
            db.put_setting("a", "1").await.unwrap();
            db.put_setting("a", "2").await.unwrap();
            assert_eq!(db.get_setting("a").await.unwrap().as_deref(), Some("2"));
            assert!(db.ping().await);
            assert!(!db.has_sealed_secrets().await.unwrap());
        }
    }

    #[tokio::test]
    async fn a_postgres_database_is_opened_migrated_and_watched() {
        let db = postgres_db().await;
        assert!(db.is_postgres());
        assert_eq!(db.path(), None);
        assert_eq!(db.integrity_check().await.unwrap(), "ok");
        assert!(matches!(
            db.backup_to(std::path::Path::new("x.db")).await,
            Err(BackupError::Refused(m)) if m.contains("pg_dump")
        ));
        let mut watcher = db.change_watcher().await.unwrap();
        let first = watcher.poll().await.unwrap().unwrap();
        assert_eq!(watcher.poll().await.unwrap(), None);
        insert_test_key(&db, "k").await;
        // The trigger's notice wakes the watcher; the counters say what moved.
        tokio::time::timeout(Duration::from_secs(5), watcher.notice())
            .await
            .unwrap();
        let next = watcher.poll().await.unwrap().unwrap();
        assert_eq!(next.keys, first.keys + 1);
        assert_eq!(next.catalog, first.catalog);
        // The listener holds one of the pool's connections, and closing a pool waits for its
        // connections to come back: the watcher goes first, as `serve` stops its tasks first.
        drop(watcher);
        db.close().await;
    }
}

//! The database: SQLite pools (one writer, a read pool), migrations, and every SQL query.
//!
//! This is the only module that contains SQL. Callers get plain row structs back.

mod admin;
mod catalog;
mod import;
mod keys;
mod usage;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

pub use admin::{
    AccountChanges, AccountRecord, KeyChanges, ModelChanges, ModelRecord, NewAccountRow,
    NewModelRow, NewProviderRow, NewRouteRow, Page, Paged, ProviderChanges, ProviderDeletion,
    ProviderRecord, RouteChanges, RouteRecord, UpstreamRows,
};
pub use catalog::{AccountRow, CatalogRows, ModelRow, ProviderRow, RouteRow};
pub use import::ImportReport;
pub use keys::{KeyRow, NewKeyRow};
pub use usage::{
    LogPage, LogQuery, LogRow, RollupRow, UsageCounts, UsageGroup, UsageQuery, UsageTotals,
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

/// Handles to one SQLite database: a single writer connection (SQLite allows one writer at a
/// time; queuing in the pool beats busy-waiting in the engine) and a pool of readers.
#[derive(Clone, Debug)]
pub struct Db {
    writer: SqlitePool,
    reader: SqlitePool,
    options: SqliteConnectOptions,
    /// `sqlite::memory:`: no file (sqlx names it `file:sqlx-in-memory-N`, which is none).
    in_memory: bool,
}

/// How many reader connections to keep.
const READERS: u32 = 4;

impl Db {
    /// Opens (creating if missing) the database at `url` and applies pending migrations.
    ///
    /// `url` may be `sqlite://path`, `sqlite:path`, `sqlite::memory:` or a plain file path.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        let options = connect_options(url)?;
        let open_error = |source| DbError::Open {
            url: url.to_owned(),
            source,
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        let in_memory = is_memory(url);
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
            writer,
            reader,
            options,
            in_memory,
        })
    }

    /// The file behind this database, if it is one.
    pub fn path(&self) -> Option<PathBuf> {
        let filename = self.options.get_filename();
        let name = filename.to_string_lossy();
        (!self.in_memory && !name.is_empty() && !name.contains(":memory:"))
            .then(|| filename.to_path_buf())
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.reader)
            .await
            .is_ok()
    }

    /// A dedicated connection for [`ChangeWatcher`]. `PRAGMA data_version` is per connection, so
    /// the watcher must keep using the same one.
    pub async fn change_watcher(&self) -> Result<ChangeWatcher, DbError> {
        let connection = if self.path().is_some() {
            Some(SqliteConnection::connect_with(&self.options.clone().read_only(true)).await?)
        } else {
            None
        };
        Ok(ChangeWatcher {
            connection,
            writer: self.writer.clone(),
            data_version: None,
        })
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    pub async fn get_setting(&self, name: &str) -> Result<Option<String>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.writer)
                .await?,
        )
    }

    pub async fn put_setting(&self, name: &str, value: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Writes a consistent snapshot of the database to `file` (`VACUUM INTO`), while other
    /// connections keep reading and writing.
    pub async fn backup_to(&self, file: &std::path::Path) -> Result<(), DbError> {
        let target = file.to_string_lossy().into_owned();
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.reader)
            .await?;
        Ok(())
    }

    /// SQLite's `PRAGMA integrity_check`: `"ok"`, or the problems it found.
    pub async fn integrity_check(&self) -> Result<String, DbError> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.writer)
            .await?;
        Ok(rows.join("\n"))
    }

    /// Whether any account credential is stored (and so an encryption key must already exist).
    pub async fn has_sealed_secrets(&self) -> Result<bool, DbError> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts)")
            .fetch_one(&self.writer)
            .await?)
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

/// Detects configuration changes made by this or any other process, cheaply enough to poll
/// several times a second: `PRAGMA data_version` first, the change counters only when it moved.
#[derive(Debug)]
pub struct ChangeWatcher {
    connection: Option<SqliteConnection>,
    writer: SqlitePool,
    data_version: Option<i64>,
}

impl ChangeWatcher {
    /// The current versions, or `None` when nothing was committed since the last call.
    pub async fn poll(&mut self) -> Result<Option<ChangeVersions>, DbError> {
        let Some(connection) = self.connection.as_mut() else {
            // An in-memory database has a single connection; ask it directly.
            return read_versions(&self.writer).await.map(Some);
        };
        // `fetch_all` runs each statement to completion, so no read transaction stays open
        // between polls (an open one would pin an old snapshot and hide every later change).
        let data_version: Vec<i64> = sqlx::query_scalar("PRAGMA data_version")
            .fetch_all(&mut *connection)
            .await?;
        let data_version = data_version.first().copied();
        if data_version.is_some() && self.data_version == data_version {
            return Ok(None);
        }
        let versions = read_versions(&mut *connection).await?;
        // Remember the data version only once the versions were read: a failed read must be
        // retried on the next poll rather than lost.
        self.data_version = data_version;
        Ok(Some(versions))
    }
}

async fn read_versions<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
) -> Result<ChangeVersions, DbError> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT domain, version FROM change_versions")
        .fetch_all(executor)
        .await?;
    let mut versions = ChangeVersions::default();
    for (domain, version) in rows {
        match domain.as_str() {
            "catalog" => versions.catalog = version,
            "keys" => versions.keys = version,
            "admin_tokens" => versions.admin_tokens = version,
            _ => {}
        }
    }
    Ok(versions)
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:")
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions, DbError> {
    let normalized = if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    };
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

    #[tokio::test]
    async fn an_in_memory_database_has_no_file() {
        // sqlx names it `file:sqlx-in-memory-N`: a key file beside that would land in the
        // working directory.
        let db = Db::open("sqlite::memory:").await.unwrap();
        assert_eq!(db.path(), None);
    }

    #[tokio::test]
    async fn opening_creates_the_file_in_wal_mode_and_migrates() {
        let (dir, db) = temp_db().await;
        assert!(dir.path().join("test.db").exists());
        assert_eq!(db.path(), Some(dir.path().join("test.db")));
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&db.writer)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&db.writer)
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
            .execute(&db.writer)
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

    #[tokio::test]
    async fn settings_round_trip() {
        let (_dir, db) = temp_db().await;
        assert_eq!(db.get_setting("a").await.unwrap(), None);
        db.put_setting("a", "1").await.unwrap();
        db.put_setting("a", "2").await.unwrap();
        assert_eq!(db.get_setting("a").await.unwrap().as_deref(), Some("2"));
    }
}

//! `llmgate migrate-data`: copies every row of a SQLite database into an empty PostgreSQL
//! database with the same schema (`migrations/postgres`), keeping ids, then moves each identity
//! sequence past the ids copied, all in one PostgreSQL transaction.
//!
//! The copy is driven by the schema rather than by a list of columns: each table's columns and
//! their PostgreSQL types are read from `information_schema`, so a new migration needs only its
//! table in [`TABLES`] (a test fails until it is there).

use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder, Row, SqlitePool};

use super::{Db, DbError, Pool, is_postgres, redact_password};

/// Every table, parents before the tables whose foreign keys name them. `change_versions` comes
/// last: copying rows fires the triggers that count changes, and SQLite's counters are then
/// written over what they counted.
const TABLES: &[&str] = &[
    "providers",
    "accounts",
    "models",
    "routes",
    "client_keys",
    "settings",
    "usage_daily",
    "request_log",
    "stored_responses",
    "change_versions",
];

/// Rows per INSERT: well under PostgreSQL's 65,535 bind parameters for the widest table.
const BATCH_ROWS: usize = 500;

/// What `migrate-data` copied: rows per table, in copy order.
#[derive(Debug, Default)]
pub struct DataMigration {
    pub tables: Vec<(&'static str, u64)>,
}

/// One value on its way from SQLite to PostgreSQL, typed by the PostgreSQL column.
enum Value {
    Integer(Option<i64>),
    Flag(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// A PostgreSQL column's type as the copy reads it from SQLite.
#[derive(Clone, Copy)]
enum Kind {
    Integer,
    Flag,
    Text,
    Bytes,
}

impl Kind {
    fn of(data_type: &str) -> Result<Self, DbError> {
        Ok(match data_type {
            "bigint" | "integer" => Self::Integer,
            "boolean" => Self::Flag,
            "text" => Self::Text,
            "bytea" => Self::Bytes,
            other => {
                return Err(DbError::Conflict(format!(
                    "migrate-data cannot copy a column of type {other}"
                )));
            }
        })
    }

    fn read(self, row: &SqliteRow, index: usize) -> Result<Value, sqlx::Error> {
        Ok(match self {
            Self::Integer => Value::Integer(row.try_get(index)?),
            // SQLite stores a bool as 0 or 1.
            Self::Flag => Value::Flag(row.try_get::<Option<i64>, _>(index)?.map(|n| n != 0)),
            Self::Text => Value::Text(row.try_get(index)?),
            Self::Bytes => Value::Bytes(row.try_get(index)?),
        })
    }
}

/// Copies the SQLite database at `from` into the empty PostgreSQL database at `to`, creating
/// PostgreSQL's schema first. Refuses a `to` that holds any row, so a second run changes
/// nothing.
pub async fn migrate_data(from: &str, to: &str) -> Result<DataMigration, DbError> {
    let invalid = |url: &str, text: &str| DbError::InvalidUrl {
        url: redact_password(url),
        source: sqlx::Error::Configuration(text.to_owned().into()),
    };
    if is_postgres(from) {
        return Err(invalid(
            from,
            "--from must name the SQLite database to copy",
        ));
    }
    if !is_postgres(to) {
        return Err(invalid(
            to,
            "--to must name a PostgreSQL database (postgres://…)",
        ));
    }
    let options = super::connect_options(from)?;
    if super::is_memory(from) || !options.get_filename().exists() {
        return Err(DbError::NotFound(format!(
            "{from}: no SQLite database there to copy"
        )));
    }
    let source = Db::open(from).await?;
    // `from` was checked to be no PostgreSQL URL above, so this is SQLite's reader.
    let copied = match &source.reader {
        Pool::Sqlite(reader) => copy(reader, to).await,
        Pool::Postgres(_) => Err(invalid(
            from,
            "--from must name the SQLite database to copy",
        )),
    };
    source.close().await;
    copied
}

async fn copy(source: &SqlitePool, to: &str) -> Result<DataMigration, DbError> {
    let mut target = PgConnection::connect(to)
        .await
        .map_err(|source| DbError::Open {
            url: redact_password(to),
            source,
        })?;
    sqlx::migrate!("./migrations/postgres")
        .run(&mut target)
        .await?;
    let mut tx = target.begin().await?;
    for table in TABLES.iter().filter(|table| **table != "change_versions") {
        let has_rows: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))
            .fetch_one(&mut *tx)
            .await?;
        if has_rows {
            return Err(DbError::Conflict(format!(
                "{}: table {table} has rows; migrate-data copies into an empty database only",
                redact_password(to)
            )));
        }
    }
    let mut report = DataMigration::default();
    for table in TABLES {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1
             ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *tx)
        .await?;
        let kinds = columns
            .iter()
            .map(|(_, data_type)| Kind::of(data_type))
            .collect::<Result<Vec<_>, _>>()?;
        let names = columns
            .iter()
            .map(|(name, _)| format!("\"{name}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let select = format!("SELECT {names} FROM {table}");
        let mut rows = sqlx::query(&select).fetch(source);
        let mut batch: Vec<Vec<Value>> = Vec::with_capacity(BATCH_ROWS);
        let mut count = 0;
        while let Some(row) = rows.try_next().await? {
            let values = kinds
                .iter()
                .enumerate()
                .map(|(index, kind)| kind.read(&row, index))
                .collect::<Result<Vec<_>, _>>()?;
            batch.push(values);
            if batch.len() == BATCH_ROWS {
                count += insert(&mut tx, table, &names, std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            count += insert(&mut tx, table, &names, batch).await?;
        }
        report.tables.push((table, count));
    }
    move_sequences(source, &mut tx).await?;
    tx.commit().await?;
    target.close().await.ok();
    Ok(report)
}

/// Inserts one batch of rows; `change_versions`' rows exist already (its migration seeds
/// them) and take SQLite's counters.
async fn insert(
    tx: &mut PgConnection,
    table: &str,
    names: &str,
    batch: Vec<Vec<Value>>,
) -> Result<u64, DbError> {
    let mut builder: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("INSERT INTO {table} ({names}) "));
    builder.push_values(batch, |mut row, values| {
        for value in values {
            match value {
                Value::Integer(value) => row.push_bind(value),
                Value::Flag(value) => row.push_bind(value),
                Value::Text(value) => row.push_bind(value),
                Value::Bytes(value) => row.push_bind(value),
            };
        }
    });
    if table == "change_versions" {
        builder.push(" ON CONFLICT (domain) DO UPDATE SET version = EXCLUDED.version");
    }
    Ok(builder.build().execute(&mut *tx).await?.rows_affected())
}

/// Moves each identity sequence so that the next id is past every id SQLite handed out: its
/// largest id, or for an AUTOINCREMENT table (`request_log`) the largest it ever gave, since
/// ids deleted by retention must not come back.
async fn move_sequences(source: &SqlitePool, tx: &mut PgConnection) -> Result<(), DbError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND column_name = 'id' AND is_identity = 'YES'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for table in tables {
        let largest: i64 = sqlx::query_scalar(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))
            .fetch_one(source)
            .await?;
        let given: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?")
                .bind(&table)
                .fetch_optional(source)
                .await?;
        let next = largest.max(given.unwrap_or(0)) + 1;
        sqlx::query("SELECT setval(pg_get_serial_sequence($1, 'id'), $2, false)")
            .bind(&table)
            .bind(next)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::{insert_test_key, temp_db};

    #[tokio::test]
    async fn every_sqlite_table_is_copied() {
        let (_dir, db) = temp_db().await;
        let mut tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             AND name <> '_sqlx_migrations' ORDER BY name",
        )
        .fetch_all(db.writer.sqlite().unwrap())
        .await
        .unwrap();
        let mut listed: Vec<&str> = TABLES.to_vec();
        listed.sort_unstable();
        tables.sort();
        assert_eq!(tables, listed, "a new table needs its place in TABLES");
    }

    #[tokio::test]
    async fn a_sqlite_database_moves_to_postgres_with_its_ids_and_sequences() {
        let (dir, db) = temp_db().await;
        for statement in [
            "INSERT INTO providers (id, name, kind, base_url, responses, created_at, updated_at)
             VALUES (3, 'p', 'openai', 'http://x', 1, 10, 11)",
            "INSERT INTO accounts (id, provider_id, name, api_key, api_key_hint, enabled,
                                   created_at, updated_at)
             VALUES (5, 3, 'a', X'00ff10', 'sk-…10', 0, 10, 10)",
            "INSERT INTO models (id, name, created_at, updated_at) VALUES (2, 'm', 0, 0)",
            "INSERT INTO routes (id, model_id, provider_id, upstream_model, input_price_micros,
                                 created_at, updated_at)
             VALUES (9, 2, 3, 'gpt', 150000, 0, 0)",
            "INSERT INTO usage_daily (day, key_id, model, requests, cost_nanos)
             VALUES ('2026-01-01', 1, 'm', 4, 1234)",
            "INSERT INTO request_log (at, request_id, key_id, model, endpoint, stream, status,
                                      attempts, latency_ms, prompt_tokens, completion_tokens,
                                      cached_tokens, reasoning_tokens, estimated)
             VALUES (1, 'r1', 1, 'm', 'chat', 1, 200, 1, 5, 1, 2, 0, 0, 0),
                    (2, 'r2', 1, 'm', 'chat', 0, 200, 1, 5, 1, 2, 0, 0, 1),
                    (3, 'r3', 1, 'm', 'chat', 0, 500, 1, 5, 1, 2, 0, 0, 0)",
            // Retention deleted the newest row: its id must not come back.
            "DELETE FROM request_log WHERE id = 3",
            "INSERT INTO stored_responses (id, key_id, created_at, response, turn)
             VALUES ('resp_1', 1, 7, X'7b7d', X'7b7d')",
        ] {
            sqlx::query(statement)
                .execute(db.writer.sqlite().unwrap())
                .await
                .unwrap();
        }
        let key = insert_test_key(&db, "k").await;
        db.put_setting("s", "v").await.unwrap();
        let versions: Vec<(String, i64)> =
            sqlx::query_as("SELECT domain, version FROM change_versions ORDER BY domain")
                .fetch_all(db.writer.sqlite().unwrap())
                .await
                .unwrap();
        db.close().await;

        let from = format!("sqlite://{}", dir.path().join("test.db").display());
        let to = crate::db::test_postgres::fresh_database().await;
        let report = migrate_data(&from, &to).await.unwrap();
        let counts: Vec<String> = report
            .tables
            .iter()
            .map(|(table, rows)| format!("{table}={rows}"))
            .collect();
        assert_eq!(
            counts.join(" "),
            "providers=1 accounts=1 models=1 routes=1 client_keys=1 settings=1 usage_daily=1 \
             request_log=2 stored_responses=1 change_versions=3"
        );

        let pg = sqlx::PgPool::connect(&to).await.unwrap();
        let account: (i64, Vec<u8>, bool) =
            sqlx::query_as("SELECT provider_id, api_key, enabled FROM accounts WHERE id = 5")
                .fetch_one(&pg)
                .await
                .unwrap();
        assert_eq!(account, (3, vec![0x00, 0xff, 0x10], false));
        let flags: Vec<(i64, bool, bool)> =
            sqlx::query_as("SELECT id, stream, estimated FROM request_log ORDER BY id")
                .fetch_all(&pg)
                .await
                .unwrap();
        assert_eq!(flags, [(1, true, false), (2, false, true)]);
        let responses: bool = sqlx::query_scalar("SELECT responses FROM providers WHERE id = 3")
            .fetch_one(&pg)
            .await
            .unwrap();
        assert!(responses);
        let key_name: String = sqlx::query_scalar("SELECT name FROM client_keys WHERE id = $1")
            .bind(key)
            .fetch_one(&pg)
            .await
            .unwrap();
        assert_eq!(key_name, "k");
        let copied: Vec<(String, i64)> =
            sqlx::query_as("SELECT domain, version FROM change_versions ORDER BY domain")
                .fetch_all(&pg)
                .await
                .unwrap();
        assert_eq!(copied, versions);
        // New rows continue after the copied ids.
        let provider: i64 = sqlx::query_scalar(
            "INSERT INTO providers (name, kind, base_url, created_at, updated_at)
             VALUES ('q', 'openai', 'http://y', 0, 0) RETURNING id",
        )
        .fetch_one(&pg)
        .await
        .unwrap();
        assert_eq!(provider, 4);
        let log: i64 = sqlx::query_scalar(
            "INSERT INTO request_log (at, request_id, key_id, model, endpoint, stream, status,
                                      attempts, latency_ms, prompt_tokens, completion_tokens,
                                      cached_tokens, reasoning_tokens, estimated)
             VALUES (4, 'r4', 1, 'm', 'chat', false, 200, 1, 5, 1, 2, 0, 0, false)
             RETURNING id",
        )
        .fetch_one(&pg)
        .await
        .unwrap();
        assert_eq!(log, 4);
        pg.close().await;

        // The target now has rows: a second run copies nothing.
        assert!(matches!(
            migrate_data(&from, &to).await,
            Err(DbError::Conflict(message)) if message.contains("empty database only")
        ));
        assert!(matches!(
            migrate_data(&format!("{from}.missing"), &to).await,
            Err(DbError::NotFound(_))
        ));
        assert!(matches!(
            migrate_data(&from, &from).await,
            Err(DbError::InvalidUrl { .. })
        ));
    }
}

//! Usage storage: daily rollups, the request log, retention, and the queries over them.
//!
//! Filters and groupings are assembled from fixed SQL fragments chosen by enums; user input
//! only ever reaches the database as bound values.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::NaiveDate;
use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};

use super::stored_responses::{StoredWrites, write_stored};
use super::{Db, DbError, Dialect};

/// Rows per multi-row INSERT, largest first, the last one row: a batch of any length is written
/// as statements of these sizes only (as many of the largest as fit, then at most three of each
/// smaller one), each kept prepared. A statement sized to the batch was parsed and compiled
/// again on every flush, which cost as much per row as the insert itself; one prepared per
/// length seen filled sqlx's cache with large programs (a soak saw RSS climb by 30 MiB). The
/// largest stays well under SQLite's (and PostgreSQL's) limit of bound values per statement.
const ROLLUP_CHUNKS: [usize; 4] = [64, 16, 4, 1];
const LOG_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

const ROLLUP_COLUMNS: usize = 13;
const LOG_COLUMNS: usize = 19;

/// The rollup upsert for each size of [`ROLLUP_CHUNKS`], written once per dialect.
static ROLLUP_SQL: LazyLock<ByDialect<4>> = LazyLock::new(|| {
    ByDialect::new(ROLLUP_CHUNKS, |dialect, rows| {
        multi_row_insert(
            dialect,
            "INSERT INTO usage_daily (day, key_id, model, account_id, requests, errors,
                 prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
                 estimated_requests, cost_nanos, estimated_cost_nanos)",
            ROLLUP_COLUMNS,
            rows,
            " ON CONFLICT (day, key_id, model, account_id) DO UPDATE SET
                 requests = usage_daily.requests + excluded.requests,
                 errors = usage_daily.errors + excluded.errors,
                 prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
                 completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,
                 cached_tokens = usage_daily.cached_tokens + excluded.cached_tokens,
                 reasoning_tokens = usage_daily.reasoning_tokens + excluded.reasoning_tokens,
                 estimated_requests = usage_daily.estimated_requests + excluded.estimated_requests,
                 cost_nanos = usage_daily.cost_nanos + excluded.cost_nanos,
                 estimated_cost_nanos = usage_daily.estimated_cost_nanos + excluded.estimated_cost_nanos",
        )
    })
});

/// The request log insert for each size of [`LOG_CHUNKS`], written once per dialect.
static LOG_SQL: LazyLock<ByDialect<5>> = LazyLock::new(|| {
    ByDialect::new(LOG_CHUNKS, |dialect, rows| {
        multi_row_insert(
            dialect,
            "INSERT INTO request_log (at, request_id, key_id, model, endpoint, stream,
                 provider, route_id, account_id, status, attempts, latency_ms, ttfb_ms,
                 prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, estimated,
                 cost_nanos)",
            LOG_COLUMNS,
            rows,
            "",
        )
    })
});

/// One statement text per chunk size, for each dialect.
struct ByDialect<const N: usize> {
    sqlite: [String; N],
    postgres: [String; N],
}

impl<const N: usize> ByDialect<N> {
    fn new(sizes: [usize; N], write: impl Fn(Dialect, usize) -> String) -> Self {
        Self {
            sqlite: sizes.map(|rows| write(Dialect::Sqlite, rows)),
            postgres: sizes.map(|rows| write(Dialect::Postgres, rows)),
        }
    }

    fn get(&self, dialect: Dialect, size: usize) -> &str {
        match dialect {
            Dialect::Sqlite => &self.sqlite[size],
            Dialect::Postgres => &self.postgres[size],
        }
    }
}

/// `head VALUES (…), …tail` with `rows` rows of `columns` placeholders each.
///
/// On SQLite the placeholders are anonymous `?`: sqlx's SQLite driver asks SQLite for the name
/// of every placeholder it binds, and SQLite finds a named one (`$N`) by walking the list of all
/// the statement's names, so binding a 256-row chunk's 4,864 numbered values cost millions of
/// steps per flush (half of llmgate's CPU at c=64, see OPTIMIZATION.md); an anonymous one has no
/// name to look up. PostgreSQL only knows `$N`.
fn multi_row_insert(
    dialect: Dialect,
    head: &str,
    columns: usize,
    rows: usize,
    tail: &str,
) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(head.len() + tail.len() + 8 + rows * columns * 8);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 1..=columns {
            if column > 1 {
                sql.push_str(", ");
            }
            match dialect {
                Dialect::Sqlite => sql.push('?'),
                Dialect::Postgres => {
                    let _ = write!(sql, "${}", row * columns + column);
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// Builds the batch statements' texts now, so that the first flush does not: about 9 million
/// instructions once, which a short measurement would otherwise count as per-request work.
pub(crate) fn write_statement_texts() {
    LazyLock::force(&ROLLUP_SQL);
    LazyLock::force(&LOG_SQL);
}

/// `rows` cut into chunks whose lengths are in `sizes` (largest first, the last one 1): as many
/// of the largest as fit, then of the next size, and so on; each with the index of its size.
fn chunks_of_sizes<'r, T>(
    rows: &'r [T],
    sizes: &'static [usize],
) -> impl Iterator<Item = (usize, &'r [T])> + 'r {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let index = sizes.iter().position(|&size| size <= rest.len())?;
        let (chunk, tail) = rest.split_at(sizes[index]);
        rest = tail;
        Some((index, chunk))
    })
}

/// Counters added to one rollup row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromRow)]
pub struct UsageCounts {
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    pub estimated_requests: i64,
    /// What the requests cost, in nano-dollars.
    pub cost_nanos: i64,
    /// The part of `cost_nanos` computed from estimated usage.
    pub estimated_cost_nanos: i64,
}

/// One day × key × model × account and what to add to it. `account_id` is 0 for "none".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    pub day: NaiveDate,
    pub key_id: i64,
    pub model: String,
    pub account_id: i64,
    pub counts: UsageCounts,
}

/// What `GET /admin/usage` may group by; each maps to a fixed column expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageGroup {
    Key,
    Model,
    Account,
    Day,
}

impl UsageGroup {
    pub const ALL: &'static [UsageGroup] = &[Self::Key, Self::Model, Self::Account, Self::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Model => "model",
            Self::Account => "account",
            Self::Day => "day",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|g| g.as_str() == name)
    }
}

/// Days `from..=to` (either open) grouped by a set of [`UsageGroup`]s.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub group_by: Vec<UsageGroup>,
}

/// One aggregate: the grouped columns are set, the others `None`. Names come from the key and
/// account tables and are `None` for deleted ones (and for "no account").
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct UsageTotals {
    pub day: Option<String>,
    pub key_id: Option<i64>,
    pub key_name: Option<String>,
    pub model: Option<String>,
    pub account_id: Option<i64>,
    pub account_name: Option<String>,
    pub provider_name: Option<String>,
    #[sqlx(flatten)]
    pub counts: UsageCounts,
}

/// Filters of `GET /admin/logs`. `before` is the cursor: the id of the last row of the previous
/// page; rows come newest first.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub key_id: Option<i64>,
    pub model: Option<String>,
    pub status: Option<u16>,
    /// Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to_ms: Option<i64>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// One request log row, with the key's and account's names when they still exist.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LogRow {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub request_id: String,
    pub key_id: i64,
    pub key_name: Option<String>,
    pub model: String,
    pub endpoint: String,
    pub stream: bool,
    pub provider: Option<String>,
    pub route_id: Option<i64>,
    pub account_id: Option<i64>,
    pub account_name: Option<String>,
    pub status: i64,
    pub attempts: i64,
    pub latency_ms: i64,
    pub ttfb_ms: Option<i64>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    pub estimated: bool,
    /// Nano-dollars; an estimate when `estimated` is set.
    pub cost_nanos: i64,
}

/// One request log row to append, borrowed from the caller's record of the request.
#[derive(Debug, Clone, Copy)]
pub struct NewLogRow<'a> {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub request_id: &'a str,
    pub key_id: i64,
    pub model: &'a str,
    pub endpoint: &'static str,
    pub stream: bool,
    pub provider: Option<&'a str>,
    pub route_id: Option<i64>,
    pub account_id: Option<i64>,
    pub status: u16,
    pub attempts: u32,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    pub estimated: bool,
    /// Nano-dollars.
    pub cost_nanos: u64,
}

/// A record the request log can store: it lends its fields as a [`NewLogRow`] (no copy).
pub trait AsLogRow {
    fn log_row(&self) -> NewLogRow<'_>;
}

impl AsLogRow for NewLogRow<'_> {
    fn log_row(&self) -> NewLogRow<'_> {
        *self
    }
}

/// A page of log rows, and the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub rows: Vec<LogRow>,
    pub next_cursor: Option<i64>,
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `rollups` in the order of their unique key, with the rows of one day, key, model and
/// account added into one. PostgreSQL refuses an upsert that meets the same row twice ("cannot
/// affect row a second time"), which SQLite adds up; and replicas that flush the same rows
/// concurrently lock them in one order, so neither waits for the other in a deadlock.
fn upsert_order(rollups: &[RollupRow]) -> Vec<RollupRow> {
    let mut rows = rollups.to_vec();
    rows.sort_unstable_by(|a, b| {
        (a.day, a.key_id, &a.model, a.account_id).cmp(&(b.day, b.key_id, &b.model, b.account_id))
    });
    rows.dedup_by(|next, kept| {
        let same = (next.day, next.key_id, &next.model, next.account_id)
            == (kept.day, kept.key_id, &kept.model, kept.account_id);
        if same {
            let (c, n) = (&mut kept.counts, next.counts);
            c.requests += n.requests;
            c.errors += n.errors;
            c.prompt_tokens += n.prompt_tokens;
            c.completion_tokens += n.completion_tokens;
            c.cached_tokens += n.cached_tokens;
            c.reasoning_tokens += n.reasoning_tokens;
            c.estimated_requests += n.estimated_requests;
            c.cost_nanos += n.cost_nanos;
            c.estimated_cost_nanos += n.estimated_cost_nanos;
        }
        same
    });
    rows
}

impl Db {
    /// Adds `rollups` to the daily counters and appends `log` rows, in one transaction: either
    /// all of it is stored or none.
    pub async fn write_usage<R: AsLogRow + Sync>(
        &self,
        rollups: &[RollupRow],
        log: &[R],
    ) -> Result<(), DbError> {
        self.write_batch(rollups, log, StoredWrites::default())
            .await
    }

    /// Writes one batch of the usage writer in one transaction: `rollups` added to the daily
    /// counters, `log` rows appended, and the stored responses kept and deleted since the last
    /// batch (see [`StoredWrites`]). Either all of it is stored or none.
    pub async fn write_batch<R: AsLogRow + Sync>(
        &self,
        rollups: &[RollupRow],
        log: &[R],
        stored: StoredWrites<'_>,
    ) -> Result<(), DbError> {
        if rollups.is_empty() && log.is_empty() && stored.is_empty() {
            return Ok(());
        }
        let rollups = upsert_order(rollups);
        let dialect = self.dialect();
        on_pool!(&self.writer, |pool| {
            let mut tx = pool.begin().await?;
            write_stored!(&stored, tx);
            for (size, chunk) in chunks_of_sizes(&rollups, &ROLLUP_CHUNKS) {
                let mut query = sqlx::query(ROLLUP_SQL.get(dialect, size));
                for r in chunk {
                    query = query
                        .bind(day_text(r.day))
                        .bind(r.key_id)
                        .bind(&r.model)
                        .bind(r.account_id)
                        .bind(r.counts.requests)
                        .bind(r.counts.errors)
                        .bind(r.counts.prompt_tokens)
                        .bind(r.counts.completion_tokens)
                        .bind(r.counts.cached_tokens)
                        .bind(r.counts.reasoning_tokens)
                        .bind(r.counts.estimated_requests)
                        .bind(r.counts.cost_nanos)
                        .bind(r.counts.estimated_cost_nanos);
                }
                query.persistent(true).execute(&mut *tx).await?;
            }
            for (size, chunk) in chunks_of_sizes(log, &LOG_CHUNKS) {
                let mut query = sqlx::query(LOG_SQL.get(dialect, size));
                for e in chunk.iter().map(AsLogRow::log_row) {
                    query = query
                        .bind(e.at_ms)
                        .bind(e.request_id)
                        .bind(e.key_id)
                        .bind(e.model)
                        .bind(e.endpoint)
                        .bind(e.stream)
                        .bind(e.provider)
                        .bind(e.route_id)
                        .bind(e.account_id)
                        .bind(i64::from(e.status))
                        .bind(i64::from(e.attempts))
                        .bind(int(e.latency_ms))
                        .bind(e.ttfb_ms.map(int))
                        .bind(int(e.prompt_tokens))
                        .bind(int(e.completion_tokens))
                        .bind(int(e.cached_tokens))
                        .bind(int(e.reasoning_tokens))
                        .bind(e.estimated)
                        .bind(int(e.cost_nanos));
                }
                query.persistent(true).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes up to `limit` request log rows older than `before_ms`, oldest first; returns how
    /// many went. Small batches keep each write lock short.
    pub async fn delete_log_before(&self, before_ms: i64, limit: u32) -> Result<u64, DbError> {
        Ok(on_pool!(&self.writer, |pool| sqlx::query(
            "DELETE FROM request_log WHERE id IN (
                 SELECT id FROM request_log WHERE at < $1 ORDER BY at LIMIT $2)",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .execute(pool)
        .await?
        .rows_affected()))
    }

    /// Tokens (prompt + completion) each key spent from `since` (a UTC day, inclusive) on, from
    /// the rollups. Keys without usage are absent.
    pub async fn tokens_spent_since(&self, since: NaiveDate) -> Result<HashMap<i64, u64>, DbError> {
        self.spent_since(
            "SELECT key_id, CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT)
             FROM usage_daily WHERE day >= $1 GROUP BY key_id",
            since,
        )
        .await
    }

    /// Nano-dollars each key spent from `since` (a UTC day, inclusive) on, from the rollups.
    /// Keys without usage are absent.
    pub async fn cost_spent_since(&self, since: NaiveDate) -> Result<HashMap<i64, u64>, DbError> {
        self.spent_since(
            "SELECT key_id, CAST(SUM(cost_nanos) AS BIGINT) FROM usage_daily WHERE day >= $1
             GROUP BY key_id",
            since,
        )
        .await
    }

    /// Each key's sum by `sql`, a fixed query of `(key_id, amount)` rows from the day bound.
    async fn spent_since(
        &self,
        sql: &'static str,
        since: NaiveDate,
    ) -> Result<HashMap<i64, u64>, DbError> {
        let rows: Vec<(i64, i64)> = on_pool!(&self.reader, |pool| sqlx::query_as(sql)
            .bind(day_text(since))
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(key, tokens)| (key, u64::try_from(tokens).unwrap_or(0)))
            .collect())
    }

    /// Totals over the rollups of `query.from..=query.to`, one row per combination of the
    /// grouped columns (a single row when grouping by nothing), ordered by them.
    pub async fn usage_totals(&self, query: &UsageQuery) -> Result<Vec<UsageTotals>, DbError> {
        let dialect = self.dialect();
        Ok(on_pool!(&self.reader, |pool| {
            let mut sql = usage_totals_sql(query, dialect);
            sql.build_query_as().fetch_all(pool).await?
        }))
    }

    /// A page of request log rows matching `query`, newest first.
    pub async fn log_page(&self, query: &LogQuery) -> Result<LogPage, DbError> {
        let limit = query.limit.clamp(1, 1000);
        let mut rows: Vec<LogRow> = on_pool!(&self.reader, |pool| {
            let mut sql = log_page_sql("", query, limit);
            sql.build_query_as().fetch_all(pool).await?
        });
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|row| row.id)
        } else {
            None
        };
        Ok(LogPage { rows, next_cursor })
    }

    /// Makes every request log insert fail (or work again), to test failing flushes.
    #[cfg(test)]
    pub(crate) async fn fail_log_inserts(&self, fail: bool) {
        if fail {
            self.fail_log_inserts_when("TRUE").await;
        } else {
            let sql = match self.dialect() {
                Dialect::Sqlite => "DROP TRIGGER IF EXISTS fail_log",
                Dialect::Postgres => "DROP TRIGGER IF EXISTS fail_log ON request_log",
            };
            if let Err(error) = on_pool!(&self.writer, |pool| sqlx::raw_sql(sql)
                .execute(pool)
                .await
                .map(|_| ()))
            {
                panic!("cannot stop failing log inserts: {error}");
            }
        }
    }

    /// Makes each request log insert whose row meets `condition` (SQL over `NEW`) fail.
    #[cfg(test)]
    pub(crate) async fn fail_log_inserts_when(&self, condition: &str) {
        let sql = match self.dialect() {
            Dialect::Sqlite => format!(
                "CREATE TRIGGER IF NOT EXISTS fail_log BEFORE INSERT ON request_log
                 WHEN {condition} BEGIN SELECT RAISE(ABORT, 'failing on purpose'); END"
            ),
            Dialect::Postgres => format!(
                "CREATE OR REPLACE FUNCTION fail_log() RETURNS trigger LANGUAGE plpgsql AS
                     $$ BEGIN RAISE EXCEPTION 'failing on purpose'; END $$;
                 DROP TRIGGER IF EXISTS fail_log ON request_log;
                 CREATE TRIGGER fail_log BEFORE INSERT ON request_log FOR EACH ROW
                     WHEN ({condition}) EXECUTE FUNCTION fail_log();"
            ),
        };
        if let Err(error) = on_pool!(&self.writer, |pool| sqlx::raw_sql(&sql)
            .execute(pool)
            .await
            .map(|_| ()))
        {
            panic!("cannot make log inserts fail: {error}");
        }
    }
}

/// The query of `GET /admin/usage`'s totals. Every column it selects outside an aggregate is
/// one of the grouped columns (or an expression of one), as PostgreSQL requires.
fn usage_totals_sql<'q, DB: Database>(query: &UsageQuery, dialect: Dialect) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
{
    let grouped = |group| query.group_by.contains(&group);
    // A column left out of the grouping is a typed NULL: PostgreSQL types a bare NULL as
    // text, which would not read back as an integer.
    let pick = |group, expression: &'static str, absent: &'static str| {
        if grouped(group) { expression } else { absent }
    };
    let mut sql = QueryBuilder::new("SELECT ");
    sql.push(pick(UsageGroup::Day, "u.day", "CAST(NULL AS TEXT)"))
        .push(" AS day, ")
        .push(pick(UsageGroup::Key, "u.key_id", "CAST(NULL AS BIGINT)"))
        .push(" AS key_id, ")
        .push(pick(UsageGroup::Key, "MAX(k.name)", "CAST(NULL AS TEXT)"))
        .push(" AS key_name, ")
        .push(pick(UsageGroup::Model, "u.model", "CAST(NULL AS TEXT)"))
        .push(" AS model, ")
        .push(pick(
            UsageGroup::Account,
            "NULLIF(u.account_id, 0)",
            "CAST(NULL AS BIGINT)",
        ))
        .push(" AS account_id, ")
        .push(pick(
            UsageGroup::Account,
            "MAX(a.name)",
            "CAST(NULL AS TEXT)",
        ))
        .push(" AS account_name, ")
        .push(pick(
            UsageGroup::Account,
            "MAX(p.name)",
            "CAST(NULL AS TEXT)",
        ))
        .push(
            " AS provider_name,
             CAST(COALESCE(SUM(u.requests), 0) AS BIGINT) AS requests,
             CAST(COALESCE(SUM(u.errors), 0) AS BIGINT) AS errors,
             CAST(COALESCE(SUM(u.prompt_tokens), 0) AS BIGINT) AS prompt_tokens,
             CAST(COALESCE(SUM(u.completion_tokens), 0) AS BIGINT) AS completion_tokens,
             CAST(COALESCE(SUM(u.cached_tokens), 0) AS BIGINT) AS cached_tokens,
             CAST(COALESCE(SUM(u.reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens,
             CAST(COALESCE(SUM(u.estimated_requests), 0) AS BIGINT) AS estimated_requests,
             CAST(COALESCE(SUM(u.cost_nanos), 0) AS BIGINT) AS cost_nanos,
             CAST(COALESCE(SUM(u.estimated_cost_nanos), 0) AS BIGINT) AS estimated_cost_nanos
             FROM usage_daily u
             LEFT JOIN client_keys k ON k.id = u.key_id
             LEFT JOIN accounts a ON a.id = u.account_id
             LEFT JOIN providers p ON p.id = a.provider_id
             WHERE 1 = 1",
        );
    if let Some(from) = query.from {
        sql.push(" AND u.day >= ").push_bind(day_text(from));
    }
    if let Some(to) = query.to {
        sql.push(" AND u.day <= ").push_bind(day_text(to));
    }
    // A fixed order of fixed columns, whatever order the groups were asked in. Text sorts by
    // its bytes on both backends: SQLite's default, and PostgreSQL's "C" collation rather than
    // the database's locale.
    let text_order = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " COLLATE \"C\"",
    };
    let columns: Vec<(&str, &str)> = [
        (UsageGroup::Day, "u.day", text_order),
        (UsageGroup::Key, "u.key_id", ""),
        (UsageGroup::Model, "u.model", text_order),
        (UsageGroup::Account, "u.account_id", ""),
    ]
    .into_iter()
    .filter(|(group, _, _)| grouped(*group))
    .map(|(_, column, order)| (column, order))
    .collect();
    if !columns.is_empty() {
        let group: Vec<&str> = columns.iter().map(|(column, _)| *column).collect();
        let order: Vec<String> = columns
            .iter()
            .map(|(column, collation)| format!("{column}{collation}"))
            .collect();
        sql.push(" GROUP BY ").push(group.join(", "));
        sql.push(" ORDER BY ").push(order.join(", "));
    }
    sql
}

/// The query of one page of `GET /admin/logs`, behind `prefix` (an `EXPLAIN` in tests). Every
/// filter has an index that ends in `at` and the id (SQLite's rowid, PostgreSQL's named
/// column), so a page is read in order from an index and stops at `limit`, however many rows
/// the log holds; the id orders rows of the same millisecond, so pages neither skip nor
/// repeat them.
fn log_page_sql<'q, DB: Database>(
    prefix: &str,
    query: &'q LogQuery,
    limit: u32,
) -> QueryBuilder<'q, DB>
where
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new(prefix);
    sql.push(
        "SELECT l.id, l.at, l.request_id, l.key_id, k.name AS key_name, l.model, l.endpoint,
                 l.stream, l.provider, l.route_id, l.account_id, a.name AS account_name, l.status,
                 l.attempts, l.latency_ms, l.ttfb_ms, l.prompt_tokens, l.completion_tokens,
                 l.cached_tokens, l.reasoning_tokens, l.estimated, l.cost_nanos
             FROM request_log l
             LEFT JOIN client_keys k ON k.id = l.key_id
             LEFT JOIN accounts a ON a.id = l.account_id
             WHERE 1 = 1",
    );
    if let Some(key_id) = query.key_id {
        sql.push(" AND l.key_id = ").push_bind(key_id);
    }
    if let Some(model) = &query.model {
        sql.push(" AND l.model = ").push_bind(model.as_str());
    }
    if let Some(status) = query.status {
        sql.push(" AND l.status = ").push_bind(i64::from(status));
    }
    if let Some(from) = query.from_ms {
        sql.push(" AND l.at >= ").push_bind(from);
    }
    if let Some(to) = query.to_ms {
        sql.push(" AND l.at < ").push_bind(to);
    }
    if let Some(before) = query.before {
        // Newest first is (at, id) descending: every index ends in `at` and the rowid.
        sql.push(" AND (l.at, l.id) < (SELECT at, id FROM request_log WHERE id = ")
            .push_bind(before)
            .push(")");
    }
    sql.push(" ORDER BY l.at DESC, l.id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::both_dbs;
    use crate::usage::Usage;
    use crate::usage::UsageEvent;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn counts(requests: i64, prompt: i64, completion: i64) -> UsageCounts {
        UsageCounts {
            requests,
            errors: requests / 2,
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: 1,
            reasoning_tokens: 2,
            estimated_requests: 0,
            cost_nanos: prompt * 1000,
            estimated_cost_nanos: 0,
        }
    }

    fn rollup(d: &str, key_id: i64, model: &str, account_id: i64, c: UsageCounts) -> RollupRow {
        RollupRow {
            day: day(d),
            key_id,
            model: model.into(),
            account_id,
            counts: c,
        }
    }

    fn event(at_ms: i64, key_id: i64, model: &str, status: u16) -> UsageEvent {
        UsageEvent {
            at_ms,
            request_id: format!("req-{at_ms}"),
            key_id,
            model: model.into(),
            model_configured: true,
            endpoint: "chat_completions",
            stream: at_ms % 2 == 0,
            provider: Some("p".into()),
            route_id: Some(1),
            account_id: None,
            status,
            attempts: 1,
            latency_ms: 12,
            ttfb_ms: Some(3),
            usage: Usage {
                prompt_tokens: 5,
                completion_tokens: 7,
                total_tokens: 12,
                cached_tokens: 1,
                cache_creation_tokens: 0,
                reasoning_tokens: 0,
                estimated: false,
            },
            cost: crate::pricing::Nanodollars(u64::try_from(at_ms).unwrap_or(0) % 1000),
        }
    }

    /// Runs `sql`, with no bound values, on either backend.
    async fn exec(db: &Db, sql: &str) {
        on_pool!(&db.writer, |pool| sqlx::query(sql)
            .execute(pool)
            .await
            .map(|_| ()))
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    /// One number from `sql` on either backend.
    async fn number(db: &Db, sql: &str) -> i64 {
        on_pool!(&db.writer, |pool| sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await)
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// Two keys, a provider with one account, in a database of each backend.
    async fn seeded() -> (tempfile::TempDir, [Db; 2]) {
        let (dir, dbs) = both_dbs().await;
        for db in &dbs {
            for sql in [
                "INSERT INTO client_keys (id, name, key_hash, prefix, created_at, updated_at) VALUES (1, 'alice', 'h1', 'p', 0, 0), (2, 'bob', 'h2', 'p', 0, 0)",
                "INSERT INTO providers (id, name, kind, base_url, created_at, updated_at) VALUES (1, 'openai', 'openai', 'http://x', 0, 0)",
            ] {
                exec(db, sql).await;
            }
            on_pool!(&db.writer, |pool| sqlx::query(
                "INSERT INTO accounts (id, provider_id, name, api_key, api_key_hint, created_at, updated_at) VALUES (5, 1, 'main', $1, 'sk-…', 0, 0)",
            )
            .bind(vec![0u8])
            .execute(pool)
            .await
            .map(|_| ()))
            .unwrap();
        }
        (dir, dbs)
    }

    #[tokio::test]
    async fn rollups_add_up_and_totals_group_by_any_subset() {
        let (_dir, dbs) = seeded().await;
        for db in dbs {
            rollups_add_up_and_totals_group_by_any_subset_on(db).await;
        }
    }

    async fn rollups_add_up_and_totals_group_by_any_subset_on(db: Db) {
        db.write_usage(
            &[
                rollup("2025-01-01", 1, "gpt", 5, counts(2, 10, 20)),
                rollup("2025-01-01", 1, "gpt", 0, counts(1, 1, 1)),
                rollup("2025-01-02", 2, "emb", 0, counts(4, 40, 0)),
            ],
            &[] as &[UsageEvent],
        )
        .await
        .unwrap();
        // Upserting the same row again adds to it.
        db.write_usage(
            &[rollup("2025-01-01", 1, "gpt", 5, counts(2, 10, 20))],
            &[] as &[UsageEvent],
        )
        .await
        .unwrap();

        let totals = |group_by: &[UsageGroup], from: Option<&str>, to: Option<&str>| {
            let query = UsageQuery {
                from: from.map(day),
                to: to.map(day),
                group_by: group_by.to_vec(),
            };
            let db = db.clone();
            async move { db.usage_totals(&query).await.unwrap() }
        };

        let all = totals(&[], None, None).await;
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].counts.requests, 9);
        assert_eq!(all[0].counts.prompt_tokens, 61);
        assert_eq!(all[0].counts.errors, 4, "1 + 0 + 2 + 1 errors");
        assert_eq!(all[0].key_id, None);

        let by_key = totals(&[UsageGroup::Key], None, None).await;
        let names: Vec<_> = by_key
            .iter()
            .map(|r| (r.key_name.as_deref().unwrap(), r.counts.requests))
            .collect();
        assert_eq!(names, [("alice", 5), ("bob", 4)]);
        assert_eq!(by_key[0].model, None);

        let by_account = totals(&[UsageGroup::Account, UsageGroup::Model], None, None).await;
        let accounts: Vec<_> = by_account
            .iter()
            .map(|r| {
                (
                    r.model.clone().unwrap(),
                    r.account_id,
                    r.account_name.clone(),
                    r.provider_name.clone(),
                    r.counts.requests,
                )
            })
            .collect();
        assert_eq!(
            accounts,
            [
                ("emb".into(), None, None, None, 4),
                ("gpt".into(), None, None, None, 1),
                (
                    "gpt".into(),
                    Some(5),
                    Some("main".into()),
                    Some("openai".into()),
                    4
                ),
            ]
        );

        let by_day = totals(&[UsageGroup::Day], Some("2025-01-02"), Some("2025-01-31")).await;
        assert_eq!(by_day.len(), 1);
        assert_eq!(by_day[0].day.as_deref(), Some("2025-01-02"));
        assert_eq!(by_day[0].counts.requests, 4);

        let everything = totals(UsageGroup::ALL, None, Some("2025-01-01")).await;
        assert_eq!(everything.len(), 2);
        assert!(
            everything
                .iter()
                .all(|r| r.day.is_some() && r.key_id.is_some())
        );

        // Every subset of the groups is a valid query (PostgreSQL's GROUP BY rules included).
        for subset in 0..(1 << UsageGroup::ALL.len()) {
            let group_by: Vec<UsageGroup> = UsageGroup::ALL
                .iter()
                .enumerate()
                .filter(|(bit, _)| subset & (1 << bit) != 0)
                .map(|(_, group)| *group)
                .collect();
            let rows = totals(&group_by, None, None).await;
            let requests: i64 = rows.iter().map(|r| r.counts.requests).sum();
            assert_eq!(requests, 9, "{group_by:?}");
        }

        // Nothing in range still answers one zero row.
        let empty = totals(&[], Some("2030-01-01"), None).await;
        assert_eq!(empty[0].counts, UsageCounts::default());
    }

    #[tokio::test]
    async fn a_batch_may_repeat_a_row_and_text_groups_sort_by_bytes() {
        let (_dir, dbs) = seeded().await;
        // The test cluster has no locale; a column of a language's collation (as a database
        // created with a locale has) shows whether the order still follows the bytes.
        exec(
            &dbs[1],
            "ALTER TABLE usage_daily ALTER COLUMN model TYPE TEXT COLLATE \"und-x-icu\"",
        )
        .await;
        for db in dbs {
            // The same row twice in one batch adds up, on PostgreSQL too.
            db.write_usage(
                &[
                    rollup("2025-01-01", 1, "gpt-4", 0, counts(1, 1, 0)),
                    rollup("2025-01-01", 1, "gpt-4", 0, counts(2, 1, 0)),
                    rollup("2025-01-01", 1, "a-model", 0, counts(1, 1, 0)),
                    rollup("2025-01-01", 1, "GPT", 0, counts(1, 1, 0)),
                    rollup("2025-01-01", 1, "gpt4", 0, counts(1, 1, 0)),
                ],
                &[] as &[UsageEvent],
            )
            .await
            .unwrap();
            let rows = db
                .usage_totals(&UsageQuery {
                    group_by: vec![UsageGroup::Model],
                    ..UsageQuery::default()
                })
                .await
                .unwrap();
            let models: Vec<_> = rows
                .iter()
                .map(|r| (r.model.as_deref().unwrap(), r.counts.requests))
                .collect();
            assert_eq!(
                models,
                [("GPT", 1), ("a-model", 1), ("gpt-4", 3), ("gpt4", 1)],
                "postgres: {}",
                db.is_postgres()
            );
        }
    }

    #[test]
    fn rollups_are_upserted_in_key_order_with_repeats_added() {
        let rows = upsert_order(&[
            rollup("2025-01-02", 1, "gpt", 0, counts(1, 1, 0)),
            rollup("2025-01-01", 2, "gpt", 0, counts(1, 1, 0)),
            rollup("2025-01-01", 1, "gpt", 5, counts(1, 1, 0)),
            rollup("2025-01-02", 1, "gpt", 0, counts(2, 3, 0)),
            rollup("2025-01-01", 1, "emb", 5, counts(1, 1, 0)),
        ]);
        let keys: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    day_text(r.day),
                    r.key_id,
                    r.model.as_str(),
                    r.counts.requests,
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("2025-01-01".to_owned(), 1, "emb", 1),
                ("2025-01-01".to_owned(), 1, "gpt", 1),
                ("2025-01-01".to_owned(), 2, "gpt", 1),
                ("2025-01-02".to_owned(), 1, "gpt", 3),
            ]
        );
        assert_eq!(rows[3].counts.prompt_tokens, 4);
    }

    #[test]
    fn groups_parse_from_their_names_only() {
        for group in UsageGroup::ALL {
            assert_eq!(UsageGroup::parse(group.as_str()), Some(*group));
        }
        assert_eq!(UsageGroup::parse("key; DROP TABLE usage_daily"), None);
    }

    #[tokio::test]
    async fn spend_since_sums_prompt_and_completion_per_key() {
        let (_dir, dbs) = seeded().await;
        for db in dbs {
            db.write_usage(
                &[
                    rollup("2025-01-01", 1, "gpt", 5, counts(1, 100, 50)),
                    rollup("2025-01-05", 1, "gpt", 5, counts(1, 10, 5)),
                    rollup("2025-01-05", 1, "emb", 0, counts(1, 1, 0)),
                    rollup("2025-01-06", 2, "gpt", 0, counts(1, 7, 0)),
                ],
                &[] as &[UsageEvent],
            )
            .await
            .unwrap();
            let all = db.tokens_spent_since(day("2000-01-01")).await.unwrap();
            assert_eq!(all, HashMap::from([(1, 166), (2, 7)]));
            let recent = db.tokens_spent_since(day("2025-01-05")).await.unwrap();
            assert_eq!(recent, HashMap::from([(1, 16), (2, 7)]));
            assert!(
                db.tokens_spent_since(day("2025-02-01"))
                    .await
                    .unwrap()
                    .is_empty()
            );
            // The same days' cost, in nano-dollars (each row: its prompt tokens × 1000).
            let cost = db.cost_spent_since(day("2025-01-05")).await.unwrap();
            assert_eq!(cost, HashMap::from([(1, 11_000), (2, 7_000)]));
        }
    }

    /// Reads every page of `query` from `db`, following the cursor; the ids and times seen.
    async fn all_pages(db: &Db, mut query: LogQuery) -> Vec<(i64, i64)> {
        let mut seen = Vec::new();
        loop {
            let page = db.log_page(&query).await.unwrap();
            assert!(page.rows.len() <= query.limit as usize);
            seen.extend(page.rows.iter().map(|r| (r.id, r.at)));
            match page.next_cursor {
                Some(cursor) => query.before = Some(cursor),
                None => return seen,
            }
        }
    }

    #[tokio::test]
    async fn log_rows_round_trip_and_page_newest_first_under_filters() {
        let (_dir, dbs) = seeded().await;
        for db in dbs {
            log_rows_round_trip_and_page_newest_first_under_filters_on(db).await;
        }
    }

    async fn log_rows_round_trip_and_page_newest_first_under_filters_on(db: Db) {
        let events: Vec<UsageEvent> = (0..25)
            .map(|i| {
                event(
                    1_000 + i,
                    1 + i % 2,
                    if i % 3 == 0 { "emb" } else { "gpt" },
                    if i % 5 == 0 { 429 } else { 200 },
                )
            })
            .collect();
        db.write_usage(&[], &events).await.unwrap();

        let page = db
            .log_page(&LogQuery {
                limit: 10,
                ..LogQuery::default()
            })
            .await
            .unwrap();
        let first = &page.rows[0];
        assert_eq!(first.at, 1_024);
        assert_eq!(first.key_name.as_deref(), Some("alice"));
        assert_eq!(first.request_id, "req-1024");
        assert_eq!(
            (first.prompt_tokens, first.completion_tokens, first.ttfb_ms),
            (5, 7, Some(3))
        );
        assert!(first.stream);
        assert_eq!(first.cost_nanos, 24);

        // Every filter and the cursor, checked against a filter over all events.
        let check = |query: LogQuery, keep: &dyn Fn(&UsageEvent) -> bool| {
            let db = db.clone();
            let expected: Vec<i64> = events
                .iter()
                .rev()
                .filter(|e| keep(e))
                .map(|e| e.at_ms)
                .collect();
            async move {
                let seen: Vec<i64> = all_pages(&db, query.clone())
                    .await
                    .into_iter()
                    .map(|(_, at)| at)
                    .collect();
                assert_eq!(seen, expected, "{query:?}");
            }
        };
        let page_of = |limit| LogQuery {
            limit,
            ..LogQuery::default()
        };
        check(page_of(7), &|_| true).await;
        check(
            LogQuery {
                key_id: Some(2),
                ..page_of(3)
            },
            &|e| e.key_id == 2,
        )
        .await;
        check(
            LogQuery {
                model: Some("emb".into()),
                status: Some(429),
                ..page_of(2)
            },
            &|e| e.model == "emb" && e.status == 429,
        )
        .await;
        check(
            LogQuery {
                from_ms: Some(1_005),
                to_ms: Some(1_015),
                ..page_of(4)
            },
            &|e| (1_005..1_015).contains(&e.at_ms),
        )
        .await;
        check(
            LogQuery {
                model: Some("none".into()),
                ..page_of(4)
            },
            &|_| false,
        )
        .await;
    }

    #[tokio::test]
    async fn rows_of_the_same_millisecond_page_by_id_without_gaps_or_repeats() {
        let (_dir, dbs) = seeded().await;
        for db in dbs {
            let events: Vec<UsageEvent> = (0..7).map(|_| event(500, 1, "gpt", 200)).collect();
            db.write_usage(&[], &events).await.unwrap();
            let seen = all_pages(
                &db,
                LogQuery {
                    limit: 2,
                    ..LogQuery::default()
                },
            )
            .await;
            let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
            let mut expected = ids.clone();
            expected.sort_unstable_by(|a, b| b.cmp(a));
            expected.dedup();
            assert_eq!(ids, expected, "postgres: {}", db.is_postgres());
            assert_eq!(ids.len(), 7);
        }
    }

    fn index_cases() -> Vec<(LogQuery, &'static str)> {
        vec![
            (LogQuery::default(), "request_log_at"),
            (
                LogQuery {
                    key_id: Some(1),
                    from_ms: Some(0),
                    ..LogQuery::default()
                },
                "request_log_key",
            ),
            (
                LogQuery {
                    model: Some("gpt".into()),
                    ..LogQuery::default()
                },
                "request_log_model",
            ),
            (
                LogQuery {
                    status: Some(500),
                    ..LogQuery::default()
                },
                "request_log_status",
            ),
            (
                LogQuery {
                    from_ms: Some(0),
                    to_ms: Some(10),
                    before: Some(5),
                    ..LogQuery::default()
                },
                "request_log_at",
            ),
        ]
    }

    /// The real page query, for each filter: read in order from an index (no sort of the
    /// whole log), so a page costs the same at a million rows as at ten.
    #[tokio::test]
    async fn log_queries_use_an_index_in_order() {
        let (_dir, [sqlite, postgres]) = seeded().await;
        for (query, index) in index_cases() {
            let mut sql = log_page_sql("EXPLAIN QUERY PLAN ", &query, 10);
            let rows: Vec<(i64, i64, i64, String)> = sql
                .build_query_as()
                .fetch_all(sqlite.reader.sqlite().unwrap())
                .await
                .unwrap();
            let plan = rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ");
            assert!(plan.contains(index), "{query:?}: {plan}");
            assert!(
                !plan.contains("TEMP B-TREE"),
                "sorts instead of reading in order: {query:?}: {plan}"
            );
        }
        // PostgreSQL plans by statistics, and an almost empty table is cheapest to scan
        // whole: with scans of the whole table (and bitmap scans, which lose the order) priced
        // out, the plan must still need no sort, which only an index in page order gives.
        let super::super::Pool::Postgres(pool) = &postgres.writer else {
            panic!("the second database is PostgreSQL");
        };
        for (query, index) in index_cases() {
            let mut tx = pool.begin().await.unwrap();
            sqlx::raw_sql("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
                .execute(&mut *tx)
                .await
                .unwrap();
            let mut sql = log_page_sql("EXPLAIN ", &query, 10);
            let rows: Vec<String> = sql.build_query_scalar().fetch_all(&mut *tx).await.unwrap();
            let plan = rows.join("\n");
            assert!(plan.contains(index), "{query:?}: {plan}");
            assert!(
                !plan.contains("Sort"),
                "sorts instead of reading in order: {query:?}: {plan}"
            );
            tx.rollback().await.unwrap();
        }
    }

    #[tokio::test]
    async fn retention_deletes_old_rows_in_batches() {
        let (_dir, dbs) = seeded().await;
        for db in dbs {
            let events: Vec<UsageEvent> = (0..10).map(|i| event(i * 100, 1, "gpt", 200)).collect();
            db.write_usage(&[], &events).await.unwrap();
            assert_eq!(db.delete_log_before(550, 4).await.unwrap(), 4);
            assert_eq!(db.delete_log_before(550, 4).await.unwrap(), 2);
            assert_eq!(db.delete_log_before(550, 4).await.unwrap(), 0);
            let left = db
                .log_page(&LogQuery {
                    limit: 100,
                    ..LogQuery::default()
                })
                .await
                .unwrap();
            let at: Vec<i64> = left.rows.iter().map(|r| r.at).collect();
            assert_eq!(at, [900, 800, 700, 600]);
        }
    }

    /// sqlx's SQLite statement cache: which statements stay prepared on the one writer.
    #[tokio::test]
    async fn flushes_of_any_size_keep_no_statement_per_size_prepared() {
        use sqlx::Connection as _;
        let (_dir, [db, _]) = seeded().await;
        // One flush of a statement of every size first, so that what every flush prepares is
        // in the cache already.
        let mut at = 0;
        let mut events = |count: usize| -> Vec<UsageEvent> {
            (0..count)
                .map(|_| {
                    at += 1;
                    event(at, 1, "gpt", 200)
                })
                .collect()
        };
        let all_rollup_sizes: usize = ROLLUP_CHUNKS.iter().sum();
        let all_log_sizes: usize = LOG_CHUNKS.iter().sum();
        // Distinct rows: a batch's repeats of one row are added into one before writing.
        let rollups = |count: usize| -> Vec<RollupRow> {
            (0..count)
                .map(|i| rollup("2025-01-01", 1, &format!("m{i}"), 5, counts(1, 1, 1)))
                .collect()
        };
        db.write_usage(&rollups(all_rollup_sizes), &events(all_log_sizes))
            .await
            .unwrap();
        let before = db
            .writer
            .sqlite()
            .unwrap()
            .acquire()
            .await
            .unwrap()
            .cached_statements_size();
        assert!(
            before >= ROLLUP_CHUNKS.len() + LOG_CHUNKS.len(),
            "one statement per size kept prepared: {before}"
        );
        for size in (1..=30).chain([300, 341, 700]) {
            let events = events(size);
            db.write_usage(&rollups(size), &events).await.unwrap();
        }
        let mut writer = db.writer.sqlite().unwrap().acquire().await.unwrap();
        let cached = writer.cached_statements_size();
        assert_eq!(
            cached, before,
            "statements prepared after flushes of 30 different sizes"
        );
        assert_eq!(
            writer.ping().await.map(|()| "ok").unwrap(),
            "ok",
            "the writer still works"
        );
    }

    #[test]
    fn sqlite_batches_bind_anonymous_placeholders_and_postgres_numbered_ones() {
        // A numbered placeholder on SQLite makes every bind walk the statement's list of names
        // (quadratic in the chunk's size); the batch statements must not have any.
        for (size, rows) in LOG_CHUNKS.into_iter().enumerate() {
            let sqlite = LOG_SQL.get(Dialect::Sqlite, size);
            assert!(!sqlite.contains('$'), "{sqlite}");
            assert_eq!(sqlite.matches('?').count(), rows * LOG_COLUMNS);
            let postgres = LOG_SQL.get(Dialect::Postgres, size);
            let last = rows * LOG_COLUMNS;
            assert!(postgres.contains(&format!("${last})")), "{postgres}");
            assert!(!postgres.contains('?'));
        }
        for (size, rows) in ROLLUP_CHUNKS.into_iter().enumerate() {
            let sqlite = ROLLUP_SQL.get(Dialect::Sqlite, size);
            assert!(!sqlite.contains('$'), "{sqlite}");
            assert_eq!(sqlite.matches('?').count(), rows * ROLLUP_COLUMNS);
        }
    }

    #[test]
    fn batches_are_cut_into_the_prepared_sizes_only() {
        for length in 0..=1100 {
            let rows: Vec<usize> = (0..length).collect();
            let chunks: Vec<(usize, &[usize])> = chunks_of_sizes(&rows, &LOG_CHUNKS).collect();
            let joined: Vec<usize> = chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect();
            assert_eq!(joined, rows, "every row once, in order ({length})");
            for (index, chunk) in &chunks {
                assert_eq!(chunk.len(), LOG_CHUNKS[*index], "{length}");
            }
            for (index, &size) in LOG_CHUNKS.iter().enumerate().skip(1) {
                let of_size = chunks.iter().filter(|(i, _)| *i == index).count();
                assert!(
                    of_size * size < LOG_CHUNKS[index - 1],
                    "{length}: {of_size} × {size}"
                );
            }
        }
    }

    #[tokio::test]
    async fn batches_of_any_length_are_written_whole() {
        let (_dir, dbs) = seeded().await;
        for db in dbs {
            let mut at = 0;
            let mut written = 0;
            for length in [1, 3, 4, 5, 21, 64, 85, 255, 256, 341, 700] {
                let events: Vec<UsageEvent> = (0..length)
                    .map(|_| {
                        at += 1;
                        event(at, 1, "gpt", 200)
                    })
                    .collect();
                let days: Vec<RollupRow> = (0..length)
                    .map(|day| {
                        let day = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
                            + chrono::Days::new(day as u64 % 100);
                        rollup(&day.to_string(), 1, "gpt", 5, counts(1, 1, 1))
                    })
                    .collect();
                db.write_usage(&days, &events).await.unwrap();
                written += length;
                let (rows, first, last): (i64, i64, i64) = on_pool!(&db.writer, |pool| {
                    sqlx::query_as(
                        "SELECT COUNT(*), CAST(MIN(at) AS BIGINT), CAST(MAX(at) AS BIGINT)
                         FROM request_log",
                    )
                    .fetch_one(pool)
                    .await
                    .unwrap()
                });
                assert_eq!((rows, first, last), (written, 1, at), "after {length}");
                let requests: i64 = on_pool!(&db.writer, |pool| {
                    sqlx::query_scalar("SELECT CAST(SUM(requests) AS BIGINT) FROM usage_daily")
                        .fetch_one(pool)
                        .await
                        .unwrap()
                });
                assert_eq!(requests, written, "after {length}");
            }
        }
    }

    #[tokio::test]
    async fn a_failed_write_stores_nothing() {
        let (_dir, dbs) = seeded().await;
        for db in dbs {
            db.fail_log_inserts_when("NEW.request_id = 'boom'").await;
            let mut bad = event(1, 1, "gpt", 200);
            bad.request_id = "boom".into();
            let response = crate::db::StoredResponseRow {
                id: "resp_a".into(),
                key_id: 1,
                previous_response_id: None,
                created_at: 1,
                response: b"{}".to_vec(),
                turn: b"{}".to_vec(),
            };
            let result = db
                .write_batch(
                    &[rollup("2025-01-01", 1, "gpt", 0, counts(1, 1, 1))],
                    &[event(0, 1, "gpt", 200), bad],
                    StoredWrites {
                        kept: &[&response],
                        deleted: &[],
                    },
                )
                .await;
            assert!(result.is_err());
            let stored = [
                "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_daily",
                "SELECT CAST(COUNT(*) AS BIGINT) FROM request_log",
                "SELECT CAST(COUNT(*) AS BIGINT) FROM stored_responses",
            ];
            for sql in stored {
                assert_eq!(number(&db, sql).await, 0, "{sql}");
            }
            // The same batch without the failing row is stored whole.
            db.fail_log_inserts(false).await;
            db.write_batch(
                &[rollup("2025-01-01", 1, "gpt", 0, counts(1, 1, 1))],
                &[event(0, 1, "gpt", 200)],
                StoredWrites {
                    kept: &[&response],
                    deleted: &[],
                },
            )
            .await
            .unwrap();
            for sql in stored {
                assert_eq!(number(&db, sql).await, 1, "{sql}");
            }
        }
    }

    #[tokio::test]
    async fn usage_writes_do_not_touch_change_versions() {
        let (_dir, dbs) = seeded().await;
        for db in dbs {
            let sum = "SELECT CAST(SUM(version) AS BIGINT) FROM change_versions";
            let before = number(&db, sum).await;
            db.write_usage(
                &[rollup("2025-01-01", 1, "gpt", 0, counts(1, 1, 1))],
                &[event(0, 1, "gpt", 200)],
            )
            .await
            .unwrap();
            db.delete_log_before(i64::MAX, 10).await.unwrap();
            assert_eq!(before, number(&db, sum).await);
        }
    }
}

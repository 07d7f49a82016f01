//! Stored responses of the Responses API: written in the usage writer's batches, read by id
//! and key (one response, or the chain of `previous_response_id` links), deleted by the
//! retention task.

use sqlx::FromRow;

use super::{Db, DbError};

/// One stored response, as its callers prepared it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct StoredResponseRow {
    /// The response id, `resp_…`.
    pub id: String,
    /// The client key that created it: the only one that may read it.
    pub key_id: i64,
    /// The response this one continued, if any.
    pub previous_response_id: Option<String>,
    /// Unix milliseconds on the gateway's clock when it was kept.
    pub created_at: i64,
    /// The response object, as the client got it.
    pub response: Vec<u8>,
    /// `{"input": [items], "output": [items]}`: what a later turn prepends.
    pub turn: Vec<u8>,
}

impl StoredResponseRow {
    /// The bytes it holds in memory, near enough to bound a queue of them.
    pub fn size(&self) -> usize {
        self.id.len()
            + self.previous_response_id.as_ref().map_or(0, String::len)
            + self.response.len()
            + self.turn.len()
    }
}

/// One turn of a chain, newest first, with the stored bytes of its chain so far.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ChainLink {
    pub id: String,
    pub previous_response_id: Option<String>,
    pub created_at: i64,
    pub turn: Vec<u8>,
    /// The sum of the `turn` lengths from the first link to this one.
    pub total: i64,
}

/// What one batch of the usage writer does to stored responses: responses kept since the last
/// batch, and responses their keys deleted (by id and key).
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredWrites<'a> {
    pub kept: &'a [&'a StoredResponseRow],
    pub deleted: &'a [(&'a str, i64)],
}

/// Rows per INSERT statement.
pub(super) const INSERT_CHUNK: usize = 100;

impl StoredWrites<'_> {
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.deleted.is_empty()
    }
}

/// Writes `$stored` (a [`StoredWrites`]) through `$tx`, the batch's open transaction of either
/// backend. A response whose key no longer exists (it was deleted since) is not inserted, and
/// an id already stored keeps its first owner. A macro rather than a generic function: a
/// generic executor makes the usage writer's future not `Send`.
macro_rules! write_stored {
    ($stored:expr, $tx:expr) => {{
        let stored: &$crate::db::StoredWrites<'_> = $stored;
        for chunk in stored
            .kept
            .chunks($crate::db::stored_responses::INSERT_CHUNK)
        {
            // `column1`… are the names both backends give the columns of a VALUES list.
            let mut sql = sqlx::QueryBuilder::new(
                "INSERT INTO stored_responses (id, key_id, previous_response_id, created_at,
                     response, turn)
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6 FROM (",
            );
            sql.push_values(chunk, |mut row, r| {
                row.push_bind(r.id.as_str())
                    .push_bind(r.key_id)
                    .push_bind(r.previous_response_id.as_deref())
                    .push_bind(r.created_at)
                    .push_bind(r.response.as_slice())
                    .push_bind(r.turn.as_slice());
            });
            sql.push(
                ") AS v WHERE EXISTS (SELECT 1 FROM client_keys k WHERE k.id = v.column2)
                 ON CONFLICT (id) DO NOTHING",
            );
            sql.build().persistent(false).execute(&mut *$tx).await?;
        }
        for (id, key_id) in stored.deleted {
            sqlx::query("DELETE FROM stored_responses WHERE id = $1 AND key_id = $2")
                .bind(*id)
                .bind(*key_id)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(super) use write_stored;

impl Db {
    /// The response stored as `id` by `key_id`, whatever its age.
    pub async fn stored_response(
        &self,
        id: &str,
        key_id: i64,
    ) -> Result<Option<StoredResponseRow>, DbError> {
        Ok(on_pool!(&self.reader, |pool| sqlx::query_as(
            "SELECT id, key_id, previous_response_id, created_at, response, turn
             FROM stored_responses WHERE id = $1 AND key_id = $2",
        )
        .bind(id)
        .bind(key_id)
        .fetch_optional(pool)
        .await?))
    }

    /// The chain of `key_id`'s stored responses that starts at `id` and follows
    /// `previous_response_id` back, newest first, in one query: at most `max_links` links,
    /// and it stops after the link whose stored turns pass `max_bytes` in total. It ends early
    /// at a link that is not stored (deleted, or purged); the caller sees that in the last
    /// link's `previous_response_id`.
    pub async fn stored_chain(
        &self,
        id: &str,
        key_id: i64,
        max_links: u32,
        max_bytes: u64,
    ) -> Result<Vec<ChainLink>, DbError> {
        // The depth and the running total are BIGINT from the first link on: PostgreSQL types a
        // recursive query's columns by its first part, where `1` and `length()` are INTEGER.
        Ok(on_pool!(&self.reader, |pool| sqlx::query_as(
            "WITH RECURSIVE chain (id, previous_response_id, created_at, turn, depth, total) AS (
                 SELECT id, previous_response_id, created_at, turn, CAST(1 AS BIGINT),
                        CAST(length(turn) AS BIGINT)
                 FROM stored_responses WHERE id = $1 AND key_id = $2
                 UNION ALL
                 SELECT s.id, s.previous_response_id, s.created_at, s.turn, chain.depth + 1,
                        chain.total + length(s.turn)
                 FROM chain JOIN stored_responses s ON s.id = chain.previous_response_id
                 WHERE s.key_id = $2 AND chain.depth < $3 AND chain.total <= $4
             )
             SELECT id, previous_response_id, created_at, turn, total FROM chain ORDER BY depth",
        )
        .bind(id)
        .bind(key_id)
        .bind(i64::from(max_links))
        .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?))
    }

    /// Deletes up to `limit` stored responses kept before `before_ms`, oldest first; returns
    /// how many went.
    pub async fn delete_stored_responses_before(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<u64, DbError> {
        Ok(on_pool!(&self.writer, |pool| {
            sqlx::query(
            "DELETE FROM stored_responses WHERE id IN (
                 SELECT id FROM stored_responses WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .execute(pool)
        .await?
        .rows_affected()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::{both_dbs, insert_test_key as key};

    fn row(id: &str, key_id: i64, previous: Option<&str>, created_at: i64) -> StoredResponseRow {
        StoredResponseRow {
            id: id.into(),
            key_id,
            previous_response_id: previous.map(str::to_owned),
            created_at,
            response: format!("{{\"id\":\"{id}\"}}").into_bytes(),
            turn: format!("{{\"input\":[],\"output\":[\"{id}\"]}}").into_bytes(),
        }
    }

    async fn keep(db: &Db, rows: &[StoredResponseRow]) {
        let kept: Vec<&StoredResponseRow> = rows.iter().collect();
        db.write_batch::<crate::db::NewLogRow<'_>>(
            &[],
            &[],
            StoredWrites {
                kept: &kept,
                deleted: &[],
            },
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_response_is_read_back_only_with_its_key() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let (mine, theirs) = (key(&db, "mine").await, key(&db, "theirs").await);
            keep(&db, &[row("resp_a", mine, None, 10)]).await;
            let read = db.stored_response("resp_a", mine).await.unwrap().unwrap();
            assert_eq!(read, row("resp_a", mine, None, 10));
            assert_eq!(db.stored_response("resp_a", theirs).await.unwrap(), None);
            assert_eq!(db.stored_response("resp_b", mine).await.unwrap(), None);
            // The first owner of an id keeps it.
            keep(&db, &[row("resp_a", theirs, None, 11)]).await;
            assert_eq!(db.stored_response("resp_a", theirs).await.unwrap(), None);
            // Within one batch too.
            keep(
                &db,
                &[
                    row("resp_c", mine, None, 12),
                    row("resp_c", theirs, None, 12),
                ],
            )
            .await;
            assert!(db.stored_response("resp_c", mine).await.unwrap().is_some());
            assert_eq!(db.stored_response("resp_c", theirs).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn a_response_of_a_deleted_key_is_neither_kept_nor_left_behind() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let gone = key(&db, "gone").await;
            keep(&db, &[row("resp_a", gone, None, 10)]).await;
            // Deleting the key (as the admin API does) takes its responses with it.
            on_pool!(&db.writer, |pool| sqlx::query(
                "DELETE FROM client_keys WHERE id = $1"
            )
            .bind(gone)
            .execute(pool)
            .await
            .map(|_| ()))
            .unwrap();
            let count: i64 = on_pool!(&db.writer, |pool| sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM stored_responses"
            )
            .fetch_one(pool)
            .await
            .unwrap());
            assert_eq!(count, 0, "the key's deletion took its responses");
            // A batch that still carries one of its responses skips it.
            keep(&db, &[row("resp_b", gone, None, 10)]).await;
            let next = key(&db, "next").await;
            assert_eq!(db.stored_response("resp_b", gone).await.unwrap(), None);
            assert_eq!(db.stored_response("resp_b", next).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn a_chain_follows_the_links_of_one_key_within_its_bounds() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let (mine, theirs) = (key(&db, "mine").await, key(&db, "theirs").await);
            keep(
                &db,
                &[
                    row("r1", mine, None, 1),
                    row("r2", mine, Some("r1"), 2),
                    row("r3", mine, Some("r2"), 3),
                    row("x1", theirs, None, 1),
                    row("x2", mine, Some("x1"), 2),
                ],
            )
            .await;
            let ids = |links: &[ChainLink]| -> Vec<String> {
                links.iter().map(|link| link.id.clone()).collect()
            };
            let chain = db.stored_chain("r3", mine, 10, 1 << 20).await.unwrap();
            assert_eq!(ids(&chain), ["r3", "r2", "r1"]);
            let per_turn = i64::try_from(chain[0].turn.len()).unwrap();
            assert_eq!(chain[2].total, 3 * per_turn);
            // At most `max_links`, and no further than past `max_bytes`.
            assert_eq!(
                ids(&db.stored_chain("r3", mine, 2, 1 << 20).await.unwrap()),
                ["r3", "r2"]
            );
            assert_eq!(
                ids(&db.stored_chain("r3", mine, 10, 1).await.unwrap()),
                ["r3"]
            );
            // Another key's link ends the chain, as a missing one does.
            let chain = db.stored_chain("x2", mine, 10, 1 << 20).await.unwrap();
            assert_eq!(ids(&chain), ["x2"]);
            assert_eq!(chain[0].previous_response_id.as_deref(), Some("x1"));
            assert!(
                db.stored_chain("r3", theirs, 10, 1 << 20)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[tokio::test]
    async fn deletions_and_retention_remove_rows() {
        let (_dir, dbs) = both_dbs().await;
        for db in dbs {
            let mine = key(&db, "mine").await;
            keep(
                &db,
                &[
                    row("r1", mine, None, 1),
                    row("r2", mine, None, 2),
                    row("r3", mine, None, 3),
                ],
            )
            .await;
            db.write_batch::<crate::db::NewLogRow<'_>>(
                &[],
                &[],
                StoredWrites {
                    kept: &[],
                    deleted: &[("r3", mine), ("r2", mine + 1)],
                },
            )
            .await
            .unwrap();
            assert_eq!(db.stored_response("r3", mine).await.unwrap(), None);
            assert!(db.stored_response("r2", mine).await.unwrap().is_some());
            assert_eq!(db.delete_stored_responses_before(3, 1).await.unwrap(), 1);
            assert_eq!(db.delete_stored_responses_before(3, 10).await.unwrap(), 1);
            assert_eq!(db.delete_stored_responses_before(3, 10).await.unwrap(), 0);
        }
    }
}

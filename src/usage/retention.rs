//! Deleting request log rows and stored responses older than their retentions, a small batch at
//! a time so no write lock is held for long. Daily rollups are kept.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::db::{Db, DbError};

/// The default of `LLMGATE_LOG_RETENTION`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The default of `LLMGATE_RESPONSES_RETENTION`, as long as OpenAI keeps stored responses.
pub const DEFAULT_RESPONSES_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Request log rows (`LLMGATE_LOG_RETENTION`).
    pub log: Duration,
    /// Stored responses (`LLMGATE_RESPONSES_RETENTION`).
    pub responses: Duration,
}
/// Rows per DELETE statement.
const BATCH: u32 = 1000;
/// Pause between batches, leaving the writer connection to the usage flushes.
const PAUSE: Duration = Duration::from_millis(50);
/// How often old rows are looked for.
const EVERY: Duration = Duration::from_secs(600);

/// What the retention deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    /// Request log rows, by when the request finished.
    RequestLog,
    /// Stored responses, by when they were stored (on the gateway's clock); reads already
    /// answer 404 for them.
    StoredResponses,
}

impl Expiring {
    fn rows(self) -> &'static str {
        match self {
            Self::RequestLog => "request log rows",
            Self::StoredResponses => "stored responses",
        }
    }
}

/// Deletes every row of `expiring` older than `retention` (relative to `now_ms`), in batches;
/// returns how many went. Stops early, between batches, when `stop` is cancelled.
pub async fn purge(
    db: &Db,
    expiring: Expiring,
    retention: Duration,
    now_ms: i64,
    stop: &CancellationToken,
) -> Result<u64, DbError> {
    let cutoff = cutoff(now_ms, retention);
    let mut deleted = 0;
    loop {
        let batch = match expiring {
            Expiring::RequestLog => db.delete_log_before(cutoff, BATCH).await?,
            Expiring::StoredResponses => db.delete_stored_responses_before(cutoff, BATCH).await?,
        };
        deleted += batch;
        if batch < u64::from(BATCH) || stop.is_cancelled() {
            return Ok(deleted);
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(deleted),
            () = tokio::time::sleep(PAUSE) => {}
        }
    }
}

/// The oldest time still kept.
pub fn cutoff(now_ms: i64, retention: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
}

/// Purges at start and then every ten minutes, until `stop`.
pub async fn run(db: Db, retention: Retention, clock: Clock, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now_ms = clock.now().timestamp_millis();
        for (expiring, kept) in [
            (Expiring::RequestLog, retention.log),
            (Expiring::StoredResponses, retention.responses),
        ] {
            let rows = expiring.rows();
            match purge(&db, expiring, kept, now_ms, &stop).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, rows, "deleted rows past their retention"),
                Err(error) => {
                    tracing::warn!(%error, rows, "cannot delete rows past their retention; will retry");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;
    use crate::usage::{Usage, UsageEvent};

    #[tokio::test]
    async fn rows_past_the_retention_go_in_batches_and_rollups_stay() {
        let (_dir, db) = temp_db().await;
        let day = 86_400_000;
        let now = 100 * day;
        let events: Vec<UsageEvent> = (0..2500)
            .map(|i| UsageEvent {
                // 2000 rows 40 days old, 500 from today.
                at_ms: if i < 2000 {
                    now - 40 * day + i
                } else {
                    now - i
                },
                request_id: i.to_string(),
                key_id: 1,
                model: "m".into(),
                model_configured: true,
                endpoint: "embeddings",
                stream: false,
                provider: None,
                route_id: None,
                account_id: None,
                status: 200,
                attempts: 1,
                latency_ms: 1,
                ttfb_ms: None,
                usage: Usage::default(),
                cost: crate::pricing::Nanodollars::default(),
            })
            .collect();
        let rollup = crate::db::RollupRow {
            day: chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap(),
            key_id: 1,
            model: "m".into(),
            account_id: 0,
            counts: crate::db::UsageCounts {
                requests: 1,
                ..Default::default()
            },
        };
        db.write_usage(&[rollup], &events).await.unwrap();
        let stop = CancellationToken::new();
        let deleted = purge(&db, Expiring::RequestLog, DEFAULT_RETENTION, now, &stop)
            .await
            .unwrap();
        assert_eq!(deleted, 2000);
        assert_eq!(
            purge(&db, Expiring::RequestLog, DEFAULT_RETENTION, now, &stop)
                .await
                .unwrap(),
            0
        );
        let totals = db
            .usage_totals(&crate::db::UsageQuery::default())
            .await
            .unwrap();
        assert_eq!(totals[0].counts.requests, 1);
    }
}

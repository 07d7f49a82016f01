//! Recording usage events in memory on the request path, and writing them in batches.
//!
//! `record` takes one uncontended lock for a few dozen nanoseconds: each thread has its own
//! shard (rollup counters and a bounded share of log rows), and the writer swaps shards out
//! whole. Counters are unbounded in number of updates (one entry per day × key × model ×
//! account), so they are never dropped; log rows beyond the queue's capacity are dropped and
//! counted. Stored responses (and their deletions) are written in the same transaction; they
//! stay readable in memory until it commits (see `responses.rs`).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::NaiveDate;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::UsageEvent;
use super::responses::{DEFAULT_PENDING_BYTES, PendingResponse, PendingResponses, Unkept};
use crate::db::{
    AsLogRow, Db, DbError, NewLogRow, RollupRow, StoredResponseRow, StoredWrites, UsageCounts,
};
use crate::telemetry::metrics::Metrics;

impl AsLogRow for UsageEvent {
    fn log_row(&self) -> NewLogRow<'_> {
        NewLogRow {
            at_ms: self.at_ms,
            request_id: &self.request_id,
            key_id: self.key_id,
            model: &self.model,
            endpoint: self.endpoint,
            stream: self.stream,
            provider: self.provider.as_deref(),
            route_id: self.route_id,
            account_id: self.account_id,
            status: self.status,
            attempts: self.attempts,
            latency_ms: self.latency_ms,
            ttfb_ms: self.ttfb_ms,
            prompt_tokens: self.usage.prompt_tokens,
            completion_tokens: self.usage.completion_tokens,
            cached_tokens: self.usage.cached_tokens,
            reasoning_tokens: self.usage.reasoning_tokens,
            estimated: self.usage.estimated,
            cost_nanos: self.cost.0,
        }
    }
}

/// Shards of pending usage; a power of two. More than the cores of any machine this runs on
/// keeps threads from sharing one.
const SHARDS: usize = 16;
/// Log rows per block; blocks never move, so a growing queue never copies rows under a lock.
const BLOCK: usize = 256;
/// How often a failing final flush is retried at shutdown before the data is given up.
const FINAL_ATTEMPTS: u32 = 5;

/// The default capacity of the log row queue (`LLMGATE_USAGE_QUEUE`).
pub const DEFAULT_QUEUE: usize = 65_536;
/// Log rows that wake the writer before its next tick (or half the queue, if that is less).
/// Batches this large cost the writer little more per row than a whole second's worth, and at
/// tens of thousands of requests a second waiting for the tick held 15–20 thousand rows, and
/// the batch being written beside them, in memory (peak RSS; see OPTIMIZATION.md).
const WAKE_ROWS: usize = 4096;

/// Records usage events; cheap to clone, never blocks on I/O.
#[derive(Clone, Debug)]
pub struct UsageRecorder {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    shards: Box<[Mutex<Pending>]>,
    /// Log rows waiting in the shards (not counting rows kept after a failed flush).
    queued: AtomicUsize,
    capacity: usize,
    /// Queued log rows at which `record` wakes the writer.
    wake_at: usize,
    dropped_rows: AtomicU64,
    /// Wakes the writer early when `wake_at` rows are queued.
    wake: Notify,
    /// Stored responses (and their deletions) waiting for the next batch.
    responses: PendingResponses,
}

/// Rollup counters by UTC day (days since the Unix epoch), key and account, then by model.
type Rollups = HashMap<(i64, i64, i64), Vec<(Box<str>, Counts)>>;

#[derive(Debug, Default)]
struct Pending {
    rollups: Rollups,
    rows: Vec<Vec<UsageEvent>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    requests: u64,
    errors: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cached_tokens: u64,
    reasoning_tokens: u64,
    estimated_requests: u64,
    cost_nanos: u64,
    estimated_cost_nanos: u64,
}

impl Counts {
    fn of(event: &UsageEvent) -> Self {
        Self {
            requests: 1,
            errors: u64::from(event.is_error()),
            prompt_tokens: event.usage.prompt_tokens,
            completion_tokens: event.usage.completion_tokens,
            cached_tokens: event.usage.cached_tokens,
            reasoning_tokens: event.usage.reasoning_tokens,
            estimated_requests: u64::from(event.usage.estimated),
            cost_nanos: event.cost.0,
            estimated_cost_nanos: if event.usage.estimated {
                event.cost.0
            } else {
                0
            },
        }
    }

    fn add(&mut self, other: &Self) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
        self.estimated_requests = self
            .estimated_requests
            .saturating_add(other.estimated_requests);
        self.cost_nanos = self.cost_nanos.saturating_add(other.cost_nanos);
        self.estimated_cost_nanos = self
            .estimated_cost_nanos
            .saturating_add(other.estimated_cost_nanos);
    }

    fn to_row(self) -> UsageCounts {
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        UsageCounts {
            requests: int(self.requests),
            errors: int(self.errors),
            prompt_tokens: int(self.prompt_tokens),
            completion_tokens: int(self.completion_tokens),
            cached_tokens: int(self.cached_tokens),
            reasoning_tokens: int(self.reasoning_tokens),
            estimated_requests: int(self.estimated_requests),
            cost_nanos: int(self.cost_nanos),
            estimated_cost_nanos: int(self.estimated_cost_nanos),
        }
    }
}

fn add_rollup(
    rollups: &mut Rollups,
    day: i64,
    key_id: i64,
    account_id: i64,
    model: &str,
    counts: &Counts,
) {
    let models = rollups.entry((day, key_id, account_id)).or_default();
    match models.iter_mut().find(|(name, _)| &**name == model) {
        Some((_, existing)) => existing.add(counts),
        None => models.push((model.into(), *counts)),
    }
}

fn merge(into: &mut Rollups, from: Rollups) {
    for ((day, key_id, account_id), models) in from {
        for (model, counts) in models {
            add_rollup(into, day, key_id, account_id, &model, &counts);
        }
    }
}

/// Locks a shard. A panic while holding it cannot leave the counters half-updated in a way that
/// matters more than losing them, so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's shard: assigned round-robin on first use, so worker threads spread out.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|shard| {
        let mut index = shard.get();
        if index == usize::MAX {
            index = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            shard.set(index);
        }
        index
    })
}

const MS_PER_DAY: i64 = 86_400_000;

impl UsageRecorder {
    /// A recorder whose log row queue holds at most `capacity` rows between flushes.
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                queued: AtomicUsize::new(0),
                capacity,
                wake_at: capacity.div_ceil(2).min(WAKE_ROWS),
                dropped_rows: AtomicU64::new(0),
                wake: Notify::new(),
                responses: PendingResponses::new(DEFAULT_PENDING_BYTES),
            }),
        }
    }

    /// Keeps a stored response until the next batch writes it; reads find it here
    /// ([`pending_response`](Self::pending_response)) until then. Never blocks on I/O. Refused
    /// when the responses waiting hold the whole budget (the database is slow or down) or one
    /// with the same id waits; the caller says so in the log.
    pub fn keep_response(&self, row: StoredResponseRow) -> Result<(), Unkept> {
        if self.shared.responses.keep(row)? {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Deletes a stored response of `key_id`: reads find it gone at once, the next batch
    /// deletes its row.
    pub fn delete_response(&self, id: &str, key_id: i64) {
        self.shared.responses.delete(id, key_id);
    }

    /// The stored response (or deletion) `id` waiting for the next batch, if any.
    pub fn pending_response(&self, id: &str) -> Option<PendingResponse> {
        self.shared.responses.get(id)
    }

    /// Stored responses not kept because too many were waiting to be written.
    pub fn unstored_responses(&self) -> u64 {
        self.shared.responses.dropped()
    }

    /// Records one finished request: adds it to the day's counters and queues its log row (or,
    /// when the queue is full, drops the row and counts it). Never blocks on I/O or awaits.
    pub fn record(&self, event: UsageEvent) {
        let shared = &*self.shared;
        let queued = shared.queued.fetch_add(1, Ordering::Relaxed);
        let keep_row = queued < shared.capacity;
        if !keep_row {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
            shared.dropped_rows.fetch_add(1, Ordering::Relaxed);
        }
        let day = event.at_ms.div_euclid(MS_PER_DAY);
        let counts = Counts::of(&event);
        {
            let mut pending = lock(&shared.shards[shard_index()]);
            add_rollup(
                &mut pending.rollups,
                day,
                event.key_id,
                event.account_id.unwrap_or(0),
                event.rollup_model(),
                &counts,
            );
            if keep_row {
                match pending.rows.last_mut() {
                    Some(block) if block.len() < BLOCK => block.push(event),
                    _ => {
                        let mut block = Vec::with_capacity(BLOCK);
                        block.push(event);
                        pending.rows.push(block);
                    }
                }
            }
        }
        if keep_row && queued + 1 == shared.wake_at {
            shared.wake.notify_one();
        }
    }

    /// Log rows dropped because the queue was full (or kept too long by failing flushes).
    pub fn dropped_rows(&self) -> u64 {
        self.shared.dropped_rows.load(Ordering::Relaxed)
    }

    /// Log rows waiting for the next flush.
    pub fn queued_rows(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Takes everything recorded so far out of the shards, and appends its log rows to `rows`.
    ///
    /// The blocks are taken first and `rows` grows once to hold them all: appending block by
    /// block to a growing vector reallocated (and copied) it about log₂(rows / 256) times per
    /// flush, into freshly faulted pages (OPTIMIZATION.md).
    fn take_into(&self, rows: &mut Vec<UsageEvent>) -> Rollups {
        let mut rollups = Rollups::new();
        let mut blocks = Vec::new();
        for shard in &self.shared.shards {
            let pending = std::mem::take(&mut *lock(shard));
            if rollups.is_empty() {
                rollups = pending.rollups;
            } else {
                merge(&mut rollups, pending.rollups);
            }
            blocks.extend(pending.rows);
        }
        let taken = blocks.iter().map(Vec::len).sum();
        rows.reserve_exact(taken);
        for block in blocks {
            rows.extend(block);
        }
        self.shared.queued.fetch_sub(taken, Ordering::Relaxed);
        rollups
    }
}

/// What one flush wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Rollup rows upserted.
    pub rollups: usize,
    /// Log rows inserted.
    pub rows: usize,
    /// Stored responses written or deleted.
    pub responses: usize,
}

/// Writes what a [`UsageRecorder`] gathered: one transaction per flush. Clones share the data
/// not yet written; flushes never overlap.
#[derive(Clone, Debug)]
pub struct UsageWriter {
    recorder: UsageRecorder,
    db: Db,
    /// What earlier flushes could not write, kept for the next one.
    unwritten: Arc<tokio::sync::Mutex<Unwritten>>,
    /// Where flush durations, sizes and failures are reported, if anywhere.
    metrics: Option<Metrics>,
}

#[derive(Debug, Default)]
struct Unwritten {
    rollups: Rollups,
    rows: Vec<UsageEvent>,
}

impl UsageWriter {
    pub fn new(recorder: &UsageRecorder, db: Db) -> Self {
        Self {
            recorder: recorder.clone(),
            db,
            unwritten: Arc::default(),
            metrics: None,
        }
    }

    /// Reports each flush that writes something to `metrics`: its duration, the rows it wrote
    /// per table, and failures.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Writes everything recorded so far, in one transaction. On failure the data stays in
    /// memory for the next flush: counters are never lost; log rows beyond the queue's capacity
    /// are dropped (and counted) rather than kept without bound.
    pub async fn flush_now(&self) -> Result<FlushReport, DbError> {
        let mut unwritten = self.unwritten.lock().await;
        let unwritten = &mut *unwritten;
        let rollups = self.recorder.take_into(&mut unwritten.rows);
        if unwritten.rollups.is_empty() {
            unwritten.rollups = rollups;
        } else {
            merge(&mut unwritten.rollups, rollups);
        }
        // Stored responses stay in the recorder until written: reads look there first.
        let responses = self.recorder.shared.responses.batch();
        if unwritten.rollups.is_empty() && unwritten.rows.is_empty() && responses.is_empty() {
            return Ok(FlushReport::default());
        }
        // Ids follow time, as near as the recording threads allow. One thread's rows arrive in
        // order already, and a stable sort of them would still allocate its scratch space.
        if !unwritten.rows.is_sorted_by_key(|row| row.at_ms) {
            unwritten.rows.sort_by_key(|row| row.at_ms);
        }
        let rollups = rollup_rows(&unwritten.rollups);
        let started = std::time::Instant::now();
        let (kept, deleted) = responses.parts();
        let stored = StoredWrites {
            kept: &kept,
            deleted: &deleted,
        };
        let written = self.db.write_batch(&rollups, &unwritten.rows, stored).await;
        if let Some(metrics) = &self.metrics {
            metrics
                .usage_flush_duration
                .observe(started.elapsed().as_secs_f64());
            match &written {
                Ok(()) => {
                    for (table, rows) in [("rollup", rollups.len()), ("log", unwritten.rows.len())]
                    {
                        metrics
                            .usage_flush_rows
                            .with_label_values(&[table])
                            .observe(rows as f64);
                    }
                }
                Err(_) => metrics.usage_flush_errors.inc(),
            }
        }
        match written {
            Ok(()) => {
                let report = FlushReport {
                    rollups: rollups.len(),
                    rows: unwritten.rows.len(),
                    responses: responses.len(),
                };
                self.recorder.shared.responses.written(&responses);
                unwritten.rollups.clear();
                // The next flush sizes its own vector once; keeping this one would hold a
                // burst's memory, and growing it again from a small one would copy it.
                unwritten.rows = Vec::new();
                Ok(report)
            }
            Err(error) => {
                let capacity = self.recorder.shared.capacity;
                if unwritten.rows.len() > capacity {
                    let excess = unwritten.rows.len() - capacity;
                    unwritten.rows.drain(..excess);
                    self.recorder
                        .shared
                        .dropped_rows
                        .fetch_add(excess as u64, Ordering::Relaxed);
                }
                Err(error)
            }
        }
    }

    /// Flushes every `every` (and early when a few thousand rows, or half the queue, wait) until
    /// `stop`, then flushes a last time. Cancel `stop` only once requests have stopped being
    /// recorded.
    pub async fn run(self, every: Duration, stop: CancellationToken) {
        crate::db::write_statement_texts();
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
                () = self.recorder.shared.wake.notified() => {}
            }
            if let Err(error) = self.flush_now().await {
                tracing::warn!(%error, "cannot write usage; keeping it for the next flush");
            }
        }
        for attempt in 1..=FINAL_ATTEMPTS {
            match self.flush_now().await {
                Ok(report) => {
                    tracing::debug!(?report, "wrote the last usage before stopping");
                    return;
                }
                Err(error) if attempt < FINAL_ATTEMPTS => {
                    tracing::warn!(%error, attempt, "cannot write the last usage; retrying");
                    tokio::time::sleep(Duration::from_millis(100) * 2u32.pow(attempt)).await;
                }
                Err(error) => {
                    let unwritten = self.unwritten.lock().await;
                    tracing::error!(
                        %error,
                        rollups = unwritten.rollups.len(),
                        rows = unwritten.rows.len(),
                        stored_responses = self.recorder.shared.responses.len(),
                        "cannot write the last usage and stored responses; they are lost"
                    );
                }
            }
        }
    }
}

fn rollup_rows(rollups: &Rollups) -> Vec<RollupRow> {
    let mut rows = Vec::with_capacity(rollups.len());
    for (&(day, key_id, account_id), models) in rollups {
        let Some(day) = day_of(day) else {
            continue;
        };
        for (model, counts) in models {
            rows.push(RollupRow {
                day,
                key_id,
                model: model.to_string(),
                account_id,
                counts: counts.to_row(),
            });
        }
    }
    rows
}

/// The date `days` after 1970-01-01.
fn day_of(days: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::TimeDelta::try_days(days)?)
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "tests record from tasks and threads of their own"
)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;
    use crate::db::{UsageGroup, UsageQuery};
    use crate::usage::Usage;

    /// 2025-03-04T05:06:07Z.
    const AT: i64 = 1_741_064_767_000;

    fn event(key_id: i64, model: &str, account_id: Option<i64>, status: u16) -> UsageEvent {
        UsageEvent {
            at_ms: AT,
            request_id: "r".into(),
            key_id,
            model: model.into(),
            model_configured: true,
            endpoint: "chat_completions",
            stream: false,
            provider: Some("p".into()),
            route_id: Some(1),
            account_id,
            status,
            attempts: 1,
            latency_ms: 5,
            ttfb_ms: None,
            usage: Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7,
                cached_tokens: 1,
                cache_creation_tokens: 0,
                reasoning_tokens: 2,
                estimated: status == 201,
            },
            cost: crate::pricing::Nanodollars(1000 + u64::from(status)),
        }
    }

    async fn totals(db: &Db) -> Vec<crate::db::UsageTotals> {
        db.usage_totals(&UsageQuery {
            group_by: vec![
                UsageGroup::Day,
                UsageGroup::Key,
                UsageGroup::Model,
                UsageGroup::Account,
            ],
            ..UsageQuery::default()
        })
        .await
        .unwrap()
    }

    async fn log_rows(db: &Db) -> i64 {
        let page = db
            .log_page(&crate::db::LogQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut count = page.rows.len() as i64;
        let mut cursor = page.next_cursor;
        while let Some(before) = cursor {
            let page = db
                .log_page(&crate::db::LogQuery {
                    limit: 1000,
                    before: Some(before),
                    ..Default::default()
                })
                .await
                .unwrap();
            count += page.rows.len() as i64;
            cursor = page.next_cursor;
        }
        count
    }

    /// Rows recorded out of time order, over several blocks and flushes, are all written, with
    /// ids that follow time within each flush.
    #[tokio::test]
    async fn log_rows_are_written_whole_with_ids_in_time_order() {
        let (_dir, db) = temp_db().await;
        let recorder = UsageRecorder::new(10_000);
        let writer = UsageWriter::new(&recorder, db.clone());
        let mut expected = 0;
        for (flush, rows) in [(0, 3), (1, BLOCK * 2 + 5), (2, 1)] {
            for i in 0..rows {
                let mut late_first = event(1, "gpt", None, 200);
                late_first.at_ms = AT + flush * 100_000 + (rows - i) as i64;
                recorder.record(late_first);
            }
            let report = writer.flush_now().await.unwrap();
            assert_eq!(report.rows, rows);
            assert_eq!(recorder.queued_rows(), 0);
            expected += rows;
        }
        let mut rows = Vec::new();
        let mut before = None;
        loop {
            let page = db
                .log_page(&crate::db::LogQuery {
                    limit: 1000,
                    before,
                    ..Default::default()
                })
                .await
                .unwrap();
            rows.extend(page.rows.iter().map(|row| (row.id, row.at)));
            match page.next_cursor {
                Some(cursor) => before = Some(cursor),
                None => break,
            }
        }
        assert_eq!(rows.len(), expected);
        rows.sort_unstable();
        assert!(
            rows.windows(2).all(|pair| pair[0].1 < pair[1].1),
            "ids do not follow time"
        );
    }

    #[tokio::test]
    async fn events_roll_up_by_day_key_model_and_account() {
        let (_dir, db) = temp_db().await;
        let recorder = UsageRecorder::new(100);
        let writer = UsageWriter::new(&recorder, db.clone());
        recorder.record(event(1, "gpt", Some(5), 200));
        recorder.record(event(1, "gpt", Some(5), 500));
        recorder.record(event(1, "gpt", None, 201));
        recorder.record(event(2, "emb", None, 200));
        let mut next_day = event(2, "emb", None, 200);
        next_day.at_ms += MS_PER_DAY;
        recorder.record(next_day);
        assert_eq!(recorder.queued_rows(), 5);
        let report = writer.flush_now().await.unwrap();
        assert_eq!(
            report,
            FlushReport {
                rollups: 4,
                rows: 5,
                responses: 0
            }
        );
        assert_eq!(recorder.queued_rows(), 0);

        let rows = totals(&db).await;
        let summary: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.day.clone().unwrap(),
                    r.key_id.unwrap(),
                    r.model.clone().unwrap(),
                    r.account_id,
                    r.counts.requests,
                    r.counts.errors,
                    r.counts.prompt_tokens,
                    r.counts.estimated_requests,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("2025-03-04".into(), 1, "gpt".into(), None, 1, 0, 3, 1),
                ("2025-03-04".into(), 1, "gpt".into(), Some(5), 2, 1, 6, 0),
                ("2025-03-04".into(), 2, "emb".into(), None, 1, 0, 3, 0),
                ("2025-03-05".into(), 2, "emb".into(), None, 1, 0, 3, 0),
            ]
        );
        let gpt = &rows[1].counts;
        assert_eq!(
            (
                gpt.completion_tokens,
                gpt.cached_tokens,
                gpt.reasoning_tokens
            ),
            (8, 2, 4)
        );
        // Costs add up exactly; the estimated request's is also counted as estimated.
        assert_eq!((gpt.cost_nanos, gpt.estimated_cost_nanos), (1200 + 1500, 0));
        let estimated = &rows[0].counts;
        assert_eq!(
            (estimated.cost_nanos, estimated.estimated_cost_nanos),
            (1201, 1201)
        );
        assert_eq!(log_rows(&db).await, 5);
        // Nothing new: nothing written.
        assert_eq!(writer.flush_now().await.unwrap(), FlushReport::default());
    }

    #[tokio::test]
    async fn counters_survive_a_burst_from_many_tasks_and_overflow_is_counted() {
        let (_dir, db) = temp_db().await;
        let capacity = 1000;
        let recorder = UsageRecorder::new(capacity);
        let writer = UsageWriter::new(&recorder, db.clone());
        let tasks = 64;
        let per_task = 500;
        let mut handles = Vec::new();
        for task in 0..tasks {
            let recorder = recorder.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..per_task {
                    recorder.record(event(1 + (task % 3), "gpt", Some(i % 2), 200));
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        let total = (tasks * per_task) as u64;
        assert_eq!(recorder.dropped_rows(), total - capacity as u64);
        writer.flush_now().await.unwrap();
        let requests: i64 = totals(&db).await.iter().map(|r| r.counts.requests).sum();
        assert_eq!(requests as u64, total);
        let prompt: i64 = totals(&db)
            .await
            .iter()
            .map(|r| r.counts.prompt_tokens)
            .sum();
        assert_eq!(prompt as u64, total * 3);
        assert_eq!(log_rows(&db).await, capacity as i64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn recording_on_many_threads_while_flushing_loses_nothing() {
        let (_dir, db) = temp_db().await;
        let recorder = UsageRecorder::new(usize::MAX);
        let writer = UsageWriter::new(&recorder, db.clone());
        let flushing = {
            let writer = writer.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    writer.flush_now().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let recorder = recorder.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        recorder.record(event(t, "gpt", None, 200));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        flushing.await.unwrap();
        writer.flush_now().await.unwrap();
        let requests: i64 = totals(&db).await.iter().map(|r| r.counts.requests).sum();
        assert_eq!(requests, 16_000);
        assert_eq!(log_rows(&db).await, 16_000);
        assert_eq!(recorder.dropped_rows(), 0);
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_everything_for_the_next() {
        let (_dir, db) = temp_db().await;
        let recorder = UsageRecorder::new(3);
        let writer = UsageWriter::new(&recorder, db.clone());
        db.fail_log_inserts(true).await;
        recorder.record(event(1, "gpt", None, 200));
        recorder.record(event(1, "gpt", None, 200));
        assert!(writer.flush_now().await.is_err());
        // The transaction wrote nothing, not even the counters.
        assert!(totals(&db).await.is_empty());
        // More arrives while the database is down; rows beyond the capacity are dropped.
        recorder.record(event(1, "gpt", None, 200));
        recorder.record(event(1, "gpt", None, 200));
        assert!(writer.flush_now().await.is_err());
        assert_eq!(recorder.dropped_rows(), 1);
        db.fail_log_inserts(false).await;
        assert_eq!(
            writer.flush_now().await.unwrap(),
            FlushReport {
                rollups: 1,
                rows: 3,
                responses: 0
            }
        );
        let rows = totals(&db).await;
        assert_eq!(rows[0].counts.requests, 4);
        assert_eq!(log_rows(&db).await, 3);
    }

    #[tokio::test]
    async fn flushes_report_their_duration_rows_and_failures() {
        let (_dir, db) = temp_db().await;
        let metrics = Metrics::new().unwrap();
        let recorder = UsageRecorder::new(100);
        let writer = UsageWriter::new(&recorder, db.clone()).with_metrics(metrics.clone());
        // Nothing to write: nothing observed.
        writer.flush_now().await.unwrap();
        assert_eq!(metrics.usage_flush_duration.get_sample_count(), 0);

        recorder.record(event(1, "gpt", None, 200));
        recorder.record(event(1, "gpt", None, 200));
        recorder.record(event(2, "gpt", None, 200));
        writer.flush_now().await.unwrap();
        let rows = |table: &str| {
            let histogram = metrics.usage_flush_rows.with_label_values(&[table]);
            (histogram.get_sample_count(), histogram.get_sample_sum())
        };
        assert_eq!(metrics.usage_flush_duration.get_sample_count(), 1);
        assert_eq!(rows("rollup"), (1, 2.0));
        assert_eq!(rows("log"), (1, 3.0));
        assert_eq!(metrics.usage_flush_errors.get(), 0);

        db.fail_log_inserts(true).await;
        recorder.record(event(1, "gpt", None, 200));
        assert!(writer.flush_now().await.is_err());
        assert_eq!(metrics.usage_flush_duration.get_sample_count(), 2);
        assert_eq!(metrics.usage_flush_errors.get(), 1);
        assert_eq!(rows("log"), (1, 3.0), "a failed flush wrote nothing");
    }

    #[tokio::test]
    async fn stopping_the_writer_drains_everything() {
        let (_dir, db) = temp_db().await;
        let recorder = UsageRecorder::new(100);
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            UsageWriter::new(&recorder, db.clone()).run(Duration::from_secs(3600), stop.clone()),
        );
        for _ in 0..10 {
            recorder.record(event(1, "gpt", None, 200));
        }
        stop.cancel();
        task.await.unwrap();
        assert_eq!(totals(&db).await[0].counts.requests, 10);
        assert_eq!(log_rows(&db).await, 10);
    }

    /// A writer of `recorder` that only a wake makes write (its tick is an hour away).
    fn woken_writer(
        recorder: &UsageRecorder,
        db: &Db,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            UsageWriter::new(recorder, db.clone()).run(Duration::from_secs(3600), stop.clone()),
        );
        (stop, task)
    }

    /// The rows still queued once the writer has had up to 5 s to take them.
    async fn queued_after_a_while(recorder: &UsageRecorder) -> usize {
        for _ in 0..1000 {
            if recorder.queued_rows() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        recorder.queued_rows()
    }

    #[tokio::test]
    async fn a_half_full_queue_wakes_the_writer_early() {
        let (_dir, db) = temp_db().await;
        let recorder = UsageRecorder::new(10);
        let (stop, task) = woken_writer(&recorder, &db);
        for _ in 0..5 {
            recorder.record(event(1, "gpt", None, 200));
        }
        assert_eq!(queued_after_a_while(&recorder).await, 0);
        stop.cancel();
        task.await.unwrap();
        assert_eq!(log_rows(&db).await, 5);
    }

    #[tokio::test]
    async fn a_few_thousand_rows_wake_the_writer_however_large_the_queue() {
        let (_dir, db) = temp_db().await;
        let recorder = UsageRecorder::new(DEFAULT_QUEUE);
        let (stop, task) = woken_writer(&recorder, &db);
        for _ in 0..WAKE_ROWS {
            recorder.record(event(1, "gpt", None, 200));
        }
        assert_eq!(queued_after_a_while(&recorder).await, 0);
        // One row short of the mark again waits for the tick.
        for _ in 1..WAKE_ROWS {
            recorder.record(event(1, "gpt", None, 200));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(recorder.queued_rows(), WAKE_ROWS - 1);
        stop.cancel();
        task.await.unwrap();
        assert_eq!(log_rows(&db).await, 2 * WAKE_ROWS as i64 - 1);
    }

    #[tokio::test]
    async fn a_stored_response_waits_in_memory_until_a_batch_commits_it() {
        let (_dir, db) = temp_db().await;
        let key_id = crate::db::tests::insert_test_key(&db, "k").await;
        let recorder = UsageRecorder::new(100);
        let writer = UsageWriter::new(&recorder, db.clone());
        let row = StoredResponseRow {
            id: "resp_1".into(),
            key_id,
            previous_response_id: None,
            created_at: 5,
            response: b"{}".to_vec(),
            turn: b"{}".to_vec(),
        };
        recorder.keep_response(row.clone()).unwrap();
        assert!(matches!(
            recorder.pending_response("resp_1"),
            Some(PendingResponse::Kept(_))
        ));
        // A batch that fails (its log row does) keeps the response for the next.
        db.fail_log_inserts(true).await;
        recorder.record(event(key_id, "gpt", None, 200));
        assert!(writer.flush_now().await.is_err());
        assert!(recorder.pending_response("resp_1").is_some());
        assert_eq!(db.stored_response("resp_1", key_id).await.unwrap(), None);
        db.fail_log_inserts(false).await;
        let report = writer.flush_now().await.unwrap();
        assert_eq!((report.rows, report.responses), (1, 1));
        assert!(recorder.pending_response("resp_1").is_none());
        assert_eq!(
            db.stored_response("resp_1", key_id).await.unwrap(),
            Some(row)
        );
        // A deletion goes the same way.
        recorder.delete_response("resp_1", key_id);
        assert_eq!(writer.flush_now().await.unwrap().responses, 1);
        assert_eq!(db.stored_response("resp_1", key_id).await.unwrap(), None);
    }

    #[test]
    fn days_count_from_the_epoch_in_utc() {
        assert_eq!(day_of(0), NaiveDate::from_ymd_opt(1970, 1, 1));
        assert_eq!(
            day_of(AT.div_euclid(MS_PER_DAY)),
            NaiveDate::from_ymd_opt(2025, 3, 4)
        );
        assert_eq!(
            day_of((-1_i64).div_euclid(MS_PER_DAY)),
            NaiveDate::from_ymd_opt(1969, 12, 31)
        );
    }
}

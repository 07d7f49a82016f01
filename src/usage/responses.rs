//! Stored responses on their way to the database: kept in memory from the moment the answer is
//! complete until the usage writer's batch has committed them, so a client's next turn finds
//! its response at once; reads look here before the database.
//!
//! Each entry is a response to write or a deletion to apply, with a sequence number: a batch
//! takes a copy of the entries, and once it is committed removes only those whose number is
//! unchanged, so a deletion made while the batch was being written stays for the next one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::db::StoredResponseRow;

/// The default bound of the responses waiting to be written, in bytes.
pub const DEFAULT_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// A stored response not yet written, or a deletion not yet applied.
#[derive(Debug, Clone)]
pub enum PendingResponse {
    Kept(Arc<StoredResponseRow>),
    /// Deleted by its key: reads answer 404 from now on.
    Deleted {
        key_id: i64,
    },
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    state: PendingResponse,
}

/// The responses waiting for the usage writer.
#[derive(Debug)]
pub(super) struct PendingResponses {
    entries: Mutex<Entries>,
    budget: usize,
    /// Responses not kept because the budget was spent.
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<Box<str>, Entry>,
    bytes: usize,
    next_seq: u64,
}

impl Entries {
    fn insert(&mut self, id: &str, state: PendingResponse) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += size(&state);
        if let Some(old) = self.by_id.insert(id.into(), Entry { seq, state }) {
            self.bytes = self.bytes.saturating_sub(size(&old.state));
        }
    }
}

fn size(state: &PendingResponse) -> usize {
    match state {
        PendingResponse::Kept(row) => row.size(),
        PendingResponse::Deleted { .. } => 0,
    }
}

/// Why a response was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unkept {
    /// The responses waiting to be written already hold the whole budget (the database is
    /// slow or down).
    Full,
    /// A response with this id is already waiting.
    Duplicate,
}

/// What one batch writes: a copy of the entries, by id, with their sequence numbers.
#[derive(Debug, Default)]
pub(super) struct ResponseBatch {
    entries: Vec<(Box<str>, u64, PendingResponse)>,
}

impl ResponseBatch {
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The responses to insert and the deletions to apply, as [`crate::db::StoredWrites`] takes them.
    pub(super) fn parts(&self) -> (Vec<&StoredResponseRow>, Vec<(&str, i64)>) {
        let mut kept = Vec::new();
        let mut deleted = Vec::new();
        for (id, _, state) in &self.entries {
            match state {
                PendingResponse::Kept(row) => kept.push(row.as_ref()),
                PendingResponse::Deleted { key_id } => deleted.push((&**id, *key_id)),
            }
        }
        (kept, deleted)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PendingResponses {
    pub(super) fn new(budget: usize) -> Self {
        Self {
            entries: Mutex::default(),
            budget,
            dropped: AtomicU64::new(0),
        }
    }

    /// Keeps `row` until it is written; returns whether the waiting responses now hold at
    /// least half the budget (the writer is then woken early).
    pub(super) fn keep(&self, row: StoredResponseRow) -> Result<bool, Unkept> {
        let mut entries = lock(&self.entries);
        if entries.by_id.contains_key(row.id.as_str()) {
            return Err(Unkept::Duplicate);
        }
        if entries.bytes.saturating_add(row.size()) > self.budget {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(Unkept::Full);
        }
        let id = row.id.clone();
        entries.insert(&id, PendingResponse::Kept(Arc::new(row)));
        Ok(entries.bytes >= self.budget / 2)
    }

    /// Marks `id` deleted by `key_id`, written with the next batch.
    pub(super) fn delete(&self, id: &str, key_id: i64) {
        lock(&self.entries).insert(id, PendingResponse::Deleted { key_id });
    }

    /// The entry waiting for `id`, if any.
    pub(super) fn get(&self, id: &str) -> Option<PendingResponse> {
        lock(&self.entries)
            .by_id
            .get(id)
            .map(|entry| entry.state.clone())
    }

    /// A copy of everything waiting, for one batch.
    pub(super) fn batch(&self) -> ResponseBatch {
        let entries = lock(&self.entries);
        ResponseBatch {
            entries: entries
                .by_id
                .iter()
                .map(|(id, entry)| (id.clone(), entry.seq, entry.state.clone()))
                .collect(),
        }
    }

    /// The batch is committed: its entries go, unless they changed since it was taken.
    pub(super) fn written(&self, batch: &ResponseBatch) {
        let mut entries = lock(&self.entries);
        for (id, seq, _) in &batch.entries {
            if entries.by_id.get(id).is_some_and(|entry| entry.seq == *seq)
                && let Some(entry) = entries.by_id.remove(id)
            {
                entries.bytes = entries.bytes.saturating_sub(size(&entry.state));
            }
        }
    }

    /// Responses not kept because the budget was spent.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// How many entries wait.
    pub(super) fn len(&self) -> usize {
        lock(&self.entries).by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, bytes: usize) -> StoredResponseRow {
        StoredResponseRow {
            id: id.into(),
            key_id: 1,
            previous_response_id: None,
            created_at: 0,
            response: vec![b'x'; bytes],
            turn: Vec::new(),
        }
    }

    #[test]
    fn the_budget_bounds_what_waits_and_a_full_queue_refuses_and_counts() {
        let pending = PendingResponses::new(100);
        assert_eq!(pending.keep(row("a", 40)), Ok(false));
        assert_eq!(pending.keep(row("a", 1)), Err(Unkept::Duplicate));
        assert_eq!(pending.keep(row("b", 40)), Ok(true));
        assert_eq!(pending.keep(row("c", 40)), Err(Unkept::Full));
        assert_eq!(pending.dropped(), 1);
        let batch = pending.batch();
        pending.written(&batch);
        assert_eq!(pending.len(), 0);
        assert_eq!(pending.keep(row("c", 40)), Ok(false));
    }

    #[test]
    fn a_deletion_made_while_a_batch_is_written_waits_for_the_next() {
        let pending = PendingResponses::new(1000);
        pending.keep(row("a", 10)).unwrap();
        pending.keep(row("b", 10)).unwrap();
        let batch = pending.batch();
        pending.delete("a", 1);
        pending.written(&batch);
        assert!(matches!(
            pending.get("a"),
            Some(PendingResponse::Deleted { key_id: 1 })
        ));
        assert!(pending.get("b").is_none());
        let next = pending.batch();
        let (kept, deleted) = next.parts();
        assert!(kept.is_empty());
        assert_eq!(deleted, [("a", 1)]);
        pending.written(&next);
        assert_eq!(pending.len(), 0);
    }
}

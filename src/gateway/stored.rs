//! Stored responses of the Responses API: keeping a finished response
//! ([`ResponseStore::capture`]), the turns `previous_response_id` continues, and
//! `GET`/`DELETE /v1/responses/{id}` and its `input_items`.
//!
//! A response is kept in memory by the usage recorder the moment it is complete (before its
//! last byte reaches the client) and written by the usage writer's next batch, so storing
//! never waits on the database and the client's next turn finds it at once. Every read looks
//! in memory first, then in the database (one read-pool query; a chain is one recursive query).
//! A response is visible only to the key that created it and until its retention
//! (`LLMGATE_RESPONSES_RETENTION`, measured on the gateway's clock) has passed; to any other
//! key, and after it, it answers exactly as one that never existed.
//!
//! Replicas on one PostgreSQL database share stored responses through it, but a response
//! another replica just answered waits in that replica's memory until its next batch: on a
//! shared database, an id found nowhere is looked up once more after one flush interval before
//! it is called missing, so a client whose turns land on different replicas is not refused.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::db::{Db, StoredResponseRow};
use crate::error::ApiError;
use crate::translate::responses::{InputItemsQuery, input_items_page, stored_turn};
use crate::usage::{PendingResponse, Unkept, UsageRecorder};

/// Time allowed for another replica's batch to commit, past its flush interval.
const REPLICA_WRITE_MARGIN: Duration = Duration::from_millis(500);

/// The most turns `previous_response_id` continues, the named one included.
pub const MAX_CHAIN_TURNS: u32 = 1000;
/// The most stored bytes (input and output items) `previous_response_id` continues.
pub const MAX_CHAIN_BYTES: u64 = 16 * 1024 * 1024;

/// Where stored responses are kept and read; cheap to clone.
#[derive(Clone, Debug)]
pub struct ResponseStore {
    usage: UsageRecorder,
    db: Db,
    clock: Clock,
    retention: Duration,
    /// On a database other replicas write to: how long to wait for their next batch before
    /// a response is called missing.
    replicas_flush: Option<Duration>,
}

impl ResponseStore {
    /// A store whose writes go through `usage`'s batches into `db`, keeping responses for
    /// `retention` on `clock`.
    pub fn new(usage: UsageRecorder, db: Db, clock: Clock, retention: Duration) -> Self {
        Self {
            usage,
            db,
            clock,
            retention,
            replicas_flush: None,
        }
    }

    /// On a PostgreSQL database (which replicas share), a response not found is looked for
    /// again after `flush_interval`, the longest another replica keeps it before writing it.
    #[must_use]
    pub fn shared_by_replicas(mut self, flush_interval: Duration) -> Self {
        if self.db.is_postgres() {
            // A batch starts at most one interval after the response, then takes its write.
            self.replicas_flush = Some(flush_interval + REPLICA_WRITE_MARGIN);
        }
        self
    }

    /// Waits for other replicas' next batches once, if they may hold what was not found.
    /// Whether it waited (and the caller should look again).
    async fn wait_for_replicas(&self, waited: &mut bool) -> bool {
        match self.replicas_flush {
            Some(pause) if !*waited => {
                *waited = true;
                tokio::time::sleep(pause).await;
                true
            }
            _ => false,
        }
    }

    /// Keeps the response of one `POST /v1/responses` for `key_id`: `request` is the body the
    /// client sent, `response` the final response object it got (a whole answer's body, or
    /// the `response` of a stream's last event: completed, incomplete or failed). Nothing is
    /// kept when the request said `"store": false`. Never waits: the usage writer's next
    /// batch writes it, and reads find it from now on. A response that cannot be kept (too
    /// many wait for a database that is slow or down) is logged and counted, never refused
    /// to the client.
    pub fn capture(&self, key_id: i64, request: &[u8], response: &[u8]) {
        #[derive(Deserialize)]
        struct Asked<'a> {
            #[serde(default)]
            store: Option<bool>,
            #[serde(borrow, default)]
            previous_response_id: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct Answered<'a> {
            #[serde(borrow)]
            id: Cow<'a, str>,
        }
        let Ok(asked) = serde_json::from_slice::<Asked<'_>>(request) else {
            return;
        };
        if asked.store == Some(false) {
            return;
        }
        let id = match serde_json::from_slice::<Answered<'_>>(response) {
            Ok(answered) => answered.id.into_owned(),
            Err(error) => {
                tracing::warn!(%error, "cannot store a response without an id");
                return;
            }
        };
        let turn = match stored_turn(request, response) {
            Ok(turn) => turn,
            Err(error) => {
                tracing::warn!(response_id = %id, %error, "cannot store a response's items");
                return;
            }
        };
        let row = StoredResponseRow {
            id,
            key_id,
            previous_response_id: asked.previous_response_id.map(Cow::into_owned),
            created_at: self.now_ms(),
            response: response.to_vec(),
            turn: turn.to_vec(),
        };
        let id = row.id.clone();
        match self.usage.keep_response(row) {
            Ok(()) => {}
            Err(Unkept::Full) => tracing::warn!(
                response_id = %id,
                "not storing a response: too many stored responses wait for the database; \
                 GET and previous_response_id will not find it"
            ),
            Err(Unkept::Duplicate) => tracing::warn!(
                response_id = %id,
                "not storing a response: one with the same id waits to be written"
            ),
        }
    }

    /// The stored turns `previous_response_id` continues, oldest first, each as
    /// [`stored_turn`] wrote it: the named response and every response it continued.
    pub async fn history(
        &self,
        key_id: i64,
        previous_response_id: &str,
    ) -> Result<Vec<Vec<u8>>, ApiError> {
        let cutoff = self.cutoff();
        let mut turns: Vec<Vec<u8>> = Vec::new();
        let mut bytes: u64 = 0;
        let mut next = Some(previous_response_id.to_owned());
        let missing = |id: &str, turns: &Vec<Vec<u8>>| ApiError::PreviousResponseNotFound {
            id: id.to_owned(),
            earlier: !turns.is_empty(),
        };
        let mut waited = false;
        // The newest turns may still wait in memory; the rest of the chain is in the database.
        while let Some(id) = next.take() {
            match self.usage.pending_response(&id) {
                Some(PendingResponse::Kept(row))
                    if row.key_id == key_id && row.created_at >= cutoff =>
                {
                    bytes += row.turn.len() as u64;
                    turns.push(row.turn.clone());
                    check_bounds(turns.len(), bytes)?;
                    next.clone_from(&row.previous_response_id);
                    continue;
                }
                Some(_) => return Err(missing(&id, &turns)),
                None => {}
            }
            let links_left =
                MAX_CHAIN_TURNS - u32::try_from(turns.len()).unwrap_or(MAX_CHAIN_TURNS);
            let links = self
                .db
                .stored_chain(
                    &id,
                    key_id,
                    links_left + 1,
                    MAX_CHAIN_BYTES.saturating_sub(bytes),
                )
                .await
                .map_err(ApiError::internal)?;
            if links.is_empty() {
                if self.wait_for_replicas(&mut waited).await {
                    next = Some(id);
                    continue;
                }
                return Err(missing(&id, &turns));
            }
            for link in links {
                let deleted = matches!(
                    self.usage.pending_response(&link.id),
                    Some(PendingResponse::Deleted { .. })
                );
                if deleted || link.created_at < cutoff {
                    return Err(missing(&link.id, &turns));
                }
                bytes += link.turn.len() as u64;
                next = link.previous_response_id;
                turns.push(link.turn);
                check_bounds(turns.len(), bytes)?;
            }
            // The query stops past a bound (refused above) or at a link that is not stored:
            // deleted, purged, or never this key's.
            if let Some(id) = &next {
                return Err(missing(id, &turns));
            }
        }
        turns.reverse();
        Ok(turns)
    }

    /// `GET /v1/responses/{id}`: the response object as it was answered.
    pub async fn get(&self, key_id: i64, id: &str) -> Result<Bytes, ApiError> {
        let row = self.find(key_id, id).await?;
        Ok(Bytes::copy_from_slice(&row.response))
    }

    /// `DELETE /v1/responses/{id}`: OpenAI's deletion object. Reads answer 404 at once; the
    /// row goes with the usage writer's next batch.
    pub async fn delete(&self, key_id: i64, id: &str) -> Result<Bytes, ApiError> {
        #[derive(Serialize)]
        struct Deleted<'a> {
            id: &'a str,
            object: &'static str,
            deleted: bool,
        }
        let row = self.find(key_id, id).await?;
        self.usage.delete_response(&row.id, key_id);
        Ok(Bytes::from(
            serde_json::to_vec(&Deleted {
                id: &row.id,
                object: "response",
                deleted: true,
            })
            .unwrap_or_default(),
        ))
    }

    /// `GET /v1/responses/{id}/input_items?limit=&order=&after=`: one page of the input items
    /// of the response, in OpenAI's list shape: as with OpenAI, the items of the turns it
    /// continued come first (when an earlier turn is gone since, deleted or past its
    /// retention, only the response's own input items are listed).
    pub async fn input_items(
        &self,
        key_id: i64,
        id: &str,
        query: Option<&str>,
    ) -> Result<Bytes, ApiError> {
        let query = input_items_query(query)?;
        let row = self.find(key_id, id).await?;
        let history = match &row.previous_response_id {
            Some(previous) => match self.history(key_id, previous).await {
                Ok(history) => history,
                Err(ApiError::Internal { detail }) => return Err(ApiError::Internal { detail }),
                Err(_) => Vec::new(),
            },
            None => Vec::new(),
        };
        let history: Vec<&[u8]> = history.iter().map(Vec::as_slice).collect();
        Ok(input_items_page(&history, &row.turn, &query)?)
    }

    /// The response `id` of `key_id`, if it is stored and within its retention.
    async fn find(&self, key_id: i64, id: &str) -> Result<Arc<StoredResponseRow>, ApiError> {
        let not_found = || ApiError::ResponseNotFound { id: id.to_owned() };
        let cutoff = self.cutoff();
        let mut waited = false;
        let row = loop {
            let row = match self.usage.pending_response(id) {
                Some(PendingResponse::Kept(row)) => Some(row).filter(|row| row.key_id == key_id),
                Some(PendingResponse::Deleted { .. }) => break None,
                None => self
                    .db
                    .stored_response(id, key_id)
                    .await
                    .map_err(ApiError::internal)?
                    .map(Arc::new),
            };
            if row.is_some() || !self.wait_for_replicas(&mut waited).await {
                break row;
            }
        };
        row.filter(|row| row.created_at >= cutoff)
            .ok_or_else(not_found)
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// The oldest creation time still within the retention.
    fn cutoff(&self) -> i64 {
        crate::usage::retention::cutoff(self.now_ms(), self.retention)
    }
}

/// Refuses a chain past its bounds, with what to do instead.
fn check_bounds(turns: usize, bytes: u64) -> Result<(), ApiError> {
    if turns <= MAX_CHAIN_TURNS as usize && bytes <= MAX_CHAIN_BYTES {
        return Ok(());
    }
    Err(ApiError::invalid_param(
        "previous_response_id",
        format!(
            "The conversation continued by previous_response_id is longer than llmgate \
             continues: at most {MAX_CHAIN_TURNS} responses and {} MiB of stored items. Start \
             a new conversation, sending the part of this one you need in 'input'.",
            MAX_CHAIN_BYTES / (1024 * 1024)
        ),
    ))
}

/// The query of `GET /v1/responses/{id}/input_items`; unknown parameters (`include`) are
/// accepted and change nothing.
fn input_items_query(query: Option<&str>) -> Result<InputItemsQuery, ApiError> {
    let mut parsed = InputItemsQuery::default();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*name {
            "limit" => {
                parsed.limit = Some(value.parse().map_err(|_| {
                    ApiError::invalid_param(
                        "limit",
                        "'limit' must be a whole number between 1 and 100.",
                    )
                })?);
            }
            "order" => parsed.order = Some(value.into_owned()),
            "after" => parsed.after = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_items_query_reads_limit_order_and_after() {
        let query = input_items_query(Some("limit=2&order=asc&after=msg_1&include[]=x")).unwrap();
        assert_eq!(query.limit, Some(2));
        assert_eq!(query.order.as_deref(), Some("asc"));
        assert_eq!(query.after.as_deref(), Some("msg_1"));
        let error = input_items_query(Some("limit=many")).unwrap_err();
        assert_eq!(error.status(), 400);
        assert!(input_items_query(None).unwrap().limit.is_none());
    }

    #[test]
    fn a_chain_is_bounded_in_turns_and_bytes() {
        assert!(check_bounds(1, 0).is_ok());
        assert!(check_bounds(MAX_CHAIN_TURNS as usize, MAX_CHAIN_BYTES).is_ok());
        assert!(check_bounds(MAX_CHAIN_TURNS as usize + 1, 0).is_err());
        let error = check_bounds(1, MAX_CHAIN_BYTES + 1).unwrap_err();
        assert!(
            error
                .to_json(None)
                .contains("\"param\":\"previous_response_id\"")
        );
    }
}

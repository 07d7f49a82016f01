//! `AppState`: the handles every request handler shares, built in one place.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::admin::Admin;
use crate::auth::KeyCache;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::db::Db;
use crate::gateway::Gateway;
use crate::routing::Health;
use crate::telemetry::metrics::Metrics;
use crate::usage::UsageRecorder;

/// The shared state behind one `Arc`. axum clones the state for every request it routes, so a
/// clone must cost one reference count, not one per handle inside (the profile of the load
/// bench found field-by-field clones, the database options' maps among them, at about a tenth
/// of the CPU time of a proxied request).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Debug)]
pub struct Shared {
    pub db: Db,
    pub keys: KeyCache,
    pub gateway: Gateway,
    /// Live health of routes and accounts (circuits, cooldowns), for reports.
    pub health: Arc<Health>,
    pub metrics: Metrics,
    /// Usage events go here (memory only); the writer task persists them.
    pub usage: UsageRecorder,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Wakes the change watcher at once: call `notify_one()` after writing configuration, so
    /// this process applies the change immediately instead of at the next poll.
    pub config_changed: Arc<Notify>,
    /// The admin plane's use cases and login; it wakes `config_changed` after every write.
    pub admin: Admin,
    /// The clock key expiry is judged on (the one limits and health use).
    pub clock: Clock,
    /// Redis, when replicas share limits, cooldowns and change notifications
    /// (`LLMGATE_REDIS_URL`); `/readyz` and `/metrics` report whether it answers.
    pub cluster: Option<Cluster>,
}

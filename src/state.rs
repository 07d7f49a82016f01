//! `AppState`: the cheap-to-clone handles every request handler shares, built in one place.

use crate::auth::KeyCache;
use crate::db::Db;
use crate::gateway::Gateway;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub keys: KeyCache,
    pub gateway: Gateway,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
}

//! Refreshing the catalog: a new snapshot built from the database and swapped in, with the
//! health registry carried over (it is keyed by id, so it survives every rebuild).

use std::sync::Arc;

use super::{Catalog, Health, SharedCatalog};
use crate::db::{Db, DbError};
use crate::secret::SecretCipher;

/// Rebuilds the catalog from the database and swaps it in.
pub async fn rebuild_catalog(
    db: &Db,
    catalog: &SharedCatalog,
    cipher: &SecretCipher,
    health: &Health,
) -> Result<(), DbError> {
    let rows = db.load_catalog().await?;
    let (next, skipped) = Catalog::from_rows(rows, cipher, health);
    for row in skipped {
        tracing::warn!(problem = %row.0, "left a stored object out of the routing catalog");
    }
    // Each unpriced route is warned of once: at start-up, and when a change makes it so (a
    // route that was unpriced in the catalog being replaced is not warned of again).
    let previous = catalog.load();
    let was_unpriced = |id: i64| {
        previous
            .models()
            .flat_map(|model| model.unpriced_routes())
            .any(|route| route.id == id)
    };
    for model in next.models() {
        for route in model
            .unpriced_routes()
            .filter(|route| !was_unpriced(route.id))
        {
            tracing::warn!(
                model = %model.name,
                route_id = route.id,
                provider = %route.provider.name,
                upstream_model = %route.upstream_model,
                "route has no price: llmgate's catalog does not know its upstream model and the \
                 route sets no input_price and output_price; its requests cost 0 and no dollar \
                 budget is charged for them"
            );
        }
    }
    catalog.store(Arc::new(next));
    Ok(())
}

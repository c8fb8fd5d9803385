//! The seams to the other crates, in one place.
// TEMPORARY stubs until flyte-store::open and flyte-admin::router::router land.

use std::sync::Arc;

use flyte_admin::AdminState;
use flyte_blob::BlobStore;
use flyte_store::MetadataStore;

pub(crate) async fn open_store(url: &str) -> anyhow::Result<Arc<dyn MetadataStore>> {
    Ok(flyte_store::open(url).await?)
}

pub(crate) fn open_blob(url: &str) -> anyhow::Result<BlobStore> {
    Ok(BlobStore::from_url(url)?)
}

pub(crate) fn admin_router(_state: AdminState) -> axum::Router {
    axum::Router::new()
}

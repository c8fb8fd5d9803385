//! The blob store: data (inputs, outputs, code bundles) behind the `object_store` crate,
//! chosen by URI (`file:///…` embedded default; `s3://…` and others by configuration).

/// Placeholder until the blob store lands; see the crate docs.
#[derive(Clone, Debug)]
pub struct BlobStore {}

//! The blob store: data (inputs, outputs, code bundles) behind the `object_store` crate,
//! chosen by URI (`file:///…` embedded default; `s3://…` and others by configuration), and
//! the HMAC-signed URLs the data proxy hands out for uploads and downloads.
//!
//! Paths given to [`BlobStore`] are keys relative to the store's root URL
//! (`uploads/flytesnacks/development/<prefix>/fast123.tar.gz`); [`BlobStore::native_url`]
//! turns one into the URL a task process reads (`file:///data/blobs/uploads/…` or
//! `s3://bucket/prefix/uploads/…`).

mod error;
pub mod metrics;
mod signing;
mod store;

pub use error::BlobError;
pub use signing::{SignatureError, SignedMethod, UrlSigner};
pub use store::{BlobMeta, BlobOptions, BlobStore, BlobUpload, install_tls_provider};

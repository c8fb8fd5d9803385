//! gRPC service implementations, one module per flyteidl service.

pub mod admin;
pub mod cache;
pub mod dataproxy;
pub mod datacatalog;
pub mod signal;

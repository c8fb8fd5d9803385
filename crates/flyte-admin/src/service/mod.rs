//! gRPC service implementations, one module per flyteidl service.

pub mod admin;
pub mod cache;
pub mod datacatalog;
pub mod dataproxy;
pub mod signal;

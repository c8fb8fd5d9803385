//! gRPC service implementations, one module per flyteidl service.

pub mod admin;
pub mod dataproxy;
pub mod signal;

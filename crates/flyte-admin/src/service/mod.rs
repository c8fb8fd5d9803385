//! gRPC service implementations, one module per flyteidl service.

pub mod admin;
pub mod dataproxy;

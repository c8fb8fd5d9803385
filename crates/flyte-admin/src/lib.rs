//! The admin API: flyteidl's AdminService, DataProxyService (and the other services of the
//! contract) over gRPC, the REST/JSON gateway under `/api/v1/`, and the data-proxy upload
//! endpoint — all one axum `Router` that the binary serves on a single port.

pub mod auth;
pub mod authz;
pub mod cache_http;
pub mod error;
pub mod fidelity;
pub mod gateway;
pub mod launcher;
pub mod live;
pub mod router;
pub mod service;
pub mod services;
pub mod state;

pub use error::{AdminError, AdminResult};
pub use state::{AdminConfig, AdminState};

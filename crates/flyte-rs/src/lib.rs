//! Flyte-RS: the Flyte v1 control plane in one process.
//!
//! [`start`] composes the services (metadata store, blob store, admin API, health and
//! metrics) into one server on one port; `main.rs` only parses flags, loads the
//! [`Config`] and calls it.

mod auth;
pub mod config;
pub mod data_dir_lock;
mod notifications;
pub mod python_env;
mod replica;
mod schedules;
mod server;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
mod tls;

pub use config::{Config, Environment, Overrides};
pub use server::{RunningServer, ShutdownHandle, flytekit_config, start};

/// The version of this build, as `GetVersion` and `--version` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

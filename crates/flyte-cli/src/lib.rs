//! `flyte-rs get|launch|watch|logs|terminate|relaunch|recover|gate|launchplan`: the everyday
//! command line, in the spirit of flytectl. A gRPC client of the admin (the same API pyflyte
//! uses), configured from flytekit's config file; see docs/cli.md.

// First: its `outln!` macro is used by the modules below.
#[macro_use]
pub mod output;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod literals;

mod gate;
mod get;
mod launch;
mod logs;
mod schedules;
pub mod tls;
mod watch;

pub use cli::{Command, run};

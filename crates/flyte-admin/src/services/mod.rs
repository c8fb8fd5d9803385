//! The service layer: the admin's domain commands in plain Rust, one service per area, with
//! [`crate::AdminError`] (which carries its code) as the error. The protocol adapters in
//! [`crate::service`] (gRPC, and the REST gateway over them) convert requests into commands
//! at the edge; in-process callers (the engine's launch-plan nodes, relaunch, recover) call the
//! services directly. See docs/adr-005-service-layer.md.

pub mod attributes;
pub mod events;
pub mod executions;
pub mod registration;
pub mod signals;

pub use attributes::AttributesService;
pub use events::EventService;
pub use executions::ExecutionService;
pub use registration::RegistrationService;
pub use signals::SignalService;

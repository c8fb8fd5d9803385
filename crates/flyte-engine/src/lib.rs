//! The execution engine (Flyte's propeller, in-process): runs compiled workflows node by
//! node, event-driven, with durable state, and hands task attempts to task backends.
//!
//! Public surface:
//! * [`Engine`]: `new`, `start_execution`, `abort`, `resume_all`, `wait`, `shutdown`.
//! * [`ExecutionRequest`]: what to run.
//! * [`EventSink`] / [`EngineJournal`]: where events and durable state go, one
//!   [`EventBatch`] (events + [`JournalDelta`]) per wake; [`MemorySink`] implements both.
//! * [`backend::TaskBackend`]: where task attempts run.
//! * [`layout`]: the blob-store data layout; [`metrics`]: metric names.

pub mod backend;
mod bindings;
mod branch;
pub mod config;
pub mod engine;
mod exec;
pub mod layout;
pub mod metrics;
mod msgpack;
pub mod request;
pub mod sink;

pub use config::EngineConfig;
pub use engine::{Engine, EngineError};
pub use request::{ExecKey, ExecutionRequest};
pub use sink::{
    EngineJournal, EventBatch, EventSink, JournalDelta, MemorySink, NodePhase, NodeStateRecord,
    RunningExecution, SinkError, WorkflowPhase, WorkflowStateRecord,
};

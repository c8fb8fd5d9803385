//! The execution engine (Flyte's propeller, in-process): runs compiled workflows node by
//! node, event-driven, with durable state, and hands task attempts to task backends.
//!
//! Public surface:
//! * [`Engine`]: `new` (from [`EngineDeps`]) or `new_cyclic`, `start_execution`, `abort`,
//!   `resume_all`, `wait`, `shutdown`.
//! * [`ExecutionRequest`]: what to run.
//! * [`EventSink`] / [`EngineJournal`]: where events and durable state go, one
//!   [`EventBatch`] (events + [`JournalDelta`]) per wake; [`MemorySink`] implements both.
//! * [`backend::TaskBackend`]: where task attempts run.
//! * [`EntityResolver`]: launch plans and tasks a dynamic workflow refers to, from the admin
//!   ([`EngineDeps::resolver`]); [`MemoryResolver`] for tests.
//! * [`layout`]: the blob-store data layout; [`metrics`]: metric names.

pub mod backend;
mod bindings;
mod branch;
pub mod clock;
pub mod config;
pub mod engine;
mod exec;
pub mod external;
pub mod layout;
pub mod metrics;
mod msgpack;
pub mod ownership;
pub mod request;
pub mod resolver;
pub(crate) mod retry;
pub mod secrets;
pub mod sink;

pub use clock::{Clock, SystemClock, VirtualClock};
pub use config::{ArrayParallelism, EngineConfig};
pub use engine::{Engine, EngineDeps, EngineError, EngineHandle};
pub use request::{ExecKey, ExecutionRequest};
pub use resolver::{EntityResolver, LaunchPlanInterface, MemoryResolver, ResolveError};
pub use sink::{
    EngineJournal, EventBatch, EventSink, JournalDelta, MemorySink, NodePhase, NodeStateRecord,
    RunningExecution, SinkError, WorkflowPhase, WorkflowStateRecord,
};

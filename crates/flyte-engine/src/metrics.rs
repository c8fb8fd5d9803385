//! Every metric the engine emits, declared in one place.

/// Counter: executions reaching a phase. Labels: `phase`.
pub const EXECUTIONS_BY_PHASE: &str = "flyte_engine_executions_total";
/// Gauge: executions currently running in this process.
pub const EXECUTIONS_RUNNING: &str = "flyte_engine_executions_running";
/// Counter: node instances reaching a phase. Labels: `phase`, `kind`.
pub const NODES_BY_PHASE: &str = "flyte_engine_nodes_total";
/// Histogram (seconds): from a node's last upstream finishing to the node being queued.
pub const NODE_TRANSITION_LATENCY: &str = "flyte_engine_node_transition_latency_seconds";
/// Histogram (seconds): engine time of one wake (round) of one execution, sink write excluded.
pub const ROUND_TIME: &str = "flyte_engine_round_seconds";
/// Histogram (seconds): time to commit one batch to the sink.
pub const SINK_WRITE_TIME: &str = "flyte_engine_sink_write_seconds";
/// Counter: sink writes that failed and were retried.
pub const SINK_RETRIES: &str = "flyte_engine_sink_retries_total";
/// Histogram: messages drained by one wake (queue depth at wake time).
pub const QUEUE_DEPTH: &str = "flyte_engine_wake_queue_depth";
/// Counter: task attempts started. Labels: `backend`.
pub const ATTEMPTS_STARTED: &str = "flyte_engine_attempts_started_total";
/// Counter: task attempts retried. Labels: `kind` (user|system).
pub const ATTEMPTS_RETRIED: &str = "flyte_engine_attempts_retried_total";

/// Counter: dynamic workflows built from a `futures.pb`. Labels: `outcome` (built|failed).
pub const DYNAMIC_WORKFLOWS: &str = "flyte_engine_dynamic_workflows_total";
/// Histogram (seconds): reading, compiling and storing one dynamic workflow.
pub const DYNAMIC_BUILD_TIME: &str = "flyte_engine_dynamic_build_seconds";
/// Histogram: nodes in one dynamic workflow (its primary template).
pub const DYNAMIC_NODES: &str = "flyte_engine_dynamic_workflow_nodes";
/// Counter: array sub-nodes reaching a terminal phase. Labels: `phase`.
pub const ARRAY_SUBNODES: &str = "flyte_engine_array_subnodes_total";
/// Histogram: sub-nodes of one array node (its size).
pub const ARRAY_SIZE: &str = "flyte_engine_array_size";

pub(crate) fn node_phase(phase: &'static str, kind: &'static str) {
    metrics::counter!(NODES_BY_PHASE, "phase" => phase, "kind" => kind).increment(1);
}

pub(crate) fn execution_phase(phase: &'static str) {
    metrics::counter!(EXECUTIONS_BY_PHASE, "phase" => phase).increment(1);
}

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
/// Counter: blob writes of the engine refused for a full disk and retried.
pub const BLOB_RETRIES: &str = "flyte_engine_blob_retries_total";
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

/// Counter: task processes the local backend started.
pub const LOCAL_PROCESSES_STARTED: &str = "flyte_engine_local_processes_started_total";
/// Histogram (seconds): from the local backend taking a slot for an attempt to its process
/// having been spawned (template written, command resolved, fork/exec). Labels: `backend`.
pub const TASK_START_LATENCY: &str = "flyte_engine_task_start_latency_seconds";
/// Histogram (seconds): from a task process being spawned to it ending. Labels: `backend`,
/// `reason` (as in [`TASK_EXITS`]).
pub const TASK_DURATION: &str = "flyte_engine_task_duration_seconds";
/// Counter: task processes that ended, by `reason`: `success` (exit code 0), `exit_code`
/// (non-zero), `signal`, `timeout`, `aborted`, `start_failed` (could not spawn),
/// `system_error`. Labels: `backend`, `reason`.
pub const TASK_EXITS: &str = "flyte_engine_task_exits_total";

/// Every engine metric: (name, Prometheus type, help). [`describe`] registers these help
/// texts; the server lists every family in `/metrics` from this table.
pub const ALL: &[(&str, &str, &str)] = &[
    (
        EXECUTIONS_BY_PHASE,
        "counter",
        "Executions reaching a phase",
    ),
    (
        EXECUTIONS_RUNNING,
        "gauge",
        "Executions currently running in this process",
    ),
    (
        NODES_BY_PHASE,
        "counter",
        "Node instances reaching a phase, by node kind",
    ),
    (
        NODE_TRANSITION_LATENCY,
        "histogram",
        "Seconds from a node's last upstream finishing to the node being queued",
    ),
    (
        ROUND_TIME,
        "histogram",
        "Engine time of one wake (round) of one execution, sink write excluded",
    ),
    (
        SINK_WRITE_TIME,
        "histogram",
        "Seconds to commit one batch of state changes to the sink",
    ),
    (
        SINK_RETRIES,
        "counter",
        "Sink writes that failed and were retried",
    ),
    (
        BLOB_RETRIES,
        "counter",
        "Blob writes of the engine refused for a full disk and retried",
    ),
    (
        QUEUE_DEPTH,
        "histogram",
        "Messages drained by one wake of an execution (its queue depth)",
    ),
    (
        ATTEMPTS_STARTED,
        "counter",
        "Task attempts started, by backend",
    ),
    (
        ATTEMPTS_RETRIED,
        "counter",
        "Task attempts retried, by kind (user, system)",
    ),
    (
        DYNAMIC_WORKFLOWS,
        "counter",
        "Dynamic workflows built from a futures file, by outcome",
    ),
    (
        DYNAMIC_BUILD_TIME,
        "histogram",
        "Seconds to read, compile and store one dynamic workflow",
    ),
    (DYNAMIC_NODES, "histogram", "Nodes in one dynamic workflow"),
    (
        ARRAY_SUBNODES,
        "counter",
        "Array sub-nodes reaching a terminal phase",
    ),
    (ARRAY_SIZE, "histogram", "Sub-nodes of one array node"),
    (
        LOCAL_PROCESSES_STARTED,
        "counter",
        "Task processes the local backend started",
    ),
    (
        TASK_START_LATENCY,
        "histogram",
        "Seconds from a task attempt getting a process slot to its process being spawned",
    ),
    (
        TASK_DURATION,
        "histogram",
        "Seconds a task process ran, by exit reason",
    ),
    (
        TASK_EXITS,
        "counter",
        "Task processes that ended, by exit reason",
    ),
];

/// Registers the help texts of [`ALL`] with the installed recorder.
pub fn describe() {
    for &(name, kind, help) in ALL {
        match kind {
            "counter" => metrics::describe_counter!(name, help),
            "gauge" => metrics::describe_gauge!(name, help),
            _ => metrics::describe_histogram!(name, help),
        }
    }
}

pub(crate) fn task_exit(
    backend: &'static str,
    reason: &'static str,
    ran: Option<std::time::Duration>,
) {
    metrics::counter!(TASK_EXITS, "backend" => backend, "reason" => reason).increment(1);
    if let Some(ran) = ran {
        metrics::histogram!(TASK_DURATION, "backend" => backend, "reason" => reason)
            .record(ran.as_secs_f64());
    }
}

pub(crate) fn node_phase(phase: &'static str, kind: &'static str) {
    metrics::counter!(NODES_BY_PHASE, "phase" => phase, "kind" => kind).increment(1);
}

pub(crate) fn execution_phase(phase: &'static str) {
    metrics::counter!(EXECUTIONS_BY_PHASE, "phase" => phase).increment(1);
}

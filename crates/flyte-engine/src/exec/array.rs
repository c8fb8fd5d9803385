//! Array nodes (map tasks; propeller's `nodes/array`). One sub-node per index, `n<i>`, with
//! unique id `<array>-<attempt>-n<i>` and data under `<array output dir>/<i>/<attempt>/`.
//!
//! * Items are lazy: each has a few bytes of state ([`Item`]: phase, attempt, cache status, as
//!   propeller's `ArrayNodeState` keeps them in bit arrays) and an engine node only while in
//!   flight — built when the item starts, released when it ends (its journal record written,
//!   its outputs kept for the gather) — so a map of a million items holds a window of nodes,
//!   not a million. The journal keeps each item's node record; a resume rebuilds the item
//!   states from them and nodes for the items that were in flight.
//! * Inputs: each collection input is sliced to its element `i`, `bound_inputs` and scalars
//!   are broadcast. A container sub-task in `SINGLE_INPUT_FILE` mode (flytekit's map tasks)
//!   reads the array node's whole `inputs.pb` and picks its element by
//!   `FLYTE_K8S_ARRAY_INDEX` (`pyflyte-map-execute`), as with propeller's k8s array plugin.
//!   An in-engine sub-task (echo, core-sleep: flytekit gives them a container too) cannot
//!   slice: each item is handed its element in memory (no file) with a template whose mapped
//!   inputs are singular. Other sub-nodes (sub-workflows, `INDIVIDUAL_INPUT_FILES`) get their
//!   own sliced `inputs.pb`.
//! * Parallelism: `parallelism` > 0 bounds the running sub-nodes; unset or 0 follows
//!   [`crate::ArrayParallelism`], within [`crate::EngineConfig::map_items_in_flight`]. Sub-nodes
//!   start in index order from a cursor, so each start and each completion costs O(1).
//! * Success: every sub-node ended and at least `min_successes` (or
//!   `ceil(min_success_ratio × n)`, default n) succeeded; failure as soon as that is out of
//!   reach (running sub-nodes are aborted), unless `run_all_sub_nodes`.
//! * Outputs: one collection per output variable, in index order, `none` for the indices that
//!   did not succeed.
//! * Events: sub-nodes send none of their own (propeller's array event version 0); the array
//!   node sends one task event per wake with the changed sub-nodes as `ExternalResourceInfo`
//!   (index, retry attempt, phase, logs, cache status), and all of them when it ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use flyteidl::core::{
    ArrayNode, CatalogCacheStatus, ExecutionError, Literal, LiteralCollection, LiteralMap,
    LiteralType, Node, NodeExecutionIdentifier, Scalar, TaskTemplate, TypedInterface, Variable,
    VariableMap, Void, array_node, execution_error::ErrorKind, literal, literal_type, scalar,
    task_execution, task_template,
};
use flyteidl::event::{
    ExternalResourceInfo, TaskExecutionEvent, TaskExecutionMetadata, task_execution_event,
};
use prost::Message;

use super::{Done, ExecActor, Kind, NodePhase, Timer, ts};
use crate::config::ArrayParallelism;
use crate::layout;
use crate::metrics as m;

/// propeller's `events.MaxErrorMessageLength`.
const MAX_ERROR_MESSAGE_LENGTH: usize = 102_400;

/// What an array node runs, decided once per node.
pub(crate) struct ArraySpec {
    /// The sub-node spec shared by every index (its id is replaced by `n<i>`).
    pub sub: Arc<Node>,
    /// The sub-node's kind; a task's template has its list outputs made singular, as
    /// propeller's `arrayTaskReader` does, and for an in-engine task its mapped inputs too
    /// (each item is handed its own element).
    pub sub_kind: Kind,
    parallelism: Option<u32>,
    min_successes: Option<u32>,
    min_success_ratio: Option<f32>,
    bound_inputs: HashSet<String>,
    run_all: bool,
    /// The sub-task reads the array node's `inputs.pb` (and slices it itself).
    whole_inputs_file: bool,
    /// The sub-task runs in the engine: each item's sliced inputs are handed over in memory.
    pub in_engine: bool,
}

impl ArraySpec {
    /// `in_engine`: the sub-task's backend reads no attempt files (echo, core-sleep). Such a
    /// task cannot slice the array's `inputs.pb` itself, even with the container flytekit
    /// gives every map task: it gets its element and a template typed for one element.
    pub(super) fn new(a: &ArrayNode, sub: &Node, sub_kind: Kind, in_engine: bool) -> Self {
        // With the sub-node's original interface (list-ified by the compiler) its outputs are
        // singular already; otherwise (map tasks) its list outputs describe the gathered result.
        let original = a.is_original_sub_node_interface.as_ref().map(|b| b.value) == Some(true);
        let in_engine = in_engine && matches!(sub_kind, Kind::Task(_));
        let sub_kind = match sub_kind {
            Kind::Task(t) if !original && in_engine => {
                let mut t = singular_outputs(&t);
                singular_inputs(&mut t, &a.bound_inputs);
                Kind::Task(Arc::new(t))
            }
            Kind::Task(t) if !original => Kind::Task(Arc::new(singular_outputs(&t))),
            k => k,
        };
        let container = match &sub_kind {
            Kind::Task(t) => matches!(
                t.target,
                Some(task_template::Target::Container(_)) | Some(task_template::Target::K8sPod(_))
            ),
            _ => false,
        };
        let (min_successes, min_success_ratio) = match a.success_criteria {
            Some(array_node::SuccessCriteria::MinSuccesses(n)) => (Some(n), None),
            Some(array_node::SuccessCriteria::MinSuccessRatio(r)) => (None, Some(r)),
            None => (None, None),
        };
        Self {
            sub: Arc::new(sub.clone()),
            sub_kind,
            parallelism: a
                .parallelism_option
                .map(|array_node::ParallelismOption::Parallelism(p)| p),
            min_successes,
            min_success_ratio,
            bound_inputs: a.bound_inputs.iter().cloned().collect(),
            run_all: a.run_all_sub_nodes,
            whole_inputs_file: container
                && !in_engine
                && a.data_mode != array_node::DataMode::IndividualInputFiles as i32,
            in_engine,
        }
    }

    /// propeller's `inferParallelism`: whether the sub-nodes count against (and are bounded
    /// by) the workflow's `max_parallelism` instead of the array's own limit.
    pub(super) fn subnodes_share_wf_parallelism(&self, behavior: ArrayParallelism) -> bool {
        match (self.parallelism, behavior) {
            (Some(p), _) if p > 0 => false,
            (_, ArrayParallelism::Workflow) => true,
            (None, ArrayParallelism::Hybrid) => true,
            _ => false,
        }
    }

    fn limit(&self, size: usize) -> usize {
        match self.parallelism {
            Some(p) if p > 0 => p as usize,
            _ => size,
        }
    }

    fn min_successes(&self, size: usize) -> usize {
        if let Some(n) = self.min_successes {
            n as usize
        } else if let Some(r) = self.min_success_ratio {
            (f64::from(r) * size as f64).ceil() as usize
        } else {
            size
        }
    }

    /// Output variables every index contributes to (`none` where it did not succeed).
    fn output_vars(&self) -> Vec<String> {
        let iface: Option<&TypedInterface> = match &self.sub_kind {
            Kind::Task(t) => t.interface.as_ref(),
            Kind::SubWorkflow(w) => w.template.as_ref().and_then(|t| t.interface.as_ref()),
            _ => None,
        };
        iface
            .and_then(|i| i.outputs.as_ref())
            .map(|o| o.variables.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The sub-task's template: list outputs become their element type (the sub-task writes one
/// value per output; the array node gathers them).
fn singular_outputs(t: &TaskTemplate) -> TaskTemplate {
    let mut t = t.clone();
    if let Some(outputs) = t.interface.as_mut().and_then(|i| i.outputs.as_mut()) {
        let vars: BTreeMap<String, Variable> = std::mem::take(&mut outputs.variables)
            .into_iter()
            .map(|(k, mut v)| {
                if let Some(LiteralType {
                    r#type: Some(literal_type::Type::CollectionType(inner)),
                    ..
                }) = &v.r#type
                {
                    v.r#type = Some((**inner).clone());
                }
                (k, v)
            })
            .collect();
        *outputs = VariableMap { variables: vars };
    }
    t
}

/// A map task's template for one item: its mapped (list, not bound) inputs become their
/// element type, as the item is given one element of each.
fn singular_inputs(t: &mut TaskTemplate, bound: &[String]) {
    let Some(inputs) = t.interface.as_mut().and_then(|i| i.inputs.as_mut()) else {
        return;
    };
    for (name, v) in inputs.variables.iter_mut() {
        if bound.iter().any(|b| b == name) {
            continue;
        }
        if let Some(LiteralType {
            r#type: Some(literal_type::Type::CollectionType(inner)),
            ..
        }) = &v.r#type
        {
            v.r#type = Some((**inner).clone());
        }
    }
}

/// The task phase an item's entry reports for its node's phase.
fn task_phase_of(p: NodePhase) -> task_execution::Phase {
    match p {
        NodePhase::NotYetStarted | NodePhase::Skipped => task_execution::Phase::Undefined,
        NodePhase::Queued => task_execution::Phase::Queued,
        NodePhase::Running => task_execution::Phase::Running,
        NodePhase::Succeeded => task_execution::Phase::Succeeded,
        NodePhase::Failed | NodePhase::TimedOut => task_execution::Phase::Failed,
        NodePhase::Aborted => task_execution::Phase::Aborted,
    }
}

fn none_literal() -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::NoneType(Void {})),
        }))),
        ..Default::default()
    }
}

fn collection_len(l: &Literal) -> Option<usize> {
    match &l.value {
        Some(literal::Value::Collection(c)) => Some(c.literals.len()),
        _ => None,
    }
}

/// The number of sub-nodes: the common length of the mapped (unbound) collection inputs.
pub(super) fn array_size(inputs: &LiteralMap, bound: &HashSet<String>) -> Result<usize, String> {
    let mut size: Option<usize> = None;
    for (name, lit) in &inputs.literals {
        if bound.contains(name) {
            continue;
        }
        if let Some(n) = collection_len(lit) {
            match size {
                None => size = Some(n),
                Some(s) if s != n => {
                    return Err(format!(
                        "input arrays have different lengths: expecting '{s}' found '{n}'"
                    ));
                }
                _ => {}
            }
        }
    }
    match size {
        Some(n) => Ok(n),
        None if inputs.literals.keys().all(|k| bound.contains(k)) => Ok(1),
        None => Err("no input array provided".into()),
    }
}

/// The inputs of sub-node `index` (propeller's `constructLiteralMap`).
pub(super) fn slice_inputs(
    inputs: &LiteralMap,
    index: usize,
    bound: &HashSet<String>,
) -> Result<LiteralMap, String> {
    let mut out = LiteralMap::default();
    for (name, lit) in &inputs.literals {
        let v = match &lit.value {
            Some(literal::Value::Collection(c)) if !bound.contains(name) => {
                c.literals.get(index).cloned().ok_or_else(|| {
                    format!("index {index} out of bounds for literal collection {name}")
                })?
            }
            _ => lit.clone(),
        };
        out.literals.insert(name.clone(), v);
    }
    Ok(out)
}

/// Failure messages of sub-nodes, grouped by message (propeller's `ErrorMessageCollector`).
#[derive(Default)]
struct ErrorCollector {
    messages: BTreeMap<String, Vec<u32>>,
}

impl ErrorCollector {
    fn collect(&mut self, index: u32, msg: &str) {
        match self.messages.get_mut(msg) {
            Some(v) => v.push(index),
            None => {
                self.messages.insert(msg.to_string(), vec![index]);
            }
        }
    }

    /// `[0-2][5]: message` lines, at most `limit` characters.
    fn summary(&self, limit: usize) -> String {
        const MORE: &str = "... and many more.";
        let limit = limit.saturating_sub(MORE.len());
        let mut out = String::new();
        for (msg, idx) in &self.messages {
            let mut idx = idx.clone();
            idx.sort_unstable();
            let mut i = 0;
            while i < idx.len() {
                let start = idx[i];
                let mut end = start;
                while i + 1 < idx.len() && idx[i + 1] == end + 1 {
                    i += 1;
                    end = idx[i];
                }
                if start == end {
                    out.push_str(&format!("[{start}]"));
                } else {
                    out.push_str(&format!("[{start}-{end}]"));
                }
                i += 1;
            }
            out.push_str(&format!(": {msg}\n"));
            if out.len() >= limit {
                out.push_str(MORE);
                break;
            }
        }
        out
    }
}

/// What is kept of one item between its node's release and the array's end (and before it
/// starts): 4 bytes.
#[derive(Clone, Copy, Default)]
struct Item {
    /// [`NodePhase`] as a byte; `NotYetStarted` until the item's node ends.
    phase: u8,
    /// `CatalogCacheStatus` of its last execution.
    cache: u8,
    /// Its last attempt (saturating).
    attempt: u16,
}

impl Item {
    fn phase(self) -> NodePhase {
        NodePhase::from_i32(i32::from(self.phase))
    }
}

/// A succeeded item's outputs once its node is gone.
enum ItemOutputs {
    Memory(Arc<LiteralMap>),
    File(Box<str>),
}

/// An array node's running state.
pub(crate) struct ArrayState {
    pub spec: Arc<ArraySpec>,
    pub size: usize,
    items: Vec<Item>,
    /// Items with a node (in flight, or ended with children that stay): index to node.
    live: HashMap<u32, usize>,
    /// Outputs of succeeded items whose node was released (when the sub-node has outputs).
    outputs: HashMap<u32, ItemOutputs>,
    /// The sub-node has output variables to gather.
    has_outputs: bool,
    /// Sub-nodes before it have been dispatched.
    cursor: usize,
    /// Dispatched and not yet ended.
    running: usize,
    succeeded: usize,
    failed: usize,
    limit: usize,
    min_successes: usize,
    /// The array node's resolved inputs (read back from `inputs.pb` after a restart).
    inputs: Option<Arc<LiteralMap>>,
    /// Sub-node changes not yet reported, one entry per index.
    pending: Vec<ExternalResourceInfo>,
    pending_pos: HashMap<u32, usize>,
    errors: ErrorCollector,
    /// Success or failure was decided.
    finishing: bool,
    /// `FixedLengthUniqueIDForParts(50, [exec, array node, attempt])`: external ids are
    /// `<prefix>-n<i>-<retry>`.
    external_prefix: String,
    /// The last task phase the array node reported (-1: none yet), for the phase version.
    task_phase: i32,
}

impl ExecActor {
    pub(super) async fn start_array(&mut self, idx: usize, spec: Arc<ArraySpec>) {
        let slot = self.uses_wf_slot(idx);
        if slot && !self.slot_free() {
            self.waiting_parallelism.push_back(idx);
            return;
        }
        let Some(inputs) = self.resolve_and_write_inputs(idx).await else {
            return;
        };
        if slot {
            self.take_slot(idx);
        }
        self.mark_queued(idx);
        self.node_event(idx, flyteidl::core::node_execution::Phase::Queued, None);
        self.set_phase(idx, NodePhase::Running);
        self.node_event(idx, flyteidl::core::node_execution::Phase::Running, None);
        let size = match array_size(&inputs, &spec.bound_inputs) {
            Ok(n) => n,
            Err(msg) => {
                let err = self.exec_error(ErrorKind::User, "InvalidArrayLength", msg);
                self.node_terminal(idx, NodePhase::Failed, Some(err));
                return;
            }
        };
        if let Some(msg) = self.array_too_large(&spec, size) {
            let err = self.exec_error(ErrorKind::User, "ArrayTooLarge", msg);
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return;
        }
        metrics::histogram!(m::ARRAY_SIZE).record(size as f64);
        self.nodes[idx].rec.array_size = Some(size as u32);
        self.dirty.insert(idx);
        if let Some(d) = self.nodes[idx].active_deadline {
            self.arm_timer(d, Timer::ActiveDeadline { node: idx });
        }
        self.open_array(idx, spec, size, Some(inputs));
        self.array_initial_event(idx);
        self.array_check(idx);
    }

    /// `Some(message)` when a map of `size` items cannot run: more items than
    /// `engine.max_map_items`, or more in flight than `engine.max_nodes_per_execution` leaves
    /// room for beside the execution's other nodes.
    fn array_too_large(&self, spec: &ArraySpec, size: usize) -> Option<String> {
        let cfg = &self.shared.config;
        let max_items = match cfg.max_map_items {
            0 => u32::MAX as usize,
            n => n.min(u32::MAX as usize),
        };
        if size > max_items {
            return Some(format!(
                "{size} map task items are more than the server's limit of {max_items} \
                 (engine.max_map_items); split the list over several map tasks or executions"
            ));
        }
        let max = cfg.max_nodes_per_execution;
        let in_flight = self.items_in_flight(spec, size);
        let live = self.nodes.len() - self.free_nodes.len();
        let total = live.saturating_add(in_flight);
        (max > 0 && total > max).then(|| {
            format!(
                "{in_flight} map task items in flight would bring this execution to {total} \
                 nodes, more than the server's limit of {max} (engine.max_nodes_per_execution); \
                 give the map task a lower concurrency, or raise the limit if the server has \
                 the memory (a few KB per node)"
            )
        })
    }

    /// How many items of a map of `size` run at once: its concurrency, within the engine's
    /// window.
    fn items_in_flight(&self, spec: &ArraySpec, size: usize) -> usize {
        let limit = spec.limit(size);
        match self.shared.config.map_items_in_flight {
            0 => limit,
            w => limit.min(w),
        }
    }

    /// The array's state before any item started (no node is built for an item until it
    /// starts).
    pub(super) fn open_array(
        &mut self,
        idx: usize,
        spec: Arc<ArraySpec>,
        size: usize,
        inputs: Option<Arc<LiteralMap>>,
    ) {
        let external_prefix = layout::fixed_length_unique_id_for_parts(
            layout::ATTEMPT_ID_MAX_LENGTH,
            &[
                &self.id.name,
                &self.nodes[idx].rec.node_id,
                &self.nodes[idx].rec.attempt.to_string(),
            ],
        );
        let limit = self.items_in_flight(&spec, size);
        self.nodes[idx].state.set_array(Box::new(ArrayState {
            limit,
            min_successes: spec.min_successes(size),
            has_outputs: !spec.output_vars().is_empty(),
            spec,
            size,
            items: vec![Item::default(); size],
            live: HashMap::new(),
            outputs: HashMap::new(),
            cursor: 0,
            running: 0,
            succeeded: 0,
            failed: 0,
            inputs,
            pending: Vec::new(),
            pending_pos: HashMap::new(),
            errors: ErrorCollector::default(),
            finishing: false,
            external_prefix,
            task_phase: -1,
        }));
    }

    /// Builds item `i`'s node (taking its journal record on a resume).
    fn add_item_node(&mut self, a: usize, i: usize, spec: &ArraySpec) -> usize {
        let data_dir = layout::sub_node_data_dir(&self.nodes[a].output_dir(), &i.to_string());
        let scope = self.nodes[a].scope;
        self.add_node_as(
            spec.sub.clone(),
            Some(format!("n{i}")),
            Some(spec.sub_kind.clone()),
            scope,
            None,
            Some(a),
            data_dir,
            false,
        )
    }

    /// After a restart: the items' states from their journal records; nodes (and what runs
    /// under them) only for the items that were in flight.
    pub(super) fn restore_array(&mut self, idx: usize, spec: Arc<ArraySpec>) {
        let Some(size) = self.nodes[idx].rec.array_size else {
            return;
        };
        let size = size as usize;
        self.open_array(idx, spec.clone(), size, None);
        let Some(mut st) = self.nodes[idx].state.take_array() else {
            return;
        };
        let parent = self.nodes[idx].rec.node_id.clone();
        let attempt = self.nodes[idx].rec.attempt;
        let mut in_flight = Vec::new();
        for i in 0..size {
            let unique = layout::node_unique_id(Some((&parent, attempt)), &format!("n{i}"));
            let phase = match self.resume_records.get(&unique) {
                Some(rec) => rec.node_phase(),
                None => continue,
            };
            match phase {
                NodePhase::NotYetStarted => {}
                NodePhase::Queued | NodePhase::Running => in_flight.push(i),
                phase => {
                    let Some(rec) = self.resume_records.remove(&unique) else {
                        continue;
                    };
                    st.items[i] = Item {
                        phase: phase as u8,
                        cache: CatalogCacheStatus::CacheDisabled as u8,
                        attempt: u16::try_from(rec.attempt).unwrap_or(u16::MAX),
                    };
                    if phase.is_success() {
                        if st.has_outputs {
                            st.outputs
                                .insert(i as u32, ItemOutputs::File(rec.output_path.into()));
                        }
                    } else {
                        let msg = rec.error.map(|e| e.message).unwrap_or_default();
                        st.errors.collect(i as u32, &msg);
                    }
                }
            }
        }
        for &i in &in_flight {
            let sub = self.add_item_node(idx, i, &spec);
            st.live.insert(i as u32, sub);
        }
        self.nodes[idx].state.set_array(st);
        for i in in_flight {
            if let Some(&sub) = self.nodes[idx]
                .state
                .array_ref()
                .and_then(|st| st.live.get(&(i as u32)))
            {
                self.restore_children(sub);
            }
        }
    }

    pub(super) fn resume_array(&mut self, idx: usize) {
        if self.uses_wf_slot(idx) {
            self.take_slot(idx);
        }
        if let Some(d) = self.nodes[idx].active_deadline {
            let queued = self.nodes[idx].rec.queued_at_us;
            self.arm_timer_at_us(queued, d, Timer::ActiveDeadline { node: idx });
        }
        let Some(mut st) = self.nodes[idx].state.take_array() else {
            // Started but its size was never committed: nothing ran; fail it cleanly.
            let err = self.exec_error(
                ErrorKind::System,
                "ArrayNodeStateLost",
                "the array node's state was not recorded before a restart",
            );
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return;
        };
        st.running = st
            .live
            .values()
            .filter(|&&sub| {
                matches!(
                    self.nodes[sub].phase(),
                    NodePhase::Queued | NodePhase::Running
                )
            })
            .count();
        for item in &st.items {
            match item.phase() {
                p if p.is_success() => st.succeeded += 1,
                NodePhase::NotYetStarted | NodePhase::Queued | NodePhase::Running => {}
                _ => st.failed += 1,
            }
        }
        st.task_phase = task_execution::Phase::Running as i32;
        self.nodes[idx].state.set_array(st);
        self.done_queue.push_back(Done::ArrayCheck(idx));
    }

    /// Starts items up to the limit (building their nodes), or decides the array node's
    /// outcome.
    pub(super) fn array_check(&mut self, a: usize) {
        if self.nodes[a].phase() != NodePhase::Running {
            return;
        }
        let Some(mut st) = self.nodes[a].state.take_array() else {
            return;
        };
        if st.finishing {
            self.nodes[a].state.set_array(st);
            return;
        }
        let out_of_reach = st.size - st.failed < st.min_successes;
        let all_ended = st.succeeded + st.failed == st.size;
        if out_of_reach && (!st.spec.run_all || all_ended) {
            st.finishing = true;
            let message = st.errors.summary(MAX_ERROR_MESSAGE_LENGTH);
            self.nodes[a].state.set_array(st);
            let err = ExecutionError {
                message,
                kind: ErrorKind::User as i32,
                code: "ArrayNodeFailing".into(),
                timestamp: Some(ts(self.now_us())),
                ..Default::default()
            };
            self.abort_array(a, "ArrayNodeFailing");
            self.node_terminal(a, NodePhase::Failed, Some(err));
            return;
        }
        if all_ended {
            // All ended and, not being out of reach, enough succeeded.
            st.finishing = true;
            self.nodes[a].state.set_array(st);
            self.done_queue.push_back(Done::ArrayGather(a));
            return;
        }
        let spec = st.spec.clone();
        let mut start = Vec::new();
        while st.running < st.limit && st.cursor < st.size {
            let i = st.cursor;
            st.cursor += 1;
            // After a restart, items that ended or are in flight are counted already.
            if st.items[i].phase() != NodePhase::NotYetStarted || st.live.contains_key(&(i as u32))
            {
                continue;
            }
            st.running += 1;
            let sub = self.add_item_node(a, i, &spec);
            st.live.insert(i as u32, sub);
            start.push(sub);
        }
        self.nodes[a].state.set_array(st);
        for sub in start {
            self.make_ready(sub);
        }
    }

    /// Sub-node `i` ended (not by an abort of the array): what the array keeps of it goes
    /// into its item, and a task's node is released.
    pub(super) fn array_child_done(
        &mut self,
        a: usize,
        i: u32,
        sub: usize,
        result: Result<(), ExecutionError>,
    ) {
        let msg = match &result {
            Ok(()) => None,
            Err(e) => Some(
                self.nodes[sub]
                    .rec
                    .error
                    .as_ref()
                    .map(|r| r.message.clone())
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| e.message.clone()),
            ),
        };
        if self.nodes[sub].kind.task().is_none() {
            // Task sub-nodes report through their task events; others when they end.
            let phase = match &result {
                Ok(()) => task_execution::Phase::Succeeded,
                Err(_) => task_execution::Phase::Failed,
            };
            self.array_sub_task_event(a, i, sub, phase);
        }
        let n = &self.nodes[sub];
        let phase = n.phase();
        let item = Item {
            phase: phase as u8,
            cache: self.cache_status_of(sub) as u8,
            attempt: u16::try_from(n.rec.attempt).unwrap_or(u16::MAX),
        };
        // A task's node has nothing under it: only what the item needs stays. A dynamic
        // task's or a subworkflow's keeps its node (and scope) to the end.
        let release = n.kind.task().is_some() && n.state.child_scope().is_none();
        let kept = (release && phase.is_success()).then(|| match self.outputs.get(&sub) {
            Some(m) => ItemOutputs::Memory(m.clone()),
            None => ItemOutputs::File(n.rec.output_path.as_str().into()),
        });
        let Some(st) = self.nodes[a].state.array_mut() else {
            return;
        };
        if let Some(st_item) = st.items.get_mut(i as usize) {
            *st_item = item;
        }
        if release {
            st.live.remove(&i);
            if let Some(o) = kept.filter(|_| st.has_outputs) {
                st.outputs.insert(i, o);
            }
        }
        st.running = st.running.saturating_sub(1);
        match msg {
            None => {
                st.succeeded += 1;
                metrics::counter!(m::ARRAY_SUBNODES, "phase" => "SUCCEEDED").increment(1);
            }
            Some(msg) => {
                st.failed += 1;
                st.errors.collect(i, &msg);
                metrics::counter!(m::ARRAY_SUBNODES, "phase" => "FAILED").increment(1);
            }
        }
        if release {
            self.release_node(sub);
        }
        self.array_check(a);
    }

    /// Aborts every running sub-node (and what runs under it).
    pub(super) fn abort_array(&mut self, a: usize, reason: &str) {
        let live: Vec<usize> = match self.nodes[a].state.array_mut() {
            Some(st) => {
                st.finishing = true;
                st.live.values().copied().collect()
            }
            None => return,
        };
        for sub in live {
            self.abort_node(sub, reason, true);
        }
    }

    /// A released item's outputs file (none: no outputs).
    async fn read_item_outputs(&self, path: &str) -> Result<Arc<LiteralMap>, String> {
        if path.is_empty() {
            return Ok(Arc::new(LiteralMap::default()));
        }
        let bytes = self
            .shared
            .blob
            .get(path)
            .await
            .map_err(|e| format!("failed to read the outputs of a map task item: {e}"))?;
        LiteralMap::decode(bytes)
            .map(Arc::new)
            .map_err(|e| format!("invalid outputs file {path}: {e}"))
    }

    /// Every item ended and enough succeeded: gather the outputs and succeed.
    pub(super) async fn array_gather(&mut self, a: usize) {
        if self.nodes[a].phase() != NodePhase::Running {
            return;
        }
        let Some(st) = self.nodes[a].state.array_mut() else {
            return;
        };
        let spec = st.spec.clone();
        let size = st.size;
        let has_outputs = st.has_outputs;
        let succeeded: Vec<bool> = st
            .items
            .iter()
            .map(|it| it.phase() == NodePhase::Succeeded)
            .collect();
        let live = st.live.clone();
        let mut kept = std::mem::take(&mut st.outputs);
        let vars = spec.output_vars();
        let mut cols: BTreeMap<String, Vec<Literal>> = vars
            .iter()
            .map(|v| (v.clone(), Vec::with_capacity(size)))
            .collect();
        for (i, &item_ok) in succeeded.iter().enumerate() {
            let ok = match live.get(&(i as u32)) {
                Some(&sub) => self.nodes[sub].phase() == NodePhase::Succeeded,
                None => item_ok,
            };
            if !ok {
                for v in &vars {
                    if let Some(c) = cols.get_mut(v) {
                        c.push(none_literal());
                    }
                }
                continue;
            }
            if !has_outputs {
                continue;
            }
            let outputs = match (live.get(&(i as u32)), kept.remove(&(i as u32))) {
                (Some(&sub), _) => {
                    let o = self.node_outputs(sub).await;
                    // Gathered: the sub-node's own copy is no longer needed in memory.
                    self.outputs.remove(&sub);
                    o
                }
                (None, Some(ItemOutputs::Memory(m))) => Ok(m),
                (None, Some(ItemOutputs::File(path))) => self.read_item_outputs(&path).await,
                (None, None) => Ok(Arc::new(LiteralMap::default())),
            };
            match outputs {
                Ok(o) => {
                    for (k, v) in &o.literals {
                        cols.entry(k.clone()).or_default().push(v.clone());
                    }
                }
                Err(e) => {
                    let err = self.exec_error(ErrorKind::System, "OutputsNotFound", e);
                    self.node_terminal(a, NodePhase::Failed, Some(err));
                    return;
                }
            }
        }
        let map = LiteralMap {
            literals: cols
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        Literal {
                            value: Some(literal::Value::Collection(LiteralCollection {
                                literals: v,
                            })),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        };
        let path = layout::outputs_file(&self.nodes[a].output_dir());
        if let Err(e) = self
            .shared
            .put_blob(&path, Bytes::from(map.encode_to_vec()))
            .await
        {
            let err = self.exec_error(
                ErrorKind::System,
                "StorageError",
                format!("failed to store the array node's outputs: {e}"),
            );
            self.node_terminal(a, NodePhase::Failed, Some(err));
            return;
        }
        let uri = self.shared.blob.native_url(&path);
        let eris = self.array_all_resources(a);
        self.array_task_event(
            a,
            task_execution::Phase::Succeeded,
            eris,
            Some(task_execution_event::OutputResult::OutputUri(uri)),
        );
        self.node_succeeded(a, path, Some(Arc::new(map)));
    }

    /// Whether array `a`'s task sub-nodes read the array node's own `inputs.pb`.
    pub(super) fn array_reads_whole_inputs(&self, a: usize) -> bool {
        self.nodes[a]
            .kind
            .array()
            .is_some_and(|spec| spec.whole_inputs_file)
    }

    /// Inputs of sub-node `sub` (index `i` of array `a`), written to its `inputs.pb` unless
    /// it reads the array node's. On failure the sub-node fails.
    pub(super) async fn array_sub_inputs(
        &mut self,
        a: usize,
        i: u32,
        sub: usize,
    ) -> Option<Arc<LiteralMap>> {
        if self.array_reads_whole_inputs(a) && self.nodes[sub].kind.task().is_some() {
            return Some(Arc::new(LiteralMap::default()));
        }
        let inputs = match self.nodes[a]
            .state
            .array_ref()
            .and_then(|s| s.inputs.clone())
        {
            Some(i) => Ok(i),
            None => {
                let path = self.nodes[a].inputs_file();
                match self.shared.blob.get(&path).await {
                    Ok(b) => LiteralMap::decode(b)
                        .map(Arc::new)
                        .map_err(|e| format!("invalid {path}: {e}")),
                    Err(e) => Err(format!("cannot read the array node's inputs: {e}")),
                }
            }
        };
        let result = inputs.and_then(|inputs| {
            if let Some(st) = self.nodes[a].state.array_mut() {
                st.inputs = Some(inputs.clone());
            }
            match self.nodes[a].kind.array() {
                Some(spec) => slice_inputs(&inputs, i as usize, &spec.bound_inputs),
                None => Err("array context of a non-array node".into()),
            }
        });
        let sliced = match result {
            Ok(m) => m,
            Err(e) => {
                let err = self.exec_error(ErrorKind::System, "BindingResolutionFailure", e);
                self.mark_queued(sub);
                self.node_terminal(sub, NodePhase::Failed, Some(err));
                return None;
            }
        };
        self.store_node_inputs(sub, sliced).await
    }

    /// The inputs of index `i` of array `a` (for the cache key of a sub-task that reads the
    /// array node's whole inputs).
    pub(super) async fn array_index_inputs(
        &mut self,
        a: usize,
        i: u32,
    ) -> Result<LiteralMap, String> {
        let inputs = match self.nodes[a]
            .state
            .array_ref()
            .and_then(|s| s.inputs.clone())
        {
            Some(i) => i,
            None => {
                let path = self.nodes[a].inputs_file();
                let b = self
                    .shared
                    .blob
                    .get(&path)
                    .await
                    .map_err(|e| format!("cannot read the array node's inputs: {e}"))?;
                let m =
                    Arc::new(LiteralMap::decode(b).map_err(|e| format!("invalid {path}: {e}"))?);
                if let Some(st) = self.nodes[a].state.array_mut() {
                    st.inputs = Some(m.clone());
                }
                m
            }
        };
        match self.nodes[a].kind.array() {
            Some(spec) => slice_inputs(&inputs, i as usize, &spec.bound_inputs),
            None => Err("array context of a non-array node".into()),
        }
    }

    // ------------------------------------------------------------ events

    fn external_resource(
        &self,
        a: usize,
        i: u32,
        sub: usize,
        phase: task_execution::Phase,
    ) -> ExternalResourceInfo {
        let prefix = self.nodes[a]
            .state
            .array_ref()
            .map(|s| s.external_prefix.as_str())
            .unwrap_or_default();
        let n = &self.nodes[sub];
        let logs = n
            .state
            .task()
            .map(|t| t.logs.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|l| {
                let mut l = l.clone();
                l.name = format!("{}-{i}", l.name);
                l
            })
            .collect();
        ExternalResourceInfo {
            external_id: format!("{prefix}-n{i}-{}", n.rec.attempt),
            index: i,
            retry_attempt: n.rec.attempt,
            phase: phase as i32,
            cache_status: self.cache_status_of(sub) as i32,
            logs,
            ..Default::default()
        }
    }

    /// A released item's entry: what its [`Item`] kept (its logs went with its node; the
    /// admin keeps the ones it was sent).
    fn item_resource(&self, a: usize, i: u32, item: Item) -> ExternalResourceInfo {
        let prefix = self.nodes[a]
            .state
            .array_ref()
            .map(|s| s.external_prefix.as_str())
            .unwrap_or_default();
        ExternalResourceInfo {
            external_id: format!("{prefix}-n{i}-{}", item.attempt),
            index: i,
            retry_attempt: u32::from(item.attempt),
            phase: task_phase_of(item.phase()) as i32,
            cache_status: i32::from(item.cache),
            ..Default::default()
        }
    }

    /// A task event of something under array `a` at index `i`: reported in the array node's
    /// next task event.
    pub(super) fn array_sub_task_event(
        &mut self,
        a: usize,
        i: u32,
        sub: usize,
        phase: task_execution::Phase,
    ) {
        let eri = self.external_resource(a, i, sub, phase);
        let Some(st) = self.nodes[a].state.array_mut() else {
            return;
        };
        match st.pending_pos.get(&i) {
            Some(&p) => st.pending[p] = eri,
            None => {
                st.pending_pos.insert(i, st.pending.len());
                st.pending.push(eri);
            }
        }
        self.array_dirty.insert(a);
    }

    /// The state of every index, for the first and the final task event.
    fn array_all_resources(&mut self, a: usize) -> Vec<ExternalResourceInfo> {
        let Some(st) = self.nodes[a].state.array_mut() else {
            return Vec::new();
        };
        st.pending.clear();
        st.pending_pos.clear();
        let Some(st) = self.nodes[a].state.array_ref() else {
            return Vec::new();
        };
        (0..st.size as u32)
            .map(|i| match st.live.get(&i) {
                Some(&sub) => {
                    let phase = task_phase_of(self.nodes[sub].phase());
                    self.external_resource(a, i, sub, phase)
                }
                None => self.item_resource(a, i, st.items[i as usize]),
            })
            .collect()
    }

    /// The array node's first task event: QUEUED, every index UNDEFINED.
    fn array_initial_event(&mut self, a: usize) {
        let eris = self.array_all_resources(a);
        self.array_task_event(a, task_execution::Phase::Queued, eris, None);
    }

    /// The array node ended without success (failed, timed out, aborted).
    pub(super) fn array_terminal_event(
        &mut self,
        a: usize,
        phase: NodePhase,
        error: Option<ExecutionError>,
    ) {
        if self.nodes[a].state.array_ref().is_none() {
            return;
        }
        let eris = self.array_all_resources(a);
        let (p, out) = match phase {
            NodePhase::Aborted => (task_execution::Phase::Aborted, None),
            _ => (
                task_execution::Phase::Failed,
                error.map(task_execution_event::OutputResult::Error),
            ),
        };
        self.array_task_event(a, p, eris, out);
    }

    /// One task event per wake per array node with changed sub-nodes.
    pub(super) fn flush_array_events(&mut self) {
        for a in std::mem::take(&mut self.array_dirty) {
            if self.nodes[a].phase() != NodePhase::Running {
                continue;
            }
            let Some(st) = self.nodes[a].state.array_mut() else {
                continue;
            };
            if st.pending.is_empty() {
                continue;
            }
            let mut eris = std::mem::take(&mut st.pending);
            st.pending_pos.clear();
            eris.sort_by_key(|e| e.index);
            self.array_task_event(a, task_execution::Phase::Running, eris, None);
        }
    }

    #[allow(deprecated)]
    fn array_task_event(
        &mut self,
        a: usize,
        phase: task_execution::Phase,
        external_resources: Vec<ExternalResourceInfo>,
        output_result: Option<task_execution_event::OutputResult>,
    ) {
        let now = ts(self.now_us());
        let n = &mut self.nodes[a];
        if let Some(st) = n.state.array_mut() {
            if st.task_phase == phase as i32 {
                n.rec.task_phase_version += 1;
            } else {
                st.task_phase = phase as i32;
                n.rec.task_phase_version = 0;
            }
        }
        let task_id = n
            .kind
            .array()
            .and_then(|spec| spec.sub_kind.task())
            .and_then(|t| t.id.clone());
        let ev = TaskExecutionEvent {
            task_id,
            parent_node_execution_id: Some(NodeExecutionIdentifier {
                node_id: n.rec.node_id.clone(),
                execution_id: Some(self.id.clone()),
            }),
            retry_attempt: 0,
            phase: phase as i32,
            producer_id: self.shared.config.producer_id.clone(),
            occurred_at: Some(now),
            phase_version: n.rec.task_phase_version,
            task_type: "container_array".into(),
            metadata: Some(TaskExecutionMetadata {
                generated_name: layout::attempt_unique_id(&self.id.name, &n.rec.node_id, 0),
                external_resources,
                plugin_identifier: "k8s-array".into(),
                ..Default::default()
            }),
            event_version: 1,
            reported_at: Some(now),
            input_value: Some(task_execution_event::InputValue::InputUri(
                self.shared.blob.native_url(&n.inputs_file()),
            )),
            output_result,
            ..Default::default()
        };
        self.dirty.insert(a);
        self.batch.task_events.push(ev);
    }
}

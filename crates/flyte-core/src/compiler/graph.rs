//! Compiling one workflow template: node interfaces, bindings, edges, start/end nodes,
//! connections, and the acyclicity and reachability checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use flyteidl::core::connection_set::IdList;
use flyteidl::core::literal_type::Type;
use flyteidl::core::{
    BranchNode, CompiledWorkflow, ConnectionSet, LiteralType, Node, ParameterMap, TypedInterface,
    Variable, VariableMap, WorkflowTemplate, gate_node, if_else_block, node, task_node,
    workflow_node,
};

use super::bindings::{self, Direction};
use super::{CompileError, CompileErrorKind, END_NODE_ID, IdKey, Resolved, START_NODE_ID};
use crate::ids::display_identifier;
use crate::types::{check_type_depth, display_type, same_type};

/// State shared while compiling a primary workflow and the sub-workflows it uses.
pub(crate) struct Compiler<'a> {
    pub resolved: &'a Resolved,
    pub sub_workflows: HashMap<IdKey, &'a WorkflowTemplate>,
    /// `None` while a sub-workflow is being compiled (detects recursion).
    pub compiled_subs: BTreeMap<IdKey, Option<CompiledWorkflow>>,
    pub errors: Vec<CompileError>,
    /// Each referenced task's interface, normalized once and shared by every node that runs
    /// the task: a copy per node (a one-entry `BTreeMap` is a whole 11-slot leaf, ~7 KB with
    /// one input) made a 100,000-node `@dynamic` compile the server's peak.
    pub task_ifaces: HashMap<IdKey, Rc<TypedInterface>>,
}

/// One workflow's graph under construction; node ids borrowed from the template `'t`.
#[derive(Default)]
pub(crate) struct Graph<'t> {
    /// Effective interfaces (outputs after aliases) of top-level nodes, start and end.
    pub ifaces: HashMap<&'t str, Rc<TypedInterface>>,
    pub upstream: BTreeMap<String, BTreeSet<String>>,
    pub downstream: BTreeMap<String, BTreeSet<String>>,
}

impl Graph<'_> {
    pub fn add_edge(&mut self, from: &str, to: &str, direction: Direction) {
        let from = if from.is_empty() { START_NODE_ID } else { from };
        if direction != Direction::Upstream {
            self.downstream
                .entry(from.to_string())
                .or_default()
                .insert(to.to_string());
        }
        if direction != Direction::Downstream {
            self.upstream
                .entry(to.to_string())
                .or_default()
                .insert(from.to_string());
        }
    }
}

/// The cases, then the else node, of a branch.
pub(crate) fn branch_children(b: &BranchNode) -> Vec<&Node> {
    let Some(if_else) = b.if_else.as_deref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(n) = if_else.case.as_ref().and_then(|c| c.then_node.as_deref()) {
        out.push(n);
    }
    out.extend(if_else.other.iter().filter_map(|c| c.then_node.as_deref()));
    if let Some(if_else_block::Default::ElseNode(n)) = &if_else.default {
        out.push(n);
    }
    out
}

/// Branch children are renamed `<branch id>-<child id>`, as propeller does.
fn child_id(parent: &str, child: &str) -> String {
    format!("{parent}-{child}")
}

/// Checks every variable has a name and a type.
pub(crate) fn validate_interface_vars(iface: &TypedInterface) -> Vec<CompileErrorKind> {
    let mut out = Vec::new();
    for (direction, vars) in [("input", &iface.inputs), ("output", &iface.outputs)] {
        for (name, var) in vars.iter().flat_map(|v| v.variables.iter()) {
            if name.is_empty() {
                out.push(CompileErrorKind::InvalidVariable {
                    direction,
                    var: name.clone(),
                    problem: "has an empty name",
                });
            }
            match &var.r#type {
                None => out.push(CompileErrorKind::InvalidVariable {
                    direction,
                    var: name.clone(),
                    problem: "has no type",
                }),
                Some(t) => {
                    if let Err(error) = check_type_depth(t) {
                        out.push(CompileErrorKind::TooDeep {
                            place: format!("{direction} '{name}'"),
                            error,
                        });
                    }
                }
            }
        }
    }
    out
}

fn normalized(iface: Option<&TypedInterface>) -> TypedInterface {
    let iface = iface.cloned().unwrap_or_default();
    TypedInterface {
        inputs: Some(iface.inputs.unwrap_or_default()),
        outputs: Some(iface.outputs.unwrap_or_default()),
    }
}

fn vars(map: &BTreeMap<String, Variable>) -> VariableMap {
    VariableMap {
        variables: map.clone(),
    }
}

fn list_of(t: Option<&LiteralType>) -> Option<LiteralType> {
    t.map(|t| LiteralType {
        r#type: Some(Type::CollectionType(Box::new(t.clone()))),
        ..Default::default()
    })
}

impl<'a> Compiler<'a> {
    fn err(&mut self, node_id: &str, kind: CompileErrorKind) {
        self.errors.push(CompileError::node(node_id, kind));
    }

    /// Compiles one template. Returns `None` if it had errors (they are collected).
    pub fn compile_template<'t>(
        &mut self,
        template: &'t WorkflowTemplate,
    ) -> Option<CompiledWorkflow> {
        let before = self.errors.len();
        let wf_name = template
            .id
            .as_ref()
            .map(display_identifier)
            .unwrap_or_else(|| "<unnamed>".into());
        if template.nodes.is_empty() {
            self.errors
                .push(CompileError::workflow(CompileErrorKind::NoNodes {
                    workflow: wf_name,
                }));
            return None;
        }
        let iface = normalized(template.interface.as_ref());
        for kind in validate_interface_vars(&iface) {
            self.err(START_NODE_ID, kind);
        }

        let mut g = Graph::default();
        g.ifaces.insert(
            START_NODE_ID,
            Rc::new(TypedInterface {
                inputs: Some(VariableMap::default()),
                outputs: iface.inputs.clone(),
            }),
        );
        g.ifaces.insert(
            END_NODE_ID,
            Rc::new(TypedInterface {
                inputs: iface.outputs.clone(),
                outputs: Some(VariableMap::default()),
            }),
        );

        let top_level = self.index_nodes(template);
        // Pass 1: interfaces whose shape does not depend on bindings.
        let mut node_ifaces: HashMap<&'t str, Rc<TypedInterface>> = HashMap::new();
        for n in template
            .nodes
            .iter()
            .filter(|n| top_level.contains(n.id.as_str()))
        {
            if let Some(i) = self.node_interface(n, &n.id) {
                g.ifaces.insert(&n.id, self.effective(n, &i));
                node_ifaces.insert(&n.id, i);
            }
        }
        // Pass 2: branch and approve-gate inputs are inferred from their bindings.
        for n in template
            .nodes
            .iter()
            .filter(|n| top_level.contains(n.id.as_str()))
        {
            if infers_inputs(n)
                && let Some(i) = node_ifaces.get_mut(n.id.as_str())
            {
                let inferred = bindings::infer_inputs(self, &g, n);
                let own = Rc::make_mut(i);
                own.inputs = Some(inferred.clone());
                if is_approve(n) {
                    own.outputs = Some(inferred);
                }
                let effective = self.effective(n, i);
                g.ifaces.insert(&n.id, effective);
            }
        }
        // Pass 3: dependencies and typed bindings, in id order like propeller.
        let mut sorted: Vec<&Node> = template
            .nodes
            .iter()
            .filter(|n| top_level.contains(n.id.as_str()))
            .collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        for n in sorted {
            self.check_dependencies(&mut g, n, &n.id, Direction::Both);
            if let Some(i) = node_ifaces.get(n.id.as_str()) {
                bindings::validate(
                    self,
                    &mut g,
                    &n.id,
                    &n.inputs,
                    i.inputs.as_ref(),
                    Direction::Both,
                );
            }
            self.check_children(&mut g, n, &n.id);
        }
        if let Some(f) = &template.failure_node {
            if let Some(i) = self.node_interface(f, &f.id) {
                // Only its alias errors: the failure node is not in the graph.
                self.effective(f, &i);
                self.check_dependencies(&mut g, f, &f.id, Direction::Upstream);
                bindings::validate(
                    self,
                    &mut g,
                    &f.id,
                    &f.inputs,
                    i.inputs.as_ref(),
                    Direction::Upstream,
                );
            }
            self.check_children(&mut g, f, &f.id);
        }
        bindings::validate(
            self,
            &mut g,
            END_NODE_ID,
            &template.outputs,
            iface.outputs.as_ref(),
            Direction::Both,
        );

        // Nodes with nothing upstream start with the workflow; nothing downstream, end it.
        for &id in &top_level {
            if !g.upstream.contains_key(id) {
                g.add_edge(START_NODE_ID, id, Direction::Both);
            }
            if !g.downstream.contains_key(id) {
                g.add_edge(id, END_NODE_ID, Direction::Both);
            }
        }
        self.check_acyclic_and_reachable(&g, &top_level);

        if self.errors.len() > before {
            return None;
        }
        // The interfaces are not part of the result: freed before it is built (at 100,000
        // nodes they and the result alive at once made the compile the process's peak).
        drop(node_ifaces);
        g.ifaces = HashMap::new();
        Some(build_compiled(template, iface, g))
    }

    /// Reports empty, reserved and duplicate ids; returns the ids of usable top-level nodes.
    fn index_nodes<'t>(&mut self, template: &'t WorkflowTemplate) -> BTreeSet<&'t str> {
        let mut seen = BTreeSet::new();
        let mut reported = BTreeSet::new();
        for n in &template.nodes {
            if n.id.is_empty() {
                self.errors
                    .push(CompileError::workflow(CompileErrorKind::ValueRequired {
                        field: "node id".into(),
                    }));
            } else if n.id == START_NODE_ID || n.id == END_NODE_ID {
                self.err(&n.id, CompileErrorKind::ReservedNodeId(n.id.clone()));
            } else if !seen.insert(n.id.as_str()) && reported.insert(n.id.as_str()) {
                self.err(&n.id, CompileErrorKind::DuplicateNodeId);
            }
        }
        seen
    }

    /// The node's outputs after `output_aliases` are applied.
    fn effective(&mut self, n: &Node, iface: &Rc<TypedInterface>) -> Rc<TypedInterface> {
        if n.output_aliases.is_empty() {
            return Rc::clone(iface);
        }
        let mut outputs = iface.outputs.clone().unwrap_or_default().variables;
        let mut aliased = BTreeSet::new();
        for a in &n.output_aliases {
            if !aliased.insert(a.var.clone()) {
                self.err(
                    &n.id,
                    CompileErrorKind::DuplicateAlias { var: a.var.clone() },
                );
                continue;
            }
            match outputs.remove(&a.var) {
                Some(v) => {
                    outputs.insert(a.alias.clone(), v);
                }
                None => self.err(
                    &n.id,
                    CompileErrorKind::AliasNotFound {
                        var: a.var.clone(),
                        alias: a.alias.clone(),
                    },
                ),
            }
        }
        Rc::new(TypedInterface {
            inputs: iface.inputs.clone(),
            outputs: Some(vars(&outputs)),
        })
    }

    /// The interface of a node's target; `id` is the node's (possibly renamed) id.
    fn node_interface(&mut self, n: &Node, id: &str) -> Option<Rc<TypedInterface>> {
        let iface = match &n.target {
            None => {
                self.err(id, CompileErrorKind::MissingTarget);
                return None;
            }
            // Shared by the nodes of the task, already normalized.
            Some(node::Target::TaskNode(t)) => {
                let shared = self.task_interface(t, id)?;
                return self.checked(shared, id);
            }
            Some(node::Target::WorkflowNode(w)) => self.workflow_interface(n, w, id)?,
            Some(node::Target::BranchNode(b)) => self.branch_interface(b, id)?,
            Some(node::Target::GateNode(gate)) => self.gate_interface(gate, id)?,
            Some(node::Target::ArrayNode(a)) => {
                let Some(sub) = a.node.as_deref() else {
                    self.err(id, CompileErrorKind::ArrayWithoutNode);
                    return None;
                };
                let sub_iface = self.node_interface(sub, &child_id(id, &sub.id))?;
                self.array_interface(a, &sub_iface, id)
            }
        };
        self.checked(Rc::new(normalized(Some(&iface))), id)
    }

    /// The interface if its variables are valid; its problems are reported for node `id`.
    fn checked(&mut self, iface: Rc<TypedInterface>, id: &str) -> Option<Rc<TypedInterface>> {
        let problems = validate_interface_vars(&iface);
        let ok = problems.is_empty();
        for kind in problems {
            self.err(id, kind);
        }
        ok.then_some(iface)
    }

    fn task_interface(
        &mut self,
        t: &flyteidl::core::TaskNode,
        id: &str,
    ) -> Option<Rc<TypedInterface>> {
        let Some(task_node::Reference::ReferenceId(task_id)) = &t.reference else {
            self.err(
                id,
                CompileErrorKind::ValueRequired {
                    field: "task_node.reference_id".into(),
                },
            );
            return None;
        };
        let key = IdKey::from(task_id);
        if let Some(iface) = self.task_ifaces.get(&key) {
            return Some(Rc::clone(iface));
        }
        match self.resolved.tasks.get(&key) {
            Some(task) => {
                let iface = Rc::new(normalized(task.interface.as_ref()));
                self.task_ifaces.insert(key, Rc::clone(&iface));
                Some(iface)
            }
            None => {
                self.err(
                    id,
                    CompileErrorKind::TaskNotFound(display_identifier(task_id)),
                );
                None
            }
        }
    }

    fn workflow_interface(
        &mut self,
        n: &Node,
        w: &flyteidl::core::WorkflowNode,
        id: &str,
    ) -> Option<TypedInterface> {
        match &w.reference {
            Some(workflow_node::Reference::LaunchplanRef(lp)) => {
                let key = IdKey::from(lp);
                let Some(iface) = self.resolved.launch_plans.get(&key) else {
                    self.err(
                        id,
                        CompileErrorKind::LaunchPlanNotFound(display_identifier(lp)),
                    );
                    return None;
                };
                let mut iface = normalized(Some(iface));
                iface.inputs = Some(match self.resolved.launch_plan_inputs.get(&key) {
                    Some(params) => exposed_inputs(params, n),
                    // Without the expected inputs defaults are unknown: expose what is bound.
                    None => only_bound(iface.inputs.take().unwrap_or_default(), n),
                });
                Some(iface)
            }
            Some(workflow_node::Reference::SubWorkflowRef(sub)) => {
                let key = IdKey::from(sub);
                let Some(template) = self.sub_workflows.get(&key).copied() else {
                    self.err(
                        id,
                        CompileErrorKind::SubWorkflowNotFound(display_identifier(sub)),
                    );
                    return None;
                };
                self.compile_sub_workflow(&key, template, id)?;
                Some(normalized(template.interface.as_ref()))
            }
            None => {
                self.err(
                    id,
                    CompileErrorKind::ValueRequired {
                        field: "workflow_node.launchplan_ref or sub_workflow_ref".into(),
                    },
                );
                None
            }
        }
    }

    fn compile_sub_workflow(
        &mut self,
        key: &IdKey,
        template: &WorkflowTemplate,
        id: &str,
    ) -> Option<()> {
        match self.compiled_subs.get(key) {
            Some(Some(_)) => return Some(()),
            Some(None) => {
                self.err(id, CompileErrorKind::RecursiveSubWorkflow(key.to_string()));
                return None;
            }
            None => {}
        }
        self.compiled_subs.insert(key.clone(), None);
        match self.compile_template(template) {
            Some(compiled) => {
                self.compiled_subs.insert(key.clone(), Some(compiled));
                Some(())
            }
            None => {
                // Leave the in-progress marker out so the failure is reported once.
                self.compiled_subs.remove(key);
                None
            }
        }
    }

    /// Outputs shared by every branch (with identical types); inputs are filled from the
    /// branch node's bindings later.
    fn branch_interface(&mut self, b: &BranchNode, id: &str) -> Option<TypedInterface> {
        let Some(if_else) = b.if_else.as_deref() else {
            self.err(id, CompileErrorKind::BranchWithoutCase);
            return None;
        };
        if if_else
            .case
            .as_ref()
            .and_then(|c| c.then_node.as_ref())
            .is_none()
        {
            self.err(id, CompileErrorKind::BranchWithoutCase);
            return None;
        }
        let mut common: Option<BTreeMap<String, Variable>> = None;
        let mut ok = true;
        for child in branch_children(b) {
            let cid = child_id(id, &child.id);
            let Some(ci) = self.node_interface(child, &cid) else {
                ok = false;
                continue;
            };
            let ci = self.effective(child, &ci);
            let outs = ci.outputs.clone().unwrap_or_default().variables;
            common = Some(match common {
                None => outs,
                Some(prev) => self.intersect_outputs(prev, &outs, &cid),
            });
        }
        ok.then(|| TypedInterface {
            inputs: Some(VariableMap::default()),
            outputs: Some(vars(&common.unwrap_or_default())),
        })
    }

    fn intersect_outputs(
        &mut self,
        prev: BTreeMap<String, Variable>,
        next: &BTreeMap<String, Variable>,
        child: &str,
    ) -> BTreeMap<String, Variable> {
        let mut out = BTreeMap::new();
        for (name, var) in prev {
            let Some(other) = next.get(&name) else {
                continue;
            };
            if let (Some(a), Some(b)) = (&var.r#type, &other.r#type)
                && !same_type(a, b)
            {
                self.err(
                    child,
                    CompileErrorKind::BranchOutputMismatch {
                        var: name.clone(),
                        first: display_type(a),
                        other: display_type(b),
                    },
                );
            }
            out.insert(name, var);
        }
        out
    }

    fn gate_interface(
        &mut self,
        gate: &flyteidl::core::GateNode,
        id: &str,
    ) -> Option<TypedInterface> {
        match &gate.condition {
            Some(gate_node::Condition::Approve(_)) | Some(gate_node::Condition::Sleep(_)) => {
                Some(normalized(None))
            }
            Some(gate_node::Condition::Signal(s)) => {
                let Some(t) = &s.r#type else {
                    self.err(
                        id,
                        CompileErrorKind::ValueRequired {
                            field: "gate_node.signal.type".into(),
                        },
                    );
                    return None;
                };
                if s.output_variable_name.is_empty() {
                    self.err(
                        id,
                        CompileErrorKind::ValueRequired {
                            field: "gate_node.signal.output_variable_name".into(),
                        },
                    );
                    return None;
                }
                let mut outputs = BTreeMap::new();
                outputs.insert(
                    s.output_variable_name.clone(),
                    Variable {
                        r#type: Some(t.clone()),
                        ..Default::default()
                    },
                );
                Some(TypedInterface {
                    inputs: Some(VariableMap::default()),
                    outputs: Some(vars(&outputs)),
                })
            }
            None => {
                self.err(id, CompileErrorKind::GateWithoutCondition);
                None
            }
        }
    }

    /// flytekit sends the sub-node's interface already list-wrapped; when it says the
    /// interface is the original one, wrap inputs (except `bound_inputs`) and outputs here.
    fn array_interface(
        &mut self,
        a: &flyteidl::core::ArrayNode,
        sub: &TypedInterface,
        id: &str,
    ) -> TypedInterface {
        let inputs = sub.inputs.clone().unwrap_or_default().variables;
        for bound in &a.bound_inputs {
            if !inputs.contains_key(bound) {
                self.err(
                    id,
                    CompileErrorKind::UnknownBoundInput { var: bound.clone() },
                );
            }
        }
        if a.is_original_sub_node_interface.as_ref().map(|b| b.value) != Some(true) {
            return TypedInterface {
                inputs: Some(vars(&inputs)),
                outputs: sub.outputs.clone(),
            };
        }
        let wrap = |(name, var): (&String, &Variable), keep: bool| {
            let t = if keep {
                var.r#type.clone()
            } else {
                list_of(var.r#type.as_ref())
            };
            (
                name.clone(),
                Variable {
                    r#type: t,
                    ..var.clone()
                },
            )
        };
        let inputs = inputs
            .iter()
            .map(|kv| wrap(kv, a.bound_inputs.contains(kv.0)))
            .collect();
        let outputs = sub
            .outputs
            .clone()
            .unwrap_or_default()
            .variables
            .iter()
            .map(|kv| wrap(kv, false))
            .collect();
        TypedInterface {
            inputs: Some(vars(&inputs)),
            outputs: Some(vars(&outputs)),
        }
    }

    fn check_dependencies(&mut self, g: &mut Graph, n: &Node, id: &str, direction: Direction) {
        for up in &n.upstream_node_ids {
            if g.ifaces.contains_key(up.as_str()) && up != END_NODE_ID {
                g.add_edge(up, id, direction);
            } else {
                self.err(
                    id,
                    CompileErrorKind::DependencyNotFound {
                        upstream: up.clone(),
                    },
                );
            }
        }
    }

    /// Branch cases: conditions over the branch's inputs, and each child's bindings (which
    /// refer to top-level nodes and are recorded as upstream-only edges of the child).
    fn check_children(&mut self, g: &mut Graph, n: &Node, id: &str) {
        if !matches!(n.target, Some(node::Target::BranchNode(_))) {
            return;
        }
        let input_types = g
            .ifaces
            .get(id)
            .and_then(|i| i.inputs.clone())
            .unwrap_or_default();
        self.check_branch(g, n, id, &input_types);
    }

    /// [`Self::check_children`] of a branch whose inputs are `input_types` (a nested branch
    /// is no top-level node: its inputs come from its own bindings, as flytekit writes them).
    fn check_branch(&mut self, g: &mut Graph, n: &Node, id: &str, input_types: &VariableMap) {
        let Some(node::Target::BranchNode(b)) = &n.target else {
            return;
        };
        let Some(if_else) = b.if_else.as_deref() else {
            return;
        };
        let cases = if_else
            .case
            .as_deref()
            .into_iter()
            .chain(if_else.other.iter());
        for case in cases {
            match &case.condition {
                None => self.err(id, CompileErrorKind::BranchWithoutCondition),
                Some(c) => bindings::validate_condition(self, id, c, input_types),
            }
            if case.then_node.is_none() {
                self.err(id, CompileErrorKind::BranchWithoutThenNode);
            }
        }
        if if_else.default.is_none() {
            self.err(id, CompileErrorKind::BranchWithoutDefault);
        }
        for child in branch_children(b) {
            let cid = child_id(id, &child.id);
            // Interface errors were reported while inferring the branch's interface.
            let mut scratch = Vec::new();
            std::mem::swap(&mut scratch, &mut self.errors);
            let ci = self.node_interface(child, &cid);
            std::mem::swap(&mut scratch, &mut self.errors);
            let mut child_inputs = VariableMap::default();
            if let Some(ci) = ci {
                let mut ci = Rc::unwrap_or_clone(ci);
                if infers_inputs(child) {
                    ci.inputs = Some(bindings::infer_inputs(self, g, child));
                }
                self.check_dependencies(g, child, &cid, Direction::Upstream);
                bindings::validate(
                    self,
                    g,
                    &cid,
                    &child.inputs,
                    ci.inputs.as_ref(),
                    Direction::Upstream,
                );
                child_inputs = ci.inputs.unwrap_or_default();
            }
            self.check_branch(g, child, &cid, &child_inputs);
        }
    }

    fn check_acyclic_and_reachable(&mut self, g: &Graph, top_level: &BTreeSet<&str>) {
        if let Some(cycle) = find_cycle(&g.downstream) {
            self.err(&cycle[0], CompileErrorKind::Cycle(display_cycle(&cycle)));
            return;
        }
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack = vec![START_NODE_ID];
        while let Some(id) = stack.pop() {
            if seen.insert(id)
                && let Some(next) = g.downstream.get(id)
            {
                stack.extend(next.iter().map(String::as_str));
            }
        }
        let unreachable: Vec<&str> = top_level
            .iter()
            .copied()
            .filter(|id| !seen.contains(id))
            .collect();
        if !unreachable.is_empty() {
            self.errors
                .push(CompileError::workflow(CompileErrorKind::Unreachable(
                    unreachable.join(", "),
                )));
        }
    }
}

fn infers_inputs(n: &Node) -> bool {
    matches!(n.target, Some(node::Target::BranchNode(_))) || is_approve(n)
}

fn is_approve(n: &Node) -> bool {
    matches!(&n.target, Some(node::Target::GateNode(g)) if matches!(g.condition, Some(gate_node::Condition::Approve(_))))
}

/// A launch plan node exposes the launch plan's required inputs plus the optional ones the
/// node binds (propeller's `ValidateUnderlyingInterface`).
fn exposed_inputs(params: &ParameterMap, n: &Node) -> VariableMap {
    let bound: BTreeSet<&str> = n.inputs.iter().map(|b| b.var.as_str()).collect();
    let variables = params
        .parameters
        .iter()
        .filter(|(name, p)| {
            matches!(
                p.behavior,
                Some(flyteidl::core::parameter::Behavior::Required(true))
            ) || bound.contains(name.as_str())
        })
        .filter_map(|(name, p)| Some((name.clone(), p.var.clone()?)))
        .collect();
    VariableMap { variables }
}

fn only_bound(mut inputs: VariableMap, n: &Node) -> VariableMap {
    inputs
        .variables
        .retain(|name, _| n.inputs.iter().any(|b| &b.var == name));
    inputs
}

/// A cycle in the downstream graph, as the node ids along it (first repeated at the end).
///
/// Depth-first with an explicit stack: a linear chain is as deep as it is long, and one
/// stack frame per node overflowed the thread's stack at about 10,000 nodes (issue 11).
fn find_cycle(downstream: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    let children = |id: &str| downstream.get(id).into_iter().flatten();
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    for root in downstream.keys() {
        if marks.contains_key(root.as_str()) {
            continue;
        }
        marks.insert(root, Mark::Active);
        // The path from `root`: each node with the iterator over its remaining children.
        let mut stack = vec![(root.as_str(), children(root))];
        while let Some((id, next)) = stack.last_mut() {
            let id = *id;
            let Some(next) = next.next() else {
                marks.insert(id, Mark::Done);
                stack.pop();
                continue;
            };
            match marks.get(next.as_str()) {
                Some(Mark::Done) => {}
                Some(Mark::Active) => {
                    let start = stack.iter().position(|(p, _)| *p == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|(p, _)| p.to_string()).collect();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                None => {
                    marks.insert(next, Mark::Active);
                    stack.push((next.as_str(), children(next)));
                }
            }
        }
    }
    None
}

/// A cycle for a message: every id of a short one; the first and last ten of a long one, so
/// a cycle through 100,000 nodes does not make a multi-megabyte error.
fn display_cycle(cycle: &[String]) -> String {
    const SHOWN: usize = 10;
    if cycle.len() <= 2 * SHOWN + 1 {
        return cycle.join(" -> ");
    }
    format!(
        "{} -> ... ({} more) ... -> {}",
        cycle[..SHOWN].join(" -> "),
        cycle.len() - 2 * SHOWN,
        cycle[cycle.len() - SHOWN..].join(" -> ")
    )
}

/// The compiled template: start-node and end-node first, then the nodes as written, with
/// sorted `upstream_node_ids` and branch children renamed; plus the connections.
fn build_compiled(
    template: &WorkflowTemplate,
    iface: TypedInterface,
    g: Graph,
) -> CompiledWorkflow {
    let start = Node {
        id: START_NODE_ID.into(),
        ..Default::default()
    };
    let end = Node {
        id: END_NODE_ID.into(),
        inputs: template.outputs.clone(),
        ..Default::default()
    };
    let mut nodes = vec![start, end];
    nodes.extend(template.nodes.iter().map(|n| finalize_node(n, None)));
    // The graph's edges move into the connections rather than being copied.
    let to_lists = |m: BTreeMap<String, BTreeSet<String>>| {
        m.into_iter()
            .map(|(k, v)| {
                (
                    k,
                    IdList {
                        ids: v.into_iter().collect(),
                    },
                )
            })
            .collect()
    };
    CompiledWorkflow {
        template: Some(WorkflowTemplate {
            interface: Some(iface),
            nodes,
            failure_node: template
                .failure_node
                .as_ref()
                .map(|n| finalize_node(n, None)),
            // Not `..template.clone()`: that copied every node only to drop the copies.
            id: template.id.clone(),
            metadata: template.metadata.clone(),
            outputs: template.outputs.clone(),
            metadata_defaults: template.metadata_defaults,
        }),
        connections: Some(ConnectionSet {
            downstream: to_lists(g.downstream),
            upstream: to_lists(g.upstream),
        }),
    }
}

fn finalize_node(n: &Node, parent: Option<&str>) -> Node {
    let mut out = n.clone();
    if let Some(p) = parent {
        out.id = child_id(p, &n.id);
    }
    out.upstream_node_ids.sort();
    if let Some(node::Target::BranchNode(b)) = &mut out.target
        && let Some(if_else) = b.if_else.as_deref_mut()
    {
        let id = out.id.clone();
        if let Some(then) = if_else
            .case
            .as_mut()
            .and_then(|c| c.then_node.as_deref_mut())
        {
            *then = finalize_node(then, Some(&id));
        }
        for case in &mut if_else.other {
            if let Some(then) = case.then_node.as_deref_mut() {
                *then = finalize_node(then, Some(&id));
            }
        }
        if let Some(if_else_block::Default::ElseNode(e)) = &mut if_else.default {
            **e = finalize_node(e, Some(&id));
        }
    }
    out
}

//! Property tests of the workflow compiler (docs/fuzzing.md).
//!
//! - Random workflow templates (task, launch-plan, sub-workflow, branch, gate, array and
//!   failure nodes; promises to real, missing and reserved nodes; duplicate ids; cycles;
//!   self-recursive sub-workflows; random types): compiling never panics, an error result
//!   carries at least one readable error, a success is a well-formed graph (acyclic, every
//!   node reachable from `start-node`), and compiling is deterministic and insensitive to the
//!   order of `upstream_node_ids` (what `canonical_spec` relies on).
//! - Valid workflows built as random DAGs always compile, with exactly the declared edges,
//!   whatever order the nodes are written in.
//! - Nesting: workflows nested as deep as the protobuf decoder lets through (branches in
//!   branches, arrays in arrays) compile on a 2 MiB stack, the size of a tokio worker's.

mod proptest_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flyte_core::compiler::{
    END_NODE_ID, IdKey, Resolved, START_NODE_ID, canonical_spec, compile_task, compile_workflow,
    compile_workflow_template, referenced_entities,
};
use flyteidl::admin::WorkflowSpec;
use flyteidl::core::literal_type::Type;
use flyteidl::core::{
    Alias, ApproveCondition, ArrayNode, Binding, BindingData, BindingDataCollection,
    BindingDataMap, BooleanExpression, BranchNode, ComparisonExpression, CompiledWorkflowClosure,
    ConjunctionExpression, Container, GateNode, Identifier, IfBlock, IfElseBlock, LiteralType,
    Node, Operand, OutputReference, Parameter, ParameterMap, PromiseAttribute, ResourceType,
    SignalCondition, SleepCondition, TaskMetadata, TaskNode, TaskTemplate, TypedInterface,
    Variable, VariableMap, WorkflowNode, WorkflowTemplate, binding_data, boolean_expression,
    gate_node, if_else_block, node, operand, parameter, promise_attribute, scalar, task_node,
    task_template, workflow_node,
};
use proptest::prelude::*;
use proptest_support::{literal_type, primitive, wrap};
use prost::Message;

// ---------------------------------------------------------------------------------------
// The universe a random workflow lives in: a few tasks, a launch plan, sub-workflows.

fn ident(rt: ResourceType, name: &str) -> Identifier {
    Identifier {
        resource_type: rt as i32,
        project: "p".into(),
        domain: "d".into(),
        name: name.into(),
        version: "v".into(),
        ..Default::default()
    }
}

fn int() -> LiteralType {
    wrap(Type::Simple(1))
}

/// Types for interface variables: mostly ones that bind to each other, sometimes anything.
fn var_type() -> impl Strategy<Value = LiteralType> {
    prop_oneof![
        4 => Just(int()),
        2 => Just(wrap(Type::Simple(3))),
        1 => Just(wrap(Type::CollectionType(Box::new(int())))),
        1 => Just(wrap(Type::UnionType(flyteidl::core::UnionType {
            variants: vec![int(), wrap(Type::Simple(0))],
        }))),
        1 => literal_type(),
    ]
}

fn var_map(names: &'static str) -> impl Strategy<Value = VariableMap> {
    prop::collection::btree_map(names, prop::option::weighted(0.97, var_type()), 0..3).prop_map(
        |m| VariableMap {
            variables: m
                .into_iter()
                .map(|(k, t)| {
                    (
                        k,
                        Variable {
                            r#type: t,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        },
    )
}

fn interface() -> impl Strategy<Value = TypedInterface> {
    (
        prop::option::weighted(0.95, var_map("[ab]")),
        prop::option::weighted(0.95, var_map("o[01]")),
    )
        .prop_map(|(inputs, outputs)| TypedInterface { inputs, outputs })
}

fn task_template(name: String, iface: TypedInterface) -> TaskTemplate {
    TaskTemplate {
        id: Some(ident(ResourceType::Task, &name)),
        r#type: "python-task".into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(iface),
        target: Some(task_template::Target::Container(Container {
            image: "img".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Tasks t0..t2 and launch plan lp0 resolved; t3, lp1 and sw3 are referenced but missing.
fn resolved() -> impl Strategy<Value = Resolved> {
    (
        prop::collection::vec(interface(), 3),
        interface(),
        prop::option::of(prop::collection::btree_map(
            "[ab]",
            (var_type(), any::<bool>()),
            0..3,
        )),
    )
        .prop_map(|(task_ifaces, lp_iface, lp_inputs)| {
            let tasks = task_ifaces
                .into_iter()
                .enumerate()
                .map(|(i, iface)| {
                    let t = task_template(format!("t{i}"), iface);
                    (IdKey::from(t.id.as_ref().expect("set")), t)
                })
                .collect();
            let lp = IdKey::from(&ident(ResourceType::LaunchPlan, "lp0"));
            let mut launch_plan_inputs = HashMap::new();
            if let Some(inputs) = lp_inputs {
                let parameters = inputs
                    .into_iter()
                    .map(|(name, (t, required))| {
                        let p = Parameter {
                            var: Some(Variable {
                                r#type: Some(t),
                                ..Default::default()
                            }),
                            behavior: Some(parameter::Behavior::Required(required)),
                        };
                        (name, p)
                    })
                    .collect();
                launch_plan_inputs.insert(lp.clone(), ParameterMap { parameters });
            }
            Resolved {
                tasks,
                launch_plans: [(lp, lp_iface)].into(),
                launch_plan_inputs,
            }
        })
}

// ---------------------------------------------------------------------------------------
// Nodes and bindings.

/// Node ids: a small pool so references hit, plus the reserved and the empty id.
fn node_id() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "n[0-4]",
        1 => Just(String::new()),
        1 => Just(START_NODE_ID.to_string()),
        1 => Just(END_NODE_ID.to_string()),
        1 => "[a-z-]{1,6}",
    ]
}

fn output_var() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "o[01]|[ab]",
        1 => "\\[[0-9]{1,3}\\]\\.o0",
        1 => Just("[99999999999999999999999].o0".to_string()),
        1 => Just("o0.o1".to_string()),
        1 => any::<String>().prop_map(|s| s.chars().take(5).collect()),
    ]
}

fn binding_data() -> impl Strategy<Value = BindingData> {
    let promise = (
        prop_oneof![4 => node_id(), 1 => Just(String::new())],
        output_var(),
        prop::collection::vec(
            prop_oneof![
                "[a-c]".prop_map(promise_attribute::Value::StringValue),
                any::<i32>().prop_map(promise_attribute::Value::IntValue),
            ],
            0..2,
        ),
    )
        .prop_map(|(node_id, var, attrs)| {
            binding_data::Value::Promise(OutputReference {
                node_id,
                var,
                attr_path: attrs
                    .into_iter()
                    .map(|v| PromiseAttribute { value: Some(v) })
                    .collect(),
            })
        });
    let scalar = primitive().prop_map(|p| {
        binding_data::Value::Scalar(flyteidl::core::Scalar {
            value: Some(scalar::Value::Primitive(p)),
        })
    });
    let leaf = prop_oneof![
        4 => promise,
        2 => scalar,
        1 => prop::option::of(literal_type()).prop_map(|inferred_type| {
            binding_data::Value::OffloadedMetadata(flyteidl::core::LiteralOffloadedMetadata {
                inferred_type,
                ..Default::default()
            })
        }),
    ]
    .prop_map(|v| BindingData {
        value: Some(v),
        union: None,
    });
    let data = leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|bindings| BindingData {
                value: Some(binding_data::Value::Collection(BindingDataCollection {
                    bindings
                })),
                union: None,
            }),
            prop::collection::btree_map("[a-c]", inner, 0..3).prop_map(|bindings| BindingData {
                value: Some(binding_data::Value::Map(BindingDataMap { bindings })),
                union: None,
            }),
        ]
    });
    prop_oneof![20 => data, 1 => Just(BindingData::default())]
}

fn bindings() -> impl Strategy<Value = Vec<Binding>> {
    prop::collection::vec(
        ("[ab]|o0", prop::option::weighted(0.95, binding_data()))
            .prop_map(|(var, binding)| Binding { var, binding }),
        0..3,
    )
}

/// Comparisons and conjunctions; the deprecated `Operand.primitive` is still sent by older
/// clients, so it is generated too.
#[allow(deprecated)]
fn condition() -> BoxedStrategy<BooleanExpression> {
    let operand = prop_oneof![
        "[ab]".prop_map(operand::Val::Var),
        primitive().prop_map(operand::Val::Primitive),
    ];
    let comparison = (
        0i32..7,
        prop::option::weighted(0.95, operand.clone()),
        prop::option::weighted(0.95, operand),
    )
        .prop_map(|(operator, l, r)| BooleanExpression {
            expr: Some(boolean_expression::Expr::Comparison(ComparisonExpression {
                operator,
                left_value: l.map(|val| Operand { val: Some(val) }),
                right_value: r.map(|val| Operand { val: Some(val) }),
            })),
        });
    let expr = comparison.prop_recursive(2, 6, 2, |inner| {
        (
            0i32..3,
            prop::option::weighted(0.95, inner.clone()),
            prop::option::weighted(0.95, inner),
        )
            .prop_map(|(operator, l, r)| BooleanExpression {
                expr: Some(boolean_expression::Expr::Conjunction(Box::new(
                    ConjunctionExpression {
                        operator,
                        left_expression: l.map(Box::new),
                        right_expression: r.map(Box::new),
                    },
                ))),
            })
    });
    prop_oneof![10 => expr, 1 => Just(BooleanExpression::default())].boxed()
}

fn leaf_target() -> impl Strategy<Value = Option<node::Target>> {
    let task = "t[0-3]".prop_map(|name| {
        node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(ident(
                ResourceType::Task,
                &name,
            ))),
            ..Default::default()
        })
    });
    let workflow = prop_oneof![
        "lp[01]".prop_map(|n| Some(workflow_node::Reference::LaunchplanRef(ident(
            ResourceType::LaunchPlan,
            &n
        )))),
        "sw[0-3]".prop_map(|n| Some(workflow_node::Reference::SubWorkflowRef(ident(
            ResourceType::Workflow,
            &n
        )))),
        Just(None),
    ]
    .prop_map(|reference| node::Target::WorkflowNode(WorkflowNode { reference }));
    let gate = prop_oneof![
        Just(Some(gate_node::Condition::Approve(
            ApproveCondition::default()
        ))),
        Just(Some(gate_node::Condition::Sleep(SleepCondition::default()))),
        (prop::option::of(var_type()), "|o0").prop_map(|(r#type, output_variable_name)| {
            Some(gate_node::Condition::Signal(SignalCondition {
                signal_id: "s".into(),
                r#type,
                output_variable_name,
            }))
        }),
        Just(None),
    ]
    .prop_map(|condition| node::Target::GateNode(GateNode { condition }));
    prop_oneof![
        10 => task.prop_map(Some),
        2 => workflow.prop_map(Some),
        2 => gate.prop_map(Some),
        1 => Just(None),
    ]
}

fn with_target(target: impl Strategy<Value = Option<node::Target>>) -> impl Strategy<Value = Node> {
    (
        node_id(),
        bindings(),
        prop::collection::vec(node_id(), 0..3),
        prop::collection::vec(
            ("o[01]|x", "o[01]|y").prop_map(|(var, alias)| Alias { var, alias }),
            0..2,
        ),
        target,
    )
        .prop_map(
            |(id, inputs, upstream_node_ids, output_aliases, target)| Node {
                id,
                inputs,
                upstream_node_ids,
                output_aliases,
                target,
                ..Default::default()
            },
        )
}

/// Nodes with branch and array nodes nested a few levels.
fn any_node() -> BoxedStrategy<Node> {
    with_target(leaf_target())
        .prop_recursive(3, 12, 3, |inner| {
            let if_block = (condition(), prop::option::weighted(0.9, inner.clone())).prop_map(
                |(c, then_node)| IfBlock {
                    condition: Some(c),
                    then_node: then_node.map(Box::new),
                },
            );
            let branch = (
                prop::option::weighted(0.95, if_block.clone()),
                prop::collection::vec(if_block, 0..2),
                prop_oneof![
                    3 => inner.clone().prop_map(|n| Some(if_else_block::Default::ElseNode(Box::new(n)))),
                    1 => Just(Some(if_else_block::Default::Error(flyteidl::core::Error::default()))),
                    1 => Just(None),
                ],
            )
                .prop_map(|(case, other, default)| {
                    node::Target::BranchNode(Box::new(BranchNode {
                        if_else: Some(Box::new(IfElseBlock {
                            case: case.map(Box::new),
                            other,
                            default,
                        })),
                    }))
                });
            let array = (
                prop::option::weighted(0.95, inner),
                prop::collection::vec("[ab]", 0..2),
                prop::option::of(any::<bool>()),
            )
                .prop_map(|(n, bound_inputs, original)| {
                    node::Target::ArrayNode(Box::new(ArrayNode {
                        node: n.map(Box::new),
                        bound_inputs,
                        is_original_sub_node_interface: original.map(|value| pbjson_types::BoolValue { value }),
                        ..Default::default()
                    }))
                });
            with_target(prop_oneof![3 => leaf_target(), 1 => branch.prop_map(Some), 1 => array.prop_map(Some)])
        })
        .boxed()
}

fn template(name: &'static str) -> impl Strategy<Value = WorkflowTemplate> {
    (
        prop::option::weighted(0.95, interface()),
        prop::collection::vec(any_node(), 0..6),
        bindings(),
        prop::option::weighted(0.1, any_node()),
    )
        .prop_map(
            move |(interface, nodes, outputs, failure_node)| WorkflowTemplate {
                id: Some(ident(ResourceType::Workflow, name)),
                interface,
                nodes,
                outputs,
                failure_node,
                ..Default::default()
            },
        )
}

fn spec() -> impl Strategy<Value = WorkflowSpec> {
    (
        template("wf"),
        prop::collection::vec(
            prop_oneof![template("sw0"), template("sw1"), template("sw2")],
            0..3,
        ),
    )
        .prop_map(|(primary, sub_workflows)| WorkflowSpec {
            template: Some(primary),
            sub_workflows,
            ..Default::default()
        })
}

// ---------------------------------------------------------------------------------------
// What a compiled workflow must look like.

/// The compiled primary: start and end nodes, an acyclic downstream graph over known nodes,
/// every written node reachable from the start.
fn check_well_formed(closure: &CompiledWorkflowClosure) -> Result<(), TestCaseError> {
    let primary = closure.primary.as_ref().expect("primary");
    let template = primary.template.as_ref().expect("template");
    let ids: BTreeSet<&str> = template.nodes.iter().map(|n| n.id.as_str()).collect();
    prop_assert!(ids.contains(START_NODE_ID) && ids.contains(END_NODE_ID));
    prop_assert_eq!(
        ids.len(),
        template.nodes.len(),
        "duplicate node ids compiled"
    );
    let conn = primary.connections.as_ref().expect("connections");
    let downstream: BTreeMap<&str, Vec<&str>> = conn
        .downstream
        .iter()
        .map(|(k, v)| (k.as_str(), v.ids.iter().map(String::as_str).collect()))
        .collect();
    for (from, tos) in &downstream {
        prop_assert!(ids.contains(from), "edge from unknown node {from}");
        for to in tos {
            prop_assert!(ids.contains(to), "edge to unknown node {to}");
        }
    }
    // Kahn's algorithm: every node is ordered iff the graph is acyclic.
    let mut indegree: BTreeMap<&str, usize> = ids.iter().map(|id| (*id, 0)).collect();
    for to in downstream.values().flatten() {
        *indegree.get_mut(to).expect("known") += 1;
    }
    let mut ready: Vec<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut ordered = 0;
    while let Some(id) = ready.pop() {
        ordered += 1;
        for to in downstream.get(id).into_iter().flatten() {
            let d = indegree.get_mut(to).expect("known");
            *d -= 1;
            if *d == 0 {
                ready.push(to);
            }
        }
    }
    prop_assert_eq!(ordered, ids.len(), "compiled graph has a cycle");
    // Reachability from the start node.
    let mut seen = BTreeSet::new();
    let mut stack = vec![START_NODE_ID];
    while let Some(id) = stack.pop() {
        if seen.insert(id) {
            stack.extend(downstream.get(id).into_iter().flatten());
        }
    }
    prop_assert_eq!(seen, ids, "not every node is reachable from the start");
    Ok(())
}

/// A comparable rendering of a compile result (errors as a sorted set of messages).
fn outcome(r: &Result<CompiledWorkflowClosure, flyte_core::compiler::CompileErrors>) -> String {
    match r {
        Ok(c) => format!("ok {}", c.encoded_len()),
        Err(e) => {
            let set: BTreeSet<String> = e.iter().map(|e| e.to_string()).collect();
            format!("errors {set:?}")
        }
    }
}

fn shuffle_upstream(spec: &WorkflowSpec) -> WorkflowSpec {
    fn node(n: &mut Node) {
        n.upstream_node_ids.reverse();
        if let Some(node::Target::BranchNode(b)) = &mut n.target
            && let Some(ie) = b.if_else.as_deref_mut()
        {
            if let Some(t) = ie
                .case
                .as_deref_mut()
                .and_then(|c| c.then_node.as_deref_mut())
            {
                node(t);
            }
            for c in &mut ie.other {
                if let Some(t) = c.then_node.as_deref_mut() {
                    node(t);
                }
            }
            if let Some(if_else_block::Default::ElseNode(e)) = &mut ie.default {
                node(e);
            }
        }
        if let Some(node::Target::ArrayNode(a)) = &mut n.target
            && let Some(sub) = a.node.as_deref_mut()
        {
            node(sub);
        }
    }
    let mut spec = spec.clone();
    for t in spec
        .template
        .iter_mut()
        .chain(spec.sub_workflows.iter_mut())
    {
        t.nodes.iter_mut().for_each(node);
        t.failure_node.iter_mut().for_each(node);
    }
    spec
}

proptest! {
    // Each case compiles five times; 128 keeps the default run to a few seconds.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_workflow_compiles_or_is_refused_with_errors(spec in spec(), resolved in resolved()) {
        let _ = referenced_entities(&spec);
        let result = compile_workflow(&spec, &resolved);
        match &result {
            Ok(closure) => {
                check_well_formed(closure)?;
                for t in &closure.tasks {
                    let id = t.template.as_ref().and_then(|t| t.id.as_ref()).expect("task id");
                    prop_assert!(resolved.tasks.contains_key(&IdKey::from(id)));
                }
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty(), "an error result without errors");
                for e in errors.iter() {
                    prop_assert!(!e.to_string().trim().is_empty());
                }
            }
        }
        // Deterministic, and the order of upstream ids does not matter.
        prop_assert_eq!(outcome(&compile_workflow(&spec, &resolved)), outcome(&result));
        let shuffled = compile_workflow(&shuffle_upstream(&spec), &resolved);
        prop_assert_eq!(shuffled.is_ok(), result.is_ok());
        let canonical = canonical_spec(&spec);
        prop_assert_eq!(&canonical_spec(&canonical), &canonical);
        prop_assert_eq!(compile_workflow(&canonical, &resolved).is_ok(), result.is_ok());
    }

    #[test]
    fn workflows_off_the_wire_compile_or_are_refused(spec in spec(), resolved in resolved()) {
        let bytes = spec.encode_to_vec();
        let decoded = WorkflowSpec::decode(bytes.as_slice()).expect("a generated spec decodes");
        prop_assert_eq!(outcome(&compile_workflow(&decoded, &resolved)), outcome(&compile_workflow(&spec, &resolved)));
    }

    #[test]
    fn random_bytes_as_a_workflow_spec(bytes in prop::collection::vec(any::<u8>(), 0..512), resolved in resolved()) {
        if let Ok(spec) = WorkflowSpec::decode(bytes.as_slice()) {
            let _ = referenced_entities(&spec);
            let _ = canonical_spec(&spec);
            let _ = compile_workflow(&spec, &resolved);
        }
        if let Ok(task) = TaskTemplate::decode(bytes.as_slice()) {
            let _ = compile_task(&task);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Valid workflows: random DAGs of int -> int tasks.

/// `edges[i]`: the earlier nodes node i reads from (at most two, as inputs a and b).
fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    prop::collection::vec(
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        1..24,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, picks)| {
                if i == 0 {
                    return Vec::new();
                }
                let ups: BTreeSet<usize> = picks.iter().map(|p| p.index(i)).collect();
                ups.into_iter().take(2).collect()
            })
            .collect()
    })
}

fn int_vars(names: &[&str]) -> VariableMap {
    VariableMap {
        variables: names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    Variable {
                        r#type: Some(int()),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    }
}

fn dag_workflow(edges: &[Vec<usize>], order: &[usize]) -> (WorkflowTemplate, Resolved) {
    let task = task_template(
        "add".into(),
        TypedInterface {
            inputs: Some(int_vars(&["a", "b"])),
            outputs: Some(int_vars(&["o0"])),
        },
    );
    let promise = |node_id: String, var: &str| BindingData {
        value: Some(binding_data::Value::Promise(OutputReference {
            node_id,
            var: var.into(),
            ..Default::default()
        })),
        union: None,
    };
    let nodes = order
        .iter()
        .map(|&i| {
            let ups = &edges[i];
            let source = |k: usize| match ups.get(k) {
                Some(u) => promise(format!("n{u}"), "o0"),
                None => promise(String::new(), "x"),
            };
            Node {
                id: format!("n{i}"),
                inputs: vec![
                    Binding {
                        var: "a".into(),
                        binding: Some(source(0)),
                    },
                    Binding {
                        var: "b".into(),
                        binding: Some(source(1)),
                    },
                ],
                upstream_node_ids: ups.iter().map(|u| format!("n{u}")).collect(),
                target: Some(node::Target::TaskNode(TaskNode {
                    reference: Some(task_node::Reference::ReferenceId(ident(
                        ResourceType::Task,
                        "add",
                    ))),
                    ..Default::default()
                })),
                ..Default::default()
            }
        })
        .collect();
    let last = edges.len() - 1;
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "dag")),
        interface: Some(TypedInterface {
            inputs: Some(int_vars(&["x"])),
            outputs: Some(int_vars(&["y"])),
        }),
        nodes,
        outputs: vec![Binding {
            var: "y".into(),
            binding: Some(promise(format!("n{last}"), "o0")),
        }],
        ..Default::default()
    };
    let resolved = Resolved {
        tasks: [(IdKey::from(task.id.as_ref().expect("set")), task)].into(),
        ..Default::default()
    };
    (wf, resolved)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn valid_dags_compile_with_exactly_their_edges(
        (edges, order) in dag().prop_flat_map(|edges| {
            let n = edges.len();
            (Just(edges), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        })
    ) {
        let (wf, resolved) = dag_workflow(&edges, &order);
        let closure = compile_workflow_template(&wf, &[], &resolved);
        prop_assert!(closure.is_ok(), "{:?}", closure.err().map(|e| e.to_string()));
        let closure = closure.unwrap();
        check_well_formed(&closure)?;
        let conn = closure.primary.as_ref().unwrap().connections.clone().unwrap();
        for (i, ups) in edges.iter().enumerate() {
            let id = format!("n{i}");
            let mut expected: BTreeSet<String> = ups.iter().map(|u| format!("n{u}")).collect();
            if ups.len() < 2 {
                // The unbound-by-node input reads the workflow input.
                expected.insert(START_NODE_ID.into());
            }
            let actual: BTreeSet<String> =
                conn.upstream.get(&id).map(|l| l.ids.iter().cloned().collect()).unwrap_or_default();
            prop_assert_eq!(actual, expected, "upstream of {}", id);
        }
        // The order nodes are written in does not change the graph.
        let (sorted_wf, _) = dag_workflow(&edges, &(0..edges.len()).collect::<Vec<_>>());
        let sorted = compile_workflow_template(&sorted_wf, &[], &resolved).unwrap();
        prop_assert_eq!(sorted.primary.unwrap().connections, Some(conn));
    }
}

/// One edit to a valid workflow: the near-misses a user actually writes.
#[derive(Debug, Clone)]
enum Edit {
    /// Point a node's input at another node's output (maybe a later one: a cycle).
    Repoint {
        node: usize,
        to: usize,
    },
    DropInput {
        node: usize,
    },
    ExtraUpstream {
        node: usize,
        up: usize,
    },
    RenameTo {
        node: usize,
        to: usize,
    },
    /// Make the node a branch over its own task node (then and else), conditioned on `a`.
    Branch {
        node: usize,
    },
    /// Make the node an array node over its task (`is_original_sub_node_interface`).
    Array {
        node: usize,
        original: bool,
    },
    OutputVar {
        node: usize,
        var: &'static str,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = || any::<prop::sample::Index>();
    prop_oneof![
        (i(), i()).prop_map(|(n, t)| Edit::Repoint {
            node: n.index(64),
            to: t.index(64)
        }),
        i().prop_map(|n| Edit::DropInput { node: n.index(64) }),
        (i(), i()).prop_map(|(n, u)| Edit::ExtraUpstream {
            node: n.index(64),
            up: u.index(64)
        }),
        (i(), i()).prop_map(|(n, t)| Edit::RenameTo {
            node: n.index(64),
            to: t.index(64)
        }),
        i().prop_map(|n| Edit::Branch { node: n.index(64) }),
        (i(), any::<bool>()).prop_map(|(n, original)| Edit::Array {
            node: n.index(64),
            original
        }),
        (
            i(),
            prop::sample::select(&["o0", "o1", "[0].o0", "a", ""][..])
        )
            .prop_map(|(n, var)| Edit::OutputVar {
                node: n.index(64),
                var
            }),
    ]
}

fn apply(wf: &mut WorkflowTemplate, edit: &Edit) {
    let n = wf.nodes.len();
    let id = |k: usize| format!("n{}", k % n);
    match *edit {
        Edit::Repoint { node, to } => {
            if let Some(Binding {
                binding: Some(b), ..
            }) = wf.nodes[node % n].inputs.first_mut()
                && let Some(binding_data::Value::Promise(p)) = &mut b.value
            {
                p.node_id = id(to);
            }
        }
        Edit::DropInput { node } => {
            wf.nodes[node % n].inputs.pop();
        }
        Edit::ExtraUpstream { node, up } => wf.nodes[node % n].upstream_node_ids.push(id(up)),
        Edit::RenameTo { node, to } => wf.nodes[node % n].id = id(to),
        Edit::Branch { node } => {
            let inner = wf.nodes[node % n].clone();
            let cond = BooleanExpression {
                expr: Some(boolean_expression::Expr::Comparison(ComparisonExpression {
                    operator: 0,
                    left_value: Some(Operand {
                        val: Some(operand::Val::Var("a".into())),
                    }),
                    right_value: Some(Operand {
                        val: Some(operand::Val::Var("b".into())),
                    }),
                })),
            };
            let target = &mut wf.nodes[node % n];
            target.target = Some(node::Target::BranchNode(Box::new(BranchNode {
                if_else: Some(Box::new(IfElseBlock {
                    case: Some(Box::new(IfBlock {
                        condition: Some(cond),
                        then_node: Some(Box::new(Node {
                            id: "then".into(),
                            ..inner.clone()
                        })),
                    })),
                    other: Vec::new(),
                    default: Some(if_else_block::Default::ElseNode(Box::new(Node {
                        id: "else".into(),
                        ..inner
                    }))),
                })),
            })));
        }
        Edit::Array { node, original } => {
            let inner = wf.nodes[node % n].clone();
            wf.nodes[node % n].target = Some(node::Target::ArrayNode(Box::new(ArrayNode {
                node: Some(Box::new(Node {
                    id: "sub".into(),
                    inputs: Vec::new(),
                    upstream_node_ids: Vec::new(),
                    ..inner
                })),
                is_original_sub_node_interface: Some(pbjson_types::BoolValue { value: original }),
                ..Default::default()
            })));
        }
        Edit::OutputVar { node, var } => {
            if let Some(Binding {
                binding: Some(b), ..
            }) = wf.nodes[node % n].inputs.last_mut()
                && let Some(binding_data::Value::Promise(p)) = &mut b.value
            {
                p.var = var.into();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Valid workflows with a few edits: compile never panics; what compiles is well formed.
    #[test]
    fn near_valid_workflows_compile_or_are_refused(
        edges in dag(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let order: Vec<usize> = (0..edges.len()).collect();
        let (mut wf, resolved) = dag_workflow(&edges, &order);
        for e in &edits {
            apply(&mut wf, e);
        }
        match compile_workflow_template(&wf, &[], &resolved) {
            Ok(closure) => check_well_formed(&closure)?,
            Err(errors) => prop_assert!(!errors.is_empty()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Nesting as deep as the decoder allows.

/// Runs `f` on a thread with a tokio worker's default stack (2 MiB).
fn on_worker_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic");
}

fn task_leaf(id: &str) -> Node {
    Node {
        id: id.into(),
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(ident(
                ResourceType::Task,
                "t",
            ))),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// `depth` branch nodes, each the `then` of the one above (the `else` fails the workflow);
/// the innermost runs a task.
fn nested_branches(depth: usize) -> Node {
    let one = || Operand {
        val: Some(operand::Val::Scalar(flyteidl::core::Scalar {
            value: Some(scalar::Value::Primitive(flyteidl::core::Primitive {
                value: Some(flyteidl::core::primitive::Value::Integer(1)),
            })),
        })),
    };
    (0..depth).fold(task_leaf("leaf"), |n, level| Node {
        id: format!("b{level}"),
        target: Some(node::Target::BranchNode(Box::new(BranchNode {
            if_else: Some(Box::new(IfElseBlock {
                case: Some(Box::new(IfBlock {
                    condition: Some(BooleanExpression {
                        expr: Some(boolean_expression::Expr::Comparison(ComparisonExpression {
                            operator: 0,
                            left_value: Some(one()),
                            right_value: Some(one()),
                        })),
                    }),
                    then_node: Some(Box::new(n)),
                })),
                other: Vec::new(),
                default: Some(if_else_block::Default::Error(Default::default())),
            })),
        }))),
        ..Default::default()
    })
}

/// `depth` array nodes around a task node.
fn nested_arrays(depth: usize) -> Node {
    (0..depth).fold(task_leaf("leaf"), |n, level| Node {
        id: format!("a{level}"),
        target: Some(node::Target::ArrayNode(Box::new(ArrayNode {
            node: Some(Box::new(n)),
            ..Default::default()
        }))),
        ..Default::default()
    })
}

fn single_node_spec(n: Node) -> WorkflowSpec {
    WorkflowSpec {
        template: Some(WorkflowTemplate {
            id: Some(ident(ResourceType::Workflow, "deep")),
            interface: Some(TypedInterface::default()),
            nodes: vec![n],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn one_task() -> Resolved {
    let t = task_template("t".into(), TypedInterface::default());
    Resolved {
        tasks: [(IdKey::from(t.id.as_ref().expect("set")), t)].into(),
        ..Default::default()
    }
}

/// Every nesting depth up to past the decoder's limit: what decodes compiles on a
/// worker-sized stack.
#[test]
fn nested_branches_that_decode_compile_on_a_worker_stack() {
    on_worker_stack(|| {
        for depth in 1..=100 {
            let bytes = single_node_spec(nested_branches(depth)).encode_to_vec();
            match WorkflowSpec::decode(bytes.as_slice()) {
                Ok(spec) => {
                    let result = compile_workflow(&spec, &one_task());
                    let errors = result.err().map(|e| e.to_string());
                    assert!(errors.is_none(), "depth {depth}: {errors:?}");
                    let _ = referenced_entities(&spec);
                    let _ = canonical_spec(&spec);
                }
                Err(_) => {
                    assert!(depth > 10, "depth {depth} must decode");
                    return;
                }
            }
        }
        panic!("100 nested branch nodes decoded: prost's recursion limit is off");
    });
}

#[test]
fn nested_arrays_that_decode_compile_on_a_worker_stack() {
    on_worker_stack(|| {
        for depth in 1..=100 {
            let bytes = single_node_spec(nested_arrays(depth)).encode_to_vec();
            match WorkflowSpec::decode(bytes.as_slice()) {
                Ok(spec) => {
                    let _ = compile_workflow(&spec, &one_task());
                    let _ = referenced_entities(&spec);
                    let _ = canonical_spec(&spec);
                }
                Err(_) => {
                    assert!(depth > 20, "depth {depth} must decode");
                    return;
                }
            }
        }
        panic!("100 nested array nodes decoded: prost's recursion limit is off");
    });
}

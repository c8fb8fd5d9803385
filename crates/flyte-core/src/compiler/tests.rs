//! Compiler tests: one small workflow per rule, good and bad.

use std::collections::BTreeMap;

use flyteidl::admin::{LaunchPlanSpec, WorkflowSpec};
use flyteidl::core::literal_type::Type;
use flyteidl::core::*;

use super::*;

fn int() -> LiteralType {
    LiteralType {
        r#type: Some(Type::Simple(SimpleType::Integer as i32)),
        ..Default::default()
    }
}
fn string() -> LiteralType {
    LiteralType {
        r#type: Some(Type::Simple(SimpleType::String as i32)),
        ..Default::default()
    }
}
fn none_t() -> LiteralType {
    LiteralType {
        r#type: Some(Type::Simple(SimpleType::None as i32)),
        ..Default::default()
    }
}
fn list(t: LiteralType) -> LiteralType {
    LiteralType {
        r#type: Some(Type::CollectionType(Box::new(t))),
        ..Default::default()
    }
}
fn optional(t: LiteralType) -> LiteralType {
    LiteralType {
        r#type: Some(Type::UnionType(UnionType {
            variants: vec![t, none_t()],
        })),
        ..Default::default()
    }
}
fn vars(v: &[(&str, LiteralType)]) -> VariableMap {
    VariableMap {
        variables: v
            .iter()
            .map(|(n, t)| {
                (
                    n.to_string(),
                    Variable {
                        r#type: Some(t.clone()),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    }
}
fn iface(i: &[(&str, LiteralType)], o: &[(&str, LiteralType)]) -> TypedInterface {
    TypedInterface {
        inputs: Some(vars(i)),
        outputs: Some(vars(o)),
    }
}
fn id(rt: ResourceType, name: &str) -> Identifier {
    Identifier {
        resource_type: rt as i32,
        project: "p".into(),
        domain: "d".into(),
        name: name.into(),
        version: "v".into(),
        ..Default::default()
    }
}
fn task(name: &str, i: TypedInterface) -> TaskTemplate {
    TaskTemplate {
        id: Some(id(ResourceType::Task, name)),
        r#type: "python-task".into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(i),
        target: Some(task_template::Target::Container(Container {
            image: "img".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}
fn promise(node: &str, var: &str) -> BindingData {
    BindingData {
        value: Some(binding_data::Value::Promise(OutputReference {
            node_id: node.into(),
            var: var.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}
fn int_lit(i: i64) -> BindingData {
    BindingData {
        value: Some(binding_data::Value::Scalar(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })),
        })),
        ..Default::default()
    }
}
fn bind(var: &str, data: BindingData) -> Binding {
    Binding {
        var: var.into(),
        binding: Some(data),
    }
}
fn task_node(node_id: &str, task_name: &str, inputs: Vec<Binding>) -> Node {
    Node {
        id: node_id.into(),
        inputs,
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(id(
                ResourceType::Task,
                task_name,
            ))),
            ..Default::default()
        })),
        ..Default::default()
    }
}
fn workflow(
    name: &str,
    i: TypedInterface,
    nodes: Vec<Node>,
    outputs: Vec<Binding>,
) -> WorkflowTemplate {
    WorkflowTemplate {
        id: Some(id(ResourceType::Workflow, name)),
        interface: Some(i),
        nodes,
        outputs,
        ..Default::default()
    }
}
/// `add(a: int, b: int) -> o0: int` and `show(s: str) -> ()`.
fn resolved() -> Resolved {
    let mut r = Resolved::default();
    for t in [
        task(
            "add",
            iface(&[("a", int()), ("b", int())], &[("o0", int())]),
        ),
        task("show", iface(&[("s", string())], &[])),
        task("maybe", iface(&[("x", optional(int()))], &[("o0", int())])),
        task("sum", iface(&[("xs", list(int()))], &[("o0", int())])),
    ] {
        r.tasks.insert(IdKey::from(t.id.as_ref().unwrap()), t);
    }
    r
}
fn spec(t: WorkflowTemplate) -> WorkflowSpec {
    WorkflowSpec {
        template: Some(t),
        ..Default::default()
    }
}
/// wf(x: int) -> o: int = add(add(x, 1), x)
fn good_wf() -> WorkflowTemplate {
    workflow(
        "wf",
        iface(&[("x", int())], &[("o", int())]),
        vec![
            task_node(
                "n0",
                "add",
                vec![bind("a", promise("start-node", "x")), bind("b", int_lit(1))],
            ),
            task_node(
                "n1",
                "add",
                vec![bind("a", promise("n0", "o0")), bind("b", promise("", "x"))],
            ),
        ],
        vec![bind("o", promise("n1", "o0"))],
    )
}
fn errors_of(t: WorkflowTemplate) -> CompileErrors {
    compile_workflow(&spec(t), &resolved()).expect_err("should fail")
}
fn assert_error(errs: &CompileErrors, needle: &str) {
    let text = errs.to_string();
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

#[test]
fn compiles_a_linear_workflow_with_start_and_end_nodes() {
    let closure = compile_workflow(&spec(good_wf()), &resolved()).expect("compiles");
    let primary = closure.primary.unwrap();
    let tmpl = primary.template.unwrap();
    let ids: Vec<&str> = tmpl.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["start-node", "end-node", "n0", "n1"]);
    assert_eq!(tmpl.nodes[1].inputs, vec![bind("o", promise("n1", "o0"))]);
    let conn = primary.connections.unwrap();
    let ids_of = |m: &BTreeMap<String, connection_set::IdList>, k: &str| m[k].ids.clone();
    assert_eq!(ids_of(&conn.downstream, "start-node"), ["n0", "n1"]);
    assert_eq!(ids_of(&conn.downstream, "n0"), ["n1"]);
    assert_eq!(ids_of(&conn.downstream, "n1"), ["end-node"]);
    assert_eq!(ids_of(&conn.upstream, "n1"), ["n0", "start-node"]);
    assert_eq!(ids_of(&conn.upstream, "end-node"), ["n1"]);
    assert_eq!(
        closure.tasks.len(),
        1,
        "add is referenced (twice) and included once"
    );
}

#[test]
fn node_without_inputs_hangs_off_start_node() {
    let t = workflow(
        "wf",
        iface(&[], &[]),
        vec![task_node(
            "n0",
            "add",
            vec![bind("a", int_lit(1)), bind("b", int_lit(2))],
        )],
        vec![],
    );
    let c = compile_workflow(&spec(t), &resolved())
        .unwrap()
        .primary
        .unwrap()
        .connections
        .unwrap();
    assert_eq!(c.upstream["n0"].ids, ["start-node"]);
    assert_eq!(c.downstream["n0"].ids, ["end-node"]);
}

#[test]
fn explicit_upstream_node_ids_create_edges_and_are_checked() {
    let mut t = good_wf();
    t.nodes.push(Node {
        upstream_node_ids: vec!["n1".into()],
        ..task_node(
            "n2",
            "add",
            vec![bind("a", int_lit(1)), bind("b", int_lit(1))],
        )
    });
    let c = compile_workflow(&spec(t.clone()), &resolved())
        .unwrap()
        .primary
        .unwrap()
        .connections
        .unwrap();
    assert_eq!(c.upstream["n2"].ids, ["n1"]);
    t.nodes[2].upstream_node_ids = vec!["ghost".into()];
    assert_error(&errors_of(t), "node n2: depends on node 'ghost'");
}

#[test]
fn unknown_upstream_node_is_named() {
    let mut t = good_wf();
    t.nodes[1].inputs[0] = bind("a", promise("n9", "o0"));
    let errs = errors_of(t);
    assert_error(
        &errs,
        "node n1: input 'a' is bound to an output of node 'n9', which does not exist",
    );
}

#[test]
fn unknown_upstream_output_is_named() {
    let mut t = good_wf();
    t.nodes[1].inputs[0] = bind("a", promise("n0", "nope"));
    assert_error(
        &errors_of(t),
        "node n1: input 'a' is bound to output 'nope' of node 'n0', which has no such output (it has: 'o0')",
    );
}

#[test]
fn unknown_and_missing_and_duplicate_inputs() {
    let mut t = good_wf();
    t.nodes[0].inputs = vec![
        bind("a", int_lit(1)),
        bind("zz", int_lit(1)),
        bind("a", int_lit(2)),
    ];
    let errs = errors_of(t);
    assert_error(&errs, "node n0: input 'zz' is not an input of this node");
    assert_error(&errs, "node n0: input 'a' is bound more than once");
    assert_error(&errs, "node n0: input 'b' is required but not bound");
}

#[test]
fn optional_inputs_need_no_binding_and_accept_values() {
    let t = workflow(
        "wf",
        iface(&[], &[]),
        vec![
            task_node("n0", "maybe", vec![]),
            task_node("n1", "maybe", vec![bind("x", int_lit(3))]),
        ],
        vec![],
    );
    compile_workflow(&spec(t), &resolved()).expect("optional input");
}

#[test]
fn type_mismatch_renders_both_types() {
    let mut t = good_wf();
    t.nodes.push(task_node(
        "n2",
        "show",
        vec![bind("s", promise("n1", "o0"))],
    ));
    assert_error(
        &errors_of(t),
        "node n2: input 's' expects type str but is bound to output 'o0' of node 'n1' of type int",
    );
}

#[test]
fn collection_bindings_are_checked_element_wise() {
    let collection = |items: Vec<BindingData>| BindingData {
        value: Some(binding_data::Value::Collection(BindingDataCollection {
            bindings: items,
        })),
        ..Default::default()
    };
    let ok = workflow(
        "wf",
        iface(&[("x", int())], &[]),
        vec![task_node(
            "n0",
            "sum",
            vec![bind("xs", collection(vec![int_lit(1), promise("", "x")]))],
        )],
        vec![],
    );
    compile_workflow(&spec(ok.clone()), &resolved()).expect("list of ints");
    let mut bad = ok;
    bad.nodes[0].inputs = vec![bind("xs", int_lit(1))];
    assert_error(&errors_of(bad.clone()), "input 'xs' expects type list<int>");
    bad.nodes[0].target = task_node("x", "add", vec![]).target;
    bad.nodes[0].inputs = vec![
        bind("a", collection(vec![int_lit(1)])),
        bind("b", int_lit(1)),
    ];
    assert_error(
        &errors_of(bad),
        "input 'a' expects type int but is bound to a list",
    );
}

#[test]
fn duplicate_and_reserved_node_ids() {
    let mut t = good_wf();
    t.nodes.push(t.nodes[0].clone());
    assert_error(
        &errors_of(t),
        "node n0: the node id is used by more than one node",
    );
    let mut t = good_wf();
    t.nodes[0].id = "start-node".into();
    assert_error(&errors_of(t), "'start-node' is reserved");
}

#[test]
fn unknown_task_and_missing_target() {
    let mut t = good_wf();
    t.nodes[0] = task_node("n0", "nope", vec![]);
    assert_error(
        &errors_of(t),
        "node n0: references task task p/d/nope@v, which is not registered",
    );
    let mut t = good_wf();
    t.nodes[0].target = None;
    assert_error(&errors_of(t), "node n0: the node has no target");
}

#[test]
fn cycles_are_reported_with_their_nodes() {
    let t = workflow(
        "wf",
        iface(&[], &[]),
        vec![
            task_node(
                "a",
                "add",
                vec![bind("a", promise("b", "o0")), bind("b", int_lit(1))],
            ),
            task_node(
                "b",
                "add",
                vec![bind("a", promise("a", "o0")), bind("b", int_lit(1))],
            ),
        ],
        vec![],
    );
    let errs = errors_of(t);
    assert_error(&errs, "the workflow graph has a cycle: ");
    let text = errs.to_string();
    assert!(
        text.contains("a -> b -> a") || text.contains("b -> a -> b"),
        "{text}"
    );
}

#[test]
fn workflow_outputs_are_bound_and_typed() {
    let mut t = good_wf();
    t.outputs = vec![];
    assert_error(
        &errors_of(t),
        "node end-node: input 'o' is required but not bound",
    );
    let mut t = good_wf();
    t.interface = Some(iface(&[("x", int())], &[("o", string())]));
    assert_error(&errors_of(t), "node end-node: input 'o' expects type str");
}

#[test]
fn empty_workflow_and_missing_template() {
    let t = workflow("wf", iface(&[], &[]), vec![], vec![]);
    assert_error(&errors_of(t), "has no nodes");
    let e = compile_workflow(&WorkflowSpec::default(), &resolved()).unwrap_err();
    assert_error(&e, "no template");
}

#[test]
fn every_error_is_on_its_own_line() {
    let mut t = good_wf();
    t.nodes[0].inputs = vec![];
    let errs = errors_of(t);
    assert_eq!(errs.to_string().lines().count(), errs.0.len());
    assert!(errs.0.len() >= 2);
}

fn branch(
    node_id: &str,
    inputs: Vec<Binding>,
    cases: Vec<(BooleanExpression, Node)>,
    default: Option<if_else_block::Default>,
) -> Node {
    let mut cases = cases.into_iter().map(|(c, n)| IfBlock {
        condition: Some(c),
        then_node: Some(Box::new(n)),
    });
    let first = cases.next().map(Box::new);
    Node {
        id: node_id.into(),
        inputs,
        target: Some(node::Target::BranchNode(Box::new(BranchNode {
            if_else: Some(Box::new(IfElseBlock {
                case: first,
                other: cases.collect(),
                default,
            })),
        }))),
        ..Default::default()
    }
}
fn var_eq_int(var: &str, i: i64) -> BooleanExpression {
    BooleanExpression {
        expr: Some(boolean_expression::Expr::Comparison(ComparisonExpression {
            operator: 0,
            left_value: Some(Operand {
                val: Some(operand::Val::Var(var.into())),
            }),
            right_value: Some(Operand {
                val: Some(operand::Val::Scalar(Scalar {
                    value: Some(scalar::Value::Primitive(Primitive {
                        value: Some(primitive::Value::Integer(i)),
                    })),
                })),
            }),
        })),
    }
}
fn branch_wf(default: Option<if_else_block::Default>, cond_var: &str) -> WorkflowTemplate {
    let then = task_node(
        "n0",
        "add",
        vec![bind("a", promise("", "x")), bind("b", int_lit(1))],
    );
    let other = task_node(
        "n1",
        "add",
        vec![bind("a", promise("", "x")), bind("b", int_lit(2))],
    );
    workflow(
        "wf",
        iface(&[("x", int())], &[("o", int())]),
        vec![branch(
            "b0",
            vec![bind("x", promise("", "x"))],
            vec![
                (var_eq_int(cond_var, 1), then),
                (var_eq_int(cond_var, 2), other),
            ],
            default,
        )],
        vec![bind("o", promise("b0", "o0"))],
    )
}

#[test]
fn branch_outputs_are_common_outputs_and_children_are_renamed() {
    let else_node = task_node(
        "n2",
        "add",
        vec![bind("a", int_lit(0)), bind("b", int_lit(0))],
    );
    let t = branch_wf(
        Some(if_else_block::Default::ElseNode(Box::new(else_node))),
        "x",
    );
    let closure = compile_workflow(&spec(t), &resolved()).expect("branch compiles");
    let primary = closure.primary.unwrap();
    let b0 = &primary.template.unwrap().nodes[2];
    let Some(node::Target::BranchNode(b)) = &b0.target else {
        panic!()
    };
    let ie = b.if_else.as_ref().unwrap();
    assert_eq!(
        ie.case.as_ref().unwrap().then_node.as_ref().unwrap().id,
        "b0-n0"
    );
    assert_eq!(ie.other[0].then_node.as_ref().unwrap().id, "b0-n1");
    assert!(primary.connections.unwrap().upstream.contains_key("b0-n0"));
}

/// flytekit's `conditional` inside a case of another: the inner branch node binds the
/// workflow input its condition reads (issue 15 item 1).
#[test]
fn nested_branch_binds_its_own_inputs() {
    let leaf = |id: &str, b: i64| {
        task_node(
            id,
            "add",
            vec![bind("a", promise("", "x")), bind("b", int_lit(b))],
        )
    };
    let inner = |cond_var: &str| {
        branch(
            "n0",
            vec![bind(".x", promise("", "x"))],
            vec![(var_eq_int(cond_var, 1), leaf("n0", 1))],
            Some(if_else_block::Default::ElseNode(Box::new(leaf("n1", 2)))),
        )
    };
    let outer = |cond_var: &str| {
        workflow(
            "wf",
            iface(&[("x", int())], &[("o", int())]),
            vec![branch(
                "b0",
                vec![bind(".x", promise("", "x"))],
                vec![(var_eq_int(".x", 1), inner(cond_var))],
                Some(if_else_block::Default::ElseNode(Box::new(leaf("n1", 3)))),
            )],
            vec![bind("o", promise("b0", "o0"))],
        )
    };
    let closure =
        compile_workflow(&spec(outer(".x")), &resolved()).expect("nested branch compiles");
    let b0 = &closure.primary.unwrap().template.unwrap().nodes[2];
    let Some(node::Target::BranchNode(b)) = &b0.target else {
        panic!()
    };
    let inner = b
        .if_else
        .as_ref()
        .unwrap()
        .case
        .as_ref()
        .unwrap()
        .then_node
        .as_ref()
        .unwrap();
    assert_eq!(inner.id, "b0-n0");
    let Some(node::Target::BranchNode(ib)) = &inner.target else {
        panic!()
    };
    let leaf = ib
        .if_else
        .as_ref()
        .unwrap()
        .case
        .as_ref()
        .unwrap()
        .then_node
        .as_ref()
        .unwrap();
    assert_eq!(leaf.id, "b0-n0-n0");
    // The inner condition is still checked against the inner node's own inputs.
    let errs = errors_of(outer(".y"));
    assert!(
        errs.to_string().contains(
            "node b0-n0: the branch condition uses '.y', which is not an input of the branch node"
        ),
        "{errs}"
    );
}

#[test]
fn branch_rules() {
    let errs = errors_of(branch_wf(None, "x"));
    assert_error(
        &errs,
        "node b0: the branch has neither an else node nor an error",
    );
    let err = if_else_block::Default::Error(Error {
        failed_node_id: "b0".into(),
        message: "no".into(),
    });
    let errs = errors_of(branch_wf(Some(err.clone()), "y"));
    assert_error(
        &errs,
        "node b0: the branch condition uses 'y', which is not an input of the branch node",
    );
    compile_workflow(&spec(branch_wf(Some(err), "x")), &resolved()).expect("error default is fine");
}

#[test]
fn branch_output_missing_in_one_case_is_not_exposed() {
    let else_node = task_node(
        "n2",
        "show",
        vec![bind(
            "s",
            BindingData {
                value: Some(binding_data::Value::Scalar(Scalar {
                    value: Some(scalar::Value::Primitive(Primitive {
                        value: Some(primitive::Value::StringValue("s".into())),
                    })),
                })),
                ..Default::default()
            },
        )],
    );
    let t = branch_wf(
        Some(if_else_block::Default::ElseNode(Box::new(else_node))),
        "x",
    );
    assert_error(
        &errors_of(t),
        "node end-node: input 'o' is bound to output 'o0' of node 'b0', which has no such output",
    );
}

fn sub_wf_node(node_id: &str, wf_name: &str, inputs: Vec<Binding>) -> Node {
    Node {
        id: node_id.into(),
        inputs,
        target: Some(node::Target::WorkflowNode(WorkflowNode {
            reference: Some(workflow_node::Reference::SubWorkflowRef(id(
                ResourceType::Workflow,
                wf_name,
            ))),
        })),
        ..Default::default()
    }
}

#[test]
fn sub_workflows_are_compiled_and_checked() {
    let mut sub = good_wf();
    sub.id = Some(id(ResourceType::Workflow, "sub"));
    let parent = workflow(
        "parent",
        iface(&[("x", int())], &[("o", int())]),
        vec![sub_wf_node("s0", "sub", vec![bind("x", promise("", "x"))])],
        vec![bind("o", promise("s0", "o"))],
    );
    let sp = WorkflowSpec {
        template: Some(parent.clone()),
        sub_workflows: vec![sub.clone()],
        ..Default::default()
    };
    let refs = referenced_entities(&sp);
    assert_eq!(refs.tasks.len(), 1);
    let closure = compile_workflow(&sp, &resolved()).expect("compiles");
    assert_eq!(closure.sub_workflows.len(), 1);
    let sub_nodes = &closure.sub_workflows[0].template.as_ref().unwrap().nodes;
    assert_eq!(sub_nodes[0].id, "start-node");
    assert!(closure.sub_workflows[0].connections.is_some());
    assert_eq!(closure.tasks.len(), 1);

    let missing = WorkflowSpec {
        template: Some(parent),
        ..Default::default()
    };
    assert_error(
        &compile_workflow(&missing, &resolved()).unwrap_err(),
        "node s0: references sub-workflow workflow p/d/sub@v, which is not part",
    );
}

#[test]
fn errors_inside_sub_workflows_name_their_nodes() {
    let mut sub = good_wf();
    sub.id = Some(id(ResourceType::Workflow, "sub"));
    sub.nodes[1].inputs[0] = bind("a", promise("n7", "o0"));
    let parent = workflow(
        "parent",
        iface(&[("x", int())], &[]),
        vec![sub_wf_node("s0", "sub", vec![bind("x", promise("", "x"))])],
        vec![],
    );
    let sp = WorkflowSpec {
        template: Some(parent),
        sub_workflows: vec![sub],
        ..Default::default()
    };
    assert_error(
        &compile_workflow(&sp, &resolved()).unwrap_err(),
        "node n1: input 'a' is bound to an output of node 'n7'",
    );
}

#[test]
fn recursive_sub_workflow_is_refused() {
    let sub = workflow(
        "sub",
        iface(&[], &[]),
        vec![sub_wf_node("s", "sub", vec![])],
        vec![],
    );
    let parent = workflow(
        "parent",
        iface(&[], &[]),
        vec![sub_wf_node("s0", "sub", vec![])],
        vec![],
    );
    let sp = WorkflowSpec {
        template: Some(parent),
        sub_workflows: vec![sub],
        ..Default::default()
    };
    assert_error(
        &compile_workflow(&sp, &resolved()).unwrap_err(),
        "refers to itself",
    );
}

fn lp_node(node_id: &str, inputs: Vec<Binding>) -> Node {
    Node {
        id: node_id.into(),
        inputs,
        target: Some(node::Target::WorkflowNode(WorkflowNode {
            reference: Some(workflow_node::Reference::LaunchplanRef(id(
                ResourceType::LaunchPlan,
                "lp",
            ))),
        })),
        ..Default::default()
    }
}

#[test]
fn launch_plan_nodes() {
    let t = workflow(
        "wf",
        iface(&[("x", int())], &[("o", int())]),
        vec![lp_node("l0", vec![bind("a", promise("", "x"))])],
        vec![bind("o", promise("l0", "o0"))],
    );
    let sp = spec(t);
    assert_eq!(referenced_entities(&sp).launch_plans.len(), 1);
    assert_error(
        &compile_workflow(&sp, &resolved()).unwrap_err(),
        "node l0: references launch plan launch_plan p/d/lp@v, which is not registered",
    );
    let mut r = resolved();
    let key = IdKey::from(&id(ResourceType::LaunchPlan, "lp"));
    r.launch_plans.insert(
        key.clone(),
        iface(&[("a", int()), ("b", int())], &[("o0", int())]),
    );
    compile_workflow(&sp, &r).expect("without expected inputs, unbound LP inputs are allowed");
    let (params, _) = validate_launch_plan(
        &LaunchPlanSpec::default(),
        &iface(&[("a", int()), ("b", int())], &[]),
    )
    .unwrap();
    r.launch_plan_inputs.insert(key, params);
    assert_error(
        &compile_workflow(&sp, &r).unwrap_err(),
        "node l0: input 'b' is required but not bound",
    );
}

#[test]
fn gate_nodes() {
    let gate = |c: gate_node::Condition, inputs: Vec<Binding>| Node {
        id: "g".into(),
        inputs,
        target: Some(node::Target::GateNode(GateNode { condition: Some(c) })),
        ..Default::default()
    };
    let signal = gate_node::Condition::Signal(SignalCondition {
        signal_id: "s".into(),
        r#type: Some(int()),
        output_variable_name: "o0".into(),
    });
    let t = workflow(
        "wf",
        iface(&[], &[("o", int())]),
        vec![gate(signal, vec![])],
        vec![bind("o", promise("g", "o0"))],
    );
    compile_workflow(&spec(t), &resolved()).expect("signal output");
    let approve = gate_node::Condition::Approve(ApproveCondition {
        signal_id: "ok".into(),
    });
    let t = workflow(
        "wf",
        iface(&[("x", int())], &[("o", int())]),
        vec![gate(approve, vec![bind("x", promise("", "x"))])],
        vec![bind("o", promise("g", "x"))],
    );
    compile_workflow(&spec(t), &resolved()).expect("approve passes its input through");
    let sleep = gate_node::Condition::Sleep(SleepCondition { duration: None });
    let t = workflow("wf", iface(&[], &[]), vec![gate(sleep, vec![])], vec![]);
    compile_workflow(&spec(t), &resolved()).expect("sleep");
    let bad_signal = gate_node::Condition::Signal(SignalCondition {
        signal_id: "s".into(),
        r#type: None,
        output_variable_name: "o0".into(),
    });
    let t = workflow(
        "wf",
        iface(&[], &[]),
        vec![gate(bad_signal, vec![])],
        vec![],
    );
    assert_error(&errors_of(t), "node g: gate_node.signal.type is required");
    let t = workflow(
        "wf",
        iface(&[], &[]),
        vec![Node {
            id: "g".into(),
            target: Some(node::Target::GateNode(GateNode { condition: None })),
            ..Default::default()
        }],
        vec![],
    );
    assert_error(&errors_of(t), "node g: the gate node has no condition");
}

fn array(sub: Node, inputs: Vec<Binding>, original: bool, bound: &[&str]) -> Node {
    Node {
        id: "m".into(),
        inputs,
        target: Some(node::Target::ArrayNode(Box::new(ArrayNode {
            node: Some(Box::new(sub)),
            is_original_sub_node_interface: original
                .then_some(pbjson_types::BoolValue { value: true }),
            bound_inputs: bound.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }))),
        ..Default::default()
    }
}

#[test]
fn array_nodes_wrap_the_original_interface_except_bound_inputs() {
    let xs = || bind("a", promise("", "xs"));
    let t = workflow(
        "wf",
        iface(&[("xs", list(int()))], &[("o", list(int()))]),
        vec![array(
            task_node("sub", "add", vec![]),
            vec![xs(), bind("b", int_lit(1))],
            true,
            &["b"],
        )],
        vec![bind("o", promise("m", "o0"))],
    );
    let sp = spec(t.clone());
    assert_eq!(referenced_entities(&sp).tasks.len(), 1);
    compile_workflow(&sp, &resolved()).expect("map over a with b bound");
    let mut bad = t.clone();
    bad.nodes[0] = array(
        task_node("sub", "add", vec![]),
        vec![xs(), bind("b", int_lit(1))],
        true,
        &[],
    );
    assert_error(&errors_of(bad), "node m: input 'b' expects type list<int>");
    let mut bad = t;
    bad.nodes[0] = array(
        task_node("sub", "add", vec![]),
        vec![xs(), bind("b", int_lit(1))],
        true,
        &["zz"],
    );
    assert_error(&errors_of(bad), "bound input 'zz' is not an input");
}

#[test]
fn failure_node_is_validated() {
    let mut t = good_wf();
    t.failure_node = Some(task_node("f", "show", vec![bind("s", promise("", "x"))]));
    assert_error(&errors_of(t.clone()), "node f: input 's' expects type str");
    t.failure_node = Some(task_node(
        "f",
        "add",
        vec![bind("a", promise("", "x")), bind("b", int_lit(0))],
    ));
    let c = compile_workflow(&spec(t), &resolved()).expect("failure node ok");
    assert!(c.primary.unwrap().template.unwrap().failure_node.is_some());
}

#[test]
fn output_aliases_rename_outputs() {
    let mut t = good_wf();
    t.nodes[1].output_aliases = vec![Alias {
        var: "o0".into(),
        alias: "total".into(),
    }];
    t.outputs = vec![bind("o", promise("n1", "total"))];
    compile_workflow(&spec(t.clone()), &resolved()).expect("alias");
    t.nodes[1].output_aliases = vec![Alias {
        var: "zz".into(),
        alias: "total".into(),
    }];
    assert_error(&errors_of(t), "output alias 'total' refers to output 'zz'");
}

#[test]
fn compile_task_checks() {
    let good = task("add", iface(&[("a", int())], &[]));
    assert!(compile_task(&good).is_ok());
    let mut bad = good.clone();
    bad.id = None;
    bad.r#type.clear();
    bad.interface = None;
    let errs = compile_task(&bad).unwrap_err();
    assert_error(&errs, "task id is required");
    assert_error(&errs, "task type is required");
    assert_error(&errs, "task interface is required");
    let mut bad = good.clone();
    bad.target = Some(task_template::Target::Container(Container::default()));
    assert_error(&compile_task(&bad).unwrap_err(), "container.image");
    let mut bad = good;
    bad.interface = Some(TypedInterface {
        inputs: Some(VariableMap {
            variables: [("a".to_string(), Variable::default())].into(),
        }),
        outputs: None,
    });
    assert_error(&compile_task(&bad).unwrap_err(), "input 'a' has no type");
}

fn int_literal(i: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })),
        }))),
        ..Default::default()
    }
}

#[test]
fn launch_plan_expected_inputs() {
    let wf = iface(&[("a", int()), ("b", int()), ("c", int())], &[("o", int())]);
    let default = Parameter {
        var: Some(Variable {
            r#type: Some(int()),
            ..Default::default()
        }),
        behavior: Some(parameter::Behavior::Default(int_literal(5))),
    };
    let spec = LaunchPlanSpec {
        fixed_inputs: Some(LiteralMap {
            literals: [("a".to_string(), int_literal(1))].into(),
        }),
        default_inputs: Some(ParameterMap {
            parameters: [("b".to_string(), default.clone())].into(),
        }),
        ..Default::default()
    };
    let (inputs, outputs) = validate_launch_plan(&spec, &wf).unwrap();
    assert_eq!(inputs.parameters.keys().collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(inputs.parameters["b"], default);
    assert_eq!(
        inputs.parameters["c"].behavior,
        Some(parameter::Behavior::Required(true))
    );
    assert_eq!(outputs, vars(&[("o", int())]));
}

#[test]
fn launch_plan_input_errors() {
    let wf = iface(&[("a", int())], &[]);
    let str_lit = Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::StringValue("s".into())),
            })),
        }))),
        ..Default::default()
    };
    let fixed = |k: &str, l: Literal| {
        Some(LiteralMap {
            literals: [(k.to_string(), l)].into(),
        })
    };
    let e = validate_launch_plan(
        &LaunchPlanSpec {
            fixed_inputs: fixed("zz", int_literal(1)),
            ..Default::default()
        },
        &wf,
    )
    .unwrap_err();
    assert_error(&e, "fixed input 'zz' is not an input of the workflow");
    let e = validate_launch_plan(
        &LaunchPlanSpec {
            fixed_inputs: fixed("a", str_lit.clone()),
            ..Default::default()
        },
        &wf,
    )
    .unwrap_err();
    assert_error(
        &e,
        "fixed input 'a' is a str, but the workflow input has type int",
    );
    let param = |l: Literal| Parameter {
        var: Some(Variable {
            r#type: Some(int()),
            ..Default::default()
        }),
        behavior: Some(parameter::Behavior::Default(l)),
    };
    let defaults = |l: Literal| {
        Some(ParameterMap {
            parameters: [("a".to_string(), param(l))].into(),
        })
    };
    let e = validate_launch_plan(
        &LaunchPlanSpec {
            default_inputs: defaults(str_lit),
            ..Default::default()
        },
        &wf,
    )
    .unwrap_err();
    assert_error(&e, "default value of input 'a' is a str");
    let both = LaunchPlanSpec {
        default_inputs: defaults(int_literal(1)),
        fixed_inputs: fixed("a", int_literal(2)),
        ..Default::default()
    };
    assert_error(
        &validate_launch_plan(&both, &wf).unwrap_err(),
        "both a fixed input and a default input",
    );
}

#[test]
fn compile_workflow_template_serves_single_task_workflows() {
    // The `.flytegen.<task>` shape admin synthesizes for single-task executions.
    let t = workflow(
        ".flytegen.add",
        iface(&[("a", int()), ("b", int())], &[("o0", int())]),
        vec![task_node(
            "add",
            "add",
            vec![
                bind("a", promise("start-node", "a")),
                bind("b", promise("start-node", "b")),
            ],
        )],
        vec![bind("o0", promise("add", "o0"))],
    );
    let c = compile_workflow_template(&t, &[], &resolved()).expect("compiles");
    assert_eq!(c.tasks.len(), 1);
}

/// wf(x: int) -> o: int, a chain of `len` `add(prev, 1)` nodes, each bound to the one before.
fn chain_wf(len: usize) -> WorkflowTemplate {
    let nodes = (0..len)
        .map(|i| {
            let prev = if i == 0 {
                promise("start-node", "x")
            } else {
                promise(&format!("n{}", i - 1), "o0")
            };
            let mut n = task_node(
                &format!("n{i}"),
                "add",
                vec![bind("a", prev), bind("b", int_lit(1))],
            );
            if i > 0 {
                n.upstream_node_ids = vec![format!("n{}", i - 1)];
            }
            n
        })
        .collect();
    workflow(
        "chain",
        iface(&[("x", int())], &[("o", int())]),
        nodes,
        vec![bind("o", promise(&format!("n{}", len - 1), "o0"))],
    )
}

/// Issue 11: a 10,000-node chain overflowed the stack in the cycle check (one frame per node).
/// Runs on the test thread's ordinary 2 MiB stack, like a tokio worker's.
#[test]
fn a_100000_node_chain_compiles() {
    let len = 100_000;
    let closure = compile_workflow(&spec(chain_wf(len)), &resolved()).expect("compiles");
    let primary = closure.primary.unwrap();
    assert_eq!(primary.template.unwrap().nodes.len(), len + 2);
    let conn = primary.connections.unwrap();
    assert_eq!(conn.upstream["n99999"].ids, ["n99998"]);
    assert_eq!(conn.downstream["n99999"].ids, ["end-node"]);
}

/// A cycle along a long chain is still found, and named.
#[test]
fn a_cycle_closing_a_long_chain_is_reported() {
    let mut wf = chain_wf(50_000);
    wf.nodes[0].upstream_node_ids = vec!["n49999".into()];
    let errs = errors_of(wf);
    assert_error(&errs, "n0 -> n1 -> n2");
}

/// `list[list[...int]]`, `levels` levels in all.
fn nested_list_type(levels: usize) -> LiteralType {
    (1..levels).fold(int(), |t, _| list(t))
}

/// Issue 11: types and bindings nested past the bound are refused, naming it.
#[test]
fn types_and_bindings_nested_past_the_bound_are_refused() {
    let deep = crate::types::MAX_NESTING_DEPTH + 1;
    let mut wf = good_wf();
    wf.interface = Some(iface(
        &[("x", int()), ("deep", nested_list_type(deep))],
        &[("o", int())],
    ));
    assert_error(
        &errors_of(wf),
        "input 'deep': type nested deeper than 30 levels",
    );

    let collection = |b: BindingData| BindingData {
        value: Some(binding_data::Value::Collection(BindingDataCollection {
            bindings: vec![b],
        })),
        ..Default::default()
    };
    let mut wf = good_wf();
    wf.nodes[0].inputs[1] = bind("b", (1..deep).fold(int_lit(1), |b, _| collection(b)));
    assert_error(
        &errors_of(wf),
        "node n0: input 'b': binding nested deeper than 30 levels",
    );

    // At the bound it is an ordinary type error, not a nesting one.
    let mut wf = good_wf();
    wf.nodes[0].inputs[1] = bind("b", (1..deep - 1).fold(int_lit(1), |b, _| collection(b)));
    let errs = errors_of(wf);
    assert!(!errs.to_string().contains("nested deeper"), "{errs}");
}

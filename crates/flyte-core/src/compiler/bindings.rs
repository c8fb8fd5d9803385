//! Bindings: promises, literals, collections and maps bound to node inputs, checked against
//! the target variable's type (propeller's `validators/bindings.go`), and branch conditions.

use std::collections::BTreeSet;

use flyteidl::core::literal_type::Type;
use flyteidl::core::{
    Binding, BindingData, BooleanExpression, LiteralType, Node, OutputReference, Variable,
    VariableMap, binding_data, boolean_expression, operand, promise_attribute, scalar,
};

use super::graph::{Compiler, Graph};
use super::{CompileErrorKind, START_NODE_ID};
use crate::types::{
    check_binding_depth, display_type, is_castable, is_optional, same_type, try_literal_type_of,
};

/// Which side of an edge a binding records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Both,
    /// Only `connections.upstream` (branch children, failure node).
    Upstream,
    #[allow(dead_code)]
    Downstream,
}

/// Validates `bindings` against `params`: every binding names a parameter, none twice, each
/// value casts to the parameter's type, and every non-optional parameter is bound.
pub(crate) fn validate(
    c: &mut Compiler<'_>,
    g: &mut Graph,
    node_id: &str,
    bindings: &[Binding],
    params: Option<&VariableMap>,
    direction: Direction,
) {
    let empty = VariableMap::default();
    let params = params.unwrap_or(&empty);
    let mut bound = BTreeSet::new();
    for b in bindings {
        let Some(param) = params.variables.get(&b.var) else {
            c.errors.push(super::CompileError::node(
                node_id,
                CompileErrorKind::UnknownInput {
                    var: b.var.clone(),
                    available: names(params),
                },
            ));
            continue;
        };
        if !bound.insert(b.var.as_str()) {
            err(
                c,
                node_id,
                CompileErrorKind::InputBoundTwice { var: b.var.clone() },
            );
            continue;
        }
        let Some(data) = &b.binding else {
            err(
                c,
                node_id,
                CompileErrorKind::EmptyBinding { var: b.var.clone() },
            );
            continue;
        };
        if let Err(error) = check_binding_depth(data) {
            err(
                c,
                node_id,
                CompileErrorKind::TooDeep {
                    place: format!("input '{}'", b.var),
                    error,
                },
            );
            continue;
        }
        let Some(expected) = &param.r#type else {
            continue;
        };
        let mut ups = Vec::new();
        if check(c, g, node_id, &b.var, data, expected, &mut ups).is_some() {
            for up in ups {
                g.add_edge(&up, node_id, direction);
            }
        }
    }
    for (name, var) in &params.variables {
        let optional = var.r#type.as_ref().is_some_and(is_optional);
        if !bound.contains(name.as_str()) && !optional {
            err(
                c,
                node_id,
                CompileErrorKind::InputNotBound { var: name.clone() },
            );
        }
    }
}

/// Branch nodes and approve gates have no declared inputs: they take whatever they bind,
/// typed by the bound values. Unknown upstream nodes or outputs are still errors.
pub(crate) fn infer_inputs(c: &mut Compiler<'_>, g: &Graph, n: &Node) -> VariableMap {
    let mut variables = std::collections::BTreeMap::new();
    for b in &n.inputs {
        let Some(data) = &b.binding else { continue };
        // Errors are reported when the bindings are validated against the inferred types.
        let saved = c.errors.len();
        let t = infer(c, g, &n.id, &b.var, data);
        c.errors.truncate(saved);
        if let Some(t) = t {
            variables.insert(
                b.var.clone(),
                Variable {
                    r#type: Some(t),
                    ..Default::default()
                },
            );
        }
    }
    VariableMap { variables }
}

fn infer(
    c: &mut Compiler<'_>,
    g: &Graph,
    node_id: &str,
    var: &str,
    data: &BindingData,
) -> Option<LiteralType> {
    match data.value.as_ref()? {
        binding_data::Value::Promise(p) => resolve_promise(c, g, node_id, var, p).map(|(_, t)| t),
        binding_data::Value::Scalar(s) => scalar_type(s),
        binding_data::Value::Collection(col) => {
            let inner = col
                .bindings
                .iter()
                .find_map(|b| infer(c, g, node_id, var, b))?;
            Some(wrap(Type::CollectionType(Box::new(inner))))
        }
        binding_data::Value::Map(m) => {
            let inner = m
                .bindings
                .values()
                .find_map(|b| infer(c, g, node_id, var, b))?;
            Some(wrap(Type::MapValueType(Box::new(inner))))
        }
        binding_data::Value::OffloadedMetadata(o) => o.inferred_type.clone(),
    }
}

/// Checks one binding value against `expected`; collects the upstream nodes it reads from.
fn check(
    c: &mut Compiler<'_>,
    g: &Graph,
    node_id: &str,
    var: &str,
    data: &BindingData,
    expected: &LiteralType,
    ups: &mut Vec<String>,
) -> Option<()> {
    let value = data.value.as_ref()?;
    // A collection or map bound to a union must match exactly one variant.
    if let (
        Some(Type::UnionType(u)),
        binding_data::Value::Collection(_) | binding_data::Value::Map(_),
    ) = (&expected.r#type, value)
    {
        return check_union(c, g, node_id, var, data, expected, &u.variants, ups);
    }
    match value {
        binding_data::Value::Promise(p) => {
            let (up, source_type) = resolve_promise(c, g, node_id, var, p)?;
            if !is_castable(&source_type, expected) {
                mismatch(
                    c,
                    node_id,
                    var,
                    format!("output '{}' of node '{}'", p.var, up),
                    expected,
                    &source_type,
                );
                return None;
            }
            ups.push(up);
            Some(())
        }
        binding_data::Value::Scalar(s) => {
            let Some(t) = scalar_type(s) else {
                err(
                    c,
                    node_id,
                    CompileErrorKind::EmptyBinding { var: var.into() },
                );
                return None;
            };
            if !is_castable(&t, expected) {
                mismatch(c, node_id, var, "a literal value".into(), expected, &t);
                return None;
            }
            check_enum_value(c, node_id, var, s, expected)
        }
        binding_data::Value::Collection(col) => {
            let Some(Type::CollectionType(inner)) = &expected.r#type else {
                mismatch_kind(c, node_id, var, "a list", expected);
                return None;
            };
            let mut ok = Some(());
            for b in &col.bindings {
                ok = ok.and(check(c, g, node_id, var, b, inner, ups));
            }
            ok
        }
        binding_data::Value::Map(m) => {
            let Some(Type::MapValueType(inner)) = &expected.r#type else {
                mismatch_kind(c, node_id, var, "a map", expected);
                return None;
            };
            let mut ok = Some(());
            for b in m.bindings.values() {
                ok = ok.and(check(c, g, node_id, var, b, inner, ups));
            }
            ok
        }
        binding_data::Value::OffloadedMetadata(o) => {
            let t = o.inferred_type.clone().unwrap_or_default();
            if !is_castable(&t, expected) {
                mismatch(c, node_id, var, "an offloaded literal".into(), expected, &t);
                return None;
            }
            Some(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_union(
    c: &mut Compiler<'_>,
    g: &Graph,
    node_id: &str,
    var: &str,
    data: &BindingData,
    expected: &LiteralType,
    variants: &[LiteralType],
    ups: &mut Vec<String>,
) -> Option<()> {
    let mut matched: Option<Vec<String>> = None;
    for v in variants {
        let saved = c.errors.len();
        let mut variant_ups = Vec::new();
        let ok = check(c, g, node_id, var, data, v, &mut variant_ups).is_some();
        c.errors.truncate(saved);
        if !ok {
            continue;
        }
        if matched.is_some() {
            err(
                c,
                node_id,
                CompileErrorKind::AmbiguousUnionBinding {
                    var: var.into(),
                    expected: display_type(expected),
                },
            );
            return None;
        }
        matched = Some(variant_ups);
    }
    match matched {
        Some(found) => {
            ups.extend(found);
            Some(())
        }
        None => {
            err(
                c,
                node_id,
                CompileErrorKind::NoMatchingUnionVariant {
                    var: var.into(),
                    expected: display_type(expected),
                },
            );
            None
        }
    }
}

/// Resolves a promise to (upstream node id, the type it yields after index and attribute
/// path). An empty node id means the workflow inputs.
fn resolve_promise(
    c: &mut Compiler<'_>,
    g: &Graph,
    node_id: &str,
    var: &str,
    p: &OutputReference,
) -> Option<(String, LiteralType)> {
    let up = if p.node_id.is_empty() {
        START_NODE_ID
    } else {
        p.node_id.as_str()
    };
    let Some(up_iface) = g.ifaces.get(up).filter(|_| up != super::END_NODE_ID) else {
        err(
            c,
            node_id,
            CompileErrorKind::UpstreamNodeNotFound {
                var: var.into(),
                upstream: up.into(),
            },
        );
        return None;
    };
    let Some((index, out_name)) = parse_output_var(&p.var) else {
        err(
            c,
            node_id,
            CompileErrorKind::BadOutputReference {
                var: var.into(),
                output: p.var.clone(),
            },
        );
        return None;
    };
    let outputs = up_iface.outputs.clone().unwrap_or_default();
    let Some(out_type) = outputs
        .variables
        .get(out_name)
        .and_then(|v| v.r#type.clone())
    else {
        err(
            c,
            node_id,
            CompileErrorKind::UpstreamOutputNotFound {
                var: var.into(),
                upstream: up.into(),
                output: p.var.clone(),
                available: names(&outputs),
            },
        );
        return None;
    };
    let mut t = out_type;
    if index.is_some() {
        match t.r#type {
            Some(Type::CollectionType(inner)) => t = *inner,
            _ => {
                err(
                    c,
                    node_id,
                    CompileErrorKind::TypeMismatch {
                        var: var.into(),
                        from: format!("output '{}' of node '{up}'", p.var),
                        expected: "an indexable list".into(),
                        actual: display_type(&t),
                    },
                );
                return None;
            }
        }
    }
    for attr in &p.attr_path {
        t = step_attr(c, node_id, var, &p.var, t, attr)?;
    }
    Some((up.to_string(), t))
}

/// One step of an attribute path: into a list's elements, a map's values, or a dataclass
/// field. Types without structure information stay as they are (generic structs).
fn step_attr(
    c: &mut Compiler<'_>,
    node_id: &str,
    var: &str,
    output: &str,
    t: LiteralType,
    attr: &flyteidl::core::PromiseAttribute,
) -> Option<LiteralType> {
    match &t.r#type {
        Some(Type::CollectionType(inner)) | Some(Type::MapValueType(inner)) => {
            return Some((**inner).clone());
        }
        _ => {}
    }
    let Some(structure) = t
        .structure
        .as_ref()
        .filter(|s| !s.dataclass_type.is_empty())
    else {
        return Some(t);
    };
    let name = match &attr.value {
        Some(promise_attribute::Value::StringValue(s)) => s.clone(),
        Some(promise_attribute::Value::IntValue(i)) => i.to_string(),
        None => String::new(),
    };
    match structure.dataclass_type.get(&name) {
        Some(field) => Some(field.clone()),
        None => {
            err(
                c,
                node_id,
                CompileErrorKind::AttributeNotFound {
                    var: var.into(),
                    output: output.into(),
                    attr: name,
                    actual: display_type(&t),
                },
            );
            None
        }
    }
}

/// `o0` or `[3].o0` (propeller's `typing.ParseVarName`): returns (index, name).
fn parse_output_var(s: &str) -> Option<(Option<usize>, &str)> {
    let (index, rest) = match s.strip_prefix('[').and_then(|r| r.split_once("].")) {
        Some((digits, rest)) => (Some(digits.parse().ok()?), rest),
        None => (None, s),
    };
    let is_word = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut words = rest
        .split(|ch: char| !is_word(ch))
        .filter(|w| !w.is_empty());
    let name = words.next()?;
    words.next().is_none().then_some((index, name))
}

fn check_enum_value(
    c: &mut Compiler<'_>,
    node_id: &str,
    var: &str,
    s: &flyteidl::core::Scalar,
    expected: &LiteralType,
) -> Option<()> {
    let Some(Type::EnumType(e)) = &expected.r#type else {
        return Some(());
    };
    let value = match &s.value {
        Some(scalar::Value::Primitive(flyteidl::core::Primitive {
            value: Some(flyteidl::core::primitive::Value::StringValue(v)),
        })) => v.clone(),
        _ => String::new(),
    };
    if e.values.contains(&value) {
        return Some(());
    }
    err(
        c,
        node_id,
        CompileErrorKind::IllegalEnumValue {
            var: var.into(),
            value,
            allowed: e.values.join(", "),
        },
    );
    None
}

/// Branch conditions compare the branch node's inputs and literals of the same type.
pub(crate) fn validate_condition(
    c: &mut Compiler<'_>,
    node_id: &str,
    expr: &BooleanExpression,
    inputs: &VariableMap,
) {
    match &expr.expr {
        None => err(c, node_id, CompileErrorKind::BranchWithoutCondition),
        Some(boolean_expression::Expr::Conjunction(conj)) => {
            for side in [&conj.left_expression, &conj.right_expression] {
                match side {
                    Some(e) => validate_condition(c, node_id, e, inputs),
                    None => err(c, node_id, CompileErrorKind::BranchWithoutCondition),
                }
            }
        }
        Some(boolean_expression::Expr::Comparison(cmp)) => {
            let left = operand_type(c, node_id, cmp.left_value.as_ref(), inputs);
            let right = operand_type(c, node_id, cmp.right_value.as_ref(), inputs);
            if let (Some(Some(l)), Some(Some(r))) = (&left, &right)
                && !same_type(l, r)
            {
                err(
                    c,
                    node_id,
                    CompileErrorKind::ConditionTypeMismatch {
                        left: display_type(l),
                        right: display_type(r),
                    },
                );
            }
        }
    }
}

/// `None` if the operand is invalid (reported); `Some(None)` if its type is unknown.
fn operand_type(
    c: &mut Compiler<'_>,
    node_id: &str,
    op: Option<&flyteidl::core::Operand>,
    inputs: &VariableMap,
) -> Option<Option<LiteralType>> {
    match op.and_then(|o| o.val.as_ref()) {
        None => {
            err(
                c,
                node_id,
                CompileErrorKind::ValueRequired {
                    field: "branch condition operand".into(),
                },
            );
            None
        }
        #[allow(deprecated)]
        Some(operand::Val::Primitive(p)) => Some(scalar_type(&flyteidl::core::Scalar {
            value: Some(scalar::Value::Primitive(p.clone())),
        })),
        Some(operand::Val::Scalar(s)) => Some(scalar_type(s)),
        Some(operand::Val::Var(v)) => match inputs.variables.get(v) {
            Some(var) => Some(var.r#type.clone()),
            None => {
                err(
                    c,
                    node_id,
                    CompileErrorKind::UnknownConditionOperand { var: v.clone() },
                );
                None
            }
        },
    }
}

fn scalar_type(s: &flyteidl::core::Scalar) -> Option<LiteralType> {
    try_literal_type_of(&flyteidl::core::Literal {
        value: Some(flyteidl::core::literal::Value::Scalar(Box::new(s.clone()))),
        ..Default::default()
    })
}

fn wrap(t: Type) -> LiteralType {
    LiteralType {
        r#type: Some(t),
        ..Default::default()
    }
}

fn names(vars: &VariableMap) -> String {
    if vars.variables.is_empty() {
        return "none".into();
    }
    vars.variables
        .keys()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn err(c: &mut Compiler<'_>, node_id: &str, kind: CompileErrorKind) {
    c.errors.push(super::CompileError::node(node_id, kind));
}

fn mismatch(
    c: &mut Compiler<'_>,
    node_id: &str,
    var: &str,
    source: String,
    expected: &LiteralType,
    actual: &LiteralType,
) {
    err(
        c,
        node_id,
        CompileErrorKind::TypeMismatch {
            var: var.into(),
            from: source,
            expected: display_type(expected),
            actual: display_type(actual),
        },
    );
}

fn mismatch_kind(
    c: &mut Compiler<'_>,
    node_id: &str,
    var: &str,
    what: &str,
    expected: &LiteralType,
) {
    err(
        c,
        node_id,
        CompileErrorKind::TypeMismatch {
            var: var.into(),
            from: what.into(),
            expected: display_type(expected),
            actual: what.trim_start_matches("a ").into(),
        },
    );
}

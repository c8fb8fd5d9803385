//! Branch conditions (propeller's `nodes/branch/{evaluator,comparator}.go`).

use flyteidl::core::{
    BooleanExpression, ComparisonExpression, IfElseBlock, Literal, LiteralMap, Node, Operand,
    Primitive, boolean_expression, comparison_expression::Operator, conjunction_expression,
    literal, operand, primitive, scalar,
};

/// A malformed branch or a user-provided `fail` (both USER errors), with propeller's codes.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchError {
    pub code: &'static str,
    pub message: String,
}

fn malformed(message: impl Into<String>) -> BranchError {
    BranchError {
        code: "MalformedBranchUserError",
        message: message.into(),
    }
}

/// `Option<&Primitive>`: None is a none-typed value.
#[allow(deprecated)]
fn operand_value<'a>(
    op: &'a Operand,
    inputs: &'a LiteralMap,
) -> Result<Option<&'a Primitive>, BranchError> {
    match &op.val {
        Some(operand::Val::Primitive(p)) => Ok(Some(p)),
        Some(operand::Val::Scalar(s)) => match &s.value {
            Some(scalar::Value::Primitive(p)) => Ok(Some(p)),
            Some(scalar::Value::NoneType(_)) => Ok(None),
            _ => Err(malformed(
                "Only primitives can be compared. Operand is non primitive",
            )),
        },
        Some(operand::Val::Var(v)) => {
            let lit = inputs
                .literals
                .get(v)
                .ok_or_else(|| malformed(format!("Failed to find Value for Variable [{v}]")))?;
            literal_primitive(lit)
        }
        None => Err(malformed("Operand has no value")),
    }
}

fn literal_primitive(lit: &Literal) -> Result<Option<&Primitive>, BranchError> {
    if let Some(literal::Value::Scalar(s)) = &lit.value {
        match &s.value {
            Some(scalar::Value::Primitive(p)) => return Ok(Some(p)),
            Some(scalar::Value::NoneType(_)) => return Ok(None),
            // Optional values arrive as unions of the value or none.
            Some(scalar::Value::Union(u)) => {
                if let Some(v) = &u.value {
                    return literal_primitive(v);
                }
            }
            _ => {}
        }
    }
    Err(malformed(
        "Only primitives can be compared. Variable is non primitive.",
    ))
}

fn kind(p: &Primitive) -> u8 {
    match &p.value {
        Some(primitive::Value::Integer(_)) => 1,
        Some(primitive::Value::FloatValue(_)) => 2,
        Some(primitive::Value::StringValue(_)) => 3,
        Some(primitive::Value::Boolean(_)) => 4,
        Some(primitive::Value::Datetime(_)) => 5,
        Some(primitive::Value::Duration(_)) => 6,
        None => 0,
    }
}

/// (eq, gt) of two primitives of the same kind.
fn compare(l: &Primitive, r: &Primitive) -> (bool, Option<bool>) {
    use primitive::Value::*;
    match (&l.value, &r.value) {
        (Some(Integer(a)), Some(Integer(b))) => (a == b, Some(a > b)),
        (Some(FloatValue(a)), Some(FloatValue(b))) => (a == b, Some(a > b)),
        (Some(StringValue(a)), Some(StringValue(b))) => (a == b, Some(a > b)),
        (Some(Boolean(a)), Some(Boolean(b))) => (a == b, None),
        (Some(Datetime(a)), Some(Datetime(b))) => {
            (a.seconds == b.seconds, Some(a.seconds > b.seconds))
        }
        (Some(Duration(a)), Some(Duration(b))) => {
            (a.seconds == b.seconds, Some(a.seconds > b.seconds))
        }
        _ => (false, None),
    }
}

pub fn evaluate_comparison(
    expr: &ComparisonExpression,
    inputs: &LiteralMap,
) -> Result<bool, BranchError> {
    let missing = || malformed("Comparison is missing an operand");
    let l = operand_value(expr.left_value.as_ref().ok_or_else(missing)?, inputs)?;
    let r = operand_value(expr.right_value.as_ref().ok_or_else(missing)?, inputs)?;
    let op = Operator::try_from(expr.operator).unwrap_or(Operator::Eq);
    let (l, r) = match (l, r) {
        (Some(l), Some(r)) => (l, r),
        (l, r) => {
            return match op {
                Operator::Eq => Ok(l.is_none() && r.is_none()),
                Operator::Neq => Ok(!(l.is_none() && r.is_none())),
                _ => Err(malformed(format!(
                    "Comparison between nil and non-nil values with operator [{}] is not supported.",
                    op.as_str_name()
                ))),
            };
        }
    };
    if kind(l) != kind(r) {
        return Err(malformed("Comparison between different primitives types."));
    }
    let (eq, gt) = compare(l, r);
    let need_gt = |g: Option<bool>| {
        g.ok_or_else(|| {
            malformed(format!(
                "[{}] not defined for boolean operands.",
                op.as_str_name()
            ))
        })
    };
    Ok(match op {
        Operator::Eq => eq,
        Operator::Neq => !eq,
        Operator::Gt => need_gt(gt)?,
        Operator::Gte => eq || need_gt(gt)?,
        Operator::Lt => !(need_gt(gt)? || eq),
        Operator::Lte => !need_gt(gt)?,
    })
}

pub fn evaluate(expr: &BooleanExpression, inputs: &LiteralMap) -> Result<bool, BranchError> {
    match &expr.expr {
        Some(boolean_expression::Expr::Comparison(c)) => evaluate_comparison(c, inputs),
        Some(boolean_expression::Expr::Conjunction(c)) => {
            let l = evaluate(
                c.left_expression
                    .as_deref()
                    .ok_or_else(|| malformed("Conjunction without left expression"))?,
                inputs,
            )?;
            let r = evaluate(
                c.right_expression
                    .as_deref()
                    .ok_or_else(|| malformed("Conjunction without right expression"))?,
                inputs,
            )?;
            Ok(
                match conjunction_expression::LogicalOperator::try_from(c.operator) {
                    Ok(conjunction_expression::LogicalOperator::Or) => l || r,
                    _ => l && r,
                },
            )
        }
        None => Err(malformed(
            "No Comparison or Conjunction found in Branch node expression.",
        )),
    }
}

/// The decision: the taken node and the nodes not taken (to be marked SKIPPED).
pub struct Decision<'a> {
    pub taken: &'a Node,
    pub skipped: Vec<&'a Node>,
}

/// Cases in order; the first true one wins, else the else node, else the `fail` message.
pub fn decide<'a>(
    block: &'a IfElseBlock,
    inputs: &LiteralMap,
) -> Result<Decision<'a>, (BranchError, Vec<&'a Node>)> {
    use flyteidl::core::if_else_block::Default as D;
    let mut taken: Option<&Node> = None;
    let mut skipped = Vec::new();
    let cases = block.case.as_deref().into_iter().chain(block.other.iter());
    for case in cases {
        let Some(then) = case.then_node.as_deref() else {
            continue;
        };
        if taken.is_some() {
            skipped.push(then);
            continue;
        }
        let cond = case
            .condition
            .as_ref()
            .ok_or_else(|| (malformed("Branch case without a condition"), Vec::new()))?;
        match evaluate(cond, inputs) {
            Ok(true) => taken = Some(then),
            Ok(false) => skipped.push(then),
            Err(e) => return Err((e, Vec::new())),
        }
    }
    match &block.default {
        Some(D::ElseNode(n)) => {
            if taken.is_none() {
                taken = Some(n);
            } else {
                skipped.push(n);
            }
        }
        Some(D::Error(e)) if taken.is_none() => {
            return Err((
                BranchError {
                    code: "UserProvidedError",
                    message: e.message.clone(),
                },
                skipped,
            ));
        }
        _ => {}
    }
    match taken {
        Some(taken) => Ok(Decision { taken, skipped }),
        None => Err((malformed("No branch satisfied"), skipped)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[allow(deprecated)]
    fn int_op(i: i64) -> Operand {
        Operand {
            val: Some(operand::Val::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })),
        }
    }
    fn var_op(v: &str) -> Operand {
        Operand {
            val: Some(operand::Val::Var(v.into())),
        }
    }
    fn cmp(l: Operand, op: Operator, r: Operand) -> BooleanExpression {
        BooleanExpression {
            expr: Some(boolean_expression::Expr::Comparison(ComparisonExpression {
                operator: op as i32,
                left_value: Some(l),
                right_value: Some(r),
            })),
        }
    }

    #[test]
    fn comparisons_and_conjunctions() {
        let inputs = LiteralMap {
            literals: BTreeMap::from([(
                "x".to_string(),
                Literal {
                    value: Some(literal::Value::Scalar(Box::new(flyteidl::core::Scalar {
                        value: Some(scalar::Value::Primitive(Primitive {
                            value: Some(primitive::Value::Integer(5)),
                        })),
                    }))),
                    ..Default::default()
                },
            )]),
        };
        for (op, r, want) in [
            (Operator::Eq, 5, true),
            (Operator::Neq, 5, false),
            (Operator::Gt, 4, true),
            (Operator::Gte, 5, true),
            (Operator::Lt, 5, false),
            (Operator::Lte, 5, true),
        ] {
            assert_eq!(
                evaluate(&cmp(var_op("x"), op, int_op(r)), &inputs).unwrap(),
                want,
                "{op:?}"
            );
        }
        let and = BooleanExpression {
            expr: Some(boolean_expression::Expr::Conjunction(Box::new(
                flyteidl::core::ConjunctionExpression {
                    operator: conjunction_expression::LogicalOperator::And as i32,
                    left_expression: Some(Box::new(cmp(var_op("x"), Operator::Gt, int_op(1)))),
                    right_expression: Some(Box::new(cmp(var_op("x"), Operator::Lt, int_op(3)))),
                },
            ))),
        };
        assert!(!evaluate(&and, &inputs).unwrap());
        let mut or = and.clone();
        if let Some(boolean_expression::Expr::Conjunction(c)) = &mut or.expr {
            c.operator = conjunction_expression::LogicalOperator::Or as i32;
        }
        assert!(evaluate(&or, &inputs).unwrap());
        assert!(evaluate(&cmp(var_op("nope"), Operator::Eq, int_op(1)), &inputs).is_err());
    }
}

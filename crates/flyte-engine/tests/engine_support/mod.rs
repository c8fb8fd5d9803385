//! Builders shared by the engine's integration tests (types, literals, interfaces, identifiers).
#![allow(dead_code)] // each test binary uses a different subset

use flyte_engine::ExecutionRequest;
use flyteidl::core::literal_type::Type;
use flyteidl::core::{
    CompiledWorkflowClosure, Identifier, Literal, LiteralMap, LiteralType, Primitive, ResourceType,
    Scalar, SimpleType, TypedInterface, Variable, VariableMap, WorkflowExecutionIdentifier,
    literal, primitive, scalar,
};

pub fn int_t() -> LiteralType {
    LiteralType {
        r#type: Some(Type::Simple(SimpleType::Integer as i32)),
        ..Default::default()
    }
}

pub fn list_t(t: LiteralType) -> LiteralType {
    LiteralType {
        r#type: Some(Type::CollectionType(Box::new(t))),
        ..Default::default()
    }
}

pub fn vars(v: &[(&str, LiteralType)]) -> VariableMap {
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

pub fn iface(i: &[(&str, LiteralType)], o: &[(&str, LiteralType)]) -> TypedInterface {
    TypedInterface {
        inputs: Some(vars(i)),
        outputs: Some(vars(o)),
    }
}

pub fn ident(rt: ResourceType, name: &str) -> Identifier {
    Identifier {
        resource_type: rt as i32,
        project: "p".into(),
        domain: "d".into(),
        name: name.into(),
        version: "v".into(),
        ..Default::default()
    }
}

pub fn int_lit(i: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })),
        }))),
        ..Default::default()
    }
}

/// An execution `p/d/<name>` of a compiled workflow with the given inputs.
pub fn request(
    name: &str,
    compiled: CompiledWorkflowClosure,
    inputs: &[(&str, Literal)],
) -> ExecutionRequest {
    ExecutionRequest {
        id: WorkflowExecutionIdentifier {
            project: "p".into(),
            domain: "d".into(),
            name: name.into(),
            ..Default::default()
        },
        compiled,
        inputs: LiteralMap {
            literals: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        },
        ..Default::default()
    }
}

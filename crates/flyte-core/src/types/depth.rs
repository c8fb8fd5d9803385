//! The nesting bound for literals, types and binding data (issue 11; docs/error-handling.md,
//! "Nesting bound").
//!
//! Walks over these values recurse (type checks, casts, display, serde), so their depth must
//! be bounded before they reach them. The bound is checked where values enter: registration
//! (the compiler: interfaces, bindings, launch-plan defaults) and execution inputs. It sits
//! below prost's decoding limit of 100 nested messages: a `map` literal costs three messages
//! per level (Literal, LiteralMap, map entry), so 31 levels of maps inside an
//! `ExecutionCreateRequest` still decode and reach this check, whose message names the bound.
//! Anything deeper is refused by the decoder itself.
//!
//! The check itself is iterative: it must not overflow on the very input it refuses.

use flyteidl::core::literal_type::Type;
use flyteidl::core::{BindingData, Literal, LiteralType, Scalar, binding_data, literal, scalar};
use pbjson_types::value::Kind as ValueKind;

/// How many levels literals, literal types and binding data may nest: a plain value is one
/// level, each collection, map, union or struct around it one more (`list[list[int]]`: 3).
pub const MAX_NESTING_DEPTH: usize = 30;

/// What was found nested too deeply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nested {
    Literal,
    Type,
    Binding,
}

impl Nested {
    fn as_str(self) -> &'static str {
        match self {
            Nested::Literal => "literal",
            Nested::Type => "type",
            Nested::Binding => "binding",
        }
    }
}

/// "literal nested deeper than 30 levels": callers add where ("at input 'x'").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} nested deeper than {MAX_NESTING_DEPTH} levels", what.as_str())]
pub struct TooDeep {
    pub what: Nested,
}

enum Item<'a> {
    Literal(&'a Literal),
    Scalar(&'a Scalar),
    Value(&'a pbjson_types::Value),
    Type(&'a LiteralType),
    Binding(&'a BindingData),
}

impl Item<'_> {
    fn nested(&self) -> Nested {
        match self {
            Item::Literal(_) | Item::Scalar(_) | Item::Value(_) => Nested::Literal,
            Item::Type(_) => Nested::Type,
            Item::Binding(_) => Nested::Binding,
        }
    }
}

/// Checks a literal (with the literals, structs and types inside it).
pub fn check_literal_depth(lit: &Literal) -> Result<(), TooDeep> {
    walk(Item::Literal(lit))
}

/// Checks a literal type (collections, maps, unions, dataclass fields, dataset columns).
pub fn check_type_depth(t: &LiteralType) -> Result<(), TooDeep> {
    walk(Item::Type(t))
}

/// Checks a binding (nested collections and maps, and the literals and types in it).
pub fn check_binding_depth(b: &BindingData) -> Result<(), TooDeep> {
    walk(Item::Binding(b))
}

/// Depth-first over an explicit stack of (item, level); a scalar belongs to its literal's
/// level, everything else inside a value is one level deeper.
fn walk(root: Item<'_>) -> Result<(), TooDeep> {
    let mut stack = vec![(root, 1usize)];
    while let Some((item, level)) = stack.pop() {
        if level > MAX_NESTING_DEPTH {
            return Err(TooDeep {
                what: item.nested(),
            });
        }
        let next = level + 1;
        match item {
            Item::Literal(l) => match &l.value {
                Some(literal::Value::Scalar(s)) => stack.push((Item::Scalar(s), level)),
                Some(literal::Value::Collection(c)) => {
                    stack.extend(c.literals.iter().map(|l| (Item::Literal(l), next)))
                }
                Some(literal::Value::Map(m)) => {
                    stack.extend(m.literals.values().map(|l| (Item::Literal(l), next)))
                }
                Some(literal::Value::OffloadedMetadata(o)) => {
                    if let Some(t) = &o.inferred_type {
                        stack.push((Item::Type(t), next));
                    }
                }
                None => {}
            },
            Item::Scalar(s) => match &s.value {
                Some(scalar::Value::Union(u)) => {
                    if let Some(v) = &u.value {
                        stack.push((Item::Literal(v), next));
                    }
                    if let Some(t) = &u.r#type {
                        stack.push((Item::Type(t), next));
                    }
                }
                Some(scalar::Value::Generic(st)) => {
                    stack.extend(st.fields.values().map(|v| (Item::Value(v), next)))
                }
                _ => {}
            },
            Item::Value(v) => match &v.kind {
                Some(ValueKind::StructValue(st)) => {
                    stack.extend(st.fields.values().map(|v| (Item::Value(v), next)))
                }
                Some(ValueKind::ListValue(list)) => {
                    stack.extend(list.values.iter().map(|v| (Item::Value(v), next)))
                }
                _ => {}
            },
            Item::Type(t) => {
                match &t.r#type {
                    Some(Type::CollectionType(inner)) | Some(Type::MapValueType(inner)) => {
                        stack.push((Item::Type(inner), next))
                    }
                    Some(Type::UnionType(u)) => {
                        stack.extend(u.variants.iter().map(|t| (Item::Type(t), next)))
                    }
                    Some(Type::StructuredDatasetType(sd)) => stack.extend(
                        sd.columns
                            .iter()
                            .filter_map(|c| c.literal_type.as_ref())
                            .map(|t| (Item::Type(t), next)),
                    ),
                    _ => {}
                }
                if let Some(s) = &t.structure {
                    stack.extend(s.dataclass_type.values().map(|t| (Item::Type(t), next)));
                }
            }
            Item::Binding(b) => {
                match &b.value {
                    Some(binding_data::Value::Scalar(s)) => stack.push((Item::Scalar(s), level)),
                    Some(binding_data::Value::Collection(c)) => {
                        stack.extend(c.bindings.iter().map(|b| (Item::Binding(b), next)))
                    }
                    Some(binding_data::Value::Map(m)) => {
                        stack.extend(m.bindings.values().map(|b| (Item::Binding(b), next)))
                    }
                    Some(binding_data::Value::OffloadedMetadata(o)) => {
                        if let Some(t) = &o.inferred_type {
                            stack.push((Item::Type(t), next));
                        }
                    }
                    Some(binding_data::Value::Promise(_)) | None => {}
                }
                if let Some(t) = b.union.as_ref().and_then(|u| u.target_type.as_ref()) {
                    stack.push((Item::Type(t), next));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyteidl::core::{
        LiteralCollection, LiteralMap, Primitive, SimpleType, primitive, scalar::Value as S,
    };

    fn int_lit() -> Literal {
        Literal {
            value: Some(literal::Value::Scalar(Box::new(Scalar {
                value: Some(S::Primitive(Primitive {
                    value: Some(primitive::Value::Integer(1)),
                })),
            }))),
            ..Default::default()
        }
    }

    /// `levels` levels in all: lists (or maps) around one integer.
    fn nested_lit(levels: usize, map: bool) -> Literal {
        let mut lit = int_lit();
        for _ in 1..levels {
            lit = Literal {
                value: Some(if map {
                    literal::Value::Map(LiteralMap {
                        literals: [("k".to_string(), lit)].into(),
                    })
                } else {
                    literal::Value::Collection(LiteralCollection {
                        literals: vec![lit],
                    })
                }),
                ..Default::default()
            };
        }
        lit
    }

    fn nested_type(levels: usize) -> LiteralType {
        let mut t = LiteralType {
            r#type: Some(Type::Simple(SimpleType::Integer as i32)),
            ..Default::default()
        };
        for _ in 1..levels {
            t = LiteralType {
                r#type: Some(Type::CollectionType(Box::new(t))),
                ..Default::default()
            };
        }
        t
    }

    #[test]
    fn the_bound_is_inclusive() {
        for map in [false, true] {
            assert_eq!(
                check_literal_depth(&nested_lit(MAX_NESTING_DEPTH, map)),
                Ok(())
            );
            let err = check_literal_depth(&nested_lit(MAX_NESTING_DEPTH + 1, map)).unwrap_err();
            assert_eq!(err.to_string(), "literal nested deeper than 30 levels");
        }
        assert_eq!(check_type_depth(&nested_type(MAX_NESTING_DEPTH)), Ok(()));
        let err = check_type_depth(&nested_type(MAX_NESTING_DEPTH + 1)).unwrap_err();
        assert_eq!(err.to_string(), "type nested deeper than 30 levels");
    }

    /// The check is iterative: a value far deeper than any decoder allows is refused, not a
    /// stack overflow.
    #[test]
    fn a_very_deep_value_is_refused_without_recursing() {
        let lit = nested_lit(200_000, false);
        assert!(check_literal_depth(&lit).is_err());
        // Dropping a 200,000-deep Literal recurses in the generated Drop: take it apart.
        let mut lit = lit;
        while let Some(literal::Value::Collection(mut c)) = lit.value.take() {
            match c.literals.pop() {
                Some(inner) => lit = inner,
                None => break,
            }
        }
    }
}

//! Binding resolution (propeller's `nodes/resolve.go` and `attr_path_resolver.go`): scalars,
//! collections, maps, promises (with attribute paths into maps, collections, protobuf Structs
//! and msgpack binaries), offloaded literals passed through untouched.

use std::collections::{BTreeMap, HashMap};

use flyteidl::core::{
    Binary, Binding, BindingData, Literal, LiteralCollection, LiteralMap, Primitive,
    PromiseAttribute, Scalar, binding_data, literal, primitive, promise_attribute, scalar,
};
use pbjson_types::value::Kind;

use crate::msgpack::{self, MpValue};

/// The node a promise reads: flytekit binds workflow inputs with an empty node id, which
/// Flyte's compiler reads as the start node (the scope's inputs).
fn upstream_of(node_id: &str) -> &str {
    if node_id.is_empty() {
        flyte_core::compiler::START_NODE_ID
    } else {
        node_id
    }
}

/// The node ids (in the binding scope) whose outputs the bindings read.
pub fn promised_nodes<'a>(bindings: &'a [Binding], out: &mut Vec<&'a str>) {
    fn walk<'a>(b: &'a BindingData, out: &mut Vec<&'a str>) {
        match &b.value {
            Some(binding_data::Value::Promise(p)) if !out.contains(&upstream_of(&p.node_id)) => {
                out.push(upstream_of(&p.node_id))
            }
            Some(binding_data::Value::Collection(c)) => {
                c.bindings.iter().for_each(|b| walk(b, out))
            }
            Some(binding_data::Value::Map(m)) => m.bindings.values().for_each(|b| walk(b, out)),
            _ => {}
        }
    }
    for b in bindings {
        if let Some(bd) = &b.binding {
            walk(bd, out);
        }
    }
}

/// Resolves bindings into a LiteralMap; `outputs` maps an upstream node id to its outputs.
pub fn resolve(
    bindings: &[Binding],
    outputs: &HashMap<&str, &LiteralMap>,
) -> Result<LiteralMap, String> {
    let mut literals = BTreeMap::new();
    for b in bindings {
        let lit = match &b.binding {
            Some(bd) => resolve_data(bd, outputs)
                .map_err(|e| format!("Error binding Var [wf].[{}], caused by: {e}", b.var))?,
            None => Literal::default(),
        };
        literals.insert(b.var.clone(), lit);
    }
    Ok(LiteralMap { literals })
}

fn lit(v: literal::Value) -> Literal {
    Literal {
        value: Some(v),
        ..Default::default()
    }
}

fn scalar_lit(v: scalar::Value) -> Literal {
    lit(literal::Value::Scalar(Box::new(Scalar { value: Some(v) })))
}

fn prim_lit(v: primitive::Value) -> Literal {
    scalar_lit(scalar::Value::Primitive(Primitive { value: Some(v) }))
}

pub fn resolve_data(
    bd: &BindingData,
    outputs: &HashMap<&str, &LiteralMap>,
) -> Result<Literal, String> {
    Ok(match &bd.value {
        None => Literal::default(),
        Some(binding_data::Value::Scalar(s)) => lit(literal::Value::Scalar(Box::new(s.clone()))),
        Some(binding_data::Value::Collection(c)) => {
            let literals = c
                .bindings
                .iter()
                .map(|b| resolve_data(b, outputs))
                .collect::<Result<Vec<_>, _>>()?;
            lit(literal::Value::Collection(LiteralCollection { literals }))
        }
        Some(binding_data::Value::Map(m)) => {
            let mut literals = BTreeMap::new();
            for (k, b) in &m.bindings {
                literals.insert(k.clone(), resolve_data(b, outputs)?);
            }
            lit(literal::Value::Map(LiteralMap { literals }))
        }
        Some(binding_data::Value::OffloadedMetadata(o)) => {
            lit(literal::Value::OffloadedMetadata(o.clone()))
        }
        Some(binding_data::Value::Promise(p)) => {
            let map = outputs.get(upstream_of(&p.node_id)).ok_or_else(|| {
                format!("outputs of upstream node [{}] are not available", p.node_id)
            })?;
            let value = map.literals.get(&p.var).ok_or_else(|| {
                format!(
                    "Failed to find [{}].[{}] in the upstream node's outputs",
                    p.node_id, p.var
                )
            })?;
            if p.attr_path.is_empty() {
                value.clone()
            } else {
                resolve_attr_path(&p.node_id, value, &p.attr_path)?
            }
        }
    })
}

fn attr_str(a: &PromiseAttribute) -> Option<&str> {
    match &a.value {
        Some(promise_attribute::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn attr_int(a: &PromiseAttribute) -> Option<i64> {
    match &a.value {
        Some(promise_attribute::Value::IntValue(i)) => Some(i64::from(*i)),
        _ => None,
    }
}

fn attr_display(a: &PromiseAttribute) -> String {
    match &a.value {
        Some(promise_attribute::Value::StringValue(s)) => s.clone(),
        Some(promise_attribute::Value::IntValue(i)) => i.to_string(),
        None => String::new(),
    }
}

/// Follows an attribute path: through literal maps and collections, then into a Struct
/// (dataclass/pydantic as JSON) or a msgpack Binary.
pub fn resolve_attr_path(
    node_id: &str,
    value: &Literal,
    path: &[PromiseAttribute],
) -> Result<Literal, String> {
    let err = |m: String| format!("[{node_id}] failed to resolve attribute path: {m}");
    let mut cur = value;
    let mut index = 0;
    for attr in path {
        match &cur.value {
            Some(literal::Value::OffloadedMetadata(_)) => {
                return Err(err(
                    "attribute paths into offloaded literals are not supported".into(),
                ));
            }
            Some(literal::Value::Map(m)) => {
                let key = attr_str(attr).unwrap_or_default();
                cur = m.literals.get(key).ok_or_else(|| {
                    err(format!(
                        "key [{}] does not exist in literal map",
                        attr_display(attr)
                    ))
                })?;
                index += 1;
            }
            Some(literal::Value::Collection(c)) => {
                let i = attr_int(attr).unwrap_or(-1);
                cur = usize::try_from(i)
                    .ok()
                    .and_then(|i| c.literals.get(i))
                    .ok_or_else(|| {
                        err(format!(
                            "index [{}] is out of range of the collection",
                            attr_display(attr)
                        ))
                    })?;
                index += 1;
            }
            _ => break,
        }
    }
    let rest = &path[index..];
    if let Some(literal::Value::Scalar(s)) = &cur.value {
        match &s.value {
            Some(scalar::Value::Binary(b)) => return resolve_in_binary(node_id, b, rest),
            Some(scalar::Value::Generic(st)) => return resolve_in_struct(node_id, st, rest),
            _ => {}
        }
    }
    if !rest.is_empty() {
        return Err(err(format!(
            "cannot follow [{}] into a value that is not a map, collection, struct or msgpack binary",
            attr_display(&rest[0])
        )));
    }
    Ok(cur.clone())
}

fn resolve_in_struct(
    node_id: &str,
    st: &pbjson_types::Struct,
    path: &[PromiseAttribute],
) -> Result<Literal, String> {
    let err = |m: String| format!("[{node_id}] failed to resolve attribute path: {m}");
    let root = pbjson_types::Value {
        kind: Some(Kind::StructValue(st.clone())),
    };
    let mut cur = &root;
    for attr in path {
        match &cur.kind {
            Some(Kind::StructValue(s)) => {
                let key = attr_str(attr).unwrap_or_default();
                cur = s.fields.get(key).ok_or_else(|| {
                    err(format!(
                        "key [{}] does not exist in struct",
                        attr_display(attr)
                    ))
                })?;
            }
            Some(Kind::ListValue(l)) => {
                let i = attr_int(attr).unwrap_or(-1);
                cur = usize::try_from(i)
                    .ok()
                    .and_then(|i| l.values.get(i))
                    .ok_or_else(|| {
                        err(format!("index [{}] is out of range", attr_display(attr)))
                    })?;
            }
            _ => {}
        }
    }
    Ok(struct_value_to_literal(cur))
}

/// As propeller's `convertInterfaceToLiteral` on `structpb.AsMap()` values: numbers become
/// floats, objects Structs, lists collections, null an empty literal.
fn struct_value_to_literal(v: &pbjson_types::Value) -> Literal {
    match &v.kind {
        Some(Kind::StructValue(s)) => scalar_lit(scalar::Value::Generic(s.clone())),
        Some(Kind::ListValue(l)) => lit(literal::Value::Collection(LiteralCollection {
            literals: l.values.iter().map(struct_value_to_literal).collect(),
        })),
        Some(Kind::NumberValue(n)) => prim_lit(primitive::Value::FloatValue(*n)),
        Some(Kind::StringValue(s)) => prim_lit(primitive::Value::StringValue(s.clone())),
        Some(Kind::BoolValue(b)) => prim_lit(primitive::Value::Boolean(*b)),
        Some(Kind::NullValue(_)) | None => Literal::default(),
    }
}

fn resolve_in_binary(
    node_id: &str,
    bin: &Binary,
    path: &[PromiseAttribute],
) -> Result<Literal, String> {
    let err = |m: String| format!("[{node_id}] failed to resolve attribute path: {m}");
    if bin.tag != "msgpack" {
        return Err(err(format!(
            "Unsupported format '{}' found for literal value. Please ensure the serialization format is supported.",
            bin.tag
        )));
    }
    let root = msgpack::decode(&bin.value).map_err(|e| err(format!("invalid msgpack: {e}")))?;
    let mut cur = &root;
    for attr in path {
        match cur {
            MpValue::Map(entries) => {
                let key = attr_str(attr).ok_or_else(|| {
                    err(format!(
                        "unexpected attribute [{}] for a map",
                        attr_display(attr)
                    ))
                })?;
                cur = entries
                    .iter()
                    .find(|(k, _)| matches!(k, MpValue::Str(s) if s == key))
                    .map(|(_, v)| v)
                    .ok_or_else(|| err(format!("key [{key}] does not exist in literal")))?;
            }
            MpValue::Array(items) => {
                let i = attr_int(attr).ok_or_else(|| {
                    err(format!(
                        "unexpected attribute [{}] for a list",
                        attr_display(attr)
                    ))
                })?;
                cur = usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .ok_or_else(|| err(format!("index [{i}] is out of range")))?;
            }
            _ => {
                return Err(err(format!(
                    "cannot follow [{}] into a scalar",
                    attr_display(attr)
                )));
            }
        }
    }
    let to_bin = |v: &MpValue| {
        scalar_lit(scalar::Value::Binary(Binary {
            value: msgpack::encode(v),
            tag: bin.tag.clone(),
        }))
    };
    Ok(match cur {
        MpValue::Array(items) => lit(literal::Value::Collection(LiteralCollection {
            literals: items.iter().map(to_bin).collect(),
        })),
        MpValue::Int(i) => prim_lit(primitive::Value::Integer(*i)),
        MpValue::UInt(u) => prim_lit(primitive::Value::Integer(
            i64::try_from(*u)
                .map_err(|_| err("uint64 value is too large to be converted to int64".into()))?,
        )),
        MpValue::F32(f) => prim_lit(primitive::Value::FloatValue(f64::from(*f))),
        MpValue::F64(f) => prim_lit(primitive::Value::FloatValue(*f)),
        MpValue::Bool(b) => prim_lit(primitive::Value::Boolean(*b)),
        MpValue::Str(s) => prim_lit(primitive::Value::StringValue(s.clone())),
        other => to_bin(other),
    })
}

/// The failure node's `err` input (propeller's `ResolveOnFailureNodeInput`).
pub fn set_failure_error_input(inputs: &mut LiteralMap, failed_node_id: &str, message: &str) {
    use flyteidl::core::{LiteralType, SimpleType, TypeStructure, Union, literal_type};
    if let Some(l) = inputs.literals.get_mut("err") {
        let err_lit = scalar_lit(scalar::Value::Error(flyteidl::core::Error {
            failed_node_id: failed_node_id.to_string(),
            message: message.to_string(),
        }));
        *l = scalar_lit(scalar::Value::Union(Box::new(Union {
            value: Some(Box::new(err_lit)),
            r#type: Some(LiteralType {
                r#type: Some(literal_type::Type::Simple(SimpleType::Error as i32)),
                structure: Some(TypeStructure {
                    tag: "FlyteError".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyteidl::core::OutputReference;

    fn int(i: i64) -> Literal {
        prim_lit(primitive::Value::Integer(i))
    }

    fn attr_s(s: &str) -> PromiseAttribute {
        PromiseAttribute {
            value: Some(promise_attribute::Value::StringValue(s.into())),
        }
    }
    fn attr_i(i: i32) -> PromiseAttribute {
        PromiseAttribute {
            value: Some(promise_attribute::Value::IntValue(i)),
        }
    }

    #[test]
    fn promise_with_paths_through_map_collection_and_struct() {
        let st: pbjson_types::Struct = serde_like_struct();
        let upstream = LiteralMap {
            literals: BTreeMap::from([(
                "o0".to_string(),
                lit(literal::Value::Map(LiteralMap {
                    literals: BTreeMap::from([(
                        "k".to_string(),
                        lit(literal::Value::Collection(LiteralCollection {
                            literals: vec![int(1), scalar_lit(scalar::Value::Generic(st))],
                        })),
                    )]),
                })),
            )]),
        };
        let outputs = HashMap::from([("n0", &upstream)]);
        let bd = BindingData {
            value: Some(binding_data::Value::Promise(OutputReference {
                node_id: "n0".into(),
                var: "o0".into(),
                attr_path: vec![attr_s("k"), attr_i(1), attr_s("inner"), attr_s("x")],
            })),
            ..Default::default()
        };
        let got = resolve_data(&bd, &outputs).unwrap();
        assert_eq!(got, prim_lit(primitive::Value::FloatValue(3.0)));
        let bad = BindingData {
            value: Some(binding_data::Value::Promise(OutputReference {
                node_id: "n0".into(),
                var: "o0".into(),
                attr_path: vec![attr_s("nope")],
            })),
            ..Default::default()
        };
        assert!(resolve_data(&bad, &outputs).unwrap_err().contains("nope"));
    }

    fn serde_like_struct() -> pbjson_types::Struct {
        let inner = pbjson_types::Struct {
            fields: HashMap::from([(
                "x".to_string(),
                pbjson_types::Value {
                    kind: Some(Kind::NumberValue(3.0)),
                },
            )]),
        };
        pbjson_types::Struct {
            fields: HashMap::from([(
                "inner".to_string(),
                pbjson_types::Value {
                    kind: Some(Kind::StructValue(inner)),
                },
            )]),
        }
    }

    #[test]
    fn msgpack_paths() {
        let v = MpValue::Map(vec![
            (MpValue::Str("a".into()), MpValue::Int(-5)),
            (
                MpValue::Str("b".into()),
                MpValue::Array(vec![MpValue::Str("x".into()), MpValue::Bool(true)]),
            ),
            (
                MpValue::Str("c".into()),
                MpValue::Map(vec![(MpValue::Str("d".into()), MpValue::F64(1.5))]),
            ),
        ]);
        let bin = Binary {
            value: msgpack::encode(&v),
            tag: "msgpack".into(),
        };
        let l = resolve_in_binary("n", &bin, &[attr_s("a")]).unwrap();
        assert_eq!(l, int(-5));
        let l = resolve_in_binary("n", &bin, &[attr_s("b"), attr_i(0)]).unwrap();
        assert_eq!(l, prim_lit(primitive::Value::StringValue("x".into())));
        let l = resolve_in_binary("n", &bin, &[attr_s("b")]).unwrap();
        let Some(literal::Value::Collection(c)) = l.value else {
            panic!()
        };
        assert_eq!(c.literals.len(), 2);
        let l = resolve_in_binary("n", &bin, &[attr_s("c")]).unwrap();
        let Some(literal::Value::Scalar(s)) = l.value else {
            panic!()
        };
        let Some(scalar::Value::Binary(b)) = s.value else {
            panic!()
        };
        assert_eq!(
            msgpack::decode(&b.value).unwrap(),
            MpValue::Map(vec![(MpValue::Str("d".into()), MpValue::F64(1.5))])
        );
    }
}

//! Generators shared by the property tests (docs/fuzzing.md): literal types, literals and
//! binding data shaped like what flytekit sends, plus the odd cases it never sends (unknown
//! enum numbers, empty oneofs, unions of unions, duplicate column names).
#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, HashMap};

use flyteidl::core::literal_type::Type;
use flyteidl::core::schema_type::SchemaColumn;
use flyteidl::core::structured_dataset_type::DatasetColumn;
use flyteidl::core::{
    Binary, Blob, BlobMetadata, BlobType, EnumType, Literal, LiteralCollection, LiteralMap,
    LiteralOffloadedMetadata, LiteralType, Primitive, Scalar, SchemaType, StructuredDataset,
    StructuredDatasetMetadata, StructuredDatasetType, TypeAnnotation, TypeStructure, UnionType,
    Void, literal, primitive, scalar,
};
use pbjson_types::value::Kind as ValueKind;
use proptest::prelude::*;

/// Short names from a small alphabet, so generated names collide (duplicate columns, enum
/// values, variables) often enough to matter.
pub fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-c]{1,2}",
        1 => Just(String::new()),
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

pub fn wrap(t: Type) -> LiteralType {
    LiteralType {
        r#type: Some(t),
        ..Default::default()
    }
}

/// A `google.protobuf.Struct` (dataclass schemas, annotations, generic literals).
pub fn json_struct() -> impl Strategy<Value = pbjson_types::Struct> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(ValueKind::BoolValue),
        any::<f64>().prop_map(ValueKind::NumberValue),
        "[a-z]{0,4}".prop_map(ValueKind::StringValue),
        (-1i32..2).prop_map(ValueKind::NullValue),
    ];
    let value =
        leaf.prop_map(|k| pbjson_types::Value { kind: Some(k) })
            .prop_recursive(3, 16, 3, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(|values| {
                        pbjson_types::Value {
                            kind: Some(ValueKind::ListValue(pbjson_types::ListValue { values })),
                        }
                    }),
                    prop::collection::hash_map("type|items|properties|[a-c]", inner, 0..3)
                        .prop_map(|fields| pbjson_types::Value {
                            kind: Some(ValueKind::StructValue(pbjson_types::Struct { fields })),
                        }),
                ]
            });
    prop::collection::hash_map("type|items|properties|[a-c]", value, 0..3)
        .prop_map(|fields: HashMap<String, pbjson_types::Value>| pbjson_types::Struct { fields })
}

fn simple() -> impl Strategy<Value = LiteralType> {
    // 0..=9 are SimpleType's values; the rest are numbers a client may still send.
    prop_oneof![9 => 0i32..10, 1 => any::<i32>()].prop_map(|s| wrap(Type::Simple(s)))
}

fn blob_type() -> impl Strategy<Value = BlobType> {
    ("|csv|parquet|PARQUET", -1i32..3).prop_map(|(format, dimensionality)| BlobType {
        format,
        dimensionality,
    })
}

fn schema_type(unique: bool) -> impl Strategy<Value = SchemaType> {
    prop::collection::vec((name(), -1i32..7), 0..4).prop_map(move |cols| SchemaType {
        columns: dedup_by_name(cols, unique, |c| &c.0)
            .into_iter()
            .map(|(name, r#type)| SchemaColumn { name, r#type })
            .collect(),
    })
}

fn dedup_by_name<T>(items: Vec<T>, unique: bool, key: impl Fn(&T) -> &String) -> Vec<T> {
    if !unique {
        return items;
    }
    let mut seen = std::collections::BTreeSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(key(i).clone()))
        .collect()
}

fn leaf_type(unique: bool) -> BoxedStrategy<LiteralType> {
    prop_oneof![
        6 => simple(),
        1 => Just(LiteralType::default()),
        1 => blob_type().prop_map(|b| wrap(Type::Blob(b))),
        1 => prop::collection::vec(name(), 0..4)
            .prop_map(|values| wrap(Type::EnumType(EnumType { values }))),
        1 => schema_type(unique).prop_map(|s| wrap(Type::Schema(s))),
        1 => "|parquet|csv".prop_map(|format| wrap(Type::StructuredDatasetType(
            StructuredDatasetType { format, ..Default::default() }
        ))),
    ]
    .boxed()
}

/// Literal types up to a few levels deep. `unique`: column names are distinct (a type with
/// two columns of one name is not castable to itself: the first column is always the one
/// found, as upstream does).
pub fn literal_type_with(unique: bool) -> BoxedStrategy<LiteralType> {
    let recursive = leaf_type(unique).prop_recursive(4, 24, 4, move |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|t| wrap(Type::CollectionType(Box::new(t)))),
            inner
                .clone()
                .prop_map(|t| wrap(Type::MapValueType(Box::new(t)))),
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|variants| wrap(Type::UnionType(UnionType { variants }))),
            (
                "|parquet|csv",
                prop::collection::vec((name(), prop::option::of(inner.clone())), 0..3)
            )
                .prop_map(move |(format, cols)| {
                    let columns = dedup_by_name(cols, unique, |c| &c.0)
                        .into_iter()
                        .map(|(name, literal_type)| DatasetColumn { name, literal_type })
                        .collect();
                    wrap(Type::StructuredDatasetType(StructuredDatasetType {
                        format,
                        columns,
                        ..Default::default()
                    }))
                }),
            // A dataclass: a struct whose fields are typed in `structure.dataclass_type`.
            (
                prop::collection::btree_map(name(), inner, 0..3),
                prop::option::of(json_struct())
            )
                .prop_map(|(fields, metadata)| LiteralType {
                    r#type: Some(Type::Simple(9)),
                    metadata,
                    structure: Some(TypeStructure {
                        tag: String::new(),
                        dataclass_type: fields,
                    }),
                    annotation: None,
                }),
        ]
    });
    (
        recursive,
        prop::option::of("|tag|other"),
        prop::option::of(json_struct()),
    )
        .prop_map(|(mut t, tag, annotation)| {
            if let Some(tag) = tag {
                let mut structure = t.structure.take().unwrap_or_default();
                structure.tag = tag;
                t.structure = Some(structure);
            }
            t.annotation = annotation.map(|a| TypeAnnotation {
                annotations: Some(a),
            });
            t
        })
        .boxed()
}

pub fn literal_type() -> BoxedStrategy<LiteralType> {
    literal_type_with(false)
}

pub fn primitive() -> impl Strategy<Value = Primitive> {
    let value = prop_oneof![
        any::<i64>().prop_map(primitive::Value::Integer),
        any::<f64>().prop_map(primitive::Value::FloatValue),
        name().prop_map(primitive::Value::StringValue),
        any::<bool>().prop_map(primitive::Value::Boolean),
        (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| primitive::Value::Datetime(
            pbjson_types::Timestamp { seconds, nanos }
        )),
        (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| primitive::Value::Duration(
            pbjson_types::Duration { seconds, nanos }
        )),
    ];
    prop::option::weighted(0.95, value).prop_map(|value| Primitive { value })
}

fn scalar_value() -> BoxedStrategy<scalar::Value> {
    prop_oneof![
        8 => primitive().prop_map(scalar::Value::Primitive),
        1 => prop::option::of(blob_type()).prop_map(|t| scalar::Value::Blob(Blob {
            metadata: Some(BlobMetadata { r#type: t }),
            uri: "s3://b/k".into(),
        })),
        1 => Just(scalar::Value::Blob(Blob::default())),
        1 => (prop::collection::vec(any::<u8>(), 0..8), "|msgpack|x").prop_map(|(value, tag)| {
            scalar::Value::Binary(Binary { value, tag })
        }),
        1 => schema_type(true).prop_map(|t| scalar::Value::Schema(flyteidl::core::Schema {
            uri: String::new(),
            r#type: Some(t),
        })),
        1 => Just(scalar::Value::NoneType(Void {})),
        1 => Just(scalar::Value::Error(flyteidl::core::Error::default())),
        1 => json_struct().prop_map(scalar::Value::Generic),
        1 => prop::option::of("|parquet|csv").prop_map(|format| {
            scalar::Value::StructuredDataset(StructuredDataset {
                uri: String::new(),
                metadata: format.map(|format| StructuredDatasetMetadata {
                    structured_dataset_type: Some(StructuredDatasetType {
                        format,
                        ..Default::default()
                    }),
                }),
            })
        }),
    ]
    .boxed()
}

/// Literals up to a few levels deep: scalars, collections, maps, unions, offloaded ones.
/// The types inside them have distinct column names (see [`literal_type_with`]).
pub fn literal() -> BoxedStrategy<Literal> {
    let scalar_lit = prop::option::weighted(0.97, scalar_value()).prop_map(scalar_literal);
    let leaf = prop_oneof![
        10 => scalar_lit,
        1 => Just(Literal::default()),
        1 => prop::option::of(literal_type_with(true)).prop_map(|inferred_type| Literal {
            value: Some(literal::Value::OffloadedMetadata(LiteralOffloadedMetadata {
                uri: "s3://b/o".into(),
                size_bytes: 1,
                inferred_type,
            })),
            ..Default::default()
        }),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|literals| Literal {
                value: Some(literal::Value::Collection(LiteralCollection { literals })),
                ..Default::default()
            }),
            prop::collection::btree_map(name(), inner.clone(), 0..4).prop_map(|literals| {
                Literal {
                    value: Some(literal::Value::Map(LiteralMap { literals })),
                    ..Default::default()
                }
            }),
            (
                prop::option::of(inner),
                prop::option::of(literal_type_with(true))
            )
                .prop_map(|(value, r#type)| scalar_literal(Some(
                    scalar::Value::Union(Box::new(flyteidl::core::Union {
                        value: value.map(Box::new),
                        r#type,
                    }))
                ))),
        ]
    })
    .boxed()
}

pub fn scalar_literal(value: Option<scalar::Value>) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar { value }))),
        ..Default::default()
    }
}

pub fn literal_map() -> impl Strategy<Value = LiteralMap> {
    prop::collection::btree_map(name(), literal(), 0..4)
        .prop_map(|literals| LiteralMap { literals })
}

/// `depth` collections around an integer: `[[[…[1]…]]]`.
pub fn nested_collection(depth: usize) -> Literal {
    let mut lit = scalar_literal(Some(scalar::Value::Primitive(Primitive {
        value: Some(primitive::Value::Integer(1)),
    })));
    for _ in 0..depth {
        lit = Literal {
            value: Some(literal::Value::Collection(LiteralCollection {
                literals: vec![lit],
            })),
            ..Default::default()
        };
    }
    lit
}

/// `depth` list types around `int`.
pub fn nested_list_type(depth: usize) -> LiteralType {
    let mut t = wrap(Type::Simple(1));
    for _ in 0..depth {
        t = wrap(Type::CollectionType(Box::new(t)));
    }
    t
}

/// A type map for an interface's variables.
pub fn variables(
    names: impl Strategy<Value = String>,
) -> impl Strategy<Value = BTreeMap<String, flyteidl::core::Variable>> {
    prop::collection::btree_map(names, prop::option::weighted(0.95, literal_type()), 0..4).prop_map(
        |m| {
            m.into_iter()
                .map(|(k, t)| {
                    (
                        k,
                        flyteidl::core::Variable {
                            r#type: t,
                            ..Default::default()
                        },
                    )
                })
                .collect()
        },
    )
}
